"""Review round 28 (sales): order imports that stop midway, and what the job then says."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.utils import translation

from pharmacrm.customers import importer
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales.models import OrderLine

from .conftest import line

DAY = "2025-03-05"


def messages_en(job: ImportJob) -> list[str]:
    with translation.override("en"):
        return importer.job_messages(job)


# --- an import stopped by a database error after some chunks were committed --------------------------------------


@pytest.fixture
def stopped_job(run_import, xiehe, refused_order_number, monkeypatch):
    from pharmacrm.sales import importer as orders

    monkeypatch.setattr(orders, "CHUNK_ROWS", 2)
    return run_import([
        line("SO-1", 1, DAY, xiehe, "P1", 10, "100"),
        line("SO-2", 1, DAY, xiehe, "P2", 1, "50"),
        line(refused_order_number, 1, DAY, xiehe, "P1", 1, "10"),
    ])  # fmt: skip


@pytest.mark.parametrize(
    "writer",
    [
        "one thread",
        # outside a test's transaction PostgreSQL writes the chunks in a second thread, as in production
        pytest.param(
            "writer thread", marks=[pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]
        ),
    ],
)
def test_an_order_import_stopped_midway_says_what_its_committed_chunks_saved(stopped_job, writer):
    """Good rows only: the first chunk (rows 2 and 3) is committed when the database refuses the third line. The job
    said 0 created and that "another user saved a customer with the same key … so nothing was imported": whoever read
    it took the lines for missing, while two were in."""
    job = stopped_job
    assert job.status == ImportJob.Status.FAILED and OrderLine.objects.count() == 2
    assert (job.created_count, job.updated_count, job.unchanged_count, job.processed_rows) == (2, 0, 0, 2)
    text = messages_en(job)
    assert not any("nothing was imported" in m for m in text)
    assert any("rows up to row 3" in m and "2 created" in m for m in text)
    assert any("import the same file again" in m for m in text)


def test_the_command_line_prints_what_an_import_stopped_midway_saved(
    admin_user, xiehe, refused_order_number, monkeypatch, order_file, capsys
):
    from pharmacrm.sales import importer as orders

    monkeypatch.setattr(orders, "CHUNK_ROWS", 2)
    path = order_file([
        line("SO-1", 1, DAY, xiehe, "P1", 10, "100"),
        line("SO-2", 1, DAY, xiehe, "P2", 1, "50"),
        line(refused_order_number, 1, DAY, xiehe, "P1", 1, "10"),
    ])  # fmt: skip
    with pytest.raises(SystemExit) as stopped:
        call_command("import", "orders", str(path), "--language", "en")
    out = capsys.readouterr().out
    assert stopped.value.code == 2
    assert "created 2\n" in out and "rows up to row 3" in out


# --- an order or invoice number typed in full width ---------------------------------------------------------------


def test_an_order_number_typed_in_full_width_is_the_order_the_erp_numbered(
    run_import, xiehe, client_for, admin_user
):
    """A corrected row typed in an input method's full-width mode (ＳＯ－２０２５０３０１) named the order SO-20250301 as
    other characters: the corrected file added a second line beside the ERP's, the customer's purchases counted
    it twice, and the order list's search for SO-20250301 never found the typed one. Product codes and batches
    were read as the ordinary characters already; the order and invoice numbers are too."""
    first = run_import([line("SO-20250301", 1, DAY, xiehe, "P1", 10, "100", invoice_number="FP-88")])
    assert first.created_count == 1
    again = run_import(
        [line("ＳＯ－２０２５０３０１", 1, DAY, xiehe, "P1", 10, "100", invoice_number="ＦＰ－８８")]
    )
    assert (again.created_count, again.updated_count, again.unchanged_count) == (0, 0, 1)
    assert list(OrderLine.objects.values_list("order_number", "invoice_number")) == [("SO-20250301", "FP-88")]

    corrected = run_import([line("ＳＯ－２０２５０３０１", 1, DAY, xiehe, "P1", 12, "100")])
    assert (corrected.created_count, corrected.updated_count) == (0, 1)
    assert OrderLine.objects.get().quantity == 12


def test_an_order_number_typed_in_full_width_and_as_the_erp_writes_it_in_one_file_is_one_line(
    run_import, xiehe
):
    job = run_import([
        line("SO-7", 1, DAY, xiehe, "P1", 10, "100"),
        line("ＳＯ－７", 1, DAY, xiehe, "P1", 10, "100"),
    ])  # fmt: skip
    assert (job.created_count, job.error_count) == (1, 1)
    assert job.errors[0]["code"] == "duplicate_line"


# --- the value a refused row's error shows --------------------------------------------------------------------------


def test_a_row_refused_for_its_customer_after_the_preview_shows_its_own_code(run_import, xiehe, huashan):
    """The value of a customer error (unknown code, an order naming two customers) was read from the row's parsed
    values by the file's column positions once the preview's first 20 rows were past: the report showed the order's
    month (2025-03-01) under 客户统一社会信用代码, on the page, in the downloaded report and in the API's errors."""
    rows = [line(f"SO-{i}", 1, DAY, xiehe, "P1", 1, "10") for i in range(25)]
    rows += [
        line("SO-X", 1, DAY, "91110108MA00ABCD5X", "P1", 1, "10"),
        line("SO-3", 2, DAY, huashan, "P1", 1, "10"),
        line("SO-4", 1, DAY, xiehe, "P1", 1, "10", customer_name="北京协和医院"),
    ]  # fmt: skip
    job = run_import(rows)
    shown = [(e["row"], e["code"], e.get("value")) for e in job.errors]
    assert shown == [
        (27, "customer_not_found", "91110108MA00ABCD5X"),
        (28, "order_two_customers", huashan.credit_code),
        (29, "duplicate_line", "1"),
    ]
    with open(importer.error_report_path(job), encoding="utf-8") as fh:
        assert [r.rsplit(",", 1)[-1] for r in fh.read().splitlines()[1:]] == [
            "91110108MA00ABCD5X", huashan.credit_code, "1",
        ]  # fmt: skip


