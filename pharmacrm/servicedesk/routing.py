"""Where a new ticket goes: the key-account service team, else the first matching assignment rule's team
and (by its method) an agent of that team who has the skill and is on duty; VIP and key-account tickets get
a priority boost. Called by services.create_ticket inside its transaction."""

from __future__ import annotations


def route(user, ticket) -> None:
    """Set ticket.team / ticket.assignee / ticket.priority / ticket.boosted before the ticket is first saved
    (only what the caller left empty). Filled in by the assignment feature."""
