"""A draft service plan's needs and goals and its validity can be corrected before it is submitted — on the
account page and through the API — and the API can start a draft too. A validity that would leave out an item's
deadline is refused, naming the items; a submitted plan cannot be edited; every change is audited."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import PlanStatus
from pharmacrm.keyaccounts.models import ServicePlan

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import AREAS, item_data

pytestmark = pytest.mark.django_db

BASE = "/api/v1/keyaccounts/"


@pytest.fixture
def api(api_client):
    return api_client


@pytest.fixture
def draft(users, xiehe, staffed):
    account = staffed(xiehe)
    today = timezone.localdate()
    plan = services.start_plan(users["kam"], account, goals="保障供应", valid_from=today,
                               valid_to=today + dt.timedelta(days=365))  # fmt: skip
    return plan


def _page_post(client, plan, data):
    return client.post(reverse("keyaccounts:plan-edit", args=[plan.account_id]),
                       {f"planedit-{k}": v for k, v in data.items()}, HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip


def test_the_kam_corrects_a_drafts_validity_and_goals_on_the_page(client, users, draft):
    client.force_login(users["kam"])
    page = client.get(reverse("keyaccounts:account", args=[draft.account_id]), HTTP_ACCEPT_LANGUAGE="en")
    assert b'id="plan-edit-form"' in page.content and b'id="draft-validity"' in page.content
    start = timezone.localdate() + dt.timedelta(days=10)
    r = _page_post(client, draft, {"goals": "保障供应与培训", "valid_from": start.isoformat(),
                                   "valid_to": (start + dt.timedelta(days=730)).isoformat(), "version": draft.version})
    assert r.status_code == 302
    draft.refresh_from_db()
    assert (draft.goals, draft.valid_from, draft.valid_to) == ("保障供应与培训", start, start + dt.timedelta(days=730))
    entry = AuditEntry.objects.filter(object_type="keyaccounts.serviceplan", object_id=str(draft.pk),
                                      action="update").latest("id")  # fmt: skip
    assert set(entry.changes) == {"goals", "valid_from", "valid_to"}
    page = client.get(reverse("keyaccounts:account", args=[draft.account_id]), HTTP_ACCEPT_LANGUAGE="en")
    assert (start + dt.timedelta(days=730)).isoformat().encode() in page.content


def test_a_validity_that_leaves_out_an_items_deadline_is_refused_naming_it(client, users, draft):
    today = timezone.localdate()
    services.save_item(users["kam"], draft, {**item_data(users, AREAS[0], deadline=today + dt.timedelta(days=200)),
                                             "title": "季度培训"})  # fmt: skip
    client.force_login(users["kam"])
    r = _page_post(client, draft, {"goals": "x", "valid_from": today.isoformat(),
                                   "valid_to": (today + dt.timedelta(days=100)).isoformat(), "version": draft.version})
    assert r.status_code == 400
    assert "1 service item falls due after this end: 季度培训" in r.content.decode()
    draft.refresh_from_db()
    assert draft.valid_to == today + dt.timedelta(days=365) and draft.goals == "保障供应"


def test_an_end_before_the_start_is_refused(client, users, draft):
    client.force_login(users["kam"])
    today = timezone.localdate()
    r = _page_post(client, draft, {"valid_from": today.isoformat(),
                                   "valid_to": (today - dt.timedelta(days=1)).isoformat(), "version": draft.version})
    assert r.status_code == 400 and "The end lies before the start." in r.content.decode()


def test_a_stale_form_does_not_overwrite_anothers_change(client, users, draft):
    services.update_plan(users["kam"], draft, goals="别人的修改", valid_from=draft.valid_from,
                         valid_to=draft.valid_to, version=draft.version)  # fmt: skip
    client.force_login(users["kam"])
    r = _page_post(client, draft, {"goals": "我的修改", "version": draft.version - 1})
    assert r.status_code == 409
    draft.refresh_from_db()
    assert draft.goals == "别人的修改"


def test_a_submitted_plan_cannot_be_edited_and_the_form_is_gone(client, users, draft):
    for area in AREAS:
        services.save_item(users["kam"], draft, item_data(users, area))
    services.submit_plan(users["kam"], draft, version=draft.version)
    draft.refresh_from_db()
    client.force_login(users["kam"])
    page = client.get(reverse("keyaccounts:account", args=[draft.account_id]), HTTP_ACCEPT_LANGUAGE="en")
    assert b'id="plan-edit-form"' not in page.content
    r = _page_post(client, draft, {"goals": "改", "version": draft.version})
    assert r.status_code == 400
    draft.refresh_from_db()
    assert draft.goals == "保障供应" and draft.status == PlanStatus.SUBMITTED


@pytest.mark.parametrize("role", ["agent", "analyst", "rep"])
def test_roles_outside_the_team_cannot_edit_a_draft(client, users, draft, role):
    client.force_login(users[role])
    r = _page_post(client, draft, {"goals": "改", "version": draft.version})
    assert r.status_code in (403, 404)
    draft.refresh_from_db()
    assert draft.goals == "保障供应"


def test_the_api_starts_a_draft_and_patches_its_validity(api, users, xiehe, staffed):
    account = staffed(xiehe)
    kam = api("kam")
    today = timezone.localdate()
    r = kam.post(f"{BASE}plans/", {"account": account.pk, "goals": "目标", "valid_from": today.isoformat()},
                 format="json")  # fmt: skip
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["status"] == "draft" and body["goals"] == "目标" and body["valid_to"] is None
    end = (today + dt.timedelta(days=90)).isoformat()
    r = kam.patch(f"{BASE}plans/{body['id']}/", {"valid_to": end, "version": body["version"]}, format="json")
    assert r.status_code == 200 and r.json()["valid_to"] == end and r.json()["goals"] == "目标"
    assert kam.patch(f"{BASE}plans/{body['id']}/", {"valid_to": end}, format="json").status_code == 400
    stale = kam.patch(f"{BASE}plans/{body['id']}/", {"goals": "x", "version": body["version"]}, format="json")
    assert stale.status_code == 409
    assert kam.put(f"{BASE}plans/{body['id']}/", {"goals": "x"}, format="json").status_code == 405
    again = kam.post(f"{BASE}plans/", {"account": account.pk}, format="json")
    assert again.status_code == 400 and "already being worked on" in str(again.json())


@pytest.mark.parametrize("role", ["agent", "analyst", "auditor"])
def test_the_api_refuses_plan_writes_to_roles_that_do_not_manage_accounts(api, users, draft, role):
    client = api(role)
    assert client.post(f"{BASE}plans/", {"account": draft.account_id}, format="json").status_code == 403
    r = client.patch(f"{BASE}plans/{draft.pk}/", {"goals": "x", "version": draft.version}, format="json")
    assert r.status_code in (403, 404)
    assert ServicePlan.objects.get(pk=draft.pk).goals == "保障供应"


def test_the_api_hides_accounts_outside_scope(api, users, draft):
    r = api("kam").post(f"{BASE}plans/", {"account": 999999}, format="json")
    assert r.status_code == 400 and "account" in r.json()
