"""Session 61: a quality complaint without a reaction owes no ADR report (the demo had given every confirmed flag a
rash); China's 15 days are for serious reactions, a new non-serious one is due in 30 (GVP 2021 art. 135), in new
installs and, through safety 0017, in databases where the shipped rule was left as shipped; what a PV officer reading
Chinese noticed on the case page, the export and the reconciliation."""

from __future__ import annotations

import datetime as dt
import importlib
import re
import types

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety import services
from pharmacrm.safety.models import Flag, ReportingRule, SafetyClock
from pharmacrm.servicedesk import services as desk

from .conftest import COMPLETE, sign_code

pytestmark = pytest.mark.django_db

DAY0 = timezone.make_aware(dt.datetime(2026, 3, 2, 10, 0))
SERIOUS = [{**COMPLETE["reactions"][0], "hospitalisation": True}]


def _report_clocks(case) -> list[tuple[str, dt.datetime]]:
    return [(c.rule.code, timezone.localtime(c.due_at)) for c in
            SafetyClock.objects.filter(case=case, kind="report").select_related("rule").order_by("due_at")]


def _end_of_day(days: int) -> dt.datetime:
    return timezone.make_aware(dt.datetime(2026, 3, 2, 23, 59, 59) + dt.timedelta(days=days))


# --- 1. a quality complaint without a reaction ------------------------------------------------------------------


def _quality_flag(users, xiehe) -> Flag:
    from pharmacrm.customers.models import Person
    from pharmacrm.servicedesk.models import Product

    product = Product.objects.create(brand_name="安疫宁", generic_name="重组人干扰素α2b注射液",
                                     approval_number="国药准字S20253002", dosage_form="注射剂", strength="300万IU")  # fmt: skip
    ticket = desk.create_ticket(users["agent"], {
        "subject": "注射笔无法正常出药", "description": "客户反映新开的注射笔按下后无法出药，药液未见异常。",
        "channel": "phone", "category": "other", "institution": xiehe, "person": Person.objects.get(name="张伟"),
        "assignee": users["agent"], "product": product, "batch_number": "B2611X07",
    })  # fmt: skip
    return Flag.objects.get(ticket=ticket, kind="quality")  # the net flags the defect


def test_a_quality_complaint_confirmed_from_a_flag_owes_no_adr_report_until_a_reaction_is_recorded(users, xiehe):
    """The demo's QC-2026-000001 — 到货数量与订单不符, a complaint about the goods — showed China's 30-day ADR clock, long
    overdue: the demo had given every confirmed flag a rash. Confirmed as PV confirms it, without a reaction, the
    complaint goes to QA with no regulatory clock; a follow-up that records a reaction (the patient injected a
    clouded solution and got a rash) starts the ADR clock from its own receipt."""
    flag = _quality_flag(users, xiehe)
    case = services.confirm_flag(users["pv"], flag, data={"quality": {"defect": flag.excerpt}})
    assert case.number.startswith("QC-") and case.valid
    assert not case.clocks.filter(kind__in=["report", "investigation"]).exists()
    assert case.quality.defect == flag.excerpt

    heard = timezone.now()
    services.add_follow_up(users["pv"], case, {**{k: COMPLETE[k] for k in ("patient_name", "patient_sex")},
                                               "reactions": COMPLETE["reactions"]},
                           received_at=heard, summary="患者注射后出现皮疹")  # fmt: skip
    assert [code for code, _due in _report_clocks(case)] == ["CN-OTHER"]


def test_the_page_of_a_quality_complaint_without_a_reaction_says_it_owes_no_adr_report(users, xiehe, web):
    """Its minimum criteria ticked "identifiable patient" and "adverse reaction" it does not need and does not have,
    and it offered the ADR report form; it says why no clock runs instead."""
    case = services.confirm_flag(users["pv"], _quality_flag(users, xiehe), data={"quality": {"defect": "无法出药"}})
    page = web("pv").get(reverse("safety:case", args=[case.pk])).content.decode()
    assert "CN-OTHER" not in page and "Other reactions: within 30 days" not in page
    assert re.findall(r'data-criterion="(\w+)"', page) == ["reporter", "product"]
    assert 'id="no-adr-report"' in page and 'id="report-pdf"' not in page

    services.add_follow_up(users["pv"], case, {"patient_name": "王XX", "reactions": COMPLETE["reactions"]},
                           received_at=timezone.now(), summary="患者注射后出现皮疹")  # fmt: skip
    page = web("pv").get(reverse("safety:case", args=[case.pk])).content.decode()
    assert re.findall(r'data-criterion="(\w+)"', page) == ["patient", "reporter", "product", "reaction"]
    assert 'id="no-adr-report"' not in page and 'id="report-pdf"' in page


