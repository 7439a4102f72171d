"""Every change to users and roles: checked, validated, written in one transaction, audited."""

from __future__ import annotations

from django.contrib.auth import password_validation
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from . import access, audit
from .models import ApiToken, AuditEntry, User
from .roles import Cap, Role

A = AuditEntry.Action


def user_snapshot(user: User) -> dict:
    return {
        "username": user.username,
        "display_name": user.display_name,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": user.is_active,
        "roles": sorted(g.name for g in user.groups.all()),
        "teams": sorted(user.teams.values_list("id", flat=True)),
        "territory": sorted(user.territory.values_list("code", flat=True)),
    }


def _check_password(password: str, user: User) -> None:
    try:
        password_validation.validate_password(password, user)
    except ValidationError as e:
        raise ValidationError({"password": e.error_list}) from None


def _guard_self(actor: User, user: User, data: dict) -> None:
    """An administrator cannot lock themself out by accident."""
    if actor.pk != user.pk:
        return
    if data.get("is_active") is False:
        raise ValidationError({"is_active": [_("You cannot deactivate your own account.")]})
    if "roles" in data and Role.ADMIN.value not in data["roles"] and Role.ADMIN in user.roles:
        raise ValidationError({"roles": [_("You cannot remove your own administrator role.")]})


def _apply_user(user: User, data: dict) -> None:
    for key in ("username", "display_name", "first_name", "last_name", "email", "is_active"):
        if key in data:
            setattr(user, key, data[key])
    if data.get("password"):
        _check_password(data["password"], user)
        user.set_password(data["password"])


def _apply_relations(user: User, data: dict) -> None:
    if "roles" in data:
        user.groups.set(Group.objects.filter(name__in=set(data["roles"])))
    if "teams" in data:
        user.teams.set(data["teams"])
    if "territory" in data:
        user.territory.set(data["territory"])
    user.__dict__.pop("roles", None)  # drop the cached role set


def create_user(actor: User, data: dict) -> User:
    """Create a user with roles, teams and territory; the password must pass Django's validators."""
    access.require(actor, Cap.MANAGE_USERS)
    user = User()
    _apply_user(user, data)
    with transaction.atomic():
        user.save()
        _apply_relations(user, data)
        audit.record(A.CREATE, user, changes=audit.diff({}, user_snapshot(user)), user=actor)
    return user


def update_user(actor: User, user: User, data: dict) -> User:
    access.require(actor, Cap.MANAGE_USERS)
    _guard_self(actor, user, data)
    before = user_snapshot(user)
    _apply_user(user, data)
    with transaction.atomic():
        user.save()
        _apply_relations(user, data)
        if data.get("is_active") is False:
            ApiToken.objects.filter(user=user).delete()
        changes = audit.diff(before, user_snapshot(user))
        if changes or data.get("password"):
            # the password itself never enters the trail, only the fact that it changed
            audit.record(
                A.UPDATE, user, changes=changes, user=actor, password_changed=bool(data.get("password"))
            )
    return user


def deactivate_user(actor: User, user: User) -> User:
    """Users are never deleted (the audit trail names them): they are deactivated, tokens revoked."""
    return update_user(actor, user, {"is_active": False})
