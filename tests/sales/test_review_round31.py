"""Review round 31 (sales): order files as ERPs really export them — a currency column, amounts in another currency."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal

from django.utils import timezone, translation

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales.models import MonthlyRollup, OrderLine

from .conftest import KEYS, line


def errors_en(job: ImportJob) -> list[tuple[int, str, str]]:
    with translation.override("en"):
        return [(e["row"], e["column"], importer.error_text(e)) for e in job.errors]


def day(back: int = 20) -> str:
    return (timezone.localdate() - dt.timedelta(days=back)).isoformat()


# --- a currency column ---------------------------------------------------------------------------------------------


def test_a_line_in_another_currency_is_refused_rather_than_booked_as_yuan(admin_user, xiehe, tmp_path):
    """用友 and 金蝶 export the order's currency (币种, 币别) beside plain amounts. The column was ignored ("not recognised")
    and a line of 1,000.00 US dollars was imported as 1,000.00 yuan: purchases, credit and scores counted it."""
    headers = importer.template_headers(ImportJob.Target.ORDERS)
    path = tmp_path / "销售订单.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*headers, "币种"])
        for number, currency in ((1, "人民币"), (2, "CNY"), (3, ""), (4, "USD"), (5, "港币"), (6, "人民币(RMB)")):
            row = line("SO-FX", number, day(), xiehe, "P1", 10, "100.00", amount="1000.00")
            writer.writerow([*(row.get(k, "") for k in KEYS[: len(headers)]), currency])

    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="good")

    assert errors_en(job) == [
        (5, "币种", "This line is in “USD”, but amounts are imported in yuan (CNY): convert the line to yuan in the "
                  "ERP, or leave it out of the file."),
        (6, "币种", "This line is in “港币”, but amounts are imported in yuan (CNY): convert the line to yuan in the "
                  "ERP, or leave it out of the file."),
    ]  # fmt: skip
    assert sorted(OrderLine.objects.values_list("line_number", flat=True)) == [1, 2, 3, 6]
    assert MonthlyRollup.objects.get(institution=xiehe).amount_fen == 400_000
    with translation.override("en"):
        assert not any("币种" in m for m in importer.job_messages(job))  # not "ignored" any more


def test_an_amount_written_in_another_currency_says_so(run_import, xiehe):
    """$1,250.00 was refused as a decimal comma ("write the decimal point as a full stop"), which it is not; USD 125.00
    and 125.00美元 as "not a number". Each now says what it is: an amount in another currency."""
    job = run_import([
        line("SO-D", 1, day(), xiehe, "P1", 100, "12.50", amount="$1,250.00"),
        line("SO-D", 2, day(), xiehe, "P1", 10, "USD 12.50"),
        line("SO-D", 3, day(), xiehe, "P1", 10, "12.50", amount="125.00美元"),
        line("SO-D", 4, day(), xiehe, "P1", 10, "12.50", amount="￥125.00"),
    ])  # fmt: skip

    said = "is an amount in another currency: amounts are imported in yuan (CNY). Convert it to yuan in the ERP."
    assert errors_en(job) == [
        (2, "金额", f"“$1,250.00” {said}"), (3, "单价", f"“USD 12.50” {said}"), (4, "金额", f"“125.00美元” {said}"),
    ]  # fmt: skip
    assert list(OrderLine.objects.values_list("line_number", flat=True)) == [4]


def test_the_api_refuses_a_line_in_another_currency(api_for, xiehe):
    """An integration may send the ERP's currency with each line: a line in dollars is refused by its position."""
    lines = [
        {"order_number": "API-FX", "line_number": n, "order_date": day(), "credit_code": xiehe.credit_code,
         "product_code": "P1", "quantity": 2, "unit_price": 10.5, "currency": currency}
        for n, currency in ((1, "CNY"), (2, "USD"))
    ]  # fmt: skip

    data = api_for("admin").post("/api/v1/sales/orders/", {"lines": lines}, format="json").json()

    assert (data["created"], data["rejected"]) == (1, 1)
    assert [(e["row"], e["column"], e["code"], e["value"]) for e in data["errors"]] == [
        (2, "currency", "foreign_currency", "USD")
    ]
    assert list(OrderLine.objects.values_list("line_number", flat=True)) == [1]


# --- a line paid in part by its due date ---------------------------------------------------------------------------


