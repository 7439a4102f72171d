"""Filters that take a record id (or a year) read whole numbers in ASCII digits; anything else is refused by name."""

from __future__ import annotations

import pytest
from django.utils import timezone

from pharmacrm.engagement.models import Interaction

pytestmark = pytest.mark.django_db


def test_interactions_of_institution_1_5_are_refused_not_those_of_institution_1(api_for, users, xiehe):
    """`?institution=<id>.5` answered the interactions of institution <id>: the filter read a decimal and cut it."""
    Interaction.objects.create(
        institution=xiehe, channel="phone", received_at=timezone.now(), subject="拜访心内科", created_by=users["kam"]
    )
    client = api_for("admin")
    assert client.get("/api/v1/interactions/", {"institution": xiehe.pk}).json()["count"] == 1

    response = client.get("/api/v1/interactions/", {"institution": f"{xiehe.pk}.5"})

    assert response.status_code == 400
    assert response.json() == {"institution": ["Enter a whole number."]}


@pytest.mark.parametrize(
    ("path", "param", "value"),
    [
        ("/api/v1/people/", "institution", "1.5"),
        ("/api/v1/people/", "department", "١٢"),
        ("/api/v1/institutions/", "parent", "1e3"),
        ("/api/v1/tickets/", "person", "1.0"),
        ("/api/v1/consents/", "person", "１"),
        ("/api/v1/audit/", "actor", "2.5"),
        ("/api/v1/deliveries/", "endpoint", "1.5"),
        ("/api/v1/improvement-actions/", "owner", "1.5"),
        ("/api/v1/order-lines/", "customer", "١٢"),
    ],
)
def test_an_id_filter_with_anything_but_ascii_digits_is_refused_by_name(api_for, path, param, value):
    """Such a value matched no record (an empty list, as if there were none) or, in Arabic-Indic or full-width
    digits, was read as the number — where the URLs refuse `/people/１２/`."""
    response = api_for("admin").get(path, {param: value})
    assert response.status_code == 400, response.content
    assert response.json() == {param: ["Enter a whole number."]}


@pytest.mark.parametrize(("lang", "message"), [("zh-hans", "请输入整数。"), ("zh-hant", "請輸入整數。")])
def test_the_refusal_is_in_the_request_language(api_for, lang, message):
    response = api_for("admin", lang=lang).get("/api/v1/tickets/", {"assignee": "1.5"})
    assert response.json() == {"assignee": [message]}
