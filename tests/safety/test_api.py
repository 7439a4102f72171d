"""The safety REST API: who may call what, PV-only fields, audited reads, the case lifecycle through the
services (create, correct with a version, follow-up, status), the signed export and submission, the PDF,
files in (ICSRs, acknowledgements), the screen for integrations, triage flags, reconciliation and rules."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone
from lxml import etree

from pharmacrm.core.models import AuditEntry
from pharmacrm.engagement import services as engagement
from pharmacrm.safety.choices import AckStatus, CaseStatus, SignalStatus
from pharmacrm.safety.e2b import schema
from pharmacrm.safety.models import Flag, SafetyCase, Submission
from tests.api import conftest as api_fixtures
from tests.api.conftest import ROLES

from .conftest import COMPLETE, sign_code

api_for, anon = api_fixtures.api_for, api_fixtures.anon  # token clients per role, as this module's fixtures
OVERSEEING = {"pv", "admin", "manager", "auditor"}
FDA = Path(__file__).parent / "data" / "fda-examples"
REACTION_TEXT = "张主任说病人用药后第二天全身出现皮疹，还有点头晕。"


@pytest.fixture
def case(make_case):
    return make_case()


@pytest.fixture
def interaction(users, xiehe):
    """A rep's visit note that mentions a rash: the net flags it."""
    return engagement.record_interaction(
        users["kam"],
        {"institution": xiehe, "channel": "visit", "subject": "科室拜访", "notes": REACTION_TEXT,
         "received_at": timezone.now() - dt.timedelta(hours=3)},
    )  # fmt: skip


def _reads(user, case) -> int:
    return AuditEntry.objects.filter(
        action=AuditEntry.Action.READ_PERSONAL, actor=user, object_id=str(case.pk)
    ).count()


# --- who may call what ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_cases_are_listed_for_pv_and_the_overseeing_roles_only(api_for, case, role):
    response = api_for(role).get("/api/v1/safety/cases/")

    if role in OVERSEEING:
        assert response.status_code == 200
        assert [c["number"] for c in response.json()["results"]] == [case.number]
    else:
        assert response.status_code == 403


@pytest.mark.parametrize("role", ROLES)
def test_only_pv_opens_a_case(api_for, role, db):
    response = api_for(role).post("/api/v1/safety/cases/", COMPLETE, format="json")

    if role == "pv":
        assert response.status_code == 201, response.json()
        assert response.json()["number"].startswith("AE-") and response.json()["valid"] is True
    else:
        assert response.status_code == 403
        assert not SafetyCase.objects.exists()


@pytest.mark.parametrize("role", ROLES)
def test_flags_are_listed_for_pv_and_the_overseeing_roles_only(api_for, interaction, role):
    response = api_for(role).get("/api/v1/safety/flags/")

    assert response.status_code == (200 if role in OVERSEEING else 403)


@pytest.mark.parametrize("role", ROLES)
def test_reconciliation_is_for_pv_and_the_overseeing_roles_only(api_for, role, db):
    response = api_for(role).get("/api/v1/safety/reconciliation/")

    assert response.status_code == (200 if role in OVERSEEING else 403)


@pytest.mark.parametrize("role", ROLES)
def test_reporting_rules_are_listed_for_pv_and_the_overseeing_roles_only(api_for, role, db):
    response = api_for(role).get("/api/v1/safety/reporting-rules/")

    assert response.status_code == (200 if role in OVERSEEING else 403)
    if response.status_code == 200:
        assert any(r["jurisdiction"] == "CN" for r in response.json())


@pytest.mark.parametrize("role", ROLES)
def test_only_pv_gets_the_report_form_pdf(api_for, case, role):
    response = api_for(role).get(f"/api/v1/safety/cases/{case.pk}/report.pdf", HTTP_ACCEPT="application/pdf")

    if role == "pv":
        assert response.status_code == 200
        assert response["Content-Type"] == "application/pdf"
        assert response.content.startswith(b"%PDF")
        exports = AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT, actor=case.owner, object_id=str(case.pk))
        assert exports.count() == 1  # a PDF leaving the system is an export, as on the web page
    else:
        assert response.status_code == 403


