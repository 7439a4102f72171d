"""Purchases defects from the fifteenth session's QA round: our own CSV export imports back unchanged even
where it escaped a cell against formulas; the dates Chinese Excel and ERPs write; a quantity with too many
decimal places is refused, not rounded; a missing file exits 2 on the command line."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales.models import OrderLine

from .conftest import line, today_minus


def test_an_export_escaped_against_formulas_imports_back_unchanged(client_for, run_import, admin_user, tmp_path, xiehe):
    run_import([line("Z-2", 1, today_minus(30), xiehe, "=HYPERLINK(1)", 2, "10", invoice_number="-")])
    body = b"".join(client_for("manager").get("/sales/orders/export.csv").streaming_content).decode("utf-8-sig")
    assert "'=HYPERLINK(1)" in body  # a spreadsheet shows it as text
    path = tmp_path / "again.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(csv.reader(io.StringIO(body)))

    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="all")

    assert (job.unchanged_count, job.updated_count, job.error_count) == (1, 0, 0)
    stored = OrderLine.objects.get(order_number="Z-2")
    assert (stored.product_code, stored.invoice_number) == ("=HYPERLINK(1)", "-")


@pytest.mark.parametrize("written", ["2026-1-5", "2026/1/5 0:00", "2026-01-05 00:00", "2026-01-05T00:00:00"])
def test_order_dates_as_excel_and_erps_write_them(run_import, xiehe, written):
    job = run_import([line("D-1", 1, written, xiehe, "P1", 1, "10")])
    assert job.error_count == 0, job.errors
    assert str(OrderLine.objects.get(order_number="D-1").order_date) == "2026-01-05"


def test_a_quantity_with_four_decimal_places_is_refused_not_rounded(run_import, xiehe):
    job = run_import([line("Q-1", 1, today_minus(5), xiehe, "P1", "1.0005", "10"),
                      line("Q-2", 1, today_minus(5), xiehe, "P1", "2", "12.345678")])  # fmt: skip
    assert [(e["row"], e["column"], e["code"]) for e in job.errors] == [(2, "数量", "too_many_places")]
    assert "1.0005" in importer.error_text(job.errors[0]) and "3" in importer.error_text(job.errors[0])
    assert not OrderLine.objects.filter(order_number="Q-1").exists()
    # an ERP's six-place unit price is rounded to four, as documented
    assert OrderLine.objects.get(order_number="Q-2").unit_price == Decimal("12.3457")


def test_a_missing_file_exits_2_as_an_unreadable_one_does(tmp_path, admin_user, capsys):
    with pytest.raises(SystemExit) as exit_:
        call_command("import", "orders", str(tmp_path / "nowhere.csv"))
    assert exit_.value.code == 2
    assert "nowhere.csv" in capsys.readouterr().err
