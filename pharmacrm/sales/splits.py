"""Orders split between customers or order dates before session 56: found and repaired here, for the split orders
page (/sales/orders/splits/, views_splits), its API (/api/v1/sales/split-orders/, api_splits) and
`pharmacrm orders split-check [--repair]` alike — one finder (`split_numbers`, `describe`) and one repair (`repair`).

One order belongs to one customer: the import refuses a line naming another customer than the order's stored lines
(ef348bc9), and checks it again under the writers' lock (4756e394, session 56). Before that second check two imports
at the same moment could each store lines of one order number for a different customer; those orders stay split (the
import leaves a split it finds as it is, and says so in its notes). The same race could give one order's lines two
order dates (the import refuses a line dated otherwise than the order's stored lines, checked again under the
writers' lock since session 56): its lines counted on two days, maybe in two months.

What the repair keeps: the customer named by the line imported most recently (its import's time, then its import
job, then its id) — what the ERP said last about the order, the file that corrected it — and the order date that line
carries, unless the operator chooses another part (the page, the API; `--keep ORDER=CODE` for the customer on the
command line). The other customers' lines of the order are moved to the customer kept and the lines dated otherwise
take the date kept: fingerprinted again (a re-import of the file naming that customer and date finds them unchanged),
the months they leave and enter recomputed from their lines (`rollups.mark_dirty`, `refresh_dirty`, as a customer
merge does), the customers scored again after it, each line's change audited (reason “split order”, “split order
date”, or “split order date chosen” for a date the operator chose). All under the writers' lock, the order's lines read
again there: an order repaired meanwhile (a double click, a colleague, an import that corrected it) is left as it is
and the caller told so (`Repaired.already`).

Finding them costs one grouped pass over every order line (seconds for ten million). No import stores a new split
order since session 56, so their list only shrinks: the pages keep the numbers a pass found for a day (the cache) and
read only those orders' lines again (`current_numbers`); the command always makes the pass."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Max, Min, Q
from django.utils.translation import gettext as _

from pharmacrm.core import access, audit
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap

from . import importer, rollups
from .models import OrderLine, yuan

REASON = "split order"
DATE_REASON = "split order date"
DATE_CHOSEN_REASON = "split order date chosen"  # a date the operator chose, not the one the line imported last gives
REASONS = (REASON, DATE_REASON, DATE_CHOSEN_REASON)

CACHE_KEY = "sales.split-orders"
CACHE_SECONDS = 86400  # a pass's list of split orders, kept for the pages (each order read again on use): the pass
# costs seconds for ten million lines, and only a change outside the application (a restore, SQL) could add one
CHUNK = 5000  # order numbers per query


@dataclass
class Part:
    """The lines of a split order that name one customer."""

    institution_id: int
    name: str = ""  # as the pages name a customer: a department with its hospital (北京协和医院 › 心内科)
    code: str = ""  # its credit code, else its external id
    lines: list[int] = field(default_factory=list)  # line numbers
    last_imported: object = None
    amount_fen: int = 0
    dates: list[dt.date] = field(default_factory=list)  # the order dates its lines carry, earliest first

    @property
    def amount(self) -> Decimal:
        return yuan(self.amount_fen)


@dataclass
class Split:
    order_number: str
    parts: list[Part]  # the customer keeping the order first
    keeper: int  # its institution id
    chosen: bool = False  # named by an operator, not the customer of the line imported last


@dataclass
class DatePart:
    """The lines of an order split between dates that carry one order date."""

    order_date: dt.date
    lines: list[int] = field(default_factory=list)  # line numbers
    last_imported: object = None
    amount_fen: int = 0
    customers: list[int] = field(default_factory=list)  # the customers its lines name (institution ids)
    customer_names: list[str] = field(default_factory=list)

    @property
    def amount(self) -> Decimal:
        return yuan(self.amount_fen)


@dataclass
class DateSplit:
    order_number: str
    parts: list[DatePart]  # the date kept first
    kept: dt.date  # the order date the lines take


@dataclass
class SplitOrder:
    """An order whose lines name two customers (`customers`), carry two order dates (`dates`), or both. What the repair
    keeps unless told otherwise is what the line imported last (`latest_line`, imported at `latest_imported`) gives."""

    order_number: str
    customers: Split | None
    dates: DateSplit | None
    latest_line: int
    latest_imported: object


@dataclass
class Repaired:
    """What `repair` did to an order: the customer and order date it has now, how many lines it moved to that
    customer and how many it gave that date. `already`: the order's lines named one customer and carried one date
    when read under the lock — repaired meanwhile (a double click, a colleague, an import) — and nothing changed."""

    order_number: str
    customer: int
    order_date: dt.date
    moved: int = 0
    redated: int = 0
    already: bool = False


# --- finding them ------------------------------------------------------------------------------------------------


def _in_chunks(numbers) -> list[list[str]]:
    numbers = sorted(set(numbers))
    return [numbers[i : i + CHUNK] for i in range(0, len(numbers), CHUNK)]


def split_numbers(among=None) -> list[str]:
    """The order numbers whose stored lines name two customers or carry two order dates, in order: one grouped pass
    over every order line, or over the lines of the orders `among` names (their number's index)."""

    def grouped(lines) -> list[str]:
        return list(
            lines.order_by().values("order_number")
            .annotate(first_customer=Min("institution_id"), last_customer=Max("institution_id"),
                      first_date=Min("order_date"), last_date=Max("order_date"))
            .filter(Q(first_customer__lt=F("last_customer")) | Q(first_date__lt=F("last_date")))
            .values_list("order_number", flat=True)
        )  # fmt: skip

    if among is None:
        return sorted(grouped(OrderLine.objects.all()))
    return sorted(n for chunk in _in_chunks(among) for n in grouped(OrderLine.objects.filter(order_number__in=chunk)))


def current_numbers() -> list[str]:
    """The split orders, for the pages: those of the last pass (kept CACHE_SECONDS) that are split still — their lines
    read again —, or a new pass's when none is kept."""
    known = cache.get(CACHE_KEY)
    found = split_numbers() if known is None else split_numbers(known)
    if found != known:
        cache.set(CACHE_KEY, found, CACHE_SECONDS)
    return found


def _rank(at, job, pk) -> tuple:
    """Which line was imported last: the later import, then the later import job, then the later line."""
    return (at, job or 0, pk)


def describe(numbers, keep: dict[str, int] | None = None) -> list[SplitOrder]:
    """Each of these orders that is split, in the order given, with its customers and dates and their lines: the
    customer and the date kept first (`keep`: order → the customer an operator chose). Two queries whatever the
    number of orders: their lines, and the customers they name."""
    from pharmacrm.customers.forms import picker_label
    from pharmacrm.customers.models import Institution

    keep = keep or {}
    numbers = list(numbers)
    rows: dict[str, list[tuple]] = {}
    for chunk in _in_chunks(numbers):
        for number, *line in OrderLine.objects.filter(order_number__in=chunk).order_by("order_number", "line_number") \
                .values_list("order_number", "line_number", "institution_id", "order_date", "amount_fen", "imported_at",
                             "job_id", "id"):  # fmt: skip
            rows.setdefault(number, []).append(line)
    grouped = []
    for number in numbers:
        by_customer: dict[int, Part] = {}
        by_date: dict[dt.date, DatePart] = {}
        latest = None
        for n, inst, day, amount, at, job, pk in rows.get(number, []):
            customer = by_customer.setdefault(inst, Part(inst))
            dated = by_date.setdefault(day, DatePart(day))
            for part in (customer, dated):
                part.lines.append(n)
                part.amount_fen += amount
                part.last_imported = at if part.last_imported is None else max(part.last_imported, at)
            if day not in customer.dates:
                customer.dates.append(day)
            if inst not in dated.customers:
                dated.customers.append(inst)
            if latest is None or _rank(at, job, pk) > latest[0]:
                latest = (_rank(at, job, pk), n, inst, day)
        if len(by_customer) > 1 or len(by_date) > 1:
            grouped.append((number, by_customer, by_date, latest))
    wanted = {inst for _n, by_customer, _d, _l in grouped for inst in by_customer}
    names = {
        inst.pk: (picker_label(inst), inst.credit_code or inst.external_id or "")
        for inst in Institution.objects.filter(pk__in=wanted).select_related("parent")
    }
    found = []
    for number, by_customer, by_date, (rank, line, inst, day) in grouped:
        for part in by_customer.values():
            part.name, part.code = names.get(part.institution_id, ("", ""))
            part.dates.sort()
        for part in by_date.values():
            part.customer_names = [names.get(i, ("", ""))[0] for i in part.customers]
        customers = dates = None
        if len(by_customer) > 1:
            keeper = keep.get(number, inst)
            parts = sorted(by_customer.values(), key=lambda p: (p.institution_id != keeper, p.name, p.institution_id))
            customers = Split(number, parts, keeper, chosen=keeper != inst)
        if len(by_date) > 1:
            dates = DateSplit(number, sorted(by_date.values(), key=lambda p: (p.order_date != day, p.order_date)), day)
        found.append(SplitOrder(number, customers, dates, line, rank[0]))
    return found


def find(keep: dict[str, int] | None = None) -> list[SplitOrder]:
    """Every split order, from a new pass over the lines (kept for the pages too), the customer and date kept first
    (`keep`: order → the customer an operator chose)."""
    numbers = split_numbers()
    cache.set(CACHE_KEY, numbers, CACHE_SECONDS)
    return describe(numbers, keep)


def numbers_for(user, *, customer: int | None = None, order: str = "", date_from=None, date_to=None) -> list[str]:
    """The split orders `user` may see, in order: for those who see purchases, each order all of whose customers they
    may see (a territory-bound reader, the rep, sees no order that names a customer outside their territory, as the
    order lines show them none of its lines). Narrowed by the page's filters: a customer the order names (an
    institution id), the order number's beginning (in any letter case), an order date of its lines within
    [date_from, date_to]."""
    from .forms import _case_variants

    if not access.can(user, Cap.VIEW_PURCHASES):
        return []
    numbers = current_numbers()
    if order:
        variants = tuple(_case_variants(order))
        numbers = [n for n in numbers if n.startswith(variants)]
    scoped = access.institution_scope_q(user) is not None
    if not numbers or not (scoped or customer is not None or date_from or date_to):
        return numbers
    facts: dict[str, tuple[set, set]] = {}
    for chunk in _in_chunks(numbers):
        for number, inst, day in OrderLine.objects.filter(order_number__in=chunk).order_by().values_list(
            "order_number", "institution_id", "order_date"
        ).distinct():
            customers, dates = facts.setdefault(number, (set(), set()))
            customers.add(inst)
            dates.add(day)
    visible = access.visible_ids(user, "institution", {i for c, _d in facts.values() for i in c}) if scoped else None

    def shown(number: str) -> bool:
        customers, dates = facts.get(number, (set(), set()))
        return (
            bool(customers)
            and (visible is None or customers <= visible)
            and (customer is None or customer in customers)
            and any((not date_from or day >= date_from) and (not date_to or day <= date_to) for day in dates)
        )

    return [n for n in numbers if shown(n)]


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


def last_repair(order_number: str) -> AuditEntry | None:
    """The audit entry of the last repair of this order (one of its lines moved or given another date), if any."""
    ids = [str(pk) for pk in OrderLine.objects.filter(order_number=order_number).values_list("id", flat=True)]
    entries = AuditEntry.objects.filter(object_type="sales.orderline", object_id__in=ids,
                                        action=AuditEntry.Action.UPDATE).order_by("-seq")  # fmt: skip
    return next((e for e in entries[:100] if (e.extra or {}).get("reason") in REASONS), None)


# --- repairing them ----------------------------------------------------------------------------------------------

_HASHED = (
    "id", "order_number", "line_number", "order_date", "month", "institution_id", "product_code", "product_name",
    "batch_number", "quantity", "unit_price", "amount_fen", "invoice_number", "payment_due", "paid_date", "paid_fen",
    "row_hash",
)  # fmt: skip


def repair(order_number: str, user, *, customer: int | None = None, order_date: dt.date | None = None,
           source: str = "") -> Repaired:  # fmt: skip
    """Give the order one customer and one order date: `customer` (an institution id, one of the order's customers)
    and `order_date` (one of its dates), by default those of the line imported last. Under the writers' lock, as an
    import's chunk: the lines are read again there, and an order no longer split is left as it is (`already`). The
    other customers' lines move to the customer kept, then the lines dated otherwise take the date kept; the months
    they leave and enter are recomputed once committed, the customers scored again. `source` ("form", "api") goes in
    the audit entries. A customer or date the order's lines no longer carry is refused (ValidationError naming the
    field): the operator chose from a page read before someone changed the order."""
    extra = {"source": source} if source else {}
    with transaction.atomic():
        rollups.lock()
        lines = list(OrderLine.objects.select_for_update().filter(order_number=order_number).order_by("line_number")
                     .values("id", "line_number", "institution_id", "order_date", "month", "imported_at", "job_id"))  # fmt: skip
        if not lines:
            raise ValidationError({"order_number": _("No order %(order)s is stored.") % {"order": order_number}})
        customers = {line["institution_id"] for line in lines}
        dates = {line["order_date"] for line in lines}
        if len(customers) < 2 and len(dates) < 2:
            return Repaired(order_number, lines[0]["institution_id"], lines[0]["order_date"], already=True)
        latest = max(lines, key=lambda line: _rank(line["imported_at"], line["job_id"], line["id"]))
        keeper = latest["institution_id"] if customer is None else customer
        kept = latest["order_date"] if order_date is None else order_date
        if keeper not in customers:
            from pharmacrm.customers.models import Institution

            name = Institution.objects.filter(pk=keeper).values_list("name", flat=True).first() or keeper
            raise ValidationError({"customer": _("%(code)s is not one of the customers of order %(order)s.")
                                   % {"code": name, "order": order_number}})  # fmt: skip
        if kept not in dates:
            raise ValidationError({"order_date": _("%(date)s is not one of the order dates of order %(order)s.")
                                   % {"date": kept.isoformat(), "order": order_number}})  # fmt: skip
        moved = _move(order_number, lines, keeper, user, extra) if len(customers) > 1 else 0
        reason = DATE_REASON if kept == latest["order_date"] else DATE_CHOSEN_REASON
        redated = _redate(order_number, kept, user, reason, extra) if len(dates) > 1 else 0
    rollups.refresh_dirty()
    from .services import rescore_changed

    rescore_changed()  # the evaluation's incremental update of the customers, once committed
    return Repaired(order_number, keeper, kept, moved, redated)


def _move(order_number: str, lines: list[dict], keeper: int, user, extra: dict) -> int:
    """The other customers' lines of the order moved to `keeper`: fingerprinted again, their months (left and
    entered) marked for recomputation, each audited."""
    moving = [line for line in lines if line["institution_id"] != keeper]
    by_customer: dict[int, list[int]] = {}
    for line in moving:
        by_customer.setdefault(line["institution_id"], []).append(line["id"])
    OrderLine.objects.filter(pk__in=[line["id"] for line in moving]).update(institution_id=keeper)
    for inst, ids in by_customer.items():
        importer.rehash_moved(ids, inst)
    rollups.mark_dirty({(line["institution_id"], line["month"]) for line in moving}
                       | {(keeper, line["month"]) for line in moving})  # fmt: skip
    audit.record_many(AuditEntry.Action.UPDATE, [
        (("sales.orderline", str(line["id"]), f"{order_number}/{line['line_number']}"),
         {"institution": [line["institution_id"], keeper]})
        for line in moving
    ], user=user, reason=REASON, **extra)  # fmt: skip
    return len(moving)


def _redate(order_number: str, kept: dt.date, user, reason: str, extra: dict) -> int:
    """The order's lines dated otherwise given `kept` (read again: `_move` may have just moved them). A line's
    fingerprint is made again when it was the one its values gave (a re-import of the file giving the kept date finds
    it unchanged); the months they leave and enter are marked for recomputation, each line audited."""
    from .importer import _hashed_values, row_hash

    month = kept.replace(day=1)
    moving = list(OrderLine.objects.filter(order_number=order_number).exclude(order_date=kept).values(*_HASHED))
    for line in moving:
        fingerprint = line["row_hash"]
        if row_hash(_hashed_values(line, line["institution_id"])) == fingerprint:
            fingerprint = row_hash(_hashed_values({**line, "order_date": kept, "month": month}, line["institution_id"]))
        OrderLine.objects.filter(pk=line["id"]).update(order_date=kept, month=month, row_hash=fingerprint)
    rollups.mark_dirty({(line["institution_id"], line["month"]) for line in moving}
                       | {(line["institution_id"], month) for line in moving})  # fmt: skip
    audit.record_many(AuditEntry.Action.UPDATE, [
        (("sales.orderline", str(line["id"]), f"{order_number}/{line['line_number']}"),
         {"order_date": [line["order_date"].isoformat(), kept.isoformat()]})
        for line in moving
    ], user=user, reason=reason, **extra)  # fmt: skip
    return len(moving)
