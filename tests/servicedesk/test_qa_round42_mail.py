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


class _SlowToConfirm:
    """aiosmtpd handler of a mail gateway that scans a mail before it answers the end of its data (Coremail's and
    Tencent's gateways take seconds to minutes over a PDF), then delivers it as the test server does."""

    def __init__(self, deliver) -> None:
        self.deliver = deliver

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        return await self.deliver.handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        import asyncio

        await asyncio.sleep(3)
        return await self.deliver.handle_DATA(server, session, envelope)


@pytest.fixture(scope="module")
def slow_smtp_server(smtp_server):  # noqa: F811
    from aiosmtpd.controller import Controller

    for _attempt in range(5):
        port = mailservers.free_port()
        controller = Controller(_SlowToConfirm(smtp_server.handler), hostname="127.0.0.1", port=port,
                                decode_data=False)  # fmt: skip
        try:
            controller.start()
            break
        except OSError:  # the port was taken in between
            continue
    else:
        pytest.fail("The slow test SMTP server did not start")
    try:
        yield port
    finally:
        controller.stop()


def test_a_reply_the_mail_server_is_slow_to_confirm_reaches_the_customer_once(desk, users, settings,  # noqa: F811
                                                                               slow_smtp_server):
    """EMAIL_TIMEOUT limited every wait for the server: the worker gave up on the answer to the mail's data while the
    gateway was still scanning it, marked the reply failed, and the gateway delivered it all the same — then every
    retry delivered it again, the customer got the same answer several times."""
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.servicedesk import mail
    from pharmacrm.servicedesk.choices import Delivery

    desk.send(customer_mail())
    desk.poll()
    ticket = Ticket.objects.get()
    settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = slow_smtp_server, 1  # reaching it is quick: it is there
    reply = desk.reply(users["agent"], ticket, "您好，饭后服用即可。")
    assert (reply.delivery, reply.last_error) == (Delivery.SENT, "")
    mail.retry_failed(timezone.now() + dt.timedelta(hours=1))
    copies = [m for m in desk.inbox(CUSTOMER) if m["Message-ID"] == reply.message_id]
    assert len(copies) == 1


def test_a_mail_reusing_another_mails_message_id_is_not_lost(desk):  # noqa: F811
    """A hospital's OA system numbers its mails per day (<20261205.1@oa…>), a scanner writes one fixed Message-ID:
    the second doctor's mail with the same id was skipped as "already taken in" — no ticket, no acknowledgement, the
    request read by nobody. The same mail fetched again is still taken in once."""
    fixed = "<20261205.1@oa.hospital.test>"
    desk.send(customer_mail(subject="用药咨询", body="饭前还是饭后？", Message_ID=fixed))
    second = customer_mail(subject="不良反应报告", body="患者服药后出现皮疹。", sender=STRANGER, name="李医生",
                           Message_ID=fixed)  # fmt: skip
    desk.send(second)
    assert desk.poll() == {"taken": 2, "skipped": 0, "refused": 0}
    first_ticket, second_ticket = Ticket.objects.order_by("id")
    assert (first_ticket.subject, first_ticket.reply_email) == ("用药咨询", CUSTOMER)
    assert (second_ticket.subject, second_ticket.reply_email) == ("不良反应报告", STRANGER)
    assert "皮疹" in second_ticket.description
    [ack] = desk.inbox(STRANGER)
    assert second_ticket.number in ack["Subject"]
    desk.imap.append(SERVICE, bytes(second))  # fetched again: the worker was killed before it marked it seen
    assert desk.poll() == {"taken": 0, "skipped": 1, "refused": 0}
    assert Ticket.objects.count() == 2


def test_the_same_sender_reusing_a_message_id_for_another_report_is_heard(desk):  # noqa: F811
    """A hospital's reporting system sends every report with the same subject and one fixed Message-ID."""
    fixed = "<report@adr.hospital.test>"
    desk.send(customer_mail(subject="药品不良反应报告", body="病例一：头晕。", Message_ID=fixed))
    desk.send(customer_mail(subject="药品不良反应报告", body="病例二：皮疹。", Message_ID=fixed))
    assert desk.poll() == {"taken": 2, "skipped": 0, "refused": 0}
    assert sorted(Ticket.objects.values_list("description", flat=True)) == ["病例一：头晕。", "病例二：皮疹。"]


