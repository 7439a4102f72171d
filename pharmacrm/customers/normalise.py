"""Normalisation and validation of names, phones, e-mails and credit codes (pure functions)."""

from __future__ import annotations

import datetime
import json
import re
import unicodedata
from pathlib import Path

import phonenumbers
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core.addresses import INVISIBLE

_SPACE = re.compile(r"\s+")
_NAME_PUNCT = re.compile(r"[\s·•・\-—_()（）【】\[\]{}「」『』\"'“”‘’,，.。、:：;；/\\]+")



def _hant_table() -> dict[int, str]:
    """Traditional → Simplified, one character each (data/hant_fold.json, made by tools/hant_fold.py)."""
    data = json.loads((Path(__file__).parent / "data" / "hant_fold.json").read_text(encoding="utf-8"))
    return str.maketrans(data["from"], data["to"])


_HANT = _hant_table()


def name(value: str) -> str:
    """Width-folded, lower-cased name without spaces and punctuation, Traditional characters read as
    Simplified (北京協和醫院 is 北京协和医院): what search, pinyin order and duplicate detection compare."""
    folded = unicodedata.normalize("NFKC", value or "").lower().translate(_HANT).translate(_INVISIBLE)
    return _NAME_PUNCT.sub("", folded)


def visible(value: str | None) -> str:
    """The text without the zero-width characters copied along from WeChat or a web page (what a search box gets
    when a name is pasted)."""
    return (value or "").translate(_INVISIBLE)


def simplified(value: str) -> str:
    """Traditional characters read as Simplified, character by character (廣東省 → 广东省, 機構名稱 → 机构名称); the
    rest of the text is left as it is. What the importers use for headers, region names and choice words."""
    return (value or "").translate(_HANT)


def has_traditional(value: str) -> bool:
    """Whether `name` would fold any character of this text (a record stored before the folding)."""
    return bool(value) and value != value.translate(_HANT)


# full-width letters and digits (Ａ, ａ, ０) as their ASCII forms; Chinese punctuation (（），：；！？) stays
_FULLWIDTH_ALNUM = {cp: cp - 0xFEE0 for r in ((0xFF10, 0xFF1A), (0xFF21, 0xFF3B), (0xFF41, 0xFF5B)) for cp in range(*r)}
# invisible characters text copied from web pages, WeChat or a second BOM carries (zero-width space, joiners, word
# joiner, BOM, direction marks, the soft hyphen: core.addresses.INVISIBLE): 张\u200b三 looks like 张三 but was
# stored, compared and searched as another name
_INVISIBLE = INVISIBLE
_FULLWIDTH_ALNUM.update(_INVISIBLE)


def clean_text(value: str | None) -> str:
    """Text as it is stored: spaces of every kind (the full-width one too) collapsed, full-width letters and
    digits made ASCII, zero-width characters dropped. Chinese punctuation, ① and m² are kept: a registered name is written 康源大药房（和平店）,
    and an address 南京路1号，临街. Comparisons fold the rest (`name`)."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", value or "").translate(_FULLWIDTH_ALNUM)).strip()


TAG_MAX_LENGTH = 50  # Tag.name's


def tag_name(value: str | None) -> str:
    """A tag's name as stored: text cleaned as names are (ＫＯＬ is KOL, spaces collapsed). A longer one than a tag
    holds is refused where a customer's tags are given (the services, the import); a filter's is cut to fit."""
    return clean_text(value)[:TAG_MAX_LENGTH].strip()


def csv_unescape(value: str) -> str:
    """The inverse of `exporter.csv_safe` for the importers: an export opened, corrected and imported again must not
    gain an apostrophe in front of '=HYPERLINK…' or an invoice number '-'."""
    if len(value) > 1 and value[0] == "'" and value[1] in "=+-@\t\r":
        return value[1:]
    return value


# --- phones ------------------------------------------------------------------------------------

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_SERVICE = re.compile(r"^[48]00\d{7}$")  # a 400 / 800 service number (no area code)
# Area codes: 010 and 02x (3 digits), whose subscriber numbers all have 8 digits (Beijing, Shanghai, Guangzhou …:
# 021-1234567 is a digit short), or 0xxx (4 digits) with 7 or 8; optional extension.
_LANDLINE = re.compile(r"^(?=0(?:10|2\d)\d{8}$|0[3-9]\d{2}\d{7,8}$)(0(?:10|2\d|[3-9]\d{2}))(\d{7,8})$")
# what is written before an extension: 转, 分机 (and its Traditional 分機, 轉), ext., x, #
_EXTENSION_MARK = re.compile(r"(?:分机|分機|转|轉|ext\.?|x|#)", re.I)


def _dashed_extension(raw: str) -> tuple[str, str]:
    """(line, extension) of a number whose last group after a dash is an extension because what comes before it is
    a whole landline: 010-12345678-8021, and also as people space the digits, (010) 6915 6115-8021 or
    0571-8888 8888-123 (which were read as one 15-digit number). (raw, "") otherwise: 010-1234-5678 is a number.
    A number from elsewhere the same: +852 2345 6789-123 and +1 415 555 0100-12 are a line and its extension when
    the line is a valid number there and all the digits together are none (+852-9123-4567 is one number)."""
    head, sep, tail = raw.rpartition("-")
    tail = tail.strip()
    if sep and tail.isdigit() and len(tail) <= 6:
        line = _line(head)
        if _LANDLINE.match(line) or (foreign_number(line) is not None and foreign_number(_line(raw)) is None):
            return head, tail
    return raw, ""


def extension(value: str | None) -> str:
    """The extension written after a phone number (010-69156114转8001, …-8001, ext. 8001), digits only; ""
    when there is none. `phone` leaves it out: blind indexes and duplicate checks use the line itself."""
    raw = unicodedata.normalize("NFKC", value or "").strip()
    parts = _EXTENSION_MARK.split(raw, maxsplit=1)
    if len(parts) == 2:
        return re.sub(r"\D", "", parts[1])[:6]
    return _dashed_extension(raw)[1]


# A number from Hong Kong, Macau, Taiwan or abroad is written with its country code: +852 9123 4567, 00852 9123 4567,
# or (852) 9123 4567 when the mainland reading of its digits is no number. It is kept in E.164 (+85291234567), checked
# by the phonenumbers library; a number without a country code is a mainland one, as always.
_COUNTRY_IN_BRACKETS = re.compile(r"^\(\s*\+?\s*([1-9]\d{0,2})\s*\)")
# what a person's mobile and landline accept of another country's numbers (a US/Canada number is either)
_FOREIGN_MOBILE = frozenset({phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE})
_FOREIGN_MOBILE_ONLY = frozenset({phonenumbers.PhoneNumberType.MOBILE})
_FOREIGN_FIXED = frozenset({phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE})


def _e164(digits: str) -> str:
    """`+` and the digits of a number written with another country's code, in E.164 (+44 (0)20 … is +4420…)."""
    try:
        number = phonenumbers.parse(digits, None)
    except phonenumbers.NumberParseException:
        return digits
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def foreign_number(digits: str) -> phonenumbers.PhoneNumber | None:
    """The number of another country or region (Hong Kong, Macau, Taiwan, abroad) that `phone` gave in its E.164
    form (+85291234567), when it is a valid number there; None for a mainland number or an invalid one."""
    if not digits or not digits.startswith("+"):
        return None
    try:
        number = phonenumbers.parse(digits, None)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def _foreign_of(digits: str, kinds: frozenset) -> bool:
    number = foreign_number(digits)
    return number is not None and phonenumbers.number_type(number) in kinds


