"""The case pages: who sees what, the list and its due panel, editing with the optimistic lock, follow-ups,
closing, the E2B(R3) export and the submission with an electronic signature, quality and CAPA, files, and
the safety panel on the ticket page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from lxml import etree

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.engagement import services as engagement
from pharmacrm.safety import services
from pharmacrm.safety.e2b import schema
from pharmacrm.safety.models import Capa, CaseFile, CaseVersion, SafetyCase, SafetyClock, Submission
from pharmacrm.servicedesk import services as desk

from .conftest import COMPLETE, next_code, sign_code

pytestmark = pytest.mark.django_db

OVERSEERS = ("manager", "admin", "auditor")
NOT_SAFETY = ("agent", "kam", "expert", "support", "aftersales", "rep", "analyst")
PATIENT = COMPLETE["patient_name"]  # 王XX
NARRATIVE_BIT = "抗过敏治疗"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def html(response) -> str:
    return response.content.decode()


def table(response) -> str:
    """The case table of the list page (without the due panel above it)."""
    return re.search(r'class="table case-table".*?</table>', html(response), re.S).group(0)


def reads(case, user) -> int:
    return AuditEntry.objects.filter(action=AuditEntry.Action.READ_PERSONAL, object_id=str(case.pk),
                                     actor=user).count()  # fmt: skip


def form_data(case, **changes) -> dict:
    """The edit form as the page fills it for `case`, with `changes` applied (one drug, one reaction)."""
    case.refresh_from_db()
    data = {
        "version": case.version, "kind": case.kind, "report_type": case.report_type, "country": case.country,
        "expectedness": case.expectedness, "causality_reporter": case.causality_reporter,
        "causality_company": case.causality_company, "narrative": case.narrative,
        "reporter_country": case.reporter_country, "reporter_qualification": case.reporter_qualification,
        "drugs-TOTAL_FORMS": "0", "drugs-INITIAL_FORMS": "0",
        "reactions-TOTAL_FORMS": "0", "reactions-INITIAL_FORMS": "0",
    }  # fmt: skip
    for field in services.PATIENT_FIELDS + services.REPORTER_FIELDS:
        value = getattr(case, field)
        data[field] = value.isoformat() if isinstance(value, dt.date) else (value or "")
    for i, drug in enumerate(case.drugs.all()):
        data["drugs-TOTAL_FORMS"] = data["drugs-INITIAL_FORMS"] = str(i + 1)
        for f in (
            "role",
            "brand_name",
            "generic_name",
            "batch",
            "dose",
            "dose_unit",
            "route",
            "action_taken",
        ):
            data[f"drugs-{i}-{f}"] = getattr(drug, f)
    for i, reaction in enumerate(case.reactions.all()):
        data["reactions-TOTAL_FORMS"] = data["reactions-INITIAL_FORMS"] = str(i + 1)
        for f in ("verbatim", "language", "meddra_version", "meddra_llt", "outcome"):
            data[f"reactions-{i}-{f}"] = getattr(reaction, f)
        for f in ("death", "hospitalisation"):
            if getattr(reaction, f):
                data[f"reactions-{i}-{f}"] = "on"
    data.update(changes)
    return data


@pytest.fixture
def agent_ticket(users, xiehe):
    """A ticket the agent logged about a rash: the net flags it for PV."""
    return desk.create_ticket(users["agent"], {
        "subject": "用药后出现皮疹", "description": "患者静脉滴注后出现全身皮疹。", "channel": "phone",
        "category": "drug_info", "institution": xiehe,
    })  # fmt: skip


# --- access per role -------------------------------------------------------------------------------------


def test_the_case_list_is_for_pv_and_the_overseeing_roles_only(client_for, make_case):
    case = make_case()
    url = reverse("safety:cases")
    for role in ("pv", *OVERSEERS):
        response = client_for(role).get(url)
        assert response.status_code == 200, role
        assert case.number in html(response) and PATIENT not in html(response)
    for role in NOT_SAFETY:
        assert client_for(role).get(url).status_code == 403, role


def test_pv_sees_the_whole_case_and_each_view_is_audited(client_for, users, make_case):
    case = make_case()
    page = html(client_for("pv").get(reverse("safety:case", args=[case.pk])))
    assert PATIENT in page and "张伟" in page and NARRATIVE_BIT in page and "全身皮疹伴瘙痒" in page
    assert 'id="case-actions"' in page
    assert reads(case, users["pv"]) == 1
    client_for("pv").get(reverse("safety:case", args=[case.pk]))
    assert reads(case, users["pv"]) == 2


@pytest.mark.parametrize("role", OVERSEERS)
def test_overseeing_roles_see_the_header_clocks_and_submissions_but_no_identity(
    client_for, users, make_case, role
):
    case = make_case()
    response = client_for(role).get(reverse("safety:case", args=[case.pk]))
    page = html(response)
    assert response.status_code == 200
    assert case.number in page and 'id="clock-table"' in page and 'id="submissions"' in page
    for secret in (PATIENT, "张伟", "13800138000", NARRATIVE_BIT, "全身皮疹伴瘙痒", "高血压"):
        assert secret not in page, secret
    assert 'id="case-actions"' not in page
    assert reads(case, users[role]) == 0


@pytest.mark.parametrize("role", NOT_SAFETY)
def test_staff_unrelated_to_the_case_get_no_page(client_for, make_case, role):
    case = make_case()
    assert client_for(role).get(reverse("safety:case", args=[case.pk])).status_code == 404


def test_the_reporting_agent_sees_the_status_only(client_for, users, agent_ticket, make_user):
    pv = client_for("pv")
    response = pv.post(reverse("safety:from-ticket", args=[agent_ticket.pk]), {"kind": "adverse_reaction"})
    case = SafetyCase.objects.get(source_ticket=agent_ticket)
    assert response.status_code == 302 and response["Location"] == reverse("safety:case", args=[case.pk])
    services.update_case(users["pv"], case, {"patient_name": "李某某", "patient_sex": "1"})

    response = client_for("agent").get(reverse("safety:case", args=[case.pk]))
    page = html(response)
    assert response.status_code == 200 and 'id="case-status"' in page
    assert case.number in page and 'id="submitted"' in page
    for secret in ("李某某", "张伟", "全身皮疹", "13800138000"):
        assert secret not in page, secret
    assert 'id="clock-table"' not in page and 'id="case-actions"' not in page
    # the agent cannot act on it
    assert client_for("agent").post(reverse("safety:case-status", args=[case.pk]),
                                    {"status": "closed", "version": case.version}).status_code == 403  # fmt: skip
    # another agent, not involved, does not see it
    other = make_user("agent2", Role.AGENT)
    from django.test import Client

    c = Client()
    c.force_login(other)
    assert c.get(reverse("safety:case", args=[case.pk])).status_code == 404


@pytest.mark.parametrize("role", ["auditor", "manager", "agent"])
def test_only_pv_may_act_on_a_case(client_for, make_case, role):
    case = make_case()
    for name in ("safety:case-edit", "safety:case-follow-up", "safety:case-report-pdf"):
        assert client_for(role).get(reverse(name, args=[case.pk])).status_code == 403
    assert client_for(role).get(reverse("safety:case-new")).status_code == 403
    assert client_for(role).post(reverse("safety:case-export", args=[case.pk]), {}).status_code == 403


# --- the list ------------------------------------------------------------------------------------------


def test_the_list_shows_validity_seriousness_and_the_next_deadline(client_for, users, make_case):
    valid = make_case()
    invalid = make_case(reporter_name="", reporter_contact="", reporter_institution="", reporter_qualification="")
    overdue = make_case(received_at=timezone.now() - dt.timedelta(days=40))
    page = html(client_for("pv").get(reverse("safety:cases")))
    row = re.search(rf'data-number="{invalid.number}".*?</tr>', page, re.S).group(0)
    assert "valid-badge" not in row and "missing-badge" in row
    assert "valid-badge" in re.search(rf'data-number="{valid.number}".*?</tr>', page, re.S).group(0)
    assert 'data-overdue="true"' in re.search(rf'data-number="{overdue.number}".*?</tr>', page, re.S).group(0)

    only_overdue = table(client_for("pv").get(reverse("safety:cases"), {"overdue": "on"}))
    assert overdue.number in only_overdue and valid.number not in only_overdue
    only_invalid = table(client_for("pv").get(reverse("safety:cases"), {"valid": "no"}))
    assert invalid.number in only_invalid and valid.number not in only_invalid
    by_number = table(client_for("manager").get(reverse("safety:cases"), {"q": valid.number}))
    assert valid.number in by_number and invalid.number not in by_number
    # the due panel lists the earliest deadline first: the overdue case on top
    due = re.search(r'id="due-table".*?</table>', page, re.S).group(0)
    assert due.index(overdue.number) < due.index(valid.number)


def test_the_due_panel_shows_my_cases_with_a_toggle_for_all(client_for, users, make_case, make_user):
    mine = make_case()
    other_pv = make_user("pv2", Role.PV)
    theirs = services.create_case(
        other_pv, {**COMPLETE, "received_at": timezone.now() - dt.timedelta(days=2)}
    )
    due = re.search(
        r'id="due".*?</section>', html(client_for("pv").get(reverse("safety:cases"))), re.S
    ).group(0)
    assert mine.number in due and theirs.number not in due
    due = re.search(r'id="due".*?</section>',
                    html(client_for("pv").get(reverse("safety:cases"), {"due": "all"})), re.S).group(0)  # fmt: skip
    assert mine.number in due and theirs.number in due


def test_the_list_needs_the_same_number_of_queries_for_many_cases(
    client_for, make_case, django_assert_num_queries
):
    pv = client_for("pv")
    url = reverse("safety:cases")
    for _i in range(2):
        make_case()
    pv.get(url)  # warm the session and the user's roles
    with django_assert_num_queries(9) as first:  # (+2: the latest reports of the page's cases, at once)
        pv.get(url)
    for _i in range(5):
        make_case(received_at=timezone.now() - dt.timedelta(days=20))
    with django_assert_num_queries(len(first.captured_queries)):
        pv.get(url)


# --- new case, from a ticket -------------------------------------------------------------------------------


def test_pv_opens_a_case_directly_with_day_0_from_the_form(client_for, users):
    day0 = timezone.localtime() - dt.timedelta(days=3)
    response = client_for("pv").post(reverse("safety:case-new"), {
        "kind": "adverse_reaction", "received_at": day0.strftime("%Y-%m-%dT%H:%M"),
        "reporter_name": "刘药师", "reporter_qualification": "2", "patient_name": "赵某", "patient_age": "60",
        "drug_brand_name": "罗氏芬", "reaction_verbatim": "恶心呕吐", "reaction_hospitalisation": "on",
        "narrative": "服药后恶心呕吐，住院观察。",
    })  # fmt: skip
    case = SafetyCase.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("safety:case", args=[case.pk])
    assert case.valid and case.serious and case.owner == users["pv"]
    assert timezone.localtime(case.received_at).strftime("%Y-%m-%d %H:%M") == day0.strftime("%Y-%m-%d %H:%M")


def test_a_new_case_in_the_future_is_refused_at_its_field(client_for):
    future = timezone.localtime() + dt.timedelta(days=2)
    response = client_for("pv").post(reverse("safety:case-new"), {
        "kind": "adverse_reaction", "received_at": future.strftime("%Y-%m-%dT%H:%M"),
    })  # fmt: skip
    assert response.status_code == 400 and SafetyCase.objects.count() == 0
    assert re.search(r'id="field-received_at".*?class="error"', html(response), re.S)


def test_a_case_opened_from_an_interaction_links_back(client_for, users, xiehe):
    interaction = engagement.record_interaction(users["rep"], {
        "institution": xiehe, "channel": "visit", "subject": "拜访心内科", "notes": "主任提到一位患者用药后头晕。",
        "received_at": timezone.now() - dt.timedelta(hours=5),
    })  # fmt: skip
    response = client_for("pv").post(
        reverse("safety:from-interaction", args=[interaction.pk]), {"kind": "adverse_reaction"}
    )
    case = SafetyCase.objects.get(source_interaction=interaction)
    assert response.status_code == 302
    assert case.received_at == interaction.received_at  # day 0 is when the rep heard it
    # the case's source leads to the visit itself (it led to the list of every interaction, where PV had to hunt it)
    page = html(client_for("pv").get(reverse("safety:case", args=[case.pk])))
    source = re.search(r'<dd id="case-source">(.*?)</dd>', page, re.S)
    assert f'href="{reverse("engagement:interaction", args=[interaction.pk])}"' in source.group(1)
    # the rep who recorded it sees the status only
    assert 'id="case-status"' in html(client_for("rep").get(reverse("safety:case", args=[case.pk])))


def test_the_case_page_header_lists_what_is_missing_without_a_dangling_comma(client_for, make_case):
    """A case missing only its reporter read "缺失: 可识别的报告者, ·" — a comma left for criteria that were there."""
    case = make_case(reporter_name="", reporter_contact="", reporter_institution="", reporter_qualification="")
    page = html(client_for("pv").get(reverse("safety:case", args=[case.pk])))
    badge = re.search(r'<span class="missing-badge" id="case-valid">(.*?)</span>', page, re.S).group(1)
    assert badge.strip().endswith("可识别的报告者")


# --- edit, follow-up, status ---------------------------------------------------------------------------------


def test_pv_edits_a_case_and_a_stale_version_is_refused_keeping_the_input(client_for, make_case):
    case = make_case(reporter_name="", reporter_contact="", reporter_institution="", reporter_qualification="")
    pv = client_for("pv")
    assert pv.get(reverse("safety:case-edit", args=[case.pk])).status_code == 200
    stale = form_data(case)["version"]
    response = pv.post(reverse("safety:case-edit", args=[case.pk]), form_data(case, reporter_name="陈医生"))
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.valid and case.reporter_name == "陈医生"

    response = pv.post(reverse("safety:case-edit", args=[case.pk]),
                       form_data(case, version=stale, reporter_name="另一位"))  # fmt: skip
    assert response.status_code == 409
    page = html(response)
    assert 'id="conflict"' in page and "另一位" in page
    case.refresh_from_db()
    assert case.reporter_name == "陈医生"


def test_edit_errors_appear_at_the_field_of_their_row(client_for, make_case):
    case = make_case()
    response = client_for("pv").post(reverse("safety:case-edit", args=[case.pk]),
                                     form_data(case, **{"drugs-0-brand_name": "", "drugs-0-generic_name": ""}))  # fmt: skip
    assert response.status_code == 400
    row = re.search(r'id="drug-rows".*?</fieldset>', html(response), re.S).group(0)
    assert re.search(r'class="field has-error[^"]*" id="field-drugs-0-brand_name"', row)  # the row's own id


def test_adding_and_removing_rows(client_for, make_case):
    case = make_case()
    pv = client_for("pv")
    response = pv.post(reverse("safety:case-edit", args=[case.pk]), form_data(case, add_row="reactions"))
    assert response.status_code == 200 and 'name="reactions-1-verbatim"' in html(response)
    data = form_data(case, **{"reactions-TOTAL_FORMS": "2", "reactions-1-verbatim": "头晕",
                              "reactions-1-language": "zho", "drugs-0-DELETE": "on",
                              "drugs-TOTAL_FORMS": "2", "drugs-1-role": "1", "drugs-1-brand_name": "新药"})  # fmt: skip
    assert pv.post(reverse("safety:case-edit", args=[case.pk]), data).status_code == 302
    assert [r.verbatim for r in case.reactions.all()] == ["全身皮疹伴瘙痒", "头晕"]
    assert [d.brand_name for d in case.drugs.all()] == ["新药"]


def test_a_follow_up_creates_a_version_with_its_own_clock(client_for, make_case):
    case = make_case(received_at=timezone.now() - dt.timedelta(days=5))
    received = timezone.localtime() - dt.timedelta(hours=2)
    data = form_data(case, received_at=received.strftime("%Y-%m-%dT%H:%M"), summary="医院补充：患者已住院",
                     **{"reactions-0-hospitalisation": "on"})  # fmt: skip
    response = client_for("pv").post(reverse("safety:case-follow-up", args=[case.pk]), data)
    assert response.status_code == 302
    follow = CaseVersion.objects.get(case=case, sequence=1)
    assert "reactions" in follow.changes and follow.summary == "医院补充：患者已住院"
    clock = SafetyClock.objects.get(case_version=follow)
    assert timezone.localtime(clock.started_at).strftime("%H:%M") == received.strftime("%H:%M")
    page = html(client_for("pv").get(reverse("safety:case", args=[case.pk])))
    assert 'data-sequence="1"' in page and "医院补充" in page


def test_a_follow_up_sent_twice_is_added_once(client_for, make_case):
    """A double click on 'save follow-up': the second request found the case changed and answered 'someone else
    changed this case … submit again'; submitted again, the same news became a second version with its own clock."""
    case = make_case(received_at=timezone.now() - dt.timedelta(days=5))
    pv = client_for("pv")
    url = reverse("safety:case-follow-up", args=[case.pk])
    token = re.search(r'name="form_token" value="([^"]+)"', html(pv.get(url))).group(1)
    received = timezone.localtime() - dt.timedelta(hours=2)
    data = form_data(case, received_at=received.strftime("%Y-%m-%dT%H:%M"), summary="医院补充：患者已住院",
                     form_token=token, **{"reactions-0-hospitalisation": "on"})  # fmt: skip
    first, second = pv.post(url, data), pv.post(url, data)
    assert first.status_code == second.status_code == 302
    assert second["Location"] == reverse("safety:case", args=[case.pk])
    assert CaseVersion.objects.filter(case=case).count() == 2  # the initial report and one follow-up


