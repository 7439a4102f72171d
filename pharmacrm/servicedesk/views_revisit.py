"""Service-desk pages: the revisit panel of the ticket page (send a survey link, record a phone revisit) and
improvement actions (list, detail, create, edit, status steps)."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pharmacrm.core import access, personal
from pharmacrm.core.form_saves import SENT_AGAIN, create_once, sent_again_after
from pharmacrm.core.roles import Cap
from pharmacrm.customers.forms import new_once_token, once_token
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views import AlreadyCreated, _create_once, _created_with

from . import revisit, views
from .choices import ActionStatus
from .forms_revisit import ActionFilterForm, ActionForm, ActionTransitionForm, PhoneRevisitForm
from .models import ImprovementAction, Survey

ACTIONS_PAGE = 50


class _Sent:
    """send_survey's (survey, link) as the one record create_once keeps the id of."""

    def __init__(self, survey, link):
        self.pk, self.sent = survey.pk, (survey, link)


def panel_context(request, ticket) -> dict:
    """Extra context for the ticket page (merged by views._ticket_context)."""
    user = request.user
    state = getattr(request, "_revisit_state", {})
    may_handle = access.can(user, Cap.HANDLE_TICKETS)
    surveys = list(
        Survey.objects.filter(ticket=ticket).select_related("recorded_by").order_by("-created_at", "-id")
    )
    actions = list(
        revisit.actions_for(user, ImprovementAction.objects.filter(ticket=ticket)).select_related("owner")
        .order_by(*revisit.work_order())
    )
    return {
        "revisit_surveys": surveys,
        "revisit_actions": actions,
        "revisit_may_survey": may_handle and revisit.may_survey(ticket),
        "revisit_may_act": may_handle,
        "revisit_phone_form": state.get("phone_form") or PhoneRevisitForm(),
        "revisit_send_errors": state.get("send_errors", []),
        "revisit_link": state.get("link", ""),
        "revisit_form_token": new_once_token(),  # the send button's: sent twice, one link
        "revisit_emailed": bool(ticket.reply_email),
        "today": timezone.localdate(),
    }


def _ticket_page(request, ticket, status: int, **state):
    request._revisit_state = state
    return render(
        request, "servicedesk/ticket_detail.html", views._ticket_context(request, ticket), status=status
    )


@login_required
@require_POST
def send_survey(request, pk: int):
    user = request.user
    ticket = views._handling(request, pk)
    token = once_token(request.POST.get("form_token"))
    try:  # once per form: sent again (a double click), what the first one did — the e-mail, or the link again
        survey, link = create_once(user, token, lambda: _Sent(*revisit.send_survey(user, ticket, seed=token))).sent
    except AlreadyCreated as e:
        survey = Survey.objects.filter(pk=e.pk, ticket=ticket).first()
        link = revisit.link_again(user, survey, token) if survey is not None and not survey.sent_to else None
        if link is None:
            messages.success(request, _("The survey link was e-mailed to the customer.") if survey and survey.sent_to
                             else SENT_AGAIN)  # fmt: skip
            return redirect("servicedesk:ticket", pk=ticket.pk)
        return _ticket_page(request, views._ticket_or_404(user, pk), 200, link=link)
    except ValidationError as e:
        return _ticket_page(request, ticket, 400, send_errors=e.messages)
    if survey.sent_to:
        messages.success(request, _("The survey link was e-mailed to the customer."))
        return redirect("servicedesk:ticket", pk=ticket.pk)
    # no e-mail address: the link is shown this once, for the agent to send by SMS or WeChat
    ticket = views._ticket_or_404(request.user, pk)
    return _ticket_page(request, ticket, 200, link=link)


@login_required
@require_POST
def phone_revisit(request, pk: int):
    ticket = views._handling(request, pk)
    form = PhoneRevisitForm(request.POST)
    if form.is_valid():
        try:  # once per form: sent again (a double click), the ticket with the revisit the first one recorded
            survey = create_once(request.user, form.cleaned_data["form_token"],
                                 lambda: revisit.record_phone_revisit(request.user, ticket, *form.answers()))  # fmt: skip
        except AlreadyCreated as e:
            survey = Survey.objects.filter(pk=e.pk, ticket=ticket).first()
            if survey is None:
                messages.info(request, SENT_AGAIN)
                return redirect("servicedesk:ticket", pk=ticket.pk)
        except ValidationError as e:
            form.add_service_errors(e)
            survey = None
        if survey is not None:
            text = _("The phone revisit was recorded.")
            if survey.outcome:
                text += " " + (_("The ticket was reopened.") if survey.outcome == "reopen"
                               else _("An improvement action was opened."))  # fmt: skip
            messages.success(request, text)
            return redirect("servicedesk:ticket", pk=ticket.pk)
    ticket = views._ticket_or_404(request.user, pk)
    return _ticket_page(request, ticket, 400, phone_form=form)


