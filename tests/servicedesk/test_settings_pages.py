"""The service-desk settings pages: who may use them, the category tree, the SLA policies (with the last
catch-all refused), the escalation ladder, and stale versions shown as conflicts with the input kept."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.servicedesk import policies
from pharmacrm.servicedesk.models import BusinessCalendar, EscalationRule, SlaPolicy, TicketCategory

ALLOWED = ("admin", "manager")


@pytest.fixture(autouse=True)
def english(settings):
    """The assertions read the English source messages (the product's default language is Chinese)."""
    settings.LANGUAGE_CODE = "en"


def cat(code) -> TicketCategory:
    return TicketCategory.objects.get(code=code)


def fallback() -> SlaPolicy:
    return SlaPolicy.objects.get(
        priority="", complexity="", category__isnull=True, customer_tier="", active=True
    )


def pages() -> list[tuple[str, str, list]]:
    """(method, url name, args) of every settings URL, resolved inside a test (needs the database)."""
    c, p, r = cat("drug_info").pk, fallback().pk, EscalationRule.objects.order_by("level").first().pk
    return [
        ("get", "servicedesk:settings", []),
        ("get", "servicedesk:settings-categories", []),
        ("get", "servicedesk:settings-category-create", []),
        ("get", "servicedesk:settings-category", [c]),
        ("post", "servicedesk:settings-category-active", [c]),
        ("get", "servicedesk:settings-policies", []),
        ("get", "servicedesk:settings-policy-create", []),
        ("get", "servicedesk:settings-policy", [p]),
        ("post", "servicedesk:settings-policy-active", [p]),
        ("get", "servicedesk:settings-escalation", []),
        ("get", "servicedesk:settings-escalation-create", []),
        ("get", "servicedesk:settings-escalation-rule", [r]),
        ("post", "servicedesk:settings-escalation-active", [r]),
    ]


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_every_settings_url_per_role(client_for, role):
    c = client_for(role)
    for method, name, args in pages():
        url = reverse(name, args=args)
        if method == "get":
            code = c.get(url).status_code
            assert code == (200 if role in ALLOWED else 403), (role, name, code)
        elif role not in ALLOWED:  # allowed roles' changes are checked in the feature tests below
            assert c.post(url, {"active": "1"}).status_code == 403, (role, name)
    if role not in ALLOWED:
        for method, name, args in pages():
            if method == "get" and name != "servicedesk:settings" and (args or name.endswith("-create")):
                assert c.post(reverse(name, args=args), {}).status_code == 403, (role, name)
        assert not AuditEntry.objects.filter(object_type__startswith="servicedesk.").exists()


def test_anonymous_is_sent_to_login(client):
    r = client.get(reverse("servicedesk:settings"))
    assert r.status_code == 302 and "login" in r["Location"]


def test_landing_links_and_queue_button(client_for):
    page = client_for("manager").get(reverse("servicedesk:settings")).content.decode()
    for name in ("settings-categories", "settings-policies", "settings-calendars", "settings-escalation"):
        assert reverse(f"servicedesk:{name}") in page
    queue = reverse("servicedesk:queue")
    assert reverse("servicedesk:settings") in client_for("manager").get(queue).content.decode()
    assert reverse("servicedesk:settings") not in client_for("agent").get(queue).content.decode()


# --- categories ----------------------------------------------------------------------------------------------


def test_category_tree_create_edit_deactivate(client_for):
    c = client_for("admin")
    parent = cat("adverse_reaction")
    r = c.post(reverse("servicedesk:settings-category-create"), {
        "code": "adr_serious", "name": "严重不良反应", "parent": parent.pk, "default_priority": "urgent",
        "default_complexity": "complex", "safety_relevant": "on", "low_score_action": "reopen", "position": "0",
        "active": "on",
    })  # fmt: skip
    assert r.status_code == 302, r.context["form"].errors
    child = cat("adr_serious")
    assert (child.parent, child.default_priority, child.safety_relevant, child.low_score_action) == (
        parent, "urgent", True, "reopen",
    )  # fmt: skip

    # the list is a tree: the child right after its parent, one level deeper
    page = c.get(reverse("servicedesk:settings-categories"))
    rows = page.context["rows"]
    codes = [row["category"].code for row in rows]
    assert codes[codes.index("adverse_reaction") + 1] == "adr_serious"
    assert rows[codes.index("adr_serious")]["depth"] == 1
    html = page.content.decode()
    assert 'data-category="adr_serious" data-depth="1"' in html and "严重不良反应" in html

    # a duplicate code is an error under the field
    r = c.post(reverse("servicedesk:settings-category-create"), {
        "code": "adr_serious", "name": "x", "default_priority": "low", "default_complexity": "general",
        "low_score_action": "action", "position": "0",
    })  # fmt: skip
    assert r.status_code == 400 and "code" in r.context["form"].errors

    # edit: rename, change defaults; the code field is fixed
    url = reverse("servicedesk:settings-category", args=[child.pk])
    form = c.get(url).context["form"]
    assert form.fields["code"].disabled and child.pk not in [
        pk for pk, _l in form.fields["parent"].choices if pk
    ]
    r = c.post(url, {"code": "changed", "name": "严重不良反应（SAE）", "parent": parent.pk,
                     "default_priority": "high", "default_complexity": "complex", "safety_relevant": "on",
                     "low_score_action": "action", "position": "1", "active": "on",
                     "version": child.version})  # fmt: skip
    assert r.status_code == 302, r.context["form"].errors
    child.refresh_from_db()
    assert (child.code, child.name, child.default_priority, child.version) == (
        "adr_serious",
        "严重不良反应（SAE）",
        "high",
        2,
    )

    # a parent cannot go below its own child
    r = c.post(reverse("servicedesk:settings-category", args=[parent.pk]), {
        "name": parent.name, "parent": child.pk, "default_priority": parent.default_priority,
        "default_complexity": parent.default_complexity, "low_score_action": parent.low_score_action,
        "position": parent.position, "active": "on", "version": parent.version,
    })  # fmt: skip
    assert r.status_code == 400 and "parent" in r.context["form"].errors
    parent.refresh_from_db()
    assert parent.parent is None

    # deactivate, then activate again
    active_url = reverse("servicedesk:settings-category-active", args=[child.pk])
    assert c.post(active_url, {"version": child.version}).status_code == 302
    child.refresh_from_db()
    assert child.active is False
    assert c.post(active_url, {"version": child.version, "active": "1"}).status_code == 302
    child.refresh_from_db()
    assert child.active is True
    assert (
        AuditEntry.objects.filter(object_type="servicedesk.ticketcategory", object_id=str(child.pk)).count()
        == 4
    )


def test_category_stale_version_is_a_conflict_with_input_kept(client_for, users):
    c = client_for("manager")
    category = cat("drug_info")
    loaded = category.version
    policies.update_category(users["admin"], category, {"name": "药品咨询（他人）"}, version=loaded)
    url = reverse("servicedesk:settings-category", args=[category.pk])
    r = c.post(url, {"name": "我的名称", "default_priority": "high", "default_complexity": "general",
                     "low_score_action": "action", "position": "3", "active": "on", "version": loaded})  # fmt: skip
    assert r.status_code == 409
    form = r.context["form"]
    assert form["name"].value() == "我的名称" and str(form["version"].value()) == str(loaded + 1)
    assert "Someone else changed this setting" in r.content.decode()
    category.refresh_from_db()
    assert category.name == "药品咨询（他人）"
    # the list's switch with a stale version: the list again, 409, nothing changed
    r = c.post(reverse("servicedesk:settings-category-active", args=[category.pk]), {"version": loaded})
    assert r.status_code == 409 and "Someone else changed this setting" in r.content.decode()
    category.refresh_from_db()
    assert category.active is True


# --- SLA policies ------------------------------------------------------------------------------------------


def policy_data(**kw) -> dict:
    data = {"name": "VIP 不良反应", "priority": "", "complexity": "", "category": cat("adverse_reaction").pk,
            "customer_tier": "vip", "calendar": BusinessCalendar.objects.get(code="always").pk,
            "first_response": "1", "first_response_unit": "hours", "resolution": "12", "resolution_unit": "hours",
            "position": "5", "active": "on"}  # fmt: skip
    data.update(kw)
    return data


def test_policy_list_create_edit_deactivate(client_for):
    c = client_for("manager")
    page = c.get(reverse("servicedesk:settings-policies")).content.decode()
    assert "Every ticket (fallback)" in page and fallback().name in page
    r = c.post(reverse("servicedesk:settings-policy-create"), policy_data())
    assert r.status_code == 302, r.context["form"].errors
    p = SlaPolicy.objects.get(name="VIP 不良反应")
    assert (p.customer_tier, p.category.code, p.first_response, p.resolution_unit) == (
        "vip",
        "adverse_reaction",
        1,
        "hours",
    )
    page = c.get(reverse("servicedesk:settings-policies")).content.decode()
    assert 'data-policy="VIP 不良反应"' in page and "12 working hours" in page

    # a target out of range is an error under the field (the service's check)
    r = c.post(reverse("servicedesk:settings-policy-create"), policy_data(name="太长", resolution="400",
                                                                          resolution_unit="days"))  # fmt: skip
    assert r.status_code == 400 and "resolution" in r.context["form"].errors

    url = reverse("servicedesk:settings-policy", args=[p.pk])
    assert c.get(url).context["form"]["version"].value() == p.version
    r = c.post(url, policy_data(resolution="8", version=p.version))
    assert r.status_code == 302
    p.refresh_from_db()
    assert (p.resolution, p.version) == (8, 2)

    assert (
        c.post(reverse("servicedesk:settings-policy-active", args=[p.pk]), {"version": p.version}).status_code
        == 302
    )
    p.refresh_from_db()
    assert p.active is False


def test_last_catch_all_policy_cannot_be_deactivated(client_for):
    c = client_for("admin")
    last = fallback()
    r = c.post(reverse("servicedesk:settings-policy-active", args=[last.pk]), {"version": last.version})
    assert r.status_code == 400
    assert "At least one active policy without conditions must remain" in r.content.decode()
    last.refresh_from_db()
    assert last.active is True
    # nor by giving it a condition on its edit page: the message above the form
    r = c.post(reverse("servicedesk:settings-policy", args=[last.pk]), {
        **policy_data(name=last.name, category="", customer_tier="", priority="low"), "version": last.version,
    })  # fmt: skip
    assert r.status_code == 400 and r.context["form"].non_field_errors()
    last.refresh_from_db()
    assert last.priority == "" and last.version == 1


def test_policy_stale_version_is_a_conflict(client_for, users):
    c = client_for("admin")
    p = fallback()
    loaded = p.version
    policies.update_policy(users["manager"], p, {"resolution": 5}, version=loaded)
    url = reverse("servicedesk:settings-policy", args=[p.pk])
    r = c.post(url, {**policy_data(name=p.name, category="", customer_tier="", resolution="9",
                                   calendar=p.calendar_id), "version": loaded})  # fmt: skip
    assert r.status_code == 409 and r.context["form"]["resolution"].value() == "9"
    p.refresh_from_db()
    assert p.resolution == 5


# --- the escalation ladder ---------------------------------------------------------------------------------


def test_escalation_ladder_edit_add_switch_off(client_for):
    c = client_for("manager")
    page = c.get(reverse("servicedesk:settings-escalation")).content.decode()
    assert 'data-level="1"' in page and 'data-level="3"' in page
    two = EscalationRule.objects.get(level=2)
    url = reverse("servicedesk:settings-escalation-rule", args=[two.pk])
    r = c.post(url, {"level": "2", "after_minutes": "60", "notify": "team_lead", "reassign": "",
                     "cooldown_minutes": "15", "active": "on"})  # fmt: skip
    assert r.status_code == 302
    two.refresh_from_db()
    assert (two.after_minutes, two.reassign, two.cooldown_minutes) == (60, False, 15)

    create = reverse("servicedesk:settings-escalation-create")
    r = c.post(create, {"level": "4", "after_minutes": "960", "notify": "manager", "cooldown_minutes": "30",
                        "active": "on"})  # fmt: skip
    assert r.status_code == 302
    assert EscalationRule.objects.get(level=4).notify == "manager"
    r = c.post(create, {"level": "4", "after_minutes": "1", "notify": "manager", "cooldown_minutes": "30"})
    assert r.status_code == 400 and "level" in r.context["form"].errors
    r = c.post(create, {"level": "5", "after_minutes": str(60 * 24 * 31), "notify": "manager",
                        "cooldown_minutes": "30"})  # fmt: skip
    assert r.status_code == 400 and "after_minutes" in r.context["form"].errors

    assert c.post(reverse("servicedesk:settings-escalation-active", args=[two.pk])).status_code == 302
    two.refresh_from_db()
    assert two.active is False
    from pharmacrm.servicedesk import escalation

    assert [rung.level for rung in escalation.ladder()] == [1, 3, 4]
    assert (
        c.post(reverse("servicedesk:settings-escalation-active", args=[two.pk]), {"active": "1"}).status_code
        == 302
    )
    two.refresh_from_db()
    assert two.active is True
    assert AuditEntry.objects.filter(object_type="servicedesk.escalationrule").count() == 4


def test_a_policys_targets_typed_in_full_width_or_with_separators_are_read(client_for):
    """２４ hours from an input method in full-width mode, a position of 1,000: the page's number inputs sent nothing
    for them (the page said the field was required); 12.5 is refused naming the field."""
    c = client_for("manager")
    form = c.get(reverse("servicedesk:settings-policy-create")).content.decode()
    assert 'name="first_response"' in form and 'type="number"' not in form
    r = c.post(reverse("servicedesk:settings-policy-create"), policy_data(
        first_response="２４", resolution="７２", position="1,000"))
    assert r.status_code == 302, r.context["form"].errors
    p = SlaPolicy.objects.get(name="VIP 不良反应")
    assert (p.first_response, p.resolution, p.position) == (24, 72, 1000)
    r = c.post(reverse("servicedesk:settings-policy-create"), policy_data(name="另一策略", first_response="12.5"),
               HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 400
    assert r.context["form"].errors["first_response"] == [
        "First response target: enter a whole number, such as 12 or 1,200."]
