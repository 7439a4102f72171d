"""Session 38: a death abroad is a serious case from abroad (15 days), not China's 24-hour death report and death
investigation; a partner's ICSR keeps the patient's and reporter's identities out of its free text too."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety.models import ReportingRule, SafetyCase, SafetyClock
from tests.api import conftest as api_fixtures

from .conftest import COMPLETE

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role

# --- 1. a death abroad ---------------------------------------------------------------------------------------------

DAY0 = timezone.make_aware(dt.datetime(2026, 3, 2, 10, 0))
FATAL = [{**COMPLETE["reactions"][0], "outcome": "5", "death": True}]
FOREIGN_15_DAYS = ("CN-FOREIGN-SERIOUS", timezone.make_aware(dt.datetime(2026, 3, 17, 23, 59, 59)))
DEATH_24_HOURS = ("CN-DEATH", timezone.make_aware(dt.datetime(2026, 3, 3, 10, 0)))
INVESTIGATION_15_DAYS = ("CN-DEATH-INVESTIGATION", timezone.make_aware(dt.datetime(2026, 3, 17, 23, 59, 59)))


def _clocks(case, *, owed: bool = False) -> list[tuple[str, dt.datetime]]:
    """The case's report and investigation clocks (`owed`: the unmet ones), by rule code, with their deadline."""
    clocks = SafetyClock.objects.filter(case=case, kind__in=["report", "investigation"]).select_related("rule")
    if owed:
        clocks = clocks.filter(met_at__isnull=True)
    return sorted((c.rule.code, timezone.localtime(c.due_at)) for c in clocks)


@pytest.mark.parametrize(("country", "expected"), [
    ("US", [FOREIGN_15_DAYS]),
    ("JP", [FOREIGN_15_DAYS]),
    ("HK", [FOREIGN_15_DAYS]),  # 境内 is the mainland
    ("CN", [DEATH_24_HOURS, INVESTIGATION_15_DAYS]),
    ("", [DEATH_24_HOURS, INVESTIGATION_15_DAYS]),  # no known country counts as from China
])  # fmt: skip
def test_a_death_abroad_is_due_in_15_days_and_is_not_investigated(make_case, country, expected):
    """A partner's report of a patient who died in the United States got China's 24-hour death clock (overdue the
    next morning, the PV officers and their manager told so) and the 15-day death investigation report. Both are for
    a death in China (药品不良反应报告和监测管理办法 arts. 20-21); a death abroad is a serious case from abroad, told
    to the NMPA within 15 days (药物警戒质量管理规范, CN-FOREIGN-SERIOUS), and not investigated by the company."""
    case = make_case(country=country, received_at=DAY0, reactions=FATAL)
    assert case.fatal and case.valid
    assert _clocks(case) == sorted(expected)


def test_a_follow_up_of_a_death_abroad_is_due_in_15_days_from_its_receipt(make_case, users):
    from pharmacrm.safety import services

    case = make_case(country="US", received_at=DAY0, reactions=FATAL)
    services.add_follow_up(users["pv"], case, {"narrative": "尸检报告：过敏性休克"}, received_at=DAY0 + dt.timedelta(days=3),
                           summary="尸检")  # fmt: skip
    assert _clocks(case) == [FOREIGN_15_DAYS, ("CN-FOREIGN-SERIOUS",
                                               timezone.make_aware(dt.datetime(2026, 3, 20, 23, 59, 59)))]


