"""KPI appraisal of reps, key-account managers and teams (销售团队绩效考核, seed 000 §2.3): the schemes managers set
(考核方案: the period, the roles appraised, weighted indicators and grade thresholds), the results of a period
computed from the data the product already keeps, and who may see them. docs/sales-kpi.md says it in words.

A person's indicators over a period (Beijing's calendar), each about the customers the person owns *now* — the
attribution of the sales targets (targets.py):

- attainment: the period's actual over its target, in percent (targets.py: the rollups, target_of);
- growth: the actual against the same period a year earlier, in percent;
- csat, nps: the revisits and survey answers *answered in the period* about the person's customers (a ticket's
  customer, or the campaign survey's); CSAT the average score 1–5, NPS promoters − detractors over the answers;
- follow_up: the person's stage tasks due in the period (open or done; skipped and stage-left ones are decisions,
  not lapses) and how many were done by their due day, in percent;
- teamwork: the resolution SLA clocks decided (met or missed) of the tickets received in the period about the
  person's customers — the service desk's work for them — met, in percent;
- new_customers: the person's customers whose first purchase month falls in the period.

Points: target → 100, floor → 0, linear between, at least 0 and at most the cap. An indicator without data (no
target, no survey answered…) is not counted: its weight is shared among the others in proportion, so the
contributions (effective weight × points ÷ 100, to the fen) still add up to the score. Grade from the scheme's
thresholds. A fixed number of queries per computation, whatever the number of people."""

from __future__ import annotations

import datetime as dt
import hashlib
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import Count, F, Min, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext

from pharmacrm.core import access, audit
from pharmacrm.core.models import AuditEntry, Team, User
from pharmacrm.core.numbers import PERCENT_MARKS, typed_decimal, typed_share
from pharmacrm.core.roles import Cap, Role
from pharmacrm.customers.services import ConflictError
from pharmacrm.servicedesk.performance import Period, current_period, parse_period  # noqa: F401

from .models import Appraisal, AppraisalScheme, MonthlyRollup, SalesTarget
from .services import half_up

A = AuditEntry.Action
ROLES = {"rep": Role.REP, "kam": Role.KAM}


@dataclass(frozen=True)
class Indicator:
    code: str
    label: object
    unit: str  # "%", "" (a plain number), "n" (a count)
    places: str  # the value's rounding
    target: Decimal
    floor: Decimal
    cap: Decimal
    weight: int  # in the default scheme
    link: str  # the URL name of the page the figures come from ("" none)


INDICATORS = {
    i.code: i
    for i in (
        Indicator("attainment", gettext_lazy("Sales attainment"), "%", "0.1", Decimal(100), Decimal(60),
                  Decimal(120), 40, "sales:targets"),
        Indicator("growth", gettext_lazy("Sales growth on the same period last year"), "%", "0.1", Decimal(10),
                  Decimal(-20), Decimal(120), 15, "sales:targets"),
        Indicator("csat", gettext_lazy("Customer satisfaction (CSAT, 1–5)"), "", "0.01", Decimal("4.5"), Decimal(3),
                  Decimal(110), 15, "servicedesk:performance"),
        Indicator("nps", gettext_lazy("Net promoter score (NPS)"), "", "1", Decimal(50), Decimal(0), Decimal(120), 0,
                  "servicedesk:performance"),
        Indicator("follow_up", gettext_lazy("Stage tasks done on time"), "%", "0.1", Decimal(90), Decimal(50),
                  Decimal(100), 10, "engagement:stage-tasks"),
        Indicator("teamwork", gettext_lazy("Customers' tickets resolved within SLA"), "%", "0.1", Decimal(90),
                  Decimal(60), Decimal(100), 10, "servicedesk:performance"),
        Indicator("new_customers", gettext_lazy("New customers won"), "n", "1", Decimal(2), Decimal(0), Decimal(150),
                  10, ""),
    )
}  # fmt: skip

# the grade thresholds as the scheme form labels them
THRESHOLD_LABELS = {"excellent": gettext_lazy("Excellent from"), "good": gettext_lazy("Good from"),
                    "passing": gettext_lazy("Pass from")}  # fmt: skip
