"""The split orders page (拆分订单, /sales/orders/splits/): the orders whose lines name two customers or carry two
order dates (stored before session 56, sales.splits), for those who see purchases — a territory-bound reader only the
orders of their customers. Those who import orders repair one from there: they choose the customer and the order date
it keeps (by default those of the line imported last, as `pharmacrm orders split-check --repair` keeps), see on a page
of its own which lines change, and confirm; `splits.repair` does the work, the command's own repair."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods

from pharmacrm.core import access, wording
from pharmacrm.core.local_urls import is_local
from pharmacrm.core.roles import Cap

from . import splits
from .forms import SplitOrderFilterForm, SplitRepairForm
from .views import money

PAGE = 20  # split orders a page


def filtered_numbers(user, data: dict) -> list[str]:
    """The split orders the page (and its API) lists for these filter values (SplitOrderFilterForm.cleaned())."""
    customer = data.get("customer")
    return splits.numbers_for(
        user, customer=getattr(customer, "pk", customer), order=data.get("order") or "",
        date_from=data.get("date_from"), date_to=data.get("date_to"),
    )  # fmt: skip


def count_for(user) -> int:
    """How many split orders the user may see (0 for those who see no purchases): the count the order list, the
    order import page and an import's result link with."""
    return len(splits.numbers_for(user)) if access.can(user, Cap.VIEW_PURCHASES) else 0


def _with_texts(orders: list[splits.SplitOrder]) -> list[splits.SplitOrder]:
    """Each part's amount as the pages write money, and a date's customers as (id, name) pairs."""
    for order in orders:
        for part in (order.customers.parts if order.customers else []) + (order.dates.parts if order.dates else []):
            part.amount_text = money(part.amount)
        for part in order.dates.parts if order.dates else []:
            part.named = list(zip(part.customers, part.customer_names, strict=True))
    return orders


@login_required
@require_GET
def split_orders(request):
    """The split orders the user may see, by order number, with the filter bar and paging."""
    user = request.user
    access.require(user, Cap.VIEW_PURCHASES)
    form = SplitOrderFilterForm(request.GET or None, user=user)
    data = form.cleaned()
    numbers = [] if form.has_errors else filtered_numbers(user, data)
    page = Paginator(numbers, PAGE).get_page(request.GET.get("page"))
    return render(request, "sales/split_orders.html", {
        "form": form, "page_obj": page, "orders": _with_texts(splits.describe(page.object_list)),
        "filtered": bool(data) or form.has_errors, "invalid": form.has_errors,
        "may_repair": access.can(user, Cap.IMPORT_ORDERS), "back": request.get_full_path(),
    })  # fmt: skip


def _back(request) -> str:
    back = request.POST.get("next") or request.GET.get("next") or ""
    return back if is_local(request, back) else reverse("sales:order-splits")


def _already(request, number: str):
    """An order no longer split: repaired since the page was read (a double click, a colleague) — said so with who
    and when, from the audit trail — or never split (404)."""
    entry = splits.last_repair(number)
    if entry is None:
        raise Http404(_("No order %(order)s is split between customers or order dates.") % {"order": number})
    messages.info(request, _("Order %(order)s was repaired already, by %(user)s at %(time)s: nothing was changed.") % {
        "order": number, "user": str(entry.actor) if entry.actor_id and entry.actor else entry.actor_name,
        "time": f"{timezone.localtime(entry.at):%Y-%m-%d %H:%M}",
    })  # fmt: skip
    return redirect(_back(request))


def _customer_names(order: splits.SplitOrder) -> dict[int, str]:
    """The customers the order's lines name: id → name."""
    if order.customers is not None:
        return {p.institution_id: p.name for p in order.customers.parts}
    return {i: name for p in order.dates.parts for i, name in zip(p.customers, p.customer_names, strict=True)}


