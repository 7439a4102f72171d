"""Forty-first session: a rep who owns one department of a hospital outside their territory sees that department and
its doctors (docs/permissions.md). "Add a person" on the department's page opened a form that offered neither the
hospital nor the department, so it could not be saved, and the API refused the doctor ("You may not add people to
this institution"). Now the doctor is added there — at that hospital, in that department, owned by the rep — on the
page and in the API alike (tests/api/test_qa_round41_department_people_api.py), and nowhere else at that hospital."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from pharmacrm.customers import services
from pharmacrm.customers.models import Person


def new_ward(admin_user, rep, ruijin) -> dict:
    """瑞金医院 (Shanghai, outside the rep's Beijing territory) with a department the rep owns and one they do not."""
    return {
        "hospital": ruijin,
        "dept": services.create_institution(
            admin_user, {"name": "心内科", "kind": "department", "parent": ruijin, "owner": rep}
        ),
        "neighbour": services.create_institution(admin_user, {"name": "骨科", "kind": "department", "parent": ruijin}),
    }


@pytest.fixture
def ward(admin_user, users, ruijin):
    return new_ward(admin_user, users["rep"], ruijin)


def _options(page: str, name: str) -> dict[str, str]:
    select = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', page, re.S)[1]
    return {v: label.strip() for v, label in re.findall(r'<option value="(\d+)"[^>]*>([^<]*)</option>', select)}


def _form(page: str) -> dict[str, str]:
    token = re.search(r'name="form_token" value="([^"]+)"', page)[1]
    return {"form_token": token, "role": "doctor", "tier": "new", "stage": "potential"}


def test_add_a_person_on_the_reps_own_department_offers_it_and_saves_the_doctor_there(client_for, users, ward):
    rep = client_for("rep")
    dept, hospital = ward["dept"], ward["hospital"]
    assert f'href="{reverse("customers:person-create")}?institution={dept.pk}"' in rep.get(
        reverse("customers:institution", args=[dept.pk])
    ).content.decode()  # the department's page offers "Add a person"
    page = rep.get(reverse("customers:person-create"), {"institution": dept.pk}).content.decode()
    assert str(hospital.pk) in _options(page, "institution")
    # the rep's own department of that hospital, not its neighbour
    assert set(_options(page, "department")) == {str(dept.pk)}
    answer = rep.post(reverse("customers:person-create"), {
        **_form(page), "name": "钟南华", "institution": hospital.pk, "department": dept.pk,
    })  # fmt: skip
    doctor = Person.objects.get(name="钟南华")
    assert answer.status_code == 302 and answer["Location"] == reverse("customers:person", args=[doctor.pk])
    assert (doctor.institution, doctor.department, doctor.owner) == (hospital, dept, users["rep"])
    assert "钟南华" in rep.get(reverse("customers:institution", args=[dept.pk])).content.decode()


def test_the_reps_form_places_no_one_elsewhere_at_that_hospital(client_for, ward):
    rep = client_for("rep")
    page = rep.get(reverse("customers:person-create"), {"institution": ward["dept"].pk}).content.decode()
    without = rep.post(reverse("customers:person-create"), {**_form(page), "name": "钟北华",
                                                            "institution": ward["hospital"].pk})  # fmt: skip
    assert without.status_code == 200
    assert "在上海交通大学医学院附属瑞金医院，您只能把人员添加到您可查看的科室中：请选择科室。" in without.content.decode()
    neighbour = rep.post(reverse("customers:person-create"), {
        **_form(page), "name": "钟北华", "institution": ward["hospital"].pk, "department": ward["neighbour"].pk,
    })  # fmt: skip
    assert neighbour.status_code == 200
    assert not Person.objects.filter(name="钟北华").exists()


def test_choosing_the_hospital_lists_the_reps_own_department_only(client_for, ward):
    rep = client_for("rep")
    options = rep.get(reverse("customers:person-create"), {"_options": "department", "institution": ward["hospital"].pk},
                      HTTP_HX_REQUEST="true").content.decode()  # fmt: skip
    assert "心内科" in options and "骨科" not in options