def test_correcting_where_the_death_occurred_moves_the_clocks_and_says_so_in_the_audit_trail(api_for, make_case):
    """The officer typed CN for a death in Japan: the case owed the 24-hour report and the investigation. Corrected to
    JP, it owes the 15-day report from abroad from the same receipt; corrected back, China's death clocks return.
    The audit entry of each correction names the clocks before and after."""
    case = make_case(country="CN", received_at=DAY0, reactions=FATAL)
    assert _clocks(case) == [DEATH_24_HOURS, INVESTIGATION_15_DAYS]
    url = f"/api/v1/safety/cases/{case.pk}/"

    response = api_for("pv").patch(url, {"country": "JP", "version": case.version}, format="json")
    assert response.status_code == 200, response.content
    assert _clocks(case) == [FOREIGN_15_DAYS]
    entry = AuditEntry.objects.filter(object_type="safety.safetycase", object_id=str(case.pk),
                                      action=AuditEntry.Action.UPDATE).latest("id")  # fmt: skip
    assert entry.changes["country"] == ["CN", "JP"]
    before, after = entry.changes["clocks"]
    assert [c.split()[0] for c in before] == ["CN-DEATH", "CN-DEATH-INVESTIGATION"]
    assert [c.split()[0] for c in after] == ["CN-FOREIGN-SERIOUS"]

    case.refresh_from_db()
    response = api_for("pv").patch(url, {"country": "CN", "version": case.version}, format="json")
    assert response.status_code == 200, response.content
    assert _clocks(case) == [DEATH_24_HOURS, INVESTIGATION_15_DAYS]


def test_a_database_installed_before_replans_its_open_deaths_abroad(make_case):
    """Migration 0014 limits the shipped death rules to deaths in China and audits it; once `migrate` is done, an open
    death abroad still owing the 24-hour report is due in 15 days from the same receipt, one whose report was sent
    keeps that report and loses only the investigation nobody owes, a death in China and a closed case are left as
    they are; each change is audited by the migration."""
    import importlib
    import types

    from django.apps import apps
    from django.db import connection

    from pharmacrm.safety import apps as safety_apps
    from pharmacrm.safety import services
    from pharmacrm.safety.choices import CaseStatus

    ReportingRule.objects.filter(code__in=["CN-DEATH", "CN-DEATH-INVESTIGATION"]).update(condition="death")
    open_abroad = make_case(country="US", received_at=DAY0, reactions=FATAL)
    reported_abroad = make_case(country="DE", received_at=DAY0, reactions=FATAL)
    SafetyClock.objects.filter(case=reported_abroad, rule__code="CN-DEATH").update(
        met_at=DAY0 + dt.timedelta(hours=20), next_check_at=None)
    in_china = make_case(country="CN", received_at=DAY0, reactions=FATAL)
    closed = make_case(country="US", received_at=DAY0, reactions=FATAL)
    SafetyCase.objects.filter(pk=closed.pk).update(status=CaseStatus.CLOSED)
    services._close_clocks(closed, timezone.now())
    for case in (open_abroad, reported_abroad, in_china, closed):  # under the old rules, as stored
        assert [code for code, _due in _clocks(case)] == ["CN-DEATH", "CN-DEATH-INVESTIGATION"]

    migration = importlib.import_module("pharmacrm.safety.migrations.0014_domestic_death_rules")
    migration.limit_to_deaths_in_china(apps, types.SimpleNamespace(connection=connection))
    safety_apps.revalidate_after_migrate(None, using=connection.alias)

    assert set(ReportingRule.objects.filter(code__startswith="CN-DEATH").values_list("condition", flat=True)) == {
        "death_domestic"}
    rule = ReportingRule.objects.get(code="CN-DEATH")
    entry = AuditEntry.objects.filter(object_type="safety.reportingrule", object_id=str(rule.pk)).latest("id")
    assert entry.changes == {"condition": ["death", "death_domestic"]} and entry.actor_name == "migration safety 0014"
    assert _clocks(open_abroad) == [FOREIGN_15_DAYS]
    assert _clocks(reported_abroad) == [DEATH_24_HOURS]  # the report sent stands; no investigation, no second report
    assert _clocks(in_china) == [DEATH_24_HOURS, INVESTIGATION_15_DAYS]
    assert [code for code, _due in _clocks(closed)] == ["CN-DEATH", "CN-DEATH-INVESTIGATION"]  # stopped, left alone
    for case in (open_abroad, reported_abroad):
        entry = AuditEntry.objects.filter(object_type="safety.safetycase", object_id=str(case.pk)).latest("id")
        assert entry.actor_name == "migration safety 0014" and "CN-FOREIGN-SERIOUS" in entry.extra["reason"]
        assert [c.split()[0] for c in entry.changes["clocks"][0]] == (
            ["CN-DEATH", "CN-DEATH-INVESTIGATION"] if case is open_abroad else ["CN-DEATH-INVESTIGATION"])
    changed_before = AuditEntry.objects.count()
    assert services.replan_foreign_deaths(reason="again") == 0  # run again: nothing left to change
    assert AuditEntry.objects.count() == changed_before


