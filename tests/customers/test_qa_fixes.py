"""QA fixes (issue 2, §2 customers and §4 import/export): masked values never overwrite real ones, an unchanged
export re-imports as unchanged, files are typed by content, birthdays have bounds, clear form messages, one
duplicates entry per pair, readable merge banner and history, no empty import offer, translatable ticket links."""

from __future__ import annotations

import csv
import datetime
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation
from rest_framework.test import APIClient

from pharmacrm.core import demo
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.personal import MASKERS
from pharmacrm.customers import importer, normalise, services, views
from pharmacrm.customers.models import ImportJob, Institution, Person

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


@pytest.fixture
def zhang(xiehe) -> Person:
    return Person.objects.get(name="张伟")


def export_csv(client, target: str = "people", **params) -> bytes:
    response = client.get(reverse("customers:export", args=[target, "csv"]), params)
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def rows_of(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def to_csv(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode("utf-8")


def write(tmp_path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def api_client(user) -> APIClient:
    from pharmacrm.core.models import ApiToken

    _token, key = ApiToken.issue(user, datetime.timedelta(hours=1), second_factor=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}", HTTP_ACCEPT_LANGUAGE="en")
    return client


def person_form(**values) -> dict:
    return {"name": "王芳", "role": "doctor", "tier": "new", "stage": "potential", **values}


# --- 1. masked values --------------------------------------------------------------------------------


def test_a_masked_export_imported_back_is_refused_cell_by_cell_and_changes_nothing(
    client_for, users, zhang, tmp_path
):
    services.update_person(users["admin"], zhang, {"id_number": "110105197503150022", "home_address": "北京东城"})
    zhang.refresh_from_db()
    before = (zhang.email, zhang.mobile, zhang.birthday, zhang.id_number, zhang.home_address, zhang.version)
    rows = rows_of(export_csv(client_for("analyst"), tier="new"))
    header, row = rows[0], rows[1]
    assert row[header.index("邮箱")] == "z***@example.com"  # the analyst sees masked values
    # the QA case: only code, name and the masked e-mail
    small = to_csv([["内部编号", "姓名", "邮箱"], [zhang.code, "张伟", "z***@example.com"]])
    job = importer.import_file(write(tmp_path, "small.csv", small), "people", users["kam"], mode="good")
    assert (job.updated_count, job.error_count) == (0, 1)
    assert [(e["column"], e["code"]) for e in job.errors] == [("邮箱", "masked")]
    # the whole masked export: every masked personal cell is named
    job = importer.import_file(write(tmp_path, "all.csv", to_csv(rows)), "people", users["kam"], mode="good")
    assert job.updated_count == 0 and job.error_count == 1
    assert sorted(e["column"] for e in job.errors) == sorted(["手机", "邮箱", "生日", "家庭住址", "身份证号"])
    with translation.override("en"):
        assert importer.error_text(job.errors[0]) == (
            "This value is masked (from an export): leave the cell empty to keep the stored value, or enter "
            "the full value."
        )
    zhang.refresh_from_db()
    assert (zhang.email, zhang.mobile, zhang.birthday, zhang.id_number, zhang.home_address, zhang.version) == before


def test_the_dry_run_page_names_the_masked_column(client_for, zhang, huey_immediate):
    content = to_csv([["内部编号", "姓名", "邮箱"], [zhang.code, "张伟", "z***@example.com"]])
    client = client_for("kam")
    client.post(reverse("customers:import"), {
        "target": "people", "mode": "all", "file": SimpleUploadedFile("p.csv", content),
    })  # fmt: skip
    job = ImportJob.objects.get()
    page = client.get(reverse("customers:import-detail", args=[job.pk]), **EN).content.decode()
    assert job.updated_count == 0 and "This value is masked (from an export)" in page


@pytest.mark.parametrize("field", ["mobile", "landline", "email", "birthday", "home_address", "id_number"])
def test_whatever_masking_produces_is_recognised_and_real_values_are_not(field):
    samples = {
        "mobile": ["13800138000", "1380013800"], "landline": ["01069156114", "07551234567"],
        "email": ["zhangwei@example.com", "a@b.cn"], "birthday": [datetime.date(1975, 3, 15)],
        "home_address": ["北京市东城区帅府园1号"], "id_number": ["11010519491231002X"],
    }  # fmt: skip
    for value in samples[field]:
        shown = MASKERS[field](value)
        assert normalise.is_masked(field, shown), shown
        if field in ("mobile", "landline"):
            assert normalise.is_masked(field, normalise.mask_phone(normalise.phone(str(value))))
        if not isinstance(value, datetime.date):
            assert not normalise.is_masked(field, value)


def test_the_person_form_and_the_api_refuse_masked_values_too(client_for, users, zhang):
    response = client_for("kam").post(
        f"/customers/people/{zhang.pk}/edit/",
        person_form(name="张伟", institution=zhang.institution_id, email="z***@example.com", version=zhang.version),
        **EN,
    )
    assert response.status_code == 200 and "This value is masked" in response.content.decode()
    api = api_client(users["kam"]).patch(
        f"/api/v1/people/{zhang.pk}/", {"mobile": "138****8000", "version": zhang.version}, format="json"
    )
    assert api.status_code == 400 and "This value is masked" in api.json()["mobile"][0]
    zhang.refresh_from_db()
    assert (zhang.email, zhang.mobile) == ("zhangwei@example.com", "13800138000")


# --- 2. an unchanged export re-imports as unchanged ---------------------------------------------------


def test_the_demo_stores_a_persons_landline_as_the_services_do():
    import random

    number = demo._person_landline(random.Random(1), "0311", set())
    assert number == normalise.validate_landline(number) and number.isdigit()


def test_an_unchanged_export_with_formatted_landlines_reimports_unchanged(client_for, users, zhang, tmp_path):
    # stored the way the old demo data stored it: formatted, not normalised
    Person.objects.filter(pk=zhang.pk).update(landline="0311-62916057", mobile="138 0013 8000")
    Institution.objects.filter(pk=zhang.institution_id).update(phone="010 6915 6114")
    version = Person.objects.get(pk=zhang.pk).version
    audit_before = AuditEntry.objects.filter(action="update").count()
    kam = users["kam"]
    for target in ("people", "institutions"):
        content = export_csv(client_for("kam"), target)
        job = importer.import_file(write(tmp_path, f"{target}.csv", content), target, kam, mode="all")
        assert (job.created_count, job.updated_count, job.error_count) == (0, 0, 0), (target, job.errors)
        assert job.unchanged_count >= 1
    assert Person.objects.get(pk=zhang.pk).version == version
    assert AuditEntry.objects.filter(action="update").count() == audit_before
    # the form saving the same number in another format records no change either
    person = Person.objects.get(pk=zhang.pk)
    services.update_person(users["kam"], person, {"landline": "0311 6291 6057"})
    assert Person.objects.get(pk=zhang.pk).version == version


# --- 3. file types from content ----------------------------------------------------------------------


def _office_zip(part: str) -> bytes:
    """A minimal Office Open XML document of another kind than a workbook (a .docx, a .pptx)."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr(part, "<document/>")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("people.xlsx", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "it contains a PDF"),
        ("people.xlsx", "姓名,手机\n张伟,13800138000\n".encode(), "it contains plain text"),
        ("people.csv", b"%PDF-1.4\n" + bytes(range(256)), "This is not a CSV or Excel (.xlsx) file"),
        ("people.csv", b"\x89PNG\r\n\x1a\n" + bytes(100), "it contains an image"),
        ("people.xlsx", _office_zip("word/document.xml"), "it contains a Word document"),
        ("people.xlsx", _office_zip("ppt/presentation.xml"), "it contains a PowerPoint presentation"),
    ],
)
def test_a_file_whose_content_is_not_what_its_name_says_is_refused(client_for, var_dir, name, content, reason):
    response = client_for("kam").post(
        reverse("customers:import"), {"target": "people", "mode": "all", "file": SimpleUploadedFile(name, content)},
        **EN,
    )  # fmt: skip
    page = response.content.decode()
    assert response.status_code == 400 and reason in page, page
    if name.endswith(".xlsx"):
        assert "This is not an Excel (.xlsx) file" in page
    assert "Required columns are missing" not in page
    assert ImportJob.objects.count() == 0 and list((var_dir / "imports").glob("*")) == []


# --- 4. birthdays --------------------------------------------------------------------------------------


def test_a_birthday_before_1900_is_refused_by_the_form_the_api_and_the_import(client_for, users, xiehe, tmp_path):
    response = client_for("kam").post("/customers/people/new/", person_form(birthday="1800-01-01"), **EN)
    assert response.status_code == 200 and "A birthday cannot be before 1900-01-01." in response.content.decode()
    assert not Person.objects.filter(name="王芳").exists()
    api = api_client(users["kam"]).post("/api/v1/people/", {"name": "王芳", "birthday": "1800-01-01"}, format="json")
    assert api.status_code == 400 and api.json()["birthday"] == ["A birthday cannot be before 1900-01-01."]
    content = to_csv([["姓名", "生日"], ["王芳", "1800-01-01"], ["李娜", "1900-01-01"]])
    job = importer.import_file(write(tmp_path, "p.csv", content), "people", users["kam"], mode="good")
    assert [(e["row"], e["column"], e["code"]) for e in job.errors] == [(2, "生日", "birthday_too_early")]
    with translation.override("en"):
        assert importer.error_text(job.errors[0]) == "A birthday cannot be before 1900-01-01."
    assert list(Person.objects.filter(name__in=["王芳", "李娜"]).values_list("name", "birthday")) == [
        ("李娜", datetime.date(1900, 1, 1))
    ]
    with pytest.raises(ValidationError):
        normalise.validate_birthday(datetime.date.today() + datetime.timedelta(days=1))


# --- 5. a department of another institution -------------------------------------------------------------


def test_the_form_says_why_a_department_of_another_institution_is_refused(client_for, xiehe, ruijin, admin_user):
    other = services.create_institution(admin_user, {"name": "骨科", "kind": "department", "parent": ruijin})
    response = client_for("agent").post(
        "/customers/people/new/", person_form(institution=xiehe.pk, department=other.pk), **EN
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "This department does not belong to the chosen institution." in page
    assert "Select a valid choice" not in page
    assert "骨科" not in page  # the select still offers only the chosen institution's departments
    assert not Person.objects.filter(name="王芳").exists()


# --- 6. duplicates: one entry per pair ------------------------------------------------------------------


def test_a_pair_matching_on_several_reasons_is_listed_once_with_every_reason(client_for, users, xiehe, zhang):
    twin = services.create_person(
        users["admin"], {"name": "张伟", "institution": xiehe, "email": "zhangwei@example.com"}
    )
    page = client_for("manager").get(reverse("customers:duplicates"), **EN).content.decode()
    people = page.split('id="dup-people"')[1]
    assert people.count(f'href="/customers/merge/person/{zhang.pk}/{twin.pk}/"') == 1
    assert people.count(f'href="/customers/people/{twin.pk}/"') == 1
    assert "Same e-mail address" in people and "Same name at the same institution" in people


# --- 7. merge banner and history ----------------------------------------------------------------------------


def test_the_merge_banner_and_history_read_well(client_for, users, xiehe, ruijin, beijing):
    dup = services.create_institution(users["admin"], {"name": "协和医院", "kind": "hospital", "region": beijing})
    services.merge(users["manager"], xiehe, dup)
    client = client_for("manager")
    merged_page = client.get(reverse("customers:institution", args=[dup.pk]), **EN).content.decode()
    assert f'This record was merged into <a href="/customers/institutions/{xiehe.pk}/">北京协和医院</a>.' in merged_page
    survivor_page = client.get(reverse("customers:institution", args=[xiehe.pk]), **EN).content.decode()
    assert f'Merged in: <a href="/customers/institutions/{dup.pk}/">协和医院</a> ({dup.code})' in survivor_page
    # foreign keys show names, not ids
    zhang = Person.objects.get(name="张伟")
    services.update_person(users["admin"], zhang, {"institution": ruijin, "department": None})
    person_page = client.get(reverse("customers:person", args=[zhang.pk]), **EN).content.decode()
    assert '<span class="before">北京协和医院</span> → <span class="after">上海交通大学医学院附属瑞金医院</span>' in person_page
    assert f"→ {ruijin.pk}<" not in person_page and f'"after">{ruijin.pk}<' not in person_page


def test_the_merge_banner_leads_to_the_record_that_lives_on_and_names_none_the_reader_may_not_see(
    client_for, users, ruijin
):
    """A merged record's banner linked to the record it was merged into: after a second merge, to another merged
    record (one more banner to click through); for a rep who owns the merged doctor, to a doctor at a hospital
    outside the territory — named on the banner, and "Not found" behind the link."""
    admin, manager = users["admin"], users["manager"]
    mine = services.create_person(admin, {"name": "王芳", "owner": users["rep"], "mobile": "13912345678"})
    shanghai = services.create_person(admin, {"name": "王芳", "institution": ruijin, "owner": manager})
    services.merge(manager, shanghai, mine)
    rep_page = client_for("rep").get(reverse("customers:person", args=[mine.pk]), **EN)
    assert rep_page.status_code == 200
    banner = rep_page.content.decode().split('role="status"')[1].split("</div>")[0]
    assert "which you may not see" in banner and "王芳" not in banner and str(shanghai.pk) not in banner

    last = services.create_person(admin, {"name": "王芳", "institution": ruijin, "email": "wf@example.com"})
    services.merge(manager, last, Person.objects.get(pk=shanghai.pk))
    page = client_for("manager").get(reverse("customers:person", args=[mine.pk]), **EN).content.decode()
    assert f'This record was merged into <a href="/customers/people/{last.pk}/">王芳</a>.' in page


def test_the_history_looks_up_names_with_one_query_per_model(users, xiehe, ruijin, beijing):
    zhang = Person.objects.get(name="张伟")

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            views._history(users["admin"], "customers.person", zhang.pk)
        return len(ctx.captured_queries)

    services.update_person(users["admin"], Person.objects.get(pk=zhang.pk), {"institution": ruijin, "department": None})
    one = queries()
    hospitals = [
        services.create_institution(users["admin"], {"name": f"医院{i}", "kind": "hospital", "region": beijing})
        for i in range(4)
    ]
    for h in hospitals:
        services.update_person(users["admin"], Person.objects.get(pk=zhang.pk), {"institution": h, "owner": users["kam"]})
    assert queries() == one + 1  # users are named in one more query, whatever the number of entries
    entries = views._history(users["admin"], "customers.person", zhang.pk)
    shown = [row for e in entries for row in e.rows if row[2] == "医院3"]
    assert shown and shown[0][1] == "医院2"


# --- 8. no "import 0 good rows" --------------------------------------------------------------------------------


def test_when_every_row_has_errors_no_import_is_offered(client_for, xiehe, huey_immediate):
    content = to_csv([["姓名", "手机"], ["王芳", "12345"], ["李娜", "138****8000"]])
    client = client_for("kam")
    client.post(reverse("customers:import"), {
        "target": "people", "mode": "good", "file": SimpleUploadedFile("p.csv", content),
    })  # fmt: skip
    job = ImportJob.objects.get()
    assert (job.status, job.error_count, job.created_count) == ("previewed", 2, 0)
    page = client.get(reverse("customers:import-detail", args=[job.pk]), **EN).content.decode()
    assert "No row can be imported" in page
    assert "good rows and skip" not in page and "Import now" not in page
    response = client.post(reverse("customers:import-confirm", args=[job.pk]), {"mode": "good"}, **EN)
    job.refresh_from_db()
    assert response.status_code == 302 and (job.status, job.dry_run) == ("previewed", True)


# --- 9. ticket links on the home page ------------------------------------------------------------------------------


def test_a_ticket_link_reads_as_a_sentence_in_the_readers_language(client_for, users, xiehe):
    from pharmacrm.servicedesk import linking
    from pharmacrm.servicedesk import services as desk

    def ticket(subject):
        data = {"subject": subject, "channel": "phone", "category": "drug_info", "institution": xiehe}
        return desk.create_ticket(users["agent"], data)

    a, b = ticket("甲"), ticket("乙")
    with translation.override("en"):
        link = linking.link(users["agent"], a, b)
        assert str(link) == f"{a.number} is related to {b.number}"
        link.kind = "duplicate"
        assert str(link) == f"{a.number} is a duplicate of {b.number}"
    home = client_for("agent").get("/", **EN).content.decode()
    assert f"{a.number} is related to {b.number}" in home and f"{a.pk} related {b.pk}" not in home


def test_the_chinese_refusal_reads_naturally(client_for, var_dir):
    response = client_for("kam").post(reverse("customers:import"), {
        "target": "people", "mode": "all", "file": SimpleUploadedFile("people.xlsx", b"%PDF-1.7\n" + bytes(50))})
    assert "其内容为一份 PDF 文档。" in response.content.decode()
