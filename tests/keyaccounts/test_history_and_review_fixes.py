"""Defects from the QA pass (brief H5): scoring a past period again (`pharmacrm evaluate --as-of`) after a
later one changed today's tiers and opened improvement actions; a rep was asked to review a proposal for a
customer outside their territory (404 when they followed the link); the team table linked every member's
name to a work page most readers get 403 on.

The purchases (eval_fixtures): 2025H2 协和 C, 华山 B, 长征 B (a key account); 2026H1 协和 D, 华山 A, 长征 A."""

from __future__ import annotations

import datetime as dt
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import evaluation, services
from pharmacrm.keyaccounts.choices import ModelKind
from pharmacrm.keyaccounts.models import EvaluationRun, Score
from pharmacrm.keyaccounts.views_programme import _inbox
from pharmacrm.notify.models import Notification
from pharmacrm.servicedesk.models import ImprovementAction

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .eval_fixtures import H1_2026, H2_2025
from .programme_fixtures import *  # noqa: F403  (fixtures)

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def tiers(*institutions) -> list[str]:
    return [Institution.objects.get(pk=i.pk).tier for i in institutions]


def every_class_opens_an_action(users) -> None:
    """A model version whose every class asks for an improvement action, so that a run that applies its
    results cannot help opening some."""
    model = evaluation.active_model(ModelKind.EVALUATION)
    benefits = {k: {**(model.benefits.get(k) or {}), "action": True} for k in "ABCD"}
    evaluation.save_model(users["analyst"], ModelKind.EVALUATION, {"benefits": benefits})


# --- 1. a run of a past period fills its history only ------------------------------------------------------------


def test_scoring_a_past_period_again_changes_no_tier_opens_no_action_and_tells_nobody(purchases, users):
    xiehe, huashan, changzheng = purchases["xiehe"], purchases["huashan"], purchases["changzheng"]
    latest = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)  # 华山 A → VIP, 协和 D → regular and an action
    assert latest.later_period is None and latest.tier_changes == 2 and latest.actions == 1
    assert tiers(huashan, xiehe) == ["vip", "regular"]
    every_class_opens_an_action(users)
    actions, notes = ImprovementAction.objects.count(), Notification.objects.count()
    audit_before = AuditEntry.objects.filter(object_type="customers.institution").count()

    past = evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)  # after a late ERP file, say

    assert past.period == "2025H2" and past.later_period == "2026H1"
    assert (past.customers, past.tier_changes, past.actions) == (3, 0, 0)
    # 华山 is B in 2025H2 (regular) but A in the period in force: it stays VIP
    assert tiers(huashan, xiehe, changzheng) == ["vip", "regular", "new"]
    assert AuditEntry.objects.filter(object_type="customers.institution").count() == audit_before
    # no improvement action, though every class now asks for one, and so no notification
    assert ImprovementAction.objects.count() == actions
    assert not ImprovementAction.objects.filter(title__endswith="[2025H2]").exists()
    assert Notification.objects.count() == notes
    # what it is for: the period's history, with its discount levels and programmes, and the movement after it
    h2 = Score.objects.get(kind=ModelKind.EVALUATION, period="2025H2", institution=huashan)
    assert (h2.klass, h2.programme) == ("B", "采购额达标奖")
    h1 = Score.objects.get(kind=ModelKind.EVALUATION, period="2026H1", institution=xiehe)
    assert (h1.klass, h1.previous_klass) == ("D", "C")

    # the period in force, run again, still applies its results (with the new model's actions)
    again = evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    assert again.later_period is None and again.actions == 2  # 华山 and 长征 (A); 协和's D action is open


def test_the_command_says_a_past_period_got_its_history_only(purchases, users):
    from django.utils import translation

    translation.activate("en")  # the command speaks the active language (the conftest puts it back)
    out = StringIO()
    call_command("evaluate", "--as-of", "2026-06-30", stdout=out)
    assert "Customer evaluation 2026H1: 3 customers" in out.getvalue() and "2 tier changes, 1 improvement action" in out.getvalue()
    assert "1 improvement actions" not in out.getvalue()  # one plural per count

    out = StringIO()
    call_command("evaluate", "--as-of", "2025-12-31", stdout=out)
    lines = out.getvalue().splitlines()
    evaluation_line = next(line for line in lines if line.startswith("Customer evaluation 2025H2:"))
    assert evaluation_line.endswith("history only; tiers and actions follow the latest period (2026H1)")
    candidate_line = next(line for line in lines if line.startswith("Key-account identification 2025-12:"))
    assert candidate_line.endswith("history only; the latest period is 2026-06")
    assert Institution.objects.get(pk=purchases["huashan"].pk).tier == "vip"
    assert ImprovementAction.objects.count() == 1


