"""Sixteenth session: Traditional characters. A zh-Hant user types 北京協和醫院 and finds 北京协和医院; a record
entered in Traditional characters is found by Simplified queries and by pinyin, and is offered as a duplicate
of its Simplified twin. 乾县 stays 乾县 (乾 is not 干 there)."""

from __future__ import annotations

from django.apps import apps

from pharmacrm.customers import normalise, search, services
from pharmacrm.customers.models import Institution, SearchTerm


def _names(hits) -> list[str]:
    return [h.obj.name for h in hits]


def test_a_traditional_query_finds_the_simplified_record(users, xiehe):
    assert "北京协和医院" in _names(search.search(users["agent"], "北京協和醫院"))
    assert "北京协和医院" in _names(search.search(users["agent"], "協和"))
    assert "张伟" in _names(search.search(users["agent"], "張偉"))


def test_a_record_in_traditional_characters_is_found_and_offered_as_a_duplicate(admin_user, users, xiehe, beijing):
    twin = services.create_institution(admin_user, {"name": "北京協和醫院", "kind": "hospital", "region": beijing})
    found = search.search(users["agent"], "协和医院")
    assert [h.id for h in found if h.kind == "institution"].count(twin.pk) == 1
    assert twin.pk in [h.id for h in search.search(users["agent"], "bjxhyy")]
    assert (xiehe.pk, "name_city") in [(o.pk, why) for o, why in services.duplicates_of(twin)]


def test_place_names_keep_their_characters():
    assert normalise.name("乾县人民医院") == "乾县人民医院"
    assert normalise.name("乾安縣醫院") == "乾安县医院"
    assert normalise.name("於梨華") == normalise.name("于梨华")  # the same search key, as a reader would expect


def test_records_stored_before_the_folding_are_found_after_the_migration(admin_user, users, beijing):
    """The data migration (customers 0013) gives names stored in Traditional characters their folded key
    and search terms."""
    migration = __import__("pharmacrm.customers.migrations.0013_fold_traditional_names", fromlist=["fold"])
    old = services.create_institution(admin_user, {"name": "臺北醫學大學附設醫院", "kind": "hospital", "region": beijing})
    # as the previous release stored it: the unfolded key, the unfolded terms
    Institution.objects.filter(pk=old.pk).update(name_norm="臺北醫學大學附設醫院")
    SearchTerm.objects.filter(kind=search.INSTITUTION, obj_id=old.pk).delete()
    SearchTerm.objects.bulk_create([SearchTerm(term="C臺北", kind=search.INSTITUTION, obj_id=old.pk, province=11)])
    assert old.pk not in [h.id for h in search.search(users["agent"], "台北医学大学")]
    migration.fold(apps, None)
    assert Institution.objects.get(pk=old.pk).name_norm == "台北医学大学附设医院"
    assert old.pk in [h.id for h in search.search(users["agent"], "台北医学大学")]
    assert old.pk in [h.id for h in search.search(users["agent"], "臺北醫學")]
    assert not SearchTerm.objects.filter(obj_id=old.pk, term="C臺北").exists()
