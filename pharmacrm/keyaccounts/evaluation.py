"""Evaluation runs: the customer evaluation (客户评估, half-yearly for every customer, quarterly for key
accounts) and the key-account identification (monthly). Facts come from the monthly purchase rollups,
the service desk's revisit surveys and the customer records — never from order lines — so a full run
costs a few set-based queries plus Python arithmetic per customer. A run as of a past day adds one pass over
the window's order lines, since the rollups hold today's payment state (see _as_of_lines).

A run writes one `Score` per customer and period (a re-run of the period replaces it), then applies the
results: tier changes (audited one by one), discount level and reward programme from the class, and an
improvement action for every customer in a class that asks for one who has none open. A run of a past period
(scored again after a later one) fills that period's history and movement only (`later_period`)."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from functools import partial

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Case, Count, Exists, F, Max, Min, OuterRef, Q, Sum, When
from django.db.models.expressions import RawSQL
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access, audit
from pharmacrm.core.ids import any_of_sql, id_set
from pharmacrm.core.models import AuditEntry, Counter, User
from pharmacrm.core.pipeline import in_background, in_parallel, may_run_in_parallel
from pharmacrm.core.roles import Cap, Role
from pharmacrm.customers.choices import HospitalGrade, InstitutionType, Tier
from pharmacrm.customers.importer import insert_rows
from pharmacrm.customers.models import Institution
from pharmacrm.sales.models import MonthlyRollup, RollupEmptied
from pharmacrm.sales.services import month_start
from pharmacrm.servicedesk.choices import ActionStatus
from pharmacrm.servicedesk.models import (
    ImprovementAction,
    Survey,
    evaluation_action_texts,
    evaluation_title_message,
)

from . import scoring
from .choices import AccountStatus, ModelKind, Trigger
from .models import EvaluationRun, KeyAccount, MarketInfluence, Score, ScoringModel

log = logging.getLogger(__name__)
A = AuditEntry.Action
ACTION_DAYS = 30


# --- periods --------------------------------------------------------------------------------------


# a period as the runs label them: 2026H2 (half-year), 2026Q4 (key-account quarter), 2026-11 (identification month)
PERIOD_LABEL = re.compile(r"[0-9]{4}(H[12]|Q[1-4]|-(0[1-9]|1[0-2]))")


def period_wrong_message() -> str:
    return _("Write the period as 2026H2 (a half-year), 2026Q3 (a quarter) or 2026-11 (a month).")


def period_of(value) -> str | None:
    """A period typed by someone as the runs label it, or None when it is no period: 2026h2 is 2026H2, and so is
    ２０２６Ｈ２ (a Chinese input method's full width) — as the key-account evaluations read theirs. The results and
    candidate pages and their APIs read the period so, one rule for both."""
    import unicodedata

    label = unicodedata.normalize("NFKC", str(value or "")).strip().upper()
    return label if PERIOD_LABEL.fullmatch(label) else None


def half_year(day: dt.date) -> str:
    return f"{day.year}H{1 if day.month <= 6 else 2}"


def quarter(day: dt.date) -> str:
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


def month_label(day: dt.date) -> str:
    return f"{day:%Y-%m}"


def current_period(kind: str, day: dt.date, key_accounts_only: bool = False) -> str:
    if kind == ModelKind.CANDIDATE:
        return month_label(day)
    return quarter(day) if key_accounts_only else half_year(day)


# --- models -----------------------------------------------------------------------------------------


SHIPPED_NAMES = {
    ModelKind.EVALUATION: gettext_lazy("Customer evaluation"),
    ModelKind.CANDIDATE: gettext_lazy("Key-account identification"),
}


def shipped_names() -> dict[str, dict]:
    """The default models' names as `active_model` stores them, {language: {stored name: translatable name}}
    (core.builtin): each reader sees them in their language until a manager renames the model. The English and
    Traditional names are those of a model created before it was stored in the product's language (by a
    reader of English or 繁體)."""
    out = {}
    for language in ("zh-hans", "en", "zh-hant"):
        with translation.override(language):
            out[language] = {str(text): text for text in SHIPPED_NAMES.values()}
    return out


def active_model(kind: str) -> ScoringModel:
    """The kind's active model; the defaults are created the first time."""
    found = ScoringModel.objects.filter(kind=kind, active=True).first()
    if found is not None:
        return found
    defaults = scoring.DEFAULT_EVALUATION if kind == ModelKind.EVALUATION else scoring.DEFAULT_CANDIDATE
    with translation.override(settings.LANGUAGE_CODE):  # stored as shipped (core.builtin): each reader's language
        name = str(SHIPPED_NAMES[kind])
    with transaction.atomic():
        model, _created = ScoringModel.objects.get_or_create(
            kind=kind, version=1,
            defaults=dict(
                name=name, weights={str(k): v for k, v in defaults["weights"].items()},
                params={**scoring.DEFAULT_PARAMS, **(scoring.GATE_DEFAULT if kind == ModelKind.EVALUATION else {})},
                thresholds=defaults["thresholds"],
                benefits=defaults.get("benefits", {}), active=True,
            ),
        )  # fmt: skip
    return model


class ModelChanged(Exception):
    """Someone else saved a new version of the model since the user loaded theirs: `current` is the model in force
    now (the page shows the user's input again with a warning, the API answers 409)."""

    def __init__(self, current: ScoringModel):
        super().__init__(f"{current.kind} v{current.version}")
        self.current = current


def save_model(user, kind: str, data: dict, version: int | None = None) -> ScoringModel:
    """A new version of the kind's model (the old one stays for the scores made with it). `version` is the version
    the user loaded (default: the one in force now); another one in force when the change is written is a
    ModelChanged, nothing written."""
    access.require(user, Cap.CONFIGURE_SCORING)
    current = active_model(kind)
    version = current.version if version is None else version
    if version != current.version:
        raise ModelChanged(current)
    weights = data.get("weights", current.weights)
    params = {**current.params, **(data.get("params") or {})}
    thresholds = data.get("thresholds", current.thresholds)
    benefits = data.get("benefits", current.benefits)
    if not isinstance(weights, dict) or not isinstance(thresholds, dict) or not isinstance(benefits, dict):
        raise ValidationError({"weights": [_("Send weights, thresholds and results as objects.")]})
    # what is not sent stays as it is, as for the reference values: a client changing class A's discount
    # must not drop the other classes' results (D's improvement actions) nor A's tier; a measure or a
    # threshold left out keeps its value (a weight of 0 leaves a measure out)
    weights = {**(current.weights or {}), **weights}
    thresholds = {**(current.thresholds or {}), **thresholds}
    benefits = {
        k: {**((current.benefits or {}).get(k) or {}), **v} if isinstance(v, dict) else v
        for k, v in {**(current.benefits or {}), **benefits}.items()
    }
    if not params.get("gate_class"):
        # a model without a credit gate, saved with the gate still off and its settings as the form shows them: no
        # change (a new version for it made every form others had open stale, as a form sent as loaded would)
        for key in scoring.GATE_PARAMS:
            if key not in (current.params or {}) and _same(params.get(key), scoring.GATE_OFF[key]):
                params.pop(key, None)
    errors = scoring.validate_model(kind, weights, params, thresholds)
    for message in points_errors(params):
        errors.setdefault("params", []).append(message)
    if kind == ModelKind.EVALUATION:
        for klass, benefit in benefits.items():
            if klass not in "ABCD" or not isinstance(benefit, dict):
                errors.setdefault("benefits", []).append(_("Results are given per class A, B, C or D."))
                break
            if benefit.get("tier") and benefit["tier"] not in (Tier.NEW, Tier.REGULAR, Tier.VIP):
                errors.setdefault("benefits", []).append(
                    _("A class may set the tier new, regular or VIP only.")
                )
                break
            if not isinstance(benefit.get("programme", ""), str) or len(benefit.get("programme", "")) > 100:
                errors.setdefault("benefits", []).append(
                    _("A reward programme is a name of at most 100 characters.")
                )
                break
            try:
                discount = Decimal(str(benefit.get("discount") or 0))
            except Exception:
                discount = Decimal(-1)
            if not (0 <= discount <= 50):
                errors.setdefault("benefits", []).append(_("A discount level is a percentage from 0 to 50."))
                break
    if errors:
        raise ValidationError(errors)
    name = (data.get("name") or current.name)[:100]
    apply_tiers = bool(data.get("apply_tiers", current.apply_tiers))
    if (name, apply_tiers) == (current.name, current.apply_tiers) and all(
        _same(new, old) for new, old in ((weights, current.weights), (params, current.params),
                                         (thresholds, current.thresholds), (benefits, current.benefits))
    ):  # fmt: skip
        # saved without a change (a form sent as it was loaded, "12" for 12): no new version, no audit entry — a new
        # version made every form others had open stale for nothing (found by QA)
        return current
    with transaction.atomic():
        # two managers saving at once: the second waits here until the first has written its version, then finds
        # the version it changed no longer in force (and does not write a second "next" version, nor drop the
        # first one's change by building on it unseen)
        list(ScoringModel.objects.select_for_update().filter(kind=kind).values_list("pk", flat=True))
        in_force = ScoringModel.objects.get(kind=kind, active=True)
        if in_force.version != version:
            raise ModelChanged(in_force)
        ScoringModel.objects.filter(kind=kind, active=True).update(active=False)
        model = ScoringModel.objects.create(
            kind=kind, version=current.version + 1, active=True, name=name,
            weights=weights, params=params, thresholds=thresholds, benefits=benefits,
            apply_tiers=apply_tiers, created_by=user,
        )  # fmt: skip
        audit.record(A.UPDATE, model, user=user, changes=audit.diff(
            {"weights": current.weights, "params": current.params, "thresholds": current.thresholds,
             "benefits": current.benefits},
            {"weights": weights, "params": params, "thresholds": thresholds, "benefits": benefits}),
            version=model.version)  # fmt: skip
    return model


