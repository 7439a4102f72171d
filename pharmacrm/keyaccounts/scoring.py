"""The scoring arithmetic, pure and hand-checkable: each component scores 0–100 against a reference
value of the model; the score is the weighted mean; every component's contribution is shown, and the
contributions add up to the score exactly (each is rounded to 0.01 and the score is their sum).

    value(amount)       = min(100, amount in the window / amount reference × 100), 0 when returns outweigh
                          the purchases (a net amount below zero)
    value(frequency)    = min(100, orders in the window / orders reference × 100)
    value(satisfaction) = mean of the parts that have answers: CSAT (average 1–5 → (avg − 1) / 4 × 100) and
                          NPS (−100…100 → (NPS + 100) / 2); the model's default when nobody answered
    value(credit)       = 70 % × share paid on time × 100 + 30 % × (100 − overdue / window amount × 100,
                          floored at 0); the model's default without any payment history. An immaterial overdue
                          total (under ¥1.00 and under 0.1 % of the window amount) counts as settled
    value(cooperation)  = min(100, months since the first order / months reference × 100)
    value(influence)    = marketing's assessment when entered, else 50 % × grade (or type) points +
                          20 % × beds / beds reference + 15 % × specialties / reference + 15 % × KOLs / reference
                          (each ratio capped at 100)
    value(growth)       = 50 + growth % × 50 / full-growth %, clamped to 0…100 (no purchases before: 100 when
                          buying now, else 50)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from django.utils.translation import pgettext_lazy

from .choices import Component, Klass

Q2 = Decimal("0.01")
Q4 = Decimal("0.0001")
HUNDRED = Decimal(100)
FIFTY = Decimal(50)
ZERO = Decimal(0)
# the measures' fixed shares, made once (a run scores tens of thousands of customers)
ON_TIME_SHARE, OVERDUE_SHARE = Decimal("0.7"), Decimal("0.3")
BASE_SHARE, BEDS_SHARE, SPECIALTIES_SHARE, KOLS_SHARE = Decimal("0.5"), Decimal("0.2"), Decimal("0.15"), Decimal("0.15")

DEFAULT_PARAMS: dict = {
    "window_months": 12,
    "amount_reference": 1_000_000,  # yuan in the window that score 100
    "orders_reference": 24,  # orders in the window that score 100
    "default_satisfaction": 60,
    "default_credit": 60,
    "cooperation_reference_months": 60,
    "growth_full_percent": 100,
    "beds_reference": 1500,
    "specialties_reference": 5,
    "kol_reference": 5,
    "grade_points": {"3A": 100, "3B": 90, "3C": 85, "3": 80, "2A": 65, "2B": 60, "2": 55, "1": 35, "0": 25},
    "kind_points": {
        "hospital": 50, "department": 40, "clinic": 20, "township": 20, "community": 25, "pharmacy": 35,
        "distributor": 70, "insurance": 60, "research": 50, "association": 45, "other": 20,
    },
}  # fmt: skip

# The reward programmes the default evaluation model ships, by a stable code: the name stored (in Chinese, as the
# rulebook names them; scores and the API's `programme` filter keep it as stored) and its translatable name. Registered
# as shipped names (core.builtin, keyaccounts.apps): until a manager renames one, each reader sees it in their
# language; a name a user typed is shown as typed.
SHIPPED_PROGRAMMES: dict[str, tuple[str, object]] = {
    "annual_excellence": ("年度优秀客户奖", pgettext_lazy("reward programme", "Annual outstanding customer award")),
    "purchase_target": ("采购额达标奖", pgettext_lazy("reward programme", "Purchase target award")),
}


DEFAULT_EVALUATION = {
    "weights": {Component.AMOUNT: 35, Component.FREQUENCY: 20, Component.SATISFACTION: 20, Component.CREDIT: 25},
    "thresholds": {"A": 80, "B": 60, "C": 40},
    "benefits": {
        "A": {"tier": "vip", "discount": 5, "programme": SHIPPED_PROGRAMMES["annual_excellence"][0], "action": False},
        "B": {"tier": "regular", "discount": 2, "programme": SHIPPED_PROGRAMMES["purchase_target"][0], "action": False},
        "C": {"tier": "regular", "discount": 0, "programme": "", "action": False},
        "D": {"tier": "regular", "discount": 0, "programme": "", "action": True},
    },
}
# The credit gate (信用闸门) of an evaluation model: the best class a customer may have while it owes more than
# `gate_amount` yuan, or more than `gate_share` % of its purchases in the window, overdue more than `gate_days`
# days. Kept in the model's params; `gate_class` "" is no gate (a model saved before the gate existed has none:
# its results stay as they were until an administrator switches it on). The default model ships with it on, at B.
GATE_PARAMS = ("gate_class", "gate_days", "gate_amount", "gate_share")
GATE_OFF: dict = {"gate_class": "", "gate_days": 90, "gate_amount": 100_000, "gate_share": 20}
GATE_DEFAULT: dict = {**GATE_OFF, "gate_class": "B"}

DEFAULT_CANDIDATE = {
    "weights": {
        Component.AMOUNT: 30, Component.FREQUENCY: 15, Component.COOPERATION: 15, Component.INFLUENCE: 25,
        Component.GROWTH: 15,
    },
    "thresholds": {"candidate": 70},
}  # fmt: skip


def q2(x) -> Decimal:
    return Decimal(x).quantize(Q2, ROUND_HALF_UP)


@lru_cache(maxsize=1024)
def _reference(value) -> Decimal:
    """A model's parameter as a Decimal (they come from JSON: int, float or text); cached, since a run
    asks for the same few thousands of times."""
    return Decimal(str(value or 0))


# comparisons instead of min()/max() below: a run calls these a few hundred thousand times

def _ratio(value, reference) -> Decimal:
    """value / reference × 100, within 0…100: a window whose returns outweigh its purchases (a net amount below
    zero) scores 0, not a negative value that would pull the other measures' contributions down."""
    reference = _reference(reference)
    if reference <= 0:
        return HUNDRED if value > 0 else ZERO
    x = Decimal(value) / reference * HUNDRED
    return ZERO if x < ZERO else x if x < HUNDRED else HUNDRED