def phone(value: str | None) -> str:
    """Digits only, without the +86 / 0086 country prefix: the form blind indexes are built on. A number written
    with another country's code (+852 9123 4567, 00852 9123 4567) is `+` and its digits, in E.164 (+85291234567)."""
    if not value:
        return ""
    raw = unicodedata.normalize("NFKC", value).strip()
    raw = _EXTENSION_MARK.split(raw, maxsplit=1)[0]
    return _line(_dashed_extension(raw)[0])  # 010-12345678-123: the last group is the extension


def _line(raw: str) -> str:
    """`phone` of a number written without an extension (NFKC-folded already)."""
    raw = raw.strip()
    digits = re.sub(r"\D", "", raw)
    if raw.startswith("+") and not raw.startswith("+86"):
        return _e164("+" + digits)  # another country's number (+1 415 …): never read as a Chinese one
    if digits.startswith("00") and not digits.startswith("0086"):
        return _e164("+" + digits[2:])  # 00852 …: no mainland number starts with 00
    if raw.startswith("+86") or (digits.startswith("0086") and len(digits) > 11):
        digits = digits[2:] if raw.startswith("+86") else digits[4:]
        if not digits.startswith("0") and not (digits.startswith("1") and len(digits) == 11) and not _SERVICE.match(digits):
            digits = "0" + digits  # +86 10 1234 5678, 0086-10-12345678 → 010 1234 5678 (+86 400 … stays 400 …)
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    m = _COUNTRY_IN_BRACKETS.match(raw)
    if m and m.group(1) != "86" and not (_MOBILE.match(digits) or _LANDLINE.match(digits) or _SERVICE.match(digits)):
        # (852) 9123 4567: a country code in brackets, read so only when the digits are no mainland number
        if foreign_number(_e164("+" + digits)) is not None:
            return _e164("+" + digits)
    return digits


def phone_readings(value: str | None, written: str | None = None) -> list[str]:
    """What a number looked up (the search box, the desk's queue search) may be stored as, the likelier first: its
    `phone`, and for one written with another country's code without a + (852-9123-4567, (852) 9123 4567 once the
    search dropped its brackets) whose digits make no mainland number, the number there in E.164 (+85291234567).
    `written`: the number as typed, when `value` is without its spaces and dashes (the search's compact form): one
    written as a free text's mask reads a number from elsewhere (1-415-555-0100, 1 (415) 555-0100 — whose digits
    also make a mainland 141… — is +14155550100 first)."""
    digits = phone(value)
    readings = [digits]
    if digits.isdigit() and not (_MOBILE.match(digits) or _LANDLINE.match(digits) or _SERVICE.match(digits)):
        there = _e164("+" + digits)
        if foreign_number(there) is not None:
            readings = [there, digits]
    grouped = _grouped_reading(value if written is None else written)
    if grouped is not None and grouped not in readings:
        readings.insert(0, grouped)
    return readings


def _grouped_reading(written: str | None) -> str | None:
    """The number of another country, in E.164, that a whole text is when written with its country's code and
    without its + (1-415-555-0100, 44 20 7946 0958), as `mask_contacts` reads one; None when it is none."""
    folded = _EXTENSION_MARK.split(unicodedata.normalize("NFKC", written or ""), maxsplit=1)[0].strip()
    if not folded or folded.startswith("+"):
        return None
    for start, end, number in _foreign_numbers_in(folded):
        if start == 0 and end == len(folded):
            return _format_e164(number)
    return None


