"""The key-account programme's day-to-day work through the API: the service team, meetings and their action items,
agreements generated and signed, trial offers, key-account evaluations, scorecards and the evaluation's resource
and incentive records. For each endpoint: a role allowed, a role refused, the sales rep's scope (Beijing only), a
validation error as JSON per field, and a round trip."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.keyaccounts import evaluation, services
from pharmacrm.keyaccounts.choices import AgreementStatus, TeamRole
from pharmacrm.keyaccounts.models import (
    AccountReview,
    Agreement,
    EvaluationRun,
    KeyAccount,
    Meeting,
    MeetingAction,
    Score,
    TeamMember,
    TrialOffer,
)
from pharmacrm.servicedesk.models import Product
from tests.api.conftest import token_for

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import tiny_pdf, tiny_png

pytestmark = pytest.mark.django_db
BASE = "/api/v1/keyaccounts/"


@pytest.fixture
def api(users):
    """api("kam") → an API client with that role's token, answering in English; api(user) for any user."""

    def make(who, lang: str = "en") -> APIClient:
        user = users[who] if isinstance(who, str) else who
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}", HTTP_ACCEPT_LANGUAGE=lang)
        return client

    return make


@pytest.fixture
def world(users, xiehe, ruijin, with_plan, listed):
    """北京协和医院 (the rep's territory): a key account with the kam as project manager, the expert, support and
    after-sales in its team and a plan in force. 上海瑞金医院: a key account without a team, with a meeting, a trial
    and an evaluation recorded by the manager — outside the rep's territory."""
    account, plan = with_plan(xiehe)
    far = listed(ruijin)
    # listed a year ago, so that last quarter can be evaluated
    KeyAccount.objects.filter(pk__in=[account.pk, far.pk]).update(listed_at=timezone.now() - dt.timedelta(days=400))
    account.refresh_from_db()
    far.refresh_from_db()
    manager = users["manager"]
    product = Product.objects.create(brand_name="新药", generic_name="新药片", dosage_form="片剂", strength="10mg")
    far_meeting = services.record_meeting(
        manager, far, {"held_at": timezone.now() - dt.timedelta(days=2), "title": "瑞金季度会", "minutes": "纪要"},
    )  # fmt: skip
    # an action of a member who has left the team since (Shanghai's team is empty)
    MeetingAction.objects.create(meeting=far_meeting, title="回访", owner=manager, due_date=timezone.localdate())
    far_trial = services.offer_trial(manager, far, product=product, notes="瑞金试用")
    period = services.previous_quarter(timezone.localdate())
    far_review = services.review_account(far, period)
    return {"account": account, "plan": plan, "far": far, "product": product, "far_meeting": far_meeting,
            "far_trial": far_trial, "period": period, "far_review": far_review}  # fmt: skip


def _errors(response, status: int = 400) -> dict:
    assert response.status_code == status, response.content[:500]
    return response.json()


# --- the service team --------------------------------------------------------------------------------------------


