"""The order import: idempotent re-imports, corrected files, dry runs, the two modes, the rejected-rows
report, XLSX files, the command line, a killed import's rollups, merged customers and the batch trace."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import translation
from openpyxl import Workbook

from pharmacrm.customers import importer, normalise
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import ImportJob
from pharmacrm.safety import services as safety
from pharmacrm.sales import rollups
from pharmacrm.sales.importer import row_hash
from pharmacrm.sales.models import MonthlyRollup, OrderLine, ProductCode, RollupDirty
from pharmacrm.servicedesk.models import Product
from tests.concurrency import until_a_lock_is_awaited

from .conftest import KEYS, line, tables

MARCH, APRIL = dt.date(2025, 3, 1), dt.date(2025, 4, 1)


@pytest.fixture
def base_rows(xiehe, huashan):
    """Eight lines: 协和 in March and April 2025, 华山 in March."""
    return [
        line(
            "SO-1", 1, "2025-03-05", xiehe, "P1", 10, "100", payment_due="2025-04-04", paid_date="2025-04-01"
        ),
        line("SO-1", 2, "2025-03-05", xiehe, "P2", 5, "20.5", batch_number="B2503"),
        line("SO-2", 1, "2025-03-20", xiehe, "P1", 3, "100", payment_due="2025-04-19"),
        line(
            "SO-3", 1, "2025-04-02", xiehe, "P3", 2, "250", payment_due="2025-05-02", paid_date="2025-05-20"
        ),
        line("SO-3", 2, "2025-04-02", xiehe, "P1", 1, "100"),
        line("SO-4", 1, "2025-03-10", huashan, "P1", 1, "99.99"),
        line("SO-4", 2, "2025-03-10", huashan, "P2", 4, "10"),
        line("SO-5", 1, "2025-03-28", huashan, "P3", 1, "250", paid_amount="100", paid_date="2025-04-10"),
    ]


def rollup(institution, month) -> MonthlyRollup | None:
    return MonthlyRollup.objects.filter(institution=institution, month=month).first()


def recomputed(institution, month) -> dict:
    """A rollup's figures counted afresh from the stored lines."""
    lines = list(OrderLine.objects.filter(institution=institution, month=month))
    return {
        "amount_fen": sum(x.amount_fen for x in lines), "lines": len(lines),
        "orders": len({x.order_number for x in lines}), "products": len({x.product_code for x in lines}),
        "paid_fen": sum(x.paid_fen for x in lines), "outstanding_fen": sum(x.outstanding_fen for x in lines),
    }  # fmt: skip


def figures(r: MonthlyRollup | None) -> dict | None:
    if r is None:
        return None
    keys = ("amount_fen", "lines", "orders", "products", "paid_fen", "outstanding_fen")
    return {k: getattr(r, k) for k in keys}


def test_a_file_imports_its_lines_with_money_in_fen_and_the_rollups(run_import, base_rows, xiehe, huashan):
    job = run_import(base_rows)

    assert job.status == ImportJob.Status.DONE
    assert (job.created_count, job.updated_count, job.unchanged_count, job.error_count) == (8, 0, 0, 0)
    first = OrderLine.objects.get(order_number="SO-1", line_number=2)
    assert first.institution == xiehe and first.amount_fen == 10250 and first.amount == Decimal("102.50")
    paid = OrderLine.objects.get(order_number="SO-1", line_number=1)
    assert paid.paid_fen == 100000 and paid.outstanding_fen == 0  # a payment date alone: paid in full
    partial = OrderLine.objects.get(order_number="SO-5")
    assert (partial.paid_fen, partial.outstanding_fen) == (10000, 15000)
    assert figures(rollup(xiehe, MARCH)) == recomputed(xiehe, MARCH)
    assert rollup(xiehe, MARCH).amount_fen == 100000 + 10250 + 30000
    assert rollup(huashan, MARCH).orders == 2 and rollup(huashan, MARCH).lines == 3
    assert set(ProductCode.objects.values_list("code", flat=True)) == {"P1", "P2", "P3"}
    assert not RollupDirty.objects.exists()


