"""Purchases pages per role: the purchases block on a Customer 360 page, the order-line list with its
filters, links and CSV export; a rep sees only the lines of the customers in their territory."""

from __future__ import annotations

import csv
import io

import pytest

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role

from .conftest import line, today_minus

ROLES = [r.value for r in Role]
VIEWERS = {"admin", "manager", "kam", "rep", "analyst", "auditor"}
IMPORTERS = {"admin", "manager"}


@pytest.fixture
def purchases(run_import, xiehe, huashan):
    """Recent lines: 协和 (Beijing, in the rep's territory) and 华山 (Shanghai, outside it)."""
    # both before the current month whatever today is: the 12-month totals count whole months only
    day, later = today_minus(40), today_minus(33)
    job = run_import([
        line("BJ-100", 1, day, xiehe, "P1", 10, "1234.50", payment_due=today_minus(20), batch_number="LOT-A"),
        line("BJ-100", 2, day, xiehe, "P2", 2, "10", payment_due=today_minus(20), paid_date=today_minus(25)),
        line("BJ-101", 1, later, xiehe, "P3", 1, "99", batch_number="LOT-B", paid_date=today_minus(5)),
        line("SH-200", 1, day, huashan, "P1", 3, "50", payment_due=today_minus(20), paid_date=today_minus(15)),
    ])  # fmt: skip
    assert job.error_count == 0, job.errors
    return xiehe, huashan


@pytest.mark.parametrize("role", ROLES)
def test_the_order_list_is_for_those_who_see_purchases(client_for, purchases, role):
    response = client_for(role).get("/sales/orders/")

    assert response.status_code == (200 if role in VIEWERS else 403)
    if role in VIEWERS:
        page = response.content.decode()
        assert "BJ-100/1" in page
        assert ("SH-200/1" in page) == (role != "rep")
        assert ('href="/customers/import/?target=orders"' in page) == (role in IMPORTERS)
        assert ("/customers/import/template/orders.xlsx" in page) == (role in IMPORTERS)


def test_amounts_show_in_yuan_with_thousands_separators(client_for, purchases):
    page = client_for("manager").get("/sales/orders/?order=BJ-100").content.decode()

    assert "¥12,345.00" in page and "¥20.00" in page


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("order=BJ-100", {"BJ-100/1", "BJ-100/2"}),
        ("product=P1", {"BJ-100/1", "SH-200/1"}),
        ("batch=LOT-B", {"BJ-101/1"}),
        ("open=on", {"BJ-100/1"}),
        ("customer={huashan}", {"SH-200/1"}),
        ("date_from={later}", {"BJ-101/1"}),
        ("date_to={day}", {"BJ-100/1", "BJ-100/2", "SH-200/1"}),
    ],
)
def test_the_filters_narrow_the_list(client_for, purchases, query, shown):
    _xiehe, huashan = purchases
    query = query.format(huashan=huashan.pk, later=today_minus(33), day=today_minus(40))

    page = client_for("manager").get(f"/sales/orders/?{query}").content.decode()

    all_lines = {"BJ-100/1", "BJ-100/2", "BJ-101/1", "SH-200/1"}
    assert {x for x in all_lines if x in page} == shown


def test_a_rep_cannot_filter_their_way_to_another_territory(client_for, purchases):
    _xiehe, huashan = purchases

    page = client_for("rep").get(f"/sales/orders/?customer={huashan.pk}").content.decode()

    assert "SH-200" not in page


def test_the_order_list_costs_the_same_queries_whatever_the_number_of_lines(
    client_for, purchases, run_import, xiehe, django_assert_max_num_queries
):
    client = client_for("kam")
    client.get("/sales/orders/")
    with django_assert_max_num_queries(12) as few:
        client.get("/sales/orders/")
    run_import([line("BJ-3", n, today_minus(3), xiehe, f"X{n}", 1, "1") for n in range(1, 41)])
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get("/sales/orders/")


def _export(client, query: str = "") -> list[list[str]]:
    response = client.get(f"/sales/orders/export.csv{query}")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize("role", ROLES)
