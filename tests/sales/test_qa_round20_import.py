"""Order import, from the twentieth session's QA round: money as Chinese ERPs and Excel's currency and accounting
formats write it (a CSV saved by Excel holds each cell as shown)."""

from __future__ import annotations

import csv
import datetime as dt

from django.utils import timezone, translation

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales.importer import ORDER_COLUMNS
from pharmacrm.sales.models import OrderLine

from .conftest import KEYS, line


def errors_en(job: ImportJob) -> list[tuple[int, str, str]]:
    with translation.override("en"):
        return [(e["row"], e["column"], importer.error_text(e)) for e in job.errors]


def test_money_written_with_yuan_rmb_or_in_the_accounting_format_is_read(run_import, xiehe):
    """125.00元, RMB 1,250.00 and (125.00) were “not a number”, and a paid amount of zero shown as “-” (Excel's
    accounting format, saved to CSV as shown) refused its row."""
    day = (timezone.localdate() - dt.timedelta(days=20)).isoformat()
    job = run_import([
        line("SO-M", 1, day, xiehe, "P1", 10, "12.50", amount="125.00元"),
        line("SO-M", 2, day, xiehe, "P1", 100, "12.50", amount="RMB 1,250.00"),
        line("SO-M", 3, day, xiehe, "P1", -10, "12.50", amount="(125.00)"),
        line("SO-M", 4, day, xiehe, "P1", 10, "￥12.50", amount=" ￥125.00 ", paid_amount=" ￥- "),
        line("SO-M", 5, day, xiehe, "P1", 10, "CNY12.50", amount="125元", paid_date=day, paid_amount="￥125.00"),
        line("SO-M", 6, day, xiehe, "P1", 10, "12.50", amount="125.00美元"),
    ])  # fmt: skip
    assert errors_en(job) == [(7, "金额", "“125.00美元” is an amount in another currency: amounts are imported in yuan "
                                          "(CNY). Convert it to yuan in the ERP.")]
    got = dict(OrderLine.objects.values_list("line_number", "amount_fen"))
    assert got == {1: 12_500, 2: 125_000, 3: -12_500, 4: 12_500, 5: 12_500}
    paid = dict(OrderLine.objects.values_list("line_number", "paid_fen"))
    assert paid[4] == 0 and paid[5] == 12_500


def test_an_excel_csv_in_gb18030_with_currency_formatted_cells_imports(admin_user, xiehe, tmp_path):
    """The same order list saved by Chinese Excel as CSV (GB18030, cells as shown: ￥1,250.00, accounting zero -)."""
    day = (timezone.localdate() - dt.timedelta(days=20)).strftime("%Y/%-m/%-d")
    path = tmp_path / "订单.csv"
    with open(path, "w", encoding="gb18030", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([c.header for c in ORDER_COLUMNS])
        row = line("SO-G", 1, day, xiehe, "P1", "1,000", "￥1.25", amount="￥1,250.00", paid_amount="￥-")
        writer.writerow([row.get(k, "") for k in KEYS])
    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="all")
    assert errors_en(job) == [] and job.created_count == 1
    assert OrderLine.objects.get().amount_fen == 125_000
