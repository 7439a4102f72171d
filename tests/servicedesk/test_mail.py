"""E-mail intake and replies, end to end with a real SMTP server (aiosmtpd) that delivers into a real
IMAP server (Dovecot): customers write with smtplib, the service desk polls its mailbox, agents' replies
go out by SMTP and land in the customer's mailbox, and the customer's answer threads back."""

from __future__ import annotations

import datetime as dt
import email.utils
import smtplib
from email.message import EmailMessage

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone, translation
from django.utils.translation import gettext

from pharmacrm.servicedesk import conversation, mail, services
from pharmacrm.servicedesk.choices import Channel, ClockKind, Delivery, MessageKind, Status
from pharmacrm.servicedesk.models import Attachment, Ticket, TicketMessage
from tests import mailservers
from tests.mailservers import imap_server, mail_settings, smtp_server  # noqa: F401

CUSTOMER, DOCTOR, SERVICE, STRANGER = (
    mailservers.CUSTOMER,
    mailservers.DOCTOR,
    mailservers.SERVICE,
    mailservers.STRANGER,
)
free_port = mailservers.free_port

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture
def desk(db, mail_settings, smtp_server, imap_server, worker_inline, django_capture_on_commit_callbacks):  # noqa: F811
    """The mail set-up of every test: send as a customer, poll the service mailbox, read a mailbox."""

    class Desk:
        imap = imap_server

        @staticmethod
        def send(msg: EmailMessage) -> str:
            with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
                smtp.send_message(msg)
            return msg["Message-ID"]

        @staticmethod
        def poll() -> dict[str, int]:
            with django_capture_on_commit_callbacks(
                execute=True
            ):  # the acknowledgement goes out after commit
                return mail.poll_mailbox.call_local()

        @staticmethod
        def reply(user, ticket, body: str, **kwargs) -> TicketMessage:
            with django_capture_on_commit_callbacks(execute=True):  # the mail is queued after commit
                message = conversation.post_message(user, ticket, kind=MessageKind.REPLY, body=body, **kwargs)
            message.refresh_from_db()
            return message

        @staticmethod
        def inbox(user: str):
            return imap_server.messages(user)

    return Desk()


