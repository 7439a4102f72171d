"""A ticket's status, priority and assignment buttons clicked twice: the first click moved the ticket's version, so the
second answered "someone else changed this ticket" (409) with the form again — though nobody else had. The same form
sent again right after by the same person, asking for what the ticket now is, shows the ticket instead; a colleague's
change in between is still a conflict."""

from __future__ import annotations

import pytest

from pharmacrm.servicedesk.choices import Status
from pharmacrm.servicedesk.models import Ticket, TicketEvent

pytestmark = pytest.mark.django_db


def _twice(client, url, form):
    assert client.post(url, form).status_code == 302
    return client.post(url, form, follow=True, HTTP_ACCEPT_LANGUAGE="en")


def test_status_and_priority_clicked_twice_change_once_and_show_the_ticket(client_for, raise_ticket):
    ticket = raise_ticket()
    agent = client_for("agent")
    events = TicketEvent.objects.filter(ticket=ticket).count

    before = events()
    again = _twice(agent, f"/service/tickets/{ticket.pk}/status/",
                   {"to_status": Status.IN_PROGRESS, "version": ticket.version})  # fmt: skip
    assert again.status_code == 200 and again.redirect_chain[-1][0] == f"/service/tickets/{ticket.pk}/"
    assert "is now" in again.content.decode() and "Someone else changed" not in again.content.decode()
    assert Ticket.objects.get(pk=ticket.pk).status == Status.IN_PROGRESS and events() == before + 1

    ticket.refresh_from_db()
    again = _twice(agent, f"/service/tickets/{ticket.pk}/priority/",
                   {"priority": "urgent", "complexity": ticket.complexity, "reason": "患者情况紧急",
                    "version": ticket.version})  # fmt: skip
    assert again.status_code == 200 and "The priority was changed" in again.content.decode()
    assert Ticket.objects.get(pk=ticket.pk).priority == "urgent"


def test_a_colleagues_change_in_between_is_still_a_conflict(client_for, raise_ticket):
    ticket = raise_ticket()
    loaded = ticket.version
    assert client_for("manager").post(f"/service/tickets/{ticket.pk}/status/",
                                      {"to_status": Status.IN_PROGRESS, "version": loaded}).status_code == 302  # fmt: skip

    mine = client_for("agent").post(f"/service/tickets/{ticket.pk}/status/",
                                     {"to_status": Status.IN_PROGRESS, "version": loaded}, HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip

    assert mine.status_code == 409
