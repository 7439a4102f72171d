"""The columnar lane of an initial load (`pharmacrm.sales.columnar`): Arrow reads the file and checks whole columns,
the database finds repeated lines and split orders at the end. Whatever the file, it must store and report exactly
what the ordinary, row-by-row import stores and reports: the same lines with the same fingerprints, rollups and
product codes; the same errors at the same rows, with the same values; the same counts."""

from __future__ import annotations

import csv
import json
import random

import pytest
from django.core.management import call_command
from django.db import connection

from pharmacrm.customers import importer as base
from pharmacrm.customers import normalise
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import ImportJob
from pharmacrm.sales import columnar
from pharmacrm.sales.importer import BareTable
from pharmacrm.sales.models import MonthlyRollup, OrderLine, ProductCode, RollupDirty
from pharmacrm.servicedesk.models import Product

from .conftest import KEYS, line, tables, today_minus, write_csv


@pytest.fixture
def lane(monkeypatch):
    """Every line through the kernels (no preview rows row by row), in blocks of a few lines, counting the lines the
    kernels took."""
    monkeypatch.setattr(columnar, "PREVIEW_ROWS", 0)
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 2048)
    taken = []
    table = columnar.Lane._table

    def counted(self, values, rows, chunk):
        out = table(self, values, rows, chunk)
        taken.append(out.num_rows)
        return out

    monkeypatch.setattr(columnar.Lane, "_table", counted)
    return taken


def _load(path, *extra) -> int:
    try:
        call_command("import", "orders", str(path), "--language", "en", *extra)
    except SystemExit as e:
        return e.code
    return 0


def _last_job() -> ImportJob:
    return ImportJob.objects.filter(target=ImportJob.Target.ORDERS).latest("pk")


def _stored() -> dict:
    out = tables()
    for row in out["lines"]:
        for key in ("id", "job_id", "imported_at"):
            row.pop(key)
    for name in ("rollups", "codes"):
        for row in out[name]:
            for key in ("id", "updated_at"):
                row.pop(key)
    return out


def _code_audit(job: ImportJob) -> dict:
    """What the audit trail says the import did to product codes, code by code: each field's value before the
    import's first entry and after its last (an import in chunks audits each chunk's changes, an initial load its
    transaction's: the same changes in all), and whether it recorded the code."""
    from pharmacrm.core.models import AuditEntry

    out: dict[str, dict] = {}
    for entry in AuditEntry.objects.filter(object_type="sales.productcode").order_by("seq"):
        if entry.extra.get("import_job") != job.pk:
            continue
        code = out.setdefault(entry.object_repr.split()[0], {"created": False, "changes": {}})
        code["created"] |= entry.action == AuditEntry.Action.CREATE
        for name, (before, after) in entry.changes.items():
            code["changes"][name] = [code["changes"].get(name, [before])[0], after]
    return out


def _outcome() -> dict:
    """What the user sees of an import: what it stored, its counts, its errors, its report file and what the audit
    trail says it did to product codes."""
    job = _last_job()
    with open(base.error_report_path(job), encoding="utf-8", newline="") as fh:
        report = list(csv.reader(fh))
    counts = (job.total_rows, job.processed_rows, job.created_count, job.updated_count, job.unchanged_count,
              job.error_count, job.last_row)  # fmt: skip
    return {"stored": _stored(), "counts": counts, "errors": job.errors, "report": report, "status": job.status,
            "notes": job.message, "preview": job.preview, "code_audit": _code_audit(job)}  # fmt: skip


def _wipe() -> None:
    OrderLine.objects.all().delete()
    MonthlyRollup.objects.all().delete()
    RollupDirty.objects.all().delete()
    ProductCode.objects.all().delete()


def _both(path, *extra, preview: bool = False) -> tuple[dict, dict]:
    """(the columnar initial load's outcome, the ordinary import's) for one file, each into empty tables. The
    preview only when the lane sends the preview's rows row by row, as it does outside these tests."""
    code = _load(path, "--initial-load", *extra)
    loaded = _outcome()
    _wipe()
    assert _load(path, *extra) == code
    ordinary = _outcome()
    for outcome in (loaded, ordinary):
        outcome["notes"] = [n for n in json.loads(outcome["notes"] or "[]") if n["code"] != "initial_load"]
        if not preview:
            outcome.pop("preview")
    return loaded, ordinary


