"""Review round 23: the customer API for a rep's own customers outside the territory, merges and deletions."""

from __future__ import annotations


from pharmacrm.customers import services
from pharmacrm.customers.models import Institution, Person


def test_a_merged_away_record_is_not_deleted_through_the_api(api_for, users, xiehe):
    person = Person.objects.get(name="张伟")
    copy = services.create_person(users["admin"], {"name": "张伟", "mobile": "13900139000"})
    services.merge(users["manager"], person, copy)
    answer = api_for("manager").delete(f"/api/v1/people/{copy.pk}/")
    assert answer.status_code == 403
    assert answer.json()["detail"] == "This record was merged into another one and can no longer be changed."
    assert Person.objects.filter(pk=copy.pk).exists() and Institution.objects.filter(pk=xiehe.pk).exists()
