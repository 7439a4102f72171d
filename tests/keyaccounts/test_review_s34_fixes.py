"""Session 34 review of the key-account programme, as its users meet it: a new plan version's validity that ends
before it starts, a de-listed account's page offering a plan decision that is refused, the audit trail's reasons
for listing and de-listing in English on a Chinese page, a meeting dated before the customer was a key account,
and a member removed twice at once."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import PlanStatus
from pharmacrm.keyaccounts.models import ServicePlan

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import AREAS, approve_plan, item_data, sign_code

pytestmark = pytest.mark.django_db


@pytest.fixture
def next_years_plan(users, xiehe, staffed):
    """An account whose plan in force runs from a month ahead for about a year."""
    account = staffed(xiehe)
    today = timezone.localdate()
    plan = services.start_plan(users["kam"], account, valid_from=today + dt.timedelta(days=30),
                               valid_to=today + dt.timedelta(days=400))  # fmt: skip
    for area in AREAS:
        services.save_item(users["kam"], plan, item_data(users, area, today + dt.timedelta(days=60)))
    return account, approve_plan(users, plan)


def test_a_new_version_given_only_an_end_before_the_plan_in_forces_start_is_refused(users, next_years_plan):
    """The end given alone was combined with the start of the plan in force: the draft ran from 3 January to
    14 December before, a validity the draft's own edit form refuses."""
    account, in_force = next_years_plan
    end = timezone.localdate() + dt.timedelta(days=10)
    with pytest.raises(ValidationError) as refused:
        services.start_plan(users["kam"], account, valid_to=end)
    message = refused.value.message_dict["valid_to"][0]
    assert in_force.valid_from.isoformat() in message and end.isoformat() in message
    assert not ServicePlan.objects.filter(account=account, status=PlanStatus.DRAFT).exists()
    # a start given alone after the plan in force's end is named under the start
    with pytest.raises(ValidationError) as refused:
        services.start_plan(users["kam"], account, valid_from=in_force.valid_to + dt.timedelta(days=1))
    assert list(refused.value.message_dict) == ["valid_from"]
    # both given, or one that fits the other, start the draft with the validity it shows
    draft = services.start_plan(users["kam"], account, valid_to=in_force.valid_from + dt.timedelta(days=90))
    assert (draft.valid_from, draft.valid_to) == (in_force.valid_from, in_force.valid_from + dt.timedelta(days=90))


def test_the_page_names_the_end_that_would_come_before_the_start_in_chinese(client, users, next_years_plan):
    account, in_force = next_years_plan
    client.force_login(users["kam"])
    end = timezone.localdate() + dt.timedelta(days=10)
    r = client.post(reverse("keyaccounts:plan-start", args=[account.pk]), {"plan-valid_to": end.isoformat()},
                    HTTP_ACCEPT_LANGUAGE="zh-hans")  # fmt: skip
    assert r.status_code == 400
    errors = r.context["start_form"].errors["valid_to"]
    assert errors == [f"另一日期沿用现行方案后，有效期将在开始前结束（{in_force.valid_from.isoformat()} 至 "
                      f"{end.isoformat()}）：请同时填写起止日期。"]  # fmt: skip
    assert not ServicePlan.objects.filter(account=account, status=PlanStatus.DRAFT).exists()


def test_a_delisted_accounts_page_offers_no_decision_on_the_plan_it_left_waiting(
    client, users, xiehe, staffed, make_proposal, manager2
):
    """The plan submitted before the de-listing stayed on the closed file with its signing form: a manager who typed
    a comment and a one-time code was told only then that the account was de-listed."""
    account = staffed(xiehe)
    plan = services.start_plan(users["kam"], account)
    for area in AREAS:
        services.save_item(users["kam"], plan, item_data(users, area))
    services.submit_plan(users["kam"], plan)
    client.force_login(manager2)
    url = reverse("keyaccounts:account", args=[account.pk])
    assert b'id="plan-decision-form"' in client.get(url, HTTP_ACCEPT_LANGUAGE="en").content
    delisting = make_proposal(xiehe, kind="delist")
    services.decide(users["manager"], delisting, approve=True, comment="合作终止", otp_code=sign_code(users["manager"]))
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert b'id="plan-decision-form"' not in page.content and b"plandecision-otp_code" not in page.content
    assert "该客户已移出重点客户。" in page.content.decode()
    assert "等待厂领导评审。" not in page.content.decode()


