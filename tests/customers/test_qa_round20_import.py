"""Customer import, from the twentieth session's QA round: files as Chinese offices really produce them — a
workbook saved with a password, a people list whose one phone column is 电话 / 联系电话 / 电话（手机）, and a header
of two rows laid out with merged cells."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation
from openpyxl import Workbook, load_workbook

from pharmacrm.customers import exporter, importer
from pharmacrm.customers.models import ImportJob, Person

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    return tmp_path / "var"


def errors_en(job: ImportJob) -> list[tuple[int, str, str]]:
    with translation.override("en"):
        return [(e["row"], e["column"], importer.error_text(e)) for e in job.errors]


def notes_en(job: ImportJob) -> list[str]:
    with translation.override("en"):
        return importer.job_messages(job)


def sheet(tmp_path, rows: list[list], merges: tuple[str, ...] = (), name: str = "people.xlsx"):
    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    for cells in merges:
        ws.merge_cells(cells)
    path = tmp_path / name
    wb.save(path)
    return path


# --- 1. a workbook saved with a password -------------------------------------------------------------------


def compound_file(*streams: str) -> bytes:
    """The start of an OLE compound file whose directory names `streams`: what Excel and WPS write for an .xlsx
    saved with a password (EncryptionInfo + EncryptedPackage), and what an old .xls is (Workbook)."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16 + b"\x3e\x00\x03\x00\xfe\xff\x09\x00"
    header = header.ljust(512, b"\x00")
    entries = b"".join(name.encode("utf-16-le").ljust(64, b"\x00").ljust(128, b"\x00")
                       for name in ("Root Entry", *streams))  # fmt: skip
    return header + entries.ljust(512 * 3, b"\x00")


def test_a_password_protected_workbook_is_named_so_not_called_an_old_xls(users, tmp_path):
    """An .xlsx saved with a password was refused as "Old Excel (.xls) files are not accepted: save the file as
    .xlsx" — it was an .xlsx; saving it as one again changed nothing, the password was never mentioned."""
    path = tmp_path / "客户名单.xlsx"
    path.write_bytes(compound_file("\x06DataSpaces", "EncryptionInfo", "EncryptedPackage"))
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        importer.import_file(path, "institutions", users["kam"])
    message = refused.value.messages[0]
    assert message.startswith("The workbook is protected by a password (encrypted), so it cannot be read.")
    assert "remove the password" in message and ".xls" not in message
    assert not ImportJob.objects.exists()

    # an old .xls is still called one
    old = tmp_path / "old.xls"
    old.write_bytes(compound_file("Workbook", "\x05SummaryInformation"))
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        importer.import_file(old, "institutions", users["kam"])
    assert refused.value.messages[0].startswith("Old Excel (.xls) files are not accepted")


def test_the_upload_page_says_the_workbook_has_a_password(client_for):
    upload = SimpleUploadedFile("机构.xlsx", compound_file("EncryptionInfo", "EncryptedPackage"))
    response = client_for("kam").post(
        reverse("customers:import"), {"target": "institutions", "mode": "all", "file": upload}, **EN
    )
    assert response.status_code == 400
    assert "The workbook is protected by a password" in response.content.decode()


# --- 2. a people list's phone column named 电话, 联系电话 or 电话（手机） ---------------------------------------


def test_a_people_phone_column_is_read_a_mobile_as_the_mobile_a_landline_as_the_landline(users, tmp_path):
    """电话（手机）, 联系电话 and 电话 were "not recognised and ignored" in a people file: every person was imported
    without a number (and, without a mobile, could not be recognised by a second import)."""
    path = sheet(tmp_path, [
        ["姓名", "电话（手机）"],
        ["张伟", "138 0013 8000"],
        ["李娜", "010-12345678 转 8021"],
        ["王芳", "12345"],
    ])  # fmt: skip
    job = importer.import_file(path, "people", users["kam"], mode="good")
    assert not any("ignored" in note for note in notes_en(job))  # no column ignored
    assert errors_en(job) == [(4, "电话（手机）", "Enter a valid mainland China mobile number (11 digits starting "
                                            "with 13–19) or a landline with its area code, e.g. 010-12345678, or a "
                                            "number from elsewhere with its country code, e.g. +852 9123 4567.")]
    zhang, li = Person.objects.get(name="张伟"), Person.objects.get(name="李娜")
    assert (zhang.mobile, zhang.landline) == ("13800138000", "")
    assert (li.mobile, li.landline) == ("", "01012345678转8021")

    # a second import of the same file recognises 张伟 by name + mobile instead of creating him again
    again = importer.import_file(path, "people", users["kam"], mode="good")
    assert Person.objects.filter(name="张伟").count() == 1
    assert again.unchanged_count == 1


