"""Service performance (服务绩效, seed 000 ch. 8): per agent, team, customer class, category or channel and per
month, quarter or year — tickets, resolution rate, first-response and resolution times, SLA compliance, reopened
tickets, satisfaction (CSAT), net promoter score (NPS) and complaints.

One definition everywhere (the page, the chart, the export, the API), the key-account evaluation's
(keyaccounts.services.review_account):

- a period's tickets are those *received* in it (China's calendar: a ticket received at 23:30 on 30 November,
  Beijing time, is November's), merged duplicates left out; every figure of a row is about those tickets;
- resolved: those now resolved, customer-informed or closed; complaints: tickets of the categories marked as
  complaints (TicketCategory.complaint), handled when resolved, informed or closed;
- first-response and resolution times: the SLA clocks' start (receipt) to the moment the clock was met, in clock
  hours — a ticket still waiting counts with its wait so far, as in the evaluation; the time waited on the customer
  is *not* taken out (that needs each ticket's history, read ticket by ticket: see docs/servicedesk-performance.md);
- SLA met: the clocks met by their deadline over the clocks decided (met, or missed: `breached_at` set);
- CSAT: the average revisit score (1–5) of the answered revisits of those tickets; NPS: promoters (9–10) minus
  detractors (0–6) over the answers to the recommendation question, −100…100;
- accuracy: of those tickets reviewed for quality (quality.py, 服务质检), the share whose answer was accurate.

Everything is counted by the database, grouped (GROUP BY, window functions for the medians): a fixed number of
queries, whatever the number of tickets."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    F,
    FloatField,
    Func,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access
from pharmacrm.core.models import Team, User
from pharmacrm.core.roles import Cap

from .choices import Channel, ClockKind, EventKind, Status
from .models import QualityReview, SlaClock, Survey, Ticket, TicketCategory, TicketEvent

LOCAL = ZoneInfo("Asia/Shanghai")  # periods are China's months, quarters and years
DONE = ("resolved", "informed", "closed")  # servicedesk.services.DONE_STATUSES, as the evaluation counts them
TREND_PERIODS = 12

GROUPS = {
    "agent": gettext_lazy("Agent"),
    "team": gettext_lazy("Team"),
    "class": gettext_lazy("Customer class"),
    "category": gettext_lazy("Category"),
    "channel": gettext_lazy("Channel"),
}
KINDS = {"month": gettext_lazy("Month"), "quarter": gettext_lazy("Quarter"), "year": gettext_lazy("Year")}
CLASS_ORDER = ("A", "B", "C", "D", "")

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")


# --- periods -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    kind: str  # month, quarter, year
    year: int
    number: int = 1  # the month (1–12) or the quarter (1–4); 1 for a year

    @property
    def key(self) -> str:
        if self.kind == "month":
            return f"{self.year}-{self.number:02d}"
        if self.kind == "quarter":
            return f"{self.year}-Q{self.number}"
        return f"{self.year}"

    def __str__(self) -> str:
        return self.key

    @property
    def _first_month(self) -> int:
        return {"month": self.number, "quarter": 3 * self.number - 2, "year": 1}[self.kind]

    @property
    def months(self) -> int:
        return {"month": 1, "quarter": 3, "year": 12}[self.kind]

    @property
    def start(self) -> dt.datetime:
        return dt.datetime(self.year, self._first_month, 1, tzinfo=LOCAL)

    @property
    def end(self) -> dt.datetime:
        """The start of the next period (exclusive)."""
        after = self._first_month - 1 + self.months
        return dt.datetime(self.year + after // 12, after % 12 + 1, 1, tzinfo=LOCAL)

    def shifted(self, n: int) -> Period:
        """The period n periods later (earlier for n < 0)."""
        if self.kind == "year":
            return Period("year", self.year + n)
        per_year = 12 if self.kind == "month" else 4
        index = self.year * per_year + self.number - 1 + n
        return Period(self.kind, index // per_year, index % per_year + 1)

    @property
    def previous(self) -> Period:
        return self.shifted(-1)


def period_error() -> str:
    return _("Give a month (2026-11), a quarter (2026-Q4) or a year (2026).")


def parse_period(raw: str) -> Period:
    """2026-11, 2026-Q4 or 2026 (ASCII digits); ValidationError naming the field otherwise."""
    raw = (raw or "").strip()
    if raw.isascii():
        if m := _MONTH.match(raw):
            year, month = int(m.group(1)), int(m.group(2))
            if 1 <= month <= 12 and 2000 <= year <= 2999:
                return Period("month", year, month)
        elif m := _QUARTER.match(raw.upper()):
            year = int(m.group(1))
            if 2000 <= year <= 2999:
                return Period("quarter", year, int(m.group(2)))
        elif m := _YEAR.match(raw):
            year = int(m.group(1))
            if 2000 <= year <= 2999:
                return Period("year", year)
    raise ValidationError({"period": [period_error()]})


def current_period(kind: str = "month", now: dt.datetime | None = None) -> Period:
    day = (now or timezone.now()).astimezone(LOCAL).date()
    if kind == "quarter":
        return Period("quarter", day.year, (day.month - 1) // 3 + 1)
    if kind == "year":
        return Period("year", day.year)
    return Period("month", day.year, day.month)


def period_choices(now: dt.datetime | None = None) -> list[tuple[str, list[tuple[str, str]]]]:
    """The periods the page offers: the last 24 months, 8 quarters and 5 years, the latest first."""
    out = []
    for kind, count in (("month", 24), ("quarter", 8), ("year", 5)):
        latest = current_period(kind, now)
        out.append((str(KINDS[kind]), [(p.key, p.key) for p in (latest.shifted(-i) for i in range(count))]))
    return out


# --- who sees what -------------------------------------------------------------------------------------


@dataclass
class Scope:
    """What the user may see: every ticket (`everything`), their teams' (`team_ids`, a team lead) or their own
    (`own`, an agent: their figures, and their teams' totals as the comparison — never a colleague's row)."""

    everything: bool = False
    team_ids: list[int] | None = None
    own: User | None = None
    own_team_ids: list[int] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "all" if self.everything else "teams" if self.team_ids is not None else "own"


def scope_for(user) -> Scope:
    """Managers, administrators, analysts and auditors: everything; a team lead: the teams they lead; anyone else
    who handles tickets: their own figures (and their teams' totals). PermissionDenied for the rest."""
    if access.can(user, Cap.VIEW_SERVICE_PERFORMANCE):
        return Scope(everything=True)
    if access.can(user, Cap.VIEW_TICKETS):
        led = list(Team.objects.filter(lead=user).order_by("name").values_list("id", flat=True))
        if led:
            return Scope(team_ids=led)
    if access.can(user, Cap.HANDLE_TICKETS):
        return Scope(own=user, own_team_ids=list(user.teams.values_list("id", flat=True)))
    raise PermissionDenied(
        _("Service performance is for those who handle tickets, their team leads and managers.")
    )


def may_see(user) -> bool:
    try:
        scope_for(user)
    except PermissionDenied:
        return False
    return True


def may_group_by_class(user) -> bool:
    """A customer's class is the customer evaluation's result: for those who may see evaluations."""
    return access.can(user, Cap.VIEW_EVALUATIONS)


def group_choices(user) -> list[tuple[str, str]]:
    return [(k, str(v)) for k, v in GROUPS.items() if k != "class" or may_group_by_class(user)]


def teams_for(user, scope: Scope):
    if scope.everything:
        return Team.objects.order_by("name")
    if scope.team_ids is not None:
        return Team.objects.filter(pk__in=scope.team_ids).order_by("name")
    return Team.objects.none()


@dataclass
class Query:
    period: Period
    group: str = "agent"
    team: Team | None = None
    category: TicketCategory | None = None
    priority: str = ""


def check(user, query: Query) -> Scope:
    """The user's scope for this query; PermissionDenied for a grouping or team they may not see."""
    scope = scope_for(user)
    if query.group == "class" and not may_group_by_class(user):
        raise PermissionDenied(_("Customer classes are shown to those who may see customer evaluations."))
    if query.team is not None and not scope.everything:
        if scope.team_ids is None or query.team.pk not in scope.team_ids:
            raise PermissionDenied(_("You may not see this team's performance."))
    return scope


# --- the figures ---------------------------------------------------------------------------------------


@dataclass
class Figures:
    key: object = None
    label: str = ""
    created: int = 0
    resolved: int = 0
    reopened: int = 0
    complaints: int = 0
    complaints_handled: int = 0
    fr_met: int = 0
    fr_missed: int = 0
    res_met: int = 0
    res_missed: int = 0
    fr_median: float | None = None  # hours
    fr_p90: float | None = None
    res_median: float | None = None
    res_p90: float | None = None
    csat_sum: int = 0
    csat_count: int = 0
    promoters: int = 0
    detractors: int = 0
    nps_count: int = 0
    reviewed: int = 0  # quality reviews (quality.py) of the row's tickets
    accurate: int = 0  # … that found the answer accurate

    @staticmethod
    def _pct(part: int, whole: int) -> Decimal | None:
        if not whole:
            return None
        return (Decimal(100) * part / whole).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)

    @property
    def resolution_rate(self) -> Decimal | None:
        return self._pct(self.resolved, self.created)

    @property
    def fr_sla(self) -> Decimal | None:
        return self._pct(self.fr_met, self.fr_met + self.fr_missed)

    @property
    def res_sla(self) -> Decimal | None:
        return self._pct(self.res_met, self.res_met + self.res_missed)

    @property
    def complaint_rate(self) -> Decimal | None:
        return self._pct(self.complaints_handled, self.complaints)

    @property
    def accuracy(self) -> Decimal | None:
        return self._pct(self.accurate, self.reviewed)

    @property
    def csat(self) -> Decimal | None:
        if not self.csat_count:
            return None
        return (Decimal(self.csat_sum) / self.csat_count).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

    @property
    def nps(self) -> int | None:
        if not self.nps_count:
            return None
        return int(
            (Decimal(100) * (self.promoters - self.detractors) / self.nps_count).quantize(
                Decimal(1), rounding=ROUND_HALF_UP
            )
        )

    def as_dict(self) -> dict:
        def num(v):
            return None if v is None else float(v)

        return {
            "created": self.created, "resolved": self.resolved, "resolution_rate": num(self.resolution_rate),
            "first_response_median_hours": self.fr_median, "first_response_p90_hours": self.fr_p90,
            "resolution_median_hours": self.res_median, "resolution_p90_hours": self.res_p90,
            "first_response_sla_met": num(self.fr_sla), "first_response_sla_decided": self.fr_met + self.fr_missed,
            "resolution_sla_met": num(self.res_sla), "resolution_sla_decided": self.res_met + self.res_missed,
            "reopened": self.reopened, "csat": num(self.csat), "csat_responses": self.csat_count,
            "nps": self.nps, "nps_responses": self.nps_count, "promoters": self.promoters,
            "detractors": self.detractors, "complaints": self.complaints,
            "complaints_handled": self.complaints_handled, "complaint_handling_rate": num(self.complaint_rate),
            "quality_reviewed": self.reviewed, "accuracy": num(self.accuracy),
        }  # fmt: skip


