"""Forty-first session: a resident ID card number (GB 11643) encodes its holder's date of birth in characters 7–14,
and a person whose birthday was another day was taken as they came, by the form, the API and the import. The birthday
is now refused, naming the ID number's date; a stored person whose two already disagree can still be edited, and is
told only when one of the two is changed. An editor who sees the personal data masked is not told what the stored
one holds (their birthday is not compared with an ID number they may not see)."""

from __future__ import annotations

import csv
import datetime

import pytest
from django.urls import reverse

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob, Person

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(born: str, seq: str = "123") -> str:
    """A valid ID number of 北京市朝阳区 for someone born on `born` (YYYYMMDD)."""
    body = f"110105{born}{seq}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, WEIGHTS, strict=True)) % 11]


MISMATCH = "生日与身份证号码中的出生日期（{}）不一致。"
NEW_PERSON = {"name": "李娜", "role": "doctor", "tier": "new", "stage": "potential"}


@pytest.fixture
def legacy(xiehe):
    """张伟 (birthday 1975-03-15) stored before the check with an ID number of someone born on 1980-01-01."""
    zhang = Person.objects.get(name="张伟")
    zhang.id_number = id_number("19800101")
    zhang.refresh_derived()
    zhang.save()
    return zhang


def _edit_data(client, person) -> tuple[str, dict]:
    url = reverse("customers:person-edit", args=[person.pk])
    form = client.get(url).context["form"]
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    return url, data


# --- the form ---------------------------------------------------------------------------------------------------


def test_the_form_refuses_a_birthday_other_than_the_id_numbers(client_for, xiehe):
    client = client_for("kam")
    url = reverse("customers:person-create")
    person = {**NEW_PERSON, "institution": xiehe.pk, "id_number": id_number("19820704")}
    answer = client.post(url, {**person, "birthday": "1982-07-05"})
    assert answer.status_code == 200
    assert answer.context["form"].errors["birthday"] == [MISMATCH.format("1982-07-04")]
    assert not Person.objects.filter(name="李娜").exists()
    answer = client.post(url, {**person, "birthday": "1982-07-04"})
    assert answer.status_code == 302
    assert Person.objects.get(name="李娜").birthday == datetime.date(1982, 7, 4)
    # an ID number alone, or a birthday alone, is nothing to compare: taken as it is (the birthday is not filled in)
    assert client.post(url, {**person, "name": "王芳", "id_number": id_number("19900101", "456")}).status_code == 302
    assert Person.objects.get(name="王芳").birthday is None


