"""Licence pages (/licences/): the list of licences that need attention (expired, expiring, not verified) with an
Excel export, the customers that lack a required licence, the form, the verification, and the block on the Customer
360 page. services.py decides and saves; these views only render and pass the input on."""

from __future__ import annotations

import datetime as dt
import io

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pharmacrm.core import access, audit, downloads, personal, wording
from pharmacrm.core.form_saves import SENT_AGAIN, save_form, save_new_form
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers.exporter import masked_search
from pharmacrm.customers.models import Institution
from pharmacrm.customers.services import ConflictError

from . import forms, services
from .models import Licence, LicenceKind, Scope

A = AuditEntry.Action


def _require_read(user) -> None:
    access.require(user, Cap.VIEW_CUSTOMERS)


def filtered(user, params):
    form = forms.FilterForm(params or None)
    qs = services.licences_for(user).filter(institution__merged_into__isnull=True)
    today = timezone.localdate()
    soon = today + dt.timedelta(days=services.warn_days())
    if form.is_valid():
        d = form.cleaned_data
        if d.get("q"):
            q = d["q"].strip()
            qs = qs.filter(Q(institution__name__icontains=q) | Q(number__icontains=q.upper()))
        if d.get("kind"):
            qs = qs.filter(kind=d["kind"])
        status = d.get("status")
        if status == "expired":
            qs = qs.filter(valid_until__lt=today)
        elif status == "expiring":
            qs = qs.filter(valid_until__gte=today, valid_until__lte=soon, verified_at__isnull=False)
        elif status == "unverified":
            qs = qs.filter(verified_at__isnull=True).exclude(valid_until__lt=today)
        elif status == "attention":
            qs = qs.filter(Q(valid_until__lte=soon) | Q(verified_at__isnull=True))
        if d.get("mine"):
            qs = qs.filter(institution__owner=user)
    return form, qs.select_related("institution", "recorded_by", "verified_by").order_by(
        "valid_until", "institution__name", "id")


@login_required
@require_GET
def licence_list(request):
    _require_read(request.user)
    params = request.GET.copy()
    if "status" not in params:
        params["status"] = "attention"
    form, qs = filtered(request.user, params)
    if request.GET.get("format") == "xlsx":
        return _export(request, qs)
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    today = timezone.localdate()
    for licence in page.object_list:
        licence.status = services.status_of(licence, today)
        licence.status_label = services.STATUS_LABELS[licence.status]
    return render(request, "licences/licence_list.html", {
        "form": form, "page_obj": page, "licences": page.object_list,
        "may_review_sales": services.may_review_sales(request.user)})  # fmt: skip


def _audited_filters(request) -> str:
    """The export's query string as its audit entry keeps it: a phone number or e-mail address typed into the search
    masked, as the customer exports mask theirs (the trail is append-only and the auditor reads it masked)."""
    params = request.GET.copy()
    if params.get("q"):
        params["q"] = masked_search(params["q"])
    return params.urlencode()


def _scope_labels(licence: Licence) -> str:
    # the reader's separator: 、 between Chinese words, ", " in English
    return wording.listing(Scope(s).label for s in licence.scope if s in Scope.values)


def _export(request, qs) -> HttpResponse:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = _("Licences")[:31]
    sheet.append([_("Customer"), _("Type"), _("Licence number"), _("Business scope"), _("Issued by"), _("Issued on"),
                  _("Valid until"), _("Status"), _("Recorded by"), _("Verified by"), _("Verified")])  # fmt: skip
    today = timezone.localdate()
    count = 0
    for licence in qs.iterator(chunk_size=2000):
        downloads.append_row(sheet, [
            licence.institution.name, licence.get_kind_display(), licence.number, _scope_labels(licence),
            licence.issuer, licence.issued_on, licence.valid_until or _("Long-term"),
            str(services.STATUS_LABELS[services.status_of(licence, today)]), str(licence.recorded_by),
            str(licence.verified_by or ""),
            timezone.localtime(licence.verified_at).replace(tzinfo=None) if licence.verified_at else None])  # fmt: skip
        count += 1
    content = downloads.workbook_bytes(book)
    audit.record(A.EXPORT, ("licences.licence", "", "licences"), user=request.user, format="XLSX", rows=count,
                 filters=_audited_filters(request))  # fmt: skip
    return downloads.xlsx(content, _("Customer licences"))


