"""Safety defects found by the thirty-first review round: cases stored under the old minimum criteria, the message
identifiers of re-exported ICSRs."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety import services
from pharmacrm.safety.models import CaseTask, SafetyCase, SafetyClock
from tests.api import conftest as api_fixtures

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role

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


@pytest.mark.django_db(transaction=True)
def test_migrate_revalidates_the_old_cases_once_every_migration_is_applied(make_case):
    """`migrate` applying 0008 on a database holding such a case: the case is valid with its clock when migrate ends
    (the command runs after the whole plan, with today's models), and a second migrate changes nothing."""
    heard = timezone.now() - dt.timedelta(days=3)
    case = _as_old_code_stored_it(make_case(received_at=heard, **PHYSICIAN_AND_RECORD))
    call_command("migrate", "safety", "0007", verbosity=0)

    call_command("migrate", "safety", verbosity=0)

    case.refresh_from_db()
    assert case.valid and _report_clocks(case) == [(0, "CN-OTHER", heard, services.day_deadline(heard, 30))]
    entries = AuditEntry.objects.count()
    call_command("migrate", verbosity=0)
    assert AuditEntry.objects.count() == entries


def test_revalidation_works_through_a_table_in_chunks(make_case):
    cases = [_as_old_code_stored_it(make_case(**PHYSICIAN_AND_RECORD)) for _ in range(5)]

    assert services.revalidate_invalid_cases(chunk=2) == 5

    assert SafetyCase.objects.filter(pk__in=[c.pk for c in cases], valid=True).count() == 5
    assert CaseTask.objects.filter(case__in=cases, kind="follow_up", done_at__isnull=True).count() == 0


# --- the identifiers of an ICSR exported again (ICH E2B(R3) IG: N.1.2, N.2.r.1, C.1.2) --------------------------

NS = {"h": "urn:hl7-org:v3"}


def _ids(xml: bytes) -> dict:
    from lxml import etree

    doc = etree.fromstring(xml)
    msg = doc.xpath("h:PORR_IN049016UV", namespaces=NS)[0]
    event = msg.xpath(".//h:investigationEvent", namespaces=NS)[0]
    return {
        "N.1.2": doc.xpath("h:id/@extension", namespaces=NS)[0],
        "N.2.r.1": msg.xpath("h:id/@extension", namespaces=NS)[0],
        "N.2.r.4": msg.xpath("h:creationTime/@value", namespaces=NS)[0],
        "C.1.1": event.xpath("h:id[@root='2.16.840.1.113883.3.989.2.1.3.1']/@extension", namespaces=NS)[0],
        "C.1.2": msg.xpath("h:controlActProcess/h:effectiveTime/@value", namespaces=NS)[0],
    }


def _export(api, case, user, code) -> tuple[bytes, str]:
    response = api.post(f"/api/v1/safety/cases/{case.pk}/export/", {"otp_code": code}, HTTP_ACCEPT="application/xml")
    assert response.status_code == 200, response.content
    return response.content, response["X-Message-Id"]


def test_a_corrected_case_exported_again_is_a_new_transmission_and_a_later_version(api_for, make_case, users):
    """PV exported the case for the NMPA, then corrected the batch number (no new information, no new version) and
    exported again. The second file said N.2.r.1 'AE-…-0' again, the number and follow-up of the case rather than
    C.1.1 as ICH's business rule has it, and — both files made within the second — could carry the same date of
    creation (C.1.2), the version a gateway keeps: two different ICSRs of one version. Now N.2.r.1 is C.1.1 in both,
    each file has its own batch number (N.1.2), and the correction's C.1.2 is later than the first file's."""
    from tests.safety.conftest import COMPLETE, next_code, sign_code

    pv, api = users["pv"], api_for("pv")
    case = make_case()
    first, first_id = _export(api, case, pv, sign_code(pv))
    case.refresh_from_db()
    services.update_case(pv, case, {"drugs": [{**COMPLETE["drugs"][0], "batch": "B20260902"}]}, version=case.version)

    second, second_id = _export(api, case, pv, next_code(pv))

    a, b = _ids(first), _ids(second)
    assert first_id == a["N.1.2"] and second_id == b["N.1.2"] and a["N.1.2"] != b["N.1.2"]
    assert a["N.2.r.1"] == a["C.1.1"] == b["N.2.r.1"] == b["C.1.1"] == f"CN-PHARMACRM-{case.number}"
    assert b["C.1.2"] > a["C.1.2"] and a["C.1.2"] == a["N.2.r.4"] and b["C.1.2"] == b["N.2.r.4"]
    assert b"B20260902" in second


def test_an_unchanged_case_exported_again_is_the_stored_file_a_retransmission(make_case, users):
    """The file never reached the gateway (a network failure); PV exports it again with nothing changed. It was a
    new batch with a new date of creation: the regulator would hold two versions of one report. Now it is the
    stored file, byte for byte — the same batch number and date of creation — and audited as a retransmission."""
    case = make_case()
    actor = services.SystemActor("cli:test")
    first = services.issue_icsr_batch(actor, [case], purpose="regulatory")

    again = services.issue_icsr_batch(actor, [case], purpose="regulatory")

    assert again.xml == first.xml and again.message_id == first.message_id and again.retransmission
    assert not first.retransmission
    entry = AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT, object_id=str(case.pk)).order_by("seq").last()
    assert entry.extra["retransmission"] is True and entry.extra["message_id"] == first.message_id


