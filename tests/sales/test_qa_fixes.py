"""QA fixes for purchases (issue 5): figures rounded the way people round (13.25 → 13.3); the order-line
filters (order number by prefix in any letter case, invalid values named rather than ignored, key accounts by
their key-account file, in the page and the API and its schema); the API import's duplicate naming the first
line by its position; and lines whose product code the catalogue does not know, imported but counted in the
import's summary (wizard, command line, API)."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from pharmacrm.customers import importer as base
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales import services
from pharmacrm.sales.importer import UNKNOWN_CODES_SHOWN
from pharmacrm.sales.models import OrderLine
from pharmacrm.servicedesk.models import Product
from tests.keyaccounts.programme_fixtures import *  # noqa: F403

from .conftest import line, today_minus, write_csv

BADGE = 'class="badge tier-key ka-badge"'


def _en(client, url: str, **params):
    return client.get(url, params, HTTP_ACCEPT_LANGUAGE="en")


def _shown(page: str) -> set[str]:
    """order/line of the lines the order list shows."""
    return set(re.findall(r'<td class="mono nowrap">([^<]+)</td>', page))


# --- rounding: 四舍五入 ----------------------------------------------------------------------------


@pytest.fixture
def late_payer(run_import, xiehe):
    """One line paid on time (¥24.69) and four paid late (¥175.31 together) by 13, 13, 13 and 14 days:
    on time 2469 / 20000 = 0.12345 of the amount due, 53 / 4 = 13.25 days late on average."""
    day = today_minus(90)
    due = day + dt.timedelta(days=30)

    def late(n, amount, days):
        return line("RD-1", n, day, xiehe, f"P{n}", 1, amount, payment_due=due, paid_date=due + dt.timedelta(days=days))

    job = run_import([
        line("RD-1", 1, day, xiehe, "P1", 1, "24.69", payment_due=due, paid_date=due),
        late(2, "43.82", 13), late(3, "43.83", 13), late(4, "43.83", 13), late(5, "43.83", 14),
    ])  # fmt: skip
    assert job.error_count == 0, job.errors
    return xiehe


def test_the_average_days_late_and_the_on_time_share_round_half_up(late_payer):
    credit = services.credit(late_payer.pk)

    assert str(credit.average_days_late) == "13.3"  # half to even gave 13.2
    assert str(credit.on_time_share) == "0.1235"  # half to even gave 0.1234
    assert str(credit.on_time_percent) == "12.3"  # 12.345 % rounded once, not 12.35 → 12.4


def test_the_purchases_panel_and_the_api_show_the_rounded_figures(client_for, api_for, late_payer):
    page = _en(client_for("kam"), f"/sales/customers/{late_payer.pk}/purchases/").content.decode()
    assert re.search(r'data-credit="days_late">13\.3<', page)
    assert re.search(r'data-credit="on_time">12\.3%<', page)

    credit = api_for("kam").get(f"/api/v1/sales/customers/{late_payer.pk}/purchases/").json()["credit"]
    assert (credit["average_days_late"], credit["on_time_share"]) == ("13.3", "0.1235")


def test_sales_rounds_every_displayed_figure_half_up():
    assert services.half_up(Decimal("13.25"), "0.1") == Decimal("13.3")
    assert services.half_up(Decimal("2.5"), "1") == Decimal("3")
    assert services.half_up(Decimal("-13.25"), "0.1") == Decimal("-13.3")


# --- the order-line filters ------------------------------------------------------------------------


@pytest.fixture
def orders(run_import, xiehe, huashan):
    """Lines of 协和 (XS2026-0301, XS2026-0315) and 华山 (XS2025-1201, YP-1)."""
    day = today_minus(20)
    job = run_import([
        line("XS2026-0301", 1, day, xiehe, "YP1001", 1, "10", batch_number="A260112"),
        line("XS2026-0301", 2, day, xiehe, "YP1003", 1, "10"),
        line("XS2026-0315", 1, today_minus(5), xiehe, "YP1001", 1, "10"),
        line("XS2025-1201", 1, today_minus(40), huashan, "YP1002", 1, "10"),
    ])  # fmt: skip
    assert job.error_count == 0, job.errors
    return xiehe, huashan


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("xs2026-0301", {"XS2026-0301/1", "XS2026-0301/2"}),  # QA: found nothing
        ("XS2026-0301", {"XS2026-0301/1", "XS2026-0301/2"}),
        ("xs2026-03", {"XS2026-0301/1", "XS2026-0301/2", "XS2026-0315/1"}),
        ("Xs2026", {"XS2026-0301/1", "XS2026-0301/2", "XS2026-0315/1"}),
        ("  xs2025 ", {"XS2025-1201/1"}),
        ("xs2027", set()),
        ("S2026", set()),  # a prefix, not a substring
        ("XS2026%", set()),  # no wildcards
        ("XS2026_0301", set()),
    ],
)
def test_the_order_number_filter_takes_a_prefix_in_any_case(client_for, orders, typed, shown):
    page = _en(client_for("manager"), "/sales/orders/", order=typed).content.decode()

    assert _shown(page) == shown


def test_product_and_batch_codes_match_in_any_case(client_for, orders):
    client = client_for("manager")

    assert _shown(_en(client, "/sales/orders/", product="yp1001").content.decode()) == {
        "XS2026-0301/1", "XS2026-0315/1"
    }
    assert _shown(_en(client, "/sales/orders/", batch="a260112").content.decode()) == {"XS2026-0301/1"}


def test_the_api_order_number_filter_takes_the_same_prefix(api_for, orders):
    data = api_for("manager").get("/api/v1/order-lines/", {"order_number": "xs2026-03"}).json()

    assert sorted(f"{r['order_number']}/{r['line_number']}" for r in data["results"]) == [
        "XS2026-0301/1", "XS2026-0301/2", "XS2026-0315/1"
    ]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"date_from": "2026-13-45"}, "date_from", "Enter a valid date."),
        ({"date_to": "yesterday"}, "date_to", "Enter a valid date."),
        ({"date_from": "2026-03-10", "date_to": "2026-03-01"}, "date_to", "This date lies before “Ordered from”."),
        ({"order": "X" * 41}, "order", "Ensure this value has at most 40 characters (it has 41)."),
    ],
)
def test_an_invalid_filter_value_is_named_under_its_field_and_lists_nothing(client_for, orders, query, field,
                                                                            message):  # fmt: skip
    response = _en(client_for("manager"), "/sales/orders/", **query)
    page = response.content.decode()

    assert response.status_code == 200
    section = page.split(f'id="field-{field}"')[1].split('id="field-')[0]
    assert "has-error" in page.split(f'id="field-{field}"')[0].rsplit("<div", 1)[1]
    assert message in section.replace("&ldquo;", "“").replace("&rdquo;", "”").replace("&#x27;", "'")
    assert "Please correct the fields marked below." in page
    assert _shown(page) == set()  # not every line, as if the filter had not been given


def test_an_export_with_an_invalid_filter_exports_nothing_and_says_why(client_for, orders):
    response = _en(client_for("manager"), "/sales/orders/export.csv", date_from="2026-02-30")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert "Enter a valid date." in response.content.decode()


@pytest.mark.parametrize(
    ("params", "field"),
    [({"date_from": "2026-02-30"}, "date_from"), ({"date_from": "2026-03-10", "date_to": "2026-03-01"}, "date_to"),
     ({"key_account": "perhaps"}, "key_account"), ({"customer": "abc"}, "customer")],
)  # fmt: skip
def test_an_invalid_api_filter_value_answers_400_naming_the_parameter(api_for, orders, params, field):
    response = api_for("manager").get("/api/v1/order-lines/", params)

    assert response.status_code == 400
    assert field in response.json()


# --- key accounts in the order lines --------------------------------------------------------------


@pytest.fixture
def key_orders(orders, listed):
    xiehe, huashan = orders
    listed(xiehe)
    return xiehe, huashan


def test_the_order_list_marks_and_filters_the_lines_of_key_accounts(client_for, key_orders):
    client = client_for("manager")

    page = _en(client, "/sales/orders/").content.decode()
    rows = dict(re.findall(r'<td class="mono nowrap">([^<]+)</td>\s*<td>(.*?)</td>', page, re.S))
    assert BADGE in rows["XS2026-0301/1"] and "Key account" in rows["XS2026-0301/1"]
    assert BADGE not in rows["XS2025-1201/1"]

    only = _en(client, "/sales/orders/", key="on").content.decode()
    assert _shown(only) == {"XS2026-0301/1", "XS2026-0301/2", "XS2026-0315/1"}


def test_the_tier_alone_is_not_a_key_account_in_the_order_list(client_for, orders, admin_user):
    _xiehe, huashan = orders
    customers.update_institution(admin_user, huashan, {"tier": "key"}, version=huashan.version)
    client = client_for("manager")

    assert BADGE not in _en(client, "/sales/orders/").content.decode()
    assert _shown(_en(client, "/sales/orders/", key="on").content.decode()) == set()


def test_the_api_filters_on_key_accounts(api_for, key_orders):
    client = api_for("manager")

    def shown(value):
        data = client.get("/api/v1/order-lines/", {"key_account": value}).json()
        return {f"{r['order_number']}/{r['line_number']}" for r in data["results"]}

    assert shown("true") == {"XS2026-0301/1", "XS2026-0301/2", "XS2026-0315/1"}
    assert shown("false") == {"XS2025-1201/1"}


def test_the_key_account_badge_costs_one_query_per_page(client_for, key_orders, run_import):
    xiehe, huashan = key_orders
    client = client_for("manager")
    client.get("/sales/orders/")
    with CaptureQueriesContext(connection) as few:
        client.get("/sales/orders/")
    run_import([line("MANY-1", n, today_minus(3), xiehe if n % 2 else huashan, "P1", 1, "1") for n in range(1, 41)])
    with CaptureQueriesContext(connection) as many:
        page = client.get("/sales/orders/").content.decode()

    assert page.count(BADGE) > 20
    assert len(many.captured_queries) == len(few.captured_queries)


def test_the_order_line_api_documents_its_parameters(api_for, db):
    schema = api_for("admin").get("/api/schema/?format=json")
    assert schema.status_code == 200
    spec = json.loads(schema.content)
    params = {p["name"]: p for p in spec["paths"]["/api/v1/order-lines/"]["get"]["parameters"]}

    for name in ("customer", "order_number", "product_code", "batch_number", "date_from", "date_to", "open",
                 "key_account"):  # fmt: skip
        assert params[name].get("description"), name
    assert params["key_account"]["schema"]["type"] == "boolean"
    assert "prefix" in params["order_number"]["description"] or "beginning" in params["order_number"]["description"]


# --- the API import's duplicate -------------------------------------------------------------------


def api_line(order, n, customer, **extra) -> dict:
    return {"order_number": order, "line_number": n, "order_date": str(today_minus(12)),
            "credit_code": customer.credit_code, "product_code": "P1", "quantity": 2, "unit_price": 10.5, **extra}  # fmt: skip


def test_an_api_duplicate_names_the_first_line_by_its_position(api_for, xiehe):
    lines = [api_line("API-001", 1, xiehe), api_line("API-001", 2, xiehe), api_line("API-001", 2, xiehe)]

    response = api_for("admin").post("/api/v1/sales/orders/", {"lines": lines}, format="json",
                                     HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip

    data = response.json()
    assert (data["created"], data["rejected"]) == (2, 1)
    [error] = data["errors"]
    assert (error["row"], error["column"], error["code"]) == (3, "line_number", "duplicate_line")
    assert error["message"] == "Order API-001 line 2 appears twice in the file (first in row 2)."


def test_the_command_line_names_file_rows_for_the_same_duplicate(order_file, xiehe, users, tmp_path):
    day = today_minus(12)
    path = order_file([line("API-001", 1, day, xiehe, "P1", 2, "10.5"), line("API-001", 2, day, xiehe, "P1", 2, "10.5"),
                       line("API-001", 2, day, xiehe, "P1", 2, "10.5")])  # fmt: skip
    report = tmp_path / "rejected.csv"

    with pytest.raises(SystemExit):
        call_command("import", "orders", str(path), "--report", str(report), "--language", "en")

    text = report.read_text(encoding="utf-8-sig")
    assert "4,Line number (行号),Order API-001 line 2 appears twice in the file (first in row 3)." in text


# --- product codes the catalogue does not know -----------------------------------------------------


@pytest.fixture
def catalogue(db):
    return Product.objects.create(brand_name="安心宁", generic_name="盐酸氨氯地平片", approval_number="国药准字H20249871",
                                  dosage_form="片剂", strength="5mg")  # fmt: skip


@pytest.fixture
def mixed_rows(xiehe, catalogue):
    """NOPE999 twice and NOPE998 once (unknown); YP1001 linked by its approval number in a later row."""
    day = today_minus(12)
    return [
        line("PC-1", 1, day, xiehe, "NOPE999", 1, "10"),
        line("PC-1", 2, day, xiehe, "YP1001", 1, "10"),
        line("PC-1", 3, day, xiehe, "NOPE999", 2, "10"),
        line("PC-1", 4, day, xiehe, "YP1001", 1, "10", approval_number=catalogue.approval_number),
        line("PC-1", 5, day, xiehe, "NOPE998", 1, "10"),
    ]


def _note(job: ImportJob) -> dict | None:
    return next((n["params"] for n in json.loads(job.message or "[]") if n["code"] == "unknown_products"), None)


def test_unknown_product_codes_import_but_the_summary_names_them(run_import, mixed_rows):
    job = run_import(mixed_rows)

    assert (job.created_count, job.error_count) == (5, 0)
    assert OrderLine.objects.filter(product_code="NOPE999").count() == 2
    note = _note(job)
    assert (note["lines"], note["code_list"], note["more"]) == (3, ["NOPE999", "NOPE998"], False)
    with translation.override("en"):
        [text] = [m for m in base.job_messages(job) if "catalogue" in m]
    assert text.startswith("Order lines whose product code is not in the product catalogue: 3 (codes: NOPE999, NOPE998)")


def test_a_code_linked_before_is_not_unknown_and_a_clean_file_has_no_note(run_import, mixed_rows, xiehe):
    run_import(mixed_rows)
    again = run_import([line("PC-2", 1, today_minus(3), xiehe, "YP1001", 1, "10")])

    assert again.created_count == 1 and _note(again) is None


def test_only_the_first_twenty_codes_are_named(run_import, xiehe):
    day = today_minus(12)
    job = run_import([line("PC-3", n, day, xiehe, f"NEW{n:03d}", 1, "1") for n in range(1, 26)])

    note = _note(job)
    assert note["lines"] == 25 and note["more"] is True
    assert note["code_list"] == [f"NEW{n:03d}" for n in range(1, UNKNOWN_CODES_SHOWN + 1)]
    assert note["codes"].endswith("NEW020, …")


def test_the_command_line_prints_the_unknown_codes(order_file, mixed_rows, users, capsys):
    call_command("import", "orders", str(order_file(mixed_rows)), "--language", "en")

    out = capsys.readouterr().out
    assert "created 5" in out
    assert "product catalogue: 3 (codes: NOPE999, NOPE998)" in out


def test_the_api_answer_counts_the_unknown_codes(api_for, xiehe, catalogue):
    lines = [api_line("API-9", 1, xiehe, product_code="NOPE999"),
             api_line("API-9", 2, xiehe, product_code="YP1001", approval_number=catalogue.approval_number)]  # fmt: skip

    data = api_for("admin").post("/api/v1/sales/orders/", {"lines": lines}, format="json",
                                 HTTP_ACCEPT_LANGUAGE="en").json()  # fmt: skip

    assert data["created"] == 2
    assert data["unknown_products"] == {"lines": 1, "codes": ["NOPE999"], "more": False}
    assert any("NOPE999" in m for m in data["messages"])
    clean = api_for("admin").post("/api/v1/sales/orders/", {"lines": lines[1:]}, format="json").json()
    assert clean["unknown_products"] == {"lines": 0, "codes": [], "more": False}


def test_the_wizard_shows_the_unknown_codes_before_and_after_the_import(client_for, mixed_rows, huey_immediate,
                                                                         tmp_path):  # fmt: skip
    client = client_for("manager")
    content = write_csv(tmp_path / "orders.csv", mixed_rows).read_bytes()
    client.post("/customers/import/?target=orders",
                {"target": "orders", "mode": "all", "file": SimpleUploadedFile("订单.csv", content, "text/csv")})  # fmt: skip
    job = ImportJob.objects.get()

    checked = client.get(f"/customers/import/{job.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "not in the product catalogue: 3 (codes: NOPE999, NOPE998)" in checked

    client.post(f"/customers/import/{job.pk}/confirm/", {"mode": "all"})
    job.refresh_from_db()
    assert job.created_count == 5
    done = client.get(f"/customers/import/{job.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "not in the product catalogue: 3 (codes: NOPE999, NOPE998)" in done



def test_the_order_number_is_compared_by_code_point_whatever_the_databases_collation(db):
    """Most PostgreSQL servers are created with a language collation (zh_CN.UTF-8, en_US.UTF-8), under which
    an index cannot answer "begins with": the column itself is declared COLLATE "C"."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT collation_name FROM information_schema.columns"
                " WHERE table_name = %s AND column_name = 'order_number'", [OrderLine._meta.db_table],
            )  # fmt: skip
            assert cursor.fetchone()[0] == "C"
    else:  # SQLite's BINARY: the column needs nothing
        assert OrderLine._meta.get_field("order_number").db_parameters(connection)["collation"] is None


def test_the_order_number_filter_walks_the_order_index(client_for, orders):
    from pharmacrm.sales.forms import apply_filters

    qs = apply_filters(OrderLine.objects.all(), {"order": "xs2026-03"})
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")  # a handful of rows: force the planner's hand
            cursor.execute("EXPLAIN " + str(qs.query.sql_with_params()[0]), qs.query.sql_with_params()[1])
            plan = " ".join(r[0] for r in cursor.fetchall())
    else:
        sql, params = qs.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            plan = " ".join(str(r[-1]) for r in cursor.fetchall())

    assert "orderline_key" in plan or "USING INDEX sqlite_autoindex_sales_orderline_1 (order_number>?" in plan
    assert {str(line) for line in qs} == {"XS2026-0301/1", "XS2026-0301/2", "XS2026-0315/1"}
