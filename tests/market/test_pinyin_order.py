"""Market intelligence offers our products and the competitors' products in pinyin order (拼音排序): 安心宁 (an)
before 宁咳 (ning), 阿斯利康 (a) before 正大天晴 (zheng), not in the characters' code-point order (宁 before 安,
正 before 阿): a competitor product's form and an intelligence item's form."""

from __future__ import annotations

import pytest

from pharmacrm.market.models import Competitor, CompetitorProduct
from pharmacrm.servicedesk.models import Product

PRODUCTS = ["宁咳", "安心宁", "止咳宝"]  # in code-point order
PINYIN_PRODUCTS = ["安心宁", "宁咳", "止咳宝"]  # an, ning, zhi
COMPANIES = ["正大天晴", "阿斯利康"]  # in code-point order
PINYIN_COMPANIES = ["阿斯利康", "正大天晴"]  # a, zheng


@pytest.fixture
def products(db):
    return [
        Product.objects.create(brand_name=name, generic_name="通用名", approval_number=f"国药准字H2024987{i}",
                               dosage_form="片剂", strength="5mg")  # fmt: skip
        for i, name in enumerate(PRODUCTS)
    ]


@pytest.fixture
def competitor_products(db):
    return [CompetitorProduct.objects.create(company=Competitor.objects.create(name=name), generic_name="奥美拉唑肠溶胶囊")
            for name in COMPANIES]  # fmt: skip


def offered(html: str, name: str, names: list[str]) -> list[str]:
    start = html.index(f'name="{name}"')
    select = html[start : html.index("</select>", start)]
    assert all(n in select for n in names), select
    return sorted(names, key=select.index)


def test_a_competitor_product_offers_our_products_in_pinyin_order(client_for, products):
    html = client_for("manager").get("/market/products/new/").content.decode()
    assert offered(html, "our_products", PRODUCTS) == PINYIN_PRODUCTS


def test_intelligence_offers_both_products_in_pinyin_order(client_for, products, competitor_products):
    html = client_for("manager").get("/market/intelligence/new/").content.decode()
    assert offered(html, "our_products", PRODUCTS) == PINYIN_PRODUCTS
    assert offered(html, "competitor_products", COMPANIES) == PINYIN_COMPANIES
