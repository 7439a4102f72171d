"""A breach the sweep records long after its deadline is history, not news (session 40).

After the upgrade's backfill (servicedesk 0016, `pharmacrm undelivered-replies`) an open ticket whose only reply never
reached the customer has its first response open again — with a deadline that passed months ago. The next sweep
recorded the breach like a live one: every endpoint got `ticket.breached`, and the WeCom or DingTalk group read
"已超时" for a ticket that missed its deadline in June, as if it had just happened (a calendar correction, a higher
priority or a stopped worker put a deadline in the past the same way). The breach is still recorded and counted at
its deadline, audited; an entry recorded more than ten minutes late is marked `late` with when it was recorded — in
the history, the audit trail and the generic webhook's data — and the group bots are not sent it. A breach recorded
on time goes to everyone as before. A resolved or closed ticket is never breached by the sweep. Checked with the
real HTTP receiver the notification tests use."""

from __future__ import annotations

import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry, Team
from pharmacrm.notify import services as notify
from pharmacrm.notify import tasks
from pharmacrm.servicedesk import conversation, services
from pharmacrm.servicedesk.choices import ClockKind, EventKind, MessageKind, Status
from pharmacrm.servicedesk.models import SlaClock, Ticket, TicketEvent
from tests.notify.conftest import receiver  # noqa: F401  (the webhook receiver)
from tests.servicedesk.test_review38 import failed_before_session_37

pytestmark = pytest.mark.django_db
SH = ZoneInfo("Asia/Shanghai")


def at(y, m, d, hh=0, mm=0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SH)