def _reopened() -> Exists:
    """A ticket that was reopened at least once (the "Reopened" count, and the list behind it)."""
    return Exists(TicketEvent.objects.filter(ticket=OuterRef("pk"), kind=EventKind.REOPENED))


def _tickets(user, scope: Scope, query: Query, period: Period | None = None, *, team_ids=None):
    """The tickets of the period the user may count (`team_ids`: the agent's comparison, their teams' tickets)."""
    from .views import category_and_below

    period = period or query.period
    # every status named: the (status, received_at) index answers "received in the period" as one short range per
    # status, as the board's intake does, instead of a scan of all tickets. The merged duplicates left out by an
    # exclude: "merged_into IS NULL" made SQLite walk the merged_into index, which holds nearly every ticket.
    qs = Ticket.objects.filter(
        status__in=Status.values, received_at__gte=period.start, received_at__lt=period.end
    ).exclude(merged_into__isnull=False)
    if team_ids is not None:
        qs = qs.filter(team_id__in=team_ids)
    elif scope.team_ids is not None:
        qs = qs.filter(team_id__in=scope.team_ids)
    elif scope.own is not None:
        qs = qs.filter(assignee=scope.own)
    if query.team is not None:
        qs = qs.filter(team=query.team)
    if query.category is not None:
        qs = qs.filter(category_id__in=category_and_below(query.category.pk))
    if query.priority:
        qs = qs.filter(priority=query.priority)
    if not access.can(user, Cap.ALL_CUSTOMERS):
        qs = access.tickets_for(user, qs)
    return qs


