"""Safety defects found by the nineteenth session's QA round (qa-safety)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from pharmacrm.safety import services
from pharmacrm.safety.models import SafetyClock
from tests.safety.conftest import sign_code

FATAL = [{"verbatim": "过敏性休克后死亡", "meddra_version": "27.1", "meddra_llt": "10002199", "outcome": "5",
          "death": True}]  # fmt: skip


def test_a_fatal_case_is_not_closed_with_its_death_investigation_report_still_owed(make_case, users):
    """NMPA: a death is reported at once AND the company sends its investigation report within 15 days. PV sends
    the 24-hour report and closes the case: no reason asked, the investigation clock stops, no reminder ever
    comes — the 15-day report is silently forgotten."""
    pv = users["pv"]
    case = make_case(reactions=FATAL, received_at=timezone.now() - dt.timedelta(hours=3))
    assert set(SafetyClock.objects.filter(case=case).values_list("kind", flat=True)) == {"report", "investigation"}
    services.record_submission(pv, case, {"channel": "nmpa"}, otp_code=sign_code(pv))
    case.refresh_from_db()
    with pytest.raises(ValidationError) as refused:
        services.set_status(pv, case, "closed")
    assert "reason" in refused.value.message_dict
    investigation = SafetyClock.objects.get(case=case, kind="investigation")
    assert investigation.stopped_at is None and investigation.next_check_at is not None


def test_a_submission_dated_before_the_company_heard_of_the_case_is_refused(make_case, users):
    """A typo in the year (2025 for 2026) records the report as sent before day 0: the clock is met "on time"
    and the case counts as reported on time in the reconciliation."""
    pv = users["pv"]
    case = make_case(received_at=timezone.now() - dt.timedelta(days=40))
    before = case.received_at - dt.timedelta(days=300)
    with pytest.raises(ValidationError) as refused:
        services.record_submission(pv, case, {"channel": "nmpa", "submitted_at": before}, otp_code=sign_code(pv))
    assert "submitted_at" in refused.value.message_dict
    assert SafetyClock.objects.get(case=case, kind="report").met_at is None
