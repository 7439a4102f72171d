"""PostgreSQL: an initial load goes into a new line table without its foreign keys, swapped in for the empty one, and
the foreign keys are added back at the end in one check — instead of a check per line, about half of the server's
work in a ten-million-line load. What users and the rest of the system must not notice: the table is the same in
every respect (columns, constraints, indexes, ids that go on), the customers stay readable and editable during the
load but cannot be deleted under it, and a load that fails leaves the original table as it was."""

from __future__ import annotations

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction

from pharmacrm.customers.models import Institution
from pharmacrm.sales import importer as orders_importer
from pharmacrm.sales import rollups
from pharmacrm.sales.importer import BareTable
from pharmacrm.sales.models import OrderLine

from .test_initial_load import _initial_load as _load

pytestmark = pytest.mark.postgresql

TABLE = OrderLine._meta.db_table


def _shape() -> dict:
    """Everything about the line table a swap must carry over, by name (not by the table's internal id)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale, "
            "collation_name, is_nullable, is_identity, identity_generation, column_default "
            "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s "
            "ORDER BY ordinal_position",
            [TABLE],
        )
        columns = cursor.fetchall()
        cursor.execute(
            "SELECT conname, contype, pg_get_constraintdef(oid), condeferrable, condeferred, convalidated "
            "FROM pg_constraint WHERE conrelid = %s::regclass ORDER BY conname",
            [TABLE],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s "
            "ORDER BY indexname",
            [TABLE],
        )
        indexes = cursor.fetchall()
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
        sequence = cursor.fetchone()[0]
    return {"columns": columns, "constraints": constraints, "indexes": indexes, "sequence": sequence}


def _oid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::regclass::oid", [TABLE])
        return cursor.fetchone()[0]


def _retired() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE %s", [TABLE + "%retired%"])
        return [name for (name,) in cursor.fetchall()]


def _other_connection() -> psycopg.Connection:
    s = connection.settings_dict
    return psycopg.connect(dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"] or None,
                           host=s["HOST"] or None, port=s["PORT"] or None, autocommit=True)  # fmt: skip


def _next_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [TABLE])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_the_loaded_table_is_the_same_table_with_its_foreign_key_and_ids_that_go_on(
    order_file, history, users
):
    """As in production (writer thread, its own transaction, committed): the line table is a new one afterwards,
    with the same columns, constraints — the customer's foreign key among them, enforced — indexes and identity,
    its ids going on from where the old table's were, and the emptied table dropped after the commit."""
    assert BareTable().swap
    before, oid = _shape(), _oid()
    used = _next_id()  # ids given before (lines since deleted) are never given again

    assert _load(order_file(history)) == 1  # rows refused, the rest stored

    assert _oid() != oid  # it was swapped
    assert _shape() == before
    assert OrderLine.objects.count() == 8
    assert min(OrderLine.objects.values_list("pk", flat=True)) > used
    assert _retired() == []
    stored = OrderLine.objects.first()
    stored.pk, stored.order_number, stored.institution_id = None, "X-1", 987_654_321
    with pytest.raises(IntegrityError), transaction.atomic():  # the customer's foreign key holds again
        stored.save()
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_a_load_that_fails_leaves_the_original_table(order_file, history, users):
    """Stopped by the database after every line went in and the indexes were built again (a worker killed then is
    the same for the database: its transaction is rolled back): the rename and the new table are undone with
    everything else."""
    before, oid = _shape(), _oid()

    def rebuild(today=None):
        with connection.cursor() as cursor:
            assert _oid() != oid  # swapped, and loaded
            cursor.execute("SELECT 1 / 0")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rollups, "rebuild_all", rebuild)
        assert _load(order_file(history)) == 2

    assert (_oid(), _shape()) == (oid, before)
    assert not OrderLine.objects.exists() and _retired() == []


