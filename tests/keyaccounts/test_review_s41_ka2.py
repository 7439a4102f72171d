"""Key-account programme, session 41 review (ka2).

1. A customer de-listed and listed again within a quarter has two files; each file's evaluation counted the tickets of
   the whole quarter, so the same complaints weighed on both files' scores (and on both teams' scorecards). Each file
   now counts the tickets from its listing to its de-listing, and says which days it covers.
2. De-listing left the account's service team as it was: its members kept the team's queue, its project manager led
   it (the team's board, the safety escalations of its former members). Listing the customer again made a second team,
   named with the moment of approval ("重点客户服务组·协和医院·20261205155641"). The de-listed team is emptied; the
   customer listed again gets its team back, under its name.
3. Any team member could correct a meeting's action item (and so give it to themselves) but only its owner and those
   who run the account could tick it off: whoever may correct an action now ticks it off too.
4. The evaluations and candidates pages refused ?period=2026h2 (or ２０２６Ｈ２) that the API takes, and showed
   another period: both read the period by one rule.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry, Team
from pharmacrm.core.roles import Role
from pharmacrm.keyaccounts import evaluation, services
from pharmacrm.keyaccounts.choices import TeamRole
from pharmacrm.keyaccounts.models import EvaluationRun, KeyAccount, MeetingAction, TeamMember
from pharmacrm.safety import services as safety
from pharmacrm.servicedesk import services as desk

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import action_of, sign_code

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def _delist(make_proposal, manager2, institution):
    proposal = make_proposal(institution, kind="delist")
    return services.decide(manager2, proposal, approve=True, comment="合作结束", otp_code=sign_code(manager2))


def _at(day: dt.date, hour: int = 10) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


# --- 1. each file counts its own days ---------------------------------------------------------------------------


def test_a_customer_listed_again_within_a_quarter_has_each_complaint_counted_once(users, xiehe, listed, make_proposal,
                                                                                  manager2):
    quarter = services.previous_quarter(timezone.localdate())
    start, end = services.period_bounds(quarter)
    first = listed(xiehe)
    _delist(make_proposal, manager2, xiehe)
    KeyAccount.objects.filter(pk=first.pk).update(listed_at=_at(start - dt.timedelta(days=10)),
                                                  delisted_at=_at(start + dt.timedelta(days=30)))  # fmt: skip
    second = listed(xiehe)
    KeyAccount.objects.filter(pk=second.pk).update(listed_at=_at(start + dt.timedelta(days=50)))
    for days in (10, 40, 60):  # a complaint while the first file was open, between the files, in the second file
        desk.create_ticket(users["agent"], {"subject": f"到货延误 {days}", "channel": "phone",
                                            "category": "order_delivery", "institution": xiehe,
                                            "received_at": _at(start + dt.timedelta(days=days), 9)})  # fmt: skip

    one = services.review_account(KeyAccount.objects.get(pk=first.pk), quarter)
    two = services.review_account(KeyAccount.objects.get(pk=second.pk), quarter)

    assert (one.tickets, one.complaints) == (1, 1)
    assert (two.tickets, two.complaints) == (1, 1)
    # each says the days it covers: the page shows them under the evaluation
    assert (one.start, one.end) == (start, start + dt.timedelta(days=30))
    assert (two.start, two.end) == (start + dt.timedelta(days=50), end)
    assert services.recompute_review_waits(one) == "right"  # an evaluation of this rule is recognised as it is


# --- 2. the service team of a closed file ------------------------------------------------------------------------


def test_delisting_empties_the_service_team_and_a_listing_again_gets_it_back(users, xiehe, staffed, make_proposal,
                                                                             manager2, client_for):
    account = staffed(xiehe)
    team = Team.objects.get(pk=account.team_id)
    assert team.lead == users["kam"]
    assert safety.managers_of([users["expert"]]) == [users["kam"]]  # the project manager leads the expert

    _delist(make_proposal, manager2, xiehe)

    team.refresh_from_db()
    assert list(team.members.all()) == [] and team.lead is None
    # a former member's safety escalation goes to the managers again, not to the former project manager
    assert users["kam"] not in safety.managers_of([users["expert"]])
    # the former project manager leads no board
    assert client_for("kam").get(reverse("servicedesk:board"), **EN).status_code == 403
    # the closed file keeps who served it
    assert TeamMember.objects.filter(account=account).count() == 4
    entry = AuditEntry.objects.filter(object_type="keyaccounts.keyaccount", object_id=str(account.pk),
                                      changes__has_key="team_members").get()  # fmt: skip
    assert entry.changes["team_lead"] == [users["kam"].pk, None]
    assert sorted(entry.changes["team_members"][0]) == sorted(
        users[r].pk for r in ("kam", "expert", "support", "aftersales"))

    again = services.decide(users["manager"], make_proposal(xiehe), approve=True, comment="重新列入",
                            otp_code=sign_code(users["manager"])).account  # fmt: skip
    assert again.pk != account.pk and again.team_id == team.pk
    assert Team.objects.filter(name__startswith=services.TEAM_PREFIX).count() == 1
    assert list(team.members.all()) == []  # empty until members are added to the new file
    services.add_member(users["manager"], again, users["support"], TeamRole.TECH_SUPPORT)
    assert list(team.members.all()) == [users["support"]]
    assert services.team_for_institution(xiehe.pk) == team


def test_a_new_team_takes_the_full_name_when_another_customer_has_the_short_one(users, xiehe, ruijin, listed):
    type(xiehe).objects.filter(pk__in=[xiehe.pk, ruijin.pk]).update(short_name="人民医院")
    first = listed(type(xiehe).objects.get(pk=xiehe.pk))
    second = listed(type(ruijin).objects.get(pk=ruijin.pk))
    assert first.team.name == "重点客户服务组·人民医院"
    assert second.team.name == f"重点客户服务组·{ruijin.name}"


# --- 3. ticking off an action: the rule of correcting it -------------------------------------------------------


def test_a_team_member_who_may_correct_an_action_may_tick_it_off(users, meeting, make_user, client_for, api_client):
    action = action_of(meeting)  # the expert's
    account = meeting.account
    assert services.may_edit_action(users["support"], action)

    page = client_for("support").get(reverse("keyaccounts:account", args=[account.pk]), **EN).content.decode()
    assert reverse("keyaccounts:action-toggle", args=[account.pk, action.pk]) in page
    r = client_for("support").post(reverse("keyaccounts:action-toggle", args=[account.pk, action.pk]), {"done": "1"},
                                   **EN)  # fmt: skip
    assert r.status_code == 302
    assert MeetingAction.objects.get(pk=action.pk).done_at is not None

    r = api_client("aftersales").post(f"/api/v1/keyaccounts/meeting-actions/{action.pk}/done/", {"done": False},
                                      format="json")  # fmt: skip
    assert r.status_code == 200 and r.json()["done_at"] is None

    # neither a key-account manager outside the team nor the auditor
    outsider = make_user("kam2", Role.KAM)
    with pytest.raises(PermissionDenied):
        services.complete_action(outsider, action_of(meeting))
    assert api_client("auditor").post(f"/api/v1/keyaccounts/meeting-actions/{action.pk}/done/", {"done": True},
                                      format="json").status_code == 403  # fmt: skip
    assert MeetingAction.objects.get(pk=action.pk).done_at is None


# --- 4. the results page reads a period as the API does -------------------------------------------------------


@pytest.fixture
def two_half_years(users):
    model = evaluation.active_model("evaluation")
    now = timezone.now()
    for period, as_of in (("2025H2", dt.date(2025, 12, 31)), ("2026H1", dt.date(2026, 6, 30))):
        EvaluationRun.objects.create(model=model, period=period, as_of=as_of, trigger="on_demand", started_at=now,
                                     finished_at=now)  # fmt: skip


@pytest.mark.parametrize("typed", ["2025h2", "２０２５Ｈ２"])
def test_the_results_page_takes_the_period_as_the_api_does(users, two_half_years, client_for, api_client, typed):
    page = client_for("manager").get(reverse("keyaccounts:evaluations"), {"period": typed}, **EN)
    assert page.status_code == 200
    assert page.context["period"] == "2025H2"
    assert not page.context["form"].errors
    assert api_client("manager").get("/api/v1/evaluations/", {"period": typed}).status_code == 200


def test_no_period_is_named_alike_on_the_page_and_in_the_api(users, two_half_years, client_for, api_client):
    message = "Write the period as 2026H2 (a half-year), 2026Q3 (a quarter) or 2026-11 (a month)."
    page = client_for("manager").get(reverse("keyaccounts:evaluations"), {"period": "2025H34"}, **EN)
    assert page.context["form"].errors["period"] == [message]
    r = api_client("manager").get("/api/v1/evaluations/", {"period": "2025H34"})
    assert r.status_code == 400 and r.json()["period"] == [message]
    candidates = client_for("manager").get(reverse("keyaccounts:candidates"), {"period": "2026-13"}, **EN)
    assert candidates.context["form"].errors["period"] == [message]
