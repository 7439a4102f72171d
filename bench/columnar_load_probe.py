"""Issue 5 design probe (session 32): how fast an *initial load* of order lines could go with a compiled, columnar
reader (pyarrow) instead of the importer's per-row Python, on this machine. Not the product's import: the initial
load's columnar lane (`pharmacrm/sales/columnar.py`, session 33) grew out of it, with the checks it leaves out.

    python bench/columnar_load_probe.py N                                  # SQLite (a scratch file)
    DATABASE_URL=postgres://… python bench/columnar_load_probe.py N        # PostgreSQL (a scratch table)

What it does, per 1 MiB-ish record batch of the file (the template's format, `initial_load_probe`'s file):
- the checks the importer's `Fast.row` makes that decide whether a line is well-formed, vectorised (regular
  expressions, lengths, decimal casts, quantity × price against the amount), in pyarrow's C++;
- the customer look-up as a vectorised `index_in` over the credit codes (no database query: the probe's
  customers are made up);
- the importer's row fingerprint (`row_hash`: blake2b over the joined canonical text), the text joined in C++,
  the digest in a Python loop — the one per-line Python loop left;
- SQLite: `executemany` into a bare copy of `sales_orderline`; PostgreSQL: COPY of the batch written as CSV by
  pyarrow (no per-line Python at all on that side);
- afterwards, in the same transaction: the four secondary indexes built, and the monthly rollups computed from
  the lines in one GROUP BY (what a first load would do instead of per-chunk deltas).
It leaves out what the product would still have to do: reading the real customers, the in-file duplicate and
order-owner checks, products, audit, progress. So its rate is an upper bound for the columnar design."""

from __future__ import annotations

import datetime as dt
import io
import os
import sys
import time
from hashlib import blake2b

import common

common.setup()

import initial_load_probe as probe  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.csv as pcsv  # noqa: E402

HEAD = ["order_number", "line_number", "order_date", "credit_code", "external_id", "customer_name", "product_code",
        "product_name", "approval_number", "batch_number", "quantity", "unit_price", "amount", "invoice_number",
        "payment_due", "paid_date", "paid_amount"]  # fmt: skip
HUNDRED = pa.scalar(100, pa.decimal128(5, 0))
ROLLUP = (
    "CREATE TABLE probe_rollup AS SELECT institution_id, month, SUM(amount_fen) AS amount_fen, COUNT(*) AS lines, "
    "COUNT(DISTINCT CASE WHEN amount_fen > 0 THEN order_number END) AS orders, COUNT(DISTINCT product_code) AS products, "
    "SUM(paid_fen) AS paid_fen, SUM(outstanding_fen) AS outstanding_fen FROM probe_orderline "
    "GROUP BY institution_id, month"
)


def _null_if_empty(col):
    return pc.if_else(pc.equal(col, ""), None, col)


def _fen(col):
    return pc.cast(pc.multiply(pc.cast(_null_if_empty(col), pa.decimal128(17, 2)), HUNDRED), pa.int64())


