"""Twenty-third session, service-desk mail: the status-link mail of the web form goes through the outbox (an
SMTP outage delays it, never loses it), internationalised addresses (张三@公司.cn) become tickets and are
answered with SMTPUTF8, and a team is told when the customer writes again on a ticket nobody holds."""

from __future__ import annotations

import datetime as dt
import email.utils
import time
from email.message import EmailMessage

from django.test import Client
from django.utils import timezone

from pharmacrm.servicedesk import mail, public
from pharmacrm.servicedesk.choices import Delivery, MessageKind
from pharmacrm.servicedesk.models import Ticket, TicketMessage
from tests import mailservers
from tests.mailservers import imap_server, mail_settings, smtp_server  # noqa: F401

CUSTOMER, SERVICE = mailservers.CUSTOMER, mailservers.SERVICE


def _form(**overrides) -> dict:
    data = {
        "name": "王小明", "phone": "", "email": CUSTOMER, "institution": "北京协和医院",
        "category": "drug_info", "product": "", "batch_number": "", "subject": "用法咨询",
        "description": "请问这个药饭前还是饭后吃？", "website": "", "stamp": public.form_stamp(at=time.time() - 10),
        "privacy": "on",
    }  # fmt: skip
    data.update(overrides)
    return data


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
