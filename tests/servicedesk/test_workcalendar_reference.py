"""The production clock arithmetic (workcalendar.WorkCalendar) held against a plain reference that walks minute by
minute: random start instants (given in UTC, as the database stores them) and durations across 2025–2027, on the
default business calendar (China's holidays and 调休 from chinese-calendar for 2025–2026), on one with 2027's
schedule entered by an administrator (overrides, with weekend working days), and on calendars with other windows.

The reference knows nothing of the production code's windows-as-intervals: a minute [t, t+1) is working time when
its local date is a working day and its local time lies in a window; a deadline is the end of the minute that
completes the duration."""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo

import chinese_calendar
import holidays
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pharmacrm.servicedesk.workcalendar import WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
MINUTE = dt.timedelta(minutes=1)

# A hypothetical 2027 schedule as an administrator would enter it (the State Council's real one is not in
# chinese-calendar 1.11.0): holiday periods, and Saturdays/Sundays made working days (调休).
OFF_2027 = [
    *[dt.date(2027, 1, d) for d in (1, 2, 3)],
    *[dt.date(2027, 2, d) for d in range(5, 14)],  # Spring Festival, 5–13 Feb
    *[dt.date(2027, 4, d) for d in (3, 4, 5)],
    *[dt.date(2027, 5, d) for d in range(1, 6)],
    *[dt.date(2027, 6, d) for d in (9, 10, 11)],
    *[dt.date(2027, 9, d) for d in (15, 16, 17)],
    *[dt.date(2027, 10, d) for d in range(1, 8)],
    dt.date(2027, 12, 31),  # a company day off that runs the year-end into 2028's New Year
]
ON_2027 = [dt.date(2027, 2, 20), dt.date(2027, 2, 21), dt.date(2027, 4, 25), dt.date(2027, 9, 26), dt.date(2027, 10, 9)]
ENTERED_2027 = {**{d: False for d in OFF_2027}, **{d: True for d in ON_2027}}


@functools.cache
def law_days(year: int) -> frozenset[dt.date]:
    return frozenset(holidays.China(years=year))


class Reference:
    """Minute-by-minute working time. `windows` in local wall-clock minutes of the day, end excluded for a minute
    to count (a window 08:30–12:00 counts the minutes 08:30 … 11:59)."""

    def __init__(self, windows, workdays=frozenset(range(5)), overrides=None):
        # a window's end of 00:00 is midnight, the end of its day (24:00)
        self.windows = [(s.hour * 60 + s.minute, e.hour * 60 + e.minute or 24 * 60) for s, e in windows]
        self.workdays = workdays
        self.overrides = overrides or {}

    def working_day(self, day: dt.date) -> bool:
        if day in self.overrides:
            return self.overrides[day]
        if day.year <= 2026:
            if day in chinese_calendar.holidays:
                return False
            if day in chinese_calendar.workdays:
                return True
            return day.weekday() in self.workdays
        # a year nobody entered: the weekly pattern less the days the law fixes
        if day in law_days(day.year):
            return False
        return day.weekday() in self.workdays

    def working_minute(self, t: dt.datetime) -> bool:
        local = t.astimezone(SH)
        m = local.hour * 60 + local.minute
        return self.working_day(local.date()) and any(s <= m < e for s, e in self.windows)

    def working_instant(self, t: dt.datetime) -> bool:
        """Inside a window, both ends included (the convention of the production code): 00:00 also ends the day
        before's window to midnight."""
        local = t.astimezone(SH)
        m = local.hour * 60 + local.minute
        if self.working_day(local.date()) and any(s <= m <= e for s, e in self.windows):
            return True
        yesterday = local.date() - dt.timedelta(days=1)
        return m == 0 and self.working_day(yesterday) and any(e == 24 * 60 for _s, e in self.windows)

    def next_instant(self, t: dt.datetime) -> dt.datetime:
        while not self.working_instant(t):
            t += MINUTE
        return t

    def add(self, start: dt.datetime, minutes: int) -> dt.datetime:
        if minutes == 0:
            return self.next_instant(start)
        t, counted = start, 0
        while True:
            if self.working_minute(t):
                counted += 1
                if counted == minutes:
                    return t + MINUTE
            t += MINUTE

    def between(self, start: dt.datetime, end: dt.datetime) -> int:
        t, counted = start, 0
        while t < end:
            counted += self.working_minute(t)
            t += MINUTE
        return counted

    def add_days(self, start: dt.datetime, days: int) -> dt.datetime:
        begin = self.next_instant(start).astimezone(SH)
        day = begin.date()
        for _ in range(days):
            day += dt.timedelta(days=1)
            while not self.working_day(day):
                day += dt.timedelta(days=1)
        return self.next_instant(dt.datetime.combine(day, begin.time(), SH))


LUNCH = ((dt.time(8, 30), dt.time(12, 0)), (dt.time(13, 30), dt.time(17, 30)))
EVENING = ((dt.time(7, 0), dt.time(11, 0)), (dt.time(12, 0), dt.time(16, 0)), (dt.time(19, 0), dt.time(23, 30)))
MIDNIGHT = ((dt.time(8, 0), dt.time(12, 0)), (dt.time(18, 0), dt.time(0)))  # an evening shift to midnight
ROUND_THE_CLOCK = ((dt.time(0), dt.time(0)),)  # 00:00–24:00 on working days only
CASES = [
    (WorkCalendar(), Reference(LUNCH)),
    (WorkCalendar(overrides=ENTERED_2027), Reference(LUNCH, overrides=ENTERED_2027)),
    (WorkCalendar(windows=EVENING, workdays=frozenset(range(6))), Reference(EVENING, workdays=frozenset(range(6)))),
    (WorkCalendar(windows=MIDNIGHT), Reference(MIDNIGHT)),
    (WorkCalendar(windows=ROUND_THE_CLOCK, overrides=ENTERED_2027), Reference(ROUND_THE_CLOCK, overrides=ENTERED_2027)),
]

