"""Purchases for the pages and the scoring: a customer's months, credit status and ageing, the batch
trace, and the access checks for all of it. Imports write through `importer`; nothing else writes lines."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access
from pharmacrm.core.roles import Cap

from . import rollups
from .models import MonthlyRollup, OrderLine, yuan

BATCH_ORDERS_PER_CUSTOMER = 20  # orders the batch trace names per customer (the customers are all listed)
AGEING_BUCKETS = ((0, 0), (1, 30), (31, 60), (61, 90), (91, None))  # days past due; (0, 0) = not yet due


def half_up(value: Decimal, places: str) -> Decimal:
    """`value` rounded to `places` ("0.1", "0.0001" …) the way people round (四舍五入): 13.25 → 13.3, where
    Decimal's default (half to even) would give 13.2. Every figure sales rounds for display goes through here."""
    return value.quantize(Decimal(places), rounding=ROUND_HALF_UP)


def may_see_purchases(user, institution) -> bool:
    return access.can(user, Cap.VIEW_PURCHASES) and access.can_see(user, institution)


def require_purchases(user, institution) -> None:
    if not may_see_purchases(user, institution):
        raise PermissionDenied(_("You do not have permission to do this."))


def lines_for(user):
    """Order lines of the customers the user may see (none without the purchases capability)."""
    if not access.can(user, Cap.VIEW_PURCHASES):
        return OrderLine.objects.none()
    scope = access.institution_scope_q(user)
    qs = OrderLine.objects.select_related("institution", "institution__parent")  # a department is named with its hospital
    if scope is None:
        return qs
    from pharmacrm.customers.models import Institution

    return qs.filter(institution_id__in=Institution.objects.filter(scope).values("id"))