def unqualified_customers(user):
    """The customers (in the user's scope) that lack a verified licence in force of a kind their type requires."""
    from django.conf import settings

    today = timezone.localdate()
    in_force = Licence.objects.filter(institution=OuterRef("pk")).filter(Q(valid_until__isnull=True) |
                                                                        Q(valid_until__gte=today))  # fmt: skip
    lacking = Q(pk__in=[])
    for kind_of_customer, kinds in settings.LICENCES_REQUIRED.items():
        for kind in kinds:
            verified = in_force.filter(kind=kind, verified_at__isnull=False)
            lacking |= Q(kind=kind_of_customer) & ~Q(Exists(verified))
    return (access.institutions_for(user, Institution.objects.active()).filter(lacking)
            .select_related("owner", "region").order_by("name", "id"))  # fmt: skip


@login_required
@require_GET
def unqualified(request):
    _require_read(request.user)
    qs = unqualified_customers(request.user)
    if request.GET.get("mine") == "1":
        qs = qs.filter(owner=request.user)
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    licences = {}
    for licence in Licence.objects.filter(institution__in=[i.pk for i in page.object_list]).order_by("kind"):
        licences.setdefault(licence.institution_id, []).append(licence)
    for institution in page.object_list:
        q = services.qualification(institution, licences.get(institution.pk, []))
        institution.lacking = q.missing_labels + [_("%(kind)s (not verified)") % {"kind": k} for k in q.unverified_labels]
    return render(request, "licences/unqualified.html", {
        "page_obj": page, "customers": page.object_list, "mine": request.GET.get("mine") == "1",
        "may_review_sales": services.may_review_sales(request.user)})  # fmt: skip


@login_required
@require_GET
def unqualified_sales(request):
    """The orders sold while the customer lacked a verified licence in force of a kind its type requires, over a
    period (the last three months unless chosen), per customer; `?format=xlsx` gives one row per order, audited.
    The amounts are shown to those who see purchases; quality (pv) sees the orders without them."""
    services.require_review_sales(request.user)
    form = forms.SalesWindowForm(request.GET or None)
    form.is_valid()
    start, end = services.default_sales_window()
    buyers = None
    try:
        start, end = services.clean_sales_window(request.GET.get("start"), request.GET.get("end"))
    except ValidationError as e:
        form.add_service_errors(e)
    else:
        mine = request.GET.get("mine") in ("1", "on", "true")
        buyers = services.sales_while_unqualified(request.user, start, end, mine=mine)
        if request.GET.get("format") == "xlsx":
            return _export_unqualified_sales(request, buyers, start, end)
    amounts = access.can(request.user, Cap.VIEW_PURCHASES)
    page = Paginator(buyers or [], 50).get_page(request.GET.get("page"))
    if amounts:
        from pharmacrm.sales.views import money

        for buyer in page.object_list:
            buyer.amount_text = money(buyer.amount)
    if not request.GET:
        form = forms.SalesWindowForm(initial={"start": start.isoformat(), "end": end.isoformat()})
    return render(request, "licences/unqualified_sales.html", {
        "form": form, "page_obj": page, "buyers": page.object_list, "start": start, "end": end, "amounts": amounts,
        "total_orders": sum(b.orders for b in buyers or []), "query": request.GET.urlencode(),
    }, status=200 if buyers is not None else 400)  # fmt: skip


def _export_unqualified_sales(request, buyers, start, end) -> HttpResponse:
    from openpyxl import Workbook

    amounts = access.can(request.user, Cap.VIEW_PURCHASES)
    book = Workbook()
    sheet = book.active
    sheet.title = _("Sales while unqualified")[:31]
    sheet.append([_("Customer"), _("Unified social credit code"), _("Type"), _("Owner"), _("Order number"),
                  _("Order date"), _("Lines"), *([_("Amount (yuan)")] if amounts else []), _("Lacking"),
                  _("Lacking from"), _("Lacking until")])  # fmt: skip
    count = 0
    for buyer in buyers:
        c = buyer.institution
        for sale in buyer.sales:
            downloads.append_row(sheet, [
                c.name, c.credit_code or "", c.get_kind_display(), str(c.owner or ""), sale.order_number,
                sale.order_date, sale.lines, *([sale.amount] if amounts else []), "; ".join(sale.gap.labels),
                sale.gap.start, sale.gap.end])  # fmt: skip
            count += 1
    content = downloads.workbook_bytes(book)
    audit.record(A.EXPORT, ("licences.licence", "", "sales while unqualified"), user=request.user, format="XLSX",
                 rows=count, filters=_audited_filters(request), period=[start.isoformat(), end.isoformat()])  # fmt: skip
    return downloads.xlsx(content, _("Sales while unqualified"), f"{start:%Y%m%d}", f"{end:%Y%m%d}", dated=False)


def _institution(user, pk) -> Institution:
    return access.get_visible_or_404(user, Institution, pk)


