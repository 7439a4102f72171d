"""Review round 22: the customer API as integrators and two people editing the same record meet it."""

from __future__ import annotations

from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.models import Institution

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

