"""Session 38 review: replies whose delivery failed for good before session 37 get their 'Reply not delivered'
entry (data migration 0016); the customer pages' ticket table marks a provisional deadline as the queue does; a
breach disproved when a reopened ticket is counted again is withdrawn."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.core.management.sql import emit_post_migrate_signal
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.utils import translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.servicedesk import conversation, services
from pharmacrm.servicedesk.choices import ClockKind, Delivery, EventKind, MessageKind, Status
from pharmacrm.servicedesk.models import SlaClock, TicketEvent, TicketMessage
from tests.servicedesk.test_qa_round37 import EXPLAINED, marks

AFTER = ("servicedesk", "0016_backfill_undelivered_replies")

# --- the customer pages' ticket table marks a provisional deadline as the queue does ---------------------------------


def test_the_customer_pages_ticket_table_marks_a_provisional_deadline(users, xiehe, client_for, api_for):
    """The 360 page of a customer listed its tickets' next deadline as firm, though the queue's badge and the board
    mark a deadline counted into a year whose holidays nobody entered (2027) as provisional."""
    from tests.servicedesk.test_review36_calendar import new_years_eve_ticket

    ticket = new_years_eve_ticket(users, xiehe)
    other = services.create_ticket(users["agent"], {"subject": "另一咨询", "channel": "phone",
                                                     "category": "drug_info", "institution": xiehe})  # fmt: skip
    agent = client_for("agent")
    page = agent.get(f"/customers/institutions/{xiehe.pk}/").content.decode()
    table = page.split('id="tickets"')[1].split("</section>")[0]
    assert ticket.number in table and other.number in table
    assert marks(table) == [("2027", EXPLAINED % "2027")]  # the queue's mark, on the 2027 ticket's row only
    row = table.split(ticket.number)[1].split("</tr>")[0]
    assert "暂定</span>" in row
    # the ticket page's other tickets of the customer (the same table) say so too
    other_page = agent.get(f"/service/tickets/{other.pk}/").content.decode()
    assert marks(other_page.split(ticket.number)[1].split("</tr>")[0]) == [("2027", EXPLAINED % "2027")]

    admin = api_for("admin")
    for day in ("2027-01-01", "2027-02-06", "2027-10-01"):  # the year entered: nothing is provisional any more
        assert admin.post("/api/v1/calendars/business/overrides/", {"date": day, "working": False},
                          format="json").status_code == 201  # fmt: skip
    services.refresh_pending()
    page = agent.get(f"/customers/institutions/{xiehe.pk}/").content.decode()
    assert ticket.number in page and marks(page) == []


# --- replies that failed for good before session 37: the migration records them as a failure today ---------------


def response_clock(ticket) -> SlaClock:
    return SlaClock.objects.get(ticket=ticket, kind=ClockKind.FIRST_RESPONSE)


def replied(users, xiehe, subject: str):
    """A ticket with a customer's address and the agent's reply e-mailed to it (the first response)."""
    ticket = services.create_ticket(users["agent"], {"subject": subject, "channel": "phone", "category": "drug_info",
                                                     "institution": xiehe, "reply_email": "customer@hospital.test"})
    reply = conversation.post_message(users["agent"], ticket, kind=MessageKind.REPLY, body="请饭后服用。")
    assert response_clock(ticket).fulfilled_at == reply.created_at
    return ticket, reply


def failed_before_session_37(reply) -> None:
    """What the worker stored when it gave up on a reply (or a bounce came back) before session 37: the state
    alone, no 'Reply not delivered' entry, the reply still the first response."""
    TicketMessage.objects.filter(pk=reply.pk).update(delivery=Delivery.GAVE_UP, last_error="550 No such user here")


def ticket_audit(ticket) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(object_type="servicedesk.ticket", object_id=str(ticket.pk),
                                          extra__reason=services.BACKFILL_REASON))  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_replies_that_failed_before_session_37_are_recorded_by_the_migration(users, xiehe, client_for, settings):
    """A reply refused for good before session 37 had no 'Reply not delivered' entry and still met its ticket's
    first response: the deadline read 'met' while the customer never had an answer. Migrating (Django's migration
    executor, then the end of `migrate`) records the entry as a failure today would: the open ticket's first
    response is open again, audited; a closed ticket keeps the first response it was judged with (closed records
    are frozen), the entry saying so; a failure already recorded is not recorded twice; a second run does nothing."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    open_ticket, open_reply = replied(users, xiehe, "咨询用法")
    closed_ticket, closed_reply = replied(users, xiehe, "咨询储存")
    recorded_ticket, recorded_reply = replied(users, xiehe, "咨询剂量")
    for reply in (open_reply, closed_reply, recorded_reply):
        failed_before_session_37(reply)
    services.reply_undelivered(recorded_reply)  # failed in session 37: recorded already
    for status in (Status.RESOLVED, Status.CLOSED):
        closed_ticket.refresh_from_db()
        services.transition(users["agent"], closed_ticket, status, version=closed_ticket.version,
                            resolution_summary="已电话告知", root_cause="usage")  # fmt: skip
    judged = SlaClock.objects.filter(ticket=closed_ticket).values().get(kind=ClockKind.FIRST_RESPONSE)
    assert judged["fulfilled_at"] == closed_reply.created_at and judged["breached_at"] is None
    assert response_clock(open_ticket).fulfilled_at == open_reply.created_at  # the bug: still met

    # a database that has every migration but this one (0016 only notes work: nothing of the schema depends on it);
    # migrating back to 0015 and forth unapplied and applied again every migration of every app after it, 35 s
    MigrationRecorder(connection).record_unapplied(*AFTER)
    executor = MigrationExecutor(connection)
    assert executor.migration_plan([AFTER]) == [(executor.loader.get_migration(*AFTER), False)]
    executor.migrate([AFTER])
    emit_post_migrate_signal(verbosity=0, interactive=False, db=connection.alias)  # what `migrate` does at its end

    # the open ticket: the entry, its first response open again (the sweep watches it), audited
    event = TicketEvent.objects.get(ticket=open_ticket, kind=EventKind.UNDELIVERED)
    assert event.data["message"] == open_reply.pk and event.data["backfilled"] is True
    assert event.data["withdrawn"] == open_reply.created_at.isoformat() and "kept" not in event.data
    clock = response_clock(open_ticket)
    assert clock.fulfilled_at is None and clock.next_check_at is not None
    open_ticket.refresh_from_db()
    assert open_ticket.next_due_at == clock.due_at
    [entry] = ticket_audit(open_ticket)
    assert entry.changes == {"responded": [open_reply.created_at.isoformat(), None]} and entry.actor_name == "system"
    with translation.override("en"):
        page = client_for("agent").get(f"/service/tickets/{open_ticket.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    page = page.content.decode()
    assert "The reply did not reach the customer: it no longer meets the first-response deadline" in page
    assert "Recorded afterwards: the delivery failed for good before such failures were kept in the history." in page
    # past its deadline, it is breached like any other
    services.sweep(clock.due_at + dt.timedelta(minutes=1))
    assert response_clock(open_ticket).breached_at == clock.due_at

    # the closed ticket: the entry, saying why its first response stays as judged; the clock as it was
    event = TicketEvent.objects.get(ticket=closed_ticket, kind=EventKind.UNDELIVERED)
    assert event.data == {"message": closed_reply.pk, "backfilled": True, "kept": True}
    assert SlaClock.objects.filter(ticket=closed_ticket).values().get(kind=ClockKind.FIRST_RESPONSE) == judged
    [entry] = ticket_audit(closed_ticket)
    assert entry.changes == {"undelivered": [None, closed_reply.pk]} and entry.extra["kept"] is True
    page = client_for("agent").get(f"/service/tickets/{closed_ticket.pk}/").content.decode()
    assert "工单已解决或已关闭：其首次响应保持当时的判定。" in page
    # reopened, the ticket keeps the first response it was judged with
    closed_ticket.refresh_from_db()
    services.transition(users["agent"], closed_ticket, Status.IN_PROGRESS, version=closed_ticket.version)
    assert response_clock(closed_ticket).fulfilled_at == closed_reply.created_at

    # the failure recorded in session 37: one entry, as before
    assert TicketEvent.objects.filter(ticket=recorded_ticket, kind=EventKind.UNDELIVERED).count() == 1
    assert ticket_audit(recorded_ticket) == []

    # run again (by hand): nothing to do
    out = io.StringIO()
    call_command("undelivered_replies", stdout=out)
    assert out.getvalue().startswith("0 条回复记为未送达")
    assert TicketEvent.objects.filter(kind=EventKind.UNDELIVERED).count() == 3


# --- a breach a reopened ticket's recount disproves is withdrawn, in the history and everywhere it is counted ------


def test_a_breach_disproved_when_a_reopened_ticket_is_counted_again_is_withdrawn(users, xiehe, client_for, api_for):
    """A ticket missed its first response on the provisional 2027 calendar (the sweep recorded 'Deadline missed'),
    was resolved, and the company then entered 4–6 January as days off. Reopened, its clock is counted again on the
    corrected calendar and was met after all — but the history kept 'Deadline missed' with nothing after it, while
    the badge said met. The history keeps the entry (it was judged so then) and records 'Breach withdrawn';
    the badge, the board and the API count the clock as it is now; audited."""
    from pharmacrm.servicedesk.views_board import board_summary
    from tests.servicedesk.test_review36_calendar import ADD, at, business, new_years_eve_ticket

    ticket = new_years_eve_ticket(users, xiehe)
    services.sweep(at(2027, 1, 4, 10, 1))  # the provisional deadline passes: recorded as missed
    assert TicketEvent.objects.filter(ticket=ticket, kind=EventKind.BREACHED).count() == 1
    ticket.refresh_from_db()
    services.transition(users["agent"], ticket, Status.RESOLVED, version=ticket.version, at=at(2027, 1, 5, 12),
                        resolution_summary="已电话告知用法", root_cause="usage")  # fmt: skip
    assert response_clock(ticket).breached_at == at(2027, 1, 4, 10)
    r = client_for("admin").post(ADD, {"date": "2027-01-04", "until": "2027-01-06", "working": "0",
                                       "note": "年终盘点停工", "version": business().version})  # fmt: skip
    assert r.status_code == 302
    services.refresh_pending()
    assert response_clock(ticket).breached_at == at(2027, 1, 4, 10)  # resolved: frozen, as judged
    assert not TicketEvent.objects.filter(ticket=ticket, kind=EventKind.UNBREACHED).exists()

    ticket.refresh_from_db()
    services.transition(users["agent"], ticket, Status.IN_PROGRESS, version=ticket.version, at=at(2027, 1, 8, 9))
    clock = response_clock(ticket)
    assert (clock.due_at, clock.breached_at) == (at(2027, 1, 7, 10), None)

    # the history: the breach as judged then, and its withdrawal
    assert TicketEvent.objects.filter(ticket=ticket, kind=EventKind.BREACHED).count() == 1
    withdrawn = {e.data["clock"]: e for e in TicketEvent.objects.filter(ticket=ticket, kind=EventKind.UNBREACHED)}
    assert set(withdrawn) == {ClockKind.FIRST_RESPONSE, ClockKind.RESOLUTION}  # resolved late on 5 Jan: not late now
    assert response_clock(ticket).breached_at is None
    assert SlaClock.objects.get(ticket=ticket, kind=ClockKind.RESOLUTION).breached_at is None
    event = withdrawn[ClockKind.FIRST_RESPONSE]
    assert (dt.datetime.fromisoformat(event.data["breached"]), dt.datetime.fromisoformat(event.data["due"])) == (
        at(2027, 1, 4, 10), at(2027, 1, 7, 10)
    )
    page = client_for("agent").get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert 'data-kind="unbreached"' in page
    assert "重新计算后，截止时间为 2027-01-07 10:00：2027-01-04 10:00 记录的超时不再计入。" in page
    # the audit trail
    entries = AuditEntry.objects.filter(object_type="servicedesk.ticket", object_id=str(ticket.pk),
                                        extra__reason="breach withdrawn")  # fmt: skip
    assert sorted(e.extra["clock"] for e in entries) == sorted([ClockKind.FIRST_RESPONSE, ClockKind.RESOLUTION])
    entry = entries.get(extra__clock=ClockKind.FIRST_RESPONSE)
    [[breached, none]] = entry.changes.values()
    assert list(entry.changes) == ["breached"] and dt.datetime.fromisoformat(breached) == at(2027, 1, 4, 10)
    assert none is None
    # what counts breaches: the API's clock, the board (no breached ticket)
    api = api_for("agent")
    clocks = api.get(f"/api/v1/tickets/{ticket.pk}/clocks/").json()
    assert {c["kind"]: c["breached_at"] for c in clocks} == {ClockKind.FIRST_RESPONSE: None, ClockKind.RESOLUTION: None}
    kinds = [e["kind"] for e in api.get(f"/api/v1/tickets/{ticket.pk}/events/").json()]
    assert kinds.count("breached") == 1 and kinds.count("unbreached") == 2  # the history, as on the page
    assert board_summary(users["manager"], now=at(2027, 1, 8, 9, 30)).breached_count == 0
    # rebuilt again, nothing more is withdrawn
    ticket.refresh_from_db()
    services.rebuild_clocks(ticket, now=at(2027, 1, 8, 9, 30))
    assert TicketEvent.objects.filter(ticket=ticket, kind=EventKind.UNBREACHED).count() == 2
