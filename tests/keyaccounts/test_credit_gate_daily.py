"""The credit gate's daily check (evaluation.sweep_gate, the worker's sweep_credit_gate): the gate was checked only
when a run scored the customer. A debt that aged past the gate's days with nothing imported changed no rollup, so no
update after an import scored the customer again, and it stayed in class A (VIP tier, A's discount level and reward
programme) until the period's next run of every customer. The check finds, in one query over the open items, the
customers whose gate today differs from their score's and evaluates just those again.

华山 buys two orders of ¥40,000 a month from 2025-07 to 2026-06 (the 5th and the 15th, paid ten days later, on time)
and owes SO-OLD, ¥150,000 ordered 2026-03-01, due 2026-03-31, unpaid. On 2026-06-29 it is 90 days overdue: not more
than the gate's 90 days, class A by its score. On 2026-06-30 it is 91 days overdue: above the gate's ¥100,000, class
B. A new system (no period evaluated in full yet): the runs of 2026H1 apply their results (tiers)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts import tasks as ka_tasks
from pharmacrm.keyaccounts.choices import ModelKind, Trigger
from pharmacrm.keyaccounts.models import EvaluationRun, Score

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import line

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
JUNE_29, JUNE_30 = dt.date(2026, 6, 29), dt.date(2026, 6, 30)


@pytest.fixture
def today(monkeypatch):
    """today(date): the product's calendar (timezone.localdate) moved to that date; the clock runs on."""
    real = timezone.localdate

    def move(day: dt.date) -> None:
        monkeypatch.setattr(timezone, "localdate", lambda value=None, tz=None: day if value is None else real(value, tz))

    return move


def orders(prefix: str, customer) -> list[dict]:
    rows = []
    for i in range(12):
        year, month = (2025, 7 + i) if i < 6 else (2026, i - 5)
        for day in (5, 15):
            ordered = dt.date(year, month, day)
            rows.append(line(f"{prefix}-{year}{month:02d}{day}", 1, ordered, customer, "P1", 40, "1000",
                             payment_due=ordered + dt.timedelta(days=30), paid_date=ordered + dt.timedelta(days=10)))  # fmt: skip
    return rows


def old_debt(customer, **paid) -> dict:
    return line("SO-OLD", 1, "2026-03-01", customer, "P9", 1, "150000", payment_due="2026-03-31", **paid)


def score_of(customer) -> Score:
    return Score.objects.get(institution=customer, kind=ModelKind.EVALUATION, period="2026H1")


def tier(customer) -> str:
    return Institution.objects.get(pk=customer.pk).tier


def update_after_import() -> EvaluationRun | None:
    """The worker's update after an import (tasks.evaluate_changed): the customer evaluation's run, if any."""
    runs = evaluation.run_all(trigger=Trigger.IMPORT, incremental=True)
    return next((r for r in runs if r.model.kind == ModelKind.EVALUATION), None)


@pytest.fixture
def class_a_on_29_june(today, import_orders, huashan, xiehe, users):
    """华山 (and 协和, no old debt) imported and evaluated on 29 June: class A, VIP."""
    today(JUNE_29)
    import_orders(orders("SO-H", huashan) + orders("SO-X", xiehe) + [old_debt(huashan)])
    update_after_import()  # the period's first run: everyone
    score = score_of(huashan)
    assert (score.klass, score.gate, tier(huashan)) == ("A", None, "vip")
    assert score_of(xiehe).klass == "A"
    return score