GRADES = {
    "excellent": gettext_lazy("Excellent"),
    "good": gettext_lazy("Good"),
    "pass": gettext_lazy("Pass"),
    "improve": gettext_lazy("Needs improvement"),
}


# the codes an audit entry of a scheme names, so that the audit viewer shows them in the reader's language
IndicatorCode = models.TextChoices("IndicatorCode", [(c.upper(), (c, i.label)) for c, i in INDICATORS.items()])
GradeCode = models.TextChoices("GradeCode", [(c.upper(), (c, label)) for c, label in GRADES.items()])


def _audited(field: str, value):
    """A scheme's field as its audit entry keeps it: the indicators and the bonus coefficients as records whose keys the
    audit viewer labels (the indicator, its goal …) rather than the stored JSON's short keys."""
    if field == "indicators" and isinstance(value, list):
        return [{"indicator": i.get("code"), "weight": i.get("weight"), "goal": i.get("target"), "floor": i.get("floor"),
                 "cap": i.get("cap")} for i in value]  # fmt: skip
    if field == "bonus" and isinstance(value, dict):
        return [{"grade": g, "coefficient": v} for g, v in value.items()]
    return value


def grade_label(code: str) -> str:
    return str(GRADES[code]) if code in GRADES else _("No data")


# --- who sees what -------------------------------------------------------------------------------------


@dataclass
class Scope:
    everything: bool = False
    team_ids: list[int] | None = None  # a team lead: these teams' members (now, or counted in their results), themselves
    own: User | None = None


def scope_for(user) -> Scope:
    """Managers, leadership and auditors: every result; a rep or key-account manager who leads teams: the members
    of those teams (a person in several teams: in each of them) and their own; else their own. PermissionDenied for
    anyone else."""
    if access.can(user, Cap.VIEW_ALL_APPRAISALS):
        return Scope(everything=True)
    if access.can(user, Cap.VIEW_OWN_APPRAISAL):
        led = list(Team.objects.filter(lead=user).order_by("name").values_list("id", flat=True))
        return Scope(team_ids=led or None, own=user)
    raise PermissionDenied(_("The KPI appraisal is for the people appraised, their team leads and managers."))


def may_see(user) -> bool:
    try:
        scope_for(user)
    except PermissionDenied:
        return False
    return True


def may_manage(user) -> bool:
    return access.can(user, Cap.MANAGE_APPRAISALS)


def in_team(qs, team_id: int):
    """The results counted in this team's ranking: those of everyone who was in it when they were computed — a person
    in two teams is in both rankings with the one result they have for the period."""
    return qs.filter(pk__in=Appraisal.teams.through.objects.filter(team_id=team_id).values("appraisal_id"))


def results_for(user, qs=None, scope: Scope | None = None):
    scope = scope or scope_for(user)
    qs = Appraisal.objects.all() if qs is None else qs
    if scope.everything:
        return qs
    if scope.team_ids:
        members = User.objects.filter(teams__in=scope.team_ids).values("pk")
        counted = Appraisal.teams.through.objects.filter(team_id__in=scope.team_ids).values("appraisal_id")
        # the members of their teams now, and the results their teams' rankings count (a member since moved on)
        return qs.filter(Q(user_id__in=members) | Q(pk__in=counted) | Q(user=user))
    return qs.filter(user=scope.own)


# --- schemes -------------------------------------------------------------------------------------------


def _decimal(raw, places: int = 2, *, name: str = "", marks: tuple[str, ...] = (), share: bool = False) -> Decimal:
    """A scheme's number as typed (core.numbers): ８７．５ or －２０ from an input method in full-width mode, −20 as
    typeset, 1,000 or 1 000, the `marks` of the field's unit (90% of a figure in percent) and, of a `share` (a bonus
    coefficient), a percentage of it (120% is 1.2). 1_000, 1e3 and Arabic-Indic ٩٠ are refused as the order import
    refuses them, naming the field (`name`)."""
    if isinstance(raw, bool):
        raise ValidationError(_not_a_number(name, marks, share, places))
    if isinstance(raw, (int, Decimal)):
        value = Decimal(raw)
    else:
        text = unicodedata.normalize("NFKC", str(raw if raw is not None else "")).strip()
        if not text:
            raise ValidationError(_("This field is required."))
        value = typed_share(text) if share else typed_decimal(text, *marks)
        if value is None:
            raise ValidationError(_not_a_number(name, marks, share, places))
    # the size first: quantizing a huge number fails (InvalidOperation)
    if not value.is_finite() or abs(value) >= 10**6 or value != value.quantize(Decimal(1).scaleb(-places)):
        raise ValidationError(_("a number with at most %(places)s decimal places") % {"places": places})
    return value + 0  # −0 is 0


