"""Orders split between customers before session 56 (`pharmacrm orders split-check [--repair]`).

One order belongs to one customer: the import refuses a line naming another customer than the order's stored lines
(ef348bc9), and checks it again under the writers' lock (4756e394, session 56). Before that second check two imports
at the same moment could each store lines of one order number for a different customer; those orders stay split (the
import leaves a split it finds as it is). This module finds them and repairs them.

Which customer keeps the order: the one named by the line imported most recently (its import's time, then its
import job, then its id) — what the ERP said last about the order, the file that corrected it — unless the operator
names another (`--keep ORDER=CODE`, a credit code or external id, or the customer's id). The other customers' lines
of the order are moved to it: fingerprinted again (a re-import of the file naming the kept customer finds them
unchanged), the months they leave and enter recomputed from their lines (`rollups.mark_dirty`, `refresh_dirty`, as a
customer merge does), the customers scored again after it, each line's move audited (reason “split order”)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils.translation import gettext as _

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry

from . import importer, rollups
from .models import OrderLine

REASON = "split order"


@dataclass
class Part:
    """The lines of a split order that name one customer."""

    institution_id: int
    name: str
    code: str  # its credit code, else its external id
    lines: list[int] = field(default_factory=list)  # line numbers
    last_imported: object = None


@dataclass
class Split:
    order_number: str
    parts: list[Part]  # the customer keeping the order first
    keeper: int  # its institution id


def _parts(number: str, column: str, make) -> tuple[dict, object]:
    """The lines of order `number` grouped by `column` (the customer, the order date): each group (made by `make`
    from its value) with its line numbers and its last import; and the value of the line imported last (then by the
    later import job, then the later line) — what the ERP said last about the order."""
    parts: dict = {}
    latest = None
    for n, value, at, job, pk in OrderLine.objects.filter(order_number=number).order_by("line_number").values_list(
        "line_number", column, "imported_at", "job_id", "id"
    ):
        part = parts.setdefault(value, make(value))
        part.lines.append(n)
        part.last_imported = at if part.last_imported is None else max(part.last_imported, at)
        rank = (at, job or 0, pk)
        if latest is None or rank > latest[0]:
            latest = (rank, value)
    return parts, latest[1] if latest else None


def split_order_numbers() -> list[str]:
    """The order numbers whose stored lines name more than one customer (one grouped pass over the lines)."""
    return list(
        OrderLine.objects.order_by().values("order_number").annotate(n=Count("institution_id", distinct=True))
        .filter(n__gt=1).order_by("order_number").values_list("order_number", flat=True)
    )  # fmt: skip


def _describe(number: str, keep: int | None = None) -> Split | None:
    from pharmacrm.customers.models import Institution

    parts, latest = _parts(number, "institution_id", lambda inst: Part(inst, "", ""))
    if len(parts) < 2:
        return None
    for pk, name, credit, external in Institution.objects.filter(pk__in=list(parts)).values_list(
        "id", "name", "credit_code", "external_id"
    ):
        parts[pk].name, parts[pk].code = name, credit or external or ""
    keeper = keep if keep is not None else latest
    ordered = sorted(parts.values(), key=lambda p: (p.institution_id != keeper, p.name, p.institution_id))
    return Split(number, ordered, keeper)


def find(keep: dict[str, int] | None = None) -> list[Split]:
    """Each split order, with its customers and lines, the customer keeping it first (`keep`: order → the customer
    an operator chose)."""
    keep = keep or {}
    found = (_describe(number, keep.get(number)) for number in split_order_numbers())
    return [s for s in found if s is not None]


def customer_for(order_number: str, given: str) -> int:
    """The customer an operator names for a split order (its credit code, external id or id), one of the order's."""
    from pharmacrm.customers import normalise
    from pharmacrm.customers.models import Institution

    named = set(OrderLine.objects.filter(order_number=order_number).values_list("institution_id", flat=True))
    if not named:
        raise ValidationError(_("No order %(order)s is stored.") % {"order": order_number})
    given = (given or "").strip()
    candidates = Institution.objects.filter(pk__in=named)
    match = [
        pk for pk, credit, external in candidates.values_list("id", "credit_code", "external_id")
        if given in {str(pk), external or ""} - {""} or (credit and credit == normalise.credit_code(given))
    ]  # fmt: skip
    if len(match) != 1:
        raise ValidationError(_("%(code)s is not one of the customers of order %(order)s.")
                              % {"code": given, "order": order_number})  # fmt: skip
    return match[0]


