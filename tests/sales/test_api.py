"""Purchases API per role: order lines (scoped, filtered, money as Decimal strings), a customer's purchases
summary, and the JSON order import through the file import's engine."""

from __future__ import annotations

import pytest
from django.utils import translation

from pharmacrm.core.roles import Role
from pharmacrm.customers import importer
from pharmacrm.sales.models import OrderLine

from .conftest import line, tables, today_minus

ROLES = [r.value for r in Role]
VIEWERS = {"admin", "manager", "kam", "rep", "analyst", "auditor"}
IMPORTERS = {"admin", "manager"}


@pytest.fixture
def purchases(run_import, xiehe, huashan):
    job = run_import([
        line("BJ-100", 1, today_minus(40), xiehe, "P1", 10, "1234.50", payment_due=today_minus(20),
             batch_number="LOT-A"),
        line("BJ-100", 2, today_minus(40), xiehe, "P2", 2, "10", paid_date=today_minus(30)),
        line("SH-200", 1, today_minus(35), huashan, "P1", 3, "50", paid_amount="60", paid_date=today_minus(5)),
    ])  # fmt: skip
    assert job.error_count == 0, job.errors
    return xiehe, huashan


@pytest.mark.parametrize("role", ROLES)
def test_order_lines_are_listed_for_those_who_see_purchases_in_their_scope(api_for, purchases, role):
    response = api_for(role).get("/api/v1/order-lines/")

    assert response.status_code == (200 if role in VIEWERS else 403)
    if role in VIEWERS:
        numbers = {r["order_number"] for r in response.json()["results"]}
        assert numbers == ({"BJ-100"} if role == "rep" else {"BJ-100", "SH-200"})


def test_an_order_line_carries_yuan_as_decimal_strings(api_for, purchases):
    _xiehe, huashan = purchases

    data = api_for("analyst").get("/api/v1/order-lines/", {"customer": huashan.pk}).json()

    (row,) = data["results"]
    assert (row["amount"], row["paid_amount"], row["outstanding"]) == ("150.00", "60.00", "90.00")
    assert row["customer"] == huashan.pk and row["customer_name"] == huashan.name
    assert row["quantity"] == "3.000" and row["unit_price"] == "50.0000"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"order_number": "BJ-100"}, {("BJ-100", 1), ("BJ-100", 2)}),
        ({"product_code": "P2"}, {("BJ-100", 2)}),
        ({"batch_number": "LOT-A"}, {("BJ-100", 1)}),
        ({"open": "true"}, {("BJ-100", 1), ("SH-200", 1)}),
        ({"open": "false"}, {("BJ-100", 2)}),
        ({"date_from": "{d35}"}, {("SH-200", 1)}),
        ({"date_to": "{d40}"}, {("BJ-100", 1), ("BJ-100", 2)}),
    ],
)
def test_order_line_filters(api_for, purchases, params, expected):
    params = {k: v.format(d35=today_minus(35), d40=today_minus(40)) for k, v in params.items()}

    data = api_for("manager").get("/api/v1/order-lines/", params).json()

    assert {(r["order_number"], r["line_number"]) for r in data["results"]} == expected