def _not_a_number(name: str, marks: tuple[str, ...], share: bool, places: int) -> str:
    """What a field that cannot be read says: its name and what it takes, as the pages' number fields say it
    (core.forms.TypedNumberField)."""
    if share:
        message = _("%(name)s: enter a number such as 1.2, or a percentage such as 120%%.")
    elif PERCENT_MARKS[0] in marks:
        message = (_("%(name)s: enter a whole percentage, such as 30 or 30%%.") if places == 0
                   else _("%(name)s: enter a percentage, such as 30, 12.5 or 30%%."))  # fmt: skip
    else:
        message = _("%(name)s: enter a number, such as 1234.5 or 1,234.50.")
    return message % {"name": name}


def column_label(what: str) -> str:
    """An indicator's column as the scheme form heads it."""
    return {"weight": _("Weight"), "target": pgettext("appraisal", "Target"), "floor": pgettext("appraisal", "Floor"),
            "cap": pgettext("appraisal", "Cap")}[what]  # fmt: skip


def default_indicators() -> list[dict]:
    return [
        {"code": i.code, "weight": i.weight, "target": str(i.target), "floor": str(i.floor), "cap": str(i.cap)}
        for i in INDICATORS.values() if i.weight
    ]  # fmt: skip


def clean_scheme(data: dict) -> dict:
    """The scheme's fields from `data` (name, period_kind, roles, indicators [{code, weight, target, floor, cap}],
    excellent, good, passing, bonus {grade: coefficient}, active), or ValidationError {field: [reason]} — the
    weights not adding up to 100 named on `weights`, an indicator's bad value on `<code>_<what>`."""
    errors: dict[str, list[str]] = {}
    out: dict = {}
    name = str(data.get("name") or "").strip()
    if not name:
        errors["name"] = [_("Give the scheme a name.")]
    elif len(name) > 120:
        errors["name"] = [_("At most 120 characters.")]
    out["name"] = name
    kind = data.get("period_kind") or ""
    if kind not in AppraisalScheme.Kind.values:
        errors["period_kind"] = [_("Choose a month, a quarter or a year.")]
    out["period_kind"] = kind
    roles = data.get("roles") or []
    if isinstance(roles, str):
        roles = [roles]
    if not roles or any(r not in ROLES for r in roles):
        errors["roles"] = [
            _("Choose the roles appraised: sales representatives, key-account managers or both.")
        ]
    out["roles"] = sorted(set(roles) & set(ROLES))
    indicators, seen = [], set()
    for item in data.get("indicators") or []:
        code = (item or {}).get("code")
        if code not in INDICATORS or code in seen:
            errors.setdefault("indicators", []).append(
                _("Unknown or repeated indicator: %(code)s") % {"code": code}
            )
            continue
        seen.add(code)
        row = {"code": code}
        indicator = INDICATORS[code]
        for what in ("weight", "target", "floor", "cap"):
            # the weights add up to 100 (%), the cap is in points of the target's 100 (封顶 120%): 40% is 40, 120%
            # is 120; the target and the floor are in the indicator's unit (90% of a rate, not of a CSAT of 4.5)
            in_percent = what in ("weight", "cap") or indicator.unit == "%"
            try:
                value = _decimal(item.get(what), 0 if what == "weight" else 2, name=f"{indicator.label} {column_label(what)}",
                                 marks=PERCENT_MARKS if in_percent else ())  # fmt: skip
            except ValidationError as e:
                errors.setdefault(f"{code}_{what}", []).extend(e.messages)
                continue
            row[what] = value
        if "weight" in row and not 0 <= row["weight"] <= 100:
            errors.setdefault(f"{code}_weight", []).append(_("a whole number from 0 to 100"))
        if "target" in row and "floor" in row and row["target"] == row["floor"]:
            errors.setdefault(f"{code}_floor", []).append(_("the floor must differ from the target"))
        if "cap" in row and not 100 <= row["cap"] <= 200:
            errors.setdefault(f"{code}_cap", []).append(_("the cap is from 100 to 200 points"))
        if len(row) == 5 and row["weight"]:
            indicators.append({"code": code, "weight": int(row["weight"]), "target": str(row["target"]),
                               "floor": str(row["floor"]), "cap": str(row["cap"])})  # fmt: skip
    total = sum(i["weight"] for i in indicators)
    if not any(k.endswith("_weight") for k in errors) and total != 100:
        errors["weights"] = [
            _("The weights add up to %(total)s; they must add up to 100.") % {"total": total}
        ]
    out["indicators"] = indicators
    for field in ("excellent", "good", "passing"):
        try:
            out[field] = _decimal(data.get(field), 1, name=str(THRESHOLD_LABELS[field]))
        except ValidationError as e:
            errors[field] = e.messages
    if not any(f in errors for f in ("excellent", "good", "passing")) and not (
        0 < out["passing"] < out["good"] < out["excellent"] <= 200
    ):
        errors["passing"] = [_("The thresholds must rise: pass < good < excellent (at most 200).")]
    bonus = {}
    for grade, raw in (data.get("bonus") or {}).items():
        if grade not in GRADES or raw in (None, ""):
            continue
        try:
            value = _decimal(raw, 2, share=True, name=_("Bonus coefficient: %(label)s") % {"label": GRADES[grade]})
            if not 0 <= value < 10:
                raise ValidationError(_("from 0 to 9.99"))
        except ValidationError as e:
            errors[f"bonus_{grade}"] = e.messages
            continue
        bonus[grade] = str(value)
    out["bonus"] = bonus
    out["active"] = bool(data.get("active", True))
    if errors:
        raise ValidationError(errors)
    return out


