"""Session 42 review of the SLA clocks on China's calendar, as a customer-service manager relies on them: a wait on
the customer that begins once a deadline was missed stops nothing."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from pharmacrm.servicedesk import services, views_board
from pharmacrm.servicedesk.choices import ClockKind, Status
from pharmacrm.servicedesk.models import SlaClock, TicketEvent

SH = ZoneInfo("Asia/Shanghai")


def at(y, m, d, hh=0, mm=0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SH)


def resolution(ticket) -> SlaClock:
    return SlaClock.objects.get(ticket=ticket, kind=ClockKind.RESOLUTION)


@pytest.fixture
def answered(users, xiehe):
    """A drug-information question of Monday 2 March 2026 09:00, answered at 09:30: resolution due Wednesday 09:00
    (two working days)."""
    ticket = services.create_ticket(users["agent"], {
        "subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "assignee": users["agent"], "received_at": at(2026, 3, 2, 9),
    })  # fmt: skip
    services.record_response(users["agent"], ticket, at=at(2026, 3, 2, 9, 30))
    ticket.refresh_from_db()
    assert resolution(ticket).due_at == at(2026, 3, 4, 9)
    return ticket


def test_waiting_on_the_customer_after_the_deadline_was_missed_does_not_move_the_deadline(users, answered):
    """Missed on Wednesday 09:00 (the worker records it), the ticket waits on the customer from 10:00 until Thursday
    10:00, and is resolved at 11:00. The resolution was late by a day: the clock keeps its deadline and its breach
    at Wednesday 09:00. Before, the wait's 7.5 working hours were added to the missed deadline: the ticket page and
    the API said it was due (and missed) on Thursday 09:00, two hours before it was resolved."""
    ticket = answered
    services.sweep(at(2026, 3, 4, 9, 1))
    assert resolution(ticket).breached_at == at(2026, 3, 4, 9)
    services.transition(users["agent"], ticket, Status.WAITING, at=at(2026, 3, 4, 10))
    services.transition(users["agent"], ticket, Status.IN_PROGRESS, at=at(2026, 3, 5, 10))
    clock = resolution(ticket)
    assert (clock.due_at, clock.breached_at, clock.paused_seconds) == (at(2026, 3, 4, 9), at(2026, 3, 4, 9), 0)
    services.transition(users["agent"], ticket, Status.RESOLVED, at=at(2026, 3, 5, 11),
                        resolution_summary="已告知用法", root_cause="usage")  # fmt: skip
    clock = resolution(ticket)
    assert (clock.due_at, clock.breached_at, clock.fulfilled_at) == (at(2026, 3, 4, 9), at(2026, 3, 4, 9), at(2026, 3, 5, 11))


def test_a_missed_deadline_is_recorded_and_counted_overdue_though_the_ticket_waits_on_the_customer(users, answered):
    """The worker was down when the deadline passed (or the agent set the wait a minute after it): the wait that
    began afterwards must not hide the miss. Before, the clock counted as paused — the worker never looked at it,
    the board did not count the ticket overdue, and the breach was recorded only when the customer answered,
    against a deadline moved by the whole wait."""
    ticket = answered
    services.transition(users["agent"], ticket, Status.WAITING, at=at(2026, 3, 4, 9, 5))
    clock = resolution(ticket)
    assert not clock.paused and clock.next_check_at <= at(2026, 3, 4, 9)  # (its warning not sent yet either)
    assert services.sweep(at(2026, 3, 4, 9, 6))["breached"] == 1
    breach = TicketEvent.objects.get(ticket=ticket, kind="breached")
    assert breach.at == at(2026, 3, 4, 9) and breach.data["clock"] == ClockKind.RESOLUTION
    board = views_board.board_summary(users["manager"], now=at(2026, 3, 4, 15))
    row = next(a for a in board.agents if a.user == users["agent"])
    assert row.overdue == 1


def test_a_wait_that_begins_before_the_deadline_still_stops_the_clock(users, answered):
    """The rule above leaves the ordinary pause alone: waiting from Tuesday 16:00 to Wednesday 10:00 (3 working
    hours, 1.5 of them before the Wednesday-09:00 deadline's time) pushes the deadline back by the whole wait."""
    ticket = answered
    services.transition(users["agent"], ticket, Status.WAITING, at=at(2026, 3, 3, 16))
    assert resolution(ticket).paused and resolution(ticket).next_check_at is None
    assert services.sweep(at(2026, 3, 4, 9, 30))["breached"] == 0  # paused: not missed
    services.transition(users["agent"], ticket, Status.IN_PROGRESS, at=at(2026, 3, 4, 10))
    clock = resolution(ticket)
    # Tuesday 16:00–17:30 and Wednesday 08:30–10:00: 3 working hours; Wednesday 09:00 + 3 h → 12:00
    assert (clock.due_at, clock.paused_seconds, clock.paused) == (at(2026, 3, 4, 12), 3 * 3600, False)


def test_the_holidays_command_enters_and_removes_a_holiday_period_as_one_change(db):
    """`pharmacrm holidays set 2027-02-05..2027-02-11 --off` is what the operations guide tells an operator to type
    for the Spring Festival: one change of the calendar — one audit entry naming the seven dates, one new version —,
    as the year page makes it. Before, each date was a change of its own: seven audit entries, and seven recounts of
    every open ticket's deadlines queued for the worker."""
    from django.core.management import call_command

    from pharmacrm.core.models import AuditEntry
    from pharmacrm.servicedesk.models import BusinessCalendar

    calendar = BusinessCalendar.objects.get(code="business")
    version = calendar.version
    entries = AuditEntry.objects.filter(object_type="servicedesk.businesscalendar")
    before = entries.count()
    call_command("holidays", "set", "2027-02-05..2027-02-11", "2027-02-08", "--off", "--note", "春节")
    calendar.refresh_from_db()
    assert calendar.version == version + 1
    assert entries.count() == before + 1
    entry = entries.latest("seq")
    assert sorted(entry.changes) == [f"2027-02-{d:02d}" for d in range(5, 12)]
    assert entry.actor_name.startswith("cli:") and entry.extra["note"] == "春节"
    # taken back the same way: one change for the dates that had an override
    call_command("holidays", "unset", "2027-02-01..2027-02-09")
    calendar.refresh_from_db()
    assert calendar.version == version + 2 and entries.count() == before + 2
    assert sorted(entries.latest("seq").changes) == [f"2027-02-{d:02d}" for d in range(5, 10)]
    assert sorted(calendar.overrides.values_list("date", flat=True)) == [dt.date(2027, 2, d) for d in (10, 11)]


def test_the_worker_warns_operators_every_morning_and_tells_the_administrators_once_of_a_year_without_holidays(
    users, caplog
):
    """chinese-calendar 1.11.0 ends with 2026: in December 2026 the deadlines counted into 2027 are provisional until
    someone enters the State Council's schedule. Only the home page said so, to an administrator who happened to open
    it. Now the worker's morning run writes a WARNING naming the calendar and the year (what operators monitor), every
    day until it is entered, and tells those who may change the calendars once — in the bell and by e-mail, with the
    link to the year's page."""
    import logging

    from pharmacrm.notify.models import Notification
    from pharmacrm.servicedesk import calendars
    from pharmacrm.servicedesk.models import BusinessCalendar
    from pharmacrm.servicedesk.tasks import alert_calendar_gaps

    december = dt.date(2026, 12, 5)
    with caplog.at_level(logging.WARNING, logger="pharmacrm.servicedesk.calendars"):
        assert calendars.alert_coverage_gaps(december) == 1
    assert any("business" in r.getMessage() and "2027" in r.getMessage() for r in caplog.records)
    told = Notification.objects.filter(kind=calendars.GAP_KIND)
    assert {n.recipient for n in told} == {users["admin"], users["manager"]}  # those who manage the calendars
    note = told.first()
    assert note.url == "/service/settings/calendars/business/2027/" and "2027" in note.title
    assert calendars.alert_coverage_gaps(december) == 0  # told once; the log says it again each morning
    assert told.count() == 2
    alert_calendar_gaps.call_local()  # the periodic task's body, on today's date: 2027 is not told again
    assert told.filter(url__contains="/2027/").count() == 2

    business = BusinessCalendar.objects.get(code="business")
    spring = [dt.date(2027, 2, d) for d in range(5, 12)]
    national = [dt.date(2027, 10, d) for d in range(1, 8)]
    calendars.set_overrides(users["admin"], business, spring, False, "春节")
    calendars.set_overrides(users["admin"], business, national, False, "国庆节")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pharmacrm.servicedesk.calendars"):
        assert calendars.alert_coverage_gaps(december) == 0
    assert not caplog.records  # entered: nothing more to say


def test_a_working_window_may_end_at_midnight(client_for, api_for):
    """An evening hotline open until midnight, or round the clock on working days only: the settings page refused
    "18:00-24:00" as "not a time range" and "18:00-00:00" as ending before it starts, so the last minute of every day
    was lost (23:59 at most). 24:00 (or 00:00 as an end) is midnight, the end of the window's day: a deadline reaches
    it, and the holiday that begins at midnight stops the clock there."""
    from django.urls import reverse

    from pharmacrm.servicedesk import calendars
    from pharmacrm.servicedesk.models import BusinessCalendar

    r = client_for("admin").post(reverse("servicedesk:settings-calendar-create"), {
        "code": "evening", "name": "夜间热线", "time_zone": "Asia/Shanghai", "windows": "18:00-24:00\n08:00-12:00",
        "workdays": ["0", "1", "2", "3", "4"], "official_holidays": "on",
    })  # fmt: skip
    assert r.status_code == 302, r.context["form"].errors
    evening = BusinessCalendar.objects.get(code="evening")
    assert evening.windows == [["08:00", "12:00"], ["18:00", "24:00"]]
    page = client_for("admin").get(reverse("servicedesk:settings-calendar-edit", args=["evening"])).content.decode()
    assert "18:00-24:00" in page
    engine = calendars.engine(evening)
    eve = at(2026, 9, 30, 23)  # Wednesday, the eve of National Day
    assert engine.add(eve, dt.timedelta(hours=1)) == at(2026, 10, 1)  # midnight, the end of 30 September
    assert engine.add(eve, dt.timedelta(minutes=61)) == at(2026, 10, 8, 8, 1)  # after the holiday week
    assert engine.between(at(2026, 9, 30, 18), at(2026, 10, 1)) == dt.timedelta(hours=6)

    api = api_for("admin")
    r = api.post("/api/v1/calendars/", {"code": "weekdays24", "name": "工作日全天", "windows": [["00:00", "24:00"]]},
                 format="json")  # fmt: skip
    assert r.status_code == 201, r.content
    whole = calendars.engine("weekdays24")
    assert whole.between(at(2026, 3, 2), at(2026, 3, 9)) == dt.timedelta(days=5)  # Monday to Friday, every minute
    r = api.post("/api/v1/calendars/", {"code": "bad", "name": "坏", "windows": [["24:00", "24:00"]]}, format="json")
    assert r.status_code == 400 and "windows" in r.json()


def test_the_home_pages_warning_of_a_year_without_holidays_leads_to_where_it_is_entered(client_for):
    """The home page told administrators and managers that next year's schedule is missing, but not where to enter
    it (the calendar list's warning links to the year's page; the home page's did not)."""
    from django.urls import reverse

    from pharmacrm.servicedesk import calendars

    page = client_for("manager").get(reverse("home")).content.decode()
    gaps = calendars.coverage_gaps()
    for gap in gaps:  # chinese-calendar 1.11.0 ends with 2026: from November 2026 on, 2027 is missing
        assert reverse("servicedesk:settings-calendar-year", args=[gap.calendar.code, gap.year]) in page
    if not gaps:
        assert "/service/settings/calendars/" not in page
