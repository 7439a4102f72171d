"""Sales offers products and teams in pinyin order (拼音排序): 安心宁 (an) before 宁咳 (ning), 华东团队 (hua) before
医学信息组 (yi), not in the characters' code-point order: the pipeline's filters and an opportunity's form, and the
targets grid."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pharmacrm.core.models import Team
from pharmacrm.servicedesk.models import Product

PRODUCTS = ["宁咳", "安心宁", "止咳宝"]  # in code-point order
PINYIN_PRODUCTS = ["安心宁", "宁咳", "止咳宝"]  # an, ning, zhi
TEAMS = ["东北团队", "医学信息组", "华东团队"]  # in code-point order
PINYIN_TEAMS = ["东北团队", "华东团队", "医学信息组"]  # dong, hua, yi


@pytest.fixture
def products(db):
    return [
        Product.objects.create(brand_name=name, generic_name="通用名", approval_number=f"国药准字H2024987{i}",
                               dosage_form="片剂", strength="5mg")  # fmt: skip
        for i, name in enumerate(PRODUCTS)
    ]


@pytest.fixture
def teams(db):
    return [Team.objects.create(name=name) for name in TEAMS]


def shown(html: str, names: list[str]) -> list[str]:
    """The names in the order the page shows them (each at its first place)."""
    assert all(name in html for name in names), [n for n in names if n not in html]
    return sorted(names, key=html.index)


def select(html: str, name: str) -> str:
    start = html.index(f'name="{name}"')
    return html[start : html.index("</select>", start)]


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