def test_re_importing_the_same_file_changes_nothing(run_import, base_rows):
    run_import(base_rows)
    before = tables()

    job = run_import(base_rows)

    assert (job.created_count, job.updated_count, job.unchanged_count, job.error_count) == (0, 0, 8, 0)
    assert tables() == before


def test_a_corrected_file_updates_exactly_the_corrected_lines_and_both_customers_rollups(
    run_import, base_rows, xiehe, huashan
):
    run_import(base_rows)
    before = {(x.order_number, x.line_number): x for x in OrderLine.objects.all()}
    untouched_rollup = rollup(huashan, MARCH)
    corrected = [dict(r) for r in base_rows]
    corrected[2]["quantity"] = "4"  # SO-2/1 (协和, March): 300.00 → 400.00
    # SO-3 (April) moves from 协和 to 华山: all its lines (an order belongs to one customer, and a file moving one
    # line of it alone is refused)
    corrected[3]["credit_code"] = corrected[4]["credit_code"] = huashan.credit_code

    job = run_import(corrected)

    assert (job.created_count, job.updated_count, job.unchanged_count, job.error_count) == (0, 3, 5, 0)
    after = {(x.order_number, x.line_number): x for x in OrderLine.objects.all()}
    changed = {k for k in after if after[k].row_hash != before[k].row_hash}
    assert changed == {("SO-2", 1), ("SO-3", 1), ("SO-3", 2)}
    assert all(after[k].job_id == before[k].job_id for k in after if k not in changed)
    assert after[("SO-2", 1)].amount_fen == 40000
    assert after[("SO-3", 1)].institution == after[("SO-3", 2)].institution == huashan
    for inst, month in ((xiehe, MARCH), (huashan, MARCH), (huashan, APRIL)):
        assert figures(rollup(inst, month)) == recomputed(inst, month), (inst, month)
    assert rollup(xiehe, MARCH).amount_fen == 100000 + 10250 + 40000
    assert rollup(xiehe, APRIL) is None  # its only order moved away
    assert (rollup(huashan, APRIL).amount_fen, rollup(huashan, APRIL).orders) == (60000, 1)
    assert rollup(huashan, MARCH).updated_at == untouched_rollup.updated_at  # not recomputed: not touched


def test_a_line_moved_away_from_a_month_leaves_no_empty_rollup(run_import, xiehe, huashan):
    run_import([line("SO-9", 1, "2025-05-05", xiehe, "P1", 1, "10")])

    run_import([line("SO-9", 1, "2025-05-05", huashan, "P1", 1, "10")])

    assert rollup(xiehe, dt.date(2025, 5, 1)) is None
    assert rollup(huashan, dt.date(2025, 5, 1)).amount_fen == 1000


def test_a_dry_run_changes_nothing_but_counts(run_import, base_rows):
    job = run_import(base_rows, dry_run=True)

    assert job.status == ImportJob.Status.PREVIEWED
    assert job.created_count == 8
    assert tables() == {"lines": [], "rollups": [], "codes": []}


BAD_ROW = {"quantity": "many"}


def test_all_or_nothing_with_one_bad_row_imports_nothing(run_import, base_rows):
    rows = [*base_rows[:5], {**base_rows[5], **BAD_ROW}, *base_rows[6:]]

    job = run_import(rows, mode="all")

    assert job.status == ImportJob.Status.REJECTED
    assert job.error_count == 1 and job.created_count == 0
    assert tables() == {"lines": [], "rollups": [], "codes": []}


def test_good_rows_mode_imports_the_rest(run_import, base_rows, huashan):
    rows = [*base_rows[:5], {**base_rows[5], **BAD_ROW}, *base_rows[6:]]

    job = run_import(rows, mode="good")

    assert job.status == ImportJob.Status.DONE
    assert (job.created_count, job.error_count) == (7, 1)
    assert not OrderLine.objects.filter(order_number="SO-4", line_number=1).exists()
    assert rollup(huashan, MARCH).lines == 2