@pytest.mark.parametrize("role", ROLES)
def test_only_pv_imports_icsr_and_ack_files(api_for, role, db):
    client = api_for(role)
    icsr = client.post(
        "/api/v1/safety/icsrs/", (FDA / "FAERS2022Scenario1.xml").read_bytes(), content_type="application/xml"
    )
    acks = client.post(
        "/api/v1/safety/acks/", (FDA / "R3ack-positive.ack").read_bytes(), content_type="application/xml"
    )

    if role == "pv":
        assert icsr.status_code == 201, icsr.json()
        assert acks.status_code == 400  # no submission in that batch yet
    else:
        assert (icsr.status_code, acks.status_code) == (403, 403)
        assert not SafetyCase.objects.exists()


@pytest.mark.parametrize("role", ROLES)
def test_any_signed_in_user_may_screen_a_text(api_for, role, db):
    response = api_for(role).post("/api/v1/safety/screen/", {"text": "吃了药以后起了皮疹"}, format="json")

    assert response.status_code == 200
    assert response.json()["signal"] is True


def test_screening_needs_a_signed_in_user(anon):
    response = anon.post("/api/v1/safety/screen/", {"text": "皮疹"}, format="json")

    assert response.status_code in (401, 403)
    assert response.status_code == 401


# --- the screen ----------------------------------------------------------------------------------------------


def test_a_reaction_is_a_signal_with_its_terms(api_for, db):
    response = api_for("agent").post("/api/v1/safety/screen/", {"text": REACTION_TEXT}, format="json")

    body = response.json()
    assert body["signal"] is True and body["kind"] == "adverse_reaction"
    assert "皮疹" in body["terms"]


def test_a_negated_reaction_is_no_signal(api_for, db):
    response = api_for("agent").post(
        "/api/v1/safety/screen/", {"text": "用药一周，没有不良反应。"}, format="json"
    )

    assert response.json() == {"signal": False, "kind": None, "terms": []}


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_text_is_refused_on_the_field(api_for, db, text):
    response = api_for("agent").post("/api/v1/safety/screen/", {"text": text}, format="json")

    assert response.status_code == 400 and "text" in response.json()


def test_a_missing_or_too_long_text_is_refused_on_the_field(api_for, db):
    client = api_for("auditor")

    missing = client.post("/api/v1/safety/screen/", {}, format="json")
    too_long = client.post("/api/v1/safety/screen/", {"text": "好" * 100_001}, format="json")
    longest = client.post("/api/v1/safety/screen/", {"text": "好" * 100_000}, format="json")

    assert missing.status_code == 400 and "text" in missing.json()
    assert too_long.status_code == 400 and "text" in too_long.json()
    assert longest.status_code == 200


# --- cases: fields per role, audited reads, filters ---------------------------------------------------------


def test_pv_reads_patient_and_reporter_and_the_read_is_audited(api_for, case):
    response = api_for("pv").get(f"/api/v1/safety/cases/{case.pk}/")

    body = response.json()
    assert body["patient_name"] == "王XX" and body["reporter_name"] == "张伟"
    assert body["narrative"].startswith("患者静脉滴注") and body["drugs"][0]["brand_name"] == "罗氏芬"
    assert body["reactions"][0]["verbatim"] == "全身皮疹伴瘙痒"
    assert response["ETag"] == f'"{case.version}"'
    assert _reads(case.owner, case) == 1


@pytest.mark.parametrize("role", ["manager", "admin", "auditor"])
def test_overseeing_roles_see_status_and_clocks_but_no_patient_data(api_for, case, role, users):
    response = api_for(role).get(f"/api/v1/safety/cases/{case.pk}/")

    body = response.json()
    assert response.status_code == 200
    assert body["number"] == case.number and body["valid"] is True and "clocks" in body
    for hidden in ("patient_name", "patient_history", "reporter_name", "reporter_contact", "narrative", "drugs",
                   "reactions", "causality_company"):  # fmt: skip
        assert hidden not in body
    assert "王XX" not in response.content.decode()
    assert _reads(users[role], case) == 0


def test_the_list_carries_no_patient_data_even_for_pv(api_for, case):
    response = api_for("pv").get("/api/v1/safety/cases/")

    [row] = response.json()["results"]
    assert row["number"] == case.number and "patient_name" not in row and "narrative" not in row
    assert set(row) >= {"kind", "status", "serious", "fatal", "valid", "missing", "received_at",
                        "latest_received_at", "source_ticket", "next_due_at", "version"}  # fmt: skip


