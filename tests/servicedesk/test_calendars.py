"""Business calendars in the database: the seeded defaults, overrides (audited, administrators only) that
take effect at once, validation, and the warning administrators get for a year nobody has entered."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from pharmacrm.core.models import AuditEntry
from pharmacrm.servicedesk import calendars
from pharmacrm.servicedesk.models import BusinessCalendar

SH = ZoneInfo("Asia/Shanghai")


def test_the_default_calendars_are_there_after_migrating(db):
    business = calendars.engine("business")
    assert business.add_hours(dt.datetime(2026, 2, 13, 16, tzinfo=SH), 4) == dt.datetime(2026, 2, 14, 11, tzinfo=SH)
    assert calendars.engine("always").always_on


def test_an_override_takes_effect_at_once_and_is_audited(users):
    business = BusinessCalendar.objects.get(code="business")
    friday = dt.datetime(2027, 1, 8, 10, tzinfo=SH)
    assert calendars.engine(business).is_working_day(friday.date())  # 2027: an ordinary Friday
    calendars.set_override(users["admin"], business, friday.date(), False, "公司年会")
    fresh = BusinessCalendar.objects.get(code="business")
    assert not calendars.engine(fresh).is_working_day(friday.date())
    entry = AuditEntry.objects.filter(object_type="servicedesk.businesscalendar").latest("seq")
    assert entry.actor == users["admin"] and entry.changes == {"2027-01-08": [None, False]}
    assert calendars.remove_override(users["admin"], fresh, friday.date())
    assert calendars.engine(BusinessCalendar.objects.get(code="business")).is_working_day(friday.date())


@pytest.mark.parametrize("role", ["kam", "agent", "rep", "pv", "auditor", "analyst"])
def test_only_administrators_and_managers_change_calendars(users, role):
    business = BusinessCalendar.objects.get(code="business")
    with pytest.raises(PermissionDenied):
        calendars.set_override(users[role], business, dt.date(2027, 1, 1), False)
    assert not business.overrides.exists()


def test_a_calendar_with_broken_windows_or_zone_is_refused_with_the_field(db):
    broken = BusinessCalendar(code="night", name="夜班", windows=[["22:00", "06:00"]])
    with pytest.raises(ValidationError) as exc:
        broken.full_clean()
    assert "windows" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        BusinessCalendar(code="mars", name="火星", time_zone="Mars/Olympus").full_clean()
    assert "time_zone" in exc.value.message_dict


def test_administrators_are_warned_of_a_year_without_holidays(users):
    gaps = calendars.coverage_gaps(dt.date(2026, 11, 30))
    assert [(g.calendar.code, g.year) for g in gaps] == [("business", 2027)]
    assert calendars.coverage_gaps(dt.date(2026, 6, 1)) == []  # next year's schedule is not out before November
    business = BusinessCalendar.objects.get(code="business")
    calendars.set_override(users["admin"], business, dt.date(2027, 1, 1), False, "元旦")
    # one holiday is not the year's schedule: the Spring Festival and National Day are still missing
    assert [g.year for g in calendars.coverage_gaps(dt.date(2026, 11, 30))] == [2027]
    for day in (dt.date(2027, 2, 6), dt.date(2027, 10, 1)):
        calendars.set_override(users["admin"], BusinessCalendar.objects.get(code="business"), day, False, "")
    assert calendars.coverage_gaps(dt.date(2026, 11, 30)) == []


def test_the_home_page_shows_the_calendar_warning_to_administrators_and_managers_only(client_for):
    expected = calendars.coverage_gaps()
    assert expected  # chinese-calendar 1.11.0 (pinned) ends with 2026: 2027 is missing from November 2026 on
    admin = client_for("admin").get("/").content.decode()
    manager = client_for("manager").get("/").content.decode()
    agent = client_for("agent").get("/").content.decode()
    for gap in expected:
        assert f"“{gap.calendar.name}”" in admin and f"“{gap.calendar.name}”" in manager
    assert "工作日历（中国大陆）" not in agent


def test_operators_enter_next_years_schedule_with_the_holidays_command(db, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    gaps = calendars.coverage_gaps()
    if gaps:  # from November 2026 on: 2027 is missing
        with pytest.raises(SystemExit) as exc:
            call_command("holidays", "check")
        assert exc.value.code == 1
    capsys.readouterr()
    call_command("holidays", "list", "--year", "2027")
    before = capsys.readouterr().out  # until the schedule is entered: the days off the law fixes, with their names
    assert "2027-01-01" in before and "2027-06-09" in before and "2027-02-09" in before and "2027-02-11" not in before
    call_command("holidays", "set", "2027-02-05..2027-02-11", "--off", "--note", "春节")
    call_command("holidays", "set", "2027-02-20", "--on", "--note", "春节调休")  # a Saturday
    if gaps:  # the Spring Festival alone does not make the year known
        with pytest.raises(SystemExit):
            call_command("holidays", "check")
    call_command("holidays", "set", "2027-10-01..2027-10-07", "--off", "--note", "国庆节")
    business = BusinessCalendar.objects.get(code="business")
    engine = calendars.engine(business)
    assert not engine.is_working_day(dt.date(2027, 2, 8)) and engine.is_working_day(dt.date(2027, 2, 20))
    assert business.overrides.count() == 15
    entry = AuditEntry.objects.filter(object_type="servicedesk.businesscalendar").latest("seq")
    assert entry.actor is None and entry.actor_name.startswith("cli:")
    capsys.readouterr()
    call_command("holidays", "list", "--year", "2027")
    listing = capsys.readouterr().out
    assert "2027-02-05" in listing and "春节" in listing and "2027-02-20" in listing
    call_command("holidays", "check")  # 2027 is covered now
    call_command("holidays", "unset", "2027-02-20")
    assert business.overrides.count() == 14
    with pytest.raises(CommandError, match="2027-13-01"):
        call_command("holidays", "set", "2027-13-01", "--off")
    with pytest.raises(CommandError):
        call_command("holidays", "set", "2027-03-01..2027-02-01", "--off")
    assert business.overrides.count() == 14  # nothing half-written


def test_the_official_holidays_are_named_in_the_pages_script(client_for):
    client = client_for("manager")
    page = client.get("/service/settings/calendars/business/2026/").content.decode()
    assert "春节" in page and "国庆节" in page
    client.post("/i18n/setlang/", {"language": "zh-hant"})
    page = client.get("/service/settings/calendars/business/2026/").content.decode()
    assert "春節" in page and "國慶節" in page and "春节" not in page and "劳动节" not in page
    client.post("/i18n/setlang/", {"language": "en"})
    assert "Spring Festival" in client.get("/service/settings/calendars/business/2026/").content.decode()


def test_an_agent_sees_that_a_deadline_in_a_year_without_holidays_is_provisional(client_for, users, raise_ticket):
    """chinese-calendar 1.11.0 (pinned) ends with 2026. A deadline counted into 2027 before anyone entered the
    State Council's schedule ran through 元旦 and the Spring Festival as working days: the agent promising the
    customer that time is told it is provisional, and the hint goes once the year's holidays are entered."""
    from django.urls import reverse

    from pharmacrm.servicedesk.models import SlaClock

    ticket = raise_ticket()
    clocks = {c.kind: c for c in SlaClock.objects.filter(ticket=ticket)}
    assert {"first_response", "resolution"} <= set(clocks)
    beijing = ZoneInfo("Asia/Shanghai")
    SlaClock.objects.filter(pk=clocks["first_response"].pk).update(due_at=dt.datetime(2026, 12, 31, 17, tzinfo=beijing))
    SlaClock.objects.filter(pk=clocks["resolution"].pk).update(due_at=dt.datetime(2027, 2, 8, 17, tzinfo=beijing))
    url = reverse("servicedesk:ticket", args=[ticket.pk])

    def hints() -> dict[str, str]:
        page = client_for("agent").get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
        rows = page.split('id="clock-')[1:]
        return {row.split('"')[0]: row.split("</tr>")[0] for row in rows}

    rows = hints()
    assert "data-uncovered" not in rows["first_response"]  # 2026's holidays are known
    assert 'data-uncovered="2027"' in rows["resolution"] and "2027 年的法定节假日尚未录入" in rows["resolution"]
    business = BusinessCalendar.objects.get(code="business")
    for day in (dt.date(2027, 2, 6), dt.date(2027, 10, 1)):  # the Spring Festival and National Day entered
        calendars.set_override(users["admin"], BusinessCalendar.objects.get(pk=business.pk), day, False, "")
    assert "data-uncovered" not in hints()["resolution"]
