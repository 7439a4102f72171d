"""The conversation on the ticket page (replies vs internal notes, delivery state, attachments, template
picker), attachment downloads behind the ticket's access check, the product catalogue and template pages
per role, and editing a ticket's details (changed fields only, a new category re-chooses the SLA policy
without touching the priority, an optimistic-lock conflict that keeps the input)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.customers.services import ConflictError
from pharmacrm.servicedesk import conversation, editing, knowledge, services
from pharmacrm.servicedesk.choices import Delivery, EventKind, MessageKind
from pharmacrm.servicedesk.models import Attachment, Ticket, TicketEvent, TicketMessage
from tests.concurrency import held_while

PDF = b"%PDF-1.4\n%%EOF\n"
ROLES = [r.value for r in Role]
HANDLERS = {"admin", "manager", "kam", "agent", "expert", "support", "aftersales", "rep"}
KNOWLEDGE = {"admin", "manager", "expert"}


@pytest.fixture(autouse=True)
def _english_and_tmp_storage(settings, tmp_path):
    settings.LANGUAGE_CODE = "en"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }


@pytest.fixture
def ticket(users, xiehe):
    return services.create_ticket(users["agent"], {
        "subject": "咨询用法", "channel": "email", "category": "drug_info", "institution": xiehe,
        "reply_email": "zhang.wei@example.cn",
    })  # fmt: skip


@pytest.fixture
def product(users):
    return knowledge.create_product(users["admin"], {
        "brand_name": "安心宁", "generic_name": "盐酸氨氯地平片", "approval_number": "国药准字H20249871",
        "dosage_form": "片剂", "strength": "5mg×28片",
    })  # fmt: skip


def url(ticket) -> str:
    return f"/service/tickets/{ticket.pk}/"


# --- the conversation panel ------------------------------------------------------------------------


def test_the_composer_has_the_ids_the_shortcuts_use_and_says_replies_are_emailed(client_for, ticket):
    page = client_for("agent").get(url(ticket)).content.decode()
    assert 'id="composer"' in page and 'id="message-body"' in page
    assert 'name="kind" value="reply" id="kind-reply" checked' in page and 'name="kind" value="note"' in page
    assert "e-mailed to the customer" in page
    assert 'type="file" name="files"' in page and "multiple" in page


def test_without_an_address_the_reply_label_says_it_is_not_emailed(client_for, users, xiehe):
    t = services.create_ticket(users["agent"], {"subject": "电话", "channel": "phone", "category": "drug_info",
                                                "institution": xiehe})  # fmt: skip
    page = client_for("agent").get(url(t)).content.decode()
    assert "e-mailed to the customer" not in page and "not e-mailed" in page


def test_a_reply_with_a_file_is_posted_and_queued_for_email(client_for, ticket):
    upload = SimpleUploadedFile("说明书.pdf", PDF, "application/pdf")
    response = client_for("agent").post(
        f"{url(ticket)}messages/", {"kind": "reply", "body": "您好，用法如下。", "files": [upload]}
    )
    assert response.status_code == 302
    message = TicketMessage.objects.get(ticket=ticket)
    assert message.kind == MessageKind.REPLY and message.delivery == Delivery.PENDING
    assert message.attachments.get().name == "说明书.pdf"
    page = client_for("agent").get(url(ticket)).content.decode()
    assert "您好，用法如下。" in page and "Waiting to be sent" in page and "说明书.pdf" in page


def test_a_reply_sent_twice_is_sent_once_and_the_second_shows_the_conversation(client_for, ticket):
    """A double click on Send answered the second time with an error under the text ("already sent at …") and the
    composer still full; the composer now carries a one-time token: the second sending sends nothing and shows the
    conversation with the reply the first one sent."""
    import re

    agent = client_for("agent")
    page = agent.get(url(ticket)).content.decode()
    token = re.search(r'id="composer".*?name="form_token" value="([A-Za-z0-9_-]+)"', page, re.S).group(1)
    form = {"kind": "reply", "body": "您好，用法如下。", "form_token": token}

    assert agent.post(f"{url(ticket)}messages/", form).status_code == 302
    again = agent.post(f"{url(ticket)}messages/", form, follow=True, HTTP_ACCEPT_LANGUAGE="en")

    assert again.status_code == 200 and again.redirect_chain[-1][0] == f"{url(ticket)}#conversation"
    assert "This form was already sent" in again.content.decode() and "您好，用法如下。" in again.content.decode()
    assert TicketMessage.objects.filter(ticket=ticket).count() == 1


def test_notes_are_marked_internal_and_never_shown_as_replies(client_for, ticket):
    client_for("agent").post(f"{url(ticket)}messages/", {"kind": "note", "body": "内部：客户是主任医师"})
    note = TicketMessage.objects.get(ticket=ticket)
    assert note.kind == MessageKind.NOTE and note.delivery == "" and note.recipient == ""
    page = client_for("agent").get(url(ticket)).content.decode()
    item = page.split(f'id="message-{note.pk}"')[1].split("</li>")[0]
    assert 'data-kind="note"' in page and "Internal note" in item and "not visible to the customer" in item
    assert "Reply to the customer" not in item and "Waiting to be sent" not in item
    assert TicketEvent.objects.filter(ticket=ticket, kind=EventKind.NOTE).exists()
    assert not TicketEvent.objects.filter(ticket=ticket, kind=EventKind.REPLY).exists()


def test_delivery_failures_show_the_reason(client_for, users, ticket):
    m = conversation.post_message(users["agent"], ticket, kind=MessageKind.REPLY, body="答复")
    TicketMessage.objects.filter(pk=m.pk).update(
        delivery=Delivery.GAVE_UP, attempts=5, last_error="550 mailbox unavailable"
    )
    page = client_for("agent").get(url(ticket)).content.decode()
    assert "Failed for good" in page and "550 mailbox unavailable" in page and "5 attempts" in page


def test_inbound_messages_are_shown_as_from_the_customer_with_the_address_masked(client_for, ticket):
    conversation.receive_inbound(ticket, body="谢谢，已收到", sender="zhang.wei@example.cn")
    page = client_for("agent").get(url(ticket)).content.decode()
    assert 'data-kind="inbound"' in page and "From the customer" in page and "谢谢，已收到" in page
    assert "zhang.wei@example.cn" not in page  # an agent sees personal data masked
    assert not AuditEntry.objects.filter(action="read_personal").exists()
    page = client_for("kam").get(url(ticket)).content.decode()
    assert "zhang.wei@example.cn" in page
    assert AuditEntry.objects.filter(action="read_personal", changes__isnull=False).exists()


def test_an_empty_message_or_a_bad_file_shows_the_page_again_with_the_text_kept(client_for, ticket, settings):
    c = client_for("agent")
    response = c.post(f"{url(ticket)}messages/", {"kind": "reply", "body": "  "})
    assert response.status_code == 400 and "Write the text of the message." in response.content.decode()
    bad = SimpleUploadedFile("virus.pdf", b"MZ\x90\x00", "application/pdf")
    response = c.post(f"{url(ticket)}messages/", {"kind": "note", "body": "看附件", "files": [bad]})
    page = response.content.decode()
    assert response.status_code == 400 and "virus.pdf" in page and "看附件" in page
    assert 'value="note" id="kind-note" checked' in page
    settings.ATTACHMENT_MAX_BYTES = 10
    big = SimpleUploadedFile("big.txt", b"x" * 11, "text/plain")
    response = c.post(f"{url(ticket)}messages/", {"kind": "note", "body": "大文件", "files": [big]})
    assert response.status_code == 400 and "big.txt" in response.content.decode()
    assert not TicketMessage.objects.filter(ticket=ticket).exists() and not Attachment.objects.exists()


@pytest.mark.parametrize("role", ROLES)
def test_posting_needs_the_right_to_handle_tickets(client_for, ticket, role):
    response = client_for(role).post(f"{url(ticket)}messages/", {"kind": "note", "body": "x"})
    assert response.status_code == (302 if role in HANDLERS else 403)


def test_the_template_picker_fills_the_textarea_for_this_ticket(client_for, users, ticket):
    tpl = knowledge.create_template(
        users["admin"], {"name": "确认收到", "body": "尊敬的{customer}：工单 {ticket} 已收到。{agent}"}
    )
    page = client_for("agent").get(url(ticket)).content.decode()
    assert "确认收到" in page and "template-preview" in page
    response = client_for("agent").get(f"{url(ticket)}template-preview/", {"template": tpl.pk})
    html = response.content.decode()
    assert response.status_code == 200 and 'id="message-body"' in html
    assert f"尊敬的北京协和医院：工单 {ticket.number} 已收到。agent" in html


def test_the_used_template_is_recorded_on_the_message(client_for, users, ticket):
    tpl = knowledge.create_template(users["admin"], {"name": "确认收到", "body": "已收到"})
    client_for("agent").post(
        f"{url(ticket)}messages/", {"kind": "reply", "body": "已收到", "template": tpl.pk}
    )
    assert TicketMessage.objects.get(ticket=ticket).template == tpl


# --- downloads -----------------------------------------------------------------------------------------


def test_a_download_is_served_as_an_attachment_with_nosniff(client_for, users, ticket):
    att = services_attach(users, ticket)
    response = client_for("agent").get(f"/service/attachments/{att.pk}/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == PDF
    assert response["Content-Type"] == "application/pdf" and response["X-Content-Type-Options"] == "nosniff"
    assert (
        response["Content-Disposition"].startswith("attachment;")
        and "%E8%AF%B4%E6%98%8E" in response["Content-Disposition"]
    )


def services_attach(users, ticket):
    from pharmacrm.servicedesk import attachments

    return attachments.store_upload(users["agent"], ticket, SimpleUploadedFile("说明书.pdf", PDF))


def test_a_rep_cannot_download_a_file_of_a_ticket_outside_their_territory(client_for, users, ruijin):
    t = services.create_ticket(users["agent"], {"subject": "上海", "channel": "phone", "category": "drug_info",
                                                "institution": ruijin})  # fmt: skip
    att = services_attach(users, t)
    assert client_for("rep").get(f"/service/attachments/{att.pk}/").status_code == 404
    # the analyst sees every ticket, with personal data masked: not its files (a prescription names the patient)
    assert client_for("analyst").get(f"/service/attachments/{att.pk}/").status_code == 403
    assert client_for("rep").get(f"/service/attachments/{att.pk + 999}/").status_code == 404


def test_an_anonymous_visitor_cannot_download(client, users, ticket):
    att = services_attach(users, ticket)
    response = client.get(f"/service/attachments/{att.pk}/")
    assert response.status_code == 302 and "next=" in response["Location"]


# --- editing details -----------------------------------------------------------------------------------


def test_editing_writes_only_what_changed_with_events(users, ticket, product):
    before = ticket.version
    editing.edit_ticket(users["agent"], ticket, {"subject": ticket.subject, "product": product.pk, "batch": "B1"},
                        version=before)  # fmt: skip
    assert ticket.version == before + 1 and ticket.product == product and ticket.batch_number == "B1"
    kinds = list(TicketEvent.objects.filter(ticket=ticket).values_list("kind", flat=True))
    assert EventKind.PRODUCT in kinds and EventKind.EDITED in kinds
    edited = TicketEvent.objects.get(ticket=ticket, kind=EventKind.EDITED)
    assert edited.data["fields"] == {"batch_number": ["", "B1"]}  # the unchanged subject is not there
    entry = AuditEntry.objects.filter(action="update", object_id=str(ticket.pk)).latest("seq")
    assert entry.changes == {"product": [None, product.pk], "batch_number": ["", "B1"]}
    editing.edit_ticket(users["agent"], ticket, {"subject": ticket.subject}, version=ticket.version)
    assert ticket.version == before + 1  # nothing changed: nothing written


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_ticket_moved_to_a_customer_being_merged_away_is_refused_not_filed_under_the_merged_record(
    users, ticket, xiehe
):
    """The agent corrects the ticket's customer to the copy of 张伟 while a manager merges the copy into his
    record: the change was written after the merge had moved the copy's tickets, and the ticket stayed on the
    merged record, which no list shows. Now it is refused with the survivor named."""
    from django.utils import translation

    from pharmacrm.customers import services as customers
    from pharmacrm.customers.models import Person

    original = Person.objects.get(name="张伟")
    copy = customers.create_person(
        users["manager"], {"name": "张伟", "institution": xiehe, "mobile": "13900139000"}
    )
    refused: list[str] = []

    def correct():
        try:
            with translation.override("en"):
                editing.edit_ticket(users["agent"], Ticket.objects.get(pk=ticket.pk), {"person": copy.pk},
                                    version=ticket.version)  # fmt: skip
        except Exception as e:  # noqa: BLE001 (the assertion below names what was expected)
            refused.extend(getattr(e, "message_dict", {}).get("person", [repr(e)]))

    # the form was checked before the merge began: the copy was a customer like any other
    held_while(lambda: customers.merge(users["manager"], original, Person.objects.get(pk=copy.pk)), correct)
    assert not Ticket.objects.filter(person=copy).exists()
    assert len(refused) == 1 and "was merged into" in refused[0]


def test_a_new_category_rechooses_the_policy_but_keeps_the_priority(users, ticket):
    assert ticket.priority == "normal"
    editing.edit_ticket(
        users["agent"],
        ticket,
        {"category": "adverse_reaction"},
        version=ticket.version,
        reason="实为不良反应",
    )
    ticket.refresh_from_db()
    assert (
        ticket.category.code == "adverse_reaction"
        and ticket.priority == "normal"
        and ticket.complexity == "general"
    )
    assert ticket.safety_relevant  # a safety-relevant category
    event = TicketEvent.objects.get(ticket=ticket, kind=EventKind.CATEGORY)
    assert (event.data["from"], event.data["to"], event.data["reason"]) == (
        "drug_info",
        "adverse_reaction",
        "实为不良反应",
    )
    assert ticket.policy is not None and ticket.clocks.count() == 2


def test_a_stale_version_is_a_conflict_and_nothing_is_written(users, ticket):
    editing.edit_ticket(users["agent"], ticket, {"subject": "第一位"}, version=1)
    stale = Ticket.objects.get(pk=ticket.pk)
    with pytest.raises(ConflictError):
        editing.edit_ticket(users["kam"], stale, {"subject": "第二位"}, version=1)
    assert Ticket.objects.get(pk=ticket.pk).subject == "第一位"


def test_edit_validation_names_the_fields(users, ticket):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as exc:
        editing.edit_ticket(users["agent"], ticket, {"subject": " ", "category": "nope", "product": 999999},
                            version=ticket.version)  # fmt: skip
    assert set(exc.value.message_dict) == {"subject", "category", "product"}


def test_the_edit_page_saves_and_a_second_agent_gets_a_409_with_the_input_kept(client_for, ticket, product):
    first, second = client_for("agent"), client_for("kam")
    assert first.get(f"{url(ticket)}edit/").status_code == 200
    form = {"subject": ticket.subject, "description": "", "category": ticket.category_id, "product": "",
            "batch_number": "", "version": ticket.version}  # fmt: skip
    response = first.post(f"{url(ticket)}edit/", {**form, "product": product.pk, "batch_number": "B2026"})
    assert response.status_code == 302
    response = second.post(f"{url(ticket)}edit/", {**form, "subject": "我的新标题", "safety_relevant": "on"})
    page = response.content.decode()
    assert response.status_code == 409 and "Someone else changed this ticket" in page
    assert 'value="我的新标题"' in page and f'name="version" value="{ticket.version + 1}"' in page
    assert Ticket.objects.get(pk=ticket.pk).subject == "咨询用法"
    # submitting again (with the fresh version the page now carries) goes through
    response = second.post(f"{url(ticket)}edit/", {**form, "subject": "我的新标题", "version": ticket.version + 1,
                                                    "product": product.pk, "batch_number": "B2026"})  # fmt: skip
    assert response.status_code == 302 and Ticket.objects.get(pk=ticket.pk).subject == "我的新标题"


def test_the_edit_page_says_that_fields_below_need_correcting(client_for, ticket):
    form = {"subject": " ", "description": "", "category": ticket.category_id, "product": "", "batch_number": "",
            "version": ticket.version}  # fmt: skip
    page = client_for("agent").post(f"{url(ticket)}edit/", form, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Please correct the fields marked below." in page


@pytest.mark.parametrize("role", ROLES)
def test_the_edit_page_is_for_ticket_handlers(client_for, ticket, role):
    assert client_for(role).get(f"{url(ticket)}edit/").status_code == (200 if role in HANDLERS else 403)


# --- knowledge pages -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_everyone_reads_the_catalogue_and_only_some_maintain_it(client_for, product, role):
    c = client_for(role)
    listing = c.get("/service/knowledge/products/", {"q": "氨氯地平"})
    assert listing.status_code == 200 and "安心宁" in listing.content.decode()
    assert c.get(f"/service/knowledge/products/{product.pk}/").status_code == 200
    assert c.get("/service/knowledge/templates/").status_code == 200
    allowed = role in KNOWLEDGE
    assert c.get("/service/knowledge/products/new/").status_code == (200 if allowed else 403)
    assert c.get("/service/knowledge/templates/new/").status_code == (200 if allowed else 403)
    assert ('id="product-create"' in listing.content.decode()) == allowed


def test_the_catalogue_is_searched_by_approval_number(client_for, product):
    page = client_for("agent").get("/service/knowledge/products/", {"q": "H2024"}).content.decode()
    assert "国药准字H20249871" in page
    page = client_for("agent").get("/service/knowledge/products/", {"q": "布洛芬"}).content.decode()
    assert "No product matches your search." in page


def test_a_product_form_shows_the_approval_number_error(client_for):
    data = {"brand_name": "新药", "generic_name": "新药片", "approval_number": "国药准字H123", "dosage_form": "片剂",
            "strength": "10mg", "active": "on"}  # fmt: skip
    response = client_for("expert").post("/service/knowledge/products/new/", data)
    page = response.content.decode()
    assert response.status_code == 400 and "is not a drug approval number" in page
    response = client_for("expert").post(
        "/service/knowledge/products/new/", {**data, "approval_number": "国药准字H20260001"}
    )
    assert response.status_code == 302


def test_a_template_form_refuses_unknown_placeholders_and_conflicts_keep_the_input(client_for, users):
    c = client_for("expert")
    response = c.post("/service/knowledge/templates/new/", {"name": "问候", "language": "zh-hans", "body": "您好 {name}",
                                                            "active": "on"})  # fmt: skip
    assert response.status_code == 400 and "{name}" in response.content.decode()
    tpl = knowledge.create_template(users["admin"], {"name": "问候", "body": "您好"})
    knowledge.update_template(users["admin"], tpl, {"body": "您好！"}, version=1)
    response = c.post(f"/service/knowledge/templates/{tpl.pk}/edit/", {"name": "问候", "language": "zh-hans",
                                                                       "body": "我的版本", "active": "on", "version": 1})  # fmt: skip
    page = response.content.decode()
    assert response.status_code == 409 and "我的版本" in page and 'name="version" value="2"' in page


def test_a_long_conversation_needs_no_more_queries(client_for, users, ticket, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from pharmacrm.servicedesk import attachments

    def post(i):
        m = conversation.post_message(users["agent"], ticket, kind=MessageKind.NOTE, body=f"第{i}条")
        attachments.store_upload(users["agent"], ticket, SimpleUploadedFile(f"{i}.txt", b"ok"), message=m)

    post(0)
    c = client_for("agent")
    c.get(url(ticket))
    with CaptureQueriesContext(connection) as short:
        c.get(url(ticket))
    for i in range(1, 9):
        post(i)
    with django_assert_max_num_queries(len(short.captured_queries)):
        page = c.get(url(ticket)).content.decode()
    assert "第8条" in page and "8.txt" in page


def test_history_lines_for_the_edit_events(users, ticket, product):
    editing.edit_ticket(users["agent"], ticket, {"category": "adverse_reaction", "product": product, "subject": "新"},
                        version=ticket.version)  # fmt: skip
    lines = {}
    for e in TicketEvent.objects.filter(ticket=ticket):
        lines.update(dict(editing.event_details(e)))
    assert lines["Category"] == "Drug information enquiry → Adverse drug reaction"  # shipped names, read in English
    assert lines["Product"] == f"— → {product}"
    assert lines["Subject"] == "咨询用法 → 新" and lines["Safety-relevant"] == "no → yes"


def test_an_upload_larger_than_ten_attachments_is_refused_before_it_is_stored(client_for, ticket, settings):
    from pharmacrm.servicedesk.models import Attachment, TicketMessage

    settings.ATTACHMENT_MAX_BYTES = 1000  # ten of them: 10,000 bytes in one message at most
    big = SimpleUploadedFile("scan.pdf", b"%PDF-1.4\n" + b"0" * 50_000, "application/pdf")
    response = client_for("agent").post(f"{url(ticket)}messages/", {"kind": "note", "body": "附件", "files": [big]})
    assert response.status_code == 413
    assert "too large" in response.content.decode()
    assert not Attachment.objects.exists() and not TicketMessage.objects.filter(ticket=ticket).exists()