@pytest.fixture
def customers_(xiehe, huashan, admin_user, beijing):
    """Customers named by credit code, by external id, by both, and a merged one whose codes lead to its survivor."""
    ext = customers.create_institution(admin_user, {"name": "北京和睦家医院", "kind": "hospital", "region": beijing,
                                                    "external_id": "ERP-0042"})  # fmt: skip
    both = customers.create_institution(admin_user, {
        "name": "北京大学第一医院", "kind": "hospital", "region": beijing, "external_id": "ERP-0007",
        "credit_code": normalise.make_credit_code("12100000400000001"),
    })  # fmt: skip
    Product.objects.create(brand_name="安心宁", generic_name="盐酸氨氯地平片", approval_number="国药准字H20249871")
    return {"xiehe": xiehe, "huashan": huashan, "ext": ext, "both": both}


VARIANTS = {
    "order_number": ["SO-{o}", "SO-{o}", "SO-{o}", " SO-{o}", "ＳＯ-{o}", "'SO-{o}", "2.40111E+19", "0{o}", "x" * 41, ""],
    "line_number": ["{n}", "{n}", "{n}", "0{n}", "0", "100001", "{n}.0", " {n}", "１"],
    "order_date": ["{d}", "{d}", "{d}", "2025-02-30", "2025/01/05", "2099-01-01", "1999-12-31", " {d}", "{d} "],
    "product_code": ["YP1001", "YP1002", "YP9999", "YP,1", "ｙｐ1001", " YP1001", "'YP1001", "YP1E+5", ""],
    "product_name": ["", "安心宁", " 安心宁", "安心宁\u3000", "安" * 101, "a\u00a0b", "'安心宁"],
    "approval_number": ["", "", "国药准字H20249871", "国药准字 h2024 9871", " 国药准字H20249871", "国药准字H2024987100000"],
    "batch_number": ["", "A1", "A 1", "'A1", "ＢＮ１", "B" * 41],
    "quantity": ["1", "10.5", "3", "0", "-1", "1.2345", "007", "1,000", "1000000", "0.001", "2.50"],
    "unit_price": ["32.5", "32.50", "1.2345", "0", "100000", "1.23456", "-1", "10", "0.01"],
    "invoice_number": ["", "INV1", " INV1", "INV 1"],
    "payment_due": ["", "", "{later}", "{earlier}", "2040-01-01", "2025-13-01"],
    "paid_date": ["", "", "{later}", "{earlier}", "2099-01-01", "{d}"],
    "paid_amount": ["", "", "0", "0.00", "1", "1.005", "99999999", "-5", "{amount}"],
}


def _rows(customers_: dict, n: int, seed: int) -> list[dict]:
    """`n` rows, most of them plain, the rest with one or more cells in one of the shapes the importer treats
    otherwise; order numbers from a small pool, so that lines repeat and orders name two customers."""
    rnd = random.Random(seed)
    who = [
        {"credit_code": customers_["xiehe"].credit_code},
        {"credit_code": customers_["huashan"].credit_code},
        {"external_id": "ERP-0042"},
        {"credit_code": customers_["both"].credit_code, "external_id": "ERP-0007"},
        {"credit_code": customers_["xiehe"].credit_code, "external_id": "ERP-0007"},  # two customers
        {"credit_code": customers_["xiehe"].credit_code.lower()},
        {"credit_code": "91110000000000000X"},  # nobody
        {"external_id": "ERP-0042 "},
        {},
    ]
    rows = []
    for _ in range(n):
        o, ln = rnd.randrange(n // 3 + 1), rnd.randrange(1, 5)
        day = today_minus(rnd.randrange(1, 700))
        fill = {"o": o, "n": ln, "d": day, "later": today_minus(0) if rnd.random() < 0.5 else day,
                "earlier": "2001-01-01", "amount": ""}  # fmt: skip
        row = {k: v[0].format(**fill) if v[0] else v[0] for k, v in VARIANTS.items()}
        row.update(who[0] if rnd.random() < 0.6 else rnd.choice(who[:4]))
        if rnd.random() < 0.35:  # something unusual in a few cells
            for key in rnd.sample(list(VARIANTS), rnd.randrange(1, 3)):
                row[key] = rnd.choice(VARIANTS[key]).format(**fill)
            if rnd.random() < 0.2:
                row.pop("credit_code", None), row.pop("external_id", None)
                row.update(rnd.choice(who))
        else:
            row["quantity"] = rnd.choice(["1", "10.5", "3", "2.50", "0.001", "120"])
            row["unit_price"] = rnd.choice(["32.5", "32.50", "1.2345", "10", "0.01", "99999"])
            row["product_code"] = rnd.choice(["YP1001", "YP1002", "YP9999"])
            if rnd.random() < 0.3:
                row["approval_number"] = "国药准字H20249871"
            if rnd.random() < 0.4:
                row["paid_date"] = str(today_minus(0))
                row["paid_amount"] = rnd.choice(["", "1", "0.5"])
            if rnd.random() < 0.3:
                row["payment_due"] = str(day)
        rows.append(row)
    return rows


def test_a_file_of_every_kind_of_cell_is_stored_and_reported_as_the_ordinary_import_does(
    customers_, users, tmp_path, lane, monkeypatch
):
    """In one block, as the row-by-row lane reads 10,000 rows at a time (the name a product code is first recorded
    with is the last one of the first chunk holding it), then in blocks of a few lines."""
    path = write_csv(tmp_path / "orders.csv", _rows(customers_, 1500, seed=5))
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 1 << 20)

    loaded, ordinary = _both(path)

    assert sum(lane) > 300  # most plain lines went through the kernels
    assert loaded["stored"]["lines"] and len(loaded["errors"]) > 100
    assert {e["code"] for e in loaded["errors"]} >= {"duplicate_line", "order_two_customers", "customer_not_found"}
    assert loaded == ordinary

    monkeypatch.setattr(columnar, "BLOCK_BYTES", 2048)
    _wipe()
    in_blocks, ordinary = _both(path)
    for outcome in (in_blocks, ordinary):
        for code in outcome["stored"]["codes"]:
            code.pop("name")
    assert in_blocks == ordinary


