"""Shared fixtures: one user per role, logged-in clients, a few customers; built per test on the
test database (SQLite or PostgreSQL, chosen by DATABASE_URL)."""

from __future__ import annotations

import contextlib
import datetime
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from pharmacrm.core.models import Region, Team, User
from pharmacrm.core.roles import Role
from pharmacrm.customers import normalise, services
from pharmacrm.customers.choices import InstitutionType

PASSWORD = "Test-password-2026!"


@pytest.fixture(autouse=True)
def _default_language():
    """Each test starts in the product's default language: a request made by an earlier test in the same
    worker leaves its Accept-Language activated in the thread (LocaleMiddleware does not reset it)."""
    from django.conf import settings as django_settings
    from django.utils import translation

    translation.activate(django_settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


def file_settings(files: Path) -> dict:
    """Settings that put uploaded and generated files under `files`."""
    from django.conf import settings as django_settings

    return {
        "STORAGES": {**django_settings.STORAGES, "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(files)}}},
        "MEDIA_ROOT": files,
    }  # fmt: skip


@pytest.fixture(autouse=True)
def _tmp_file_storage(settings, tmp_path):
    """Uploaded files (ticket attachments) go to the test's own directory, never to var/files."""
    for name, value in file_settings(tmp_path / "files").items():
        setattr(settings, name, value)


FAST_HASHING = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@contextlib.contextmanager
def data_for_the_module(django_db_blocker, files: Path, **overrides):
    """Open a transaction for a whole module's tests, in which a module-scoped fixture builds data once;
    roll it back after the module. Each test runs in a savepoint inside it (pytest-django's `db`), so what one
    test changes is gone for the next, as when each test built its own. The data is built the way per-test
    fixtures would build it: in the default language, with fast password hashing, queued work run at once
    and files under `files` (a module that keeps such files overrides `_tmp_file_storage` with
    `file_settings(files)`, so that its tests find them)."""
    from django.conf import settings as django_settings
    from django.db import transaction
    from django.test import override_settings
    from django.utils import translation
    from huey.contrib.djhuey import HUEY

    immediate, HUEY.immediate = HUEY.immediate, True
    try:
        with (
            override_settings(PASSWORD_HASHERS=FAST_HASHING, **file_settings(files), **overrides),
            translation.override(django_settings.LANGUAGE_CODE),
            django_db_blocker.unblock(),
            transaction.atomic(),
        ):
            yield
            transaction.set_rollback(True)
    finally:
        HUEY.immediate = immediate


@pytest.fixture(autouse=True)
def _fresh_escalation_ladder():
    """The worker caches the escalation ladder for a minute; a test starts from what its database holds."""
    from pharmacrm.servicedesk import escalation, settings_cache

    escalation._forget()
    settings_cache.forget()  # policies and rules cached by an earlier test's database
    yield
    escalation._forget()
    settings_cache.forget()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Argon2 is deliberately slow; tests create many users, so they hash with a fast hasher.
    (tests/core/test_settings_security.py checks that production settings use Argon2.)"""
    settings.PASSWORD_HASHERS = FAST_HASHING


def new_user(username: str, *roles: Role, teams=(), territory=()) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD, display_name=username)
    for role in roles:
        user.groups.add(Group.objects.get(name=role.value))
    for team in teams:
        user.teams.add(team)
    for region in territory:
        user.territory.add(region)
    return User.objects.get(pk=user.pk)  # fresh: no cached roles


def new_team_north() -> Team:
    team = Team.objects.create(name="华北团队")
    team.territory.add(Region.objects.get(code="110000"))  # 北京市
    return team


def role_users(team_north: Team) -> dict[str, User]:
    """One user per role, named after the role; the rep works in the North team (Beijing)."""
    out = {}
    for role in Role:
        teams = (team_north,) if role == Role.REP else ()
        out[role.value] = new_user(role.value, role, teams=teams)
    return out


@pytest.fixture
def make_user(db):
    return new_user


@pytest.fixture
def team_north(db):
    return new_team_north()


@pytest.fixture
def users(make_user, team_north) -> dict[str, User]:
    """One user per role, named after the role; the rep works in the North team (Beijing)."""
    return role_users(team_north)


@pytest.fixture
def admin_user(users):
    return users["admin"]


def otp_verify(client, user) -> None:
    """Give a logged-in test client a verified second factor (for admin/auditor/pv)."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device, _ = TOTPDevice.objects.get_or_create(user=user, name="default", defaults={"confirmed": True})
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


@pytest.fixture
def client_for(client, users):
    """client_for("agent") → a Django test client logged in as that role (OTP satisfied if needed)."""

    def login(role: str):
        from django.test import Client

        c = Client()
        user = users[role]
        c.force_login(user)
        otp_verify(c, user)
        return c

    return login


@pytest.fixture
def beijing():
    return Region.objects.get(code="110105")  # 北京市朝阳区


@pytest.fixture
def shanghai():
    return Region.objects.get(code="310104")  # 上海市徐汇区


@pytest.fixture
def xiehe(admin_user, beijing):
    """北京协和医院 with one department and one doctor."""
    return new_xiehe(admin_user, beijing)


def new_xiehe(admin_user: User, beijing: Region):
    hospital = services.create_institution(
        admin_user,
        {
            "name": "北京协和医院",
            "kind": InstitutionType.HOSPITAL,
            "grade": "3A",
            "region": beijing,
            "credit_code": normalise.make_credit_code("12100000400000000"),
            "phone": "010-69156114",
            "beds": 2000,
            "specialties": ["内科", "心内科"],
        },
    )
    dept = services.create_institution(
        admin_user, {"name": "心内科", "kind": InstitutionType.DEPARTMENT, "parent": hospital, "region": beijing}
    )
    services.create_person(
        admin_user,
        {
            "name": "张伟",
            "institution": hospital,
            "department": dept,
            "title": "主任医师",
            "mobile": "13800138000",
            "email": "zhangwei@example.com",
            "birthday": datetime.date(1975, 3, 15),
        },
    )
    return hospital


@pytest.fixture
def ruijin(admin_user, shanghai):
    """上海瑞金医院: outside the North team's territory."""
    return new_ruijin(admin_user, shanghai)


def new_ruijin(admin_user: User, shanghai: Region):
    return services.create_institution(
        admin_user, {"name": "上海交通大学医学院附属瑞金医院", "short_name": "瑞金医院", "kind": "hospital", "region": shanghai}
    )


# --- Database selection and CI rules (make test runs the suite once on SQLite, once on PostgreSQL).
# The database comes from settings: SQLite in memory by default, PostgreSQL when DATABASE_URL is set;
# pytest-django gives each xdist worker its own test database (test_pharmacrm_gw0, ...).
# A test that only makes sense on one backend is marked @pytest.mark.postgresql or @pytest.mark.sqlite
# and is deselected (not skipped) on the other, so that CI=true does not count it as a skip.

import os  # noqa: E402


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _vendor() -> str:
    from django.db import connection

    return connection.vendor


def pytest_configure(config):
    config.addinivalue_line("markers", "postgresql: runs only when the tests run on PostgreSQL")
    config.addinivalue_line("markers", "sqlite: runs only when the tests run on SQLite")


def pytest_report_header(config):
    from django.conf import settings

    db = settings.DATABASES["default"]
    where = db.get("TEST", {}).get("NAME") or "in memory"
    if _vendor() == "postgresql":
        where = f"{db.get('HOST') or 'local'}:{db.get('PORT') or '-'}"
    return f"database: {_vendor()} ({where}); CI={'true' if _on_ci() else 'false'} (skips fail under CI)"


def pytest_collection_modifyitems(config, items):
    other = "sqlite" if _vendor() == "postgresql" else "postgresql"
    keep = [item for item in items if item.get_closest_marker(other) is None]
    dropped = [item for item in items if item.get_closest_marker(other) is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped test (e.g. Chromium or PostgreSQL missing) is reported as a failure."""
    report = yield
    if _on_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"Skipped under CI=true, which counts as a failure: {reason}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """The same rule for a whole module skipped at import (pytest.importorskip, allow_module_level)."""
    report = yield
    if _on_ci() and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"Skipped under CI=true, which counts as a failure: {reason}"
    return report


# --- Transactional tests (live_server, browser tests) empty the database with Django's flush after each
# test; the append-only triggers on the audit table would refuse that. Around the flush only, the
# triggers are set aside and put back, so every test still runs with them in force. The reference data
# that the migrations load (regions, role groups, the audit chain's head, service-desk defaults) is put back
# too, as the next test expects it.


def _user_triggers_off(connection) -> list[str]:
    """Disable (PostgreSQL) or drop (SQLite) the user triggers; return what puts them back."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE NOT t.tgisinternal AND n.nspname = current_schema()"
            )
            tables = [row[0] for row in cursor.fetchall()]
            for table in tables:
                cursor.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER USER')
            return [f'ALTER TABLE "{table}" ENABLE TRIGGER USER' for table in tables]
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
            triggers = cursor.fetchall()
            for name, _sql in triggers:
                cursor.execute(f'DROP TRIGGER "{name}"')
            return [sql for _name, sql in triggers]
    return []


def _reload_reference_data() -> None:
    from pharmacrm.core.models import AuditChainHead
    from pharmacrm.core.setup import ensure_audit_head, ensure_roles, load_regions
    from pharmacrm.servicedesk.models import BusinessCalendar, EscalationRule, SlaPolicy, TicketCategory
    from pharmacrm.servicedesk.setup import ensure_escalation_rules, ensure_service_defaults

    load_regions(Region)
    ensure_roles(Group)
    ensure_audit_head(AuditChainHead)
    ensure_service_defaults(BusinessCalendar, TicketCategory, SlaPolicy)
    ensure_escalation_rules(EscalationRule)
    from pharmacrm.safety.models import ReportingRule
    from pharmacrm.safety.setup import install_rules

    install_rules(ReportingRule)  # a transactional test's flush removes the seeded reporting rules too


def _flush_past_triggers() -> None:
    from django.db import connections
    from django.test import testcases

    original = testcases.TransactionTestCase._fixture_teardown
    if getattr(original, "flushes_past_triggers", False):
        return

    def _fixture_teardown(self):
        restore = {alias: _user_triggers_off(connections[alias]) for alias in self._databases_names()}
        try:
            original(self)
        finally:
            for alias, statements in restore.items():
                with connections[alias].cursor() as cursor:
                    for sql in statements:
                        cursor.execute(sql)
        _reload_reference_data()

    _fixture_teardown.flushes_past_triggers = True
    testcases.TransactionTestCase._fixture_teardown = _fixture_teardown


_flush_past_triggers()


@pytest.fixture
def huey_immediate():
    """Tasks run at once, in the test's thread, instead of going to the worker's queue."""
    from huey.contrib.djhuey import HUEY

    before = HUEY.immediate
    HUEY.immediate = True
    yield HUEY
    HUEY.immediate = before


worker_inline = huey_immediate  # the service-desk tests' name for it
