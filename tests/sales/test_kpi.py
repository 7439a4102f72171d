"""KPI appraisal (销售团队绩效考核, seed 000 §2.3): every indicator of a small hand-computed third quarter of 2026, the
points, the weights shared when an indicator has no data, the contributions adding up to the score, the grades; a
scheme's weights not adding up to 100 refused; finalised results never recomputed; the job once per period; who sees
which result (pages, API); the page in each language.

The world (all in Beijing, Q3 2026 = July–September):
    rep  (North team) owns 甲 and 乙:
        targets ¥25,000 for each of July, August, September (the quarter: ¥75,000)
        甲 bought ¥30,000 in July and ¥20,000 in August 2026, ¥50,000 in July 2025; 乙 first bought ¥10,000 in August
        → actual ¥60,000: attainment 80.0 %, growth 20.0 %, one new customer
        surveys answered in Q3 about 甲: satisfaction 5, 4, 4 (4.33); recommend 10, 9, 3 (NPS 33)
        stage tasks due in Q3: two done on time, one done late, one open (50.0 %); one skipped (not counted)
        tickets of 甲 received in Q3: three resolved within SLA, one missed (75.0 %)
    lead (North team's lead, a rep) owns 丙: quarter target ¥10,000, bought ¥12,000 in September (its first purchase)
    kam  owns nothing
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.customers import services as customers
from pharmacrm.engagement.models import StageAction, StageTask
from pharmacrm.sales import kpi, targets
from pharmacrm.sales.models import Appraisal, AppraisalScheme, MonthlyRollup
from pharmacrm.servicedesk import services as desk
from pharmacrm.servicedesk.choices import ClockKind
from pharmacrm.servicedesk.models import SlaClock, Survey
from tests.conftest import new_user

pytestmark = pytest.mark.django_db

BJ = ZoneInfo("Asia/Shanghai")
Q3 = kpi.Period("quarter", 2026, 3)
AFTER = dt.datetime(2026, 10, 8, 6, 10, tzinfo=BJ)  # the first working day of October, the job's hour
ALL = [
    {"code": "attainment", "weight": 30, "target": "100", "floor": "60", "cap": "120"},
    {"code": "growth", "weight": 10, "target": "10", "floor": "-20", "cap": "120"},
    {"code": "csat", "weight": 10, "target": "4.5", "floor": "3", "cap": "110"},
    {"code": "nps", "weight": 10, "target": "50", "floor": "0", "cap": "120"},
    {"code": "follow_up", "weight": 15, "target": "90", "floor": "50", "cap": "100"},
    {"code": "teamwork", "weight": 15, "target": "90", "floor": "60", "cap": "100"},
    {"code": "new_customers", "weight": 10, "target": "2", "floor": "0", "cap": "150"},
]


def scheme_data(**over) -> dict:
    data = {"name": "季度考核", "period_kind": "quarter", "roles": ["rep", "kam"], "indicators": ALL,
            "excellent": "90", "good": "75", "passing": "60", "bonus": {"excellent": "1.2", "improve": "0"}}  # fmt: skip
    data.update(over)
    return data


@pytest.fixture
def world(users, team_north, beijing, admin_user):
    lead = new_user("lead", Role.REP, teams=(team_north,))
    team_north.lead = lead
    team_north.save()
    rep, kam = users["rep"], users["kam"]

    def hospital(name, owner):
        return customers.create_institution(admin_user, {"name": name, "kind": "hospital", "grade": "2A",
                                                         "region": beijing, "owner": owner, "team": team_north})  # fmt: skip

    a, b, c = hospital("北京甲医院", rep), hospital("北京乙医院", rep), hospital("北京丙医院", lead)
    MonthlyRollup.objects.bulk_create([
        MonthlyRollup(institution=a, month=dt.date(2025, 7, 1), amount_fen=5_000_000),
        MonthlyRollup(institution=a, month=dt.date(2026, 7, 1), amount_fen=3_000_000),
        MonthlyRollup(institution=a, month=dt.date(2026, 8, 1), amount_fen=2_000_000),
        MonthlyRollup(institution=a, month=dt.date(2026, 10, 1), amount_fen=9_900_000),  # Q4: not counted
        MonthlyRollup(institution=b, month=dt.date(2026, 8, 1), amount_fen=1_000_000),
        MonthlyRollup(institution=c, month=dt.date(2026, 9, 1), amount_fen=1_200_000),
    ])  # fmt: skip
    changes = [targets.Change(rep, kpi.Period("month", 2026, m), 2_500_000) for m in (7, 8, 9)]
    changes.append(targets.Change(lead, Q3, 1_000_000))
    targets.apply(users["manager"], changes)
    # surveys answered in Q3 about 甲 (one in October: not counted)
    tickets = []
    for n, (day, met) in enumerate([(7, True), (8, True), (9, True), (9, False)]):
        t = desk.create_ticket(users["manager"], {
            "subject": f"咨询{n}", "channel": "phone", "category": "drug_info", "institution": a,
            "received_at": dt.datetime(2026, day, 10, 10, tzinfo=BJ), "priority": "urgent"})  # fmt: skip
        at = t.received_at + dt.timedelta(hours=10 if met else 30)
        SlaClock.objects.filter(ticket=t, kind=ClockKind.RESOLUTION).update(
            fulfilled_at=at, breached_at=None if met else t.received_at + dt.timedelta(hours=24)
        )
        tickets.append(t)
    for t, score, recommend in zip(tickets, (5, 4, 4), (10, 9, 3), strict=False):
        Survey.objects.create(ticket=t, channel="phone", answered_at=t.received_at + dt.timedelta(days=2),
                              score=score, recommend=recommend)  # fmt: skip
    Survey.objects.create(ticket=tickets[3], channel="phone", answered_at=dt.datetime(2026, 10, 2, tzinfo=BJ), score=1,
                          recommend=0)  # fmt: skip
    action = StageAction.objects.create(stage="active", kind="call", due_days=5)
    for due, status, done in [(dt.date(2026, 7, 10), "done", dt.date(2026, 7, 9)),
                              (dt.date(2026, 8, 10), "done", dt.date(2026, 8, 10)),
                              (dt.date(2026, 8, 20), "done", dt.date(2026, 8, 25)),
                              (dt.date(2026, 9, 20), "open", None),
                              (dt.date(2026, 9, 21), "skipped", None),
                              (dt.date(2026, 10, 5), "open", None)]:  # fmt: skip
        StageTask.objects.create(institution=a, action=action, stage="active", owner=rep, due_on=due, status=status,
                                 done_on=done)  # fmt: skip
    scheme = kpi.save_scheme(users["manager"], scheme_data())
    return {"rep": rep, "lead": lead, "kam": kam, "north": team_north, "scheme": scheme, "a": a}


def comp(result, code) -> dict:
    return next(c for c in result.components if c["code"] == code)


def test_every_indicator_hand_computed_and_the_contributions_add_up(world):
    assert kpi.compute(world["scheme"], Q3, user=None, now=AFTER) == 3
    rep = Appraisal.objects.get(user=world["rep"])
    expected = {  # value, points, contribution (every indicator has data: the weights as the scheme's)
        "attainment": ("80.0", "50.0", "15.00"),  # (80 − 60) / (100 − 60)
        "growth": ("20.0", "120.0", "12.00"),  # (20 + 20) / 30 = 133.3, capped at 120
        "csat": ("4.33", "88.7", "8.87"),  # (4.33 − 3) / 1.5
        "nps": ("33", "66.0", "6.60"),  # (2 − 1) / 3 = 33; 33 / 50
        "follow_up": ("50.0", "0.0", "0.00"),  # 2 of 4 on time: at the floor
        "teamwork": ("75.0", "50.0", "7.50"),  # 3 of 4
        "new_customers": ("1", "50.0", "5.00"),  # 乙
    }
    got = {c["code"]: (c["value"], c["points"], c["contribution"]) for c in rep.components}
    assert got == expected
    assert rep.score == Decimal("54.97") == sum(Decimal(c["contribution"]) for c in rep.components)
    assert (rep.grade, rep.bonus_coefficient, rep.team) == ("improve", Decimal("0"), world["north"])
    with translation.override("en"):
        assert (
            kpi.explain("follow_up", comp(rep, "follow_up")["facts"])
            == "2 of 4 stage tasks done by their due day"
        )
        assert (
            kpi.explain("attainment", comp(rep, "attainment")["facts"])
            == "actual ¥60,000.00 of target ¥75,000.00"
        )

    # the lead: only attainment (120 % → 150, capped 120) and new customers (1 → 50) have data; their weights
    # 30 and 10 become 75 and 25
    lead = Appraisal.objects.get(user=world["lead"])
    counted = [
        (c["code"], c["weight"], c["points"], c["contribution"]) for c in lead.components if c["value"]
    ]
    assert counted == [("attainment", "75.00", "120.0", "90.00"), ("new_customers", "25.00", "50.0", "12.50")]
    assert comp(lead, "csat")["value"] is None and comp(lead, "csat")["contribution"] == "0.00"
    assert (lead.score, lead.grade, lead.bonus_coefficient) == (
        Decimal("102.50"),
        "excellent",
        Decimal("1.2"),
    )
    # the key-account manager: no data but the count of new customers, 0 → 0 points
    kam = Appraisal.objects.get(user=world["kam"])
    assert (kam.score, kam.grade) == (Decimal("0.00"), "improve")
    assert AuditEntry.objects.filter(object_type="sales.appraisal", extra__period="2026-Q3").count() == 1


def test_grade_boundaries_and_points():
    scheme = AppraisalScheme(excellent=Decimal(90), good=Decimal(75), passing=Decimal(60))
    grades = [kpi.grade_of(scheme, Decimal(s)) for s in ("90", "89.99", "75", "74.99", "60", "59.99")]
    assert grades == ["excellent", "good", "good", "pass", "pass", "improve"]
    assert kpi.grade_of(scheme, None) == ""
    p = kpi.points
    assert [p(Decimal(v), Decimal(100), Decimal(60), Decimal(120)) for v in (50, 60, 80, 100, 130)] == [
        Decimal("0.0"), Decimal("0.0"), Decimal("50.0"), Decimal("100.0"), Decimal("120.0")]  # fmt: skip


def test_a_scheme_is_validated_field_by_field(users):
    manager = users["manager"]
    weights = [dict(i, weight=i["weight"] + (5 if i["code"] == "growth" else 0)) for i in ALL]
    with pytest.raises(ValidationError) as e:
        kpi.save_scheme(manager, scheme_data(indicators=weights))
    assert e.value.message_dict == {"weights": ["权重合计为 105，必须等于 100。"]}
    bad = [dict(i, floor=i["target"]) if i["code"] == "csat" else i for i in ALL]
    with pytest.raises(ValidationError) as e:
        kpi.save_scheme(manager, scheme_data(indicators=bad, roles=["agent"], passing="80", name=""))
    assert set(e.value.message_dict) == {"csat_floor", "roles", "passing", "name"}
    assert not AppraisalScheme.objects.exists()
    with pytest.raises(kpi.PermissionDenied):
        kpi.save_scheme(users["rep"], scheme_data())
    scheme = kpi.save_scheme(manager, scheme_data())
    changed = kpi.save_scheme(manager, scheme_data(good="80"), scheme, version=1)
    assert (changed.version, changed.good) == (2, Decimal("80"))
    with pytest.raises(kpi.ConflictError):
        kpi.save_scheme(manager, scheme_data(good="70"), scheme, version=1)
    entry = AuditEntry.objects.filter(object_type="sales.appraisalscheme", action="update").get()
    assert entry.changes["good"] == ["75.0", "80"]


def test_a_scheme_typed_with_a_chinese_input_method_is_read_and_other_numbers_are_refused_by_field(users):
    full_width = [dict(i, target="４．５", floor="－２０" if i["code"] == "growth" else i["floor"])
                  if i["code"] in ("csat", "growth") else i for i in ALL]  # fmt: skip
    full_width = [dict(i, floor="3") if i["code"] == "csat" else i for i in full_width]
    scheme = kpi.save_scheme(users["manager"], scheme_data(indicators=full_width, excellent="９０", good="７５．５"))
    by_code = {i["code"]: i for i in scheme.indicators}
    assert (by_code["csat"]["target"], by_code["growth"]["floor"], scheme.good) == ("4.5", "-20", Decimal("75.5"))
    odd = [dict(i, target="1_00") if i["code"] == "attainment" else i for i in ALL]  # Decimal read 1_00 as 100
    with pytest.raises(ValidationError) as e:
        kpi.save_scheme(users["manager"], scheme_data(indicators=odd, name="另一方案", passing="٦٠"))
    assert {"attainment_target", "passing"} <= set(e.value.message_dict)


def test_a_scheme_typed_with_percentages_and_thousands_separators_is_saved_as_the_numbers_meant(users, client_for):
    """40% of a weight, １００％ of a rate's target, 封顶 120% of a cap, 1,000 of a count, 120% of a bonus coefficient:
    each was "not a number"."""
    typed = {"attainment": {"weight": "40%", "target": "１００％", "floor": "60 %", "cap": "120%"},
             "csat": {"weight": "１０", "target": "4.5", "floor": "３", "cap": "110"},
             "new_customers": {"weight": "50", "target": "1,000", "floor": "0", "cap": "1 50"}}  # fmt: skip
    form = {"name": "年度考核", "period_kind": "year", "roles": ["rep"], "excellent": "９０", "good": "75.5",
            "passing": "60", "active": "on", "bonus_excellent": "１２０％", "bonus_good": "1.05"}  # fmt: skip
    for code, values in typed.items():
        form.update({f"{code}_{w}": v for w, v in values.items()})
    response = client_for("manager").post("/sales/appraisal/schemes/new/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    scheme = AppraisalScheme.objects.get()
    assert scheme.indicators == [
        {"code": "attainment", "weight": 40, "target": "100", "floor": "60", "cap": "120"},
        {"code": "csat", "weight": 10, "target": "4.5", "floor": "3", "cap": "110"},
        {"code": "new_customers", "weight": 50, "target": "1000", "floor": "0", "cap": "150"},
    ]
    assert (scheme.excellent, scheme.good, scheme.bonus) == (Decimal(90), Decimal("75.5"),
                                                             {"excellent": "1.2", "good": "1.05"})  # fmt: skip


def test_a_scheme_number_that_cannot_be_read_is_refused_naming_the_field(users, client_for):
    odd = [dict(i, target="4.5%") if i["code"] == "csat" else dict(i, weight="30%%") if i["code"] == "attainment"
           else dict(i, floor="1e1") if i["code"] == "follow_up" else i for i in ALL]  # fmt: skip
    with translation.override("en"), pytest.raises(ValidationError) as e:
        kpi.save_scheme(users["manager"], scheme_data(indicators=odd, passing="六十", bonus={"good": "x%"}))
    assert e.value.message_dict == {
        "attainment_weight": ["Sales attainment Weight: enter a whole percentage, such as 30 or 30%."],
        "csat_target": ["Customer satisfaction (CSAT, 1–5) Target: enter a number, such as 1234.5 or 1,234.50."],
        "follow_up_floor": ["Stage tasks done on time Floor: enter a percentage, such as 30, 12.5 or 30%."],
        "passing": ["Pass from: enter a number, such as 1234.5 or 1,234.50."],
        "bonus_good": ["Bonus coefficient: Good: enter a number such as 1.2, or a percentage such as 120%."],
    }  # fmt: skip
    page = {"name": "月度考核", "period_kind": "month", "roles": ["rep"], "excellent": "90", "good": "75",
            "passing": "60", "active": "on", **{f"{i['code']}_{w}": i[w] for i in ALL for w in i if w != "code"}}
    page["growth_target"] = "10%%"
    refused = client_for("manager").post("/sales/appraisal/schemes/new/", page, HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 400
    assert ("Sales growth on the same period last year Target: enter a percentage, such as 30, 12.5 or 30%."
            in refused.content.decode())
    assert not AppraisalScheme.objects.exists()


def test_finalised_results_are_never_recomputed_and_the_job_runs_once_per_period(world, users):
    scheme = world["scheme"]
    # before the first working day of October (8 October: the National Day holidays until the 7th) nothing is due
    assert kpi.run_due(dt.datetime(2026, 10, 7, 23, 50, tzinfo=BJ)) == 0
    assert kpi.run_due(AFTER) == 3
    first = set(Appraisal.objects.values_list("pk", flat=True))
    assert kpi.run_due(AFTER + dt.timedelta(days=1)) == 0  # done for Q3
    assert set(Appraisal.objects.values_list("pk", flat=True)) == first
    # a manager recomputes on demand: the drafts are replaced
    kpi.compute(scheme, Q3, user=users["manager"], now=AFTER)
    rep = Appraisal.objects.get(user=world["rep"])
    rep = kpi.comment(users["manager"], rep, "回款需加强", rep.version)
    with pytest.raises(kpi.ConflictError):
        kpi.finalise(users["manager"], scheme, "2026-Q3", "stale")
    assert kpi.finalise(users["manager"], scheme, "2026-Q3", kpi.stamp(scheme, "2026-Q3")) == 3
    with pytest.raises(kpi.Finalised) as e:
        kpi.compute(scheme, Q3, user=users["manager"], now=AFTER)
    assert "2026-Q3 的考核结果已于" in e.value.messages[0] and "锁定，不再重新计算" in e.value.messages[0]
    with pytest.raises(kpi.Finalised):
        kpi.comment(users["manager"], Appraisal.objects.get(user=world["rep"]), "改", rep.version + 1)
    assert kpi.run_due(AFTER + dt.timedelta(days=30)) == 0
    with pytest.raises(ValidationError) as e:  # its results are quarters: the scheme stays quarterly
        kpi.save_scheme(users["manager"], scheme_data(period_kind="month"), scheme, version=scheme.version)
    assert list(e.value.message_dict) == ["period_kind"]
    assert Appraisal.objects.get(user=world["rep"]).comment == "回款需加强"
    with pytest.raises(ValidationError) as e:
        kpi.compute(scheme, kpi.Period("month", 2026, 9), user=users["manager"], now=AFTER)
    assert list(e.value.message_dict) == ["period"]


# --- pages and API: who sees what ------------------------------------------------------------------------

SEE_ALL = {"admin", "manager", "auditor"}
OWN = {"rep", "kam"}
NOTHING = {"agent", "expert", "support", "aftersales", "pv", "analyst"}


def test_who_sees_which_result_on_the_page_and_in_the_api(world, users, client_for, api_for):
    kpi.compute(world["scheme"], Q3, user=None, now=AFTER)
    page = "/sales/appraisal/?period=2026-Q3"
    rep_result = Appraisal.objects.get(user=world["rep"])
    lead_result = Appraisal.objects.get(user=world["lead"])
    users["lead"] = world["lead"]
    for role in sorted(SEE_ALL | OWN | NOTHING | {"lead"}):
        html = client_for(role).get(page, HTTP_ACCEPT_LANGUAGE="en")
        api = api_for(role).get("/api/v1/sales/appraisals/?period=2026-Q3")
        detail = client_for(role).get(f"/sales/appraisal/{lead_result.pk}/")
        if role in NOTHING:
            assert (html.status_code, api.status_code, detail.status_code) == (403, 403, 403), role
            continue
        assert html.status_code == 200 and api.status_code == 200, role
        people = {r["person_name"] for r in api.json()["results"]}
        expected = {"rep": {"rep"}, "kam": {"kam"}, "lead": {"lead", "rep"}}.get(role, {"rep", "lead", "kam"})
        assert people == expected, role
        assert ('data-user="lead"' in html.content.decode()) == ("lead" in expected), role
        assert detail.status_code == (200 if "lead" in expected else 404), role
    # the API's components add up to the score
    row = next(
        r
        for r in api_for("manager")
        .get(f"/api/v1/sales/appraisals/?person={world['rep'].pk}")
        .json()["results"]
    )
    assert row["score"] == "54.97" and row["grade"] == "improve"
    assert sum(Decimal(c["contribution"]) for c in row["components"]) == Decimal(row["score"])
    assert {c["name"] for c in row["components"]} == {i["code"] for i in ALL}
    # a rep cannot read a colleague's result, even by its id
    assert api_for("rep").get(f"/api/v1/sales/appraisals/{lead_result.pk}/").status_code == 404
    assert api_for("rep").get(f"/api/v1/sales/appraisals/{rep_result.pk}/").status_code == 200
    # the schemes: those who see every result
    assert (
        api_for("auditor").get("/api/v1/sales/appraisal-schemes/").json()["results"][0]["name"] == "季度考核"
    )
    assert api_for("rep").get("/api/v1/sales/appraisal-schemes/").status_code == 403
    # the navigation links the page for those who may see a result
    assert 'href="/sales/appraisal/"' in client_for("rep").get("/").content.decode()
    assert 'href="/sales/appraisal/"' not in client_for("agent").get("/").content.decode()
    # the team's ranking: the average of its members (rep 54.97, lead 102.50 → 78.74, good)
    html = client_for("manager").get(page, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "78.74" in html and "Good" in html


@pytest.mark.parametrize("lang, words", [("zh-hans", ("绩效考核", "销售达成", "评语")), ("en", ("KPI appraisal", "Sales attainment")),
                                         ("zh-hant", ("績效考核", "銷售達成"))])  # fmt: skip
def test_the_person_s_result_explained_in_each_language(lang, words, world, client_for):
    kpi.compute(world["scheme"], Q3, user=None, now=AFTER)
    result = Appraisal.objects.get(user=world["rep"])
    html = client_for("rep").get(f"/sales/appraisal/{result.pk}/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    assert all(w in html for w in words), lang
    assert "54.97" in html and 'href="/sales/targets/?period=2026-Q3"' in html


def test_managers_compute_comment_finalise_and_export_on_the_pages(world, client_for):
    from io import BytesIO

    from openpyxl import load_workbook

    manager = client_for("manager")
    scheme = world["scheme"]
    assert (
        client_for("rep")
        .post("/sales/appraisal/compute/", {"scheme": scheme.pk, "period": "2026-Q3"})
        .status_code
        == 403
    )
    manager.post("/sales/appraisal/compute/", {"scheme": scheme.pk, "period": "2026-Q3"})
    result = Appraisal.objects.get(user=world["rep"])
    stale = manager.post(f"/sales/appraisal/{result.pk}/", {"comment": "好", "version": result.version + 5})
    assert stale.status_code == 409
    manager.post(f"/sales/appraisal/{result.pk}/", {"comment": "回款需加强", "version": result.version})
    stamp = kpi.stamp(scheme, "2026-Q3")
    manager.post("/sales/appraisal/finalise/", {"scheme": scheme.pk, "period": "2026-Q3", "stamp": stamp})
    assert set(Appraisal.objects.values_list("status", flat=True)) == {"final"}
    again = manager.post("/sales/appraisal/compute/", {"scheme": scheme.pk, "period": "2026-Q3"}, follow=True,
                         HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert "were finalised on" in again.content.decode()
    response = manager.get("/sales/appraisal/export.xlsx?period=2026-Q3", HTTP_ACCEPT_LANGUAGE="en")
    sheet = load_workbook(BytesIO(response.content)).active
    assert [sheet.cell(3, c).value for c in (1, 3, 4)] == ["lead", 102.5, "Excellent"]
    assert [sheet.cell(4, c).value for c in (1, 3, 4)] == ["rep", 54.97, "Needs improvement"]
    assert AuditEntry.objects.filter(object_type="sales.appraisal", action="export").count() == 1


def test_the_scheme_editor_refuses_weights_not_adding_up_to_100(users, client_for):
    manager = client_for("manager")
    form = {"name": "月度考核", "period_kind": "month", "roles": ["rep"], "excellent": "90", "good": "75",
            "passing": "60", "active": "on"}  # fmt: skip
    for i in ALL:
        form.update({f"{i['code']}_{w}": i[w] for w in ("weight", "target", "floor", "cap")})
    form["csat_weight"] = "15"
    refused = manager.post("/sales/appraisal/schemes/new/", form, HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 400
    assert "The weights add up to 105; they must add up to 100." in refused.content.decode()
    assert not AppraisalScheme.objects.exists()
    form["csat_weight"] = "10"
    assert manager.post("/sales/appraisal/schemes/new/", form).status_code == 302
    scheme = AppraisalScheme.objects.get()
    assert scheme.period_kind == "month" and scheme.roles == ["rep"]
    edit = manager.get(f"/sales/appraisal/schemes/{scheme.pk}/").content.decode()
    assert 'name="csat_weight" value="10"' in edit and manager.get("/sales/appraisal/schemes/new/").status_code == 200
    assert client_for("auditor").get("/sales/appraisal/schemes/").status_code == 200
    assert client_for("auditor").get("/sales/appraisal/schemes/new/").status_code == 403
    assert client_for("rep").get("/sales/appraisal/schemes/").status_code == 403


def test_a_person_in_two_teams_is_in_both_teams_rankings_and_listed_once_for_the_company(world, users, client_for,
                                                                                          api_for):  # fmt: skip
    """rep works in the North team and the South team (华南团队, led by south). Ranked under the first team by name
    only, rep was missing from the South team's ranking and average, and south saw the North team's average instead.
    Now each team's ranking counts everyone in it, with the one result a person has for the period."""
    from pharmacrm.core.models import Team

    south_lead = new_user("south", Role.REP)
    south = Team.objects.create(name="华南团队", lead=south_lead)
    world["rep"].teams.add(south)
    users.update(lead=world["lead"], south=south_lead)
    kpi.compute(world["scheme"], Q3, user=None, now=AFTER)
    result = Appraisal.objects.get(user=world["rep"])  # one result per person and period
    assert set(result.teams.all()) == {world["north"], south} and result.team == world["north"]

    def page(role, **query):
        q = "&".join(f"{k}={v}" for k, v in query.items())
        html = client_for(role).get(f"/sales/appraisal/?period=2026-Q3&{q}", HTTP_ACCEPT_LANGUAGE="en").content
        return html.decode()

    def team_table(html) -> dict[str, tuple[str, str]]:
        import re

        table = html.split('id="teams-table"', 1)[1].split("</table>", 1)[0] if 'id="teams-table"' in html else ""
        return {name: (members, average) for name, members, average in re.findall(
            r'<th scope="row">([^<]+)</th><td class="num">(\d+)</td><td class="num">([^<]+)</td>', table)}  # fmt: skip

    # each lead sees rep in their team's ranking, with the same score, and only their own teams' averages
    for role, team in (("south", south), ("lead", world["north"])):
        html = page(role, team=team.pk)
        assert html.count('data-user="rep"') == 1 and "54.97" in html, role
        assert set(team_table(page(role))) == {team.name}, role  # not the other team rep is in
    assert 'data-user="lead"' in page("lead", team=world["north"].pk)
    assert team_table(page("south"))["华南团队"] == ("1", "54.97")
    # the company: rep listed once in the ranking, counted in both teams' averages
    html = page("manager")
    assert html.count('data-user="rep"') == 1
    assert team_table(html) == {"华北团队": ("2", "78.74"), "华南团队": ("1", "54.97")}
    assert page("manager", team=south.pk).count('data-user="rep"') == 1
    assert 'data-user="lead"' not in page("manager", team=south.pk)
    # the API: each team's filter lists rep, the whole list once, `teams` naming both
    api = api_for("manager")
    by_team = api.get(f"/api/v1/sales/appraisals/?period=2026-Q3&team={south.pk}").json()["results"]
    assert [r["person_name"] for r in by_team] == ["rep"] and sorted(by_team[0]["teams"]) == sorted(
        [world["north"].pk, south.pk])
    everyone = [r["person_name"] for r in api.get("/api/v1/sales/appraisals/?period=2026-Q3").json()["results"]]
    assert sorted(everyone) == ["kam", "lead", "rep", "south"]  # rep once
    seen = api_for("south").get("/api/v1/sales/appraisals/?period=2026-Q3").json()["results"]
    assert sorted(r["person_name"] for r in seen) == ["rep", "south"]  # their team's member, and themselves
    # the person's page names both teams
    detail = client_for("rep").get(f"/sales/appraisal/{result.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "华北团队, 华南团队" in detail


def test_finalise_clicked_twice_finalises_once_and_says_so(world, client_for):
    """A double click on Finalise answered the second time "there are no draft results to finalise"; the second
    sending by the same person now says what the first one finalised."""
    manager, scheme = client_for("manager"), world["scheme"]
    manager.post("/sales/appraisal/compute/", {"scheme": scheme.pk, "period": "2026-Q3"}, follow=True)
    sent = {"scheme": scheme.pk, "period": "2026-Q3", "stamp": kpi.stamp(scheme, "2026-Q3")}

    first = manager.post("/sales/appraisal/finalise/", sent, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    again = manager.post("/sales/appraisal/finalise/", sent, follow=True, HTTP_ACCEPT_LANGUAGE="en")

    said = [str(m) for m in again.context["messages"]]
    assert said == [str(m) for m in first.context["messages"]] and "finalised" in said[0]
    assert AuditEntry.objects.filter(object_type="sales.appraisal", action="sign").count() == 1
    other = client_for("admin").post("/sales/appraisal/finalise/", sent, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert "no draft results" in " ".join(str(m) for m in other.context["messages"])


def test_one_result_and_one_answer_are_said_in_the_singular():
    """The appraisal pages said "1 results computed for 2026-Q3.", "1 results of 2026-Q3 finalised." and explained a
    satisfaction score with "1 satisfaction answers"."""
    from pharmacrm.sales.views_kpi import _computed_message, _finalised_message

    with translation.override("en"):
        assert kpi.explain("csat", {"n": 1, "score": "5.00"}).startswith("1 satisfaction answer")
        assert "answers" not in kpi.explain("csat", {"n": 1, "score": "5.00"})
        assert "3 satisfaction answers" in kpi.explain("csat", {"n": 3, "score": "4.33"})
        assert _computed_message(1, "2026-Q3") == "1 result computed for 2026-Q3."
        assert _computed_message(4, "2026-Q3") == "4 results computed for 2026-Q3."
        assert _finalised_message(1, "2026-Q3") == "1 result of 2026-Q3 finalised."
        assert _finalised_message(4, "2026-Q3") == "4 results of 2026-Q3 finalised."