SCHEME_FIELDS = (
    "name",
    "period_kind",
    "roles",
    "indicators",
    "excellent",
    "good",
    "passing",
    "bonus",
    "active",
)


def save_scheme(user, data: dict, scheme: AppraisalScheme | None = None, version: int | None = None):
    """Create or change a scheme (managers); audited with the fields before and after. ConflictError when someone
    saved it since `version` was loaded."""
    if not may_manage(user):
        raise PermissionDenied(_("You do not have permission to do this."))
    cleaned = clean_scheme(data)
    clash = AppraisalScheme.objects.filter(name=cleaned["name"])
    if scheme is not None:
        clash = clash.exclude(pk=scheme.pk)
    if clash.exists():
        raise ValidationError({"name": [_("An appraisal scheme named “%(name)s” exists already: choose another "
                                          "name.") % {"name": cleaned["name"]}]})  # fmt: skip
    with transaction.atomic():
        if scheme is None:
            scheme = AppraisalScheme(**cleaned, updated_by=user)
            scheme.save()
            audit.record(
                A.CREATE, scheme, user=user, changes={f: [None, _audited(f, getattr(scheme, f))] for f in SCHEME_FIELDS}
            )
            return scheme
        current = AppraisalScheme.objects.select_for_update().get(pk=scheme.pk)
        if version is not None and current.version != version:
            raise ConflictError(current.version)
        if cleaned["period_kind"] != current.period_kind and current.results.exists():
            raise ValidationError({"period_kind": [_("The scheme has results already: its period cannot change. "
                                                     "Create another scheme instead.")]})  # fmt: skip
        changes = {}
        for f in SCHEME_FIELDS:
            before = getattr(current, f)
            if before != cleaned[f]:
                changes[f] = [_audited(f, before), _audited(f, cleaned[f])]
                setattr(current, f, cleaned[f])
        if changes:
            current.version += 1
            current.updated_by, current.updated_at = user, timezone.now()
            current.save()
            audit.record(A.UPDATE, current, user=user, changes=changes)
        return current


