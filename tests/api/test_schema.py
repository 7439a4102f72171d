"""The OpenAPI schema: generated without warnings, served with local Swagger UI, and fuzzed with
schemathesis over every operation with no server error."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pharmacrm.core.models import Region
from pharmacrm.customers import services
from tests.conftest import (
    data_for_the_module,
    file_settings,
    new_ruijin,
    new_team_north,
    new_xiehe,
    role_users,
)

from .conftest import token_for


def test_the_schema_generates_and_validates_without_warnings(tmp_path):
    # --fail-on-warn turns any warning (unresolvable serializer, operationId clash …) into an error
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    text = (tmp_path / "schema.yaml").read_text(encoding="utf-8")
    assert "/api/v1/institutions/{id}/" in text and "tokenAuth" in text


def test_the_schema_is_served_to_anyone(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.") and "/api/v1/auth/token/" in schema["paths"]


def test_swagger_ui_loads_from_local_files_only(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls, html[:500]
    for url in urls:
        assert url.startswith("/static/"), f"external or unexpected asset: {url}"
        assert finders.find(url.removeprefix("/static/")), f"missing local asset: {url}"
    assert not re.search(r"https?://(?!127\.0\.0\.1|localhost)", html)


# --- schemathesis --------------------------------------------------------------------------------
# Every operation, called as an administrator and as a sales rep (the role with the narrowest scope), on a small
# world of records (customers, a ticket, an interaction, a safety case, a key account with its plan, meeting,
# trial and agreement). Path parameters are mostly ids of those records — ids the generator invents are nearly
# all 404s, which test nothing past the look-up — and the answers are checked against the schema: no server
# error, a documented status code and content type, and a body of the documented shape. The rep's answers to
# well-formed reads are 200, 403 or 404: never a 400 for a request the schema says is valid.


# Loaded once at collection: generating the schema touches no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())

FUZZED = {"admin": 4, "rep": 3}  # examples per operation and role: ~55 s per database on the CI runner
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class SchemaWorld:
    users: dict
    xiehe: object
    files: object = None
    path_values: dict = field(default_factory=dict)


def _seed(users: dict, xiehe) -> dict[str, object]:
    """What the operations find besides the customers: a ticket with a message and a survey, an interaction, a
    safety case and a flag, an improvement action (and its notification), the settings records (an agent
    profile, an answer template, an assignment rule, a webhook endpoint and a delivery), and a key account with
    its team, plan, meeting, trial, agreement, review and incentive (the key-account matrix's world). Answers the
    ids of records no list shows, by their collection's path."""
    from pharmacrm.core.models import Team
    from pharmacrm.engagement import services as engagement
    from pharmacrm.notify.models import Delivery, WebhookEndpoint
    from pharmacrm.safety import services as safety
    from pharmacrm.safety.models import Flag
    from pharmacrm.servicedesk import conversation, revisit
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.choices import MessageKind
    from pharmacrm.servicedesk.models import AgentProfile, AnswerTemplate, AssignmentRule, Survey
    from tests.safety.conftest import COMPLETE

    from .test_matrix import _build_world
    from .test_matrix_keyaccounts import KaWorld

    matrix = _build_world(users, xiehe)
    matrix.own_import("admin")
    ticket = desk.create_ticket(users["agent"], {"subject": "询问说明书", "channel": "phone",
                                                  "category": "drug_info", "institution": xiehe})  # fmt: skip
    conversation.post_message(users["agent"], ticket, kind=MessageKind.NOTE, body="已回电说明用法")
    Survey.objects.create(ticket=ticket, channel="phone")
    engagement.record_interaction(users["rep"], {"institution": xiehe, "channel": "visit", "subject": "拜访药剂科"})
    safety.create_case(users["pv"], {**COMPLETE, "received_at": timezone.now() - datetime.timedelta(days=1)})
    Flag.objects.create(kind="adverse_reaction", received_at=timezone.now())
    revisit.create_action(users["manager"], {"title": "缩短退货审批时间", "owner": users["agent"],
                                             "due_date": timezone.localdate() + datetime.timedelta(days=14)})  # fmt: skip
    AgentProfile.objects.create(user=users["agent"])
    AnswerTemplate.objects.create(name="储存条件答复", language="zh-hans", body="{customer}您好：本品请冷藏保存。")
    AssignmentRule.objects.create(name="华北", team=Team.objects.get(name="华北团队"))
    endpoint = WebhookEndpoint.objects.create(name="企业微信群", url="https://hooks.example.com/1", secret="s")
    Delivery.objects.create(channel=Delivery.Channel.WEBHOOK, endpoint=endpoint, payload={},
                            next_attempt_at=timezone.now())  # fmt: skip
    from pharmacrm.customers import services as customer_services
    from pharmacrm.sales import clv
    from pharmacrm.sales.models import MonthlyRollup

    customer_services.create_institution(users["rep"], {"name": "北京朝阳社区卫生服务中心", "kind": "clinic",
                                                         "region": xiehe.region})  # its stage tasks  # fmt: skip
    MonthlyRollup.objects.create(institution=xiehe, month=datetime.date(2026, 1, 1), amount_fen=10_000, paid_fen=10_000)
    clv.compute()  # its lifetime value
    ka = KaWorld(users, xiehe)
    ka.review()
    ka.incentive()
    from pharmacrm.engagement import plans
    from pharmacrm.sales.models import ChurnSignal

    plans.save_plan(users["manager"], {"year": timezone.localdate().year, "klass": "A", "goal": "每月拜访",
                                       "lines": [{"channel": "visit", "minimum": 1, "period": "month"}]})  # fmt: skip
    ChurnSignal.objects.create(institution=xiehe, level="lapsed", detected_on=timezone.localdate(),
                               refreshed_on=timezone.localdate(), base_avg_fen=100_000, recent_avg_fen=0,
                               base_months=12)  # fmt: skip
    from pharmacrm.servicedesk import campaigns

    campaigns.create_campaign(users["manager"], {"period": campaigns.current_quarter()})  # a draft survey campaign
    from pharmacrm.reports import services as reports

    users["admin"].email = "admin@example.com"
    users["admin"].save()
    reports.subscribe(users["admin"], {"report": "service_performance"})  # the admin's own scheduled report
    from pharmacrm.cooperation import services as cooperation

    today = timezone.localdate()
    agreement = cooperation.create_agreement(users["admin"], {  # a cooperation agreement with a running project
        "institution": xiehe.pk, "kind": "academic", "title": "心内科学术合作", "company_signer": "王总",
        "customer_signer": "李院长", "start_date": today - datetime.timedelta(days=30),
        "end_date": today + datetime.timedelta(days=335), "amount": "120000.00", "owner": users["admin"].pk,
    })  # fmt: skip
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.keyaccounts.programme_fixtures import tiny_pdf

    agreement = cooperation.record_signed(users["admin"], agreement, signed_date=today, version=agreement.version,
                                          upload=SimpleUploadedFile("签署版.pdf", tiny_pdf(), "application/pdf"))  # fmt: skip
    cooperation.create_project(users["admin"], agreement, {
        "title": "学术会议", "goal": "举办两场学术会议", "responsible": users["admin"].pk, "start_date": agreement.start_date,
        "end_date": agreement.end_date, "budget": "50000"})  # fmt: skip
    from pharmacrm.training import training

    course = training.save_course(users["manager"], None, {"title": "GSP合规培训", "category": "compliance", "hours": "1",
                                                           "pass_mark": "80", "max_attempts": "3", "status": "published",
                                                           "questions": "? 药品应按说明书储存。\n* 对\n- 错\n"})  # fmt: skip
    assigned, _had = training.assign(users["manager"], course, [users["admin"], users["agent"]], timezone.localdate())
    training.submit(users["admin"], assigned[0].pk, {str(q.pk): q.correct for q in course.questions.all()})  # certified
    from pharmacrm.training import classroom

    start = timezone.localtime().replace(minute=0, second=0, microsecond=0) + datetime.timedelta(days=7)
    session = classroom.create_session(users["manager"], course, {  # a full classroom session with a waiting list
        "starts_at": start, "ends_at": start + datetime.timedelta(hours=2), "place": "总部培训室", "capacity": "1",
        "trainer_name": "外聘讲师"})  # fmt: skip
    classroom.enrol(users["manager"], session, assigned[1])
    waiting, _had = training.assign(users["manager"], course, [users["rep"]], timezone.localdate())
    classroom.join_waiting_list(users["manager"], session, waiting[0])
    from pharmacrm.sales import pipeline

    pipeline.create(users["manager"], {"institution": xiehe, "title": "协和 新品进院", "amount_fen": 5_000_000,
                                       "close_date": timezone.localdate() + datetime.timedelta(days=60)})  # fmt: skip
    from pharmacrm.customers import services as customers
    from pharmacrm.loyalty import services as loyalty
    from pharmacrm.loyalty.models import PointsEntry

    shop = customers.create_institution(users["admin"], {"name": "同仁堂大药房", "kind": "pharmacy",
                                                         "region": xiehe.region})  # fmt: skip
    member = loyalty.join(users["admin"], shop)  # a loyalty member with points, a request and a referral
    PointsEntry.objects.create(member=member, kind="earn", points=500, month=today.replace(day=1))
    reward = loyalty.create_reward(users["admin"], {"name": "返利券", "kind": "rebate", "points_cost": 100,
                                                    "value_cny": "200.00"})  # fmt: skip
    loyalty.request_redemption(users["manager"], member, reward)
    new = customers.create_institution(users["admin"], {"name": "新开诊所", "kind": "clinic", "region": xiehe.region})
    loyalty.refer(users["admin"], member, new)
    from pharmacrm.licences import services as licences

    licences.create(users["manager"], xiehe, {"kind": "medical_practice", "number": "PDY60006X11010217A1001",
                                              "valid_until": today + datetime.timedelta(days=900)})  # fmt: skip
    from pharmacrm.market import services as market

    rival = market.save_competitor(users["admin"], {"name": "华海药业"})  # a competitor, its product, presence, news
    rival_product = market.save_product(users["admin"], {"company": rival.pk, "generic_name": "苯磺酸氨氯地平片"})
    market.record_presence(users["admin"], xiehe, {"product": rival_product.pk, "monthly_volume": 100,
                                                   "observed_on": today, "source": "visit"})  # fmt: skip
    market.create_intelligence(users["admin"], {"kind": "policy", "title": "DRG付费改革", "happened_on": today})
    from pharmacrm.sales import kpi

    scheme = kpi.default_scheme(users["manager"])  # a KPI appraisal scheme and its last quarter's results
    kpi.compute(scheme, kpi.current_period("quarter").previous, user=users["manager"])
    return {
        "/api/v1/keyaccounts/plan-items/": ka.account.plans.first().items.first().pk,
        "/api/v1/keyaccounts/meeting-actions/": ka.action.pk,
        "/api/v1/sales/customers/": xiehe.pk,
    }


def _param_field(name: str) -> str:
    """The field of a listed record that a path parameter takes: `{ticket_pk}` and `{id}` an id, `{code}` a code."""
    return "id" if name in ("pk", "id") or name.endswith("_pk") else name


def _known_path_values(client, operations, unlisted: dict) -> dict[str, dict]:
    """For each path with parameters, values that name existing records: the first record of the list each
    parameter's prefix names (`/tickets/` for `{ticket_pk}`, then `/tickets/1/messages/` for `{id}`), or the id
    `unlisted` gives for a collection without a list."""
    listed: dict[str, dict | None] = {url: {"id": pk} for url, pk in unlisted.items()}

    def first(url: str) -> dict | None:
        if url not in listed:
            response = client.get(url)
            data = response.json() if response.status_code == 200 and "json" in response["Content-Type"] else None
            rows = data.get("results") if isinstance(data, dict) else data
            listed[url] = rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], dict) else None
        return listed[url]

    out = {}
    for operation in operations:
        path = operation.path
        if "{" not in path:
            continue
        values, url = {}, ""
        for segment in path.strip("/").split("/"):
            match = re.fullmatch(r"\{(\w+)\}", segment)
            if match is None:
                url += f"/{segment}"
                continue
            row = first(url + "/")
            value = row.get(_param_field(match[1])) if row else None
            if value is None:
                break
            values[match[1]] = value
            url += f"/{value}"
        if values:
            out[path] = values
    return out


