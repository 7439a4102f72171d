"""`pharmacrm reviews recompute-waits`: put right the key-account evaluations stored before session 31.

Their average first-response and resolution times (and the two measures and the score made of them) still counted
the time a ticket waited on the customer. Each is recomputed as the evaluation saw its tickets then, with today's
rule; one already right is left as it is, so the command can be run again at any time (the second run changes
nothing). Run once by `migrate` (keyaccounts 0015); docs/keyaccounts.md."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from pharmacrm.core.management.commands._ops import cli_actor
from pharmacrm.keyaccounts import services
from pharmacrm.servicedesk.services import SystemActor


class Command(BaseCommand):
    help = "Key-account evaluations: recompute-waits puts right the response and resolution times stored before session 31."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("recompute-waits", help="Take the time waiting on the customer out of the response and "
                                               "resolution times of the evaluations stored before session 31.")  # fmt: skip

    def handle(self, *args, action, **options):
        counts = services.recompute_stored_waits(user=SystemActor(cli_actor()))
        self.stdout.write(_(
            "%(changed)d evaluation(s) recomputed, %(right)d already right, %(unknown)d left as they are (their "
            "tickets changed since: evaluate them again to recompute them from today's data)."
        ) % counts)
