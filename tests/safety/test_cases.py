"""Safety cases through the services: validity, regulatory clocks per jurisdiction, follow-ups with their
own clocks, submissions with an electronic signature, acknowledgements, quality complaints, the worker."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from pharmacrm.core.models import AuditEntry, Signature
from pharmacrm.notify.models import Notification
from pharmacrm.safety import services
from pharmacrm.safety.models import CaseTask, ReportingRule, SafetyCase, SafetyClock, Submission
from tests.concurrency import held_while

from .conftest import next_code, sign_code

pytestmark = pytest.mark.django_db


def clocks(case, kind="report"):
    return {c.rule.code: c for c in SafetyClock.objects.filter(case=case, kind__in=[kind]).select_related("rule")}


def test_a_valid_case_needs_the_four_minimum_criteria(make_case, users):
    case = make_case(patient_name="", patient_sex="", patient_age="", drugs=[])
    assert not case.valid
    assert case.missing == ["patient", "product"]
    task = CaseTask.objects.get(case=case, done_at__isnull=True)
    assert "patient" in task.details["missing"] and task.due_date > timezone.localdate()
    case = services.update_case(users["pv"], case, {"patient_sex": "1", "drugs": [{"brand_name": "罗氏芬"}]},
                                version=case.version)  # fmt: skip
    assert case.valid and case.missing == []
    assert CaseTask.objects.get(pk=task.pk).done_at is not None


def test_day_zero_is_when_the_company_heard_of_it_and_clocks_count_from_there(make_case):
    heard = timezone.now() - dt.timedelta(days=3)
    case = make_case(received_at=heard)  # non-serious, expected: China's "other" rule, 30 days
    assert case.received_at == heard
    assert set(clocks(case)) == {"CN-OTHER"}
    assert clocks(case)["CN-OTHER"].due_at == services.day_deadline(heard, 30)  # the end of day 30


def test_china_rules_serious_and_fatal(make_case):
    serious = make_case(reactions=[{"verbatim": "过敏性休克", "life_threatening": True}])
    assert serious.serious and set(clocks(serious)) == {"CN-NEW-SERIOUS"}
    new = make_case(expectedness="unexpected")
    assert set(clocks(new)) == {"CN-OTHER"}  # new (unexpected) but not serious: 30 days (GVP 2021 art. 135)
    fatal = make_case(reactions=[{"verbatim": "死亡", "death": True, "outcome": "5"}])
    assert fatal.fatal
    assert set(clocks(fatal)) == {"CN-DEATH"}
    assert clocks(fatal)["CN-DEATH"].due_at - fatal.received_at == dt.timedelta(hours=24)
    investigation = clocks(fatal, "investigation")
    assert investigation["CN-DEATH-INVESTIGATION"].due_at == services.day_deadline(fatal.received_at, 15)


def test_fda_and_eu_rules_apply_once_switched_on(make_case):
    ReportingRule.objects.filter(jurisdiction__in=["US", "EU"]).update(active=True)
    other = make_case()
    assert set(clocks(other)) == {"CN-OTHER", "EU-NON-SERIOUS"}
    assert clocks(other)["EU-NON-SERIOUS"].due_at == services.day_deadline(other.received_at, 90)
    serious_unexpected = make_case(expectedness="unexpected", reactions=[{"verbatim": "肝衰竭", "hospitalisation": True}])
    assert set(clocks(serious_unexpected)) == {"CN-NEW-SERIOUS", "US-15DAY", "EU-SERIOUS"}


def test_a_report_to_the_fda_alone_does_not_make_a_case_owing_the_nmpa_report_submitted(make_case, users):
    """The company reports to the FDA too: the serious unexpected case went to the FDA first and was marked
    'submitted' — the case list's 'submitted' filter and the case page said it was done while the NMPA report was
    still owed."""
    ReportingRule.objects.filter(code="US-15DAY").update(active=True)
    pv = users["pv"]
    sign_code(pv)
    case = make_case(expectedness="unexpected", reactions=[{"verbatim": "肝衰竭", "hospitalisation": True}])
    services.record_submission(pv, case, {"channel": "fda_esg", "jurisdiction": "US"}, otp_code=sign_code(pv))
    case.refresh_from_db()
    assert case.status == "new"
    services.record_submission(pv, case, {"channel": "nmpa", "jurisdiction": "CN"}, otp_code=next_code(pv))
    case.refresh_from_db()
    assert case.status == "submitted"


def test_a_case_found_serious_later_gets_the_shorter_clock(make_case, users):
    case = make_case()
    assert set(clocks(case)) == {"CN-OTHER"}
    case = services.update_case(
        users["pv"], case, {"reactions": [{"verbatim": "皮疹", "hospitalisation": True}]}, version=case.version
    )
    assert set(clocks(case)) == {"CN-NEW-SERIOUS"}
    assert clocks(case)["CN-NEW-SERIOUS"].due_at == services.day_deadline(case.received_at, 15)


def test_a_follow_up_is_a_version_with_its_own_clock(make_case, users):
    case = make_case(received_at=timezone.now() - dt.timedelta(days=10))
    received = timezone.now() - dt.timedelta(days=1)
    follow = services.add_follow_up(
        users["pv"], case, {"reactions": [{"verbatim": "皮疹", "hospitalisation": True}]}, received_at=received,
        summary="医院回电：已住院",
    )  # fmt: skip
    assert follow.sequence == 1 and follow.changes == ["reactions"]
    case.refresh_from_db()
    assert case.latest_received_at == received and case.serious
    by_version = {(c.case_version.sequence, c.rule.code): c for c in SafetyClock.objects.filter(case=case)}
    assert by_version[(1, "CN-NEW-SERIOUS")].due_at == services.day_deadline(received, 15)
    # the initial report keeps the clock of what was known then; the seriousness is new information
    assert set(by_version) == {(0, "CN-OTHER"), (1, "CN-NEW-SERIOUS")}
    with pytest.raises(ValidationError) as error:
        services.add_follow_up(users["pv"], case, {}, received_at=received)
    assert "summary" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        services.add_follow_up(users["pv"], case, {"narrative": "x"}, received_at=case.received_at - dt.timedelta(days=1))
    assert "received_at" in error.value.message_dict


def test_a_follow_up_of_a_death_already_told_is_due_as_serious_not_in_24_hours(make_case, users):
    """NMPA: a death is reported at once (24 hours); the follow-up of that death (the autopsy, the hospital's records)
    is significant new information of a serious case, due in 15 days from its receipt — it does not start the death
    clock again. A follow-up that first tells of the death does."""
    pv = users["pv"]
    fatal = [{"verbatim": "过敏性休克后死亡", "outcome": "5", "death": True}]
    case = make_case(reactions=fatal, received_at=timezone.now() - dt.timedelta(days=3))
    autopsy_at = timezone.now() - dt.timedelta(hours=2)
    autopsy = services.add_follow_up(pv, case, {}, received_at=autopsy_at, summary="尸检报告：过敏性休克")
    due = {c.rule.code: c.due_at for c in SafetyClock.objects.filter(case_version=autopsy, kind="report")}
    assert due == {"CN-NEW-SERIOUS": services.day_deadline(autopsy_at, 15)}
    assert SafetyClock.objects.filter(case=case, rule__code="CN-DEATH").count() == 1  # the initial report's

    case = make_case(received_at=timezone.now() - dt.timedelta(days=3))  # a rash: the patient died since
    died_at = timezone.now() - dt.timedelta(hours=2)
    death = services.add_follow_up(pv, case, {"reactions": fatal}, received_at=died_at, summary="家属来电：患者已死亡")
    due = {c.rule.code: c.due_at for c in SafetyClock.objects.filter(case_version=death, kind="report")}
    assert due == {"CN-DEATH": died_at + dt.timedelta(hours=24)}


def test_bad_input_is_refused_per_field_and_nothing_is_written(users):
    before = SafetyCase.objects.count()
    with pytest.raises(ValidationError) as error:
        services.create_case(users["pv"], {
            "kind": "adverse_reaction", "patient_sex": "X", "patient_weight_kg": "-3", "patient_birth_date": "2099-01-01",
            "received_at": timezone.now() + dt.timedelta(days=2), "reactions": [{"verbatim": ""}],
            "drugs": [{"brand_name": "A", "start_date": "2026-05-02", "stop_date": "2026-05-01"}],
        })  # fmt: skip
    fields = error.value.message_dict
    assert {"patient_sex", "patient_weight_kg", "patient_birth_date", "received_at", "reactions[0].verbatim",
            "drugs[0].stop_date"} <= set(fields)  # fmt: skip
    assert SafetyCase.objects.count() == before


def test_only_pv_handles_cases(users, make_case):
    for role in ("agent", "manager", "admin", "auditor", "rep"):
        with pytest.raises(Exception) as error:
            services.create_case(users[role], {"kind": "adverse_reaction"})
        assert error.type.__name__ == "PermissionDenied"


def test_patient_identity_is_encrypted_at_rest(make_case):
    case = make_case(patient_name="欧阳娜娜", reporter_contact="13912345678")
    with connection.cursor() as cursor:
        cursor.execute("SELECT patient_name, reporter_contact, narrative FROM safety_safetycase WHERE id = %s", [case.pk])
        row = cursor.fetchone()
    assert all(value.startswith("e1:") for value in row)
    assert "欧阳娜娜" not in "".join(row) and "13912345678" not in "".join(row)
    assert SafetyCase.objects.get(pk=case.pk).patient_name == "欧阳娜娜"
    entry = AuditEntry.objects.filter(object_id=str(case.pk), object_type="safety.safetycase").first()
    assert "欧阳娜娜" not in str(entry.changes) + str(entry.extra)


def test_version_conflict_between_two_editors(make_case, users):
    case = make_case()
    stale = case.version
    services.update_case(users["pv"], case, {"narrative": "第一位编辑"}, version=stale)
    with pytest.raises(Exception) as error:
        services.update_case(users["pv"], case, {"narrative": "第二位编辑"}, version=stale)
    assert error.type.__name__ == "ConflictError"
    assert SafetyCase.objects.get(pk=case.pk).narrative == "第一位编辑"


# --- submissions ----------------------------------------------------------------------------------------


def test_a_submission_needs_the_officers_signature(make_case, users):
    pv = users["pv"]
    sign_code(pv)  # the device exists
    case = make_case()
    with pytest.raises(ValidationError) as error:
        services.record_submission(pv, case, {"channel": "nmpa"}, otp_code="000000")
    assert "otp_code" in error.value.message_dict
    assert not Submission.objects.filter(case=case).exists()
    # the failed attempt is audited and throttled although nothing was written
    assert AuditEntry.objects.filter(action="login_failed", actor=pv, object_id=str(case.pk)).exists()
    time.sleep(1.1)  # django-otp's back-off after one wrong code
    sub = services.record_submission(pv, case, {"channel": "nmpa", "message_id": "B-1"}, otp_code=sign_code(pv))
    assert sub.signature.user == pv and sub.signature.meaning == "approved_for_submission"
    assert not sub.late
    case.refresh_from_db()
    assert case.status == "submitted"
    assert all(c.met_at for c in SafetyClock.objects.filter(case=case, kind="report"))
    assert Signature.objects.filter(object_id=str(case.pk)).count() == 1
    assert AuditEntry.objects.filter(action="sign", object_id=str(case.pk)).exists()


def test_a_late_submission_is_marked_with_the_delay_and_needs_a_reason(make_case, users):
    pv = users["pv"]
    sign_code(pv)
    # day 0 is 33 days ago (local noon, whatever the hour the test runs at): due by the end of day 30, late on day 3
    day = timezone.localdate() - dt.timedelta(days=33)
    case = make_case(received_at=timezone.make_aware(dt.datetime.combine(day, dt.time(12))))
    with pytest.raises(ValidationError) as error:
        services.record_submission(pv, case, {"channel": "nmpa"}, otp_code=sign_code(pv))
    assert "late_reason" in error.value.message_dict and "3" in error.value.message_dict["late_reason"][0]
    sub = services.record_submission(pv, case, {"channel": "nmpa", "late_reason": "医院资料延迟"}, otp_code=next_code(pv))
    assert sub.late and sub.delay_days == 3 and sub.late_reason == "医院资料延迟"


def test_an_invalid_case_cannot_be_reported(make_case, users):
    pv = users["pv"]
    sign_code(pv)
    case = make_case(reporter_name="", reporter_contact="", reporter_institution="", reporter_qualification="")
    with pytest.raises(ValidationError) as error:
        services.record_submission(pv, case, {"channel": "nmpa"}, otp_code=sign_code(pv))
    assert "可识别的报告者" in error.value.message_dict["case"][0]  # the criterion, in the reader's language


def test_a_negative_acknowledgement_reopens_the_case_and_its_clock(make_case, users):
    pv, manager = users["pv"], users["manager"]
    sign_code(pv)
    case = make_case()
    sub = services.record_submission(pv, case, {"channel": "nmpa", "message_id": "B-2"}, otp_code=sign_code(pv))
    services.record_ack(pv, sub, accepted=False, errors=["E.i.2.1b: invalid code"], ack_message_id="ACK-1")
    case.refresh_from_db()
    sub.refresh_from_db()
    assert sub.ack_status == "rejected" and sub.ack_errors == ["E.i.2.1b: invalid code"]
    assert case.status == "assessing"
    clock = SafetyClock.objects.get(case=case, kind="report")
    assert clock.met_at is None and clock.next_check_at is not None
    note = Notification.objects.get(recipient=pv, kind="safety.ack-rejected")
    assert case.number in note.title
    assert Notification.objects.filter(recipient=manager, kind="safety.ack-rejected").exists()
    again = services.record_ack(pv, sub, accepted=False, errors=["x"], ack_message_id="ACK-1")
    assert again.ack_errors == ["E.i.2.1b: invalid code"]  # the same acknowledgement twice changes nothing


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_rejection_acknowledged_while_an_officer_edits_the_case_bumps_its_version(make_case, users):
    """The officer saves a correction while the regulator's rejection is imported: the acknowledgement read the
    case before the officer's save committed and wrote the same version number over it, so a page still showing
    the officer's version could save over the reopened case. Now the acknowledgement waits for the officer's
    save and moves the case to a version of its own: an edit made on the older page is refused as a conflict."""
    pv = users["pv"]
    sign_code(pv)
    case = make_case()
    sub = services.record_submission(
        pv, case, {"channel": "nmpa", "message_id": "B-3"}, otp_code=sign_code(pv)
    )
    case.refresh_from_db()
    seen: list[int] = []

    def officer():
        saved = services.update_case(pv, SafetyCase.objects.get(pk=case.pk), {"narrative": "补充：皮疹已消退。"},
                                     version=case.version)  # fmt: skip
        seen.append(saved.version)

    def acknowledge():
        services.record_ack(pv, Submission.objects.get(pk=sub.pk), accepted=False, errors=["E.i.2.1b: invalid"],
                            ack_message_id="ACK-3")  # fmt: skip

    held_while(officer, acknowledge)
    case.refresh_from_db()
    assert case.status == "assessing" and case.narrative == "补充：皮疹已消退。"
    assert case.version == seen[0] + 1  # the officer's save and the acknowledgement: one version each
    with pytest.raises(Exception) as error:  # the officer's page still shows the version of their own save
        services.update_case(pv, case, {"narrative": "再次修改"}, version=seen[0])
    assert error.type.__name__ == "ConflictError"


# --- the worker ----------------------------------------------------------------------------------------------


def test_due_soon_and_overdue_notify_pv_and_their_manager_once(make_case, users):
    pv, manager = users["pv"], users["manager"]
    case = make_case(received_at=timezone.now() - dt.timedelta(days=25))  # 30 days: due soon after 22.5
    counts = services.sweep()
    assert counts["warned"] == 1 and counts["breached"] == 0
    assert Notification.objects.filter(recipient=pv, kind="safety.due-soon").count() == 1
    assert Notification.objects.filter(recipient=manager, kind="safety.due-soon").count() == 1
    assert services.sweep()["clocks"] == 0  # nothing twice
    later = timezone.now() + dt.timedelta(days=6)
    counts = services.sweep(now=later)
    assert counts["breached"] == 1
    assert Notification.objects.filter(recipient=pv, kind="safety.overdue", title__contains=case.number).count() == 1
    clock = SafetyClock.objects.get(case=case)
    assert clock.breached_at == clock.due_at and clock.next_check_at is None
    assert services.sweep(now=later + dt.timedelta(days=1))["clocks"] == 0


def test_the_due_list_is_earliest_first_and_leaves_out_met_clocks(make_case, users):
    pv = users["pv"]
    sign_code(pv)
    late = make_case(received_at=timezone.now() - dt.timedelta(days=20))
    soon = make_case(received_at=timezone.now() - dt.timedelta(days=1), reactions=[{"verbatim": "x", "death": True}])
    done = make_case(received_at=timezone.now() - dt.timedelta(days=25))
    services.record_submission(pv, done, {"channel": "nmpa"}, otp_code=sign_code(pv))
    listed = [c.case.number for c in services.due_clocks()]
    assert listed[0] == soon.number  # 24 hours
    assert late.number in listed and done.number not in listed


# --- quality complaints ------------------------------------------------------------------------------------


def test_a_quality_complaint_closes_only_with_batch_outcome_and_recall_decision(users):
    pv = users["pv"]
    case = services.create_case(pv, {"kind": "quality", "reporter_name": "药剂科", "quality": {"defect": "片剂变色"}})
    assert case.number.startswith("QC-")
    assert not SafetyClock.objects.filter(case=case).exists()  # no reaction: QA's, not the ADR system's
    with pytest.raises(ValidationError) as error:
        services.set_status(pv, case, "closed")
    assert {"batch", "investigation_outcome", "recall_decision"} <= set(error.value.message_dict)
    with pytest.raises(ValidationError) as error:
        services.update_quality(pv, case, {"recall_decision": "class_2"})
    assert "recall_reason" in error.value.message_dict
    services.update_quality(pv, case, {"batch": "B1", "investigation_outcome": "留样合格", "recall_decision": "none",
                                       "qa_owner": pv})  # fmt: skip
    assert CaseTask.objects.filter(case=case, kind="qa_handoff").exists()
    capa = services.add_capa(pv, case, {"action": "加强运输温控", "owner": pv, "due_date": "2026-12-31"})
    with pytest.raises(ValidationError):
        services.update_capa(pv, capa, {"status": "effective"})  # the check must be described
    services.update_capa(pv, capa, {"status": "effective", "effectiveness_check": "连续三批无同类投诉"})
    closed = services.set_status(pv, case, "closed")
    assert closed.status == "closed"


def test_nullify_and_reopen_need_a_reason(make_case, users):
    pv = users["pv"]
    case = make_case()
    with pytest.raises(ValidationError):
        services.set_status(pv, case, "nullified")
    case = services.set_status(pv, case, "nullified", reason="重复病例")
    clock = SafetyClock.objects.get(case=case)
    assert clock.met_at is None and clock.stopped_at is not None and clock.next_check_at is None  # not reported
    assert case.number not in [c.case.number for c in services.due_clocks()]
    with pytest.raises(ValidationError):
        services.set_status(pv, case, "assessing")
    assert services.set_status(pv, case, "assessing", reason="非重复").status == "assessing"
    clock.refresh_from_db()
    assert clock.stopped_at is None and clock.next_check_at is not None  # the obligation is back
    assert case.number in [c.case.number for c in services.due_clocks()]


def test_a_follow_up_reopens_a_closed_case_only_with_a_reason(make_case, users):
    pv = users["pv"]
    case = services.set_status(pv, make_case(), "closed", reason="报告者失联")
    with pytest.raises(ValidationError) as error:  # new information, but no word on why the case opens again
        services.add_follow_up(pv, case, {"narrative": "患者家属来电补充：皮疹复发"}, received_at=timezone.now())
    assert "summary" in error.value.message_dict
    case.refresh_from_db()
    assert case.status == "closed" and case.versions.count() == 1
    follow = services.add_follow_up(pv, case, {"narrative": "患者家属来电补充：皮疹复发"}, received_at=timezone.now(),
                                    summary="家属来电：停药后皮疹复发")  # fmt: skip
    case.refresh_from_db()
    assert case.status == "assessing" and follow.summary == "家属来电：停药后皮疹复发"  # in the versions on its page
    entry = AuditEntry.objects.filter(object_type="safety.safetycase", object_id=str(case.pk)).order_by("-id").first()
    assert entry.changes["status"] == ["closed", "assessing"] and entry.extra["reason"] == "家属来电：停药后皮疹复发"


def test_submitted_is_reached_only_through_a_signed_submission(make_case, users):
    case = make_case()
    with pytest.raises(ValidationError):
        services.set_status(users["pv"], case, "submitted")


def test_a_nullified_case_is_neither_submitted_nor_exported(make_case, users):
    pv = users["pv"]
    sign_code(pv)
    case = services.set_status(pv, make_case(), "nullified", reason="重复")
    with pytest.raises(ValidationError) as error:
        services.record_submission(pv, case, {"channel": "nmpa"}, otp_code=sign_code(pv))
    assert "status" in error.value.message_dict
    with pytest.raises(ValidationError):
        services.export_icsr(pv, [case], otp_code=sign_code(pv))
    assert SafetyCase.objects.get(pk=case.pk).status == "nullified"


def test_a_reaction_first_told_in_a_later_note_has_that_day_as_day_0(users, xiehe):
    from pharmacrm.safety.models import Flag
    from pharmacrm.servicedesk import conversation

    opened = timezone.now() - dt.timedelta(days=20)
    ticket = _ticket(users, xiehe, "咨询发票事宜。", received_at=opened)
    assert not Flag.objects.filter(ticket=ticket).exists()
    conversation.post_message(users["agent"], ticket, kind="note", body="客户今天来电说患者出现严重皮疹，已住院。")
    flag = Flag.objects.get(ticket=ticket)
    assert flag.received_at > opened + dt.timedelta(days=19)
    handoff = SafetyClock.objects.get(flag=flag)
    assert handoff.due_at > timezone.now()  # not overdue the moment it is raised
    case = services.confirm_flag(users["pv"], flag)
    assert case.received_at == flag.received_at


def test_an_interactions_time_is_frozen_once_flagged(users, xiehe):
    from pharmacrm.engagement import services as engagement

    heard = timezone.now() - dt.timedelta(days=10)
    interaction = engagement.record_interaction(users["rep"], {
        "institution": xiehe, "channel": "visit", "received_at": heard, "subject": "拜访",
        "notes": "主任说两位患者用药后出现皮疹。",
    })  # fmt: skip
    with pytest.raises(ValidationError) as error:
        engagement.update_interaction(users["rep"], interaction, {"received_at": timezone.now()})
    assert "received_at" in error.value.message_dict


def test_the_flag_excerpt_is_not_shown_to_the_overseeing_roles(users, xiehe, client_for):
    from rest_framework.test import APIClient

    _ticket(users, xiehe, "患者王小明输液后皮疹。")
    for role, visible in (("pv", True), ("manager", False), ("auditor", False)):
        api = APIClient()
        api.force_authenticate(users[role])
        rows = api.get("/api/v1/safety/flags/").json()["results"]
        assert rows and all(("excerpt" in r) == visible for r in rows), role


# --- the net on tickets ----------------------------------------------------------------------------------


def _ticket(users, xiehe, description, *, category="drug_info", received_at=None, safety_relevant=False):
    from pharmacrm.servicedesk import services as desk

    return desk.create_ticket(users["agent"], {
        "subject": "来电咨询", "description": description, "channel": "phone", "category": category,
        "institution": xiehe, "caller_name": "张医生", "received_at": received_at or timezone.now(),
        "safety_relevant": safety_relevant,
    })  # fmt: skip


def test_a_reaction_mentioned_on_a_ticket_reaches_pv_and_day_0_is_the_call(users, xiehe):
    from pharmacrm.safety.models import Flag

    called = timezone.now() - dt.timedelta(hours=30)
    ticket = _ticket(users, xiehe, "患者输液后出现皮疹和呼吸困难，已送急诊。", received_at=called)
    flag = Flag.objects.get(ticket=ticket, status="pending")
    assert "皮疹" in flag.terms and flag.kind == "adverse_reaction" and not flag.by_agent
    handoff = SafetyClock.objects.get(flag=flag, kind="handoff")
    assert handoff.started_at == called and handoff.due_at > called  # one working day on the China calendar
    case = services.confirm_flag(users["pv"], flag)
    assert case.received_at == called and case.source_ticket == ticket
    assert case.reporter_institution == xiehe.name
    assert SafetyClock.objects.get(pk=handoff.pk).met_at is not None
    assert list(ticket.safety_cases.all()) == [case]


@pytest.mark.parametrize("title, role, qualification", [
    ("主任药师", "pharmacist", "2"),  # the chief pharmacist was taken for a physician: 主任 matched first
    ("副主任藥師", "doctor", "2"),  # a title in Traditional characters (and the default role) was no pharmacist
    ("药剂师", "other", "2"),
    ("主治醫師", "other", "1"),
    ("药剂科主任", "pharmacist", "2"),
    ("", "doctor", "1"),
])  # fmt: skip
def test_a_case_from_a_ticket_takes_the_reporters_profession_from_their_title(users, xiehe, title, role, qualification):
    """C.2.r.4 and the 报告表's 报告人职业: a hospital's 主任药师 reporting a reaction went out as a physician."""
    from pharmacrm.customers.models import Person
    from pharmacrm.servicedesk import services as desk

    person = Person.objects.get(name="张伟")
    Person.objects.filter(pk=person.pk).update(title=title, role=role)
    ticket = desk.create_ticket(users["agent"], {
        "subject": "用药后皮疹", "description": "患者用药后出现皮疹。", "channel": "phone", "category": "drug_info",
        "institution": xiehe, "person": Person.objects.get(pk=person.pk),
    })  # fmt: skip
    case = services.open_case_from(users["pv"], ticket, kind="adverse_reaction")
    assert case.reporter_qualification == qualification


def test_a_negated_reaction_raises_no_flag_but_the_agents_tick_does(users, xiehe):
    from pharmacrm.safety.models import Flag

    quiet = _ticket(users, xiehe, "医生反馈用药一周，没有不良反应，想了解续方流程。")
    assert not Flag.objects.filter(ticket=quiet).exists()
    ticked = _ticket(users, xiehe, "家属来电，情况待核实。", safety_relevant=True)
    flag = Flag.objects.get(ticket=ticked)
    assert flag.by_agent and flag.terms == []


def test_a_dismissed_flag_needs_a_reason_and_returns_only_for_new_terms(users, xiehe):
    from pharmacrm.safety.models import Flag
    from pharmacrm.servicedesk import conversation

    ticket = _ticket(users, xiehe, "患者服药后头晕。")
    flag = Flag.objects.get(ticket=ticket)
    with pytest.raises(ValidationError):
        services.dismiss_flag(users["pv"], flag, reason=" ")
    services.dismiss_flag(users["pv"], flag, reason="说明书已列，咨询而非报告")
    conversation.post_message(users["agent"], ticket, kind="note", body="再次确认：头晕。")
    assert Flag.objects.filter(ticket=ticket).count() == 1  # nothing new
    conversation.post_message(users["agent"], ticket, kind="note", body="今天又出现呕吐，已住院。")
    assert Flag.objects.filter(ticket=ticket, status="pending").count() == 1


def test_one_case_per_worldwide_id(make_case):
    make_case(worldwide_id="US-PARTNER-0001")
    with pytest.raises(ValidationError) as error:
        make_case(worldwide_id="US-PARTNER-0001")
    assert "worldwide_id" in error.value.message_dict
    assert SafetyCase.objects.filter(worldwide_id="US-PARTNER-0001").count() == 1
    make_case(worldwide_id="")  # cases of our own have none: no clash
    make_case(worldwide_id="")


SAFETY_WORKER = """
import json, os, sys, time, datetime as dt
import django
django.setup()
from pharmacrm.safety import services
now = dt.datetime.fromisoformat(sys.argv[1])
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.01)
total = {"clocks": 0, "breached": 0}
while (counts := services.sweep(now, limit=7))["clocks"]:
    for key in total:
        total[key] += counts[key]
