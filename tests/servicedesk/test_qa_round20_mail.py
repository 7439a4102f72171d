"""QA round 20 — the service desk's e-mail channel: what Chinese mail programs really send (raw 8-bit
headers, GBK encoded words split mid-character, mails without a charset, Big5-HKSCS), read receipts and
out-of-office replies that must not reopen a ticket."""

from __future__ import annotations

import base64
import email
import email.policy

import pytest
from django.utils import translation

from pharmacrm.servicedesk import conversation, mail, services
from pharmacrm.servicedesk.choices import Delivery, MessageKind, Status
from pharmacrm.servicedesk.models import Ticket
from tests import mailservers
from tests.mailservers import imap_server, mail_settings, smtp_server  # noqa: F401
from tests.servicedesk.test_mail import desk  # noqa: F401


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def raw_mail(*, sender: bytes = b"w@hospital.test", subject: bytes = b"x", body: bytes = b"hello",
             content_type: bytes = b"text/plain; charset=utf-8", message_id: bytes = b"<m1@hospital.test>",
             extra: bytes = b"") -> bytes:  # fmt: skip
    return (
        b"From: " + sender + b"\r\nTo: service@pharmacrm.test\r\nSubject: " + subject + b"\r\nMessage-ID: "
        + message_id + b"\r\nMIME-Version: 1.0\r\n" + extra + b"Content-Type: " + content_type
        + b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body + b"\r\n"
    )  # fmt: skip


@pytest.fixture
def take_in(db, django_capture_on_commit_callbacks):
    def run(raw: bytes):
        with django_capture_on_commit_callbacks(execute=False):  # the acknowledgement is not sent here
            return mail.take_in(parse(raw))

    return run


def test_a_sender_name_written_in_raw_utf8_becomes_a_ticket(take_in):
    """Foxmail and many webmails write the name and subject as raw UTF-8 (no encoded words). The name came
    out as surrogate escapes and storing it failed: the mail was flagged and no ticket was made."""
    message = take_in(raw_mail(sender="王医生 <w@hospital.test>".encode(), subject="关于阿司匹林的用法".encode(),
                               body="请问饭前还是饭后服用？".encode()))  # fmt: skip
    ticket = message.ticket
    assert (ticket.caller_name, ticket.subject, ticket.reply_email) == ("王医生", "关于阿司匹林的用法", "w@hospital.test")
    assert "饭前还是饭后" in ticket.description


def test_a_raw_utf8_mail_in_the_mailbox_is_taken_in_and_acknowledged(desk):  # noqa: F811
    """The same through the real mailbox: it was counted as refused, flagged, and the customer heard nothing."""
    raw = raw_mail(sender=f"王医生 <{mailservers.CUSTOMER}>".encode(), subject="药品咨询".encode(),
                   body="请问饭前还是饭后服用？".encode(), message_id=b"<raw8@hospital.test>")  # fmt: skip
    desk.imap.append(mailservers.SERVICE, raw)
    assert desk.poll() == {"taken": 1, "skipped": 0, "refused": 0}
    ticket = Ticket.objects.get()
    assert (ticket.caller_name, ticket.subject) == ("王医生", "药品咨询")
    [ack] = desk.inbox(mailservers.CUSTOMER)
    assert ticket.number in ack["Subject"] and "药品咨询" in ack["Subject"]


def test_a_subject_and_name_in_raw_gbk_are_read(take_in):
    message = take_in(raw_mail(sender="王喆 <w@hospital.test>".encode("gbk"), subject="药品不良反应咨询".encode("gbk"),
                               body="服药后出现皮疹".encode("gbk"), content_type=b"text/plain"))  # fmt: skip
    ticket = message.ticket
    assert (ticket.caller_name, ticket.subject) == ("王喆", "药品不良反应咨询")
    assert ticket.description == "服药后出现皮疹"


