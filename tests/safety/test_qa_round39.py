"""Session 39: reopening a case re-plans its clocks under the current rules (a death abroad closed before safety 0014
does not get China's 24-hour death clock back)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety import services
from pharmacrm.safety.models import ReportingRule, SafetyCase, SafetyClock
from tests.api import conftest as api_fixtures

from .conftest import COMPLETE, reopen

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role

# --- 1. reopening a closed death abroad ----------------------------------------------------------------------------

FATAL = [{**COMPLETE["reactions"][0], "outcome": "5", "death": True}]


def _closed_death_abroad(make_case, users, *, reported: bool = False) -> SafetyCase:
    """A death in the United States received three days ago and closed (with a reason) under the rules as shipped
    before safety 0014, so it holds stopped CN-DEATH and CN-DEATH-INVESTIGATION clocks — the migration leaves a
    closed case as it is. `reported`: the 24-hour report was sent before closing."""
    old_rules = ReportingRule.objects.filter(code__in=["CN-DEATH", "CN-DEATH-INVESTIGATION"])
    old_rules.update(condition="death")
    case = make_case(country="US", received_at=timezone.now() - dt.timedelta(days=3), reactions=FATAL)
    if reported:
        SafetyClock.objects.filter(case=case, rule__code="CN-DEATH").update(
            met_at=case.received_at + dt.timedelta(hours=20), next_check_at=None)
    case.refresh_from_db()
    services.set_status(users["pv"], case, "closed", reason="重复报告，已在总部数据库处理")
    old_rules.update(condition="death_domestic")  # the rules as they are now
    assert sorted(SafetyClock.objects.filter(case=case, stopped_at__isnull=False).values_list("rule__code", flat=True)
                  ) == (["CN-DEATH-INVESTIGATION"] if reported else ["CN-DEATH", "CN-DEATH-INVESTIGATION"])
    case.refresh_from_db()
    return case


def _api_clocks(api_for, case) -> list[tuple]:
    body = api_for("pv").get(f"/api/v1/safety/cases/{case.pk}/").json()
    return sorted((c["rule"], c["version"], c["met_at"] is not None) for c in body["clocks"])


@pytest.mark.parametrize("how", ["status", "follow-up"])
def test_reopening_a_death_abroad_closed_before_0014_owes_the_15_day_report_not_the_24_hour_one(
        api_for, client_for, make_case, users, how):
    """A death abroad closed before safety 0014 still held China's stopped 24-hour death clock and death investigation.
    Reopened (by the status change or by a follow-up), it had both watched again: overdue at once on the case page,
    in the API and in the overdue list, the officers warned of a report China's rules no longer ask for it. Reopened
    now, it owes what the rules give it today: the serious case from abroad in 15 days from the same receipt; the
    audit entry of the reopening names the stopped clocks it held and the clocks it owes now."""
    case = _closed_death_abroad(make_case, users)
    client = api_for("pv")
    reopen(client, case, how)
    expected = [("CN-FOREIGN-SERIOUS", 0, False)] + ([("CN-FOREIGN-SERIOUS", 1, False)] if how == "follow-up" else [])
    case.refresh_from_db()
    assert case.status == "assessing"

    assert _api_clocks(api_for, case) == expected
    [v0] = SafetyClock.objects.filter(case=case, case_version__sequence=0)
    assert v0.stopped_at is None and v0.next_check_at is not None  # watched: warned of, then overdue, in time
    assert timezone.localtime(v0.due_at).date() == timezone.localtime(case.received_at).date() + dt.timedelta(days=15)
    body = client.get(f"/api/v1/safety/cases/{case.pk}/").json()
    assert body["overdue"] is False and body["next_due_at"] is not None

    page = client_for("pv").get(reverse("safety:case", args=[case.pk])).content.decode()
    clocks = re.search(r'id="clock-table".*?</table>', page, re.S).group(0)
    assert "境外发生的严重不良反应" in clocks and "死亡病例" not in clocks
    assert 'data-sla="breached"' not in clocks and 'data-sla="stopped"' not in clocks
    overdue = client_for("pv").get(reverse("safety:cases"), {"overdue": "on"}).content.decode()
    table = re.search(r'class="table case-table".*?</table>', overdue, re.S)
    assert table is None or case.number not in table.group(0)

    entry = AuditEntry.objects.filter(object_type="safety.safetycase", object_id=str(case.pk),
                                      action=AuditEntry.Action.UPDATE).latest("id")  # fmt: skip
    assert entry.changes["status"] == ["closed", "assessing"]
    before, after = entry.changes["clocks"]
    assert [c.split()[0] for c in before] == ["CN-DEATH", "CN-DEATH-INVESTIGATION"]
    assert [c.split()[0] for c in after] == ["CN-FOREIGN-SERIOUS"]  # (the follow-up's own is planned after)


def test_reopening_a_death_abroad_whose_report_was_sent_owes_no_second_report(api_for, make_case, users):
    """Its 24-hour report was sent before closing: it stands, and reopening owes no second report of that version
    and no investigation (nobody owes it for a death abroad)."""
    case = _closed_death_abroad(make_case, users, reported=True)
    response = api_for("pv").post(f"/api/v1/safety/cases/{case.pk}/status/",
                                  {"status": "assessing", "reason": "总部要求重新评估", "version": case.version},
                                  format="json")  # fmt: skip
    assert response.status_code == 200, response.content
    assert _api_clocks(api_for, case) == [("CN-DEATH", 0, True)]
    case.refresh_from_db()
    assert case.status == "assessing" and response.json()["next_due_at"] is None


def test_reopening_a_case_the_rules_still_cover_restarts_its_clocks_as_before(make_case, users):
    """A death in China closed without its report: reopened, the 24-hour report and the investigation run again,
    unchanged (the same clocks, the same deadlines), and the audit entry has no clock change to tell."""
    case = make_case(country="CN", received_at=timezone.now() - dt.timedelta(days=3), reactions=FATAL)
    planned = sorted(SafetyClock.objects.filter(case=case).values_list("pk", "rule__code", "due_at"))
    services.set_status(users["pv"], case, "closed", reason="重复报告")
    case.refresh_from_db()
    services.set_status(users["pv"], case, "assessing", reason="非重复", version=case.version)
    assert sorted(SafetyClock.objects.filter(case=case, stopped_at__isnull=True, met_at__isnull=True)
                  .values_list("pk", "rule__code", "due_at")) == planned  # fmt: skip
    entry = AuditEntry.objects.filter(object_type="safety.safetycase", object_id=str(case.pk)).latest("id")
    assert entry.changes == {"status": ["closed", "assessing"]}


# --- 2. a drug's start and stop known to the month or the year (E2B(R3) G.k.4.r.4 / G.k.4.r.5) -----------------------

SINCE_MARCH = [{**COMPLETE["drugs"][0], "start_date": "2026-03", "stop_date": "2026"}]


def test_the_api_takes_and_gives_a_drug_started_in_a_month_and_stopped_in_a_year(api_for):
    """The reporter remembers "taken since March 2026, stopped some time in 2026": the API refused 2026-03, and a PV
    officer typed 2026-03-01 — a day the regulator reads as known. It is taken as a month and given back as one."""
    from pharmacrm.safety.models import Drug

    api = api_for("pv")
    response = api.post("/api/v1/safety/cases/", {**COMPLETE, "drugs": SINCE_MARCH}, format="json")
    assert response.status_code == 201, response.content
    drug = Drug.objects.get()
    assert (drug.start_date, drug.start_precision) == (dt.date(2026, 3, 1), "month")
    assert (drug.stop_date, drug.stop_precision) == (dt.date(2026, 1, 1), "year")
    [given] = api.get(f"/api/v1/safety/cases/{response.json()['id']}/").json()["drugs"]
    assert (given["start_date"], given["stop_date"]) == ("2026-03", "2026")
    # a whole day stays a whole day
    case = SafetyCase.objects.get()
    response = api.patch(f"/api/v1/safety/cases/{case.pk}/", {
        "drugs": [{**COMPLETE["drugs"][0], "start_date": "2026-03-02", "stop_date": "2026-03-09"}],
        "version": case.version}, format="json")  # fmt: skip
    assert response.status_code == 200, response.content
    assert [(d["start_date"], d["stop_date"]) for d in response.json()["drugs"]] == [("2026-03-02", "2026-03-09")]
    assert Drug.objects.get().start_precision == "day"


@pytest.mark.parametrize(("start", "stop", "field", "zh", "zh_hant", "en"), [
    ("2026-13", "", "start_date", "请输入日期（2026-03-15）、月份（2026-03）或年份（2026）。",
     "請輸入日期（2026-03-15）、月份（2026-03）或年份（2026）。", "Enter a date (2026-03-15), a month (2026-03) or a year (2026)."),
    ("", "3月", "stop_date", "请输入日期（2026-03-15）、月份（2026-03）或年份（2026）。",
     "請輸入日期（2026-03-15）、月份（2026-03）或年份（2026）。", "Enter a date (2026-03-15), a month (2026-03) or a year (2026)."),
    ("2026-04", "2026-03-20", "stop_date", "停药日期早于开始日期。", "停藥日期早於開始日期。",
     "The stop date is before the start date."),
    ("2026", "2025-12", "stop_date", "停药日期早于开始日期。", "停藥日期早於開始日期。",
     "The stop date is before the start date."),
])  # fmt: skip
def test_a_drug_date_that_cannot_be_is_refused_at_its_field_in_the_readers_language(api_for, start, stop, field, zh,
                                                                                    zh_hant, en):  # fmt: skip
    drugs = [{**COMPLETE["drugs"][0], "start_date": start, "stop_date": stop}]
    for language, message in (("zh-hans", zh), ("zh-hant", zh_hant), ("en", en)):
        response = api_for("pv", lang=language).post("/api/v1/safety/cases/", {**COMPLETE, "drugs": drugs},
                                                      format="json")  # fmt: skip
        assert response.status_code == 400, response.content
        body = response.json()
        assert message in str(body), (language, body)
        assert field in str(body), (language, body)  # at its field
    assert SafetyCase.objects.count() == 0


@pytest.mark.parametrize(("start", "stop"), [("2026-03-15", "2026-03"), ("2026-03", "2026-03-01"), ("2026", "2026-01"),
                                             ("2026-06-30", "2026")])  # fmt: skip
def test_a_stop_in_the_period_of_the_start_is_not_before_it(make_case, start, stop):
    """Stopped "in March" is not before started on 15 March: compared as periods, a start after a stop is refused only
    where the precision shows it (above)."""
    case = make_case(drugs=[{**COMPLETE["drugs"][0], "start_date": start, "stop_date": stop}])
    drug = case.drugs.get()
    assert (drug.start_text, drug.stop_text) == (start, stop)


def test_the_case_form_takes_a_drug_started_in_a_month_shows_it_and_says_what_it_cannot_take(client_for, make_case):
    from .test_case_pages import form_data, html

    case = make_case()
    pv = client_for("pv")
    url = reverse("safety:case-edit", args=[case.pk])
    page = html(pv.get(url))
    field = re.search(r'<input[^>]*name="drugs-0-start_date"[^>]*>', page).group(0)
    assert 'type="text"' in field  # a date picker takes whole days only

    refused = pv.post(url, form_data(case, **{"drugs-0-start_date": "2026年13月"}))
    assert refused.status_code == 400
    row = re.search(r'id="field-drugs-0-start_date".*?</div>', html(refused), re.S).group(0)
    assert "请输入日期（2026-03-15）、月份（2026-03）或年份（2026）。" in row
    refused = pv.post(url, form_data(case, **{"drugs-0-start_date": "2026-04", "drugs-0-stop_date": "2026-03-31"}))
    assert refused.status_code == 400
    assert "停药日期早于开始日期。" in html(refused)

    response = pv.post(url, form_data(case, **{"drugs-0-start_date": "2026年3月", "drugs-0-stop_date": "2026"}))
    assert response.status_code == 302
    drug = case.drugs.get()
    assert (drug.start_text, drug.stop_text) == ("2026-03", "2026")
    assert "2026-03 – 2026</td>" in html(pv.get(reverse("safety:case", args=[case.pk])))
    page = html(pv.get(url))  # edited again: still a month and a year, not 2026-03-01 and 2026-01-01
    assert 'value="2026-03"' in re.search(r'<input[^>]*name="drugs-0-start_date"[^>]*>', page).group(0)
    assert 'value="2026"' in re.search(r'<input[^>]*name="drugs-0-stop_date"[^>]*>', page).group(0)


def _drug_period(root) -> list[list[str]]:
    periods = root.xpath("//*[local-name()='substanceAdministration']/*[local-name()='effectiveTime']")
    return [[p.xpath("*[local-name()='low']/@value"), p.xpath("*[local-name()='high']/@value")] for p in periods]


def test_the_icsr_sends_a_drug_period_at_its_precision_and_an_imported_one_keeps_it(make_case, users):
    """G.k.4.r.4 / G.k.4.r.5 go out as 202603 and 2026 (the ICH schema's TS, valid against it and the business
    rules: "minimum precision required is the year"), and come back in as a month and a year, without the
    "only part of the date … the first day was used" warning; the same file imported again changes nothing."""
    from lxml import etree

    from pharmacrm.safety.e2b import export, importer, rules, schema
    from pharmacrm.safety.models import Drug

    case = make_case(drugs=SINCE_MARCH)
    assert [p.element for p in rules.check(case) if p.element.startswith("G.k.4")] == []
    batch = export.release([case]).xml
    assert schema.validate(batch, schema.BATCH) == []
    assert _drug_period(etree.fromstring(batch)) == [[["202603"], ["2026"]]]

    parsed = importer.parse(batch, source_name="partner.xml")[0]
    [drug] = parsed["drugs"]
    assert (drug["start_date"], drug["start_precision"]) == (dt.date(2026, 3, 1), "month")
    assert (drug["stop_date"], drug["stop_precision"]) == (dt.date(2026, 1, 1), "year")
    assert not any("first day" in w for w in parsed.get("warnings", []))
    SafetyCase.objects.filter(pk=case.pk).delete()
    [imported] = importer.import_file(users["pv"], batch, source_name="partner.xml")
    drug = Drug.objects.get(case=imported)
    assert (drug.start_text, drug.stop_text) == ("2026-03", "2026")
    assert importer.import_file(users["pv"], batch, source_name="partner.xml")[0].versions.count() == 1  # again: same


def test_an_imported_drug_given_in_several_dosages_runs_from_the_earliest_start_to_the_latest_stop(make_case):
    """Two dosage rows: 2026-02-15 to 2026-03-10, then from March to some time in 2026. The drug started on 15
    February (the earliest start) and stopped in 2026 (a year ends after 10 March: the latest stop, as a period)."""
    from lxml import etree

    from pharmacrm.safety.e2b import export, importer

    case = make_case(drugs=SINCE_MARCH)
    root = etree.fromstring(export.release([case]).xml)
    [period] = root.xpath("//*[local-name()='substanceAdministration']/*[local-name()='effectiveTime']")
    dosage = period.getparent()
    second = etree.fromstring(etree.tostring(dosage.getparent()))
    dosage.getparent().addnext(second)
    period.xpath("*[local-name()='low']")[0].set("value", "20260215")
    period.xpath("*[local-name()='high']")[0].set("value", "20260310")
    [drug] = importer.parse(etree.tostring(root), source_name="partner.xml")[0]["drugs"]
    assert (drug["start_date"], drug["start_precision"]) == (dt.date(2026, 2, 15), "day")
    assert (drug["stop_date"], drug["stop_precision"]) == (dt.date(2026, 1, 1), "year")


def test_the_report_form_pdf_says_the_month_the_drug_was_started_in(users):
    """The 报告表 printed 2026-03-01 for a drug taken "since March 2026": a day nobody reported."""
    from pharmacrm.safety import report_pdf
    from pharmacrm.safety.models import CaseVersion, Drug

    from .test_report_pdf import _text

    now = timezone.now()
    case = SafetyCase.objects.create(number="AE-2026-000098", kind="adverse_reaction", received_at=now,
                                     latest_received_at=now)  # fmt: skip
    CaseVersion.objects.create(case=case, sequence=0, received_at=now)
    Drug.objects.create(case=case, role="1", brand_name="罗氏芬", start_date=dt.date(2026, 3, 1), start_precision="month",
                        stop_date=dt.date(2026, 1, 1), stop_precision="year")  # fmt: skip
    text = "".join(_text(report_pdf.render(case)))
    assert "2026-03~2026" in text and "2026-03-01" not in text  # (the text without its spaces)


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_a_stored_drug_date_a_whole_day(users):
    """Drugs stored before safety 0016 were typed as whole days: migrated, they are whole days (precision "day"),
    shown and sent as such."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from pharmacrm.safety.e2b import export

    executor = MigrationExecutor(connection)
    executor.migrate([("safety", "0015_reaction_date_precision")])
    old = executor.loader.project_state([("safety", "0015_reaction_date_precision")]).apps
    assert "start_precision" not in {f.name for f in old.get_model("safety", "Drug")._meta.get_fields()}
    case = old.get_model("safety", "SafetyCase").objects.create(
        number="AE-2026-000097", kind="adverse_reaction", received_at=timezone.now(),
        latest_received_at=timezone.now())  # fmt: skip
    old.get_model("safety", "Drug").objects.create(case_id=case.pk, role="1", brand_name="罗氏芬",
                                                   start_date=dt.date(2026, 3, 2), stop_date=dt.date(2026, 3, 9))
    executor.loader.build_graph()
    executor.migrate([("safety", "0016_drug_date_precision")])

    from pharmacrm.safety.models import Drug

    drug = Drug.objects.get(case_id=case.pk)
    assert (drug.start_precision, drug.stop_precision) == ("day", "day")
    assert (drug.start_text, drug.stop_text) == ("2026-03-02", "2026-03-09")
    from lxml import etree

    case = SafetyCase.objects.get(pk=case.pk)
    assert _drug_period(etree.fromstring(export.build([case]))) == [[["20260302"], ["20260309"]]]