def test_which_period_is_in_force(purchases, users):
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)
    assert evaluation.later_period(ModelKind.EVALUATION, "2025H2") is None  # nothing later yet: it applies
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    today = dt.date(2026, 12, 1)
    assert evaluation.later_period(ModelKind.EVALUATION, "2025H2", today) == "2026H1"
    assert evaluation.later_period(ModelKind.EVALUATION, "2026H1", today) is None
    # a key-account quarter against the half-years, and the other way round
    assert evaluation.later_period(ModelKind.EVALUATION, "2025Q4", today) == "2026H1"
    assert evaluation.later_period(ModelKind.EVALUATION, "2026Q2", today) is None
    staffed_quarter = evaluation.run(ModelKind.EVALUATION, as_of=dt.date(2026, 9, 30), key_accounts_only=True)
    assert staffed_quarter.period == "2026Q3" and staffed_quarter.later_period is None
    # … but a key-account quarter, which evaluates the key accounts alone, never supersedes a half-year: 2026H1
    # stays in force for every customer's tier, and re-running it (a corrected import) applies its results
    assert evaluation.later_period(ModelKind.EVALUATION, "2026H1", today) is None
    assert evaluation.in_force(ModelKind.EVALUATION, today) == "2026H1"
    assert evaluation.later_period(ModelKind.EVALUATION, "2026Q2", today) == "2026Q3"  # a quarter: by the next
    # the current period is always in force: a period that has not begun yet does not count
    assert evaluation.later_period(ModelKind.EVALUATION, "2026H1", dt.date(2026, 6, 30)) is None
    assert evaluation.period_span("2026H2") == (dt.date(2026, 7, 1), dt.date(2026, 12, 31))
    assert evaluation.period_span("2026Q4") == (dt.date(2026, 10, 1), dt.date(2026, 12, 31))
    assert evaluation.period_span("2026-02") == (dt.date(2026, 2, 1), dt.date(2026, 2, 28))


def test_the_results_page_of_a_past_period_says_tiers_and_actions_follow_the_latest(client_for, purchases, users):
    evaluation.run(ModelKind.EVALUATION, as_of=H2_2025)
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    c = client_for("analyst")
    past = c.get("/keyaccounts/evaluations/?period=2025H2", **EN)
    assert past.context["later_period"] == "2026H1"
    assert "A past period: its scores are history. Tiers and improvement actions follow the latest period " \
           "(2026H1)" in text(past)  # fmt: skip
    latest = c.get("/keyaccounts/evaluations/", **EN)
    assert latest.context["later_period"] is None and "A past period" not in text(latest)


def test_run_now_scores_the_current_period_and_applies_it(client_for, purchases, users):
    """The page and the API take no period: "Run now" is the current period, never a past one."""
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)
    client_for("analyst").post("/keyaccounts/evaluations/run/", {"kind": "evaluation"}, **EN)
    run = EvaluationRun.objects.filter(created_by=users["analyst"]).get()
    assert run.period == evaluation.half_year(timezone.localdate())
    assert evaluation.later_period(ModelKind.EVALUATION, run.period) is None


# --- 2. only reviewers who may open the proposal are asked -------------------------------------------------------


def review_notes(proposal) -> set[str]:
    return set(
        Notification.objects.filter(kind="keyaccounts.review", object_id=str(proposal.pk))
        .values_list("recipient__username", flat=True)
    )


def inbox_reviewers(users, proposal) -> set[str]:
    return {name for name, user in users.items() if proposal in _inbox(user)["review"]}


def test_a_rep_is_not_asked_to_review_a_proposal_for_a_customer_outside_their_territory(
    client_for, users, xiehe, ruijin
):
    outside = services.propose(users["analyst"], ruijin, reason="年采购额大")
    reviewers = {"kam", "agent", "support", "aftersales", "pv", "expert"}  # the proposer (analyst) is not told
    assert review_notes(outside) == reviewers
    assert review_notes(outside) == inbox_reviewers(users, outside) - {"analyst"}
    rep = client_for("rep")
    assert rep.get(f"/keyaccounts/proposals/{outside.pk}/").status_code == 404  # what the rep was sent to

    inside = services.propose(users["analyst"], xiehe, reason="区域影响力强")  # Beijing: the North team's
    assert review_notes(inside) == reviewers | {"rep"}
    assert review_notes(inside) == inbox_reviewers(users, inside) - {"analyst"}
    assert rep.get(f"/keyaccounts/proposals/{inside.pk}/", **EN).status_code == 200
    assert Notification.objects.get(recipient=users["rep"], object_id=str(inside.pk)).url == \
        f"/keyaccounts/proposals/{inside.pk}/"  # fmt: skip


