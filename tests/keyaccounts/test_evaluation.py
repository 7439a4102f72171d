"""Evaluation runs over real monthly rollups (orders imported through the ERP import): the scores of
hand-computed customers, re-runs, history and movement across periods, tier changes and their audit,
improvement actions, the incremental run, and the key-account identification.

Hand computation (default evaluation model: amount 35, frequency 20, satisfaction 20, credit 25; no surveys,
so satisfaction is the default 60 → 12.00 for everyone):

2025H2 (as of 2025-12-31, window 2025-01 … 2025-12)
  协和  200,000 → 20.00 × 0.35 = 7.00; 2 orders → 8.33 × 0.2 = 1.67; credit all on time → 100 × 0.25 = 25.00
        → 7.00 + 1.67 + 12.00 + 25.00 = 45.67 → C
  华山  480,000 → 48 × 0.35 = 16.80; 12 orders → 50 × 0.2 = 10.00; credit 25.00 → 63.80 → B
2026H1 (as of 2026-06-30, window 2025-07 … 2026-06)
  协和  250,000 → 25 × 0.35 = 8.75; 3 orders → 12.5 × 0.2 = 2.50; credit: due 100,000 on time + 100,000 late
        + 50,000 overdue = 250,000 → on time 40 % → 0.7 × 40 = 28; overdue 50,000 / 250,000 = 20 %
        → 0.3 × 80 = 24 → 52 × 0.25 = 13.00 → 8.75 + 2.50 + 12.00 + 13.00 = 36.25 → D
  华山  960,000 → 96 × 0.35 = 33.60; 24 orders → 100 × 0.2 = 20.00; credit 25.00 → 90.60 → A"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import EvaluationRun, Score
from pharmacrm.servicedesk.models import ImprovementAction

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, H2_2025, line, xiehe_orders

D = Decimal


def scores(kind=ModelKind.EVALUATION, period=None) -> dict[str, Score]:
    qs = Score.objects.filter(kind=kind).select_related("institution")
    if period:
        qs = qs.filter(period=period)
    return {s.institution.name: s for s in qs}


def parts(score: Score) -> dict[str, tuple[str, str]]:
    return {c["name"]: (c["value"], c["contribution"]) for c in score.components}


def test_the_evaluation_scores_customers_as_computed_by_hand(purchases, users):
    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)

    assert (run.period, run.customers) == ("2026H1", 3)
    got = scores(period="2026H1")
    xiehe = got["北京协和医院"]
    assert parts(xiehe) == {
        "amount": ("25.00", "8.75"), "frequency": ("12.50", "2.50"), "satisfaction": ("60.00", "12.00"),
        "credit": ("52.00", "13.00"),
    }  # fmt: skip
    assert (xiehe.score, xiehe.klass) == (D("36.25"), "D")
    detail = {c["name"]: c["detail"] for c in xiehe.components}
    assert detail["frequency"] == {"orders": 3, "reference": 24, "months": 12}
    assert detail["credit"] == {"on_time_share": "0.4000", "overdue": "50000.00"}
    huashan = got["复旦大学附属华山医院"]
    assert parts(huashan) == {
        "amount": ("96.00", "33.60"), "frequency": ("100.00", "20.00"), "satisfaction": ("60.00", "12.00"),
        "credit": ("100.00", "25.00"),
    }  # fmt: skip
    assert (huashan.score, huashan.klass, huashan.discount, huashan.programme) == (
        D("90.60"), "A", D("5.00"), "年度优秀客户奖")  # fmt: skip
    for s in got.values():
        assert sum(D(c["contribution"]) for c in s.components) == s.score


def test_history_is_kept_per_period_and_movement_is_recorded(purchases, users):
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)

    before, now = scores(period="2025H2"), scores(period="2026H1")
    assert (before["北京协和医院"].score, before["北京协和医院"].klass) == (D("45.67"), "C")
    assert (before["复旦大学附属华山医院"].score, before["复旦大学附属华山医院"].klass) == (D("63.80"), "B")
    assert before["北京协和医院"].previous_klass == ""  # the first period: no movement to show
    # 协和 fell from C to D, 华山 rose from B to A
    assert (now["北京协和医院"].previous_klass, now["北京协和医院"].previous_score) == ("C", D("45.67"))
    assert (now["复旦大学附属华山医院"].previous_klass, now["复旦大学附属华山医院"].klass) == ("B", "A")
    xiehe = purchases["xiehe"]
    assert list(Score.objects.filter(institution=xiehe, kind="evaluation").order_by("period")
                .values_list("period", "klass")) == [("2025H2", "C"), ("2026H1", "D")]  # fmt: skip


def test_a_rerun_replaces_the_periods_scores(purchases, users):
    first = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    second = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)

    assert Score.objects.filter(kind="evaluation", period="2026H1").count() == 3
    assert set(Score.objects.values_list("run_id", flat=True)) == {second.pk}
    assert first.pk != second.pk


def test_tier_changes_are_applied_and_audited_but_never_for_a_key_account(purchases, users):
    huashan, changzheng = purchases["huashan"], purchases["changzheng"]
    assert huashan.tier == changzheng.tier == "new"

    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)  # B → regular
    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)  # A → vip

    assert Institution.objects.get(pk=huashan.pk).tier == "vip"
    entries = AuditEntry.objects.filter(object_type="customers.institution", object_id=str(huashan.pk),
                                        extra__reason="evaluation").order_by("seq")  # fmt: skip
    assert [e.changes for e in entries] == [{"tier": ["new", "regular"]}, {"tier": ["regular", "vip"]}]
    assert entries.last().extra["period"] == "2026H1" and entries.last().extra["run"] == run.pk
    assert {e.object_repr for e in entries} == {"复旦大学附属华山医院"}  # the auditor reads a name, not a blank
    # the key account has 华山's purchases (class A too) but its tier is the programme's
    assert Score.objects.get(institution=changzheng, period="2026H1").klass == "A"
    assert Institution.objects.get(pk=changzheng.pk).tier == "new"
    assert not AuditEntry.objects.filter(object_id=str(changzheng.pk), extra__reason="evaluation").exists()


def test_an_improvement_action_opens_once_for_a_customer_that_fell_to_d(purchases, users):
    xiehe = purchases["xiehe"]
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)
    assert not ImprovementAction.objects.filter(institution=xiehe).exists()  # C: no action

    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    again = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)

    actions = list(ImprovementAction.objects.filter(institution=xiehe))
    assert len(actions) == 1 and (run.actions, again.actions) == (1, 0)
    action = actions[0]
    assert action.title.endswith("[2026H1]") and "D" in action.title
    assert action.owner == users["kam"]  # no owner or team: the first key-account manager
    assert action.due_date == timezone.localdate() + dt.timedelta(days=evaluation.ACTION_DAYS)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_evaluation_runs_at_once_open_one_improvement_action(purchases, users):
    """The half-yearly run (`pharmacrm evaluate`) and the key accounts' quarterly run (the worker) at the same
    moment: both found 协和 (a key account in class D) without an open action, and it got two. The second run
    now waits for the first to finish and finds its action open."""
    from pharmacrm.keyaccounts.choices import AccountStatus
    from pharmacrm.keyaccounts.models import KeyAccount
    from tests.concurrency import held_while

    xiehe = purchases["xiehe"]
    KeyAccount.objects.create(number="KA-2025-0002", institution=xiehe, status=AccountStatus.ACTIVE)
    evaluation.active_model(ModelKind.EVALUATION)  # in force before either run, as on a running system
    runs = []
    held_while(
        lambda: runs.append(evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)),
        lambda: runs.append(evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, key_accounts_only=True)),
    )
    assert sorted(r.period for r in runs) == ["2026H1", "2026Q2"]
    assert Score.objects.get(institution=xiehe, period="2026Q2").klass == "D"
    assert ImprovementAction.objects.filter(institution=xiehe).count() == 1
    assert sorted(r.actions for r in runs) == [0, 1]


def test_a_model_saved_while_the_facts_are_read_counts_from_the_next_run(purchases, users, monkeypatch):
    """`pharmacrm evaluate` reads the facts of both kinds at once for the window of their models; a manager saving a
    6-month window meanwhile had the run score 12 months of purchases with the new model: 协和's 250,000 was
    explained as bought "over 6 months" and a hand computation of either window contradicted the score. The run
    now scores with the model it read the facts for; the next one with the new version."""
    xiehe = purchases["xiehe"]
    evaluation.active_model(ModelKind.EVALUATION)
    evaluation.active_model(ModelKind.CANDIDATE)
    read = evaluation.gather

    def read_while_a_manager_saves(*args, **kwargs):
        facts = read(*args, **kwargs)
        evaluation.save_model(users["manager"], ModelKind.EVALUATION, {"params": {"window_months": 6}})
        return facts

    monkeypatch.setattr(evaluation, "gather", read_while_a_manager_saves)
    evaluation.run_all(as_of=H1_2026)
    monkeypatch.setattr(evaluation, "gather", read)

    score = Score.objects.get(institution=xiehe, kind=ModelKind.EVALUATION, period="2026H1")
    amount = next(c for c in score.components if c["name"] == "amount")
    assert (score.model.version, amount["detail"]["amount"], amount["detail"]["months"]) == (1, "250000.00", 12)
    assert score.score == D("36.25")  # as computed by hand for the 12 months (module docstring)
    # the next run, with version 2: January to June 2026 only (SO-X2 100,000 and SO-X3 50,000)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    score = Score.objects.get(institution=xiehe, kind=ModelKind.EVALUATION, period="2026H1")
    amount = next(c for c in score.components if c["name"] == "amount")
    assert (score.model.version, amount["detail"]["amount"], amount["detail"]["months"]) == (2, "150000.00", 6)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_run_started_while_a_line_is_removed_does_not_keep_the_old_score(purchases, users, admin_user):
    """An administrator removes 协和's May order (SO-X3, 50,000 unpaid) while "Run now" starts: the run read the
    rollups without the removal, and the incremental update after it looked only at what changed since the
    run's start, which the removal's rollup (stamped before, committed after) was not. 协和 kept 36.25 until the
    next full run. The run now starts once the removal is committed and reads it.

    Without SO-X3: 200,000 → 7.00; 2 orders → 1.67; satisfaction 12.00; credit: 100,000 on time and 100,000
    late → 0.7 × 50 + 0.3 × 100 = 65 → 16.25; 36.92."""
    from pharmacrm.sales import services as sales
    from pharmacrm.sales.models import OrderLine
    from tests.concurrency import held_while

    xiehe = purchases["xiehe"]
    evaluation.active_model(ModelKind.EVALUATION)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    line_x3 = OrderLine.objects.get(order_number="SO-X3")
    held_while(
        lambda: sales.remove_line(admin_user, line_x3, "cancelled in the ERP"),
        lambda: evaluation.run(ModelKind.EVALUATION, as_of=H1_2026),
    )
    evaluation.run_all(incremental=True, as_of=H1_2026)  # the update after the removal

    score = Score.objects.get(institution=xiehe, kind=ModelKind.EVALUATION, period="2026H1")
    assert score.score == D("36.92")


def test_the_incremental_run_rescores_only_customers_whose_purchases_changed(purchases, users, import_orders):
    full = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    before = {s.institution_id: (s.run_id, s.score) for s in Score.objects.filter(period="2026H1")}
    huashan, xiehe = purchases["huashan"], purchases["xiehe"]

    # 协和 orders another 100,000 in June 2026, paid on time in July (after the as-of day)
    import_orders([line("SO-X4", 1, "2026-06-10", xiehe, "P1", 100, "1000", payment_due="2026-07-10",
                        paid_date="2026-07-01")])  # fmt: skip
    runs = evaluation.run_all(incremental=True, as_of=H1_2026)

    incremental = next(r for r in runs if r.model.kind == ModelKind.EVALUATION)
    assert incremental.incremental and incremental.customers == 1 and incremental.pk != full.pk
    after = {s.institution_id: (s.run_id, s.score) for s in Score.objects.filter(period="2026H1")}
    assert after[huashan.pk] == before[huashan.pk]  # untouched
    # 协和 now: 350,000 → 35 × 0.35 = 12.25; 4 orders → 16.67 × 0.2 = 3.33; credit as of 2026-06-30, when SO-X4
    # was neither paid nor due: due 250,000 of which 100,000 on time (40 %) → 28.00; overdue 50,000 / 350,000 =
    # 14.29 % → 0.3 × 85.71 = 25.71 → 53.71 × 0.25 = 13.43 → 12.25 + 3.33 + 12.00 + 13.43 = 41.01 (44.01 when the
    # run counted July's payment, today's state, as paid on time by 30 June)
    assert after[xiehe.pk] == (incremental.pk, D("41.01"))


def test_the_update_of_both_kinds_reads_the_changed_customers_once(purchases, users, import_orders):
    """Both kinds' latest runs, run together, started at the same moment: the customers changed since are read once
    (one pass over the rollups' updated_at index), and each kind re-scores exactly them."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    evaluation.run_all(as_of=H1_2026)
    xiehe = purchases["xiehe"]
    import_orders([line("SO-X4", 1, "2026-06-10", xiehe, "P1", 100, "1000", payment_due="2026-07-10",
                        paid_date="2026-07-01")])  # fmt: skip
    with CaptureQueriesContext(connection) as queries:
        runs = evaluation.run_all(incremental=True, as_of=H1_2026)
    changed = [q for q in queries if "sales_monthlyrollup" in q["sql"] and '"updated_at" >=' in q["sql"]]
    assert len(changed) == 1
    assert sorted((r.model.kind, r.customers) for r in runs) == [(ModelKind.CANDIDATE, 1), (ModelKind.EVALUATION, 1)]
    assert Score.objects.get(institution=xiehe, kind=ModelKind.EVALUATION, period="2026H1").score == D("41.01")


def test_the_update_after_an_import_that_finds_an_evaluation_running_is_run_again_later(
    purchases, import_orders, huey_immediate, django_capture_on_commit_callbacks
):
    """The worker re-scores the customers an import changed; with two workers, an import finishing while another
    evaluation held the worker's lock had its update dropped ("not run"), and its customers kept their old scores
    until the next import. The update is now tried again a little later."""
    from huey.contrib.djhuey import lock_task

    xiehe = purchases["xiehe"]
    evaluation.run(ModelKind.EVALUATION)
    before = Score.objects.get(kind=ModelKind.EVALUATION, institution=xiehe)
    day = timezone.localdate() - dt.timedelta(days=20)
    with lock_task("keyaccounts-evaluate"), django_capture_on_commit_callbacks(execute=True):  # another run
        import_orders([line("SO-X9", 1, day, xiehe, "P1", 100, "1000", payment_due=day, paid_date=day)])
    assert Score.objects.get(pk=before.pk).run_id == before.run_id  # not yet: the lock was held

    # what the consumer's scheduler does once the retry is due
    due = max((task.eta for task in huey_immediate.scheduled()), default=None)
    assert due is not None
    for task in huey_immediate.read_schedule(due):
        huey_immediate.execute(task, timestamp=due)

    after = Score.objects.get(kind=ModelKind.EVALUATION, institution=xiehe, period=before.period)
    assert after.run_id != before.run_id and after.score > before.score


def test_a_back_dated_run_does_not_hide_changes_from_the_next_incremental_update(purchases, import_orders):
    """The incremental update scores the customers whose purchases changed since the last run of the period
    in force. A run of a past period in between (history only) does not count as that run."""
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    xiehe = purchases["xiehe"]
    import_orders([line("SO-X5", 1, "2026-06-12", xiehe, "P1", 100, "1000", payment_due="2026-07-12",
                        paid_date="2026-07-01")])  # fmt: skip
    past = evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)  # after the import, of 2025H2
    assert past.period == "2025H2" and past.later_period == "2026H1"
    assert evaluation.changed_since(ModelKind.EVALUATION, H1_2026) == [xiehe.pk]

    runs = evaluation.run_all(incremental=True, as_of=H1_2026)
    incremental = next(r for r in runs if r.model.kind == ModelKind.EVALUATION)
    assert incremental.period == "2026H1" and incremental.customers == 1
    assert Score.objects.get(period="2026H1", institution=xiehe).score == D("41.01")  # as SO-X4's just above
    # a period nobody scored yet: the update scores everyone
    assert evaluation.changed_since(ModelKind.EVALUATION, dt.date(2026, 7, 1)) is None


