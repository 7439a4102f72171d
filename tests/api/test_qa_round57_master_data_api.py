"""Session 57, customer master data through the API: a region code in full-width digits is the code (as the import
reads it), an unknown one is named in the import's words; a name of punctuation alone is refused; a department
lies in its hospital's province."""

from __future__ import annotations

import pytest

from pharmacrm.customers.models import Institution

NO_WORD = "The name must contain a letter, a Chinese character or a digit: punctuation and symbols alone are not a name."


def _patch(client, obj, body):
    return client.patch(f"/api/v1/institutions/{obj.pk}/", body, format="json", HTTP_IF_MATCH=f'"{obj.version}"')


@pytest.mark.parametrize("name", ["（）", "---", "···"])
def test_the_api_refuses_a_name_of_punctuation_alone(api_for, xiehe, name):
    answer = _patch(api_for("admin"), xiehe, {"name": name})
    assert answer.status_code == 400 and answer.json()["name"] == [NO_WORD]
    created = api_for("admin").post("/api/v1/institutions/", {"name": name, "kind": "clinic"}, format="json")
    assert created.status_code == 400 and created.json()["name"] == [NO_WORD]
    assert not Institution.objects.filter(name=name).exists()
