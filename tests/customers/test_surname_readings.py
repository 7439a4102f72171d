"""People are found by what users type of their names: a surname's own reading (曾 zeng, 长孙 zhang sun, 万俟 mo qi)
and its characters' common one, and ü typed as v or as u (吕 lv, lu). Only the names that read so get more index
rows; the migration gives existing ones their terms."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from pharmacrm.customers import importer, services
from pharmacrm.customers.models import Person, SearchTerm
from pharmacrm.customers.search import PERSON, name_terms, search


def _people(admin_user, xiehe, names):
    return {n: services.create_person(admin_user, {"name": n, "institution": xiehe}) for n in names}


def _found(user, query):
    return [h.obj.name for h in search(user, query, kinds=("person",))]


@pytest.mark.parametrize(
    ("name", "queries"),
    [
        ("长孙无忌", ["zhangsunwuji", "zswj", "zhangsun"]),
        ("万俟卨", ["moqixie", "mqx", "wanqixie"]),
        ("尉迟恭", ["yuchigong", "ycg", "weichigong"]),
        ("单雄信", ["shanxiongxin", "sxx", "danxiongxin"]),
        ("解缙", ["xiejin", "jiejin"]),
        ("仇英", ["qiuying", "chouying"]),
        ("区志坚", ["ouzhijian", "ozj", "quzhijian"]),
        ("朴志勇", ["piaozhiyong", "puzhiyong"]),
        ("查良镛", ["zhaliangyong", "chaliangyong", "zly"]),
        ("盖聂", ["genie", "gainie"]),
        ("曾国藩", ["zengguofan", "cengguofan", "zgf", "cgf"]),
        ("乐嘉", ["yuejia", "lejia"]),
        ("覃涛", ["qintao", "tantao"]),
        ("缪晓", ["miaoxiao", "mouxiao"]),
        ("翟林", ["zhailin", "dilin"]),
        ("秘燕", ["biyan", "miyan"]),
        ("繁钦", ["poqin", "fanqin"]),
        ("黑伟", ["hewei", "heiwei"]),
        ("员峰", ["yunfeng", "yuanfeng"]),
        ("召华", ["shaohua", "zhaohua"]),
        ("种师道", ["chongshidao", "zhongshidao"]),
        ("纪晓岚", ["jixiaolan", "jxl"]),
        ("任盈", ["renying"]),
        ("华佗", ["huatuo"]),
        ("吕布", ["lvbu", "lubu", "lü bu", "lb"]),
        ("张绿", ["zhanglv", "zhanglu", "lv", "lu"]),
        ("女娲", ["nvwa", "nuwa"]),
    ],
)
def test_a_person_is_found_by_the_surnames_reading_and_the_common_one(users, admin_user, xiehe, name, queries):
    _people(admin_user, xiehe, [name, "王芳"])
    for q in queries:
        assert name in _found(users["agent"], q), q


def test_the_surnames_reading_ranks_with_the_names_that_read_so(users, admin_user, xiehe):
    _people(admin_user, xiehe, ["曾伟", "增伟", "岑伟", "卢明", "吕明", "鲁明", "陆明"])
    # the whole reading ranks above a name that only starts with it
    assert set(_found(users["agent"], "zengwei")[:2]) == {"曾伟", "增伟"}
    assert _found(users["agent"], "cenwei") == ["岑伟"]  # ceng is not cen
    # lu finds 吕 alongside 卢, 陆, 鲁; lv finds 吕 only
    assert set(_found(users["agent"], "luming")) == {"卢明", "吕明", "鲁明", "陆明"}
    assert _found(users["agent"], "lvming") == ["吕明"]


def test_only_the_names_that_read_otherwise_get_more_index_rows():
    plain = name_terms("张伟", infix_positions=1, person=True)
    assert plain == {"C张", "C张伟", "Lzhangwei", "Lzw", "lwei"}
    assert name_terms("曾伟", infix_positions=1, person=True) - {"C曾", "C曾伟"} == {
        "Lzengwei", "Lzw", "Lcengwei", "Lcw", "lwei"}  # fmt: skip
    assert len(name_terms("吕布", infix_positions=1, person=True)) == len(plain) + 1  # Llubu beside Llvbu


def test_the_migration_gives_existing_people_their_other_readings(users, admin_user, xiehe):
    people = _people(admin_user, xiehe, ["长孙无忌", "吕布", "张伟"])
    # as the index was before: 长孙 read chang sun, 吕 lv only
    SearchTerm.objects.filter(kind=PERSON, term__in=["Lzhangsunwuji", "Lzswj", "Llubu"]).delete()
    SearchTerm.objects.create(term="Lchangsunwuji", kind=PERSON, obj_id=people["长孙无忌"].pk, province=11)
    Person.objects.filter(pk=people["长孙无忌"].pk).update(name_key="chang sun wu ji\x01长孙无忌")
    assert _found(users["agent"], "zswj") == [] and "吕布" not in _found(users["agent"], "lubu")
    zhang_wei = set(SearchTerm.objects.filter(obj_id=people["张伟"].pk, kind=PERSON).values_list("id", flat=True))

    migration = importlib.import_module("pharmacrm.customers.migrations.0021_reindex_other_readings")
    migration.reindex(apps, SimpleNamespace(connection=connection))

    assert _found(users["agent"], "zswj") == ["长孙无忌"]
    assert _found(users["agent"], "zhangsunwuji") == ["长孙无忌"]
    assert _found(users["agent"], "changsunwuji") == []
    assert "吕布" in _found(users["agent"], "lubu") and "吕布" in _found(users["agent"], "lvbu")
    assert Person.objects.get(pk=people["长孙无忌"].pk).name_key.startswith("zhang sun wu ji\x01")
    # the others' rows were left alone
    assert set(SearchTerm.objects.filter(obj_id=people["张伟"].pk, kind=PERSON).values_list("id", flat=True)) == zhang_wei


def test_an_imported_person_is_found_by_the_surnames_reading(users, xiehe, tmp_path, settings):
    from tests.customers.test_import import XIEHE_CODE, people_csv, write_file

    settings.VAR_DIR = tmp_path
    content = people_csv([["万俟卨", "男", "主任医师", XIEHE_CODE, "13800138001", "", "EXT-1"],
                          ["吕蒙", "男", "药师", XIEHE_CODE, "13800138002", "", "EXT-2"]])  # fmt: skip
    job = importer.import_file(write_file(tmp_path, "p.csv", content), "people", users["kam"])
    assert job.created_count == 2
    for q, name in (("moqixie", "万俟卨"), ("wanqixie", "万俟卨"), ("lumeng", "吕蒙"), ("lvmeng", "吕蒙")):
        assert name in _found(users["agent"], q), q