def _same(new, old) -> bool:
    """Whether a model's part as sent is the one stored: numbers compared by value (a form sends "12" for 12, "0.5"
    for 0.50), dicts and lists part by part, the rest as they are."""
    if isinstance(new, dict) and isinstance(old, dict):
        return new.keys() == old.keys() and all(_same(new[k], old[k]) for k in new)
    if isinstance(new, list | tuple) and isinstance(old, list | tuple):
        return len(new) == len(old) and all(_same(a, b) for a, b in zip(new, old, strict=True))
    if isinstance(new, bool) or isinstance(old, bool):
        return new is old
    try:
        return Decimal(str(new)) == Decimal(str(old))
    except (ArithmeticError, ValueError):
        return new == old


# The influence measure's base points (0–100) per hospital grade and, for other customers, per type: parts of
# a model's params (scoring.DEFAULT_PARAMS) that the API shows and takes back whole.
POINTS = {"grade_points": HospitalGrade, "kind_points": InstitutionType}


def points_errors(params: dict) -> list[str]:
    """What is wrong with the grade and type points of `params` (nothing when they are absent)."""
    errors = []
    for key, choices in POINTS.items():
        if key not in params:
            continue
        points = params[key]
        ok = isinstance(points, dict) and all(
            k in choices.values and isinstance(v, int | float | Decimal) and not isinstance(v, bool) and 0 <= v <= 100
            for k, v in points.items()
        )
        if not ok:
            names = ", ".join(choices.values)
            errors.append(
                _("Grade points are scores from 0 to 100 per hospital grade (%(names)s).") % {"names": names}
                if key == "grade_points"
                else _("Type points are scores from 0 to 100 per customer type (%(names)s).") % {"names": names}
            )
    return errors


# --- the credit gate -----------------------------------------------------------------------------------


def _yuan_text(value, places: bool = True) -> str:
    d = Decimal(str(value or 0)).quantize(Decimal("0.01"))
    return f"¥{d:,.2f}" if places or d != d.to_integral_value() else f"¥{d:,.0f}"


def gate_reason(gate: dict | None) -> str:
    """Why the credit gate capped a score's class, in the reader's language ("" when it did not): "Class capped at
    B: ¥871,000.00 overdue more than 90 days (above ¥100,000)"."""
    if not gate:
        return ""
    words = {"klass": gate.get("class", ""), "days": gate.get("days", ""), "overdue": _yuan_text(gate.get("overdue"))}
    if gate.get("reason") == "share":
        return _(
            "Class capped at %(klass)s: %(overdue)s overdue more than %(days)s days (above %(share)s%% of the "
            "%(purchases)s bought in the window)."
        ) % {**words, "share": gate.get("share", ""), "purchases": _yuan_text(gate.get("purchases"), places=False)}
    return _("Class capped at %(klass)s: %(overdue)s overdue more than %(days)s days (above %(limit)s).") % {
        **words, "limit": _yuan_text(gate.get("limit"), places=False)
    }


def gate_pending(in_force: Score | None, interim: Score | None) -> bool:
    """Whether the credit gate caps the interim standing of the period under way (`interim`: scored again each night
    by sweep_gate when a debt ages past the gate's days) below the class of the period in force (`in_force`), which
    still decides the tier, discount level and reward programme. The rulebook (seed 002 七.(二)–(三)) evaluates
    every half-year and applies the evaluation's results; between evaluations it only allows more frequent
    evaluation of a customer in an unusual situation ("可根据需要增加评估频率", evaluate_customer: in a period under way,
    an interim standing too) and says nothing of capping the class in force. So the class in force is not changed:
    the pages warn that the gate now applies and will cap the class at the next evaluation."""
    if in_force is None or interim is None or not interim.gate or not in_force.klass:
        return False
    cap = interim.gate.get("class") or ""
    return bool(cap) and in_force.klass < cap  # "A" < "B": a better class than the gate allows


# --- market influence: key opinion leaders ----------------------------------------------------------

KOL_MAX = 500  # key opinion leaders of one customer (kol_reference, 5 by default, scores 100)
_KOL_SEPARATORS = re.compile(r"[,，、;；\r\n]+")


def kol_names(text) -> list[str]:
    """The names of a KOL list (separated by commas, 、, semicolons or lines)."""
    return [n.strip() for n in _KOL_SEPARATORS.split(str(text or "")) if n.strip()]


def check_kols(count: int | None, names_text) -> tuple[int | None, dict[str, list[str]]]:
    """The number of key opinion leaders to store — the number of names listed when no number is given — and
    the field errors: a number from 0 to KOL_MAX, and at least as many as the names listed. The influence
    form and the KOL import (influence.py) apply the same rule."""
    from django.utils.translation import ngettext

    names = kol_names(names_text)
    if count is None:
        count = len(names)
        if count > KOL_MAX:
            return count, {"kol_names": [_("List at most %(max)s key opinion leaders.") % {"max": KOL_MAX}]}
        return count, {}
    if not 0 <= count <= KOL_MAX:
        return count, {"kol_count": [kol_count_message()]}
    if count < len(names):
        return count, {"kol_count": [
            ngettext("%(n)s name is listed: the number of key opinion leaders cannot be smaller.",
                     "%(n)s names are listed: the number of key opinion leaders cannot be smaller.",
                     len(names)) % {"n": len(names)}
        ]}  # fmt: skip
    return count, {}


def kol_count_message() -> str:
    return _("Give the number of key opinion leaders, from 0 to %(max)s.") % {"max": KOL_MAX}


# --- facts ------------------------------------------------------------------------------------------


PARALLEL_GATHER = 10_000  # from this many customers, PostgreSQL reads two halves at once


def gather(as_of: dt.date, params: dict, ids: Iterable[int] | None = None) -> dict[int, scoring.Facts]:
    """Facts of the customers who bought in the window or the one before, or owe an overdue amount (of `ids` only,
    if given), merged customers left out. One pass over the rollups: the window's sums, the overdue amount of every
    month (a debt does not age out of the window while it stays unpaid), the window before's amount and the first
    month ever bought, per customer."""
    if ids is not None and may_run_in_parallel():
        ids = sorted(ids)
        if len(ids) >= PARALLEL_GATHER:
            half = len(ids) // 2
            parts = in_parallel([partial(_gather, as_of, params, ids[:half]), partial(_gather, as_of, params, ids[half:])])
            return {**parts[0], **parts[1]}
    return _gather(as_of, params, ids)


def _gather(as_of: dt.date, params: dict, ids: Iterable[int] | None) -> dict[int, scoring.Facts]:
    months = int(params.get("window_months") or 12)
    first = month_start(as_of, months - 1)
    before = month_start(as_of, 2 * months - 1)
    last = month_start(as_of)
    wanted = None if ids is None else id_set(ids)
    # a past day (`pharmacrm evaluate --as-of`, the nightly evaluation of a period that ended): the rollups hold
    # today's payment state, and their month of that day the lines ordered after it too — see _as_of_lines
    past = as_of < timezone.localdate()
    partial = past and (as_of + dt.timedelta(days=1)).month == as_of.month  # that day's month up to that day
    rollups = MonthlyRollup.objects.filter(month__lt=last) if partial else MonthlyRollup.objects.filter(month__lte=last)
    if wanted is not None:
        rollups = rollups.filter(institution_id__any_of=wanted)
    window = Q(month__gte=first)
    rows = (
        rollups.order_by().values("institution_id")
        .annotate(
            amount=Sum("amount_fen", filter=window), orders=Sum("orders", filter=window),
            on_time=Sum("on_time_fen", filter=window), late=Sum("late_fen", filter=window),
            overdue=Sum("overdue_fen"), previous=Sum("amount_fen", filter=Q(month__lt=first, month__gte=before)),
            first=Min("month"), latest=Max("month"),
        )
        .filter(Q(latest__gte=before) | Q(overdue__gt=0))
        .values_list("institution_id", "amount", "orders", "on_time", "late", "overdue", "previous", "first")
    )  # fmt: skip
    facts: dict[int, scoring.Facts] = {}
    # a plain fetch: the facts of every customer stay in memory anyway, and a PostgreSQL iterator would
    # declare a cursor WITH HOLD (outside a transaction) that copies the whole result first. The driver's rows
    # as they come, without the ORM's converters (a function call per value: 0.1 s of an update of 22,000
    # customers): SQLite gives the sums as integers and the month as text, PostgreSQL the sums as numeric
    sql, sql_params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, sql_params)
        fetched = cursor.fetchall()
    months_to = last.year * 12 + last.month + 1
    as_int = int if connection.vendor == "postgresql" else None
    for inst, amount, orders, on_time, late, overdue, previous, first_month in fetched:
        if as_int is not None:
            amount, orders, on_time, late, overdue, previous = (
                None if x is None else as_int(x) for x in (amount, orders, on_time, late, overdue, previous)
            )  # fmt: skip
            started = first_month.year * 12 + first_month.month
        else:  # "YYYY-MM-DD"
            started = int(first_month[:4]) * 12 + int(first_month[5:7])
        facts[inst] = scoring.Facts(
            amount_fen=amount or 0, orders=orders or 0, on_time_fen=on_time or 0, late_fen=late or 0,
            overdue_fen=overdue or 0, previous_amount_fen=previous or 0, months_cooperating=months_to - started,
        )  # fmt: skip
    aged_before = gate_cutoff(as_of, params)
    if past:
        _as_of_lines(facts, as_of, first, partial, wanted, aged_before)
    elif aged_before is not None and facts:
        _add_aged_overdue(facts, aged_before, wanted)
    if facts:
        _add_profiles(facts, wanted)  # first: the surveys' pass needs to know which customers are departments
        _add_surveys(facts, as_of, first, wanted)
    return facts


def gate_cutoff(as_of: dt.date, params: dict) -> dt.date | None:
    """A debt overdue more than the credit gate's days on `as_of` fell due before this day; None without a gate."""
    if not scoring.gate_on(params):
        return None
    return as_of - dt.timedelta(days=int(params.get("gate_days") or 0))