@pytest.fixture
def faulty_rows(xiehe):
    ok = dict(payment_due="2025-04-30")
    return [
        line("E-1", 1, "2025-03-01", xiehe, "P1", 1, "10", **ok),  # row 2: fine
        line("E-2", 1, "2025-03-01", "91110000000000000X", "P1", 1, "10"),  # row 3: unknown credit code
        line("E-3", 1, "2025-02-30", xiehe, "P1", 1, "10"),  # row 4: no such date
        line("E-4", 1, "2025-03-01", xiehe, "P1", "zwei", "10"),  # row 5: not a number
        line("E-5", 1, "2025-03-01", xiehe, "P1", 1, "-3"),  # row 6: negative price
        line("E-1", 1, "2025-03-02", xiehe, "P2", 1, "10"),  # row 7: same order/line as row 2
        line("E-6", 1, "2025-03-01", xiehe, "P1", 2, "10", paid_amount="25", paid_date="2025-03-10"),  # row 8
    ]


EXPECTED_ERRORS = {
    3: ("客户统一社会信用代码", "customer_not_found"),
    4: ("订单日期", "impossible_date"),
    5: ("数量", "invalid_number"),
    6: ("单价", "negative"),
    7: ("行号", "duplicate_line"),
    8: ("付款金额", "paid_too_much"),
}


def test_the_rejected_rows_report_names_row_column_and_reason(run_import, faulty_rows):
    job = run_import(faulty_rows)

    assert (job.created_count, job.error_count) == (1, 6)
    found = {e["row"]: (e["column"], e["code"]) for e in job.errors}
    assert found == EXPECTED_ERRORS
    with translation.override("en"):
        reasons = {e["row"]: importer.error_text(e) for e in job.errors}
    assert "91110000000000000X" in reasons[3]
    assert "“2025-02-30” is not a day of the calendar" in reasons[4]
    assert "“zwei” is not a number" in reasons[5]
    assert "cannot be negative" in reasons[6]
    assert "appears twice in the file (first in row 2)" in reasons[7]
    assert "paid amount is larger than the line amount" in reasons[8]


def test_the_command_line_reports_counts_and_writes_the_rejected_rows(
    order_file, faulty_rows, users, tmp_path, capsys
):
    path = order_file(faulty_rows)
    report = tmp_path / "rejected.csv"

    with pytest.raises(SystemExit) as exit_info:
        call_command("import", "orders", str(path), "--report", str(report), "--language", "en")

    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert "created 1\nupdated 0\nunchanged 0\nrejected 6" in out
    text = report.read_text(encoding="utf-8-sig")
    # in --language's words, as the reasons (it was 行号 row, 列 column …)
    assert text.splitlines()[0] == "Row,Column,Reason,Value"
    assert "4,Order date (订单日期)," in text and "not a day of the calendar" in text
    assert "6,Unit price (单价),This value cannot be negative.,-3" in text
    assert OrderLine.objects.count() == 1


def test_a_report_the_command_line_cannot_write_is_refused_before_anything_is_imported(
    order_file, faulty_rows, users, tmp_path, capsys
):
    """--report in a folder that does not exist (a typing error): the rows were imported, then the report's writing
    ended in a traceback — no counts printed, exit status 1 as if only rows had been rejected, the reasons lost."""
    path = order_file(faulty_rows)
    report = tmp_path / "no-such-folder" / "rejected.csv"

    with pytest.raises(SystemExit) as exit_info:
        call_command("import", "orders", str(path), "--report", str(report), "--language", "en")

    assert exit_info.value.code == 2
    assert "the report cannot be written there" in capsys.readouterr().err
    assert not OrderLine.objects.exists()


def test_the_command_line_dry_run_and_a_clean_file_exit_zero(order_file, base_rows, users, capsys):
    path = order_file(base_rows)

    call_command("import", "orders", str(path), "--dry-run", "--language", "en")
    assert "created 8" in capsys.readouterr().out and not OrderLine.objects.exists()

    call_command("import", "orders", str(path), "--all-or-nothing")
    assert OrderLine.objects.count() == 8
    call_command("import", "orders", str(path), "--language", "en")
    assert "unchanged 8" in capsys.readouterr().out


