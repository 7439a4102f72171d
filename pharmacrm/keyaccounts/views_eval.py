"""Evaluation pages (/keyaccounts/): results by class with movement, the drill-down of one score (every
component explained), the key-account candidate list, market influence (by hand or a KOL file), the
scoring models and the block on a Customer 360 page.

Scores are read through `scores_for` (the customers the user may see); every write goes through
evaluation.py or the few service functions at the end of this module (market influence, an improvement
action opened by hand), which check the capability, write in one transaction and audit."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Max, Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pharmacrm.core import access, personal
from pharmacrm.core.form_saves import create_once
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.numbers import percent_text
from pharmacrm.core.roles import Cap
from pharmacrm.customers.choices import HospitalGrade, InstitutionType, Tier
from pharmacrm.customers.forms import picker_label
from pharmacrm.customers.models import Institution
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views import AlreadyCreated, CappedPaginator
from pharmacrm.servicedesk.models import ImprovementAction
from pharmacrm.servicedesk.revisit import CLOSED_ACTIONS, mark_openable

from . import evaluation, scoring
from .choices import OPEN_PROPOSAL, AccountStatus, Component, Klass, ModelKind
from .forms_eval import (
    KIND_COMPONENTS,
    KIND_PARAMS,
    PARAMS,
    CandidateFilterForm,
    EvaluationFilterForm,
    InfluenceForm,
    KolImportForm,
    RunForm,
    ScoringModelForm,
)
from .influence import import_kols, may_edit_influence, open_improvement_action, save_influence
from .models import EvaluationRun, KeyAccount, MarketInfluence, Proposal, Score, ScoringModel, band_floor

A = AuditEntry.Action
PAGE_SIZE = 50
HISTORY_ROWS = 12  # periods on a Customer 360 block
PROPOSE_URL = "/keyaccounts/proposals/new/?institution={}"  # the programme's page (built by its helper)
CLASS_ORDER = {k: i for i, k in enumerate("ABCD")}
COMPONENT_ORDER = {c.value: i for i, c in enumerate(Component)}


# --- reading ----------------------------------------------------------------------------------------


def scores_for(user, qs=None):
    """Scores of the customers the user may see (none without the capability)."""
    qs = Score.objects.all() if qs is None else qs
    if not access.can(user, Cap.VIEW_EVALUATIONS):
        return qs.none()
    scope = access.institution_scope_q(user)
    if scope is None:
        return qs
    return qs.filter(institution_id__in=Institution.objects.filter(scope).values("id"))


def periods(kind: str) -> list[str]:
    """The periods of the kind that have a finished run, the latest first — for the customer evaluation the
    half-years (every customer) before the quarters (key accounts only), so the default is a full period."""
    rows = (
        EvaluationRun.objects.filter(model__kind=kind, finished_at__isnull=False)
        .values("period").annotate(last=Max("as_of"), started=Max("started_at")).order_by("-last", "-started")
    )  # fmt: skip
    found = [r["period"] for r in rows]
    return sorted(found, key=lambda p: "Q" in p)  # stable: keeps latest-first within each cadence


def shown_period(kind: str, known: list[str]) -> str:
    """The period a page or list shows when none is asked: for the customer evaluation the period in force (its
    results decide tiers, discounts and reward programmes; a period under way has interim standings only), else the
    latest of `known`."""
    force = evaluation.in_force(kind)
    if force in known:
        return force
    return known[0] if known else ""


def movement(klass: str, previous: str) -> str:
    """up, down, same, or new (no class in the previous period)."""
    if not previous or previous not in CLASS_ORDER or klass not in CLASS_ORDER:
        return "new"
    if klass == previous:
        return "same"
    return "up" if CLASS_ORDER[klass] < CLASS_ORDER[previous] else "down"


def _number(value) -> str:
    """A decimal without trailing zeros: 4.20 → 4.2, 40.00 → 40."""
    d = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP).normalize()
    return f"{d:f}"


def money(value) -> str:
    """¥474,680 (with fen only when there are some)."""
    d = Decimal(str(value or 0)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"¥{d:,.0f}" if d == d.to_integral_value() else f"¥{d:,.2f}"


def _label(choices, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value or "—"


def explain(component: dict) -> str:
    """What a component's value comes from, in words (from its `detail`)."""
    name, d = component.get("name"), component.get("detail") or {}
    value = _number(component.get("value", 0))
    if name == Component.AMOUNT:
        return _("%(amount)s of the %(reference)s reference over %(months)s months") % {
            "amount": money(d.get("amount")),
            "reference": money(d.get("reference")),
            "months": d.get("months"),
        }
    if name == Component.FREQUENCY:
        orders = d.get("orders", 0)
        return ngettext("%(orders)s order of %(reference)s over %(months)s months",
                        "%(orders)s orders of %(reference)s over %(months)s months", orders) % {
            "orders": orders,
            "reference": _number(d.get("reference", 0)),
            "months": d.get("months"),
        }
    if name == Component.SATISFACTION:
        if component.get("default"):
            return _("no survey answered: default %(value)s") % {"value": value}
        parts = []
        if "csat" in d:
            n = d.get("surveys", 0)
            parts.append(ngettext("CSAT %(csat)s from %(n)s survey", "CSAT %(csat)s from %(n)s surveys", n)
                         % {"csat": _number(d["csat"]), "n": n})  # fmt: skip
        if "nps" in d:
            n = d.get("nps_answers", 0)
            parts.append(ngettext("NPS %(nps)s from %(n)s answer", "NPS %(nps)s from %(n)s answers", n)
                         % {"nps": _number(d["nps"]), "n": n})  # fmt: skip
        if len(parts) == 2:  # punctuated in the reader's language: an English "; " stood between Chinese phrases
            return _("%(csat)s; %(nps)s") % {"csat": parts[0], "nps": parts[1]}
        return "".join(parts)
    if name == Component.CREDIT:
        if component.get("default"):
            return _("no payment history: default %(value)s") % {"value": value}
        share = percent_text(d.get("on_time_share", 0), fraction=True)
        overdue = Decimal(str(d.get("overdue", 0)))
        if overdue > 0 and d.get("overdue_ignored"):  # a rounding difference left open: counted as settled
            return _("paid on time %(share)s, %(overdue)s overdue (immaterial, counted as settled)") % {
                "share": share, "overdue": money(overdue)}  # fmt: skip
        if overdue > 0:
            return _("paid on time %(share)s, %(overdue)s overdue") % {"share": share, "overdue": money(overdue)}
        return _("paid on time %(share)s, nothing overdue") % {"share": share}
    if name == Component.COOPERATION:
        months = d.get("months") or 0
        if not months:
            return _("no purchases yet")
        return ngettext("buying for %(months)s month (reference %(reference)s)",
                        "buying for %(months)s months (reference %(reference)s)", months) % {
            "months": months, "reference": _number(d.get("reference", 0))}  # fmt: skip
    if name == Component.INFLUENCE:
        if "assessment" in d:
            return _("marketing's assessment %(value)s") % {"value": d["assessment"]}
        beds, specialties, kols = d.get("beds", 0), d.get("specialties", 0), d.get("kols", 0)
        facts = {  # each counted in the reader's language: an English page read "1 specialties"
            "beds": ngettext("%(n)s bed", "%(n)s beds", beds) % {"n": beds},
            "specialties": ngettext("%(n)s specialty", "%(n)s specialties", specialties) % {"n": specialties},
            "kols": ngettext("%(n)s KOL", "%(n)s KOLs", kols) % {"n": kols},
        }
        if d.get("kind") == InstitutionType.HOSPITAL and d.get("grade"):
            return _("%(grade)s, %(beds)s, %(specialties)s, %(kols)s") % {
                **facts,
                "grade": _label(HospitalGrade, d["grade"]),
            }
        return _("type %(kind)s, %(beds)s, %(specialties)s, %(kols)s") % {
            **facts,
            "kind": _label(InstitutionType, d.get("kind", "")),
        }
    if name == Component.GROWTH:
        if "growth_percent" in d:
            pct = Decimal(str(d["growth_percent"]))
            shown = percent_text(pct)
            return _("growth %(percent)s") % {"percent": f"+{shown}" if shown not in ("0%", "—") and pct > 0 else shown}
        if Decimal(str(d.get("amount", 0))) > 0:
            return _("no purchases in the window before: new business")
        return _("no purchases in this window or the one before")
    return ""