def _add_aged_overdue(facts: dict[int, scoring.Facts], aged_before: dt.date, wanted) -> None:
    """The credit gate's old debts as of today: the open items (unpaid lines, through their partial index, as the
    credit status's ageing reads them — not the order lines' history) that fell due before `aged_before`, summed
    per customer in one query for the whole run."""
    for inst, aged in _aged_overdue(aged_before, wanted):
        f = facts.get(inst)
        if f is not None:
            f.aged_overdue_fen = aged or 0


def _aged_overdue(aged_before: dt.date, wanted) -> Iterable[tuple[int, int]]:
    """(customer, amount owed in fen) of the open items that fell due before `aged_before`: one query, read from the
    open items' covering partial index alone (sales 0017) — of every customer, or of `wanted` (an id_set)."""
    from pharmacrm.sales.models import OrderLine
    from pharmacrm.sales.rollups import payment_term_days

    term = dt.timedelta(days=payment_term_days())
    fell_due = Q(payment_due__lt=aged_before) | Q(payment_due__isnull=True, order_date__lt=aged_before - term)
    items = OrderLine.objects.filter(fell_due, outstanding_fen__gt=0)
    if wanted is not None:
        items = items.filter(institution_id__any_of=wanted)
    return items.order_by().values("institution_id").annotate(aged=Sum("outstanding_fen")).values_list("institution_id", "aged")


def _as_of_lines(
    facts: dict[int, scoring.Facts], as_of: dt.date, first: dt.date, partial: bool, wanted, aged_before=None
) -> None:
    """The facts as they stood on `as_of`, a past day, from the order lines of the window up to that day
    (sales.rollups.state_as_of): the credit measure's amounts paid on time, paid late and overdue on that day —
    a line paid after it was unpaid then, overdue once due; today's rollups counted it as paid — and, when that day
    is not its month's last (`partial`: its month's rollup was left out), the month's amount and orders up to it;
    a customer whose only purchases of the window or the one before are of that month before that day joins.
    Costs one pass over the window's lines (the rollups alone serve an evaluation as of today)."""
    from pharmacrm.sales.rollups import state_as_of

    state = state_as_of(as_of, first, wanted, aged_before)
    last = month_start(as_of)
    joining = [inst for inst in state if inst not in facts] if partial else []
    for inst in joining:
        facts[inst] = scoring.Facts()
    if joining:  # their first month ever (one bought long ago, and again this month)
        since = dict(
            MonthlyRollup.objects.filter(institution_id__any_of=id_set(joining), month__lt=last).order_by()
            .values("institution_id").annotate(first=Min("month")).values_list("institution_id", "first")
        )  # fmt: skip
        for inst in joining:
            first_month = since.get(inst, last)
            facts[inst].months_cooperating = (last.year - first_month.year) * 12 + last.month - first_month.month + 1
    for inst, f in facts.items():
        on_time, late, overdue, amount, orders, aged = state.get(inst, (0, 0, 0, 0, 0, 0))
        f.on_time_fen, f.late_fen, f.overdue_fen, f.aged_overdue_fen = on_time, late, overdue, aged
        if partial:
            f.amount_fen += amount
            f.orders += orders


def _add_surveys(facts: dict[int, scoring.Facts], as_of: dt.date, first: dt.date, wanted) -> None:
    tz = timezone.get_current_timezone()
    start = dt.datetime.combine(first, dt.time(), tzinfo=tz)
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    # a survey's customer: its ticket's (a revisit), else its own (a satisfaction survey campaign's answer, which
    # has no ticket) — both count, in one satisfaction figure
    of_ticket = Q(ticket__institution_id__isnull=False)
    of_campaign = Q(ticket__isnull=True, institution_id__isnull=False)
    qs = Survey.objects.filter(of_ticket | of_campaign, answered_at__gte=start, answered_at__lt=end)
    # a department buys and is served through its hospital: the revisits of its tickets (心内科's) are the
    # hospital's satisfaction — left out, they counted for no customer at all
    department = Q(ticket__institution__kind=InstitutionType.DEPARTMENT, ticket__institution__parent_id__isnull=False)
    if wanted is not None:
        qs = qs.filter(Q(ticket__institution_id__any_of=wanted) | (department & Q(ticket__institution__parent_id__any_of=wanted))
                       | (of_campaign & Q(institution_id__any_of=wanted)))  # fmt: skip
    customer = Case(When(department, then=F("ticket__institution__parent_id")), When(of_ticket, then=F("ticket__institution_id")),
                    default=F("institution_id"))  # fmt: skip
    sums = {
        "s": Sum("score"), "n": Count("score"), "promoters": Count("id", filter=Q(recommend__gte=9)),
        "detractors": Count("id", filter=Q(recommend__lte=6)), "answers": Count("recommend"),
    }  # fmt: skip
    rows = list(qs.order_by().annotate(customer=customer).values("customer").annotate(**sums))
    # a department that buys on its own (order lines booked to it) is scored too: its revisits are its own
    # satisfaction as well as its hospital's — counted for the hospital only, its score read "no survey
    # answered: default 60" beside answered revisits. One more pass, over those departments' tickets only.
    buying = [i for i, f in facts.items() if f.kind == InstitutionType.DEPARTMENT]
    if buying:
        own = qs.filter(department, ticket__institution_id__any_of=id_set(buying))
        rows += own.order_by().annotate(customer=F("ticket__institution_id")).values("customer").annotate(**sums)
    for r in rows:
        f = facts.get(r["customer"])
        if f is not None:
            f.csat_sum, f.csat_count = r["s"] or 0, r["n"] or 0
            f.nps_promoters, f.nps_detractors, f.nps_count = r["promoters"], r["detractors"], r["answers"]


def _add_profiles(facts: dict[int, scoring.Facts], wanted) -> None:
    """Type, grade, beds, specialties, province and tier from the customer record; KOLs and marketing's
    assessment; a merged customer's facts are dropped (its survivor is scored)."""
    institutions, influence = Institution.objects.all(), MarketInfluence.objects.all()
    if wanted is not None:  # else every customer: one pass over the table
        institutions = institutions.filter(pk__any_of=wanted)
        influence = influence.filter(institution_id__any_of=wanted)
    # the number of specialties counted by the database (decoding each customer's list cost 3 µs), no
    # ordering, and a plain fetch (see _gather)
    specialties = RawSQL(
        "CASE WHEN jsonb_typeof(specialties) = 'array' THEN jsonb_array_length(specialties) ELSE 0 END"
        if connection.vendor == "postgresql" else "COALESCE(json_array_length(specialties), 0)", (),
    )  # fmt: skip
    columns = ("id", "kind", "grade", "beds", "n_specialties", "province", "tier", "merged_into_id")
    rows = institutions.order_by().annotate(n_specialties=specialties).values_list(*columns)
    for pk, kind, grade, beds, n_specialties, province, tier, merged_into in rows:
        f = facts.get(pk)
        if f is None:
            continue
        if merged_into is not None:
            del facts[pk]
            continue
        f.kind, f.grade, f.beds, f.province, f.tier = kind, grade, beds, province, tier
        f.specialties = n_specialties or 0
    for inst, kols, assessment in influence.values_list("institution_id", "kol_count", "assessment"):
        f = facts.get(inst)
        if f is not None:
            f.kols, f.assessment = kols, assessment


# --- runs -------------------------------------------------------------------------------------------


def active_key_account_ids() -> set[int]:
    return set(
        KeyAccount.objects.filter(status=AccountStatus.ACTIVE).values_list("institution_id", flat=True)
    )


def cadence(period: str) -> str:
    """ "H" (half-year, every customer), "Q" (quarter, key accounts) or "M" (month, identification)."""
    return "H" if "H" in period else "Q" if "Q" in period else "M"


