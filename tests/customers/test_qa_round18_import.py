"""Customer master-data import, from the eighteenth session's QA round: which sheet of a workbook is read, the
column a region error names, Traditional characters, a landline's extension, Excel error values and codes
stored as numbers."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation
from openpyxl import Workbook, load_workbook

from pharmacrm.customers import importer, normalise, services
from pharmacrm.customers.models import ImportJob, Institution, Person

XIEHE_CODE = normalise.make_credit_code("12100000400000000")
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    return tmp_path / "var"


def write(tmp_path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def workbook(tmp_path, sheets: list[tuple[str, list[list], str]], name: str = "book.xlsx"):
    """An .xlsx of (title, rows, state) sheets, state "visible" or "hidden"."""
    wb = Workbook()
    wb.remove(wb.active)
    for title, rows, state in sheets:
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
        ws.sheet_state = state
    path = tmp_path / name
    wb.save(path)
    return path


def errors_en(job: ImportJob) -> list[tuple[int, str, str]]:
    with translation.override("en"):
        return [(e["row"], e["column"], importer.error_text(e)) for e in job.errors]


def notes_en(job: ImportJob) -> list[str]:
    with translation.override("en"):
        return importer.job_messages(job)


INSTRUCTIONS = [["填写说明"], ["机构名称：必填"], ["机构类型：医院、药店……"]]
HEADER = ["机构名称", "机构类型", "外部编号"]


# --- 1. which sheet of a workbook is read -------------------------------------------------------------------


def test_an_instructions_sheet_placed_first_is_passed_over_and_the_page_says_which_sheet_was_read(
    users, tmp_path, client_for
):
    """The first sheet was read whatever it held: a workbook with its instructions first was refused as "required
    columns are missing", though the data sheet beside it was right."""
    path = workbook(tmp_path, [
        ("填写说明", INSTRUCTIONS, "visible"),
        ("机构数据", [HEADER, ["东城社区卫生服务中心", "社区卫生服务中心", "S1"]], "visible"),
    ])  # fmt: skip
    job = importer.import_file(path, "institutions", users["kam"])
    assert job.status == ImportJob.Status.DONE and job.created_count == 1
    assert Institution.objects.get(external_id="S1").name == "东城社区卫生服务中心"
    assert notes_en(job) == ["Only the sheet “机构数据” was read; the workbook's other sheets were not: “填写说明”."]

    # the wizard's report page says it too
    response = client_for("kam").get(reverse("customers:import-detail", args=[job.pk]), **EN)
    assert "Only the sheet “机构数据” was read" in response.content.decode()


def test_a_hidden_sheet_is_never_read_even_when_it_comes_first_with_the_right_headers(users, tmp_path):
    """A hidden first sheet (an old copy, a look-up list) was imported, though the user never saw it."""
    path = workbook(tmp_path, [
        ("旧数据", [HEADER, ["不该导入的医院", "医院", "OLD-1"]], "hidden"),
        ("导入数据", [HEADER, ["朝阳中心医院", "医院", "NEW-1"]], "visible"),
    ])  # fmt: skip
    job = importer.import_file(path, "institutions", users["kam"])
    assert job.created_count == 1
    imported = Institution.objects.filter(external_id__in=["OLD-1", "NEW-1"]).values_list("external_id", flat=True)
    assert list(imported) == ["NEW-1"]


def test_a_header_error_names_the_sheet_it_is_about(users, tmp_path):
    """"Required columns are missing" did not say which sheet was read, in a workbook of several."""
    one = workbook(tmp_path, [("客户清单", [["名字", "电话"], ["甲", "010-12345678"]], "visible")], "one.xlsx")
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        importer.import_file(one, "institutions", users["kam"])
    assert refused.value.messages == [
        "Sheet “客户清单”: Required columns are missing: Institution name, Institution type. Download the template to see the "
        "expected headers."
    ]
    several = workbook(tmp_path, [
        ("填写说明", INSTRUCTIONS, "visible"), ("数据", [["名字", "电话"], ["甲", "010-12345678"]], "visible"),
    ], "several.xlsx")  # fmt: skip
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        importer.import_file(several, "institutions", users["kam"])
    message = refused.value.messages[0]
    assert message.startswith("No visible sheet of the workbook has the template's header row, so the first one, "
                              "“填写说明”, was read: Required columns are missing")  # fmt: skip


