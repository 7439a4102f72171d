"""Session 40: reopening a case that misses a minimum criterion re-plans its stale clocks as it does a valid case's; a
drug started or stopped in the future is refused."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from lxml import etree

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety import services
from pharmacrm.safety.models import ReportingRule, SafetyCase, SafetyClock
from tests.api import conftest as api_fixtures

from .conftest import COMPLETE, reopen

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role

# --- 1. reopening a case that misses a minimum criterion ------------------------------------------------------------

FATAL = [{**COMPLETE["reactions"][0], "outcome": "5", "death": True}]
NO_REPORTER = {"reporter_name": "", "reporter_contact": "", "reporter_institution": "", "reporter_qualification": ""}


def _clocks(case) -> list[tuple]:
    """(rule, version, met, stopped) of every clock of the case."""
    return sorted((c.rule.code, c.case_version.sequence, c.met_at is not None, c.stopped_at is not None)
                  for c in SafetyClock.objects.filter(case=case).select_related("rule", "case_version"))


def _death_abroad_missing_its_reporter(make_case, users, *, closed: bool = True) -> SafetyCase:
    """A death in the United States received three days ago under the rules as shipped before safety 0014 (CN-DEATH
    and CN-DEATH-INVESTIGATION for every death), whose reporter a mistaken correction then emptied: the case misses a
    minimum criterion and keeps the clocks it had (a valid case's clocks stay owed through such an edit). `closed`:
    closed with a reason before the rules became what they are now (the migration leaves a closed case alone)."""
    old_rules = ReportingRule.objects.filter(code__in=["CN-DEATH", "CN-DEATH-INVESTIGATION"])
    old_rules.update(condition="death")
    case = make_case(country="US", received_at=timezone.now() - dt.timedelta(days=3), reactions=FATAL)
    case = services.update_case(users["pv"], case, NO_REPORTER, version=case.version)
    assert not case.valid and case.missing == ["reporter"]
    if closed:
        services.set_status(users["pv"], case, "closed", reason="重复报告，已在总部数据库处理", version=case.version)
    old_rules.update(condition="death_domestic")  # the rules as they are now
    assert _clocks(case) == [("CN-DEATH", 0, False, closed), ("CN-DEATH-INVESTIGATION", 0, False, closed)]
    case.refresh_from_db()
    return case


@pytest.mark.parametrize("how", ["status", "follow-up"])
def test_reopening_a_death_abroad_that_misses_its_reporter_owes_the_15_day_report_not_the_24_hour_one(
        api_for, make_case, users, how):
    """Reopening re-plans the clocks the rules no longer give a case (session 39) — but not of a case missing a minimum
    criterion: its re-plan did nothing (an invalid case plans no clock), so China's 24-hour death report and the death
    investigation were watched again, overdue at once, and the audit entry named them as the clocks it owed. The case
    was valid when those clocks started, so a report stays owed (as through the edit that emptied the reporter): the
    one the rules give it now, the serious case from abroad in 15 days from the same receipt."""
    case = _death_abroad_missing_its_reporter(make_case, users)
    client = api_for("pv")
    reopen(client, case, how)
    case.refresh_from_db()
    assert case.status == "assessing" and not case.valid  # still missing its reporter: the follow-up owes nothing yet
    assert _clocks(case) == [("CN-FOREIGN-SERIOUS", 0, False, False)]
    [clock] = SafetyClock.objects.filter(case=case)
    assert clock.started_at == case.received_at
    assert timezone.localtime(clock.due_at).date() == timezone.localtime(case.received_at).date() + dt.timedelta(days=15)
    body = client.get(f"/api/v1/safety/cases/{case.pk}/").json()
    assert body["overdue"] is False

    entry = AuditEntry.objects.filter(object_type="safety.safetycase", object_id=str(case.pk),
                                      action=AuditEntry.Action.UPDATE).latest("id")  # fmt: skip
    assert entry.changes["status"] == ["closed", "assessing"]
    before, after = entry.changes["clocks"]
    assert [c.split()[0] for c in before] == ["CN-DEATH", "CN-DEATH-INVESTIGATION"]
    assert [c.split()[0] for c in after] == ["CN-FOREIGN-SERIOUS"]


def test_an_open_death_abroad_that_misses_its_reporter_is_replanned_once(make_case, users):
    """`pharmacrm safety replan-foreign-deaths` (and the migrate that runs it) counted such a case as changed and
    wrote an audit entry on every run, the clocks before and after the same: it still owed the 24-hour report."""
    case = _death_abroad_missing_its_reporter(make_case, users, closed=False)
    assert services.replan_foreign_deaths(reason="safety 0014") == 1
    assert _clocks(case) == [("CN-FOREIGN-SERIOUS", 0, False, False)]
    entry = AuditEntry.objects.filter(object_type="safety.safetycase", object_id=str(case.pk)).latest("id")
    assert [[c.split()[0] for c in side] for side in entry.changes["clocks"]] == [
        ["CN-DEATH", "CN-DEATH-INVESTIGATION"], ["CN-FOREIGN-SERIOUS"]]
    entries = AuditEntry.objects.count()
    assert services.replan_foreign_deaths(reason="again") == 0  # run again: nothing left to change
    assert AuditEntry.objects.count() == entries


def test_a_death_whose_reactions_an_edit_emptied_keeps_its_clocks_when_reopened(make_case, users):
    """A death in China whose reactions a mistaken correction took away: nothing says any more that it is fatal or
    serious, which is what the rules go by, so its clocks stay as they were (as through the edit) — reopened, the
    24-hour report and the investigation run again, not a 30-day clock for a case of nothing serious."""
    case = make_case(country="CN", received_at=timezone.now() - dt.timedelta(days=3), reactions=FATAL)
    planned = sorted(SafetyClock.objects.filter(case=case).values_list("pk", "rule__code", "due_at"))
    case = services.update_case(users["pv"], case, {"reactions": []}, version=case.version)
    assert not case.valid and "reaction" in case.missing and not case.fatal
    services.set_status(users["pv"], case, "closed", reason="录入错误，待核实", version=case.version)
    case.refresh_from_db()
    services.set_status(users["pv"], case, "assessing", reason="核实后重新评估", version=case.version)
    assert sorted(SafetyClock.objects.filter(case=case, stopped_at__isnull=True, met_at__isnull=True)
                  .values_list("pk", "rule__code", "due_at")) == planned  # fmt: skip
    entry = AuditEntry.objects.filter(object_type="safety.safetycase", object_id=str(case.pk)).latest("id")
    assert entry.changes == {"status": ["closed", "assessing"]}


# --- 2. a drug started or stopped in the future ---------------------------------------------------------------------


def _ahead() -> dict[str, str]:
    """Dates of a drug that are in the future, at each precision, and the latest that are not (a month or a year is in
    the future when it has not begun: its first day)."""
    today = timezone.localdate()
    next_month = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return {
        "tomorrow": (today + dt.timedelta(days=1)).isoformat(), "next month": next_month.strftime("%Y-%m"),
        "next year": str(today.year + 1), "today": today.isoformat(), "this month": today.strftime("%Y-%m"),
        "this year": str(today.year),
    }  # fmt: skip


def _drug(**dates) -> list[dict]:
    return [{**COMPLETE["drugs"][0], "start_date": "", "stop_date": "", **dates}]


START_AHEAD = ("start_date", "用药开始日期不能晚于当前时间。", "用藥開始日期不能晚於當前時間。", "The start date cannot be in the future.")
STOP_AHEAD = ("stop_date", "停药日期不能晚于当前时间。", "停藥日期不能晚於當前時間。", "The stop date cannot be in the future.")


@pytest.mark.parametrize(("start", "stop", "refused"), [
    ("tomorrow", "", START_AHEAD),
    ("next year", "", START_AHEAD),  # "2027" in 2026: a year not begun
    ("next month", "", START_AHEAD),
    ("this month", "next year", STOP_AHEAD),
    ("", "tomorrow", STOP_AHEAD),
])  # fmt: skip
def test_a_drug_started_or_stopped_in_the_future_is_refused_at_its_field_in_the_readers_language(api_for, start, stop,
                                                                                               refused):  # fmt: skip
    """A drug "started 2027-01-05" (a mistyped year) was taken and kept: the 报告表 printed it, and the ICSR was refused
    only at the export ("G.k.4.r.4 is in the future"), days later, when the report was due. As a reaction's onset,
    a drug's start — and its stop, the last time it was given — cannot be ahead of today."""
    ahead = _ahead()
    drugs = _drug(start_date=ahead.get(start, ""), stop_date=ahead.get(stop, ""))
    field, zh, zh_hant, en = refused
    for language, message in (("zh-hans", zh), ("zh-hant", zh_hant), ("en", en)):
        response = api_for("pv", lang=language).post("/api/v1/safety/cases/", {**COMPLETE, "drugs": drugs},
                                                      format="json")  # fmt: skip
        assert response.status_code == 400, response.content
        body = response.json()
        assert message in body[f"drugs[0].{field}"], (language, body)  # at its field
    assert SafetyCase.objects.count() == 0


@pytest.mark.parametrize(("start", "stop"), [("today", "today"), ("this month", "this month"), ("this year", "this year"),
                                             ("this year", "")])  # fmt: skip
def test_a_drug_started_this_month_or_this_year_is_not_in_the_future(make_case, start, stop):
    """A month or a year under way is not ahead ("2026-12" on 5 December 2026): only one not begun."""
    ahead = _ahead()
    case = make_case(drugs=_drug(start_date=ahead[start], stop_date=ahead.get(stop, "")))
    drug = case.drugs.get()
    assert (drug.start_text, drug.stop_text) == (ahead[start], ahead.get(stop, ""))


def test_a_correction_or_a_follow_up_with_a_drug_started_in_the_future_changes_nothing(api_for, make_case):
    """Through the API's edit and follow-up: refused at the field, the case as it was (its drug, its version, its
    versions)."""
    case = make_case(drugs=_drug(start_date="2026-03", stop_date="2026-03-20"))
    api, ahead = api_for("pv", lang="zh-hans"), _ahead()
    response = api.patch(f"/api/v1/safety/cases/{case.pk}/", {
        "drugs": _drug(start_date=ahead["next year"]), "version": case.version}, format="json")  # fmt: skip
    assert response.status_code == 400, response.content
    assert response.json()["drugs[0].start_date"] == ["用药开始日期不能晚于当前时间。"]
    response = api.post(f"/api/v1/safety/cases/{case.pk}/follow-ups/", {
        "follow_up_received_at": timezone.now().replace(microsecond=0).isoformat(), "summary": "医院补充用药记录",
        "drugs": _drug(start_date="2026-03", stop_date=ahead["tomorrow"]), "version": case.version}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["drugs[0].stop_date"] == ["停药日期不能晚于当前时间。"]
    fresh = SafetyCase.objects.get(pk=case.pk)
    assert fresh.version == case.version and fresh.versions.count() == 1
    drug = fresh.drugs.get()
    assert (drug.start_text, drug.stop_text) == ("2026-03", "2026-03-20")


def test_the_case_form_says_a_drug_started_in_the_future_at_its_field_and_keeps_the_case(client_for, make_case):
    from .test_case_pages import form_data, html

    case = make_case()
    version = case.version
    pv = client_for("pv")
    url = reverse("safety:case-edit", args=[case.pk])
    ahead = _ahead()
    refused = pv.post(url, form_data(case, **{"drugs-0-start_date": ahead["next year"],
                                              "drugs-0-stop_date": ahead["next month"]}))  # fmt: skip
    assert refused.status_code == 400
    page = html(refused)
    start = re.search(r'id="field-drugs-0-start_date".*?</div>', page, re.S).group(0)
    stop = re.search(r'id="field-drugs-0-stop_date".*?</div>', page, re.S).group(0)
    assert "用药开始日期不能晚于当前时间。" in start and "停药日期不能晚于当前时间。" in stop
    case.refresh_from_db()
    assert case.version == version and case.drugs.get().start_date is None


def test_an_icsr_with_a_drug_started_in_the_future_is_refused_whole(make_case, users):
    """An incoming ICSR's G.k.4.r.4 ahead of today (a partner's typing slip): the file is refused, naming the report
    and the field, and nothing of it is kept."""
    from pharmacrm.safety.e2b import export, importer

    case = make_case(drugs=_drug(start_date="2026-03"))
    root = etree.fromstring(export.release([case]).xml)
    [low] = root.xpath("//*[local-name()='substanceAdministration']/*[local-name()='effectiveTime']"
                       "/*[local-name()='low']")  # fmt: skip
    low.set("value", _ahead()["next year"])
    SafetyCase.objects.filter(pk=case.pk).delete()
    with pytest.raises(ValidationError) as refused:
        importer.import_file(users["pv"], etree.tostring(root), source_name="partner.xml")
    assert any("drugs[0].start_date" in m and "用药开始日期不能晚于当前时间。" in m
               for m in refused.value.message_dict["file"]), refused.value.message_dict
    assert not SafetyCase.objects.exists()


@pytest.mark.parametrize("end", ["tomorrow", "next month", "next year"])
def test_a_reaction_ended_in_the_future_is_refused_at_its_field(api_for, end):
    """The reaction's end (E.i.5) likewise: kept as typed, it was refused only by the export."""
    reactions = [{**COMPLETE["reactions"][0], "onset_date": "2026-03", "end_date": _ahead()[end]}]
    for language, message in (("zh-hans", "结束日期不能晚于当前时间。"), ("zh-hant", "結束日期不能晚於當前時間。"),
                              ("en", "The end cannot be in the future.")):  # fmt: skip
        response = api_for("pv", lang=language).post("/api/v1/safety/cases/", {**COMPLETE, "reactions": reactions},
                                                      format="json")  # fmt: skip
        assert response.status_code == 400, response.content
        assert response.json()["reactions[0].end_date"] == [message]
    assert SafetyCase.objects.count() == 0


def test_a_reaction_ended_this_month_is_not_in_the_future(make_case):
    reaction = make_case(reactions=[{**COMPLETE["reactions"][0], "onset_date": "2026-03",
                                     "end_date": _ahead()["this month"]}]).reactions.get()  # fmt: skip
    assert reaction.end_text == _ahead()["this month"]
