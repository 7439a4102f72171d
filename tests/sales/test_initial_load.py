"""`pharmacrm import orders FILE --initial-load`: the first migration of an ERP's order history into empty order
tables — one transaction, the line table's indexes and constraints dropped while it loads and built again from their
own definitions, every monthly rollup computed once at the end. What it stores must be exactly what the ordinary
import stores; stopped midway it must leave nothing, indexes included."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from pharmacrm.customers.models import ImportJob
from pharmacrm.sales import importer as orders_importer
from pharmacrm.sales.importer import BareTable
from pharmacrm.sales.models import MonthlyRollup, OrderLine, ProductCode, RollupDirty

from .conftest import line, tables, today_minus


def _initial_load(path, *extra) -> int:
    try:
        call_command("import", "orders", str(path), "--initial-load", "--language", "en", *extra)
    except SystemExit as e:
        return e.code
    return 0


def _wipe() -> None:
    OrderLine.objects.all().delete()
    MonthlyRollup.objects.all().delete()
    RollupDirty.objects.all().delete()
    ProductCode.objects.all().delete()


def _stored() -> dict:
    """What the import wrote, without what differs between two runs of it (ids, times, the job)."""
    out = tables()
    for row in out["lines"]:
        for key in ("id", "job_id", "imported_at"):
            row.pop(key)
    for row in out["rollups"]:
        for key in ("id", "updated_at"):
            row.pop(key)
    for row in out["codes"]:
        for key in ("id", "updated_at"):
            row.pop(key)
    return out


def _last_job() -> ImportJob:
    return ImportJob.objects.filter(target=ImportJob.Target.ORDERS).latest("pk")


def test_an_initial_load_stores_exactly_what_the_ordinary_import_stores(order_file, history, users, capsys):
    path = order_file(history)

    assert _initial_load(path) == 1  # rows were rejected
    out = capsys.readouterr().out
    assert "created 8\nupdated 0\nunchanged 0\nrejected 4" in out
    assert "Initial load: the order tables were empty" in out
    loaded, job = _stored(), _last_job()
    errors = [(e["row"], e["code"]) for e in job.errors]

    _wipe()
    with pytest.raises(SystemExit):
        call_command("import", "orders", str(path), "--language", "en")
    ordinary = _stored()

    assert len(loaded["lines"]) == 8 and loaded["rollups"]
    assert loaded == ordinary  # lines with their fingerprints, every rollup figure, the product codes and links
    assert errors == [(e["row"], e["code"]) for e in _last_job().errors] == [
        (9, "customer_not_found"), (10, "impossible_date"), (11, "duplicate_line"), (12, "order_two_customers"),
    ]  # fmt: skip
    # and a re-import of the same file afterwards recognises every line
    with pytest.raises(SystemExit):
        call_command("import", "orders", str(path), "--language", "en")
    assert "unchanged 8" in capsys.readouterr().out


def test_the_line_tables_indexes_and_constraints_are_back_after_an_initial_load(order_file, history, users):
    before = BareTable()

    _initial_load(order_file(history))

    after = BareTable()
    assert (after.indexes, after.constraints) == (before.indexes, before.constraints)
    assert before.indexes  # there is something to compare
    stored = OrderLine.objects.first()
    stored.pk = None
    with pytest.raises(IntegrityError), transaction.atomic():  # (order number, line) is unique again
        stored.save()


def test_an_initial_load_into_stored_lines_is_refused_and_changes_nothing(order_file, history, users, capsys):
    path = order_file(history)
    _initial_load(path)
    capsys.readouterr()
    before = tables()

    assert _initial_load(path) == 2

    assert "An initial load is for empty order tables" in capsys.readouterr().err
    assert tables() == before


def test_an_initial_load_that_finds_lines_under_the_lock_imports_nothing(order_file, history, users, monkeypatch):
    """Another import stored lines between the command's check and the load's lock: the job says why and nothing
    of the file is stored."""
    path = order_file(history)
    checks = iter([True, True])  # the command's and the job's checks see an empty table …
    monkeypatch.setattr(orders_importer, "order_tables_empty", lambda: next(checks, False))  # … the lock's does not

    assert _initial_load(path) == 2

    job = _last_job()
    assert job.status == ImportJob.Status.FAILED and "initial_load_not_empty" in job.message
    assert not OrderLine.objects.exists()
    assert BareTable().indexes


def test_an_initial_load_stopped_midway_by_the_database_leaves_nothing_and_the_indexes_in_place(
    order_file, history, users, refused_order_number, monkeypatch
):
    """A database error in the fourth chunk (a worker killed midway is the same for the database: its transaction
    is rolled back, the dropped indexes with it)."""
    monkeypatch.setattr(orders_importer, "CHUNK_ROWS", 3)
    before = BareTable()
    rows = [r for r in history if r["order_number"] not in ("H-6", "H-7")]
    rows.insert(10, line(refused_order_number, 1, today_minus(3), rows[0]["credit_code"], "YP1001", 1, "10"))

    assert _initial_load(order_file(rows)) == 2

    assert not OrderLine.objects.exists() and not MonthlyRollup.objects.exists()
    after = BareTable()
    assert (after.indexes, after.constraints) == (before.indexes, before.constraints)
    assert _last_job().status == ImportJob.Status.FAILED


def test_an_all_or_nothing_initial_load_with_a_bad_row_imports_nothing(order_file, history, users, capsys):
    before = BareTable()

    assert _initial_load(order_file(history), "--all-or-nothing") == 1

    assert not OrderLine.objects.exists()
    assert _last_job().status == ImportJob.Status.REJECTED
    assert BareTable().indexes == before.indexes


def test_a_dry_run_with_initial_load_checks_the_rows_and_stores_nothing(order_file, history, users, capsys):
    assert _initial_load(order_file(history), "--dry-run") == 1

    assert "created 8" in capsys.readouterr().out
    assert not OrderLine.objects.exists()


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_an_initial_load_with_its_writer_thread_stores_what_the_ordinary_import_stores(
    order_file, history, users, monkeypatch
):
    """Outside a test's transaction PostgreSQL writes the chunks in a second thread, as in production: the drop, the
    load and the rebuild happen on the writer's connection, in its transaction, while the reading connection looks
    customers up chunk after chunk. Dropping the line table's foreign keys locked the customers table as well: the
    reader's next look-up waited for the writer, which waited for the reader's next chunk, for ever (here: until the
    lock timeout)."""
    monkeypatch.setattr(orders_importer, "CHUNK_ROWS", 2)
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '15s'")
    path = order_file(history)
    assert _initial_load(path) == 1  # rows rejected, the rest stored
    loaded = _stored()
    assert BareTable().indexes

    _wipe()
    with pytest.raises(SystemExit):
        call_command("import", "orders", str(path), "--language", "en")

    assert loaded == _stored() and len(loaded["lines"]) == 8
    assert connection.vendor == "postgresql"


def _pragma_while_loading(monkeypatch, name: str) -> list:
    """What the load's connection says of an SQLite setting once the lines are in (when the rollups are built)."""
    from pharmacrm.sales import rollups

    seen = []
    real = rollups.rebuild_all

    def rebuild(today=None):
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA {name}")
            seen.append(cursor.fetchone()[0])
        return real(today)

    monkeypatch.setattr(rollups, "rebuild_all", rebuild)
    return seen


