"""{% safety_panel ticket %}: the safety side of a ticket (or an interaction) on its page — flags and cases
for PV with the button to open a case, the case status for the member of staff who raised or holds it."""

from __future__ import annotations

from django import template

register = template.Library()


@register.inclusion_tag("safety/_case_panel.html", takes_context=True)
def safety_panel(context, source) -> dict:
    from pharmacrm.safety.views_cases import panel_context

    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or source is None or not getattr(user, "is_authenticated", False):
        return {"show": False}
    return {**panel_context(user, source), "csrf_token": context.get("csrf_token"),
            "next": request.get_full_path()}  # fmt: skip


@register.filter
def version_changes(names) -> str:
    """What a follow-up changed (CaseVersion.changes: field names, never values) in the reader's language, as the
    audit trail labels them: 不良反应、患者年龄, never "reactions, patient_age"."""
    from django.utils.translation import gettext as _

    from pharmacrm.core import wording
    from pharmacrm.core.templatetags.crm import audit_label
    from pharmacrm.safety.models import SafetyCase

    sections = {"drugs": _("Drugs"), "reactions": _("Reactions")}  # as the case page's sections are headed
    return wording.listing([sections.get(name) or audit_label(SafetyCase, name) for name in names or ()])
