"""/api/v1/audit/ names an entry's record in the request's language, as the audit page does: acceptance and consent
entries keep codes ("2026-12-08 passed", "surveys · given") and the API answered them as stored, codes and all, to
every reader; an entry about no single record ("demo data") read in English. The stored entries are unchanged (the
hash chain covers them) and the chain still verifies."""

from __future__ import annotations

import pytest
from django.utils import translation

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services
from pharmacrm.customers.models import Person

pytestmark = pytest.mark.django_db
A = AuditEntry.Action


def names(client, **filters) -> list[str]:
    response = client.get("/api/v1/audit/", {"ordering": "seq", **filters})
    assert response.status_code == 200, response.content
    return [e["object_repr"] for e in response.json()["results"]]


def test_an_acceptance_and_a_consent_read_in_the_requests_language(api_for, users, xiehe):
    with translation.override("en"):  # the administrator works in English
        services.record_consent(users["admin"], Person.objects.get(name="张伟"),
                                {"purpose": "surveys", "channel": "email", "status": "given"})  # fmt: skip
    # an acceptance's creation and the export of its attachment, as cooperation.services records them
    audit.record(A.CREATE, ("cooperation.acceptance", "41", "2026-12-08 passed"), user=users["rep"],
                 changes={"result": [None, "passed"], "accepted_on": [None, "2026-12-08"]})  # fmt: skip
    audit.record(A.EXPORT, ("cooperation.acceptance", "41", "2026-12-08 passed"), user=users["rep"], format="PDF")
    stored = {e.seq: e.object_repr for e in AuditEntry.objects.all()}

    assert names(api_for("auditor", "en"), object_type="customers.consent") == ["Satisfaction surveys · Given"]
    assert names(api_for("auditor", "zh-hans"), object_type="customers.consent") == ["满意度调查 · 已同意"]
    assert names(api_for("auditor", "zh-hant"), object_type="customers.consent") == ["滿意度調查 · 已同意"]
    assert names(api_for("auditor", "en"), object_type="cooperation.acceptance") == ["2026-12-08 Passed"] * 2
    assert names(api_for("auditor", "zh-hans"), object_type="cooperation.acceptance") == ["2026-12-08 通过"] * 2

    # one entry alike; its hashes are those of the entry as stored
    seq = AuditEntry.objects.get(object_type="customers.consent").seq
    one = api_for("auditor", "zh-hans").get(f"/api/v1/audit/{seq}/").json()
    assert one["object_repr"] == "满意度调查 · 已同意"
    assert one["hash"] == AuditEntry.objects.get(seq=seq).hash
    assert {e.seq: e.object_repr for e in AuditEntry.objects.all()} == stored  # nothing rewritten
    assert stored[seq] == "surveys · given"
    assert audit.verify().ok


def test_an_entry_about_no_single_record_and_a_typed_name_read_as_on_the_page(api_for, users, xiehe):
    audit.record(A.IMPORT, ("customers.institution", "", "demo data"), actor_name="demo", source="demo")
    # a name written before the codes were kept stands (an English export of an attachment): as recorded
    audit.record(A.EXPORT, ("cooperation.acceptance", "7", "2026-11-02 Passed"), user=users["rep"], format="PDF")
    zh = api_for("auditor", "zh-hans")
    assert "演示数据" in names(zh, action="import", object_type="customers.institution")
    assert names(zh, object_type="cooperation.acceptance") == ["2026-11-02 Passed"]
    # a name a person typed is never translated
    assert "北京协和医院" in names(zh, action="create", object_type="customers.institution")
    assert audit.verify().ok
