"""The audit trail's details (AuditEntry.extra) as the auditor reads them: a deleted person's consent records keep
their evidence there, and what someone typed as evidence (家属电话 139…, an e-mail address) reached the auditor in
clear on the audit page and through GET /api/v1/audit/, while the person's page and /api/v1/consents/ mask it. The
administrator, who sees personal data, reads them as recorded. The same for the reason a reveal was given, on a
customer's history tab."""

from __future__ import annotations

import pytest

from pharmacrm.customers import services
from pharmacrm.customers.models import Person

pytestmark = pytest.mark.django_db

EVIDENCE = "电话确认，家属电话 139-1234-5678，邮箱 li.family@example.net，身份证 110105197503151236"
CLEAR = ("139-1234-5678", "li.family@example.net", "110105197503151236")
MASKED = ("139****5678", "l***@example.net", "110***********1236")


@pytest.fixture
def deleted_person(users, xiehe):
    admin = users["admin"]
    person = Person.objects.get(name="张伟")
    services.record_consent(admin, person, {"purpose": "surveys", "channel": "phone", "status": "given",
                                            "evidence": EVIDENCE})  # fmt: skip
    pk = person.pk
    services.delete_customer(admin, person)
    return pk


def test_auditor_reads_a_deleted_persons_consent_evidence_masked_on_the_audit_page(client_for, deleted_person):
    page = client_for("auditor").get(
        "/accounts/audit/", {"object_type": "customers.person", "object_id": deleted_person, "action": "delete"}
    ).content.decode()
    assert "电话确认" in page  # the evidence is there, its contact details masked
    for clear, masked in zip(CLEAR, MASKED, strict=True):
        assert clear not in page
        assert masked in page


def test_auditor_reads_it_masked_through_the_api(client_for, deleted_person):
    answer = client_for("auditor").get(
        "/api/v1/audit/", {"object_type": "customers.person", "object_id": deleted_person, "action": "delete"}
    )
    text = answer.json()
    [entry] = text["results"]
    evidence = entry["extra"]["consents"][0]["evidence"]
    assert evidence == "电话确认，家属电话 139****5678，邮箱 l***@example.net，身份证 110***********1236"


def test_the_administrator_reads_it_as_recorded(client_for, deleted_person):
    answer = client_for("admin").get(
        "/api/v1/audit/", {"object_type": "customers.person", "object_id": deleted_person, "action": "delete"}
    )
    assert answer.json()["results"][0]["extra"]["consents"][0]["evidence"] == EVIDENCE
    page = client_for("admin").get(
        "/accounts/audit/", {"object_type": "customers.person", "object_id": deleted_person, "action": "delete"}
    ).content.decode()
    assert "139-1234-5678" in page


def test_keyed_digests_and_hashes_in_details_are_left_as_they_are():
    from pharmacrm.core import personal

    extra = {"digest": "0a13912345678bcd13912345678ef0123", "was": "******#13912345", "n": 13912345678,
             "search": "13912345678"}  # fmt: skip
    shown = personal.audit_details(extra, True)
    assert shown == {**extra, "search": "139****5678"}
    assert personal.audit_details(extra, False) is extra


def test_a_reveal_reason_with_a_phone_is_masked_on_the_history_tab(users, xiehe, client_for):
    person = Person.objects.get(name="张伟")
    answer = client_for("agent").post(f"/customers/people/{person.pk}/reveal/",
                                      {"reason": "客户来电 13912345678 要求核实"})  # fmt: skip
    assert answer.status_code in (200, 302)
    page = client_for("support").get(f"/customers/people/{person.pk}/").content.decode()
    assert "客户来电 139****5678 要求核实" in page
    assert "13912345678" not in page
    page = client_for("admin").get(f"/customers/people/{person.pk}/").content.decode()
    assert "客户来电 13912345678 要求核实" in page
