"""Session 37: an ICSR for a licensing partner minimised under PIPL; an incoming nullification nullifies the case it
names; a foreign non-serious case owes the NMPA no individual report; day 0 corrected with a signature."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from lxml import etree

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety import services
from pharmacrm.safety.choices import CaseStatus
from pharmacrm.safety.e2b import schema
from pharmacrm.safety.models import CaseFile, SafetyCase, SafetyClock
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
    assert at(partner, "D.1") == ["WXM"]  # D.1: the pinyin initials, as a Chinese report form has them
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


@pytest.mark.parametrize(("name", "sent"), [
    ("John A. Smith", "JAS"), ("J.S.", "J.S."), ("WXM", "WXM"), ("LI MING", "LM"), ("Lü Bu", "LB"),
    ("王小明", "WXM"), ("欧阳娜娜", "OYNN"), ("王小明（住院号见病历）", "WXM"),
])  # fmt: skip
def test_a_partner_icsr_carries_the_initials_of_the_patients_name(make_case, name, sent):
    from pharmacrm.safety.e2b import export

    day_0 = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
    case = make_case(patient_name=name, patient_birth_date=dt.date(1981, 5, 17), patient_age="", received_at=day_0)
    doc = plain(export.release([SafetyCase.objects.get(pk=case.pk)], purpose="partner").xml)
    assert at(doc, "D.1") == [sent]
    assert at(doc, "D.2.2a") == ["44"]  # the age on day 0 (no onset date), in place of the birth date withheld


@pytest.mark.parametrize("name", ["김민수", "Иван"])
def test_a_partner_icsr_masks_a_name_it_has_no_initials_for(make_case, name):
    from pharmacrm.safety.e2b import export

    case = make_case(patient_name=name)
    doc = plain(export.release([SafetyCase.objects.get(pk=case.pk)], purpose="partner").xml)
    assert at(doc, "D.1") == [] and doc.xpath("//primaryRole/player1/name/@nullFlavor") == ["MSK"]


# --- 2. an incoming nullification ---------------------------------------------------------------------------------

ICSR_URL = "/api/v1/safety/icsrs/"
FDA = Path(__file__).parent / "data" / "fda-examples"
HL7 = "urn:hl7-org:v3"
CHARACTERISTICS = "2.16.840.1.113883.3.989.2.1.1.23"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def _nullification(name: str = "FAERS2022Scenario1.xml", reason: str = "Duplicate of US-ACME-0001") -> bytes:
    """The FDA example as its sender's nullification: C.1.11.1 = 1 with the reason, C.1.11.2."""
    root = etree.fromstring((FDA / name).read_bytes())
    event = root.xpath("//h:investigationEvent", namespaces={"h": HL7})[0]
    for code, value in (("3", None), ("4", reason)):
        subject = etree.SubElement(event, f"{{{HL7}}}subjectOf2", typeCode="SUBJ")
        characteristic = etree.SubElement(subject, f"{{{HL7}}}investigationCharacteristic", classCode="OBS",
                                          moodCode="EVN")  # fmt: skip
        etree.SubElement(characteristic, f"{{{HL7}}}code", code=code, codeSystem=CHARACTERISTICS)
        element = etree.SubElement(characteristic, f"{{{HL7}}}value", {XSI_TYPE: "CE"})
        if value is None:
            element.set("code", "1")
            element.set("codeSystem", "2.16.840.1.113883.3.989.2.1.1.5")
        else:
            etree.SubElement(element, f"{{{HL7}}}originalText").text = value
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _open_clocks(case) -> int:
    return SafetyClock.objects.filter(case=case, met_at__isnull=True, stopped_at__isnull=True).count()