def test_an_xlsx_file_imports_like_the_csv(admin_user, base_rows, tmp_path, xiehe):
    wb = Workbook()
    ws = wb.active
    ws.append(importer.template_headers(ImportJob.Target.ORDERS))
    for row in base_rows:
        cells = [row.get(k, "") for k in KEYS]
        ws.append([
            dt.date.fromisoformat(v) if k in ("order_date", "payment_due", "paid_date") and v else
            (float(v) if k in ("quantity", "unit_price") else (int(v) if k == "line_number" else v))
            for k, v in zip(KEYS, cells, strict=True)
        ])  # fmt: skip
    path = tmp_path / "orders.xlsx"
    wb.save(path)

    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="all")

    assert (job.status, job.created_count, job.error_count) == (ImportJob.Status.DONE, 8, 0)
    assert OrderLine.objects.get(order_number="SO-1", line_number=2).amount_fen == 10250
    assert rollup(xiehe, MARCH).amount_fen == 140250


def test_an_import_linking_approval_numbers_links_product_codes_to_the_catalogue(run_import, xiehe):
    product = Product.objects.create(
        brand_name="安心宁", generic_name="盐酸氨氯地平片", approval_number="国药准字H20249871"
    )

    run_import([line("SO-7", 1, "2025-03-01", xiehe, "YP1001", 1, "32.5", approval_number="国药准字H20249871",
                     product_name="安心宁 5mg×28片")])  # fmt: skip

    assert ProductCode.objects.get(code="YP1001").product == product


def test_the_same_file_imported_again_with_approval_numbers_links_its_product_codes(run_import, xiehe):
    """The import's note says to give the 批准文号 column to link a code to the catalogue: the same file imported
    again with that column finds every line unchanged (the approval number is not a line's value), and the code
    stayed unlinked — the note said nothing more, while the batch trace of the product still missed its lines."""
    product = Product.objects.create(
        brand_name="安心宁", generic_name="盐酸氨氯地平片", approval_number="国药准字H20249871"
    )
    rows = [
        line("SO-8", 1, "2025-03-01", xiehe, "YP1001", 1, "32.5"),
        line("SO-8", 2, "2025-03-01", xiehe, "YP1002", 1, "5"),
    ]
    run_import(rows)
    assert ProductCode.objects.get(code="YP1001").product is None

    rows[0]["approval_number"] = "国药准字H20249871"
    job = run_import(rows)

    assert (job.unchanged_count, job.created_count, job.updated_count) == (2, 0, 0)
    assert ProductCode.objects.get(code="YP1001").product == product
    assert ProductCode.objects.get(code="YP1002").product is None


def test_rollups_of_a_killed_import_are_repaired_by_the_next_refresh(xiehe):
    """The import writes lines and their dirty marks in one transaction and refreshes afterwards: a worker
    killed in between leaves the marks, and refresh_dirty (the periodic task) finishes the job."""
    day = dt.date(2025, 6, 3)
    with transaction.atomic():
        for n, (qty, price) in enumerate([(2, "10.00"), (1, "5.50")], start=1):
            values = ("K-1", n, day, day.replace(day=1), xiehe.pk, "P1", "", "", Decimal(qty), Decimal(price),
                      int(qty * Decimal(price) * 100), "", None, None, 0)  # fmt: skip
            OrderLine.objects.create(
                order_number="K-1", line_number=n, order_date=day, month=day.replace(day=1), institution=xiehe,
                product_code="P1", quantity=qty, unit_price=Decimal(price), amount_fen=values[10],
                outstanding_fen=values[10], row_hash=row_hash(values),
            )  # fmt: skip
        rollups.mark_dirty([(xiehe.pk, day.replace(day=1))])
    assert rollup(xiehe, day.replace(day=1)) is None

    assert rollups.refresh_dirty() == 1

    r = rollup(xiehe, day.replace(day=1))
    assert (r.amount_fen, r.lines, r.orders, r.outstanding_fen) == (2550, 2, 1, 2550)
    assert not RollupDirty.objects.exists()