def test_team_members_list_add_and_remove(api, users, make_user, world):
    account, far = world["account"], world["far"]
    expert2 = make_user("expert2", Role.EXPERT)
    rows = api("rep").get(f"{BASE}members/", {"account": account.pk}).json()["results"]
    assert {r["username"] for r in rows} == {"kam", "expert", "support", "aftersales"}
    assert {r["role"] for r in rows if r["username"] == "kam"} == {TeamRole.PROJECT_MANAGER}
    # the rep sees Beijing's team only; Shanghai's account is not theirs
    TeamMember.objects.create(account=far, user=users["support"], role=TeamRole.TECH_SUPPORT)
    assert api("rep").get(f"{BASE}members/", {"account": far.pk}).json()["count"] == 0
    assert api("manager").get(f"{BASE}members/", {"account": far.pk}).json()["count"] == 1

    kam = api("kam")  # the project manager adds a second product expert
    r = kam.post(f"{BASE}members/", {"account": account.pk, "user": expert2.pk, "role": "expert"}, format="json")
    assert r.status_code == 201 and r.json()["username"] == "expert2" and r.json()["role"] == "expert"
    member_id = r.json()["id"]
    assert api("rep").get(f"{BASE}members/{member_id}/").json()["account"] == account.pk
    assert AuditEntry.objects.filter(object_id=str(account.pk), actor=users["kam"], action="update").exists()

    # refused: no right to run key accounts, or not this account's project manager
    body = {"account": account.pk, "user": expert2.pk, "role": "expert"}
    assert api("agent").post(f"{BASE}members/", body, format="json").status_code == 403
    assert api("auditor").post(f"{BASE}members/", body, format="json").status_code == 403
    other_kam = make_user("kam2", Role.KAM)
    assert api(other_kam).post(f"{BASE}members/", body, format="json").status_code == 403
    # validation, per field, nothing written
    assert "user" in _errors(kam.post(f"{BASE}members/", body, format="json"))  # already in the team in this role
    r = kam.post(f"{BASE}members/", {**body, "role": "pm"}, format="json")
    assert "does not have the role" in _errors(r)["user"][0]
    assert "role" in _errors(kam.post(f"{BASE}members/", {**body, "role": "boss"}, format="json"))
    assert _errors(kam.post(f"{BASE}members/", {**body, "account": 987654}, format="json"))["account"] == [
        "No such key account, or you may not see it."
    ]
    assert TeamMember.objects.filter(account=account).count() == 5

    # remove: refused for others, refused while the member owns open plan items, then done
    assert api("expert").delete(f"{BASE}members/{member_id}/").status_code == 403
    pm = TeamMember.objects.get(account=account, user=users["kam"])
    r = api("manager").delete(f"{BASE}members/{pm.pk}/")
    assert "open plan items" in _errors(r)["non_field_errors"][0]
    assert api("manager").delete(f"{BASE}members/{member_id}/").status_code == 204
    assert not TeamMember.objects.filter(pk=member_id).exists()
    assert api("manager").get(f"{BASE}members/{member_id}/").status_code == 404


def test_team_member_errors_follow_the_request_language(api, users, world):
    r = api("kam", lang="zh-hans").post(
        f"{BASE}members/", {"account": 987654, "user": users["expert"].pk, "role": "expert"}, format="json"
    )
    assert _errors(r)["account"] == ["该重点客户不存在，或您无权查看。"]


# --- meetings and action items ----------------------------------------------------------------------------------


def _meeting(world, users, **extra) -> dict:
    return {
        "account": world["account"].pk, "held_at": (timezone.now() - dt.timedelta(hours=3)).isoformat(),
        "title": "季度沟通会", "attendees": "协和药剂科", "minutes": "讨论供货与培训",
        "actions": [{"title": "整理需求", "owner": users["expert"].pk,
                     "due_date": (timezone.localdate() + dt.timedelta(days=7)).isoformat()}],
        **extra,
    }  # fmt: skip


def test_meetings_list_and_record_with_action_items(api, users, world):
    account, far_meeting = world["account"], world["far_meeting"]
    r = api("expert").post(f"{BASE}meetings/", _meeting(world, users), format="json")  # a team member records it
    assert r.status_code == 201, r.json()
    meeting = r.json()
    assert meeting["title"] == "季度沟通会" and meeting["actions"][0]["owner"] == users["expert"].pk
    assert meeting["actions"][0]["done"] is False
    rows = api("rep").get(f"{BASE}meetings/", {"account": account.pk}).json()["results"]
    assert [m["id"] for m in rows] == [meeting["id"]] and rows[0]["actions"][0]["title"] == "整理需求"
    assert AuditEntry.objects.filter(object_type__endswith="meeting", object_id=str(meeting["id"])).exists()
    # the rep never sees Shanghai's meeting
    assert far_meeting.pk not in [m["id"] for m in api("rep").get(f"{BASE}meetings/").json()["results"]]
    assert api("rep").get(f"{BASE}meetings/{far_meeting.pk}/").status_code == 404
    assert api("manager").get(f"{BASE}meetings/{far_meeting.pk}/").status_code == 200
    # refused: not in the team, read-only
    assert api("agent").post(f"{BASE}meetings/", _meeting(world, users), format="json").status_code == 403
    assert api("auditor").post(f"{BASE}meetings/", _meeting(world, users), format="json").status_code == 403
    assert Meeting.objects.filter(account=account).count() == 1


