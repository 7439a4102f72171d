"""A merge gives the duplicate's tickets and interactions to the survivor: they change as an edit changes them."""

from __future__ import annotations

import datetime as dt

from pharmacrm.customers import services as customers
from pharmacrm.customers.models import Person
from pharmacrm.engagement.models import Interaction
from pharmacrm.servicedesk import services as desk
from pharmacrm.servicedesk.models import Ticket


def test_the_duplicates_tickets_and_interactions_show_they_changed_customer(users, xiehe, api_for):
    """An integration copies tickets and interactions by their `updated_at`; a ticket form was open on the copy of
    张伟. The merge moved the work to his record without touching either: the integration kept the copy as the
    customer, and the form saved over the move without a word. Now both see a change."""
    original = Person.objects.get(name="张伟")
    copy = customers.create_person(users["manager"], {"name": "张伟", "institution": xiehe, "mobile": "13900139000"})
    ticket = desk.create_ticket(users["agent"], {"subject": "询问用量", "channel": "phone", "category": "drug_info",
                                                 "person": copy})  # fmt: skip
    rep = api_for("rep")
    made = rep.post("/api/v1/interactions/", {"institution": xiehe.pk, "person": copy.pk, "channel": "wechat",
                                              "subject": "微信咨询", "notes": ""}, format="json")  # fmt: skip
    assert made.status_code == 201, made.content
    long_ago = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    Ticket.objects.filter(pk=ticket.pk).update(updated_at=long_ago)
    Interaction.objects.filter(pk=made.json()["id"]).update(updated_at=long_ago)
    version = Ticket.objects.get(pk=ticket.pk).version

    customers.merge(users["manager"], original, Person.objects.get(pk=copy.pk))

    moved = Ticket.objects.get(pk=ticket.pk)
    assert moved.person_id == original.pk
    assert moved.updated_at > long_ago
    assert moved.version == version + 1  # a form opened before the merge is told someone changed the ticket
    listed = rep.get(f"/api/v1/interactions/{made.json()['id']}/").json()
    assert listed["person"] == original.pk
    assert dt.datetime.fromisoformat(listed["updated_at"]) > long_ago
