# ruff: noqa: F811 — api_for is a fixture imported as a parameter
"""Defects of the customer master data found by QA in session 56:

- an institution whose type changes between department and another type takes its people along (a hospital made a
  department of another hospital: they work at that hospital, in it; a department made a clinic: they work at the
  clinic, in no department) — they kept a department as their institution, or a clinic as their department, and
  every later save of them was refused over a field nobody had touched;
- a merge that would give the survivor a birthday and an ID card number that disagree is refused, as an edit is;
- invisible direction marks and soft hyphens are dropped as zero-width spaces are (names, credit codes), and the
  API reads an external id as the import does;
- a name that grows under Unicode normalisation (㍿ is 株式会社) is saved, not a server error on PostgreSQL;
- choosing a merged-away record names both records by code and the last survivor."""

from __future__ import annotations

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import normalise, services
from pharmacrm.customers.models import Institution, Person
from tests.api.conftest import api_for  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


def test_a_hospital_made_a_department_takes_its_people_into_the_hospital_it_belongs_to(users, xiehe, beijing, api_for):
    admin = users["admin"]
    branch = services.create_institution(admin, {"name": "协和分院", "kind": "hospital", "region": beijing})
    doctor = services.create_person(admin, {"name": "周洁", "institution": branch, "title": "主治医师"})
    r = api_for("admin").patch(f"/api/v1/institutions/{branch.pk}/", {
        "kind": "department", "parent": xiehe.pk, "version": branch.version}, format="json")  # fmt: skip
    assert r.status_code == 200, r.content
    doctor.refresh_from_db()
    assert (doctor.institution_id, doctor.department_id) == (xiehe.pk, branch.pk)
    entry = AuditEntry.objects.filter(object_type="customers.person", object_id=str(doctor.pk), action="update").get()
    assert entry.changes["institution"] == [branch.pk, xiehe.pk] and entry.extra["kind_changed"] == branch.pk
    # and back: a department made a clinic keeps its people, at the clinic, in no department
    branch.refresh_from_db()
    r = api_for("admin").patch(f"/api/v1/institutions/{branch.pk}/", {"kind": "clinic", "parent": None,
                                                                       "version": branch.version}, format="json")
    assert r.status_code == 200, r.content
    doctor.refresh_from_db()
    assert (doctor.institution_id, doctor.department_id) == (branch.pk, None)
    # their next edit is not refused over a department nobody touched
    r = api_for("admin").patch(f"/api/v1/people/{doctor.pk}/", {"title": "主任医师", "version": doctor.version},
                               format="json")  # fmt: skip
    assert r.status_code == 200, r.content


def test_a_merge_giving_a_birthday_and_an_id_number_that_disagree_is_refused(users, xiehe):
    admin = users["admin"]
    kept = services.create_person(admin, {"name": "郑磊", "institution": xiehe,
                                          "birthday": datetime.date(1980, 1, 1)})  # fmt: skip
    other = services.create_person(admin, {"name": "郑磊", "institution": xiehe, "id_number": "11010519491231002X"})
    with translation.override("en"), pytest.raises(ValidationError, match="correct one of them, then merge"):
        services.merge(admin, kept, other)
    kept.refresh_from_db()
    other.refresh_from_db()
    assert kept.id_number == "" and other.merged_into_id is None  # nothing written, nothing moved
    # agreeing, they merge
    services.update_person(admin, other, {"id_number": "110105198001010016"}, version=other.version)
    other.refresh_from_db()
    services.merge(admin, kept, other)
    kept.refresh_from_db()
    assert kept.id_number == "110105198001010016" and kept.birthday == datetime.date(1980, 1, 1)


def test_direction_marks_and_soft_hyphens_are_invisible_and_external_ids_read_as_the_import(users, xiehe, api_for):
    assert normalise.clean_text("陈强\u200e") == "陈强" and normalise.name("陈\u00ad强\u202c") == "陈强"
    code = normalise.make_credit_code("12100000400000099")
    assert normalise.validate_credit_code(code + "\u200f") == code
    chen = services.create_person(users["admin"], {"name": "陈强", "institution": xiehe})
    twin = services.create_person(users["admin"], {"name": "陈强\u200e", "institution": xiehe})
    assert twin.name == "陈强" and chen in [p for p, _why in services.duplicates_of(twin)]
    r = api_for("admin").post("/api/v1/institutions/", {"name": "仁和药店", "kind": "pharmacy",
                                                         "external_id": "ZW\u200b1"}, format="json")  # fmt: skip
    assert r.status_code == 201, r.content
    assert Institution.objects.get(pk=r.json()["id"]).external_id == "ZW1"
    again = api_for("admin").post("/api/v1/institutions/", {"name": "仁和药店二", "kind": "pharmacy",
                                                             "external_id": "ZW1"}, format="json")  # fmt: skip
    assert again.status_code == 400 and "external_id" in again.json()


def test_a_name_that_grows_under_normalisation_is_saved(users, xiehe, api_for):
    r = api_for("admin").post("/api/v1/people/", {"name": "㍿" * 13, "institution": xiehe.pk}, format="json")
    assert r.status_code == 201, r.content
    person = Person.objects.get(pk=r.json()["id"])
    assert person.name == "㍿" * 13 and person.name_norm == ("株式会社" * 13)[:50]
    r = api_for("admin").post("/api/v1/institutions/", {"name": "㍿" * 60, "kind": "pharmacy"}, format="json")
    assert r.status_code == 201, r.content


def test_a_merged_choice_names_both_records_by_code_and_the_last_survivor(users, xiehe, api_for):
    admin = users["admin"]
    first = Person.objects.get(name="张伟")
    second = services.create_person(admin, {"name": "张伟", "institution": xiehe})
    third = services.create_person(admin, {"name": "张伟", "institution": xiehe})
    services.merge(admin, second, first)
    second.refresh_from_db()
    services.merge(admin, third, second)
    first.refresh_from_db()
    third.refresh_from_db()
    body = {"person": first.pk, "purpose": "marketing", "channel": "phone", "status": "withdrawn"}
    answer = api_for("kam").post("/api/v1/consents/", body, format="json")
    assert answer.status_code == 400
    assert answer.json() == {"person": [
        f"张伟 ({first.code}) was merged into 张伟 ({third.code}): choose {third.code} instead."]}  # fmt: skip
    assert third.merged_into_id is None  # the last survivor, not the second (merged away itself)