def columns(batch: pa.RecordBatch, codes: dict[str, int]) -> tuple[list, int]:
    """The batch's well-formed lines as the line table's columns (the row fingerprint last); how many lines the
    vectorised checks refused (they would go to the importer's careful path)."""
    c = dict(zip(HEAD, batch.columns, strict=True))
    ok = pc.and_(pc.match_substring_regex(c["line_number"], r"^[0-9]{1,6}$"),
                 pc.match_substring_regex(c["order_date"], r"^20[0-9]{2}-[01][0-9]-[0-3][0-9]$"))  # fmt: skip
    for key, pattern in (
        ("credit_code", r"^[0-9A-Z]{18}$"), ("quantity", r"^[0-9]{1,11}(\.[0-9]{1,3})?$"),
        ("unit_price", r"^[0-9]{1,10}(\.[0-9]{1,4})?$"), ("amount", r"^(-?[0-9]{1,12}(\.[0-9]{1,2})?)?$"),
        ("paid_amount", r"^([0-9]{1,12}(\.[0-9]{1,2})?)?$"), ("payment_due", r"^(20[0-9]{2}-[01][0-9]-[0-3][0-9])?$"),
        ("paid_date", r"^(20[0-9]{2}-[01][0-9]-[0-3][0-9])?$"), ("order_number", r"^[!-~]{1,40}$"),
        ("product_code", r"^[!-+\--~]{1,40}$"),
    ):  # fmt: skip
        ok = pc.and_(ok, pc.match_substring_regex(c[key], pattern))
    for key, most in (("product_name", 100), ("batch_number", 40), ("invoice_number", 40)):
        ok = pc.and_(ok, pc.less_equal(pc.utf8_length(c[key]), most))
    refused = batch.num_rows - pc.sum(ok).as_py()
    c = dict(zip(HEAD, batch.filter(ok).columns, strict=True))
    od = c["order_date"]
    pc.cast(od, pa.date32())  # a real date, or an error (a real import would send the line to the careful path)
    month = pc.binary_join_element_wise(pc.utf8_slice_codeunits(od, 0, 7), "-01", "")
    qty = pc.cast(pc.cast(c["quantity"], pa.decimal128(14, 3)), pa.string())
    price = pc.cast(pc.cast(c["unit_price"], pa.decimal128(14, 4)), pa.string())
    amount = _fen(c["amount"])
    mismatch = pc.greater(pc.abs(pc.subtract(
        pc.multiply(pc.multiply(pc.cast(qty, pa.float64()), pc.cast(price, pa.float64())), 100.0),
        pc.cast(amount, pa.float64()))), 1.0)  # fmt: skip
    if pc.any(mismatch).as_py():
        raise SystemExit("the probe's file has an amount that is not quantity × price")
    paid = _null_if_empty(c["paid_date"])
    paid_fen = pc.if_else(pc.is_null(paid), 0, pc.fill_null(_fen(c["paid_amount"]), amount))
    outstanding = pc.max_element_wise(pc.subtract(amount, paid_fen), 0)
    for code in pc.unique(c["credit_code"]).to_pylist():
        codes.setdefault(code, len(codes) + 1)
    inst = pc.add(pc.index_in(c["credit_code"], value_set=pa.array(list(codes))), 1)
    values = [c["order_number"], pc.cast(pc.cast(c["line_number"], pa.int32()), pa.string()), od, month,
              pc.cast(inst, pa.string()), c["product_code"], c["product_name"], c["batch_number"], qty, price,
              pc.cast(amount, pa.string()), c["invoice_number"], _null_if_empty(c["payment_due"]), paid,
              pc.cast(paid_fen, pa.string())]  # fmt: skip
    joined = pc.binary_join_element_wise(*[pc.fill_null(v, "") for v in values], "\x1f").to_pylist()
    hashes = [int.from_bytes(blake2b(t.encode(), digest_size=8).digest(), "big", signed=True) for t in joined]
    out = [values[0], pc.cast(c["line_number"], pa.int32()), od, month, inst, *values[5:10], amount, values[11],
           values[12], paid, paid_fen, outstanding, pa.array(hashes, pa.int64())]  # fmt: skip
    return out, refused


def _batches(path):
    read = pcsv.ReadOptions(column_names=HEAD, skip_rows=1, block_size=1 << 20)
    convert = pcsv.ConvertOptions(column_types=dict.fromkeys(HEAD, pa.string()), strings_can_be_null=False,
                                  quoted_strings_can_be_null=False)  # fmt: skip
    return pcsv.open_csv(path, read_options=read, convert_options=convert)


LOADED = probe.COLUMNS[:17]  # the line's own columns; job and time are constants of the load