def test_a_gbk_subject_split_mid_character_is_read_whole(take_in):
    """A long subject folded into several encoded words by a mail program that cuts a two-byte character in
    half: each word was decoded on its own and the rest of the subject came out shifted (王�垂赜…)."""
    data = "王喆关于阿司匹林肠溶片的用法".encode("gbk")
    words = [data[:3], data[3:14], data[14:]]  # cut after the first byte of 喆 and in the middle of 阿
    subject = b"\r\n ".join(b"=?GBK?B?" + base64.b64encode(w) + b"?=" for w in words)
    name = b"=?gb2312?B?" + base64.b64encode("王".encode("gbk")[:1]) + b"?= =?gb2312?B?" + base64.b64encode(
        "王喆".encode("gbk")[1:]) + b"?="  # fmt: skip
    message = take_in(raw_mail(sender=name + b" <w@hospital.test>", subject=subject))
    assert message.ticket.subject == "王喆关于阿司匹林肠溶片的用法"
    assert message.ticket.caller_name == "王喆"


@pytest.mark.parametrize("codec", ["utf-8", "gbk"])
@pytest.mark.parametrize("content_type", [b"text/plain", b"text/plain; charset=us-ascii"])
def test_a_text_without_its_charset_is_read(take_in, codec, content_type):
    """A mail whose text part names no charset (or says ASCII) but carries Chinese: every character was a
    replacement character (���), the agent could not read the request."""
    message = take_in(raw_mail(body="请问饭前还是饭后服用？".encode(codec), content_type=content_type))
    assert message.ticket.description == "请问饭前还是饭后服用？"
    assert message.body == "请问饭前还是饭后服用？"


def test_an_html_only_mail_without_a_charset_is_read(take_in):
    html = "<html><head><meta charset=gbk></head><body><p>请问饭前</p><p>还是饭后？</p></body></html>"
    message = take_in(raw_mail(body=html.encode("gbk"), content_type=b"text/html"))
    assert message.ticket.description == "请问饭前\n还是饭后？"


def test_a_text_labelled_utf8_but_written_in_gbk_is_read(take_in):
    message = take_in(raw_mail(body="服药后出现皮疹".encode("gbk"), content_type=b"text/plain; charset=utf-8"))
    assert message.ticket.description == "服药后出现皮疹"


def test_big5_from_hong_kong_keeps_its_hkscs_characters(take_in):
    text = "陳志堃先生查詢用法"  # 堃 is a Hong Kong (HKSCS) character, outside plain Big5
    message = take_in(raw_mail(body=text.encode("big5hkscs"), content_type=b"text/plain; charset=big5",
                               subject=b"=?big5?B?" + base64.b64encode(text.encode("big5hkscs")) + b"?="))  # fmt: skip
    assert message.ticket.subject == text
    assert message.ticket.description == text


def test_an_attachment_named_in_raw_gbk_keeps_its_name(take_in):
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    raw = (
        b"From: w@hospital.test\r\nTo: service@pharmacrm.test\r\nSubject: report\r\nMessage-ID: <att@h.test>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n--B\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="' + "检验报告.pdf".encode("gbk") + b'"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(pdf) + b"\r\n--B--\r\n"
    )
    message = take_in(raw)
    assert [a.name for a in message.ticket.attachments.all()] == ["检验报告.pdf"]


def test_an_empty_plain_text_next_to_the_html_does_not_hide_the_request(take_in):
    """Some mail programs send an empty text/plain alternative and the words only in the HTML: the ticket's
    description was "—" and the request was nowhere on the ticket."""
    raw = (
        b"From: w@hospital.test\r\nSubject: x\r\nMessage-ID: <alt@h.test>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/alternative; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"\r\n \r\n--B\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<div>" + "请问饭前还是饭后服用？".encode()
        + b"</div>\r\n--B--\r\n"
    )  # fmt: skip
    message = take_in(raw)
    assert message.ticket.description == message.body == "请问饭前还是饭后服用？"
    assert not message.ticket.attachments.exists()


