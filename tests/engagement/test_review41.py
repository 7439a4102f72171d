"""Forty-first session's review of interactions: the list's institution filter given a value that names no
institution the user may see lists nothing (the page says why under the filter; the API answers 400 naming it, or
an empty list for an id it may not see) instead of every interaction; `"received_at": null` is "now", as the docs
say, for interactions and tickets alike."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.engagement import services
from pharmacrm.engagement.models import Interaction
from pharmacrm.servicedesk.models import Ticket


def _visit(user, institution, subject: str) -> Interaction:
    return services.record_interaction(user, {"institution": institution, "channel": "visit", "subject": subject})


@pytest.mark.parametrize("value", ["abc", "0", "1.5", "１２", "99999999", "ruijin"])
def test_a_bad_institution_filter_lists_no_interaction_and_says_why(
    value, users, client_for, api_for, xiehe, ruijin
):
    """The rep works in Beijing; 瑞金医院 (Shanghai) is not among their customers, and the other values name no
    institution at all. The list used to ignore the filter and show every visit — 协和's read as 瑞金's."""
    _visit(users["rep"], xiehe, "协和拜访")
    value = str(ruijin.pk) if value == "ruijin" else value

    page = client_for("rep").get("/interactions/", {"institution": value}, HTTP_ACCEPT_LANGUAGE="en")
    answer = api_for("rep").get("/api/v1/interactions/", {"institution": value})

    html = page.content.decode()
    assert page.status_code == 200 and "协和拜访" not in html
    assert "0 interactions" in html
    assert "among the customers you may see" in html  # said under the filter, which stays set
    assert 'href="/interactions/">Clear filters' in html
    if value.isascii() and value.isdecimal() and value != "0":  # an id: none of theirs, so none listed
        assert answer.status_code == 200 and answer.json()["results"] == []
    else:  # not an id: refused, naming the filter
        assert answer.status_code == 400 and list(answer.json()) == ["institution"]
    # the same filter with the rep's own hospital still lists its visits
    assert "协和拜访" in client_for("rep").get("/interactions/", {"institution": xiehe.pk}).content.decode()


def test_a_bad_person_filter_lists_no_interaction(users, client_for, xiehe):
    _visit(users["rep"], xiehe, "协和拜访")

    html = client_for("rep").get("/interactions/", {"person": "abc"}).content.decode()

    assert "协和拜访" not in html


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