def class_period() -> str:
    """The customer evaluation's period whose classes are shown: the one in force (as the evaluation pages show it),
    else the latest evaluated."""
    from pharmacrm.keyaccounts.views_eval import periods, shown_period

    return shown_period("evaluation", periods("evaluation"))


def _key(group: str, prefix: str = "", klass_period: str = ""):
    """The expression a row is keyed by, on tickets (`prefix` "") or on rows pointing at them ("ticket__")."""
    if group == "agent":
        return F(f"{prefix}assignee_id")
    if group == "team":
        return F(f"{prefix}team_id")
    if group == "category":
        return F(f"{prefix}category_id")
    if group == "channel":
        return F(f"{prefix}channel")
    # the class of the ticket's customer in the evaluation shown (a department's: its own, else its hospital's;
    # a person's: their institution's)
    from pharmacrm.keyaccounts.models import Score

    def klass(ref):
        return Subquery(
            Score.objects.filter(kind="evaluation", period=klass_period, institution_id=OuterRef(ref)).values(
                "klass"
            )[:1]
        )

    return Coalesce(
        klass(f"{prefix}institution_id"), klass(f"{prefix}institution__parent_id"),
        klass(f"{prefix}person__institution_id"), klass(f"{prefix}person__institution__parent_id"),
        Value(""), output_field=CharField(),
    )  # fmt: skip


