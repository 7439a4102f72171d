"""The customer's e-mail address on a ticket, including internationalised ones (RFC 6531): a local part in
Chinese such as 张三@公司.cn is an address like any other. Django's EmailValidator refuses it (it knows only
ASCII local parts), so a mail from such a sender was flagged in the mailbox instead of becoming a ticket, and an
agent could not type the address either. Replies to it need a mail server that speaks SMTPUTF8 (mail.py)."""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def needs_smtputf8(address: str) -> bool:
    """Whether mail to the address can only go out with SMTPUTF8: its local part is not ASCII. (A domain in
    Chinese — wang@公司.cn — is written in ASCII as punycode and needs nothing.)"""
    local = (address or "").rpartition("@")[0]
    return bool(_NON_ASCII.search(local))


def _usable(char: str) -> bool:
    """A character outside ASCII that may stand in a local part (RFC 6531 UTF8-non-ascii): not a control,
    format, separator or unassigned character (a zero-width space copied from WeChat, a full-width space)."""
    return unicodedata.category(char)[0] not in "CZ"


def validate_address(value: str) -> None:
    """Django's check, with a local part in UTF-8 accepted as RFC 6531 allows (each character outside ASCII
    must be a visible one; the ASCII rest follows RFC 5322 as before). Raises ValidationError."""
    value = (value or "").strip()
    try:
        validate_email(value)
        return
    except ValidationError:
        local, at, domain = value.rpartition("@")
        chars = _NON_ASCII.findall(local)
        if not (at and chars and all(_usable(c) for c in chars)):
            raise ValidationError(_("Enter a valid e-mail address."), code="invalid") from None
    # each character outside ASCII counts as a letter: the rest must make an address as before
    try:
        validate_email(_NON_ASCII.sub("a", local) + "@" + domain)
    except ValidationError:
        raise ValidationError(_("Enter a valid e-mail address."), code="invalid") from None
