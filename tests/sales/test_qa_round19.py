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


# --- 2. the refund of a return can be imported ----------------------------------------------------------------


def test_the_refund_of_a_return_is_imported_with_its_amount(run_import, xiehe, client_for):
    """An ERP writes the money paid back on a return as a negative paid amount: it was refused ("cannot be
    negative"), and the same refund written positive was "larger than the line amount"."""
    day, refunded = days_ago(40), days_ago(10)
    rows = [
        line("TH-1", 1, day, xiehe, "P1", -10, "32.50", amount="-325.00", paid_date=refunded, paid_amount="-325.00"),
        line("TH-1", 2, day, xiehe, "P1", -10, "32.50", paid_date=refunded, paid_amount="-100"),  # partly refunded
        line("TH-1", 3, day, xiehe, "P1", -10, "32.50", paid_date=refunded),  # a refund date alone: in full
        line("TH-1", 4, day, xiehe, "P1", -10, "32.50"),  # not refunded yet
        line("TH-1", 5, day, xiehe, "P1", -10, "32.50", paid_date=refunded, paid_amount="325.00"),
        line("TH-1", 6, day, xiehe, "P1", -10, "32.50", paid_date=refunded, paid_amount="-400"),
        line("SO-1", 1, day, xiehe, "P1", 10, "32.50", paid_date=refunded, paid_amount="-325.00"),
    ]  # fmt: skip
    job = run_import(rows)
    assert errors_en(job) == [
        (6, "付款金额", "This line is a return (its amount is negative): give the amount refunded to the customer "
                        "as a negative number, from -325.00 to 0."),
        (7, "付款金额", "The refunded amount is larger than the amount returned."),
        (8, "付款金额", "This value cannot be negative."),
    ]  # fmt: skip
    stored = dict(OrderLine.objects.values_list("line_number", "paid_fen"))
    assert stored == {1: -32_500, 2: -10_000, 3: -32_500, 4: 0}
    assert set(OrderLine.objects.values_list("outstanding_fen", flat=True)) == {0}  # a return is never owed

    # the same file again changes nothing; returns count neither as paid on time nor as late
    assert run_import(rows).unchanged_count == 4
    from pharmacrm.sales import services

    credit = services.credit(xiehe.pk)
    assert (credit.on_time_share, credit.late_lines, credit.outstanding) == (None, 0, 0)
    assert str(credit.paid) == "-750.00"  # what the customer was paid back
    page = text_of(client_for("manager").get("/sales/orders/", HTTP_ACCEPT_LANGUAGE="en"))
    assert "-¥325.00" in page and "-¥100.00" in page  # the sign before the ¥


def test_the_upgrade_brings_refunded_returns_to_the_new_rule(run_import, xiehe):
    """Returns stored with a refund date alone kept 0 as their paid amount: the upgrade gives them the amount
    refunded in full, as the date alone now means, and the same file imported again finds them unchanged."""
    import importlib

    from django.apps import apps

    from pharmacrm.sales.importer import _hashed_values, row_hash
    from pharmacrm.sales.models import RollupDirty

    rows = [line("TH-1", 1, days_ago(40), xiehe, "P1", -10, "32.50", paid_date=days_ago(10))]
    run_import(rows)
    old = {**OrderLine.objects.values().get(), "paid_fen": 0}
    OrderLine.objects.update(paid_fen=0, row_hash=row_hash(_hashed_values(old, xiehe.pk)))  # as stored before
    RollupDirty.objects.all().delete()

    migration = importlib.import_module("pharmacrm.sales.migrations.0006_refunded_returns")
    migration.refund_in_full(apps, None)

    assert OrderLine.objects.get().paid_fen == -32_500
    assert RollupDirty.objects.filter(institution_id=xiehe.pk).count() == 1
    assert run_import(rows).unchanged_count == 1


# --- 3. a window whose returns outweigh its purchases scores 0 for the amount, not below -----------------------