def _sqlite(path) -> dict:
    con, db = probe.scratch_sqlite("columnar.sqlite3")
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    insert = (f"INSERT INTO probe_orderline ({', '.join(probe.COLUMNS)}) "
              f"VALUES ({', '.join('?' * len(LOADED))}, 1, '{now}')")  # fmt: skip
    codes: dict[str, int] = {}
    parts = dict.fromkeys(("read_check_hash", "to_python", "insert"), 0.0)
    n = refused = 0
    w0, c0 = time.time(), time.process_time()
    con.execute("BEGIN")
    for batch in _batches(path):
        t = time.time()
        out, bad = columns(batch, codes)
        t1 = time.time()
        rows = list(zip(*[col.to_pylist() for col in out], strict=True))
        t2 = time.time()
        con.executemany(insert, rows)
        t3 = time.time()
        parts["read_check_hash"] += t1 - t
        parts["to_python"] += t2 - t1
        parts["insert"] += t3 - t2
        n += len(rows)
        refused += bad
    w1 = time.time()
    for sql in probe.INDEXES:
        con.execute(sql)
    w2 = time.time()
    con.execute(ROLLUP)
    w3 = time.time()
    con.execute("COMMIT")
    w4, c4 = time.time(), time.process_time()
    con.close()
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    return {"lines": n, "refused": refused, "wall_s": round(w4 - w0, 1), "lines_per_s": round(n / (w4 - w0)),
            "cpu_s": round(c4 - c0, 1), "parts_wall_s": {k: round(v, 1) for k, v in parts.items()},
            "load_wall_s": round(w1 - w0, 1), "index_wall_s": round(w2 - w1, 1), "rollup_wall_s": round(w3 - w2, 1),
            "commit_wall_s": round(w4 - w3, 1)}  # fmt: skip


def _postgresql(path) -> dict:
    import psycopg

    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    codes: dict[str, int] = {}
    n = refused = 0
    client = 0.0
    with psycopg.connect(os.environ["DATABASE_URL"]) as con:
        con.execute("DROP TABLE IF EXISTS probe_orderline")
        con.execute("DROP TABLE IF EXISTS probe_rollup")
        cols = ", ".join(f"{c} {probe.TYPES[c]}" for c in probe.COLUMNS)
        con.execute(f"CREATE TABLE probe_orderline (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, {cols}, "
                    f"CHECK (line_number > 0))")  # fmt: skip
        con.commit()
        pid = con.execute("SELECT pg_backend_pid()").fetchone()[0]
        s0, w0, c0 = probe._backend_cpu(pid), time.time(), time.process_time()
        names = ", ".join(LOADED)
        with con.cursor().copy(f"COPY probe_orderline ({names}, job_id, imported_at) FROM STDIN (FORMAT csv)") as cp:
            for batch in _batches(path):
                t = time.time()
                out, bad = columns(batch, codes)
                table = pa.table([*out, pa.repeat(1, len(out[0])), pa.repeat(now, len(out[0]))],
                                 names=[*LOADED, "job_id", "imported_at"])  # fmt: skip
                buf = io.BytesIO()
                pcsv.write_csv(table, buf, pcsv.WriteOptions(include_header=False))
                client += time.time() - t
                cp.write(buf.getvalue())
                n += table.num_rows
                refused += bad
        s1, w1 = probe._backend_cpu(pid), time.time()
        con.execute("SET maintenance_work_mem = '256MB'")
        for sql in probe.INDEXES:
            con.execute(sql)
        s2, w2 = probe._backend_cpu(pid), time.time()
        con.execute(ROLLUP)
        s3, w3 = probe._backend_cpu(pid), time.time()
        con.commit()
        w4, c4 = time.time(), time.process_time()
        con.execute("DROP TABLE probe_orderline")
        con.execute("DROP TABLE probe_rollup")
        con.commit()
    return {"lines": n, "refused": refused, "wall_s": round(w4 - w0, 1), "lines_per_s": round(n / (w4 - w0)),
            "client_cpu_s": round(c4 - c0, 1), "client_wall_s": round(client, 1),
            "copy_wall_s": round(w1 - w0, 1), "copy_server_cpu_s": round(s1 - s0, 1),
            "index_wall_s": round(w2 - w1, 1), "index_server_cpu_s": round(s2 - s1, 1),
            "rollup_wall_s": round(w3 - w2, 1), "rollup_server_cpu_s": round(s3 - s2, 1),
            "commit_wall_s": round(w4 - w3, 1)}  # fmt: skip


def main(n: int) -> dict:
    probe._check_model()
    path = probe._file(n)
    result = _postgresql(path) if os.environ.get("DATABASE_URL") else _sqlite(path)
    result["pyarrow"] = pa.__version__
    return result


if __name__ == "__main__":
    common.save("columnar_load_probe", main(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000))