@pytest.fixture
def endpoints(users, receiver, settings):  # noqa: F811
    """A generic receiver (an integration that keeps the record) and a WeCom group bot, on one local server."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    notify.create_endpoint(users["admin"], {"name": "工单系统对接", "url": f"{receiver.url}/generic"})
    notify.create_endpoint(users["admin"], {"name": "客服主管群", "url": f"{receiver.url}/wecom", "format": "wecom"})
    return receiver


def posted(rcv, path: str) -> list[dict]:
    return [r for r in rcv.requests if r["path"] == f"/hook/{path}"]


def event_of(request: dict) -> str:
    return {k.lower(): v for k, v in request["headers"].items()}["x-pharmacrm-event"]


def breaches_posted(rcv, path: str) -> list[dict]:
    return [r["json"] for r in posted(rcv, path) if event_of(r) == "ticket.breached"]


def old_ticket(users, xiehe, team, subject: str) -> tuple[Ticket, object]:
    """A ticket taken in on 1 June at 09:00 and answered by e-mail at 10:00 (its first response), then in progress."""
    ticket = services.create_ticket(users["agent"], {
        "subject": subject, "channel": "phone", "category": "drug_info", "institution": xiehe,
        "reply_email": "customer@hospital.test", "received_at": at(2026, 6, 1, 9), "assignee": users["agent"],
        "team": team,
    })  # fmt: skip
    reply = conversation.post_message(users["agent"], ticket, kind=MessageKind.REPLY, body="请饭后服用。",
                                      at=at(2026, 6, 1, 10))  # fmt: skip
    ticket.refresh_from_db()
    services.transition(users["agent"], ticket, Status.IN_PROGRESS, version=ticket.version, at=at(2026, 6, 1, 10, 5))
    return ticket, reply


def test_a_breach_the_backfill_uncovers_months_late_is_recorded_but_not_posted_to_the_group_as_news(
    users, xiehe, endpoints, client_for
):
    team = Team.objects.create(name="客服一组", lead=users["manager"])
    users["agent"].teams.add(team)
    open_ticket, open_reply = old_ticket(users, xiehe, team, "咨询用法")
    closed_ticket, closed_reply = old_ticket(users, xiehe, team, "咨询储存")
    for status in (Status.RESOLVED, Status.CLOSED):
        closed_ticket.refresh_from_db()
        services.transition(users["agent"], closed_ticket, status, version=closed_ticket.version,
                            at=at(2026, 6, 1, 11), resolution_summary="已电话告知", root_cause="usage")  # fmt: skip
    services.sweep(at(2026, 6, 3, 9, 1))  # June: the open ticket's resolution deadline passed, on time
    for reply in (open_reply, closed_reply):
        failed_before_session_37(reply)
    tasks.sweep()
    endpoints.requests.clear()

    call_command("undelivered_replies", stdout=io.StringIO())  # what `migrate` runs once (servicedesk 0016)
    due = SlaClock.objects.get(ticket=open_ticket, kind=ClockKind.FIRST_RESPONSE).due_at
    assert due == at(2026, 6, 2, 9)  # one working day after receipt: six months ago
    counts = services.sweep()  # the worker's next minute, today
    tasks.sweep()
    assert counts["breached"] == 1

    # recorded and counted at its deadline, as any breach — and marked late, with when it was recorded
    [event] = TicketEvent.objects.filter(ticket=open_ticket, kind=EventKind.BREACHED, data__clock="first_response")
    assert event.at == due and event.data["late"] is True
    recorded = dt.datetime.fromisoformat(event.data["recorded"])
    assert recorded - due > dt.timedelta(days=150)
    assert SlaClock.objects.get(ticket=open_ticket, kind=ClockKind.FIRST_RESPONSE).breached_at == due
    entry = AuditEntry.objects.filter(object_type="servicedesk.slaclock", actor_name="worker").latest("seq")
    assert entry.extra["breaches"] == [{"ticket": open_ticket.number, "clock": "first_response",
                                        "due_at": due.isoformat(), "holder": users["agent"].pk, "late": True}]  # fmt: skip
    page = client_for("agent").get(f"/service/tickets/{open_ticket.pk}/").content.decode()
    stamp = timezone.localtime(recorded).strftime("%Y-%m-%d %H:%M")
    assert f"事后补记（{stamp} 记录）：计算时截止时间已过" in page

    # the integration learns it, saying when it happened and that it is late
    [generic] = breaches_posted(endpoints, "generic")
    data = generic["data"]
    assert data["ticket"]["number"] == open_ticket.number and data["clock"] == "first_response"
    assert dt.datetime.fromisoformat(data["at"]) == due and data["late"] is True
    assert dt.datetime.fromisoformat(data["recorded_at"]) == recorded
    # the group reads no "已超时" about June; what happens now (the ladder escalating the open ticket) it reads
    group = [r["json"]["markdown"]["content"] for r in posted(endpoints, "wecom")]
    assert breaches_posted(endpoints, "wecom") == [] and not any("已超时" in text for text in group)
    assert any(open_ticket.number in text and "已升级" in text for text in group)

    # the closed ticket keeps the first response it was judged with: the sweep breaches nothing there
    assert not TicketEvent.objects.filter(ticket=closed_ticket, kind=EventKind.BREACHED).exists()
    assert not any(closed_ticket.number in str(r["json"]) for r in endpoints.requests)


def test_a_breach_recorded_on_time_goes_to_the_group_and_the_integration_alike(users, xiehe, endpoints, client_for):
    ticket = services.create_ticket(users["agent"], {"subject": "咨询剂量", "channel": "phone",
                                                     "category": "drug_info", "institution": xiehe})  # fmt: skip
    due = SlaClock.objects.get(ticket=ticket, kind=ClockKind.FIRST_RESPONSE).due_at
    # a stopped worker's first ten minutes are still news; the sweep looks every minute
    services.sweep(due + services.LATE_AFTER)
    tasks.sweep()
    event = TicketEvent.objects.get(ticket=ticket, kind=EventKind.BREACHED)
    assert event.at == due and "late" not in event.data
    [generic] = breaches_posted(endpoints, "generic")
    assert generic["data"]["late"] is False and "recorded_at" not in generic["data"]
    assert generic["data"]["clock"] == "first_response"
    [group] = breaches_posted(endpoints, "wecom")
    assert ticket.number in group["markdown"]["content"] and "已超时" in group["markdown"]["content"]
    page = client_for("agent").get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert "事后补记" not in page


def test_a_calendar_correction_that_puts_a_deadline_in_the_past_gives_a_late_breach(
    users, xiehe, endpoints, client_for
):
    """On 4 January 2027 at 09:00 the company enters Saturday 2 January as a swapped working day (调休): the ticket
    taken in on New Year's Eve was due on the 2nd at 10:00, not the 4th. The sweep records the breach at that
    deadline, two days late: the integration gets it marked late, the group not at all. When the correction is taken
    back, the breach is withdrawn, and the integration learns which deadline and both times."""
    from tests.servicedesk.test_review36_calendar import ADD, business, new_years_eve_ticket

    ticket = new_years_eve_ticket(users, xiehe)
    assert SlaClock.objects.get(ticket=ticket, kind=ClockKind.FIRST_RESPONSE).due_at == at(2027, 1, 4, 10)
    r = client_for("admin").post(ADD, {"date": "2027-01-02", "until": "2027-01-02", "working": "1",
                                       "note": "元旦调休上班", "version": business().version})  # fmt: skip
    assert r.status_code == 302
    services.refresh_pending(now=at(2027, 1, 4, 9))
    assert SlaClock.objects.get(ticket=ticket, kind=ClockKind.FIRST_RESPONSE).due_at == at(2027, 1, 2, 10)
    services.sweep(at(2027, 1, 4, 9, 1))
    tasks.sweep()
    event = TicketEvent.objects.get(ticket=ticket, kind=EventKind.BREACHED)
    assert event.at == at(2027, 1, 2, 10) and event.data["late"] is True
    [generic] = breaches_posted(endpoints, "generic")
    assert generic["data"]["late"] is True and dt.datetime.fromisoformat(generic["data"]["at"]) == at(2027, 1, 2, 10)
    assert dt.datetime.fromisoformat(generic["data"]["recorded_at"]) == at(2027, 1, 4, 9, 1)
    assert breaches_posted(endpoints, "wecom") == []
    assert not any("已超时" in r["json"]["markdown"]["content"] for r in posted(endpoints, "wecom"))

    # the swapped day taken back: the deadline is the 4th at 10:00 again, not passed at 09:30 — the breach withdrawn
    endpoints.requests.clear()
    remove = reverse("servicedesk:settings-calendar-override-remove", args=["business", 2027])
    r = client_for("admin").post(remove, {"date": "2027-01-02", "version": business().version})
    assert r.status_code == 302, r.content
    services.refresh_pending(now=at(2027, 1, 4, 9, 30))
    tasks.sweep()
    [withdrawn] = [r["json"]["data"] for r in posted(endpoints, "generic")
                   if event_of(r) == "ticket.unbreached"]  # fmt: skip
    assert withdrawn["clock"] == "first_response"
    assert dt.datetime.fromisoformat(withdrawn["breached"]) == at(2027, 1, 2, 10)
    assert dt.datetime.fromisoformat(withdrawn["due"]) == at(2027, 1, 4, 10)
