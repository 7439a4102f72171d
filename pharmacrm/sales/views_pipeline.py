"""Sales pipeline pages (/sales/pipeline/): the board (a column per stage with counts and sums) and the list with its
filters and Excel export, an opportunity's page (details, stage history, the move form), the new and edit forms,
the funnel of a period (/sales/pipeline/funnel/) and the open opportunities block of a Customer 360 page.
pipeline.py decides who sees what, checks and saves."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Sum
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pharmacrm.core import access, audit, downloads, personal
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.numbers import percent_text
from pharmacrm.customers.choices import Source
from pharmacrm.customers.models import Institution
from pharmacrm.customers.views import PAGE_SIZE, CappedPaginator

from . import pipeline
from .forms_pipeline import MoveForm, OpportunityForm, PipelineFilterForm, apply_filters
from .models import Opportunity, yuan
from .views import money

A = AuditEntry.Action
S = Opportunity.Stage
BOARD_CARDS = 30  # cards shown per column (the most urgent first); the counts and sums cover them all
CUSTOMER_BLOCK = 10
ORDERING = ("close_date", "id")


def _pct(value) -> str:
    return percent_text(value)


def _decorate(rows: list[Opportunity], today) -> list[Opportunity]:
    for o in rows:
        o.amount_text = money(o.amount)
        o.stale = bool(pipeline.staleness(o, today))
        o.stage_text = pipeline.stage_label(o.stage)
        o.probability = pipeline.probability(o.stage)
    return rows


def _filtered(request):
    user = request.user
    scope = pipeline.scope_for(user)
    form = PipelineFilterForm(request.GET or None, user=user)
    data = form.cleaned()
    qs = pipeline.opportunities_for(user, scope=scope)
    if form.has_errors:
        return form, data, qs.none(), scope
    return form, data, apply_filters(qs, data, user), scope


def _query(request, **replaced) -> str:
    """The filters of the page as a query string, each once (the filters take one value: the last one sent), with
    `replaced` put in place of what was sent: the links built from it never grow (stage=won&stage=won…)."""
    q = request.GET.copy()
    q.pop("page", None)
    q.pop("view", None)
    for key in list(q):
        q.setlist(key, q.getlist(key)[-1:])
    for key, value in replaced.items():
        q.setlist(key, [value])
    return q.urlencode()


@login_required
@require_GET
def board(request):
    """The board (a column per stage) or the list (?view=list) of the opportunities the user may see, filtered."""
    form, data, qs, scope = _filtered(request)
    today = pipeline.beijing_today()
    view = "list" if request.GET.get("view") == "list" else "board"
    context = {"form": form, "filtered": bool(data) or form.has_errors, "invalid": form.has_errors, "view": view,
               "query": _query(request), "may_work": pipeline.may_work(request.user), "scope": scope}  # fmt: skip
    if view == "list":
        page = CappedPaginator(
            qs.select_related("institution", "owner", "team", "product").order_by(*ORDERING), PAGE_SIZE
        ).get_page(request.GET.get("page") or "1")
        context.update(page_obj=page, rows=_decorate(list(page.object_list), today))
    else:
        sums = {
            r["stage"]: r
            for r in qs.order_by().values("stage").annotate(n=Count("pk"), fen=Sum("amount_fen"))
        }
        columns = []
        for stage in S:
            cards = qs.filter(stage=stage).select_related("institution", "owner")
            cards = (
                cards.order_by("-closed_on", "-id") if stage in pipeline.CLOSED else cards.order_by(*ORDERING)
            )
            row = sums.get(stage.value, {"n": 0, "fen": 0})
            fen = int(row["fen"] or 0)
            columns.append({
                "stage": stage.value, "label": stage.label, "count": row["n"], "sum": money(yuan(fen)),
                "probability": pipeline.probability(stage), "weighted": money(yuan(round(fen * pipeline.probability(stage) / 100))),
                "cards": _decorate(list(cards[:BOARD_CARDS]), today), "more": max(0, row["n"] - BOARD_CARDS),
                "more_query": _query(request, stage=stage.value),
            })  # fmt: skip
        context["columns"] = columns
    return render(request, "sales/pipeline.html", context, status=400 if form.has_errors else 200)


def export_xlsx(rows, today, masked: bool = True) -> bytes:
    """The opportunities as an Excel sheet; `masked`: the title, the competitor, the next step and the lost reason's
    details with the contact details typed in them masked (a reader who sees personal data masked)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = _("Opportunities")[:31]
    head = [pgettext("record title", "Title"), _("Customer"), _("Contact person"), _("Product"), _("Expected amount (¥)"), _("Stage"),
            _("Probability (%)"), _("Weighted (¥)"), _("Expected close date"), _("Owner"), _("Team"),
            _("Information source"), _("Competitor"), _("Next step"), _("Next step date"), _("Stale"),
            _("Lost reason"), _("Lost reason details"), _("Won on"), _("Created")]  # fmt: skip
    sheet.append(head)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sources = dict(Source.choices)
    reasons = dict(Opportunity.LostReason.choices)
    for o in rows:
        p = pipeline.probability(o.stage)
        downloads.append_row(sheet, [
            personal.free_text(o.title, masked), o.institution.name, o.contact.name if o.contact_id else None,
            str(o.product) if o.product_id else None, float(o.amount), pipeline.stage_label(o.stage), p,
            float(yuan(round(o.amount_fen * p / 100))), o.close_date,
            (o.owner.display_name or o.owner.username) if o.owner_id else None, o.team.shown_name if o.team_id else None,
            str(sources.get(o.source, o.source)) if o.source else None, personal.free_text(o.competitor, masked) or None,
            personal.free_text(o.next_step, masked) or None,
            o.next_step_date, _("yes") if pipeline.staleness(o, today) else None,
            str(reasons.get(o.lost_reason, o.lost_reason)) if o.lost_reason else None, personal.free_text(o.lost_note, masked) or None,
            o.won_on,
            timezone.localtime(o.created_at).replace(tzinfo=None),
        ])  # fmt: skip
    for column, width in (("A", 30), ("B", 28)):
        sheet.column_dimensions[column].width = width
    return downloads.workbook_bytes(book)


