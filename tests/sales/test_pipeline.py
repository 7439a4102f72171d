"""The sales pipeline (销售线索与商机管理): a hand-computed funnel, conversion, win rate, deal size, days to win and
weighted forecast on a small dataset; the stage history; a lost opportunity needs its reason; the customer's lifecycle
stage moved forward, never back; a second rep moving the same opportunity is refused; bad amounts and dates named;
the stale reminder sent once per staleness — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.customers.models import Institution
from pharmacrm.notify.models import Notification
from pharmacrm.sales import pipeline
from pharmacrm.sales.models import Opportunity, OpportunityMove
from tests.conftest import new_user

from .pipeline_world import TODAY, go, make

S = Opportunity.Stage
P = pipeline.Period
Q4 = P("quarter", 2026, 4)


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def test_the_funnel_of_a_quarter_hand_computed(opportunities, users):
    fun = pipeline.funnel(users["manager"], Q4, today=TODAY)
    t = fun.total
    assert t.created == 5 and t.reached == [5, 3, 2, 1, 1]
    assert t.conversions == [Decimal("60.0"), Decimal("66.7"), Decimal("50.0"), Decimal("100.0")]
    assert (t.won, t.lost, t.win_rate) == (2, 2, Decimal("50.0"))
    assert (t.won_amount, t.average_deal, t.average_days_to_win) == (Decimal("110000.00"), Decimal("55000.00"),
                                                                     Decimal("32.0"))  # fmt: skip
    assert fun.lost_reasons == [("competitor", "Lost to a competitor", 1), ("price", "Price", 1)]
    months = {m.key: (m.count, m.amount, m.weighted) for m in fun.forecast}
    assert months["2026-12"] == (1, Decimal("20000.00"), Decimal("5000.00"))  # needs analysis: 25%
    assert months["2027-01"] == (1, Decimal("40000.00"), Decimal("4000.00"))  # lead: 10%
    assert months["overdue"] == (0, Decimal("0.00"), Decimal("0.00"))
    owners = {f.label: f for f in fun.owners}
    rep = owners["rep"]
    assert (rep.created, rep.won, rep.lost, rep.win_rate, rep.won_amount) == (2, 2, 1, Decimal("66.7"),
                                                                              Decimal("110000.00"))  # fmt: skip
    assert owners["kam"].weighted == Decimal("4000.00") and owners["kam"].win_rate is None
    teams = {f.label: f for f in fun.teams}
    assert (teams["华北团队"].created, teams["华北团队"].reached) == (4, [4, 3, 2, 1, 1])
    assert teams["华东团队"].created == 1
    # a month: November created o3, o4; closed o1 (won), o2 (lost)
    nov = pipeline.funnel(users["manager"], P("month", 2026, 11), today=TODAY).total
    assert (nov.created, nov.reached, nov.won, nov.lost, nov.win_rate) == (
        2,
        [2, 1, 0, 0, 0],
        1,
        1,
        Decimal("50.0"),
    )


def test_a_rep_counts_their_own_and_their_teams_opportunities_only(opportunities, pipeline_world):
    fun = pipeline.funnel(pipeline_world["rep"], Q4, today=TODAY)
    assert fun.total.created == 4 and {f.label for f in fun.owners} == {"rep", "rep2"}
    assert pipeline.funnel(pipeline_world["kam"], Q4, today=TODAY).total.created == 1  # leads the East team


def test_the_funnel_costs_the_same_queries_for_few_opportunities_as_for_many(
    opportunities, pipeline_world, users
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def cost() -> int:
        with CaptureQueriesContext(connection) as q:
            pipeline.funnel(users["manager"], Q4, today=TODAY)
        return len(q)

    cost()  # the user's roles, read once
    few = cost()
    for n in range(6):
        other = new_user(f"rep-{n}", Role.REP, teams=(pipeline_world["north"],))
        opp = make(other, pipeline_world["b"], f"more {n}", 1000 + n, dt.date(2026, 11, 10), owner=other)
        go(other, opp, S.LOST if n % 2 else S.NEEDS, lost_reason="budget", today=dt.date(2026, 11, 20))
    assert cost() == few


def test_every_move_is_in_the_history_and_audited(opportunities, pipeline_world):
    o1 = opportunities["o1"]
    moves = list(
        OpportunityMove.objects.filter(opportunity=o1).values_list("from_stage", "to_stage", "by__username")
    )
    assert moves == [("", "lead", "rep"), ("lead", "needs", "rep"), ("needs", "proposal", "rep"),
                     ("proposal", "negotiation", "rep"), ("negotiation", "won", "rep")]  # fmt: skip
    entry = AuditEntry.objects.filter(
        object_type="sales.opportunity", object_id=str(o1.pk), action="update"
    ).latest("id")
    assert entry.changes["stage"] == ["negotiation", "won"] and entry.changes["won_on"] == [
        None,
        "2026-11-09",
    ]
    created = AuditEntry.objects.get(object_type="sales.opportunity", object_id=str(o1.pk), action="create")
    assert created.changes["amount"] == [None, "100000.00"] and created.changes["owner"] == [
        None,
        pipeline_world["rep"].pk,
    ]
    history = pipeline.time_in_stage(Opportunity.objects.get(pk=o1.pk), list(o1.moves.all()))
    assert [h["to"] for h in history] == ["Lead", "Needs analysis", "Proposal", "Negotiation", "Won"]


def test_a_lost_opportunity_needs_its_reason_and_details_for_other(pipeline_world):
    opp = make(pipeline_world["rep"], pipeline_world["a"], "试用", 5_000, TODAY)
    with pytest.raises(ValidationError) as e:
        go(pipeline_world["rep"], opp, S.LOST)
    assert list(e.value.message_dict) == ["lost_reason"]
    with pytest.raises(ValidationError) as e:
        go(pipeline_world["rep"], opp, S.LOST, lost_reason="other")
    assert list(e.value.message_dict) == ["lost_note"]
    assert Opportunity.objects.get(pk=opp.pk).stage == S.LEAD  # nothing half-written
    go(pipeline_world["rep"], opp, S.LOST, lost_reason="other", lost_note="科室合并")
    opp.refresh_from_db()
    assert (opp.stage, opp.lost_reason, opp.lost_note, opp.closed_on is not None) == (
        S.LOST,
        "other",
        "科室合并",
        True,
    )


def test_the_customers_lifecycle_stage_moves_forward_never_back(pipeline_world):
    a = pipeline_world["a"]
    assert a.stage == "potential"
    opp = make(pipeline_world["rep"], a, "新客户", 8_000, TODAY)
    assert Institution.objects.get(pk=a.pk).stage == "intent"
    go(pipeline_world["rep"], opp, S.PROPOSAL)
    assert Institution.objects.get(pk=a.pk).stage == "decision"
    entry = AuditEntry.objects.filter(object_type="customers.institution", object_id=str(a.pk)).latest("id")
    assert entry.changes == {"stage": ["intent", "decision"]} and entry.extra["opportunity"] == opp.pk
    go(pipeline_world["rep"], opp, S.LOST, lost_reason="budget")
    assert Institution.objects.get(pk=a.pk).stage == "decision"  # lost: never backwards
    make(
        pipeline_world["rep"], a, "再来一次", 8_000, TODAY
    )  # a new lead does not move a deciding customer back either
    assert Institution.objects.get(pk=a.pk).stage == "decision"
    won = make(pipeline_world["rep"], a, "签约", 8_000, TODAY, stage=S.NEGOTIATION)
    go(pipeline_world["rep"], won, S.WON)
    assert Institution.objects.get(pk=a.pk).stage == "active"
    Institution.objects.filter(pk=a.pk).update(stage="churned")
    make(pipeline_world["rep"], a, "挽回", 8_000, TODAY)
    assert Institution.objects.get(pk=a.pk).stage == "churned"  # only winning it back makes it active again


def test_a_second_rep_moving_the_same_opportunity_is_refused(pipeline_world):
    opp = make(pipeline_world["rep"], pipeline_world["a"], "同时", 5_000, TODAY)
    seen_by_rep2 = Opportunity.objects.get(pk=opp.pk)  # rep2 (same team) opened it too
    pipeline.move(pipeline_world["rep"], opp, S.NEEDS, opp.version)
    with pytest.raises(pipeline.OpportunityConflict) as e:
        pipeline.move(pipeline_world["rep2"], seen_by_rep2, S.LOST, seen_by_rep2.version, lost_reason="price")
    assert "Needs analysis" in str(e.value) and "nothing was saved" in str(e.value)
    assert Opportunity.objects.get(pk=opp.pk).stage == S.NEEDS
    assert OpportunityMove.objects.filter(opportunity=opp).count() == 2


@pytest.mark.parametrize(("raw", "reason"), [("-5", "cannot be negative"), ("abc", "not a number"),
                                             ("1.234", "two decimal places"), ("", "required")])  # fmt: skip
def test_bad_amounts_are_refused_with_the_reason(raw, reason):
    with pytest.raises(ValidationError) as e:
        pipeline.amount_fen(raw)
    assert reason in " ".join(e.value.messages)


def test_amounts_as_typed():
    assert pipeline.amount_fen("¥1,200,000.50") == 120_000_050
    assert pipeline.amount_fen("１２００") == 120_000


def test_a_won_day_in_the_future_or_before_the_opportunity_is_named(pipeline_world):
    opp = make(pipeline_world["rep"], pipeline_world["a"], "日期", 5_000, dt.date(2026, 11, 1))
    with pytest.raises(ValidationError) as e:
        go(pipeline_world["rep"], opp, S.WON, won_on=dt.date(2026, 12, 6), today=TODAY)
    assert list(e.value.message_dict) == ["won_on"]
    with pytest.raises(ValidationError) as e:
        go(pipeline_world["rep"], opp, S.WON, won_on=dt.date(2026, 10, 1), today=TODAY)
    assert "before the opportunity was created" in e.value.message_dict["won_on"][0]


def test_a_rep_gives_opportunities_to_themselves_or_their_team_only(pipeline_world):
    with pytest.raises(ValidationError) as e:
        pipeline.create(pipeline_world["rep"], {"institution": pipeline_world["a"], "title": "给别人", "amount_fen": 100,
                                       "close_date": TODAY, "owner": pipeline_world["kam"], "team": pipeline_world["east"]})  # fmt: skip
    assert list(e.value.message_dict) == ["owner"]
    opp = pipeline.create(
        pipeline_world["rep"],
        {"institution": pipeline_world["b"], "title": "乙的", "amount_fen": 100, "close_date": TODAY},
    )
    assert (opp.owner, opp.team) == (
        pipeline_world["rep2"],
        pipeline_world["north"],
    )  # the customer's owner and team by default


def test_the_stale_reminder_is_sent_once_per_staleness(pipeline_world):
    rep = pipeline_world["rep"]
    opp = make(rep, pipeline_world["a"], "跟进", 5_000, dt.date(2026, 11, 1), close=dt.date(2026, 12, 31),
               next_step="拜访主任", next_step_date=dt.date(2026, 12, 1))  # fmt: skip
    make(rep, pipeline_world["a"], "未过期", 5_000, dt.date(2026, 11, 1), close=dt.date(2026, 12, 31),
         next_step_date=dt.date(2026, 12, 10))  # fmt: skip
    assert pipeline.remind_stale(TODAY) == 1
    notes = Notification.objects.filter(recipient=rep, kind=pipeline.NOTICE_KIND)
    assert notes.count() == 1 and "跟进" in notes.get().body
    assert pipeline.remind_stale(TODAY) == 0
    assert pipeline.remind_stale(TODAY + dt.timedelta(days=1)) == 0  # the next morning: the same staleness
    # the next step set again and passed again: a new staleness, reminded once more
    pipeline.update(
        rep, opp, {"next_step_date": dt.date(2026, 12, 8)}, Opportunity.objects.get(pk=opp.pk).version
    )
    assert pipeline.remind_stale(dt.date(2026, 12, 7)) == 0
    assert (
        pipeline.remind_stale(dt.date(2026, 12, 9)) == 1
    )  # the other one's next step (12-10) not yet passed
    assert notes.count() == 2
    go(rep, opp, S.LOST, lost_reason="timing")
    assert (
        pipeline.remind_stale(dt.date(2027, 1, 5)) == 1
    )  # the other one now (its close date passed); a lost one never


def test_the_reminder_job_is_listed_in_the_operations_docs():
    from pathlib import Path

    from pharmacrm.sales import tasks

    assert callable(tasks.remind_stale_opportunities)
    assert "remind_stale_opportunities" in (Path(__file__).parents[2] / "docs" / "operations.md").read_text()


def test_the_demo_opportunities_look_lived_in_and_are_loaded_once(pipeline_world, users):
    from pharmacrm.sales import demo

    assert demo.load_opportunities(TODAY, count=40) == 40
    opps = list(Opportunity.objects.all())
    stages = {o.stage for o in opps}
    assert {S.WON, S.LOST} <= stages and stages & set(pipeline.OPEN)
    assert all(o.lost_reason for o in opps if o.stage == S.LOST)
    assert any(pipeline.staleness(o, TODAY) for o in opps)
    assert all(o.amount_fen >= 1_000_000 for o in opps)
    assert all(o.created_at.astimezone(pipeline.LOCAL).date() <= (o.won_on or TODAY) for o in opps)
    for o in opps:  # the history leads to the stage it is at, in order of time
        moves = list(o.moves.all())
        assert moves[-1].to_stage == o.stage and moves[0].from_stage == ""
        assert [m.at for m in moves] == sorted(m.at for m in moves)
    fun = pipeline.funnel(users["manager"], P("year", 2026), today=TODAY)
    assert fun.total.won and fun.total.lost and fun.lost_reasons
    assert demo.load_opportunities(TODAY) == 0


def test_the_demo_opportunities_follow_the_demos_scale(pipeline_world):
    # 96 whatever the scale: the test suite's small demos (scale 0.05) paid for a full pipeline each time
    from pharmacrm.sales import demo

    assert demo.opportunity_count(1) == 96 and demo.opportunity_count(0.5) == 48
    assert demo.opportunity_count(0.001) == 2  # the API walk needs two of each list
    assert demo.load_opportunities(TODAY, scale=0.05) == 5 == Opportunity.objects.count()


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_reps_moving_the_same_opportunity_at_once_the_second_is_refused_not_an_error(pipeline_world):
    from tests.concurrency import held_while

    rep, rep2 = pipeline_world["rep"], pipeline_world["rep2"]
    opp = make(rep, pipeline_world["a"], "同时推进", 5_000, TODAY)
    loaded = Opportunity.objects.get(pk=opp.pk)
    outcome = []

    def second():
        try:
            pipeline.move(rep2, loaded, S.LOST, loaded.version, lost_reason="price")
        except pipeline.OpportunityConflict:
            outcome.append("conflict")
        except Exception as e:  # noqa: BLE001 (what the test reports)
            outcome.append(repr(e))
        else:
            outcome.append("moved")

    held_while(lambda: pipeline.move(rep, loaded, S.PROPOSAL, loaded.version), second)
    assert outcome == ["conflict"]
    assert Opportunity.objects.get(pk=opp.pk).stage == S.PROPOSAL
    assert list(OpportunityMove.objects.filter(opportunity=opp).values_list("to_stage", flat=True)) == ["lead", "proposal"]


def test_the_stale_reminder_lists_the_titles_with_each_readers_separator(pipeline_world):
    """The titles were joined with 、 when the notice was sent, in the worker's language: an English reader read
    "甲的、乙的"."""
    rep = pipeline_world["rep"]
    for title in ("Alpha", "Beta"):
        make(rep, pipeline_world["a"], title, 5_000, dt.date(2026, 11, 1), close=dt.date(2026, 12, 31),
             next_step_date=dt.date(2026, 12, 1))  # fmt: skip
    with translation.override("zh-hans"):  # the worker's language
        assert pipeline.remind_stale(TODAY) == 2
    note = Notification.objects.get(recipient=rep, kind=pipeline.NOTICE_KIND)
    with translation.override("en"):
        assert "Alpha, Beta" in note.shown_body and "、" not in note.shown_body
    with translation.override("zh-hans"):
        assert "Alpha、Beta" in note.shown_body
