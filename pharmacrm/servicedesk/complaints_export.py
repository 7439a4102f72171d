"""The complaint analysis as an Excel workbook: one sheet, the page's sections one under the other (handling with
the previous period, the Pareto tables, the impact matrix, the improvement actions, the trend), as
performance_export.py does for the performance table. The caller decides what the user may see and audits it."""

from __future__ import annotations

from django.utils.translation import gettext as _

from pharmacrm.core import downloads

from . import complaints


def _num(v):
    return None if v is None else float(v)


def xlsx(rep: complaints.Report, headline: list[dict], matrix: dict) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = rep.period.key
    bold = []

    def line(*cells, strong=False):
        downloads.append_row(sheet, list(cells))
        if strong:
            bold.append(sheet.max_row)

    line(_("Complaint analysis"), rep.period.key, strong=True)
    line(_("Complaints are the tickets of the complaint categories received in the period (Beijing time), merged "
           "duplicates left out."))  # fmt: skip
    line()
    line(_("Handling"), rep.period.key, _("Previous period (%(period)s)") % {"period": rep.period.previous.key},
         strong=True)  # fmt: skip
    for h in headline:
        line(h["label"], _num(h["value"]), _num(h["previous"]))
    for title, rows, after in (
        (_("By category"), rep.categories, None), (_("By root cause"), rep.root_causes, (_("No root cause yet"), rep.undetermined)),
        (_("By product (top 10)"), rep.products, (_("No product"), rep.no_product)), (_("By province"), rep.provinces, None),
    ):  # fmt: skip
        line()
        line(title, _("Complaints"), _("Share (%)"), _("Cumulative share (%)"), strong=True)
        for r in rows:
            line(r.label, r.count, _num(r.share), _num(r.cumulative))
        if after is not None:
            line(*after)
    line()
    line(_("Impact: on the customer (rows) × on the company (columns)"), *matrix["columns"], _("Total"), strong=True)
    for r in matrix["rows"]:
        line(r["label"], *r["cells"], r["total"])
    line(_("Total"), *matrix["totals"], matrix["total"])
    line(_("Not assessed"), rep.not_assessed)
    line()
    line(_("Improvement actions opened from these complaints"), strong=True)
    a = rep.actions
    for label, n in ((_("Open or in progress"), a.open), (_("Of those, overdue"), a.overdue), (_("Done"), a.done),
                     (_("Cancelled"), a.cancelled)):  # fmt: skip
        line(label, n)
    line()
    line(_("Period"), _("Complaints"), _("Handled (%)"), _("Severe impact"), strong=True)
    for p in rep.trend:
        line(p["period"], p["complaints"], p["handling_rate"], p["severe"])
    for row in bold:
        for cell in sheet[row]:
            cell.font = Font(bold=True)
    sheet.column_dimensions["A"].width = 36
    return downloads.workbook_bytes(book)
