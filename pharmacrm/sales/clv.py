"""Customer lifetime value (客户生命周期价值, CLV; seed 000 §8.1), computed nightly from the monthly rollups — never
from order lines — into CustomerValue, one row per customer that ever bought. A model, not a promise: the formula is
in docs/clv.md.

Per customer, over the complete months (the current one is still being bought in):

- historic value: what it paid to date (Σ paid);
- active months: the months it bought in; average monthly value: historic value ÷ active months;
- tenure: the months from its first purchase to the last complete month; buying share: active months ÷ tenure;
- retention r: the 12-month retention of its class — of the class's customers that bought in the 12 months before
  the last 12, the share that bought in the last 12, as the churn watch measures it for the company — when the class
  has at least MIN_CLASS_BASE such customers; else the company's, as the churn watch last measured it; else the
  setting CLV_RETENTION (0.8);
- projected value over the next HORIZON (36) months = average monthly value × buying share × Σₜ₌₁..₃₆ sᵗ ÷ (1 + d)ᵗ,
  with s = r^(1/12) the monthly survival and d the setting CLV_MONTHLY_DISCOUNT (0.008, about 10 % a year);
  nothing for a customer that bought nothing in the last 12 complete months (lapsed: the churn watch's business).

Cost: three grouped queries over the rollups and the evaluation, then bulk writes; it grows with customers."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone

from pharmacrm.core import access, audit
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap

from .models import ChurnRate, CustomerValue, MonthlyRollup
from .services import month_start

HORIZON = 36  # months projected
MIN_CLASS_BASE = 10  # buyers in a class's base year for its own retention to be used
BATCH = 2000


def may_see(user) -> bool:
    """Money figures of lifetime value: sales, managers, analysts, leadership, auditors (read) — not the service
    desk or pharmacovigilance."""
    return access.can(user, Cap.VIEW_CUSTOMER_VALUE)


def values_for(user, qs=None):
    """The lifetime values of the customers the user may see (none without the capability)."""
    from pharmacrm.customers.models import Institution

    qs = CustomerValue.objects.all() if qs is None else qs
    if not may_see(user):
        return qs.none()
    scope = access.institution_scope_q(user)
    if scope is not None:
        qs = qs.filter(institution_id__in=Institution.objects.filter(scope).values("id"))
    return qs


def _rate(name: str, default: str, high: str) -> Decimal:
    from decimal import InvalidOperation

    from django.core.exceptions import ImproperlyConfigured

    raw = str(getattr(settings, name, default))
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = None
    if value is None or not Decimal(0) <= value <= Decimal(high):
        raise ImproperlyConfigured(f"{name} must be a number from 0 to {high}, not {raw!r}")
    return value


def setting_retention() -> Decimal:
    return _rate("CLV_RETENTION", "0.8", "1")


def monthly_discount() -> Decimal:
    return _rate("CLV_MONTHLY_DISCOUNT", "0.008", "0.5")


def expected_months(retention: Decimal, discount: Decimal, horizon: int = HORIZON) -> Decimal:
    """Σₜ₌₁..horizon sᵗ ÷ (1 + d)ᵗ, s = retention^(1/12): the discounted months a buying customer is expected to stay."""
    survival = float(retention) ** (1 / 12) if retention > 0 else 0.0
    factor = survival / (1 + float(discount))
    return Decimal(str(sum(factor**t for t in range(1, horizon + 1))))


def projected_fen(avg_month_fen: int, active_months: int, tenure_months: int, retention: Decimal,
                  discount: Decimal, recent: bool) -> int:  # fmt: skip
    if not recent or not tenure_months:
        return 0
    share = min(Decimal(active_months) / Decimal(tenure_months), Decimal(1))
    value = Decimal(avg_month_fen) * share * expected_months(retention, discount)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _classes() -> dict[int, str]:
    from pharmacrm.engagement.plans import EVALUATION, class_period
    from pharmacrm.keyaccounts.models import Score

    period = class_period()
    if not period:
        return {}
    return dict(Score.objects.filter(kind=EVALUATION, period=period).exclude(klass="")
                .values_list("institution_id", "klass"))  # fmt: skip


def _company_retention() -> Decimal | None:
    year = ChurnRate.objects.filter(kind=ChurnRate.Kind.YEAR).order_by("-start").first()
    if year is None or not year.buyers_before:
        return None
    return (Decimal(year.retained) / Decimal(year.buyers_before)).quantize(Decimal("0.0001"))


def compute(today: dt.date | None = None) -> int:
    """The nightly run (the worker's `compute_customer_values`): every customer's lifetime value, replacing the
    last run's. Returns how many customers have one."""
    today = today or timezone.localdate()
    current = month_start(today)
    recent_start, base_start = month_start(today, 12), month_start(today, 24)
    bought = Q(amount_fen__gt=0)
    rows = list(
        MonthlyRollup.objects.filter(month__lt=current, institution__merged_into__isnull=True)
        .values("institution_id")
        .annotate(
            paid=Sum("paid_fen"), months=Count("id", filter=bought), first=Min("month", filter=bought),
            last=Max("month", filter=bought),
            recent=Count("id", filter=bought & Q(month__gte=recent_start)),
            base=Count("id", filter=bought & Q(month__gte=base_start, month__lt=recent_start)),
        )
        .filter(months__gt=0)
        .order_by("institution_id")
    )  # fmt: skip
    classes = _classes()
    # each class's measured 12-month retention (of its base-year buyers, those that bought in the last 12 months)
    tally: dict[str, list[int]] = {}
    for r in rows:
        klass = classes.get(r["institution_id"], "")
        if klass and r["base"]:
            t = tally.setdefault(klass, [0, 0])
            t[0] += 1
            t[1] += bool(r["recent"])
    by_class = {k: (Decimal(kept) / Decimal(n)).quantize(Decimal("0.0001"))
                for k, (n, kept) in tally.items() if n >= MIN_CLASS_BASE}  # fmt: skip
    company = _company_retention()
    fallback, fallback_source = (company, "company") if company is not None else (setting_retention(), "setting")
    discount = monthly_discount()
    current_index = current.year * 12 + current.month - 1
    values = []
    for r in rows:
        klass = classes.get(r["institution_id"], "")
        retention, source = (by_class[klass], "class") if klass in by_class else (fallback, fallback_source)
        first = r["first"]
        tenure = current_index - (first.year * 12 + first.month - 1)
        paid = max(int(r["paid"] or 0), 0)
        avg = paid // r["months"]
        values.append(CustomerValue(
            institution_id=r["institution_id"], klass=klass, historic_fen=paid, active_months=r["months"],
            avg_month_fen=avg, tenure_months=tenure, first_month=first, last_month=r["last"], retention=retention,
            retention_source=source, projected_fen=projected_fen(avg, r["months"], tenure, retention, discount,
                                                                 bool(r["recent"])),
            computed_on=today,
        ))  # fmt: skip
    with transaction.atomic():
        CustomerValue.objects.all().delete()
        CustomerValue.objects.bulk_create(values, batch_size=BATCH)
        audit.record(AuditEntry.Action.UPDATE, ("sales.customervalue", "", str(len(values))), actor_name="worker",
                     kind="sales.clv", count=len(values), retention_classes={k: str(v) for k, v in by_class.items()},
                     retention_fallback=str(fallback), retention_source=fallback_source)  # fmt: skip
    return len(values)


def distribution(qs, by: str) -> list[dict]:
    """Per class or province: customers, paid to date, projected — one grouped query."""
    key = "klass" if by == "class" else "institution__province"
    return list(qs.order_by().values(key).annotate(n=Count("pk"), historic=Sum("historic_fen"),
                                                   projected=Sum("projected_fen")).order_by(key))  # fmt: skip