def test_the_rules_page_says_the_death_rules_are_for_deaths_in_china(client_for):
    page = client_for("pv").get(reverse("safety:rules")).content.decode()
    assert "发生于本辖区（境内）：死亡病例" in page


# --- 2. a partner's ICSR: the identities in the free text ------------------------------------------------------------

NARRATIVE = ("患者王小明，男，45 岁（住院号 ZY2026-0042，身份证号 11010519491231002X），静脉滴注头孢曲松后 30 分钟出现全身皮疹。"
             "家属电话 139 1234 5678。由张伟医师（138-0013-8000，zhangwei@example.com）报告；王小明停药后好转。")  # fmt: skip
IDENTITIES = ("王小明", "张伟", "13800138000", "138-0013-8000", "139 1234 5678", "11010519491231002X", "ZY2026-0042",
              "zhangwei@example.com")  # fmt: skip


def test_a_partner_icsr_withholds_the_identities_written_in_the_narrative_and_history(api_for, make_case, users,
                                                                                      settings):  # fmt: skip
    """The partner's file masked the patient's name, the record number and the reporter's name and phone in their
    elements — and sent the narrative as written, with the patient's full name, the family's and the reporter's phone
    numbers, the ID card number and the reporter's e-mail in it (PIPL art. 6, 28). In the partner's file the patient is
    WXM in the text too (D.1's initials) and the rest is masked; the reaction and its course stay readable. The NMPA's
    file keeps the text as written."""
    from .conftest import next_code, sign_code
    from .test_e2b_export import at
    from .test_qa_round37 import _export

    settings.SAFETY_PARTNER_RECEIVER_ID = "PARTNER-ACME"
    pv = users["pv"]
    case = make_case(patient_name="王小明", patient_record_number="ZY2026-0042", narrative=NARRATIVE,
                     patient_history="王小明既往高血压 5 年，联系电话 13800138000", reporter_comment="请联系张伟核实。",
                     sender_comment="随访：王小明家属 139-1234-5678。")  # fmt: skip

    partner = _export(api_for, users, case, "partner", sign_code(pv))

    text = " ".join(partner.itertext())
    for personal in IDENTITIES:
        assert personal not in text, personal
    [narrative] = at(partner, "H.1")
    assert narrative.startswith("患者WXM，男，45 岁（住院号 ****，身份证号 ****），静脉滴注头孢曲松后 30 分钟出现全身皮疹。")
    assert "家属电话 ****。由****医师（****，****）报告；WXM停药后好转。" in narrative
    assert "WXM既往高血压 5 年，联系电话 ****" in text  # D.7.2
    assert "请联系****核实。" in text and "随访：WXM家属 ****。" in text  # H.2, H.4

    regulatory = _export(api_for, users, SafetyCase.objects.get(pk=case.pk), "regulatory", next_code(pv))

    assert at(regulatory, "H.1") == [NARRATIVE]
    assert "王小明既往高血压 5 年，联系电话 13800138000" in " ".join(regulatory.itertext())