def test_closing_a_quality_complaint_is_refused_naming_the_three_missing_fields(client_for, make_case):
    case = make_case(kind="quality", reactions=[])
    problems = services.closing_problems(case)
    response = client_for("pv").post(reverse("safety:case-status", args=[case.pk]),
                                     {"status": "closed", "version": case.version})  # fmt: skip
    assert response.status_code == 400
    page = html(response)
    for field in ("batch", "investigation_outcome", "recall_decision"):
        assert problems[field][0] in page, field
    case.refresh_from_db()
    assert case.status != "closed"


def test_a_quality_complaint_closes_once_investigated(client_for, users, make_case):
    case = make_case(kind="quality", reactions=[])
    pv = client_for("pv")
    page = html(pv.get(reverse("safety:case", args=[case.pk])))
    assert 'id="quality"' in page and 'id="capa"' in page
    response = pv.post(reverse("safety:case-quality", args=[case.pk]), {
        "batch": "B20260901", "defect": "瓶内有异物", "investigation_outcome": "灌装线滤网破损", "root_cause": "设备老化",
        "recall_decision": "none", "qa_owner": users["pv"].pk, "version": case.version,
    })  # fmt: skip
    assert response.status_code == 302
    page = html(pv.get(reverse("safety:case", args=[case.pk])))
    assert reverse("safety:batch-trace") + "?batch=B20260901" in page
    case.refresh_from_db()
    assert pv.post(reverse("safety:case-status", args=[case.pk]),
                   {"status": "closed", "version": case.version}).status_code == 302  # fmt: skip
    case.refresh_from_db()
    assert case.status == "closed"


