"""Run the benchmarks against the database the environment names (SQLite under $PHARMACRM_VAR_DIR, or
PostgreSQL with DATABASE_URL) and print the figures as a Markdown table.

    python bench/run.py all                 # dataset, search, lists, rss, then import (it grows the data)
    python bench/run.py dataset|search|lists|rss|import|report
    python bench/run.py orders|evaluation|candidates   # issue 5, in this order, on a copy of the dataset
"""

from __future__ import annotations

import json
import os
import sys

import common

TARGETS = {
    "search_p95_ms": 30,
    "list_p95_ms": 100,
    "import_rows_per_s": 20_000,
    "import_peak_mib": 500,
    "worker_rss_mib": 200,
    "order_lines_per_s": 100_000,
    "order_import_peak_mib": 500,
    "evaluation_full_s": 10,
    "evaluation_incremental_s": 2,
    "candidates_p95_ms": 200,
}


def _load(db: str, name: str) -> dict | None:
    path = common.RESULTS / f"{db}-{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _row(db, data, figure, value, target, unit, ok, ratio="") -> str:
    size = data.get("dataset") or data.get("dataset_before") or {}
    size_text = f"{size.get('institutions', 0):,} inst. / {size.get('people', 0):,} people"
    if data.get("sales"):
        size_text += f" / {data['sales']['order_lines']:,} order lines"
    verdict = "pass" if ok else "**fail**"
    return (
        f"| {data['date']} | {db} | {size_text} | {figure} | {value}{unit} | {target} | {ratio} | {verdict} |"
    )


