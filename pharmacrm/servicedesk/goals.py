"""Service goals (服务目标, seed 000 §1.4 and ch. 8): a target per indicator of the service performance — the
resolution rate, the first-response and resolution times, the SLA met, CSAT, NPS, the complaints handled — for the
whole service desk, and per team where a team's own goal replaces the desk's for its figures (a hotline answers
within the hour, a technical team within a day); set by who configures the service desk (Cap.MANAGE_SERVICE). The
performance page, its export and its API judge each row's figure against its goal (met / missed); a figure without a
value or an indicator without a goal is not judged. docs/servicedesk-performance.md#service-goals."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext

from pharmacrm.core import access, audit
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.numbers import percent_text, typed_decimal
from pharmacrm.core.roles import Cap

from .models import ServiceGoal, ServiceGoalChange

A = AuditEntry.Action
AT_LEAST, AT_MOST = ">=", "<="


@dataclass(frozen=True)
class Indicator:
    name: str  # the Figures attribute (performance.Figures) it judges
    label: object
    direction: str  # AT_LEAST: the figure should reach the goal; AT_MOST: stay within it
    low: Decimal
    high: Decimal
    unit: str  # "%", "h" or ""


def _i(name, label, direction, low, high, unit) -> Indicator:
    return Indicator(name, label, direction, Decimal(low), Decimal(high), unit)


INDICATORS = {i.name: i for i in (
    _i("resolution_rate", gettext_lazy("Resolution rate"), AT_LEAST, "0", "100", "%"),
    _i("fr_median", gettext_lazy("First response, median (clock h)"), AT_MOST, "0.1", "10000", "h"),
    _i("fr_p90", gettext_lazy("First response, 90th percentile (clock h)"), AT_MOST, "0.1", "10000", "h"),
    _i("res_median", gettext_lazy("Resolution, median (clock h)"), AT_MOST, "0.1", "10000", "h"),
    _i("res_p90", gettext_lazy("Resolution, 90th percentile (clock h)"), AT_MOST, "0.1", "10000", "h"),
    _i("fr_sla", gettext_lazy("First response in SLA"), AT_LEAST, "0", "100", "%"),
    _i("res_sla", gettext_lazy("Resolution in SLA"), AT_LEAST, "0", "100", "%"),
    _i("csat", gettext_lazy("CSAT"), AT_LEAST, "1", "5", ""),
    _i("nps", gettext_lazy("NPS"), AT_LEAST, "-100", "100", ""),
    _i("complaint_rate", gettext_lazy("Complaints handled"), AT_LEAST, "0", "100", "%"),
    _i("accuracy", gettext_lazy("Accuracy (quality reviews)"), AT_LEAST, "0", "100", "%"),
)}  # fmt: skip


class GoalsConflict(Exception):
    """Someone changed these goals since the form (or the caller) loaded them: nothing was saved."""

    def __init__(self, names: list[str]):
        super().__init__(", ".join(names))
        self.names = names


def current(team: int | None = None) -> dict[str, Decimal]:
    """The goals set at one level: the whole desk's (team None) or one team's own: {indicator: target}."""
    return dict(ServiceGoal.objects.filter(team=team).values_list("indicator", "target"))


class Judge:
    """The goals each figure of a performance report is judged against, from one query: those in force at the end of
    the report's period (a goal raised in December leaves November judged as it was; goals set later do not judge
    earlier periods), and for the previous period's totals those in force at its end. The rows of a report per team
    by each team's goals; every other row, the totals and the chart by the goals of the report's team — the team it
    is filtered to, or the one team its reader sees (a lead of one team, an agent of one team) — and the desk's
    otherwise. A team's own goal replaces the desk's; where it has none, the desk's applies."""

    def __init__(self, changes: list[tuple], query=None, scope=None):
        period = getattr(query, "period", None)
        self.changes = changes  # (team, indicator, target or None, valid_from), oldest first
        self.by_team = _in_force(changes, period.end if period is not None else None)
        self.team = _report_team(query, scope)  # the team whose goals judge the page (an id), or None
        self.page = self.of(self.team)
        self.previous_page = self._of(_in_force(changes, period.start), self.team) if period is not None else self.page
        self.per_team = getattr(query, "group", "") == "team"
        now = _in_force(changes, None)
        # none of the page's goals in force in the period, though some are now (or, per team about no one team, some
        # team's): the page says that goals judge only the periods that end after they were set
        self.set_later = not self.page and not self.teams_own() and (
            bool(self._of(now, self.team)) or (self.per_team and self.team is None and bool(now)))

    @classmethod
    def loaded(cls, query=None, scope=None) -> Judge:
        changes = list(ServiceGoalChange.objects.order_by("valid_from", "id")
                       .values_list("team", "indicator", "target", "valid_from"))  # fmt: skip
        return cls(changes, query, scope)

    @property
    def team_has_own(self) -> bool:
        """Whether the page's goals are (partly) its team's own."""
        return self.team is not None and bool(self.by_team.get(self.team))

    def of(self, team: int | None) -> dict[str, Decimal]:
        return self._of(self.by_team, team)

    @staticmethod
    def _of(by_team: dict, team: int | None) -> dict[str, Decimal]:
        desk = by_team.get(None, {})
        return {**desk, **by_team.get(team, {})} if team is not None else dict(desk)

    def row(self, f) -> dict[str, Decimal]:
        """A row's goals: per team, its team's (the row without a team: the desk's); otherwise, and for the totals
        (key 0), the page's."""
        if self.per_team and f.key != 0:
            return self.of(f.key if isinstance(f.key, int) else None)
        return self.page

    def teams_own(self) -> bool:
        """Whether team rows may be judged otherwise than the totals (the page and the export tell the reader): per
        team, about no one team, and some team has goals of its own."""
        return self.per_team and self.team is None and any(team is not None for team in self.by_team)


