"""Shared benchmark plumbing: Django set-up, the dataset and bench users, timing and result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pharmacrm.settings")
os.environ.setdefault("PHARMACRM_VAR_DIR", "/tmp/pharmacrm-bench")

TARGET_INSTITUTIONS = int(os.environ.get("BENCH_INSTITUTIONS", 100_000))
TARGET_PEOPLE = int(os.environ.get("BENCH_PEOPLE", 1_000_000))
REP_TERRITORY = os.environ.get("BENCH_REP_TERRITORY", "330000")  # 浙江省: about 5 % of the customers


def setup() -> None:
    import django

    django.setup()


def db_label() -> str:
    from django.db import connection

    return "postgresql" if connection.vendor == "postgresql" else "sqlite"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def summary(ms: list[float]) -> dict:
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return (time.perf_counter() - start) * 1000, result


def machine() -> dict:
    import sqlite3

    from django.db import connection

    info = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SHOW server_version")
            info["postgresql"] = cur.fetchone()[0]
    return info


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    data = {"database": db_label(), "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), **data}
    path = RESULTS / f"{db_label()}-{name}.json"
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2))
    print(json.dumps(data, ensure_ascii=False, indent=2))
    return path


def counts() -> dict:
    from pharmacrm.customers.models import Institution, Person, SearchTerm

    return {
        "institutions": Institution.objects.count(),
        "people": Person.objects.count(),
        "search_terms": SearchTerm.objects.count(),
    }


def ensure_dataset() -> dict:
    """Seed up to the target size (reusing what is there); returns the counts."""
    have = counts()
    missing_i = max(0, TARGET_INSTITUTIONS - have["institutions"])
    missing_p = max(0, TARGET_PEOPLE - have["people"])
    if missing_i or missing_p:
        # --force: `seed` refuses a database named by DATABASE_URL; this is the bench's throw-away one
        cmd = [sys.executable, str(ROOT / "manage.py"), "seed", f"--institutions={missing_i}",
               f"--people={missing_p}", "--seed=1", "--chunk=20000", "--force"]  # fmt: skip
        print("seeding:", " ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
    return counts()


def bench_users() -> dict:
    """An agent (sees all customers) and a rep whose team's territory is one province."""
    from django.contrib.auth.models import Group

    from pharmacrm.core.models import Region, Team, User
    from pharmacrm.core.roles import Role
    from pharmacrm.core.setup import ensure_roles

    ensure_roles(Group)
    team, _ = Team.objects.get_or_create(name="基准测试团队")
    team.territory.set([Region.objects.get(code=REP_TERRITORY)])
    out = {}
    for name, role in (("bench_agent", Role.AGENT), ("bench_rep", Role.REP)):
        user, created = User.objects.get_or_create(username=name, defaults={"display_name": name})
        if created:
            user.set_password("Bench-password-2026!")
            user.save()
        user.groups.set([Group.objects.get(name=role.value)])
        if role == Role.REP:
            user.teams.set([team])
        out[role.value] = User.objects.get(pk=user.pk)
    return out
