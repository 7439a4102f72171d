"""The product catalogue and answer templates: 国药准字 validation, versioned updates, deactivation, who may
write, placeholders (unknown ones refused when saving, left visible when rendering), and the demo seed."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.services import ConflictError
from pharmacrm.servicedesk import knowledge, knowledge_demo, services
from pharmacrm.servicedesk.models import AnswerTemplate, Product, TicketCategory

AMLODIPINE = {
    "brand_name": "安心宁", "generic_name": "盐酸氨氯地平片", "approval_number": "国药准字H20249871",
    "dosage_form": "片剂", "strength": "5mg×28片", "indications": "高血压", "usage": "一日一次",
}  # fmt: skip


@pytest.fixture
def product(users):
    return knowledge.create_product(users["expert"], AMLODIPINE)


@pytest.mark.parametrize(
    "number",
    ["国药准字H2024987", "国药准字X20249871", "H20249871", "国药准字H202498711", "国药准字ＨH20249871", ""],
)
def test_a_malformed_approval_number_is_refused_naming_the_field(users, number):
    with pytest.raises(ValidationError) as exc:
        knowledge.create_product(users["expert"], {**AMLODIPINE, "approval_number": number})
    assert "approval_number" in exc.value.message_dict


def test_the_approval_number_message_is_localised(users):
    with translation.override("en"), pytest.raises(ValidationError) as exc:
        knowledge.create_product(users["expert"], {**AMLODIPINE, "approval_number": "国药准字H123"})
    assert "is not a drug approval number" in exc.value.message_dict["approval_number"][0]


def test_spaces_and_a_small_letter_are_normalised(users):
    p = knowledge.create_product(users["expert"], {**AMLODIPINE, "approval_number": " 国药准字 h2024 9871 "})
    assert p.approval_number == "国药准字H20249871"


def test_an_approval_number_is_in_the_catalogue_once(users, product):
    with pytest.raises(ValidationError) as exc:
        knowledge.create_product(users["expert"], {**AMLODIPINE, "strength": "10mg×14片"})
    assert "approval_number" in exc.value.message_dict


def test_a_product_update_is_versioned_and_audited(users, product):
    knowledge.update_product(users["manager"], product, {"strength": "5mg×14片"}, version=1)
    assert Product.objects.get(pk=product.pk).version == 2
    entry = AuditEntry.objects.filter(action="update").latest("seq")
    assert entry.changes["strength"] == ["5mg×28片", "5mg×14片"]
    stale = Product.objects.get(pk=product.pk)
    stale.version = 1
    with pytest.raises(ConflictError):
        knowledge.update_product(users["manager"], stale, {"strength": "x"}, version=1)
    assert Product.objects.get(pk=product.pk).strength == "5mg×14片"


def test_deactivated_products_leave_the_search_but_stay_on_tickets(users, product):
    assert list(knowledge.products(users["agent"], q="氨氯地平")) == [product]
    assert list(knowledge.products(users["agent"], q="h20249871")) == [product]
    knowledge.deactivate_product(users["expert"], product)
    assert list(knowledge.products(users["agent"], q="安心宁")) == []
    assert list(knowledge.products(users["agent"], q="安心宁", include_inactive=True)) == [product]


@pytest.mark.parametrize("q", ["安心寧", "鹽酸氨氯地平", "鹽酸氨氯地平 5mg"])
def test_a_product_name_typed_in_traditional_characters_is_found(users, product, client_for, q):
    """An agent on the Traditional Chinese pages types 安心寧 / 鹽酸氨氯地平: the catalogue (in Simplified) finds it."""
    assert list(knowledge.products(users["agent"], q=q)) == [product]
    page = client_for("agent").get("/service/knowledge/products/", {"q": q}, HTTP_ACCEPT_LANGUAGE="zh-hant")
    assert product.approval_number in page.content.decode()


@pytest.mark.parametrize("role", ["agent", "rep", "pv", "auditor", "analyst", "support"])
def test_only_admins_managers_and_product_experts_maintain_knowledge(users, role):
    with pytest.raises(PermissionDenied):
        knowledge.create_product(users[role], AMLODIPINE)
    with pytest.raises(PermissionDenied):
        knowledge.create_template(users[role], {"name": "x", "body": "y"})


def test_a_template_with_an_unknown_placeholder_is_refused(users):
    with translation.override("en"), pytest.raises(ValidationError) as exc:
        knowledge.create_template(
            users["expert"], {"name": "坏模板", "body": "您好 {customre}，工单 {ticket}"}
        )
    message = exc.value.message_dict["body"][0]
    assert "{customre}" in message and "{customer}" in message


def test_a_template_is_rendered_for_a_ticket(users, xiehe, product):
    ticket = services.create_ticket(users["agent"], {
        "subject": "咨询用法", "channel": "email", "category": "drug_info", "institution": xiehe,
        "product": product, "batch_number": "B2026031",
    })  # fmt: skip
    tpl = knowledge.create_template(users["expert"], {
        "name": "用法", "category": "drug_info", "language": "zh-hans",
        "body": "尊敬的{customer}：关于{product}（批号 {batch}），工单 {ticket}「{subject}」。{agent} {received_at}",
    })  # fmt: skip
    text = knowledge.render(tpl, ticket, users["agent"])
    assert text.startswith(
        f"尊敬的{xiehe.name}：关于安心宁（盐酸氨氯地平片）5mg×28片（批号 B2026031），工单 {ticket.number}"
    )
    assert "「咨询用法」" in text and "agent" in text
    # an unknown placeholder saved before the check (or by hand in the database) is left visible
    AnswerTemplate.objects.filter(pk=tpl.pk).update(body="{customer} {unknown} {{ticket}}")
    tpl.refresh_from_db()
    assert knowledge.render(tpl, ticket, users["agent"]) == f"{xiehe.name} {{unknown}} {{{ticket.number}}}"


def test_an_unidentified_callers_name_stays_masked_for_an_agent(users):
    ticket = services.create_ticket(users["agent"], {
        "subject": "来电", "channel": "phone", "category": "drug_info", "caller_name": "王小明", "caller_phone": "13900001111",
    })  # fmt: skip
    tpl = knowledge.create_template(
        users["admin"], {"name": "问候", "language": "en", "body": "Dear {customer},"}
    )
    assert knowledge.render(tpl, ticket, users["agent"]) == "Dear customer,"
    assert knowledge.render(tpl, ticket, users["kam"]) == "Dear 王小明,"


def test_templates_of_the_tickets_category_come_first(users, xiehe):
    ticket = services.create_ticket(users["agent"], {"subject": "不良反应", "channel": "phone",
                                                     "category": "adverse_reaction", "institution": xiehe})  # fmt: skip
    knowledge.create_template(users["admin"], {"name": "A 通用", "body": "x"})
    knowledge.create_template(
        users["admin"], {"name": "B 不良反应", "category": "adverse_reaction", "body": "y"}
    )
    knowledge.create_template(users["admin"], {"name": "C 订单", "category": "order_delivery", "body": "z"})
    names = [t.name for t in knowledge.templates_for(users["agent"], ticket)]
    assert names == ["B 不良反应", "A 通用", "C 订单"]


def test_template_update_is_versioned(users):
    tpl = knowledge.create_template(users["admin"], {"name": "问候", "body": "您好"})
    knowledge.update_template(users["expert"], tpl, {"body": "您好，{customer}"}, version=1)
    with pytest.raises(ConflictError):
        knowledge.update_template(
            users["expert"], AnswerTemplate.objects.get(pk=tpl.pk), {"body": "x"}, version=1
        )
    knowledge.deactivate_template(users["expert"], AnswerTemplate.objects.get(pk=tpl.pk))
    assert not AnswerTemplate.objects.get(pk=tpl.pk).active


def test_the_demo_seed_is_valid_and_idempotent(db):
    first = knowledge_demo.seed_demo()
    assert first == {"products": 8, "templates": 8}
    assert knowledge_demo.seed_demo() == {"products": 0, "templates": 0}
    for p in Product.objects.all():
        p.full_clean()
    for t in AnswerTemplate.objects.all():
        assert knowledge.unknown_placeholders(t.body) == []
    assert AnswerTemplate.objects.filter(
        category=TicketCategory.objects.get(code="adverse_reaction")
    ).exists()


@pytest.mark.parametrize("version", ["abc", "²", "1" * 40])
def test_a_garbled_version_is_a_stale_edit_not_a_server_error(users, product, version):
    """A version that is no number (a script's or a garbled form's) counts as an old one: a conflict (409 to the
    user) and nothing saved, instead of a ValueError (500). The same for answer templates and SLA policies."""
    from pharmacrm.servicedesk import policies
    from pharmacrm.servicedesk.models import SlaPolicy

    with pytest.raises(ConflictError):
        knowledge.update_product(users["manager"], product, {"strength": "10mg×14片"}, version=version)
    assert Product.objects.get(pk=product.pk).strength == "5mg×28片"
    tpl = knowledge.create_template(users["expert"], {"name": "问候", "body": "您好", "language": "zh-hans"})
    with pytest.raises(ConflictError):
        knowledge.update_template(users["expert"], tpl, {"body": "您好，{customer}"}, version=version)
    assert AnswerTemplate.objects.get(pk=tpl.pk).body == "您好"
    policy = SlaPolicy.objects.first()
    name = policy.name
    with pytest.raises(ConflictError):
        policies.update_policy(users["admin"], policy, {"name": "新名称"}, version=version)
    assert SlaPolicy.objects.get(pk=policy.pk).name == name


def test_the_catalogue_search_box_s_hint_is_in_the_reader_s_language(users, product, client_for):
    """The search box's placeholder was written into the page in Chinese: an English reader saw 安心宁 / 氨氯地平 /
    国药准字H… with no word of theirs. It goes through the catalogue now (the names in it are the catalogue's own)."""
    page = client_for("agent").get("/service/knowledge/products/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert re.search(r'<input type="search" name="q" id="product-q" value="" placeholder="e\.g\. 安心宁 / ', page)
