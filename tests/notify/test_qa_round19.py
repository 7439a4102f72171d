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


def test_event_names_typed_with_chinese_punctuation_are_accepted(client_for):
    """Typed with a Chinese input method, "ticket.created，ticket.breached" was refused as one unknown name."""
    response = client_for("admin").post(
        "/notifications/webhooks/new/",
        {"name": "客服主管群", "url": "https://example.com/", "format": "wecom", "active": "on",
         "events": "ticket.created，ticket.breached、ticket.escalated；ticket.reopened"},
    )  # fmt: skip

    assert response.status_code == 200 and 'id="endpoint-form"' not in response.content.decode()
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == ["ticket.created", "ticket.breached", "ticket.escalated", "ticket.reopened"]


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


def test_a_failing_endpoint_is_probed_by_one_delivery_while_the_others_wait_behind_it(admin_user, receiver):
    """A dead or slow receiver used to be tried by every new event at once, each holding a worker thread for up
    to the timeout while e-mail waited. Now the oldest failed delivery probes it on its back-off; the others
    wait behind it without using up their attempts, and all go once it answers again."""
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.notify import tasks

    endpoint = services.create_endpoint(admin_user, {"name": "钉钉群", "url": receiver.url, "format": "generic"})
    receiver.answers = [503]
    services.emit("ticket.created", {"ticket": {"number": "TK-2026-000001", "subject": "说明书咨询"}})
    first = Delivery.objects.get(endpoint=endpoint)
    assert tasks.deliver(first.pk) == Delivery.Status.FAILED and len(receiver.requests) == 1
    first.refresh_from_db()

    for n in (2, 3):
        services.emit("ticket.created", {"ticket": {"number": f"TK-2026-00000{n}", "subject": "咨询"}})
    later = list(Delivery.objects.filter(endpoint=endpoint).exclude(pk=first.pk).order_by("pk"))
    for d in later:
        tasks.deliver(d.pk)
    assert len(receiver.requests) == 1  # nobody else knocked on the dead endpoint
    for d in later:
        d.refresh_from_db()
        assert d.status == Delivery.Status.PENDING and d.attempts == 0
        assert d.next_attempt_at > first.next_attempt_at
    ping = services.send_test(admin_user, endpoint)  # an administrator's test is never held back
    assert tasks.deliver(ping.pk) == Delivery.Status.SENT and len(receiver.requests) == 2

    # the endpoint answers again: the probe goes on its retry, then the ones behind it
    Delivery.objects.filter(endpoint=endpoint).exclude(status=Delivery.Status.SENT).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    assert tasks.sweep() == 3
    assert Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.SENT).count() == 4
    numbers = [r["json"]["data"]["ticket"]["number"] for r in receiver.requests if r["json"].get("event") != "ping"]
    assert numbers == ["TK-2026-000001", "TK-2026-000001", "TK-2026-000002", "TK-2026-000003"]


def test_email_is_not_held_behind_a_failing_webhook(admin_user, receiver):
    from pharmacrm.notify import tasks

    endpoint = services.create_endpoint(admin_user, {"name": "钉钉群", "url": receiver.url, "format": "generic"})
    receiver.answers = [500]
    services.emit("ticket.created", {"ticket": {"number": "TK-2026-000001", "subject": "说明书咨询"}})
    tasks.deliver(Delivery.objects.get(endpoint=endpoint).pk)
    mail = Delivery.objects.create(channel=Delivery.Channel.EMAIL, email="a@example.cn", payload={},
                                   next_attempt_at=timezone_now())  # fmt: skip
    assert tasks.failing_ahead(mail) is None


def timezone_now():
    from django.utils import timezone

    return timezone.now()