def test_an_incoming_nullification_nullifies_the_case_it_names_and_opens_none(api_for):
    """The partner nullified a report it had sent (a duplicate): the import opened it as a NEW case, with the NMPA's
    reporting clock running for a report nobody owes. It nullifies the case imported before under the same
    worldwide case id, with the sender's reason, its clocks stopped, audited; importing it again changes nothing."""
    api = api_for("pv")
    [first] = api.post(ICSR_URL, (FDA / "FAERS2022Scenario1.xml").read_bytes(), content_type="application/xml").json()
    case = SafetyCase.objects.get(pk=first["id"])
    assert _open_clocks(case) > 0

    response = api.post(ICSR_URL, _nullification(), content_type="application/xml")

    assert response.status_code == 201, response.content
    [item] = response.json()
    assert item["id"] == case.pk and any("Duplicate of US-ACME-0001" in w for w in item["warnings"])
    assert SafetyCase.objects.count() == 1
    case.refresh_from_db()
    assert case.status == CaseStatus.NULLIFIED and _open_clocks(case) == 0
    entry = AuditEntry.objects.filter(object_id=str(case.pk), action=AuditEntry.Action.UPDATE).latest("id")
    assert entry.changes["status"][1] == "nullified"
    assert "Duplicate of US-ACME-0001" in entry.extra["reason"]
    version = case.version

    again = api.post(ICSR_URL, _nullification(), content_type="application/xml")

    assert again.status_code == 201 and SafetyCase.objects.get(pk=case.pk).version == version


