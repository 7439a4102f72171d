"""Background work for customers: running import jobs, and clearing old uploads."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from . import importer


@db_task()
def run_import(job_id: int) -> None:
    """Run an import job's dry run or import (the job row carries which, and its progress)."""
    importer.run_job(job_id)


@db_periodic_task(crontab(hour="3", minute="40"))
def purge_import_uploads() -> None:
    """Uploaded files hold personal data in clear: delete those of imports never confirmed."""
    importer.purge_stale_uploads()
