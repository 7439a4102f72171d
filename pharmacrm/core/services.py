"""Every change to users and roles: checked, validated, written in one transaction, audited."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django_otp.plugins.otp_totp.models import TOTPDevice

from . import access, audit
from .ids import is_id
from .models import ApiToken, AuditEntry, SecondFactorEnrolment, User
from .roles import READ_ONLY_ROLES, Cap, Role

A = AuditEntry.Action


def user_snapshot(user: User) -> dict:
    return {
        "username": user.username,
        "display_name": user.display_name,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "language": user.language,
        "is_active": user.is_active,
        "roles": sorted(g.name for g in user.groups.all()),
        "teams": sorted(user.teams.values_list("id", flat=True)),
        "territory": sorted(user.territory.values_list("code", flat=True)),
    }


def sign_in_name(typed: str) -> str:
    """The account's username for what was typed at sign-in. Usernames are unique whatever their letter case
    (the Users page and the API refuse "Agent" beside "agent"), so "Zhangwei" — a phone capitalises the first
    letter — or full-width letters typed with a Chinese input method sign in as "zhangwei"; and the lockout
    counts every spelling towards the one account. An exact match wins over a case-insensitive one."""
    import unicodedata

    typed = (typed or "").strip()
    spellings = list(dict.fromkeys([typed, unicodedata.normalize("NFKC", typed).strip()]))
    for name in spellings:  # as it was typed first: a username saved with full-width letters keeps working
        if name and User.objects.filter(username=name).exists():
            return name
    for name in spellings:
        found = list(User.objects.filter(username__iexact=name).values_list("username", flat=True)[:2])
        if len(found) == 1:
            return found[0]
    return typed


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
    read_only = sorted(r for r in READ_ONLY_ROLES if r.value in set(data.get("roles") or ()))
    if read_only and access.can(user, Cap.MANAGE_USERS):
        # a read-only role takes every write capability away, managing users included: nobody could give it
        # back on the web if this was the only administrator
        raise ValidationError({"roles": [
            _("You cannot give yourself the role %(role)s: it makes an account read-only, and you could no "
              "longer manage users.") % {"role": read_only[0].label}
        ]})  # fmt: skip


def _managers():
    """Active accounts that can manage users (access.can(u, Cap.MANAGE_USERS)): administrators (a superuser is one
    whatever their groups) without a read-only role."""
    from django.db.models import Q

    managing = [r.value for r in Role if r in access.MATRIX[Cap.MANAGE_USERS]]
    return (
        User.objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name__in=managing))
        .exclude(groups__name__in=[r.value for r in READ_ONLY_ROLES])
    )


def _guard_last_manager(user: User, data: dict) -> None:
    """Two administrators each removing the other's role (or account) at the same moment both passed the checks
    and left nobody who could manage users. Called in the transaction after the change: it is undone unless
    someone can still manage users."""
    if _managers().exists():
        return
    if data.get("is_active") is False:
        raise ValidationError({"is_active": [
            _("%(name)s is the only active administrator: nobody could manage users any more. Make another "
              "user an administrator first.") % {"name": user}
        ]})  # fmt: skip
    raise ValidationError({"roles": [
        _("%(name)s is the only active administrator: without the administrator role nobody could manage users "
          "any more. Make another user an administrator first.") % {"name": user}
    ]})  # fmt: skip


def _apply_user(user: User, data: dict) -> None:
    if data.get("language") and data["language"] not in dict(settings.LANGUAGES):
        raise ValidationError({"language": [_("Choose one of the product's languages.")]})
    for key in ("username", "display_name", "first_name", "last_name", "email", "is_active"):
        if key in data:
            setattr(user, key, data[key])
    if "username" in data:  # full-width letters as the ordinary ones, as sign-in reads them (sign_in_name)
        user.username = User.normalize_username(data["username"]).strip()
    if "language" in data:
        user.language = data["language"] or ""
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
    taken = ValidationError({"username": [_("A user with this username already exists.")]})
    with transaction.atomic():
        # checked again here: the same form sent twice passes the form's check twice before either is saved, and
        # the second ended in a server error although the user was made
        if User.objects.filter(username__iexact=user.username).exists():
            raise taken
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError:
            raise taken from None
        _apply_relations(user, data)
        audit.record(A.CREATE, user, changes=audit.diff({}, user_snapshot(user)), user=actor)
    return user


class UserConflictError(Exception):
    """Someone else saved the user after this administrator loaded it (optimistic locking)."""

    def __init__(self, current_version: int):
        super().__init__(
            _(
                "Someone else changed this record while you were editing it. Reload and apply your changes again."
            )
        )
        self.current_version = current_version


def update_user(actor: User, user: User, data: dict, version: int | None = None) -> User:
    """Change a user; `version` is the one the caller loaded (the API and the web form always send it): a
    newer one in the database raises UserConflictError and nothing is written. None (internal callers,
    deactivate_user) means no check. Every change bumps the version; a new password revokes every API
    token (the web sessions end with the old password's hash); deactivating revokes them too and ends every web
    session of the account (User.save), for good: reactivating does not bring them back."""
    access.require(actor, Cap.MANAGE_USERS)
    _guard_self(actor, user, data)
    before = user_snapshot(user)
    _apply_user(user, data)
    password_changed = bool(data.get("password"))
    with transaction.atomic():
        if "roles" in data or data.get("is_active") is False:
            # lock every administrator's row, in one order, before the user's: of two administrators demoting each
            # other at once, the second waits for the first and then finds it is the last one
            list(_managers().select_for_update(of=("self",)).order_by("pk").values_list("pk", flat=True))
        # lock the row (SQLite: the IMMEDIATE transaction): of two administrators saving the same version,
        # the second gets the conflict
        current = (
            User.objects.select_for_update().filter(pk=user.pk).values_list("version", flat=True).first()
        )
        if current is None:
            raise User.DoesNotExist
        if version is not None and (not is_id(version) or int(version) != current):
            raise UserConflictError(current)
        user.version = current
        revoked = 0
        if data.get("is_active") is False or password_changed:
            revoked, _per_model = ApiToken.objects.filter(user=user).delete()
        user._password_change_audited = True  # audited below, with the rest of the change
        user.save()
        _apply_relations(user, data)
        if "roles" in data or data.get("is_active") is False:
            _guard_last_manager(user, data)
        changes = audit.diff(before, user_snapshot(user))
        if changes or password_changed:
            User.objects.filter(pk=user.pk).update(version=F("version") + 1)
            user.version = current + 1
            # the password itself never enters the trail, only the fact that it changed
            audit.record(
                A.UPDATE, user, changes=changes, user=actor, password_changed=password_changed,
                **({"tokens_revoked": revoked} if revoked else {}),
                **({"sessions_ended": True} if getattr(user, "_sessions_ended", False) else {}),
            )  # fmt: skip
    return user


def set_language(user: User, language: str) -> str:
    """The user's own choice of language (the language menu): their pages after sign-in, their
    notifications and e-mails. Audited, and a new version of the account: an administrator's user page
    loaded before it (which also holds the language) gets the conflict instead of reverting it. Returns the
    language kept, "" when it is not one of the product's."""
    if language not in dict(settings.LANGUAGES):
        return ""
    old = User.objects.filter(pk=user.pk).values_list("language", flat=True).first()
    if old is None or old == language:
        user.language = language
        return language
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(language=language, version=F("version") + 1)
        audit.record(A.UPDATE, user, user=user, changes={"language": [old, language]})
    user.language = language
    return language


def deactivate_user(actor: User, user: User, version: int | None = None) -> User:
    """Users are never deleted (the audit trail names them): they are deactivated, their web sessions ended and
    their API tokens revoked at once. `version`: the one the caller loaded, when it says (If-Match) — a user changed
    since is not deactivated unseen (UserConflictError)."""
    return update_user(actor, user, {"is_active": False}, version)


def unlock_user(actor: User, user: User) -> int:
    """Clear the failed sign-ins that locked the account (django-axes), audited; how many were cleared."""
    from axes.utils import reset

    access.require(actor, Cap.MANAGE_USERS)
    cleared = reset(username=user.username)
    if cleared:
        audit.record(
            A.UPDATE, user, changes={"locked_out": [True, False]}, user=actor, attempts_cleared=cleared
        )
    return cleared


# --- second factor -----------------------------------------------------------------------------


def issue_second_factor_enrolment(
    actor: User | None, user: User, *, system_actor: str = ""
) -> tuple[SecondFactorEnrolment, str]:
    """Reset the user's second factor and issue a one-time enrolment code (二次验证绑定码).

    Every TOTP device of the user (confirmed or not) is removed, so the next sign-in asks for the code
    before an authenticator app can be set up; earlier unused codes become void, and the user's API
    tokens issued with the old second factor are revoked. Returns the enrolment and the code, which is
    shown once and stored only as its SHA-256 (never in the audit trail either).

    `actor` needs "Manage users and roles". Only the `second_factor_code` management command, run by
    someone with shell access to bootstrap the first administrator, passes `actor=None` together with
    `system_actor` (the operating-system account, `cli:<name>`) instead.
    """
    if actor is None:
        if not system_actor:
            raise PermissionDenied(_("You do not have permission to do this."))
    else:
        access.require(actor, Cap.MANAGE_USERS)
    code = SecondFactorEnrolment.new_code()
    now = timezone.now()
    with transaction.atomic():
        # lock the user's row: two administrators issuing at once leave exactly one usable code
        list(User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))
        devices = TOTPDevice.objects.filter(user=user)
        had_device = devices.filter(confirmed=True).exists()
        removed, _per_model = devices.delete()
        voided = SecondFactorEnrolment.objects.filter(user=user, used_at__isnull=True).update(used_at=now)
        revoked, _per_model = ApiToken.objects.filter(user=user, second_factor=True).delete()
        enrolment = SecondFactorEnrolment.objects.create(
            user=user,
            code_hash=SecondFactorEnrolment.hash_code(code),
            issued_by=actor,
            created_at=now,
            expires_at=now + datetime.timedelta(hours=settings.OTP_ENROLMENT_HOURS),
        )
        who = {"user": actor} if actor is not None else {"actor_name": system_actor}
        audit.record(
            A.UPDATE,
            user,
            changes={"second_factor": ["totp" if had_device else "", "enrolment_code"]},
            enrolment=enrolment.pk,
            expires_at=enrolment.expires_at,
            devices_removed=removed,
            codes_voided=voided,
            tokens_revoked=revoked,
            **who,
        )
    return enrolment, code