def default_scheme(user=None) -> AppraisalScheme:
    """The default scheme: quarterly, reps and key-account managers, the indicators' default weights."""
    data = {"name": _("Quarterly sales KPI"), "period_kind": "quarter", "roles": ["rep", "kam"],
            "indicators": default_indicators(), "excellent": 90, "good": 75, "passing": 60,
            "bonus": {"excellent": "1.2", "good": "1.0", "pass": "0.8", "improve": "0"}}  # fmt: skip
    cleaned = clean_scheme(data)
    with transaction.atomic():
        scheme = AppraisalScheme.objects.create(**cleaned, updated_by=user)
        audit.record(
            A.CREATE, scheme, user=user, changes={f: [None, _audited(f, getattr(scheme, f))] for f in SCHEME_FIELDS}
        )
    return scheme


# --- measuring --------------------------------------------------------------------------------------------


def _pct(part, whole, places="0.1") -> Decimal | None:
    return half_up(Decimal(part) * 100 / whole, places) if whole else None


def measure(people: list[int], period: Period) -> dict[int, dict[str, tuple[Decimal | None, dict]]]:
    """{person: {indicator: (value or None, the counts it comes from)}} for the people's customers in `period`.
    Seven grouped queries."""
    from pharmacrm.engagement.models import StageTask
    from pharmacrm.servicedesk.choices import ClockKind
    from pharmacrm.servicedesk.models import SlaClock, Survey

    from . import targets

    start, end = period.start.date(), period.end.date()
    out = {pk: {} for pk in people}
    # sales: this period and the same period a year earlier, and the targets of the year
    sums = targets._sums("institution__owner_id", period, Q(institution__owner_id__in=people))
    per_user: dict[int, dict] = {}
    for pk, kind, number, fen in SalesTarget.objects.filter(user_id__in=people, year=period.year).values_list(
        "user_id", "kind", "number", "amount_fen"
    ):
        per_user.setdefault(pk, {})[(kind, number)] = fen
    for pk in people:
        now, before = sums.get(pk, (0, 0))
        target = targets.target_of(per_user.get(pk, {}), period)
        out[pk]["attainment"] = (_pct(now, target), {"actual": now, "target": target, "period": period.key})
        out[pk]["growth"] = (_pct(now - before, before), {"actual": now, "before": before})
    # satisfaction: revisits and survey answers answered in the period about the person's customers
    surveys = (
        Survey.objects.filter(answered_at__gte=period.start, answered_at__lt=period.end)
        .annotate(owner=Coalesce("ticket__institution__owner_id", "institution__owner_id"))
        .filter(owner__in=people)
        .values("owner")
        .annotate(s=Sum("score"), n=Count("score"), promoters=Count("id", filter=Q(recommend__gte=9)),
                  detractors=Count("id", filter=Q(recommend__lte=6)), answers=Count("recommend"))
        .order_by()
    )  # fmt: skip
    got = {r["owner"]: r for r in surveys}
    for pk in people:
        r = got.get(pk) or {"s": 0, "n": 0, "promoters": 0, "detractors": 0, "answers": 0}
        n, answers = r["n"], r["answers"]
        csat = half_up(Decimal(r["s"]) / n, "0.01") if n else None
        nps = half_up(Decimal(100) * (r["promoters"] - r["detractors"]) / answers, "1") if answers else None
        out[pk]["csat"] = (csat, {"n": n})
        out[pk]["nps"] = (nps, {"promoters": r["promoters"], "detractors": r["detractors"], "n": answers})
    # follow-up discipline: stage tasks due in the period, done by their due day
    tasks = (
        StageTask.objects.filter(owner_id__in=people, due_on__gte=start, due_on__lt=end, status__in=("open", "done"))
        .values("owner_id")
        .annotate(due=Count("id"), on_time=Count("id", filter=Q(status="done", done_on__lte=F("due_on"))))
        .order_by()
    )  # fmt: skip
    got = {r["owner_id"]: r for r in tasks}
    for pk in people:
        r = got.get(pk) or {"due": 0, "on_time": 0}
        out[pk]["follow_up"] = (_pct(r["on_time"], r["due"]), {"done": r["on_time"], "due": r["due"]})
    # team work: the resolution clocks decided of the tickets of the period about the person's customers
    clocks = (
        SlaClock.objects.filter(kind=ClockKind.RESOLUTION, ticket__received_at__gte=period.start,
                                ticket__received_at__lt=period.end, ticket__merged_into__isnull=True,
                                ticket__institution__owner_id__in=people)
        .values("ticket__institution__owner_id")
        .annotate(met=Count("id", filter=Q(fulfilled_at__isnull=False, breached_at__isnull=True)),
                  missed=Count("id", filter=Q(breached_at__isnull=False)))
        .order_by()
    )  # fmt: skip
    got = {r["ticket__institution__owner_id"]: r for r in clocks}
    for pk in people:
        r = got.get(pk) or {"met": 0, "missed": 0}
        decided = r["met"] + r["missed"]
        out[pk]["teamwork"] = (_pct(r["met"], decided), {"met": r["met"], "n": decided})
    # new customers: the person's customers whose first month with purchases falls in the period
    firsts = (
        MonthlyRollup.objects.filter(institution__owner_id__in=people, amount_fen__gt=0)
        .values("institution__owner_id", "institution_id")
        .annotate(first=Min("month"))
        .filter(first__gte=start, first__lt=end)
        .order_by()
    )
    won: dict[int, int] = {}
    for r in firsts:
        won[r["institution__owner_id"]] = won.get(r["institution__owner_id"], 0) + 1
    for pk in people:
        out[pk]["new_customers"] = (Decimal(won.get(pk, 0)), {"n": won.get(pk, 0)})
    return out