def test_returns_outweighing_purchases_score_no_amount_below_zero(run_import, xiehe, client_for):
    """A customer who bought last year and sent goods back this year has a net amount below zero in the window:
    the amount measure showed -5.00 on a 0–100 scale and took 1.75 points off the other measures."""
    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.choices import ModelKind
    from pharmacrm.keyaccounts.models import Score

    run_import([
        line("SO-1", 1, days_ago(500), xiehe, "P1", 100, "1000", paid_date=days_ago(480)),
        line("TH-1", 1, days_ago(20), xiehe, "P1", -50, "1000", paid_date=days_ago(10)),
    ])  # fmt: skip
    evaluation.run(ModelKind.EVALUATION)
    evaluation.run(ModelKind.CANDIDATE)
    for kind in (ModelKind.EVALUATION, ModelKind.CANDIDATE):
        score = Score.objects.get(institution=xiehe, kind=kind)
        amount = next(c for c in score.components if c["name"] == "amount")
        assert amount["value"] == "0.00" and amount["contribution"] == "0.00"
        assert amount["detail"]["amount"] == "-50000.00"  # the net amount is still shown as it is
    score = Score.objects.get(institution=xiehe, kind=ModelKind.EVALUATION)
    page = text_of(client_for("analyst").get(f"/keyaccounts/evaluations/{score.pk}/", HTTP_ACCEPT_LANGUAGE="en"))
    assert "Purchase amount 0.00 35% 0.00" in page


# --- 4. a return's own order is no purchase order ------------------------------------------------------------


def test_a_returns_own_order_does_not_count_as_a_purchase_order(run_import, xiehe):
    """Goods sent back under their own order number (退货单) counted as an order: the month showed two orders for
    one purchase, and the evaluation's purchase frequency rose with every return."""
    from pharmacrm.sales import rollups, services
    from pharmacrm.sales.models import MonthlyRollup

    day = days_ago(3)
    run_import([line("SO-1", 1, day, xiehe, "P1", 10, "100"), line("SO-1", 2, day, xiehe, "P2", -1, "10")])
    run_import([
        line("TH-1", 1, day, xiehe, "P1", -2, "100"),  # a return of its own
        line("TH-1", 2, day, xiehe, "P2", -1, "100"),
    ])  # fmt: skip
    rollup = MonthlyRollup.objects.get(institution=xiehe)
    assert (rollup.orders, rollup.lines) == (1, 4)
    assert services.totals(xiehe.pk, today=services.month_start(day, -1))["orders"] == 1  # the month once whole
    # a sale added later to the return's order makes it a purchase order; a full recomputation agrees
    run_import([line("TH-1", 3, day, xiehe, "P3", 1, "100")])
    assert MonthlyRollup.objects.get(institution=xiehe).orders == 2
    rollups.mark_dirty([(xiehe.pk, rollup.month)])
    rollups.refresh_dirty()
    assert MonthlyRollup.objects.get(institution=xiehe).orders == 2
    OrderLine.objects.filter(order_number="TH-1", line_number=3).delete()
    rollups.mark_dirty([(xiehe.pk, rollup.month)])
    rollups.refresh_dirty()
    assert MonthlyRollup.objects.get(institution=xiehe).orders == 1


# --- 5. a customer code stored as a number is said to be so ------------------------------------------------------


def test_a_customer_code_stored_as_a_number_is_said_so_not_unknown(admin_user, xiehe, tmp_path, run_import):
    """A credit code typed into a number cell keeps 15 digits: the row was refused as "No customer has the credit
    code 911101080000000000", a code nobody has, and the user looked for a customer that was never missing."""
    from pharmacrm.customers import services as customers

    customers.update_institution(admin_user, xiehe, {"external_id": "100234"}, version=xiehe.version)
    day = days_ago(10).isoformat()
    rows = [
        line("SO-N", 1, day, xiehe, "P1", 1, "10"),
        line("SO-N", 2, day, "", "P1", 1, "10", external_id="100234"),  # an intact number: matched
        line("SO-N", 3, day, "", "P1", 1, "10", external_id="1234567890123456789"),
        line("SO-N", 4, day, xiehe, "P1", 1, "10"),
    ]  # fmt: skip
    path = order_workbook(tmp_path / "numbers.xlsx", rows)
    from openpyxl import load_workbook

    wb = load_workbook(path)
    ws = wb.active
    ws["D2"] = 911101080000000000  # the code typed as a number
    ws["E3"], ws["E4"] = 100234, 1234567890123456789
    wb.save(path)
    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="good")
    stored = ("The cell is stored as a number, which changes codes and phone numbers (digits after the 15th become "
              "0, leading zeros are dropped): format the column as text in Excel, enter the value again and import "
              "the file again.")  # fmt: skip
    assert errors_en(job) == [(2, "客户统一社会信用代码", stored), (4, "客户外部编号", stored)]
    assert sorted(OrderLine.objects.values_list("line_number", flat=True)) == [2, 4]

    # as Excel saves such a cell into a CSV
    job = run_import([line("SO-M", 1, day, "9.1110108E+17", "P1", 1, "10")])
    assert errors_en(job) == [(2, "客户统一社会信用代码", stored)]


