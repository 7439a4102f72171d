"""The worker's sweeps record the alerts they stamp in the audit trail (session 39).

A sweep that tells people of an overdue plan item or meeting action, an agreement to renew, an SLA deadline coming
(service desk) or a safety clock about to run out stamps the record as alerted — and nothing of it appeared in the
audit trail: an auditor could not see when the worker alerted whom about what. Each stamp is now an entry by the
system (as the worker's other changes: an agreement's expiry, a breach), in the same transaction as the stamp; the
clock sweeps write one entry per batch, as for their breaches. The auditor finds them through the audit API."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.keyaccounts import services as ka
from tests.api.conftest import api_for  # noqa: F401  (token clients per role)
from tests.keyaccounts.programme_fixtures import *  # noqa: F403
from tests.keyaccounts.programme_fixtures import action_of

pytestmark = pytest.mark.django_db


def _entries(api, **query) -> list[dict]:
    response = api.get("/api/v1/audit/", query)
    assert response.status_code == 200, response.content
    data = response.json()
    return data["results"] if isinstance(data, dict) else data


def test_an_overdue_plan_item_alert_is_in_the_auditors_audit_trail(users, xiehe, with_plan, api_for):  # noqa: F811
    deadline = timezone.localdate() + dt.timedelta(days=3)
    _account, plan = with_plan(xiehe, deadline=deadline)
    later = timezone.now() + dt.timedelta(days=6)
    assert ka.sweep_plan_items(now=later) == plan.items.count() > 0
    auditor = api_for("auditor")
    for item in plan.items.all():
        (entry,) = _entries(auditor, object_type="keyaccounts.planitem", object_id=str(item.pk))[:1]
        assert entry["actor"] is None and entry["actor_name"] == "system"
        assert entry["action"] == "update"
        assert entry["changes"] == {"overdue_notified_at": [None, later.isoformat()]}
    ka.sweep_plan_items(now=later + dt.timedelta(hours=1))  # nothing stamped again: no entry again
    item = plan.items.first()
    stamps = [e for e in _entries(auditor, object_type="keyaccounts.planitem", object_id=str(item.pk))
              if "overdue_notified_at" in e["changes"]]  # fmt: skip
    assert len(stamps) == 1


def test_an_overdue_meeting_action_alert_is_in_the_audit_trail(users, meeting, api_for):  # noqa: F811
    action = action_of(meeting)
    end = timezone.make_aware(dt.datetime.combine(action.due_date + dt.timedelta(days=1), dt.time()))
    assert ka.sweep_meeting_actions(now=end) == 1
    (entry, *_rest) = _entries(api_for("auditor"), object_type="keyaccounts.meetingaction", object_id=str(action.pk))
    assert (entry["actor_name"], entry["changes"]) == ("system", {"overdue_notified_at": [None, end.isoformat()]})


def test_an_sla_warning_the_sweep_stamps_is_in_the_audit_trail(users, xiehe, api_for):  # noqa: F811
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(users["manager"], {
        "subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "assignee": users["agent"], "priority": "urgent",
    })  # fmt: skip
    clock = ticket.clocks.get(kind="first_response")
    counts = desk.sweep(now=clock.warn_at + dt.timedelta(minutes=1))
    assert counts["warned"] >= 1
    entries = [e for e in _entries(api_for("auditor"), object_type="servicedesk.slaclock") if "warnings" in e["extra"]]
    assert entries and entries[0]["actor_name"] == "worker"
    assert {"ticket": ticket.number, "clock": "first_response"}.items() <= entries[0]["extra"]["warnings"][0].items()


def test_a_safety_clock_warning_is_in_the_audit_trail(users, xiehe, api_for):  # noqa: F811
    from pharmacrm.safety import services as safety
    from pharmacrm.safety.models import Flag, SafetyClock
    from tests.safety.test_reconciliation import ticket

    flagged = ticket(users, xiehe, "患者服药后头晕、恶心，来电咨询", days_ago=1 / 24)
    clock = SafetyClock.objects.get(flag=Flag.objects.get(ticket=flagged), kind="handoff")
    assert safety.sweep(now=clock.warn_at)["warned"] == 1
    entries = [e for e in _entries(api_for("auditor"), object_type="safety.safetyclock") if "warned" in e["extra"]]
    assert entries and entries[0]["actor_name"] == "worker"
    assert entries[0]["extra"]["warned"] == [
        {"clock": clock.pk, "due_at": clock.due_at.isoformat(), "kind": "handoff"}
    ]


def test_an_agreements_renewal_reminder_is_in_the_audit_trail(users, xiehe, with_plan, settings, tmp_path,  # noqa: F811
                                                               api_for):  # noqa: F811  # fmt: skip
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.keyaccounts.programme_fixtures import tiny_pdf

    settings.VAR_DIR = tmp_path
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    agreement = ka.generate_agreement(users["kam"], account, start_date=today - dt.timedelta(days=300),
                                      end_date=today + dt.timedelta(days=30))  # fmt: skip
    ka.record_signed(users["kam"], agreement, signed_date=today,
                     upload=SimpleUploadedFile("s.pdf", tiny_pdf(), content_type="application/pdf"))  # fmt: skip
    later = timezone.now() + dt.timedelta(days=1)
    assert ka.sweep_agreements(now=later) == 1
    (entry, *_rest) = _entries(api_for("auditor"), object_type="keyaccounts.agreement", object_id=str(agreement.pk))
    assert (entry["actor_name"], entry["changes"]) == ("system", {"renewal_notified_at": [None, later.isoformat()]})
