"""A visit's product is offered in pinyin order (拼音排序): 安心宁 (an) before 宁咳 (ning), not in the characters'
code-point order (宁 U+5B81 before 安 U+5B89)."""

from __future__ import annotations

import pytest

from tests.pinyin_helpers import PINYIN_PRODUCTS, PRODUCTS, make_products, offered


@pytest.fixture
def products(db):
    return make_products()


def test_recording_a_visit_offers_products_in_pinyin_order(client_for, products):
    html = client_for("rep").get("/interactions/new/").content.decode()
    assert offered(html, "product", PRODUCTS) == PINYIN_PRODUCTS
