"""Electronic signatures (21 CFR Part 11 §11.50/§11.200): a signed act names who, when and what it
means, and is given by re-authenticating at that moment — the signer enters a fresh one-time code from
their authenticator app, on top of the signed-in session. Each signature is stored, linked to the object
it approves, and recorded in the hash-chained audit trail.

Used for "approved for submission" of safety cases; later for approvals of key accounts."""

from __future__ import annotations

import hashlib
import json

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_otp.plugins.otp_totp.models import TOTPDevice

from . import audit
from .models import AuditEntry, Signature


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


def _digest(sig: Signature) -> str:
    body = json.dumps(
        [sig.user_id, sig.signed_at.isoformat(timespec="microseconds"), sig.meaning, sig.object_type,
         sig.object_id, sig.reason],
        ensure_ascii=False,
    )  # fmt: skip
    return hashlib.sha256(body.encode()).hexdigest()


def verify_code(user, code: str) -> bool:
    """True when `code` is a current, not yet used one-time code of one of the user's confirmed
    authenticators (django-otp refuses a code used before and throttles wrong guesses)."""
    code = (code or "").strip().replace(" ", "")
    if not code.isdecimal():
        return False
    for device in TOTPDevice.objects.filter(user=user, confirmed=True):
        allowed, _info = device.verify_is_allowed()
        if allowed and device.verify_token(code):
            return True
    return False


def verify(user, code: str, meaning: str, obj) -> None:
    """Re-authenticate `user` with `code` before a signed act. Raises ValidationError on the `otp_code`
    field when the code is wrong, used or the user has no authenticator. Call it OUTSIDE the act's
    transaction: the failure's audit entry and django-otp's throttle must survive the rollback."""
    if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        raise ValidationError({"otp_code": [_("Set up your authenticator app before you sign.")]})
    if not verify_code(user, code):
        audit.record(AuditEntry.Action.LOGIN_FAILED, obj, user=user, signature=meaning, reason="wrong one-time code")
        raise ValidationError(
            {"otp_code": [_("This one-time code is not correct or was already used. Enter the current code "
                            "from your authenticator app.")]}  # fmt: skip
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
