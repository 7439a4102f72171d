"""Order import, from a QA round: one order has one customer and one order date, in a file and across files (its lines
dated in two months counted it in both months' rollups; split between two customers across files, the order-lines
export was refused when imported again)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.utils import translation

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales import importer as orders
from pharmacrm.sales.models import MonthlyRollup, OrderLine

from .conftest import line

SEPT, OCT = "2026-09-30", "2026-10-05"


def codes(job: ImportJob) -> list[tuple[int, str, str]]:
    return [(e["row"], e["column"], e["code"]) for e in job.errors]


def texts(job: ImportJob) -> list[str]:
    with translation.override("en"):
        return [importer.error_text(e) for e in job.errors]


def stored() -> dict[int, tuple[str, int]]:
    """line number → (order date, customer) of order QA-1's stored lines."""
    return {n: (d.isoformat(), inst) for n, d, inst in
            OrderLine.objects.filter(order_number="QA-1").values_list("line_number", "order_date", "institution_id")}  # fmt: skip


def orders_by_month(customer) -> dict[str, int]:
    return {m.isoformat()[:7]: n for m, n in
            MonthlyRollup.objects.filter(institution=customer).values_list("month", "orders") if n}  # fmt: skip


# --- 1. one order date --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [False, True])
def test_an_order_dated_on_two_days_in_one_file_is_refused_at_the_rows_that_differ(
    run_import, xiehe, dry_run
):
    """Line 1 on 30 September, lines 2–3 on 5 October: the order counted in both months' rollups."""
    job = run_import([line("QA-1", 1, "2026-09-30 23:59", xiehe, "P1", 1, 10),
                      line("QA-1", 2, OCT, xiehe, "P1", 1, 10), line("QA-1", 3, OCT, xiehe, "P1", 1, 10)],
                     dry_run=dry_run)  # fmt: skip

    assert codes(job) == [(3, "订单日期", "order_two_dates"), (4, "订单日期", "order_two_dates")]
    assert texts(job)[0] == (
        "Order QA-1 is dated 2026-09-30 (row 2), but this row gives 2026-10-05: an order has one "
        "order date. Correct the date, or give this line its own order number."
    )
    if not dry_run:
        assert stored() == {1: (SEPT, xiehe.pk)}
        assert orders_by_month(xiehe) == {"2026-09": 1}


def test_a_later_file_cannot_date_part_of_a_stored_order_in_another_month(run_import, xiehe):
    run_import([line("QA-1", n, SEPT, xiehe, "P1", 1, 10) for n in (1, 2, 3)])

    job = run_import([line("QA-1", 3, OCT, xiehe, "P1", 1, 10), line("QA-1", 4, OCT, xiehe, "P1", 1, 10)])

    assert codes(job) == [(2, "订单日期", "order_stored_date"), (3, "订单日期", "order_stored_date")]
    assert texts(job)[0] == (
        "Order QA-1 is stored with the order date 2026-09-30 (its line 1, which this file does not correct): an order "
        "has one order date. To change it, give all the order's lines in one file, with the new date."
    )
    assert stored() == {n: (SEPT, xiehe.pk) for n in (1, 2, 3)}
    assert orders_by_month(xiehe) == {"2026-09": 1}


def test_a_corrected_file_moving_every_line_of_an_order_to_another_date_updates_it(run_import, xiehe):
    run_import([line("QA-1", n, SEPT, xiehe, "P1", 1, 10) for n in (1, 2, 3)])

    job = run_import([line("QA-1", n, OCT, xiehe, "P1", 1, 10) for n in (1, 2, 3)])

    assert codes(job) == [] and job.updated_count == 3
    assert stored() == {n: (OCT, xiehe.pk) for n in (1, 2, 3)}
    assert orders_by_month(xiehe) == {"2026-10": 1}


def test_an_order_moved_whole_across_a_chunk_boundary_is_one_chunks(run_import, xiehe, monkeypatch):
    """The chunk runs on to the end of its last order (up to a tenth more rows): read in chunks of 20 rows, the
    order's rows 20–23 are one chunk's, and its stored lines 3–4 (not yet read) did not count as lines the file leaves
    with the old date."""
    monkeypatch.setattr(orders, "CHUNK_ROWS", 20)
    filler = [line(f"F-{n}", 1, SEPT, xiehe, "P1", 1, 10) for n in range(18)]
    run_import(filler + [line("QA-1", n, SEPT, xiehe, "P1", 1, 10) for n in (1, 2, 3, 4)])

    job = run_import(filler + [line("QA-1", n, OCT, xiehe, "P1", 1, 10) for n in (1, 2, 3, 4)])

    assert codes(job) == [] and job.updated_count == 4
    assert stored() == {n: (OCT, xiehe.pk) for n in (1, 2, 3, 4)}


