"""The demo evaluation and key-account programme: after `pharmacrm demo`, classes, candidates, listed key
accounts with their team, plan, agreement, meetings and reviews, and proposals at every stage — loaded
through the services, signed like real decisions, once."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from pharmacrm.core import audit, demo, signatures
from pharmacrm.core.models import AuditEntry, Counter, Signature
from pharmacrm.customers.choices import Tier
from pharmacrm.keyaccounts import demo as ka_demo
from pharmacrm.keyaccounts import evaluation, services
from pharmacrm.keyaccounts.models import (
    AccountReview,
    Agreement,
    EvaluationRun,
    KeyAccount,
    Meeting,
    PlanItem,
    Proposal,
    Score,
    TrialOffer,
)
from pharmacrm.notify.models import Notification
from pharmacrm.sales.models import OrderLine
from pharmacrm.servicedesk.models import Survey

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_env(settings, tmp_path, monkeypatch):
    settings.DATABASE_URL = None
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("PHARMACRM_DEMO_PASSWORD", raising=False)
    return tmp_path


def test_the_demo_shows_evaluations_candidates_and_a_running_key_account_programme(demo_env):
    demo.load(scale=0.05)
    today = timezone.localdate()
    earlier = ka_demo._month_end_before(today, 6)

    # scheduled runs six months ago and today, so the results show movement between periods
    periods = set(EvaluationRun.objects.values_list("period", flat=True))
    assert {evaluation.half_year(earlier), evaluation.month_label(earlier)} <= periods
    assert {evaluation.half_year(today), evaluation.month_label(today), evaluation.quarter(today)} <= periods
    old = EvaluationRun.objects.get(period=evaluation.half_year(earlier))
    assert timezone.localtime(old.started_at).date() == earlier + dt.timedelta(days=1)
    current = Score.objects.filter(kind="evaluation", period=evaluation.half_year(today))
    assert current.exists() and set(current.values_list("klass", flat=True)) <= {"A", "B", "C", "D"}
    assert current.exclude(previous_score=None).exists()
    assert Score.objects.filter(kind="candidate", period=evaluation.month_label(today)).exists()

    # revisit surveys answer the recommendation question in line with their score
    answered = Survey.objects.exclude(recommend=None).exclude(score=None)
    assert answered.exists()
    for score, recommend in answered.values_list("score", "recommend"):
        assert (recommend >= 9) <= (score >= 4) and (recommend <= 6) <= (score <= 3), (score, recommend)
        assert score < 5 or recommend >= 9, (score, recommend)

    # proposals at every stage
    statuses = sorted(Proposal.objects.values_list("status", flat=True))
    assert statuses == ["approved", "approved", "rejected", "review", "submitted"]
    waiting = Proposal.objects.get(status="submitted")
    assert waiting.reviews.filter(department="marketing").exists()
    assert Proposal.objects.get(status="review").reviews.count() == 2
    rejected = Proposal.objects.get(status="rejected")
    assert rejected.decision_comment and rejected.signature is not None
    assert Notification.objects.filter(
        recipient__username="manager",
        read_at=None,
        object_type="keyaccounts.proposal",
        object_id=str(waiting.pk),
    ).exists()

    # every decision is a signature like a real one: intact, by the manager, with its audit entry
    for proposal in Proposal.objects.filter(status__in=["approved", "rejected"]):
        sig = proposal.signature
        assert sig.user.username == "manager" and signatures.intact(sig)
        assert sig.signed_at == proposal.decided_at < timezone.now() - dt.timedelta(days=30)
        assert AuditEntry.objects.filter(
            action=AuditEntry.Action.SIGN, object_type="keyaccounts.proposal", object_id=str(proposal.pk)
        ).exists()
    # nothing left behind: the manager keeps only the demo authenticator of var/demo-credentials.txt
    devices = TOTPDevice.objects.filter(user__username="manager")
    assert devices.count() == 1 and not devices.filter(name="demo signature").exists()
    assert devices.get().throttling_failure_count == 0  # its codes are not slowed down by the demo's signing

    # two listed key accounts with everything a running programme has
    accounts = list(KeyAccount.objects.select_related("institution"))
    assert len(accounts) == 2
    quarter = services.previous_quarter(today)
    for account in accounts:
        assert account.status == "active" and account.institution.tier == Tier.KEY
        team = set(account.members.values_list("role", "user__username"))
        assert team == {
            ("pm", "kam"),
            ("expert", "expert"),
            ("support", "support"),
            ("aftersales", "aftersales"),
        }
        plan = services.current_plan(account)
        assert plan is not None and signatures.intact(plan.signature)
        items = plan.items.all()
        assert {"supply", "tech_support", "after_sales", "training", "free"} == set(
            items.values_list("area", flat=True)
        )
        assert items.filter(status="done").count() >= 3
        overdue = items.filter(status__in=["planned", "in_progress"], deadline__lt=today)
        assert overdue.count() == 1 and overdue.get().next_check_at is not None  # the worker reports it
        agreement = Agreement.objects.get(account=account)
        assert agreement.status == "signed" and agreement.signed_date < today
        assert (services.agreements_dir() / agreement.signed_copy).read_bytes().startswith(b"%PDF")
        # issued when it was generated, before it was signed, and kept as issued
        assert agreement.issued_at == agreement.created_at
        assert timezone.localtime(agreement.issued_at).date() < agreement.signed_date
        assert services.agreement_document(agreement).startswith(b"%PDF")
        meetings = Meeting.objects.filter(account=account)
        assert meetings.count() == 2 and all(m.actions.exists() and m.minutes for m in meetings)
        assert meetings.filter(actions__done_at__isnull=False).exists()
        assert TrialOffer.objects.filter(account=account).exists()
        review = AccountReview.objects.get(account=account, period=quarter)
        # last quarter's questions were answered by the team and revisited: the evaluation rests on data
        assert review.tickets >= 6 and review.surveys >= 6 and review.avg_response_hours is not None
        assert not [c["name"] for c in review.components if c.get("default")], review.components

    # the overdue items are reported once, by the worker's sweep
    assert services.sweep_plan_items() == 2
    assert services.sweep_plan_items() == 0
    assert PlanItem.objects.exclude(overdue_notified_at=None).count() == 2

    assert audit.verify().ok


def test_a_second_demo_run_changes_nothing(demo_env):
    demo.load(scale=0.05)

    def counts():
        return [m.objects.count() for m in (OrderLine, Score, EvaluationRun, Proposal, KeyAccount, Signature,
                                            Meeting, Agreement, Notification)]  # fmt: skip

    before = counts()
    assert Counter.objects.get(name=ka_demo.MARKER).value == 2

    demo.load()

    assert counts() == before
    assert ka_demo.load() == 0


def test_without_a_chinese_font_the_demo_loads_without_its_agreements(demo_env, settings):
    """`make run` goes on without fonts-noto-cjk; an agreement's PDF is issued when it is generated, so the demo
    leaves the agreements out instead of failing whole."""
    settings.PHARMACRM_PDF_FONT = str(demo_env / "missing.ttc")
    demo.load(scale=0.05)
    assert KeyAccount.objects.count() == 2 and Meeting.objects.exists()
    assert not Agreement.objects.exists()
    assert audit.verify().ok