def test_the_upload_page_names_the_sheet_of_a_refused_workbook(client_for, tmp_path):
    path = workbook(tmp_path, [("Sheet1", [["机构名称", "机构类型"]], "visible")])
    upload = SimpleUploadedFile("机构.xlsx", path.read_bytes())
    response = client_for("kam").post(
        reverse("customers:import"), {"target": "institutions", "mode": "all", "file": upload}, **EN
    )
    assert response.status_code == 400
    assert "Sheet “Sheet1”: The file has a header row but no data rows." in response.content.decode()


# --- 2. the column of a region error ------------------------------------------------------------------------


def test_a_region_error_names_the_column_that_holds_the_bad_value(users, tmp_path):
    """The error named the most specific region column filled in (区县), whichever held the unknown name."""
    content = "\n".join([
        "机构名称,机构类型,省,市,区县,外部编号",
        "甲诊所,诊所,火星省,广州市,天河区,R1",  # the province is unknown
        "乙诊所,诊所,广东省,杭州市,天河区,R2",  # the city is not in the province
        "丙诊所,诊所,广东省,广州市,西湖区,R3",  # the district is not in the city
        "丁诊所,诊所,广东省,广州市,天河区,R4",
    ]).encode()  # fmt: skip
    job = importer.import_file(write(tmp_path, "i.csv", content), "institutions", users["kam"], mode="good")
    assert errors_en(job) == [
        (2, "省", "No region named “火星省” was found."),
        (3, "市", "“杭州市” does not lie in the province or city given in this row."),
        (4, "区县", "“西湖区” does not lie in the province or city given in this row."),
    ]
    assert Institution.objects.get(external_id="R4").region_id == "440106"


# --- 3. Traditional characters ------------------------------------------------------------------------------


def test_headers_regions_and_choice_words_in_traditional_characters_import(users, tmp_path):
    """A zh-Hant user's file (機構名稱, 統一社會信用代碼, 廣東省 …) was refused: "required columns are missing"."""
    code = normalise.make_credit_code("12440106MB0000001")
    content = "\n".join([
        "機構名稱,機構類型,醫院等級,統一社會信用代碼,省,市,區縣,電話,外部編號",
        f"廣州天河中心醫院,醫院,三級甲等,{code},廣東省,廣州市,天河區,020-12345678,T1",
    ]).encode()  # fmt: skip
    job = importer.import_file(write(tmp_path, "i.csv", content), "institutions", users["kam"])
    assert job.status == ImportJob.Status.DONE, notes_en(job) + errors_en(job)
    hospital = Institution.objects.get(external_id="T1")
    assert (hospital.kind, hospital.grade, hospital.credit_code, hospital.region_id, hospital.phone) == (
        "hospital", "3A", code, "440106", "020-12345678"
    )
    assert job.message == "[]"  # no column was ignored

    # people: 所屬機構, 手機, and the Taiwan wording OpenCC (s2twp) gives 信息来源 (資訊來源)
    content = "姓名,所屬機構,手機,資訊來源,外部編號\n陳小明,T1,13800138111,市場調研,TP1\n".encode()
    job = importer.import_file(write(tmp_path, "p.csv", content), "people", users["kam"])
    assert job.created_count == 1, errors_en(job)
    person = Person.objects.get(external_id="TP1")
    assert (person.institution, person.mobile, person.source) == (hospital, "13800138111", "research")


def test_the_template_downloaded_in_traditional_chinese_imports_back(client_for, users, tmp_path):
    client = client_for("kam")
    response = client.get(reverse("customers:import-template", args=["institutions", "xlsx"]),
                          HTTP_ACCEPT_LANGUAGE="zh-hant")  # fmt: skip
    wb = load_workbook(io.BytesIO(response.content))
    headers = [c.value for c in wb.worksheets[0][1]]
    row = {"机构名称": "臺北路診所", "机构类型": "診所", "省": "廣東省", "市": "廣州市", "外部编号": "ZT1"}
    wb.worksheets[0].append([row.get(h, "") for h in headers])
    wb.move_sheet(wb.worksheets[1], offset=-1)  # the instructions sheet first, as some users keep it
    path = tmp_path / "範本.xlsx"
    wb.save(path)
    job = importer.import_file(path, "institutions", users["kam"])
    assert job.created_count == 1, errors_en(job)
    assert Institution.objects.get(external_id="ZT1").region_id == "440100"


