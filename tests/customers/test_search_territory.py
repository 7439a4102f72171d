"""A rep's search reads the postings of their territory (the postings carry the customer's province): it
must still find everything the rep may see — the territory, what they or their team own beyond it, the
people of those institutions — and nothing else, and the postings must follow every move of a customer."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.db import connection

from pharmacrm.core import access
from pharmacrm.core.models import Region
from pharmacrm.core.roles import Role
from pharmacrm.customers import importer, search, services
from pharmacrm.customers.models import Institution, Person, SearchTerm

QUERIES = ("renai", "仁爱", "任爱", "ra", "ren")


def postings_follow_their_customers() -> None:
    """Every posting carries its customer's province."""
    for kind, model in ((SearchTerm.Kind.INSTITUTION, Institution), (SearchTerm.Kind.PERSON, Person)):
        expected = {pk: search.province_number(p) for pk, p in model.objects.values_list("id", "province")}
        wrong = [
            (obj_id, province, expected[obj_id])
            for obj_id, province in SearchTerm.objects.filter(kind=kind).values_list("obj_id", "province")
            if province != expected[obj_id]
        ]
        assert wrong == [], model.__name__


def found(user, query: str) -> set:
    return {h.obj for h in search.search(user, query, limit=100)}


def visible_matches(user, query: str) -> set:
    """The same answer the slow way: every visible customer whose name or pinyin holds the query."""
    from pharmacrm.customers.readings import person_syllables, syllables

    def holds(obj, person: bool) -> bool:
        syl = person_syllables(obj.name_norm) if person else syllables(obj.name_norm)
        readings = ("".join(syl), "".join(s[:1] for s in syl))
        return query in obj.name_norm or any(query in r for r in readings)

    fresh = type(user).objects.get(pk=user.pk)
    return {i for i in access.institutions_for(fresh) if holds(i, False)} | {
        p for p in access.people_for(fresh) if holds(p, True)
    }


@pytest.fixture
def world(users, admin_user, team_north, beijing, shanghai):
    """仁爱 hospitals and 任爱 people in Beijing (the rep's team territory), Shanghai and Guangzhou."""
    rep = users["rep"]
    guangzhou = Region.objects.get(code="440106")

    def inst(name, region, **extra):
        return services.create_institution(admin_user, {"name": name, "kind": "hospital", "region": region, **extra})

    def person(name, institution=None, **extra):
        return services.create_person(admin_user, {"name": name, "institution": institution, **extra})

    w = {
        "bj": inst("仁爱医院", beijing),
        "sh_owned": inst("上海仁爱医院", shanghai, owner=rep),
        "sh_other": inst("上海仁爱医院分院", shanghai),
        "gz_team": inst("广州仁爱医院", guangzhou, team=team_north),
    }
    w |= {
        "p_bj": person("任爱国", w["bj"]),
        "p_at_owned": person("任爱民", w["sh_owned"]),
        "p_sh_other": person("任爱华", w["sh_other"]),
        "p_owned": person("任爱军", w["sh_other"], owner=rep),
        "p_at_team": person("任爱兵", w["gz_team"]),
        "p_nowhere": person("任爱平"),
        "p_nowhere_team": person("任爱东", team=team_north),
    }
    return w


def test_a_rep_finds_the_territory_and_what_they_own_beyond_it_and_nothing_else(users, world):
    rep = users["rep"]
    visible = {world[k] for k in ("bj", "sh_owned", "gz_team", "p_bj", "p_at_owned", "p_owned", "p_at_team",
                                  "p_nowhere_team")}  # fmt: skip
    hidden = {world[k] for k in ("sh_other", "p_sh_other", "p_nowhere")}
    for query in QUERIES:
        hits = found(rep, query)
        assert hits == visible_matches(rep, query), query
        assert not hits & hidden, query
    assert found(rep, "renai") == visible
    assert found(users["agent"], "renai") == visible | hidden  # the agent's search is not narrowed
    postings_follow_their_customers()


def test_a_territory_of_one_city_finds_that_city_only(make_user, admin_user):
    hangzhou, ningbo = Region.objects.get(code="330102"), Region.objects.get(code="330203")
    services.create_institution(admin_user, {"name": "杭州仁爱医院", "kind": "hospital", "region": hangzhou})
    services.create_institution(admin_user, {"name": "宁波仁爱医院", "kind": "hospital", "region": ningbo})
    rep = make_user("hz_rep", Role.REP, territory=[Region.objects.get(code="330100")])
    for query in ("renai", "仁爱", "ra"):
        assert {h.obj.name for h in search.search(rep, query)} == {"杭州仁爱医院"}, query


def test_a_rep_owning_more_than_can_be_listed_is_still_answered_in_full(users, world, monkeypatch):
    monkeypatch.setattr(search, "BEYOND_LIMIT", 1)  # two institutions beyond: no narrowing at all
    rep = type(users["rep"]).objects.get(pk=users["rep"].pk)
    assert access.territory(rep, "institution", 1) is None
    assert found(rep, "renai") == visible_matches(rep, "renai")
    assert world["sh_owned"] in found(rep, "renai")


