"""Working-time arithmetic on a business calendar: China's official holidays and swapped working days
(调休, from the `chinese-calendar` package), an administrator's overrides per date, several working
windows a day, a time zone — or a 24×7 calendar.

Everything here is pure and deterministic: the same calendar and the same inputs give the same
deadline, so a ticket's clocks can always be rebuilt from its history. A year that neither the package
nor the overrides cover falls back to the weekly pattern, less the public holidays the law fixes for every year
(`statutory_days`), and is reported by `uncovered_years` (never an exception), so that administrators can be
warned.

Conventions: a *working instant* lies inside a working window, both ends included. Adding working time
returns the earliest instant at which that much working time has passed; adding nothing returns the
start if it is a working instant, else the start of the next window. A window that ends at 00:00 ends at midnight,
the end of its day (written 24:00 on the settings page): an evening shift to midnight, or round the clock on working
days only (00:00–24:00) — windows never cross midnight, the day they belong to decides whether they count.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar

DEFAULT_TIME_ZONE = "Asia/Shanghai"
DEFAULT_WINDOWS = ((dt.time(8, 30), dt.time(12, 0)), (dt.time(13, 30), dt.time(17, 30)))
MONDAY_TO_FRIDAY = frozenset(range(5))
MAX_SEARCH_DAYS = 3660  # a calendar with no working day at all must not loop forever
MIDNIGHT = dt.time(0)  # as a window's end: 24:00, the end of the window's day
ONE_DAY = dt.timedelta(days=1)


class CalendarError(ValueError):
    """A calendar that cannot work: no windows, overlapping windows, an unknown time zone …"""


@lru_cache(maxsize=4096)
def official_day(day: dt.date) -> bool | None:
    """China's official word on a date — False a public holiday, True a swapped working day (调休) — or None
    for an ordinary day and for a year the chinese-calendar package does not cover: there the calendar's
    own weekly pattern decides (a hotline open Monday to Saturday works an ordinary Saturday)."""
    if day in chinese_calendar.holidays:
        return False
    if day in chinese_calendar.workdays:
        return True
    if day.year > official_years()[-1] and day in statutory_days(day.year):
        return False
    return None


@lru_cache(maxsize=1)
def official_years() -> range:
    """The years the installed chinese-calendar package knows."""
    years = [d.year for d in chinese_calendar.constants.holidays]
    return range(min(years), max(years) + 1)


HOLIDAY_LANGUAGES = {"zh-hans": "zh_CN", "zh-hant": "zh_TW", "en": "en_US"}


@lru_cache(maxsize=64)
def statutory_days(year: int, language: str = "en") -> dict[dt.date, str]:
    """For a year after those the chinese-calendar package knows: the days off the law itself fixes, before the State
    Council publishes the year's schedule — New Year's Day, the Spring Festival's eve and first three days, Qingming,
    1 and 2 May, the Dragon Boat and Mid-Autumn festivals, 1 to 3 October (全国年节及纪念日放假办法, as revised in
    2024), and a weekday off for one that falls on a weekend, as the law requires (from the `holidays` package,
    which computes the lunar dates). The State Council's bridging days and swapped working days (调休) are not known
    until it publishes them: deadlines there stay provisional, and administrators are warned until the year is
    entered. Empty for any other year. Names in `language` (a page's language code)."""
    if year <= official_years()[-1]:
        return {}
    import holidays

    code = HOLIDAY_LANGUAGES.get((language or "en").lower(), "zh_CN" if (language or "").lower().startswith("zh") else "en_US")
    return dict(holidays.China(years=year, language=code))


@dataclass(frozen=True)
class WorkCalendar:
    """A business calendar as the clock arithmetic sees it (built from a BusinessCalendar row)."""

    time_zone: str = DEFAULT_TIME_ZONE
    windows: tuple[tuple[dt.time, dt.time], ...] = DEFAULT_WINDOWS
    workdays: frozenset[int] = MONDAY_TO_FRIDAY  # the weekly pattern (Monday = 0)
    official_holidays: bool = True  # follow China's holidays and 调休 where the package covers the year
    overrides: dict[dt.date, bool] = field(default_factory=dict)  # date → working?
    always_on: bool = False  # 24×7: every instant is working time

    def __post_init__(self):
        try:
            object.__setattr__(self, "tz", ZoneInfo(self.time_zone))
        except Exception as e:  # ZoneInfoNotFoundError, ValueError for malformed keys
            raise CalendarError(f"unknown time zone {self.time_zone!r}") from e
        if self.always_on:
            return
        windows = tuple(sorted(self.windows))
        if not windows:
            raise CalendarError("a working calendar needs at least one working window")
        for start, end in windows:
            if not _minutes(start) < _end_minutes(end):
                raise CalendarError(f"window {start}–{end} ends before it starts")
        for (_s1, e1), (s2, _e2) in zip(windows, windows[1:], strict=False):
            if _minutes(s2) < _end_minutes(e1):
                raise CalendarError("working windows overlap")
        object.__setattr__(self, "windows", windows)
        object.__setattr__(self, "day_length", sum((_end_minutes(e) - _minutes(s) for s, e in windows), 0))

    # --- days ---------------------------------------------------------------------------------

    def is_working_day(self, day: dt.date) -> bool:
        if self.always_on:
            return True
        if day in self.overrides:
            return self.overrides[day]
        if self.official_holidays:
            official = official_day(day)
            if official is not None:
                return official
        return day.weekday() in self.workdays

    def covers(self, year: int) -> bool:
        """Whether the year's holidays are known: to the package, or entered as overrides (the Spring Festival
        and National Day at least)."""
        if self.always_on or not self.official_holidays:
            return True
        if year in official_years():
            return True
        # entered by hand: the year is known once its two long holidays are there. One company holiday or
        # New Year's Day alone must not hide that the Spring Festival (between 20 Jan and 28 Feb) and the
        # National Day week are missing: deadlines would run through them as working days.
        rest = [d for d, working in self.overrides.items() if d.year == year and not working]
        spring = any(dt.date(year, 1, 20) <= d <= dt.date(year, 2, 28) for d in rest)
        national = any(dt.date(year, 10, 1) <= d <= dt.date(year, 10, 8) for d in rest)
        return spring and national

    def uncovered_years(self, years: Iterable[int]) -> list[int]:
        return sorted(y for y in set(years) if not self.covers(y))

    def working_days(self, start: dt.date) -> Iterator[dt.date]:
        """Working days from `start` on (start included if it is one)."""
        day, idle = start, 0
        while idle < MAX_SEARCH_DAYS:  # ten years without a working day in a row, not ten years in all
            if self.is_working_day(day):
                idle = 0
                yield day
            else:
                idle += 1
            day += dt.timedelta(days=1)
        raise CalendarError("no working day in ten years: check the calendar's weekly pattern")

    # --- instants -----------------------------------------------------------------------------

    def local(self, moment: dt.datetime) -> dt.datetime:
        if moment.tzinfo is None:
            raise ValueError("working-time arithmetic needs aware datetimes")
        return moment.astimezone(self.tz)

    def _windows_on(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        """The day's working windows as UTC instants: spans are then real durations, also across a
        daylight-saving change (same-zone aware datetimes subtract as wall-clock times)."""
        return [
            (dt.datetime.combine(day, s, self.tz).astimezone(dt.UTC),
             dt.datetime.combine(day + ONE_DAY if e == MIDNIGHT else day, e, self.tz).astimezone(dt.UTC))
            for s, e in self.windows
        ]  # fmt: skip

    def _windows_from(self, moment: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """Working windows that end at or after `moment`, in order, the first one clipped to start there."""
        utc = moment.astimezone(dt.UTC)
        # from the day before: its window to midnight ends at `moment` when that is 00:00
        for day in self.working_days(self.local(moment).date() - ONE_DAY):
            for start, end in self._windows_on(day):
                if end < utc:
                    continue
                yield max(start, utc), end

    def is_working_instant(self, moment: dt.datetime) -> bool:
        if self.always_on:
            return True
        day = self.local(moment).date()
        # 00:00 also ends the day before's window to midnight
        return any(
            self.is_working_day(d) and any(s <= moment <= e for s, e in self._windows_on(d)) for d in (day, day - ONE_DAY)
        )

    def next_working_instant(self, moment: dt.datetime) -> dt.datetime:
        """`moment` itself if it is working time, else the start of the next working window."""
        if self.always_on:
            return moment
        start, _end = next(self._windows_from(moment))
        return start.astimezone(moment.tzinfo)

    def add(self, start: dt.datetime, duration: dt.timedelta) -> dt.datetime:
        """The earliest instant at which `duration` of working time has passed since `start`."""
        if duration < dt.timedelta(0):
            raise ValueError("working time cannot be negative")
        if self.always_on:
            return start + duration
        left = duration
        for begin, end in self._windows_from(start):
            span = end - begin
            if left <= span:
                return (begin + left).astimezone(start.tzinfo)
            left -= span
        raise AssertionError("unreachable: _windows_from never ends")  # pragma: no cover

    def add_hours(self, start: dt.datetime, hours: float) -> dt.datetime:
        return self.add(start, dt.timedelta(hours=hours))

    def add_days(self, start: dt.datetime, days: int) -> dt.datetime:
        """The same clock time `days` working days later (counting from the next working instant); if
        that moment is outside working time there, the next working instant."""
        if days < 0:
            raise ValueError("working days cannot be negative")
        if self.always_on:
            return start + dt.timedelta(days=days)
        begin = self.local(self.next_working_instant(start))
        day = begin.date()
        if days:
            later = self.working_days(day + dt.timedelta(days=1))
            for _ in range(days):
                day = next(later)
        target = dt.datetime.combine(day, begin.timetz().replace(tzinfo=None), self.tz)
        return self.next_working_instant(target).astimezone(start.tzinfo)

    def deadline(
        self, start: dt.datetime, *, hours: float = 0, days: int = 0, paused: dt.timedelta = dt.timedelta(0)
    ) -> dt.datetime:
        """A target's deadline: `days` working days (same clock time) and/or `hours` working hours after
        `start`, pushed back by the working time the clock spent paused (waiting on the customer)."""
        due = self.add_days(start, days) if days else start
        return self.add(due, dt.timedelta(hours=hours) + paused)

    def between(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """Working time between two instants (zero when end ≤ start)."""
        if end <= start:
            return dt.timedelta(0)
        if self.always_on:
            return end - start
        total = dt.timedelta(0)
        end = end.astimezone(dt.UTC)
        for begin, stop in self._windows_from(start):
            if begin >= end:
                break
            total += min(stop, end) - begin
        return total


def _minutes(t: dt.time) -> int:
    return t.hour * 60 + t.minute


def _end_minutes(t: dt.time) -> int:
    """A window's end in minutes of its day: 00:00 is midnight at its end (24:00)."""
    return 24 * 60 if t == MIDNIGHT else _minutes(t)


ALWAYS_ON = WorkCalendar(always_on=True)