def month_start(day: dt.date, back: int = 0) -> dt.date:
    """The first day of the month `back` months before `day`'s month."""
    index = day.year * 12 + day.month - 1 - back
    return dt.date(index // 12, index % 12 + 1, 1)


def monthly(institution_id: int, months: int = 24, today: dt.date | None = None) -> list[dict]:
    """The last `months` months (oldest first, empty months included) for the purchases chart."""
    today = today or timezone.localdate()
    first = month_start(today, months - 1)
    rows = {
        r.month: r
        for r in MonthlyRollup.objects.filter(
            institution_id=institution_id, month__gte=first, month__lte=today
        )
    }
    out = []
    for back in range(months - 1, -1, -1):
        m = month_start(today, back)
        r = rows.get(m)
        out.append({
            "month": m.strftime("%Y-%m"), "amount": yuan(r.amount_fen if r else 0), "orders": r.orders if r else 0,
            "lines": r.lines if r else 0, "products": r.products if r else 0,
            "overdue": yuan(r.overdue_fen if r else 0),
        })  # fmt: skip
    return out


@dataclass
class Credit:
    """A customer's payment behaviour and open items (信用状况)."""

    paid: Decimal = Decimal("0.00")
    on_time_share: Decimal | None = None  # share of the due amount paid in full by its due date (0–1)
    on_time_percent: Decimal | None = None  # the same in per cent, one place (as the pages show it)
    average_days_late: Decimal | None = None
    late_lines: int = 0
    outstanding: Decimal = Decimal("0.00")  # current arrears: everything not paid yet
    overdue: Decimal = Decimal("0.00")  # of which past its due date
    ageing: list[dict] = field(default_factory=list)  # [{label, from, to, amount}]
    status: str = ""  # good / watch / poor / none
    window_months: int = 12
    # the default payment term in days when some of the lines counted have no payment due date (it was
    # assumed for them), else None
    assumed_term_days: int | None = None
    # the overdue amount is immaterial (rollups.overdue_immaterial: a rounding difference left open): the status
    # counts it as settled, the figures above still show it
    overdue_ignored: bool = False


def _status(on_time: Decimal | None, overdue: Decimal, outstanding: Decimal) -> str:
    """good / watch / poor / none. Nothing fallen due yet (no line paid, none overdue: only lines still to be
    paid by their due date) is no payment history — not "good", which the evaluation would contradict with its
    "no payment history: default" credit measure."""
    if on_time is None and not overdue:
        return "none"
    share_overdue = (overdue / outstanding) if outstanding else Decimal(0)
    if (on_time is None or on_time >= Decimal("0.9")) and share_overdue <= Decimal("0.1"):
        return "good"
    if (on_time is None or on_time >= Decimal("0.7")) and share_overdue <= Decimal("0.3"):
        return "watch"
    return "poor"


CREDIT_LABELS = {
    "good": gettext_lazy("Good"),
    "watch": gettext_lazy("Watch"),
    "poor": gettext_lazy("Poor"),
    "none": gettext_lazy("No payment history"),
}


def credit(institution_id: int, today: dt.date | None = None, window_months: int = 12) -> Credit:
    """Payment timeliness over the last `window_months` months (from rollups), arrears and ageing (from
    the open items: unpaid lines only, through their partial index). An overdue debt counts against the share paid
    on time whenever it was ordered: a debt does not age out of the window while it stays unpaid."""
    today = today or timezone.localdate()
    first = month_start(today, window_months - 1)
    agg = MonthlyRollup.objects.filter(institution_id=institution_id, month__gte=first).aggregate(
        amount=Sum("amount_fen"), paid=Sum("paid_fen"), on_time=Sum("on_time_fen"), late=Sum("late_fen"), late_lines=Sum("late_lines"),
        days=Sum("days_late"),
    )  # fmt: skip
    c = Credit(window_months=window_months)
    c.paid = yuan(agg["paid"])
    on_time, late = int(agg["on_time"] or 0), int(agg["late"] or 0)
    open_items = OrderLine.objects.filter(institution_id=institution_id, outstanding_fen__gt=0)
    buckets = [0] * len(AGEING_BUCKETS)
    outstanding = overdue = 0
    undated = False
    rows = open_items.values_list("payment_due", "order_date", "outstanding_fen")
    for given, ordered, amount in rows.iterator():
        undated = undated or given is None
        due = rollups.due_date(given, ordered)  # no due date: the default payment term from the order date
        outstanding += amount
        days = (today - due).days
        for i, (low, high) in enumerate(AGEING_BUCKETS):
            if days >= low and (high is None or days <= high) or (i == 0 and days <= 0):
                buckets[i] += amount
                break
        if days > 0:
            overdue += amount
    due_total = on_time + late + overdue
    if due_total:
        c.on_time_share = half_up(Decimal(on_time) / Decimal(due_total), "0.0001")
        # the page's percentage is rounded once from the exact share (not from the rounded share)
        c.on_time_percent = half_up(Decimal(on_time) * 100 / Decimal(due_total), "0.1")
    late_lines = int(agg["late_lines"] or 0)
    c.late_lines = late_lines
    c.average_days_late = half_up(Decimal(int(agg["days"] or 0)) / late_lines, "0.1") if late_lines else None
    c.outstanding, c.overdue = yuan(outstanding), yuan(overdue)
    labels = [_("Not yet due"), _("1–30 days"), _("31–60 days"), _("61–90 days"), _("Over 90 days")]
    c.ageing = [
        {"label": label, "from": low, "to": high, "amount": yuan(amount)}
        for label, (low, high), amount in zip(labels, AGEING_BUCKETS, buckets, strict=True)
    ]
    c.overdue_ignored = rollups.overdue_immaterial(overdue, int(agg["amount"] or 0))
    if c.overdue_ignored:  # left out of the status: the share paid on time without it, nothing overdue
        settled = on_time + late
        share = half_up(Decimal(on_time) / Decimal(settled), "0.0001") if settled else None
        c.status = _status(share, Decimal(0), yuan(outstanding - overdue))
    else:
        c.status = _status(c.on_time_share, c.overdue, c.outstanding)
    if (
        undated
        or OrderLine.objects.filter(
            institution_id=institution_id, month__gte=first, payment_due__isnull=True, paid_date__isnull=False
        ).exists()
    ):
        c.assumed_term_days = rollups.payment_term_days()
    return c


def last_months(months: int = 12, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """What every "last 12 months" figure covers (the purchases block, the market share, the key-account page, the
    API): the `months` whole months before the current one, as [first day, first day of the current month). The
    month under way is left out, so that a figure does not move with the day of the month and a year's purchases
    stand beside a yearly estimate (the market share) as they are; the loyalty level, churn and CLV read the same."""
    today = today or timezone.localdate()
    return month_start(today, months), month_start(today)


def totals(institution_id: int, months: int = 12, today: dt.date | None = None) -> dict:
    """Amount, orders and lines over the last `months` whole months (`last_months`), from rollups."""
    start, end = last_months(months, today)
    agg = MonthlyRollup.objects.filter(
        institution_id=institution_id, month__gte=start, month__lt=end
    ).aggregate(amount=Sum("amount_fen"), orders=Sum("orders"), lines=Sum("lines"))
    return {"amount": yuan(agg["amount"]), "orders": int(agg["orders"] or 0), "lines": int(agg["lines"] or 0)}


def batch_customers(batch: str, product=None):
    """The safety batch trace's source: customers who bought this batch, with the order and its date. The batch
    is matched regardless of letter case and full-width characters, as tickets and cases are (21e005 finds the
    ERP's 21E005), through the batch index: the spellings are looked up, not a case-folded scan."""
    import unicodedata

    spellings = {v for b in (batch, unicodedata.normalize("NFKC", batch)) for v in (b, b.upper(), b.lower())}
    qs = OrderLine.objects.filter(batch_number__in=sorted(spellings))
    if product is not None:
        qs = qs.filter(
            Q(product_code__in=product.erp_codes.values("code")) | Q(product_name=product.brand_name)
        )
    # every customer who received the batch, each with its first orders (a recall must reach them all): a cap on
    # the lines read left out whoever bought it after the first 5,000 lines
    from django.db.models import Min

    from pharmacrm.customers.models import Institution

    orders = (
        qs.order_by().values("institution_id", "order_number").annotate(first=Min("order_date"))
        .order_by("first", "order_number")
    )  # fmt: skip
    shown: dict[int, int] = {}
    picked = []
    for row in orders.iterator(chunk_size=5000):
        count = shown.get(row["institution_id"], 0)
        if count < BATCH_ORDERS_PER_CUSTOMER:
            shown[row["institution_id"]] = count + 1
            picked.append(row)
    institutions = Institution.objects.in_bulk(list(shown))
    tz = timezone.get_current_timezone()
    for row in picked:
        at = dt.datetime.combine(row["first"], dt.time(), tzinfo=tz)
        yield institutions[row["institution_id"]], None, row["order_number"], at


def key_account_institutions():
    """The customers that are key accounts (重点客户): an active key-account file on them or on their parent
    hospital (a department's orders and tickets are its hospital's). The tier alone does not make one: the
    file does, as for the service desk's routing (keyaccounts.services.team_for_institution)."""
    from pharmacrm.customers.models import Institution
    from pharmacrm.keyaccounts.choices import AccountStatus

    active = AccountStatus.ACTIVE
    return Institution.objects.filter(Q(key_accounts__status=active) | Q(parent__key_accounts__status=active))


def key_account_ids(institution_ids) -> set[int]:
    """Which of these customers are key accounts: one query, whatever their number (none for no ids)."""
    wanted = {i for i in institution_ids if i}
    if not wanted:
        return set()
    return set(key_account_institutions().filter(pk__in=wanted).values_list("pk", flat=True).distinct())


# --- removing lines --------------------------------------------------------------------------------------


def remove_line(user, line: OrderLine, reason: str) -> None:
    """Take out a line the ERP no longer has (a line deleted from the order, an order cancelled there): a
    corrected file can change a line but not tell that one is gone. For those who import orders, with a reason;
    the customer's monthly rollup is recomputed and the line's values stay in the audit trail."""
    from django.core.exceptions import ValidationError
    from django.db import transaction

    from pharmacrm.core import audit
    from pharmacrm.core.models import AuditEntry
    from pharmacrm.customers.normalise import clean_text

    access.require(user, Cap.IMPORT_ORDERS)
    require_purchases(user, line.institution)
    # a NUL byte pasted along is dropped: PostgreSQL refuses it in the audit entry's JSON (a server error)
    reason = clean_text(str(reason or "").replace("\x00", ""))
    if not 2 <= len(reason) <= 500:
        raise ValidationError({"reason": [_("Say why the line is removed (2 to 500 characters).")]})
    with transaction.atomic():
        rollups.lock()  # after the imports that run: their chunks and this removal do not interleave
        gone = OrderLine.objects.select_for_update().filter(pk=line.pk).first()
        if gone is None:
            raise ValidationError(_("This line has been removed already."))
        before = {
            "order_number": gone.order_number, "line_number": gone.line_number,
            "order_date": gone.order_date.isoformat(), "institution": gone.institution_id,
            "product_code": gone.product_code, "product_name": gone.product_name, "batch_number": gone.batch_number,
            "quantity": str(gone.quantity), "unit_price": str(gone.unit_price),
            "amount": str(gone.amount), "invoice_number": gone.invoice_number,
            "payment_due": gone.payment_due.isoformat() if gone.payment_due else None,
            "paid_date": gone.paid_date.isoformat() if gone.paid_date else None, "paid_amount": str(gone.paid_amount),
        }  # fmt: skip
        gone.delete()
        rollups.mark_dirty([(gone.institution_id, gone.month)])
        audit.record(AuditEntry.Action.DELETE, ("sales.orderline", str(line.pk), f"{gone.order_number}/{gone.line_number}"),
                     user=user, changes={k: [v, None] for k, v in before.items()}, reason=reason)  # fmt: skip
    rollups.refresh_dirty()
    rescore_changed()


def rescore_changed() -> None:
    """Once the change is committed, the evaluation's incremental update of the customers whose rollups changed, as
    after an import: a line removed by hand (or rollups recomputed by the worker's refresh, or overdue amounts moved
    by its nightly refresh) left the customer's
    score counting the old purchases until the next import, weeks later for a customer the ERP files seldom name.
    A failure to queue it is logged, not raised over a change already made."""
    from django.db import transaction

    from pharmacrm.keyaccounts import tasks as ka_tasks

    transaction.on_commit(ka_tasks.after_import, robust=True)


# --- product codes ---------------------------------------------------------------------------------------


def record_product_code(user, code: str, name: str = "", product=None):
    """Record an ERP product code by hand (the import records the codes its lines give): for those who import orders,
    checked as the import reads codes, audited. A code differing from a recorded one only in letter case is refused
    under its field, naming the code recorded — also when another user recorded it at the same moment and only the
    database's index (one code in any letter case, sales 0016) saw the two: a refusal, not a server error."""
    import unicodedata

    from django.db import IntegrityError, transaction

    from pharmacrm.core import audit
    from pharmacrm.core.models import AuditEntry

    from .models import ProductCode

    access.require(user, Cap.IMPORT_ORDERS)
    new = ProductCode(code=unicodedata.normalize("NFKC", code or "").strip(), name=(name or "").strip(),
                      product=product)  # fmt: skip
    new.full_clean()
    try:
        with transaction.atomic():
            new.save()
            audit.record(AuditEntry.Action.CREATE, new, user=user, changes={
                "code": [None, new.code], "name": [None, new.name], "product": [None, new.product_id]})  # fmt: skip
    except IntegrityError:
        new.pk = None
        new.full_clean()  # the code recorded meanwhile, named
        raise ValidationError({"code": [ValidationError(
            _("The product code %(code)s is recorded already: product codes are the same in any letter case.")
            % {"code": new.code}, code="duplicate_code",
        )]}) from None  # fmt: skip
    return new