@pytest.mark.parametrize("header", ["联系电话", "电话", "手机/电话", "phone"])
def test_the_usual_names_of_a_phone_column_are_read(users, tmp_path, header):
    path = sheet(tmp_path, [["姓名", header], ["赵磊", "13900139000"]])
    job = importer.import_file(path, "people", users["kam"])
    assert job.created_count == 1 and notes_en(job) == []
    assert Person.objects.get(name="赵磊").mobile == "13900139000"


def test_a_phone_column_beside_the_mobile_column_fills_the_landline_and_a_second_mobile_is_an_error(
    users, tmp_path
):
    path = sheet(tmp_path, [
        ["姓名", "手机", "联系电话"],
        ["刘洋", "13800138001", "0755-1234567"],   # the landline
        ["陈静", "13800138002", "138-0013-8002"],  # the same mobile twice: no error
        ["杨帆", "13800138003", "13900139003"],    # two mobiles: which is kept cannot be guessed
    ])  # fmt: skip
    job = importer.import_file(path, "people", users["kam"], mode="good")
    liu = Person.objects.get(name="刘洋")
    assert (liu.mobile, liu.landline) == ("13800138001", "07551234567")
    assert Person.objects.get(name="陈静").mobile == "13800138002"
    assert errors_en(job) == [(4, "联系电话", "This row's 手机 column holds another number: keep one of them here, "
                                          "or put the second one in the remarks.")]
    assert not Person.objects.filter(name="杨帆").exists()


def test_the_phone_column_is_masked_in_the_preview_and_kept_out_of_templates_and_exports(users, tmp_path):
    path = sheet(tmp_path, [["姓名", "电话"], ["周杰", "13800138009"]])
    job = importer.import_file(path, "people", users["kam"], dry_run=True)
    cells = dict(job.preview[0]["cells"])
    assert "13800138009" not in str(job.preview) and cells["电话"] == "138****8009"
    # the template and the export keep their 手机 and 座机 columns only
    assert "电话" not in importer.template_headers("people")
    assert "电话" not in [h for _k, h in exporter.columns("people")]
    content, _type, _name = importer.template_file("people", "xlsx")
    (tmp_path / "t.xlsx").write_bytes(content)
    instructions = " ".join(str(c.value) for ws in load_workbook(tmp_path / "t.xlsx") for row in ws.iter_rows()
                            for c in row if c.value)  # fmt: skip
    assert "联系电话" not in instructions


def test_a_note_in_brackets_that_names_a_column_is_read_as_that_column(users, tmp_path):
    """机构名称（必填）was read (the note is a remark); 号码（座机）named no column and was ignored."""
    path = sheet(tmp_path, [["姓名（必填）", "号码（座机）"], ["孙丽", "020-87654321"]])
    job = importer.import_file(path, "people", users["kam"])
    assert job.created_count == 1 and notes_en(job) == []
    assert Person.objects.get(name="孙丽").landline == "02087654321"


# --- 3. a header of two rows laid out with merged cells --------------------------------------------------------


def test_a_two_row_header_with_merged_cells_is_read_as_one(users, tmp_path):
    """联系方式 merged across 手机 | 座机 on the row below, 姓名 and 性别 merged down over both rows (as Chinese forms
    lay lists out): the row below was read as a person named 姓名 ("“性别” is not an accepted value") and the
    mobile and landline columns were ignored."""
    path = sheet(tmp_path, [
        ["人员信息表"],
        ["姓名", "性别", "联系方式", None],
        [None, None, "手机", "座机"],
        ["王强", "男", "13800138020", "010-12345678"],
        ["赵敏", "女", "13800138021", None],
    ], merges=("A2:A3", "B2:B3", "C2:D2"))  # fmt: skip
    job = importer.import_file(path, "people", users["kam"])
    assert job.status == ImportJob.Status.DONE
    assert (job.created_count, job.error_count) == (2, 0) and notes_en(job) == []
    wang = Person.objects.get(name="王强")
    assert (wang.gender, wang.mobile, wang.landline) == ("M", "13800138020", "01012345678")
    assert not Person.objects.filter(name="姓名").exists()


