"""The key-account progress report for leadership (PDF and Excel): per account, plan items done / open /
overdue, meetings held since the listing, the latest service evaluation, the agreement's status and the service
meeting cadence (the last meeting, the next due, days overdue: services.meeting_dues); then, per
account, the open items of the plan in force that are overdue or due within DUE_SOON_DAYS days (a second sheet in
Excel). The caller decides which accounts the user may see and audits the export."""

from __future__ import annotations

import datetime as dt
import re

from django.db.models import Count, F, Q
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from pharmacrm.core import downloads, personal
from pharmacrm.core import pdf as pdfdoc

from . import services
from .choices import OPEN_ITEM, AccountStatus, ItemStatus, PlanStatus
from .models import AccountReview, Meeting, PlanItem

DUE_SOON_DAYS = 30


def rows(accounts, masked: bool = True) -> list[dict]:
    """One dict per account (a fixed number of queries). `masked`: the due items' services with the contact details
    typed in them masked (a reader who sees personal data masked, personal.masks_free_text)."""
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
            overdue=Count("id", filter=services.overdue_q(today)),
        )
    }
    # the meetings held since the customer was listed (from its listing day on, as record_meeting allows them): one
    # dated earlier — recorded before that rule — was no meeting of the programme
    meetings = dict(
        services.since_listing(Meeting.objects.filter(account_id__in=ids))
        .values("account_id")
        .annotate(n=Count("id"))
        .values_list("account_id", "n")
    )
    reviews: dict[int, AccountReview] = {}
    # the latest period (not the latest computed: an earlier quarter may be recomputed later); a quarter
    # ending with its year counts as later than the year
    for review in AccountReview.objects.filter(account_id__in=ids).order_by("account_id", "end", "start", "period"):
        reviews[review.account_id] = review
    agreements = services.agreements_shown(ids, today)  # the one in force, not a renewal waiting to be signed
    due = due_items(ids, today, masked)
    dues = services.meeting_dues(accounts, today)  # the service meeting cadence: last held, next due, overdue
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
            "last_meeting": md.last.isoformat() if (md := dues[a.pk]).last else "",
            "next_meeting": md.due.isoformat() if md.due else "", "meeting_days_overdue": md.days_overdue,
            "due": due.get(a.pk, []),
        })  # fmt: skip
    return out


def due_items(ids: list[int], today: dt.date, masked: bool = True) -> dict[int, list[dict]]:
    """Per account, the open items of its plan in force that are overdue or due within DUE_SOON_DAYS days, by
    deadline (one query)."""
    qs = PlanItem.objects.filter(
        plan__account_id__in=ids, plan__status=PlanStatus.APPROVED, status__in=OPEN_ITEM,
        deadline__lte=today + dt.timedelta(days=DUE_SOON_DAYS),
    ).exclude(  # a de-listed customer is served no more: what falls due from its de-listing day on is nobody's
        plan__account__status=AccountStatus.DELISTED, deadline__gte=TruncDate("plan__account__delisted_at"),
    ).select_related("owner").order_by("plan__account_id", "deadline", "area", "id")  # fmt: skip
    out: dict[int, list[dict]] = {}
    for item in qs.annotate(account_id=F("plan__account_id")):
        late = (today - item.deadline).days
        out.setdefault(item.account_id, []).append({
            "title": personal.free_text(item.title, masked), "area": str(item.get_area_display()), "owner": str(item.owner),
            "deadline": item.deadline.isoformat(), "status": str(item.get_status_display()), "progress": item.progress,
            "days_overdue": late if late > 0 else None,
        })  # fmt: skip
    return out


def headers() -> list[str]:
    return [
        _("Number"), _("Customer"), _("Items done"), _("Items open"), _("Items overdue"), _("Meetings held"),
        _("Latest evaluation"), _("Score"), _("Agreement"), _("Agreement status"), _("Agreement ends"),
        _("Last meeting"), _("Next meeting due"), _("Meeting overdue (days)"),
    ]  # fmt: skip


def _values(r: dict) -> list:
    return [r["number"], r["customer"], r["done"], r["open"], r["overdue"], r["meetings"], r["review_period"],
            r["review_score"], r["agreement"], r["agreement_status"], r["agreement_end"], r["last_meeting"],
            r["next_meeting"], r["meeting_days_overdue"]]  # fmt: skip


def item_headers() -> list[str]:
    return [_("Service item"), _("Area"), _("Owner"), _("Deadline"), _("Days overdue"), _("Status"),
            _("Progress (%)")]  # fmt: skip


def _item_values(i: dict) -> list:
    return [i["title"], i["area"], i["owner"], i["deadline"], i["days_overdue"], i["status"], i["progress"]]


# a CJK character (or fullwidth form) may end a line anywhere; other text only between words
_TOKEN = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]|[^\s\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]+")
PADDING = 1.0  # mm, each side of a cell (core.pdf.table)


