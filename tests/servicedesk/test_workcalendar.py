"""The clock arithmetic of business calendars: worked cases around China's 2026 holidays and 调休, lunch
breaks, a year nobody has entered yet, and properties that must hold for any input (hypothesis)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pharmacrm.servicedesk.workcalendar import ALWAYS_ON, CalendarError, WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
BUSINESS = WorkCalendar()  # Monday–Friday 08:30–12:00, 13:30–17:30, China's holidays


def at(y, m, d, hh=0, mm=0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SH)


# --- worked cases ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (dt.date(2026, 2, 13), True),  # Friday before the Spring Festival
        (dt.date(2026, 2, 14), True),  # Saturday, a swapped working day (调休)
        (dt.date(2026, 2, 15), False),  # Spring Festival holiday, Feb 15–23
        (dt.date(2026, 2, 17), False),  # 初一
        (dt.date(2026, 2, 23), False),
        (dt.date(2026, 2, 24), True),
        (dt.date(2026, 2, 28), True),  # Saturday, swapped working day
        (dt.date(2026, 9, 20), True),  # Sunday, swapped working day before National Day
        (dt.date(2026, 10, 1), False),  # National Day, Oct 1–7
        (dt.date(2026, 10, 7), False),
        (dt.date(2026, 10, 8), True),
        (dt.date(2026, 10, 10), True),  # Saturday, swapped working day
        (dt.date(2026, 10, 11), False),  # an ordinary Sunday
    ],
)
def test_china_2026_holidays_and_swapped_working_days(day, working):
    assert BUSINESS.is_working_day(day) is working


def test_hours_run_across_the_spring_festival_onto_the_swapped_saturday():
    # Friday 13 Feb 16:00 + 4 h: 1.5 h on Friday, then Saturday 14 Feb is a working day
    assert BUSINESS.add_hours(at(2026, 2, 13, 16), 4) == at(2026, 2, 14, 11)
    # Saturday 14 Feb 16:00 + 4 h: 1.5 h, then nine days off, then Tuesday 24 Feb
    assert BUSINESS.add_hours(at(2026, 2, 14, 16), 4) == at(2026, 2, 24, 11)


def test_one_working_day_is_the_same_clock_time_on_the_next_working_day():
    assert BUSINESS.add_days(at(2026, 2, 13, 10), 1) == at(2026, 2, 14, 10)  # onto the 调休 Saturday
    assert BUSINESS.add_days(at(2026, 2, 14, 10), 1) == at(2026, 2, 24, 10)  # over the whole festival
    assert BUSINESS.add_days(at(2026, 9, 30, 15), 2) == at(2026, 10, 9, 15)  # Oct 1–7 off, 8 and 9 work
    assert BUSINESS.add_days(at(2026, 9, 18, 9), 1) == at(2026, 9, 20, 9)  # Sunday 20 Sep is a working day


def test_a_ticket_received_on_a_holiday_starts_counting_at_the_next_working_morning():
    assert BUSINESS.next_working_instant(at(2026, 10, 3, 14)) == at(2026, 10, 8, 8, 30)
    assert BUSINESS.add_hours(at(2026, 10, 3, 14), 2) == at(2026, 10, 8, 10, 30)
    # from 8 Oct 08:30, two working days: Friday 9 Oct, then Saturday 10 Oct (调休)
    assert BUSINESS.add_days(at(2026, 10, 3, 14), 2) == at(2026, 10, 10, 8, 30)


def test_the_lunch_break_does_not_count():
    assert BUSINESS.add_hours(at(2026, 3, 2, 11), 2) == at(2026, 3, 2, 14, 30)  # 1 h before lunch, 1 h after
    # received during the lunch break: the clock starts at 13:30
    assert BUSINESS.add_hours(at(2026, 3, 2, 12, 40), 1) == at(2026, 3, 2, 14, 30)
    assert BUSINESS.add_days(at(2026, 3, 2, 12, 40), 1) == at(2026, 3, 3, 13, 30)
    assert BUSINESS.between(at(2026, 3, 2, 11), at(2026, 3, 2, 14)) == dt.timedelta(hours=1, minutes=30)


def test_a_deadline_in_a_year_nobody_has_entered_falls_back_to_the_weekly_pattern_less_the_days_the_law_fixes():
    """chinese-calendar knows 2004–2026; a ticket of 31 Dec 2026 due in 2027 still gets a deadline. Before the State
    Council's 2027 schedule is entered, the days off the law fixes for every year count: New Year's Day, the Spring
    Festival's eve and first three days (5–8 Feb 2027), Qingming, 1–2 May, the Dragon Boat and Mid-Autumn festivals,
    1–3 October, and a weekday off for one on a weekend (Sunday 7 Feb → 9 Feb, …). Before, Friday 1 January 2027
    counted as a working day, and the Spring Festival as four ordinary weekdays."""
    assert BUSINESS.uncovered_years([2026, 2027]) == [2027]
    assert BUSINESS.add_days(at(2026, 12, 31, 10), 1) == at(2027, 1, 4, 10)  # over New Year's Day and the weekend
    assert BUSINESS.add_days(at(2026, 12, 31, 10), 2) == at(2027, 1, 5, 10)
    off = [d for d in (dt.date(2027, 2, 4) + dt.timedelta(n) for n in range(8)) if not BUSINESS.is_working_day(d)]
    assert off == [dt.date(2027, 2, d) for d in (5, 6, 7, 8, 9, 10)]  # eve, three days, two weekdays for the weekend
    assert BUSINESS.is_working_day(dt.date(2027, 2, 11))  # the State Council's bridging days are not known yet
    assert [d for d in (dt.date(2027, 10, 1) + dt.timedelta(n) for n in range(7)) if not BUSINESS.is_working_day(d)] == [
        dt.date(2027, 10, d) for d in (1, 2, 3, 4, 5)]  # fmt: skip
    assert not BUSINESS.is_working_day(dt.date(2027, 4, 5)) and not BUSINESS.is_working_day(dt.date(2027, 9, 15))
    assert not BUSINESS.is_working_day(dt.date(2027, 6, 9))  # 端午, the fifth of the fifth lunar month
    # the package's own years are untouched: its schedule, not the law's minimum, decides
    assert BUSINESS.is_working_day(dt.date(2026, 2, 14))  # a Saturday of 调休 in 2026
    # an administrator's entry wins over the law's days: the swapped working days once published
    entered = WorkCalendar(overrides={dt.date(2027, 1, 1): False, dt.date(2027, 2, 20): True})
    assert entered.is_working_day(dt.date(2027, 2, 20))  # a Saturday entered as 调休
    # but the year is not "known" until its Spring Festival and National Day are entered too: one holiday
    # made the warnings (home page, calendar pages, `pharmacrm holidays check`) go quiet before
    assert entered.uncovered_years([2027]) == [2027]
    spring = {dt.date(2027, 2, d): False for d in range(5, 12)}
    assert WorkCalendar(overrides={**entered.overrides, **spring}).uncovered_years([2027]) == [2027]
    national = {dt.date(2027, 10, d): False for d in range(1, 8)}
    assert WorkCalendar(overrides={**entered.overrides, **spring, **national}).uncovered_years([2027]) == []


def test_the_days_the_law_fixes_agree_with_the_schedules_the_package_knows():
    """The rule for an unknown year, held to the years chinese-calendar knows since the law's 2024 revision (four
    days for the Spring Festival, two for May Day): every day off the law fixes is a day off in the State Council's
    schedule, so the fallback never makes a working day of a true holiday's core."""
    import chinese_calendar
    import holidays

    for year in (2025, 2026):
        for day, name in holidays.China(years=year).items():
            if "observed" not in name and "substituted" not in name:
                assert day in chinese_calendar.holidays, (day, name)


