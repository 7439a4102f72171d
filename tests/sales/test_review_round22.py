"""Review round 22 (sales): what key-account managers, reps and analysts met in order files, credit and pages."""

from __future__ import annotations

import datetime as dt

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


# --- a customer named by both codes, its external id padded or kept text ------------------------------------


def test_an_exported_customer_with_both_codes_and_an_external_id_with_a_leading_zero_reads_back_unchanged(
    client_for, run_import, admin_user, tmp_path, xiehe
):
    """The export keeps an external id such as 00123 text with a leading tab (Excel would drop its 0s). Read back
    with the credit code beside it, the tab stayed on the id, so the row's two codes 'did not belong to the same
    customer': every line of such a customer was refused when the export was imported again."""
    xiehe.external_id = "00123"
    xiehe.save(update_fields=["external_id"])
    run_import([line("SO-Z", 1, days_ago(20).isoformat(), xiehe, "P1", 2, "10")])
    body = b"".join(client_for("manager").get("/sales/orders/export.csv").streaming_content).decode("utf-8-sig")
    assert "\t00123" in body
    path = tmp_path / "again.csv"
    path.write_text(body, encoding="utf-8")

    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="all")

    assert errors_en(job) == []
    assert (job.unchanged_count, job.updated_count, job.created_count) == (1, 0, 0)


def test_an_external_id_padded_with_spaces_beside_the_credit_code_finds_its_customer(run_import, xiehe):
    """An ERP's fixed-width customer code (SQL Server's CHAR column, as U8 exports it: 'C001  ') given with the
    credit code was refused as naming another customer; alone it was read as C001."""
    xiehe.external_id = "C001"
    xiehe.save(update_fields=["external_id"])
    day = days_ago(5).isoformat()

    job = run_import([
        line("SO-P", 1, day, xiehe, "P1", 1, "10", external_id="C001  "),
        line("SO-P", 2, day, "", "P1", 1, "10", external_id="C001  "),
    ])  # fmt: skip

    assert errors_en(job) == []
    assert list(OrderLine.objects.values_list("institution_id", flat=True)) == [xiehe.pk, xiehe.pk]


# --- dates as Excel's Chinese long date writes them -------------------------------------------------------


def test_an_order_date_in_excels_chinese_long_date_format_or_with_a_time_is_read(run_import, xiehe):
    """A CSV saved from a date column formatted as Excel's 长日期 holds 2026年3月5日星期四, and one with a time
    2026年3月5日 10:30: both were 'not a date', so every row of such a file was refused."""
    d = days_ago(10)
    weekday = "一二三四五六日"[d.weekday()]
    cn = f"{d.year}年{d.month}月{d.day}日"
    job = run_import([
        line("SO-L", 1, f"{cn}星期{weekday}", xiehe, "P1", 1, "10"),
        line("SO-L", 2, f"{cn} 星期{weekday}", xiehe, "P1", 1, "10"),
        line("SO-L", 3, f"{cn} 10:30", xiehe, "P1", 1, "10"),
        line("SO-L", 4, f"{d.year}/{d.month}/{d.day} 周{weekday}", xiehe, "P1", 1, "10", paid_date=f"{cn}（星期{weekday}）"),
        line("SO-L", 5, f"{cn}星期八", xiehe, "P1", 1, "10"),
    ])  # fmt: skip

    assert errors_en(job) == [(6, "订单日期", f"“{cn}星期八” is not a date. Write dates like 1975-03-15.")]
    got = dict(OrderLine.objects.values_list("line_number", "order_date"))
    assert got == {1: d, 2: d, 3: d, 4: d}
    assert OrderLine.objects.get(line_number=4).paid_date == d


# --- money written with 人民币 -----------------------------------------------------------------------------


def test_an_amount_written_with_renminbi_is_read(run_import, xiehe):
    """人民币1,250.00 (how some ERPs and hand-made lists write the currency) was refused, and with a misleading
    reason: that a comma only separates thousands."""
    day = days_ago(5).isoformat()
    job = run_import([
        line("SO-R", 1, day, xiehe, "P1", 100, "12.50", amount="人民币1,250.00"),
        line("SO-R", 2, day, xiehe, "P1", 10, "人民币 12.50", paid_date=day, paid_amount="人民币125元"),
    ])  # fmt: skip

    assert errors_en(job) == []
    assert dict(OrderLine.objects.values_list("line_number", "amount_fen")) == {1: 125_000, 2: 12_500}
    assert OrderLine.objects.get(line_number=2).paid_fen == 12_500


