"""The whole numbers a person types (beds, minutes, a quantity, a threshold, an order) are read by the API as the
pages read them: "1,000", "1 000" and "１０００" are 1000 — the form took "1,200" beds and the API refused the same
text; "1e3" and "1.5" are refused under the field, in the request's language. Ids and versions keep ASCII digits."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

LADDER = "/api/v1/escalation-rules/"


@pytest.mark.parametrize("typed", ["1,200", "1 200", "１２００", "１，２００", 1200, "1200"])
def test_beds_are_read_as_typed(api_for, xiehe, typed):
    client = api_for("kam")
    url = f"/api/v1/institutions/{xiehe.pk}/"
    response = client.patch(url, {"beds": typed, "version": client.get(url).json()["version"]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["beds"] == 1200
    xiehe.refresh_from_db()
    assert xiehe.beds == 1200


@pytest.mark.parametrize("typed", ["1e3", "1.5", "1_000", "١٢", "十二", "1.2万", 1.5, True])
def test_what_is_no_whole_number_is_refused_under_the_field(api_for, xiehe, typed):
    client = api_for("kam")
    url = f"/api/v1/institutions/{xiehe.pk}/"
    before = client.get(url).json()
    response = client.patch(url, {"beds": typed, "version": before["version"]}, format="json")
    assert response.status_code == 400
    assert response.json() == {"beds": ["Enter a whole number, such as 12 or 1,200."]}
    assert client.get(url).json()["beds"] == before["beds"]


def test_the_bounds_still_hold_and_a_whole_decimal_is_whole(api_for, xiehe):
    client = api_for("kam")
    url = f"/api/v1/institutions/{xiehe.pk}/"
    version = client.get(url).json()["version"]
    too_many = client.patch(url, {"beds": "100,001", "version": version}, format="json")
    assert too_many.status_code == 400 and list(too_many.json()) == ["beds"]
    whole = client.patch(url, {"beds": "1,200.0", "version": version}, format="json")
    assert whole.status_code == 200 and whole.json()["beds"] == 1200


def test_the_escalation_ladders_minutes_are_read_as_typed(api_for):
    admin = api_for("admin")
    added = admin.post(LADDER, {"level": "４", "after_minutes": "1,440", "cooldown_minutes": "1 000",
                                "notify": "manager"}, format="json")  # fmt: skip
    assert added.status_code == 201, added.content
    assert (added.json()["level"], added.json()["after_minutes"], added.json()["cooldown_minutes"]) == (4, 1440, 1000)
    wrong = admin.patch(f"{LADDER}{added.json()['id']}/", {"after_minutes": "1e3"}, format="json")
    assert wrong.status_code == 400 and wrong.json() == {"after_minutes": ["Enter a whole number, such as 12 or 1,200."]}


def test_ids_still_take_ascii_digits_only(api_for, xiehe):
    body = {"subject": "s", "channel": "phone", "category": "drug_info", "institution": f"1,{xiehe.pk:03d}"}
    response = api_for("agent").post("/api/v1/tickets/", body, format="json")
    assert response.status_code == 400 and list(response.json()) == ["institution"]


def test_the_schema_documents_an_integer_or_a_typed_string(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["components"]["schemas"]
    beds = schema["PatchedInstitutionRequest"]["properties"]["beds"]
    integer, typed = beds["oneOf"]
    assert integer["type"] == "integer" and (integer["minimum"], integer["maximum"]) == (0, 100000)
    assert typed["type"] == "string" and typed["example"] == "1,000" and '"1e3"' in typed["description"]
    assert schema["Institution"]["properties"]["beds"]["type"] == "integer"  # the answer: an integer
