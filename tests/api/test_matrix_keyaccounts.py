"""The key-account programme's day-to-day work in the authorization matrix: every role × every operation of
api_ops (team, meetings, trials, agreements, reviews, scorecards, incentives). Who may act depends on the account
as well as on a capability, so the answers come from the account's team as well as from roles.MATRIX.

Objects used are inside the sales rep's territory (Beijing)."""

from __future__ import annotations

import copy
import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pharmacrm.core.models import Region
from pharmacrm.core.roles import Cap, Role
from tests.conftest import data_for_the_module, file_settings, new_team_north, new_user, new_xiehe, role_users

from .conftest import ROLES
from .test_matrix import allowed

KA = "/api/v1/keyaccounts/"
RUNS_ACCOUNT = frozenset({"admin", "manager", "kam"})  # administrators, managers, the project manager
IN_TEAM = RUNS_ACCOUNT | {"expert", "support", "aftersales"}  # … and the team's members


class KaWorld:
    """Built once for the module, with one agreement generated (an agreement's PDF is the costliest part); what a
    test signs, reviews or awards is made in that test (`for_a_test` gives each test its own cache)."""

    def __init__(self, users, xiehe):
        from django.utils import timezone

        from pharmacrm.keyaccounts import services as ka
        from pharmacrm.keyaccounts.models import KeyAccount
        from pharmacrm.servicedesk.models import Product
        from tests.keyaccounts.programme_fixtures import AREAS, item_data, sign_code

        self.users, self.ka, self.today = users, ka, timezone.localdate()
        manager, kam = users["manager"], users["kam"]
        proposal = ka.propose(users["analyst"], xiehe, reason="年采购额大")
        ka.give_opinion(users["analyst"], proposal, opinion="support", comment="市场部支持")
        ka.give_opinion(kam, proposal, opinion="support", comment="销售部支持")  # the review is cross-department
        ka.submit_for_decision(users["analyst"], proposal)
        proposal.refresh_from_db()
        account = ka.decide(manager, proposal, approve=True, comment="同意", otp_code=sign_code(manager)).account
        KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - datetime.timedelta(days=400))
        account.refresh_from_db()
        ka.add_member(manager, account, kam, "pm")
        self.expert_member = ka.add_member(manager, account, users["expert"], "expert")
        ka.add_member(manager, account, users["support"], "support")
        ka.add_member(manager, account, users["aftersales"], "aftersales")
        plan = ka.start_plan(kam, account, goals="保障供应")
        for area in AREAS:
            ka.save_item(kam, plan, item_data(users, area))
        ka.submit_plan(kam, plan)
        plan.refresh_from_db()
        ka.decide_plan(manager, plan, approve=True, otp_code=sign_code(manager))
        self.account = account
        self.expert2 = new_user("expert2", Role.EXPERT)
        # removed by ka.members.destroy: a member with no open work (the expert owns the meeting's action below)
        self.spare_member = ka.add_member(manager, account, new_user("expert3", Role.EXPERT), "expert")
        self.product = Product.objects.create(brand_name="新药", generic_name="新药片", dosage_form="片剂", strength="1mg")
        self.product2 = Product.objects.create(brand_name="新药", generic_name="新药片", dosage_form="片剂",
                                               strength="5mg", approval_number="国药准字H20260001")  # fmt: skip
        meeting = ka.record_meeting(kam, account, {"held_at": timezone.now(), "title": "季度会", "minutes": "纪要"},
                                    [{"title": "送样", "owner": users["expert"], "due_date": self.today}])  # fmt: skip
        self.action = meeting.actions.get()
        self.meeting = meeting
        self.trial = ka.offer_trial(kam, account, product=self.product, notes="试用")
        self.period = ka.previous_quarter(self.today)
        self.agreement_pk = ka.generate_agreement(
            kam, account, start_date=self.today, end_date=self.today + datetime.timedelta(days=365)
        ).pk
        self._cache: dict = {}

    def for_a_test(self) -> KaWorld:
        test_world = copy.copy(self)
        test_world._cache = {}
        return test_world

    def agreement(self):
        """The agreement as the database has it now (a test that signs it is rolled back after)."""
        from pharmacrm.keyaccounts.models import Agreement

        return Agreement.objects.get(pk=self.agreement_pk)

    def signed(self):
        from django.core.files.uploadedfile import SimpleUploadedFile

        from tests.keyaccounts.programme_fixtures import tiny_pdf

        if "signed" not in self._cache:
            upload = SimpleUploadedFile("signed.pdf", tiny_pdf(), "application/pdf")
            self._cache["signed"] = self.ka.record_signed(self.users["kam"], self.agreement(), signed_date=self.today,
                                                          upload=upload)  # fmt: skip
        return self._cache["signed"]

    def amended(self):
        """The signed agreement amended without its signed copy (uploaded later)."""
        if "amended" not in self._cache:
            signed = self.signed()
            self.ka.amend_term(self.users["kam"], signed, {
                "start_date": signed.start_date, "end_date": signed.end_date + datetime.timedelta(days=5),
                "reason": "延期", "effective_date": self.today}, version=signed.version)  # fmt: skip
            self._cache["amended"] = signed
        return self._cache["amended"]

    def review(self):
        if "review" not in self._cache:
            self._cache["review"] = self.ka.review_account(self.account, self.period)
        return self._cache["review"]

    def incentive(self):
        from decimal import Decimal

        from pharmacrm.keyaccounts import evaluation
        from pharmacrm.keyaccounts.models import Score

        if "incentive" not in self._cache:
            self._cache["incentive"] = Score.objects.create(
                institution=self.account.institution, kind="evaluation", period="2025H2",
                model=evaluation.active_model("evaluation"), as_of=datetime.date(2025, 12, 31), score=Decimal(88),
                klass="A", discount=Decimal(5), programme="年度优秀客户奖",
            )  # fmt: skip
        return self._cache["incentive"]


