"""Issue 4 benchmark: the PV officer's due-case query — open regulatory clocks, earliest deadline first,
with their cases — at N cases (target p95 ≤ 20 ms at 1M), for everyone's cases and for one officer's;
and the worker's due query over the same clocks.

    python bench/safety_due.py 100000    # seeds cases up to N (reuses what is there), then measures
    python bench/safety_due.py 1000000

Seeding bypasses the services (which audit each case): this measures the reads, not intake. 25 % of the
cases are open (their report clock not yet met), with deadlines from ten days ago to thirty days ahead;
ten PV officers own them evenly."""

from __future__ import annotations

import datetime as dt
import random
import sys

import common

OPEN_SHARE = 0.25
CHUNK = 20_000
OFFICERS = 10


def _officers() -> list:
    from django.contrib.auth.models import Group

    from pharmacrm.core.models import User
    from pharmacrm.core.roles import Role

    out = []
    for i in range(OFFICERS):
        user, _ = User.objects.get_or_create(username=f"bench_pv_{i}")
        user.groups.set([Group.objects.get(name=Role.PV)])
        out.append(user)
    return out


def seed(target: int) -> int:
    from django.db import connection, transaction
    from django.utils import timezone

    from pharmacrm.customers.scale import BulkWriter, RowMaker
    from pharmacrm.safety.models import CaseVersion, ReportingRule, SafetyCase, SafetyClock

    have = SafetyCase.objects.count()
    officers = _officers()
    if have >= target:
        return have
    rng = random.Random(have)
    rule = ReportingRule.objects.get(code="CN-OTHER")
    makers = {m: RowMaker(m) for m in (SafetyCase, CaseVersion, SafetyClock)}
    writers = {m: BulkWriter(m, makers[m].columns) for m in makers}
    adapt = connection.ops.adapt_datetimefield_value
    now = timezone.now()

    def next_id(model) -> int:
        return (model.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1

    case_id, version_id, clock_id = next_id(SafetyCase), next_id(CaseVersion), next_id(SafetyClock)
    while have < target:
        size = min(CHUNK, target - have)
        rows = {SafetyCase: [], CaseVersion: [], SafetyClock: []}
        for i in range(size):
            cid, vid, kid = case_id + i, version_id + i, clock_id + i
            is_open = rng.random() < OPEN_SHARE
            due = now + dt.timedelta(minutes=rng.randint(-10 * 24 * 60, 30 * 24 * 60))
            received = due - dt.timedelta(days=30)
            owner = officers[cid % OFFICERS]
            rows[SafetyCase].append(makers[SafetyCase].row({
                "id": cid, "number": f"AE-B-{cid:09d}", "kind": "adverse_reaction",
                "status": "assessing" if is_open else "submitted", "received_at": adapt(received),
                "latest_received_at": adapt(received), "report_type": "1", "country": "CN", "owner_id": owner.pk,
                "created_at": adapt(received), "updated_at": adapt(received), "version": 1, "valid": True,
                "missing": [], "expectedness": "unknown", "reporter_country": "CN",
            }))  # fmt: skip
            rows[CaseVersion].append(makers[CaseVersion].row({
                "id": vid, "case_id": cid, "sequence": 0, "received_at": adapt(received), "summary": "",
                "changes": [], "created_at": adapt(received),
            }))  # fmt: skip
            rows[SafetyClock].append(makers[SafetyClock].row({
                "id": kid, "kind": "report", "case_id": cid, "case_version_id": vid, "rule_id": rule.pk,
                "jurisdiction": "CN", "started_at": adapt(received), "warn_at": adapt(due - dt.timedelta(days=7)),
                "due_at": adapt(due), "met_at": None if is_open else adapt(received + dt.timedelta(days=5)),
                "next_check_at": adapt(due) if is_open else None,
            }))  # fmt: skip
        with transaction.atomic():
            for model in (SafetyCase, CaseVersion, SafetyClock):
                writers[model].write(rows[model])
        have += size
        case_id, version_id, clock_id = case_id + size, version_id + size, clock_id + size
        print(f"cases: {have:,}/{target:,}", flush=True)
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            for model in (SafetyCase, CaseVersion, SafetyClock):
                table = model._meta.db_table
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
        cur.execute("ANALYZE")
    return have


def measure(samples: int = 300) -> dict:
    from django.utils import timezone

    from pharmacrm.core import dueclock
    from pharmacrm.safety import services
    from pharmacrm.safety.models import SafetyClock

    officers = _officers()
    rng = random.Random(11)

    def listing(owner=None):
        return [(c.case.number, c.due_at) for c in services.due_clocks(owner=owner, limit=50)]

    everyone, mine, worker = [], [], []
    for i in range(samples):
        ms, rows = common.timed(listing)
        everyone.append(ms)
        ms, rows = common.timed(listing, officers[i % OFFICERS])
        mine.append(ms)
        moment = timezone.now() + dt.timedelta(minutes=rng.randint(-10 * 24 * 60, 30 * 24 * 60))
        ms, _ids = common.timed(dueclock.due_ids, SafetyClock, moment, dt.timedelta(minutes=1), 500)
        worker.append(ms)
    return {"pv_due_list_all": common.summary(everyone), "pv_due_list_own": common.summary(mine),
            "worker_due_ids": common.summary(worker), "rows_listed": len(rows)}  # fmt: skip


if __name__ == "__main__":
    common.setup()
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    total = seed(n)
    from pharmacrm.safety.models import SafetyClock

    result = {"cases": total, "open_clocks": SafetyClock.objects.filter(met_at__isnull=True).count(), **measure()}
    common.save(f"safety-due-{n}", result)
    print(result)
