"""Background work for evaluation and the key-account programme."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task, lock_task

from pharmacrm.core.tasks import local_crontab

from . import evaluation
from .choices import Trigger


@db_task(retries=5, retry_delay=120)
def evaluate_changed() -> None:
    """After an import: re-score the customers whose purchases changed (the current periods). While another
    evaluation holds the lock (the nightly run, the update of an import that finished just before), the task is
    tried again a little later: not run, the import's customers kept their old scores until the next import."""
    with lock_task("keyaccounts-evaluate"):
        evaluation.run_all(trigger=Trigger.IMPORT, incremental=True)


def after_import() -> None:
    evaluate_changed()


@db_periodic_task(local_crontab(hour=3, minute=30))
def scheduled_evaluations() -> None:
    """Every night: the half-yearly, quarterly (key accounts) and monthly (identification) runs that are
    due and have not run yet."""
    with lock_task("keyaccounts-evaluate"):
        evaluation.scheduled()


@db_periodic_task(local_crontab(hour=4, minute=0), retries=5, retry_delay=120)
def sweep_credit_gate() -> int:
    """Every night, after the overdue refresh (01:10) and the evaluations due (03:30): the customers whose credit gate
    today differs from their score's — an old debt that aged past the gate's days with nothing imported, a capped
    customer whose debts no longer pass it — are evaluated again (evaluation.sweep_gate). While another evaluation
    holds the lock, tried again two minutes later, up to five times. Returns how many were evaluated."""
    with lock_task("keyaccounts-evaluate"):
        done = evaluation.sweep_gate()
    return done.customers if done is not None else 0


@db_periodic_task(crontab(minute="*"))
def sweep_programme_clocks() -> None:
    """Every minute: overdue service-plan items and meeting actions (once each), agreement renewal reminders /
    expiry, and service meetings falling due (a week ahead, once) or overdue (once)."""
    from . import services

    services.sweep_plan_items()
    services.sweep_meeting_actions()
    services.sweep_agreements()
    services.sweep_meeting_cadence()


@db_periodic_task(local_crontab(hour=3, minute=10))
def scheduled_account_reviews() -> None:
    """Every night: key-account evaluations of a quarter (and a year) that just ended, once."""
    from . import services

    services.scheduled_reviews()


@db_periodic_task(local_crontab(hour=3, minute=45))
def sweep_agreement_files() -> int:
    """Every night: delete the signed copies and issued PDFs a killed upload or generation left behind, once a day
    old (no agreement names them)."""
    from . import services

    return services.sweep_orphaned_files()