# --- the command line's report ---------------------------------------------------------------------------------------


def test_a_report_the_command_line_cannot_write_in_an_existing_folder_is_refused_before_importing(
    admin_user, xiehe, order_file, tmp_path, capsys
):
    """The report's folder exists but the report cannot be written there (a read-only share the ERP exports to, or
    a folder of that name): the rows were imported, then the report's writing ended in a traceback, the reasons of
    the rejected rows lost."""
    path = order_file(
        [line("SO-1", 1, DAY, xiehe, "P1", 1, "10"), line("SO-2", 1, DAY, xiehe, "P1", -1, "10", amount="5")]
    )
    taken = tmp_path / "rejected.csv"
    taken.mkdir()

    with pytest.raises(SystemExit) as stopped:
        call_command("import", "orders", str(path), "--report", str(taken), "--language", "en")

    assert stopped.value.code == 2
    assert "the report cannot be written there" in capsys.readouterr().err
    assert not OrderLine.objects.exists()


def test_the_command_line_leaves_no_empty_report_behind_when_nothing_was_rejected(
    admin_user, xiehe, order_file, tmp_path, capsys
):
    path = order_file([line("SO-1", 1, DAY, xiehe, "P1", 1, "10")])
    call_command("import", "orders", str(path), "--language", "en")
    assert not path.with_name(path.name + ".rejected.csv").exists() and OrderLine.objects.count() == 1


# --- the resolver's caches, once full ------------------------------------------------------------------------------


