"""Forty-first session's review of interactions: `"received_at": null` is "now", as the docs say, for interactions
and tickets alike."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from pharmacrm.engagement import services
from pharmacrm.engagement.models import Interaction
from pharmacrm.servicedesk.models import Ticket


def test_received_at_null_is_now_for_an_interaction_and_a_ticket(api_for, xiehe):
    """The docs say `received_at` defaults to now; a client that sends every field, null when it has no value,
    was refused with "This field may not be null"."""
    before = timezone.now()
    api = api_for("agent")

    interaction = api.post("/api/v1/interactions/", {"institution": xiehe.pk, "channel": "phone", "subject": "咨询",
                                                     "received_at": None}, format="json")  # fmt: skip
    ticket = api.post("/api/v1/tickets/", {"subject": "说明书咨询", "channel": "phone", "category": "drug_info",
                                           "institution": xiehe.pk, "received_at": None}, format="json")  # fmt: skip

    assert interaction.status_code == 201, interaction.json()
    assert ticket.status_code == 201, ticket.json()
    after = timezone.now() + dt.timedelta(seconds=1)
    assert before <= Interaction.objects.get().received_at <= after
    assert before <= Ticket.objects.get().received_at <= after
    # a change that sends null leaves the time as it is (as the page's empty field): day 0 does not move
    made = interaction.json()
    changed = api.patch(f"/api/v1/interactions/{made['id']}/", {"received_at": None, "subject": "用法咨询",
                                                                "version": made["version"]}, format="json")  # fmt: skip
    assert changed.status_code == 200, changed.json()
    assert changed.json()["received_at"] == made["received_at"] and changed.json()["subject"] == "用法咨询"
