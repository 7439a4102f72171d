"""Security-relevant settings a deployment relies on."""

import importlib

from django.conf import settings


def test_passwords_are_hashed_with_argon2_outside_tests():
    real = importlib.import_module("pharmacrm.settings")
    assert real.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"


def test_sessions_and_csrf_are_hardened():
    assert settings.SESSION_COOKIE_HTTPONLY
    assert settings.X_FRAME_OPTIONS == "DENY"
    assert settings.LANGUAGE_CODE == "zh-hans"
    assert settings.TIME_ZONE == "Asia/Shanghai" and settings.USE_TZ
