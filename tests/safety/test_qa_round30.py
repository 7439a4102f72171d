"""Safety defects found by the thirtieth review round (safety): the minimum criteria of a valid case, the clocks
of a case corrected after a follow-up, the documents an ICSR says are held."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone
from lxml import etree

from pharmacrm.safety import services
from pharmacrm.safety.e2b import export, schema
from pharmacrm.safety.models import CaseFile, SafetyCase, SafetyClock
from tests.safety.conftest import COMPLETE, sign_code

pytestmark = pytest.mark.django_db

ANONYMOUS = {"patient_name": "", "patient_sex": "", "patient_age": "", "patient_birth_date": None,
             "reporter_name": "", "reporter_contact": "", "reporter_institution": "", "reporter_qualification": ""}  # fmt: skip


def test_a_physician_reporting_a_patient_by_record_number_is_a_valid_case_with_its_clock(make_case, users,
                                                                                         client_for):  # fmt: skip
    """ICH E2D, GVP VI.B.2 and 个例药品不良反应收集和报告指导原则: a reporter is identifiable by their qualification ("a
    physician"), a patient by an identification number. A rep heard from a doctor — who would not give a name —
    about the patient of bed record 20260817: the case was 'missing: identifiable patient, identifiable reporter',
    had no day 0 and no clock, and its 15-day report fell due unseen while PV waited for names the guideline does
    not ask for."""
    heard = timezone.now() - dt.timedelta(days=3)
    case = make_case(received_at=heard, **{**ANONYMOUS, "reporter_qualification": "1",
                                           "patient_record_number": "20260817"})  # fmt: skip

    assert case.valid and case.missing == []
    [clock] = SafetyClock.objects.filter(case=case, kind="report")
    assert clock.started_at == heard and clock.due_at == services.day_deadline(heard, 30)
    page = client_for("pv").get(reverse("safety:case", args=[case.pk])).content.decode()
    assert 'id="follow-up-task"' not in page
    batch = export.release([case])
    assert schema.validate(batch.xml, schema.BATCH) == []
    tree = etree.fromstring(batch.xml)
    ns = {"h": schema.HL7}
    assert tree.xpath("//h:asQualifiedEntity/h:code/@code", namespaces=ns) == ["1"]  # C.2.r.4 physician
    assert tree.xpath("//h:player1/h:asIdentifiedEntity/h:id/@extension", namespaces=ns) == ["20260817"]  # D.1.1.3

def test_without_any_of_them_the_case_still_misses_its_patient_and_reporter(make_case):
    case = make_case(**ANONYMOUS)
    assert not case.valid and case.missing == ["patient", "reporter"]
    assert not SafetyClock.objects.filter(case=case).exists()


# --- a correction re-plans every version still owed a report ------------------------------------------------------


def _report_clocks(case) -> list[tuple]:
    return sorted((c.case_version.sequence, c.rule.code, c.due_at)
                  for c in SafetyClock.objects.filter(case=case, kind="report", met_at__isnull=True)
                  .select_related("rule", "case_version"))  # fmt: skip


def test_a_case_found_serious_on_review_after_a_follow_up_is_due_from_its_first_receipt(make_case, users, client_for):
    """The hotline took a rash 20 days ago (non-serious: 30 days); a lab result came as a follow-up two days ago. On
    review PV sees in the first call's notes that the patient had been admitted, and ticks 'hospitalisation' — a
    correction, the case was serious all along. Only the follow-up's clock was re-planned (15 days from two days
    ago): the first report kept its 30-day clock, 'due in 10 days', while its 15-day report had been due five days
    ago. The case list did not show it overdue."""
    pv = users["pv"]
    heard = timezone.now() - dt.timedelta(days=20)
    case = make_case(received_at=heard)
    follow = services.add_follow_up(pv, case, {}, received_at=timezone.now() - dt.timedelta(days=2),
                                    summary="化验结果：肝功能正常", version=case.version)  # fmt: skip
    case.refresh_from_db()
    reactions = [{**COMPLETE["reactions"][0], "hospitalisation": True}]

    case = services.update_case(pv, case, {"reactions": reactions}, version=case.version)

    assert case.serious
    assert _report_clocks(case) == [(0, "CN-NEW-SERIOUS", services.day_deadline(heard, 15)),
                                    (1, "CN-NEW-SERIOUS", services.day_deadline(follow.received_at, 15))]  # fmt: skip
    listed = client_for("pv").get(reverse("safety:cases") + "?overdue=1").content.decode()
    assert f'data-number="{case.number}" data-overdue="true"' in listed


def test_a_case_found_not_serious_on_review_after_a_follow_up_has_no_15_day_clock_left(make_case, users):
    """The other way: 'hospitalisation' ticked by mistake on the first report, found on review after a follow-up —
    the first report's 15-day clock stayed, and the worker would tell PV and their manager a non-serious case was
    overdue."""
    pv = users["pv"]
    heard = timezone.now() - dt.timedelta(days=5)
    case = make_case(received_at=heard, reactions=[{**COMPLETE["reactions"][0], "hospitalisation": True}])
    assert case.serious
    follow = services.add_follow_up(pv, case, {}, received_at=timezone.now() - dt.timedelta(days=1),
                                    summary="出院小结", version=case.version)  # fmt: skip
    case.refresh_from_db()

    case = services.update_case(pv, case, {"reactions": COMPLETE["reactions"]}, version=case.version)

    assert not case.serious
    assert _report_clocks(case) == [(0, "CN-OTHER", services.day_deadline(heard, 30)),
                                    (1, "CN-OTHER", services.day_deadline(follow.received_at, 30))]  # fmt: skip


def test_a_correction_leaves_a_version_already_reported_alone(make_case, users):
    """A version whose report was sent stays met; the correction is owed with the latest version only."""
    pv = users["pv"]
    heard = timezone.now() - dt.timedelta(days=20)
    case = make_case(received_at=heard)
    services.record_submission(pv, case, {"channel": "nmpa", "submitted_at": heard + dt.timedelta(days=3)},
                               otp_code=sign_code(pv))  # fmt: skip
    case.refresh_from_db()
    follow = services.add_follow_up(pv, case, {}, received_at=timezone.now() - dt.timedelta(days=2),
                                    summary="化验结果", version=case.version)  # fmt: skip
    case.refresh_from_db()

    case = services.update_case(pv, case, {"reactions": [{**COMPLETE["reactions"][0], "hospitalisation": True}]},
                                version=case.version)  # fmt: skip

    assert _report_clocks(case) == [(1, "CN-NEW-SERIOUS", services.day_deadline(follow.received_at, 15))]
    assert SafetyClock.objects.get(case=case, case_version__sequence=0, kind="report").met_at is not None


# --- E2B(R3): the documents held by the sender --------------------------------------------------------------------


def test_a_case_with_documents_names_them_in_its_icsr(db):
    """The hospital's discharge summary and a photo of the pack were attached to the case: the ICSR said 'additional
    documents available: true' (C.1.6.1) without listing any — ICH makes C.1.6.1.r.1 required then, and the FDA
    gateway rejects such a report (R0009 in fda-rejection-warning-rules.csv), yet the export released it as valid."""
    from tests.safety.test_e2b_export import at, make_case, plain

    case = make_case()
    for name in ("出院小结.pdf", "药盒照片.jpg"):
        CaseFile.objects.create(case=case, file=f"safety/{name}", name=name, content_type="application/pdf", size=10)

    path = "//investigationEvent/reference[@typeCode='REFR']/document[code/@code='1']/title/text()"
    batch = export.release(SafetyCase.objects.filter(pk=case.pk), purpose="regulatory")

    assert schema.validate(batch.xml, schema.BATCH) == []
    doc = plain(batch.xml)
    assert at(doc, "C.1.6.1") == ["true"]
    assert doc.xpath(path) == ["出院小结.pdf", "药盒照片.jpg"] and at(doc, "C.1.6.1.r.1") == ["出院小结.pdf"]
    # a partner's file lists them too, without the uploader's names (a record's may carry the patient's: session 37)
    partner = plain(export.release(SafetyCase.objects.filter(pk=case.pk), purpose="partner").xml)
    assert at(partner, "C.1.6.1") == ["true"] and partner.xpath(path) == ["document-1.pdf", "document-2.jpg"]


def test_a_case_without_documents_lists_none(db):
    from tests.safety.test_e2b_export import at, make_case, plain

    doc = plain(export.build([make_case()]))
    assert at(doc, "C.1.6.1") == ["false"] and at(doc, "C.1.6.1.r.1") == []


# --- MedDRA codes ---------------------------------------------------------------------------------------------------


def test_a_meddra_code_typed_short_or_a_version_without_its_release_is_named_before_the_icsr_leaves(make_case):
    """A code copied with a digit missing (1003784 for 皮疹 10037844) and a version typed '27' passed the business
    rules — 'numeric, at most 8' — so the ICSR was released as valid and the regulator found no such term."""
    case = make_case()
    # as an incoming ICSR keeps them (typed on the form or sent to the API, they are refused at their fields)
    case.reactions.update(meddra_llt="1003784", meddra_version="27")
    case.drugs.update(indication_meddra="100617")

    with pytest.raises(export.ExportRefused) as refused:
        export.release([case])

    named = {p.field: str(p) for p in refused.value.problems}
    assert set(named) == {"reactions[0].meddra_llt", "reactions[0].meddra_version", "drugs[0].indication_meddra"}
    assert "1003784" in named["reactions[0].meddra_llt"] and "8" in named["reactions[0].meddra_llt"]
    assert "27.1" in named["reactions[0].meddra_version"]


def test_meddra_codes_typed_in_full_width_are_saved_as_digits_and_the_case_exports(make_case):
    """An input method in full-width mode typed １００３７８４４ and ２７．１: stored as typed, the export was refused with
    'must be a number' for a code the officer had entered correctly."""
    case = make_case(reactions=[{**COMPLETE["reactions"][0], "meddra_llt": "１００３７８４４", "meddra_version": "２７．１"}],
                     drugs=[{**COMPLETE["drugs"][0], "indication_meddra": "１００６１７６８"}])  # fmt: skip

    reaction, drug = case.reactions.get(), case.drugs.get()
    assert (reaction.meddra_llt, reaction.meddra_version, drug.indication_meddra) == ("10037844", "27.1", "10061768")
    assert schema.validate(export.release([case]).xml, schema.BATCH) == []
