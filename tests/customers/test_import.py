"""Customer import: template, dry run with row errors, both modes, re-import, refusals, encryption."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from django.utils import translation
from openpyxl import Workbook, load_workbook

from pharmacrm.core import crypto
from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import importer, normalise, search
from pharmacrm.customers.models import ImportJob, Institution, Person

SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "samples"
XIEHE_CODE = normalise.make_credit_code("12100000400000000")


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def people_csv(
    rows: list[list[str]], header=("姓名", "性别", "职称", "所属机构", "手机", "邮箱", "外部编号")
) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def three_people(bad_mobile: bool = False, title: str = "主任医师") -> bytes:
    return people_csv([
        ["李娜", "女", "副主任医师", XIEHE_CODE, "13800138001", "lina@example.cn", "EXT-1"],
        ["王芳", "女", title, XIEHE_CODE, "1380013800" if bad_mobile else "13800138002", "", "EXT-2"],
        ["刘洋", "男", "药师", "北京协和医院", "13800138003", "liuyang@example.cn", "EXT-3"],
    ])  # fmt: skip


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def write_file(tmp_path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def imported_people() -> list[str]:
    return sorted(Person.objects.filter(external_id__startswith="EXT-").values_list("name", flat=True))


# --- template -------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["institutions", "people"])
def test_the_template_downloads_with_chinese_headers_in_both_formats(client_for, target):
    client = client_for("kam")
    response = client.get(reverse("customers:import-template", args=[target, "csv"]))
    assert response.status_code == 200
    header = response.content.decode("utf-8-sig").splitlines()[0].split(",")
    expected = ["机构名称", "机构类型", "医院等级", "统一社会信用代码", "省", "市", "区县"]
    expected = (
        expected if target == "institutions" else ["姓名", "性别", "角色", "职称", "所属机构", "科室", "手机"]
    )
    assert header[: len(expected)] == expected
    response = client.get(reverse("customers:import-template", args=[target, "xlsx"]))
    sheet = load_workbook(io.BytesIO(response.content)).worksheets[0]
    assert [c.value for c in sheet[1]][: len(expected)] == expected
    assert "attachment" in response["Content-Disposition"]


def test_people_without_the_import_capability_get_no_import_pages(client_for):
    client = client_for("agent")
    assert client.get(reverse("customers:import")).status_code == 403
    assert client.get(reverse("customers:import-template", args=["people", "csv"])).status_code == 403


def test_the_shipped_samples_import_cleanly_and_a_second_import_changes_nothing(users):
    kam = users["kam"]
    for target in ("institutions", "people"):
        job = importer.import_file(SAMPLES / f"{target}.csv", target, kam, mode="all")
        assert (job.status, job.error_count, job.created_count) == ("done", 0, 20), job.errors
    hospital = Institution.objects.get(external_id="ERP-H-0001")
    assert hospital.grade == "3A" and hospital.region_id == "110105" and hospital.tier == "vip"
    dept = Institution.objects.get(external_id="ERP-D-0001")
    assert dept.parent == hospital and dept.kind == "department"
    zhang = Person.objects.get(external_id="ERP-P-000001")
    assert (zhang.institution, zhang.department, zhang.role) == (hospital, dept, "dept_head")
    assert sorted(t.name for t in zhang.tags.all()) == ["KOL", "心血管"]
    for target in ("institutions", "people"):
        job = importer.import_file(SAMPLES / f"{target}.xlsx", target, kam, mode="all")
        assert (job.created_count, job.updated_count, job.unchanged_count) == (0, 0, 20), job.errors


# --- dry run, row errors, modes --------------------------------------------------------------------


def test_the_dry_run_reports_exactly_the_one_bad_row_in_the_readers_language(
    client_for, xiehe, huey_immediate
):
    client = client_for("kam")
    response = client.post(
        reverse("customers:import"),
        {"target": "people", "mode": "all", "file": upload("医生.csv", three_people(True))},
    )
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "customers:import-detail", args=[job.pk]
    )
    assert job.status == ImportJob.Status.PREVIEWED and job.dry_run
    assert (job.created_count, job.error_count, job.processed_rows) == (2, 1, 3)
    assert [(e["row"], e["column"], e["code"]) for e in job.errors] == [(3, "手机", "invalid_mobile")]
    assert imported_people() == []  # a dry run writes nothing
    english = ("Enter a valid mainland mobile (11 digits starting with 13–19), or a mobile from elsewhere with its "
               "country code, e.g. +852 9123 4567.")
    with translation.override("zh-hans"):
        chinese = translation.gettext(english)
    assert chinese != english
    page_en = client.get(reverse("customers:import-detail", args=[job.pk]), HTTP_ACCEPT_LANGUAGE="en")
    assert english in page_en.content.decode()
    # the column in the reader's language, the file's own header beside it
    assert error_report(client, job) == [["Row", "Column", "Reason", "Value"], ["3", "Mobile phone (手机)", english, ""]]
    client.post(reverse("set_language"), {"language": "zh-hans"})
    page_zh = client.get(reverse("customers:import-detail", args=[job.pk])).content.decode()
    assert 'lang="zh-hans"' in page_zh and chinese in page_zh and english not in page_zh
    assert error_report(client, job)[1] == ["3", "手机", chinese, ""]  # a personal value is never copied


def test_the_page_counts_the_rejected_rows_it_does_not_list(client_for, xiehe, huey_immediate, monkeypatch):
    """Rows with two errors each: the note under the list counts rows, not error lines."""
    monkeypatch.setattr(importer, "MAX_KEPT_ERRORS", 4)
    rows = [[f"张{i}", "女", "主任医师", XIEHE_CODE, "1380013800", "not-an-email", f"EXT-{i}"] for i in range(5)]
    client = client_for("kam")
    client.post(reverse("customers:import"), {"target": "people", "mode": "good", "file": upload("p.csv", people_csv(rows))})
    job = ImportJob.objects.get()
    assert job.error_count == 5 and [e["row"] for e in job.errors] == [2, 2, 3, 3]
    page = client.get(reverse("customers:import-detail", args=[job.pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "3 more rejected rows are in the downloadable report." in page
    assert len(error_report(client, job)) == 1 + 10  # the report has every error
    # downloading it is an export of the file's rejected values (personal data among them): audited
    entry = AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT, object_id=str(job.pk)).get()
    assert (entry.actor.username, entry.object_type, entry.extra["format"]) == ("kam", "customers.importjob", "csv")
    # the lines the report holds (two errors a row), and the rows they belong to
    assert (entry.extra["count"], entry.extra["counted"], entry.extra["rows_with_errors"]) == (10, "error lines", 5)


def error_report(client, job) -> list[list[str]]:
    response = client.get(reverse("customers:import-errors", args=[job.pk, "csv"]), HTTP_ACCEPT_LANGUAGE="en")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))


def test_all_or_nothing_imports_nothing_when_one_row_is_bad(users, xiehe, tmp_path):
    before = Person.objects.count()
    job = importer.import_file(
        write_file(tmp_path, "p.csv", three_people(True)), "people", users["kam"], mode="all"
    )
    assert job.status == ImportJob.Status.REJECTED
    assert (job.created_count, job.error_count) == (0, 1)
    assert Person.objects.count() == before
    with translation.override("en"):
        assert any("Nothing was imported" in m for m in importer.job_messages(job))


def test_confirming_an_all_or_nothing_check_with_errors_offers_the_good_rows_instead(
    client_for, xiehe, huey_immediate
):
    client = client_for("kam")
    client.post(
        reverse("customers:import"),
        {"target": "people", "mode": "all", "file": upload("p.csv", three_people(True))},
    )
    job = ImportJob.objects.get()
    page = client.get(
        reverse("customers:import-detail", args=[job.pk]), HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert "an all-or-nothing import would write nothing" in page
    client.post(reverse("customers:import-confirm", args=[job.pk]), {"mode": "all"})
    assert imported_people() == []
    client.post(reverse("customers:import-confirm", args=[job.pk]), {"mode": "good"})
    job.refresh_from_db()
    assert (job.status, job.mode, job.created_count, job.error_count) == ("done", "good", 2, 1)
    assert imported_people() == ["刘洋", "李娜"]


def test_a_file_that_changes_nothing_offers_no_import_button(client_for, users, xiehe, tmp_path, huey_immediate):
    importer.import_file(write_file(tmp_path, "p.csv", three_people()), "people", users["kam"], mode="all")
    client = client_for("kam")
    client.post(reverse("customers:import"), {"target": "people", "mode": "all", "file": upload("p.csv", three_people())})
    job = ImportJob.objects.latest("pk")
    assert (job.status, job.created_count, job.updated_count, job.unchanged_count) == ("previewed", 0, 0, 3)
    page = client.get(reverse("customers:import-detail", args=[job.pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Nothing to import: every row is the same as what is stored already." in page
    assert "Import now" not in page
    client.post(reverse("customers:import-confirm", args=[job.pk]), {"mode": "all"})
    job.refresh_from_db()
    assert job.status == "previewed"  # refused: nothing was queued


def test_a_title_line_above_the_header_row_is_passed_over(users, xiehe, tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["人员导入表（2026年12月）"])
    ws.append(["填表人：市场部", None, "日期：2026-12-01"])
    for row in csv.reader(io.StringIO(three_people(bad_mobile=True).decode())):
        ws.append(row)
    path = tmp_path / "titled.xlsx"
    wb.save(path)
    job = importer.import_file(path, "people", users["kam"], mode="good")
    assert (job.status, job.created_count, job.error_count) == ("done", 2, 1)
    assert [(e["row"], e["column"]) for e in job.errors] == [(5, "手机")]  # the sheet's own row number
    lonely = tmp_path / "title-only.csv"
    lonely.write_text("人员导入表\n只有标题\n", encoding="utf-8")
    with pytest.raises(ValidationError) as exc:
        importer.import_file(lonely, "people", users["kam"])
    assert "姓名" in " ".join(exc.value.messages)  # still told which columns are missing


def test_a_new_row_gets_every_error_at_once(users, tmp_path):
    rows = "机构名称,机构类型,电话\n,医馆,12345\n社区药房,药店,010-65001234\n"
    job = importer.import_file(write_file(tmp_path, "i.csv", rows.encode()), "institutions", users["kam"], mode="good")
    assert sorted((e["row"], e["column"], e["code"]) for e in job.errors) == [
        (2, "机构名称", "required"), (2, "机构类型", "invalid_choice"), (2, "电话", "invalid_phone"),
    ]
    assert job.created_count == 1


def test_cancelling_a_checked_file_means_it_can_no_longer_be_imported(client_for, xiehe, huey_immediate, var_dir):
    from pharmacrm.core.models import AuditEntry

    kam = client_for("kam")
    kam.post(reverse("customers:import"), {"target": "people", "mode": "all", "file": upload("p.csv", three_people())})
    job = ImportJob.objects.get()
    upload_path = Path(job.file_path)
    assert job.status == "previewed" and upload_path.exists()
    page = kam.get(reverse("customers:import-detail", args=[job.pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'formaction="{reverse("customers:import-cancel", args=[job.pk])}"' in page
    response = kam.post(reverse("customers:import-cancel", args=[job.pk]), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302 and response["Location"] == reverse("customers:import") + "?target=people"
    job.refresh_from_db()
    assert job.status == "cancelled" and not upload_path.exists()  # the upload is gone
    assert AuditEntry.objects.filter(object_type="customers.importjob", object_id=str(job.pk), action="update").exists()
    # nobody can import it afterwards, not even another user who sees the job
    client_for("manager").post(reverse("customers:import-confirm", args=[job.pk]), {"mode": "all"})
    job.refresh_from_db()
    assert job.status == "cancelled" and imported_people() == []
    page = kam.get(reverse("customers:import-detail", args=[job.pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Import now" not in page and "Cancelled after the check" in page


def test_good_rows_only_imports_the_others(users, xiehe, tmp_path):
    job = importer.import_file(
        write_file(tmp_path, "p.csv", three_people(True)), "people", users["kam"], mode="good"
    )
    assert (job.status, job.created_count, job.error_count) == ("done", 2, 1)
    assert imported_people() == ["刘洋", "李娜"]
    liu = Person.objects.get(external_id="EXT-3")
    assert liu.institution == xiehe and liu.source == "import"  # found by its exact name
    assert [h.obj for h in search.search(users["kam"], "liuyang")] == [liu]
    assert [h.obj for h in search.search(users["kam"], "13800138003")] == [liu]


def test_reimporting_the_same_file_changes_nothing_and_a_corrected_file_updates(users, xiehe, tmp_path):
    kam = users["kam"]
    path = write_file(tmp_path, "p.csv", three_people())
    first = importer.import_file(path, "people", kam, mode="all")
    assert first.created_count == 3
    versions = dict(
        Person.objects.filter(external_id__startswith="EXT-").values_list("external_id", "version")
    )
    audit_before = AuditEntry.objects.count()
    again = importer.import_file(path, "people", kam, mode="all")
    assert (again.created_count, again.updated_count, again.unchanged_count) == (0, 0, 3)
    assert (
        dict(Person.objects.filter(external_id__startswith="EXT-").values_list("external_id", "version"))
        == versions
    )
    assert AuditEntry.objects.count() == audit_before + 1  # only the import itself
    corrected = importer.import_file(
        write_file(tmp_path, "p2.csv", three_people(title="副主任医师")), "people", kam
    )
    assert (corrected.created_count, corrected.updated_count, corrected.unchanged_count) == (0, 1, 2)
    wang = Person.objects.get(external_id="EXT-2")
    assert wang.title == "副主任医师" and wang.version == versions["EXT-2"] + 1
    update = AuditEntry.objects.filter(action="update", object_type="customers.person").latest("seq")
    assert update.extra["import_job"] == corrected.pk
    assert update.extra["rows"][0]["changes"] == {"title": ["主任医师", "副主任医师"]}


def test_a_key_repeated_in_one_file_is_an_error_naming_the_first_row(users, xiehe, tmp_path):
    content = people_csv([
        ["李娜", "女", "", XIEHE_CODE, "13800138001", "", "EXT-1"],
        ["王芳", "女", "", XIEHE_CODE, "13800138002", "", "EXT-1"],
    ])  # fmt: skip
    job = importer.import_file(write_file(tmp_path, "p.csv", content), "people", users["kam"], mode="good")
    assert [(e["row"], e["column"], e["code"], e["params"]) for e in job.errors] == [
        (3, "外部编号", "duplicate_in_file", {"first": 2})
    ]
    assert imported_people() == ["李娜"]


def test_institutions_resolve_regions_by_name_or_code_and_parents_in_the_same_file(users, tmp_path):
    hospital_code = normalise.make_credit_code("12110105MB0000001")
    content = "\n".join([
        "机构名称,机构类型,医院等级,统一社会信用代码,省,市,区县,行政区划代码,上级机构,床位数,外部编号",
        f"朝阳中心医院,医院,三甲,{hospital_code},北京,北京市,朝阳区,,,\"1,900\",H1",
        f"心内科,科室,,,,,,110105,{hospital_code},120,D1",
        "某药房,药店,,12345,上海市,上海市,徐汇区,,,,P1",
        "某诊所,诊所,,,广东省,广州市,朝阳区,,,,C1",
        "某科室,科室,,,,,,999999,,,D2",
        "另一科室,科室,,,,,,110105,,,D3",
    ]).encode()  # fmt: skip
    job = importer.import_file(
        write_file(tmp_path, "i.csv", content), "institutions", users["kam"], mode="good"
    )
    assert job.created_count == 2
    hospital, dept = Institution.objects.get(external_id="H1"), Institution.objects.get(external_id="D1")
    assert (hospital.region_id, hospital.grade, hospital.beds) == ("110105", "3A", 1900)
    assert (dept.parent, dept.region_id, dept.grade) == (hospital, "110105", "")
    errors = {(e["row"], e["column"], e["code"]) for e in job.errors}
    assert errors == {
        (4, "统一社会信用代码", "credit_code_length"),
        (5, "区县", "region_mismatch"),
        (6, "行政区划代码", "region_code_unknown"),
        (7, "上级机构", "parent_required"),
    }


def test_english_headers_and_choice_codes_are_accepted(users, tmp_path):
    content = b"Name,Type,Grade,Tier,Stage,External ID\nAcme Hospital,hospital,3B,vip,intent,X1\n"
    job = importer.import_file(write_file(tmp_path, "i.csv", content), "institutions", users["kam"])
    assert job.created_count == 1
    acme = Institution.objects.get(external_id="X1")
    assert (acme.kind, acme.grade, acme.tier, acme.stage) == ("hospital", "3B", "vip", "intent")


def test_a_gb18030_csv_imports(users, xiehe, tmp_path):
    content = three_people().decode("utf-8").encode("gb18030")
    job = importer.import_file(write_file(tmp_path, "p.csv", content), "people", users["kam"])
    assert job.created_count == 3
    assert imported_people() == ["刘洋", "李娜", "王芳"]


def test_an_xlsx_with_numbers_and_dates_in_cells_imports(users, xiehe, tmp_path):
    import datetime

    wb = Workbook()
    ws = wb.active
    ws.append(["姓名", "所属机构", "手机", "生日", "外部编号"])
    ws.append(["赵敏", XIEHE_CODE, 13800138009, datetime.datetime(1980, 5, 4), 1001])
    path = tmp_path / "p.xlsx"
    wb.save(path)
    job = importer.import_file(path, "people", users["kam"])
    assert job.created_count == 1, job.errors
    zhao = Person.objects.get(external_id="1001")
    assert (zhao.mobile, zhao.birthday) == ("13800138009", datetime.date(1980, 5, 4))


def test_imported_personal_data_is_encrypted_at_rest(users, xiehe, tmp_path):
    importer.import_file(write_file(tmp_path, "p.csv", three_people()), "people", users["kam"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT mobile, email FROM customers_person WHERE external_id = %s", ["EXT-1"])
        mobile, email = cursor.fetchone()
    assert mobile.startswith("e1:") and "13800138001" not in mobile
    assert email.startswith("e1:") and "lina" not in email
    li = Person.objects.get(external_id="EXT-1")
    assert (li.mobile, li.email) == ("13800138001", "lina@example.cn")
    assert li.mobile_bidx == crypto.blind_index("13800138001", "phone")


# --- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [600, 200_000], ids=["cut-off-while-streaming", "refused-by-content-length"])
def test_a_file_over_the_size_limit_is_refused_before_anything_is_kept(client_for, settings, var_dir, size):
    settings.IMPORT_MAX_BYTES = 200
    client = client_for("kam")
    content = (three_people() * (size // 300 + 1))[:size]
    response = client.post(
        reverse("customers:import"), {"target": "people", "mode": "all", "file": upload("big.csv", content)},
        HTTP_ACCEPT_LANGUAGE="en",
    )  # fmt: skip
    assert response.status_code == 413
    assert "The file is too large" in response.content.decode()
    assert ImportJob.objects.count() == 0 and list((var_dir / "imports").glob("*")) == []


def test_a_streamed_upload_over_the_limit_is_cut_off(users, settings):
    settings.IMPORT_MAX_BYTES = 200
    big = upload("big.csv", three_people() * 3)
    big.size = None  # the size is unknown until the body has been read
    with pytest.raises(importer.ValidationError, match="too large"):
        with translation.override("en"):
            importer.start_import(users["kam"], big, "people", "all")
    assert ImportJob.objects.count() == 0


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        (
            "setup.csv",
            b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + bytes(200),
            "not a CSV or XLSX",
        ),
        ("broken.xlsx", b"PK\x03\x04" + b"\x14\x00garbage" * 40, "damaged"),
        ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200), ".xls"),
        ("notes.doc", b"hello", "Only .csv, .txt and .xlsx"),
        ("notes.txt", bytes(range(256)) * 40, "This is not a text (.txt) file"),
        ("empty.csv", b"", "empty"),
        ("header-only.csv", "姓名,手机\n".encode(), "no data rows"),
        ("no-name.csv", "手机,邮箱\n13800138000,a@b.cn\n".encode(), "Required columns are missing: Name."),  # in the reader's language
        ("latin1.csv", "姓名\n".encode() + b"M\xfcller\xff\xfe\n", "not valid UTF-8 or GB18030"),
    ],
)
def test_wrong_types_and_broken_files_are_refused_and_change_nothing(
    client_for, var_dir, name, content, reason
):
    client = client_for("kam")
    response = client.post(
        reverse("customers:import"), {"target": "people", "mode": "all", "file": upload(name, content)},
        HTTP_ACCEPT_LANGUAGE="en",
    )  # fmt: skip
    if name == "empty.csv":  # the browser form refuses an empty file before the importer sees it
        assert response.status_code == 400
    else:
        assert response.status_code == 400 and reason in response.content.decode(), response.content.decode()
    assert ImportJob.objects.count() == 0 and Person.objects.count() == 0
    assert list((var_dir / "imports").glob("*")) == []


def test_an_empty_file_is_refused_by_the_importer_too(users):
    with translation.override("en"), pytest.raises(importer.ValidationError, match="empty"):
        importer.start_import(users["kam"], upload("empty.csv", b"\xef\xbb\xbf\r\n"), "people", "all")


# --- worker, progress, audit -------------------------------------------------------------------------


def test_the_worker_task_runs_the_dry_run_then_the_import(users, xiehe, huey_immediate):
    kam = users["kam"]
    creates_before = AuditEntry.objects.filter(action="create").count()
    job = importer.start_import(kam, upload("p.csv", three_people()), "people", "all")
    job.refresh_from_db()
    assert (job.status, job.dry_run, job.created_count) == ("previewed", True, 3)
    assert Path(job.file_path).exists() and job.file_sha256
    importer.confirm_import(kam, job)
    job.refresh_from_db()
    assert (job.status, job.dry_run, job.created_count) == ("done", False, 3)
    assert imported_people() == ["刘洋", "李娜", "王芳"]
    assert not Path(job.file_path).exists()  # the clear-text upload is gone once imported
    entry = AuditEntry.objects.get(action="import")
    assert (
        entry.extra["sha256"] == job.file_sha256
        and entry.extra["created"] == 3
        and entry.extra["mode"] == "all"
    )
    assert (
        AuditEntry.objects.filter(action="create").count() == creates_before
    )  # one entry per import, not per row


def test_the_progress_fragment_polls_while_running_and_reloads_the_page_when_done(client_for, users, xiehe):
    job = ImportJob.objects.create(
        target="people", file_name="p.csv", file_path="/nonexistent", file_sha256="x", created_by=users["kam"],
        status=ImportJob.Status.RUNNING, total_rows=200, processed_rows=50,
    )  # fmt: skip
    client = client_for("kam")
    url = reverse("customers:import-progress", args=[job.pk])
    fragment = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in fragment and 'value="25"' in fragment
    importer.progress_path(job).write_text("150")  # an all-or-nothing import reports through the side file
    assert 'value="75"' in client.get(url, HTTP_HX_REQUEST="true").content.decode()
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.DONE)
    done = client.get(url, HTTP_HX_REQUEST="true")
    assert done.headers.get("HX-Refresh") == "true"


def test_the_error_report_downloads_as_xlsx(client_for, users, xiehe, tmp_path):
    job = importer.import_file(
        write_file(tmp_path, "p.csv", three_people(True)), "people", users["kam"], dry_run=True
    )
    client = client_for("kam")
    response = client.get(
        reverse("customers:import-errors", args=[job.pk, "xlsx"]), HTTP_ACCEPT_LANGUAGE="en"
    )
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).worksheets[0]
    rows = [[c.value for c in r] for r in sheet.iter_rows()]
    assert rows[0] == ["Row", "Column", "Reason", "Value"] and rows[1][:2] == [3, "Mobile phone (手机)"]


def test_uploads_of_checks_never_confirmed_are_deleted_after_a_week(users, var_dir):
    import datetime

    from django.utils import timezone

    from pharmacrm.customers import tasks

    def job_with_file(name: str, age_days: int) -> Path:
        path = importer.imports_dir() / name
        path.write_bytes(b"x")
        created = timezone.now() - datetime.timedelta(days=age_days)
        ImportJob.objects.create(
            target="people", file_name=name, file_path=str(path), file_sha256="x", created_by=users["kam"],
            status=ImportJob.Status.PREVIEWED, created_at=created,
        )  # fmt: skip
        return path

    old, recent = job_with_file("old.csv", 8), job_with_file("recent.csv", 1)
    tasks.purge_import_uploads.call_local()
    assert not old.exists() and recent.exists()


def test_imported_people_carry_their_institutions_region_and_follow_a_region_change(users, xiehe, tmp_path):
    job = importer.import_file(write_file(tmp_path, "p.csv", three_people()), "people", users["kam"])
    assert job.created_count == 3
    regions = set(Person.objects.filter(external_id__startswith="EXT-").values_list("region_id", "province", "city"))
    assert regions == {("110105", "110000", "110100")}
    # the hospital moves to 上海市徐汇区 by a re-import keyed on its credit code
    content = f"机构名称,机构类型,统一社会信用代码,行政区划代码\n北京协和医院,医院,{XIEHE_CODE},310104\n".encode()
    job = importer.import_file(write_file(tmp_path, "i.csv", content), "institutions", users["admin"])
    assert job.updated_count == 1, job.errors
    regions = set(Person.objects.filter(institution=xiehe).values_list("region_id", "province", "city"))
    assert regions == {("310104", "310000", "310100")}


def test_an_import_cannot_grant_or_withdraw_the_key_account_tier(users, xiehe, tmp_path):
    """重点客户 comes only with the key-account programme, as in the forms and the API."""
    header = "机构名称,机构类型,统一社会信用代码,行政区划代码,客户层级\n"
    path = write_file(tmp_path, "i.csv", (header + f"北京协和医院,医院,{XIEHE_CODE},110105,重点客户\n").encode())
    job = importer.import_file(path, "institutions", users["kam"], mode="all")
    assert [(e["column"], e["code"]) for e in job.errors] == [("客户层级", "key_tier")]
    assert Institution.objects.get(pk=xiehe.pk).tier != "key"
    path = write_file(tmp_path, "j.csv", (header + f"北京协和医院,医院,{XIEHE_CODE},110105,VIP客户\n").encode())
    job = importer.import_file(path, "institutions", users["kam"], mode="all")
    assert job.error_count == 0 and Institution.objects.get(pk=xiehe.pk).tier == "vip"


def test_a_date_that_is_not_a_day_of_the_calendar_is_named_so(users, xiehe, tmp_path):
    """1980-02-30 is written as a date: the report says the day does not exist, not that it is no date."""
    rows = "姓名,所属机构,手机,生日\n赵敏,{c},13800138009,1980-02-30\n钱进,{c},13800138010,1980年13月1日\n孙丽,{c},13800138011,next year\n"
    job = importer.import_file(write_file(tmp_path, "p.csv", rows.format(c=XIEHE_CODE).encode()), "people",
                               users["kam"], dry_run=True)  # fmt: skip
    codes = {e["row"]: e["code"] for e in job.errors}
    assert codes == {2: "impossible_date", 3: "impossible_date", 4: "invalid_date"}
    with translation.override("en"):
        texts = {e["row"]: importer.error_text(e) for e in job.errors}
    assert texts[2] == "“1980-02-30” is not a day of the calendar: check the month and the day."
    assert "is not a date" in texts[4]
    with translation.override("zh-hans"):
        assert "1980-02-30" in importer.error_text(job.errors[0]) and "not" not in importer.error_text(job.errors[0])


def test_a_row_naming_a_merged_away_customer_says_into_which_record_it_was_merged(users, xiehe, beijing, tmp_path):
    """An export taken before a merge, corrected and imported again: the merged-away hospital's internal code (in
    所属机构 and in its own row's 内部编号) was refused as "no institution has the code I00000…", a code the list
    of merges and the record's own page still showed."""
    from pharmacrm.customers import services

    admin = users["admin"]
    east = services.create_institution(admin, {"name": "协和医院东院", "kind": "hospital", "region": beijing})
    services.merge(users["manager"], xiehe, east)
    people = write_file(tmp_path, "people.csv", people_csv([["刘洋", "男", "主治医师", east.code, "13912345678", "", ""]]))
    institutions = write_file(tmp_path, "institutions.csv", f"内部编号,机构名称,机构类型\n{east.code},协和医院东院,医院\n".encode())

    jobs = [importer.import_file(str(people), "people", admin, mode="all"),
            importer.import_file(str(institutions), "institutions", admin, mode="all")]  # fmt: skip

    with translation.override("en"):
        texts = [importer.error_text(job.errors[0]) for job in jobs]
    assert [job.status for job in jobs] == ["rejected", "rejected"]
    assert texts == [f"“{east.code}” was merged into 北京协和医院 ({xiehe.code}): use that record instead."] * 2
    assert not Person.objects.filter(name="刘洋").exists()


