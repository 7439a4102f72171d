"""The effect of each communication channel (沟通渠道效果评估, seed 000 4.1: "建议至少提供三种以上沟通渠道，并定期
评估渠道效果"; 4.1.2: 定期评估沟通策略的效果，如客户满意度、转化率、复购率).

For a period (a month, quarter or year, China's calendar) and the customers of a scope, each interaction channel
(visit, phone, WeChat, e-mail, meeting, other) is measured by what it reached and by what followed:

- *contacts*: the interactions through it in the period; *customers reached*: the distinct customers they were
  with — a hospital counts for its departments and its doctors (the institution an interaction is filed under,
  lifted to its outermost institution, as the Customer 360 page and the communication plans count a hospital's
  contacts); *people reached*: the distinct people named;
- for each customer reached, its *first contact* through the channel in the period starts a window of N days
  (7 to 90, 30 by default; the contact's day is its first). The customer is *judged* once the window has ended
  (before today); a customer contacted in the last N days is counted as *window still open* and left out of the
  outcome figures, so that a recent visit does not count as one that led to nothing;
- *ordered*: the judged customers with an order line dated in their window (the ERP's order date), and the
  *conversion* over the judged customers; *purchases before / after*: the order amounts of the N days before the
  first contact and of the window, summed over the judged customers, and the change between them;
- *opportunities*: the judged customers with an opportunity opened or moved forward (to a later stage, or won) in
  their window.

A customer reached through two channels counts for each (the table does not share one order between channels);
the *all channels* row counts it once, from its first contact through any channel. What follows a contact is not
proven to be caused by it: the figures compare channels, they do not attribute sales. Nothing is stored: the
figures are read from the interactions, the order lines and the opportunities' stage changes each time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count, Min, Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from pharmacrm.core import access
from pharmacrm.core.roles import Cap
from pharmacrm.customers.models import Institution
from pharmacrm.sales.pipeline import scope_for as pipeline_scope
from pharmacrm.servicedesk.performance import Period

from .models import Interaction, InteractionChannel

WINDOWS = (7, 14, 30, 60, 90)
DEFAULT_WINDOW = 30
SCOPES = ("all", "teams", "mine")
# the seed's "至少提供三种以上沟通渠道"
MIN_CHANNELS = 3


def may_see(user) -> bool:
    """Who reads the figures: those who see customers, interactions and purchases (sales, key-account managers,
    managers, analysts, auditors); the service desk's agents and experts measure their tickets' channels on the
    service performance page instead."""
    return all(access.can(user, cap) for cap in (Cap.VIEW_CUSTOMERS, Cap.VIEW_INTERACTIONS, Cap.VIEW_PURCHASES))


def scope_choices() -> list[tuple[str, str]]:
    return [("all", _("All I may see")), ("teams", _("Mine and my teams'")), ("mine", _("Mine"))]


def default_period(window: int, today: dt.date | None = None) -> Period:
    """The latest month whose contacts have all had their window: the figures of a month still open would change."""
    today = today or timezone.localdate()
    period = Period("month", today.year, today.month)
    while final_on(period, window) > today:
        period = period.previous
    return period


def final_on(period: Period, window: int) -> dt.date:
    """The day the period's figures stop changing: its last day's contacts are judged (their window has ended)."""
    return period.end.date() + dt.timedelta(days=window - 1)


@dataclass(frozen=True)
class Query:
    period: Period
    window: int = DEFAULT_WINDOW
    scope: str = "all"


@dataclass
class Figures:
    """One channel's figures (channel "" : all channels together)."""

    channel: str
    label: str
    contacts: int = 0
    customers: int = 0
    people: int = 0
    judged: int = 0
    open: int = 0
    ordered: int = 0
    advanced: int = 0
    before_fen: int = 0
    after_fen: int = 0
    person_only: int = 0  # contacts with a person of no institution
    share: float | None = None  # of all contacts, %
    previous_conversion: float | None = None

    @property
    def conversion(self) -> float | None:
        return round(100 * self.ordered / self.judged, 1) if self.judged else None

    @property
    def advance_rate(self) -> float | None:
        return round(100 * self.advanced / self.judged, 1) if self.judged else None

    @property
    def change(self) -> float | None:
        """Purchases after against before, %: None when there was nothing before to compare with."""
        if not self.judged or not self.before_fen:
            return None
        return round(100 * (self.after_fen - self.before_fen) / self.before_fen, 1)

    @property
    def per_customer(self) -> float | None:
        """The contacts with a customer over the customers (a contact with a person of no institution has none)."""
        return round((self.contacts - self.person_only) / self.customers, 1) if self.customers else None

    @property
    def conversion_change(self) -> float | None:
        """Percentage points against the period before."""
        if self.conversion is None or self.previous_conversion is None:
            return None
        return round(self.conversion - self.previous_conversion, 1)


