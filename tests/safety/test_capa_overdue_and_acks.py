"""A CAPA action still open after its due date is told to its owner and their manager once, by the worker's
sweep; a done action, or one not yet due, is not. Before, the owner heard of it only when it was created.
And a regulator's rejection that arrives after the case was nullified leaves it nullified."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.notify.models import Notification
from pharmacrm.safety import services, tasks
from pharmacrm.safety.models import Capa

pytestmark = pytest.mark.django_db


@pytest.fixture
def case(users):
    return services.create_case(users["pv"], {"kind": "quality", "reporter_name": "药剂科", "quality": {"defect": "片剂变色"}})


def _capa(users, case, action, days_overdue):
    capa = services.add_capa(users["pv"], case, {"action": action, "owner": users["pv"],
                                                 "due_date": timezone.localdate() + dt.timedelta(days=30)})  # fmt: skip
    Capa.objects.filter(pk=capa.pk).update(due_date=timezone.localdate() - dt.timedelta(days=days_overdue))
    return capa


def test_an_overdue_capa_is_told_once_to_its_owner(users, case):
    late = _capa(users, case, "加强运输温控", 3)
    _capa(users, case, "更换包装供应商", -5)  # due in five days
    done = _capa(users, case, "复核留样", 10)
    services.update_capa(users["pv"], done, {"status": "done"})
    before = Notification.objects.filter(kind="safety.capa-overdue").count()

    result = tasks.sweep_safety_clocks.call_local()

    assert result["capas"] == 1
    notes = Notification.objects.filter(kind="safety.capa-overdue")
    assert notes.count() - before >= 1
    mine = notes.get(recipient=users["pv"])
    late.refresh_from_db()
    assert case.number in mine.title and late.due_date.isoformat() in mine.title
    assert late.overdue_notified_at is not None
    assert "#capa" in mine.url
    assert AuditEntry.objects.filter(object_type="safety.capa", actor_name="worker").exists()
    assert tasks.sweep_safety_clocks.call_local()["capas"] == 0  # told once
    assert Notification.objects.filter(kind="safety.capa-overdue").count() == notes.count()


def test_a_rejection_arriving_after_the_case_was_nullified_leaves_it_nullified(make_case, users):
    """The regulator's rejection used to set even a nullified (withdrawn as invalid) case back to "being
    assessed", with its reporting clock running again for a report nobody owes."""
    from pharmacrm.safety.models import SafetyClock

    from .conftest import sign_code

    pv = users["pv"]
    case = make_case()
    sub = services.record_submission(pv, case, {"channel": "nmpa", "message_id": "B-9"}, otp_code=sign_code(pv))
    case.refresh_from_db()
    services.set_status(pv, case, "nullified", reason="重复报告，已并入另一病例", version=case.version)
    services.record_ack(pv, sub, accepted=False, errors=["E.i.2.1b: invalid code"], ack_message_id="ACK-9")
    case.refresh_from_db()
    sub.refresh_from_db()
    assert case.status == "nullified" and sub.ack_status == "rejected"
    assert SafetyClock.objects.get(case=case, kind="report").met_at is not None
    assert Notification.objects.filter(recipient=pv, kind="safety.ack-rejected").exists()
