"""Twenty-third session, notifications: following the link of a notification's e-mail marks that notification
read in the bell — for its own recipient only."""

from __future__ import annotations

import re

from pharmacrm.notify import services, tasks
from pharmacrm.notify.models import Delivery, Notification


def test_the_link_of_a_notification_mail_marks_it_read_for_its_recipient_only(users, smtp_server, client_for):
    """The agent opened the ticket from the e-mail; the bell still counted the notification as unread, and they
    saw it again. Now the mail's link marks it read. A colleague who opens the forwarded link lands on the same
    page under their own rights, and marks nothing."""
    from pharmacrm.servicedesk import services as desk

    agent = users["agent"]
    agent.email = "agent@pharma.example"
    agent.save()
    ticket = desk.create_ticket(agent, {"subject": "药品说明书咨询", "channel": "phone", "category": "drug_info",
                                        "caller_name": "王先生"})  # fmt: skip
    ticket_url = f"/service/tickets/{ticket.pk}/"
    [note] = services.send([agent], kind="ticket.assigned", title=f"{ticket.number} 药品说明书咨询", url=ticket_url,
                           obj=ticket)  # fmt: skip
    assert tasks.deliver(Delivery.objects.get().pk) == Delivery.Status.SENT
    text = smtp_server.messages[0]["message"].get_content()
    link = re.search(r"https?://[^/\s]+(/notifications/mail/[^\s]+)", text).group(1)

    # a forwarded link: the manager reaches the ticket page under their own rights, marks nothing
    manager = client_for("manager")
    response = manager.get(link)
    assert response.status_code == 302 and response["Location"] == ticket_url
    note.refresh_from_db()
    assert note.read_at is None
    assert Notification.objects.filter(recipient=users["manager"]).count() == 0

    # signed out: the sign-in page first, nothing marked
    from django.test import Client

    response = Client().get(link)
    assert response.status_code == 302 and "/login" in response["Location"]
    note.refresh_from_db()
    assert note.read_at is None

    # the recipient: read, and on the ticket
    response = client_for("agent").get(link)
    assert response.status_code == 302 and response["Location"] == ticket_url
    note.refresh_from_db()
    assert note.read_at is not None
    assert services.unread_count(agent) == 0

    # a link made up to lead elsewhere is refused
    assert client_for("agent").get(link[:-3] + "xx/").status_code == 404
