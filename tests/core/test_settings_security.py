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


def test_processes_starting_at_once_on_a_new_installation_share_one_secret_key(tmp_path, monkeypatch):
    """On a new installation each process starting at once (web workers, the worker) wrote var/secret-key when it
    found none: the last one replaced the key another process had already read, so sessions and CSRF tokens made
    by one process were refused by the other. The file was also readable by anyone until it was chmod-ed. A
    process that finds the file made in the meantime uses the key in it, and the file is never readable by others."""
    import secrets
    import stat

    from pharmacrm import settings as project_settings

    monkeypatch.setattr(project_settings, "VAR_DIR", tmp_path)
    path, token_urlsafe = tmp_path / "secret-key", secrets.token_urlsafe

    def while_another_process_writes_its_key(nbytes):
        path.write_text("theirs")  # between this process's look for the file and its write
        path.chmod(0o600)
        return token_urlsafe(nbytes)

    monkeypatch.setattr(secrets, "token_urlsafe", while_another_process_writes_its_key)
    assert project_settings._local_secret("secret-key") == "theirs"
    assert path.read_text() == "theirs" and [p.name for p in tmp_path.iterdir()] == ["secret-key"]

    monkeypatch.setattr(secrets, "token_urlsafe", token_urlsafe)
    mine = project_settings._local_secret("other-secret")
    assert len(mine) >= 48 and stat.S_IMODE((tmp_path / "other-secret").stat().st_mode) == 0o600
    assert project_settings._local_secret("other-secret") == mine  # created once, then read