def test_a_merged_header_cell_over_data_is_no_second_header_row(users, tmp_path):
    """A header cell merged across two columns for width, with data right below it: the first row of data stays
    a row of data."""
    path = sheet(tmp_path, [
        ["姓名", "手机", None],
        ["钱多", "13800138030", None],
        ["孙少", "13800138031", None],
    ], merges=("B1:C1",))  # fmt: skip
    job = importer.import_file(path, "people", users["kam"])
    assert job.created_count == 2
    assert set(Person.objects.filter(name__in=["钱多", "孙少"]).values_list("mobile", flat=True)) == {
        "13800138030", "13800138031"
    }


# --- 4. zero-width characters copied from web pages and WeChat --------------------------------------------------


def test_zero_width_characters_are_dropped_from_headers_and_cells(users, tmp_path):
    """A header 机构名称 with a zero-width space after it (copied from a web page) refused the file as "required
    columns are missing: 机构名称"; a name 协\\u200b和 was stored so, looked like 协和 and was never found as such."""
    path = sheet(tmp_path, [
        ["\ufeff机构名称\u200b", "机构类型", "外部编号"],
        ["朝阳\u200b社区卫生服务中心", "社区卫生服务中心\u200d", "ZW-1"],
    ], name="机构.xlsx")  # fmt: skip
    job = importer.import_file(path, "institutions", users["kam"])
    assert job.created_count == 1, errors_en(job)
    from pharmacrm.customers.models import Institution

    created = Institution.objects.get(name="朝阳社区卫生服务中心")
    assert created.kind == "community"


# --- 5. the words Chinese lists use for types, grades and roles -------------------------------------------------


@pytest.mark.parametrize("kind, grade, expected", [
    ("中医医院", "三级甲等医院", ("hospital", "3A")),
    ("妇幼保健院", "三甲医院", ("hospital", "3A")),
    ("民营医院", "一级甲等", ("hospital", "1")),
    ("单体药店", "", ("pharmacy", "")),
])  # fmt: skip
def test_common_words_for_institution_types_and_hospital_grades_are_accepted(users, tmp_path, kind, grade, expected):
    """中医医院, 妇幼保健院, 民营医院, 单体药店, 三级甲等医院, 三甲医院 and 一级甲等 were “not an accepted value”."""
    path = sheet(tmp_path, [["机构名称", "机构类型", "医院等级"], ["某某机构", kind, grade]], name="机构.xlsx")
    job = importer.import_file(path, "institutions", users["kam"])
    assert errors_en(job) == []
    from pharmacrm.customers.models import Institution

    created = Institution.objects.get(name="某某机构")
    assert (created.kind, created.grade or "") == expected


def test_common_words_for_people_roles_are_accepted(users, tmp_path):
    rows = [["姓名", "角色"], *([f"人{n}", word] for n, word in enumerate(["护士长", "药剂师", "采购员", "科主任", "院长"]))]
    job = importer.import_file(sheet(tmp_path, rows), "people", users["kam"])
    assert errors_en(job) == []
    roles = dict(Person.objects.filter(name__startswith="人").values_list("name", "role"))
    assert roles == {"人0": "nurse", "人1": "pharmacist", "人2": "purchasing", "人3": "dept_head", "人4": "admin"}