@pytest.mark.parametrize(("name", "contact", "written", "sent"), [
    ("John A. Smith", "j.smith@example.org", "JOHN A. SMITH (j.smith@example.org) fainted.", "JAS (****) fainted."),
    ("Li Ming", "+86 010-6529 5000", "Li Ming, tel. 010 6529 5000, felt dizzy.", "LM, tel. ****, felt dizzy."),
    ("WXM", "", "WXM 出现皮疹，批号 B20260901，血压 130/80。", "WXM 出现皮疹，批号 B20260901，血压 130/80。"),
])  # fmt: skip
def test_the_partners_text_finds_a_name_and_a_number_however_they_are_written(make_case, name, contact, written,
                                                                              sent):  # fmt: skip
    """A name in Latin letters in any case, a landline written with spaces instead of dashes, a mobile with +86; and
    what is no identity — initials already, a batch number, a blood pressure — stays as written."""
    from lxml import etree

    from pharmacrm.safety.e2b import export

    case = make_case(patient_name=name, reporter_contact=contact or "13800138000", narrative=written)
    batch = etree.fromstring(export.build([case], purpose="partner"))
    assert batch.xpath("//*[local-name()='investigationEvent']/*[local-name()='text']/text()") == [sent]


# --- 3. a reaction's onset known to the month or the year (E2B(R3) E.i.4 / E.i.5) ------------------------------------

MARCH = [{**COMPLETE["reactions"][0], "onset_date": "2026-03", "end_date": "2026"}]


def test_the_api_takes_and_gives_an_onset_known_to_the_month_and_an_end_known_to_the_year(api_for):
    """The reporter remembers "March 2026": the API refused 2026-03, and a PV officer typed 2026-03-01 — a day the
    regulator reads as known. It is taken as a month and given back as one."""
    from pharmacrm.safety.models import Reaction

    api = api_for("pv")
    response = api.post("/api/v1/safety/cases/", {**COMPLETE, "reactions": MARCH}, format="json")
    assert response.status_code == 201, response.content
    reaction = Reaction.objects.get()
    assert (reaction.onset_date, reaction.onset_precision) == (dt.date(2026, 3, 1), "month")
    assert (reaction.end_date, reaction.end_precision) == (dt.date(2026, 1, 1), "year")
    [given] = api.get(f"/api/v1/safety/cases/{response.json()['id']}/").json()["reactions"]
    assert (given["onset_date"], given["end_date"]) == ("2026-03", "2026")


@pytest.mark.parametrize(("onset", "end", "field", "zh", "en"), [
    ("2026-13", "", "onset_date", "请输入日期（2026-03-15）、月份（2026-03）或年份（2026）。",
     "Enter a date (2026-03-15), a month (2026-03) or a year (2026)."),
    ("2026-03-15", "2026-02", "end_date", "结束日期早于发生日期。", "The end date is before the onset."),
    ("2999-01", "", "onset_date", "发生日期不能晚于当前时间。", "The onset cannot be in the future."),
])  # fmt: skip
def test_a_partial_date_that_cannot_be_is_refused_at_its_field_in_the_readers_language(api_for, onset, end, field,
                                                                                       zh, en):  # fmt: skip
    reactions = [{**COMPLETE["reactions"][0], "onset_date": onset, "end_date": end}]
    for language, message in (("zh-hans", zh), ("en", en)):
        response = api_for("pv", lang=language).post("/api/v1/safety/cases/", {**COMPLETE, "reactions": reactions},
                                                      format="json")  # fmt: skip
        assert response.status_code == 400, response.content
        assert message in str(response.json()), (language, response.json())
    assert SafetyCase.objects.count() == 0


def test_an_end_in_the_month_of_the_onset_is_not_before_it(make_case):
    case = make_case(reactions=[{**COMPLETE["reactions"][0], "onset_date": "2026-03-15", "end_date": "2026-03"}])
    assert case.reactions.get().end_text == "2026-03"