def _widths(doc, headers: list[str], values: list[list], weights: tuple, font_size: float) -> list[float]:
    """Column widths (mm, across the page) in which no word of a heading (bold) or of a short cell is cut: each
    column is at least as wide as its longest word, at most a third of the page; the rest of the width goes to
    the columns by `weights`. Chinese wraps between any two characters, so it never widens a column."""
    page = doc.epw
    need = []
    for n, header in enumerate(headers):
        widest = 0.0
        doc.set_font(pdfdoc.FAMILY, "B", font_size)
        for word in _TOKEN.findall(str(header)):
            widest = max(widest, doc.get_string_width(word))
        doc.set_font(pdfdoc.FAMILY, size=font_size)
        for row in values:
            for word in _TOKEN.findall("" if row[n] is None else str(row[n])):
                widest = max(widest, doc.get_string_width(word))
        need.append(min(widest + 2 * PADDING + 0.6, page / 3))
    if sum(need) >= page:  # cannot be met: shrink in proportion
        return [page * w / sum(need) for w in need]
    fixed: dict[int, float] = {}
    while True:  # give each column its share; those below their minimum get the minimum, share the rest again
        free = [n for n in range(len(headers)) if n not in fixed]
        room = page - sum(fixed.values())
        total = sum(weights[n] for n in free)
        short = {n: need[n] for n in free if room * weights[n] / total < need[n]}
        if not short:
            return [fixed.get(n, room * weights[n] / total) for n in range(len(headers))]
        fixed.update(short)


def _table(doc, headers: list[str], values: list[list], weights: tuple, font_size: float) -> None:
    widths = _widths(doc, headers, values, weights, font_size)
    pdfdoc.table(doc, headers, values, widths, font_size=font_size)


def pdf(data: list[dict]) -> bytes:
    title = _("Key-account progress report")
    doc = pdfdoc.Document(title)
    doc.add_page(orientation="landscape")  # fourteen columns: the words of the headings fit whole
    doc.set_font(pdfdoc.FAMILY, "B", 16)
    doc.multi_cell(0, 9, title, align="C", new_x="LMARGIN", new_y="NEXT")
    doc.ln(2)
    doc.set_font(pdfdoc.FAMILY, size=9)
    counted = ngettext("%(n)s key account, as of %(date)s.", "%(n)s key accounts, as of %(date)s.", len(data))
    doc.multi_cell(0, 5, counted % {"n": len(data), "date": timezone.localdate()}, new_x="LMARGIN", new_y="NEXT")
    doc.ln(2)
    _table(doc, headers(), [_values(r) for r in data],
           (1.3, 2.6, 0.8, 0.8, 0.8, 0.8, 1, 0.7, 1.3, 1.1, 1.1, 1.1, 1.1, 0.8), 7.5)  # fmt: skip
    doc.ln(4)
    doc.set_font(pdfdoc.FAMILY, "B", 12)
    doc.multi_cell(0, 7, due_heading(), new_x="LMARGIN", new_y="NEXT")
    for r in data:
        doc.ln(2)
        doc.set_font(pdfdoc.FAMILY, "B", 9.5)
        doc.multi_cell(0, 5.5, f"{r['number']}  {r['customer']}", new_x="LMARGIN", new_y="NEXT")
        doc.set_font(pdfdoc.FAMILY, size=8.5)
        if r["due"]:
            _table(doc, item_headers(), [_item_values(i) for i in r["due"]], (3.2, 1.2, 1.2, 1, 0.8, 1, 0.8), 8)
        else:
            doc.multi_cell(0, 5, _("No open items overdue or due within %(days)s days.") % {"days": DUE_SOON_DAYS},
                           new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    return pdfdoc.to_bytes(doc)


def due_heading() -> str:
    return _("Open plan items overdue or due within %(days)s days") % {"days": DUE_SOON_DAYS}


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
        downloads.append_row(sheet, values)
        sheet.cell(sheet.max_row, 8).number_format = "0.00"  # 89.00 as on the page and in the PDF, not 89
    for column, width in zip("ABCDEFGHIJKLMN", (14, 36, 10, 10, 10, 10, 12, 8, 14, 16, 12, 12, 14, 12), strict=True):
        sheet.column_dimensions[column].width = width
    sheet.freeze_panes = "A2"
    items = book.create_sheet(_("Items due")[:31])  # due_heading() says what it holds
    items.append([_("Number"), _("Customer"), *item_headers()])
    for cell in items[1]:
        cell.font = Font(bold=True)
    for r in data:
        for i in r["due"]:
            downloads.append_row(items, [r["number"], r["customer"], *_item_values(i)])
    for column, width in zip("ABCDEFGHI", (14, 30, 40, 14, 14, 12, 12, 12, 12), strict=True):
        items.column_dimensions[column].width = width
    items.freeze_panes = "A2"
    return downloads.workbook_bytes(book)
