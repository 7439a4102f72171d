"""The top search box: pinyin initials find the hospital, as suggestions while typing and as a result page."""

import pytest
from django.urls import reverse

from .conftest import shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_typing_pinyin_initials_suggests_the_hospital_and_opens_its_360_page(page, users, xiehe, ruijin):
    sign_in(page, "agent")

    page.locator("#global-q").press_sequentially("bjxh", delay=50)
    suggestions = page.locator("#global-suggestions")
    suggestions.get_by_text("北京协和医院").first.wait_for()
    assert suggestions.get_by_text("瑞金医院").count() == 0

    with page.expect_navigation():
        page.press("#global-q", "Enter")
    assert reverse("customers:search") in page.url
    result = page.locator("main").get_by_role("link", name="北京协和医院", exact=True)
    assert result.count() == 1

    with page.expect_navigation():
        result.click()
    assert page.url.endswith(reverse("customers:institution", args=[xiehe.pk]))
    assert page.get_by_role("heading", level=1).inner_text().strip().startswith("北京协和医院")
    # the 360 page shows the hierarchy and the people of the hospital
    assert page.locator("main").get_by_text("心内科").first.is_visible()
    assert page.locator("main").get_by_text("张伟").first.is_visible()
    shot(page, "institution-360")


def test_a_sales_rep_does_not_find_a_hospital_outside_their_territory(page, users, xiehe, ruijin):
    sign_in(page, "rep")

    page.goto(reverse("customers:search") + "?q=ruijin")
    assert page.locator("main").get_by_role("link", name="上海交通大学医学院附属瑞金医院").count() == 0
    page.goto(reverse("customers:search") + "?q=bjxh")
    assert page.locator("main").get_by_role("link", name="北京协和医院", exact=True).count() == 1
