"""The VIP / key-account priority boost is the system's: a ticket whose customer is corrected to one without
the boost goes back to the priority it had before it (with a Priority event saying why, the policy chosen again and
the clocks rebuilt) — unless a person changed the priority by hand since, which stays."""

from __future__ import annotations

import pytest

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services as customer_services
from pharmacrm.servicedesk import editing, services, views
from pharmacrm.servicedesk.choices import EventKind
from pharmacrm.servicedesk.models import Ticket, TicketEvent

pytestmark = pytest.mark.usefixtures("english")


@pytest.fixture
def vip_ticket(admin_user, raise_ticket, xiehe):
    customer_services.update_institution(admin_user, xiehe, {"tier": "vip"}, version=xiehe.version)
    xiehe.refresh_from_db()
    ticket = raise_ticket(institution=xiehe)
    assert (ticket.priority, ticket.boosted) == ("high", True)
    return ticket


def test_a_ticket_moved_to_an_ordinary_customer_loses_the_boost(users, vip_ticket, ruijin):
    editing.edit_ticket(users["agent"], vip_ticket, {"institution": ruijin.pk}, version=vip_ticket.version,
                        reason="客户选错了，是瑞金医院")  # fmt: skip
    t = Ticket.objects.get(pk=vip_ticket.pk)
    assert (t.priority, t.boosted) == ("normal", False)
    assert t.policy == services.select_policy(t)
    assert {c.policy_id for c in t.clocks.all()} == {t.policy_id}
    event = TicketEvent.objects.filter(ticket=t, kind=EventKind.PRIORITY).latest("id")
    assert event.actor_id is None and event.data["from"][0] == "high" and event.data["to"][0] == "normal"
    assert ("Reason", "No longer a VIP or key-account customer: the priority boost is taken back.") in (
        views._event_details(event)
    )
    entry = AuditEntry.objects.filter(object_type="servicedesk.ticket", object_id=str(t.pk), action="update").last()
    assert entry.changes["priority"] == ["high", "normal"]


def test_a_priority_a_person_set_after_the_boost_stays(users, vip_ticket, ruijin):
    services.change_priority(users["agent"], vip_ticket, "urgent", reason="患者情况紧急", version=vip_ticket.version)
    vip_ticket.refresh_from_db()
    editing.edit_ticket(users["agent"], vip_ticket, {"institution": ruijin.pk}, version=vip_ticket.version)
    t = Ticket.objects.get(pk=vip_ticket.pk)
    assert t.priority == "urgent"
    assert TicketEvent.objects.filter(ticket=t, kind=EventKind.PRIORITY).latest("id").actor == users["agent"]


def test_a_priority_set_by_hand_is_no_longer_marked_boosted_nor_boosted_again(users, admin_user, vip_ticket, ruijin,
                                                                               client_for):  # fmt: skip
    """The key-account page and the API said "boosted" beside a priority the agent had chosen, and a customer
    corrected to another VIP raised the agent's choice one more step."""
    services.change_priority(users["agent"], vip_ticket, "normal", reason="只是咨询说明书", version=vip_ticket.version)
    vip_ticket.refresh_from_db()
    assert (vip_ticket.priority, vip_ticket.boosted) == ("normal", False)
    body = client_for("agent").get(f"/api/v1/tickets/{vip_ticket.pk}/").json()
    assert (body["priority"], body["boosted"]) == ("normal", False)
    customer_services.update_institution(admin_user, ruijin, {"tier": "vip"}, version=ruijin.version)
    editing.edit_ticket(users["agent"], vip_ticket, {"institution": ruijin.pk}, version=vip_ticket.version)
    t = Ticket.objects.get(pk=vip_ticket.pk)
    assert (t.priority, t.boosted) == ("normal", False)


def test_another_vip_customer_keeps_the_boost(users, admin_user, vip_ticket, ruijin):
    customer_services.update_institution(admin_user, ruijin, {"tier": "vip"}, version=ruijin.version)
    editing.edit_ticket(users["agent"], vip_ticket, {"institution": ruijin.pk}, version=vip_ticket.version)
    t = Ticket.objects.get(pk=vip_ticket.pk)
    assert (t.priority, t.boosted) == ("high", True)