def test_what_a_line_had_paid_by_its_due_date_counts_as_paid_on_time(run_import, xiehe, api_for):
    """A line paid in part by its due date counted nowhere in the share paid on time. 9,999.75 of 10,000.00 paid on
    time (the 0.25 left an ERP's rounding difference) showed 0.0 % paid on time — while a line paid in part after
    its due date counted its payment as paid late; and an instalment paid on time, the rest not yet due, showed
    "No payment history"."""
    from decimal import Decimal

    from pharmacrm.sales import services

    today = timezone.localdate()
    ordered, due = (today - dt.timedelta(days=60)).isoformat(), (today - dt.timedelta(days=30)).isoformat()
    paid = (today - dt.timedelta(days=31)).isoformat()
    job = run_import([
        line("SO-P", 1, ordered, xiehe, "P1", 1, "10000", payment_due=due, paid_date=paid, paid_amount="9999.75"),
        line("SO-P", 2, ordered, xiehe, "P2", 1, "10000", payment_due=(today + dt.timedelta(days=10)).isoformat()),
    ])  # fmt: skip
    assert job.error_count == 0, job.errors

    c = services.credit(xiehe.pk)
    assert c.on_time_share == Decimal("1.0000")  # 9,999.75 / (9,999.75 + 0.25 overdue), rounded
    assert (c.on_time_percent, c.overdue, c.status) == (Decimal("100.0"), Decimal("0.25"), "good")
    data = api_for("kam").get(f"/api/v1/sales/customers/{xiehe.pk}/purchases/").json()["credit"]
    assert (data["on_time_share"], data["status"]) == ("1.0000", "good")


def test_an_instalment_paid_on_time_is_payment_history(run_import, xiehe):
    from decimal import Decimal

    from pharmacrm.sales import services

    today = timezone.localdate()
    ordered = (today - dt.timedelta(days=20)).isoformat()
    job = run_import([
        line("SO-I", 1, ordered, xiehe, "P1", 1, "10000", payment_due=(today + dt.timedelta(days=40)).isoformat(),
             paid_date=ordered, paid_amount="3000"),
    ])  # fmt: skip
    assert job.error_count == 0, job.errors

    c = services.credit(xiehe.pk)
    assert (c.on_time_share, c.status, c.outstanding) == (Decimal("1.0000"), "good", Decimal("7000.00"))


def test_upgrading_recomputes_the_months_of_lines_paid_in_part(run_import, xiehe):
    """Migration sales 0009 marks the months holding a line paid in part for the refresh, which gives them the
    amount paid on time they now count; the other months are left alone."""
    import importlib
    from types import SimpleNamespace

    from django.apps import apps
    from django.db import connection

    from pharmacrm.sales import rollups
    from pharmacrm.sales.models import RollupDirty

    migration = importlib.import_module("pharmacrm.sales.migrations.0009_part_paid_on_time")
    job = run_import([
        line("SO-U", 1, "2025-03-05", xiehe, "P1", 1, "100", payment_due="2025-04-04", paid_date="2025-04-01",
             paid_amount="60"),
        line("SO-V", 1, "2025-05-05", xiehe, "P1", 1, "100", payment_due="2025-06-04", paid_date="2025-06-01"),
    ])  # fmt: skip
    assert job.error_count == 0, job.errors
    MonthlyRollup.objects.filter(month=dt.date(2025, 3, 1)).update(on_time_fen=0)  # as the rule before counted it

    migration.mark(apps, SimpleNamespace(execute=lambda sql: connection.cursor().execute(sql)))  # the schema editor
    assert list(RollupDirty.objects.values_list("month", flat=True)) == [dt.date(2025, 3, 1)]
    rollups.refresh_dirty()
    assert MonthlyRollup.objects.get(month=dt.date(2025, 3, 1)).on_time_fen == 6000


# --- a report's query conditions above the columns ---------------------------------------------------------------


def test_an_erp_reports_query_conditions_above_the_header_are_passed_over(admin_user, xiehe, tmp_path):
    """用友 and 金蝶 export a report with its title and query conditions above the columns (起始日期：| 2026-03-01 |
    截止日期：| …, several cells). That line was taken for the header row and the file refused as missing every
    required column; only a title of one or two cells was passed over."""
    headers = importer.template_headers(ImportJob.Target.ORDERS)
    path = tmp_path / "销售出库单列表.csv"
    with open(path, "w", encoding="gb18030", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["销售出库单列表"])
        writer.writerow(["起始日期：", "2026-03-01", "截止日期：", "2026-03-31", "制表人：", "张三"])
        writer.writerow([])
        writer.writerow(headers)
        row = line("SO-Q", 1, day(), xiehe, "P1", 10, "12.50")
        writer.writerow([row.get(k, "") for k in KEYS[: len(headers)]])

    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="good")

    assert (job.created_count, job.error_count) == (1, 0)
    assert OrderLine.objects.get().amount_fen == 12_500


