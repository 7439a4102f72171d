"""The service performance table as an Excel workbook (the page's rows, the totals, an agent's teams' totals and the
previous period's), imitating the key-account progress report (keyaccounts.report.xlsx). The caller decides what
the user may see and audits the export."""

from __future__ import annotations

from django.utils.translation import gettext as _

from pharmacrm.core import downloads

from . import performance
from .choices import Priority


def headers(group_label: str) -> list[str]:
    return [
        group_label, _("Received"), _("Resolved"), _("Resolution rate (%)"),
        _("First response, median (clock h)"), _("First response, 90th percentile (clock h)"),
        _("Resolution, median (clock h)"), _("Resolution, 90th percentile (clock h)"),
        _("First response in SLA (%)"), _("Resolution in SLA (%)"), _("Reopened"), _("CSAT"), _("CSAT answers"),
        _("NPS"), _("NPS answers"), _("Complaints"), _("Complaints handled (%)"), _("Reviewed for quality"),
        _("Accuracy (%)"),
    ]  # fmt: skip


def values(f: performance.Figures, label: str | None = None) -> list:
    def num(v):
        return None if v is None else float(v)

    return [
        label if label is not None else f.label, f.created, f.resolved, num(f.resolution_rate), f.fr_median, f.fr_p90,
        f.res_median, f.res_p90, num(f.fr_sla), num(f.res_sla), f.reopened, num(f.csat), f.csat_count, f.nps,
        f.nps_count, f.complaints, num(f.complaint_rate), f.reviewed, num(f.accuracy),
    ]  # fmt: skip


COLUMNS = {"resolution_rate": 4, "fr_median": 5, "fr_p90": 6, "res_median": 7, "res_p90": 8, "fr_sla": 9, "res_sla": 10,
           "csat": 12, "nps": 14, "complaint_rate": 17,
           "accuracy": 19}  # each service goal's column (1-based), as values() lays out


def xlsx(rep: performance.Report) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    from . import goals

    judge = goals.Judge.loaded(rep.query, rep.scope)
    targets = judge.page

    book = Workbook()
    sheet = book.active
    sheet.title = rep.period.key
    # what the figures were selected by, beside the title: a workbook read (or mailed) away from the page says so
    q, filters = rep.query, []
    if q.team is not None:
        filters.append(_("Team: %(name)s") % {"name": q.team.shown_name})
    if q.category is not None:
        filters.append(_("Category: %(name)s, its sub-categories included") % {"name": q.category})
    if q.priority:
        filters.append(_("Priority: %(name)s") % {"name": Priority(q.priority).label})
    downloads.append_row(sheet, [_("Service performance"), rep.period.key, *filters])
    sheet.append(
        [
            _(
                "Every figure is about the tickets received in the period (Beijing time); empty: nothing to count."
            )
        ]
    )
    sheet.append(headers(str(performance.GROUPS[rep.query.group])))
    for cell in sheet[3]:
        cell.font = Font(bold=True)
    figures = [*rep.rows, rep.totals, *([rep.team_totals] if rep.team_totals is not None else []), rep.previous]
    lines = [values(f) for f in figures[:-1]]
    lines.append(values(rep.previous, _("Previous period (%(period)s)") % {"period": rep.previous.label}))
    for f, line in zip(figures, lines, strict=True):
        downloads.append_row(sheet, line)
        judged = judge.previous_page if f is rep.previous else judge.row(f)  # the previous period: its own goals
        for name, ok in goals.judge(f, judged).items():  # a figure that misses its goal in red
            if not ok:
                sheet.cell(row=sheet.max_row, column=COLUMNS[name]).font = Font(color="B42318")
    for n in range(len(rep.rows) + 1, len(lines) + 1):
        for cell in sheet[3 + n]:
            cell.font = Font(bold=True, color=cell.font.color)
    if targets:  # the goals under the table, each in its figure's column
        goal_row = [_("Service goals")] + [None] * (len(lines[0]) - 1)
        for name, target in targets.items():
            goal_row[COLUMNS[name] - 1] = goals.shown(name, target)
        sheet.append(goal_row)
    if judge.previous_page != judge.page:  # the previous period's colours follow the goals at its own end
        sheet.append([_("The previous period's row is judged against the goals in force at its end.")])
    if judge.teams_own():  # the team rows' colours follow goals the row above does not show
        sheet.append([_("A team with goals of its own has its row judged against them, the desk's where it has none; "
                        "the totals are judged against the desk's goals.")])  # fmt: skip
    sheet.column_dimensions["A"].width = 28
    sheet.freeze_panes = "B4"
    return downloads.workbook_bytes(book)