@pytest.mark.parametrize(
    "writer",
    [
        "one thread",
        # outside a test's transaction PostgreSQL writes the chunks in a second thread, as in production
        pytest.param(
            "writer thread", marks=[pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]
        ),
    ],
)
def test_an_import_failing_midway_leaves_the_rollups_of_the_committed_chunks_right(
    run_import, xiehe, refused_order_number, monkeypatch, writer
):
    """Good rows only: the chunks before a database error are committed, the payment they corrected included.
    The customer's purchases and credit show it at once, not a quarter of an hour later (the periodic repair)."""
    from pharmacrm.sales import importer as orders
    from pharmacrm.sales import services

    day = "2025-03-05"
    first = run_import([line("SO-1", 1, day, xiehe, "P1", 10, "100", payment_due="2025-04-04")])
    assert first.status == ImportJob.Status.DONE
    assert rollup(xiehe, MARCH).outstanding_fen == 100000

    monkeypatch.setattr(orders, "CHUNK_ROWS", 2)
    job = run_import([
        line("SO-1", 1, day, xiehe, "P1", 10, "100", payment_due="2025-04-04", paid_date="2025-04-01"),
        line("SO-2", 1, day, xiehe, "P2", 1, "50"),
        line(refused_order_number, 1, day, xiehe, "P1", 1, "10"),
    ])  # fmt: skip

    assert job.status == ImportJob.Status.FAILED
    assert OrderLine.objects.get(order_number="SO-1").paid_fen == 100000  # the first chunk is committed
    assert figures(rollup(xiehe, MARCH)) == recomputed(xiehe, MARCH)
    credit = services.credit(xiehe.pk, today=dt.date(2025, 6, 1))
    assert (credit.paid, credit.on_time_share) == (Decimal("1000.00"), Decimal("1"))  # paid, on time
    assert not RollupDirty.objects.exists()


def test_an_import_failing_midway_re_scores_the_customers_of_its_committed_chunks(
    run_import, xiehe, refused_order_number, monkeypatch, huey_immediate, django_capture_on_commit_callbacks
):
    """The evaluation's incremental update follows an import that wrote lines. One that failed after some chunks
    wrote them too; importing the file again then finds them unchanged and would not re-score anyone either."""
    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.choices import ModelKind
    from pharmacrm.keyaccounts.models import Score
    from pharmacrm.sales import importer as orders

    from .conftest import today_minus

    run_import([line("SO-1", 1, today_minus(40), xiehe, "P1", 10, "100")])
    evaluation.run(ModelKind.EVALUATION)
    before = Score.objects.get(kind=ModelKind.EVALUATION, institution=xiehe)

    monkeypatch.setattr(orders, "CHUNK_ROWS", 2)
    with django_capture_on_commit_callbacks(execute=True):
        job = run_import([
            line("SO-2", 1, today_minus(20), xiehe, "P1", 100, "100"),
            line("SO-3", 1, today_minus(20), xiehe, "P1", 100, "100"),
            line(refused_order_number, 1, today_minus(20), xiehe, "P1", 1, "10"),
        ])  # fmt: skip

    assert job.status == ImportJob.Status.FAILED and OrderLine.objects.count() == 3
    after = Score.objects.get(kind=ModelKind.EVALUATION, institution=xiehe, period=before.period)
    assert after.run_id != before.run_id and after.score > before.score


def test_orders_for_a_merged_customers_codes_go_to_the_survivor(run_import, admin_user, beijing):
    survivor = customers.create_institution(
        admin_user, {"name": "北京天坛医院", "kind": "hospital", "region": beijing}
    )
    duplicate = customers.create_institution(
        admin_user, {"name": "首都医科大学附属北京天坛医院", "kind": "hospital", "region": beijing,
                     "credit_code": normalise.make_credit_code("12110000400009990"),
                     "external_id": "ERP-0042"},
    )  # fmt: skip
    run_import([line("M-1", 1, "2025-03-01", duplicate, "P1", 1, "10")])
    code = duplicate.credit_code

    customers.merge(admin_user, survivor, duplicate)
    job = run_import([line("M-2", 1, "2025-03-09", code, "P1", 2, "10"),
                      {**line("M-3", 1, "2025-03-09", "", "P1", 3, "10"), "external_id": "ERP-0042"}])  # fmt: skip

    assert job.error_count == 0, job.errors
    assert set(OrderLine.objects.values_list("institution_id", flat=True)) == {survivor.pk}
    r = rollup(survivor, MARCH)
    assert (r.amount_fen, r.lines) == (6000, 3)
    assert rollup(duplicate, MARCH) is None


