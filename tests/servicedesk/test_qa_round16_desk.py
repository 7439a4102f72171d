"""Sixteenth session, from the review of an agent's day: threading of the status-link mail and of a merged
duplicate, reactions told on a revisit or a call back reach PV, mail labelled gb2312, and a status page that
does not contradict itself."""
from __future__ import annotations

import email
import email.policy
import email.utils
from email.message import EmailMessage

from django.core import mail as django_mail

from pharmacrm.servicedesk import conversation, linking, mail, public, services
from pharmacrm.servicedesk.choices import Channel, MessageKind, Status
from pharmacrm.servicedesk.models import Ticket

CUSTOMER = "patient@example.com"


def _answer_to(sent, body="补充一下：我是饭后服用的。") -> EmailMessage:
    """What a mail program makes when the customer presses Reply on `sent` (a Django EmailMessage)."""
    original = email.message_from_bytes(sent.message().as_bytes(), policy=email.policy.default)
    msg = EmailMessage()
    msg["From"] = CUSTOMER
    msg["To"] = original["From"]
    msg["Subject"] = "回复：" + str(original["Subject"])
    msg["Message-ID"] = email.utils.make_msgid(domain="example.com")
    msg["In-Reply-To"] = original["Message-ID"]
    msg["References"] = original["Message-ID"]
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg.set_content(body)
    return email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)


def test_an_answer_to_the_status_link_mail_lands_on_the_ticket(db, users, worker_inline,
                                                               django_capture_on_commit_callbacks):  # fmt: skip
    """The web form mails the customer the status link. The customer answers that mail (the natural thing to
    do: "补充一下…"). The answer must land on the same ticket, not open a second one."""
    ticket = services.create_ticket(services.SYSTEM, {
        "subject": "药品说明书咨询", "description": "请问饭前还是饭后服用？", "category": "drug_info",
        "channel": Channel.WEB, "caller_name": "王女士", "reply_email": CUSTOMER,
    })  # fmt: skip
    django_mail.outbox = []
    with django_capture_on_commit_callbacks(execute=True):
        public.queue_status_link(ticket)
    assert len(django_mail.outbox) == 1
    mail.take_in(_answer_to(django_mail.outbox[0]))
    assert Ticket.objects.count() == 1, "the customer's answer became a second ticket"



def test_an_answer_on_a_merged_duplicate_goes_to_the_ticket_that_stays(db, users, xiehe, worker_inline,
                                                                       django_capture_on_commit_callbacks):  # fmt: skip
    """The customer wrote twice; the agent merged the second ticket into the first. The customer then answers
    the acknowledgement of the second mail: the answer must not reopen the merged (closed) duplicate, where
    nobody looks any more."""
    agent = users["agent"]
    first = services.create_ticket(agent, {
        "subject": "到货数量不符", "category": "order_delivery", "channel": Channel.EMAIL, "institution": xiehe,
        "reply_email": CUSTOMER, "assignee": agent,
    })  # fmt: skip
    second = services.create_ticket(agent, {
        "subject": "到货数量不符（再次来信）", "category": "order_delivery", "channel": Channel.EMAIL,
        "institution": xiehe, "reply_email": CUSTOMER, "assignee": agent,
    })  # fmt: skip
    django_mail.outbox = []
    with django_capture_on_commit_callbacks(execute=True):
        conversation.post_message(agent, second, kind=MessageKind.REPLY, body="您好，我们已收到，正在核实。")
    assert len(django_mail.outbox) == 1
    linking.merge(agent, second, into=first, reason="同一问题")
    second.refresh_from_db()
    assert second.status == Status.CLOSED and second.merged_into_id == first.pk
    mail.take_in(_answer_to(django_mail.outbox[0], body="少了两箱，请尽快补发。"))
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.status == Status.CLOSED, "the merged duplicate was reopened"
    assert first.messages.filter(kind=MessageKind.INBOUND).exists(), "the answer is not on the ticket that stays"


PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


def _resolved_ticket(users, xiehe):
    ticket = services.create_ticket(users["agent"], {
        "subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "assignee": users["agent"], "reply_email": CUSTOMER,
    })  # fmt: skip
    services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    return ticket


