"""Each score carries the class and score of the customer's previous period (movement, and improvement
actions for customers who fell). The first run of a period reads the period before; later runs keep what a
score carries and link only the customers scored in the period for the first time; scoring an earlier
period again (`pharmacrm evaluate --as-of`) carries its new results into the period after it.

2025H2: 协和 45.67 C, 华山 63.80 B, 长征 63.80 B (see eval_fixtures and test_evaluation)."""

from __future__ import annotations

from decimal import Decimal

from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import Score
from pharmacrm.servicedesk.models import ImprovementAction

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, H2_2025, line

D = Decimal


def previous(period: str) -> dict[str, tuple[str, Decimal | None]]:
    return {
        s.institution.name: (s.previous_klass, s.previous_score)
        for s in Score.objects.filter(kind=ModelKind.EVALUATION, period=period).select_related("institution")
    }


def test_customers_scored_in_a_period_one_run_after_another_all_get_their_previous_class(purchases, users):
    xiehe, huashan, changzheng = purchases["xiehe"], purchases["huashan"], purchases["changzheng"]
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)
    # the period's first run scores 华山 only; then 协和 is scored into the same period; then everyone
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, ids=[huashan.pk])
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, ids=[xiehe.pk])
    assert previous("2026H1") == {"复旦大学附属华山医院": ("B", D("63.80")), "北京协和医院": ("C", D("45.67"))}

    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    assert previous("2026H1") == {
        "复旦大学附属华山医院": ("B", D("63.80")), "北京协和医院": ("C", D("45.67")),
        changzheng.name: ("B", D("63.80")),
    }  # fmt: skip
    # and no score is left half-linked
    assert not Score.objects.filter(previous_klass=evaluation.PENDING).exists()


def test_without_a_period_before_nobody_has_a_previous_class(purchases, users):
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)  # no period before: nobody has a previous class
    assert set(previous("2026H1").values()) == {("", None)}


def test_scoring_an_earlier_period_again_carries_its_results_into_the_next(purchases, users):
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    assert set(previous("2026H1").values()) == {("", None)}

    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)  # scored afterwards, e.g. after a late ERP file
    assert previous("2026H1")["北京协和医院"] == ("C", D("45.67"))
    assert previous("2026H1")["复旦大学附属华山医院"] == ("B", D("63.80"))


def test_a_customer_falling_into_class_d_on_a_later_run_of_the_period_gets_one_action(
    purchases, users, import_orders
):
    """协和 is C in 2025H2 and D in 2026H1: the fall is seen whether 协和 is scored by the period's first run
    or by a later, incremental one, and the action is opened once."""
    xiehe, huashan = purchases["xiehe"], purchases["huashan"]
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, ids=[huashan.pk])
    assert not ImprovementAction.objects.filter(institution=xiehe).exists()

    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, ids=[xiehe.pk])
    assert run.actions == 1
    assert ImprovementAction.objects.filter(institution=xiehe, title__endswith="[2026H1]").count() == 1
    # a later order changes 协和's score, not its fall: still one action
    import_orders([line("SO-X5", 1, "2026-06-12", xiehe, "P1", 10, "100", payment_due="2026-07-12")])
    again = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, ids=[xiehe.pk])
    assert again.actions == 0 and ImprovementAction.objects.filter(institution=xiehe).count() == 1