def customer_mail(subject="关于阿司匹林肠溶片的用法", body="请问饭前还是饭后服用？", sender=CUSTOMER, name="王医生",
                  **headers) -> EmailMessage:  # fmt: skip
    msg = EmailMessage()
    msg["From"] = email.utils.formataddr((name, sender)) if name else sender
    msg["To"] = SERVICE
    msg["Subject"] = subject
    headers.setdefault("Message_ID", email.utils.make_msgid(domain="hospital.test"))
    headers.setdefault("Date", email.utils.formatdate(localtime=True))
    for key, value in headers.items():
        msg[key.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def response_clock(ticket):
    return ticket.clocks.get(kind=ClockKind.FIRST_RESPONSE)


def test_round_trip_customer_mail_agent_reply_customer_answer(desk, users):
    sent_id = desk.send(customer_mail())
    assert desk.poll() == {"taken": 1, "skipped": 0, "refused": 0}

    ticket = Ticket.objects.get()
    assert ticket.channel == Channel.EMAIL
    assert ticket.reply_email == CUSTOMER
    assert ticket.caller_name == "王医生"
    assert ticket.subject == "关于阿司匹林肠溶片的用法"
    assert "饭前还是饭后" in ticket.description
    assert ticket.category.code == "other"
    first = ticket.messages.get(kind=MessageKind.INBOUND)
    assert (first.message_id, first.sender) == (sent_id, CUSTOMER)
    assert all(r"\Seen" in flags for flags in desk.imap.flags(SERVICE))

    # the acknowledgement arrives with the number, and does not count as the first response
    ack = ticket.messages.get(kind=MessageKind.REPLY)
    assert ack.delivery == Delivery.SENT and ack.author is None and ack.sent_at
    [ack_mail] = desk.inbox(CUSTOMER)
    assert ticket.number in ack_mail["Subject"] and ticket.number in ack_mail.get_body().get_content()
    assert ack_mail["In-Reply-To"] == sent_id
    assert ack_mail["Auto-Submitted"] == "auto-replied"
    assert ack_mail["Message-ID"] == ack.message_id
    assert response_clock(ticket).fulfilled_at is None

    # the agent replies: it is e-mailed (threaded on the customer's mail) and meets the first response
    reply = desk.reply(users["agent"], ticket, "请饭后服用。")
    assert reply.delivery == Delivery.SENT
    reply_mail = desk.inbox(CUSTOMER)[-1]
    assert reply_mail["Message-ID"] == reply.message_id
    assert reply_mail["In-Reply-To"] == sent_id
    assert sent_id in reply_mail["References"] and ack.message_id in reply_mail["References"]
    assert "请饭后服用" in reply_mail.get_body().get_content()
    ticket.refresh_from_db()
    assert response_clock(ticket).fulfilled_at is not None

    # waiting on the customer; the customer answers the reply → back on the same ticket, back to work
    services.transition(users["agent"], ticket, Status.WAITING)
    answer = customer_mail(subject="Re: " + reply_mail["Subject"], body="明白了，谢谢！", In_Reply_To=reply.message_id,
                           References=f"{sent_id} {reply.message_id}")  # fmt: skip
    answer_id = desk.send(answer)
    assert desk.poll()["taken"] == 1
    assert Ticket.objects.count() == 1
    ticket.refresh_from_db()
    assert ticket.status == Status.IN_PROGRESS
    inbound = ticket.messages.filter(kind=MessageKind.INBOUND).order_by("created_at", "id").last()
    assert (inbound.message_id, inbound.in_reply_to, inbound.body) == (
        answer_id,
        reply.message_id,
        "明白了，谢谢！",
    )
    assert len(desk.inbox(CUSTOMER)) == 2  # no second acknowledgement for an answer


def test_the_same_mail_fetched_twice_is_taken_in_once(desk):
    msg = customer_mail()
    desk.send(msg)
    desk.imap.append(SERVICE, bytes(msg))  # the same Message-ID again (e.g. delivered twice)
    counts = desk.poll()
    assert counts == {"taken": 1, "skipped": 1, "refused": 0}
    assert Ticket.objects.count() == 1
    assert desk.poll() == {"taken": 0, "skipped": 0, "refused": 0}  # both are seen now


def test_auto_replies_bounces_and_lists_are_ignored(desk):
    desk.send(customer_mail(subject="Out of office", Auto_Submitted="auto-replied"))
    desk.send(customer_mail(subject="Newsletter", Precedence="bulk"))
    desk.send(customer_mail(subject="Undeliverable", sender="MAILER-DAEMON@hospital.test", name=""))
    desk.send(customer_mail(subject="Normal", Auto_Submitted="no"))
    counts = desk.poll()
    assert counts == {"taken": 1, "skipped": 3, "refused": 0}
    assert list(Ticket.objects.values_list("subject", flat=True)) == ["Normal"]
    assert len(desk.inbox(CUSTOMER)) == 1  # only the real mail was acknowledged


def test_the_number_in_the_subject_threads_only_for_the_tickets_customer(desk):
    desk.send(customer_mail(subject="药品咨询"))
    desk.poll()
    ticket = Ticket.objects.get()
    # no In-Reply-To (a new mail), but the number in the subject, from the customer: same ticket
    desk.send(customer_mail(subject=f"补充 [{ticket.number}]", body="补充信息"))
    # the same number from someone else: a new ticket, nothing added to the customer's
    desk.send(customer_mail(subject=f"[{ticket.number}] 我也要看", body="陌生人", sender=STRANGER, name=""))
    assert desk.poll()["taken"] == 2
    assert ticket.messages.filter(kind=MessageKind.INBOUND).count() == 2
    assert not ticket.messages.filter(body="陌生人").exists()
    other = Ticket.objects.exclude(pk=ticket.pk).get()
    assert (other.reply_email, other.caller_name, other.description) == (STRANGER, STRANGER, "陌生人")


def test_a_colleague_answering_a_notification_email_makes_no_ticket(
    desk, users, settings, django_capture_on_commit_callbacks
):
    """Notifications are e-mailed from the desk's address by default. An agent answering one ("收到") wrote to
    the service mailbox: the answer became a customer's ticket, and the agent got its acknowledgement."""
    colleague = "other@hospital.test"
    settings.NOTIFY_MAIL_FROM = settings.SERVICEDESK_MAIL_FROM
    users["agent"].email = colleague
    users["agent"].save(update_fields=["email"])
    desk.send(customer_mail())
    desk.poll()
    ticket = Ticket.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        services.assign(users["manager"], ticket, assignee=users["agent"])
    [notice] = desk.inbox(colleague)
    assert ticket.number in notice["Subject"]

    desk.send(customer_mail(subject=f"Re: {notice['Subject']}", body="收到", sender=colleague, name="王小明",
                            In_Reply_To=notice["Message-ID"], References=notice["Message-ID"]))  # fmt: skip
    assert desk.poll() == {"taken": 0, "skipped": 0, "refused": 1}
    assert Ticket.objects.count() == 1
    assert ticket.messages.count() == 2  # the customer's mail and its acknowledgement
    assert len(desk.inbox(colleague)) == 1  # no acknowledgement to the colleague
    assert r"\Flagged" in desk.imap.flags(SERVICE)[-1]  # left in the mailbox for a person to look at
    # the customer answering the desk's own mail still threads
    ack = desk.inbox(CUSTOMER)[-1]
    desk.send(customer_mail(subject=f"Re: {ack['Subject']}", body="谢谢", In_Reply_To=ack["Message-ID"]))
    assert desk.poll()["taken"] == 1
    assert ticket.messages.filter(kind=MessageKind.INBOUND).count() == 2


def test_a_known_sender_becomes_the_tickets_person(desk, xiehe):
    desk.send(customer_mail(sender=DOCTOR.upper(), name="张伟"))
    desk.poll()
    ticket = Ticket.objects.get()
    assert ticket.person.name == "张伟"
    assert ticket.institution == xiehe
    assert ticket.caller_name == ""


def test_attachments_are_kept_and_refused_ones_noted(desk):
    msg = customer_mail(subject="检验报告")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="报告.pdf")
    msg.add_attachment(
        b"MZ\x90\x00binary", maintype="application", subtype="octet-stream", filename="setup.exe"
    )
    desk.send(msg)
    assert desk.poll()["taken"] == 1
    ticket = Ticket.objects.get()
    attachment = Attachment.objects.get(ticket=ticket)
    assert (attachment.name, attachment.content_type, attachment.size) == (
        "报告.pdf",
        "application/pdf",
        len(PDF),
    )
    inbound = ticket.messages.get(kind=MessageKind.INBOUND)
    assert attachment.message == inbound
    assert "setup.exe" in inbound.body


