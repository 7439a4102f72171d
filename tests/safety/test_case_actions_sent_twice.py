"""The case page's actions clicked twice (a double click, Back and send): the day-0 correction answered the second
time "This is day 0 already" (400), the quality investigation "someone else changed this case" (409), and a
submission refused its one-time code as used; each now acts once and the second answer is the first's. A colleague's
change in between — even to what this form asks for — and a form without its version are still stale."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry, Signature
from pharmacrm.core.roles import Role
from pharmacrm.safety import services
from pharmacrm.safety.models import Capa, QualityComplaint, SafetyCase, Submission

from .conftest import sign_code

pytestmark = pytest.mark.django_db


def _said(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _updates(case, key: str) -> int:
    """The case's audit entries that changed `key` (a field, or the quality complaint's `quality`)."""
    return AuditEntry.objects.filter(Q(changes__has_key=key) | Q(extra__has_key=key), object_type="safety.safetycase",
                                     object_id=str(case.pk), action="update").count()  # fmt: skip


def _day_0_form(case, user, days_earlier: int = 1) -> dict:
    new = timezone.localtime(case.received_at - dt.timedelta(days=days_earlier)).replace(second=0, microsecond=0)
    return {"received_at": new.strftime("%Y-%m-%dT%H:%M"), "reason": "录入错误", "otp_code": sign_code(user),
            "version": case.version}  # fmt: skip


def test_day_0_corrected_twice_is_corrected_once_and_the_second_answer_says_so(web, users, make_case):
    case = make_case(received_at=timezone.now() - dt.timedelta(days=3))
    pv = web("pv")
    url = reverse("safety:case-day-zero", args=[case.pk])
    sent = _day_0_form(case, users["pv"])

    first = pv.post(url, sent, follow=True)
    again = pv.post(url, sent, follow=True)  # a double click: the same form, its code used by the first

    case.refresh_from_db()
    shown = f"Day 0 of {case.number} is now {sent['received_at'].replace('T', ' ')}; its clocks were counted again."
    assert first.status_code == again.status_code == 200
    assert _said(first) == _said(again) == [shown]
    assert case.version == sent["version"] + 1 and _updates(case, "received_at") == 1
    assert Signature.objects.filter(object_type="safety.safetycase", object_id=str(case.pk)).count() == 1


def test_a_day_0_correction_from_a_page_loaded_before_a_colleagues_is_refused(web, users, make_case, make_user):
    case = make_case(received_at=timezone.now() - dt.timedelta(days=3))
    sent = _day_0_form(case, users["pv"])
    colleague = make_user("pv2", Role.PV)
    # the colleague corrects day 0 to the very same moment: one version on, but not this officer's doing
    services.correct_day_0(colleague, case, received_at=sent["received_at"], reason="录入错误",
                           otp_code=sign_code(colleague), version=case.version)  # fmt: skip

    stale = web("pv").post(reverse("safety:case-day-zero", args=[case.pk]), sent)

    assert stale.status_code == 409 and "Someone else changed this case" in stale.content.decode()
    assert _updates(case, "received_at") == 1


def _quality(case) -> dict:
    return {"batch": "B20260901", "defect": "瓶内有异物", "investigation_outcome": "灌装线滤网破损",
            "recall_decision": "none", "version": case.version}  # fmt: skip


def test_the_quality_investigation_sent_twice_is_saved_once_and_the_second_answer_says_so(web, make_case):
    case = make_case(kind="quality", reactions=[])
    pv = web("pv")
    url = reverse("safety:case-quality", args=[case.pk])
    sent = _quality(case)

    first = pv.post(url, sent, follow=True)
    again = pv.post(url, sent, follow=True)  # a double click

    case.refresh_from_db()
    assert first.status_code == again.status_code == 200
    assert _said(first) == _said(again) == ["The quality investigation was saved."]
    assert case.version == sent["version"] + 1 and _updates(case, "quality") == 1
    assert "灌装线滤网破损" in again.content.decode()  # the page shows what the first sending saved


def test_a_stale_quality_investigation_or_one_without_its_version_is_refused(web, make_case, make_user):
    case = make_case(kind="quality", reactions=[])
    sent = _quality(case)
    colleague = make_user("pv2", Role.PV)
    services.update_quality(colleague, case, {k: v for k, v in sent.items() if k != "version"}, version=case.version)
    pv = web("pv")
    url = reverse("safety:case-quality", args=[case.pk])

    stale = pv.post(url, sent)  # the same values, from the page loaded before the colleague saved them
    without = pv.post(url, {**{k: v for k, v in sent.items() if k != "version"}, "root_cause": "设备老化"})

    assert stale.status_code == without.status_code == 409
    assert QualityComplaint.objects.get(case=case).root_cause == "" and _updates(case, "quality") == 1


def test_a_capa_update_from_a_page_loaded_before_a_colleagues_same_update_is_refused(web, users, make_case,
                                                                                     make_user):  # fmt: skip
    """The update sent twice is saved once (test_case_pages); a colleague's update in between is a conflict even
    when it set what this form asks for — it was answered 'updated' as if this officer had made it."""
    case = make_case(kind="quality", reactions=[])
    capa = services.add_capa(users["pv"], case, {"action": "更换滤网", "owner": users["pv"],
                                                 "due_date": timezone.localdate() + dt.timedelta(days=30)})  # fmt: skip
    services.update_capa(make_user("pv2", Role.PV), capa, {"status": "done"}, version=capa.version)

    stale = web("pv").post(reverse("safety:case-capa-update", args=[case.pk, capa.pk]),
                           {f"capa{capa.pk}-status": "done", f"capa{capa.pk}-version": 1})  # fmt: skip

    assert stale.status_code == 409 and Capa.objects.get(pk=capa.pk).version == 2


def test_a_close_from_a_page_loaded_before_a_colleague_closed_the_case_is_refused(web, make_case, make_user):
    case = make_case()
    loaded = case.version
    services.set_status(make_user("pv2", Role.PV), case, "closed", reason="报告者失联", version=loaded)

    stale = web("pv").post(reverse("safety:case-status", args=[case.pk]),
                           {"status": "closed", "reason": "报告者失联", "version": loaded})  # fmt: skip

    assert stale.status_code == 409 and _updates(case, "status") == 1


def _submission(user) -> dict:
    return {"jurisdiction": "CN", "kind": "report", "channel": "nmpa", "message_id": "MSG-0001",
            "submitted_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"), "otp_code": sign_code(user)}  # fmt: skip


def _token(page: str) -> str:
    import re

    return re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', page.split('id="submission"', 1)[1]).group(1)


def test_a_submission_sent_twice_is_recorded_once_and_the_second_answer_shows_it(web, users, make_case):
    case = make_case()
    pv = web("pv")
    page = pv.get(reverse("safety:case", args=[case.pk])).content.decode()
    sent = {**_submission(users["pv"]), "form_token": _token(page)}
    url = reverse("safety:case-submission", args=[case.pk])

    first = pv.post(url, sent, follow=True)
    again = pv.post(url, sent, follow=True)  # a double click: its one-time code used by the first

    assert _said(first) == [f"The submission of {case.number} was recorded."]
    assert _said(again) == ["This form was already sent: the record was created then, and not a second time."]
    assert again.redirect_chain[-1][0].endswith("#submissions") and "MSG-0001" in again.content.decode()
    assert Submission.objects.filter(case=case).count() == 1
    assert SafetyCase.objects.get(pk=case.pk).status == "submitted"


def test_a_submission_refused_keeps_its_token_for_the_corrected_form(web, users, make_case):
    case = make_case()
    pv = web("pv")
    page = pv.get(reverse("safety:case", args=[case.pk])).content.decode()
    sent = {**_submission(users["pv"]), "form_token": _token(page)}
    url = reverse("safety:case-submission", args=[case.pk])

    before_day_0 = timezone.localtime(case.received_at - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    wrong = pv.post(url, {**sent, "submitted_at": before_day_0})  # refused: the token is not spent
    right = pv.post(url, sent, follow=True)

    assert wrong.status_code == 400 and _said(right) == [f"The submission of {case.number} was recorded."]
    assert Submission.objects.filter(case=case).count() == 1