def test_an_adverse_reaction_told_in_the_survey_comment_reaches_pv(db, users, xiehe):
    """The revisit is where customers say how it went: "问题解决了，但吃了这个药以后全身起皮疹" is an adverse
    reaction the company has now heard of. Every other customer text is screened by the net; the survey
    comment and the phone revisit's "what the customer said" must be too (day 0 = when it was said)."""
    from pharmacrm.safety.models import Flag
    from pharmacrm.servicedesk import revisit

    ticket = _resolved_ticket(users, xiehe)
    assert not Flag.objects.filter(ticket=ticket).exists()
    revisit.record_phone_revisit(users["agent"], ticket, 4, True, "问题解决了，但吃了这个药以后全身起皮疹，很痒")
    assert Flag.objects.filter(ticket=ticket).exists(), "the reaction in the phone revisit never reached PV"


def test_an_adverse_reaction_in_the_online_survey_reaches_pv(db, users, xiehe):
    from pharmacrm.safety.models import Flag
    from pharmacrm.servicedesk import revisit

    ticket = _resolved_ticket(users, xiehe)
    _survey, link = revisit.send_survey(users["agent"], ticket)
    token = link.rstrip("/").rsplit("/", 1)[-1]
    revisit.answer_survey(token, 5, True, "服药后出现心慌、胸闷，已经去医院了")
    assert Flag.objects.filter(ticket=ticket).exists(), "the reaction in the survey comment never reached PV"



def test_a_mail_labelled_gb2312_keeps_every_character(db, users):
    """Outlook and Foxmail on Chinese Windows label their mails charset=gb2312 but write code page 936 (GBK),
    as every browser and mail program knows (WHATWG maps the label gb2312 to GBK). Names such as 王喆 or
    朱镕基 are GBK, not GB2312: the subject and text must come through intact, not as 王�吹淖裳� — where the
    bytes after the rare character are shifted and "服药后" is lost too."""
    import base64

    subject = "=?gb2312?B?" + base64.b64encode("关于王喆的咨询".encode("gbk")).decode() + "?="
    body = "患者王喆服药后出现头晕。医生：朱镕基".encode("gbk")
    raw = (
        b"From: patient@example.com\r\nTo: service@pharmacrm.localhost\r\nSubject: " + subject.encode()
        + b"\r\nMessage-ID: <gbk-1@example.com>\r\nMIME-Version: 1.0\r\n"
        + b'Content-Type: text/plain; charset="gb2312"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + base64.b64encode(body) + b"\r\n"
    )  # fmt: skip
    inbound = mail.take_in(email.message_from_bytes(raw, policy=email.policy.default))
    ticket = inbound.ticket
    assert ticket.subject == "关于王喆的咨询", ticket.subject
    assert "患者王喆服药后出现头晕" in ticket.description, ticket.description



def test_the_status_page_of_a_ticket_answered_by_phone_does_not_promise_an_answer(db, users, client):
    """The customer left a phone number on the web form; the agent called back, solved it and resolved the
    ticket. The customer's status page then says 已答复 (Answered) and, right below, 暂无答复。我们会尽快回复您。
    (No answer yet. We will reply as soon as possible.) — it must not contradict itself."""
    ticket = services.create_ticket(services.SYSTEM, {
        "subject": "药品储存条件咨询", "category": "drug_info", "channel": Channel.WEB, "caller_name": "王先生",
        "caller_phone": "13800138000",
    })  # fmt: skip
    services.assign(users["agent"], ticket, assignee=users["agent"])
    services.record_response(users["agent"], ticket, channel="phone", summary="已电话告知：2–8℃冷藏")
    services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="电话告知冷藏保存",
                        root_cause="information")  # fmt: skip
    page = client.get(public.status_path(ticket)).content.decode()
    assert "已答复" in page
    assert "暂无答复" not in page, "the page says both 'Answered' and 'No answer yet, we will reply'"



def test_what_the_customer_said_on_the_call_back_reaches_pv(db, users, xiehe):
    from pharmacrm.safety.models import Flag

    ticket = services.create_ticket(users["agent"], {
        "subject": "用法咨询", "channel": "phone", "category": "drug_info", "institution": xiehe, "assignee": users["agent"],
    })  # fmt: skip
    services.record_response(users["agent"], ticket, channel="phone", summary="客户说服药后头晕、呕吐，已停药")
    assert Flag.objects.filter(ticket=ticket).exists()


