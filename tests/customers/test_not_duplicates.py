"""Two likely duplicates that are different customers (two doctors both called 刘倩 at one hospital) can be
marked so; they then leave the duplicate list and each other's "likely duplicates", the mark is audited on
both records, and only users who may merge can set it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services
from pharmacrm.customers.models import DistinctPair

pytestmark = pytest.mark.django_db


@pytest.fixture
def namesakes(admin_user, xiehe):
    return [services.create_person(admin_user, {"name": "刘倩", "institution": xiehe, "title": title})
            for title in ("主治医师", "护士长")]  # fmt: skip


def _url(a, b):
    return reverse("customers:not-duplicates", args=["person", a.pk, b.pk])


def test_marking_namesakes_as_different_takes_them_off_the_lists(client_for, namesakes):
    a, b = namesakes
    client = client_for("manager")
    listing = client.get(reverse("customers:duplicates"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert _url(a, b) in listing and "Not the same customer" in listing
    assert [o for o, _r in services.duplicates_of(a)] == [b]

    response = client.post(_url(a, b), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 302 and response["Location"] == reverse("customers:duplicates")
    assert DistinctPair.objects.count() == 1
    assert _url(a, b) not in client.get(reverse("customers:duplicates")).content.decode()
    assert services.duplicates_of(a) == [] and services.duplicates_of(b) == []
    for person, other in ((a, b), (b, a)):
        entry = AuditEntry.objects.filter(object_type="customers.person", object_id=str(person.pk)).latest("seq")
        assert entry.changes == {"not_a_duplicate_of": [None, other.code]}
    page = client.get(reverse("customers:person", args=[a.pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Not the same customer as" in page  # the history tab names what the entry means
    client.post(_url(b, a))  # twice, in either order: one mark, no new entry
    assert DistinctPair.objects.count() == 1
    assert AuditEntry.objects.filter(changes__has_key="not_a_duplicate_of").count() == 2


def test_a_third_namesake_is_still_paired_with_both(admin_user, xiehe, namesakes):
    a, b = namesakes
    services.mark_distinct(admin_user, a, b)
    c = services.create_person(admin_user, {"name": "刘倩", "institution": xiehe})
    assert {o.pk for o, _r in services.duplicates_of(c)} == {a.pk, b.pk}


@pytest.mark.parametrize("role", ["agent", "rep", "auditor", "analyst"])
def test_roles_that_may_not_merge_may_not_mark(client_for, namesakes, role):
    a, b = namesakes
    response = client_for(role).post(_url(a, b))
    assert response.status_code in (403, 404)
    assert not DistinctPair.objects.exists()


def test_marking_needs_a_post(client_for, namesakes):
    a, b = namesakes
    assert client_for("manager").get(_url(a, b)).status_code == 405
    assert not DistinctPair.objects.exists()


def test_a_mark_follows_the_record_its_customer_is_merged_into(admin_user, xiehe, namesakes):
    """刘倩 the head nurse entered twice, the copy kept (it had her mobile): the attending doctor 刘倩, marked as
    another person than the head nurse, was listed again as a likely duplicate of her surviving record."""
    doctor, nurse = namesakes
    services.mark_distinct(admin_user, doctor, nurse)
    copy = services.create_person(admin_user, {"name": "刘倩", "institution": xiehe, "mobile": "13911112222"})

    survivor = services.merge(admin_user, copy, nurse)

    assert services.duplicates_of(doctor) == [] and services.duplicates_of(survivor) == []
    assert list(DistinctPair.objects.values_list("low_id", "high_id")) == [(doctor.pk, survivor.pk)]
    # a pair merged together was no pair of different customers after all: no mark is left on it
    services.merge(admin_user, survivor, doctor)
    assert not DistinctPair.objects.exists()
