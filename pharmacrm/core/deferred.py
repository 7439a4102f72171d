"""Texts written now and read later, each reader in their own language.

A notification is stored once but read by users who work in Simplified Chinese, Traditional Chinese or
English, and e-mailed to each in theirs. So its title is not stored as a rendered string but as what it is
made of: a translatable template (`gettext_lazy`/`pgettext_lazy`) and its arguments, which may themselves
be translatable (a choice's label) or literal (a ticket number, a subject the customer wrote).

    Message(gettext_lazy("%(number)s escalated to level %(level)d"), number=t.number, level=2)

`freeze` turns such a text into JSON; `thaw` renders the JSON in the active language. Anything else
(a plain string, a number, a Decimal) is kept literally; a list's items are joined with the reader's separator
(2027、2028 in Chinese, "2027, 2028" in English). A template whose translation no longer fits its
arguments renders from its source text, or as it is: reading a notification never fails."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.utils import formats, timezone, translation
from django.utils.functional import Promise

__all__ = ["Message", "freeze", "thaw", "label", "render_in"]


class Message:
    """A translatable template with named arguments, rendered when read (`str()` renders it in the active
    language)."""

    __slots__ = ("template", "params")

    def __init__(self, template: Any, **params: Any) -> None:
        self.template, self.params = template, params

    def __str__(self) -> str:
        return thaw(freeze(self))

    def __repr__(self) -> str:
        return f"Message({self.template!r}, **{self.params!r})"

    def __bool__(self) -> bool:
        return bool(self.template)


_LAZY = {
    translation.gettext: "g",
    translation.pgettext: "p",
    translation.ngettext: "n",
    translation.npgettext: "np",
}


def _lazy_spec(value: Promise) -> Any:
    try:
        func, args, kwargs = value.__reduce__()[1][:3]
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    kind = _LAZY.get(func)
    if kind in ("n", "np") and kwargs:  # ngettext_lazy passes its arguments by name
        names = ("context", "singular", "plural", "number") if kind == "np" else ("singular", "plural", "number")
        if set(kwargs) != set(names):
            return None
        args, kwargs = tuple(kwargs[n] for n in names), {}
    if kind is None or kwargs or not all(isinstance(a, str | int) for a in args):
        return None
    if kind in ("n", "np") and not isinstance(args[-1], int):
        return None  # a plural chosen by a key of the arguments: render it now
    return {"_": kind, "a": list(args)}


def freeze(value: Any) -> Any:
    """The JSON form of a text: a string, a number, or {"_": kind, ...} for the translatable parts."""
    if value is None:
        return ""
    if isinstance(value, Message):
        return {"_": "f", "m": freeze(value.template), "a": {k: freeze(v) for k, v in value.params.items()}}
    if isinstance(value, Promise):
        spec = _lazy_spec(value)
        if spec is not None:
            return spec
        return str(value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, list | tuple):  # items in running text, joined with the reader's separator when read
        return {"_": "list", "v": [freeze(v) for v in value]}
    if isinstance(value, Decimal):  # kept exact, and a number again for %d / %.2f
        return {"_": "dec", "v": str(value)}
    if isinstance(value, dt.datetime):
        return {"_": "dt", "v": value.isoformat()}
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _format(template: str, args: dict) -> str:
    return template % args if args else template


def thaw(spec: Any) -> str:
    """Render a frozen text in the active language."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, int | float):
        return str(spec)
    if not isinstance(spec, dict):
        return "" if spec is None else str(spec)
    kind, args = spec.get("_"), spec.get("a")
    if kind == "g":
        return translation.gettext(*args)
    if kind == "p":
        return translation.pgettext(*args)
    if kind == "n":
        return translation.ngettext(*args)
    if kind == "np":
        return translation.npgettext(*args)
    if kind == "dt":
        moment = dt.datetime.fromisoformat(spec["v"])
        if timezone.is_aware(moment):
            moment = timezone.localtime(moment)
        return formats.date_format(moment, "Y-m-d H:i")
    if kind == "f":
        values = {k: _arg(v) for k, v in (args or {}).items()}
        template = thaw(spec.get("m"))
        try:
            return _format(template, values)
        except (KeyError, TypeError, ValueError):
            # a translation that does not fit the arguments: the source text; else the template as it is
            with translation.override(None):
                source = thaw(spec.get("m"))
            try:
                return _format(source, values)
            except (KeyError, TypeError, ValueError):
                return template
    if kind == "dec":
        return spec.get("v", "")
    if kind == "list":
        from .wording import listing

        return listing(thaw(v) for v in spec.get("v") or [])
    return ""


def _arg(spec: Any) -> Any:
    if isinstance(spec, int | float):
        return spec
    if isinstance(spec, dict) and spec.get("_") == "dec":
        try:
            return Decimal(spec.get("v", ""))
        except ArithmeticError:
            return spec.get("v", "")
    return thaw(spec)


def render_in(language: str | None, spec: Any) -> str:
    """`thaw` in the given language (a user's), or the product's when None."""
    from django.conf import settings

    with translation.override(language or settings.LANGUAGE_CODE):
        return thaw(spec)


def label(instance: Any, field: str) -> Any:
    """The translatable label of a choice field's value (its lazy text), for a Message's argument;
    the value itself when it is not one of the choices."""
    value = getattr(instance, field)
    choices = dict(instance._meta.get_field(field).flatchoices)
    return choices.get(value, value)