# --- a department's order lines --------------------------------------------------------------------------


def test_the_order_lines_of_a_department_are_listed_from_its_customer_page(run_import, xiehe, client_for):
    """A department with its own ERP customer code (心内科 buying for itself) shows its lines on its Customer 360
    page, whose link 'All order lines of this customer' opened the list with 'Select a valid choice' under the
    customer and no line: the list's customer filter knew no department."""
    from pharmacrm.customers.models import Institution

    dept = Institution.objects.get(parent=xiehe)
    dept.external_id = "D-001"
    dept.save(update_fields=["external_id"])
    run_import([
        line("SO-D", 1, days_ago(10).isoformat(), "", "P1", 1, "10", external_id="D-001"),
        line("SO-H", 1, days_ago(10).isoformat(), xiehe, "P1", 1, "10"),
    ])  # fmt: skip
    client = client_for("kam")
    block = client.get(f"/sales/customers/{dept.pk}/purchases/").content.decode()
    assert f"/sales/orders/?customer={dept.pk}" in block

    page = client.get(f"/sales/orders/?customer={dept.pk}")

    assert page.status_code == 200 and not page.context["invalid"]
    assert [r.order_number for r in page.context["rows"]] == ["SO-D"]
    assert "北京协和医院 › 心内科" in page.content.decode()
    # the picker still offers hospitals, not every department, when none is chosen
    choices = [label for _v, label in client.get("/sales/orders/").context["form"].fields["customer"].widget.choices]
    assert "北京协和医院" in choices and not any("心内科" in str(label) for label in choices)


# --- the batch trace of a recall ---------------------------------------------------------------------------


def test_the_batch_trace_lists_every_customer_who_bought_the_batch_however_many_lines_came_before(
    run_import, xiehe, huashan
):
    """A recall traces a batch to every customer who received it. The orders' part read the batch's first 5,000
    order lines only: a customer who bought the batch after a big distributor's 5,000 lines was left out of the
    trace, silently. Each customer is listed now, with its orders (the first 20)."""
    from pharmacrm.safety import services as safety

    early, late = days_ago(60).isoformat(), days_ago(5).isoformat()
    big = [line(f"SO-{n // 1000}", n % 1000 + 1, early, xiehe, "P1", 1, "10", batch_number="25A001")
           for n in range(5001)]  # fmt: skip
    job = run_import([*big, line("SO-HS", 1, late, huashan, "P1", 1, "10", batch_number="25a001")])
    assert job.created_count == 5002

    trace = safety.batch_trace("25A001")

    assert [row["institution"] for row in trace] == [xiehe, huashan]
    assert trace[0]["sources"] == ["SO-0", "SO-1", "SO-2", "SO-3", "SO-4", "SO-5"]
    assert trace[1]["sources"] == ["SO-HS"] and trace[1]["first"].date() == days_ago(5)


# --- a unit price with more than four places and no amount ------------------------------------------------


def test_a_line_without_an_amount_costs_quantity_times_the_unit_price_the_erp_gave(run_import, xiehe):
    """A price before tax as the ERP keeps it (88.495575, six places) is stored rounded to four, and the amount of a
    line without one was computed from the rounded price: 10,000 × 88.4956 = 884,956.00 where the ERP charged
    884,955.75. The customer's payment of 884,955.75 left 0.25 open for ever — an open item that fell overdue and
    spoiled the credit status — and a payment of 884,955.76 … was refused as more than the amount."""
    day = days_ago(20).isoformat()
    job = run_import([
        line("SO-6", 1, day, xiehe, "P1", 10_000, "88.495575", paid_date=day, paid_amount="884955.75"),
        line("SO-6", 2, day, xiehe, "P1", 1000, "1.23444", paid_date=day, paid_amount="1234.44"),
    ])  # fmt: skip

    assert errors_en(job) == []
    got = {n: (str(p), a, o) for n, p, a, o in
           OrderLine.objects.values_list("line_number", "unit_price", "amount_fen", "outstanding_fen")}  # fmt: skip
    assert got == {1: ("88.4956", 88_495_575, 0), 2: ("1.2344", 123_444, 0)}
    assert run_import([
        line("SO-6", 1, day, xiehe, "P1", 10_000, "88.495575", paid_date=day, paid_amount="884955.75"),
    ]).unchanged_count == 1  # fmt: skip


