"""Thirty-first session, service-desk mail: the reasons a reply was not sent are shown in the reader's language,
the web form says the status link is on its way (not that it was sent), status-link mails do not use up the
acknowledgements, a customer's record takes 张三@公司.cn, and the mail policies (Reply-To, an employee's forward,
the acknowledgement's language). Real SMTP and IMAP servers (tests/mailservers.py)."""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
import importlib
from email.message import EmailMessage

from django.test import Client
from django.utils import timezone, translation

from pharmacrm.servicedesk import mail
from pharmacrm.servicedesk.choices import Delivery, MessageKind
from pharmacrm.servicedesk.models import Ticket, TicketMessage
from tests import mailservers
from tests.mailservers import ascii_smtp_server, imap_server, mail_settings, smtp_server, smtputf8_server  # noqa: F401
from tests.servicedesk.test_public_form import form_data

CUSTOMER, SERVICE, STRANGER = mailservers.CUSTOMER, mailservers.SERVICE, mailservers.STRANGER
ZHANG = "张三@公司.cn"
LINKS_AN_HOUR = 5  # mail.STATUS_LINK_LIMIT
SMTPUTF8_EN = "Not sent: the mail server cannot send to an address with Chinese characters"


def _mail(sender=CUSTOMER, subject="药品包装破损", body="收到的药品外包装破损，请处理。", **headers) -> bytes:
    msg = EmailMessage(policy=email.policy.SMTPUTF8)
    msg["From"] = sender
    msg["To"] = SERVICE
    msg["Subject"] = subject
    msg["Message-ID"] = email.utils.make_msgid(domain="hospital.test")
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg.set_content(body)
    for name, value in headers.items():  # after set_content, which drops the Content-* headers
        msg[name.replace("_", "-")] = value
    return msg.as_bytes(policy=email.policy.SMTPUTF8)


def _poll(capture) -> dict:
    with capture(execute=True):
        return mail.poll_mailbox.call_local()


def _signed_in(user, language: str) -> Client:
    user.language = language
    user.save(update_fields=["language"])
    client = Client()
    client.force_login(user)
    return client


# --- 1. why a reply was not sent, in the reader's language ------------------------------------------------


