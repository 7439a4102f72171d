"""Market intelligence offers our products and the competitors' products in pinyin order (拼音排序): 安心宁 (an)
before 宁咳 (ning), 阿斯利康 (a) before 正大天晴 (zheng), not in the characters' code-point order (宁 before 安,
正 before 阿): a competitor product's form and an intelligence item's form."""

from __future__ import annotations

import pytest

from pharmacrm.market.models import Competitor, CompetitorProduct
from tests.pinyin_helpers import PINYIN_PRODUCTS, PRODUCTS, make_products, offered

COMPANIES = ["正大天晴", "阿斯利康"]  # in code-point order
PINYIN_COMPANIES = ["阿斯利康", "正大天晴"]  # a, zheng


@pytest.fixture
def products(db):
    return make_products()


@pytest.fixture
def competitor_products(db):
    return [CompetitorProduct.objects.create(company=Competitor.objects.create(name=name), generic_name="奥美拉唑肠溶胶囊")
            for name in COMPANIES]  # fmt: skip


def test_a_competitor_product_offers_our_products_in_pinyin_order(client_for, products):
    html = client_for("manager").get("/market/products/new/").content.decode()
    assert offered(html, "our_products", PRODUCTS) == PINYIN_PRODUCTS


def test_intelligence_offers_both_products_in_pinyin_order(client_for, products, competitor_products):
    html = client_for("manager").get("/market/intelligence/new/").content.decode()
    assert offered(html, "our_products", PRODUCTS) == PINYIN_PRODUCTS
    assert offered(html, "competitor_products", COMPANIES) == PINYIN_COMPANIES
