"""Links between tickets and the merge of duplicates.

A link ties two tickets together (`related`, or `duplicate` from the duplicate to the ticket it repeats);
it is shown on both tickets, whichever way it was made, so a pair is linked at most once. Merging a
duplicate into another ticket closes the duplicate (resolved as "merged into …", then closed, through the
ordinary lifecycle so that its history and SLA clocks stay right), records `merged_into` and a duplicate
link, and writes a "merged" event on both tickets. Nothing moves: the duplicate's messages and
attachments stay on it, and the surviving ticket's page shows them through the link."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from pharmacrm.core import access, audit
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap

from . import services
from .choices import OPEN_STATUSES, EventKind, LinkKind, RootCause, Status
from .models import Ticket, TicketLink

A = AuditEntry.Action
MAX_REASON = 500


def _visible(user, *tickets: Ticket) -> bool:
    if isinstance(user, services.SystemActor):
        return True
    ids = {t.pk for t in tickets}
    return access.tickets_for(user, Ticket.objects.filter(pk__in=ids)).count() == len(ids)


def _not_visible() -> ValidationError:
    return ValidationError({"to_ticket": [_("No such ticket, or you may not see it.")]})


def links_between(a: Ticket, b: Ticket):
    """The links of a pair, in either direction."""
    return TicketLink.objects.filter(
        Q(from_ticket_id=a.pk, to_ticket_id=b.pk) | Q(from_ticket_id=b.pk, to_ticket_id=a.pk)
    )


def links_of(ticket: Ticket):
    """Every link the ticket takes part in, whichever way it was made."""
    return TicketLink.objects.filter(Q(from_ticket_id=ticket.pk) | Q(to_ticket_id=ticket.pk))


def link(user, a: Ticket, b: Ticket, kind: str = LinkKind.RELATED) -> TicketLink:
    """Link ticket `a` to ticket `b` (`duplicate`: `a` repeats `b`). Both must be visible to the user; a
    ticket is never linked to itself, and a pair only once (whichever way round)."""
    services.require(user, Cap.HANDLE_TICKETS)
    if kind not in LinkKind.values:
        raise ValidationError({"kind": [_("Choose how the tickets are related.")]})
    if a.pk == b.pk:
        raise ValidationError({"to_ticket": [_("A ticket cannot be linked to itself.")]})
    if not _visible(user, a, b):
        raise _not_visible()
    now = timezone.now()
    with transaction.atomic():
        # lock-free check, then the unique constraint guards the same direction; the reverse is checked here
        if links_between(a, b).exists():
            raise ValidationError({"to_ticket": [_("These tickets are already linked.")]})
        created = TicketLink.objects.create(
            from_ticket=a, to_ticket=b, kind=kind, created_by=user if getattr(user, "is_authenticated", False) else None
        )
        services._event(a, EventKind.LINKED, user, at=now, data={"ticket": b.number, "link_kind": kind})
        services._event(b, EventKind.LINKED, user, at=now, data={"ticket": a.number, "link_kind": kind,
                                                                 "reverse": True})  # fmt: skip
        audit.record(A.CREATE, created, user=user, changes={"link": [None, [a.number, b.number, kind]]})
    return created


def unlink(user, link_obj: TicketLink) -> None:
    """Remove a link (both tickets must be visible). The duplicate link a merge made stays."""
    services.require(user, Cap.HANDLE_TICKETS)
    a, b = link_obj.from_ticket, link_obj.to_ticket
    if not _visible(user, a, b):
        raise _not_visible()
    if link_obj.kind == LinkKind.DUPLICATE and a.merged_into_id == b.pk:
        raise ValidationError({"link": [_("The link of a merge cannot be removed.")]})
    now = timezone.now()
    with transaction.atomic():
        kind = link_obj.kind
        audit.record(A.DELETE, link_obj, user=user, changes={"link": [[a.number, b.number, kind], None]})
        link_obj.delete()
        services._event(a, EventKind.LINKED, user, at=now, data={"ticket": b.number, "link_kind": kind,
                                                                 "removed": True})  # fmt: skip
        services._event(b, EventKind.LINKED, user, at=now, data={"ticket": a.number, "link_kind": kind,
                                                                 "removed": True, "reverse": True})  # fmt: skip


def merge_refusal(duplicate: Ticket, into: Ticket) -> str | None:
    """Why `duplicate` cannot be merged into `into` (None when it can)."""
    if duplicate.pk == into.pk:
        return _("A ticket cannot be merged into itself.")
    if duplicate.merged_into_id:
        return _("This ticket was already merged into another one.")
    if into.merged_into_id:
        return _("%(number)s was itself merged into another ticket: merge into that one instead.") % {
            "number": into.number
        }
    if into.status == Status.CLOSED:
        return _("%(number)s is closed: reopen it first, or merge into an open ticket.") % {"number": into.number}
    if Ticket.objects.filter(merged_into_id=duplicate.pk).exists():
        return _("Other tickets were merged into this one: merge the other way round.")
    return None


def merge(user, duplicate: Ticket, into: Ticket, *, reason: str, version: int | None = None) -> Ticket:
    """Merge `duplicate` into `into`: the duplicate is closed (resolved as merged, then closed), points to
    the surviving ticket (`merged_into` and a duplicate link), and both tickets get a "merged" event. The
    duplicate's messages and attachments stay where they are. Refused (ValidationError naming `into`) for
    a merge into itself, into a closed ticket, or into a ticket that was itself merged; ConflictError when
    the duplicate changed since `version`."""
    services.require(user, Cap.HANDLE_TICKETS)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": [_("Say why the tickets are duplicates.")]})
    if len(reason) > MAX_REASON:
        raise ValidationError({"reason": [_("At most %(max)d characters.") % {"max": MAX_REASON}]})
    if not _visible(user, duplicate, into):
        raise ValidationError({"into": [_("No such ticket, or you may not see it.")]})
    services._check_version(duplicate, version)
    refusal = merge_refusal(duplicate, into)
    if refusal:
        raise ValidationError({"into": [refusal]})
    now = timezone.now()
    summary = _("Merged into %(number)s: %(reason)s") % {"number": into.number, "reason": reason}
    with transaction.atomic():
        locked = Ticket.objects.select_for_update().filter(pk__in=[duplicate.pk, into.pk])
        current = {t.pk: t for t in locked}
        if current[duplicate.pk].version != duplicate.version:
            raise services.ConflictError(current[duplicate.pk].version)
        refusal = merge_refusal(current[duplicate.pk], current[into.pk])  # again, under the lock
        if refusal:
            raise ValidationError({"into": [refusal]})
        from_status = duplicate.status
        if duplicate.status in OPEN_STATUSES:
            services.transition(
                user, duplicate, Status.RESOLVED, at=now, note=reason, audit_it=False,
                resolution_summary=duplicate.resolution_summary or summary[:2000],
                root_cause=duplicate.root_cause or RootCause.OTHER, assess=False,
            )  # fmt: skip
        if duplicate.status in (Status.RESOLVED, Status.INFORMED):
            services.transition(user, duplicate, Status.CLOSED, at=now, note=reason, audit_it=False)
        duplicate.merged_into = into
        services._save(duplicate, ["merged_into_id"], duplicate.version)
        links_between(duplicate, into).delete()  # a "related" link becomes the merge's duplicate link
        TicketLink.objects.create(
            from_ticket=duplicate, to_ticket=into, kind=LinkKind.DUPLICATE,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )  # fmt: skip
        services._event(duplicate, EventKind.MERGED, user, at=now, data={"into": into.number, "reason": reason})
        services._event(into, EventKind.MERGED, user, at=now, data={"from": duplicate.number, "reason": reason})
        services.rebuild_clocks(duplicate, now=now)
        audit.record(
            A.MERGE, duplicate, user=user, reason=reason,
            changes={"merged_into": [None, into.number], "status": [from_status, duplicate.status]},
        )  # fmt: skip
    return duplicate


NUMBER_KEYS = ("ticket", "into", "from")  # where a link or merge event names the other ticket


def hide_unseen_tickets(user, events) -> list:
    """The events as `user` may read them: a link or merge event naming a ticket the user may not see (another
    territory's, for a rep) says "another ticket" instead of its number, as the links panel hides the link."""
    from django.utils.translation import gettext

    from pharmacrm.core import access

    events = list(events)
    named = {e.data.get(k) for e in events if isinstance(e.data, dict) for k in NUMBER_KEYS
             if e.kind in (EventKind.LINKED, EventKind.MERGED)} - {None, ""}  # fmt: skip
    if not named:
        return events
    seen = set(access.tickets_for(user, Ticket.objects.filter(number__in=named)).values_list("number", flat=True))
    for e in events:
        if e.kind in (EventKind.LINKED, EventKind.MERGED) and isinstance(e.data, dict):
            hidden = {k for k in NUMBER_KEYS if e.data.get(k) and e.data[k] not in seen}
            if hidden:
                e.data = {**e.data, **{k: gettext("another ticket") for k in hidden}}
    return events