def test_a_repeated_line_and_a_split_order_far_apart_in_the_file_are_refused_at_their_rows(
    customers_, users, tmp_path, lane
):
    """The checks the database makes at the end: the repeat and the split order are in other blocks than their first
    lines, and the second copy of a line whose first copy names the wrong customer is a repeat all the same."""
    xiehe, huashan = customers_["xiehe"], customers_["huashan"]
    d = today_minus
    rows = [line("A-1", 1, d(30), xiehe, "YP1001", 1, "10"), line("A-2", 1, d(30), huashan, "YP1001", 1, "10")]
    rows += [line(f"F-{i}", 1, d(20), xiehe, "YP1002", 2, "3.5") for i in range(60)]
    rows += [line("A-1", 1, d(30), xiehe, "YP1001", 1, "10"),  # repeat of row 2 (row 64)
             line("A-1", 2, d(30), huashan, "YP1001", 1, "10"),  # A-1 is 协和's
             line("A-1", 2, d(30), xiehe, "YP1001", 1, "10")]  # repeat of row 65, refused itself  # fmt: skip
    path = write_csv(tmp_path / "orders.csv", rows)

    loaded, ordinary = _both(path)

    assert loaded == ordinary
    assert [(e["row"], e["code"], e["params"].get("row")) for e in loaded["errors"]] == [
        (64, "duplicate_line", 2), (65, "order_two_customers", 2), (66, "duplicate_line", 65),
    ]  # fmt: skip
    assert len(loaded["stored"]["lines"]) == 62


def test_blank_lines_rows_of_another_width_and_cells_over_two_lines_keep_their_row_numbers(
    customers_, users, tmp_path, lane
):
    xiehe = customers_["xiehe"]
    d = today_minus
    path = write_csv(tmp_path / "orders.csv", [line(f"W-{i}", 1, d(9), xiehe, "YP1001", 1, "10") for i in range(30)])
    text = path.read_text(encoding="utf-8-sig").splitlines()
    text.insert(5, "")  # a blank line
    text.insert(9, "W-x,1")  # too few cells
    text.insert(12, text[12].replace("YP1001,", 'YP1001,"二行\n名称",', 1))  # a product name over two lines
    text.insert(20, text[20] + ",extra,cells")  # too many
    text.insert(25, "W-30,1," + str(d(40)) + "," + xiehe.credit_code)  # short, but valid as the template pads it
    path.write_text("\ufeff" + "\n".join(text) + "\n\n\n", encoding="utf-8")

    loaded, ordinary = _both(path)

    assert loaded == ordinary
    assert loaded["errors"]


