"""Creating an institution in the browser: a mistyped credit code is explained next to its field."""

import pytest
from django.urls import reverse

from pharmacrm.customers import normalise
from pharmacrm.customers.choices import InstitutionType
from pharmacrm.customers.models import Institution

from .conftest import html_lang, sign_in, validation_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

GOOD = normalise.make_credit_code("12110000400686531")
# the same code with its check character mistyped
BAD = GOOD[:17] + next(c for c in normalise.CREDIT_ALPHABET if c != GOOD[17])


def test_a_bad_credit_code_is_explained_next_to_the_field_and_nothing_is_saved(page, users, beijing):
    sign_in(page, "agent")
    page.goto(reverse("customers:institution-create"))
    expected = validation_message(normalise.validate_credit_code, BAD, html_lang(page))

    page.fill("#id_name", "北京市朝阳区测试医院")
    page.select_option("#id_kind", InstitutionType.HOSPITAL.value)
    page.locator("#id_credit_code").press_sequentially(BAD, delay=20)
    # checked while typing, before the form is sent
    errors = page.locator("#field-credit_code .error")
    errors.first.wait_for()
    assert errors.first.inner_text().strip() == expected

    with page.expect_navigation():
        page.locator("#institution-form button[type=submit]").click()
    assert page.url.endswith(reverse("customers:institution-create"))
    assert page.locator("#field-credit_code .error").first.inner_text().strip() == expected
    assert page.locator("#field-credit_code.has-error").count() == 1
    # what the user typed is kept, so they can correct it
    assert page.input_value("#id_name") == "北京市朝阳区测试医院"
    assert not Institution.objects.filter(name="北京市朝阳区测试医院").exists()

    page.fill("#id_credit_code", GOOD)
    page.select_option("#id_province", "110000")
    page.wait_for_selector("#id_city option[value='110100']", state="attached")
    page.select_option("#id_city", "110100")
    page.wait_for_selector("#id_district option[value='110105']", state="attached")
    page.select_option("#id_district", "110105")
    with page.expect_navigation():
        page.locator("#institution-form button[type=submit]").click()
    created = Institution.objects.get(name="北京市朝阳区测试医院")
    assert created.credit_code == GOOD
    assert created.region == beijing
    assert page.url.endswith(reverse("customers:institution", args=[created.pk]))