def test_a_file_without_any_header_still_names_what_is_missing(admin_user, tmp_path):
    """Lines that name no column all through (not an order file): refused as missing the required columns, as before."""
    import pytest
    from django.core.exceptions import ValidationError

    path = tmp_path / "other.csv"
    path.write_text("".join(f"a{i},b{i},c{i}\n" for i in range(8)), encoding="utf-8")

    with pytest.raises(ValidationError) as refused, translation.override("en"):
        importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="good")
    with translation.override("en"):
        assert "Required columns are missing" in " ".join(refused.value.messages)


# --- Excel's "Unicode text" ------------------------------------------------------------------------------------------


def test_excels_unicode_text_imports_like_the_csv(admin_user, xiehe, tmp_path):
    """Excel's "Unicode text" (Unicode 文本: UTF-16 with its byte-order mark, tab-separated, CRLF), as Excel saves a sheet
    for an ERP, was refused ("save it as CSV in UTF-8"). It is read as the CSV it is: names with 上 (whose UTF-16
    holds a line-feed byte) included."""
    headers = importer.template_headers(ImportJob.Target.ORDERS)
    rows = [line("SO-U", n, day(), xiehe, "P1", 10, "12.50", product_name="上海制药 注射液") for n in (1, 2)]
    path = tmp_path / "订单.csv"
    with open(path, "w", encoding="utf-16", newline="") as fh:
        fh.write("销售出库单（上海）\r\n")
        fh.write("\t".join(headers) + "\r\n")
        for row in rows:
            fh.write("\t".join(row.get(k, "") for k in KEYS[: len(headers)]) + "\r\n")

    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="good")

    assert (job.created_count, job.error_count, job.total_rows) == (2, 0, 2)
    assert set(OrderLine.objects.values_list("product_name", flat=True)) == {"上海制药 注射液"}
    again = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="good")
    assert (again.created_count, again.unchanged_count) == (0, 2)


def test_a_nul_character_in_unicode_text_rejects_its_row_only(admin_user, xiehe, tmp_path):
    headers = importer.template_headers(ImportJob.Target.ORDERS)
    rows = [line("SO-N", 1, day(), xiehe, "P1", 10, "12.50", product_name="坏\x00名"),
            line("SO-N", 2, day(), xiehe, "P1", 10, "12.50")]  # fmt: skip
    path = tmp_path / "订单.csv"
    with open(path, "w", encoding="utf-16", newline="") as fh:
        fh.write("\t".join(headers) + "\r\n")
        for row in rows:
            fh.write("\t".join(row.get(k, "") for k in KEYS[: len(headers)]) + "\r\n")

    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="good")

    assert (job.created_count, job.error_count) == (1, 1)
    assert [e["row"] for e in job.errors] == [2]


# --- a report's totals rows ------------------------------------------------------------------------------------------


def test_a_reports_totals_rows_are_passed_over_and_named(admin_user, xiehe, tmp_path):
    """用友 and 金蝶 end an exported order list with a 合计 line (and Excel's subtotals put 小计 lines between orders):
    sums under 数量 and 金额, no line number, date or customer. Each was rejected for every column it lacks, every time
    the ERP's file was imported, and an all-or-nothing import of it was refused whole."""
    headers = importer.template_headers(ImportJob.Target.ORDERS)
    index = {key: i for i, key in enumerate(KEYS[: len(headers)])}

    def totals(label: str, quantity: str, amount: str, where: str = "order_number") -> list[str]:
        cells = [""] * len(headers)
        cells[index[where]], cells[index["quantity"]], cells[index["amount"]] = label, quantity, amount
        return cells

    path = tmp_path / "销售订单列表.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(headers)
        for n in (1, 2):
            row = line("SO-T", n, day(), xiehe, "P1", 10, "12.50", amount="125.00")
            writer.writerow([row.get(k, "") for k in KEYS[: len(headers)]])
        writer.writerow(totals("小计", "20", "250.00"))
        row = line("SO-U", 1, day(), xiehe, "P2", 1, "100")
        writer.writerow([row.get(k, "") for k in KEYS[: len(headers)]])
        writer.writerow(totals("合计：", "21", "350.00", where="customer_name"))

    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="all")

    assert (job.status, job.created_count, job.error_count) == (ImportJob.Status.DONE, 3, 0)
    with translation.override("en"):
        assert "Rows of totals (合计, 小计) were passed over: rows 4, 6." in importer.job_messages(job)
    assert MonthlyRollup.objects.get(institution=xiehe).amount_fen == 35_000


