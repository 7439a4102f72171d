"""Found by QA in session 56: the order import read 1_000 as 1000 and an Arabic-Indic ٣ as 3 (Python's Decimal
accepts both), and 2026-W40 — an ISO week — as 2026-09-28. None is how an ERP writes a figure or a day: each is a
row error naming the column, nothing guessed."""

from __future__ import annotations

import datetime as dt

import pytest

from pharmacrm.customers import importer as base
from pharmacrm.customers.importer import FieldError
from pharmacrm.sales import importer

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("typed", ["1_000", "٣", "1٬000", "１_０００"])
def test_numbers_in_other_forms_are_refused(typed):
    with pytest.raises(FieldError):
        importer._decimal(typed)


def test_the_usual_forms_still_read():
    assert [str(importer._decimal(v)) for v in ("1,250.00", "¥1,250.00", "１，２５０．００", "(125.00)", "1,250.00-")] == [
        "1250.00", "1250.00", "1250.00", "-125.00", "-1250.00"]  # fmt: skip


@pytest.mark.parametrize("typed", ["2026-W40", "2026W401", "2026-W40-1", "2026-w40"])
def test_an_iso_week_is_no_day(typed):
    with pytest.raises(FieldError):
        importer._date(typed)
    with pytest.raises(FieldError):
        base.parse_date(typed)


def test_the_usual_dates_still_read():
    assert {importer._date(v) for v in ("2026-09-28", "20260928", "2026/9/28", "2026年9月28日")} == {dt.date(2026, 9, 28)}
