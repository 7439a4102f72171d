"""Template helpers for PharmaCRM pages: masked phones, audit values, choice labels."""

from __future__ import annotations

from django import template
from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from pharmacrm.core.personal import MASKERS

register = template.Library()


@register.filter
def masked_phone(value: str) -> str:
    """A phone number as lists and search results show it: never in clear."""
    return MASKERS["mobile"](value) if value else ""


@register.filter
def audit_value(value) -> str:
    """One before/after value of an audit entry, readable."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, list):
        return ", ".join(audit_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {audit_value(v)}" for k, v in value.items())
    return str(value)


@register.filter
def get_item(mapping, key):
    """mapping[key] in a template (None when missing)."""
    if mapping is None:
        return None
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def field_label(model, name: str) -> str:
    """The translated verbose name of a model field (model instance, class or "app.model" label), else the name."""
    if isinstance(model, str):
        try:
            model = apps.get_model(model)
        except (LookupError, ValueError):
            return name
    try:
        return capfirst(str(model._meta.get_field(name).verbose_name))
    except (AttributeError, FieldDoesNotExist):  # audit entries may name fields that no longer exist
        return name
