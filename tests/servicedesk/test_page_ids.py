"""The ticket page holds several forms at once (resolve, reply, assign, priority…): they rendered the same ids
(id_form_token, id_version). No id appears twice, and every <label for> names an element there."""

from __future__ import annotations

from django.urls import reverse

from pharmacrm.servicedesk import services as desk
from tests.safety.test_page_ids import check_ids


def test_the_ticket_page_has_each_id_once_and_every_label_points_at_one(client_for, users, xiehe):
    ticket = desk.create_ticket(users["agent"], {"subject": "咨询用法", "channel": "phone", "category": "drug_info",
                                                 "institution": xiehe, "assignee": users["agent"]})  # fmt: skip
    page = client_for("agent").get(reverse("servicedesk:ticket", args=[ticket.pk]))
    check_ids(page)
    assert 'name="form_token"' in page.content.decode() and 'name="version"' in page.content.decode()
