"""The key-account progress report for leadership (PDF and Excel): per account, plan items done / open /
overdue, meetings held, the latest service evaluation and the agreement's status. The caller decides which
accounts the user may see and audits the export."""

from __future__ import annotations

import io

from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from pharmacrm.core import pdf as pdfdoc

from .choices import OPEN_ITEM, ItemStatus, PlanStatus
from .models import AccountReview, Agreement, Meeting, PlanItem


def rows(accounts) -> list[dict]:
    """One dict per account (a fixed number of queries)."""
    accounts = list(accounts)
    ids = [a.pk for a in accounts]
    today = timezone.localdate()
    items = {
        r["plan__account_id"]: r
        for r in PlanItem.objects.filter(plan__account_id__in=ids, plan__status=PlanStatus.APPROVED)
        .values("plan__account_id")
        .annotate(
            done=Count("id", filter=Q(status=ItemStatus.DONE)),
            open=Count("id", filter=Q(status__in=OPEN_ITEM)),
            overdue=Count("id", filter=Q(status__in=OPEN_ITEM, deadline__lt=today)),
        )
    }
    meetings = dict(
        Meeting.objects.filter(account_id__in=ids)
        .values("account_id")
        .annotate(n=Count("id"))
        .values_list("account_id", "n")
    )
    reviews: dict[int, AccountReview] = {}
    # the latest period (not the latest computed: an earlier quarter may be recomputed later); a quarter
    # ending with its year counts as later than the year
    for review in AccountReview.objects.filter(account_id__in=ids).order_by("account_id", "end", "start"):
        reviews[review.account_id] = review
    agreements: dict[int, Agreement] = {}
    for ag in Agreement.objects.filter(account_id__in=ids).order_by("created_at", "id"):
        agreements[ag.account_id] = ag
    out = []
    for a in accounts:
        it = items.get(a.pk, {})
        review, ag = reviews.get(a.pk), agreements.get(a.pk)
        out.append({
            "number": a.number, "customer": a.institution.name, "done": it.get("done", 0), "open": it.get("open", 0),
            "overdue": it.get("overdue", 0), "meetings": meetings.get(a.pk, 0),
            "review_period": review.period if review else "", "review_score": review.score if review else None,
            "agreement": ag.number if ag else "", "agreement_status": str(ag.get_status_display()) if ag else "",
            "agreement_end": ag.end_date.isoformat() if ag else "",
        })  # fmt: skip
    return out


def headers() -> list[str]:
    return [
        _("Number"), _("Customer"), _("Items done"), _("Items open"), _("Items overdue"), _("Meetings held"),
        _("Latest evaluation"), _("Score"), _("Agreement"), _("Agreement status"), _("Agreement ends"),
    ]  # fmt: skip


def _values(r: dict) -> list:
    return [r["number"], r["customer"], r["done"], r["open"], r["overdue"], r["meetings"], r["review_period"],
            r["review_score"], r["agreement"], r["agreement_status"], r["agreement_end"]]  # fmt: skip


def pdf(data: list[dict]) -> bytes:
    doc = pdfdoc.document(_("Key-account progress report"))
    doc.set_font(pdfdoc.FAMILY, size=9)
    doc.multi_cell(0, 5, _("%(n)s key accounts, as of %(date)s.") % {"n": len(data), "date": timezone.localdate()},
                   new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    doc.ln(2)
    pdfdoc.table(doc, headers(), [_values(r) for r in data], (1.3, 2.4, 0.8, 0.8, 0.8, 0.8, 1, 0.8, 1.3, 1.1, 1.1),
                 font_size=7.5)  # fmt: skip
    return pdfdoc.to_bytes(doc)


def xlsx(data: list[dict]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = _("Progress")[:31]
    sheet.append(headers())
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for r in data:
        values = _values(r)
        values[7] = float(values[7]) if values[7] is not None else None
        sheet.append(values)
        for cell in sheet[sheet.max_row]:
            if cell.data_type == "f":  # a customer named "=…" is text, never a formula the sheet runs
                cell.data_type = "s"
    for column, width in zip("ABCDEFGHIJK", (14, 36, 10, 10, 10, 10, 12, 8, 14, 16, 12), strict=True):
        sheet.column_dimensions[column].width = width
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
