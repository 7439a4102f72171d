"""The churn watch (客户流失预警) and the churn and repurchase rates: hand-computed figures from imported orders, the
nightly refresh opening, updating and closing warnings (each owner told once), dismissal with a reason, and who may
see and do what — on the page and in the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import normalise
from pharmacrm.customers import services as customers
from pharmacrm.notify.models import Notification
from pharmacrm.sales import churn, services
from pharmacrm.sales.models import ChurnRate, ChurnSignal, OrderLine

from .conftest import line

TODAY = dt.date(2026, 12, 5)  # the refresh's day: the current month is December, the last complete one November


def month(back: int, day: int = 10) -> dt.date:
    """A day of the month `back` months before TODAY's."""
    return services.month_start(TODAY, back).replace(day=day)


@pytest.fixture
def customers_at(admin_user, beijing, users):
    """Five Beijing hospitals, owned by the key-account manager (the rep's territory is Beijing)."""

    def make(name: str, n: int):
        return customers.create_institution(admin_user, {
            "name": name, "kind": "hospital", "grade": "2A", "region": beijing, "owner": users["kam"],
            "credit_code": normalise.make_credit_code(f"1211000040000{n:04d}"),
        })  # fmt: skip

    return {key: make(name, n) for n, (key, name) in enumerate([
        ("stopped", "北京甲医院"), ("falling", "北京乙医院"), ("steady", "北京丙医院"), ("occasional", "北京丁医院"),
        ("new", "北京戊医院")])}  # fmt: skip


@pytest.fixture
def bought(customers_at, run_import):
    """One line of 1,000 yuan a month over the base year (Sep 2025 – Aug 2026) for the three regular buyers; in the
    last three months (Sep – Nov 2026) the first buys nothing, the second 300 a month, the third 600 a month; the
    occasional buyer bought in two months of the base year only, the new one in November only."""
    c = customers_at
    rows, n = [], 0

    def buy(customer, back: int, yuan: str):
        nonlocal n
        n += 1
        rows.append(line(f"O-{n}", 1, month(back), c[customer], "YP1001", 1, yuan))

    for back in range(4, 16):
        for key in ("stopped", "falling", "steady"):
            buy(key, back, "1000")
    for back in (1, 2, 3):
        buy("falling", back, "300")
        buy("steady", back, "600")
    buy("occasional", 10, "5000")
    buy("occasional", 8, "5000")
    buy("new", 1, "800")
    job = run_import(rows)
    assert job.error_count == 0, job.errors
    return c


def test_the_refresh_warns_about_the_regular_buyers_who_stopped_or_fell_with_their_figures(bought, users):
    assert churn.refresh(TODAY) == {"opened": 2, "updated": 0, "closed": 0}
    signals = {s.institution_id: s for s in ChurnSignal.objects.all()}
    assert set(signals) == {bought["stopped"].pk, bought["falling"].pk}
    stopped, falling = signals[bought["stopped"].pk], signals[bought["falling"].pk]
    assert (stopped.level, stopped.base_avg_fen, stopped.recent_avg_fen) == ("lapsed", 100_000, 0)
    assert stopped.base_months == 12 and stopped.last_month == dt.date(2026, 8, 1) and stopped.change_pct == -100
    assert (falling.level, falling.base_avg_fen, falling.recent_avg_fen) == ("declining", 100_000, 30_000)
    assert falling.change_pct == -70 and falling.last_month == dt.date(2026, 11, 1)
    # the owner is told once, of both
    [note] = Notification.objects.filter(recipient=users["kam"], kind=churn.NOTICE_KIND)
    assert "2" in note.title and note.url == "/sales/churn/?mine=on"
    assert AuditEntry.objects.filter(object_type="sales.churnsignal", action="create").count() == 2


def test_a_second_refresh_opens_nothing_again_and_tells_nobody_twice(bought, users):
    churn.refresh(TODAY)
    assert churn.refresh(TODAY + dt.timedelta(days=1)) == {"opened": 0, "updated": 0, "closed": 0}
    assert Notification.objects.filter(kind=churn.NOTICE_KIND).count() == 1
    assert ChurnSignal.objects.count() == 2
    assert set(ChurnSignal.objects.values_list("refreshed_on", flat=True)) == {TODAY + dt.timedelta(days=1)}


