"""Session 17 (issue 5): improvement actions of merged customers; scorecards count the team that served in the
period, not today's."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from pharmacrm.core.roles import Role
from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import evaluation, services
from pharmacrm.keyaccounts.choices import ModelKind, TeamRole
from pharmacrm.keyaccounts.models import Score, TeamMember, TeamTenure
from pharmacrm.servicedesk.models import ImprovementAction

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026
from .programme_fixtures import *  # noqa: F403  (fixtures)


def test_a_weak_customer_merged_away_gets_no_action(purchases, users):
    xiehe, huashan = purchases["xiehe"], purchases["huashan"]
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, apply=False)  # 协和 scored D, nothing applied yet
    assert Score.objects.get(institution=xiehe, period="2026H1").klass == "D"
    Institution.objects.filter(pk=xiehe.pk).update(merged_into=huashan)

    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026, ids=[huashan.pk])  # 协和's D score stays

    assert run.actions == 0 and not ImprovementAction.objects.exists()


def test_a_weak_customer_gets_its_action_with_its_name_and_owner(purchases, users):
    xiehe = purchases["xiehe"]
    Institution.objects.filter(pk=xiehe.pk).update(owner=users["kam"])

    run = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)

    [action] = ImprovementAction.objects.filter(institution=xiehe)
    assert run.actions == 1 and action.owner == users["kam"] and xiehe.name in action.title


# --- scorecards count the team that served in the period ---------------------------------------------------


def test_scorecards_of_a_past_quarter_count_the_team_that_served_then(users, xiehe, staffed, make_user):
    account = staffed(xiehe)  # serving for two years
    period = services.previous_quarter(timezone.localdate())
    start, end = services.period_bounds(period)
    # the expert leaves today: they served the whole past quarter and keep its card
    services.remove_member(users["manager"], TeamMember.objects.get(account=account, user=users["expert"]))
    # a second product expert joins today: the past quarter was not theirs
    newcomer = make_user("expert2", Role.EXPERT)
    services.add_member(users["manager"], account, newcomer, TeamRole.PRODUCT_EXPERT)
    # after-sales left before the quarter began
    TeamTenure.objects.filter(account=account, user=users["aftersales"]).update(end=start - dt.timedelta(days=1))
    TeamMember.objects.filter(account=account, user=users["aftersales"]).delete()

    cards = {c["user"].username: c for c in services.scorecards(period)}

    assert set(cards) == {"kam", "expert", "support"}
    assert [a.pk for a in cards["expert"]["accounts"]] == [account.pk]
    # the quarter running now: the newcomer is in, the expert still counts for the days they served
    today = timezone.localdate()
    current = {c["user"].username for c in services.scorecards(f"{today.year}Q{(today.month - 1) // 3 + 1}")}
    assert current == {"kam", "expert", "expert2", "support"}