def period_span(period: str) -> tuple[dt.date, dt.date]:
    """The first and last day of a period: 2026H1, 2026Q3 or 2026-11."""
    year, kind = int(period[:4]), cadence(period)
    number = int(period[5:])
    first_month, months = {"H": (6 * number - 5, 6), "Q": (3 * number - 2, 3), "M": (number, 1)}[kind]
    after = first_month - 1 + months  # months after January of `year` where the next period begins
    following = dt.date(year + after // 12, after % 12 + 1, 1)
    return dt.date(year, first_month, 1), following - dt.timedelta(days=1)


def evaluated_in_full(kind: str, today: dt.date | None = None) -> list[str]:
    """The periods of the kind evaluated in full: ended before `today`, with a finished run (that scored
    customers) as of the period's last day or later, started after that day — the worker's nightly run or
    `pharmacrm evaluate --as-of` by hand. The updates after imports (and "Run now") during a period read it while
    it was still under way: their scores are interim standings, not the period's evaluation. One query over the
    runs started after their as-of day only (the back-dated ones), not over every update after an import."""
    today = today or timezone.localdate()
    rows = (
        EvaluationRun.objects.filter(model__kind=kind, finished_at__isnull=False, customers__gt=0, as_of__lt=today,
                                     started_at__date__gt=F("as_of"))
        .order_by().values("period").annotate(latest=Max("as_of")).values_list("period", "latest")
    )  # fmt: skip
    return [p for p, as_of in rows if period_span(p)[1] <= as_of and period_span(p)[1] < today]


def later_period(kind: str, period: str, today: dt.date | None = None) -> str | None:
    """The period whose results are in force when `period` is in the past: the latest period of the kind
    evaluated in full (`evaluated_in_full`) that began after `period` ended (a half-year's and a key-account
    quarter's alike); None when there is none. A run of a past period (`pharmacrm evaluate --as-of`) then only
    fills that period's history and movement: the tiers, discount levels and improvement actions follow the later
    one. The interim scores of a period still under way do not count: on 1 July an update after an import scores
    2026H2 before the nightly run evaluates 2026H1, and 2026H1 still decides the tiers (see `in_force`). For the
    identification (monthly, nothing applied), any later period with scores counts, as before. A half-year is
    superseded by a later half-year only, never by a key-account quarter: a quarter evaluates the key accounts
    alone, and the half-year stays the one in force for every customer's tier (`in_force`), so that re-running it
    (after a corrected import, a new model version) applies its results."""
    today = today or timezone.localdate()
    end = period_span(period)[1]
    if kind == ModelKind.EVALUATION:
        scored = evaluated_in_full(kind, today)
        if cadence(period) == "H":
            scored = [p for p in scored if cadence(p) == "H"]
    else:
        scored = (
            EvaluationRun.objects.filter(model__kind=kind, finished_at__isnull=False, customers__gt=0)
            .order_by().values_list("period", flat=True).distinct()
        )  # fmt: skip
    later = [(cadence(p) == cadence(period), period_span(p)[0], p) for p in scored]
    later = [row for row in later if end < row[1] <= today]
    return max(later)[2] if later else None  # the same cadence first, then the latest to begin


def in_force(kind: str, today: dt.date | None = None) -> str | None:
    """The customer evaluation's period whose results drive tiers and improvement actions (issue 5: half-yearly,
    key accounts quarterly; results drive tier changes): the latest half-year evaluated in full (else the latest
    key-account quarter) — or None before any period was (a new system: its current
    period's runs apply their results until then). A period still under way is never in force once one was:
    whatever the order of the runs on the day after a period ends — the nightly evaluation of the period that
    ended, an update after an import scoring the new one —, the ended period decides the tiers."""
    if kind != ModelKind.EVALUATION:
        return None
    # the half-years first: every customer's (a key-account quarter evaluates the key accounts only, whose tier
    # the programme decides), then the latest to end
    done = [(cadence(p) == "H", period_span(p)[1], p) for p in evaluated_in_full(kind, today)]
    return max(done)[2] if done else None


def interim_of(kind: str, period: str, today: dt.date | None = None) -> str | None:
    """For a period still under way (as of `today`): the period in force, whose results its runs leave as they
    are (its scores are interim standings); None when its runs apply their results (a period that has ended, or
    no period evaluated in full yet)."""
    today = today or timezone.localdate()
    if kind != ModelKind.EVALUATION or period_span(period)[1] < today:
        return None
    return in_force(kind, today)


def _neighbour(kind: str, period: str, *, later: bool) -> str | None:
    """The latest earlier (or the earliest later) period of the same cadence with a finished run: a
    half-year's previous period is the half-year before, never a key-account quarter. The first key-account
    quarter has no quarter before it: its previous period is the last half-year that ended before the
    quarter began, so a key account evaluated for years is not shown as new to evaluation."""
    runs = EvaluationRun.objects.filter(model__kind=kind, finished_at__isnull=False)
    found = [p for p in (runs.filter(period__gt=period) if later else runs.filter(period__lt=period))
             .values_list("period", flat=True).distinct() if cadence(p) == cadence(period)]  # fmt: skip
    if found:
        return min(found) if later else max(found)
    if later or cadence(period) != "Q":
        return None
    return _half_before(kind, period)


def _half_before(kind: str, quarter_label: str) -> str | None:
    """The last half-year with a finished run that ended before the key-account quarter began: the previous
    period of the first quarter, and of an account's first quarter (listed since the quarter before was scored),
    so that a customer evaluated for years is not shown as new to evaluation."""
    year, number = int(quarter_label[:4]), int(quarter_label[5:])
    ended = f"{year - 1}H2" if number <= 2 else f"{year}H1"
    halves = (
        EvaluationRun.objects.filter(model__kind=kind, finished_at__isnull=False, period__lte=ended)
        .values_list("period", flat=True).distinct()
    )  # fmt: skip
    return max((p for p in halves if cadence(p) == "H"), default=None)


def _fallback_half(kind: str, period: str, earlier: str | None) -> str | None:
    """For a key-account quarter whose previous period is a quarter: the half-year its accounts that were not
    scored in that quarter (listed since) move from; None otherwise."""
    if cadence(period) != "Q" or earlier is None or cadence(earlier) != "Q":
        return None
    return _half_before(kind, period)


# A new score's previous class, until `_link_previous` gives it the class of the period before. A score
# already there keeps its previous class and score when a run rewrites it (the period before does not change
# while this one is scored; when it is scored again, `_relink_next` carries its new results over). So an
# incremental run reads nothing of the period before for the customers it re-scores: that read of 20,000-odd
# scores was a fifth of the update after an import on PostgreSQL.
PENDING = "?"


def _previous(kind: str, period: str, ids: Iterable[int] | None = None) -> dict[int, tuple[str, Decimal]]:
    """Class and score of each customer (of `ids`, if given) in the period before (for the first run of a
    period, when every score is new: one read is cheaper than `_link_previous` rewriting them all)."""
    earlier = _neighbour(kind, period, later=False)
    if earlier is None:
        return {}
    rows = Score.objects.filter(kind=kind, period=earlier).order_by()
    if ids is not None:
        rows = rows.filter(institution_id__any_of=id_set(ids))
    found = {inst: (k, s) for inst, k, s in rows.values_list("institution_id", "klass", "score")}
    half = _fallback_half(kind, period, earlier)
    if half is not None:  # the accounts listed since the quarter before: their last half-year's class
        halves = Score.objects.filter(kind=kind, period=half)
        if ids is not None:
            halves = halves.filter(institution_id__any_of=id_set(ids))
        for inst, k, s in halves.order_by().values_list("institution_id", "klass", "score"):
            found.setdefault(inst, (k, s))
    for inst, previous in _merged_previous(kind, [p for p in (earlier, half) if p], ids).items():
        found.setdefault(inst, previous)
    return found


def _merged_previous(kind: str, sources: list[str], ids: Iterable[int] | None) -> dict[int, tuple[str, Decimal]]:
    """The class and score in the period before (`sources`, the first that has one) of the records merged into
    each customer (of `ids`, if given), the best when several were: a customer whose duplicate held its
    history (the old ERP record merged into the master record) moves from that class, not "new". Merges are
    few: one read of them, one of the duplicates' scores."""
    from pharmacrm.customers.models import MergeRecord, SearchTerm

    if not sources:
        return {}
    into = dict(
        MergeRecord.objects.filter(kind=SearchTerm.Kind.INSTITUTION).order_by("at", "id")
        .values_list("merged_id", "survivor_id")
    )  # fmt: skip
    if not into:
        return {}
    wanted = None if ids is None else set(ids)
    final: dict[int, int] = {}
    for merged in into:
        survivor, seen = into[merged], {merged}
        while survivor in into and survivor not in seen:  # merged again since: the record it lives on in
            seen.add(survivor)
            survivor = into[survivor]
        if wanted is None or survivor in wanted:
            final[merged] = survivor
    if not final:
        return {}
    out: dict[int, tuple[str, Decimal]] = {}
    for source in sources:
        rows = Score.objects.filter(kind=kind, period=source, institution_id__any_of=id_set(final)).order_by()
        found: dict[int, tuple[str, Decimal]] = {}
        for merged, k, s in rows.values_list("institution_id", "klass", "score"):
            survivor = final[merged]
            if survivor not in out and (survivor not in found or s > found[survivor][1]):
                found[survivor] = (k, s)
        out.update(found)
    return out


def _link_previous(kind: str, period: str, ids: list[int]) -> None:
    """The previous class and score of the period's new scores, those of `ids` (class "" and no score if
    the customer was not scored in the period before)."""
    if not ids:
        return
    table = Score._meta.db_table
    earlier = _neighbour(kind, period, later=False)
    new, params = any_of_sql(f"{table}.institution_id", ids, connection.vendor)
    half = _fallback_half(kind, period, earlier)
    with connection.cursor() as cursor:
        # from the period before; in a key-account quarter, an account not scored in the quarter before (listed
        # since) from the last half-year
        for source in (p for p in (earlier, half) if p is not None):
            cursor.execute(
                f"UPDATE {table} SET previous_klass = p.klass, previous_score = p.score FROM {table} p "
                f"WHERE {table}.kind = %s AND {table}.period = %s AND {new} AND {table}.previous_klass = %s "
                f"AND p.institution_id = {table}.institution_id AND p.kind = %s AND p.period = %s",
                [kind, period, *params, PENDING, kind, source],
            )  # fmt: skip
        # a customer with no score of its own there: that of the record merged into it, if any
        for inst, (k, s) in _merged_previous(kind, [p for p in (earlier, half) if p is not None], ids).items():
            Score.objects.filter(kind=kind, period=period, institution_id=inst, previous_klass=PENDING).update(
                previous_klass=k, previous_score=s
            )
        cursor.execute(
            f"UPDATE {table} SET previous_klass = '', previous_score = NULL "
            f"WHERE kind = %s AND period = %s AND {new} AND previous_klass = %s",
            [kind, period, *params, PENDING],
        )  # fmt: skip


def _relink_next(kind: str, period: str) -> None:
    """When an earlier period is scored (again) after a later one (`pharmacrm evaluate --as-of`), the
    period after it takes its new classes and scores as its previous ones."""
    later = _neighbour(kind, period, later=True)
    if later is None:
        return
    table = Score._meta.db_table
    match = f"p.kind = {table}.kind AND p.period = %s AND p.institution_id = {table}.institution_id"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET previous_klass = COALESCE((SELECT p.klass FROM {table} p WHERE {match}), ''), "
            f"previous_score = (SELECT p.score FROM {table} p WHERE {match}) WHERE kind = %s AND period = %s",
            [period, period, kind, later],
        )  # fmt: skip