def test_a_reply_carries_its_attachments(desk, users):
    from django.core.files.uploadedfile import SimpleUploadedFile

    desk.send(customer_mail())
    desk.poll()
    ticket = Ticket.objects.get()
    desk.reply(users["agent"], ticket, "说明书见附件。",
                              files=[SimpleUploadedFile("说明书.pdf", PDF, "application/pdf")])  # fmt: skip
    reply_mail = desk.inbox(CUSTOMER)[-1]
    [part] = list(reply_mail.iter_attachments())
    assert (part.get_filename(), part.get_content()) == ("说明书.pdf", PDF)


def test_a_failed_delivery_is_retried_until_it_is_sent(desk, users, settings):
    desk.send(customer_mail())
    desk.poll()
    ticket = Ticket.objects.get()
    good_port = settings.EMAIL_PORT
    settings.EMAIL_PORT = free_port()  # nothing listens there: the SMTP server is "down"
    reply = desk.reply(users["agent"], ticket, "请饭后服用。")
    assert (reply.delivery, reply.attempts) == (Delivery.FAILED, 1)
    assert reply.last_error

    now = timezone.now()
    assert mail.retry_failed(now) == 0  # the back-off has not passed
    later = now + dt.timedelta(minutes=2)
    assert mail.retry_failed(later) == 1  # tried again, still failing
    reply.refresh_from_db()
    assert (reply.delivery, reply.attempts) == (Delivery.FAILED, 2)

    settings.EMAIL_PORT = good_port  # the server is back
    assert mail.retry_failed(later + dt.timedelta(minutes=1)) == 0  # the pause grows
    assert mail.retry_failed(later + dt.timedelta(minutes=2)) == 1
    reply.refresh_from_db()
    assert (reply.delivery, reply.attempts, reply.last_error) == (Delivery.SENT, 3, "")
    assert desk.inbox(CUSTOMER)[-1]["Message-ID"] == reply.message_id
    assert mail.retry_failed(timezone.now() + dt.timedelta(hours=1)) == 0  # nothing left in the outbox
    assert mail.send_message(reply.pk) == ""  # sent once: a late duplicate task sends nothing