def test_the_valid_filter_separates_valid_from_invalid_cases(api_for, make_case):
    valid = make_case()
    invalid = make_case(patient_name="", patient_sex="", patient_age="", reactions=[])

    client = api_for("manager")
    only_valid = client.get("/api/v1/safety/cases/?valid=true").json()["results"]
    only_invalid = client.get("/api/v1/safety/cases/?valid=false").json()["results"]

    assert [c["number"] for c in only_valid] == [valid.number]
    assert [c["number"] for c in only_invalid] == [invalid.number]
    assert set(only_invalid[0]["missing"]) == {"patient", "reaction"}


def test_cases_filter_by_kind_status_and_seriousness(api_for, make_case):
    make_case()
    serious = make_case(
        kind="medication_error", reactions=[{"verbatim": "过敏性休克", "hospitalisation": True}]
    )

    client = api_for("pv")
    assert [c["number"] for c in client.get("/api/v1/safety/cases/?serious=true").json()["results"]] == [
        serious.number
    ]
    assert [
        c["number"] for c in client.get("/api/v1/safety/cases/?kind=medication_error").json()["results"]
    ] == [serious.number]
    assert client.get("/api/v1/safety/cases/?status=closed").json()["count"] == 0


def test_the_case_list_reads_the_database_a_fixed_number_of_times(
    api_for, make_case, django_assert_max_num_queries
):
    for _ in range(5):
        make_case()
    client = api_for("manager")
    with django_assert_max_num_queries(8):
        response = client.get("/api/v1/safety/cases/")
    assert response.json()["count"] == 5


# --- case lifecycle --------------------------------------------------------------------------------------------


def test_pv_creates_a_case_with_day_zero_and_an_invalid_one_lists_what_is_missing(api_for, users):
    received = (timezone.now() - dt.timedelta(days=2)).replace(microsecond=0)
    response = api_for("pv").post(
        "/api/v1/safety/cases/",
        {"kind": "adverse_reaction", "received_at": received.isoformat(), "reporter_name": "李药师",
         "reactions": [{"verbatim": "头晕"}]},
        format="json",
    )  # fmt: skip

    body = response.json()
    assert response.status_code == 201
    assert dt.datetime.fromisoformat(body["received_at"]) == received
    assert body["valid"] is False and set(body["missing"]) == {"patient", "product"}


def test_a_wrong_value_is_refused_naming_the_field(api_for, db):
    response = api_for("pv").post(
        "/api/v1/safety/cases/", {"kind": "adverse_reaction", "patient_weight_kg": "heavy"}, format="json"
    )

    assert response.status_code == 400 and "patient_weight_kg" in response.json()


def test_a_correction_needs_the_current_version(api_for, case):
    client = api_for("pv")

    without = client.patch(f"/api/v1/safety/cases/{case.pk}/", {"patient_age": "46"}, format="json")
    stale = client.patch(
        f"/api/v1/safety/cases/{case.pk}/", {"patient_age": "46", "version": case.version + 5}, format="json"
    )
    current = client.patch(
        f"/api/v1/safety/cases/{case.pk}/",
        {"patient_age": "46"},
        format="json",
        HTTP_IF_MATCH=f'"{case.version}"',
    )

    assert without.status_code == 400 and "version" in without.json()
    assert stale.status_code == 409
    assert current.status_code == 200 and current.json()["patient_age"] == "46"
    assert current.json()["version"] == case.version + 1


def test_the_manager_cannot_change_a_case(api_for, case):
    response = api_for("manager").patch(
        f"/api/v1/safety/cases/{case.pk}/", {"patient_age": "46", "version": case.version}, format="json"
    )

    assert response.status_code == 403


def test_a_follow_up_is_a_new_version_with_its_own_receipt_date(api_for, case):
    client = api_for("pv")
    received = timezone.now().replace(microsecond=0)

    response = client.post(
        f"/api/v1/safety/cases/{case.pk}/follow-ups/",
        {"follow_up_received_at": received.isoformat(), "summary": "医院补充：患者已住院",
         "reactions": [{**COMPLETE["reactions"][0], "hospitalisation": True}], "version": case.version},
        format="json",
    )  # fmt: skip
    versions = client.get(f"/api/v1/safety/cases/{case.pk}/follow-ups/").json()

    assert response.status_code == 201, response.json()
    assert response.json()["serious"] is True
    assert [v["sequence"] for v in versions] == [0, 1]
    assert versions[1]["changes"] == ["reactions"]
    assert dt.datetime.fromisoformat(versions[1]["received_at"]) == received
    assert versions[1]["summary"] == "医院补充：患者已住院"
    overseen = api_for("manager").get(f"/api/v1/safety/cases/{case.pk}/follow-ups/").json()
    assert [v["sequence"] for v in overseen] == [0, 1] and "summary" not in overseen[1]


