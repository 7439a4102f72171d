"""What a run's rewrite of tens of thousands of score rows costs the database: no index on the run or the
model, and on PostgreSQL no constraint on the run (it was checked once per row at commit). The run and
model references still resolve, and a run's rows point at it."""

from __future__ import annotations

import pytest
from django.db import connection

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import Score

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, H2_2025


def _score_constraints() -> dict:
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, Score._meta.db_table)


@pytest.mark.django_db
def test_score_rows_carry_no_index_on_run_or_model_and_no_run_constraint_on_postgresql():
    found = _score_constraints()
    indexed = [tuple(c["columns"]) for c in found.values() if c["index"] and not c["unique"]]
    assert ("run_id",) not in indexed and ("model_id",) not in indexed
    run_fks = [name for name, c in found.items() if c["foreign_key"] and c["columns"] == ["run_id"]]
    if connection.vendor == "postgresql":
        assert run_fks == []
    # the institution and model references keep their constraints
    fk_columns = {tuple(c["columns"]) for c in found.values() if c["foreign_key"]}
    assert {("institution_id",), ("model_id",)} <= fk_columns


@pytest.mark.django_db
def test_each_run_points_the_rows_it_rewrites_at_itself(purchases, users):
    first = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    second = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    rows = Score.objects.filter(kind=ModelKind.EVALUATION).select_related("run")
    assert rows.count() == 3 and first.pk != second.pk
    assert {s.run for s in rows} == {second}


@pytest.mark.django_db
def test_the_previous_class_is_copied_by_the_statement_that_stores_each_chunk(purchases, users, monkeypatch):
    """One customer per chunk: the staging table is emptied and refilled for each, and every row still gets
    its own customer's class and score of the previous half-year (not another's, not none)."""
    monkeypatch.setattr(evaluation, "SCORE_CHUNK", 1)
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    before = {s.institution_id: s for s in Score.objects.filter(kind=ModelKind.EVALUATION, period="2025H2")}
    now = Score.objects.filter(kind=ModelKind.EVALUATION, period="2026H1")
    assert now.count() == len(before) == 3
    for score in now:
        assert (score.previous_klass, score.previous_score) == (
            before[score.institution_id].klass, before[score.institution_id].score)  # fmt: skip


@pytest.mark.django_db
def test_a_tier_changed_by_hand_while_the_run_scored_is_still_set_from_the_class(purchases, users, monkeypatch):
    """The run skips customers whose tier, as read with their facts, already matches their class; a tier
    someone changed after that read is read again and set, with its audit entry."""
    huashan = purchases["huashan"]
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)  # class A → vip
    assert Institution.objects.get(pk=huashan.pk).tier == "vip"
    original = evaluation._add_profiles

    def then_changed_by_hand(facts, wanted):
        original(facts, wanted)
        Institution.objects.filter(pk=huashan.pk).update(tier="regular")  # after the facts were read

    monkeypatch.setattr(evaluation, "_add_profiles", then_changed_by_hand)
    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    # the facts said vip, so the run did not look again: the next run does
    assert run.tier_changes == 0 and Institution.objects.get(pk=huashan.pk).tier == "regular"
    monkeypatch.setattr(evaluation, "_add_profiles", original)
    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    assert run.tier_changes == 1 and Institution.objects.get(pk=huashan.pk).tier == "vip"
    entry = AuditEntry.objects.filter(object_id=str(huashan.pk), extra__reason="evaluation").order_by("seq").last()
    assert entry.changes == {"tier": ["regular", "vip"]}
