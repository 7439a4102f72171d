"""REST: a ticket's messages (replies, notes, files), attachments (upload, download with the access check),
editing its details with optimistic locking, the product catalogue and answer templates — per role."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from pharmacrm.core.roles import Role
from pharmacrm.servicedesk import attachments, knowledge, services
from pharmacrm.servicedesk.models import AnswerTemplate, Product, Ticket, TicketMessage

PDF = b"%PDF-1.4\n%%EOF\n"
ROLES = [r.value for r in Role]
HANDLERS = {"admin", "manager", "kam", "agent", "expert", "support", "aftersales", "rep"}
KNOWLEDGE = {"admin", "manager", "expert"}
PRODUCT = {
    "brand_name": "安心宁", "generic_name": "盐酸氨氯地平片", "approval_number": "国药准字H20249871",
    "dosage_form": "片剂", "strength": "5mg×28片",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _tmp_storage(settings, tmp_path):
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
    return knowledge.create_product(users["admin"], PRODUCT)


def base(ticket) -> str:
    return f"/api/v1/tickets/{ticket.pk}"


# --- messages and attachments -------------------------------------------------------------------------


def test_a_reply_and_a_note_by_json_and_the_list(api_for, ticket):
    api = api_for("agent")
    r = api.post(f"{base(ticket)}/messages/", {"kind": "reply", "body": "您好"}, format="json")
    assert (
        r.status_code == 201
        and r.data["kind"] == "reply"
        and r.data["emailed"]
        and r.data["delivery"] == "pending"
    )
    r = api.post(f"{base(ticket)}/messages/", {"kind": "note", "body": "内部"}, format="json")
    assert (
        r.status_code == 201
        and r.data["kind"] == "note"
        and not r.data["emailed"]
        and r.data["delivery"] == ""
    )
    listing = api.get(f"{base(ticket)}/messages/").data
    rows = listing["results"] if isinstance(listing, dict) else listing
    assert [m["kind"] for m in rows] == ["reply", "note"]


def test_a_message_with_files_by_multipart(api_for, ticket):
    files = [SimpleUploadedFile("说明书.pdf", PDF), SimpleUploadedFile("notes.txt", "批号".encode())]
    r = api_for("agent").post(f"{base(ticket)}/messages/", {"kind": "note", "body": "附件", "files": files},
                              format="multipart")  # fmt: skip
    assert r.status_code == 201, r.data
    assert sorted(a["name"] for a in r.data["attachments"]) == ["notes.txt", "说明书.pdf"]


def test_a_bad_file_refuses_the_whole_message(api_for, ticket):
    r = api_for("agent").post(f"{base(ticket)}/messages/", {"kind": "reply", "body": "x",
                                                             "files": [SimpleUploadedFile("a.pdf", b"MZ")]},
                              format="multipart")  # fmt: skip
    assert r.status_code == 400 and "a.pdf" in r.data["files"][0]
    assert not TicketMessage.objects.exists()


def test_inbound_is_not_a_kind_one_can_post(api_for, ticket):
    r = api_for("agent").post(f"{base(ticket)}/messages/", {"kind": "inbound", "body": "x"}, format="json")
    assert r.status_code == 400 and "kind" in r.data


def test_upload_list_and_download(api_for, ticket):
    api = api_for("agent")
    r = api.post(
        f"{base(ticket)}/attachments/", {"file": SimpleUploadedFile("../说明书.pdf", PDF)}, format="multipart"
    )
    assert (
        r.status_code == 201
        and r.data["name"] == "说明书.pdf"
        and r.data["content_type"] == "application/pdf"
    )
    assert api.get(f"{base(ticket)}/attachments/").data["count"] == 1
    d = api.get(r.data["download"])
    assert d.status_code == 200 and b"".join(d.streaming_content) == PDF
    assert d["X-Content-Type-Options"] == "nosniff" and d["Content-Disposition"].startswith("attachment;")


def test_an_oversized_upload_is_refused(api_for, ticket, settings):
    settings.ATTACHMENT_MAX_BYTES = 4
    r = api_for("agent").post(f"{base(ticket)}/attachments/", {"file": SimpleUploadedFile("a.txt", b"hello")},
                              format="multipart")  # fmt: skip
    assert r.status_code == 400 and list(r.data) == ["file"]  # the field this endpoint takes
    assert r.data["file"][0] == "“a.txt”: the file is larger than the limit of 4\xa0bytes."


def test_a_rep_outside_the_territory_gets_404_for_messages_and_files(api_for, users, ruijin):
    t = services.create_ticket(users["agent"], {"subject": "上海", "channel": "phone", "category": "drug_info",
                                                "institution": ruijin})  # fmt: skip
    att = attachments.store_upload(users["agent"], t, SimpleUploadedFile("x.pdf", PDF))
    rep = api_for("rep")
    assert rep.get(f"{base(t)}/messages/").status_code == 404
    assert rep.get(f"{base(t)}/attachments/").status_code == 404
    assert rep.get(f"{base(t)}/attachments/{att.pk}/download/").status_code == 404
    assert rep.get(f"{base(t)}/details/").status_code == 404


def test_an_attachment_is_only_reachable_through_its_own_ticket(api_for, users, ticket, xiehe):
    other = services.create_ticket(users["agent"], {"subject": "另一张", "channel": "phone", "category": "drug_info",
                                                    "institution": xiehe})  # fmt: skip
    att = attachments.store_upload(users["agent"], other, SimpleUploadedFile("x.pdf", PDF))
    assert api_for("agent").get(f"{base(ticket)}/attachments/{att.pk}/download/").status_code == 404


@pytest.mark.parametrize("role", ROLES)
def test_conversation_endpoints_per_role(api_for, ticket, role):
    api = api_for(role)
    assert api.get(f"{base(ticket)}/messages/").status_code == 200
    assert api.get(f"{base(ticket)}/attachments/").status_code == 200
    assert api.get(f"{base(ticket)}/details/").status_code == 200
    write = 201 if role in HANDLERS else 403
    assert (
        api.post(f"{base(ticket)}/messages/", {"kind": "note", "body": "x"}, format="json").status_code
        == write
    )
    r = api.post(
        f"{base(ticket)}/attachments/", {"file": SimpleUploadedFile("a.txt", b"ok")}, format="multipart"
    )
    assert r.status_code == write
    version = Ticket.objects.get(pk=ticket.pk).version
    r = api.patch(f"{base(ticket)}/details/", {"batch_number": "B1", "version": version}, format="json")
    assert r.status_code == (200 if role in HANDLERS else 403)


# --- details -------------------------------------------------------------------------------------------


def test_details_patch_changes_only_what_is_sent_and_a_stale_version_is_409(api_for, ticket, product):
    first, second = api_for("agent"), api_for("kam")
    r = first.patch(f"{base(ticket)}/details/", {"product": product.pk, "category": "adverse_reaction",
                                                  "version": ticket.version}, format="json")  # fmt: skip
    assert r.status_code == 200, r.data
    assert r.data["product"] == product.pk and r.data["category"] == "adverse_reaction"
    assert (
        r.data["priority"] == "normal"
        and r.data["safety_relevant"]
        and r.data["version"] == ticket.version + 1
    )
    assert r["ETag"] == f'"{ticket.version + 1}"'
    r = second.patch(f"{base(ticket)}/details/", {"subject": "改", "version": ticket.version}, format="json")
    assert r.status_code == 409 and r.data["current_version"] == ticket.version + 1
    r = second.patch(
        f"{base(ticket)}/details/", {"subject": "改"}, format="json", HTTP_IF_MATCH=f'"{ticket.version + 1}"'
    )
    assert r.status_code == 200 and r.data["subject"] == "改"
    r = second.patch(f"{base(ticket)}/details/", {"subject": "无版本"}, format="json")
    assert r.status_code == 400 and "version" in r.data


def test_details_validation_is_per_field(api_for, ticket):
    r = api_for("agent").patch(
        f"{base(ticket)}/details/", {"subject": "", "category": "nope", "version": 1}, format="json"
    )
    assert r.status_code == 400 and {"subject", "category"} <= set(r.data)


# --- products and templates ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_products_and_templates_per_role(api_for, product, role):
    api = api_for(role)
    assert api.get("/api/v1/products/").status_code == 200
    assert api.get(f"/api/v1/products/{product.pk}/").status_code == 200
    assert api.get("/api/v1/answer-templates/").status_code == 200
    allowed = role in KNOWLEDGE
    r = api.post("/api/v1/products/", {**PRODUCT, "approval_number": "国药准字Z20260001"}, format="json")
    assert r.status_code == (201 if allowed else 403)
    r = api.patch(
        f"/api/v1/products/{product.pk}/", {"strength": "10mg", "version": product.version}, format="json"
    )
    assert r.status_code == (200 if allowed else 403)
    r = api.post(
        "/api/v1/answer-templates/", {"name": f"模板-{role}", "body": "您好 {customer}"}, format="json"
    )
    assert r.status_code == (201 if allowed else 403)


@pytest.mark.parametrize("q", ["氨氯地平 5mg", "安心宁　５ｍｇ", "氨氯地平5mg", "5mg×28片"])
def test_the_api_searches_the_catalogue_as_the_page_does(api_for, users, product, q):
    """The catalogue page finds 氨氯地平 5mg (several words, the strength, full-width digits); the API's `q`
    wanted the whole text inside one name, so the phone bar or a bot asking the API found nothing."""
    knowledge.create_product(users["admin"], {**PRODUCT, "approval_number": "国药准字H20249872", "strength": "10mg×14片"})
    found = api_for("agent").get("/api/v1/products/", {"q": q}).data
    assert [p["id"] for p in found["results"]] == [product.pk]


def test_product_search_validation_and_deactivation(api_for, product):
    api = api_for("expert")
    assert api.get("/api/v1/products/", {"q": "国药准字h2024"}).data["count"] == 1
    assert api.get("/api/v1/products/", {"q": "氨氯"}).data["count"] == 1
    r = api.post("/api/v1/products/", {**PRODUCT, "approval_number": "国药准字H1"}, format="json")
    assert r.status_code == 400 and "is not a drug approval number" in r.data["approval_number"][0]
    r = api.post("/api/v1/products/", PRODUCT, format="json")
    assert r.status_code == 400 and "approval_number" in r.data
    r = api.patch(f"/api/v1/products/{product.pk}/", {"strength": "x", "version": 99}, format="json")
    assert r.status_code == 409
    assert api.delete(f"/api/v1/products/{product.pk}/").status_code == 204
    assert not Product.objects.get(pk=product.pk).active
    assert api_for("agent").get("/api/v1/products/").data["count"] == 0
    assert api_for("agent").get(f"/api/v1/products/{product.pk}/").status_code == 404


def test_templates_refuse_unknown_placeholders_and_render_for_a_ticket(api_for, users, ticket):
    api = api_for("expert")
    r = api.post("/api/v1/answer-templates/", {"name": "坏", "body": "您好 {nmae}"}, format="json")
    assert r.status_code == 400 and "{nmae}" in r.data["body"][0]
    r = api.post("/api/v1/answer-templates/", {"name": "好", "category": "drug_info", "body": "您好 {customer}，{ticket}"},
                 format="json")  # fmt: skip
    assert r.status_code == 201 and r.data["category"] == "drug_info"
    tpl = AnswerTemplate.objects.get(name="好")
    rendered = api_for("agent").get(f"/api/v1/answer-templates/{tpl.pk}/render/", {"ticket": ticket.pk})
    assert rendered.status_code == 200 and rendered.data["body"] == f"您好 北京协和医院，{ticket.number}"
    assert (
        api_for("agent").get(f"/api/v1/answer-templates/{tpl.pk}/render/", {"ticket": "x"}).status_code == 400
    )


def test_render_needs_a_ticket_the_caller_may_see(api_for, users, ruijin):
    t = services.create_ticket(users["agent"], {"subject": "上海", "channel": "phone", "category": "drug_info",
                                                "institution": ruijin})  # fmt: skip
    tpl = knowledge.create_template(users["admin"], {"name": "问候", "body": "您好"})
    assert (
        api_for("rep").get(f"/api/v1/answer-templates/{tpl.pk}/render/", {"ticket": t.pk}).status_code == 404
    )


def test_a_client_asking_for_the_files_type_gets_the_file_and_errors_as_json(api_for, ticket):
    """`Accept: application/pdf` on a download is what a PDF client sends: the file, not 406 Not Acceptable."""
    api = api_for("agent")
    r = api.post(f"{base(ticket)}/attachments/", {"file": SimpleUploadedFile("说明书.pdf", PDF)}, format="multipart")
    d = api.get(r.data["download"], HTTP_ACCEPT="application/pdf")
    assert d.status_code == 200 and b"".join(d.streaming_content) == PDF
    missing = api.get(f"{base(ticket)}/attachments/999999/download/", HTTP_ACCEPT="application/pdf")
    assert missing.status_code == 404 and missing["Content-Type"].startswith("application/json")
