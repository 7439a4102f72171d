"""Background work for customers: running import jobs, noticing the ones a stopped worker left running, and
clearing old uploads."""

from huey import crontab
from huey.contrib.djhuey import close_db, db_periodic_task, db_task, on_startup

from pharmacrm.core.tasks import local_crontab

from . import importer


@db_task()
def run_import(job_id: int) -> None:
    """Run an import job's dry run or import (the job row carries which, and its progress)."""
    importer.run_job(job_id)


@db_periodic_task(crontab(minute="*"))
def recover_interrupted_imports() -> None:
    """Every minute: a job left running by a worker that stopped (no heartbeat for a few minutes) is marked
    interrupted, with what was really written; it is never run again by itself."""
    importer.recover_interrupted()


@on_startup()
@close_db
def recover_interrupted_imports_at_startup() -> None:
    """When the worker starts: the same check, at once (a job whose heartbeat is still recent is left to the
    periodic check: another worker may be running it)."""
    importer.recover_interrupted()


@db_periodic_task(local_crontab(hour=3, minute=40))
def purge_import_uploads() -> None:
    """Uploaded files hold personal data in clear: delete those of imports never confirmed."""
    importer.purge_stale_uploads()


@db_periodic_task(local_crontab(hour=3, minute=50))
def forget_form_claims() -> None:
    """The one-time tokens of create forms are claimed in the database; forget those older than a week."""
    from .views import forget_form_claims as forget

    forget()
