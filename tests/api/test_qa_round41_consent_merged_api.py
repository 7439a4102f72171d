"""Forty-first session: a consent sent through the API for a person merged into another is refused under `person`,
naming the person to record it on — as a ticket or an interaction for a merged customer is — instead of a 403 "can
no longer be changed", which read as a lack of rights and went into the audit trail as access denied."""

from __future__ import annotations

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services
from pharmacrm.customers.models import Consent, Person


def test_a_consent_for_a_merged_person_is_refused_naming_the_person_it_was_merged_into(users, xiehe, api_for):
    admin = users["admin"]
    kept = Person.objects.get(name="张伟")
    merged = services.create_person(admin, {"name": "张伟", "institution": xiehe, "email": "zw@example.com"})
    services.merge(admin, kept, merged)
    body = {"person": merged.pk, "purpose": "marketing", "channel": "phone", "status": "withdrawn"}
    answer = api_for("kam").post("/api/v1/consents/", body, format="json")
    assert answer.status_code == 400
    assert answer.json() == {"person": [f"张伟 ({merged.code}) was merged into 张伟 ({kept.code}): choose {kept.code} instead."]}
    assert not Consent.objects.exists()
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.ACCESS_DENIED).exists()
    zh = api_for("kam", lang="zh-hans").post("/api/v1/consents/", body, format="json")
    assert zh.status_code == 400 and "已合并到" in zh.json()["person"][0]
    # on the person kept it is recorded
    assert api_for("kam").post("/api/v1/consents/", {**body, "person": kept.pk}, format="json").status_code == 201
