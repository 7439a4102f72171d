"""Forty-first session: the API refuses a person's birthday other than the date of birth in their ID card number
(characters 7–14), under birthday, naming that date — as the form and the import do. A stored person whose two
already disagree is refused only when a request changes one of them; both changed together are compared with each
other, not with the stored ones."""

from __future__ import annotations

import datetime

from pharmacrm.customers.models import Person
from tests.customers.test_qa_round41_birthday_id import id_number, legacy  # noqa: F401  (the fixture too)


def test_a_new_person_whose_birthday_is_not_their_id_numbers_is_refused(api_for, xiehe):
    api = api_for("kam")
    person = {"name": "李娜", "institution": xiehe.pk, "id_number": id_number("19820704")}
    answer = api.post("/api/v1/people/", {**person, "birthday": "1982-07-05"}, format="json")
    assert answer.status_code == 400
    message = "The birthday differs from the date of birth in the ID card number (1982-07-04)."
    assert answer.json() == {"birthday": [message]}
    assert not Person.objects.filter(name="李娜").exists()
    answer = api_for("kam", lang="zh-hans").post("/api/v1/people/", {**person, "birthday": "1982-07-05"}, format="json")
    assert answer.json()["birthday"] == ["生日与身份证号码中的出生日期（1982-07-04）不一致。"]
    assert api.post("/api/v1/people/", {**person, "birthday": "1982-07-04"}, format="json").status_code == 201


def test_an_update_is_refused_only_when_it_changes_the_birthday_or_the_id_number(api_for, legacy):  # noqa: F811
    api = api_for("kam")
    url = f"/api/v1/people/{legacy.pk}/"

    def patch(**values):
        version = Person.objects.get(pk=legacy.pk).version
        return api.patch(url, {**values, "version": version}, format="json")

    answer = patch(title="副主任医师")  # the old disagreement is not this request's doing
    assert answer.status_code == 200, answer.json()
    answer = patch(birthday="1975-03-16")
    assert answer.status_code == 400 and list(answer.json()) == ["birthday"]
    assert "1980-01-01" in answer.json()["birthday"][0]
    answer = patch(id_number=id_number("19750316"))
    assert answer.status_code == 400 and "1975-03-16" in answer.json()["birthday"][0]
    # both changed in one request, to values that agree: compared with each other, not with the stored ones
    answer = patch(birthday="1982-07-04", id_number=id_number("19820704"))
    assert answer.status_code == 200, answer.json()
    assert Person.objects.get(pk=legacy.pk).birthday == datetime.date(1982, 7, 4)