def test_capa_is_added_done_and_checked(client_for, users, make_case):
    case = make_case(kind="quality", reactions=[])
    pv = client_for("pv")
    due = (timezone.localdate() + dt.timedelta(days=30)).isoformat()
    assert pv.post(reverse("safety:case-capa", args=[case.pk]),
                   {"action": "更换滤网", "owner": users["pv"].pk, "due_date": due}).status_code == 302  # fmt: skip
    capa = Capa.objects.get()
    url = reverse("safety:case-capa-update", args=[case.pk, capa.pk])
    assert pv.post(url, {f"capa{capa.pk}-status": "done", f"capa{capa.pk}-version": 1}).status_code == 302
    response = pv.post(url, {f"capa{capa.pk}-status": "effective", f"capa{capa.pk}-version": 2})
    assert response.status_code == 400  # the effectiveness check must be described
    assert pv.post(url, {f"capa{capa.pk}-status": "effective", f"capa{capa.pk}-version": 2,
                         f"capa{capa.pk}-effectiveness_check": "三批次复检合格"}).status_code == 302  # fmt: skip
    capa.refresh_from_db()
    assert capa.status == "effective" and capa.done_at and capa.checked_at
    # the page always carries the version: a form without one is stale, not a change of whatever the action holds
    stale = pv.post(url, {f"capa{capa.pk}-status": "not_effective", f"capa{capa.pk}-effectiveness_check": "复检仍有异物"})
    capa.refresh_from_db()
    assert stale.status_code == 409 and capa.status == "effective"