def test_the_incremental_run_rescores_the_customer_a_corrected_file_took_lines_from(purchases, users, import_orders):
    """A corrected file gives 协和's May 2026 order to 华山: 协和's May rollup is deleted, not updated, and
    the incremental update must still re-score 协和 (it kept its overdue order's score before)."""
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    xiehe, huashan = purchases["xiehe"], purchases["huashan"]
    before = Score.objects.get(period="2026H1", institution=xiehe).score
    import_orders([line("SO-X3", 1, "2026-05-20", huashan, "P3", 100, "500", payment_due="2026-06-20")])

    assert evaluation.changed_since(ModelKind.EVALUATION, H1_2026) == sorted([xiehe.pk, huashan.pk])
    runs = evaluation.run_all(incremental=True, as_of=H1_2026)
    incremental = next(r for r in runs if r.model.kind == ModelKind.EVALUATION)
    assert incremental.customers == 2
    rescored = Score.objects.get(period="2026H1", institution=xiehe)
    assert rescored.run_id == incremental.pk and rescored.score != before
    # the same figures a full run gives
    incremental_scores = {s.institution_id: s.score for s in Score.objects.filter(period="2026H1")}
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    assert {s.institution_id: s.score for s in Score.objects.filter(period="2026H1")} == incremental_scores