def test_nullifying_needs_a_reason(api_for, case):
    client = api_for("pv")

    without = client.post(
        f"/api/v1/safety/cases/{case.pk}/status/", {"status": "nullified", "version": case.version}
    )
    done = client.post(
        f"/api/v1/safety/cases/{case.pk}/status/",
        {"status": "nullified", "reason": "与 AE-2026-000001 重复", "version": case.version},
    )

    assert without.status_code == 400 and "reason" in without.json()
    assert done.status_code == 200 and done.json()["status"] == CaseStatus.NULLIFIED


# --- export and submission with the electronic signature ------------------------------------------------------


def test_an_export_with_a_wrong_code_is_refused(api_for, case):
    response = api_for("pv").post(f"/api/v1/safety/cases/{case.pk}/export/", {"otp_code": "000000"})

    assert response.status_code == 400 and "otp_code" in response.json()


def test_an_export_with_the_right_code_is_schema_valid_xml(api_for, case, users):
    response = api_for("pv").post(
        f"/api/v1/safety/cases/{case.pk}/export/", {"otp_code": sign_code(users["pv"])}, HTTP_ACCEPT="application/xml"
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    assert schema.validate(response.content, schema.BATCH) == []
    root = etree.fromstring(response.content)
    assert root.tag.endswith("MCCI_IN200100UV01")
    assert case.number.encode() in response.content
    assert response["X-Message-Id"] in response.content.decode()


def test_an_incomplete_case_is_refused_with_what_to_fill_in(api_for, make_case, users):
    case = make_case(reactions=[{"verbatim": "皮疹"}])  # no MedDRA code

    response = api_for("pv").post(
        f"/api/v1/safety/cases/{case.pk}/export/", {"otp_code": sign_code(users["pv"])},
        HTTP_ACCEPT="application/xml",  # what an E2B gateway asks for: the refusal still comes as JSON
    )

    assert response.status_code == 422 and response["Content-Type"].startswith("application/json")
    problems = response.json()["problems"]
    assert any(p["field"].startswith("reactions[0].meddra") for p in problems)
    assert all(p["case"] == case.number for p in problems)


def test_the_manager_cannot_export(api_for, case):
    response = api_for("manager").post(f"/api/v1/safety/cases/{case.pk}/export/", {"otp_code": "123456"})

    assert response.status_code == 403


def test_a_signed_submission_is_recorded_and_listed(api_for, case, users):
    client = api_for("pv")

    right = client.post(
        f"/api/v1/safety/cases/{case.pk}/submissions/",
        {"channel": "nmpa", "otp_code": sign_code(users["pv"])},
    )
    wrong = client.post(
        f"/api/v1/safety/cases/{case.pk}/submissions/", {"channel": "nmpa", "otp_code": "000000"}
    )
    listed = api_for("auditor").get(f"/api/v1/safety/cases/{case.pk}/submissions/")

    assert wrong.status_code == 400 and "otp_code" in wrong.json()
    assert right.status_code == 201, right.json()
    assert right.json()["ack_status"] == AckStatus.PENDING and right.json()["signed_by"] == "pv"
    assert [s["id"] for s in listed.json()] == [right.json()["id"]]
    assert SafetyCase.objects.get(pk=case.pk).status == CaseStatus.SUBMITTED


# --- files in --------------------------------------------------------------------------------------------------


def test_an_icsr_upload_becomes_a_case(api_for, db):
    data = (FDA / "FAERS2022Scenario1.xml").read_bytes()
    response = api_for("pv").post("/api/v1/safety/icsrs/", {"file": _upload("scenario1.xml", data)})

    assert response.status_code == 201, response.json()
    [imported] = response.json()
    case = SafetyCase.objects.get(pk=imported["id"])
    assert imported["number"] == case.number and case.imported_from


def test_a_broken_file_is_refused_on_the_file_field(api_for, db):
    response = api_for("pv").post("/api/v1/safety/icsrs/", b"<not xml", content_type="application/xml")

    assert response.status_code == 400 and "file" in response.json()
    assert not SafetyCase.objects.exists()


def test_an_ack_marks_the_submission_of_its_batch(api_for, users):
    pv = users["pv"]
    client = api_for("pv")
    client.post("/api/v1/safety/icsrs/", (FDA / "FAERS2022Scenario1.xml").read_bytes(),
                content_type="application/xml")  # fmt: skip
    case = SafetyCase.objects.get()
    Submission.objects.create(
        case=case, jurisdiction="US", channel="fda_esg", submitted_at=timezone.now(), submitted_by=pv,
        message_id="FAERS2022Scenario1-4069-a2dd-08002b30309d",
    )  # fmt: skip

    response = client.post(
        "/api/v1/safety/acks/", {"file": _upload("ack.xml", (FDA / "R3ack-positive.ack").read_bytes())}
    )

    assert response.status_code == 200, response.json()
    assert [s["ack_status"] for s in response.json()] == [AckStatus.ACCEPTED]


def _upload(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="application/xml")


# --- the net: flags from interactions ----------------------------------------------------------------------------


def test_an_interaction_mentioning_a_rash_waits_in_pvs_triage_queue(api_for, users, xiehe):
    created = api_for("rep").post(
        "/api/v1/interactions/",
        {
            "institution": xiehe.pk,
            "channel": "visit",
            "subject": "拜访心内科",
            "notes": "有位患者用药后出现皮疹",
        },
        format="json",
    )

    flags = api_for("pv").get("/api/v1/safety/flags/?status=pending").json()["results"]

    assert created.status_code == 201, created.json()
    assert Flag.objects.filter(interaction_id=created.json()["id"], status=SignalStatus.PENDING).exists()
    [flag] = flags
    assert flag["source_type"] == "interaction" and flag["source_id"] == created.json()["id"]
    assert "皮疹" in flag["terms"] and flag["handoff_due_at"]


def test_pv_confirms_a_flag_into_a_case_with_day_zero_of_the_interaction(api_for, interaction):
    flag = Flag.objects.get(interaction=interaction)

    response = api_for("pv").post(f"/api/v1/safety/flags/{flag.pk}/confirm/", {"kind": "adverse_reaction"})

    assert response.status_code == 201, response.json()
    case = SafetyCase.objects.get(pk=response.json()["id"])
    assert case.source_interaction == interaction and case.received_at == interaction.received_at
    assert api_for("pv").get(f"/api/v1/safety/flags/{flag.pk}/").json()["status"] == SignalStatus.CONFIRMED


def test_dismissing_a_flag_needs_a_reason_and_only_pv_may(api_for, interaction):
    flag = Flag.objects.get(interaction=interaction)

    by_manager = api_for("manager").post(
        f"/api/v1/safety/flags/{flag.pk}/dismiss/", {"reason": "不是不良反应"}
    )
    without = api_for("pv").post(f"/api/v1/safety/flags/{flag.pk}/dismiss/", {"reason": ""})
    done = api_for("pv").post(f"/api/v1/safety/flags/{flag.pk}/dismiss/", {"reason": "患者用药前已有皮疹"})

    assert by_manager.status_code == 403
    assert without.status_code == 400 and "reason" in without.json()
    assert done.status_code == 200 and done.json()["status"] == SignalStatus.DISMISSED


def test_reconciliation_lists_a_flag_still_waiting_for_triage(api_for, interaction):
    today = timezone.localdate()
    response = api_for("manager").get(
        f"/api/v1/safety/reconciliation/?since={today - dt.timedelta(days=7)}&until={today}"
    )

    body = response.json()
    assert response.status_code == 200
    assert [(r["source_type"], r["source_id"], r["flag_status"]) for r in body["rows"]] == [
        ("interaction", interaction.pk, "pending")
    ]
    assert [p["problem"] for p in body["unmatched"]] == ["no_decision"]
    assert REACTION_TEXT not in response.content.decode()


def test_a_reconciliation_period_that_ends_before_it_starts_is_refused(api_for, db):
    response = api_for("pv").get("/api/v1/safety/reconciliation/?since=2026-03-01&until=2026-02-01")

    assert response.status_code == 400 and "until" in response.json()