def test_the_case_form_takes_a_month_shows_it_and_says_what_it_cannot_take(client_for, make_case):
    from .test_case_pages import form_data, html

    case = make_case()
    pv = client_for("pv")
    url = reverse("safety:case-edit", args=[case.pk])
    page = html(pv.get(url))
    assert "2026-03" in page and 'name="reactions-0-onset_date"' in page  # the placeholder/help names the forms

    refused = pv.post(url, form_data(case, **{"reactions-0-onset_date": "2026年13月"}))
    assert refused.status_code == 400
    row = re.search(r'id="field-reactions-0-onset_date".*?</div>', html(refused), re.S).group(0)
    assert "请输入日期（2026-03-15）、月份（2026-03）或年份（2026）。" in row

    assert pv.post(url, form_data(case, **{"reactions-0-onset_date": "2026年3月"})).status_code == 302
    assert case.reactions.get().onset_text == "2026-03"
    assert re.search(r'<td class="nowrap">2026-03</td>', html(pv.get(reverse("safety:case", args=[case.pk]))))
    assert 'value="2026-03"' in html(pv.get(url))  # edited again: still a month, not 2026-03-01


def test_the_new_case_form_takes_a_year(client_for):
    response = client_for("pv").post(reverse("safety:case-new"), {
        "kind": "adverse_reaction", "received_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        "reporter_name": "刘药师", "reporter_qualification": "2", "patient_name": "赵某", "drug_brand_name": "罗氏芬",
        "reaction_verbatim": "皮疹", "reaction_onset_date": "2025",
    })  # fmt: skip
    assert response.status_code == 302
    assert SafetyCase.objects.get().reactions.get().onset_text == "2025"


def test_the_icsr_sends_a_partial_date_at_its_precision_and_an_imported_one_keeps_it(make_case, users):
    """E.i.4 / E.i.5 went out as 20260301 for "March 2026"; an incoming 202603 became 1 March with a warning. Now
    202603 and 2026 go out (valid against the schema and the business rules), and come back in as a month and a
    year."""
    from pharmacrm.safety.e2b import export, importer, schema
    from pharmacrm.safety.models import Reaction

    case = make_case(reactions=MARCH)
    batch = export.release([case]).xml
    assert schema.validate(batch, schema.BATCH) == []
    root = etree_from(batch)
    period = root.xpath("//*[local-name()='observation'][*[local-name()='code'][@code='29']]"
                        "/*[local-name()='effectiveTime']")[0]  # fmt: skip
    assert period.xpath("*[local-name()='low']/@value") == ["202603"]
    assert period.xpath("*[local-name()='high']/@value") == ["2026"]

    parsed = importer.parse(batch, source_name="partner.xml")[0]
    [reaction] = parsed["reactions"]
    assert (reaction["onset_date"], reaction["onset_precision"]) == (dt.date(2026, 3, 1), "month")
    assert (reaction["end_date"], reaction["end_precision"]) == (dt.date(2026, 1, 1), "year")
    assert not any("2026" in w and "first day" in w for w in parsed.get("warnings", []))
    SafetyCase.objects.filter(pk=case.pk).delete()
    [imported] = importer.import_file(users["pv"], batch, source_name="partner.xml")
    reaction = Reaction.objects.get(case=imported)
    assert (reaction.onset_text, reaction.end_text) == ("2026-03", "2026")
    assert importer.import_file(users["pv"], batch, source_name="partner.xml")[0].versions.count() == 1  # again: same


def etree_from(data: bytes):
    from lxml import etree

    return etree.fromstring(data)


def test_the_report_form_pdf_says_the_month_the_reaction_occurred_in(users):
    """The 报告表 printed 2026年3月1日 for a reaction "in March 2026": a day nobody reported."""
    from pharmacrm.safety import report_pdf
    from pharmacrm.safety.models import CaseVersion, Reaction

    from .test_report_pdf import _text

    now = timezone.now()
    case = SafetyCase.objects.create(number="AE-2026-000099", kind="adverse_reaction", received_at=now,
                                     latest_received_at=now)  # fmt: skip
    CaseVersion.objects.create(case=case, sequence=0, received_at=now)
    Reaction.objects.create(case=case, verbatim="皮疹", onset_date=dt.date(2026, 3, 1), onset_precision="month")
    text = "".join(_text(report_pdf.render(case)))
    assert "2026-03" in text and "2026年3月1日" not in text
