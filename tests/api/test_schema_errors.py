"""The schema documents the error answers: a 400 with per-field messages and `{"detail"}` for other refusals, on
every operation; and what the API answers matches it."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from schemathesis.specs.openapi.checks import response_schema_conformance

from .conftest import token_for

pytestmark = pytest.mark.django_db

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


def test_every_operation_documents_its_400_with_the_per_field_shape():
    """A 400 was documented on 59 of 217 operations, never with a body: a client generated from the schema could
    not read the messages the API sends."""
    raw = schema.raw_schema
    missing = [
        f"{method.upper()} {path}"
        for path, operations in raw["paths"].items()
        for method, operation in operations.items()
        if method in ("get", "post", "put", "patch", "delete")
        and operation["responses"].get("400", {}).get("content", {}).get("application/json", {}).get("schema")
        != {"$ref": "#/components/schemas/FieldErrors"}
    ]
    assert not missing, missing[:10]
    detail = raw["paths"]["/api/v1/institutions/{id}/"]["get"]["responses"]["404"]["content"]
    assert detail["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorDetail"}
    conflict = raw["paths"]["/api/v1/institutions/{id}/"]["patch"]["responses"]["409"]["content"]
    assert conflict["application/json"]["schema"] == {"$ref": "#/components/schemas/ConflictError"}
    assert "401" not in raw["paths"]["/api/v1/auth/token/"]["post"]["responses"]


def test_lists_document_the_404_of_a_page_past_the_last_and_deletes_their_409():
    """A schema fuzz run got 404 for `?page=293` of a list and 409 for deleting an institution with people: both
    answers as docs/api.md describes them, neither documented, so a client generated from the schema had no type
    for them."""
    raw = schema.raw_schema
    lists = [(path, operation) for path, operations in raw["paths"].items() for method, operation in operations.items()
             if method == "get" and any(p["name"] == "page" for p in operation.get("parameters", []))]  # fmt: skip
    assert len(lists) > 30
    assert [path for path, operation in lists if "404" not in operation["responses"]] == []
    deletes = [f"DELETE {path}" for path, operations in raw["paths"].items() if "delete" in operations
               and "409" not in operations["delete"]["responses"]]  # fmt: skip
    assert deletes == []
    conflict = raw["paths"]["/api/v1/institutions/{id}/"]["delete"]["responses"]["409"]["content"]
    assert conflict["application/json"]["schema"] == {"$ref": "#/components/schemas/ConflictError"}


@pytest.fixture
def kept_connection():
    """Requests through the WSGI application must not close the test's connection (and its transaction), as
    Django's test client ensures: see test_schema.auth_headers."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.parametrize(
    ("path", "method", "query", "body"),
    [
        ("/api/v1/users/", "GET", {"ordering": "password"}, None),
        ("/api/v1/tickets/", "GET", {"person": "1.5", "status": "nope"}, None),
        ("/api/v1/institutions/", "POST", None, {"name": "", "kind": "castle"}),
        ("/api/v1/institutions/", "POST", None, {"credit_code": 5, "tags": "x"}),
    ],
)
def test_the_400s_the_api_answers_match_the_documented_shape(users, kept_connection, path, method, query, body):
    sent = {"query": query} if body is None else {"body": body, "media_type": "application/json"}
    case = schema[path][method].Case(
        headers={"Authorization": f"Token {token_for(users['admin'])}", "Accept-Language": "en"}, **sent
    )
    response = case.call()
    assert response.status_code == 400, response.text[:300]
    case.validate_response(response, checks=[response_schema_conformance])


def _refs(node) -> set[str]:
    """The names of the components `node` refers to, and those they refer to in turn."""
    raw, found, todo = schema.raw_schema, set(), [node]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            ref = item.get("$ref", "")
            if ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[-1] not in found:
                found.add(name := ref.rsplit("/", 1)[-1])
                todo.append(raw["components"]["schemas"][name])
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return found


def test_request_bodies_say_that_a_field_the_endpoint_does_not_know_is_refused():
    """The API answers 400 to a field it does not know ({"nmae": ["Unknown field."]}), but the schema's request
    bodies allowed any other property: a client generated from it, or a fuzzer, took such a body for valid. Every
    request body object (nested ones included) now says `additionalProperties: false`; the answers do not, as a
    client must read an answer that gained a field."""
    raw = schema.raw_schema
    components = raw["components"]["schemas"]
    bodies, answers = set(), set()
    for operations in raw["paths"].values():
        for method, operation in operations.items():
            if method in ("get", "post", "put", "patch", "delete"):
                bodies |= _refs(operation.get("requestBody", {}))
                answers |= _refs(operation.get("responses", {}))
    objects = {name for name in bodies if components[name].get("properties")}
    assert len(objects) > 80 and {"InstitutionRequest", "PatchedInstitutionRequest", "TicketRequest"} <= objects
    open_bodies = sorted(name for name in objects if components[name].get("additionalProperties") is not False)
    assert open_bodies == []
    assert objects.isdisjoint(answers)  # a body's object is never an answer's (COMPONENT_SPLIT_REQUEST)
    closed_answers = sorted(name for name in answers if components[name].get("additionalProperties") is False)
    assert closed_answers == []
    assert components["FieldErrors"]["additionalProperties"]  # the 400's shape keeps its per-field messages
