"""Links between tickets and the merge of duplicates: refusals, history on both tickets, the duplicate
closed with its clocks met, its messages kept where they were and shown on the ticket that stays."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.services import ConflictError
from pharmacrm.servicedesk import linking, services
from pharmacrm.servicedesk.choices import EventKind, LinkKind, MessageKind, Status
from pharmacrm.servicedesk.models import SlaClock, Ticket, TicketEvent, TicketLink, TicketMessage

pytestmark = pytest.mark.usefixtures("english")  # the assertions read the English source messages


@pytest.fixture
def ruijin_ticket(users, ruijin):
    """A ticket of a Shanghai hospital, outside the sales rep's territory."""
    return services.create_ticket(
        users["agent"],
        {"subject": "瑞金的问题", "channel": "phone", "category": "drug_info", "institution": ruijin},
    )


def kinds(ticket) -> list[str]:
    return list(TicketEvent.objects.filter(ticket=ticket).order_by("at", "id").values_list("kind", flat=True))


def test_a_link_shows_on_both_tickets_and_is_recorded_in_both_histories(users, raise_ticket):
    a, b = raise_ticket("甲"), raise_ticket("乙")
    link = linking.link(users["agent"], a, b)
    assert (link.from_ticket, link.to_ticket, link.kind) == (a, b, LinkKind.RELATED)
    assert list(linking.links_of(a)) == [link] and list(linking.links_of(b)) == [link]
    assert EventKind.LINKED in kinds(a) and EventKind.LINKED in kinds(b)
    event = TicketEvent.objects.get(ticket=b, kind=EventKind.LINKED)
    assert event.data["ticket"] == a.number and event.actor == users["agent"]
    assert AuditEntry.objects.filter(object_type="servicedesk.ticketlink", action="create").count() == 1


def test_a_ticket_is_never_linked_to_itself(users, raise_ticket):
    a = raise_ticket()
    with pytest.raises(ValidationError) as e:
        linking.link(users["agent"], a, a)
    assert "itself" in e.value.message_dict["to_ticket"][0]


def test_a_pair_is_linked_once_whichever_way_round(users, raise_ticket):
    a, b = raise_ticket("甲"), raise_ticket("乙")
    linking.link(users["agent"], a, b, LinkKind.DUPLICATE)
    for x, y, kind in ((a, b, LinkKind.RELATED), (b, a, LinkKind.DUPLICATE), (b, a, LinkKind.RELATED)):
        with pytest.raises(ValidationError) as e:
            linking.link(users["agent"], x, y, kind)
        assert "already linked" in e.value.message_dict["to_ticket"][0]
    assert TicketLink.objects.count() == 1


def test_a_ticket_the_user_may_not_see_cannot_be_linked(users, raise_ticket, ruijin_ticket):
    mine = raise_ticket(user="rep")
    with pytest.raises(ValidationError) as e:
        linking.link(users["rep"], mine, ruijin_ticket)
    assert "may not see" in e.value.message_dict["to_ticket"][0]
    assert not TicketLink.objects.exists()


def test_roles_without_ticket_handling_cannot_link(users, raise_ticket):
    a, b = raise_ticket("甲"), raise_ticket("乙")
    for role in ("auditor", "analyst", "pv"):
        with pytest.raises(PermissionDenied):
            linking.link(users[role], a, b)


def test_unlink_removes_the_link_and_says_so_in_both_histories(users, raise_ticket):
    a, b = raise_ticket("甲"), raise_ticket("乙")
    linking.unlink(users["agent"], linking.link(users["agent"], a, b))
    assert not TicketLink.objects.exists()
    removed = TicketEvent.objects.filter(kind=EventKind.LINKED, data__removed=True)
    assert sorted(removed.values_list("ticket_id", flat=True)) == sorted([a.pk, b.pk])