def compute(tickets, group: str | None, *, now: dt.datetime | None = None, klass_period: str = "",
            quality: bool = True) -> dict:  # fmt: skip
    """{key: Figures} for the tickets grouped by `group` (None: the totals, one row keyed 0). Five queries; four
    without the quality reviews (`quality` False: a page that shows no accuracy)."""
    now = now or timezone.now()
    out: dict = {}

    def row(key) -> Figures:
        if key not in out:
            out[key] = Figures(key=key)
        return out[key]

    def grouped(qs, prefix: str):
        if group is None:
            return qs.annotate(g=Value(0, output_field=IntegerField())).values("g")
        return qs.annotate(g=_key(group, prefix, klass_period)).values("g")

    ids = tickets.values("id")
    # 1. the tickets: created, resolved, reopened, complaints
    reopened = _reopened()
    complaint = Q(category__complaint=True)
    for r in grouped(tickets, "").annotate(
        created=Count("id"), resolved=Count("id", filter=Q(status__in=DONE)),
        reopened=Count("id", filter=reopened), complaints=Count("id", filter=complaint),
        handled=Count("id", filter=complaint & Q(status__in=DONE)),
    ).order_by():  # fmt: skip
        f = row(r["g"])
        f.created, f.resolved, f.reopened = r["created"], r["resolved"], r["reopened"]
        f.complaints, f.complaints_handled = r["complaints"], r["handled"]
    # 2. the SLA clocks: met by their deadline, or missed
    clocks = SlaClock.objects.filter(ticket_id__in=ids)
    met = Q(fulfilled_at__isnull=False, breached_at__isnull=True)
    missed = Q(breached_at__isnull=False)
    fr, res = Q(kind=ClockKind.FIRST_RESPONSE), Q(kind=ClockKind.RESOLUTION)
    for r in grouped(clocks, "ticket__").annotate(
        fr_met=Count("id", filter=fr & met), fr_missed=Count("id", filter=fr & missed),
        res_met=Count("id", filter=res & met), res_missed=Count("id", filter=res & missed),
    ).order_by():  # fmt: skip
        f = row(r["g"])
        f.fr_met, f.fr_missed = r["fr_met"], r["fr_missed"]
        f.res_met, f.res_missed = r["res_met"], r["res_missed"]
    # 3. the waits' medians and 90th percentiles: the clocks met, and those of tickets still open with their
    # wait so far (keyaccounts.services._counted_clocks); ranked per group by a window function, only the rows at
    # the ranks wanted come back
    counted = clocks.filter(Q(fulfilled_at__isnull=False) | ~Q(ticket__status__in=DONE))
    wait = Seconds(Coalesce(F("fulfilled_at"), Value(now)), F("started_at"))
    partition = [F("kind")] if group is None else [_key(group, "ticket__", klass_period), F("kind")]
    ranked = (
        counted.annotate(
            g=Value(0, output_field=IntegerField()) if group is None else _key(group, "ticket__", klass_period),
            wait=wait,
            rn=Window(RowNumber(), partition_by=partition, order_by=[wait.asc(), F("id").asc()]),
            n=Window(Count("id"), partition_by=partition),
        )
        .filter(
            Q(rn=(F("n") + 1) / 2) | Q(rn=(F("n") + 2) / 2) | Q(rn=(F("n") * 9 + 9) / 10)
        )
        .values_list("g", "kind", "rn", "n", "wait")
    )  # fmt: skip
    picks: dict[tuple, dict[int, dt.timedelta]] = {}
    for g, kind, rn, n, span in ranked:
        picks.setdefault((g, kind, n), {})[rn] = span
    for (g, kind, n), at in picks.items():
        seconds = {rank: round(s) for rank, s in at.items()}  # whole seconds: the float noise of julianday off
        median = _hours(Decimal(seconds[(n + 1) // 2] + seconds[(n + 2) // 2]) / 2)
        p90 = _hours(seconds[(9 * n + 9) // 10])
        f = row(g)
        if kind == ClockKind.FIRST_RESPONSE:
            f.fr_median, f.fr_p90 = median, p90
        elif kind == ClockKind.RESOLUTION:
            f.res_median, f.res_p90 = median, p90
    # 4. the revisits of those tickets: satisfaction and the recommendation
    surveys = Survey.objects.filter(ticket_id__in=ids)
    for r in grouped(surveys, "ticket__").annotate(
        s=Sum("score"), n=Count("score"), promoters=Count("id", filter=Q(recommend__gte=9)),
        detractors=Count("id", filter=Q(recommend__lte=6)), answers=Count("recommend"),
    ).order_by():  # fmt: skip
        if not (r["n"] or r["answers"]):
            continue
        f = row(r["g"])
        f.csat_sum, f.csat_count = r["s"] or 0, r["n"]
        f.promoters, f.detractors, f.nps_count = r["promoters"], r["detractors"], r["answers"]
    # 5. the quality reviews of those tickets: the accuracy of the answers. Of the tickets handled now, as the quality
    # page counts them: a ticket reopened since its review is not judged until it is resolved again
    if quality:
        reviews = QualityReview.objects.filter(ticket_id__in=ids, ticket__status__in=DONE)
        for r in grouped(reviews, "ticket__").annotate(
            n=Count("id"), accurate=Count("id", filter=Q(accurate=True))
        ).order_by():  # fmt: skip
            f = row(r["g"])
            f.reviewed, f.accurate = r["n"], r["accurate"]
    return out


def _hours(seconds) -> float:
    """Seconds as hours to one decimal, half up as the rates are (2.25 h → 2.3, never the float's 2.2): the figure the
    page shows is the one its goal judges."""
    return float((Decimal(seconds) / 3600).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


class Seconds(Func):
    """The seconds from `start` to `end`, a float, computed by the database itself: on SQLite by julianday arithmetic
    (Django's subtraction of two datetimes calls a Python function there, parsing both timestamps, per row: 2 of a
    month's report's 4 s at 200,000 tickets), on PostgreSQL as the epoch of the interval."""

    output_field = FloatField()

    def __init__(self, end, start):
        super().__init__(end, start)

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="((julianday(%(expressions)s)) * 86400.0)",
                           arg_joiner=") - julianday(", **extra)  # fmt: skip

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="EXTRACT(EPOCH FROM (%(expressions)s))::double precision",
                           arg_joiner=" - ", **extra)  # fmt: skip


# --- labels --------------------------------------------------------------------------------------------


def _labels(group: str, keys) -> dict:
    keys = [k for k in keys if k not in (None, "")]
    if group == "agent":
        names = {u.pk: str(u) for u in User.objects.filter(pk__in=keys)}
        return {None: _("Unassigned"), **names}
    if group == "team":
        return {None: _("No team"), **dict(Team.objects.filter(pk__in=keys).values_list("id", "name"))}
    if group == "category":
        return {c.pk: c.label for c in TicketCategory.objects.filter(pk__in=keys)}
    if group == "channel":
        return {value: str(label) for value, label in Channel.choices}
    return {"": _("No class"), **{k: _("Class %(klass)s") % {"klass": k} for k in "ABCD"}}


def _order(group: str, rows: list[Figures]) -> list[Figures]:
    if group == "class":
        return sorted(rows, key=lambda r: CLASS_ORDER.index(r.key) if r.key in CLASS_ORDER else 9)
    # the most tickets first, then by name; the rows without an agent or team last
    return sorted(rows, key=lambda r: (r.key is None, -r.created, r.label))


@dataclass
class Report:
    query: Query
    scope: Scope
    rows: list[Figures]
    totals: Figures
    previous: Figures  # the totals of the period before
    team_totals: Figures | None  # an agent's comparison: their teams' totals
    klass_period: str = ""
    trend: list[dict] = field(default_factory=list)

    @property
    def period(self) -> Period:
        return self.query.period


def report(user, query: Query, *, now: dt.datetime | None = None, trend: bool = True) -> Report:
    """The rows, the totals, the previous period's totals (and an agent's teams' totals), and the trend of the
    last 12 periods' totals. A fixed number of queries."""
    scope = check(user, query)
    now = now or timezone.now()
    klass_period = class_period() if query.group == "class" else ""
    tickets = _tickets(user, scope, query)
    figures = compute(tickets, query.group, now=now, klass_period=klass_period)
    labels = _labels(query.group, figures)
    rows = []
    for key, f in figures.items():
        f.label = str(labels.get(key, key if key is not None else "—"))
        rows.append(f)
    totals = compute(tickets, None, now=now).get(0) or Figures(key=0)
    totals.label = _("Total")
    previous = compute(_tickets(user, scope, query, query.period.previous), None, now=now).get(0) or Figures(
        key=0
    )
    previous.label = query.period.previous.key
    team_totals = None
    if scope.own is not None and scope.own_team_ids:  # an agent in no team has no team to compare with
        team_totals = compute(_tickets(user, scope, query, team_ids=scope.own_team_ids), None, now=now).get(
            0
        ) or Figures(key=0)
        team_totals.label = _("Your teams, all agents")
    out = Report(query=query, scope=scope, rows=_order(query.group, rows), totals=totals, previous=previous,
                 team_totals=team_totals, klass_period=klass_period)  # fmt: skip
    if trend:
        out.trend = trend_of(user, scope, query)
    return out


# --- from a count to its tickets ----------------------------------------------------------------------

DRILLS = {
    "tickets": gettext_lazy("Tickets received"), "resolved": gettext_lazy("Resolved"),
    "reopened": gettext_lazy("Reopened"), "complaints": gettext_lazy("Complaints"),
}  # fmt: skip


def drill_error() -> str:
    return _("This list is opened from a count of the service performance page; the link is not valid.")


def drilled(user, query: Query, what: str, row: str | None = None):
    """The tickets behind one count of the page: `what` names the column, `row` the row's key for the query's
    grouping ("" for the row without one — unassigned, no team, no class; None: the totals). The same tickets as
    report() counts, so the list is as long as the figure. ValidationError naming `what` or `row` otherwise."""
    if what not in DRILLS:
        raise ValidationError({"what": [drill_error()]})
    scope = check(user, query)
    qs = _tickets(user, scope, query)
    if row is not None:
        group = query.group
        if group in ("agent", "team", "category"):
            field = {"agent": "assignee_id", "team": "team_id", "category": "category_id"}[group]
            if not row:
                if group == "category":
                    raise ValidationError({"row": [drill_error()]})
                qs = qs.filter(**{f"{field}__isnull": True})
            elif row.isascii() and row.isdigit() and 0 < int(row) < 2**63:  # a longer number failed in the DB (500)
                qs = qs.filter(**{field: int(row)})
            else:
                raise ValidationError({"row": [drill_error()]})
        elif group == "channel":
            if row not in Channel.values:
                raise ValidationError({"row": [drill_error()]})
            qs = qs.filter(channel=row)
        else:  # class: A–D, or "" not evaluated
            if row not in ("A", "B", "C", "D", ""):
                raise ValidationError({"row": [drill_error()]})
            qs = qs.annotate(g=_key("class", "", class_period())).filter(g=row)
    if what == "resolved":
        qs = qs.filter(status__in=DONE)
    elif what == "reopened":
        qs = qs.filter(_reopened())
    elif what == "complaints":
        qs = qs.filter(category__complaint=True)
    return qs


def drill_row_label(query: Query, row: str | None) -> str:
    """The row's name as the page shows it ("Total" for the totals)."""
    if row is None:
        return _("Total")
    key = (int(row) if row else None) if query.group in ("agent", "team", "category") else row
    return str(_labels(query.group, [key]).get(key, key if key is not None else "—"))


def trend_of(user, scope: Scope, query: Query) -> list[dict]:
    """The totals of the last 12 periods up to the chosen one: tickets, resolution rate, CSAT, NPS and the accuracy
    of the answers reviewed for quality (three grouped queries over the twelve periods)."""
    last = query.period
    first = last.shifted(-(TREND_PERIODS - 1))
    span = Query(
        period=last, group=query.group, team=query.team, category=query.category, priority=query.priority
    )
    tickets = _tickets(user, scope, span, _Span(first, last))
    periods = [first.shifted(i) for i in range(TREND_PERIODS)]
    by: dict[str, dict] = {}
    for r in tickets.annotate(b=_bucket("received_at", periods)).values("b").annotate(
        created=Count("id"), resolved=Count("id", filter=Q(status__in=DONE))
    ).order_by():  # fmt: skip
        by.setdefault(r["b"], {}).update(created=r["created"], resolved=r["resolved"])
    sb = _bucket("ticket__received_at", periods)
    # the surveys and the reviews each look their ticket up (EXISTS), made since the first period began, instead of
    # the database listing the twelve periods' tickets to match them (2.5× faster for the surveys, 20× for the
    # reviews, a sample, on SQLite at 200,000 tickets a year: docs/benchmarks.md). Both follow their ticket's
    # receipt, which may be written a few minutes ahead of the clock (services.create_ticket): a day's margin, the
    # buckets being by receipt
    since = first.start - dt.timedelta(days=1)
    surveys = Survey.objects.filter(created_at__gte=since).filter(Exists(tickets.filter(pk=OuterRef("ticket_id"))))
    for r in surveys.annotate(b=sb).values("b").annotate(
        s=Sum("score"), n=Count("score"), promoters=Count("id", filter=Q(recommend__gte=9)),
        detractors=Count("id", filter=Q(recommend__lte=6)), answers=Count("recommend"),
    ).order_by():  # fmt: skip
        by.setdefault(r["b"], {}).update(
            csat_sum=r["s"] or 0, csat_count=r["n"], promoters=r["promoters"], detractors=r["detractors"],
            nps_count=r["answers"],
        )  # fmt: skip
    reviews = QualityReview.objects.filter(reviewed_at__gte=since).filter(
        Exists(tickets.filter(pk=OuterRef("ticket_id"), status__in=DONE))
    )
    for r in reviews.annotate(b=sb).values("b").annotate(
        n=Count("id"), accurate=Count("id", filter=Q(accurate=True))
    ).order_by():  # fmt: skip
        by.setdefault(r["b"], {}).update(reviewed=r["n"], accurate=r["accurate"])
    out = []
    for i in range(TREND_PERIODS):
        p = first.shifted(i)
        f = Figures(key=p.key, label=p.key, **by.get(p.key, {}))
        out.append({"period": p.key, "created": f.created, "resolution_rate": _float(f.resolution_rate),
                    "csat": _float(f.csat), "nps": f.nps, "reviewed": f.reviewed,
                    "accuracy": _float(f.accuracy)})  # fmt: skip
    return out


def _bucket(field: str, periods: list[Period]) -> Case:
    """The key of the period (of `periods`, in a row) a moment falls in, as the database compares it with the
    periods' ends: no truncation of each row's time to a Beijing month (SQLite calls a Python function per row for
    that: 2 s for a year of 200,000 tickets)."""
    return Case(*(When(**{f"{field}__lt": p.end}, then=Value(p.key)) for p in periods), default=Value(""),
                output_field=CharField())  # fmt: skip


@dataclass(frozen=True)
class _Span:
    """Several periods in a row, as _tickets reads a period (start, end)."""

    first: Period
    last: Period

    @property
    def start(self) -> dt.datetime:
        return self.first.start

    @property
    def end(self) -> dt.datetime:
        return self.last.end


def _float(v) -> float | None:
    return None if v is None else float(v)