@pytest.mark.django_db(transaction=True)
def test_during_the_load_customers_can_be_read_and_edited_but_not_deleted(
    order_file, history, users, monkeypatch
):
    """The per-line check of the foreign key locked each customer a line names against deletion (FOR KEY SHARE) until
    the commit, and nothing more. Without it the load takes the same locks, chunk by chunk."""
    monkeypatch.setattr(orders_importer, "CHUNK_ROWS", 2)
    seen = {}
    real = rollups.rebuild_all

    def rebuild(today=None):  # the lines loaded, the transaction still open
        named = set(OrderLine.objects.values_list("institution_id", flat=True))
        with _other_connection() as other, other.cursor() as cursor:
            cursor.execute("SET lock_timeout = '1s'")
            cursor.execute(f"SELECT COUNT(*) FROM {Institution._meta.db_table}")  # noqa: S608
            seen["read"] = cursor.fetchone()[0]
            for pk in named:
                with other.transaction():
                    cursor.execute(f"SELECT id FROM {Institution._meta.db_table} WHERE id = %s FOR NO KEY UPDATE",  # noqa: S608
                                   [pk])  # fmt: skip
                    seen.setdefault("edit", []).append(cursor.fetchone()[0])
                with pytest.raises(psycopg.errors.LockNotAvailable), other.transaction():
                    cursor.execute(
                        f"SELECT id FROM {Institution._meta.db_table} WHERE id = %s FOR UPDATE", [pk]
                    )  # noqa: S608
        return real(today)

    monkeypatch.setattr(rollups, "rebuild_all", rebuild)

    assert _load(order_file(history)) == 1

    assert seen["read"] == Institution.objects.count()
    assert sorted(seen["edit"]) == sorted(set(OrderLine.objects.values_list("institution_id", flat=True)))
    assert len(seen["edit"]) == 2


def test_a_customer_gone_before_its_lines_are_stored_fails_the_load_as_the_foreign_key_would(db):
    bare = BareTable()
    with pytest.raises(IntegrityError, match="is not present"), transaction.atomic():
        bare.drop()
        bare.hold({987_654_321})


@pytest.mark.django_db(transaction=True)
def test_a_table_granted_to_another_role_keeps_its_foreign_key_checked_per_line(order_file, history, users):
    """A copy would lose other roles' grants (a reporting role reading the lines, say): such a table is loaded in
    place, its foreign key checked line by line, and keeps its grants."""
    role = "pharmacrm_test_reader"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {role}")
        cursor.execute(f"CREATE ROLE {role}")
        cursor.execute(f"GRANT SELECT ON {TABLE} TO {role}")
    try:
        assert not BareTable().swap
        oid = _oid()

        assert _load(order_file(history)) == 1

        assert _oid() == oid and OrderLine.objects.count() == 8
        with connection.cursor() as cursor:
            cursor.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", [role, TABLE])
            assert cursor.fetchone()[0]
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"REVOKE ALL ON {TABLE} FROM {role}")
            cursor.execute(f"DROP ROLE {role}")


def test_a_line_table_whose_ids_come_from_a_serial_sequence_is_loaded_in_place(db):
    """A `serial` id's sequence belongs to the table: it would go with the table renamed away, and the new table's
    ids with it. Such a table (one created before Django used identity columns) keeps the per-line check."""
    assert BareTable().swap
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id DROP IDENTITY")
        cursor.execute(f"CREATE SEQUENCE {TABLE}_serial_id_seq OWNED BY {TABLE}.id")
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_serial_id_seq')")

    assert not BareTable().swap


@pytest.mark.django_db(transaction=True)
def test_an_emptied_table_the_commit_could_not_drop_goes_at_night_and_one_holding_lines_stays(db):
    """A reader of the customers that kept the post-commit drop waiting leaves the emptied table behind; the worker's
    nightly job drops it without waiting for another initial load. A table of that name holding lines is never
    dropped."""
    from pharmacrm.sales.tasks import drop_emptied_line_tables

    empty, holding = TABLE + BareTable.RETIRED + "0badf00d", TABLE + BareTable.RETIRED + "5ca1ab1e"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE TABLE "{empty}" (LIKE "{TABLE}")')
        cursor.execute(f'CREATE TABLE "{holding}" (id bigint)')
        cursor.execute(f'INSERT INTO "{holding}" VALUES (1)')
    assert sorted(_retired()) == sorted([empty, holding])
    drop_emptied_line_tables.call_local()
    assert _retired() == [holding]
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{holding}"')
