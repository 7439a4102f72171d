"""The key-account programme pages per role, and what a user sees and does on them: the signed decision
form with its one-time code, the inbox, the key-account file with its team, plan and agreements, the
archive, the member pages, scorecards and the progress report."""

import datetime as dt
import io

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from pharmacrm.core.models import AuditEntry
from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import PlanArea, PlanStatus, ProposalStatus, TeamRole
from pharmacrm.keyaccounts.models import KeyAccount, PlanItem, TeamMember

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import AREAS, sign_code, tiny_png

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
LEADERSHIP = {"admin", "manager", "auditor"}
PROPOSERS = {"admin", "manager", "analyst"}


@pytest.fixture
def programme(users, xiehe, ruijin, with_plan, make_proposal):
    """Xiehe (Beijing, in the rep's territory) is a key account with a plan and an agreement; Ruijin
    (Shanghai) has a proposal waiting for the leadership."""
    account, plan = with_plan(xiehe)
    today = timezone.localdate()
    agreement = services.generate_agreement(users["kam"], account, start_date=today,
                                            end_date=today + dt.timedelta(days=365))  # fmt: skip
    proposal = make_proposal(ruijin)
    return {"account": account, "plan": plan, "agreement": agreement, "proposal": proposal}


@pytest.mark.parametrize("role", ROLES)
def test_every_page_per_role(client_for, users, programme, role):
    c = client_for(role)
    account, agreement, proposal = programme["account"], programme["agreement"], programme["proposal"]
    pages = {
        reverse("keyaccounts:home"): 200,
        reverse("keyaccounts:inbox"): 200,
        reverse("keyaccounts:proposals"): 200,
        reverse("keyaccounts:account", args=[account.pk]): 200,
        reverse("keyaccounts:agreements"): 200,
        reverse("keyaccounts:agreement-pdf", args=[agreement.pk]): 200,
        reverse("keyaccounts:my"): 200,
        reverse("keyaccounts:ka-panel", args=[account.institution_id]): 200,
        reverse("keyaccounts:report-xlsx"): 200,
        reverse("keyaccounts:scorecards"): 200 if role in LEADERSHIP else 403,
        reverse("keyaccounts:member", args=[users["kam"].pk]): 200 if role in LEADERSHIP | {"kam"} else 403,
        # Ruijin lies outside the rep's territory
        reverse("keyaccounts:proposal", args=[proposal.pk]): 404 if role == "rep" else 200,
        reverse("keyaccounts:proposal-create") + f"?institution={account.institution_id}&kind=delist":
            200 if role in PROPOSERS else 403,
    }  # fmt: skip
    for url, expected in pages.items():
        assert c.get(url).status_code == expected, url


def test_the_rep_does_not_see_a_key_account_outside_the_territory(client_for, users, ruijin, listed):
    account = listed(ruijin)
    c = client_for("rep")
    assert c.get(reverse("keyaccounts:account", args=[account.pk])).status_code == 404
    assert account.number not in c.get(reverse("keyaccounts:home")).content.decode()
    assert client_for("kam").get(reverse("keyaccounts:account", args=[account.pk])).status_code == 200


def test_the_list_shows_the_pm_plan_agreement_and_overdue_items(
    client_for, programme, django_assert_max_num_queries
):
    PlanItem.objects.filter(plan=programme["plan"], area=PlanArea.SUPPLY).update(
        deadline=timezone.localdate() - dt.timedelta(days=2)
    )
    c = client_for("manager")
    with django_assert_max_num_queries(20):
        html = c.get(reverse("keyaccounts:home")).content.decode()
    assert programme["account"].number in html and programme["agreement"].number in html
    assert 'class="badge badge-delete">1<' in html  # one overdue item
    assert "kam" in html


