"""Search of several words through an anchor: a keyword whose own-name and place look-ups are both complete
settles the candidates, so a common department name (急诊科 at a thousand hospitals) needs no look-up."""

import pytest

from pharmacrm.customers import services
from pharmacrm.customers.search import search


@pytest.fixture
def emergency(admin_user, beijing, shanghai):
    """One hospital in Beijing and three in Shanghai, each with an 急诊科 and a doctor called 王丽 in it."""
    made = {}
    for name, region in (("北京朝阳医院", beijing), ("上海瑞金医院", shanghai), ("上海华山医院", shanghai),
                         ("上海长征医院", shanghai)):  # fmt: skip
        hospital = services.create_institution(admin_user, {"name": name, "kind": "hospital", "region": region})
        dept = services.create_institution(
            admin_user, {"name": "急诊科", "kind": "department", "parent": hospital, "region": region}
        )
        person = services.create_person(
            admin_user, {"name": "王丽", "institution": hospital, "department": dept, "title": "主治医师"}
        )
        made[name] = (hospital, dept, person)
    return made


@pytest.fixture
def looked_up(monkeypatch):
    """The own-name look-ups read two customers (as a thousand at a million), and the keywords looked up with
    how many customers each look-up may read."""
    from pharmacrm.customers import search as module

    monkeypatch.setattr(module, "KEYWORD_OWN_READ", 2)
    monkeypatch.setattr(module, "KEYWORD_PROBE", 1)
    calls = []
    keyword_ids = module._keyword_ids
    monkeypatch.setattr(
        module, "_keyword_ids", lambda look, text, how: calls.append((look.read, text)) or keyword_ids(look, text, how)
    )
    return calls


@pytest.mark.parametrize("query", ["北京 急诊科", "急诊科 北京", "bj 急诊科"])
def test_a_common_department_name_is_found_through_the_hospitals_place(emergency, users, looked_up, query):
    _hospital, dept, _person = emergency["北京朝阳医院"]
    hits = search(users["manager"], query, kinds=("institution",))
    assert [h.obj for h in hits] == [dept]
    assert hits[0].match == "keywords"
    if query.startswith(("北京", "bj")):
        # the place's keyword read every match: 急诊科 was only probed (one name read), never read in full
        assert [limit for limit, text in looked_up if text == "急诊科"] == [1]


def test_a_common_name_is_found_through_the_persons_place(emergency, users, looked_up):
    hits = search(users["manager"], "王丽 上海", kinds=("person",))
    assert {h.obj for h in hits} == {emergency[name][2] for name in ("上海瑞金医院", "上海华山医院", "上海长征医院")}
    hits = search(users["manager"], "北京 王丽 急诊", kinds=("person",))
    assert [h.obj for h in hits] == [emergency["北京朝阳医院"][2]]


def test_a_merged_away_person_at_the_place_is_not_found(emergency, users, admin_user, looked_up):
    hospital, dept, survivor = emergency["北京朝阳医院"]
    duplicate = services.create_person(
        admin_user, {"name": "王丽", "institution": hospital, "department": dept, "title": "主任医师"}
    )
    assert len(search(users["manager"], "王丽 朝阳", kinds=("person",))) == 2
    services.merge(admin_user, survivor, duplicate)
    assert [h.obj for h in search(users["manager"], "王丽 朝阳", kinds=("person",))] == [survivor]


def test_hits_are_said_to_be_incomplete_when_a_keywords_own_matches_were_not_all_read(
    emergency, users, admin_user, shanghai, monkeypatch
):
    """Four of six 上海 hospitals and four of five 急诊科 read: the three departments found are true hits, but the
    fourth (上海三院's, the newest) was never read, so the page must not say that these are all."""
    from pharmacrm.customers import search as module

    for name in ("RANGE_LIMIT", "NARROWED_READ", "KEYWORD_OWN_READ"):
        monkeypatch.setattr(module, name, 2)  # a look-up of the best 3 then reads 4
    for name in ("上海一院", "上海二院", "上海三院"):
        hospital = services.create_institution(admin_user, {"name": name, "kind": "hospital", "region": shanghai})
    services.create_institution(
        admin_user, {"name": "急诊科", "kind": "department", "parent": hospital, "region": shanghai}
    )
    hits = search(users["manager"], "上海 急诊科", kinds=("institution",), limit=3)
    assert {h.obj for h in hits} == {emergency[name][1] for name in ("上海瑞金医院", "上海华山医院", "上海长征医院")}
    assert hits.complete is False


