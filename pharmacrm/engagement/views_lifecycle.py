"""Pages of the customer lifecycle (/interactions/stage-tasks/, /interactions/playbook/): the stage tasks of the
user (and of the teams they lead, or everyone's for managers) with mark-done and skip, the managers' overview (per
owner, conversion between stages per quarter, time in stage), the Excel export, the playbook and its editing, and the
Customer 360 block. The rules are playbook.py's."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pharmacrm.core import access, audit, downloads, personal
from pharmacrm.core.form_saves import SENT_AGAIN
from pharmacrm.core.ids import is_id
from pharmacrm.core.local_urls import is_local
from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.choices import Stage
from pharmacrm.customers.forms import OnceTokenForm
from pharmacrm.customers.models import Institution, Person
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views import AlreadyCreated, _create_once, _created_with

from . import playbook
from .models import InteractionChannel, StageAction, StageActionKind, StageAssignee, StageTask
from .models import StageTaskStatus as TS

PAGE = 50
PANEL = 10
SCOPES = ("mine", "team", "all")
WHEN = ("overdue", "week", "")


def _require_tasks(user) -> None:
    if not playbook.may_see_tasks(user):
        raise PermissionDenied


def _filtered(request):
    """The tasks the user may see, filtered by the query: scope, status, when, stage, customer."""
    user, get = request.user, request.GET
    qs = playbook.tasks_for(user)
    scope = get.get("scope") if get.get("scope") in SCOPES else "mine"
    if scope == "mine":
        qs = qs.filter(owner=user)
    status = get.get("status") if get.get("status") in (*TS.values, "any") else TS.OPEN
    if status != "any":
        qs = qs.filter(status=status)
    today = timezone.localdate()
    when = get.get("when") if get.get("when") in WHEN else ""
    if when == "overdue":
        qs = qs.filter(status=TS.OPEN, due_on__lt=today)
    elif when == "week":
        qs = qs.filter(status=TS.OPEN, due_on__lte=today + dt.timedelta(days=7))
    stage = get.get("stage") if get.get("stage") in Stage.values else ""
    if stage:
        qs = qs.filter(stage=stage)
    customer = {}
    for key in ("institution", "person"):
        if is_id(get.get(key)):
            customer = {key: int(get[key])}
            qs = qs.filter(**{f"{key}_id": int(get[key])})
            break
    filters = {"scope": scope, "status": status, "when": when, "stage": stage, **customer}
    return qs, filters, today


def _decorate(rows, today, user) -> list:
    engine = playbook.calendar() if any(t.due_provisional for t in rows) else None
    for t in rows:
        t.overdue = t.status == TS.OPEN and t.due_on is not None and t.due_on < today
        # the years not entered that a provisional due date was counted through (partials/provisional_mark.html)
        t.uncovered = (engine.uncovered_years(range(timezone.localdate(t.created_at).year, t.due_on.year + 1))
                       or [t.due_on.year]) if t.due_provisional and t.due_on else []  # fmt: skip
        t.workable = t.status == TS.OPEN and playbook.may_work(user, t, in_scope=True)
        t.customer_obj = t.institution if t.institution_id else t.person
        t.stage_text = playbook.stage_label(t.stage)
    return rows


@login_required
@require_GET
def stage_tasks(request):
    """The stage tasks: the user's own by default, their teams' when they lead one, all for managers."""
    user = request.user
    _require_tasks(user)
    qs, filters, today = _filtered(request)
    qs = qs.select_related("action", "institution", "person", "owner").order_by("due_on", "id")
    page = Paginator(qs, PAGE).get_page(request.GET.get("page"))
    rows = _decorate(list(page.object_list), today, user)
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "engagement/stage_tasks.html", {
        "rows": rows, "page_obj": page, "filters": filters, "query": query.urlencode(),
        "statuses": [*TS.choices, ("any", _("Any"))], "stages": Stage.choices, "channels": InteractionChannel.choices,
        "may_team": playbook.sees_all(user) or bool(playbook.led_team_ids(user)), "sees_all": playbook.sees_all(user),
        "may_oversee": playbook.sees_all(user) or bool(playbook.led_team_ids(user)),
        "back": request.get_full_path(),
    })  # fmt: skip


def _back(request) -> str:
    target = request.POST.get("next") or ""
    if is_local(request, target):
        return target
    return "engagement:stage-tasks"


def _task_or_404(user, pk: int) -> StageTask:
    task = playbook.tasks_for(user).filter(pk=pk).select_related("action", "institution", "person").first()
    if task is None:
        raise Http404
    return task


def _errors(e: ValidationError) -> str:
    if hasattr(e, "message_dict"):
        return " ".join(str(m) for msgs in e.message_dict.values() for m in msgs)
    return " ".join(str(m) for m in e.messages)


@login_required
@require_POST
def stage_task_done(request, pk: int):
    """Mark a task done: the interaction it was is recorded (the note as its notes)."""
    task = _task_or_404(request.user, pk)
    try:
        playbook.complete(request.user, task, note=request.POST.get("note", ""),
                          channel=request.POST.get("channel") if request.POST.get("channel") in InteractionChannel.values
                          else "", version=request.POST.get("version"))  # fmt: skip
    except ConflictError:
        messages.error(request, _("Someone else changed this task meanwhile: it is shown as it is now."))
    except ValidationError as e:
        messages.error(request, _errors(e))
    else:
        messages.success(request, _("Done: “%(title)s”, recorded as an interaction.") % {"title": task.action.label})
    return redirect(_back(request))


@login_required
@require_POST
def stage_task_skip(request, pk: int):
    """Skip a task, saying why."""
    task = _task_or_404(request.user, pk)
    try:
        playbook.skip(request.user, task, reason=request.POST.get("reason", ""), version=request.POST.get("version"))
    except ConflictError:
        messages.error(request, _("Someone else changed this task meanwhile: it is shown as it is now."))
    except ValidationError as e:
        messages.error(request, _errors(e))
    else:
        messages.success(request, _("Skipped: “%(title)s”.") % {"title": task.action.label})
    return redirect(_back(request))


# --- the overview ---------------------------------------------------------------------------------------------


@login_required
@require_GET
def stage_overview(request):
    """Per owner (open, overdue, done on time, open per stage); customers without an owner; for managers the
    conversion between stages per quarter and the time in stage."""
    user = request.user
    _require_tasks(user)
    sees_all = playbook.sees_all(user)
    if not (sees_all or playbook.led_team_ids(user)):
        raise PermissionDenied
    today = timezone.localdate()
    owners = playbook.owner_summary(playbook.tasks_for(user), today)
    return render(request, "engagement/stage_overview.html", {
        "owners": owners, "stages": Stage.choices, "sees_all": sees_all,
        "conversion": playbook.conversion(4, today) if sees_all else [],
        "without_owner": playbook.without_owner() if sees_all else {},
    })  # fmt: skip


@login_required
@require_GET
def stage_tasks_export(request):
    """The tasks of the list's filters as an Excel workbook (at most 20,000 rows)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    user = request.user
    _require_tasks(user)
    qs, _filters, today = _filtered(request)
    qs = qs.select_related("action", "institution", "person", "owner").order_by("due_on", "id")[:20000]
    book = Workbook()
    sheet = book.active
    sheet.title = _("Stage tasks")[:31]
    sheet.append([_("Customer"), _("Code"), _("Lifecycle stage"), _("Action"), _("Kind"), _("Owner"), _("Due"),
                  _("Status"), _("Overdue"), _("Done"), _("Reason"), _("Note"), _("Due date provisional")])  # fmt: skip
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    kinds = dict(StageActionKind.choices)
    masked = personal.masks_free_text(user)  # the reason and the note as the list shows them: contact details masked
    for t in qs:
        c = t.institution if t.institution_id else t.person
        downloads.append_row(sheet, [
            c.name, c.code, playbook.stage_label(t.stage), t.action.label, str(kinds.get(t.action.kind, "")),
            (t.owner.display_name or t.owner.username) if t.owner_id else None, t.due_on, t.get_status_display(),
            _("yes") if t.status == TS.OPEN and t.due_on and t.due_on < today else None,
            timezone.localtime(t.done_at).replace(tzinfo=None) if t.done_at else None, personal.free_text(t.reason, masked) or None,
            personal.free_text(t.note, masked) or None,
            _("yes") if t.due_provisional else None,
        ])  # fmt: skip
    content = downloads.workbook_bytes(book)
    audit.record(AuditEntry.Action.EXPORT, ("engagement.stagetask", "", "stage tasks"), user=user, format="XLSX",
                 rows=sheet.max_row - 1)  # fmt: skip
    return downloads.xlsx(content, _("Stage tasks"))


