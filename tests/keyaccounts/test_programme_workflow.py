"""The key-account programme's rules through the services: who may propose, review and approve; signed
decisions; the account, team and tier that approval opens; plans, overdue items, agreements, renewal and
ticket routing."""

import datetime as dt
import io

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from pypdf import PdfReader

from pharmacrm.core.models import AuditEntry, Signature
from pharmacrm.customers.choices import Tier
from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import agreement_pdf, services
from pharmacrm.keyaccounts.choices import (
    AccountStatus,
    AgreementStatus,
    ItemStatus,
    PlanArea,
    PlanStatus,
    ProposalKind,
    ProposalStatus,
    TeamRole,
)
from pharmacrm.keyaccounts.models import KeyAccount, PlanItem
from pharmacrm.notify.models import Notification

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import AREAS, item_data, sign_code, tiny_pdf

pytestmark = pytest.mark.django_db


# --- proposals and decisions ---------------------------------------------------------------------------


def test_a_marketing_analyst_cannot_approve(users, xiehe, make_proposal):
    proposal = make_proposal(xiehe)
    with pytest.raises(PermissionDenied):
        services.decide(users["analyst"], proposal, approve=True, otp_code=sign_code(users["analyst"]))
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.SUBMITTED


def test_a_manager_cannot_decide_their_own_proposal_but_another_manager_can(
    users, xiehe, make_proposal, manager2
):
    proposal = make_proposal(xiehe, by=users["manager"])
    with pytest.raises(PermissionDenied):
        services.decide(users["manager"], proposal, approve=True, otp_code=sign_code(users["manager"]))
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.SUBMITTED
    services.decide(manager2, proposal, approve=True, otp_code=sign_code(manager2))
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.APPROVED and proposal.decided_by == manager2


@pytest.mark.parametrize("code", ["", "000000", "12ab56"])
def test_a_wrong_or_missing_code_refuses_and_leaves_the_proposal_submitted(users, xiehe, make_proposal, code):
    proposal = make_proposal(xiehe)
    sign_code(users["manager"])  # the manager has an authenticator
    with pytest.raises(ValidationError) as e:
        services.decide(users["manager"], proposal, approve=True, otp_code=code)
    assert "otp_code" in e.value.error_dict
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.SUBMITTED
    assert not KeyAccount.objects.filter(institution=xiehe).exists()
    assert not Signature.objects.exists()


def test_approval_opens_the_account_with_team_tier_audit_and_signature(users, xiehe, make_proposal):
    proposal = make_proposal(xiehe)
    before = Institution.objects.get(pk=xiehe.pk).tier
    services.decide(
        users["manager"], proposal, approve=True, comment="同意", otp_code=sign_code(users["manager"])
    )
    proposal.refresh_from_db()
    account = proposal.account
    assert account.number.startswith(f"KA-{timezone.localdate().year}-")
    assert account.status == AccountStatus.ACTIVE and account.team is not None
    assert account.previous_tier == before
    assert Institution.objects.get(pk=xiehe.pk).tier == Tier.KEY
    sig = Signature.objects.get(pk=proposal.signature_id)
    assert sig.user == users["manager"] and sig.meaning == "approved"
    assert AuditEntry.objects.filter(action="sign", object_id=str(proposal.pk)).exists()
    assert AuditEntry.objects.filter(object_type__icontains="keyaccount", object_id=str(account.pk)).exists()
    assert Notification.objects.filter(recipient=users["analyst"], kind="keyaccounts.decided").exists()


def test_delisting_restores_the_previous_tier(users, xiehe, listed, make_proposal, manager2):
    Institution.objects.filter(pk=xiehe.pk).update(tier=Tier.VIP)
    account = listed(xiehe)
    assert Institution.objects.get(pk=xiehe.pk).tier == Tier.KEY
    proposal = make_proposal(xiehe, kind=ProposalKind.DELIST)
    services.decide(users["manager"], proposal, approve=True, otp_code=sign_code(users["manager"]))
    account.refresh_from_db()
    assert account.status == AccountStatus.DELISTED
    assert Institution.objects.get(pk=xiehe.pk).tier == Tier.VIP


