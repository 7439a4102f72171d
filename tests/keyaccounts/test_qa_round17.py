"""Session 17 (issue 5): the improvement actions of an evaluation run read only the customers who need one."""

from __future__ import annotations

from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import Score
from pharmacrm.servicedesk.models import ImprovementAction

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026


def test_a_weak_customer_merged_away_gets_no_action(purchases, users):
    xiehe, huashan = purchases["xiehe"], purchases["huashan"]
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, apply=False)  # 协和 scored D, nothing applied yet
    assert Score.objects.get(institution=xiehe, period="2026H1").klass == "D"
    Institution.objects.filter(pk=xiehe.pk).update(merged_into=huashan)

    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, ids=[huashan.pk])  # 协和's D score stays

    assert run.actions == 0 and not ImprovementAction.objects.exists()


def test_a_weak_customer_gets_its_action_with_its_name_and_owner(purchases, users):
    xiehe = purchases["xiehe"]
    Institution.objects.filter(pk=xiehe.pk).update(owner=users["kam"])

    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)

    [action] = ImprovementAction.objects.filter(institution=xiehe)
    assert run.actions == 1 and action.owner == users["kam"] and xiehe.name in action.title