def _in_force(changes: list[tuple], at) -> dict[int | None, dict[str, Decimal]]:
    """{team or None: {indicator: target}} as they stood just before `at` (None: now)."""
    by_team: dict[int | None, dict[str, Decimal]] = {}
    for team, name, target, since in changes:
        if at is not None and since >= at:
            break
        if target is None:
            by_team.get(team, {}).pop(name, None)
        else:
            by_team.setdefault(team, {})[name] = target
    return {team: goals for team, goals in by_team.items() if goals}


def unit_label(i: Indicator) -> str:
    """The unit as the reader reads it: "%", "h" (小时), or nothing."""
    return pgettext("unit of time: hours", "h") if i.unit == "h" else i.unit


def plain(value: Decimal) -> str:
    """100.00 → "100", 10.50 → "10.5", −0 → "0": as a goal is shown and audited."""
    return f"{(value + 0).normalize():f}"


def shown(name: str, target: Decimal | None) -> str:
    """A goal as the pages show it: "≥ 95%" (as a percentage is written everywhere, core.numbers.percent_text),
    "≤ 4 h", "≥ 4.5"; "" without one."""
    if target is None:
        return ""
    i = INDICATORS[name]
    if i.unit == "%":
        return f"{'≥' if i.direction == AT_LEAST else '≤'} {percent_text(target, exact=True)}"
    unit = unit_label(i)
    return f"{'≥' if i.direction == AT_LEAST else '≤'} {plain(target)}{' ' + unit if unit else ''}"


def met(name: str, value, target: Decimal | None) -> bool | None:
    """Whether a figure meets its goal; None when there is no goal or no figure to judge."""
    if target is None or value is None:
        return None
    value = Decimal(str(value))
    return value >= target if INDICATORS[name].direction == AT_LEAST else value <= target


def judge(figures, goals: dict[str, Decimal]) -> dict[str, bool]:
    """{indicator: met} for each indicator of `figures` (a performance.Figures) with a goal and a value."""
    out = {}
    for name, target in goals.items():
        verdict = met(name, getattr(figures, name), target)
        if verdict is not None:
            out[name] = verdict
    return out


def _report_team(query, scope) -> int | None:
    team = getattr(query, "team", None)
    if team is not None:
        return team.pk
    if scope is not None and not scope.everything:
        mine = scope.team_ids if scope.team_ids is not None else scope.own_team_ids
        if len(mine) == 1:
            return mine[0]
    return None


def _number(raw, unit: str | None = None) -> Decimal | None:
    """What a person types: "95", "95.5", "95 %", "4h", "1,000 h", "1 000", full-width digits; None when empty. A
    unit is taken only where it is the indicator's (`unit`: "%" or "h"; None: any), and never alone. The number as
    core.numbers reads every typed number (1.2万, 1e3, 1_000 are none)."""
    if raw is None:
        return None
    # the minus sign as typeset (−20, U+2212, as the goals' ranges are written) is the hyphen-minus
    text = unicodedata.normalize("NFKC", str(raw)).replace("\u2212", "-").strip()
    if not text:
        return None
    bare = text.rstrip("%hH小时 ").strip()
    suffix = text[len(bare):].replace(" ", "").lower()
    if suffix:
        kind = {"%": "%", "h": "h", "小时": "h"}.get(suffix)
        if kind is None or (unit is not None and kind != unit):
            raise ValueError(text)
    number = typed_decimal(bare) if bare else None
    if number is None:
        raise ValueError(text)
    return number + 0  # −0 is 0


