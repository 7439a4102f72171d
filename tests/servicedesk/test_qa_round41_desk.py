"""Session 41 review of the service desk from the agents' and the support lead's daily work."""

from __future__ import annotations

import pytest
from django.utils import translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.servicedesk.models import Ticket, TicketEvent


def _responses(ticket: Ticket) -> int:
    return TicketEvent.objects.filter(ticket=ticket, kind="responded").count()


def _audited_responses(ticket: Ticket) -> int:
    return sum(1 for e in AuditEntry.objects.filter(object_id=str(ticket.pk)) if "responded" in (e.changes or {}))


def test_a_first_response_sent_twice_is_recorded_once_and_the_page_says_so(raise_ticket, client_for):
    """A double click on "Record response" (or Back and send) wrote the call back twice into the history and the
    audit trail; the second one is refused above the form, in the page's language, and nothing is written."""
    ticket = raise_ticket()
    client = client_for("agent")
    sent = {"channel": "phone", "summary": "已回电，告知饭后服用"}
    assert client.post(f"/service/tickets/{ticket.pk}/respond/", sent).status_code == 302
    again = client.post(f"/service/tickets/{ticket.pk}/respond/", sent)
    assert again.status_code == 400
    assert "该响应已于" in again.content.decode() and "未重复记录" in again.content.decode()
    assert _responses(ticket) == 1
    assert _audited_responses(ticket) == 1


def test_a_further_response_with_other_words_or_by_a_colleague_is_recorded(users, raise_ticket, client_for):
    ticket = raise_ticket()
    agent = client_for("agent")
    assert agent.post(f"/service/tickets/{ticket.pk}/respond/", {"channel": "phone", "summary": "已回电"}).status_code == 302
    assert agent.post(f"/service/tickets/{ticket.pk}/respond/", {"channel": "email", "summary": "已回电"}).status_code == 302
    assert agent.post(f"/service/tickets/{ticket.pk}/respond/", {"channel": "phone", "summary": "再次回电"}).status_code == 302
    manager = client_for("manager")
    assert manager.post(f"/service/tickets/{ticket.pk}/respond/", {"channel": "phone", "summary": "已回电"}).status_code == 302
    assert _responses(ticket) == 4


def test_the_api_refuses_the_same_response_again_in_english(raise_ticket, api_for):
    ticket = raise_ticket()
    api = api_for("agent", lang="en")
    body = {"channel": "phone", "summary": "Called back"}
    assert api.post(f"/api/v1/tickets/{ticket.pk}/respond/", body, format="json").status_code == 201
    again = api.post(f"/api/v1/tickets/{ticket.pk}/respond/", body, format="json")
    assert again.status_code == 400
    assert "This response was already recorded at" in str(again.json())
    assert _responses(ticket) == 1


def test_the_refusal_reads_in_traditional_chinese(users, raise_ticket):
    from django.core.exceptions import ValidationError

    from pharmacrm.servicedesk import services

    ticket = raise_ticket()
    services.record_response(users["agent"], ticket, channel="phone", summary="已回電")
    with translation.override("zh-hant"), pytest.raises(ValidationError) as exc:
        services.record_response(users["agent"], ticket, channel="phone", summary="已回電")
    assert "未重複記錄" in " ".join(exc.value.messages)
