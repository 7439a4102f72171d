"""Review round 21 (sales): what Chinese users type into order files and what scripts read from the import."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from django.core.management import call_command
from django.utils import timezone, translation

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales.models import OrderLine

from .conftest import line


def days_ago(n: int) -> dt.date:
    return timezone.localdate() - dt.timedelta(days=n)


def errors_en(job: ImportJob) -> list[tuple[int, str, str]]:
    with translation.override("en"):
        return [(e["row"], e["column"], importer.error_text(e)) for e in job.errors]


def full_width(text: str) -> str:
    """What a Chinese input method types in full-width mode: １２５０．００ for 1250.00, －１０ for -10."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# --- money typed with full-width digits; a decimal comma ---------------------------------------------------


def test_money_typed_in_full_width_digits_is_read(run_import, xiehe):
    """１，２５０．００ and a return's －１０, typed in an input method's full-width mode, were "not a number"."""
    day = days_ago(10).isoformat()
    job = run_import([
        line("SO-FW", 1, day, xiehe, "P1", full_width("100"), full_width("12.50"), amount=full_width("1,250.00")),
        line("SO-FW", 2, day, xiehe, "P1", full_width("-10"), "12.50", amount="（１２５．００）"),
        line("SO-FW", 3, day, xiehe, "P1", "10", "12.50", paid_date=day, paid_amount="￥１２５"),
    ])  # fmt: skip
    assert errors_en(job) == []
    got = {n: (str(q), a, p) for n, q, a, p in OrderLine.objects.values_list("line_number", "quantity", "amount_fen", "paid_fen")}
    assert got == {1: ("100.000", 125_000, 0), 2: ("-10.000", -12_500, 0), 3: ("10.000", 12_500, 12_500)}


def test_a_decimal_comma_is_refused_not_read_a_hundred_times_larger(run_import, xiehe):
    """12,50 (a unit price with a decimal comma, as some ERPs export it) was read as 1250 yuan: the comma was
    taken for a thousands separator wherever it stood, and the line imported a hundred times too dear. 1.250,00
    became 1.25. A comma that does not separate thousands is now refused, saying how to write the number."""
    day = days_ago(10).isoformat()
    job = run_import([
        line("SO-DC", 1, day, xiehe, "P1", 10, "12,50"),
        line("SO-DC", 2, day, xiehe, "P1", 1, "1250", amount="1.250,00"),
        line("SO-DC", 3, day, xiehe, "P1", "1,000", "1,250.50", amount="1,250,500.00"),
    ])  # fmt: skip
    message = "“{}”: a comma only separates thousands (1,250.00); write the decimal point as a full stop (12.50)."
    assert errors_en(job) == [(2, "单价", message.format("12,50")), (3, "金额", message.format("1.250,00"))]
    assert list(OrderLine.objects.values_list("line_number", "amount_fen")) == [(3, 125_050_000)]


# --- dates typed in full width, spaced, or as an Excel date-and-time number ---------------------------------


def test_dates_in_full_width_spaced_or_as_an_excel_date_time_number_are_read(run_import, xiehe):
    """２０２６年３月５日 was refused as “a date that does not exist”, 2026 年 3 月 5 日 (spaced as WPS lays it out)
    as no date, and an Excel date-time number (46086.375, a date cell with its time saved as General) too."""
    day = days_ago(40)
    serial = (day - dt.date(1899, 12, 30)).days
    wide = full_width(f"{day.year}") + "年" + full_width(f"{day.month}") + "月" + full_width(f"{day.day}") + "日"
    job = run_import([
        line("SO-D", 1, wide, xiehe, "P1", 1, "10"),
        line("SO-D", 2, f"{day.year} 年 {day.month} 月 {day.day} 日", xiehe, "P1", 1, "10"),
        line("SO-D", 3, f"{serial}.375", xiehe, "P1", 1, "10", paid_date=full_width(day.isoformat())),
    ])  # fmt: skip
    assert errors_en(job) == []
    assert set(OrderLine.objects.values_list("order_date", flat=True)) == {day}
    assert OrderLine.objects.get(line_number=3).paid_date == day


# --- the command line: no such user is exit status 2, not "rows were rejected" ------------------------------