def report(import_rows: int = 1_000_000) -> str:
    lines = [
        "| date | database | data | figure | measured | target | ratio to raw SQL | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for db in ("sqlite", "postgresql"):
        s = _load(db, "search")
        if s:
            lines.append(_row(db, s, "raw indexed SQL, same look-ups p50 / p95", f"{s['raw_sql']['p50_ms']} / "
                              f"{s['raw_sql']['p95_ms']}", "—", " ms", True, "1"))  # fmt: skip
            for role in ("agent", "rep"):
                r = s[role]
                lines.append(_row(db, s, f"search p50 / p95, {role}", f"{r['p50_ms']} / {r['p95_ms']}",
                                  "p95 ≤ 30 ms", " ms", r["p95_ms"] <= TARGETS["search_p95_ms"],
                                  f"{r['ratio_p50_to_raw']} / {r['ratio_p95_to_raw']}"))  # fmt: skip
                if r.get("keywords"):
                    k = r["keywords"]
                    lines.append(_row(db, s, f"search of several words p50 / p95, {role} ({k['with_hits']} of "
                                      f"{k['queries']} found)", f"{k['p50_ms']} / {k['p95_ms']}", "p95 ≤ 30 ms",
                                      " ms", k["p95_ms"] <= TARGETS["search_p95_ms"]))  # fmt: skip
        li = _load(db, "lists")
        if li:
            for role in ("agent", "rep"):
                r = li[role]
                lines.append(_row(db, li, f"list page p50 / p95 (max), {role}",
                                  f"{r['p50_ms']} / {r['p95_ms']} ({r['max_ms']})", "p95 ≤ 100 ms", " ms",
                                  r["p95_ms"] <= TARGETS["list_p95_ms"]))  # fmt: skip
        im = _load(db, f"import-{import_rows}")
        if im:
            lines.append(
                _row(
                    db,
                    im,
                    f"import {im['rows']:,} people (CSV)",
                    f"{im['rows_per_s']:,}",
                    "≥ 20,000 rows/s",
                    " rows/s",
                    im["rows_per_s"] >= TARGETS["import_rows_per_s"],
                )
            )
            lines.append(_row(db, im, "import peak memory", im["peak_rss_mib"], "≤ 500 MB", " MiB",
                              (im["peak_rss_mib"] or 0) <= TARGETS["import_peak_mib"]))  # fmt: skip
        rs = _load(db, "rss")
        if rs:
            lines.append(_row(db, rs, f"worker RSS after {rs['requests']:,} requests", rs["worker_rss_mib"],
                              "≤ 200 MB", " MiB", rs["worker_rss_mib"] <= TARGETS["worker_rss_mib"]))  # fmt: skip
        lines += _issue5_rows(db)
    return "\n".join(lines)


def _issue5_rows(db: str) -> list[str]:
    out = []
    n = int(os.environ.get("BENCH_ORDER_LINES", 10_000_000))
    od = _load(db, f"orders-{n}")
    if od:
        im, base = od["import"], od.get("baseline") or {}
        ratio = f"{od['ratio_to_raw_insert']} ({base.get('lines_per_s', 0):,} lines/s raw)" if base else ""
        out.append(_row(db, od, f"import {n:,} order lines with rollups (CSV)", f"{im['lines_per_s']:,}",
                        "≥ 100,000 lines/s", " lines/s", im["lines_per_s"] >= TARGETS["order_lines_per_s"], ratio))  # fmt: skip
        out.append(_row(db, od, "order import peak memory", im["peak_rss_mib"], "≤ 500 MB", " MiB",
                        im["peak_rss_mib"] <= TARGETS["order_import_peak_mib"]))  # fmt: skip
        if od.get("reimport"):
            again = od["reimport"]
            out.append(_row(db, od, "re-import of the same file (all unchanged)", f"{again['lines_per_s']:,}", "—",
                            " lines/s", True))  # fmt: skip
    ev = _load(db, "evaluation")
    if ev:
        full, inc = ev["full"], ev["incremental"]
        for kind in ("evaluation", "candidate"):
            first, repeat = full[f"{kind}_first"], full[f"{kind}_repeat"]
            out.append(_row(db, ev, f"full {kind} run, {first['customers']:,} customers (first / repeat)",
                            f"{first['seconds']} / {repeat['seconds']}", "≤ 10 s", " s",
                            max(first["seconds"], repeat["seconds"]) <= TARGETS["evaluation_full_s"]))  # fmt: skip
        imports = inc["import_seconds"] if isinstance(inc["import_seconds"], list) else [inc["import_seconds"]]
        for kind, each in (inc.get("each_kind") or {}).items():
            out.append(_row(db, ev, f"incremental {kind} alone after {inc['lines']:,} new lines "
                            f"(import {imports[0]} s, {each['customers']:,} customers)", each["seconds"], "≤ 2 s", " s",
                            each["seconds"] <= TARGETS["evaluation_incremental_s"]))  # fmt: skip
        out.append(_row(db, ev, f"incremental evaluation and identification together after {inc['lines']:,} new "
                        f"lines (import {imports[-1]} s)", inc["seconds"], "≤ 2 s", " s",
                        inc["seconds"] <= TARGETS["evaluation_incremental_s"]))  # fmt: skip
    ca = _load(db, "candidates")
    if ca:
        for role in ("manager", "rep"):
            r = ca[role]
            out.append(_row(db, ca, f"candidate page p50 / p95 (max), {role}",
                            f"{r['p50_ms']} / {r['p95_ms']} ({r['max_ms']})", "p95 ≤ 200 ms", " ms",
                            r["p95_ms"] <= TARGETS["candidates_p95_ms"]))  # fmt: skip
    return out


def main(what: str) -> None:
    if what in ("orders", "evaluation", "candidates"):
        os.environ.setdefault("HUEY_IMMEDIATE", "0")  # the after-import evaluation is queued, not run inline
    common.setup()
    if what in ("dataset", "all"):
        print(common.ensure_dataset())
    if what in ("search", "all"):
        import search_bench

        common.save("search", search_bench.run())
    if what in ("lists", "all"):
        import list_bench

        common.save("lists", list_bench.run())
    if what in ("rss", "all"):
        import rss_bench

        common.save("rss", rss_bench.run())
    if what in ("import", "all"):
        import import_bench

        n = int(os.environ.get("BENCH_IMPORT_ROWS", 1_000_000))
        common.save(f"import-{n}", import_bench.run(n))
    if what == "orders":
        import orders_bench

        n = int(os.environ.get("BENCH_ORDER_LINES", 10_000_000))
        common.save(f"orders-{n}", orders_bench.run(n))
    if what == "evaluation":
        import evaluation_bench

        common.save("evaluation", evaluation_bench.run(int(os.environ.get("BENCH_NEW_LINES", 100_000))))
    if what == "candidates":
        import candidates_bench

        found = candidates_bench.run()
        if found is not None:
            common.save("candidates", found)
    print(report(int(os.environ.get("BENCH_IMPORT_ROWS", 1_000_000))))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "all")