def _reply_while_smtp_is_down(desk, users, settings) -> tuple[Ticket, TicketMessage, int]:
    """A customer's mail taken in, then the agent's reply sent while nothing listens on the SMTP port: the
    ticket, the reply (failed, waiting for its retry) and the port the mail server really listens on."""
    desk.send(customer_mail())
    desk.poll()
    ticket = Ticket.objects.get()
    good_port = settings.EMAIL_PORT
    settings.EMAIL_PORT = free_port()
    return ticket, desk.reply(users["agent"], ticket, "请饭后服用。"), good_port


def test_delivery_gives_up_after_the_last_attempt(desk, users, settings, django_capture_on_commit_callbacks):
    ticket, reply, good_port = _reply_while_smtp_is_down(desk, users, settings)
    later = timezone.now()
    for _attempt in range(mail.MAX_ATTEMPTS + 2):
        later += dt.timedelta(hours=3)
        mail.retry_failed(later)
    reply.refresh_from_db()
    assert (reply.delivery, reply.attempts) == (Delivery.GAVE_UP, mail.MAX_ATTEMPTS)
    assert "ConnectionRefusedError" in reply.last_error

    # once the server is back, an agent sends it again (an analyst may not; a sent reply cannot be)
    settings.EMAIL_PORT = good_port
    with pytest.raises(PermissionDenied):
        mail.resend(users["analyst"], reply)
    with django_capture_on_commit_callbacks(execute=True):
        mail.resend(users["agent"], reply)
    reply.refresh_from_db()
    assert (reply.delivery, reply.attempts) == (Delivery.SENT, 1)
    assert desk.inbox(CUSTOMER)[-1]["Message-ID"] == reply.message_id
    with pytest.raises(ValidationError):
        mail.resend(users["agent"], reply)