@dataclass
class Part:
    """A component as shown: label, value, weight in %, contribution, explanation."""

    name: str
    label: str
    value: Decimal
    weight_percent: str
    contribution: Decimal
    explanation: str
    default: bool


def ordered(components: list[dict] | None) -> list[dict]:
    """Components in the measures' own order (a JSON object's key order is not kept by PostgreSQL's jsonb, so
    the stored order differs between databases)."""
    return sorted(components or [], key=lambda c: COMPONENT_ORDER.get(c.get("name"), len(COMPONENT_ORDER)))


def parts(score: Score) -> list[Part]:
    out = []
    for c in ordered(score.components):
        out.append(Part(
            name=c.get("name", ""), label=_label(Component, c.get("name", "")), value=Decimal(str(c.get("value", 0))),
            weight_percent=_number(Decimal(str(c.get("weight", 0))) * 100),
            contribution=Decimal(str(c.get("contribution", 0))), explanation=explain(c), default=bool(c.get("default")),
        ))  # fmt: skip
    return out


def _score_or_404(user, pk: int) -> Score:
    access.require(user, Cap.VIEW_EVALUATIONS)
    scores = scores_for(user, Score.objects.select_related("institution__parent", "model", "run"))
    score = scores.filter(pk=pk).first()
    if score is None:
        raise Http404(_("No such score, or you may not see its customer."))
    return score