def test_a_batch_the_regulator_acknowledged_is_never_sent_again_under_its_number(make_case, users):
    """Once the regulator acknowledged the batch it has it: an export of the unchanged case is a new transmission
    with a new batch number and a later date of creation, which a gateway does not refuse as a duplicate."""
    from tests.safety.conftest import sign_code

    pv = users["pv"]
    case = make_case()
    actor = services.SystemActor("cli:test")
    first = services.issue_icsr_batch(actor, [case], purpose="regulatory")
    sub = services.record_submission(pv, case, {"channel": "nmpa", "message_id": first.message_id},
                                     otp_code=sign_code(pv))  # fmt: skip
    services.record_ack(pv, sub, accepted=True, errors=[], ack_message_id="ACK-1")

    later = services.issue_icsr_batch(actor, [case], purpose="regulatory")

    assert later.message_id != first.message_id and not later.retransmission
    assert _ids(later.xml)["C.1.2"] > _ids(first.xml)["C.1.2"]


def test_the_command_line_export_is_numbered_and_kept_like_the_pages(make_case, tmp_path):
    from pharmacrm.safety.models import IcsrBatch

    case = make_case()
    out = tmp_path / "batch.xml"
    call_command("safety", "export-icsr", case.number, "--out", str(out), stdout=io.StringIO())

    batch = IcsrBatch.objects.get()
    assert batch.xml.encode() == out.read_bytes() and _ids(out.read_bytes())["N.1.2"] == batch.batch_id
    assert [m.message_id for m in batch.messages.all()] == [f"CN-PHARMACRM-{case.number}"]


def test_an_acknowledgement_quoting_c_1_1_finds_its_submission(make_case, users):
    """The regulator's ACK names each report by our N.2.r.1 — now C.1.1 — and the batch number."""
    from pharmacrm.safety.e2b import ack
    from tests.safety.conftest import sign_code

    pv = users["pv"]
    case = make_case()
    sent = services.issue_icsr_batch(services.SystemActor("cli:test"), [case], purpose="regulatory")
    sub = services.record_submission(pv, case, {"channel": "nmpa", "message_id": sent.message_id},
                                     otp_code=sign_code(pv))  # fmt: skip
    assert ack.our_message_id(sub) == f"CN-PHARMACRM-{case.number}"


# --- nullification and amendment reports (C.1.11.1 / C.1.11.2) -----------------------------------------------------


