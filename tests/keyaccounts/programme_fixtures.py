"""Fixtures for the key-account programme tests: one-time codes for the leadership's signatures, a
candidate score, and accounts brought to a stage (listed, staffed, with a plan in force) through the
services. Import the fixtures a test module uses: `from .programme_fixtures import *`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from pharmacrm.keyaccounts import evaluation, services
from pharmacrm.keyaccounts.choices import PlanArea, TeamRole
from pharmacrm.keyaccounts.models import MeetingAction, Score, TeamMember, TeamTenure

__all__ = [
    "tiny_pdf", "tiny_png", "AREAS", "sign_code", "candidate", "manager2", "make_proposal", "listed", "staffed", "with_plan", "item_data",
    "private_var", "approve_plan", "api_client", "meeting", "action_of",
]  # fmt: skip

AREAS = (PlanArea.SUPPLY, PlanArea.TECH_SUPPORT, PlanArea.AFTER_SALES, PlanArea.TRAINING)


@pytest.fixture(autouse=True)
def private_var(settings, tmp_path):
    """Agreements' PDFs and signed copies go to the test's own directory, never into the project's var/."""
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()


def tiny_pdf() -> bytes:
    """A real one-page PDF (a signed copy's content is checked, not only its first bytes)."""
    from fpdf import FPDF

    doc = FPDF()
    doc.add_page()
    return bytes(doc.output())


def tiny_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), "white").save(buf, format="PNG")
    return buf.getvalue()


def sign_code(user) -> str:
    """A one-time code the user's authenticator shows now, usable for the next signature: the device is set
    up if needed and its memory of used codes and failed tries is reset (the test's time machine, instead
    of waiting 30 seconds between two signatures)."""
    device, _created = TOTPDevice.objects.get_or_create(
        user=user, name="default", defaults={"confirmed": True}
    )
    TOTPDevice.objects.filter(pk=device.pk).update(
        last_t=-1, throttling_failure_count=0, throttling_failure_timestamp=None
    )
    device.refresh_from_db()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):0{device.digits}d}"


@pytest.fixture
def candidate(db):
    """candidate(institution, score=82) → the institution's candidate Score with explained components."""

    def make(institution, score="82.50") -> Score:
        model = evaluation.active_model("candidate")
        components = [
            {
                "name": "amount",
                "value": "90.00",
                "weight": "0.5",
                "contribution": "45.00",
                "detail": "¥1,200,000",
            },
            {"name": "influence", "value": "75.00", "weight": "0.5", "contribution": "37.50", "detail": "3A"},
        ]
        return Score.objects.create(
            institution=institution, kind="candidate", period=timezone.localdate().strftime("%Y-%m"), model=model,
            as_of=timezone.localdate(), score=Decimal(score), components=components, candidate=True,
        )  # fmt: skip

    return make


@pytest.fixture
def manager2(make_user):
    from pharmacrm.core.roles import Role

    return make_user("manager2", Role.MANAGER)


@pytest.fixture
def make_proposal(users):
    """make_proposal(institution, submitted=True) → a listing proposal by the analyst, with marketing's
    and sales' opinions (the review is cross-department), sent to leadership unless submitted=False."""

    def make(institution, *, submitted: bool = True, by=None, kind="list"):
        by = by or users["analyst"]
        proposal = services.propose(by, institution, reason="年采购额大，区域影响力强", kind=kind)
        services.give_opinion(users["analyst"], proposal, opinion="support", comment="市场部支持")
        services.give_opinion(users["kam"], proposal, opinion="support", comment="销售部支持")
        if submitted:
            services.submit_for_decision(by, proposal)
            proposal.refresh_from_db()
        return proposal

    return make


@pytest.fixture
def listed(users, make_proposal):
    """listed(institution) → the key account, approved by the manager with a one-time code."""

    def make(institution):
        proposal = make_proposal(institution)
        proposal = services.decide(users["manager"], proposal, approve=True, comment="同意",
                                   otp_code=sign_code(users["manager"]))  # fmt: skip
        return proposal.account

    return make


@pytest.fixture
def staffed(users, listed):
    """staffed(institution) → a listed key account whose team has the kam as project manager, the expert,
    support and after-sales, serving for two years."""

    def make(institution):
        account = listed(institution)
        m = users["manager"]
        services.add_member(m, account, users["kam"], TeamRole.PROJECT_MANAGER)
        services.add_member(m, account, users["expert"], TeamRole.PRODUCT_EXPERT)
        services.add_member(m, account, users["support"], TeamRole.TECH_SUPPORT)
        services.add_member(m, account, users["aftersales"], TeamRole.AFTER_SALES)
        # a team that has served for two years: past quarters' scorecards count it (TeamTenure)
        since = timezone.localdate() - dt.timedelta(days=730)
        TeamMember.objects.filter(account=account).update(since=since)
        TeamTenure.objects.filter(account=account).update(start=since)
        return account

    return make


def item_data(users, area, deadline=None, owner="kam") -> dict:
    return {"area": area, "title": f"服务项目 {area}", "standard": "48 小时内响应", "owner": users[owner],
            "deadline": deadline or timezone.localdate() + dt.timedelta(days=30)}  # fmt: skip


@pytest.fixture
def with_plan(users, staffed):
    """with_plan(institution, deadline=…) → (account, plan): the kam's plan with the four areas' items,
    approved by the manager."""

    def make(institution, deadline=None):
        account = staffed(institution)
        kam = users["kam"]
        plan = services.start_plan(kam, account, goals="保障供应")
        for area in AREAS:
            services.save_item(kam, plan, item_data(users, area, deadline))
        services.submit_plan(kam, plan)
        plan.refresh_from_db()
        plan = services.decide_plan(
            users["manager"], plan, approve=True, otp_code=sign_code(users["manager"])
        )
        return account, plan

    return make


def approve_plan(users, plan):
    """The kam submits the plan and the manager approves it (signed); the plan as stored afterwards."""
    services.submit_plan(users["kam"], plan)
    plan.refresh_from_db()
    services.decide_plan(users["manager"], plan, approve=True, otp_code=sign_code(users["manager"]))
    plan.refresh_from_db()
    return plan


@pytest.fixture
def api_client(users):
    """api_client(role) → an API client signed in with that role's token, asking for English."""
    from rest_framework.test import APIClient

    from tests.api.conftest import token_for

    def make(role: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users[role])}", HTTP_ACCEPT_LANGUAGE="en")
        return client

    return make


@pytest.fixture
def meeting(users, xiehe, staffed):
    """协和's team meets today; the minutes give the product expert an action due in a week. → the meeting."""
    account = staffed(xiehe)
    held = timezone.now().replace(second=0, microsecond=0)
    return services.record_meeting(
        users["kam"], account, {"held_at": held, "title": "季度沟通会", "minutes": "讨论供货与培训"},
        [{"title": "整理培训需求", "owner": users["expert"], "due_date": timezone.localdate() + dt.timedelta(days=7)}],
    )  # fmt: skip


def action_of(meeting) -> MeetingAction:
    """The meeting's one action item, with what its checks read."""
    return MeetingAction.objects.select_related("meeting__account", "owner").get(meeting=meeting)