def _overdue_immaterial(overdue_fen: int, amount_fen: int) -> bool:
    from pharmacrm.sales.rollups import overdue_immaterial

    return overdue_immaterial(overdue_fen, amount_fen)


def _clamp(x: Decimal) -> Decimal:
    return ZERO if x < ZERO else HUNDRED if x > HUNDRED else x


@dataclass
class Facts:
    """What is known about one customer, from rollups and the customer record (amounts in fen)."""

    amount_fen: int = 0
    orders: int = 0
    previous_amount_fen: int = 0  # the window before
    on_time_fen: int = 0
    late_fen: int = 0
    overdue_fen: int = 0  # of the window's months
    aged_overdue_fen: int = 0  # of which overdue more than the credit gate's days (read only when the gate is on)
    months_cooperating: int | None = None  # since the first order; None = never ordered
    csat_sum: int = 0
    csat_count: int = 0
    nps_promoters: int = 0
    nps_detractors: int = 0
    nps_count: int = 0
    kind: str = ""
    grade: str = ""
    beds: int | None = None
    specialties: int = 0
    kols: int = 0
    assessment: int | None = None
    province: str = ""
    tier: str = ""  # the customer's tier when the facts were read (not scored)


@dataclass(slots=True)
class Part:
    name: str
    value: Decimal
    detail: dict = field(default_factory=dict)
    default: bool = False  # no data: the model's default value


# Each measure takes `lean`: without the detail keys `constants` holds (CONSTANT_DETAIL), as score_parts stores them.


def amount(f: Facts, p: dict, lean: bool = False) -> Part:
    yuan = Decimal(f.amount_fen) / 100
    detail = {"amount": str(yuan.quantize(Q2, ROUND_HALF_UP))}
    if not lean:
        detail["reference"], detail["months"] = p["amount_reference"], p["window_months"]
    return Part(Component.AMOUNT, _ratio(yuan, p["amount_reference"]), detail)