def test_all_or_nothing_refuses_the_whole_file_for_a_line_refused_at_the_end(customers_, users, tmp_path, lane):
    xiehe = customers_["xiehe"]
    rows = [line(f"N-{i}", 1, today_minus(9), xiehe, "YP1001", 1, "10") for i in range(40)]
    rows.append(line("N-3", 1, today_minus(9), xiehe, "YP1001", 1, "10"))  # a repeat, found only at the end
    before = BareTable()

    assert _load(write_csv(tmp_path / "o.csv", rows), "--initial-load", "--all-or-nothing") == 1

    assert not OrderLine.objects.exists() and not MonthlyRollup.objects.exists()
    job = _last_job()
    assert job.status == ImportJob.Status.REJECTED
    assert [(e["row"], e["code"]) for e in job.errors] == [(42, "duplicate_line")]
    assert BareTable().indexes == before.indexes


def _refused_at(outcome: dict) -> tuple[str, list, list[int]]:
    """(the job's status, the lines stored, the rows the notes name as unreadable)."""
    rows = [n["params"]["row"] for n in outcome["notes"] if n["code"] == "unreadable_row"]
    return outcome["status"], outcome["stored"]["lines"], rows


def test_a_quotation_mark_nothing_closes_is_read_as_the_ordinary_import_reads_it(customers_, users, tmp_path, lane):
    xiehe = customers_["xiehe"]
    path = write_csv(tmp_path / "orders.csv", [line(f"Q-{i}", 1, today_minus(9), xiehe, "YP1001", 1, "10")
                                               for i in range(10)])  # fmt: skip
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('Q-99,1,' + str(today_minus(9)) + ',' + xiehe.credit_code + ',,"unclosed,YP1001,,,,1,10\n')

    loaded, ordinary = _both(path)

    assert loaded == ordinary
    assert _refused_at(ordinary) == ("failed", [], [12])


def test_a_quotation_mark_nothing_closes_in_the_last_column_refuses_the_file_as_the_ordinary_import_does(
    customers_, users, tmp_path, lane
):
    """Arrow reads a last cell opened by a quote that nothing closes as the rest of the file and says nothing: the
    lane stored a good line whose currency was the text after the quote. The ordinary import refuses the file,
    naming the row."""
    xiehe = customers_["xiehe"]
    path = write_csv(tmp_path / "orders.csv", [line(f"Q-{i}", 1, today_minus(9), xiehe, "YP1001", 1, "10")
                                               for i in range(10)])  # fmt: skip
    last = line("Q-99", 1, today_minus(9), xiehe, "YP1001", 1, "10")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(",".join(last.get(k, "") for k in KEYS[:-1]) + ',"CNY\n')

    loaded, ordinary = _both(path)

    assert loaded == ordinary
    assert _refused_at(ordinary) == ("failed", [], [12])


def test_a_stray_quote_that_a_later_quote_closes_refuses_the_file_in_both_lanes(customers_, users, tmp_path, lane):
    """A batch cell opened by a stray quote, closed by the quote of an invoice number three rows on: read leniently
    (Arrow, or the csv module as it was), the rows between became one batch number and their orders were lost."""
    xiehe = customers_["xiehe"]
    rows = [line(f"S-{i}", 1, today_minus(9), xiehe, "YP1001", 1, "10") for i in range(10)]
    rows[4]["batch_number"] = '"B2401'
    rows[7]["invoice_number"] = '"INV-7"'
    path = write_csv(tmp_path / "orders.csv", [])
    with open(path, "a", encoding="utf-8") as fh:  # as a hand-edited file has them: the quotes written as typed
        fh.writelines(",".join(row.get(k, "") for k in KEYS) + "\n" for row in rows)

    loaded, ordinary = _both(path)

    assert loaded == ordinary
    assert ordinary["status"] == "failed" and ordinary["stored"]["lines"] == []
    assert [(n["code"], n["params"]) for n in ordinary["notes"] if n["code"] == "stray_quote"] == [
        ("stray_quote", {"row": 6, "line": 9})
    ]


@pytest.mark.parametrize("seed,window", [(0, columnar.SCAN_WINDOW), (1, columnar.SCAN_WINDOW), (2, 3)])
def test_the_lane_finds_the_quotes_the_csv_module_stops_at(tmp_path, seed, window):
    """Whatever the quotes, delimiters, line ends and byte-order mark, `misquoted` says what the csv module meets when
    it reads strictly, as the ordinary import does: a row it could only end at the end of the file, or a cell's closing
    quote followed by more text."""
    rnd = random.Random(seed)
    pieces = ['"', '"', '"', '""', ",", ";", "\t", "\n", "\r\n", "\r", "a", " ", "中"]
    stops = 0
    for i in range(3000):
        delimiter = rnd.choice([",", ";", "\t"])
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(25)))
        path = tmp_path / f"{i}.csv"
        path.write_bytes((b"\xef\xbb\xbf" if rnd.random() < 0.2 else b"") + text.encode())
        with open(path, encoding="utf-8-sig", newline="") as fh:
            try:
                for _cells in csv.reader(fh, delimiter=delimiter, strict=True):
                    pass
                stopped = False
            except csv.Error:
                stopped = True
        stops += stopped
        assert columnar.misquoted(path, delimiter, window) is stopped, (text, delimiter)
    assert 300 < stops < 2700  # both kinds of file were met