MOBILE_EXTENSION_MESSAGE = _(
    "A mobile number takes no extension: enter the number alone. Extensions (转123) belong to landlines."
)


def _mobile_with_extension(value: str, line: str, foreign: frozenset = _FOREIGN_MOBILE) -> bool:
    """Whether a mobile number (`line`, its digits) is written with an extension after it: 13800138000转123,
    13800138000 ext. 12, 13800138000-123, +852 9123 4567-8. `foreign`: the kinds of another country's numbers
    read as mobiles (a US or Canadian number, either kind, is a mobile in a mobile's field only)."""
    if (_MOBILE.match(line) or _foreign_of(line, foreign)) and extension(value):
        return True
    head, sep, tail = unicodedata.normalize("NFKC", value or "").strip().rpartition("-")
    tail = tail.strip()
    return bool(sep) and tail.isdigit() and len(tail) <= 6 and bool(_MOBILE.match(phone(head)))


MOBILE_MESSAGE = _(
    "Enter a valid mainland mobile (11 digits starting with 13–19), or a mobile from elsewhere with its country code, "
    "e.g. +852 9123 4567."
)
LANDLINE_MESSAGE = _(
    "Enter a valid landline with its area code, e.g. 010-12345678 or 0755-1234567, or a landline from elsewhere "
    "with its country code, e.g. +852 2812 3456."
)
PHONE_MESSAGE = _(
    "Enter a valid China mobile number, landline with area code or 400/800 number, or a number from elsewhere with "
    "its country code, e.g. +852 9123 4567."
)


def validate_mobile(value: str) -> str:
    """The mobile's 11 digits, or another country's mobile in E.164 (+85291234567). An extension after it is
    refused, not dropped: a mobile has none (an extension belongs to a landline), and the import, the form and the
    API kept the number without it, without a word. 9123 4567 without +852 is refused: it is read as mainland."""
    digits = phone(value)
    if _mobile_with_extension(value, digits):
        raise ValidationError(MOBILE_EXTENSION_MESSAGE, code="mobile_extension")
    if _MOBILE.match(digits) or _foreign_of(digits, _FOREIGN_MOBILE):
        return digits
    raise ValidationError(MOBILE_MESSAGE, code="invalid_mobile")


def validate_landline(value: str) -> str:
    """A mainland landline's digits with its area code, or another country's fixed line in E.164 (+85228123456)."""
    digits = phone(value)
    if _LANDLINE.match(digits) or _foreign_of(digits, _FOREIGN_FIXED):
        return digits
    raise ValidationError(LANDLINE_MESSAGE, code="invalid_landline")


def validate_any_phone(value: str) -> str:
    """The digits of a mobile, a landline with its area code or a 400/800 number, or any valid number of another
    country in E.164 (+85291234567). A mobile written with an extension (13800138000转123, 13800138000-123,
    13800138000 ext 123) is refused as the person's mobile is: it has none, and an institution's phone or a ticket's
    caller phone kept it as typed, a number nobody could call. A landline's extension stays accepted (the callers
    keep it: `with_extension`): +1 415 555 0100-12, a US number that may be either, is a line with its extension."""
    digits = phone(value)
    if _mobile_with_extension(value, digits, _FOREIGN_MOBILE_ONLY):
        raise ValidationError(MOBILE_EXTENSION_MESSAGE, code="mobile_extension")
    if _MOBILE.match(digits) or _LANDLINE.match(digits) or _SERVICE.match(digits) or foreign_number(digits):
        check_extension(value)
        return digits
    raise ValidationError(PHONE_MESSAGE, code="invalid_phone")


def with_extension(digits: str, value: str) -> str:
    """A validated number's digits with the extension written after it in `value` (01012345678转8021), as the
    services store a landline: the extension is part of the contact detail, not noise. `phone` (blind indexes,
    duplicate checks) still reads the line without it."""
    ext = extension(value)
    return f"{digits}转{ext}" if ext else digits


EXTENSION_MESSAGE = _(
    "Write the extension as digits alone after the number, e.g. 010-12345678 转 8021 (at most 6 digits); notes "
    "belong in the notes."
)
_CLEAN_EXTENSION = re.compile(r"[\s:：.]*(?:\d{1,6}[\s.。]*)?")


def check_extension(value: str) -> None:
    """What follows an extension mark (转, 分机, ext, #) is the extension's digits alone: "010-12345678 转 1234，工作日
    9:00–17:00" gave the extension 123490, the digits of the note run together, stored without a word."""
    parts = _EXTENSION_MARK.split(unicodedata.normalize("NFKC", value or "").strip(), maxsplit=1)
    if len(parts) == 2 and not _CLEAN_EXTENSION.fullmatch(parts[1]):
        raise ValidationError(EXTENSION_MESSAGE, code="invalid_extension")


def validate_landline_with_extension(value: str) -> str:
    """`validate_landline`, keeping an extension given after the number (010-12345678-8021, 010-12345678 转 8021)."""
    digits = validate_landline(value)
    check_extension(value)
    return with_extension(digits, value)


def phone_key(value: str | None) -> str:
    """A number as two spellings of it compare equal, extension included: 010-1234 5678 转8021 is 01012345678转8021."""
    return with_extension(phone(value), value or "") if value else ""


