"""Safety defects found by the thirty-sixth review round: a country typed in Chinese characters and a number that
only Python reads, both kept until the export refused them; the regulator's rejection of a closed case's report
leaving its other clocks stopped on an open case; a life-threatening unexpected reaction in a clinical study (a
SUSAR), due in 7 days, not 15; one batch recorded as sent twice; C.1.5 before day 0 or ahead, and a changed day 0
silently dropped by the API; a nullified duplicate read as "closed without a report"."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety import services
from pharmacrm.safety.models import SafetyCase, SafetyClock, Submission
from tests.api import conftest as api_fixtures

from .conftest import COMPLETE, next_code, sign_code
from .test_case_pages import form_data

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role


# --- 1. the country in Chinese characters, a number Python reads but E2B does not ---------------------------------


@pytest.mark.parametrize("country", ["美国", "中国"])
def test_a_country_typed_in_chinese_characters_is_refused_at_the_field(api_for, country):
    """美国 and 中国 are two letters to Python (str.isalpha), so a case opened with the country typed as a Chinese
    officer names it was saved; C.1.1 then read "美国-PHARMACRM-AE-…" and the export, days later, refused E.i.9.
    The field now asks for the ISO code at once, in the officer's language."""
    response = api_for("pv", lang="zh-hans").post("/api/v1/safety/cases/", {**COMPLETE, "country": country},
                                                  format="json")  # fmt: skip
    assert response.status_code == 400
    assert response.json()["country"] == ["请输入两位字母的国家代码（ISO 3166），例如 CN。"]
    assert not SafetyCase.objects.exists()


def test_the_edit_page_names_the_country_typed_in_chinese(client_for, make_case):
    case = make_case()
    response = client_for("pv").post(reverse("safety:case-edit", args=[case.pk]),
                                     form_data(case, reporter_country="中国"))  # fmt: skip
    assert response.status_code == 400
    assert 'id="field-reporter_country"' in response.content.decode()
    assert "请输入两位字母的国家代码" in response.content.decode()
    case.refresh_from_db()
    assert case.reporter_country == "CN"  # as it was


@pytest.mark.parametrize("age", ["1e2", "٤٥", "4_5"])
def test_a_number_the_export_cannot_take_is_refused_when_typed(api_for, age):
    """float() reads 1e2, 4_5 and Arabic-Indic ٤٥; they were stored as typed and the ICSR refused them at export."""
    response = api_for("pv").post("/api/v1/safety/cases/", {**COMPLETE, "patient_age": age}, format="json")
    assert response.status_code == 400
    assert response.json()["patient_age"] == ["Enter a number."]


@pytest.mark.parametrize(("typed", "stored"), [("４５", "45"), ("60.5", "60.5"), ("ＣＮ", "CN"), ("us", "US")])
def test_full_width_digits_and_country_letters_are_still_taken(api_for, typed, stored):
    field = "patient_weight_kg" if typed[0] in "６60" else "patient_age" if typed[0] in "４" else "reporter_country"
    response = api_for("pv").post("/api/v1/safety/cases/", {**COMPLETE, field: typed}, format="json")
    assert response.status_code == 201, response.content
    assert getattr(SafetyCase.objects.get(), field) == stored


# --- 2. a rejected report of a closed case -------------------------------------------------------------------------

FATAL = [{**COMPLETE["reactions"][0], "outcome": "5", "death": True}]