# --- improvement actions ---------------------------------------------------------------------------


def _action_or_404(user, pk: int) -> ImprovementAction:
    access.require(user, Cap.VIEW_TICKETS)
    qs = ImprovementAction.objects.select_related("owner", "ticket", "created_by", "survey")
    action = revisit.actions_for(user, qs).filter(pk=pk).first()
    if action is None:
        raise Http404(_("No such improvement action, or you may not see it."))
    return action


@login_required
@require_GET
def action_list(request):
    user = request.user
    access.require(user, Cap.VIEW_TICKETS)
    form = ActionFilterForm(request.GET or None)
    show = form.value()
    qs = revisit.actions_for(user).select_related("owner", "ticket")
    if show == "mine":
        qs = qs.filter(owner=user)
    elif show == "open":
        qs = qs.exclude(status__in=revisit.CLOSED_ACTIONS)
    elif show == "overdue":
        qs = qs.filter(revisit.overdue_q())
    page = Paginator(qs.order_by(*revisit.work_order()), ACTIONS_PAGE).get_page(
        request.GET.get("page") or 1
    )
    context = {"form": form, "page_obj": page, "show": show, "today": timezone.localdate(),
               "may_create": access.can(user, Cap.MANAGE_SERVICE), "closed": revisit.CLOSED_ACTIONS}  # fmt: skip
    return render(request, "servicedesk/improvement_list.html", context)


def _detail_context(request, action, *, edit_form=None, transition_form=None, conflict=False) -> dict:
    user = request.user
    may_work = revisit.may_work_on(user, action) and action.status not in revisit.CLOSED_ACTIONS
    steps = [
        (s, ActionStatus(s).label)
        for s in ActionStatus.values
        if s in revisit.ACTION_TRANSITIONS[action.status]
    ]
    # the description as this reader may see it (a survey's comment copied in: 请致电 139…), on the page and in the
    # edit form alike; what an owner saves keeps the masked details as stored (revisit.update_action). The
    # evaluation's text in the reader's language, to reword in it (sent back unchanged it stays the evaluation's)
    masked = personal.masks_free_text(user)
    description = personal.free_text(action.shown_description, masked)
    initial = {"title": personal.free_text(action.shown_title, masked), "description": description,
               "owner": action.owner_id,
               "due_date": action.due_date, "version": action.version}  # fmt: skip
    may_assign = access.can(user, Cap.MANAGE_SERVICE)
    return {
        "action": action, "description": description, "may_work": may_work, "steps": steps if may_work else [],
        "action_title": personal.free_text(action.shown_title, masked),
        "action_outcome": personal.free_text(action.outcome, masked),
        "edit_form": edit_form or ActionForm(initial=initial, may_assign=may_assign, action=action),
        "transition_form": transition_form or ActionTransitionForm(initial={"version": action.version}),
        "conflict": conflict, "today": timezone.localdate(),
        "ticket_visible": action.ticket_id is not None and access.can_see_ticket(user, action.ticket),
    }  # fmt: skip


@login_required
@require_GET
def action_detail(request, pk: int):
    action = _action_or_404(request.user, pk)
    return render(request, "servicedesk/improvement_detail.html", _detail_context(request, action))


@login_required
@require_http_methods(["GET", "POST"])
def action_create(request):
    user = request.user
    access.require(user, Cap.HANDLE_TICKETS)
    may_assign = access.can(user, Cap.MANAGE_SERVICE)
    ticket = None
    ticket_id = request.POST.get("ticket") or request.GET.get("ticket") or ""
    if ticket_id:
        if not str(ticket_id).isdecimal():
            raise Http404(_("No such ticket, or you may not see it."))
        ticket = views._ticket_or_404(user, int(ticket_id))
    elif not may_assign:
        raise PermissionDenied(_("Open an improvement action from its ticket."))
    initial = {"owner": user.pk, "due_date": timezone.localdate() + dt.timedelta(days=revisit.ACTION_DAYS)}
    form = ActionForm(request.POST or None, initial=initial, may_assign=may_assign, creating=True)
    status = 200
    if request.method == "POST":
        status = 400
        # sent again (a double click, Back and send): the action the first one opened, not a second one
        done = _created_with(user, request.POST.get("form_token", ""))
        if done:
            return _action_sent_again(request, done)
        if form.is_valid():
            data = dict(form.cleaned_data, ticket=ticket)
            token = data.pop("form_token", "")
            if not may_assign:
                data["owner"] = user
            try:
                action = _create_once(user, token, lambda: revisit.create_action(user, data))
            except AlreadyCreated as e:
                return _action_sent_again(request, e.pk)
            except ValidationError as e:
                form.add_service_errors(e)
            else:
                if getattr(action, "sent_again", False):  # a new form with the same action, just opened
                    return _action_sent_again(request, action.pk)
                messages.success(
                    request, _("Improvement action %(number)s was opened.") % {"number": action.number}
                )
                return redirect("servicedesk:improvement", pk=action.pk)
    return render(
        request, "servicedesk/improvement_form.html", {"form": form, "ticket": ticket}, status=status
    )


