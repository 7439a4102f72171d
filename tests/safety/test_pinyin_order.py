"""The safety forms offer the catalogue's products in pinyin order (拼音排序): 安心宁 (an) before 宁咳 (ning), not in
the characters' code-point order (宁 U+5B81 before 安 U+5B89): the new case's suspect drug, a case's drugs, and
the batch trace."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pharmacrm.servicedesk.models import Product

PRODUCTS = ["宁咳", "安心宁", "止咳宝"]  # in code-point order
PINYIN_PRODUCTS = ["安心宁", "宁咳", "止咳宝"]  # an, ning, zhi


@pytest.fixture
def products(db):
    return [
        Product.objects.create(brand_name=name, generic_name="通用名", approval_number=f"国药准字H2024987{i}",
                               dosage_form="片剂", strength="5mg")  # fmt: skip
        for i, name in enumerate(PRODUCTS)
    ]


def options(html: str, name: str) -> list[str]:
    """The products the <select name=…> offers, in the order the user sees them."""
    start = html.index(f'name="{name}"')
    select = html[start : html.index("</select>", start)]
    return sorted((p for p in PRODUCTS if p in select), key=select.index)


def test_a_new_case_offers_the_suspect_drug_in_pinyin_order(web, products):
    html = web("pv").get(reverse("safety:case-new")).content.decode()
    assert options(html, "drug_product") == PINYIN_PRODUCTS


def test_editing_a_case_offers_its_drugs_in_pinyin_order(web, products, make_case):
    case = make_case()
    html = web("pv").get(reverse("safety:case-edit", args=[case.pk])).content.decode()
    assert options(html, "drugs-0-product") == PINYIN_PRODUCTS


def test_the_batch_trace_offers_products_in_pinyin_order(web, products):
    html = web("pv").get(reverse("safety:batch-trace")).content.decode()
    assert options(html, "product") == PINYIN_PRODUCTS
