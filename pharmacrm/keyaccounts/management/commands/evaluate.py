"""`pharmacrm evaluate`: run the customer evaluation and the key-account scoring now.

    pharmacrm evaluate                  # every customer, the current periods
    pharmacrm evaluate --incremental    # only customers whose purchases changed since the last run
    pharmacrm evaluate --scheduled      # what the nightly worker does: each period's run once
"""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from pharmacrm.core import audit
from pharmacrm.core.management.commands._ops import cli_actor
from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import Trigger


class Command(BaseCommand):
    help = "Run the customer evaluation and the key-account scoring now."

    def add_arguments(self, parser):
        parser.add_argument("--incremental", action="store_true", help="Only customers whose purchases changed.")
        parser.add_argument("--scheduled", action="store_true", help="Only the periods that have not run yet.")
        parser.add_argument("--as-of", help="Evaluate as of this date (YYYY-MM-DD); default today.")

    def handle(self, *args, incremental, scheduled, as_of, **options):
        try:
            day = dt.date.fromisoformat(as_of) if as_of else None
        except ValueError:
            raise CommandError(f"--as-of: {as_of} is not a date like 2026-06-30") from None
        if scheduled:
            runs = evaluation.scheduled(day)
        else:
            runs = evaluation.run_all(trigger=Trigger.ON_DEMAND, incremental=incremental, as_of=day)
        audit.record(audit.AuditEntry.Action.UPDATE, ("keyaccounts.evaluationrun", "", "evaluate"),
                     actor_name=cli_actor(), runs=[r.pk for r in runs])  # fmt: skip
        for r in runs:
            seconds = (r.finished_at - r.started_at).total_seconds()
            self.stdout.write(
                f"{r.model.kind} {r.period}: {r.customers} customers in {seconds:.2f} s, "
                f"{r.tier_changes} tier changes, {r.actions} improvement actions\n"
            )
        if not runs:
            self.stdout.write("nothing to do\n")