# One test per operation, positive and negative examples mixed.
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.fixture(scope="module")
def schema_world(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[SchemaWorld]:
    """Users, 协和 (with a consent) and 瑞金 and the records of `_seed`, built once for the module; each test runs
    in a savepoint inside the module's transaction, so what one test's examples create is gone for the next."""
    from rest_framework.test import APIClient

    files = tmp_path_factory.mktemp("schema")
    with data_for_the_module(django_db_blocker, files, VAR_DIR=files):
        users = role_users(new_team_north())
        admin = users["admin"]
        xiehe = new_xiehe(admin, Region.objects.get(code="110105"))  # 北京市朝阳区
        new_ruijin(admin, Region.objects.get(code="310104"))  # 上海市徐汇区
        services.record_consent(admin, xiehe.people.get(), {"purpose": "service", "channel": "phone", "status": "given"})
        unlisted = _seed(users, xiehe)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(admin)}", HTTP_ACCEPT_LANGUAGE="en")
        yield SchemaWorld(users, xiehe, files, _known_path_values(client, OPERATIONS, unlisted))


@pytest.fixture
def _tmp_file_storage(settings, schema_world):
    """The agreement's PDF stays where the module's world keeps it."""
    for name, value in file_settings(schema_world.files).items():
        setattr(settings, name, value)


