"""Safety defects found by the thirty-first review round: cases stored under the old minimum criteria, the message
identifiers of re-exported ICSRs."""

from __future__ import annotations

import datetime as dt
import importlib
import io
import types

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety import services
from pharmacrm.safety.models import CaseTask, SafetyCase, SafetyClock

pytestmark = pytest.mark.django_db

ANONYMOUS = {"patient_name": "", "patient_sex": "", "patient_age": "", "patient_birth_date": None,
             "reporter_name": "", "reporter_contact": "", "reporter_institution": "", "reporter_qualification": ""}  # fmt: skip
# a doctor who would not give a name, about the patient of a bed record: valid since the rule of session 30
PHYSICIAN_AND_RECORD = {**ANONYMOUS, "reporter_qualification": "1", "patient_record_number": "20260817"}


def _as_old_code_stored_it(case: SafetyCase, missing=("patient", "reporter")) -> SafetyCase:
    """The row as the code before the rule change wrote it: invalid, the criteria it did not count as missing, no
    regulatory clock, the open task to collect them."""
    SafetyClock.objects.filter(case=case).delete()
    case.tasks.all().delete()
    SafetyCase.objects.filter(pk=case.pk).update(valid=False, missing=list(missing))
    case.refresh_from_db()
    services._sync_follow_up_task(case, case.created_at)
    return case


def _report_clocks(case) -> list[tuple]:
    return sorted((c.case_version.sequence, c.rule.code, c.started_at, c.due_at)
                  for c in SafetyClock.objects.filter(case=case, kind="report").select_related("rule", "case_version"))


def _revalidate() -> str:
    out = io.StringIO()
    call_command("safety", "revalidate", stdout=out)
    return out.getvalue()


def test_a_case_stored_invalid_under_the_old_rule_is_valid_with_its_clock_from_its_receipt(make_case):
    """A case a rep took 20 days ago from a doctor about the patient of bed 20260817 was saved when the rule still
    asked for names: stored 'invalid', no clock. Session 30 changed the rule, but the stored case stayed invalid
    and its 30-day report fell due unseen until someone happened to edit it. Now `pharmacrm safety revalidate`
    (which the migration runs) makes it valid, due 30 days from the day the company heard of it — not from now."""
    heard = timezone.now() - dt.timedelta(days=20)
    case = _as_old_code_stored_it(make_case(received_at=heard, **PHYSICIAN_AND_RECORD))
    assert not case.valid and _report_clocks(case) == []
    assert case.tasks.filter(kind="follow_up", done_at__isnull=True).exists()

    assert "1" in _revalidate()

    case.refresh_from_db()
    assert case.valid and case.missing == []
    assert _report_clocks(case) == [(0, "CN-OTHER", heard, services.day_deadline(heard, 30))]
    assert not case.tasks.filter(kind="follow_up", done_at__isnull=True).exists()  # nothing left to collect
    assert case in [c.case for c in services.due_clocks()]  # on the PV officer's due list
    entry = AuditEntry.objects.filter(object_type="safety.safetycase", object_id=str(case.pk), action="update").last()
    assert entry.changes["valid"] == [False, True] and entry.changes["missing"] == [["patient", "reporter"], []]
    assert entry.actor_name.startswith("cli:")

    # run again (or the migration after the command): nothing changes, nothing audited twice
    entries = AuditEntry.objects.count()
    assert "0" in _revalidate()
    assert AuditEntry.objects.count() == entries
    assert len(_report_clocks(case)) == 1


def test_day_0_is_the_follow_up_that_brought_the_missing_criterion(make_case, users):
    """The first call told of no patient anybody could identify; a follow-up five days ago gave the bed record
    number. The criteria were first known with that follow-up: its receipt is day 0, as saving it would count
    today — not the first call's, nor the moment the migration runs."""
    pv = users["pv"]
    heard = timezone.now() - dt.timedelta(days=20)
    case = make_case(received_at=heard, **{**ANONYMOUS, "reporter_qualification": "1"})
    follow = services.add_follow_up(pv, case, {"patient_record_number": "20260817"}, version=case.version,
                                    received_at=timezone.now() - dt.timedelta(days=5), summary="病历号")  # fmt: skip
    case = _as_old_code_stored_it(SafetyCase.objects.get(pk=case.pk))

    _revalidate()

    assert _report_clocks(case) == [(1, "CN-OTHER", follow.received_at,
                                     services.day_deadline(follow.received_at, 30))]  # fmt: skip


def test_a_follow_up_without_new_criteria_leaves_day_0_at_the_first_receipt(make_case, users):
    """The criteria were in the first call; a later follow-up only added a lab result. The initial report is owed
    from the first call (overdue by now), the follow-up from its own receipt, as each version of a valid case is."""
    pv = users["pv"]
    heard = timezone.now() - dt.timedelta(days=40)
    case = make_case(received_at=heard, **PHYSICIAN_AND_RECORD)
    follow = services.add_follow_up(pv, case, {"patient_history": "肝功能正常"}, version=case.version,
                                    received_at=timezone.now() - dt.timedelta(days=2), summary="化验结果")  # fmt: skip
    case = _as_old_code_stored_it(SafetyCase.objects.get(pk=case.pk))

    _revalidate()

    assert _report_clocks(case) == [
        (0, "CN-OTHER", heard, services.day_deadline(heard, 30)),
        (1, "CN-OTHER", follow.received_at, services.day_deadline(follow.received_at, 30)),
    ]


def test_a_case_still_missing_a_criterion_stays_invalid_with_what_it_misses_now(make_case):
    """No patient at all, but a physician: still invalid (no clock), and the task now asks only for the patient."""
    case = _as_old_code_stored_it(make_case(**{**ANONYMOUS, "reporter_qualification": "1"}))

    _revalidate()

    case.refresh_from_db()
    assert not case.valid and case.missing == ["patient"] and _report_clocks(case) == []
    task = case.tasks.get(kind="follow_up", done_at__isnull=True)
    assert task.details == {"missing": ["patient"]}


def test_the_migration_revalidates_through_the_same_command(make_case):
    heard = timezone.now() - dt.timedelta(days=3)
    case = _as_old_code_stored_it(make_case(received_at=heard, **PHYSICIAN_AND_RECORD))
    migration = importlib.import_module("pharmacrm.safety.migrations.0006_revalidate_cases")

    migration.revalidate(django_apps, types.SimpleNamespace(connection=connection))

    case.refresh_from_db()
    assert case.valid and _report_clocks(case) == [(0, "CN-OTHER", heard, services.day_deadline(heard, 30))]


def test_revalidation_works_through_a_table_in_chunks(make_case):
    cases = [_as_old_code_stored_it(make_case(**PHYSICIAN_AND_RECORD)) for _ in range(5)]

    assert services.revalidate_invalid_cases(chunk=2) == 5

    assert SafetyCase.objects.filter(pk__in=[c.pk for c in cases], valid=True).count() == 5
    assert CaseTask.objects.filter(case__in=cases, kind="follow_up", done_at__isnull=True).count() == 0
