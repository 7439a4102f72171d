"""Session 42 review, mail: what a Chinese pharmaceutical company's service mailbox really receives — newsletters and
list copies, out-of-office replies with their prefix in brackets —, mails reusing another mail's Message-ID, and a
mail server slow to confirm a reply. With the real local SMTP and IMAP servers (tests/mailservers.py)."""

from __future__ import annotations

import pytest

from pharmacrm.servicedesk import services
from pharmacrm.servicedesk.choices import MessageKind, Status
from pharmacrm.servicedesk.models import Ticket
from tests import mailservers
from tests.mailservers import imap_server, mail_settings, smtp_server  # noqa: F401
from tests.servicedesk.test_mail import customer_mail, desk  # noqa: F401

CUSTOMER, SERVICE, STRANGER = mailservers.CUSTOMER, mailservers.SERVICE, mailservers.STRANGER


@pytest.mark.parametrize("header", ["List_Id", "List_Post"])
def test_a_mailing_lists_copy_is_neither_a_ticket_nor_answered(desk, header):  # noqa: F811
    """The service address was on a vendor's list (or a hospital's): each issue became a ticket, and the acknowledgement
    went to the list — to every member — as "thank you for your message, we registered TK-…"."""
    value = "<pharmacy-news.vendor.test>" if header == "List_Id" else "<mailto:pharmacy-news@vendor.test>"
    desk.send(customer_mail(subject="医药行业资讯 第48期", body="本期要闻……", sender=STRANGER, name="医药资讯",
                            **{header: value}))  # fmt: skip
    assert desk.poll() == {"taken": 0, "skipped": 1, "refused": 0}
    assert not Ticket.objects.exists()
    assert desk.inbox(STRANGER) == []
    assert r"\Seen" in desk.imap.flags(SERVICE)[0]


def test_bulk_mail_becomes_a_ticket_without_an_acknowledgement(desk):  # noqa: F811
    """A mass mailing that is no list's copy (List-Unsubscribe only: a hospital system's or a distributor's mailing)
    may report something, so it is taken in — but answering bulk mail automatically (RFC 3834) sent the
    acknowledgement to a sender who never reads it, one for each mailing."""
    desk.send(customer_mail(subject="召回通知：批号 A2026-11", body="请核对库存。", sender=STRANGER, name="",
                            List_Unsubscribe="<mailto:unsubscribe@elsewhere.test>"))  # fmt: skip
    assert desk.poll() == {"taken": 1, "skipped": 0, "refused": 0}
    ticket = Ticket.objects.get()
    assert (ticket.subject, ticket.reply_email) == ("召回通知：批号 A2026-11", STRANGER)
    assert not ticket.messages.filter(kind=MessageKind.REPLY).exists()
    assert desk.inbox(STRANGER) == []


def test_a_customers_own_mail_is_still_acknowledged(desk):  # noqa: F811
    desk.send(customer_mail())
    assert desk.poll() == {"taken": 1, "skipped": 0, "refused": 0}
    [ack] = desk.inbox(CUSTOMER)
    assert Ticket.objects.get().number in ack["Subject"]


@pytest.mark.parametrize("prefix", ["【自动回复】", "[自动回复] ", "（自动答复）", "[Auto reply] ", "〔自動回覆〕"])
def test_an_out_of_office_reply_with_its_prefix_in_brackets_does_not_reopen_the_ticket(desk, users, prefix):  # noqa: F811
    """Coremail, OA systems and hand-made rules put the prefix in brackets: the customer's out-of-office reply to the
    agent's answer reopened the resolved ticket as "the customer wrote again" (and told the agent)."""
    desk.send(customer_mail(subject="药品咨询"))
    desk.poll()
    ticket = Ticket.objects.get()
    services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    desk.send(customer_mail(subject=f"{prefix}[{ticket.number}] 药品咨询", body="我正在休假，12月8日返回。"))
    assert desk.poll() == {"taken": 0, "skipped": 1, "refused": 0}
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED
    assert ticket.messages.filter(kind=MessageKind.INBOUND).count() == 1
    assert len(desk.inbox(CUSTOMER)) == 1  # the acknowledgement of the first mail only


def test_a_subject_that_only_mentions_an_auto_reply_is_a_customers_mail(desk):  # noqa: F811
    desk.send(customer_mail(subject="为什么我收到了【自动回复】而没有人工答复？"))
    assert desk.poll() == {"taken": 1, "skipped": 0, "refused": 0}