def test_both_kinds_of_one_search_read_a_keywords_places_once(emergency, users, monkeypatch):
    """The institutions that a keyword names are the institution look-up's own matches and the people look-up's
    places: one search reads their index entries once, not once per kind."""
    from pharmacrm.customers import search as module

    terms = []
    term = module._term
    monkeypatch.setattr(module, "_term", lambda look, t, limit: terms.append((look.kind, t)) or term(look, t, limit))
    hits = search(users["manager"], "上海 王丽")
    assert {h.obj for h in hits} == {emergency[name][2] for name in ("上海瑞金医院", "上海华山医院", "上海长征医院")}
    assert terms.count((module.INSTITUTION, "C上海")) == 1


@pytest.mark.parametrize("query", ["上海 王丽", "朝阳 急诊科", "上海瑞金医院", "张泽 州市"])
def test_people_and_institutions_of_one_search_read_each_index_entry_in_one_round_trip(
    emergency, users, admin_user, beijing, query
):
    """On PostgreSQL, the institutions' look-up reads people's postings of each term with its own (one statement
    for both kinds: each is a round trip, and round trips were most of a search's time); the hits are those of
    the two kinds searched apart. SQLite, in the process, reads each kind's apart. A term is read once for all
    its look-ups: 张泽州市 as a whole reads 张泽's postings, the keyword 张泽 fewer of them."""
    import re
    from collections import Counter

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    hospital = services.create_institution(admin_user, {"name": "晋城泽州市人民医院", "kind": "hospital", "region": beijing})
    services.create_person(admin_user, {"name": "张泽", "institution": hospital, "title": "主治医师"})
    apart = search(users["manager"], query, kinds=("institution",)) + search(users["manager"], query, kinds=("person",))
    with CaptureQueriesContext(connection) as ctx:
        hits = search(users["manager"], query)
    assert hits and sorted((h.kind, h.obj.pk) for h in hits) == sorted((h.kind, h.obj.pk) for h in apart)
    statements = Counter()
    for q in ctx.captured_queries:
        if "customers_searchterm" in q["sql"]:
            statements.update(set(re.findall(r"\"term\" = '([^']+)'", q["sql"])))
    assert statements
    assert max(statements.values()) == (1 if connection.vendor == "postgresql" else 2)


def test_a_keyword_is_checked_in_the_name_not_only_its_character_pairs(emergency, users, admin_user):
    """The index gives the customers whose names hold each of a keyword's character pairs; a name that has them
    apart (丽张伟张丽 holds 伟张 and 张伟, not 伟张伟) is no match for that keyword."""
    hospital = emergency["上海长征医院"][0]
    services.create_person(admin_user, {"name": "丽张伟张丽", "institution": hospital, "title": "主治医师"})
    assert search(users["manager"], "伟张伟 上海", kinds=("person",)) == []
    assert [h.obj.name for h in search(users["manager"], "张伟张 上海", kinds=("person",))] == ["丽张伟张丽"]


def test_the_reps_scope_holds_through_the_anchor(emergency, users, looked_up):
    # the North team's rep sees Beijing, not Shanghai
    assert [h.obj for h in search(users["rep"], "北京 急诊科", kinds=("institution",))] == [emergency["北京朝阳医院"][1]]
    assert search(users["rep"], "上海 急诊科") == []


def test_without_an_anchor_the_hits_found_are_right_and_said_to_be_incomplete(emergency, users, monkeypatch):
    """Both keywords in more names than are read (上海 at three hospitals, 急诊科 at four, two read for one
    hit): the places read still give a true hit, and the page says there may be more."""
    from pharmacrm.customers import search as module

    for name in ("RANGE_LIMIT", "NARROWED_READ", "KEYWORD_OWN_READ"):
        monkeypatch.setattr(module, name, 2)
    shanghai = {emergency[name][1] for name in ("上海瑞金医院", "上海华山医院", "上海长征医院")}
    calls = []
    keyword_ids = module._keyword_ids
    monkeypatch.setattr(module, "_keyword_ids", lambda look, text, how: calls.append(text) or keyword_ids(look, text, how))
    hits = search(users["manager"], "上海 急诊科", kinds=("institution",), limit=1)
    assert len(hits) == 1 and hits[0].obj in shanghai
    assert calls.count("急诊科") == 1  # no anchor: each keyword looked up once, its own matches are its places
    assert hits.complete is False


@pytest.mark.django_db
def test_the_people_of_a_place_are_read_with_their_ids_from_the_index():
    """The index of people by institution and name carries their id (PostgreSQL: INCLUDE; SQLite: the row id),
    so the people of many places whose names hold a keyword are read without the table."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'person_inst_name'")
            assert cursor.fetchone()[0].endswith('(institution_id, name_norm) INCLUDE (id)')
        else:
            cursor.execute("SELECT name FROM pragma_index_info('person_inst_name') ORDER BY seqno")
            assert [row[0] for row in cursor.fetchall()] == ["institution_id", "name_norm"]
