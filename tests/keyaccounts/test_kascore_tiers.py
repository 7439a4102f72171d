"""Defect 4 of the key-account evaluation (brief kascore): on the day after a half-year ended, an update after an
import scored the new half-year and took the tiers, and the ended half-year's evaluation only filled history —
which period drove the tiers depended on the order of the runs. The period in force is now the last one
evaluated in full; a period under way gives interim standings."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .programme_fixtures import *  # noqa: F403  (fixtures)

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


# --- 4. the ended period decides the tiers, whatever the order of the runs after it ------------------------------


def _state(purchases) -> dict:
    from pharmacrm.customers.models import Institution
    from pharmacrm.servicedesk.models import ImprovementAction

    return {
        "tiers": {k: Institution.objects.get(pk=v.pk).tier for k, v in purchases.items()},
        "actions": sorted(ImprovementAction.objects.values_list("institution__name", "title")),
    }


@pytest.mark.parametrize("order", ["nightly first", "import first"])
def test_the_ended_half_year_decides_the_tiers_whatever_runs_first(purchases, users, order):
    """The day after a half-year ended: the nightly run evaluates it as of its last day, and an update after an
    import scores the new half-year. Before, whichever came second won (import first: the ended half-year
    only filled history, the tiers followed a half-year one day old)."""
    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.choices import ModelKind
    from pharmacrm.keyaccounts.models import Score

    from .eval_fixtures import H2_2025

    today = timezone.localdate()
    ended, _end = evaluation.ended_period(ModelKind.EVALUATION, today)
    current = evaluation.current_period(ModelKind.EVALUATION, today)
    # a system in use: the half-year before was evaluated in full
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)

    def nightly():
        return {r.period: r for r in evaluation.scheduled(today)}[ended]

    def after_import():
        return next(r for r in evaluation.run_all(incremental=True) if r.model.kind == ModelKind.EVALUATION)

    if order == "nightly first":
        evaluated, update = nightly(), after_import()
    else:
        update = after_import()
        evaluated = nightly()

    state = _state(purchases)
    # the tiers are those of the ended half-year's classes (华山 A → VIP, 协和 D → regular); 长征 is a key account
    classes = dict(Score.objects.filter(kind=ModelKind.EVALUATION, period=ended).values_list("institution__name", "klass"))
    assert classes[purchases["huashan"].name] == "A"
    assert state["tiers"]["huashan"] == "vip" and state["tiers"]["xiehe"] == "regular"
    # its improvement action is the ended period's
    assert state["actions"] == [(purchases["xiehe"].name, action_title(purchases["xiehe"].name, ended))]
    assert (evaluated.period, update.period) == (ended, current)
    # the update's scores are interim standings: they change no tier and open no action
    # (in force when it ran: the ended half-year once evaluated, the one before until then)
    assert update.interim_of == (ended if order == "nightly first" else "2025H2")
    assert update.tier_changes == 0 and update.actions == 0
    assert evaluated.later_period is None  # the ended half-year's evaluation is in force
    assert evaluation.in_force(ModelKind.EVALUATION) == ended
    # and a later update of the period under way still changes nothing
    again = next(r for r in evaluation.run_all() if r.model.kind == ModelKind.EVALUATION)
    assert again.interim_of == ended and again.tier_changes == 0
    assert _state(purchases) == state


def action_title(name: str, period: str) -> str:
    from pharmacrm.keyaccounts import evaluation

    return evaluation.action_text(name, "D", period)[0]


def test_the_results_page_and_the_command_say_a_period_under_way_is_interim(purchases, users, client_for):
    from io import StringIO

    from django.core.management import call_command
    from django.utils import translation

    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.choices import ModelKind

    from .eval_fixtures import H1_2026

    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    current = evaluation.current_period(ModelKind.EVALUATION, timezone.localdate())
    translation.activate("en")
    out = StringIO()
    call_command("evaluate", stdout=out)
    line = next(x for x in out.getvalue().splitlines() if x.startswith(f"Customer evaluation {current}:"))
    assert line.endswith("interim standings of a period under way; tiers and actions follow the evaluation of 2026H1")
    page = client_for("analyst").get(reverse("keyaccounts:evaluations"), {"period": current}, **EN)
    assert page.context["interim_of"] == "2026H1"
    assert "A period under way: its scores are interim standings and change no tier." in text(page)
    past = client_for("analyst").get(reverse("keyaccounts:evaluations"), {"period": "2026H1"}, **EN)
    assert past.context["interim_of"] is None and "A period under way" not in text(past)


def test_the_run_api_says_the_period_in_force(purchases, users, api_client):
    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.choices import ModelKind

    from .eval_fixtures import H1_2026

    first = api_client("analyst").post("/api/v1/evaluations/run/", {"kind": "evaluation"}, format="json")
    assert first.status_code == 201 and first.json()["interim_of"] is None  # a new system: the first run applies
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    answer = api_client("analyst").post("/api/v1/evaluations/run/", {"kind": "evaluation"}, format="json")
    assert answer.status_code == 201
    assert answer.json()["interim_of"] == "2026H1" and answer.json()["tier_changes"] == 0


def test_a_delisted_customer_gets_the_tier_of_the_period_in_force_not_of_interim_standings(
    users, admin_user, xiehe, listed, make_proposal, manager2
):
    """De-listing gives back the tier the customer's evaluation maps to: that of the period in force (2026H1, class A
    → VIP), not of the half-year under way's interim standings (class C), which change no tier."""
    import datetime as dt
    from decimal import Decimal

    from pharmacrm.customers import services as customers
    from pharmacrm.customers.choices import Tier
    from pharmacrm.customers.models import Institution
    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.models import EvaluationRun, Score

    from .test_lifecycle_fixes import delist

    customers.update_institution(admin_user, xiehe, {"tier": Tier.KEY})  # no tier of its own to go back to
    listed(xiehe)
    model = evaluation.active_model("evaluation")
    today = timezone.localdate()
    current = evaluation.current_period("evaluation", today)
    ended, end = evaluation.ended_period("evaluation", today)
    after = timezone.make_aware(dt.datetime.combine(end + dt.timedelta(days=1), dt.time(3, 30)))
    EvaluationRun.objects.create(model=model, period=ended, as_of=end, trigger="schedule", started_at=after,
                                 finished_at=after, customers=1)  # fmt: skip
    for period, as_of, klass in ((ended, end, "A"), (current, today, "C")):
        Score.objects.create(institution=xiehe, kind="evaluation", period=period, model=model, klass=klass,
                             as_of=as_of, score=Decimal("91.00" if klass == "A" else "45.00"), components=[])  # fmt: skip
    assert evaluation.in_force("evaluation") == ended

    delist(make_proposal, manager2, xiehe)

    assert Institution.objects.get(pk=xiehe.pk).tier == Tier.VIP


def test_the_results_page_and_the_incentives_show_the_period_in_force_by_default(purchases, users, client_for,
                                                                                  api_client):
    """2026H1 was evaluated in full and a run today gave the half-year under way its interim standings. Opened
    without a period, the results page and the incentives API showed those interim standings — discount levels
    and reward programmes nobody has been given. They now show 2026H1, whose results are in force; the period
    under way stays one choice away."""
    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.choices import ModelKind

    from .eval_fixtures import H1_2026

    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    current = evaluation.current_period(ModelKind.EVALUATION, timezone.localdate())
    evaluation.run(ModelKind.EVALUATION)  # today's interim standings, the latest period
    assert current != "2026H1"

    page = client_for("analyst").get(reverse("keyaccounts:evaluations"), **EN)
    assert page.context["period"] == "2026H1" and page.context["interim_of"] is None
    assert 'value="2026H1" selected' in page.content.decode()
    under_way = client_for("analyst").get(reverse("keyaccounts:evaluations"), {"period": current}, **EN)
    assert under_way.context["period"] == current

    rows = api_client("analyst").get("/api/v1/keyaccounts/incentives/").json()["results"]
    assert rows and {r["period"] for r in rows} == {"2026H1"}