# --- the playbook ---------------------------------------------------------------------------------------------


class StageActionForm(OnceTokenForm):
    """A playbook action: added (its one-time token: the form sent twice adds one action, not two tasks for every
    customer entering the stage) or changed (its version)."""

    stage = forms.ChoiceField(label=gettext_lazy("Lifecycle stage"), choices=Stage.choices)
    position = forms.IntegerField(label=gettext_lazy("Order"), min_value=1, max_value=99, initial=1)
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), choices=StageActionKind.choices)
    title = forms.CharField(label=pgettext_lazy("record title", "Title"), max_length=200, required=False,
                            help_text=gettext_lazy("Blank keeps the default's title, in each reader's language."))
    due_days = forms.IntegerField(label=gettext_lazy("Due within (working days)"), min_value=0,
                                  max_value=playbook.MAX_DUE_DAYS)  # fmt: skip
    assignee = forms.ChoiceField(label=gettext_lazy("Who"), choices=StageAssignee.choices)
    active = forms.BooleanField(label=gettext_lazy("In the playbook"), required=False, initial=True)
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, creating: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not creating:
            del self.fields["form_token"]


@login_required
@require_GET
def playbook_list(request):
    """The playbook, per stage: what is done when a customer enters it."""
    user = request.user
    if not (playbook.may_see_tasks(user) or playbook.may_edit_playbook(user)):
        raise PermissionDenied
    by_stage = playbook.actions_by_stage(active_only=False)
    stages = [{"stage": s, "label": label, "actions": by_stage.get(s, [])} for s, label in Stage.choices]
    return render(request, "engagement/playbook.html", {
        "stages": stages, "may_edit": playbook.may_edit_playbook(user), "reentry_days": playbook.reentry_days(),
    })  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def playbook_edit(request, pk: int | None = None):
    """Add or change a playbook action (managers; versioned, audited)."""
    user = request.user
    if not playbook.may_edit_playbook(user):
        raise PermissionDenied
    action = None
    if pk is not None:
        action = StageAction.objects.filter(pk=pk).first()
        if action is None:
            raise Http404
    status = 200
    if request.method == "POST":
        form = StageActionForm(request.POST, creating=action is None)
        token = request.POST.get("form_token", "") if action is None else ""
        if _created_with(user, token):  # sent again (a double click): the first one added it, listed there
            messages.info(request, SENT_AGAIN)
            return redirect("engagement:playbook")
        if form.is_valid():
            data = {k: v for k, v in form.cleaned_data.items() if k not in ("version", "form_token")}
            try:
                if action is None:
                    _create_once(user, token, lambda: playbook.save_action(user, data))
                else:  # the page always carries the version it was loaded with: a form without one is stale too
                    version = form.cleaned_data.get("version")
                    if version is None:
                        raise ConflictError(action.version)
                    playbook.save_action(user, data, action, version=version)
            except AlreadyCreated:
                messages.info(request, SENT_AGAIN)
                return redirect("engagement:playbook")
            except ConflictError:
                form.add_error(None, _("Someone else changed this action meanwhile: reload it and apply your change "
                                       "again."))  # fmt: skip
                status = 409
            except ValidationError as e:
                for field, msgs in e.message_dict.items():
                    form.add_error(field if field in form.fields else None, msgs)
            else:
                messages.success(request, _("The playbook is saved."))
                return redirect("engagement:playbook")
    else:
        initial = {"stage": request.GET.get("stage") if request.GET.get("stage") in Stage.values else Stage.POTENTIAL}
        if action is not None:
            initial = {f: getattr(action, f) for f in playbook.ACTION_FIELDS} | {"version": action.version}
        form = StageActionForm(initial=initial, creating=action is None)
    return render(request, "engagement/playbook_form.html", {"form": form, "action": action}, status=status)