def test_a_debt_ageing_past_the_gates_days_with_nothing_imported_is_capped_by_the_daily_check(
    class_a_on_29_june, today, huashan, xiehe
):
    today(JUNE_30)  # SO-OLD is 91 days overdue: nothing imported, no rollup changed
    assert update_after_import() is None  # the update after an import finds nobody to score again
    assert score_of(huashan).klass == "A"
    xiehe_run = score_of(xiehe).run_id

    assert ka_tasks.sweep_credit_gate.call_local() == 1

    score = score_of(huashan)
    assert (score.klass, score.class_before_gate, score.score) == ("B", "A", class_a_on_29_june.score)
    assert score.gate == {"reason": "amount", "days": 90, "overdue": "150000.00", "limit": "100000.00",
                          "class_before_gate": "A", "class": "B"}  # fmt: skip
    # B's results, as after any run that applies them: discount level, reward programme, tier (audited)
    assert (str(score.discount), score.programme, score.as_of) == ("2.00", "采购额达标奖", JUNE_30)
    assert tier(huashan) == "regular"
    entry = AuditEntry.objects.filter(object_type="customers.institution", object_id=str(huashan.pk)).latest("seq")
    assert entry.changes == {"tier": ["vip", "regular"]}
    assert (entry.extra["reason"], entry.extra["run"], entry.extra["period"]) == ("evaluation", score.run_id, "2026H1")
    done = score.run
    assert (done.trigger, done.incremental, done.customers, done.tier_changes) == (Trigger.GATE, True, 1, 1)
    assert score_of(xiehe).run_id == xiehe_run  # nobody else evaluated again
    # the next night nothing changed: no run
    runs = EvaluationRun.objects.count()
    assert ka_tasks.sweep_credit_gate.call_local() == 0
    assert EvaluationRun.objects.count() == runs


def test_the_check_is_not_the_periods_latest_run_for_the_updates_after_imports(
    class_a_on_29_june, today, import_orders, huashan, xiehe
):
    """An import committed before the check, its update queued behind it (the lock): the update still scores the
    import's customers — the check read nobody else's purchases."""
    today(JUNE_30)
    import_orders([line("SO-X-NEW", 1, "2026-06-30", xiehe, "P1", 10, "1000", payment_due="2026-07-30")])
    assert evaluation.sweep_gate().customers == 1  # 华山's gate
    update = update_after_import()
    assert update is not None and update.customers == 1
    assert score_of(xiehe).run_id == update.pk


def test_a_settled_old_debt_is_uncapped_by_the_update_after_the_payment_import(
    class_a_on_29_june, today, import_orders, huashan, huey_immediate, django_capture_on_commit_callbacks
):
    today(JUNE_30)
    evaluation.sweep_gate()
    assert (score_of(huashan).klass, tier(huashan)) == ("B", "regular")
    # the ERP's file with SO-OLD paid today: its import's update (queued on commit, run by the worker) scores 华山
    with django_capture_on_commit_callbacks(execute=True):
        import_orders([old_debt(huashan, paid_date="2026-06-30")])
    score = score_of(huashan)
    assert (score.klass, score.gate, score.class_before_gate) == ("A", None, "A")
    assert score.run.trigger == Trigger.IMPORT
    assert tier(huashan) == "vip"
    assert evaluation.sweep_gate() is None  # nothing left for the check


def test_a_capped_customer_whose_debts_no_longer_pass_the_gate_is_uncapped_by_the_check(
    class_a_on_29_june, today, huashan
):
    """The other way, without a payment: the gate raised to ¥200,000 (a new version of the model)."""
    today(JUNE_30)
    evaluation.sweep_gate()
    assert score_of(huashan).klass == "B"
    from pharmacrm.core.models import User

    evaluation.save_model(User.objects.get(username="admin"), ModelKind.EVALUATION, {"params": {"gate_amount": 200_000}})
    done = evaluation.sweep_gate()
    assert (done.trigger, done.customers) == (Trigger.GATE, 1)
    score = score_of(huashan)
    assert (score.klass, score.gate, tier(huashan)) == ("A", None, "vip")


def test_no_check_when_the_models_gate_is_off(class_a_on_29_june, today, huashan):
    from pharmacrm.core.models import User

    evaluation.save_model(User.objects.get(username="admin"), ModelKind.EVALUATION, {"params": {"gate_class": ""}})
    today(JUNE_30)
    runs = EvaluationRun.objects.count()
    assert ka_tasks.sweep_credit_gate.call_local() == 0
    assert EvaluationRun.objects.count() == runs
    assert score_of(huashan).klass == "A"