def test_the_command_line_names_an_unknown_user_with_exit_status_2(order_file, xiehe, capsys):
    """`--user wangfang` misspelt (or no administrator at all) ended with exit status 1 — which the documented
    contract gives to "rows were rejected": a nightly ERP script looked for the rejected rows' report of a file
    nothing had read. Like a user who may not import, it is exit status 2 with one line on stderr."""
    path = order_file([line("SO-1", 1, days_ago(3).isoformat(), xiehe, "P1", 1, "10")])

    with pytest.raises(SystemExit) as exit_:
        call_command("import", "orders", str(path), "--user", "wangfang", "--language", "en")

    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == ["wangfang: no such active user"]
    assert not OrderLine.objects.exists()


def test_the_command_line_without_any_administrator_is_exit_status_2(order_file, xiehe, capsys):
    from pharmacrm.core.models import User

    path = order_file([line("SO-1", 1, days_ago(3).isoformat(), xiehe, "P1", 1, "10")])
    User.objects.update(is_active=False)

    with pytest.raises(SystemExit) as exit_:
        call_command("import", "orders", str(path), "--language", "en")

    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "No administrator exists: create one, or name a user with --user."
    ]


# --- the API: a line's unknown key is refused, not dropped -------------------------------------------------


def test_an_api_line_with_an_unknown_key_is_refused_not_imported_without_it(api_for, xiehe):
    """An ERP integration sent the payment as "payment_date" (the template's key is paid_date): the key was ignored
    and the paid line imported as unpaid — answered "created 1", an arrears the customer did not have. The
    line is now refused (400) naming the key under its position, and nothing is imported."""
    day = days_ago(12).isoformat()
    good = {"order_number": "API-U", "line_number": 1, "order_date": day, "credit_code": xiehe.credit_code,
            "product_code": "P1", "quantity": 2, "unit_price": "10.50"}  # fmt: skip
    lines = [good, {**good, "line_number": 2, "payment_date": day, "paid_amount": "21.00"}]

    with translation.override("en"):
        response = api_for("admin").post("/api/v1/sales/orders/", {"lines": lines}, format="json")

    assert response.status_code == 400
    message = response.json()["lines"]["2"]["payment_date"][0]
    assert message.startswith("Unknown field. The fields of an order line are: order_number, line_number,")
    assert "paid_date" in message
    assert not OrderLine.objects.exists()


# --- the order list: codes typed in full width --------------------------------------------------------------


def test_the_order_list_finds_codes_typed_in_full_width(client_for, api_for, run_import, xiehe):
    """ＸＳ２０２６－０３ (the order number typed with the input method still in full-width mode) found nothing, nor
    did ｙｐ１００１ for the product or ａ２６０１１２ for the batch, though the safety batch trace finds that batch."""
    day = days_ago(20).isoformat()
    run_import([
        line("XS2026-0301", 1, day, xiehe, "YP1001", 1, "10", batch_number="A260112"),
        line("XS2026-0301", 2, day, xiehe, "YP1003", 1, "10"),
        line("XT2026-0302", 1, day, xiehe, "YP1001", 1, "10"),
    ])  # fmt: skip
    client = client_for("manager")

    def shown(**params) -> set[str]:
        page = client.get("/sales/orders/", params, HTTP_ACCEPT_LANGUAGE="en").content.decode()
        return set(re.findall(r'<td class="mono nowrap">([^<]+)</td>', page))

    assert shown(order=full_width("xs2026-03")) == {"XS2026-0301/1", "XS2026-0301/2"}
    assert shown(product=full_width("yp1001")) == {"XS2026-0301/1", "XT2026-0302/1"}
    assert shown(batch=full_width("a260112")) == {"XS2026-0301/1"}
    data = api_for("manager").get("/api/v1/order-lines/", {"order_number": full_width("XT2026")}).json()
    assert [(r["order_number"], r["line_number"]) for r in data["results"]] == [("XT2026-0302", 1)]


# --- the customer's credit code, grouped or in full width ---------------------------------------------------


def test_a_credit_code_grouped_with_spaces_or_in_full_width_finds_its_customer(run_import, xiehe):
    """The customer record keeps its credit code normalised (full width made ASCII, spaces dropped), as the
    customer import and form take it: the order import compared the cell as typed, so a code copied from a
    licence (9111 0108 …, grouped in fours) or typed in full width was “No customer has the credit code”."""
    day = days_ago(10).isoformat()
    code = xiehe.credit_code
    grouped = " ".join(code[i : i + 4] for i in range(0, 18, 4))
    job = run_import([
        line("SO-CC", 1, day, grouped, "P1", 1, "10"),
        line("SO-CC", 2, day, full_width(code.lower()), "P1", 1, "10"),
    ])  # fmt: skip
    assert errors_en(job) == []
    assert list(OrderLine.objects.values_list("institution_id", flat=True)) == [xiehe.pk, xiehe.pk]


