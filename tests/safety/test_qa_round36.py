"""Safety defects found by the thirty-sixth review round: a country typed in Chinese characters and a number that
only Python reads, both kept until the export refused them; the regulator's rejection of a closed case's report
leaving its other clocks stopped on an open case; a life-threatening unexpected reaction in a clinical study (a
SUSAR), due in 7 days, not 15."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pharmacrm.safety.models import SafetyCase
from tests.api import conftest as api_fixtures

from .conftest import COMPLETE
from .test_case_pages import form_data

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role


# --- 1. the country in Chinese characters, a number Python reads but E2B does not ---------------------------------


@pytest.mark.parametrize("country", ["美国", "中国"])
def test_a_country_typed_in_chinese_characters_is_refused_at_the_field(api_for, country):
    """美国 and 中国 are two letters to Python (str.isalpha), so a case opened with the country typed as a Chinese
    officer names it was saved; C.1.1 then read "美国-PHARMACRM-AE-…" and the export, days later, refused E.i.9.
    The field now asks for the ISO code at once, in the officer's language."""
    response = api_for("pv", lang="zh-hans").post("/api/v1/safety/cases/", {**COMPLETE, "country": country},
                                                  format="json")  # fmt: skip
    assert response.status_code == 400
    assert response.json()["country"] == ["请输入两位字母的国家代码（ISO 3166），例如 CN。"]
    assert not SafetyCase.objects.exists()


def test_the_edit_page_names_the_country_typed_in_chinese(client_for, make_case):
    case = make_case()
    response = client_for("pv").post(reverse("safety:case-edit", args=[case.pk]),
                                     form_data(case, reporter_country="中国"))  # fmt: skip
    assert response.status_code == 400
    assert 'id="field-reporter_country"' in response.content.decode()
    assert "请输入两位字母的国家代码" in response.content.decode()
    case.refresh_from_db()
    assert case.reporter_country == "CN"  # as it was


@pytest.mark.parametrize("age", ["1e2", "٤٥", "4_5"])
def test_a_number_the_export_cannot_take_is_refused_when_typed(api_for, age):
    """float() reads 1e2, 4_5 and Arabic-Indic ٤٥; they were stored as typed and the ICSR refused them at export."""
    response = api_for("pv").post("/api/v1/safety/cases/", {**COMPLETE, "patient_age": age}, format="json")
    assert response.status_code == 400
    assert response.json()["patient_age"] == ["Enter a number."]


@pytest.mark.parametrize(("typed", "stored"), [("４５", "45"), ("60.5", "60.5"), ("ＣＮ", "CN"), ("us", "US")])
def test_full_width_digits_and_country_letters_are_still_taken(api_for, typed, stored):
    field = "patient_weight_kg" if typed[0] in "６60" else "patient_age" if typed[0] in "４" else "reporter_country"
    response = api_for("pv").post("/api/v1/safety/cases/", {**COMPLETE, field: typed}, format="json")
    assert response.status_code == 201, response.content
    assert getattr(SafetyCase.objects.get(), field) == stored
