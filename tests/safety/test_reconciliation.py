"""The reconciliation report: every flagged or safety-relevant ticket and flagged interaction against the
cases opened from them and whether those were reported on time; what is unmatched is listed for action;
the XLSX export carries the rows without patient data; the query count does not grow with the tickets."""

from __future__ import annotations

import datetime as dt
import io
import re
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation
from openpyxl import load_workbook

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.customers.models import Person
from pharmacrm.engagement import services as engagement
from pharmacrm.safety import reconciliation as recon
from pharmacrm.safety import services
from pharmacrm.safety.choices import SignalStatus
from pharmacrm.safety.models import Flag
from pharmacrm.servicedesk import services as desk

from .conftest import COMPLETE, next_code, sign_code

OVERSEEING = {"admin", "manager", "pv", "auditor"}
PATIENT = {k: v for k, v in COMPLETE.items() if k != "kind"}  # the case data PV completes after confirming


def ticket(users, xiehe, subject: str, *, days_ago: float = 1, category: str = "drug_info", **extra):
    return desk.create_ticket(users["agent"], {
        "subject": subject, "channel": "phone", "category": category, "institution": xiehe,
        "person": Person.objects.get(name="张伟"), "received_at": timezone.now() - dt.timedelta(days=days_ago),
        **extra,
    })  # fmt: skip


def received_on(days_ago: int) -> dt.datetime:
    """Local noon `days_ago` days before today: a receipt whose calendar day (day 0 of the day-counted
    clocks) does not depend on the hour the test runs at."""
    day = timezone.localdate() - dt.timedelta(days=days_ago)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(12)))


def confirmed_case(users, source):
    flag = Flag.objects.get(**{"ticket" if hasattr(source, "number") else "interaction": source},
                            status=SignalStatus.PENDING)  # fmt: skip
    return services.confirm_flag(users["pv"], flag, kind="adverse_reaction", data=PATIENT)


def row_of(rows, source: str) -> dict:
    [row] = [r for r in rows if r["source"] == source]
    return row


def today():
    return timezone.localdate()


# --- who may see it --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_the_report_and_its_export_open_for_pv_and_the_overseeing_roles_only(web, role):
    client = web(role)

    page = client.get(reverse("safety:reconciliation"))
    xlsx = client.get(reverse("safety:reconciliation-xlsx"))

    expected = 200 if role in OVERSEEING else 403
    assert (page.status_code, xlsx.status_code) == (expected, expected)


# --- what it reports -------------------------------------------------------------------------------------------


def test_a_safety_relevant_ticket_without_decision_or_case_is_unmatched(users, xiehe, web):
    waiting = ticket(
        users, xiehe, "家属来电咨询", category="adverse_reaction", days_ago=20
    )  # safety-relevant category
    quiet = ticket(users, xiehe, "发票开错了", days_ago=20)  # neither flagged nor safety-relevant

    result = recon.report(*recon.default_period())

    assert [r["source"] for r in result["rows"]] == [waiting.number]
    row = result["rows"][0]
    assert (row["safety_relevant"], row["flag_status"], row["case_number"]) == (True, "pending", None)
    assert row["handoff_on_time"] is False  # 20 days: long past the one-working-day hand-off
    [problem] = result["unmatched"]
    assert (problem["problem"], problem["source"]) == (recon.NO_DECISION, waiting.number)
    page = web("manager").get(reverse("safety:reconciliation")).content.decode()
    assert f'data-problem="no_decision" data-source="{waiting.number}"' in page
    assert quiet.number not in page


def test_a_dismissed_flag_is_matched(users, xiehe):
    t = ticket(users, xiehe, "服药后皮疹")
    services.dismiss_flag(users["pv"], Flag.objects.get(ticket=t), reason="重复来电，已有病例")

    result = recon.report(*recon.default_period())

    assert row_of(result["rows"], t.number)["flag_status"] == "dismissed"
    assert result["unmatched"] == []