# --- 4. a landline's extension ------------------------------------------------------------------------------


def test_a_landline_extension_is_kept_by_the_import_and_the_form_and_shown(users, xiehe, tmp_path, client_for):
    """010-12345678-8021 and 010-12345678 转 8021 were stored as 01012345678: the doctor could not be reached."""
    content = "\n".join([
        "姓名,所属机构,座机,外部编号",
        f"李医生,{XIEHE_CODE},010-12345678-8021,L1",
        f"王医生,{XIEHE_CODE},010-12345678 转 8022,L2",
        f"赵医生,{XIEHE_CODE},010-12345678,L3",
    ]).encode()  # fmt: skip
    job = importer.import_file(write(tmp_path, "p.csv", content), "people", users["kam"])
    assert job.created_count == 3, errors_en(job)
    stored = dict(Person.objects.filter(external_id__in=["L1", "L2", "L3"]).values_list("external_id", "landline"))
    assert stored == {"L1": "01012345678转8021", "L2": "01012345678转8022", "L3": "01012345678"}
    li = Person.objects.get(external_id="L1")
    page = client_for("admin").get(reverse("customers:person", args=[li.pk]), **EN).content.decode()
    assert "010-12345678 转8021" in page
    # the same line without the extension is still the same number for duplicate checks and search
    assert li.landline_bidx == Person.objects.get(external_id="L3").landline_bidx

    # a new extension in a second import is a change, not "unchanged"
    again = f"姓名,所属机构,座机,外部编号\n李医生,{XIEHE_CODE},010-12345678转8099,L1\n".encode()
    job = importer.import_file(write(tmp_path, "p2.csv", again), "people", users["kam"])
    assert (job.updated_count, job.unchanged_count) == (1, 0)
    li.refresh_from_db()
    assert li.landline == "01012345678转8099"

    # the web form (services) keeps it too
    person = services.create_person(users["kam"], {"name": "孙药师", "institution": xiehe,
                                                   "landline": "0755-86013388-2105"})  # fmt: skip
    assert normalise.format_phone(person.landline) == "0755-86013388 转2105"
    assert normalise.mask_phone(person.landline) == "075****3388"


# --- 5. Excel error values ----------------------------------------------------------------------------------


def test_excel_error_values_are_row_errors_naming_the_column(users, xiehe, tmp_path):
    """#N/A, #REF! … were read as empty cells: a row whose VLOOKUP failed was imported without its mobile."""
    wb = Workbook()
    ws = wb.active
    ws.append(["姓名", "所属机构", "手机", "邮箱", "职称", "外部编号"])
    ws.append(["李娜", XIEHE_CODE, "#N/A", "lina@example.cn", "医师", "E1"])
    ws.append(["王芳", XIEHE_CODE, "13800138002", "#REF!", "#VALUE!", "E2"])
    ws.append(["刘洋", "#DIV/0!", "13800138003", "", "#NAME?", "E3"])
    ws.append(["陈静", XIEHE_CODE, "13800138004", "", "药师", "E4"])
    assert ws["C2"].data_type == "e"  # stored as Excel stores an error value
    path = tmp_path / "errors.xlsx"
    wb.save(path)
    job = importer.import_file(path, "people", users["kam"], mode="good")
    template = "The cell holds an Excel error ({}), not a value: correct the formula or enter the value itself."
    assert sorted(errors_en(job)) == [
        (2, "手机", template.format("#N/A")),
        (3, "职称", template.format("#VALUE!")),
        (3, "邮箱", template.format("#REF!")),
        (4, "所属机构", template.format("#DIV/0!")),
        (4, "职称", template.format("#NAME?")),
    ]
    assert list(Person.objects.filter(external_id__startswith="E").values_list("external_id", flat=True)) == ["E4"]
    # the report shows the error value (not a personal value: the mobile column shows nothing)
    assert {e["column"]: e.get("value") for e in job.errors if e["row"] == 3} == {"邮箱": None, "职称": "#VALUE!"}


