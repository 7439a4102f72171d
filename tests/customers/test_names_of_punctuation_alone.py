"""A person's name and an institution's short name of punctuation alone are no name on the forms and the import, as
an institution's name already was (the API's side: tests/api/test_names_of_punctuation_alone_api.py) — on SQLite and
PostgreSQL."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import translation

from pharmacrm.customers import importer
from pharmacrm.customers.models import Institution, Person
from tests.customers.test_qa_round35_entry_paths import _csv, _errors

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
NO_WORD = "The name must contain a letter, a Chinese character or a digit: punctuation and symbols alone are not a name."


# --- names of punctuation alone -------------------------------------------------------------------------------


def test_the_forms_refuse_a_person_or_a_short_name_of_punctuation_alone_on_the_field(client_for, xiehe):
    client = client_for("kam")
    person = {"name": "···", "role": "doctor", "institution": xiehe.pk, "tier": "new", "stage": "potential"}
    page = client.post(reverse("customers:person-create"), person, **EN)
    assert page.status_code == 200 and page.context["form"].errors["name"] == [NO_WORD]
    page = client.post(reverse("customers:institution-create"), {
        "name": "东城诊所", "short_name": "（）", "kind": "clinic", "tier": "new", "stage": "potential"}, **EN)  # fmt: skip
    assert page.status_code == 200 and page.context["form"].errors["short_name"] == [NO_WORD]
    assert not Person.objects.filter(name="···").exists() and not Institution.objects.filter(name="东城诊所").exists()


def test_the_import_refuses_a_person_or_a_short_name_of_punctuation_alone(users, xiehe, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    people = _csv(tmp_path, "people.csv", [["姓名", "所属机构"], ["——", "北京协和医院"], ["李娜", "北京协和医院"]])
    job = importer.import_file(people, "people", users["kam"], mode="good")
    with translation.override("en"):
        assert _errors(job) == [(2, "姓名", NO_WORD)]
    assert list(Person.objects.filter(name__in=["——", "李娜"]).values_list("name", flat=True)) == ["李娜"]
    places = _csv(tmp_path, "institutions.csv", [["机构名称", "机构类型", "简称", "外部编号"],
                                                 ["东城诊所", "诊所", "···", "I-1"]])  # fmt: skip
    job = importer.import_file(places, "institutions", users["kam"], mode="good")
    with translation.override("en"):
        assert _errors(job) == [(2, "简称", NO_WORD)]
    assert not Institution.objects.filter(external_id="I-1").exists()
