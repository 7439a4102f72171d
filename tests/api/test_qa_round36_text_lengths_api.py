"""Thirty-sixth session, the API's side: a customer's free-text fields follow the rule the import and the forms
follow (tests/customers/test_qa_round36_text_lengths.py) — counted as stored, refused in the same words naming the
field, never cut — and an institution's phone takes no mobile extension, on a create, a PUT and a PATCH."""

from __future__ import annotations

import pytest

from pharmacrm.customers import normalise
from pharmacrm.customers.models import Institution, Person
from tests.customers.test_qa_round35_entry_paths import NO_EXTENSION
from tests.customers.test_qa_round36_text_lengths import INSTITUTION_TEXT, PERSON_TEXT, SPACED_TITLE

pytestmark = pytest.mark.django_db

EN = {
    "name": "The name is too long: at most 200 characters (it has 201).",
    "short_name": "The short name is too long: at most 60 characters (it has 61).",
    "legal_representative": "The legal representative's name is too long: at most 50 characters (it has 51).",
}


@pytest.mark.parametrize("field", list(INSTITUTION_TEXT))
def test_the_api_refuses_an_institutions_text_over_its_length_in_the_forms_words(api_for, xiehe, field):
    """DRF counted the text as sent, spaces and all, and answered “Ensure this field has no more than 200
    characters.”, naming no field; the rule and the words of the import and the forms now."""
    limit, value, message = INSTITUTION_TEXT[field]
    body = {"name": "东城社区卫生服务中心", "kind": "community"}
    answer = api_for("kam", lang="zh-hans").post("/api/v1/institutions/", {**body, field: value + "所"}, format="json")
    assert answer.status_code == 400
    assert answer.json() == {field: [message]}
    assert not Institution.objects.exclude(pk__in=[xiehe.pk, *xiehe.children.values_list("pk", flat=True)]).exists()
    # PATCH, in English: nothing changed
    stored = getattr(xiehe, field)
    answer = api_for("kam").patch(
        f"/api/v1/institutions/{xiehe.pk}/", {field: value + "院", "version": xiehe.version}, format="json"
    )
    assert answer.status_code == 400 and answer.json() == {field: [EN[field]]}
    assert getattr(Institution.objects.get(pk=xiehe.pk), field) == stored
    # the limit is taken
    answer = api_for("kam").post("/api/v1/institutions/", {**body, field: value}, format="json")
    assert answer.status_code == 201, answer.content
    assert answer.json()[field] == value


def test_the_api_counts_an_institutions_name_as_stored_on_a_put(api_for, xiehe):
    """A name pasted with runs of spaces fits when the import and the forms count it as stored; the API refused it."""
    api = api_for("kam")
    current = api.get(f"/api/v1/institutions/{xiehe.pk}/").json()
    body = {k: current[k] for k in ("kind", "grade", "region", "version")}
    spaced = "北京协和医院  " + "院" * 193  # 201 characters as sent, 200 as stored
    answer = api.put(f"/api/v1/institutions/{xiehe.pk}/", {**body, "name": spaced}, format="json")
    assert answer.status_code == 200, answer.content
    assert Institution.objects.get(pk=xiehe.pk).name == normalise.clean_text(spaced)
    answer = api.put(f"/api/v1/institutions/{xiehe.pk}/", {**body, "name": spaced + "院",
                                                           "version": answer.json()["version"]}, format="json")  # fmt: skip
    assert answer.status_code == 400 and answer.json() == {"name": [EN["name"]]}


