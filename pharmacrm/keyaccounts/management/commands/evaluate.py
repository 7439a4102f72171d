"""`pharmacrm evaluate`: run the customer evaluation and the key-account scoring now.

    pharmacrm evaluate                  # every customer, the current periods
    pharmacrm evaluate --incremental    # only customers whose purchases changed since the last run
    pharmacrm evaluate --scheduled      # what the nightly worker does: each ended period, once, as of its last day
    pharmacrm evaluate --as-of 2026-06-30   # that date's periods; a past period (one scored later exists)
                                            # gets its history and movement only: no tiers, no actions.
                                            # A past date counts the payments and purchases of that date
                                            # (from the order lines: one more pass over the window's lines)
"""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from pharmacrm.core import audit
from pharmacrm.core.management.commands._ops import cli_actor
from pharmacrm.core.wording import listing
from pharmacrm.keyaccounts import evaluation
from pharmacrm.keyaccounts.choices import ModelKind, Trigger


class Command(BaseCommand):
    help = "Run the customer evaluation and the key-account scoring now."

    def add_arguments(self, parser):
        parser.add_argument("--incremental", action="store_true", help="Only customers whose purchases changed.")
        parser.add_argument("--scheduled", action="store_true", help="What the nightly worker does: each period that has ended and was not evaluated yet, as of its last day.")
        parser.add_argument("--as-of", help="Evaluate as of this date (YYYY-MM-DD); default today. A past date "
                            "counts the payments and purchases as they stood that day. A past period (a later one "
                            "was scored) only gets its history: no tier changes, no actions.")  # fmt: skip

    def handle(self, *args, incremental, scheduled, as_of, **options):
        try:
            day = dt.date.fromisoformat(as_of) if as_of else None
        except ValueError:
            raise CommandError(_("--as-of: %(value)s is not a date like 2026-06-30") % {"value": as_of}) from None
        if day is not None and day > timezone.localdate():
            # a period that has not begun would become the pages' default, with nobody in it
            raise CommandError(
                _("--as-of: %(value)s is in the future; give today or an earlier date") % {"value": as_of}
            )
        if scheduled:
            runs = evaluation.scheduled(day)
        else:
            runs = evaluation.run_all(trigger=Trigger.ON_DEMAND, incremental=incremental, as_of=day)
        audit.record(audit.AuditEntry.Action.UPDATE, ("keyaccounts.evaluationrun", "", "evaluate"),
                     actor_name=cli_actor(), runs=[r.pk for r in runs])  # fmt: skip
        for r in runs:
            seconds = (r.finished_at - r.started_at).total_seconds()
            later = getattr(r, "later_period", None)
            interim = getattr(r, "interim_of", None)
            if interim is not None:
                applied = _("interim standings of a period under way; tiers and actions follow the evaluation of "
                            "%(period)s") % {"period": interim}  # fmt: skip
            elif later is None:
                # one plural per count: "1 tier change", "2 tier changes"
                applied = listing([
                    ngettext("%(n)d tier change", "%(n)d tier changes", r.tier_changes) % {"n": r.tier_changes},
                    ngettext("%(n)d improvement action", "%(n)d improvement actions", r.actions) % {"n": r.actions},
                ])  # fmt: skip
            elif r.model.kind == ModelKind.EVALUATION:
                applied = _("history only; tiers and actions follow the latest period (%(period)s)") % {"period": later}
            else:
                applied = _("history only; the latest period is %(period)s") % {"period": later}
            # one plural per count: "1 customer in 0.05 s", "2 customers in …"
            line = ngettext(
                "%(kind)s %(period)s: %(customers)d customer in %(seconds).2f s, %(applied)s",
                "%(kind)s %(period)s: %(customers)d customers in %(seconds).2f s, %(applied)s",
                r.customers,
            ) % {
                "kind": ModelKind(r.model.kind).label, "period": r.period, "customers": r.customers,
                "seconds": seconds, "applied": applied,
            }  # fmt: skip
            self.stdout.write(line + "\n")
        if not runs:
            self.stdout.write(_("nothing to do") + "\n")
