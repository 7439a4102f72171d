"""The cost of one audit entry (`core.audit.record`): every create, update and delete of every service writes one,
in the change's own transaction, locking the chain's head, inserting the entry and moving the head.

Run on a migrated database (SQLite under PHARMACRM_VAR_DIR, or PostgreSQL by DATABASE_URL); it writes real entries
to the chain (verified at the end), so use a scratch database:

    PHARMACRM_VAR_DIR=/tmp/audit-bench .venv/bin/python bench/audit_bench.py [N]

Two ways, N entries each (3,000), two rounds: all in one transaction (a test, a bulk service), and a commit per
entry (a user's change). The figure is the wall time per entry; the least of the rounds. Writes
bench/results/audit-<vendor>-<date>.json."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pharmacrm.settings")
django.setup()

from django.db import connection, transaction  # noqa: E402

from pharmacrm.core import audit  # noqa: E402
from pharmacrm.core.models import User  # noqa: E402


def _one(user, i: int) -> None:
    audit.record("update", ("customers.person", str(i), "张三"), user=user, changes={"name": ["张三", "张山"]},
                 source="form")  # fmt: skip


def main(n: int) -> dict:
    user = User.objects.filter(username="audit-bench").first() or User.objects.create(username="audit-bench")
    out: dict[str, float] = {}
    for mode in ("one transaction", "a commit each"):
        best = None
        for _round in range(2):
            start = time.perf_counter()
            if mode == "one transaction":
                with transaction.atomic():
                    for i in range(n):
                        _one(user, i)
            else:
                for i in range(n):
                    with transaction.atomic():
                        _one(user, i)
            per = (time.perf_counter() - start) / n * 1e6
            best = per if best is None else min(best, per)
        out[mode] = round(best)
        print(f"{connection.vendor}: {mode}: {best:.0f} µs per entry")
    checked = audit.verify()
    assert checked.ok, checked.problems
    return {"vendor": connection.vendor, "entries": n, "us_per_entry": out, "chain_verified": checked.checked}


if __name__ == "__main__":
    result = main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / f"audit-{result['vendor']}-{dt.date.today()}.json").write_text(json.dumps(result, indent=2))
