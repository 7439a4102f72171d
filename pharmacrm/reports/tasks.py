"""The worker's tasks of this app (Huey finds them in each app's tasks module)."""

from .services import send_due_reports, send_subscription  # noqa: F401