def test_the_form_says_it_in_english_too(client_for, xiehe):
    answer = client_for("kam").post(
        reverse("customers:person-create"),
        {**NEW_PERSON, "institution": xiehe.pk, "id_number": id_number("19820704"), "birthday": "1982-04-07"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert answer.context["form"].errors["birthday"] == [
        "The birthday differs from the date of birth in the ID card number (1982-07-04)."
    ]


def test_the_form_shows_it_with_the_other_fields_errors_in_one_round(client_for, xiehe):
    answer = client_for("kam").post(
        reverse("customers:person-create"),
        {**NEW_PERSON, "institution": xiehe.pk, "mobile": "12345", "id_number": id_number("19820704"),
         "birthday": "1982-07-05"},
    )  # fmt: skip
    errors = answer.context["form"].errors
    assert "mobile" in errors and errors["birthday"] == [MISMATCH.format("1982-07-04")]


def test_a_stored_disagreement_stops_an_edit_only_when_the_birthday_or_the_id_number_changes(client_for, legacy):
    client = client_for("kam")
    url, data = _edit_data(client, legacy)
    assert client.post(url, {**data, "title": "副主任医师"}).status_code == 302  # the ID number not touched
    url, data = _edit_data(client, legacy)
    answer = client.post(url, {**data, "birthday": "1975-03-16"})
    assert answer.context["form"].errors["birthday"] == [MISMATCH.format("1980-01-01")]
    answer = client.post(url, {**data, "id_number": id_number("19750316")})  # the ID number changed: still not 03-15
    assert answer.context["form"].errors["birthday"] == [MISMATCH.format("1975-03-16")]
    assert client.post(url, {**data, "birthday": "1980-01-01"}).status_code == 302  # put right
    assert Person.objects.get(pk=legacy.pk).birthday == datetime.date(1980, 1, 1)


def test_an_editor_who_sees_personal_data_masked_is_not_told_the_stored_id_numbers_date(client_for, legacy):
    # an agent edits blind: were their birthday compared with the ID number they cannot see, each refusal would
    # tell them a date it is not, one guess at a time, until the saved one told them the stored date of birth
    client = client_for("agent")
    url, data = _edit_data(client, legacy)
    answer = client.post(url, {**data, "birthday": "1975-03-16"})
    assert answer.status_code == 302, answer.context["form"].errors
    assert "1980-01-01" not in client.get(reverse("customers:person", args=[legacy.pk])).content.decode()
    # both given by them, the two are compared
    answer = client.post(url, {**data, "birthday": "1975-03-16", "id_number": id_number("19750315")})
    assert answer.context["form"].errors["birthday"] == [MISMATCH.format("1975-03-15")]


# --- the import -------------------------------------------------------------------------------------------------


def _csv(tmp_path, rows: list[list[str]]):
    path = tmp_path / "people.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


@pytest.mark.parametrize("mode", ["good", "all"])
def test_the_import_refuses_the_row_in_its_error_report(users, xiehe, tmp_path, settings, mode):
    settings.VAR_DIR = tmp_path
    path = _csv(tmp_path, [
        ["姓名", "所属机构", "生日", "身份证号"],
        ["李娜", "北京协和医院", "1982-07-05", id_number("19820704")],
        ["王芳", "北京协和医院", "1990/1/1", id_number("19900101", "456")],
        ["刘洋", "北京协和医院", "", id_number("19910101", "789")],
    ])  # fmt: skip
    job = importer.import_file(path, "people", users["kam"], mode=mode)
    assert job.error_count == 1
    (error,) = job.errors
    assert (error["row"], error["column"]) == (2, "生日")
    assert importer.error_text(error) == "生日与身份证号码中的出生日期（第7至14位）不一致。"
    assert "19820704" not in str(job.errors) and "1982-07-04" not in str(job.errors)  # no personal value kept
    if mode == "good":
        assert sorted(Person.objects.values_list("name", flat=True)) == ["刘洋", "张伟", "王芳"]
        assert Person.objects.get(name="刘洋").birthday is None
    else:
        assert job.status == ImportJob.Status.FAILED or job.created_count == 0
        assert list(Person.objects.values_list("name", flat=True)) == ["张伟"]


def test_the_imports_error_report_download_says_it(client_for, users, xiehe, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    header = ["姓名", "所属机构", "生日", "身份证号"]
    path = _csv(tmp_path, [header, ["李娜", "北京协和医院", "1982-07-05", id_number("19820704")]])
    job = importer.import_file(path, "people", users["kam"], mode="good")
    url = reverse("customers:import-errors", args=[job.pk, "csv"])
    answer = client_for("kam").get(url, HTTP_ACCEPT_LANGUAGE="en")
    report = list(csv.reader(b"".join(answer.streaming_content).decode("utf-8-sig").splitlines()))
    reason = "The birthday differs from the date of birth in the ID card number (its characters 7–14)."
    assert report[1][:3] == ["2", "Birthday (生日)", reason]  # the column in the reader's language


def test_an_import_refuses_a_change_against_the_stored_value_but_not_an_old_disagreement(
    users, legacy, tmp_path, settings
):
    settings.VAR_DIR = tmp_path
    header = ["内部编号", "姓名", "生日", "身份证号", "职称"]
    stored = [legacy.code, "张伟", "1975-03-15", legacy.id_number]
    job = importer.import_file(_csv(tmp_path, [header, [*stored, "副主任医师"]]), "people", users["kam"])
    assert (job.updated_count, job.error_count) == (1, 0), job.errors  # the old pair as it is: not the row's doing

    def one(column: str, value: str):
        path = _csv(tmp_path, [["内部编号", "姓名", column], [legacy.code, "张伟", value]])
        return importer.import_file(path, "people", users["kam"])

    job = one("生日", "1975-03-16")
    assert [(e["column"], e["code"]) for e in job.errors] == [("生日", "birthday_not_id")]
    job = one("身份证号", id_number("19750316"))
    assert [(e["column"], e["code"]) for e in job.errors] == [("身份证号", "birthday_not_id")]  # no 生日 column
    job = one("身份证号", id_number("19750315"))
    assert (job.updated_count, job.error_count) == (1, 0), job.errors
    assert Person.objects.get(pk=legacy.pk).id_number == id_number("19750315")
