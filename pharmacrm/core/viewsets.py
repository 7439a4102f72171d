"""The API's view base classes: DRF's, and what every endpoint does with a body it takes none of (docs/api.md,
"Request bodies"). Every view of the API derives from one of these (tests/api/test_strict_bodies.py walks the
URLs); the API modules import them in place of rest_framework's:

    from pharmacrm.core import viewsets
    from pharmacrm.core.viewsets import APIView
"""

from __future__ import annotations

from collections.abc import Mapping

from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework import views as drf_views
from rest_framework import viewsets as drf_viewsets
from rest_framework.settings import api_settings

from .api_utils import _FORM_KEYS, MAX_UNKNOWN_REPORTED

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def takes_body(view, method: str) -> bool:
    """Whether the operation `method` of `view` (a view being run, its action known) has a request body in the
    OpenAPI schema: the schema is worked out by drf-spectacular as for /api/schema/ (SchemaGenerator.create_view:
    the action's own @extend_schema, else the view's), so what the API refuses and what it documents cannot part.
    A DELETE never has one; POST, PUT and PATCH have the view's serializer unless `request=None` says none. A
    method the view does not have counts as taking one, so that its answer stays 405 Method Not Allowed."""
    action = getattr(view, "action", None)
    handler = getattr(view, action, None) if action else getattr(view, method.lower(), None)
    if handler is None:
        return True  # no such operation: the 405 tells
    if method not in ("POST", "PUT", "PATCH"):
        return False
    from drf_spectacular.plumbing import get_class

    schema = get_class(getattr(handler, "kwargs", {}).get("schema") or view.schema)()
    schema.view = view
    schema.method = method
    return schema.get_request_serializer() is not None


def _has_content(request) -> bool:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) > 0
    except ValueError:
        return False  # Django reads such a body as empty too


class RefuseUnreadBody:
    """An action that takes no body (a DELETE; an approval, a withdrawal, a retry …) refuses a body that is not
    empty with 400 naming its fields, in the request's language: the action ran and the body was dropped in
    silence, so a client that sent `{"reason": "…"}` with a withdrawal believed the reason stored. No body, no
    Content-Type, `{}`, `[]` and `null` are still taken. The check runs once the caller is signed in and allowed
    (401 and 403 first), before the action does anything."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if request.method in UNSAFE and _has_content(request) and not takes_body(self, request.method):
            refuse_body(request.data)


def refuse_body(data) -> None:
    """Raise the 400 for a body sent where none is taken, unless it is empty."""
    if data is None:
        return
    if isinstance(data, Mapping):
        sent = [str(key) for key in data if key not in _FORM_KEYS]
        if sent:
            message = _("Unknown field. This request takes no body: send it without one, or with {}.")
            raise exceptions.ValidationError(
                {key[:60]: [exceptions.ErrorDetail(message, code="no_body")] for key in sent[:MAX_UNKNOWN_REPORTED]}
            )
        return
    if isinstance(data, list) and not data:
        return
    raise exceptions.ValidationError(
        {
            api_settings.NON_FIELD_ERRORS_KEY: [
                exceptions.ErrorDetail(_("This request takes no body: send it without one, or with {}."), code="no_body")
            ]
        }
    )


class APIView(RefuseUnreadBody, drf_views.APIView):
    pass


class GenericViewSet(RefuseUnreadBody, drf_viewsets.GenericViewSet):
    pass


class ReadOnlyModelViewSet(RefuseUnreadBody, drf_viewsets.ReadOnlyModelViewSet):
    pass


class ModelViewSet(RefuseUnreadBody, drf_viewsets.ModelViewSet):
    pass
