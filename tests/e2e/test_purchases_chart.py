"""The purchases chart on a Customer 360 page, in the browser: hovering a month shows its amount as the pages write
money (¥237,380.70), not as the number the bar is drawn from (237,380.7, no currency)."""

import pytest

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales.services import month_start
from tests.sales.conftest import line, today_minus, write_csv

from .conftest import shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_chart_tooltip_shows_a_months_amount_in_yuan_with_two_decimals(page, users, xiehe, tmp_path, settings):
    settings.VAR_DIR = tmp_path / "var"
    day = month_start(today_minus(0), 1)  # a day of last month (its chart bar is the 23rd of 24)
    path = write_csv(tmp_path / "orders.csv", [
        line("XS-1", 1, day, xiehe, "YP1001", 1, "200000.70"),
        line("XS-1", 2, day, xiehe, "YP1002", 1, "37380"),
    ])  # fmt: skip
    job = importer.import_file(path, ImportJob.Target.ORDERS, users["admin"], mode="good")
    assert job.created_count == 2, job.errors

    sign_in(page, "rep")  # 协和 is in the rep's territory
    page.goto(f"/customers/institutions/{xiehe.pk}/")
    chart = page.locator(f"#purchases-chart-{xiehe.pk}")
    chart.locator("svg").wait_for()
    page.evaluate(
        "id => echarts.getInstanceByDom(document.getElementById(id)).dispatchAction("
        "{type: 'showTip', seriesIndex: 0, dataIndex: 22})",
        f"purchases-chart-{xiehe.pk}",
    )
    tip = chart.locator("div", has_text="订单").last  # the tooltip: the month, its amount and its orders
    tip.wait_for()
    text = chart.inner_text()
    shot(page, "purchases-chart-tooltip")
    assert "¥237,380.70" in text, text
