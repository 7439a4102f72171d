"""The server log: a refused request is one line, a server error keeps its traceback."""

from __future__ import annotations

import io
import logging
import logging.config

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.utils.log import log_response


def _log_with_product_settings(status: int) -> str:
    from django.http import HttpResponse
    from django.test import RequestFactory

    stream = io.StringIO()
    config = {**settings.LOGGING, "handlers": {
        "console": {**settings.LOGGING["handlers"]["console"], "class": "logging.StreamHandler", "stream": stream},
    }}  # fmt: skip
    logging.config.dictConfig(config)
    try:
        raise PermissionDenied("您没有执行此操作的权限。") if status < 500 else RuntimeError("boom")
    except Exception as exc:  # noqa: BLE001 - the exception is what gets logged
        response = HttpResponse(status=status)
        log_response("Refused: %s", "/customers/", response=response, request=RequestFactory().get("/customers/"),
                     exception=exc)  # fmt: skip
    finally:
        logging.config.dictConfig(settings.LOGGING)
    return stream.getvalue()


def test_a_refused_request_is_logged_in_one_line_without_a_traceback():
    out = _log_with_product_settings(403)
    assert "WARNING django.request Refused: /customers/" in out
    assert "Traceback" not in out and "PermissionDenied" not in out


def test_a_server_error_keeps_its_traceback():
    out = _log_with_product_settings(500)
    assert "ERROR django.request Refused: /customers/" in out and "Traceback" in out and "RuntimeError: boom" in out
