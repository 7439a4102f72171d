"""Session 37: an ICSR for a licensing partner minimised under PIPL; an incoming nullification nullifies the case it
names; a foreign non-serious case owes the NMPA no individual report; day 0 corrected with a signature."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety import services
from pharmacrm.safety.e2b import schema
from pharmacrm.safety.models import CaseFile, SafetyCase

from tests.api import conftest as api_fixtures

from .conftest import COMPLETE, next_code, sign_code
from .test_e2b_export import at, plain

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role

# --- 1. PIPL: the file for a licensing partner ------------------------------------------------------------------


def _export(api_for, users, case, purpose: str, code: str):
    response = api_for("pv").post(
        f"/api/v1/safety/cases/{case.pk}/export/", {"otp_code": code, "purpose": purpose},
        HTTP_ACCEPT="application/xml",
    )  # fmt: skip
    assert response.status_code == 200, response.content
    assert schema.validate(response.content, schema.BATCH) == []
    return plain(response.content)


def test_a_partner_icsr_names_the_partner_and_withholds_who_the_patient_and_reporter_are(api_for, make_case, users,
                                                                                         settings):  # fmt: skip
    """A case exported "for a partner" went out to the licensing partner addressed to the NMPA (N.1.4 NMPA-CDR) with
    the patient's full name, birth date and hospital record number and the reporter's name and mobile number —
    sensitive personal information leaving the company that the partner does not need (PIPL art. 6, 28). The
    partner's file is addressed to the partner and masks them (nullFlavor MSK, as the E2B(R3) IG has it for data
    privacy); the NMPA's file is unchanged."""
    settings.SAFETY_PARTNER_RECEIVER_ID = "PARTNER-ACME"
    pv = users["pv"]
    case = make_case(patient_name="王小明", patient_birth_date=dt.date(1981, 5, 17), patient_record_number="ZY2026-0042")
    CaseFile.objects.create(case=case, name="王小明病历.pdf", content_type="application/pdf", size=10,
                            file="safety/2026/11/x.pdf")  # fmt: skip

    partner = _export(api_for, users, case, "partner", sign_code(pv))

    assert at(partner, "N.1.4") == at(partner, "N.2.r.3") == ["PARTNER-ACME"]
    text = " ".join(partner.itertext()) + " ".join(str(v) for v in partner.xpath("//@*"))
    for personal in ("王小明", "19810517", "ZY2026-0042", "张伟", "13800138000"):
        assert personal not in text
    person = partner.xpath("//primaryRole/player1")[0]
    assert person.xpath("name/@nullFlavor") == ["MSK"]  # D.1: known, withheld
    assert person.xpath("birthTime/@nullFlavor") == ["MSK"]  # D.2.1
    assert person.xpath("asIdentifiedEntity/id/@nullFlavor") == ["MSK"]  # D.1.1.3
    assert at(partner, "D.2.2a") == ["45"]  # the age stays: what the partner needs to assess the case
    reporter = partner.xpath("//outboundRelationship/relatedInvestigation[code/@code='2']//assignedEntity")[0]
    assert reporter.xpath("assignedPerson/name/given/@nullFlavor") == ["MSK"]  # C.2.r.1.2
    assert reporter.xpath("telecom/@nullFlavor") == ["MSK"] and reporter.xpath("telecom/@value") == ["tel:"]
    assert at(partner, "C.2.r.2.1") == ["北京协和医院"] and at(partner, "C.2.r.4") == ["1"]
    assert partner.xpath("//document[code/@code='1']/title/text()") == ["document-1.pdf"]  # C.1.6.1.r.1

    regulatory = _export(api_for, users, SafetyCase.objects.get(pk=case.pk), "regulatory", next_code(pv))

    assert at(regulatory, "N.1.4") == ["NMPA-CDR"]
    assert at(regulatory, "D.1") == ["王小明"] and at(regulatory, "D.2.1") == ["19810517"]
    assert at(regulatory, "D.1.1.3") == ["ZY2026-0042"] and at(regulatory, "C.2.r.1.2") == ["张伟"]
    assert regulatory.xpath("//document[code/@code='1']/title/text()") == ["王小明病历.pdf"]


@pytest.mark.parametrize(("name", "sent"), [("John A. Smith", "JAS"), ("J.S.", "J.S."), ("WXM", "WXM")])
def test_a_partner_icsr_carries_the_initials_of_a_name_in_latin_letters(make_case, name, sent):
    from pharmacrm.safety.e2b import export

    day_0 = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
    case = make_case(patient_name=name, patient_birth_date=dt.date(1981, 5, 17), patient_age="", received_at=day_0)
    doc = plain(export.release([SafetyCase.objects.get(pk=case.pk)], purpose="partner").xml)
    assert at(doc, "D.1") == [sent]
    assert at(doc, "D.2.2a") == ["44"]  # the age on day 0 (no onset date), in place of the birth date withheld
