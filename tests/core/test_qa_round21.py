"""Review round 21 (core): sign-in lockout, users administration, audit trail and operations."""

from __future__ import annotations

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.ui.test_login import _code, _login, _wrong_code


@pytest.fixture(autouse=True)
def english(settings):
    settings.LANGUAGE_CODE = "en"


# --- lockout: the password step does not clear the wrong one-time codes -------------------------------


def test_signing_in_again_with_the_password_does_not_clear_the_wrong_codes(users, settings):
    """Someone who has the password of a pharmacovigilance officer guesses one-time codes: signing in again
    with the password between guesses used to clear the count, so the account was never locked."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    device = TOTPDevice.objects.create(user=users["pv"], name="default", confirmed=True)
    statuses = []
    for _round in range(2):
        client = Client()
        assert _login(client, "pv").status_code == 302
        statuses += [client.post("/accounts/otp/", {"code": _wrong_code(device)}).status_code for _ in range(3)]
    # the fifth wrong code locks the account and ends the session: the sixth is sent to the sign-in page
    assert statuses == [200, 200, 200, 200, 403, 302]
    assert _login(Client(), "pv").status_code == 403  # the right password too, until the cool-off ends


def test_a_complete_sign_in_still_clears_earlier_failures(users, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    device = TOTPDevice.objects.create(user=users["pv"], name="default", confirmed=True)
    for _ in range(4):
        _login(Client(), "pv", password="wrong-password")
    client = Client()
    _login(client, "pv")
    assert client.post("/accounts/otp/", {"code": _code(device)}).status_code == 302  # signed in: count cleared
    for _ in range(4):
        _login(Client(), "pv", password="wrong-password")
    assert _login(Client(), "pv").status_code == 302
    for _ in range(4):
        _login(Client(), "agent", password="wrong-password")
    assert _login(Client(), "agent").status_code == 302  # no second factor: the password completes it
    for _ in range(4):
        _login(Client(), "agent", password="wrong-password")
    assert _login(Client(), "agent").status_code == 302