def format_phone(digits: str) -> str:
    """138 0013 8000 / 010-12345678 style for display; a stored extension (01012345678转8021) follows as
    010-12345678 转8021. Another country's number in its international format: +852 9123 4567."""
    if "转" in digits:
        line, _sep, ext = digits.partition("转")
        if (line.isdigit() or line.startswith("+")) and ext.isdigit():
            return f"{format_phone(line)} 转{ext}"
    if digits.startswith("+"):
        try:
            number = phonenumbers.parse(digits, None)
        except phonenumbers.NumberParseException:
            return digits
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    if _MOBILE.match(digits):
        return f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    m = _LANDLINE.match(digits)
    if m:
        return f"{m.group(1)}-{m.group(2)}"
    return digits


def email(value: str | None) -> str:
    """An address as it is stored, compared and blind-indexed (core.addresses.canonical: width-folded, without
    invisible characters, lower-cased, its domain in Unicode) — the same for the customer records and the desk."""
    from pharmacrm.core.addresses import canonical

    return canonical(value)


def validate_email_address(value: str) -> str:
    """The address in its stored form, or ValidationError. 张三@公司.cn too (RFC 6531), as the service desk takes
    it: a customer record refused it, so that customer's tickets were never linked to their record."""
    from pharmacrm.core.addresses import validate_address

    value = email(value)
    try:
        validate_address(value)
    except ValidationError:
        raise ValidationError(_("Enter a valid e-mail address."), code="invalid_email") from None
    return value


# --- lengths -----------------------------------------------------------------------------------

# one message per field, naming it: the import's error report, the forms' inline errors and the API's field errors
# all say it in these words. The key is the field's (`person_name`: a person's name, whose word differs)
TOO_LONG = {
    "name": _("The name is too long: at most %(max)s characters (it has %(n)s)."),
    "person_name": pgettext_lazy("person", "The name is too long: at most %(max)s characters (it has %(n)s)."),
    "short_name": _("The short name is too long: at most %(max)s characters (it has %(n)s)."),
    "legal_representative": _(
        "The legal representative's name is too long: at most %(max)s characters (it has %(n)s)."
    ),
    "title": _("The title is too long: at most %(max)s characters (it has %(n)s)."),
    "external_id": _("The external id is too long: at most %(max)s characters (it has %(n)s)."),
    "address": _("The address is too long: at most %(max)s characters (it has %(n)s)."),
    "home_address": _("The home address is too long: at most %(max)s characters (it has %(n)s)."),
    "evidence": _("The evidence is too long: at most %(max)s characters (it has %(n)s)."),
    "tag": _("A tag is too long: at most %(max)s characters (it has %(n)s)."),
}


# a name of punctuation or symbols alone (（）, ---, ···) names nothing: nobody finds it, and it cannot be told apart
NAME_WITHOUT_WORD = _(
    "The name must contain a letter, a Chinese character or a digit: punctuation and symbols alone are not a name."
)


def check_has_word(value: str) -> str:
    """`value` when it holds a letter (a Chinese character is one) or a digit, or is empty; else ValidationError
    (code `name_no_word`). Read as the search reads it (NFKC): ㍿ is 株式会社."""
    if value and not any(unicodedata.category(c)[0] in "LN" for c in unicodedata.normalize("NFKC", value)):
        raise ValidationError(NAME_WITHOUT_WORD, code="name_no_word")
    return value


def check_length(field: str, value: str, limit: int) -> str:
    """`value`, as it is stored, when it has at most `limit` characters; else ValidationError (code
    `<field>_too_long`). A longer value is refused, never cut to fit."""
    if len(value) > limit:
        raise ValidationError(TOO_LONG[field] % {"max": limit, "n": len(value)}, code=f"{field}_too_long")
    return value


# --- 统一社会信用代码 (GB 32100-2015) ---------------------------------------------------------

CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_CREDIT = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")


def credit_code_check_char(first17: str) -> str:
    total = sum(CREDIT_ALPHABET.index(c) * w for c, w in zip(first17, CREDIT_WEIGHTS, strict=True))
    return CREDIT_ALPHABET[(31 - total % 31) % 31]


def credit_code(value: str | None) -> str:
    """A credit code (or ID card number) as stored and compared: full-width and lower-case read as ASCII capitals,
    without the spaces and invisible characters that come along when it is copied from a web page or WeChat."""
    return unicodedata.normalize("NFKC", value or "").translate(_INVISIBLE).strip().upper().replace(" ", "")


def validate_credit_code(value: str) -> str:
    code = credit_code(value)
    if len(code) != 18:
        raise ValidationError(
            _("The unified social credit code must have 18 characters (it has %(n)d).") % {"n": len(code)},
            code="credit_code_length",
        )
    if not _CREDIT.match(code):
        raise ValidationError(
            _("The unified social credit code contains characters it cannot have (I, O, S, V, Z are never used)."),
            code="credit_code_chars",
        )
    if credit_code_check_char(code[:17]) != code[17]:
        raise ValidationError(
            _("The unified social credit code's check character is wrong: please check for a typing error."),
            code="credit_code_checksum",
        )
    return code


def make_credit_code(body17: str) -> str:
    """Complete 17 characters with their check character (demo and test data)."""
    return body17 + credit_code_check_char(body17)


# --- masking -----------------------------------------------------------------------------------

MASK = "****"


def mask_phone(digits: str) -> str:
    """138****8000; another country's number shows its country code and the last four digits at most
    (+852 ****4567)."""
    digits = digits.partition("转")[0] if digits else digits  # the line, not a stored extension (…转8021)
    if not digits:
        return ""
    if digits.startswith("+"):
        try:
            number = phonenumbers.parse(digits, None)
        except phonenumbers.NumberParseException:
            return "+" + MASK
        national = phonenumbers.national_significant_number(number)
        return f"+{number.country_code} {MASK}{national[-4:] if len(national) >= 8 else national[-2:]}"
    if len(digits) >= 11:
        return digits[:3] + MASK + digits[-4:]
    return digits[:3] + MASK + digits[-2:]


