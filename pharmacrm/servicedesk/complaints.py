"""Complaint analysis (投诉分析, seed 000 §8.2, seed 002 ch. 六): what customers complain about, why (the root
cause), with what impact on the customer and on the company, how fast it was handled and what was done.

The definitions are the service performance page's (performance.py), never a second set:

- a period's complaints are the tickets *received* in it (Beijing time) of a category marked complaint
  (TicketCategory.complaint), merged duplicates left out (performance._tickets: a merged duplicate is closed without
  an assessment and is counted once, as the ticket it was merged into);
- handled: resolved, customer-informed or closed; the resolution time, the SLA met, reopened and the revisit
  satisfaction are performance.compute's figures over the complaints only;
- who sees what: the capability "See the complaint analysis" (managers, administrators, analysts, auditors and
  the QA officer) sees every team; a team lead the teams they lead; no one else.

Everything is counted by the database, grouped (GROUP BY): a fixed number of queries whatever the number of
tickets."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import CharField, Count, F, Q, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone
from django.utils.translation import gettext as _

from pharmacrm.core import access
from pharmacrm.core.models import Region, Team
from pharmacrm.core.roles import Cap

from . import performance
from .choices import ActionStatus, Impact, RootCause
from .models import ImprovementAction, Product, TicketCategory
from .performance import DONE, TREND_PERIODS, Figures, Period, Scope

TOP_PRODUCTS = 10
CLASSES = ("A", "B", "C", "D", "none")  # "none": not evaluated, or no customer
IMPACTS = tuple(Impact.values)  # none, minor, moderate, severe
SEVERE = Q(customer_impact=Impact.SEVERE) | Q(company_impact=Impact.SEVERE)


# --- who sees what -------------------------------------------------------------------------------------


def scope_for(user) -> Scope:
    """Every team for "See the complaint analysis"; a team lead the teams they lead; PermissionDenied otherwise."""
    if access.can(user, Cap.VIEW_COMPLAINT_ANALYSIS):
        return Scope(everything=True)
    if access.can(user, Cap.VIEW_TICKETS):
        led = list(Team.objects.filter(lead=user).order_by("name").values_list("id", flat=True))
        if led:
            return Scope(team_ids=led)
    raise PermissionDenied(
        _("The complaint analysis is for managers, quality assurance, analysts, auditors and team leads.")
    )


def may_see(user) -> bool:
    try:
        scope_for(user)
    except PermissionDenied:
        return False
    return True


@dataclass
class Query:
    period: Period
    team: Team | None = None
    category: TicketCategory | None = None
    product: Product | None = None
    province: str = ""  # a province's code, 110000
    klass: str = ""  # A–D, or "none"


def check(user, query: Query) -> Scope:
    scope = scope_for(user)
    if query.klass and not performance.may_group_by_class(user):
        raise PermissionDenied(_("Customer classes are shown to those who may see customer evaluations."))
    if query.team is not None and not scope.everything:
        if scope.team_ids is None or query.team.pk not in scope.team_ids:
            raise PermissionDenied(_("You may not see this team's complaints."))
    return scope


# --- the figures ---------------------------------------------------------------------------------------


def _province():
    """The ticket's customer's province: the institution's, else the person's ('' for none)."""
    return Coalesce(
        NullIf(F("institution__province"), Value("")), NullIf(F("person__province"), Value("")), Value(""),
        output_field=CharField(),
    )  # fmt: skip


def complaint_tickets(user, scope: Scope, query: Query, period=None, *, klass_period: str = ""):
    """The complaints of the period (or span) the user may count, with the query's filters."""
    pq = performance.Query(period=query.period, team=query.team, category=query.category)
    qs = performance._tickets(user, scope, pq, period).filter(category__complaint=True)
    if query.product is not None:
        qs = qs.filter(product=query.product)
    if query.province:
        qs = qs.annotate(prov=_province()).filter(prov=query.province)
    if query.klass:
        qs = qs.annotate(klass=performance._key("class", "", klass_period)).filter(
            klass="" if query.klass == "none" else query.klass
        )
    return qs


def _pct(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(100) * part / whole).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass
class Share:
    key: object
    label: str
    count: int
    share: Decimal | None = None  # % of the whole
    cumulative: Decimal | None = None  # % of the whole, this row and those above it


def pareto(rows: list[tuple[object, str, int]], whole: int | None = None) -> list[Share]:
    """The rows by count, the largest first (then by label), each with its share and the cumulative share of
    `whole` (default: the rows' sum). The cumulative share is the running count over the whole, rounded once,
    so the last row of a complete Pareto says 100.0."""
    whole = sum(r[2] for r in rows) if whole is None else whole
    out, running = [], 0
    for key, label, count in sorted(rows, key=lambda r: (-r[2], r[1])):
        running += count
        out.append(Share(key, label, count, _pct(count, whole), _pct(running, whole)))
    return out


@dataclass
class Actions:
    """The improvement actions opened from the period's complaints."""

    total: int = 0
    open: int = 0  # open or in progress
    overdue: int = 0  # of those, past their due date
    done: int = 0
    cancelled: int = 0


