"""Bulk actions: each ticket changed on its own through the ordinary services (history, audit, clocks),
the outcome reported per ticket — done, refused with the reason, a conflict — and tickets the user may
not see left alone."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from pharmacrm.core.models import AuditEntry
from pharmacrm.servicedesk import bulk, services
from pharmacrm.servicedesk.choices import EventKind, Status
from pharmacrm.servicedesk.models import Ticket, TicketEvent


@pytest.fixture(autouse=True)
def english(settings):
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


def outcomes(result) -> dict[int, str]:
    return {o.ticket_id: o.outcome for o in result}


def test_bulk_assign_changes_each_ticket_with_its_own_history_and_audit(users, raise_ticket):
    tickets = [raise_ticket(f"问题{i}") for i in range(3)]
    audits = AuditEntry.objects.filter(object_type="servicedesk.ticket", action="update").count()
    result = bulk.bulk(users["agent"], [t.pk for t in tickets], "assign", {"assignee": users["expert"]})
    assert [o.outcome for o in result] == ["done"] * 3
    assert [o.number for o in result] == [t.number for t in tickets]
    for t in tickets:
        t.refresh_from_db()
        assert (t.assignee, t.status) == (users["expert"], Status.ASSIGNED)
        assert TicketEvent.objects.filter(ticket=t, kind=EventKind.ASSIGNED).count() == 1
    assert AuditEntry.objects.filter(object_type="servicedesk.ticket", action="update").count() == audits + 3


def test_a_refusal_and_a_conflict_are_reported_per_ticket_and_the_others_are_done(users, raise_ticket):
    agent = users["agent"]
    fine, stale, done_already = raise_ticket("正常"), raise_ticket("过期"), raise_ticket("已解决")
    services.transition(agent, done_already, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    old_version = stale.version
    services.change_priority(agent, stale, "high", reason="客户着急")  # someone else saved it meanwhile
    result = bulk.bulk(agent, [fine.pk, stale.pk, done_already.pk], "status", {"status": Status.IN_PROGRESS},
                       versions={str(stale.pk): old_version})  # fmt: skip
    assert outcomes(result) == {fine.pk: "done", stale.pk: "conflict", done_already.pk: "done"}
    # resolved → in progress is a reopen, allowed; now refuse one: waiting → waiting is not a step
    result = bulk.bulk(agent, [fine.pk, stale.pk], "status", {"status": Status.WAITING})
    assert outcomes(result) == {fine.pk: "done", stale.pk: "done"}
    result = bulk.bulk(agent, [fine.pk], "status", {"status": Status.WAITING})
    assert result[0].outcome == "refused" and "cannot become" in result[0].message
    assert Ticket.objects.get(pk=stale.pk).priority == "high"


def test_tickets_the_user_may_not_see_are_not_touched(users, raise_ticket, ruijin):
    mine = raise_ticket("北京", user="rep")
    hidden = raise_ticket("上海", institution=ruijin)
    before = TicketEvent.objects.filter(ticket=hidden).count()
    result = bulk.bulk(users["rep"], [hidden.pk, mine.pk, 987654], "priority", {"priority": "low", "reason": "不急"})
    assert outcomes(result) == {hidden.pk: "not_found", mine.pk: "done", 987654: "not_found"}
    assert result[0].number == ""  # nothing about a hidden ticket is told
    hidden.refresh_from_db()
    assert hidden.priority == "normal" and TicketEvent.objects.filter(ticket=hidden).count() == before


def test_priority_needs_a_reason_and_nothing_changes_without_it(users, raise_ticket):
    t = raise_ticket()
    with pytest.raises(ValidationError) as e:
        bulk.bulk(users["agent"], [t.pk], "priority", {"priority": "high", "reason": " "})
    assert "reason" in e.value.message_dict
    assert Ticket.objects.get(pk=t.pk).priority == "normal"


def test_close_resolves_open_tickets_when_given_a_summary_and_refuses_without(users, raise_ticket):
    agent = users["agent"]
    open_one, resolved, closed = raise_ticket("开"), raise_ticket("解"), raise_ticket("关")
    for t in (resolved, closed):
        services.transition(agent, t, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    services.transition(agent, closed, Status.CLOSED)
    result = bulk.bulk(agent, [open_one.pk, resolved.pk, closed.pk], "close", {})
    assert outcomes(result) == {open_one.pk: "refused", resolved.pk: "done", closed.pk: "refused"}
    assert "still open" in result[0].message and "already closed" in result[2].message
    result = bulk.bulk(agent, [open_one.pk], "close", {"resolution_summary": "重复咨询，已电话答复",
                                                       "root_cause": "information"})  # fmt: skip
    assert result[0].outcome == "done"
    open_one.refresh_from_db()
    assert (open_one.status, open_one.root_cause, open_one.next_due_at) == (Status.CLOSED, "information", None)
    steps = TicketEvent.objects.filter(ticket=open_one, kind=EventKind.STATUS).values_list("to_status", flat=True)
    assert list(steps)[-2:] == [Status.RESOLVED, Status.CLOSED]


def test_limits_and_roles(users, raise_ticket):
    t = raise_ticket()
    with pytest.raises(ValidationError):
        bulk.bulk(users["agent"], list(range(1, bulk.MAX_TICKETS + 2)), "close", {})
    with pytest.raises(ValidationError):
        bulk.bulk(users["agent"], [], "close", {})
    with pytest.raises(ValidationError):
        bulk.bulk(users["agent"], [t.pk], "explode", {})
    for role in ("auditor", "analyst", "pv"):
        with pytest.raises(PermissionDenied):
            bulk.bulk(users[role], [t.pk], "close", {})


def test_the_queue_offers_bulk_selection_and_the_result_page_lists_each_ticket(users, client_for, raise_ticket):
    a, b = raise_ticket("甲", assignee=users["agent"]), raise_ticket("乙", assignee=users["agent"])
    agent = client_for("agent")
    page = agent.get("/service/").content.decode()
    assert f'name="ticket" value="{a.pk}"' in page and 'id="bulk"' in page and "js/keys.js" in page
    r = agent.post("/service/bulk/", {
        "bulk-action": "priority", "bulk-priority": "high", "bulk-reason": "批量调整",
        "ticket": [a.pk, b.pk], f"version-{a.pk}": a.version, f"version-{b.pk}": b.version - 1,
        "next": "/service/?queue=mine",
    })  # fmt: skip
    body = r.content.decode()
    assert r.status_code == 200 and 'data-outcome="done"' in body and 'data-outcome="conflict"' in body
    assert 'href="/service/?queue=mine"' in body
    assert Ticket.objects.get(pk=a.pk).priority == "high" and Ticket.objects.get(pk=b.pk).priority == "normal"
    r = agent.post("/service/bulk/", {"bulk-action": "priority", "bulk-priority": "high", "ticket": [a.pk],
                                      "next": "https://evil.example/"})  # fmt: skip
    assert r.status_code == 400 and "Give a reason" in r.content.decode() and "evil" not in r.content.decode()


def test_other_ticket_lists_have_no_checkboxes(users, client_for, raise_ticket, xiehe):
    a, b = raise_ticket("甲"), raise_ticket("乙")
    page = client_for("agent").get(f"/service/tickets/{a.pk}/").content.decode()
    assert b.number in page and 'name="ticket"' not in page


def test_the_queue_search_finds_a_ticket_by_number_or_subject(users, client_for, raise_ticket):
    a = raise_ticket("头孢过敏咨询", assignee=users["agent"])
    b = raise_ticket("配送延迟", assignee=users["agent"])
    agent = client_for("agent")
    page = agent.get("/service/", {"q": a.number.lower()}).content.decode()
    assert a.number in page and b.number not in page
    page = agent.get("/service/", {"q": "配送"}).content.decode()
    assert b.number in page and a.number not in page


def test_the_queue_search_reads_words_typed_in_traditional_characters(users, client_for, raise_ticket):
    """An agent typing with a Traditional input method (膠囊破損) finds the ticket written in Simplified (胶囊破损)."""
    a = raise_ticket("胶囊破损投诉", assignee=users["agent"])
    b = raise_ticket("配送延迟", assignee=users["agent"])
    page = client_for("agent").get("/service/", {"q": "膠囊破損"}).content.decode()
    assert a.number in page and b.number not in page


def test_the_queue_search_finds_a_ticket_number_typed_in_full_width(users, client_for, raise_ticket):
    """A Chinese input method left in full-width mode types ＴＫ－２０２６－０００１２３: the same number."""
    a = raise_ticket("头孢过敏咨询", assignee=users["agent"])
    b = raise_ticket("配送延迟", assignee=users["agent"])
    wide = a.number.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    assert wide != a.number
    for typed in (wide, a.number.replace("-", "－"), f"  {a.number.lower()}\u3000"):
        page = client_for("agent").get("/service/", {"q": typed}).content.decode()
        assert a.number in page and b.number not in page, typed


def test_a_bulk_action_sent_without_an_action_names_the_field(users, client_for, raise_ticket):
    """Sent with no action chosen, the page said "Nothing was changed: This field is required." without saying
    which field; it names it, as every other form error does."""
    a = raise_ticket("甲", assignee=users["agent"])
    r = client_for("agent").post("/service/bulk/", {"bulk-action": "", "ticket": [a.pk]})
    body = r.content.decode()
    assert r.status_code == 400
    assert "<p>Action: This field is required.</p>" in body
    r = client_for("agent").post("/service/bulk/", {"bulk-action": "priority", "bulk-priority": "high",
                                                    "ticket": [a.pk]})  # fmt: skip
    assert "<p>Reason (priority): Give a reason for the change.</p>" in r.content.decode()


def test_the_bulk_status_menu_offers_only_statuses_a_change_can_set(users, client_for, api_for, raise_ticket):
    """The menu offered "New", which every ticket then refused ("cannot become New"): no step of the lifecycle
    leads back to it. It is no longer offered, and sent anyway (a stale page, the API) it is refused as a whole
    before any ticket is touched."""
    import re

    a = raise_ticket("甲", assignee=users["agent"])
    events = TicketEvent.objects.filter(ticket=a).count()
    agent = client_for("agent")
    page = agent.get("/service/").content.decode()
    menu = re.search(r'<select name="bulk-status".*?</select>', page, re.S).group(0)
    offered = re.findall(r'<option value="([^"]*)"', menu)
    assert "new" not in offered
    assert set(offered) == {"", "assigned", "in_progress", "waiting", "resolved", "informed", "closed"}
    r = agent.post("/service/bulk/", {"bulk-action": "status", "bulk-status": "new", "ticket": [a.pk]})
    assert r.status_code == 400 and "New status: Select a valid choice." in r.content.decode()
    with pytest.raises(ValidationError) as e:
        bulk.bulk(users["agent"], [a.pk], "status", {"status": Status.NEW})
    assert e.value.message_dict == {"status": ["No ticket can be set back to “New”."]}
    r = api_for("agent").post("/api/v1/ticket-bulk/", {"tickets": [a.pk], "action": "status", "status": "new"},
                              format="json")  # fmt: skip
    assert r.status_code == 400 and "status" in r.json(), r.content
    assert Ticket.objects.get(pk=a.pk).status == Status.ASSIGNED
    assert TicketEvent.objects.filter(ticket=a).count() == events