def test_the_weekly_pattern_counts_in_a_year_the_official_schedule_covers():
    """A hotline open Monday to Saturday (or a weekend team) follows China's holidays and 调休 on top of its
    own weekdays: an ordinary Saturday is a working day for it, an ordinary Monday is not for a weekend team."""
    six_days = WorkCalendar(workdays=frozenset(range(6)))
    assert six_days.is_working_day(dt.date(2026, 3, 7))  # an ordinary Saturday
    assert not six_days.is_working_day(dt.date(2026, 3, 8))  # an ordinary Sunday
    assert not six_days.is_working_day(dt.date(2026, 10, 3))  # a Saturday in the National Day week
    assert six_days.is_working_day(dt.date(2026, 9, 20))  # Sunday 20 Sep, 调休
    assert six_days.add_days(at(2026, 3, 6, 10), 1) == at(2026, 3, 7, 10)
    weekends = WorkCalendar(workdays=frozenset({5, 6}))
    assert not weekends.is_working_day(dt.date(2026, 3, 2))  # an ordinary Monday
    assert weekends.is_working_day(dt.date(2026, 3, 8))
    assert not weekends.is_working_day(dt.date(2026, 2, 21))  # a Saturday of the Spring Festival
    assert weekends.add_days(at(2026, 3, 1, 10), 1) == at(2026, 3, 7, 10)


