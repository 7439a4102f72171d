"""The complaint analysis page (投诉分析) and its Excel export: complaints.py computes, this module reads the filters,
decides what the user may see (complaints.scope_for) and shows or exports the figures."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry, Region, Team

from . import complaints, performance
from .choices import Impact
from .models import Product, TicketCategory

A = AuditEntry.Action


class ComplaintForm(forms.Form):
    period = forms.ChoiceField(label=gettext_lazy("Period"), required=False)
    category = forms.ModelChoiceField(
        label=gettext_lazy("Category"), queryset=TicketCategory.objects.none(), required=False,
        empty_label=gettext_lazy("All"),
    )  # fmt: skip
    product = forms.ModelChoiceField(
        label=gettext_lazy("Product"), queryset=Product.objects.none(), required=False, empty_label=gettext_lazy("All")
    )
    province = forms.ChoiceField(label=gettext_lazy("Province"), required=False)
    klass = forms.ChoiceField(label=gettext_lazy("Customer class"), required=False)
    team = forms.ModelChoiceField(
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

    def clean_period(self):
        raw = self.cleaned_data.get("period") or ""
        if not raw:
            return performance.current_period()
        try:
            return performance.parse_period(raw)
        except ValidationError as e:
            raise ValidationError(e.message_dict["period"]) from None

    def query(self) -> complaints.Query:
        """The query of the valid fields (a field with an error falls back to its default and shows the error)."""
        data = self.cleaned_data if self.is_bound else {}
        return complaints.Query(
            period=data.get("period") or performance.current_period(), team=data.get("team"),
            category=data.get("category"), product=data.get("product"), province=data.get("province") or "",
            klass=data.get("klass") or "",
        )  # fmt: skip


def _form(request) -> tuple[ComplaintForm, complaints.Query]:
    scope = complaints.scope_for(request.user)
    form = ComplaintForm(request.GET or None, user=request.user, scope=scope)
    if form.is_bound:
        form.is_valid()
    return form, form.query()


def headline(rep: complaints.Report) -> list[dict]:
    """The headline figures beside the previous period's."""
    now, before = rep.handling, rep.previous

    def line(label, value, previous, unit=""):
        return {"label": label, "value": value, "previous": previous, "unit": unit}

    return [
        line(_("Complaints"), now.created, before.created),
        line(_("Handled"), now.resolution_rate, before.resolution_rate, "%"),
        line(_("Resolution in SLA"), now.res_sla, before.res_sla, "%"),
        line(_("Resolution, median (clock h)"), now.res_median, before.res_median),
        line(_("Reopened"), now.reopened, before.reopened),
        line(_("CSAT"), now.csat, before.csat),
        line(_("Severe impact"), rep.severe, rep.previous_severe),
    ]


def matrix(rep: complaints.Report) -> dict:
    """The impact matrix as rows (impact on the customer) × columns (impact on the company), assessed only."""
    levels = list(Impact.values)
    rows = []
    for cust in levels:
        cells = [rep.impact.get((cust, comp), 0) for comp in levels]
        rows.append({"label": complaints.impact_label(cust), "key": cust, "cells": cells, "total": sum(cells)})
    columns = [complaints.impact_label(c) for c in levels]
    totals = [sum(r["cells"][i] for r in rows) for i in range(len(levels))]
    return {"columns": columns, "rows": rows, "totals": totals, "total": sum(totals)}


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
    }  # fmt: skip
    return render(request, "servicedesk/complaints.html", context, status=400 if form.errors else 200)


@login_required
@require_GET
def complaints_export(request):
    from . import complaints_export as xlsx

    form, query = _form(request)
    rep = complaints.report(request.user, query)
    audit.record(A.EXPORT, ("servicedesk", "", "complaint analysis"), user=request.user, format="XLSX",
                 period=query.period.key, complaints=rep.total)  # fmt: skip
    label = "-".join(_("Complaint analysis").split())
    response = HttpResponse(
        xlsx.xlsx(rep, headline(rep), matrix(rep)),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    stamp = timezone.localtime().strftime("%Y%m%d")
    response["Content-Disposition"] = content_disposition_header(True, f"{label}-{query.period.key}-{stamp}.xlsx")
    response["Cache-Control"] = "private, no-store"
    return response


urlpatterns = [  # included by urls.py under /service/
    path("complaints/", complaints_page, name="complaints"),
    path("complaints/export.xlsx", complaints_export, name="complaints-export"),
]