def frequency(f: Facts, p: dict, lean: bool = False) -> Part:
    detail = {"orders": f.orders} if lean else {"orders": f.orders, "reference": p["orders_reference"], "months": p["window_months"]}
    return Part(Component.FREQUENCY, _ratio(f.orders, p["orders_reference"]), detail)


def satisfaction(f: Facts, p: dict, lean: bool = False) -> Part:
    parts, detail = [], {"surveys": f.csat_count, "nps_answers": f.nps_count}
    if f.csat_count:
        avg = Decimal(f.csat_sum) / f.csat_count
        parts.append((avg - 1) / 4 * HUNDRED)
        detail["csat"] = str(q2(avg))
    if f.nps_count:
        nps = Decimal(f.nps_promoters - f.nps_detractors) / f.nps_count * HUNDRED
        parts.append((nps + HUNDRED) / 2)
        detail["nps"] = str(q2(nps))
    if not parts:
        return Part(Component.SATISFACTION, Decimal(p["default_satisfaction"]), detail, default=True)
    return Part(Component.SATISFACTION, _clamp(sum(parts) / len(parts)), detail)


def credit(f: Facts, p: dict, lean: bool = False) -> Part:
    # an immaterial overdue total (a rounding difference left open, docs/purchases.md) counts as settled, as for
    # the credit status: left out of the share paid on time and of the overdue share; the detail still shows it
    ignored = 0 < f.overdue_fen and f.overdue_fen * 1000 < f.amount_fen and _overdue_immaterial(f.overdue_fen, f.amount_fen)
    overdue = 0 if ignored else f.overdue_fen
    due = f.on_time_fen + f.late_fen + overdue
    if not due:
        return Part(Component.CREDIT, Decimal(p["default_credit"]), {}, default=True)
    share = Decimal(f.on_time_fen) / Decimal(due)
    overdue_share = Decimal(overdue) / Decimal(f.amount_fen) * HUNDRED if f.amount_fen > 0 else (
        HUNDRED if overdue else Decimal(0))  # fmt: skip
    value = ON_TIME_SHARE * share * HUNDRED + OVERDUE_SHARE * max(ZERO, HUNDRED - overdue_share)
    # half up, as the credit panel rounds the same share (sales.services.half_up): Decimal's default, half to even,
    # gave 0.9742 here beside the panel's 0.9743 for 389.70 of 400.00 paid on time
    detail = {
        "on_time_share": str(share.quantize(Q4, ROUND_HALF_UP)), "overdue": str(q2(Decimal(f.overdue_fen) / 100)),
    }  # fmt: skip
    if ignored:
        detail["overdue_ignored"] = True
    return Part(Component.CREDIT, _clamp(value), detail)


def cooperation(f: Facts, p: dict, lean: bool = False) -> Part:
    months = f.months_cooperating or 0
    detail = {"months": months} if lean else {"months": months, "reference": p["cooperation_reference_months"]}
    return Part(Component.COOPERATION, _ratio(months, p["cooperation_reference_months"]), detail)


def influence(f: Facts, p: dict, lean: bool = False) -> Part:
    if f.assessment is not None:
        return Part(Component.INFLUENCE, _clamp(Decimal(f.assessment)), {"assessment": f.assessment})
    if f.kind == "hospital" and f.grade:
        base = Decimal(p["grade_points"].get(f.grade, 0))
    else:
        base = Decimal(p["kind_points"].get(f.kind, 0))
    beds = _ratio(f.beds or 0, p["beds_reference"])
    spec = _ratio(f.specialties, p["specialties_reference"])
    kols = _ratio(f.kols, p["kol_reference"])
    value = BASE_SHARE * base + BEDS_SHARE * beds + SPECIALTIES_SHARE * spec + KOLS_SHARE * kols
    detail = {"grade": f.grade, "kind": f.kind, "beds": f.beds or 0, "specialties": f.specialties, "kols": f.kols}
    return Part(Component.INFLUENCE, _clamp(value), detail)