def test_an_english_agent_reads_why_the_acknowledgement_was_not_sent_in_english(
    db, users, mail_settings, imap_server, ascii_smtp_server, worker_inline, settings, api_for,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    """The desk's mail server does not speak SMTPUTF8, so the acknowledgement to 张三@公司.cn is given up. The
    worker stored the reason in Chinese: an agent whose screen is in English read Chinese on the ticket and in the
    API. Now the row keeps a code and each reader reads the reason in their own language."""
    settings.EMAIL_PORT = ascii_smtp_server.port
    imap_server.append(SERVICE, _mail(sender=f"张三 <{ZHANG}>"))
    assert _poll(django_capture_on_commit_callbacks)["taken"] == 1
    ticket = Ticket.objects.get()
    ack = ticket.messages.get(kind=MessageKind.REPLY)
    assert ack.delivery == Delivery.GAVE_UP

    agent = users["agent"]
    ticket.assignee = agent
    ticket.save(update_fields=["assignee"])
    page = _signed_in(agent, "en").get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert SMTPUTF8_EN in page and "含中文字符" not in page
    page = _signed_in(agent, "zh-hans").get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert "邮件服务器无法向含中文字符的地址发送邮件" in page
    api = api_for("agent").get(f"/api/v1/tickets/{ticket.pk}/messages/", HTTP_ACCEPT_LANGUAGE="en")
    assert api.status_code == 200, api.content
    rows = api.json()["results"] if isinstance(api.json(), dict) else api.json()
    [shown] = [m["last_error"] for m in rows if m["id"] == ack.pk]
    assert shown.startswith(SMTPUTF8_EN)


def test_reasons_stored_in_chinese_before_are_shown_in_the_readers_language_after_the_migration(db, users, xiehe):
    from django.apps import apps

    from pharmacrm.notify.models import Delivery as NotifyDelivery
    from pharmacrm.servicedesk import services

    ticket = services.create_ticket(users["agent"], {
        "subject": "说明书丢失", "channel": "phone", "category": "drug_info", "institution": xiehe,
    })  # fmt: skip
    stored = {
        "未发送：该工单已没有客户的电子邮件地址。": "Not sent: the ticket no longer has the customer's e-mail address.",
        "SMTPRecipientsRefused: 550 5.1.1 user unknown": "SMTPRecipientsRefused: 550 5.1.1 user unknown",
    }
    rows = [TicketMessage.objects.create(ticket=ticket, kind=MessageKind.REPLY, body="…", recipient=CUSTOMER,
                                         delivery=Delivery.GAVE_UP, last_error=text) for text in stored]  # fmt: skip
    gone = NotifyDelivery.objects.create(
        channel="email", email=CUSTOMER, status="gave_up", last_error="未发送：收件人的账号已停用。",
        log=[{"at": "2026-12-01T10:00:00+08:00", "attempt": 1, "code": None, "error": "未发送：收件人的账号已停用。"}],
    )  # fmt: skip
    importlib.import_module("pharmacrm.servicedesk.migrations.0014_delivery_reasons_as_codes").forwards(apps, None)
    importlib.import_module("pharmacrm.notify.migrations.0004_delivery_reasons_as_codes").forwards(apps, None)
    with translation.override("en"):
        for row, (_before, after) in zip(rows, stored.items(), strict=True):
            row.refresh_from_db()
            assert row.last_error_shown == after
        gone.refresh_from_db()
        assert gone.last_error_shown == "Not sent: the recipient's account was deactivated."
        assert gone.log[0]["error"] == "code:recipient_deactivated"
    with translation.override("zh-hant"):
        assert gone.last_error_shown == "未傳送：收件人的帳號已停用。"


# --- 2. the page after the web form says what is true about the status-link mail ----------------------------


def _form(**overrides) -> dict:
    return form_data(**{"phone": "", "email": CUSTOMER, "batch_number": "", **overrides})


def test_the_page_after_the_form_says_the_link_will_be_sent_while_the_mail_waits_in_the_outbox(
    db, mail_settings, imap_server, worker_inline, settings, django_capture_on_commit_callbacks  # noqa: F811
):
    """The mail server is down when the customer sends the form. The page said "We have also sent the link to
    your e-mail address" while the mail only waited in the outbox: the customer looked for a mail that had not
    left. Now it says the link will be sent; once the worker sent it, the page says so."""
    good_port = settings.EMAIL_PORT
    settings.EMAIL_PORT = mailservers.free_port()  # nothing listens
    web = Client(HTTP_ACCEPT_LANGUAGE="en")
    with django_capture_on_commit_callbacks(execute=True):
        response = web.post("/help/", _form())
    assert response.status_code == 302
    page = web.get(response["Location"]).content.decode()
    assert "We will also send the link to your e-mail address" in page
    assert "We have also sent the link" not in page
    assert imap_server.messages(CUSTOMER) == []

    settings.EMAIL_PORT = good_port
    mail.retry_failed(timezone.now() + dt.timedelta(minutes=2))
    assert len(imap_server.messages(CUSTOMER)) == 1
    page = web.get(response["Location"]).content.decode()
    assert "We have also sent the link to your e-mail address." in page
    assert "We will also send" not in page


# --- 3. status-link mails and acknowledgements are counted apart ------------------------------------------


def test_status_link_mails_do_not_use_up_the_acknowledgements_and_have_their_own_limit(
    db, mail_settings, imap_server, worker_inline, settings, django_capture_on_commit_callbacks  # noqa: F811
):
    """A customer sends the web form five times in an hour (five requests, five status links), then writes a
    mail. The five status-link mails counted as acknowledgements, so the mail became a ticket without the
    acknowledgement with its number. Now they are counted apart; status links have their own limit of five an
    hour to one address (the form limits clients, not the address typed in)."""
    settings.SERVICEDESK_WEB_FORM_PER_HOUR = 100
    for n in range(LINKS_AN_HOUR + 1):
        web = Client(HTTP_ACCEPT_LANGUAGE="en", REMOTE_ADDR=f"10.0.0.{n + 1}")
        with django_capture_on_commit_callbacks(execute=True):
            assert web.post("/help/", _form(subject=f"问题{n}")).status_code == 302
    assert Ticket.objects.filter(channel="web").count() == LINKS_AN_HOUR + 1
    assert len(imap_server.messages(CUSTOMER)) == LINKS_AN_HOUR  # the sixth: shown on the page only

    imap_server.append(SERVICE, _mail(sender=CUSTOMER, subject="另一个问题"))
    assert _poll(django_capture_on_commit_callbacks)["taken"] == 1
    ticket = Ticket.objects.get(channel="email")
    ack = ticket.messages.get(kind=MessageKind.REPLY)
    assert ack.delivery == Delivery.SENT
    received = imap_server.messages(CUSTOMER)
    assert len(received) == LINKS_AN_HOUR + 1 and ticket.number in received[-1]["Subject"]


# --- 4. a customer record with an internationalised address ---------------------------------------------


def test_a_customer_record_takes_a_chinese_address_and_the_mail_from_it_finds_the_record(
    db, users, xiehe, mail_settings, imap_server, smtputf8_server, worker_inline, settings, api_for,  # noqa: F811
    django_capture_on_commit_callbacks, tmp_path,
):
    """The desk took 张三@公司.cn since session 30, but the customer record refused it (form, API and import), so
    the mail from 张三 became a ticket of an unknown caller, never linked to their record. Now one rule decides
    for both, and the address is compared in one form: a domain in punycode (wang@xn--55qx5d.cn, as some mail
    programs write it) finds the record typed as wang@公司.cn, and the other way round."""
    from pharmacrm.customers import importer
    from pharmacrm.customers.models import Person
    from tests.customers.test_import import people_csv

    settings.EMAIL_PORT = smtputf8_server.port
    settings.VAR_DIR = tmp_path
    created = api_for("kam").post("/api/v1/people/", {"name": "张三", "institution": xiehe.pk, "email": ZHANG},
                                  format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    zhang = Person.objects.get(pk=created.json()["id"])
    refused = api_for("kam").post("/api/v1/people/", {"name": "张四", "institution": xiehe.pk, "email": "张 四@公司.cn"},
                                  format="json")  # fmt: skip
    assert refused.status_code == 400 and "email" in refused.json()

    # the person page's field is no type=email (as the desk's): Chromium marks 张三@公司.cn invalid and rewrites a
    # Chinese domain to punycode
    page = _signed_in(users["kam"], "en").get("/customers/people/new/").content.decode()
    field = page.split('name="email"')[0].rsplit("<input", 1)[1] + page.split('name="email"')[1].split(">", 1)[0]
    assert 'type="email"' not in field and 'inputmode="email"' in field

    path = tmp_path / "people.csv"
    path.write_bytes(people_csv([
        ["李四", "男", "药师", "北京协和医院", "13800138011", "李四@医院.中国", "EXT-31"],
        ["王五", "男", "药师", "北京协和医院", "13800138012", "wang@xn--55qx5d.cn", "EXT-32"],
    ]))  # fmt: skip
    job = importer.import_file(path, "people", users["kam"], mode="all")
    assert (job.error_count, job.created_count) == (0, 2), job.errors
    lisi, wang = Person.objects.get(external_id="EXT-31"), Person.objects.get(external_id="EXT-32")
    assert lisi.email == "李四@医院.中国"

    for sender, subject in ((f"张三 <{ZHANG}>", "药品包装破损"), ("李四 <李四@医院.中国>", "说明书"),
                            ("王五 <wang@公司.cn>", "用法")):  # fmt: skip
        imap_server.append(SERVICE, _mail(sender=sender, subject=subject))
    assert _poll(django_capture_on_commit_callbacks)["taken"] == 3
    assert Ticket.objects.get(subject="药品包装破损").person == zhang
    assert Ticket.objects.get(subject="说明书").person == lisi
    assert Ticket.objects.get(subject="用法").person == wang
    assert mail.find_person("WANG@XN--55QX5D.CN") == wang and mail.find_person("张三@XN--55QX5D.CN") == zhang


def test_a_record_stored_with_a_punycode_domain_is_found_by_the_unicode_one_after_the_migration(db, users, xiehe):
    from django.apps import apps

    from pharmacrm.core import crypto
    from pharmacrm.customers import services as customers
    from pharmacrm.customers.models import Person

    wang = customers.create_person(users["kam"], {"name": "王五", "institution": xiehe, "email": "wang@xn--55qx5d.cn"})
    assert wang.email == "wang@公司.cn"  # stored in the form it is compared in
    # a record stored before: the domain and its blind index as typed
    Person.objects.filter(pk=wang.pk).update(email="wang@xn--55qx5d.cn",
                                             email_bidx=crypto.blind_index("wang@xn--55qx5d.cn", "email"))
    assert mail.find_person("wang@公司.cn") is None
    importlib.import_module("pharmacrm.customers.migrations.0018_email_bidx_unicode_domain").forwards(apps, None)
    assert mail.find_person("wang@公司.cn") == wang


# --- 5a. Reply-To -----------------------------------------------------------------------------------------


def test_a_new_mails_answers_go_to_its_reply_to_but_the_customer_is_still_its_sender(
    db, users, xiehe, mail_settings, imap_server, worker_inline, django_capture_on_commit_callbacks  # noqa: F811
):
    """A hospital's system sends from a no-reply-like address of its own and sets Reply-To to the pharmacist's
    mailbox. The desk answered From, so the pharmacist never got the acknowledgement nor the answers. Now answers
    go to Reply-To (as Zendesk and Freshdesk do); the customer record is still found by From, and a Reply-To that
    names the desk itself (a loop) is not followed."""
    from pharmacrm.customers.models import Person

    doctor = Person.objects.get(email_bidx__gt="", institution=xiehe)  # zhangwei@example.com
    imap_server.append(SERVICE, _mail(sender=f"张伟 <{mailservers.DOCTOR}>", subject="系统转来的咨询",
                                      Reply_To=f"药剂科 <{CUSTOMER}>"))  # fmt: skip
    imap_server.append(SERVICE, _mail(sender=STRANGER, subject="回复地址是客服自己", Reply_To=SERVICE))
    assert _poll(django_capture_on_commit_callbacks)["taken"] == 2
    ticket = Ticket.objects.get(subject="系统转来的咨询")
    assert ticket.reply_email == CUSTOMER and ticket.person == doctor
    assert ticket.messages.get(kind=MessageKind.INBOUND).sender == mailservers.DOCTOR
    [ack] = imap_server.messages(CUSTOMER)
    assert ticket.number in ack["Subject"] and imap_server.messages(mailservers.DOCTOR) == []
    loop = Ticket.objects.get(subject="回复地址是客服自己")
    assert loop.reply_email == STRANGER and len(imap_server.messages(STRANGER)) == 1

    # the writer of a mail answered at its Reply-To writes again from the same address, with the number: the same
    # ticket (From is checked against the mails the ticket came with), not a new one
    imap_server.append(SERVICE, _mail(sender="other@hospital.test", subject="另一个系统", Reply_To=CUSTOMER))
    assert _poll(django_capture_on_commit_callbacks)["taken"] == 1
    other = Ticket.objects.get(subject="另一个系统")
    imap_server.append(SERVICE, _mail(sender="other@hospital.test", subject=f"{other.number} 补充批号"))
    assert _poll(django_capture_on_commit_callbacks)["taken"] == 1
    assert Ticket.objects.count() == 3 and other.messages.filter(kind=MessageKind.INBOUND).count() == 2

    # the agent's answer goes to the Reply-To address too
    from pharmacrm.servicedesk import conversation

    before = len(imap_server.messages(CUSTOMER))
    with django_capture_on_commit_callbacks(execute=True):
        conversation.post_message(users["agent"], ticket, kind=MessageKind.REPLY, body="请提供批号。")
    assert len(imap_server.messages(CUSTOMER)) == before + 1
    assert imap_server.messages(CUSTOMER)[-1].get_content().strip() == "请提供批号。"


# --- 5b. an employee forwards a customer's mail -------------------------------------------------------------


FORWARDED = """请客服跟进一下这位客户的问题。

---------- Forwarded message ---------
发件人: 王医生 <{customer}>
Date: 2026年12月1日 10:00
Subject: 药品包装破损
To: 销售代表 <{rep}>

收到的药品外包装破损，请处理。批号 B2026-01。
"""


def test_a_mail_an_employee_forwards_makes_the_original_sender_the_caller(
    db, users, mail_settings, imap_server, worker_inline, django_capture_on_commit_callbacks  # noqa: F811
):
    """A rep forwards a customer's mail to the service address. The ticket named the rep as the caller, the answers
    went to the rep and the customer record was never linked. Now (Zendesk's agent forwarding) the original
    sender is the caller and the answers go to them; the rep, who asked the desk to take it over, is told the
    number (session 32: by a notification, not the customer's acknowledgement), and the forwarded message keeps the
    rep as its sender."""
    rep = users["rep"]
    rep.email = STRANGER
    rep.save(update_fields=["email"])
    imap_server.append(SERVICE, _mail(sender=f"代表 <{STRANGER}>", subject="Fwd: 药品包装破损",
                                      body=FORWARDED.format(customer=CUSTOMER, rep=STRANGER)))  # fmt: skip
    # a colleague forwarding another colleague's mail stays as it was: no customer in it
    imap_server.append(SERVICE, _mail(sender=STRANGER, subject="Fwd: 内部通知",
                                      body=FORWARDED.format(customer=STRANGER, rep=CUSTOMER)))  # fmt: skip
    assert _poll(django_capture_on_commit_callbacks)["taken"] == 2
    ticket = Ticket.objects.get(subject="药品包装破损")  # a new ticket: no "Fwd:" in its subject
    assert ticket.reply_email == CUSTOMER and ticket.caller_name == "王医生"
    assert ticket.messages.get(kind=MessageKind.INBOUND).sender == STRANGER
    assert imap_server.messages(CUSTOMER) == []  # the customer did not write to the desk: no surprise mail
    told = [m["Subject"] for m in imap_server.messages(STRANGER)]
    assert any(ticket.number in s for s in told)
    internal = Ticket.objects.get(subject="内部通知")
    assert internal.reply_email == STRANGER

    from pharmacrm.servicedesk import conversation

    with django_capture_on_commit_callbacks(execute=True):
        conversation.post_message(users["agent"], ticket, kind=MessageKind.REPLY, body="已安排补发。")
    [answer] = imap_server.messages(CUSTOMER)
    assert "已安排补发" in answer.get_content()


# --- 5c. the acknowledgement in the customer's language --------------------------------------------------


def test_the_acknowledgement_is_written_in_the_language_the_customer_wrote_in(
    db, mail_settings, imap_server, worker_inline, django_capture_on_commit_callbacks  # noqa: F811
):
    """The acknowledgement was always in zh-Hans, also to a customer writing in English. Now it follows the
    mail's Content-Language (繁體 for zh-TW), except that a mail written in Chinese is answered in Chinese whatever
    the mail program's language; without either, zh-Hans."""
    imap_server.append(SERVICE, _mail(sender=CUSTOMER, subject="Damaged package", Content_Language="en-US",
                                      body="The outer box of the medicine arrived damaged."))  # fmt: skip
    imap_server.append(SERVICE, _mail(sender=STRANGER, subject="藥品包裝破損", Content_Language="zh-TW",
                                      body="收到的藥品外包裝破損。"))  # fmt: skip
    imap_server.append(SERVICE, _mail(sender="other@hospital.test", subject="包装破损", Content_Language="en-US"))
    assert _poll(django_capture_on_commit_callbacks)["taken"] == 3
    [english] = imap_server.messages(CUSTOMER)
    assert english.get_content().startswith("Thank you for your message.")
    with translation.override("zh-hant"):
        hant = translation.gettext("Thank you for your message. We have registered your request as %(number)s and "
                                   "will answer as soon as possible.\n\nPlease keep %(number)s in the subject when you "
                                   "write about this request.\n\nYour request: %(subject)s")  # fmt: skip
    [traditional] = imap_server.messages(STRANGER)
    assert traditional.get_content().startswith(hant.split("%")[0]) and not hant.startswith("Thank")
    [chinese] = imap_server.messages("other@hospital.test")
    assert chinese.get_content().startswith("感谢")


def test_the_status_link_mail_is_written_in_the_language_of_the_form(
    db, mail_settings, imap_server, worker_inline, django_capture_on_commit_callbacks  # noqa: F811
):
    """The web form's status-link mail follows the language the form was shown in (Accept-Language); it stays so
    when the worker sends it later, in its own default language."""
    web = Client(HTTP_ACCEPT_LANGUAGE="en")
    with django_capture_on_commit_callbacks(execute=True):
        assert web.post("/help/", _form()).status_code == 302
    [link] = imap_server.messages(CUSTOMER)
    assert link.get_content().startswith("Thank you for contacting us.")
