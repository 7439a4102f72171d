"""Getting and using API tokens: passwords, second factor, lockout, throttling, expiry, audit."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from pharmacrm.core.models import ApiToken, AuditEntry
from pharmacrm.core.roles import SECOND_FACTOR_ROLES
from tests.conftest import PASSWORD

from .conftest import current_code, make_device, token_for

TOKEN_URL = "/api/v1/auth/token/"
A = AuditEntry.Action


def test_an_agent_trades_username_and_password_for_a_working_token(users, anon):
    response = anon.post(TOKEN_URL, {"username": "agent", "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"token", "expires_at", "second_factor"} and body["second_factor"] is False
    stored = ApiToken.objects.get(user=users["agent"])
    assert stored.key_hash == ApiToken.hash_key(body["token"]) and body["token"] not in stored.key_hash

    client = APIClient(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert client.get("/api/v1/institutions/").status_code == 200
    stored.refresh_from_db()
    assert stored.last_used_at is not None
    login = AuditEntry.objects.filter(action=A.LOGIN, actor=users["agent"]).get()
    assert login.extra["via"] == "api"


def test_last_used_is_written_at_most_once_a_minute(users):
    key = token_for(users["agent"])
    client = APIClient(HTTP_AUTHORIZATION=f"Token {key}")
    client.get("/api/v1/roles/")
    first = ApiToken.objects.get(user=users["agent"]).last_used_at
    client.get("/api/v1/roles/")
    assert ApiToken.objects.get(user=users["agent"]).last_used_at == first


def test_a_wrong_password_is_refused_with_a_localised_message_and_audited(users, anon):
    response = anon.post(TOKEN_URL, {"username": "agent", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["The username or password is incorrect."]}
    failed = AuditEntry.objects.filter(action=A.LOGIN_FAILED).get()
    assert failed.actor_name == "agent"

    missing = anon.post(TOKEN_URL, {"username": "agent"}, format="json", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert missing.status_code == 400
    assert missing.json() == {"password": ["该字段是必填项。"]}


def test_repeated_failures_lock_the_account_out_even_for_the_right_password(users, anon):
    for _attempt in range(5):
        anon.post(TOKEN_URL, {"username": "kam", "password": "wrong-guess"}, format="json")
    response = anon.post(TOKEN_URL, {"username": "kam", "password": PASSWORD}, format="json")
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.json()["detail"]
    assert int(response["Retry-After"]) > 0
    assert not ApiToken.objects.filter(user=users["kam"]).exists()


def test_a_lockout_of_one_minute_says_minute(users, anon, settings):
    settings.AXES_COOLOFF_TIME = 1 / 60  # LOGIN_COOLOFF_MINUTES=1
    for _attempt in range(5):
        anon.post(TOKEN_URL, {"username": "kam", "password": "wrong-guess"}, format="json")
    response = anon.post(
        TOKEN_URL, {"username": "kam", "password": PASSWORD}, format="json", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 429
    assert response.json()["detail"] == "Too many failed sign-in attempts. Try again in 1 minute."


@pytest.mark.parametrize("role", sorted(r.value for r in SECOND_FACTOR_ROLES))
def test_second_factor_roles_need_a_valid_one_time_code(role, users, anon):
    user = users[role]
    device = make_device(user)
    creds = {"username": role, "password": PASSWORD}

    without = anon.post(TOKEN_URL, creds, format="json")
    assert without.status_code == 400 and "otp" in without.json()

    wrong_code = "000000" if current_code(device) != "000000" else "111111"
    wrong = anon.post(TOKEN_URL, {**creds, "otp": wrong_code}, format="json")
    assert wrong.status_code == 400
    assert wrong.json() == {"otp": ["The one-time code is wrong or has expired."]}
    # the missing code only asked for one; the wrong code is a failed sign-in
    assert AuditEntry.objects.filter(action=A.LOGIN_FAILED, actor_name=role).count() == 1

    # django-otp makes the next attempt wait after a failure; say so rather than "wrong code"
    throttled = anon.post(TOKEN_URL, {**creds, "otp": current_code(device)}, format="json")
    assert throttled.status_code == 400 and "wait" in throttled.json()["otp"][0]
    device.throttle_reset()

    good = anon.post(TOKEN_URL, {**creds, "otp": current_code(device)}, format="json")
    assert good.status_code == 200, good.content
    assert good.json()["second_factor"] is True
    client = APIClient(HTTP_AUTHORIZATION=f"Token {good.json()['token']}")
    assert client.get("/api/v1/roles/").status_code == 200


def test_a_second_factor_role_without_an_enrolled_device_is_told_to_enrol(users, anon):
    response = anon.post(TOKEN_URL, {"username": "pv", "password": PASSWORD}, format="json")
    assert response.status_code == 400
    assert "set one up" in response.json()["otp"][0]
    assert not ApiToken.objects.filter(user=users["pv"]).exists()


def test_wrong_codes_count_towards_the_lockout(users, anon):
    device = make_device(users["auditor"])
    wrong = "000000" if current_code(device) != "000000" else "111111"
    for _attempt in range(5):
        device.throttle_reset()
        anon.post(TOKEN_URL, {"username": "auditor", "password": PASSWORD, "otp": wrong}, format="json")
    device.throttle_reset()
    good = {"username": "auditor", "password": PASSWORD, "otp": current_code(device)}
    assert anon.post(TOKEN_URL, good, format="json").status_code == 429


def test_a_malformed_code_is_a_field_error(users, anon):
    response = anon.post(TOKEN_URL, {"username": "admin", "password": PASSWORD, "otp": "12ab"}, format="json")
    assert response.status_code == 400 and "otp" in response.json()


FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@pytest.mark.parametrize("spelt", [
    lambda code: f"{code[:3]} {code[3:]}", lambda code: code.translate(FULL_WIDTH), lambda code: f" {code[:3]}\u3000{code[3:]}",
])  # fmt: skip
def test_a_code_with_a_space_or_in_full_width_digits_is_accepted(users, anon, spelt):
    """A code pasted as shown by the app ("123 456") or typed with a Chinese input method (１２３４５６) was refused
    as malformed."""
    device = make_device(users["admin"])
    creds = {"username": "admin", "password": PASSWORD, "otp": spelt(current_code(device))}
    response = anon.post(TOKEN_URL, creds, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["second_factor"] is True


@pytest.mark.parametrize("otp", ["123-456", "١٢٣٤٥٦", "12345", "1234567"])
def test_other_spellings_of_a_code_are_still_malformed(users, anon, otp):
    make_device(users["admin"])
    response = anon.post(TOKEN_URL, {"username": "admin", "password": PASSWORD, "otp": otp}, format="json")
    assert response.status_code == 400
    assert response.json()["otp"] == ["Enter the six-digit code from your authenticator app."]
    assert not AuditEntry.objects.filter(action=A.LOGIN_FAILED, actor_name="admin").exists()


def test_a_token_issued_without_second_factor_does_not_work_for_an_admin(users):
    key = token_for(users["admin"], second_factor=False)
    response = APIClient(HTTP_AUTHORIZATION=f"Token {key}", HTTP_ACCEPT_LANGUAGE="en").get("/api/v1/roles/")
    assert response.status_code == 401
    assert "second factor" in response.json()["detail"]


def test_expired_unknown_and_deactivated_tokens_are_refused(users):
    expired = token_for(users["agent"], hours=-1)
    assert APIClient(HTTP_AUTHORIZATION=f"Token {expired}").get("/api/v1/roles/").status_code == 401
    assert APIClient(HTTP_AUTHORIZATION="Token not-a-token").get("/api/v1/roles/").status_code == 401
    key = token_for(users["kam"])
    users["kam"].is_active = False
    users["kam"].save()
    assert APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/roles/").status_code == 401


def test_without_credentials_the_api_answers_401_and_names_the_scheme(anon):
    response = anon.get("/api/v1/institutions/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_token_requests_are_throttled(anon, users):
    statuses = [anon.post(TOKEN_URL, {}, format="json").status_code for _ in range(21)]
    assert statuses[:20] == [400] * 20 and statuses[20] == 429


def test_the_throttle_counts_in_the_database_for_every_web_process(anon, users):
    """A per-process memory cache let each gunicorn worker count its own 20 a minute (4 workers: 80)."""
    from django.db import connection

    anon.post(TOKEN_URL, {}, format="json")
    with connection.cursor() as cursor:
        cursor.execute("SELECT cache_key FROM pharmacrm_cache")
        keys = [row[0] for row in cursor.fetchall()]
    assert any("throttle_token" in key for key in keys)


def test_writes_through_a_token_are_audited_with_the_user_and_request_id(users, beijing):
    client = APIClient(HTTP_AUTHORIZATION=f"Token {token_for(users['kam'])}")
    response = client.post(
        "/api/v1/institutions/",
        {"name": "朝阳社区卫生服务中心", "kind": "community", "region": "110105"},
        format="json",
    )
    assert response.status_code == 201, response.content
    entry = AuditEntry.objects.get(
        action=A.CREATE, object_type="customers.institution", object_id=str(response.json()["id"])
    )
    assert entry.actor == users["kam"]
    assert entry.request_id == response["X-Request-ID"]


def test_a_browser_session_needs_a_verified_second_factor_for_the_api(users, client_for):
    from django.test import Client

    unverified = Client()
    unverified.force_login(users["admin"])
    assert unverified.get("/api/v1/roles/").status_code in (401, 403)
    assert client_for("admin").get("/api/v1/roles/").status_code == 200
    assert client_for("agent").get("/api/v1/roles/").status_code == 200


def test_tokens_expire_after_the_configured_lifetime(users, anon, settings):
    settings.API_TOKEN_LIFETIME_HOURS = 2
    response = anon.post(TOKEN_URL, {"username": "rep", "password": PASSWORD}, format="json")
    expires = datetime.datetime.fromisoformat(response.json()["expires_at"])
    assert abs((expires - timezone.now()) - datetime.timedelta(hours=2)) < datetime.timedelta(minutes=1)