def repair(split: Split, user) -> int:
    """Move the lines of `split` that name another customer to the one keeping it; returns how many lines moved. Under
    the writers' lock, as an import's chunk: the lines are read again there (an import may have corrected the order
    since it was listed), and an order no longer split is left as it is."""
    with transaction.atomic():
        rollups.lock()
        lines = list(OrderLine.objects.select_for_update().filter(order_number=split.order_number)
                     .values_list("id", "line_number", "institution_id", "month"))  # fmt: skip
        if len({inst for _pk, _n, inst, _m in lines}) < 2 or split.keeper not in {line[2] for line in lines}:
            return 0
        moving = [line for line in lines if line[2] != split.keeper]
        by_customer: dict[int, list[int]] = {}
        for pk, _n, inst, _month in moving:
            by_customer.setdefault(inst, []).append(pk)
        OrderLine.objects.filter(pk__in=[line[0] for line in moving]).update(institution_id=split.keeper)
        for inst, ids in by_customer.items():
            importer.rehash_moved(ids, inst)
        rollups.mark_dirty({(inst, month) for _pk, _n, inst, month in moving}
                           | {(split.keeper, month) for _pk, _n, _i, month in moving})  # fmt: skip
        audit.record_many(AuditEntry.Action.UPDATE, [
            (("sales.orderline", str(pk), f"{split.order_number}/{n}"), {"institution": [inst, split.keeper]})
            for pk, n, inst, _month in moving
        ], user=user, reason=REASON)  # fmt: skip
    rollups.refresh_dirty()
    from .services import rescore_changed

    rescore_changed()  # the evaluation's incremental update of the customers, once committed
    return len(moving)


# --- orders split between two order dates ----------------------------------------------------------------------------
# The same race stored lines of one order number with two order dates (the import refuses a line dated otherwise than
# the order's stored lines, checked again under the writers' lock since session 56): its lines counted in two days,
# maybe two months. The date the most recent import gave (the line imported last, as above) is the order's: the other
# lines take it, fingerprinted again, the months they leave and enter recomputed, each change audited.

DATE_REASON = "split order date"


@dataclass
class DatePart:
    """The lines of an order split between dates that carry one order date."""

    order_date: object
    lines: list[int] = field(default_factory=list)  # line numbers
    last_imported: object = None


@dataclass
class DateSplit:
    order_number: str
    parts: list[DatePart]  # the date kept first
    kept: object  # the order date the lines take


def dated_order_numbers() -> list[str]:
    """The order numbers whose stored lines carry more than one order date."""
    return list(
        OrderLine.objects.order_by().values("order_number").annotate(n=Count("order_date", distinct=True))
        .filter(n__gt=1).order_by("order_number").values_list("order_number", flat=True)
    )  # fmt: skip


def _describe_dates(number: str) -> DateSplit | None:
    parts, kept = _parts(number, "order_date", DatePart)
    if len(parts) < 2:
        return None
    return DateSplit(number, sorted(parts.values(), key=lambda p: (p.order_date != kept, p.order_date)), kept)


def find_dates() -> list[DateSplit]:
    """Each order whose lines carry two order dates (or more), the date kept first."""
    found = (_describe_dates(number) for number in dated_order_numbers())
    return [s for s in found if s is not None]


def repair_dates(split: DateSplit, user) -> int:
    """Give the lines of `split` dated otherwise the date kept; returns how many lines changed. Under the writers' lock,
    the lines read again there (an order no longer split between dates is left as it is). A line's fingerprint is made
    again when it was the one its values gave (a re-import of the file giving the kept date finds it unchanged)."""
    from .importer import _hashed_values, row_hash

    kept, month = split.kept, split.kept.replace(day=1)
    with transaction.atomic():
        rollups.lock()
        lines = list(OrderLine.objects.select_for_update().filter(order_number=split.order_number).values(
            "id", "order_number", "line_number", "order_date", "month", "institution_id", "product_code",
            "product_name", "batch_number", "quantity", "unit_price", "amount_fen", "invoice_number", "payment_due",
            "paid_date", "paid_fen", "row_hash"))  # fmt: skip
        if len({line["order_date"] for line in lines}) < 2 or kept not in {line["order_date"] for line in lines}:
            return 0
        moving = [line for line in lines if line["order_date"] != kept]
        for line in moving:
            fingerprint = line["row_hash"]
            if row_hash(_hashed_values(line, line["institution_id"])) == fingerprint:
                fingerprint = row_hash(_hashed_values({**line, "order_date": kept, "month": month},
                                                      line["institution_id"]))  # fmt: skip
            OrderLine.objects.filter(pk=line["id"]).update(order_date=kept, month=month, row_hash=fingerprint)
        rollups.mark_dirty({(line["institution_id"], line["month"]) for line in moving}
                           | {(line["institution_id"], month) for line in moving})  # fmt: skip
        audit.record_many(AuditEntry.Action.UPDATE, [
            (("sales.orderline", str(line["id"]), f"{split.order_number}/{line['line_number']}"),
             {"order_date": [line["order_date"].isoformat(), kept.isoformat()]})
            for line in moving
        ], user=user, reason=DATE_REASON)  # fmt: skip
    rollups.refresh_dirty()
    from .services import rescore_changed

    rescore_changed()
    return len(moving)