# --- results by class ---------------------------------------------------------------------------------


@login_required
@require_GET
def evaluations(request):
    user = request.user
    access.require(user, Cap.VIEW_EVALUATIONS)
    known = periods(ModelKind.EVALUATION)
    default = shown_period(ModelKind.EVALUATION, known)
    form = EvaluationFilterForm(request.GET or None, periods=known, initial={"period": default})
    data = form.cleaned()
    period = data.get("period") or default
    klass = data.get("klass") or "A"
    scoped = scores_for(user, Score.objects.filter(kind=ModelKind.EVALUATION, period=period))
    counts = {k: {"total": 0, "up": 0, "down": 0, "same": 0, "new": 0} for k in "ABCD"}
    for row in scoped.order_by().values("klass", "previous_klass").annotate(n=Count("id")):
        if row["klass"] in counts:
            counts[row["klass"]]["total"] += row["n"]
            counts[row["klass"]][movement(row["klass"], row["previous_klass"])] += row["n"]
    ids = scoped.filter(klass=klass).order_by(*Score.RANKED).values_list("id", flat=True)
    page = CappedPaginator(ids, PAGE_SIZE).get_page(request.GET.get("page") or "1")
    rows = _page_rows(list(page.object_list), with_runs=False)  # paged over ids: see _page_rows
    latest_run = (  # a run of one customer out of turn (or the credit gate's check) is not what the page's figures are "as of"
        EvaluationRun.objects.filter(model__kind=ModelKind.EVALUATION, period=period, finished_at__isnull=False)
        .exclude(trigger__in=evaluation.OUT_OF_TURN).select_related("model").order_by("-started_at").first()
    )  # fmt: skip
    # the classes whose rule opens improvement actions (D, as by default, when no run says otherwise): their
    # customers' actions of the period and those still open from before
    asking = {k for k, b in ((latest_run.model.benefits or {}) if latest_run else {}).items() if (b or {}).get("action")}
    show_actions = klass in (asking or {Klass.D})
    actions: dict[int, list[ImprovementAction]] = {}
    if show_actions and rows:
        found = ImprovementAction.objects.filter(
            Q(title__endswith=f"[{period}]") | ~Q(status__in=CLOSED_ACTIONS),
            institution_id__in=[r.institution_id for r in rows],
        ).order_by("id")
        for a in mark_openable(user, list(found)):  # a number links to a page the reader may open
            actions.setdefault(a.institution_id, []).append(a)
    # the period in force, while the credit gate caps some of its customers' interim standings of the period under
    # way below their class: the gate will cap them at the next evaluation (one query for the page)
    pending: dict[int, Score] = {}
    current = evaluation.current_period(ModelKind.EVALUATION, timezone.localdate()) if rows else None
    if current and current != period and evaluation.interim_of(ModelKind.EVALUATION, current) == period:
        pending = {s.institution_id: s for s in Score.objects.filter(
            kind=ModelKind.EVALUATION, period=current, gate__isnull=False,
            institution_id__in=[r.institution_id for r in rows],
        ).only("id", "institution_id", "period", "klass", "gate")}  # fmt: skip
    for r in rows:
        r.move = movement(r.klass, r.previous_klass)
        r.actions = actions.get(r.institution_id, [])
        interim = pending.get(r.institution_id)
        r.gate_pending = interim if evaluation.gate_pending(r, interim) else None
    context = {
        "form": form, "period": period, "periods": known, "klass": klass, "classes": "ABCD", "counts": counts,
        "page_obj": page, "rows": rows, "run": latest_run, "may_run": access.can(user, Cap.RUN_EVALUATIONS),
        "total": sum(c["total"] for c in counts.values()), "show_actions": show_actions,
        # a past period: its scores are history, tiers and actions follow the later one (and a run of it again)
        "later_period": evaluation.later_period(ModelKind.EVALUATION, period) if period else None,
        # a period under way: interim standings, tiers and actions follow the last period evaluated in full
        "interim_of": evaluation.interim_of(ModelKind.EVALUATION, period) if period else None,
    }  # fmt: skip
    return render(request, "keyaccounts/eval_results.html", context)


