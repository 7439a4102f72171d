"""The sales pipeline tests' world (tests/sales/test_pipeline*.py): two reps of the North team, the key-account
manager leading the East team, a hospital each, and a small hand-computed set of opportunities."""

from __future__ import annotations

import datetime as dt

import pytest

from pharmacrm.core.models import Team
from pharmacrm.core.roles import Role
from pharmacrm.customers import services as customers
from pharmacrm.sales import pipeline
from pharmacrm.sales.models import Opportunity, OpportunityMove
from tests.conftest import new_user

S = Opportunity.Stage
TODAY = dt.date(2026, 12, 5)


@pytest.fixture
def pipeline_world(users, team_north, beijing, admin_user):
    """The rep and rep2 in the North team; the key-account manager leading the East team. A hospital each."""
    east = Team.objects.create(name="华东团队", lead=users["kam"])
    users["kam"].teams.add(east)
    rep2 = new_user("rep2", Role.REP, teams=(team_north,))

    def hospital(name, owner, team):
        return customers.create_institution(admin_user, {"name": name, "kind": "hospital", "grade": "2A",
                                                         "region": beijing, "owner": owner, "team": team})  # fmt: skip

    return {"rep": users["rep"], "rep2": rep2, "kam": users["kam"], "north": team_north, "east": east,
            "a": hospital("北京甲医院", users["rep"], team_north), "b": hospital("北京乙医院", rep2, team_north),
            "c": hospital("北京丙医院", users["kam"], east)}  # fmt: skip


def make(user, inst, title, yuan, created: dt.date, *, stage=S.LEAD, close=dt.date(2026, 12, 31), **extra):
    opp = pipeline.create(user, {"institution": inst, "title": title, "amount_fen": yuan * 100, "close_date": close,
                                 **extra}, stage=stage)  # fmt: skip
    at = dt.datetime.combine(created, dt.time(10), tzinfo=pipeline.LOCAL)
    Opportunity.objects.filter(pk=opp.pk).update(created_at=at)
    OpportunityMove.objects.filter(opportunity=opp).update(at=at)
    return Opportunity.objects.get(pk=opp.pk)


def go(user, opp, stage, **kw):
    opp = Opportunity.objects.get(pk=opp.pk)
    return pipeline.move(user, opp, stage, opp.version, **kw)


@pytest.fixture
def opportunities(pipeline_world):
    """Q4 2026, hand-computed in the tests below:

    - o1 rep, 甲, ¥100,000, created 10-10, lead → needs → proposal → negotiation → won 11-09 (30 days)
    - o2 rep, 甲, ¥50,000, created 10-20 at proposal, lost 11-15 (price)
    - o3 rep2, 乙, ¥20,000, created 11-01, lead → needs; open, closes 2026-12-20
    - o4 kam, 丙, ¥40,000, created 11-05, lead; open, closes 2027-01-15
    - o5 rep, 甲, ¥10,000, created 2026-09-01 at negotiation (before the quarter), won 10-05 (34 days)
    - o6 rep2, 乙, ¥30,000, created 12-01, lost 12-02 (competitor)
    """
    rep, rep2, kam = pipeline_world["rep"], pipeline_world["rep2"], pipeline_world["kam"]
    o1 = make(rep, pipeline_world["a"], "甲 心内科 新品进院", 100_000, dt.date(2026, 10, 10))
    for stage in (S.NEEDS, S.PROPOSAL, S.NEGOTIATION):
        go(rep, o1, stage)
    go(rep, o1, S.WON, won_on=dt.date(2026, 11, 9))
    o2 = make(rep, pipeline_world["a"], "甲 药剂科 扩量", 50_000, dt.date(2026, 10, 20), stage=S.PROPOSAL)
    go(rep, o2, S.LOST, lost_reason="price", today=dt.date(2026, 11, 15))
    o3 = make(
        rep2, pipeline_world["b"], "乙 骨科 试用", 20_000, dt.date(2026, 11, 1), close=dt.date(2026, 12, 20)
    )
    go(rep2, o3, S.NEEDS)
    o4 = make(
        kam, pipeline_world["c"], "丙 年度协议", 40_000, dt.date(2026, 11, 5), close=dt.date(2027, 1, 15)
    )
    o5 = make(rep, pipeline_world["a"], "甲 补货", 10_000, dt.date(2026, 9, 1), stage=S.NEGOTIATION)
    go(rep, o5, S.WON, won_on=dt.date(2026, 10, 5))
    o6 = make(rep2, pipeline_world["b"], "乙 新科室", 30_000, dt.date(2026, 12, 1))
    go(rep2, o6, S.LOST, lost_reason="competitor", lost_note="竞品降价", today=dt.date(2026, 12, 2))
    return {"o1": o1, "o2": o2, "o3": o3, "o4": o4, "o5": o5, "o6": o6}