# --- 2. China's 15 days: serious reactions, new or not -----------------------------------------------------------


@pytest.mark.parametrize(("expectedness", "reactions", "rule", "days"), [
    ("unexpected", SERIOUS, "CN-NEW-SERIOUS", 15),  # new and serious
    ("expected", SERIOUS, "CN-NEW-SERIOUS", 15),  # serious, not new: 15 days all the same
    ("unexpected", COMPLETE["reactions"], "CN-OTHER", 30),  # new, not serious: 30 days (GVP 2021 art. 135)
    ("expected", COMPLETE["reactions"], "CN-OTHER", 30),  # neither
])  # fmt: skip
def test_a_case_from_china_is_due_in_15_days_when_serious_new_or_not_else_in_30(make_case, expectedness, reactions,
                                                                               rule, days):  # fmt: skip
    """药物警戒质量管理规范 (2021) art. 135: 境内严重不良反应 15 日内, 其他个例不良反应 30 日内. The shipped rule gave a new
    (unexpected) non-serious reaction 15 days, reading 药品不良反应报告和监测管理办法 art. 20's "新的、严重的" as either."""
    case = make_case(country="CN", received_at=DAY0, expectedness=expectedness, reactions=reactions)
    assert _report_clocks(case) == [(rule, _end_of_day(days))]


def test_the_rules_page_says_the_15_days_are_for_serious_reactions(web):
    page = web("pv").get(reverse("safety:rules")).content.decode()
    assert "Serious reactions in China: within 15 days" in page
    assert "Occurred in the jurisdiction: serious (new or expected)" in page
    assert "New or serious reactions" not in page
    rule = ReportingRule.objects.get(code="CN-NEW-SERIOUS")
    assert (rule.condition, rule.within, rule.legal_basis) == ("serious_domestic", 15, "《药物警戒质量管理规范》（2021）第一百三十五条")


def _migrate_0017():
    from django.apps import apps
    from django.db import connection

    from pharmacrm.safety import apps as safety_apps

    migration = importlib.import_module("pharmacrm.safety.migrations.0017_serious_domestic_rule")
    migration.limit_to_serious(apps, types.SimpleNamespace(connection=connection))
    safety_apps.revalidate_after_migrate(None, using=connection.alias)


SHIPPED_BEFORE = {"condition": "new_serious_domestic", "name": "新的、严重的不良反应：15 日内",
                  "legal_basis": "《药品不良反应报告和监测管理办法》第二十条"}  # fmt: skip


def test_a_database_installed_before_gets_the_rule_for_serious_reactions_audited(make_case):
    """safety 0017: the shipped CN-NEW-SERIOUS, left as shipped, is limited to serious cases with its new name and
    legal basis, audited by the migration; a new non-serious case opened after it is due in 30 days, while a
    clock planned before keeps its deadline (as after any change of a rule)."""
    ReportingRule.objects.filter(code="CN-NEW-SERIOUS").update(**SHIPPED_BEFORE, within=10)  # a deadline of its own
    before = make_case(country="CN", received_at=DAY0, expectedness="unexpected")
    assert _report_clocks(before) == [("CN-NEW-SERIOUS", _end_of_day(10))]

    _migrate_0017()

    rule = ReportingRule.objects.get(code="CN-NEW-SERIOUS")
    assert (rule.condition, rule.name, rule.within) == ("serious_domestic", "境内严重不良反应：15 日内", 10)
    assert rule.legal_basis == "《药物警戒质量管理规范》（2021）第一百三十五条"
    entry = AuditEntry.objects.filter(object_type="safety.reportingrule", object_id=str(rule.pk)).latest("id")
    assert entry.actor_name == "migration safety 0017"
    assert entry.changes == {"condition": ["new_serious_domestic", "serious_domestic"],
                             "name": [SHIPPED_BEFORE["name"], "境内严重不良反应：15 日内"],
                             "legal_basis": [SHIPPED_BEFORE["legal_basis"], rule.legal_basis]}  # fmt: skip
    assert _report_clocks(before) == [("CN-NEW-SERIOUS", _end_of_day(10))]
    after = make_case(country="CN", received_at=DAY0, expectedness="unexpected")
    assert _report_clocks(after) == [("CN-OTHER", _end_of_day(30))]

    _migrate_0017()  # run again: nothing to change, nothing audited
    assert AuditEntry.objects.filter(object_type="safety.reportingrule", object_id=str(rule.pk)).latest("id") == entry