@login_required
@require_POST
def run_now(request):
    user = request.user
    access.require(user, Cap.RUN_EVALUATIONS)
    form = RunForm(request.POST)
    if not form.is_valid():
        raise Http404(_("No such evaluation."))
    kind = form.cleaned_data["kind"]
    run = evaluation.run(kind, user=user)
    if kind == ModelKind.EVALUATION:
        # one plural per count: "1 tier change", "3 tier changes"
        scored = ngettext("%(n)s customer scored", "%(n)s customers scored", run.customers) % {"n": run.customers}
        tiers = ngettext("%(n)s tier change", "%(n)s tier changes", run.tier_changes) % {"n": run.tier_changes}
        actions = ngettext("%(n)s improvement action opened", "%(n)s improvement actions opened",
                           run.actions) % {"n": run.actions}  # fmt: skip
        messages.success(request, _("The customer evaluation of %(period)s ran: %(scored)s, %(tiers)s, %(actions)s.")
                         % {"period": run.period, "scored": scored, "tiers": tiers, "actions": actions})  # fmt: skip
        return redirect(reverse("keyaccounts:evaluations") + f"?period={run.period}")
    messages.success(request, _("The key-account identification of %(period)s ran: %(n)s customers scored.")
                     % {"period": run.period, "n": run.customers})  # fmt: skip
    return redirect(reverse("keyaccounts:candidates") + f"?period={run.period}")


# --- drill-down ---------------------------------------------------------------------------------------


def _detail_context(request, score: Score, *, influence_form=None, conflict=False) -> dict:
    user = request.user
    history = list(
        Score.objects.filter(institution_id=score.institution_id, kind=score.kind)
        # every period's class with, when the credit gate capped it, the class the score gives and why (eval_gate.html)
        .only("id", "period", "as_of", "score", "klass", "candidate", "gate")
        # by date, as the Customer 360 block: by the label a key account's quarters sorted above the half-years
        # (2026Q1 above 2026H1, though it ended three months earlier)
        .order_by("-as_of", "-run_id")
    )  # fmt: skip
    shown = parts(score)
    context = {
        "score": score, "inst": score.institution, "inst_label": picker_label(score.institution), "parts": shown,
        "history": history,
        "total": sum((p.contribution for p in shown), Decimal(0)),
        "is_evaluation": score.kind == ModelKind.EVALUATION,
        "move": movement(score.klass, score.previous_klass),
        "may_act": score.kind == ModelKind.EVALUATION and access.can(user, Cap.RUN_EVALUATIONS),
        "conflict": conflict,
    }  # fmt: skip
    if score.kind == ModelKind.EVALUATION:
        # the period in force, while the credit gate caps the interim standing of the period under way below its
        # class: the gate will cap it at the next evaluation (evaluation.gate_pending), said beside the class
        current = evaluation.current_period(ModelKind.EVALUATION, timezone.localdate())
        if current != score.period and evaluation.interim_of(ModelKind.EVALUATION, current) == score.period:
            interim = next((h for h in history if h.period == current), None)
            if evaluation.gate_pending(score, interim):
                context["gate_pending"] = interim
        context["actions"] = mark_openable(user, list(
            ImprovementAction.objects.filter(institution_id=score.institution_id).order_by("-created_at")[:10]
        ))  # fmt: skip
    else:
        influence = MarketInfluence.objects.filter(institution_id=score.institution_id).first()
        context["influence"] = influence
        context["is_key_account"] = KeyAccount.objects.filter(
            institution_id=score.institution_id, status=AccountStatus.ACTIVE).exists()  # fmt: skip
        # a key account is no candidate (it is listed already), whatever its score: say where the score stands
        threshold = (score.model.thresholds or {}).get("candidate", 101)
        context["above_threshold"] = score.score >= Decimal(str(threshold))
        context["open_proposal"] = Proposal.objects.filter(
            institution_id=score.institution_id, status__in=OPEN_PROPOSAL).exists()  # fmt: skip
        context["may_propose"] = access.can(user, Cap.PROPOSE_KEY_ACCOUNTS)
        context["propose_url"] = PROPOSE_URL.format(score.institution_id)
        if may_edit_influence(user):
            initial = {}  # a new customer's KOL count: counted from the names entered
            if influence is not None:
                masked = personal.masks_free_text(user)  # contact details in the text: masked, put back on saving
                initial = {"kol_count": influence.kol_count, "kol_names": personal.free_text(influence.kol_names, masked),
                           "assessment": influence.assessment, "notes": personal.free_text(influence.notes, masked),
                           "version": influence.version}  # fmt: skip
            context["influence_form"] = influence_form or InfluenceForm(initial=initial)
    return context


