"""Sales targets and attainment (销售目标与达成): hand-computed attainment from imported orders, period boundaries and
the run rate in Beijing days, a customer handed to another owner, the grid (bad amounts, two managers on one cell),
its import (one bad row refuses the file, naming row, column and reason in the reader's language), and who sees what
on the page, the export and the API — on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from pharmacrm.core.models import AuditEntry, Team
from pharmacrm.core.roles import Role
from pharmacrm.customers import normalise
from pharmacrm.customers import services as customers
from pharmacrm.sales import targets
from pharmacrm.sales.models import SalesTarget
from tests.conftest import new_user

from .conftest import line

P = targets.Period
NOV = P("month", 2026, 11)


@pytest.fixture
def world(users, team_north, beijing, admin_user, run_import):
    """The rep and a second rep (rep2) in the North team, the key-account manager leading the East team. Orders:

    - 北京甲医院 (the rep's, North): 2025-11 20,000; 2026-10 5,000; 2026-11 30,000 (two lines, 11-01 and 11-30);
      2026-12-01 7,000
    - 北京乙医院 (rep2's, North): 2026-11 12,000
    - 北京丙医院 (the KAM's, East): 2025-11 10,000; 2026-11 8,000
    """
    east = Team.objects.create(name="华东团队", lead=users["kam"])
    users["kam"].teams.add(east)
    rep2 = new_user("rep2", Role.REP, teams=(team_north,))

    def hospital(name, n, owner, team):
        return customers.create_institution(admin_user, {
            "name": name, "kind": "hospital", "grade": "2A", "region": beijing, "owner": owner, "team": team,
            "credit_code": normalise.make_credit_code(f"1211000060000{n:04d}"),
        })  # fmt: skip

    a = hospital("北京甲医院", 1, users["rep"], team_north)
    b = hospital("北京乙医院", 2, rep2, team_north)
    c = hospital("北京丙医院", 3, users["kam"], east)
    job = run_import([
        line("A-1", 1, "2025-11-15", a, "YP1001", 1, "20000"),
        line("A-2", 1, "2026-10-31", a, "YP1001", 1, "5000"),
        line("A-3", 1, "2026-11-01", a, "YP1001", 1, "10000"),
        line("A-4", 1, "2026-11-30", a, "YP1001", 2, "10000"),
        line("A-5", 1, "2026-12-01", a, "YP1001", 1, "7000"),
        line("B-1", 1, "2026-11-20", b, "YP1001", 1, "12000"),
        line("C-1", 1, "2025-11-03", c, "YP1001", 1, "10000"),
        line("C-2", 1, "2026-11-03", c, "YP1001", 1, "8000"),
    ])  # fmt: skip
    assert job.error_count == 0, job.errors
    manager = users["manager"]
    targets.apply(manager, [
        targets.Change(users["rep"], NOV, 4_000_000), targets.Change(rep2, NOV, 1_000_000),
        targets.Change(team_north, NOV, 6_000_000), targets.Change(users["rep"], P("month", 2026, 10), 1_000_000),
        targets.Change(users["rep"], P("month", 2026, 12), 2_000_000),
    ])  # fmt: skip
    return {"rep": users["rep"], "rep2": rep2, "kam": users["kam"], "north": team_north, "east": east,
            "a": a, "b": b, "c": c}  # fmt: skip


def rows_of(rep: targets.Report) -> dict[str, targets.Row]:
    return {r.label: r for r in [*rep.people, *rep.teams]}


def test_attainment_of_a_month_hand_computed(world, users):
    rep = targets.report(users["manager"], NOV, today=dt.date(2026, 11, 10))
    assert (rep.days, rep.elapsed, rep.elapsed_pct) == (30, 10, Decimal("33.3"))
    rows = rows_of(rep)
    r = rows["rep"]
    assert (r.target, r.actual, r.attainment_pct, r.gap) == (Decimal("40000.00"), Decimal("30000.00"), Decimal("75.0"),
                                                             Decimal("10000.00"))  # fmt: skip
    assert (r.last_year, r.growth_pct, r.projected, r.on_pace) == (Decimal("20000.00"), Decimal("50.0"),
                                                                   Decimal("90000.00"), True)  # fmt: skip
    r2 = rows["rep2"]
    assert (r2.attainment_pct, r2.gap, r2.growth_pct) == (Decimal("120.0"), Decimal("-2000.00"), None)
    kam = rows["kam"]
    assert (kam.target, kam.attainment_pct, kam.actual, kam.growth_pct, kam.on_pace) == (
        None, None, Decimal("8000.00"), Decimal("-20.0"), None)  # fmt: skip
    north, east = rows["华北团队"], rows["华东团队"]
    assert (north.target, north.actual, north.attainment_pct, north.last_year, north.growth_pct) == (
        Decimal("60000.00"), Decimal("42000.00"), Decimal("70.0"), Decimal("20000.00"), Decimal("110.0"))  # fmt: skip
    assert (east.target, east.actual) == (None, Decimal("8000.00"))
    total = rep.people_total
    assert (total.target, total.actual, total.last_year) == (
        Decimal("50000.00"),
        Decimal("50000.00"),
        Decimal("30000.00"),
    )
    # most attained first, those without a target last
    assert [r.label for r in rep.people] == ["rep2", "rep", "kam"]


def test_a_quarter_counts_its_months_targets_and_a_year_its_quarters_unless_set(world, users, team_north):
    q4 = targets.report(users["manager"], P("quarter", 2026, 4), today=dt.date(2026, 12, 5))
    assert (q4.days, q4.elapsed) == (92, 31 + 30 + 5)
    r = rows_of(q4)["rep"]
    assert (r.target, r.actual, r.attainment_pct) == (
        Decimal("70000.00"),
        Decimal("42000.00"),
        Decimal("60.0"),
    )
    # a quarter's own target wins over its months'
    targets.apply(users["manager"], [targets.Change(users["rep"], P("quarter", 2026, 4), 8_400_000)])
    r = rows_of(targets.report(users["manager"], P("quarter", 2026, 4)))["rep"]
    assert (r.target, r.attainment_pct) == (Decimal("84000.00"), Decimal("50.0"))
    year = rows_of(targets.report(users["manager"], P("year", 2026)))["rep"]
    assert (year.target, year.actual, year.last_year) == (
        Decimal("84000.00"),
        Decimal("42000.00"),
        Decimal("20000.00"),
    )


def test_period_boundaries_are_the_months_of_the_order_dates_and_the_run_rate_counts_beijing_days(
    world, users
):
    dec = rows_of(targets.report(users["manager"], P("month", 2026, 12), today=dt.date(2026, 12, 1)))["rep"]
    assert dec.actual == Decimal("7000.00")  # 12-01 is December's, 11-30 November's
    assert targets.elapsed_days(P("month", 2026, 12), dt.date(2026, 12, 1)) == (31, 1)
    assert targets.elapsed_days(NOV, dt.date(2026, 12, 1)) == (30, 30)
    assert targets.elapsed_days(P("month", 2027, 1), dt.date(2026, 12, 31)) == (31, 0)
    # 16:30 UTC on 30 November is half past midnight on 1 December in Beijing
    assert targets.beijing_today(dt.datetime(2026, 11, 30, 16, 30, tzinfo=dt.UTC)) == dt.date(2026, 12, 1)
    future = rows_of(targets.report(users["manager"], P("month", 2027, 1), today=dt.date(2026, 12, 31)))
    assert future == {}  # no target, no purchases: nobody to show
    behind = rows_of(targets.report(users["manager"], NOV, today=dt.date(2026, 11, 28)))["rep"]
    assert behind.on_pace is False  # 75 % of the target with 28 of 30 days gone


def test_a_customer_handed_to_another_owner_takes_its_purchases_with_it(world, users):
    a = world["a"]
    customers.update_institution(users["manager"], a, {"owner": world["rep2"]}, version=a.version)
    rows = rows_of(targets.report(users["manager"], NOV, today=dt.date(2026, 11, 10)))
    assert rows["rep"].actual == Decimal("0.00") and rows["rep"].attainment_pct == Decimal("0.0")
    assert (rows["rep2"].actual, rows["rep2"].last_year) == (Decimal("42000.00"), Decimal("20000.00"))
    assert rows["华北团队"].actual == Decimal("42000.00")  # the customer's team did not change


def test_the_report_costs_the_same_queries_for_one_customer_as_for_many(world, users, admin_user, beijing, run_import,
                                                                       django_assert_num_queries):  # fmt: skip
    manager = users["manager"]
    manager.roles  # noqa: B018 (the roles, read once per request by the middleware)
    with django_assert_num_queries(
        5
    ):  # teams, owners' sums, teams' sums, targets, names … and nothing per row
        targets.report(manager, NOV)
    more = []
    for n in range(8):
        owner = new_user(f"rep-{n}", Role.REP)
        inst = customers.create_institution(admin_user, {
            "name": f"北京第{n}医院", "kind": "hospital", "region": beijing, "owner": owner, "team": world["north"],
            "credit_code": normalise.make_credit_code(f"1211000070000{n:04d}"),
        })  # fmt: skip
        more += [line(f"M-{n}-{m}", 1, f"2026-{m:02d}-10", inst, "YP1001", 1, "300") for m in range(1, 12)]
    assert run_import(more).error_count == 0
    manager = type(manager).objects.get(pk=manager.pk)
    manager.roles  # noqa: B018
    with django_assert_num_queries(5):
        rep = targets.report(manager, NOV)
    assert len(rep.people) == 11


# --- amounts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "fen"), [
    ("1200000", 120_000_000), ("1,200,000.50", 120_000_050), ("¥ 3000", 300_000), ("１２００", 120_000), ("", None),
    ("999999999999.99", 99_999_999_999_999), (Decimal("0"), 0),
])  # fmt: skip
def test_amounts_as_typed(raw, fen):
    assert targets.amount_fen(raw) == fen


@pytest.mark.parametrize(("raw", "reason"), [
    ("-5", "a target cannot be negative"), ("abc", "not a number"), ("1e400", "at most 12 digits"),
    ("1000000000000", "at most 12 digits before the decimal point"), ("12.345", "at most two decimal places"),
    ("NaN", "not a number"),
])  # fmt: skip
def test_bad_amounts_are_refused_with_the_reason(raw, reason):
    from django.core.exceptions import ValidationError
    from django.utils import translation

    with translation.override("en"), pytest.raises(ValidationError) as e:
        targets.amount_fen(raw)
    assert reason in " ".join(e.value.messages)


# --- the grid ------------------------------------------------------------------------------------------


def grid_post(client, year: int, cells: dict[str, str], lang: str = "en"):
    """Post the grid as loaded, with `cells` ({"u12-11": "40000"}) changed."""
    page = client.get(f"/sales/targets/grid/?year={year}").content.decode()
    data = dict(re.findall(r'name="([cv]-[ut]\d+-\d+)" value="([^"]*)"', page))
    data["year"] = str(year)
    for key, value in cells.items():
        data[f"c-{key}"] = value
    return client.post("/sales/targets/grid/", data, HTTP_ACCEPT_LANGUAGE=lang)


def test_the_grid_saves_changed_cells_audited_and_refuses_a_bad_one_saving_nothing(world, client_for, users):
    manager = client_for("manager")
    rep = users["rep"]
    r = grid_post(manager, 2026, {f"u{rep.pk}-1": "50000", f"u{rep.pk}-2": "-3", f"u{rep.pk}-3": "十万",
                                  f"u{rep.pk}-4": "1000000000000"})  # fmt: skip
    assert r.status_code == 400
    text = r.content.decode()
    assert "Nothing was saved" in text
    assert "rep 2026-02: a target cannot be negative" in text
    assert "rep 2026-03: not a number" in text
    assert "rep 2026-04: at most 12 digits before the decimal point" in text
    assert not SalesTarget.objects.filter(user=rep, year=2026, kind="month", number=1).exists()
    before = AuditEntry.objects.filter(object_type="sales.salestarget").count()
    r = grid_post(manager, 2026, {f"u{rep.pk}-1": "50000", f"u{rep.pk}-11": "45,000", f"u{rep.pk}-12": ""})
    assert r.status_code == 302
    got = {t.number: t.amount_fen for t in SalesTarget.objects.filter(user=rep, year=2026, kind="month")}
    assert got == {1: 5_000_000, 10: 1_000_000, 11: 4_500_000}  # December's target removed
    entries = AuditEntry.objects.filter(object_type="sales.salestarget").order_by("id")[before:]
    assert sorted(e.action for e in entries) == ["create", "delete", "update"]
    update = next(e for e in entries if e.action == "update")
    assert update.changes == {"amount": ["40000.00", "45000.00"]} and update.extra["period"] == "2026-11"


def test_two_managers_saving_the_same_cell_the_second_is_refused(world, client_for, users):
    first, second = client_for("manager"), client_for("admin")
    rep = users["rep"]
    page = second.get("/sales/targets/grid/?year=2026").content.decode()  # the admin opens the grid …
    assert grid_post(first, 2026, {f"u{rep.pk}-11": "41000"}).status_code == 302  # … the manager saves first
    data = dict(re.findall(r'name="([cv]-[ut]\d+-\d+)" value="([^"]*)"', page))
    data.update({"year": "2026", f"c-u{rep.pk}-11": "39000", f"c-u{rep.pk}-5": "1000"})
    r = second.post("/sales/targets/grid/", data, HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 409
    assert "Someone else changed these targets" in r.content.decode() and "rep 2026-11" in r.content.decode()
    assert SalesTarget.objects.get(user=rep, year=2026, kind="month", number=11).amount_fen == 4_100_000
    assert not SalesTarget.objects.filter(user=rep, year=2026, number=5).exists()  # nothing of it saved


def test_only_managers_and_administrators_set_targets(world, client_for):
    for role in ("rep", "kam", "analyst", "auditor", "agent"):
        assert client_for(role).get("/sales/targets/grid/").status_code == 403, role
        assert client_for(role).post("/sales/targets/grid/", {"year": "2026"}).status_code == 403, role
    assert client_for("manager").get("/sales/targets/grid/?year=2026").status_code == 200
    assert client_for("manager").get("/sales/targets/grid/?year=２０２６").status_code == 400


# --- the grid's import -----------------------------------------------------------------------------------


def csv_upload(rows: list[list[str]], name: str = "targets.csv") -> SimpleUploadedFile:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return SimpleUploadedFile(name, out.getvalue().encode("utf-8-sig"), content_type="text/csv")


def test_an_import_with_one_bad_row_saves_nothing_and_names_row_column_and_reason(world, client_for, users):
    rows = [["人员或团队", "1月", "2月", "3月"], ["rep", "10000", "20000", "30000"], ["华北团队", "50000", "-1", ""],
            ["nobody", "1", "2", "3"]]  # fmt: skip
    manager = client_for("manager")
    r = manager.post("/sales/targets/grid/import/", {"year": "2026", "file": csv_upload(rows)})
    assert r.status_code == 400
    text = r.content.decode()
    assert "第 3 行，C 列：-1：目标不能为负数" in text, text[text.find("import-errors") :][:600]
    assert "第 4 行，A 列：nobody：没有这个在职用户或团队" in text
    assert SalesTarget.objects.filter(year=2026, number__in=(1, 2, 3), kind="month").count() == 0
    r = manager.post("/sales/targets/grid/import/", {"year": "2026", "file": csv_upload(rows)},
                     HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert "Row 3, column C: -1: a target cannot be negative" in r.content.decode()


def test_an_xlsx_grid_is_imported_whole_and_audited(world, client_for, users):
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["Person or team", "2026-01", "2026-02"])
    book.active.append(["rep", 11000, 12000.5])
    book.active.append(["华北团队", 30000, None])
    data = io.BytesIO()
    book.save(data)
    upload = SimpleUploadedFile("grid.xlsx", data.getvalue())
    before = AuditEntry.objects.filter(object_type="sales.salestarget", action="create").count()
    r = client_for("manager").post("/sales/targets/grid/import/", {"year": "2026", "file": upload})
    assert r.status_code == 302
    rep = users["rep"]
    assert SalesTarget.objects.get(user=rep, year=2026, kind="month", number=2).amount_fen == 1_200_050
    assert (
        SalesTarget.objects.get(team=world["north"], year=2026, kind="month", number=1).amount_fen
        == 3_000_000
    )
    assert AuditEntry.objects.filter(object_type="sales.salestarget", action="create").count() == before + 3
    imported = AuditEntry.objects.filter(object_type="sales.salestarget", action="import").latest("id")
    assert (imported.extra["file"], imported.extra["year"], imported.extra["changed"]) == ("grid.xlsx", 2026, 3)
    # the downloaded grid reads back as the same targets
    export = client_for("manager").get("/sales/targets/grid/export.xlsx?year=2026")
    assert export.status_code == 200
    again = SimpleUploadedFile("again.xlsx", export.content)
    assert (
        client_for("manager").post("/sales/targets/grid/import/", {"year": "2026", "file": again}).status_code
        == 302
    )


@pytest.mark.parametrize(("name", "content", "message"), [
    ("grid.xlsx", b"PK\x03\x04 not really a workbook", "The file"),
    ("grid.pdf", b"%PDF-1.4", "Only .csv and .xlsx files can be imported."),
    ("grid.csv", b"", "The file is empty."),
    ("grid.csv", "人员,金额\nrep,1\n".encode(), "Row 1, column B: not a month"),
    ("grid.csv", "人员\nrep\n".encode(), "The header row names no month"),
])  # fmt: skip
def test_a_broken_or_wrong_file_is_refused_clearly(world, client_for, name, content, message):
    r = client_for("manager").post("/sales/targets/grid/import/", {"year": "2026", "file": SimpleUploadedFile(name, content)},
                                   HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 400
    assert message in r.content.decode()
    assert SalesTarget.objects.filter(year=2026, number=1).count() == 0


def test_a_file_over_the_limit_is_refused(world, client_for, monkeypatch):
    monkeypatch.setattr(targets, "IMPORT_MAX_BYTES", 100)
    upload = csv_upload([["人员", "1月"], *[["rep", "1"]] * 40])
    r = client_for("manager").post("/sales/targets/grid/import/", {"year": "2026", "file": upload},
                                   HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 400 and "The file is too large" in r.content.decode()


# --- who sees what -------------------------------------------------------------------------------------


SEE_ALL = ("admin", "manager", "analyst", "auditor")
DENIED = ("agent", "expert", "support", "aftersales", "pv")


def test_the_page_per_role(world, client_for, users):
    rep, rep2, kam = users["rep"], world["rep2"], users["kam"]
    for role in SEE_ALL:
        page = client_for(role).get("/sales/targets/?period=2026-11")
        assert page.status_code == 200, role
        text = page.content.decode()
        for row in (
            f"u{rep.pk}",
            f"u{rep2.pk}",
            f"u{kam.pk}",
            f"t{world['north'].pk}",
            f"t{world['east'].pk}",
        ):
            assert f'data-row="{row}"' in text, (role, row)
        assert 'id="targets-data"' in text and "vendor/echarts/echarts.min.js" in text
        row = text.split(f'data-row="u{rep2.pk}"')[1].split("</tr>")[0]
        assert '<td class="num" data-col="gap">-¥2,000.00</td>' in row, role  # exceeded: the sign before the ¥
    text = client_for("rep").get("/sales/targets/?period=2026-11").content.decode()
    assert f'data-row="u{rep.pk}"' in text and f'data-row="t{world["north"].pk}"' in text
    assert f'data-row="u{rep2.pk}"' not in text and f'data-row="u{kam.pk}"' not in text
    assert f'data-row="t{world["east"].pk}"' not in text
    text = client_for("kam").get("/sales/targets/?period=2026-11").content.decode()  # leads the East team
    assert f'data-row="u{kam.pk}"' in text and f'data-row="t{world["east"].pk}"' in text
    assert f'data-row="u{rep.pk}"' not in text and f'data-row="t{world["north"].pk}"' not in text
    for role in DENIED:
        assert client_for(role).get("/sales/targets/").status_code == 403, role
    assert client_for("manager").get("/sales/targets/?period=2026-13").status_code == 400


def test_the_export_per_role_is_audited(world, client_for, users):
    from openpyxl import load_workbook

    for role in (*SEE_ALL, "rep", "kam"):
        r = client_for(role).get("/sales/targets/export.xlsx?period=2026-11")
        assert r.status_code == 200, role
        names = [
            row[0] for row in load_workbook(io.BytesIO(r.content)).active.iter_rows(values_only=True) if row
        ]
        if role == "rep":
            assert "rep" in names and "rep2" not in names and "华东团队" not in names
        if role in SEE_ALL:
            assert {"rep", "rep2", "kam", "华北团队", "华东团队"} <= set(names)
    for role in DENIED:
        assert client_for(role).get("/sales/targets/export.xlsx?period=2026-11").status_code == 403, role
    entry = AuditEntry.objects.filter(action="export", object_type="sales.salestarget").latest("id")
    assert entry.extra["period"] == "2026-11"


def test_the_api_per_role(world, api_for, users):
    rep, rep2 = users["rep"], world["rep2"]
    for role in SEE_ALL:
        body = api_for(role).get("/api/v1/sales/attainment/?period=2026-11").json()
        assert {r["name"] for r in body["people"]} == {"rep", "rep2", "kam"}, role
        assert len(api_for(role).get("/api/v1/sales/targets/?year=2026").json()["results"]) == 5
    body = api_for("rep").get("/api/v1/sales/attainment/?period=2026-11").json()
    assert body["scope"] == "own" and [r["key"] for r in body["people"]] == [f"u{rep.pk}"]
    assert [r["name"] for r in body["teams"]] == ["华北团队"]
    mine = api_for("rep").get("/api/v1/sales/targets/").json()["results"]
    assert {(t["rep"], t["team"]) for t in mine} == {(rep.pk, None), (None, world["north"].pk)}
    assert all(t["rep"] != rep2.pk for t in mine)
    for role in DENIED:
        assert api_for(role).get("/api/v1/sales/attainment/").status_code == 403, role
        assert api_for(role).get("/api/v1/sales/targets/").status_code == 403, role
    r = api_for("manager").get("/api/v1/sales/attainment/?period=2026-Q5")
    assert r.status_code == 400 and list(r.json()) == ["period"]
    zh = api_for("manager", lang="zh-hans").get("/api/v1/sales/attainment/?period=11/2026")
    assert zh.status_code == 400 and "季度" in zh.json()["period"][0]
    assert api_for("rep").post("/api/v1/sales/targets/", {"period": "2026-11", "rep": rep.pk, "amount": "1"},
                               format="json").status_code == 403  # fmt: skip


def test_the_api_sets_changes_and_removes_a_target_with_its_version(world, api_for, users):
    api = api_for("manager")
    kam = users["kam"]
    r = api.post(
        "/api/v1/sales/targets/", {"period": "2026-Q4", "rep": kam.pk, "amount": "25000.50"}, format="json"
    )
    assert r.status_code == 201, r.json()
    made = r.json()
    assert (made["period"], made["amount"], made["version"]) == ("2026-Q4", "25000.50", 1)
    again = api.post(
        "/api/v1/sales/targets/", {"period": "2026-Q4", "rep": kam.pk, "amount": "1"}, format="json"
    )
    assert again.status_code == 400 and "period" in again.json()
    for bad, field in (({"period": "2026-11", "rep": kam.pk, "amount": "-1"}, "amount"),
                       ({"period": "2026-11", "rep": kam.pk, "amount": "abc"}, "amount"),
                       ({"period": "2026-11", "rep": kam.pk, "amount": "1000000000000"}, "amount"),
                       ({"period": "2026-11", "amount": "1"}, "rep"),
                       ({"period": "2026-11", "rep": kam.pk, "team": world["east"].pk, "amount": "1"}, "rep")):  # fmt: skip
        r = api.post("/api/v1/sales/targets/", bad, format="json")
        assert r.status_code == 400 and field in r.json(), (bad, r.json())
    url = f"/api/v1/sales/targets/{made['id']}/"
    assert api.patch(url, {"amount": "30000", "version": 1}, format="json").json()["version"] == 2
    stale = api.patch(url, {"amount": "31000", "version": 1}, format="json")
    assert stale.status_code == 409
    assert SalesTarget.objects.get(pk=made["id"]).amount_fen == 3_000_000
    assert api.delete(url).status_code == 204
    assert not SalesTarget.objects.filter(pk=made["id"]).exists()
    assert AuditEntry.objects.filter(object_type="sales.salestarget", object_id=str(made["id"])).count() == 3


def test_the_navigation_links_the_page_for_those_who_see_every_row_and_for_reps(world, client_for):
    assert 'href="/sales/targets/"' in client_for("manager").get("/").content.decode()
    assert 'href="/sales/targets/"' in client_for("rep").get("/").content.decode()
    assert 'href="/sales/targets/"' not in client_for("agent").get("/").content.decode()
    # a team lead who is no rep finds it on the order list
    assert 'href="/sales/targets/"' in client_for("kam").get("/sales/orders/").content.decode()


def test_the_demo_sets_this_years_targets_a_tenth_above_last_years_months_once(world, users):
    from pharmacrm.sales import demo

    SalesTarget.objects.all().delete()
    assert demo.load_targets(dt.date(2026, 12, 5)) == 4  # November for the rep, the KAM and both teams
    got = {(t.user_id, t.team_id, t.number): t.amount_fen for t in SalesTarget.objects.filter(year=2026)}
    assert got == {(users["rep"].pk, None, 11): 2_200_000, (users["kam"].pk, None, 11): 1_100_000,
                   (None, world["north"].pk, 11): 2_200_000, (None, world["east"].pk, 11): 1_100_000}  # fmt: skip
    assert demo.load_targets(dt.date(2026, 12, 5)) == 0
    entry = AuditEntry.objects.filter(object_type="sales.salestarget").latest("id")
    assert entry.actor.username == "manager" and entry.extra["source"] == "demo"


def test_the_page_the_grid_and_a_grid_save_cost_the_same_queries_for_three_owners_as_for_eleven(
    world, client_for, users, admin_user, beijing, run_import
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    manager = client_for("manager")

    def costs() -> list[int]:
        out = []
        for url in ("/sales/targets/?period=2026-11", "/sales/targets/grid/?year=2026"):
            manager.get(url)  # sessions, caches
            with CaptureQueriesContext(connection) as q:
                assert manager.get(url).status_code == 200
            out.append(len(q))
        with CaptureQueriesContext(connection) as q:
            assert grid_post(manager, 2026, {}).status_code == 302  # the grid read and sent back unchanged
        out.append(len(q))
        return out

    few = costs()
    more = []
    for n in range(8):
        owner = new_user(f"rep-{n}", Role.REP)
        inst = customers.create_institution(admin_user, {
            "name": f"北京第{n}医院", "kind": "hospital", "region": beijing, "owner": owner, "team": world["north"],
            "credit_code": normalise.make_credit_code(f"1211000080000{n:04d}"),
        })  # fmt: skip
        more.append(line(f"N-{n}", 1, "2026-11-10", inst, "YP1001", 1, "300"))
    assert run_import(more).error_count == 0
    targets.apply(users["manager"], [targets.Change(u, NOV, 100_000) for u in type(users["rep"]).objects.filter(
        username__startswith="rep-")])  # fmt: skip
    assert costs() == few


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_managers_entering_the_first_target_of_a_cell_at_once_the_second_is_refused_not_an_error(users):
    from tests.concurrency import held_while

    rep, jan = users["rep"], P("month", 2027, 1)
    outcome = []

    def second():
        try:
            targets.apply(users["admin"], [targets.Change(rep, jan, 900_000, 0, "rep 2027-01")])
        except targets.CellConflict as e:
            outcome.append(("conflict", e.labels))
        except Exception as e:  # noqa: BLE001 (what the test reports)
            outcome.append(("error", repr(e)))
        else:
            outcome.append(("saved", None))

    held_while(lambda: targets.apply(users["manager"], [targets.Change(rep, jan, 500_000, 0)]), second)
    assert outcome == [("conflict", ["rep 2027-01"])]
    assert SalesTarget.objects.get(user=rep, year=2027).amount_fen == 500_000


def test_a_grid_opened_before_a_new_rep_joined_leaves_the_new_reps_targets_alone(world, client_for, users):
    manager = client_for("manager")
    page = manager.get("/sales/targets/grid/?year=2026").content.decode()
    newcomer = new_user("rep-new", Role.REP)
    targets.apply(users["admin"], [targets.Change(newcomer, NOV, 700_000)])
    data = dict(re.findall(r'name="([cv]-[ut]\d+-\d+)" value="([^"]*)"', page))
    data.update({"year": "2026", f"c-u{users['rep'].pk}-1": "1000"})
    assert manager.post("/sales/targets/grid/", data).status_code == 302
    assert SalesTarget.objects.get(user=newcomer).amount_fen == 700_000
    assert SalesTarget.objects.get(user=users["rep"], year=2026, number=1).amount_fen == 100_000


def test_the_grid_saved_twice_saves_once_and_the_second_says_what_the_first_saved(world, client_for, users):
    """A double click on Save: the second sending found every cell as the first left it and answered "Nothing was
    changed." — as if the save had not happened; it now says what the first one saved."""
    manager, rep = client_for("manager"), users["rep"]
    page = manager.get("/sales/targets/grid/?year=2026").content.decode()
    data = dict(re.findall(r'name="([cv]-[ut]\d+-\d+|form_token)" value="([^"]*)"', page))
    assert data["form_token"]
    data.update({"year": "2026", f"c-u{rep.pk}-1": "50000", f"c-u{rep.pk}-2": "52000"})
    before = AuditEntry.objects.filter(object_type="sales.salestarget").count()

    first = manager.post("/sales/targets/grid/", data, HTTP_ACCEPT_LANGUAGE="en", follow=True)
    again = manager.post("/sales/targets/grid/", data, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    assert [str(m) for m in first.context["messages"]] == [str(m) for m in again.context["messages"]] == [
        "2 targets saved."]
    assert AuditEntry.objects.filter(object_type="sales.salestarget").count() == before + 2


def test_one_target_saved_is_said_in_the_singular(world, client_for, users):
    """The grid said "1 targets saved." after one cell was changed."""
    manager, rep = client_for("manager"), users["rep"]
    page = manager.get("/sales/targets/grid/?year=2026").content.decode()
    data = dict(re.findall(r'name="([cv]-[ut]\d+-\d+|form_token)" value="([^"]*)"', page))
    data.update({"year": "2026", f"c-u{rep.pk}-3": "61000"})
    done = manager.post("/sales/targets/grid/", data, HTTP_ACCEPT_LANGUAGE="en", follow=True)
    assert [str(m) for m in done.context["messages"]] == ["1 target saved."]


def test_the_chinese_page_joins_its_sentences_and_labels_its_error_as_chinese_is_written(world, client_for):
    """The note under the title read "…作为对比。 实际：…" (a space after 。, from the template's line breaks) and a bad
    period "期间: …" with an ASCII colon."""
    import re

    text = client_for("rep").get("/sales/targets/?period=2026-11", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    note = re.search(r'<p class="muted small" id="attribution">(.*?)</p>', text, re.S).group(1)
    assert "。" in note and not re.search(r"。\s", note), note
    bad = client_for("manager").get("/sales/targets/?period=2026-13", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert re.search(r'id="id_period_error"[^>]*>[^<]*：', bad) and not re.search(r'id="id_period_error"[^>]*>[^<:]*: ', bad)
