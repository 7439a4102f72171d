"""One customer evaluated out of turn (seed 002 七.(二): "对重点客户和有特殊情况的客户，可适当增加评估频次"): the form on
the Customer 360 page's evaluation block and `customer` on POST /api/v1/evaluations/run/ — the customer alone scored
for the current period, with the reason in the audit trail, for those who run evaluations."""

from __future__ import annotations

import pytest
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import EvaluationRun, Score
from pharmacrm.servicedesk.models import ImprovementAction

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, RUN_ROLES

pytestmark = pytest.mark.django_db

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
REASON = "回款逾期两个月，投诉增加"


def _now_period() -> str:
    return evaluation.current_period(ModelKind.EVALUATION, timezone.localdate())


def _messages(response) -> list[str]:
    return [str(m) for m in response.wsgi_request._messages]


def test_the_customer_alone_is_evaluated_with_the_reason_kept(client_for, users, purchases):
    xiehe = purchases["xiehe"]
    response = client_for("analyst").post(f"/keyaccounts/evaluations/customer/{xiehe.pk}/run/", {"reason": REASON},
                                          **EN)  # fmt: skip

    assert response.status_code == 302 and response.url == f"/customers/institutions/{xiehe.pk}/#evaluation"
    score = Score.objects.get(kind=ModelKind.EVALUATION, institution=xiehe, period=_now_period())
    assert _messages(response) == [
        f"{xiehe.name} was evaluated for {_now_period()}: score {score.score}, class {score.klass}."]
    assert not Score.objects.exclude(institution=xiehe).exists()  # 华山 and 长征 wait for their turn
    run = EvaluationRun.objects.get()
    assert (run.customers, run.incremental, run.created_by) == (1, True, users["analyst"])
    entry = AuditEntry.objects.filter(object_type="keyaccounts.evaluationrun").get()
    assert (entry.actor, entry.extra["reason"], entry.extra["institutions"]) == (users["analyst"], REASON, [xiehe.pk])


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
def test_a_missing_or_long_reason_is_named_and_nothing_runs(client_for, purchases, reason):
    xiehe = purchases["xiehe"]
    response = client_for("manager").post(f"/keyaccounts/evaluations/customer/{xiehe.pk}/run/", {"reason": reason},
                                          **EN)  # fmt: skip

    assert response.status_code == 302
    assert [m.split(":")[0] for m in _messages(response)] == ["Reason"]
    assert not EvaluationRun.objects.exists() and not Score.objects.exists()


def test_a_customer_without_purchases_is_said_to_have_nothing_to_score(client_for, purchases, ruijin):
    response = client_for("manager").post(f"/keyaccounts/evaluations/customer/{ruijin.pk}/run/", {"reason": REASON},
                                          **EN)  # fmt: skip

    assert _messages(response) == [f"{ruijin.name} has no purchases in the evaluation's window: there is nothing to score."]
    assert not Score.objects.filter(institution=ruijin).exists()
    # a department (it buys through its hospital here) is offered the form too: one that buys is scored on its own
    department = purchases["xiehe"].children.get()
    panel = client_for("manager").get(f"/keyaccounts/evaluations/customer/{department.pk}/", **EN).content.decode()
    assert 'id="eval-run"' in panel