@login_required
@require_GET
def score_detail(request, pk: int):
    score = _score_or_404(request.user, pk)
    return render(request, "keyaccounts/eval_detail.html", _detail_context(request, score))


@login_required
@require_POST
def score_action(request, pk: int):
    user = request.user
    access.require(user, Cap.RUN_EVALUATIONS)
    score = _score_or_404(user, pk)
    try:
        action = open_improvement_action(user, score)
    except ValidationError as e:
        for m in e.messages:
            messages.error(request, m)
    else:
        messages.success(request, _("Improvement action %(number)s was opened.") % {"number": action.number})
    return redirect("keyaccounts:score", pk=score.pk)


@login_required
@require_POST
def influence_edit(request, pk: int):
    user = request.user
    if not may_edit_influence(user):
        raise PermissionDenied(_("You do not have permission to do this."))
    score = _score_or_404(user, pk)
    form = InfluenceForm(request.POST)
    if form.is_valid():
        d = form.cleaned_data
        try:
            # a form without the version it was loaded with (a customer without an entry then, or not this page's)
            # must not overwrite what is there: checked where the entry is written, after anyone saving at once
            save_influence(user, score.institution, d, version=d.get("version") or 0)
        except ConflictError:
            context = _detail_context(request, score, influence_form=form, conflict=True)
            return render(request, "keyaccounts/eval_detail.html", context, status=409)
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The market influence was saved; it counts from the next identification run."))
            return redirect("keyaccounts:score", pk=score.pk)
    context = _detail_context(request, score, influence_form=form)
    return render(request, "keyaccounts/eval_detail.html", context, status=400)


# --- candidates -------------------------------------------------------------------------------------


def _candidate_rows(user, data: dict, period: str):
    qs = Score.objects.filter(kind=ModelKind.CANDIDATE, period=period)
    if data.get("only"):
        qs = qs.filter(candidate=True)  # the partial index score_candidate_band (kind, period, -band)
    elif not data.get("province") and not data.get("kind"):
        # identification scores have no class: (kind, period, klass = "") walks index score_class_band in band order
        qs = qs.filter(klass="")
    if data.get("min_score") is not None:
        qs = qs.filter(score__gte=data["min_score"], band__gte=band_floor(data["min_score"]))
    # the scores carry the customer's province and type: partial indexes on identification rows
    if data.get("province"):
        qs = qs.filter(province=data["province"])
    if data.get("kind"):
        qs = qs.filter(customer_kind=data["kind"])
    return scores_for(user, qs).order_by(*Score.RANKED)


def _page_rows(ids: list[int], *, with_runs: bool = True) -> list[Score]:
    """The page's scores, in the order of `ids`, with their customers (and runs, whose constants complete the
    components). Score lists are paged over ids alone: when PostgreSQL misjudges how many scores a filter
    keeps (a minimum score), it sorts what it reads instead of walking the index, and sorting whole rows
    (customer, components) for a deep page spilled 60 MB to disk (360 ms); sorting ids takes a few ms."""
    qs = Score.objects.select_related("institution__parent")
    found = (qs.prefetch_related("run") if with_runs else qs).in_bulk(ids)
    rows = [found[i] for i in ids if i in found]
    for r in rows:  # a department (one buying on its own is scored) with its hospital: eleven hospitals have a 心内科
        r.customer_label = picker_label(r.institution)
    return rows


