"""Electronic signatures (21 CFR Part 11 §11.50/§11.200): a signed act names who, when and what it
means, and is given by re-authenticating at that moment — the signer enters a fresh one-time code from
their authenticator app, on top of the signed-in session. Each signature is stored, linked to the object
it approves, and recorded in the hash-chained audit trail.

Used for "approved for submission" and "approved for export" of safety cases, and for the leadership's
decisions on key-account proposals and service plans. Whoever holds one of SIGNING_CAPS may set up an
authenticator app for it (core/views.py, the enrolment page), even when their role signs in without one."""

from __future__ import annotations

import datetime
import hashlib
import json

from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_otp.plugins.otp_totp.models import TOTPDevice

from . import access, audit
from .models import AuditEntry, Signature
from .roles import Cap


class Meaning:
    APPROVED_FOR_SUBMISSION = "approved_for_submission"
    APPROVED_FOR_EXPORT = "approved_for_export"
    APPROVED = "approved"
    REJECTED = "rejected"


MEANING_LABELS = {
    Meaning.APPROVED_FOR_SUBMISSION: gettext_lazy("Approved for submission"),
    Meaning.APPROVED_FOR_EXPORT: gettext_lazy("Approved for export"),
    Meaning.APPROVED: gettext_lazy("Approved"),
    Meaning.REJECTED: gettext_lazy("Rejected"),
}


# Capabilities whose acts are signed: safety exports and submissions, key-account and service-plan decisions.
SIGNING_CAPS = frozenset({Cap.HANDLE_SAFETY, Cap.APPROVE_KEY_ACCOUNTS})


def signs(user) -> bool:
    """Whether the user may do an act that needs their electronic signature."""
    return any(access.can(user, cap) for cap in SIGNING_CAPS)


def may_enrol(user) -> bool:
    """Whether the user may set up an authenticator app: their role needs it at sign-in, or they sign."""
    from .middleware import needs_second_factor

    return needs_second_factor(user) or signs(user)


class _LinkedText(str):
    """A message that is plain text wherever it is used as text (the API's JSON, flash messages, logs) and
    shows `html` — the same words with a link — when a template prints it."""

    def __new__(cls, text: str, html: str = ""):
        obj = super().__new__(cls, text)
        obj._html = html or format_html("{}", text)
        return obj

    def __str__(self):
        return self  # keeps __html__ through ValidationError and the forms' error lists

    def __html__(self):
        return self._html


def _no_authenticator_message(user) -> str:
    if not may_enrol(user):
        return _("Set up your authenticator app before you sign.")
    url = reverse("otp-enrol")
    text = _("Set up your authenticator app before you sign: ask an administrator for an enrolment code, "
             "then enter it on the page %(page)s.")  # fmt: skip
    link = format_html('<a href="{}" id="enrol-link">{}</a>', url, _("Set up your second factor"))
    # escaped first, the link (escaped by format_html) put in afterwards: "%(page)s" has nothing to escape
    return _LinkedText(text % {"page": url}, mark_safe(escape(text) % {"page": link}))


def _digest(sig: Signature) -> str:
    body = json.dumps(
        [sig.user_id, sig.signed_at.isoformat(timespec="microseconds"), sig.meaning, sig.object_type,
         sig.object_id, sig.reason],
        ensure_ascii=False,
    )  # fmt: skip
    return hashlib.sha256(body.encode()).hexdigest()


_FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


def one_time_code(typed: str) -> str:
    """The six ASCII digits of a one-time code as people type or paste it, or "" if it is not one. Authenticator
    apps show "123 456" and a Chinese input method types full-width digits (１２３４５６): spaces (also the
    full-width one) are dropped and full-width digits folded; anything else — letters, dashes, digits of other
    scripts — is not a code."""
    code = "".join((typed or "").split()).translate(_FULL_WIDTH_DIGITS)
    return code if len(code) == 6 and all("0" <= c <= "9" for c in code) else ""