def test_a_forwarded_mail_with_a_raw_gbk_subject_is_named_after_its_subject(take_in):
    inner = raw_mail(subject="患者用药后皮疹".encode("gbk"), body="患者服药后出现皮疹。".encode("gbk"),
                     content_type=b"text/plain; charset=gbk", message_id=b"<inner@h.test>")  # fmt: skip
    raw = (
        b"From: w@hospital.test\r\nSubject: fwd\r\nMessage-ID: <fwd@h.test>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + "请看医院的来信。".encode() + b"\r\n--B\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--B--\r\n"
    )  # fmt: skip
    message = take_in(raw)
    kept = [a.name for a in message.ticket.attachments.all()]
    assert kept == ["患者用药后皮疹.eml"] or "患者用药后皮疹.eml" in message.body, (kept, message.body)


PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


def test_a_mail_forwarded_as_an_attachment_is_read_and_screened(take_in):
    """A pharmacist forwards a hospital's report "as an attachment": the .eml is not a kind of file the desk
    keeps, so the agent saw only "not accepted: 患者用药后皮疹.eml" — not the report, not the photo in it — and
    the safety net never read the reaction it describes."""
    from email.message import EmailMessage

    inner = EmailMessage()
    inner["From"] = "协和医院药剂科 <pharmacy@xiehe.test>"
    inner["Subject"] = "患者用药后皮疹"
    inner["Date"] = "Tue, 01 Dec 2026 10:00:00 +0800"
    inner.set_content("患者服用阿司匹林肠溶片后出现全身皮疹，已停药。")
    inner.add_attachment(PNG, maintype="image", subtype="png", filename="皮疹照片.png")
    outer = EmailMessage()
    outer["From"] = "w@hospital.test"
    outer["Subject"] = "转发：医院来信"
    outer["Message-ID"] = "<fwd-report@hospital.test>"
    outer.set_content("请看医院的来信。")
    outer.add_attachment(inner)

    with translation.override("en"):
        message = take_in(outer.as_bytes())
    ticket = message.ticket
    assert ticket.description.startswith("请看医院的来信。")
    assert "---------- forwarded mail ----------" in ticket.description
    assert "Subject: 患者用药后皮疹" in ticket.description
    assert "From: 协和医院药剂科 <pharmacy@xiehe.test>" in ticket.description
    assert "全身皮疹，已停药" in ticket.description and "全身皮疹，已停药" in message.body
    assert "皮疹照片.png" in [a.name for a in ticket.attachments.all()]
    assert ticket.safety_flags.exists()  # the reaction reached PV triage


@pytest.fixture
def resolved(take_in, users):
    message = take_in(raw_mail(subject=b"question", message_id=b"<first@hospital.test>"))
    ticket = message.ticket
    services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    return ticket


def receipt(number: str, report_type: bytes) -> bytes:
    return (
        b"From: w@hospital.test\r\nTo: service@pharmacrm.test\r\nSubject: " + "已读: [".encode() + number.encode()
        + b"] question\r\nMessage-ID: <receipt@hospital.test>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/report; report-type=" + report_type + b"; boundary=BB\r\n\r\n--BB\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + "您的邮件已被阅读".encode() + b"\r\n--BB\r\n"
        b"Content-Type: message/disposition-notification\r\n\r\nFinal-Recipient: rfc822;w@hospital.test\r\n"
        b"Disposition: manual-action/MDN-sent-manually; displayed\r\n--BB--\r\n"
    )  # fmt: skip


@pytest.mark.parametrize("report_type", [b"disposition-notification", b"delivery-status"])
def test_a_read_receipt_or_delivery_report_does_not_reopen_the_ticket(take_in, resolved, report_type):
    """Outlook and Foxmail send a read receipt ("已读: [TK-…] …") from the customer's own address: it was taken
    for the customer writing again and reopened the resolved ticket."""
    assert take_in(receipt(resolved.number, report_type)) is None
    resolved.refresh_from_db()
    assert resolved.status == Status.RESOLVED
    assert resolved.messages.filter(kind=MessageKind.INBOUND).count() == 1


