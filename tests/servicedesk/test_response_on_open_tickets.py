"""A response to the customer is recorded while the ticket is open. On a resolved or closed ticket the page offered
"Record first response" and the service wrote a call back after the resolution into the history, moving nothing."""

from __future__ import annotations

from pharmacrm.servicedesk import services
from pharmacrm.servicedesk.models import Ticket, TicketEvent


def _responses(ticket: Ticket) -> int:
    return TicketEvent.objects.filter(ticket=ticket, kind="responded").count()


def _resolve(users, ticket: Ticket) -> Ticket:
    services.transition(users["agent"], ticket, "resolved", resolution_summary="已告知用法", root_cause="usage")
    return Ticket.objects.get(pk=ticket.pk)


def test_the_page_names_the_first_response_then_a_further_one_and_hides_it_once_resolved(users, raise_ticket, client_for):
    ticket = raise_ticket()
    agent = client_for("agent")
    page = agent.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert "记录首次响应" in page and 'id="respond"' in page
    assert agent.post(f"/service/tickets/{ticket.pk}/respond/", {"channel": "phone", "summary": "已回电"}).status_code == 302
    page = agent.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert "记录首次响应" not in page and "记录后续响应" in page
    _resolve(users, ticket)
    page = agent.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert 'id="respond"' not in page


def test_a_response_sent_to_a_resolved_ticket_is_refused_on_the_page_and_nothing_is_written(users, raise_ticket, client_for):
    """The form was open when a colleague resolved the ticket: the refusal shows above the form, which keeps what
    was typed."""
    ticket = _resolve(users, raise_ticket())
    answer = client_for("agent").post(f"/service/tickets/{ticket.pk}/respond/", {"channel": "phone", "summary": "又回电"})
    assert answer.status_code == 400
    body = answer.content.decode()
    assert "响应只能记录在未结的工单上" in body and "又回电" in body
    assert _responses(ticket) == 0


def test_the_api_refuses_a_response_on_a_closed_ticket_in_english(users, raise_ticket, api_for):
    ticket = _resolve(users, raise_ticket())
    services.transition(users["agent"], ticket, "closed")
    answer = api_for("agent", lang="en").post(f"/api/v1/tickets/{ticket.pk}/respond/", {"channel": "phone"}, format="json")
    assert answer.status_code == 400
    assert "a response is recorded on an open ticket" in str(answer.json())
    assert _responses(ticket) == 0


def test_a_reopened_ticket_takes_responses_again(users, raise_ticket, api_for):
    ticket = _resolve(users, raise_ticket())
    services.transition(users["agent"], ticket, "in_progress", note="客户再次来电")
    answer = api_for("agent").post(f"/api/v1/tickets/{ticket.pk}/respond/", {"channel": "phone"}, format="json")
    assert answer.status_code == 201
    assert _responses(ticket) == 1
