"""The service performance page (服务绩效) and its Excel export: performance.py computes, this module reads the
filters, decides what the user may see (performance.scope_for) and shows or exports the figures."""

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
from pharmacrm.core.models import AuditEntry, Team

from . import performance
from .choices import Priority
from .models import TicketCategory

A = AuditEntry.Action


class PerformanceForm(forms.Form):
    period = forms.ChoiceField(label=gettext_lazy("Period"), required=False)
    group = forms.ChoiceField(label=gettext_lazy("Rows per"), required=False)
    team = forms.ModelChoiceField(
        label=gettext_lazy("Team"),
        queryset=Team.objects.none(),
        required=False,
        empty_label=gettext_lazy("All"),
    )
    category = forms.ModelChoiceField(
        label=gettext_lazy("Category"), queryset=TicketCategory.objects.none(), required=False,
        empty_label=gettext_lazy("All"),
    )  # fmt: skip
    priority = forms.ChoiceField(label=gettext_lazy("Priority"), required=False)

    def __init__(self, *args, user, scope, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["period"].choices = performance.period_choices()
        self.fields["group"].choices = performance.group_choices(user)
        teams = performance.teams_for(user, scope)
        if scope.everything or scope.team_ids is not None:
            self.fields["team"].queryset = teams
        else:
            del self.fields["team"]  # an agent's figures are their own
        self.fields["category"].queryset = TicketCategory.objects.order_by("position", "code")
        self.fields["category"].label_from_instance = lambda c: c.label
        self.fields["priority"].choices = [("", _("All")), *Priority.choices]

    def clean_period(self):
        raw = self.cleaned_data.get("period") or ""
        if not raw:
            return performance.current_period()
        try:
            return performance.parse_period(raw)
        except ValidationError as e:
            raise ValidationError(e.message_dict["period"]) from None

    def query(self) -> performance.Query:
        """The query of the valid fields (a field with an error falls back to its default and shows the error)."""
        data = self.cleaned_data if self.is_bound else {}
        return performance.Query(
            period=data.get("period") or performance.current_period(),
            group=data.get("group") or "agent",
            team=data.get("team"),
            category=data.get("category"),
            priority=data.get("priority") or "",
        )


def _form(request) -> tuple[PerformanceForm, performance.Query, performance.Scope]:
    scope = performance.scope_for(request.user)
    form = PerformanceForm(request.GET or None, user=request.user, scope=scope)
    if form.is_bound:
        form.is_valid()
    return form, form.query(), scope


def _cells(f: performance.Figures) -> dict:
    """What a row shows: "—" where a figure has nothing to stand on (no tickets, no answers), never 0."""
    return {
        "label": f.label, "created": f.created, "resolved": f.resolved, "resolution_rate": f.resolution_rate,
        "fr_median": f.fr_median, "fr_p90": f.fr_p90, "res_median": f.res_median, "res_p90": f.res_p90,
        "fr_sla": f.fr_sla, "res_sla": f.res_sla, "reopened": f.reopened, "csat": f.csat, "csat_count": f.csat_count,
        "nps": f.nps, "nps_count": f.nps_count, "complaints": f.complaints, "complaint_rate": f.complaint_rate,
    }  # fmt: skip


@login_required
@require_GET
def performance_page(request):
    form, query, scope = _form(request)
    rep = performance.report(request.user, query)
    chart = {
        "periods": [p["period"] for p in rep.trend],
        "series": [
            {"name": _("Tickets"), "data": [p["created"] for p in rep.trend], "axis": 0},
            {"name": _("Resolution rate (%)"), "data": [p["resolution_rate"] for p in rep.trend], "axis": 1},
            {"name": _("CSAT (1–5)"), "data": [p["csat"] for p in rep.trend], "axis": 2},
            {"name": _("NPS"), "data": [p["nps"] for p in rep.trend], "axis": 3},
        ],
    }
    params = request.GET.copy()
    params.pop("page", None)
    context = {
        "form": form, "report": rep, "rows": [_cells(r) for r in rep.rows], "totals": _cells(rep.totals),
        "previous": _cells(rep.previous), "team_totals": _cells(rep.team_totals) if rep.team_totals else None,
        "chart": chart, "query_string": params.urlencode(), "group_label": performance.GROUPS[query.group],
        "filtered": bool(request.GET),
    }  # fmt: skip
    return render(request, "servicedesk/performance.html", context, status=400 if form.errors else 200)


@login_required
@require_GET
def performance_export(request):
    from . import performance_export as xlsx

    form, query, scope = _form(request)
    rep = performance.report(request.user, query, trend=False)
    audit.record(A.EXPORT, ("servicedesk", "", "service performance"), user=request.user, format="XLSX",
                 period=query.period.key, group=query.group, rows=len(rep.rows))  # fmt: skip
    label = "-".join(_("Service performance").split())
    response = HttpResponse(
        xlsx.xlsx(rep), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    stamp = timezone.localtime().strftime("%Y%m%d")
    response["Content-Disposition"] = content_disposition_header(
        True, f"{label}-{query.period.key}-{stamp}.xlsx"
    )
    response["Cache-Control"] = "private, no-store"
    return response


urlpatterns = [  # included by urls.py under /service/
    path("performance/", performance_page, name="performance"),
    path("performance/export.xlsx", performance_export, name="performance-export"),
]
