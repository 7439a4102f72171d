"""Review round 19 (webhooks): an endpoint subscribed with a pattern or a mistyped event name."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from pharmacrm.notify import services
from pharmacrm.notify.models import Delivery, WebhookEndpoint


def _ticket(admin_user):
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.choices import Channel

    return desk.create_ticket(admin_user, {"subject": "说明书咨询", "channel": Channel.PHONE, "category": "drug_info",
                                           "caller_name": "王小明", "caller_phone": "13800138000"})  # fmt: skip


def test_an_endpoint_subscribed_to_ticket_star_gets_the_ticket_events(admin_user):
    """The form accepted "ticket.*" (the event-name rule allows *), and the bot then got nothing at all."""
    endpoint = services.create_endpoint(admin_user, {"name": "企业微信群", "url": "https://example.com/hook",
                                                     "format": "wecom", "events": "ticket.*"})  # fmt: skip

    _ticket(admin_user)

    events = set(Delivery.objects.filter(endpoint=endpoint).values_list("event", flat=True))
    assert "ticket.created" in events
    assert endpoint.wants("ticket.breached") and not endpoint.wants("ping.x")


def test_a_mistyped_event_name_is_refused_with_the_names_that_exist(admin_user, client_for):
    """"ticket.breach" (for ticket.breached) was saved, and the endpoint silently never got anything."""
    with pytest.raises(ValidationError) as e:
        services.create_endpoint(admin_user, {"name": "x", "url": "https://example.com/", "events": ["ticket.breach"]})
    assert "events" in e.value.error_dict

    response = client_for("admin").post(
        "/notifications/webhooks/new/",
        {"name": "钉钉群", "url": "https://example.com/", "format": "generic", "events": "ticket.created, ticket.breach",
         "active": "on"}, HTTP_ACCEPT_LANGUAGE="en",
    )  # fmt: skip

    page = response.content.decode()
    assert response.status_code == 200 and "No event is called “ticket.breach”" in page
    assert "ticket.breached" in page  # the names to choose from
    assert not WebhookEndpoint.objects.exists()


def test_the_events_of_the_list_are_all_accepted(admin_user):
    endpoint = services.create_endpoint(admin_user, {"name": "x", "url": "https://example.com/", "events": [
        "ticket.created", "ticket.breached", "ticket.warned", "ticket.survey", "ping"]})  # fmt: skip
    assert endpoint.events == ["ticket.created", "ticket.breached", "ticket.warned", "ticket.survey", "ping"]


def test_switching_an_endpoint_off_stops_what_was_still_queued_for_it(admin_user, receiver):
    """A bot posting into the wrong group chat was switched off, and the events queued before (and their
    retries, for two hours) kept arriving in that group."""
    from pharmacrm.notify import tasks

    endpoint = services.create_endpoint(admin_user, {"name": "企业微信群", "url": receiver.url, "format": "generic"})
    services.emit("ticket.created", {"ticket": {"number": "TK-2026-000001", "subject": "说明书咨询"}})
    services.deactivate_endpoint(admin_user, endpoint)
    delivery = Delivery.objects.get(endpoint=endpoint)

    status = tasks.deliver(delivery.pk)

    assert receiver.requests == []
    delivery.refresh_from_db()
    assert status == Delivery.Status.GAVE_UP == delivery.status and delivery.next_attempt_at is None
    assert delivery.last_error and delivery.log[-1]["error"] == delivery.last_error
    assert tasks.sweep() == 0 and receiver.requests == []

    test = services.send_test(admin_user, endpoint)  # the test message still goes, to check the address
    assert tasks.deliver(test.pk) == Delivery.Status.SENT and len(receiver.requests) == 1
