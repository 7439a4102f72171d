"""The safety forms offer the catalogue's products in pinyin order (拼音排序): 安心宁 (an) before 宁咳 (ning), not in
the characters' code-point order (宁 U+5B81 before 安 U+5B89): the new case's suspect drug, a case's drugs, and
the batch trace."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.pinyin_helpers import PINYIN_PRODUCTS, PRODUCTS, make_products, offered


@pytest.fixture
def products(db):
    return make_products()


def options(html: str, name: str) -> list[str]:
    """The products the <select name=…> offers, in the order the user sees them."""
    return offered(html, name, PRODUCTS)


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