# --- 6. two users importing the same list at once ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_import_waits_for_the_one_writing_and_then_recognises_its_people(users, tmp_path):
    """An import started while another one writes people waits for it, then finds the people it created (it had
    matched its rows against what was stored before the other had written, and created each one again)."""
    import threading
    import time

    from django.db import connection

    from pharmacrm.customers import services

    path = sheet(tmp_path, [["姓名", "手机"], *([f"等待{n}", f"1370000001{n}"] for n in range(3))])
    jobs: list[ImportJob] = []

    def second():
        try:
            jobs.append(importer.import_file(path, "people", users["manager"], mode="good"))
        finally:
            connection.close()

    with importer.writing_lock("people"):  # the first import is writing
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(1.5)
        assert thread.is_alive() and not Person.objects.filter(name__startswith="等待").exists()  # it waits
        for n in range(3):  # what the first import writes meanwhile
            services.create_person(users["kam"], {"name": f"等待{n}", "mobile": f"1370000001{n}"})
    thread.join(60)
    assert Person.objects.filter(name__startswith="等待").count() == 3
    assert [(j.created_count, j.unchanged_count) for j in jobs] == [(0, 3)]


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_imports_of_the_same_people_at_once_create_each_person_once(users, tmp_path, monkeypatch):
    """The worker runs two jobs side by side: both imports matched the rows against what was stored before either
    had written, found every person missing and created each one twice. The second now waits for the first and
    recognises its rows."""
    import threading
    import time

    from django.db import connection

    path = sheet(tmp_path, [["姓名", "手机"], *([f"并发{n}", f"1370000000{n}"] for n in range(3))])
    original = importer._write

    def slow_write(*args, **kwargs):  # both runs have matched their rows before either writes
        time.sleep(0.5)
        return original(*args, **kwargs)

    monkeypatch.setattr(importer, "_write", slow_write)
    start = threading.Barrier(2, timeout=20)
    jobs: dict[str, ImportJob] = {}

    def run(name: str):
        try:
            start.wait()
            jobs[name] = importer.import_file(path, "people", users[name], mode="good")
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(name,)) for name in ("kam", "manager")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert Person.objects.filter(name__startswith="并发").count() == 3
    assert sorted((j.created_count, j.unchanged_count) for j in jobs.values()) == [(0, 3), (3, 0)]


def test_a_dry_run_does_not_wait_for_a_writing_import(users, tmp_path):
    """Checking a file (nothing is written) never waits for another user's import."""
    path = sheet(tmp_path, [["姓名", "手机"], ["检查", "13700000009"]])
    with importer.writing_lock("people"):
        job = importer.import_file(path, "people", users["kam"], dry_run=True)
    assert job.created_count == 1


# --- 7. the usual headers of Chinese customer lists -------------------------------------------------------------


def test_the_usual_headers_of_a_contact_list_are_read(users, tmp_path, xiehe):
    """A contact list headed 联系人 | 所在医院 | 所在科室 | 职位 was refused: “Required columns are missing: 姓名”."""
    path = sheet(tmp_path, [["联系人", "所在医院", "所在科室", "职位", "手机号码"],
                            ["吴医生", "北京协和医院", "", "主任医师", "13800138040"]])  # fmt: skip
    job = importer.import_file(path, "people", users["admin"])
    assert errors_en(job) == [] and notes_en(job) == []
    person = Person.objects.get(name="吴医生")
    assert (person.institution_id, person.title, person.mobile) == (xiehe.pk, "主任医师", "13800138040")


@pytest.mark.parametrize("header", ["医院名称", "单位名称", "客户名称", "终端名称"])
def test_the_usual_headers_of_an_institution_list_are_read(users, tmp_path, header):
    path = sheet(tmp_path, [[header, "机构类型"], ["海淀区某某诊所", "诊所"]], name="机构.xlsx")
    job = importer.import_file(path, "institutions", users["kam"])
    assert job.created_count == 1 and notes_en(job) == []


def test_a_header_row_merged_down_to_make_it_taller_is_one_header_row(users, tmp_path):
    """Each header cell merged over two rows (a taller header): the second row read as a person named 姓名."""
    path = sheet(tmp_path, [["姓名", "手机"], [None, None], ["郑好", "13800138050"]], merges=("A1:A2", "B1:B2"))
    job = importer.import_file(path, "people", users["kam"])
    assert (job.created_count, job.error_count) == (1, 0)
    assert not Person.objects.filter(name="姓名").exists()


def test_a_note_in_square_brackets_is_passed_over_like_one_in_round_brackets(users, tmp_path):
    """姓名【必填】 (as WPS templates mark required columns) refused the file: “Required columns are missing: 姓名”."""
    path = sheet(tmp_path, [["姓名【必填】", "手机[选填]"], ["冯静", "13800138060"]])
    job = importer.import_file(path, "people", users["kam"])
    assert job.created_count == 1 and notes_en(job) == []
    assert Person.objects.get(name="冯静").mobile == "13800138060"
