"""The scoring arithmetic (keyaccounts/scoring.py) on hand-computed figures: every component's formula,
the weights' normalisation, contributions that add up to the score, and the class boundaries.

Amounts in Facts are in fen; the default reference values are those of scoring.DEFAULT_PARAMS
(amount 1,000,000 yuan, 24 orders, cooperation 60 months, 1500 beds, 5 specialties, 5 KOLs, growth 100 %)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import translation

from pharmacrm.keyaccounts import scoring
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.scoring import Facts

P = dict(scoring.DEFAULT_PARAMS)
D = Decimal


def value(part) -> Decimal:
    return scoring.q2(part.value)


# --- amount ------------------------------------------------------------------------------------------


def test_amount_is_the_share_of_the_reference():
    # 474,680.46 yuan / 1,000,000 × 100 = 47.468046 → 47.47
    part = scoring.amount(Facts(amount_fen=47_468_046), P)
    assert value(part) == D("47.47")
    assert part.detail == {"amount": "474680.46", "reference": 1_000_000, "months": 12}


def test_amount_above_the_reference_scores_100():
    # 2,000,000 / 1,000,000 × 100 = 200 → capped at 100
    assert value(scoring.amount(Facts(amount_fen=200_000_000), P)) == D("100.00")


# --- frequency ---------------------------------------------------------------------------------------


def test_frequency_is_the_share_of_the_orders_reference():
    # 18 / 24 × 100 = 75
    assert value(scoring.frequency(Facts(orders=18), P)) == D("75.00")
    # 30 / 24 × 100 = 125 → 100
    assert value(scoring.frequency(Facts(orders=30), P)) == D("100.00")


# --- satisfaction ------------------------------------------------------------------------------------


def test_satisfaction_from_csat_only():
    # 5 surveys, scores adding up to 21: average 4.2 → (4.2 − 1) / 4 × 100 = 80
    part = scoring.satisfaction(Facts(csat_sum=21, csat_count=5), P)
    assert value(part) == D("80.00") and not part.default
    assert part.detail["csat"] == "4.20"


def test_satisfaction_from_nps_only():
    # 10 answers: 6 promoters, 2 detractors → NPS (6 − 2) / 10 × 100 = 40 → (40 + 100) / 2 = 70
    part = scoring.satisfaction(Facts(nps_promoters=6, nps_detractors=2, nps_count=10), P)
    assert value(part) == D("70.00")
    assert part.detail["nps"] == "40.00"


def test_satisfaction_with_both_is_their_mean():
    # CSAT part 80 (above), NPS part 70 (above) → (80 + 70) / 2 = 75
    facts = Facts(csat_sum=21, csat_count=5, nps_promoters=6, nps_detractors=2, nps_count=10)
    assert value(scoring.satisfaction(facts, P)) == D("75.00")


def test_satisfaction_without_answers_is_the_models_default():
    part = scoring.satisfaction(Facts(), P)
    assert value(part) == D("60.00") and part.default
    # the default is the model's: a model saying 55 gives 55
    assert value(scoring.satisfaction(Facts(), {**P, "default_satisfaction": 55})) == D("55.00")


# --- credit ------------------------------------------------------------------------------------------


def test_credit_weighs_timeliness_and_overdue():
    # due = 46 + 30 + 24 = 100 → on time 46 % → 0.7 × 46 = 32.2
    # overdue 24 of a 100 window amount = 24 % → 0.3 × (100 − 24) = 22.8 → 32.2 + 22.8 = 55
    part = scoring.credit(Facts(amount_fen=100, on_time_fen=46, late_fen=30, overdue_fen=24), P)
    assert value(part) == D("55.00")
    assert part.detail == {"on_time_share": "0.4600", "overdue": "0.24"}


def test_credit_without_payment_history_is_the_models_default():
    part = scoring.credit(Facts(amount_fen=500_00), P)
    assert value(part) == D("60.00") and part.default


def test_credit_with_more_overdue_than_bought_floors_at_zero():
    # nothing on time → 0; overdue 150 of 100 bought = 150 % → 100 − 150 floored at 0 → 0.3 × 0 = 0
    assert value(scoring.credit(Facts(amount_fen=100, overdue_fen=150), P)) == D("0.00")
    # overdue with nothing bought in the window counts as 100 % overdue: 0.7 × 50 + 0.3 × 0 = 35
    assert value(scoring.credit(Facts(amount_fen=0, on_time_fen=50, overdue_fen=50), P)) == D("35.00")


# --- cooperation -------------------------------------------------------------------------------------


def test_cooperation_is_the_share_of_the_reference_months():
    # 30 / 60 × 100 = 50; 90 / 60 → capped at 100; never ordered → 0
    assert value(scoring.cooperation(Facts(months_cooperating=30), P)) == D("50.00")
    assert value(scoring.cooperation(Facts(months_cooperating=90), P)) == D("100.00")
    assert value(scoring.cooperation(Facts(months_cooperating=None), P)) == D("0.00")


# --- influence ---------------------------------------------------------------------------------------


def test_influence_is_marketings_assessment_when_entered():
    part = scoring.influence(Facts(kind="hospital", grade="3A", beds=2000, assessment=85), P)
    assert value(part) == D("85.00") and part.detail == {"assessment": 85}


def test_influence_without_assessment_comes_from_the_profile():
    # grade 3A = 100 points → 0.5 × 100 = 50; beds 750 / 1500 = 50 → 0.2 × 50 = 10;
    # specialties 4 / 5 = 80 → 0.15 × 80 = 12; KOLs 2 / 5 = 40 → 0.15 × 40 = 6 → 78
    facts = Facts(kind="hospital", grade="3A", beds=750, specialties=4, kols=2)
    assert value(scoring.influence(facts, P)) == D("78.00")


def test_influence_of_a_non_hospital_uses_its_type_points():
    # pharmacy = 35 points → 0.5 × 35 = 17.5; no beds, specialties or KOLs → 17.5
    assert value(scoring.influence(Facts(kind="pharmacy"), P)) == D("17.50")


# --- growth ------------------------------------------------------------------------------------------


def test_growth_positive_and_negative():
    # 134 vs 100 → +34 % → 50 + 34 × 50 / 100 = 67
    part = scoring.growth(Facts(amount_fen=13400, previous_amount_fen=10000), P)
    assert value(part) == D("67.00") and part.detail["growth_percent"] == "34.00"
    # 60 vs 100 → −40 % → 50 − 20 = 30
    assert value(scoring.growth(Facts(amount_fen=6000, previous_amount_fen=10000), P)) == D("30.00")
    # 300 vs 100 → +200 % → 150, clamped to 100; nothing now → −100 % → 0
    assert value(scoring.growth(Facts(amount_fen=30000, previous_amount_fen=10000), P)) == D("100.00")
    assert value(scoring.growth(Facts(amount_fen=0, previous_amount_fen=10000), P)) == D("0.00")


def test_growth_without_a_previous_window():
    # buying now with nothing before → 100; buying in neither → 50
    assert value(scoring.growth(Facts(amount_fen=100), P)) == D("100.00")
    assert value(scoring.growth(Facts(), P)) == D("50.00")


# --- weights, total, classes --------------------------------------------------------------------------


def test_weights_are_normalised_to_shares_adding_up_to_one():
    assert scoring.normalised_weights({"amount": 35, "frequency": 20, "satisfaction": 20, "credit": 25}) == {
        "amount": D("0.3500"),
        "frequency": D("0.2000"),
        "satisfaction": D("0.2000"),
        "credit": D("0.2500"),
    }
    # thirds: 0.3333 + 0.3333 and the last takes the rest, 0.3334
    thirds = scoring.normalised_weights({"amount": 1, "frequency": 1, "credit": 1})
    assert list(thirds.values()) == [D("0.3333"), D("0.3333"), D("0.3334")]
    # a zero weight leaves the measure out; all zero → no measure
    assert scoring.normalised_weights({"amount": 0, "credit": 2}) == {"credit": D("1")}
    assert scoring.normalised_weights({"amount": 0}) == {}


def test_contributions_add_up_to_the_score():
    # amount: 474,680.46 / 1,000,000 → 47.47 × 0.35 = 16.6145 → 16.61
    # frequency: 24 / 24 → 100 × 0.20 = 20.00
    # satisfaction: CSAT 4.2 → 80 × 0.20 = 16.00
    # credit: on time 46 of 100 yuan due → 0.7 × 46 = 32.2; overdue 24 yuan of 474,680.46 yuan ≈ 0.00506 % (not
    #   immaterial: ¥1.00 or more) → 0.3 × 99.99494 = 29.99848 → 62.19848 → 62.20 × 0.25 = 15.55
    # score = 16.61 + 20.00 + 16.00 + 15.55 = 68.16
    facts = Facts(amount_fen=47_468_046, orders=24, csat_sum=21, csat_count=5, on_time_fen=4600, late_fen=3000,
                  overdue_fen=2400)  # fmt: skip
    total, components = scoring.score(facts, scoring.DEFAULT_EVALUATION["weights"], {})
    by_name = {c["name"]: (c["value"], c["weight"], c["contribution"]) for c in components}
    assert by_name == {
        "amount": ("47.47", "0.3500", "16.61"), "frequency": ("100.00", "0.2000", "20.00"),
        "satisfaction": ("80.00", "0.2000", "16.00"), "credit": ("62.20", "0.2500", "15.55"),
    }  # fmt: skip
    assert total == D("68.16")
    assert sum(D(c["contribution"]) for c in components) == total
    # thirds as weights still add up exactly
    total, components = scoring.score(Facts(amount_fen=12_345_678, orders=7), {"amount": 1, "frequency": 1,
                                                                              "growth": 1}, {})  # fmt: skip
    assert sum(D(c["contribution"]) for c in components) == total


@pytest.mark.parametrize(
    "score, expected",
    [("100", "A"), ("80", "A"), ("79.99", "B"), ("60", "B"), ("59.99", "C"), ("40", "C"), ("39.99", "D"), ("0", "D")],
)
def test_class_thresholds_at_the_exact_boundaries(score, expected):
    assert scoring.klass(D(score), {"A": 80, "B": 60, "C": 40}) == expected


def test_model_validation_names_the_field_in_error():
    with translation.override("en"):
        ok = scoring.validate_model(ModelKind.EVALUATION, {"amount": 1}, {}, {"A": 80, "B": 60, "C": 40})
        assert ok == {}
        errors = scoring.validate_model(
            ModelKind.EVALUATION, {"growth": 5}, {"amount_reference": 0}, {"A": 50, "B": 60, "C": 40}
        )
    assert set(errors) == {"weights", "params", "thresholds"}
    assert "growth" in errors["weights"][0]
    assert errors["params"] == ["Amount reference (yuan) must be a number above zero."]  # its label, not its key
    errors = scoring.validate_model(ModelKind.CANDIDATE, {"amount": 0}, {}, {})
    assert set(errors) == {"weights", "thresholds"}