def run(
    kind: str,
    *,
    user=None,
    trigger: str = Trigger.ON_DEMAND,
    as_of: dt.date | None = None,
    ids: list[int] | None = None,
    key_accounts_only: bool = False,
    apply: bool = True,
    facts: dict[int, scoring.Facts] | None = None,
    model: ScoringModel | None = None,
    started: dt.datetime | None = None,
    reason: str = "",
) -> EvaluationRun:
    """Score customers with the kind's active model and store the results for the current period.

    `ids` limits the run to those customers (the incremental update after an import); `key_accounts_only`
    is the quarterly key-account evaluation. `facts`, when given, were gathered for the same date and
    window, of these customers or more; `model`, when given, is the model they were gathered for (read by
    run_all before it read them: a version saved meanwhile counts from the next run). Tiers and improvement
    actions are applied only when the period is the latest (`later_period`); the run's `later_period` names
    the one in force otherwise. `started`: the run's start (settled_moment), taken by run_all before it looked
    for the changed customers. `reason`: why one customer is evaluated out of turn (seed 002 七.(二): customers
    in unusual situations are evaluated more often), kept in the run's audit entry."""
    if user is not None and getattr(user, "is_authenticated", False):
        access.require(user, Cap.RUN_EVALUATIONS)
    as_of = as_of or timezone.localdate()
    model = model or active_model(kind)
    params = {**scoring.DEFAULT_PARAMS, **model.params}
    period = current_period(kind, as_of, key_accounts_only)
    key_ids = active_key_account_ids()
    if key_accounts_only:
        ids = sorted(key_ids if ids is None else set(ids) & key_ids)
    # a past period, scored again after a later one: its history and movement only, nothing applied today; a
    # period still under way once a period was evaluated in full: interim standings, nothing applied either
    later = later_period(kind, period)
    interim = None if later else interim_of(kind, period)
    started = started or settled_moment()
    normalised = scoring.normalised_weights(model.weights)
    run_row = EvaluationRun.objects.create(
        model=model, period=period, as_of=as_of, trigger=trigger, incremental=ids is not None,
        started_at=started, created_by=user if getattr(user, "is_authenticated", False) else None,
        constants=scoring.constants(normalised, params),
    )  # fmt: skip
    if facts is None:
        facts = gather(as_of, params, ids)
    elif ids is not None:
        facts = {i: facts[i] for i in ids if i in facts}
    # the first run of a period reads the period before once; later runs leave each score's previous class
    # as it is and link only the new ones (PENDING)
    first = not Score.objects.filter(kind=kind, period=period).exists()
    previous = _previous(kind, period, None if ids is None else list(facts)) if first else None
    results: list[tuple] = []
    chunks = _scored(kind, model, normalised, params, facts, previous, key_ids, results, connection.vendor == "sqlite")
    with transaction.atomic():
        lock_results(kind)
        # the scoring of the next chunk (Python, a second thread) overlaps the database's work on this one
        count, new, stored = _upsert_scores(
            in_background(chunks, name="evaluation-scoring"), [kind, period, run_row.pk, model.pk, as_of, started]
        )
        if len(stored) < len(results):  # a run that read the purchases later saved newer scores meanwhile
            results = [r for r in results if r[0] in stored]
        if not key_accounts_only:
            _drop_unearned(kind, period, facts, ids, started)
        _link_previous(kind, period, new)
        _relink_next(kind, period)
        changes = actions = 0
        if apply and later is None and interim is None and kind == ModelKind.EVALUATION:
            if model.apply_tiers:
                changes = _apply_tiers(results, key_ids, run_row, facts)
            # one customer out of turn opens no action for the others (a full run or an update will)
            actions = _open_actions(model, key_ids, run_row, ids if trigger in OUT_OF_TURN else None)
        EvaluationRun.objects.filter(pk=run_row.pk).update(
            finished_at=timezone.now(), customers=count, tier_changes=changes, actions=actions
        )
    run_row.refresh_from_db()
    run_row.later_period = later  # not stored: what the command and the pages tell of a run of a past period
    run_row.interim_of = interim  # nor this: the period in force while this one is under way
    if user is not None and getattr(user, "is_authenticated", False):
        history = {"history_only": True, "latest_period": later} if later else {}
        if interim:
            history = {"interim": True, "in_force": interim}
        if reason:
            history["reason"] = reason
            history["institutions"] = list(ids or ())
        audit.record(A.UPDATE, run_row, user=user, evaluation=kind, period=period, customers=count, **history)
    return run_row




REASON_MAX = 500
# runs of a few customers picked for a reason, not for changed purchases: one customer evaluated out of turn, and the
# credit gate's daily check (sweep_gate). They read nobody else's purchases: the updates after imports still look for
# every customer changed since the run before them, the results page's figures are not "as of" them, and they open
# improvement actions for their own customers only.
OUT_OF_TURN = (Trigger.CUSTOMER, Trigger.GATE)


def evaluate_customer(user, institution: Institution, reason) -> tuple[EvaluationRun, Score | None, bool]:
    """One customer evaluated now, out of turn (seed 002 七.(二): "对重点客户和有特殊情况的客户，可适当增加评估频次" — a
    customer whose payments fall behind, or whose complaints pile up, is evaluated again without waiting for the
    half-year): the customer evaluation of the current period for this customer alone (a department that buys on
    its own is scored on its own, as in every run), its reason kept in the audit trail — on the run and on the
    customer. As any run of a period under way once a period was evaluated in full, its score is an interim standing
    and changes no tier. The run does not count as the period's latest for the updates after imports (they still look
    for every customer changed since the run before) and opens improvement actions for this customer only.

    Returns the run, the customer's score (None: no purchase in the evaluation's window, nothing to score) and
    whether a score of this period it had was removed for that (as a full run would). ValidationError naming
    `reason`."""
    access.require(user, Cap.RUN_EVALUATIONS)
    if institution.merged_into_id:  # its purchases are the survivor's now: "no purchases" misled (found by QA)
        from pharmacrm.customers.services import merged_choice_error

        raise ValidationError({"customer": [merged_choice_error(institution)]})
    # a NUL byte pasted along is dropped: PostgreSQL refuses it in the run's reason and the audit entry (500)
    reason = str(reason or "").replace("\x00", "").strip()
    if not reason:
        raise ValidationError({"reason": [
            _("Say why this customer is evaluated now (for example: payments overdue, complaints).")]})  # fmt: skip
    if len(reason) > REASON_MAX:
        raise ValidationError({"reason": [_("At most %(n)s characters.") % {"n": REASON_MAX}]})
    period = current_period(ModelKind.EVALUATION, timezone.localdate())
    scores = Score.objects.filter(kind=ModelKind.EVALUATION, period=period, institution=institution)
    had = scores.exists()
    done = run(ModelKind.EVALUATION, user=user, trigger=Trigger.CUSTOMER, ids=[institution.pk], reason=reason)
    score = scores.filter(period=done.period).first()
    audit.record(A.UPDATE, institution, user=user, evaluation=done.period, reason=reason,
                 score=None if score is None else str(score.score), klass=None if score is None else score.klass)  # fmt: skip
    return done, score, had and score is None


def lock_results(kind: str) -> None:
    """Runs of one kind write their results one after the other, for the rest of the transaction: the half-yearly
    run (`pharmacrm evaluate`, "Run now") and the key accounts' quarterly one (the worker) at the same moment each
    found a key account of class D without an open improvement action, and it got two. The second run waits here
    and then finds the first one's actions, tiers and scores; so does an improvement action opened by hand
    (influence.open_improvement_action). SQLite: the IMMEDIATE transaction holds the database's write lock
    already."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"keyaccounts-evaluation:{kind}"])


def _drop_unearned(kind: str, period: str, facts: dict, ids: list[int] | None, started: dt.datetime) -> int:
    """Scores of the period whose customer no longer bought in the window or the one before (a corrected
    file gave their lines to another customer): a customer with no purchases is not scored, so a score left
    from before would rank and class them on purchases they never made. `ids`: only those were looked at.
    A score computed from purchases read after this run's `started` stays (see _upsert_scores)."""
    scored = Score.objects.filter(kind=kind, period=period, computed_at__lte=started)
    if ids is None:
        gone = [i for i in scored.values_list("institution_id", flat=True).iterator(chunk_size=10_000) if i not in facts]
    else:
        gone = [i for i in ids if i not in facts]
    if not gone:
        return 0
    return scored.filter(institution_id__any_of=id_set(gone)).delete()[0]


def refresh_candidate_flag(institution_id: int) -> None:
    """A customer listed or de-listed as a key account: its identification score of the latest period says at
    once whether it is a candidate — at or above its model's threshold and not a key account — instead of at
    the next monthly run (a customer just approved stayed "candidate" beside "already a key account", and one
    de-listed was no candidate for the rest of the month)."""
    period = (
        EvaluationRun.objects.filter(model__kind=ModelKind.CANDIDATE, finished_at__isnull=False)
        .order_by("-as_of", "-started_at").values_list("period", flat=True).first()
    )  # fmt: skip
    score = (
        Score.objects.filter(institution_id=institution_id, kind=ModelKind.CANDIDATE, period=period)
        .select_related("model").first()
        if period else None
    )  # fmt: skip
    if score is None:
        return
    threshold = Decimal(str((score.model.thresholds or {}).get("candidate", 101)))
    listed = KeyAccount.objects.filter(institution_id=institution_id, status=AccountStatus.ACTIVE).exists()
    flag = score.score >= threshold and not listed and score.customer_kind != InstitutionType.DEPARTMENT
    if flag != score.candidate:
        Score.objects.filter(pk=score.pk).update(candidate=flag)


def drop_merged_scores(sender, survivor, duplicate, **kwargs) -> int:
    """A customer merge (customers.services.merged, inside its transaction): the duplicate is no customer any
    more, so its scores of the periods in force — each kind's latest period of each cadence, and the evaluation's
    period in force (`in_force`: the half-year whose results the pages and APIs show by default, while the latest
    half-year's are interim standings) — go. Left, the merged record stayed ranked in the results and the candidate
    list (with a "Propose" that is refused) until the period's next full run, months later. Its purchases now are
    the survivor's, scored with them at the next run; earlier periods keep the duplicate's scores as their
    history."""
    if sender is not Institution:
        return 0
    latest: dict[tuple[str, str], tuple[dt.date, str]] = {}
    for kind, period in (
        EvaluationRun.objects.filter(finished_at__isnull=False).order_by()
        .values_list("model__kind", "period").distinct()
    ):  # fmt: skip
        key, start = (kind, cadence(period)), period_span(period)[0]
        if key not in latest or start > latest[key][0]:
            latest[key] = (start, period)
    if not latest:
        return 0
    gone = Q(pk__in=[])
    for (kind, _cadence), (_start, period) in latest.items():
        gone |= Q(kind=kind, period=period)
    deciding = in_force(ModelKind.EVALUATION)
    if deciding:
        gone |= Q(kind=ModelKind.EVALUATION, period=deciding)
    return Score.objects.filter(gone, institution_id=duplicate.pk).delete()[0]


