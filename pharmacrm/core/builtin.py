"""The names of the rows the product ships — the default ticket categories, business calendars, SLA policies and
reporting rules — in the reader's language.

Those rows are data an administrator may rename, so their names are stored as written (in Simplified
Chinese, or in English for the foreign authorities' rules). As long as a row keeps the name the product
gave it, each reader sees it in their own language; a renamed row shows its new name to everyone.

Each app registers its shipped names at start-up (`register`, from its AppConfig.ready):
{stored name: translatable name}. The stored name's own language reads it as stored.
"""

from __future__ import annotations

from typing import Any

from django.utils import translation
from django.utils.functional import Promise

_NAMES: dict[str, tuple[Promise, str]] = {}  # stored name → (translatable name, the stored name's language)


def register(names: dict[str, Promise], language: str = "zh-hans") -> None:
    """Names the product ships, written in `language`, with their translatable versions."""
    for stored, text in names.items():
        _NAMES[stored] = (text, language)


def text(name: str) -> Any:
    """The name as a translatable text (a lazy translation for a shipped, unrenamed name; else the name
    itself): for texts rendered later in their reader's language (notifications)."""
    entry = _NAMES.get(name)
    return entry[0] if entry is not None else name


def shown(name: str) -> str:
    """The name in the active language: a shipped name not renamed is translated (read as stored in its
    own language); any other name is shown as written."""
    entry = _NAMES.get(name)
    if entry is None:
        return name
    lazy, language = entry
    active = (translation.get_language() or "").lower()
    if active == language or not active:
        return name
    return str(lazy)


class BuiltinNameMixin:
    """`label` of a model with a `name` field that may hold a shipped name: what pages show (and the
    model's `__str__` returns)."""

    name: str

    @property
    def label(self) -> str:
        return shown(self.name)


def note_on_form(form, field: str = "name") -> None:
    """On the edit form of a row with a shipped name, say how the name is shown (in each reader's
    language until renamed)."""
    from django.utils.translation import gettext as _

    name = form.initial.get(field)
    if field in form.fields and isinstance(name, str) and name in _NAMES:
        form.fields[field].help_text = _(
            "The name the product ships: each user reads it in their own language (here: “%(label)s”). "
            "A new name is shown to everyone as written."
        ) % {"label": shown(name)}
