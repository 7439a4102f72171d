"""Customer exports in the exporting user's language: an English or Traditional-Chinese user got the Simplified
Chinese headers (机构名称, 客户层级) and words (医院, 三级甲等) whatever their language. The headers and the words of
coded values now follow the user's language, and a file exported in any language imports again without edits."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse
from django.utils import translation
from openpyxl import load_workbook

from pharmacrm.customers import importer
from pharmacrm.customers.choices import HospitalGrade, InstitutionType, Tier
from pharmacrm.customers.models import ImportJob, Institution


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def speaking(client_for, users, role: str, language: str):
    """A client of the role whose account is in `language` (the language menu's choice)."""
    users[role].language = language
    users[role].save(update_fields=["language"])
    return client_for(role)


def download(client, target: str, fmt: str) -> bytes:
    response = client.get(reverse("customers:export", args=[target, fmt]))
    assert response.status_code == 200, response.status_code
    return b"".join(response.streaming_content)


def rows_of(body: bytes, fmt: str) -> list[list]:
    if fmt == "csv":
        return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    return [[c.value for c in row] for row in load_workbook(io.BytesIO(body)).worksheets[0].iter_rows()]


def record(rows: list[list], column: str, value: str) -> dict:
    """The row whose `column` holds `value`, as header → cell."""
    i = rows[0].index(column)
    return dict(zip(rows[0], next(r for r in rows[1:] if r[i] == value), strict=True))


def headers_in(language: str, target: str) -> list[str]:
    """The export's headers as the catalogue of `language` words them."""
    with translation.override(language):
        out = []
        for col in importer.columns_for(target):
            if col.template:
                out.append(str(col.label))
                if col.key in ("institution", "parent"):
                    out.append(str(importer.EXPORT_ONLY_LABELS[f"{col.key}_name"]))
        return out


def test_an_english_user_gets_english_headers_and_words(client_for, users, xiehe):
    client = speaking(client_for, users, "kam", "en")
    rows = rows_of(download(client, "institutions", "xlsx"), "xlsx")
    assert rows[0][:4] == ["Internal code", "Institution name", "Institution type", "Hospital grade"]
    assert rows[0] == headers_in("en", "institutions")
    assert not {"机构名称", "机构类型", "客户层级", "上级机构名称"} & set(rows[0])
    hospital = record(rows, "Institution name", "北京协和医院")
    assert (hospital["Institution type"], hospital["Hospital grade"], hospital["Tier"]) == (
        "Hospital", "Grade III-A", "New",
    )  # fmt: skip
    dept = record(rows, "Institution name", "心内科")
    assert dept["Parent institution"] == xiehe.credit_code and dept["Name of the parent institution"] == "北京协和医院"
    assert dept["Institution type"] == "Department"

    people = rows_of(download(client, "people", "csv"), "csv")
    assert people[0][:3] == ["Internal code", "Name", "Gender"]
    assert people[0] == headers_in("en", "people")
    doctor = record(people, "Name", "张伟")
    assert (doctor["Mobile phone"], doctor["E-mail"], doctor["Name of the institution"]) == (
        "138 0013 8000", "zhangwei@example.com", "北京协和医院",
    )  # fmt: skip


def test_a_traditional_chinese_user_gets_traditional_headers_and_words(client_for, users, xiehe):
    client = speaking(client_for, users, "kam", "zh-hant")
    rows = rows_of(download(client, "institutions", "csv"), "csv")
    assert rows[0] == headers_in("zh-hant", "institutions")
    assert {"內部編號", "機構類型", "醫院等級", "客戶層級", "統一社會信用代碼"} <= set(rows[0])
    assert not {"内部编号", "机构类型", "医院等级", "客户层级"} & set(rows[0])  # none in Simplified characters
    hospital = record(rows, "內部編號", xiehe.code)
    assert (hospital["機構類型"], hospital["醫院等級"], hospital["客戶層級"]) == ("醫院", "三級甲等", "新客戶")
    with translation.override("zh-hant"):
        expected = [str(label) for label in (InstitutionType.HOSPITAL.label, HospitalGrade.G3A.label, Tier.NEW.label)]
    assert [hospital["機構類型"], hospital["醫院等級"], hospital["客戶層級"]] == expected
    assert "朝陽區" in hospital.values() and "朝阳区" not in hospital.values()  # the region as the pages write it

    people = rows_of(download(client, "people", "xlsx"), "xlsx")
    assert people[0] == headers_in("zh-hant", "people")
    assert {"內部編號", "性別", "職稱", "手機", "身份證號"} <= set(people[0])


def test_a_simplified_chinese_user_still_gets_the_templates_headers_and_words(client_for, users, xiehe):
    client = speaking(client_for, users, "kam", "zh-hans")
    rows = rows_of(download(client, "institutions", "csv"), "csv")
    assert rows[0][:4] == ["内部编号", "机构名称", "机构类型", "医院等级"]
    hospital = record(rows, "机构名称", "北京协和医院")
    assert (hospital["机构类型"], hospital["医院等级"], hospital["客户层级"]) == ("医院", "三级甲等", "新客户")
    people = rows_of(download(client, "people", "csv"), "csv")
    assert people[0][:6] == ["内部编号", "姓名", "性别", "角色", "职称", "所属机构"] and "所属机构名称" in people[0]


@pytest.mark.parametrize("language", ["en", "zh-hant", "zh-hans"])
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_file_exported_in_any_language_imports_again_unchanged(client_for, users, xiehe, ruijin, tmp_path,
                                                                   language, fmt):  # fmt: skip
    client = speaking(client_for, users, "kam", language)
    for target, count in (("institutions", 3), ("people", 1)):
        path = tmp_path / f"{target}-{language}.{fmt}"
        path.write_bytes(download(client, target, fmt))
        before = list(Institution.objects.order_by("pk").values())
        for dry_run in (True, False):
            job = importer.import_file(path, target, users["kam"], dry_run=dry_run)
            assert job.status == (ImportJob.Status.PREVIEWED if dry_run else ImportJob.Status.DONE)
            assert (job.created_count, job.updated_count, job.error_count) == (0, 0, 0), job.errors
            assert job.unchanged_count == count
            # every column read, the readers' columns (所属机构名称) passed over in silence
            assert importer.job_messages(job) == []
        assert list(Institution.objects.order_by("pk").values()) == before
    if language == "en":  # the English region names read back by themselves too, without the region code beside
        rows = rows_of((tmp_path / f"institutions-en.{fmt}").read_bytes(), fmt)
        assert {"Beijing", "Chaoyang District", "Shanghai", "Xuhui District"} <= {c for r in rows for c in r}
        code = rows[0].index("Region code")
        path = tmp_path / "institutions-en-names.csv"
        with open(path, "w", encoding="utf-8-sig", newline="") as fh:
            csv.writer(fh).writerows([rows[0], *[[*r[:code], "", *r[code + 1 :]] for r in rows[1:]]])
        before = list(Institution.objects.order_by("pk").values())
        job = importer.import_file(path, "institutions", users["kam"])
        assert (job.unchanged_count, job.created_count, job.updated_count, job.error_count) == (3, 0, 0, 0), job.errors
        assert list(Institution.objects.order_by("pk").values()) == before


def test_an_english_export_is_masked_for_a_role_that_may_not_see_personal_data(client_for, users, xiehe):
    rows = rows_of(download(speaking(client_for, users, "analyst", "en"), "people", "csv"), "csv")
    doctor = record(rows, "Name", "张伟")
    assert (doctor["Mobile phone"], doctor["E-mail"], doctor["Birthday"]) == (
        "138****8000", "z***@example.com", "****-03-15",
    )  # fmt: skip


@pytest.mark.parametrize("target", ["institutions", "people", "orders"])
def test_every_columns_header_in_every_language_names_that_column(target):
    """No translated header lands on another column (a label that is another column's alias would fill it)."""
    import pharmacrm.sales.importer  # noqa: F401 (registers the orders target)

    for language in ("zh-hans", "en", "zh-hant"):
        with translation.override(language):
            columns = importer.columns_for(target)
            headers = [importer.column_label(c) for c in columns] + [str(c.label) for c in columns]
            mapping, _missing, ignored = importer.map_headers(target, headers)
            assert [col.key for _i, col in mapping] == [c.key for c in columns], language
            assert ignored == [] and importer.duplicate_headers(target, headers[: len(columns)]) == []


@pytest.mark.parametrize("language", ["zh-hans", "en", "zh-hant"])
def test_each_coded_value_reads_back_from_its_word_in_each_language(language):
    with translation.override(language):
        for choices in importer.CHINESE_LABELS:
            for value in choices.values:
                assert importer.parse_choice(choices, importer.choice_label(choices, value)) == value


# --- the import template: Chinese headers by default, the page's language on request ------------------------


def test_the_template_keeps_its_chinese_headers_for_an_english_user(client_for, users):
    client = speaking(client_for, users, "kam", "en")
    body = client.get(reverse("customers:import-template", args=["institutions", "csv"])).content
    assert body.decode("utf-8-sig").splitlines()[0].split(",")[:3] == ["机构名称", "机构类型", "医院等级"]
    page = client.get(reverse("customers:import")).content.decode()
    assert "institutions.xlsx?headers=page" in page and "institutions.csv?headers=page" in page
    chinese_page = speaking(client_for, users, "manager", "zh-hans").get(reverse("customers:import")).content.decode()
    assert "?headers=page" not in chinese_page  # the template is in the page's language already


def test_the_template_in_the_page_language_imports_with_its_words(client_for, users, tmp_path):
    client = speaking(client_for, users, "kam", "en")
    response = client.get(reverse("customers:import-template", args=["institutions", "xlsx"]), {"headers": "page"})
    assert response.status_code == 200
    wb = load_workbook(io.BytesIO(response.content))
    headers = [c.value for c in wb.worksheets[0][1]]
    assert headers[:3] == ["Institution name", "Institution type", "Hospital grade"]
    assert wb.sheetnames == ["Import data", "Instructions"]
    validations = {dv.formula1 for dv in wb.worksheets[0].data_validations.dataValidation}
    assert any("Grade III-A" in f for f in validations)  # the choice list in English too
    instructions = {row[0].value: row[2].value for row in wb.worksheets[1].iter_rows(min_row=2)}
    assert "Grade III-A" in instructions["Hospital grade"]
    row = {"Institution name": "Bayside Clinic", "Institution type": "Hospital", "Hospital grade": "Grade II-A",
           "Tier": "VIP", "Province": "广东省", "City": "广州市", "External id": "EN1"}  # fmt: skip
    wb.worksheets[0].append([row.get(h, "") for h in headers])
    path = tmp_path / "template.xlsx"
    wb.save(path)
    job = importer.import_file(path, "institutions", users["kam"])
    assert (job.created_count, job.error_count) == (1, 0), job.errors
    created = Institution.objects.get(external_id="EN1")
    assert (created.kind, created.grade, created.tier, created.region_id) == ("hospital", "2A", "vip", "440100")

    csv_body = client.get(reverse("customers:import-template", args=["people", "csv"]), {"headers": "page"}).content
    assert csv_body.decode("utf-8-sig").splitlines()[0].split(",")[:3] == ["Name", "Gender", "Role"]


# --- regions in English for English readers --------------------------------------------------------------


def test_an_english_export_names_the_regions_in_english(client_for, users, xiehe):
    """The provinces by their official English names, cities and districts in pinyin with the suffix in English;
    they were 北京市, 朝阳区 in an English export."""
    rows = rows_of(download(speaking(client_for, users, "kam", "en"), "institutions", "csv"), "csv")
    hospital = record(rows, "Institution name", "北京协和医院")
    assert (hospital["Province"], hospital["City"], hospital["District"], hospital["Region code"]) == (
        "Beijing", "Beijing", "Chaoyang District", "110105",
    )  # fmt: skip
    assert not {"北京市", "朝阳区"} & set(hospital.values())
    hant = rows_of(download(speaking(client_for, users, "kam", "zh-hant"), "institutions", "csv"), "csv")
    assert record(hant, "內部編號", xiehe.code)["區縣"] == "朝陽區"  # Traditional script as before


@pytest.mark.parametrize(
    ("code", "english", "full"),
    [
        ("110105", "Chaoyang District", "Chaoyang District, Beijing"),
        ("150000", "Inner Mongolia", "Inner Mongolia"),
        ("450000", "Guangxi", "Guangxi"),
        ("810000", "Hong Kong SAR", "Hong Kong SAR"),
        ("440100", "Guangzhou City", "Guangzhou City, Guangdong"),
        ("610116", "Chang'an District", "Chang'an District, Xi'an City, Shaanxi"),
        ("222400", "Yanbian Korean Autonomous Prefecture", "Yanbian Korean Autonomous Prefecture, Jilin"),
        ("422800", "Enshi Tujia and Miao Autonomous Prefecture", "Enshi Tujia and Miao Autonomous Prefecture, Hubei"),
        ("500101", "Wanzhou District", "Wanzhou District, Chongqing"),
        ("500229", "Chengkou County", "Chengkou County, Chongqing"),
    ],
)
def test_a_region_reads_in_english_for_english_readers(db, code, english, full):
    from pharmacrm.core.models import Region

    region = Region.objects.get(code=code)
    with translation.override("en"):
        assert (region.display_name, str(region)) == (english, full)
    with translation.override("zh-hans"):
        assert region.display_name == region.name
    with translation.override("zh-hant"):
        assert str(region) != full


def test_english_region_names_are_read_by_the_import(users, tmp_path):
    path = tmp_path / "en.csv"
    rows = [["Institution name", "Institution type", "Province", "City", "District"],
            ["Bayside Clinic", "Clinic", "Guangdong", "Guangzhou City", "Tianhe District"],
            ["Hill Clinic", "Clinic", "Beijing", "Beijing", "Chaoyang"],
            ["Grass Clinic", "Clinic", "Inner Mongolia Autonomous Region", "Hulunbei'er", ""],
            ["Lake Clinic", "Clinic", "Hong Kong", "", ""],
            ["Nowhere Clinic", "Clinic", "Guangdong", "Atlantis City", ""],
            ["Odd Clinic", "Clinic", "Guangdong", "Guangzhou City", "Xuhui District"]]  # fmt: skip
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    job = importer.import_file(path, "institutions", users["kam"], mode="good")
    assert job.created_count == 4
    got = dict(Institution.objects.filter(name__endswith="Clinic").values_list("name", "region_id"))
    assert got == {"Bayside Clinic": "440106", "Hill Clinic": "110105", "Grass Clinic": "150700",
                   "Lake Clinic": "810000"}  # fmt: skip
    # a name no region has, and a district of Shanghai given under Guangzhou (it exists, but does not fit)
    assert [(e["row"], e["code"]) for e in job.errors] == [(6, "region_unknown"), (7, "region_mismatch")]


def test_an_english_page_shows_the_region_in_english(client_for, users, xiehe):
    page = speaking(client_for, users, "kam", "en").get(reverse("customers:institution", args=[xiehe.pk]))
    assert "Chaoyang District, Beijing" in page.content.decode() and "北京市朝阳区" not in page.content.decode()