def test_a_merge_while_an_import_runs_sends_the_later_chunks_to_the_survivor(
    run_import, admin_user, xiehe, huashan, monkeypatch
):
    """Another user merges 华山 into 协和 while a file for 华山 is being imported: the chunks written after the
    merge go to the survivor too, not to the merged-away record, where no page shows them and whose rollups
    nobody reads."""
    from pharmacrm.sales import importer as orders

    monkeypatch.setattr(orders, "CHUNK_ROWS", 2)
    real, calls = orders.Run.prepare, []

    def prepare(run, raw_rows):
        calls.append(1)
        if len(calls) == 2:  # the first chunk is written; the merge comes before the second
            customers.merge(admin_user, xiehe, huashan)
        return real(run, raw_rows)

    monkeypatch.setattr(orders.Run, "prepare", prepare)
    day = "2025-03-05"
    job = run_import([line(f"SO-{n}", 1, day, huashan, "P1", 1, "100") for n in range(1, 5)])

    assert job.status == ImportJob.Status.DONE and job.created_count == 4
    assert set(OrderLine.objects.values_list("institution_id", flat=True)) == {xiehe.pk}
    assert not MonthlyRollup.objects.filter(institution=huashan).exists()
    assert figures(rollup(xiehe, MARCH)) == recomputed(xiehe, MARCH)
    assert rollup(xiehe, MARCH).amount_fen == 40000
    monkeypatch.setattr(orders.Run, "prepare", real)
    again = run_import([line(f"SO-{n}", 1, day, huashan, "P1", 1, "100") for n in range(1, 5)])
    assert (again.unchanged_count, again.updated_count) == (4, 0)  # fingerprinted with the survivor


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_merge_and_an_import_of_the_duplicates_orders_at_once_both_succeed(
    run_import, admin_user, xiehe, huashan, monkeypatch
):
    """The import's chunk holds the writers' lock when the merge starts. The merge waits for it before it locks
    the two customers: it used to lock them first and wait for the writers' lock at its end, while the chunk,
    storing lines of the duplicate, waited for the duplicate's row — a deadlock, which the database broke by
    failing one of them."""
    import threading

    from django.db import connection

    from pharmacrm.sales import importer as orders

    real, paused, go = orders.Resolver.follow_merges, threading.Event(), threading.Event()

    def follow_merges(resolver, rows):
        if not paused.is_set():
            paused.set()
            go.wait(30)
        return real(resolver, rows)

    monkeypatch.setattr(orders.Resolver, "follow_merges", follow_merges)
    results: dict = {}

    def import_file():
        try:
            results["job"] = run_import([line("SO-1", 1, "2025-03-05", huashan, "P1", 1, "100")])
        finally:
            connection.close()

    def merge():
        try:
            results["merged"] = customers.merge(admin_user, xiehe, huashan)
        except Exception as e:  # noqa: BLE001  (reported below)
            results["merge_error"] = e
        finally:
            connection.close()

    importing = threading.Thread(target=import_file)
    importing.start()
    assert paused.wait(30)
    merging = threading.Thread(target=merge)
    merging.start()
    until_a_lock_is_awaited()  # the merge waits for the import
    go.set()
    importing.join(60)
    merging.join(60)

    assert "merge_error" not in results, results.get("merge_error")
    assert results["job"].status == ImportJob.Status.DONE and results["job"].created_count == 1
    assert list(OrderLine.objects.values_list("institution_id", flat=True)) == [xiehe.pk]
    assert figures(rollup(xiehe, MARCH)) == recomputed(xiehe, MARCH)
    assert not MonthlyRollup.objects.filter(institution=huashan).exists()


def test_the_batch_trace_lists_a_customer_who_bought_the_batch(run_import, xiehe, huashan):
    run_import([line("T-1", 1, "2025-03-05", xiehe, "P1", 1, "10", batch_number="LOT-2503A"),
                line("T-2", 1, "2025-03-06", huashan, "P1", 1, "10", batch_number="LOT-OTHER")])  # fmt: skip

    trace = safety.batch_trace("LOT-2503A")

    assert [row["institution"] for row in trace] == [xiehe]
    assert trace[0]["sources"] == ["T-1"]
    # typed as the pack or a ticket has it: lower case, or full width from a Chinese input method
    for typed in ("lot-2503a", "ＬＯＴ－２５０３Ａ"):
        assert [row["institution"] for row in safety.batch_trace(typed)] == [xiehe], typed
