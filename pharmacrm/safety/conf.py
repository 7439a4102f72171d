"""Who the company is in an ICSR (C.3 sender, N.1.3 / N.1.4 batch ids): read from Django settings on each
call, so a deployment (or a test's `settings` fixture) can change them without a restart."""

from __future__ import annotations

from django.conf import settings

DEFAULTS = {
    "SAFETY_SENDER_ORGANISATION": "PharmaCRM 演示药业有限公司",  # C.3.2
    "SAFETY_SENDER_ORG_CODE": "PHARMACRM",  # the company part of C.1.1 ("CN-PHARMACRM-AE-2026-000001")
    "SAFETY_SENDER_ID": "PHARMACRM",  # N.1.3 / N.2.r.2
    "SAFETY_RECEIVER_ID": "NMPA-CDR",  # N.1.4 / N.2.r.3 of a regulatory ICSR
    "SAFETY_PARTNER_RECEIVER_ID": "PARTNER",  # N.1.4 / N.2.r.3 of an ICSR for a licensing partner
}


def _get(name: str) -> str:
    return str(getattr(settings, name, "") or DEFAULTS[name])


def sender_organisation() -> str:
    return _get("SAFETY_SENDER_ORGANISATION")


def sender_org_code() -> str:
    return _get("SAFETY_SENDER_ORG_CODE")


def sender_id() -> str:
    return _get("SAFETY_SENDER_ID")


def receiver_id() -> str:
    return _get("SAFETY_RECEIVER_ID")


def partner_receiver_id() -> str:
    """The receiver of a partner's ICSR: never the regulator's id (the file does not go to the NMPA)."""
    return _get("SAFETY_PARTNER_RECEIVER_ID")