@pytest.mark.parametrize("field", list(PERSON_TEXT))
def test_the_api_refuses_a_persons_name_or_title_over_50_in_the_forms_words(api_for, xiehe, field):
    limit, value, message = PERSON_TEXT[field]
    body = {"name": "李娜", "institution": xiehe.pk}
    answer = api_for("kam", lang="zh-hans").post(
        "/api/v1/people/", {**body, field: value + "师", "email": "not an address"}, format="json"
    )
    assert answer.status_code == 400
    assert answer.json()[field] == [message] and "email" in answer.json()  # every field's error in one answer
    assert not Person.objects.exclude(name="张伟").exists()
    zhang = Person.objects.get(name="张伟")
    answer = api_for("kam").patch(f"/api/v1/people/{zhang.pk}/", {field: value + "师"}, format="json")
    word = "name" if field == "name" else "title"
    assert answer.status_code == 400
    assert answer.json() == {field: [f"The {word} is too long: at most 50 characters (it has 51)."]}
    assert getattr(Person.objects.get(pk=zhang.pk), field) == getattr(zhang, field)
    answer = api_for("kam").post("/api/v1/people/", {**body, field: value}, format="json")
    assert answer.status_code == 201, answer.content
    assert getattr(Person.objects.get(pk=answer.json()["id"]), field) == value


def test_the_api_stores_a_title_as_the_import_does_and_refuses_a_long_external_id_naming_it(api_for, xiehe):
    zhang = Person.objects.get(name="张伟")
    api = api_for("kam")
    answer = api.patch(f"/api/v1/people/{zhang.pk}/", {"title": SPACED_TITLE, "version": zhang.version}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["title"] == Person.objects.get(pk=zhang.pk).title == normalise.clean_text(SPACED_TITLE)
    answer = api.patch(f"/api/v1/people/{zhang.pk}/", {"external_id": "P" * 65}, format="json")
    assert answer.status_code == 400
    assert answer.json() == {"external_id": ["The external id is too long: at most 64 characters (it has 65)."]}


# --- an institution's phone: a mobile takes no extension ----------------------------------------------------------


def test_the_api_refuses_an_institutions_mobile_with_an_extension_and_keeps_a_landlines(api_for, xiehe):
    """13800138000转123 was stored as sent, a number nobody can dial; the person's mobile was refused so already."""
    body = {"name": "东城社区卫生服务中心", "kind": "community"}
    answer = api_for("kam", lang="zh-hans").post(
        "/api/v1/institutions/", {**body, "phone": "13800138000转123"}, format="json"
    )
    assert answer.status_code == 400 and answer.json() == {"phone": [NO_EXTENSION]}
    assert not Institution.objects.filter(name=body["name"]).exists()
    for phone in ("13800138000 ext 123", "13800138000-123"):
        answer = api_for("kam").patch(f"/api/v1/institutions/{xiehe.pk}/", {"phone": phone}, format="json")
        assert answer.json() == {"phone": [
            "A mobile number takes no extension: enter the number alone. Extensions (转123) belong to landlines."
        ]}  # fmt: skip
    assert Institution.objects.get(pk=xiehe.pk).phone == xiehe.phone
    answer = api_for("kam").patch(f"/api/v1/institutions/{xiehe.pk}/", {"phone": "010-69156114转8001",
                                                                       "version": xiehe.version}, format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    assert Institution.objects.get(pk=xiehe.pk).phone == "010-69156114转8001"


def test_the_api_refuses_a_tag_over_50_characters_in_the_forms_words(api_for, xiehe):
    """DRF answered {"tags": {"1": ["Ensure this field has no more than 50 characters."]}}, counted as sent; the
    form and the import cut the tag. Now one rule, counted as stored, one message under `tags`."""
    from tests.customers.test_qa_round36_text_lengths import LONG_TAG, TAG_MESSAGE

    answer = api_for("kam", lang="zh-hans").patch(
        f"/api/v1/institutions/{xiehe.pk}/", {"tags": ["KOL", LONG_TAG], "version": xiehe.version}, format="json"
    )
    assert answer.status_code == 400 and answer.json() == {"tags": [TAG_MESSAGE]}
    assert not xiehe.tags.exists()
    zhang = Person.objects.get(name="张伟")
    spaced = "心血管  " + "药" * 46  # 51 as sent, 50 as stored
    answer = api_for("kam").patch(f"/api/v1/people/{zhang.pk}/", {"tags": [spaced], "version": zhang.version},
                                  format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    assert answer.json()["tags"] == [normalise.clean_text(spaced)]
