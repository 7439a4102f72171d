"""An improvement action due in the year 9999 (an ERP's "no end", a slip of the year) was taken by the page, the API
and the key-account measures alike, while every key-account date is limited to 2000–2999: nothing failed, but the
action was parked out of every overdue list for good. Its due date is now refused under the field, as the key-account
programme refuses such a date; one stored before the rule is kept while an edit leaves it as it is."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from rest_framework.test import APIClient

from pharmacrm.servicedesk import revisit
from pharmacrm.servicedesk.models import ImprovementAction
from tests.api.conftest import token_for
from tests.servicedesk.conftest import resolved_ticket

pytestmark = pytest.mark.django_db
MESSAGE = "Enter a date between 2000 and 2999."


@pytest.fixture
def ticket(users, xiehe):
    return resolved_ticket(users, xiehe)


def _api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}", HTTP_ACCEPT_LANGUAGE="en")
    return client


def test_a_due_date_in_the_year_9999_is_refused_on_the_page_and_in_the_api(users, ticket, client_for):
    page = client_for("agent").post("/service/improvements/new/", {"ticket": ticket.pk, "title": "培训",
                                                                   "due_date": "9999-12-31"},
                                    HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert page.status_code == 400 and MESSAGE in page.content.decode()
    r = _api(users["manager"]).post("/api/v1/improvement-actions/", {
        "ticket": ticket.pk, "title": "培训", "owner": users["agent"].pk, "due_date": "9999-12-31"}, format="json")
    assert r.status_code == 400 and r.json()["due_date"] == [MESSAGE]
    assert not ImprovementAction.objects.exists()


def test_moving_a_due_date_to_9999_is_refused_but_a_stored_one_is_kept_on_edit(users, ticket):
    action = revisit.create_action(users["manager"], {"title": "改进", "owner": users["agent"], "ticket": ticket,
                                                      "due_date": timezone.localdate() + dt.timedelta(days=7)})
    r = _api(users["agent"]).patch(f"/api/v1/improvement-actions/{action.pk}/",
                                   {"due_date": "9999-12-31", "version": action.version}, format="json")
    assert r.status_code == 400 and r.json()["due_date"] == [MESSAGE]
    with pytest.raises(ValidationError):
        revisit.update_action(users["agent"], ImprovementAction.objects.get(pk=action.pk),
                              {"due_date": dt.date(1999, 12, 31)}, version=action.version)  # fmt: skip

    far = dt.date(9999, 12, 31)  # stored before the rule
    ImprovementAction.objects.filter(pk=action.pk).update(due_date=far)
    stored = ImprovementAction.objects.get(pk=action.pk)
    revisit.update_action(users["agent"], stored, {"title": "改进答复模板", "due_date": far}, version=stored.version)
    assert ImprovementAction.objects.get(pk=action.pk).title == "改进答复模板"