def mask_email(value: str) -> str:
    if not value or "@" not in value:
        return MASK if value else ""
    local, domain = value.split("@", 1)
    return f"{local[:1]}***@{domain}"


_ADDRESS_IN_TEXT = re.compile(r"[\w.!#$%&*+/=?^~-]+@[\w-]+(?:\.[\w-]+)+")


def mask_addresses(text: str) -> str:
    """Every e-mail address in a free text (an SMTP server's refusal, a log line) masked as mask_email
    does: 550 5.1.1 <w***@example.com>: User unknown."""
    return _ADDRESS_IN_TEXT.sub(lambda m: mask_email(m.group(0)), text or "")


# contact details inside a free text: an ID card number, a mobile (+86, spaces or dashes allowed), a landline with its
# area code (in brackets too); digits on either side make it something else (an order or batch number)
_ID_NUMBER_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
# what names an ID card number written just before it (身份证 1101…, 证件号码：1101…, ID no. 1101…)
_ID_LABEL_BEFORE = re.compile(
    r"(?:身份证|身份證|证件|證件|(?<![A-Za-z])ID(?:\s*(?:card|no\.?|number))?)(?:号码|號碼|编号|編號|号|號)?"
    r"\s*(?:[:：#]|为|是)?\s*$",
    re.IGNORECASE,
)
_MOBILE_IN_TEXT = re.compile(r"(?<![0-9])(?:(?:\+|00)86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]){8}(?![0-9])")
_LANDLINE_IN_TEXT = re.compile(
    r"(?<![0-9-])(?:0[1-9][0-9]{1,2}|\(0[1-9][0-9]{1,2}\))[ -]?[0-9]{3,4}[ -]?[0-9]{4}(?![0-9])"
)
# full-width forms (１３８, ＠, ＋, －, the ideographic space) read as their ASCII letters, one character for one: a
# match in the folded text is at the same place in the text as typed, and only the match is replaced
_FULL_WIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
# an address written in Latin letters right after Chinese words (邮箱zhang@example.com) starts at its first letter
_LATIN_ADDRESS_IN_TEXT = re.compile(r"(?<=[^\x00-\x7f])[A-Za-z0-9.!#$%&*+/=?^~_-]+@[\w-]+(?:\.[\w-]+)+")


def _id_numbers_in(folded: str):
    """(start, end, masked) of the ID card numbers of a (full-width folded) text: 18 characters that are a resident
    ID card number (GB 11643: its check character fits and its birth date is a real day, valid_id_card), or that the
    words just before name one (身份证 1101…, ID 1101…: one mistyped is still a person's). An 18-digit credit code
    (统一社会信用代码 91110108710001554X), an order number or another run of 18 digits is none and is left."""
    for m in _ID_NUMBER_IN_TEXT.finditer(folded):
        value = m.group(0)
        if valid_id_card(value.upper()) or _ID_LABEL_BEFORE.search(folded, max(0, m.start() - 20), m.start()):
            yield m.start(), m.end(), value[:3] + "*" * 11 + value[-4:]


def _collect(spans: list[tuple[int, int, str]], found) -> None:
    """Add (start, end, masked) of each one found that overlaps none of `spans` already there."""
    for start, end, masked in found:
        if not any(s < end and start < e for s, e, _ in spans):
            spans.append((start, end, masked))


def _matches(pattern: re.Pattern, folded: str, mask):
    return ((m.start(), m.end(), mask(m.group(0))) for m in pattern.finditer(folded))


# what names the number written just after it another identifier than a phone or an ID card number: an order, batch,
# invoice or contract number in words (订单号 13800138000, 批号：85291234567, invoice no. 13800138000), or the letters
# of an identifier's prefix attached to it by a dash (SO-13800138000, as the project's own TK-, HZ-, IA-, HY- numbers
# are written) or one the project writes without (FP13800138000, an invoice; XS…, an order) — but not the letters of
# a phone's label (TEL-13800138000) or an ID's, nor a name in capitals (WANG13800138000)
_OTHER_IDENTIFIER_BEFORE = re.compile(
    r"(?:(?:订单|訂單|单|單|单据|單據|批|批次|发票|發票|合同|流水|货|貨|序列|证书|證書|注册证|註冊證|批准文|条码|條碼)"
    r"(?:编号|編號|号码|號碼|号|號|代码|代碼)|订单|訂單|批次|发票|發票|编号|編號|信用代码|信用代碼"
    r"|(?<![A-Za-z])(?i:order|batch|lot|invoice|serial|tracking|ref|reference)(?:\s*(?i:no\.?|number|num\.?|#))?"
    r"|(?<![A-Za-z])(?:PO|SO|SN)(?:\s*(?i:no\.?|number|#))?)\s*(?:[:：#]|为|為|是)?\s*$"
    r"|(?<![A-Za-z])(?:(?!(?:TEL|FAX|MOB|MP|PH|CELL|HP|QQ|WX|VX|ID|T|M|F)-$)[A-Z]{1,4}-|FP|XS|YP|DD)$"
)


def _named_otherwise(folded: str, start: int) -> bool:
    """Whether the number found at `start` of a (full-width folded) text is named another identifier just before
    it (订单号 13800138000, SO-85291234567): an order or a batch number in the digits of a phone is none. A number
    written with its + (订单联系人 +852 …) or named an ID card number (证件编号 1101…) is one still."""
    if folded[start : start + 1] == "+":
        return False
    before = max(0, start - 30)
    return bool(_OTHER_IDENTIFIER_BEFORE.search(folded, before, start)) and not _ID_LABEL_BEFORE.search(
        folded, before, start
    )


