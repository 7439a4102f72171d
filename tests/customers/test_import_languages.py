"""The import's refusals and row errors in the reader's language: an English or Traditional-Chinese user was told
"Required columns are missing: 机构类型", that “Hospital” "is not an accepted value. Accepted: 医院、科室…", and saw
the Chinese template's headers over the preview and in the error report's column, whatever their language. The
columns are named (and the accepted words listed) in the reader's language, with the file's own header beside a
column's name where the file words it otherwise; the row / column / reason structure is kept."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation
from openpyxl import load_workbook

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    return tmp_path / "var"


def speaking(client_for, users, role: str, language: str):
    users[role].language = language
    users[role].save(update_fields=["language"])
    return client_for(role)


def csv_upload(rows: list[list[str]], name: str = "customers.csv") -> SimpleUploadedFile:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return SimpleUploadedFile(name, buf.getvalue().encode("utf-8"), content_type="text/csv")


def post(client, target: str, rows: list[list[str]]):
    return client.post(reverse("customers:import"), {"target": target, "mode": "good", "file": csv_upload(rows)})



@pytest.mark.parametrize("language", ["en", "zh-hant"])
def test_missing_required_columns_are_named_in_the_readers_language(client_for, users, language):
    response = post(speaking(client_for, users, "kam", language), "institutions", [["机构名称", "省"], ["甲医院", "北京市"]])
    text = response.content.decode()
    assert response.status_code == 400
    with translation.override(language):
        name = str(importer.INSTITUTION_COLUMNS[2].label)  # Institution type / 機構類型
    assert name in text and "机构类型" not in text
    if language == "en":
        assert "Required columns are missing: Institution type." in text
    assert not ImportJob.objects.exists()


def test_a_simplified_chinese_reader_still_reads_the_templates_headers(client_for, users):
    text = post(speaking(client_for, users, "kam", "zh-hans"), "people", [["性别"], ["男"]]).content.decode()
    assert "姓名" in text and "Name" not in text


def choice_error_job(client_for, users, language: str, huey_immediate) -> tuple:
    client = speaking(client_for, users, "kam", language)
    rows = [["机构名称", "机构类型", "医院等级"], ["甲医院", "医院", "五星级"], ["乙医院", "Hospitalx", ""]]
    response = post(client, "institutions", rows)
    assert response.status_code == 302
    return client, ImportJob.objects.get()


def test_an_english_reader_gets_the_accepted_words_and_the_column_in_english(client_for, users, huey_immediate):
    client, job = choice_error_job(client_for, users, "en", huey_immediate)
    assert job.error_count == 2
    page = client.get(reverse("customers:import-detail", args=[job.pk])).content.decode()
    assert "“五星级” is not an accepted value. Accepted: Grade III-A, Grade III-B" in page
    assert "“Hospitalx” is not an accepted value. Accepted: Hospital, Department, Clinic" in page
    assert "三级甲等" not in page and "医院、科室" not in page
    # the column: its English name, the file's Chinese header beside it (that is where the cell is found)
    assert "<td>Hospital grade (医院等级)</td>" in page and "<td>Institution type (机构类型)</td>" in page
    # the preview's columns in English
    preview = page[page.index('id="import-preview"'):]
    assert '<th scope="col">Institution name</th>' in preview and "机构名称" not in preview

    response = client.get(reverse("customers:import-errors", args=[job.pk, "csv"]))
    report = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert report[0] == ["Row", "Column", "Reason", "Value"]
    assert report[1][:2] == ["2", "Hospital grade (医院等级)"] and "Accepted: Grade III-A, " in report[1][2]
    assert report[2][:2] == ["3", "Institution type (机构类型)"] and "Accepted: Hospital, " in report[2][2]
    assert report[1][3] == "五星级"


def test_a_traditional_chinese_reader_gets_them_in_traditional_characters(client_for, users, huey_immediate):
    client, job = choice_error_job(client_for, users, "zh-hant", huey_immediate)
    page = client.get(reverse("customers:import-detail", args=[job.pk])).content.decode()
    with translation.override("zh-hant"):
        grades = importer.choice_label(importer.HospitalGrade, "3A")
        grade_column = str(importer.INSTITUTION_COLUMNS[3].label)
    assert grades == "三級甲等" and grades in page and "三级甲等" not in page
    # 醫院等級 is 医院等级 in the other script: the column is named once
    assert f"<td>{grade_column}</td>" in page

    xlsx = client.get(reverse("customers:import-errors", args=[job.pk, "xlsx"]))
    book = load_workbook(io.BytesIO(b"".join(xlsx.streaming_content)))
    rows = [[c.value for c in r] for r in book.active.iter_rows()]
    assert rows[1][1] == grade_column and "三級甲等" in rows[1][2]


def test_the_same_job_reads_in_simplified_chinese_as_before(client_for, users, huey_immediate):
    client, job = choice_error_job(client_for, users, "en", huey_immediate)
    chinese = speaking(client_for, users, "kam", "zh-hans")
    page = chinese.get(reverse("customers:import-detail", args=[job.pk])).content.decode()
    assert "三级甲等、三级乙等" in page and "<td>医院等级</td>" in page and "Grade III-A" not in page


def test_a_column_named_in_a_message_is_in_the_readers_language():
    err = {"row": 2, "column": "手机", "code": "phone_other_number", "params": {"column": "座机"}}
    with translation.override("en"):
        assert importer.error_text(err, "people") == (
            "This row's Landline (座机) column holds another number: keep one of them here, or put the second one in "
            "the remarks."
        )
        assert importer.column_name("people", "手机") == "Mobile phone (手机)"
        assert importer.column_name("people", "Mobile phone") == "Mobile phone"
        assert importer.column_name("people", "mobile") == "Mobile phone"  # a column the file lacks, by its key
    with translation.override("zh-hans"):
        assert importer.column_name("people", "Mobile phone") == "手机（Mobile phone）"
        assert importer.column_name("people", "手机") == "手机"


def test_an_error_stored_with_its_words_listed_still_reads():
    """Errors kept before the accepted words were listed when read keep the words they were stored with."""
    err = {"row": 2, "column": "性别", "code": "invalid_choice", "params": {"value": "x", "choices": "男、女"}}
    with translation.override("en"):
        assert importer.error_text(err, "people") == "“x” is not an accepted value. Accepted: 男、女."
