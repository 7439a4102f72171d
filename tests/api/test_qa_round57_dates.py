"""A date and time in a request body at the calendar's edge is refused under its field's name, not a server error.
0001-01-01T00:00 read in Beijing time (UTC+8) lies in year 0: DRF's own field, or the comparison with the earliest
accepted moment, raised OverflowError (500) for a ticket's and an interaction's `received_at`, a consent's `at` and
a classroom session's `starts_at`/`ends_at` (found by QA)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from pharmacrm.core.api_utils import TYPED_MOMENT_SCHEMA
from pharmacrm.engagement.models import Interaction

pytestmark = pytest.mark.django_db

EDGES = ["0001-01-01T00:00:00", "0001-01-01"]


def _date_time_fields(schema: dict):
    """(method, path, field) of every create on a collection whose body takes a date and time."""
    components = schema["components"]["schemas"]
    for path, operations in sorted(schema["paths"].items()):
        if "{" in path:
            continue
        body = operations.get("post", {}).get("requestBody", {}).get("content", {})
        ref = (body.get("application/json") or {}).get("schema", {}).get("$ref", "")
        properties = components.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
        for name, spec in properties.items():
            typed = spec.get("pattern") == TYPED_MOMENT_SCHEMA["pattern"]  # a moment read as typed (2026/3/15 14:30)
            if (spec.get("format") == "date-time" or typed) and not spec.get("readOnly"):
                yield path, name


@pytest.mark.parametrize("value", EDGES)
def test_no_create_answers_a_server_error_for_a_moment_before_year_1_in_utc(api_for, users, client, value):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    fields = list(_date_time_fields(schema))
    assert {("/api/v1/tickets/", "received_at"), ("/api/v1/consents/", "at"), ("/api/v1/interactions/", "received_at"),
            ("/api/v1/training/sessions/", "starts_at")} <= set(fields)
    failures = []
    for role in ("admin", "manager"):
        for path, name in fields:
            response = api_for(role).post(path, {name: value}, format="json")
            if response.status_code == 400 and name not in response.json():
                failures.append(f"{role} POST {path} {name}: 400 without the field {response.content[:160]!r}")
            elif response.status_code not in (400, 403):
                failures.append(f"{role} POST {path} {name}: {response.status_code} {response.content[:160]!r}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    ("lang", "words"), [("zh-hans", "日期时间格式错误"), ("en", "Datetime has wrong format")]
)
def test_a_ticket_received_in_year_0_is_refused_under_received_at_in_the_readers_language(api_for, users, lang, words):
    response = api_for("agent", lang=lang).post(
        "/api/v1/tickets/",
        {"subject": "询问说明书", "channel": "phone", "category": "drug_info", "received_at": "0001-01-01T00:00:00"},
        format="json",
    )

    assert response.status_code == 400, response.content
    assert list(response.json()) == ["received_at"]
    assert words in response.json()["received_at"][0]


def test_an_interaction_moved_to_year_0_is_refused_and_kept_as_it_was(api_for, users, xiehe):
    interaction = Interaction.objects.create(
        institution=xiehe, channel="phone", received_at=timezone.now(), subject="电话回访", created_by=users["kam"]
    )

    response = api_for("kam", lang="zh-hans").patch(
        f"/api/v1/interactions/{interaction.pk}/", {"received_at": "0001-01-01T00:00:00", "version": 1}, format="json"
    )

    assert response.status_code == 400, response.content
    assert list(response.json()) == ["received_at"]
    assert "日期时间格式错误" in response.json()["received_at"][0]
    before = interaction.received_at
    interaction.refresh_from_db()
    assert interaction.received_at == before
