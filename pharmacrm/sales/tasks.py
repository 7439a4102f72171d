"""Background work for purchases: the rollups' overdue amounts move with the calendar, and any
(customer, month) left dirty by a killed import is recomputed."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from pharmacrm.core.tasks import local_crontab

from . import rollups


@db_periodic_task(local_crontab(hour=1, minute=10))
def refresh_overdue() -> None:
    """Every night: lines that fell due yesterday count as overdue in the rollups from today."""
    rollups.refresh_overdue()


@db_periodic_task(crontab(minute="*/15"))
def refresh_dirty_rollups() -> int:
    """A safety net: an import refreshes its own rollups; this picks up what a killed worker, an upgrade (migration
    sales 0008) or a change of the default payment term left. The customers whose rollups it recomputed are scored
    again (the evaluation's incremental update), as after an import."""
    from . import services

    refreshed = rollups.refresh_dirty()
    if refreshed:
        services.rescore_changed()
    return refreshed