def points(value: Decimal, target: Decimal, floor: Decimal, cap: Decimal) -> Decimal:
    """Target → 100 points, floor → 0, linear between and beyond, kept within 0 … cap; one decimal."""
    raw = (value - floor) * 100 / (target - floor)
    return half_up(min(max(raw, Decimal(0)), cap), "0.1")


def grade_of(scheme: AppraisalScheme, score: Decimal | None) -> str:
    if score is None:
        return ""
    if score >= scheme.excellent:
        return "excellent"
    if score >= scheme.good:
        return "good"
    if score >= scheme.passing:
        return "pass"
    return "improve"


def explain(code: str, facts: dict) -> str:
    """How a component's value was counted, in the reader's language (the facts are stored, the words are not)."""
    from .models import yuan

    f = facts or {}
    if code == "attainment":
        if not f.get("target"):
            return _("no sales target set for %(period)s") % {"period": f.get("period", "")}
        return _("actual ¥%(actual)s of target ¥%(target)s") % {"actual": f"{yuan(f['actual']):,}",
                                                                 "target": f"{yuan(f['target']):,}"}  # fmt: skip
    if code == "growth":
        if not f.get("before"):
            return _("no purchases in the same period last year")
        return _("¥%(actual)s against ¥%(before)s a year earlier") % {"actual": f"{yuan(f['actual']):,}",
                                                                       "before": f"{yuan(f['before']):,}"}  # fmt: skip
    if code == "csat":
        if not f.get("n"):
            return _("no satisfaction answer")
        return ngettext("%(n)s satisfaction answer", "%(n)s satisfaction answers", int(f["n"])) % f
    if code == "nps":
        if not f.get("n"):
            return _("no recommendation answer")
        # counted: "1 answers" read wrong, and so did "1 promoters" (the counts stand after their labels)
        return ngettext("%(n)s answer: promoters %(promoters)s, detractors %(detractors)s",
                        "%(n)s answers: promoters %(promoters)s, detractors %(detractors)s", int(f["n"])) % f
    if code == "follow_up":
        if not f.get("due"):
            return _("no stage task due")
        return ngettext("%(done)s of %(due)s stage task done by its due day",
                        "%(done)s of %(due)s stage tasks done by their due day", int(f["due"])) % f
    if code == "teamwork":
        if not f.get("n"):
            return _("no ticket of the person's customers decided")
        return ngettext("%(met)s of %(n)s ticket resolved within SLA", "%(met)s of %(n)s tickets resolved within SLA",
                        int(f["n"])) % f
    if code == "new_customers":
        return ngettext("%(n)s customer bought for the first time", "%(n)s customers bought for the first time",
                        int(f.get("n") or 0)) % f
    return ""