def test_a_file_correcting_only_some_lines_of_an_order_to_another_date_is_refused(run_import, xiehe):
    run_import([line("QA-1", n, SEPT, xiehe, "P1", 1, 10) for n in (1, 2, 3)])

    job = run_import([line("QA-1", n, OCT, xiehe, "P1", 1, 10) for n in (1, 2)])

    assert codes(job) == [(2, "订单日期", "order_stored_date"), (3, "订单日期", "order_stored_date")]
    assert job.errors[0]["params"]["line"] == 3
    assert stored() == {n: (SEPT, xiehe.pk) for n in (1, 2, 3)}


# --- 2. one customer, across files --------------------------------------------------------------------------


def test_a_later_file_cannot_give_one_line_of_a_stored_order_to_another_customer(
    run_import, xiehe, huashan, client_for, admin_user, tmp_path
):
    run_import([line("QA-1", n, SEPT, xiehe, "P1", 1, 10) for n in (1, 2)])

    job = run_import([line("QA-1", 3, SEPT, huashan, "P1", 1, 10)])

    assert codes(job) == [(2, "客户统一社会信用代码", "order_stored_customer")]
    assert texts(job) == [
        "Order QA-1 is stored for 北京协和医院 (its line 1, which this file does not correct): an order belongs to one "
        "customer. To move the order to another customer, give all its lines in one file."
    ]
    assert stored() == {1: (SEPT, xiehe.pk), 2: (SEPT, xiehe.pk)}
    # the order-lines export, documented as correctable and importable again, imports again unchanged
    body = b"".join(client_for("manager").get("/sales/orders/export.csv").streaming_content).decode(
        "utf-8-sig"
    )
    path = tmp_path / "again.csv"
    path.write_text(body, encoding="utf-8")
    again = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="all")
    assert (again.unchanged_count, again.error_count) == (2, 0)


def test_a_corrected_file_moving_a_whole_order_to_another_customer_updates_it(run_import, xiehe, huashan):
    run_import([line("QA-1", n, SEPT, xiehe, "P1", 1, 10) for n in (1, 2)])

    job = run_import([line("QA-1", n, SEPT, huashan, "P1", 1, 10) for n in (1, 2)])

    assert codes(job) == [] and job.updated_count == 2
    assert stored() == {1: (SEPT, huashan.pk), 2: (SEPT, huashan.pk)}
    assert orders_by_month(huashan) == {"2026-09": 1} and orders_by_month(xiehe) == {}


def test_moving_part_of_a_stored_order_to_another_customer_is_refused_in_all_or_nothing_too(
    run_import, xiehe, huashan
):
    run_import([line("QA-1", n, SEPT, xiehe, "P1", 1, 10) for n in (1, 2, 3)])

    job = run_import([line("QA-1", 1, SEPT, huashan, "P1", 1, 10), line("X-9", 1, SEPT, xiehe, "P1", 1, 10)],
                     mode="all")  # fmt: skip

    assert codes(job) == [(2, "客户统一社会信用代码", "order_stored_customer")]
    assert job.status == ImportJob.Status.REJECTED
    assert stored() == {n: (SEPT, xiehe.pk) for n in (1, 2, 3)}


def test_an_order_split_before_the_check_still_imports_its_unchanged_lines(run_import, xiehe, huashan):
    """Lines stored split between two customers (before the import refused it): the file's unchanged lines change
    nothing of that and are not refused; a line that would move to the other customer is."""
    run_import([line("QA-1", n, SEPT, xiehe, "P1", 1, 10) for n in (1, 2)])
    OrderLine.objects.filter(order_number="QA-1", line_number=2).update(institution=huashan)

    job = run_import([line("QA-1", 1, SEPT, xiehe, "P1", 1, 10), line("QA-1", 3, SEPT, xiehe, "P1", 1, 10)])

    assert job.unchanged_count == 1
    assert codes(job) == [(3, "客户统一社会信用代码", "order_stored_customer")]


# --- the initial load: both lanes -----------------------------------------------------------------------------


@pytest.mark.parametrize("columnar", [True, False])
def test_an_initial_load_refuses_an_order_dated_on_two_days_as_the_ordinary_import(
    order_file, xiehe, users, monkeypatch, columnar
):
    token = orders.COLUMNAR.set(columnar)
    try:
        path = order_file([line("QA-1", 1, SEPT, xiehe, "P1", 1, 10), line("QA-1", 2, OCT, xiehe, "P1", 1, 10),
                           line("QA-1", 3, SEPT, xiehe, "P1", 1, 10)])  # fmt: skip
        with pytest.raises(SystemExit) as e:
            call_command("import", "orders", str(path), "--initial-load", "--language", "en")
    finally:
        orders.COLUMNAR.reset(token)
    assert e.value.code == 1
    job = ImportJob.objects.latest("pk")
    assert codes(job) == [(3, "订单日期", "order_two_dates")]
    assert stored() == {1: (SEPT, xiehe.pk), 3: (SEPT, xiehe.pk)}
    assert orders_by_month(xiehe) == {"2026-09": 1}
