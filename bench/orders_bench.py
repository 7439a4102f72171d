"""Issue 5 benchmark: the order import (ERP order lines → sales_orderline, with the monthly rollups kept up to
date) at N lines over the dataset's customers — lines/s, peak memory of the importing process, the ratio to a
raw bulk insert of the same rows into the same table, and the rate of a re-import of the same file.

    python bench/orders_bench.py generate N        # write /tmp/orders-bench/orders-N.csv (reused when there)
    python bench/orders_bench.py run N             # baseline, import, initial load, re-import (child processes)
    python bench/orders_bench.py initial N         # baseline, initial load, re-import (no ordinary import)
    python bench/orders_bench.py profile N         # cProfile of one import of N lines (top functions)

The run empties the sales tables first (they hold order data only) and leaves the N lines and their rollups
in place for evaluation_bench.py. It changes no other data; still, point it at a copy of the dataset.

Knobs: BENCH_ORDERS_DIR (/tmp/orders-bench, where the files go), BENCH_ORDERS_SEED (5)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HUEY_IMMEDIATE", "0")  # the after-import evaluation is queued, never run inline

import common  # noqa: E402

ORDERS_DIR = Path(os.environ.get("BENCH_ORDERS_DIR", "/tmp/orders-bench"))
SEED = int(os.environ.get("BENCH_ORDERS_SEED", 5))
DAYS = 730  # two years of orders, the last one yesterday
CHUNK = 20_000  # rows per insert in the baseline (the import's chunk size)
ROLLUP_FUNCTIONS = (
    "add_new_lines",
    "mark_dirty",
    "mark_dirty_from_stage",
    "refresh_dirty",
)  # timed in the child
SALES_TABLES = ("sales_orderline", "sales_monthlyrollup", "sales_rollupdirty", "sales_productcode")

# --- the file -----------------------------------------------------------------------------------------------

GENERICS = [
    ("阿莫西林胶囊", "0.25g×24粒", 18), ("头孢克肟分散片", "0.1g×6片", 32), ("左氧氟沙星片", "0.5g×4片", 26),
    ("阿托伐他汀钙片", "20mg×7片", 45), ("瑞舒伐他汀钙片", "10mg×7片", 52), ("苯磺酸氨氯地平片", "5mg×28片", 38),
    ("缬沙坦胶囊", "80mg×28粒", 61), ("厄贝沙坦片", "0.15g×14片", 29), ("二甲双胍缓释片", "0.5g×30片", 22),
    ("格列美脲片", "2mg×30片", 35), ("阿卡波糖片", "50mg×30片", 48), ("甘精胰岛素注射液", "3ml:300单位", 186),
    ("门冬胰岛素注射液", "3ml:300单位", 79), ("氯吡格雷片", "75mg×7片", 41), ("阿司匹林肠溶片", "100mg×30片", 16),
    ("奥美拉唑肠溶胶囊", "20mg×14粒", 24), ("雷贝拉唑钠肠溶片", "10mg×7片", 39), ("蒙脱石散", "3g×10袋", 19),
    ("布洛芬缓释胶囊", "0.3g×20粒", 21), ("对乙酰氨基酚片", "0.5g×12片", 9), ("氨溴索口服溶液", "100ml", 27),
    ("孟鲁司特钠片", "10mg×5片", 44), ("布地奈德混悬液", "2ml:1mg×5支", 96), ("沙美特罗替卡松吸入粉雾剂", "60吸", 218),
    ("注射用头孢曲松钠", "1g×10瓶", 58), ("注射用美罗培南", "0.5g", 142), ("注射用奥美拉唑钠", "40mg", 33),
    ("人血白蛋白", "10g:50ml", 398), ("低分子肝素钙注射液", "0.4ml:4100IU×2支", 76), ("依诺肝素钠注射液", "0.4ml", 64),
    ("紫杉醇注射液", "30mg:5ml", 512), ("注射用奥沙利铂", "50mg", 689), ("卡培他滨片", "0.5g×12片", 238),
    ("来曲唑片", "2.5mg×10片", 132), ("替吉奥胶囊", "20mg×42粒", 876), ("复方丹参滴丸", "27mg×180丸", 32),
    ("连花清瘟胶囊", "0.35g×24粒", 14), ("血塞通软胶囊", "0.33g×24粒", 43), ("丹红注射液", "10ml", 28),
    ("注射用血栓通", "150mg", 37),
]  # fmt: skip
FORMS = ["", "（大包装）", "（小包装）", "（医院装）", "（OTC装）"]
QUANTITIES = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200)
QUANTITY_WEIGHTS = (8, 8, 5, 12, 20, 15, 8, 10, 10, 4)
KIND_WEIGHTS = {"distributor": 30, "hospital": 12, "pharmacy": 2, "clinic": 1, "community": 1.5, "township": 1,
                "research": 0.5, "association": 0.2, "insurance": 0.2}  # fmt: skip
TERMS = (30, 45, 60, 90)


def products() -> list[tuple[str, str, str, int]]:
    """200 products: (ERP code, name, approval number, list price in fen)."""
    rng = random.Random(SEED)
    out = []
    for i in range(200):
        generic, strength, price = GENERICS[i % len(GENERICS)]
        form = FORMS[i // len(GENERICS)]
        letter = (
            "Z" if i % len(GENERICS) >= 35 else ("S" if "胰岛素" in generic or "白蛋白" in generic else "H")
        )
        approval = f"国药准字{letter}{20000000 + rng.randrange(10**7):08d}"
        fen = int(price * 100 * rng.uniform(0.9, 1.3) * (1.0 if not form else rng.uniform(0.6, 2.5)))
        out.append((f"P{10001 + i}", f"{generic}{form} {strength}", approval, fen))
    return out


def file_path(n: int) -> Path:
    return ORDERS_DIR / f"orders-{n}.csv"


def _customers() -> list[tuple[str, str, str]]:
    """(credit code, name, kind) of every customer an ERP can name: those with a credit code, not merged."""
    from pharmacrm.customers.models import Institution

    qs = Institution.objects.filter(credit_code__isnull=False, merged_into__isnull=True).order_by("id")
    return list(qs.values_list("credit_code", "name", "kind"))


def _fen_text(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def write_orders(
    path: Path,
    n: int,
    *,
    end: dt.date,
    days: int,
    seed: int,
    prefix: str,
    customers=None,
    uniform: bool = False,
) -> dict:
    """N order lines (1–6 per order, sorted by order date) over `days` days up to `end`, as an ERP exports them.
    Customers are drawn with weights (distributors and hospitals buy most), or uniformly with `uniform`."""
    from pharmacrm.customers import importer

    headers = importer.template_headers("orders")
    keys = [c.key for c in importer.columns_for("orders") if c.template]  # the template's columns, as headers
    assert keys[:3] == ["order_number", "line_number", "order_date"] and len(keys) == 17, keys
    rng = random.Random(seed)
    customers = customers or _customers()
    if not customers:
        raise SystemExit("no customers with a credit code: seed the dataset first")
    cum, total = [], 0.0
    for _code, _name, kind in customers:  # a few big buyers, a long tail
        total += 1.0 if uniform else KIND_WEIGHTS.get(kind, 1) * rng.lognormvariate(0, 1)
        cum.append(total)
    catalogue = products()
    prod_cum, t = [], 0.0
    for i in range(len(catalogue)):
        t += 1 / (1 + i % 40) ** 0.8  # popular generics sell more
        prod_cum.append(t)
    qty_cum = [sum(QUANTITY_WEIGHTS[: i + 1]) for i in range(len(QUANTITY_WEIGHTS))]
    start = end - dt.timedelta(days=days - 1)
    n_orders = max(1, round(n / 3.5))
    path.parent.mkdir(parents=True, exist_ok=True)
    written = order = 0
    invoice = 10_000_000 + rng.randrange(10**7)
    t0 = time.perf_counter()
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(headers)
        while written < n:
            batch = []
            picks = rng.choices(range(len(customers)), cum_weights=cum, k=2000)
            for c in picks:
                day = start + dt.timedelta(days=min(days - 1, order * days // n_orders))
                order += 1
                code, name, _kind = customers[c]
                number = f"{prefix}{day:%Y%m%d}{order:08d}"
                lines = min(rng.randint(1, 6), n - written)
                terms = TERMS[rng.randrange(4)]
                due = day + dt.timedelta(days=terms)
                r = rng.random()
                if r < 0.68:  # on time
                    paid = day + dt.timedelta(days=rng.randint(3, terms))
                elif r < 0.85:  # late
                    paid = due + dt.timedelta(days=rng.randint(1, 120))
                else:
                    paid = None
                if paid is not None and paid > end:
                    paid = None
                partial = paid is not None and rng.random() < 0.03
                invoice_text = "" if rng.random() < 0.05 else f"{invoice + order:08d}"
                discount = 0.85 + 0.15 * ((c * 7919) % 100) / 100  # a customer's price level
                lag = rng.randint(1, 8)
                batch_month = (day.year * 12 + day.month - 1) - lag
                batch_prefix = f"{batch_month // 12 % 100:02d}{batch_month % 12 + 1:02d}"
                order_date, due_text = day.isoformat(), due.isoformat()
                paid_text = paid.isoformat() if paid else ""
                prods = rng.choices(range(len(catalogue)), cum_weights=prod_cum, k=lines)
                qtys = rng.choices(QUANTITIES, cum_weights=qty_cum, k=lines)
                for ln in range(lines):
                    p = prods[ln]
                    pcode, pname, approval, list_fen = catalogue[p]
                    price_fen = int(list_fen * discount)
                    amount_fen = price_fen * qtys[ln]
                    paid_fen = amount_fen // 2 if partial else amount_fen
                    batch.append((
                        number, ln + 1, order_date, code, "", name, pcode, pname, approval,
                        f"{batch_prefix}{p:03d}{rng.randrange(10)}", qtys[ln], _fen_text(price_fen),
                        _fen_text(amount_fen), invoice_text, due_text, paid_text,
                        _fen_text(paid_fen) if paid else "",
                    ))  # fmt: skip
                written += lines
                if written >= n:
                    break
            out.writerows(batch)
    seconds = time.perf_counter() - t0
    meta = {"lines": n, "orders": order, "first_day": start.isoformat(), "last_day": end.isoformat(), "seed": seed,
            "customers": len(customers), "products": len(catalogue), "prefix": prefix,
            "mib": round(path.stat().st_size / 2**20), "seconds": round(seconds, 1)}  # fmt: skip
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    print(
        f"wrote {n:,} lines ({order:,} orders) to {path} ({meta['mib']} MiB) in {seconds:.0f} s", flush=True
    )
    return meta


def generate(n: int) -> Path:
    """The N-line file, written once (two years up to yesterday) and reused."""
    path = file_path(n)
    if path.exists() and path.with_suffix(".json").exists():
        return path
    end = dt.date.today() - dt.timedelta(days=1)
    write_orders(path, n, end=end, days=DAYS, seed=SEED, prefix="SO")
    return path


# --- users, tables, child processes ----------------------------------------------------------------------


def manager():
    """A factory-leadership user (may import orders and run evaluations)."""
    from django.contrib.auth.models import Group

    from pharmacrm.core.models import User
    from pharmacrm.core.roles import Role
    from pharmacrm.core.setup import ensure_roles

    ensure_roles(Group)
    user, created = User.objects.get_or_create(
        username="bench_manager", defaults={"display_name": "bench_manager"}
    )
    if created:
        user.set_password("Bench-password-2026!")
        user.save()
    user.groups.set([Group.objects.get(name=Role.MANAGER.value)])
    return User.objects.get(pk=user.pk)


def empty_sales_tables() -> None:
    """The sales tables hold imported order data only: empty them for a first-load measurement."""
    from django.db import connection

    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(f"TRUNCATE {', '.join(SALES_TABLES)} RESTART IDENTITY")
        else:
            for table in SALES_TABLES:
                cur.execute(f"DELETE FROM {table}")
            cur.execute(
                f"DELETE FROM sqlite_sequence WHERE name IN ({', '.join(repr(t) for t in SALES_TABLES)})"
            )


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(f"ANALYZE {', '.join(SALES_TABLES)}")
        else:
            for table in SALES_TABLES:
                cur.execute(f"ANALYZE {table}")


def sales_counts() -> dict:
    from pharmacrm.sales.models import MonthlyRollup, OrderLine, RollupDirty

    return {"order_lines": OrderLine.objects.count(), "rollups": MonthlyRollup.objects.count(),
            "dirty": RollupDirty.objects.count()}  # fmt: skip


def peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM), in KiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def in_child(*args: str) -> dict:
    """Run `orders_bench.py child ARGS` in a fresh interpreter; its RESULT line as a dict (with its peak RSS)."""
    cmd = [sys.executable, __file__, "child", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    out = proc.stdout + proc.stderr
    found = re.findall(r"^RESULT (\{.*\})$", out, re.M)
    if proc.returncode or not found:
        print(out[-4000:])
        raise SystemExit(f"the child {' '.join(args)} failed (exit {proc.returncode}): see the output above")
    result = json.loads(found[-1])
    if result.get("status", "done") != "done":
        print(out[-4000:])
        raise SystemExit(
            f"the child {' '.join(args)} ended with the job {result['status']}: see the output above"
        )
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far: a cross-check
    result["peak_rss_mib"] = round(max(result.pop("peak_rss_kib"), 0) / 1024)
    result["largest_child_rss_mib"] = round(kids / 1024)
    return result


def _report(result: dict) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # CPU time of this process: less noisy than the clock
    cpu = round(usage.ru_utime + usage.ru_stime, 2)  # on a busy machine (PostgreSQL's own work is not in it)
    print("RESULT " + json.dumps({**result, "cpu_seconds": cpu, "peak_rss_kib": peak_rss_kib()}), flush=True)


# --- what the children do ---------------------------------------------------------------------------------


def child_import(path: str, mode: str = "good", initial: str = "") -> None:
    """The real import (`import_file`), timed; also the time spent inside the rollup maintenance functions
    (on the writer thread when the import has one, so it may overlap the parsing). `initial` = "initial": as
    `pharmacrm import orders --initial-load` runs it."""
    import threading

    from pharmacrm.customers import importer
    from pharmacrm.sales import rollups
    from pharmacrm.sales.importer import INITIAL_LOAD

    INITIAL_LOAD.set(initial == "initial")

    user = manager()
    spent: dict[str, list] = {}
    lock = threading.Lock()

    def timed(name, original):  # measurement only: the same function, timed
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                with lock:
                    entry = spent.setdefault(name, [0.0, 0])
                    entry[0] += time.perf_counter() - t
                    entry[1] += 1

        return wrapper

    originals = {n: getattr(rollups, n) for n in (*ROLLUP_FUNCTIONS, "rebuild_all") if hasattr(rollups, n)}
    for name, fn in originals.items():
        setattr(rollups, name, timed(name, fn))
    start = time.perf_counter()
    job = importer.import_file(path, "orders", user, mode=mode, dry_run=False)
    seconds = time.perf_counter() - start
    for name, fn in originals.items():
        setattr(rollups, name, fn)
    for err in (job.errors or [])[:5]:
        print("ERROR", err, flush=True)
    _report({
        "status": job.status, "rows": job.processed_rows, "created": job.created_count, "updated": job.updated_count,
        "unchanged": job.unchanged_count, "errors": job.error_count, "seconds": round(seconds, 2),
        "rollup_seconds": round(sum(v[0] for v in spent.values()), 2),
        "rollup_calls": {k: {"seconds": round(v[0], 2), "calls": v[1]} for k, v in spent.items()},
    })  # fmt: skip


def child_baseline(path: str) -> None:
    """The floor: the same rows read from the CSV, converted just enough to fit the columns (customer by a
    dict look-up, dates, decimals, fen) and inserted with `insert_rows` in chunks — no checks, no
    staging, no classification, no rollups — into the emptied sales_orderline."""
    from decimal import Decimal

    from django.db import connection, transaction
    from django.utils import timezone

    from pharmacrm.customers.importer import insert_rows
    from pharmacrm.customers.models import Institution
    from pharmacrm.sales.models import OrderLine

    columns = [
        "order_number", "line_number", "order_date", "month", "institution_id", "product_code", "product_name",
        "batch_number", "quantity", "unit_price", "amount_fen", "invoice_number", "payment_due", "paid_date",
        "paid_fen", "outstanding_fen", "row_hash", "job_id", "imported_at",
    ]  # fmt: skip
    model_columns = {f.column for f in OrderLine._meta.concrete_fields} - {"id"}
    if model_columns != set(columns):
        raise SystemExit(
            f"sales_orderline changed: the baseline's columns differ by {model_columns ^ set(columns)}"
        )
    empty_sales_tables()
    sqlite = connection.vendor == "sqlite"
    now = timezone.now()
    now_value = connection.ops.adapt_datetimefield_value(now) if sqlite else now
    by_code = dict(Institution.objects.filter(credit_code__isnull=False).values_list("credit_code", "id"))
    fromiso, dec = dt.date.fromisoformat, Decimal

    def day(text):
        if not text:
            return None
        return text if sqlite else fromiso(text)

    def fen(text):
        return int(dec(text) * 100) if text else 0

    start = time.perf_counter()
    insert_seconds, rows_done, chunk = 0.0, 0, []

    def flush():
        nonlocal insert_seconds
        t = time.perf_counter()
        with transaction.atomic():
            insert_rows(OrderLine._meta.db_table, columns, chunk)
        insert_seconds += time.perf_counter() - t

    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        next(reader)
        for r in reader:
            amount, paid = fen(r[12]), fen(r[16])
            month = r[2][:8] + "01"
            chunk.append((
                r[0], int(r[1]), day(r[2]), day(month), by_code[r[3]], r[6], r[7], r[9],
                r[10] if sqlite else dec(r[10]), r[11] if sqlite else dec(r[11]), amount, r[13], day(r[14]),
                day(r[15]), paid, max(amount - paid, 0), 0, None, now_value,
            ))  # fmt: skip
            if len(chunk) >= CHUNK:
                flush()
                rows_done += len(chunk)
                chunk = []
        if chunk:
            flush()
            rows_done += len(chunk)
    seconds = time.perf_counter() - start
    _report({"rows": rows_done, "seconds": round(seconds, 2), "insert_seconds": round(insert_seconds, 2)})


# --- the benchmark ---------------------------------------------------------------------------------------------


def run(
    n: int, *, baseline: bool = True, reimport: bool = True, initial: bool = True, ordinary: bool = True
) -> dict:
    path = generate(n)
    meta = json.loads(path.with_suffix(".json").read_text())
    result: dict = {"lines": n, "file": {**meta, "path": str(path)}, "dataset": common.counts(),
                    "load_average_before": os.getloadavg()}  # fmt: skip
    if baseline:
        print(f"baseline: raw bulk insert of {n:,} rows …", flush=True)
        base = in_child("baseline", str(path))
        base["lines_per_s"] = round(base["rows"] / base["seconds"])
        base["insert_only_lines_per_s"] = round(base["rows"] / base["insert_seconds"])
        result["baseline"] = base
        print(json.dumps(base), flush=True)
    if ordinary:
        empty_sales_tables()
        print(f"import of {n:,} lines into empty sales tables …", flush=True)
        first = in_child("import", str(path))
        first["lines_per_s"] = round(first["rows"] / first["seconds"])
        result["import"] = first
        print(json.dumps(first), flush=True)
        if baseline:
            result["ratio_to_raw_insert"] = round(first["seconds"] / result["baseline"]["seconds"], 2)
            result["ratio_to_insert_statements_only"] = round(
                first["seconds"] / result["baseline"]["insert_seconds"], 2
            )
    if initial:
        empty_sales_tables()
        print(
            f"initial load (import orders --initial-load) of {n:,} lines into empty sales tables …",
            flush=True,
        )
        load = in_child("import", str(path), "good", "initial")
        load["lines_per_s"] = round(load["rows"] / load["seconds"])
        result["initial_load"] = load
        print(json.dumps(load), flush=True)
        if baseline:
            result["initial_load_ratio_to_raw_insert"] = round(
                load["seconds"] / result["baseline"]["seconds"], 2
            )
    if reimport:
        print("re-import of the same file (every line unchanged) …", flush=True)
        again = in_child("import", str(path))
        again["lines_per_s"] = round(again["rows"] / again["seconds"])
        result["reimport"] = again
        print(json.dumps(again), flush=True)
    analyze()
    result["after"] = sales_counts()
    result["load_average_after"] = os.getloadavg()  # other work on the machine makes the figures noisy
    return result


def profile(n: int, top: int = 40) -> None:
    """cProfile of one import of N lines into empty tables (in this process); prints the top functions."""
    import cProfile
    import pstats

    from pharmacrm.customers import importer

    path = generate(n)
    empty_sales_tables()
    user = manager()
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.enable()
    job = importer.import_file(path, "orders", user, mode="good", dry_run=False)
    prof.disable()
    print(f"{job.processed_rows:,} lines in {time.perf_counter() - start:.1f} s (under the profiler)")
    out = ORDERS_DIR / f"profile-{common.db_label()}-{n}.pstats"
    prof.dump_stats(out)
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    print(f"saved {out}")


if __name__ == "__main__":
    common.setup()
    what = sys.argv[1] if len(sys.argv) > 1 else "run"
    if what == "child":
        {"import": child_import, "baseline": child_baseline}[sys.argv[2]](*sys.argv[3:])
        sys.exit(0)
    n = int(sys.argv[2]) if len(sys.argv) > 2 else int(os.environ.get("BENCH_ORDER_LINES", 10_000_000))
    if what == "generate":
        generate(n)
    elif (
        what == "initial"
    ):  # the raw insert, then only the initial load (and a re-import of the file after it)
        common.save(f"orders-initial-{n}", run(n, ordinary=False))
    elif what == "profile":
        profile(n)
    else:
        common.save(f"orders-{n}", run(n))
