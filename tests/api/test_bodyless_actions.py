"""Actions that take no body (a DELETE, a test ping, a retry, a second-factor reset) refuse a body
that is not empty, naming its fields: they ran and dropped it in silence, so a client that sent
`{"reason": "…"}` with a deactivation believed the reason stored. No body, no Content-Type, `{}`, `[]` and
`null` are still taken. Which actions take no body is what the schema says (`requestBody` absent)."""

from __future__ import annotations

import json
import re

import pytest
from django.utils import translation
from drf_spectacular.generators import EndpointEnumerator, SchemaGenerator
from rest_framework.test import APIClient

from pharmacrm.core.models import AuditEntry, User
from pharmacrm.core.roles import Role
from pharmacrm.core.viewsets import RefuseUnreadBody, takes_body
from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import services as keyaccounts
from pharmacrm.keyaccounts.models import Proposal
from pharmacrm.notify import services as notify
from pharmacrm.notify.models import Delivery

from .conftest import token_for


def _no_body_in(lang: str) -> str:
    with translation.override(lang):
        return translation.gettext("Unknown field. This request takes no body: send it without one, or with {}.")


def _client(user, lang: str = "en") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}", HTTP_ACCEPT_LANGUAGE=lang)
    return client


@pytest.mark.parametrize("lang", ["en", "zh-hans"])
def test_a_reason_sent_with_a_withdrawal_is_refused_by_name_and_nothing_is_withdrawn(users, xiehe, lang):
    """A withdrawal takes the proposal's version (as every step of the workflow), and nothing else."""
    proposal = keyaccounts.propose(users["analyst"], xiehe, reason="年采购额大，区域影响力强", kind="list")
    url = f"/api/v1/keyaccounts/proposals/{proposal.pk}/withdraw/"
    r = _client(users["analyst"], lang).post(url, {"comment": "客户已转向竞品", "version": proposal.version},
                                             format="json")  # fmt: skip
    assert r.status_code == 400, r.content
    assert list(r.json()) == ["comment"]
    proposal.refresh_from_db()
    assert proposal.status != "withdrawn"
    r = _client(users["analyst"], lang).post(url, {"version": proposal.version}, format="json")  # without the reason
    assert r.status_code == 200, r.content
    assert Proposal.objects.get(pk=proposal.pk).status == "withdrawn"


def test_a_deactivation_with_a_reason_is_refused_and_the_user_stays_active(users):
    target = users["rep"]
    admin = _client(users["admin"])
    r = admin.delete(f"/api/v1/users/{target.pk}/", {"reason": "离职", "handover_to": 7}, format="json")
    assert r.status_code == 400 and r.json() == {"reason": [_no_body_in("en")], "handover_to": [_no_body_in("en")]}
    assert User.objects.get(pk=target.pk).is_active
    assert admin.delete(f"/api/v1/users/{target.pk}/").status_code == 204
    assert not User.objects.get(pk=target.pk).is_active


