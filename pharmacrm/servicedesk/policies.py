"""SLA policies changed by administrators: checked (Cap.MANAGE_SERVICE), validated, written in one transaction
and audited. Policies are never deleted — tickets and clocks point at them — only deactivated. At least one
active policy without conditions must remain, so that every new ticket gets deadlines.

A changed policy applies to tickets taken in afterwards and to tickets whose clocks are recomputed later
(a status or priority change rebuilds them from the policy the ticket holds)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from pharmacrm.core import access, audit
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap

from .models import SlaPolicy
from .tasks import refresh_after_commit

A = AuditEntry.Action
FIELDS = (
    "name", "priority", "complexity", "category", "customer_tier", "calendar", "first_response",
    "first_response_unit", "resolution", "resolution_unit", "position", "active",
)  # fmt: skip
MAX_TARGET = {SlaPolicy.Unit.HOURS: 24 * 366, SlaPolicy.Unit.DAYS: 366}


def _snapshot(policy: SlaPolicy) -> dict:
    out = {}
    for f in FIELDS:
        value = getattr(policy, f"{f}_id") if f in ("category", "calendar") else getattr(policy, f)
        out[f] = value
    return out


def _validate(policy: SlaPolicy) -> None:
    errors: dict[str, list[str]] = {}
    try:
        policy.full_clean()
    except ValidationError as e:
        errors.update({k: [str(m) for m in v] for k, v in e.message_dict.items()})
    for field, unit_field in (("first_response", "first_response_unit"), ("resolution", "resolution_unit")):
        value, unit = getattr(policy, field), getattr(policy, unit_field)
        if value is None or field in errors:
            continue
        if value < 1:
            errors.setdefault(field, []).append(_("A target must be at least 1."))
        elif unit in MAX_TARGET and value > MAX_TARGET[unit]:
            errors.setdefault(field, []).append(
                _("A target can be at most %(limit)d %(unit)s.") % {"limit": MAX_TARGET[unit], "unit": SlaPolicy.Unit(unit).label}
            )
    if errors:
        raise ValidationError(errors)


def _check_fallback() -> None:
    """Refuse a change that leaves no active policy without conditions (tickets would get no deadlines)."""
    if not SlaPolicy.objects.filter(
        active=True, priority="", complexity="", category__isnull=True, customer_tier=""
    ).exists():
        raise ValidationError(
            _("At least one active policy without conditions must remain, so that every ticket gets deadlines.")
        )


def create_policy(user, data: dict) -> SlaPolicy:
    access.require(user, Cap.MANAGE_SERVICE)
    policy = SlaPolicy(**{k: v for k, v in data.items() if k in FIELDS})
    _validate(policy)
    with transaction.atomic():
        policy.save(force_insert=True)
        audit.record(A.CREATE, policy, user=user, changes=audit.diff({}, _snapshot(policy)))
        refresh_after_commit()  # open tickets may now fall under it
    return policy


def update_policy(user, policy: SlaPolicy, data: dict) -> SlaPolicy:
    access.require(user, Cap.MANAGE_SERVICE)
    before = _snapshot(policy)
    for key, value in data.items():
        if key in FIELDS:
            setattr(policy, key, value)
    _validate(policy)
    changes = audit.diff(before, _snapshot(policy))
    if not changes:
        return policy
    with transaction.atomic():
        policy.save()
        _check_fallback()
        audit.record(A.UPDATE, policy, user=user, changes=changes)
        refresh_after_commit()  # the open tickets' deadlines follow the new targets
    return policy


def deactivate_policy(user, policy: SlaPolicy) -> SlaPolicy:
    """Switch a policy off (it stays for the tickets and clocks that refer to it)."""
    return update_policy(user, policy, {"active": False})