def _unless_named_otherwise(folded: str, found):
    """The (start, end, masked) of `found` but those named another identifier just before them."""
    return ((start, end, masked) for start, end, masked in found if not _named_otherwise(folded, start))


def _mainland_phones_in(folded: str, spans: list[tuple[int, int, str]]) -> None:
    """The mainland phone numbers of a (full-width folded) text, added to `spans`: a mobile, a landline with its
    area code."""
    mobiles = _matches(_MOBILE_IN_TEXT, folded, lambda v: mask_phone(phone(v)))
    landlines = _matches(_LANDLINE_IN_TEXT, folded, lambda v: mask_phone(re.sub(r"[ ()-]", "", v)))
    _collect(spans, _unless_named_otherwise(folded, mobiles))
    _collect(spans, _unless_named_otherwise(folded, landlines))


# another country's code written without its +: in brackets ((852) 9123 4567, 2 or 3 digits: (1) is a list's first
# item), after 00 (00852 9123 4567), or, for Hong Kong, Macau and Taiwan, before the number (852-9123-4567); any other
# country's code before its number's groups (1-415-555-0100, 1 (415) 555-0100, 44 20 7946 0958), read as a number
# only when written in the groups the number is written in there (`_grouped_as_there`). Never the second group of
# a number (415 in 1 415 …, 555 in 1 (415) 555 …), nor digits after a dash, a dot or a slash (TK-2026-000123, 3.1 415 …)
_CODE_WITHOUT_PLUS = re.compile(
    r"(?<![0-9A-Za-z+)])(?<![0-9)][ .-])(?:(?P<bracketed>\(\s*(?!86\s*\))[1-9][0-9]{1,2}\s*\))"
    r"|(?P<zeros>00)(?=[1-9])(?!86)|(?P<bare>85[23]|886)(?=[ -]?[0-9])"
    r"|(?<![-./,])(?P<grouped>(?!86[ .(-])[1-9][0-9]{0,2})(?=[ .-]\(?[0-9]|\([0-9]))"
)
_CODE_BEFORE = re.compile(r"\+\s*[0-9]{1,3}[\s-]*$")
# the dash before a line's extension (…0100-12, …6789 - 123): 1 to 6 digits after it, and no more
_DASH_BEFORE_EXTENSION = re.compile(r"(?:(?<=[0-9])|(?<=[0-9] ))-(?=\s?[0-9]{1,6}(?![0-9]|\s?-\s?[0-9]))")


def _foreign_phones_in(folded: str, spans: list[tuple[int, int, str]]) -> None:
    """The numbers of another country of a (full-width folded) text, added to `spans` (after the e-mail addresses:
    zhang+85291234567@example.com is an address).

    One written with its code (请回电 +852 9123 4567) that may be a number there (POSSIBLE, not only a valid one) is
    masked, as any 1[3-9]… of 11 digits is. One whose code is written without its + ((852) 9123 4567, 00852 9123 4567,
    852-9123-4567) is found with a + written there, in a copy of the text of the same length, and masked when it is
    a valid number — not only a possible one, as nothing else says it is a phone (an order number 852-1234-5678 is
    none). A line with its extension after a dash (+1 415 555 0100-12), which the library reads as one number too
    long to be any, is found with an x written for the dash, when the line is a valid number."""
    for start, end, number in _foreign_numbers_in(folded):
        _collect(spans, _unless_named_otherwise(folded, [(start, end, mask_phone(_format_e164(number)))]))


_NEXT_GROUP = re.compile(r"[ .-]?\(?([0-9]{1,5})(?![0-9])\)?")


def _groups_make_a_number(folded: str, code: str, at: int) -> bool:
    """Whether the groups of digits written from `at` after a country's code without its + (1-415-555-0100 from the
    first dash) begin with a valid number there written in its groups: checked before the library looks for one
    in the text, so that a text of figures (1 250 000, a table's 1 2 3 …) costs no parse."""
    groups: list[str] = []
    for _group in range(6):
        g = _NEXT_GROUP.match(folded, at)
        if g is None:
            return False
        groups.append(g.group(1))
        at = g.end()
        if 6 <= sum(map(len, groups)) <= 14:
            try:
                number = phonenumbers.parse("+" + code + "".join(groups), None)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number) and _grouped_as_there(" ".join([code, *groups]), number):
                return True
    return False


def _grouped_as_there(written: str, number: phonenumbers.PhoneNumber) -> bool:
    """Whether a number is written in the groups of its international format there, its country's code first (1 415
    555 0100, 1-415-555-0100, 1 (415) 555-0100 and 44 20 7946 0958 are; 1 4155 550 100 and 4 4207 946 0958 are not),
    whatever the marks between them: digits that only happen to make a valid number are seldom grouped as one."""
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return re.findall(r"[0-9]+", written) == re.findall(r"[0-9]+", formatted)


