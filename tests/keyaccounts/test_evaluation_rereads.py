"""Two evaluation runs that read the purchases at different moments, and the period the nightly run scores.

协和's purchases are the module docstring's of test_evaluation.py: 36.25 (class D) as of 2026-06-30."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind, Trigger
from pharmacrm.keyaccounts.models import Score
from pharmacrm.sales import rollups
from pharmacrm.sales import services as sales
from pharmacrm.sales.models import MonthlyRollup, OrderLine

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, line

D = Decimal


def _score(institution) -> Score:
    return Score.objects.get(institution=institution, kind=ModelKind.EVALUATION, period="2026H1")


def test_a_hand_run_that_read_the_purchases_first_does_not_put_its_older_score_back(
    purchases, users, import_orders, monkeypatch
):
    """`pharmacrm evaluate --incremental` by hand and the worker's update after an import, at once: the hand run
    read 协和's purchases (with SO-X4), then the import of SO-X5 and the worker's update read and saved the newer
    figures, then the hand run saved what it had read — 协和 was back at the score without SO-X5 until the next
    import. The older reading now leaves the newer score as it is."""
    xiehe = purchases["xiehe"]
    evaluation.run_all(as_of=H1_2026)
    import_orders([line("SO-X4", 1, "2026-06-10", xiehe, "P1", 100, "1000", payment_due="2026-07-10",
                        paid_date="2026-07-01")])  # fmt: skip
    read = evaluation.gather
    interleaved = []

    def read_then_the_worker_runs(*args, **kwargs):
        facts = read(*args, **kwargs)
        if not interleaved:  # the hand run has read; the next import and the worker's update go first
            interleaved.append(True)
            import_orders([line("SO-X5", 1, "2026-06-12", xiehe, "P1", 200, "1000", payment_due="2026-07-12",
                                paid_date="2026-07-02")])  # fmt: skip
            evaluation.run_all(trigger=Trigger.IMPORT, incremental=True, as_of=H1_2026)
            interleaved.append(_score(xiehe).score)
        return facts

    monkeypatch.setattr(evaluation, "gather", read_then_the_worker_runs)
    by_hand = evaluation.run_all(incremental=True, as_of=H1_2026)
    monkeypatch.setattr(evaluation, "gather", read)

    worker_score = interleaved[1]
    assert worker_score != D("41.01")  # 41.01: with SO-X4 and without SO-X5 (test_evaluation.py)
    assert _score(xiehe).score == worker_score
    assert next(r for r in by_hand if r.model.kind == ModelKind.EVALUATION).customers == 0
    # and it is the score of every line imported: a full run now gives the same
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    assert _score(xiehe).score == worker_score


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_connections_the_hand_run_reading_first_and_committing_last_keeps_the_newer_score(
    purchases, users, import_orders, monkeypatch
):
    """The same on two connections, as in production: the hand run (its own thread) has read the purchases and
    waits; the import of SO-X5 and the worker's update commit; then the hand run writes. 协和 keeps the worker's
    score."""
    import threading

    from django.db import connection

    xiehe = purchases["xiehe"]
    evaluation.run_all(as_of=H1_2026)
    import_orders([line("SO-X4", 1, "2026-06-10", xiehe, "P1", 100, "1000", payment_due="2026-07-10",
                        paid_date="2026-07-01")])  # fmt: skip
    read, has_read, go = evaluation.gather, threading.Event(), threading.Event()

    def read_then_wait(*args, **kwargs):
        facts = read(*args, **kwargs)
        if threading.current_thread().name == "by-hand" and not has_read.is_set():
            has_read.set()
            go.wait(30)
        return facts

    monkeypatch.setattr(evaluation, "gather", read_then_wait)
    results: dict = {}

    def by_hand():
        try:
            results["runs"] = evaluation.run_all(incremental=True, as_of=H1_2026)
        except Exception as e:  # noqa: BLE001  (reported below)
            results["error"] = e
        finally:
            connection.close()

    hand = threading.Thread(target=by_hand, name="by-hand")
    hand.start()
    assert has_read.wait(30)
    import_orders([line("SO-X5", 1, "2026-06-12", xiehe, "P1", 200, "1000", payment_due="2026-07-12",
                        paid_date="2026-07-02")])  # fmt: skip
    evaluation.run_all(trigger=Trigger.IMPORT, incremental=True, as_of=H1_2026)  # the worker's update
    worker_score = _score(xiehe).score
    go.set()
    hand.join(60)

    assert "error" not in results, results.get("error")
    assert worker_score != D("44.01")
    assert _score(xiehe).score == worker_score


def test_a_newer_score_keeps_its_customer_when_an_older_reading_found_no_purchases(
    purchases, users, import_orders, monkeypatch
):
    """The older reading's removals wait the same way: a run that read the purchases before 协和's came in (no
    facts of 协和) does not delete the score that a later run computed from them."""
    xiehe = purchases["xiehe"]
    evaluation.run_all(as_of=H1_2026)
    read = evaluation.gather
    later = []

    def read_without_xiehe_then_a_later_run(*args, **kwargs):
        facts = read(*args, **kwargs)
        facts.pop(xiehe.pk, None)  # as read before 协和's lines were imported
        if not later:
            later.append(True)
            monkeypatch.setattr(evaluation, "gather", read)
            evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
        return facts

    started = evaluation.settled_moment()
    monkeypatch.setattr(evaluation, "gather", read_without_xiehe_then_a_later_run)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, started=started)

    assert _score(xiehe).score == D("36.25")


def test_the_nightly_run_on_1_july_evaluates_the_first_half_year_just_ended(purchases, users):
    """The worker's check on 1 July scored "2026H2" over the 12 months up to 1 July (one day of the second half),
    and no scheduled run ever evaluated the first half-year once it was complete. It now evaluates 2026H1 as of
    30 June (and the key accounts' 2026Q2, the identification's 2026-06), once."""
    xiehe = purchases["xiehe"]
    # an update after an import in June read the half-year while it was still under way: it does not count
    evaluation.run(ModelKind.EVALUATION, as_of=dt.date(2026, 6, 15))

    runs = evaluation.scheduled(dt.date(2026, 7, 1))

    assert [(r.model.kind, r.period, r.as_of) for r in runs] == [
        (ModelKind.EVALUATION, "2026H1", H1_2026), (ModelKind.EVALUATION, "2026Q2", H1_2026),
        (ModelKind.CANDIDATE, "2026-06", H1_2026),
    ]  # fmt: skip
    assert all(r.trigger == Trigger.SCHEDULE for r in runs)
    assert _score(xiehe).score == D("36.25")  # the module docstring's 2026H1, by hand
    assert not Score.objects.filter(period__in=["2026H2", "2026Q3", "2026-07"]).exists()
    # once: the next nights of July find it done
    assert evaluation.scheduled(dt.date(2026, 7, 2)) == []
    # on 1 August the identification of July is due, nothing else
    assert [r.period for r in evaluation.scheduled(dt.date(2026, 8, 1))] == ["2026-07"]


def _current(institution) -> Score:
    return Score.objects.get(
        institution=institution, kind=ModelKind.EVALUATION, period=evaluation.current_period(ModelKind.EVALUATION,
                                                                                               timezone.localdate())
    )


def test_a_line_removed_by_hand_is_no_longer_scored_once_the_removal_is_committed(
    purchases, users, admin_user, huey_immediate, django_capture_on_commit_callbacks
):
    """An administrator removes 协和's May order (SO-X3, cancelled in the ERP): its rollup was recomputed, but the
    evaluation went on counting the 50,000 until the next import named 协和. The removal now queues the update
    an import queues."""
    xiehe = purchases["xiehe"]
    evaluation.run_all()
    before = _current(xiehe)
    with django_capture_on_commit_callbacks(execute=True):
        sales.remove_line(admin_user, OrderLine.objects.get(order_number="SO-X3"), "cancelled in the ERP")

    after = _current(xiehe)
    assert after.run_id != before.run_id and after.score != before.score
    evaluation.run(ModelKind.EVALUATION)  # a full run agrees
    assert _current(xiehe).score == after.score


def test_rollups_the_worker_recomputes_are_scored_again(
    purchases, users, huey_immediate, django_capture_on_commit_callbacks
):
    """The worker's refresh of dirty rollups (a killed import's months, the upgrade that merged full-width order
    numbers) recomputed the amounts, and the evaluation kept the old ones until the next import."""
    from pharmacrm.sales import tasks

    xiehe = purchases["xiehe"]
    evaluation.run_all()
    before = _current(xiehe)
    gone = OrderLine.objects.get(order_number="SO-X3")
    rollups.mark_dirty([(gone.institution_id, gone.month)])
    gone.delete()  # as the upgrade removes a line merged into another

    with django_capture_on_commit_callbacks(execute=True):  # the worker's task runs outside a transaction
        tasks.refresh_dirty_rollups.call_local()
    assert not MonthlyRollup.objects.filter(institution=xiehe, month=gone.month).exists()

    after = _current(xiehe)
    assert after.run_id != before.run_id and after.score != before.score
    evaluation.run(ModelKind.EVALUATION)
    assert _current(xiehe).score == after.score


def test_a_merged_customers_purchases_are_scored_with_the_survivor_once_merged(
    purchases, users, admin_user, huey_immediate, django_capture_on_commit_callbacks
):
    """华山 turns out to be a duplicate of 协和: its orders moved to 协和 and the rollups were recomputed, but 协和
    kept its score without them until the next import that named it."""
    from pharmacrm.customers import services as customers

    xiehe, huashan = purchases["xiehe"], purchases["huashan"]
    evaluation.run_all()
    before = _current(xiehe)
    with django_capture_on_commit_callbacks(execute=True):
        customers.merge(admin_user, xiehe, huashan)

    after = _current(xiehe)
    assert after.run_id != before.run_id and after.score > before.score
    evaluation.run(ModelKind.EVALUATION)
    assert _current(xiehe).score == after.score