def test_a_capa_action_changed_meanwhile_is_a_conflict_keeping_the_input(client_for, users, make_case):
    case = make_case(kind="quality", reactions=[])
    capa = services.add_capa(users["pv"], case, {"action": "更换滤网", "owner": users["pv"],
                                                 "due_date": timezone.localdate() + dt.timedelta(days=30)})  # fmt: skip
    first, second = client_for("pv"), client_for("pv")
    page = html(second.get(reverse("safety:case", args=[case.pk])))
    loaded = re.search(rf'name="capa{capa.pk}-version" value="(\d+)"', page).group(1)
    url = reverse("safety:case-capa-update", args=[case.pk, capa.pk])
    assert first.post(url, {f"capa{capa.pk}-status": "not_effective", f"capa{capa.pk}-version": loaded,
                            f"capa{capa.pk}-effectiveness_check": "复检仍有异物"}).status_code == 302  # fmt: skip
    # the second officer, on the page loaded before, records it effective: refused, their words kept
    response = second.post(url, {f"capa{capa.pk}-status": "effective", f"capa{capa.pk}-version": loaded,
                                 f"capa{capa.pk}-effectiveness_check": "三批次复检合格"})  # fmt: skip
    assert response.status_code == 409
    page = html(response)
    assert "其他人修改了此病例" in page
    assert "三批次复检合格" in page
    capa.refresh_from_db()
    assert capa.status == "not_effective" and capa.effectiveness_check == "复检仍有异物"


