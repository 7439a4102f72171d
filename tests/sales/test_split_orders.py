"""Orders split between customers before session 56 (two imports at the same moment stored lines of one order for two
customers): `pharmacrm orders split-check` lists them, `--repair` gives each order to one customer, its rollups
recomputed and every line moved audited."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone, translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.sales import rollups
from pharmacrm.sales.models import MonthlyRollup, OrderLine

from .conftest import line, split_before_session_56


@pytest.fixture
def split(run_import, xiehe, huashan):
    """SO-1: lines 1 and 2 for 协和 (imported an hour ago), line 3 for 华山 (imported since)."""
    run_import([line("SO-1", 1, "2026-03-05", xiehe, "P1", 2, "100"), line("SO-1", 2, "2026-03-05", xiehe, "P2", 1, "50"),
                line("SO-X", 3, "2026-03-05", huashan, "P1", 1, "100"), line("SO-2", 1, "2026-03-06", xiehe, "P1", 1, "10")])  # fmt: skip
    OrderLine.objects.filter(order_number="SO-1").update(imported_at=timezone.now() - dt.timedelta(hours=1))
    split_before_session_56("SO-1", "SO-X")
    return "SO-1"


def run(*args) -> tuple[int, str]:
    out = io.StringIO()
    with translation.override("en"):
        try:
            call_command("orders", "split-check", *args, stdout=out, stderr=out)
        except SystemExit as e:
            return e.code, out.getvalue()
    return 0, out.getvalue()


def test_the_check_lists_each_split_order_with_its_customers_and_lines(split, xiehe, huashan):
    status, out = run()

    assert status == 1
    assert "Order SO-1 names 2 customers:" in out
    assert f"复旦大学附属华山医院 ({huashan.credit_code}): lines 3, last imported" in out
    assert f"{xiehe.name} ({xiehe.credit_code}): lines 1, 2, last imported" in out
    # the customer of the line imported most recently keeps it, listed first
    assert out.index("华山") < out.index(xiehe.name) and out.count("keeps the order") == 1
    assert "SO-2" not in out and "1 split order(s) found" in out
    assert set(OrderLine.objects.filter(order_number="SO-1").values_list("institution_id", flat=True)) == {
        xiehe.pk, huashan.pk}  # nothing changed  # fmt: skip


def test_repair_moves_the_lines_recomputes_rollups_and_audits(split, xiehe, huashan, run_import):
    status, out = run("--repair")

    assert status == 0 and "1 split order(s) repaired, 2 line(s) moved." in out
    assert set(OrderLine.objects.filter(order_number="SO-1").values_list("institution_id", flat=True)) == {huashan.pk}
    march = dt.date(2026, 3, 1)
    # 协和 keeps its own order SO-2 only; 华山 has the whole of SO-1: one order, 250.00
    assert MonthlyRollup.objects.values_list("orders", "amount_fen").get(institution_id=xiehe.pk, month=march) == (1, 1000)
    assert MonthlyRollup.objects.values_list("orders", "amount_fen").get(institution_id=huashan.pk, month=march) == (1, 35000)
    entries = AuditEntry.objects.filter(object_type="sales.orderline", action="update").order_by("object_repr")
    assert [(e.object_repr, e.changes, e.extra["reason"]) for e in entries] == [
        ("SO-1/1", {"institution": [xiehe.pk, huashan.pk]}, "split order"),
        ("SO-1/2", {"institution": [xiehe.pk, huashan.pk]}, "split order"),
    ]  # fmt: skip
    assert entries[0].actor_name.startswith("cli:")
    # the file naming 华山 for the order, imported again, finds the moved lines unchanged; the check finds nothing
    again = run_import([line("SO-1", 1, "2026-03-05", huashan, "P1", 2, "100"),
                        line("SO-1", 2, "2026-03-05", huashan, "P2", 1, "50")])  # fmt: skip
    assert (again.created_count, again.updated_count, again.unchanged_count) == (0, 0, 2)
    assert run() == (0, "No order is split between customers.\nNo order's lines carry two order dates.\n")


def test_an_operator_chooses_the_customer_keeping_the_order(split, xiehe, huashan):
    status, out = run("--repair", "--keep", f"SO-1={xiehe.credit_code.lower()}")

    assert status == 0 and "1 line(s) moved" in out
    assert set(OrderLine.objects.filter(order_number="SO-1").values_list("institution_id", flat=True)) == {xiehe.pk}
    rollups.refresh_dirty()
    assert not MonthlyRollup.objects.filter(institution_id=huashan.pk).exists()  # its only month emptied


def test_a_customer_not_of_the_order_is_refused_in_one_line(split):
    status, out = run("--keep", "SO-1=nobody")
    assert status == 2 and out.strip() == "nobody is not one of the customers of order SO-1."


def test_the_audit_trail_says_why_in_the_readers_language(split):
    from pharmacrm.core.templatetags.crm import _audit_code

    run("--repair")
    with translation.override("en"):
        assert _audit_code("reason", "split order") == "order split between customers, given to one"
        assert _audit_code("reason", "product code in another letter case") == (
            "one product code in any letter case: spellings merged")  # sales 0016  # fmt: skip


@pytest.fixture
def two_dates(run_import, xiehe):
    """SO-1: lines 1 and 2 dated 31 March (imported an hour ago), line 3 dated 1 April (imported since)."""
    run_import([line("SO-1", 1, "2026-03-31", xiehe, "P1", 2, "100"), line("SO-1", 2, "2026-03-31", xiehe, "P2", 1, "50"),
                line("SO-X", 3, "2026-04-01", xiehe, "P1", 1, "100")])  # fmt: skip
    OrderLine.objects.filter(order_number="SO-1").update(imported_at=timezone.now() - dt.timedelta(hours=1))
    split_before_session_56("SO-1", "SO-X")
    return "SO-1"


def test_the_check_lists_an_order_whose_lines_carry_two_dates(two_dates):
    status, out = run()

    assert status == 1
    assert "No order is split between customers." in out and "Order SO-1 carries 2 order dates:" in out
    # the date the most recent import gave is the order's, listed first
    assert "  2026-04-01: lines 3, last imported" in out and "  2026-03-31: lines 1, 2, last imported" in out
    assert out.index("2026-04-01") < out.index("2026-03-31") and out.count("the order's date") == 1
    assert "1 order(s) with two order dates found" in out
    assert set(OrderLine.objects.filter(order_number="SO-1").values_list("order_date", flat=True)) == {
        dt.date(2026, 3, 31), dt.date(2026, 4, 1)}  # nothing changed  # fmt: skip


def test_repair_gives_the_lines_the_date_imported_last_recomputes_both_months_and_audits(two_dates, xiehe, run_import):
    march, april = dt.date(2026, 3, 1), dt.date(2026, 4, 1)
    assert MonthlyRollup.objects.filter(institution_id=xiehe.pk, month=march).exists()
    status, out = run("--repair")

    assert status == 0 and "1 order(s) with two order dates repaired, 2 line(s) given the order's date." in out
    assert set(OrderLine.objects.filter(order_number="SO-1").values_list("order_date", "month")) == {(april, april)}
    # the order counted once, in April, with all its lines (250.00 + 100.00); March has none of it any more
    assert not MonthlyRollup.objects.filter(institution_id=xiehe.pk, month=march, orders__gt=0).exists()
    assert MonthlyRollup.objects.values_list("orders", "amount_fen").get(institution_id=xiehe.pk, month=april) == (1, 35000)
    entries = AuditEntry.objects.filter(object_type="sales.orderline", action="update").order_by("object_repr")
    assert [(e.object_repr, e.changes, e.extra["reason"]) for e in entries] == [
        ("SO-1/1", {"order_date": ["2026-03-31", "2026-04-01"]}, "split order date"),
        ("SO-1/2", {"order_date": ["2026-03-31", "2026-04-01"]}, "split order date"),
    ]  # fmt: skip
    # the file giving the order 1 April, imported again, finds the lines unchanged; the check finds nothing
    again = run_import([line("SO-1", 1, "2026-04-01", xiehe, "P1", 2, "100"),
                        line("SO-1", 2, "2026-04-01", xiehe, "P2", 1, "50")])  # fmt: skip
    assert (again.created_count, again.updated_count, again.unchanged_count) == (0, 0, 2)
    assert run() == (0, "No order is split between customers.\nNo order's lines carry two order dates.\n")
    from pharmacrm.core.templatetags.crm import _audit_code

    with translation.override("en"):
        assert _audit_code("reason", "split order date") == (
            "order split between two order dates, given the one imported last")  # fmt: skip


def test_an_order_split_both_ways_is_repaired_at_once_its_customer_first(run_import, xiehe, huashan):
    """SO-1: line 1 for 协和 dated 31 March (an hour ago), line 2 for 华山 dated 1 April (since): one repair (the split
    orders page's) gives it 华山 and 1 April."""
    run_import([line("SO-1", 1, "2026-03-31", xiehe, "P1", 2, "100"),
                line("SO-X", 2, "2026-04-01", huashan, "P1", 1, "100")])  # fmt: skip
    OrderLine.objects.filter(order_number="SO-1").update(imported_at=timezone.now() - dt.timedelta(hours=1))
    split_before_session_56("SO-1", "SO-X")

    status, out = run()
    assert status == 1 and "Order SO-1 names 2 customers:" in out and "Order SO-1 carries 2 order dates:" in out
    status, out = run("--repair")

    assert status == 0 and "1 split order(s) repaired, 1 line(s) moved." in out
    assert "1 order(s) with two order dates repaired, 1 line(s) given the order's date." in out
    assert set(OrderLine.objects.filter(order_number="SO-1").values_list("institution_id", "order_date")) == {
        (huashan.pk, dt.date(2026, 4, 1))}  # fmt: skip
    assert not MonthlyRollup.objects.filter(institution_id=xiehe.pk).exists()
    assert MonthlyRollup.objects.values_list("month", "orders", "amount_fen").get(institution_id=huashan.pk) == (
        dt.date(2026, 4, 1), 1, 30000)  # fmt: skip
    reasons = AuditEntry.objects.filter(object_type="sales.orderline", action="update").values_list("extra", flat=True)
    assert sorted(e["reason"] for e in reasons) == ["split order", "split order date"]
