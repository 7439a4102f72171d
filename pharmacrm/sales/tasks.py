"""Background work for purchases: the rollups' overdue amounts move with the calendar, and any
(customer, month) left dirty by a killed import is recomputed; either way the customers changed are scored again."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from pharmacrm.core.tasks import local_crontab

from . import rollups


@db_periodic_task(local_crontab(hour=1, minute=10))
def refresh_overdue() -> int:
    """Every night: lines that fell due yesterday count as overdue in the rollups from today. The customers whose
    overdue amounts changed are scored again (the evaluation's incremental update), as after an import: their
    interim standings counted the line as not yet due until the next import named them. Once the month has turned,
    everyone is: the 12-month window moved for every customer."""
    from pharmacrm.keyaccounts import evaluation

    from . import services

    changed = rollups.refresh_overdue()
    if changed or evaluation.window_moved():
        services.rescore_changed()
    return changed


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


@db_periodic_task(local_crontab(hour=1, minute=20))
def drop_emptied_line_tables() -> None:
    """Every night: the empty order-line tables that initial loads' swaps moved away (PostgreSQL) and could not drop
    right after their commit, because readers of the customers kept the drop waiting longer than a few seconds.
    Without this they would stay until the next initial load."""
    from .importer import BareTable

    BareTable.drop_retired()


@db_periodic_task(local_crontab(hour=5, minute=20))
def refresh_churn_watch() -> dict:
    """Every morning before work: the churn watch from the rollups as the night's refreshes left them — warnings
    opened (their owners told), updated and closed — and the churn and repurchase rates counted again."""
    from . import churn

    return churn.refresh()


@db_periodic_task(local_crontab(hour=7, minute=40))
def remind_stale_opportunities() -> int:
    """Every morning before work: the owners of open opportunities whose next step or expected close date has passed
    are told (bell and e-mail), once per opportunity and staleness — not every morning for the same thing."""
    from . import pipeline

    return pipeline.remind_stale()


@db_periodic_task(local_crontab(hour=5, minute=40))
def compute_customer_values() -> int:
    """Every night at 05:40 (China time), after the churn watch's rates: every customer's lifetime value from the
    monthly rollups (clv.py)."""
    from . import clv

    return clv.compute()


@db_periodic_task(local_crontab(hour=6, minute=10))
def compute_appraisals() -> int:
    """Every morning at 06:10 (China time): on the first working day after a period closes, each scheme in use
    computes the results of the period just closed (kpi.run_due), once — a later run finds them and does nothing;
    a finalised period is never computed again."""
    from . import kpi

    return kpi.run_due()
