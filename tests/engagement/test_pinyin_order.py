"""A visit's product is offered in pinyin order (拼音排序): 安心宁 (an) before 宁咳 (ning), not in the characters'
code-point order (宁 U+5B81 before 安 U+5B89)."""

from __future__ import annotations

import pytest

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


def test_recording_a_visit_offers_products_in_pinyin_order(client_for, products):
    html = client_for("rep").get("/interactions/new/").content.decode()
    start = html.index('name="product"')
    select = html[start : html.index("</select>", start)]
    assert sorted(PRODUCTS, key=select.index) == PINYIN_PRODUCTS