def score(
    scheme: AppraisalScheme, values: dict[str, tuple[Decimal | None, dict]]
) -> tuple[Decimal | None, list]:
    """(score, components) of one person's measured values under the scheme."""
    counted = [i for i in scheme.indicators if values.get(i["code"], (None, {}))[0] is not None]
    total = sum(i["weight"] for i in counted)
    components, result = [], Decimal(0)
    for i in scheme.indicators:
        value, facts = values.get(i["code"], (None, {}))
        comp = {"code": i["code"], "value": None, "points": None, "scheme_weight": i["weight"], "weight": "0.00",
                "contribution": "0.00", "target": i["target"], "floor": i["floor"], "cap": i["cap"], "facts": facts}  # fmt: skip
        if value is not None:
            effective = Decimal(i["weight"]) * 100 / total
            p = points(value, Decimal(i["target"]), Decimal(i["floor"]), Decimal(i["cap"]))
            contribution = half_up(effective * p / 100, "0.01")
            result += contribution
            comp.update(value=str(value), points=str(p), weight=str(half_up(effective, "0.01")),
                        contribution=str(contribution))  # fmt: skip
        components.append(comp)
    return (result if counted else None), components


# --- computing and finalising -------------------------------------------------------------------------------


class Finalised(ValidationError):
    """The period's results are finalised: they are never computed again."""


def appraised(scheme: AppraisalScheme):
    return (
        User.objects.filter(is_active=True, groups__name__in=list(scheme.roles))
        .distinct()
        .order_by("pk")
        .prefetch_related("teams")
    )


def compute(scheme: AppraisalScheme, period: Period, *, user=None, now: dt.datetime | None = None) -> int:
    """The scheme's results of `period` for every active person of its roles, replacing the drafts; refused
    (Finalised) once the period's results are finalised, and for a period of another kind or not yet begun.
    Audited (one entry). Returns how many results."""
    now = now or timezone.now()
    if period.kind != scheme.period_kind:
        raise ValidationError({"period": [_("This scheme appraises a %(kind)s: give a period of that kind.")
                                          % {"kind": AppraisalScheme.Kind(scheme.period_kind).label}]})  # fmt: skip
    if period.start > now:
        raise ValidationError({"period": [_("%(period)s has not begun.") % {"period": period.key}]})
    with transaction.atomic():
        AppraisalScheme.objects.select_for_update().filter(pk=scheme.pk).first()  # one computation at a time
        final = Appraisal.objects.filter(
            scheme=scheme, period=period.key, status=Appraisal.Status.FINAL
        ).first()
        if final is not None:
            raise Finalised(
                _("The results of %(period)s were finalised on %(day)s: they are never computed again.")
                % {"period": period.key, "day": timezone.localtime(final.finalised_at).strftime("%Y-%m-%d")}
            )
        people = list(appraised(scheme))
        values = measure([u.pk for u in people], period)
        rows, teams_of = [], {}
        for u in people:
            total, components = score(scheme, values[u.pk])
            grade = grade_of(scheme, total)
            teams = sorted(u.teams.all(), key=lambda t: (t.name, t.pk))
            teams_of[u.pk] = [t.pk for t in teams]
            bonus = scheme.bonus.get(grade)
            rows.append(Appraisal(scheme=scheme, period=period.key, user=u, team=teams[0] if teams else None,
                                  score=total, grade=grade, components=components, computed_at=now,
                                  bonus_coefficient=Decimal(bonus) if bonus is not None else None))  # fmt: skip
        Appraisal.objects.filter(scheme=scheme, period=period.key).delete()
        Appraisal.objects.bulk_create(rows)
        # one result per person and period, in the ranking of every team they are in (not only the first by name)
        made = Appraisal.objects.filter(scheme=scheme, period=period.key).values_list("user_id", "pk")
        links = Appraisal.teams.through
        links.objects.bulk_create([links(appraisal_id=pk, team_id=team) for user_id, pk in made
                                   for team in teams_of.get(user_id, [])])  # fmt: skip
        audit.record(A.UPDATE, ("sales.appraisal", str(scheme.pk), f"{scheme.name} {period.key}"), user=user,
                     scheme=scheme.name, period=period.key, people=len(rows),
                     **({} if user else {"actor_name": "worker"}))  # fmt: skip
    return len(rows)


