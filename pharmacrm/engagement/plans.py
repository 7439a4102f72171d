"""Annual communication plans per customer class (年度沟通计划, seed 002 三.(一).1: "根据客户分类和特点，制定年度客户
沟通计划，明确沟通目标、方式、频率") and the check of contacts against them (三.(二): 定期拜访, 电话沟通 …).

A plan is for one year and a set of institutions — those of a class in the customer evaluation, of a tier and/or of
a type (blank: any) —; each of its lines asks for at least N interactions through one channel per calendar month,
quarter, half-year or the year. The class is the one of the evaluation period in force (keyaccounts.evaluation.
in_force: the last half-year evaluated in full), else of the latest half-year scored: what the results page shows.
Plans are for institutions (hospitals, pharmacies, distributors …), never a department on its own: a hospital's
contacts are the interactions recorded with it, its departments and its people (the institution an interaction
with a doctor is filed under), as its Customer 360 page lists them. People are not classed and have no plan.

A line is *due* while its period runs and fewer contacts than its minimum were recorded in it; *overdue* when the
period before ended short, shown for MISSED_SHOWN_DAYS after it ended (a period of the plan's year only: January
shows the misses of December under last year's plan). Nothing is stored: the state is read from the interactions,
so a recorded visit ends "due" at once. The lists count every window's contacts in one grouped query over the
interactions of the periods judged (`_tally`), read the customers in the user's scope once per plan (ids and owners)
and sort them by what they miss; only a page of them is loaded in full. One customer's counts (its page, a page of
the list) are subqueries answered from the interaction_institution index (`judged`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Case, Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from pharmacrm.core import access, audit
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers.choices import InstitutionType
from pharmacrm.customers.models import Institution

from .models import CommunicationPlan, CommunicationPlanLine, Interaction, PlanPeriod

# Half a month: a rep back from a fortnight's leave still sees what the last period missed, and a monthly line's
# past month leaves the list before the current month's end draws near.
MISSED_SHOWN_DAYS = 15
# The morning reminder speaks of a period under way only in its last week: at the start of a month every monthly
# line is short, and a reminder every day of it would be noise.
REMIND_DAYS_BEFORE_END = 7
PAGE_SIZE = 50
EVALUATION = "evaluation"


# --- periods -------------------------------------------------------------------------------------------------


def window(period: str, day: dt.date) -> tuple[dt.date, dt.date]:
    """The calendar period of the kind holding `day`: its first day and the first day after it."""
    months = {PlanPeriod.MONTH: 1, PlanPeriod.QUARTER: 3, PlanPeriod.HALF: 6, PlanPeriod.YEAR: 12}[PlanPeriod(period)]
    first_month = (day.month - 1) // months * months + 1
    after = first_month - 1 + months
    return dt.date(day.year, first_month, 1), dt.date(day.year + after // 12, after % 12 + 1, 1)


def _aware(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


@dataclass
class Window:
    """A plan line judged over one period: the current one (due) or the one before (overdue)."""

    line: CommunicationPlanLine
    overdue: bool
    start: dt.date
    end: dt.date  # the first day after it
    key: str = ""  # its count's column

    @property
    def last_day(self) -> dt.date:
        return self.end - dt.timedelta(days=1)


def windows(plan: CommunicationPlan, today: dt.date, *, channel: str = "", remind: bool = False) -> list[Window]:
    """The plan's lines as judged today: each line's period under way (in the plan's year) and, within
    MISSED_SHOWN_DAYS of its end, the period before (in the plan's year). `remind`: only those the morning reminder
    speaks of — a period under way in its last REMIND_DAYS_BEFORE_END days, and the missed ones."""
    found = []
    for line in plan.lines.all():
        if channel and line.channel != channel:
            continue
        start, end = window(line.period, today)
        if start.year == plan.year and (not remind or (end - today).days <= REMIND_DAYS_BEFORE_END):
            found.append(Window(line, False, start, end))
        before_start, before_end = window(line.period, start - dt.timedelta(days=1))
        if before_start.year == plan.year and (today - before_end).days < MISSED_SHOWN_DAYS:
            found.append(Window(line, True, before_start, before_end))
    for i, w in enumerate(found):
        w.key = f"c{i}"
    return found


def plans_in_force(today: dt.date) -> list[CommunicationPlan]:
    """The plans with a line judged today: this year's, and last year's in the first days of January."""
    years = {today.year, (today - dt.timedelta(days=MISSED_SHOWN_DAYS)).year}
    return list(CommunicationPlan.objects.filter(year__in=years).prefetch_related("lines").order_by("year", "id"))


# --- whom a plan is for ------------------------------------------------------------------------------------


def class_period(today: dt.date | None = None) -> str | None:
    """The evaluation period whose classes the plans read: the one in force, else the latest half-year scored."""
    from pharmacrm.keyaccounts import evaluation
    from pharmacrm.keyaccounts.models import Score

    period = evaluation.in_force(EVALUATION, today)
    if period:
        return period
    return (
        Score.objects.filter(kind=EVALUATION, period__contains="H").exclude(klass="")
        .order_by("-period").values_list("period", flat=True).first()
    )  # fmt: skip


def of_class(klass: str, period: str | None) -> Q:
    from pharmacrm.keyaccounts.models import Score

    if not period:
        return Q(pk__in=[])
    return Q(pk__in=Score.objects.filter(kind=EVALUATION, period=period, klass=klass).values("institution_id"))


def planned(qs: QuerySet) -> QuerySet:
    """The institutions a plan can be for: active ones, not departments."""
    return qs.filter(merged_into__isnull=True).exclude(kind=InstitutionType.DEPARTMENT)


def targeted(plan: CommunicationPlan, qs: QuerySet, period: str | None) -> QuerySet:
    qs = planned(qs)
    if plan.klass:
        qs = qs.filter(of_class(plan.klass, period))
    if plan.tier:
        qs = qs.filter(tier=plan.tier)
    if plan.institution_kind:
        qs = qs.filter(kind=plan.institution_kind)
    return qs


def _contacts(channel: str, start: dt.date, end: dt.date):
    """The interactions through the channel in the period with the outer institution, its departments (two levels,
    as hospitals nest) and its people (an interaction with a person carries the person's institution). Three
    counts, each through an index: the institution's own interactions (institution, received_at), its departments'
    and its sub-departments' (found by parent_id) — one look-up with an OR over the family made the databases scan
    every institution for each customer of the list (minutes at 100,000 customers)."""
    window = {"channel": channel, "received_at__gte": _aware(start), "received_at__lt": _aware(end)}

    def counted(**where):
        rows = Interaction.objects.filter(**window, **where).order_by().values("channel").annotate(n=Count("id"))
        return Coalesce(Subquery(rows.values("n")[:1], output_field=IntegerField()), Value(0))

    children = Institution.objects.filter(parent_id=OuterRef(OuterRef("pk"))).values("pk")
    grandchildren = Institution.objects.filter(
        parent_id__in=Institution.objects.filter(parent_id=OuterRef(OuterRef(OuterRef("pk")))).values("pk")
    ).values("pk")
    return (
        counted(institution_id=OuterRef("pk"))
        + counted(institution_id__in=children)
        + counted(institution_id__in=grandchildren)
    )


def judged(plan: CommunicationPlan, qs: QuerySet, found: list[Window]) -> QuerySet:
    """The institutions with each window's count (`c0`, `c1` …) and `shortfall`: the contacts missing in all."""
    qs = qs.annotate(**{w.key: _contacts(w.line.channel, w.start, w.end) for w in found})
    short = Value(0)
    for w in found:
        short = short + Greatest(Value(w.line.minimum) - F(w.key), Value(0))
    return qs.annotate(shortfall=short, plan_ref=Value(plan.pk, output_field=IntegerField()))


# --- the lists ------------------------------------------------------------------------------------------------


def may_oversee(user) -> bool:
    """Managers (and admins) see every owner's customers they may see, and a summary per owner."""
    return access.can(user, Cap.MANAGE_COMMUNICATION_PLANS)


SCOPES = ("mine", "teams", "all")


def scoped(user, scope: str) -> QuerySet:
    """The institutions of the list: those the user owns ("mine"), or their teams own too ("teams", as the
    birthdays page), or — for managers — all they may see ("all")."""
    qs = access.institutions_for(user, Institution.objects.all())
    if scope == "all" and may_oversee(user):
        return qs
    if scope == "mine":
        return qs.filter(owner=user)
    return qs.filter(Q(owner=user) | Q(team__in=user.teams.all()))


@dataclass
class LineState:
    channel: str
    channel_label: str
    period: str
    period_label: str
    minimum: int
    count: int
    overdue: bool
    start: dt.date
    last_day: dt.date
    note: str = ""

    @property
    def short(self) -> int:
        return max(self.minimum - self.count, 0)

    @property
    def state(self) -> str:
        if not self.short:
            return "met"
        return "overdue" if self.overdue else "due"


@dataclass
class Row:
    customer: Institution
    plan: CommunicationPlan
    shortfall: int
    lines: list[LineState] = field(default_factory=list)

    @property
    def overdue(self) -> bool:
        return any(s.state == "overdue" for s in self.lines)


def _states(plan: CommunicationPlan, found: list[Window], values: dict) -> list[LineState]:
    return [
        LineState(channel=w.line.channel, channel_label=str(w.line.get_channel_display()), period=w.line.period,
                  period_label=str(w.line.get_period_display()), minimum=w.line.minimum, count=values[w.key],
                  overdue=w.overdue, start=w.start, last_day=w.last_day, note=w.line.note)
        for w in found
    ]  # fmt: skip


@dataclass
class Query:
    """What the list was asked for."""

    scope: str = "teams"
    klass: str = ""
    channel: str = ""
    owner: int | None = None


def _tally(found: list[Window]) -> dict[tuple, dict[int, int]]:
    """Every window's contacts per institution family, in one grouped query: for each distinct (channel, start,
    end), the interactions through the channel in the period counted for the institution they were recorded with,
    its parent and its grandparent — so that a hospital's count holds its own, its departments' and their
    sub-departments' interactions, as `_contacts` counts one family. The interactions are grouped by the stretch
    between two consecutive window edges they fall in (a CASE of a few comparisons: one count, where a filtered
    count per window took twice the time), and each window adds up its stretches here."""
    spans = sorted({(w.line.channel, w.start, w.end) for w in found})
    if not spans:
        return {}
    edges = sorted({s for _c, s, _e in spans} | {e for _c, _s, e in spans})
    stretch = Case(
        *[When(received_at__lt=_aware(edge), then=Value(i)) for i, edge in enumerate(edges[1:])],
        default=Value(len(edges) - 1), output_field=IntegerField(),
    )  # fmt: skip
    tallies: dict[tuple, dict[int, int]] = {span: {} for span in spans}
    # (channel, stretch) → the tallies of the windows over the stretch
    into: dict[tuple[str, int], list[dict[int, int]]] = {}
    for span in spans:
        channel, start, end = span
        for i in range(edges.index(start), edges.index(end)):
            into.setdefault((channel, i), []).append(tallies[span])
    rows = (
        Interaction.objects.filter(institution__isnull=False, channel__in={c for c, _s, _e in spans},
                                   received_at__gte=_aware(edges[0]), received_at__lt=_aware(edges[-1]))
        .order_by().annotate(stretch=stretch)
        .values_list("institution_id", "institution__parent_id", "institution__parent__parent_id", "channel", "stretch")
        .annotate(n=Count("id"))
    )  # fmt: skip
    for own, parent, grandparent, channel, at, n in rows:
        for tally in into.get((channel, at), ()):
            for pk in (own, parent, grandparent):
                if pk is not None:
                    tally[pk] = tally.get(pk, 0) + n
    return tallies


@dataclass
class Standing:
    """A customer under a plan: how many contacts it misses in all the windows judged, and in the periods under way."""

    pk: int
    owner_id: int | None
    plan_id: int
    shortfall: int
    current: int


# Up to this many customers under the plans, each one's contacts are counted by index look-ups (`judged`: a rep's
# list, a few hundred customers, in milliseconds); beyond it, every window's contacts at once (`_tally`: a fixed
# half-second or so at 90,000 interactions, where the look-ups took seconds for a manager's 60,000 customers).
FEW_CUSTOMERS = 5000


def standings(base: QuerySet, today: dt.date, *, channel: str = "", remind: bool = False):
    """Every customer of `base` under a plan in force, judged: the plans by id, the windows by plan id, the class
    period and the `Standing`s — the customers read once per plan (their ids and owners), their contacts counted as
    FEW_CUSTOMERS says, and the shortfalls added up here."""
    period = class_period(today)
    plans, found_by_plan, customers = {}, {}, {}
    for plan in plans_in_force(today):
        found = windows(plan, today, channel=channel, remind=remind)
        if found:
            plans[plan.pk], found_by_plan[plan.pk] = plan, found
            customers[plan.pk] = list(targeted(plan, base, period).order_by().values_list("pk", "owner_id"))
    # each window's contacts per customer: {pk: n}, one dict per window of each plan
    if sum(len(rows) for rows in customers.values()) <= FEW_CUSTOMERS:
        counts = {}
        for plan_id, found in found_by_plan.items():
            counts[plan_id] = [{} for _w in found]
            if customers[plan_id]:
                qs = judged(plans[plan_id], targeted(plans[plan_id], base, period), found).order_by()
                for pk, *values in qs.values_list("pk", *[w.key for w in found]):
                    for by_pk, n in zip(counts[plan_id], values, strict=True):
                        by_pk[pk] = n
    else:
        tallies = _tally([w for found in found_by_plan.values() for w in found])
        counts = {plan_id: [tallies[(w.line.channel, w.start, w.end)] for w in found]
                  for plan_id, found in found_by_plan.items()}  # fmt: skip
    out: list[Standing] = []
    for plan_id, found in found_by_plan.items():
        lines = [(w.line.minimum, not w.overdue, by_pk) for w, by_pk in zip(found, counts[plan_id], strict=True)]
        for pk, owner_id in customers[plan_id]:
            short = current = 0
            for minimum, under_way, by_pk in lines:
                missing = minimum - by_pk.get(pk, 0)
                if missing > 0:
                    short += missing
                    if under_way:
                        current += missing
            out.append(Standing(pk, owner_id, plan_id, short, current))
    return plans, found_by_plan, period, out


@dataclass
class Due:
    """The list's standings, counted once for the page and the managers' summary."""

    plans: dict
    found_by_plan: dict
    period: str | None
    standings: list[Standing]


def due(user, query: Query, today: dt.date | None = None) -> Due:
    """The customers of the user's scope (and of the class asked for) under a plan, judged today."""
    base = planned(scoped(user, query.scope))
    today = today or timezone.localdate()
    if query.klass:
        base = base.filter(of_class(query.klass, class_period(today)))
    return Due(*standings(base, today, channel=query.channel))


def behind(user, query: Query, today: dt.date | None = None, found_due: Due | None = None):
    """The (institution id, plan id, shortfall) rows of the customers behind their plan, the most behind first — a
    list to page —, the plans by id, the windows by plan id, and the class period."""
    d = found_due or due(user, query, today)
    owner = query.owner if query.owner and may_oversee(user) else None
    rows = [
        (s.pk, s.plan_id, s.shortfall) for s in d.standings if s.shortfall > 0 and (owner is None or s.owner_id == owner)
    ]  # fmt: skip
    rows.sort(key=lambda r: (-r[2], r[0], r[1]))
    return rows, d.plans, d.found_by_plan, d.period


def load_rows(page_rows, plans: dict, found_by_plan: dict) -> list[Row]:
    """The page's rows with each line's count: one query per plan on the page, and one for the customers."""
    by_plan: dict[int, list[int]] = {}
    for pk, plan_id, _short in page_rows:
        by_plan.setdefault(plan_id, []).append(pk)
    counts: dict[tuple[int, int], dict] = {}
    for plan_id, ids in by_plan.items():
        found = found_by_plan[plan_id]
        qs = judged(plans[plan_id], Institution.objects.filter(pk__in=ids), found)
        for values in qs.values("pk", *[w.key for w in found]):
            counts[(values["pk"], plan_id)] = values
    customers = Institution.objects.select_related("parent", "owner").in_bulk({pk for pk, _p, _s in page_rows})
    out = []
    for pk, plan_id, short in page_rows:
        if pk in customers and (pk, plan_id) in counts:
            out.append(Row(customers[pk], plans[plan_id], short, _states(plans[plan_id], found_by_plan[plan_id],
                                                                          counts[(pk, plan_id)])))  # fmt: skip
    return out


@dataclass
class OwnerSummary:
    owner_id: int | None
    name: str = ""
    customers: int = 0
    behind: int = 0

    @property
    def percent(self) -> int:
        return round(100 * (self.customers - self.behind) / self.customers) if self.customers else 100


def summary(user, query: Query, today: dt.date | None = None, found_due: Due | None = None) -> list[OwnerSummary]:
    """Per owner: the customers under a plan (a customer under two plans counts twice), how many are behind in the
    periods under way, and the share on track."""
    from django.contrib.auth import get_user_model

    d = found_due or due(user, query, today)
    by_owner: dict[int | None, OwnerSummary] = {}
    under_way = {plan_id for plan_id, found in d.found_by_plan.items() if any(not w.overdue for w in found)}
    for s in d.standings:
        if s.plan_id not in under_way:
            continue
        o = by_owner.get(s.owner_id) or by_owner.setdefault(s.owner_id, OwnerSummary(s.owner_id))
        o.customers += 1
        o.behind += s.current > 0
    names = get_user_model().objects.in_bulk([k for k in by_owner if k is not None])
    for key, o in by_owner.items():
        o.name = str(names[key]) if key in names else ""
    return sorted(by_owner.values(), key=lambda o: (o.percent, o.name))


def for_customer(institution: Institution, today: dt.date | None = None) -> list[Row]:
    """The plans the institution is under, with each line's count so far (its Customer 360 page's note)."""
    today = today or timezone.localdate()
    if institution.kind == InstitutionType.DEPARTMENT or institution.merged_into_id:
        return []
    period = class_period(today)
    out = []
    for plan in plans_in_force(today):
        found = windows(plan, today)
        if not found:
            continue
        qs = judged(plan, targeted(plan, Institution.objects.filter(pk=institution.pk), period), found)
        values = qs.values("pk", "shortfall", *[w.key for w in found]).first()
        if values is not None:
            out.append(Row(institution, plan, values["shortfall"], _states(plan, found, values)))
    return out


# --- the morning reminder ----------------------------------------------------------------------------------

REMINDER_KIND = "communication.due"


def remind(today: dt.date | None = None) -> int:
    """The morning reminder (the worker's `remind_communication_plans`): every active owner of customers behind
    their plan — a period ending within REMIND_DAYS_BEFORE_END days still short, or the last one missed — gets one
    notification, bell and e-mail in their language, saying how many, with a link to their list. Once a day: an
    owner reminded today is not reminded again, so a worker killed mid-run and run again sends nothing twice.
    Returns how many owners were reminded."""
    from django.contrib.auth import get_user_model
    from django.urls import reverse
    from django.utils.translation import gettext_lazy, ngettext_lazy

    from pharmacrm.core.deferred import Message
    from pharmacrm.notify import services as notify
    from pharmacrm.notify.models import Notification

    today = today or timezone.localdate()
    base = planned(Institution.objects.filter(owner__isnull=False, owner__is_active=True))
    behind_ids: dict[int, set[int]] = {}
    for s in standings(base, today, remind=True)[3]:
        if s.shortfall > 0:
            behind_ids.setdefault(s.owner_id, set()).add(s.pk)
    day = today.isoformat()
    reminded = set(
        Notification.objects.filter(kind=REMINDER_KIND, object_type="engagement.communicationplan", object_id=day,
                                    recipient_id__in=behind_ids).values_list("recipient_id", flat=True)
    )  # fmt: skip
    owners = get_user_model().objects.in_bulk([pk for pk in behind_ids if pk not in reminded])
    url = reverse("engagement:plan-due") + "?scope=mine"
    for pk, owner in sorted(owners.items()):
        n = len(behind_ids[pk])
        title = Message(ngettext_lazy("%(n)s customer of yours is behind the communication plan",
                                      "%(n)s customers of yours are behind the communication plan", n), n=n)  # fmt: skip
        body = Message(gettext_lazy("The plan asks for a number of visits, calls or messages per period; a period "
                                    "ends within %(days)s days short of it, or the last one ended short. Record "
                                    "the contacts as interactions."), days=REMIND_DAYS_BEFORE_END)  # fmt: skip
        with transaction.atomic():
            notify.send([owner], kind=REMINDER_KIND, title=title, body=body, url=url,
                        obj=("engagement.communicationplan", day))  # fmt: skip
    if owners:
        audit.record(AuditEntry.Action.CREATE, ("notify.notification", "", str(len(owners))), actor_name="worker",
                     kind=REMINDER_KIND, owner=sorted(owners), count=sum(len(behind_ids[pk]) for pk in owners))  # fmt: skip
    return len(owners)


# --- setting the plans -----------------------------------------------------------------------------------------

EARLIEST_YEAR = 2000
YEARS_AHEAD = 5  # a plan is written for this year or the next: five years ahead is a typo, not a plan
MAX_MINIMUM = 366  # a contact a day for a year
MAX_LINES = 12


def year_range() -> tuple[int, int]:
    return EARLIEST_YEAR, timezone.localdate().year + YEARS_AHEAD


def _line_errors(lines: list[dict]) -> tuple[list[dict], list[str]]:
    from django.utils.translation import gettext as _

    per_line, general, seen = [], [], set()
    for line in lines:
        errors: dict[str, list[str]] = {}
        minimum = line.get("minimum")
        if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 1:
            errors["minimum"] = [_("Ask for at least one contact per period.")]
        elif minimum > MAX_MINIMUM:
            errors["minimum"] = [_("At most %(n)s contacts per period.") % {"n": MAX_MINIMUM}]
        if line.get("period") not in PlanPeriod.values:
            errors["period"] = [_("Choose per month, quarter, half-year or year.")]
        from .models import InteractionChannel

        if line.get("channel") not in InteractionChannel.values:
            errors["channel"] = [_("Choose a channel.")]
        key = (line.get("channel"), line.get("period"))
        if not errors and key in seen:
            errors["channel"] = [_("This channel and period are already on another line of the plan.")]
        seen.add(key)
        per_line.append(errors)
    if not lines:
        general.append(_("A plan needs at least one line: a channel and how many contacts per period."))
    elif len(lines) > MAX_LINES:
        general.append(_("A plan has at most %(n)s lines.") % {"n": MAX_LINES})
    return per_line, general


def check(data: dict, plan: CommunicationPlan | None = None) -> dict:
    """Per-field errors of a plan's data (empty when it may be saved)."""
    from django.utils.translation import gettext as _

    from pharmacrm.customers.choices import Tier

    errors: dict = {}
    first, last = year_range()
    year = data.get("year")
    if not isinstance(year, int) or isinstance(year, bool) or not first <= year <= last:
        errors["year"] = [_("Enter a year from %(first)s to %(last)s.") % {"first": first, "last": last}]
    if data.get("klass", "") not in ("", "A", "B", "C", "D"):
        errors["klass"] = [_("Choose class A, B, C or D, or leave it empty for every class.")]
    if data.get("tier", "") not in ("", *Tier.values):
        errors["tier"] = [_("Choose a tier, or leave it empty for every tier.")]
    kinds = [k for k in InstitutionType.values if k != InstitutionType.DEPARTMENT]
    if data.get("institution_kind", "") not in ("", *kinds):
        errors["institution_kind"] = [_("Choose an institution type (not a department: a hospital's plan covers its "
                                        "departments), or leave it empty for every type.")]  # fmt: skip
    if not str(data.get("goal") or "").strip():
        errors["goal"] = [_("Say what the plan's contacts are for.")]
    per_line, general = _line_errors(list(data.get("lines") or []))
    if any(per_line):
        errors["lines"] = per_line
    elif general:
        errors["lines"] = general
    if not errors:
        same = CommunicationPlan.objects.filter(year=year, klass=data.get("klass", ""), tier=data.get("tier", ""),
                                                institution_kind=data.get("institution_kind", ""))  # fmt: skip
        if plan is not None:
            same = same.exclude(pk=plan.pk)
        if same.exists():
            errors["klass"] = [_("There is already a plan for %(year)s for these customers (class, tier and type): "
                                 "change that one.") % {"year": year}]  # fmt: skip
    return errors


def snapshot(plan: CommunicationPlan) -> dict:
    return {
        "year": plan.year, "klass": plan.klass, "tier": plan.tier, "institution_kind": plan.institution_kind,
        "goal": plan.goal,
        # whole records, which the audit page shows with their labels in the reader's language
        "lines": [{"channel": line.channel, "minimum": line.minimum, "period": line.period,
                   **({"note": line.note} if line.note else {})} for line in plan.lines.order_by("id")],
    }  # fmt: skip


def save_plan(user, data: dict, plan: CommunicationPlan | None = None, *, version: int | None = None) -> CommunicationPlan:
    """Create or change a plan and its lines (the lines given replace the plan's), audited; a ValidationError with
    per-field messages, and nothing written, when the data is wrong. A change is versioned: one made from another
    version than the plan's (a colleague saved in the meantime) is refused with a ConflictError."""
    from django.core.exceptions import ValidationError
    from django.db import IntegrityError

    from pharmacrm.customers.services import ConflictError

    access.require(user, Cap.MANAGE_COMMUNICATION_PLANS)
    data = {**data, "goal": str(data.get("goal") or "").strip()}
    for key in ("klass", "tier", "institution_kind"):
        data[key] = data.get(key) or ""
    errors = check(data, plan)
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            if plan is not None:  # two managers saving the plan at once: one after the other, lines and all
                plan = CommunicationPlan.objects.select_for_update().get(pk=plan.pk)
                if version is not None and int(version) != plan.version:
                    raise ConflictError(plan.version)
            before = snapshot(plan) if plan is not None else {}
            if plan is None:
                plan = CommunicationPlan(created_by=user)
            else:
                plan.version += 1
            for key in ("year", "klass", "tier", "institution_kind", "goal"):
                setattr(plan, key, data[key])
            plan.updated_at = timezone.now()
            plan.save()
            plan.lines.all().delete()
            CommunicationPlanLine.objects.bulk_create(
                CommunicationPlanLine(plan=plan, channel=line["channel"], minimum=line["minimum"],
                                      period=line["period"], note=str(line.get("note") or "").strip()[:200])
                for line in data["lines"]
            )  # fmt: skip
            action = AuditEntry.Action.UPDATE if before else AuditEntry.Action.CREATE
            audit.record(action, plan, user=user, changes=audit.diff(before, snapshot(plan)))
    except IntegrityError:  # the same plan saved at the same moment by another manager
        from django.utils.translation import gettext as _

        raise ValidationError({"klass": [_("There is already a plan for %(year)s for these customers (class, tier "
                                           "and type): change that one.") % {"year": data["year"]}]}) from None  # fmt: skip
    return plan


def delete_plan(user, plan: CommunicationPlan, *, version=None) -> None:
    """Delete a plan, audited. `version`: the one the page showed — a plan a colleague changed since (another
    version, or a garbled one) is refused with a ConflictError rather than deleted unseen; None (the API) deletes
    whatever version is current."""
    from pharmacrm.customers.services import ConflictError

    access.require(user, Cap.MANAGE_COMMUNICATION_PLANS)
    with transaction.atomic():
        current = CommunicationPlan.objects.select_for_update().filter(pk=plan.pk).first()
        if current is None:
            return  # deleted meanwhile (the form sent twice): nothing left to delete
        shown = str(version).strip() if version is not None else None
        if shown is not None and (not shown.isdecimal() or len(shown) > 9 or int(shown) != current.version):
            raise ConflictError(current.version)
        plan = current
        audit.record(AuditEntry.Action.DELETE, plan, user=user, changes=audit.diff(snapshot(plan), {}))
        plan.delete()
