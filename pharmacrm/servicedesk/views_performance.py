"""The service performance page (服务绩效) and its Excel export: performance.py computes, this module reads the
filters, decides what the user may see (performance.scope_for) and shows or exports the figures."""

from __future__ import annotations

import unicodedata

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_http_methods

from pharmacrm.core import access, audit, downloads
from pharmacrm.core.models import AuditEntry, Team
from pharmacrm.core.ordering import PinyinModelChoiceField, pinyin_sorted
from pharmacrm.core.roles import Cap

from . import goals, performance, quality
from .choices import Priority
from .forms import PeriodField
from .models import TicketCategory
from .views_complaints import drill_page, kept

A = AuditEntry.Action


class PerformanceForm(PeriodField, forms.Form):
    period = forms.ChoiceField(label=gettext_lazy("Period"), required=False)
    group = forms.ChoiceField(label=gettext_lazy("Rows per"), required=False)
    team = PinyinModelChoiceField(
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


def _form(request, *, any_period: bool = False) -> tuple[PerformanceForm, performance.Query, performance.Scope]:
    scope = performance.scope_for(request.user)
    form = PerformanceForm(request.GET or None, user=request.user, scope=scope)
    if any_period:  # the tickets of a trend period or of the previous one: any period, not only the page's choices
        form.fields["period"] = forms.CharField(label=gettext_lazy("Period"), required=False)
    if form.is_bound:
        form.is_valid()
    return form, form.query(), scope


def _judged(f: performance.Figures, targets: dict) -> tuple[dict, dict, dict]:
    """Each figure judged against its service goal: its CSS class (goal-met / goal-missed), its title ("Goal ≥ 95 %:
    met") and, for a missed one, the words a screen reader says after it."""
    cls, title, flag = {}, {}, {}
    for name, ok in goals.judge(f, targets).items():
        cls[name] = "goal-met" if ok else "goal-missed"
        words = (_("Goal %(goal)s: met") if ok else _("Goal %(goal)s: missed")) % {"goal": goals.shown(name, targets[name])}
        title[name] = words
        if not ok:
            flag[name] = format_html('<span class="visually-hidden"> ({})</span>', words)
    return cls, title, flag


def _cells(f: performance.Figures, row: bool = True, targets: dict | None = None) -> dict:
    """What a row shows: "—" where a figure has nothing to stand on (no tickets, no answers), never 0. `row`: the
    row's key as its counts' links carry it ("" for the row without one), False for a totals row. `targets`: the
    service goals each figure is judged against."""
    key = "" if f.key is None else str(f.key)
    cls, title, flag = _judged(f, targets or {})
    return {
        "cls": cls, "title": title, "flag": flag,
        "row": key if row else None, "label": f.label, "created": f.created, "resolved": f.resolved, "resolution_rate": f.resolution_rate,
        "fr_median": f.fr_median, "fr_p90": f.fr_p90, "res_median": f.res_median, "res_p90": f.res_p90,
        "fr_sla": f.fr_sla, "res_sla": f.res_sla, "reopened": f.reopened, "csat": f.csat, "csat_count": f.csat_count,
        "nps": f.nps, "nps_count": f.nps_count, "complaints": f.complaints, "complaint_rate": f.complaint_rate,
        "reviewed": f.reviewed, "accuracy": f.accuracy,
    }  # fmt: skip


@login_required
@require_GET
def performance_page(request):
    form, query, scope = _form(request)
    rep = performance.report(request.user, query)
    judge = goals.Judge.loaded(query, rep.scope)
    targets = judge.page

    def goal(name: str) -> dict:
        target = targets.get(name)
        return {"goal": None if target is None else float(target), "goal_label": goals.shown(name, target)}

    chart = {
        "periods": [p["period"] for p in rep.trend],
        "series": [
            {"name": _("Tickets"), "data": [p["created"] for p in rep.trend], "axis": 0},
            {"name": _("Resolution rate (%)"), "data": [p["resolution_rate"] for p in rep.trend], "axis": 1,
             **goal("resolution_rate")},
            {"name": _("CSAT (1–5)"), "data": [p["csat"] for p in rep.trend], "axis": 2, **goal("csat")},
            {"name": _("NPS"), "data": [p["nps"] for p in rep.trend], "axis": 3, **goal("nps")},
            # on the percentage scale of the resolution rate
            {"name": _("Accuracy (%)"), "data": [p["accuracy"] for p in rep.trend], "axis": 1, **goal("accuracy")},
        ],
    }
    params = request.GET.copy()
    params.pop("page", None)
    # every count links to its tickets (performance_tickets_page), under the page's filters; the previous period's
    # totals under the same filters for that period
    base, now, before = reverse("servicedesk:performance-tickets"), kept(request, FILTERS), kept(request, FILTERS[1:])
    drill = f"{base}?{now}&" if now else f"{base}?"
    previous_drill = f"{base}?{before}&period={query.period.previous.key}&" if before else (
        f"{base}?period={query.period.previous.key}&")
    context = {
        "form": form, "report": rep, "rows": [_cells(r, targets=judge.row(r)) for r in rep.rows],
        "totals": _cells(rep.totals, False, targets), "previous": _cells(rep.previous, False, judge.previous_page),
        "team_totals": _cells(rep.team_totals, False, targets) if rep.team_totals else None,
        "goals": {name: goals.shown(name, t) for name, t in targets.items()},
        "goals_of": Team.objects.get(pk=judge.team).name if judge.team_has_own else "",
        "teams_own_goals": judge.teams_own(), "goals_set_later": judge.set_later,
        "previous_judged": bool(judge.previous_page),
        "may_set_goals": access.can(request.user, Cap.MANAGE_SERVICE),
        "may_see_quality": quality.may_see_page(request.user),
        "chart": chart, "query_string": params.urlencode(), "group_label": performance.GROUPS[query.group],
        "filtered": bool(request.GET), "drill": drill, "previous_drill": previous_drill,
        "trend_drill": f"{base}?{before}&" if before else f"{base}?",
    }  # fmt: skip
    return render(request, "servicedesk/performance.html", context, status=400 if form.errors else 200)


@login_required
@require_GET
def performance_export(request):
    from . import performance_export as xlsx

    form, query, scope = _form(request)
    if form.errors:  # the page with its errors (400), never a workbook of other figures than those asked for
        return performance_page(request)
    rep = performance.report(request.user, query, trend=False)
    audit.record(A.EXPORT, ("servicedesk", "", "service performance"), user=request.user, format="XLSX",
                 period=query.period.key, group=query.group, rows=len(rep.rows))  # fmt: skip
    return downloads.xlsx(xlsx.xlsx(rep), _("Service performance"), query.period.key)


FILTERS = ("period", "group", "team", "category", "priority")  # the page's own parameters (the period first)


@login_required
@require_GET
def performance_tickets_page(request):
    """The tickets behind one count of the page (received, resolved, reopened, complaints; of a row, of the
    totals or of the previous period): the same filters and scope, the same tickets, newest first."""
    form, query, scope = _form(request, any_period=True)
    what = request.GET.get("what") or "tickets"
    row = request.GET.get("row")  # absent: the totals
    error, tickets, label = "", None, ""
    try:
        tickets = performance.drilled(request.user, query, what, row)
        label = f"{performance.DRILLS[what]} · {performance.drill_row_label(query, row)}"
    except ValidationError as e:
        error = " ".join(sum(e.message_dict.values(), []))
    applied = [(form.fields["group"].label, performance.GROUPS[query.group])] if row is not None else []
    for name in ("team", "category"):
        value = getattr(query, name)
        if value and name in form.fields:
            applied.append((form.fields[name].label, getattr(value, "label", value)))
    if query.priority:
        applied.append((form.fields["priority"].label, dict(Priority.choices).get(query.priority, query.priority)))
    back = kept(request, FILTERS)
    return drill_page(
        request, form, query.period.key, tickets, error=error, heading=_("Tickets"), label=label,
        back_url=reverse("servicedesk:performance") + (f"?{back}" if back else ""), back_label=_("Service performance"),
        count_line=lambda n: ngettext("%(n)s ticket, the newest first.", "%(n)s tickets, the newest first.", n)
        % {"n": n}, applied=applied,
    )  # fmt: skip


# --- service goals (服务目标) ---------------------------------------------------------------------------------


def _goal_rows(values: dict, errors: dict, now: dict | None = None, desk: dict | None = None) -> list[dict]:
    """The form's rows; `now`: after a conflict, the goals as someone else saved them, shown beside the input;
    `desk`: on a team's form, the desk's goals, which apply where the team sets none."""
    return [{"name": name, "label": i.label, "direction": "≥" if i.direction == goals.AT_LEAST else "≤",
             "unit": goals.unit_label(i), "low": goals.plain(i.low), "high": goals.plain(i.high),
             "value": values.get(name, ""), "errors": errors.get(name, []),
             "now": None if now is None or name not in (errors or now) else now.get(name, ""),
             "desk": None if desk is None else goals.shown(name, desk.get(name)) or "—"}
            for name, i in goals.INDICATORS.items()]  # fmt: skip


def _goals_team(request) -> tuple[Team | None, str]:
    """The team whose own goals the page sets (`team`, in the query string or the form); None: the desk's. An id
    that names no team is refused with the reason."""
    raw = (request.POST.get("team") if request.method == "POST" else None) or request.GET.get("team") or ""
    raw = unicodedata.normalize("NFKC", raw).strip()
    if not raw:
        return None, ""
    team = Team.objects.filter(pk=int(raw)).first() if raw.isascii() and raw.isdecimal() and len(raw) < 10 else None
    return team, "" if team is not None else _("No such team.")


@login_required
@require_http_methods(["GET", "POST"])
def goals_page(request):
    """Set the service goals (who configures the service desk), the desk's or one team's own; the performance page
    judges against them. All or nothing; the values the page was loaded with travel along, so that someone else's
    change in between is refused (409) and shown, not overwritten."""
    access.require(request.user, Cap.MANAGE_SERVICE)
    team, team_error = _goals_team(request)
    teams = pinyin_sorted(Team.objects.all())
    desk = goals.current() if team is not None else None
    context = {"teams": teams, "team": team, "team_error": team_error}
    if team_error:
        return render(request, "servicedesk/settings/goals.html",
                      {**context, "rows": [], "loaded": {}}, status=404)  # fmt: skip

    def stored() -> dict[str, str]:
        return {k: goals.plain(v) for k, v in goals.current(team.pk if team else None).items()}

    values, errors, status, loaded = stored(), {}, 200, None
    if request.method == "POST":
        sent = {name: request.POST.get(name, "") for name in goals.INDICATORS}
        loaded = {name: request.POST.get(f"loaded_{name}", "") for name in goals.INDICATORS}
        changed = goals.changed(sent, loaded)  # only what this user changed is saved, and checked against others'
        try:
            n = goals.save(request.user, {k: sent[k] for k in changed}, loaded={k: loaded[k] for k in changed},
                           team=team)  # fmt: skip
        except ValidationError as e:
            values, errors, status = sent, e.message_dict, 400  # the form keeps the values it was loaded with
        except goals.GoalsConflict as e:
            labels = ", ".join(str(goals.INDICATORS[name].label) for name in e.names)
            messages.error(request, _("Someone else changed these goals while you were working on them: %(goals)s. "
                                      "Your input is kept, with their values beside it: check it, then save again.")
                           % {"goals": labels})  # fmt: skip
            now = stored()  # the goals this user did not change show as they are now, so a second save keeps them
            shown = {k: sent[k] if k in changed else now.get(k, "") for k in goals.INDICATORS}
            return render(request, "servicedesk/settings/goals.html",
                          {**context, "rows": _goal_rows(shown, dict.fromkeys(e.names, []), now, desk), "loaded": now},
                          status=409)  # fmt: skip
        else:
            messages.success(request, ngettext("%(n)s goal changed.", "%(n)s goals changed.", n) % {"n": n})
            back = reverse("servicedesk:settings-goals")
            return redirect(f"{back}?team={team.pk}" if team is not None else back)
    if loaded is not None:
        loaded = {k: v for k, v in loaded.items() if v}
    return render(request, "servicedesk/settings/goals.html",
                  {**context, "rows": _goal_rows(values, errors, desk=desk),
                   "loaded": stored() if loaded is None else loaded}, status=status)  # fmt: skip


urlpatterns = [  # included by urls.py under /service/
    path("settings/goals/", goals_page, name="settings-goals"),
    path("performance/", performance_page, name="performance"),
    path("performance/export.xlsx", performance_export, name="performance-export"),
    path("performance/tickets/", performance_tickets_page, name="performance-tickets"),
]