def stamp(scheme: AppraisalScheme, period_key: str) -> str:
    """What a finalise form carries: changes whenever a result of the period is recomputed or changed."""
    rows = (
        Appraisal.objects.filter(scheme=scheme, period=period_key).order_by("pk").values_list("pk", "version")
    )
    return hashlib.sha256(repr(list(rows)).encode()).hexdigest()[:16]


def finalise(user, scheme: AppraisalScheme, period_key: str, seen: str) -> int:
    """Lock the period's results (锁定): they never change again. `seen` the stamp the page showed: 409 (ConflictError)
    when they were recomputed or commented since. Audited. Returns how many results were finalised."""
    if not may_manage(user):
        raise PermissionDenied(_("You do not have permission to do this."))
    with transaction.atomic():
        AppraisalScheme.objects.select_for_update().filter(pk=scheme.pk).first()
        drafts = Appraisal.objects.filter(scheme=scheme, period=period_key, status=Appraisal.Status.DRAFT)
        if not drafts.exists():
            raise ValidationError(
                _("There are no draft results of %(period)s to finalise.") % {"period": period_key}
            )
        if stamp(scheme, period_key) != seen:
            raise ConflictError(0)
        n = drafts.update(status=Appraisal.Status.FINAL, finalised_at=timezone.now(), finalised_by=user,
                          version=F("version") + 1)  # fmt: skip
        audit.record(A.SIGN, ("sales.appraisal", str(scheme.pk), f"{scheme.name} {period_key}"), user=user,
                     scheme=scheme.name, period=period_key, people=n)  # fmt: skip
    return n


COMMENT_MAX = 2000


def comment(user, result: Appraisal, text: str, version: int) -> Appraisal:
    """A manager's comment on a draft result (optimistic version check); audited."""
    if not may_manage(user):
        raise PermissionDenied(_("You do not have permission to do this."))
    text = (text or "").strip()
    if len(text) > COMMENT_MAX:
        raise ValidationError({"comment": [_("At most %(n)s characters.") % {"n": COMMENT_MAX}]})
    with transaction.atomic():
        current = Appraisal.objects.select_for_update().get(pk=result.pk)
        if current.status == Appraisal.Status.FINAL:
            raise Finalised(_("This result is finalised: it cannot be changed."))
        if current.version != version:
            raise ConflictError(current.version)
        before = current.comment
        current.comment, current.version = text, current.version + 1
        current.save(update_fields=["comment", "version"])
        audit.record(A.UPDATE, current, user=user, changes={"comment": [before, text]})
    return current


# --- the job -------------------------------------------------------------------------------------------


def closed_period_due(scheme: AppraisalScheme, now: dt.datetime) -> Period | None:
    """The period the job computes for the scheme now: the one just closed, from the first working day of the next
    (Beijing) until its results computed after it closed exist; None otherwise."""
    from pharmacrm.servicedesk.campaigns import first_working_day

    current = current_period(scheme.period_kind, now)
    closed = current.previous
    if timezone.localtime(now, current.start.tzinfo).date() < first_working_day(current.start.date()):
        return None
    done = Appraisal.objects.filter(scheme=scheme, period=closed.key).filter(
        Q(status=Appraisal.Status.FINAL) | Q(computed_at__gte=closed.end)
    )
    return None if done.exists() else closed


def run_due(now: dt.datetime | None = None) -> int:
    """Every in-use scheme's period just closed, once (a rerun finds its results and does nothing)."""
    now = now or timezone.now()
    n = 0
    for scheme in AppraisalScheme.objects.filter(active=True):
        period = closed_period_due(scheme, now)
        if period is not None:
            n += compute(scheme, period, now=now)
    return n
