"""QA round 22 — the service desk's mail intake, answer templates and surveys as Chinese customers and agents
meet them: file names in RFC 2231 GBK / Big5, the ticket number kept in a subject as the acknowledgement asks,
placeholders typed with a Chinese input method."""

from __future__ import annotations

import base64
from urllib.parse import quote_from_bytes

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from pharmacrm.notify.models import Notification
from pharmacrm.servicedesk import conversation, knowledge, mail, revisit, services
from pharmacrm.servicedesk.choices import Delivery, MessageKind, Status
from pharmacrm.servicedesk.models import Ticket
from tests.servicedesk.test_qa_round20_mail import raw_mail, take_in  # noqa: F401

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def with_file(disposition: bytes, message_id: bytes = b"<att2231@h.test>") -> bytes:
    return (
        b"From: w@hospital.test\r\nTo: service@pharmacrm.test\r\nSubject: report\r\nMessage-ID: " + message_id
        + b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n--B\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: " + disposition + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(PDF) + b"\r\n--B--\r\n"
    )  # fmt: skip


def pct(text: str, codec: str) -> bytes:
    return quote_from_bytes(text.encode(codec)).encode()


@pytest.mark.parametrize(
    ("name", "disposition"),
    [
        # Foxmail / Outlook on Chinese Windows label GBK gb2312; 喆 is outside GB2312
        ("王喆的处方.pdf", b"attachment; filename*=gb2312''" + pct("王喆的处方.pdf", "gbk")),
        # a long name split in pieces, the cut inside a two-byte character
        ("王喆的处方.pdf", b"attachment;\r\n filename*0*=gbk''" + pct("王喆的处方.pdf", "gbk")[:9]
         + b";\r\n filename*1*=" + pct("王喆的处方.pdf", "gbk")[9:]),
        # Hong Kong: Big5 with the HKSCS character 堃
        ("陳志堃的處方.pdf", b"attachment; filename*=big5''" + pct("陳志堃的處方.pdf", "big5hkscs")),
        # no charset named, GBK bytes
        ("检验报告.pdf", b"attachment; filename*=''" + pct("检验报告.pdf", "gbk")),
        # the ordinary UTF-8 form still reads
        ("检验报告.pdf", b"attachment; filename*=UTF-8''" + pct("检验报告.pdf", "utf-8")),
    ],
)
def test_an_attachment_named_in_rfc_2231_gbk_or_big5_keeps_its_name(take_in, name, disposition):  # noqa: F811
    """The standard library decodes an RFC 2231 name strictly in the charset it names: a GBK name labelled
    gb2312 (or a Big5-HKSCS one labelled big5, or one without a charset) was stored as 王�吹拇Ψ�.pdf — the
    agent could not tell the prescription from the lab report, and the customer's file looked damaged."""
    message = take_in(with_file(disposition))
    assert [a.name for a in message.ticket.attachments.all()] == [name]


# --- the ticket number in the subject -------------------------------------------------------------------


@pytest.fixture
def resolved(take_in, users):  # noqa: F811
    ticket = take_in(raw_mail(subject="用法咨询".encode(), message_id=b"<first22@hospital.test>")).ticket
    services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    return ticket


@pytest.mark.parametrize(
    "subject",
    ["关于{n}的补充资料", "【{n}】补充资料", "补充 {lower}", "关于{wide}的补充资料"],
)
def test_a_new_mail_keeping_the_number_as_asked_reaches_its_ticket(take_in, resolved, subject):  # noqa: F811
    """The acknowledgement asks the customer to keep TK-2026-000123 in the subject. A customer who wrote a new
    mail (not a Reply) with the number as written there, in 【】 or typed full-width, got a second ticket and a
    second acknowledgement, and the agent of the first never saw the documents."""
    n = resolved.number
    wide = n.translate({ord(c): ord(c) + 0xFEE0 for c in "TK0123456789-"})
    text = subject.format(n=n, lower=n.lower(), wide=wide)
    message = take_in(raw_mail(subject=text.encode(), body="附件是检验报告。".encode(), message_id=b"<new22@h.test>"))
    assert message.ticket == resolved
    assert Ticket.objects.count() == 1
    resolved.refresh_from_db()
    assert resolved.status == Status.IN_PROGRESS
    assert resolved.messages.filter(kind=MessageKind.REPLY, author=None).count() == 1  # no second acknowledgement


def test_a_bare_number_from_a_stranger_still_makes_a_new_ticket(take_in, resolved):  # noqa: F811
    message = take_in(raw_mail(sender=b"x@other.test", subject=f"关于{resolved.number}".encode(),
                               message_id=b"<stranger22@h.test>"))  # fmt: skip
    assert message.ticket != resolved
    assert Ticket.objects.count() == 2


def test_a_longer_number_is_not_taken_for_a_ticket_number(take_in, resolved):  # noqa: F811
    message = take_in(raw_mail(subject=f"批号 X{resolved.number}9".encode(), message_id=b"<other22@h.test>"))
    assert message.ticket != resolved