def test_the_survey_questions_are_read_with_their_choices_and_the_language_menu_waits_for_the_button(
    db, users, xiehe, client
):
    """A screen reader on a radio button heard "5 — very satisfied" without the question; and on the public
    form a keyboard user going down the language menu reloaded the page in another language, losing the request
    typed so far."""
    import re

    from pharmacrm.servicedesk import revisit

    ticket = _resolved_ticket(users, xiehe)
    _survey, link = revisit.send_survey(users["agent"], ticket)
    page = client.get(link.split("127.0.0.1:8000", 1)[-1] if "://" in link else link).content.decode()
    assert re.search(r'<fieldset[^>]*id="field-score"[^>]*>\s*<legend>', page)
    form = client.get("/help/").content.decode()
    assert 'id="language-select"' in form and "data-autosubmit" not in form.split('id="language-select"')[0][-300:]
    assert "data-autosubmit" not in form


def test_the_product_expert_is_told_when_a_ticket_is_handed_to_them(db, users, xiehe):
    """The agent on the hotline hands a dosage question to the product expert (转给产品专家). The expert must learn
    of it (the bell, and e-mail) — otherwise the ticket sits in a queue nobody is watching until it breaches."""
    from pharmacrm.notify.models import Notification

    ticket = services.create_ticket(users["agent"], {
        "subject": "肾功能不全患者剂量调整", "channel": "phone", "category": "usage_guidance", "institution": xiehe,
        "assignee": users["agent"],
    })  # fmt: skip
    services.assign(users["agent"], ticket, assignee=users["expert"])
    assert Notification.objects.filter(recipient=users["expert"]).exists(), "the expert was not told"


def test_the_assignee_is_told_when_the_customer_answers(db, users, xiehe):
    """A ticket waiting on the customer: the customer's e-mail answer puts it back to work, and its assignee
    must be told — they are not looking at a ticket that was waiting."""
    from pharmacrm.notify.models import Notification

    ticket = services.create_ticket(users["agent"], {
        "subject": "到货数量不符", "channel": "phone", "category": "order_delivery", "institution": xiehe,
        "assignee": users["agent"], "reply_email": CUSTOMER,
    })  # fmt: skip
    services.transition(users["agent"], ticket, Status.WAITING)
    Notification.objects.all().delete()
    conversation.receive_inbound(ticket, body="少了两箱。", sender=CUSTOMER, subject=f"[{ticket.number}] 到货数量不符")
    assert Notification.objects.filter(recipient=users["agent"]).exists(), "the assignee was not told"


