"""`pharmacrm keyaccounts check`: what the key-account programme's rules now refuse but older data may hold.

Lists the service agreements still to be signed or in force whose term lies outside the validity of the plan they were
generated from (generated before the term rule: docs/keyaccounts.md, "Service agreement"), each with its customer,
term and the plan's validity. Nothing is changed: approve a new plan version or generate the agreement again with a
term within the validity. Exit status 1 when some are found, 0 otherwise (a script's check)."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from pharmacrm.keyaccounts.models import OPEN_AGREEMENT_STATUSES, Agreement, outside_plan_validity_q


def _day(day) -> str:
    return day.isoformat() if day else "…"


class Command(BaseCommand):
    help = "Key accounts: check lists the agreements whose term lies outside their plan's validity."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("check", help="List the agreements (to be signed or in force) whose term lies outside the "
                                     "validity of their plan.")  # fmt: skip

    def handle(self, *args, action, **options):
        found = list(
            Agreement.objects.filter(outside_plan_validity_q(), status__in=OPEN_AGREEMENT_STATUSES)
            .select_related("plan", "account__institution")
            .order_by("account__number", "number")
        )
        if not found:
            self.stdout.write(_("No agreement's term lies outside its plan's validity."))
            return
        for agreement in found:
            self.stdout.write(_(
                "%(number)s (%(customer)s, %(status)s): term %(start)s – %(end)s, plan v%(version)s valid %(from)s – "
                "%(to)s"
            ) % {
                "number": agreement.number, "customer": agreement.account.institution.name,
                "status": agreement.get_status_display(), "start": _day(agreement.start_date),
                "end": _day(agreement.end_date), "version": agreement.plan.version_number,
                "from": _day(agreement.plan.valid_from), "to": _day(agreement.plan.valid_to),
            })  # fmt: skip
        self.stdout.write(_("%(n)d agreement(s) outside their plan's validity: approve a new plan version whose "
                            "validity covers the term.") % {"n": len(found)})  # fmt: skip
        raise SystemExit(1)
