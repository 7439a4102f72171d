"""Cross-cutting audit of logins, logouts and failed logins (signals are for infrastructure only)."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from . import audit
from .models import AuditEntry


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    audit.record(AuditEntry.Action.LOGIN, user, user=user, via=getattr(request, "login_via", "web"))


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit.record(AuditEntry.Action.LOGOUT, user, user=user)


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    audit.record(AuditEntry.Action.LOGIN_FAILED, ("core.user", "", username), actor_name=username)
