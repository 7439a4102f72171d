"""Sales target pages (/sales/targets/): the attainment of a period per person and team with its chart and Excel
export, and the grid (people and teams × the months of a year) where managers enter the targets, by hand or from a
CSV/XLSX file of the same grid. targets.py computes, decides who sees what and saves."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext, pgettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pharmacrm.core import audit, downloads
from pharmacrm.core.form_saves import create_once
from pharmacrm.core.models import AuditEntry, Team
from pharmacrm.core.numbers import percent_text
from pharmacrm.customers.forms import new_once_token, once_token
from pharmacrm.customers.views import AlreadyCreated

from . import targets
from .models import yuan
from .views import money

A = AuditEntry.Action


def _period(request) -> tuple[targets.Period, str]:
    """The period asked for (?period=2026-11 | 2026-Q4 | 2026), the current month by default; with the error."""
    raw = request.GET.get("period", "")
    if not raw.strip():
        return targets.current_period("month"), ""
    try:
        return targets.parse_period(raw), ""
    except ValidationError as e:
        return targets.current_period("month"), " ".join(e.message_dict["period"])


def _pct(value) -> str:
    return percent_text(value)


def _cells(row: targets.Row) -> dict:
    return {
        "key": row.key, "label": row.label,
        "target": "—" if row.target is None else money(row.target), "actual": money(row.actual),
        "attainment": _pct(row.attainment_pct), "gap": "—" if row.gap is None else money(row.gap),
        "last_year": money(row.last_year), "growth": _pct(row.growth_pct),
        "projected": "—" if row.projected is None else money(row.projected), "on_pace": row.on_pace,
        "short": row.attainment_pct is not None and row.on_pace is False,
    }  # fmt: skip


def _choices(current: targets.Period) -> list[tuple[str, list[str]]]:
    now = targets.current_period("month")
    months = [now.shifted(-i).key for i in range(-2, 24)]
    quarter = targets.current_period("quarter")
    quarters = [quarter.shifted(-i).key for i in range(-1, 8)]
    years = [str(now.year + 1 - i) for i in range(5)]
    for keys, kind in ((months, "month"), (quarters, "quarter"), (years, "year")):
        if current.kind == kind and current.key not in keys:  # an older period asked for by its address
            keys.append(current.key)
    return [(_("Month"), months), (_("Quarter"), quarters), (_("Year"), years)]


@login_required
@require_GET
def attainment(request):
    """Targets, actuals, attainment, gap, last year and run rate of a period, per person and per team."""
    period, error = _period(request)
    rep = targets.report(request.user, period)
    # a rep's chart: their own bar beside their teams' (never a colleague's)
    rows = rep.people if rep.scope.kind != "own" else [*rep.people, *rep.teams]
    chart = {
        "labels": [r.label for r in rows],
        "target": [None if r.target is None else float(r.target) for r in rows],
        "actual": [float(r.actual) for r in rows],
        "last_year": [float(r.last_year) for r in rows],
        "names": {
            "target": _("Sales target (¥)"),
            "actual": _("Actual (¥)"),
            "last_year": _("Last year (¥)"),
        },
    }
    context = {
        "report": rep, "error": error, "people": [_cells(r) for r in rep.people], "teams": [_cells(r) for r in rep.teams],
        "people_total": _cells(rep.people_total), "teams_total": _cells(rep.teams_total), "chart": chart,
        "choices": _choices(period), "may_set": targets.may_set(request.user), "period_key": period.key,
        "last_year_key": rep.last_year.key,
    }  # fmt: skip
    return render(request, "sales/targets.html", context, status=400 if error else 200)


def attainment_xlsx(rep: targets.Report) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = rep.period.key
    sheet.append([_("Sales targets and attainment"), rep.period.key])
    sheet.append([_("Actual: the purchases of the customers each person owns now (a team: the customers of the team "
                    "now), from the monthly rollups. Day %(elapsed)s of %(days)s of the period (Beijing time).")
                  % {"elapsed": rep.elapsed, "days": rep.days}])  # fmt: skip
    head = [_("Sales target (¥)"), _("Actual (¥)"), _("Attainment (%)"), _("Gap (¥)"),
            _("Last year (%(period)s, ¥)") % {"period": rep.last_year.key}, _("Growth (%)"), _("Projected (¥)")]  # fmt: skip

    def num(v):
        return None if v is None else float(v)

    def line(r: targets.Row) -> list:
        return [r.label, num(r.target), num(r.actual), num(r.attainment_pct), num(r.gap), num(r.last_year),
                num(r.growth_pct), num(r.projected)]  # fmt: skip

    for title, rows, total in (
        (_("Owner"), rep.people, rep.people_total),
        (pgettext("sales targets", "Team"), rep.teams, rep.teams_total),
    ):
        sheet.append([])
        sheet.append([title, *head])
        for cell in sheet[sheet.max_row]:
            cell.font = Font(bold=True)
        for r in [*rows, total]:
            downloads.append_row(sheet, line(r))
        for cell in sheet[sheet.max_row]:
            cell.font = Font(bold=True)
    sheet.column_dimensions["A"].width = 24
    return downloads.workbook_bytes(book)


@login_required
@require_GET
def attainment_export(request):
    period, error = _period(request)
    if error:
        return attainment(request)
    rep = targets.report(request.user, period)
    audit.record(A.EXPORT, ("sales.salestarget", "", "attainment"), user=request.user, format="XLSX",
                 period=period.key, rows=len(rep.people) + len(rep.teams))  # fmt: skip
    return downloads.xlsx(attainment_xlsx(rep), _("Sales attainment"), period.key)


# --- the grid --------------------------------------------------------------------------------------------


def _year(request, source) -> tuple[int, str]:
    default = targets.current_period("year").year
    try:
        return targets.parse_year(source.get("year"), default), ""
    except ValidationError as e:
        return default, " ".join(e.message_dict["year"])


def _grid_rows(year: int, posted=None, errors: dict | None = None):
    people, teams = targets.grid_subjects(year)
    stored = targets.grid_values(year)
    out = []
    for subject in [*people, *teams]:
        key = f"{'t' if isinstance(subject, Team) else 'u'}{subject.pk}"
        cells = []
        for month in range(1, 13):
            t = stored.get((key, month))
            name = f"c-{key}-{month}"
            value = posted.get(name, "") if posted is not None else ("" if t is None else f"{t.amount}")
            version = posted.get(f"v-{key}-{month}", "0") if posted is not None else (t.version if t else 0)
            cells.append({"name": name, "value": value, "version": version, "month": month,
                          "error": (errors or {}).get(name, "")})  # fmt: skip
        out.append({"key": key, "label": targets.subject_label(subject), "team": isinstance(subject, Team),
                    "cells": cells, "subject": subject})  # fmt: skip
    return out


def _grid_page(request, year: int, rows, status: int = 200, error: str = "", import_errors=()):
    return render(request, "sales/target_grid.html", {
        "year": year, "rows": rows, "months": range(1, 13), "error": error, "import_errors": import_errors,
        "years": [targets.current_period("year").year + 1 - i for i in range(4)],
        "max_mb": targets.IMPORT_MAX_BYTES // (1024 * 1024),
        "form_token": new_once_token(),  # the grid saved twice (a double click) is saved once
    }, status=status)  # fmt: skip


class _Saved:
    """How many targets a grid's sending saved, kept by create_once as the id of what the form made."""

    def __init__(self, count: int):
        self.pk = count