def test_a_customer_that_stopped_and_buys_a_little_again_is_buying_much_less(bought, run_import):
    churn.refresh(TODAY)
    run_import([line("O-SOME", 1, month(1, 20), bought["stopped"], "YP1001", 1, "900")])
    assert churn.refresh(TODAY) == {"opened": 0, "updated": 1, "closed": 0}
    signal = ChurnSignal.objects.get(institution=bought["stopped"], resolved_on=None)
    assert (signal.level, signal.recent_avg_fen, signal.last_month) == ("declining", 30_000, dt.date(2026, 11, 1))


def test_a_warning_closes_by_itself_when_the_purchases_come_back(bought, run_import):
    churn.refresh(TODAY)
    job = run_import([line("O-BACK", 1, month(1, 20), bought["stopped"], "YP1001", 1, "3000")])
    assert job.created_count == 1
    assert churn.refresh(TODAY)["closed"] == 1
    signal = ChurnSignal.objects.get(institution=bought["stopped"])
    assert (signal.resolution, signal.resolved_on) == ("resumed", TODAY)
    entry = AuditEntry.objects.filter(object_type="sales.churnsignal", action="update").latest("id")
    assert entry.changes == {"resolution": ["", "resumed"]} and entry.actor_name == "worker"


def test_the_rates_are_counted_by_hand(bought):
    churn.refresh(TODAY)
    year = ChurnRate.objects.get(kind="year")
    # 12 months Dec 2025 – Nov 2026 against Dec 2024 – Nov 2025: the three regular buyers bought in both
    assert (year.start, year.end) == (dt.date(2025, 12, 1), dt.date(2026, 12, 1))
    assert (year.buyers_before, year.retained, year.churn_pct) == (3, 3, 0)
    # buyers of the year: the three regular ones, the occasional (two months) and the new one (one month)
    assert (year.buyers, year.repeat_buyers, str(year.repeat_pct)) == (5, 4, "80.0")
    # the last complete quarter, Jul – Sep 2026, against Apr – Jun: the occasional buyer (April) did not come back
    quarter = ChurnRate.objects.filter(kind="quarter").order_by("-start").first()
    assert (quarter.start, quarter.end) == (dt.date(2026, 7, 1), dt.date(2026, 10, 1))
    assert (quarter.buyers_before, quarter.retained, str(quarter.churn_pct)) == (4, 3, "25.0")
    assert ChurnRate.objects.filter(kind="quarter").count() == 4


def test_the_page_lists_the_stopped_first_with_figures_and_the_rates_for_managers(bought, client_for):
    churn.refresh(TODAY)
    page = client_for("kam").get("/sales/churn/").content.decode()
    rows = re.findall(r'<tr class="churn-row" data-customer="(\d+)" data-level="(\w+)"', page)
    assert rows == [(str(bought["stopped"].pk), "lapsed"), (str(bought["falling"].pk), "declining")]
    assert "¥1,000.00" in page and "¥300.00" in page and "-70%" in page
    assert 'id="churn-rates"' in page and "80%" in page
    assert "停止采购" in page and "采购大幅下降" in page
    # the customer's purchases tab carries the warning
    tab = client_for("kam").get(f"/sales/customers/{bought['falling'].pk}/purchases/").content.decode()
    assert 'id="churn-warning"' in tab and "¥300.00" in tab


def test_the_rep_sees_the_territory_s_warnings_without_the_company_rates_and_may_not_dismiss_others(
    bought, client_for, api_for, huashan, run_import
):
    # a Shanghai customer that stopped buying: outside the rep's territory
    run_import([line(f"R-{b}", 1, month(b), huashan, "YP1001", 1, "1000") for b in range(4, 16)])
    churn.refresh(TODAY)
    assert ChurnSignal.objects.filter(institution=huashan, level="lapsed").exists()
    page = client_for("rep").get("/sales/churn/").content.decode()
    assert len(re.findall(r'class="churn-row"', page)) == 2
    assert 'id="churn-rates"' not in page
    assert 'name="reason"' not in page  # owned by the key-account manager
    api = api_for("rep")
    listed = api.get("/api/v1/sales/churn/").json()
    assert {r["customer"] for r in listed["results"]} == {bought["stopped"].pk, bought["falling"].pk}
    assert api.get("/api/v1/sales/churn-rates/").status_code == 403
    signal = ChurnSignal.objects.get(institution=bought["stopped"])
    answer = api.post(f"/api/v1/sales/churn/{signal.pk}/dismiss/", {"reason": "医院已合并"}, format="json")
    assert answer.status_code == 403
    assert ChurnSignal.objects.get(pk=signal.pk).resolved_on is None