def test_a_ticket_waiting_on_the_customer_is_not_counted_overdue(db, users, xiehe):
    """Waiting on the customer pauses both clocks. A ticket that has waited for a week for the hospital's
    batch photos is not overdue: the board's per-agent "overdue" count and the queue badge must not say so."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from pharmacrm.servicedesk import views, views_board

    sh = ZoneInfo("Asia/Shanghai")
    received = dt.datetime(2026, 11, 2, 9, 0, tzinfo=sh)  # a Monday
    ticket = services.create_ticket(users["agent"], {
        "subject": "请提供批号照片", "channel": "phone", "category": "product_use", "institution": xiehe,
        "assignee": users["agent"], "received_at": received,
    })  # fmt: skip
    services.record_response(users["agent"], ticket, at=received + dt.timedelta(hours=1), channel="phone")
    ticket.refresh_from_db()
    services.transition(users["agent"], ticket, Status.WAITING, at=received + dt.timedelta(hours=1))
    now = dt.datetime(2026, 11, 9, 10, 0, tzinfo=sh)  # a week later, still waiting
    board = views_board.board_summary(users["manager"], now=now)
    row = next(a for a in board.agents if a.user == users["agent"])
    ticket.refresh_from_db()
    badge = views.next_clock(ticket.clocks.all(), now)
    problems = []
    if row.overdue:
        problems.append(f"board: {row.overdue} overdue")
    if badge.state != "paused" or "overdue" in badge.text or "超时" in badge.text:
        problems.append(f"queue badge: {badge.state} / {badge.text}")
    assert not problems, problems


def test_an_agent_finds_a_callers_earlier_ticket_by_phone(db, users, client_for):
    """王先生 filled in the web form last week (phone only) and now rings the hotline without his number. The
    agent types his phone into the queue search: his ticket must come up (the blind index on the caller's
    phone is there, but nothing searches it)."""
    ticket = services.create_ticket(services.SYSTEM, {
        "subject": "药品储存条件咨询", "category": "drug_info", "channel": Channel.WEB, "caller_name": "王先生",
        "caller_phone": "138 0013 8000",
    })  # fmt: skip
    services.assign(users["agent"], ticket, assignee=users["agent"])
    agent = client_for("agent")
    assert ticket.number in agent.get("/service/").content.decode()
    for typed in ("13800138000", "138 0013 8000"):
        page = agent.get("/service/", {"q": typed}).content.decode()
        assert ticket.number in page, f"searching {typed!r} does not find the caller's ticket"


def test_the_web_form_keeps_the_extension_of_a_hospital_phone(db):
    """Hospital pharmacists give the switchboard and their extension: 010-69156114转8001. The web form accepts
    it and stores 010-69156114 — the agent calls the switchboard and cannot reach the caller."""
    from pharmacrm.servicedesk.forms_revisit import PublicTicketForm

    for typed, extension in (("010-69156114转8001", "8001"), ("0755-86013388-2105", "2105")):
        form = PublicTicketForm({"name": "李药师", "phone": typed, "category": "drug_info", "subject": "咨询",
                                 "description": "请回电", "stamp": "x"})  # fmt: skip
        form.is_valid()
        assert extension in form.cleaned_data.get("phone", ""), f"{typed} became {form.cleaned_data.get('phone')!r}"
    from pharmacrm.customers.normalise import extension

    assert extension("010-1234-5678") == "" and extension("138 0013 8000") == ""  # no extension in these


def test_changing_only_the_category_does_not_rewrite_the_description(db, users, xiehe, client_for):
    """A browser sends a textarea's line breaks as CRLF. The agent opens *Edit details* of a mail ticket (category
    "other") and only picks 药品不良反应: the history and the audit trail must not say the customer's description
    was changed, and the stored text must stay as it came in."""
    from pharmacrm.servicedesk.models import TicketEvent

    ticket = services.create_ticket(users["agent"], {
        "subject": "用药后不适", "channel": "email", "category": "other", "institution": xiehe,
        "description": "您好：\n我母亲服用贵司的药后，出现头晕。\n请问怎么办？", "assignee": users["agent"],
    })  # fmt: skip
    before = ticket.description
    agent = client_for("agent")
    response = agent.post(f"/service/tickets/{ticket.pk}/edit/", {
        "subject": ticket.subject, "description": before.replace("\n", "\r\n"), "category": "",
        "batch_number": "", "version": ticket.version, "reason": "",
        **{"category": str(services.TicketCategory.objects.get(code="adverse_reaction").pk)},
    })  # fmt: skip
    assert response.status_code in (302, 303), response.status_code
    ticket.refresh_from_db()
    assert ticket.category.code == "adverse_reaction"
    edited = TicketEvent.objects.filter(ticket=ticket, kind="edited")
    assert not any("description" in (e.data.get("fields") or {}) for e in edited), "the description was 'changed'"
    assert ticket.description == before


PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


def _mail(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = CUSTOMER
    msg["To"] = "service@pharmacrm.localhost"
    msg["Subject"] = subject
    msg["Message-ID"] = email.utils.make_msgid(domain="example.com")
    msg["Date"] = email.utils.formatdate(localtime=True)
    return msg


def test_a_photo_pasted_into_the_mail_body_is_kept(db, users):
    """A photo pasted into the text (an inline image of a multipart/related HTML body: the damaged box, the
    rash) vanished without a trace; it is kept on the ticket like any other picture."""
    msg = _mail("药盒破损")
    msg.set_content("收到的药盒破损，照片见下：")
    msg.add_alternative('<p>收到的药盒破损，照片见下：</p><img src="cid:photo1">', subtype="html")
    msg.get_payload()[1].add_related(PNG, "image", "png", cid="<photo1>", filename="photo.png")
    inbound = mail.take_in(email.message_from_bytes(msg.as_bytes(), policy=email.policy.default))
    assert [a.name for a in inbound.ticket.attachments.all()] == ["photo.png"]
    assert "收到的药盒破损" in inbound.ticket.description


def test_a_forwarded_mail_is_kept_or_named(db, users):
    """A hospital's mail forwarded as an attachment (message/rfc822) is kept whole, or named as not accepted."""
    inner = _mail("患者用药后皮疹")
    inner.set_content("患者服药后出现皮疹。")
    msg = _mail("转发：医院来信")
    msg.set_content("请看医院的来信。")
    msg.add_attachment(inner)
    inbound = mail.take_in(email.message_from_bytes(msg.as_bytes(), policy=email.policy.default))
    kept = [a.name for a in inbound.ticket.attachments.all()]
    assert kept == ["患者用药后皮疹.eml"] or "患者用药后皮疹.eml" in inbound.body, (kept, inbound.body)
