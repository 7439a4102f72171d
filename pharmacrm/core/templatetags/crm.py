"""Template helpers for PharmaCRM pages: masked phones, audit values, choice labels."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

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


@register.simple_tag
def audit_display(model, name: str, value) -> str:
    """An audit value as people read it: choice labels instead of codes, region names instead of codes."""
    if isinstance(model, str):
        try:
            model = apps.get_model(model)
        except (LookupError, ValueError):
            return audit_value(value)
    try:
        field = model._meta.get_field(name)
    except (AttributeError, FieldDoesNotExist):
        return audit_value(value)
    if field.choices and value not in (None, ""):
        return str(dict(field.flatchoices).get(value, value))
    related = getattr(field, "related_model", None)
    if related is not None and value not in (None, "") and related._meta.label_lower == "core.region":
        region = related.objects.filter(pk=value).first()
        return str(region) if region else audit_value(value)
    return audit_value(value)


@register.filter
def share_percent(value) -> str:
    """A weight stored as a fraction ("0.3000") as pages show weights: "30 %" (up to two places)."""
    try:
        d = (Decimal(str(value)) * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP).normalize()
    except (InvalidOperation, ValueError, TypeError):
        return "" if value is None else str(value)
    return f"{d:f} %"


@register.filter
def grouped(value) -> str:
    """An amount with thousands separators and two places (1463907 → 1,463,907.00): zh-Hans groups nothing."""
    if value is None or value == "":
        return "—"
    try:
        return f"{Decimal(str(value)):,.2f}"
    except (InvalidOperation, ValueError):
        return str(value)