@dataclass
class KaEndpoint:
    name: str
    method: str
    path: Callable[[KaWorld, str], str]
    ok: int
    cap: Cap | None = Cap.VIEW_KEY_ACCOUNTS
    roles: frozenset[str] | None = None  # who may, when it is not the holders of `cap`
    body: Callable[[KaWorld], Any] | None = None
    multipart: bool = False


def _signed_body(w: KaWorld):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.keyaccounts.programme_fixtures import tiny_pdf

    agreement = w.agreement()
    return {"signed_date": w.today.isoformat(), "version": agreement.version,
            "signed_copy": SimpleUploadedFile("签署件.pdf", tiny_pdf(), "application/pdf")}  # fmt: skip


KA_ENDPOINTS = [
    KaEndpoint("ka.members.list", "get", lambda w, r: f"{KA}members/?account={w.account.pk}", 200),
    KaEndpoint("ka.members.retrieve", "get", lambda w, r: f"{KA}members/{w.expert_member.pk}/", 200),
    KaEndpoint("ka.members.create", "post", lambda w, r: f"{KA}members/", 201, cap=Cap.MANAGE_KEY_ACCOUNTS,
               body=lambda w: {"account": w.account.pk, "user": w.expert2.pk, "role": "expert"}),
    KaEndpoint("ka.members.destroy", "delete", lambda w, r: f"{KA}members/{w.spare_member.pk}/", 204,
               cap=Cap.MANAGE_KEY_ACCOUNTS),
    KaEndpoint("ka.meetings.list", "get", lambda w, r: f"{KA}meetings/?account={w.account.pk}", 200),
    KaEndpoint("ka.meetings.retrieve", "get", lambda w, r: f"{KA}meetings/{w.meeting.pk}/", 200),
    KaEndpoint("ka.meetings.create", "post", lambda w, r: f"{KA}meetings/", 201, roles=IN_TEAM,
               body=lambda w: {"account": w.account.pk, "held_at": "2026-01-05T10:00:00+08:00", "title": "月度会",
                               "minutes": "纪要", "actions": [{"title": "回访", "owner": w.users["support"].pk,
                                                             "due_date": "2026-01-20"}]}),
    KaEndpoint("ka.meeting_actions.retrieve", "get", lambda w, r: f"{KA}meeting-actions/{w.action.pk}/", 200),
    KaEndpoint("ka.meeting_actions.partial_update", "patch", lambda w, r: f"{KA}meeting-actions/{w.action.pk}/", 200,
               roles=IN_TEAM, body=lambda w: {"title": "送样（补）", "version": w.action.version}),
    KaEndpoint("ka.meeting_actions.done", "post", lambda w, r: f"{KA}meeting-actions/{w.action.pk}/done/", 200,
               roles=IN_TEAM, body=lambda w: {"done": True}),  # who may correct it (the team) ticks it off
    KaEndpoint("ka.trials.list", "get", lambda w, r: f"{KA}trials/?account={w.account.pk}", 200),
    KaEndpoint("ka.trials.retrieve", "get", lambda w, r: f"{KA}trials/{w.trial.pk}/", 200),
    KaEndpoint("ka.trials.create", "post", lambda w, r: f"{KA}trials/", 201, roles=IN_TEAM,
               body=lambda w: {"account": w.account.pk, "product": w.product2.pk, "notes": "样品"}),
    KaEndpoint("ka.trials.status", "post", lambda w, r: f"{KA}trials/{w.trial.pk}/status/", 200, roles=IN_TEAM,
               body=lambda w: {"status": "accepted", "version": w.trial.version}),
    KaEndpoint("ka.agreements.create", "post", lambda w, r: f"{KA}agreements/", 201, cap=Cap.MANAGE_KEY_ACCOUNTS,
               body=lambda w: {"account": w.account.pk,  # the term after the one the world's agreement covers
                               "start_date": (w.today + datetime.timedelta(days=366)).isoformat(),
                               "end_date": (w.today + datetime.timedelta(days=731)).isoformat()}),
    KaEndpoint("ka.agreements.sign", "post", lambda w, r: f"{KA}agreements/{w.agreement().pk}/sign/", 200,
               cap=Cap.MANAGE_KEY_ACCOUNTS, body=_signed_body, multipart=True),
    KaEndpoint("ka.agreements.signed_copy", "get", lambda w, r: f"{KA}agreements/{w.signed().pk}/signed-copy/", 200),
    # the term: a draft's corrected (PATCH), a signed one's amended (补充协议) — by those who run the account
    KaEndpoint("ka.agreements.partial_update", "patch", lambda w, r: f"{KA}agreements/{w.agreement().pk}/", 200,
               cap=Cap.MANAGE_KEY_ACCOUNTS, body=lambda w: {
                   "end_date": (w.today + datetime.timedelta(days=300)).isoformat(), "version": w.agreement().version}),
    KaEndpoint("ka.agreements.amendments", "post", lambda w, r: f"{KA}agreements/{w.signed().pk}/amendments/", 201,
               cap=Cap.MANAGE_KEY_ACCOUNTS, body=lambda w: {
                   "start_date": w.today.isoformat(), "end_date": (w.today + datetime.timedelta(days=400)).isoformat(),
                   "effective_date": w.today.isoformat(), "reason": "项目延期", "version": w.signed().version}),
    KaEndpoint("ka.agreements.amendment_attach_copy", "post",
               lambda w, r: f"{KA}agreements/{w.amended().pk}/amendments/1/signed-copy/upload/", 200,
               cap=Cap.MANAGE_KEY_ACCOUNTS, body=lambda w: {"signed_copy": _signed_body(w)["signed_copy"]},
               multipart=True),
    KaEndpoint("ka.account_reviews.list", "get", lambda w, r: f"{KA}account-reviews/?account={w.account.pk}", 200),
    KaEndpoint("ka.account_reviews.retrieve", "get", lambda w, r: f"{KA}account-reviews/{w.review().pk}/", 200),
    KaEndpoint("ka.account_reviews.run", "post", lambda w, r: f"{KA}account-reviews/run/", 200,
               roles=RUNS_ACCOUNT | {"analyst"},  # who runs the account, and who runs evaluations
               body=lambda w: {"account": w.account.pk, "period": w.period}),
    KaEndpoint("ka.scorecards.list", "get", lambda w, r: f"{KA}scorecards/", 200),  # the others: their own card
    KaEndpoint("ka.incentives.list", "get", lambda w, r: f"{KA}incentives/?period=2025H2", 200,
               cap=Cap.VIEW_EVALUATIONS),
    KaEndpoint("ka.incentives.retrieve", "get", lambda w, r: f"{KA}incentives/{w.incentive().pk}/", 200,
               cap=Cap.VIEW_EVALUATIONS),
]  # fmt: skip


