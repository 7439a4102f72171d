"""The channel effect (沟通渠道效果评估, seed 000 4.1: at least three channels, their effect evaluated regularly):
/interactions/channels/, its Excel export and GET /api/v1/engagement/channels/. Every figure is checked on a small
hand-computed September 2026: 北京协和医院 visited (through its department and its doctor) and called, 上海瑞金医院
called, their orders before and after, an opportunity moved forward and two moves that are not forward."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services as customers
from pharmacrm.engagement import channels
from pharmacrm.engagement.models import Interaction
from pharmacrm.sales.models import Opportunity, OpportunityMove, OrderLine
from pharmacrm.servicedesk.performance import LOCAL, Period
from tests.api.conftest import ROLES

pytestmark = pytest.mark.django_db

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
SEPTEMBER = Period("month", 2026, 9)
LATER = dt.date(2026, 12, 1)  # every window of September has ended
READERS = {"admin", "manager", "kam", "rep", "analyst", "auditor"}  # customers, interactions and purchases


def _at(month: int, day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=LOCAL)


def _contact(institution, channel: str, month: int, day: int, person=None) -> Interaction:
    return Interaction.objects.create(institution=institution, person=person, channel=channel,
                                      received_at=_at(month, day), subject="例行拜访")  # fmt: skip


def _order(institution, month: int, day: int, yuan: int) -> None:
    on = dt.date(2026, month, day)
    OrderLine.objects.create(
        order_number=f"T-{institution.pk}-{on:%m%d}-{yuan}", line_number=1, order_date=on, month=on.replace(day=1),
        institution=institution, product_code="P1", quantity=Decimal(1), unit_price=Decimal(yuan),
        amount_fen=yuan * 100, row_hash=0,
    )  # fmt: skip


def _move(institution, before: str, after: str, month: int, day: int) -> None:
    opportunity = Opportunity.objects.create(institution=institution, title="新品进院", amount_fen=100_000,
                                             close_date=dt.date(2026, 12, 31), stage=after)  # fmt: skip
    OpportunityMove.objects.create(opportunity=opportunity, from_stage=before, to_stage=after, at=_at(month, day))


@pytest.fixture
def september(xiehe, ruijin):
    department, doctor = xiehe.children.get(), xiehe.people.get()
    _contact(department, "visit", 9, 5, person=doctor)  # filed under the department: counts for the hospital
    _contact(xiehe, "visit", 9, 20)
    _contact(xiehe, "phone", 9, 10)
    _contact(ruijin, "phone", 9, 25)
    _contact(ruijin, "wechat", 8, 30)  # the period before
    _order(xiehe, 8, 20, 500)  # before both of 协和's windows
    _order(xiehe, 9, 15, 1000)  # in both
    _order(department, 9, 16, 100)  # ordered by the department: the hospital's purchase
    _order(xiehe, 10, 20, 7)  # after both windows (visit: 9-05…10-04; phone: 9-10…10-09)
    _order(ruijin, 9, 1, 200)  # before its window (8-26…9-24)
    _order(ruijin, 11, 1, 300)  # after it (9-25…10-24)
    _move(ruijin, "lead", "needs", 10, 1)  # forward, in ruijin's phone window
    _move(xiehe, "proposal", "lost", 9, 12)  # lost: not forward
    _move(xiehe, "negotiation", "proposal", 9, 13)  # backwards
    _move(xiehe, "lost", "lead", 9, 14)  # a lost one taken up again: not a step forward either
    return {"xiehe": xiehe, "ruijin": ruijin}


def _rows(rep: channels.Report) -> dict[str, channels.Figures]:
    return {r.channel: r for r in rep.rows} | {"all": rep.total}


def test_every_figure_of_a_hand_computed_month(users, september):
    rep = channels.report(users["manager"], channels.Query(SEPTEMBER, 30), today=LATER)
    rows = _rows(rep)

    visit, phone, total = rows["visit"], rows["phone"], rows["all"]
    assert (visit.contacts, visit.customers, visit.people, visit.judged, visit.open) == (2, 1, 1, 1, 0)
    assert (visit.ordered, visit.conversion, visit.advanced) == (1, 100.0, 0)
    assert (visit.before_fen, visit.after_fen, visit.change) == (50_000, 110_000, 120.0)
    assert (phone.contacts, phone.customers, phone.people, phone.judged) == (2, 2, 0, 2)
    assert (phone.ordered, phone.conversion, phone.advanced, phone.advance_rate) == (1, 50.0, 1, 50.0)
    # 协和 500 + 瑞金 200 before; 协和 1,100 + 瑞金 nothing after
    assert (phone.before_fen, phone.after_fen, phone.change) == (70_000, 110_000, 57.1)
    assert (visit.share, phone.share, rows["wechat"].share) == (50.0, 50.0, 0.0)
    assert rows["wechat"].contacts == 0 and rows["wechat"].conversion is None
    # all channels: each customer once, from its first contact through any channel (协和 9-05, 瑞金 9-25)
    assert (total.contacts, total.customers, total.people, total.judged, total.ordered) == (4, 2, 1, 2, 1)
    assert (total.before_fen, total.after_fen, total.advanced, total.conversion) == (70_000, 110_000, 1, 50.0)
    assert rep.channels_used == 2 and rep.few_channels
    # August: 瑞金 reached by WeChat on 8-30, ordered on 9-01 (in its window): 100 %; nobody by visit or phone
    assert (rows["wechat"].previous_conversion, visit.previous_conversion, total.previous_conversion) == (
        100.0, None, 100.0)


def test_a_customer_contacted_too_recently_is_left_out_of_the_outcome(users, september):
    rep = channels.report(users["manager"], channels.Query(SEPTEMBER, 30), today=dt.date(2026, 10, 20))
    phone = _rows(rep)["phone"]

    # 协和's window (9-10…10-09) has ended; 瑞金's (9-25…10-24) has not: not judged, its order of 9-01 not "before"
    assert (phone.judged, phone.open, phone.ordered, phone.conversion) == (1, 1, 1, 100.0)
    assert (phone.before_fen, phone.after_fen, phone.advanced) == (50_000, 110_000, 0)
    assert not rep.complete


def test_a_longer_window_takes_in_later_orders(users, september):
    rows = _rows(channels.report(users["manager"], channels.Query(SEPTEMBER, 60), today=LATER))

    # 60 days from 9-25 reach 瑞金's order of 11-01; 协和's of 10-20 joins both of its windows
    assert (rows["phone"].ordered, rows["phone"].after_fen) == (2, 110_000 + 700 + 30_000)
    assert rows["visit"].after_fen == 110_700


def test_a_rep_measures_the_customers_of_the_territory_and_their_own(users, september):
    rep_user = users["rep"]  # 华北团队: Beijing, so 协和 and not 瑞金
    rows = _rows(channels.report(rep_user, channels.Query(SEPTEMBER, 30), today=LATER))
    assert (rows["phone"].contacts, rows["phone"].customers, rows["all"].customers) == (1, 1, 1)

    mine = _rows(channels.report(rep_user, channels.Query(SEPTEMBER, 30, "mine"), today=LATER))
    assert mine["all"].contacts == 0
    customers.update_institution(users["admin"], september["xiehe"], {"owner": rep_user})
    mine = _rows(channels.report(rep_user, channels.Query(SEPTEMBER, 30, "mine"), today=LATER))
    assert (mine["all"].contacts, mine["visit"].contacts) == (2 + 1, 2)  # the department's visit is the hospital's


def test_the_queries_do_not_grow_with_the_customers(users, september, make_user, beijing):
    def counted() -> int:
        with CaptureQueriesContext(connection) as queries:
            channels.report(users["manager"], channels.Query(SEPTEMBER, 30), today=LATER)
        return len(queries)

    counted()  # the manager's roles, cached on the user for the next calls
    before = counted()
    for n in range(5):
        pharmacy = customers.create_institution(users["admin"], {"name": f"朝阳大药房{n}号店", "kind": "pharmacy",
                                                                 "region": beijing})  # fmt: skip
        _contact(pharmacy, "wechat", 9, 3 + n)
        _order(pharmacy, 9, 10 + n, 50)

    assert counted() == before


def _page(client, **params):
    return client.get("/interactions/channels/", {"period": "2026-09", **params}, **EN)


def _cells(html: str, channel: str) -> dict[str, str]:
    row = html.split(f'data-channel="{channel}"', 1)[1].split("</tr>", 1)[0]
    out = {}
    for part in row.split('data-col="')[1:]:
        key, rest = part.split('">', 1)
        out[key] = rest.split("<", 1)[0]
    return out


def test_the_page_shows_each_channel_and_the_notes(client_for, september):
    response = _page(client_for("manager"))
    html = response.content.decode()

    assert response.status_code == 200
    visit = _cells(html, "visit")
    assert (visit["contacts"], visit["customers"], visit["ordered"], visit["conversion"]) == ("2", "1", "1", "100%")
    assert (visit["before"], visit["after"], visit["change"]) == ("¥500.00", "¥1,100.00", "120%")
    total = _cells(html, "all")
    assert (total["contacts"], total["customers"], total["conversion"], total["previous_conversion"]) == (
        "4", "2", "50%", "100%")
    assert _cells(html, "email")["conversion"] == "—"
    assert 'id="channels-few"' in html and "at least 3" in html  # two channels used
    assert 'id="channels-open"' not in html  # September's windows have all ended
    assert 'id="channels-chart"' in html


def test_a_recent_contact_says_when_the_figures_are_final(client_for, xiehe):
    now = timezone.localtime()
    Interaction.objects.create(institution=xiehe, channel="visit", received_at=now, subject="今日拜访")
    period = f"{now:%Y-%m}"
    html = _page(client_for("manager"), period=period, window=7).content.decode()

    final = (Period("month", now.year, now.month).end.date() + dt.timedelta(days=6)).isoformat()
    assert 'id="channels-open"' in html and final in html
    assert _cells(html, "visit")["open"] == "1" and _cells(html, "visit")["ordered"] == "—"


def test_the_default_period_is_the_latest_month_judged_in_full():
    # October's last contacts (10-31) have their 30 days on 11-30: final that day, and the page says so
    assert channels.final_on(Period("month", 2026, 10), 30) == dt.date(2026, 11, 30)
    assert channels.default_period(30, today=dt.date(2026, 11, 30)) == Period("month", 2026, 10)
    assert channels.default_period(30, today=dt.date(2026, 11, 29)) == Period("month", 2026, 9)
    assert channels.default_period(7, today=dt.date(2026, 12, 7)) == Period("month", 2026, 11)
    assert channels.default_period(90, today=dt.date(2027, 1, 15)) == Period("month", 2026, 9)  # Oct.: 01-29


@pytest.mark.parametrize(("params", "field"), [({"window": "45"}, "window"), ({"period": "2026-13"}, "period"),
                                               ({"scope": "everyone"}, "scope")])  # fmt: skip
def test_a_bad_filter_is_named_and_refused(client_for, api_for, september, params, field):
    response = _page(client_for("manager"), **params)
    answer = api_for("manager").get("/api/v1/engagement/channels/", {"period": "2026-09", **params})

    assert response.status_code == 400
    assert f'class="field has-error" id="field-{field}"' in response.content.decode()
    assert answer.status_code == 400 and list(answer.json()) == [field]


@pytest.mark.parametrize("role", ROLES)
def test_who_reads_the_page_the_export_and_the_api(client_for, api_for, september, role):
    client = client_for(role)
    page = _page(client)
    export = client.get("/interactions/channels/export.xlsx", {"period": "2026-09"}, **EN)
    api = api_for(role).get("/api/v1/engagement/channels/", {"period": "2026-09"})
    listed = client.get("/interactions/", **EN).content.decode()

    expected = 200 if role in READERS else 403
    assert (page.status_code, export.status_code, api.status_code) == (expected, expected, expected)
    assert ("/interactions/channels/" in listed) == (role in READERS)


def test_the_export_holds_the_figures_and_is_audited(client_for, users, september):
    from openpyxl import load_workbook

    response = client_for("analyst").get("/interactions/channels/export.xlsx", {"period": "2026-09"}, **EN)
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = {r[0]: r for r in sheet.iter_rows(values_only=True) if r and r[0] in ("Phone call", "All channels")}

    assert rows["Phone call"][1:4] == (2, 50.0, 2)
    assert rows["Phone call"][8:15] == (1, 50.0, None, 1, 700.0, 1100.0, 57.1)
    assert rows["All channels"][9:11] == (50.0, 100.0)
    assert response["Content-Disposition"].endswith('2026-09.xlsx"')
    entry = AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT, actor=users["analyst"]).get()
    assert entry.object_repr == "channel effect" and entry.extra["period"] == "2026-09"


def test_the_api_answers_every_channel(api_for, september):
    answer = api_for("kam").get("/api/v1/engagement/channels/", {"period": "2026-09", "window": 60})

    assert answer.status_code == 200
    body = answer.json()
    assert (body["period"], body["previous_period"], body["window_days"], body["channels_used"]) == (
        "2026-09", "2026-08", 60, 2)
    phone = next(r for r in body["rows"] if r["channel"] == "phone")
    assert (phone["contacts"], phone["ordered"], phone["conversion_percent"], phone["purchases_after"]) == (
        2, 2, 100.0, "1407.00")
    assert [r["channel"] for r in body["rows"]] == ["visit", "phone", "wechat", "email", "meeting", "other"]
    assert body["total"]["channel"] == "" and body["total"]["customers"] == 2


def test_the_page_speaks_chinese(client_for, september):
    html = client_for("manager").get("/interactions/channels/", {"period": "2026-09"}).content.decode()

    assert "渠道效果" in html and "全部渠道" in html and "转化率" in html


def test_beijing_days_decide_the_period_and_the_window(users, xiehe):
    """00:30 on 1 September in Beijing is 31 August in UTC: a September contact, whose window (30 days, that day
    first) ends on 30 September; a stage change at 23:30 on 30 September (15:30 UTC) is in it, an order of 1 October
    is not."""
    Interaction.objects.create(institution=xiehe, channel="visit", received_at=_at(9, 1, 0) + dt.timedelta(minutes=30),
                               subject="清晨拜访")  # fmt: skip
    Interaction.objects.create(institution=xiehe, channel="phone", received_at=_at(9, 1, 0) - dt.timedelta(minutes=30),
                               subject="八月最后一通电话")  # fmt: skip
    _order(xiehe, 10, 1, 800)
    opportunity = Opportunity.objects.create(institution=xiehe, title="新品进院", amount_fen=100_000,
                                             close_date=dt.date(2026, 12, 31), stage="needs")  # fmt: skip
    OpportunityMove.objects.create(opportunity=opportunity, from_stage="lead", to_stage="needs",
                                   at=_at(9, 30, 23) + dt.timedelta(minutes=30))  # fmt: skip

    rows = _rows(channels.report(users["manager"], channels.Query(SEPTEMBER, 30), today=LATER))

    assert (rows["visit"].contacts, rows["phone"].contacts) == (1, 0)  # 23:30 on 31 August is August's
    assert (rows["visit"].ordered, rows["visit"].after_fen, rows["visit"].advanced) == (0, 0, 1)
    assert rows["phone"].previous_conversion == 0.0  # 8-31's window is 8-31…9-29: the order of 10-01 is after it
    assert rows["visit"].previous_conversion is None


def test_a_return_is_no_order_but_counts_in_the_amounts(users, xiehe):
    _contact(xiehe, "visit", 9, 5)
    _order(xiehe, 9, 10, -500)  # a return: a credit note of ¥500

    visit = _rows(channels.report(users["manager"], channels.Query(SEPTEMBER, 30), today=LATER))["visit"]

    assert (visit.judged, visit.ordered, visit.conversion, visit.after_fen) == (1, 0, 0.0, -50_000)


def test_a_rep_counts_only_the_purchases_and_opportunities_they_may_see(users, ruijin):
    """A rep who owns a department of a hospital outside the territory sees that department, not the hospital: the
    department's purchases count, the hospital's do not; nor do opportunities outside the rep's own and teams'."""
    rep = users["rep"]
    department = customers.create_institution(users["admin"], {"name": "瑞金医院心内科", "kind": "department",
                                                               "parent": ruijin, "region": ruijin.region})  # fmt: skip
    customers.update_institution(users["admin"], department, {"owner": rep})
    _contact(department, "visit", 9, 5)
    _order(ruijin, 9, 10, 9_999)  # the hospital's own purchase: not the rep's to see
    _order(department, 9, 12, 300)
    _move(ruijin, "lead", "needs", 9, 15)  # an opportunity of nobody in the rep's teams

    for scope in ("all", "mine"):
        visit = _rows(channels.report(rep, channels.Query(SEPTEMBER, 30, scope), today=LATER))["visit"]
        assert (visit.customers, visit.ordered, visit.after_fen, visit.advanced) == (1, 1, 30_000, 0), scope
    manager = _rows(channels.report(users["manager"], channels.Query(SEPTEMBER, 30), today=LATER))["visit"]
    assert (manager.after_fen, manager.advanced) == (1_029_900, 1)


@pytest.mark.parametrize("params", [{}, {"period": "2026-09"}])
def test_the_filters_show_the_defaults_they_apply(client_for, september, params):
    html = client_for("manager").get("/interactions/channels/", params, **EN).content.decode()

    window = html.split('name="window"', 1)[1].split("</select>", 1)[0]
    assert '<option value="30" selected>' in window and "within 30 days" in html
    assert '<option value="all" selected>' in html.split('name="scope"', 1)[1].split("</select>", 1)[0]