SCORE_CHUNK = 2000


def _components_json(components: list[dict]) -> str:
    return orjson.dumps(components).decode()  # twelve times as fast as json, and compact


def _scored(
    kind, model, normalised: dict, params: dict, facts, previous: dict | None, key_ids, results: list, as_text: bool
) -> Iterator[list[tuple]]:
    """Score rows (STAGE_COLUMNS) in chunks, their components without the run's constants, their previous
    class and score from `previous` (None: PENDING); (customer, class, results) go to `results`. Pure Python:
    it runs in a second thread while the database stores the chunk before. `as_text`: numbers as text
    (SQLite's driver takes no Decimal)."""
    evaluating = kind == ModelKind.EVALUATION
    threshold = Decimal(str(model.thresholds.get("candidate", 101)))
    text = str if as_text else (lambda x: x)
    benefits = {
        klass: (benefit, None if benefit.get("discount") in (None, "") else text(Decimal(str(benefit["discount"]))),
                (benefit.get("programme") or "")[:100])
        for klass, benefit in ((k, (model.benefits or {}).get(k) or {}) for k in "ABCD")
    }  # fmt: skip
    no_benefit = ({}, None, "")
    plan = scoring.score_plan(normalised)
    rows: list[tuple] = []
    for inst, f in facts.items():
        value, components = scoring.score_parts(f, normalised, params, plan)
        if previous is None:
            prev_klass, prev_score = PENDING, None
        else:
            prev = previous.get(inst)
            prev_klass, prev_score = (prev[0], text(prev[1])) if prev else ("", None)
        gate = None
        if evaluating:
            # the credit gate caps the class (and so its results) in the same pass, from the facts already read
            klass, gate = scoring.gated_klass(scoring.klass(value, model.thresholds), f, params)
            candidate = False
            benefit, discount, programme = benefits[klass]
        else:
            # a department (one buying on its own) is ranked but is no candidate: it is never proposed, its hospital
            # is; flagged, the list offered "Propose" for it, which the proposal then refused
            eligible = inst not in key_ids and f.kind != InstitutionType.DEPARTMENT
            klass, candidate = "", value >= threshold and eligible
            benefit, discount, programme = no_benefit
        rows.append((
            inst, text(value), klass, prev_klass, prev_score, _components_json(components), candidate, discount,
            programme, f.province or "", f.kind or "", None if gate is None else _components_json(gate),
        ))  # fmt: skip
        results.append((inst, klass, benefit))
        if len(rows) == SCORE_CHUNK:
            yield rows
            rows = []
    if rows:
        yield rows


# what a run computes per customer (the staging table's columns) and what it sets for all of them
STAGE_COLUMNS = {
    "institution_id": "bigint", "score": "numeric(6,2)", "klass": "varchar(1)", "previous_klass": "varchar(1)",
    "previous_score": "numeric(6,2)", "components": "text", "candidate": "boolean", "discount": "numeric(5,2)",
    "programme": "varchar(100)", "province": "varchar(6)", "customer_kind": "varchar(16)", "gate": "text",
}  # fmt: skip
RUN_COLUMNS = ["kind", "period", "run_id", "model_id", "as_of", "computed_at"]


def _upsert_scores(chunks: Iterable[list[tuple]], run_values: list) -> tuple[int, list[int], set[int]]:
    """Store the chunks of score rows through a staging table: one insert-or-replace per chunk. The number
    stored, the customers whose score is new (its previous class still PENDING), and the customers stored.

    A score is replaced only by one computed from purchases read at the same moment or later (`computed_at`,
    the run's settled start): `pharmacrm evaluate --incremental` by hand and the worker's update after an
    import, at once, read the rollups at different moments, and the one that read them first could commit last
    and put the older reading back. The run that read later keeps its scores; what changed after its start is
    the next update's (changed_since)."""
    table = Score._meta.db_table
    sqlite = connection.vendor == "sqlite"
    stage = list(STAGE_COLUMNS)
    count, new, stored = 0, [], set()
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS ka_score_stage")  # its columns follow STAGE_COLUMNS
        cursor.execute(f"CREATE TEMPORARY TABLE ka_score_stage ({', '.join(f'{c} {t}' for c, t in STAGE_COLUMNS.items())})")
        select = ", ".join(stage).replace("components", "components" if sqlite else "components::jsonb")
        select = select.replace("gate", "gate" if sqlite else "gate::jsonb")
        # a score already there keeps its previous class and score (see PENDING)
        kept = {"previous_klass", "previous_score"}
        sets = ", ".join(f"{c} = excluded.{c}" for c in [*RUN_COLUMNS[2:], *stage[1:]] if c not in kept)
        upsert = (
            f"INSERT INTO {table} ({', '.join(RUN_COLUMNS + stage)}) "
            f"SELECT {', '.join(['%s'] * len(RUN_COLUMNS))}, {select} FROM ka_score_stage WHERE true "
            f"ON CONFLICT (institution_id, kind, period) DO UPDATE SET {sets} "
            f"WHERE {table}.computed_at <= excluded.computed_at RETURNING institution_id, previous_klass"
        )
        if sqlite:
            run_values = [*run_values[:4], run_values[4].isoformat(), connection.ops.adapt_datetimefield_value(run_values[5])]
        for rows in chunks:
            cursor.execute("DELETE FROM ka_score_stage")
            insert_rows("ka_score_stage", stage, rows)
            cursor.execute(upsert, run_values)
            written = cursor.fetchall()
            new.extend(inst for inst, previous in written if previous == PENDING)
            stored.update(inst for inst, _previous in written)
            count += len(written)
    return count, new, stored


def _apply_tiers(results, key_ids: set[int], run_row: EvaluationRun, facts: dict[int, scoring.Facts]) -> int:
    """Set each customer's tier from its class (never a key account's: the programme decides those). Only
    the customers whose tier, as read with their facts, differs are read again and changed: most keep
    theirs."""
    wanted = {
        inst: b["tier"] for inst, _k, b in results
        if b.get("tier") and inst not in key_ids and b["tier"] != facts[inst].tier
    }  # fmt: skip
    if not wanted:
        return 0
    now = timezone.now()
    # the tier as it is now, and the name the audit trail gives each customer, as for every other change
    current = {
        pk: (tier, name) for pk, tier, name in Institution.objects.filter(pk__any_of=id_set(wanted))
        .values_list("id", "tier", "name").iterator(chunk_size=10_000)
    }  # fmt: skip
    moves: dict[str, list[int]] = {}
    for inst, new in wanted.items():
        old = current.get(inst, (None, ""))[0]
        if old is not None and old != new and old != Tier.KEY:
            moves.setdefault(new, []).append(inst)
    def change() -> None:
        for new, insts in moves.items():
            Institution.objects.filter(pk__any_of=id_set(sorted(insts))).exclude(tier=Tier.KEY).update(
                tier=new, version=F("version") + 1, updated_at=now
            )

    # the entries are hashed while the database changes the tiers (every index of every changed row)
    audit.record_many(
        A.UPDATE,
        [(("customers.institution", str(inst), current[inst][1]), {"tier": [current[inst][0], new]})
         for new, insts in moves.items() for inst in insts],
        reason="evaluation", run=run_row.pk, period=run_row.period, during=change,
    )  # fmt: skip
    return sum(len(insts) for insts in moves.values())


def action_owner(institution: Institution) -> User | None:
    """Who owns an improvement action for a weak customer: its owner, else its team's lead, else the first
    key-account manager, else a manager."""
    for candidate in (institution.owner, institution.team.lead if institution.team_id else None):
        if _may_own(candidate):
            return candidate
    return _fallback_owner()


def _may_own(user: User | None) -> bool:
    return user is not None and user.is_active and access.can(user, Cap.HANDLE_TICKETS)


def _fallback_owner() -> User | None:
    """The owner of an action for a customer without an owner or team lead who may own one."""
    for role in (Role.KAM, Role.MANAGER):
        found = User.objects.filter(is_active=True, groups__name=role).order_by("id").first()
        if found is not None:
            return found
    return None


def action_params(name: str, klass: str, period: str) -> dict:
    """What an improvement action for a weak customer is written from (ImprovementAction.generated_params)."""
    return {"name": name[:120], "klass": klass, "period": period}


def action_text(name: str, klass: str, period: str) -> tuple[str, str]:
    """The title and description of an improvement action for a weak customer, stored in the product's language: a
    record of the service desk's staff, whoever ran the evaluation (an English page's "Run now" too), as the
    desk's other automatic actions are. The title ends with the period's tag ([2026H1]). Stored with its kind and
    parameters (`action_params`), it reads in each reader's language (ImprovementAction.shown_title)."""
    return action_texts([action_params(name, klass, period)])[0]


def action_texts(params: list[dict]) -> list[tuple[str, str]]:
    """`action_text` of many actions at once (their `action_params`), in the product's language."""
    return evaluation_action_texts(params, settings.LANGUAGE_CODE)


NOTIFY_EACH_UP_TO = 3  # an owner given more actions by one run gets one notification for them all
ACTION_COLUMNS = ["number", "institution_id", "owner_id", "due_date", "status", "outcome", "created_at", "updated_at",
                  "version", "title", "description", "generated", "generated_params"]  # fmt: skip