@pytest.mark.parametrize("prefix", ["自动答复: ", "自动回复：", "Automatic reply: ", "自動回覆: "])
def test_an_out_of_office_reply_without_headers_does_not_reopen_the_ticket(take_in, resolved, prefix):
    subject = f"{prefix}[{resolved.number}] question".encode()
    assert take_in(raw_mail(subject=subject, body="我正在休假，8日返回。".encode(), message_id=b"<oof@h.test>")) is None
    resolved.refresh_from_db()
    assert resolved.status == Status.RESOLVED


def test_the_customer_writing_again_still_reopens_the_ticket(take_in, resolved):
    subject = f"回复: [{resolved.number}] question".encode()
    message = take_in(raw_mail(subject=subject, body="还是不舒服".encode(), message_id=b"<again@h.test>"))
    assert message.ticket == resolved
    resolved.refresh_from_db()
    assert resolved.status == Status.IN_PROGRESS
    assert Ticket.objects.count() == 1


def test_a_mail_without_a_message_id_fetched_twice_is_taken_in_once(take_in):
    """Some web forms and scanners send mail without a Message-ID: fetched again (the worker killed after taking
    it in, before marking it seen) it became a second ticket and the customer got a second acknowledgement."""
    raw = (b"From: w@hospital.test\r\nSubject: scan\r\nDate: Wed, 02 Dec 2026 09:00:00 +0800\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + "扫描件".encode() + b"\r\n")  # fmt: skip
    first = take_in(raw)
    assert first is not None
    assert take_in(raw) is None
    assert Ticket.objects.count() == 1
    # a different mail without a Message-ID is a ticket of its own
    assert take_in(raw.replace(b"scan", b"scan 2")).ticket != first.ticket


def test_the_reply_to_a_mail_without_a_message_id_names_no_made_up_id(take_in, users, mailoutbox):
    raw = b"From: w@hospital.test\r\nSubject: scan\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    ticket = take_in(raw).ticket
    reply = conversation.post_message(users["agent"], ticket, kind=MessageKind.REPLY, body="已收到")
    assert mail.send_message(reply.pk) == Delivery.SENT
    sent = mailoutbox[-1]
    assert "invalid" not in sent.extra_headers.get("In-Reply-To", "")
    assert "invalid" not in sent.extra_headers.get("References", "")


def test_a_reply_on_a_ticket_whose_subject_has_a_line_break_is_sent(db, users, mailoutbox):
    """A subject with a line break (through the API or an edit): every reply failed for good with "Header
    values can't contain newlines" — the customer never got an answer."""
    ticket = services.create_ticket(users["agent"], {
        "subject": "咨询\n用法", "channel": "api", "category": "other", "caller_name": "王先生",
        "reply_email": "w@hospital.test",
    })  # fmt: skip
    reply = conversation.post_message(users["agent"], ticket, kind=MessageKind.REPLY, body="请饭后服用。")
    assert mail.send_message(reply.pk) == Delivery.SENT
    assert mailoutbox[-1].subject == f"[{ticket.number}] 咨询 用法"


def test_an_auto_responder_without_headers_gets_a_few_acknowledgements_then_none(take_in, mailoutbox, worker_inline,
                                                                                 django_capture_on_commit_callbacks):  # fmt: skip
    """Another system that answers every mail without saying it is automatic (a hospital's own ticket system,
    answering from its service address under its own subject): each of its answers became a ticket whose
    acknowledgement it answered again — a mail loop without end."""
    for n in range(mail.ACK_LIMIT + 3):
        raw = raw_mail(sender=b"service@hospital.test", subject=f"[HOSP-{n}] received".encode(),
                       message_id=f"<loop{n}@hospital.test>".encode())  # fmt: skip
        with django_capture_on_commit_callbacks(execute=True):
            mail.take_in(parse(raw))
    acknowledgements = [m for m in mailoutbox if m.to == ["service@hospital.test"]]
    assert len(acknowledgements) == mail.ACK_LIMIT
    assert Ticket.objects.count() == mail.ACK_LIMIT + 3  # every mail is still on a ticket
    # another customer is acknowledged as ever
    with django_capture_on_commit_callbacks(execute=True):
        mail.take_in(parse(raw_mail(sender=b"li@clinic.test", message_id=b"<other@clinic.test>")))
    assert mailoutbox[-1].to == ["li@clinic.test"]


def test_the_cells_of_an_html_table_stay_apart(take_in):
    html = "<table><tr><td>批号</td><td>20240101</td><td>数量</td><td>2盒</td></tr></table>"
    message = take_in(raw_mail(body=html.encode(), content_type=b"text/html; charset=utf-8"))
    assert message.ticket.description == "批号 20240101 数量 2盒"


# --- knowledge: the product catalogue's search -----------------------------------------------------------


@pytest.fixture
def amlodipine(users):
    from pharmacrm.servicedesk import knowledge

    common = {"brand_name": "安心宁", "generic_name": "盐酸氨氯地平片", "dosage_form": "片剂", "usage": "一日一次"}
    return (
        knowledge.create_product(users["expert"], {**common, "approval_number": "国药准字H20249871", "strength": "5mg×28片"}),
        knowledge.create_product(users["expert"], {**common, "approval_number": "国药准字H20249872", "strength": "10mg×14片"}),
    )  # fmt: skip


@pytest.mark.parametrize("q", ["氨氯地平 5mg", "安心宁　５ｍｇ", "5mg 氨氯地平"])
def test_the_catalogue_finds_a_product_by_name_and_strength(client_for, amlodipine, q):
    """An agent on the phone types the drug and the strength the caller reads from the box: “氨氯地平 5mg”
    found nothing (the whole text had to be one piece of one name)."""
    five, ten = amlodipine
    page = client_for("agent").get("/service/knowledge/products/", {"q": q}, HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert list(page.context["page"].object_list) == [five]


@pytest.mark.parametrize("q", ["氨氯地平", "h20249872", "国药准字 H2024 9872", "H2024 9872"])
def test_the_catalogue_search_by_one_name_or_the_approval_number_still_works(users, amlodipine, q):
    from pharmacrm.servicedesk import knowledge

    found = set(knowledge.products(users["agent"], q=q))
    assert found == (set(amlodipine) if q == "氨氯地平" else {amlodipine[1]})


# --- outgoing ------------------------------------------------------------------------------------------


def test_a_reply_sent_again_after_the_address_was_corrected_goes_to_the_new_address(
    db, users, mailoutbox, worker_inline, django_capture_on_commit_callbacks
):
    """The customer's address was mistyped; the reply failed for good. The agent corrects the address on the
    ticket and presses "Send again" (as the page and the docs say to): it went to the wrong address again."""
    from pharmacrm.servicedesk import editing

    ticket = services.create_ticket(users["agent"], {
        "subject": "咨询", "channel": "phone", "category": "other", "caller_name": "王先生",
        "reply_email": "wang@hospitl.test",
    })  # fmt: skip
    reply = conversation.post_message(users["agent"], ticket, kind=MessageKind.REPLY, body="请饭后服用。")
    # the worker gave up on it
    type(reply).objects.filter(pk=reply.pk).update(delivery=Delivery.GAVE_UP, attempts=mail.MAX_ATTEMPTS)
    reply.refresh_from_db()
    ticket.refresh_from_db()
    editing.edit_ticket(users["agent"], ticket, {"reply_email": "wang@hospital.test"}, version=ticket.version,
                        reason="客户来电更正邮箱")  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        mail.resend(users["agent"], reply)
    reply.refresh_from_db()
    assert reply.delivery == Delivery.SENT
    assert mailoutbox[-1].to == ["wang@hospital.test"]
    assert reply.recipient == "wang@hospital.test"  # the message says where it went


# --- the sender as a known customer (blind index) ------------------------------------------------------


@pytest.mark.parametrize("survivor_has_the_address", [True, False])
def test_a_mail_from_a_merged_duplicates_address_is_linked_to_the_survivor(take_in, users, xiehe,
                                                                         survivor_has_the_address):  # fmt: skip
    """Two records of one doctor, merged: the duplicate keeps its data. A mail from that address then found
    two people (not linked to anyone) — or only the merged-away record, and creating the ticket for a merged
    record was refused: the mail was flagged and no ticket was made at all."""
    from pharmacrm.customers import services as customers

    admin = users["admin"]
    keep = customers.create_person(admin, {
        "name": "李娜", "institution": xiehe, "mobile": "13900139000",
        "email": "lina@hospital.test" if survivor_has_the_address else "li.na@other.test",
    })  # fmt: skip
    dup = customers.create_person(admin, {"name": "李娜", "institution": xiehe, "email": "lina@hospital.test"})
    customers.merge(admin, keep, dup)

    message = take_in(raw_mail(sender=b"Li Na <LiNa@hospital.test>", subject=b"question"))
    assert message is not None
    assert message.ticket.person == keep
    assert message.ticket.institution == xiehe


def test_a_mail_too_large_to_take_in_still_reaches_a_ticket_with_a_note(desk, monkeypatch):  # noqa: F811
    """A customer mails phone photos of a rash, 30 MB: the mail was refused and flagged in the mailbox, no
    ticket, no acknowledgement — nobody at the desk knew the customer had written."""
    from email.message import EmailMessage

    monkeypatch.setattr(mail, "MAX_MAIL_BYTES", 50_000)
    msg = EmailMessage()
    msg["From"] = f"王医生 <{mailservers.CUSTOMER}>"
    msg["To"] = mailservers.SERVICE
    msg["Subject"] = "皮疹照片"
    msg["Message-ID"] = "<big@hospital.test>"
    msg.set_content("照片见附件。")
    msg.add_attachment(PNG + b"\0" * 80_000, maintype="image", subtype="png", filename="photo.png")
    desk.send(msg)
    with translation.override("en"):
        assert desk.poll() == {"taken": 1, "skipped": 0, "refused": 0}
    ticket = Ticket.objects.get()
    assert (ticket.subject, ticket.caller_name, ticket.reply_email) == ("皮疹照片", "王医生", mailservers.CUSTOMER)
    assert "was larger than the 48.8\xa0KB the service desk accepts" in ticket.description
    assert "flagged" in ticket.description
    assert [r"\Flagged" in flags for flags in desk.imap.flags(mailservers.SERVICE)] == [True]
    [ack] = desk.inbox(mailservers.CUSTOMER)
    assert ticket.number in ack["Subject"]
    assert desk.poll() == {"taken": 0, "skipped": 0, "refused": 0}  # seen: not taken in again


def test_the_logo_in_every_answers_signature_is_on_the_ticket_once(take_in):
    """Corporate Outlook signatures carry the company logo as an inline image: every answer added the same
    logo again to the ticket's files (and its history), burying the customer's real attachments."""

    def answer(n: int, number: str = "") -> bytes:
        logo = base64.b64encode(PNG).decode()
        return (
            f"From: w@hospital.test\r\nSubject: [{number}] q\r\nMessage-ID: <sig{n}@h.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/related; boundary=R\r\n\r\n--R\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            f"<p>第{n}封</p><img src=\"cid:logo\">\r\n--R\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\n"
            f"Content-Disposition: inline; filename=\"image001.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{logo}\r\n"
            "--R--\r\n"
        ).encode()

    ticket = take_in(answer(1)).ticket
    take_in(answer(2, ticket.number))
    take_in(answer(3, ticket.number))
    assert ticket.messages.filter(kind=MessageKind.INBOUND).count() == 3
    assert [a.name for a in ticket.attachments.all()] == ["image001.png"]