def test_a_capa_update_sent_twice_is_saved_once_and_not_called_a_conflict(client_for, users, make_case):
    case = make_case(kind="quality", reactions=[])
    capa = services.add_capa(users["pv"], case, {"action": "更换滤网", "owner": users["pv"],
                                                 "due_date": timezone.localdate() + dt.timedelta(days=30)})  # fmt: skip
    pv = client_for("pv")
    url = reverse("safety:case-capa-update", args=[case.pk, capa.pk])
    sent = {f"capa{capa.pk}-status": "effective", f"capa{capa.pk}-version": capa.version,
            f"capa{capa.pk}-effectiveness_check": "三批次复检合格"}  # fmt: skip
    assert pv.post(url, sent).status_code == 302
    assert pv.post(url, sent).status_code == 302  # a double click: the same update, already saved
    capa.refresh_from_db()
    assert capa.status == "effective" and capa.version == 2
    assert AuditEntry.objects.filter(object_type="safety.capa", object_id=str(capa.pk), action="update").count() == 1


def test_nullify_needs_a_reason_at_its_field(client_for, make_case):
    case = make_case()
    response = client_for("pv").post(reverse("safety:case-status", args=[case.pk]),
                                     {"status": "nullified", "version": case.version})  # fmt: skip
    assert response.status_code == 400
    assert re.search(r'class="field has-error[^"]*" id="field-close-reason"', html(response))


