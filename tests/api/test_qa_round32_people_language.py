"""Thirty-second session: the people API reads and writes a person's preferred language (沟通语言)."""

from __future__ import annotations

from pharmacrm.customers.models import Person


def test_the_api_reads_and_writes_the_preferred_language_and_refuses_another_naming_the_field(api_for, xiehe):
    person = Person.objects.get(name="张伟")
    api = api_for("kam")
    url = f"/api/v1/people/{person.pk}/"
    assert api.get(url).json()["preferred_language"] == ""
    answer = api.patch(url, {"preferred_language": "zh-Hant", "version": person.version}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["preferred_language"] == "zh-hant"
    person.refresh_from_db()
    answer = api.patch(url, {"preferred_language": "fr", "version": person.version}, format="json",
                       HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert answer.status_code == 400 and "preferred_language" in answer.json()
    person.refresh_from_db()
    assert person.preferred_language == "zh-hant"