# --- the Customer 360 block -----------------------------------------------------------------------------------


@login_required
@require_GET
def customer_stage(request):
    """The customer's stage, days in it and its open stage tasks (htmx fragment of the Customer 360 page)."""
    user = request.user
    get = request.GET
    if is_id(get.get("institution")):
        customer = access.get_visible_or_404(user, Institution, int(get["institution"]))
        key = "institution"
    elif is_id(get.get("person")):
        customer = access.get_visible_or_404(user, Person, int(get["person"]))
        key = "person"
    else:
        raise Http404
    stage, days = playbook.days_in_stage(customer)
    tasks = []
    if playbook.may_see_tasks(user):
        qs = playbook.tasks_for(user).filter(**{key: customer}, status=TS.OPEN).select_related("action", "owner")
        tasks = _decorate(list(qs.order_by("due_on", "id")[:PANEL]), timezone.localdate(), user)
    return render(request, "engagement/_customer_stage.html", {
        "stage": playbook.stage_label(stage), "days": days, "tasks": tasks, "key": key, "customer": customer,
        "may_see_tasks": playbook.may_see_tasks(user),
    })  # fmt: skip


urlpatterns = [  # included by urls.py under /interactions/
    path("stage-tasks/", stage_tasks, name="stage-tasks"),
    path("stage-tasks/export.xlsx", stage_tasks_export, name="stage-tasks-export"),
    path("stage-tasks/overview/", stage_overview, name="stage-overview"),
    path("stage-tasks/customer/", customer_stage, name="customer-stage"),
    path("stage-tasks/<int:pk>/done/", stage_task_done, name="stage-task-done"),
    path("stage-tasks/<int:pk>/skip/", stage_task_skip, name="stage-task-skip"),
    path("playbook/", playbook_list, name="playbook"),
    path("playbook/new/", playbook_edit, name="playbook-new"),
    path("playbook/<int:pk>/", playbook_edit, name="playbook-action"),
]