@pytest.fixture
def users(schema_world):
    return schema_world.users


@pytest.fixture
def xiehe(schema_world):
    return schema_world.xiehe


@pytest.fixture
def auth_headers(users, schema_world, settings):
    """Tokens (with the second factor where the role needs one), and no connection closing between requests:
    the test's transaction must survive them, as Django's test client ensures. auth_headers["rep"] …
    The agreement's PDF is where the module's world issued it (set here: after the API tests' own VAR_DIR)."""
    settings.VAR_DIR = schema_world.files
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield {role: {"Authorization": f"Token {token_for(users[role])}", "Accept-Language": "en"}
               for role in ("admin", "rep")}  # fmt: skip
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _reads_as_a_rep(ctx, response, case):
    """A well-formed read by the rep of a record or a list (no query parameters, whose values the generator
    invents: an `ordering` by no field, a `team` that does not exist are rightly 400s) is answered, refused or not
    found: anything else is a defect."""
    if case.method.upper() == "GET" and not case.query and case.meta is not None and case.meta.generation.mode.is_positive:
        if response.status_code not in (200, 403, 404):
            raise AssertionError(f"GET {case.formatted_path} as the rep: {response.status_code} {response.text[:300]}")


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_no_operation_answers_with_a_server_error_or_off_its_schema(operation, auth_headers, schema_world):
    known = schema_world.path_values.get(operation.path, {})
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    if known:  # three cases in four on existing records
        cases = st.tuples(cases, st.integers(0, 3)).map(lambda pair: _on_records(*pair, known))

    for role, examples in FUZZED.items():
        _fuzz(cases, examples, auth_headers[role], CHECKS + ([_reads_as_a_rep] if role == "rep" else []))


