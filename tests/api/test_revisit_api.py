"""The revisit API: surveys (phone revisits, survey links) and improvement actions (create, edit with
If-Match, lifecycle with 409s), per role."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.core.roles import MATRIX, Cap, Role
from pharmacrm.servicedesk import revisit, services
from pharmacrm.servicedesk.choices import Status
from pharmacrm.servicedesk.models import ImprovementAction, Survey
from tests.servicedesk.conftest import resolved_ticket

from .conftest import ROLES

HANDLERS = {r.value for r in MATRIX[Cap.HANDLE_TICKETS]} - {Role.AUDITOR.value}
SURVEYS = "/api/v1/surveys/"
ACTIONS = "/api/v1/improvement-actions/"


@pytest.fixture
def ticket(users, xiehe):
    return resolved_ticket(users, xiehe)


def due(days: int = 7) -> str:
    return (timezone.localdate() + dt.timedelta(days=days)).isoformat()


@pytest.fixture
def action(users, ticket):
    return revisit.create_action(users["manager"], {"title": "改进", "owner": users["agent"], "ticket": ticket,
                                                    "due_date": timezone.localdate() + dt.timedelta(days=7)})  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
def test_surveys_per_role(api_for, ticket, role):
    client = api_for(role)
    # the link first: once the customer has answered (here on the phone), the ticket takes no second revisit
    sent = client.post(SURVEYS + "send/", {"ticket": ticket.pk}, format="json")
    assert sent.status_code == (201 if role in HANDLERS else 403)
    response = client.post(SURVEYS, {"ticket": ticket.pk, "channel": "phone", "score": 4, "solved": True,
                                     "comment": "不错"}, format="json")  # fmt: skip
    if role in HANDLERS:
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["channel"], body["score"], body["solved"], body["outcome"]) == ("phone", 4, True, "")
    else:
        assert response.status_code == 403
    listing = client.get(SURVEYS, {"ticket": ticket.pk})
    assert listing.status_code == 200
    assert listing.json()["count"] == (2 if role in HANDLERS else 0)


def test_a_survey_link_is_returned_once_when_there_is_no_email(api_for, ticket):
    response = api_for("agent").post(SURVEYS + "send/", {"ticket": ticket.pk}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["channel"] == "link" and body["emailed"] is False and "/help/survey/" in body["link"]
    detail = api_for("agent").get(f"{SURVEYS}{body['id']}/").json()
    assert "link" not in detail and "token_hash" not in detail


def test_a_survey_for_an_open_ticket_is_refused_by_field(api_for, users, xiehe):
    t = services.create_ticket(users["agent"], {"subject": "x", "channel": "phone", "category": "drug_info",
                                                "institution": xiehe})  # fmt: skip
    response = api_for("agent").post(SURVEYS + "send/", {"ticket": t.pk}, format="json")
    assert response.status_code == 400 and "ticket" in response.json()


def test_a_poor_phone_revisit_opens_an_action(api_for, ticket):
    response = api_for("agent").post(
        SURVEYS, {"ticket": ticket.pk, "score": 1, "solved": False}, format="json"
    )
    assert response.status_code == 201 and response.json()["outcome"] == "action"
    assert ImprovementAction.objects.filter(ticket=ticket).count() == 1


def test_a_bad_score_is_a_400(api_for, ticket):
    response = api_for("agent").post(
        SURVEYS, {"ticket": ticket.pk, "score": 6, "solved": True}, format="json"
    )
    assert response.status_code == 400 and "score" in response.json()
    assert not Survey.objects.exists()


def test_a_rep_cannot_survey_a_ticket_outside_their_scope(api_for, users, ruijin):
    t = services.create_ticket(users["agent"], {"subject": "x", "channel": "phone", "category": "drug_info",
                                                "institution": ruijin})  # fmt: skip
    services.transition(users["agent"], t, Status.RESOLVED, resolution_summary="ok", root_cause="usage")
    response = api_for("rep").post(SURVEYS, {"ticket": t.pk, "score": 5, "solved": True}, format="json")
    assert response.status_code == 400 and "ticket" in response.json()


@pytest.mark.parametrize("role", ROLES)
def test_improvement_actions_per_role(api_for, users, ticket, action, role):
    client = api_for(role)
    assert client.get(ACTIONS).status_code == 200
    assert client.get(f"{ACTIONS}{action.pk}/").status_code == 200
    created = client.post(ACTIONS, {"title": "措施", "due_date": due(), "ticket": ticket.pk}, format="json")
    assert created.status_code == (201 if role in HANDLERS else 403)
    if created.status_code == 201:
        assert created.json()["owner"] == users[role].pk and created.json()["number"].startswith("IA-")
    moved = client.post(
        f"{ACTIONS}{action.pk}/transition/", {"status": "in_progress", "version": 1}, format="json"
    )
    assert moved.status_code == (200 if role in {"admin", "manager", "agent"} else 403)


def test_only_managers_create_actions_without_a_ticket(api_for):
    assert api_for("agent").post(ACTIONS, {"title": "x", "due_date": due()}, format="json").status_code == 400
    response = api_for("manager").post(ACTIONS, {"title": "x", "due_date": due()}, format="json")
    assert response.status_code == 201 and response.json()["ticket"] is None


def test_the_same_action_posted_again_is_not_opened_twice(api_for, ticket):
    client = api_for("agent")
    body = {
        "title": "回访不满意：补发说明书",
        "description": "电话告知",
        "due_date": due(),
        "ticket": ticket.pk,
    }
    first = client.post(ACTIONS, body, format="json")
    again = client.post(ACTIONS, body, format="json")  # a retry after a lost answer
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["number"] == first.json()["number"]
    assert ImprovementAction.objects.filter(ticket=ticket).count() == 1
    other = client.post(ACTIONS, {**body, "due_date": due(14)}, format="json")  # a different action
    assert other.status_code == 201 and ImprovementAction.objects.filter(ticket=ticket).count() == 2


def test_editing_needs_the_version_and_a_stale_one_is_409(api_for, action):
    client = api_for("agent")
    assert client.patch(f"{ACTIONS}{action.pk}/", {"title": "新"}, format="json").status_code == 400
    ok = client.patch(f"{ACTIONS}{action.pk}/", {"title": "新"}, format="json", HTTP_IF_MATCH='"1"')
    assert ok.status_code == 200 and ok.json()["version"] == 2 and ok["ETag"] == '"2"'
    stale = client.patch(f"{ACTIONS}{action.pk}/", {"title": "旧"}, format="json", HTTP_IF_MATCH='"1"')
    assert stale.status_code == 409 and stale.json()["current_version"] == 2
    assert client.put(f"{ACTIONS}{action.pk}/", {"title": "x"}, format="json").status_code == 405
    assert client.delete(f"{ACTIONS}{action.pk}/").status_code == 405


def test_the_lifecycle_through_the_api(api_for, action):
    client = api_for("agent")
    url = f"{ACTIONS}{action.pk}/transition/"
    assert client.post(url, {"status": "done", "version": 1}, format="json").status_code == 400
    done = client.post(url, {"status": "done", "version": 1, "outcome": "已完成"}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "done" and done.json()["closed_at"]
    again = client.post(url, {"status": "in_progress", "version": 2}, format="json")
    assert again.status_code == 409
    assert (
        client.post(url, {"status": "cancelled", "version": 1, "reason": "x"}, format="json").status_code
        == 409
    )


def test_filters_mine_and_overdue(api_for, users, action, ticket):
    late = revisit.create_action(users["manager"], {"title": "晚", "owner": users["manager"], "ticket": ticket,
                                                    "due_date": timezone.localdate()})  # fmt: skip
    ImprovementAction.objects.filter(pk=late.pk).update(due_date=timezone.localdate() - dt.timedelta(days=2))
    overdue = api_for("manager").get(ACTIONS, {"show": "overdue"}).json()
    assert [a["number"] for a in overdue["results"]] == [late.number] and overdue["results"][0]["overdue"]
    mine = api_for("agent").get(ACTIONS, {"show": "mine"}).json()
    assert [a["number"] for a in mine["results"]] == [action.number]
