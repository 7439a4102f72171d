"""The split orders page in the browser: a manager chooses the customer an order keeps, confirms, and a double click
on the confirmation repairs the order once."""

import datetime as dt

import pytest
from django.core.cache import cache
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import importer, normalise
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales import splits
from pharmacrm.sales.models import OrderLine
from tests.sales.conftest import line, split_before_session_56, write_csv

from .conftest import shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_manager_repairs_a_split_order_keeping_the_customer_chosen(page, users, xiehe, ruijin, tmp_path, settings):
    settings.VAR_DIR = tmp_path / "var"
    ruijin.credit_code = normalise.make_credit_code("12310000425006117")  # the file names customers by their code
    ruijin.save(update_fields=["credit_code"])
    path = write_csv(tmp_path / "orders.csv", [
        line("SO-1", 1, "2026-03-05", xiehe, "YP1001", 2, "100"), line("SO-1", 2, "2026-03-05", xiehe, "YP1002", 1, "50"),
        line("SO-X", 3, "2026-03-05", ruijin, "YP1001", 1, "100"),
    ])  # fmt: skip
    job = importer.import_file(path, ImportJob.Target.ORDERS, users["admin"], mode="good")
    assert job.created_count == 3, job.errors
    OrderLine.objects.filter(order_number="SO-1").update(imported_at=timezone.now() - dt.timedelta(hours=1))
    split_before_session_56("SO-1", "SO-X")  # 瑞金's line imported last: the default keeper
    # the pages keep the list of split orders a day in the database cache, which a transactional test's flush leaves:
    # an earlier browser test's visit of the orders kept "none"; no import stores one since session 56, this SQL does
    cache.delete(splits.CACHE_KEY)

    sign_in(page, "manager")
    page.goto("/sales/orders/")
    page.click("#split-orders-link")
    order = page.locator('section.split-order[data-order="SO-1"]')
    shot(page, "split-orders")
    order.locator(f'tr[data-customer="{xiehe.pk}"] input[type="radio"]').check()  # not the default
    with page.expect_navigation():
        order.locator('button[type="submit"]').click()
    assert "北京协和医院" in page.locator("#split-changes").inner_text()
    shot(page, "split-order-confirm")
    with page.expect_navigation():
        page.dblclick("#confirm-repair")  # a double click on the confirmation
    page.locator("ul.messages").wait_for()
    shot(page, "split-order-repaired")

    assert set(OrderLine.objects.filter(order_number="SO-1").values_list("institution_id", flat=True)) == {xiehe.pk}
    assert AuditEntry.objects.filter(object_type="sales.orderline", action="update").count() == 1  # line 3, once
    assert page.locator('section.split-order[data-order="SO-1"]').count() == 0