def test_an_interim_standing_changes_nobody_else(client_for, users, purchases, import_orders):
    """Once a half-year was evaluated in full, one customer's run of the half-year under way is an interim standing:
    the message says so, the other customers keep their scores and tiers, no action opens for them, and the next
    update after an import still finds every customer whose purchases changed since the last full run."""
    from .eval_fixtures import monthly_orders

    xiehe, huashan = purchases["xiehe"], purchases["huashan"]
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)  # 2026H1 evaluated in full
    evaluation.run(ModelKind.EVALUATION)  # today's interim standings of every customer
    before = {s.institution_id: (s.score, s.klass, s.run_id) for s in Score.objects.all()}
    tiers = dict(Institution.objects.values_list("pk", "tier"))
    actions = ImprovementAction.objects.count()
    import_orders(monthly_orders("SO-H2", huashan)[:1])  # 华山 buys again: its rollups change

    response = client_for("analyst").post(f"/keyaccounts/evaluations/customer/{xiehe.pk}/run/", {"reason": REASON},
                                          **EN)  # fmt: skip

    score = Score.objects.get(institution=xiehe, period=_now_period())
    assert _messages(response) == [
        f"{xiehe.name} was evaluated for {_now_period()}: score {score.score}, class {score.klass} — an interim "
        f"standing: the tier follows the last period evaluated in full (2026H1)."]
    after = {s.institution_id: (s.score, s.klass, s.run_id) for s in Score.objects.exclude(institution=xiehe)}
    assert after == {pk: v for pk, v in before.items() if pk != xiehe.pk}
    assert dict(Institution.objects.values_list("pk", "tier")) == tiers
    assert ImprovementAction.objects.count() == actions
    assert huashan.pk in evaluation.changed_since(ModelKind.EVALUATION)
    entry = AuditEntry.objects.filter(object_type="customers.institution", object_id=str(xiehe.pk),
                                      extra__reason=REASON).get()  # fmt: skip
    assert (entry.extra["klass"], entry.extra["evaluation"]) == (score.klass, _now_period())


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_who_may_evaluate_one_customer(client_for, purchases, role):
    xiehe = purchases["xiehe"]
    client = client_for(role)
    panel = client.get(f"/keyaccounts/evaluations/customer/{xiehe.pk}/", **EN)
    response = client.post(f"/keyaccounts/evaluations/customer/{xiehe.pk}/run/", {"reason": REASON}, **EN)

    assert response.status_code == (302 if role in RUN_ROLES else 403)
    assert Score.objects.filter(institution=xiehe).exists() == (role in RUN_ROLES)
    if panel.status_code == 200:
        assert ('id="eval-run"' in panel.content.decode()) == (role in RUN_ROLES)


def test_the_api_evaluates_one_customer(api_for, purchases):
    xiehe = purchases["xiehe"]
    api = api_for("analyst")

    answer = api.post("/api/v1/evaluations/run/", {"kind": "evaluation", "customer": xiehe.pk, "reason": REASON},
                      format="json")  # fmt: skip

    assert answer.status_code == 201, answer.json()
    score = Score.objects.get(institution=xiehe, period=_now_period())
    body = answer.json()
    assert (body["customer"], body["score"], body["class"], body["customers"]) == (
        xiehe.pk, str(score.score), score.klass, 1)


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "evaluation", "reason": ""}, "reason"),
    ({"kind": "candidate", "reason": REASON}, "customer"),
    ({"kind": "evaluation", "reason": REASON, "customer": 2**40}, "customer"),
    ({"kind": "evaluation", "reason": REASON, "customer": None}, "reason"),  # a reason without a customer
])  # fmt: skip
def test_the_api_names_what_is_wrong(api_for, purchases, body, field):
    body = {"customer": purchases["xiehe"].pk, **body}
    body = {k: v for k, v in body.items() if v is not None}
    answer = api_for("manager").post("/api/v1/evaluations/run/", body, format="json")

    assert answer.status_code == 400 and list(answer.json()) == [field]
    assert not EvaluationRun.objects.exists()


def test_a_reason_pasted_with_a_nul_byte_is_kept_without_it_not_a_server_error(client_for, purchases):
    # PostgreSQL refuses a NUL in the run's reason and in the audit entry's JSON: the page failed (500)
    xiehe = purchases["xiehe"]
    response = client_for("analyst").post(f"/keyaccounts/evaluations/customer/{xiehe.pk}/run/",
                                          {"reason": "回款逾期\x00两个月"}, **EN)  # fmt: skip

    assert response.status_code == 302
    entry = AuditEntry.objects.filter(object_type="keyaccounts.evaluationrun").get()
    assert entry.extra["reason"] == "回款逾期两个月"
    response = client_for("analyst").post(f"/keyaccounts/evaluations/customer/{xiehe.pk}/run/", {"reason": "\x00 "},
                                          **EN)  # fmt: skip
    assert [m.split(":")[0] for m in _messages(response)] == ["Reason"]
