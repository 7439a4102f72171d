"""The authorization matrix: every role × every endpoint, expected answer derived from roles.MATRIX.

Objects used are inside the sales rep's territory (Beijing), so the answers test capabilities;
the scope itself is tested in test_customers.py."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pharmacrm.core.access import WRITE_CAPS
from pharmacrm.core.models import AuditEntry, Region, User
from pharmacrm.core.roles import MATRIX, READ_ONLY_ROLES, Cap, Role
from pharmacrm.customers import services
from pharmacrm.customers.models import ImportJob
from pharmacrm.servicedesk import calendars
from pharmacrm.servicedesk import services as desk
from pharmacrm.servicedesk.models import BusinessCalendar, SlaPolicy
from tests.conftest import data_for_the_module, new_team_north, new_xiehe, role_users

from .conftest import ROLES

IMPORT_CSV = "机构名称,机构类型,行政区划代码\n北京和睦家医院,医院,110105\n".encode("utf-8-sig")
SPLIT_ORDER = "SPLIT-1"  # an order whose lines name two customers (stored so before session 56)


def allowed(role: str, cap: Cap | None) -> bool:
    """What the permission matrix promises: the role holds the capability, and a read-only role
    never holds a write capability."""
    if cap is None:
        return True
    r = Role(role)
    return r in MATRIX[cap] and not (r in READ_ONLY_ROLES and cap in WRITE_CAPS)


@dataclass
class World:
    """What the endpoints act on: built once for the module, and the same for every test."""

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
    handled_ticket: Any = None  # resolved, nobody's: for a quality review


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
    Endpoint(  # reading targets is scoped by role and team lead, not a capability: tests/sales/test_targets.py
        "sales.targets.create", "post", lambda w, r: "/api/v1/sales/targets/", Cap.SET_SALES_TARGETS, 201,
        body=lambda w: {"period": "2026-11", "team": w.users["rep"].teams.get().pk, "amount": "50000"},
    ),
    # the scope of agreements and projects: tests/cooperation/test_cooperation.py
    Endpoint("cooperation.agreements.list", "get", lambda w, r: "/api/v1/cooperation/agreements/", Cap.READ_COOPERATION, 200),
    Endpoint("cooperation.projects.list", "get", lambda w, r: "/api/v1/cooperation/projects/", Cap.READ_COOPERATION, 200),
    Endpoint(
        "cooperation.agreements.create", "post", lambda w, r: "/api/v1/cooperation/agreements/", Cap.MANAGE_COOPERATION,
        201, body=lambda w: {"institution": w.xiehe.pk, "kind": "training", "title": "护理培训", "company_signer": "王总",
                             "start_date": "2026-12-01", "end_date": "2027-11-30"},
    ),
    # the scope of members, redemptions and referrals: tests/loyalty/test_pages.py
    Endpoint("loyalty.members.list", "get", lambda w, r: "/api/v1/loyalty/members/", Cap.READ_LOYALTY, 200),
    Endpoint("loyalty.redemptions.list", "get", lambda w, r: "/api/v1/loyalty/redemptions/", Cap.READ_LOYALTY, 200),
    Endpoint("loyalty.referrals.list", "get", lambda w, r: "/api/v1/loyalty/referrals/", Cap.READ_LOYALTY, 200),
    Endpoint("loyalty.rewards.list", "get", lambda w, r: "/api/v1/loyalty/rewards/", Cap.READ_LOYALTY, 200),
    Endpoint(
        "loyalty.rewards.create", "post", lambda w, r: "/api/v1/loyalty/rewards/", Cap.APPROVE_LOYALTY, 201,
        body=lambda w: {"name": "返利券", "kind": "rebate", "points_cost": 100, "value_cny": "200.00"},
    ),
    # the scope of licences and their verification: tests/licences/test_licences.py
    Endpoint("licences.list", "get", lambda w, r: "/api/v1/licences/", Cap.VIEW_CUSTOMERS, 200),
    Endpoint(
        "licences.create", "post", lambda w, r: "/api/v1/licences/", Cap.MANAGE_LICENCES, 201,
        body=lambda w: {"institution": w.xiehe.pk, "kind": "medical_practice", "number": "PDY60006X11010217A1001",
                        "valid_until": "2029-12-31"},
    ),
    # who sees the amounts, and the scope: tests/licences/test_unqualified_sales.py
    Endpoint("licences.unqualified_sales", "get", lambda w, r: "/api/v1/licences/unqualified-sales/",
             Cap.REVIEW_UNQUALIFIED_SALES, 200),
    # the scope of presence and the writing of intelligence by others: tests/market/test_market.py
    Endpoint("market.competitors.list", "get", lambda w, r: "/api/v1/market/competitors/", Cap.READ_MARKET, 200),
    Endpoint("market.products.list", "get", lambda w, r: "/api/v1/market/competitor-products/", Cap.READ_MARKET, 200),
    Endpoint("market.presence.list", "get", lambda w, r: "/api/v1/market/presence/", Cap.READ_MARKET, 200),
    Endpoint("market.intelligence.list", "get", lambda w, r: "/api/v1/market/intelligence/", Cap.READ_MARKET, 200),
    Endpoint("market.competitors.create", "post", lambda w, r: "/api/v1/market/competitors/", Cap.MANAGE_MARKET, 201,
             body=lambda w: {"name": "矩阵药业"}),
    Endpoint(
        "market.intelligence.create", "post", lambda w, r: "/api/v1/market/intelligence/", Cap.RECORD_MARKET, 201,
        body=lambda w: {"kind": "news", "title": "矩阵情报", "happened_on": "2026-01-05", "customers": [w.xiehe.pk]},
    ),
    # who reads which review, and who reviews which ticket: tests/servicedesk/test_quality_reviews.py
    Endpoint("service.quality_reviews.list", "get", lambda w, r: "/api/v1/service/quality-reviews/", Cap.VIEW_TICKETS,
             200),
    Endpoint(
        "service.quality_reviews.create", "post", lambda w, r: "/api/v1/service/quality-reviews/",
        Cap.REVIEW_SERVICE_QUALITY, 201,
        body=lambda w: {"ticket": w.handled_ticket.pk, "accurate": True, "compliant": True, "complete": True,
                        "courteous": True},
    ),
    # the channel effect needs customers, interactions and purchases: every role with purchases holds the other two
    Endpoint("engagement.channels", "get", lambda w, r: "/api/v1/engagement/channels/", Cap.VIEW_PURCHASES, 200),
    # a split order of two Beijing customers (the rep's territory); the rep's scope: tests/sales/test_split_orders_api.py
    Endpoint("sales.split_orders.list", "get", lambda w, r: "/api/v1/sales/split-orders/", Cap.VIEW_PURCHASES, 200),
    Endpoint(
        "sales.split_orders.repair", "post", lambda w, r: "/api/v1/sales/split-orders/repair/", Cap.IMPORT_ORDERS, 200,
        body=lambda w: {"order_number": SPLIT_ORDER},
    ),
    Endpoint(  # reading opportunities is scoped by role and team: tests/sales/test_pipeline_pages.py
        "sales.opportunities.create", "post", lambda w, r: "/api/v1/sales/opportunities/", Cap.WORK_PIPELINE, 201,
        body=lambda w: {"customer": w.xiehe.pk, "title": "矩阵商机", "amount": "1000", "close_date": "2027-01-31"},
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[World]:
    """Built once for the module (a world per test cost a fifth of the API tests' time); each test runs in a
    savepoint inside the module's transaction, so a test that deletes or changes part of it leaves the next
    one the same world."""
    with data_for_the_module(django_db_blocker, tmp_path_factory.mktemp("matrix")):
        users = role_users(new_team_north())
        yield _build_world(users, new_xiehe(users["admin"], Region.objects.get(code="110105")))  # 北京市朝阳区


@pytest.fixture
def users(world) -> dict[str, User]:
    return world.users


def _build_world(users: dict[str, User], xiehe) -> World:
    admin = users["admin"]
    beijing = xiehe.region
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
    handled = desk.create_ticket(
        admin, {"subject": "咨询储存", "channel": "phone", "category": "drug_info", "institution": xiehe}
    )
    desk.transition(admin, handled, "resolved", resolution_summary="已答复。", root_cause="information")

    _plant_split_order(admin, xiehe)

    seq = AuditEntry.objects.order_by("seq").values_list("seq", flat=True).first()
    return World(
        users, xiehe, person, spare_institution, spare_person, consent, seq, own_import, ticket, spare_policy, handled
    )


def _plant_split_order(admin, xiehe) -> None:
    """SPLIT_ORDER: line 1 for 协和, line 2 for another Beijing hospital (the split orders list and repair)."""
    from pharmacrm.sales.models import OrderLine

    other = services.create_institution(admin, {"name": "北京市第一矩阵医院", "kind": "hospital", "region": xiehe.region})
    day = datetime.date(2026, 3, 5)
    OrderLine.objects.bulk_create([
        OrderLine(order_number=SPLIT_ORDER, line_number=n, order_date=day, month=day.replace(day=1), institution=inst,
                  product_code="P1", quantity=1, unit_price=10, amount_fen=1000, row_hash=n)
        for n, inst in ((1, xiehe), (2, other))
    ])  # fmt: skip


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
