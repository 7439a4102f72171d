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
from .eval_fixtures import H1_2026, H2_2025, line

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


# --- 2. an evaluation as of a past day reads that day's payment state ---------------------------------------------


def test_an_evaluation_as_of_a_past_day_counts_the_payments_of_that_day(
    xiehe, huashan, changzheng, users, import_orders, today
):
    """`pharmacrm evaluate --as-of` read today's payment state from the rollups: a line paid late after the as-of day
    counted as paid late, where on that day it was unpaid and overdue; and the as-of month's lines ordered after that
    day counted as purchases. Today is 2026-05-20.

    协和's lines: L1 2026-01-10 100,000 due 02-10 paid 02-05; L2 2026-02-01 100,000 due 03-01 paid 04-15 (late);
    L3 2026-03-10 50,000 due 04-10 paid 04-05; L4 2026-03-25 200,000 due 04-25 paid 04-20.
    As of 2026-03-15 (window 2025-04 … 03-15): L1, L2, L3 (L4 not ordered yet). Amount 250,000 → 25 × 0.35 = 8.75;
      3 orders → 12.5 × 0.2 = 2.50; satisfaction 12.00; credit: 100,000 paid on time, L2 unpaid and overdue (due
      03-01), L3 not due yet → on time 50 % → 35; overdue 100,000 / 250,000 = 40 % → 0.3 × 60 = 18 → 53.00 × 0.25 =
      13.25 → 36.50, class D.
    As of today (window 2025-06 … 2026-05): amount 450,000 → 15.75; 4 orders → 16.67 × 0.2 = 3.33; credit: 350,000
      on time + 100,000 late (L2), nothing overdue → 0.7 × 77.78 + 30 = 84.44 × 0.25 = 21.11 → 52.19, class C.
    As of 2026-03-31 (a month's last day: its rollup holds no later line): L1–L4. Amount 450,000 → 15.75; 4 orders →
      3.33; credit: 100,000 on time, L2 still unpaid and overdue, L3 and L4 not due → on time 50 % → 35; overdue
      100,000 / 450,000 = 22.22 % → 0.3 × 77.78 = 23.33 → 58.33 × 0.25 = 14.58 → 45.66, class C.
    华山 bought only on 2026-03-05 (50,000, due 04-05, paid 04-01): as of 03-15 it is scored on it, nothing due yet.
    长征 bought only on 2026-03-28: as of 03-15 it had bought nothing."""
    from io import StringIO

    from django.core.management import call_command

    today(dt.date(2026, 5, 20))
    import_orders([
        line("SO-L1", 1, "2026-01-10", xiehe, "P1", 100, "1000", payment_due="2026-02-10", paid_date="2026-02-05"),
        line("SO-L2", 1, "2026-02-01", xiehe, "P1", 100, "1000", payment_due="2026-03-01", paid_date="2026-04-15"),
        line("SO-L3", 1, "2026-03-10", xiehe, "P1", 50, "1000", payment_due="2026-04-10", paid_date="2026-04-05"),
        line("SO-L4", 1, "2026-03-25", xiehe, "P1", 200, "1000", payment_due="2026-04-25", paid_date="2026-04-20"),
        line("SO-H1", 1, "2026-03-05", huashan, "P1", 50, "1000", payment_due="2026-04-05", paid_date="2026-04-01"),
        line("SO-C1", 1, "2026-03-28", changzheng, "P1", 50, "1000", payment_due="2026-04-28", paid_date="2026-04-20"),
    ])  # fmt: skip

    call_command("evaluate", "--as-of", "2026-03-15", stdout=StringIO())

    past = {s.institution_id: s for s in Score.objects.filter(kind=ModelKind.EVALUATION, period="2026H1")}
    xh = past[xiehe.pk]
    assert xh.as_of == dt.date(2026, 3, 15)
    assert parts(xh) == {
        "amount": ("25.00", "8.75"), "frequency": ("12.50", "2.50"), "satisfaction": ("60.00", "12.00"),
        "credit": ("53.00", "13.25"),
    }  # fmt: skip
    assert (credit_of(xh)["detail"]["on_time_share"], credit_of(xh)["detail"]["overdue"]) == ("0.5000", "100000.00")
    assert (xh.score, xh.klass) == (D("36.50"), "D")
    hs = past[huashan.pk]
    assert (amount_of(hs), credit_of(hs).get("default")) == ("50000.00", True)  # nothing had fallen due
    assert changzheng.pk not in past
    candidates = Score.objects.filter(kind=ModelKind.CANDIDATE, period="2026-03")
    assert sorted(candidates.values_list("institution_id", flat=True)) == sorted([xiehe.pk, huashan.pk])

    call_command("evaluate", "--as-of", "2026-03-31", stdout=StringIO())
    month_end = Score.objects.get(institution=xiehe, kind=ModelKind.EVALUATION, period="2026H1")
    assert parts(month_end) == {
        "amount": ("45.00", "15.75"), "frequency": ("16.67", "3.33"), "satisfaction": ("60.00", "12.00"),
        "credit": ("58.33", "14.58"),
    }  # fmt: skip
    assert (month_end.score, month_end.klass) == (D("45.66"), "C")

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as read:
        call_command("evaluate", stdout=StringIO())  # as of today: the rollups, and only them
    # ... and the open items (unpaid lines, through their partial index) for the credit gate's old debts, in one
    # query for every customer: not the order lines' history
    lines = [q["sql"] for q in read.captured_queries if "sales_orderline" in q["sql"]]
    assert len(lines) == 1 and '"outstanding_fen" > 0' in lines[0]

    now = Score.objects.get(institution=xiehe, kind=ModelKind.EVALUATION, period="2026H1")
    assert now.as_of == dt.date(2026, 5, 20)
    assert parts(now) == {
        "amount": ("45.00", "15.75"), "frequency": ("16.67", "3.33"), "satisfaction": ("60.00", "12.00"),
        "credit": ("84.44", "21.11"),
    }  # fmt: skip
    assert (credit_of(now)["detail"]["on_time_share"], credit_of(now)["detail"]["overdue"]) == ("0.7778", "0.00")
    assert (now.score, now.klass) == (D("52.19"), "C")


