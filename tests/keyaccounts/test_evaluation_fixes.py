"""Fixes to the customer evaluation (QA, issue 5): weak customers who stay weak get an improvement action,
a scoring model read from the API can be written back, invalid list filters are said and not applied, the
KOL count is checked against its limit and the names listed.

The data are eval_fixtures' (协和 C in 2025H2 → D in 2026H1 with the default model; 华山 and 长征 B → A)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation
from django.utils.translation import gettext

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import MarketInfluence, Score, ScoringModel
from pharmacrm.notify.models import Notification
from pharmacrm.servicedesk.choices import ActionStatus
from pharmacrm.servicedesk.models import ImprovementAction

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, H2_2025, _hospital, line

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def text(response) -> str:
    import re

    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def actions_of(institution) -> list[ImprovementAction]:
    return list(ImprovementAction.objects.filter(institution=institution).order_by("id"))


def strict_thresholds(user) -> None:
    """A model under which 协和 is D in 2025H2 (45.67) as in 2026H1 (36.25); 华山 C (63.80) then B (90.60)."""
    evaluation.save_model(user, ModelKind.EVALUATION, {"thresholds": {"A": 95, "B": 90, "C": 50}})


# --- 1. improvement actions for every weak customer ---------------------------------------------------------


def test_a_customer_in_d_at_its_first_evaluation_gets_an_action_once(purchases, users):
    xiehe = purchases["xiehe"]

    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)  # no period before: 协和 is new in D
    again = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)

    assert Score.objects.get(institution=xiehe, period="2026H1").previous_klass == ""
    assert (run.actions, again.actions) == (1, 0)
    [action] = actions_of(xiehe)
    assert action.title.endswith("[2026H1]") and "D" in action.title
    assert action.owner == users["kam"]  # no owner or team: the first key-account manager
    assert action.due_date == timezone.localdate() + dt.timedelta(days=evaluation.ACTION_DAYS)
    assert action.status == ActionStatus.OPEN and action.number.startswith(f"IA-{timezone.localdate().year}-")
    # audited as a creation by the system, with the run; the owner finds it in the bell
    entry = AuditEntry.objects.get(object_type="servicedesk.improvementaction", object_id=str(action.pk))
    assert (entry.action, entry.actor_name, entry.extra["run"], entry.extra["period"]) == (
        "create", "system", run.pk, "2026H1")  # fmt: skip
    assert entry.changes["number"] == [None, action.number] and entry.changes["owner"] == [None, users["kam"].pk]
    note = Notification.objects.get(recipient=users["kam"], kind="improvement.assigned")
    assert action.number in note.title and note.url.endswith(f"/{action.pk}/")
    # nobody else is weak
    assert ImprovementAction.objects.count() == 1


def test_improvement_actions_are_written_in_the_products_language_whoever_runs_the_evaluation(purchases, users):
    """An analyst reading the site in English pressed "Run now" (and "Open an improvement action" on a score): the
    actions were stored in English — "Improve the relationship with 北京协和医院 (class D) [2026H1]" — in the
    service desk of the Chinese staff who own them, beside every other automatic action in Chinese."""
    from pharmacrm.keyaccounts.influence import open_improvement_action

    xiehe = purchases["xiehe"]
    with translation.override("en"):
        assert evaluation.run(ModelKind.EVALUATION, as_of=H1_2026).actions == 1
    [action] = actions_of(xiehe)
    assert action.title.startswith("改善与") and action.title.endswith("[2026H1]")
    assert action.description.startswith("2026H1 客户评估")

    ImprovementAction.objects.filter(institution=xiehe).update(status=ActionStatus.DONE)
    score = Score.objects.get(institution=xiehe, kind=ModelKind.EVALUATION, period="2026H1")
    with translation.override("en"):  # the first one is done: another, by hand
        by_hand = open_improvement_action(users["manager"], score)
    assert by_hand.title.startswith("改善与") and by_hand.description.startswith("2026H1 客户评估")


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_an_improvement_action_opened_by_hand_twice_at_once_is_opened_once(purchases, users):
    """The button "Open an improvement action" sent twice (a double click, or two analysts on the same score):
    both checked that the period had no open action before either had written, and the customer got two. The
    second now waits for the first and is told that its action is open."""
    from pharmacrm.keyaccounts.influence import open_improvement_action
    from tests.concurrency import held_while

    xiehe = purchases["xiehe"]
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    ImprovementAction.objects.filter(institution=xiehe).update(status=ActionStatus.DONE)
    score = Score.objects.get(institution=xiehe, kind=ModelKind.EVALUATION, period="2026H1")
    refused: list[str] = []

    def again():
        try:
            with translation.override("en"):
                open_improvement_action(users["analyst"], score)
        except ValidationError as e:
            refused.extend(e.messages)

    held_while(lambda: open_improvement_action(users["manager"], score), again)
    opened = [a for a in actions_of(xiehe) if a.status != ActionStatus.DONE]
    assert len(opened) == 1
    assert refused == [f"Improvement action {opened[0].number} of this customer is still open: follow it up there."]


def test_a_customer_staying_in_d_gets_an_action_when_none_is_open(purchases, users, client_for):
    xiehe = purchases["xiehe"]
    strict_thresholds(users["manager"])
    first = evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)
    assert first.actions == 1 and actions_of(xiehe)[0].title.endswith("[2025H2]")

    # D again in 2026H1 while the action of 2025H2 is open: not a second one
    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    assert Score.objects.get(institution=xiehe, period="2026H1").previous_klass == "D"
    assert run.actions == 0 and len(actions_of(xiehe)) == 1
    # the results page shows the open action with the D customer
    page = client_for("manager").get("/keyaccounts/evaluations/?period=2026H1&klass=D", **EN)
    assert actions_of(xiehe)[0].number in text(page)

    # once that one is done, the next run of the period opens one for 2026H1 — and only one
    ImprovementAction.objects.filter(institution=xiehe).update(status=ActionStatus.DONE)
    reopened = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    again = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    assert (reopened.actions, again.actions) == (1, 0)
    assert [a.title[-8:] for a in actions_of(xiehe)] == ["[2025H2]", "[2026H1]"]


def test_a_closed_action_of_the_period_is_not_opened_again_by_later_runs(purchases, users):
    xiehe = purchases["xiehe"]
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    ImprovementAction.objects.filter(institution=xiehe).update(status=ActionStatus.DONE)

    later = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, ids=[xiehe.pk])  # e.g. after an import
    assert later.actions == 0 and len(actions_of(xiehe)) == 1


def test_a_customer_with_an_open_improvement_action_gets_no_second(purchases, users):
    from pharmacrm.servicedesk import revisit
    from pharmacrm.servicedesk.services import SYSTEM

    xiehe = purchases["xiehe"]
    mine = revisit._create_action(SYSTEM, {
        "title": "Clarify the overdue invoice", "owner": users["manager"], "institution": xiehe,
        "due_date": timezone.localdate() + dt.timedelta(days=7),
    })  # fmt: skip

    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    assert run.actions == 0 and actions_of(xiehe) == [mine]


def test_the_owner_is_the_customers_owner_and_the_run_costs_a_fixed_number_of_queries(
    purchases, users, import_orders, admin_user, beijing, make_user
):
    """Ten more weak customers (a few lines each), their owners spread over several users; one inactive."""
    from pharmacrm.core.roles import Role

    rep2 = make_user("rep2", Role.REP)
    gone = make_user("gone", Role.REP)
    gone.is_active = False
    gone.save()
    owners = [users["rep"], rep2, users["agent"], gone, None]
    weak, rows = [], []
    for i in range(10):
        inst = _hospital(admin_user, beijing, f"弱客户{i:02d}医院", f"1211000042500{i:04d}")
        Institution.objects.filter(pk=inst.pk).update(owner=owners[i % len(owners)])
        weak.append(inst)
        rows.append(line(f"SO-W{i}", 1, "2026-03-01", inst, "P1", 1, "100", payment_due="2026-04-01",
                         paid_date="2026-03-20"))  # fmt: skip
    import_orders(rows)
    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, apply=False)
    model = evaluation.active_model(ModelKind.EVALUATION)

    with CaptureQueriesContext(connection) as queries:
        opened = evaluation._open_actions(model, set(), run)
    assert opened == 11  # the ten and 协和
    # about 16 (4 of them numbering the year's first action), whatever the number of customers
    assert len(queries) <= 20, [q["sql"][:120] for q in queries]

    got = {a.institution_id: a.owner for a in ImprovementAction.objects.select_related("owner")}
    for i, inst in enumerate(weak):
        expected = owners[i % len(owners)]
        assert got[inst.pk] == (expected if expected not in (gone, None) else users["kam"]), inst.name
    assert len({a.number for a in ImprovementAction.objects.all()}) == 11
    # each owner is told; the key-account manager, given four, gets one notification for them all
    assert Notification.objects.filter(recipient=users["rep"], kind="improvement.assigned").count() == 2
    [summary] = Notification.objects.filter(recipient=users["kam"], kind="improvement.assigned")
    assert summary.url.endswith("/improvements/?show=mine")
    assert AuditEntry.objects.filter(object_type="servicedesk.improvementaction", action="create").count() == 11


# --- 2. a scoring model read from the API can be written back ------------------------------------------------


READONLY = ("kind", "shares", "created_at", "created_by")


@pytest.mark.parametrize("kind", ["evaluation", "candidate"])
def test_a_scoring_model_read_from_the_api_is_written_back_unchanged(api_for, db, users, kind):
    api = api_for("manager")
    url = f"/api/v1/scoring-models/{kind}/"
    body = api.get(url).json()
    assert isinstance(body["params"]["grade_points"], dict)

    response = api.put(url, body, format="json")

    assert response.status_code == 200, response.json()
    saved = response.json()
    assert saved["version"] == body["version"]  # written back unchanged: no new version (session 56)
    assert {k: v for k, v in saved.items() if k not in (*READONLY, "version")} == {
        k: v for k, v in body.items() if k not in (*READONLY, "version")
    }
    model = ScoringModel.objects.get(kind=kind, active=True)
    assert model.params["grade_points"]["3A"] == 100 and model.params["kind_points"]["pharmacy"] == 35


def test_changed_grade_points_are_saved_and_checked_like_the_other_values(api_for, db, users):
    api = api_for("manager")
    url = "/api/v1/scoring-models/candidate/"
    body = api.get(url).json()
    body["params"]["grade_points"] = {**body["params"]["grade_points"], "3A": 95}
    ok = api.put(url, body, format="json")
    assert ok.status_code == 200 and ok.json()["params"]["grade_points"]["3A"] == 95

    for bad in ({"3A": 120}, {"9Z": 50}, {"3A": "a lot"}, [100, 90]):
        r = api.put(url, {"params": {"grade_points": bad}, "version": 2}, format="json")
        assert r.status_code == 400 and list(r.json()) == ["params"], (bad, r.json())
        assert "Grade points are scores from 0 to 100" in r.json()["params"][0]
    r = api.put(url, {"params": {"kind_points": {"pharmacy": -1}}, "version": 2}, format="json")
    assert r.status_code == 400 and "Type points" in r.json()["params"][0]
    # reference values as on the settings page, named by their labels
    r = api.put(url, {"params": {"amount_reference": "abc"}, "version": 2}, format="json")
    assert r.status_code == 400 and r.json()["params"] == [
        "Amount reference (yuan): Enter an amount in yuan, such as 1234.50 or ¥1,234.50."]
    r = api.put(url, {"params": {"window_months": 12.5}, "version": 2}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["params"]
    assert ScoringModel.objects.filter(kind="candidate").count() == 2  # nothing saved by the refused ones


# --- 3. invalid filter values are said, not silently ignored --------------------------------------------------


@pytest.fixture
def identified(purchases, users):
    evaluation.run(ModelKind.CANDIDATE, as_of=H1_2026)
    return purchases


@pytest.mark.parametrize("value", ["abc", "150", "-1"])
def test_an_invalid_minimum_score_is_named_at_its_field_and_not_applied(client_for, identified, value):
    response = client_for("manager").get(f"/keyaccounts/candidates/?min_score={value}", **EN)

    assert response.status_code == 200
    assert len(response.context["rows"]) == 3  # not applied
    html = response.content.decode()
    assert 'id="field-min_score"' in html and "has-error" in html
    assert "Minimum score must be a score from 0 to 100." in text(response)
    assert "A filter with an error was not applied" in text(response)
    assert "No customer matches these filters" not in text(response)


def test_the_filter_message_is_in_the_pages_language(client_for, identified):
    response = client_for("manager").get("/keyaccounts/candidates/?min_score=150", HTTP_ACCEPT_LANGUAGE="zh-hans")
    with translation.override("zh-hans"):
        expected = gettext("%(name)s must be a score from 0 to 100.") % {"name": gettext("Minimum score")}
    assert expected != "Minimum score must be a score from 0 to 100."
    assert expected in text(response)


def test_a_valid_minimum_score_still_filters(client_for, identified):
    response = client_for("manager").get("/keyaccounts/candidates/?min_score=78.30", **EN)
    assert [r.institution.name for r in response.context["rows"]] == ["复旦大学附属华山医院", "上海长征医院"]
    assert "has-error" not in response.content.decode() and "Clear filters" in text(response)


def test_an_unknown_period_on_the_results_page_is_said(client_for, purchases, users):
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    response = client_for("manager").get("/keyaccounts/evaluations/?period=2099H1&klass=D", **EN)
    assert response.status_code == 200 and response.context["period"] == "2026H1"
    assert "Select a valid choice" in text(response) and "A filter with an error was not applied" in text(response)


# --- 4. the KOL count ---------------------------------------------------------------------------------------


@pytest.fixture
def influence_url(identified):
    score = Score.objects.get(institution=identified["huashan"], kind="candidate")
    return f"/keyaccounts/evaluations/{score.pk}/influence/"


@pytest.mark.parametrize("data, field, message", [
    ({"kol_count": 99999}, "kol_count", "Give the number of key opinion leaders, from 0 to 500."),
    ({"kol_count": -1}, "kol_count", "Give the number of key opinion leaders, from 0 to 500."),
    ({"kol_count": 1, "kol_names": "王医生, 李医生、张医生，赵医生; 钱医生"}, "kol_count",
     "5 names are listed: the number of key opinion leaders cannot be smaller."),
])  # fmt: skip
def test_a_wrong_kol_count_is_refused_at_its_field(client_for, influence_url, data, field, message):
    response = client_for("analyst").post(influence_url, data, **EN)

    assert response.status_code == 400
    assert response.context["influence_form"].errors[field] == [message]
    assert message in text(response)
    assert not MarketInfluence.objects.exists()


def test_the_kol_count_is_counted_from_the_names_when_left_empty(client_for, influence_url, identified):
    c = client_for("analyst")
    assert c.post(influence_url, {"kol_count": "", "kol_names": "王医生\n李医生、张医生"}, **EN).status_code == 302
    assert MarketInfluence.objects.get().kol_count == 3
    # a number above the names is kept (not every KOL need be named)
    assert c.post(influence_url, {"kol_count": 500, "kol_names": "王医生", "version": 1}, **EN).status_code == 302
    assert MarketInfluence.objects.get().kol_count == 500