def _fuzz(cases, examples: int, headers: dict, checks: list) -> None:
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=cases)
    def call(case):
        case.call_and_validate(headers=headers, checks=checks)

    call()


def _on_records(case, draw: int, known: dict):
    if draw:
        case.path_parameters = {**(case.path_parameters or {}), **known}
    return case


# --- answers match the schema ----------------------------------------------------------------------
# What a client generated from the schema reads: an API fuzz run found a board and a report documented as
# arrays, ids and times that can be null documented as never null, and enums without their empty value.

CONFORMING = [
    "/api/v1/service-board/", "/api/v1/safety/reconciliation/", "/api/v1/safety/cases/", "/api/v1/tickets/",
    "/api/v1/institutions/", "/api/v1/people/", "/api/v1/notifications/", "/api/v1/agent-profiles/me/",
]  # fmt: skip


@pytest.mark.parametrize("path", CONFORMING)
def test_what_the_api_answers_matches_its_schema(path, auth_headers, users, xiehe):
    from pharmacrm.servicedesk import services as desk

    desk.create_ticket(users["agent"], {"subject": "询问说明书", "channel": "phone", "category": "drug_info",
                                        "institution": xiehe})  # fmt: skip
    case = schema[path]["GET"].Case(headers=auth_headers["admin"])
    response = case.call()
    assert response.status_code == 200, response.text[:300]
    case.validate_response(response, checks=[response_schema_conformance])


def test_the_fuzz_reaches_existing_records(schema_world):
    """Invented ids were 404s nearly always: the fuzz run tested the look-up and little else. Each path with
    parameters but a few (files by name, a record no list shows) gets ids of records of the seeded world."""
    paths = {op.path for op in OPERATIONS if "{" in op.path}
    unreached = sorted(paths - set(schema_world.path_values))
    assert len(unreached) <= len(paths) // 10, "\n".join(unreached)