def test_an_institution_named_in_traditional_characters_or_other_punctuation_is_found(users, xiehe, tmp_path):
    """所属机构 / 上级机构 by name: 北京協和醫院 (a zh-Hant colleague's list) or 北京协和医院(东单院区) written with
    ASCII brackets was "No institution has … the name …", while the 科室 column, search and duplicate detection
    read those names as the same."""
    from pharmacrm.customers import services

    admin = users["admin"]
    branch = services.create_institution(admin, {"name": "北京协和医院（东单院区）", "kind": "hospital"})
    people = write_file(tmp_path, "people.csv", people_csv(
        [["刘洋", "男", "主治医师", "北京協和醫院", "13912345678", "", ""],
         ["陈静", "女", "主治医师", "北京协和医院(东单院区)", "13912345679", "", ""]]
    ))  # fmt: skip
    institutions = write_file(tmp_path, "institutions.csv", "机构名称,机构类型,上级机构\n神經內科,科室,北京協和醫院\n".encode())

    jobs = [importer.import_file(str(people), "people", admin, mode="all"),
            importer.import_file(str(institutions), "institutions", admin, mode="all")]  # fmt: skip

    assert [(job.status, job.errors) for job in jobs] == [("done", []), ("done", [])]
    assert {p.name: p.institution_id for p in Person.objects.filter(name__in=["刘洋", "陈静"])} == {
        "刘洋": xiehe.pk, "陈静": branch.pk}  # fmt: skip
    assert Institution.objects.get(name="神經內科").parent_id == xiehe.pk


