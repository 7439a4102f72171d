"""What every intake reads and almost never changes — the active SLA policies (with their calendars) and
the assignment rules (with their teams) — kept per process and read again when the desk's settings version
moves. Every service that changes a policy, a rule or a calendar bumps the version in the same transaction
(`bump`), so one indexed look-up of the version replaces the two reads per ticket, and no process ever
routes or times a ticket on settings older than the last committed change."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pharmacrm.core.models import Counter

VERSION = "servicedesk:settings"


@dataclass(frozen=True)
class Snapshot:
    version: int
    policies: tuple
    rules: tuple


_current: Snapshot | None = None
_lock = threading.Lock()


def bump() -> None:
    """Call inside the transaction that changes a policy, an assignment rule or a calendar."""
    Counter.allocate(VERSION)


def snapshot() -> Snapshot:
    global _current
    from .models import AssignmentRule, SlaPolicy

    version = Counter.objects.filter(name=VERSION).values_list("value", flat=True).first() or 0
    current = _current
    if current is not None and current.version == version:
        return current
    fresh = Snapshot(
        version,
        tuple(SlaPolicy.objects.filter(active=True).select_related("calendar")),
        tuple(AssignmentRule.objects.filter(active=True).select_related("team").order_by("position", "name", "id")),
    )
    with _lock:
        _current = fresh
    return fresh


def forget() -> None:
    global _current
    _current = None
