"""API test fixtures: token clients per role, TOTP devices and codes, a clean throttle cache."""

from __future__ import annotations

import datetime

import pytest
from django.core.cache import cache
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from pharmacrm.core.models import ApiToken
from pharmacrm.core.roles import SECOND_FACTOR_ROLES, Role


@pytest.fixture(autouse=True)
def _fast_and_fresh(settings, tmp_path, db):
    """Throttle counters live in the cache (a database table, as in production), which a browser test's
    committed requests may leave behind; Argon2 would make the
    role-matrix fixtures (eleven users each) take minutes, and hashing is not under test here.
    Uploads go to a per-test directory, and queued work (imports) runs at once, as the worker would."""
    from huey.contrib.djhuey import HUEY

    cache.clear()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.VAR_DIR = tmp_path
    immediate, HUEY.immediate = HUEY.immediate, True
    yield
    HUEY.immediate = immediate


def token_for(user, second_factor: bool | None = None, hours: float = 1) -> str:
    if second_factor is None:
        second_factor = bool(user.roles & SECOND_FACTOR_ROLES)
    _token, key = ApiToken.issue(user, datetime.timedelta(hours=hours), second_factor=second_factor)
    return key


@pytest.fixture
def api_for(users):
    """api_for("agent") → an APIClient sending that role's token (issued with a second factor
    where the role needs one); api_for("agent", lang="en") also sends Accept-Language."""

    def make(role: str, lang: str = "en") -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users[role])}", HTTP_ACCEPT_LANGUAGE=lang)
        return client

    return make


@pytest.fixture
def anon():
    return APIClient(HTTP_ACCEPT_LANGUAGE="en")


def make_device(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def current_code(device: TOTPDevice) -> str:
    device.refresh_from_db()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):0{device.digits}d}"


@pytest.fixture
def zhang(xiehe):
    """张伟, the doctor at 北京协和医院 (mobile 13800138000)."""
    return xiehe.people.get(name="张伟")


ROLES = [r.value for r in Role]
