"""What a run's rewrite of tens of thousands of score rows costs the database: no index on the run or the
model, and on PostgreSQL no constraint on the run (it was checked once per row at commit). The run and
model references still resolve, and a run's rows point at it."""

from __future__ import annotations

import pytest
from django.db import connection

from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import Score

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026


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