def test_a_reply_retrying_after_the_address_was_taken_off_the_ticket_is_not_sent_to_it(desk, users, settings):
    """The SMTP server was down; meanwhile the agent removed the customer's e-mail from the ticket (the customer
    asked not to be mailed, or the address was someone else's). The retry still mailed the reply to it."""
    from pharmacrm.servicedesk import editing

    ticket, reply, good_port = _reply_while_smtp_is_down(desk, users, settings)
    assert reply.delivery == Delivery.FAILED
    ticket.refresh_from_db()
    editing.edit_ticket(users["agent"], ticket, {"reply_email": ""}, version=ticket.version)
    settings.EMAIL_PORT = good_port
    mailed = len(desk.inbox(CUSTOMER))  # the acknowledgement

    assert mail.retry_failed(timezone.now() + dt.timedelta(minutes=5)) == 1
    reply.refresh_from_db()
    assert len(desk.inbox(CUSTOMER)) == mailed
    assert reply.delivery == Delivery.GAVE_UP
    assert reply.last_error_shown == gettext("Not sent: the ticket no longer has the customer's e-mail address.")
    # "Send again" says what is missing instead of failing once more
    with translation.override("en"), pytest.raises(ValidationError, match="no e-mail address"):
        mail.resend(users["agent"], reply)


def test_the_ticket_page_offers_send_again_for_a_reply_given_up_on(desk, users, settings, client_for,
                                                                    django_capture_on_commit_callbacks):
    ticket, reply, good_port = _reply_while_smtp_is_down(desk, users, settings)
    TicketMessage.objects.filter(pk=reply.pk).update(delivery=Delivery.GAVE_UP, attempts=mail.MAX_ATTEMPTS,
                                                     last_error="ConnectionRefusedError")  # fmt: skip
    agent = client_for("agent")
    page = agent.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert f'id="resend-{reply.pk}"' in page and "ConnectionRefusedError" in page
    assert client_for("analyst").post(f"/service/messages/{reply.pk}/resend/").status_code == 403
    settings.EMAIL_PORT = good_port
    with django_capture_on_commit_callbacks(execute=True):
        response = agent.post(f"/service/messages/{reply.pk}/resend/")
    assert response.status_code == 302
    reply.refresh_from_db()
    assert reply.delivery == Delivery.SENT
    assert desk.inbox(CUSTOMER)[-1]["Message-ID"] == reply.message_id


def test_two_workers_never_send_the_same_message(desk, users):
    desk.send(customer_mail())
    desk.poll()
    ticket = Ticket.objects.get()
    reply = TicketMessage.objects.create(
        ticket=ticket, kind=MessageKind.REPLY, body="只发一次", recipient=CUSTOMER, subject="x",
        message_id=conversation.new_message_id(ticket), delivery=Delivery.PENDING,
    )  # fmt: skip
    stale = TicketMessage.objects.get(pk=reply.pk)  # what a second worker read at the same moment
    assert mail.send_message(reply.pk) == Delivery.SENT
    assert mail._claim(stale, timezone.now()) is False
    assert sum(1 for m in desk.inbox(CUSTOMER) if m["Message-ID"] == reply.message_id) == 1


