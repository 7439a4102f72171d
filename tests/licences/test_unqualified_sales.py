"""Sales while a customer was not qualified (GSP: the buyer's licences are checked before a sale): the days a required
kind had no verified licence in force, the imported orders dated on those days, who reads the review and its export,
and the period's checks — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.utils import timezone, translation
from openpyxl import load_workbook

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import importer, normalise
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import ImportJob
from pharmacrm.licences import services
from pharmacrm.licences.models import Licence
from tests.sales.conftest import line, write_csv

TODAY = timezone.localdate
PRACTICE = "PDY60006X11010217A1001"


def held(kind, issued=None, until=None, verified=True, **extra) -> Licence:
    return Licence(kind=kind, issued_on=issued, valid_until=until,
                   verified_at=timezone.now() if verified else None, **extra)  # fmt: skip


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def test_the_gaps_are_the_days_a_required_kind_had_no_verified_licence_in_force():
    licences = [
        held("business", d("2020-01-01")),  # long-term
        held("drug_trading", d("2021-04-01"), d("2026-03-31")),
        held("drug_trading", d("2026-04-10"), d("2031-04-09"), verified=False),  # the renewal, not checked yet
        held("medical_practice", d("2020-01-01"), d("2030-01-01")),  # not a kind a pharmacy needs
    ]
    gaps = services.gaps(["business", "drug_trading"], licences, d("2026-03-01"), d("2026-06-30"))
    assert [(g.start, g.end, g.lacking, g.unverified) for g in gaps] == [
        (d("2026-04-01"), d("2026-04-09"), ("drug_trading",), ()),
        (d("2026-04-10"), d("2026-06-30"), ("drug_trading",), ("drug_trading",)),
    ]
    with translation.override("en"):
        assert gaps[0].labels == ["Drug trading licence (药品经营许可证)"]
        assert gaps[1].labels == ["Drug trading licence (药品经营许可证) (not verified)"]
    # verified later, the renewal counts for every day of its validity: only the nine days between remain
    licences[2].verified_at = timezone.now()
    assert [(g.start, g.end) for g in services.gaps(["business", "drug_trading"], licences, d("2026-03-01"),
                                                    d("2026-06-30"))] == [(d("2026-04-01"), d("2026-04-09"))]  # fmt: skip
    # nothing recorded: the whole period; two kinds lacking on the same days make one gap naming both
    assert [(g.start, g.end, g.lacking) for g in services.gaps(["business", "drug_trading"], [], d("2026-03-01"),
            d("2026-03-31"))] == [(d("2026-03-01"), d("2026-03-31"), ("business", "drug_trading"))]  # fmt: skip
    # a licence issued inside the period closes the gap from its first day; one without an issue date is in force
    # since always; a type that requires nothing has no gap
    assert [(g.start, g.end) for g in services.gaps(["medical_practice"], [held("medical_practice", d("2026-03-10"))],
            d("2026-03-01"), d("2026-03-31"))] == [(d("2026-03-01"), d("2026-03-09"))]  # fmt: skip
    assert services.gaps(["medical_practice"], [held("medical_practice", None, d("2026-03-31"))], d("2026-03-01"),
                         d("2026-03-31")) == []  # fmt: skip
    assert services.gaps([], [], d("2026-03-01"), d("2026-03-31")) == []


@pytest.fixture
def sold(users, beijing, shanghai, team_north, tmp_path, settings):
    """A Beijing pharmacy (the rep's) whose drug trading licence ran out 80 days ago and whose renewal, 70 days ago,
    is not verified yet; 协和 (Beijing) qualified all along; 瑞金 (Shanghai, outside the rep's territory) with no
    licence. Orders imported through the ERP file: the pharmacy's 85, 75 and 65 days ago, 协和's and 瑞金's 75 days
    ago."""
    settings.VAR_DIR = tmp_path / "var"
    admin = users["admin"]
    pharmacy = customers.create_institution(admin, {
        "name": "北京同仁堂朝阳药店", "kind": "pharmacy", "region": beijing, "owner": users["rep"], "team": team_north,
        "credit_code": normalise.make_credit_code("91110105MA0000000")})  # fmt: skip
    xiehe = customers.create_institution(admin, {
        "name": "北京协和医院", "kind": "hospital", "region": beijing, "owner": users["rep"], "team": team_north,
        "credit_code": normalise.make_credit_code("12100000400000000")})  # fmt: skip
    ruijin = customers.create_institution(admin, {
        "name": "上海交通大学医学院附属瑞金医院", "kind": "hospital", "region": shanghai,
        "credit_code": normalise.make_credit_code("12310000425006125")})  # fmt: skip
    ago = lambda days: TODAY() - dt.timedelta(days=days)  # noqa: E731
    now = timezone.now()
    for institution, kind, number, issued, until, verified in (
        (pharmacy, "business", pharmacy.credit_code, ago(3000), None, now),
        (pharmacy, "drug_trading", "京AA1234567", ago(1900), ago(80), now),
        (pharmacy, "drug_trading", "京AA7654321", ago(70), ago(70) + dt.timedelta(days=1825), None),
        (xiehe, "medical_practice", PRACTICE, ago(1000), ago(-900), now),
    ):  # fmt: skip
        Licence.objects.create(institution=institution, kind=kind, number=number, issued_on=issued, valid_until=until,
                               verified_at=verified, verified_by=users["pv"] if verified else None,
                               recorded_by=users["kam"], scope=["chemical"] if kind == "drug_trading" else [])  # fmt: skip
    rows = [
        line("SO-1", 1, ago(85), pharmacy, "P-1", 10, "12.50"),  # covered
        line("SO-2", 1, ago(75), pharmacy, "P-1", 4, "12.50"),  # no licence in force
        line("SO-2", 2, ago(75), pharmacy, "P-2", 1, "100.00"),
        line("SO-3", 1, ago(65), pharmacy, "P-1", 2, "12.50"),  # the renewal, not verified
        line("SO-4", 1, ago(75), xiehe, "P-1", 8, "12.50"),
        line("SO-5", 1, ago(75), ruijin, "P-1", 1, "12.50"),
    ]
    job = importer.import_file(write_csv(tmp_path / "orders.csv", rows), ImportJob.Target.ORDERS, admin, mode="all")
    assert job.status == ImportJob.Status.DONE, job.errors
    return {"pharmacy": pharmacy, "xiehe": xiehe, "ruijin": ruijin, "from": ago(100), "to": TODAY()}


def test_the_orders_sold_in_a_gap_are_listed_per_customer_with_what_it_lacked(sold, users):
    buyers = services.sales_while_unqualified(users["manager"], sold["from"], sold["to"])
    assert [b.institution.pk for b in buyers] == [sold["ruijin"].pk, sold["pharmacy"].pk]  # by name: 上… before 北…
    pharmacy = buyers[1]
    assert [(s.order_number, s.lines, s.amount_fen) for s in pharmacy.sales] == [("SO-2", 2, 15000), ("SO-3", 1, 2500)]
    assert (pharmacy.orders, pharmacy.lines, pharmacy.amount_fen) == (2, 3, 17500)
    assert [g.unverified for g in pharmacy.sold_gaps] == [(), ("drug_trading",)]
    assert pharmacy.sold_gaps[0].end == TODAY() - dt.timedelta(days=71)  # the day before the renewal's issue
    # the rep sees the customers of the territory and their own: 瑞金 (Shanghai) is not among them
    assert [b.institution.pk for b in services.sales_while_unqualified(users["rep"], sold["from"], sold["to"])] == [
        sold["pharmacy"].pk]
    assert services.sales_while_unqualified(users["manager"], sold["from"], sold["to"], mine=True) == []
    # a period that ends before the gap finds nothing
    assert services.sales_while_unqualified(users["manager"], sold["from"], TODAY() - dt.timedelta(days=81)) == []


@pytest.mark.parametrize("role, allowed, amounts", [
    ("admin", True, True), ("manager", True, True), ("kam", True, True), ("rep", True, True),
    ("analyst", True, True), ("auditor", True, True), ("pv", True, False),
    ("agent", False, False), ("expert", False, False), ("support", False, False), ("aftersales", False, False),
])  # fmt: skip
def test_who_reads_the_review_and_its_export(sold, client_for, users, role, allowed, amounts):
    client = client_for(role)
    query = f"?start={sold['from']}&end={sold['to']}"
    page = client.get(f"/licences/unqualified-sales/{query}", HTTP_ACCEPT_LANGUAGE="en")
    export = client.get(f"/licences/unqualified-sales/{query}&format=xlsx", HTTP_ACCEPT_LANGUAGE="en")
    listing = client.get("/licences/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    if not allowed:
        assert (page.status_code, export.status_code) == (403, 403)
        assert "Sales while unqualified" not in listing
        assert not AuditEntry.objects.filter(action="export", actor=users[role]).exists()
        return
    text = page.content.decode()
    assert page.status_code == 200 and "Sales while unqualified" in listing
    assert "北京同仁堂朝阳药店" in text and "SO-2" in text and "北京协和医院" not in text
    assert ("¥175.00" in text) is amounts and ("Amount" in text) is amounts
    sheet = load_workbook(io.BytesIO(export.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][4] == "Order number" and ("Amount (yuan)" in rows[0]) is amounts
    orders = sorted(r[4] for r in rows[1:])
    assert orders == (["SO-2", "SO-3"] if role == "rep" else ["SO-2", "SO-3", "SO-5"])
    entry = AuditEntry.objects.get(action="export", actor=users[role])
    assert entry.extra["rows"] == len(orders) and entry.extra["period"] == [str(sold["from"]), str(sold["to"])]


def test_the_period_is_checked_and_each_error_names_its_field(client_for, users):
    manager = client_for("manager")
    today = TODAY()
    cases = [
        (f"start={today}&end={today - dt.timedelta(days=1)}", "start", "must not lie after its end"),
        (f"start={today - dt.timedelta(days=400)}&end={today}", "end", "at most 366 days"),
        (f"start={today}&end={today + dt.timedelta(days=1)}", "end", "cannot be in the future"),
        ("start=2026-02-30", "start", "Enter a date as YYYY-MM-DD"),
    ]
    for query, field, words in cases:
        answer = manager.get(f"/licences/unqualified-sales/?{query}", HTTP_ACCEPT_LANGUAGE="en")
        text = answer.content.decode()
        assert answer.status_code == 400 and words in text, query
        assert f'id="field-{field}"' in text and "has-error" in text.split(f'id="field-{field}"')[0][-80:]
        assert manager.get(f"/licences/unqualified-sales/?{query}&format=xlsx").status_code == 400
    chinese = manager.get(f"/licences/unqualified-sales/?{cases[0][0]}").content.decode()
    assert "开始日期不能晚于结束日期" in chinese
    # without a period: the last three months, shown in the form
    page = manager.get("/licences/unqualified-sales/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    start, end = services.default_sales_window()
    assert (start.day, end) == (1, today) and f'value="{start}"' in page and "Nothing was sold" in page
    assert not AuditEntry.objects.filter(action="export").exists()


def test_the_api_gives_the_same_review_with_amounts_only_for_those_who_see_purchases(sold, api_for):
    query = f"?start={sold['from']}&end={sold['to']}"
    manager = api_for("manager").get(f"/api/v1/licences/unqualified-sales/{query}")
    assert manager.status_code == 200
    body = manager.json()
    assert (body["start"], body["end"], body["count"]) == (str(sold["from"]), str(sold["to"]), 2)
    pharmacy = next(r for r in body["results"] if r["customer"] == sold["pharmacy"].pk)
    assert (pharmacy["orders"], pharmacy["lines"], pharmacy["amount"]) == (2, 3, "175.00")
    assert [(x["order_number"], x["amount"], x["gap"]["lacking"], x["gap"]["unverified"]) for x in pharmacy["sales"]] == [
        ("SO-2", "150.00", ["drug_trading"], []), ("SO-3", "25.00", ["drug_trading"], ["drug_trading"])]
    quality = api_for("pv").get(f"/api/v1/licences/unqualified-sales/{query}").json()
    assert quality["count"] == 2 and {r["amount"] for r in quality["results"]} == {None}
    assert {x["amount"] for r in quality["results"] for x in r["sales"]} == {None}
    rep = api_for("rep").get(f"/api/v1/licences/unqualified-sales/{query}").json()
    assert [r["customer"] for r in rep["results"]] == [sold["pharmacy"].pk]
    assert api_for("agent").get(f"/api/v1/licences/unqualified-sales/{query}").status_code == 403
    # the period's errors name their parameter, in the caller's language
    wrong = api_for("manager").get(f"/api/v1/licences/unqualified-sales/?start={sold['to']}&end={sold['from']}")
    assert wrong.status_code == 400 and "must not lie after its end" in wrong.json()["start"][0]
    wrong = api_for("manager", lang="zh-hans").get("/api/v1/licences/unqualified-sales/?start=2026-02-30")
    assert wrong.status_code == 400 and "start" in wrong.json()
