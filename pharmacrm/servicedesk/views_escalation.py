"""Service-desk pages: escalation — the ticket page's escalation panel (level reached, when, the ladder)
and escalating a major or complex case to a superior by hand."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from pharmacrm.core import access
from pharmacrm.core.roles import Cap
from pharmacrm.customers.forms import ServiceErrorsMixin

from . import escalation, services
from .choices import OPEN_STATUSES
from .models import EscalationRule


class EscalateForm(ServiceErrorsMixin, forms.Form):
    escalation_reason = forms.CharField(label=gettext_lazy("Why does this need a superior?"), max_length=500,
                             widget=forms.Textarea(attrs={"rows": 2}))  # fmt: skip
    hand_over = forms.BooleanField(label=gettext_lazy("Hand the ticket over to them"), required=False)


def panel_context(request, ticket, form=None) -> dict:
    """Extra context for the ticket page (merged by views._ticket_context)."""
    user = request.user
    may = access.can(user, Cap.HANDLE_TICKETS) and ticket.status in OPEN_STATUSES
    # at the top of the ladder the form is not offered (it could only be refused): the page says so instead
    ladder = list(EscalationRule.objects.filter(active=True).order_by("level"))
    top = escalation.at_the_top(ticket, max((rule.level for rule in ladder), default=1)) if may else None
    may = may and top is None
    return {
        "escalation_ladder": ladder,
        "escalate_form": (form or EscalateForm()) if may else None,
        "escalate_to": escalation.superiors(ticket, user) if may else [],
        "escalation_top": top,
    }


@login_required
@require_POST
def ticket_escalate(request, pk: int):
    from .views import _handling, _ticket_context

    ticket = _handling(request, pk)
    form = EscalateForm(request.POST)
    if form.is_valid():
        try:
            escalation.escalate(request.user, ticket, reason=form.cleaned_data["escalation_reason"],
                                hand_over=form.cleaned_data["hand_over"])  # fmt: skip
        except services.TransitionRefused as e:
            form.add_error(None, " ".join(e.messages))
        except ValidationError as e:
            if hasattr(e, "error_dict") and "reason" in e.error_dict:
                e.error_dict["escalation_reason"] = e.error_dict.pop("reason")
            form.add_service_errors(e)
        else:
            messages.success(request, _("%(number)s was escalated.") % {"number": ticket.number})
            return redirect("servicedesk:ticket", pk=ticket.pk)
    context = _ticket_context(request, ticket)
    context.update(panel_context(request, ticket, form))
    return render(request, "servicedesk/ticket_detail.html", context, status=400)


urlpatterns: list = [path("tickets/<int:pk>/escalate/", ticket_escalate, name="ticket-escalate")]
