"""Cross-cutting audit of logins, logouts and failed logins (signals are for infrastructure only)."""

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from . import audit
from .models import AuditEntry, User


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    from .middleware import needs_second_factor

    via = getattr(request, "login_via", "web")
    if not needs_second_factor(user):
        audit.record(AuditEntry.Action.LOGIN, user, user=user, via=via)
        signed_in(user)
    elif via == "api":  # the API issues a token only after the one-time code
        audit.record(AuditEntry.Action.LOGIN, user, user=user, via=via, second_factor="totp")
        signed_in(user)
    else:  # on the web the code is asked after this: an auditor must not read a password alone as a sign-in
        audit.record(AuditEntry.Action.LOGIN, user, user=user, via=via, second_factor="pending")


def second_factor_passed(user) -> None:
    """The one-time code of a web sign-in was right: the sign-in is complete (audited as such)."""
    audit.record(AuditEntry.Action.LOGIN, user, user=user, via="web", second_factor="totp")
    signed_in(user)


def signed_in(user) -> None:
    """A complete sign-in: the user's "Last sign-in" (last_login, on the Users pages and in the API) and the
    failed attempts forgotten. A password alone of a second-factor role is neither: it does not show as the
    last sign-in of an account whose phone never gave the code."""
    from django.contrib.auth.models import update_last_login

    update_last_login(None, user)
    forget_failed_sign_ins(user)


def forget_failed_sign_ins(user) -> None:
    """A complete sign-in (password, and the one-time code where the role needs one) clears the account's
    failed attempts (django-axes), so that old typos do not count towards a later lockout."""
    from axes.utils import reset

    reset(username=user.get_username())


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit.record(AuditEntry.Action.LOGOUT, user, user=user)


def unknown_name(typed: str) -> str:
    """What the audit trail keeps of a user name that is no account's: never the text as typed — a password typed
    into the user-name field (the fields swapped, a password manager's slip) stayed in clear in the append-only trail,
    for every administrator and the auditor to read — but a keyed digest of it, the same for every try of the same
    name, so that repeated tries still show as such."""
    from . import crypto

    return "?" + crypto.blind_index(typed, "unknown user name")[:12]


def lockout_username(request, credentials=None) -> str | None:
    """The name django-axes counts failed sign-ins under and keeps in its table (AXES_USERNAME_CALLABLE): an
    account's username as it is, a name that is no account's as the keyed digest the audit trail keeps
    (`unknown_name`). Axes kept the text as typed, so a password typed into the user-name field stayed in clear in
    its table — and in every backup taken meanwhile (found by QA). Repeated tries of one unknown name still count
    together: the digest is the same for each."""
    from axes.conf import settings as axes_settings

    from .models import User

    field = axes_settings.AXES_USERNAME_FORM_FIELD
    if credentials:
        typed = credentials.get(field)
    else:
        typed = getattr(request, "data", None) or getattr(request, "POST", {})
        typed = typed.get(field) if hasattr(typed, "get") else None
    if not typed or not isinstance(typed, str):
        return typed
    if typed.startswith("?") or User.objects.filter(username=typed).exists():
        return typed
    return unknown_name(typed)


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, reason: str = "", **kwargs):
    """A failed sign-in, audited with why it failed: the senders in this project name their reason (a wrong
    one-time code, a wrong current password); a refusal from authenticate() is a locked account (the password
    was not even checked), an unknown username, a deactivated account, or a wrong password."""
    username = str(credentials.get("username", ""))[:150]
    # The session's user is the actor only when it is that account (a wrong one-time code, a wrong present
    # password): a browser that gave a password and not yet the code may type another name on the sign-in
    # page, and that failure is not the first account's. Nobody signed in: the name typed is all there is.
    # Filed under the account tried, when there is one, so that filtering the trail by that user finds them.
    found = User.objects.filter(username=username).values_list("pk", "is_active").first()
    account = found[0] if found else None
    if found is None and username:
        username = unknown_name(username)
    tried = ("core.user", str(account) if account is not None else "", username)
    if not reason:
        if getattr(request, "refused_as_locked", False):
            reason = "account locked"
        elif found is None:
            reason = "unknown username"
        else:  # a deactivated account is refused whatever the password (a former employee trying it)
            reason = "wrong password" if found[1] else "account deactivated"
    session_user = audit.current().user
    via = getattr(request, "login_via", "web")  # as a sign-in records it: an attack through the API shows as such
    if session_user is not None and session_user.is_authenticated and session_user.get_username() == username:
        audit.record(AuditEntry.Action.LOGIN_FAILED, tried, user=session_user, via=via, reason=reason)
    else:
        audit.record(
            AuditEntry.Action.LOGIN_FAILED, tried, user=AnonymousUser(), actor_name=username, via=via, reason=reason
        )
