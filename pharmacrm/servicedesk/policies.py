"""SLA policies and ticket categories changed by administrators: checked (Cap.MANAGE_SERVICE), validated,
written in one transaction with optimistic locking (a stale `version` is a conflict), and audited. Policies are never deleted — tickets and clocks point at them — only deactivated. At least one
active policy without conditions must remain, so that every new ticket gets deadlines.

A changed policy applies to tickets taken in afterwards and to tickets whose clocks are recomputed later
(a status or priority change rebuilds them from the policy the ticket holds)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from pharmacrm.core import access, audit
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers.services import ConflictError

from .models import SlaPolicy, TicketCategory
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


def _lock(model, obj, version: int | None) -> None:
    """Read the row's current version under a lock (PostgreSQL; SQLite's writers are serialised anyway);
    a client that loaded an older one gets a conflict. The object leaves with the next version."""
    qs = model.objects.filter(pk=obj.pk)
    from django.db import connection

    if connection.features.has_select_for_update:
        qs = qs.select_for_update()
    current = qs.values_list("version", flat=True).first()
    if current is None or (version is not None and (not is_id(version) or int(version) != current)):
        raise ConflictError(current or 0)
    obj.version = current + 1


def update_policy(user, policy: SlaPolicy, data: dict, *, version: int | None = None) -> SlaPolicy:
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
        _lock(SlaPolicy, policy, version)
        policy.save()
        _check_fallback()
        audit.record(A.UPDATE, policy, user=user, changes=changes)
        refresh_after_commit()  # the open tickets' deadlines follow the new targets
    return policy


def deactivate_policy(user, policy: SlaPolicy, *, version: int | None = None) -> SlaPolicy:
    """Switch a policy off (it stays for the tickets and clocks that refer to it)."""
    return update_policy(user, policy, {"active": False}, version=version)


# --- ticket categories (the configurable tree) -------------------------------------------------------

CATEGORY_FIELDS = (
    "code", "name", "parent", "default_priority", "default_complexity", "safety_relevant", "complaint",
    "low_score_action", "active", "position",
)  # fmt: skip


def _category_snapshot(category: TicketCategory) -> dict:
    return {f: category.parent_id if f == "parent" else getattr(category, f) for f in CATEGORY_FIELDS}


def _validate_category(category: TicketCategory) -> None:
    errors: dict[str, list[str]] = {}
    try:
        category.full_clean(exclude=["version"])
    except ValidationError as e:
        errors.update({k: [str(m) for m in v] for k, v in e.message_dict.items()})
    seen, parent = {category.pk}, category.parent
    while parent is not None:  # a category may not sit below itself
        if parent.pk in seen:
            errors.setdefault("parent", []).append(_("A category cannot be placed below itself or its own sub-category."))
            break
        seen.add(parent.pk)
        parent = parent.parent
    if errors:
        raise ValidationError(errors)


def create_category(user, data: dict) -> TicketCategory:
    """A new node of the category tree; its defaults apply to tickets taken in afterwards."""
    access.require(user, Cap.MANAGE_SERVICE)
    category = TicketCategory(**{k: v for k, v in data.items() if k in CATEGORY_FIELDS})
    _validate_category(category)
    with transaction.atomic():
        category.save(force_insert=True)
        audit.record(A.CREATE, category, user=user, changes=audit.diff({}, _category_snapshot(category)))
    return category


def update_category(user, category: TicketCategory, data: dict, *, version: int | None = None) -> TicketCategory:
    """Rename, move in the tree, change the defaults (for tickets taken in afterwards: existing tickets keep
    their priority), or switch off. The code never changes: tickets, rules and integrations use it."""
    access.require(user, Cap.MANAGE_SERVICE)
    if "code" in data and data["code"] != category.code:
        raise ValidationError({"code": [_("A category's code cannot change; create a new category instead.")]})
    before = _category_snapshot(category)
    for key, value in data.items():
        if key in CATEGORY_FIELDS:
            setattr(category, key, value)
    _validate_category(category)
    changes = audit.diff(before, _category_snapshot(category))
    if not changes:
        return category
    with transaction.atomic():
        _lock(TicketCategory, category, version)
        category.save()
        if not TicketCategory.objects.filter(active=True).exists():
            raise ValidationError(_("At least one category must stay active, or no ticket could be taken in."))
        audit.record(A.UPDATE, category, user=user, changes=changes)
        refresh_after_commit()  # policies may select on the category
    return category
