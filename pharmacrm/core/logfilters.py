"""Logging filters named in settings.LOGGING."""

from __future__ import annotations

import logging


class ClientErrorsWithoutTraceback(logging.Filter):
    """Django logs every refused request (403, 404 …) with the exception's traceback: a busy day's log was
    mostly tracebacks of `PermissionDenied`, hiding the server errors that matter. A client error keeps its
    one line (status, path); a server error keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if record.name.startswith("django.") and isinstance(status, int) and 400 <= status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