@pytest.mark.parametrize("quoted", [False, True])
def test_the_quote_scan_of_a_big_file_does_not_count_the_file_as_the_loads_memory(tmp_path, quoted):
    """The scan maps the file; the pages it has read are the process's memory until let go. Before, a 2 GiB order
    file took the initial load's peak memory (VmHWM) from 449 MiB to 2.2 GiB, over the 500 MB the load is held to.
    Now the peak grows by a few windows, whatever the file's size, with quoted cells on every line or none."""
    row = ('ORD-1,2025-01-01,"A, B",1,"10"\n' if quoted else "ORD-1,2025-01-01,A B,1,10\n").encode()
    path = tmp_path / "big.csv"
    with open(path, "wb") as fh:
        block = row * ((1 << 20) // len(row))
        for _ in range(48):  # 48 MiB: well over what a few windows weigh (the check below), and quick to scan
            fh.write(block)

    def peak_kib() -> int:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))

    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # the peak starts again from the current size
    before = peak_kib()
    assert columnar.misquoted(path, ",", window=4 << 20) is False
    assert peak_kib() - before < 20 << 10  # KiB: a few 4 MiB windows, not the file's 48 MiB


def test_the_lane_allocates_from_the_pool_that_gives_freed_pages_back():
    """Arrow's buffers come from jemalloc, which returns freed pages to the system within a second: with pyarrow's
    default on Linux (mimalloc) the 10 M-line load's peak reached 476 MiB, at the 500 MB limit; a 2 M-line load
    peaked 40–48 MiB lower with jemalloc (docs/benchmarks.md)."""
    import pyarrow as pa

    assert pa.default_memory_pool().backend_name == "jemalloc"


@pytest.mark.parametrize("block", [2048, 1 << 20])
def test_a_cell_longer_than_the_csv_module_reads_loads_row_by_row_and_says_what_the_ordinary_import_says(
    customers_, users, tmp_path, lane, caplog, monkeypatch, block
):
    """A cell of 140,000 characters: longer than Arrow's block (it cannot read the file) or longer than Python's csv
    module reads (the ordinary import stops at its row). The columnar attempt is rolled back, and the file loads
    row by row, which refuses it as the ordinary import does."""
    monkeypatch.setattr(columnar, "BLOCK_BYTES", block)
    xiehe = customers_["xiehe"]
    rows = [line(f"L-{i}", 1, today_minus(9), xiehe, "YP1001", 1, "10") for i in range(10)]
    rows[6]["product_name"] = "长" * 140_000
    path = write_csv(tmp_path / "orders.csv", rows)

    with caplog.at_level("INFO", logger="pharmacrm.sales.importer"):
        loaded, ordinary = _both(path)

    assert loaded == ordinary
    assert "loading row by row" in caplog.text
    assert not loaded["stored"]["lines"]


def test_the_preview_shows_the_first_rows_as_the_ordinary_import_does(customers_, users, tmp_path, monkeypatch):
    """Outside these tests' set-up the first 20 rows go row by row, so that the job's preview is the ordinary one:
    the rows with their actions and errors, a repeated line refused at the end among them."""
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 2048)
    xiehe, huashan = customers_["xiehe"], customers_["huashan"]
    rows = [line(f"P-{i}", 1, today_minus(5), xiehe, "YP1001", 1, "10") for i in range(40)]
    rows[3] = line("P-3", 1, "2025-02-30", xiehe, "YP1001", 1, "10")
    rows[7] = line("P-1", 1, today_minus(5), xiehe, "YP1001", 1, "10")  # a repeat
    rows[30] = line("P-2", 2, today_minus(5), huashan, "YP1001", 1, "10")  # P-2 is 协和's
    path = write_csv(tmp_path / "orders.csv", rows)

    loaded, ordinary = _both(path, preview=True)

    assert loaded == ordinary
    assert [p["action"] for p in loaded["preview"][:9]] == ["create"] * 3 + ["error"] + ["create"] * 3 + ["error", "create"]


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_with_its_writer_thread_the_lane_stores_and_reports_what_the_ordinary_import_does(
    customers_, users, tmp_path, lane
):
    """Outside a test's transaction PostgreSQL writes in a second thread, as in production: the Arrow blocks go to
    COPY on the writer's connection while the reader checks the next; the repeats and split orders are found on the
    writer's connection at the end."""
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '15s'")
    path = write_csv(tmp_path / "orders.csv", _rows(customers_, 600, seed=11))

    loaded, ordinary = _both(path)

    assert sum(lane) > 100
    for outcome in (loaded, ordinary):
        for code in outcome["stored"]["codes"]:
            code.pop("name")
    assert loaded == ordinary
    assert connection.vendor == "postgresql"