def _foreign_numbers_in(folded: str) -> list[tuple[int, int, phonenumbers.PhoneNumber]]:
    """(start, end, number) of the numbers of another country `_foreign_phones_in` finds in a (full-width folded)
    text, in the order they are to be collected (those with an extension after a dash first): overlapping ones too."""
    written: dict[int, tuple[int, bool]] = {}  # where a + was written in the copy → (where the number starts in the
    # text, whether it is read only when written in the groups of a number there)
    copy = list(" " + folded)  # one character ahead: a + before a code at the start of the text
    for m in _CODE_WITHOUT_PLUS.finditer(folded):
        if _CODE_BEFORE.search(folded, 0, m.start()):
            continue  # +1 (415) 555-0100: an area code in brackets after the country's code
        if m.group("grouped") and not _groups_make_a_number(folded, m.group("grouped"), m.end()):
            continue
        at = m.start() + 1
        if m.group("bracketed"):
            code = re.sub(r"\D", "", m.group("bracketed"))
            copy[at : m.end() + 1] = list(("+" + code).ljust(m.end() - m.start()))
            written[at] = (m.start(), False)
        elif m.group("zeros"):
            copy[at : at + 2] = [" ", "+"]
            written[at + 1] = (m.start(), False)
        else:
            copy[at - 1] = "+"
            written[at - 1] = (m.start(), bool(m.group("grouped")))
    if "+" not in folded and not written:
        return []
    text = "".join(copy)

    def found(text: str, leniency, extension: bool):
        for m in phonenumbers.PhoneNumberMatcher(text, None, leniency=leniency):
            if extension and not m.number.extension:
                continue
            starts = [start for plus, start in written.items() if m.start <= plus < m.end]
            if starts and not phonenumbers.is_valid_number(m.number):
                continue
            if starts and starts[0][1] and not _grouped_as_there(m.raw_string, m.number):
                continue
            yield (starts[0][0] if starts else m.start - 1, m.end - 1, m.number)

    return [*found(_DASH_BEFORE_EXTENSION.sub("x", text), phonenumbers.Leniency.VALID, True),
            *found(text, phonenumbers.Leniency.POSSIBLE, False)]


def _format_e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, masked) of every phone number in a free text, in order, as mask_contacts finds them: a mainland
    mobile or landline, a number from Hong Kong, Macau, Taiwan or abroad; full-width digits too (a span of the text
    as typed). What a partner's ICSR withholds (safety.e2b.export)."""
    folded = (text or "").translate(_FULL_WIDTH)
    spans: list[tuple[int, int, str]] = []
    _mainland_phones_in(folded, spans)
    _foreign_phones_in(folded, spans)
    return sorted(spans)


