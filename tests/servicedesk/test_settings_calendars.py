"""Business-calendar settings pages: who may use them, the list with the warning for a year without holidays,
create and edit (windows validated line by line, weekdays as checkboxes, a stale version is a conflict),
and a year's overrides next to the official schedule of chinese-calendar."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils.html import escape

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.servicedesk import calendars, workcalendar
from pharmacrm.servicedesk.forms_settings_calendars import parse_windows
from pharmacrm.servicedesk.models import BusinessCalendar, CalendarOverride

LIST = reverse("servicedesk:settings-calendars")
CREATE = reverse("servicedesk:settings-calendar-create")
KNOWN = workcalendar.official_years()
COVERED, UNCOVERED = KNOWN.stop - 1, KNOWN.stop  # the package's last year, and the year after it


@pytest.fixture(autouse=True)
def english(settings):
    settings.LANGUAGE_CODE = "en"


def edit_url(code="business"):
    return reverse("servicedesk:settings-calendar-edit", args=[code])


def year_url(year, code="business", name="settings-calendar-year"):
    return reverse(f"servicedesk:{name}", args=[code, year])


def business():
    return BusinessCalendar.objects.get(code="business")


def form_data(cal=None, **changes):
    data = {"name": "夜班", "time_zone": "Asia/Shanghai", "windows": "08:30-12:00\n13:30-17:30",
            "workdays": ["0", "1", "2", "3", "4"], "official_holidays": "on"}  # fmt: skip
    if cal is not None:
        data.update(name=cal.name, version=str(cal.version))
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


# --- access ----------------------------------------------------------------------------------------------


PAGES = [
    ("get", LIST, None),
    ("get", CREATE, None),
    ("post", CREATE, {"code": "x", "name": "x"}),
    ("get", edit_url(), None),
    ("post", edit_url(), {"name": "x"}),
    ("get", year_url(2027), None),
    ("post", year_url(2027, name="settings-calendar-override-add"), {"date": "2027-01-01", "working": "0"}),
    ("post", year_url(2027, name="settings-calendar-override-remove"), {"date": "2027-01-01"}),
]


@pytest.mark.parametrize(("method", "url", "data"), PAGES)
@pytest.mark.parametrize(
    "role", ["admin", "manager", "agent", "auditor"] + [r.value for r in (Role.KAM, Role.REP)]
)
def test_every_page_is_for_administrators_and_managers_only(client_for, role, method, url, data):
    response = getattr(client_for(role), method)(url, data or {})
    if role in ("admin", "manager"):
        assert response.status_code in (200, 302, 400)
    else:
        assert response.status_code == 403
        assert not CalendarOverride.objects.exists()
        assert not BusinessCalendar.objects.filter(code="x").exists()
        assert business().name == "工作日历（中国大陆）"


def test_anonymous_visitors_are_sent_to_sign_in(client):
    assert client.get(LIST).status_code == 302


# --- list ------------------------------------------------------------------------------------------------


def test_the_list_shows_every_calendar_and_the_coverage_warning(client_for):
    page = client_for("admin").get(LIST).content.decode()
    assert "Business calendar (Mainland China)" in page and "Around the clock (24×7)" in page  # shipped names, translated
    assert "Asia/Shanghai" in page and "08:30–12:00, 13:30–17:30" in page and "Mon Tue Wed Thu Fri" in page
    gaps = calendars.coverage_gaps()
    for gap in gaps:  # chinese-calendar 1.11.0 ends with 2026: from November 2026 on, 2027 is missing
        assert f'data-gap="{gap.calendar.code}-{gap.year}"' in page
        assert year_url(gap.year, gap.calendar.code) in page
    if not gaps:
        assert "data-gap=" not in page


def test_the_warning_goes_once_the_year_is_entered(client_for, users):
    calendars.set_override(users["admin"], business(), dt.date(UNCOVERED, 1, 1), False, "元旦")
    assert f'data-gap="business-{UNCOVERED}"' in client_for("admin").get(LIST).content.decode()  # one day only
    for day in (dt.date(UNCOVERED, 2, 6), dt.date(UNCOVERED, 10, 1)):
        calendars.set_override(users["admin"], business(), day, False, "")
    page = client_for("admin").get(LIST).content.decode()
    assert f'data-gap="business-{UNCOVERED}"' not in page


# --- create and edit -------------------------------------------------------------------------------------


def test_create_a_calendar(client_for):
    c = client_for("manager")
    page = c.get(CREATE).content.decode()
    assert 'name="workdays" value="6"' in page and "08:30-12:00" in page
    r = c.post(CREATE, form_data(code="night", windows="20:00-23:30\n 06:00 - 07:30 ", workdays=["5", "6"]))
    assert r.status_code == 302, r.context["form"].errors
    cal = BusinessCalendar.objects.get(code="night")
    assert cal.windows == [["06:00", "07:30"], ["20:00", "23:30"]] and cal.workdays == [5, 6]
    assert cal.official_holidays and not cal.always_on
    assert AuditEntry.objects.filter(object_type="servicedesk.businesscalendar", action="create").exists()
    r = c.post(CREATE, form_data(code="night", name="别的"))
    assert r.status_code == 400 and "code" in r.context["form"].errors  # unique, from the service


@pytest.mark.parametrize(
    ("windows", "message"),
    [
        ("08:30-12:00\n8-12", "Line 2 (“8-12”) is not a time range like 08:30-12:00."),
        ("25:00-26:00", "Line 1 (“25:00-26:00”) is not a time range like 08:30-12:00."),
        ("22:00-06:00", "Line 1 (“22:00-06:00”) ends before it starts: a window lies within one day."),
        ("08:00-12:00\n11:00-13:00", "The windows 08:00-12:00 and 11:00-13:00 overlap."),
        ("", "Give at least one working window, or make the calendar 24×7."),
    ],
)
def test_windows_are_refused_with_a_message_under_the_field(client_for, windows, message):
    r = client_for("admin").post(CREATE, form_data(code="night", windows=windows))
    assert r.status_code == 400
    assert r.context["form"].errors["windows"] == [message]
    assert escape(message) in r.content.decode()
    assert not BusinessCalendar.objects.filter(code="night").exists()


def test_other_fields_are_checked_too(client_for):
    c = client_for("admin")
    r = c.post(CREATE, form_data(code="night", workdays=[]))
    assert r.status_code == 400 and "workdays" in r.context["form"].errors
    r = c.post(CREATE, form_data(code="night", time_zone="Mars/Olympus"))
    assert r.status_code == 400 and "time_zone" in r.context["form"].errors
    r = c.post(CREATE, form_data(code="new"))
    assert r.status_code == 400 and "code" in r.context["form"].errors
    r = c.post(CREATE, form_data(code="always2", windows="", workdays=[], always_on="on"))
    assert r.status_code == 302  # 24×7 needs neither windows nor weekdays


def test_parse_windows_accepts_dashes_and_commas():
    assert parse_windows("13:30–17:30, 8:30 - 12:00") == [["08:30", "12:00"], ["13:30", "17:30"]]
    assert parse_windows("  \n") == []


def test_edit_a_calendar(client_for):
    c = client_for("admin")
    cal = business()
    page = c.get(edit_url()).content.decode()
    assert "08:30-12:00\n13:30-17:30" in page and f'name="version" value="{cal.version}"' in page
    assert 'name="code"' not in page  # the code never changes
    r = c.post(edit_url(), form_data(cal, windows="09:00-18:00", workdays=["0", "1", "2", "3", "4", "5"]))
    assert r.status_code == 302, r.context["form"].errors
    fresh = business()
    assert fresh.windows == [["09:00", "18:00"]] and fresh.workdays == [0, 1, 2, 3, 4, 5]
    assert fresh.version == cal.version + 1
    assert AuditEntry.objects.filter(object_type="servicedesk.businesscalendar", action="update").exists()


def test_a_stale_version_is_a_conflict_and_keeps_the_input(client_for):
    c = client_for("manager")
    cal = business()
    stale = form_data(cal, windows="09:00-17:00")
    assert c.post(edit_url(), form_data(cal, windows="08:00-16:00")).status_code == 302
    r = c.post(edit_url(), stale)
    assert r.status_code == 409
    page = r.content.decode()
    assert "Someone else changed this calendar" in page and "09:00-17:00" in page
    assert f'name="version" value="{business().version}"' in page
    assert business().windows == [["08:00", "16:00"]]


def test_edit_a_missing_calendar_is_404(client_for):
    assert client_for("admin").get(edit_url("nope")).status_code == 404


def test_weekdays_are_labelled_in_chinese(settings, client_for):
    settings.LANGUAGE_CODE = "zh-hans"
    page = client_for("admin").get(edit_url(), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    for label in ("星期一", "星期六", "星期日"):
        assert label in page


# --- a year's overrides ----------------------------------------------------------------------------------


def test_a_covered_year_shows_the_official_schedule(client_for):
    page = client_for("admin").get(year_url(COVERED)).content.decode()
    official = {d: n for d, n in workcalendar.chinese_calendar.holidays.items() if d.year == COVERED}
    first = min(official)
    assert first.isoformat() in page and escape(official[first]) in page
    assert 'id="not-covered"' not in page
    swapped = [d for d in workcalendar.chinese_calendar.workdays if d.year == COVERED]
    for day in swapped:
        assert day.isoformat() in page


def test_the_official_schedule_in_chinese(client_for):
    page = client_for("admin").get(year_url(2026), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "春节" in page and "国庆节" in page


def test_an_uncovered_year_says_so(client_for):
    page = client_for("admin").get(year_url(UNCOVERED)).content.decode()
    assert 'id="not-covered"' in page and f"does not know {UNCOVERED}" in page
    assert "has no official schedule for" in page  # the business calendar is not covered either
    # what counts until the schedule is entered: the days off the law fixes, listed
    assert 'id="statutory"' in page and f"{UNCOVERED}-01-01" in page and "Dragon Boat Festival" in page


def test_years_out_of_range_and_unknown_calendars_are_404(client_for):
    c = client_for("admin")
    assert c.get(year_url(1999)).status_code == 404
    assert c.get(year_url(2101)).status_code == 404
    assert c.get(year_url(2027, "nope")).status_code == 404


def test_add_and_remove_overrides(client_for, users):
    c = client_for("manager")
    cal = business()
    add = year_url(UNCOVERED, name="settings-calendar-override-add")
    r = c.post(add, {"date": f"{UNCOVERED}-02-06", "working": "0", "note": "春节", "version": cal.version})
    assert r.status_code == 302 and r.url == year_url(UNCOVERED)
    r = c.post(
        add, {"date": f"{UNCOVERED}-02-20", "working": "1", "note": "春节调休", "version": business().version}
    )
    assert r.status_code == 302
    assert dict(business().overrides.values_list("date", "working")) == {
        dt.date(UNCOVERED, 2, 6): False,
        dt.date(UNCOVERED, 2, 20): True,
    }
    engine = calendars.engine(business())
    assert not engine.is_working_day(dt.date(UNCOVERED, 2, 6)) and engine.is_working_day(
        dt.date(UNCOVERED, 2, 20)
    )
    page = c.get(year_url(UNCOVERED)).content.decode()
    assert f'data-override="{UNCOVERED}-02-06"' in page and "春节调休" in page
    assert "has no official schedule for" in page  # one holiday is not the year's schedule yet

    remove = year_url(UNCOVERED, name="settings-calendar-override-remove")
    r = c.post(remove, {"date": f"{UNCOVERED}-02-20", "version": business().version})
    assert r.status_code == 302
    assert list(business().overrides.values_list("date", flat=True)) == [dt.date(UNCOVERED, 2, 6)]
    entry = AuditEntry.objects.filter(object_type="servicedesk.businesscalendar").latest("seq")
    assert entry.actor == users["manager"] and entry.changes == {f"{UNCOVERED}-02-20": [True, None]}


def test_override_input_is_checked(client_for):
    c = client_for("admin")
    add = year_url(2027, name="settings-calendar-override-add")
    r = c.post(add, {"date": "2028-01-01", "working": "0", "version": business().version})
    assert r.status_code == 400 and r.context["form"].errors["date"] == ["Pick a date in 2027."]
    r = c.post(add, {"date": "2027-13-01", "working": "0", "version": business().version})
    assert r.status_code == 400 and "date" in r.context["form"].errors
    assert not CalendarOverride.objects.exists()


def test_a_stale_version_on_the_year_page_is_a_conflict(client_for):
    c = client_for("admin")
    stale = business().version
    add = year_url(2027, name="settings-calendar-override-add")
    assert (
        c.post(add, {"date": "2027-01-01", "working": "0", "note": "元旦", "version": stale}).status_code
        == 302
    )
    r = c.post(add, {"date": "2027-01-02", "working": "0", "note": "假日", "version": stale})
    assert r.status_code == 409
    page = r.content.decode()
    assert "Someone else changed this calendar" in page and "假日" in page
    assert f'value="{business().version}"' in page
    remove = year_url(2027, name="settings-calendar-override-remove")
    assert c.post(remove, {"date": "2027-01-01", "version": stale}).status_code == 409
    assert list(business().overrides.values_list("date", flat=True)) == [dt.date(2027, 1, 1)]


def test_adding_and_removing_an_override_twice_acts_once_without_a_conflict(client_for):
    """A double click on "Add" or "Remove" sent the form's version twice: the first moved the calendar's version, so
    the second answered the stale-page conflict (409). "Add" now carries a one-time token and adds once; "Remove"
    sent again finds the override gone and says so."""
    import re

    admin = client_for("admin")
    page = admin.get(year_url(2027)).content.decode()
    form = re.search(r'id="override-form".*?</form>', page, re.S).group(0)
    token = re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', form).group(1)
    add = {"date": "2027-05-06", "working": "0", "note": "调休", "version": business().version, "form_token": token}
    updates = AuditEntry.objects.filter(object_type="servicedesk.businesscalendar", action="update").count

    before = updates()
    assert admin.post(year_url(2027, name="settings-calendar-override-add"), add).status_code == 302
    again = admin.post(year_url(2027, name="settings-calendar-override-add"), add, follow=True)
    assert again.status_code == 200 and "This form was already sent" in again.content.decode()
    assert CalendarOverride.objects.filter(calendar=business(), date="2027-05-06").count() == 1
    assert updates() == before + 1

    remove = {"date": "2027-05-06", "version": business().version}
    assert admin.post(year_url(2027, name="settings-calendar-override-remove"), remove).status_code == 302
    twice = admin.post(year_url(2027, name="settings-calendar-override-remove"), remove, follow=True)
    assert twice.status_code == 200 and "The override of 2027-05-06 was removed already." in twice.content.decode()
    assert not CalendarOverride.objects.filter(calendar=business(), date="2027-05-06").exists()
