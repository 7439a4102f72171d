"""The foundation's invariants that everything else relies on."""

from pharmacrm.core import audit
from pharmacrm.customers import search


def test_it_finds_a_hospital_by_pinyin_initials_and_full_pinyin(xiehe, users):
    for q in ("bjxh", "beijingxiehe", "协和", "xiehe"):
        hits = search.search(users["agent"], q)
        assert hits and hits[0].obj == xiehe, q


def test_a_rep_does_not_find_hospitals_outside_their_territory(xiehe, ruijin, users):
    assert [h.obj for h in search.search(users["rep"], "瑞金")] == []
    assert [h.obj for h in search.search(users["agent"], "瑞金")] == [ruijin]


def test_the_audit_chain_verifies_after_changes(xiehe):
    result = audit.verify()
    assert result.ok and result.checked >= 3
