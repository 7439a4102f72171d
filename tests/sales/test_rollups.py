"""Monthly rollups and credit status on a small hand-computed dataset (amounts in fen).

协和, March 2025 (three orders, four lines, three products):
  SO-1/1  P1 10 × 100.00 = 1000.00  due 04-04, paid in full 04-01      → on time
  SO-1/2  P2  5 ×  20.50 =  102.50  due 04-04, paid in full 04-14      → 10 days late
  SO-2/1  P1  3 × 100.00 =  300.00  due 04-19, unpaid                  → overdue from 04-20
  SO-3/1  P3  2 × 250.00 =  500.00  due 05-27, 200.00 paid on 04-10    → 200.00 on time, 300.00 open
协和, other months: SO-4/1 (April) 50.00 paid 18 days late; SO-6/1 (January) 80.00 due 02-09 unpaid;
SO-7/1 (February) 20.00 due 03-20 unpaid. 华山: SO-5/1 99.99 without a due date, unpaid."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pharmacrm.sales import rollups, services
from pharmacrm.sales.models import MonthlyRollup, OrderLine

from .conftest import line

MARCH = dt.date(2025, 3, 1)


@pytest.fixture
def dataset(run_import, xiehe, huashan):
    job = run_import([
        line("SO-1", 1, "2025-03-05", xiehe, "P1", 10, "100", payment_due="2025-04-04", paid_date="2025-04-01"),
        line("SO-1", 2, "2025-03-05", xiehe, "P2", 5, "20.50", payment_due="2025-04-04", paid_date="2025-04-14"),
        line("SO-2", 1, "2025-03-20", xiehe, "P1", 3, "100", payment_due="2025-04-19"),
        line("SO-3", 1, "2025-03-28", xiehe, "P3", 2, "250", payment_due="2025-05-27", paid_date="2025-04-10",
             paid_amount="200"),
        line("SO-4", 1, "2025-04-02", xiehe, "P2", 1, "50", payment_due="2025-05-02", paid_date="2025-05-20"),
        line("SO-6", 1, "2025-01-10", xiehe, "P3", 1, "80", payment_due="2025-02-09"),
        line("SO-7", 1, "2025-02-15", xiehe, "P1", 2, "10", payment_due="2025-03-20"),
        line("SO-5", 1, "2025-03-10", huashan, "P1", 1, "99.99"),
    ])  # fmt: skip
    assert job.error_count == 0, job.errors
    return xiehe, huashan


def recompute_as_of(day: dt.date) -> None:
    rollups.mark_dirty(MonthlyRollup.objects.values_list("institution_id", "month"))
    rollups.refresh_dirty(today=day)


def test_a_months_rollup_matches_the_hand_computed_figures(dataset):
    xiehe, huashan = dataset
    recompute_as_of(dt.date(2025, 5, 1))

    r = MonthlyRollup.objects.get(institution=xiehe, month=MARCH)

    assert r.amount_fen == 190250
    assert (r.orders, r.lines, r.products) == (3, 4, 3)
    assert r.paid_fen == 100000 + 10250 + 20000
    assert r.on_time_fen == 100000 + 20000  # paid by the due date: SO-1/1 in full, SO-3/1 in part
    assert (r.late_fen, r.late_lines, r.days_late) == (10250, 1, 10)
    assert r.outstanding_fen == 30000 + 30000
    assert r.overdue_fen == 30000 and r.overdue_as_of == dt.date(2025, 5, 1)  # SO-3 is not due yet


def test_the_other_months_and_customers_have_their_own_rollups(dataset):
    xiehe, huashan = dataset
    recompute_as_of(dt.date(2025, 5, 1))

    april = MonthlyRollup.objects.get(institution=xiehe, month=dt.date(2025, 4, 1))
    assert (april.amount_fen, april.late_fen, april.days_late, april.outstanding_fen) == (5000, 5000, 18, 0)
    hs = MonthlyRollup.objects.get(institution=huashan, month=MARCH)
    # no due date: never overdue
    assert (hs.amount_fen, hs.outstanding_fen, hs.overdue_fen) == (9999, 9999, 0)
    assert MonthlyRollup.objects.filter(institution=xiehe).count() == 4


def test_overdue_moves_with_the_passing_of_time(dataset):
    xiehe, _hs = dataset
    recompute_as_of(dt.date(2025, 5, 1))

    rollups.refresh_overdue(today=dt.date(2025, 6, 10))

    assert MonthlyRollup.objects.get(institution=xiehe, month=MARCH).overdue_fen == 60000


def test_credit_on_hand_computed_data(dataset):
    xiehe, _hs = dataset

    c = services.credit(xiehe.pk, today=dt.date(2025, 6, 10))

    # paid on time 1200.00 of 1200.00 + late 152.50 + overdue 700.00 in the window
    assert c.on_time_share == Decimal("0.5847")
    assert c.average_days_late == Decimal("14.0")  # (10 + 18) / 2
    assert c.late_lines == 2
    assert c.outstanding == Decimal("700.00") and c.overdue == Decimal("700.00")
    assert [b["amount"] for b in c.ageing] == [Decimal("0.00"), Decimal("300.00"), Decimal("300.00"),
                                                Decimal("20.00"), Decimal("80.00")]  # fmt: skip
    assert c.status == "poor"


def test_credit_ageing_earlier_puts_the_open_items_in_younger_buckets(dataset):
    xiehe, _hs = dataset

    c = services.credit(xiehe.pk, today=dt.date(2025, 5, 1))

    # SO-3 not yet due; SO-2 12 days; SO-7 42 days; SO-6 81 days past due
    assert [b["amount"] for b in c.ageing] == [Decimal("300.00"), Decimal("300.00"), Decimal("20.00"),
                                                Decimal("80.00"), Decimal("0.00")]  # fmt: skip
    assert c.overdue == Decimal("400.00") and c.outstanding == Decimal("700.00")
    assert c.on_time_share == Decimal("0.6847")  # 1200 / (1200 + 152.50 + 300 + 20 + 80) = 1200 / 1752.50


def test_a_customer_who_always_pays_on_time_has_good_credit(run_import, huashan):
    run_import([line("G-1", 1, "2025-03-01", huashan, "P1", 1, "10", payment_due="2025-03-31", paid_date="2025-03-30"),
                line("G-2", 1, "2025-04-01", huashan, "P1", 1, "10", payment_due="2025-04-30", paid_date="2025-04-30")])  # fmt: skip

    c = services.credit(huashan.pk, today=dt.date(2025, 6, 1))

    assert (c.on_time_share, c.average_days_late) == (Decimal("1.0000"), None)
    assert (c.outstanding, c.status) == (0, "good")


def test_monthly_gives_24_months_oldest_first_with_empty_months(dataset):
    xiehe, _hs = dataset

    months = services.monthly(xiehe.pk, 24, today=dt.date(2025, 4, 15))

    assert len(months) == 24 and months[0]["month"] == "2023-05" and months[-1]["month"] == "2025-04"
    by = {m["month"]: m for m in months}
    assert by["2025-03"]["amount"] == Decimal("1902.50") and by["2025-03"]["orders"] == 3
    assert by["2024-12"]["amount"] == 0 and by["2024-12"]["lines"] == 0
    assert OrderLine.objects.filter(institution=xiehe).count() == 7


def test_a_new_line_in_a_month_whose_overdue_figure_is_of_another_day_recomputes_that_month(dataset, run_import):
    """An import adds its lines to their months' rollups; a month whose overdue amount was computed on
    another day (and still has open items) is recomputed whole instead, so the new total is today's. The
    other months the import touches are only added to."""
    xiehe, huashan = dataset
    recompute_as_of(dt.date(2025, 4, 10))  # March's SO-2 (due 04-19) was not overdue yet on 04-10
    march = MonthlyRollup.objects.get(institution=xiehe, month=MARCH)
    assert march.overdue_fen == 0 and march.overdue_as_of == dt.date(2025, 4, 10)
    huashan_before = MonthlyRollup.objects.get(institution=huashan, month=MARCH)

    job = run_import([line("SO-8", 1, "2025-03-30", xiehe, "P4", 1, "10", payment_due="2025-04-29",
                           paid_date="2025-04-20")])  # fmt: skip

    assert job.error_count == 0, job.errors
    march.refresh_from_db()
    # today SO-2 (300.00) is overdue, and SO-3's open 300.00 (due 05-27) too
    assert (march.lines, march.products, march.overdue_fen) == (5, 4, 60000)
    assert march.overdue_as_of == dt.date.today()
    huashan_after = MonthlyRollup.objects.get(institution=huashan, month=MARCH)
    assert (huashan_after.overdue_as_of, huashan_after.overdue_fen) == (
        huashan_before.overdue_as_of, huashan_before.overdue_fen
    )


def test_a_merge_gives_the_survivor_the_rollups_and_credit_of_all_its_orders(run_import, admin_user, xiehe, huashan):  # fmt: skip
    from pharmacrm.customers import services as customers

    run_import([
        line("M-1", 1, "2025-03-05", xiehe, "P1", 1, "100", payment_due="2025-04-04", paid_date="2025-04-01"),
        line("M-2", 1, "2025-03-10", huashan, "P2", 1, "300", payment_due="2025-04-09", paid_date="2025-04-19"),
        line("M-3", 1, "2025-04-02", huashan, "P1", 1, "50", payment_due="2025-05-02"),
    ])  # fmt: skip

    customers.merge(admin_user, xiehe, huashan)

    march = MonthlyRollup.objects.get(institution=xiehe, month=MARCH)
    assert (march.amount_fen, march.orders, march.products) == (40000, 2, 2)
    assert (march.late_lines, march.days_late) == (1, 10)
    assert MonthlyRollup.objects.get(institution=xiehe, month=dt.date(2025, 4, 1)).overdue_fen == 5000
    assert not MonthlyRollup.objects.filter(institution=huashan).exists()
    c = services.credit(xiehe.pk, today=dt.date(2025, 6, 1))
    assert (c.paid, c.late_lines) == (Decimal("400.00"), 1)
    assert (c.outstanding, c.overdue) == (Decimal("50.00"), Decimal("50.00"))
    assert c.on_time_share == Decimal("0.2222")  # 100 / (100 + 300 + 50)


def test_a_payment_date_with_nothing_paid_is_owed_not_paid_late(run_import, xiehe):
    """An ERP writes 0 beside a payment date (a cheque that bounced, a date typed too early): the line counted as
    a late payment of 0.00, 30 days late, in the customer's average days late, and not as overdue. It is owed."""
    job = run_import([
        line("Z-1", 1, "2025-03-05", xiehe, "P1", 1, "100", payment_due="2025-04-04", paid_date="2025-05-04",
             paid_amount="0"),
        line("Z-2", 1, "2025-03-05", xiehe, "P2", 1, "50", payment_due="2025-04-04", paid_date="2025-04-14"),
    ])  # fmt: skip
    assert job.error_count == 0, job.errors
    recompute_as_of(dt.date(2025, 6, 1))
    r = MonthlyRollup.objects.get(institution=xiehe, month=MARCH)
    assert (r.late_fen, r.late_lines, r.days_late) == (5000, 1, 10)  # Z-2 only
    assert (r.outstanding_fen, r.overdue_fen) == (10000, 10000)  # Z-1 is owed and past its due date
    c = services.credit(xiehe.pk, today=dt.date(2025, 6, 1))
    assert (c.average_days_late, c.overdue) == (Decimal("10.0"), Decimal("100.00"))