def test_a_team_named_in_traditional_characters_is_found(users, team_north, xiehe, tmp_path):
    """所属团队 华北團隊 (a zh-Hant colleague's list) was "No team is named …" beside the team 华北团队."""
    path = write_file(tmp_path, "people.csv", people_csv([["刘洋", "男", "主治医师", XIEHE_CODE, "13912345678", "華北團隊"]],
                                                         header=("姓名", "性别", "职称", "所属机构", "手机", "所属团队")))  # fmt: skip
    job = importer.import_file(str(path), "people", users["admin"], mode="all")
    assert (job.status, job.errors) == ("done", [])
    assert Person.objects.get(name="刘洋").team == team_north


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_department_names_a_hospital_created_earlier_in_the_file_as_its_parent(users, tmp_path, dry_run):
    """QA: a hospital row with no codes, then a department whose 上级机构 gives that hospital's name: the dry run said
    no institution has that name (it worked by external id). The name finds the hospital the earlier row creates;
    a name two institutions share (a stored one and one of the file, or two of the file) is refused as ambiguous."""
    from pharmacrm.customers import services

    services.create_institution(users["admin"], {"name": "南山人民医院", "kind": "hospital"})
    content = "\n".join([
        "机构名称,机构类型,省,市,区县,上级机构",
        "朝阳新区医院,医院,北京,北京市,朝阳区,",
        "心内科,科室,,,,朝阳新区医院",
        "南山人民医院,医院,广东省,深圳市,南山区,",
        "骨科,科室,,,,南山人民医院",
        "双名医院,医院,北京,北京市,海淀区,",
        "双名医院,医院,上海市,上海市,徐汇区,",
        "眼科,科室,,,,双名医院",
    ]).encode()  # fmt: skip
    job = importer.import_file(write_file(tmp_path, "i.csv", content), "institutions", users["admin"],
                               mode="good", dry_run=dry_run)  # fmt: skip
    assert [(e["row"], e["column"], e["code"]) for e in job.errors] == [
        (5, "上级机构", "institution_ambiguous"), (8, "上级机构", "institution_ambiguous")]  # fmt: skip
    assert job.created_count == 5
    if not dry_run:
        dept = Institution.objects.get(name="心内科")
        assert (dept.parent.name, dept.region_id) == ("朝阳新区医院", "110105")
        assert not Institution.objects.filter(name__in=["骨科", "眼科"]).exists()