def test_department_opinions_are_recorded_per_reviewer(users, xiehe, make_proposal):
    proposal = make_proposal(xiehe, submitted=False)
    services.give_opinion(users["kam"], proposal, opinion="support")
    services.give_opinion(users["agent"], proposal, opinion="neutral")
    services.give_opinion(users["kam"], proposal, opinion="oppose", comment="回款慢")  # revised
    reviews = {
        r.reviewer.username: (r.department, r.opinion) for r in proposal.reviews.select_related("reviewer")
    }
    assert reviews == {
        "analyst": ("marketing", "support"),
        "kam": ("sales", "oppose"),
        "agent": ("service", "neutral"),
    }
    with pytest.raises(ValidationError) as e:
        services.give_opinion(users["agent"], proposal, opinion="support", department="marketing")
    assert "department" in e.value.error_dict
    with pytest.raises(PermissionDenied):
        services.give_opinion(users["manager"], proposal, opinion="support")


def test_sending_to_leadership_needs_marketings_opinion(users, xiehe):
    proposal = services.propose(users["analyst"], xiehe, reason="重点医院")
    services.give_opinion(users["kam"], proposal, opinion="support")
    with pytest.raises(ValidationError):
        services.submit_for_decision(users["analyst"], proposal)
    services.give_opinion(users["analyst"], proposal, opinion="support")
    services.submit_for_decision(users["analyst"], proposal)
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.SUBMITTED


# --- team and plan -----------------------------------------------------------------------------------


def test_team_roles_need_the_matching_system_role(users, xiehe, listed):
    account = listed(xiehe)
    with pytest.raises(ValidationError) as e:
        services.add_member(users["manager"], account, users["agent"], TeamRole.PRODUCT_EXPERT)
    assert "user" in e.value.error_dict
    services.add_member(users["manager"], account, users["expert"], TeamRole.PRODUCT_EXPERT)
    with pytest.raises(PermissionDenied):
        services.add_member(users["agent"], account, users["support"], TeamRole.TECH_SUPPORT)


def test_a_plan_needs_the_four_areas_before_submission(users, xiehe, staffed):
    account = staffed(xiehe)
    kam = users["kam"]
    plan = services.start_plan(kam, account)
    for area in AREAS[:3]:
        services.save_item(kam, plan, item_data(users, area))
    with pytest.raises(ValidationError) as e:
        services.submit_plan(kam, plan)
    assert str(PlanArea.TRAINING.label) in " ".join(e.value.messages)
    services.save_item(kam, plan, item_data(users, PlanArea.TRAINING))
    services.submit_plan(kam, plan)
    plan.refresh_from_db()
    assert plan.status == PlanStatus.SUBMITTED


def test_approving_a_plan_supersedes_the_previous_one(users, xiehe, with_plan):
    account, first = with_plan(xiehe)
    kam = users["kam"]
    second = services.start_plan(kam, account)
    assert second.items.count() == 4  # a copy of the plan in force
    services.submit_plan(kam, second)
    second.refresh_from_db()
    services.decide_plan(users["manager"], second, approve=True, otp_code=sign_code(users["manager"]))
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (PlanStatus.SUPERSEDED, PlanStatus.APPROVED)
    assert services.current_plan(account) == second


def test_overdue_plan_items_notify_once_and_a_done_item_never(users, xiehe, with_plan):
    deadline = timezone.localdate() + dt.timedelta(days=3)
    account, plan = with_plan(xiehe, deadline=deadline)
    done = plan.items.get(area=PlanArea.TRAINING)
    services.update_progress(users["kam"], done, status=ItemStatus.DONE)
    later = timezone.now() + dt.timedelta(days=6)
    assert services.sweep_plan_items(now=later) == 3
    assert services.sweep_plan_items(now=later + dt.timedelta(hours=1)) == 0
    overdue = Notification.objects.filter(kind="keyaccounts.overdue")
    for name in ("kam", "manager"):
        assert overdue.filter(recipient=users[name]).count() == 3  # one per open item, once
    assert (
        not overdue.filter(title__contains=done.title)
        .exclude(object_id__in=[str(i.pk) for i in plan.items.exclude(pk=done.pk)])
        .exists()
    )
    assert PlanItem.objects.filter(plan=plan, overdue_notified_at__isnull=False).count() == 3


