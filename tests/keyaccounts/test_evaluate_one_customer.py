"""One customer evaluated out of turn (seed 002 七.(二): "对重点客户和有特殊情况的客户，可适当增加评估频次"): the form on
the Customer 360 page's evaluation block and `customer` on POST /api/v1/evaluations/run/ — the customer alone scored
for the current period, with the reason in the audit trail, for those who run evaluations."""

from __future__ import annotations

import pytest
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import EvaluationRun, Score

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import RUN_ROLES

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


def test_a_department_is_evaluated_with_its_hospital(client_for, purchases):
    department = purchases["xiehe"].children.get()
    response = client_for("manager").post(f"/keyaccounts/evaluations/customer/{department.pk}/run/",
                                          {"reason": REASON}, **EN)  # fmt: skip

    assert _messages(response) == ["Customer: A department is evaluated with its hospital: evaluate the hospital."]
    assert not EvaluationRun.objects.exists()
    panel = client_for("manager").get(f"/keyaccounts/evaluations/customer/{department.pk}/", **EN).content.decode()
    assert 'id="eval-run"' not in panel


def test_a_customer_without_purchases_is_said_to_have_nothing_to_evaluate(client_for, purchases, ruijin):
    response = client_for("manager").post(f"/keyaccounts/evaluations/customer/{ruijin.pk}/run/", {"reason": REASON},
                                          **EN)  # fmt: skip

    assert _messages(response) == [f"{ruijin.name} bought nothing in the last two years: there is nothing to evaluate."]
    assert not Score.objects.filter(institution=ruijin).exists()


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
])  # fmt: skip
def test_the_api_names_what_is_wrong(api_for, purchases, body, field):
    answer = api_for("manager").post("/api/v1/evaluations/run/", {"customer": purchases["xiehe"].pk, **body},
                                     format="json")  # fmt: skip

    assert answer.status_code == 400 and list(answer.json()) == [field]
    assert not EvaluationRun.objects.exists()
