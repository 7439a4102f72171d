"""Contact details typed into what a key-account team writes (a proposal's reason, a service plan's goals, a service
meeting's attendees, minutes and action items, a trial offer's notes) were shown in clear to the roles that see
personal data masked (agent, expert, support, after-sales, analyst, auditor), though a customer's own notes were
masked: they are masked alike on the pages, in the API and in the audit trail; what is stored is not changed, and the
roles that see personal data read them as typed."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.models import MeetingAction, ServicePlan

from .programme_fixtures import *  # noqa: F403  (fixtures)

pytestmark = pytest.mark.django_db

REASON = "院办联系人王主任 139-1234-5678"
MINUTES = "药剂科邮箱li.na@example.com，会后发材料"
ACTION = "回电王主任 13912345678"
CLEAR = ("139-1234-5678", "13912345678", "li.na@example.com")


def _clear_in(text: str) -> bool:
    return any(v in text for v in CLEAR)


@pytest.fixture
def written(users, xiehe, staffed):
    """协和's key account, proposed with a reason holding a number, its plan's goals, a meeting's minutes and action."""
    account = staffed(xiehe)
    account.proposals.update(reason=REASON)  # the listing proposal's reason, as the analyst typed it
    kam = users["kam"]
    plan = services.start_plan(kam, account, goals="对接人 139-1234-5678")
    meeting = services.record_meeting(
        kam, account,
        {"held_at": timezone.now().replace(second=0, microsecond=0), "title": "季度沟通会", "minutes": MINUTES,
         "attendees": "王主任 13912345678"},
        [{"title": ACTION, "owner": users["expert"], "due_date": timezone.localdate() + dt.timedelta(days=7)}],
    )  # fmt: skip
    return account, plan, meeting


@pytest.mark.parametrize("role", ["expert", "analyst", "auditor"])
def test_the_account_and_proposal_pages_mask_contact_details_for_roles_that_see_personal_data_masked(
    client_for, written, role
):
    account, _plan, _meeting = written
    client = client_for(role)
    page = client.get(f"/keyaccounts/{account.pk}/").content.decode()
    assert "139****5678" in page and "l***@example.com" in page and not _clear_in(page)
    proposal = account.proposals.get()
    page = client.get(f"/keyaccounts/proposals/{proposal.pk}/").content.decode()
    assert "王主任 139****5678" in page and not _clear_in(page)


def test_roles_that_see_personal_data_read_them_as_typed(client_for, written):
    account, _plan, _meeting = written
    page = client_for("kam").get(f"/keyaccounts/{account.pk}/").content.decode()
    assert "对接人 139-1234-5678" in page and MINUTES in page and ACTION in page
    proposal = account.proposals.get()
    assert REASON in client_for("manager").get(f"/keyaccounts/proposals/{proposal.pk}/").content.decode()


def test_the_api_masks_them_for_roles_that_see_personal_data_masked(api_client, written):
    account, plan, meeting = written
    analyst, kam = api_client("analyst"), api_client("kam")
    proposal = account.proposals.get()
    assert analyst.get(f"/api/v1/keyaccounts/proposals/{proposal.pk}/").json()["reason"] == "院办联系人王主任 139****5678"
    assert kam.get(f"/api/v1/keyaccounts/proposals/{proposal.pk}/").json()["reason"] == REASON
    assert analyst.get(f"/api/v1/keyaccounts/plans/{plan.pk}/").json()["goals"] == "对接人 139****5678"
    shown = api_client("expert").get(f"/api/v1/keyaccounts/meetings/{meeting.pk}/").json()
    assert shown["minutes"] == "药剂科邮箱l***@example.com，会后发材料"
    assert shown["attendees"] == "王主任 139****5678" and shown["actions"][0]["title"] == "回电王主任 139****5678"
    action = MeetingAction.objects.get(meeting=meeting)
    assert api_client("auditor").get(f"/api/v1/keyaccounts/meeting-actions/{action.pk}/").json()["title"] == (
        "回电王主任 139****5678")
    assert kam.get(f"/api/v1/keyaccounts/meetings/{meeting.pk}/").json()["minutes"] == MINUTES
    assert ServicePlan.objects.get(pk=plan.pk).goals == "对接人 139-1234-5678"  # nothing stored is changed


