"""Periodic operations run by the Huey worker: the daily backup with retention."""

from __future__ import annotations

import datetime
import zoneinfo

from django.conf import settings
from huey import crontab
from huey.contrib.djhuey import HUEY, db_periodic_task, on_startup

from . import audit, backup


def local_crontab(**fields):
    """A Huey crontab read in the site's TIME_ZONE.

    Huey hands periodic tasks a naive UTC time (its default `utc=True`), so a plain
    crontab(hour=2) would fire at 10:00 in China; this converts first.
    """
    matches = crontab(**fields)
    zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)

    def validate(timestamp: datetime.datetime) -> bool:
        if HUEY.utc:
            timestamp = timestamp.replace(tzinfo=datetime.UTC).astimezone(zone).replace(tzinfo=None)
        return matches(timestamp)

    return validate


@on_startup()
def load_urls() -> None:
    """When the worker starts: import the URL configuration (every app's views) once, so that the first task writing
    a link (a notification's: an evaluation's improvement actions, an overdue alert) does not pay for it in the
    middle of its work (about 0.4 s), nor for building the reverse look-up table (as much again)."""
    from django.urls import get_resolver

    get_resolver().reverse_dict  # noqa: B018 — the patterns imported and the table built on first access


_task_contexts: dict[str, object] = {}


@HUEY.pre_execute()
def audit_context_per_task(task) -> None:
    """Every task audits under its own request id (the task's), not under one id per worker thread."""
    token = audit.begin_task(task.id)
    if token is not None:
        _task_contexts[task.id] = token


@HUEY.post_execute()
def audit_context_done(task, task_value, exc) -> None:
    token = _task_contexts.pop(task.id, None)
    if token is not None:
        audit.reset_context(token)


@db_periodic_task(local_crontab(hour=2, minute=30), retries=2, retry_delay=600)
def daily_backup() -> str:
    """Back up the database at 02:30 local time and keep the newest BACKUP_KEEP_DAILY backups."""
    return str(backup.scheduled_backup().path)


@db_periodic_task(local_crontab(hour=3, minute=40), retries=2, retry_delay=600)
def purge_idempotency_keys() -> int:
    """Forget the API's Idempotency-Keys older than a day (core.idempotency), at 03:40 local time."""
    from . import idempotency

    return idempotency.purge()