def check_enrolment_code(user: User, code: str) -> tuple[SecondFactorEnrolment | None, str]:
    """The user's enrolment for this code when it may be used now; else None and why not:
    "wrong" (no such code for this user), "expired" or "used" (used, or replaced by a newer code)."""
    normalised = SecondFactorEnrolment.normalise(code)
    if not normalised:
        return None, "wrong"
    enrolment = SecondFactorEnrolment.objects.filter(
        user=user, code_hash=SecondFactorEnrolment.hash_code(normalised)
    ).first()
    if enrolment is None:
        return None, "wrong"
    if enrolment.is_used:
        return None, "used"
    if enrolment.is_expired():
        return None, "expired"
    return enrolment, ""


def usable_enrolment(user: User, enrolment_id) -> SecondFactorEnrolment | None:
    """The user's enrolment with this id if it is still unused and unexpired."""
    if not isinstance(enrolment_id, int):
        return None
    enrolment = SecondFactorEnrolment.objects.filter(pk=enrolment_id, user=user).first()
    return enrolment if enrolment is not None and enrolment.is_usable() else None


def confirm_second_factor(user: User, enrolment_id: int, device: TOTPDevice) -> bool:
    """Confirm the user's new TOTP device (its code was checked by the caller) and use up the enrolment
    code, together; False (nothing changed) when the code expired or was replaced in the meantime."""
    with transaction.atomic():
        # the same lock as issue_second_factor_enrolment: a reset cannot interleave with this
        list(User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))
        enrolment = usable_enrolment(user, enrolment_id)
        if enrolment is None or not TOTPDevice.objects.filter(pk=device.pk, user=user).exists():
            return False
        enrolment.used_at = timezone.now()
        enrolment.save(update_fields=["used_at"])
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        audit.record(
            A.UPDATE, user, changes={"second_factor": ["enrolment_code", "totp"]}, user=user,
            enrolment=enrolment.pk,
        )  # fmt: skip
    return True
