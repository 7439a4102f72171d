"""One ERP product code in any letter case in the database (sales 0016): the index refuses a second spelling, the
migration makes the spellings stored before it one (nothing lost, audited), and two saves at the same moment give the
field's refusal, not a server error."""

from __future__ import annotations

import importlib
import logging
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.sales import services
from pharmacrm.sales.models import OrderLine, ProductCode, RollupDirty
from pharmacrm.servicedesk.models import Product

from .conftest import line

migration = importlib.import_module("pharmacrm.sales.migrations.0016_product_code_any_case")
INDEX = "productcode_code_any_case"


def test_the_database_refuses_a_code_differing_only_in_case(db):
    ProductCode.objects.create(code="YP1001")
    with pytest.raises(IntegrityError), transaction.atomic():
        ProductCode.objects.create(code="yp1001")
    assert list(ProductCode.objects.values_list("code", flat=True)) == ["YP1001"]


def test_two_saves_at_the_same_moment_give_the_fields_refusal(admin_user, monkeypatch):
    """The other user's YP1001 committed between this save's check and its insert: the index refuses the insert,
    and the user reads the field's message naming the code recorded, as when the check saw it."""
    checked = ProductCode.validate_unique
    calls = []

    def not_yet_there(self, exclude=None):
        calls.append(self.code)
        if len(calls) == 1:
            ProductCode.objects.create(code="YP1001", name="安心宁")  # the other save, a moment earlier
            return None
        return checked(self, exclude)

    monkeypatch.setattr(ProductCode, "validate_unique", not_yet_there)
    with translation.override("en"):  # the message is lazy: read in English inside
        with pytest.raises(ValidationError) as refused:
            services.record_product_code(admin_user, "yp1001", "安心宁")
        assert refused.value.message_dict == {
            "code": ["The product code YP1001 is recorded already: product codes are the same in any letter case."]
        }
    assert list(ProductCode.objects.values_list("code", flat=True)) == ["YP1001"]


def test_a_code_recorded_by_hand_is_audited(admin_user):
    code = services.record_product_code(admin_user, " ＹＰ２００２ ", "安心宁 10mg")
    assert (code.code, code.name) == ("YP2002", "安心宁 10mg")
    entry = AuditEntry.objects.get(object_type="sales.productcode", object_id=str(code.pk))
    assert (entry.action, entry.actor, entry.changes["code"]) == ("create", admin_user, [None, "YP2002"])


