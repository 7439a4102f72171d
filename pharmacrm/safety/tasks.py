"""The safety area's periodic work in the Huey worker: every minute, the regulatory and hand-off clocks
that are due soon or overdue, and the CAPA actions past their due date. Safe with several workers (each clock is leased with a conditional update;
a worker killed mid-task leaves a lease that runs out after two minutes)."""

from __future__ import annotations

import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from pharmacrm.core.tasks import local_crontab

from . import services

log = logging.getLogger(__name__)
BATCH = 500


@db_periodic_task(crontab(minute="*"))
def sweep_safety_clocks() -> dict[str, int]:
    total = {"clocks": 0, "warned": 0, "breached": 0}
    while True:
        counts = services.sweep(limit=BATCH)
        for key, value in counts.items():
            total[key] += value
        if counts["clocks"] < BATCH:
            break
    total["capas"] = services.sweep_capas(limit=BATCH)
    if total["clocks"] or total["capas"]:
        log.info("Safety clocks: %(warned)d due soon, %(breached)d overdue; %(capas)d CAPA actions overdue", total)
    return total


@db_periodic_task(local_crontab(hour=3, minute=55))
def sweep_case_files() -> int:
    """Every night: delete the case files a killed upload left behind, once a day old (no case names them)."""
    from pharmacrm.servicedesk.attachments import sweep_unreferenced

    from .models import CaseFile

    return sweep_unreferenced(CaseFile, "safety")
