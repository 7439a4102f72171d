"""Review round 22: the customer API as integrators and two people editing the same record meet it."""

from __future__ import annotations

from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.models import Institution, Person

A = AuditEntry.Action


def test_a_hospital_that_moves_moves_its_departments_as_a_change_of_theirs(api_for, users, xiehe):
    """The departments that follow their hospital to its new district changed: a client syncing by updated_since
    learns it, one holding the department's old version is refused instead of putting it back, the history says so."""
    client = api_for("kam")
    dept = Institution.objects.get(name="心内科")
    loaded = client.get(f"/api/v1/institutions/{dept.pk}/").json()
    assert loaded["region"] == "110105" and loaded["version"] == 1
    since = timezone.now().isoformat()

    moved = client.patch(f"/api/v1/institutions/{xiehe.pk}/", {"region": "310104", "version": 1}, format="json")
    assert moved.status_code == 200, moved.content

    synced = client.get("/api/v1/institutions/", {"updated_since": since, "kind": "department"}).json()
    assert [(r["id"], r["region"], r["version"]) for r in synced["results"]] == [(dept.pk, "310104", 2)]
    stale = client.put(
        f"/api/v1/institutions/{dept.pk}/",
        {k: loaded[k] for k in ("name", "kind", "parent", "region", "version")},
        format="json",
    )
    assert stale.status_code == 409, stale.content
    dept.refresh_from_db()
    assert dept.region_id == "310104" and dept.city == "310100"
    entry = AuditEntry.objects.get(action=A.UPDATE, object_type="customers.institution", object_id=str(dept.pk))
    assert entry.actor == users["kam"] and entry.changes == {"region": ["110105", "310104"]}


def test_a_delete_with_if_match_is_refused_when_someone_changed_the_record_since(api_for, users, ruijin):
    """DELETE with the ETag the caller loaded: a record a colleague changed in the meantime stays (409), as an
    edit based on it would; with the current version it goes."""
    client = api_for("admin")
    url = f"/api/v1/institutions/{ruijin.pk}/"
    etag = client.get(url)["ETag"]
    colleague = api_for("kam").patch(url, {"notes": "下周拜访院长，已约", "version": 1}, format="json")
    assert colleague.status_code == 200

    refused = client.delete(url, HTTP_IF_MATCH=etag)
    assert refused.status_code == 409 and refused.json()["current_version"] == 2
    assert Institution.objects.filter(pk=ruijin.pk).exists()
    assert not AuditEntry.objects.filter(action=A.DELETE, object_id=str(ruijin.pk)).exists()

    assert client.delete(url, HTTP_IF_MATCH='"2"').status_code == 204
    assert not Institution.objects.filter(pk=ruijin.pk).exists()


def test_the_tags_filter_finds_a_tag_typed_in_another_letter_case(api_for, xiehe, ruijin):
    client = api_for("kam")
    for inst, tags in ((xiehe, ["VIP"]), (ruijin, ["vip", "核心"])):
        assert client.patch(f"/api/v1/institutions/{inst.pk}/", {"tags": tags, "version": 1}, format="json").json()[
            "tags"
        ] in (["VIP"], ["VIP", "核心"])
    found = client.get("/api/v1/institutions/", {"tags": "Vip"}).json()
    assert {r["id"] for r in found["results"]} == {xiehe.pk, ruijin.pk}



def test_pages_ordered_by_a_field_many_records_share_come_in_id_order(api_for, users, xiehe):
    """ordering=tier: the people of one tier follow in id order on every page — the database gave ties in the order
    of whichever index it read (here: by last change), which can differ from one page's query to the next (on PostgreSQL the changed row came last: 2, 3, 4, 1)."""
    from pharmacrm.customers import services

    admin = users["admin"]
    for name in ("李娜", "王芳", "刘洋"):
        services.create_person(admin, {"name": name, "institution": xiehe})
    first = Person.objects.order_by("id").first()
    services.update_person(admin, first, {"title": "副主任医师"}, version=first.version)  # changed last
    client = api_for("admin")
    expected = list(Person.objects.order_by("id").values_list("id", flat=True))
    for ordering in ("tier", "-tier", "stage"):
        walked = []
        for page in (1, 2, 3, 4):
            body = client.get("/api/v1/people/", {"ordering": ordering, "page_size": 1, "page": page}).json()
            walked += [r["id"] for r in body["results"]]
        assert walked == expected, ordering



def test_a_person_who_left_their_hospital_by_patch_leaves_its_department_too(api_for, xiehe):
    """PATCH {"institution": null} alone answered 200 and changed nothing: the department kept filled its hospital
    in again. A department named with it still places the person at its hospital."""
    client = api_for("admin")
    doctor = Person.objects.get(name="张伟")
    left = client.patch(f"/api/v1/people/{doctor.pk}/", {"institution": None, "version": 1}, format="json")
    assert left.status_code == 200, left.content
    assert (left.json()["institution"], left.json()["department"], left.json()["version"]) == (None, None, 2)
    doctor.refresh_from_db()
    assert (doctor.institution_id, doctor.department_id, doctor.region_id) == (None, None, None)

    dept = Institution.objects.get(name="心内科")
    back = client.patch(f"/api/v1/people/{doctor.pk}/", {"institution": None, "department": dept.pk, "version": 2},
                        format="json")  # fmt: skip
    assert (back.json()["institution"], back.json()["department"]) == (xiehe.pk, dept.pk)


def test_an_export_refuses_a_filter_it_does_not_have_instead_of_exporting_everyone(api_for, xiehe, ruijin):
    """The lists' filter names (kind, tags) were ignored by the export: "the hospitals tagged 核心" came back as every
    customer the caller may see, personal data included. A filter of another name is a 400 naming it."""
    client = api_for("admin")
    refused = client.get("/api/v1/export/people.csv", {"tags": "核心", "role": "doctor"})
    assert refused.status_code == 400
    assert list(refused.json()) == ["tags"] and "tag" in refused.json()["tags"][0]
    assert client.get("/api/v1/export/institutions.xlsx", {"kind": "hospital"}).status_code == 400
    assert not AuditEntry.objects.filter(action=A.EXPORT).exists()
    assert client.get("/api/v1/export/institutions.csv", {"type": "hospital", "tag": "核心"}).status_code == 200
