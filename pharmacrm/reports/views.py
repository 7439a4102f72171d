"""The user's scheduled reports (/reports/): the list, a form to add one, pause / resume / stop / mail now."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from pharmacrm.core import access
from pharmacrm.core.form_saves import SENT_AGAIN, create_once, deleted_by
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views import AlreadyCreated

from . import services
from .forms import SubscriptionForm
from .kinds import KINDS, offered
from .models import ReportSubscription

app_name = "reports"


def _context(request, form) -> dict:
    user = request.user
    subs = list(ReportSubscription.objects.filter(user=user).select_related("team").order_by("report", "frequency", "id"))
    for sub in subs:
        kind = KINDS.get(sub.report)
        sub.label = kind.filename() if kind else sub.report
        sub.snapshot = bool(kind and kind.snapshot)  # as of the day it is sent: no period to name
    return {"form": form, "subscriptions": subs, "offered": bool(offered(user)), "read_only": access.read_only(user),
            "has_email": bool((user.email or "").strip())}  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def subscriptions(request):
    user = request.user
    if request.method == "POST":
        services.refuse_read_only(user)  # before the form is read: a 403, audited as every refused write
        form = SubscriptionForm(request.POST, user=user)
        if form.is_valid():
            data = {k: v for k, v in form.cleaned_data.items() if k != "form_token"}
            try:  # once per form: sent again (a double click), the list with the one the first one scheduled
                sub = create_once(user, form.cleaned_data["form_token"], lambda: services.subscribe(user, data))
            except AlreadyCreated:
                messages.info(request, SENT_AGAIN)
                return redirect("reports:subscriptions")
            except ValidationError as e:
                form.add_service_errors(e)
            else:
                messages.success(request, _("%(report)s will be mailed to %(email)s; the first on %(date)s.") % {
                    "report": KINDS[sub.report].filename(), "email": user.email,
                    "date": sub.next_run_at.astimezone(services.LOCAL).strftime("%Y-%m-%d %H:%M")})  # fmt: skip
                return redirect("reports:subscriptions")
        return render(request, "reports/subscriptions.html", _context(request, form), status=400)
    initial = {"report": request.GET.get("report", "")}
    return render(request, "reports/subscriptions.html", _context(request, SubscriptionForm(initial=initial, user=user)))


@login_required
@require_POST
def act(request, pk: int):
    user = request.user
    sub = ReportSubscription.objects.filter(pk=pk, user=user).first()
    action = request.POST.get("action", "")
    if sub is None:
        if action == "delete" and deleted_by(user, ReportSubscription, pk):  # "Stop" clicked twice: the first did
            messages.info(request, _("Stopped: this report is no longer mailed to you."))
            return redirect("reports:subscriptions")
        raise Http404(_("This is not one of your scheduled reports."))
    if action != "delete":  # a read-only role may only stop one (it stops mails to itself)
        services.refuse_read_only(user)
    raw = request.POST.get("version", "")
    # the page always carries the version it showed: a form without one is as stale as an old one
    version = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else -1
    try:
        if action == "pause":
            services.change(user, sub, {"active": False}, version=version)
            messages.success(request, _("Paused: nothing is mailed until you resume it."))
        elif action == "resume":
            services.change(user, sub, {"active": True}, version=version)
            messages.success(request, _("Resumed."))
        elif action == "delete":
            services.unsubscribe(user, sub, version=version)
            messages.success(request, _("Stopped: this report is no longer mailed to you."))
        elif action == "now":
            services.send_now(user, sub)
            messages.success(request, _("The last period is being mailed to you now."))
        else:
            raise Http404(_("No such action."))
    except ConflictError as e:
        now = ReportSubscription.objects.filter(pk=sub.pk).values_list("active", flat=True).first()
        if action in ("pause", "resume") and now == (action == "resume"):  # clicked twice: the first one did it
            messages.info(request, _("Paused: nothing is mailed until you resume it.") if action == "pause"
                          else _("Resumed."))  # fmt: skip
        else:
            messages.error(request, str(e))
    except ValidationError as e:
        messages.error(request, " ".join(sum(e.message_dict.values(), [])))
    except PermissionDenied as e:
        messages.error(request, str(e) or _("You may not do this."))
    return redirect("reports:subscriptions")


urlpatterns = [
    path("", subscriptions, name="subscriptions"),
    path("<int:pk>/", act, name="subscription"),
]
