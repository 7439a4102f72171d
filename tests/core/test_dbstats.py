"""Planner statistics after migrations: a table SQLite rebuilt has none, and is analysed after `migrate`."""

import pytest
from django.apps import apps
from django.db import connection
from django.db.models.signals import post_migrate

from pharmacrm.core import dbstats


def _analysed() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT tbl FROM sqlite_stat1")
        return {row[0] for row in cursor.fetchall()}


def _migrated():
    """What `migrate` sends once its migrations ran (one app's signal; the receiver listens to core's)."""
    core = apps.get_app_config("core")
    post_migrate.send(
        sender=core, app_config=core, verbosity=0, interactive=False, using="default", apps=apps,
        plan=[("a migration", False)],
    )  # fmt: skip


@pytest.mark.django_db
def test_a_table_rebuilt_by_a_migration_gets_its_statistics_back(xiehe, users):
    if connection.vendor != "sqlite":
        # PostgreSQL rebuilds no table and its autovacuum keeps statistics: nothing to renew
        assert dbstats.tables_without_statistics(connection) == []
        assert dbstats.renew() == []
        return
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # a database that has statistics (a bench or a production file) …
        cursor.execute("DELETE FROM sqlite_stat1 WHERE tbl = 'customers_institution'")  # … one table rebuilt
    assert "customers_institution" in dbstats.tables_without_statistics(connection)
    _migrated()
    assert "customers_institution" in _analysed()
    assert dbstats.tables_without_statistics(connection) == []


@pytest.mark.django_db
def test_a_database_never_analysed_is_left_as_it_is(xiehe):
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")
            analysed_before = cursor.fetchone() is not None
        _migrated()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")
            assert (cursor.fetchone() is not None) == analysed_before
    assert dbstats.renew() == []