def growth(f: Facts, p: dict, lean: bool = False) -> Part:
    detail = {"amount": str(q2(Decimal(f.amount_fen) / 100)), "previous": str(q2(Decimal(f.previous_amount_fen) / 100))}
    if f.previous_amount_fen <= 0:
        return Part(Component.GROWTH, HUNDRED if f.amount_fen > 0 else FIFTY, detail)
    pct = (Decimal(f.amount_fen) - Decimal(f.previous_amount_fen)) / Decimal(f.previous_amount_fen) * HUNDRED
    detail["growth_percent"] = str(q2(pct))
    full = _reference(p["growth_full_percent"] or 100)
    return Part(Component.GROWTH, _clamp(FIFTY + pct * 50 / full), detail)


MEASURES = {
    Component.AMOUNT: amount, Component.FREQUENCY: frequency, Component.SATISFACTION: satisfaction,
    Component.CREDIT: credit, Component.COOPERATION: cooperation, Component.INFLUENCE: influence,
    Component.GROWTH: growth,
}  # fmt: skip


MEASURE_ORDER = [c.value for c in Component]


def in_measure_order(items) -> list[tuple]:
    """(measure, value) pairs in the measures' fixed order (unknown ones last): jsonb does not keep an
    object's key order."""
    last = len(MEASURE_ORDER)
    return sorted(items, key=lambda kv: MEASURE_ORDER.index(kv[0]) if kv[0] in MEASURE_ORDER else last)


def normalised_weights(weights: dict) -> dict[str, Decimal]:
    """Weights as fractions adding up to 1 (4 places; the last one takes the rounding rest)."""
    items = in_measure_order((str(k), Decimal(str(w))) for k, w in weights.items() if Decimal(str(w)) > 0)
    total = sum((w for _k, w in items), Decimal(0))
    if not total:
        return {}
    out, used = {}, Decimal(0)
    for i, (k, w) in enumerate(items):
        share = (Decimal(1) - used) if i == len(items) - 1 else (w / total).quantize(Q4, rounding=ROUND_HALF_UP)
        out[k] = share
        used += share
    return out


MEASURE_BY_NAME = {str(k.value): fn for k, fn in MEASURES.items()}


def score(f: Facts, weights: dict, params: dict, *, normalised: dict | None = None) -> tuple[Decimal, list[dict]]:
    """(score, components): each component {name, value, weight, contribution, detail, default}."""
    p = {**DEFAULT_PARAMS, **(params or {})}
    shares = normalised if normalised is not None else normalised_weights(weights)
    total, parts = score_parts(f, shares, p)
    return total, expand(parts, constants(shares, p))


# Detail keys that hold the model's reference values, the same for every customer of a run. A run keeps them,
# with the weights, once (EvaluationRun.constants) instead of in each of its tens of thousands of scores:
# they were half of every stored score, and storing scores is most of an incremental update's time.
CONSTANT_DETAIL = {
    Component.AMOUNT.value: ("reference", "months"), Component.FREQUENCY.value: ("reference", "months"),
    Component.COOPERATION.value: ("reference",),
}  # fmt: skip


def constants(normalised: dict, params: dict) -> dict:
    """What every score of a run shares, per component: its weight and the reference values of its detail
    (`params` complete)."""
    probe, out = Facts(), {}
    for name, weight in normalised.items():
        detail = MEASURE_BY_NAME[name](probe, params).detail
        out[name] = {"weight": str(weight), "detail": {k: detail[k] for k in CONSTANT_DETAIL.get(name, ()) if k in detail}}
    return out


def score_parts(f: Facts, normalised: dict, params: dict, plan: list | None = None) -> tuple[Decimal, list[dict]]:
    """(score, parts): the components without what `constants` holds ({name, value, contribution, detail
    when any, default only when true}); `expand` makes them whole. `params` complete; `plan`: score_plan(normalised),
    made once for a run's many customers."""
    parts, total = [], ZERO
    for name, measure, weight in plan or score_plan(normalised):
        part = measure(f, params, True)
        value = part.value.quantize(Q2, ROUND_HALF_UP)
        contribution = (value * weight).quantize(Q2, ROUND_HALF_UP)
        total += contribution
        item = {"name": name, "value": str(value), "contribution": str(contribution)}
        if part.detail:
            item["detail"] = part.detail
        if part.default:
            item["default"] = True
        parts.append(item)
    return total, parts


