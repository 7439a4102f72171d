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
def demo_loaded(django_db_blocker, var_dir):
    """The demo at scale 0.05 loaded into the test database for a module (English messages, a generated password);
    yields what `demo` printed, and rolls it all back afterwards."""
    import io

    from django.core.management import call_command
    from django.db import transaction
    from django.test import override_settings
    from django.utils import translation

    out = io.StringIO()
    with (
        pytest.MonkeyPatch.context() as mp,
        override_settings(DATABASE_URL=None, VAR_DIR=var_dir, PASSWORD_HASHERS=FAST_HASHING),
        django_db_blocker.unblock(),
        transaction.atomic(),
    ):
        mp.delenv("PHARMACRM_DEMO_PASSWORD", raising=False)
        with translation.override("en"):
            call_command("demo", "--scale", "0.05", stdout=out)
        yield out.getvalue()
        transaction.set_rollback(True)


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
    """One user per role, named after the role; the rep works in the North team (Beijing). Most tests start with
    these eleven, so they go in with four statements rather than four per user (new_user's way: about 20 ms a
    test on SQLite, more on PostgreSQL). The same rows as new_user makes: User.save and create_user add nothing
    for a new active account, and no signal listens to users or their groups."""
    from django.contrib.auth.hashers import make_password

    groups = dict(Group.objects.filter(name__in=[role.value for role in Role]).values_list("name", "pk"))
    made = User.objects.bulk_create(
        [User(username=role.value, display_name=role.value, password=make_password(PASSWORD)) for role in Role]
    )
    User.groups.through.objects.bulk_create(
        [User.groups.through(user_id=user.pk, group_id=groups[user.username]) for user in made]
    )
    rep = next(user for user in made if user.username == Role.REP.value)
    User.teams.through.objects.create(user_id=rep.pk, team_id=team_north.pk)
    fresh = {user.username: user for user in User.objects.filter(pk__in=[user.pk for user in made])}  # no cached roles
    return {role.value: fresh[role.value] for role in Role}


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


# --- One migration per database and run, not one per worker. Running the migrations takes a worker about 35 s of
# CPU (Django renders the models' state after each of some 150 migrations), most of it spent again by every worker
# on the same result. scripts/test-suites.sh migrates a template once per database and names it in
# PHARMACRM_TEST_TEMPLATE: a SQLite file, copied into each worker's in-memory database, or a PostgreSQL database,
# which CREATE DATABASE ... TEMPLATE copies. Without it (pytest run by hand) each worker migrates as before; with a
# template that lacks a migration on disk, the worker migrates the rest itself.

TEST_TEMPLATE = os.environ.get("PHARMACRM_TEST_TEMPLATE", "").strip()


def _migrate_from_template(real_call_command):
    def call_command(name, *args, **options):
        if name != "migrate":
            return real_call_command(name, *args, **options)
        from django.db import connections
        from django.db.migrations.executor import MigrationExecutor

        connection = connections[options.get("database", "default")]
        if connection.vendor == "sqlite":
            import sqlite3

            connection.ensure_connection()
            template = sqlite3.connect(TEST_TEMPLATE)
            try:
                template.backup(connection.connection)
            finally:
                template.close()
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):  # the template is behind the code
            return real_call_command(name, *args, **options)
        return None

    call_command.__wrapped_real__ = real_call_command
    return call_command


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """With a template: PostgreSQL creates each worker's database from it, and `migrate` during the test
    databases' set-up copies it (SQLite) or finds nothing to do."""
    if not TEST_TEMPLATE:
        return
    from django.core import management
    from django.db import connections

    if _vendor() == "postgresql":
        connections["default"].settings_dict.setdefault("TEST", {})["TEMPLATE"] = TEST_TEMPLATE
    management.call_command = _migrate_from_template(management.call_command)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's set-up; afterwards `migrate` is the real command again (tests run old migrations)."""
    from django.core import management

    real = getattr(management.call_command, "__wrapped_real__", None)
    if real is not None:
        management.call_command = real
    yield


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