def _contact_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, masked) of every contact detail in `text`, in order."""
    folded = text.translate(_FULL_WIDTH)
    spans: list[tuple[int, int, str]] = []
    _collect(spans, _unless_named_otherwise(folded, _id_numbers_in(folded)))
    _mainland_phones_in(folded, spans)
    _collect(spans, _matches(_LATIN_ADDRESS_IN_TEXT, folded, mask_email))
    _collect(spans, _matches(_ADDRESS_IN_TEXT, folded, mask_email))
    _foreign_phones_in(folded, spans)
    return sorted(spans)


def mask_contacts(text: str) -> str:
    """Every e-mail address, mobile or landline number and ID card number in a free text (a ticket's subject as a
    customer typed it on the web form: 请回电 138 0013 8000; a customer's notes) masked as the pages mask them:
    请回电 138****8000, z***@example.com, 110***********1234. Full-width digits and ＠ are found as well; the
    rest of the text is kept as typed. The one function for every free text shown to a role that sees personal
    data masked."""
    text = text or ""
    for start, end, mask in reversed(_contact_spans(text)):
        text = text[:start] + mask + text[end:]
    return text


# the digits a cut left at the end of a text (…请回电 1391234): a number cut mid-way is no whole one mask_contacts finds.
# Four digits or more (every mask shows the first three) after no other digit, letter or mask, spaces, dashes and an
# area code's brackets between them, a +86 before them
_CUT_AT_END = re.compile(r"(?<![0-9A-Za-z*])((?:(?:\+|00)86[ -]?)?)(\(?[0-9](?:[ ()-]{0,2}[0-9]){3,})$")
# the first two digits of an ID card number (its province) and most digits a cut one keeps; a mobile's and a
# landline's beginnings and most digits before the whole number
_ID_PROVINCES = frozenset("11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 "
                          "65 71 81 82 83 91".split())  # fmt: skip


def _cut_contact(digits: str) -> bool:
    """Whether `digits` can be the beginning of a mobile, a landline with its area code or an ID card number."""
    return bool(
        (re.match(r"1[3-9]", digits) and len(digits) < 11)
        or (re.match(r"0[1-9]", digits) and len(digits) < 12)
        or (digits[:2] in _ID_PROVINCES and len(digits) < 18)
    )


# an e-mail address cut before its domain ends (zhang.san@exa, zhang.san@): no whole address mask_contacts finds, and
# its local part — the name — was shown. What a cut left after the @, up to the end of the text
_CUT_ADDRESS_AT_END = re.compile(r"([\w.!#$%&*+/=?^~-]+)@([\w.-]*)$")
_LATIN_LOCAL = re.compile(r"[A-Za-z0-9.!#$%&*+/=?^~_-]+$")


def _cut_address(shown: str) -> str | None:
    """`shown` with an e-mail address cut at its end masked as mask_email masks a whole one (zhang.san@exa →
    z***@exa); None when it does not end in one. An address written in Latin letters right after Chinese words
    (邮箱zhang.san@exa) starts at its first letter, as for a whole one."""
    m = _CUT_ADDRESS_AT_END.search(shown.translate(_FULL_WIDTH))
    if not m:
        return None
    start, local = m.start(1), m.group(1)
    latin = _LATIN_LOCAL.search(local)
    if latin is not None and latin.start() > 0:
        start, local = start + latin.start(), latin.group(0)
    return shown[:start] + mask_email(f"{local}@{m.group(2)}")


def mask_contacts_cut(text: str, limit: int) -> str:
    """A free text as mask_contacts shows it, cut at `limit` characters (a notification's title): masked before it
    is cut, so that no number is cut in clear. A text that long or longer may also be one stored cut already (a
    notification's title kept at 200 characters before its template was): the digits at its end that can be the
    beginning of a number cut mid-way (请回电 1391234) are masked as well (请回电 139****), and an e-mail address cut
    before its domain ends (zhang.san@exa, zhang.san@) as mask_email masks one (z***@exa); a text shorter than
    `limit` less one character (the space a cut before it may have left, stripped) keeps its last number as typed,
    as do other numbers. An address cut before its @ (zhang.sa) cannot be told from a word and is kept."""
    text = text or ""
    shown = mask_contacts(text)[:limit]
    if len(text) < limit - 1:
        return shown
    address = _cut_address(shown)
    if address is not None:
        return address
    m = _CUT_AT_END.search(shown.translate(_FULL_WIDTH))
    if not m:
        return shown
    run = m.group(2)  # 30 1391234: the number may start at any of its groups (here the second)
    for start in (i for i, c in enumerate(run) if c.isdigit() and (i == 0 or not run[i - 1].isdigit())):
        digits = re.sub(r"[^0-9]", "", run[start:])
        if len(digits) >= 4 and _cut_contact(digits):
            at = m.start(2) + start - (1 if start and run[start - 1] == "(" else 0)
            if _named_otherwise(shown.translate(_FULL_WIDTH), at):
                return shown  # 订单号 1391234…: an order number cut short
            return shown[:at] + digits[:3] + MASK
    return shown


def restore_contacts(text: str, stored: str) -> str:
    """A free text edited by someone who was shown `stored` masked (mask_contacts): each masked detail still in it
    is put back as stored, in order, so that saving the edit (or the unchanged text) keeps the real numbers and
    addresses instead of their masks. Nothing else in the text is changed."""
    text = text or ""
    if not stored or "*" not in text:
        return text
    out, at = [], 0
    for start, end, mask in _contact_spans(stored):
        found = text.find(mask, at)
        if found < 0:
            continue
        out.append(text[at:found] + stored[start:end])
        at = found + len(mask)
    return "".join(out) + text[at:]


def mask_text(value: str) -> str:
    return MASK if value else ""


# What the masks above (and core.personal.MASKERS, exports, previews, placeholders) produce, per personal field:
# such a value read back from an export or a form must never overwrite the real one.
_MASKED_PHONE = re.compile(r"^[\d\s+()-]*\*{3,}[\d\s()-]*$")
_MASKED = {
    "mobile": _MASKED_PHONE,
    "landline": _MASKED_PHONE,
    "email": re.compile(r"^[^@\s]?\*{3,}@\S*$|^\*{3,}$"),  # c***@126.com; **** for a value without @
    "birthday": re.compile(r"^\*{4}[-/.]\d{1,2}[-/.]\d{1,2}$|^\*{3,}$"),  # ****-03-15
    "home_address": re.compile(r"^\*{3,}$"),
    "id_number": re.compile(r"^[0-9A-Za-z]{0,6}\*{4,}[0-9A-Za-z]{0,4}$"),  # 110***********1234
}
MASKED_MESSAGE = _("This value is masked (copied from a masked display or export): enter the full value.")


def is_masked(field: str, value) -> bool:
    """True when `value` is what masking shows for the personal field `field` (e.g. 138****8000, c***@126.com)."""
    if not isinstance(value, str) or "*" not in value and "＊" not in value:
        return False
    text = unicodedata.normalize("NFKC", value).strip()
    pattern = _MASKED.get(field)
    return bool(pattern and pattern.match(text))


def check_not_masked(field: str, value) -> None:
    if is_masked(field, value):
        raise ValidationError(MASKED_MESSAGE, code="masked")


# --- birthdays ---------------------------------------------------------------------------------

EARLIEST_BIRTHDAY = datetime.date(1900, 1, 1)


def validate_birthday(value: datetime.date, today: datetime.date | None = None) -> datetime.date:
    """A plausible birthday: not in the future and not before 1900-01-01 (forms, API and imports)."""
    from django.utils import timezone

    if value > (today or timezone.localdate()):
        raise ValidationError(_("A birthday cannot be in the future."), code="future")
    if value < EARLIEST_BIRTHDAY:
        raise ValidationError(
            _("A birthday cannot be before %(date)s.") % {"date": EARLIEST_BIRTHDAY.isoformat()},
            code="birthday_too_early",
        )
    return value


# --- 居民身份证号码 (GB 11643) -------------------------------------------------------------------

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def valid_id_card(value: str, today: datetime.date | None = None) -> bool:
    """18 characters whose check character fits and whose birth date (characters 7–14) is a real day, from
    1900 up to today: the check character misses one typing error in eleven, and 19491331 is none of them."""
    from django.utils import timezone

    if not re.match(r"^\d{17}[\dX]$", value or ""):
        return False
    total = sum(int(c) * w for c, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    if _ID_CHECK[total % 11] != value[17]:
        return False
    born = id_card_birth_date(value)
    return born is not None and EARLIEST_BIRTHDAY <= born <= (today or timezone.localdate())


def id_card_birth_date(value: str) -> datetime.date | None:
    """The date of birth an 18-character ID card number encodes (characters 7–14, YYYYMMDD); None when it holds none."""
    if not re.match(r"^\d{17}[\dX]$", value or ""):
        return None
    try:
        return datetime.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return None
