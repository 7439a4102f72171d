"""QA (access control and personal data): failing tests for defects found in review."""

from __future__ import annotations

import pytest

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.models import Person

A = AuditEntry.Action


@pytest.fixture
def zhang(xiehe):
    return Person.objects.get(name="张伟")


# --- an agent learns masked personal data without revealing it (no reason, no audit) ---------------------


@pytest.mark.parametrize(
    "field,right,wrong",
    [
        ("mobile", "13800138000", "13800139999"),
        ("birthday", "1975-03-15", "1976-03-15"),
        ("email", "zhangwei@example.com", "zhangwei@example.org"),
    ],
)
def test_a_stale_patch_does_not_tell_an_agent_whether_a_guessed_masked_value_is_right(
    api_for, zhang, field, right, wrong
):
    """The agent sees 138****8000 / ****-03-15 / z***@example.com. A PATCH with a stale version answers
    409 for a wrong guess but 200 for the right one (nothing to change: the version is never checked), so
    ~100 requests give the birth year, ~10,000 the mobile — with no reveal reason and no audit entry."""
    client = api_for("agent")
    assert client.get(f"/api/v1/people/{zhang.pk}/").json()["contact"]["masked"] is True
    stale = zhang.version + 41
    wrong_answer = client.patch(f"/api/v1/people/{zhang.pk}/", {field: wrong, "version": stale}, format="json")
    right_answer = client.patch(f"/api/v1/people/{zhang.pk}/", {field: right, "version": stale}, format="json")
    assert wrong_answer.status_code == 409
    # the stale version must be refused whatever the value: otherwise the answer reveals the value
    assert right_answer.status_code == 409, "a stale PATCH with the right value succeeds: an unaudited oracle"


# --- the ticket page gives the roles that may reveal no way to see an unidentified caller's number ---------


def test_an_agent_can_reveal_an_unidentified_callers_phone_on_the_ticket_page_as_on_the_api(
    client_for, api_for, users
):
    """The API reveals the caller to an agent with ?reveal_reason= (docs/api.md); the ticket page only says
    "masked for your role" and offers nothing, so the agent who must call back cannot read the number."""
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(
        users["agent"], {"subject": "来电", "channel": "phone", "category": "drug_info",
                         "caller_name": "王建国", "caller_phone": "13912345678"},
    )  # fmt: skip
    api = api_for("agent").get(f"/api/v1/tickets/{ticket.pk}/", {"reveal_reason": "客户要求回电"}).json()
    assert api["caller_phone"] == "139 1234 5678"  # the API reveals it
    page = client_for("agent").get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert "139****5678" in page
    facts = page.split('id="caller-phone"')[1].split("</section>")[0]
    assert "<form" in facts or "reveal" in facts, "the caller's block offers no way to reveal the number"


# --- a refused delivery puts the customer's e-mail address in clear on the ticket page, for every role -----


def test_a_refused_reply_does_not_show_the_customers_address_to_roles_that_see_it_masked(
    client_for, api_for, users, monkeypatch
):
    """SMTP servers name the refused recipient (SMTPRecipientsRefused, 550 5.1.1 <addr>…). mail.send_message
    keeps the exception text as last_error, a plain column that the conversation panel and the messages API
    show to everyone who may read the ticket — the analyst, who "only ever sees it masked", included."""
    import smtplib

    from pharmacrm.servicedesk import conversation, mail
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.choices import MessageKind

    address = "wang.xiaoming@example.com"
    ticket = desk.create_ticket(
        users["agent"], {"subject": "说明书", "channel": "email", "category": "drug_info",
                         "caller_name": "王小明", "reply_email": address},
    )  # fmt: skip
    reply = conversation.post_message(users["agent"], ticket, kind=MessageKind.REPLY, body="请饭后服用。")

    class Refusing:
        def send(self, fail_silently=False):
            raise smtplib.SMTPRecipientsRefused(
                {address: (550, f"5.1.1 <{address}>: Recipient address rejected: User unknown".encode())}
            )

    monkeypatch.setattr(mail, "build_mail", lambda message, connection=None: Refusing())
    mail.send_message(reply.pk)
    reply.refresh_from_db()
    assert reply.last_error  # the failure is kept for the agent to see

    page = client_for("analyst").get(f"/service/tickets/{ticket.pk}/").content.decode()
    api = api_for("analyst").get(f"/api/v1/tickets/{ticket.pk}/messages/").content.decode()
    assert address not in page, "the analyst reads the customer's address on the ticket page"
    assert address not in api, "the analyst reads the customer's address in the messages API"


# --- the worker's log names customers by e-mail address ---------------------------------------------------