def test_a_meeting_with_bad_input_is_refused_per_field_and_not_written(api, users, world):
    kam = api("kam")
    assert _errors(kam.post(f"{BASE}meetings/", _meeting(world, users, title=""), format="json"))["title"] == [
        "Give the meeting a title."
    ]
    future = (timezone.now() + dt.timedelta(days=5)).isoformat()
    assert "held_at" in _errors(kam.post(f"{BASE}meetings/", _meeting(world, users, held_at=future), format="json"))
    outsider = [{"title": "跟进", "owner": users["agent"].pk, "due_date": "2030-01-01"}]
    r = kam.post(f"{BASE}meetings/", _meeting(world, users, actions=outsider), format="json")
    assert _errors(r)["actions"] == {"0": {"owner": ["The owner must be a member of the account's service team."]}}
    undated = [{"title": "跟进", "owner": users["kam"].pk}]
    assert "due_date" in _errors(kam.post(f"{BASE}meetings/", _meeting(world, users, actions=undated),
                                          format="json"))["actions"]["0"]  # fmt: skip
    # the second row's date before the meeting: the service's row error comes back under its position
    late = [{"title": "跟进", "owner": users["kam"].pk, "due_date": "2030-01-01"},
            {"title": "回访", "owner": users["expert"].pk, "due_date": "2001-01-01"}]  # fmt: skip
    assert list(_errors(kam.post(f"{BASE}meetings/", _meeting(world, users, actions=late),
                                 format="json"))["actions"]) == ["1"]  # fmt: skip
    assert not Meeting.objects.filter(account=world["account"]).exists()
    assert not MeetingAction.objects.filter(meeting__account=world["account"]).exists()


def test_a_script_cannot_give_a_meeting_action_to_someone_outside_the_team(users, world):
    """The page and the API offer only the team; the service holds the rule for any other caller too."""
    data = {"held_at": timezone.now() - dt.timedelta(hours=2), "title": "季度会", "minutes": "纪要"}
    outsider = [{"title": "跟进", "owner": users["agent"], "due_date": timezone.localdate()}]
    with pytest.raises(ValidationError) as e:
        services.record_meeting(users["kam"], world["account"], data, outsider)
    assert list(e.value.message_dict) == ["action_1_owner"]
    assert not Meeting.objects.filter(account=world["account"]).exists()


def test_an_action_item_is_ticked_off_by_its_owner_once(api, users, world):
    meeting = services.record_meeting(
        users["kam"], world["account"], {"held_at": timezone.now(), "title": "月会", "minutes": "纪要"},
        [{"title": "送样", "owner": users["expert"], "due_date": timezone.localdate()}],
    )  # fmt: skip
    item = meeting.actions.get()
    url = f"{BASE}meeting-actions/{item.pk}/done/"
    assert api("agent").post(url, {}, format="json").status_code == 403
    assert api("auditor").post(url, {}, format="json").status_code == 403
    assert "done" in _errors(api("expert").post(url, {"done": "maybe"}, format="json"))
    r = api("expert").post(url, {}, format="json")
    assert r.status_code == 200 and r.json()["done"] is True
    first = r.json()["done_at"]
    again = api("expert").post(url, {"done": True}, format="json")  # a double click changes nothing
    assert again.status_code == 200 and again.json()["done_at"] == first
    assert api("auditor").post(url, {"done": True}, format="json").status_code == 403  # not even a no-op
    assert api("rep").get(f"{BASE}meeting-actions/{item.pk}/").json()["done"] is True
    r = api("kam").post(url, {"done": False}, format="json")  # the project manager opens it again
    assert r.status_code == 200 and r.json()["done"] is False and r.json()["done_at"] is None
    far_item = world["far_meeting"].actions.get()
    assert api("rep").post(f"{BASE}meeting-actions/{far_item.pk}/done/", {}, format="json").status_code == 404


# --- agreements: generate and sign ------------------------------------------------------------------------------