# --- Transactional tests (live_server, browser tests) commit what they do, so after each one the database is put
# back as the migrations left it: the tables a test filled are emptied, and the tables the migrations filled
# (regions, role groups and permissions, content types, the audit chain's head, the service-desk defaults, the
# reporting rules) get back exactly their migrated rows, copied once per session and worker. Django's own flush
# took about a second per test on PostgreSQL (a TRUNCATE of every table, then content types, permissions and the
# reference data written again row by row). The append-only triggers on the audit table would refuse the
# deletes, so around the reset only they are set aside, and put back: every test still runs with them in force.

_MIGRATED: dict[str, dict[str, object]] = {}  # database alias → {table: its migrated rows}


def _tables(connection) -> list[str]:
    return sorted(connection.introspection.django_table_names(only_existing=True, include_views=False))


def _filled(connection, tables: list[str]) -> list[str]:
    """The tables among `tables` that hold at least one row (one query)."""
    qn = connection.ops.quote_name
    sql = " UNION ALL ".join(f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM {qn(t)})" for t in tables)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


def _rows(cursor, connection, table: str) -> object:
    """A table's rows: PostgreSQL's COPY text, or SQLite's columns and rows."""
    qn = connection.ops.quote_name
    if connection.vendor == "postgresql":
        with cursor.cursor.copy(f"COPY {qn(table)} TO STDOUT") as copy:
            return b"".join(bytes(chunk) for chunk in copy)
    cursor.execute(f"SELECT * FROM {qn(table)}")
    return [col[0] for col in cursor.description], cursor.fetchall()


def _copy_migrated_state(connection) -> dict[str, object]:
    """The rows of every table the migrations filled."""
    with connection.cursor() as cursor:
        return {table: _rows(cursor, connection, table) for table in _filled(connection, _tables(connection))}


@pytest.fixture(scope="session", autouse=True)
def _migrated_state(django_db_setup, django_db_blocker):
    """Copy, once per session and worker, what the migrations put in the test database."""
    from django.db import connections

    with django_db_blocker.unblock():
        for alias in connections:
            _MIGRATED[alias] = _copy_migrated_state(connections[alias])


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


def _back_to_migrated_state(connection, migrated: dict[str, object]) -> None:
    """Empty every table a test filled and give the migrated tables that a test changed their migrated rows, in
    one transaction. On PostgreSQL as a superuser (the test cluster of `make test`), replication mode sets the
    triggers aside for the transaction, foreign keys included; otherwise the user triggers are turned off around
    it and the deferred foreign keys are checked at its end."""
    from django.db import transaction

    qn = connection.ops.quote_name
    replica = False
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('is_superuser') = 'on'")
            replica = cursor.fetchone()[0]
    restore = [] if replica else _user_triggers_off(connection)
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            if replica:
                cursor.execute("SET LOCAL session_replication_role = replica")
            changed = {table for table, rows in migrated.items() if _rows(cursor, connection, table) != rows}
            filled = set(_filled(connection, _tables(connection)))
            for table in sorted((filled - set(migrated)) | changed):
                cursor.execute(f"DELETE FROM {qn(table)}")
            for table in sorted(changed):
                rows = migrated[table]
                if connection.vendor == "postgresql":
                    with cursor.cursor.copy(f"COPY {qn(table)} FROM STDIN") as copy:
                        copy.write(rows)
                else:
                    columns, values = rows
                    cursor.executemany(
                        f"INSERT INTO {qn(table)} ({', '.join(qn(c) for c in columns)}) "
                        f"VALUES ({', '.join(['%s'] * len(columns))})", values,
                    )  # fmt: skip
    finally:
        with connection.cursor() as cursor:
            for sql in restore:
                cursor.execute(sql)


def _reset_instead_of_flush() -> None:
    from django.db import connections
    from django.test import testcases

    def _fixture_teardown(self):
        for alias in self._databases_names(include_mirrors=False):
            _back_to_migrated_state(connections[alias], _MIGRATED[alias])

    testcases.TransactionTestCase._fixture_teardown = _fixture_teardown


_reset_instead_of_flush()


@pytest.fixture
def huey_immediate():
    """Tasks run at once, in the test's thread, instead of going to the worker's queue."""
    from huey.contrib.djhuey import HUEY

    before = HUEY.immediate
    HUEY.immediate = True
    yield HUEY
    HUEY.immediate = before


worker_inline = huey_immediate  # the service-desk tests' name for it
