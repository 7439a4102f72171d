"""Cross-cutting audit of logins, logouts and failed logins (signals are for infrastructure only)."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from . import audit
from .models import AuditEntry


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    audit.record(AuditEntry.Action.LOGIN, user, user=user, via=getattr(request, "login_via", "web"))
    from .middleware import needs_second_factor

    # the API issues a token only after the one-time code; on the web that code is asked after this login
    if getattr(request, "login_via", "web") == "api" or not needs_second_factor(user):
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


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    audit.record(AuditEntry.Action.LOGIN_FAILED, ("core.user", "", username), actor_name=username)