def test_a_nullification_of_a_case_never_received_opens_no_case_and_says_so(api_for, client_for):
    """Nothing to nullify, nothing owed: no case (and no clock) is opened, and the officer reads why, in their
    language, naming the sender's id and reason — on the page and in the API."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    page = client_for("pv")
    page.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"
    data = _nullification(reason="Sent in error")

    response = page.post(reverse("safety:import"),
                         {"what": "icsr", "icsr-file": SimpleUploadedFile("n.xml", data, "application/xml")})  # fmt: skip

    assert response.status_code == 200
    html = response.content.decode()
    notice = re.search(r'<li class="not-imported">(.*?)</li>', html, re.S)
    assert notice and "Sent in error" in notice.group(1) and "未新建病例" in notice.group(1)
    assert not SafetyCase.objects.exists() and not SafetyClock.objects.exists()

    answer = api_for("pv").post(ICSR_URL, data, content_type="application/xml")

    assert answer.status_code == 201
    [item] = answer.json()
    assert item["id"] is None and "Sent in error" in item["warnings"][0]
    assert not SafetyCase.objects.exists()


def test_a_sender_cannot_nullify_a_case_of_ours(api_for, make_case, users):
    """A partner nullifying its copy of a case that came from us (the id is ours, CN-PHARMACRM-…) says nothing
    about our case: it stays as it is, and the officer is told."""
    case = make_case()
    ours = f"CN-PHARMACRM-{case.number}"

    def as_ours(root):
        for element in root.xpath("//h:investigationEvent/h:id", namespaces={"h": HL7}):
            element.set("extension", ours)

    root = etree.fromstring(_nullification())
    as_ours(root)
    response = api_for("pv").post(ICSR_URL, etree.tostring(root), content_type="application/xml")

    assert response.status_code == 201
    [item] = response.json()
    assert item["id"] == case.pk and any(case.number in w and "Duplicate of US-ACME-0001" in w for w in item["warnings"])
    assert SafetyCase.objects.get(pk=case.pk).status != CaseStatus.NULLIFIED


# --- 3. foreign cases: the NMPA is told of the serious ones ----------------------------------------------------------

DAY0 = timezone.make_aware(dt.datetime(2026, 3, 2, 10, 0))
SERIOUS = [{**COMPLETE["reactions"][0], "hospitalisation": True}]


def _report_clocks(case) -> list[tuple[str, dt.datetime]]:
    return [(c.rule.code, timezone.localtime(c.due_at)) for c in
            SafetyClock.objects.filter(case=case, kind="report").select_related("rule").order_by("due_at")]


@pytest.mark.parametrize("fields", [{"expectedness": "expected"}, {"expectedness": "unexpected"}])
def test_a_non_serious_case_from_abroad_owes_the_nmpa_no_individual_report(make_case, fields):
    """China's GVP: the NMPA is told individually of every case from China and of the serious ones from abroad; a
    non-serious case from abroad goes into the periodic report. A US partner's non-serious case got the 30-day NMPA
    clock (an unexpected one 15 days) — reminders and an "overdue" for a report nobody owes."""
    case = make_case(country="US", reporter_country="US", received_at=DAY0, **fields)
    assert case.valid and _report_clocks(case) == []


@pytest.mark.parametrize(("fields", "rule", "due"), [
    ({"country": "US", "reactions": SERIOUS}, "CN-FOREIGN-SERIOUS", dt.datetime(2026, 3, 17, 23, 59, 59)),
    ({"country": "HK"}, None, None),  # 境内 is the mainland: Hong Kong reports are foreign
    ({"country": "CN"}, "CN-OTHER", dt.datetime(2026, 4, 1, 23, 59, 59)),
    ({"country": "CN", "expectedness": "unexpected"}, "CN-OTHER", dt.datetime(2026, 4, 1, 23, 59, 59)),
    ({"country": "CN", "reactions": SERIOUS}, "CN-NEW-SERIOUS", dt.datetime(2026, 3, 17, 23, 59, 59)),
])  # fmt: skip
def test_cases_from_china_and_serious_ones_from_abroad_keep_their_deadlines(make_case, fields, rule, due):
    case = make_case(received_at=DAY0, **fields)
    assert _report_clocks(case) == ([(rule, timezone.make_aware(due))] if rule else [])


def test_a_foreign_case_found_serious_later_gets_the_15_day_clock(make_case, users):
    case = make_case(country="US", received_at=DAY0)
    assert _report_clocks(case) == []
    services.add_follow_up(users["pv"], case, {"reactions": SERIOUS}, received_at=DAY0 + dt.timedelta(days=2),
                           summary="住院")  # fmt: skip
    assert _report_clocks(case) == [("CN-FOREIGN-SERIOUS", timezone.make_aware(dt.datetime(2026, 3, 19, 23, 59, 59)))]


def test_a_database_installed_before_gets_the_rules_for_foreign_cases_and_keeps_its_own(db):
    """Migration 0013 limits the shipped CN-NEW-SERIOUS and CN-OTHER to cases from China, installs
    CN-FOREIGN-SERIOUS, and audits it; an administrator's deadline stays, and a rule they gave another condition
    keeps it."""
    import importlib
    import types

    from django.apps import apps
    from django.db import connection

    from pharmacrm.safety import apps as safety_apps
    from pharmacrm.safety.models import ReportingRule

    ReportingRule.objects.filter(code="CN-FOREIGN-SERIOUS").delete()
    ReportingRule.objects.filter(code="CN-OTHER").update(condition="other", within=20)
    ReportingRule.objects.filter(code="CN-NEW-SERIOUS").update(condition="serious")  # the administrator's choice
    migration = importlib.import_module("pharmacrm.safety.migrations.0013_foreign_cases_reporting_rules")
    migration.limit_to_domestic(apps, types.SimpleNamespace(connection=connection))
    safety_apps.revalidate_after_migrate(None, using=connection.alias)

    other = ReportingRule.objects.get(code="CN-OTHER")
    assert (other.condition, other.within) == ("other_domestic", 20)
    assert ReportingRule.objects.get(code="CN-NEW-SERIOUS").condition == "serious"
    foreign = ReportingRule.objects.get(code="CN-FOREIGN-SERIOUS")
    assert (foreign.active, foreign.within, foreign.unit, foreign.condition) == (True, 15, "days", "serious_foreign")
    entry = AuditEntry.objects.filter(object_id=str(other.pk), object_type="safety.reportingrule").latest("id")
    assert entry.changes == {"condition": ["other", "other_domestic"]}
    assert AuditEntry.objects.filter(object_id=str(foreign.pk), action=AuditEntry.Action.CREATE).exists()


def test_the_rules_page_names_the_foreign_rule_in_the_readers_language(client_for):
    page = client_for("pv").get(reverse("safety:rules")).content.decode()
    assert "CN-FOREIGN-SERIOUS" in page and "境外发生的严重不良反应：15 日内" in page
    assert "发生于境外：严重" in page


# --- 4. day 0 typed wrong ----------------------------------------------------------------------------------------


def test_a_mistyped_day_0_is_corrected_with_a_reason_and_a_signature_and_the_clocks_follow(api_for, make_case, users):
    """The officer opening the case typed 2 March for a call taken on 12 February: day 0 was locked from then on,
    the 30-day clock ran from the wrong day, and the export said C.1.4 = 2 March. They correct it, saying why and
    signing with their one-time code: the initial report's clock counts from 12 February, and the audit trail
    holds both dates, the reason and the signature."""
    from pharmacrm.core.models import Signature

    pv = users["pv"]
    case = make_case(country="CN", received_at=DAY0)
    assert _report_clocks(case) == [("CN-OTHER", timezone.make_aware(dt.datetime(2026, 4, 1, 23, 59, 59)))]
    url = f"/api/v1/safety/cases/{case.pk}/day-0/"
    right = timezone.make_aware(dt.datetime(2026, 2, 12, 15, 30))
    api = api_for("pv")

    unexplained = api.post(url, {"received_at": right.isoformat(), "otp_code": sign_code(pv), "version": case.version},
                           format="json")  # fmt: skip
    assert unexplained.status_code == 400 and list(unexplained.json()) == ["reason"]

    response = api.post(url, {"received_at": right.isoformat(), "reason": "录入错误：来电日期为 2 月 12 日",
                              "otp_code": next_code(pv), "version": case.version}, format="json")  # fmt: skip

    assert response.status_code == 200, response.json()
    case.refresh_from_db()
    assert case.received_at == right and case.versions.get(sequence=0).received_at == right
    assert case.latest_received_at == right  # C.1.5 was day 0 itself
    assert _report_clocks(case) == [("CN-OTHER", timezone.make_aware(dt.datetime(2026, 3, 14, 23, 59, 59)))]
    entry = AuditEntry.objects.filter(object_id=str(case.pk), action=AuditEntry.Action.UPDATE).latest("id")
    assert list(entry.changes) == ["received_at"] and entry.extra["reason"] == "录入错误：来电日期为 2 月 12 日"
    signature = Signature.objects.get(pk=entry.extra["signature_id"])
    assert signature.user == pv and signature.reason == "录入错误：来电日期为 2 月 12 日"


def test_a_day_0_sent_with_the_case_points_to_the_correction(api_for, make_case):
    case = make_case()
    other = timezone.localtime(case.received_at - dt.timedelta(days=2)).isoformat()
    response = api_for("pv").patch(f"/api/v1/safety/cases/{case.pk}/", {"received_at": other, "version": case.version},
                                   format="json")  # fmt: skip
    assert response.status_code == 400 and "…/day-0/" in response.json()["received_at"][0]


def test_day_0_cannot_be_corrected_past_a_follow_up_nor_without_the_signature(api_for, make_case, users):
    pv = users["pv"]
    case = make_case(received_at=DAY0)
    services.add_follow_up(pv, case, {"narrative": "随访"}, received_at=DAY0 + dt.timedelta(days=3), summary="随访")
    url = f"/api/v1/safety/cases/{case.pk}/day-0/"
    api = api_for("pv")
    version = SafetyCase.objects.get(pk=case.pk).version

    wrong_code = api.post(url, {"received_at": (DAY0 - dt.timedelta(days=1)).isoformat(), "reason": "typo",
                                "otp_code": "000000", "version": version}, format="json")  # fmt: skip
    after = api.post(url, {"received_at": (DAY0 + dt.timedelta(days=4)).isoformat(), "reason": "typo",
                           "otp_code": sign_code(pv), "version": version}, format="json")  # fmt: skip

    manager = api_for("manager").post(url, {"received_at": (DAY0 - dt.timedelta(days=1)).isoformat(), "reason": "typo",
                                            "otp_code": "000000", "version": version}, format="json")  # fmt: skip

    assert manager.status_code == 403  # PV handles cases; the overseeing roles read them
    assert wrong_code.status_code == 400 and "otp_code" in wrong_code.json()
    assert after.status_code == 400 and list(after.json()) == ["received_at"]
    assert SafetyCase.objects.get(pk=case.pk).received_at == DAY0


def test_the_case_page_corrects_day_0(client_for, make_case, users):
    pv = users["pv"]
    case = make_case(country="CN", received_at=DAY0)
    page = client_for("pv")
    assert 'id="day-zero"' in page.get(reverse("safety:case", args=[case.pk])).content.decode()

    response = page.post(reverse("safety:case-day-zero", args=[case.pk]), {
        "received_at": "2026-02-12T15:30", "reason": "录入错误", "otp_code": sign_code(pv), "version": case.version,
    }, follow=True)  # fmt: skip

    assert response.status_code == 200
    assert "2026-02-12 15:30" in response.content.decode()
    assert SafetyCase.objects.get(pk=case.pk).received_at == timezone.make_aware(dt.datetime(2026, 2, 12, 15, 30))