def _changes(order: splits.SplitOrder, customer: int | None, day) -> list[str]:
    """What the repair keeping `customer` and `day` changes, one sentence a part that gives up its lines."""
    out = []
    if order.customers is not None:
        kept = next(p for p in order.customers.parts if p.institution_id == customer)
        for part in order.customers.parts:
            if part is not kept:
                out.append(ngettext("Line %(lines)s of %(from)s (%(amount)s) moves to %(to)s.",
                                    "Lines %(lines)s of %(from)s (%(amount)s) move to %(to)s.", len(part.lines)) % {
                    "lines": wording.listing(part.lines), "from": part.name, "amount": money(part.amount),
                    "to": kept.name,
                })  # fmt: skip
    if order.dates is not None:
        for part in order.dates.parts:
            if part.order_date != day:
                out.append(ngettext("Line %(lines)s dated %(from)s takes the order date %(to)s.",
                                    "Lines %(lines)s dated %(from)s take the order date %(to)s.", len(part.lines)) % {
                    "lines": wording.listing(part.lines), "from": part.order_date.isoformat(), "to": day.isoformat(),
                })  # fmt: skip
    return out


@login_required
@require_http_methods(["GET", "POST"])
def split_repair(request):
    """GET: what repairing the order keeping the customer and date chosen on the list changes, to confirm. POST: the
    repair (splits.repair), then back to the list with what it did — or, sent twice or after a colleague, that the
    order was repaired already."""
    user = request.user
    access.require(user, Cap.IMPORT_ORDERS)
    form = SplitRepairForm(request.POST if request.method == "POST" else request.GET)
    if not form.is_valid():
        messages.error(request, " ".join(f"{form.fields[name].label}: {' '.join(errors)}" if name in form.fields
                                         else " ".join(errors) for name, errors in form.errors.items()))  # fmt: skip
        return redirect(_back(request))
    number, customer, day = (form.cleaned_data[k] for k in ("order", "customer", "order_date"))
    found = splits.describe([number])
    if not found:
        return _already(request, number)
    order = found[0]
    names = _customer_names(order)
    if access.visible_ids(user, "institution", names) != set(names):
        raise Http404(_("No order %(order)s is split between customers or order dates.") % {"order": number})
    customer = customer if customer is not None or order.customers is None else order.customers.keeper
    day = day if day is not None or order.dates is None else order.dates.kept
    if request.method == "POST":
        try:
            done = splits.repair(number, user, customer=customer, order_date=day, source="form")
        except ValidationError as e:
            messages.error(request, " ".join(e.messages))
            return redirect(_back(request))
        if done.already:
            return _already(request, number)
        messages.success(request, _("Order %(order)s was repaired: its lines all name %(customer)s and carry the "
                                    "order date %(date)s (%(moved)d line(s) moved, %(dated)d line(s) given that date); "
                                    "the customers' monthly purchases were recomputed.") % {
            "order": number, "customer": names.get(done.customer, done.customer), "date": done.order_date.isoformat(),
            "moved": done.moved, "dated": done.redated,
        })  # fmt: skip
        return redirect(_back(request))
    if (order.customers is not None and customer not in names) or (
        order.dates is not None and day not in {p.order_date for p in order.dates.parts}
    ):
        messages.error(request, _("Choose one of the order's customers and one of its order dates."))
        return redirect(_back(request))
    return render(request, "sales/split_repair.html", {
        "order": _with_texts([order])[0], "customer": customer, "day": day, "changes": _changes(order, customer, day),
        "customer_name": names.get(customer) or next(iter(names.values()), ""), "back": _back(request),
    })  # fmt: skip


def import_links(user, job=None) -> list[tuple[str, str]]:
    """The order import page's link to the split orders, with their count (when there are some), and an import's
    result's when the file named orders that are split still (the job's note keeps their numbers): one order is
    linked by its number."""
    if not access.can(user, Cap.VIEW_PURCHASES):
        return []
    url = reverse("sales:order-splits")
    if job is None:
        count = count_for(user)
    else:
        try:
            notes = json.loads(job.message) if job.message else []
        except ValueError:
            notes = []
        noted = next((n.get("params", {}).get("order_list") for n in notes if isinstance(n, dict)
                      and n.get("code") == "split_orders"), None) if isinstance(notes, list) else None  # fmt: skip
        still = splits.split_numbers(noted) if noted else []
        count = len(still)
        if count == 1:
            url += "?" + urlencode({"order": still[0]})
    if not count:
        return []
    return [(ngettext("%(n)s split order: its lines name two customers or carry two order dates. See and repair it.",
                      "%(n)s split orders: their lines name two customers or carry two order dates. See and repair "
                      "them.", count) % {"n": count}, url)]  # fmt: skip


urlpatterns = [
    path("orders/splits/", split_orders, name="order-splits"),
    path("orders/splits/repair/", split_repair, name="order-split-repair"),
]