def test_a_failed_formula_as_excel_saves_it_is_a_row_error(users, xiehe, tmp_path):
    """Excel keeps a failed formula with its error as the result: <c t="e"><f>VLOOKUP(…)</f><v>#N/A</v></c>."""
    wb = Workbook()
    wb.active.append(["姓名", "所属机构", "手机", "外部编号"])
    wb.active.append(["李娜", XIEHE_CODE, "#N/A", "F1"])
    wb.active.append(["王芳", XIEHE_CODE, "13800138002", "F2"])
    plain = tmp_path / "plain.xlsx"
    wb.save(plain)
    path = tmp_path / "formula.xlsx"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                cell = b'<c r="C2" t="e"><v>#N/A</v></c>'
                assert cell in data
                data = data.replace(cell, b'<c r="C2" t="e"><f>VLOOKUP(A2,Sheet2!A:B,2,FALSE)</f><v>#N/A</v></c>')
            out.writestr(info, data)
    job = importer.import_file(path, "people", users["kam"], mode="good")
    assert [(r, c) for r, c, _t in errors_en(job)] == [(2, "手机")]
    assert job.created_count == 1


def test_an_excel_error_saved_into_a_csv_is_a_row_error_too(users, tmp_path):
    content = "机构名称,机构类型,外部编号\n甲医院,#N/A,X1\n".encode()
    job = importer.import_file(write(tmp_path, "i.csv", content), "institutions", users["kam"], mode="good")
    assert [(r, c) for r, c, _t in errors_en(job)] == [(2, "机构类型")]
    assert "Excel error (#N/A)" in errors_en(job)[0][2]


# --- 6. codes stored as numbers -----------------------------------------------------------------------------


def test_a_code_stored_as_a_number_is_said_so_not_a_checksum_error(users, xiehe, tmp_path):
    """A credit code typed into a number cell (9.1110108E+17: Excel keeps 15 digits) was refused as "the check
    character is wrong"; a landline lost its leading 0 and was "not a valid landline"."""
    wb = Workbook()
    ws = wb.active
    ws.append(["机构名称", "机构类型", "统一社会信用代码", "电话", "外部编号"])
    ws.append(["甲医院", "医院", 911101080000000000, "010-12345678", "N1"])
    ws.append(["乙医院", "医院", "", 1012345678, "N2"])
    ws.append(["丙医院", "医院", "", 13800138000, 12345])  # a mobile and an id as numbers lose nothing
    path = tmp_path / "numbers.xlsx"
    wb.save(path)
    job = importer.import_file(path, "institutions", users["kam"], mode="good")
    said = ("The cell is stored as a number, which changes codes and phone numbers (digits after the 15th become "
            "0, leading zeros are dropped): format the column as text in Excel, enter the value again and import "
            "the file again.")  # fmt: skip
    assert errors_en(job) == [(2, "统一社会信用代码", said), (3, "电话", said)]
    assert Institution.objects.get(external_id="12345").phone == "13800138000"

    wb = Workbook()
    ws = wb.active
    ws.append(["姓名", "所属机构", "座机", "身份证号", "外部编号"])
    ws.append(["李娜", XIEHE_CODE, 1069156114, "", "P1"])
    ws.append(["王芳", XIEHE_CODE, "", 110105194912310021, "P2"])
    path = tmp_path / "people.xlsx"
    wb.save(path)
    job = importer.import_file(path, "people", users["kam"], mode="good")
    assert errors_en(job) == [(2, "座机", said), (3, "身份证号", said)]

    # the same number saved from Excel to CSV: 9.1110108E+17
    content = "机构名称,机构类型,统一社会信用代码\n丁医院,医院,9.1110108E+17\n".encode()
    job = importer.import_file(write(tmp_path, "i.csv", content), "institutions", users["kam"], mode="good")
    assert errors_en(job) == [(2, "统一社会信用代码", said)]
