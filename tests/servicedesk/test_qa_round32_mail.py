"""Thirty-second session, service-desk mail: a customer's preferred language (their record) decides the language
of the acknowledgement and the survey mail when their mail does not name one; an employee who forwards a
customer's mail is named in the ticket's history and its audit entry, and does not get the customer's
acknowledgement. Real SMTP and IMAP servers (tests/mailservers.py)."""

from __future__ import annotations

from django.test import Client

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import Person
from pharmacrm.notify.models import Notification
from pharmacrm.servicedesk import revisit
from pharmacrm.servicedesk import services as desk
from pharmacrm.servicedesk.choices import MessageKind, Status
from pharmacrm.servicedesk.models import Ticket
from tests import mailservers
from tests.mailservers import imap_server, mail_settings, smtp_server  # noqa: F401
from tests.servicedesk.test_qa_round31_mail import FORWARDED, _mail, _poll

CUSTOMER, SERVICE, STRANGER, DOCTOR = mailservers.CUSTOMER, mailservers.SERVICE, mailservers.STRANGER, mailservers.DOCTOR
ACK_EN = "Thank you for your message."
ACK_ZH = "感谢"


def _prefers(language: str, admin) -> Person:
    """The doctor of `xiehe` (zhangwei@example.com), their record set to `language` as an agent does in the form."""
    person = Person.objects.get(name="张伟")
    return customers.update_person(admin, person, {"preferred_language": language}, person.version)


# --- 1. the preferred language of a known person ----------------------------------------------------------


def test_a_known_person_who_prefers_english_gets_the_acknowledgement_in_english(
    db, users, xiehe, mail_settings, imap_server, worker_inline, django_capture_on_commit_callbacks  # noqa: F811
):
    """A foreign KOL at a Beijing hospital, known to the CRM as preferring English, writes without a
    Content-Language header: the acknowledgement was in Chinese (the site's default). Now it is in English; a
    stranger's mail without the header is still answered in zh-Hans."""
    _prefers("en", users["admin"])
    imap_server.append(SERVICE, _mail(sender=DOCTOR, subject="Question about the dosage", body="What is the dose?"))
    imap_server.append(SERVICE, _mail(sender=CUSTOMER, subject="Question about the dosage", body="What is the dose?"))
    assert _poll(django_capture_on_commit_callbacks)["taken"] == 2
    [ack] = imap_server.messages(DOCTOR)
    assert ack.get_content().startswith(ACK_EN)
    assert Ticket.objects.get(person__name="张伟").reply_email == DOCTOR
    [stranger] = imap_server.messages(CUSTOMER)
    assert stranger.get_content().startswith(ACK_ZH)


def test_the_mails_own_content_language_still_wins_over_the_record(
    db, users, xiehe, mail_settings, imap_server, worker_inline, django_capture_on_commit_callbacks  # noqa: F811
):
    """The record says Traditional Chinese; this one mail names zh-CN: the answer to it is in Simplified Chinese.
    The next mail without the header follows the record again."""
    _prefers("zh-hant", users["admin"])
    imap_server.append(SERVICE, _mail(sender=DOCTOR, subject="用法咨询", body="请问用量。", Content_Language="zh-CN"))
    assert _poll(django_capture_on_commit_callbacks)["taken"] == 1
    imap_server.append(SERVICE, _mail(sender=DOCTOR, subject="另一个问题", body="请问保存条件。"))
    assert _poll(django_capture_on_commit_callbacks)["taken"] == 1
    first, second = imap_server.messages(DOCTOR)
    assert first.get_content().startswith("感谢您的来信")
    assert second.get_content().startswith("感謝")


def test_the_survey_mail_is_written_in_the_customers_preferred_language(
    db, users, xiehe, mail_settings, imap_server, worker_inline, django_capture_on_commit_callbacks  # noqa: F811
):
    """The survey link mail was always in the site's default language ("the customer's language is not known").
    Now a ticket of a person who prefers English sends it in English."""
    person = _prefers("en", users["admin"])
    agent = users["agent"]
    with django_capture_on_commit_callbacks(execute=True):
        ticket = desk.create_ticket(agent, {
            "subject": "用法咨询", "channel": "email", "category": "drug_info", "person": person,
            "reply_email": DOCTOR, "assignee": agent,
        })  # fmt: skip
        desk.transition(agent, ticket, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
        revisit.send_survey(agent, ticket)
    [survey] = imap_server.messages(DOCTOR)
    assert survey.get_content().startswith("Dear customer,")


# --- 2. an employee forwards a customer's mail ---------------------------------------------------------------


def test_the_employee_who_forwarded_a_customers_mail_is_in_the_history_and_gets_no_acknowledgement(
    db, users, mail_settings, imap_server, worker_inline, django_capture_on_commit_callbacks  # noqa: F811
):
    """A rep forwards a customer's mail to the desk. The ticket's history did not say who passed it on, and the rep
    got the customer's acknowledgement ("Thank you for your message …"). Now the history reads "Forwarded by <rep>
    at <time>" in the reader's language, the audit entry of the new ticket names the rep, the rep is not the caller
    and gets no acknowledgement — the bell tells them the number instead."""
    rep = users["rep"]
    rep.email = STRANGER
    rep.save(update_fields=["email"])
    imap_server.append(SERVICE, _mail(sender=f"代表 <{STRANGER}>", subject="Fwd: 药品包装破损",
                                      body=FORWARDED.format(customer=CUSTOMER, rep=STRANGER)))  # fmt: skip
    assert _poll(django_capture_on_commit_callbacks)["taken"] == 1
    ticket = Ticket.objects.get()
    assert ticket.reply_email == CUSTOMER and ticket.caller_name == "王医生"
    assert not ticket.messages.filter(kind=MessageKind.REPLY).exists()  # no acknowledgement to anyone
    mails = imap_server.messages(STRANGER)
    assert not any(ACK_ZH in m.get_body(("plain",)).get_content() for m in mails if m.get_body(("plain",)))
    assert imap_server.messages(CUSTOMER) == []
    assert Notification.objects.filter(recipient=rep, kind="ticket.forwarded").count() == 1

    created = ticket.events.get(kind="created")
    forwarded = created.data["forwarded_by"]
    assert forwarded["user"] == rep.pk and forwarded["username"] == rep.username
    entry = AuditEntry.objects.get(action="create", object_type="servicedesk.ticket", object_id=str(ticket.pk))
    assert entry.extra["forwarded_by"]["user"] == rep.pk

    from django.utils import timezone

    when = timezone.localtime(ticket.received_at).strftime("%Y-%m-%d %H:%M")
    agent = users["agent"]
    agent.language = "en"
    agent.save(update_fields=["language"])
    client = Client()
    client.force_login(agent)
    page = client.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert f"Forwarded by {rep} at {when}" in page