# --- 3. a one-character name in a partner's free text -----------------------------------------------------------------

ONE_CHARACTER = [
    # the patient 王 (a surname alone) where the text refers to a person by it — and not every 王 in it
    ("王", "张伟", "患者王某，女，45 岁，在王府井社区医院静脉滴注后出现皮疹。王女士既往体健。",
     "患者W某，女，45 岁，在王府井社区医院静脉滴注后出现皮疹。W女士既往体健。"),
    ("王", "张伟", "患者王于 3 月 2 日就诊；病人：王 出院。家属称老王停药后好转（王XX，王姓患者）。",
     "患者W于 3 月 2 日就诊；病人：W 出院。家属称老W停药后好转（WXX，W姓患者）。"),
    ("王", "张伟", "国王牌维生素与头孢同服，王先生次日出现皮疹。", "国王牌维生素与头孢同服，W先生次日出现皮疹。"),
    # the reporter 张 (a surname alone): ****, and 张 the measure word stays
    ("王小明", "张", "由张医生报告；拍了一张X线片，张大夫建议停药。", "由****医生报告；拍了一张X线片，****大夫建议停药。"),
    # a reporter with a full name and a patient with its surname alone: the longer name first
    ("王", "王伟", "王伟医生报告：王先生用药后出现皮疹。", "****医生报告：W先生用药后出现皮疹。"),
]  # fmt: skip