# --- answer templates ------------------------------------------------------------------------------------


def test_a_placeholder_in_full_width_braces_is_filled_in(users, xiehe):
    """A template written with a Chinese input method has ｛customer｝ (full-width braces): it was saved without a
    word and the reply went out to the customer reading 尊敬的｛customer｝."""
    ticket = services.create_ticket(users["agent"], {
        "subject": "咨询用法", "channel": "email", "category": "drug_info", "institution": xiehe,
    })  # fmt: skip
    tpl = knowledge.create_template(users["expert"], {
        "name": "问候", "language": "zh-hans", "body": "尊敬的｛customer｝：您的工单｛ｔｉｃｋｅｔ｝已收到。",
    })  # fmt: skip
    assert knowledge.render(tpl, ticket, users["agent"]) == f"尊敬的{xiehe.name}：您的工单{ticket.number}已收到。"


def test_an_unknown_placeholder_in_full_width_braces_is_refused(users):
    with translation.override("en"), pytest.raises(ValidationError) as exc:
        knowledge.create_template(users["expert"], {"name": "坏模板", "body": "尊敬的｛客户｝：您好"})
    assert "{客户}" in exc.value.message_dict["body"][0]


# --- a reply returned by the customer's mail server -------------------------------------------------------


def dsn(message_id: str, action: bytes = b"failed") -> bytes:
    return (
        b"From: MAILER-DAEMON@mx.hospital.test (Mail Delivery System)\r\nTo: service@pharmacrm.test\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-" + action + b"@mx.hospital.test>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=BB\r\n\r\n"
        b"--BB\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nYour message could not be delivered.\r\n"
        b"--BB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.hospital.test\r\n\r\n"
        b"Final-Recipient: rfc822; wang@hospital.test\r\nAction: " + action + b"\r\nStatus: 5.1.1\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 <wang@hospital.test>: Recipient address rejected: User unknown\r\n\r\n"
        b"--BB\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: " + message_id.encode()
        + b"\r\nSubject: [TK-2026-000001] x\r\n\r\n--BB--\r\n"
    )  # fmt: skip


@pytest.fixture
def sent_reply(take_in, users, mailoutbox, django_capture_on_commit_callbacks):  # noqa: F811
    ticket = take_in(raw_mail(sender=b"wang@hospital.test", subject="用法咨询".encode(),
                              message_id=b"<ask22@hospital.test>")).ticket  # fmt: skip
    services.assign(users["agent"], ticket, assignee=users["agent"])
    with django_capture_on_commit_callbacks(execute=False):
        reply = conversation.post_message(users["agent"], ticket, kind=MessageKind.REPLY, body="饭后服用。")
    assert mail.send_message(reply.pk) == Delivery.SENT
    Notification.objects.all().delete()
    return reply


def test_a_reply_returned_by_the_customers_server_reads_failed_and_the_agent_is_told(take_in, sent_reply, users):  # noqa: F811
    """The SMTP server accepted the reply, then the hospital's server returned it (user unknown): the bounce was
    ignored like any automatic mail, the reply kept reading 'Sent', and the customer never got the answer."""
    assert take_in(dsn(sent_reply.message_id)) is None  # still no ticket, no answer to the bounce
    sent_reply.refresh_from_db()
    assert sent_reply.delivery == Delivery.GAVE_UP
    assert "5.1.1" in sent_reply.last_error and "User unknown" in sent_reply.last_error
    assert "wang@hospital.test" not in sent_reply.last_error  # the address stays masked on the ticket
    assert Notification.objects.filter(recipient=users["agent"], kind="ticket.reply_bounced").exists()
    assert Ticket.objects.count() == 1
    # the agent corrects the address and sends it again, as for any reply that failed for good
    assert mail.resend(users["agent"], sent_reply).delivery == Delivery.PENDING


def test_a_delay_notice_leaves_the_reply_sent(take_in, sent_reply):  # noqa: F811
    assert take_in(dsn(sent_reply.message_id, action=b"delayed")) is None
    sent_reply.refresh_from_db()
    assert sent_reply.delivery == Delivery.SENT


# --- the product catalogue's search in Chinese -------------------------------------------------------------


@pytest.mark.parametrize(("q", "strength"), [("氨氯地平5mg", "5mg×28片"), ("安心宁，10mg", "10mg×14片"),
                                             ("10mg、氨氯地平", "10mg×14片"), ("盐酸氨氯地平片５ｍｇ", "5mg×28片")])  # fmt: skip
def test_a_name_written_against_its_strength_finds_the_product(users, q, strength):
    """A Chinese agent types the drug and the strength in one go (氨氯地平5mg) or with a Chinese comma: the
    catalogue answered 'no products', as if the company did not make it."""
    common = {"brand_name": "安心宁", "generic_name": "盐酸氨氯地平片", "dosage_form": "片剂", "usage": "一日一次"}
    for number, size in (("国药准字H20249871", "5mg×28片"), ("国药准字H20249872", "10mg×14片")):
        knowledge.create_product(users["expert"], {**common, "approval_number": number, "strength": size})
    assert [p.strength for p in knowledge.products(users["agent"], q=q)] == [strength]