def test_a_broken_mail_does_not_stop_the_next_one(desk):
    broken = (
        f"From: {CUSTOMER}\r\nTo: {SERVICE}\r\nSubject: broken\r\nMessage-ID: <broken-1@hospital.test>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="XX"\r\n\r\n'
        '--XX\r\nContent-Type: text/plain; charset="x-no-such-charset"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        "%%% not base64 %%%\r\n"
        '--XX\r\nContent-Type: application/pdf; name="a.pdf"\r\nContent-Disposition: attachment; filename="a.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n!!!!\r\n"  # the closing boundary is missing
    ).encode()
    no_sender = b"To: service@pharmacrm.test\r\nSubject: who?\r\nMessage-ID: <nobody@x.test>\r\n\r\nhello\r\n"
    desk.imap.append(SERVICE, no_sender)
    desk.imap.append(SERVICE, broken)
    desk.send(customer_mail(subject="正常的邮件"))
    counts = desk.poll()
    assert counts["refused"] == 1  # no sender: refused, flagged for a person
    assert counts["taken"] == 2
    assert set(Ticket.objects.values_list("subject", flat=True)) == {"broken", "正常的邮件"}
    flags = desk.imap.flags(SERVICE)
    assert r"\Flagged" in flags[0] and all(r"\Seen" in f for f in flags)
    assert desk.poll() == {"taken": 0, "skipped": 0, "refused": 0}  # nothing is tried again


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_mail_from_a_customer_being_merged_is_taken_in_on_the_next_run_on_the_survivor(desk, users, xiehe):
    """A doctor's mail arrived while a manager merged his duplicate record (the one with this address) into his
    record: the new ticket was refused (filed under the merged record it would be shown nowhere), and the poller
    marked the mail seen and flagged as if it were broken — the request waited for someone to find it in the
    mailbox. Now it stays unread and the next run makes it a ticket of the record it was merged into."""
    from pharmacrm.customers import services as customers
    from pharmacrm.customers.models import Person
    from tests.concurrency import held_while

    original = Person.objects.get(name="张伟")
    copy = customers.create_person(
        users["manager"], {"name": "张伟", "institution": xiehe, "email": "other@hospital.test"}
    )
    desk.send(customer_mail(subject="用药咨询", sender="other@hospital.test", name="张伟"))
    counts = []

    held_while(lambda: customers.merge(users["manager"], original, Person.objects.get(pk=copy.pk)),
               lambda: counts.append(mail.poll()))  # fmt: skip
    assert counts == [{"taken": 0, "skipped": 0, "refused": 0}]
    assert not Ticket.objects.exists()
    [flags] = desk.imap.flags(SERVICE)
    assert r"\Seen" not in flags and r"\Flagged" not in flags
    assert desk.poll() == {"taken": 1, "skipped": 0, "refused": 0}
    ticket = Ticket.objects.get()
    assert (ticket.subject, ticket.person, ticket.institution) == ("用药咨询", original, xiehe)
    assert r"\Seen" in desk.imap.flags(SERVICE)[0]


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_an_answer_arriving_while_its_ticket_is_merged_goes_to_the_ticket_that_stays(desk, users, xiehe):
    """The customer answered while an agent merged the ticket into the one the customer had opened by phone: the
    answer waited for the merge and then landed on the merged (closed) duplicate, which it reopened, instead of
    on the ticket that stays."""
    from pharmacrm.servicedesk import linking
    from tests.concurrency import held_while

    first_id = desk.send(customer_mail(subject="用法咨询"))
    desk.poll()
    duplicate = Ticket.objects.get()
    into = services.create_ticket(users["agent"], {"subject": "用法咨询（电话）", "channel": "phone",
                                                   "category": "drug_info", "institution": xiehe})  # fmt: skip
    desk.send(customer_mail(subject="Re: 用法咨询", body="补充：饭后服用可以吗？", In_Reply_To=first_id,
                            References=first_id))  # fmt: skip
    counts = []

    held_while(lambda: linking.merge(users["agent"], Ticket.objects.get(pk=duplicate.pk), into, reason="同一问题"),
               lambda: counts.append(mail.poll()))  # fmt: skip
    assert counts == [{"taken": 1, "skipped": 0, "refused": 0}]
    assert TicketMessage.objects.get(body__contains="补充").ticket_id == into.pk
    duplicate.refresh_from_db()
    assert duplicate.status == Status.CLOSED and duplicate.merged_into_id == into.pk


def test_a_mail_is_received_when_the_mailbox_took_it_not_at_its_senders_date(desk):
    """The Date header is the sender's word (a PC whose clock runs days behind, a mail written offline): the
    ticket is received when the service mailbox took the mail, its clocks start then and nothing is overdue."""
    old = timezone.now() - dt.timedelta(days=3)
    before = timezone.now()
    desk.send(customer_mail(subject="三天前", Date=email.utils.format_datetime(old)))
    desk.send(
        customer_mail(subject="未来", Date=email.utils.format_datetime(timezone.now() + dt.timedelta(days=2)))
    )
    desk.poll()
    for subject in ("三天前", "未来"):
        ticket = Ticket.objects.get(subject=subject)
        assert before - dt.timedelta(seconds=1) <= ticket.received_at <= timezone.now()
        assert not ticket.clocks.filter(due_at__lte=timezone.now()).exists()