def _require_set(user) -> None:
    if not targets.may_set(user):
        raise PermissionDenied(_("You do not have permission to do this."))


@login_required
@require_http_methods(["GET", "POST"])
def grid(request):
    """The monthly targets of a year, people and teams × months; saved all together or not at all."""
    _require_set(request.user)
    year, error = _year(request, request.POST if request.method == "POST" else request.GET)
    if request.method == "GET" or error:
        return _grid_page(request, year, _grid_rows(year), status=400 if error else 200, error=error)
    rows = _grid_rows(year, posted=request.POST)
    errors, changes = {}, []
    for row in rows:
        for cell in row["cells"]:
            if cell["name"] not in request.POST:  # a row added since the page was opened: left as it is
                continue
            label = f"{row['label']} {year}-{cell['month']:02d}"
            try:
                fen = targets.amount_fen(cell["value"])
            except ValidationError as e:
                errors[cell["name"]] = _("%(cell)s: %(reason)s") % {
                    "cell": label,
                    "reason": " ".join(e.messages),
                }
                continue
            try:
                version = int(str(cell["version"]).strip() or 0)
            except ValueError:
                version = 0
            changes.append(targets.Change(row["subject"], targets.Period("month", year, cell["month"]), fen,
                                          version, label))  # fmt: skip
    if errors:
        rows = _grid_rows(year, posted=request.POST, errors=errors)
        return _grid_page(request, year, rows, status=400,
                          error=_("Nothing was saved: correct the targets marked below."))  # fmt: skip
    try:  # once per page: sent again (a double click), what the first sending saved
        done = create_once(request.user, once_token(request.POST.get("form_token")),
                           lambda: _Saved(targets.apply(request.user, changes))).pk  # fmt: skip
    except AlreadyCreated as e:
        done = e.pk or 0
    except targets.CellConflict as e:
        return _grid_page(request, year, _grid_rows(year), status=409, error=str(e))
    except ValidationError as e:
        return _grid_page(
            request, year, _grid_rows(year, posted=request.POST), status=400, error=" ".join(e.messages)
        )
    saved = ngettext("%(count)s target saved.", "%(count)s targets saved.", done) % {"count": done}
    messages.success(request, saved if done else _("Nothing was changed."))
    return redirect(f"{reverse('sales:target-grid')}?year={year}")


