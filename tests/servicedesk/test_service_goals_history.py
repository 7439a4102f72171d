"""Service goals over time: a period is judged against the goals in force at its end, the previous period's totals
against those in force at theirs. Raising a goal in December leaves November judged as it was; a goal set only now
judges no earlier period. The November figures are hand-computed in test_performance.py: all together 4 of 6 tickets
resolved (66.7 %)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from pharmacrm.servicedesk import goals
from pharmacrm.servicedesk.models import ServiceGoal, ServiceGoalChange
from tests.servicedesk.test_performance import (  # noqa: F401 — fixtures
    API,
    PAGE,
    api_client,
    desk,
    november,
    page_client,
)

pytestmark = pytest.mark.django_db

OCTOBER = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
DECEMBER = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)  # dated, so that the test reads the same after December


@pytest.fixture(autouse=True)
def _english():
    from django.utils import translation

    with translation.override("en"):
        yield


def _totals(html: str) -> str:
    return html.split("<tfoot>", 1)[1].split("</tr>", 1)[0]


def test_a_goal_raised_later_leaves_the_earlier_period_judged_as_it_was(users, november):  # noqa: F811
    goals.save(users["manager"], {"resolution_rate": "50"}, since=OCTOBER)
    goals.save(users["manager"], {"resolution_rate": "80"}, since=DECEMBER)  # raised in December
    page = page_client(users["manager"])
    html = page.get(PAGE, {"period": "2026-11"}).content.decode()
    assert 'title="Goal ≥ 50%: met">66.7%' in _totals(html)  # November: the goal of November
    assert "≥ 50%" in html.split('id="goal-row"', 1)[1].split("</tr>", 1)[0]
    data = api_client(users["manager"]).get(API, {"period": "2026-11"}).json()
    assert "resolution_rate" in data["totals"]["goals_met"]
    assert {g["indicator"]: g["target"] for g in data["goals"]} == {"resolution_rate": "50.00"}
    # December (this period) is judged against today's goal, and its previous-period row (November) against November's
    december = page.get(PAGE, {"period": "2026-12"}).content.decode()
    assert "≥ 80%" in december.split('id="goal-row"', 1)[1].split("</tr>", 1)[0]
    previous = december.split('data-row="2026-11"', 1)[1].split("</tr>", 1)[0]
    assert 'title="Goal ≥ 50%: met">66.7%' in previous
    dec = api_client(users["manager"]).get(API, {"period": "2026-12"}).json()
    assert "resolution_rate" in dec["previous_totals"]["goals_met"]  # 66.7 ≥ 50, not against 80
    assert goals.current() == {"resolution_rate": Decimal("80")}  # what the goals page edits: today's


def test_a_goal_set_only_now_judges_no_earlier_period_and_the_page_says_so(users, november):  # noqa: F811
    goals.save(users["manager"], {"resolution_rate": "80", "csat": "4"})
    html = page_client(users["manager"]).get(PAGE, {"period": "2026-11"}).content.decode()
    assert "goal-missed" not in html and "goal-met" not in html and 'id="goal-row"' not in html
    assert "No service goals were in force in this period" in html
    data = api_client(users["manager"]).get(API, {"period": "2026-11"}).json()
    assert data["goals"] == [] and data["totals"]["goals_missed"] == []


def test_removing_a_goal_ends_it_from_then_on_and_every_change_is_kept(users, november):  # noqa: F811
    goals.save(users["manager"], {"resolution_rate": "50", "csat": "4"}, since=OCTOBER)
    goals.save(users["admin"], {"csat": ""})  # removed now
    html = page_client(users["manager"]).get(PAGE, {"period": "2026-11"}).content.decode()
    assert "Goal ≥ 4: missed" in _totals(html)  # still November's goal (CSAT 3.25)
    assert goals.Judge.loaded().page == {"resolution_rate": Decimal("50")}  # today's: without CSAT
    kept = list(ServiceGoalChange.objects.order_by("valid_from", "id").values_list("indicator", "target", "set_by__username"))
    assert kept == [("resolution_rate", Decimal("50"), "manager"), ("csat", Decimal("4"), "manager"),
                    ("csat", None, "admin")]  # fmt: skip
    assert goals.save(users["admin"], {"resolution_rate": "50"}) == 0 and ServiceGoalChange.objects.count() == 3


def test_goals_set_before_their_history_was_kept_judge_every_earlier_period(users, november):  # noqa: F811
    """Migration servicedesk 0025 gives the goals already set a history from 2000 on: every period is judged as it
    was before the history existed."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("pharmacrm.servicedesk.migrations.0025_service_goal_history")
    ServiceGoal.objects.create(indicator="resolution_rate", target=Decimal("50"), updated_at=timezone.now())
    migration.history_of_goals_set_before(apps, None)
    html = page_client(users["manager"]).get(PAGE, {"period": "2026-11"}).content.decode()
    assert 'title="Goal ≥ 50%: met">66.7%' in _totals(html)


def test_the_pages_note_is_about_the_goals_of_the_page_itself(users, desk, november):  # noqa: F811
    """一组 has had a goal of its own since October; the desk's were set only in December: the desk's November page
    says that goals judge later periods, not that none are set. A goal removed in December leaves only November's row
    of the December page judged, and the page says that."""
    goals.save(users["manager"], {"csat": "4"}, team=desk["one"], since=OCTOBER)
    goals.save(users["manager"], {"resolution_rate": "80"}, since=DECEMBER)
    page = page_client(users["manager"])
    november_page = page.get(PAGE, {"period": "2026-11"}).content.decode()
    assert 'id="goals-set-later"' in november_page and "No service goals are set" not in november_page
    ServiceGoalChange.objects.all().delete()
    ServiceGoal.objects.all().delete()
    goals.save(users["manager"], {"resolution_rate": "50"}, since=OCTOBER)
    goals.save(users["admin"], {"resolution_rate": ""}, since=DECEMBER)  # removed in December
    december_page = page.get(PAGE, {"period": "2026-12"}).content.decode()
    assert 'id="goals-previous-only"' in december_page
    assert 'title="Goal ≥ 50%: met">66.7%' in december_page.split('data-row="2026-11"', 1)[1].split("</tr>", 1)[0]


def test_goals_cannot_be_dated_back_before_a_change_already_kept(users):
    goals.save(users["manager"], {"csat": "4"})
    with pytest.raises(ValueError):
        goals.save(users["manager"], {"csat": "4.5"}, since=OCTOBER)
    assert goals.current() == {"csat": Decimal("4")} and ServiceGoalChange.objects.count() == 1