@login_required
@require_GET
def export(request):
    """The list as filtered, as an Excel file (audited)."""
    form, data, qs, _scope = _filtered(request)
    if form.has_errors:
        return board(request)
    rows = list(qs.select_related("institution", "contact", "owner", "team", "product").order_by(*ORDERING))
    audit.record(A.EXPORT, ("sales.opportunity", "", "list"), user=request.user, format="XLSX", rows=len(rows),
                 filters={k: str(getattr(v, "pk", v)) for k, v in data.items()})  # fmt: skip
    data = export_xlsx(rows, pipeline.beijing_today(), personal.masks_free_text(request.user))
    return downloads.xlsx(data, _("Opportunities"))


def _opportunity_or_404(user, pk: int) -> Opportunity:
    scope = pipeline.scope_for(user)
    opp = (
        pipeline.opportunities_for(user, scope=scope)
        .select_related("institution", "contact", "owner", "team", "product")
        .filter(pk=pk).first()
    )  # fmt: skip
    if opp is None:
        raise Http404(_("No such opportunity, or you may not see it."))
    return opp


def _detail(request, opp: Opportunity, move_form=None, status: int = 200, error: str = ""):
    today = pipeline.beijing_today()
    _decorate([opp], today)
    may_change = pipeline.may_change(request.user, opp)
    if move_form is None and may_change:
        masked = personal.masks_free_text(request.user)  # shown as the page shows it; saved back as stored
        move_form = MoveForm(initial={"version": opp.version, "next_step": personal.free_text(opp.next_step, masked),
                                      "next_step_date": opp.next_step_date})  # fmt: skip
    moves = list(opp.moves.select_related("by"))
    context = {
        "opp": opp, "history": pipeline.time_in_stage(opp, moves), "move_form": move_form, "may_change": may_change,
        "error": error, "sources": dict(Source.choices), "lost_reasons": dict(Opportunity.LostReason.choices),
        "weighted": money(yuan(round(opp.amount_fen * pipeline.probability(opp.stage) / 100))),
    }  # fmt: skip
    return render(request, "sales/opportunity.html", context, status=status)


@login_required
@require_GET
def detail(request, pk: int):
    return _detail(request, _opportunity_or_404(request.user, pk))


