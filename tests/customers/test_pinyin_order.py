"""Names sort in pinyin order (拼音排序), as Chinese users expect of a list sorted by name: the customer lists,
the API's `ordering=name`, the 360 page's departments and people, the pickers. The key is kept by every writer
(form, import, seed) and filled for existing rows by the migration."""

from __future__ import annotations

import importlib
import re
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from pharmacrm.customers import services
from pharmacrm.customers.choices import InstitutionType
from pharmacrm.customers.models import Institution, Person
from pharmacrm.customers.readings import name_key
from tests.api.conftest import api_for  # noqa: F401 (fixture)

HOSPITALS = ["重庆医科大学附属第一医院", "北京安贞医院", "阿荣旗人民医院", "安徽省立医院", "长沙市第一医院",
             "ABC 医药连锁", "朝阳县中心医院"]  # fmt: skip
PINYIN_ORDER = ["阿荣旗人民医院", "ABC 医药连锁", "安徽省立医院", "北京安贞医院", "长沙市第一医院",
                "朝阳县中心医院", "重庆医科大学附属第一医院"]  # fmt: skip


def test_the_key_reads_names_as_a_dictionary_orders_them():
    assert sorted(HOSPITALS, key=name_key) == PINYIN_ORDER
    assert name_key("阿姨药房") < name_key("安泰药房")  # a yi … before an …: syllable by syllable
    assert name_key("曾伟", person=True).startswith("zeng wei")  # the surname's reading
    assert name_key("张伟", person=True) < name_key("章伟", person=True) < name_key("张小伟", person=True)
    assert name_key("") == ""


@pytest.fixture
def hospitals(admin_user, beijing):
    return [services.create_institution(admin_user, {"name": n, "kind": InstitutionType.HOSPITAL, "region": beijing})
            for n in HOSPITALS]  # fmt: skip


def _names_in_page(html: str) -> list[str]:
    shown = [re.sub(r"<[^>]+>", "", m).strip() for m in re.findall(r'<a href="/customers/institutions/\d+/">(.*?)</a>',
                                                                    html, re.S)]  # fmt: skip
    return [n for n in shown if n in HOSPITALS]


def test_the_institution_list_sorted_by_name_is_in_pinyin_order(client_for, hospitals):
    page = client_for("manager").get("/customers/institutions/", {"sort": "name"}).content.decode()

    assert _names_in_page(page) == PINYIN_ORDER


def test_the_api_orders_by_name_in_pinyin_order(api_for, hospitals):  # noqa: F811
    api = api_for("manager")
    rows = api.get("/api/v1/institutions/", {"ordering": "name", "page_size": 100}).json()["results"]
    assert [r["name"] for r in rows if r["name"] in HOSPITALS] == PINYIN_ORDER
    rows = api.get("/api/v1/institutions/", {"ordering": "-name", "page_size": 100}).json()["results"]
    assert [r["name"] for r in rows if r["name"] in HOSPITALS] == PINYIN_ORDER[::-1]


def test_a_renamed_customer_moves_to_its_new_place(admin_user, hospitals):
    chongqing = next(h for h in hospitals if h.name.startswith("重庆"))
    services.update_institution(admin_user, chongqing, {"name": "阿坝州人民医院"}, chongqing.version)

    names = list(Institution.objects.filter(name__in=[*HOSPITALS, "阿坝州人民医院"]).values_list("name", flat=True))
    assert names[:2] == ["阿坝州人民医院", "阿荣旗人民医院"]  # a ba … before a rong …


def test_the_migration_fills_the_keys_of_existing_rows(xiehe):
    Institution.objects.update(name_key="")
    Person.objects.update(name_key="")
    migration = importlib.import_module("pharmacrm.customers.migrations.0006_name_key_pinyin_order")
    migration.fill(apps, SimpleNamespace(connection=connection))  # all it uses of the schema editor

    assert Institution.objects.get(pk=xiehe.pk).name_key.startswith("bei jing xie he yi yuan\x01")
    assert Person.objects.get(name="张伟").name_key.startswith("zhang wei\x01")
    assert not Institution.objects.filter(name_key="").exists()