# start instants in UTC at whole minutes, from 2025 through 2027 (deadlines run on into 2028)
starts = st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2027, 12, 31, 23, 59)).map(
    lambda d: d.replace(second=0, microsecond=0, tzinfo=dt.UTC)
)
durations = st.one_of(st.integers(0, 90), st.integers(0, 60 * 8 * 6))  # up to six working days of hours
cases = st.sampled_from(range(len(CASES)))
PROPERTY = settings(max_examples=200, deadline=None)


def utc(y, m, d, hh=0, mm=0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SH).astimezone(dt.UTC)


@PROPERTY
@given(cases, starts, durations)
@example(0, utc(2026, 2, 14, 23, 30), 60)  # 23:30 Beijing on the Spring Festival's eve, stored as 15:30 UTC
@example(0, utc(2026, 9, 30, 23, 30), 30)  # the eve of National Day
@example(0, utc(2026, 12, 31, 17), 480)  # into 2027, which nobody has entered
@example(1, utc(2027, 2, 4, 17), 60)  # onto the 调休 Saturday after the Spring Festival
@example(1, utc(2027, 12, 30, 17), 60)  # over a year end that is a holiday on both sides
@example(0, utc(2025, 12, 31, 12), 240)
@example(2, utc(2026, 3, 2, 23, 29), 2)
@example(3, utc(2026, 9, 30, 23), 60)  # the shift to midnight on the eve of National Day: due at 24:00
@example(3, utc(2026, 9, 30, 23), 61)  # … a minute more: after the holiday
@example(4, utc(2027, 2, 4, 12), 60 * 12)  # round the clock up to the Spring Festival's midnight
@example(3, utc(2026, 10, 1, 0), 0)  # midnight ending the last working day before a holiday is working time
def test_adding_working_time_agrees_with_the_minute_by_minute_reference(case, start, minutes):
    production, reference = CASES[case]
    assert production.add(start, dt.timedelta(minutes=minutes)) == reference.add(start, minutes)


@PROPERTY
@given(cases, starts, st.integers(0, 60 * 24 * 12))
@example(0, utc(2026, 2, 13, 16), 60 * 24 * 12)
@example(1, utc(2027, 2, 4, 10), 60 * 24 * 12)
def test_working_time_between_two_instants_agrees_with_the_reference(case, start, minutes):
    production, reference = CASES[case]
    end = start + dt.timedelta(minutes=minutes)
    assert production.between(start, end) == dt.timedelta(minutes=reference.between(start, end))


@PROPERTY
@given(cases, starts, st.integers(0, 12))
@example(0, utc(2026, 2, 13, 10), 1)
@example(0, utc(2026, 12, 31, 10), 2)
@example(1, utc(2027, 2, 4, 10), 1)
@example(1, utc(2027, 12, 30, 23, 30), 1)
@example(3, utc(2026, 10, 1, 0), 1)
@example(4, utc(2026, 2, 13, 10), 1)
def test_working_days_agree_with_the_reference(case, start, days):
    production, reference = CASES[case]
    assert production.add_days(start, days) == reference.add_days(start, days)


def reference_deadline(reference: Reference, start: dt.datetime, minutes: int, waits: list[tuple]) -> dt.datetime:
    """The clock of a ticket: it runs through working minutes, stands still while the ticket waits on the customer
    (a wait that begins once the target is used up changes nothing)."""
    if minutes == 0:
        return reference.next_instant(start)
    t, counted = start, 0
    while True:
        if reference.working_minute(t) and not any(a <= t < b for a, b in waits):
            counted += 1
            if counted == minutes:
                return t + MINUTE
        t += MINUTE


@st.composite
def waits_after(draw, start: dt.datetime) -> list[tuple]:
    """Up to three waits on the customer, in order, within twelve days of the start."""
    marks = sorted(draw(st.lists(st.integers(0, 60 * 24 * 12), min_size=0, max_size=6, unique=True)))
    marks = marks[: len(marks) // 2 * 2]
    return [(start + dt.timedelta(minutes=a), start + dt.timedelta(minutes=b)) for a, b in zip(marks[::2], marks[1::2], strict=True)]


@PROPERTY
@given(cases, starts, st.integers(1, 60 * 8 * 4), st.data())
@example(0, utc(2026, 3, 4, 9), 60, None)  # (data drawn below: a wait after the deadline)
def test_a_deadline_with_waits_on_the_customer_agrees_with_the_reference(case, start, minutes, data):
    from pharmacrm.servicedesk.services import _pushed_back

    production, reference = CASES[case]
    if data is None:  # due 10:00; waits from 10:30 to the next day: nothing to stop any more
        waits = [(utc(2026, 3, 4, 10, 30), utc(2026, 3, 5, 10))]
    else:
        waits = data.draw(waits_after(start))
    due, _counted = _pushed_back(production, production.add(start, dt.timedelta(minutes=minutes)), waits)
    assert due == reference_deadline(reference, start, minutes, waits)