def test_a_rejected_report_of_a_closed_case_starts_its_stopped_clocks_again(make_case, users, client_for):
    """A death reported within the day; the case closed, with a reason, before its 15-day investigation report (its
    clock stopped). The regulator then rejected the report: the case was open again — "being assessed", the report
    owed — but the investigation clock stayed "Stopped: case closed without a report" on the open case, never in the
    due list nor warned of. A rejection that reopens a closed case now starts its stopped clocks again, as reopening
    it by hand does, and the audit entry names the status change."""
    pv = users["pv"]
    sign_code(pv)
    case = make_case(reactions=FATAL, received_at=timezone.now() - dt.timedelta(hours=3))
    sub = services.record_submission(pv, case, {"channel": "nmpa", "message_id": "B-36"}, otp_code=sign_code(pv))
    case.refresh_from_db()
    services.set_status(pv, case, "closed", reason="调查报告由医院直接提交", version=case.version)
    investigation = SafetyClock.objects.get(case=case, kind="investigation")
    assert investigation.stopped_at is not None

    services.record_ack(pv, sub, accepted=False, errors=["E.i.2.1b: invalid code"], ack_message_id="ACK-36")

    case.refresh_from_db()
    assert case.status == "assessing"
    investigation.refresh_from_db()
    assert investigation.stopped_at is None and investigation.met_at is None
    assert investigation.next_check_at is not None  # the worker watches it again
    assert investigation in services.due_clocks()
    page = client_for("pv").get(reverse("safety:case", args=[case.pk])).content.decode()
    assert "已停止" not in page
    entry = AuditEntry.objects.filter(object_id=str(case.pk), action="update").order_by("-id").first()
    assert entry.changes["status"] == ["closed", "assessing"]


# --- 3. the 7-day report of a fatal or life-threatening SUSAR ------------------------------------------------------

DAY0 = timezone.make_aware(dt.datetime(2025, 12, 28, 16, 0))  # across a year change as well
LIFE_THREATENING = [{**COMPLETE["reactions"][0], "life_threatening": True}]


def _report_clocks(case) -> list[tuple[str, dt.datetime]]:
    return [(c.rule.code, timezone.localtime(c.due_at)) for c in
            SafetyClock.objects.filter(case=case, kind="report").select_related("rule").order_by("due_at")]


def test_a_life_threatening_unexpected_reaction_in_a_study_is_due_in_7_calendar_days(make_case):
    """A serious unexpected reaction from a clinical study that threatens life (a SUSAR) is reported within 7 days
    of day 0 (药物临床试验期间安全性数据快速报告标准和程序; GCP 2020, art. 48), the day 0 being the first; every such
    case got the 15 days of a serious case. Calendar days, over the new year."""
    case = make_case(report_type="2", expectedness="unexpected", reactions=LIFE_THREATENING, received_at=DAY0)
    end_of_day_7 = timezone.make_aware(dt.datetime(2026, 1, 4, 23, 59, 59))
    assert _report_clocks(case) == [("CN-SUSAR-7", end_of_day_7)]


@pytest.mark.parametrize(("fields", "rule", "due"), [
    # a death from the study is still reported at once: the 24 hours are sooner than 7 days
    ({"report_type": "2", "expectedness": "unexpected", "reactions": FATAL}, "CN-DEATH", dt.datetime(2025, 12, 29, 16)),
    # expected, or not from a study, or not life-threatening: 15 days, as before
    ({"report_type": "2", "expectedness": "expected", "reactions": LIFE_THREATENING}, "CN-NEW-SERIOUS",
     dt.datetime(2026, 1, 12, 23, 59, 59)),
    ({"report_type": "1", "expectedness": "unexpected", "reactions": LIFE_THREATENING}, "CN-NEW-SERIOUS",
     dt.datetime(2026, 1, 12, 23, 59, 59)),
    ({"report_type": "2", "expectedness": "unexpected",
      "reactions": [{**COMPLETE["reactions"][0], "hospitalisation": True}]}, "CN-NEW-SERIOUS",
     dt.datetime(2026, 1, 12, 23, 59, 59)),
])  # fmt: skip
def test_other_cases_keep_their_deadlines(make_case, fields, rule, due):
    case = make_case(received_at=DAY0, **fields)
    assert _report_clocks(case)[0] == (rule, timezone.make_aware(due))


def test_a_follow_up_that_finds_the_study_reaction_life_threatening_is_due_7_days_from_its_receipt(make_case, users):
    case = make_case(report_type="2", expectedness="unexpected", received_at=DAY0)
    services.add_follow_up(users["pv"], case, {"reactions": LIFE_THREATENING}, received_at=DAY0 + dt.timedelta(days=2),
                           summary="危及生命")  # fmt: skip
    assert ("CN-SUSAR-7", timezone.make_aware(dt.datetime(2026, 1, 6, 23, 59, 59))) in _report_clocks(case)


