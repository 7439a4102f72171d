"""Complaint analysis (投诉分析): the Pareto tables, the impact matrix, the products and provinces, the handling and
the improvement actions checked against a small hand-computed November; the period boundaries in Beijing time; a
non-complaint category and a merged duplicate not counted; who sees what (page, export, API); bad parameters.

November 2026 (Beijing time; all urgent: 24×7 clocks, resolution due in 24 h). Team 一组 (led by lead1) unless said:

    C1 order_delivery   11-03 10:00 P1 协和  resolved +10 h  logistics      customer moderate, company minor
    C2 order_delivery   11-04 10:00 P1 协和  resolved +20 h  logistics      minor / minor
    C3 order_delivery   11-05 10:00 P2 瑞金  resolved +30 h  logistics      severe / moderate   (team 二组; SLA missed)
    C4 service_attitude 11-06 10:00    协和  resolved +5 h, reopened +6 h, resolved +8 h  staff  minor / none
    C5 service_process  11-07 10:00    协和  resolved +2 h  staff           none / none
    C6 service_attitude 11-30 23:30    协和  open (no cause, no impact) — November's in Beijing (15:30 UTC)
    D1 service_process  11-08 10:00    协和  merged into C5 (closed without an assessment): not counted
    N1 drug_info        11-10 10:00    协和  resolved — not a complaint: not counted
    C7 service_process  12-01 00:10 — December's;   C8 order_delivery 10-31 23:50 — October's, severe for the company
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from pharmacrm.core.models import AuditEntry, Team
from pharmacrm.core.roles import Role
from pharmacrm.servicedesk import complaints, knowledge, linking, performance, revisit, services
from pharmacrm.servicedesk.choices import Status
from pharmacrm.servicedesk.models import EscalationRule, ImprovementAction, Survey, TicketCategory

BJ = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=BJ)
PAGE = reverse("servicedesk:complaints")
EXPORT = reverse("servicedesk:complaints-export")
API = "/api/v1/service/complaints/"
H = dt.timedelta(hours=1)


def bj(month, day, hour, minute=0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=BJ)


def product(user, name, number):
    return knowledge.create_product(user, {
        "brand_name": name, "generic_name": "盐酸氨氯地平片", "approval_number": number, "dosage_form": "片剂",
        "strength": "5mg×28片",
    })  # fmt: skip


@pytest.fixture
def desk(make_user):
    lead = make_user("lead1", Role.AGENT)
    one = Team.objects.create(name="一组", lead=lead)
    two = Team.objects.create(name="二组")
    lead.teams.add(one)
    a1 = make_user("a1", Role.AGENT, teams=[one])
    return {"one": one, "two": two, "lead": lead, "a1": a1}


def ticket(users, institution, *, received, category, team, assignee, **extra):
    data = {"subject": "投诉", "channel": "phone", "category": category, "institution": institution,
            "received_at": received, "team": team, "assignee": assignee, "priority": "urgent", **extra}  # fmt: skip
    return services.create_ticket(users["manager"], data)


def resolve(users, t, hours, cause, customer="", company=""):
    impact = {"customer_impact": customer, "company_impact": company} if customer else {}
    services.transition(users["manager"], t, Status.RESOLVED, at=t.received_at + hours * H,
                        resolution_summary="已处理", root_cause=cause, **impact)  # fmt: skip


@pytest.fixture
def november(desk, users, xiehe, ruijin):
    one, two, a1 = desk["one"], desk["two"], desk["a1"]
    p1, p2 = product(users["admin"], "安心宁", "国药准字H20249871"), product(users["admin"], "平安宁", "国药准字H20249872")
    out = {"P1": p1, "P2": p2}

    def make(name, received, category, inst=xiehe, team=one, **extra):
        out[name] = ticket(users, inst, received=received, category=category, team=team, assignee=a1, **extra)
        services.record_response(users["manager"], out[name], at=received + H / 2)
        return out[name]

    resolve(users, make("C1", bj(11, 3, 10), "order_delivery", product=p1), 10, "logistics", "moderate", "minor")
    resolve(users, make("C2", bj(11, 4, 10), "order_delivery", product=p1), 20, "logistics", "minor", "minor")
    resolve(users, make("C3", bj(11, 5, 10), "order_delivery", ruijin, two, product=p2), 30, "logistics", "severe",
            "moderate")  # fmt: skip
    c4 = make("C4", bj(11, 6, 10), "service_attitude")
    resolve(users, c4, 5, "staff", "minor", "none")
    services.transition(users["manager"], c4, Status.IN_PROGRESS, at=c4.received_at + 6 * H)
    resolve(users, c4, 8, "staff", "minor", "none")
    c5 = make("C5", bj(11, 7, 10), "service_process")
    d1 = make("D1", bj(11, 8, 10), "service_process")
    linking.merge(users["manager"], d1, c5, reason="同一投诉")
    resolve(users, c5, 2, "staff", "none", "none")
    make("C6", bj(11, 30, 23, 30), "service_attitude")
    resolve(users, make("N1", bj(11, 10, 10), "drug_info"), 1, "usage")
    make("C7", bj(12, 1, 0, 10), "service_process")
    resolve(users, make("C8", bj(10, 31, 23, 50), "order_delivery"), 1, "logistics", "none", "severe")
    # revisits: C1 scored 4, C4 scored 2 (CSAT of complaints 3.00); N1's 5 is not a complaint's
    for name, score in (("C1", 4), ("C4", 2), ("N1", 5)):
        Survey.objects.create(ticket=out[name], channel="phone", answered_at=out[name].received_at + 50 * H,
                              score=score)  # fmt: skip
    EscalationRule.objects.update(active=False)
    services.sweep(NOW)
    return out


@pytest.fixture
def actions(users, november):
    """C1: an action now overdue; C2: one done; N1 (not a complaint): one open, not counted."""
    import datetime

    from django.utils import timezone

    due = timezone.localdate() + datetime.timedelta(days=7)
    manager = users["manager"]
    late = revisit.create_action(manager, {"ticket": november["C1"], "title": "物流交接", "owner": manager,
                                           "due_date": due})  # fmt: skip
    ImprovementAction.objects.filter(pk=late.pk).update(due_date=timezone.localdate() - datetime.timedelta(days=1))
    done = revisit.create_action(manager, {"ticket": november["C2"], "title": "冷链记录", "owner": manager,
                                           "due_date": due})  # fmt: skip
    revisit.transition_action(manager, done, "done", outcome="已改进")
    revisit.create_action(manager, {"ticket": november["N1"], "title": "说明书", "owner": manager, "due_date": due})


def report(user, period="2026-11", **kw):
    return complaints.report(user, complaints.Query(period=performance.parse_period(period), **kw), now=NOW)


def rows(shares, key=lambda r: r.key):
    return [(key(r), r.count, r.share, r.cumulative) for r in shares]


D = Decimal


# --- the figures ---------------------------------------------------------------------------------------


def test_the_categories_pareto_hand_computed(users, november):
    rep = report(users["manager"])
    assert rep.total == 6  # C1–C6: not D1 (merged), N1 (not a complaint), C7 (December), C8 (October)
    codes = dict(TicketCategory.objects.values_list("id", "code"))
    # 3/6 = 50.0; 2/6 = 33.3, cumulative 5/6 = 83.3; 1/6 = 16.7, cumulative 100.0
    assert rows(rep.categories, lambda r: codes[r.key]) == [
        ("order_delivery", 3, D("50.0"), D("50.0")), ("service_attitude", 2, D("33.3"), D("83.3")),
        ("service_process", 1, D("16.7"), D("100.0")),
    ]  # fmt: skip


def test_the_root_causes_pareto_is_of_the_complaints_with_a_cause(users, november):
    rep = report(users["manager"])
    # D1's "other" (given by the merge) is not there: a merged duplicate is not counted
    assert rows(rep.root_causes) == [("logistics", 3, D("60.0"), D("60.0")), ("staff", 2, D("40.0"), D("100.0"))]
    assert rep.undetermined == 1  # C6, still open


def test_the_impact_matrix(users, november):
    rep = report(users["manager"])
    assert rep.impact == {
        ("moderate", "minor"): 1, ("minor", "minor"): 1, ("severe", "moderate"): 1, ("minor", "none"): 1,
        ("none", "none"): 1, ("", ""): 1,
    }  # fmt: skip
    assert (rep.not_assessed, rep.severe, rep.previous_severe) == (1, 1, 1)  # October: C8, severe for the company


def test_products_and_provinces(users, november):
    rep = report(users["manager"])
    p1, p2 = november["P1"], november["P2"]
    assert rows(rep.products) == [(p1.pk, 2, D("33.3"), D("33.3")), (p2.pk, 1, D("16.7"), D("50.0"))]
    assert rep.no_product == 3
    assert rows(rep.provinces) == [("110000", 5, D("83.3"), D("83.3")), ("310000", 1, D("16.7"), D("100.0"))]


def test_the_handling_uses_the_performance_pages_figures(users, november):
    rep = report(users["manager"])
    h = rep.handling
    assert (h.created, h.resolved, h.resolution_rate, h.reopened) == (6, 5, D("83.3"), 1)
    # resolution waits 2 8 10 20 30 and C6's 10 h so far at NOW: median (10 + 10) / 2
    assert h.res_median == 10.0
    assert (h.res_met, h.res_missed, h.res_sla) == (4, 1, D("80.0"))  # C3 took 30 h of its 24
    assert (h.csat, h.csat_count) == (D("3.00"), 2)
    assert (rep.previous.created, rep.previous.resolved) == (1, 1)
    # the performance page counts the same complaints and the same handled ones
    perf = performance.report(users["manager"], performance.Query(period=performance.parse_period("2026-11")),
                              now=NOW).totals  # fmt: skip
    assert (perf.complaints, perf.complaints_handled) == (h.created, h.resolved)


def test_the_improvement_actions_opened_from_the_complaints(users, november, actions):
    a = report(users["manager"]).actions
    assert (a.total, a.open, a.overdue, a.done, a.cancelled) == (2, 1, 1, 1, 0)


def test_period_boundaries_are_beijing_days(users, november):
    assert report(users["manager"], "2026-12").total == 1  # C7 at 00:10 on 1 December
    assert report(users["manager"], "2026-10").total == 1  # C8 at 23:50 on 31 October
    assert report(users["manager"], "2026-Q4").total == 8
    trend = report(users["manager"]).trend
    assert len(trend) == 12 and trend[-1]["period"] == "2026-11" and trend[0]["period"] == "2025-12"
    assert trend[-1] == {"period": "2026-11", "complaints": 6, "handled": 5, "handling_rate": 83.3, "severe": 1}
    assert trend[-2]["complaints"] == 1 and trend[-2]["severe"] == 1


def test_filters(users, desk, november):
    m = users["manager"]
    assert report(m, product=november["P1"]).total == 2
    assert report(m, province="310000").total == 1
    assert report(m, team=desk["two"]).total == 1
    assert report(m, category=TicketCategory.objects.get(code="service_attitude")).total == 2
    assert report(m, klass="none").total == 6  # no evaluation run: no class


# --- who sees what -----------------------------------------------------------------------------------------


def page_client(user) -> Client:
    from tests.conftest import otp_verify

    c = Client(HTTP_ACCEPT_LANGUAGE="en")
    c.force_login(user)
    otp_verify(c, user)
    return c


def api_client(user, lang="en"):
    from rest_framework.test import APIClient

    from tests.api.conftest import token_for

    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}", HTTP_ACCEPT_LANGUAGE=lang)
    return c


def export_rows(content: bytes) -> list[list]:
    from openpyxl import load_workbook

    return [list(r) for r in load_workbook(io.BytesIO(content)).active.iter_rows(values_only=True)]


@pytest.mark.parametrize("role", ["manager", "admin", "analyst", "auditor", "pv"])
def test_managers_admins_analysts_auditors_and_qa_see_every_team(users, november, role):
    user = users[role]
    page = page_client(user).get(PAGE, {"period": "2026-11"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Complaint analysis" in html and 'data-row="Complaints"' in html
    assert 'href="/service/complaints/"' in html  # in the navigation
    export = page_client(user).get(EXPORT, {"period": "2026-11"})
    assert export.status_code == 200
    assert export_rows(export.content)[4][:3] == ["Complaints", 6, 1]
    api = api_client(user).get(API, {"period": "2026-11"})
    assert api.status_code == 200, api.content
    assert (api.json()["scope"], api.json()["handling"]["complaints"]) == ("all", 6)


@pytest.mark.parametrize("role", ["agent", "expert", "support", "aftersales", "kam", "rep"])
def test_those_who_lead_no_team_and_lack_the_capability_are_refused(users, november, role):
    user = users[role]
    assert page_client(user).get(PAGE).status_code == 403
    assert page_client(user).get(EXPORT).status_code == 403
    assert api_client(user).get(API).status_code == 403
    assert 'href="/service/complaints/"' not in page_client(user).get(reverse("servicedesk:queue")).content.decode()


def test_a_team_lead_sees_the_complaints_of_the_teams_they_lead(users, desk, november):
    lead = desk["lead"]
    html = page_client(lead).get(PAGE, {"period": "2026-11"}).content.decode()
    assert "The complaints of the teams you lead." in html
    assert 'href="/service/complaints/"' in page_client(lead).get(reverse("servicedesk:queue")).content.decode()
    data = api_client(lead).get(API, {"period": "2026-11"}).json()
    assert (data["scope"], data["handling"]["complaints"]) == ("teams", 5)  # not C3 (二组)
    assert export_rows(page_client(lead).get(EXPORT, {"period": "2026-11"}).content)[4][:2] == ["Complaints", 5]
    assert api_client(lead).get(API, {"period": "2026-11", "team": desk["two"].pk}).status_code == 403
    assert api_client(lead).get(API, {"period": "2026-11", "class": "A"}).status_code == 403  # not an evaluator


def test_the_export_is_audited(users, november):
    response = page_client(users["manager"]).get(EXPORT, {"period": "2026-11"})
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    assert "2026-11" in response["Content-Disposition"]
    lines = export_rows(response.content)
    assert lines[0][:2] == ["Complaint analysis", "2026-11"]
    assert ["By root cause", "Complaints", "Share (%)", "Cumulative share (%)"] in [r[:4] for r in lines]
    entry = AuditEntry.objects.filter(action="export").latest("seq")
    assert (entry.actor, entry.extra["period"], entry.extra["complaints"]) == (users["manager"], "2026-11", 6)


# --- the API ---------------------------------------------------------------------------------------------


def test_the_api_answers_the_analysis(users, november):
    data = api_client(users["manager"]).get(API, {"period": "2026-11"}).json()
    assert data["start"].startswith("2026-11-01T00:00:00+08:00") and data["previous_period"] == "2026-10"
    assert [(r["key"], r["count"], r["share"], r["cumulative_share"]) for r in data["categories"]] == [
        ("order_delivery", 3, 50.0, 50.0), ("service_attitude", 2, 33.3, 83.3), ("service_process", 1, 16.7, 100.0),
    ]  # fmt: skip
    assert [(r["key"], r["label"]) for r in data["root_causes"]] == [("logistics", "Order, delivery or logistics"),
                                                                      ("staff", "Staff conduct")]  # fmt: skip
    assert {"customer_impact": "severe", "company_impact": "moderate", "count": 1} in data["impact"]
    assert (data["not_assessed"], data["no_root_cause"], data["no_product"]) == (1, 1, 3)
    assert data["handling"]["handled"] == 5 and data["previous_handling"]["severe"] == 1
    assert len(data["trend"]) == 12


@pytest.mark.parametrize(("params", "field"), [
    ({"period": "2026-13"}, "period"), ({"period": "２０２６"}, "period"), ({"team": "x"}, "team"),
    ({"product": "999999"}, "product"), ({"category": "drug_info"}, "category"), ({"province": "110100"}, "province"),
    ({"class": "E"}, "class"),
])  # fmt: skip
def test_the_api_refuses_bad_parameters_by_name(users, params, field):
    response = api_client(users["manager"]).get(API, params)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_a_bad_period_is_explained_in_the_readers_language(users):
    response = api_client(users["manager"], lang="zh-hans").get(API, {"period": "2026-13"})
    assert response.status_code == 400
    assert response.json() == {"period": ["请填写月份（2026-11）、季度（2026-Q4）或年份（2026）。"]}
    page = page_client(users["manager"]).get(PAGE, {"period": "2026-13"})
    assert page.status_code == 400 and 'id="field-period"' in page.content.decode()


def test_the_schema_documents_the_endpoint(users):
    schema = api_client(users["manager"]).get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert "/api/v1/service/complaints/" in schema and "v1_service_complaints" in schema


# --- the page ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lang", "title", "cause"), [
    ("zh-hans", "投诉分析", "订单、配送或物流"), ("zh-hant", "投訴分析", "訂單、配送或物流"),
    ("en", "Complaint analysis", "Order, delivery or logistics"),
])  # fmt: skip
def test_the_page_renders_in_three_languages(users, november, lang, title, cause):
    html = page_client(users["manager"]).get(PAGE, {"period": "2026-11"}, HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    assert title in html and cause in html
    assert 'id="performance-data"' in html and "vendor/echarts/echarts.min.js" in html


def test_the_query_count_does_not_grow_with_the_complaints(users, desk, xiehe, november):
    c = page_client(users["manager"])
    c.get(PAGE, {"period": "2026-11"})  # warm: sessions, caches
    with CaptureQueriesContext(connection) as few:
        assert c.get(PAGE, {"period": "2026-11"}).status_code == 200
    for n in range(5):
        t = ticket(users, xiehe, received=bj(11, 20, 9 + n), category="relationship", team=desk["two"],
                   assignee=desk["a1"])  # fmt: skip
        resolve(users, t, 1, "other", "minor", "severe")
    with CaptureQueriesContext(connection) as more:
        assert c.get(PAGE, {"period": "2026-11"}).status_code == 200
    assert len(more) == len(few)
    # the session and user, the sections, the handling and the previous period's, the trend, the labels, the filters
    assert len(few) == 27, [q["sql"][:150] for q in few.captured_queries]


def test_the_products_are_the_ten_most_complained_about(users, desk, xiehe):
    made = [product(users["admin"], f"产品{n:02d}", f"国药准字H2025{n:04d}") for n in range(12)]
    for n, p in enumerate(made):
        for _ in range(2 if n == 11 else 1):
            ticket(users, xiehe, received=bj(11, 2 + n, 10), category="order_delivery", team=desk["one"],
                   assignee=desk["a1"], product=p)  # fmt: skip
    rep = report(users["manager"])
    assert rep.total == 13 and len(rep.products) == 10
    assert [r.label.split("（")[0] for r in rep.products] == ["产品11", *(f"产品{n:02d}" for n in range(9))]
    assert (rep.products[0].share, rep.products[-1].cumulative) == (D("15.4"), D("84.6"))  # 2/13; 11/13
