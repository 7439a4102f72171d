"""Background work for interactions: the morning reminder of first follow-ups."""

from huey.contrib.djhuey import db_periodic_task

from pharmacrm.core.tasks import local_crontab

from . import followup


@db_periodic_task(local_crontab(hour=8, minute=30))
def remind_first_follow_ups() -> None:
    """Every morning at 08:30 (China time): owners of new customers whose first follow-up is due today or
    overdue are told how many (once a day)."""
    followup.remind()