@login_required
@require_GET
def candidates(request):
    return _candidates_page(request)


def _candidates_page(request, *, import_form=None, import_errors=None, status=200):
    user = request.user
    access.require(user, Cap.VIEW_EVALUATIONS)
    known = periods(ModelKind.CANDIDATE)
    form = CandidateFilterForm(request.GET or None, periods=known)
    data = form.cleaned()
    period = data.get("period") or (known[0] if known else "")
    page = CappedPaginator(_candidate_rows(user, data, period).values_list("id", flat=True), PAGE_SIZE).get_page(
        request.GET.get("page") or "1"
    )
    rows = _page_rows(list(page.object_list))
    ids = [r.institution_id for r in rows]
    key_ids = set(KeyAccount.objects.filter(institution_id__in=ids, status=AccountStatus.ACTIVE)
                  .values_list("institution_id", flat=True)) if ids else set()  # fmt: skip
    proposed = set(Proposal.objects.filter(institution_id__in=ids, status__in=OPEN_PROPOSAL)
                   .values_list("institution_id", flat=True)) if ids else set()  # fmt: skip
    offset = (page.number - 1) * PAGE_SIZE
    for i, r in enumerate(rows):
        r.rank = offset + i + 1
        r.parts = parts(r)
        r.is_key_account = r.institution_id in key_ids
        r.open_proposal = r.institution_id in proposed
        r.propose_url = PROPOSE_URL.format(r.institution_id)
    # the threshold the period's scores were flagged with (its latest run's model), not the model in force: raised
    # since, the page said "80 or more" above customers of 75 marked candidate
    run = (
        EvaluationRun.objects.filter(model__kind=ModelKind.CANDIDATE, period=period, finished_at__isnull=False)
        .select_related("model").order_by("-started_at").first()
        if period else None
    )  # fmt: skip
    model = run.model if run is not None else None
    # the filters applied (an invalid value is shown with its message at its field, and not applied)
    filtered = any(data.get(k) not in (None, "", False) for k in ("province", "kind", "min_score", "only"))
    may_import = may_edit_influence(user)
    context = {
        "form": form, "period": period, "periods": known, "page_obj": page, "rows": rows, "filtered": filtered,
        "may_run": access.can(user, Cap.RUN_EVALUATIONS), "may_propose": access.can(user, Cap.PROPOSE_KEY_ACCOUNTS),
        "threshold": (model.thresholds or {}).get("candidate") if model else None,
        "import_form": (import_form or KolImportForm()) if may_import else None, "import_errors": import_errors,
        "components": [(c.value, c.label) for c in KIND_COMPONENTS[ModelKind.CANDIDATE]],
    }  # fmt: skip
    return render(request, "keyaccounts/eval_candidates.html", context, status=status)


@login_required
@require_POST
def kol_import(request):
    user = request.user
    if not may_edit_influence(user):
        raise PermissionDenied(_("You do not have permission to do this."))
    form = KolImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _candidates_page(request, import_form=form, status=400)
    try:
        saved, errors = import_kols(user, form.cleaned_data["file"])
    except ValidationError as e:
        form.add_error("file", e)
        return _candidates_page(request, import_form=form, status=400)
    if saved:
        messages.success(
            request,
            ngettext(
                "Market influence of %(n)s customer was saved.", "Market influence of %(n)s customers was saved.", saved
            )
            % {"n": saved},
        )
    if errors:
        return _candidates_page(
            request, import_form=KolImportForm(), import_errors=errors, status=200 if saved else 400
        )
    return redirect("keyaccounts:candidates")


# --- scoring models -----------------------------------------------------------------------------------


def _model_view(model: ScoringModel) -> dict:
    params = {**scoring.DEFAULT_PARAMS, **(model.params or {})}
    weights = scoring.normalised_weights(model.weights or {})
    return {
        "model": model,
        # in the measures' order, as the form and the drill-down list them (PostgreSQL's jsonb keeps no key order:
        # the model in force read amount, credit, frequency, satisfaction)
        "weights": [(_label(Component, k), v, _number(weights.get(k, Decimal(0)) * 100))
                    for k, v in scoring.in_measure_order((model.weights or {}).items())],
        "params": _params_shown(model.kind, params),
        "thresholds": sorted((model.thresholds or {}).items()),
        "benefits": [(k, _benefit((model.benefits or {}).get(k) or {})) for k in "ABCD"]
        if model.kind == ModelKind.EVALUATION else [],
    }  # fmt: skip