@login_required
@require_POST
def move(request, pk: int):
    """Move the opportunity to another stage (a lost one needs its reason); refused when someone moved it first."""
    opp = _opportunity_or_404(request.user, pk)
    pipeline.require_change(request.user, opp)
    form = MoveForm(request.POST)
    if not form.is_valid():
        return _detail(request, opp, form, status=400)
    d = form.cleaned_data
    try:
        pipeline.move(request.user, opp, d["stage"], d["version"], lost_reason=d["lost_reason"], lost_note=d["lost_note"],
                      won_on=d["won_on"], next_step=d["next_step"] or None, next_step_date=d["next_step_date"])  # fmt: skip
    except pipeline.OpportunityConflict as e:
        return _detail(request, _opportunity_or_404(request.user, pk), None, status=409, error=str(e))
    except ValidationError as e:
        for name, errors in e.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
        return _detail(request, opp, form, status=400)
    messages.success(
        request,
        _("The opportunity is now at the stage “%(stage)s”.") % {"stage": pipeline.stage_label(d["stage"])},
    )
    return redirect("sales:opportunity", pk=opp.pk)


def _form_page(request, form, opp=None, status=200, error=""):
    return render(
        request, "sales/opportunity_form.html", {"form": form, "opp": opp, "error": error}, status=status
    )


def _sent_again(request, pk):
    """A new opportunity's form sent a second time (a double click, a replay): the one the first created."""
    messages.info(request, _("This form was already sent: the opportunity was created then, and not a second time."))
    return redirect("sales:opportunity", pk=pk)


def _save(request, form, opp=None):
    from pharmacrm.customers.views import AlreadyCreated, _create_once, _created_with

    if opp is None and (done := _created_with(request.user, request.POST.get("form_token", ""))):
        return _sent_again(request, done)
    if not form.is_valid():
        return _form_page(request, form, opp, status=400)
    try:
        if opp is None:  # created once per form: two clicks or two requests at once make one opportunity
            saved = _create_once(request.user, form.cleaned_data.get("form_token"), form.save)
        else:
            saved = form.save()
    except AlreadyCreated as e:
        return _sent_again(request, e.pk)
    except pipeline.OpportunityConflict as e:
        return _form_page(request, form, opp, status=409, error=str(e))
    except ValidationError as e:
        for name, errors in e.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
        return _form_page(request, form, opp, status=400)
    messages.success(request, _("Opportunity saved."))
    return redirect("sales:opportunity", pk=saved.pk)


@login_required
@require_http_methods(["GET", "POST"])
def create(request):
    """A new opportunity; ?customer=<id> chooses the customer (the link on a Customer 360 page)."""
    if not pipeline.may_work(request.user):
        raise PermissionDenied(_("You do not have permission to do this."))
    if request.method == "POST":
        return _save(request, OpportunityForm(request.POST, user=request.user))
    initial = {}
    customer = (request.GET.get("customer") or "").strip()
    if is_id(customer):
        inst = (
            access.institutions_for(request.user, Institution.objects.active())
            .filter(pk=int(customer))
            .first()
        )
        if inst is not None:
            initial = {
                "institution": inst.pk,
                "owner": inst.owner_id,
                "team": inst.team_id,
                "source": inst.source,
            }
    return _form_page(request, OpportunityForm(initial=initial, user=request.user))


@login_required
@require_http_methods(["GET", "POST"])
def edit(request, pk: int):
    opp = _opportunity_or_404(request.user, pk)
    pipeline.require_change(request.user, opp)
    if request.method == "POST":
        return _save(request, OpportunityForm(request.POST, user=request.user, instance=opp), opp)
    initial = {f: getattr(opp, f"{f}_id", None) if f in ("institution", "contact", "product", "owner", "team")
               else getattr(opp, f) for f in pipeline.FIELDS}  # fmt: skip
    masked = personal.masks_free_text(request.user)  # the texts as the page shows them; masks saved back as stored
    initial.update({f: personal.free_text(initial[f], masked) for f in pipeline.TEXTS if f in initial})
    initial["version"] = opp.version
    return _form_page(request, OpportunityForm(initial=initial, user=request.user, instance=opp), opp)


# --- the funnel ------------------------------------------------------------------------------------------


def _period(request):
    raw = request.GET.get("period", "")
    if not raw.strip():
        return pipeline.current_period("quarter"), ""
    try:
        return pipeline.parse_period(raw), ""
    except ValidationError as e:
        return pipeline.current_period("quarter"), " ".join(e.message_dict["period"])


