"""Every ticket event saved becomes a `ticket.<kind>` webhook event (in the same transaction) — except one its code
marks `webhook = False`: history written afterwards (the upgrade's backfill of replies that failed long ago), not
something that just happened."""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from pharmacrm.servicedesk.models import TicketEvent


@receiver(post_save, sender=TicketEvent, dispatch_uid="notify-ticket-event-webhooks")
def ticket_event_saved(sender, instance, created, raw=False, **kwargs):
    if not created or raw or getattr(instance, "webhook", True) is False:
        return
    from . import services

    services.emit_ticket_events([instance])
