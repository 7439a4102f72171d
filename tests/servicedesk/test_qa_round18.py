"""Review round 18: a ticket's customer and the caller's contact details can be corrected after intake —
linked to a recorded customer (the SLA policy chosen again, a VIP boosted as at intake), the caller's
phone and e-mail replaced without ever showing or recording them in clear."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services as customer_services
from pharmacrm.servicedesk import editing, services
from pharmacrm.servicedesk.choices import EventKind
from pharmacrm.servicedesk.models import Attachment, Ticket, TicketEvent


@pytest.fixture(autouse=True)
def _english(settings):
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def caller_ticket(users):
    """An unidentified caller, taken in by phone with a mistyped number."""
    return services.create_ticket(users["agent"], {
        "subject": "询问用法", "channel": "phone", "category": "drug_info", "priority": "low",
        "priority_reason": "只是咨询", "caller_name": "李女士", "caller_phone": "13912345678",
        "reply_email": "li@example.cn",
    })  # fmt: skip


def _zhang(xiehe):
    return xiehe.people.get(name="张伟")


def test_a_caller_linked_to_a_recorded_person_takes_their_institution(users, caller_ticket, xiehe):
    person = _zhang(xiehe)
    editing.edit_ticket(users["agent"], caller_ticket, {"person": person.pk}, version=caller_ticket.version,
                        reason="回拨确认是张伟主任")  # fmt: skip
    t = Ticket.objects.get(pk=caller_ticket.pk)
    assert (t.person_id, t.institution_id) == (person.pk, xiehe.pk)
    assert t.policy == services.select_policy(t)
    event = TicketEvent.objects.filter(ticket=t, kind=EventKind.EDITED).order_by("-id").first()
    assert event.data["fields"]["person"] == ["", person.code] and event.data["reason"] == "回拨确认是张伟主任"
    entry = AuditEntry.objects.filter(object_type="servicedesk.ticket", object_id=str(t.pk), action="update").last()
    assert entry.changes["person"] == [None, person.pk]


def test_a_vip_customer_linked_later_gets_the_boost_intake_would_have_given(users, admin_user, caller_ticket, xiehe):
    customer_services.update_institution(admin_user, xiehe, {"tier": "vip"}, version=xiehe.version)
    assert caller_ticket.priority == "low" and not caller_ticket.boosted
    editing.edit_ticket(users["agent"], caller_ticket, {"institution": xiehe.pk}, version=caller_ticket.version)
    t = Ticket.objects.get(pk=caller_ticket.pk)
    assert t.priority == "normal" and t.boosted
    assert TicketEvent.objects.filter(ticket=t, kind=EventKind.PRIORITY, data__boost=True).exists()


def test_a_corrected_phone_replaces_the_old_one_and_is_never_recorded_in_clear(users, caller_ticket):
    editing.edit_ticket(users["agent"], caller_ticket, {"caller_phone": "139-1234-5679"},
                        version=caller_ticket.version)  # fmt: skip
    t = Ticket.objects.get(pk=caller_ticket.pk)
    assert t.caller_phone == "139-1234-5679"
    from pharmacrm.core import crypto
    from pharmacrm.customers import normalise

    assert t.caller_phone_bidx == crypto.blind_index(normalise.phone("13912345679"), "phone")
    entry = AuditEntry.objects.filter(object_type="servicedesk.ticket", object_id=str(t.pk), action="update").last()
    text = json.dumps(entry.changes, ensure_ascii=False)
    assert "1391234567" not in text and "******#" in text
    event = TicketEvent.objects.filter(ticket=t, kind=EventKind.EDITED).order_by("-id").first()
    assert "1391234567" not in json.dumps(event.data)
    assert ("Caller's phone", "(personal data) → (personal data)") in editing.event_details(event)


def test_bad_contact_details_and_an_invisible_customer_are_refused_by_field(users, caller_ticket, ruijin):
    with pytest.raises(ValidationError) as e:
        editing.edit_ticket(users["rep"], caller_ticket, {
            "institution": ruijin.pk, "caller_phone": "12345", "reply_email": "not-an-address",
        }, version=caller_ticket.version)  # fmt: skip
    assert set(e.value.message_dict) == {"institution", "caller_phone", "reply_email"}
    assert Ticket.objects.get(pk=caller_ticket.pk).caller_phone == "13912345678"


def test_a_ticket_must_still_name_someone(users, caller_ticket):
    with pytest.raises(ValidationError) as e:
        editing.edit_ticket(users["agent"], caller_ticket, {"caller_name": "", "caller_phone": ""},
                            version=caller_ticket.version)  # fmt: skip
    assert "person" in e.value.message_dict


def test_the_edit_page_never_shows_the_callers_details_and_an_empty_field_keeps_them(client_for, caller_ticket, xiehe):
    client = client_for("agent")
    page = client.get(f"/service/tickets/{caller_ticket.pk}/edit/").content.decode()
    assert "13912345678" not in page and "li@example.cn" not in page and "李女士" not in page
    assert "On file; type to replace" in page and 'id="id_institution"' in page
    form = {"subject": caller_ticket.subject, "description": "", "category": caller_ticket.category_id,
            "product": "", "batch_number": "", "institution": "", "person": "", "caller_name": "",
            "caller_phone": "", "reply_email": "", "version": caller_ticket.version}  # fmt: skip
    # linking the hospital and removing the caller's details
    response = client.post(f"/service/tickets/{caller_ticket.pk}/edit/",
                           {**form, "institution": xiehe.pk, "clear_contact": "on"})  # fmt: skip
    assert response.status_code == 302
    t = Ticket.objects.get(pk=caller_ticket.pk)
    assert (t.institution_id, t.caller_name, t.caller_phone, t.reply_email) == (xiehe.pk, "", "", "")
    # a new e-mail replaces; then empty contact fields keep what is on file
    response = client.post(f"/service/tickets/{t.pk}/edit/",
                           {**form, "institution": xiehe.pk, "reply_email": "new@example.cn",
                            "reason": "客户来电告知新邮箱", "version": t.version})  # fmt: skip
    assert response.status_code == 302
    t = Ticket.objects.get(pk=t.pk)
    assert t.reply_email == "new@example.cn" and t.institution_id == xiehe.pk
    response = client.post(f"/service/tickets/{t.pk}/edit/",
                           {**form, "institution": xiehe.pk, "subject": "询问用法（已回拨）", "version": t.version})
    assert response.status_code == 302
    assert Ticket.objects.get(pk=t.pk).reply_email == "new@example.cn"


def test_the_api_links_a_customer_and_names_bad_fields(api_for, users, caller_ticket, xiehe):
    api = api_for("agent")
    base = f"/api/v1/tickets/{caller_ticket.pk}/details/"
    r = api.patch(base, {"caller_phone": "abc", "version": caller_ticket.version}, format="json")
    assert r.status_code == 400 and "caller_phone" in r.json()
    r = api.patch(base, {"person": _zhang(xiehe).pk, "version": caller_ticket.version}, format="json")
    assert r.status_code == 200
    t = Ticket.objects.get(pk=caller_ticket.pk)
    assert (t.person_id, t.institution_id) == (_zhang(xiehe).pk, xiehe.pk)


# --- files sent with an answer, on the customer's status page ------------------------------------------------


PDF = b"%PDF-1.4\n%%EOF\n"


def test_the_status_page_offers_the_files_sent_with_an_answer_and_no_other(users, xiehe, client, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from pharmacrm.servicedesk import conversation, public

    ticket = services.create_ticket(users["agent"], {
        "subject": "索取说明书", "channel": "web", "category": "drug_info", "institution": xiehe,
        "reply_email": "li@example.cn",
    })  # fmt: skip
    other = services.create_ticket(users["agent"], {
        "subject": "另一件事", "channel": "web", "category": "drug_info", "institution": xiehe,
    })  # fmt: skip
    leaflet = SimpleUploadedFile("说明书.pdf", PDF, content_type="application/pdf")
    conversation.post_message(users["agent"], ticket, kind="reply", body="请见附件。", files=[leaflet])
    note = SimpleUploadedFile("内部记录.pdf", PDF, content_type="application/pdf")
    conversation.post_message(users["agent"], ticket, kind="note", body="内部", files=[note])
    elsewhere = SimpleUploadedFile("别人的.pdf", PDF, content_type="application/pdf")
    conversation.post_message(users["agent"], other, kind="reply", body="别人的答复", files=[elsewhere])
    files = {a.name: a for a in Attachment.objects.filter(ticket__in=[ticket, other])}

    status = public.status_path(ticket)
    page = client.get(status).content.decode()
    assert "说明书.pdf" in page and "内部记录.pdf" not in page
    response = client.get(f"{status}files/{files['说明书.pdf'].pk}/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == PDF
    assert "attachment;" in response["Content-Disposition"]
    assert AuditEntry.objects.filter(object_id=str(ticket.pk), action="read_personal", extra__channel="status_page").exists()
    # a note's file, and a file of another ticket, are not reachable with this link
    assert client.get(f"{status}files/{files['内部记录.pdf'].pk}/").status_code == 404
    assert client.get(f"{status}files/{files['别人的.pdf'].pk}/").status_code == 404
    assert client.get(f"/help/status/forged-token/files/{files['说明书.pdf'].pk}/").status_code == 404