def test_a_case_reported_late_shows_its_delay_and_one_not_reported_is_overdue(users, xiehe, web):
    # day 0 forty days ago: due by the end of day 30, so 9 days and some hours late today
    late_ticket = ticket(users, xiehe, "服药后全身皮疹", received_at=received_on(40))
    overdue_ticket = ticket(users, xiehe, "服药后恶心呕吐", received_at=received_on(35))
    fresh_ticket = ticket(users, xiehe, "服药后头晕", days_ago=2)
    late_case = confirmed_case(users, late_ticket)
    overdue_case = confirmed_case(users, overdue_ticket)
    fresh_case = confirmed_case(users, fresh_ticket)
    services.record_submission(users["pv"], late_case, {"channel": "nmpa", "late_reason": "等待医院补充病历"},
                               otp_code=sign_code(users["pv"]))  # fmt: skip
    services.record_submission(users["pv"], fresh_case, {"channel": "nmpa"}, otp_code=next_code(users["pv"]))

    result = recon.report(*recon.default_period())

    late = row_of(result["rows"], late_ticket.number)
    assert (late["case_number"], late["timeliness"], late["late_days"]) == (late_case.number, recon.LATE, 10)
    assert late["case_valid"] is True and late["submitted_at"] is not None
    overdue = row_of(result["rows"], overdue_ticket.number)
    assert (overdue["timeliness"], overdue["late_days"]) == (recon.OVERDUE, 5)
    assert row_of(result["rows"], fresh_ticket.number)["timeliness"] == recon.ON_TIME
    assert [(p["problem"], p["case_number"]) for p in result["unmatched"]] == [
        (recon.CASE_OVERDUE, overdue_case.number)
    ]
    assert result["totals"]["late"] == result["totals"]["overdue"] == result["totals"]["on_time"] == 1
    page = web("auditor").get(reverse("safety:reconciliation")).content.decode()
    assert f'data-case="{late_case.number}" data-timeliness="late"' in page
    assert "王XX" not in page  # the auditor oversees; patient identity stays with PV


def test_a_rejected_report_not_sent_again_needs_action(users, xiehe):
    t = ticket(users, xiehe, "服药后呼吸困难", days_ago=3)
    case = confirmed_case(users, t)
    submission = services.record_submission(users["pv"], case, {"channel": "nmpa", "message_id": "B-1"},
                                            otp_code=sign_code(users["pv"]))  # fmt: skip
    services.record_ack(users["pv"], submission, accepted=False, errors=["患者年龄缺失"])

    result = recon.report(*recon.default_period())

    assert (recon.REJECTED_OPEN, case.number) in [
        (p["problem"], p["case_number"]) for p in result["unmatched"]
    ]
    assert row_of(result["rows"], t.number)["timeliness"] == recon.NOT_YET


def test_on_a_chinese_page_the_jurisdiction_and_the_delay_are_in_full_width_brackets(users, xiehe, client_for):
    """报告被监管机构拒收，未重新递交 (CN) and 迟报 (10 天): half-width brackets in Chinese text."""
    late_case = confirmed_case(users, ticket(users, xiehe, "服药后全身皮疹", received_at=received_on(40)))
    services.record_submission(users["pv"], late_case, {"channel": "nmpa", "late_reason": "等待医院补充病历"},
                               otp_code=sign_code(users["pv"]))  # fmt: skip
    rejected = confirmed_case(users, ticket(users, xiehe, "服药后呼吸困难", days_ago=3))
    submission = services.record_submission(users["pv"], rejected, {"channel": "nmpa", "message_id": "B-1"},
                                            otp_code=next_code(users["pv"]))  # fmt: skip
    services.record_ack(users["pv"], submission, accepted=False, errors=["患者年龄缺失"])

    page = client_for("pv").get(reverse("safety:reconciliation")).content.decode()

    row = re.search(r'data-problem="rejected_open".*?</tr>', page, re.S).group(0)
    assert "（CN）" in row and "(CN)" not in row
    late = re.search(rf'data-case="{late_case.number}" data-timeliness="late".*?</tr>', page, re.S).group(0)
    assert "（10 天）" in late and "(" not in re.sub(r"<[^>]*>", "", late)


def test_a_hand_off_to_pv_that_came_late_is_not_called_a_late_report(users, xiehe, client_for):
    """The hand-off column said 迟报 (a report sent late) of a flag PV had not triaged in time: no report is in
    question there, the hand-off is overdue."""
    waiting = ticket(users, xiehe, "家属来电咨询", category="adverse_reaction", days_ago=20)
    page = client_for("pv").get(reverse("safety:reconciliation")).content.decode()
    row = re.search(rf'<tr class="recon-row" data-source="{waiting.number}".*?</tr>', page, re.S).group(0)
    assert 'class="badge sla-breached"' in row and "迟报" not in row


def test_flagged_interactions_are_reconciled_too(users, xiehe):
    interaction = engagement.record_interaction(users["rep"], {
        "institution": xiehe, "person": Person.objects.get(name="张伟"), "channel": "visit",
        "received_at": timezone.now() - dt.timedelta(days=1), "subject": "拜访心内科",
        "notes": "张主任提到一位患者用药后出现过敏性皮疹",
    })  # fmt: skip

    [row] = recon.rows(*recon.default_period())

    assert (row["source_type"], row["source_id"], row["flag_status"]) == (
        "interaction",
        interaction.pk,
        "pending",
    )