@pytest.fixture(scope="module")
def ka_world(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[KaWorld]:
    """Built once for the module: each test runs in a savepoint inside the module's transaction."""
    files = tmp_path_factory.mktemp("ka-matrix")
    with data_for_the_module(django_db_blocker, files):
        users = role_users(new_team_north())
        world = KaWorld(users, new_xiehe(users["admin"], Region.objects.get(code="110105")))  # 北京市朝阳区
        world.files = files
        yield world


@pytest.fixture
def _tmp_file_storage(settings, ka_world):
    """The agreement's PDF stays where the module's world keeps it."""
    for name, value in file_settings(ka_world.files).items():
        setattr(settings, name, value)


@pytest.fixture
def users(ka_world):
    return ka_world.users


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", KA_ENDPOINTS, ids=lambda e: e.name)
def test_key_account_operations_matrix(endpoint: KaEndpoint, role: str, ka_world, api_for):
    w = ka_world.for_a_test()
    kwargs: dict = {}
    if endpoint.body is not None:
        kwargs = {"data": endpoint.body(w), "format": "multipart" if endpoint.multipart else "json"}
    response = getattr(api_for(role), endpoint.method)(endpoint.path(w, role), **kwargs)
    may = role in endpoint.roles if endpoint.roles is not None else allowed(role, endpoint.cap)
    expected = endpoint.ok if may else 403
    assert response.status_code == expected, f"{role} {endpoint.name}: {response.content[:300]!r}"
