"""Session 37 review, mail: a reply that never reached the customer does not meet the first-response deadline;
an answer's In-Reply-To decides its ticket before its References. With the real local SMTP and IMAP servers."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone, translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.servicedesk import editing, mail, services
from pharmacrm.servicedesk.choices import Channel, ClockKind, Delivery, EventKind, Status
from pharmacrm.servicedesk.models import SlaClock, Ticket
from tests import mailservers
from tests.mailservers import imap_server, mail_settings, smtp_server  # noqa: F401
from tests.servicedesk.test_mail import customer_mail, desk  # noqa: F401

CUSTOMER, SERVICE = mailservers.CUSTOMER, mailservers.SERVICE
MOVED = "moved-away@hospital.test"  # the test SMTP server refuses it: 550 No such user here


def response_clock(ticket) -> SlaClock:
    return SlaClock.objects.get(ticket=ticket, kind=ClockKind.FIRST_RESPONSE)


def mailed_ticket(desk) -> Ticket:  # noqa: F811
    desk.send(customer_mail())
    assert desk.poll()["taken"] == 1
    return Ticket.objects.get()


def give_up(reply) -> None:
    """The worker's retries, hours apart, until it gives up on the reply."""
    later = timezone.now()
    for _attempt in range(mail.MAX_ATTEMPTS + 1):
        later += dt.timedelta(hours=3)
        mail.retry_failed(later)
    reply.refresh_from_db()
    assert reply.delivery == Delivery.GAVE_UP


def dsn(message_id: str) -> bytes:
    """The customer's mail server returning a mail it had accepted (RFC 3464 delivery report)."""
    return (
        b"From: MAILER-DAEMON@mx.hospital.test (Mail Delivery System)\r\nTo: service@pharmacrm.test\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-37@mx.hospital.test>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=BB\r\n\r\n"
        b"--BB\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nYour message could not be delivered.\r\n"
        b"--BB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.hospital.test\r\n\r\n"
        b"Final-Recipient: rfc822; customer@hospital.test\r\nAction: failed\r\nStatus: 5.2.2\r\n"
        b"Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\r\n\r\n"
        b"--BB\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: " + message_id.encode()
        + b"\r\nSubject: x\r\n\r\n--BB--\r\n"
    )  # fmt: skip


