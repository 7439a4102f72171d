"""Order import, from a QA round: an order, product, batch or invoice number holds no control character (a quoted CSV
cell over two lines, "QA-A\\n5" sent to the API, a tab, a zero-width space were stored as they were)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import translation

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales.models import OrderLine

from .conftest import line, write_csv

SEPT = "2026-09-30"


def codes(job: ImportJob) -> list[tuple[int, str, str]]:
    return [(e["row"], e["column"], e["code"]) for e in job.errors]


def texts(job: ImportJob) -> list[str]:
    with translation.override("en"):
        return [importer.error_text(e) for e in job.errors]


@pytest.mark.parametrize(
    ("key", "value", "column", "char"),
    [
        ("order_number", "QA-A\n5", "订单号", "U+000A"),
        ("order_number", "QA\t5", "订单号", "U+0009"),
        ("batch_number", "25A\r001", "批号", "U+000D"),
        ("invoice_number", "1234\u200b5678", "发票号", "U+200B"),
        ("product_code", "P\t1", "产品编码", "U+0009"),
    ],
)
def test_a_code_holding_a_control_character_is_refused(run_import, xiehe, key, value, column, char):
    """A quoted CSV cell holding a line break (or a tab, a zero-width space) was stored as it was."""
    row = line("QA-9", 1, SEPT, xiehe, "P1", 1, 10)
    row[key] = value
    job = run_import([row, line("QA-8", 1, SEPT, xiehe, "P1", 1, 10, batch_number="\t0123")])

    assert codes(job) == [(2, column, "code_control_chars")]
    assert job.errors[0]["params"] == {"char": char}
    assert texts(job) == [f"This code contains a control character ({char}: a line break, a tab or an invisible "
                          "formatting mark). Give it as the ERP shows it, on one line."]  # fmt: skip
    # the tab our export keeps a code text with is no part of it
    assert list(OrderLine.objects.values_list("order_number", "batch_number")) == [("QA-8", "0123")]


def test_a_product_code_with_a_line_break_is_still_refused_as_before(run_import, xiehe):
    job = run_import([line("QA-9", 1, SEPT, xiehe, "P\n1", 1, 10)])
    assert codes(job) == [(2, "产品编码", "product_code_chars")]


def test_the_api_refuses_an_order_number_holding_a_line_break(api_for, xiehe):
    day = str(dt.date(2026, 9, 30))
    lines = [{"order_number": "QA-A\n5", "line_number": 1, "order_date": day, "credit_code": xiehe.credit_code,
              "product_code": "P1", "quantity": 1, "unit_price": 10},
             {"order_number": "QA-B", "line_number": 1, "order_date": day, "credit_code": xiehe.credit_code,
              "product_code": "P1\u200b", "quantity": 1, "unit_price": 10}]  # fmt: skip

    data = api_for("manager").post("/api/v1/sales/orders/", {"lines": lines}, format="json").json()

    assert (data["created"], data["rejected"]) == (0, 2)
    assert [(e["row"], e["column"], e["code"]) for e in data["errors"]] == [
        (1, "order_number", "code_control_chars"),
        (2, "product_code", "code_control_chars"),
    ]
    assert not OrderLine.objects.exists()


def test_write_csv_helper_keeps_a_cell_with_a_line_break_quoted(tmp_path):
    """(The files above hold the line break inside a quoted cell, as Excel writes one.)"""
    path = write_csv(tmp_path / "x.csv", [{"order_number": "A\nB"}])
    assert '"A\nB"' in path.read_text(encoding="utf-8-sig")
