"""REST: assignment rules (service managers), agent profiles (managers; an agent their own on-duty status),
the supervisor board summary (managers, team leads) — access per role and bounded query counts."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from pharmacrm.core.models import AuditEntry, Team
from pharmacrm.core.roles import MATRIX, Cap, Role
from pharmacrm.servicedesk import services
from pharmacrm.servicedesk.models import AgentProfile, AssignmentRule

from .conftest import ROLES, token_for

RULES = "/api/v1/assignment-rules/"
PROFILES = "/api/v1/agent-profiles/"
BOARD = "/api/v1/service-board/"
MANAGERS = {"admin", "manager"}
HANDLERS = {r.value for r in MATRIX[Cap.HANDLE_TICKETS]}


@pytest.fixture
def team(db):
    return Team.objects.create(name="客服一组")


@pytest.mark.parametrize("role", ROLES)
def test_rules_access_per_role(api_for, role, team):
    c = api_for(role)
    expected = 200 if role in MANAGERS else 403
    assert c.get(RULES).status_code == expected
    r = c.post(RULES, {"name": f"r-{role}", "team": team.pk, "category": "drug_info", "region": "110000",
                       "method": "round_robin"}, format="json")  # fmt: skip
    assert r.status_code == (201 if role in MANAGERS else 403)


def test_rule_crud_is_validated_and_audited(api_for, team):
    c = api_for("manager")
    r = c.post(RULES, {"name": "a", "team": team.pk, "customer_tier": "vip"}, format="json")
    assert r.status_code == 201 and r.data["method"] == "least_loaded" and r.data["position"] == 10
    pk = r.data["id"]
    assert c.post(RULES, {"name": "a", "team": team.pk}, format="json").status_code == 400  # unique name
    assert c.post(RULES, {"name": "b", "team": team.pk, "category": "nope"}, format="json").status_code == 400
    assert c.post(RULES, {"name": "b", "team": team.pk, "region": "999999"}, format="json").status_code == 400
    assert (
        c.patch(f"{RULES}{pk}/", {"method": "queue", "position": 3}, format="json").data["method"] == "queue"
    )
    assert c.delete(f"{RULES}{pk}/").status_code == 204
    assert AssignmentRule.objects.get(pk=pk).active is False
    assert AuditEntry.objects.filter(object_type="servicedesk.assignmentrule").count() == 3


@pytest.mark.parametrize("role", ROLES)
def test_profiles_access_per_role(api_for, users, role):
    c = api_for(role)
    listed = c.get(PROFILES)
    assert listed.status_code == (200 if role in HANDLERS else 403)
    created = c.post(
        PROFILES, {"user": users["agent"].pk, "max_open": 5, "skills": ["drug_info"]}, format="json"
    )
    assert created.status_code == (201 if role in MANAGERS else 403)
    me = c.patch(f"{PROFILES}me/", {"on_duty": False}, format="json")
    assert me.status_code == (200 if role in HANDLERS else 403)
    if role in HANDLERS:
        assert me.data["on_duty"] is False
        assert AgentProfile.objects.get(user=users[role]).on_duty is False


def test_an_agent_patches_only_their_own_on_duty(api_for, users):
    mine = AgentProfile.objects.create(user=users["agent"])
    theirs = AgentProfile.objects.create(user=users["expert"])
    c = api_for("agent")
    assert [p["id"] for p in c.get(PROFILES).data["results"]] == [mine.pk]
    assert c.patch(f"{PROFILES}{mine.pk}/", {"on_duty": False}, format="json").status_code == 200
    assert c.patch(f"{PROFILES}{mine.pk}/", {"max_open": 99}, format="json").status_code == 403
    assert c.patch(f"{PROFILES}{theirs.pk}/", {"on_duty": False}, format="json").status_code == 404
    assert c.delete(f"{PROFILES}{mine.pk}/").status_code == 403
    mine.refresh_from_db()
    assert (mine.on_duty, mine.max_open) == (False, 40)
    assert c.get(f"{PROFILES}me/").data["on_duty"] is False


def test_manager_edits_profiles(api_for, users):
    c = api_for("manager")
    r = c.post(
        PROFILES, {"user": users["support"].pk, "skills": ["order_delivery"], "max_open": 9}, format="json"
    )
    assert r.status_code == 201 and r.data["skills"] == ["order_delivery"]
    pk = r.data["id"]
    assert c.post(PROFILES, {"user": users["support"].pk}, format="json").status_code == 400  # one per user
    assert c.post(PROFILES, {"user": users["analyst"].pk}, format="json").status_code == 400  # not a handler
    r = c.patch(f"{PROFILES}{pk}/", {"skills": [], "on_duty": False}, format="json")
    assert (r.data["skills"], r.data["on_duty"]) == ([], False)
    assert c.delete(f"{PROFILES}{pk}/").status_code == 204
    assert not AgentProfile.objects.filter(pk=pk).exists()


@pytest.mark.parametrize("role", ROLES)
def test_board_access_per_role(api_for, role):
    assert api_for(role).get(BOARD).status_code == (200 if role in MANAGERS else 403)


def test_board_for_a_team_lead(make_user, users, xiehe):
    lead = make_user("lead", Role.AGENT)
    mine, other = Team.objects.create(name="一组", lead=lead), Team.objects.create(name="二组")
    for t in (mine, other):
        services.create_ticket(users["manager"], {
            "subject": t.name, "channel": "phone", "category": "medication_error", "institution": xiehe, "team": t,
            "assignee": users["agent"], "received_at": timezone.now() - dt.timedelta(hours=3),
        })  # fmt: skip
    services.sweep(timezone.now())
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Token {token_for(lead)}")
    r = c.get(BOARD)
    assert r.status_code == 200 and r.data["teams"] == [mine.pk]
    assert [t["subject"] for t in r.data["breached"]] == ["一组"]
    assert c.get(BOARD, {"team": other.pk}).status_code == 403
    assert c.get(BOARD, {"team": "x"}).status_code == 400


def test_board_summary_and_query_count(api_for, users, xiehe, django_assert_max_num_queries):
    received = [
        services.create_ticket(users["manager"], {
            "subject": f"h{hours}", "channel": "phone", "category": "medication_error", "institution": xiehe,
            "assignee": users["agent"], "received_at": timezone.now() - dt.timedelta(hours=hours),
        }).received_at
        for hours in (0, 1, 3, 5)
    ]  # fmt: skip
    # today's intake in China: in the early hours, tickets received hours ago are yesterday's
    today = sum(1 for at in received if timezone.localtime(at).date() == timezone.localdate())
    services.sweep(timezone.now())
    c = api_for("manager")
    with django_assert_max_num_queries(14):
        r = c.get(BOARD)
    assert r.status_code == 200
    assert r.data["breaching_soon_count"] == 2 and r.data["breached_count"] == 2
    agent = next(a for a in r.data["agents"] if a["username"] == "agent")
    assert (agent["open"], agent["urgent_or_high"], agent["overdue"]) == (4, 4, 2)
    assert r.data["intake_total"] == today and today >= 1
    assert next(i for i in r.data["intake"] if i["category"] == "medication_error")["count"] == today


def test_rule_list_query_count(api_for, team, django_assert_max_num_queries):
    c = api_for("manager")
    for i in range(15):
        AssignmentRule.objects.create(name=f"r{i}", team=team)
    with django_assert_max_num_queries(8):
        assert c.get(RULES).status_code == 200


def test_deleting_an_agent_profile_changed_since_the_if_match_is_refused(api_for, users):
    """DELETE ignored If-Match: a profile another manager had just changed was deleted unseen. If-Match, when sent,
    is honoured now: stale → 409, the profile stays; without it the delete goes on as before."""
    c = api_for("manager")
    created = c.post(PROFILES, {"user": users["support"].pk, "max_open": 9}, format="json").data
    url = f"{PROFILES}{created['id']}/"
    assert c.patch(url, {"max_open": 12, "version": created["version"]}, format="json").status_code == 200

    stale = c.delete(url, HTTP_IF_MATCH=f'"{created["version"]}"')

    assert stale.status_code == 409, stale.content
    assert AgentProfile.objects.get(pk=created["id"]).max_open == 12
    assert c.delete(url, HTTP_IF_MATCH=f'"{created["version"] + 1}"').status_code == 204
    assert not AgentProfile.objects.filter(pk=created["id"]).exists()