def score_plan(normalised: dict) -> list[tuple]:
    """(name, measure, weight) of each weighted measure, in the weights' order."""
    return [(name, MEASURE_BY_NAME[name], weight) for name, weight in normalised.items()]


def is_whole(components: list) -> bool:
    """Whether stored components are already whole (scores stored before runs kept their constants, and
    components copied elsewhere): every one names its weight."""
    return all(isinstance(c, dict) and "weight" in c for c in components)


def expand(parts: list[dict], shared: dict) -> list[dict]:
    """Whole components {name, value, weight, contribution, detail, default} from a score's parts and its
    run's constants."""
    out = []
    for c in parts:
        name = c.get("name", "")
        common = shared.get(name) or {}
        out.append({
            "name": name, "value": c.get("value", "0"), "weight": common.get("weight", "0"),
            "contribution": c.get("contribution", "0"), "detail": {**(c.get("detail") or {}), **(common.get("detail") or {})},
            "default": bool(c.get("default")),
        })  # fmt: skip
    return out


CLASSES_ABOVE_D = [(k, k.value) for k in (Klass.A, Klass.B, Klass.C)]


def klass(value: Decimal, thresholds: dict) -> str:
    """A if the score reaches the A threshold, and so on; D below C's."""
    for k, name in CLASSES_ABOVE_D:
        limit = thresholds.get(k)
        if limit is not None and value >= _reference(limit):
            return name
    return Klass.D.value


def gate_on(params: dict) -> bool:
    return bool((params or {}).get("gate_class"))


def gate(f: Facts, params: dict) -> dict | None:
    """Why the credit gate applies to a customer, or None: {"days", "overdue" (yuan, text), "reason": "amount" with
    "limit" (yuan) or "share" with "share" (%) and "purchases" (the window's amount)}. The amount owed more than
    `gate_days` days past its due date above `gate_amount` applies first, above `gate_share` % of the window's
    purchases next (a customer who bought nothing in the window and owes an old debt is above any share). An
    immaterial overdue total (sales.rollups.overdue_immaterial) is settled here too, as in the credit measure."""
    from pharmacrm.sales.rollups import overdue_immaterial

    aged = f.aged_overdue_fen
    if aged <= 0 or not params.get("gate_class") or overdue_immaterial(f.overdue_fen, f.amount_fen):
        return None
    days = int(params.get("gate_days") or 0)
    overdue = str(q2(Decimal(aged) / 100))
    limit = _reference(params.get("gate_amount"))
    if Decimal(aged) > limit * 100:
        return {"reason": "amount", "days": days, "overdue": overdue, "limit": str(q2(limit))}
    share = _reference(params.get("gate_share"))
    if Decimal(aged) * 100 > share * f.amount_fen:
        return {"reason": "share", "days": days, "overdue": overdue, "share": f"{share.normalize():f}",
                "purchases": str(q2(Decimal(max(f.amount_fen, 0)) / 100))}  # fmt: skip
    return None


def gated_klass(klass_by_score: str, f: Facts, params: dict) -> tuple[str, dict | None]:
    """(class, gate): the class the score gives, capped at the gate's class when the gate applies; `gate` is its
    reason with the class the score alone gives ("class_before_gate") when it changed the class, else None."""
    cap = params.get("gate_class")
    # "A" < "B" < "C" < "D": a class at or below the cap is left as it is (most customers: no work beyond this line)
    if not cap or klass_by_score >= cap or f.aged_overdue_fen <= 0:
        return klass_by_score, None
    why = gate(f, params)
    if why is None:
        return klass_by_score, None
    return cap, {**why, "class_before_gate": klass_by_score, "class": cap}