def test_closing_sent_twice_closes_once_and_is_not_called_a_conflict(client_for, make_case):
    case = make_case()
    pv = client_for("pv")
    sent = {"status": "closed", "reason": "报告者失联，无法随访", "version": case.version}
    assert pv.post(reverse("safety:case-status", args=[case.pk]), sent).status_code == 302
    again = pv.post(reverse("safety:case-status", args=[case.pk]), sent)  # a double click
    assert again.status_code == 302
    case.refresh_from_db()
    assert case.status == "closed"
    entries = AuditEntry.objects.filter(object_type="safety.safetycase", object_id=str(case.pk), action="update")
    assert [e.changes.get("status", [None, None])[1] for e in entries].count("closed") == 1
    # another change meanwhile is still a conflict
    stale = {"status": "nullified", "reason": "重复病例", "version": sent["version"]}
    assert pv.post(reverse("safety:case-status", args=[case.pk]), stale).status_code == 409


# --- export and submission -------------------------------------------------------------------------------------


def test_an_export_refused_lists_each_problem_with_its_element_and_field(client_for, users, make_case):
    case = make_case(reactions=[{"verbatim": "皮疹", "outcome": "1"}])  # no MedDRA code
    response = client_for("pv").post(reverse("safety:case-export", args=[case.pk]),
                                     {"purpose": "regulatory", "otp_code": sign_code(users["pv"])})  # fmt: skip
    assert response.status_code == 400
    page = html(response)
    problems = re.search(r'id="export-problems".*?</div>', page, re.S).group(0)
    assert 'data-element="E.i.2.1b"' in problems and 'data-field="reactions[0].meddra_llt"' in problems
    assert reverse("safety:case-edit", args=[case.pk]) + "#id_reactions-0-meddra_llt" in problems


def test_export_with_a_good_code_downloads_a_schema_valid_icsr_and_a_wrong_code_is_refused(
    client_for, users, make_case
):
    case = make_case()
    pv = client_for("pv")
    response = pv.post(reverse("safety:case-export", args=[case.pk]),
                       {"purpose": "regulatory", "otp_code": sign_code(users["pv"])})  # fmt: skip
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    assert schema.validate(response.content, schema.BATCH) == []
    root = etree.fromstring(response.content)
    assert etree.QName(root).localname == "MCCI_IN200100UV01"
    message_id = root.find("{urn:hl7-org:v3}id").get("extension")
    # the submission form is prefilled with the batch id of that export
    page = html(pv.get(reverse("safety:case", args=[case.pk])))
    assert f'value="{message_id}"' in page

    response = pv.post(
        reverse("safety:case-export", args=[case.pk]), {"purpose": "regulatory", "otp_code": "000000"}
    )
    assert response.status_code == 400
    assert re.search(r'class="field has-error[^"]*" id="field-otp_code"', html(response))


