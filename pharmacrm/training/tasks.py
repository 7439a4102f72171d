"""Background work for the training system: the morning reminders and refreshers."""

from huey.contrib.djhuey import db_periodic_task

from pharmacrm.core.tasks import local_crontab


@db_periodic_task(local_crontab(hour=8, minute=40))
def remind_training() -> dict:
    """Every morning: reminds each open training assignment once before its due date and once when overdue, and
    assigns a refresher for a completion about to expire (training.remind)."""
    from . import training

    return training.remind()
