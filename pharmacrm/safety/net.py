"""The net: every ticket and interaction text is screened on save. A signal (or the staff's
"safety-relevant" flag) puts the record in PV's triage queue with a one-working-day hand-off clock.
Called by the service desk and the interaction services; a text without a signal costs no query."""

from __future__ import annotations

from collections.abc import Iterable


def screen_ticket(ticket, texts: Iterable[str] = (), *, heard_at=None) -> None:
    """`texts`: a new reply, note or customer e-mail, and `heard_at` its time: a reaction first mentioned
    there was heard then, not when the ticket was opened."""
    from . import services

    if heard_at is not None:  # only the new message: the ticket's own text was screened when it was saved
        services.screen_source(ticket, list(texts), heard_at=heard_at)
        return
    services.screen_source(ticket, [ticket.subject, ticket.description, *texts],
                           safety_relevant=ticket.safety_relevant)  # fmt: skip


def screen_interaction(interaction) -> None:
    from . import services

    services.screen_source(interaction, [interaction.subject, interaction.notes],
                           safety_relevant=interaction.safety_relevant)  # fmt: skip


def calendar_changed(calendar, **who) -> None:
    """A business calendar changed (in the change's transaction): the pending hand-offs counted on it follow."""
    from . import services

    services.replan_handoffs(calendar, **who)
