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


# a text an entry keeps is cut with "…" now (audit.cut): a reveal's reason at 500 characters, a record's name at 200;
# a number cut there (请回电 1391234…) is masked by the cut rule for the readers who see personal data masked
LONG_REASON = "核" * (499 - len("客户来电 1391234")) + "客户来电 13912345678 要求核实"
# entries written before cut without a mark: a value at exactly the cut length, a number cut at its end
LEGACY_REASON = "核" * (500 - len("请回电 1391234")) + "请回电 1391234"
LEGACY_ORDINARY = "核" * (500 - len("共需更换 2000")) + "共需更换 2000"


def _audit_texts(client_for, person_pk) -> list[str]:
    query = {"object_type": "customers.person", "object_id": person_pk}
    return [client_for("auditor").get("/accounts/audit/", query).content.decode(),
            str(client_for("auditor").get("/api/v1/audit/", query).json()["results"])]  # fmt: skip


def test_a_long_reveal_reason_is_kept_cut_with_a_mark_and_read_masked(users, xiehe, client_for):
    from pharmacrm.core import personal
    from pharmacrm.core.models import AuditEntry

    person = Person.objects.get(name="张伟")
    personal.contact_view(users["agent"], [person], reveal_reason=LONG_REASON)
    reason = AuditEntry.objects.filter(action="read_personal", object_id=str(person.pk)).latest("seq").extra["reason"]
    assert len(reason) == 500 and reason.endswith("客户来电 1391234…")
    texts = [*_audit_texts(client_for, person.pk), client_for("support").get(f"/customers/people/{person.pk}/").content.decode()]
    for text in texts:
        assert "客户来电 139****…" in text and "1391234" not in text
    assert "客户来电 1391234…" in client_for("admin").get(f"/customers/people/{person.pk}/").content.decode()


def test_a_reason_stored_cut_without_a_mark_is_read_with_its_cut_number_masked(users, xiehe, client_for):
    from pharmacrm.core import audit

    person = Person.objects.get(name="张伟")
    for reason in (LEGACY_REASON, LEGACY_ORDINARY):  # as an entry written before kept them
        audit.record("read_personal", ("customers.person", str(person.pk), "1"), user=users["agent"],
                     people=[person.pk], count=1, fields=["mobile"], reason=reason, purpose="reveal")  # fmt: skip
    texts = [*_audit_texts(client_for, person.pk), client_for("support").get(f"/customers/people/{person.pk}/").content.decode()]
    for text in texts:
        assert "请回电 139****" in text and "1391234" not in text
        assert "共需更换 2000" in text  # an ordinary number at the end of such a value is shown as written
    query = {"object_type": "customers.person", "object_id": person.pk}
    assert LEGACY_REASON in str(client_for("admin").get("/api/v1/audit/", query).json()["results"])


def test_a_records_name_is_kept_cut_with_a_mark_and_read_masked(users, xiehe, client_for):
    from pharmacrm.core import audit
    from pharmacrm.servicedesk import editing
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(users["agent"], {"subject": "咨询用法", "channel": "phone", "category": "drug_info",
                                                 "institution": xiehe})  # fmt: skip
    head = f"{ticket.number} "
    subject = "药" * (199 - len(head) - len("请回电 1391234")) + "请回电 13912345678"
    editing.edit_ticket(users["manager"], ticket, {"subject": subject}, version=ticket.version)
    legacy = "TK-2020-000001 " + "药" * (200 - 15 - len("请回电 1391234")) + "请回电 1391234"
    audit.record("update", ("servicedesk.ticket", "999999", legacy), user=users["manager"])  # a name kept before
    stored = list(audit.AuditEntry.objects.filter(object_type="servicedesk.ticket").values_list("object_repr", flat=True))
    assert any(len(r) == 200 and r.endswith("请回电 1391234…") for r in stored)
    shown = client_for("auditor").get("/api/v1/audit/", {"object_type": "servicedesk.ticket"}).json()["results"]
    names = [e["object_repr"] for e in shown]
    assert any(n.endswith("请回电 139****…") for n in names) and any(n.endswith("请回电 139****") for n in names)
    page = client_for("auditor").get("/accounts/audit/", {"object_type": "servicedesk.ticket"}).content.decode()
    assert "1391234" not in page and "1391234" not in str(names)
    assert legacy in str(client_for("admin").get("/api/v1/audit/", {"object_type": "servicedesk.ticket"}).json())


def test_every_cut_of_an_entrys_text_ends_in_a_mark():
    from pharmacrm.core import audit

    assert audit.cut("核" * 600, 500) == "核" * 499 + "…"
    assert audit.cut("核" * 500, 500) == "核" * 500
    assert audit.object_label(("servicedesk.ticket", "1", "药" * 300))[2] == "药" * 199 + "…"