def parts(score: Score) -> dict[str, tuple[str, str]]:
    return {c["name"]: (c["value"], c["contribution"]) for c in score.components}


def amount_of(score: Score) -> str:
    return next(c for c in score.components if c["name"] == "amount")["detail"]["amount"]


# --- 3. the APIs name a department with its hospital -------------------------------------------------------------


def _departments_buying(admin_user, import_orders, hospitals: list, first: int = 1) -> list:
    """A 神经内科 under each hospital, each with an order line of its own (booked by its ERP id)."""
    from pharmacrm.customers import services as customers

    out = []
    for i, hospital in enumerate(hospitals, start=first):
        out.append(customers.create_institution(admin_user, {
            "name": "神经内科", "kind": "department", "parent": hospital, "external_id": f"DEPT-{i}",
        }))  # fmt: skip
    import_orders([line(f"SO-D{i}", 1, "2026-04-10", "", "P1", 10, "100", external_id=f"DEPT-{i}",
                        payment_due="2026-05-10", paid_date="2026-05-01")
                   for i in range(first, first + len(hospitals))])  # fmt: skip
    return out


def _queries(client, url: str, params: dict) -> tuple[int, dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as seen:
        response = client.get(url, params)
    assert response.status_code == 200, response.content
    return len(seen.captured_queries), response.json()


LISTS = [("/api/v1/order-lines/", {"page_size": 100}), ("/api/v1/evaluations/", {"period": "2026H1"}),
         ("/api/v1/keyaccounts/candidates/", {"period": "2026-06"}),
         ("/api/v1/keyaccounts/incentives/", {"period": "2026H1"})]  # fmt: skip


def test_the_order_line_evaluation_and_incentive_apis_name_a_department_with_its_hospital(
    purchases, users, admin_user, import_orders, api_for
):
    """Many hospitals have a 神经内科: the APIs' `customer_name` named a department by its own name alone, where the
    order list, the results page and the drill-down name it 北京协和医院 › 神经内科. Listing departments costs no
    query more than listing hospitals (the hospital is read with its department)."""
    xiehe, huashan = purchases["xiehe"], purchases["huashan"]
    evaluation.run_all(as_of=H1_2026)
    client = api_for("manager")
    for url, params in LISTS:
        client.get(url, params)  # the token's first use, caches
    before = {url: _queries(client, url, params)[0] for url, params in LISTS}

    ours, theirs = _departments_buying(admin_user, import_orders, [xiehe, huashan])
    evaluation.run_all(as_of=H1_2026)
    names = {ours.pk: "北京协和医院 › 神经内科", theirs.pk: "复旦大学附属华山医院 › 神经内科",
             xiehe.pk: "北京协和医院", huashan.pk: "复旦大学附属华山医院"}  # fmt: skip
    for url, params in LISTS:
        count, listed = _queries(client, url, params)
        shown = {r["customer"]: r["customer_name"] for r in listed["results"]}
        assert {pk: shown[pk] for pk in names} == names, url
        assert count == before[url], url  # flat: no query per department
    one = Score.objects.get(institution=ours, kind=ModelKind.EVALUATION, period="2026H1")
    assert client.get(f"/api/v1/evaluations/{one.pk}/").json()["customer_name"] == "北京协和医院 › 神经内科"
    assert client.get(f"/api/v1/keyaccounts/incentives/{one.pk}/").json()["customer_name"] == "北京协和医院 › 神经内科"
    line_id = client.get("/api/v1/order-lines/", {"customer": theirs.pk}).json()["results"][0]["id"]
    got = client.get(f"/api/v1/order-lines/{line_id}/").json()
    assert got["customer_name"] == "复旦大学附属华山医院 › 神经内科"


def test_the_api_schema_says_what_customer_name_is(api_for, users):
    import json

    spec = json.loads(api_for("admin").get("/api/schema/?format=json").content)
    described = {
        name: schema["properties"]["customer_name"].get("description", "")
        for name, schema in spec["components"]["schemas"].items()
        if "customer_name" in schema.get("properties", {})
    }
    for name in ("OrderLine", "Evaluation", "Candidate", "Incentive"):
        assert "a department with its hospital (北京协和医院 › 心内科)" in described[name], name


# --- 4. the evaluations API shows by default the period the results page shows ------------------------------------


def test_the_evaluations_api_defaults_to_the_period_the_results_page_shows(purchases, users, client_for, api_for, today):
    """Today is 2026-09-15: 2026H1 was evaluated in full (as of 30 June, by a run after that day) and 2026H2 is under
    way, with the interim standings of an update after an import. The results page opens on 2026H1, the period in
    force; the API answered 2026H2's interim standings — another period, other classes, for the same question."""
    today(dt.date(2026, 9, 15))
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)  # the worker's run of the half-year that ended
    evaluation.run_all(trigger=Trigger.IMPORT)  # 2026H2 so far: interim standings
    assert evaluation.in_force(ModelKind.EVALUATION) == "2026H1"

    page = client_for("analyst").get("/keyaccounts/evaluations/", **EN)
    assert page.context["period"] == "2026H1"
    listed = api_for("analyst").get("/api/v1/evaluations/").json()["results"]
    assert {r["period"] for r in listed} == {"2026H1"}  # was 2026H2
    assert [r["customer"] for r in listed] == [
        s.institution_id for s in Score.objects.filter(kind=ModelKind.EVALUATION, period="2026H1").order_by(*Score.RANKED)
    ]
    # the interim standings when asked for
    asked = api_for("analyst").get("/api/v1/evaluations/", {"period": "2026H2"}).json()["results"]
    assert {r["period"] for r in asked} == {"2026H2"} and len(asked) == 3
    # and the schema says so
    import json

    spec = json.loads(api_for("admin").get("/api/schema/?format=json").content)
    operation = spec["paths"]["/api/v1/evaluations/"]["get"]
    period = next(p for p in operation["parameters"] if p["name"] == "period")
    assert "the period the results page shows" in period["description"]
    assert "the period in force" in operation["description"]


