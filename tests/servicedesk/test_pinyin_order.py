"""Products and teams are offered in pinyin order (拼音排序), as customers are listed: 安心宁 (an) before 宁咳 (ning),
华东团队 (hua) before 医学信息组 (yi), not in the characters' code-point order (宁 U+5B81 before 安 U+5B89, 医 before
华): on ticket intake, the public /help/ form, the catalogue, the routing and complaint forms and the performance
filters."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from pharmacrm.core.models import Team
from pharmacrm.servicedesk.models import Product

# code-point order: 宁咳, 安心宁, 止咳宝; pinyin order: 安心宁 an, 宁咳 ning, 止咳宝 zhi
PRODUCTS = ["宁咳", "安心宁", "止咳宝"]
PINYIN_PRODUCTS = ["安心宁", "宁咳", "止咳宝"]
# code-point order: 东北团队, 医学信息组, 华东团队; pinyin order: 东北 dong, 华东 hua, 医学 yi
TEAMS = ["东北团队", "医学信息组", "华东团队"]
PINYIN_TEAMS = ["东北团队", "华东团队", "医学信息组"]


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


def order_in(html: str, names: list[str]) -> list[str]:
    """The names as the page shows them first, top to bottom."""
    found = {name: html.find(name) for name in names}
    assert all(at >= 0 for at in found.values()), found
    return sorted(names, key=found.__getitem__)


def select(html: str, name: str) -> str:
    """The HTML of the <select name=…> on the page."""
    start = html.index(f'name="{name}"')
    return html[start : html.index("</select>", start)]


def test_ticket_intake_offers_products_and_teams_in_pinyin_order(client_for, products, teams):
    html = client_for("agent").get(reverse("servicedesk:ticket-create")).content.decode()
    assert order_in(select(html, "product"), PRODUCTS) == PINYIN_PRODUCTS
    assert order_in(select(html, "team"), TEAMS) == PINYIN_TEAMS


def test_the_public_help_form_offers_products_in_pinyin_order(products):
    html = Client().get("/help/").content.decode()
    assert order_in(select(html, "product"), PRODUCTS) == PINYIN_PRODUCTS


def test_the_catalogue_lists_products_in_pinyin_order(client_for, products):
    html = client_for("agent").get(reverse("servicedesk:product-list")).content.decode()
    assert order_in(html, PRODUCTS) == PINYIN_PRODUCTS


def test_the_performance_filters_and_goals_offer_teams_in_pinyin_order(client_for, teams):
    html = client_for("manager").get(reverse("servicedesk:performance")).content.decode()
    assert order_in(select(html, "team"), TEAMS) == PINYIN_TEAMS
    html = client_for("admin").get(reverse("servicedesk:settings-goals")).content.decode()
    assert order_in(select(html, "team"), TEAMS) == PINYIN_TEAMS


def test_routing_and_complaint_forms_offer_products_and_teams_in_pinyin_order(client_for, users, products, teams):
    manager = client_for("manager")
    html = manager.get(reverse("servicedesk:assignment-rule-create")).content.decode()
    assert order_in(select(html, "product"), PRODUCTS) == PINYIN_PRODUCTS
    assert order_in(select(html, "team"), TEAMS) == PINYIN_TEAMS
    html = manager.get(reverse("servicedesk:agent-profile", args=[users["agent"].pk])).content.decode()
    assert order_in(html[html.index('name="products"') :], PRODUCTS) == PINYIN_PRODUCTS
    html = manager.get(reverse("servicedesk:board")).content.decode()
    assert order_in(select(html, "team"), TEAMS) == PINYIN_TEAMS
    html = manager.get(reverse("servicedesk:complaints")).content.decode()
    assert order_in(select(html, "product"), PRODUCTS) == PINYIN_PRODUCTS
    assert order_in(select(html, "team"), TEAMS) == PINYIN_TEAMS
