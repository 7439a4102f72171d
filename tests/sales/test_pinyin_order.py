"""Sales offers products and teams in pinyin order (拼音排序): 安心宁 (an) before 宁咳 (ning), 华东团队 (hua) before
医学信息组 (yi), not in the characters' code-point order: the pipeline's filters and an opportunity's form, and the
targets grid."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.pinyin_helpers import (
    PINYIN_PRODUCTS,
    PINYIN_TEAMS,
    PRODUCTS,
    TEAMS,
    make_products,
    make_teams,
    select,
    shown,
)


@pytest.fixture
def products(db):
    return make_products()


@pytest.fixture
def teams(db):
    return make_teams()


def test_the_pipeline_filters_and_an_opportunity_offer_products_and_teams_in_pinyin_order(client_for, products, teams):
    manager = client_for("manager")
    html = manager.get(reverse("sales:pipeline")).content.decode()
    assert shown(select(html, "product"), PRODUCTS) == PINYIN_PRODUCTS
    assert shown(select(html, "team"), TEAMS) == PINYIN_TEAMS
    html = manager.get(reverse("sales:opportunity-new")).content.decode()
    assert shown(select(html, "product"), PRODUCTS) == PINYIN_PRODUCTS
    assert shown(select(html, "team"), TEAMS) == PINYIN_TEAMS


def test_the_targets_grid_lists_teams_in_pinyin_order(client_for, teams):
    html = client_for("manager").get(reverse("sales:target-grid")).content.decode()
    assert shown(html, TEAMS) == PINYIN_TEAMS
