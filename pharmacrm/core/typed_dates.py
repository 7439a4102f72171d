"""Days and moments as people type them and reports write them: 2026-03-15, 2026/3/15, 2026.03.15, 2026年3月15日,
and a time after them (14:30, 14时30分); full-width digits from an input method's full-width mode are the ASCII ones.
One reading for the API (core.api_utils), the pages and the services."""

from __future__ import annotations

import re
import unicodedata

from django.utils.translation import gettext_lazy

# A typed field's placeholder: an example of what it reads, in the reader's language ("例如：2026-03-15"). The bare
# "YYYY-MM-DD" was English to a Chinese reader, and "年-月-日" is no form anybody types; the ISO form is one every
# typed field takes (as do 2026/3/15 and 2026年3月15日: see the error messages and help texts).
DAY_EXAMPLE = gettext_lazy("e.g. 2026-03-15")
MOMENT_EXAMPLE = gettext_lazy("e.g. 2026-03-15 14:30")
MONTH_EXAMPLE = gettext_lazy("e.g. 2026-12")

# a day as ERP systems and Excel export it: 2025-03-15, 2025/3/15, 2025.03.15, 2025年3月15日 (after NFKC, so that
# full-width digits and separators are the ASCII ones; Arabic-Indic digits are not read)
_TYPED_DATE = re.compile(r"([0-9]{4})([-/.])([0-9]{1,2})\2([0-9]{1,2})|([0-9]{4})年([0-9]{1,2})月([0-9]{1,2})日")


def typed_date(value: str) -> str | None:
    """A day as typed or exported (see _TYPED_DATE), as YYYY-MM-DD — whether the calendar has it or not — else
    None."""
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", value))
    found = _TYPED_DATE.fullmatch(text)
    if found is None:
        return None
    parts = found.groups()
    year, month, day = (parts[0], parts[2], parts[3]) if parts[0] else parts[4:]
    return f"{year}-{int(month):02d}-{int(day):02d}"


# a moment as people type it or a report writes it: a day as _TYPED_DATE reads it, then the time — 14:30, 14:30:05,
# 14时30分, 14点30分, 14时 — after a space or a T (2026-03-15T14:30, as a date-time input sends it), or right after 日
# (2026年3月15日14时30分); after NFKC (full-width digits and colons are the ASCII ones), spaces around the Chinese
# words dropped
_TYPED_MOMENT = re.compile(
    r"(?P<day>[0-9]{4}([-/.])[0-9]{1,2}\2[0-9]{1,2}(?:T| )|[0-9]{4}年[0-9]{1,2}月[0-9]{1,2}日(?:T| )?)"
    r"(?P<hour>[0-9]{1,2})(?::(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2}))?"
    r"|[时点](?:(?P<minute_cn>[0-9]{1,2})分(?:(?P<second_cn>[0-9]{1,2})秒)?)?)"
)


def typed_datetime(value: str) -> str | None:
    """A moment as typed (see _TYPED_MOMENT), as YYYY-MM-DDTHH:MM:SS without an offset (the reader's time zone) —
    whether the calendar and the clock have it or not — else None. A day alone is no moment here: its time would be a
    guess."""
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", value)).strip()
    text = re.sub(r" ?([年月日时点分秒:/.-]) ?", r"\1", text)
    found = _TYPED_MOMENT.fullmatch(text)
    if found is None:
        return None
    day = typed_date(found["day"].rstrip("T "))
    minute = found["minute"] or found["minute_cn"] or 0
    second = found["second"] or found["second_cn"] or 0
    return f"{day}T{int(found['hour']):02d}:{int(minute):02d}:{int(second):02d}"
