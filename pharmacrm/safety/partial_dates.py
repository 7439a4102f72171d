"""Dates known only to the month or the year (ICH E2B(R3): a reaction's start and end, E.i.4 / E.i.5, are sent at the
precision they are known — YYYYMMDD, YYYYMM or YYYY). "She got the rash in March 2026" is no 1 March: stored as the
first day of the period with its precision, shown and exported as 2026-03 / 202603, compared as the whole period."""

from __future__ import annotations

import calendar
import datetime as dt
import re
import unicodedata

from django.db import models
from django.utils.translation import gettext_lazy as _


class Precision(models.TextChoices):
    DAY = "day", _("Day")
    MONTH = "month", _("Month")
    YEAR = "year", _("Year")


# 2026-03-15, 2026/3/15, 2026.03.15, 2026年3月15日; 2026-03, 2026/3, 2026.3, 2026年3月; 2026, 2026年 — after NFKC
# (full-width digits and separators are the ASCII ones) and without spaces (2026 年 3 月). One separator throughout
# (2026-03/15 is no date) and ASCII digits (Arabic-Indic ٢٠٢٦ is none; `\d` took it).
_FORMS = re.compile(
    r"(?P<year>[0-9]{4})年?"
    r"|(?P<year_s>[0-9]{4})(?P<sep>[-/.])(?P<month_s>[0-9]{1,2})(?:(?P=sep)(?P<day_s>[0-9]{1,2}))?"
    r"|(?P<year_cn>[0-9]{4})年(?P<month_cn>[0-9]{1,2})(?:月(?:(?P<day_cn>[0-9]{1,2})日?)?)?"
)
_E2B = re.compile(r"(\d{4})(\d{2})?(\d{2})?")

INVALID = _("Enter a date (2026-03-15), a month (2026-03) or a year (2026).")


def parse(value) -> tuple[dt.date, str] | None:
    """(the first day of the period, its precision) of a typed or sent value; None for an empty one. ValueError
    when it is none of a day, a month or a year."""
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        raise ValueError("a moment, not a date")
    if isinstance(value, dt.date):
        return value, Precision.DAY
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(value)))
    if not text:
        return None
    match = _FORMS.fullmatch(text)
    if not match:
        raise ValueError(text)
    year = match["year"] or match["year_s"] or match["year_cn"]
    month, day = match["month_s"] or match["month_cn"], match["day_s"] or match["day_cn"]
    date = dt.date(int(year), int(month or 1), int(day or 1))  # ValueError for 2026-13 or 2026-02-30
    return date, Precision.DAY if day else Precision.MONTH if month else Precision.YEAR


def parse_e2b(value: str) -> tuple[dt.date, str] | None:
    """An E2B TS value (YYYY, YYYYMM, YYYYMMDD, a time after it ignored) as (first day, precision); None if it is
    not one."""
    match = _E2B.match(value or "")
    if not match:
        return None
    year, month, day = match.group(1), match.group(2), match.group(3)
    try:
        date = dt.date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return None
    return date, Precision.DAY if day else Precision.MONTH if month else Precision.YEAR


def text(date: dt.date | None, precision: str = Precision.DAY) -> str:
    """2026-03-15, 2026-03 or 2026 ("" for no date): how it is shown, typed and given by the API."""
    if date is None:
        return ""
    if precision == Precision.YEAR:
        return f"{date.year:04d}"
    if precision == Precision.MONTH:
        return f"{date.year:04d}-{date.month:02d}"
    return date.isoformat()


def e2b(date: dt.date, precision: str = Precision.DAY) -> str:
    """The E2B(R3) TS value at the known precision: YYYYMMDD, YYYYMM or YYYY."""
    return text(date, precision).replace("-", "")


def last_day(date: dt.date, precision: str = Precision.DAY) -> dt.date:
    """The last day of the period (a month's, a year's): what an end is compared by."""
    if precision == Precision.YEAR:
        return dt.date(date.year, 12, 31)
    if precision == Precision.MONTH:
        return dt.date(date.year, date.month, calendar.monthrange(date.year, date.month)[1])
    return date
