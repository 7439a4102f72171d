"""The evaluation's speed paths give the same scores as the plain path: both kinds written at once on their
own connections (PostgreSQL, outside a transaction), the facts read in two halves at once, scores stored
in chunks while the next chunk is scored, and a set of ids larger than SQLite's parameter limit."""

from __future__ import annotations

import pytest
from django.db import connection

from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import EvaluationRun, Score

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026


def _scores() -> dict[tuple[int, str], tuple]:
    return {
        (s.institution_id, s.kind): (s.score, s.klass, s.candidate, s.components, s.province, s.customer_kind)
        for s in Score.objects.filter(period__in=["2026H1", "2026-06"])
    }


@pytest.fixture
def parallel_calls(monkeypatch):
    """How many times the work went to parallel connections."""
    calls = []
    original = evaluation.in_parallel

    def spy(jobs):
        calls.append(len(jobs))
        return original(jobs)

    monkeypatch.setattr(evaluation, "in_parallel", spy)
    return calls


@pytest.mark.django_db(transaction=True)
def test_both_kinds_on_their_own_connections_score_as_one_connection_does(
    purchases, users, parallel_calls, monkeypatch
):
    assert not connection.in_atomic_block
    runs = evaluation.run_all(as_of=H1_2026)
    parallel = _scores()
    # PostgreSQL writes the two kinds at once; SQLite has one writer and runs them one after the other
    assert parallel_calls == ([2] if connection.vendor == "postgresql" else [])
    assert [r.model.kind for r in runs] == [ModelKind.EVALUATION, ModelKind.CANDIDATE]
    assert all(r.finished_at is not None and r.customers == 3 for r in runs)

    monkeypatch.setattr(evaluation, "may_run_in_parallel", lambda: False)
    evaluation.run_all(as_of=H1_2026)
    assert _scores() == parallel
    assert len(parallel) == 6 and EvaluationRun.objects.filter(finished_at__isnull=True).count() == 0


@pytest.mark.django_db(transaction=True)
def test_an_error_in_one_parallel_kind_is_raised_and_the_other_kind_still_finishes(
    purchases, users, monkeypatch
):
    original = evaluation._open_actions

    def broken(*args):
        raise RuntimeError("the improvement actions failed")

    monkeypatch.setattr(evaluation, "_open_actions", broken)
    with pytest.raises(RuntimeError, match="improvement actions failed"):
        evaluation.run_all(as_of=H1_2026)
    monkeypatch.setattr(evaluation, "_open_actions", original)
    # the evaluation's transaction rolled back: no scores of it, its run never finished
    assert not Score.objects.filter(kind=ModelKind.EVALUATION).exists()
    assert not EvaluationRun.objects.filter(model__kind=ModelKind.EVALUATION, finished_at__isnull=False).exists()
    if connection.vendor == "postgresql":  # ran at the same time on its own connection, and committed
        assert Score.objects.filter(kind=ModelKind.CANDIDATE).count() == 3


@pytest.mark.django_db(transaction=True)
def test_the_facts_read_in_two_halves_equal_the_facts_read_at_once(purchases, users, parallel_calls, monkeypatch):
    ids = [p.pk for p in purchases.values()]
    params = {"window_months": 12}
    monkeypatch.setattr(evaluation, "PARALLEL_GATHER", 2)
    halves = evaluation.gather(H1_2026, params, ids)
    assert parallel_calls == ([2] if connection.vendor == "postgresql" else [])
    assert halves == evaluation._gather(H1_2026, params, ids)
    assert sorted(halves) == sorted(ids) and halves[purchases["huashan"].pk].orders == 24


@pytest.mark.django_db
def test_scores_stored_chunk_by_chunk_are_the_scores_stored_at_once(purchases, users, monkeypatch):
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    evaluation.run(ModelKind.CANDIDATE, as_of=H1_2026)
    at_once = _scores()
    Score.objects.all().delete()
    monkeypatch.setattr(evaluation, "SCORE_CHUNK", 1)  # three customers, three chunks per kind
    runs = [evaluation.run(kind, as_of=H1_2026) for kind in (ModelKind.EVALUATION, ModelKind.CANDIDATE)]
    assert [r.customers for r in runs] == [3, 3]
    assert _scores() == at_once


@pytest.mark.django_db
def test_an_incremental_run_takes_more_ids_than_one_statement_may_carry(purchases, users):
    """40,000 ids (SQLite allows 32,766 parameters per statement): one JSON or array parameter carries them."""
    real = [p.pk for p in purchases.values()]
    ids = real + list(range(10_000_000, 10_040_000))
    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, ids=ids)
    assert run.incremental and run.customers == 3
    assert set(Score.objects.filter(kind=ModelKind.EVALUATION).values_list("institution_id", flat=True)) == set(real)