print(json.dumps(total), flush=True)
"""


@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_report_each_overdue_case_exactly_once(make_case, users, tmp_path):
    """Two workers sweep the same overdue regulatory clocks at the same moment: each case is reported
    overdue once — one breach, one notice per recipient."""
    import json
    import subprocess
    import sys

    from tests.servicedesk.test_escalation import _database_env

    cases = [make_case(received_at=timezone.now() - dt.timedelta(days=31)) for _ in range(30)]
    env = _database_env(tmp_path)
    go = tmp_path / "go"
    now = timezone.now()
    workers = [
        subprocess.Popen([sys.executable, "-c", SAFETY_WORKER, now.isoformat(), str(go)], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        for _ in range(2)
    ]
    for w in workers:
        assert w.stdout.readline().strip() == "ready", w.stderr.read()
    go.touch()
    totals = []
    for w in workers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        totals.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(t["breached"] for t in totals) == len(cases)
    if connection.vendor == "sqlite":  # the workers wrote to the file copy
        import sqlite3

        db = sqlite3.connect(env["SQLITE_PATH"])
        breached = db.execute("SELECT COUNT(*) FROM safety_safetyclock WHERE breached_at IS NOT NULL").fetchone()[0]
        notes = db.execute("SELECT COUNT(*) FROM notify_notification WHERE kind = 'safety.overdue' AND recipient_id = ?",
                           [users["pv"].pk]).fetchone()[0]  # fmt: skip
        db.close()
    else:
        breached = SafetyClock.objects.filter(breached_at__isnull=False).count()
        notes = Notification.objects.filter(kind="safety.overdue", recipient=users["pv"]).count()
    assert breached == len(cases) and notes == len(cases)
