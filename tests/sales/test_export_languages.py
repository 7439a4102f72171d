"""The order-lines export in the exporting user's language: an English or Traditional-Chinese manager got the
Simplified Chinese headers (订单号, 行号 …). The headers follow the user's language; the file imports again unchanged."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from django.utils import timezone, translation

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales.importer import ORDER_COLUMNS
from pharmacrm.sales.models import OrderLine

from .conftest import line


def days_ago(n: int) -> dt.date:
    return timezone.localdate() - dt.timedelta(days=n)


def exported(client_for, users, language: str) -> str:
    users["manager"].language = language
    users["manager"].save(update_fields=["language"])
    response = client_for("manager").get("/sales/orders/export.csv")
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode("utf-8-sig")


@pytest.fixture
def lines(run_import, xiehe):
    job = run_import([
        line("SO-1", 1, days_ago(20), xiehe, "P1", 2, "10.50", batch_number="B2601", invoice_number="F1"),
        line("SO-1", 2, days_ago(20), xiehe, "P2", 1, "99", payment_due=days_ago(5), paid_date=days_ago(6)),
    ])  # fmt: skip
    assert job.created_count == 2, job.errors
    return job


def test_an_english_user_gets_english_headers(client_for, users, lines):
    rows = list(csv.reader(io.StringIO(exported(client_for, users, "en"))))
    assert rows[0][:6] == [
        "Order number", "Line number", "Order date", "Customer credit code", "Customer external id", "Customer name",
    ]  # fmt: skip
    assert "Unit price" in rows[0] and "Paid amount" in rows[0] and "订单号" not in rows[0]
    assert rows[1][:2] == ["SO-1", "1"]


def test_a_traditional_chinese_user_gets_the_headers_of_their_catalogue(client_for, users, lines):
    rows = list(csv.reader(io.StringIO(exported(client_for, users, "zh-hant"))))
    with translation.override("zh-hant"):
        assert rows[0] == [str(c.label) for c in ORDER_COLUMNS if c.template]
    assert {"訂單號", "訂單日期", "產品編碼", "數量", "金額"} <= set(rows[0]) and "订单号" not in rows[0]


@pytest.mark.parametrize("language", ["en", "zh-hant", "zh-hans"])
def test_an_order_export_in_any_language_imports_again_unchanged(client_for, users, admin_user, lines, tmp_path,
                                                                  language):  # fmt: skip
    path = tmp_path / f"orders-{language}.csv"
    path.write_text(exported(client_for, users, language), encoding="utf-8")
    before = list(OrderLine.objects.order_by("pk").values())
    for dry_run in (True, False):
        job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="all", dry_run=dry_run)
        assert (job.created_count, job.updated_count, job.error_count) == (0, 0, 0), job.errors
        assert job.unchanged_count == 2
        assert "ignored_columns" not in {note["code"] for note in json.loads(job.message or "[]")}  # every column read
    assert list(OrderLine.objects.order_by("pk").values()) == before


# --- other pages and notes of the sales exports, in the reader's language ---------------------------------


def test_the_clv_page_names_the_provinces_in_the_readers_language(xiehe, client_for):
    """The provinces of the lifetime-value page (the distribution and the filter) were the stored Simplified names
    (北京市) to every reader."""
    from pharmacrm.sales import clv
    from pharmacrm.sales.models import MonthlyRollup

    MonthlyRollup.objects.create(institution=xiehe, month=dt.date(2026, 11, 1), amount_fen=100_000, paid_fen=100_000)
    assert clv.compute(dt.date(2026, 12, 5)) == 1
    english = client_for("manager").get("/sales/clv/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<option value="440000">Guangdong</option>' in english
    assert english.count(">Beijing<") >= 2  # the filter's option and the distribution's row
    assert "北京市" not in english and "广东省" not in english
    hant = client_for("manager").get("/sales/clv/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert '<option value="440000">廣東省</option>' in hant and "广东省" not in hant


def test_the_unknown_products_note_names_no_chinese_column_to_an_english_reader(run_import, xiehe):
    job = run_import([line("U-1", 1, days_ago(10), xiehe, "NOT-IN-CATALOGUE", 1, "5")])
    with translation.override("en"):
        [note] = [n for n in importer.job_messages(job) if "product catalogue" in n]
    assert "批准文号" not in note and "approval number" in note
