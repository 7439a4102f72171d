"""Found by QA in session 56: a customer merged away stayed in the results in force (the half-year the pages and APIs
show by default, while the latest half-year's are interim standings), and could still be evaluated out of turn ("no
purchases") and given an improvement action nobody would open; and an action opened by hand from another period's
score was a second open action beside the customer's open one."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone, translation

from pharmacrm.customers import services as customers
from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.influence import open_improvement_action
from pharmacrm.keyaccounts.models import Score
from pharmacrm.servicedesk.models import ImprovementAction

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, H2_2025, api_for  # noqa: F401

pytestmark = pytest.mark.django_db


def scores_of(institution) -> set[str]:
    return set(Score.objects.filter(institution=institution, kind=ModelKind.EVALUATION).values_list("period", flat=True))


def test_a_merged_customer_leaves_the_period_in_force_and_is_neither_evaluated_nor_given_an_action(purchases, users):
    huashan, xiehe = purchases["huashan"], purchases["xiehe"]
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    evaluation.run(ModelKind.EVALUATION)  # today: the current half-year's interim standings
    current = evaluation.current_period(ModelKind.EVALUATION, timezone.localdate())
    assert evaluation.in_force(ModelKind.EVALUATION) == "2026H1" and current != "2026H1"
    assert {"2025H2", "2026H1"} <= scores_of(huashan)
    customers.merge(users["admin"], xiehe, huashan)
    huashan.refresh_from_db()
    # gone from the period in force and the interim standings; the earlier period keeps it as history
    assert scores_of(huashan) == {"2025H2"}
    with translation.override("en"):
        with pytest.raises(ValidationError) as refused:
            evaluation.evaluate_customer(users["manager"], huashan, "付款逾期")
        assert f"was merged into 北京协和医院 ({xiehe.code})" in refused.value.message_dict["customer"][0]
        history = Score.objects.get(institution=huashan, kind=ModelKind.EVALUATION, period="2025H2")
        with pytest.raises(ValidationError, match="was merged into"):
            open_improvement_action(users["manager"], history)
    assert not ImprovementAction.objects.filter(institution=huashan).exists()


def test_an_action_opened_by_hand_is_refused_while_the_customer_has_one_open_of_any_period(purchases, users):
    xiehe = purchases["xiehe"]
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    ImprovementAction.objects.filter(institution=xiehe).delete()
    older = Score.objects.get(institution=xiehe, kind=ModelKind.EVALUATION, period="2025H2")
    first = open_improvement_action(users["manager"], older)
    newer = Score.objects.get(institution=xiehe, kind=ModelKind.EVALUATION, period="2026H1")
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        open_improvement_action(users["manager"], newer)
    assert refused.value.messages == [f"Improvement action {first.number} of this customer is still open: follow it "
                                      "up there."]  # fmt: skip
    assert ImprovementAction.objects.filter(institution=xiehe).count() == 1


def test_a_scoring_model_saved_without_a_change_keeps_its_version(users, api_for):  # noqa: F811
    """A form sent as it was loaded made a new version and an empty audit entry, and every form others
    had open became stale (409) for nothing (found by QA)."""
    from pharmacrm.core.models import AuditEntry

    model = evaluation.active_model(ModelKind.EVALUATION)
    same = evaluation.save_model(users["manager"], ModelKind.EVALUATION,
                                 {"params": {"window_months": model.params["window_months"]}}, version=model.version)  # fmt: skip
    assert same.pk == model.pk and evaluation.active_model(ModelKind.EVALUATION).version == model.version
    assert not AuditEntry.objects.filter(object_type="keyaccounts.scoringmodel", action="update").exists()
    changed = evaluation.save_model(users["manager"], ModelKind.EVALUATION, {"params": {"window_months": 6}},
                                    version=model.version)  # fmt: skip
    assert changed.version == model.version + 1