# --- an approval number typed with spaces or in full width -----------------------------------------------------


def test_an_approval_number_typed_with_spaces_or_in_full_width_links_the_product_code(run_import, xiehe, huashan):
    """国药准字 H2024 9871 (spaced as the packaging prints it), in lower case or typed in full width linked no catalogue
    product: the import said the codes were not in the catalogue though the file gave their approval numbers, and
    the safety batch trace narrowed to the product left out the customers who bought it under those codes."""
    from pharmacrm.safety import services as safety
    from pharmacrm.sales.models import ProductCode
    from pharmacrm.servicedesk.models import Product

    product = Product.objects.create(
        brand_name="安心宁", generic_name="盐酸氨氯地平片", approval_number="国药准字H20249871"
    )
    day = days_ago(10).isoformat()
    job = run_import([
        line("SO-A", 1, day, xiehe, "YP1001", 1, "10", batch_number="B1", approval_number="国药准字 H2024 9871"),
        line("SO-B", 1, day, huashan, "YP1002", 1, "10", batch_number="B1", approval_number="国药准字ｈ２０２４９８７１"),
    ])  # fmt: skip

    assert errors_en(job) == []
    with translation.override("en"):
        assert not [m for m in importer.job_messages(job) if "not in the product catalogue" in m]
    assert dict(ProductCode.objects.values_list("code", "product")) == {"YP1001": product.pk, "YP1002": product.pk}
    assert [row["institution"] for row in safety.batch_trace("B1", product)] == [xiehe, huashan]


# --- codes typed in full width -------------------------------------------------------------------------------


def test_a_batch_and_product_code_typed_in_full_width_are_stored_as_the_ordinary_characters(
    run_import, xiehe, client_for
):
    """A distributor's hand-made file typed in an input method's full-width mode (批号 ２５Ａ００１, 产品编码 ＹＰ１００１)
    stored the codes so: the safety batch trace of 25A001 — a recall — did not find the customer, and the order list's
    product filter YP1001 found no line."""
    from pharmacrm.safety import services as safety

    job = run_import([
        line("SO-F", 1, days_ago(10).isoformat(), xiehe, "ＹＰ１００１", 1, "10", batch_number="２５Ａ００１"),
    ])  # fmt: skip

    assert errors_en(job) == []
    assert list(OrderLine.objects.values_list("product_code", "batch_number")) == [("YP1001", "25A001")]
    assert [row["institution"] for row in safety.batch_trace("25A001")] == [xiehe]
    page = client_for("manager").get("/sales/orders/?product=YP1001")
    assert [r.order_number for r in page.context["rows"]] == ["SO-F"]


# --- a negative number as SAP writes it ------------------------------------------------------------------------


def test_a_return_exported_from_sap_with_the_sign_after_the_number_is_read(run_import, xiehe):
    """SAP (which many pharmaceutical companies in China run) exports a negative number with its sign after it: a
    return's quantity 10-, amount 1,250.00- and refund 1,250.00- were each 'not a number', and every return of such
    a file was refused."""
    day = days_ago(5).isoformat()
    job = run_import([
        line("SO-S", 1, day, xiehe, "P1", "10-", "125.00", amount="1,250.00-", paid_date=day, paid_amount="1,250.00-"),
        line("SO-S", 2, day, xiehe, "P1", "2", "125.00", amount="250.00", paid_amount="-"),
    ])  # fmt: skip

    assert errors_en(job) == []
    got = {n: (str(q), a, p) for n, q, a, p in OrderLine.objects.values_list("line_number", "quantity", "amount_fen", "paid_fen")}
    assert got == {1: ("-10.000", -125_000, -125_000), 2: ("2.000", 25_000, 0)}
