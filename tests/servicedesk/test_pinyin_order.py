"""Products and teams are offered in pinyin order (拼音排序), as customers are listed: 安心宁 (an) before 宁咳 (ning),
华东团队 (hua) before 医学信息组 (yi), not in the characters' code-point order (宁 U+5B81 before 安 U+5B89, 医 before
华): on ticket intake, the public /help/ form, the catalogue, the routing and complaint forms and the performance
filters."""

from __future__ import annotations

import pytest
from django.test import Client
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


def test_ticket_intake_offers_products_and_teams_in_pinyin_order(client_for, products, teams):
    html = client_for("agent").get(reverse("servicedesk:ticket-create")).content.decode()
    assert shown(select(html, "product"), PRODUCTS) == PINYIN_PRODUCTS
    assert shown(select(html, "team"), TEAMS) == PINYIN_TEAMS


def test_the_public_help_form_offers_products_in_pinyin_order(products):
    html = Client().get("/help/").content.decode()
    assert shown(select(html, "product"), PRODUCTS) == PINYIN_PRODUCTS


def test_the_catalogue_lists_products_in_pinyin_order(client_for, products):
    html = client_for("agent").get(reverse("servicedesk:product-list")).content.decode()
    assert shown(html, PRODUCTS) == PINYIN_PRODUCTS


def test_the_performance_filters_and_goals_offer_teams_in_pinyin_order(client_for, teams):
    html = client_for("manager").get(reverse("servicedesk:performance")).content.decode()
    assert shown(select(html, "team"), TEAMS) == PINYIN_TEAMS
    html = client_for("admin").get(reverse("servicedesk:settings-goals")).content.decode()
    assert shown(select(html, "team"), TEAMS) == PINYIN_TEAMS


def test_routing_and_complaint_forms_offer_products_and_teams_in_pinyin_order(client_for, users, products, teams):
    manager = client_for("manager")
    html = manager.get(reverse("servicedesk:assignment-rule-create")).content.decode()
    assert shown(select(html, "product"), PRODUCTS) == PINYIN_PRODUCTS
    assert shown(select(html, "team"), TEAMS) == PINYIN_TEAMS
    html = manager.get(reverse("servicedesk:agent-profile", args=[users["agent"].pk])).content.decode()
    assert shown(html[html.index('name="products"') :], PRODUCTS) == PINYIN_PRODUCTS
    html = manager.get(reverse("servicedesk:board")).content.decode()
    assert shown(select(html, "team"), TEAMS) == PINYIN_TEAMS
    html = manager.get(reverse("servicedesk:complaints")).content.decode()
    assert shown(select(html, "product"), PRODUCTS) == PINYIN_PRODUCTS
    assert shown(select(html, "team"), TEAMS) == PINYIN_TEAMS