def test_the_check_costs_one_query_over_the_open_items_whatever_the_number_of_customers(
    class_a_on_29_june, today, import_orders, huashan, xiehe, changzheng
):
    today(JUNE_30)
    with CaptureQueriesContext(connection) as one:
        assert evaluation.gate_out_of_date()[0] == [huashan.pk]
    import_orders(orders("SO-C", changzheng) + [
        line("SO-OLD-X", 1, "2026-03-01", xiehe, "P9", 1, "150000", payment_due="2026-03-31"),
        line("SO-OLD-C", 1, "2026-03-01", changzheng, "P9", 1, "150000", payment_due="2026-03-31")])  # fmt: skip
    update_after_import()  # 协和 and 长征 scored today: capped already
    assert {score_of(xiehe).klass, score_of(changzheng).klass} == {"B"}
    Score.objects.filter(institution__in=[xiehe, changzheng]).update(klass="A", gate=None)  # as if scored before
    with CaptureQueriesContext(connection) as three:
        assert sorted(evaluation.gate_out_of_date()[0]) == sorted([huashan.pk, xiehe.pk, changzheng.pk])
    assert len(three) == len(one)
    lines = [q["sql"] for q in three.captured_queries if "sales_orderline" in q["sql"]]
    assert len(lines) == 1 and '"outstanding_fen" > 0' in lines[0]


def test_a_night_when_no_gate_changed_reads_two_totals_per_candidate_not_their_full_facts(
    class_a_on_29_june, today, import_orders, huashan, xiehe
):
    """The check read every candidate's full facts (the customer records, the market influence, the surveys of the
    window, every sum of the rollups) each night to tell whether its gate changed; the gate looks at the window's
    amount and the overdue total alone. Nights when nobody's gate changed — nearly all — cost four queries; the full
    facts are read for the customers whose gate changed only, for the run that scores them."""
    from pharmacrm.keyaccounts.models import MarketInfluence
    from pharmacrm.servicedesk.models import Survey

    today(JUNE_30)
    import_orders([line("SO-OLD-X", 1, "2026-03-01", xiehe, "P9", 1, "150000", payment_due="2026-03-31")])
    update_after_import()  # 协和 scored with its old debt: capped already
    assert evaluation.sweep_gate().customers == 1  # 华山 capped by the check
    assert {score_of(huashan).klass, score_of(xiehe).klass} == {"B"}
    scores = {s.pk: (s.klass, s.gate, s.run_id) for s in Score.objects.all()}
    with CaptureQueriesContext(connection) as night:  # the check (sweep_gate also waits for the rollups' writers)
        assert evaluation.gate_out_of_date() == ([], {})
    assert evaluation.sweep_gate() is None
    selects = [q["sql"] for q in night.captured_queries]
    # the model, the period's scores the gate may concern, the open items, the two candidates' rollup totals
    assert len(selects) == 4, selects
    assert not any(f'"{m._meta.db_table}"' in q for q in selects for m in (MarketInfluence, Survey))
    [rollups] = [q for q in selects if "sales_monthlyrollup" in q]
    assert '"amount_fen"' in rollups and '"overdue_fen"' in rollups
    assert not any(f'"{column}"' in rollups for column in ("on_time_fen", "late_fen", "orders"))
    assert {s.pk: (s.klass, s.gate, s.run_id) for s in Score.objects.all()} == scores  # nothing evaluated again
    # the gate raised above both debts: both gates changed, their full facts are read and they are evaluated again
    from pharmacrm.core.models import User

    evaluation.save_model(User.objects.get(username="admin"), ModelKind.EVALUATION, {"params": {"gate_amount": 200_000}})
    done = evaluation.sweep_gate()
    assert (done.trigger, done.customers) == (Trigger.GATE, 2)
    assert {score_of(huashan).klass, score_of(xiehe).klass} == {"A"}
    assert (score_of(huashan).score, tier(huashan)) == (class_a_on_29_june.score, "vip")


