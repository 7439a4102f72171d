"""Service-desk settings pages for administrators and managers (Cap.MANAGE_SERVICE): the ticket category
tree, the SLA policies and the escalation ladder, with a landing page that also leads to the calendars.

Every change goes through the services (policies.py, escalation.py), which check the capability, validate,
lock by version and audit. A stale `version` (someone else saved first) shows the form again with what the
user typed and a conflict message (HTTP 409); a refused change shows the service's message."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from pharmacrm.core import access
from pharmacrm.core.form_saves import create_once, sent_again
from pharmacrm.core.roles import Cap
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views import AlreadyCreated

from . import escalation, policies
from .forms_settings import CategoryForm, EscalationRuleForm, PolicyForm, category_tree
from .models import BusinessCalendar, EscalationRule, SlaPolicy, TicketCategory

CONFLICT = gettext_lazy(
    "Someone else changed this setting while you were working on it. Your input is kept with their version: "
    "check it, then save again."
)


def _manage(request) -> None:
    access.require(request.user, Cap.MANAGE_SERVICE)


def _version(request) -> int | None:
    raw = (request.POST.get("version") or "").strip()
    return int(raw) if raw.isdecimal() else None


def _edit(request, *, obj, model, form_class, form_kwargs, create, update, success, template, context, back, page):
    """The create/edit page of one setting: GET shows the form; a valid POST calls the service and goes
    back to the list; a service error shows the form again (400), a stale version too with a conflict
    message and the record's current version (409). A new setting's form sent again (a double click) creates
    nothing more: it leads to the setting the first one created (`page`, its URL name)."""
    initial = form_class.initial_for(obj) if obj is not None else {}
    form = form_class(request.POST if request.method == "POST" else None, initial=initial, **form_kwargs)
    status = 200
    if request.method == "POST":
        status = 400
        try:
            if form.is_valid():
                data = form.service_data()
                if obj is None:
                    obj = create_once(request.user, request.POST.get("form_token"), lambda: create(data))
                else:
                    obj = update(obj, data, form.cleaned_data.get("version"))
                messages.success(request, success(obj))
                return redirect(back)
        except AlreadyCreated as e:  # the form sent again: the first one created it
            return sent_again(request, model, e.pk, reverse(back), page_of=lambda x: reverse(page, args=[x.pk]))
        except ConflictError:
            obj = model.objects.get(pk=obj.pk)
            kept = request.POST.copy()
            kept["version"] = str(getattr(obj, "version", ""))
            form = form_class(kept, initial=form_class.initial_for(obj), **form_kwargs)
            form.is_valid()
            form.add_error(None, str(CONFLICT))
            status = 409
        except ValidationError as e:
            if obj is not None and obj.pk is not None:
                obj = model.objects.get(pk=obj.pk)  # the service changed the object in memory
            form.add_service_errors(e)
    return render(request, template, {"form": form, "obj": obj, **context}, status=status)


def _toggle(request, *, obj, change, success, render_list):
    """Switch a setting off (or on again) from its list: the list again with the service's refusal (400)
    or a conflict message (409) when the row changed since the list was shown."""
    active = request.POST.get("active") == "1"
    try:
        obj = change(obj, active)
    except ConflictError:
        messages.error(request, str(CONFLICT))
        return render_list(status=409)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
        return render_list(status=400)
    messages.success(request, success(obj))
    return None


# --- landing page -------------------------------------------------------------------------------------------


@login_required
@require_GET
def settings_home(request):
    _manage(request)
    counts = {
        "categories": TicketCategory.objects.filter(active=True).count(),
        "policies": SlaPolicy.objects.filter(active=True).count(),
        "levels": EscalationRule.objects.filter(active=True).count(),
        "calendars": BusinessCalendar.objects.count(),
    }
    return render(request, "servicedesk/settings/index.html", {"counts": counts})


# --- ticket categories --------------------------------------------------------------------------------------


def _category_list(request, status: int = 200):
    tree = category_tree(TicketCategory.objects.select_related("parent").order_by("position", "code"))
    rows = [{"category": c, "depth": d, "indent": f"{d * 1.5:g}"} for c, d in tree]
    return render(request, "servicedesk/settings/category_list.html", {"rows": rows}, status=status)


@login_required
@require_GET
def category_list(request):
    _manage(request)
    return _category_list(request)


@login_required
def category_edit(request, pk: int | None = None):
    _manage(request)
    category = get_object_or_404(TicketCategory, pk=pk) if pk is not None else None
    return _edit(
        request, obj=category, model=TicketCategory, form_class=CategoryForm, form_kwargs={"category": category},
        create=lambda data: policies.create_category(request.user, data),
        update=lambda obj, data, v: policies.update_category(request.user, obj, data, version=v),
        success=lambda c: _("The category “%(name)s” was saved.") % {"name": c.label},
        template="servicedesk/settings/category_form.html", context={}, back="servicedesk:settings-categories",
        page="servicedesk:settings-category",
    )  # fmt: skip


@login_required
@require_POST
def category_active(request, pk: int):
    _manage(request)
    category = get_object_or_404(TicketCategory, pk=pk)
    response = _toggle(
        request, obj=category,
        change=lambda c, on: policies.update_category(request.user, c, {"active": on}, version=_version(request)),
        success=lambda c: (_("The category “%(name)s” is active again.") if c.active
                           else _("The category “%(name)s” was deactivated.")) % {"name": c.label},
        render_list=lambda status: _category_list(request, status),
    )  # fmt: skip
    return response or redirect("servicedesk:settings-categories")


# --- SLA policies -------------------------------------------------------------------------------------------


def _policy_list(request, status: int = 200):
    rows = list(
        SlaPolicy.objects.select_related("category", "calendar").order_by("-active", "position", "name")
    )
    return render(request, "servicedesk/settings/policy_list.html", {"policies": rows}, status=status)


@login_required
@require_GET
def policy_list(request):
    _manage(request)
    return _policy_list(request)


@login_required
def policy_edit(request, pk: int | None = None):
    _manage(request)
    policy = get_object_or_404(SlaPolicy, pk=pk) if pk is not None else None
    return _edit(
        request, obj=policy, model=SlaPolicy, form_class=PolicyForm, form_kwargs={},
        create=lambda data: policies.create_policy(request.user, data),
        update=lambda obj, data, v: policies.update_policy(request.user, obj, data, version=v),
        success=lambda p: _("The SLA policy “%(name)s” was saved.") % {"name": p.label},
        template="servicedesk/settings/policy_form.html", context={}, back="servicedesk:settings-policies",
        page="servicedesk:settings-policy",
    )  # fmt: skip


@login_required
@require_POST
def policy_active(request, pk: int):
    _manage(request)
    policy = get_object_or_404(SlaPolicy, pk=pk)

    def change(p, on):
        if on:
            return policies.update_policy(request.user, p, {"active": True}, version=_version(request))
        return policies.deactivate_policy(request.user, p, version=_version(request))

    response = _toggle(
        request, obj=policy, change=change,
        success=lambda p: (_("The SLA policy “%(name)s” is active again.") if p.active
                           else _("The SLA policy “%(name)s” was deactivated.")) % {"name": p.label},
        render_list=lambda status: _policy_list(request, status),
    )  # fmt: skip
    return response or redirect("servicedesk:settings-policies")


# --- the escalation ladder ----------------------------------------------------------------------------------


def _ladder(request, status: int = 200):
    rules = list(EscalationRule.objects.order_by("level"))
    return render(request, "servicedesk/settings/escalation_list.html", {"rules": rules}, status=status)


@login_required
@require_GET
def escalation_list(request):
    _manage(request)
    return _ladder(request)


@login_required
def escalation_edit(request, pk: int | None = None):
    _manage(request)
    rule = get_object_or_404(EscalationRule, pk=pk) if pk is not None else None
    return _edit(
        request, obj=rule, model=EscalationRule, form_class=EscalationRuleForm, form_kwargs={},
        create=lambda data: escalation.save_rule(request.user, EscalationRule(), data),
        update=lambda obj, data, v: escalation.save_rule(request.user, obj, data, version=v),
        success=lambda r: _("Escalation level %(level)d was saved.") % {"level": r.level},
        template="servicedesk/settings/escalation_form.html", context={}, back="servicedesk:settings-escalation",
        page="servicedesk:settings-escalation-rule",
    )  # fmt: skip


@login_required
@require_POST
def escalation_active(request, pk: int):
    _manage(request)
    rule = get_object_or_404(EscalationRule, pk=pk)
    response = _toggle(
        request, obj=rule,
        change=lambda r, on: escalation.save_rule(request.user, r, {"active": on}, version=_version(request)),
        success=lambda r: (_("Escalation level %(level)d is on again.") if r.active
                           else _("Escalation level %(level)d was switched off.")) % {"level": r.level},
        render_list=lambda status: _ladder(request, status),
    )  # fmt: skip
    return response or redirect("servicedesk:settings-escalation")


urlpatterns = [  # included by urls.py under /service/
    path("settings/", settings_home, name="settings"),
    path("settings/categories/", category_list, name="settings-categories"),
    path("settings/categories/new/", category_edit, name="settings-category-create"),
    path("settings/categories/<int:pk>/", category_edit, name="settings-category"),
    path("settings/categories/<int:pk>/active/", category_active, name="settings-category-active"),
    path("settings/sla/", policy_list, name="settings-policies"),
    path("settings/sla/new/", policy_edit, name="settings-policy-create"),
    path("settings/sla/<int:pk>/", policy_edit, name="settings-policy"),
    path("settings/sla/<int:pk>/active/", policy_active, name="settings-policy-active"),
    path("settings/escalation/", escalation_list, name="settings-escalation"),
    path("settings/escalation/new/", escalation_edit, name="settings-escalation-create"),
    path("settings/escalation/<int:pk>/", escalation_edit, name="settings-escalation-rule"),
    path("settings/escalation/<int:pk>/active/", escalation_active, name="settings-escalation-active"),
]