@dataclass
class Report:
    query: Query
    today: dt.date
    rows: list[Figures]
    total: Figures
    channels_used: int
    person_only: int = 0  # contacts with a person of no institution: counted as contacts, no customer
    notes: list[str] = field(default_factory=list)

    @property
    def few_channels(self) -> bool:
        return self.total.contacts > 0 and self.channels_used < MIN_CHANNELS

    @property
    def complete(self) -> bool:
        """Every window of the period has ended: the figures will not change (unless orders arrive late)."""
        return self.total.open == 0


def institutions(user, scope: str):
    """The customers of the scope: all the user may see, or of those the ones the user (and their teams) own, with
    their departments (a hospital's contacts include its departments')."""
    qs = access.institutions_for(user, Institution.objects.all())
    if scope not in ("mine", "teams"):
        return qs
    own = Q(owner=user) | Q(parent__owner=user) | Q(parent__parent__owner=user)  # a hospital with its departments
    if scope == "teams":
        teams = user.teams.all()
        own |= Q(team__in=teams) | Q(parent__team__in=teams) | Q(parent__parent__team__in=teams)
    return qs.filter(own)


def _within(user, query: Query) -> Q:
    """The interactions of the scope's customers."""
    if query.scope == "all" and access.institution_scope_q(user) is None:
        return Q()  # a role that sees every customer: no semi-join over 100,000 institutions
    within = Q(institution_id__in=institutions(user, query.scope).values("pk"))
    if query.scope == "all":  # a person of no institution (a retired expert) is nobody's customer: all only
        within |= Q(institution__isnull=True, person_id__in=access.people_for(user).values("pk"))
    return within


class _Sql:
    """The few expressions the two databases write differently: a Beijing day of a timestamp, a day plus or minus
    a number of days, a day's month. China keeps no daylight saving time: Beijing is UTC+8 all year."""

    def __init__(self, vendor: str):
        self.pg = vendor == "postgresql"

    def day(self, column: str) -> str:
        return f"({column} AT TIME ZONE 'Asia/Shanghai')::date" if self.pg else f"date({column}, '+8 hours')"

    def plus(self, day: str, days: int) -> str:
        return f"({day} + {int(days)})" if self.pg else f"date({day}, '{int(days):+d} days')"

    def month(self, day: str) -> str:
        return f"date_trunc('month', {day})::date" if self.pg else f"date({day}, 'start of month')"

    def start(self, day: str) -> str:
        """The moment a Beijing day begins, as the timestamps are stored (UTC text on SQLite)."""
        if self.pg:
            return f"({day}::timestamp AT TIME ZONE 'Asia/Shanghai')"
        return f"datetime({day}, '-8 hours')"

    def param(self, day: dt.date):
        return day if self.pg else day.isoformat()


# an opportunity's stages in their order: a move is forward when it reaches a later one (creating one: from "")
_RANK = ("CASE {} WHEN 'lead' THEN 0 WHEN 'needs' THEN 1 WHEN 'proposal' THEN 2 WHEN 'negotiation' THEN 3 "
         "WHEN 'won' THEN 4 ELSE -1 END")  # fmt: skip


