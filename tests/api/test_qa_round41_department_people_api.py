"""Forty-first session: the API adds a doctor to the department a rep owns at a hospital outside their territory, as
the page does (tests/customers/test_qa_round41_department_people.py), and places no one elsewhere at that hospital."""

from __future__ import annotations

import pytest

from pharmacrm.core import access
from pharmacrm.customers import services
from pharmacrm.customers.models import Person
from tests.customers.test_qa_round41_department_people import new_ward


@pytest.fixture
def ward(admin_user, users, ruijin):
    return new_ward(admin_user, users["rep"], ruijin)


def test_the_api_adds_the_doctor_to_the_reps_own_department(users, ward, api_for):
    api = api_for("rep")
    dept, hospital = ward["dept"], ward["hospital"]
    by_department = api.post("/api/v1/people/", {"name": "钟南华", "department": dept.pk}, format="json")
    assert by_department.status_code == 201, by_department.content
    assert (by_department.json()["institution"], by_department.json()["department"]) == (hospital.pk, dept.pk)
    both = api.post("/api/v1/people/", {"name": "钟西华", "institution": hospital.pk, "department": dept.pk},
                    format="json")  # fmt: skip
    assert both.status_code == 201, both.content
    assert access.can_see(type(users["rep"]).objects.get(pk=users["rep"].pk), Person.objects.get(name="钟西华"))


def test_the_api_places_no_one_elsewhere_at_that_hospital(ward, api_for):
    api = api_for("rep")
    hospital = ward["hospital"]
    alone = api.post("/api/v1/people/", {"name": "钟北华", "institution": hospital.pk}, format="json")
    assert alone.status_code == 400
    assert list(alone.json()) == ["department"] and hospital.name in alone.json()["department"][0]
    neighbour = api.post("/api/v1/people/", {"name": "钟北华", "department": ward["neighbour"].pk}, format="json")
    assert neighbour.status_code == 400 and list(neighbour.json()) == ["department"]
    assert not Person.objects.filter(name="钟北华").exists()


def test_a_rep_moves_their_own_doctor_to_that_hospital_only_into_their_department(users, admin_user, xiehe, ward,
                                                                                 api_for):  # fmt: skip
    doctor = services.create_person(admin_user, {"name": "钟东华", "institution": xiehe, "owner": users["rep"]})
    api = api_for("rep")
    url = f"/api/v1/people/{doctor.pk}/"
    refused = api.patch(url, {"institution": ward["hospital"].pk, "version": doctor.version}, format="json")
    assert refused.status_code == 400 and list(refused.json()) == ["department"]
    moved = api.patch(url, {"institution": ward["hospital"].pk, "department": ward["dept"].pk,
                            "version": doctor.version}, format="json")  # fmt: skip
    assert moved.status_code == 200, moved.content
    doctor.refresh_from_db()
    assert (doctor.institution, doctor.department) == (ward["hospital"], ward["dept"])


def test_a_hospital_in_the_territory_still_takes_people_in_any_of_its_departments(xiehe, api_for):
    api = api_for("rep")
    answer = api.post("/api/v1/people/", {"name": "钟中华", "institution": xiehe.pk}, format="json")
    assert answer.status_code == 201, answer.content
