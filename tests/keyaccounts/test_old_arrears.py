"""A debt does not age out of the evaluation window while it stays unpaid (found by QA in session 56): a customer
owing ¥200,000 for three years scored the default credit 60 ("no payment history"), or 100 ("paid on time 100 %,
no overdue") beside a paid order of the window, while its purchases tab said *Poor*, ¥200,000 over 90 days
overdue; and a customer who had stopped buying while owing money left the evaluation altogether.

Hand computation (credit = 70 % × share paid on time × 100 + 30 % × (100 − overdue / window amount × 100, floored
at 0)):
  老账医院   SO-L0 2023-03-01 100,000 due 2023-04-01 unpaid; SO-L1 2026-02-01 100,000 due 03-01 paid 02-20.
            Window 2025-07 … 2026-06 (as of 2026-06-30) or the twelve months up to today: 100,000 on time,
            100,000 overdue → share 0.5000 → 35.00 + 0.3 × max(0, 100 − 100) = 35.00 (it was 100.00).
  停购医院   SO-S0 2023-05-01 200,000 due 2023-06-01 unpaid, nothing since: 0 on time, 200,000 overdue, no amount
            in the window → 0.00, and it is evaluated (it was left out)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.keyaccounts import evaluation, scoring
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.sales import services as sales

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, _hospital, line

pytestmark = pytest.mark.django_db


def debtors(admin_user, shanghai, import_orders, paid_on: dt.date) -> dict:
    """The two debtors, 老账医院's order of the window placed on `paid_on` (due a month later, paid in 19 days)."""
    old = _hospital(admin_user, shanghai, "上海老账医院", "12310000425006311", beds=300)
    lapsed = _hospital(admin_user, shanghai, "上海停购医院", "12310000425006418", beds=200)
    import_orders([
        line("SO-L0", 1, "2023-03-01", old, "P1", 100, "1000", payment_due="2023-04-01"),
        line("SO-L1", 1, paid_on, old, "P1", 100, "1000", payment_due=paid_on + dt.timedelta(days=28),
             paid_date=paid_on + dt.timedelta(days=19)),
        line("SO-S0", 1, "2023-05-01", lapsed, "P1", 200, "1000", payment_due="2023-06-01"),
    ])  # fmt: skip
    return {"old": old, "lapsed": lapsed}


def credit(facts: scoring.Facts) -> scoring.Part:
    return scoring.credit(facts, dict(scoring.DEFAULT_PARAMS))


@pytest.mark.parametrize("past", [True, False], ids=["a past day", "today"])
def test_old_arrears_count_against_the_credit_score_and_keep_a_lapsed_debtor_evaluated(
    admin_user, shanghai, import_orders, past
):
    """As of 2026-06-30 (the lines of the window read as they stood that day), and as of today (the rollups)."""
    if past:
        day, paid_on = H1_2026, dt.date(2026, 2, 1)
    else:
        day = timezone.localdate()
        paid_on = (day.replace(day=1) - dt.timedelta(days=40)).replace(day=1)  # two months back: paid by now
    people = debtors(admin_user, shanghai, import_orders, paid_on)
    facts = evaluation.gather(day, dict(scoring.DEFAULT_PARAMS))
    old, lapsed = facts[people["old"].pk], facts[people["lapsed"].pk]
    assert (old.on_time_fen, old.overdue_fen) == (10_000_000, 10_000_000)
    part = credit(old)
    assert (part.value, part.detail["on_time_share"], part.detail["overdue"]) == (35, "0.5000", "100000.00")
    assert (lapsed.amount_fen, lapsed.overdue_fen) == (0, 20_000_000)
    assert credit(lapsed).value == 0 and not credit(lapsed).default


def test_the_run_scores_the_lapsed_debtor_and_the_panel_agrees_with_the_score(admin_user, shanghai, import_orders):
    from decimal import Decimal

    from pharmacrm.keyaccounts.models import Score

    people = debtors(admin_user, shanghai, import_orders, dt.date(2026, 2, 1))
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    lapsed = Score.objects.get(institution=people["lapsed"], kind=ModelKind.EVALUATION, period="2026H1")
    assert lapsed.klass == "D"  # a class, and with it an improvement action: it was not evaluated at all
    panel = sales.credit(people["old"].pk, today=dt.date(2026, 6, 30))
    # the panel's share paid on time counts the old debt as the score does (it said 100.0 % beside it)
    assert (panel.on_time_percent, panel.overdue, panel.status) == (Decimal("50.0"), Decimal("100000.00"), "poor")