@pytest.fixture
def without_index(db):
    """A database from before sales 0016: no index yet, so two spellings can be stored."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {INDEX}")
    yield
    with connection.cursor() as cursor:  # built again: what the migration's second step does
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # as the migration does before it
        cursor.execute(f"CREATE UNIQUE INDEX {INDEX} ON sales_productcode (UPPER(code))")


def test_the_migration_makes_stored_spellings_one_code_nothing_lost(without_index, run_import, xiehe, caplog):
    product = Product.objects.create(brand_name="安心宁", generic_name="盐酸氨氯地平片", approval_number="国药准字H20249871")
    run_import([line("SO-1", 1, "2026-03-05", xiehe, "yp1001", 2, "10"), line("SO-2", 1, "2026-03-06", xiehe, "AB-7", 1, "5")])
    # spellings stored before the import read codes in any case: a second row for each, lines under them
    oldest = ProductCode.objects.get(code="yp1001")
    ProductCode.objects.filter(pk=oldest.pk).update(name="")
    linked = ProductCode.objects.create(code="YP1001", name="安心宁 5mg", product=product)
    OrderLine.objects.filter(order_number="SO-1").update(product_code="YP1001")
    run_import([line("SO-3", 1, "2026-03-07", xiehe, "yp1001", 1, "10")])  # its line under the oldest spelling
    ProductCode.objects.create(code="ab-7", name="新品")
    OrderLine.objects.filter(order_number="SO-3").update(product_code="yp1001")
    RollupDirty.objects.all().delete()

    with caplog.at_level(logging.WARNING, logger="pharmacrm.sales"):
        counts = migration.merge_case_variants(apps, SimpleNamespace(connection=connection))

    assert counts == {"merged": 2, "lines": 1, "months": 1}
    # the catalogue's spelling kept, with its name and link; the other kept for AB-7 (the oldest) takes a name
    assert list(ProductCode.objects.order_by("code").values_list("code", "name", "product_id")) == [
        ("AB-7", "新品", None), ("YP1001", "安心宁 5mg", product.pk)]  # fmt: skip
    assert ProductCode.objects.get(code="YP1001").pk == linked.pk
    assert sorted(OrderLine.objects.values_list("order_number", "product_code")) == [
        ("SO-1", "YP1001"), ("SO-2", "AB-7"), ("SO-3", "YP1001")]  # fmt: skip
    assert RollupDirty.objects.filter(institution_id=xiehe.pk).count() == 1  # March, recomputed
    removed = AuditEntry.objects.get(object_type="sales.productcode", object_id=str(oldest.pk), action="delete")
    assert (removed.changes["code"], removed.extra["merged"], removed.actor_name) == (["yp1001", None], "YP1001", "system")
    respelt = AuditEntry.objects.get(object_type="sales.orderline", action="update")
    assert respelt.changes == {"product_code": ["yp1001", "YP1001"]} and respelt.extra["merged_code"] == "yp1001"
    kept = AuditEntry.objects.filter(object_type="sales.productcode", action="update").order_by("id")
    assert [e.changes for e in kept] == [{"merged": [None, ["yp1001"]]}, {"merged": [None, ["ab-7"]], "name": ["", "新品"]}]
    assert "2 merged into 2, 1 order line(s) re-spelt" in caplog.text
    # a re-import of the same file finds the re-spelt line unchanged
    again = run_import([line("SO-3", 1, "2026-03-07", xiehe, "yp1001", 1, "10")])
    assert (again.created_count, again.updated_count, again.unchanged_count) == (0, 0, 1)
    # and the index can now be built: nothing left to refuse
    assert migration.merge_case_variants(apps, SimpleNamespace(connection=connection))["merged"] == 0


def test_two_imports_giving_a_new_code_in_two_cases_at_once_store_one_code(run_import, xiehe, monkeypatch, settings):
    """Import B records AB-7 between import A's reading of the catalogue and its write (A read ab-7 as a new code): A's
    lines are stored under AB-7, the code the database keeps, not under a spelling no code has."""
    from pharmacrm.sales import importer as orders

    settings.IMPORT_WRITER_THREAD = False
    original, pending = orders.Run._against_stored, []

    def checked(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        while pending:
            pending.pop()()
        return out

    monkeypatch.setattr(orders.Run, "_against_stored", checked)
    other = []
    pending.append(lambda: other.append(run_import([line("SO-B", 1, "2026-03-06", xiehe, "AB-7", 1, "5")])))

    job = run_import([line("SO-A", 1, "2026-03-05", xiehe, "ab-7", 2, "5")])

    assert (other[0].created_count, job.created_count, job.error_count) == (1, 1, 0)
    assert list(ProductCode.objects.values_list("code", flat=True)) == ["AB-7"]
    assert sorted(OrderLine.objects.values_list("order_number", "product_code")) == [("SO-A", "AB-7"), ("SO-B", "AB-7")]
    again = run_import([line("SO-A", 1, "2026-03-05", xiehe, "ab-7", 2, "5")])  # fingerprinted as stored
    assert (again.created_count, again.updated_count, again.unchanged_count) == (0, 0, 1)


@pytest.mark.django_db(transaction=True)
def test_migrate_builds_the_index_over_a_database_holding_case_variants(admin_user):
    """The real `migrate` from sales 0015 to 0016 on a database holding yp1001 beside YP1001 (and a line of each): the
    merge and the index in one migration, on SQLite and PostgreSQL alike."""
    from django.core.management import call_command

    from pharmacrm.customers.models import Institution

    call_command("migrate", "sales", "0015", verbosity=0)
    try:
        customer = Institution.objects.create(name="协和医院", kind="hospital")
        ProductCode.objects.create(code="yp1001", name="")
        ProductCode.objects.create(code="YP1001", name="安心宁 5mg")
        for n, code in ((1, "yp1001"), (2, "YP1001")):
            OrderLine.objects.create(order_number="SO-1", line_number=n, order_date="2026-03-05", month="2026-03-01",
                                     institution=customer, product_code=code, quantity=1, unit_price=10,
                                     amount_fen=1000, row_hash=0)  # fmt: skip
    finally:
        call_command("migrate", "sales", verbosity=0)

    assert list(ProductCode.objects.values_list("code", "name")) == [("yp1001", "安心宁 5mg")]  # the oldest, named
    assert set(OrderLine.objects.values_list("product_code", flat=True)) == {"yp1001"}
    with pytest.raises(IntegrityError), transaction.atomic():
        ProductCode.objects.create(code="Yp1001")
