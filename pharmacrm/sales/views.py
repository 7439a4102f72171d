"""Purchases pages: the purchases block of a Customer 360 page (chart, credit, latest lines; loaded by
htmx) and the list of order lines with its filters and CSV export. Reads only: lines come in through
the import (customers' import wizard with target=orders, the CLI, the API)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from pharmacrm.core import access, audit
from pharmacrm.core.form_saves import sent_again_after
from pharmacrm.core.ids import is_id
from pharmacrm.core.local_urls import is_local
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers import exporter
from pharmacrm.customers.forms import picker_label
from pharmacrm.customers.importer import export_headers
from pharmacrm.customers.models import ImportJob, Institution
from pharmacrm.customers.views import PAGE_SIZE, CappedPaginator

from . import rollups, services, targets
from .forms import OrderLineFilterForm, apply_filters
from .models import ChurnSignal, OrderLine, ProductCode, yuan

CUSTOMER_LINES = 20  # latest order lines on a Customer 360 page
CHART_MONTHS = 24
ORDERING = ("-order_date", "order_number", "line_number")


def _customer_or_404(user, pk: int) -> Institution:
    """The institution whose purchases the user may see: 403 without the capability, 404 outside the scope."""
    access.require(user, Cap.VIEW_PURCHASES)
    institution = Institution.objects.filter(pk=pk).first()
    if institution is None or not services.may_see_purchases(user, institution):
        raise Http404(_("No such customer, or you may not see it."))
    return institution


def credit_label(status: str) -> str:
    """The credit status in the reader's language (services.CREDIT_LABELS is translated at import time)."""
    labels = {"good": _("Good"), "watch": _("Watch"), "poor": _("Poor"), "none": _("No payment history")}
    return labels.get(status, status)


def money(value) -> str:
    """Yuan as shown on the pages: ¥ and thousands separators (the zh-Hans locale groups nothing); a negative amount
    (a credit note, a target exceeded) with its sign before the ¥, as Chinese finance writes it (-¥1,200.00, not
    ¥-1,200.00)."""
    return f"-¥{-value:,.2f}" if value < 0 else f"¥{value:,.2f}"


def _with_money(lines: list[OrderLine]) -> list[OrderLine]:
    for line in lines:
        line.amount_text, line.paid_text = money(line.amount), money(line.paid_amount)
        line.outstanding_text = money(line.outstanding) if line.outstanding_fen else "—"
        line.quantity_text = plain(line.quantity)
    return lines


def chart_data(months: list[dict]) -> dict:
    """What the purchases chart draws: month labels, amounts (yuan, as numbers) and order counts; its tooltip shows
    each month's amount as the pages write money (¥237,380.70), not as the number drawn (237,380.7)."""
    return {
        "months": [m["month"] for m in months],
        "amounts": [float(m["amount"]) for m in months],
        "amount_texts": [money(m["amount"]) for m in months],
        "orders": [m["orders"] for m in months],
        "amount_label": _("Amount (¥)"),
        "orders_label": _("Orders"),
    }


@login_required
@require_GET
def customer_purchases(request, pk: int):
    """The purchases block of a Customer 360 page (htmx fragment)."""
    institution = _customer_or_404(request.user, pk)
    months = services.monthly(institution.pk, CHART_MONTHS)
    credit = services.credit(institution.pk)
    totals = services.totals(institution.pk, 12)
    lines = list(
        OrderLine.objects.filter(institution_id=institution.pk).order_by(*ORDERING)[: CUSTOMER_LINES + 1]
    )
    context = {
        "institution": institution,
        "months": [{**m, "amount_text": money(m["amount"])} for m in months],
        "chart": chart_data(months),
        "chart_id": f"purchases-data-{institution.pk}",
        "has_purchases": any(m["lines"] for m in months),
        "totals": totals,
        "amount_12m": money(totals["amount"]),
        "credit": credit,
        "credit_money": {k: money(getattr(credit, k)) for k in ("outstanding", "overdue", "paid")},
        "credit_materiality": money(yuan(rollups.materiality_fen())),
        "ageing": [{**b, "amount_text": money(b["amount"])} for b in credit.ageing],
        "credit_label": credit_label(credit.status),
        "on_time_percent": credit.on_time_percent,
        "lines": _with_money(lines[:CUSTOMER_LINES]),
        "more_lines": len(lines) > CUSTOMER_LINES,
        "churn": ChurnSignal.objects.filter(institution_id=institution.pk, resolved_on=None).first(),
    }
    if context["churn"] is not None:
        context["churn_text"] = (money(context["churn"].base_avg), money(context["churn"].recent_avg))
    return render(request, "sales/_customer_purchases.html", context)