def _action_sent_again(request, pk):
    messages.info(
        request, _("This form was already sent: the improvement action was opened then, and not a second time.")
    )
    return redirect("servicedesk:improvement", pk=pk) if pk else redirect("servicedesk:improvements")


def _conflict_text() -> str:
    return _("Someone else changed this improvement action while you were working on it. Your input is kept: "
             "check the action, then submit again.")  # fmt: skip


@login_required
@require_POST
def action_edit(request, pk: int):
    user = request.user
    access.require(user, Cap.HANDLE_TICKETS)
    action = _action_or_404(user, pk)
    revisit.require_work(user, action)  # refused (403, audited) before the form is read
    may_assign = access.can(user, Cap.MANAGE_SERVICE)
    form = ActionForm(request.POST, may_assign=may_assign, initial={"owner": action.owner_id}, action=action)
    conflict = False
    if form.is_valid():
        data = dict(form.cleaned_data)
        version = data.pop("version", None)
        if not may_assign:
            data.pop("owner", None)
        try:
            revisit.update_action(user, action, data, version=version)
        except ConflictError:
            action, conflict = _action_or_404(user, pk), True
            form.data = form.data.copy()  # the input kept, with the version now current: sent again, it saves
            form.data["version"] = str(action.version)
            form.add_error(None, _conflict_text())
        except revisit.ActionTransitionRefused as e:
            form.add_error(None, " ".join(e.messages))
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("The improvement action was saved."))
            return redirect("servicedesk:improvement", pk=action.pk)
    context = _detail_context(request, action, edit_form=form, conflict=conflict)
    return render(request, "servicedesk/improvement_detail.html", context, status=409 if conflict else 400)


@login_required
@require_POST
def action_status(request, pk: int):
    user = request.user
    access.require(user, Cap.HANDLE_TICKETS)
    action = _action_or_404(user, pk)
    revisit.require_work(user, action)  # refused (403, audited) before the form is read
    form = ActionTransitionForm(request.POST)
    conflict = False
    if form.is_valid():
        d = form.cleaned_data
        try:
            revisit.transition_action(user, action, d["to_status"], version=d["version"],
                                      outcome=d.get("outcome") or "", reason=d.get("reason") or "")  # fmt: skip
        except (ConflictError, revisit.ActionTransitionRefused) as e:
            action, conflict = _action_or_404(user, pk), True
            if not (action.status == d["to_status"] and sent_again_after(user, action, d["version"])):
                form.add_error(None, _conflict_text() if isinstance(e, ConflictError) else " ".join(e.messages))
            else:  # the same form sent again right after (a double click): the first one made the change
                messages.success(request, _("%(number)s is now “%(status)s”.")
                                 % {"number": action.number, "status": action.get_status_display()})  # fmt: skip
                return redirect("servicedesk:improvement", pk=action.pk)
        except ValidationError as e:
            form.add_service_errors(e)
        else:
            messages.success(request, _("%(number)s is now “%(status)s”.")
                             % {"number": action.number, "status": action.get_status_display()})  # fmt: skip
            return redirect("servicedesk:improvement", pk=action.pk)
    context = _detail_context(request, action, transition_form=form, conflict=conflict)
    return render(request, "servicedesk/improvement_detail.html", context, status=409 if conflict else 400)


urlpatterns: list = [  # included by urls.py under /service/
    path("tickets/<int:pk>/survey/send/", send_survey, name="revisit-send"),
    path("tickets/<int:pk>/survey/phone/", phone_revisit, name="revisit-phone"),
    path("improvements/", action_list, name="improvements"),
    path("improvements/new/", action_create, name="improvement-create"),
    path("improvements/<int:pk>/", action_detail, name="improvement"),
    path("improvements/<int:pk>/edit/", action_edit, name="improvement-edit"),
    path("improvements/<int:pk>/status/", action_status, name="improvement-status"),
]