def validate_model(kind: str, weights: dict, params: dict, thresholds: dict) -> dict[str, list[str]]:
    """Field errors of a model definition (empty when it is usable); messages in the active language."""
    from django.utils.translation import gettext as _

    from .choices import ModelKind

    errors: dict[str, list[str]] = {}
    allowed = {c.value for c in Component}
    if kind == ModelKind.EVALUATION:
        allowed -= {Component.COOPERATION, Component.INFLUENCE, Component.GROWTH}
    bad = [k for k in weights if k not in allowed]
    try:
        values = [Decimal(str(w)) for w in weights.values()]
    except Exception:
        values = None
    if bad:
        errors["weights"] = [_("Unknown measures: %(names)s.") % {"names": ", ".join(map(str, bad))}]
    elif values is None or any(v < 0 or v > 1000 for v in values):
        errors["weights"] = [_("Each weight must be a number from 0 to 1000.")]
    elif not any(v > 0 for v in values):
        errors["weights"] = [_("Give at least one measure a weight above zero.")]
    try:
        limits = {k: Decimal(str(v)) for k, v in thresholds.items()}
    except Exception:
        limits = None
    # a threshold the model does not have ({"a": 85} for class A) was stored beside the real ones and changed
    # nothing, while the answer said the model was saved
    unknown = [str(k) for k in thresholds if k not in (("A", "B", "C") if kind == ModelKind.EVALUATION else ("candidate",))]
    if unknown:
        errors["thresholds"] = [_("Unknown thresholds: %(names)s.") % {"names": ", ".join(unknown)}]
    elif limits is None or any(not (0 <= v <= 100) for v in limits.values()):
        errors["thresholds"] = [_("Thresholds are scores from 0 to 100.")]
    elif kind == ModelKind.EVALUATION:
        a, b, c = (limits.get(k) for k in ("A", "B", "C"))
        if None in (a, b, c) or not (a > b > c):
            errors["thresholds"] = [_("Give the lowest score of classes A, B and C, with A above B above C.")]
    elif "candidate" not in limits:
        errors["thresholds"] = [_("Give the lowest score that makes a customer a candidate.")]
    params = params or {}
    if "window_months" in params:
        w = params["window_months"]
        if not (isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 120):
            errors.setdefault("params", []).append(_("The window is a whole number of months from 1 to 120."))
    for key in ("default_satisfaction", "default_credit"):
        if key in params:
            try:
                ok = 0 <= Decimal(str(params[key])) <= 100
            except Exception:
                ok = False
            if not ok:
                errors.setdefault("params", []).append(
                    _("%(name)s must be a score from 0 to 100.") % {"name": param_label(key)}
                )
    for key in ("amount_reference", "orders_reference", "cooperation_reference_months", "beds_reference",
                "specialties_reference", "kol_reference", "growth_full_percent"):  # fmt: skip
        if key in (params or {}):
            try:
                ok = Decimal(str(params[key])) > 0
            except Exception:
                ok = False
            if not ok:
                errors.setdefault("params", []).append(
                    _("%(name)s must be a number above zero.") % {"name": param_label(key)}
                )
    if any(key in params for key in GATE_PARAMS):
        if kind != ModelKind.EVALUATION:
            errors.setdefault("params", []).append(_("Only the customer evaluation has a credit gate."))
        else:
            for messages in gate_errors(params).values():
                errors.setdefault("params", []).extend(messages)
    return errors


def gate_errors(params: dict) -> dict[str, list[str]]:
    """The credit gate's settings, each error at its own key (the form shows it at its field; the service and the
    API under params)."""
    from django.utils.translation import gettext as _

    errors: dict[str, list[str]] = {}
    cap = params.get("gate_class", "")
    if cap not in ("", None, "B", "C", "D"):
        errors["gate_class"] = [_("The credit gate caps the class at B, C or D, or is off.")]
    days = params.get("gate_days", 90)
    if not (isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= 3650):
        errors["gate_days"] = [_("%(name)s must be a whole number of days from 1 to 3650.") % {"name": param_label("gate_days")}]
    for key, top in (("gate_amount", Decimal("1000000000000")), ("gate_share", HUNDRED)):
        try:
            ok = not isinstance(params.get(key, 0), bool) and 0 <= Decimal(str(params.get(key, 0))) <= top
        except Exception:
            ok = False
        if not ok:
            errors[key] = [
                _("%(name)s must be a number from 0 to %(max)s.") % {"name": param_label(key), "max": f"{top:,}"}
            ]
    return errors


def param_label(key: str) -> str:
    """A reference value's name in the reader's language (the form's label), never its JSON key."""
    from .forms_eval import PARAMS

    return str(PARAMS[key][0]) if key in PARAMS else key
