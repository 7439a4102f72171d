"""Switching the interface language: Simplified Chinese by default, then English, then Traditional Chinese."""

import pytest
from django.urls import reverse

from .conftest import html_lang, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def nav_texts(page) -> list[str]:
    return [t.strip() for t in page.get_by_role("navigation").locator("a").all_inner_texts()]


def switch_to(page, language: str) -> None:
    with page.expect_navigation():
        page.select_option("#language-select", language)


def test_the_language_switch_changes_the_page_language_and_stays_on_the_same_page(page, users, xiehe):
    sign_in(page, "agent")
    page.goto(reverse("customers:institutions"))
    assert html_lang(page) == "zh-hans"
    assert "Institutions" not in nav_texts(page)

    switch_to(page, "en")
    assert html_lang(page) == "en"
    assert page.url.endswith(reverse("customers:institutions"))
    assert "Institutions" in nav_texts(page)
    assert page.locator("#global-q").get_attribute("placeholder") == "Name, pinyin, phone or credit code"

    switch_to(page, "zh-hant")
    assert html_lang(page) == "zh-hant"
    assert "Institutions" not in nav_texts(page)

    # the choice sticks for the next page
    page.goto(reverse("home"))
    assert html_lang(page) == "zh-hant"
