"""A run keeps the weights and reference values its scores share once (EvaluationRun.constants); each score
stores only its own figures. What users see stays whole: every component with its weight and references,
the history of a period explained with the model it was made with, and scores stored before this change
shown as they were stored."""

from __future__ import annotations

import orjson
from django.db import connection

from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import EvaluationRun, Score

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, H2_2025


def stored(score: Score) -> list[dict]:
    """The score's components as the database holds them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT components FROM keyaccounts_score WHERE id = %s", [score.pk])
        value = cursor.fetchone()[0]
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def test_scores_store_their_own_figures_and_the_run_the_shared_ones(purchases, users, client_for):
    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)

    assert run.constants == {
        "amount": {"weight": "0.3500", "detail": {"reference": 1_000_000, "months": 12}},
        "frequency": {"weight": "0.2000", "detail": {"reference": 24, "months": 12}},
        "satisfaction": {"weight": "0.2000", "detail": {}},
        "credit": {"weight": "0.2500", "detail": {}},
    }
    xiehe = Score.objects.select_related("run").get(institution=purchases["xiehe"], period="2026H1")
    raw = {c["name"]: c for c in stored(xiehe)}
    assert raw["frequency"] == {"name": "frequency", "value": "12.50", "contribution": "2.50", "detail": {"orders": 3}}
    # the default flag is kept when true
    assert raw["satisfaction"]["default"] is True and "default" not in raw["credit"]
    assert all("weight" not in c and "reference" not in c.get("detail", {}) for c in raw.values())
    whole = {c["name"]: c for c in xiehe.components}
    assert whole["frequency"] == {
        "name": "frequency", "value": "12.50", "weight": "0.2000", "contribution": "2.50",
        "detail": {"orders": 3, "reference": 24, "months": 12}, "default": False,
    }  # fmt: skip
    assert whole["satisfaction"]["default"] is True
    page = client_for("manager").get(f"/keyaccounts/evaluations/{xiehe.pk}/").content.decode()
    row = page[page.index('data-name="frequency"'):]
    row = row[:row.index("</tr>")]
    assert '<td class="num">20%</td>' in row and ">2.50<" in row


def test_an_older_period_is_explained_with_the_model_it_was_made_with(purchases, users, api_for):
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)
    evaluation.save_model(users["manager"], ModelKind.EVALUATION, {
        "weights": {"amount": 50, "frequency": 10, "satisfaction": 10, "credit": 30},
        "params": {"amount_reference": 500_000, "orders_reference": 12},
    })  # fmt: skip
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)

    api = api_for("manager")
    customer = purchases["xiehe"].pk
    older = api.get(f"/api/v1/evaluations/?period=2025H2&customer={customer}").json()["results"][0]
    newer = api.get(f"/api/v1/evaluations/?period=2026H1&customer={customer}").json()["results"][0]
    old_amount = next(c for c in older["components"] if c["name"] == "amount")
    new_amount = next(c for c in newer["components"] if c["name"] == "amount")
    assert (old_amount["weight"], old_amount["detail"]["reference"]) == ("0.3500", 1_000_000)
    assert (new_amount["weight"], new_amount["detail"]["reference"]) == ("0.5000", 500_000)
    # 250,000 of 500,000 → 50.00 × 0.5 = 25.00
    assert (new_amount["value"], new_amount["contribution"]) == ("50.00", "25.00")


def test_scores_stored_whole_before_are_shown_as_stored(purchases, users, client_for, api_for):
    """Scores written before runs kept their constants have whole components and a run without constants."""
    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    EvaluationRun.objects.filter(pk=run.pk).update(constants={})
    whole = [
        {"name": "amount", "value": "25.00", "weight": "0.3500", "contribution": "8.75",
         "detail": {"amount": "250000.00", "reference": 1000000, "months": 12}, "default": False},
        {"name": "frequency", "value": "12.50", "weight": "0.2000", "contribution": "2.50",
         "detail": {"orders": 3, "reference": 24, "months": 12}, "default": False},
        {"name": "satisfaction", "value": "60.00", "weight": "0.2000", "contribution": "12.00",
         "detail": {"surveys": 0, "nps_answers": 0}, "default": True},
        {"name": "credit", "value": "52.00", "weight": "0.2500", "contribution": "13.00",
         "detail": {"on_time_share": "0.4000", "overdue": "50000.00"}, "default": False},
    ]  # fmt: skip
    score = Score.objects.get(institution=purchases["xiehe"], period="2026H1")
    Score.objects.filter(pk=score.pk).update(stored_components=whole)

    item = api_for("manager").get(f"/api/v1/evaluations/{score.pk}/").json()
    assert [(c["name"], c["weight"], c["contribution"]) for c in item["components"]] == [
        ("amount", "0.3500", "8.75"), ("frequency", "0.2000", "2.50"), ("satisfaction", "0.2000", "12.00"),
        ("credit", "0.2500", "13.00"),
    ]  # fmt: skip
    assert item["components"][1]["detail"] == {"orders": 3, "reference": 24, "months": 12}
    page = client_for("manager").get(f"/keyaccounts/evaluations/{score.pk}/").content.decode()
    row = page[page.index('data-name="amount"'):]
    row = row[:row.index("</tr>")]
    assert '<td class="num">35%</td>' in row and ">8.75<" in row


def test_a_score_whose_run_is_gone_still_shows_its_own_figures(purchases, users, api_for):
    """Runs are never deleted, and a score has no database constraint on its run: should one be missing, the
    score's page and API answer still show its values and contributions instead of failing."""
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    score = Score.objects.get(institution=purchases["xiehe"], period="2026H1")
    Score.objects.filter(pk=score.pk).update(run_id=score.run_id + 10_000)

    item = api_for("manager").get(f"/api/v1/evaluations/{score.pk}/").json()
    assert [(c["name"], c["value"], c["contribution"]) for c in item["components"]] == [
        ("amount", "25.00", "8.75"), ("frequency", "12.50", "2.50"), ("satisfaction", "60.00", "12.00"),
        ("credit", "52.00", "13.00"),
    ]  # fmt: skip
    Score.objects.filter(pk=score.pk).update(run_id=score.run_id)  # SQLite checks the reference at the test's end