def _params_shown(kind: str, params: dict) -> list[tuple]:
    """(label, value) of a model's reference values; a credit gate that is off (or a model saved before the gate) is
    one line, "Off", not three settings that do nothing."""
    gate_on = scoring.gate_on(params)
    out = []
    for k in KIND_PARAMS[kind]:
        if k not in PARAMS or (k in scoring.GATE_PARAMS and k != "gate_class" and not gate_on):
            continue
        out.append((PARAMS[k][0], (params.get(k) or _("Off")) if k == "gate_class" else params.get(k)))
    return out


def _benefit(b: dict) -> dict:
    return {**b, "tier_label": _label(Tier, b["tier"]) if b.get("tier") else ""}


@login_required
@require_GET
def scoring_models(request):
    user = request.user
    access.require(user, Cap.VIEW_EVALUATIONS)
    kinds = []
    for kind in (ModelKind.EVALUATION, ModelKind.CANDIDATE):
        active = evaluation.active_model(kind)
        history = list(ScoringModel.objects.filter(kind=kind).select_related("created_by").order_by("-version")[:20])
        for version in history:  # measures by their names in the reader's language, not their keys
            weights = scoring.in_measure_order((version.weights or {}).items())
            version.weight_labels = [(_label(Component, k), w) for k, w in weights]
            version.threshold_list = sorted((version.thresholds or {}).items())
        kinds.append({"kind": kind, "label": kind.label, **_model_view(active), "history": history})
    context = {"kinds": kinds, "may_configure": access.can(user, Cap.CONFIGURE_SCORING)}
    return render(request, "keyaccounts/eval_models.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def scoring_model_edit(request, kind: str):
    user = request.user
    access.require(user, Cap.CONFIGURE_SCORING)
    if kind not in ModelKind.values:
        raise Http404(_("No such scoring model."))
    current = evaluation.active_model(kind)
    conflict, status = False, 200
    if request.method == "POST":
        form = ScoringModelForm(request.POST, kind=kind)
        status = 400
        if form.is_valid():

            def save(current=current):
                if form.cleaned_data["version"] != current.version:  # the page loaded an older version
                    raise evaluation.ModelChanged(current)
                return evaluation.save_model(user, kind, form.service_data(), version=current.version)

            try:  # once per form: saved twice (a double click), the version the first one put in force
                model = create_once(user, form.cleaned_data["form_token"], save)
            except AlreadyCreated as e:
                model = ScoringModel.objects.filter(pk=e.pk).first() or current
                messages.success(request, _("Version %(version)s of the model is in force; it counts from the "
                                            "next run.") % {"version": model.version})  # fmt: skip
                return redirect("keyaccounts:scoring-models")
            except evaluation.ModelChanged as e:  # saved by someone else meanwhile
                current, conflict, status = e.current, True, 409
            except ValidationError as e:
                form.add_service_errors(e)
            else:
                if model.pk == current.pk:  # nothing changed: no new version
                    messages.info(request, _("Nothing was changed: version %(version)s of the model stays in "
                                             "force.") % {"version": model.version})  # fmt: skip
                else:
                    messages.success(request, _("Version %(version)s of the model is in force; it counts from "
                                                "the next run.") % {"version": model.version})  # fmt: skip
                return redirect("keyaccounts:scoring-models")
    else:
        form = ScoringModelForm(initial=ScoringModelForm.initial_from(current), kind=kind)
    context = {"form": form, "kind": ModelKind(kind), "current": current, "conflict": conflict}
    return render(request, "keyaccounts/eval_model_form.html", context, status=status)


# --- Customer 360 block -----------------------------------------------------------------------------


def sparkline(values: list[Decimal], width: int = 160, height: int = 32) -> str:
    """SVG polyline points for scores 0–100, oldest first."""
    if len(values) < 2:
        return ""
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - float(v) / 100 * height:.1f}" for i, v in enumerate(values))


