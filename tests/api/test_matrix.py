"""The authorization matrix: every role × every endpoint, expected answer derived from roles.MATRIX.

Objects used are inside the sales rep's territory (Beijing), so the answers test capabilities;
the scope itself is tested in test_customers.py."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pharmacrm.core.access import WRITE_CAPS
from pharmacrm.core.models import AuditEntry, User
from pharmacrm.core.roles import MATRIX, READ_ONLY_ROLES, Cap, Role
from pharmacrm.customers import services
from pharmacrm.customers.models import ImportJob
from pharmacrm.servicedesk import calendars
from pharmacrm.servicedesk import services as desk
from pharmacrm.servicedesk.models import BusinessCalendar, SlaPolicy

from .conftest import ROLES

IMPORT_CSV = "机构名称,机构类型,行政区划代码\n北京和睦家医院,医院,110105\n".encode("utf-8-sig")


def allowed(role: str, cap: Cap | None) -> bool:
    """What the permission matrix promises: the role holds the capability, and a read-only role
    never holds a write capability."""
    if cap is None:
        return True
    r = Role(role)
    return r in MATRIX[cap] and not (r in READ_ONLY_ROLES and cap in WRITE_CAPS)


@dataclass
class World:
    """What the endpoints act on, made fresh for each test."""

    users: dict[str, User]
    xiehe: Any
    person: Any
    spare_institution: Any
    spare_person: Any
    consent: Any
    audit_seq: int
    own_import: Any
    ticket: Any = None
    spare_policy: Any = None


@dataclass
class Endpoint:
    name: str
    method: str
    path: Callable[[World, str], str]
    cap: Cap | None
    ok: int
    body: Callable[[World], Any] | None = None
    multipart: bool = False


def _import_body(w: World):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return {
        "file": SimpleUploadedFile("机构.csv", IMPORT_CSV, content_type="text/csv"),
        "target": "institutions",
        "mode": "all",
        "dry_run": "true",
    }


ENDPOINTS = [
    Endpoint("institutions.list", "get", lambda w, r: "/api/v1/institutions/", Cap.VIEW_CUSTOMERS, 200),
    Endpoint("institutions.retrieve", "get", lambda w, r: f"/api/v1/institutions/{w.xiehe.pk}/", Cap.VIEW_CUSTOMERS, 200),
    Endpoint(
        "institutions.create", "post", lambda w, r: "/api/v1/institutions/", Cap.CHANGE_CUSTOMERS, 201,
        body=lambda w: {"name": "北京市第六医院", "kind": "hospital", "region": "110101"},
    ),
    Endpoint(
        "institutions.update", "patch", lambda w, r: f"/api/v1/institutions/{w.xiehe.pk}/", Cap.CHANGE_CUSTOMERS, 200,
        body=lambda w: {"beds": 2050, "version": w.xiehe.version},
    ),
    Endpoint(
        "institutions.replace", "put", lambda w, r: f"/api/v1/institutions/{w.spare_institution.pk}/",
        Cap.CHANGE_CUSTOMERS, 200,
        body=lambda w: {"name": "东城社区卫生服务中心", "kind": "community", "region": "110101", "version": 1},
    ),
    Endpoint(
        "institutions.delete", "delete", lambda w, r: f"/api/v1/institutions/{w.spare_institution.pk}/",
        Cap.DELETE_CUSTOMERS, 204,
    ),
    Endpoint("people.list", "get", lambda w, r: "/api/v1/people/", Cap.VIEW_CUSTOMERS, 200),
    Endpoint("people.retrieve", "get", lambda w, r: f"/api/v1/people/{w.person.pk}/", Cap.VIEW_CUSTOMERS, 200),
    Endpoint(
        "people.create", "post", lambda w, r: "/api/v1/people/", Cap.CHANGE_CUSTOMERS, 201,
        body=lambda w: {"name": "刘洋", "institution": w.xiehe.pk, "mobile": "13912345678"},
    ),
    Endpoint(
        "people.update", "patch", lambda w, r: f"/api/v1/people/{w.person.pk}/", Cap.CHANGE_CUSTOMERS, 200,
        body=lambda w: {"title": "副主任医师", "version": w.person.version},
    ),
    Endpoint("people.delete", "delete", lambda w, r: f"/api/v1/people/{w.spare_person.pk}/", Cap.DELETE_CUSTOMERS, 204),
    Endpoint("consents.list", "get", lambda w, r: "/api/v1/consents/", Cap.VIEW_CUSTOMERS, 200),
    Endpoint("consents.retrieve", "get", lambda w, r: f"/api/v1/consents/{w.consent.pk}/", Cap.VIEW_CUSTOMERS, 200),
    Endpoint(
        "consents.create", "post", lambda w, r: "/api/v1/consents/", Cap.MANAGE_CONSENTS, 201,
        body=lambda w: {"person": w.person.pk, "purpose": "surveys", "channel": "wechat", "status": "withdrawn"},
    ),
    Endpoint("search", "get", lambda w, r: "/api/v1/search/?q=xiehe", Cap.VIEW_CUSTOMERS, 200),
    Endpoint("regions.list", "get", lambda w, r: "/api/v1/regions/?parent=110000", None, 200),
    Endpoint("roles.list", "get", lambda w, r: "/api/v1/roles/", None, 200),
    Endpoint("audit.list", "get", lambda w, r: "/api/v1/audit/", Cap.VIEW_AUDIT, 200),
    Endpoint("audit.retrieve", "get", lambda w, r: f"/api/v1/audit/{w.audit_seq}/", Cap.VIEW_AUDIT, 200),
    Endpoint("users.list", "get", lambda w, r: "/api/v1/users/", Cap.VIEW_USERS, 200),
    Endpoint("users.retrieve", "get", lambda w, r: f"/api/v1/users/{w.users['expert'].pk}/", Cap.VIEW_USERS, 200),
    Endpoint("users.options", "options", lambda w, r: "/api/v1/users/", Cap.VIEW_USERS, 200),
    Endpoint(
        "users.create", "post", lambda w, r: "/api/v1/users/", Cap.MANAGE_USERS, 201,
        body=lambda w: {"username": "newhire", "password": "Lotus-Harbour-7319", "roles": ["agent"]},
    ),
    Endpoint(
        "users.update", "patch", lambda w, r: f"/api/v1/users/{w.users['expert'].pk}/", Cap.MANAGE_USERS, 200,
        body=lambda w: {"display_name": "产品专家", "version": 1},
    ),
    Endpoint(
        "users.deactivate", "delete", lambda w, r: f"/api/v1/users/{w.users['support'].pk}/", Cap.MANAGE_USERS, 204
    ),
    Endpoint(
        "users.second_factor", "post", lambda w, r: f"/api/v1/users/{w.users['pv'].pk}/second-factor/",
        Cap.MANAGE_USERS, 201,
    ),
    Endpoint("export.institutions.csv", "get", lambda w, r: "/api/v1/export/institutions.csv", Cap.EXPORT_CUSTOMERS, 200),
    Endpoint("export.people.csv", "get", lambda w, r: "/api/v1/export/people.csv", Cap.EXPORT_CUSTOMERS, 200),
    Endpoint("export.people.xlsx", "get", lambda w, r: "/api/v1/export/people.xlsx", Cap.EXPORT_CUSTOMERS, 200),
    Endpoint(
        "imports.create", "post", lambda w, r: "/api/v1/imports/", Cap.IMPORT_CUSTOMERS, 202,
        body=_import_body, multipart=True,
    ),
    Endpoint(
        "imports.retrieve", "get", lambda w, r: f"/api/v1/imports/{w.own_import(r).pk}/", Cap.IMPORT_CUSTOMERS, 200
    ),
    # service desk
    Endpoint("tickets.list", "get", lambda w, r: "/api/v1/tickets/", Cap.VIEW_TICKETS, 200),
    Endpoint("tickets.retrieve", "get", lambda w, r: f"/api/v1/tickets/{w.ticket.pk}/", Cap.VIEW_TICKETS, 200),
    Endpoint(
        "tickets.create", "post", lambda w, r: "/api/v1/tickets/", Cap.HANDLE_TICKETS, 201,
        body=lambda w: {"subject": "咨询用法用量", "channel": "phone", "category": "drug_info", "institution": w.xiehe.pk},
    ),
    Endpoint(
        "tickets.transition", "post", lambda w, r: f"/api/v1/tickets/{w.ticket.pk}/transition/", Cap.HANDLE_TICKETS,
        200, body=lambda w: {"status": "in_progress", "version": w.ticket.version},
    ),
    Endpoint(
        "tickets.priority", "post", lambda w, r: f"/api/v1/tickets/{w.ticket.pk}/priority/", Cap.HANDLE_TICKETS,
        200, body=lambda w: {"priority": "high", "reason": "患者投诉", "version": w.ticket.version},
    ),
    Endpoint(
        "tickets.assign", "post", lambda w, r: f"/api/v1/tickets/{w.ticket.pk}/assign/", Cap.HANDLE_TICKETS,
        200, body=lambda w: {"assignee": w.users["agent"].pk, "version": w.ticket.version},
    ),
    Endpoint(
        "tickets.respond", "post", lambda w, r: f"/api/v1/tickets/{w.ticket.pk}/respond/", Cap.HANDLE_TICKETS,
        201, body=lambda w: {"channel": "phone", "summary": "已回电"},
    ),
    Endpoint("tickets.events", "get", lambda w, r: f"/api/v1/tickets/{w.ticket.pk}/events/", Cap.VIEW_TICKETS, 200),
    Endpoint("tickets.clocks", "get", lambda w, r: f"/api/v1/tickets/{w.ticket.pk}/clocks/", Cap.VIEW_TICKETS, 200),
    Endpoint("ticket_categories.list", "get", lambda w, r: "/api/v1/ticket-categories/", Cap.VIEW_TICKETS, 200),
    Endpoint(
        "ticket_categories.retrieve", "get", lambda w, r: "/api/v1/ticket-categories/drug_info/", Cap.VIEW_TICKETS, 200
    ),
    Endpoint("sla_policies.list", "get", lambda w, r: "/api/v1/sla-policies/", Cap.VIEW_TICKETS, 200),
    Endpoint(
        "sla_policies.retrieve", "get", lambda w, r: f"/api/v1/sla-policies/{w.spare_policy.pk}/", Cap.VIEW_TICKETS, 200
    ),
    Endpoint(
        "sla_policies.create", "post", lambda w, r: "/api/v1/sla-policies/", Cap.MANAGE_SERVICE, 201,
        body=lambda w: {"name": "VIP 高优先级", "priority": "high", "customer_tier": "vip", "calendar": "business",
                        "first_response": 4, "first_response_unit": "hours", "resolution": 1, "resolution_unit": "days"},
    ),
    Endpoint(
        "sla_policies.update", "patch", lambda w, r: f"/api/v1/sla-policies/{w.spare_policy.pk}/", Cap.MANAGE_SERVICE,
        200, body=lambda w: {"first_response": 3},
    ),
    Endpoint(
        "sla_policies.deactivate", "delete", lambda w, r: f"/api/v1/sla-policies/{w.spare_policy.pk}/",
        Cap.MANAGE_SERVICE, 204,
    ),
    Endpoint("calendars.list", "get", lambda w, r: "/api/v1/calendars/", Cap.VIEW_TICKETS, 200),
    Endpoint("calendars.retrieve", "get", lambda w, r: "/api/v1/calendars/business/", Cap.VIEW_TICKETS, 200),
    Endpoint("calendars.overrides", "get", lambda w, r: "/api/v1/calendars/business/overrides/", Cap.VIEW_TICKETS, 200),
    Endpoint(
        "calendars.overrides.set", "post", lambda w, r: "/api/v1/calendars/business/overrides/", Cap.MANAGE_SERVICE,
        201, body=lambda w: {"date": "2027-02-08", "working": False, "note": "2027 春节"},
    ),
    Endpoint(
        "calendars.overrides.remove", "delete", lambda w, r: "/api/v1/calendars/business/overrides/2027-10-09/",
        Cap.MANAGE_SERVICE, 204,
    ),
]  # fmt: skip


@pytest.fixture
def world(users, xiehe, beijing) -> World:
    admin = users["admin"]
    person = xiehe.people.get()
    spare_institution = services.create_institution(
        admin, {"name": "东城区社区卫生服务中心", "kind": "community", "region": beijing}
    )
    spare_person = services.create_person(admin, {"name": "赵敏", "institution": xiehe})
    consent = services.record_consent(
        admin, person, {"purpose": "service", "channel": "phone", "status": "given"}
    )

    def own_import(role: str) -> ImportJob:
        return ImportJob.objects.create(
            target="institutions", file_name="机构.csv", file_path="", file_sha256="0" * 64,
            created_by=users[role], status=ImportJob.Status.PREVIEWED,
        )  # fmt: skip

    # service desk: a ticket of 北京协和医院 (the rep's territory), a policy to change, an override to remove
    ticket = desk.create_ticket(
        admin, {"subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe}
    )
    business = BusinessCalendar.objects.get(code="business")
    spare_policy = SlaPolicy.objects.create(
        name="重点客户", customer_tier="key", calendar=business, first_response=4, first_response_unit="hours",
        resolution=2, resolution_unit="days", position=50,
    )  # fmt: skip
    calendars.set_override(admin, business, datetime.date(2027, 10, 9), True, "2027 国庆调休")

    seq = AuditEntry.objects.order_by("seq").values_list("seq", flat=True).first()
    return World(
        users, xiehe, person, spare_institution, spare_person, consent, seq, own_import, ticket, spare_policy
    )


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_authorization_matrix(endpoint: Endpoint, role: str, world: World, api_for):
    client = api_for(role)
    kwargs: dict = {}
    if endpoint.body is not None:
        kwargs = {"data": endpoint.body(world), "format": "multipart" if endpoint.multipart else "json"}
    response = getattr(client, endpoint.method)(endpoint.path(world, role), **kwargs)
    expected = endpoint.ok if allowed(role, endpoint.cap) else 403
    assert response.status_code == expected, f"{role} {endpoint.name}: {response.content[:300]!r}"


# --- the key-account programme's day-to-day work (api_ops, agreement generation and signing) ----------------------
# Who may act depends on the account as well as on a capability. The world: 北京协和医院 (the rep's territory) is a
# key account whose project manager is the kam, with the expert, support and after-sales in its team, a plan in
# force, and an action item owned by the expert. Where the answer is not one capability's, `roles` lists who may.

KA = "/api/v1/keyaccounts/"
RUNS_ACCOUNT = frozenset({"admin", "manager", "kam"})  # administrators, managers, the project manager
IN_TEAM = RUNS_ACCOUNT | {"expert", "support", "aftersales"}  # … and the team's members


class KaWorld:
    """Built once per test; the agreement, the signed agreement and the evaluation only when an endpoint asks."""

    def __init__(self, users, make_user, xiehe):
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
        self.expert2 = make_user("expert2", Role.EXPERT)
        self.product = Product.objects.create(brand_name="新药", generic_name="新药片", dosage_form="片剂", strength="1mg")
        self.product2 = Product.objects.create(brand_name="新药", generic_name="新药片", dosage_form="片剂",
                                               strength="5mg", approval_number="国药准字H20260001")  # fmt: skip
        meeting = ka.record_meeting(kam, account, {"held_at": timezone.now(), "title": "季度会", "minutes": "纪要"},
                                    [{"title": "送样", "owner": users["expert"], "due_date": self.today}])  # fmt: skip
        self.action = meeting.actions.get()
        self.meeting = meeting
        self.trial = ka.offer_trial(kam, account, product=self.product, notes="试用")
        self.period = ka.previous_quarter(self.today)
        self._cache: dict = {}

    def agreement(self):
        if "agreement" not in self._cache:
            self._cache["agreement"] = self.ka.generate_agreement(
                self.users["kam"], self.account, start_date=self.today,
                end_date=self.today + datetime.timedelta(days=365),
            )  # fmt: skip
        return self._cache["agreement"]

    def signed(self):
        from django.core.files.uploadedfile import SimpleUploadedFile

        from tests.keyaccounts.programme_fixtures import tiny_pdf

        if "signed" not in self._cache:
            upload = SimpleUploadedFile("signed.pdf", tiny_pdf(), "application/pdf")
            self._cache["signed"] = self.ka.record_signed(self.users["kam"], self.agreement(), signed_date=self.today,
                                                          upload=upload)  # fmt: skip
        return self._cache["signed"]

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
    KaEndpoint("ka.members.destroy", "delete", lambda w, r: f"{KA}members/{w.expert_member.pk}/", 204,
               cap=Cap.MANAGE_KEY_ACCOUNTS),
    KaEndpoint("ka.meetings.list", "get", lambda w, r: f"{KA}meetings/?account={w.account.pk}", 200),
    KaEndpoint("ka.meetings.retrieve", "get", lambda w, r: f"{KA}meetings/{w.meeting.pk}/", 200),
    KaEndpoint("ka.meetings.create", "post", lambda w, r: f"{KA}meetings/", 201, roles=IN_TEAM,
               body=lambda w: {"account": w.account.pk, "held_at": "2026-01-05T10:00:00+08:00", "title": "月度会",
                               "minutes": "纪要", "actions": [{"title": "回访", "owner": w.users["support"].pk,
                                                             "due_date": "2026-01-20"}]}),
    KaEndpoint("ka.meeting_actions.retrieve", "get", lambda w, r: f"{KA}meeting-actions/{w.action.pk}/", 200),
    KaEndpoint("ka.meeting_actions.done", "post", lambda w, r: f"{KA}meeting-actions/{w.action.pk}/done/", 200,
               roles=RUNS_ACCOUNT | {"expert"}, body=lambda w: {"done": True}),  # the owner, or who runs it
    KaEndpoint("ka.trials.list", "get", lambda w, r: f"{KA}trials/?account={w.account.pk}", 200),
    KaEndpoint("ka.trials.retrieve", "get", lambda w, r: f"{KA}trials/{w.trial.pk}/", 200),
    KaEndpoint("ka.trials.create", "post", lambda w, r: f"{KA}trials/", 201, roles=IN_TEAM,
               body=lambda w: {"account": w.account.pk, "product": w.product2.pk, "notes": "样品"}),
    KaEndpoint("ka.trials.status", "post", lambda w, r: f"{KA}trials/{w.trial.pk}/status/", 200, roles=IN_TEAM,
               body=lambda w: {"status": "accepted", "version": w.trial.version}),
    KaEndpoint("ka.agreements.create", "post", lambda w, r: f"{KA}agreements/", 201, cap=Cap.MANAGE_KEY_ACCOUNTS,
               body=lambda w: {"account": w.account.pk, "start_date": w.today.isoformat(),
                               "end_date": (w.today + datetime.timedelta(days=365)).isoformat()}),
    KaEndpoint("ka.agreements.sign", "post", lambda w, r: f"{KA}agreements/{w.agreement().pk}/sign/", 200,
               cap=Cap.MANAGE_KEY_ACCOUNTS, body=_signed_body, multipart=True),
    KaEndpoint("ka.agreements.signed_copy", "get", lambda w, r: f"{KA}agreements/{w.signed().pk}/signed-copy/", 200),
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


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", KA_ENDPOINTS, ids=lambda e: e.name)
def test_key_account_operations_matrix(endpoint: KaEndpoint, role: str, users, make_user, xiehe, api_for):
    w = KaWorld(users, make_user, xiehe)
    kwargs: dict = {}
    if endpoint.body is not None:
        kwargs = {"data": endpoint.body(w), "format": "multipart" if endpoint.multipart else "json"}
    response = getattr(api_for(role), endpoint.method)(endpoint.path(w, role), **kwargs)
    may = role in endpoint.roles if endpoint.roles is not None else allowed(role, endpoint.cap)
    expected = endpoint.ok if may else 403
    assert response.status_code == expected, f"{role} {endpoint.name}: {response.content[:300]!r}"