def _c_1_11(xml: bytes) -> tuple[list, list]:
    from lxml import etree

    doc = etree.fromstring(xml)
    chars = ".//h:investigationEvent/h:subjectOf2/h:investigationCharacteristic"
    code = doc.xpath(f"{chars}[h:code/@code='3']/h:value[@codeSystem='2.16.840.1.113883.3.989.2.1.1.5']/@code",
                     namespaces=NS)  # fmt: skip
    reason = doc.xpath(f"{chars}[h:code/@code='4']/h:value/h:originalText/text()", namespaces=NS)
    return code, reason


def _sent(case, pv):
    """The case exported and its submission recorded (the signatures of those steps are tested elsewhere: each
    one-time code signs once, and the test's own steps need theirs). Sent to the second, as record_submission
    stores it: with its microseconds, a sending in the second the next export was made in (C.1.2 is kept to the
    second) read as later than that export, under load."""
    from pharmacrm.safety.models import Submission

    batch = services.issue_icsr_batch(pv, [case], purpose="regulatory")
    Submission.objects.create(case=case, jurisdiction="CN", channel="nmpa", message_id=batch.message_id,
                              submitted_at=timezone.now().replace(microsecond=0), submitted_by=pv)  # fmt: skip
    return batch


def _zh(text: str) -> str:
    """The text as the zh-Hans pages show it."""
    from django.utils import translation

    with translation.override("zh-hans"):
        return translation.gettext(text)


def test_a_reported_case_found_a_duplicate_is_nullified_by_a_nullification_report(client_for, make_case, users):
    """A case reported to the NMPA turned out to be a duplicate of another. The officer could only set it to
    "nullified" in the CRM — the regulator kept the report, since no nullification (C.1.11.1 = 1) could be produced.
    Now the export form's "Nullification" with its reason, signed, nullifies the case and downloads the ICSR saying
    so (schema-valid, the same C.1.1, a later C.1.2); recording its submission leaves the case nullified, and the list
    and the page show "Nullification submitted"."""
    from django.urls import reverse

    from pharmacrm.safety.e2b import schema
    from tests.safety.conftest import next_code, sign_code

    pv, page = users["pv"], client_for("pv")
    case = make_case()
    first = _sent(case, pv)
    reason = "与 AE-2026-000001 为同一患者同一事件，重复报告"

    response = page.post(reverse("safety:case-export", args=[case.pk]), {
        "purpose": "regulatory", "report": "nullification", "reason": reason, "otp_code": sign_code(pv)})  # fmt: skip

    assert response.status_code == 200, response.content.decode()[:2000]
    xml = response.content
    assert schema.validate(xml, schema.BATCH) == []
    assert _c_1_11(xml) == (["1"], [reason])
    ids, before = _ids(xml), _ids(first.xml)
    assert ids["C.1.1"] == before["C.1.1"] and ids["C.1.2"] > before["C.1.2"] and ids["N.1.2"] != before["N.1.2"]
    case.refresh_from_db()
    assert case.status == "nullified"
    assert not SafetyClock.objects.filter(case=case, met_at__isnull=True, stopped_at__isnull=True).exists()
    entry = AuditEntry.objects.filter(action="export", object_id=str(case.pk)).order_by("seq").last()
    assert entry.extra["report"] == "nullification" and entry.extra["reason"] == reason
    # the case list's "Latest report" column (session 33; it replaced the list's badge)
    listed = page.get(reverse("safety:cases")).content.decode()
    assert f'{_zh("Nullification")} · <span class="report-stage">{_zh("Exported, not sent yet")}</span>' in listed

    # recorded as sent (its batch number prefilled from the export): the case stays nullified
    data = {"jurisdiction": "CN", "kind": "report", "channel": "nmpa", "message_id": ids["N.1.2"],
            "submitted_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"), "otp_code": ""}  # fmt: skip
    form = page.get(reverse("safety:case", args=[case.pk])).content.decode()
    assert f'value="{ids["N.1.2"]}"' in form
    data["otp_code"] = next_code(pv)
    assert page.post(reverse("safety:case-submission", args=[case.pk]), data).status_code == 302
    case.refresh_from_db()
    assert case.status == "nullified" and case.submissions.count() == 2
    listed = page.get(reverse("safety:cases")).content.decode()
    assert f'{_zh("Nullification")} · <span class="report-stage">{_zh("Awaiting acknowledgement")}</span>' in listed
    assert 'id="report-state"' in page.get(reverse("safety:case", args=[case.pk])).content.decode()


