"""{% on_duty_button %}: the signed-in agent's on-duty switch (for the queue page's header)."""

from __future__ import annotations

from django import template

from pharmacrm.core import access
from pharmacrm.core.roles import Cap

register = template.Library()


@register.inclusion_tag("servicedesk/routing/_on_duty.html", takes_context=True)
def on_duty_button(context) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not access.can(user, Cap.HANDLE_TICKETS):
        return {"show": False}
    from pharmacrm.servicedesk.models import AgentProfile

    on_duty = AgentProfile.objects.filter(user=user).values_list("on_duty", flat=True).first()
    return {"show": True, "on_duty": True if on_duty is None else on_duty, "next": request.get_full_path(),
            "csrf_token": context.get("csrf_token")}  # fmt: skip