def _dates(days_from: int = 0, length: int = 365) -> dict:
    start = timezone.localdate() + dt.timedelta(days=days_from)
    return {"start_date": start.isoformat(), "end_date": (start + dt.timedelta(days=length)).isoformat()}


def test_an_agreement_is_generated_signed_and_its_signed_copy_fetched(api, users, world):
    account = world["account"]
    kam = api("kam")
    r = kam.post(f"{BASE}agreements/", {"account": account.pk, **_dates(), "renewal_notice_days": 30}, format="json")
    assert r.status_code == 201, r.json()
    agreement = r.json()
    year = timezone.localdate().year
    assert agreement["number"].startswith(f"AG-{year}-") and agreement["status"] == AgreementStatus.DRAFT
    assert agreement["plan"] == world["plan"].pk and len(agreement["document_sha256"]) == 64
    assert api("rep").get(f"{BASE}agreements/{agreement['id']}/pdf/").content.startswith(b"%PDF")

    signed_on = timezone.localdate().isoformat()
    url = f"{BASE}agreements/{agreement['id']}/sign/"
    pdf = tiny_pdf()
    r = kam.post(url, {"signed_date": signed_on, "version": agreement["version"],
                       "signed_copy": SimpleUploadedFile("签署件.pdf", pdf, "application/pdf")}, format="multipart")  # fmt: skip
    assert r.status_code == 200, r.json()
    signed = r.json()
    assert signed["status"] == AgreementStatus.SIGNED and signed["signed_date"] == signed_on
    assert signed["signed_copy_name"] == "签署件.pdf" and signed["version"] == agreement["version"] + 1
    copy = api("rep").get(f"{BASE}agreements/{agreement['id']}/signed-copy/")
    assert copy.status_code == 200 and b"".join(copy.streaming_content) == pdf
    assert copy["Content-Type"] == "application/pdf"
    assert AuditEntry.objects.filter(object_id=str(agreement["id"]), action="export", actor=users["rep"]).exists()
    assert AuditEntry.objects.filter(object_id=str(agreement["id"]), action="update", actor=users["kam"]).exists()


def test_generating_an_agreement_is_refused_per_field_and_by_role(api, users, make_user, world):
    account, far = world["account"], world["far"]
    body = {"account": account.pk, **_dates()}
    for role in ("agent", "rep", "expert", "auditor"):
        assert api(role).post(f"{BASE}agreements/", body, format="json").status_code == 403, role
    assert api(make_user("kam2", Role.KAM)).post(f"{BASE}agreements/", body, format="json").status_code == 403
    kam = api("kam")
    bad = {"account": account.pk, **_dates(), "end_date": _dates(-10)["start_date"]}
    assert "end_date" in _errors(kam.post(f"{BASE}agreements/", bad, format="json"))
    assert "renewal_notice_days" in _errors(kam.post(f"{BASE}agreements/", {**body, "renewal_notice_days": 400},
                                                     format="json"))  # fmt: skip
    assert "start_date" in _errors(kam.post(f"{BASE}agreements/", {"account": account.pk}, format="json"))
    # Shanghai's account has no approved plan
    r = api("manager").post(f"{BASE}agreements/", {"account": far.pk, **_dates()}, format="json")
    assert "plan" in _errors(r)
    assert not Agreement.objects.exists()


