"""The scoring models' weights, thresholds, reference values and discounts, and the candidate and influence figures,
as people type them: ０.３ or ３５ from an input method in full-width mode, 35% of a weight (the shares add up to
100 %), 1,000,000 or ¥1,000,000 of the amount that scores 100, １２．５％ of a discount. Number inputs sent nothing
for 1,000 (the page said the field was required) and the API refused "1,000" and "１２"; what is no number is
refused naming the field — on the page and in the API, on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pharmacrm.keyaccounts.models import MarketInfluence, ScoringModel

from .eval_fixtures import *  # noqa: F403  (fixtures)

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
MODEL = "/keyaccounts/models/evaluation/"


def _typed_post(**changes) -> dict:
    data = {
        "name": "客户评估 2027", "version": 1, "weight_amount": "３５％", "weight_frequency": "20%",
        "weight_satisfaction": "０.２", "weight_credit": " 25 ", "param_window_months": "１２",
        "param_amount_reference": "¥1,000,000", "param_orders_reference": "1 000", "param_default_satisfaction": "６０",
        "param_default_credit": "60.5", "threshold_A": "８５", "threshold_B": "60.00", "threshold_C": "４０．５",
    }  # fmt: skip
    for k, tier, discount in (("A", "vip", "１２．５％"), ("B", "regular", "2 %"), ("C", "regular", "0"),
                              ("D", "regular", "")):  # fmt: skip
        data |= {f"tier_{k}": tier, f"discount_{k}": discount, f"programme_{k}": ""}
    return data | changes


def test_a_model_typed_with_separators_percentages_and_full_width_digits_is_saved_as_the_numbers_meant(
        client_for, db, users):  # fmt: skip
    c = client_for("analyst")
    c.get(MODEL)  # version 1
    form = c.get(MODEL).content.decode()
    assert 'name="weight_amount"' in form and 'type="number"' not in form  # a text input takes 1,000 and 35%
    response = c.post(MODEL, _typed_post())
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    model = ScoringModel.objects.get(kind="evaluation", active=True)
    assert model.weights == {"amount": 35, "frequency": 20, "satisfaction": 0.2, "credit": 25}
    assert model.params["window_months"] == 12 and model.params["amount_reference"] == 1_000_000
    assert model.params["orders_reference"] == 1000 and model.params["default_credit"] == 60.5
    assert model.thresholds == {"A": 85, "B": 60, "C": 40.5}
    assert (model.benefits["A"]["discount"], model.benefits["B"]["discount"]) == (12.5, 2)


def test_the_growth_reference_of_the_candidate_model_takes_a_percentage(client_for, db, users):
    c = client_for("manager")
    url = "/keyaccounts/models/candidate/"
    c.get(url)
    form = c.get(url).context["form"]
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data |= {"param_growth_full_percent": "１５０％", "param_amount_reference": "2,000,000元", "weight_growth": "10%",
             "threshold_candidate": "７０"}  # fmt: skip
    response = c.post(url, {k: v for k, v in data.items() if v is not False})
    assert response.status_code == 302, response.context["form"].errors
    model = ScoringModel.objects.get(kind="candidate", active=True)
    assert (model.params["growth_full_percent"], model.params["amount_reference"]) == (150, 2_000_000)
    assert (model.weights["growth"], model.thresholds["candidate"]) == (10, 70)


@pytest.mark.parametrize(("field", "typed", "message"), [
    ("weight_amount", "1.2万", "Purchase amount: enter a percentage, such as 30, 12.5 or 30%."),
    ("weight_credit", "1e2", "Credit status: enter a percentage, such as 30, 12.5 or 30%."),
    ("threshold_A", "85%", "Lowest score of class A: enter a number, such as 1234.5 or 1,234.50."),
    ("threshold_B", "١٢", "Lowest score of class B: enter a number, such as 1234.5 or 1,234.50."),
    ("param_window_months", "12.5", "Window (months): enter a whole number, such as 12 or 1,200."),
    ("param_amount_reference", "一百万", "Amount reference (yuan): enter an amount in yuan, such as 1234.50 or "
                                        "¥1,234.50."),
    ("discount_A", "5%%", "Discount level (%): enter a percentage, such as 30, 12.5 or 30%."),
])  # fmt: skip
def test_what_is_no_number_is_refused_naming_the_field(client_for, db, users, field, typed, message):
    c = client_for("manager")
    c.get(MODEL)
    response = c.post(MODEL, _typed_post(**{field: typed}), **EN)
    assert response.status_code == 400
    assert response.context["form"].errors[field] == [message]
    assert message in response.content.decode().replace("&#x27;", "'")
    assert ScoringModel.objects.filter(kind="evaluation").count() == 1


def test_the_api_reads_weights_thresholds_references_and_discounts_as_typed(api_for, db, users):
    api = api_for("manager")
    url = "/api/v1/scoring-models/evaluation/"
    version = api.get(url).json()["version"]
    r = api.put(url, {"weights": {"amount": "３５％", "frequency": "20 %", "satisfaction": 20, "credit": "２５"},
                      "thresholds": {"A": "８５", "B": "60.5", "C": "4,0"},
                      "params": {"amount_reference": "¥1,000,000", "orders_reference": "1 000", "window_months": "１２"},
                      "benefits": {"A": {"discount": "１２．５％"}}, "version": version}, format="json")  # fmt: skip
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["weights"] == {"amount": 35, "frequency": 20, "satisfaction": 20, "credit": 25}
    assert body["thresholds"] == {"A": 85, "B": 60.5, "C": 40}
    assert (body["params"]["amount_reference"], body["params"]["orders_reference"]) == (1_000_000, 1000)
    assert body["params"]["window_months"] == 12 and body["benefits"]["A"]["discount"] == 12.5
    model = ScoringModel.objects.get(kind="evaluation", active=True)
    assert model.weights["amount"] == 35 and model.benefits["A"]["discount"] == 12.5


def test_the_api_refuses_what_is_no_number_under_its_field(api_for, db, users):
    api = api_for("manager")
    url = "/api/v1/scoring-models/evaluation/"
    version = api.get(url).json()["version"]
    r = api.put(url, {"weights": {"amount": "35%%", "credit": "1e2"}, "thresholds": {"A": "85%"},
                      "params": {"amount_reference": "1.2万", "growth_full_percent": "x"},
                      "benefits": {"A": {"discount": "五"}}, "version": version}, format="json")  # fmt: skip
    assert r.status_code == 400, r.content
    assert r.json() == {
        "weights": {"amount": ["Enter a percentage, such as 30, 12.5 or 30%."],
                    "credit": ["Enter a percentage, such as 30, 12.5 or 30%."]},
        "thresholds": {"A": ["Enter a number, such as 1234.5 or 1,234.50."]},
        "params": ["Amount reference (yuan): Enter an amount in yuan, such as 1234.50 or ¥1,234.50.",
                   "Growth for 100 (%): Enter a percentage, such as 30, 12.5 or 30%."],
        "benefits": {"A": {"discount": ["Enter a percentage, such as 30, 12.5 or 30%."]}},
    }  # fmt: skip
    assert ScoringModel.objects.filter(kind="evaluation").count() == 1


def test_the_candidate_filter_and_market_influence_take_typed_numbers(client_for, purchases, users):
    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.choices import ModelKind
    from pharmacrm.keyaccounts.models import Score

    from .eval_fixtures import H1_2026

    evaluation.run(ModelKind.CANDIDATE, as_of=H1_2026)
    c = client_for("analyst")
    page = c.get("/keyaccounts/candidates/", {"min_score": "５０．５"}, **EN)
    assert page.status_code == 200 and page.context["form"].cleaned()["min_score"] == Decimal("50.5")
    page = c.get("/keyaccounts/candidates/", {"min_score": "五十"}, **EN)
    assert "Minimum score must be a score from 0 to 100." in page.content.decode()
    score = Score.objects.get(institution=purchases["xiehe"], kind="candidate")
    url = f"/keyaccounts/evaluations/{score.pk}/influence/"
    response = c.post(url, {"kol_count": "１２", "kol_names": "", "assessment": "８０", "notes": ""})
    assert response.status_code == 302, response.context["influence_form"].errors
    influence = MarketInfluence.objects.get(institution=purchases["xiehe"])
    assert (influence.kol_count, influence.assessment) == (12, 80)
    response = c.post(url, {"kol_count": "1.5", "assessment": "80%", "version": 1}, **EN)
    assert response.status_code == 400
    assert response.context["influence_form"].errors == {
        "kol_count": ["Give the number of key opinion leaders, from 0 to 500."],
        "assessment": ["Marketing's assessment (0–100): enter a whole number, such as 12 or 1,200."]}
