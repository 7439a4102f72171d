"""Review round 32 (sales): an immaterial overdue remainder and the credit status."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone, translation

from pharmacrm.keyaccounts import evaluation, scoring
from pharmacrm.keyaccounts.views_eval import explain
from pharmacrm.sales import services

from .conftest import line

# --- an immaterial overdue remainder ---------------------------------------------------------------------------------


def _paid_on_time_but(run_import, customer, order: str, amount: str, paid: str):
    """One line of `amount`, due 30 days ago, of which `paid` was paid a day before its due date."""
    today = timezone.localdate()
    ordered, due = (today - dt.timedelta(days=60)).isoformat(), (today - dt.timedelta(days=30)).isoformat()
    paid_on = (today - dt.timedelta(days=31)).isoformat()
    job = run_import([line(order, 1, ordered, customer, "P1", 1, amount, payment_due=due, paid_date=paid_on,
                           paid_amount=paid)])  # fmt: skip
    assert job.error_count == 0, job.errors


@pytest.fixture
def remainders(run_import, xiehe, huashan):
    """Hand-computed: 协和 paid 1,999.50 of 2,000.00 on time (0.50 left open: under ¥1.00 and under 0.1 % of its
    2,000.00 purchases, i.e. 2.00); 华山 paid 499.40 of 500.00 on time (0.60 left: under ¥1.00 but over 0.1 % of its
    500.00 purchases, i.e. 0.50 — material)."""
    _paid_on_time_but(run_import, xiehe, "SO-R1", "2000.00", "1999.50")
    _paid_on_time_but(run_import, huashan, "SO-R2", "500.00", "499.40")
    return xiehe, huashan


def test_a_rounding_difference_left_open_does_not_make_the_credit_status_poor(remainders, client_for, api_for):
    """1,999.50 of 2,000.00 paid on time, the 0.50 an ERP's rounding difference: the customer was flagged "Poor"
    (the 0.50 was all of its arrears, so 100 % of them overdue). An overdue total under ¥1.00 and under 0.1 % of the
    customer's purchases now counts as settled for the status; the arrears and overdue figures still show 0.50."""
    xiehe, huashan = remainders
    c = services.credit(xiehe.pk)
    assert (c.status, c.overdue, c.outstanding, c.overdue_ignored) == ("good", Decimal("0.50"), Decimal("0.50"), True)
    assert c.ageing[1]["amount"] == Decimal("0.50")  # 30 days past due: the exact amount stays in the ageing
    assert c.on_time_share == Decimal("0.9998")  # 1,999.50 / 2,000.00, as before

    other = services.credit(huashan.pk)  # 0.60 is more than 0.1 % of 500.00: arrears, as before
    assert (other.status, other.overdue, other.overdue_ignored) == ("poor", Decimal("0.60"), False)

    with translation.override("en"):
        page = client_for("admin").get(f"/sales/customers/{xiehe.pk}/purchases/").content.decode()
    assert 'data-status="good"' in page and 'data-credit="overdue">¥0.50<' in page
    assert ("The overdue ¥0.50 is immaterial (under ¥1.00 and under 0.1 % of the purchases in the period, such as a "
            "rounding difference): the status counts it as settled.") in page  # fmt: skip
    page = client_for("admin").get(f"/sales/customers/{huashan.pk}/purchases/").content.decode()
    assert 'data-status="poor"' in page and 'id="credit-immaterial"' not in page

    data = api_for("admin").get(f"/api/v1/sales/customers/{xiehe.pk}/purchases/").json()["credit"]
    assert (data["status"], data["overdue"], data["outstanding"], data["overdue_ignored"]) == (
        "good", "0.50", "0.50", True)  # fmt: skip


def test_the_threshold_is_a_setting(remainders, settings):
    xiehe, _huashan = remainders
    settings.PHARMACRM_CREDIT_MATERIALITY_FEN = 50  # ¥0.50: 0.50 is not under it
    assert (services.credit(xiehe.pk).status, services.credit(xiehe.pk).overdue_ignored) == ("poor", False)
    settings.PHARMACRM_CREDIT_MATERIALITY_FEN = 0  # off
    assert services.credit(xiehe.pk).status == "poor"


def test_the_evaluations_credit_measure_follows_the_same_rule(remainders):
    """The evaluation's credit measure took the 0.50 as arrears (99.98); like the status, it counts it as settled:
    70 % × 100 % on time + 30 % × (100 − 0 % overdue) = 100.00. 华山's 0.60 stays arrears:
    70 × 499.40 / 500.00 + 30 × (100 − 0.60 / 500.00 × 100) = 69.916 + 29.964 = 99.88."""
    xiehe, huashan = remainders
    facts = evaluation.gather(timezone.localdate(), {"window_months": 12}, [xiehe.pk, huashan.pk])
    assert (facts[xiehe.pk].overdue_fen, facts[xiehe.pk].amount_fen) == (50, 200000)
    part = scoring.credit(facts[xiehe.pk], scoring.DEFAULT_PARAMS)
    assert part.value.quantize(Decimal("0.01")) == Decimal("100.00")
    assert part.detail == {"on_time_share": "1.0000", "overdue": "0.50", "overdue_ignored": True}
    with translation.override("en"):
        text = explain({"name": part.name, "value": str(part.value), "detail": part.detail})
    assert text == "paid on time 100 %, ¥0.50 overdue (immaterial, counted as settled)"
    other = scoring.credit(facts[huashan.pk], scoring.DEFAULT_PARAMS)
    assert other.value.quantize(Decimal("0.01")) == Decimal("99.88") and "overdue_ignored" not in other.detail
