"""Churn watch (客户流失预警) and the churn and repurchase rates (客户流失率、复购率; seed 000 §2.4, §6.4, §8.1).

Read from the monthly rollups, complete months only (the current month is still being bought in):

- the **base year**: the twelve complete months before the last three; the **last three months**: the three
  complete months before the current one;
- a customer is **watched** when it bought in at least `REGULAR_MONTHS` months of the base year (an occasional
  buyer's quiet quarter says nothing);
- **stopped buying** (停止采购): nothing bought in the last three months;
- **buying much less** (采购大幅下降): the last three months' monthly average under `DROP` of the base year's.

The nightly refresh (`refresh`, the worker's `refresh_churn_watch`) opens a signal for each customer newly at risk
and tells its owner, keeps the open ones' figures current, and closes those whose purchases came back. The owner or
a manager may dismiss a signal with a reason (the hospital merged, the product was delisted…); a dismissed customer
is not raised again for `QUIET_AFTER_DISMISSAL` days unless it gets worse (buying less → stopped buying).

Rates, counted over every customer: of the customers that bought in a period, how many bought again in the next one
(retention; churn is the rest), and of a period's buyers, how many bought in two months or more (repurchase)."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Case, Count, F, IntegerField, Max, Q, Sum, When
from django.utils import timezone
from django.utils.translation import gettext as _

from pharmacrm.core import access, audit
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers.models import Institution

from .models import ChurnRate, ChurnSignal, MonthlyRollup
from .services import month_start

A = AuditEntry.Action
REGULAR_MONTHS = 3  # months with purchases in the base year that make a customer a regular buyer
DROP = 0.5  # the last three months' average under half the base year's: buying much less
QUIET_AFTER_DISMISSAL = 180  # days
NOTICE_KIND = "sales.churn"
RANK = {ChurnSignal.Level.LAPSED: 2, ChurnSignal.Level.DECLINING: 1}


# --- who may do what ----------------------------------------------------------------------------------------------


def may_watch(user) -> bool:
    """The churn list: whoever sees purchases, for the customers they may see."""
    return access.can(user, Cap.VIEW_PURCHASES)


def may_see_rates(user) -> bool:
    """The company's churn and repurchase rates: purchases over every customer (not a rep's territory)."""
    return access.can(user, Cap.VIEW_PURCHASES) and access.can(user, Cap.ALL_CUSTOMERS)


def may_dismiss(user, signal: ChurnSignal, *, in_scope: bool = False) -> bool:
    """The customer's owner, and those who edit customers of every territory (managers, key-account managers,
    administrators); never the read-only roles. `in_scope`: the signal was read through `signals_for` (a list
    page), so the customer is known to be visible."""
    if not (access.can(user, Cap.VIEW_PURCHASES) and access.can(user, Cap.CHANGE_CUSTOMERS)):
        return False
    institution = signal.institution
    if not (in_scope or access.can_see(user, institution)):
        return False
    return institution.owner_id == user.pk or access.can(user, Cap.ALL_CUSTOMERS)


def signals_for(user, qs=None):
    """Open signals of the customers the user may see (none without the purchases capability)."""
    qs = ChurnSignal.objects.all() if qs is None else qs
    if not may_watch(user):
        return qs.none()
    scope = access.institution_scope_q(user)
    if scope is not None:
        qs = qs.filter(institution_id__in=Institution.objects.filter(scope).values("id"))
    return qs


# --- the standings ------------------------------------------------------------------------------------------------


def windows(today: dt.date) -> tuple[dt.date, dt.date, dt.date]:
    """(start of the base year, start of the last three months, start of the current month)."""
    return month_start(today, 15), month_start(today, 3), month_start(today)


def standings(today: dt.date) -> dict[int, dict]:
    """Every watched customer at risk today: {institution id: figures}, read from the rollups in one query."""
    base_start, recent_start, current = windows(today)
    bought = Q(amount_fen__gt=0)
    rows = (
        MonthlyRollup.objects.filter(month__gte=base_start, month__lt=current,
                                     institution__merged_into__isnull=True)  # fmt: skip
        .values("institution_id")
        .annotate(
            base=Sum(Case(When(month__lt=recent_start, then=F("amount_fen")), default=0, output_field=IntegerField())),
            recent=Sum(Case(When(month__gte=recent_start, then=F("amount_fen")), default=0, output_field=IntegerField())),
            base_months=Count("id", filter=Q(month__lt=recent_start) & bought),
            recent_months=Count("id", filter=Q(month__gte=recent_start) & bought),
            last=Max("month", filter=bought),
        )
        .filter(base_months__gte=REGULAR_MONTHS, base__gt=0)
        .order_by()
    )
    out = {}
    for r in rows:
        base_avg, recent_avg = r["base"] // 12, max(r["recent"], 0) // 3
        if not r["recent_months"]:
            level = ChurnSignal.Level.LAPSED
        elif recent_avg < base_avg * DROP:
            level = ChurnSignal.Level.DECLINING
        else:
            continue
        out[r["institution_id"]] = {"level": level, "base_avg_fen": base_avg, "recent_avg_fen": recent_avg,
                                    "base_months": r["base_months"], "last_month": r["last"]}  # fmt: skip
    return out


def _quiet(today: dt.date, candidates) -> dict[int, str]:
    """Customers dismissed in the last QUIET_AFTER_DISMISSAL days: {institution id: the level dismissed}."""
    since = today - dt.timedelta(days=QUIET_AFTER_DISMISSAL)
    quiet: dict[int, str] = {}
    rows = ChurnSignal.objects.filter(
        institution_id__in=list(candidates), resolution=ChurnSignal.Resolution.DISMISSED, resolved_on__gte=since
    ).values_list("institution_id", "level")
    for pk, level in rows:
        if RANK[level] > RANK.get(quiet.get(pk), 0):
            quiet[pk] = level
    return quiet


def refresh(today: dt.date | None = None) -> dict:
    """The nightly refresh: signals opened, updated and closed; owners told of their newly watched customers; the
    rates counted again. One transaction: a worker killed half-way leaves yesterday's state, and the next run
    opens (and tells) each signal once. Returns the counts."""
    today = today or timezone.localdate()
    risk = standings(today)
    with transaction.atomic():
        open_ = {s.institution_id: s for s in ChurnSignal.objects.select_for_update().filter(resolved_on=None)}
        closed, updated = [], []
        for pk, signal in open_.items():
            figures = risk.get(pk)
            if figures is None:
                signal.resolved_on, signal.resolution = today, ChurnSignal.Resolution.RESUMED
                signal.version += 1
                closed.append(signal)
            elif any(getattr(signal, key) != value for key, value in figures.items()):
                for key, value in figures.items():
                    setattr(signal, key, value)
                updated.append(signal)
        # every open warning's figures are today's (most are unchanged: one statement, not one per warning)
        ChurnSignal.objects.filter(resolved_on=None).exclude(refreshed_on=today).update(refreshed_on=today)
        fresh = [pk for pk in risk if pk not in open_]
        quiet = _quiet(today, fresh)
        opened = [
            ChurnSignal(institution_id=pk, detected_on=today, refreshed_on=today, **risk[pk])
            for pk in fresh
            if RANK[risk[pk]["level"]] > RANK.get(quiet.get(pk), 0)
        ]
        fields = ["level", "base_avg_fen", "recent_avg_fen", "base_months", "last_month"]
        ChurnSignal.objects.bulk_update(updated, fields, batch_size=1000)
        ChurnSignal.objects.bulk_update(closed, ["resolved_on", "resolution", "version"], batch_size=1000)
        ChurnSignal.objects.bulk_create(opened, batch_size=1000)
        opened = list(ChurnSignal.objects.filter(resolved_on=None, detected_on=today,
                                                 institution_id__in=[s.institution_id for s in opened]))  # fmt: skip
        audit.record_many(A.CREATE, [(s, {"level": [None, s.level], "institution": [None, s.institution_id]})
                                     for s in opened], actor_name="worker")  # fmt: skip
        audit.record_many(A.UPDATE, [(s, {"resolution": ["", s.resolution]}) for s in closed], actor_name="worker")
        _tell_owners(opened)
        rates(today)
    return {"opened": len(opened), "updated": len(updated), "closed": len(closed)}


def _tell_owners(opened: list[ChurnSignal]) -> None:
    """Each active owner of a newly watched customer: one notification (bell and e-mail) saying how many."""
    from django.urls import reverse
    from django.utils.translation import gettext_lazy, ngettext_lazy

    from pharmacrm.core.deferred import Message
    from pharmacrm.notify import services as notify

    owners: dict[int, list[ChurnSignal]] = {}
    for signal in ChurnSignal.objects.filter(pk__in=[s.pk for s in opened]).select_related("institution__owner"):
        owner = signal.institution.owner
        if owner is not None and owner.is_active:
            owners.setdefault(owner.pk, []).append(signal)
    url = reverse("sales:churn") + "?mine=on"
    for signals in owners.values():
        owner = signals[0].institution.owner
        n = len(signals)
        lapsed = sum(s.level == ChurnSignal.Level.LAPSED for s in signals)
        notify.send(
            [owner], kind=NOTICE_KIND, url=url, obj=("sales.churnsignal", str(signals[0].detected_on)),
            title=Message(ngettext_lazy("%(n)s customer of yours is buying much less or stopped buying",
                                        "%(n)s customers of yours are buying much less or stopped buying", n), n=n),
            body=Message(gettext_lazy("Stopped buying: %(lapsed)s. Find out why and win them back; the churn watch "
                                      "lists their figures."), lapsed=lapsed),
        )  # fmt: skip


def dismiss(user, signal: ChurnSignal, reason: str, *, version: int | None = None) -> ChurnSignal:
    """Close an open signal by hand, with the reason (audited). A stale `version` is a conflict."""
    from pharmacrm.servicedesk.services import ConflictError

    if not may_dismiss(user, signal):
        raise PermissionDenied(_("Only the customer's owner or a manager may dismiss this warning."))
    reason = (reason or "").replace("\x00", "").strip()
    if not reason:
        raise ValidationError({"reason": [_("Say why the warning no longer applies.")]})
    if len(reason) > 500:
        raise ValidationError({"reason": [_("At most 500 characters.")]})
    with transaction.atomic():
        current = ChurnSignal.objects.select_for_update().get(pk=signal.pk)
        if version is not None and current.version != version:
            raise ConflictError(current.version)
        if current.resolved_on is not None:
            raise ValidationError({"reason": [_("This warning is closed already.")]})
        current.resolved_on, current.resolution = timezone.localdate(), ChurnSignal.Resolution.DISMISSED
        current.dismissed_by, current.reason = user, reason
        current.version += 1
        current.save(update_fields=["resolved_on", "resolution", "dismissed_by", "reason", "version"])
        audit.record(A.UPDATE, current, user=user, changes={"resolution": ["", current.resolution], "reason": ["", reason]})
    return current


# --- rates --------------------------------------------------------------------------------------------------------


def _periods(today: dt.date) -> list[tuple[str, dt.date, dt.date, dt.date]]:
    """(kind, start of the period before, start, end) for the last 12 complete months and the last four complete
    quarters."""
    current = month_start(today)
    out = [(ChurnRate.Kind.YEAR, month_start(today, 24), month_start(today, 12), current)]
    quarter_end = month_start(today, (today.month - 1) % 3)  # the first day of the current quarter
    for back in range(4):
        end = month_start(quarter_end, 3 * back)
        out.append((ChurnRate.Kind.QUARTER, month_start(end, 6), month_start(end, 3), end))
    return out


def rates(today: dt.date | None = None) -> list[ChurnRate]:
    """Count the rates again and keep them: one pass over the rollups of the last 24 months, grouped by customer,
    with a count of months with purchases for each period (the periods share their ranges: a quarter is the next
    quarter's period before), then summed up here."""
    today = today or timezone.localdate()
    periods = _periods(today)
    ranges = sorted({(before, start) for _k, before, start, _e in periods} | {(start, end) for _k, _b, start, end in periods})
    bought = Q(amount_fen__gt=0)
    counts = {f"r{i}": Count("id", filter=bought & Q(month__gte=a, month__lt=b)) for i, (a, b) in enumerate(ranges)}
    rows = (
        MonthlyRollup.objects.filter(month__gte=ranges[0][0], month__lt=max(b for _a, b in ranges))
        .values("institution_id")
        .annotate(**counts)
        .order_by()
        .values_list(*counts)
    )
    where = {r: i for i, r in enumerate(ranges)}
    pairs = [(where[(before, start)], where[(start, end)]) for _k, before, start, end in periods]
    totals = [[0, 0, 0, 0] for _p in periods]  # buyers before, retained, buyers, repeat buyers
    for row in rows.iterator(chunk_size=10_000):
        for (b, n), total in zip(pairs, totals, strict=True):
            before, now = row[b], row[n]
            if before:
                total[0] += 1
                total[1] += now > 0
            if now:
                total[2] += 1
                total[3] += now > 1
    kept = []
    for (kind, _before, start, end), (buyers_before, retained, buyers, repeat) in zip(periods, totals, strict=True):
        row, _created = ChurnRate.objects.update_or_create(
            kind=kind, start=start,
            defaults={"end": end, "buyers_before": buyers_before, "retained": retained, "buyers": buyers,
                      "repeat_buyers": repeat, "computed_on": today},
        )  # fmt: skip
        kept.append(row)
    return kept


def latest_rates() -> tuple[ChurnRate | None, list[ChurnRate]]:
    """The last 12 months' rate and the last four quarters', newest first, as the last refresh counted them."""
    year = ChurnRate.objects.filter(kind=ChurnRate.Kind.YEAR).order_by("-start").first()
    quarters = list(ChurnRate.objects.filter(kind=ChurnRate.Kind.QUARTER).order_by("-start")[:4])
    return year, quarters
