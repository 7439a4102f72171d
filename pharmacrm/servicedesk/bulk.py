"""Bulk actions on tickets chosen in a queue (or sent to the API): assign, change the status, change the
priority (with a reason), close. Each ticket is handled in its own transaction through the ordinary
services, so its history, audit entry and SLA clocks are exactly as if it had been changed alone; the
answer lists what happened to each ticket — done, refused (with the reason), or a conflict (someone else
saved it since the page was loaded). Tickets the user may not see are not touched."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access
from pharmacrm.core.roles import Cap
from pharmacrm.customers.services import ConflictError

from . import services
from .choices import OPEN_STATUSES, TRANSITIONS, Channel, Impact, Priority, RootCause, Status
from .models import Ticket

MAX_TICKETS = 200

ACTIONS = {
    "assign": gettext_lazy("Assign"),
    "status": gettext_lazy("Change status"),
    "priority": gettext_lazy("Change priority"),
    "close": gettext_lazy("Close"),
}
# The statuses a change can set: those some step of the lifecycle leads to. None leads back to "new", which every
# ticket refused one by one when the menu offered it.
SETTABLE_STATUSES = tuple(s for s in Status if any(s in targets for targets in TRANSITIONS.values()))
DONE, REFUSED, CONFLICT, NOT_FOUND = "done", "refused", "conflict", "not_found"
OUTCOME_LABELS = {
    DONE: gettext_lazy("Done"),
    REFUSED: gettext_lazy("Refused"),
    CONFLICT: gettext_lazy("Changed by someone else"),
    NOT_FOUND: gettext_lazy("Not found"),
}


@dataclass
class Outcome:
    ticket_id: int
    outcome: str  # done | refused | conflict | not_found
    number: str = ""
    message: str = ""

    @property
    def label(self) -> str:
        return str(OUTCOME_LABELS[self.outcome])

    def as_dict(self) -> dict:
        return {"ticket": self.ticket_id, "number": self.number, "outcome": self.outcome, "message": self.message}


def _messages(error: ValidationError) -> str:
    return " ".join(str(m) for m in error.messages)


def check(action: str, params: dict) -> dict:
    """Validate what applies to every ticket before touching any; returns the cleaned parameters."""
    params = dict(params or {})
    if action not in ACTIONS:
        raise ValidationError({"action": [_("Choose an action.")]})
    if action == "assign":
        if params.get("assignee") is None and params.get("team") is None:
            raise ValidationError({"assignee": [_("Choose whom to assign the tickets to.")]})
        if params.get("assignee") is not None and not access.can(params["assignee"], Cap.HANDLE_TICKETS):
            raise ValidationError({"assignee": [_("This user cannot handle tickets.")]})
    elif action == "status":
        if params.get("status") not in Status.values:
            raise ValidationError({"status": [_("Choose a status.")]})
        if params["status"] not in SETTABLE_STATUSES:
            raise ValidationError({"status": [
                _("No ticket can be set back to “%(status)s”.") % {"status": Status(params["status"]).label}
            ]})  # fmt: skip
        if params["status"] == Status.RESOLVED:
            if not (params.get("resolution_summary") or "").strip():
                raise ValidationError({"resolution_summary": [_("Summarise how the requests were resolved.")]})
            if params.get("root_cause") not in RootCause.values:
                raise ValidationError({"root_cause": [_("Choose the root cause.")]})
        for key in ("customer_impact", "company_impact"):
            if params.get(key) and params[key] not in Impact.values:
                raise ValidationError({key: [_("Choose one of the listed impacts.")]})
        if params["status"] == Status.INFORMED and params.get("informed_channel") not in Channel.values:
            raise ValidationError({"informed_channel": [_("Choose how the customers were informed.")]})
    elif action == "priority":
        if params.get("priority") not in Priority.values:
            raise ValidationError({"priority": [_("Choose a priority.")]})
        if not (params.get("reason") or "").strip():
            raise ValidationError({"reason": [_("Give a reason for the change.")]})
    elif action == "close":
        summary, cause = (params.get("resolution_summary") or "").strip(), params.get("root_cause") or ""
        if (summary or cause) and not (summary and cause in RootCause.values):
            raise ValidationError(
                {"resolution_summary": [_("To close open tickets, give both a summary and the root cause.")]}
            )
    return params


def _apply(user, ticket: Ticket, action: str, params: dict, version: int | None) -> None:
    if action == "assign":
        services.assign(user, ticket, assignee=params.get("assignee"), team=params.get("team"), version=version)
    elif action == "status":
        services.transition(
            user, ticket, params["status"], version=version, note=(params.get("note") or "").strip(),
            resolution_summary=(params.get("resolution_summary") or "").strip(),
            root_cause=params.get("root_cause") or "", informed_channel=params.get("informed_channel") or "",
            **services.impact_of(params),
        )  # fmt: skip
    elif action == "priority":
        services.change_priority(
            user, ticket, params["priority"], params.get("complexity") or None, reason=params["reason"].strip(),
            version=version,
        )  # fmt: skip
    elif action == "close":
        note = (params.get("note") or "").strip()
        if ticket.status == Status.CLOSED:
            raise services.TransitionRefused(_("The ticket is already closed."))
        if ticket.status in OPEN_STATUSES:
            summary = (params.get("resolution_summary") or "").strip()
            if not summary:
                raise services.TransitionRefused(
                    _("The ticket is still open: resolve it first, or give a summary and the root cause.")
                )
            services.transition(user, ticket, Status.RESOLVED, version=version, note=note,
                                resolution_summary=summary, root_cause=params["root_cause"],
                                **services.impact_of(params))  # fmt: skip
            version = None  # checked by the first step
        services.transition(user, ticket, Status.CLOSED, version=version, note=note)


def bulk(user, ticket_ids, action: str, params: dict | None = None, *, versions: dict | None = None) -> list[Outcome]:
    """Apply `action` with `params` to each ticket of `ticket_ids` the user may see (at most MAX_TICKETS),
    each in its own transaction. `versions` ({ticket id: version}) makes a ticket changed since then a
    conflict instead of overwriting it. Returns one Outcome per requested id, in the order given."""
    services.require(user, Cap.HANDLE_TICKETS)
    ids: list[int] = []
    for value in ticket_ids or ():
        try:
            pk = int(value)
        except (TypeError, ValueError):
            continue
        if 0 < pk < 2**63 and pk not in ids:
            ids.append(pk)
    if not ids:
        raise ValidationError({"tickets": [_("Choose at least one ticket.")]})
    if len(ids) > MAX_TICKETS:
        raise ValidationError({"tickets": [_("At most %(max)d tickets at once.") % {"max": MAX_TICKETS}]})
    params = check(action, params or {})
    versions = {int(k): int(v) for k, v in (versions or {}).items() if str(k).isdecimal() and str(v).isdecimal()}
    qs = Ticket.objects.filter(pk__in=ids).select_related("policy__calendar", "category", "person", "institution")
    if not isinstance(user, services.SystemActor):
        qs = access.tickets_for(user, qs)
    tickets = qs.in_bulk()
    out: list[Outcome] = []
    for pk in ids:
        ticket = tickets.get(pk)
        if ticket is None:
            out.append(Outcome(pk, NOT_FOUND, message=_("No such ticket, or you may not see it.")))
            continue
        try:
            with transaction.atomic():
                _apply(user, ticket, action, params, versions.get(pk))
        except ConflictError:
            out.append(Outcome(pk, CONFLICT, ticket.number, _("Someone else changed this ticket meanwhile.")))
        except (ValidationError, PermissionDenied) as e:
            message = _messages(e) if isinstance(e, ValidationError) else _("You may not do this.")
            out.append(Outcome(pk, REFUSED, ticket.number, message))
        else:
            out.append(Outcome(pk, DONE, ticket.number))
    return out