def test_taking_in_a_customers_mail_does_not_write_their_address_to_the_log(users, caplog, settings):
    """mail.take_in logs "Mail from <address> became ticket TK-…" (and "… ignored") at INFO, the level the
    pharmacrm logger runs at: every customer's e-mail address ends up in clear in var/logs/huey.log, next to
    the database that keeps it encrypted."""
    import email.policy
    import email.utils
    import logging
    from email.message import EmailMessage

    from pharmacrm.servicedesk import mail

    address = "li.na.patient@example.com"
    msg = EmailMessage(policy=email.policy.default)
    msg["From"] = email.utils.formataddr(("李娜", address))
    msg["To"] = "service@pharmacrm.localhost"
    msg["Subject"] = "关于阿司匹林肠溶片的用法"
    msg["Message-ID"] = email.utils.make_msgid(domain="example.com")
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg.set_content("请问饭前还是饭后服用？")
    with caplog.at_level(logging.INFO, logger="pharmacrm"):
        assert mail.take_in(msg) is not None
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert address not in logged, f"the customer's address is logged in clear: {logged!r}"


# --- an export of clear personal data does not say whose data was read --------------------------------------


def test_an_export_in_clear_records_which_people_were_read_as_a_list_page_does(api_for, zhang):
    """docs/security.md: every display of clear personal data is audited with "which people, which fields".
    A list page records `people` (ids); the export records only a count and the filters, so "who has read
    张伟's mobile?" finds the page views but never the spreadsheet with all of it."""
    client = api_for("admin")
    client.get("/api/v1/people/")  # a list page: READ_PERSONAL with people=[…]
    listed = AuditEntry.objects.filter(action=A.READ_PERSONAL).latest("seq")
    assert zhang.pk in listed.extra.get("people", [])

    response = client.get("/api/v1/export/people.csv")
    assert response.status_code == 200 and "138 0013 8000" in b"".join(response.streaming_content).decode("utf-8-sig")
    exported = AuditEntry.objects.filter(action=A.READ_PERSONAL).latest("seq")
    assert exported.extra.get("purpose") == "export"
    assert zhang.pk in exported.extra.get("people", []), "the export's audit entry does not name the people read"


# --- a ticket's attachment (a prescription, a lab report) is downloaded without a trace ---------------------


def test_downloading_a_ticket_attachment_is_audited_like_a_case_file(client_for, users):
    """A safety case's file download is audited (READ_PERSONAL: "photos and records may show the patient");
    the same photo on the ticket it came from is downloaded by any role that reads tickets — the marketing
    analyst included — and the audit trail records nothing."""
    from pharmacrm.servicedesk import attachments
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(
        users["agent"], {"subject": "服药后皮疹", "channel": "web", "category": "drug_info",
                         "caller_name": "周小梅", "caller_phone": "13911112222"},
    )  # fmt: skip
    attachment = attachments.store_bytes(ticket, "化验单.pdf", "application/pdf", b"%PDF-1.4 lab report of the patient")
    agent = client_for("agent")  # the analyst may not download ticket files at all since session 17
    before = AuditEntry.objects.count()
    response = agent.get(f"/service/attachments/{attachment.pk}/")
    assert response.status_code == 200
    new = list(AuditEntry.objects.order_by("seq")[before:].values_list("action", "object_type"))
    assert new, "the download left no audit entry"


# --- a rep's ticket history names a linked ticket the rep may not see -------------------------------------


def test_a_reps_ticket_history_does_not_name_a_linked_ticket_outside_the_reps_scope(
    client_for, api_for, users, xiehe, ruijin
):
    """The links panel and links API hide a link to a ticket outside the rep's scope (the ticket "does not
    exist" for them), but the history of the ticket they may see says "linked TK-… (related)"."""
    from pharmacrm.servicedesk import linking
    from pharmacrm.servicedesk import services as desk

    mine = desk.create_ticket(users["agent"], {"subject": "北京的问题", "channel": "phone", "category": "drug_info",
                                               "institution": xiehe})  # fmt: skip
    theirs = desk.create_ticket(users["agent"], {"subject": "上海的问题", "channel": "phone",
                                                 "category": "drug_info", "institution": ruijin})  # fmt: skip
    linking.link(users["agent"], mine, theirs)
    rep_api = api_for("rep")
    assert rep_api.get(f"/api/v1/tickets/{theirs.pk}/").status_code == 404
    assert theirs.number not in rep_api.get(f"/api/v1/tickets/{mine.pk}/links/").content.decode()
    events = rep_api.get(f"/api/v1/tickets/{mine.pk}/events/").content.decode()
    page = client_for("rep").get(f"/service/tickets/{mine.pk}/").content.decode()
    assert theirs.number not in events, "the history API names the hidden ticket"
    assert theirs.number not in page, "the ticket page's history names the hidden ticket"


# --- a CAPA action given to a colleague outside PV: told about it, and then locked out of it ------------------


