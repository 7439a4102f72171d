"""Phone numbers as people write them, from the fifteenth session's QA round: an extension after a dash,
the 0086 prefix before a Beijing number, and a foreign number never taken for a Chinese mobile."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from pharmacrm.customers import normalise


@pytest.mark.parametrize(("written", "digits"), [
    ("010-12345678-123", "01012345678"),  # the extension after a dash, as on business cards
    ("0755-1234567-88", "07551234567"),
    ("0086-10-12345678", "01012345678"),  # Beijing's 10 after the country code is not a mobile's 1
    ("+86 10 1234 5678", "01012345678"),
    ("+86-138-0013-8000", "13800138000"),
    ("400-800-1234", "4008001234"),
    ("010-1234-5678", "01012345678"),
])  # fmt: skip
def test_chinese_numbers_as_written(written, digits):
    assert normalise.validate_any_phone(written) == digits


@pytest.mark.parametrize("foreign, e164", [
    ("+1 415 555 0100", "+14155550100"), ("+44 20 7946 0958", "+442079460958"), ("+852 9123 4567", "+85291234567"),
])  # fmt: skip
def test_a_foreign_number_is_not_read_as_a_chinese_one(foreign, e164):
    """+1 415 555 0100 was accepted as the mainland mobile 141 5555 0100. It is its own country's number, kept with
    its country code (tests/customers/test_phones_from_elsewhere.py); a made-up one is still refused."""
    assert normalise.validate_any_phone(foreign) == e164
    with pytest.raises(ValidationError):
        normalise.validate_any_phone(foreign[:-2])


def test_an_xlsx_whose_formulas_have_no_results_is_refused_not_imported_empty(users, tmp_path, settings):
    """openpyxl and pandas write formulas without their results: a mobile ="1380013"&"8005" was imported as an
    empty phone with no error. A file saved by Excel or WPS (results kept) imports as usual."""
    from openpyxl import Workbook

    from pharmacrm.customers import importer
    from pharmacrm.customers.models import Person

    settings.VAR_DIR = tmp_path / "var"
    wb = Workbook()
    wb.active.append(["姓名", "角色", "手机"])
    wb.active.append(["张三", "医生", '="1380013"&"8005"'])
    path = tmp_path / "scripted.xlsx"
    wb.save(path)
    with pytest.raises(ValidationError) as exc:
        importer.import_file(path, "people", users["kam"], mode="good")
    assert "WPS" in " ".join(exc.value.messages)
    assert not Person.objects.filter(name="张三").exists()


# --- merges and merged records (customer-master QA round) --------------------------------------------------

from django.core.exceptions import PermissionDenied  # noqa: E402

from pharmacrm.customers import services  # noqa: E402
from pharmacrm.customers.choices import InstitutionType  # noqa: E402
from pharmacrm.customers.models import Institution, Person  # noqa: E402
from pharmacrm.servicedesk import services as desk  # noqa: E402


def test_a_department_is_never_merged_into_a_hospital(users, xiehe):
    """Folding 心内科 into 北京协和医院 gave its people the hospital as their department (then no edit saved)
    and, the other way round, put the hospital under its own department."""
    dept = xiehe.children.get()
    for survivor, duplicate in ((xiehe, dept), (dept, xiehe)):
        with pytest.raises(ValidationError):
            services.merge(users["admin"], survivor, duplicate)
    assert Institution.objects.get(pk=xiehe.pk).parent_id is None and not Institution.objects.filter(
        merged_into__isnull=False).exists()


def test_a_merge_never_takes_a_parent_under_the_survivor(users, xiehe, beijing):
    """The duplicate's parent lies under the survivor: copying it would put the survivor under itself."""
    dept = xiehe.children.get()
    branch = services.create_institution(users["admin"], {
        "name": "北京协和医院门诊部", "kind": InstitutionType.HOSPITAL, "parent": dept, "region": beijing,
    })  # fmt: skip
    survivor = services.merge(users["admin"], xiehe, branch)
    assert survivor.parent_id is None
    survivor.refresh_from_db()
    services.update_institution(users["admin"], survivor, {"beds": 2100}, version=survivor.version)  # still saves


def test_a_person_merge_keeps_a_department_of_the_survivors_institution_only(users, xiehe, beijing):
    other = services.create_institution(users["admin"], {"name": "北京医院", "kind": InstitutionType.HOSPITAL,
                                                         "region": beijing})  # fmt: skip
    keep = services.create_person(users["admin"], {"name": "周测", "institution": other})
    zhang = Person.objects.get(name="张伟")
    survivor = services.merge(users["admin"], keep, zhang)
    assert survivor.institution_id == other.pk and survivor.department_id is None
    services.update_person(users["admin"], survivor, {"title": "主任医师"}, version=survivor.version)