def test_order_line_day_filters_read_the_forms_erp_exports_write(api_for, purchases):
    day = today_minus(35)
    client = api_for("manager")
    for typed in (f"{day.year}/{day.month}/{day.day}", f"{day.year}年{day.month}月{day.day}日",
                  f"{day:%Y.%m.%d}".translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789."})):  # full width
        data = client.get("/api/v1/order-lines/", {"date_from": typed}).json()
        assert {(r["order_number"], r["line_number"]) for r in data["results"]} == {("SH-200", 1)}, typed
    r = client.get("/api/v1/order-lines/", {"date_to": f"{day:%d/%m/%Y}"}, HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 400
    assert r.json() == {"date_to": ["Enter a date as YYYY-MM-DD (also accepted: YYYY/MM/DD, YYYY.MM.DD, YYYY年M月D日)."]}


def test_a_rep_cannot_read_a_line_outside_the_territory(api_for, purchases):
    outside = OrderLine.objects.get(order_number="SH-200")

    assert api_for("rep").get(f"/api/v1/order-lines/{outside.pk}/").status_code == 404
    assert api_for("kam").get(f"/api/v1/order-lines/{outside.pk}/").status_code == 200


@pytest.mark.parametrize("role", ROLES)
def test_a_customers_purchases_summary_per_role(api_for, purchases, role):
    xiehe, huashan = purchases
    client = api_for(role)

    inside = client.get(f"/api/v1/sales/customers/{xiehe.pk}/purchases/")
    outside = client.get(f"/api/v1/sales/customers/{huashan.pk}/purchases/")

    assert inside.status_code == (200 if role in VIEWERS else 403)
    assert outside.status_code == (404 if role == "rep" else 200 if role in VIEWERS else 403)


def test_the_purchases_summary_has_months_totals_and_credit(api_for, purchases):
    xiehe, _hs = purchases

    data = api_for("kam").get(f"/api/v1/sales/customers/{xiehe.pk}/purchases/").json()

    assert data["customer"] == xiehe.pk
    assert len(data["months"]) == 24
    assert sum(int(m["orders"]) for m in data["months"]) == 1
    assert data["totals_12m"] == {"amount": "12365.00", "orders": 1, "lines": 2}
    credit = data["credit"]
    assert credit["outstanding"] == "12345.00" and credit["overdue"] == "12345.00"
    assert credit["status"] == "poor" and credit["status_label"] == "Poor"
    assert [b["amount"] for b in credit["ageing"]] == ["0.00", "12345.00", "0.00", "0.00", "0.00"]
    assert credit["ageing"][1]["from"] == 1 and credit["ageing"][1]["to"] == 30


def api_line(order, n, customer, **extra) -> dict:
    return {"order_number": order, "line_number": n, "order_date": str(today_minus(12)),
            "credit_code": customer.credit_code, "product_code": "P1", "quantity": 2, "unit_price": 10.5, **extra}  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
def test_only_admin_and_manager_may_import_orders_through_the_api(api_for, xiehe, role):
    response = api_for(role).post(
        "/api/v1/sales/orders/", {"lines": [api_line("API-1", 1, xiehe)]}, format="json"
    )

    assert response.status_code == (200 if role in IMPORTERS else 403)
    assert OrderLine.objects.filter(order_number="API-1").exists() == (role in IMPORTERS)


def test_the_api_import_creates_then_leaves_unchanged_then_updates(api_for, xiehe, huashan, settings):
    client = api_for("manager")
    lines = [api_line("API-2", 1, xiehe), api_line("API-2", 2, xiehe, unit_price="3.00", paid_date=None)]

    first = client.post("/api/v1/sales/orders/", {"lines": lines}, format="json").json()
    again = client.post("/api/v1/sales/orders/", {"lines": lines}, format="json").json()
    # the order was another customer's: both its lines move (one order naming two customers is refused)
    lines[0]["credit_code"] = lines[1]["credit_code"] = huashan.credit_code
    moved = client.post("/api/v1/sales/orders/", {"lines": lines, "mode": "all"}, format="json").json()

    assert (first["created"], first["updated"], first["unchanged"], first["rejected"]) == (2, 0, 0, 0)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    assert (moved["created"], moved["updated"], moved["unchanged"], moved["errors"]) == (0, 2, 0, [])
    assert OrderLine.objects.get(order_number="API-2", line_number=1).amount_fen == 2100
    assert OrderLine.objects.get(order_number="API-2", line_number=2).institution == huashan
    leftovers = [p.name for p in (settings.VAR_DIR / "imports").iterdir() if p.name.startswith("orders-api-")]
    assert leftovers == []  # the temporary file is gone


def test_the_api_import_reports_each_bad_line_by_position_and_key(api_for, xiehe):
    lines = [
        api_line("API-3", 1, xiehe),
        api_line("API-3", 2, xiehe, quantity="lots"),
        {**api_line("API-3", 3, xiehe), "credit_code": "91110000000000000X"},
        api_line("API-3", 4, xiehe, unit_price=-1),
    ]

    data = api_for("admin").post("/api/v1/sales/orders/", {"lines": lines}, format="json").json()

    assert (data["created"], data["rejected"]) == (1, 3)
    errors = {(e["row"], e["column"], e["code"]) for e in data["errors"]}
    assert errors == {(2, "quantity", "invalid_number"), (3, "credit_code", "customer_not_found"),
                      (4, "unit_price", "negative")}  # fmt: skip
    message = next(e for e in data["errors"] if e["row"] == 2)
    assert message["message"] == "“lots” is not a number." and message["value"] == "lots"


def test_the_api_import_answers_in_the_callers_language(api_for, xiehe):
    lines = [api_line("API-4", 1, xiehe, unit_price=-1)]

    data = (
        api_for("admin", lang="zh-hans").post("/api/v1/sales/orders/", {"lines": lines}, format="json").json()
    )

    with translation.override("zh-hans"):
        expected = importer.message("negative")
    assert data["errors"][0]["message"] == expected


def test_an_all_or_nothing_api_import_with_a_bad_line_writes_nothing(api_for, xiehe):
    lines = [api_line("API-5", 1, xiehe), api_line("API-5", 2, xiehe, order_date="2025-02-30")]

    data = (
        api_for("admin").post("/api/v1/sales/orders/", {"lines": lines, "mode": "all"}, format="json").json()
    )

    assert (data["status"], data["created"], data["rejected"]) == ("rejected", 0, 1)
    assert data["errors"][0]["column"] == "order_date" and data["errors"][0]["row"] == 2
    assert not OrderLine.objects.exists()


def test_an_api_dry_run_changes_nothing(api_for, xiehe):
    body = {"lines": [api_line("API-6", 1, xiehe)], "dry_run": True}

    data = api_for("admin").post("/api/v1/sales/orders/", body, format="json").json()

    assert data["created"] == 1 and data["status"] == "previewed"
    assert tables() == {"lines": [], "rollups": [], "codes": []}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lines": "SO-1,1,2026-01-01"}, "lines"),
        ({"lines": []}, "lines"),
        ({}, "lines"),
        ({"lines": [{"order_number": "A"}] * 10_001}, "lines"),
        ({"lines": ["not an object"]}, "lines"),
        ({"lines": [{"order_number": {"nested": 1}}]}, "lines"),
        ({"lines": [{"order_number": "A"}], "mode": "sometimes"}, "mode"),
    ],
)
def test_a_malformed_request_is_refused_with_field_messages(api_for, body, field, db):
    response = api_for("admin").post("/api/v1/sales/orders/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not OrderLine.objects.exists()


def test_a_line_without_any_value_is_refused_by_its_position_not_skipped(api_for, xiehe):
    body = {"lines": [api_line("API-7", 1, xiehe), {"order_number": "", "quantity": None}, {}]}

    response = api_for("admin").post("/api/v1/sales/orders/", body, format="json", HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 400
    assert response.json()["lines"] == ["These lines carry no values: 2, 3."]
    assert not OrderLine.objects.exists()  # the good line was not imported alone either
