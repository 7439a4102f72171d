"""Twenty-third session, service-desk mail: the status-link mail of the web form goes through the outbox (an
SMTP outage delays it, never loses it), internationalised addresses (张三@公司.cn) become tickets and are
answered with SMTPUTF8, and a team is told when the customer writes again on a ticket nobody holds."""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
from email.message import EmailMessage

import pytest
from django.test import Client
from django.utils import timezone

from pharmacrm.servicedesk import mail, public
from pharmacrm.servicedesk.choices import Delivery, MessageKind
from pharmacrm.servicedesk.models import Ticket, TicketMessage
from tests import mailservers
from tests.mailservers import ascii_smtp_server, imap_server, mail_settings, smtp_server, smtputf8_server  # noqa: F401
from tests.servicedesk.test_public_form import form_data

CUSTOMER, SERVICE = mailservers.CUSTOMER, mailservers.SERVICE


def _form(**overrides) -> dict:
    """The public form's data (test_public_form's), from CUSTOMER, without phone or batch."""
    return form_data(**{"phone": "", "email": CUSTOMER, "batch_number": "", **overrides})


# --- 1. the status-link mail ----------------------------------------------------------------------------


def test_the_status_link_mail_survives_an_smtp_outage_and_a_double_submit_sends_one(
    db, mail_settings, imap_server, worker_inline, settings, django_capture_on_commit_callbacks  # noqa: F811
):
    """The customer sends the web form while the mail server is down. The mail with the status link was tried
    once inside the request and only logged: the customer never got the link. Now it waits in the outbox and
    goes out when the server is back — once, also when the customer pressed Send twice."""
    good_port = settings.EMAIL_PORT
    settings.EMAIL_PORT = mailservers.free_port()  # nothing listens: the SMTP server is down
    web = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    data = _form()
    with django_capture_on_commit_callbacks(execute=True):
        assert web.post("/help/", data).status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        assert web.post("/help/", data).status_code == 302  # the double click
    ticket = Ticket.objects.get()
    [link_mail] = TicketMessage.objects.filter(ticket=ticket, kind=MessageKind.REPLY)
    assert link_mail.delivery == Delivery.FAILED and link_mail.recipient == CUSTOMER
    assert imap_server.messages(CUSTOMER) == []

    settings.EMAIL_PORT = good_port  # the server is back: the worker's retry sends it
    mail.retry_failed(timezone.now() + dt.timedelta(minutes=2))
    link_mail.refresh_from_db()
    assert link_mail.delivery == Delivery.SENT
    [received] = imap_server.messages(CUSTOMER)
    assert f"[{ticket.number}]" in received["Subject"]
    assert "/help/status/" in received.get_content()
    assert mail.retry_failed(timezone.now() + dt.timedelta(hours=1)) == 0  # nothing left to send
    assert len(imap_server.messages(CUSTOMER)) == 1

    # the status page does not show the desk's own automatic mail as an answer to the request
    status = web.get(public.status_path(ticket)).content.decode()
    assert "/help/status/" not in status.split('id="replies-title"')[1]


# --- 4. the customer writes again on a ticket nobody holds ----------------------------------------------


def test_the_team_is_told_once_when_the_customer_answers_a_ticket_nobody_holds(
    db, users, xiehe, mail_settings, imap_server, worker_inline, django_capture_on_commit_callbacks  # noqa: F811
):
    """A ticket waits unassigned in the team's queue; the customer answers by mail. Nobody was told, so the
    answer sat unread until someone happened to open the queue. Now the team's members who handle tickets and
    may see this one are told — once, also when the mailbox hands the same mail out twice."""
    from pharmacrm.core.models import Team
    from pharmacrm.core.roles import Role
    from pharmacrm.notify.models import Notification
    from pharmacrm.servicedesk import services
    from tests.conftest import new_user

    team = Team.objects.create(name="客服二组")
    agent = new_user("agent2", Role.AGENT, teams=(team,))
    outside_rep = new_user("rep2", Role.REP, teams=(team,))  # a rep of no territory: may not see the ticket
    analyst = new_user("analyst2", Role.ANALYST, teams=(team,))  # does not handle tickets
    gone = new_user("agent3", Role.AGENT, teams=(team,))
    gone.is_active = False
    gone.save(update_fields=["is_active"])
    ticket = services.create_ticket(services.SYSTEM, {
        "subject": "说明书丢失", "channel": "email", "category": "drug_info", "institution": xiehe,
        "reply_email": CUSTOMER, "team": team,
    })  # fmt: skip
    ticket.refresh_from_db()
    assert ticket.assignee_id is None and ticket.team_id == team.pk

    answer = EmailMessage()
    answer["From"] = CUSTOMER
    answer["To"] = SERVICE
    answer["Subject"] = f"Re: [{ticket.number}] 说明书丢失"
    answer["Message-ID"] = email.utils.make_msgid(domain="hospital.test")
    answer["Date"] = email.utils.formatdate(localtime=True)
    answer.set_content("批号是 20260301，请再寄一份说明书。")
    imap_server.append(SERVICE, answer.as_bytes())
    imap_server.append(SERVICE, answer.as_bytes())  # the same mail twice (a mail program's retry)
    with django_capture_on_commit_callbacks(execute=True):
        assert mail.poll_mailbox.call_local()["taken"] == 1
    told = Notification.objects.filter(kind="ticket.customer_wrote", object_id=str(ticket.pk))
    assert sorted(told.values_list("recipient", flat=True)) == [agent.pk]
    assert outside_rep.pk not in told.values_list("recipient", flat=True) and analyst.pk != agent.pk


