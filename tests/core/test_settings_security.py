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


def test_the_deploy_check_is_clean_in_production_mode(tmp_path):
    """`manage.py check --deploy` reports nothing, warnings included, with production settings."""
    import os
    import secrets
    import subprocess
    import sys
    from pathlib import Path

    env = {
        **os.environ,
        "PHARMACRM_PRODUCTION": "true",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "crm.example.com",
        "PHARMACRM_VAR_DIR": str(tmp_path),
    }
    env.pop("DEBUG", None)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=root, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout
