"""The key-account programme's API per role: accounts, proposals with opinions and signed decisions, plans
and their items, agreements and their PDF; errors as JSON per field."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import PlanStatus, ProposalStatus
from pharmacrm.keyaccounts.models import KeyAccount
from tests.api.conftest import token_for

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import AREAS, sign_code

pytestmark = pytest.mark.django_db

ROLES = [
    "admin",
    "manager",
    "kam",
    "agent",
    "expert",
    "support",
    "aftersales",
    "rep",
    "pv",
    "analyst",
    "auditor",
]
BASE = "/api/v1/keyaccounts/"


@pytest.fixture
def api(users):
    def make(role: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users[role])}", HTTP_ACCEPT_LANGUAGE="en")
        return client

    return make


@pytest.fixture
def programme(users, xiehe, ruijin, with_plan, make_proposal):
    account, plan = with_plan(xiehe)
    today = timezone.localdate()
    agreement = services.generate_agreement(users["kam"], account, start_date=today,
                                            end_date=today + dt.timedelta(days=365))  # fmt: skip
    return {"account": account, "plan": plan, "agreement": agreement, "proposal": make_proposal(ruijin)}


@pytest.mark.parametrize("role", ROLES)
def test_reads_per_role(api, programme, role):
    c = api(role)
    account, agreement, proposal = programme["account"], programme["agreement"], programme["proposal"]
    assert c.get(BASE).status_code == 200
    assert c.get(f"{BASE}{account.pk}/").json()["number"] == account.number
    assert c.get(f"{BASE}plans/{programme['plan'].pk}/").json()["items"][0]["area"]
    assert c.get(f"{BASE}agreements/").json()["count"] == 1
    pdf = c.get(f"{BASE}agreements/{agreement.pk}/pdf/")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    # the rep sees Beijing's key account, not Shanghai's proposal
    assert c.get(f"{BASE}proposals/{proposal.pk}/").status_code == (404 if role == "rep" else 200)


def test_anonymous_is_refused(client, programme):
    assert client.get(BASE).status_code in (401, 403)


def test_the_proposal_workflow_through_the_api(api, users, ruijin, manager2):
    analyst = api("analyst")
    r = analyst.post(f"{BASE}proposals/", {"institution": ruijin.pk, "reason": ""}, format="json")
    assert r.status_code == 400 and "reason" in r.json()
    assert api("kam").post(f"{BASE}proposals/", {"institution": ruijin.pk, "reason": "x"},
                           format="json").status_code == 403  # fmt: skip
    r = analyst.post(f"{BASE}proposals/", {"institution": ruijin.pk, "reason": "影响力大"}, format="json")
    assert r.status_code == 201
    pk = r.json()["id"]
    assert (
        api("manager")
        .post(f"{BASE}proposals/{pk}/opinion/", {"opinion": "support"}, format="json")
        .status_code
        == 403
    )
    version = lambda: analyst.get(f"{BASE}proposals/{pk}/").json()["version"]  # noqa: E731
    r = analyst.post(f"{BASE}proposals/{pk}/submit/", {}, format="json")
    assert r.status_code == 400 and "version" in r.json()  # the version loaded is needed
    r = analyst.post(f"{BASE}proposals/{pk}/submit/", {"version": version()}, format="json")
    assert r.status_code == 400 and "non_field_errors" in r.json()
    assert (
        analyst.post(f"{BASE}proposals/{pk}/opinion/", {"opinion": "support"}, format="json").status_code
        == 200
    )
    r = api("kam").post(f"{BASE}proposals/{pk}/opinion/", {"opinion": "oppose"}, format="json")
    assert r.status_code == 400 and "comment" in r.json()
    r = api("kam").post(f"{BASE}proposals/{pk}/opinion/", {"opinion": "neutral"}, format="json")
    assert r.status_code == 200  # the review is cross-department: sales' opinion besides marketing's
    assert (
        analyst.post(f"{BASE}proposals/{pk}/submit/", {"version": version()}, format="json").json()["status"]
        == ProposalStatus.SUBMITTED
    )
    assert analyst.post(f"{BASE}proposals/{pk}/decide/", {"approve": True, "otp_code": "1"},
                        format="json").status_code == 403  # fmt: skip
    sign_code(manager2)
    r = APIClient()
    r.credentials(HTTP_AUTHORIZATION=f"Token {token_for(manager2)}", HTTP_ACCEPT_LANGUAGE="en")
    wrong = r.post(f"{BASE}proposals/{pk}/decide/", {"approve": True, "otp_code": "000000", "version": version()},
                   format="json")  # fmt: skip
    assert wrong.status_code == 400 and "otp_code" in wrong.json()
    ok = r.post(f"{BASE}proposals/{pk}/decide/",
                {"approve": True, "otp_code": sign_code(manager2), "version": version()}, format="json")  # fmt: skip
    assert ok.status_code == 200 and ok.json()["status"] == ProposalStatus.APPROVED
    assert KeyAccount.objects.filter(institution=ruijin, status="active").exists()


def test_plans_and_items_through_the_api(api, users, xiehe, staffed):
    account = staffed(xiehe)
    plan = services.start_plan(users["kam"], account)
    kam = api("kam")
    deadline = (timezone.localdate() + dt.timedelta(days=10)).isoformat()
    for area in AREAS:
        r = kam.post(f"{BASE}plan-items/", {"plan": plan.pk, "area": area, "title": f"项 {area}", "standard": "标准",
                                            "owner": users["kam"].pk, "deadline": deadline}, format="json")  # fmt: skip
        assert r.status_code == 201, r.json()
    item = r.json()
    r = kam.patch(f"{BASE}plan-items/{item['id']}/", {"title": "培训（修订）", "version": 99}, format="json")
    assert r.status_code == 409 and r.json()["current_version"] == item["version"]
    r = kam.patch(
        f"{BASE}plan-items/{item['id']}/",
        {"title": "培训（修订）", "version": item["version"]},
        format="json",
    )
    assert r.status_code == 200 and r.json()["title"] == "培训（修订）"
    assert api("agent").post(f"{BASE}plan-items/", {"plan": plan.pk}, format="json").status_code == 403
    plan_version = lambda: kam.get(f"{BASE}plans/{plan.pk}/").json()["version"]  # noqa: E731
    r = kam.post(f"{BASE}plans/{plan.pk}/submit/", {"version": plan_version()}, format="json")
    assert r.json()["status"] == PlanStatus.SUBMITTED
    manager = api("manager")
    r = manager.post(f"{BASE}plans/{plan.pk}/decide/",
                     {"approve": False, "otp_code": sign_code(users["manager"]), "version": plan_version()},
                     format="json")  # fmt: skip
    assert r.status_code == 400 and "comment" in r.json()
    r = manager.post(f"{BASE}plans/{plan.pk}/decide/",
                     {"approve": True, "otp_code": sign_code(users["manager"]), "version": plan_version()},
                     format="json")  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] == PlanStatus.APPROVED
    assert api("kam").post(f"{BASE}plans/{plan.pk}/decide/", {"approve": True, "otp_code": "1"},
                           format="json").status_code == 403  # fmt: skip
    item_version = kam.get(f"{BASE}plan-items/{item['id']}/").json()["version"]
    r = api("kam").post(f"{BASE}plan-items/{item['id']}/progress/",
                        {"status": "in_progress", "progress": 50, "version": item_version}, format="json")  # fmt: skip
    assert r.status_code == 200 and r.json()["progress"] == 50
    assert api("agent").post(f"{BASE}plan-items/{item['id']}/progress/", {"status": "done"},
                             format="json").status_code == 403  # fmt: skip


def test_the_candidates_path_is_not_an_account_id(api, programme):
    assert api("manager").get(f"{BASE}abc/").status_code == 404
