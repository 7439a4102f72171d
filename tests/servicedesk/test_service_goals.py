"""Service goals (服务目标): set per indicator by administrators and managers (all or nothing, each value checked
against its range, someone else's change in between refused), and the performance page, export and API judging the
hand-computed November of test_performance.py against them: met, missed, or not judged without a figure."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.servicedesk import goals
from pharmacrm.servicedesk.models import ServiceGoal
from tests.servicedesk.test_performance import (  # noqa: F401 — fixtures
    API,
    EXPORT,
    PAGE,
    api_client,
    desk,
    november,
    page_client,
    report,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    """The services' messages read in English here (the product's default language is zh-hans)."""
    from django.utils import translation

    with translation.override("en"):
        yield

GOALS_PAGE = "/service/settings/goals/"
GOALS_API = "/api/v1/service/goals/"
SINCE = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)  # goals in force before November
SET = {"resolution_rate": "80", "fr_median": "2", "res_p90": "48", "fr_sla": "80", "csat": "4", "nps": "20",
       "complaint_rate": "50"}  # fmt: skip


def test_the_goals_judge_the_hand_computed_november(users, november):  # noqa: F811
    goals.save(users["manager"], SET)
    targets = goals.current()
    totals = report(users["manager"]).totals
    # resolution 66.7 % < 80; first response median 1 h ≤ 2; resolution p90 600 h > 48; first response in SLA
    # 83.3 % ≥ 80; CSAT 3.25 < 4; NPS 25 ≥ 20; complaints handled 50 % ≥ 50 (a goal reached exactly is met)
    assert goals.judge(totals, targets) == {
        "resolution_rate": False, "fr_median": True, "res_p90": False, "fr_sla": True, "csat": False, "nps": True,
        "complaint_rate": True,
    }  # fmt: skip
    rows = {r.label: r for r in report(users["manager"]).rows}
    assert "complaint_rate" not in goals.judge(rows["a1"], targets)  # a1 had no complaint: nothing to judge
    assert goals.shown("fr_median", targets["fr_median"]) == "≤ 2 h"
    assert goals.shown("csat", Decimal("4.50")) == "≥ 4.5" and goals.shown("nps", Decimal("-10")) == "≥ -10"


def test_goals_are_checked_saved_all_or_nothing_and_audited(users):
    with pytest.raises(ValidationError) as err:
        goals.save(users["manager"], {"csat": "6", "nps": "很多", "fr_p90": "4.555", "resolution_rate": "95",
                                      "speed": "1"})  # fmt: skip
    assert err.value.message_dict == {
        "csat": ["Between 1 and 5."], "nps": ["Enter a number, or leave it empty for no goal."],
        "fr_p90": ["At most two decimal places."], "speed": ["No such indicator."],
    }  # fmt: skip
    assert not ServiceGoal.objects.exists()  # the good one was not saved either
    with pytest.raises(PermissionDenied):
        goals.save(users["agent"], {"csat": "4"})
    # what people type: a percent sign, full-width digits, hours
    assert goals.save(users["manager"], {"resolution_rate": "95%", "nps": "３０", "fr_median": "4h"}) == 3
    assert goals.current() == {"resolution_rate": Decimal("95"), "nps": Decimal("30"), "fr_median": Decimal("4")}
    assert goals.save(users["admin"], {"resolution_rate": "90", "nps": "", "fr_median": "4"}) == 2  # 4 unchanged
    assert goals.current() == {"resolution_rate": Decimal("90"), "fr_median": Decimal("4")}
    entries = AuditEntry.objects.filter(object_type="servicedesk.servicegoal").order_by("id")
    assert [(e.action, e.actor.username) for e in entries] == [("create", "manager")] * 3 + [
        ("update", "admin"), ("delete", "admin")]  # fmt: skip
    assert entries[3].changes == {"target": ["95", "90"]} and entries[4].changes == {"target": ["30", None]}
    assert entries[0].changes == {"indicator": [None, "resolution_rate"], "target": [None, "95"]}
    # a unit only where it is the indicator's, never alone
    with pytest.raises(ValidationError) as err:
        goals.save(users["manager"], {"resolution_rate": "95 h", "fr_p90": "4 %", "csat": "%", "nps": "-"})
    assert set(err.value.message_dict) == {"resolution_rate", "fr_p90", "csat", "nps"}
    assert goals.save(users["manager"], {"fr_p90": "8 小时", "nps": "-0"}) == 2
    assert goals.shown("fr_p90", goals.current()["fr_p90"]) == "≤ 8 h" and goals.current()["nps"] == 0
    assert goals.save(users["manager"], {"nps": "−20"}) == 1  # the typeset minus sign (U+2212)
    assert goals.current()["nps"] == -20
    assert goals.shown("resolution_rate", Decimal("100.00")) == "≥ 100%"
    assert goals.shown("fr_median", Decimal("10.50")) == "≤ 10.5 h"


def test_goals_typed_with_thousands_separators_and_full_width_forms_are_read_on_the_page_and_the_api(users):
    """1,000 h or １，０００小时 of a resolution time, 1 000 with a space, ９５．５％: "Enter a number" was the answer."""
    assert goals.save(users["manager"], {"res_p90": "1,000 h", "res_median": "１，０００小时", "fr_p90": "1 000",
                                         "resolution_rate": "９５．５％"}) == 4  # fmt: skip
    assert goals.current() == {"res_p90": Decimal("1000"), "res_median": Decimal("1000"), "fr_p90": Decimal("1000"),
                               "resolution_rate": Decimal("95.5")}  # fmt: skip
    page = page_client(users["manager"]).post(GOALS_PAGE, {"fr_median": "２ h", "nps": "1_0", "csat": "4.5分"})
    assert page.status_code == 400 and "Enter a number, or leave it empty for no goal." in page.content.decode()
    assert "fr_median" not in goals.current()  # all or nothing
    api = api_client(users["manager"])
    bad = api.post(GOALS_API, {"goals": {"fr_median": "1e1", "nps": "1.2万"}}, format="json")
    assert bad.status_code == 400 and set(bad.json()["goals"]) == {"fr_median", "nps"}
    ok = api.post(GOALS_API, {"goals": {"fr_median": "２ h", "nps": "－１０"}}, format="json")
    assert ok.status_code == 200, ok.content
    assert (goals.current()["fr_median"], goals.current()["nps"]) == (Decimal("2"), Decimal("-10"))


def test_a_goal_changed_by_someone_else_meanwhile_is_not_overwritten(users):
    goals.save(users["manager"], {"csat": "4"})
    loaded = {"csat": "4", "nps": ""}
    goals.save(users["admin"], {"csat": "4.5"})  # the admin saves first
    with pytest.raises(goals.GoalsConflict) as err:
        goals.save(users["manager"], {"csat": "3.8", "nps": "10"}, loaded=loaded)
    assert err.value.names == ["csat"]
    assert goals.current() == {"csat": Decimal("4.5")}  # the NPS goal was not saved either


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_the_goals_page_and_api_per_role(role, users):
    page = page_client(users[role])
    api = api_client(users[role])
    sets = role in ("admin", "manager")
    assert page.get(GOALS_PAGE).status_code == (200 if sets else 403)
    posted = page.post(GOALS_PAGE, {"csat": "4.2"})
    assert posted.status_code == (302 if sets else 403)
    listed = api.get(GOALS_API)
    assert listed.status_code == (403 if role == "pv" else 200)  # as the performance page
    changed = api.post(GOALS_API, {"goals": {"nps": 30}}, format="json")
    assert changed.status_code == (200 if sets else 403)
    assert goals.current() == ({"csat": Decimal("4.2"), "nps": Decimal("30")} if sets else {})
    if role != "pv":
        rows = {g["indicator"]: g for g in listed.json()}
        assert list(rows) == list(goals.INDICATORS)
        assert rows["fr_median"]["direction"] == "<=" and rows["fr_median"]["unit"] == "h"


def test_a_refused_form_keeps_what_it_was_loaded_with_and_only_changed_goals_are_saved(users):
    """A form refused for a bad value was shown again with the goals as they were then stored: a goal another manager
    had changed meanwhile was then overwritten by the next save, without a conflict."""
    goals.save(users["manager"], {"csat": "4", "nps": "20"})
    manager = page_client(users["manager"])
    form = {"csat": "4", "loaded_csat": "4", "nps": "20", "loaded_nps": "20", "fr_p90": "x"}
    goals.save(users["admin"], {"csat": "4.5"})  # meanwhile
    r = manager.post(GOALS_PAGE, form)
    assert r.status_code == 400 and 'name="loaded_csat" value="4"' in r.content.decode()
    r = manager.post(GOALS_PAGE, {**form, "fr_p90": "12", "nps": "25"})  # corrected; CSAT untouched
    assert r.status_code == 302
    assert goals.current() == {"csat": Decimal("4.5"), "nps": Decimal("25"), "fr_p90": Decimal("12")}
    # a conflict on one goal shows the others as they are now, so saving again undoes nobody's work
    goals.save(users["admin"], {"nps": "30", "fr_p90": "10"})
    r = manager.post(GOALS_PAGE, {"csat": "4.5", "loaded_csat": "4.5", "nps": "28", "loaded_nps": "25",
                                  "fr_p90": "12", "loaded_fr_p90": "12"})  # fmt: skip
    html = r.content.decode()
    assert r.status_code == 409 and 'name="nps" value="28"' in html and 'name="fr_p90" value="10"' in html


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_first_goals_at_once_give_a_conflict_not_an_error(users):
    from tests.concurrency import held_while

    out = []

    def second():
        try:
            goals.save(users["admin"], {"csat": "4.5"})
            out.append("saved")
        except goals.GoalsConflict as e:
            out.append(e.names)

    held_while(lambda: goals.save(users["manager"], {"csat": "4"}), second)
    assert out == [["csat"]] and goals.current() == {"csat": Decimal("4")}


def test_the_goals_page_shows_errors_under_their_field_and_a_conflict_with_both_values(users):
    manager = page_client(users["manager"])
    r = manager.post(GOALS_PAGE, {"csat": "9", "nps": "20"})
    html = r.content.decode()
    assert r.status_code == 400 and "Between 1 and 5." in html and 'id="err_csat"' in html
    assert 'name="csat" value="9"' in html and not ServiceGoal.objects.exists()
    form = manager.get(GOALS_PAGE).content.decode()
    assert 'name="loaded_csat"' not in form  # nothing set yet: nothing loaded
    goals.save(users["admin"], {"csat": "4.5"})  # meanwhile
    r = manager.post(GOALS_PAGE, {"csat": "4", "loaded_csat": "", "nps": "20"})
    html = r.content.decode()
    assert r.status_code == 409 and "Someone else changed these goals" in html and "CSAT" in html
    assert 'name="csat" value="4"' in html and "Saved by someone else meanwhile: 4.5" in html
    assert goals.current() == {"csat": Decimal("4.5")}
    zh = page_client(users["manager"])
    zh.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"
    assert "服务目标" in zh.get(GOALS_PAGE).content.decode()


def test_the_performance_page_export_and_api_mark_each_figure(users, november):  # noqa: F811
    goals.save(users["manager"], SET, since=SINCE)  # in force in November
    html = page_client(users["manager"]).get(PAGE, {"period": "2026-11"}).content.decode()
    totals = html.split("<tfoot>", 1)[1].split("</tr>", 1)[0]
    assert 'class="num goal-missed" title="Goal ≥ 80%: missed">66.7%' in totals
    assert 'class="num goal-met" title="Goal ≤ 2 h: met">1.0' in totals
    assert '3.25 <span class="muted small">(4)</span><span class="visually-hidden"> (Goal ≥ 4: missed)</span>' in totals
    assert 'id="goal-row"' in html and "≤ 48 h" in html and 'id="set-goals"' in html
    import json
    import re

    chart = json.loads(re.search(r'<script id="performance-data" type="application/json">(.*?)</script>', html, re.S)[1])
    assert [(x["goal"], x["goal_label"]) for x in chart["series"][1:]] == [(80.0, "≥ 80%"), (4.0, "≥ 4"), (20.0, "≥ 20"),
                                                                     (None, "")]  # no accuracy goal set
    analyst = page_client(users["analyst"]).get(PAGE, {"period": "2026-11"}).content.decode()
    assert "goal-missed" in analyst and 'id="set-goals"' not in analyst  # sees the goals, does not set them

    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(page_client(users["manager"]).get(EXPORT, {"period": "2026-11"}).content)).active
    rows = list(sheet.iter_rows())
    total = next(r for r in rows if r[0].value == "Total")
    assert total[3].value == 66.7 and total[3].font.color.rgb.endswith("B42318")  # missed: red
    assert total[4].font.color is None or not str(total[4].font.color.rgb).endswith("B42318")  # met
    assert rows[-1][0].value == "Service goals" and rows[-1][3].value == "≥ 80%" and rows[-1][7].value == "≤ 48 h"

    data = api_client(users["manager"]).get(API, {"period": "2026-11"}).json()
    assert sorted(data["totals"]["goals_missed"]) == ["csat", "res_p90", "resolution_rate"]
    assert sorted(data["totals"]["goals_met"]) == ["complaint_rate", "fr_median", "fr_sla", "nps"]
    assert {g["indicator"]: g["target"] for g in data["goals"]}["csat"] == "4.00"
    a1 = next(r for r in data["rows"] if r["label"] == "a1")
    assert "complaint_rate" not in a1["goals_met"] + a1["goals_missed"]


def test_without_goals_nothing_is_judged(users, november):  # noqa: F811
    html = page_client(users["manager"]).get(PAGE, {"period": "2026-11"}).content.decode()
    assert "goal-missed" not in html and 'id="goal-row"' not in html and "No service goals are set" in html
    data = api_client(users["manager"]).get(API, {"period": "2026-11"}).json()
    assert data["goals"] == [] and data["totals"]["goals_missed"] == [] == data["totals"]["goals_met"]


def test_the_goals_api_refuses_bad_values_and_a_stale_expectation(users):
    api = api_client(users["manager"])
    bad = api.post(GOALS_API, {"goals": {"csat": "7", "fr_p90": "x"}}, format="json")
    assert bad.status_code == 400
    assert bad.json() == {"goals": {"csat": ["Between 1 and 5."],
                                    "fr_p90": ["Enter a number, or leave it empty for no goal."]}}  # fmt: skip
    assert api.post(GOALS_API, {"goals": {"csat": "4"}, "typo": 1}, format="json").status_code == 400
    assert api.post(GOALS_API, {"goals": {"csat": "4"}}, format="json").status_code == 200
    stale = api.post(GOALS_API, {"goals": {"csat": "4.5"}, "expected": {"csat": None}}, format="json")
    assert stale.status_code == 409 and "Someone else changed these goals" in stale.json()["detail"]
    assert {g["indicator"]: g["target"] for g in stale.json()["goals"]}["csat"] == "4.00"
    ok = api.post(GOALS_API, {"goals": {"csat": None}, "expected": {"csat": "4"}}, format="json")
    assert ok.status_code == 200 and goals.current() == {}
    zh = api_client(users["manager"], "zh-hans").post(GOALS_API, {"goals": {"nps": "500"}}, format="json")
    assert zh.json() == {"goals": {"nps": ["应在 -100 到 100 之间。"]}}
