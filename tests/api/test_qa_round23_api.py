"""Review round 23: the customer API for a rep's own customers outside the territory, merges and deletions."""

from __future__ import annotations

from django.utils import timezone

from pharmacrm.customers import services
from pharmacrm.customers.models import Institution, Person


def test_a_reps_own_doctor_outside_the_territory_is_saved_back_as_read(api_for, users, ruijin):
    """GET, change the title, PUT it back: refused with "invalid pk 1 — object does not exist" for the hospital and
    the department the API had just given (they lie outside the rep's territory). As in the edit form, a record
    keeps the institution it has; another one outside the territory is still refused."""
    rep, admin = users["rep"], users["admin"]
    dept = services.create_institution(admin, {"name": "心内科", "kind": "department", "parent": ruijin})
    doctor = services.create_person(admin, {"name": "王医生", "institution": ruijin, "department": dept, "owner": rep})
    client = api_for("rep", lang="zh-hans")
    body = {k: v for k, v in client.get(f"/api/v1/people/{doctor.pk}/").json().items() if v is not None}
    body["title"] = "主任医师"
    saved = client.put(f"/api/v1/people/{doctor.pk}/", body, format="json")
    assert saved.status_code == 200, saved.json()
    assert (saved.json()["title"], saved.json()["institution"], saved.json()["department"]) == (
        "主任医师", ruijin.pk, dept.pk
    )
    # the rep's department there, too
    own = services.create_institution(admin, {"name": "儿科", "kind": "department", "parent": ruijin, "owner": rep})
    body = {k: v for k, v in client.get(f"/api/v1/institutions/{own.pk}/").json().items() if v is not None}
    assert client.put(f"/api/v1/institutions/{own.pk}/", {**body, "notes": "周二门诊"}, format="json").status_code == 200
    # another hospital outside the territory is not the doctor's: refused
    other = services.create_institution(admin, {"name": "上海市第六人民医院", "kind": "hospital", "region": ruijin.region})
    version = Person.objects.get(pk=doctor.pk).version
    moved = client.patch(f"/api/v1/people/{doctor.pk}/", {"institution": other.pk, "department": None,
                                                         "version": version}, format="json")  # fmt: skip
    assert moved.status_code == 400 and "institution" in moved.json()


def test_a_client_syncing_by_updated_since_learns_where_a_merge_moved_its_doctors(api_for, users, xiehe, beijing):
    """The duplicate hospital's doctor and department moved to the survivor unseen by `updated_since`."""
    admin = users["admin"]
    dup = services.create_institution(admin, {"name": "北京协和医院东院", "kind": "hospital", "region": beijing})
    dept = services.create_institution(admin, {"name": "骨科", "kind": "department", "parent": dup})
    doctor = services.create_person(admin, {"name": "赵医生", "institution": dup, "department": dept})
    since = timezone.now().isoformat()
    services.merge(users["manager"], xiehe, dup)
    client = api_for("kam")
    people = client.get("/api/v1/people/", {"updated_since": since}).json()["results"]
    assert [(p["id"], p["institution"]) for p in people] == [(doctor.pk, xiehe.pk)]
    departments = client.get("/api/v1/institutions/", {"updated_since": since, "kind": "department"}).json()["results"]
    assert [(d["id"], d["parent"]) for d in departments] == [(dept.pk, xiehe.pk)]


def test_a_merged_away_record_is_not_deleted_through_the_api(api_for, users, xiehe):
    person = Person.objects.get(name="张伟")
    copy = services.create_person(users["admin"], {"name": "张伟", "mobile": "13900139000"})
    services.merge(users["manager"], person, copy)
    answer = api_for("manager").delete(f"/api/v1/people/{copy.pk}/")
    assert answer.status_code == 403
    assert answer.json()["detail"] == "This record was merged into another one and can no longer be changed."
    assert Person.objects.filter(pk=copy.pk).exists() and Institution.objects.filter(pk=xiehe.pk).exists()
