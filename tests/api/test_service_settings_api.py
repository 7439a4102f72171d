"""Service settings through the API: the category tree, business calendars and SLA policies — created
and changed by administrators and managers only, validated per field, audited, with optimistic locking
(a stale version answers 409 and changes nothing)."""

from __future__ import annotations

import pytest

from pharmacrm.core.models import AuditEntry
from pharmacrm.servicedesk.models import BusinessCalendar, SlaPolicy, TicketCategory

CATEGORIES = "/api/v1/ticket-categories/"
CALENDARS = "/api/v1/calendars/"
POLICIES = "/api/v1/sla-policies/"


@pytest.mark.parametrize("role, allowed", [("admin", True), ("manager", True), ("agent", False), ("kam", False),
                                           ("auditor", False), ("analyst", False)])  # fmt: skip
def test_who_may_grow_the_category_tree(api_for, role, allowed):
    client = api_for(role)
    response = client.post(CATEGORIES, {"code": "cold_chain", "name": "冷链问题", "parent": "order_delivery",
                                        "default_priority": "high", "default_complexity": "general"},
                           format="json")  # fmt: skip
    assert response.status_code == (201 if allowed else 403), response.content
    assert TicketCategory.objects.filter(code="cold_chain").exists() is allowed
    assert client.get(CATEGORIES).status_code == 200  # everyone who sees tickets reads the tree


def test_a_new_sub_category_is_used_at_intake_with_its_defaults(api_for):
    api_for("admin").post(CATEGORIES, {"code": "cold_chain", "name": "冷链问题", "parent": "order_delivery",
                                       "default_priority": "high", "default_complexity": "complex",
                                       "low_score_action": "reopen"}, format="json")  # fmt: skip
    ticket = api_for("agent").post("/api/v1/tickets/", {"subject": "冷链温度超标", "channel": "phone",
                                                       "category": "cold_chain", "caller_name": "王先生"},
                                   format="json").json()  # fmt: skip
    assert (ticket["category"], ticket["priority"], ticket["complexity"]) == ("cold_chain", "high", "complex")
    entry = AuditEntry.objects.filter(object_type="servicedesk.ticketcategory").latest("seq")
    assert entry.action == "create" and entry.changes["code"] == [None, "cold_chain"]


def test_a_category_cannot_sit_below_itself_and_its_code_is_fixed(api_for):
    admin = api_for("admin")
    admin.post(CATEGORIES, {"code": "parent_x", "name": "上级", "default_priority": "normal",
                            "default_complexity": "general"}, format="json")  # fmt: skip
    admin.post(CATEGORIES, {"code": "child_x", "name": "下级", "parent": "parent_x", "default_priority": "normal",
                            "default_complexity": "general"}, format="json")  # fmt: skip
    loop = admin.patch(f"{CATEGORIES}parent_x/", {"parent": "child_x"}, format="json")
    assert loop.status_code == 400 and "parent" in loop.json()
    recode = admin.patch(f"{CATEGORIES}parent_x/", {"code": "other_code"}, format="json")
    assert recode.status_code == 400 and "code" in recode.json()
    assert TicketCategory.objects.get(code="parent_x").parent is None


def test_two_managers_editing_a_category_the_second_gets_a_conflict(api_for):
    first, second = api_for("admin"), api_for("manager")
    version = first.get(f"{CATEGORIES}drug_info/").json()["version"]
    assert first.patch(f"{CATEGORIES}drug_info/", {"name": "药品信息", "version": version}, format="json").status_code == 200
    late = second.patch(f"{CATEGORIES}drug_info/", {"name": "药品咨询", "version": version}, format="json")
    assert late.status_code == 409
    assert TicketCategory.objects.get(code="drug_info").name == "药品信息"


def test_deactivating_a_category_keeps_it_for_old_tickets(api_for):
    assert api_for("admin").delete(f"{CATEGORIES}relationship/").status_code == 204
    category = TicketCategory.objects.get(code="relationship")
    assert category.active is False
    refused = api_for("agent").post("/api/v1/tickets/", {"subject": "x", "channel": "phone",
                                                        "category": "relationship", "caller_name": "王"},
                                    format="json")  # fmt: skip
    assert refused.status_code == 400 and "category" in refused.json()


