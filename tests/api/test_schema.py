"""The OpenAPI schema: generated without warnings, served with local Swagger UI, and fuzzed with
schemathesis over every operation with no server error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from pharmacrm.core.models import Region
from pharmacrm.customers import services
from tests.conftest import data_for_the_module, new_ruijin, new_team_north, new_xiehe, role_users

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


# Loaded once at collection: generating the schema touches no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@dataclass
class SchemaWorld:
    users: dict
    xiehe: object


@pytest.fixture(scope="module")
def schema_world(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[SchemaWorld]:
    """Users, 协和 (with a consent) and 瑞金, built once for the module; each test runs in a savepoint inside the
    module's transaction, so what one test's examples create is gone for the next."""
    with data_for_the_module(django_db_blocker, tmp_path_factory.mktemp("schema")):
        users = role_users(new_team_north())
        admin = users["admin"]
        xiehe = new_xiehe(admin, Region.objects.get(code="110105"))  # 北京市朝阳区
        new_ruijin(admin, Region.objects.get(code="310104"))  # 上海市徐汇区
        services.record_consent(admin, xiehe.people.get(), {"purpose": "service", "channel": "phone", "status": "given"})
        yield SchemaWorld(users, xiehe)


@pytest.fixture
def users(schema_world):
    return schema_world.users


@pytest.fixture
def xiehe(schema_world):
    return schema_world.xiehe


@pytest.fixture
def auth_headers(users):
    """An admin token (with second factor), data to act on, and no connection closing between
    requests: the test's transaction must survive them, as Django's test client ensures."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield {"Authorization": f"Token {token_for(users['admin'])}", "Accept-Language": "en"}
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


# One test per operation, positive and negative examples mixed; the bound keeps the run short.
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_no_operation_answers_with_a_server_error(operation, auth_headers):
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )

    @settings(
        max_examples=15,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def call(case):
        case.call_and_validate(headers=auth_headers, checks=[not_a_server_error])

    call()


# --- answers match the schema ----------------------------------------------------------------------
# What a client generated from the schema reads: an API fuzz run found a board and a report documented as
# arrays, ids and times that can be null documented as never null, and enums without their empty value.

CONFORMING = [
    "/api/v1/service-board/", "/api/v1/safety/reconciliation/", "/api/v1/safety/cases/", "/api/v1/tickets/",
    "/api/v1/institutions/", "/api/v1/people/", "/api/v1/notifications/", "/api/v1/agent-profiles/me/",
]  # fmt: skip


@pytest.mark.parametrize("path", CONFORMING)
def test_what_the_api_answers_matches_its_schema(path, auth_headers, users, xiehe):
    from schemathesis.specs.openapi.checks import response_schema_conformance

    from pharmacrm.servicedesk import services as desk

    desk.create_ticket(users["agent"], {"subject": "询问说明书", "channel": "phone", "category": "drug_info",
                                        "institution": xiehe})  # fmt: skip
    case = schema[path]["GET"].Case(headers=auth_headers)
    response = case.call()
    assert response.status_code == 200, response.text[:300]
    case.validate_response(response, checks=[response_schema_conformance])