@login_required
@require_GET
def customer_panel(request, institution_id: int):
    user = request.user
    access.require(user, Cap.VIEW_EVALUATIONS)
    institution = access.get_visible_or_404(user, Institution, institution_id)
    history = list(
        Score.objects.filter(institution=institution, kind=ModelKind.EVALUATION)
        .only("id", "period", "as_of", "score", "klass", "previous_klass", "gate")
        # by date, then the latest run: by the label, a key account's quarter 2026Q4 sorted above the
        # half-year 2026H2 re-scored after today's import (and 2026Q1 above 2026H2)
        .order_by("-as_of", "-run_id")[:HISTORY_ROWS]
    )  # fmt: skip
    candidate = (
        Score.objects.filter(institution=institution, kind=ModelKind.CANDIDATE)
        .only("id", "period", "score", "candidate").order_by("-as_of", "-run_id").first()
    )  # fmt: skip
    latest = history[0] if history else None
    # the latest score of a period under way is an interim standing: the class in force (tier, discount, actions) is
    # the period evaluated in full's, shown beside it — "Latest evaluation 2026H2: C" alone read as the class in
    # effect while 2026H1's D decided them (found by QA)
    interim_of = evaluation.interim_of(ModelKind.EVALUATION, latest.period) if latest else None
    deciding = None
    if interim_of:
        deciding = next((h for h in history if h.period == interim_of), None) or (
            Score.objects.filter(institution=institution, kind=ModelKind.EVALUATION, period=interim_of)
            .only("id", "period", "score", "klass", "gate").first()
        )  # fmt: skip
    context = {
        "latest": latest, "history": history, "candidate": candidate, "institution": institution,
        "interim_of": interim_of, "deciding": deciding,
        # the credit gate caps the interim standing below the class in force: it will cap it at the next evaluation
        "gate_pending": bool(interim_of) and evaluation.gate_pending(deciding, latest),
        "may_run": access.can(user, Cap.RUN_EVALUATIONS),
        "reason_max": evaluation.REASON_MAX,
        "move": movement(latest.klass, latest.previous_klass) if latest else "",
        "points": sparkline([s.score for s in reversed(history)]),
    }  # fmt: skip
    return render(request, "keyaccounts/eval_customer_block.html", context)


@login_required
@require_POST
def customer_run(request, institution_id: int):
    """"Evaluate this customer now" on a Customer 360 page: the customer alone, with a reason; back to its page."""
    user = request.user
    access.require(user, Cap.RUN_EVALUATIONS)
    institution = access.get_visible_or_404(user, Institution, institution_id)
    back = reverse("customers:institution", args=[institution.pk]) + "#evaluation"
    try:
        done, score, removed = evaluation.evaluate_customer(user, institution, request.POST.get("reason", ""))
    except ValidationError as e:
        for field, errors in e.message_dict.items():
            for error in errors:
                messages.error(request, f"{_('Reason')}: {error}" if field == "reason" else error)
        return redirect(back)
    if score is None:
        words = {"name": institution.name, "period": done.period}
        messages.warning(request, (_(
            "%(name)s has no purchases in the evaluation's window: there is nothing to score, and its earlier score "
            "of %(period)s is removed, as a run of every customer would remove it.") if removed else _(
            "%(name)s has no purchases in the evaluation's window: there is nothing to score.")) % words)  # fmt: skip
    else:
        words = {"name": institution.name, "period": done.period, "score": score.score, "klass": score.klass}
        if getattr(done, "interim_of", None):
            messages.success(request, _(
                "%(name)s was evaluated for %(period)s: score %(score)s, class %(klass)s — an interim standing: the "
                "tier follows the last period evaluated in full (%(in_force)s).") % {**words, "in_force": done.interim_of})  # fmt: skip
        else:
            messages.success(request, _("%(name)s was evaluated for %(period)s: score %(score)s, class %(klass)s.")
                             % words)  # fmt: skip
        if score.gate:  # the class the credit gate capped: why, beside it
            messages.info(request, score.gate_reason)
    return redirect(back)


urlpatterns = [
    path("evaluations/", evaluations, name="evaluations"),
    path("evaluations/customer/<int:institution_id>/run/", customer_run, name="eval-customer-run"),
    path("evaluations/run/", run_now, name="evaluation-run"),
    path("evaluations/<int:pk>/", score_detail, name="score"),
    path("evaluations/<int:pk>/action/", score_action, name="score-action"),
    path("evaluations/<int:pk>/influence/", influence_edit, name="influence"),
    path("evaluations/customer/<int:institution_id>/", customer_panel, name="eval-panel"),
    path("candidates/", candidates, name="candidates"),
    path("candidates/kols/", kol_import, name="kol-import"),
    path("models/", scoring_models, name="scoring-models"),
    path("models/<str:kind>/", scoring_model_edit, name="scoring-model-edit"),
]
