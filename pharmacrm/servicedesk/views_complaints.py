"""The complaint analysis page (投诉分析) and its Excel export: complaints.py computes, this module reads the filters,
decides what the user may see (complaints.scope_for) and shows or exports the figures."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET

from pharmacrm.core import audit, downloads
from pharmacrm.core.models import AuditEntry, Region, Team
from pharmacrm.core.ordering import PinyinModelChoiceField

from . import complaints, performance
from .choices import Impact
from .forms import PeriodField
from .models import Product, TicketCategory

A = AuditEntry.Action
DRILL_PAGE = 50  # tickets a page of a list behind a count
FILTERS = ("period", "category", "product", "province", "klass", "team")  # the analysis's own parameters


class ComplaintForm(PeriodField, forms.Form):
    period = forms.ChoiceField(label=gettext_lazy("Period"), required=False)
    category = forms.ModelChoiceField(
        label=gettext_lazy("Category"), queryset=TicketCategory.objects.none(), required=False,
        empty_label=gettext_lazy("All"),
    )  # fmt: skip
    product = PinyinModelChoiceField(
        label=gettext_lazy("Product"), queryset=Product.objects.none(), required=False, empty_label=gettext_lazy("All")
    )
    province = forms.ChoiceField(label=gettext_lazy("Province"), required=False)
    klass = forms.ChoiceField(label=gettext_lazy("Customer class"), required=False)
    team = PinyinModelChoiceField(
        label=gettext_lazy("Team"), queryset=Team.objects.none(), required=False, empty_label=gettext_lazy("All")
    )

    def __init__(self, *args, user, scope, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["period"].choices = performance.period_choices()
        self.fields["category"].queryset = TicketCategory.objects.filter(complaint=True).order_by("position", "code")
        self.fields["category"].label_from_instance = lambda c: c.label
        self.fields["product"].queryset = Product.objects.order_by("brand_name", "strength")
        provinces = Region.objects.filter(level=Region.Level.PROVINCE).order_by("code")
        self.fields["province"].choices = [("", _("All")), *((r.code, r.display_name) for r in provinces)]
        if performance.may_group_by_class(user):
            self.fields["klass"].choices = [("", _("All")), *((k, complaints.class_label(k)) for k in complaints.CLASSES)]
        else:
            del self.fields["klass"]  # the class is the customer evaluation's result
        self.fields["team"].queryset = performance.teams_for(user, scope)

    def query(self) -> complaints.Query:
        """The query of the valid fields (a field with an error falls back to its default and shows the error)."""
        data = self.cleaned_data if self.is_bound else {}
        return complaints.Query(
            period=data.get("period") or performance.current_period(), team=data.get("team"),
            category=data.get("category"), product=data.get("product"), province=data.get("province") or "",
            klass=data.get("klass") or "",
        )  # fmt: skip


def _form(request, *, any_period: bool = False) -> tuple[ComplaintForm, complaints.Query]:
    scope = complaints.scope_for(request.user)
    form = ComplaintForm(request.GET or None, user=request.user, scope=scope)
    if any_period:  # the tickets of a trend row: a period older than the page's choices is still a period
        form.fields["period"] = forms.CharField(label=gettext_lazy("Period"), required=False)
    if form.is_bound:
        form.is_valid()
    return form, form.query()


def headline(rep: complaints.Report) -> list[dict]:
    """The headline figures beside the previous period's."""
    now, before = rep.handling, rep.previous

    def line(label, value, previous, unit="", by=""):  # by: the list behind the figure (complaint_tickets_page)
        return {"label": label, "value": value, "previous": previous, "unit": unit, "by": by}

    return [
        line(_("Complaints"), now.created, before.created, by="all"),
        line(_("Handled"), now.resolution_rate, before.resolution_rate, "%", by="handled"),
        line(_("Resolution in SLA"), now.res_sla, before.res_sla, "%"),
        line(_("Resolution, median (clock h)"), now.res_median, before.res_median),
        line(_("Reopened"), now.reopened, before.reopened, by="reopened"),
        line(_("CSAT"), now.csat, before.csat),
        line(_("Severe impact"), rep.severe, rep.previous_severe, by="severe"),
    ]


def matrix(rep: complaints.Report) -> dict:
    """The impact matrix as rows (impact on the customer) × columns (impact on the company), assessed only."""
    levels = list(Impact.values)
    rows = []
    for cust in levels:
        cells = [rep.impact.get((cust, comp), 0) for comp in levels]
        links = [{"key": f"{cust},{comp}", "n": n} for comp, n in zip(levels, cells, strict=True)]
        rows.append({"label": complaints.impact_label(cust), "key": cust, "cells": cells, "links": links,
                     "total": sum(cells)})  # fmt: skip
    columns = [complaints.impact_label(c) for c in levels]
    totals = [sum(r["cells"][i] for r in rows) for i in range(len(levels))]
    total_links = [{"key": f"{complaints.ANY},{comp}", "n": n} for comp, n in zip(levels, totals, strict=True)]
    return {"columns": columns, "rows": rows, "totals": totals, "total_links": total_links, "total": sum(totals)}


