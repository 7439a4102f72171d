"""Forty-first session: an XLSX export of more customers than an Excel sheet holds (1,048,575 rows under the header)
stopped at the limit without a word, while its audit entry recorded the full count. The rows go on in further
sheets with the same header (联系人, 联系人 (2) …), and the audit entries record the rows the file really holds.
The per-sheet limit is lowered here, so that the test need not write a million rows."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import exporter, services
from pharmacrm.customers.models import Person


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


@pytest.fixture
def five_people(admin_user, xiehe):
    for n in range(4):
        services.create_person(admin_user, {"name": f"医生{n}", "institution": xiehe, "mobile": f"1390013900{n}"})
    return list(Person.objects.order_by("code").values_list("name", flat=True))


def workbook(client, target: str, **headers):
    response = client.get(reverse("customers:export", args=[target, "xlsx"]), **headers)
    assert response.status_code == 200
    return load_workbook(io.BytesIO(b"".join(response.streaming_content)))


def test_an_export_beyond_a_sheets_rows_goes_on_in_further_sheets(client_for, monkeypatch, five_people):
    monkeypatch.setattr(exporter, "XLSX_MAX_ROWS", 2)
    book = workbook(client_for("kam"), "people")
    assert book.sheetnames == ["联系人", "联系人 (2)", "联系人 (3)"]
    sheets = [[[c.value for c in row] for row in ws.iter_rows()] for ws in book.worksheets]
    header = sheets[0][0]
    assert all(rows[0] == header for rows in sheets)  # each sheet under the same header, to be filtered alone
    assert [len(rows) - 1 for rows in sheets] == [2, 2, 1]
    names = [row[header.index("姓名")] for rows in sheets for row in rows[1:]]
    assert names == five_people  # every person once, in code order
    export = AuditEntry.objects.filter(action="export").latest("seq")
    assert (export.extra["count"], export.extra["sheets"]) == (5, 3)
    read = AuditEntry.objects.filter(action="read_personal").latest("seq")
    assert read.extra["count"] == 5
    assert sorted(read.extra["people"]) == sorted(Person.objects.values_list("pk", flat=True))


def test_the_further_sheets_are_named_in_the_readers_language(client_for, monkeypatch, xiehe):
    monkeypatch.setattr(exporter, "XLSX_MAX_ROWS", 1)  # the hospital, then its department
    assert workbook(client_for("analyst"), "institutions").sheetnames == ["机构", "机构 (2)"]
    english = workbook(client_for("analyst"), "institutions", HTTP_ACCEPT_LANGUAGE="en")
    assert english.sheetnames == ["institutions", "institutions (2)"]
    assert AuditEntry.objects.filter(action="export").latest("seq").extra["count"] == 2


def test_a_sheet_that_is_exactly_full_starts_no_empty_one(client_for, monkeypatch, xiehe):
    monkeypatch.setattr(exporter, "XLSX_MAX_ROWS", 2)
    book = workbook(client_for("analyst"), "institutions")
    assert book.sheetnames == ["机构"] and book.worksheets[0].max_row == 3
    assert AuditEntry.objects.filter(action="export").latest("seq").extra["sheets"] == 1


def test_an_export_of_nobody_still_has_its_header(client_for, monkeypatch, admin_user):
    monkeypatch.setattr(exporter, "XLSX_MAX_ROWS", 2)
    book = workbook(client_for("kam"), "people")
    assert book.sheetnames == ["联系人"]
    assert [c.value for c in next(book.worksheets[0].iter_rows())][:2] == ["内部编号", "姓名"]
    assert AuditEntry.objects.filter(action="export").latest("seq").extra["count"] == 0


def test_a_long_sheet_name_keeps_its_number_within_excels_31_characters():
    title = exporter.sheet_title("很长的" * 12, 12)
    assert len(title) == 31 and title.endswith(" (12)")
    assert exporter.sheet_title("a/b:c", 1) == "a b c"