def test_the_audit_trail_masks_them_for_the_auditor(client_for, api_client, users, written):
    _account, _plan, meeting = written
    action = MeetingAction.objects.get(meeting=meeting)
    services.edit_action(users["kam"], action, title="回电李医生 13800138000", owner=users["expert"],
                         due_date=action.due_date, version=action.version)  # fmt: skip
    query = {"object_type": "keyaccounts.meetingaction", "object_id": action.pk}
    page = client_for("auditor").get("/accounts/audit/", query).content.decode()
    assert "139****5678" in page and "138****8000" in page
    assert "13912345678" not in page and "13800138000" not in page
    rows = api_client("auditor").get("/api/v1/audit/", query).json()["results"]
    assert rows and all("13800138000" not in str(r) and "13912345678" not in str(r) for r in rows)
    assert "13800138000" in client_for("admin").get("/accounts/audit/", query).content.decode()


def test_an_action_owner_shown_the_masks_keeps_the_real_details_when_saving_them_back(client_for, api_client, users,
                                                                                      written):  # fmt: skip
    """The product expert edits the meeting's actions (a team member records meetings): the form and the API show
    the text masked, and saving the masks back (with another due date) keeps the stored number."""
    account, _plan, meeting = written
    action = MeetingAction.objects.get(meeting=meeting)
    expert = client_for("expert")
    response = expert.get(f"/keyaccounts/{account.pk}/")
    form = next(a.edit_form for m in response.context["meetings"] for a in m.actions.all() if a.pk == action.pk)
    assert form.initial["title"] == "回电王主任 139****5678"
    later = action.due_date + dt.timedelta(days=3)
    posted = expert.post(f"/keyaccounts/{account.pk}/meetings/actions/{action.pk}/edit/", {
        f"action{action.pk}-title": form.initial["title"], f"action{action.pk}-owner": users["expert"].pk,
        f"action{action.pk}-due_date": later.isoformat(), f"action{action.pk}-version": action.version})  # fmt: skip
    assert posted.status_code == 302
    action.refresh_from_db()
    assert (action.title, action.due_date) == (ACTION, later)
    api = api_client("expert")
    shown = api.get(f"/api/v1/keyaccounts/meeting-actions/{action.pk}/").json()
    answer = api.patch(f"/api/v1/keyaccounts/meeting-actions/{action.pk}/", {
        "title": shown["title"] + "（已约）", "owner": shown["owner"], "due_date": shown["due_date"],
        "version": shown["version"]}, format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    action.refresh_from_db()
    assert action.title == ACTION + "（已约）"


def test_a_team_member_answering_a_trial_offer_keeps_the_notes_real_details(client_for, api_client, users, written):
    """The trial's form offers the notes it would replace, masked for the product expert: saving them back with the
    customer's answer kept 139****5678 in place of the number."""
    from pharmacrm.servicedesk.models import Product

    account, _plan, _meeting = written
    product = Product.objects.create(brand_name="新药", generic_name="新药片", dosage_form="片剂", strength="10mg")
    notes = "试用三个月，药剂科王主任 139-1234-5678"
    trial = services.offer_trial(users["kam"], account, product=product, notes=notes)
    expert = client_for("expert")
    response = expert.get(f"/keyaccounts/{account.pk}/")
    page = response.content.decode()
    assert "王主任 139****5678" in page and "139-1234-5678" not in page
    form = next(t.form for t in response.context["trials"] if t.pk == trial.pk)
    posted = expert.post(f"/keyaccounts/{account.pk}/trials/{trial.pk}/", {
        f"trial{trial.pk}-status": "accepted", f"trial{trial.pk}-notes": form.initial["notes"],
        f"trial{trial.pk}-version": trial.version})  # fmt: skip
    assert posted.status_code == 302
    trial.refresh_from_db()
    assert (trial.status, trial.notes) == ("accepted", notes)
    assert api_client("expert").get(f"/api/v1/keyaccounts/trials/{trial.pk}/").json()["notes"] == (
        "试用三个月，药剂科王主任 139****5678")
    assert api_client("kam").get(f"/api/v1/keyaccounts/trials/{trial.pk}/").json()["notes"] == notes


# a department's opinion on a proposal: its comment, on the proposal page, in the API and in the audit entry (review)
OPINION = "支持；院办联系人王主任 139-1234-5678"


@pytest.fixture
def reviewed(users, xiehe, make_proposal):
    """A proposal in review, with the analyst's (marketing's) opinion holding a number, revised once."""
    proposal = make_proposal(xiehe, submitted=False)
    services.give_opinion(users["analyst"], proposal, opinion="support", comment=OPINION)
    return proposal


@pytest.mark.parametrize("role", ["analyst", "auditor", "expert"])
def test_a_reviewers_comment_is_masked_for_roles_that_see_personal_data_masked(client_for, api_client, reviewed,
                                                                               role):  # fmt: skip
    page = client_for(role).get(f"/keyaccounts/proposals/{reviewed.pk}/").content.decode()
    assert "王主任 139****5678" in page and not _clear_in(page)
    shown = api_client(role).get(f"/api/v1/keyaccounts/proposals/{reviewed.pk}/").json()
    assert "支持；院办联系人王主任 139****5678" in [r["comment"] for r in shown["reviews"]]
    assert not _clear_in(str(api_client(role).get("/api/v1/keyaccounts/proposals/").json()))


def test_a_reviewers_comment_is_masked_in_the_audit_trail_for_the_auditor(client_for, api_client, reviewed):
    query = {"object_type": "keyaccounts.proposal", "object_id": reviewed.pk}
    page = client_for("auditor").get("/accounts/audit/", query).content.decode()
    assert "139****5678" in page and not _clear_in(page)
    rows = api_client("auditor").get("/api/v1/audit/", query).json()["results"]
    reviews = [r["changes"]["review"] for r in rows if "review" in (r["changes"] or {})]
    assert reviews and "139****5678" in str(reviews) and not _clear_in(str(rows))
    assert "139-1234-5678" in client_for("admin").get("/accounts/audit/", query).content.decode()


def test_roles_that_see_personal_data_read_a_reviewers_comment_as_typed(client_for, api_client, reviewed):
    assert OPINION in client_for("kam").get(f"/keyaccounts/proposals/{reviewed.pk}/").content.decode()
    shown = api_client("manager").get(f"/api/v1/keyaccounts/proposals/{reviewed.pk}/").json()
    assert OPINION in [r["comment"] for r in shown["reviews"]]


def test_a_masked_reviewer_revising_their_opinion_keeps_the_stored_details(client_for, api_client, users, reviewed):
    """The analyst is shown their own comment masked in the opinion form; sending it back (with another opinion), on
    the page or through the API, keeps the real number."""
    analyst = client_for("analyst")
    form = analyst.get(f"/keyaccounts/proposals/{reviewed.pk}/").context["opinion_form"]
    assert form.initial["comment"] == "支持；院办联系人王主任 139****5678"
    posted = analyst.post(f"/keyaccounts/proposals/{reviewed.pk}/opinion/", {
        "review-department": "marketing", "review-opinion": "neutral", "review-comment": form.initial["comment"]})
    assert posted.status_code == 302
    review = reviewed.reviews.get(reviewer=users["analyst"])
    assert (review.opinion, review.comment) == ("neutral", OPINION)
    api = api_client("analyst")
    shown = next(r["comment"] for r in api.get(f"/api/v1/keyaccounts/proposals/{reviewed.pk}/").json()["reviews"]
                 if r["reviewer"] == users["analyst"].pk)  # fmt: skip
    answer = api.post(f"/api/v1/keyaccounts/proposals/{reviewed.pk}/opinion/",
                      {"opinion": "support", "comment": shown + "，已沟通", "department": "marketing"}, format="json")
    assert answer.status_code == 200, answer.content
    review.refresh_from_db()
    assert (review.opinion, review.comment) == ("support", OPINION + "，已沟通")


# a service plan item's service and standard, and a service meeting's title, are what the team writes too
ITEM_TITLE = "每月回访王主任 139-1234-5678"
ITEM_STANDARD = "结果发送 li.na@example.com 确认"
MEETING_TITLE = "与王主任 13912345678 沟通会"
TITLES_SHOWN = ("每月回访王主任 139****5678", "结果发送 l***@example.com 确认", "与王主任 139****5678 沟通会")


@pytest.fixture
def titled(users, xiehe, staffed):
    from .programme_fixtures import AREAS, approve_plan, item_data

    account = staffed(xiehe)
    kam = users["kam"]
    plan = services.start_plan(kam, account, goals="保障供应")
    for area in AREAS[1:]:  # the plan covers the four areas
        services.save_item(kam, plan, item_data(users, area))
    item = services.save_item(kam, plan, {"area": "supply", "title": ITEM_TITLE, "standard": ITEM_STANDARD,
                                          "owner": users["expert"], "deadline": timezone.localdate() + dt.timedelta(days=10)})  # fmt: skip
    approve_plan(users, plan)
    meeting = services.record_meeting(kam, account, {"held_at": timezone.now().replace(second=0, microsecond=0),
                                                     "title": MEETING_TITLE, "minutes": "会议纪要", "attendees": ""}, [])  # fmt: skip
    return account, item, meeting


def _sheet(content: bytes) -> str:
    import io

    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(content))
    return " ".join(str(c) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for c in row if c)


