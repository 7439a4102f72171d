"""Service-desk defects found by the fifteenth session's QA round: a ticket received years ago (a typing
error in the year) must not take the queues down, and the intake form refuses such a date."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.utils import timezone

from pharmacrm.servicedesk import services
from pharmacrm.servicedesk.models import Ticket
from pharmacrm.servicedesk.workcalendar import WorkCalendar

SH = ZoneInfo("Asia/Shanghai")


def test_a_ticket_received_ten_years_ago_still_shows_in_the_queue_and_on_its_page(users, xiehe, client_for):
    """The API (migrations from an old system) may take in old tickets: their clocks are ten years overdue,
    which the ticket page, the queues and the board must show, not answer with a server error."""
    ticket = services.create_ticket(users["agent"], {
        "subject": "旧工单", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "received_at": dt.datetime(2016, 1, 5, 9, tzinfo=SH), "assignee": users["agent"],
    })  # fmt: skip
    agent = client_for("agent")
    page = agent.get(f"/service/tickets/{ticket.pk}/")
    assert page.status_code == 200 and "已超时" in page.content.decode()
    response = agent.get("/service/")
    assert response.status_code == 200 and ticket.number in response.content.decode()
    manager = client_for("manager")
    response = manager.get("/service/?queue=all")
    assert response.status_code == 200 and ticket.number in response.content.decode()
    assert manager.get("/service/board/").status_code == 200


def test_working_time_over_ten_years_is_counted():
    calendar = WorkCalendar()
    start = dt.datetime(2015, 1, 5, 9, tzinfo=SH)
    end = dt.datetime(2026, 1, 5, 9, tzinfo=SH)
    assert calendar.between(start, end) > dt.timedelta(hours=7 * 250 * 10)


def test_the_intake_form_refuses_a_received_time_years_ago(users, client_for, xiehe):
    agent = client_for("agent")
    response = agent.post("/service/new/", {
        "subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe.pk,
        "received_at": "2016-01-05T09:00",
    })  # fmt: skip
    assert response.status_code in (200, 400)
    assert "最近 30 天内" in response.content.decode()
    assert not Ticket.objects.exists()
    recent = timezone.localtime() - dt.timedelta(days=2)
    response = agent.post("/service/new/", {
        "subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe.pk,
        "received_at": recent.strftime("%Y-%m-%dT%H:%M"),
    })  # fmt: skip
    assert response.status_code == 302 and Ticket.objects.count() == 1


def test_the_intake_form_sent_twice_creates_one_ticket(users, client_for, xiehe):
    """Back and send again, or a replay after a slow answer: the same form (same one-time token) creates the
    ticket once and the second send opens the ticket the first created."""
    agent = client_for("agent")
    token = agent.get("/service/new/").context["form"]["form_token"].value()
    data = {"subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe.pk,
            "form_token": token}  # fmt: skip
    first = agent.post("/service/new/", data)
    second = agent.post("/service/new/", data)
    ticket = Ticket.objects.get()
    assert first.status_code == second.status_code == 302
    assert second.url == first.url == f"/service/tickets/{ticket.pk}/"
    followed = agent.get(second.url)
    assert "此表单已提交过" in followed.content.decode() or "already sent" in followed.content.decode()
