"""Session 36 review of the service desk's clocks: the worker's record of a warning or a breach is never
overwritten by an agent's change saved at the same moment."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from pharmacrm.notify.models import Notification
from pharmacrm.servicedesk import services
from pharmacrm.servicedesk.choices import ClockKind, EventKind, Status
from pharmacrm.servicedesk.models import SlaClock, Ticket, TicketEvent
from tests.concurrency import held_while

SH = ZoneInfo("Asia/Shanghai")


def at(y, m, d, hh=0, mm=0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SH)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_warning_the_worker_records_while_the_agent_saves_the_ticket_is_sent_once(users, xiehe):
    """The worker warns of the first-response deadline (75 %) while the agent starts work on the ticket; the
    agent's save read the clocks before the worker's commit. The warning stays recorded: the next sweeps do
    not warn the assignee a second time."""
    ticket = services.create_ticket(users["agent"], {
        "subject": "误服两倍剂量", "channel": "phone", "category": "medication_error", "institution": xiehe,
        "received_at": at(2026, 3, 2, 9), "assignee": users["agent"],
    })  # fmt: skip
    assert ticket.status == Status.ASSIGNED
    clock = SlaClock.objects.get(ticket=ticket, kind=ClockKind.FIRST_RESPONSE)
    assert clock.warn_at == at(2026, 3, 2, 10, 30)

    def agent():
        services.transition(users["agent"], Ticket.objects.get(pk=ticket.pk), Status.IN_PROGRESS,
                            at=at(2026, 3, 2, 10, 31))  # fmt: skip

    held_while(lambda: services.sweep(at(2026, 3, 2, 10, 31)), agent)
    assert Ticket.objects.get(pk=ticket.pk).status == Status.IN_PROGRESS
    clock.refresh_from_db()
    assert clock.warned_at == at(2026, 3, 2, 10, 31)
    assert services.sweep(at(2026, 3, 2, 10, 35))["warned"] == 0
    warnings = TicketEvent.objects.filter(ticket=ticket, kind=EventKind.WARNED)
    assert warnings.count() == 1
    assert Notification.objects.filter(kind="ticket.warning", recipient=users["agent"]).count() == 1


def test_a_long_mail_taken_in_as_a_ticket_can_still_be_recategorised_on_its_edit_page(users, xiehe, client_for):
    """A customer's mail with a long text (a forwarded thread, a pasted report) became a ticket whose
    description is longer than a typed one may be. Mail comes in as "other": the agent's first step is the
    category — the edit page refused every save ("At most 20000 characters") unless the agent cut the
    customer's words. An unchanged description is not checked again."""
    import email
    import email.policy

    from pharmacrm.servicedesk import mail

    body = ("您好，我们医院药剂科在使用贵司产品时遇到以下问题，详细记录如下。" * 800).strip()
    assert len(body) > 20_000
    raw = (
        "From: 王药师 <wang.yaoshi@example.cn>\r\nTo: service@pharma.example\r\nSubject: 用药问题详细记录\r\n"
        "Message-ID: <long-1@example.cn>\r\nDate: Fri, 04 Dec 2026 09:00:00 +0800\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body + "\r\n"
    ).encode()
    inbound = mail.take_in(email.message_from_bytes(raw, policy=email.policy.default))
    ticket = Ticket.objects.get(pk=inbound.ticket_id)
    assert ticket.description == body

    agent = client_for("agent")
    page = agent.get(f"/service/tickets/{ticket.pk}/edit/")
    assert page.status_code == 200
    form = page.context["form"]
    data = {name: form[name].value() for name in ("subject", "description", "batch_number", "caller_name")}
    data = {k: ("" if v is None else v) for k, v in data.items()}
    adverse = services.TicketCategory.objects.get(code="adverse_reaction")
    response = agent.post(f"/service/tickets/{ticket.pk}/edit/", {
        **data, "description": data["description"].replace("\n", "\r\n"), "category": adverse.pk, "product": "",
        "version": ticket.version, "reason": "实为不良反应",
    })  # fmt: skip
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    ticket.refresh_from_db()
    assert ticket.category == adverse and ticket.description == body


def test_a_mail_of_megabytes_of_text_is_cut_with_a_word_on_the_ticket(users, xiehe, client_for):
    """A customer pasted a device log of two megabytes into a mail: the description held it whole (the ticket
    page was megabytes) while the message beside it was cut silently at 50,000 characters. Both keep 50,000 at
    most now, and say that the mail was cut and where the whole of it is."""
    import email
    import email.policy

    from pharmacrm.servicedesk import conversation, mail

    body = "设备日志 ERROR 0x1F 温度超限\n" * 100_000 + "另外，患者服药后第二天全身起了皮疹，很痒。\n"
    raw = (
        "From: 王药师 <wang.yaoshi@example.cn>\r\nTo: service@pharma.example\r\nSubject: 设备日志\r\n"
        "Message-ID: <huge-1@example.cn>\r\nDate: Fri, 04 Dec 2026 09:00:00 +0800\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body
    ).encode()
    inbound = mail.take_in(email.message_from_bytes(raw, policy=email.policy.default))
    ticket = Ticket.objects.get(pk=inbound.ticket_id)
    cut = "邮件正文超过 50000 个字符，已在此处截断；完整邮件仍保存在客服邮箱中。"
    for text in (ticket.description, inbound.body):
        assert len(text) <= conversation.MAX_BODY
        assert text.startswith("设备日志 ERROR 0x1F 温度超限") and text.endswith(cut)
    page = client_for("agent").get(f"/service/tickets/{ticket.pk}/")
    assert page.status_code == 200 and len(page.content) < 1_000_000
    # the reaction told at the end, past what the ticket keeps, still reaches pharmacovigilance
    from pharmacrm.safety.models import Flag

    assert Flag.objects.filter(ticket=ticket).exists()