def _filtered(request) -> tuple[OrderLineFilterForm, dict, object]:
    """The filter form, its valid values and the lines they select: none while a filter value is invalid
    (the form then names the field and the reason), rather than the lines of the other filters only."""
    user = request.user
    access.require(user, Cap.VIEW_PURCHASES)
    form = OrderLineFilterForm(request.GET or None, user=user)
    data = form.cleaned()
    qs = apply_filters(services.lines_for(user), data)
    return form, data, qs.none() if form.has_errors else qs


def _mark_key_accounts(lines: list[OrderLine]) -> list[OrderLine]:
    """Flag the lines of key accounts for their badge: one query for the page, not one per line. A department's
    lines name its hospital too (北京协和医院 › 心内科: many hospitals have a 心内科)."""
    keys = services.key_account_ids({line.institution_id for line in lines})
    for line in lines:
        line.key_account = line.institution_id in keys
        line.customer_label = picker_label(line.institution)
    return lines


def _order_list(request, form, data, qs, status: int = 200):
    from . import views_splits

    page = CappedPaginator(qs.order_by(*ORDERING), PAGE_SIZE).get_page(request.GET.get("page") or "1")
    may_import = access.can(request.user, Cap.IMPORT_ORDERS)
    rows = _mark_key_accounts(_with_money(list(page.object_list)))
    context = {
        "form": form, "page_obj": page, "rows": rows, "filtered": bool(data) or form.has_errors,
        "invalid": form.has_errors, "may_import": may_import, "import_target": ImportJob.Target.ORDERS.value,
        "query": _without_page(request.GET), "may_remove": may_import, "back": request.get_full_path(),
        "may_see_targets": targets.may_see(request.user), "split_orders": views_splits.count_for(request.user),
    }  # fmt: skip
    return render(request, "sales/order_list.html", context, status=status)


@login_required
@require_POST
def remove_line(request, pk: int):
    """Take out a line the ERP no longer has (services.remove_line), with a reason; back to the list."""
    access.require(request.user, Cap.IMPORT_ORDERS)
    line = services.lines_for(request.user).filter(pk=pk).first()
    if line is None:
        # the same form sent twice (a double click, the page sent again): the first removed it, which the audit trail
        # says; those who remove lines see every customer's, so this tells nobody of a line they may not see
        removed = AuditEntry.objects.filter(
            action=AuditEntry.Action.DELETE, object_type="sales.orderline", object_id=str(pk)
        ).exists()
        if not removed:
            raise Http404(_("No such order line, or you may not see it."))
        messages.info(request, _("This line has been removed already."))
        return redirect(_back(request))
    try:
        services.remove_line(request.user, line, request.POST.get("reason", ""))
    except ValidationError as e:
        if not OrderLine.objects.filter(pk=line.pk).exists():  # the other click of a double click removed it meanwhile
            messages.info(request, _("This line has been removed already."))
        else:
            messages.error(request, " ".join(e.messages))
    else:
        messages.success(request, _("Line %(order)s/%(line)s was removed; the customer's purchase figures were "
                                    "recomputed.") % {"order": line.order_number, "line": line.line_number})  # fmt: skip
    return redirect(_back(request))


def _back(request) -> str:
    """Where a removal goes back to: the list page it was sent from (its filters kept), else the order list."""
    back = request.POST.get("next", "")
    if not is_local(request, back):
        back = reverse("sales:orders")
    return back


@login_required
@require_GET
def orders(request):
    """Order lines of the customers the user may see, newest first."""
    form, data, qs = _filtered(request)
    return _order_list(request, form, data, qs)


def _without_page(params) -> str:
    params = params.copy()
    params.pop("page", None)
    return params.urlencode()


def _filters_for_audit(data: dict) -> dict:
    return {k: (v.pk if isinstance(v, Institution) else v) for k, v in data.items()}


def plain(number) -> str:
    """A decimal as fixed-point text without trailing zeros: 1740.000 → 1740, 12.5000 → 12.5 (never 1.74E+3)."""
    text = f"{number:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _export_rows(qs):
    """Rows in the order template's columns, so that an export can be corrected and imported again."""
    approvals = dict(
        ProductCode.objects.filter(product__isnull=False).values_list("code", "product__approval_number")
    )
    for line in qs.iterator(chunk_size=2000):
        inst = line.institution
        yield [
            line.order_number, line.line_number, line.order_date.isoformat(), inst.credit_code or "",
            inst.external_id or "", picker_label(inst), line.product_code, line.product_name,
            approvals.get(line.product_code, ""), line.batch_number, plain(line.quantity),
            plain(line.unit_price), line.amount, line.invoice_number,
            line.payment_due.isoformat() if line.payment_due else "",
            # with a payment date, an empty paid amount would read back as "paid in full": always write it then
            line.paid_date.isoformat() if line.paid_date else "",
            line.paid_amount if line.paid_fen or line.paid_date else "",
        ]  # fmt: skip