def test_a_reply_the_mail_server_refused_no_longer_meets_the_first_response_deadline(desk, users, client_for):  # noqa: F811
    """The customer's address had changed; the SMTP server refused the agent's reply on every attempt. The reply
    still counted as the ticket's first response: the deadline read 'met' while the customer had no answer."""
    ticket = mailed_ticket(desk)
    ticket.refresh_from_db()
    editing.edit_ticket(users["agent"], ticket, {"reply_email": MOVED}, version=ticket.version, reason="客户来电告知新邮箱")
    reply = desk.reply(users["agent"], ticket, "请饭后服用。")
    assert reply.delivery == Delivery.FAILED  # refused once: retried, and meanwhile counted (it may still arrive)
    assert response_clock(ticket).fulfilled_at == reply.created_at

    give_up(reply)
    clock = response_clock(ticket)
    assert clock.fulfilled_at is None and clock.next_check_at is not None  # open again: the sweep watches it
    ticket.refresh_from_db()
    assert ticket.next_due_at == clock.due_at
    event = ticket.events.get(kind=EventKind.UNDELIVERED)
    assert event.data["message"] == reply.pk and event.data["withdrawn"] == reply.created_at.isoformat()
    entry = AuditEntry.objects.filter(object_type="servicedesk.ticket", object_id=str(ticket.pk)).latest("seq")
    assert entry.changes == {"responded": [reply.created_at.isoformat(), None]}
    assert entry.actor_name == "system"

    # the ticket page says why the deadline is open again, in the reader's language
    with translation.override("en"):
        page = client_for("agent").get(f"/service/tickets/{ticket.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-kind="undelivered"' in page
    assert "The reply did not reach the customer: it no longer meets the first-response deadline" in page

    # past its deadline, the reopened clock is breached like any other
    services.sweep(clock.due_at + dt.timedelta(minutes=1))
    assert response_clock(ticket).breached_at == clock.due_at


def test_a_reply_returned_by_the_customers_server_reopens_the_deadline_and_a_call_back_still_meets_it(
    desk, users, imap_server  # noqa: F811
):
    """The SMTP server took the reply, then the customer's server returned it (mailbox full). A call back
    recorded afterwards is the first response, from the moment of the call."""
    ticket = mailed_ticket(desk)
    reply = desk.reply(users["agent"], ticket, "请饭后服用。")
    assert reply.delivery == Delivery.SENT
    assert response_clock(ticket).fulfilled_at == reply.created_at

    imap_server.append(SERVICE, dsn(reply.message_id))
    desk.poll()
    reply.refresh_from_db()
    assert reply.delivery == Delivery.GAVE_UP
    assert response_clock(ticket).fulfilled_at is None
    assert ticket.events.filter(kind=EventKind.UNDELIVERED, data__message=reply.pk).count() == 1

    called = timezone.now()
    services.record_response(users["agent"], ticket, at=called, channel=Channel.PHONE, summary="电话告知饭后服用")
    assert response_clock(ticket).fulfilled_at == called
    # a second report of the same return changes nothing: the call back still counts
    imap_server.append(SERVICE, dsn(reply.message_id).replace(b"dsn-37@", b"dsn-37b@"))
    desk.poll()
    assert response_clock(ticket).fulfilled_at == called


def test_a_reply_sent_again_after_it_failed_meets_the_deadline_from_when_it_was_sent_again(
    desk, users, settings, django_capture_on_commit_callbacks  # noqa: F811
):
    ticket = mailed_ticket(desk)
    good_port = settings.EMAIL_PORT
    settings.EMAIL_PORT = mailservers.free_port()  # the mail server is down
    reply = desk.reply(users["agent"], ticket, "请饭后服用。")
    give_up(reply)
    assert response_clock(ticket).fulfilled_at is None

    settings.EMAIL_PORT = good_port
    with django_capture_on_commit_callbacks(execute=True):
        mail.resend(users["agent"], reply)
    reply.refresh_from_db()
    assert reply.delivery == Delivery.SENT
    resent = ticket.events.filter(kind=EventKind.REPLY, data__resent=True).get()
    assert resent.at > reply.created_at
    assert response_clock(ticket).fulfilled_at == resent.at


def test_a_failed_reply_on_a_resolved_ticket_leaves_the_resolution_as_its_first_response(desk, users):  # noqa: F811
    """Resolving the ticket answers the customer too (the rule since the clocks were written): a reply that
    bounces after the resolution moves the first response to the resolution, never to 'not met'."""
    ticket = mailed_ticket(desk)
    reply = desk.reply(users["agent"], ticket, "请饭后服用。")
    ticket.refresh_from_db()
    services.transition(users["agent"], ticket, Status.RESOLVED, version=ticket.version,
                        resolution_summary="已电话确认", root_cause="usage")
    resolved = ticket.events.get(to_status=Status.RESOLVED).at
    mail.record_bounce(mail.email.message_from_bytes(dsn(reply.message_id), policy=mail.email.policy.default))
    assert response_clock(ticket).fulfilled_at == resolved


def test_an_acknowledgement_that_bounces_records_nothing_on_the_clock(desk, users):  # noqa: F811
    ticket = mailed_ticket(desk)
    ack = ticket.messages.get(author=None, kind="reply")
    mail.record_bounce(mail.email.message_from_bytes(dsn(ack.message_id), policy=mail.email.policy.default))
    ack.refresh_from_db()
    assert ack.delivery == Delivery.GAVE_UP
    assert not ticket.events.filter(kind=EventKind.UNDELIVERED).exists()
    assert response_clock(ticket).fulfilled_at is None


def two_tickets_with_replies(desk, users):  # noqa: F811
    """Two tickets of one customer, each with the agent's reply: ticket A's reply first, then ticket B's."""
    desk.send(customer_mail(subject="阿司匹林的用法"))
    desk.send(customer_mail(subject="氯吡格雷的储存"))
    assert desk.poll()["taken"] == 2
    first, second = Ticket.objects.order_by("pk")
    reply_a = desk.reply(users["agent"], first, "请饭后服用。")
    reply_b = desk.reply(users["agent"], second, "请于 25℃ 以下保存。")
    assert (reply_a.delivery, reply_b.delivery) == (Delivery.SENT, Delivery.SENT)
    assert reply_a.created_at < reply_b.created_at
    return first, second, reply_a, reply_b


def test_an_answer_goes_to_the_ticket_its_in_reply_to_names_not_the_newest_in_its_references(desk, users):  # noqa: F811
    """The customer answered the reply on ticket A; their mail program's References also held ticket B's newer
    reply (they had answered both in one thread before). The newest known message won: the answer landed on B."""
    first, second, reply_a, reply_b = two_tickets_with_replies(desk, users)
    desk.send(customer_mail(subject="Re: 用法", body="好的，谢谢，那一天几次？", In_Reply_To=reply_a.message_id,
                            References=f"{reply_a.message_id} {reply_b.message_id}"))  # fmt: skip
    assert desk.poll()["taken"] == 1
    assert first.messages.filter(kind="inbound", body__contains="一天几次").exists()
    assert not second.messages.filter(kind="inbound", body__contains="一天几次").exists()
    assert Ticket.objects.count() == 2


def test_without_in_reply_to_the_last_known_entry_of_references_decides(desk, users):  # noqa: F811
    """No In-Reply-To (some web mailers drop it): References is oldest first, so its last known entry is the
    mail answered — here ticket A's reply, although ticket B's reply listed before it is newer."""
    first, second, reply_a, reply_b = two_tickets_with_replies(desk, users)
    unknown = "<not-ours-37@hospital.test>"
    desk.send(customer_mail(subject="Re: 用法", body="收到，按说明服用。",
                            References=f"{reply_b.message_id} {reply_a.message_id} {unknown}"))  # fmt: skip
    assert desk.poll()["taken"] == 1
    assert first.messages.filter(kind="inbound", body__contains="按说明服用").exists()
    assert not second.messages.filter(kind="inbound", body__contains="按说明服用").exists()
    # an In-Reply-To nobody knows falls back on References (from the last entry) as well
    desk.send(customer_mail(subject="Re: 储存", body="冰箱可以吗？", In_Reply_To=unknown,
                            References=f"{reply_a.message_id} {reply_b.message_id}"))  # fmt: skip
    assert desk.poll()["taken"] == 1
    assert second.messages.filter(kind="inbound", body__contains="冰箱可以吗").exists()
