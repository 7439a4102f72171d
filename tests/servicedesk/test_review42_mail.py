"""Session 42 review (2), mail: Chinese providers' returned-mail notices that are no RFC 3464 report, attachment names
old mail programs can read, and a new ticket's subject without the customer's "回复：" / "Fwd:". With the real local
SMTP and IMAP servers (tests/mailservers.py)."""

from __future__ import annotations

import re

import pytest

from pharmacrm.notify.models import Notification
from pharmacrm.servicedesk import services
from pharmacrm.servicedesk.choices import Delivery, EventKind, MessageKind
from pharmacrm.servicedesk.models import Ticket
from tests import mailservers
from tests.mailservers import imap_server, mail_settings, smtp_server  # noqa: F401
from tests.servicedesk.test_mail import customer_mail, desk  # noqa: F401

CUSTOMER, SERVICE = mailservers.CUSTOMER, mailservers.SERVICE


def qq_notice(message_id: str) -> bytes:
    """QQ邮箱 / Foxmail: an HTML page in GB18030, the returned mail's headers quoted in it."""
    html = (
        "<html><body><p>很抱歉您发送的邮件被退回，以下是该邮件的相关信息：</p>"
        "<p>退信原因：550 Mailbox not found or access denied</p><hr>"
        f"<p>Subject: 关于阿司匹林肠溶片的用法<br>Message-ID: &lt;{message_id[1:-1]}&gt;</p></body></html>"
    )
    return (
        b"From: =?gb18030?B?z7XNs83L0MU=?= <PostMaster@qq.com>\r\nTo: service@pharmacrm.test\r\n"
        b"Subject: =?gb18030?B?z7XNs83L0MU=?=\r\nMessage-ID: <bounce-qq@qq.com>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=gb18030\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ) + html.encode("gb18030")


def netease_notice(message_id: str) -> bytes:
    """网易 163/126 "退信通知": plain text, the original's headers quoted below the reason."""
    return (
        "From: Postmaster@163.com\r\nTo: service@pharmacrm.test\r\nSubject: 退信通知\r\n"
        "Message-ID: <bounce-163@163.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "您发送的邮件未能投递到收件人。\r\n原因：552 5.2.2 Mailbox full\r\n\r\n----- 原邮件头 -----\r\n"
        f"From: service@pharmacrm.test\r\nMessage-ID: {message_id}\r\nSubject: 用法咨询\r\n"
    ).encode()


def postfix_notice(message_id: str) -> bytes:
    """Postfix (an old set-up) with a plain-text body and the returned mail attached, not as a delivery report."""
    return (
        "From: MAILER-DAEMON@mx.hospital.test (Mail Delivery System)\r\nTo: service@pharmacrm.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce-pf@mx.hospital.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n"
        "--BB\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nI'm sorry to have to inform you that your message "
        "could not be delivered.\r\n<customer@hospital.test>: host mx said: 550 5.1.1 User unknown\r\n"
        f"--BB\r\nContent-Type: message/rfc822\r\n\r\nFrom: service@pharmacrm.test\r\nMessage-ID: {message_id}\r\n"
        "Subject: x\r\n\r\nbody\r\n--BB--\r\n"
    ).encode()


def exmail_notice(message_id: str, sender: str = "system@exmail.qq.com") -> bytes:
    """腾讯企业邮 "邮件投递失败", from an address no other check takes for a machine's."""
    return (
        f"From: {sender}\r\nTo: service@pharmacrm.test\r\nSubject: 邮件投递失败\r\n"
        "Message-ID: <bounce-ex@exmail.qq.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "您的邮件无法送达。\r\n错误信息：550 User not found\r\n\r\n"
        f"原邮件信息：\r\n> Message-ID: {message_id}\r\n> Subject: 用法咨询\r\n"
    ).encode()


NOTICES = {"qq": qq_notice, "163": netease_notice, "postfix": postfix_notice, "exmail": exmail_notice}


@pytest.fixture
def sent_reply(desk, users):  # noqa: F811
    desk.send(customer_mail())
    assert desk.poll()["taken"] == 1
    ticket = Ticket.objects.get()
    services.assign(users["agent"], ticket, assignee=users["agent"])
    reply = desk.reply(users["agent"], ticket, "请饭后服用。")
    assert reply.delivery == Delivery.SENT
    return reply


@pytest.mark.parametrize("provider", NOTICES)
def test_a_chinese_providers_returned_mail_notice_marks_the_reply_failed(desk, users, imap_server, sent_reply,  # noqa: F811
                                                                          provider):  # fmt: skip
    """QQ, 163, Tencent Exmail and a plain-text Postfix return a mail without an RFC 3464 report: the notice was
    ignored (or became a ticket), and the agent's reply kept reading "Sent" while the customer never got it."""
    imap_server.append(SERVICE, NOTICES[provider](sent_reply.message_id))
    assert desk.poll() == {"taken": 0, "skipped": 1, "refused": 0}
    sent_reply.refresh_from_db()
    assert sent_reply.delivery == Delivery.GAVE_UP
    assert sent_reply.last_error.startswith("DSN 55")
    assert sent_reply.ticket.events.filter(kind=EventKind.UNDELIVERED, data__message=sent_reply.pk).exists()
    assert Notification.objects.filter(recipient=users["agent"], kind="ticket.reply_bounced").exists()
    assert Ticket.objects.count() == 1
    assert sent_reply.ticket.messages.filter(kind=MessageKind.INBOUND).count() == 1


def test_a_second_notice_of_the_same_reply_is_no_ticket(desk, imap_server, sent_reply):  # noqa: F811
    imap_server.append(SERVICE, exmail_notice(sent_reply.message_id))
    imap_server.append(SERVICE, exmail_notice(sent_reply.message_id).replace(b"bounce-ex@", b"bounce-ex2@"))
    assert desk.poll() == {"taken": 0, "skipped": 2, "refused": 0}
    assert Ticket.objects.count() == 1


def test_a_notice_naming_no_reply_of_ours_is_handled_as_before(desk, imap_server, sent_reply):  # noqa: F811
    """A machine's notice about a mail we never sent: from postmaster it is ignored, as any bounce; from system@ (an
    OA system's own notice) it becomes a ticket, as before — and our reply still reads "Sent"."""
    imap_server.append(SERVICE, netease_notice("<not-ours@elsewhere.test>"))
    imap_server.append(SERVICE, exmail_notice("<not-ours@elsewhere.test>", sender="system@oa.hospital.test"))
    assert desk.poll() == {"taken": 1, "skipped": 1, "refused": 0}
    sent_reply.refresh_from_db()
    assert sent_reply.delivery == Delivery.SENT
    assert Ticket.objects.count() == 2


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
LONG_NAME = "阿司匹林肠溶片（100mg）说明书 — 2026年12月修订版 用法用量与不良反应.pdf"


def test_a_replys_chinese_file_names_are_also_in_the_content_type_for_old_mail_programs(desk, users):  # noqa: F811
    """Outlook 2007 and old Foxmail read a file's name only from `name=` in the Content-Type, in RFC 2047 form: Django
    writes a Chinese name only as RFC 2231 `filename*=`, and the customer got "ATT00001.bin" / "未命名附件"."""
    import email.header

    from django.core.files.uploadedfile import SimpleUploadedFile

    desk.send(customer_mail())
    desk.poll()
    ticket = Ticket.objects.get()
    files = [SimpleUploadedFile(n, PDF, "application/pdf") for n in ("说明书.pdf", LONG_NAME, "label.pdf")]
    desk.reply(users["agent"], ticket, "请见附件。", files=files)
    reply_mail = [m for m in desk.inbox(CUSTOMER) if "请见附件" in m.get_body(("plain",)).get_content()][0]
    parts = list(reply_mail.iter_attachments())
    assert [p.get_filename() for p in parts] == ["说明书.pdf", LONG_NAME, "label.pdf"]  # as every program reads it
    for part, name in zip(parts[:2], ("说明书.pdf", LONG_NAME), strict=True):
        raw = {key.lower(): re.sub(r"\s+", " ", value) for key, value in part.raw_items()}  # as the mail wrote them
        assert "filename*=" in raw["content-disposition"]  # RFC 2231 kept for the programs that read it
        written = re.search(r'name="(=\?utf-8\?b\?[^"]+)"', raw["content-type"])  # the encoded words old programs read
        assert written and str(email.header.make_header(email.header.decode_header(written.group(1)))) == name
        assert part.get_content() == PDF
    assert "name=" not in dict(parts[2].raw_items())["Content-Type"]  # an ASCII name is written as before


@pytest.mark.parametrize(("written", "kept"), [
    ("回复：关于阿司匹林的用法", "关于阿司匹林的用法"),
    ("答复: 用法咨询", "用法咨询"),
    ("转发:转发： 批号 A2026-11 的投诉", "批号 A2026-11 的投诉"),
    ("RE: 回复: 不良反应报告", "不良反应报告"),
    ("Fwd: Re[2]: dosage question", "dosage question"),
    ("回复：", "回复："),  # nothing but a prefix: kept as written
    ("Report: 样品申请", "Report: 样品申请"),
])  # fmt: skip
def test_a_new_tickets_subject_loses_reply_and_forward_prefixes(desk, written, kept):  # noqa: F811
    """A customer answering an old mail, or a colleague's forward, became a ticket named "RE: 回复: …" in the agents'
    list; the mail itself keeps its subject as it came."""
    desk.send(customer_mail(subject=written))
    assert desk.poll()["taken"] == 1
    ticket = Ticket.objects.get()
    assert ticket.subject == kept
    assert ticket.messages.get(kind=MessageKind.INBOUND).subject == written


def test_an_answer_with_a_prefix_still_finds_its_ticket(desk):  # noqa: F811
    desk.send(customer_mail(subject="回复：用法咨询"))
    desk.poll()
    ticket = Ticket.objects.get()
    desk.send(customer_mail(subject=f"回复：[{ticket.number}] 用法咨询", body="补充：我今年68岁。"))
    assert desk.poll() == {"taken": 1, "skipped": 0, "refused": 0}
    assert Ticket.objects.count() == 1
    assert ticket.messages.filter(kind=MessageKind.INBOUND).count() == 2