def test_a_customer_left_without_purchases_loses_its_score(purchases, users, import_orders):
    """Every order of 协和 was 华山's (a corrected file): 协和 bought nothing, so it is no longer scored or
    ranked, by the incremental update as by a full run."""
    xiehe, huashan = purchases["xiehe"], purchases["huashan"]
    for kind in (ModelKind.EVALUATION, ModelKind.CANDIDATE):
        evaluation.run(kind, as_of=H1_2026)
    assert Score.objects.filter(institution=xiehe).count() == 2
    import_orders([{**row, "credit_code": huashan.credit_code} for row in xiehe_orders(xiehe)])

    evaluation.run_all(incremental=True, as_of=H1_2026)

    assert not Score.objects.filter(institution=xiehe).exists()
    assert Score.objects.filter(institution=huashan).count() == 2
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)  # a full run agrees
    assert set(Score.objects.filter(kind="evaluation", period="2026H1").values_list("institution_id", flat=True)) == {
        huashan.pk, purchases["changzheng"].pk}


def test_candidates_exclude_active_key_accounts(purchases, users):
    run = evaluation.run(ModelKind.CANDIDATE, as_of=H1_2026)

    assert run.period == "2026-06"
    got = scores(ModelKind.CANDIDATE)
    # 华山: amount 96 × 0.30 = 28.80; frequency 100 × 0.15 = 15.00; cooperation 12 / 60 = 20 × 0.15 = 3.00;
    # influence 0.5 × 100 (3A) + 0.2 × 100 (1500 beds) + 0.15 × 100 (5 specialties) + 0 KOLs = 85 × 0.25 = 21.25;
    # growth: nothing the year before → 100 × 0.15 = 15.00 → 83.05 ≥ 70
    huashan = got["复旦大学附属华山医院"]
    assert (huashan.score, huashan.candidate) == (D("83.05"), True)
    # 长征 scores above the threshold too (78.30) but is already a key account
    changzheng = got["上海长征医院"]
    assert changzheng.score == D("78.30") and not changzheng.candidate
    # 协和: 7.50 + 12.50 × 0.15 = 1.875 → 1.88 + 26.67 × 0.15 = 4.00 + 76 × 0.25 = 19.00 + growth +150 % → 100
    # × 0.15 = 15.00 → 47.38
    assert (got["北京协和医院"].score, got["北京协和医院"].candidate) == (D("47.38"), False)
    assert got["北京协和医院"].klass == ""


def test_runs_are_recorded_with_their_model_version(purchases, users):
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, user=users["manager"])
    run = EvaluationRun.objects.get()
    assert run.model.version == 1 and run.finished_at is not None and run.created_by == users["manager"]
