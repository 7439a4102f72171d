"""Background work of cooperation agreements and projects."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from pharmacrm.core.tasks import local_crontab


@db_periodic_task(crontab(minute="*/15"))
def sweep_cooperation() -> None:
    """Every 15 minutes: agreement renewal reminders (once), the expiry of agreements whose term ended, overdue
    project tasks (once each)."""
    from . import services

    services.sweep()


@db_periodic_task(local_crontab(hour=4, minute=5))
def sweep_cooperation_files() -> int:
    """Every night: delete the signed copies and acceptance files a killed upload left in var/cooperation/, once a
    day old (nothing names them)."""
    from . import services

    return services.sweep_orphaned_files()
