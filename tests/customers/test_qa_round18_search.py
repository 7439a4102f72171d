"""Review round 18: several keywords separated by spaces, and hits that name a department's hospital."""

import pytest
from django.utils import translation

from pharmacrm.customers import services
from pharmacrm.customers.search import search


@pytest.fixture
def two_obstetrics(admin_user, beijing, shanghai):
    """Two hospitals, each with a department called 产科, and a doctor in each."""
    made = {}
    for city, region in (("石家庄市妇幼保健院", beijing), ("上海市第一妇婴保健院", shanghai)):
        hospital = services.create_institution(admin_user, {"name": city, "kind": "hospital", "region": region})
        dept = services.create_institution(
            admin_user, {"name": "产科", "kind": "department", "parent": hospital, "region": region}
        )
        person = services.create_person(
            admin_user, {"name": "王丽", "institution": hospital, "department": dept, "title": "主治医师"}
        )
        made[city] = (hospital, dept, person)
    return made


def test_a_department_is_found_by_its_hospital_and_its_name(two_obstetrics, users):
    hospital, dept, _person = two_obstetrics["石家庄市妇幼保健院"]
    for query in ("石家庄 产科", "产科 石家庄", "石家庄市妇幼保健院 产科", "sjz 产科"):
        hits = search(users["manager"], query, kinds=("institution",))
        assert [h.obj for h in hits] == [dept], query
        assert hits[0].match == "keywords"


def test_a_person_is_found_by_name_and_institution(two_obstetrics, users):
    _hospital, _dept, person = two_obstetrics["上海市第一妇婴保健院"]
    for query in ("王丽 上海", "上海 王丽", "wangli 妇婴", "王丽 一妇婴 产科"):
        hits = search(users["manager"], query, kinds=("person",))
        assert [h.obj for h in hits] == [person], query


def test_keywords_that_only_name_the_place_find_no_one_there(two_obstetrics, users):
    # every keyword in the hospital's name: the hospital itself, not its departments or people
    hits = search(users["manager"], "石家庄 妇幼")
    assert [h.obj.name for h in hits] == ["石家庄市妇幼保健院"]
    assert search(users["manager"], "王丽 北京") == []


def test_the_whole_text_still_wins_when_it_matches(xiehe, users):
    hits = search(users["agent"], "北京 协和")
    assert hits[0].obj == xiehe and hits[0].match == "name"


def test_keywords_respect_the_reps_scope(two_obstetrics, users):
    # the North team's rep does not see Shanghai: its department is not found through its hospital's name
    assert search(users["rep"], "上海 产科") == []


def test_department_hits_name_their_hospital_on_the_page_and_in_the_api(two_obstetrics, client_for):
    client = client_for("manager")
    with translation.override("en"):
        page = client.get("/customers/search/", {"q": "产科"}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "石家庄市妇幼保健院" in page and "上海市第一妇婴保健院" in page
    suggest = client.get("/customers/search/", {"q": "产科", "as": "suggest"}).content.decode()
    assert "石家庄市妇幼保健院" in suggest
    api = client.get("/api/v1/search/", {"q": "产科"}).json()
    assert {r["institution"] for r in api["results"] if r["kind"] == "institution"} == {
        "石家庄市妇幼保健院", "上海市第一妇婴保健院"
    }
    people = client.get("/api/v1/search/", {"q": "王丽 石家庄"}).json()["results"]
    assert [(r["kind"], r["institution"], r["match"]) for r in people] == [
        ("person", "石家庄市妇幼保健院", "keywords")
    ]


@pytest.mark.parametrize("query,kinds", [("王丽 上海", ("person",)), ("石家庄 产科", ("institution",))])
def test_keywords_whose_own_look_up_is_cut_short_still_reach_the_customer_through_its_place(
    two_obstetrics, users, monkeypatch, query, kinds
):
    """When a keyword is in more names than the own-name look-up reads (a common name at a million people),
    the customers of the places the other keywords name are read instead, filtered by name in the database."""
    from pharmacrm.customers import search as module

    for name in ("RANGE_LIMIT", "NARROWED_READ", "KEYWORD_OWN_READ"):
        monkeypatch.setattr(module, name, 1)
    calls = []
    keyword_ids = module._keyword_ids
    monkeypatch.setattr(
        module, "_keyword_ids", lambda look, text, how: calls.append(look.kind) or keyword_ids(look, text, how)
    )
    hospital = "上海市第一妇婴保健院" if kinds == ("person",) else "石家庄市妇幼保健院"
    expected = two_obstetrics[hospital][2 if kinds == ("person",) else 1]
    hits = search(users["manager"], query, kinds=kinds, limit=1)
    assert [h.obj for h in hits] == [expected], query
    assert module.INSTITUTION in calls  # the places were looked up: the own look-up was cut short