def test_a_row_labelled_total_but_carrying_a_line_is_still_checked(run_import, xiehe):
    """Only a line without line number, date and customer is a totals row: an order line whose product is called
    合计 is checked (and rejected for its bad quantity) as any other."""
    job = run_import([line("SO-X", 1, day(), xiehe, "P1", "x", "12.50", product_name="合计")])

    assert (job.created_count, job.error_count) == (0, 1)


# --- prices before and with tax ---------------------------------------------------------------------------------------


def test_an_order_list_with_prices_before_and_with_tax_reads_those_with_tax(admin_user, xiehe, tmp_path):
    """金蝶 exports an order list with the price and amount before tax and with it (单价, 含税单价, 金额, 价税合计). The file
    was refused: 单价 and 含税单价 "appear more than once". The customer pays the price with tax: it is read, and the
    columns before tax are ignored, saying so."""
    path = tmp_path / "销售订单序时簿.csv"
    with open(path, "w", encoding="gb18030", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["单据编号", "行号", "日期", "客户统一社会信用代码", "存货编码", "数量", "单价", "含税单价", "金额",
                         "税额", "价税合计"])  # fmt: skip
        writer.writerow(["XSDD000123", "1", day(), xiehe.credit_code, "YP-1", "10", "88.50", "100.00", "885.00", "115.00",
                         "1,000.00"])  # fmt: skip

    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="all")

    assert (job.created_count, job.error_count) == (1, 0)
    stored = OrderLine.objects.get()
    assert (stored.unit_price, stored.amount_fen) == (Decimal("100.0000"), 100_000)
    with translation.override("en"):
        assert "These columns were not recognised and were ignored: 单价、金额、税额." in importer.job_messages(job)


def test_two_copies_of_a_column_without_a_preferred_one_are_still_refused(admin_user, xiehe, tmp_path):
    import pytest
    from django.core.exceptions import ValidationError

    path = tmp_path / "orders.csv"
    headers = importer.template_headers(ImportJob.Target.ORDERS)
    path.write_text(",".join([*headers, "金额(元)"]) + "\n" + ",".join(["x"] * (len(headers) + 1)) + "\n", encoding="utf-8")

    with pytest.raises(ValidationError) as refused:
        importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="all")
    assert "金额 / 金额(元)" in " ".join(refused.value.messages)


# --- a worker stopped after the last chunk ---------------------------------------------------------------------------


def test_the_customers_of_an_import_whose_worker_stopped_are_scored_again(
    run_import, xiehe, monkeypatch, huey_immediate, django_capture_on_commit_callbacks
):
    """The worker stopped after the import's chunks were committed, before the evaluation's update was queued: the job
    was marked interrupted and its customers kept their old scores — importing the file again, as its page advises,
    finds every line unchanged and re-scores no one. Marking the job interrupted now scores them again."""
    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.choices import ModelKind
    from pharmacrm.keyaccounts.models import Score
    from pharmacrm.sales import importer as orders

    from .conftest import today_minus

    run_import([line("SO-1", 1, today_minus(40), xiehe, "P1", 10, "100")])
    evaluation.run(ModelKind.EVALUATION)
    before = Score.objects.get(kind=ModelKind.EVALUATION, institution=xiehe)
    with monkeypatch.context() as stopped:
        stopped.setattr(orders, "_evaluate_after_import", lambda robust=False: None)  # the worker is gone by then
        job = run_import([line("SO-2", 1, today_minus(20), xiehe, "P1", 100, "100")])
    # the job row as the stopped worker left it: running, its chunk committed, no heartbeat for an hour
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.RUNNING, finished_at=None, heartbeat_at=timezone.now() - dt.timedelta(hours=1)
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert importer.recover_interrupted() == [job.pk]

    job.refresh_from_db()
    assert (job.status, job.created_count) == (ImportJob.Status.FAILED, 1)
    after = Score.objects.get(kind=ModelKind.EVALUATION, institution=xiehe, period=before.period)
    assert after.run_id != before.run_id and after.score > before.score
