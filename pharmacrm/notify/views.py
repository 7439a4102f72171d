"""Notification pages: the user's own notifications (the bell), and for service administrators the webhook
endpoints and the delivery log."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from pharmacrm.core import access
from pharmacrm.core.local_urls import is_local
from pharmacrm.core.roles import Cap
from pharmacrm.customers.services import ConflictError
from pharmacrm.servicedesk.views_settings import CONFLICT

from . import services
from .forms import DeliveryFilterForm, EndpointForm
from .models import Delivery, Notification, WebhookEndpoint

PAGE_SIZE = 50


def _safe_next(request, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if is_local(request, target):
        return target
    return fallback


# --- the user's own notifications ------------------------------------------------------------------


@login_required
def inbox(request):
    qs = Notification.objects.filter(recipient=request.user)
    unread_only = request.GET.get("unread") == "1"
    if unread_only:
        qs = qs.filter(read_at__isnull=True)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    hidden = services.withheld(request.user, page.object_list)  # a patient's words after leaving PV …
    for note in services.shown_to(request.user, page.object_list):  # a ticket's subject masked for an agent
        note.text = "" if note.pk in hidden else note.shown_body
    # "Mark all read" marks what there was when the page was shown, not a notification that arrived since
    newest = Notification.objects.filter(recipient=request.user).order_by("-pk").values_list("pk", flat=True).first()
    return render(
        request,
        "notify/inbox.html",
        {"page_obj": page, "rows": page.object_list, "unread_only": unread_only, "newest": newest},
    )


def bell(request):
    """The bell's content with the unread count: fetched by htmx after the page loads (and every minute),
    so that rendering a page costs no query for it. Signed out: 204, which htmx leaves alone."""
    if not request.user.is_authenticated:
        return HttpResponse(status=204)
    response = render(request, "notify/_bell.html", {"n": services.unread_count(request.user)})
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def mark_read(request):
    if request.POST.get("all"):
        up_to = request.POST.get("up_to", "")
        n = services.mark_read(request.user, "all", up_to=int(up_to) if up_to.isdecimal() and len(up_to) < 19 else None)
    else:
        ids = [i for i in request.POST.getlist("id") if i.isdecimal() and len(i) < 19]
        n = services.mark_read(request.user, ids)
    if n:
        messages.success(request, _("Marked as read."))
    return redirect(_safe_next(request, "notify:inbox"))


@login_required
def open_notification(request, pk: int):
    """Mark one of the user's notifications read and follow its link (local links only)."""
    note = get_object_or_404(Notification, pk=pk, recipient=request.user)
    services.mark_read(request.user, [note.pk])
    if not services.may_open(request.user, note):
        # a ticket given to someone else since, a case after leaving PV: say so here instead of a bare 404
        messages.info(request, _("You can no longer open what this notification is about: %(title)s")
                      % {"title": note.shown_title})  # fmt: skip
        return redirect("notify:inbox")
    url = note.url
    if url and url_has_allowed_host_and_scheme(url, {request.get_host()}, require_https=request.is_secure()):
        return redirect(url)
    return redirect("notify:inbox")


@login_required
def open_from_mail(request, token: str):
    """The link of a notification's e-mail. Its own recipient: the notification is marked read (it no longer
    shows as unread in the bell) and its page opens, as from the list. Anyone else — a forwarded mail, a
    colleague's browser — goes to the page the mail named, where their own access applies: nothing is marked
    and nothing about the notification is read."""
    found = services.read_mail_link(token)
    if found is None:
        raise Http404(_("This link is not valid."))
    pk, url = found
    note = Notification.objects.filter(pk=pk, recipient=request.user).first()
    if note is not None:
        return open_notification(request, note.pk)
    if url and url_has_allowed_host_and_scheme(url, {request.get_host()}, require_https=request.is_secure()):
        return redirect(url)
    return redirect("notify:inbox")


# --- administration: webhook endpoints -------------------------------------------------------------


def _admin(request) -> None:
    access.require(request.user, Cap.MANAGE_SERVICE)


def _form_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errs in error.error_dict.items():
            for e in errs:
                form.add_error(field if field in form.fields else None, e)
    else:
        for message in error.messages:
            form.add_error(None, message)


@login_required
def endpoints(request):
    _admin(request)
    rows = WebhookEndpoint.objects.all()
    return render(request, "notify/endpoints.html", {"rows": rows})


