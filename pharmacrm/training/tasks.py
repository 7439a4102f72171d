"""Background work for the training system: the morning reminders and refreshers."""

from huey.contrib.djhuey import db_periodic_task

from pharmacrm.core.tasks import local_crontab


@db_periodic_task(local_crontab(hour=8, minute=40))
def remind_training() -> dict:
    """Every morning: reminds each open training assignment once before its due date and once when overdue, and
    assigns a refresher for a completion about to expire (training.remind)."""
    from . import training

    return training.remind()


@db_periodic_task(local_crontab(hour=4, minute=10))
def sweep_training_files() -> int:
    """Every night: delete the course material files a killed upload left behind, once a day old (no material names
    them)."""
    from pharmacrm.servicedesk.attachments import sweep_unreferenced

    from .models import Material

    return sweep_unreferenced(Material, "training")


@db_periodic_task(local_crontab(hour=8, minute=45))
def remind_training_sessions() -> int:
    """Every morning: the trainees enrolled in a classroom session that starts tomorrow are reminded of it, once
    per session (classroom.remind_sessions)."""
    from . import classroom

    return classroom.remind_sessions()
