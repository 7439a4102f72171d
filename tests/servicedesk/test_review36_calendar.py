"""Session 36 review: entering next year's State Council schedule on the calendar's year page. chinese-calendar
1.11.0 ends with 2026, so in December 2026 an administrator types 2027's holiday periods in — a period at once —
and the deadlines already running into 2027 follow them."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.urls import reverse

from pharmacrm.core.models import AuditEntry
from pharmacrm.servicedesk import services
from pharmacrm.servicedesk.choices import ClockKind
from pharmacrm.servicedesk.models import BusinessCalendar, CalendarOverride, SlaClock, Ticket, TicketEvent

SH = ZoneInfo("Asia/Shanghai")
ADD = reverse("servicedesk:settings-calendar-override-add", args=["business", 2027])


def at(y, m, d, hh=0, mm=0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SH)


def business() -> BusinessCalendar:
    return BusinessCalendar.objects.get(code="business")


def due(ticket) -> dict[str, dt.datetime]:
    return {c.kind: c.due_at.astimezone(SH) for c in SlaClock.objects.filter(ticket=ticket)}


def new_years_eve_ticket(users, xiehe) -> Ticket:
    """A drug-information ticket taken in on 31 Dec 2026 at 10:00, its clocks counted into 2027 (received_at cannot
    lie in the future when a ticket is taken in: it is moved there, and the clocks rebuilt)."""
    ticket = services.create_ticket(users["agent"], {
        "subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "received_at": at(2026, 12, 1, 10),
    })  # fmt: skip
    Ticket.objects.filter(pk=ticket.pk).update(received_at=at(2026, 12, 31, 10))
    TicketEvent.objects.filter(ticket=ticket).update(at=at(2026, 12, 31, 10))
    ticket.refresh_from_db()
    services.rebuild_clocks(ticket, now=at(2026, 12, 31, 10))
    return ticket


def test_an_administrator_enters_a_holiday_period_at_once_and_running_deadlines_follow(users, xiehe, client_for):
    ticket = new_years_eve_ticket(users, xiehe)
    # 2027 is not known yet: the weekly pattern, less New Year's Day (a day off the law fixes every year)
    assert due(ticket) == {ClockKind.FIRST_RESPONSE: at(2027, 1, 4, 10), ClockKind.RESOLUTION: at(2027, 1, 5, 10)}

    c = client_for("admin")
    r = c.post(ADD, {"date": "2027-01-04", "until": "2027-01-06", "working": "0", "note": "年终盘点停工",
                     "version": business().version})  # fmt: skip
    assert r.status_code == 302
    assert list(business().overrides.order_by("date").values_list("date", "working", "note")) == [
        (dt.date(2027, 1, d), False, "年终盘点停工") for d in (4, 5, 6)
    ]
    entry = AuditEntry.objects.filter(object_type="servicedesk.businesscalendar").latest("seq")
    assert entry.actor == users["admin"]
    assert entry.changes == {f"2027-01-0{d}": [None, False] for d in (4, 5, 6)}
    page = c.get(r.url).content.decode()
    assert "2027-01-04" in page and "2027-01-06" in page and "（3 天）" in page

    assert services.refresh_pending() == 1  # the worker, once the change is committed
    assert due(ticket) == {ClockKind.FIRST_RESPONSE: at(2027, 1, 7, 10), ClockKind.RESOLUTION: at(2027, 1, 8, 10)}


def test_a_holiday_period_with_a_wrong_last_date_is_refused_naming_the_field(client_for):
    c = client_for("admin")
    version = business().version
    cases = [
        ("2027-02-11", "2027-02-05", "结束日期不能早于开始日期。"),
        ("2027-02-05", "2028-01-01", "请选择 2027 年内的日期。"),
        ("2027-01-01", "2027-03-01", "一次最多 31 个日期。"),
    ]
    for first, last, message in cases:
        r = c.post(ADD, {"date": first, "until": last, "working": "0", "version": version},
                   HTTP_ACCEPT_LANGUAGE="zh-hans")  # fmt: skip
        assert r.status_code == 400
        assert r.context["form"].errors["until"] == [message]
        assert message in r.content.decode()
    assert not CalendarOverride.objects.exists()


def test_the_clocks_api_says_which_deadlines_are_provisional_until_the_year_is_entered(users, xiehe, api_for):
    """An integration reading a ticket's SLA clocks learns, as the ticket page tells the agent, that a deadline
    counted into 2027 is provisional (only the days off the law fixes are known) — until the year is entered."""
    ticket = new_years_eve_ticket(users, xiehe)
    url = f"/api/v1/tickets/{ticket.pk}/clocks/"

    clocks = {c["kind"]: c for c in api_for("agent").get(url).json()}
    assert clocks["first_response"]["due_at"] == "2027-01-04T10:00:00+08:00"
    assert clocks["first_response"]["due_provisional"] == [2027]
    assert clocks["resolution"]["due_provisional"] == [2027]

    admin = api_for("admin")
    overrides = "/api/v1/calendars/business/overrides/"
    for day in ("2027-01-01", "2027-02-06", "2027-10-01"):  # New Year's Day, the Spring Festival, National Day
        assert admin.post(overrides, {"date": day, "working": False}, format="json").status_code == 201
    services.refresh_pending()
    clocks = {c["kind"]: c for c in api_for("agent").get(url).json()}
    assert clocks["first_response"]["due_at"] == "2027-01-04T10:00:00+08:00"
    assert clocks["first_response"]["due_provisional"] == [] and clocks["resolution"]["due_provisional"] == []
