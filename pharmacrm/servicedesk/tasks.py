"""The service desk's periodic work in the Huey worker: every minute, look at the SLA clocks that are due
(75 % warnings, breaches and the escalation levels after them). Safe with several workers: each clock is
claimed with a conditional update before it is handled, and a worker killed mid-task leaves a lease that
runs out after two minutes. A refresh of the open tickets' deadlines after a settings change is recorded
with the change, so that the next minute's run finishes it if the worker died halfway. The mail tasks
(mailbox polling, reply delivery) live in mail.py."""

from __future__ import annotations

import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from pharmacrm.core.tasks import local_crontab

from . import (
    campaigns,  # noqa: F401  (registers the survey campaigns' mail tasks)
    mail,  # noqa: F401  (registers the mail tasks)
    services,
)

log = logging.getLogger(__name__)
BATCH = 500


@db_periodic_task(crontab(minute="*"))
def sweep_sla_clocks() -> dict[str, int]:
    """Handle what is due now, in batches until nothing due is left (a backlog after downtime drains in
    one run instead of 500 clocks a minute)."""
    total = {"clocks": 0, "warned": 0, "breached": 0, "escalated": 0}
    while True:
        counts = services.sweep(limit=BATCH)
        for key, value in counts.items():
            total[key] += value
        if counts["clocks"] < BATCH:
            break
    if total["clocks"]:
        log.info("SLA clocks: %(warned)d warned, %(breached)d breached, %(escalated)d escalated", total)
    return total


@db_task(retries=2, retry_delay=60)
def refresh_open_tickets(calendar_id: int | None = None) -> int:
    """After an SLA policy or a calendar changed: the open tickets' deadlines follow the new settings. The
    change recorded what to rebuild (`services.request_refresh`); `calendar_id` is kept for tasks queued
    before that."""
    return _refresh_pending()


@db_periodic_task(crontab(minute="*"))
def resume_refresh() -> int:
    """Every minute: finish the refreshes a run left undone (a killed worker, an error), from where it
    stopped; nothing to do (one look-up) when there are none."""
    return _refresh_pending()


def _refresh_pending() -> int:
    count = services.refresh_pending()
    if count:
        log.info("SLA settings changed: clocks of %d open tickets rebuilt", count)
    return count or 0


def refresh_after_commit(calendar_id: int | None = None) -> None:
    """Record the refresh in the settings change's transaction and queue it once the change is committed
    (never for a change that rolls back)."""
    from django.db import transaction

    from . import settings_cache

    settings_cache.bump()  # every process reads the policies and calendars again
    services.request_refresh(calendar_id)
    transaction.on_commit(lambda: refresh_open_tickets(calendar_id=calendar_id))


@db_periodic_task(local_crontab(hour=8, minute=5))
def alert_calendar_gaps() -> int:
    """Every morning: a calendar without next year's (or this year's) holidays is a WARNING in the log, and its
    administrators are told once (calendars.alert_coverage_gaps)."""
    from . import calendars

    return calendars.alert_coverage_gaps()


@db_periodic_task(crontab(minute="17"))
def forget_web_intake() -> int:
    """Hourly: drop the public form's rate-limit records older than two hours (they only count the last
    hour)."""
    from . import public

    return public.forget_old()


@db_periodic_task(local_crontab(hour=3, minute=55))
def sweep_attachment_files() -> int:
    """Every night: delete the files of ticket attachments a killed upload or a failed reply left behind, once a day
    old (no attachment names them)."""
    from .attachments import sweep_unreferenced
    from .models import Attachment

    return sweep_unreferenced(Attachment, "attachments")