def changed(sent: dict, loaded: dict) -> list[str]:
    """The indicators whose sent value differs from the one the form was loaded with (as numbers where both read as
    numbers: "95" and "95.00" are the same goal)."""
    out = []
    for name, value in sent.items():
        before = loaded.get(name, "")
        try:
            same = _number(value) == _number(before)
        except (ValueError, InvalidOperation):
            same = str(value or "").strip() == str(before or "").strip()
        if not same:
            out.append(name)
    return out


def clean(data: dict) -> dict[str, Decimal | None]:
    """The goals sent ({indicator: text or number, empty / None: no goal}); ValidationError naming each indicator and
    its reason, in the reader's language. Unknown indicators are refused by name."""
    errors: dict[str, list[str]] = {}
    out: dict[str, Decimal | None] = {}
    for name, raw in data.items():
        i = INDICATORS.get(name)
        if i is None:
            errors[name] = [_("No such indicator.")]
            continue
        try:
            value = _number(raw, i.unit)
        except (ValueError, InvalidOperation):
            errors[name] = [_("Enter a number, or leave it empty for no goal.")]
            continue
        if value is not None and not (i.low <= value <= i.high):
            errors[name] = [_("Between %(low)s and %(high)s.") % {"low": plain(i.low), "high": plain(i.high)}]
            continue
        if value is not None and value != value.quantize(Decimal("0.01")):
            errors[name] = [_("At most two decimal places.")]
            continue
        out[name] = value
    if errors:
        raise ValidationError(errors)
    return out


def save(user, data: dict, *, loaded: dict | None = None, source: str = "form", team=None, since=None) -> int:
    """Set the goals sent (an empty value removes one); the others stay. `team`: a team's own goals instead of the
    desk's (a Team; removing one leaves the desk's goal to apply). `loaded`: the values the form or the caller read,
    per indicator — one changed by someone else since answers GoalsConflict naming them, and nothing is saved. All or
    nothing; each change audited with before and after, and kept in the goals' history (ServiceGoalChange) in force
    from now (`since`: from an earlier moment — the demo's goals, in force for its past periods). Returns the number
    of goals changed."""
    access.require(user, Cap.MANAGE_SERVICE)
    values = clean(data)
    expected = {}
    if loaded is not None:
        try:
            expected = {k: _number(v) for k, v in loaded.items() if k in values}
        except (ValueError, InvalidOperation):
            expected = {k: object() for k in loaded if k in values}  # unreadable: taken as changed
    try:
        with transaction.atomic():
            return _apply(user, values, expected, source, team, since)
    except IntegrityError:  # two first goals for an indicator at once: the other one's was saved first
        raise GoalsConflict(sorted(values)) from None


def _apply(user, values: dict, expected: dict, source: str, team, since) -> int:
    rows = {g.indicator: g for g in ServiceGoal.objects.select_for_update().filter(team=team).order_by("indicator")}
    stale = sorted(k for k, was in expected.items() if was != (rows[k].target if k in rows else None))
    if stale:
        raise GoalsConflict(stale)
    changed, history, at = 0, [], since or timezone.now()
    if since is not None and ServiceGoalChange.objects.filter(team=team, indicator__in=list(values),
                                                             valid_from__gte=since).exists():  # fmt: skip
        # a change dated back before a later one would leave today's goals and their history telling two stories
        raise ValueError("goals can be dated back only before every change already kept")
    for name, value in values.items():
        row = rows.get(name)
        before = row.target if row is not None else None
        if before == value:
            continue
        changed += 1
        was, now = (None if before is None else plain(before)), (None if value is None else plain(value))
        history.append(ServiceGoalChange(indicator=name, team=team, target=value, valid_from=at, set_by=user))
        # the goal named by codes (its indicator, its team's id): the audit page names it in its reader's language
        which = {"indicator": name, **({"team": team.pk} if team is not None else {})}
        if value is None:
            audit.record(A.DELETE, row, user=user, changes={"target": [was, None]}, source=source, **which)
            row.delete()
        elif row is None:
            row = ServiceGoal.objects.create(indicator=name, team=team, target=value, updated_by=user, updated_at=at)
            made = {"indicator": [None, name], "target": [None, now]}
            if team is not None:
                made["team"] = [None, team.pk]
            audit.record(A.CREATE, row, user=user, changes=made, source=source)
        else:
            row.target, row.updated_by, row.updated_at = value, user, at
            row.save(update_fields=["target", "updated_by", "updated_at"])
            audit.record(A.UPDATE, row, user=user, changes={"target": [was, now]}, source=source, **which)
    ServiceGoalChange.objects.bulk_create(history)
    return changed
