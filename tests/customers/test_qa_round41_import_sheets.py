"""Forty-first session: an XLSX export of more customers than a sheet holds goes on in further sheets (联系人,
联系人 (2) …), but the import read one sheet of a workbook, so a full export could not be imported again in one go.
The sheets after the first one read that have its header row are now read one after another as one file (one job,
one report, duplicates found across them, every mode), each error naming its sheet and row; sheets with another
header row are skipped and named. The per-sheet limit of the export is lowered here."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse
from django.utils import translation
from openpyxl import Workbook, load_workbook

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import exporter, importer, services
from pharmacrm.customers.models import ImportJob, Institution, Person


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


@pytest.fixture
def doctors(admin_user, xiehe):
    for n in range(4):
        services.create_person(admin_user, {"name": f"医生{n}", "institution": xiehe, "mobile": f"1390013900{n}"})
    return sorted(Person.objects.values_list("name", flat=True))


def exported(client, target: str, tmp_path, per_sheet: int, monkeypatch) -> tuple[Workbook, str]:
    monkeypatch.setattr(exporter, "XLSX_MAX_ROWS", per_sheet)
    response = client.get(reverse("customers:export", args=[target, "xlsx"]))
    book = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    return book, str(tmp_path / f"{target}.xlsx")


def notes(job) -> list[str]:
    with translation.override("en"):
        return importer.job_messages(job)


def report(client, job, fmt: str = "csv") -> list[list]:
    response = client.get(reverse("customers:import-errors", args=[job.pk, fmt]), HTTP_ACCEPT_LANGUAGE="en")
    content = b"".join(response.streaming_content)
    if fmt == "xlsx":
        return [[c.value for c in r] for r in load_workbook(io.BytesIO(content)).worksheets[0].iter_rows()]
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def test_an_export_in_several_sheets_is_imported_again_in_one_go_all_unchanged(
    client_for, users, doctors, tmp_path, monkeypatch
):
    book, path = exported(client_for("kam"), "people", tmp_path, 2, monkeypatch)
    assert book.sheetnames == ["联系人", "联系人 (2)", "联系人 (3)"]
    book.save(path)
    check = importer.import_file(path, "people", users["kam"], dry_run=True)
    assert (check.status, check.processed_rows, check.unchanged_count, check.error_count) == ("previewed", 5, 5, 0)
    assert importer.job_sheets(check) == ["联系人", "联系人 (2)", "联系人 (3)"]
    assert notes(check) == [
        "The sheets “联系人”、“联系人 (2)”、“联系人 (3)” have the same header row and were read one after another, as one "
        "file; each error names its sheet and row."
    ]
    job = importer.import_file(path, "people", users["kam"], mode="all")
    assert (job.status, job.unchanged_count, job.created_count, job.updated_count) == ("done", 5, 0, 0)
    assert (job.last_row, job.last_sheet) == (2, "联系人 (3)")  # what an interrupted job's note would name
    with translation.override("en"):
        assert importer.message(*importer.interruption_notes(job, 5)[-1]) == (
            "Row 2 is on the sheet “联系人 (3)”: the rows of the sheets before it were handled too, those after it "
            "were not."
        )
    assert sorted(Person.objects.values_list("name", flat=True)) == doctors


def test_institutions_exported_in_two_sheets_come_back_unchanged(client_for, users, xiehe, tmp_path, monkeypatch):
    book, path = exported(client_for("analyst"), "institutions", tmp_path, 1, monkeypatch)
    assert book.sheetnames == ["机构", "机构 (2)"]  # the hospital, then its department under it
    book.save(path)
    job = importer.import_file(path, "institutions", users["admin"], mode="all")
    assert (job.status, job.processed_rows, job.unchanged_count, job.error_count) == ("done", 2, 2, 0)
    assert Institution.objects.count() == 2


def test_a_bad_row_on_the_second_sheet_is_reported_with_its_sheet_and_row(
    client_for, users, doctors, tmp_path, monkeypatch, huey_immediate
):
    client = client_for("kam")
    book, path = exported(client, "people", tmp_path, 3, monkeypatch)
    second = book["联系人 (2)"]
    header = [c.value for c in second[1]]
    second.cell(row=3, column=header.index("手机") + 1, value="1390013")  # 3 rows, then two on sheet 2
    second.cell(row=3, column=header.index("邮箱") + 1, value="not-an-email")
    book.save(path)
    # all or nothing: the sheet-1 rows are not written either
    rejected = importer.import_file(path, "people", users["kam"], mode="all")
    assert (rejected.status, rejected.error_count) == ("rejected", 1)
    assert [(e["sheet"], e["row"], e["column"], e["code"]) for e in rejected.errors] == [
        ("联系人 (2)", 3, "手机", "invalid_mobile"), ("联系人 (2)", 3, "邮箱", "invalid_email")
    ]  # fmt: skip
    # the wizard's check: the page and both reports name the sheet beside the row
    with open(path, "rb") as fh:
        client.post(reverse("customers:import"), {"target": "people", "mode": "good", "file": fh})
    job = ImportJob.objects.latest("pk")
    assert (job.status, job.error_count, job.unchanged_count) == ("previewed", 1, 4)
    page = client.get(reverse("customers:import-detail", args=[job.pk]), HTTP_ACCEPT_LANGUAGE="en")
    assert page.context["sheets"] == ["联系人", "联系人 (2)"]
    assert "<th scope=\"col\">Sheet</th>" in page.content.decode()
    assert [(e["sheet"], e["row"]) for e in page.context["errors"]] == [("联系人 (2)", 3)] * 2
    lines = report(client, job)
    assert lines[0] == ["Sheet", "Row", "Column", "Reason", "Value"]
    named = ["Mobile phone (手机)", "E-mail (邮箱)"]  # the reader's language, the file's header beside
    assert [line[:3] for line in lines[1:]] == [["联系人 (2)", "3", name] for name in named]
    assert [line[:3] for line in report(client, job, "xlsx")[1:]] == [["联系人 (2)", 3, name] for name in named]
    # each download is audited with the error lines it holds (two), and the rows they belong to (one)
    entries = AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT, object_id=str(job.pk)).order_by("seq")
    assert [(e.extra["count"], e.extra["counted"], e.extra["rows_with_errors"]) for e in entries] == [
        (2, "error lines", 1), (2, "error lines", 1)
    ]  # fmt: skip
    # good rows only: the four others are handled, the bad one is skipped
    good = importer.import_file(path, "people", users["kam"], mode="good")
    assert (good.status, good.unchanged_count, good.error_count) == ("done", 4, 1)
    assert [(e["sheet"], e["row"]) for e in good.errors] == [("联系人 (2)", 3)] * 2


def people_sheet(book: Workbook, title: str, rows: list[list[str]], header=("姓名", "所属机构", "手机", "外部编号")):
    sheet = book.create_sheet(title)
    sheet.append(list(header))
    for row in rows:
        sheet.append(row)
    return sheet


def test_a_duplicate_across_sheets_is_caught_and_a_sheet_with_another_header_is_skipped(
    client_for, users, xiehe, tmp_path
):
    book = Workbook()
    book.remove(book.active)
    people_sheet(book, "名单", [["李娜", xiehe.code, "13800138001", "EXT-1"], ["王芳", xiehe.code, "13800138002", "EXT-2"]])
    people_sheet(book, "名单 (2)", [["赵敏", xiehe.code, "13800138003", "EXT-3"], ["刘洋", xiehe.code, "13800138004", "EXT-1"]])
    people_sheet(book, "说明", [["本表由销售部整理"]], header=("备注",))
    path = tmp_path / "people.xlsx"
    book.save(path)
    job = importer.import_file(path, "people", users["kam"], mode="good")
    assert (job.status, job.created_count, job.error_count) == ("done", 3, 1)
    assert [(e["sheet"], e["row"], e["column"], e["code"], e["params"]) for e in job.errors] == [
        ("名单 (2)", 3, "外部编号", "duplicate_in_sheet", {"first": 2, "sheet": "名单"})
    ]
    with translation.override("en"):
        assert importer.error_text(job.errors[0]) == (
            "The same value already appears in row 2 of the sheet “名单” of this file."
        )
    assert sorted(Person.objects.filter(external_id__startswith="EXT").values_list("name", flat=True)) == [
        "李娜", "王芳", "赵敏"
    ]  # fmt: skip
    assert importer.job_sheets(job) == ["名单", "名单 (2)"]
    assert "These sheets were skipped, as their header row is not that of the sheets read: “说明”." in notes(job)


def test_a_single_sheet_workbook_says_as_before_which_sheet_was_read(users, xiehe, tmp_path):
    book = Workbook()
    book.remove(book.active)
    people_sheet(book, "说明", [["本表由销售部整理"]], header=("备注",))
    people_sheet(book, "名单", [["李娜", xiehe.code, "13800138001", "EXT-1"]])
    path = tmp_path / "people.xlsx"
    book.save(path)
    job = importer.import_file(path, "people", users["kam"], mode="good")
    assert (job.status, job.created_count, importer.job_sheets(job)) == ("done", 1, [])
    assert "Only the sheet “名单” was read; the workbook's other sheets were not: “说明”." in notes(job)