@login_required
@require_POST
def grid_import(request):
    """A CSV or XLSX file of the grid: every target saved, or none (the reasons per row and column)."""
    _require_set(request.user)
    year, error = _year(request, request.POST)
    if error:
        return _grid_page(request, year, _grid_rows(year), status=400, error=error)
    try:
        done = targets.import_grid(request.user, request.FILES.get("file"), year)
    except targets.CellConflict as e:
        return _grid_page(request, year, _grid_rows(year), status=409, error=str(e))
    except ValidationError as e:
        return _grid_page(request, year, _grid_rows(year), status=400,
                          error=_("The file was not imported; nothing was saved."), import_errors=e.messages)  # fmt: skip
    saved = ngettext("%(count)s target saved from the file.", "%(count)s targets saved from the file.", done)
    messages.success(request, saved % {"count": done})
    return redirect(f"{reverse('sales:target-grid')}?year={year}")


@login_required
@require_GET
def grid_export(request):
    """The year's grid as an Excel file: the template of the import, with the targets entered so far."""
    from openpyxl import Workbook

    _require_set(request.user)
    year, _error = _year(request, request.GET)
    rows = _grid_rows(year)
    book = Workbook()
    sheet = book.active
    sheet.title = str(year)
    sheet.append([_("Owner or team"), *[f"{year}-{m:02d}" for m in range(1, 13)]])
    for row in rows:
        downloads.append_row(sheet, [row["label"], *[float(yuan(targets.amount_fen(c["value"]))) if c["value"]
                                                     else None for c in row["cells"]]])  # fmt: skip
    sheet.column_dimensions["A"].width = 24
    audit.record(A.EXPORT, ("sales.salestarget", "", "grid"), user=request.user, format="XLSX", year=year,
                 rows=len(rows))  # fmt: skip
    return downloads.xlsx(downloads.workbook_bytes(book), _("Sales targets"), year, dated=False)


urlpatterns = [  # included by urls.py under /sales/
    path("targets/", attainment, name="targets"),
    path("targets/export.xlsx", attainment_export, name="targets-export"),
    path("targets/grid/", grid, name="target-grid"),
    path("targets/grid/import/", grid_import, name="target-grid-import"),
    path("targets/grid/export.xlsx", grid_export, name="target-grid-export"),
]
