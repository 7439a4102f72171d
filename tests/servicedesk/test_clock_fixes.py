"""SLA clocks found wrong by the review of the hard clocks: a deadline met or missed is history."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from pharmacrm.servicedesk import services

pytestmark = pytest.mark.django_db
SH = ZoneInfo("Asia/Shanghai")


def at(y, m, d, hh=0, mm=0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SH)


def ticket_for(users, xiehe, **extra):
    return services.create_ticket(users["agent"], {
        "subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "received_at": at(2026, 3, 2, 9), **extra,
    })  # fmt: skip


def test_raising_the_priority_after_the_first_response_does_not_turn_it_into_a_breach(users, xiehe):
    """An ordinary question (one working day to answer) answered at noon; at 14:00 the caller rings back, the patient
    is unwell, and the agent makes the ticket urgent. The first response — three hours before it was urgent — was
    rewritten as missed against the urgent two hours (a breach at 11:00, on the ticket page and in the API)."""
    ticket = ticket_for(users, xiehe)
    services.record_response(users["agent"], ticket, at=at(2026, 3, 2, 12))
    services.change_priority(users["agent"], ticket, "urgent", reason="患者不适", at=at(2026, 3, 2, 14))
    first, resolution = ticket.clocks.get(kind="first_response"), ticket.clocks.get(kind="resolution")
    assert first.breached_at is None and first.due_at == at(2026, 3, 3, 9)  # met, against the target of its time
    assert resolution.due_at == at(2026, 3, 3, 9)  # the running clock follows the urgent policy (24 hours)


def test_lowering_the_priority_after_a_missed_first_response_keeps_the_breach(users, xiehe):
    """An urgent call (two hours to answer) answered at 15:00: missed at 11:00. Lowering the priority afterwards
    erased the breach from the clock — a missed deadline hidden by a priority change."""
    ticket = ticket_for(users, xiehe, priority="urgent")
    services.sweep(now=at(2026, 3, 2, 11, 5))
    services.record_response(users["agent"], ticket, at=at(2026, 3, 2, 15))
    services.change_priority(users["agent"], ticket, "normal", reason="只是咨询", at=at(2026, 3, 2, 16))
    first = ticket.clocks.get(kind="first_response")
    assert first.breached_at == at(2026, 3, 2, 11) and first.due_at == at(2026, 3, 2, 11)
    assert ticket.clocks.get(kind="resolution").due_at == at(2026, 3, 4, 9)  # two working days now
