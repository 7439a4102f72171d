"""Session 36 review of the service desk's clocks: the worker's record of a warning or a breach is never
overwritten by an agent's change saved at the same moment."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from pharmacrm.notify.models import Notification
from pharmacrm.servicedesk import services
from pharmacrm.servicedesk.choices import ClockKind, EventKind, Status
from pharmacrm.servicedesk.models import SlaClock, Ticket, TicketEvent
from tests.concurrency import held_while

SH = ZoneInfo("Asia/Shanghai")


def at(y, m, d, hh=0, mm=0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SH)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_warning_the_worker_records_while_the_agent_saves_the_ticket_is_sent_once(users, xiehe):
    """The worker warns of the first-response deadline (75 %) while the agent starts work on the ticket; the
    agent's save read the clocks before the worker's commit. The warning stays recorded: the next sweeps do
    not warn the assignee a second time."""
    ticket = services.create_ticket(users["agent"], {
        "subject": "误服两倍剂量", "channel": "phone", "category": "medication_error", "institution": xiehe,
        "received_at": at(2026, 3, 2, 9), "assignee": users["agent"],
    })  # fmt: skip
    assert ticket.status == Status.ASSIGNED
    clock = SlaClock.objects.get(ticket=ticket, kind=ClockKind.FIRST_RESPONSE)
    assert clock.warn_at == at(2026, 3, 2, 10, 30)

    def agent():
        services.transition(users["agent"], Ticket.objects.get(pk=ticket.pk), Status.IN_PROGRESS,
                            at=at(2026, 3, 2, 10, 31))  # fmt: skip

    held_while(lambda: services.sweep(at(2026, 3, 2, 10, 31)), agent)
    assert Ticket.objects.get(pk=ticket.pk).status == Status.IN_PROGRESS
    clock.refresh_from_db()
    assert clock.warned_at == at(2026, 3, 2, 10, 31)
    assert services.sweep(at(2026, 3, 2, 10, 35))["warned"] == 0
    warnings = TicketEvent.objects.filter(ticket=ticket, kind=EventKind.WARNED)
    assert warnings.count() == 1
    assert Notification.objects.filter(kind="ticket.warning", recipient=users["agent"]).count() == 1