def test_a_database_installed_before_gets_the_7_day_rule_and_keeps_its_own(db):
    """Migration 0012 installs the rule where the rules were installed before; an administrator's change to another
    rule stays."""
    import importlib

    from django.apps import apps

    from pharmacrm.safety.models import ReportingRule

    ReportingRule.objects.filter(code="CN-SUSAR-7").delete()
    ReportingRule.objects.filter(code="CN-OTHER").update(within=20)
    importlib.import_module("pharmacrm.safety.migrations.0012_susar_reporting_rule").install(apps, None)
    rule = ReportingRule.objects.get(code="CN-SUSAR-7")
    assert (rule.active, rule.within, rule.unit, rule.condition) == (True, 7, "days", "susar_fatal_lt")
    assert ReportingRule.objects.get(code="CN-OTHER").within == 20


def test_the_rules_page_names_the_susar_rule_in_the_readers_language(client_for):
    page = client_for("pv").get(reverse("safety:rules")).content.decode()
    assert "CN-SUSAR-7" in page and "致死或危及生命的可疑且非预期严重不良反应（临床研究）：7 日内" in page


# --- 4. the same batch recorded as sent twice ------------------------------------------------------------------


def test_the_submission_of_a_batch_is_recorded_once(api_for, make_case, users):
    """The officer recorded the NMPA submission of batch B-7, the page answered slowly, and they recorded it again
    with the next code (or a colleague did): two submissions of one batch — the case listed two reports, and the
    regulator's rejection of that batch reopened the case twice and told PV twice. A second record of a batch
    already recorded for the same regulator is now refused on the batch number, saying when it was recorded."""
    pv = users["pv"]
    sign_code(pv)
    case = make_case()
    client = api_for("pv")
    url = f"/api/v1/safety/cases/{case.pk}/submissions/"
    body = {"channel": "nmpa", "message_id": "PHARMACRM-20261204-000007"}
    first = client.post(url, {**body, "otp_code": sign_code(pv)}, format="json")
    assert first.status_code == 201, first.json()

    again = client.post(url, {**body, "otp_code": next_code(pv)}, format="json")

    assert again.status_code == 400
    message = again.json()["message_id"][0]
    assert "PHARMACRM-20261204-000007" in message and "already" in message
    assert Submission.objects.filter(case=case).count() == 1
    # another regulator's submission of the same batch, or another batch, is recorded
    assert services.record_submission(pv, case, {"channel": "fda_esg", "jurisdiction": "US", **{
        "message_id": body["message_id"]}}, otp_code=next_code(pv))  # fmt: skip


# --- 5. the date of the most recent information (C.1.5) and day 0 through the API ------------------------------------


@pytest.mark.parametrize(("latest", "reason"), [
    ("2020-01-01T00:00:00+08:00", "2020 is before day 0"),
    ("2027-12-25T00:00:00+08:00", "a mistyped year, in the future"),
])  # fmt: skip
def test_the_most_recent_information_cannot_predate_day_0_nor_lie_ahead(api_for, make_case, latest, reason):
    """C.1.5 was taken as sent: before day 0 or in the future, it was kept, the export refused it days later, and an
    incoming follow-up of the partner was "older than what the case holds" and not applied. Refused at the field."""
    case = make_case()
    before = case.latest_received_at
    response = api_for("pv").patch(f"/api/v1/safety/cases/{case.pk}/",
                                   {"latest_received_at": latest, "version": case.version}, format="json")
    assert response.status_code == 400, reason
    assert list(response.json()) == ["latest_received_at"]
    case.refresh_from_db()
    assert case.latest_received_at == before

    created = api_for("pv").post("/api/v1/safety/cases/", {**COMPLETE, "latest_received_at": latest}, format="json")
    assert created.status_code == 400 and list(created.json()) == ["latest_received_at"]


