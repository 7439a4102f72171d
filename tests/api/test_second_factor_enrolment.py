"""POST /api/v1/users/{id}/second-factor/: administrators reset a user's second factor and get a
one-time enrolment code; nobody else may, and the code itself is stored nowhere."""

from __future__ import annotations

import datetime
import json
import re

import pytest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from pharmacrm.core.models import ApiToken, AuditEntry, SecondFactorEnrolment
from pharmacrm.core.services import check_enrolment_code
from tests.conftest import PASSWORD

from .conftest import ROLES, make_device, token_for

CODE = re.compile(r"^[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}$")


def url(user) -> str:
    return f"/api/v1/users/{user.pk}/second-factor/"


def test_an_admin_resets_the_second_factor_and_gets_a_code(api_for, users):
    pv = users["pv"]
    device = make_device(pv)
    old_token = token_for(pv)
    before = timezone.now()
    response = api_for("admin").post(url(pv))
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"code", "expires_at"} and CODE.match(body["code"])
    expires = datetime.datetime.fromisoformat(body["expires_at"])
    assert before + datetime.timedelta(hours=72) <= expires <= timezone.now() + datetime.timedelta(hours=72)

    enrolment = SecondFactorEnrolment.objects.get(user=pv)
    assert enrolment.issued_by == users["admin"] and enrolment.used_at is None
    assert enrolment.code_hash == SecondFactorEnrolment.hash_code(body["code"])
    assert check_enrolment_code(pv, body["code"])[0] == enrolment
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    assert not ApiToken.objects.filter(user=pv).exists()  # tokens issued with the old second factor
    revoked = APIClient(HTTP_AUTHORIZATION=f"Token {old_token}").get("/api/v1/roles/")
    assert revoked.status_code == 401

    entry = AuditEntry.objects.filter(action="update", object_id=str(pv.pk)).get()
    assert entry.actor == users["admin"]
    assert entry.changes == {"second_factor": ["totp", "enrolment_code"]}
    assert entry.extra["devices_removed"] == 1 and entry.extra["enrolment"] == enrolment.pk
    stored = json.dumps(list(AuditEntry.objects.values("changes", "extra")), default=str).upper()
    raw = body["code"].replace("-", "")
    assert body["code"] not in stored and raw not in stored


def test_the_token_endpoint_tells_an_unenrolled_user_to_ask_for_an_enrolment_code(api_for, users, anon):
    api_for("admin").post(url(users["auditor"]))
    response = anon.post("/api/v1/auth/token/", {"username": "auditor", "password": PASSWORD}, format="json")
    assert response.status_code == 400
    message = response.json()["otp"][0]
    assert "ask an administrator for an enrolment code" in message and "sign in on the web" in message
    chinese = APIClient(HTTP_ACCEPT_LANGUAGE="zh-hans").post(
        "/api/v1/auth/token/", {"username": "auditor", "password": PASSWORD}, format="json"
    )
    assert "绑定码" in chinese.json()["otp"][0]


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
def test_no_other_role_may_issue_a_code(role, api_for, users):
    target = users["pv"]
    device = make_device(target)
    response = api_for(role).post(url(target))
    assert response.status_code == 403, response.content
    assert "code" not in response.json()
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert not SecondFactorEnrolment.objects.exists()
    denied = AuditEntry.objects.filter(action="access_denied", actor=users[role]).get()
    assert denied.object_repr == url(target)


def test_without_credentials_the_answer_is_401(anon, users):
    response = anon.post(url(users["pv"]))
    assert response.status_code == 401
    assert not SecondFactorEnrolment.objects.exists()


def test_an_unknown_user_is_404_and_get_is_not_allowed(api_for, users):
    client = api_for("admin")
    assert client.post("/api/v1/users/999999/second-factor/").status_code == 404
    assert client.get(url(users["pv"])).status_code == 405
    assert not SecondFactorEnrolment.objects.exists()


def test_a_second_code_voids_the_first(api_for, users):
    client = api_for("admin")
    first = client.post(url(users["kam"])).json()["code"]
    second = client.post(url(users["kam"])).json()["code"]
    assert first != second
    assert check_enrolment_code(users["kam"], first) == (None, "used")
    assert check_enrolment_code(users["kam"], second)[0] is not None
    assert SecondFactorEnrolment.objects.filter(user=users["kam"], used_at__isnull=True).count() == 1