@pytest.mark.parametrize("filler", ["", ",", "合计,,,,,,,,,,10,,100"])
def test_the_preview_counts_the_first_rows_as_the_ordinary_import_does_past_blank_and_totals_lines(
    customers_, users, tmp_path, filler
):
    """The ordinary preview shows the first 20 rows that are not blank (nor a report's totals line): with such lines
    among the first rows it reaches further down the file, and the lane must send those rows row by row too — the
    preview lacked its last rows, taken by the kernels."""
    xiehe = customers_["xiehe"]
    path = write_csv(tmp_path / "orders.csv", [line(f"B-{i}", 1, today_minus(5), xiehe, "YP1001", 1, "10")
                                               for i in range(40)])  # fmt: skip
    text = path.read_text(encoding="utf-8-sig").splitlines()
    for at in (3, 5, 7, 9, 11):  # blank, or as wide as the lines (not a row of another width)
        text.insert(at, filler + "," * (text[1].count(",") - filler.count(",")) if filler else "")
    path.write_text("\n".join(text) + "\n", encoding="utf-8")

    loaded, ordinary = _both(path, preview=True)

    assert len(ordinary["preview"]) == 20 and ordinary["preview"][-1]["row"] == 26
    assert loaded == ordinary


def test_the_note_names_the_unknown_product_codes_in_the_order_of_the_file(customers_, users, tmp_path, lane):
    """A code the catalogue lacks on a line the kernels take, then one on a line checked row by row (its line number
    written 01) in the same block: the note named the second first, as the row-by-row checks ran before the kernels'
    lines were counted."""
    xiehe = customers_["xiehe"]
    rows = [line("U-1", 1, today_minus(9), xiehe, "YP1001", 1, "10"), line("U-2", "01", today_minus(9), xiehe, "YP2002", 1, "10"),
            line("U-3", 1, today_minus(9), xiehe, "YP3003", 1, "10"), line("U-4", "01", today_minus(9), xiehe, "YP1001", 1, "10")]  # fmt: skip
    loaded, ordinary = _both(write_csv(tmp_path / "orders.csv", rows))

    assert sum(lane) == 2
    assert [n["params"]["code_list"] for n in ordinary["notes"] if n["code"] == "unknown_products"] == [
        ["YP1001", "YP2002", "YP3003"]
    ]
    assert loaded == ordinary


def test_a_split_order_is_refused_in_the_column_the_ordinary_import_names(customers_, users, tmp_path, lane):
    """The second line of an order names another customer by its external id, beside a credit code cell holding only
    a zero-width space (copied from a web page): no credit code to the ordinary import, which names the external id's
    column; the lane named the credit code's, with the invisible character as its value."""
    xiehe = customers_["xiehe"]
    rows = [line("S-1", 1, today_minus(9), xiehe, "YP1001", 1, "10"),
            line("S-1", 2, today_minus(9), "\u200b", "YP1001", 1, "10", external_id="ERP-0042")]  # fmt: skip
    loaded, ordinary = _both(write_csv(tmp_path / "orders.csv", rows))

    assert [(e["row"], e["column"], e["code"]) for e in ordinary["errors"]] == [(3, "客户外部编号", "order_two_customers")]
    assert loaded == ordinary