def _parts(user, query: Query, period: Period):
    """What both statements share: the anchors' query (each customer's first contact per channel in the period, a
    Beijing day; the customer is its outermost institution), the visible institutions' query for a user who does
    not see every customer, and the condition on the opportunities of the user's pipeline."""
    sql = _Sql(connection.vendor)
    contacts = (
        Interaction.objects.filter(_within(user, query), received_at__gte=period.start, received_at__lt=period.end,
                                   institution__isnull=False)
        .order_by()
        .annotate(customer=Coalesce("institution__parent__parent_id", "institution__parent_id", "institution_id"),
                  day=RawSQL(sql.day(f'"{Interaction._meta.db_table}"."received_at"'), ()))
        .values("channel", "customer").annotate(first=Min("day")).values_list("channel", "customer", "first")
    )  # fmt: skip
    contacts_sql, params = contacts.query.sql_with_params()
    # of the customer's institutions, only those the user may see: a rep who owns a department of a hospital outside
    # the territory counts that department's purchases, never the hospital's (as sales.services.lines_for)
    visible, visible_params = "", ()
    if access.institution_scope_q(user) is not None:
        visible, visible_params = access.institutions_for(user).values("pk").query.sql_with_params()
    try:
        pipeline = pipeline_scope(user)
    except PermissionDenied:
        pipeline = None
    if pipeline is None:
        mine = "AND 1 = 0"  # no opportunity to see
    elif pipeline.everything:
        mine = ""
    else:  # a rep's or key-account manager's own and their teams' opportunities (ids: integers, written out)
        teams = ",".join(str(int(t)) for t in pipeline.team_ids or ()) or "NULL"
        mine = f"AND (op.owner_id = {int(pipeline.user.pk)} OR op.team_id IN ({teams}))"
    return sql, contacts_sql, params, visible, visible_params, mine


def _tables() -> dict[str, str]:
    from pharmacrm.sales.models import Opportunity, OpportunityMove, OrderLine

    return {"inst": Institution._meta.db_table, "line": OrderLine._meta.db_table,
            "move": OpportunityMove._meta.db_table, "opp": Opportunity._meta.db_table}  # fmt: skip