def test_the_audit_trail_gives_the_reasons_of_a_listing_and_a_delisting_in_the_readers_language(
    users, xiehe, with_plan, make_proposal, client_for
):
    """The customer's tier set by the listing, given back by the de-listing, and the agreement the de-listing ended
    read "原因 key-account listing" on the Chinese audit page: codes the services write, shown as they were."""
    from pharmacrm.core.templatetags.crm import AUDIT_VALUES
    from pharmacrm.keyaccounts.services import RECOMPUTE_REASON

    account, _plan = with_plan(xiehe)
    services.generate_agreement(users["manager"], account, start_date=timezone.localdate(),
                                end_date=timezone.localdate() + dt.timedelta(days=365))  # fmt: skip
    delisting = make_proposal(xiehe, kind="delist")
    services.decide(users["manager"], delisting, approve=True, comment="合作终止", otp_code=sign_code(users["manager"]))
    page = client_for("auditor").get(reverse("audit"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "key-account" not in text
    assert "原因 列入重点客户" in text and "原因 移出重点客户" in text
    assert RECOMPUTE_REASON in AUDIT_VALUES["reason"]  # the recomputed evaluations' reason is known too


def test_a_plan_item_sent_twice_is_added_once(users, xiehe, staffed, client_for, api_client):
    """A double click on "Add" (or the browser's "send again") put the same commitment in the draft twice: the plan
    went to leadership, and into the agreement, with it listed twice. Meetings and trial offers were guarded."""
    from pharmacrm.keyaccounts.models import PlanItem

    account = staffed(xiehe)
    draft = services.start_plan(users["kam"], account)
    deadline = timezone.localdate() + dt.timedelta(days=30)
    url = reverse("keyaccounts:item-add", args=[account.pk])
    data = {"item-area": "training", "item-title": "合理用药培训", "item-standard": "培训 2 场",
            "item-owner": users["expert"].pk, "item-deadline": deadline.isoformat()}  # fmt: skip
    kam = client_for("kam")
    page = kam.get(reverse("keyaccounts:account", args=[account.pk])).content.decode()
    assert f'action="{url}" novalidate id="item-form" data-submit-once>' in page
    assert kam.post(url, data).status_code == 302
    again = kam.post(url, data, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert again.status_code == 409
    assert (f"该服务项目已在方案中：“合理用药培训”（培训），负责人 {users['expert']}，截止 {deadline.isoformat()}。"
            "未保存新的记录。") in again.content.decode()  # fmt: skip
    assert PlanItem.objects.filter(plan=draft).count() == 1
    # through the API too; another deadline (or owner, title, area) is another item
    api = api_client("kam")
    body = {"plan": draft.pk, "area": "training", "title": "合理用药培训", "standard": "培训 2 场",
            "owner": users["expert"].pk, "deadline": deadline.isoformat()}  # fmt: skip
    assert api.post("/api/v1/keyaccounts/plan-items/", body, format="json").status_code == 400
    later = {**body, "deadline": (deadline + dt.timedelta(days=1)).isoformat()}
    assert api.post("/api/v1/keyaccounts/plan-items/", later, format="json").status_code == 201
    assert PlanItem.objects.filter(plan=draft).count() == 2


def test_a_member_removed_by_two_people_at_once_leaves_the_team_once(users, xiehe, staffed, client_for):
    """Both requests found the member before either removed them; the second, waiting for the first, removed nobody
    but still wrote a second "left the team" entry and told its author the removal was done."""
    from pharmacrm.core.models import AuditEntry
    from pharmacrm.keyaccounts.models import TeamMember, TeamTenure

    account = staffed(xiehe)
    seen_by_one = TeamMember.objects.select_related("user", "account").get(account=account, user=users["support"])
    seen_by_other = TeamMember.objects.select_related("user", "account").get(pk=seen_by_one.pk)
    services.remove_member(users["manager"], seen_by_one)
    entries = AuditEntry.objects.filter(object_type="keyaccounts.keyaccount", object_id=str(account.pk)).count()
    with pytest.raises(ValidationError) as refused:
        services.remove_member(users["admin"], seen_by_other)
    assert refused.value.messages == ["该团队成员不存在。"]  # the product's language outside a request
    assert AuditEntry.objects.filter(object_type="keyaccounts.keyaccount", object_id=str(account.pk)).count() == entries
    assert TeamTenure.objects.filter(account=account, user=users["support"]).count() == 1


def test_an_item_saved_while_leadership_approves_the_plan_does_not_change_the_signed_plan(users, xiehe, staffed):
    """The item's form was checked against the draft as it was read; leadership's approval committed before the save.
    The deadline moved in the plan in force, unseen by the approver and without a new version, and its overdue
    clock still ran from the deadline approved."""
    from pharmacrm.keyaccounts.models import PlanItem

    account = staffed(xiehe)
    draft = services.start_plan(users["kam"], account)
    for area in AREAS:
        services.save_item(users["kam"], draft, item_data(users, area))
    read_before = ServicePlan.objects.get(pk=draft.pk)  # the request read the plan as a draft
    item = PlanItem.objects.filter(plan=draft, area=AREAS[0]).select_related("plan").get()
    approve_plan(users, draft)
    moved = {**item_data(users, AREAS[0]), "deadline": item.deadline + dt.timedelta(days=20)}
    with pytest.raises(ValidationError) as refused:
        services.save_item(users["kam"], read_before, moved, item=item, version=item.version)
    assert refused.value.messages == ["只有草稿（或被退回的方案）才能修改。"]
    item.refresh_from_db()
    assert item.deadline == timezone.localdate() + dt.timedelta(days=30)
    with pytest.raises(ValidationError):  # nor is an item added to it
        services.save_item(users["kam"], read_before, {**item_data(users, AREAS[1]), "title": "新增项目"})
    assert PlanItem.objects.filter(plan=draft).count() == len(AREAS)


def test_approving_a_listing_of_a_customer_that_became_a_key_account_by_a_merge_is_refused(
    client, users, xiehe, beijing, listed, make_proposal, manager2
):
    """The customer was proposed; a duplicate record of it, listed already, was merged into it while the proposal
    waited for leadership. Approving it opened a second active file for the customer: the database refused, the
    manager got a server error and had spent their one-time code."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from pharmacrm.customers import services as customers
    from pharmacrm.keyaccounts.choices import ProposalStatus
    from pharmacrm.keyaccounts.models import KeyAccount

    duplicate = customers.create_institution(users["admin"], {"name": "协和东院", "kind": "hospital", "region": beijing})
    account = listed(duplicate)
    proposal = make_proposal(xiehe)
    customers.merge(users["manager"], xiehe, duplicate)
    code = sign_code(manager2)
    client.force_login(manager2)
    r = client.post(reverse("keyaccounts:proposal-decide", args=[proposal.pk]), {
        "decision-decision": "approve", "decision-comment": "", "decision-otp_code": code,
        "decision-version": proposal.version}, HTTP_ACCEPT_LANGUAGE="zh-hans")  # fmt: skip
    assert r.status_code == 400
    assert f"该客户已是重点客户（{account.number}）。" in r.content.decode()
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.SUBMITTED
    assert list(KeyAccount.objects.filter(institution=xiehe, status="active")) == [account]
    # the code was not used up: the manager rejects the proposal with it
    assert TOTPDevice.objects.get(user=manager2).last_t == -1
    services.decide(manager2, proposal, approve=False, comment="已通过合并成为重点客户", otp_code=code)
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.REJECTED


def test_a_returned_plan_submitted_again_waits_for_a_decision_without_the_returns(
    users, xiehe, staffed, api_client
):
    """Leadership returned the plan; the kam changed it and submitted it again. It kept the return's decider, date and
    comment: the versions table showed it as decided, and the API answered a submitted plan with `decided_by`."""
    account = staffed(xiehe)
    today = timezone.localdate()
    plan = services.start_plan(users["kam"], account)
    for area in AREAS:
        services.save_item(users["kam"], plan, item_data(users, area, today + dt.timedelta(days=60)))
    services.submit_plan(users["kam"], plan)
    plan.refresh_from_db()
    code = sign_code(users["manager"])
    services.decide_plan(users["manager"], plan, approve=False, comment="培训场次太少", otp_code=code)
    plan.refresh_from_db()
    assert (plan.status, plan.decision_comment) == (PlanStatus.REJECTED, "培训场次太少")

    services.submit_plan(users["kam"], plan)

    plan.refresh_from_db()
    assert plan.status == PlanStatus.SUBMITTED
    assert (plan.decided_by, plan.decided_at, plan.decision_comment, plan.signature) == (None, None, "", None)
    body = api_client("kam").get(f"/api/v1/keyaccounts/plans/{plan.pk}/").json()
    decision = (body["status"], body["decided_by"], body["decided_at"], body["decision_comment"])
    assert decision == ("submitted", None, None, "")
    # approved now: the decision shown is the approval
    services.decide_plan(users["manager"], plan, approve=True, otp_code=sign_code(users["manager"]))
    plan.refresh_from_db()
    assert (plan.status, plan.decided_by, plan.decision_comment) == (PlanStatus.APPROVED, users["manager"], "")