def test_a_mail_without_a_message_id_delivered_twice_is_one_ticket(desk):  # noqa: F811
    """A web form's mail (no Message-ID) came twice — the sender's server sent it again after a timeout —, the two
    copies differing only in the lines the servers on the way add: its made-up id was the hash of the whole mail,
    so each copy became a ticket and the customer got two acknowledgements."""
    raw = (
        f"From: 王医生 <{CUSTOMER}>\r\nTo: {SERVICE}\r\nSubject: 网站留言：用药咨询\r\n"
        "Date: Sat, 05 Dec 2026 09:00:00 +0800\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n请问饭前还是饭后服用？\r\n"
    ).encode()
    desk.imap.append(SERVICE, b"Received: from mx1.hospital.test (id 4F1A)\r\n" + raw)
    desk.imap.append(SERVICE, b"Received: from mx1.hospital.test (id 9C2B)\r\nX-Spam-Score: 0.4\r\n" + raw)
    assert desk.poll() == {"taken": 1, "skipped": 1, "refused": 0}
    assert Ticket.objects.count() == 1
    assert len(desk.inbox(CUSTOMER)) == 1


def test_two_mails_without_a_message_id_are_two_tickets(desk):  # noqa: F811
    def form_mail(text: str) -> bytes:
        return (
            f"From: {CUSTOMER}\r\nTo: {SERVICE}\r\nSubject: 网站留言\r\nDate: Sat, 05 Dec 2026 09:00:00 +0800\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n"
        ).encode()

    desk.imap.append(SERVICE, form_mail("第一条留言"))
    desk.imap.append(SERVICE, form_mail("第二条留言"))
    assert desk.poll() == {"taken": 2, "skipped": 0, "refused": 0}


def test_replies_from_a_desk_on_a_chinese_domain_thread_back(desk, settings):  # noqa: F811
    """SERVICEDESK_MAIL_FROM on a Chinese domain (客服中心 <kefu@药企.cn>): the desk's Message-IDs named the domain as
    typed, and the header went out as an encoded word (=?utf-8?b?…?=), which is no Message-ID — the customer's mail
    program could not thread, and a colleague's "reply all" (another address, no number in the subject) became a
    new ticket."""
    settings.SERVICEDESK_MAIL_FROM = "客服中心 <kefu@药企.cn>"
    desk.send(customer_mail(subject="样品申请"))
    assert desk.poll()["taken"] == 1
    ticket = Ticket.objects.get()
    [ack] = desk.inbox(CUSTOMER)
    raw_id = dict(ack.raw_items())["Message-ID"].strip()  # as a mail program copies it into its answer
    assert raw_id.isascii() and raw_id.endswith("@xn--hoq019j.cn>")
    colleague = "other@hospital.test"
    desk.send(customer_mail(subject="答复: 样品申请", body="我是王医生的同事，样品请寄到药剂科。", sender=colleague,
                            name="李药师", In_Reply_To=raw_id, References=raw_id))  # fmt: skip
    assert desk.poll() == {"taken": 1, "skipped": 0, "refused": 0}
    assert Ticket.objects.count() == 1
    answer = ticket.messages.filter(kind=MessageKind.INBOUND).order_by("id").last()
    assert (answer.sender, answer.in_reply_to) == (colleague, raw_id)


def test_a_mail_labelled_gb2312_but_written_in_utf8_is_read(desk):  # noqa: F811
    """A hospital's web form keeps gb2312 in its template and writes UTF-8: read as labelled, the subject, the doctor's
    name and the text came out as mojibake (用药咨询 as 鐢ㄨ嵂鍜ㄨ…) whenever the bytes happened to be valid GB18030 —
    the agent could not read the request and the safety screening did not see 头晕."""
    import base64

    def word(text: str) -> bytes:
        return b"=?gb2312?B?" + base64.b64encode(text.encode()) + b"?="

    raw = (
        b"From: " + word("李医生") + f" <{CUSTOMER}>\r\nTo: {SERVICE}\r\n".encode() + b"Subject: " + word("用药咨询")
        + b"\r\nMessage-ID: <form-42@hospital.test>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=gb2312\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + "请问饭后吃会不会头晕".encode() + b"\r\n"
    )  # fmt: skip
    desk.imap.append(SERVICE, raw)
    assert desk.poll()["taken"] == 1
    ticket = Ticket.objects.get()
    assert (ticket.subject, ticket.caller_name, ticket.description) == ("用药咨询", "李医生", "请问饭后吃会不会头晕")


def test_a_mail_really_in_gbk_is_still_read_as_gbk(desk):  # noqa: F811
    raw = (
        f"From: {CUSTOMER}\r\nTo: {SERVICE}\r\nMessage-ID: <gbk-42@hospital.test>\r\n".encode()
        + b"Subject: =?gb2312?B?" + base64_gbk("医生咨询") + b"?=\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=gb2312\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + "阿司匹林饭后服用，王喆".encode("gbk") + b"\r\n"
    )  # fmt: skip
    desk.imap.append(SERVICE, raw)
    assert desk.poll()["taken"] == 1
    ticket = Ticket.objects.get()
    assert (ticket.subject, ticket.description) == ("医生咨询", "阿司匹林饭后服用，王喆")


def base64_gbk(text: str) -> bytes:
    import base64

    return base64.b64encode(text.encode("gbk"))