def test_overrides_beat_the_official_schedule():
    company = WorkCalendar(overrides={dt.date(2026, 3, 2): False, dt.date(2026, 3, 7): True})
    assert not company.is_working_day(dt.date(2026, 3, 2))  # a Monday made a company holiday
    assert company.is_working_day(dt.date(2026, 3, 7))  # a Saturday made a working day
    assert company.add_days(at(2026, 2, 27, 9), 1) == at(2026, 2, 28, 9)  # official 调休 Saturday still works
    assert company.add_days(at(2026, 2, 28, 9), 1) == at(2026, 3, 3, 9)


def test_the_24x7_calendar_counts_every_hour():
    assert ALWAYS_ON.add_hours(at(2026, 2, 17, 23), 2) == at(2026, 2, 18, 1)
    assert ALWAYS_ON.add_days(at(2026, 10, 1, 9), 1) == at(2026, 10, 2, 9)
    assert ALWAYS_ON.between(at(2026, 10, 1), at(2026, 10, 2)) == dt.timedelta(days=1)


def test_a_pause_pushes_the_deadline_back_by_the_working_time_spent_waiting():
    start = at(2026, 3, 2, 9)  # Monday
    plain = BUSINESS.deadline(start, days=2)
    assert plain == at(2026, 3, 4, 9)
    waited = BUSINESS.between(at(2026, 3, 2, 16), at(2026, 3, 3, 10))  # 1.5 h + 1.5 h of working time
    assert waited == dt.timedelta(hours=3)
    assert BUSINESS.deadline(start, days=2, paused=waited) == at(2026, 3, 4, 12)  # 09:00 + 3 h, up to lunch
    assert BUSINESS.deadline(start, days=2, paused=waited + dt.timedelta(minutes=1)) == at(2026, 3, 4, 13, 31)


def test_results_keep_the_callers_time_zone():
    utc = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai
    due = BUSINESS.add_hours(utc, 1)
    assert due.tzinfo == dt.UTC and due == at(2026, 3, 2, 10)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"windows": ()},
        {"windows": ((dt.time(12), dt.time(9)),)},
        {"windows": ((dt.time(8), dt.time(12)), (dt.time(11), dt.time(13)))},
        {"time_zone": "Mars/Olympus"},
    ],
)
def test_an_impossible_calendar_is_refused(kwargs):
    with pytest.raises(CalendarError):
        WorkCalendar(**kwargs)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        BUSINESS.add_hours(dt.datetime(2026, 3, 2, 9), 1)


# --- properties ------------------------------------------------------------------------------------

moments = st.datetimes(min_value=dt.datetime(2025, 12, 1), max_value=dt.datetime(2031, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0, tzinfo=SH)
)
minutes = st.integers(min_value=0, max_value=60 * 24 * 20).map(lambda m: dt.timedelta(minutes=m))
calendars = st.sampled_from(
    [
        BUSINESS,
        WorkCalendar(windows=((dt.time(0), dt.time(23, 59)),), workdays=frozenset(range(7))),
        WorkCalendar(windows=((dt.time(9), dt.time(12)), (dt.time(13), dt.time(15)), (dt.time(19), dt.time(21)))),
        WorkCalendar(time_zone="Europe/Berlin", official_holidays=False),  # with daylight saving time
        WorkCalendar(  # round the clock on weekdays, across Berlin's DST changes at 02:00/03:00
            time_zone="Europe/Berlin", official_holidays=False, windows=((dt.time(0), dt.time(23, 59)),)
        ),
    ]
)
PROPERTY = settings(max_examples=150, deadline=None)


@PROPERTY
@given(calendars, moments, minutes)
def test_a_deadline_never_comes_before_the_start_and_is_working_time(cal, start, duration):
    due = cal.add(start, duration)
    assert due >= start
    assert cal.is_working_instant(due)


@PROPERTY
@given(calendars, moments, minutes, minutes)
def test_adding_a_then_b_equals_adding_a_plus_b(cal, start, a, b):
    assert cal.add(cal.add(start, a), b) == cal.add(start, a + b)


@PROPERTY
@given(calendars, moments, minutes)
def test_the_working_time_between_start_and_deadline_is_the_duration(cal, start, duration):
    assert cal.between(start, cal.add(start, duration)) == duration


@PROPERTY
@given(calendars, moments, st.integers(0, 15), minutes, minutes)
def test_a_pause_never_shortens_a_deadline(cal, start, days, hours, paused):
    hours_value = hours.total_seconds() / 3600
    assert cal.deadline(start, days=days, hours=hours_value, paused=paused) >= cal.deadline(
        start, days=days, hours=hours_value
    )


@PROPERTY
@given(calendars, moments, st.integers(0, 30))
def test_working_days_land_on_working_time_and_never_go_back(cal, start, days):
    due = cal.add_days(start, days)
    assert due >= start and cal.is_working_instant(due)