# --- 5. the month turning moves every customer's window --------------------------------------------------------------


def test_the_first_night_of_a_month_rescores_everyone_over_the_new_window(
    xiehe, huashan, users, import_orders, today, huey_immediate, django_capture_on_commit_callbacks
):
    """The interim standings are kept up to date for the customers whose rollups change. When the month turns, the
    12-month window moves for everyone: 2025-06 drops out on 1 June 2026. 协和's large June 2025 order kept counting
    until an import named it again. Now the first nightly refresh of the month has everyone re-scored (the others'
    scores are re-read over the new window too, unchanged)."""
    from pharmacrm.sales import tasks as sales_tasks

    today(dt.date(2026, 5, 20))
    import_orders([
        line("SO-W0", 1, "2025-06-10", xiehe, "P1", 500, "1000", payment_due="2025-07-10", paid_date="2025-07-01"),
        line("SO-W1", 1, "2026-03-01", xiehe, "P1", 100, "1000", payment_due="2026-04-01", paid_date="2026-03-20"),
        line("SO-W2", 1, "2026-02-01", huashan, "P1", 100, "1000", payment_due="2026-03-01", paid_date="2026-02-20"),
    ])  # fmt: skip
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)
    evaluation.run_all(trigger=Trigger.IMPORT, incremental=True)
    amount = lambda inst: next(  # noqa: E731
        c for c in Score.objects.get(institution=inst, kind=ModelKind.EVALUATION, period="2026H1").components
        if c["name"] == "amount"
    )  # fmt: skip
    assert amount(xiehe)["detail"]["amount"] == "600000.00"

    today(dt.date(2026, 5, 31))  # the month has not turned: nothing to do
    runs = EvaluationRun.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        assert sales_tasks.refresh_overdue.call_local() == 0
    assert EvaluationRun.objects.count() == runs

    today(dt.date(2026, 6, 1))
    with django_capture_on_commit_callbacks(execute=True):
        assert sales_tasks.refresh_overdue.call_local() == 0  # no overdue amount changed
    assert amount(xiehe)["detail"]["amount"] == "100000.00"  # June 2025 is out of the window
    scores = Score.objects.filter(kind=ModelKind.EVALUATION, period="2026H1")
    assert {s.institution_id: s.as_of for s in scores} == {xiehe.pk: dt.date(2026, 6, 1), huashan.pk: dt.date(2026, 6, 1)}
    update = EvaluationRun.objects.filter(model__kind=ModelKind.EVALUATION).latest("started_at")
    assert (update.period, update.incremental, update.tier_changes, update.actions) == ("2026H1", False, 0, 0)
    # the next night, with nothing changed, re-scores nobody again
    today(dt.date(2026, 6, 2))
    runs = EvaluationRun.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        sales_tasks.refresh_overdue.call_local()
    assert EvaluationRun.objects.count() == runs


