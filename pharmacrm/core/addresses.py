"""E-mail addresses of customers, including internationalised ones (RFC 6531): a local part in Chinese such as
张三@公司.cn is an address like any other. Django's EmailValidator refuses it (it knows only ASCII local parts), so a
mail from such a sender was flagged in the mailbox instead of becoming a ticket, and an agent could not type the
address either. Replies to it need a mail server that speaks SMTPUTF8 (servicedesk.mail).

One rule for the service desk and the customer records: `validate_address` decides what is an address, and
`canonical` is the form it is stored, compared and blind-indexed in (customers.normalise.email is this
function). A customer record refused 张三@公司.cn while the desk took it, so such a customer's tickets were never
linked to their record; and a domain written in punycode (wang@xn--55qx5d.cn, as some mail programs send it) did
not find the record typed as wang@公司.cn."""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# invisible characters copied along from WeChat, a web page or a text written right to left: zero-width space,
# joiners, word joiner, BOM, and (found by QA) the soft hyphen, the left-to-right and right-to-left marks, the
# direction embeddings, overrides and isolates, the Arabic letter mark and the Mongolian vowel separator.
# 陈强\u200e looked like 陈强 but was stored, compared and searched as another name, and a credit code carrying one
# was "19 characters". customers.normalise folds the same set.
INVISIBLE = dict.fromkeys((
    0x00AD, 0x061C, 0x180E, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, *range(0x202A, 0x202F), 0x2060,
    *range(0x2066, 0x206A), 0xFEFF,
))
_INVISIBLE = INVISIBLE


def _unicode_domain(domain: str) -> str:
    """The domain with its punycode labels (xn--55qx5d) written in Unicode (公司), so that both spellings of one
    address are the same address; a label that is not valid punycode stays as it is."""
    labels = []
    for label in domain.split("."):
        if label.startswith("xn--"):
            try:
                label = label.encode("ascii").decode("idna")
            except UnicodeError:
                pass
        labels.append(label)
    return ".".join(labels)


def canonical(value: str | None) -> str:
    """An address as it is stored and compared: what a Chinese input method types in full-width mode read as
    ASCII (ｗａｎｇ＠１６３．ｃｏｍ, wang@163。com), without invisible characters and the sentence's full stop after
    it, lower-cased, and its domain in Unicode (wang@xn--55qx5d.cn is wang@公司.cn)."""
    # a zero-width space copied along from WeChat passed the check and was stored inside the address: mail to it
    # bounced, and the duplicate check (blind index) no longer matched the same address typed by hand
    folded = unicodedata.normalize("NFKC", value or "").translate(_INVISIBLE).replace("。", ".").strip()
    if "@" not in folded:
        return folded.lower()
    local, _at, domain = folded.rstrip(".").strip().lower().rpartition("@")
    return f"{local}@{_unicode_domain(domain)}"


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