def test_a_candidate_becomes_a_proposal_with_its_score(client_for, users, ruijin, candidate):
    candidate(ruijin, score="88.00")
    c = client_for("analyst")
    url = reverse("keyaccounts:proposal-create") + f"?institution={ruijin.pk}"
    page = c.get(url).content.decode()
    assert "88.00" in page and 'data-component="amount"' in page
    assert '<td class="num">50%</td>' in page  # a weight as a percentage, as on the candidate list (not 0.5)
    response = c.post(
        reverse("keyaccounts:proposal-create"), {"institution": ruijin.pk, "kind": "list", "reason": ""}
    )
    assert response.status_code == 400 and "id_reason_error" in response.content.decode()
    response = c.post(reverse("keyaccounts:proposal-create"), {"institution": ruijin.pk, "kind": "list",
                                                               "reason": "年采购额大"})  # fmt: skip
    assert response.status_code == 302
    proposal = services.proposals_for(users["analyst"]).get(institution=ruijin)
    assert proposal.score == 88 and proposal.components[0]["name"] == "amount"


def test_a_status_that_does_not_exist_lists_no_proposal_and_says_so(client_for, users, ruijin, make_proposal):
    proposal = make_proposal(ruijin)
    c, url = client_for("analyst"), reverse("keyaccounts:proposals")
    row = f'class="proposal-row" data-id="{proposal.pk}"'
    assert row in c.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()

    page = c.get(url, {"status": "nonsense"}, HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert row not in page  # not every proposal, as if no filter had been asked for
    assert 'id="proposal-filter-error"' in page and "There is no proposal status “nonsense”" in page
    page = c.get(url, {"status": proposal.status}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert row in page and "proposal-filter-error" not in page


def test_a_reviewer_speaks_only_for_their_department(client_for, users, xiehe, make_proposal):
    proposal = make_proposal(xiehe, submitted=False)
    c = client_for("agent")
    page = c.get(reverse("keyaccounts:proposal", args=[proposal.pk])).content.decode()
    assert 'value="service"' in page and 'value="marketing"' not in page
    url = reverse("keyaccounts:proposal-opinion", args=[proposal.pk])
    assert c.post(url, {"review-department": "marketing", "review-opinion": "support"}).status_code == 400
    assert c.post(url, {"review-department": "service", "review-opinion": "support"}).status_code == 302
    assert proposal.reviews.get(reviewer=users["agent"]).department == "service"
    assert (
        client_for("manager")
        .post(url, {"review-department": "service", "review-opinion": "support"})
        .status_code
        == 403
    )


def test_send_to_leadership_from_the_page(client_for, users, xiehe):
    proposal = services.propose(users["analyst"], xiehe, reason="重点医院")
    c = client_for("analyst")
    url = reverse("keyaccounts:proposal-submit", args=[proposal.pk])
    response = c.post(url, {"submit-version": proposal.version})
    assert response.status_code == 400 and 'class="alert alert-error"' in response.content.decode()
    services.give_opinion(users["analyst"], proposal, opinion="support")
    services.give_opinion(users["kam"], proposal, opinion="support")  # the review is cross-department
    assert c.post(url, {"submit-version": proposal.version}).status_code == 302
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.SUBMITTED


def test_a_wrong_code_shows_under_the_field_and_leaves_the_proposal_submitted(
    client_for, users, xiehe, make_proposal
):
    proposal = make_proposal(xiehe)
    sign_code(users["manager"])
    c = client_for("manager")
    data = {"decision-decision": "approve", "decision-comment": "", "decision-otp_code": "123456",
            "decision-version": proposal.version}  # fmt: skip
    response = c.post(reverse("keyaccounts:proposal-decide", args=[proposal.pk]), data)
    assert response.status_code == 400
    html = response.content.decode()
    errors = html.split('id="id_decision-otp_code_error"')[1].split("</div>")[0]  # the id aria-describedby names
    assert 'class="error"' in errors
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.SUBMITTED
    data["decision-otp_code"] = sign_code(users["manager"])
    response = c.post(reverse("keyaccounts:proposal-decide", args=[proposal.pk]), data)
    account = KeyAccount.objects.get(institution=xiehe)
    assert response.status_code == 302 and response.url == reverse("keyaccounts:account", args=[account.pk])


def test_the_proposer_who_is_a_manager_is_told_they_cannot_decide(client_for, users, xiehe, make_proposal):
    proposal = make_proposal(xiehe, by=users["manager"])
    page = client_for("manager").get(reverse("keyaccounts:proposal", args=[proposal.pk])).content.decode()
    assert 'id="own-proposal"' in page and 'id="decision-form"' not in page
    data = {"decision-decision": "approve", "decision-otp_code": sign_code(users["manager"]),
            "decision-version": proposal.version}  # fmt: skip
    assert (
        client_for("manager")
        .post(reverse("keyaccounts:proposal-decide", args=[proposal.pk]), data)
        .status_code
        == 403
    )
    assert (
        client_for("analyst")
        .post(reverse("keyaccounts:proposal-decide", args=[proposal.pk]), data)
        .status_code
        == 403
    )


def test_the_inbox_lists_what_waits_for_me(client_for, users, xiehe, ruijin, make_proposal, staffed):
    waiting = make_proposal(ruijin)
    account = staffed(xiehe)
    plan = services.start_plan(users["kam"], account)
    for area in AREAS:
        services.save_item(users["kam"], plan, {"area": area, "title": f"项 {area}", "standard": "标准",
                                                "owner": users["kam"], "deadline": timezone.localdate()})  # fmt: skip
    services.submit_plan(users["kam"], plan)
    manager = client_for("manager").get(reverse("keyaccounts:inbox")).content.decode()
    assert waiting.number in manager and f'data-id="{plan.pk}"' in manager
    agent = client_for("agent").get(reverse("keyaccounts:inbox")).content.decode()
    assert waiting.number not in agent  # in leadership's hands, no opinion asked
    fresh = services.propose(users["analyst"], beijing_hospital(users, "天坛医院"), reason="新客户")
    agent = client_for("agent").get(reverse("keyaccounts:inbox")).content.decode()
    assert fresh.number in agent and 'id="to-review"' in agent


def beijing_hospital(users, name):
    from pharmacrm.core.models import Region
    from pharmacrm.customers import services as customers

    return customers.create_institution(users["admin"], {"name": name, "kind": "hospital",
                                                         "region": Region.objects.get(code="110105")})  # fmt: skip


def test_the_team_picker_offers_users_with_a_needed_role_only(client_for, users, xiehe, listed):
    account = listed(xiehe)
    c = client_for("manager")
    page = c.get(reverse("keyaccounts:account", args=[account.pk])).content.decode()
    picker = page.split('name="member-user"')[1].split("</select>")[0]
    assert f'value="{users["expert"].pk}"' in picker and f'value="{users["agent"].pk}"' not in picker
    url = reverse("keyaccounts:member-add", args=[account.pk])
    response = c.post(url, {"member-role": TeamRole.PRODUCT_EXPERT, "member-user": users["support"].pk})
    assert response.status_code == 400 and 'id="id_member-user_error"' in response.content.decode()
    assert (
        c.post(url, {"member-role": TeamRole.PROJECT_MANAGER, "member-user": users["kam"].pk}).status_code
        == 302
    )
    assert TeamMember.objects.filter(
        account=account, user=users["kam"], role=TeamRole.PROJECT_MANAGER
    ).exists()
    assert (
        client_for("agent").post(url, {"member-role": "pm", "member-user": users["kam"].pk}).status_code
        == 403
    )


def test_the_pm_builds_and_submits_the_plan_and_the_manager_signs_it(client_for, users, xiehe, staffed):
    account = staffed(xiehe)
    kam = client_for("kam")
    assert (
        kam.post(reverse("keyaccounts:plan-start", args=[account.pk]), {"plan-goals": "保障供应"}).status_code
        == 302
    )
    deadline = (timezone.localdate() + dt.timedelta(days=20)).isoformat()
    for area in AREAS[:3]:
        r = kam.post(reverse("keyaccounts:item-add", args=[account.pk]), {
            "item-area": area, "item-title": f"项目 {area}", "item-standard": "24 小时响应",
            "item-owner": users["kam"].pk, "item-deadline": deadline})  # fmt: skip
        assert r.status_code == 302
    r = kam.post(reverse("keyaccounts:plan-submit", args=[account.pk]), {"plansubmit-version": 1}, follow=True)
    assert str(PlanArea.TRAINING.label) in r.content.decode()  # the refusal, at the top of the page
    kam.post(reverse("keyaccounts:item-add", args=[account.pk]), {
        "item-area": PlanArea.TRAINING, "item-title": "培训", "item-standard": "每季度一次",
        "item-owner": users["expert"].pk, "item-deadline": deadline})  # fmt: skip
    plan = services.open_plan(account)
    assert kam.post(reverse("keyaccounts:plan-submit", args=[account.pk]),
                    {"plansubmit-version": plan.version}).status_code == 302  # fmt: skip
    plan.refresh_from_db()
    manager = client_for("manager")
    data = {
        "plandecision-decision": "approve",
        "plandecision-otp_code": "999999",
        "plandecision-version": plan.version,
    }
    sign_code(users["manager"])
    r = manager.post(reverse("keyaccounts:plan-decide", args=[account.pk]), data)
    assert r.status_code == 400
    data["plandecision-otp_code"] = sign_code(users["manager"])
    assert manager.post(reverse("keyaccounts:plan-decide", args=[account.pk]), data).status_code == 302
    plan.refresh_from_db()
    assert plan.status == PlanStatus.APPROVED
    assert kam.post(reverse("keyaccounts:plan-decide", args=[account.pk]), data).status_code in (403, 404)


def test_the_file_flags_overdue_items_and_the_owner_reports_progress(client_for, users, programme):
    plan = programme["plan"]
    item = plan.items.get(area=PlanArea.SUPPLY)
    PlanItem.objects.filter(pk=item.pk).update(deadline=timezone.localdate() - dt.timedelta(days=1))
    url = reverse("keyaccounts:account", args=[programme["account"].pk])
    page = client_for("agent").get(url).content.decode()
    assert "overdue-flag" in page and 'class="subform progress-form"' not in page
    kam = client_for("kam")
    assert 'class="subform progress-form"' in kam.get(url).content.decode()
    r = kam.post(reverse("keyaccounts:item-progress", args=[programme["account"].pk, item.pk]),
                 {f"progress{item.pk}-status": "in_progress", f"progress{item.pk}-progress": "40",
                  f"progress{item.pk}-version": item.version})  # fmt: skip
    assert r.status_code == 302
    item.refresh_from_db()
    assert item.progress == 40
    stale = kam.post(reverse("keyaccounts:item-progress", args=[programme["account"].pk, item.pk]),
                     {f"progress{item.pk}-status": "done", f"progress{item.pk}-version": 1})  # fmt: skip
    assert stale.status_code == 409 and 'class="alert alert-error"' in stale.content.decode()
    item.refresh_from_db()
    assert item.progress == 40


def test_agreement_generation_pdf_signing_and_archive(client_for, users, programme, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    account = programme["account"]
    kam = client_for("kam")
    today = timezone.localdate()
    r = kam.post(reverse("keyaccounts:agreement-create", args=[account.pk]), {
        "agreement-start_date": today.isoformat(), "agreement-end_date": today.isoformat(),
        "agreement-renewal_notice_days": 60})  # fmt: skip
    assert r.status_code == 400
    r = kam.post(reverse("keyaccounts:agreement-create", args=[account.pk]), {
        "agreement-start_date": today.isoformat(), "agreement-end_date": (today + dt.timedelta(days=365)).isoformat(),
        "agreement-renewal_notice_days": 60})  # fmt: skip
    assert r.status_code == 400  # the programme's agreement covers this term already
    renewal = today + dt.timedelta(days=366)
    r = kam.post(reverse("keyaccounts:agreement-create", args=[account.pk]), {
        "agreement-start_date": renewal.isoformat(), "agreement-end_date": (renewal + dt.timedelta(days=365)).isoformat(),
        "agreement-renewal_notice_days": 60})  # fmt: skip
    assert r.status_code == 302
    agreement = account.agreements.order_by("-id").first()
    pdf = kam.get(reverse("keyaccounts:agreement-pdf", args=[agreement.pk]))
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert AuditEntry.objects.filter(action="export", object_id=str(agreement.pk)).exists()
    url = reverse("keyaccounts:agreement-signed", args=[agreement.pk])
    prefix = f"signed{agreement.pk}"
    bad = io.BytesIO(b"PK\x03\x04 a zip")
    bad.name = "signed.pdf"
    r = kam.post(url, {f"{prefix}-signed_date": today.isoformat(), f"{prefix}-signed_copy": bad,
                       f"{prefix}-version": agreement.version})  # fmt: skip
    assert r.status_code == 400 and f'id="id_{prefix}-signed_copy_error"' in r.content.decode()
    good = io.BytesIO(tiny_png())
    good.name = "扫描件.png"
    r = kam.post(url, {f"{prefix}-signed_date": today.isoformat(), f"{prefix}-signed_copy": good,
                       f"{prefix}-version": agreement.version})  # fmt: skip
    assert r.status_code == 302
    copy = kam.get(reverse("keyaccounts:agreement-signed-copy", args=[agreement.pk]))
    assert copy["Content-Type"] == "image/png" and b"".join(copy.streaming_content).startswith(b"\x89PNG")
    archive = client_for("auditor").get(reverse("keyaccounts:agreements"), {"q": "协和", "status": "signed"})
    assert agreement.number in archive.content.decode()
    archive = client_for("auditor").get(reverse("keyaccounts:agreements"), {"q": "瑞金"})
    assert agreement.number not in archive.content.decode()
    assert client_for("agent").post(url, {f"{prefix}-signed_date": today.isoformat()}).status_code == 403


def test_meetings_actions_trials_and_evaluation(client_for, users, programme):
    from pharmacrm.servicedesk.models import Product

    account = programme["account"]
    # listed a year ago: last quarter can be evaluated
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - dt.timedelta(days=365))
    kam = client_for("kam")
    now = timezone.localtime()
    r = kam.post(reverse("keyaccounts:meeting-create", args=[account.pk]), {
        "meeting-held_at": now.strftime("%Y-%m-%dT%H:%M"), "meeting-title": "季度沟通会", "meeting-minutes": "讨论供应",
        "meeting-action_1_title": "整理需求", "meeting-action_1_owner": users["expert"].pk,
        "meeting-action_1_due": (now.date() + dt.timedelta(days=7)).isoformat()})  # fmt: skip
    assert r.status_code == 302
    action = account.meetings.get().actions.get()
    assert (
        client_for("expert")
        .post(reverse("keyaccounts:action-toggle", args=[account.pk, action.pk]))
        .status_code
        == 302
    )
    action.refresh_from_db()
    assert action.done_at is not None
    assert (
        client_for("auditor")
        .post(reverse("keyaccounts:action-toggle", args=[account.pk, action.pk]))
        .status_code
        == 403
    )
    product = Product.objects.create(
        brand_name="新药", generic_name="新药片", dosage_form="片剂", strength="10mg"
    )
    assert kam.post(reverse("keyaccounts:trial-create", args=[account.pk]),
                    {"trial-product": product.pk, "trial-notes": "试用三个月"}).status_code == 302  # fmt: skip
    trial = account.trials.get()
    assert kam.post(reverse("keyaccounts:trial-update", args=[account.pk, trial.pk]),
                    {f"trial{trial.pk}-status": "accepted"}).status_code == 302  # fmt: skip
    r = kam.post(reverse("keyaccounts:review-run", args=[account.pk]), {"period-period": "2026Q9"})
    assert r.status_code == 400
    period = services.previous_quarter(timezone.localdate())
    assert (
        kam.post(reverse("keyaccounts:review-run", args=[account.pk]), {"period-period": period}).status_code
        == 302
    )
    page = kam.get(reverse("keyaccounts:account", args=[account.pk])).content.decode()
    assert f'data-period="{period}"' in page and "季度沟通会" in page
    assert client_for("agent").post(reverse("keyaccounts:review-run", args=[account.pk]),
                                    {"period-period": period}).status_code == 403  # fmt: skip


def test_updating_a_trial_shows_the_notes_it_replaces_and_audits_them(client_for, users, programme):
    """The trial's update form came with empty notes: the KAM typed the customer's answer, saved, and the notes of
    the offer (quantities, terms) were gone — replaced, and not in the audit trail either."""
    from pharmacrm.servicedesk.models import Product

    account = programme["account"]
    product = Product.objects.create(brand_name="新药", generic_name="新药片", dosage_form="片剂", strength="10mg")
    trial = services.offer_trial(users["kam"], account, product=product, notes="免费提供 10 盒，试用三个月")
    kam = client_for("kam")
    page = kam.get(reverse("keyaccounts:account", args=[account.pk])).content.decode()
    form = page[page.index(reverse("keyaccounts:trial-update", args=[account.pk, trial.pk])):]
    assert "免费提供 10 盒，试用三个月</textarea>" in form[:form.index("</form>")]

    kam.post(reverse("keyaccounts:trial-update", args=[account.pk, trial.pk]),
             {f"trial{trial.pk}-status": "accepted", f"trial{trial.pk}-notes": "客户同意，3 月起试用"})  # fmt: skip
    trial.refresh_from_db()
    assert (trial.status, trial.notes) == ("accepted", "客户同意，3 月起试用")
    entry = AuditEntry.objects.filter(object_type="keyaccounts.trialoffer", object_id=str(trial.pk),
                                      action="update").get()  # fmt: skip
    assert entry.changes["notes"] == ["免费提供 10 盒，试用三个月", "客户同意，3 月起试用"]


def test_two_people_updating_one_trial_the_later_save_is_refused(client_for, users, programme):
    """The KAM and the product expert opened the same trial offer; the expert recorded the customer's refusal, then
    the KAM saved "accepted" from the page loaded before: the refusal was silently overwritten."""
    from pharmacrm.servicedesk.models import Product

    account = programme["account"]
    product = Product.objects.create(
        brand_name="新药", generic_name="新药片", dosage_form="片剂", strength="10mg"
    )
    trial = services.offer_trial(users["kam"], account, product=product, notes="试用三个月")
    page = client_for("kam").get(reverse("keyaccounts:account", args=[account.pk])).content.decode()
    form = page[page.index(reverse("keyaccounts:trial-update", args=[account.pk, trial.pk])) :]
    assert f'name="trial{trial.pk}-version" value="{trial.version}"' in form[: form.index("</form>")]
    url = reverse("keyaccounts:trial-update", args=[account.pk, trial.pk])
    loaded = trial.version
    assert client_for("expert").post(url, {f"trial{trial.pk}-status": "declined", f"trial{trial.pk}-notes": "客户不试用",
                                           f"trial{trial.pk}-version": loaded}).status_code == 302  # fmt: skip
    stale = client_for("kam").post(url, {f"trial{trial.pk}-status": "accepted", f"trial{trial.pk}-notes": "客户接受",
                                         f"trial{trial.pk}-version": loaded}, HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert stale.status_code == 409  # as a stale interaction or ticket page: the record changed, not the input
    assert "Someone else changed this record while you were editing it." in stale.content.decode()
    trial.refresh_from_db()
    assert (trial.status, trial.notes) == ("declined", "客户不试用")


def test_member_page_scorecards_and_the_progress_report(client_for, users, programme):
    page = client_for("kam").get(reverse("keyaccounts:my")).content.decode()
    assert programme["account"].number in page and "服务项目" in page
    # a key account since before 2026Q3 (a scorecard counts the days the customer was one)
    KeyAccount.objects.filter(pk=programme["account"].pk).update(listed_at=timezone.now() - dt.timedelta(days=400))
    cards = (
        client_for("manager").get(reverse("keyaccounts:scorecards"), {"period": "2026Q3"}).content.decode()
    )
    assert 'data-user="kam"' in cards
    assert client_for("manager").get(reverse("keyaccounts:scorecards"), {"period": "bad"}).status_code == 200
    xlsx = client_for("manager").get(reverse("keyaccounts:report-xlsx"))
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet.cell(2, 1).value == programme["account"].number and sheet.cell(2, 4).value == 4
    pdf = client_for("manager").get(reverse("keyaccounts:report-pdf"), {"account": programme["account"].pk})
    assert pdf.content.startswith(b"%PDF")
    assert AuditEntry.objects.filter(action="export", actor=users["manager"]).count() >= 2


def test_a_refused_item_edit_opens_the_page_at_the_plan_not_the_top(client_for, users, staffed, xiehe):
    account = staffed(xiehe)
    plan = services.start_plan(users["kam"], account, goals="保障供应")
    item = services.save_item(users["kam"], plan, {"area": PlanArea.SUPPLY, "title": "优先供货", "standard": "48 小时",
                              "owner": users["kam"], "deadline": timezone.localdate() + dt.timedelta(days=30)})  # fmt: skip
    stale = {f"item{item.pk}-{k}": v for k, v in {
        "area": PlanArea.SUPPLY, "title": "优先供货（改）", "standard": "24 小时", "owner": users["kam"].pk,
        "deadline": (timezone.localdate() + dt.timedelta(days=20)).isoformat(), "version": item.version - 1 or 999,
    }.items()}  # fmt: skip
    response = client_for("kam").post(reverse("keyaccounts:item-edit", args=[account.pk, item.pk]), stale)
    page = response.content.decode()
    assert response.status_code == 409
    assert '<section class="card panel" id="plan" aria-labelledby="plan-title" data-scroll-here>' in page
    assert page.count("data-scroll-here") == 1
    assert 'id="team" aria-labelledby="team-title">' in page  # the other sections stay as they are


def test_add_team_member_sent_twice_adds_once_and_shows_the_team(client_for, users, xiehe, listed):
    """A double click on "Add" answered the second time "already in the team in this role" (an error); the form
    now carries a one-time token: the second sending adds nothing and shows the team. Removing twice says the
    member was removed already, not "No such team member"."""
    import re

    account = listed(xiehe)
    c = client_for("manager")
    page = c.get(reverse("keyaccounts:account", args=[account.pk])).content.decode()
    token = re.search(r'name="member-form_token" value="([A-Za-z0-9_-]+)"', page).group(1)
    form = {"member-role": TeamRole.PRODUCT_EXPERT, "member-user": users["expert"].pk, "member-form_token": token}
    url = reverse("keyaccounts:member-add", args=[account.pk])

    assert c.post(url, form).status_code == 302
    again = c.post(url, form, follow=True, HTTP_ACCEPT_LANGUAGE="en")

    assert again.status_code == 200 and "This form was already sent" in again.content.decode()
    assert "already in the team" not in again.content.decode()
    member = TeamMember.objects.get(account=account, user=users["expert"])  # one
    assert AuditEntry.objects.filter(object_type="keyaccounts.keyaccount", changes__has_key="team").count() == 1

    remove = reverse("keyaccounts:member-remove", args=[account.pk, member.pk])
    assert c.post(remove).status_code == 302
    twice = c.post(remove, follow=True, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "This team member was removed already." in twice and "No such team member" not in twice


def test_progress_typed_with_a_percent_sign_or_in_full_width_is_the_number_meant(client_for, programme):
    """５０％ or 50% of a plan item's progress (in percent): the page's number input sent nothing for either, and
    Django's field refused 50%; what is no whole percentage is refused naming the field."""
    item = programme["plan"].items.get(area=PlanArea.SUPPLY)
    url = reverse("keyaccounts:item-progress", args=[programme["account"].pk, item.pk])
    kam = client_for("kam")
    r = kam.post(url, {f"progress{item.pk}-status": "in_progress", f"progress{item.pk}-progress": "５０％",
                       f"progress{item.pk}-version": item.version})  # fmt: skip
    assert r.status_code == 302
    item.refresh_from_db()
    assert item.progress == 50
    r = kam.post(url, {f"progress{item.pk}-status": "in_progress", f"progress{item.pk}-progress": "50.5%",
                       f"progress{item.pk}-version": item.version}, HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 400
    assert "Progress (%): enter a whole percentage, such as 30 or 30%." in r.content.decode()
    item.refresh_from_db()
    assert item.progress == 50