def test_a_late_submission_needs_a_reason_and_is_recorded_late(client_for, users, make_case):
    case = make_case(received_at=timezone.now() - dt.timedelta(days=40))
    pv = client_for("pv")
    assert 'id="late-warning"' in html(pv.get(reverse("safety:case", args=[case.pk])))
    data = {"jurisdiction": "CN", "kind": "report", "channel": "nmpa",
            "submitted_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"), "otp_code": sign_code(users["pv"])}  # fmt: skip
    response = pv.post(reverse("safety:case-submission", args=[case.pk]), data)
    assert response.status_code == 400 and Submission.objects.count() == 0
    assert re.search(r'class="field has-error[^"]*" id="field-submission-late_reason"', html(response))

    data.update(late_reason="报告人补充资料延迟", otp_code=next_code(users["pv"]))
    assert pv.post(reverse("safety:case-submission", args=[case.pk]), data).status_code == 302
    submission = Submission.objects.get()
    assert submission.late and submission.delay_days >= 10 and submission.late_reason == "报告人补充资料延迟"
    page = html(pv.get(reverse("safety:case", args=[case.pk])))
    assert 'data-late="true"' in page and "报告人补充资料延迟" in page


def test_a_submission_of_an_invalid_case_is_refused_with_what_is_missing_in_the_readers_language(
    client_for, users, make_case
):
    """The refusal read 只有有效病例才能报告：仍缺少reporter, reaction。 — the criteria's codes inside a Chinese sentence."""
    case = make_case(reporter_name="", reporter_contact="", reporter_institution="", reporter_qualification="", reactions=[])
    data = {"jurisdiction": "CN", "kind": "report", "channel": "nmpa",
            "submitted_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"), "otp_code": sign_code(users["pv"])}  # fmt: skip
    response = client_for("pv").post(reverse("safety:case-submission", args=[case.pk]), data)
    assert response.status_code == 400 and Submission.objects.count() == 0
    page = html(response)
    assert "仍缺少可识别的报告者, 药品不良反应。" in page


def test_a_rejected_acknowledgement_is_shown_prominently(client_for, users, make_case):
    case = make_case()
    submission = services.record_submission(
        users["pv"], case, {"channel": "nmpa"}, otp_code=sign_code(users["pv"])
    )
    services.record_ack(users["pv"], submission, accepted=False, errors=["E.i.2.1b: MedDRA code unknown"])
    for role in ("pv", "manager"):
        page = html(client_for(role).get(reverse("safety:case", args=[case.pk])))
        assert f'id="ack-rejected-{submission.pk}"' in page and "MedDRA code unknown" in page


def test_the_report_form_pdf_is_downloaded_and_audited_as_an_export(client_for, users, make_case):
    case = make_case()
    response = client_for("pv").get(reverse("safety:case-report-pdf", args=[case.pk]))
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
    assert AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT, object_id=str(case.pk),
                                     actor=users["pv"]).exists()  # fmt: skip
    from urllib.parse import quote

    assert "filename*=utf-8''" + quote(f"{case.number}-药品不良反应事件报告表.pdf") in response["Content-Disposition"]
    english = client_for("pv").get(reverse("safety:case-report-pdf", args=[case.pk]), HTTP_ACCEPT_LANGUAGE="en")
    assert f'filename="{case.number}-ADR-report-form.pdf"' in english["Content-Disposition"]


# --- files -------------------------------------------------------------------------------------------------------


def test_a_photo_is_uploaded_checked_and_downloaded_by_pv_only(client_for, make_case):
    case = make_case(kind="quality", reactions=[])
    pv = client_for("pv")
    response = pv.post(reverse("safety:case-file-upload", args=[case.pk]),
                       {"files": SimpleUploadedFile("瓶子.png", PNG, content_type="image/png")})  # fmt: skip
    assert response.status_code == 302
    case_file = CaseFile.objects.get()
    assert case_file.content_type == "image/png" and case_file.name == "瓶子.png"
    download = pv.get(reverse("safety:case-file", args=[case_file.pk]))
    assert download.status_code == 200 and b"".join(download.streaming_content) == PNG
    assert client_for("manager").get(reverse("safety:case-file", args=[case_file.pk])).status_code == 403

    response = pv.post(reverse("safety:case-file-upload", args=[case.pk]),
                       {"files": SimpleUploadedFile("tool.png", b"MZ\x90\x00" + b"\x00" * 40)})  # fmt: skip
    assert response.status_code == 400 and CaseFile.objects.count() == 1
    assert re.search(r'class="field has-error[^"]*" id="field-files"', html(response))