def test_a_capa_action_is_given_only_to_someone_who_can_open_and_close_it(users):
    """The CAPA form offered every active user as owner: an after-sales colleague was told "QC-…: a CAPA
    action for you" and the case page answered 404 — nothing let them record it done. The owner is now a
    PV / QA user, in the form and in the service."""
    from django.core.exceptions import ValidationError

    from pharmacrm.notify.models import Notification
    from pharmacrm.safety import services as safety
    from pharmacrm.safety.forms_cases import CapaForm

    pv, outsider = users["pv"], users["aftersales"]
    case = safety.create_case(pv, {"kind": "quality", "reporter_name": "药剂科", "quality": {"defect": "片剂变色"}})
    with pytest.raises(ValidationError) as refused:
        safety.add_capa(pv, case, {"action": "更换包装供应商并复检同批次", "owner": outsider, "due_date": "2026-12-31"})
    assert "owner" in refused.value.message_dict
    assert not Notification.objects.filter(recipient=outsider, kind="safety.capa").exists()
    assert list(CapaForm().fields["owner"].queryset) == [pv]
    safety.add_capa(pv, case, {"action": "更换包装供应商并复检同批次", "owner": pv, "due_date": "2026-12-31"})


def test_the_audit_trail_filtered_by_a_person_lists_every_clear_read_of_that_person(
    client_for, api_for, xiehe, zhang, admin_user
):
    """A manager reads 张伟's mobile and e-mail in clear on the hospital's 360 page (audited: READ_PERSONAL
    with people=[张伟, …] but object_id ""). The auditor asking "who has read 张伟's data?" filters the trail
    by the person (object type + id, web or API) and does not see that read — nor any list page or export."""
    from pharmacrm.customers import services as customers

    customers.create_person(admin_user, {"name": "李娜", "institution": xiehe, "mobile": "13900139000"})
    page = client_for("manager").get(f"/customers/institutions/{xiehe.pk}/").content.decode()
    assert "zhangwei@example.com" in page
    read = AuditEntry.objects.filter(action=A.READ_PERSONAL).latest("seq")
    assert zhang.pk in read.extra.get("people", [])
    found = api_for("auditor").get(
        "/api/v1/audit/", {"object_type": "customers.person", "object_id": str(zhang.pk)}
    ).json()
    seqs = [row["seq"] for row in found["results"]]
    assert read.seq in seqs, "the clear read on the 360 page is not found by filtering the trail by the person"


# --- behind the documented proxy, every audit entry records the proxy's address ------------------------------


def test_behind_the_proxy_the_audit_trail_records_the_clients_address(api_for, zhang, settings):
    """docs/operations.md runs gunicorn on 127.0.0.1 behind a TLS proxy; security.md promises the IP address
    of every read of personal data. The web form honours SERVICEDESK_TRUST_X_FORWARDED_FOR (the proxy's
    X-Forwarded-For), the audit trail (core/middleware.client_ip) only REMOTE_ADDR: every entry says 127.0.0.1."""
    settings.SERVICEDESK_TRUST_X_FORWARDED_FOR = True
    client = api_for("agent")
    response = client.get(
        f"/api/v1/people/{zhang.pk}/", {"reveal_reason": "客户来电核实身份"},
        REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7",
    )  # fmt: skip
    assert response.status_code == 200
    entry = AuditEntry.objects.filter(action=A.READ_PERSONAL).latest("seq")
    assert entry.ip == "203.0.113.7", f"the audit trail records {entry.ip}, the proxy, for the agent's reveal"


def test_the_log_writes_e_mail_addresses_masked_in_messages_and_tracebacks():
    import logging

    from pharmacrm.core.logfilters import MaskAddresses

    try:
        raise RuntimeError("550 5.1.1 <li.na@example.com>: User unknown")
    except RuntimeError:
        import sys

        record = logging.LogRecord("pharmacrm.x", logging.WARNING, __file__, 1, "mail to %s failed", ("li.na@example.com",),
                                   sys.exc_info())  # fmt: skip
    MaskAddresses().filter(record)
    written = logging.Formatter().format(record)
    assert "li.na@example.com" not in written and "l***@example.com" in written


def test_the_ticket_page_reveals_the_callers_phone_with_a_reason_audited(client_for, users):
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(
        users["agent"], {"subject": "来电", "channel": "phone", "category": "drug_info",
                         "caller_name": "王建国", "caller_phone": "13912345678"},
    )  # fmt: skip
    agent = client_for("agent")
    url = f"/service/tickets/{ticket.pk}/caller/reveal/"
    assert agent.post(url, {"reason": ""}).status_code == 400  # a reason is required
    page = agent.post(url, {"reason": "客户要求回电"}).content.decode()
    assert "13912345678" in page.replace(" ", "") and 'id="caller-revealed"' in page
    entry = AuditEntry.objects.filter(action=A.READ_PERSONAL, object_type="servicedesk.ticket").latest("seq")
    assert entry.extra["reason"] == "客户要求回电" and entry.actor_id == users["agent"].pk
    # a role that may not reveal gets no form and a refusal
    analyst = client_for("analyst")
    assert 'id="caller-reveal"' not in analyst.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert analyst.post(url, {"reason": "想看看"}).status_code == 403
