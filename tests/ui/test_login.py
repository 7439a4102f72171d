"""Sign-in: password, lockout after repeated failures, the second factor for admin/auditor/pv, sign-out."""

from __future__ import annotations

import base64

import pytest
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from pharmacrm.core.models import AuditEntry
from tests.conftest import PASSWORD


def _code(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():06d}"


def _wrong_code(device: TOTPDevice) -> str:
    return f"{(int(_code(device)) + 1) % 1_000_000:06d}"


def _login(client: Client, username: str, password: str = PASSWORD, next_url: str = ""):
    data = {"username": username, "password": password}
    if next_url:
        data["next"] = next_url
    return client.post("/accounts/login/", data)


def test_the_sign_in_page_asks_for_username_and_password(client):
    page = client.get("/accounts/login/").content.decode()
    assert 'name="username"' in page and 'name="password"' in page
    assert 'autocomplete="current-password"' in page


def test_an_agent_signs_in_and_lands_where_they_were_going(client, users):
    response = _login(client, "agent", next_url="/customers/people/")
    assert response.status_code == 302 and response["Location"] == "/customers/people/"
    assert client.get("/customers/people/").status_code == 200
    assert AuditEntry.objects.filter(action="login", actor=users["agent"]).exists()


def test_an_outside_next_address_is_ignored(client, users):
    response = _login(client, "agent", next_url="https://evil.example.com/")
    assert response["Location"] == "/"


def test_a_wrong_password_shows_a_message_and_is_audited(client, users):
    response = _login(client, "agent", password="wrong-password")
    assert response.status_code == 200
    assert "The username or password is not correct." in response.content.decode()
    assert AuditEntry.objects.filter(action="login_failed", actor_name="agent").count() == 1


def test_five_failures_lock_the_account_even_for_the_right_password(client, users):
    for _ in range(5):
        _login(client, "agent", password="wrong-password")
    response = _login(client, "agent")
    assert response.status_code == 403
    page = response.content.decode()
    assert "This account is locked for 15 minutes." in page
    assert client.get("/customers/people/").status_code == 302  # not signed in
    other = Client()
    assert _login(other, "rep").status_code == 302  # other accounts are not affected


def test_sign_out_needs_a_post(client_for):
    client = client_for("agent")
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("role", ["admin", "auditor", "pv"])
def test_privileged_roles_must_give_a_one_time_code(client, users, role):
    device = TOTPDevice.objects.create(user=users[role], name="default", confirmed=True)
    response = _login(client, role)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/otp/")
    blocked = client.get("/customers/institutions/")
    assert blocked.status_code == 302 and blocked["Location"].startswith("/accounts/otp/")
    response = client.post("/accounts/otp/", {"code": _code(device), "next": "/customers/institutions/"})
    assert response.status_code == 302 and response["Location"] == "/customers/institutions/"
    assert client.get("/customers/institutions/").status_code == 200


def test_roles_without_a_second_factor_go_straight_in(client, users):
    response = _login(client, "kam")
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_a_wrong_code_is_refused_and_counts_as_a_failed_login(client, users):
    device = TOTPDevice.objects.create(user=users["admin"], name="default", confirmed=True)
    _login(client, "admin")
    response = client.post("/accounts/otp/", {"code": _wrong_code(device)})
    assert response.status_code == 200
    assert "This code is not correct or has expired." in response.content.decode()
    assert AuditEntry.objects.filter(action="login_failed", actor_name="admin").count() == 1
    assert client.get("/").status_code == 302


def test_a_second_code_right_after_a_wrong_one_is_slowed_down(client, users):
    device = TOTPDevice.objects.create(user=users["admin"], name="default", confirmed=True)
    _login(client, "admin")
    client.post("/accounts/otp/", {"code": _wrong_code(device)})
    response = client.post("/accounts/otp/", {"code": _code(device)})
    assert "Too many wrong codes in a row." in response.content.decode()
    assert client.get("/").status_code == 302


def test_repeated_wrong_codes_lock_the_account(client, users, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    device = TOTPDevice.objects.create(user=users["pv"], name="default", confirmed=True)
    _login(client, "pv")
    statuses = [client.post("/accounts/otp/", {"code": _wrong_code(device)}).status_code for _ in range(5)]
    assert statuses[-1] == 403
    assert _login(Client(), "pv").status_code == 403


def test_a_user_without_an_authenticator_enrols_with_a_qr_code(client, users, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # no back-off between the wrong and the right code here
    _login(client, "auditor")
    response = client.get("/accounts/otp/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/otp/enrol/")
    page = client.get(response["Location"]).content.decode()
    assert "<svg" in page  # the QR code, drawn inline
    device = TOTPDevice.objects.get(user=users["auditor"], confirmed=False)
    secret = page.split('class="secret"><code>')[1].split("</code>")[0].replace(" ", "")
    assert base64.b32decode(secret) == device.bin_key
    wrong = client.post("/accounts/otp/enrol/", {"code": _wrong_code(device)})
    assert "This code is not correct." in wrong.content.decode()
    response = client.post("/accounts/otp/enrol/", {"code": _code(device), "next": "/accounts/audit/"})
    assert response.status_code == 302 and response["Location"] == "/accounts/audit/"
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/accounts/audit/").status_code == 200
