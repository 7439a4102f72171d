"""Defects of the customer evaluation found in review (session 34): figures of a score's detail rounded half to
even where the purchases pages round half up (四舍五入), and the satisfaction explanation joined with an English
semicolon on a Chinese page."""

from __future__ import annotations

import pytest

from pharmacrm.keyaccounts import evaluation, scoring
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import Score
from pharmacrm.sales import services as sales

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, line

pytestmark = pytest.mark.django_db


def test_the_share_paid_on_time_reads_as_on_the_credit_panel(import_orders, xiehe, users):
    """389.70 of 400.00 paid on time is 0.97425 exactly: the credit panel (half up) said 0.9743, the evaluation's
    credit measure (Decimal's default, half to even) 0.9742 for the same customer and window."""
    import_orders([
        line("SO-R1", 1, "2026-03-01", xiehe, "P1", 1, "389.70", payment_due="2026-04-01", paid_date="2026-03-25"),
        line("SO-R2", 1, "2026-03-02", xiehe, "P1", 1, "10.30", payment_due="2026-04-02", paid_date="2026-04-12"),
    ])  # fmt: skip

    panel = sales.credit(xiehe.pk, today=H1_2026)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    score = Score.objects.get(institution=xiehe, kind=ModelKind.EVALUATION, period="2026H1")
    credit = next(c for c in score.components if c["name"] == "credit")

    assert str(panel.on_time_share) == "0.9743"
    assert credit["detail"]["on_time_share"] == "0.9743"  # was 0.9742


def test_the_satisfaction_and_growth_figures_are_rounded_half_up():
    """CSAT 4.125 (33 points from 8 surveys) reads 4.13, not 4.12; NPS 3.125 reads 3.13; growth 12.345 % reads
    12.35 %: as every figure of the pages is rounded (四舍五入)."""
    params = scoring.DEFAULT_PARAMS
    facts = scoring.Facts(csat_sum=33, csat_count=8, nps_promoters=1, nps_count=32,
                          amount_fen=224_690, previous_amount_fen=200_000)  # fmt: skip

    assert scoring.satisfaction(facts, params).detail["csat"] == "4.13"
    assert scoring.satisfaction(facts, params).detail["nps"] == "3.13"
    assert scoring.growth(facts, params).detail["growth_percent"] == "12.35"


def test_the_satisfaction_explanation_is_punctuated_in_the_readers_language():
    """CSAT and NPS in one explanation were joined with an English "; " on the Chinese drill-down, candidate list
    and API: “CSAT 5（1 份问卷）; NPS 100（1 份答复）”."""
    from django.utils import translation

    from pharmacrm.keyaccounts.views_eval import explain

    component = {"name": "satisfaction", "value": "100.00",
                 "detail": {"surveys": 1, "nps_answers": 1, "csat": "5.00", "nps": "100.00"}}  # fmt: skip

    assert explain(component) == "CSAT 5（1 份问卷）；NPS 100（1 份答复）"
    with translation.override("en"):
        assert explain(component) == "CSAT 5 from 1 survey; NPS 100 from 1 answer"
    only_csat = {**component, "detail": {"surveys": 2, "nps_answers": 0, "csat": "4.50"}}
    assert explain(only_csat) == "CSAT 4.5（2 份问卷）"