# --- 2. internationalised addresses (RFC 6531) ----------------------------------------------------------

ZHANG = "张三@公司.cn"


def _mail_from_zhang() -> bytes:
    msg = EmailMessage(policy=email.policy.SMTPUTF8)
    msg["From"] = f"张三 <{ZHANG}>"
    msg["To"] = SERVICE
    msg["Subject"] = "药品包装破损"
    msg["Message-ID"] = email.utils.make_msgid(domain="xn--55qx5d.cn")
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg.set_content("收到的药品外包装破损，请处理。")
    return msg.as_bytes(policy=email.policy.SMTPUTF8)


def test_a_mail_from_a_chinese_address_becomes_a_ticket_and_the_reply_needs_smtputf8(
    db, users, mail_settings, imap_server, smtputf8_server, ascii_smtp_server, worker_inline, settings,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    """张三 writes from 张三@公司.cn. Django's validator refused the address, so the mail was flagged in the
    mailbox and became no ticket: the customer was never answered. Now it is a ticket like any other. The
    desk's mail server (like many) does not offer SMTPUTF8: the acknowledgement is marked failed
    with the reason the agent can act on, not garbled into an undeliverable address. Through a server that
    offers SMTPUTF8, the agent's reply reaches 张三@公司.cn as written."""
    from pharmacrm.customers import normalise
    from pharmacrm.servicedesk import conversation

    settings.EMAIL_PORT = ascii_smtp_server.port  # the desk's mail server does not offer SMTPUTF8
    imap_server.append(SERVICE, _mail_from_zhang())
    with django_capture_on_commit_callbacks(execute=True):
        assert mail.poll_mailbox.call_local() == {"taken": 1, "skipped": 0, "refused": 0}
    assert "Flagged" not in imap_server.flags(SERVICE)[0]
    ticket = Ticket.objects.get()
    assert ticket.reply_email == ZHANG and ticket.caller_name == "张三"
    assert ticket.messages.get(kind=MessageKind.INBOUND).sender == ZHANG
    ack = ticket.messages.get(kind=MessageKind.REPLY)
    assert ack.delivery == Delivery.GAVE_UP, ack.last_error
    assert "SMTPUTF8" in ack.last_error_shown and "含中文字符的地址" in ack.last_error_shown
    # kept encrypted, masked as any address, found again by the blind index of a later mail's sender
    assert normalise.mask_email(ticket.reply_email) == "张***@公司.cn"
    assert mail.ticket_by_subject(f"[{ticket.number}] 补充", ZHANG) == ticket

    settings.EMAIL_PORT = smtputf8_server.port  # a server that offers SMTPUTF8
    with django_capture_on_commit_callbacks(execute=True):
        reply = conversation.post_message(users["agent"], ticket, kind=MessageKind.REPLY, body="已安排补发，请查收。")
    reply.refresh_from_db()
    assert reply.delivery == Delivery.SENT, reply.last_error
    envelope = smtputf8_server.handler.envelopes[-1]
    assert envelope.rcpt_tos == [ZHANG] and "SMTPUTF8" in envelope.mail_options
    sent = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert sent["To"] == ZHANG and sent["Message-ID"] == reply.message_id
    assert sent.get_content().strip() == "已安排补发，请查收。"

    # the acknowledgement that failed goes out once the agent sends it again
    with django_capture_on_commit_callbacks(execute=True):
        mail.resend(users["agent"], ack)
    ack.refresh_from_db()
    assert ack.delivery == Delivery.SENT


def test_an_agent_can_enter_a_chinese_address_and_a_bad_one_is_refused_under_its_field(db, users, xiehe, api_for):
    from django.core.exceptions import ValidationError

    from pharmacrm.servicedesk import editing, services

    data = {"subject": "咨询", "channel": "phone", "category": "drug_info", "institution": xiehe}
    ticket = services.create_ticket(users["agent"], {**data, "reply_email": "李四@医院.中国"})
    assert ticket.reply_email == "李四@医院.中国"
    for bad in ("张 三@公司.cn", "张三\u200b@公司.cn", "张三@", "张三"):
        with pytest.raises(ValidationError) as exc:
            services.create_ticket(users["agent"], {**data, "reply_email": bad})
        assert "reply_email" in exc.value.message_dict
    created = api_for("agent").post("/api/v1/tickets/", {**data, "institution": xiehe.pk, "reply_email": ZHANG},
                                    format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    refused = api_for("agent").post("/api/v1/tickets/", {**data, "institution": xiehe.pk, "reply_email": "张 三@公司.cn"},
                                    format="json")  # fmt: skip
    assert refused.status_code == 400 and "reply_email" in refused.json()
    assert editing._personal("reply_email", ZHANG) == ZHANG
    # the public web form takes it too, and a bad one is refused under its field
    web = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert web.post("/help/", _form(email="王五@医院.cn", subject="另一个问题")).status_code == 302
    assert "王五@医院.cn" in [t.reply_email for t in Ticket.objects.all()]  # encrypted: compared after reading
    response = web.post("/help/", _form(email="王 五@医院.cn", subject="第三个问题"))
    assert response.status_code == 400 and "email" in response.context["form"].errors


# --- 5. a reply the worker gives up on ---------------------------------------------------------------------


def test_the_agent_is_told_when_the_worker_gives_up_on_a_reply(
    db, users, xiehe, mail_settings, worker_inline, settings, django_capture_on_commit_callbacks  # noqa: F811
):
    """The mail server was down for the four hours of attempts: the reply read *Failed for good* on the ticket,
    but nobody was told, and the customer waited for an answer that never left. Now the ticket's holder finds
    it in the bell (once, not once per attempt)."""
    from pharmacrm.notify.models import Notification
    from pharmacrm.servicedesk import conversation, services

    agent = users["agent"]
    ticket = services.create_ticket(agent, {
        "subject": "说明书丢失", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "reply_email": CUSTOMER, "assignee": agent,
    })  # fmt: skip
    settings.EMAIL_PORT = mailservers.free_port()  # nothing listens: the SMTP server is down
    with django_capture_on_commit_callbacks(execute=True):
        reply = conversation.post_message(agent, ticket, kind=MessageKind.REPLY, body="已补寄说明书。")
    told = Notification.objects.filter(recipient=agent, kind="ticket.reply_failed", object_id=str(ticket.pk))
    assert not told.exists()  # a failed attempt that will be retried is no news
    later = timezone.now()
    for _attempt in range(mail.MAX_ATTEMPTS + 2):
        later += dt.timedelta(hours=3)
        mail.retry_failed(later)
    reply.refresh_from_db()
    assert reply.delivery == Delivery.GAVE_UP
    assert told.count() == 1
    assert ticket.number in told.get().title


def test_the_team_is_told_when_the_holder_left_and_the_team_has_no_lead(db, users, xiehe):
    """The agent who held the ticket left (account switched off) and the team has no lead: the customer's answer
    was told to nobody. Now the team's members are told."""
    from pharmacrm.core.models import Team
    from pharmacrm.core.roles import Role
    from pharmacrm.notify.models import Notification
    from pharmacrm.servicedesk import conversation, services
    from tests.conftest import new_user

    team = Team.objects.create(name="客服三组")
    holder = new_user("agent4", Role.AGENT, teams=(team,))
    colleague = new_user("agent5", Role.AGENT, teams=(team,))
    ticket = services.create_ticket(holder, {
        "subject": "说明书丢失", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "reply_email": CUSTOMER, "assignee": holder, "team": team,
    })  # fmt: skip
    holder.is_active = False
    holder.save(update_fields=["is_active"])
    ticket.refresh_from_db()
    conversation.receive_inbound(ticket, body="请再寄一份说明书。", sender=CUSTOMER)
    told = Notification.objects.filter(kind="ticket.customer_wrote", object_id=str(ticket.pk))
    assert list(told.values_list("recipient", flat=True)) == [colleague.pk]
