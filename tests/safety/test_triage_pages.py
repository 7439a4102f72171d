"""The triage queue, the batch trace, the E2B import page and the reporting rules, as their users meet them:
who may open each page, confirming and dismissing flags, importing files, editing a rule."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.customers.models import Person
from pharmacrm.safety import services
from pharmacrm.safety.choices import AckStatus, CaseKind, CaseStatus, SignalStatus
from pharmacrm.safety.e2b import schema
from pharmacrm.safety.models import Flag, ReportingRule, SafetyCase, Submission
from pharmacrm.servicedesk import services as desk

from .conftest import COMPLETE, sign_code

FDA = Path(__file__).parent / "data" / "fda-examples"
OVERSEEING = {"admin", "manager", "pv", "auditor"}
ALL_ROLES = [r.value for r in Role]


def make_ticket(users, xiehe, *, subject="患者用药后出现皮疹", description="", received_at=None, **extra):
    """A ticket taken by the agent (the net screens it on save)."""
    person = Person.objects.get(name="张伟")
    data = {"subject": subject, "description": description, "channel": "phone", "category": "drug_info",
            "institution": xiehe, "person": person, **extra}  # fmt: skip
    if received_at is not None:
        data["received_at"] = received_at
    return desk.create_ticket(users["agent"], data)


def flag_of(ticket) -> Flag:
    return Flag.objects.get(ticket=ticket, status=SignalStatus.PENDING)


# --- who may open what ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ALL_ROLES)
def test_the_triage_queue_opens_for_pv_and_the_overseeing_roles_only(web, role):
    response = web(role).get(reverse("safety:triage"))

    assert response.status_code == (200 if role in OVERSEEING else 403)


@pytest.mark.parametrize("role", ALL_ROLES)
def test_the_batch_trace_opens_for_pv_and_the_overseeing_roles_only(web, role):
    response = web(role).get(reverse("safety:batch-trace"), {"batch": "B1"})

    assert response.status_code == (200 if role in OVERSEEING else 403)


@pytest.mark.parametrize("role", ALL_ROLES)
def test_only_pharmacovigilance_opens_the_import_page(web, role):
    response = web(role).get(reverse("safety:import"))

    assert response.status_code == (200 if role == "pv" else 403)


@pytest.mark.parametrize("role", ALL_ROLES)
def test_the_rules_are_read_by_the_overseeing_roles_and_edited_by_admin_and_pv(web, role):
    client = web(role)
    rule = ReportingRule.objects.get(code="US-15DAY")

    listing = client.get(reverse("safety:rules"))
    edit = client.get(reverse("safety:rule-edit", args=[rule.pk]))

    assert listing.status_code == (200 if role in OVERSEEING else 403)
    assert edit.status_code == (200 if role in {"admin", "pv"} else 403)
    if role in {"manager", "auditor"}:
        assert reverse("safety:rule-edit", args=[rule.pk]) not in listing.content.decode()


# --- the triage queue ----------------------------------------------------------------------------------------


def test_pv_sees_the_flag_with_the_terms_marked_and_the_text_escaped(users, xiehe, web):
    ticket = make_ticket(
        users, xiehe, subject="用药咨询", description="<script>alert(1)</script>服药后出现皮疹，很痒"
    )

    page = web("pv").get(reverse("safety:triage")).content.decode()

    assert ticket.number in page
    assert "<mark>皮疹</mark>" in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert reverse("safety:triage-confirm", args=[flag_of(ticket).pk]) in page


def test_a_delivery_short_of_its_order_and_a_missed_dose_question_stay_out_of_the_queue(users, xiehe, web):
    """The demo's 到货数量与订单不符 and 咨询漏服后如何补服 waited in PV's queue as a quality defect and a reaction; a
    defect that came with the delivery, and a reaction after the catch-up dose, are flagged with their words marked."""
    short = make_ticket(users, xiehe, subject="到货数量与订单不符", description="订单是50盒，到货少了两箱，请补发。",
                        category="order_delivery")  # fmt: skip
    question = make_ticket(users, xiehe, subject="咨询漏服后如何补服", description="漏服了一次怎么办？",
                           category="usage_guidance")  # fmt: skip
    cracked = make_ticket(users, xiehe, subject="到货数量与订单不符", description="到货的药片有裂纹",
                          category="order_delivery")  # fmt: skip
    harmed = make_ticket(users, xiehe, subject="咨询漏服后如何补服", description="漏服后补服两片，出现心慌",
                         category="usage_guidance")  # fmt: skip

    assert not Flag.objects.filter(ticket__in=[short, question]).exists()
    assert (flag_of(cracked).kind, flag_of(cracked).terms) == ("quality", ["裂纹"])
    assert (flag_of(harmed).kind, flag_of(harmed).terms) == ("adverse_reaction", ["心慌"])
    page = web("pv").get(reverse("safety:triage")).content.decode()
    assert short.number not in page and question.number not in page
    assert cracked.number in page and "<mark>裂纹</mark>" in page
    assert harmed.number in page and "<mark>心慌</mark>" in page


def test_the_overseeing_roles_see_the_queue_without_the_customers_text(users, xiehe, web):
    ticket = make_ticket(users, xiehe, subject="用药咨询", description="王阿姨服药后出现皮疹，很痒")

    page = web("manager").get(reverse("safety:triage")).content.decode()

    assert ticket.number in page
    assert "王阿姨" not in page
    assert "triage-confirm" not in page and "/confirm/" not in page


def test_the_queue_lists_the_oldest_first_with_the_hand_off_due(users, xiehe, web):
    now = timezone.now()
    newer = make_ticket(users, xiehe, subject="头晕恶心", received_at=now - dt.timedelta(hours=1))
    older = make_ticket(users, xiehe, subject="全身皮疹", received_at=now - dt.timedelta(days=5))

    page = web("pv").get(reverse("safety:triage")).content.decode()

    assert page.index(older.number) < page.index(newer.number)
    older_row = re.search(rf'<tr class="flag-row flag-overdue"[^>]*data-source="{older.number}"', page)
    assert older_row, "a flag received five days ago is past its one-working-day hand-off"


def test_confirming_a_flag_opens_a_case_from_the_ticket_with_its_day_0(users, xiehe, web):
    received = timezone.now() - dt.timedelta(days=2)
    ticket = make_ticket(users, xiehe, subject="服药后呕吐", received_at=received)
    flag = flag_of(ticket)

    response = web("pv").post(reverse("safety:triage-confirm", args=[flag.pk]), {"kind": "adverse_reaction"})

    case = SafetyCase.objects.get(source_ticket=ticket)
    assert response.status_code == 302
    assert response["Location"] == reverse("safety:case", args=[case.pk])
    assert case.received_at == ticket.received_at
    flag.refresh_from_db()
    assert (flag.status, flag.case_id, flag.decided_by) == (SignalStatus.CONFIRMED, case.pk, users["pv"])


def test_the_confirm_form_offers_the_kind_the_flag_suggests(users, xiehe, web):
    ticket = make_ticket(users, xiehe, subject="药片变色，包装破损")
    flag = flag_of(ticket)

    page = web("pv").get(reverse("safety:triage")).content.decode()

    select = re.search(rf'<select name="kind"[^>]*id="id_kind_{flag.pk}".*?</select>', page, re.S).group()
    assert '<option value="quality" selected>' in select
    response = web("pv").post(reverse("safety:triage-confirm", args=[flag.pk]), {"kind": "medication_error"})
    assert response.status_code == 302
    assert SafetyCase.objects.get(source_ticket=ticket).kind == CaseKind.MEDICATION_ERROR


def test_dismissing_needs_a_reason(users, xiehe, web):
    ticket = make_ticket(users, xiehe, subject="说明书上写的副作用有哪些皮疹？")
    flag = Flag.objects.filter(ticket=ticket).first() or services.raise_flag(
        ticket, kind="adverse_reaction", terms=["皮疹"], excerpt=ticket.subject, by_agent=True
    )
    client = web("pv")

    refused = client.post(reverse("safety:triage-dismiss", args=[flag.pk]), {"reason": "   "})

    assert refused.status_code == 400
    assert "This field is required." in refused.content.decode() or "Say why" in refused.content.decode()
    flag.refresh_from_db()
    assert flag.status == SignalStatus.PENDING

    done = client.post(
        reverse("safety:triage-dismiss", args=[flag.pk]), {"reason": "只是咨询说明书，没有患者"}
    )

    assert done.status_code == 302
    flag.refresh_from_db()
    assert (flag.status, flag.reason) == (SignalStatus.DISMISSED, "只是咨询说明书，没有患者")
    assert AuditEntry.objects.filter(
        object_type="safety.flag", object_id=str(flag.pk), actor=users["pv"]
    ).exists()
    recent = client.get(reverse("safety:triage"), {"tab": "recent"}).content.decode()
    assert "只是咨询说明书，没有患者" in recent
    assert ticket.number in recent


def test_a_flag_triaged_twice_says_so(users, xiehe, web):
    flag = flag_of(make_ticket(users, xiehe, subject="过敏性休克"))
    client = web("pv")
    client.post(reverse("safety:triage-dismiss", args=[flag.pk]), {"reason": "重复录入"})

    again = client.post(
        reverse("safety:triage-confirm", args=[flag.pk]), {"kind": "adverse_reaction"}, follow=True
    )

    assert "already triaged" in again.content.decode()
    assert not SafetyCase.objects.exists()


@pytest.mark.parametrize("role", ["admin", "manager", "auditor", "agent"])
def test_only_pv_confirms_or_dismisses(users, xiehe, web, role):
    flag = flag_of(make_ticket(users, xiehe, subject="服药后心悸"))
    client = web(role)

    confirm = client.post(reverse("safety:triage-confirm", args=[flag.pk]), {"kind": "adverse_reaction"})
    dismiss = client.post(reverse("safety:triage-dismiss", args=[flag.pk]), {"reason": "x"})

    assert (confirm.status_code, dismiss.status_code) == (403, 403)
    flag.refresh_from_db()
    assert flag.status == SignalStatus.PENDING


def test_the_queue_costs_the_same_queries_for_more_flags(users, xiehe, web):
    client = web("pv")
    for n in range(3):
        make_ticket(users, xiehe, subject=f"服药后皮疹 {n}")
    client.get(reverse("safety:triage"))  # warm caches (session, calendar)
    with CaptureQueriesContext(connection) as few:
        assert client.get(reverse("safety:triage")).status_code == 200
    for n in range(6):
        make_ticket(users, xiehe, subject=f"服药后头晕 {n}")
    with CaptureQueriesContext(connection) as many:
        assert client.get(reverse("safety:triage")).status_code == 200

    assert len(many) == len(few)


def test_the_recently_triaged_list_costs_the_same_queries_for_more_flags(
    users, xiehe, web, make_user, django_assert_max_num_queries
):
    # an officer known by their name (no display name set): each row named them with two queries more
    officer = make_user("li.na", Role.PV)
    User = type(officer)
    User.objects.filter(pk=officer.pk).update(display_name="", first_name="娜", last_name="李")
    officer.refresh_from_db()

    def triaged(count: int, start: int) -> None:
        for n in range(start, start + count):
            services.dismiss_flag(officer, flag_of(make_ticket(users, xiehe, subject=f"服药后皮疹 {n}")),
                                  reason="只是咨询")  # fmt: skip

    client = web("pv")
    triaged(2, 0)
    client.get(reverse("safety:triage"), {"tab": "recent"})  # warm caches (session, calendar)
    with CaptureQueriesContext(connection) as few:
        page = client.get(reverse("safety:triage"), {"tab": "recent"}).content.decode()
    assert page.count("李娜") == 2
    triaged(6, 2)
    with django_assert_max_num_queries(len(few)):
        page = client.get(reverse("safety:triage"), {"tab": "recent"}).content.decode()
    assert page.count("李娜") == 8


# --- batch trace -------------------------------------------------------------------------------------------


def test_the_batch_trace_lists_the_customers_and_the_cases_of_a_batch(users, xiehe, web, make_case):
    ticket = make_ticket(users, xiehe, subject="药片有异物", batch_number="B20260901")
    case = make_case()  # its suspect drug is batch B20260901

    page = web("manager").get(reverse("safety:batch-trace"), {"batch": "b20260901"}).content.decode()

    assert "北京协和医院" in page
    assert "张伟" in page
    assert ticket.number in page
    assert case.number in page
    assert "王XX" not in page


def test_the_batch_trace_lists_a_case_whose_batch_was_typed_in_full_width(users, xiehe, web, make_case):
    """The agent's input method was in full-width mode: the ticket, and the case opened from it, say ２１Ｅ００５. QA
    traced 21E005 (or typed ２１Ｅ００５ themselves): the hospital was listed, but 'Cases and complaints on this batch'
    said there were none — the case to recall from was not on the page."""
    wide = make_case(drugs=[{**COMPLETE["drugs"][0], "batch": "２１Ｅ００５"}])
    narrow = make_case(drugs=[{**COMPLETE["drugs"][0], "batch": "21E005"}])

    for typed in ("21e005", "２１Ｅ００５"):
        page = web("manager").get(reverse("safety:batch-trace"), {"batch": typed}).content.decode()
        cases = page.split('id="batch-cases"', 1)[1]
        assert wide.number in cases and narrow.number in cases, typed


def test_the_batch_trace_asks_for_a_batch(web):
    response = web("pv").get(reverse("safety:batch-trace"), {"batch": " "})

    assert response.status_code == 400


# --- imports -------------------------------------------------------------------------------------------------


def upload(name: str, content: bytes, what: str) -> dict:
    return {"what": what, f"{what}-file": SimpleUploadedFile(name, content, content_type="application/xml")}


def test_an_fda_example_imported_through_the_page_becomes_a_case(web):
    data = (FDA / "FAERS2022Scenario1.xml").read_bytes()

    response = web("pv").post(reverse("safety:import"), upload("FAERS2022Scenario1.xml", data, "icsr"))

    assert response.status_code == 200
    case = SafetyCase.objects.get()
    assert case.worldwide_id.startswith("US-APHARMA-")
    page = response.content.decode()
    assert reverse("safety:case", args=[case.pk]) in page
    assert "new case" in page
    assert AuditEntry.objects.filter(
        action=AuditEntry.Action.IMPORT, object_type="safety.safetycase"
    ).exists()


def test_importing_the_same_file_again_adds_no_case(web):
    data = (FDA / "FAERS2022Scenario2.xml").read_bytes()
    client = web("pv")
    client.post(reverse("safety:import"), upload("s2.xml", data, "icsr"))

    again = client.post(reverse("safety:import"), upload("s2.xml", data, "icsr"))

    assert again.status_code == 200
    assert SafetyCase.objects.count() == 1
    assert "already known, nothing new" in again.content.decode()


def test_an_oversized_upload_is_refused_and_nothing_is_written(web):
    big = b"<x>" + b" " * schema.max_bytes() + b"</x>"

    response = web("pv").post(reverse("safety:import"), upload("big.xml", big, "icsr"))

    assert response.status_code == 413
    assert "50 MB" in response.content.decode()
    assert not SafetyCase.objects.exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("report.txt", b"<ichicsr/>", "Choose an E2B(R3) XML file"),
        ("report.xml", b"PK\x03\x04 this is a zip", "This is not an XML file."),
        ("report.xml", b"<a><b></a>", "not well-formed XML (line 1"),
    ],
)
def test_a_file_that_is_not_e2b_xml_is_refused(web, name, content, message):
    response = web("pv").post(reverse("safety:import"), upload(name, content, "icsr"))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not SafetyCase.objects.exists()


def test_schema_errors_are_listed_with_their_lines(web):
    data = (FDA / "FAERS2022Scenario1.xml").read_bytes().replace(b"<creationTime", b"<creationTimeX", 1)
    data = data.replace(b"</creationTime>", b"</creationTimeX>", 1)

    response = web("pv").post(reverse("safety:import"), upload("s1.xml", data, "icsr"))

    page = response.content.decode()
    assert response.status_code == 400
    assert "does not validate against the E2B(R3) schema" in page
    assert re.search(r"Line \d+: ", page)
    assert not SafetyCase.objects.exists()


def test_a_negative_acknowledgement_through_the_page_reopens_the_case(users, web):
    client = web("pv")
    data = (FDA / "FAERS2022Scenario2.xml").read_bytes()
    client.post(reverse("safety:import"), upload("s2.xml", data, "icsr"))
    case = SafetyCase.objects.get()
    submission = services.record_submission(
        users["pv"], case, {"jurisdiction": "US", "channel": "fda_esg", "late_reason": "partner case",
                            "message_id": "FAERS2022Scenario2-4069-a2dd-08002b30309d"},
        otp_code=sign_code(users["pv"]),
    )  # fmt: skip

    response = client.post(
        reverse("safety:import"), upload("neg.ack", (FDA / "R3ack-negative.ack").read_bytes(), "ack")
    )

    assert response.status_code == 200
    submission.refresh_from_db()
    case.refresh_from_db()
    assert submission.ack_status == AckStatus.REJECTED
    assert case.status == CaseStatus.ASSESSING
    assert "Patient Ethnicity Code (FDA.D.12) must be provided" in response.content.decode()


def test_an_acknowledgement_for_an_unknown_batch_writes_nothing(web):
    response = web("pv").post(
        reverse("safety:import"), upload("pos.ack", (FDA / "R3ack-positive.ack").read_bytes(), "ack")
    )

    assert response.status_code == 400
    assert "No submission was sent in batch" in response.content.decode()
    assert not Submission.objects.exists()


# --- reporting rules ---------------------------------------------------------------------------------------


def rule_post(rule: ReportingRule, **changes) -> dict:
    data = {"name": rule.name, "condition": rule.condition, "within": rule.within, "unit": rule.unit,
            "position": rule.position, "active": "on" if rule.active else "", "legal_basis": rule.legal_basis,
            "version": rule.version}  # fmt: skip
    data.update(changes)
    return data


def test_a_rule_edit_is_saved_audited_and_bumps_the_version(users, web):
    rule = ReportingRule.objects.get(code="CN-OTHER")

    response = web("pv").post(reverse("safety:rule-edit", args=[rule.pk]), rule_post(rule, within=20))

    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.within, rule.version) == (20, 2)
    entry = AuditEntry.objects.get(object_type="safety.reportingrule", object_id=str(rule.pk))
    assert entry.changes == {"within": [30, 20]}


def test_a_rule_edited_meanwhile_is_a_conflict(users, web):
    rule = ReportingRule.objects.get(code="CN-OTHER")
    stale = rule_post(rule, within=25)
    web("admin").post(reverse("safety:rule-edit", args=[rule.pk]), rule_post(rule, legal_basis="新依据"))

    response = web("pv").post(reverse("safety:rule-edit", args=[rule.pk]), stale)

    assert response.status_code == 409
    assert "Someone else changed this rule" in response.content.decode()
    rule.refresh_from_db()
    assert (rule.within, rule.legal_basis, rule.version) == (30, "新依据", 2)


@pytest.mark.parametrize(("within", "unit"), [(0, "days"), (366, "days"), (721, "hours")])
def test_a_deadline_must_be_sensible(web, within, unit):
    rule = ReportingRule.objects.get(code="CN-NEW-SERIOUS")

    response = web("pv").post(reverse("safety:rule-edit", args=[rule.pk]), rule_post(rule, within=within,
                                                                                               unit=unit))  # fmt: skip

    assert response.status_code == 400
    rule.refresh_from_db()
    assert (rule.within, rule.unit) == (15, "days")


def test_switching_on_the_fda_rule_gives_new_cases_an_fda_clock(users, web, make_case):
    rule = ReportingRule.objects.get(code="US-15DAY")
    before = make_case(
        reactions=[{**COMPLETE["reactions"][0], "hospitalisation": True}], expectedness="unexpected"
    )

    response = web("admin").post(reverse("safety:rule-active", args=[rule.pk]),
                                        {"active": "1", "version": rule.version})  # fmt: skip

    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.active
    after = make_case(
        reactions=[{**COMPLETE["reactions"][0], "hospitalisation": True}], expectedness="unexpected"
    )
    assert not before.clocks.filter(jurisdiction="US").exists()
    assert after.clocks.filter(jurisdiction="US", rule=rule).exists()


def test_the_auditor_cannot_switch_a_rule(web):
    rule = ReportingRule.objects.get(code="US-15DAY")

    response = web("auditor").post(reverse("safety:rule-active", args=[rule.pk]),
                                          {"active": "1", "version": rule.version})  # fmt: skip

    assert response.status_code == 403
    rule.refresh_from_db()
    assert not rule.active


def test_confirm_and_dismiss_sent_twice_show_what_the_first_did(users, xiehe, web, make_user, client):
    """A double click on Confirm (or Dismiss) answered the second time "this flag was triaged already" on the queue;
    the second now shows the case the first opened (the queue, the flag dismissed). A colleague's decision is
    still told as made already."""
    ticket = make_ticket(users, xiehe, subject="服药后呕吐")
    flag = flag_of(ticket)
    pv = web("pv")
    url = reverse("safety:triage-confirm", args=[flag.pk])
    assert pv.post(url, {"kind": "adverse_reaction"}, follow=True).status_code == 200
    again = pv.post(url, {"kind": "adverse_reaction"}, follow=True)
    case = SafetyCase.objects.get(source_ticket=ticket)  # one
    assert again.redirect_chain[-1][0] == reverse("safety:case", args=[case.pk])
    assert [str(m) for m in again.context["messages"]] == [f"Case {case.number} was opened from the flag."]
    from tests.conftest import otp_verify

    colleague = make_user("pv2", Role.PV)
    client.force_login(colleague)
    otp_verify(client, colleague)
    assert client.post(url, {"kind": "adverse_reaction"}, follow=True).redirect_chain[-1][0] == reverse(
        "safety:triage")  # a colleague is told it was triaged already  # fmt: skip

    other = make_ticket(users, xiehe, subject="说明书上写的副作用有哪些皮疹？")
    flag = Flag.objects.filter(ticket=other, status=SignalStatus.PENDING).first() or services.raise_flag(
        other, kind="adverse_reaction", terms=["皮疹"], excerpt=other.subject, by_agent=True)  # fmt: skip
    url = reverse("safety:triage-dismiss", args=[flag.pk])
    assert pv.post(url, {"reason": "咨询，非不良反应"}, follow=True).status_code == 200
    again = pv.post(url, {"reason": "咨询，非不良反应"}, follow=True)
    said = [str(m) for m in again.context["messages"]]
    assert len(said) == 1 and "was dismissed" in said[0]
