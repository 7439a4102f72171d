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


def test_respond_link_and_merge_sent_twice_act_once_and_show_the_ticket(client_for, raise_ticket):
    from pharmacrm.customers.forms import new_once_token
    from pharmacrm.servicedesk.choices import EventKind
    from pharmacrm.servicedesk.models import TicketLink

    ticket, other, dup = raise_ticket(), raise_ticket("相关"), raise_ticket("重复单")
    agent = client_for("agent")
    assert 'name="form_token"' in agent.get(f"/service/tickets/{ticket.pk}/").content.decode()

    again = _twice(agent, f"/service/tickets/{ticket.pk}/respond/",
                   {"channel": "phone", "summary": "已回电", "form_token": new_once_token()})  # fmt: skip
    assert again.redirect_chain[-1][0] == f"/service/tickets/{ticket.pk}/"
    assert "The response to the customer was recorded." in again.content.decode()
    assert TicketEvent.objects.filter(ticket=ticket, kind=EventKind.RESPONDED).count() == 1

    again = _twice(agent, f"/service/tickets/{ticket.pk}/links/",
                   {"link-to_ticket": other.number, "link-kind": "related", "link-form_token": new_once_token()})  # fmt: skip
    assert "is linked to" in again.content.decode() and "already linked" not in again.content.decode()
    assert TicketLink.objects.filter(from_ticket=ticket, to_ticket=other).count() == 1

    again = _twice(agent, f"/service/tickets/{dup.pk}/merge/",
                   {"merge-into": ticket.number, "merge-reason": "重复", "merge-version": dup.version})  # fmt: skip
    assert again.redirect_chain[-1][0].startswith(f"/service/tickets/{ticket.pk}/")
    assert "was merged into" in again.content.decode() and "already merged" not in again.content.decode()
    assert TicketEvent.objects.filter(ticket=dup, kind=EventKind.MERGED).count() == 1


def test_a_merge_after_a_colleagues_change_is_still_refused(client_for, raise_ticket):
    into, dup = raise_ticket(), raise_ticket("重复单")
    loaded = dup.version
    assert client_for("manager").post(f"/service/tickets/{dup.pk}/status/",
                                      {"to_status": Status.IN_PROGRESS, "version": loaded}).status_code == 302  # fmt: skip

    mine = client_for("agent").post(f"/service/tickets/{dup.pk}/merge/",
                                    {"merge-into": into.number, "merge-reason": "重复", "merge-version": loaded},
                                    HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip

    assert mine.status_code == 409 and Ticket.objects.get(pk=dup.pk).merged_into_id is None
