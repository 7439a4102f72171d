"""A rep may own one department of a hospital outside their territory (the hospital is someone else's): the
doctors of that department are theirs to see — in the people list, on their pages, in search and in the
policy's bulk answer — while the hospital's other doctors stay hidden."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pharmacrm.core import access
from pharmacrm.customers import search, services


@pytest.fixture
def ward(admin_user, users, ruijin):
    """瑞金医院 (Shanghai, outside the rep's Beijing territory) with a department the rep owns."""
    cardiology = services.create_institution(
        admin_user, {"name": "心内科", "kind": "department", "parent": ruijin, "owner": users["rep"]}
    )
    return {
        "dept": cardiology,
        "doctor": services.create_person(admin_user, {"name": "钟南华", "institution": ruijin, "department": cardiology}),
        "other": services.create_person(admin_user, {"name": "钟北华", "institution": ruijin}),
    }


def fresh(user):
    return type(user).objects.get(pk=user.pk)  # a new request: scope facts read afresh


def test_the_policy_lets_a_rep_see_the_doctors_of_a_department_they_own_outside_the_territory(users, ward):
    rep = fresh(users["rep"])
    doctor, other = ward["doctor"], ward["other"]
    assert set(access.people_for(rep).filter(pk__in=[doctor.pk, other.pk])) == {doctor}
    # the bulk answer used by search and the review lists agrees with the queryset
    assert access.visible_ids(rep, "person", [doctor.pk, other.pk]) == {doctor.pk}
    assert access.can_see(rep, doctor) and not access.can_see(rep, other)
    # and search finds the doctor, not the colleague of another department
    assert {h.obj for h in search.search(rep, "钟", limit=50)} & {doctor, other} == {doctor}


def test_a_department_handed_to_another_rep_takes_its_doctors_out_of_sight(users, admin_user, ward):
    services.update_institution(admin_user, ward["dept"], {"owner": users["kam"]}, version=ward["dept"].version)
    rep = fresh(users["rep"])
    assert not access.people_for(rep).filter(pk=ward["doctor"].pk).exists()
    assert access.visible_ids(rep, "person", [ward["doctor"].pk]) == set()
    assert not {h.obj for h in search.search(rep, "钟", limit=50)} & {ward["doctor"]}


def test_the_rep_opens_and_lists_the_departments_doctors_but_not_the_hospitals_others(client_for, ward):
    rep = client_for("rep")
    assert rep.get(reverse("customers:person", args=[ward["doctor"].pk])).status_code == 200
    assert rep.get(reverse("customers:person", args=[ward["other"].pk])).status_code == 404
    page = rep.get(reverse("customers:people")).content.decode()
    assert "钟南华" in page and "钟北华" not in page
    searched = rep.get(reverse("customers:people"), {"q": "钟"}).content.decode()
    assert "钟南华" in searched and "钟北华" not in searched
