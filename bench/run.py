"""Run the benchmarks against the database the environment names (SQLite under $PHARMACRM_VAR_DIR, or
PostgreSQL with DATABASE_URL) and print the figures as a Markdown table.

    python bench/run.py all                 # dataset, search, lists, rss, then import (it grows the data)
    python bench/run.py dataset|search|lists|rss|import|report
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
}


def _load(db: str, name: str) -> dict | None:
    path = common.RESULTS / f"{db}-{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _row(db, data, figure, value, target, unit, ok, ratio="") -> str:
    size = data.get("dataset") or data.get("dataset_before") or {}
    size_text = f"{size.get('institutions', 0):,} inst. / {size.get('people', 0):,} people"
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
    return "\n".join(lines)


def main(what: str) -> None:
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
    print(report(int(os.environ.get("BENCH_IMPORT_ROWS", 1_000_000))))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "all")