# --- surveys: one answer per ticket ----------------------------------------------------------------------


@pytest.fixture
def answered(users, xiehe):
    ticket = services.create_ticket(users["agent"], {
        "subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe, "assignee": users["agent"],
    })  # fmt: skip
    services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    _survey, link = revisit.send_survey(users["agent"], ticket)
    revisit.answer_survey(link.rstrip("/").rsplit("/", 1)[-1], 1, False, "还是不会用")
    ticket.refresh_from_db()
    return ticket


def test_a_ticket_whose_customer_answered_takes_no_second_revisit(users, answered):
    """The customer answered 1 (not solved) and an improvement action opened; a second link (or a phone call
    recorded as a revisit) asked again and both answers counted in the satisfaction figures and the key-account
    evaluation — one ticket, two scores."""
    assert answered.status == Status.RESOLVED  # this category opens an action, the ticket stays resolved
    with translation.override("en"), pytest.raises(ValidationError) as exc:
        revisit.send_survey(users["agent"], answered)
    assert "already answered the revisit" in exc.value.message_dict["ticket"][0]
    with pytest.raises(ValidationError):
        revisit.record_phone_revisit(users["agent"], answered, 5, True)
    assert answered.surveys.filter(answered_at__isnull=False).count() == 1


def test_a_ticket_reopened_and_resolved_again_is_revisited_again(users, answered):
    services.transition(users["agent"], answered, Status.IN_PROGRESS, note="客户再次来电")
    services.transition(users["agent"], answered, Status.RESOLVED, resolution_summary="上门指导", root_cause="usage")
    survey = revisit.record_phone_revisit(users["agent"], answered, 5, True)
    assert survey.score == 5


# --- format=flowed text (Thunderbird, Apple Mail) ----------------------------------------------------------


def test_a_flowed_text_is_read_as_written_and_screened(take_in):  # noqa: F811
    """Thunderbird and Apple Mail wrap a long line at 72 columns with format=flowed: a space at the end of a line
    means the sentence goes on. Read as plain lines, 出现皮 / 疹 stood on two lines, the ticket showed the sentence
    cut in two, and the safety net flagged '身上起了皮' for PV instead of the rash (皮疹) it did not read."""
    body = "您好，我母亲吃了贵公司的阿司匹林肠溶片以后，第二天身上起了皮 \r\n疹。\r\n\r\n王先生".encode()
    message = take_in(raw_mail(body=body, content_type=b"text/plain; charset=utf-8; format=flowed; delsp=yes",
                               message_id=b"<flowed@h.test>"))  # fmt: skip
    ticket = message.ticket
    assert ticket.description == "您好，我母亲吃了贵公司的阿司匹林肠溶片以后，第二天身上起了皮疹。\n\n王先生"
    assert "皮疹" in ticket.safety_flags.get().terms


def test_a_flowed_english_text_keeps_its_spaces(take_in):  # noqa: F811
    message = take_in(raw_mail(body=b"Please call me \r\nback tomorrow.\r\n> quoted \r\n> line\r\n",
                               content_type=b"text/plain; charset=utf-8; format=flowed",
                               message_id=b"<flowed-en@h.test>"))  # fmt: skip
    assert message.ticket.description == "Please call me back tomorrow.\n> quoted line"


def test_a_survey_link_of_a_ticket_reopened_since_has_expired(take_in, users):  # noqa: F811
    """The customer wrote again after the survey went out ("还是不行"): the ticket was reopened, yet the link about
    the resolution that no longer stood could still be answered — the score counted for a request still being
    handled, and the revisit after the real resolution was then refused as a second answer."""
    ticket = take_in(raw_mail(subject="用法咨询".encode(), message_id=b"<ask-s@hospital.test>")).ticket
    services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    _survey, link = revisit.send_survey(users["agent"], ticket)
    token = link.rstrip("/").rsplit("/", 1)[-1]
    again = take_in(raw_mail(subject=f"回复: [{ticket.number}] 用法咨询".encode(), body="还是不行".encode(),
                             message_id=b"<again-s@hospital.test>"))  # fmt: skip
    assert again.ticket == ticket
    ticket.refresh_from_db()
    assert ticket.status == Status.IN_PROGRESS
    with pytest.raises(revisit.SurveyUnavailable) as exc:
        revisit.answer_survey(token, 5, True)
    assert exc.value.reason == "expired"
    # resolved again: the revisit asks about this resolution
    services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="上门指导", root_cause="usage")
    _survey, link = revisit.send_survey(users["agent"], ticket)
    assert revisit.answer_survey(link.rstrip("/").rsplit("/", 1)[-1], 4, True).score == 4
