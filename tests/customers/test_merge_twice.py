"""The merge page's "Merge" clicked twice (a double click): the second sending found the duplicate merged away and
answered 404 (or "already merged"); it now shows the record kept, as the first did. A colleague's merge of the pair
is not announced to someone else as theirs. "Not the same customer" clicked twice changes nothing twice."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services
from pharmacrm.customers.models import Person

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def _pair(users, xiehe):
    admin = users["admin"]
    return (services.create_person(admin, {"name": "王芳", "institution": xiehe}),
            services.create_person(admin, {"name": "王芳", "institution": xiehe}))  # fmt: skip


def test_merge_clicked_twice_merges_once_and_shows_the_record_kept(users, client_for, xiehe):
    keep, dup = _pair(users, xiehe)
    manager = client_for("manager")
    url = reverse("customers:merge", args=["person", keep.pk, dup.pk])
    sent = {"survivor": keep.pk, f"version_{keep.pk}": keep.version, f"version_{dup.pk}": dup.version}

    assert manager.post(url, sent, follow=True, **EN).status_code == 200
    again = manager.post(url, sent, follow=True, **EN)

    assert again.status_code == 200 and again.redirect_chain[-1][0] == reverse("customers:person", args=[keep.pk])
    assert [str(m) for m in again.context["messages"]] == [f"{dup.code} was merged into {keep.code}."]
    assert Person.objects.get(pk=dup.pk).merged_into_id == keep.pk
    assert AuditEntry.objects.filter(action="merge", object_id=str(keep.pk)).count() == 1


def test_a_colleagues_merge_is_not_shown_as_ones_own(users, client_for, xiehe):
    keep, dup = _pair(users, xiehe)
    url = reverse("customers:merge", args=["person", keep.pk, dup.pk])
    sent = {"survivor": keep.pk, f"version_{keep.pk}": keep.version, f"version_{dup.pk}": dup.version}
    assert client_for("admin").post(url, sent).status_code == 302

    mine = client_for("manager").post(url, sent, follow=True, **EN)

    said = [str(m) for m in mine.context["messages"]] if mine.status_code == 200 else []
    assert f"{dup.code} was merged into {keep.code}." not in said


def test_not_the_same_customer_clicked_twice_says_so_once_each_time(users, client_for, xiehe):
    one, two = _pair(users, xiehe)
    manager = client_for("manager")
    url = reverse("customers:not-duplicates", args=["person", one.pk, two.pk])
    assert manager.post(url, follow=True, **EN).status_code == 200
    again = manager.post(url, follow=True, **EN)
    assert [str(m) for m in again.context["messages"]] == [
        f"{one.name} and {two.name} are no longer listed as likely duplicates."]
    assert AuditEntry.objects.filter(changes__has_key="not_a_duplicate_of").count() == 2