def test_an_institution_moving_province_takes_its_people_along_in_the_index(users, admin_user, world, beijing):
    rep = users["rep"]
    assert world["p_sh_other"] not in found(rep, "任爱华")
    services.update_institution(admin_user, world["sh_other"], {"region": beijing})
    rep = type(rep).objects.get(pk=rep.pk)  # a new request
    assert {world["sh_other"], world["p_sh_other"]} <= found(rep, "renai")
    postings_follow_their_customers()


def test_a_person_changing_institution_moves_in_the_index(users, admin_user, world):
    rep = users["rep"]
    services.update_person(admin_user, world["p_bj"], {"institution": world["sh_other"]})
    rep = type(rep).objects.get(pk=rep.pk)
    assert world["p_bj"] not in found(rep, "任爱国")
    postings_follow_their_customers()


def test_a_merge_moves_the_duplicates_people_in_the_index(users, admin_user, world):
    services.merge(admin_user, world["bj"], world["sh_other"])
    rep = type(users["rep"]).objects.get(pk=users["rep"].pk)
    assert world["p_sh_other"] in found(rep, "任爱华")
    postings_follow_their_customers()


def test_a_reimported_region_moves_the_institution_and_its_people_in_the_index(users, world, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    header = "机构名称,机构类型,统一社会信用代码,省,市,区县,外部编号"
    path = tmp_path / "i.csv"
    path.write_bytes(f"{header}\n杭州仁爱医院,医院,,浙江省,杭州市,上城区,HZ1\n".encode())
    job = importer.import_file(path, "institutions", users["kam"], mode="all")
    assert job.created_count == 1
    hz = Institution.objects.get(external_id="HZ1")
    services.create_person(users["admin"], {"name": "任爱青", "institution": hz})
    rep = users["rep"]
    assert not found(rep, "杭州仁爱")
    path.write_bytes(f"{header}\n杭州仁爱医院,医院,,北京市,北京市,朝阳区,HZ1\n".encode())
    job = importer.import_file(path, "institutions", users["kam"], mode="all")
    assert job.updated_count == 1
    rep = type(rep).objects.get(pk=rep.pk)
    assert {h.obj.name for h in search.search(rep, "杭州仁爱")} == {"杭州仁爱医院"}
    assert {h.obj.name for h in search.search(rep, "任爱青")} == {"任爱青"}
    postings_follow_their_customers()


def test_the_migration_gives_existing_postings_their_province(world):
    SearchTerm.objects.update(province=0)
    migration = importlib.import_module("pharmacrm.customers.migrations.0009_searchterm_province")
    with connection.cursor() as cursor:
        editor = SimpleNamespace(connection=connection, execute=cursor.execute)  # what fill() uses of one
        migration.fill(None, editor)
    postings_follow_their_customers()
    assert SearchTerm.objects.filter(obj_id=world["bj"].pk, kind=1).values_list("province", flat=True)[0] == 11


def test_people_of_an_owned_institution_that_was_merged_away_are_found(users, admin_user, shanghai):
    rep = users["rep"]
    owned = services.create_institution(admin_user, {"name": "上海仁爱医院", "kind": "hospital", "region": shanghai, "owner": rep})  # fmt: skip
    survivor = services.create_institution(admin_user, {"name": "上海仁爱总院", "kind": "hospital", "region": shanghai})
    services.merge(admin_user, survivor, owned)
    Person.objects.create(name="任爱华", name_norm="任爱华", institution=owned, province="310000", region_id="310104")
    person = Person.objects.get(name="任爱华")
    search.reindex([person])  # a person left at the merged institution, as an older merge could leave one
    assert access.people_for(type(rep).objects.get(pk=rep.pk)).filter(pk=person.pk).exists()
    assert person in found(rep, "任爱华")


def test_a_customer_becoming_the_reps_is_found_at_once_by_the_same_user_object(users, admin_user, shanghai):
    rep = users["rep"]
    institution = services.create_institution(admin_user, {"name": "上海仁爱医院", "kind": "hospital", "region": shanghai})  # fmt: skip
    person = services.create_person(admin_user, {"name": "任爱华", "institution": institution})
    assert not found(rep, "renai")
    services.update_person(admin_user, person, {"owner": rep})
    assert found(rep, "renai") == {person}
    services.update_institution(admin_user, institution, {"owner": rep})
    assert found(rep, "renai") == {institution, person}


def test_people_at_an_institution_just_assigned_to_the_rep_are_visible_to_the_same_user_object(users, admin_user, shanghai):  # noqa: E501
    rep = users["rep"]
    institution = services.create_institution(admin_user, {"name": "上海仁爱医院", "kind": "hospital", "region": shanghai})  # fmt: skip
    person = services.create_person(admin_user, {"name": "任爱华", "institution": institution})
    assert access.visible_ids(rep, "person", [person.pk]) == set()
    assert not found(rep, "任爱华")
    services.update_institution(admin_user, institution, {"owner": rep})
    # no cache on the user object decides this: the worker and the API client keep theirs for long
    assert access.visible_ids(rep, "person", [person.pk]) == {person.pk}
    assert found(rep, "任爱华") == {person}