def test_the_period_filters_by_day_0(users, xiehe, web):
    old = ticket(users, xiehe, "服药后皮疹", days_ago=120)

    assert recon.rows(*recon.default_period()) == []
    since = today() - dt.timedelta(days=150)
    assert [r["source"] for r in recon.rows(since, today())] == [old.number]
    page = web("pv").get(
        reverse("safety:reconciliation"), {"since": since.isoformat(), "until": today().isoformat()}
    )
    assert old.number in page.content.decode()


def test_a_wrong_period_is_refused(web):
    response = web("pv").get(reverse("safety:reconciliation"), {"since": "2026-05-01", "until": "2026-04-01"})

    assert response.status_code == 400
    assert "before its start" in response.content.decode()


# --- the export ------------------------------------------------------------------------------------------------


def test_the_xlsx_has_the_rows_and_no_patient_data_and_is_audited(users, xiehe, web):
    late_ticket = ticket(users, xiehe, "患者王XX服药后全身皮疹", received_at=received_on(40))  # 10 days late
    case = confirmed_case(users, late_ticket)
    services.record_submission(users["pv"], case, {"channel": "nmpa", "late_reason": "等待病历"},
                               otp_code=sign_code(users["pv"]))  # fmt: skip
    waiting = ticket(users, xiehe, "家属来电", category="adverse_reaction")

    response = web("manager").get(reverse("safety:reconciliation-xlsx"))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    assert re.search(r'filename="Safety-reconciliation-\d{8}-\d{8}\.xlsx"', response["Content-Disposition"])
    book = load_workbook(io.BytesIO(response.content), read_only=True)
    sheets = {ws.title: [list(r) for r in ws.iter_rows(values_only=True)] for ws in book.worksheets}
    rows, needs_action = list(sheets.values())[0], list(sheets.values())[1]
    assert rows[0][:3] == ["Source", "Source type", "Received (day 0)"]
    by_source = {r[0]: r for r in rows[1:]}
    assert set(by_source) == {late_ticket.number, waiting.number}
    assert case.number in by_source[late_ticket.number]
    assert "Late" in by_source[late_ticket.number] and 10 in by_source[late_ticket.number]
    assert any(waiting.number in r for r in needs_action[1:])
    cells = " ".join(str(v) for sheet in sheets.values() for row in sheet for v in row if v is not None)
    for secret in ("王XX", "张伟", "13800138000", "皮疹", "高血压"):
        assert secret not in cells
    entry = AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT, actor=users["manager"]).get()
    assert (entry.extra["report"], entry.extra["format"], entry.extra["rows"]) == (
        "reconciliation",
        "xlsx",
        2,
    )


def test_the_xlsx_follows_the_ui_language(users, xiehe, client_for):
    t = ticket(users, xiehe, "服药后皮疹")

    response = client_for("pv").get(reverse("safety:reconciliation-xlsx"), HTTP_ACCEPT_LANGUAGE="zh-hans")

    book = load_workbook(io.BytesIO(response.content), read_only=True)
    rows = [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
    with translation.override("zh-hans"):
        expected = [translation.gettext("Source"), translation.gettext("Source type")]
    assert rows[0][:2] == expected
    assert rows[1][:2] == [t.number, "工单"]  # "Ticket", in Chinese
    assert f"filename*=utf-8''{quote('安全性核对报告')}-" in response["Content-Disposition"]


# --- cost ------------------------------------------------------------------------------------------------------


def test_the_report_costs_the_same_queries_for_more_tickets(users, xiehe, web):
    def build(n: int) -> None:
        for i in range(n):
            t = ticket(users, xiehe, f"服药后皮疹 {i}", days_ago=5 + i)
            if i % 2:
                confirmed_case(users, t)

    build(2)
    period = recon.default_period()
    recon.report(*period)  # warm the calendar cache
    with CaptureQueriesContext(connection) as few:
        recon.report(*period)
    build(6)
    with CaptureQueriesContext(connection) as many:
        result = recon.report(*period)

    assert len(result["rows"]) == 8
    assert len(many) == len(few) <= 12
    client = web("pv")
    client.get(reverse("safety:reconciliation"))
    with CaptureQueriesContext(connection) as page:
        assert client.get(reverse("safety:reconciliation")).status_code == 200
    assert len(page) <= len(few) + 8  # session, user, messages — not per row
