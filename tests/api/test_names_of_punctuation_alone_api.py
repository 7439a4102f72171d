"""The API refuses a person's name or an institution's short name of punctuation alone, as it refuses such an
institution's name (the forms' and the import's side: tests/customers/test_names_of_punctuation_alone.py) — on SQLite
and PostgreSQL."""

from __future__ import annotations

import pytest

from pharmacrm.customers.models import Institution, Person

pytestmark = pytest.mark.django_db
NO_WORD = "The name must contain a letter, a Chinese character or a digit: punctuation and symbols alone are not a name."


@pytest.mark.parametrize("name", ["（）", "···", "——", "★"])
def test_the_api_refuses_a_person_named_or_an_institution_short_named_with_punctuation_alone(api_for, xiehe, name):
    admin = api_for("admin")
    r = admin.post("/api/v1/people/", {"name": name, "role": "doctor", "institution": xiehe.pk}, format="json")
    assert r.status_code == 400 and r.json()["name"] == [NO_WORD], r.content
    r = admin.post("/api/v1/institutions/", {"name": "东城诊所", "short_name": name, "kind": "clinic"}, format="json")
    assert r.status_code == 400 and r.json() == {"short_name": [NO_WORD]}, r.content
    assert not Person.objects.filter(name=name).exists()
    assert not Institution.objects.filter(name="东城诊所").exists()


def test_names_with_a_word_are_still_taken(api_for, xiehe):
    admin = api_for("admin")
    r = admin.post("/api/v1/people/", {"name": "欧阳·娜娜", "role": "doctor", "institution": xiehe.pk}, format="json")
    assert r.status_code == 201, r.content
    r = admin.post("/api/v1/institutions/", {"name": "东城诊所", "short_name": "东城", "kind": "clinic"}, format="json")
    assert r.status_code == 201, r.content