# --- a debt ageing past the gate while a period evaluated in full is in force -------------------------------------
# 2026H1 is evaluated in full on 1 July (华山 class A, VIP); SO-LATE, ¥150,000 ordered 2026-06-01 and due 2026-07-01,
# stays unpaid: on 30 September it is 91 days overdue. The daily check scores the half-year under way, 2026H2, again
# (an interim standing, capped at B) and leaves 2026H1's A — its tier, discount level and reward programme — in force:
# the rulebook (seed 002 七.(二)–(三)) applies each half-year's evaluation and says nothing of capping the class in
# force between evaluations. The pages that show the class in force say that the gate will cap it at the next one.

SEPT_30 = dt.date(2026, 9, 30)
PENDING = "Credit gate now applies: will cap at B at the next evaluation"


@pytest.fixture
def in_force_a_capped_interim(today, import_orders, huashan, xiehe, users):
    today(JUNE_30)
    import_orders(orders("SO-H", huashan) + orders("SO-X", xiehe)
                  + [line("SO-LATE", 1, "2026-06-01", huashan, "P9", 1, "150000", payment_due="2026-07-01")])  # fmt: skip
    today(dt.date(2026, 7, 1))
    evaluation.run(ModelKind.EVALUATION, as_of=JUNE_30)  # the nightly evaluation of the half-year that ended
    evaluation.run(ModelKind.EVALUATION)  # 2026H2's interim standings
    today(SEPT_30)
    done = evaluation.sweep_gate()
    assert (done.period, done.customers, done.tier_changes) == ("2026H2", 1, 0)
    interim = Score.objects.get(institution=huashan, kind=ModelKind.EVALUATION, period="2026H2")
    assert (interim.klass, interim.class_before_gate) == ("B", "A")
    return score_of(huashan), interim


def test_the_class_in_force_is_not_capped_between_evaluations(in_force_a_capped_interim, huashan):
    in_force, _interim = in_force_a_capped_interim
    assert (in_force.klass, in_force.gate, str(in_force.discount), tier(huashan)) == (
        "A",
        None,
        "5.00",
        "vip",
    )


def test_the_customer_block_warns_that_the_gate_will_cap_the_class_in_force(
    in_force_a_capped_interim, huashan, client_for
):
    import re

    from django.urls import reverse

    html = client_for("kam").get(reverse("keyaccounts:eval-panel", args=[huashan.pk]), **EN).content.decode()
    line_in_force = re.sub(
        r"\s+", " ", re.sub(r"<[^>]+>", " ", re.search(r'id="eval-in-force".*?</p>', html, re.S).group(0))
    )
    assert "): A " in line_in_force and PENDING in line_in_force
    assert (
        "2026H2, interim standing: A stays in force, with its tier and discount level, until then."
        in line_in_force
    )
    assert "Class capped at B: ¥150,000.00 overdue more than 90 days (above ¥100,000)." in line_in_force


def test_the_drill_down_and_results_of_the_period_in_force_warn_too(
    in_force_a_capped_interim, huashan, xiehe, client_for
):
    import re

    from django.urls import reverse

    in_force, interim = in_force_a_capped_interim
    c = client_for("analyst")
    page = c.get(reverse("keyaccounts:score", args=[in_force.pk]), **EN).content.decode()
    assert 'id="gate-pending"' in page and PENDING in page
    # the interim standing's own page says it is capped, as any capped score's: no warning about itself
    assert PENDING not in c.get(reverse("keyaccounts:score", args=[interim.pk]), **EN).content.decode()
    results = c.get(
        reverse("keyaccounts:evaluations"), {"period": "2026H1", "klass": "A"}, **EN
    ).content.decode()
    rows = {
        int(m.group(1)): m.group(0)
        for m in re.finditer(r'<tr class="eval-row"[^>]*data-customer="(\d+)".*?</tr>', results, re.S)
    }
    assert PENDING in rows[huashan.pk] and PENDING not in rows[xiehe.pk]
    # the half-year under way's results: the interim standing is the capped one, no warning
    assert (
        PENDING
        not in c.get(
            reverse("keyaccounts:evaluations"), {"period": "2026H2", "klass": "B"}, **EN
        ).content.decode()
    )
