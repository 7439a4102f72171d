"""Request parsers of the API (settings.REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]): kept apart from api_utils,
which DRF's settings would otherwise import while it is still being imported."""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing a body nested too deep for Python's parser (a thousand "[") as broken JSON:
    it raised RecursionError, a server error on every JSON endpoint, the sign-in included."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(_("The request body is not valid JSON.")) from None
