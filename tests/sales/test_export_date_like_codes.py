"""An order export opened in Excel keeps codes that look like dates as they are."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales.models import OrderLine

from .conftest import line


def test_an_order_number_and_a_batch_that_look_like_dates_are_kept_text_and_read_back_unchanged(
    client_for, run_import, admin_user, tmp_path, xiehe
):
    """An ERP numbers orders by month (2026-03) and a factory its batches by day (3-15): Excel opened the export with
    them as March 2026 and 15 March, and saved them back so. The export keeps them text with a leading tab, as it
    keeps long digit codes; its own dates stay ISO dates that Excel reads as dates; the file reads back unchanged."""
    day = (timezone.localdate() - dt.timedelta(days=20)).isoformat()
    run_import([line("2026-03", 1, day, xiehe, "P1", 2, "10", batch_number="3-15")])

    body = b"".join(client_for("manager").get("/sales/orders/export.csv").streaming_content).decode("utf-8-sig")

    assert "\t2026-03," in body and ",\t3-15," in body
    assert f",{day}," in body  # the order date: no tab
    path = tmp_path / "again.csv"
    path.write_text(body, encoding="utf-8")
    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="all")
    assert (job.unchanged_count, job.updated_count, job.created_count, job.error_count) == (1, 0, 0, 0)
    assert list(OrderLine.objects.values_list("order_number", "batch_number")) == [("2026-03", "3-15")]