def test_the_nightly_sweep_deletes_only_case_files_no_case_names(users, make_case):
    """A case file is stored before the transaction that records it: a process killed in between left a photo or
    a medical record in var/files/safety/ that no case names, kept forever. The nightly sweep deletes it once a
    day old; the case's own files and an upload still under way stay."""
    import os

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from pharmacrm.safety import tasks

    case = make_case(kind="quality", reactions=[])
    kept = services.add_file(users["pv"], case, SimpleUploadedFile("瓶子.png", PNG, content_type="image/png"))
    killed = default_storage.save("safety/2026/11/病历.png", ContentFile(PNG))  # what the killed upload left
    under_way = default_storage.save("safety/2026/11/照片.png", ContentFile(PNG))
    two_days_ago = (timezone.now() - dt.timedelta(days=2)).timestamp()
    for name in (kept.file.name, killed):
        os.utime(default_storage.path(name), (two_days_ago, two_days_ago))

    assert tasks.sweep_case_files.call_local() == 1
    assert not default_storage.exists(killed)
    assert default_storage.exists(kept.file.name) and default_storage.exists(under_way)
    entry = AuditEntry.objects.get(object_type="safety.casefile", action="delete")
    assert entry.extra["count"] == 1 and entry.extra["files"] == [killed]


# --- the safety panel on the ticket page -------------------------------------------------------------------------


def test_the_ticket_panel_per_role(client_for, users, agent_ticket, make_user):
    url = reverse("servicedesk:ticket", args=[agent_ticket.pk])
    page = html(client_for("pv").get(url))
    panel = re.search(r'id="safety-panel".*?</section>', page, re.S).group(0)
    assert 'id="safety-flags"' in panel and reverse("safety:triage") in panel and 'id="open-case"' in panel

    response = client_for("pv").post(
        reverse("safety:from-ticket", args=[agent_ticket.pk]), {"kind": "adverse_reaction"}
    )
    case = SafetyCase.objects.get(source_ticket=agent_ticket)
    assert response.status_code == 302
    panel = re.search(r'id="safety-panel".*?</section>', html(client_for("pv").get(url)), re.S).group(0)
    assert case.number in panel and reverse("safety:case", args=[case.pk]) in panel

    # the agent who logged it: the case number and its status, no flags, no button
    panel = re.search(r'id="safety-panel".*?</section>', html(client_for("agent").get(url)), re.S).group(0)
    assert case.number in panel and case.get_status_display() in panel
    assert 'id="safety-flags"' not in panel and 'id="open-case"' not in panel
    # anyone else: nothing
    assert 'id="safety-panel"' not in html(client_for("expert").get(url))


def test_the_ticket_panel_costs_at_most_two_queries(rf, users, agent_ticket):
    from django.template import Context, Template

    request = rf.get("/")
    request.user = users["pv"]
    template = Template("{% load safety_tags %}{% safety_panel ticket %}")
    users["pv"].roles  # noqa: B018 (the roles are loaded once per request anyway)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        out = template.render(Context({"request": request, "ticket": agent_ticket}))
    assert 'id="safety-panel"' in out and len(queries.captured_queries) <= 2


def test_the_case_page_needs_the_same_number_of_queries_for_a_long_case(
    client_for, users, make_case, django_assert_max_num_queries
):
    case = make_case()
    pv = client_for("pv")
    url = reverse("safety:case", args=[case.pk])
    pv.get(url)
    # session, user, device, roles; the case; clocks, submissions, tasks; drugs, reactions, versions, files,
    # quality; the late check; the audit entry of the read (chain head + entry); its nullification report …
    with django_assert_max_num_queries(19) as first:
        pv.get(url)
    drugs = [dict(COMPLETE["drugs"][0], brand_name=f"药{i}") for i in range(6)]
    reactions = [
        {"verbatim": f"反应{i}", "meddra_version": "27.1", "meddra_llt": "10037844"} for i in range(6)
    ]
    services.update_case(users["pv"], case, {"drugs": drugs, "reactions": reactions})
    for i in range(3):
        services.add_follow_up(users["pv"], case, {}, received_at=timezone.now(), summary=f"补充{i}")
    with django_assert_max_num_queries(len(first.captured_queries)):
        pv.get(url)


def test_a_case_file_is_stored_under_a_random_name_and_downloads_under_its_own(users, make_case, client_for):
    """A medical record named after its patient (王小明病历.png) was stored under that name: the patient's name in
    directory listings and backups of var/files. On disk now a random name; the page and the download keep the
    uploader's."""
    case = make_case(kind="quality", reactions=[])

    kept = services.add_file(users["pv"], case, SimpleUploadedFile("王小明病历.png", PNG, content_type="image/png"))

    assert re.fullmatch(r"safety/\d{4}/\d{2}/[0-9a-f]{32}", kept.file.name), kept.file.name
    response = client_for("pv").get(reverse("safety:case-file", args=[kept.pk]))
    assert response.status_code == 200 and b"".join(response.streaming_content) == PNG
    assert "filename*=UTF-8''%E7%8E%8B%E5%B0%8F%E6%98%8E%E7%97%85%E5%8E%86.png" in response["Content-Disposition"]