def test_an_initial_report_cannot_be_a_nullification_or_an_amendment(client_for, make_case, users):
    """ICH (FDA R0101): a nullification or amendment voids or corrects a report sent — a case never reported has
    none. Refused at the field, before any signature, and the case stays as it was."""
    from django.urls import reverse

    from tests.safety.conftest import sign_code

    pv = users["pv"]
    case = make_case()
    response = client_for("pv").post(reverse("safety:case-export", args=[case.pk]), {
        "purpose": "regulatory", "report": "nullification", "reason": "重复", "otp_code": sign_code(pv)})  # fmt: skip

    assert response.status_code == 400
    assert 'id="field-report"' in response.content.decode() and "首次报告" in response.content.decode()
    case.refresh_from_db()
    assert case.status != "nullified"


def test_an_amendment_needs_its_reason_and_says_so_in_the_icsr(api_for, make_case, users):
    """After an internal review the company's causality changed — a correction, no new information: an amendment
    (C.1.11.1 = 2) with its reason; C.1.5 (the most recent information) does not move."""
    from tests.safety.conftest import sign_code

    pv, api = users["pv"], api_for("pv")
    case = make_case()
    first = _sent(case, pv)
    case.refresh_from_db()
    services.update_case(pv, case, {"causality_company": "probable"}, version=case.version)
    url = f"/api/v1/safety/cases/{case.pk}/export/"

    missing = api.post(url, {"otp_code": sign_code(pv), "report": "amendment"})  # (refused before it signs)
    assert missing.status_code == 400 and "reason" in missing.json()

    response = api.post(url, {"otp_code": sign_code(pv), "report": "amendment", "reason": "内部评审后修改公司因果评价"},
                        HTTP_ACCEPT="application/xml")  # fmt: skip
    assert response.status_code == 200, response.content
    assert _c_1_11(response.content) == (["2"], ["内部评审后修改公司因果评价"])
    from lxml import etree

    def c_1_5(xml):
        return etree.fromstring(xml).xpath("//h:investigationEvent/h:availabilityTime/@value", namespaces=NS)

    assert c_1_5(response.content) == c_1_5(first.xml)
    case.refresh_from_db()
    assert case.status != "nullified"


def test_a_nullified_case_is_exported_only_as_its_nullification(make_case, users):
    from django.core.exceptions import ValidationError

    pv = users["pv"]
    case = make_case()
    _sent(case, pv)
    case.refresh_from_db()
    case = services.set_status(pv, case, "nullified", reason="重复", version=case.version)

    with pytest.raises(ValidationError) as refused:
        services.export_icsr(pv, [case], otp_code="000000")
    assert "cases" in refused.value.message_dict


