"""Review round 21: notifications as their readers see them — e-mails that follow the account as it is when
they go out, and "Mark all read" that marks only what the reader was shown."""

from __future__ import annotations

from pharmacrm.notify import services, tasks
from pharmacrm.notify.models import Delivery, Notification

S = Delivery.Status


def test_an_email_queued_before_its_recipient_left_the_company_is_not_sent(users, smtp_server, settings):
    settings.LANGUAGE_CODE = "en"  # the reason is kept in the product's language
    agent = users["agent"]
    agent.email = "agent@pharma.example"
    agent.save()
    services.send([agent], kind="ticket.assigned", title="TK-2026-000001 说明书咨询", url="/service/tickets/1/")
    delivery = Delivery.objects.get()
    agent.is_active = False  # deactivated before the worker (or a retry) got to it
    agent.save()

    assert tasks.deliver(delivery.pk) == S.GAVE_UP

    assert smtp_server.messages == []
    delivery.refresh_from_db()
    assert delivery.status == S.GAVE_UP and delivery.next_attempt_at is None
    assert delivery.last_error == "Not sent: the recipient's account was deactivated."
    assert tasks.sweep() == 0  # never tried again


def test_an_email_goes_to_the_address_the_recipient_has_when_it_is_sent(users, smtp_server):
    agent = users["agent"]
    agent.email = "agnet@pharma.example"  # a typo, corrected while the delivery waited for its retry
    agent.save()
    services.send([agent], kind="ticket.assigned", title="TK-2026-000002 说明书咨询")
    delivery = Delivery.objects.get()
    agent.email = "agent@pharma.example"
    agent.save()

    assert tasks.deliver(delivery.pk) == S.SENT

    (got,) = smtp_server.messages
    assert got["to"] == ["agent@pharma.example"]
    delivery.refresh_from_db()
    assert delivery.email == "agent@pharma.example"  # the log says where it went


def test_an_email_whose_recipient_removed_the_address_is_not_sent(users, smtp_server, settings):
    settings.LANGUAGE_CODE = "en"
    agent = users["agent"]
    agent.email = "agent@pharma.example"
    agent.save()
    services.send([agent], kind="ticket.assigned", title="TK-2026-000003 说明书咨询")
    agent.email = ""
    agent.save()

    assert tasks.deliver(Delivery.objects.get().pk) == S.GAVE_UP

    assert smtp_server.messages == []
    assert Delivery.objects.get().last_error == "Not sent: the recipient no longer has an e-mail address."
    assert Notification.objects.get().recipient == agent  # the bell keeps it
