"""The import wizard as used for ERP orders (/customers/import/?target=orders): the page speaks of orders and
offers the order template, its links keep the target and lead to the order lines, the row errors come in
row order (on the page and in the downloadable report), and a file whose one line is no header says that
columns are missing."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation

from pharmacrm.customers import importer, normalise
from pharmacrm.customers.models import ImportJob

from .conftest import line, today_minus

START = "/customers/import/"
UNKNOWN_CODE = normalise.make_credit_code("12100000499999999")


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


def links(page: str) -> dict[str, str]:
    """Link text → address for the page's links (the last one wins)."""
    found = re.findall(r'<a[^>]*href="([^"]*)"[^>]*>\s*([^<]*?)\s*</a>', page)
    return {text: href for href, text in found}


def heading(page: str) -> str:
    return re.search(r"<h1>(.*?)</h1>", page, re.S).group(1).strip()


def title(page: str) -> str:
    return re.search(r"<title>(.*?)</title>", page, re.S).group(1).split(" · ")[0].strip()


def template_links(page: str) -> set[str]:
    return set(re.findall(r'href="/customers/import/template/([a-z]+\.(?:xlsx|csv))"', page))


# --- the start page -----------------------------------------------------------------------------------


def test_the_orders_wizard_speaks_of_orders_and_offers_the_order_template(client_for):
    page = client_for("manager").get(f"{START}?target=orders", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert heading(page) == "Import orders" and title(page) == "Import orders"
    assert "Import customers" not in page
    assert template_links(page) == {"orders.xlsx", "orders.csv"}
    assert "Orders and payments:" in page
    assert "importing the same file again changes nothing" in page
    assert "a corrected file updates exactly the corrected lines" in page
    assert "existing customer updates it" not in page and "Empty cells leave" not in page
    assert re.search(r'<option value="orders" selected>', page)


def test_the_orders_wizard_title_is_translated(client_for):
    page = client_for("manager").get(f"{START}?target=orders").content.decode()

    assert heading(page) == "导入订单" and title(page) == "导入订单"


def test_the_template_labels_take_a_full_width_colon_on_a_chinese_page(client_for):
    """The start page read 订单与回款: Excel 模板 (an ASCII colon after Chinese words); Chinese takes ：."""
    orders = client_for("manager").get(f"{START}?target=orders").content.decode()
    customers = client_for("kam").get(START).content.decode()

    assert "订单与回款：" in orders and "订单与回款:" not in orders
    assert "机构：" in customers and "联系人：" in customers and "机构:" not in customers


def test_the_recent_imports_count_rows_with_thousands_separators(client_for, users):
    """On an English page the list of recent imports showed an ERP file's 20501 rows without separators, while the
    import's own page says 20,501: both group the thousands as the page's language does (intcomma)."""
    ImportJob.objects.create(
        target="orders", file_name="ERP订单导出.csv", file_path="/nonexistent", file_sha256="x",
        created_by=users["manager"], status=ImportJob.Status.DONE, total_rows=20501, error_count=1234,
    )  # fmt: skip
    page = client_for("manager").get(f"{START}?target=orders", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert '<td class="num">20,501</td>' in page and '<td class="num">1,234</td>' in page


@pytest.mark.parametrize("query", ["", "?target=institutions", "?target=people"])
def test_the_customer_wizard_is_unchanged(client_for, query):
    page = client_for("manager").get(f"{START}{query}", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert heading(page) == "Import customers"
    assert template_links(page) == {"institutions.xlsx", "institutions.csv", "people.xlsx", "people.csv"}
    assert "existing customer updates it instead of creating a duplicate" in page
    assert "importing the same file again changes nothing" not in page


def test_who_may_not_import_orders_gets_the_customer_wizard(client_for):
    page = client_for("kam").get(f"{START}?target=orders", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert heading(page) == "Import customers"
    assert template_links(page) == {"institutions.xlsx", "institutions.csv", "people.xlsx", "people.csv"}
    assert 'value="orders"' not in page


def test_the_offered_order_templates_download(client_for):
    client = client_for("manager")
    page = client.get(f"{START}?target=orders").content.decode()

    for name in sorted(template_links(page)):
        response = client.get(f"/customers/import/template/{name}")
        assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    body = client.get("/customers/import/template/orders.csv").content.decode("utf-8-sig")
    assert body.splitlines()[0].startswith("订单号,行号,订单日期")


# --- the wizard's links after an order upload -----------------------------------------------------------


def order_csv(rows: list[dict]) -> bytes:
    from .conftest import KEYS

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(importer.template_headers(ImportJob.Target.ORDERS))
    for row in rows:
        writer.writerow([row.get(k, "") for k in KEYS])
    return buf.getvalue().encode("utf-8")


def test_the_links_of_an_order_import_keep_the_target_and_lead_to_the_order_lines(
    client_for, xiehe, huey_immediate
):
    client = client_for("manager")
    day = today_minus(30)
    content = order_csv([line("SO-1", 1, day, xiehe, "P1", 2, "10"), line("SO-1", 2, day, xiehe, "P2", 1, "5")])
    response = client.post(
        f"{START}?target=orders", {"target": "orders", "mode": "all", "file": upload("订单.csv", content)}
    )
    job = ImportJob.objects.get()
    assert response.status_code == 302 and job.target == "orders" and job.status == "previewed"

    checked = client.get(f"/customers/import/{job.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'formaction="/customers/import/{job.pk}/cancel/"' in checked  # cancelling returns to the orders' upload
    assert links(checked)["Import orders"] == "/customers/import/?target=orders"  # the breadcrumb
    assert "Import customers" not in checked

    client.post(f"/customers/import/{job.pk}/confirm/", {"mode": "all"})
    job.refresh_from_db()
    assert (job.status, job.created_count) == ("done", 2)
    done = client.get(f"/customers/import/{job.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert links(done)["Go to the list"] == reverse("sales:orders") == "/sales/orders/"
    assert links(done)["Import another file"] == "/customers/import/?target=orders"
    done_zh = client.get(f"/customers/import/{job.pk}/").content.decode()
    assert links(done_zh)["前往列表"] == "/sales/orders/"
    assert links(done_zh)["导入其他文件"] == "/customers/import/?target=orders"
    assert client.get(links(done)["Go to the list"]).status_code == 200
    again = client.get(links(done)["Import another file"], HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert heading(again) == "Import orders"


def test_a_people_import_still_leads_to_the_people_and_keeps_its_target(client_for, users, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("姓名,手机\n张伟,13800138000\n", encoding="utf-8")
    job = importer.import_file(path, "people", users["kam"], mode="all")
    assert job.status == "done", job.errors

    page = client_for("kam").get(f"/customers/import/{job.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert links(page)["Go to the list"] == "/customers/people/"
    assert links(page)["Import another file"] == "/customers/import/?target=people"
    assert links(page)["Import customers"] == "/customers/import/?target=people"


# --- row errors in row order ----------------------------------------------------------------------------


@pytest.fixture
def bad_rows(xiehe):
    """Rows 2–15 of a file (the header is row 1): an unknown customer in row 3, row 11 repeats row 2's line,
    row 14 has a quantity that is no number, row 15 three errors the cross-checks find."""
    day = today_minus(30)
    rows = [line("SO-1", 1, day, xiehe, "P1", 1, "10")]  # row 2
    rows.append(line("SO-2", 1, day, UNKNOWN_CODE, "P1", 1, "10"))  # row 3
    rows += [line(f"SO-{n}", 1, day, xiehe, "P1", 1, "10") for n in range(4, 11)]  # rows 4–10
    rows.append(line("SO-1", 1, day, xiehe, "P1", 1, "10"))  # row 11
    rows += [line(f"SO-{n}", 1, day, xiehe, "P1", 1, "10") for n in (12, 13)]  # rows 12–13
    rows.append(line("SO-14", 1, day, xiehe, "P1", "abc", "10"))  # row 14
    rows.append(line("SO-15", 1, day, xiehe, "P1", 1, "100", amount="50", paid_amount="80"))  # row 15
    return rows


EXPECTED = [
    (3, "客户统一社会信用代码", "customer_not_found"),
    (11, "行号", "duplicate_line"),
    (14, "数量", "invalid_number"),
    (15, "金额", "amount_mismatch"),
    (15, "付款日期", "paid_without_date"),
    (15, "付款金额", "paid_too_much"),
]


# the downloaded report names them in its English reader's language, the file's own (Chinese) header beside
EXPECTED_EN = ["Customer credit code (客户统一社会信用代码)", "Line number (行号)", "Quantity (数量)", "Amount (金额)",
               "Paid date (付款日期)", "Paid amount (付款金额)"]  # fmt: skip
EXPECTED_REPORT = list(zip(EXPECTED, EXPECTED_EN, strict=True))


def downloaded_report(client, job) -> list[list[str]]:
    response = client.get(f"/customers/import/{job.pk}/errors.csv", HTTP_ACCEPT_LANGUAGE="en")
    assert f'filename="import-errors-{job.pk}.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0] == ["Row", "Column", "Reason", "Value"]
    return rows[1:]


def test_row_errors_are_listed_in_row_then_column_order(client_for, run_import, bad_rows):
    job = run_import(bad_rows, mode="good", dry_run=True)

    assert job.error_count == 4  # rows with errors
    assert [(e["row"], e["column"], e["code"]) for e in job.errors] == EXPECTED
    client = client_for("manager")
    report = downloaded_report(client, job)
    assert [(int(r[0]), r[1]) for r in report] == [(row, column) for (row, _c, _x), column in EXPECTED_REPORT]
    with translation.override("en"):
        assert report[1][2] == importer.message("duplicate_line", {"order": "SO-1", "line": 1, "row": 2})
    page = client.get(f"/customers/import/{job.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    table = page[page.index('id="import-errors"') :]
    shown = [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', table[: table.index("</table>")])]
    assert shown == [3, 11, 14, 15, 15, 15]


def test_errors_stay_in_row_order_across_chunks_and_the_page_keeps_the_first(
    client_for, run_import, bad_rows, monkeypatch
):
    from pharmacrm.sales import importer as order_importer

    monkeypatch.setattr(order_importer, "CHUNK_ROWS", 4)  # rows 2–5, 6–9, 10–13, 14–15
    monkeypatch.setattr(importer, "MAX_KEPT_ERRORS", 3)
    job = run_import(bad_rows, mode="good", dry_run=True)

    assert [(e["row"], e["column"]) for e in job.errors] == [(r, c) for r, c, _code in EXPECTED[:3]]
    report = downloaded_report(client_for("manager"), job)
    assert [(int(r[0]), r[1]) for r in report] == [(row, column) for (row, _c, _x), column in EXPECTED_REPORT]


def test_a_duplicate_in_a_later_chunk_is_in_order_with_the_chunks_other_errors(run_import, xiehe, monkeypatch):
    from pharmacrm.sales import importer as order_importer

    monkeypatch.setattr(order_importer, "CHUNK_ROWS", 3)
    day = today_minus(30)
    rows = [
        line("A", 1, day, xiehe, "P1", 1, "10"),  # row 2
        line("B", 1, day, xiehe, "P1", 1, "10"),  # row 3
        line("C", 1, day, xiehe, "P1", 1, "10"),  # row 4
        line("A", 1, day, xiehe, "P1", 1, "10"),  # row 5: repeats row 2, from an earlier chunk
        line("D", 1, day, UNKNOWN_CODE, "P1", 1, "10"),  # row 6
        line("E", 1, day, xiehe, "P1", 1, "x"),  # row 7
    ]
    job = run_import(rows, mode="good", dry_run=True)

    assert [(e["row"], e["code"]) for e in job.errors] == [
        (5, "duplicate_line"), (6, "customer_not_found"), (7, "invalid_number"),
    ]  # fmt: skip


# --- a file whose one line is no header ------------------------------------------------------------------


def test_a_one_line_order_file_says_which_columns_are_missing(client_for):
    client = client_for("manager")
    response = client.post(
        f"{START}?target=orders", {"target": "orders", "mode": "all", "file": upload("hello.csv", b"hello world\n")}
    )
    page = response.content.decode()

    assert response.status_code == 400
    assert "缺少必填列：订单号、行号、订单日期、产品编码、数量、单价" in page
    assert "没有数据行" not in page
    assert heading(page) == "导入订单"  # a refused upload stays on the orders wizard
    assert re.search(r'<option value="orders" selected>', page)
    assert ImportJob.objects.count() == 0


@pytest.mark.parametrize(
    ("target", "missing"), [("institutions", "Institution name, Institution type"), ("people", "Name")]
)
def test_a_one_line_customer_file_says_the_same(client_for, target, missing):
    response = client_for("kam").post(
        START, {"target": target, "mode": "all", "file": upload("hello.csv", b"hello world\n")},
        HTTP_ACCEPT_LANGUAGE="en",
    )  # fmt: skip
    page = response.content.decode()

    assert response.status_code == 400
    assert f"Required columns are missing: {missing}" in page and "no data rows" not in page


@pytest.mark.parametrize(
    ("target", "header", "reason"),
    [
        ("orders", "TEMPLATE", "The file has a header row but no data rows."),
        ("people", "姓名,手机", "The file has a header row but no data rows."),
        ("orders", "订单号,行号,订单日期,产品编码,数量,单价", "The file needs a column for the customer"),
    ],
)
def test_a_good_header_without_data_rows_is_still_refused_as_such(client_for, target, header, reason):
    if header == "TEMPLATE":
        header = ",".join(importer.template_headers(ImportJob.Target.ORDERS))
    response = client_for("manager").post(
        START, {"target": target, "mode": "all", "file": upload("head.csv", (header + "\n").encode())},
        HTTP_ACCEPT_LANGUAGE="en",
    )  # fmt: skip

    assert response.status_code == 400 and reason in response.content.decode()
    assert ImportJob.objects.count() == 0
