"""The search box: fragments, pinyin, initials, phone, credit code, internal code, filters, scope."""

import pytest

from pharmacrm.customers import normalise, services
from pharmacrm.customers.search import Filters, classify, name_terms, search


@pytest.mark.parametrize(
    "query",
    ["北京协和医院", "协和", "协和医院", "bjxh", "bjxhyy", "beijingxiehe", "BeiJing XieHe", "xiehe", "xhyy"],
)
def test_it_finds_the_hospital_by_what_chinese_users_type(xiehe, users, query):
    hits = search(users["agent"], query)
    assert hits[0].obj == xiehe


def test_a_person_is_found_by_exact_phone_through_the_blind_index(xiehe, users):
    for q in ("13800138000", "138 0013 8000", "+86 138-0013-8000"):
        hits = search(users["agent"], q)
        assert [h.obj.name for h in hits] == ["张伟"], q
        assert hits[0].match == "phone"
    assert search(users["agent"], "13800138001") == []


def test_a_merged_records_phones_find_the_customer_it_was_merged_into(xiehe, users, admin_user):
    # the survivor keeps its own mobile; the caller on the duplicate's mobile (or landline, or an older record
    # merged into the duplicate first) was "not found" after the merge
    survivor = xiehe.people.get()
    dup = services.create_person(admin_user, {"name": "张伟", "institution": xiehe, "mobile": "13900139000",
                                              "landline": "010-69151234", "email": "zw@example.org"})  # fmt: skip
    older = services.create_person(
        admin_user, {"name": "张伟", "institution": xiehe, "mobile": "13700137000"}
    )
    services.merge(admin_user, dup, older)
    services.merge(admin_user, survivor, dup)
    for q in ("13900139000", "010-69151234", "13700137000", "zw@example.org", "13800138000"):
        hits = search(users["agent"], q)
        assert [h.obj for h in hits] == [survivor], q
    # an institution's switchboard number too
    other = services.create_institution(
        admin_user, {"name": "协和医院东院", "kind": "hospital", "phone": "010-88886666"}
    )
    services.merge(admin_user, xiehe, other)
    assert [h.obj for h in search(users["agent"], "010-88886666")] == [xiehe]


def test_credit_code_and_internal_code_find_the_institution(xiehe, users):
    assert search(users["agent"], xiehe.credit_code.lower())[0].obj == xiehe
    assert search(users["agent"], xiehe.code)[0].obj == xiehe


def test_people_are_found_by_name_and_pinyin(xiehe, users):
    for q in ("张伟", "zhangwei", "zw"):
        assert any(h.obj.name == "张伟" for h in search(users["agent"], q)), q


@pytest.mark.parametrize("query", ["lv", "lü", "LÜ", "lvliang", "lüliang", "Lü Liang", "lu:liang", "ll"])
def test_pinyin_with_u_umlaut_is_found_typed_as_v_or_as_u_umlaut(users, admin_user, beijing, query):
    # 吕 reads lü: Chinese input methods type it lv, and a name written in pinyin has lü; lü found nothing
    city = services.create_institution(
        admin_user, {"name": "吕梁市人民医院", "kind": "hospital", "region": beijing}
    )
    services.create_person(admin_user, {"name": "吕梁", "institution": city})
    services.create_institution(admin_user, {"name": "鲁南医院", "kind": "hospital", "region": beijing})
    hits = search(users["agent"], query)
    assert {h.obj.name for h in hits} == {"吕梁市人民医院", "吕梁"}, query


def test_a_latin_name_with_an_umlaut_is_still_found_as_written(users, admin_user):
    services.create_institution(admin_user, {"name": "Müller Pharma", "kind": "distributor"})
    assert [h.obj.name for h in search(users["agent"], "müller")] == ["Müller Pharma"]


def test_an_exact_name_ranks_above_a_longer_one(users, beijing):
    services.create_institution(users["agent"], {"name": "人民医院", "kind": "hospital", "region": beijing})
    services.create_institution(users["agent"], {"name": "北京人民医院分院", "kind": "hospital", "region": beijing})
    assert [h.obj.name for h in search(users["agent"], "人民医院")][0] == "人民医院"


def test_filters_narrow_the_results(xiehe, ruijin, users):
    assert search(users["agent"], "医院", Filters(region="310000"))[0].obj == ruijin
    assert all(h.obj.region_id.startswith("11") for h in search(users["agent"], "医院", Filters(region="110000")))
    assert search(users["agent"], "医院", Filters(type="pharmacy")) == []


def test_polyphonic_city_names_use_the_phrase_reading(users):
    assert "Lchongqingshi" in name_terms("重庆市")


def test_classify():
    assert classify("13800138000") == "phone"
    assert classify("010-69156114") == "phone"
    assert classify(normalise.make_credit_code("91110000MA0000001")) == "credit_code"
    assert classify("I00000012") == "code"
    assert classify("bjxh") == "pinyin"
    assert classify("协和") == "name"


def test_the_fast_visibility_check_agrees_with_the_scoped_querysets(xiehe, ruijin, users, make_user, beijing):
    from pharmacrm.core import access
    from pharmacrm.customers.models import Institution, Person

    owned = services.create_institution(users["agent"], {"name": "上海某诊所", "kind": "clinic"})
    services.update_institution(users["admin"], owned, {"owner": users["rep"]})
    services.create_person(users["admin"], {"name": "赵敏", "institution": ruijin})
    services.create_person(users["admin"], {"name": "钱强", "institution": ruijin, "owner": users["rep"]})
    all_inst = list(Institution.objects.values_list("id", flat=True))
    all_people = list(Person.objects.values_list("id", flat=True))
    for role in ("rep", "agent", "auditor", "analyst"):
        user = users[role]
        assert access.visible_ids(user, "institution", all_inst) == set(
            access.institutions_for(user).values_list("id", flat=True)
        ), role
        assert access.visible_ids(user, "person", all_people) == set(
            access.people_for(user).values_list("id", flat=True)
        ), role