@dataclass
class Report:
    query: Query
    scope: Scope
    handling: Figures  # performance.compute over the complaints: created = the complaints
    previous: Figures  # the same for the period before
    severe: int  # complaints assessed severe for the customer or the company
    previous_severe: int
    categories: list[Share]
    root_causes: list[Share]  # of the complaints whose cause is recorded
    undetermined: int  # complaints without a root cause yet (still open)
    impact: dict[tuple[str, str], int]  # (customer, company) → count; "" not assessed
    not_assessed: int
    products: list[Share]  # top 10, share of all complaints
    no_product: int
    provinces: list[Share]
    actions: Actions
    klass_period: str = ""
    trend: list[dict] = field(default_factory=list)

    @property
    def period(self) -> Period:
        return self.query.period

    @property
    def total(self) -> int:
        return self.handling.created


def report(user, query: Query, *, now: dt.datetime | None = None, trend: bool = True) -> Report:
    """The complaint analysis of the query's period: a fixed number of grouped queries."""
    from . import revisit

    scope = check(user, query)
    now = now or timezone.now()
    klass_period = performance.class_period() if query.klass else ""
    tickets = complaint_tickets(user, scope, query, klass_period=klass_period)
    handling = performance.compute(tickets, None, now=now, quality=False).get(0) or Figures(key=0)
    total = handling.created
    # by category
    by_cat = dict(tickets.values("category_id").annotate(n=Count("id")).order_by().values_list("category_id", "n"))
    labels = {c.pk: c.label for c in TicketCategory.objects.filter(pk__in=list(by_cat))}
    categories = pareto([(k, labels.get(k, ""), n) for k, n in by_cat.items()], total)
    # by root cause (recorded at resolution): the Pareto of the decided ones
    by_cause = dict(tickets.values("root_cause").annotate(n=Count("id")).order_by().values_list("root_cause", "n"))
    undetermined = by_cause.pop("", 0)
    cause_labels = dict(RootCause.choices)
    root_causes = pareto([(k, str(cause_labels.get(k, k)), n) for k, n in by_cause.items()])
    # the impact matrix, and the severe ones
    impact: dict[tuple[str, str], int] = {}
    for cust, comp, n in (
        tickets.values("customer_impact", "company_impact").annotate(n=Count("id")).order_by()
        .values_list("customer_impact", "company_impact", "n")
    ):  # fmt: skip
        impact[(cust, comp)] = n
    not_assessed = sum(n for (cust, comp), n in impact.items() if not cust or not comp)
    severe = sum(n for (cust, comp), n in impact.items() if Impact.SEVERE in (cust, comp))
    # by product: the ten most complained about
    by_product = dict(tickets.values("product_id").annotate(n=Count("id")).order_by().values_list("product_id", "n"))
    no_product = by_product.pop(None, 0)
    names = {p.pk: str(p) for p in Product.objects.filter(pk__in=list(by_product))}  # ties ordered by name
    products = pareto([(k, names.get(k, str(k)), n) for k, n in by_product.items()], total)[:TOP_PRODUCTS]
    # by province
    by_prov = dict(tickets.annotate(p=_province()).values("p").annotate(n=Count("id")).order_by().values_list("p", "n"))
    regions = {r.code: r.display_name for r in Region.objects.filter(code__in=[k for k in by_prov if k])}
    provinces = pareto([(k, regions.get(k, k) if k else _("No region"), n) for k, n in by_prov.items()], total)
    # the improvement actions opened from them
    a = ImprovementAction.objects.filter(ticket_id__in=tickets.values("id")).aggregate(
        total=Count("id"),
        open=Count("id", filter=Q(status__in=[ActionStatus.OPEN, ActionStatus.IN_PROGRESS])),
        overdue=Count("id", filter=revisit.overdue_q()),  # today, whatever the period
        done=Count("id", filter=Q(status=ActionStatus.DONE)),
        cancelled=Count("id", filter=Q(status=ActionStatus.CANCELLED)),
    )
    # the period before: the headline figures
    before = complaint_tickets(user, scope, query, query.period.previous, klass_period=klass_period)
    previous = performance.compute(before, None, now=now, quality=False).get(0) or Figures(key=0)
    previous_severe = before.filter(SEVERE).count()
    out = Report(
        query=query, scope=scope, handling=handling, previous=previous, severe=severe,
        previous_severe=previous_severe, categories=categories, root_causes=root_causes, undetermined=undetermined,
        impact=impact, not_assessed=not_assessed, products=products, no_product=no_product, provinces=provinces,
        actions=Actions(**a), klass_period=klass_period,
    )  # fmt: skip
    if trend:
        out.trend = trend_of(user, scope, query, klass_period)
    return out


# --- from a count to its tickets ----------------------------------------------------------------------

DRILLS = ("all", "category", "cause", "product", "province", "impact", "unassessed", "severe", "handled", "reopened")
ANY = "*"  # in an impact pair: any assessed level (a row's or a column's total of the matrix)


