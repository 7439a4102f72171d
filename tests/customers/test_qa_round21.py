"""Session 21 review (customer master data): two merges of one pair at once, extensions written 分机, invisible
characters pasted from WeChat into e-mails, credit codes and ID numbers."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import translation

from pharmacrm.customers import services
from pharmacrm.customers.models import Institution, MergeRecord, Person

# --- two people merging the same records at once ---------------------------------------------------------------


def test_a_merge_of_a_record_someone_else_merged_meanwhile_is_refused(users, xiehe, beijing):
    manager, admin = users["manager"], users["admin"]
    dup = services.create_institution(admin, {"name": "协和医院", "kind": "hospital", "region": beijing})
    other = services.create_institution(admin, {"name": "协和医院东院", "kind": "hospital", "region": beijing})
    moved = services.create_person(admin, {"name": "刘洋", "institution": dup})
    # the second manager opened the page before the first one merged: their records were read then
    stale_xiehe, stale_dup = Institution.objects.get(pk=xiehe.pk), Institution.objects.get(pk=dup.pk)
    services.merge(admin, other, Institution.objects.get(pk=dup.pk))

    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.merge(manager, stale_xiehe, stale_dup)
    assert "already been merged" in refused.value.messages[0]
    dup.refresh_from_db()
    assert dup.merged_into_id == other.pk  # still where the first merge put it
    assert Person.objects.get(pk=moved.pk).institution_id == other.pk
    assert MergeRecord.objects.filter(merged_id=dup.pk).count() == 1


def test_two_records_are_never_merged_into_each_other(users, xiehe):
    admin = users["admin"]
    one = services.create_person(admin, {"name": "李娜", "institution": xiehe, "mobile": "13900139000"})
    two = services.create_person(admin, {"name": "李娜", "institution": xiehe, "mobile": "13900139001"})
    stale_one, stale_two = Person.objects.get(pk=one.pk), Person.objects.get(pk=two.pk)
    services.merge(admin, one, two)  # one manager keeps the first

    with pytest.raises(ValidationError):
        services.merge(users["manager"], stale_two, stale_one)  # the other, at the same time, the second
    one.refresh_from_db()
    two.refresh_from_db()
    assert one.merged_into_id is None and two.merged_into_id == one.pk


# --- extensions written 分机 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["010-69156114分机8021", "010-69156114 分机 8021", "010-69156114分機8021"])
def test_a_landline_with_its_extension_written_fenji_is_kept_with_the_extension(users, xiehe, written):
    """分机 is how most Chinese business cards and hospital switchboard lists write an extension: refused before as
    "not a valid landline", the agent had to learn to type 转."""
    person = services.create_person(users["agent"], {"name": "王芳", "institution": xiehe, "landline": written})
    person.refresh_from_db()
    assert person.landline == "01069156114转8021"
    inst = services.create_institution(users["admin"], {"name": "康源大药房", "kind": "pharmacy", "phone": written})
    assert inst.phone_norm == "01069156114"  # the line itself, as search by the switchboard's number reads it


# --- invisible characters pasted from WeChat or a web page ----------------------------------------------------------


def test_an_email_pasted_with_a_zero_width_space_is_stored_without_it_and_found_as_a_duplicate(users, xiehe):
    original = Person.objects.get(name="张伟")
    pasted = services.create_person(users["agent"], {"name": "张医生", "email": "\u200bzhangwei@example.com\u200b"})
    pasted.refresh_from_db()
    assert pasted.email == "zhangwei@example.com"
    assert (original, "email") in services.duplicates_of(pasted)


def test_a_credit_code_and_an_id_number_pasted_with_invisible_characters_are_accepted(users, xiehe):
    from pharmacrm.customers import normalise

    code = normalise.make_credit_code("91110105MA0123456")
    inst = services.create_institution(
        users["admin"], {"name": "康源大药房", "kind": "pharmacy", "credit_code": code[:9] + "\u200b" + code[9:] + "\ufeff"}
    )
    assert inst.credit_code == code
    person = services.create_person(users["agent"], {"name": "王芳", "id_number": "11010519491231002X\u200b"})
    person.refresh_from_db()
    assert person.id_number == "11010519491231002X"


# --- 400 / 800 numbers written with +86 ---------------------------------------------------------------------------


def test_a_400_number_written_with_the_country_code_is_the_same_400_number(users):
    admin = users["admin"]
    hotline = services.create_institution(admin, {"name": "国药控股", "kind": "distributor", "phone": "400-810-8888"})
    written = services.create_institution(admin, {"name": "国药控股股份有限公司", "kind": "distributor",
                                                  "phone": "+86 400 810 8888"})  # fmt: skip
    assert written.phone_norm == "4008108888"  # not the landline 0400-8108888 of an area code that does not exist
    assert (hotline, "phone") in services.duplicates_of(written)
    with pytest.raises(ValidationError) as refused:
        services.create_person(admin, {"name": "王芳", "landline": "+86 400 810 8888"})
    assert "landline" in refused.value.message_dict


# --- a department moved to another hospital ------------------------------------------------------------------------


def test_a_department_moved_to_another_hospital_takes_its_people_and_place_along(users, client_for, xiehe, ruijin):
    from pharmacrm.core.models import AuditEntry

    admin = users["admin"]
    dept = Institution.objects.get(name="心内科", parent=xiehe)
    doctor = Person.objects.get(name="张伟")
    services.update_institution(admin, dept, {"parent": ruijin})

    dept.refresh_from_db()
    doctor.refresh_from_db()
    assert dept.region_id == ruijin.region_id  # it lies where its new hospital does: 上海, not 北京
    assert doctor.institution_id == ruijin.pk and doctor.department_id == dept.pk
    assert doctor.province == "310000"  # in the lists and scope of the Shanghai reps, no longer of the Beijing ones
    entry = AuditEntry.objects.filter(object_type="customers.person", object_id=str(doctor.pk), action="update").last()
    assert entry.changes["institution"] == [xiehe.pk, ruijin.pk]
    # the doctor's record can still be edited (before: "This department does not belong to the chosen institution")
    services.update_person(admin, doctor, {"title": "副主任医师"})


def test_a_department_moved_together_with_a_region_of_its_own_keeps_that_region(users, xiehe, ruijin):
    from pharmacrm.core.models import Region

    dept = Institution.objects.get(name="心内科", parent=xiehe)
    pudong = Region.objects.get(code="310115")
    services.update_institution(users["admin"], dept, {"parent": ruijin, "region": pudong})
    dept.refresh_from_db()
    assert dept.region_id == "310115"


def test_a_reimport_that_moves_a_department_to_another_hospital_moves_its_people_too(users, xiehe, ruijin, tmp_path,
                                                                                       settings):
    from pharmacrm.customers import importer

    settings.VAR_DIR = tmp_path / "var"
    dept = Institution.objects.get(name="心内科", parent=xiehe)
    path = tmp_path / "institutions.csv"
    path.write_text(f"内部编号,机构名称,机构类型,上级机构\n{dept.code},心内科,科室,{ruijin.code}\n", encoding="utf-8")
    job = importer.import_file(str(path), "institutions", users["admin"], mode="all")
    assert (job.status, job.updated_count) == ("done", 1), job.errors

    dept.refresh_from_db()
    doctor = Person.objects.get(name="张伟")
    assert dept.parent_id == ruijin.pk and dept.region_id == ruijin.region_id
    assert doctor.institution_id == ruijin.pk and doctor.province == "310000"


def test_a_hospital_reimported_in_another_region_takes_its_departments_along(users, xiehe, tmp_path, settings):
    from pharmacrm.customers import importer

    settings.VAR_DIR = tmp_path / "var"
    dept = Institution.objects.get(name="心内科", parent=xiehe)
    path = tmp_path / "institutions.csv"
    path.write_text(f"内部编号,机构名称,机构类型,行政区划代码\n{xiehe.code},北京协和医院,医院,310104\n", encoding="utf-8")
    job = importer.import_file(str(path), "institutions", users["admin"], mode="all")
    assert (job.status, job.updated_count) == ("done", 1), job.errors

    dept.refresh_from_db()
    assert dept.region_id == "310104"  # as when the hospital is moved in its form: not left behind in 北京
    assert dept.province == "310000"


# --- a hospital's switchboard shared by its departments ------------------------------------------------------------


def test_departments_reached_through_the_hospitals_switchboard_are_not_its_duplicates(users, client_for, xiehe):
    admin = users["admin"]
    cardio = Institution.objects.get(name="心内科", parent=xiehe)
    services.update_institution(admin, cardio, {"phone": "010-69156114转8021"})
    gastro = services.create_institution(
        admin, {"name": "消化内科", "kind": "department", "parent": xiehe, "phone": "010-69156114 分机 8022"}
    )
    twin = services.create_institution(
        admin, {"name": "心血管内科", "kind": "department", "parent": xiehe, "phone": "010-69156114-8021"}
    )
    # the hospital and a department can never be merged, two extensions are two lines: only one line twice is listed
    assert services.duplicates_of(xiehe) == []
    assert services.duplicates_of(gastro) == []
    assert services.duplicates_of(cardio) == [(twin, "phone")]
    assert [sorted(g.ids) for g in services.institution_duplicates() if g.reason == "phone"] == [[cardio.pk, twin.pk]]
    page = client_for("manager").get(reverse("customers:duplicates"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "消化内科" not in page and "心血管内科" in page


def test_doctors_on_their_own_extensions_of_one_department_line_are_not_duplicates(users, xiehe):
    admin = users["admin"]
    wang = services.create_person(admin, {"name": "王芳", "institution": xiehe, "landline": "010-69156115转8021"})
    li = services.create_person(admin, {"name": "李娜", "institution": xiehe, "landline": "010-69156115 分机 8022"})
    again = services.create_person(admin, {"name": "王芳医生", "landline": "010-69156115-8021"})
    assert services.duplicates_of(li) == []
    assert services.duplicates_of(wang) == [(again, "phone")]
    landline_groups = [sorted(g.ids) for g in services.person_duplicates() if g.reason == "phone"]
    assert landline_groups == [[wang.pk, again.pk]]


@pytest.mark.parametrize("written", ["(010) 6915 6115-8021", "010-6915 6115-8021", "010 6915-6115-8021"])
def test_an_extension_after_a_dash_is_kept_when_the_number_is_spaced(users, xiehe, written):
    """Numbers are spaced as they are read out (6915 6115): the extension after the last dash was run into the
    number, and the landline refused as 15 digits long."""
    person = services.create_person(users["agent"], {"name": "王芳", "institution": xiehe, "landline": written})
    person.refresh_from_db()
    assert person.landline == "01069156115转8021"
    mobile = services.create_person(users["agent"], {"name": "李娜", "mobile": "138-0013-8001"})
    assert mobile.mobile == "13800138001"  # a mobile's dashes stay digit groups, never an extension


# --- a merge: the duplicate's departments come to the survivor's place ---------------------------------------------


def test_the_departments_of_a_hospital_entered_in_the_wrong_place_follow_the_merge(users, client_for, xiehe, shanghai):
    admin = users["admin"]
    dup = services.create_institution(admin, {"name": "协和医院", "kind": "hospital", "region": shanghai})
    dept = services.create_institution(admin, {"name": "急诊科", "kind": "department", "parent": dup})
    assert dept.region_id == shanghai.pk
    services.merge(users["manager"], xiehe, dup)

    dept.refresh_from_db()
    assert dept.parent_id == xiehe.pk
    assert (dept.region_id, dept.province) == (xiehe.region_id, "110000")
    # the Beijing rep sees the hospital's new department on its page
    page = client_for("rep").get(reverse("customers:institution", args=[xiehe.pk]), HTTP_ACCEPT_LANGUAGE="en")
    assert "急诊科" in page.content.decode()


@pytest.mark.parametrize("pasted", ["北京协和\u200b医院", "\ufeff协和医院", "010-6915\u200b6114"])
def test_a_name_or_number_pasted_with_a_zero_width_character_is_found(users, xiehe, pasted):
    from pharmacrm.customers import search

    assert [hit.obj for hit in search.search(users["agent"], pasted)] == [xiehe]


# --- county-level cities directly under their province, in exports --------------------------------------------------


def test_a_county_level_city_under_its_province_is_exported_as_the_city_and_imported_back(users, client_for, tmp_path,
                                                                                         settings):
    import csv
    import io

    from pharmacrm.core.models import Region
    from pharmacrm.customers import importer

    settings.VAR_DIR = tmp_path / "var"
    services.create_institution(users["admin"], {"name": "琼海市人民医院", "kind": "hospital",
                                                 "region": Region.objects.get(code="469002")})  # fmt: skip
    response = client_for("manager").get(reverse("customers:export", args=["institutions", "csv"]))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    row = dict(zip(rows[0], rows[1], strict=True))
    assert (row["省"], row["市"], row["区县"]) == ("海南省", "琼海市", "琼海市")  # not 市 = 直辖县

    path = tmp_path / "institutions.csv"
    path.write_text("\n".join(",".join(r) for r in rows), encoding="utf-8")
    job = importer.import_file(str(path), "institutions", users["admin"], mode="all")
    assert (job.status, job.unchanged_count, job.error_count) == ("done", 1, 0), job.errors
