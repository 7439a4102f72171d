"""Session 19 review: purchases and customer evaluation — Excel error values in order files, returns and their
refunds, and what the analyst and the manager see of them."""

from __future__ import annotations

import datetime as dt
import re

from django.utils import timezone, translation
from openpyxl import Workbook

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales.importer import ORDER_COLUMNS
from pharmacrm.sales.models import OrderLine

from .conftest import line


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def days_ago(n: int) -> dt.date:
    return timezone.localdate() - dt.timedelta(days=n)


def errors_en(job: ImportJob) -> list[tuple[int, str, str]]:
    with translation.override("en"):
        return [(e["row"], e["column"], importer.error_text(e)) for e in job.errors]


EXCEL_ERROR = "The cell holds an Excel error ({}), not a value: correct the formula or enter the value itself."


# --- 1. an Excel error value (#N/A …) in an order file is a row error, not an empty cell ----------------------


def order_workbook(path, rows: list[dict]):
    wb = Workbook()
    ws = wb.active
    ws.append([c.header for c in ORDER_COLUMNS])
    for row in rows:
        ws.append([row.get(c.key, "") for c in ORDER_COLUMNS])
    wb.save(path)
    return path


def test_an_excel_error_in_an_order_workbook_is_reported_not_read_as_empty(admin_user, xiehe, tmp_path):
    """A failed VLOOKUP of the paid amount (#N/A) read as an empty cell: with a payment date, "paid in full" —
    an unpaid line counted as paid. A failed amount (#REF!) became quantity × price, a batch #VALUE! was empty."""
    day = days_ago(20).isoformat()
    rows = [
        line("SO-E", 1, day, xiehe, "P1", 10, "100", paid_date=day, paid_amount="#N/A"),
        line("SO-E", 2, day, xiehe, "P1", 10, "100", amount="#REF!"),
        line("SO-E", 3, day, xiehe, "P1", 10, "100", batch_number="#VALUE!"),
        line("SO-E", 4, day, xiehe, "P1", 10, "100", invoice_number="#N/A", paid_date=day),
        line("SO-E", 5, day, xiehe, "P1", 10, "100", paid_date=day),
    ]
    for row in rows[:4]:
        row["customer_name"] = "#N/A"  # the name is for people: its failed look-up alone refuses nothing
    path = order_workbook(tmp_path / "orders.xlsx", rows)
    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="good")
    assert sorted(errors_en(job)) == [
        (2, "付款金额", EXCEL_ERROR.format("#N/A")),
        (3, "金额", EXCEL_ERROR.format("#REF!")),
        (4, "批号", EXCEL_ERROR.format("#VALUE!")),
        (5, "发票号", EXCEL_ERROR.format("#N/A")),
    ]
    assert list(OrderLine.objects.values_list("line_number", "paid_fen")) == [(5, 100_000)]
    assert {e["row"]: e.get("value") for e in job.errors}[2] == "#N/A"  # the report shows what the cell held


def test_an_excel_error_saved_into_an_order_csv_is_reported_too(run_import, xiehe):
    day = days_ago(20).isoformat()
    job = run_import([
        line("SO-C", 1, day, xiehe, "P1", 10, "100", paid_date=day, paid_amount="#N/A"),
        line("SO-C", 2, day, xiehe, "#NAME?", 10, "100"),
        line("SO-C", 3, day, xiehe, "P1", 10, "100"),
    ])  # fmt: skip
    assert [(r, c) for r, c, _t in errors_en(job)] == [(2, "付款金额"), (3, "产品编码")]
    assert list(OrderLine.objects.values_list("line_number", flat=True)) == [3]
