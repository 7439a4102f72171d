"""Session 35 (evalfix): four defects of the customer evaluation and its APIs.

1. The nightly refresh of overdue amounts re-scores the interim standings of the customers it changes.
2. `pharmacrm evaluate --as-of <past date>` reads the payment state of that date, not today's.
3. `customer_name` names a department with its hospital (order-line, evaluation and incentive APIs).
4. The evaluations API shows by default the period the results page shows.

Hand computation (default evaluation model: amount 35, frequency 20, satisfaction 20, credit 25; no surveys, so
satisfaction is the default 60 → 12.00) — see each test."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind, Trigger
from pharmacrm.keyaccounts.models import EvaluationRun, Score

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H2_2025, line

pytestmark = pytest.mark.django_db
D = Decimal
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture
def today(monkeypatch):
    """today(date): the product's calendar ("today", timezone.localdate) moved to that date for the rest of the
    test; the clock (timezone.now) runs on."""
    real = timezone.localdate

    def move(day: dt.date) -> None:
        monkeypatch.setattr(
            timezone, "localdate", lambda value=None, tz=None: day if value is None else real(value, tz)
        )

    return move


def credit_of(score: Score) -> dict:
    return next(c for c in score.components if c["name"] == "credit")


# --- 1. the nightly overdue refresh re-scores the interim standings ------------------------------------------------


def test_the_overdue_refresh_rescores_the_interim_standings_of_a_customer_whose_line_fell_overdue(
    xiehe, users, import_orders, today, huey_immediate, django_capture_on_commit_callbacks
):
    """An unpaid line due tomorrow: the interim standings count it as not yet due. Two days later the nightly refresh
    makes it overdue in the rollups — and the standings kept counting it as not yet due until an import named the
    customer again. The refresh now re-scores that customer, through the import's incremental update.

    As of 2026-05-10 (2026H1 under way; 2025H2 evaluated in full), window 2025-06 … 2026-05:
      SO-T0 2025-10-01 100,000 paid on time; SO-T1 2026-03-01 100,000 paid on time; SO-T2 2026-04-11 1,000,000 due
      2026-05-11, unpaid. Amount 1,200,000 → 100 × 0.35 = 35.00; 3 orders → 12.5 × 0.2 = 2.50; satisfaction 12.00.
      Before the due date: credit 100 (all paid on time, nothing overdue) → 25.00 → 74.50, class B.
      After it: due 200,000 on time + 1,000,000 overdue → on time 16.67 % → 0.7 × 16.67 = 11.67; overdue 83.33 %
      of the amount → 0.3 × 16.67 = 5.00 → credit 16.67 → 4.17 → 53.67, class C."""
    today(dt.date(2026, 5, 10))
    import_orders([
        line("SO-T0", 1, "2025-10-01", xiehe, "P1", 100, "1000", payment_due="2025-11-01", paid_date="2025-10-20"),
        line("SO-T1", 1, "2026-03-01", xiehe, "P1", 100, "1000", payment_due="2026-04-01", paid_date="2026-03-20"),
        line("SO-T2", 1, "2026-04-11", xiehe, "P1", 1000, "1000", payment_due="2026-05-11"),
    ])  # fmt: skip
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)  # a system in use: 2025H2 evaluated in full
    evaluation.run_all(trigger=Trigger.IMPORT, incremental=True)  # the update after the import

    before = Score.objects.get(institution=xiehe, kind=ModelKind.EVALUATION, period="2026H1")
    assert (before.score, before.klass, credit_of(before)["value"]) == (D("74.50"), "B", "100.00")

    today(dt.date(2026, 5, 12))  # SO-T2 fell due yesterday, unpaid
    from pharmacrm.sales import tasks as sales_tasks

    with django_capture_on_commit_callbacks(execute=True):
        refreshed = sales_tasks.refresh_overdue.call_local()

    after = Score.objects.get(institution=xiehe, kind=ModelKind.EVALUATION, period="2026H1")
    credit = credit_of(after)
    assert (credit["value"], credit["detail"]["on_time_share"], credit["detail"]["overdue"]) == (
        "16.67", "0.1667", "1000000.00"
    )  # fmt: skip
    assert (after.score, after.klass, after.as_of) == (D("53.67"), "C", dt.date(2026, 5, 12))
    assert refreshed == 1  # the one rollup whose overdue amount changed
    update = after.run
    assert (update.trigger, update.incremental, update.customers) == (Trigger.IMPORT, True, 1)
    # interim standings: 2025H2 stays in force, no tier change, no improvement action
    assert (update.tier_changes, update.actions) == (0, 0)
    assert evaluation.in_force(ModelKind.EVALUATION) == "2025H2"
    # the next night changes no overdue amount: nobody is re-scored
    today(dt.date(2026, 5, 13))
    runs = EvaluationRun.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        assert sales_tasks.refresh_overdue.call_local() == 0
    assert EvaluationRun.objects.count() == runs