def _open_actions(model: ScoringModel, key_ids: set[int], run_row: EvaluationRun, ids: list[int] | None = None) -> int:
    """An improvement action for each customer of the period in a class that asks for one — fallen into it,
    staying there or evaluated for the first time — unless the customer already has an open improvement
    action, or one of this period (closed: a later run of the same period, e.g. after each import, does not
    open it again). Set-based: one query finds those customers with their owner and team lead, the owners
    are read once, the actions go in with one bulk insert (their numbers allocated as one block), their audit
    entries with one more, and the owners' notifications with one more."""
    from pharmacrm.notify import services as notify
    from pharmacrm.servicedesk import revisit
    from pharmacrm.servicedesk.services import SYSTEM

    asking = [k for k in "ABCD" if ((model.benefits or {}).get(k) or {}).get("action")]
    if not asking:
        return 0
    period = run_row.period
    tag = f"[{period}]"
    covered = ImprovementAction.objects.filter(institution_id=OuterRef("institution_id")).filter(
        ~Q(status__in=revisit.CLOSED_ACTIONS) | Q(title__endswith=tag)
    )
    scores = Score.objects.filter(kind=ModelKind.EVALUATION, period=period, klass__in=asking)
    if ids is not None:
        scores = scores.filter(institution_id__in=ids)
    due = dict(scores.exclude(Exists(covered)).order_by("institution_id").values_list("institution_id", "klass"))
    if not due:
        return 0
    # the customers' names, owners and team leads read for those only (joined to the scores, the whole
    # customer table was read at every run, even when no action was due)
    due_rows = [
        (inst, due[inst], name, owner_id, lead_id) for inst, name, owner_id, lead_id in
        Institution.objects.filter(pk__any_of=id_set(due), merged_into__isnull=True).order_by("id")
        .values_list("id", "name", "owner_id", "team__lead_id")
    ]  # fmt: skip
    if not due_rows:
        return 0
    people = {r[3] for r in due_rows} | {r[4] for r in due_rows}
    eligible = {
        u.pk: u for u in User.objects.filter(pk__in=people - {None}).prefetch_related("groups") if _may_own(u)
    }
    fallback: list = []  # read once, when a customer needs it
    now = timezone.now()
    due = timezone.localdate() + dt.timedelta(days=ACTION_DAYS)
    planned = []
    for inst, klass, name, owner_id, lead_id in due_rows:
        owner = eligible.get(owner_id) or eligible.get(lead_id)
        if owner is None:
            if not fallback:
                fallback.append(_fallback_owner())
            owner = fallback[0]
        if owner is None:
            continue  # nobody may own it: the next run tries again
        planned.append((inst, klass, name, owner))
    if not planned:
        return 0
    year = timezone.localtime(now).year
    first = Counter.allocate(f"improvement:{year}", len(planned))
    # one insert (COPY on PostgreSQL) and one read of the new ids (the run's actions share their created_at);
    # no model instance per action: audit entries and notifications take (type, id) labels
    sqlite = connection.vendor == "sqlite"
    stamp = connection.ops.adapt_datetimefield_value(now) if sqlite else now
    due_value = connection.ops.adapt_datefield_value(due) if sqlite else due
    params = [action_params(name, klass, period) for _inst, klass, name, _owner in planned]
    rows = [
        (f"IA-{year}-{first + i:04d}", inst, owner.pk, due_value, ActionStatus.OPEN.value, "", stamp, stamp, 1,
         *texts, "evaluation", orjson.dumps(p).decode())
        for i, ((inst, _klass, _name, owner), p, texts) in enumerate(zip(planned, params, action_texts(params), strict=True))
    ]  # fmt: skip
    insert_rows(ImprovementAction._meta.db_table, ACTION_COLUMNS, rows)
    ids = dict(
        ImprovementAction.objects.filter(created_at=now, created_by__isnull=True, ticket__isnull=True)
        .values_list("number", "id")
    )
    label = ImprovementAction._meta.label_lower
    due_text = due.isoformat()
    audit.record_many(A.CREATE, [
        ((label, str(ids[row[0]]), f"{row[0]} {row[9]}"),
         {"number": [None, row[0]], "owner": [None, row[2]], "due_date": [None, due_text]})
        for row in rows
    ], user=SYSTEM, reason="evaluation", run=run_row.pk, period=period)  # fmt: skip
    # each title rendered when read, in its owner's language
    told = [(ids[row[0]], row[0], p, plan[3]) for row, plan, p in zip(rows, planned, params, strict=True)]
    _tell_owners(notify, told, due_text, period)
    return len(rows)


def _tell_owners(notify, actions: list[tuple[int, str, dict, User]], due: str, period: str) -> None:
    """Each owner finds the new actions (id, number, action_params, owner) in the bell (and by e-mail): one by one up
    to NOTIFY_EACH_UP_TO, each titled in its reader's language, else one notification for them all that leads to the
    owner's actions."""
    from django.urls import reverse
    from django.utils.translation import gettext_lazy, ngettext_lazy

    from pharmacrm.core.deferred import Message

    by_owner: dict[int, list[tuple]] = {}
    for action in actions:
        by_owner.setdefault(action[3].pk, []).append(action)
    items = []
    body = Message(gettext_lazy("Due %(date)s"), date=due)
    for mine in by_owner.values():
        owner = mine[0][3]
        if len(mine) <= NOTIFY_EACH_UP_TO:
            items.extend({
                "recipients": [owner], "kind": "improvement.assigned", "body": body,
                "title": Message(gettext_lazy("Improvement action %(number)s: %(title)s"), number=number,
                                 title=evaluation_title_message(params)),
                "url": reverse("servicedesk:improvement", args=[pk]),
                "obj": (ImprovementAction._meta.label_lower, pk),
            } for pk, number, params, _o in mine)  # fmt: skip
        else:
            items.append({
                "recipients": [owner], "kind": "improvement.assigned", "body": body,
                "title": Message(ngettext_lazy("%(n)s improvement action from the customer evaluation of %(period)s",
                                               "%(n)s improvement actions from the customer evaluation of %(period)s",
                                               len(mine)), n=len(mine), period=period),
                "url": reverse("servicedesk:improvements") + "?show=mine",
            })  # fmt: skip
    notify.send_many(items)


def settled_moment() -> dt.datetime:
    """Now, once no import (nor line removal) is writing rollups: a run starts at this moment, and the next
    incremental update re-scores what changed after it. A rollup is stamped when it is written, not when its
    import commits: a run that started while an import was writing read the rollups without its changes, and
    the update after the import, looking only at what changed since that start, did not see them either — the
    customer kept a score of purchases it no longer had until the next full run. Waiting for the rollups' writers
    (sales.rollups.lock; SQLite: the IMMEDIATE transaction's write lock) makes every change stamped before the
    moment committed, so the run reads it."""
    from pharmacrm.sales import rollups

    with transaction.atomic():
        rollups.lock()
        return timezone.now()


def _latest_run(kind: str, as_of: dt.date) -> tuple[dt.datetime, dt.date, str] | None:
    """(start, as-of day, trigger) of the latest finished run of the kind for the period under way on `as_of`. A run
    of one customer out of turn, or the credit gate's daily check, does not count (OUT_OF_TURN): it read nobody
    else's purchases, so the next update still looks for every customer changed since the run before it."""
    return (
        EvaluationRun.objects.filter(model__kind=kind, period=current_period(kind, as_of), finished_at__isnull=False)
        .exclude(trigger__in=OUT_OF_TURN)
        .order_by("-started_at")
        .values_list("started_at", "as_of", "trigger")
        .first()
    )


def _read_another_window(kind: str, as_of: dt.date, latest: tuple[dt.datetime, dt.date, str]) -> bool:
    """Whether the latest run of the period (`latest`: its start, as-of day and trigger) read other facts than a run
    as of `as_of` would, for every customer: the window moved on a month since (its first month dropped, this one's
    begun), or it was a run of an earlier day that was no update (`pharmacrm evaluate --as-of` a day of this period
    reads that day's payments and purchases; "Run now" yesterday is scored again once, harmlessly). The interim
    standings then kept those facts for every customer whose rollups did not change, until the next full run. For the customer evaluation, only while a period is in force, whose
    standings apply nothing: before the first period is evaluated in full a run sets tiers, and scoring everyone
    again each month would undo the tiers set by hand on customers whose purchases did not change."""
    _started, last_as_of, trigger = latest
    moved = month_start(last_as_of) != month_start(as_of) or (last_as_of < as_of and trigger != Trigger.IMPORT)
    if kind != ModelKind.EVALUATION:
        return moved  # the key-account scoring applies nothing
    return moved and interim_of(kind, current_period(kind, as_of), as_of) is not None


def changed_since(kind: str, as_of: dt.date | None = None, memo: dict | None = None) -> list[int] | None:
    """Customers whose rollups changed since the latest finished run of the kind for the period an
    incremental update writes (the current half-year or month as of `as_of`); None when that period has no
    run yet (the update then scores everyone). Runs of other periods do not count: a back-dated run
    (`--as-of` a past period) or a quarterly key-account evaluation left the current scores of other
    customers as they were. `memo` (a dict the caller keeps) reads the changes since one moment once: run_all
    asks for both kinds, whose latest runs, run together, started at the same moment."""
    as_of = as_of or timezone.localdate()
    latest = _latest_run(kind, as_of)
    if latest is None:
        return None
    last = latest[0]
    if _read_another_window(kind, as_of, latest):
        return None
    if memo is not None and last in memo:
        return memo[last]
    # no DISTINCT in SQL: it makes SQLite walk the (institution, month) index over every rollup instead of
    # the updated_at index over the few that changed
    changed = (
        MonthlyRollup.objects.filter(updated_at__gte=last).order_by().values_list("institution_id", flat=True)
    )
    # and the customers a corrected file took a whole month from: their rollup is gone, not updated
    emptied = RollupEmptied.objects.filter(emptied_at__gte=last).values_list("institution_id", flat=True)
    found = sorted({*changed.iterator(chunk_size=10_000), *emptied})
    if memo is not None:
        memo[last] = found
    return found


# --- the credit gate's daily check -----------------------------------------------------------------------------


