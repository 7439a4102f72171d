"""Where a list or search page spends its time: every SQL statement of one request, with its duration and
the database's query plan.

    python bench/explain.py rep "/customers/people/?sort=name&page=1000000"
"""

from __future__ import annotations

import sys
import time

import common


def main(role: str, url: str) -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user = common.bench_users()[role]
    client = Client()
    client.force_login(user)
    client.get(url)  # warm
    with CaptureQueriesContext(connection) as ctx:
        start = time.perf_counter()
        resp = client.get(url)
        total = (time.perf_counter() - start) * 1000
    print(f"{resp.status_code} {total:.1f} ms, {len(ctx.captured_queries)} queries")
    for q in ctx.captured_queries:
        sql = q["sql"]
        print(f"\n-- {float(q['time']) * 1000:.1f} ms\n{sql[:1500]}")
        if sql.lstrip().upper().startswith("SELECT") and "customers_" in sql:
            with connection.cursor() as cur:
                prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS) "
                cur.execute(prefix + sql)
                for row in cur.fetchall():
                    print("   ", row[-1] if connection.vendor == "sqlite" else row[0])


if __name__ == "__main__":
    common.setup()
    main(sys.argv[1], sys.argv[2])
