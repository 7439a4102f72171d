"""Authentication backends."""

from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' lockout check, which also marks the request when it refuses a sign-in because the account
    was already locked: the password was then never checked, and the audit trail says so (core.signals)
    instead of recording it like a wrong password."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        try:
            return super().authenticate(request, username=username, password=password, **kwargs)
        except AxesBackendPermissionDenied:
            if request is not None:
                request.refused_as_locked = True
            raise