@pytest.mark.parametrize("role", ["agent", "support", "pv", "expert", "aftersales"])
def test_roles_without_purchases_see_no_churn_watch(bought, role, client_for, api_for):
    churn.refresh(TODAY)
    assert client_for(role).get("/sales/churn/").status_code == 403
    assert api_for(role).get("/api/v1/sales/churn/").status_code == 403
    assert api_for(role).get("/api/v1/sales/churn-rates/").status_code == 403


@pytest.mark.parametrize("role", ["analyst", "auditor"])
def test_readers_see_the_list_and_rates_but_may_not_dismiss(bought, role, client_for, api_for):
    churn.refresh(TODAY)
    page = client_for(role).get("/sales/churn/").content.decode()
    assert len(re.findall(r'class="churn-row"', page)) == 2 and 'id="churn-rates"' in page
    assert 'name="reason"' not in page and "/interactions/new/" not in page  # they record no interactions
    signal = ChurnSignal.objects.get(institution=bought["falling"])
    answer = api_for(role).post(f"/api/v1/sales/churn/{signal.pk}/dismiss/", {"reason": "x"}, format="json")
    assert answer.status_code == 403
    assert len(api_for(role).get("/api/v1/sales/churn-rates/").json()) == 5


def test_the_owner_dismisses_with_a_reason_and_is_not_warned_again_unless_it_gets_worse(bought, users, client_for, api_for):
    churn.refresh(TODAY)
    falling = ChurnSignal.objects.get(institution=bought["falling"])
    kam = client_for("kam")
    answer = kam.post(f"/sales/churn/{falling.pk}/dismiss/", {"reason": "  ", "version": falling.version}, follow=True)
    assert "请说明预警为何不再适用" in answer.content.decode()
    assert ChurnSignal.objects.get(pk=falling.pk).resolved_on is None
    answer = kam.post(f"/sales/churn/{falling.pk}/dismiss/", {"reason": "科室搬迁，下季度恢复采购", "version": falling.version})
    assert answer.status_code == 302
    falling = ChurnSignal.objects.get(pk=falling.pk)
    assert (falling.resolution, falling.reason, falling.dismissed_by) == ("dismissed", "科室搬迁，下季度恢复采购", users["kam"])
    entry = AuditEntry.objects.filter(object_type="sales.churnsignal", object_id=str(falling.pk)).latest("id")
    assert entry.changes["resolution"] == ["", "dismissed"] and entry.actor == users["kam"]
    # the same figures tomorrow: not raised again
    assert churn.refresh(TODAY + dt.timedelta(days=1))["opened"] == 0
    # it stops buying altogether (its recent lines were taken back by the ERP): worse, so warned again
    for order_line in OrderLine.objects.filter(institution=bought["falling"], order_date__gte=month(3, 1)):
        services.remove_line(users["admin"], order_line, "ERP 撤销")
    assert churn.refresh(TODAY + dt.timedelta(days=1))["opened"] == 1
    assert ChurnSignal.objects.get(institution=bought["falling"], resolved_on=None).level == "lapsed"
    # a stale version is a conflict in the API
    again = ChurnSignal.objects.get(institution=bought["falling"], resolved_on=None)
    answer = api_for("kam").post(f"/api/v1/sales/churn/{again.pk}/dismiss/",
                                 {"reason": "已联系", "version": again.version + 1}, format="json")  # fmt: skip
    assert answer.status_code == 409


def test_bad_filters_are_named_in_the_api(bought, api_for):
    answer = api_for("kam", lang="en").get("/api/v1/sales/churn/?level=gone&mine=maybe")
    assert answer.status_code == 400
    assert set(answer.json()) == {"level", "mine"} and "gone" in answer.json()["level"][0]