def _choices(current) -> list[tuple[str, list[str]]]:
    now = pipeline.current_period("month")
    months = [now.shifted(-i).key for i in range(0, 18)]
    quarter = pipeline.current_period("quarter")
    quarters = [quarter.shifted(-i).key for i in range(0, 8)]
    years = [str(now.year - i) for i in range(4)]
    for keys, kind in ((months, "month"), (quarters, "quarter"), (years, "year")):
        if current.kind == kind and current.key not in keys:
            keys.append(current.key)
    return [(_("Month"), months), (_("Quarter"), quarters), (_("Year"), years)]


def figures_cells(f: pipeline.Figures) -> dict:
    return {
        "key": f.key, "label": f.label, "created": f.created, "reached": f.reached,
        "conversions": [_pct(c) for c in f.conversions], "won": f.won, "lost": f.lost, "win_rate": _pct(f.win_rate),
        "won_amount": money(f.won_amount), "average_deal": "—" if f.average_deal is None else money(f.average_deal),
        "days_to_win": "—" if f.average_days_to_win is None else f.average_days_to_win,
        "open_count": f.open_count, "open_amount": money(f.open_amount), "weighted": money(f.weighted),
    }  # fmt: skip


@login_required
@require_GET
def funnel(request):
    """The funnel of a period: reached each stage, conversion, win rate, deal size, days to win, lost reasons, the
    weighted forecast; in total, per owner and per team."""
    period, error = _period(request)
    fun = pipeline.funnel(request.user, period)
    steps = fun.steps
    conversions = [None, *fun.total.conversions]
    chart = {
        "steps": [{"name": label, "value": n} for _code, label, n in steps],
        "title": _("Opportunities created in %(period)s, by the furthest stage reached")
        % {"period": period.key},
    }
    forecast = [{"key": m.key, "label": _("Overdue") if m.key == "overdue" else _("Later") if m.key == "later" else m.key,
                 "count": m.count, "amount": money(m.amount), "weighted": money(m.weighted)} for m in fun.forecast]  # fmt: skip
    context = {
        "fun": fun, "error": error, "period_key": period.key, "choices": _choices(period), "chart": chart,
        "steps": [{"code": c, "label": label, "count": n, "conversion": _pct(conv), "probability": pipeline.probability(c)}
                  for (c, label, n), conv in zip(steps, conversions, strict=True)],
        "total": figures_cells(fun.total), "owners": [figures_cells(f) for f in fun.owners],
        "teams": [figures_cells(f) for f in fun.teams], "forecast": forecast,
        "forecast_total": money(yuan(sum(m.weighted_fen for m in fun.forecast))),
        "step_labels": [label for _c, label, _n in steps],
    }  # fmt: skip
    return render(request, "sales/funnel.html", context, status=400 if error else 200)


# --- the Customer 360 block -------------------------------------------------------------------------------


@login_required
@require_GET
def customer_block(request, pk: int):
    """The open opportunities of a customer (htmx fragment of the Customer 360 page), as the user may see them."""
    inst = access.get_visible_or_404(request.user, Institution, pk)
    scope = pipeline.scope_for(request.user)
    qs = pipeline.opportunities_for(request.user, scope=scope).filter(
        institution_id=inst.pk, stage__in=pipeline.OPEN
    )
    rows = _decorate(
        list(qs.select_related("owner").order_by(*ORDERING)[: CUSTOMER_BLOCK + 1]), pipeline.beijing_today()
    )
    return render(request, "sales/_customer_opportunities.html", {
        "institution": inst, "rows": rows[:CUSTOMER_BLOCK], "more": len(rows) > CUSTOMER_BLOCK,
        "may_work": pipeline.may_work(request.user) and access.can_see(request.user, inst),
    })  # fmt: skip


urlpatterns = [  # included by urls.py under /sales/
    path("pipeline/", board, name="pipeline"),
    path("pipeline/export.xlsx", export, name="pipeline-export"),
    path("pipeline/new/", create, name="opportunity-new"),
    path("pipeline/funnel/", funnel, name="pipeline-funnel"),
    path("pipeline/<int:pk>/", detail, name="opportunity"),
    path("pipeline/<int:pk>/move/", move, name="opportunity-move"),
    path("pipeline/<int:pk>/edit/", edit, name="opportunity-edit"),
    path("pipeline/customer/<int:pk>/", customer_block, name="customer-opportunities"),
]