def test_all_or_nothing_reports_the_repeats_and_split_orders_after_a_first_error(customers_, users, tmp_path, lane):
    """All or nothing: a date that does not exist near the top refuses the file; the repeated line and the split order
    further down are reported all the same, as the ordinary import reports them."""
    xiehe, huashan = customers_["xiehe"], customers_["huashan"]
    rows = [line(f"N-{i}", 1, today_minus(9), xiehe, "YP1001", 1, "10") for i in range(40)]
    rows[1]["order_date"] = "2025-02-30"
    rows.append(line("N-3", 1, today_minus(9), xiehe, "YP1001", 1, "10"))  # a repeat
    rows.append(line("N-4", 2, today_minus(9), huashan, "YP1001", 1, "10"))  # N-4 is 协和's
    loaded, ordinary = _both(write_csv(tmp_path / "o.csv", rows), "--all-or-nothing")

    assert [(e["row"], e["code"]) for e in ordinary["errors"]] == [
        (3, "impossible_date"), (42, "duplicate_line"), (43, "order_two_customers")
    ]  # fmt: skip
    assert loaded == ordinary


def test_the_errors_kept_for_the_page_are_the_files_first_with_a_line_refused_at_the_end(
    customers_, users, tmp_path, lane, monkeypatch
):
    """The job keeps the file's first errors for its page (1,000; 5 here): a repeated line near the top, refused only
    at the end, was left out once as many errors further down had been kept — the ordinary import keeps it."""
    monkeypatch.setattr(base, "MAX_KEPT_ERRORS", 5)
    xiehe = customers_["xiehe"]
    rows = [line(f"K-{i}", 1, today_minus(9), xiehe, "YP1001", 1, "10") for i in range(3)]
    rows.append(line("K-0", 1, today_minus(9), xiehe, "YP1001", 1, "10"))  # a repeat of row 2, at row 5
    rows += [line(f"K-{i}", 1, "2025-02-30", xiehe, "YP1001", 1, "10") for i in range(10, 20)]
    loaded, ordinary = _both(write_csv(tmp_path / "orders.csv", rows))

    assert [(e["row"], e["code"]) for e in ordinary["errors"]] == [(5, "duplicate_line")] + [
        (r, "impossible_date") for r in range(6, 10)
    ]
    assert loaded == ordinary


def test_a_product_code_is_linked_by_its_approval_number_whatever_later_lines_give(customers_, users, tmp_path, lane):
    """A line links its code to the catalogue by its approval number; a later line of the same code gives one the
    catalogue lacks. The ordinary import left the code unlinked when both lines fell in one chunk of 10,000 rows
    (the chunk's last approval number won) and linked it otherwise, while its note said nothing of the code; the lane
    linked it. Now both link it, as a later approval number the catalogue lacks never unlinks a code."""
    xiehe = customers_["xiehe"]
    rows = [line("L-1", 1, today_minus(9), xiehe, "YP1001", 1, "10", approval_number="国药准字H20249871"),
            line("L-2", "01", today_minus(9), xiehe, "YP1001", 1, "10", approval_number="国药准字Z20000001")]  # fmt: skip
    loaded, ordinary = _both(write_csv(tmp_path / "orders.csv", rows))

    product = Product.objects.get(approval_number="国药准字H20249871")
    assert [(c["code"], c["product_id"]) for c in ordinary["stored"]["codes"]] == [("YP1001", product.pk)]
    assert loaded == ordinary


def test_a_code_linked_only_by_a_line_refused_at_the_end_is_named_in_the_note(customers_, users, tmp_path, lane):
    """The only line giving the code's approval number repeats an earlier line: refused, it links nothing, and the
    code's lines are counted in the note of codes the catalogue lacks — the lane left the code out of the note."""
    xiehe = customers_["xiehe"]
    rows = [line(f"R-{i}", 1, today_minus(9), xiehe, "YP1001", 1, "10") for i in range(5)]
    rows.append(line("R-0", 1, today_minus(9), xiehe, "YP1001", 1, "10", approval_number="国药准字H20249871"))
    loaded, ordinary = _both(write_csv(tmp_path / "orders.csv", rows))

    assert [n["params"]["lines"] for n in ordinary["notes"] if n["code"] == "unknown_products"] == [5]
    assert loaded == ordinary