def test_merge_closes_the_duplicate_with_its_clocks_met_and_keeps_its_history(users, raise_ticket):
    into, dup = raise_ticket("原单"), raise_ticket("重复单")
    TicketMessage.objects.create(ticket=dup, kind=MessageKind.NOTE, author=users["agent"], body="客户又打来电话")
    linking.link(users["agent"], dup, into)  # a related link becomes the merge's duplicate link
    events_before = TicketEvent.objects.filter(ticket=dup).count()

    linking.merge(users["agent"], dup, into, reason="同一客户同一问题", version=dup.version)

    dup = Ticket.objects.get(pk=dup.pk)
    assert dup.merged_into == into and dup.status == Status.CLOSED and dup.next_due_at is None
    assert dup.resolution_summary.startswith(f"Merged into {into.number}") and dup.root_cause == "other"
    clocks = SlaClock.objects.filter(ticket=dup)
    assert clocks.count() == 2
    assert all(c.fulfilled_at is not None and c.next_check_at is None and c.breached_at is None for c in clocks)
    # history kept: the old events stay, the lifecycle steps and the merge are added
    assert TicketEvent.objects.filter(ticket=dup).count() > events_before
    assert [e for e in kinds(dup) if e in ("status", "merged")][-3:] == ["status", "status", "merged"]
    assert TicketEvent.objects.get(ticket=into, kind=EventKind.MERGED).data == {
        "from": dup.number, "reason": "同一客户同一问题"
    }
    # nothing moves: the message stays on the duplicate
    assert TicketMessage.objects.get(body="客户又打来电话").ticket_id == dup.pk
    link = TicketLink.objects.get()
    assert (link.from_ticket_id, link.to_ticket_id, link.kind) == (dup.pk, into.pk, LinkKind.DUPLICATE)
    entry = AuditEntry.objects.filter(action="merge", object_type="servicedesk.ticket").get()
    assert entry.changes["merged_into"] == [None, into.number]
    # the ticket that stays is untouched otherwise
    assert Ticket.objects.get(pk=into.pk).status == into.status


def test_the_link_of_a_merge_cannot_be_removed(users, raise_ticket):
    into, dup = raise_ticket("原单"), raise_ticket("重复单")
    linking.merge(users["agent"], dup, into, reason="重复")
    with pytest.raises(ValidationError):
        linking.unlink(users["agent"], TicketLink.objects.get())


def test_merge_refusals(users, raise_ticket):
    agent = users["agent"]
    a, b, c = raise_ticket("甲"), raise_ticket("乙"), raise_ticket("丙")

    def refused(dup, into, text, **kw):
        with pytest.raises(ValidationError) as e:
            linking.merge(agent, dup, into, reason=kw.pop("reason", "重复"), **kw)
        key = "reason" if "reason" in e.value.message_dict else "into"
        assert text in e.value.message_dict[key][0], e.value.message_dict

    refused(a, a, "itself")
    refused(a, b, "Say why", reason="  ")
    linking.merge(agent, b, c, reason="重复")
    b.refresh_from_db()
    refused(a, b, "was itself merged")  # no chains
    refused(b, a, "already merged")
    refused(c, a, "Other tickets were merged into this one")
    services.transition(agent, a, Status.RESOLVED, resolution_summary="已答复", root_cause="no_fault")
    services.transition(agent, a, Status.CLOSED)
    d = raise_ticket("丁")
    refused(d, a, "closed")
    assert Ticket.objects.filter(merged_into__isnull=False).count() == 1


def test_merge_with_a_stale_version_is_a_conflict(users, raise_ticket):
    into, dup = raise_ticket("原单"), raise_ticket("重复单")
    stale = dup.version
    services.change_priority(users["agent"], Ticket.objects.get(pk=dup.pk), "high", reason="客户着急")
    with pytest.raises(ConflictError):
        linking.merge(users["agent"], dup, into, reason="重复", version=stale)
    assert Ticket.objects.get(pk=dup.pk).merged_into is None