def test_a_note_added_to_a_done_item_keeps_the_day_it_was_done(users, xiehe, with_plan):
    """An item done before its deadline; after the deadline its owner adds a note (the acceptance form was filed)
    and saves it, still done. It was stamped done again that day: late on the owner's scorecard and in the
    account's evaluation, though the work was delivered on time."""
    account, plan = with_plan(xiehe)
    item = plan.items.get(area=PlanArea.TRAINING)
    services.update_progress(users["kam"], item, status=ItemStatus.DONE)
    today = timezone.localdate()
    done_at = timezone.now() - dt.timedelta(days=10)
    PlanItem.objects.filter(pk=item.pk).update(completed_at=done_at, deadline=today - dt.timedelta(days=5))
    item = PlanItem.objects.get(pk=item.pk)

    services.update_progress(users["kam"], item, status=ItemStatus.DONE, note="验收单已归档", version=item.version)

    item.refresh_from_db()
    assert (item.completed_at, item.progress_note) == (done_at, "验收单已归档")
    deadline = item.deadline
    period = f"{deadline.year}Q{(deadline.month - 1) // 3 + 1}"
    card = next(c for c in services.scorecards(period) if c["user"] == users["kam"])
    assert (card["items_due"], card["items_on_time"]) == (1, 1)


# --- agreements ----------------------------------------------------------------------------------------


def _agreement(users, account):
    today = timezone.localdate()
    return services.generate_agreement(users["kam"], account, start_date=today,
                                       end_date=today + dt.timedelta(days=365))  # fmt: skip


def test_agreements_are_numbered_and_render_as_pdf(users, xiehe, with_plan):
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    first = _agreement(users, account)
    second = services.generate_agreement(users["kam"], account, start_date=today + dt.timedelta(days=366),
                                         end_date=today + dt.timedelta(days=730))  # the renewal  # fmt: skip
    year = timezone.localdate().year
    assert first.number == f"AG-{year}-0001" and second.number == f"AG-{year}-0002"
    data = agreement_pdf.render(first)
    assert data.startswith(b"%PDF")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).replace("\x00", "")
    assert first.number in text


def test_the_signed_copy_must_be_a_pdf_or_an_image(users, xiehe, with_plan):
    account, _plan = with_plan(xiehe)
    agreement = _agreement(users, account)
    fake = SimpleUploadedFile("signed.pdf", b"MZ\x90\x00 not a pdf", content_type="application/pdf")
    with pytest.raises(ValidationError) as e:
        services.record_signed(users["kam"], agreement, signed_date=timezone.localdate(), upload=fake)
    assert "signed_copy" in e.value.error_dict
    real = SimpleUploadedFile("signed.pdf", tiny_pdf(), content_type="application/pdf")
    services.record_signed(users["kam"], agreement, signed_date=timezone.localdate(), upload=real)
    agreement.refresh_from_db()
    assert agreement.status == AgreementStatus.SIGNED and agreement.signed_copy_sha256


def test_the_renewal_reminder_comes_once(users, xiehe, with_plan, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    agreement = services.generate_agreement(users["kam"], account, start_date=today - dt.timedelta(days=300),
                                            end_date=today + dt.timedelta(days=30))  # fmt: skip
    pdf_file = SimpleUploadedFile("s.pdf", tiny_pdf(), content_type="application/pdf")
    services.record_signed(users["kam"], agreement, signed_date=today, upload=pdf_file)
    now = timezone.now() + dt.timedelta(days=1)
    assert services.sweep_agreements(now=now) == 1
    assert services.sweep_agreements(now=now + dt.timedelta(days=1)) == 0
    assert Notification.objects.filter(kind="keyaccounts.renewal", recipient=users["kam"]).count() == 1


# --- tickets -----------------------------------------------------------------------------------------------


def test_key_account_tickets_go_to_the_service_team_boosted(users, xiehe, staffed, ruijin):
    from pharmacrm.servicedesk import services as desk

    account = staffed(xiehe)
    data = {"subject": "紧急到货", "channel": "phone", "category": "drug_info", "institution": xiehe}
    ticket = desk.create_ticket(users["agent"], data)
    assert ticket.team_id == account.team_id
    assert ticket.boosted
    other = desk.create_ticket(users["agent"], {**data, "institution": ruijin})
    assert other.team_id != account.team_id and not other.boosted