def matching_device(user, code: str) -> TOTPDevice | None:
    """The user's confirmed authenticator whose current, not yet used one-time code `code` is (django-otp refuses
    a code used before and throttles wrong guesses), else None. The devices are locked while the code is checked:
    two requests sending the same code at once (a form sent twice, a code read over someone's shoulder) both read
    it as unused, and both passed."""
    code = one_time_code(code)
    if not code:
        return None
    with transaction.atomic():
        for device in TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").select_for_update():
            allowed, _info = device.verify_is_allowed()
            if allowed and device.verify_token(code):
                return device
    return None


def verify_code(user, code: str) -> bool:
    """True when `code` is a current, not yet used one-time code of one of the user's confirmed
    authenticators (matching_device)."""
    return matching_device(user, code) is not None


SENT_AGAIN_WITHIN = datetime.timedelta(minutes=2)  # longer than a one-time code is taken (its step and tolerance)


def signed_again(user, code: str, meaning: str) -> Signature | None:
    """The user's signature of a moment ago (SENT_AGAIN_WITHIN) when `code` is the one-time code it was given with and
    it is the user's last one, of `meaning`: a signed form sent twice (a double click) — the code used by the first
    sending, which no second signature can be given with. None otherwise (a new code, another signature since, an
    authenticator used since to sign in). Nothing is checked against the code or counted: it is compared with the
    one the user's authenticator accepted last."""
    from django_otp.oath import hotp

    code = one_time_code(code)
    last = Signature.objects.filter(user=user).order_by("-signed_at", "-pk").first()
    if not code or last is None or last.meaning != meaning:
        return None
    if last.signed_at < timezone.now() - SENT_AGAIN_WITHIN:
        return None
    for device in TOTPDevice.objects.filter(user=user, confirmed=True):
        if device.last_t < 0 or (device.last_used_at is not None and device.last_used_at > last.signed_at):
            continue  # never used, or used since the signature (a sign-in)
        if f"{hotp(device.bin_key, device.last_t, digits=device.digits):0{device.digits}d}" == code:
            return last
    return None


def verify(user, code: str, meaning: str, obj) -> None:
    """Re-authenticate `user` with `code` before a signed act. Raises ValidationError on the `otp_code`
    field when the code is wrong, used or the user has no authenticator. Call it OUTSIDE the act's
    transaction: the failure's audit entry and django-otp's throttle must survive the rollback."""
    devices = list(TOTPDevice.objects.filter(user=user, confirmed=True))
    if not devices:
        raise ValidationError({"otp_code": [_no_authenticator_message(user)]})
    if one_time_code(code) and not any(d.verify_is_allowed()[0] for d in devices):
        # django-otp's wait after a wrong code: this one was not even checked, so it is not called wrong either
        wait = _("Too many wrong codes in a row. Wait a few seconds, then enter the current code.")
        raise ValidationError({"otp_code": [wait]})
    if not verify_code(user, code):
        audit.record(
            AuditEntry.Action.LOGIN_FAILED, obj, user=user, signature=meaning, reason="wrong one-time code"
        )
        raise ValidationError(
            {
                "otp_code": [
                    _(
                        "This one-time code is not correct or was already used. Enter the current code "
                        "from your authenticator app."
                    )
                ]
            }  # fmt: skip
        )


def record(user, meaning: str, obj, *, reason: str = "", label: str = "") -> Signature:
    """Store the signature of a user who passed `verify` a moment ago, with its audit entry (inside the
    signed act's transaction, so that a failed act leaves no signature behind)."""
    object_type, object_id, object_repr = audit.object_label(obj)
    with transaction.atomic():
        sig = Signature(
            user=user, signed_at=timezone.now(), meaning=meaning, object_type=object_type,
            object_id=str(object_id), object_label=(label or object_repr)[:200], reason=reason,
        )  # fmt: skip
        sig.digest = _digest(sig)
        sig.save()
        audit.record(
            AuditEntry.Action.SIGN, obj, user=user, signature=meaning, signature_id=sig.pk, digest=sig.digest,
            reason=reason,
        )  # fmt: skip
    return sig


def sign(user, code: str, meaning: str, obj, *, reason: str = "", label: str = "") -> Signature:
    """verify, then record: for an act that is a single write."""
    verify(user, code, meaning, obj)
    return record(user, meaning, obj, reason=reason, label=label)


def intact(sig: Signature) -> bool:
    return sig.digest == _digest(sig)
