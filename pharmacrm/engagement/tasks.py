"""Background work for interactions: the morning reminders of first follow-ups and of contacts the communication
plans ask for."""

from huey.contrib.djhuey import db_periodic_task

from pharmacrm.core.tasks import local_crontab

from . import followup, plans


@db_periodic_task(local_crontab(hour=8, minute=30))
def remind_first_follow_ups() -> None:
    """Every morning at 08:30 (China time): owners of new customers whose first follow-up is due today or
    overdue are told how many (once a day)."""
    followup.remind()


@db_periodic_task(local_crontab(hour=8, minute=35))
def remind_communication_plans() -> None:
    """Every morning at 08:35 (China time): owners of customers behind their communication plan — a period ending
    within a week short of it, or the last one missed — are told how many (once a day)."""
    plans.remind()
