"""The revisit panel and an improvement action's buttons sent twice (a double click): the survey link's and the phone
revisit's second sending answered with the ten-minute duplicate refusal, an action's status change with "someone
else changed this action" — the first click had done it. Each form now acts once and the second answer shows what
the first did (the link without an e-mail address shown again); a colleague's change in between is still refused."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.customers.forms import new_once_token
from pharmacrm.servicedesk import revisit, services
from pharmacrm.servicedesk.choices import ActionStatus, Status
from pharmacrm.servicedesk.models import ImprovementAction, Survey

pytestmark = pytest.mark.django_db


@pytest.fixture
def ticket(users, xiehe):
    ticket = services.create_ticket(users["agent"], {
        "subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "assignee": users["agent"],
    })  # fmt: skip
    services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    return ticket


def _twice(client, url, form):
    first = client.post(url, form, HTTP_ACCEPT_LANGUAGE="en")
    return first, client.post(url, form, follow=True, HTTP_ACCEPT_LANGUAGE="en")


def test_send_survey_clicked_twice_sends_one_link_and_shows_it_again(client_for, ticket):
    agent = client_for("agent")
    assert 'name="form_token"' in agent.get(f"/service/tickets/{ticket.pk}/").content.decode()

    first, again = _twice(agent, f"/service/tickets/{ticket.pk}/survey/send/", {"form_token": new_once_token()})

    assert first.status_code == again.status_code == 200
    link = first.context["revisit_link"]
    assert link and again.context["revisit_link"].split("/help/survey/")[0] == link.split("/help/survey/")[0]
    assert "was not sent again" not in again.content.decode()
    assert Survey.objects.filter(ticket=ticket).count() == 1
    # the link shown the second time opens the same survey
    assert revisit.survey_for_token(again.context["revisit_link"].rstrip("/").rsplit("/", 1)[-1]) == Survey.objects.get()


def test_a_phone_revisit_sent_twice_is_recorded_once_and_shows_the_ticket(client_for, ticket):
    form = {"score": "4", "solved": "yes", "comment": "好", "form_token": new_once_token()}

    first, again = _twice(client_for("agent"), f"/service/tickets/{ticket.pk}/survey/phone/", form)

    assert first.status_code == 302 and again.redirect_chain[-1][0] == f"/service/tickets/{ticket.pk}/"
    assert "The phone revisit was recorded." in again.content.decode()
    assert "already recorded" not in again.content.decode()
    assert Survey.objects.filter(ticket=ticket, channel="phone").count() == 1


@pytest.fixture
def action(users, ticket):
    return revisit.create_action(users["manager"], {
        "title": "改进答复模板", "owner": users["agent"], "due_date": timezone.localdate() + dt.timedelta(days=7),
        "ticket": ticket,
    })  # fmt: skip


def test_an_action_status_clicked_twice_changes_once(client_for, action):
    form = {"to_status": ActionStatus.IN_PROGRESS, "version": action.version}

    first, again = _twice(client_for("agent"), f"/service/improvements/{action.pk}/status/", form)

    assert first.status_code == 302 and again.redirect_chain[-1][0] == f"/service/improvements/{action.pk}/"
    assert "is now" in again.content.decode() and "changed this" not in again.content.decode()
    assert ImprovementAction.objects.get(pk=action.pk).version == action.version + 1


def test_an_action_status_after_a_colleagues_change_is_refused(client_for, action):
    form = {"to_status": ActionStatus.IN_PROGRESS, "version": action.version}
    assert client_for("manager").post(f"/service/improvements/{action.pk}/status/", form).status_code == 302

    mine = client_for("agent").post(f"/service/improvements/{action.pk}/status/", form, HTTP_ACCEPT_LANGUAGE="en")

    assert mine.status_code == 409
