"""Thirty-fifth session, the API's side: a customer record sent over the API follows the rule the import and the
forms follow (tests/customers/test_qa_round35_entry_paths.py), with the same message under the field."""

from __future__ import annotations

import pytest

from pharmacrm.customers.models import Institution, Person
from tests.customers.test_qa_round35_entry_paths import LONG_ADDRESS, SPACED_ADDRESS

pytestmark = pytest.mark.django_db


# --- an address: at most 255 characters as stored -------------------------------------------------------------


def test_the_api_refuses_an_address_over_255_characters_with_the_imports_words(api_for, xiehe):
    """The API counted an institution's address as sent, spaces and all (the import counts it as stored) and
    answered DRF's own words, which name no field; the same rule and the same message now, in the caller's
    language."""
    api = api_for("kam", lang="zh-hans")
    body = {"name": "东城社区卫生服务中心", "kind": "community"}
    answer = api.post("/api/v1/institutions/", {**body, "address": LONG_ADDRESS}, format="json")
    assert answer.status_code == 400
    assert answer.json() == {"address": ["地址过长：最多 255 个字符（当前为 256 个）。"]}
    answer = api_for("kam", lang="en").patch(
        f"/api/v1/institutions/{xiehe.pk}/", {"address": LONG_ADDRESS, "version": xiehe.version}, format="json"
    )
    assert answer.json() == {"address": ["The address is too long: at most 255 characters (it has 256)."]}
    assert Institution.objects.get(pk=xiehe.pk).address == ""
    # one that fits once its spaces are collapsed is taken, as the import and the form take it
    answer = api.post("/api/v1/institutions/", {**body, "address": SPACED_ADDRESS}, format="json")
    assert answer.status_code == 201, answer.content
    assert len(answer.json()["address"]) == 255

    answer = api.post("/api/v1/people/", {"name": "李娜", "institution": xiehe.pk, "home_address": LONG_ADDRESS,
                                          "email": "not an address"}, format="json")  # fmt: skip
    assert answer.status_code == 400
    assert answer.json()["home_address"] == ["家庭住址过长：最多 255 个字符（当前为 256 个）。"]
    assert "email" in answer.json()  # the other field's error in the same answer
    assert not Person.objects.filter(name="李娜").exists()


# --- a consent's evidence: at most 5000 characters, in the form's words ---------------------------------------


def test_the_api_refuses_evidence_over_5000_characters_in_the_forms_words(api_for, xiehe):
    from pharmacrm.customers.models import Consent

    person = Person.objects.get(name="张伟")
    body = {"person": person.pk, "purpose": "marketing", "channel": "phone", "status": "given"}
    answer = api_for("agent", lang="zh-hans").post("/api/v1/consents/", {**body, "evidence": "证" * 5001}, format="json")
    assert answer.status_code == 400
    assert answer.json() == {"evidence": ["凭证过长：最多 5000 个字符（当前为 5001 个）。"]}
    answer = api_for("agent").post("/api/v1/consents/", {**body, "evidence": "证" * 5001}, format="json")
    assert answer.json() == {"evidence": ["The evidence is too long: at most 5000 characters (it has 5001)."]}
    assert not Consent.objects.filter(person=person).exists()
    answer = api_for("agent").post("/api/v1/consents/", {**body, "evidence": "证" * 5000}, format="json")
    assert answer.status_code == 201, answer.content
    assert len(Consent.objects.get(person=person).evidence) == 5000


# --- an empty birthday: no birthday, as on the form -------------------------------------------------------------


def test_an_empty_birthday_sent_to_the_api_is_no_birthday_as_on_the_form(api_for, xiehe):
    """A client sending its person form as it stands, birthday field empty, was refused: “Date has wrong format. Use
    one of these formats instead: YYYY-MM-DD.” The web form takes an empty birthday as none (and, on an edit, removes
    the one stored); the API does the same with "" as with null."""
    from pharmacrm.core.models import AuditEntry

    api = api_for("kam")
    answer = api.post("/api/v1/people/", {"name": "李娜", "institution": xiehe.pk, "birthday": ""}, format="json")
    assert answer.status_code == 201, answer.content
    assert answer.json()["contact"]["birthday"] == ""
    assert Person.objects.get(name="李娜").birthday is None

    zhang = Person.objects.get(name="张伟")
    assert str(zhang.birthday) == "1975-03-15"
    answer = api.patch(f"/api/v1/people/{zhang.pk}/", {"birthday": " ", "version": zhang.version}, format="json")
    assert answer.status_code == 200, answer.content
    assert Person.objects.get(pk=zhang.pk).birthday is None
    entry = AuditEntry.objects.filter(object_id=str(zhang.pk), action=AuditEntry.Action.UPDATE).latest("id")
    assert "birthday" in entry.changes
    # a date that is none is still refused, naming the field
    answer = api.patch(f"/api/v1/people/{zhang.pk}/", {"birthday": "1975/3/15x"}, format="json")
    assert answer.status_code == 400 and list(answer.json()) == ["birthday"]


# --- a mobile number with an extension: refused, as by the form and the import ----------------------------------


def test_the_api_refuses_a_mobile_with_an_extension_and_keeps_a_landlines(api_for, xiehe):
    """13800138000转123 was taken and stored as 13800138000: the extension dropped without a word."""
    answer = api_for("kam", lang="zh-hans").post(
        "/api/v1/people/", {"name": "李娜", "institution": xiehe.pk, "mobile": "13800138000转123"}, format="json"
    )
    assert answer.status_code == 400
    assert answer.json() == {"mobile": ["手机号码不带分机号：请只填写号码本身。分机号（转123）只用于座机。"]}
    zhang = Person.objects.get(name="张伟")
    answer = api_for("kam").patch(f"/api/v1/people/{zhang.pk}/", {"mobile": "138 0013 8000 ext. 12"}, format="json")
    assert answer.json() == {"mobile": [
        "A mobile number takes no extension: enter the number alone. Extensions (转123) belong to landlines."
    ]}  # fmt: skip
    assert not Person.objects.filter(name="李娜").exists()
    answer = api_for("kam").post("/api/v1/people/", {"name": "李娜", "institution": xiehe.pk, "mobile": "13800138001",
                                                     "landline": "010-12345678转123"}, format="json")  # fmt: skip
    assert answer.status_code == 201, answer.content
    assert Person.objects.get(name="李娜").landline == "01012345678转123"
