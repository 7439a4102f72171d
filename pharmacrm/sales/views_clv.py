"""Customer lifetime value pages (/sales/clv/): the top customers with their distribution per class and province,
the Excel export, and the Customer 360 block. The figures are clv.py's nightly run."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from pharmacrm.core import access, audit, downloads
from pharmacrm.core.models import AuditEntry, Region, region_label
from pharmacrm.core.numbers import percent_text
from pharmacrm.customers.models import Institution

from . import clv
from .models import CustomerValue, yuan
from .views import money

TOP = 50
SORTS = {"projected": "-projected_fen", "historic": "-historic_fen", "average": "-avg_month_fen",
         "tenure": "-tenure_months"}  # fmt: skip


def _require(user) -> None:
    if not clv.may_see(user):
        raise PermissionDenied


def _filtered(request):
    qs = clv.values_for(request.user)
    klass = request.GET.get("class") if request.GET.get("class") in ("A", "B", "C", "D") else ""
    if klass:
        qs = qs.filter(klass=klass)
    province = request.GET.get("province", "")
    if province.isdigit() and len(province) == 6 and province.isascii():
        qs = qs.filter(institution__province=province)
    else:
        province = ""
    sort = request.GET.get("sort") if request.GET.get("sort") in SORTS else "projected"
    return qs, {"class": klass, "province": province, "sort": sort}


def _names(codes) -> dict[str, str]:
    """Province names in the reader's language (廣東省, Guangdong), as every page writes regions."""
    rows = Region.objects.filter(code__in=[c for c in codes if c]).values_list("code", "name")
    return {code: region_label(code, name) for code, name in rows}


@login_required
@require_GET
def clv_page(request):
    """The customers of the highest lifetime value the user may see, and how value spreads over classes and
    provinces."""
    _require(request.user)
    qs, filters = _filtered(request)
    rows = list(qs.select_related("institution", "institution__owner").order_by(SORTS[filters["sort"]],
                                                                                "institution_id")[:TOP])  # fmt: skip
    for r in rows:
        r.texts = {"historic": money(r.historic), "avg": money(r.avg_month), "projected": money(r.projected)}
    by_class = clv.distribution(qs, "class")
    by_province = clv.distribution(qs, "province")
    names = _names(r["institution__province"] for r in by_province)
    for r in by_class:
        r["label"] = r["klass"] or _("No class")
    for r in by_province:
        r["label"] = names.get(r["institution__province"], r["institution__province"] or _("No region"))
    for r in (*by_class, *by_province):
        r["historic_text"], r["projected_text"] = money(yuan(r["historic"] or 0)), money(yuan(r["projected"] or 0))
    last = CustomerValue.objects.order_by("-computed_on").values_list("computed_on", flat=True).first()
    return render(request, "sales/clv.html", {
        "rows": rows, "filters": filters, "by_class": by_class, "by_province": by_province, "computed_on": last,
        "horizon": clv.HORIZON, "provinces": Region.objects.filter(code__endswith="0000").order_by("code"),
        "sorts": [("projected", _("Projected value")), ("historic", _("Paid to date")),
                  ("average", _("Average monthly value")), ("tenure", _("Tenure"))],
    })  # fmt: skip


@login_required
@require_GET
def clv_export(request):
    """The lifetime values of the page's filters as an Excel workbook (at most 20,000 customers)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    _require(request.user)
    qs, filters = _filtered(request)
    qs = qs.select_related("institution").order_by(SORTS[filters["sort"]], "institution_id")[:20000]
    book = Workbook()
    sheet = book.active
    sheet.title = _("Customer lifetime value")[:31]
    sheet.append([_("Customer"), _("Code"), _("Customer class"), _("Paid to date (¥)"), _("Months with purchases"),
                  _("Average monthly value (¥)"), _("Tenure (months)"), _("First purchase"), _("Last purchase"),
                  _("12-month retention used"), _("Projected value, next 36 months (¥)"), _("Computed")])  # fmt: skip
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    rows = 0
    for v in qs:
        downloads.append_row(sheet, [
            v.institution.name, v.institution.code, v.klass or None, float(v.historic), v.active_months,
            float(v.avg_month), v.tenure_months, v.first_month, v.last_month, float(v.retention), float(v.projected),
            v.computed_on])  # fmt: skip
        rows += 1
    content = downloads.workbook_bytes(book)
    audit.record(AuditEntry.Action.EXPORT, ("sales.customervalue", "", "customer lifetime value"), user=request.user,
                 format="XLSX", rows=rows, **{k: v for k, v in filters.items() if v})  # fmt: skip
    return downloads.xlsx(content, _("Customer lifetime value"))


@login_required
@require_GET
def clv_customer(request, pk: int):
    """The lifetime value block of a Customer 360 page (htmx fragment)."""
    _require(request.user)
    institution = access.get_visible_or_404(request.user, Institution, pk)
    value = CustomerValue.objects.filter(institution_id=institution.pk).first()
    texts = {}
    if value is not None:
        texts = {"historic": money(value.historic), "avg": money(value.avg_month), "projected": money(value.projected),
                 "retention": percent_text(value.retention, fraction=True)}  # fmt: skip
    return render(request, "sales/_customer_clv.html", {"value": value, "texts": texts, "horizon": clv.HORIZON})


urlpatterns = [  # included by urls.py under /sales/
    path("clv/", clv_page, name="clv"),
    path("clv/export.xlsx", clv_export, name="clv-export"),
    path("clv/customer/<int:pk>/", clv_customer, name="customer-clv"),
]