@pytest.mark.parametrize("edited", [
    {"condition": "new_or_serious"},  # the administrator's condition: their rule, as they made it
    {"condition": "new_serious_domestic", "name": "新的或严重的不良反应（本公司 SOP）：15 日内"},  # their own name
])  # fmt: skip
def test_an_administrators_rule_keeps_what_they_made_of_it(edited):
    ReportingRule.objects.filter(code="CN-NEW-SERIOUS").update(**{**SHIPPED_BEFORE, **edited})
    _migrate_0017()
    rule = ReportingRule.objects.get(code="CN-NEW-SERIOUS")
    expected = {**SHIPPED_BEFORE, **edited}
    if edited["condition"] == "new_serious_domestic":  # still the shipped condition: limited, their name stays
        expected.update(condition="serious_domestic", legal_basis="《药物警戒质量管理规范》（2021）第一百三十五条")
    assert {f: getattr(rule, f) for f in ("condition", "name", "legal_basis")} == expected


# --- 3. what the PV officer reading Chinese noticed ------------------------------------------------------------


def test_a_follow_ups_changed_fields_are_named_in_the_readers_language(users, make_case, client_for):
    """The versions table said "reactions" under 更新 for a follow-up that found the patient hospitalised."""
    case = make_case()
    services.add_follow_up(users["pv"], case, {"reactions": SERIOUS, "patient_weight_kg": "62"},
                           received_at=timezone.now() - dt.timedelta(hours=1), summary="医院回电：患者住院")  # fmt: skip
    page = client_for("pv").get(reverse("safety:case", args=[case.pk])).content.decode()
    row = re.search(r'<tr data-sequence="1">.*?</tr>', page, re.S).group(0)
    assert "不良反应" in row and "体重" in row
    assert "reactions" not in row and "patient_weight_kg" not in row


def test_an_export_refused_names_the_row_to_correct_not_the_fields_path(client_for, users, make_case):
    case = make_case(reactions=[{"verbatim": "皮疹", "outcome": "1"}])  # no MedDRA code
    response = client_for("pv").post(reverse("safety:case-export", args=[case.pk]),
                                     {"purpose": "regulatory", "otp_code": sign_code(users["pv"])})  # fmt: skip
    assert response.status_code == 400
    problems = re.search(r'id="export-problems".*?</div>', response.content.decode(), re.S).group(0)
    link = reverse("safety:case-edit", args=[case.pk]) + "#id_reactions-0-meddra_llt"
    assert f'<a href="{link}">不良反应 1</a>' in problems
    assert ">reactions[0].meddra_llt<" not in problems


def test_a_drug_given_at_unknown_dates_shows_a_dash_not_question_marks(make_case, client_for):
    """? – ? in the drugs table of a case whose reporter gave no dates; one known end keeps its ? for the other."""
    undated = make_case(drugs=[{**COMPLETE["drugs"][0], "start_date": "", "stop_date": ""}])
    page = client_for("pv").get(reverse("safety:case", args=[undated.pk])).content.decode()
    assert re.findall(r'<td class="nowrap drug-period">(.*?)</td>', page) == ["—"]
    started = make_case(drugs=[{**COMPLETE["drugs"][0], "start_date": "2026-03-01", "stop_date": ""}])
    page = client_for("pv").get(reverse("safety:case", args=[started.pk])).content.decode()
    assert re.findall(r'<td class="nowrap drug-period">(.*?)</td>', page) == ["2026-03-01 – ?"]


@pytest.mark.parametrize("lang, badge, left", [("zh-hans", "已超时", "3 天 2 小时"), ("en", "Overdue", "by 3 d 2 h")])
def test_a_breached_clock_says_by_how_much_once_not_overdue_twice(make_case, client_for, lang, badge, left):
    """The case page read "已超时 已逾期 291 天" (breached, overdue by 291 days): the badge says it is late, the time
    beside it says by how much."""
    case = make_case()
    clock = SafetyClock.objects.filter(case=case, kind="report").order_by("due_at").first()
    SafetyClock.objects.filter(pk=clock.pk).update(due_at=timezone.now() - dt.timedelta(days=3, hours=2, minutes=1))
    page = client_for("pv").get(reverse("safety:case", args=[case.pk]), HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    said = re.search(r'<span class="sla sla-breached">(.*?)</span> <span class="sla-left small">(.*?)</span>', page)
    assert said is not None and said.groups() == (badge, left)