def test_a_resolved_duplicate_is_closed_and_a_closed_one_stays_closed(users, raise_ticket):
    agent = users["agent"]
    into, resolved, closed = raise_ticket("原单"), raise_ticket("已解决"), raise_ticket("已关闭")
    services.transition(agent, resolved, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    services.transition(agent, closed, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    services.transition(agent, closed, Status.CLOSED)
    linking.merge(agent, resolved, into, reason="重复")
    linking.merge(agent, Ticket.objects.get(pk=closed.pk), into, reason="重复")
    for t in (resolved, closed):
        t.refresh_from_db()
        assert (t.status, t.merged_into_id, t.root_cause) == (Status.CLOSED, into.pk, "usage")


def test_the_surviving_ticket_page_shows_the_link_and_the_merged_messages(users, client_for, raise_ticket, settings):
    settings.LANGUAGE_CODE = "en"
    into, dup = raise_ticket("原单"), raise_ticket("重复单")
    TicketMessage.objects.create(ticket=dup, kind=MessageKind.INBOUND, body="第二次来信：药品批号 A123")
    linking.merge(users["agent"], dup, into, reason="重复")
    page = client_for("agent").get(f"/service/tickets/{into.pk}/").content.decode()
    assert dup.number in page and "Duplicated by" in page and "第二次来信：药品批号 A123" in page
    page = client_for("agent").get(f"/service/tickets/{dup.pk}/").content.decode()
    assert "This ticket was merged into" in page and into.number in page


def test_link_and_merge_from_the_ticket_page(users, client_for, raise_ticket, settings):
    settings.LANGUAGE_CODE = "en"
    into, dup, other = raise_ticket("原单"), raise_ticket("重复单"), raise_ticket("相关")
    agent = client_for("agent")
    url = f"/service/tickets/{into.pk}/links/"
    r = agent.post(url, {"link-to_ticket": other.number.lower(), "link-kind": "related"})
    assert r.status_code == 302 and TicketLink.objects.filter(from_ticket=into, to_ticket=other).exists()
    r = agent.post(f"/service/tickets/{into.pk}/links/", {"link-to_ticket": into.number, "link-kind": "related"})
    assert r.status_code == 400 and "cannot be linked to itself" in r.content.decode()
    r = agent.post(f"/service/tickets/{dup.pk}/merge/",
                   {"merge-into": into.number, "merge-reason": "重复", "merge-version": dup.version - 1 or 99})
    assert r.status_code == 409 and "Someone else changed this ticket" in r.content.decode()
    r = agent.post(f"/service/tickets/{dup.pk}/merge/",
                   {"merge-into": into.number, "merge-reason": "重复", "merge-version": dup.version})
    assert r.status_code == 302 and r["Location"].startswith(f"/service/tickets/{into.pk}/")
    assert Ticket.objects.get(pk=dup.pk).merged_into_id == into.pk
    link = TicketLink.objects.get(from_ticket=into, to_ticket=other)
    assert agent.post(f"/service/tickets/{into.pk}/links/{link.pk}/remove/").status_code == 302
    assert not TicketLink.objects.filter(pk=link.pk).exists()


def test_a_ticket_number_typed_in_full_width_links_and_merges(users, client_for, raise_ticket):
    """ＴＫ－２０２６－０００１２３ (a Chinese input method in full-width mode) is the same number."""
    into, dup, other = raise_ticket("原单"), raise_ticket("重复单"), raise_ticket("相关")
    wide = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}
    agent = client_for("agent")
    r = agent.post(f"/service/tickets/{into.pk}/links/",
                   {"link-to_ticket": other.number.translate(wide), "link-kind": "related"})  # fmt: skip
    assert r.status_code == 302 and TicketLink.objects.filter(from_ticket=into, to_ticket=other).exists()
    r = agent.post(f"/service/tickets/{dup.pk}/merge/", {"merge-into": into.number.replace("-", "－"),
                                                       "merge-reason": "重复", "merge-version": dup.version})  # fmt: skip
    assert r.status_code == 302 and Ticket.objects.get(pk=dup.pk).merged_into_id == into.pk


@pytest.mark.parametrize("role", ["auditor", "analyst", "pv"])
def test_read_only_roles_cannot_link_or_merge_from_the_page(role, users, client_for, raise_ticket):
    a, b = raise_ticket("甲"), raise_ticket("乙")
    c = client_for(role)
    assert c.post(f"/service/tickets/{a.pk}/links/", {"link-to_ticket": b.number}).status_code == 403
    assert c.post(f"/service/tickets/{a.pk}/merge/", {"merge-into": b.number, "merge-reason": "x",
                                                      "merge-version": a.version}).status_code == 403  # fmt: skip
    assert c.post("/service/bulk/", {"bulk-action": "close", "ticket": [a.pk]}).status_code == 403
    assert not TicketLink.objects.exists()


def test_a_rep_cannot_reach_a_ticket_outside_their_scope_from_the_page(users, client_for, raise_ticket, ruijin_ticket):
    mine = raise_ticket(user="rep")
    c = client_for("rep")
    r = c.post(f"/service/tickets/{mine.pk}/links/", {"link-to_ticket": ruijin_ticket.number, "link-kind": "related"})
    assert r.status_code == 400 and not TicketLink.objects.exists()
    assert c.post(f"/service/tickets/{ruijin_ticket.pk}/merge/", {"merge-into": mine.number, "merge-reason": "x",
                  "merge-version": ruijin_ticket.version}).status_code == 404  # fmt: skip
