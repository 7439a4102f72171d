"""Safety defects found by the thirtieth review round (safety): the minimum criteria of a valid case."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone
from lxml import etree

from pharmacrm.safety import services
from pharmacrm.safety.e2b import export, schema
from pharmacrm.safety.models import SafetyClock

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