def test_a_customer_looked_up_before_the_cache_filled_is_still_found_after_it_is_emptied(
    run_import, xiehe, huashan, monkeypatch
):
    """The customer cache is emptied when it holds too many codes (half a million: a file of that many customers).
    It was emptied after the chunk's new codes were picked, so a customer met in an earlier chunk was no longer
    found: "No customer has the credit code …" for a customer the chunk before had found."""
    from pharmacrm.sales import importer as orders

    monkeypatch.setattr(orders, "CHUNK_ROWS", 2)
    monkeypatch.setattr(orders.Resolver, "CACHE_LIMIT", 1)
    job = run_import([
        line("SO-1", 1, DAY, xiehe, "P1", 1, "10"),
        line("SO-2", 1, DAY, huashan, "P2", 1, "10"),
        line("SO-3", 1, DAY, xiehe, "P3", 1, "10"),
        line("SO-4", 1, DAY, "91110108MA00ABCD5X", "P4", 1, "10"),
        line("SO-5", 1, DAY, huashan, "P1", 1, "10"),
        line("SO-6", 1, DAY, xiehe, "P5", 1, "10"),
    ])  # fmt: skip
    assert [(e["row"], e["code"]) for e in job.errors] == [(5, "customer_not_found")]
    assert job.created_count == 5


# --- a cell that never ends -------------------------------------------------------------------------------------------


def _broken_quote_file(tmp_path, header: str, good: list[str], name: str):
    """A CSV whose row after the good ones opens a cell with a quotation mark that nothing closes (a hand-edited
    product name), followed by enough rows that the cell runs past what the csv module reads (128 KB)."""
    rest = [f"{n}\n" for n in good] + ['"特供 阿莫西林,1,1\n'] + ["X" * 100 + "\n"] * 1500
    path = tmp_path / name
    path.write_text(header + "\n" + "".join(rest), encoding="utf-8")
    return path


def test_an_order_file_with_a_cell_that_never_ends_names_its_row(admin_user, xiehe, tmp_path, monkeypatch):
    """The import stopped with "an unexpected error; the details are in the server log", naming no row; the file's
    error (a quotation mark opening a cell that nothing closes) is the user's to correct."""
    from pharmacrm.sales import importer as orders

    monkeypatch.setattr(orders, "CHUNK_ROWS", 2)
    code = xiehe.credit_code
    good = [f"SO-{i},1,{DAY},{code},P1,1,10" for i in range(3)]
    path = _broken_quote_file(
        tmp_path, "订单号,行号,订单日期,客户统一社会信用代码,产品编码,数量,单价", good, "orders.csv"
    )

    job = importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="good")

    assert job.status == ImportJob.Status.FAILED
    text = messages_en(job)
    assert any(
        m.startswith("Row 5 of the file cannot be read: a cell there starts with a quotation mark")
        for m in text
    )
    assert not any("unexpected error" in m for m in text)
    assert (
        OrderLine.objects.count() == 2 and job.created_count == 2
    )  # the first chunk is committed, and said so


def test_a_customer_file_with_a_cell_that_never_ends_names_its_row(admin_user, tmp_path):
    path = _broken_quote_file(
        tmp_path, "机构名称,机构类型,电话", ["社区药房,药店,010-65001234"], "institutions.csv"
    )

    job = importer.import_file(path, ImportJob.Target.INSTITUTIONS, admin_user, mode="good")

    assert job.status == ImportJob.Status.FAILED
    assert any(m.startswith("Row 3 of the file cannot be read") for m in messages_en(job))


def test_a_file_whose_first_row_never_ends_is_refused_on_upload_naming_the_row(admin_user, tmp_path):
    from django.core.exceptions import ValidationError

    path = _broken_quote_file(
        tmp_path, "订单号,行号,订单日期,客户外部编号,产品编码,数量,单价", [], "orders.csv"
    )
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        importer.import_file(path, ImportJob.Target.ORDERS, admin_user, mode="good")
    assert "Row 2 of the file cannot be read" in " ".join(refused.value.messages)
