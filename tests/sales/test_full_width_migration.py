"""Migration sales 0008: order lines imported before the import read full-width characters keep their codes as
typed (ＹＰ１００１); the migration normalises them as the import reads them now, merging a line with the one the
corrected file added beside it."""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from types import SimpleNamespace

from django.apps import apps
from django.db import connection
from django.utils import timezone

from pharmacrm.safety import services as safety
from pharmacrm.sales import rollups
from pharmacrm.sales.importer import _hashed_values, row_hash
from pharmacrm.sales.models import MonthlyRollup, OrderLine, ProductCode, RollupDirty

from .conftest import line

migration = importlib.import_module("pharmacrm.sales.migrations.0008_full_width_codes")
MARCH = dt.date(2026, 3, 1)


def as_imported_before(number: str, **codes) -> None:
    """The stored line of order `number` (its line 1) as the import wrote it before it read full width: its codes as typed,
    fingerprinted with them, imported a month ago."""
    stored = OrderLine.objects.values().get(order_number=number, line_number=1)
    old = {**stored, **codes}
    OrderLine.objects.filter(pk=stored["id"]).update(
        **codes, row_hash=row_hash(_hashed_values(old, stored["institution_id"])),
        imported_at=timezone.now() - dt.timedelta(days=30),
    )  # fmt: skip


def migrate() -> None:
    migration.forwards(apps, SimpleNamespace(connection=connection))


def test_a_line_with_full_width_codes_is_found_and_a_reimport_updates_it(run_import, xiehe):
    rows = [line("YP1001", 1, "2026-03-05", xiehe, "P1", 10, "100", batch_number="25A001", invoice_number="FP001")]
    run_import(rows)
    as_imported_before("YP1001", order_number="ＹＰ１００１", product_code="Ｐ１", batch_number="２５Ａ００１",
                       invoice_number="ＦＰ００１")  # fmt: skip
    plain = run_import([line("SO-9", 1, "2026-03-06", xiehe, "P2", 1, "100")])  # an ASCII line: untouched
    ascii_line = OrderLine.objects.values().get(order_number="SO-9")
    RollupDirty.objects.all().delete()

    migrate()

    stored = OrderLine.objects.get(line_number=1, order_date="2026-03-05")
    assert (stored.order_number, stored.product_code, stored.batch_number, stored.invoice_number) == (
        "YP1001", "P1", "25A001", "FP001")  # fmt: skip
    assert [r["institution"] for r in safety.batch_trace("25A001")] == [xiehe]
    assert OrderLine.objects.values().get(order_number="SO-9") == ascii_line and plain.created_count == 1
    # the same file again: the line is recognised and unchanged, not added a second time
    again = run_import(rows)
    assert (again.created_count, again.updated_count, again.unchanged_count) == (0, 0, 1)
    assert OrderLine.objects.count() == 2


def test_the_line_a_corrected_file_added_beside_it_is_merged_keeping_the_newer_values(
    run_import, xiehe, caplog
):
    """The ERP's 10 boxes were corrected to 12 and the file imported again after the import learnt full width:
    the full-width line stayed and a second line YP1001/1 was added — 协和 had bought 22 boxes, two orders in
    March. After the migration: one line of 12 boxes, one order, and the rollup says so."""
    run_import([line("YP1001", 1, "2026-03-05", xiehe, "P1", 10, "100"),
                line("YP1001", 2, "2026-03-05", xiehe, "P2", 5, "100")])  # fmt: skip
    as_imported_before("YP1001", order_number="ＹＰ１００１")  # line 1
    OrderLine.objects.filter(order_number="YP1001", line_number=2).update(order_number="ＹＰ１００１")
    corrected = [line("YP1001", 1, "2026-03-05", xiehe, "P1", 12, "100"),
                 line("YP1001", 2, "2026-03-05", xiehe, "P2", 5, "100")]  # fmt: skip
    OrderLine.objects.filter(order_number="ＹＰ１００１", line_number=2).update(
        imported_at=timezone.now() - dt.timedelta(days=30)
    )
    job = run_import(corrected)
    assert job.created_count == 2  # the defect: beside the old lines
    assert MonthlyRollup.objects.get(institution=xiehe, month=MARCH).amount_fen == (10 + 5 + 12 + 5) * 10_000

    with caplog.at_level(logging.WARNING, logger="pharmacrm.sales"):
        migrate()
    rollups.refresh_dirty()

    lines = {(x.order_number, x.line_number): x.quantity for x in OrderLine.objects.all()}
    assert lines == {("YP1001", 1): 12, ("YP1001", 2): 5}
    march = MonthlyRollup.objects.get(institution=xiehe, month=MARCH)
    assert (march.amount_fen, march.lines, march.orders, march.products) == (17 * 10_000, 2, 1, 2)
    assert "order line YP1001/1: kept line id" in caplog.text and "order line YP1001/2" in caplog.text
    again = run_import(corrected)
    assert (again.created_count, again.updated_count, again.unchanged_count) == (0, 0, 2)


def test_two_full_width_spellings_of_one_line_become_one_the_later_import_kept(run_import, xiehe):
    run_import([line("YP7", 1, "2026-03-05", xiehe, "P1", 3, "100")])
    as_imported_before("YP7", order_number="ＹＰ７")
    run_import([line("YP8", 1, "2026-03-05", xiehe, "P1", 4, "100")])
    OrderLine.objects.filter(order_number="YP8").update(order_number="YP７")  # half full width, later

    migrate()
    rollups.refresh_dirty()

    assert list(OrderLine.objects.values_list("order_number", "quantity")) == [("YP7", 4)]
    assert MonthlyRollup.objects.get(institution=xiehe, month=MARCH).amount_fen == 4 * 10_000


def test_a_full_width_erp_product_code_becomes_the_ordinary_one(run_import, xiehe):
    ProductCode.objects.create(code="ＹＰ－Ａ", name="阿司匹林肠溶片")
    ProductCode.objects.create(code="ＹＰ－Ｂ", name="")
    ProductCode.objects.create(code="YP-B", name="")
    ProductCode.objects.create(code="Ｐ，１", name="")  # would be refused by the import as P,1: left

    migrate()

    assert dict(ProductCode.objects.values_list("code", "name")) == {"YP-A": "阿司匹林肠溶片", "YP-B": "",
                                                                    "Ｐ，１": ""}  # fmt: skip