@login_required
@require_http_methods(["GET", "POST"])
def licence_create(request, institution_id):
    institution = _institution(request.user, institution_id)
    if not services.may_record(request.user, institution):
        raise PermissionDenied
    form = forms.LicenceForm(request.POST or None, request.FILES or None, initial={"kind": request.GET.get("kind", "")})
    status = 200
    if request.method == "POST":
        outcome = save_new_form(request.user, form, lambda: services.create(request.user, institution, form.values(),
                                                                            scan=form.scan_upload()))  # fmt: skip
        if outcome.again:  # sent twice (a double click): the customer's page, with the licence the first recorded
            messages.info(request, SENT_AGAIN)
            return redirect("customers:institution", institution.pk)
        if outcome.saved:
            messages.success(request, _("Licence %(number)s recorded; it counts once someone else has verified it.")
                             % {"number": outcome.result.number})  # fmt: skip
            return redirect("customers:institution", institution.pk)
        status = outcome.status
    return render(request, "licences/licence_form.html", {"form": form, "institution": institution}, status=status)


def _licence(user, pk) -> Licence:
    _require_read(user)
    return get_object_or_404(services.licences_for(user).select_related("institution", "recorded_by", "verified_by"),
                             pk=pk)  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def licence_edit(request, pk):
    licence = _licence(request.user, pk)
    if not services.may_record(request.user, licence.institution):
        raise PermissionDenied
    initial = {f: getattr(licence, f) for f in services.FIELDS}
    masked = personal.masks_free_text(request.user)  # the texts as the page shows them; masks saved back as stored
    initial.update({f: personal.free_text(initial[f], masked) for f in services.TEXTS})
    for f in ("issued_on", "valid_until"):
        initial[f] = initial[f].isoformat() if initial[f] else ""
    form = forms.LicenceForm(request.POST or None, request.FILES or None, initial=initial)
    status = 200
    if request.method == "POST":
        version = request.POST.get("version")
        outcome = save_form(form, lambda: services.update(request.user, licence, form.values(), version,
                                                          scan=form.scan_upload()))  # fmt: skip
        if outcome.saved:
            messages.success(request, _("Licence %(number)s saved.") % {"number": licence.number})
            return redirect("customers:institution", licence.institution_id)
        status = outcome.status
    return render(request, "licences/licence_form.html", {"form": form, "institution": licence.institution,
                                                          "licence": licence}, status=status)  # fmt: skip


@login_required
@require_POST
def licence_verify(request, pk):
    licence = _licence(request.user, pk)
    try:
        services.verify(request.user, licence, request.POST.get("version"))
    except (ConflictError, ValidationError) as e:
        messages.error(request, e.messages[0] if isinstance(e, ValidationError) else str(e))
    else:
        messages.success(request, _("Licence %(number)s verified.") % {"number": licence.number})
    if request.POST.get("next") == "list":  # verified from the list: back to it
        return redirect("licences:list")
    return redirect("customers:institution", licence.institution_id)


@login_required
@require_GET
def licence_scan(request, pk):
    """The scanned copy, for anyone who may read the licence (404 outside the scope); each download audited."""
    licence = _licence(request.user, pk)
    if not licence.scan:
        raise Http404
    try:
        data = services.kept_scan(licence)
    except FileNotFoundError:
        raise Http404 from None
    audit.record(A.EXPORT, licence, user=request.user, format=licence.scan.rsplit(".", 1)[-1].upper(), rows=1)
    response = FileResponse(io.BytesIO(data), as_attachment=True, filename=licence.scan_name or licence.scan)
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def customer_panel(request, institution_id):
    """The block of a Customer 360 page: the customer's licences, what its type requires and what is missing."""
    _require_read(request.user)
    institution = _institution(request.user, institution_id)
    q = services.qualification(institution)
    for licence in q.licences:
        licence.may_verify = services.may_verify(request.user, licence)
        licence.scope_labels = _scope_labels(licence)
    return render(request, "licences/_customer_block.html", {
        "institution": institution, "q": q, "required": [LicenceKind(k).label for k in services.required_kinds(institution)],
        "may_record": services.may_record(request.user, institution) and not institution.merged_into_id})  # fmt: skip


app_name = "licences"
urlpatterns = [
    path("", licence_list, name="list"),
    path("unqualified/", unqualified, name="unqualified"),
    path("unqualified-sales/", unqualified_sales, name="unqualified-sales"),
    path("new/<int:institution_id>/", licence_create, name="create"),
    path("<int:pk>/edit/", licence_edit, name="edit"),
    path("<int:pk>/verify/", licence_verify, name="verify"),
    path("<int:pk>/scan/", licence_scan, name="scan"),
    path("customer/<int:institution_id>/", customer_panel, name="customer-panel"),
]