def test_signing_is_refused_per_field_and_by_role(api, users, world, monkeypatch):
    today = timezone.localdate()
    agreement = services.generate_agreement(users["kam"], world["account"], start_date=today,
                                            end_date=today + dt.timedelta(days=365))  # fmt: skip
    url = f"{BASE}agreements/{agreement.pk}/sign/"

    def body(**extra):
        return {"signed_date": today.isoformat(), "version": agreement.version,
                "signed_copy": SimpleUploadedFile("scan.png", tiny_png(), "image/png"), **extra}  # fmt: skip

    for role in ("agent", "rep", "expert", "auditor"):
        assert api(role).post(url, body(), format="multipart").status_code == 403, role
    kam = api("kam")
    fake = SimpleUploadedFile("scan.pdf", b"%PDF-1.4 not really", "application/pdf")
    assert "signed_copy" in _errors(kam.post(url, body(signed_copy=fake), format="multipart"))
    tomorrow = (today + dt.timedelta(days=1)).isoformat()
    assert "signed_date" in _errors(kam.post(url, body(signed_date=tomorrow), format="multipart"))
    stale = _errors(kam.post(url, body(version=agreement.version + 5), format="multipart"), 409)
    assert stale["current_version"] == agreement.version
    no_file = {"signed_date": today.isoformat(), "version": agreement.version}
    assert _errors(kam.post(url, no_file, format="multipart"))["signed_copy"] == ["Upload the signed copy."]
    assert kam.post(url, {"signed_date": today.isoformat()}, format="json").status_code == 415
    monkeypatch.setattr(services, "SIGNED_COPY_MAX", 1000)  # the upload stops as soon as it passes the limit
    big = SimpleUploadedFile("big.pdf", b"%PDF" + b"0" * 5000, "application/pdf")
    assert _errors(kam.post(url, body(signed_copy=big), format="multipart"))["signed_copy"] == [
        "The file is too large; the limit is 20 MB."
    ]
    agreement.refresh_from_db()
    assert agreement.status == AgreementStatus.DRAFT and not agreement.signed_copy
    assert api("rep").get(f"{BASE}agreements/{agreement.pk}/signed-copy/").status_code == 404


# --- trial offers ------------------------------------------------------------------------------------------------


def test_trial_offers_list_create_and_answer(api, users, world):
    account, product, far_trial = world["account"], world["product"], world["far_trial"]
    body = {"account": account.pk, "product": product.pk, "notes": "试用三个月"}
    r = api("support").post(f"{BASE}trials/", body, format="json")  # a team member records it
    assert r.status_code == 201, r.json()
    trial = r.json()
    assert trial["status"] == "offered" and trial["offered_on"] == timezone.localdate().isoformat()
    assert trial["product_name"].startswith("新药")
    rows = api("rep").get(f"{BASE}trials/", {"account": account.pk}).json()["results"]
    assert [t["id"] for t in rows] == [trial["id"]]
    assert far_trial.pk not in [t["id"] for t in api("rep").get(f"{BASE}trials/").json()["results"]]
    assert api("rep").get(f"{BASE}trials/{far_trial.pk}/").status_code == 404
    for role in ("agent", "auditor", "rep"):
        assert api(role).post(f"{BASE}trials/", body, format="json").status_code == 403, role
    # the refusal in the reader's language (it was Simplified Chinese for everyone)
    refused = api("rep").post(f"{BASE}trials/", body, format="json").json()["detail"]
    assert refused == "You do not have permission to do this."
    assert api("rep", lang="zh-hant").post(f"{BASE}trials/", body, format="json").json()["detail"] != refused
    assert "product" in _errors(api("kam").post(f"{BASE}trials/", {**body, "product": 987654}, format="json"))
    assert "account" in _errors(api("kam").post(f"{BASE}trials/", {"product": product.pk}, format="json"))
    assert TrialOffer.objects.filter(account=account).count() == 1

    url = f"{BASE}trials/{trial['id']}/status/"
    assert "status" in _errors(api("kam").post(url, {"status": "maybe"}, format="json"))
    assert api("agent").post(url, {"status": "accepted", "version": 1}, format="json").status_code == 403
    r = api("kam").post(
        url, {"status": "accepted", "notes": "客户接受", "version": trial["version"]}, format="json"
    )
    assert r.status_code == 200 and r.json()["status"] == "accepted" and r.json()["notes"] == "客户接受"
    assert api("rep").get(f"{BASE}trials/{trial['id']}/").json()["status"] == "accepted"


# --- key-account evaluations ----------------------------------------------------------------------------------


