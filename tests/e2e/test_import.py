"""Importing a CSV in the browser: the dry run reports the one bad row (row, column, reason) before anything is
written, and the user then imports only the good rows."""

import pytest
from django.urls import reverse
from django.utils import translation

from pharmacrm.customers import importer, normalise
from pharmacrm.customers.models import Institution

from .conftest import html_lang, shot, sign_in, validation_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

GOOD_1 = normalise.make_credit_code("12110000400001234")
GOOD_2 = normalise.make_credit_code("12310000425006117")
BAD = GOOD_1[:10] + "12345678"  # right length and alphabet, wrong check character

CSV = "\n".join(
    [
        "机构名称,机构类型,医院等级,统一社会信用代码,行政区划代码,电话",
        f"北京朝阳测试医院,医院,三级甲等,{GOOD_1},110105,010-85231000",
        f"上海徐汇测试医院,医院,二级甲等,{BAD},310104,021-64370045",
        f"北京朝阳测试药房,药店,,{GOOD_2},110105,010-85230001",
    ]
).encode("utf-8-sig")


@pytest.fixture
def worker_runs_inline():
    """Run queued tasks at once in the web thread: the live server has no Huey consumer beside it."""
    from huey.contrib.djhuey import HUEY

    before = HUEY.immediate
    HUEY.immediate = True
    yield
    HUEY.immediate = before


def test_a_dry_run_reports_the_bad_row_and_the_good_rows_can_then_be_imported(
    page, users, worker_runs_inline
):
    assert normalise.credit_code_check_char(BAD[:17]) != BAD[17]
    sign_in(page, "manager")
    page.goto(reverse("customers:import"))
    page.select_option("#id_target", "institutions")
    page.set_input_files("#id_file", {"name": "机构导入.csv", "mimeType": "text/csv", "buffer": CSV})
    with page.expect_navigation():
        page.locator("#import-form button[type=submit]").click()

    page.locator("#import-errors").wait_for()
    assert not Institution.objects.filter(name__endswith="测试医院").exists(), "a dry run writes nothing"
    rows = page.locator("#import-errors tbody tr")
    assert rows.count() == 1
    row, column, reason = (rows.first.locator("td").nth(i).inner_text().strip() for i in range(3))
    assert row == "3"  # the spreadsheet row: the header is row 1
    with translation.override(html_lang(page)):  # named in the page's language, the file's header beside it
        assert column == importer.column_name("institutions", "统一社会信用代码")
    assert validation_message(normalise.validate_credit_code, BAD, html_lang(page)) in reason
    assert page.locator("#count-errors").inner_text().strip() == "1"
    shot(page, "import-dry-run")

    with page.expect_navigation():
        page.locator("#confirm-import").click()
    page.wait_for_function("document.getElementById('import-status').textContent.trim().length > 0")
    page.locator("#import-summary").wait_for()
    assert sorted(Institution.objects.filter(name__contains="测试").values_list("name", flat=True)) == [
        "北京朝阳测试医院",
        "北京朝阳测试药房",
    ]
    assert page.locator("#count-created").inner_text().strip() == "2"


def test_choosing_orders_in_the_wizard_shows_the_order_import(page, users):
    """The title, the templates and the re-import rule follow the target chosen in the select."""
    sign_in(page, "manager")
    page.goto(reverse("customers:import"))
    assert "?" not in page.url
    templates = page.locator("#import-templates a[download]")
    assert all("/orders." not in (templates.nth(i).get_attribute("href") or "") for i in range(templates.count()))
    with page.expect_navigation():
        page.select_option("#id_target", "orders")
    assert page.url.endswith(reverse("customers:import") + "?target=orders")
    assert page.locator("#id_target").input_value() == "orders"
    hrefs = {templates.nth(i).get_attribute("href") for i in range(templates.count())}
    assert hrefs == {reverse("customers:import-template", args=["orders", fmt]) for fmt in ("xlsx", "csv")}
    assert "订单号" in page.locator("#import-rule").inner_text()  # 订单号: the order number
    assert page.locator("h1").inner_text().strip() == "导入订单"
