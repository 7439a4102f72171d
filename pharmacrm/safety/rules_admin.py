"""Changing a regulatory reporting rule (a regulator's deadline held as data): checked, validated, locked by
version, audited. A change applies to the clocks planned afterwards; clocks already running keep their
deadline, because the obligation was fixed when the information was received."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from pharmacrm.core import access, audit
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers.services import ConflictError

from .choices import RuleCondition
from .models import ReportingRule

EDITABLE = ("name", "condition", "within", "unit", "position", "active", "legal_basis")
MAX_WITHIN = {
    ReportingRule.Unit.HOURS: 720,
    ReportingRule.Unit.DAYS: 365,
}  # 30 days / a year: beyond is a typo
MAX_POSITION = 32767


def _clean(rule: ReportingRule, data: dict) -> dict:
    errors: dict[str, list[str]] = {}
    values: dict = {}
    for field in EDITABLE:
        if field in data:
            values[field] = data[field]
    if "name" in values:
        values["name"] = str(values["name"] or "").strip()
        if not values["name"]:
            errors["name"] = [_("Name the rule.")]
        elif len(values["name"]) > 120:
            errors["name"] = [_("At most %(limit)d characters.") % {"limit": 120}]
    if "legal_basis" in values:
        values["legal_basis"] = str(values["legal_basis"] or "").strip()
        if len(values["legal_basis"]) > 200:
            errors["legal_basis"] = [_("At most %(limit)d characters.") % {"limit": 200}]
    if "condition" in values and values["condition"] not in RuleCondition.values:
        errors["condition"] = [_("Choose which cases the rule applies to.")]
    if "unit" in values and values["unit"] not in ReportingRule.Unit.values:
        errors["unit"] = [_("Choose hours or calendar days.")]
    if "active" in values:
        values["active"] = bool(values["active"])
    for field, upper in (("within", None), ("position", MAX_POSITION)):
        if field not in values:
            continue
        try:
            values[field] = int(values[field])
        except (TypeError, ValueError):
            errors[field] = [_("Enter a whole number.")]
            continue
        if upper is not None and not 0 <= values[field] <= upper:
            errors[field] = [_("Enter a number between 0 and %(upper)d.") % {"upper": upper}]
    if "within" in values and "within" not in errors:
        unit = values.get("unit", rule.unit)
        limit = MAX_WITHIN.get(unit)
        if values["within"] <= 0:
            errors["within"] = [_("A deadline must be more than zero.")]
        elif limit is not None and values["within"] > limit:
            errors["within"] = [
                (
                    _("At most %(limit)d hours.")
                    if unit == ReportingRule.Unit.HOURS
                    else _("At most %(limit)d days.")
                )
                % {"limit": limit}
            ]
    elif "unit" in values and "unit" not in errors and rule.within > MAX_WITHIN[values["unit"]]:
        errors["within"] = [_("At most %(limit)d in this unit.") % {"limit": MAX_WITHIN[values["unit"]]}]
    if errors:
        raise ValidationError(errors)
    return values


def update_rule(user, rule: ReportingRule, data: dict, version: int | None) -> ReportingRule:
    """Change a reporting rule (name, condition, deadline, order, active, legal basis). `version` is the one
    the user edited: a rule changed since then raises ConflictError. Audited with before and after."""
    access.require(user, Cap.CONFIGURE_SAFETY)
    values = _clean(rule, data)
    with transaction.atomic():
        fresh = ReportingRule.objects.select_for_update().get(pk=rule.pk)
        if version is not None and (not is_id(version) or int(version) != fresh.version):
            raise ConflictError(
                _("Someone else changed this rule while you were editing it. Reload to see their changes.")
            )
        before = {f: getattr(fresh, f) for f in values}
        changes = audit.diff(before, values)
        if not changes:
            return fresh
        for field, value in values.items():
            setattr(fresh, field, value)
        fresh.version += 1
        fresh.save(update_fields=[*values, "version"])
        audit.record(AuditEntry.Action.UPDATE, fresh, user=user, changes=changes, code=fresh.code)
    return fresh
