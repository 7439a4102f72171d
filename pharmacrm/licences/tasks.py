"""Background work of customers' licences."""

from huey.contrib.djhuey import db_periodic_task

from pharmacrm.core.tasks import local_crontab


@db_periodic_task(local_crontab(hour=7, minute=40))
def remind_licences() -> tuple[int, int]:
    """Every morning: tell each customer's owner and team lead once when a licence comes within LICENCE_NOTICE_DAYS of
    its end, and once when it has expired."""
    from . import services

    return services.remind()


@db_periodic_task(local_crontab(hour=4, minute=15))
def sweep_licence_files() -> int:
    """Every night: delete the scanned copies a killed upload left in var/licences/, once a day old (nothing names
    them)."""
    from . import services

    return services.sweep_orphaned_files()
