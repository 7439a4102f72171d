"""(c) Import throughput and peak memory: N people from a CSV in the import template's format, through
customers.importer.import_file (validation, encryption, blind indexes, search terms, audit).

    python bench/import_bench.py make  [N]   # write $PHARMACRM_VAR_DIR/bench-people-N.csv
    python bench/import_bench.py run   [N]   # import it in a child process measured by /usr/bin/time -v
"""

from __future__ import annotations

import csv
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import common


def csv_path(n: int) -> Path:
    return Path(os.environ["PHARMACRM_VAR_DIR"]) / f"bench-people-{n}.csv"


def make_csv(n: int) -> Path:
    """New people at existing institutions (named by credit code, departments by name), Chinese headers.
    Numbered after the people already in the database, so that each run imports people, not updates."""
    from pharmacrm.customers import importer, scale
    from pharmacrm.customers.choices import Gender, PersonRole, Source, Stage, Tier
    from pharmacrm.customers.models import Institution, Person

    first = Person.objects.count()

    def tier(value):  # the key tier comes from the key-account programme only: an import may not set it
        return Tier.VIP if value == Tier.KEY else value

    path = csv_path(n)
    inst = dict(Institution.objects.exclude(credit_code=None).values_list("id", "credit_code"))
    dept_names = dict(Institution.objects.filter(kind="department").values_list("id", "name"))
    headers = importer.template_headers("people")
    by_header = {c.header: c.key for c in importer.columns_for("people")}
    label = importer.canonical_label
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(headers)
        for i, v in enumerate(scale.people_records(n, seed=2, start=50_000_000 + first), start=first):
            row = {
                "name": v["name"], "gender": label(Gender, v["gender"]), "role": label(PersonRole, v["role"]),
                "title": v["title"], "institution": inst.get(v["institution_id"], ""),
                "department": dept_names.get(v["department_id"], ""), "mobile": v["mobile"],
                "landline": v["landline"], "email": v["email"],
                "birthday": v["birthday"].isoformat() if v["birthday"] else "", "home_address": v["home_address"],
                "id_number": v["id_number"], "tier": label(Tier, tier(v["tier"])), "stage": label(Stage, v["stage"]),
                "source": label(Source, v["source"]), "external_id": f"HIS-{i + 1:09d}",
            }  # fmt: skip
            out.writerow([row.get(by_header[h], "") for h in headers])
    print(f"wrote {n:,} rows to {path} ({path.stat().st_size / 2**20:.0f} MiB)")
    return path


def importer_user():
    from django.contrib.auth.models import Group

    from pharmacrm.core.models import User
    from pharmacrm.core.roles import Role

    user, _ = User.objects.get_or_create(username="bench_kam", defaults={"display_name": "bench_kam"})
    user.groups.set([Group.objects.get(name=Role.KAM.value)])
    return User.objects.get(pk=user.pk)


def child(n: int) -> None:
    """Runs inside the measured process: the import and nothing else."""
    from pharmacrm.customers import importer

    user = importer_user()
    start = time.perf_counter()
    job = importer.import_file(csv_path(n), "people", user, mode="all", dry_run=False)
    seconds = time.perf_counter() - start
    print(
        f"RESULT status={job.status} rows={job.total_rows} created={job.created_count} updated={job.updated_count}"
        f" errors={job.error_count} seconds={seconds:.1f}"
        f" maxrss_kib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}",
        flush=True,
    )
    for err in (job.errors or [])[:5]:
        print("ERROR", err)


def _already_imported(path: Path) -> bool:
    from pharmacrm.customers.models import Person

    with path.open(encoding="utf-8") as fh:
        reader = csv.reader(fh)
        headers = next(reader)
        first = dict(zip(headers, next(reader), strict=False))
    return Person.objects.filter(external_id=first.get("外部编号", "")).exists()


def run(n: int) -> dict:
    if not csv_path(n).exists() or _already_imported(csv_path(n)):
        make_csv(n)  # a file imported before would measure 200,000 updates, not an import
    before = common.counts()
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "child", str(n)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    out = proc.stdout + proc.stderr
    print(out[-4000:])
    m = re.search(
        r"RESULT status=(\S+) rows=(\d+) created=(\d+) updated=(\d+) errors=(\d+) seconds=([\d.]+)", out
    )
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out)
    if not m:
        raise SystemExit("the import did not finish: see the output above")
    if m.group(1) != "done" or int(m.group(5)):  # a rejected file is no throughput figure
        raise SystemExit(f"the import was {m.group(1)} with {m.group(5)} row errors: see the output above")
    if int(m.group(3)) != int(m.group(2)):
        raise SystemExit(f"only {m.group(3)} of {m.group(2)} rows were new people: not an import figure")
    rows, seconds = int(m.group(2)), float(m.group(6))
    return {
        "rows": rows, "status": m.group(1), "created": int(m.group(3)), "updated": int(m.group(4)),
        "errors": int(m.group(5)), "seconds": seconds, "rows_per_s": round(rows / seconds),
        "peak_rss_mib": round(int(peak.group(1)) / 1024) if peak else None, "dataset_before": before,
        "file_mib": round(csv_path(n).stat().st_size / 2**20),
    }  # fmt: skip


if __name__ == "__main__":
    common.setup()
    what = sys.argv[1] if len(sys.argv) > 1 else "run"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    if what == "make":
        make_csv(n)
    elif what == "child":
        child(n)
    else:
        common.save(f"import-{n}", run(n))