def test_a_deletion_with_a_body_deletes_nothing(users, xiehe):
    person = xiehe.people.get()
    r = _client(users["manager"]).delete(f"/api/v1/people/{person.pk}/", {"reason": "重复"}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["reason"]
    assert xiehe.people.filter(pk=person.pk).exists()
    before = AuditEntry.objects.filter(action="delete").count()
    r = _client(users["manager"]).delete(f"/api/v1/institutions/{xiehe.pk}/", "[1]", content_type="application/json")
    assert r.status_code == 400 and r.json() == {
        "non_field_errors": ["This request takes no body: send it without one, or with {}."]
    }
    assert Institution.objects.filter(pk=xiehe.pk).exists()
    assert AuditEntry.objects.filter(action="delete").count() == before


def test_a_ping_or_a_retry_with_a_body_sends_nothing_and_an_empty_one_still_works(users):
    endpoint = notify.create_endpoint(users["admin"], {"name": "企业微信群", "url": "http://127.0.0.1:9/x"})
    api = _client(users["manager"])
    r = api.post(f"/api/v1/webhooks/{endpoint.pk}/test/", {"event": "ticket.created"}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["event"]
    r = api.post(f"/api/v1/webhooks/{endpoint.pk}/test/", {"event": "x"}, format="multipart")  # a form: the same
    assert r.status_code == 400 and list(r.json()) == ["event"]
    assert not Delivery.objects.exists()
    # no body, {}, [], null and a body without Content-Type are the empty body they always were
    assert api.post(f"/api/v1/webhooks/{endpoint.pk}/test/").status_code == 202
    assert api.post(f"/api/v1/webhooks/{endpoint.pk}/test/", {}, format="json").status_code == 202
    for empty in ("[]", "null"):
        r = api.post(f"/api/v1/webhooks/{endpoint.pk}/test/", empty, content_type="application/json")
        assert r.status_code == 202, (empty, r.content)
    r = api.generic("POST", f"/api/v1/webhooks/{endpoint.pk}/test/", "", content_type="")
    assert r.status_code == 202, r.content
    delivery = Delivery.objects.order_by("pk").first()
    r = api.post(f"/api/v1/deliveries/{delivery.pk}/retry/", {"force": True}, format="json")
    assert r.status_code == 400 and list(r.json()) == ["force"]
    assert api.post(f"/api/v1/deliveries/{delivery.pk}/retry/", {}, format="json").status_code in (200, 400)


def test_a_second_factor_reset_with_a_body_issues_no_code(users):
    from pharmacrm.core.models import SecondFactorEnrolment

    api = _client(users["admin"], "zh-hans")
    r = api.post(f"/api/v1/users/{users['pv'].pk}/second-factor/", {"note": "手机丢失"}, format="json")
    assert r.status_code == 400 and r.json() == {"note": [_no_body_in("zh-hans")]}
    assert not SecondFactorEnrolment.objects.exists()
    assert api.post(f"/api/v1/users/{users['pv'].pk}/second-factor/", {}, format="json").status_code == 201


def test_a_body_is_refused_only_once_the_caller_may_act(users, anon, xiehe):
    """No token: 401; a role that may not: 403 — as without the body, which tells nothing about the action."""
    url = f"/api/v1/institutions/{xiehe.pk}/"
    assert anon.delete(url, {"reason": "x"}, format="json").status_code == 401
    assert _client(users["agent"]).delete(url, {"reason": "x"}, format="json").status_code == 403


# --- every body-less action ------------------------------------------------------------------------------


def _operations():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method in ("post", "put", "patch", "delete"):
                yield path, method.upper(), operation


def _sample_url(path: str) -> str:
    """The path with a value of the right shape for each parameter: the refusal comes before any look-up."""
    def value(match):
        name = match[1]
        return "2026-05-01" if name == "date" else "drug_info" if name == "code" else "1"

    return re.sub(r"\{(\w+)\}", value, path)


OPERATIONS = list(_operations())
BODYLESS = [(path, method) for path, method, operation in OPERATIONS if "requestBody" not in operation]


def test_the_api_knows_which_actions_take_a_body_as_its_schema_says():
    """The refusal asks drf-spectacular whether an operation has a body: for every operation of the schema it
    agrees with the schema (no action that reads a body refuses one, none that takes none lets one through)."""
    generator = SchemaGenerator()
    documented = {(path, method): "requestBody" in operation for path, method, operation in OPERATIONS}
    assert len(documented) > 100 and len(BODYLESS) >= 19
    wrong, seen = [], set()
    for path, _regex, method, callback in EndpointEnumerator().get_api_endpoints():
        path = path.replace("{pk}", "{id}")  # as the schema names it (SCHEMA_COERCE_PATH_PK)
        if (path, method) not in documented:
            continue
        seen.add((path, method))
        view = generator.create_view(callback, method)  # as for the schema, then as a request finds it
        if takes_body(view, method) != documented[(path, method)]:
            wrong.append(f"{method} {path}")
    assert wrong == [] and seen == set(documented)


def test_every_view_of_the_api_refuses_a_body_its_action_does_not_take():
    from django.urls import get_resolver

    def views(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from views(pattern.url_patterns)
            elif getattr(pattern.callback, "cls", None) is not None:
                yield pattern.callback.cls

    api = {cls for cls in views(get_resolver().url_patterns) if cls.__module__.startswith("pharmacrm.")}
    assert len(api) > 50
    assert sorted(f"{c.__module__}.{c.__qualname__}" for c in api if not issubclass(c, RefuseUnreadBody)) == []


@pytest.mark.parametrize(("path", "method"), BODYLESS, ids=[f"{m} {p}" for p, m in BODYLESS])
def test_every_bodyless_action_refuses_a_body(users, path, method):
    """Each operation the schema gives no body, called by the first role allowed to, with a misspelt field."""
    url = _sample_url(path)
    for role in [Role.ADMIN, Role.MANAGER, *Role]:
        r = _client(users[role.value]).generic(method, url, json.dumps({"commnet": "已处理"}),
                                               content_type="application/json")  # fmt: skip
        if r.status_code != 403:
            break
    assert r.status_code == 400, (role, r.status_code, r.content[:300])
    assert r.json() == {"commnet": [_no_body_in("en")]}