def test_account_reviews_run_for_a_period_and_list(api, users, world):
    account, period, far_review = world["account"], world["period"], world["far_review"]
    r = api("kam").post(f"{BASE}account-reviews/run/", {"account": account.pk, "period": period.lower()},
                        format="json")  # fmt: skip
    assert r.status_code == 200, r.json()
    review = r.json()
    assert review["period"] == period and review["account_number"] == account.number
    parts = review["components"]
    assert [c["name"] for c in parts] == ["satisfaction", "response", "resolution", "complaints", "plan"]
    assert parts[1]["label"] == "First response time"
    assert sum(Decimal(c["contribution"]) for c in parts) == Decimal(review["score"])
    assert AccountReview.objects.filter(account=account, period=period).count() == 1
    # those who run evaluations may compute it too; computing again replaces it
    assert api("analyst").post(f"{BASE}account-reviews/run/", {"account": account.pk, "period": period},
                               format="json").status_code == 200  # fmt: skip
    assert AccountReview.objects.filter(account=account, period=period).count() == 1
    for role in ("agent", "expert", "auditor", "rep"):
        assert api(role).post(f"{BASE}account-reviews/run/", {"account": account.pk, "period": period},
                              format="json").status_code == 403, role  # fmt: skip
    # validation
    kam = api("kam")
    assert "period" in _errors(kam.post(f"{BASE}account-reviews/run/", {"account": account.pk, "period": "2026Q9"},
                                        format="json"))  # fmt: skip
    running = f"{timezone.localdate().year}Q{(timezone.localdate().month - 1) // 3 + 1}"
    r = kam.post(f"{BASE}account-reviews/run/", {"account": account.pk, "period": running}, format="json")
    assert "has not ended" in _errors(r)["period"][0]
    # reads: scoped like the account file
    rows = api("rep").get(f"{BASE}account-reviews/").json()["results"]
    assert [row["account"] for row in rows] == [account.pk]
    assert api("rep").get(f"{BASE}account-reviews/{far_review.pk}/").status_code == 404
    assert api("manager").get(f"{BASE}account-reviews/", {"period": period}).json()["count"] == 2
    assert api("manager").get(f"{BASE}account-reviews/", {"account": "x"}).status_code == 400


def test_a_key_account_manager_who_does_not_run_the_account_cannot_recompute_its_evaluation(
    api, users, make_user, world
):
    """Any key-account manager (they see every customer) could compute an account's evaluation again through the
    API or a hand-made form, though the page offers it only to the account's project manager and leadership."""
    from django.test import Client

    account, period = world["account"], world["period"]
    other = make_user("kam2", Role.KAM)
    r = api(other).post(
        f"{BASE}account-reviews/run/", {"account": account.pk, "period": period}, format="json"
    )
    page = Client()
    page.force_login(other)
    posted = page.post(f"/keyaccounts/{account.pk}/evaluations/", {"period-period": period})

    assert (r.status_code, posted.status_code) == (403, 403)
    assert not AccountReview.objects.filter(account=account, period=period).exists()


# --- scorecards ----------------------------------------------------------------------------------------------------


def test_scorecards_for_leadership_and_each_member_their_own(api, users, world):
    period = world["period"]
    services.review_account(world["account"], period)
    cards = api("manager").get(f"{BASE}scorecards/", {"period": period}).json()
    assert {c["username"] for c in cards} == {"kam", "expert", "support", "aftersales"}
    kam_card = next(c for c in cards if c["username"] == "kam")
    assert kam_card["period"] == period and kam_card["roles"] == ["pm"]
    assert kam_card["accounts"][0]["number"] == world["account"].number and kam_card["average_score"] is not None
    assert len(api("auditor").get(f"{BASE}scorecards/", {"period": period}).json()) == 4
    own = api("expert").get(f"{BASE}scorecards/", {"period": period}).json()
    assert [c["username"] for c in own] == ["expert"]
    assert api("agent").get(f"{BASE}scorecards/", {"period": period}).json() == []  # not in any team
    # another member's card: leadership, or who may open other members' pages
    assert [c["username"] for c in api("kam").get(f"{BASE}scorecards/", {"period": period,
                                                  "user": users["expert"].pk}).json()] == ["expert"]  # fmt: skip
    assert api("expert").get(f"{BASE}scorecards/", {"user": users["kam"].pk}).status_code == 403
    assert api("rep").get(f"{BASE}scorecards/", {"user": users["kam"].pk}).status_code == 403
    default = api("manager").get(f"{BASE}scorecards/").json()  # by default the last quarter that is over
    assert {c["period"] for c in default} == {period} and {c["username"] for c in default} == {c["username"] for c in cards}
    assert "period" in _errors(api("manager").get(f"{BASE}scorecards/", {"period": "9999Q4"}))
    assert "user" in _errors(api("manager").get(f"{BASE}scorecards/", {"user": "kam"}))


