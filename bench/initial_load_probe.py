"""Issue 5 design probe: the CPU floor of an 'initial load' of order lines, in CPU seconds per line, so that a
loaded machine can still measure it. Not the product's import: no customer look-up, no duplicate or merge
checks, no rollups, no audit. It answers one question for the open design decision: if the secondary indexes
were left off during a load into an empty table and built afterwards, how fast could 2 cores go at best?

    python bench/initial_load_probe.py N             # SQLite (a scratch file under BENCH_ORDERS_DIR)
    DATABASE_URL=postgres://… python bench/initial_load_probe.py N     # PostgreSQL (a scratch table)

Parts, each timed on its own: reading the CSV (csv.reader alone, then with the importer's `Fast.row` checks and
the row tuple); loading the rows with the indexes in place (executemany / COPY in 20,000-row transactions);
loading them into the bare table and building the indexes afterwards. SQLite runs in this process, so its
CPU is this process's; PostgreSQL's is the backend's, read from /proc (parallel index builds off).
The file is orders_bench's format over 60,000 made-up credit codes (`orders-probe-N.csv`, reused)."""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
import sqlite3
import sys
import time

import common

common.setup()

import orders_bench  # noqa: E402

from pharmacrm.customers import importer as customer_importer  # noqa: E402
from pharmacrm.sales.importer import Fast  # noqa: E402
from pharmacrm.sales.models import OrderLine  # noqa: E402

COLUMNS = ("order_number", "line_number", "order_date", "month", "institution_id", "product_code", "product_name",
           "batch_number", "quantity", "unit_price", "amount_fen", "invoice_number", "payment_due", "paid_date",
           "paid_fen", "outstanding_fen", "row_hash", "job_id", "imported_at")  # fmt: skip
TYPES = {  # sales_orderline as of migration sales 0008 (checked against the model below)
    "order_number": "varchar(40) NOT NULL", "line_number": "integer NOT NULL", "order_date": "date NOT NULL",
    "month": "date NOT NULL", "institution_id": "bigint NOT NULL", "product_code": "varchar(40) NOT NULL",
    "product_name": "varchar(100) NOT NULL", "batch_number": "varchar(40) NOT NULL",
    "quantity": "numeric(14,3) NOT NULL", "unit_price": "numeric(14,4) NOT NULL", "amount_fen": "bigint NOT NULL",
    "invoice_number": "varchar(40) NOT NULL", "payment_due": "date NULL", "paid_date": "date NULL",
    "paid_fen": "bigint NOT NULL", "outstanding_fen": "bigint NOT NULL", "row_hash": "bigint NOT NULL",
    "job_id": "bigint NULL", "imported_at": "timestamp NOT NULL",
}  # fmt: skip
INDEXES = (
    "CREATE UNIQUE INDEX probe_key ON probe_orderline (order_number, line_number)",
    "CREATE INDEX probe_customer_month ON probe_orderline (institution_id, month, product_code)",
    "CREATE INDEX probe_open_items ON probe_orderline (institution_id, payment_due) WHERE outstanding_fen > 0",
    "CREATE INDEX probe_batch ON probe_orderline (batch_number) WHERE NOT (batch_number = '')",
)
CHUNK = 20_000


def _check_model() -> None:
    fields = {f.column for f in OrderLine._meta.concrete_fields} - {"id"}
    if fields != set(COLUMNS):
        raise SystemExit(f"sales_orderline changed: update the probe's columns ({sorted(fields ^ set(COLUMNS))})")
    names = {i.name for i in OrderLine._meta.indexes} | {c.name for c in OrderLine._meta.constraints}
    if names != {"orderline_key", "orderline_customer_month", "orderline_open_items", "orderline_batch"}:
        raise SystemExit(f"sales_orderline's indexes changed: update the probe's ({sorted(names)})")


def _file(n: int):
    path = orders_bench.ORDERS_DIR / f"orders-probe-{n}.csv"
    if not path.exists():
        rng = random.Random(1)
        alnum = "0123456789ABCDEFGHJKLMNPQRTUWXY"
        kinds = list(orders_bench.KIND_WEIGHTS)
        customers = [("".join(rng.choice(alnum) for _ in range(18)), f"客户{i}", kinds[i % len(kinds)])
                     for i in range(60_000)]  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        orders_bench.write_orders(path, n, end=dt.date.today() - dt.timedelta(days=1), days=orders_bench.DAYS,
                                  seed=orders_bench.SEED, prefix="SO", customers=customers)  # fmt: skip
    return path