def test_a_merged_record_takes_no_edit_consent_ticket_or_interaction(users, xiehe, beijing):
    """The web pages refused them; the API reached the services, and a withdrawal recorded on the merged
    record never reached the survivor."""
    from pharmacrm.engagement import services as engagement

    zhang = Person.objects.get(name="张伟")
    twin = services.create_person(users["admin"], {"name": "张伟", "institution": xiehe, "mobile": "13900139000"})
    services.merge(users["admin"], zhang, twin)
    twin.refresh_from_db()
    with pytest.raises(PermissionDenied):
        services.update_person(users["kam"], twin, {"title": "主任"}, version=twin.version)
    with pytest.raises(PermissionDenied):
        services.record_consent(users["agent"], twin, {"purpose": "marketing", "channel": "phone", "status": "withdrawn"})
    with pytest.raises(ValidationError) as exc:
        desk.create_ticket(users["agent"], {"subject": "咨询", "channel": "phone", "category": "drug_info", "person": twin})
    assert "张伟" in exc.value.message_dict["person"][0]
    with pytest.raises(ValidationError):
        engagement.record_interaction(users["kam"], {"person": twin, "channel": "visit", "subject": "拜访"})


def test_a_customer_with_tickets_is_not_deleted_and_says_why(users, xiehe, beijing):
    clinic = services.create_institution(users["admin"], {"name": "东单诊所", "kind": InstitutionType.CLINIC,
                                                          "region": beijing})  # fmt: skip
    desk.create_ticket(users["agent"], {"subject": "咨询", "channel": "phone", "category": "drug_info",
                                        "institution": clinic})  # fmt: skip
    with pytest.raises(ValidationError) as exc:
        services.delete_customer(users["admin"], clinic)
    assert "合并" in exc.value.messages[0] or "merge" in exc.value.messages[0]
    assert Institution.objects.filter(pk=clinic.pk).exists()


def test_county_level_cities_under_a_province_read_and_import_as_people_write_them(users):
    """海南省直辖县琼海市 on the pages; an import row 海南省 / 琼海市 refused as "not in the province"."""
    from pharmacrm.core.models import Region
    from pharmacrm.customers.importer import Regions

    qionghai = Region.objects.get(name="琼海市")
    assert qionghai.full_name == "海南省琼海市"
    regions = Regions()
    assert regions.resolve("", "海南省", "琼海市", "") == qionghai.code
    assert regions.resolve("", "新疆维吾尔自治区", "石河子市", "") == Region.objects.get(name="石河子市").code
    assert regions.resolve("", "广东省", "东莞市", "") == Region.objects.get(name="东莞市").code  # unchanged


def test_a_department_lies_where_its_hospital_does(users, xiehe, shanghai):
    """A department created without a region had none, so the territory's rep got 404 on it; a hospital that
    moved left its departments behind."""
    from pharmacrm.core import access

    neuro = services.create_institution(users["kam"], {"name": "神经内科", "kind": InstitutionType.DEPARTMENT,
                                                       "parent": xiehe})  # fmt: skip
    assert neuro.region_id == xiehe.region_id
    assert access.institutions_for(users["rep"], Institution.objects.filter(pk=neuro.pk)).exists()
    xiehe.refresh_from_db()
    services.update_institution(users["admin"], xiehe, {"region": shanghai}, version=xiehe.version)
    assert set(Institution.objects.filter(parent=xiehe).values_list("region_id", flat=True)) == {shanghai.code}
    assert Institution.objects.get(pk=neuro.pk).province == xiehe.__class__.objects.get(pk=xiehe.pk).province


@pytest.mark.parametrize(("name", "initials"), [
    ("长治市人民医院", "czsrmyy"), ("单县中心医院", "sxzxyy"), ("涡阳县人民医院", "gyxrmyy"), ("洪洞县人民医院", "htxrmyy"),
    ("漯河市中心医院", "lhszxyy"),
])  # fmt: skip
def test_place_names_are_found_by_their_real_reading(users, beijing, name, initials):
    """长治 read zhǎng zhì: `czsrmyy` found nothing and the hospital sorted after 阳曲 in 山西's list."""
    from pharmacrm.customers import search

    hospital = services.create_institution(users["admin"], {"name": name, "kind": InstitutionType.HOSPITAL,
                                                            "region": beijing})  # fmt: skip
    hits = search.search(users["admin"], initials, kinds=("institution",))
    assert hospital.pk in [h.obj.pk for h in hits]
