"""Regulatory clocks found wrong by the review of the hard clocks: day 0 of a case that was not valid at first."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.notify.models import Notification
from pharmacrm.safety import services
from pharmacrm.safety.models import SafetyClock
from tests.safety.conftest import sign_code

pytestmark = pytest.mark.django_db

NO_REPORTER = {"reporter_name": "", "reporter_contact": "", "reporter_institution": "", "reporter_qualification": ""}


def test_the_clock_of_a_case_first_received_without_a_reporter_starts_when_the_reporter_is_known(make_case, users):
    """个例药品不良反应收集和报告指导原则 (and ICH E2D): day 0 is the day the company first has a valid case — the four
    minimum criteria. A hotline call without an identifiable reporter, 40 days ago, completed by the doctor's call two
    days ago: the 30-day clock ran from the first call, so the worker told PV and their manager the case was overdue
    and the report sent now had to be recorded "10 days late" with a reason."""
    pv = users["pv"]
    case = make_case(received_at=timezone.now() - dt.timedelta(days=40), **NO_REPORTER)
    assert not case.valid and case.missing == ["reporter"]
    assert not SafetyClock.objects.filter(case=case).exists()  # not valid yet: no day 0
    completed_at = timezone.now() - dt.timedelta(days=2)
    follow = services.add_follow_up(pv, case, {"reporter_name": "张伟", "reporter_qualification": "1"},
                                    received_at=completed_at, summary="报告医生来电")  # fmt: skip
    case.refresh_from_db()
    assert case.valid
    [clock] = SafetyClock.objects.filter(case=case)
    assert (clock.rule.code, clock.case_version, clock.due_at) == ("CN-OTHER", follow,
                                                                  services.day_deadline(completed_at, 30))
    assert services.sweep()["breached"] == 0
    assert not Notification.objects.filter(kind="safety.overdue").exists()
    submission = services.record_submission(pv, case, {"channel": "nmpa"}, otp_code=sign_code(pv))
    assert not submission.late and submission.delay_days == 0


def test_a_case_completed_by_a_correction_counts_from_its_receipt(make_case, users):
    """The reporter was in the call notes all along and PV only enters it now (a correction, not new information):
    the case was valid from its receipt, which stays day 0."""
    heard = timezone.now() - dt.timedelta(days=3)
    case = make_case(received_at=heard, **NO_REPORTER)
    case = services.update_case(users["pv"], case, {"reporter_name": "张伟"}, version=case.version)
    [clock] = SafetyClock.objects.filter(case=case)
    assert clock.started_at == heard and clock.due_at == services.day_deadline(heard, 30)


def test_a_valid_case_keeps_its_clock_through_an_edit_that_leaves_a_criterion_empty(make_case, users):
    case = make_case()
    [clock] = SafetyClock.objects.filter(case=case)
    case = services.update_case(users["pv"], case, NO_REPORTER, version=case.version)
    assert not case.valid
    assert list(SafetyClock.objects.filter(case=case)) == [clock]  # still owed: it was a valid case


def test_the_reconciliation_lists_a_case_not_valid_yet_as_not_yet_reported(make_case, users, xiehe):
    from pharmacrm.safety import reconciliation as recon
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(users["agent"], {
        "subject": "用药后皮疹", "description": "患者服用后出现全身皮疹。", "channel": "phone",
        "category": "adverse_reaction", "institution": xiehe, "assignee": users["agent"],
    })  # fmt: skip
    case = services.open_case_from(users["pv"], ticket, kind="adverse_reaction")
    assert not case.valid
    [row] = [r for r in recon.report(*recon.default_period())["rows"] if r["case_number"] == case.number]
    assert row["timeliness"] == recon.NOT_YET  # reported once it is valid, not "not reportable"


def test_a_report_sent_in_the_last_second_of_the_due_day_is_on_time(make_case, users):
    """"不迟于获知信息后的30日": a report recorded at 23:59:59.4 (Beijing time) on day 30 — the time the
    submission button was pressed, to the fraction of a second — is on time, not "1 day late" with a
    reason demanded for it."""
    pv = users["pv"]
    heard = timezone.now() - dt.timedelta(days=40)
    case = make_case(received_at=heard)
    due = services.day_deadline(heard, 30)
    assert timezone.localtime(due).strftime("%H:%M:%S") == "23:59:59"
    sent = due + dt.timedelta(microseconds=400_000)
    submission = services.record_submission(pv, case, {"channel": "nmpa", "submitted_at": sent},
                                            otp_code=sign_code(pv))  # fmt: skip
    assert not submission.late and submission.delay_days == 0
    assert submission.submitted_at == due