@pytest.mark.sqlite
@pytest.mark.django_db(transaction=True)
def test_an_initial_load_sorts_on_disk_on_sqlite_and_gives_the_connection_back_as_it_was(
    order_file, history, users, monkeypatch, settings
):
    """SQLite builds the indexes and groups the rollups with a sort in temporary storage, which the web's connections
    keep in memory: at ten million lines that sort alone took the import to 1 GiB (the limit is 500 MB). The load's
    transaction is the outermost here, as in the command line's (the test database in memory allows no writer
    thread)."""
    settings.IMPORT_WRITER_THREAD = False
    seen = _pragma_while_loading(monkeypatch, "temp_store")

    assert _initial_load(order_file(history)) == 1

    assert seen == [1]  # FILE
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA temp_store")
        assert cursor.fetchone()[0] == 2  # MEMORY again, for the web's own sorts
    assert OrderLine.objects.count() == 8


@pytest.mark.sqlite
@pytest.mark.django_db(transaction=True)
def test_an_initial_load_on_sqlite_checks_each_chunks_customers_instead_of_each_line(
    order_file, history, users, monkeypatch, settings
):
    """SQLite checks a foreign key with a probe of the customers' b-tree on every insert, on its one writer: the load's
    connection turns the check off while it loads (outside its transaction, the only place SQLite allows it), checks
    each chunk's customers once instead, and turns it back on for the web's own writes."""
    settings.IMPORT_WRITER_THREAD = False
    seen = _pragma_while_loading(monkeypatch, "foreign_keys")

    assert _initial_load(order_file(history)) == 1

    assert seen == [0] and OrderLine.objects.count() == 8
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys")
        assert cursor.fetchone()[0] == 1
        cursor.execute(f"PRAGMA foreign_key_check({OrderLine._meta.db_table})")
        assert cursor.fetchall() == []
    stored = OrderLine.objects.first()
    stored.pk, stored.order_number, stored.institution_id = None, "X-1", 987_654_321
    with pytest.raises(IntegrityError), transaction.atomic():  # checked again afterwards
        stored.save()


@pytest.mark.sqlite
@pytest.mark.django_db(transaction=True)
def test_a_customer_gone_before_its_lines_are_stored_fails_an_sqlite_load_and_the_checks_come_back(
    order_file, history, users, monkeypatch, settings
):
    """A customer deleted between the import's look-up and the storing of its lines (another user's delete, before
    the load's transaction took the database): the load fails as the foreign key would have failed it, stores
    nothing, and the connection checks foreign keys again."""
    settings.IMPORT_WRITER_THREAD = False
    real = BareTable.hold

    def hold(self, ids):
        return real(self, {*ids, 987_654_321})

    monkeypatch.setattr(BareTable, "hold", hold)

    assert _initial_load(order_file(history)) == 2

    assert not OrderLine.objects.exists()
    assert _last_job().status == ImportJob.Status.FAILED
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys")
        assert cursor.fetchone()[0] == 1
