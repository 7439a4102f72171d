"""Session 17 review (issue 5): a prepayment (款到发货) — paid before the order date — is imported and counts as
paid on time; a payment dated more than a year before its order is still named as a likely typo."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from pharmacrm.sales import services
from pharmacrm.sales.models import OrderLine

from .conftest import line


def test_a_prepayment_is_imported_and_counts_as_paid_on_time(run_import, xiehe):
    order_day = timezone.localdate() - dt.timedelta(days=40)
    prepaid = order_day - dt.timedelta(days=3)
    job = run_import([
        line("SO-P1", 1, order_day, xiehe, "P1", 10, "100", payment_due=order_day, paid_date=prepaid),
        line("SO-P2", 1, order_day, xiehe, "P1", 10, "100", paid_date=order_day - dt.timedelta(days=400)),
    ])  # fmt: skip

    assert job.created_count == 1 and job.error_count == 1
    [error] = job.errors
    assert (error["row"], error["column"], error["code"]) == (3, "付款日期", "paid_long_before")
    assert OrderLine.objects.get(order_number="SO-P1").paid_date == prepaid
    credit = services.credit(xiehe.pk)
    assert credit.on_time_share == Decimal(1) and credit.outstanding == Decimal("0.00")
