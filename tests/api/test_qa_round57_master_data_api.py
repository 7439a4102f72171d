"""Session 57, customer master data through the API: a region code in full-width digits is the code (as the import
reads it), an unknown one is named in the import's words; a name of punctuation alone is refused; a department
lies in its hospital's province."""

from __future__ import annotations

import pytest

from pharmacrm.customers.models import Institution

NO_WORD = "The name must contain a letter, a Chinese character or a digit: punctuation and symbols alone are not a name."


def _patch(client, obj, body):
    return client.patch(f"/api/v1/institutions/{obj.pk}/", body, format="json", HTTP_IF_MATCH=f'"{obj.version}"')


@pytest.mark.parametrize("code", ["１１０１０１", " 110101 ", "１１０１０１　"])
def test_a_region_code_in_full_width_digits_is_the_code(api_for, xiehe, code):
    answer = _patch(api_for("admin"), xiehe, {"region": code})
    assert answer.status_code == 200, answer.content
    assert answer.json()["region"] == "110101"
    xiehe.refresh_from_db()
    assert xiehe.region_id == "110101" and xiehe.province == "110000"
    created = api_for("admin").post("/api/v1/institutions/", {"name": "东城诊所", "kind": "clinic", "region": code},
                                    format="json")  # fmt: skip
    assert created.status_code == 201 and created.json()["region"] == "110101"


@pytest.mark.parametrize(("lang", "message"), [("en", "“119999” is not an official region code."),
                                               ("zh-hans", "“119999”不是有效的行政区划代码。")])  # fmt: skip
def test_an_unknown_region_code_is_named_in_the_readers_language(api_for, xiehe, lang, message):
    answer = _patch(api_for("admin", lang=lang), xiehe, {"region": "119999"})
    assert answer.status_code == 400
    assert answer.json()["region"] == [message]
    answer = _patch(api_for("admin", lang=lang), xiehe, {"region": "１１９９９９"})
    assert answer.status_code == 400 and answer.json()["region"] == [message.replace("119999", "１１９９９９")]


@pytest.mark.parametrize("name", ["（）", "---", "···"])
def test_the_api_refuses_a_name_of_punctuation_alone(api_for, xiehe, name):
    answer = _patch(api_for("admin"), xiehe, {"name": name})
    assert answer.status_code == 400 and answer.json()["name"] == [NO_WORD]
    created = api_for("admin").post("/api/v1/institutions/", {"name": name, "kind": "clinic"}, format="json")
    assert created.status_code == 400 and created.json()["name"] == [NO_WORD]
    assert not Institution.objects.filter(name=name).exists()


def test_the_api_refuses_a_departments_region_in_another_province(api_for, admin_user, xiehe):
    from pharmacrm.customers import services

    dept = services.create_institution(admin_user, {"name": "心内科", "kind": "department", "parent": xiehe})
    answer = _patch(api_for("admin"), dept, {"region": "310104"})
    assert answer.status_code == 400, answer.content
    assert answer.json()["region"] == [
        "A department lies in its hospital's province: 北京协和医院 is in Beijing, so choose a region in Beijing."]
    dept.refresh_from_db()
    assert dept.region_id == "110105"
    assert _patch(api_for("admin"), dept, {"region": "110101"}).json()["region"] == "110101"