# --- 6. nothing fallen due yet is no payment history, not "good" -----------------------------------------------


def test_a_customer_with_nothing_fallen_due_has_no_payment_history(run_import, xiehe, client_for):
    """A new customer's first order, not due yet, showed credit status "Good" on the purchases tab, while its
    evaluation said "no payment history: default 60" for the same facts."""
    from pharmacrm.sales import services

    run_import([line("SO-1", 1, days_ago(5), xiehe, "P1", 10, "100", payment_due=days_ago(-25))])
    credit = services.credit(xiehe.pk)
    assert (credit.status, credit.outstanding, credit.overdue, credit.on_time_share) == ("none", 1000, 0, None)
    page = text_of(client_for("analyst").get(f"/sales/customers/{xiehe.pk}/purchases/", HTTP_ACCEPT_LANGUAGE="en"))
    assert "No payment history" in page and "Good" not in page

    # once a line falls due unpaid, the figures speak
    run_import([line("SO-2", 1, days_ago(40), xiehe, "P1", 1, "100", payment_due=days_ago(10))])
    assert services.credit(xiehe.pk).status == "poor"


# --- 7. a key account's score history is in the order of time ------------------------------------------------


def test_a_key_accounts_score_history_lists_its_periods_in_the_order_of_time(run_import, xiehe, client_for):
    """The drill-down's history sorted by the period's label: a key account's 2026Q1 came above 2026H1, which
    ended three months later (the Customer 360 block sorts by date already)."""
    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.choices import AccountStatus, ModelKind
    from pharmacrm.keyaccounts.models import KeyAccount, Score

    KeyAccount.objects.create(number="KA-2026-0001", institution=xiehe, status=AccountStatus.ACTIVE)
    run_import([line(f"SO-{m}", 1, f"2026-{m:02d}-05", xiehe, "P1", 10, "100") for m in (1, 4, 7)])
    evaluation.run(ModelKind.EVALUATION, as_of=dt.date(2026, 3, 31), key_accounts_only=True)
    evaluation.run(ModelKind.EVALUATION, as_of=dt.date(2026, 6, 30))
    evaluation.run(ModelKind.EVALUATION, as_of=dt.date(2026, 9, 30), key_accounts_only=True)
    latest = Score.objects.get(institution=xiehe, period="2026Q3")
    page = text_of(client_for("analyst").get(f"/keyaccounts/evaluations/{latest.pk}/", HTTP_ACCEPT_LANGUAGE="en"))
    history = page[page.index("Score history"):]
    assert re.findall(r"2026(?:Q\d|H\d) 2026-\d\d-\d\d", history) == [
        "2026Q3 2026-09-30", "2026H1 2026-06-30", "2026Q1 2026-03-31",
    ]


def test_an_invoice_or_order_number_that_lost_digits_as_a_number_is_refused(admin_user, xiehe, tmp_path, run_import):
    """A 20-digit invoice number (数电发票) typed into a number cell keeps 15 digits: it was stored ending in zeros,
    and from a CSV as "2.40111E+19" — silently, and several invoices became one."""
    day = days_ago(10).isoformat()
    rows = [line("X", n, day, xiehe, "P1", 1, "10") for n in (1, 2, 3)]
    path = order_workbook(tmp_path / "numbers.xlsx", rows)
    from openpyxl import load_workbook

    wb = load_workbook(path)
    ws = wb.active
    ws["A2"], ws["A3"], ws["A4"] = 2026030001, 2026030002, 2026030003  # order numbers as numbers: intact
    ws["N3"] = 24011100000000012345  # the invoice number typed as a number
    ws["J4"] = 1.5e17  # a batch number too long for a number cell
    wb.save(path)
    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="good")
    assert [(r, c) for r, c, _t in errors_en(job)] == [(3, "发票号"), (4, "批号")]
    assert "stored as a number" in errors_en(job)[0][2]
    assert list(OrderLine.objects.values_list("order_number", "line_number")) == [("2026030001", 1)]

    job = run_import([
        line("SO-C", 1, day, xiehe, "P1", 1, "10", invoice_number="2.40111E+19"),
        line("2.02603E+18", 1, day, xiehe, "P1", 1, "10"),
        line("SO-C", 2, day, xiehe, "P1", 1, "10", batch_number="21E005"),  # a batch code, not a number
    ])  # fmt: skip
    assert [(r, c) for r, c, _t in errors_en(job)] == [(2, "发票号"), (3, "订单号")]
    assert OrderLine.objects.get(order_number="SO-C").batch_number == "21E005"