def test_a_later_most_recent_information_is_taken(api_for, make_case):
    case = make_case()
    later = timezone.localtime(case.received_at + dt.timedelta(hours=5)).isoformat()
    response = api_for("pv").patch(f"/api/v1/safety/cases/{case.pk}/",
                                   {"latest_received_at": later, "version": case.version}, format="json")
    assert response.status_code == 200, response.json()
    case.refresh_from_db()
    assert case.latest_received_at == case.received_at + dt.timedelta(hours=5)


def test_day_0_sent_in_a_change_is_refused_not_silently_dropped(api_for, make_case):
    """PATCH with another received_at answered 200 and kept the old day 0: the client believed it corrected. Day 0
    does not change (a follow-up has its own receipt date); the answer now says so on the field. The same day 0 sent
    back with the rest of the case is no change and passes."""
    case = make_case()
    url = f"/api/v1/safety/cases/{case.pk}/"
    other = timezone.localtime(case.received_at - dt.timedelta(days=2)).isoformat()
    response = api_for("pv").patch(url, {"received_at": other, "version": case.version}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["received_at"]
    case.refresh_from_db()
    same = timezone.localtime(case.received_at).isoformat()
    response = api_for("pv").patch(url, {"received_at": same, "narrative": "补充", "version": case.version},
                                   format="json")  # fmt: skip
    assert response.status_code == 200, response.json()


# --- 6. a nullified case is not "closed without a report" ----------------------------------------------------------


def test_a_nullified_duplicate_reads_nullified_not_closed_without_a_report(users, xiehe, client_for, make_case):
    """Two agents took the same call: PV nullified the second case as a duplicate. The reconciliation the auditor
    reads listed it "Closed without a report" — a case owed to the regulator and dropped — and its case page called
    its clock "stopped: case closed without a report". It now reads nullified, no report owed; a case closed with a
    report still owed keeps saying so."""
    from pharmacrm.safety import reconciliation as recon

    from .test_reconciliation import confirmed_case, row_of, ticket

    duplicate = confirmed_case(users, ticket(users, xiehe, "服药后全身皮疹", days_ago=3))
    closed = confirmed_case(users, ticket(users, xiehe, "服药后恶心呕吐", days_ago=3))
    services.set_status(users["pv"], duplicate, "nullified", reason="与 AE-2026-000001 重复")
    services.set_status(users["pv"], closed, "closed", reason="报告者撤回")

    result = recon.report(*recon.default_period())
    rows = result["rows"]
    assert row_of(rows, duplicate.source_ticket.number)["timeliness"] == recon.NULLIFIED
    assert row_of(rows, closed.source_ticket.number)["timeliness"] == recon.CLOSED_UNREPORTED
    assert (result["totals"]["nullified"], result["totals"]["closed_unreported"]) == (1, 1)

    auditor = client_for("auditor")
    auditor.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    page = auditor.get(reverse("safety:reconciliation")).content.decode()
    assert f'data-case="{duplicate.number}" data-timeliness="nullified"' in page
    assert "Nullified: no report owed" in page
    case_page = client_for("pv").get(reverse("safety:case", args=[duplicate.pk])).content.decode()
    assert "已停止：病例已作废" in case_page and "病例未经报告即关闭" not in case_page
    closed_page = client_for("pv").get(reverse("safety:case", args=[closed.pk])).content.decode()
    assert "病例未经报告即关闭" in closed_page


def test_a_stored_most_recent_information_sent_back_unchanged_passes(api_for, make_case):
    """A case imported before C.1.5 was checked may hold one before its day 0: a client sending the whole case back
    with one change is not refused for a value it did not touch."""
    case = make_case()
    SafetyCase.objects.filter(pk=case.pk).update(latest_received_at=case.received_at - dt.timedelta(days=1))
    case.refresh_from_db()
    response = api_for("pv").patch(f"/api/v1/safety/cases/{case.pk}/", {
        "latest_received_at": timezone.localtime(case.latest_received_at).isoformat(), "narrative": "补充",
        "version": case.version}, format="json")  # fmt: skip
    assert response.status_code == 200, response.json()