def gate_out_of_date(
    as_of: dt.date | None = None, model: ScoringModel | None = None
) -> tuple[list[int], dict[int, scoring.Facts]]:
    """The customers of the customer evaluation's current period whose credit gate today differs from their score's
    (capped now and not in the score, or the other way, or capped at another class), with the facts read to tell.
    A debt that only grows older changes no rollup: no import names the customer, and the updates after imports
    do not score it again — an old debt passing the gate's days left the customer at class A until the period's
    next run of every customer. Nothing when the model has no gate.

    Set-based whatever the number of customers: one query over the period's scores the gate could concern (capped,
    or of a class better than the gate's), one over the open items of every customer (their covering index, as a
    run's _add_aged_overdue), one over the rollups of those owing old debts or capped for the two totals the gate
    looks at (_gate_totals) — no query per customer. Only the customers whose gate changed have their full facts read
    (`gather`: profiles, surveys, the rest of the rollups), for the run that scores them: the check read every
    candidate's in full each night (the customer records, the market influence, the surveys of the window), though
    nearly all of them change nothing."""
    as_of = as_of or timezone.localdate()
    model = model or active_model(ModelKind.EVALUATION)
    params = {**scoring.DEFAULT_PARAMS, **model.params}
    aged_before = gate_cutoff(as_of, params)
    if aged_before is None:
        return [], {}
    cap = params["gate_class"]
    better = [k for k in "ABCD" if k < cap]
    period = current_period(ModelKind.EVALUATION, as_of)
    scores = {
        inst: (klass, gate) for inst, klass, gate in
        Score.objects.filter(Q(gate__isnull=False) | Q(klass__in=better), kind=ModelKind.EVALUATION, period=period)
        .order_by().values_list("institution_id", "klass", "gate")
    }  # fmt: skip
    if not scores:
        return [], {}
    aged = {inst: amount or 0 for inst, amount in _aged_overdue(aged_before, None) if inst in scores}
    # capped in the score, or owing old debts now: the others are neither capped nor could be
    ids = sorted(inst for inst, (_klass, gate) in scores.items() if gate or aged.get(inst, 0) > 0)
    if not ids:
        return [], {}
    totals = _gate_totals(as_of, params, ids)
    changed = []
    for inst in ids:
        klass, gate = scores[inst]
        f = totals.get(inst)
        if f is None:  # nothing bought in the window any more: a run removes its score (capped or not, it is stale)
            if gate:
                changed.append(inst)
            continue
        f.aged_overdue_fen = aged.get(inst, 0)
        by_score = (gate or {}).get("class_before_gate") or klass
        now, why = scoring.gated_klass(by_score, f, params)
        if now != klass or (why is None) != (gate is None):
            changed.append(inst)
    if not changed:
        return [], {}
    # their facts as a run reads them, the old debts from the query above (the gate off: not read again)
    facts = gather(as_of, {**params, "gate_class": ""}, changed)
    for inst, f in facts.items():
        f.aged_overdue_fen = aged.get(inst, 0)
    return changed, facts


def _gate_totals(as_of: dt.date, params: dict, ids: list[int]) -> dict[int, scoring.Facts]:
    """What the credit gate reads of the customers `ids` besides their old debts (scoring.gate): the window's amount
    and the overdue total, summed from the rollups in one query, as `_gather` reads them (a past day's from its order
    lines) — the customers a run would score only (bought in the window or the one before, or owing; not merged), the
    others left out as `gather` leaves them out."""
    months = int(params.get("window_months") or 12)
    first, before, last = month_start(as_of, months - 1), month_start(as_of, 2 * months - 1), month_start(as_of)
    wanted = id_set(ids)
    past = as_of < timezone.localdate()
    partial = past and (as_of + dt.timedelta(days=1)).month == as_of.month  # that day's month up to that day
    rollups = MonthlyRollup.objects.filter(month__lt=last) if partial else MonthlyRollup.objects.filter(month__lte=last)
    rows = (
        rollups.filter(institution_id__any_of=wanted, institution__merged_into__isnull=True).order_by()
        .values("institution_id")
        .annotate(amount=Sum("amount_fen", filter=Q(month__gte=first)), overdue=Sum("overdue_fen"), latest=Max("month"))
        .filter(Q(latest__gte=before) | Q(overdue__gt=0))
        .values_list("institution_id", "amount", "overdue")
    )  # fmt: skip
    totals = {inst: scoring.Facts(amount_fen=amount or 0, overdue_fen=overdue or 0) for inst, amount, overdue in rows}
    if past:
        read = set(totals)
        _as_of_lines(totals, as_of, first, partial, wanted)
        joined = [inst for inst in totals if inst not in read]  # bought only that month before that day
        if joined:  # a merged one is its survivor's (gather's _add_profiles drops it)
            for inst in Institution.objects.filter(pk__any_of=id_set(joined), merged_into__isnull=False).values_list(
                "pk", flat=True
            ):
                del totals[inst]
    return totals


def sweep_gate(as_of: dt.date | None = None) -> EvaluationRun | None:
    """The worker's daily credit gate check (tasks.sweep_credit_gate): the customers whose gate today differs from
    their score's (gate_out_of_date) are evaluated again by the incremental run of those customers — class, discount
    level, reward programme, tier and improvement actions follow as after any update (a period under way once a
    period was evaluated in full: interim standings, nothing applied). None when nobody's gate changed, or the model
    has none. The run does not count as the period's latest for the updates after imports (OUT_OF_TURN)."""
    as_of = as_of or timezone.localdate()
    model = active_model(ModelKind.EVALUATION)
    if not scoring.gate_on(model.params):
        return None
    started = settled_moment()  # before the facts are read, as run_all: what changes later is the next run's
    ids, facts = gate_out_of_date(as_of, model)
    if not ids:
        return None
    done = run(ModelKind.EVALUATION, trigger=Trigger.GATE, as_of=as_of, ids=ids, facts=facts, model=model,
               started=started)  # fmt: skip
    log.info("credit gate check %s: %s customers evaluated again", done.period, len(ids))
    return done


def window_moved(as_of: dt.date | None = None) -> bool:
    """Whether the half-year's interim standings were last scored over another 12-month window than today's (the
    month has turned since): the nightly refresh then has everyone re-scored, through the incremental update
    (changed_since gives everyone)."""
    as_of = as_of or timezone.localdate()
    latest = _latest_run(ModelKind.EVALUATION, as_of)
    return latest is not None and _read_another_window(ModelKind.EVALUATION, as_of, latest)


def run_all(
    *, user=None, trigger: str = Trigger.ON_DEMAND, incremental: bool = False, as_of=None
) -> list[EvaluationRun]:
    """`pharmacrm evaluate`: the customer evaluation and the key-account scoring, now. The facts are read
    once for both when their models look at the same window."""
    as_of = as_of or timezone.localdate()
    kinds = [ModelKind.EVALUATION, ModelKind.CANDIDATE]
    # before the changed customers are looked for: what changes later is the next run's
    started = settled_moment()
    memo: dict = {}
    wanted = {kind: changed_since(kind, as_of, memo) if incremental else None for kind in kinds}
    todo = [kind for kind in kinds if wanted[kind] is None or wanted[kind]]
    # each kind is scored with the model read here, the one whose window the facts are read for: a manager saving a
    # new version (another window) while they are read scored 12 months of purchases with a model of 6, the
    # drill-down saying "over 6 months"
    models = {kind: active_model(kind) for kind in todo}
    windows = {kind: _window(models[kind]) for kind in todo}
    shared: dict[int, dict[int, scoring.Facts]] = {}
    for months in set(windows.values()):
        same = [kind for kind in todo if windows[kind] == months]
        if len(same) > 1:  # one read for both kinds: every customer, or the union of the changed ones
            ids = (
                None
                if any(wanted[k] is None for k in same)
                else sorted(set().union(*(wanted[k] for k in same)))
            )
            # with the evaluation's credit gate, whose old debts are read in the same pass
            gate = {k: models[ModelKind.EVALUATION].params.get(k) for k in scoring.GATE_PARAMS
                    if k in (models[ModelKind.EVALUATION].params or {})} if ModelKind.EVALUATION in same else {}  # fmt: skip
            shared[months] = gather(as_of, {"window_months": months, **gate}, ids)
    calls = [
        partial(run, kind, user=user, trigger=trigger, ids=wanted[kind], as_of=as_of, facts=shared.get(windows[kind]),
                model=models[kind], started=started)  # fmt: skip
        for kind in todo
    ]
    if len(calls) > 1 and may_run_in_parallel():  # PostgreSQL writes both kinds' scores at once
        return in_parallel(calls)
    return [call() for call in calls]


def _window(model: ScoringModel) -> int:
    return int({**scoring.DEFAULT_PARAMS, **model.params}.get("window_months") or 12)


def ended_period(kind: str, today: dt.date, key_accounts_only: bool = False) -> tuple[str, dt.date]:
    """The period of the cadence that ended last before `today` (on 1 July: 2026H1, 2026Q2 and 2026-06) and its
    last day."""
    last_day = period_span(current_period(kind, today, key_accounts_only))[0] - dt.timedelta(days=1)
    return current_period(kind, last_day, key_accounts_only), last_day


def scheduled(today: dt.date | None = None) -> list[EvaluationRun]:
    """The worker's daily look: evaluate each period once it has ended, as of its last day — half-yearly for every
    customer, quarterly for key accounts, monthly for the key-account identification. The run on 1 July is the
    first half-year's evaluation (2026H1, the 12 months to 30 June); it used to score "2026H2" over the purchases
    up to 1 July, and no scheduled run ever evaluated a half-year once it was complete. A period counts as
    evaluated when a run of it as of its last day started after that day (`pharmacrm evaluate --as-of` by hand,
    or the worker); the runs after imports during the period read it while it was still under way."""
    today = today or timezone.localdate()
    runs = []
    tz = timezone.get_current_timezone()
    plans = [(ModelKind.EVALUATION, False), (ModelKind.EVALUATION, True), (ModelKind.CANDIDATE, False)]
    for kind, ka_only in plans:
        period, end = ended_period(kind, today, ka_only)
        after = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=tz)
        if not EvaluationRun.objects.filter(
            model__kind=kind, period=period, finished_at__isnull=False, as_of__gte=end, started_at__gte=after
        ).exists():
            runs.append(run(kind, trigger=Trigger.SCHEDULE, as_of=end, key_accounts_only=ka_only))
    return runs
