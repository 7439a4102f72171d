"""Market pages (/market/): the competitor analysis (per competitor product: the customers using it by province and
hospital grade, our estimated share there, the observations per quarter, the Excel export, the drill-down), the
competitors and their products, recording competitor presence at a customer, market intelligence (filters, create,
edit, delete), and the market brief on the Customer 360 and key-account pages. services.py decides and saves; these
views only render and pass the input on."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pharmacrm.core import access, audit, downloads, personal
from pharmacrm.core.form_saves import SENT_AGAIN, deleted_by, save_form, save_new_form
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers.choices import HospitalGrade
from pharmacrm.customers.models import Institution
from pharmacrm.customers.services import ConflictError

from . import forms, services
from .models import Competitor, CompetitorProduct, Intelligence

A = AuditEntry.Action
QUARTERS = 8


def _quarter(day: dt.date) -> str:
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


def _quarters(today: dt.date) -> list[str]:
    year, q = today.year, (today.month - 1) // 3 + 1
    out = []
    for _i in range(QUARTERS):
        out.append(f"{year}Q{q}")
        q -= 1
        if q == 0:
            q, year = 4, year - 1
    return out[::-1]


def _analysis(user, params) -> tuple[forms.AnalysisFilterForm, list, list[dict], dict]:
    """The current presence in the user's scope (filtered), each customer's estimate and one row per competitor
    product."""
    form = forms.AnalysisFilterForm(params or None)
    qs = services.current_presence(services.presence_for(user)).select_related("product__company", "institution")
    company = province = ""
    if form.is_valid():
        company, province = form.cleaned_data.get("company"), form.cleaned_data.get("province")
    if province:
        qs = qs.filter(institution__province=province)
    everything = list(qs.order_by("institution__name", "product_id"))
    est = services.estimates({p.institution_id for p in everything}, everything)
    current = [p for p in everything if not company or str(p.product.company_id) == company]
    names = dict(services.provinces())
    grades = dict(HospitalGrade.choices)
    rows: dict[int, dict] = {}
    for p in current:
        row = rows.setdefault(p.product_id, {"product": p.product, "customers": 0, "volume": 0, "provinces": Counter(),
                                             "grades": Counter(), "ours": Decimal(0), "total": Decimal(0)})  # fmt: skip
        row["customers"] += 1
        row["volume"] += p.monthly_volume or 0
        row["provinces"][names.get(p.institution.province, _("Unknown"))] += 1
        row["grades"][grades.get(p.institution.grade, _("No grade"))] += 1
        e = est[p.institution_id]
        if e.estimated:
            row["ours"] += e.ours
            row["total"] += e.ours + e.theirs
    out = []
    for row in sorted(rows.values(), key=lambda r: (-r["customers"], r["product"].generic_name)):
        row["share"] = (row["ours"] * 100 / row["total"]).quantize(Decimal("0.1")) if row["total"] > 0 else None
        # "山西省 3", most first: the page lists them with the reader's separator (山西省 3、江苏省 2)
        row["provinces"] = [f"{name} {n}" for name, n in row["provinces"].most_common()]
        row["grades"] = [f"{name} {n}" for name, n in row["grades"].most_common()]
        out.append(row)
    return form, current, out, est


def _trend(user, products: list[CompetitorProduct]) -> dict:
    """Observations per quarter of the products shown (all observations, not only the current ones), the last eight
    quarters."""
    today = timezone.localdate()
    labels = _quarters(today)
    start = dt.date(int(labels[0][:4]), (int(labels[0][-1]) - 1) * 3 + 1, 1)
    counts: dict[int, Counter] = defaultdict(Counter)
    ids = [p.pk for p in products[:8]]
    for product_id, day in services.presence_for(user).filter(product_id__in=ids, observed_on__gte=start).values_list(
            "product_id", "observed_on"):  # fmt: skip
        counts[product_id][_quarter(day)] += 1
    return {"labels": labels, "series": [{"name": str(p), "data": [counts[p.pk][q] for q in labels]}
                                         for p in products[:8]]}  # fmt: skip


@login_required
@require_GET
def analysis(request):
    services.require_read(request.user)
    form, current, rows, est = _analysis(request.user, request.GET)
    if request.GET.get("format") == "xlsx":
        return _export(request, current, est)
    return render(request, "market/analysis.html", {
        "form": form, "rows": rows, "chart": _trend(request.user, [r["product"] for r in rows]),
        "may_manage": services.may_manage(request.user), "window": services.window()})  # fmt: skip


def _export(request, current, est) -> HttpResponse:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = _("Competitor presence")[:31]
    sheet.append([_("Customer"), _("Province"), _("Hospital grade"), _("Company"), _("Competitor product"),
                  _("Estimated monthly volume (units)"), _("Estimated share (%)"), _("Observed on"), _("Source"),
                  _("Our purchases, last 12 months (yuan)"), _("Our estimated share (%)")])  # fmt: skip
    names = dict(services.provinces())
    for p in current:
        e = est[p.institution_id]
        downloads.append_row(sheet, [
            p.institution.name, names.get(p.institution.province, ""), p.institution.get_grade_display(),
            p.product.company.name, str(p.product), p.monthly_volume, None if p.share is None else float(p.share),
            p.observed_on, p.get_source_display(), float(e.ours), None if e.share is None else float(e.share)])  # fmt: skip
    audit.record(A.EXPORT, ("market.presence", "", "competitor presence"), user=request.user, format="XLSX",
                 rows=len(current))  # fmt: skip
    return downloads.xlsx(downloads.workbook_bytes(book), _("Competitor presence"))


@login_required
@require_GET
def product_detail(request, pk):
    services.require_read(request.user)
    product = get_object_or_404(CompetitorProduct.objects.select_related("company"), pk=pk)
    scoped = services.presence_for(request.user).filter(product=product)
    current = list(services.current_presence(scoped).select_related("institution", "product")
                   .order_by("institution__name", "id"))  # fmt: skip
    institutions = {p.institution_id for p in current}
    at_them = list(services.current_presence(services.presence_for(request.user).filter(
        institution_id__in=institutions)).select_related("product"))  # fmt: skip
    est = services.estimates(institutions, at_them)
    rows = [{"p": p, "estimate": est[p.institution_id]} for p in current]
    names = dict(services.provinces())
    return render(request, "market/product_detail.html", {
        "product": product, "rows": rows, "provinces": names, "our_products": product.our_products.all(),
        "history": scoped.select_related("institution", "recorded_by")[:200],
        "intelligence": services.intelligence_for(request.user).filter(competitor_products=product)[:20],
        "may_manage": services.may_manage(request.user)})  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def competitors(request):
    services.require_read(request.user)
    form = forms.CompetitorForm(request.POST or None, prefix="competitor")
    status = 200
    if request.method == "POST":
        outcome = save_new_form(request.user, form, lambda: services.save_competitor(request.user, form.values()))
        if outcome.again:  # a double click: the competitor the first one recorded
            messages.info(request, SENT_AGAIN)
            competitor = Competitor.objects.filter(pk=outcome.result).first() if outcome.result else None
            return redirect("market:competitor", competitor.pk) if competitor else redirect("market:competitors")
        if outcome.saved:
            messages.success(request, _("Competitor %(name)s recorded.") % {"name": outcome.result.name})
            return redirect("market:competitors")
        status = outcome.status
    companies = Competitor.objects.prefetch_related("products")
    return render(request, "market/competitors.html", {
        "companies": companies, "form": form, "may_manage": services.may_manage(request.user)}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def competitor_edit(request, pk):
    services.require_read(request.user)
    competitor = get_object_or_404(Competitor, pk=pk)
    if not services.may_manage(request.user):
        raise services._denied()
    masked = personal.masks_free_text(request.user)  # the notes' contact details masked, put back on saving
    initial = {"name": competitor.name, "notes": personal.free_text(competitor.notes, masked), "active": competitor.active}
    form = forms.CompetitorForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        values = form.values()
        values["active"] = request.POST.get("active") in ("on", "true", "1")
        outcome = save_form(form, lambda: services.save_competitor(request.user, values, competitor,
                                                                   request.POST.get("version")))  # fmt: skip
        if outcome.saved:
            messages.success(request, _("Saved."))
            return redirect("market:competitors")
        status = outcome.status
    return render(request, "market/form.html", {"form": form, "obj": competitor, "title": competitor.name},
                  status=status)  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def product_edit(request, pk=None):
    services.require_read(request.user)
    if not services.may_manage(request.user):
        raise services._denied()
    product = get_object_or_404(CompetitorProduct, pk=pk) if pk else None
    initial = {"company": request.GET.get("company", ""), "active": True}
    if product is not None:
        initial = {f: getattr(product, f) for f in services.PRODUCT_FIELDS if f != "our_products"}
        initial["company"] = str(product.company_id)
        initial["our_products"] = [str(p.pk) for p in product.our_products.all()]
        initial["notes"] = personal.free_text(product.notes, personal.masks_free_text(request.user))  # put back on saving
    form = forms.ProductForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if product is None:  # once per form: sent again (a double click), the product the first one recorded
            outcome = save_new_form(request.user, form, lambda: services.save_product(request.user, form.values()))
        else:
            outcome = save_form(form, lambda: services.save_product(request.user, form.values(), product,
                                                                    request.POST.get("version")))  # fmt: skip
        if outcome.again:
            messages.info(request, SENT_AGAIN)
            found = CompetitorProduct.objects.filter(pk=outcome.result).first() if outcome.result else None
            return redirect("market:product", found.pk) if found else redirect("market:competitors")
        if outcome.saved:
            messages.success(request, _("Saved."))
            return redirect("market:product", outcome.result.pk)
        status = outcome.status
    title = str(product) if product else _("New competitor product")
    return render(request, "market/form.html", {"form": form, "obj": product, "title": title}, status=status)


def _institution(request, pk) -> Institution:
    return get_object_or_404(access.institutions_for(request.user), pk=pk)


@login_required
@require_http_methods(["GET", "POST"])
def presence_record(request, institution_id):
    services.require_read(request.user)
    institution = _institution(request, institution_id)
    if not services.may_record_at(request.user, institution):
        raise services._denied()
    form = forms.PresenceForm(request.POST or None, initial={"observed_on": timezone.localdate().isoformat(),
                                                            "product": request.GET.get("product", "")})  # fmt: skip
    status = 200
    if request.method == "POST":
        outcome = save_new_form(request.user, form,
                                lambda: services.record_presence(request.user, institution, form.values()))
        if outcome.again:
            messages.info(request, SENT_AGAIN)
            return redirect("market:presence", institution.pk)
        if outcome.saved:
            messages.success(request, _("The observation was recorded."))
            return redirect("market:presence", institution.pk)
        status = outcome.status
    history = (services.presence_for(request.user).filter(institution=institution)
               .select_related("product__company", "recorded_by")[:200])  # fmt: skip
    return render(request, "market/presence.html", {"institution": institution, "form": form, "history": history},
                  status=status)  # fmt: skip


def _intel_filtered(user, params):
    form = forms.IntelFilterForm(params or None)
    qs = services.intelligence_for(user).select_related("created_by")
    if form.is_valid():
        d = form.cleaned_data
        if d.get("q"):
            q = d["q"].strip()
            qs = personal.search_as_shown(user, qs, ("title", "content"), q)  # not inside a masked number
        for key, field in (("kind", "kind"), ("province", "province"), ("importance", "importance")):
            if d.get(key):
                qs = qs.filter(**{field: d[key]})
        if d.get("product"):
            qs = qs.filter(competitor_products=d["product"])
        if d.get("ours"):
            qs = qs.filter(our_products=d["ours"])
        if d.get("start"):
            qs = qs.filter(happened_on__gte=d["start"])
        if d.get("end"):
            qs = qs.filter(happened_on__lte=d["end"])
    return form, qs.order_by("-happened_on", "-id")


@login_required
@require_GET
def intelligence_list(request):
    services.require_read(request.user)
    form, qs = _intel_filtered(request.user, request.GET)
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    return render(request, "market/intelligence_list.html", {
        "form": form, "page_obj": page, "items": page.object_list, "provinces": dict(services.provinces()),
        "may_create": access.can(request.user, Cap.RECORD_MARKET)})  # fmt: skip


def _intel_form_page(request, item: Intelligence | None):
    linked = [str(c.pk) for c in item.customers.all()] if item else []
    if item is None and is_id(request.GET.get("institution")):
        linked = [request.GET["institution"]]
    initial = {"importance": "normal", "customers": linked, "happened_on": timezone.localdate().isoformat()}
    if item is not None:
        initial = {f: getattr(item, f) for f in services.INTEL_FIELDS if f not in services.RELATIONS}
        masked = personal.masks_free_text(request.user)  # contact details in the texts: masked, put back on saving
        initial.update({f: personal.free_text(initial[f], masked) for f in personal.FREE_TEXT_OF["market.intelligence"]})
        initial["happened_on"] = item.happened_on.isoformat()
        for f in services.RELATIONS:
            initial[f] = [str(o.pk) for o in getattr(item, f).all()]
    if request.method == "POST":
        linked += request.POST.getlist("customers")
    form = forms.IntelligenceForm(request.user, request.POST or None, initial=initial, linked=linked,
                                  creating=item is None)
    status = 200
    if request.method == "POST":
        version = request.POST.get("version")
        if item is None:
            outcome = save_new_form(request.user, form, lambda: services.create_intelligence(request.user, form.values()))
        else:
            outcome = save_form(form, lambda: services.update_intelligence(request.user, item, form.values(), version))
        if outcome.again:
            messages.info(request, SENT_AGAIN)
            return redirect("market:intelligence", outcome.result) if outcome.result else redirect(
                "market:intelligence-list")
        if outcome.saved:
            messages.success(request, _("Saved."))
            return redirect("market:intelligence", outcome.result.pk)
        status = outcome.status
    title = personal.free_text(item.title, personal.masks_free_text(request.user)) if item else _("New market intelligence")
    return render(request, "market/form.html", {"form": form, "obj": item, "title": title}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def intelligence_create(request):
    services.require_read(request.user)
    access.require(request.user, Cap.RECORD_MARKET)
    return _intel_form_page(request, None)


def _intel(request, pk) -> Intelligence:
    services.require_read(request.user)
    return get_object_or_404(services.intelligence_for(request.user).select_related("created_by"), pk=pk)


@login_required
@require_http_methods(["GET", "POST"])
def intelligence_edit(request, pk):
    item = _intel(request, pk)
    if not services.may_change_intelligence(request.user, item):
        raise services._denied()
    return _intel_form_page(request, item)


@login_required
@require_GET
def intelligence_detail(request, pk):
    item = _intel(request, pk)
    return render(request, "market/intelligence_detail.html", {
        "item": item, "province": services.province_name(item.province),
        "customers": access.institutions_for(request.user, item.customers.all()),
        "may_change": services.may_change_intelligence(request.user, item)})  # fmt: skip


@login_required
@require_POST
def intelligence_delete(request, pk):
    if not Intelligence.objects.filter(pk=pk).exists() and deleted_by(request.user, Intelligence, pk):
        messages.info(request, _("This intelligence was deleted already."))  # the form sent twice: the first did
        return redirect("market:intelligence-list")
    item = _intel(request, pk)
    try:
        version = request.POST.get("version") or ""
        if not is_id(version):  # the page always carries the version it showed: a form without one is stale
            raise ConflictError(item.version)
        services.delete_intelligence(request.user, item, version)
    except ConflictError as e:
        messages.error(request, str(e))
        return redirect("market:intelligence", item.pk)
    messages.success(request, _("The intelligence was deleted."))
    return redirect("market:intelligence-list")


@login_required
@require_GET
def customer_panel(request, institution_id):
    """The market brief of a Customer 360 or key-account page (htmx)."""
    services.require_read(request.user)
    institution = _institution(request, institution_id)
    context = services.customer_brief(request.user, institution)
    context.update({"institution": institution, "may_record": services.may_record_at(request.user, institution)})
    return render(request, "market/_customer_block.html", context)


app_name = "market"
urlpatterns = [
    path("", analysis, name="analysis"),
    path("competitors/", competitors, name="competitors"),
    path("competitors/<int:pk>/", competitor_edit, name="competitor"),
    path("products/new/", product_edit, name="product-create"),
    path("products/<int:pk>/", product_detail, name="product"),
    path("products/<int:pk>/edit/", product_edit, name="product-edit"),
    path("intelligence/", intelligence_list, name="intelligence-list"),
    path("intelligence/new/", intelligence_create, name="intelligence-create"),
    path("intelligence/<int:pk>/", intelligence_detail, name="intelligence"),
    path("intelligence/<int:pk>/edit/", intelligence_edit, name="intelligence-edit"),
    path("intelligence/<int:pk>/delete/", intelligence_delete, name="intelligence-delete"),
    path("customer/<int:institution_id>/", customer_panel, name="customer-panel"),
    path("customer/<int:institution_id>/presence/", presence_record, name="presence"),
]