def _drill_base(request, without: str = "") -> str:
    """The tickets page's address with the analysis's filters, ready for "by=…": every count links there."""
    query = kept(request, [f for f in FILTERS if f != without])
    return reverse("servicedesk:complaint-tickets") + "?" + (query + "&" if query else "")


@login_required
@require_GET
def complaints_page(request):
    form, query = _form(request)
    rep = complaints.report(request.user, query)
    chart = {
        "periods": [p["period"] for p in rep.trend],
        "series": [
            {"name": _("Complaints"), "data": [p["complaints"] for p in rep.trend], "axis": 0},
            {"name": _("Handled (%)"), "data": [p["handling_rate"] for p in rep.trend], "axis": 1},
            {"name": _("Severe impact"), "data": [p["severe"] for p in rep.trend], "axis": 0},
        ],
    }
    params = request.GET.copy()
    context = {
        "form": form, "report": rep, "headline": headline(rep), "matrix": matrix(rep), "chart": chart,
        "query_string": params.urlencode(), "filtered": bool(request.GET),
        "drill": _drill_base(request), "trend_drill": _drill_base(request, without="period"),
    }  # fmt: skip
    return render(request, "servicedesk/complaints.html", context, status=400 if form.errors else 200)


@login_required
@require_GET
def complaints_export(request):
    from . import complaints_export as xlsx

    form, query = _form(request)
    if form.errors:  # the page with its errors (400), never a workbook of other figures than those asked for
        return complaints_page(request)
    rep = complaints.report(request.user, query)
    audit.record(A.EXPORT, ("servicedesk", "", "complaint analysis"), user=request.user, format="XLSX",
                 period=query.period.key, complaints=rep.total)  # fmt: skip
    return downloads.xlsx(xlsx.xlsx(rep, headline(rep), matrix(rep)), _("Complaint analysis"), query.period.key)


def drill_page(request, form, query_period, tickets, *, error: str, heading: str, label: str, back_url: str,
               back_label: str, count_line, applied: list) -> HttpResponse:
    """The tickets behind a count (of this page or of the service performance page), 50 a page, the newest
    first; a 400 page saying why for a link that is not one of the page's. `count_line(n)` says how many."""
    from django.core.paginator import Paginator

    from .views import PERSON_PERSONAL, UNUSED_COLUMNS

    page = None
    if tickets is not None and not error and not form.errors:
        listed = (
            tickets.select_related("category", "assignee", "institution", "person", "team", "product")
            .defer(*UNUSED_COLUMNS, *PERSON_PERSONAL)
            .order_by("-received_at", "-id")
        )
        page = Paginator(listed, DRILL_PAGE).get_page(request.GET.get("page"))
    context = {
        "form": form, "label": label, "error": error, "page_obj": page, "applied": [(_("Period"), query_period)] + applied,
        "rows": page.object_list if page is not None else [], "heading": heading, "back_url": back_url, "back_label": back_label,
        "count_line": count_line(page.paginator.count) if page is not None else "",
    }  # fmt: skip
    bad = bool(error or form.errors)
    return render(request, "servicedesk/drill_tickets.html", context, status=400 if bad else 200)


def kept(request, names) -> str:
    """The request's parameters among `names`, url-encoded (the filters a list and its page share)."""
    params = request.GET.copy()
    for name in list(params):
        if name not in names:
            del params[name]
    return params.urlencode()


@login_required
@require_GET
def complaint_tickets_page(request):
    """The complaints behind one count of the analysis (a Pareto row, a cell of the impact matrix, a headline
    figure, a trend period): the same filters, the same tickets, newest first."""
    form, query = _form(request, any_period=True)
    by, key = request.GET.get("by") or "all", request.GET.get("key") or ""
    error, tickets, label = "", None, ""
    try:
        tickets = complaints.drilled(request.user, query, by, key)
        label = complaints.drill_label(by, key)
    except ValidationError as e:
        error = " ".join(sum(e.message_dict.values(), []))
    applied = []
    for name in ("team", "category", "product", "province", "klass"):
        value = getattr(query, name)
        if value and name in form.fields:
            field = form.fields[name]
            shown = dict(field.choices).get(value, value) if name in ("province", "klass") else value
            applied.append((field.label, getattr(shown, "label", shown)))
    back = kept(request, FILTERS)
    return drill_page(
        request, form, query.period.key, tickets, error=error, heading=_("Complaints"), label=label,
        back_url=reverse("servicedesk:complaints") + (f"?{back}" if back else ""), back_label=_("Complaint analysis"),
        count_line=lambda n: ngettext("%(n)s complaint, the newest first.", "%(n)s complaints, the newest first.", n)
        % {"n": n}, applied=applied,
    )  # fmt: skip


urlpatterns = [  # included by urls.py under /service/
    path("complaints/", complaints_page, name="complaints"),
    path("complaints/tickets/", complaint_tickets_page, name="complaint-tickets"),
    path("complaints/export.xlsx", complaints_export, name="complaints-export"),
]
