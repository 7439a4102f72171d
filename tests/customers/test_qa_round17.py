"""Session 17 review (issue 2): a zip-bomb workbook is refused before it is expanded; Chinese punctuation in
names survives an import; long digit strings in CSV exports survive Excel."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from pharmacrm.customers import normalise
from pharmacrm.customers.models import ImportJob, Institution


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def bomb(filler_mb: int = 20) -> bytes:
    """A well-formed workbook whose one sheet expands to `filler_mb` MB of spaces from a few kB."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        zf.writestr("xl/workbook.xml", '<?xml version="1.0"?><workbook/>')
        zf.writestr("xl/worksheets/sheet1.xml",
                    '<?xml version="1.0"?><worksheet><sheetData>' + " " * (filler_mb << 20) + "</sheetData></worksheet>")  # fmt: skip
    return out.getvalue()


def test_a_zip_bomb_workbook_is_refused_before_it_is_expanded(client_for, var_dir):
    content = bomb()
    assert len(content) < 200_000
    response = client_for("kam").post(
        reverse("customers:import"),
        {"target": "institutions", "mode": "all", "file": SimpleUploadedFile("机构.xlsx", content)},
        HTTP_ACCEPT_LANGUAGE="en",
    )  # fmt: skip
    assert response.status_code == 400
    assert "would expand to 20 MB when opened" in response.content.decode()
    assert ImportJob.objects.count() == 0 and Institution.objects.count() == 0
    assert list((var_dir / "imports").glob("*")) == []


def test_chinese_punctuation_in_names_and_addresses_survives_import_and_a_round_trip(users, client_for, tmp_path):
    from pharmacrm.customers import importer, services

    path = tmp_path / "机构.csv"
    path.write_text("机构名称,机构类型,地址\n测试大药房（和平店）,药店,天津市和平区南京路１号，临街；近地铁：2号线\n",
                    encoding="utf-8")  # fmt: skip
    job = importer.import_file(path, "institutions", users["kam"], mode="all")
    assert job.created_count == 1, job.errors
    shop = Institution.objects.get()
    assert shop.name == "测试大药房（和平店）"  # the registered name as written, not 测试大药房(和平店)
    assert shop.address == "天津市和平区南京路1号，临街；近地铁：2号线"  # full-width digits made ASCII only
    # the export of it imports again as unchanged
    export = client_for("kam").get(reverse("customers:export", args=["institutions", "csv"]))
    again = tmp_path / "export.csv"
    again.write_bytes(b"".join(export.streaming_content))
    job = importer.import_file(again, "institutions", users["kam"], mode="all")
    assert (job.created_count, job.updated_count, job.unchanged_count) == (0, 0, 1), job.errors
    # a department stored with ASCII brackets (before this release) is found from the full-width form
    hospital = services.create_institution(users["admin"], {"name": "测试医院", "kind": "hospital"})
    services.create_institution(users["admin"], {"name": "心内科", "kind": "department", "parent": hospital})
    old = "心内科(一病区)"  # as the old folding stored it
    Institution.objects.filter(name="心内科").update(name=old, name_norm=normalise.name(old))
    people = tmp_path / "人员.csv"
    people.write_text(f"姓名,所属机构,科室\n张三,{hospital.code},心内科（一病区）\n", encoding="utf-8")
    job = importer.import_file(people, "people", users["kam"], mode="all")
    assert job.created_count == 1, job.errors


def test_long_digit_codes_in_a_csv_export_stay_text_for_excel_and_import_again(users, client_for, tmp_path):
    import csv

    from pharmacrm.customers import importer, services

    services.create_institution(users["admin"], {"name": "上海某医院", "kind": "hospital",
                                                 "credit_code": "123101063338792605"})  # fmt: skip
    response = client_for("kam").get(reverse("customers:export", args=["institutions", "csv"]))
    content = b"".join(response.streaming_content)
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    # a leading tab: Excel shows the 18 digits as text instead of 1.23101E+17 (and keeps all of them)
    assert rows[0]["统一社会信用代码"] == "\t123101063338792605"
    path = tmp_path / "export.csv"
    path.write_bytes(content)
    job = importer.import_file(path, "institutions", users["kam"], mode="all")
    assert (job.created_count, job.updated_count, job.unchanged_count) == (0, 0, 1), job.errors


def test_the_history_digest_of_a_personal_field_cannot_be_compared_across_people(users, xiehe):
    """A digest equal for the same value everywhere let an agent type a guessed birthday on a scratch person and
    compare: confirmed without a reveal and without an audit entry."""
    import datetime as dt

    from pharmacrm.customers import services
    from pharmacrm.customers.models import Person

    first = services.create_person(users["admin"], {"name": "王芳", "institution": xiehe, "birthday": dt.date(1980, 5, 6),
                                                    "mobile": "13800138000"})  # fmt: skip
    second = services.create_person(users["admin"], {"name": "李娜", "institution": xiehe, "birthday": dt.date(1980, 5, 6)})
    a, b = services.snapshot(first, ["birthday"]), services.snapshot(second, ["birthday"])
    assert a["birthday"].startswith("******#") and a != b
    assert services.snapshot(Person.objects.get(pk=first.pk), ["birthday"]) == a  # the same record: unchanged


def test_files_the_application_writes_are_for_its_own_account_only(settings, tmp_path):
    import os
    import stat

    from django.core.files.base import ContentFile
    from django.core.files.storage import FileSystemStorage

    saved = FileSystemStorage(location=tmp_path / "files").save("处方.jpg", ContentFile(b"\xff\xd8\xff"))
    mode = (tmp_path / "files" / saved).stat().st_mode
    assert mode & (stat.S_IRWXG | stat.S_IRWXO) == 0, oct(mode)
    with open(tmp_path / "mail.eml", "w") as fh:  # what the process writes otherwise (mail, logs, the database)
        fh.write("x")
    assert os.stat(tmp_path / "mail.eml").st_mode & (stat.S_IRWXG | stat.S_IRWXO) == 0


def test_a_cell_merged_over_several_rows_applies_to_each_of_them(users, tmp_path):
    from openpyxl import Workbook

    from pharmacrm.customers import importer, services
    from pharmacrm.customers.models import Person

    hospital = services.create_institution(users["admin"], {"name": "测试医院", "kind": "hospital"})
    services.create_institution(users["admin"], {"name": "心内科", "kind": "department", "parent": hospital})
    wb = Workbook()
    ws = wb.active
    ws.append(["姓名", "所属机构", "科室"])
    ws.append(["张三", hospital.code, "心内科"])
    ws.append(["李四", None, None])
    ws.append(["王五", None, None])
    ws.merge_cells("B2:B4")  # one hospital and one department over the three doctors, as offices lay it out
    ws.merge_cells("C2:C4")
    path = tmp_path / "人员.xlsx"
    wb.save(path)

    job = importer.import_file(path, "people", users["kam"], mode="all")

    assert job.created_count == 3, job.errors
    assert set(Person.objects.values_list("institution__name", "department__name")) == {("测试医院", "心内科")}
