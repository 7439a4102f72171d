"""The service desk's REST API: intake with deadlines on China's calendar, the lifecycle's refusals and
optimistic locking answered with 409, per-field 400s in the caller's language, callers' personal data
masked by role, the rep's scope, a pinned query count for the list, and the service settings (policies,
calendar overrides) writable only by administrators and managers, audited."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from pharmacrm.core.models import AuditEntry
from pharmacrm.servicedesk import services
from pharmacrm.servicedesk.models import CalendarOverride, SlaPolicy, Ticket

SH = ZoneInfo("Asia/Shanghai")
URL = "/api/v1/tickets/"


def at(y, m, d, hh=0, mm=0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SH)


@pytest.fixture
def raise_ticket(users, xiehe):
    def make(category="drug_info", received=None, user="agent", **extra):
        data = {"subject": "咨询用法", "channel": "phone", "category": category, "institution": xiehe,
                "received_at": received or at(2026, 3, 2, 9), **extra}  # fmt: skip
        return services.create_ticket(users[user], data)

    return make


# --- intake ----------------------------------------------------------------------------------------


def test_a_drug_information_call_before_the_spring_festival_gets_its_deadlines(api_for, xiehe):
    response = api_for("agent").post(
        URL,
        {"subject": "询问说明书用法用量", "channel": "phone", "category": "drug_info", "institution": xiehe.pk,
         "received_at": "2026-02-13T16:00:00+08:00", "description": "来电询问"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] == "TK-2026-000001" and body["status"] == "new"
    assert (body["category"], body["priority"], body["complexity"]) == ("drug_info", "normal", "general")
    assert body["institution"] == xiehe.pk and body["version"] == 1
    # Saturday 14 Feb is a swapped working day; Feb 15–23 are the Spring Festival holiday
    assert body["first_response_due_at"] == "2026-02-14T16:00:00+08:00"
    assert body["resolution_due_at"] == "2026-02-24T16:00:00+08:00"
    assert body["received_at"] == "2026-02-13T16:00:00+08:00"
    assert response["ETag"] == '"1"'
    assert AuditEntry.objects.filter(object_type="servicedesk.ticket", action="create").count() == 1


def test_the_creation_answer_is_what_reading_the_ticket_gives(api_for, users, xiehe):
    """The 201 answer is built from the objects intake wrote; it must equal a fresh read, also when the
    ticket was assigned on the way (a second rebuild of its clocks)."""
    client = api_for("agent")
    for extra in ({}, {"assignee": users["expert"].pk}, {"caller_name": "王先生", "caller_phone": "13812345678"}):
        created = client.post(URL, {"subject": "咨询", "channel": "phone", "category": "drug_info",
                                    "institution": xiehe.pk, **extra}, format="json")  # fmt: skip
        assert created.status_code == 201, created.content
        read = client.get(f"{URL}{created.json()['id']}/")
        assert created.json() == read.json()
        assert created["ETag"] == read["ETag"]


def test_a_medication_error_is_urgent_on_the_24x7_clock(api_for):
    response = api_for("agent").post(
        URL,
        {"subject": "患者误服双倍剂量", "channel": "phone", "category": "medication_error",
         "caller_name": "王小明", "caller_phone": "13912345678", "received_at": "2026-10-03T14:00:00+08:00"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["priority"], body["complexity"]) == ("urgent", "complex")
    # National Day holiday: the 24×7 clock runs anyway
    assert body["first_response_due_at"] == "2026-10-03T16:00:00+08:00"
    assert body["resolution_due_at"] == "2026-10-04T14:00:00+08:00"


def test_intake_errors_are_per_field_and_in_the_callers_language(api_for):
    body = {"subject": "", "channel": "fax", "category": "nonsense", "received_at": "2099-01-01T00:00:00+08:00"}
    response = api_for("agent", lang="en").post(URL, body, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert {"subject", "channel", "category"} <= set(errors)
    assert errors["channel"] == ['"fax" is not a valid choice.']
    # the service's own checks: no customer, a future time, a priority override without a reason
    body = {"subject": "问题", "channel": "phone", "category": "drug_info", "priority": "high",
            "received_at": "2099-01-01T00:00:00+08:00"}  # fmt: skip
    errors = api_for("agent", lang="en").post(URL, body, format="json").json()
    assert errors["received_at"] == ["A ticket cannot be received in the future."]
    assert errors["person"] == ["Name the customer, or the caller's name or phone number."]
    assert "reason" in errors["priority"][0]
    # a code that cannot exist is refused before it reaches the database (PostgreSQL refuses NUL characters)
    r = api_for("agent", lang="en").post(URL, {**body, "category": "drug\x00info"}, format="json")
    assert r.status_code == 400 and "category" in r.json()
    zh = api_for("agent", lang="zh-hans").post(URL, {**body, "priority": "normal"}, format="json").json()
    assert zh["received_at"][0] != "A ticket cannot be received in the future."  # translated (or at least not English)


def test_roles_without_the_capability_cannot_raise_tickets(api_for, xiehe):
    body = {"subject": "问题", "channel": "phone", "category": "drug_info", "institution": xiehe.pk}
    assert api_for("analyst").post(URL, body, format="json").status_code == 403
    assert api_for("auditor").post(URL, body, format="json").status_code == 403
    assert not Ticket.objects.exists()


def test_a_rep_cannot_raise_a_ticket_for_a_customer_outside_their_territory(api_for, ruijin):
    body = {"subject": "问题", "channel": "phone", "category": "drug_info", "institution": ruijin.pk}
    response = api_for("rep").post(URL, body, format="json")
    assert response.status_code == 400 and "institution" in response.json()


# --- lifecycle -------------------------------------------------------------------------------------


def test_a_ticket_goes_through_its_lifecycle(api_for, raise_ticket):
    ticket = raise_ticket()
    api = api_for("agent")
    r = api.post(f"{URL}{ticket.pk}/transition/", {"status": "in_progress", "version": 1}, format="json")
    assert r.status_code == 200, r.content
    assert (r.json()["status"], r.json()["version"]) == ("in_progress", 2)
    r = api.post(f"{URL}{ticket.pk}/transition/", {"status": "resolved", "version": 2}, format="json")
    assert r.status_code == 400 and "resolution_summary" in r.json()
    r = api.post(
        f"{URL}{ticket.pk}/transition/",
        {"status": "resolved", "version": 2, "resolution_summary": "已告知用法用量", "note": "电话回复",
         "root_cause": "usage"},
        format="json",
    )
    assert r.status_code == 200 and r.json()["resolution_summary"] == "已告知用法用量"
    kinds = [(e["kind"], e["to_status"]) for e in api.get(f"{URL}{ticket.pk}/events/").json()]
    assert kinds == [("created", "new"), ("status", "in_progress"), ("status", "resolved")]


def test_a_step_the_lifecycle_refuses_answers_409_with_a_reason(api_for, raise_ticket):
    ticket = raise_ticket()
    r = api_for("agent", lang="en").post(f"{URL}{ticket.pk}/transition/", {"status": "closed", "version": 1}, format="json")
    assert r.status_code == 409
    assert r.json()["detail"] == "A ticket that is “New” cannot become “Closed”."
    zh = api_for("agent", lang="zh-hans").post(f"{URL}{ticket.pk}/transition/", {"status": "closed", "version": 1}, format="json")
    assert zh.status_code == 409 and zh.json()["detail"] != r.json()["detail"]
    ticket.refresh_from_db()
    assert (ticket.status, ticket.version) == ("new", 1)


def test_a_stale_version_answers_409_with_the_current_one_and_changes_nothing(api_for, raise_ticket):
    ticket = raise_ticket()
    api = api_for("agent")
    assert api.post(f"{URL}{ticket.pk}/transition/", {"status": "in_progress", "version": 1}, format="json").status_code == 200
    r = api_for("expert").post(f"{URL}{ticket.pk}/transition/", {"status": "waiting", "version": 1}, format="json")
    assert r.status_code == 409 and r.json()["current_version"] == 2
    r = api_for("expert").post(
        f"{URL}{ticket.pk}/priority/", {"priority": "high", "reason": "患者投诉", "version": 1}, format="json"
    )
    assert r.status_code == 409 and r.json()["current_version"] == 2
    ticket.refresh_from_db()
    assert (ticket.status, ticket.priority, ticket.version) == ("in_progress", "normal", 2)
    # the version may also come as If-Match; without either it is a 400 on `version`
    r = api.post(f"{URL}{ticket.pk}/transition/", {"status": "waiting"}, format="json", HTTP_IF_MATCH='"2"')
    assert r.status_code == 200 and r.json()["status"] == "waiting"
    r = api.post(f"{URL}{ticket.pk}/transition/", {"status": "in_progress"}, format="json")
    assert r.status_code == 400 and "version" in r.json()


def test_changing_the_priority_recomputes_the_deadlines(api_for, raise_ticket):
    ticket = raise_ticket(received=at(2026, 3, 2, 9))
    r = api_for("agent").post(f"{URL}{ticket.pk}/priority/", {"priority": "urgent", "reason": "患者已出现不适", "version": 1},
                              format="json")  # fmt: skip
    assert r.status_code == 200, r.content
    assert r.json()["priority"] == "urgent"
    assert r.json()["first_response_due_at"] == "2026-03-02T11:00:00+08:00"
    r = api_for("agent", lang="en").post(f"{URL}{ticket.pk}/priority/", {"priority": "low", "version": 2}, format="json")
    assert r.status_code == 400 and set(r.json()) == {"reason"}


def test_assigning_a_new_ticket_makes_it_assigned(api_for, raise_ticket, users):
    ticket = raise_ticket()
    api = api_for("agent", lang="en")
    r = api.post(f"{URL}{ticket.pk}/assign/", {"assignee": users["analyst"].pk, "version": 1}, format="json")
    assert r.status_code == 400 and r.json() == {"assignee": ["This user cannot handle tickets."]}
    r = api.post(f"{URL}{ticket.pk}/assign/", {"assignee": users["expert"].pk, "version": 1}, format="json")
    assert r.status_code == 200, r.content
    assert (r.json()["assignee"], r.json()["status"]) == (users["expert"].pk, "assigned")
    version = r.json()["version"]
    r = api.post(f"{URL}{ticket.pk}/transition/", {"status": "resolved", "version": version, "resolution_summary": "已答复", "root_cause": "usage"},
                 format="json")  # fmt: skip
    r = api.post(f"{URL}{ticket.pk}/assign/", {"assignee": users["agent"].pk, "version": r.json()["version"]}, format="json")
    assert r.status_code == 409 and r.json()["detail"] == "Reopen the ticket before assigning it."


def test_the_first_response_meets_the_first_response_clock(api_for, raise_ticket):
    ticket = raise_ticket(received=at(2026, 3, 2, 9))
    r = api_for("agent").post(f"{URL}{ticket.pk}/respond/", {"channel": "phone", "summary": "已回电"}, format="json")
    assert r.status_code == 201 and r.json()["kind"] == "responded"
    clocks = {c["kind"]: c for c in api_for("agent").get(f"{URL}{ticket.pk}/clocks/").json()}
    assert clocks["first_response"]["fulfilled_at"] is not None
    assert clocks["resolution"]["fulfilled_at"] is None and clocks["resolution"]["calendar"] == "business"
    assert clocks["resolution"]["due_at"] == "2026-03-04T09:00:00+08:00"
    assert set(clocks["resolution"]) >= {"kind", "due_at", "warn_at", "paused", "breached_at", "fulfilled_at"}


def test_read_only_roles_may_read_but_not_act(api_for, raise_ticket):
    ticket = raise_ticket()
    for role in ("analyst", "auditor"):
        api = api_for(role)
        assert api.get(f"{URL}{ticket.pk}/").status_code == 200
        assert api.get(f"{URL}{ticket.pk}/events/").status_code == 200
        r = api.post(f"{URL}{ticket.pk}/transition/", {"status": "in_progress", "version": 1}, format="json")
        assert r.status_code == 403
    assert AuditEntry.objects.filter(action="access_denied").count() == 2


# --- personal data and scope -----------------------------------------------------------------------


def test_an_unidentified_callers_data_is_masked_unless_the_role_sees_personal_data(api_for, raise_ticket):
    ticket = raise_ticket(institution=None, caller_name="王小明", caller_phone="139 1234 5678")
    agent = api_for("agent").get(f"{URL}{ticket.pk}/").json()
    assert (agent["caller_name"], agent["caller_phone"], agent["caller_masked"]) == ("王**", "139****5678", True)
    listed = api_for("agent").get(URL).json()["results"][0]
    assert (listed["caller_name"], listed["caller_phone"]) == ("王**", "139****5678")
    assert not AuditEntry.objects.filter(action="read_personal").exists()
    kam = api_for("kam").get(f"{URL}{ticket.pk}/").json()
    assert (kam["caller_name"], kam["caller_phone"], kam["caller_masked"]) == ("王小明", "139 1234 5678", False)
    # an agent may reveal with a reason; every clear read is audited
    revealed = api_for("agent").get(f"{URL}{ticket.pk}/", {"reveal_reason": "回电核实"}).json()
    assert revealed["caller_name"] == "王小明"
    reads = AuditEntry.objects.filter(action="read_personal", object_type="servicedesk.ticket")
    assert reads.count() == 2 and {e.actor_name for e in reads} == {"kam", "agent"}
    assert api_for("analyst").get(f"{URL}{ticket.pk}/", {"reveal_reason": "想看"}).json()["caller_name"] == "王**"


def test_a_rep_sees_only_their_customers_tickets(api_for, raise_ticket, ruijin):
    mine = raise_ticket()  # 北京协和医院, in the rep's territory
    theirs = raise_ticket(institution=ruijin)  # Shanghai
    numbers = {t["number"] for t in api_for("rep").get(URL).json()["results"]}
    assert numbers == {mine.number}
    assert api_for("rep").get(f"{URL}{theirs.pk}/").status_code == 404
    r = api_for("rep").post(f"{URL}{theirs.pk}/transition/", {"status": "in_progress", "version": 1}, format="json")
    assert r.status_code == 404
    assert api_for("rep").get(f"{URL}{theirs.pk}/clocks/").status_code == 404
    assert {t["number"] for t in api_for("agent").get(URL).json()["results"]} == {mine.number, theirs.number}


# --- list: filters, ordering, queries --------------------------------------------------------------


def test_filters_and_ordering_by_next_deadline(api_for, raise_ticket, users):
    normal = raise_ticket(received=at(2026, 3, 2, 9))
    urgent = raise_ticket("medication_error", received=at(2026, 3, 3, 6))
    low = raise_ticket("service_attitude", received=at(2026, 3, 1, 9), assignee=users["expert"])
    api = api_for("agent")

    def numbers(**params):
        return [t["number"] for t in api.get(URL, params).json()["results"]]

    assert numbers() == [urgent.number, normal.number, low.number]  # newest first
    # first responses due: urgent 3 Mar 08:00 (2 h), low 3 Mar 08:30 (Sunday → Monday 08:30 + 1 day), normal 09:00
    assert numbers(ordering="next_deadline") == [urgent.number, low.number, normal.number]
    assert numbers(ordering="-next_deadline") == [normal.number, low.number, urgent.number]
    services.record_response(users["agent"], urgent)  # the resolution clock (4 Mar 06:00) is next
    assert numbers(ordering="next_deadline") == [low.number, normal.number, urgent.number]
    assert numbers(ordering="number") == [normal.number, urgent.number, low.number]
    assert numbers(priority="urgent") == [urgent.number]
    assert numbers(category="service_attitude") == [low.number]
    assert numbers(status="assigned", assignee=users["expert"].pk) == [low.number]
    assert numbers(received_after="2026-03-02T00:00:00+08:00", received_before="2026-03-03T00:00:00+08:00") == [
        normal.number
    ]
    assert numbers(channel="email") == []
    assert api.get(URL, {"status": "bogus"}).status_code == 400


def test_the_category_filter_includes_its_sub_categories_as_the_queue_does(api_for, raise_ticket, admin_user):
    """?category=complaint lists the 投诉 / 包装破损 tickets too: an integration counting complaints missed them."""
    from pharmacrm.servicedesk import policies

    parent = policies.create_category(admin_user, {
        "code": "complaint", "name": "投诉", "default_priority": "normal", "default_complexity": "general",
    })  # fmt: skip
    policies.create_category(admin_user, {
        "code": "complaint_package", "name": "包装破损", "parent": parent, "default_priority": "normal",
        "default_complexity": "general",
    })  # fmt: skip
    in_child, in_parent, elsewhere = raise_ticket("complaint_package"), raise_ticket("complaint"), raise_ticket()
    api = api_for("agent")

    def numbers(code):
        return sorted(t["number"] for t in api.get(URL, {"category": code}).json()["results"])

    assert numbers("complaint") == sorted([in_child.number, in_parent.number])
    assert numbers("complaint_package") == [in_child.number]
    assert elsewhere.number in numbers("drug_info") and numbers("no_such_category") == []


def test_the_list_runs_a_fixed_number_of_queries(api_for, raise_ticket):
    api = api_for("kam")  # sees callers in clear: the audit entry is part of the count
    raise_ticket(caller_name="李雷")
    api.get(URL)  # warm-up (token, roles, content types)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert api.get(URL).status_code == 200
        return len(ctx.captured_queries)

    few = count()
    for _ in range(6):
        raise_ticket(caller_name="李雷")
    assert count() == few
    # token + roles; count, tickets (with their category), clocks; the audit entry of the clear caller
    # data (chain head, insert, head update: no savepoint)
    assert few == 8


# --- categories, policies, calendars ---------------------------------------------------------------


def test_categories_are_listed_for_everyone(api_for):
    r = api_for("analyst").get("/api/v1/ticket-categories/")
    assert r.status_code == 200
    codes = [c["code"] for c in r.json()["results"]]
    assert codes[0] == "medication_error" and "drug_info" in codes
    one = api_for("agent").get("/api/v1/ticket-categories/medication_error/").json()
    assert (one["default_priority"], one["safety_relevant"]) == ("urgent", True)


def test_sla_policies_are_readable_by_all_and_changed_only_by_managers(api_for):
    policies = api_for("agent").get("/api/v1/sla-policies/").json()["results"]
    assert [p["calendar"] for p in policies] == ["always", "business", "business"]
    body = {"name": "VIP 紧急", "priority": "high", "customer_tier": "vip", "calendar": "business",
            "first_response": 4, "first_response_unit": "hours", "resolution": 1, "resolution_unit": "days",
            "position": 5}  # fmt: skip
    assert api_for("agent").post("/api/v1/sla-policies/", body, format="json").status_code == 403
    r = api_for("manager").post("/api/v1/sla-policies/", body, format="json")
    assert r.status_code == 201, r.content
    pk = r.json()["id"]
    assert AuditEntry.objects.filter(action="create", object_type="servicedesk.slapolicy", object_id=str(pk)).exists()
    r = api_for("manager", lang="en").patch(f"/api/v1/sla-policies/{pk}/", {"name": "一般问题（工作日）"}, format="json")
    assert r.status_code == 400 and "name" in r.json()
    r = api_for("manager").patch(f"/api/v1/sla-policies/{pk}/", {"first_response": 2}, format="json")
    assert r.status_code == 200 and r.json()["first_response"] == 2
    entry = AuditEntry.objects.filter(action="update", object_type="servicedesk.slapolicy").latest("seq")
    assert entry.changes == {"first_response": [4, 2]}
    assert api_for("manager").delete(f"/api/v1/sla-policies/{pk}/").status_code == 204
    assert SlaPolicy.objects.get(pk=pk).active is False


def test_the_last_catch_all_policy_cannot_be_switched_off(api_for):
    catch_all = SlaPolicy.objects.get(name="一般问题（工作日）")
    r = api_for("admin", lang="en").delete(f"/api/v1/sla-policies/{catch_all.pk}/")
    assert r.status_code == 409 and "At least one active policy" in r.json()["detail"]
    assert SlaPolicy.objects.get(pk=catch_all.pk).active


def test_calendar_overrides_are_set_and_removed_by_administrators_and_audited(api_for, raise_ticket):
    url = "/api/v1/calendars/business/overrides/"
    cal = api_for("agent").get("/api/v1/calendars/business/").json()
    assert cal["time_zone"] == "Asia/Shanghai" and cal["windows"] == [["08:30", "12:00"], ["13:30", "17:30"]]
    body = {"date": "2027-02-08", "working": False, "note": "2027 春节"}
    assert api_for("agent").post(url, body, format="json").status_code == 403
    r = api_for("admin").post(url, body, format="json")
    assert r.status_code == 201 and r.json() == body
    assert [o["date"] for o in api_for("agent").get(url, {"year": 2027}).json()] == ["2027-02-08"]
    assert AuditEntry.objects.filter(object_type="servicedesk.businesscalendar", action="update").count() == 1
    assert api_for("manager").delete(f"{url}2027-02-09/").status_code == 404
    assert api_for("agent").delete(f"{url}2027-02-08/").status_code == 403
    assert api_for("manager").delete(f"{url}2027-02-08/").status_code == 204
    assert not CalendarOverride.objects.exists()
    assert AuditEntry.objects.filter(object_type="servicedesk.businesscalendar", action="update").count() == 2
    r = api_for("admin", lang="en").post(url, {"date": "2027-02-30", "working": "maybe"}, format="json")
    assert r.status_code == 400 and {"date", "working"} <= set(r.json())


def test_the_schema_describes_the_service_desk(client):
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    for path in ("/api/v1/tickets/", "/api/v1/tickets/{id}/transition/", "/api/v1/tickets/{id}/clocks/",
                 "/api/v1/ticket-categories/", "/api/v1/sla-policies/{id}/",
                 "/api/v1/calendars/{code}/overrides/{date}/"):  # fmt: skip
        assert path in paths, path


def test_resolving_through_the_api_needs_the_root_cause(api_for, users):
    from pharmacrm.servicedesk import services as sd

    ticket = sd.create_ticket(
        users["agent"], {"subject": "咨询", "channel": "phone", "category": "drug_info", "caller_name": "王先生"}
    )
    api = api_for("agent")
    r = api.post(f"/api/v1/tickets/{ticket.pk}/transition/",
                 {"status": "resolved", "version": ticket.version, "resolution_summary": "已答复"}, format="json")  # fmt: skip
    assert r.status_code == 400 and "root_cause" in r.json()
    r = api.post(f"/api/v1/tickets/{ticket.pk}/transition/",
                 {"status": "resolved", "version": ticket.version, "resolution_summary": "已答复",
                  "root_cause": "information"}, format="json")  # fmt: skip
    assert r.status_code == 200 and r.json()["root_cause"] == "information"
    r = api.post(f"/api/v1/tickets/{ticket.pk}/transition/",
                 {"status": "informed", "version": r.json()["version"], "informed_channel": "email"}, format="json")  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] == "informed"