@login_required
def endpoint_create(request):
    _admin(request)
    form = EndpointForm(
        request.POST or None, initial={"active": True, "format": WebhookEndpoint.Format.GENERIC}
    )
    if request.method == "POST" and form.is_valid():
        try:
            endpoint = services.create_endpoint(request.user, form.data_dict())
        except ValidationError as e:
            _form_errors(form, e)
        else:
            if getattr(endpoint, "sent_again", False):
                messages.info(request, _("This form was already sent: the endpoint was created then, and not a "
                                         "second time."))  # fmt: skip
            # the secret is shown this once; afterwards it is only ever replaced
            return render(
                request, "notify/endpoint_created.html", {"endpoint": endpoint, "secret": endpoint.secret}
            )
    return render(request, "notify/endpoint_form.html", {"form": form, "endpoint": None})


@login_required
def endpoint_edit(request, pk: int):
    _admin(request)
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    initial = {
        "name": endpoint.name, "url": endpoint.url, "format": endpoint.format,
        "events": ", ".join(endpoint.events), "active": endpoint.active, "version": endpoint.version,
    }  # fmt: skip
    form = EndpointForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_endpoint(request.user, endpoint, form.data_dict(), version=form.cleaned_data.get("version"))
        except ConflictError:  # someone saved first: their version, the user's input kept
            endpoint.refresh_from_db()
            kept = request.POST.copy()
            kept["version"] = str(endpoint.version)
            form = EndpointForm(kept)
            form.is_valid()
            form.add_error(None, CONFLICT)
            return render(request, "notify/endpoint_form.html", {"form": form, "endpoint": endpoint}, status=409)
        except ValidationError as e:
            _form_errors(form, e)
        else:
            messages.success(request, _("Webhook endpoint saved."))
            return redirect("notify:endpoints")
    return render(request, "notify/endpoint_form.html", {"form": form, "endpoint": endpoint})


@login_required
@require_POST
def endpoint_deactivate(request, pk: int):
    _admin(request)
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    services.deactivate_endpoint(request.user, endpoint)
    messages.success(request, _("Webhook endpoint switched off."))
    return redirect("notify:endpoints")


@login_required
@require_POST
def endpoint_test(request, pk: int):
    _admin(request)
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    if getattr(services.send_test(request.user, endpoint), "sent_again", False):
        messages.info(request, _("A test message for this endpoint is already on its way, and no second one was "
                                 "queued; its result appears in the delivery log."))  # fmt: skip
    else:
        messages.success(request, _("A test message is on its way; its result appears in the delivery log."))
    return redirect(f"{_deliveries_url()}?endpoint={endpoint.pk}")


# --- administration: the delivery log --------------------------------------------------------------


def _deliveries_url() -> str:
    from django.urls import reverse

    return reverse("notify:deliveries")


@login_required
def deliveries(request):
    _admin(request)
    form = DeliveryFilterForm(request.GET or None)
    qs = Delivery.objects.select_related("endpoint")
    if form.is_valid():
        if form.cleaned_data.get("status"):
            qs = qs.filter(status=form.cleaned_data["status"])
        if form.cleaned_data.get("channel"):
            qs = qs.filter(channel=form.cleaned_data["channel"])
    endpoint = request.GET.get("endpoint", "")
    if endpoint.isdecimal() and len(endpoint) < 19:
        qs = qs.filter(endpoint_id=int(endpoint))
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    filtered = any(request.GET.get(k) for k in ("status", "channel", "endpoint"))
    return render(
        request,
        "notify/deliveries.html",
        {"form": form, "filtered": filtered, "page_obj": page, "rows": page.object_list},
    )


@login_required
@require_POST
def delivery_retry(request, pk: int):
    _admin(request)
    delivery = get_object_or_404(Delivery, pk=pk)
    try:
        delivery = services.retry(request.user, delivery)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
    else:
        if delivery.behind:  # held behind an earlier failed one: that one tries the endpoint first
            messages.success(request, _(
                "This delivery waits behind #%(ahead)s, an earlier one to the same endpoint that failed, so that the "
                "events arrive in their order: that one is sent again now, and this one right after it if it gets "
                "through (otherwise both wait for its next attempt)."
            ) % {"ahead": delivery.behind})  # fmt: skip
        else:
            messages.success(request, _("The delivery is queued to be sent again now."))
    return redirect(_safe_next(request, "notify:deliveries"))