def test_a_calendar_gets_new_working_windows_and_its_version_moves(api_for):
    admin = api_for("admin")
    before = admin.get(f"{CALENDARS}business/").json()
    changed = admin.patch(f"{CALENDARS}business/", {"windows": [["09:00", "12:00"], ["13:00", "18:00"]],
                                                   "version": before["version"]}, format="json")  # fmt: skip
    assert changed.status_code == 200, changed.content
    assert changed.json()["version"] == before["version"] + 1
    calendar = BusinessCalendar.objects.get(code="business")
    assert calendar.windows == [["09:00", "12:00"], ["13:00", "18:00"]]
    stale = admin.patch(f"{CALENDARS}business/", {"name": "旧版本", "version": before["version"]}, format="json")
    assert stale.status_code == 409
    assert AuditEntry.objects.filter(object_type="servicedesk.businesscalendar", action="update").exists()


@pytest.mark.parametrize("body, field", [
    ({"windows": [["12:00", "08:30"]]}, "windows"),
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"windows": [], "always_on": False}, "windows"),
])  # fmt: skip
def test_a_broken_calendar_is_refused_naming_the_field(api_for, body, field):
    response = api_for("admin").patch(f"{CALENDARS}business/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert BusinessCalendar.objects.get(code="business").windows == [["08:30", "12:00"], ["13:30", "17:30"]]


def test_an_agent_cannot_change_a_calendar(api_for):
    assert api_for("agent").patch(f"{CALENDARS}business/", {"name": "x"}, format="json").status_code == 403


def test_a_stale_policy_change_is_a_conflict(api_for):
    policy = SlaPolicy.objects.get(priority="urgent")
    admin = api_for("admin")
    version = admin.get(f"{POLICIES}{policy.pk}/").json()["version"]
    assert admin.patch(f"{POLICIES}{policy.pk}/", {"first_response": 1, "version": version},
                       format="json").status_code == 200  # fmt: skip
    stale = admin.patch(f"{POLICIES}{policy.pk}/", {"first_response": 3}, format="json",
                        HTTP_IF_MATCH=f'"{version}"')  # fmt: skip
    assert stale.status_code == 409
    assert SlaPolicy.objects.get(pk=policy.pk).first_response == 1


LADDER = "/api/v1/escalation-rules/"


@pytest.mark.parametrize("role, allowed", [("admin", True), ("manager", True), ("agent", False), ("auditor", False)])
def test_who_may_change_the_escalation_ladder(api_for, role, allowed):
    from pharmacrm.servicedesk.models import EscalationRule

    rule = EscalationRule.objects.get(level=2)
    client = api_for(role)
    assert client.get(LADDER).status_code == 200
    response = client.patch(f"{LADDER}{rule.pk}/", {"after_minutes": 60, "cooldown_minutes": 15}, format="json")
    assert response.status_code == (200 if allowed else 403), response.content
    rule.refresh_from_db()
    assert (rule.after_minutes, rule.cooldown_minutes) == ((60, 15) if allowed else (120, 30))
    if allowed:
        entry = AuditEntry.objects.filter(object_type="servicedesk.escalationrule").latest("seq")
        assert entry.changes["after_minutes"] == [120, 60]


def test_a_new_level_and_a_bad_one(api_for):
    admin = api_for("admin")
    added = admin.post(LADDER, {"level": 4, "after_minutes": 960, "notify": "manager"}, format="json")
    assert added.status_code == 201, added.content
    twice = admin.post(LADDER, {"level": 4, "after_minutes": 10, "notify": "manager"}, format="json")
    assert twice.status_code == 400 and "level" in twice.json()
    wrong = admin.post(LADDER, {"level": 5, "after_minutes": -1, "notify": "nobody"}, format="json")
    assert wrong.status_code == 400 and {"after_minutes", "notify"} <= set(wrong.json())
    assert admin.delete(f"{LADDER}{added.json()['id']}/").status_code == 204
    from pharmacrm.servicedesk import escalation

    escalation._forget()
    assert [r.level for r in escalation.ladder()] == [1, 2, 3]


def test_two_managers_editing_a_level_the_second_gets_a_conflict(api_for):
    from pharmacrm.servicedesk.models import EscalationRule

    rule = EscalationRule.objects.get(level=3)
    first, second = api_for("admin"), api_for("manager")
    version = first.get(f"{LADDER}{rule.pk}/").json()["version"]
    assert first.patch(f"{LADDER}{rule.pk}/", {"after_minutes": 240, "version": version},
                       format="json").status_code == 200  # fmt: skip
    late = second.patch(f"{LADDER}{rule.pk}/", {"after_minutes": 600}, format="json", HTTP_IF_MATCH=f'"{version}"')
    assert late.status_code == 409
    assert EscalationRule.objects.get(pk=rule.pk).after_minutes == 240