def drill_error() -> str:
    return _("This list is opened from a count of the complaint analysis; the link is not valid.")


def _id(raw: str) -> int:
    """A row's id as the page's links carry it: digits within a database id's range (ValueError otherwise — a
    longer number reached the database and failed there, 500)."""
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) < 2**63:
        raise ValueError(raw)
    return int(raw)


def _impact_level(raw: str) -> str:
    if raw == ANY or raw in IMPACTS:
        return raw
    raise ValidationError({"key": [drill_error()]})


def drilled(user, query: Query, by: str, key: str = ""):
    """The complaints behind one count of the analysis (`by` names the table, `key` the row): the same tickets as
    report() counts, so the list's length is the figure clicked. ValidationError naming `by` or `key` for a link
    that is not one of the page's."""
    from .performance import _reopened

    if by not in DRILLS:
        raise ValidationError({"by": [drill_error()]})
    scope = check(user, query)
    klass_period = performance.class_period() if query.klass else ""
    qs = complaint_tickets(user, scope, query, klass_period=klass_period)
    try:
        if by == "category":
            qs = qs.filter(category_id=_id(key))
        elif by == "product":
            qs = qs.filter(product_id=_id(key)) if key else qs.filter(product__isnull=True)
        elif by == "cause":  # "" the undetermined ones, still open
            if key and key not in RootCause.values:
                raise ValueError(key)
            qs = qs.filter(root_cause=key)
        elif by == "province":  # "" no region
            qs = qs.annotate(p=_province()).filter(p=key)
        elif by == "impact":
            customer, company = (_impact_level(v) for v in key.split(",", 1)) if "," in key else ("", "")
            if not customer:
                raise ValueError(key)
            for name, level in (("customer_impact", customer), ("company_impact", company)):
                qs = qs.exclude(**{name: ""}) if level == ANY else qs.filter(**{name: level})
        elif by == "unassessed":
            qs = qs.filter(Q(customer_impact="") | Q(company_impact=""))
        elif by == "severe":
            qs = qs.filter(SEVERE)
        elif by == "handled":
            qs = qs.filter(status__in=DONE)
        elif by == "reopened":
            qs = qs.filter(_reopened())
    except ValueError:
        raise ValidationError({"key": [drill_error()]}) from None
    return qs


def drill_label(by: str, key: str) -> str:
    """What the list is of, in the reader's language: "Root cause: 质量问题"."""
    if by == "category":
        found = TicketCategory.objects.filter(pk=int(key)).first()
        return _("Category: %(name)s") % {"name": found.label if found else key}
    if by == "product":
        found = Product.objects.filter(pk=int(key)).first() if key else None
        return _("Product: %(name)s") % {"name": str(found)} if found else _("No product named")
    if by == "cause":
        return _("Root cause: %(name)s") % {"name": dict(RootCause.choices)[key]} if key else _("No root cause yet")
    if by == "province":
        found = Region.objects.filter(code=key).first() if key else None
        return _("Province: %(name)s") % {"name": found.display_name if found else key} if key else _("No region")
    if by == "impact":
        customer, company = key.split(",", 1)
        anything = _("any")

        def level(v):
            return anything if v == ANY else impact_label(v)

        return _("Impact on the customer: %(customer)s; on the company: %(company)s") % {
            "customer": level(customer), "company": level(company)}  # fmt: skip
    return {
        "all": _("All complaints"), "unassessed": _("Not assessed yet"), "severe": _("Severe impact"),
        "handled": _("Handled"), "reopened": _("Reopened"),
    }[by]  # fmt: skip


def trend_of(user, scope: Scope, query: Query, klass_period: str = "") -> list[dict]:
    """The last 12 periods up to the chosen one: complaints, handled (rate) and severe — one grouped query."""
    last = query.period
    first = last.shifted(-(TREND_PERIODS - 1))
    tickets = complaint_tickets(user, scope, query, performance._Span(first, last), klass_period=klass_period)
    periods = [first.shifted(i) for i in range(TREND_PERIODS)]
    by: dict[str, dict] = {}
    for r in tickets.annotate(b=performance._bucket("received_at", periods)).values("b").annotate(
        n=Count("id"), handled=Count("id", filter=Q(status__in=DONE)), severe=Count("id", filter=SEVERE),
    ).order_by():  # fmt: skip
        by[r["b"]] = r
    out = []
    for i in range(TREND_PERIODS):
        p = first.shifted(i)
        r = by.get(p.key, {})
        n, handled = r.get("n", 0), r.get("handled", 0)
        rate = _pct(handled, n)
        out.append({"period": p.key, "complaints": n, "handled": handled,
                    "handling_rate": None if rate is None else float(rate), "severe": r.get("severe", 0)})  # fmt: skip
    return out


def impact_label(value: str) -> str:
    if not value:
        return _("Not assessed")
    return str(dict(Impact.choices)[value])


def class_label(value: str) -> str:
    return _("No class") if value == "none" else _("Class %(klass)s") % {"klass": value}