# --- resource and incentive records -------------------------------------------------------------------------------


@pytest.fixture
def incentives(users, xiehe, ruijin):
    """Customer evaluations of two half-years: 协和 A (5 %, 年度优秀客户奖) then B; 瑞金 A."""
    model = evaluation.active_model("evaluation")
    for period, as_of in (("2025H1", dt.date(2025, 6, 30)), ("2025H2", dt.date(2025, 12, 31))):
        EvaluationRun.objects.create(model=model, period=period, as_of=as_of, trigger="on_demand",
                                     finished_at=timezone.now())  # fmt: skip
    rows = [(xiehe, "2025H1", "A", "5.00", "年度优秀客户奖"), (xiehe, "2025H2", "B", "2.00", "采购额达标奖"),
            (ruijin, "2025H2", "A", "5.00", "年度优秀客户奖")]  # fmt: skip
    out = {}
    for inst, period, klass, discount, programme in rows:
        out[(inst.pk, period)] = Score.objects.create(
            institution=inst, kind="evaluation", period=period, model=model,
            as_of=dt.date(2025, 6, 30) if period == "2025H1" else dt.date(2025, 12, 31),
            score=Decimal("85") if klass == "A" else Decimal("70"), klass=klass, discount=Decimal(discount),
            programme=programme,
        )  # fmt: skip
    return out


def test_incentive_records_by_customer_and_period(api, users, xiehe, ruijin, incentives):
    rows = api("analyst").get(f"{BASE}incentives/").json()["results"]  # the latest period by default
    assert [(r["customer"], r["class"], r["discount"], r["programme"]) for r in rows] == [
        (ruijin.pk, "A", "5.00", "年度优秀客户奖"), (xiehe.pk, "B", "2.00", "采购额达标奖")]  # fmt: skip
    history = api("analyst").get(f"{BASE}incentives/", {"customer": xiehe.pk}).json()["results"]
    assert [(r["period"], r["discount"]) for r in history] == [("2025H2", "2.00"), ("2025H1", "5.00")]
    members = api("manager").get(f"{BASE}incentives/", {"programme": "年度优秀客户奖", "period": "2025H1"}).json()
    assert [r["customer"] for r in members["results"]] == [xiehe.pk]
    # the rep sees Beijing's customers only; roles without evaluations are refused
    assert [r["customer"] for r in api("rep").get(f"{BASE}incentives/").json()["results"]] == [xiehe.pk]
    far = incentives[(ruijin.pk, "2025H2")]
    assert api("rep").get(f"{BASE}incentives/{far.pk}/").status_code == 404
    assert api("analyst").get(f"{BASE}incentives/{far.pk}/").json()["customer_name"] == ruijin.name
    for role in ("agent", "expert", "pv"):
        assert api(role).get(f"{BASE}incentives/").status_code == 403, role
    assert "customer" in _errors(api("analyst").get(f"{BASE}incentives/", {"customer": "协和"}))
    # a period in any case; what is no period is said, not answered with an empty list
    lower = api("analyst").get(f"{BASE}incentives/", {"period": "2025h1"}).json()["results"]
    assert [(r["customer"], r["period"]) for r in lower] == [(xiehe.pk, "2025H1")]
    for wrong in ("2025-H1", "H1", "2025H3"):
        refused = api("analyst").get(f"{BASE}incentives/", {"period": wrong}, HTTP_ACCEPT_LANGUAGE="en")
        assert refused.status_code == 400 and refused.json()["period"] == [
            "Write the period as 2026H2 (a half-year), 2026Q3 (a quarter) or 2026-11 (a month)."
        ], wrong
    # read only
    assert api("admin").post(f"{BASE}incentives/", {}, format="json").status_code == 405
