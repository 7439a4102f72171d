"""`pharmacrm orders split-check [--repair] [--keep ORDER=CODE ...]`: the orders whose lines name two customers or
carry two order dates.

Lists each order split between customers (before session 56 two imports at the same moment could store lines of one
order number for two customers) with its customers and their lines, the customer keeping it first: the one named by
the line imported most recently, unless `--keep ORDER=CODE` names another (a credit code, an external id or the
customer's id). `--repair` moves the other customers' lines to it, recomputes the months concerned and audits each
line moved (sales.splits). The same race could give one order's lines two order dates: they are listed too, the date
the most recent import gave marked, and `--repair` gives the other lines that date (their months recomputed, each line
audited). An order split both ways is repaired at once, its customer first. The repair is the split orders page's
(sales.splits.repair). Exit status 1 when split orders were found and not repaired, 0 otherwise (a script's check).
docs/purchases.md, "Orders split between customers (or order dates)"."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from pharmacrm.core.management.commands._ops import cli_actor
from pharmacrm.sales import splits
from pharmacrm.servicedesk.services import SystemActor


class Command(BaseCommand):
    help = ("Orders: split-check lists the orders whose lines name two customers or carry two order dates; --repair "
            "gives each to one customer and one date.")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        check = sub.add_parser("split-check", help="List the orders split between customers (--repair: repair them).")
        check.add_argument("--repair", action="store_true",
                           help="Move each split order's lines to the customer keeping it, audited.")  # fmt: skip
        check.add_argument("--keep", action="append", default=[], metavar="ORDER=CODE",
                           help="The customer keeping this order (credit code, external id or id) instead of the "
                                "one its most recently imported line names.")  # fmt: skip

    def handle(self, *args, action, repair, keep, **options):
        chosen = {}
        for given in keep:
            order, sep, code = given.partition("=")
            try:
                if not sep or not order.strip():
                    raise ValidationError(_("Give --keep as ORDER=CODE."))
                chosen[order.strip()] = splits.customer_for(order.strip(), code)
            except ValidationError as e:  # one line, not a traceback
                self.stderr.write("; ".join(e.messages))
                raise SystemExit(2) from None
        found = splits.find(chosen)
        by_customer = sum(1 for order in found if order.customers)
        by_date = sum(1 for order in found if order.dates)
        if not by_customer:
            self.stdout.write(_("No order is split between customers."))
        if not by_date:
            self.stdout.write(_("No order's lines carry two order dates."))
        if not found:
            return
        actor = SystemActor(cli_actor())
        moved = redated = 0
        for order in found:
            self._list(order)
            if not repair:
                continue
            split = order.customers
            try:  # the same repair as the split orders page's: both parts at once, customer first
                done = splits.repair(order.order_number, actor,
                                     customer=split.keeper if split is not None and split.chosen else None)  # fmt: skip
            except ValidationError as e:
                self.stdout.write("  " + "; ".join(e.messages))
                continue
            moved, redated = moved + done.moved, redated + done.redated
            if split is not None:
                self.stdout.write("  " + _("Repaired: %(n)d line(s) moved.") % {"n": done.moved})
            if order.dates is not None:
                self.stdout.write("  " + _("Repaired: %(n)d line(s) given the order's date.") % {"n": done.redated})
        if repair:
            if by_customer:
                self.stdout.write(_("%(orders)d split order(s) repaired, %(lines)d line(s) moved.")
                                  % {"orders": by_customer, "lines": moved})  # fmt: skip
            if by_date:
                self.stdout.write(_("%(orders)d order(s) with two order dates repaired, %(lines)d line(s) given the "
                                    "order's date.") % {"orders": by_date, "lines": redated})  # fmt: skip
            return
        if by_customer:
            self.stdout.write(_("%(orders)d split order(s) found; run again with --repair to give each to the "
                                "customer marked.") % {"orders": by_customer})  # fmt: skip
        if by_date:
            self.stdout.write(_("%(orders)d order(s) with two order dates found; run again with --repair to give "
                                "their lines the date marked.") % {"orders": by_date})  # fmt: skip
        raise SystemExit(1)

    def _list(self, order) -> None:
        """An order's customers (or dates), each with its lines and last import, the one kept marked."""
        if (split := order.customers) is not None:
            self.stdout.write(_("Order %(order)s names %(n)d customers:") % {"order": split.order_number,
                                                                             "n": len(split.parts)})  # fmt: skip
            for part in split.parts:
                lines = ", ".join(str(n) for n in part.lines)
                text = _("%(customer)s (%(code)s): lines %(lines)s, last imported %(at)s") % {
                    "customer": part.name, "code": part.code or "—", "lines": lines,
                    "at": f"{part.last_imported:%Y-%m-%d %H:%M}" if part.last_imported else "—",
                }  # fmt: skip
                mark = _("keeps the order") if part.institution_id == split.keeper else ""
                self.stdout.write(f"  {text}" + (f" — {mark}" if mark else ""))
        if (dated := order.dates) is not None:
            self.stdout.write(_("Order %(order)s carries %(n)d order dates:") % {"order": dated.order_number,
                                                                                 "n": len(dated.parts)})  # fmt: skip
            for part in dated.parts:
                text = _("%(date)s: lines %(lines)s, last imported %(at)s") % {
                    "date": part.order_date.isoformat(), "lines": ", ".join(str(n) for n in part.lines),
                    "at": f"{part.last_imported:%Y-%m-%d %H:%M}" if part.last_imported else "—",
                }  # fmt: skip
                mark = _("the order's date") if part.order_date == dated.kept else ""
                self.stdout.write(f"  {text}" + (f" — {mark}" if mark else ""))
