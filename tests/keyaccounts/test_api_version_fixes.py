"""The key-account API's changes need the version the client loaded, as institutions and people do: none →
400 under `version` ("send the version you loaded"), a stale one → 409 with current_version; the pages keep
working with the version their forms carry. And the renewal the agreement form proposes has the same
calendar length as the agreement before it, across 29 February too."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import ItemStatus, PlanStatus, ProposalStatus
from pharmacrm.keyaccounts.models import Agreement, PlanItem, Proposal, ServicePlan
from tests.api.conftest import token_for

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import AREAS, item_data, sign_code, tiny_pdf

pytestmark = pytest.mark.django_db

BASE = "/api/v1/keyaccounts/"
SEND_VERSION = "Send the version you loaded"
CONFLICT = "Someone else changed this record while you were editing it."


@pytest.fixture
def api(users):
    def make(role: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users[role])}", HTTP_ACCEPT_LANGUAGE="en")
        return client

    return make


def _missing(response) -> bool:
    return response.status_code == 400 and SEND_VERSION in response.json()["version"][0]


def _conflict(response, current: int) -> bool:
    body = response.json()
    return response.status_code == 409 and CONFLICT in body["detail"] and body["current_version"] == current


@pytest.fixture
def item(users, xiehe, with_plan) -> PlanItem:
    account, plan = with_plan(xiehe)
    return plan.items.order_by("id").first()


def test_progress_without_a_version_is_refused_and_changes_nothing(api, item):
    r = api("kam").post(f"{BASE}plan-items/{item.pk}/progress/", {"status": "in_progress", "progress": 30},
                        format="json")  # fmt: skip
    assert _missing(r)
    item.refresh_from_db()
    assert item.progress == 0 and item.status == ItemStatus.PLANNED


def test_a_user_who_may_not_report_progress_hears_that_first(api, item):
    r = api("agent").post(f"{BASE}plan-items/{item.pk}/progress/", {"status": "done"}, format="json")
    assert r.status_code == 403


def test_progress_on_a_stale_version_is_a_conflict_with_the_current_version(api, users, item):
    services.update_progress(users["kam"], item, status=ItemStatus.IN_PROGRESS, progress=10, version=item.version)
    item.refresh_from_db()
    r = api("kam").post(f"{BASE}plan-items/{item.pk}/progress/",
                        {"status": "in_progress", "progress": 30, "version": item.version - 1}, format="json")  # fmt: skip
    assert _conflict(r, item.version)
    item.refresh_from_db()
    assert item.progress == 10


def test_progress_with_the_current_version_or_if_match_is_saved(api, item):
    kam = api("kam")
    r = kam.post(f"{BASE}plan-items/{item.pk}/progress/",
                 {"status": "in_progress", "progress": 30, "version": item.version}, format="json")  # fmt: skip
    assert r.status_code == 200 and r.json()["progress"] == 30
    r = kam.post(f"{BASE}plan-items/{item.pk}/progress/", {"status": "in_progress", "progress": 60},
                 format="json", HTTP_IF_MATCH=f'"{r.json()["version"]}"')  # fmt: skip
    assert r.status_code == 200 and r.json()["progress"] == 60


def test_changing_a_draft_item_needs_its_version(api, users, xiehe, staffed):
    account = staffed(xiehe)
    plan = services.start_plan(users["kam"], account)
    draft_item = services.save_item(users["kam"], plan, item_data(users, AREAS[0]))
    kam = api("kam")
    assert _missing(kam.patch(f"{BASE}plan-items/{draft_item.pk}/", {"title": "新标题"}, format="json"))
    stale = kam.patch(f"{BASE}plan-items/{draft_item.pk}/", {"title": "新标题", "version": 99}, format="json")
    assert _conflict(stale, draft_item.version)
    ok = kam.patch(f"{BASE}plan-items/{draft_item.pk}/", {"title": "新标题", "version": draft_item.version},
                   format="json")  # fmt: skip
    assert ok.status_code == 200 and ok.json()["title"] == "新标题"


def test_deleting_a_draft_item_someone_else_changed_keeps_it(client, users, xiehe, staffed):
    """The delete button carries the version the page showed: an item edited by someone else since (a new owner, a
    new deadline) is not removed unseen, and the user is told to reload. The version shown now deletes it."""
    account = staffed(xiehe)
    plan = services.start_plan(users["kam"], account)
    draft_item = services.save_item(users["kam"], plan, item_data(users, AREAS[0]))
    client.force_login(users["kam"])
    url = reverse("keyaccounts:account", args=[account.pk])
    page = client.get(url).content.decode()
    delete = reverse("keyaccounts:item-delete", args=[account.pk, draft_item.pk])
    form = page.split(f'action="{delete}"')[1].split("</form>")[0]
    assert f'name="version" value="{draft_item.version}"' in form
    loaded = draft_item.version
    services.save_item(users["manager"], plan, {**item_data(users, AREAS[0]), "title": "紧急供货"}, item=draft_item,
                       version=loaded)  # fmt: skip
    refused = client.post(delete, {"version": loaded}, HTTP_ACCEPT_LANGUAGE="en", follow=True)
    assert CONFLICT in refused.content.decode()
    assert PlanItem.objects.get(pk=draft_item.pk).title == "紧急供货"
    assert client.post(delete, {"version": loaded + 1}).status_code == 302
    assert not PlanItem.objects.filter(pk=draft_item.pk).exists()


def test_deleting_an_item_from_a_form_without_a_version_is_refused_as_stale(client, users, xiehe, staffed):
    """The page's delete button always carries the item's version: a form without one (an old page) removed the item
    whatever it held by then; it is stale now."""
    account = staffed(xiehe)
    plan = services.start_plan(users["kam"], account)
    draft_item = services.save_item(users["kam"], plan, item_data(users, AREAS[0]))
    client.force_login(users["kam"])
    delete = reverse("keyaccounts:item-delete", args=[account.pk, draft_item.pk])

    refused = client.post(delete, {}, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    assert CONFLICT in refused.content.decode()
    assert PlanItem.objects.filter(pk=draft_item.pk).exists()


def test_deleting_an_item_through_the_api_with_a_stale_if_match_is_a_conflict(api, users, xiehe, staffed):
    account = staffed(xiehe)
    plan = services.start_plan(users["kam"], account)
    draft_item = services.save_item(users["kam"], plan, item_data(users, AREAS[0]))
    loaded = draft_item.version
    services.save_item(users["manager"], plan, {**item_data(users, AREAS[0]), "title": "紧急供货"}, item=draft_item,
                       version=loaded)  # fmt: skip
    kam = api("kam")
    stale = kam.delete(f"{BASE}plan-items/{draft_item.pk}/", HTTP_IF_MATCH=f'"{loaded}"')
    assert _conflict(stale, loaded + 1) and PlanItem.objects.filter(pk=draft_item.pk).exists()
    ok = kam.delete(f"{BASE}plan-items/{draft_item.pk}/", HTTP_IF_MATCH=f'"{loaded + 1}"')
    assert ok.status_code == 204
    assert not PlanItem.objects.filter(pk=draft_item.pk).exists()


def test_submitting_and_deciding_a_plan_need_its_version(api, users, xiehe, staffed):
    account = staffed(xiehe)
    plan = services.start_plan(users["kam"], account)
    for area in AREAS:
        services.save_item(users["kam"], plan, item_data(users, area))
    plan.refresh_from_db()
    kam, manager = api("kam"), api("manager")
    assert _missing(kam.post(f"{BASE}plans/{plan.pk}/submit/", {}, format="json"))
    assert _conflict(kam.post(f"{BASE}plans/{plan.pk}/submit/", {"version": plan.version + 1}, format="json"),
                     plan.version)  # fmt: skip
    r = kam.post(f"{BASE}plans/{plan.pk}/submit/", {"version": plan.version}, format="json")
    assert r.status_code == 200 and r.json()["status"] == PlanStatus.SUBMITTED
    plan.refresh_from_db()
    code = sign_code(users["manager"])
    assert _missing(manager.post(f"{BASE}plans/{plan.pk}/decide/", {"approve": True, "otp_code": code},
                                 format="json"))  # fmt: skip
    stale = manager.post(f"{BASE}plans/{plan.pk}/decide/",
                         {"approve": True, "otp_code": code, "version": plan.version - 1}, format="json")  # fmt: skip
    assert _conflict(stale, plan.version)
    ok = manager.post(f"{BASE}plans/{plan.pk}/decide/",
                      {"approve": True, "otp_code": sign_code(users["manager"]), "version": plan.version},
                      format="json")  # fmt: skip
    assert ok.status_code == 200 and ok.json()["status"] == PlanStatus.APPROVED


def test_sending_and_deciding_a_proposal_need_its_version(api, users, ruijin, make_proposal, manager2):
    proposal = make_proposal(ruijin, submitted=False)
    analyst = api("analyst")
    assert _missing(analyst.post(f"{BASE}proposals/{proposal.pk}/submit/", {}, format="json"))
    stale = analyst.post(f"{BASE}proposals/{proposal.pk}/submit/", {"version": proposal.version + 5}, format="json")
    assert _conflict(stale, proposal.version)
    ok = analyst.post(f"{BASE}proposals/{proposal.pk}/submit/", {"version": proposal.version}, format="json")
    assert ok.status_code == 200 and ok.json()["status"] == ProposalStatus.SUBMITTED
    proposal = Proposal.objects.get(pk=proposal.pk)
    decider = APIClient()
    decider.credentials(HTTP_AUTHORIZATION=f"Token {token_for(manager2)}", HTTP_ACCEPT_LANGUAGE="en")
    code = sign_code(manager2)
    assert _missing(decider.post(f"{BASE}proposals/{proposal.pk}/decide/", {"approve": True, "otp_code": code},
                                 format="json"))  # fmt: skip
    stale = decider.post(f"{BASE}proposals/{proposal.pk}/decide/",
                         {"approve": True, "otp_code": code, "version": proposal.version - 1}, format="json")  # fmt: skip
    assert _conflict(stale, proposal.version)
    assert Proposal.objects.get(pk=proposal.pk).status == ProposalStatus.SUBMITTED


def test_signing_an_agreement_needs_its_version(api, users, xiehe, with_plan):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.utils import timezone

    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    agreement = services.generate_agreement(users["kam"], account, start_date=today,
                                            end_date=today + dt.timedelta(days=365))  # fmt: skip
    url = f"{BASE}agreements/{agreement.pk}/sign/"

    def sign(**extra):
        data = {"signed_date": today.isoformat(), "signed_copy": SimpleUploadedFile("s.pdf", tiny_pdf()), **extra}
        return api("kam").post(url, data, format="multipart")

    assert _missing(sign())
    assert _conflict(sign(version=agreement.version + 3), agreement.version)
    assert Agreement.objects.get(pk=agreement.pk).signed_date is None
    ok = sign(version=agreement.version)
    assert ok.status_code == 200 and ok.json()["signed_date"] == today.isoformat()


def test_a_change_made_meanwhile_is_a_conflict_with_the_version_now(users, item):
    """Another request saved the item between this one's check and its write: the services' optimistic lock
    names the version there is now."""
    loaded = PlanItem.objects.get(pk=item.pk)
    services.update_progress(users["kam"], item, status=ItemStatus.IN_PROGRESS, progress=20, version=item.version)
    with pytest.raises(services.StaleVersion) as stale:
        services._save_versioned(loaded, ["progress"], loaded.version)
    assert stale.value.current_version == loaded.version + 1 == PlanItem.objects.get(pk=item.pk).version
    assert stale.value.message_dict["version"]  # the pages' forms show it under the version, as before


def test_the_page_still_reports_progress_with_the_version_its_form_carries(client_for, item):
    account = item.plan.account
    url = reverse("keyaccounts:item-progress", args=[account.pk, item.pk])
    kam = client_for("kam")
    ok = kam.post(url, {f"progress{item.pk}-status": "in_progress", f"progress{item.pk}-progress": "40",
                        f"progress{item.pk}-version": item.version})  # fmt: skip
    assert ok.status_code == 302 and PlanItem.objects.get(pk=item.pk).progress == 40
    stale = kam.post(url, {f"progress{item.pk}-status": "done", f"progress{item.pk}-version": item.version},
                     HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert stale.status_code == 409 and CONFLICT in stale.content.decode()
    assert PlanItem.objects.get(pk=item.pk).status == ItemStatus.IN_PROGRESS


# --- 7. the renewal's term -----------------------------------------------------------------------------------


def _renewal_after(users, account, start: dt.date, end: dt.date, today: dt.date):
    from django.utils import timezone

    real = timezone.localdate()
    agreement = services.generate_agreement(users["kam"], account, start_date=real,
                                            end_date=real + dt.timedelta(days=364))  # fmt: skip
    Agreement.objects.filter(pk=agreement.pk).update(start_date=start, end_date=end)  # its term, as of `today`
    return services.default_agreement_term(account, today=today)


def test_a_one_year_agreement_renews_for_a_year_across_29_february(users, xiehe, with_plan):
    account, _plan = with_plan(xiehe)
    proposed = _renewal_after(users, account, dt.date(2026, 7, 30), dt.date(2027, 7, 29), today=dt.date(2026, 7, 30))
    assert proposed == (dt.date(2027, 7, 30), dt.date(2028, 7, 29))


def test_a_year_from_29_february_renews_for_a_year(users, xiehe, with_plan):
    account, _plan = with_plan(xiehe)
    proposed = _renewal_after(users, account, dt.date(2028, 2, 29), dt.date(2029, 2, 28), today=dt.date(2028, 2, 29))
    assert proposed == (dt.date(2029, 3, 1), dt.date(2030, 2, 28))


def test_a_term_of_months_renews_for_as_many_months(users, xiehe, with_plan):
    """A plan valid for half a year whose agreement ran its whole validity: the renewal proposed is half a year
    again (approving the plan's next version with its validity comes first: generate_agreement requires it)."""
    from django.utils import timezone

    account, _plan = with_plan(xiehe)
    real = timezone.localdate()
    agreement = services.generate_agreement(users["kam"], account, start_date=real,
                                            end_date=real + dt.timedelta(days=364))  # fmt: skip
    ServicePlan.objects.filter(account=account).update(valid_from=dt.date(2027, 1, 1), valid_to=dt.date(2027, 6, 30))
    Agreement.objects.filter(pk=agreement.pk).update(start_date=dt.date(2027, 1, 1), end_date=dt.date(2027, 6, 30))
    proposed = services.default_agreement_term(account, today=dt.date(2027, 1, 1))
    assert proposed == (dt.date(2027, 7, 1), dt.date(2027, 12, 31))


def test_a_trial_status_needs_the_version_and_a_stale_one_is_a_conflict(api, users, staffed, xiehe):
    """Two people answering one trial offer at once: the later one overwrote the earlier answer unseen."""
    from pharmacrm.servicedesk.models import Product

    account = staffed(xiehe)
    product = Product.objects.create(
        brand_name="新药", generic_name="新药片", dosage_form="片剂", strength="10mg"
    )
    trial = services.offer_trial(users["kam"], account, product=product, notes="试用三个月")
    url = f"{BASE}trials/{trial.pk}/status/"
    kam = api("kam")
    assert kam.get(f"{BASE}trials/{trial.pk}/").json()["version"] == 1
    assert _missing(kam.post(url, {"status": "accepted"}, format="json"))
    r = kam.post(url, {"status": "declined", "notes": "客户不试用", "version": 1}, format="json")
    assert r.status_code == 200 and r.json()["version"] == 2
    assert _conflict(kam.post(url, {"status": "accepted", "version": 1}, format="json"), 2)
    trial.refresh_from_db()
    assert (trial.status, trial.notes, trial.version) == ("declined", "客户不试用", 2)
    r = kam.post(url, {"status": "accepted"}, format="json", HTTP_IF_MATCH='"2"')
    assert r.status_code == 200 and r.json()["status"] == "accepted" and r.json()["version"] == 3