def test_a_case_found_invalid_after_it_was_reported_is_nullified_all_the_same(make_case, users):
    """On review the 'patient' of a reported case turns out to be nobody anyone can identify (the record number was
    the ward's): the case is invalid now — which is why it is nullified — and its nullification must still leave,
    though the report rules (the minimum criteria) no longer pass."""
    from pharmacrm.safety.e2b import schema
    from tests.safety.conftest import sign_code

    pv = users["pv"]
    case = make_case(**PHYSICIAN_AND_RECORD)
    _sent(case, pv)
    case.refresh_from_db()
    case = services.update_case(pv, case, {"patient_record_number": ""}, version=case.version)
    assert not case.valid

    result = services.export_icsr(pv, [case], otp_code=sign_code(pv), report="nullification",
                                  reason="经核实患者信息不可识别，病例无效")  # fmt: skip

    assert schema.validate(result.xml, schema.BATCH) == []
    assert _c_1_11(result.xml) == (["1"], ["经核实患者信息不可识别，病例无效"])
    case.refresh_from_db()
    assert case.status == "nullified"
    # where FDA's table (and our importer, for a partner's file) reads C.1.11.1: a receiver sees the nullification
    from pharmacrm.safety.e2b import importer

    [parsed] = importer.parse(result.xml)
    assert parsed["nullification"] == "经核实患者信息不可识别，病例无效"  # C.1.11.2: the case it names is nullified


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_exports_of_the_same_case_at_once_are_one_file(make_case, users):
    """Two officers (or a double click) export the unchanged case at the same moment: the second waits for the
    first and gets its file — one batch number, one date of creation — not a second 'version' of the ICSR made in
    the same second."""
    from pharmacrm.safety.models import IcsrBatch
    from tests.concurrency import held_while

    case = make_case()
    actor = services.SystemActor("cli:test")
    got: list[str] = []

    def first():
        got.append(services.issue_icsr_batch(actor, [SafetyCase.objects.get(pk=case.pk)], purpose="regulatory")
                   .message_id)  # fmt: skip

    def second():
        got.append(services.issue_icsr_batch(actor, [SafetyCase.objects.get(pk=case.pk)], purpose="regulatory")
                   .message_id)  # fmt: skip

    held_while(first, second)

    assert len(got) == 2 and got[0] == got[1]
    assert IcsrBatch.objects.count() == 1


# --- literature references (C.4.r.1) ----------------------------------------------------------------------------

REFERENCES = ("张三, 李四. 头孢曲松致重症药疹一例. 中国药物警戒, 2026, 23(4): 412-414.",
              "Smith J, Brown K. Ceftriaxone-induced rash: a case report. Drug Saf Case Rep. 2026;13:22.")  # fmt: skip


def test_literature_references_go_out_as_c_4_r_1_and_come_back_in(make_case, users):
    """A case the company first read of in a journal (or whose report was published since): the articles had no
    place on the case, and the ICSR said nothing of them. Now each reference (a line) is a C.4.r.1 of the ICSR,
    schema-valid, and a partner's file brings its references in."""
    from lxml import etree

    from pharmacrm.safety.e2b import export, importer, schema

    case = make_case(literature="\n".join(REFERENCES) + "\n\n", report_type="3")
    assert case.literature == "\n".join(REFERENCES)  # (blank lines dropped)

    result = export.release([case])

    assert schema.validate(result.xml, schema.BATCH) == []
    refs = etree.fromstring(result.xml).xpath(
        "//h:investigationEvent/h:reference/h:document[h:code/@code='2']/h:bibliographicDesignationText/text()",
        namespaces=NS,
    )
    assert refs == list(REFERENCES)
    assert importer.parse(result.xml)[0]["literature"] == "\n".join(REFERENCES)


def test_a_reference_longer_than_e2b_takes_is_refused_at_its_field(make_case, users):
    from django.core.exceptions import ValidationError

    case = make_case()
    with pytest.raises(ValidationError) as refused:
        services.update_case(users["pv"], case, {"literature": REFERENCES[0] + "\n" + "文" * 501}, version=case.version)
    assert "第 2 条文献有 501 个字符" in refused.value.message_dict["literature"][0]


def test_the_fda_mega_instance_brings_its_literature_reference():
    from pathlib import Path

    from pharmacrm.safety.e2b import importer

    data = (Path(__file__).parent / "data" / "fda-examples" / "FAERS2022Scenario6.xml").read_bytes()
    literature = importer.parse(data)[0]["literature"]
    assert literature.startswith('Author (last name first), "Article Title."')


def test_the_case_page_lists_the_references_and_the_edit_form_takes_them(client_for, make_case):
    from django.urls import reverse

    case = make_case(literature="\n".join(REFERENCES))
    pv = client_for("pv")

    page = pv.get(reverse("safety:case", args=[case.pk])).content.decode()
    assert '<ol id="literature">' in page and all(r in page for r in REFERENCES)
    form = pv.get(reverse("safety:case-edit", args=[case.pk])).content.decode()
    assert 'name="literature"' in form and REFERENCES[1] in form