# cells at the edges of the shapes the kernels take: invisible and Unicode spaces, signs, exponents, full width,
# our export's escapes, Excel's error values, another currency
EDGES = {
    "order_number": ["SO-{o}\u200b", "\u200bSO-{o}", "SO {o}", "SO-{o}\t", "=SO", "'=SO-{o}", "1E+5", "１２"],
    "line_number": ["+1", "1e0", "٣", "00", "{n} ", "99999", "100000"],
    "order_date": ["2025-1-05", "20250105", "2025-01-05 00:00:00", "{d}\u200b", "２０２５-０１-０５", "{d}\t"],
    "credit_code": ["{cc}\u200b", "\u200b{cc}", "{cc} ", " {cc}", "{lc}"],
    "external_id": ["ERP-0042\u200b", "erp-0042", "ERP-0042\t", "ERP\u00a00042", "'ERP-0042"],
    "product_code": ["YP1001\u200b", "YP1001\t", "YP1001\xa0", "YP 1001", "=YP", "'=YP1"],
    "product_name": ["安心宁\u200b", "\u200b安心宁", "安心\n宁", "安心\r宁", "'=x", "=x", "安心宁\x85", "\u180e安", "#N/A", " #N/A"],
    "approval_number": ["国药准字H20249871\u200b", "国药准字h20249871", "'国药准字H20249871", "#REF!", "国药准字Z20000001"],
    "batch_number": ["A1\u200b", "'-A1", "-A1", "A1\t"],
    "quantity": ["1.", ".5", "+1", "1e2", "１", "1 ", "999999.999", "999999", "0.0005", "-0", "0.0"],
    "unit_price": ["99999.9999", "99999", "1.", ".5", "+1", "１", "0.00001", "10.00000"],
    "amount": ["10", "10.00", "10.0", "9.99", "10.01", "1,000", "0", "-10", "999999999.99", "10.001"],
    "invoice_number": ["INV\u200b", "'-1", "-1"],
    "payment_due": ["{d}\u200b", "2025-1-1", "{d} "],
    "paid_date": ["{d}\u200b", "{d} "],
    "paid_amount": ["0", "0.0", "0.00", ".0", "0.", "00", "10.00", "10", "1,0"],
    "currency": ["", "CNY", "RMB", "cny", "人民币 ", "USD", "#N/A", "\u200bCNY"],
}


@pytest.mark.parametrize("seed", range(4))
def test_cells_at_the_edges_of_the_plain_shapes_are_stored_and_reported_as_the_ordinary_import_does(
    customers_, users, tmp_path, lane, seed
):
    rnd = random.Random(seed)
    c = customers_
    rows = []
    for i in range(300):
        d = today_minus(rnd.randrange(1, 300))
        row = line(f"SO-{i % 120}", 1 + i // 120, d, c["xiehe"], rnd.choice(["YP1001", "YP2002"]), 1, 10,
                   product_name="安心宁")  # fmt: skip
        if rnd.random() < 0.2:
            row["credit_code"], row["external_id"] = "", "ERP-0042"
        elif rnd.random() < 0.2:
            row["credit_code"] = c["huashan"].credit_code
        if rnd.random() < 0.2:  # repeats and split orders
            row["order_number"], row["line_number"] = f"SO-{rnd.randrange(40)}", str(rnd.randrange(1, 4))
        if rnd.random() < 0.2:
            row["approval_number"] = rnd.choice(["国药准字H20249871", "国药准字Z20000001", "国药准字h2024 9871"])
        for key in rnd.sample(list(EDGES), rnd.randrange(0, 3)):
            row[key] = rnd.choice(EDGES[key]).format(o=i, n=1, d=d, cc=c["xiehe"].credit_code,
                                                     lc=c["xiehe"].credit_code.lower())  # fmt: skip
        rows.append(row)

    loaded, ordinary = _both(write_csv(tmp_path / "orders.csv", rows))

    for outcome in (loaded, ordinary):
        for code in outcome["stored"]["codes"]:
            code.pop("name")
    assert sum(lane) > 100
    assert loaded == ordinary


def test_a_customer_merged_twice_that_still_holds_its_code_sends_its_orders_to_the_last_survivor(
    customers_, users, tmp_path, lane
):
    """A record merged before merges freed a customer's codes still holds its credit code, and its survivor was
    merged in turn. An order naming it on one line and the last survivor on another is one customer's order: both
    imports store it there (the ordinary import stopped one step short, at a merged-away record, and refused the
    second line as naming another customer)."""
    from pharmacrm.customers.models import Institution

    first, middle, last = customers_["huashan"], customers_["both"], customers_["xiehe"]
    Institution.objects.filter(pk=first.pk).update(merged_into=middle)
    Institution.objects.filter(pk=middle.pk).update(merged_into=last)
    rows = [line("MC-1", 1, today_minus(9), first, "YP1001", 1, "10"),
            line("MC-1", 2, today_minus(9), last, "YP1001", 2, "10")]  # fmt: skip
    loaded, ordinary = _both(write_csv(tmp_path / "orders.csv", rows))

    assert ordinary["errors"] == []
    assert {row["institution_id"] for row in ordinary["stored"]["lines"]} == {last.pk}
    assert loaded == ordinary