def test_the_page_costs_the_same_queries_for_two_warnings_as_for_twelve(bought, client_for, run_import, admin_user, beijing):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    churn.refresh(TODAY)
    kam = client_for("kam")
    kam.get("/sales/churn/")  # sessions, caches
    with CaptureQueriesContext(connection) as few:
        kam.get("/sales/churn/")
    more = []
    for n in range(10):
        inst = customers.create_institution(admin_user, {
            "name": f"北京第{n}社区卫生服务中心", "kind": "community", "region": beijing,
            "credit_code": normalise.make_credit_code(f"1211000050000{n:04d}"),
        })  # fmt: skip
        more += [line(f"M-{n}-{b}", 1, month(b), inst, "YP1001", 1, "200") for b in range(4, 16)]
    run_import(more)
    churn.refresh(TODAY)
    assert ChurnSignal.objects.filter(resolved_on=None).count() == 12
    with CaptureQueriesContext(connection) as many:
        kam.get("/sales/churn/")
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


def test_the_audit_page_names_a_warning_in_the_readers_language(bought, client_for):
    """A warning's audit entries read "停止采购 · 2026-12-05" (its risk and day), not "12 lapsed 2026-12-05" (found by
    the UI QA crawl on the Chinese audit page)."""
    churn.refresh(TODAY)
    page = client_for("auditor").get("/accounts/audit/", {"action": "create"}).content.decode()
    assert f"停止采购 · {TODAY}" in page and f"采购大幅下降 · {TODAY}" in page
    assert not re.search(r"\d+ (lapsed|declining) 20", page)
    en = client_for("auditor").get("/accounts/audit/", {"action": "create"}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f"Stopped buying · {TODAY}" in en



DISMISSED = "客户已改由分院采购，联系人李主任 139-1234-5678"


def test_a_dismissal_reasons_contact_details_are_masked_for_the_auditor(bought, users, client_for, api_for):
    """The reason an owner gives for dismissing a warning is kept in the audit trail: the auditor (who sees personal
    data masked) reads the number typed in it masked on the audit page and GET /api/v1/audit/; the administrator as
    typed."""
    churn.refresh(TODAY)
    falling = ChurnSignal.objects.get(institution=bought["falling"])
    churn.dismiss(users["kam"], falling, DISMISSED, version=falling.version)
    query = {"object_type": "sales.churnsignal", "object_id": falling.pk}
    page = client_for("auditor").get("/accounts/audit/", query).content.decode()
    audited = str(api_for("auditor").get("/api/v1/audit/", query).json()["results"])
    for text in (page, audited):
        assert "李主任 139****5678" in text and "139-1234-5678" not in text
    assert "139-1234-5678" in client_for("admin").get("/accounts/audit/", query).content.decode()


def test_dismiss_clicked_twice_dismisses_once_and_a_stale_one_is_refused(bought, users, client_for):
    """A double click on Dismiss answered the second time 'not found' (404): the first had closed the warning. The
    same person's second sending now says it was dismissed; a form without its version is stale."""
    churn.refresh(TODAY)
    falling = ChurnSignal.objects.get(institution=bought["falling"])
    kam = client_for("kam")
    without = kam.post(f"/sales/churn/{falling.pk}/dismiss/", {"reason": "科室搬迁"}, follow=True,
                       HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert "Someone else changed this warning" in without.content.decode()
    assert ChurnSignal.objects.get(pk=falling.pk).resolved_on is None
    sent = {"reason": "科室搬迁，下季度恢复采购", "version": falling.version}

    assert kam.post(f"/sales/churn/{falling.pk}/dismiss/", sent, follow=True).status_code == 200
    again = kam.post(f"/sales/churn/{falling.pk}/dismiss/", sent, follow=True, HTTP_ACCEPT_LANGUAGE="en")

    assert again.status_code == 200 and [str(m) for m in again.context["messages"]] == [
        f"The warning about {bought['falling'].name} was dismissed."]
    assert AuditEntry.objects.filter(object_type="sales.churnsignal", object_id=str(falling.pk),
                                     action="update").count() == 1  # fmt: skip
    assert client_for("manager").post(f"/sales/churn/{falling.pk}/dismiss/", sent).status_code == 404