def test_after_a_look_as_of_an_earlier_day_of_the_month_the_next_update_scores_everyone(
    xiehe, huashan, users, import_orders, today, huey_immediate, django_capture_on_commit_callbacks
):
    """A manager runs the evaluation as of 10 May on 20 May: it reads that day's purchases, without 协和's order of
    15 May. The updates after it re-scored only the customers whose rollups changed since, so 协和 kept standings as
    of 10 May until the month turned. Now the update after a run as of a past day scores everyone as of today."""
    from pharmacrm.sales import tasks as sales_tasks

    today(dt.date(2026, 5, 20))
    import_orders([
        line("SO-A", 1, "2026-03-01", xiehe, "P1", 100, "1000", payment_due="2026-04-01", paid_date="2026-03-20"),
        line("SO-B", 1, "2026-05-15", xiehe, "P1", 900, "1000", payment_due="2026-06-15"),
        line("SO-C", 1, "2025-09-01", huashan, "P1", 100, "1000", payment_due="2025-10-01", paid_date="2025-09-20"),
    ])  # fmt: skip
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)  # a system in use: 2025H2 evaluated in full, in force
    evaluation.run_all(trigger=Trigger.IMPORT, incremental=True)

    def standing():
        score = Score.objects.get(institution=xiehe, kind=ModelKind.EVALUATION, period="2026H1")
        return next(c for c in score.components if c["name"] == "amount")["detail"]["amount"], score.as_of

    assert standing() == ("1000000.00", dt.date(2026, 5, 20))
    evaluation.run_all(as_of=dt.date(2026, 5, 10))  # a look at 10 May
    assert standing() == ("100000.00", dt.date(2026, 5, 10))

    today(dt.date(2026, 5, 21))
    with django_capture_on_commit_callbacks(execute=True):
        sales_tasks.refresh_overdue.call_local()  # no overdue amount changed; the standings are of another day
    assert standing() == ("1000000.00", dt.date(2026, 5, 21))