# --- the export: a batch or product code Excel would read as a number in scientific notation ----------------


def test_an_exported_batch_like_21E005_stays_text_in_excel_and_reads_back_unchanged(
    client_for, run_import, admin_user, tmp_path, xiehe
):
    """Excel opens the export's batch 21E005 (a common lot number) as the number 2.10E+06 and saves it back as
    2100000: the list showed a batch the safety trace would never find, and the corrected file re-imported the
    line with it. The cell now starts with a tab, as long digit strings' do, which keeps it text."""
    run_import([line("SO-X", 1, days_ago(30).isoformat(), xiehe, "1E10", 2, "10", batch_number="21E005")])
    body = b"".join(client_for("manager").get("/sales/orders/export.csv").streaming_content).decode("utf-8-sig")
    row = next(r for r in csv.reader(io.StringIO(body)) if r and r[0] == "SO-X")
    assert "\t21E005" in row and "\t1E10" in row
    path = tmp_path / "again.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(csv.reader(io.StringIO(body)))

    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="all")

    assert (job.unchanged_count, job.updated_count, job.error_count) == (1, 0, 0)
    assert OrderLine.objects.get().batch_number == "21E005"


# --- an order list exported from a Chinese ERP, with its own column names ----------------------------------


def test_an_order_list_with_the_usual_erp_column_names_imports(admin_user, xiehe, tmp_path):
    """用友 U8 and 金蝶 export 单据编号, 单据日期, 客户编码, 存货编码, 存货名称, 批次: the file was refused as missing 产品编码
    (and the customer column), though every column it needs was there under the ERP's name."""
    xiehe.external_id = "C0001"
    xiehe.save(update_fields=["external_id"])
    day = days_ago(15).isoformat()
    path = tmp_path / "销售订单.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["单据编号", "行号", "单据日期", "客户编码", "客户名称", "存货编码", "存货名称", "批次", "数量",
                         "含税单价", "价税合计"])  # fmt: skip
        writer.writerow(["XS0001", "1", day, "C0001", "北京协和医院", "YP1001", "阿莫西林胶囊", "21E005", "10", "12.50",
                         "125.00"])  # fmt: skip

    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="all")

    assert errors_en(job) == [] and job.created_count == 1
    got = OrderLine.objects.get()
    assert (got.order_number, got.institution_id, got.product_code, got.product_name, got.batch_number) == (
        "XS0001", xiehe.pk, "YP1001", "阿莫西林胶囊", "21E005"
    )


# --- date and time as a database or an integration writes it ------------------------------------------------


def test_a_date_and_time_with_milliseconds_or_in_utc_is_the_day_in_china(api_for, run_import, xiehe):
    """U8 runs on SQL Server, whose export writes 2026-03-05 00:00:00.000: every row was “not a date”. An
    integration sending ISO 8601 in UTC (2026-03-04T16:00:00Z, midnight in Beijing) was refused too; its day is
    the day in China, 3月5日, not the UTC one."""
    day = days_ago(40)
    before = day - dt.timedelta(days=1)
    job = run_import([
        line("SO-T", 1, f"{day.isoformat()} 00:00:00.000", xiehe, "P1", 1, "10"),
        line("SO-T", 2, f"{day.year}/{day.month}/{day.day} 9:30:00.000", xiehe, "P1", 1, "10"),
    ])  # fmt: skip
    assert errors_en(job) == []
    lines = [{"order_number": "API-T", "line_number": 1, "order_date": f"{before.isoformat()}T16:00:00Z",
              "credit_code": xiehe.credit_code, "product_code": "P1", "quantity": 1, "unit_price": "10",
              "paid_date": f"{day.isoformat()}T09:15:00+08:00"}]  # fmt: skip
    data = api_for("admin").post("/api/v1/sales/orders/", {"lines": lines}, format="json").json()
    assert (data["created"], data["errors"]) == (1, [])
    assert set(OrderLine.objects.values_list("order_date", flat=True)) == {day}
    assert OrderLine.objects.get(order_number="API-T").paid_date == day