@pytest.mark.parametrize("role", ["expert", "analyst", "auditor"])
def test_plan_items_and_meeting_titles_are_masked_for_roles_that_see_personal_data_masked(
    client_for, api_client, users, titled, role
):
    from django.urls import reverse

    account, item, meeting = titled
    client, api = client_for(role), api_client(role)
    texts = [client.get(f"/keyaccounts/{account.pk}/").content.decode(),
             _sheet(client.get(reverse("keyaccounts:report-xlsx")).content)]  # fmt: skip
    assert all(t in texts[0] for t in TITLES_SHOWN) and TITLES_SHOWN[0] in texts[1]
    if role == "expert":  # the item's owner: their own key-account work
        texts.append(client.get(reverse("keyaccounts:my")).content.decode())
        assert TITLES_SHOWN[0] in texts[-1]
    shown = api.get(f"/api/v1/keyaccounts/plan-items/{item.pk}/").json()
    assert (shown["title"], shown["standard"]) == TITLES_SHOWN[:2]
    assert api.get(f"/api/v1/keyaccounts/meetings/{meeting.pk}/").json()["title"] == TITLES_SHOWN[2]
    texts += [str(shown)]
    for kind, pk in (("keyaccounts.planitem", item.pk), ("keyaccounts.meeting", meeting.pk)):
        query = {"object_type": kind, "object_id": pk}
        texts += [client_for("auditor").get("/accounts/audit/", query).content.decode(),
                  str(api_client("auditor").get("/api/v1/audit/", query).json()["results"])]  # fmt: skip
    assert TITLES_SHOWN[2] in texts[-1] and TITLES_SHOWN[0] in texts[-3]  # the entries' names
    for text in texts:
        assert not _clear_in(text)


def test_plan_items_and_meeting_titles_are_read_as_typed_by_roles_that_see_personal_data(
    client_for, api_client, titled
):
    from django.urls import reverse

    account, item, meeting = titled
    page = client_for("kam").get(f"/keyaccounts/{account.pk}/").content.decode()
    assert ITEM_TITLE in page and ITEM_STANDARD in page and MEETING_TITLE in page
    assert ITEM_TITLE in _sheet(client_for("manager").get(reverse("keyaccounts:report-xlsx")).content)
    assert api_client("kam").get(f"/api/v1/keyaccounts/plan-items/{item.pk}/").json()["title"] == ITEM_TITLE
    query = {"object_type": "keyaccounts.meeting", "object_id": meeting.pk}
    assert MEETING_TITLE in str(api_client("admin").get("/api/v1/audit/", query).json()["results"])