def test_the_csv_export_is_for_those_who_see_purchases_and_is_audited(client_for, purchases, role):
    client = client_for(role)
    if role not in VIEWERS:
        assert client.get("/sales/orders/export.csv").status_code == 403
        return

    rows = _export(client, "?product=P1")

    assert rows[0][:3] == ["订单号", "行号", "订单日期"]
    numbers = {(r[0], r[1]) for r in rows[1:]}
    assert numbers == ({("BJ-100", "1")} if role == "rep" else {("BJ-100", "1"), ("SH-200", "1")})
    entry = AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT).latest("seq")
    assert entry.actor.username == role and entry.extra["count"] == len(numbers)
    assert entry.extra["filters"] == {"product": "P1"}


def test_an_export_can_be_imported_again_without_changes(
    client_for, purchases, order_file, admin_user, tmp_path
):
    from pharmacrm.customers import importer
    from pharmacrm.customers.models import ImportJob

    rows = _export(client_for("manager"))
    path = tmp_path / "again.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)

    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="all")

    assert (job.unchanged_count, job.created_count, job.updated_count, job.error_count) == (4, 0, 0, 0)


@pytest.mark.parametrize("role", ROLES)
def test_the_purchases_block_is_for_those_who_see_purchases_of_the_customer(client_for, purchases, role):
    xiehe, huashan = purchases
    client = client_for(role)

    inside = client.get(f"/sales/customers/{xiehe.pk}/purchases/")
    outside = client.get(f"/sales/customers/{huashan.pk}/purchases/")

    assert inside.status_code == (200 if role in VIEWERS else 403)
    assert outside.status_code == (404 if role == "rep" else 200 if role in VIEWERS else 403)


def test_the_customer_360_page_loads_the_purchases_block_for_those_who_may_see_it(client_for, purchases):
    xiehe, _hs = purchases

    for role, shown in (("kam", True), ("analyst", True), ("agent", False), ("pv", False)):
        page = client_for(role).get(f"/customers/institutions/{xiehe.pk}/").content.decode()
        assert (f'hx-get="/sales/customers/{xiehe.pk}/purchases/"' in page) == shown, role


def test_the_purchases_block_shows_totals_chart_data_credit_and_latest_lines(client_for, purchases):
    xiehe, _hs = purchases

    page = client_for("kam").get(f"/sales/customers/{xiehe.pk}/purchases/", HTTP_ACCEPT_LANGUAGE="en")
    html = page.content.decode()

    assert 'data-total="amount">¥12,464.00<' in html  # 12,345.00 + 20.00 + 99.00
    assert 'data-total="orders">2<' in html
    assert f'id="purchases-data-{xiehe.pk}"' in html and "vendor/echarts/echarts.min.js" in html
    chart = page.context["chart"]
    assert len(chart["months"]) == 24 and sum(chart["amounts"]) == 12464.0 and sum(chart["orders"]) == 2
    assert 'data-credit="outstanding">¥12,345.00<' in html  # BJ-100/1 is unpaid
    assert 'data-credit="overdue">¥12,345.00<' in html  # due 20 days ago
    assert "BJ-101/1" in html and f"/sales/orders/?customer={xiehe.pk}" in html
    assert page.context["credit"].ageing[1]["amount"] == 12345  # 1–30 days past due


def test_a_customer_without_purchases_says_so(client_for, xiehe):
    page = client_for("manager").get(f"/sales/customers/{xiehe.pk}/purchases/", HTTP_ACCEPT_LANGUAGE="en")

    assert "No purchases recorded for this customer." in page.content.decode()


def test_an_unknown_customer_is_not_found(client_for, db):
    assert client_for("manager").get("/sales/customers/987654/purchases/").status_code == 404


def test_a_departments_lines_name_its_hospital_on_the_list_and_in_the_export(client_for, run_import, xiehe):
    """心内科 buying under its own ERP code: the list and the export named the customer 心内科 alone — eleven
    hospitals have one, and nothing on the line said whose it was."""
    from pharmacrm.customers.models import Institution

    dept = Institution.objects.get(parent=xiehe)
    dept.external_id = "D-001"
    dept.save(update_fields=["external_id"])
    run_import([line("SO-D", 1, today_minus(10), "", "P1", 1, "10", external_id="D-001")])
    client = client_for("kam")

    page = client.get("/sales/orders/").content.decode()
    rows = _export(client)

    assert "北京协和医院 › 心内科" in page
    assert rows[1][5] == "北京协和医院 › 心内科"
