"""Request parsers of the API (settings.REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]): kept apart from api_utils,
which DRF's settings would otherwise import while it is still being imported."""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework import exceptions, parsers


def _nul_key(data) -> bool:
    """Whether an object of `data`, at any depth, has a key with a NUL character in it."""
    todo = [data]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            if any("\x00" in key for key in item):
                return True
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return False


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing a body nested too deep for Python's parser (a thousand "[") as broken JSON:
    it raised RecursionError, a server error on every JSON endpoint, the sign-in included. A key with a NUL
    character (JSON's "\\u0000") is refused too, before any view reads it: no field is named so, and a key that
    reached the database (a JSON column, a look-up) would be refused by PostgreSQL — a server error — where SQLite
    kept it. NUL in a value is the field's to refuse, by its name (DRF's text fields do)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(_("The request body is not valid JSON.")) from None
        if _nul_key(data):
            raise exceptions.ParseError(
                _("A key of the request body contains a NUL character (\\u0000), which no field name holds: remove "
                  "it and send the request again.")
            )  # fmt: skip
        return data
