"""Background work of cooperation agreements and projects."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task


@db_periodic_task(crontab(minute="*/15"))
def sweep_cooperation() -> None:
    """Every 15 minutes: agreement renewal reminders (once), the expiry of agreements whose term ended, overdue
    project tasks (once each)."""
    from . import services

    services.sweep()
