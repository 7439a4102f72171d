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


class MaskAddresses(logging.Filter):
    """The log is a file next to a database that keeps customers' e-mail addresses encrypted: an address in
    a message or a traceback (an SMTP refusal, a library's error) is written masked, w***@example.com."""

    def filter(self, record: logging.LogRecord) -> bool:
        from pharmacrm.customers.normalise import mask_addresses

        message = record.getMessage()
        if "@" in message:
            record.msg, record.args = mask_addresses(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and "@" in record.exc_text:
            record.exc_text = mask_addresses(record.exc_text)
        return True