def _parse(path, n: int) -> tuple[list[tuple], dict]:
    t0 = time.process_time()
    with open(path, encoding="utf-8-sig", newline="") as f:
        for _cells in csv.reader(f):
            pass
    csv_only = time.process_time() - t0
    ids: dict[str, int] = {}
    rows = []
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    t0 = time.process_time()
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        fast = Fast(list(enumerate(c for c in customer_importer.columns_for("orders") if c.template)), dt.date.today())
        fast.nul = False
        for cells in reader:
            t = fast.row(cells)
            if t is None:
                raise SystemExit(f"the probe's file has a line the fast path refuses: {cells}")
            on, line, od, month, cc, _ext, pc, pn, _ap, bn, qty, price, amount, inv, due, paid, paid_fen = t
            iid = ids.get(cc) or ids.setdefault(cc, len(ids) + 1)
            rows.append((on, line, od, month, iid, pc, pn, bn, qty, price, amount, inv, due, paid, paid_fen,
                         max(amount - paid_fen, 0), hash(t), 1, now))  # fmt: skip
    parse = time.process_time() - t0
    return rows, {"csv_reader_us": csv_only / n * 1e6, "csv_fast_row_tuple_us": parse / n * 1e6}


def scratch_sqlite(name: str):
    """(connection, path) of a fresh SQLite file holding the bare `probe_orderline`, set up as the importer's writer."""
    db = orders_bench.ORDERS_DIR / name
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA cache_size=-65536")  # the importer's writer (WRITER_CACHE_KB)
    cols = ", ".join(f"{c} {TYPES[c]}" for c in COLUMNS)
    con.execute(f"CREATE TABLE probe_orderline (id integer PRIMARY KEY AUTOINCREMENT, {cols})")
    return con, db


def _sqlite(rows: list[tuple], indexed: bool) -> dict:
    con, db = scratch_sqlite("probe.sqlite3")
    if indexed:
        for sql in INDEXES:
            con.execute(sql)
    insert = f"INSERT INTO probe_orderline ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    c0, w0 = time.process_time(), time.time()
    for i in range(0, len(rows), CHUNK):
        con.execute("BEGIN")
        con.executemany(insert, rows[i : i + CHUNK])
        con.execute("COMMIT")
    c1, w1 = time.process_time(), time.time()
    if not indexed:
        con.execute("BEGIN")
        for sql in INDEXES:
            con.execute(sql)
        con.execute("COMMIT")
    c2, w2 = time.process_time(), time.time()
    con.close()
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    return {"load_cpu_us": (c1 - c0) / len(rows) * 1e6, "load_wall_s": w1 - w0,
            "index_build_cpu_us": (c2 - c1) / len(rows) * 1e6, "index_build_wall_s": w2 - w1}  # fmt: skip


def _backend_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgresql(rows: list[tuple], indexed: bool) -> dict:
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS probe_orderline")
        cols = ", ".join(f"{c} {TYPES[c]}" for c in COLUMNS)
        con.execute(f"CREATE TABLE probe_orderline (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, {cols})")
        if indexed:
            for sql in INDEXES:
                con.execute(sql)
        pid = con.execute("SELECT pg_backend_pid()").fetchone()[0]
        s0, c0, w0 = _backend_cpu(pid), time.process_time(), time.time()
        for i in range(0, len(rows), CHUNK):
            with con.transaction(), con.cursor().copy(f"COPY probe_orderline ({', '.join(COLUMNS)}) FROM STDIN") as cp:
                for row in rows[i : i + CHUNK]:
                    cp.write_row(row)
        s1, c1, w1 = _backend_cpu(pid), time.process_time(), time.time()
        if not indexed:
            con.execute("SET maintenance_work_mem = '256MB'")
            con.execute("SET max_parallel_maintenance_workers = 0")  # so that the backend's CPU is all of it
            for sql in INDEXES:
                con.execute(sql)
        s2, w2 = _backend_cpu(pid), time.time()
        con.execute("DROP TABLE probe_orderline")
    n = len(rows)
    return {"load_server_cpu_us": (s1 - s0) / n * 1e6, "load_client_cpu_us": (c1 - c0) / n * 1e6,
            "load_wall_s": w1 - w0, "index_build_server_cpu_us": (s2 - s1) / n * 1e6,
            "index_build_wall_s": w2 - w1}  # fmt: skip


def main(n: int) -> dict:
    _check_model()
    rows, result = _parse(_file(n), n)
    load = _postgresql if os.environ.get("DATABASE_URL") else _sqlite
    result["lines"] = n
    result["bare_then_indexed"] = load(rows, indexed=False)
    result["indexed"] = load(rows, indexed=True)
    return result


if __name__ == "__main__":
    common.save("initial_load_probe", main(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000))
