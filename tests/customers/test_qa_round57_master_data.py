"""Session 57, customer master data: a name of punctuation alone is no name (the form, the services, the import),
and a department lies in its hospital's province (the services, the form, the import). The API's side is in
tests/api/test_qa_round57_master_data_api.py."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import translation

from pharmacrm.core import access
from pharmacrm.core.models import Region
from pharmacrm.customers import importer, services
from pharmacrm.customers.models import ImportJob, Institution
from tests.customers.test_qa_round35_entry_paths import _csv, _errors

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
NO_WORD = "The name must contain a letter, a Chinese character or a digit: punctuation and symbols alone are not a name."
SYMBOLS = ["（）", "---", "···", "【】", "★☆", "( )"]


# --- a name of punctuation or symbols alone -------------------------------------------------------------------


@pytest.mark.parametrize("name", SYMBOLS)
def test_the_services_refuse_a_name_of_punctuation_alone(admin_user, xiehe, name):
    with translation.override("en"):  # the messages are lazy: read them in English too
        with pytest.raises(ValidationError) as refused:
            services.create_institution(admin_user, {"name": name, "kind": "clinic"})
        assert refused.value.message_dict == {"name": [NO_WORD]}
        with pytest.raises(ValidationError) as refused:
            services.update_institution(admin_user, xiehe, {"name": name})
        assert refused.value.message_dict == {"name": [NO_WORD]}
    xiehe.refresh_from_db()
    assert xiehe.name == "北京协和医院"


@pytest.mark.parametrize("name", ["（一）门诊部", "3", "A-1", "301医院", "·张氏诊所·"])
def test_a_name_with_a_letter_a_character_or_a_digit_is_taken(admin_user, name):
    assert services.create_institution(admin_user, {"name": name, "kind": "clinic"}).name == name


def test_the_form_refuses_a_name_of_punctuation_alone_on_the_name_field(client_for):
    client = client_for("kam")
    url = reverse("customers:institution-create")
    page = client.post(url, {"name": "（）", "kind": "clinic", "tier": "new", "stage": "potential"}, **EN)
    assert page.status_code == 200
    assert page.context["form"].errors["name"] == [NO_WORD]
    assert not Institution.objects.filter(name="（）").exists()


@pytest.mark.parametrize("mode", ["good", "all"])
def test_the_import_refuses_a_name_of_punctuation_alone(users, tmp_path, settings, mode):
    settings.VAR_DIR = tmp_path
    path = _csv(tmp_path, "institutions.csv", [
        ["机构名称", "机构类型", "外部编号"], ["---", "诊所", "I-1"], ["···", "诊所", "I-2"], ["帅府园诊所", "诊所", "I-3"],
    ])  # fmt: skip
    job = importer.import_file(path, "institutions", users["kam"], mode=mode)
    with translation.override("en"):
        assert _errors(job) == [(2, "机构名称", NO_WORD), (3, "机构名称", NO_WORD)]
    assert not Institution.objects.filter(external_id__in=["I-1", "I-2"]).exists()
    if mode == "good":
        assert (job.status, job.created_count) == (ImportJob.Status.DONE, 1)
    else:
        assert (job.status, job.created_count) == (ImportJob.Status.REJECTED, 0)


def test_the_import_reads_a_region_code_in_full_width_digits_as_the_api_does(users, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    path = _csv(tmp_path, "institutions.csv", [["机构名称", "机构类型", "行政区划代码", "外部编号"],
                                               ["帅府园诊所", "诊所", "１１０１０１", "I-1"]])  # fmt: skip
    job = importer.import_file(path, "institutions", users["kam"])
    assert _errors(job) == []
    assert Institution.objects.get(external_id="I-1").region_id == "110101"


# --- a department lies in its hospital's province --------------------------------------------------------------

ELSEWHERE = "A department lies in its hospital's province: 北京协和医院 is in Beijing, so choose a region in Beijing."


@pytest.fixture
def cardiology(admin_user, xiehe):
    return services.create_institution(admin_user, {"name": "心内科", "kind": "department", "parent": xiehe})


def test_a_department_is_refused_a_region_in_another_province_than_its_hospitals(admin_user, xiehe, cardiology,
                                                                                 shanghai):  # fmt: skip
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.update_institution(admin_user, cardiology, {"region": shanghai})
    assert refused.value.message_dict == {"region": [ELSEWHERE]}
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.create_institution(admin_user, {"name": "产科", "kind": "department", "parent": xiehe,
                                                 "region": shanghai})  # fmt: skip
    assert refused.value.message_dict == {"region": [ELSEWHERE]}
    # a district of its own in the hospital's province is taken
    dongcheng = Region.objects.get(code="110101")
    assert services.update_institution(admin_user, cardiology, {"region": dongcheng}).region_id == "110101"


def test_the_form_refuses_a_departments_region_in_another_province(client_for, cardiology):
    client = client_for("admin")
    url = reverse("customers:institution-edit", args=[cardiology.pk])
    form = client.get(url).context["form"]
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data.update({"province": "310000", "city": "310100", "district": "310104"})
    page = client.post(url, data, **EN)
    assert page.status_code == 200
    assert ELSEWHERE in page.context["form"].errors["province"]
    cardiology.refresh_from_db()
    assert cardiology.region_id == "110105"


def test_a_hospital_moved_to_another_province_takes_all_its_departments_along(admin_user, xiehe, cardiology,
                                                                              shanghai):  # fmt: skip
    from pharmacrm.core.models import AuditEntry

    dongcheng = Region.objects.get(code="110101")
    own = services.create_institution(admin_user, {"name": "产科", "kind": "department", "parent": xiehe,
                                                   "region": dongcheng})  # fmt: skip
    services.update_institution(admin_user, xiehe, {"region": shanghai})
    for dept in (cardiology, own):
        dept.refresh_from_db()
        assert (dept.region_id, dept.province) == ("310104", "310000")
        entry = AuditEntry.objects.filter(object_type="customers.institution", object_id=str(dept.pk)).latest("seq")
        assert entry.changes["region"][1] == "310104" and entry.extra.get("hospital_moved") == xiehe.pk


def test_a_move_within_the_province_leaves_a_department_its_own_district(admin_user, xiehe, cardiology):
    dongcheng, xicheng = Region.objects.get(code="110101"), Region.objects.get(code="110102")
    own = services.create_institution(admin_user, {"name": "产科", "kind": "department", "parent": xiehe,
                                                   "region": dongcheng})  # fmt: skip
    services.update_institution(admin_user, xiehe, {"region": xicheng})
    own.refresh_from_db()
    cardiology.refresh_from_db()
    assert (own.region_id, cardiology.region_id) == ("110101", "110102")


def test_a_department_moved_to_a_hospital_in_another_province_follows_it(admin_user, xiehe, ruijin):
    dongcheng = Region.objects.get(code="110101")
    own = services.create_institution(admin_user, {"name": "产科", "kind": "department", "parent": xiehe,
                                                   "region": dongcheng})  # fmt: skip
    services.update_institution(admin_user, own, {"parent": ruijin})
    own.refresh_from_db()
    assert own.region_id == ruijin.region_id


@pytest.mark.parametrize("mode", ["good", "all"])
def test_the_import_refuses_a_departments_region_in_another_province(users, xiehe, cardiology, tmp_path, settings,
                                                                     mode):  # fmt: skip
    settings.VAR_DIR = tmp_path
    path = _csv(tmp_path, "institutions.csv", [
        ["机构名称", "机构类型", "上级机构", "行政区划代码", "外部编号"],
        ["产科", "科室", "北京协和医院", "310104", "D-1"],
        ["儿科", "科室", "北京协和医院", "110101", "D-2"],
    ])  # fmt: skip
    job = importer.import_file(path, "institutions", users["admin"], mode=mode)
    with translation.override("en"):
        assert _errors(job) == [(2, "行政区划代码", ELSEWHERE)]
    assert not Institution.objects.filter(external_id="D-1").exists()
    assert Institution.objects.filter(external_id="D-2").exists() == (mode == "good")


def test_the_import_refuses_a_department_row_that_moves_it_to_another_province(users, xiehe, cardiology, tmp_path,
                                                                                settings):  # fmt: skip
    settings.VAR_DIR = tmp_path
    Institution.objects.filter(pk=cardiology.pk).update(external_id="D-9")
    path = _csv(tmp_path, "institutions.csv", [["机构名称", "机构类型", "外部编号", "省份", "城市", "区县"],
                                               ["心内科", "科室", "D-9", "上海市", "上海市", "徐汇区"]])  # fmt: skip
    job = importer.import_file(path, "institutions", users["admin"])
    with translation.override("en"):
        assert _errors(job) == [(2, "省份", ELSEWHERE)]
    cardiology.refresh_from_db()
    assert cardiology.region_id == "110105"


def test_a_hospital_moved_by_the_import_to_another_province_takes_its_departments_along(users, xiehe, cardiology,
                                                                                        tmp_path, settings):  # fmt: skip
    settings.VAR_DIR = tmp_path
    Institution.objects.filter(pk=cardiology.pk).update(region_id="110101")  # a district of its own
    Institution.objects.filter(pk=xiehe.pk).update(external_id="H-1")
    path = _csv(tmp_path, "institutions.csv", [["机构名称", "机构类型", "外部编号", "行政区划代码"],
                                               ["北京协和医院", "医院", "H-1", "310104"]])
    job = importer.import_file(path, "institutions", users["admin"])
    assert _errors(job) == [] and job.updated_count == 1
    cardiology.refresh_from_db()
    assert (cardiology.region_id, cardiology.province) == ("310104", "310000")


def test_a_department_imported_without_a_region_lies_where_its_hospital_does(users, xiehe, tmp_path, settings):
    """As the form creates one: imported without a region, a department was seen by no rep of its hospital's
    territory. Its hospital may be a row earlier in the same file."""
    settings.VAR_DIR = tmp_path
    path = _csv(tmp_path, "institutions.csv", [
        ["机构名称", "机构类型", "上级机构", "行政区划代码", "外部编号"],
        ["产科", "科室", "北京协和医院", "", "D-1"],
        ["瑞金医院", "医院", "", "310104", "H-2"],
        ["儿科", "科室", "H-2", "", "D-2"],
    ])  # fmt: skip
    job = importer.import_file(path, "institutions", users["admin"])
    assert _errors(job) == [] and job.created_count == 3
    first, second = Institution.objects.get(external_id="D-1"), Institution.objects.get(external_id="D-2")
    assert (first.region_id, first.province) == ("110105", "110000")
    assert (second.region_id, second.province) == ("310104", "310000")
    assert access.institutions_for(users["rep"]).filter(pk=first.pk).exists()  # the North team's rep: Beijing


def test_a_merge_into_a_hospital_of_another_province_takes_a_department_of_its_own_district_along(users, xiehe,
                                                                                                   shanghai):  # fmt: skip
    admin = users["admin"]
    dup = services.create_institution(admin, {"name": "协和医院", "kind": "hospital", "region": shanghai})
    huangpu = Region.objects.get(code="310101")
    dept = services.create_institution(admin, {"name": "急诊科", "kind": "department", "parent": dup, "region": huangpu})
    services.merge(users["manager"], xiehe, dup)
    dept.refresh_from_db()
    assert (dept.parent_id, dept.region_id, dept.province) == (xiehe.pk, xiehe.region_id, "110000")