@login_required
@require_GET
def orders_export(request):
    """The filtered order lines as CSV in the import template's format (audited). An invalid filter value
    exports nothing: the list comes back with the field's message (400)."""
    form, data, qs = _filtered(request)
    if form.has_errors:
        return _order_list(request, form, data, qs, status=400)
    qs = qs.order_by(*ORDERING)
    count = qs.count()
    audit.record(
        AuditEntry.Action.EXPORT, ("sales.orderline", "", f"{count}"), user=request.user, target="orders",
        format="csv", count=count, filters=_filters_for_audit(data),
    )  # fmt: skip
    # named in the page's language, as the customer exports are (订单行-20260630.csv, order-lines-20260630.csv)
    name = f"{'-'.join(_('order lines').split())}-{timezone.localdate():%Y%m%d}.csv"
    response = StreamingHttpResponse(
        # headed in the exporting user's language, as the customer exports are; the import reads any of them
        exporter.csv_stream(export_headers(ImportJob.Target.ORDERS), _export_rows(qs)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = exporter.attachment(name)
    response["Cache-Control"] = "no-store"
    return response


CHURN_PAGE = 50


@login_required
@require_GET
def churn_watch(request):
    """Customers whose purchases stopped or fell (客户流失预警), most at stake first: those who stopped buying, then
    those buying much less, each by the monthly amount they used to buy. `mine` keeps the user's own customers,
    `level` one kind of risk. Those who see every customer also read the churn and repurchase rates."""
    from django.core.paginator import Paginator

    from . import churn
    from .models import ChurnSignal

    if not churn.may_watch(request.user):
        raise PermissionDenied
    qs = churn.signals_for(request.user).filter(resolved_on=None)
    level = request.GET.get("level") or ""
    if level in ChurnSignal.Level.values:
        qs = qs.filter(level=level)
    else:
        level = ""
    mine = request.GET.get("mine") == "on"
    if mine:
        qs = qs.filter(institution__owner=request.user)
    qs = qs.select_related("institution__parent", "institution__owner").order_by(*ChurnSignal.ORDER_OPEN)
    page = Paginator(qs, CHURN_PAGE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    for row in rows:
        row.dismissable = churn.may_dismiss(request.user, row, in_scope=True)
        row.base_text, row.recent_text = money(row.base_avg), money(row.recent_avg)
    year, quarters = churn.latest_rates() if churn.may_see_rates(request.user) else (None, [])
    return render(request, "sales/churn.html", {
        "rows": rows, "page_obj": page, "level": level, "mine": mine, "levels": ChurnSignal.Level.choices,
        "year": year, "quarters": quarters, "may_see_rates": churn.may_see_rates(request.user),
        "regular_months": churn.REGULAR_MONTHS, "drop_pct": int(churn.DROP * 100),
        "quiet_days": churn.QUIET_AFTER_DISMISSAL,
    })  # fmt: skip


@login_required
@require_POST
def churn_dismiss(request, pk: int):
    """Dismiss a warning with the reason (the owner or a manager); back to the list with a message."""
    from pharmacrm.servicedesk.services import ConflictError

    from . import churn

    signal = churn.signals_for(request.user).filter(pk=pk).select_related("institution").first()
    raw = request.POST.get("version", "")
    version = int(raw) if is_id(raw) else -1  # the page always carries it: a form without is stale
    if signal is not None and signal.resolved_on is not None:
        if signal.dismissed_by_id == request.user.pk and sent_again_after(request.user, signal, version):
            # "Dismiss" clicked twice: the first click dismissed it
            messages.success(request, _("The warning about %(customer)s was dismissed.")
                             % {"customer": signal.institution.name})  # fmt: skip
            return redirect(_churn_back(request))
        signal = None
    if signal is None:
        raise Http404
    try:
        churn.dismiss(request.user, signal, request.POST.get("reason", ""), version=version)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
    except ConflictError:
        messages.error(request, _("Someone else changed this warning meanwhile: check it and try again."))
    else:
        messages.success(request, _("The warning about %(customer)s was dismissed.") % {"customer": signal.institution.name})
    return redirect(_churn_back(request))


def _churn_back(request) -> str:
    back = request.POST.get("next") or ""
    if not (back.startswith("/sales/churn/") and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()})):
        back = reverse("sales:churn")
    return back


urlpatterns = [
    path("churn/", churn_watch, name="churn"),
    path("churn/<int:pk>/dismiss/", churn_dismiss, name="churn-dismiss"),
    path("orders/", orders, name="orders"),
    path("orders/export.csv", orders_export, name="orders-export"),
    path("orders/lines/<int:pk>/remove/", remove_line, name="order-line-remove"),
    path("customers/<int:pk>/purchases/", customer_purchases, name="customer-purchases"),
]