def _outcomes(user, query: Query, period: Period, today: dt.date, *, conversion_only: bool = False) -> dict[str, tuple]:
    """Per channel ('' for all channels): (customers, judged, ordered, advanced, before_fen, after_fen) — one query.
    `conversion_only` (the period before's, shown beside this one's conversion): the opportunities are not looked
    up (and, on SQLite, the amounts).

    Each judged anchor (its window ended before today) is matched with the order lines of the customer's
    institutions (itself and its departments, two levels, those the user may see) in its window and the window
    before, and with the stage changes of their opportunities in its window. The two databases get the statement
    each runs best: PostgreSQL joins sets (hash joins: 2.2 s where per-customer look-ups took 8 s at 48,000
    customers), SQLite looks each customer up through the indexes (4.3 s where the joins took 5.7 s) — the same
    figures (tests run both on their database; the benchmark compared them)."""
    sql, contacts_sql, params, visible, visible_params, mine = _parts(user, query, period)
    w = int(query.window)
    t = _tables()
    last_judged = today - dt.timedelta(days=w)  # judged: the window's last day is before today
    forward = (f"m.from_stage <> 'lost' AND m.to_stage <> 'lost' "
               f"AND {_RANK.format('m.to_stage')} > {_RANK.format('m.from_stage')}")  # fmt: skip
    anchors = f"""
    WITH a0(channel, customer, first) AS ({contacts_sql}),
    anchors(channel, customer, first) AS (
        SELECT channel, customer, first FROM a0
        UNION ALL SELECT '', customer, MIN(first) FROM a0 GROUP BY customer)"""
    if sql.pg:
        text, args = _joined(sql, anchors, t, w, visible, mine, forward, period, conversion_only)
        args = (*params, sql.param(last_judged), *visible_params, *args)
    else:
        text = _looked_up(sql, anchors, t, w, visible, mine, forward, conversion_only)
        # the parameters in the text's order: the contacts', the visible institutions' in each look-up, the day
        uses = text.count(visible) if visible else 0
        args = (*params, *visible_params * uses, sql.param(last_judged))
    out: dict[str, list[int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(text, args)
        for channel, *values in cursor.fetchall():
            row = out.setdefault(channel, [0] * 6)
            for i, v in enumerate(values):
                row[i] += int(v or 0)
    return {channel: tuple(row) for channel, row in out.items()}


_TOTALS = """
    SELECT a.channel, COUNT(*), 0, 0, 0, 0, 0 FROM anchors a GROUP BY a.channel
    UNION ALL"""


def _joined(sql: _Sql, anchors: str, t: dict, w: int, visible: str, mine: str, forward: str, period: Period,
            conversion_only: bool) -> tuple[str, tuple]:
    """PostgreSQL's statement: the judged anchors joined with the order lines of every customer reached over the
    period's span (read once, through the index by customer and month), and with the forward stage changes."""
    seen = f"WHERE institution IN ({visible})" if visible else ""
    start, end = period.start.date() - dt.timedelta(days=w), period.end.date() + dt.timedelta(days=w)
    advanced = "SELECT channel, customer FROM j WHERE 1 = 0" if conversion_only else f"""
        SELECT DISTINCT j.channel, j.customer FROM j JOIN fam f ON f.customer = j.customer
        JOIN {t["opp"]} op ON op.institution_id = f.institution JOIN {t["move"]} m ON m.opportunity_id = op.id
        WHERE m.at >= {sql.start("j.first")} AND m.at < {sql.start(sql.plus("j.first", w))} {mine} AND {forward}"""
    text = f"""{anchors},
    j(channel, customer, first) AS (SELECT channel, customer, first FROM anchors WHERE first <= %s),
    reached(customer) AS (SELECT DISTINCT customer FROM j),
    fam0(customer, institution) AS (
        SELECT customer, customer FROM reached
        UNION ALL SELECT r.customer, d.id FROM reached r JOIN {t["inst"]} d ON d.parent_id = r.customer
        UNION ALL SELECT r.customer, dd.id FROM reached r JOIN {t["inst"]} d ON d.parent_id = r.customer
                  JOIN {t["inst"]} dd ON dd.parent_id = d.id),
    fam(customer, institution) AS (SELECT customer, institution FROM fam0 {seen}),
    ol(customer, day, fen) AS (
        SELECT f.customer, o.order_date, o.amount_fen FROM fam f JOIN {t["line"]} o ON o.institution_id = f.institution
        AND o.month >= %s AND o.month < %s AND o.order_date >= %s AND o.order_date < %s),
    sums(channel, customer, bought, before_fen, after_fen) AS (
        SELECT j.channel, j.customer,
               MAX(CASE WHEN ol.day >= j.first AND ol.fen > 0 THEN 1 ELSE 0 END),
               SUM(CASE WHEN ol.day < j.first THEN ol.fen ELSE 0 END),
               SUM(CASE WHEN ol.day >= j.first THEN ol.fen ELSE 0 END)
        FROM j JOIN ol ON ol.customer = j.customer AND ol.day >= {sql.plus("j.first", -w)}
                       AND ol.day < {sql.plus("j.first", w)}
        GROUP BY j.channel, j.customer),
    adv(channel, customer) AS ({advanced}){_TOTALS}
    SELECT j.channel, 0, COUNT(*), COALESCE(SUM(s.bought), 0), COUNT(adv.customer), COALESCE(SUM(s.before_fen), 0),
           COALESCE(SUM(s.after_fen), 0)
    FROM j LEFT JOIN sums s ON s.channel = j.channel AND s.customer = j.customer
    LEFT JOIN adv ON adv.channel = j.channel AND adv.customer = j.customer
    GROUP BY j.channel"""
    return text, (sql.param(start.replace(day=1)), sql.param(end), sql.param(start), sql.param(end))


def _looked_up(sql: _Sql, anchors: str, t: dict, w: int, visible: str, mine: str, forward: str,
               conversion_only: bool) -> str:
    """SQLite's statement: for each judged anchor, its customer's order lines looked up through their index by
    customer and month, and its opportunities through theirs by customer."""
    family = (f"SELECT a.customer AS id UNION ALL SELECT d.id FROM {t['inst']} d WHERE d.parent_id = a.customer "
              f"UNION ALL SELECT dd.id FROM {t['inst']} dd JOIN {t['inst']} d ON dd.parent_id = d.id "
              f"WHERE d.parent_id = a.customer")  # fmt: skip
    if visible:
        family = f"SELECT f.id FROM ({family}) f WHERE f.id IN ({visible})"
    since, until = sql.plus("a.first", -w), sql.plus("a.first", w)

    def lines(start: str, end: str, what: str, where: str = "") -> str:
        return (f"({what} FROM ({family}) fam JOIN {t['line']} o ON o.institution_id = fam.id "
                f"AND o.month >= {sql.month(start)} AND o.month < {end} "
                f"AND o.order_date >= {start} AND o.order_date < {end}{where})")  # fmt: skip

    # ordered: a line of a positive amount (a return or a credit note is no purchase, as the rollups count them)
    bought = f"CASE WHEN EXISTS {lines('a.first', until, 'SELECT 1', ' AND o.amount_fen > 0')} THEN 1 ELSE 0 END"
    advanced = (f"CASE WHEN EXISTS (SELECT 1 FROM ({family}) fam JOIN {t['opp']} op ON op.institution_id = fam.id "
                f"JOIN {t['move']} m ON m.opportunity_id = op.id WHERE m.at >= {sql.start('a.first')} "
                f"AND m.at < {sql.start(until)} {mine} AND {forward}) THEN 1 ELSE 0 END")  # fmt: skip
    return f"""{anchors},
    judged(channel, bought, advanced, before_fen, after_fen) AS (
        SELECT a.channel, {bought}, {"0" if conversion_only else advanced},
               {"0" if conversion_only else lines(since, "a.first", "SELECT SUM(o.amount_fen)")},
               {"0" if conversion_only else lines("a.first", until, "SELECT SUM(o.amount_fen)")}
        FROM anchors a WHERE a.first <= %s){_TOTALS}
    SELECT j.channel, 0, COUNT(*), SUM(j.bought), SUM(j.advanced), COALESCE(SUM(j.before_fen), 0),
           COALESCE(SUM(j.after_fen), 0)
    FROM judged j GROUP BY j.channel"""


def _reach(user, query: Query, period: Period) -> tuple[dict[str, tuple[int, int, int]], int, int]:
    """Per channel (contacts, people reached, contacts with a person of no institution); the people reached through
    any channel; the contacts with a person of no institution — two queries."""
    qs = Interaction.objects.filter(_within(user, query), received_at__gte=period.start, received_at__lt=period.end)
    alone = Q(institution__isnull=True)
    per = {c: (n, p, a) for c, n, p, a in qs.order_by().values_list("channel").annotate(
        n=Count("id"), p=Count("person_id", distinct=True), a=Count("id", filter=alone))}  # fmt: skip
    both = qs.aggregate(p=Count("person_id", distinct=True), alone=Count("id", filter=alone))
    return per, both["p"], both["alone"]


def measure(user, query: Query, period: Period, today: dt.date, *, conversion_only: bool = False) -> Report:
    """The figures of every channel, and of all channels together, for one period: three queries."""
    labels = dict(InteractionChannel.choices)
    rows = {c: Figures(c, str(labels[c])) for c in InteractionChannel.values}
    total = Figures("", _("All channels"))
    reach, total.people, person_only = _reach(user, query, period)
    outcomes = _outcomes(user, query, period, today, conversion_only=conversion_only)
    for fig in rows.values():
        fig.contacts, fig.people, fig.person_only = reach.get(fig.channel, (0, 0, 0))
    total.contacts, total.person_only = sum(r.contacts for r in rows.values()), person_only
    for fig in (*rows.values(), total):
        customers, fig.judged, fig.ordered, fig.advanced, fig.before_fen, fig.after_fen = outcomes.get(
            fig.channel, (0, 0, 0, 0, 0, 0))
        fig.customers, fig.open = customers, customers - fig.judged
        fig.share = round(100 * fig.contacts / total.contacts, 1) if total.contacts else None
    used = sum(1 for r in rows.values() if r.contacts)
    return Report(query, today, list(rows.values()), total, used, person_only)


def report(user, query: Query, today: dt.date | None = None) -> Report:
    """The period's figures, each channel's conversion beside the one of the period before."""
    today = today or timezone.localdate()
    rep = measure(user, query, query.period, today)
    before = measure(user, query, query.period.previous, today, conversion_only=True)
    previous = {r.channel: r.conversion for r in before.rows}
    for row in rep.rows:
        row.previous_conversion = previous.get(row.channel)
    rep.total.previous_conversion = before.total.conversion
    return rep