@pytest.mark.parametrize(("patient", "reporter", "written", "sent"), ONE_CHARACTER)
def test_a_one_character_name_is_withheld_where_the_text_refers_to_the_person_by_it(make_case, patient, reporter,
                                                                                    written, sent):  # fmt: skip
    """A patient known by the surname only (王) went to the partner as 患者王某, 王女士 in the narrative — the
    name is withheld everywhere else in the file (D.1 is W). A one-character name is a common character too (王府井,
    国王, 一张 X 线片), so it is withheld where the text refers to a person by it: before 某, XX, 先生, 女士, 医生,
    大夫, 姓 …, after 患者, 病人, 老, 小 …; the NMPA's file keeps the text as written."""
    from lxml import etree

    from pharmacrm.safety.e2b import export

    case = make_case(patient_name=patient, reporter_name=reporter, narrative=written, reporter_comment=written)
    partner = etree.fromstring(export.build([case], purpose="partner"))
    assert partner.xpath("//*[local-name()='investigationEvent']/*[local-name()='text']/text()") == [sent]  # H.1
    assert sent in " ".join(partner.itertext()) and written not in " ".join(partner.itertext())  # H.2 too
    regulatory = etree.fromstring(export.build([case]))
    assert regulatory.xpath("//*[local-name()='investigationEvent']/*[local-name()='text']/text()") == [written]
