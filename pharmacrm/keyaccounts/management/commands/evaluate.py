"""`pharmacrm evaluate`: run the customer evaluation and the key-account scoring now.

    pharmacrm evaluate                  # every customer, the current periods
    pharmacrm evaluate --incremental    # only customers whose purchases changed since the last run
    pharmacrm evaluate --scheduled      # what the nightly worker does: each period's run once
    pharmacrm evaluate --as-of 2026-06-30   # that date's periods; a past period (one scored later exists)
                                            # gets its history and movement only: no tiers, no actions
"""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from pharmacrm.core import audit
from pharmacrm.core.management.commands._ops import cli_actor
from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind, Trigger


class Command(BaseCommand):
    help = "Run the customer evaluation and the key-account scoring now."

    def add_arguments(self, parser):
        parser.add_argument("--incremental", action="store_true", help="Only customers whose purchases changed.")
        parser.add_argument("--scheduled", action="store_true", help="Only the periods that have not run yet.")
        parser.add_argument("--as-of", help="Evaluate as of this date (YYYY-MM-DD); default today. A past period "
                            "(a later one was scored) only gets its history: no tier changes, no actions.")

    def handle(self, *args, incremental, scheduled, as_of, **options):
        try:
            day = dt.date.fromisoformat(as_of) if as_of else None
        except ValueError:
            raise CommandError(f"--as-of: {as_of} is not a date like 2026-06-30") from None
        if day is not None and day > timezone.localdate():
            # a period that has not begun would become the pages' default, with nobody in it
            raise CommandError(f"--as-of: {as_of} is in the future; give today or an earlier date")
        if scheduled:
            runs = evaluation.scheduled(day)
        else:
            runs = evaluation.run_all(trigger=Trigger.ON_DEMAND, incremental=incremental, as_of=day)
        audit.record(audit.AuditEntry.Action.UPDATE, ("keyaccounts.evaluationrun", "", "evaluate"),
                     actor_name=cli_actor(), runs=[r.pk for r in runs])  # fmt: skip
        for r in runs:
            seconds = (r.finished_at - r.started_at).total_seconds()
            later = getattr(r, "later_period", None)
            if later is None:
                applied = f"{r.tier_changes} tier changes, {r.actions} improvement actions"
            elif r.model.kind == ModelKind.EVALUATION:
                applied = f"history only; tiers and actions follow the latest period ({later})"
            else:
                applied = f"history only; the latest period is {later}"
            self.stdout.write(f"{r.model.kind} {r.period}: {r.customers} customers in {seconds:.2f} s, {applied}\n")
        if not runs:
            self.stdout.write("nothing to do\n")
