"""Showing personal data: masked, plain, or revealed with a reason — and every clear read audited."""

from __future__ import annotations

from collections.abc import Iterable

from pharmacrm.customers import normalise

from . import access, audit
from .models import AuditEntry

MASKERS = {
    "mobile": normalise.mask_phone,
    "landline": normalise.mask_phone,
    "email": normalise.mask_email,
    "birthday": lambda v: "****-" + v.strftime("%m-%d") if v else "",
    "home_address": normalise.mask_text,
    "id_number": lambda v: (v[:3] + "*" * 11 + v[-4:]) if v else "",
}


def _plain(field: str, value):
    if field in ("mobile", "landline") and value:
        return normalise.format_phone(value)
    if field == "birthday" and value:
        return value.isoformat()
    return value or ""


def contact_view(user, people: Iterable, *, reveal_reason: str = "", fields=None, purpose: str = "view") -> dict[int, dict]:
    """{person id: {field: shown value, "_masked": bool}} for these people, as this user may see them.

    Callers pass only people the user may see (scoped querysets). Clear values are audited: one
    entry per call, listing the people and fields read."""
    from pharmacrm.customers.models import Person

    fields = tuple(fields or Person.PERSONAL_FIELDS)
    people = list(people)
    mode = access.personal_data_mode(user)
    clear = mode == "plain" or (mode == "reveal" and bool(reveal_reason.strip()))
    out: dict[int, dict] = {}
    read_ids = []
    for p in people:
        row: dict = {"_masked": not clear}
        for f in fields:
            value = getattr(p, f)
            row[f] = _plain(f, value) if not row["_masked"] else MASKERS[f](value) if value else ""
        if not row["_masked"] and any(getattr(p, f) for f in fields):
            read_ids.append(p.pk)
        out[p.pk] = row
    if read_ids:
        audit.record(
            AuditEntry.Action.READ_PERSONAL,
            ("customers.person", str(read_ids[0]) if len(read_ids) == 1 else "", f"{len(read_ids)}"),
            user=user,
            people=read_ids[:1000],
            count=len(read_ids),
            fields=list(fields),
            reason=reveal_reason.strip()[:500],
            purpose=purpose,
        )
    return out
