"""The upgrade's backfill of replies that failed before session 37 posts no webhooks (session 39).

Migration servicedesk 0016 (and `pharmacrm undelivered-replies`) records, for each reply whose delivery failed for good
before such failures were kept, a 'Reply not delivered' entry. Each entry was saved like a live one, so every
subscribed endpoint got a `ticket.undelivered` event: the group chat of a WeCom or DingTalk bot filled with failures of
tickets months old, read as if they had just happened. The backfill is history: recorded and audited, the first
response computed as before, but no webhook. A reply that fails for good today still sends its event. Checked with
the real HTTP receiver the notification tests use."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from pharmacrm.core.models import AuditEntry
from pharmacrm.notify import services as notify
from pharmacrm.notify import tasks
from pharmacrm.notify.models import Delivery
from pharmacrm.servicedesk import services
from pharmacrm.servicedesk.choices import EventKind
from pharmacrm.servicedesk.models import TicketEvent
from tests.notify.conftest import receiver  # noqa: F401  (the webhook receiver)
from tests.servicedesk.test_review38 import failed_before_session_37, replied, response_clock

pytestmark = pytest.mark.django_db


def _events_received(rcv) -> list[str]:
    return [r["json"].get("event") for r in rcv.requests]


def test_the_backfill_of_old_failed_replies_records_and_audits_them_but_posts_no_webhook(
    users, xiehe, receiver, settings  # noqa: F811
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    ticket, reply = replied(users, xiehe, "咨询用法")
    failed_before_session_37(reply)
    notify.create_endpoint(users["admin"], {"name": "群机器人", "url": receiver.url})
    tasks.sweep()
    receiver.requests.clear()

    out = io.StringIO()
    call_command("undelivered_replies", stdout=out)  # what `migrate` runs once (servicedesk 0016)
    assert out.getvalue().startswith("1 条回复记为未送达")
    tasks.sweep()
    # recorded and audited, the first response open again, as before
    event = TicketEvent.objects.get(ticket=ticket, kind=EventKind.UNDELIVERED)
    assert event.data["backfilled"] is True and event.data["message"] == reply.pk
    assert response_clock(ticket).fulfilled_at is None
    entry = AuditEntry.objects.filter(object_type="servicedesk.ticket", object_id=str(ticket.pk),
                                      extra__reason=services.BACKFILL_REASON).get()  # fmt: skip
    assert entry.actor_name == "system" and entry.changes == {"responded": [reply.created_at.isoformat(), None]}
    # but nothing posted: no delivery queued, nothing received
    assert not Delivery.objects.filter(event="ticket.undelivered").exists()
    assert "ticket.undelivered" not in _events_received(receiver)

    # a reply that fails for good today is news: its event goes out
    other, today = replied(users, xiehe, "咨询储存")
    services.reply_undelivered(today)
    tasks.sweep()
    assert "ticket.undelivered" in _events_received(receiver)
    assert Delivery.objects.get(event="ticket.undelivered").payload["data"]["ticket"]["number"] == other.number