def test_reviewers_by_owner_team_or_territory_and_inactive_ones(make_user, users, ruijin, team_north):
    from pharmacrm.core.models import Region, Team

    shanghai_team = Team.objects.create(name="华东团队")
    shanghai_team.territory.add(Region.objects.get(code="310000"))  # the province
    make_user("rep_east", Role.REP, teams=[shanghai_team])  # by the team's territory
    make_user("rep_xuhui", Role.REP, territory=[Region.objects.get(code="310104")])  # by their own (the district)
    owner = make_user("rep_owner", Role.REP)  # the customer's owner
    key_team = Team.objects.create(name="瑞金服务组")  # no territory: the customer's team
    make_user("rep_team", Role.REP, teams=[key_team])
    Institution.objects.filter(pk=ruijin.pk).update(owner=owner, team=key_team)
    gone = make_user("rep_gone", Role.REP, teams=[shanghai_team])
    gone.is_active = False
    gone.save()
    ruijin.refresh_from_db()
    names = {u.username for u in services.reviewers_of(ruijin)}
    assert {"rep_east", "rep_xuhui", "rep_owner", "rep_team"} <= names
    assert "rep" not in names and "rep_gone" not in names
    # the same answer as the access policy's, user by user
    from pharmacrm.core import access
    from pharmacrm.core.models import User
    from pharmacrm.core.roles import Cap

    for user in User.objects.filter(is_active=True):
        fresh = User.objects.get(pk=user.pk)
        expected = (access.can(fresh, Cap.REVIEW_KEY_ACCOUNTS) and bool(services.departments_of(fresh))
                    and access.can_see(fresh, ruijin))  # fmt: skip
        assert (fresh.username in names) == expected, fresh.username


def test_finding_the_reviewers_costs_the_same_queries_however_many_there_are(make_user, users, ruijin, team_north):
    from pharmacrm.core.models import Region

    with CaptureQueriesContext(connection) as few:
        services.reviewers_of(ruijin)
    for i in range(6):
        make_user(f"rep{i}", Role.REP, teams=[team_north], territory=[Region.objects.get(code="310104")])
        make_user(f"agent{i}", Role.AGENT)
    with CaptureQueriesContext(connection) as many:
        found = services.reviewers_of(ruijin)
    assert len(many) == len(few)
    assert {f"rep{i}" for i in range(6)} <= {u.username for u in found}


# --- 3. a member's name links only where the reader may follow it ------------------------------------------------


MEMBER_LINK = re.compile(r'href="/keyaccounts/team/(\d+)/"')
ALL_FOUR = {"kam", "expert", "support", "aftersales"}
LINKED = {
    "admin": ALL_FOUR, "manager": ALL_FOUR, "kam": ALL_FOUR, "auditor": ALL_FOUR,
    "expert": {"expert"}, "support": {"support"}, "aftersales": {"aftersales"},
    "agent": set(), "rep": set(), "analyst": set(), "pv": set(),
}  # fmt: skip


@pytest.mark.parametrize("role", sorted(LINKED))
def test_the_team_table_links_a_member_only_for_readers_who_may_open_their_page(
    role, client_for, users, xiehe, staffed
):
    account = staffed(xiehe)
    c = client_for(role)
    page = c.get(f"/keyaccounts/{account.pk}/", **EN)
    assert page.status_code == 200
    names = {u.pk: name for name, u in users.items()}
    team = re.search(r'<table class="table" id="team-table">.*?</table>', page.content.decode(), re.S).group(0)
    linked = {names[int(pk)] for pk in MEMBER_LINK.findall(team)}
    assert linked == LINKED[role]
    for name in ALL_FOUR:  # every link opens, every name not linked would answer 403
        status = c.get(f"/keyaccounts/team/{users[name].pk}/").status_code
        assert status == (200 if name in linked else 403), name
        assert f'data-user="{name}"' in team  # the name is shown either way


# --- an improvement action's number links only for readers who may open it (crawl of session 41) ----------------


@pytest.mark.parametrize("role", ["analyst", "auditor", "manager"])
def test_an_improvement_actions_number_links_only_to_a_page_the_reader_may_open(client_for, purchases, role):
    """The results of class D and a customer's evaluation list the improvement actions it opened; the analyst, the
    auditor and reps may see the evaluation but not an action they neither own nor reach through a ticket, and its
    number linked to a 404. They see the number and the status; those who may open it (the service manager) a link."""
    evaluation.run(ModelKind.EVALUATION, as_of=H1_2026)  # 协和 D: an action
    action = ImprovementAction.objects.get(institution=purchases["xiehe"])
    score = Score.objects.get(kind=ModelKind.EVALUATION, period="2026H1", institution=purchases["xiehe"])
    c = client_for(role)
    for url in ("/keyaccounts/evaluations/?period=2026H1&klass=D", f"/keyaccounts/evaluations/{score.pk}/"):
        response = c.get(url, **EN)
        assert response.status_code == 200 and action.number in text(response)
        links = re.findall(r'href="(/service/improvements/\d+/)"', response.content.decode())
        for link in links:
            assert c.get(link, **EN).status_code == 200, (url, link)
        assert bool(links) == (role == "manager"), url