def test_a_mail_the_worker_reads_late_is_received_when_the_mailbox_took_it(desk):
    """The worker was down for five hours: the ticket is received when the mail reached the mailbox, whatever
    its Date header says."""
    came = (timezone.now() - dt.timedelta(hours=5)).replace(microsecond=0)
    written = email.utils.format_datetime(came - dt.timedelta(days=2))  # the sender's clock is two days behind
    desk.imap.append(SERVICE, customer_mail(subject="停机期间", Date=written).as_bytes(), when=came)
    desk.poll()
    assert Ticket.objects.get(subject="停机期间").received_at == came


def test_a_reaction_in_an_answer_fetched_late_is_dated_when_the_mail_came(desk):
    """The worker was down all morning; the customer's answer mentioning a reaction came at 09:00 and was taken
    in at 15:00. A new ticket's day 0 is its mail's date, but for an answer PV's clock started at 15:00."""
    from pharmacrm.safety.models import Flag

    asked = (timezone.now() - dt.timedelta(hours=7)).replace(microsecond=0)
    desk.imap.append(SERVICE, customer_mail(subject="咨询用法", Date=email.utils.format_datetime(asked)).as_bytes(),
                     when=asked)  # fmt: skip
    desk.poll()
    ticket = Ticket.objects.get()
    ack = desk.inbox(CUSTOMER)[-1]
    came = (timezone.now() - dt.timedelta(hours=6)).replace(microsecond=0)  # when the mailbox took the answer
    answer = customer_mail(subject=f"Re: {ack['Subject']}", body="服药后第二天全身起了皮疹，很痒。",
                           In_Reply_To=ack["Message-ID"], Date=email.utils.format_datetime(came))  # fmt: skip
    desk.imap.append(SERVICE, answer.as_bytes(), when=came)
    desk.poll()

    assert ticket.messages.filter(kind=MessageKind.INBOUND).count() == 2
    flag = Flag.objects.get(ticket=ticket)
    assert abs(flag.received_at - came) < dt.timedelta(seconds=1)


def test_an_html_only_mail_becomes_text(desk):
    msg = customer_mail(subject="HTML")
    msg.set_content("<html><body><p>第一段</p><p>第二段 &amp; 更多</p><script>x()</script></body></html>",
                    subtype="html")  # fmt: skip
    desk.send(msg)
    desk.poll()
    assert Ticket.objects.get().description == "第一段\n第二段 & 更多"


def test_without_a_mailbox_nothing_is_polled(db, settings):
    settings.SERVICEDESK_IMAP_HOST = ""
    assert mail.poll_mailbox.call_local() == {"taken": 0, "skipped": 0, "refused": 0}


def test_a_service_folder_named_in_chinese_is_read(desk, settings):
    """The desk's mail is filed into a folder 客服 (a rule on the company's mail server): with
    SERVICEDESK_IMAP_FOLDER=客服 the poller failed every minute (UnicodeEncodeError) and no mail became a ticket."""
    folder = '"&W6JnDQ-"'  # 客服 as IMAP writes it (modified UTF-7, RFC 3501)
    imap = desk.imap.connect(SERVICE)
    try:
        imap.create(folder)
        imap.append(folder, None, None, customer_mail(subject="说明书咨询").as_bytes())
        settings.SERVICEDESK_IMAP_FOLDER = "客服"

        assert desk.poll() == {"taken": 1, "skipped": 0, "refused": 0}

        assert Ticket.objects.get().subject == "说明书咨询"
        imap.select(folder, readonly=True)
        assert imap.uid("SEARCH", None, "UNSEEN")[1] == [b""]  # marked seen in that folder
    finally:
        imap.logout()
        cleanup = desk.imap.connect(SERVICE)
        cleanup.delete(folder)
        cleanup.logout()
