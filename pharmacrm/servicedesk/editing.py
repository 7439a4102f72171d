"""Editing a ticket's details after intake: subject, description, category, product, batch number and
the safety-relevant flag. Only what changed is written; two agents saving the same ticket → the second
gets a ConflictError (HTTP 409) and the page keeps what they typed.

A new category chooses the SLA policy again and rebuilds the clocks from the ticket's history; it does
NOT change the priority or complexity (an agent changes those deliberately, with a reason)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import audit, builtin
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap

from . import services
from .choices import EventKind
from .models import Product, Ticket, TicketCategory

A = AuditEntry.Action
EDITABLE = ("subject", "description", "category", "product", "batch_number", "safety_relevant")
ALIASES = {"batch": "batch_number"}
MAX_DESCRIPTION = 20_000
SHOWN = 200  # characters of a long text kept in the history event


def _category(value) -> TicketCategory:
    if isinstance(value, TicketCategory):
        return value
    category = TicketCategory.objects.filter(code=str(value or ""), active=True).first()
    if category is None and str(value or "").isdecimal():
        category = TicketCategory.objects.filter(pk=int(value), active=True).first()
    if category is None:
        raise ValidationError({"category": [_("Choose a category.")]})
    return category


def _product(value, current_id) -> Product | None:
    if value in (None, ""):
        return None
    product = (
        value
        if isinstance(value, Product)
        else Product.objects.filter(pk=value if str(value).isdecimal() else None).first()
    )
    if product is None or (not product.active and product.pk != current_id):
        raise ValidationError({"product": [_("Choose a product from the catalogue.")]})
    return product


def _bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "on", "yes")
    return bool(value)


def clean_changes(ticket: Ticket, changes: dict) -> dict:
    """The submitted values, checked and converted (objects for category/product); ValidationError
    naming each bad field."""
    errors: dict[str, list[str]] = {}
    out: dict = {}
    for key, value in changes.items():
        field = ALIASES.get(key, key)
        if field not in EDITABLE:
            continue
        try:
            if field == "subject":
                value = (value or "").strip()
                if not value:
                    raise ValidationError({"subject": [_("Describe the request in a few words.")]})
                if len(value) > 200:
                    raise ValidationError({"subject": [_("At most 200 characters.")]})
            elif field == "description":
                # a browser sends a textarea's line breaks as CRLF: the same text, not a change
                value = (value or "").replace("\r\n", "\n").replace("\r", "\n").strip()
                if len(value) > MAX_DESCRIPTION:
                    raise ValidationError(
                        {"description": [_("At most %(max)d characters.") % {"max": MAX_DESCRIPTION}]}
                    )
            elif field == "batch_number":
                value = (value or "").strip()
                if len(value) > 40:
                    raise ValidationError({"batch_number": [_("At most 40 characters.")]})
            elif field == "category":
                value = _category(value)
            elif field == "product":
                value = _product(value, ticket.product_id)
            elif field == "safety_relevant":
                value = _bool(value)
        except ValidationError as e:
            for k, msgs in e.message_dict.items():
                errors.setdefault(k, []).extend(msgs)
            continue
        out[field] = value
    if errors:
        raise ValidationError(errors)
    return out


def _short(value) -> object:
    if isinstance(value, str) and len(value) > SHOWN:
        return value[:SHOWN] + "…"
    return value


def edit_ticket(user, ticket: Ticket, changes: dict, *, version: int | None, reason: str = "") -> Ticket:
    """Apply the changed details; returns the ticket (unchanged, and its version not bumped, when nothing
    differs). ConflictError when someone else saved the ticket since `version` was read."""
    services.require(user, Cap.HANDLE_TICKETS)
    services._check_version(ticket, version)
    values = clean_changes(ticket, changes)
    diff: dict[str, list] = {}
    for field, new in values.items():
        old = getattr(ticket, field)
        if field in ("category", "product"):
            if (old.pk if old else None) != (new.pk if new else None):
                diff[field] = [old, new]
        elif old != new:
            diff[field] = [old, new]
    if "category" in diff and "safety_relevant" not in values and diff["category"][1].safety_relevant:
        if not ticket.safety_relevant:
            diff["safety_relevant"] = [False, True]  # a safety category makes the ticket safety-relevant
    if not diff:
        return ticket
    now = timezone.now()
    reason = (reason or "").strip()[:500]
    with transaction.atomic():
        expected = ticket.version
        fields = []
        for field, (_old, new) in diff.items():
            setattr(ticket, field, new)
            fields.append(f"{field}_id" if field in ("category", "product") else field)
        if "category" in diff:
            ticket.policy = services.select_policy(ticket)
            fields.append("policy_id")
        services._save(ticket, fields, expected)
        if "category" in diff:
            old, new = diff["category"]
            services._event(ticket, EventKind.CATEGORY, user, at=now, data={
                "from": old.code, "to": new.code, "from_name": old.name, "to_name": new.name,
                **({"reason": reason} if reason else {}),
            })  # fmt: skip
        if "product" in diff:
            old, new = diff["product"]
            services._event(ticket, EventKind.PRODUCT, user, at=now, data={
                "from": old.pk if old else None, "to": new.pk if new else None,
                "from_name": str(old) if old else "", "to_name": str(new) if new else "",
                **({"reason": reason} if reason else {}),
            })  # fmt: skip
        plain = {f: [_short(a), _short(b)] for f, (a, b) in diff.items() if f not in ("category", "product")}
        if plain:
            services._event(ticket, EventKind.EDITED, user, at=now,
                            data={"fields": plain, **({"reason": reason} if reason else {})})  # fmt: skip
        if "category" in diff:
            services.rebuild_clocks(ticket, now=now)
        audit_changes = {
            f: ([a.code if a else None, b.code if b else None] if f == "category"
                else [a.pk if a else None, b.pk if b else None] if f == "product" else [_short(a), _short(b)])
            for f, (a, b) in diff.items()
        }  # fmt: skip
        audit.record(
            A.UPDATE, ticket, user=user, changes=audit_changes, **({"reason": reason} if reason else {})
        )
        if diff.keys() & {"subject", "description", "safety_relevant", "category"}:
            from pharmacrm.safety import net

            net.screen_ticket(ticket)
    return ticket


FIELD_LABELS = {
    "subject": gettext_lazy("Subject"),
    "description": gettext_lazy("Description"),
    "batch_number": gettext_lazy("Batch / lot number"),
    "safety_relevant": gettext_lazy("Safety-relevant"),
}


def _shown(value) -> str:
    if isinstance(value, bool):
        return str(_("yes") if value else _("no"))
    return str(value) if value not in (None, "") else "—"


def event_details(e) -> list[tuple[str, str]]:
    """(label, text) lines for the ticket history of the events this module and the conversation write
    (views._event_details adds them)."""
    data = e.data or {}
    out: list[tuple[str, str]] = []
    if e.kind == EventKind.CATEGORY:
        # the names as they were then; a shipped name in the reader's language
        names = [_shown(builtin.shown(data.get(k) or "")) for k in ("from_name", "to_name")]
        out.append((str(_("Category")), f"{names[0]} → {names[1]}"))
    elif e.kind == EventKind.PRODUCT:
        out.append((str(_("Product")), f"{_shown(data.get('from_name'))} → {_shown(data.get('to_name'))}"))
    elif e.kind == EventKind.EDITED:
        for field, pair in (data.get("fields") or {}).items():
            old, new = (list(pair) + [None, None])[:2]
            out.append((str(FIELD_LABELS.get(field, field)), f"{_shown(old)} → {_shown(new)}"))
    elif e.kind == EventKind.ATTACHMENT and data.get("name"):
        out.append((str(_("File")), str(data["name"])))
    return out
