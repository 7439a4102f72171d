"""Issue 3 benchmarks, first part: the worker's query for SLA clocks due in the next minute, and the
sweep's throughput (warnings and breaches recorded per second), at N tickets of which 20 % are open.

    python bench/sla_bench.py 100000     # seeds tickets up to N (reuses what is there), then measures
    python bench/sla_bench.py 1000000
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import time

import common

OPEN_SHARE = 0.2
CHUNK = 20_000


def seed(target: int) -> int:
    """Bulk-insert tickets (with two clocks each) up to `target`: open ones with deadlines from two days
    ago to ten days ahead, the rest closed with met clocks. Bypasses services (which audit each ticket):
    this measures the worker's queries, not intake."""
    from django.db import connection, transaction
    from django.utils import timezone

    from pharmacrm.customers.scale import BulkWriter, RowMaker
    from pharmacrm.servicedesk.models import BusinessCalendar, SlaClock, SlaPolicy, Ticket, TicketCategory

    have = Ticket.objects.count()
    if have >= target:
        return have
    rng = random.Random(have)
    category = TicketCategory.objects.get(code="drug_info")
    policy = SlaPolicy.objects.get(name="一般问题（工作日）")
    calendar = BusinessCalendar.objects.get(code="business")
    tmaker, cmaker = RowMaker(Ticket), RowMaker(SlaClock)
    twriter, cwriter = BulkWriter(Ticket, tmaker.columns), BulkWriter(SlaClock, cmaker.columns)
    now = timezone.now()
    adapt = connection.ops.adapt_datetimefield_value
    next_id = (Ticket.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    next_clock = (SlaClock.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    while have < target:
        size = min(CHUNK, target - have)
        tickets, clocks = [], []
        for i in range(size):
            tid = next_id + i
            is_open = rng.random() < OPEN_SHARE
            received = now - dt.timedelta(minutes=rng.randint(10, 365 * 24 * 60))
            tickets.append(tmaker.row({
                "id": tid, "number": f"TK-B{tid:09d}", "subject": "基准测试工单", "channel": "phone",
                "received_at": adapt(received), "category_id": category.pk, "priority": "normal",
                "complexity": "general", "status": "in_progress" if is_open else "closed", "policy_id": policy.pk,
                "created_at": adapt(received), "updated_at": adapt(received), "version": 1,
            }))  # fmt: skip
            for kind in ("first_response", "resolution"):
                due = now + dt.timedelta(minutes=rng.randint(-2 * 24 * 60, 10 * 24 * 60)) if is_open else received
                clocks.append(cmaker.row({
                    "id": next_clock + len(clocks), "ticket_id": tid, "kind": kind, "policy_id": policy.pk, "calendar_id": calendar.pk,
                    "target": 1, "unit": "days", "started_at": adapt(received), "paused": False,
                    "paused_seconds": 0, "warn_at": adapt(due), "due_at": adapt(due),
                    "fulfilled_at": None if is_open else adapt(due),
                    "next_check_at": adapt(due) if is_open else None,
                }))  # fmt: skip
        with transaction.atomic():
            twriter.write(tickets)
            cwriter.write(clocks)
        have += size
        next_id += size
        next_clock += len(clocks)
        print(f"tickets: {have:,}/{target:,}", flush=True)
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":  # COPY with explicit ids leaves the sequences behind
            for model in (Ticket, SlaClock):
                table = model._meta.db_table
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
        cur.execute("ANALYZE")
    return have


def due_query(samples: int = 300) -> dict:
    """services.due_clock_ids for "due within the next minute" at moments spread over the open range."""
    from django.utils import timezone

    from pharmacrm.servicedesk import services

    now = timezone.now()
    rng = random.Random(7)
    times, found = [], []
    for _ in range(samples):
        moment = now + dt.timedelta(minutes=rng.randint(-2 * 24 * 60, 10 * 24 * 60))
        ms, ids = common.timed(services.due_clock_ids, moment, dt.timedelta(minutes=1), 500)
        times.append(ms)
        found.append(len(ids))
    return {**common.summary(times), "rows_returned_max": max(found)}


def sweep_throughput(clocks: int = 3000) -> dict:
    """Run the worker's sweep over about `clocks` overdue clocks; clocks handled per second."""
    from django.utils import timezone

    from pharmacrm.servicedesk import services
    from pharmacrm.servicedesk.models import SlaClock

    now = timezone.now()
    due = list(
        SlaClock.objects.filter(next_check_at__lte=now).order_by("next_check_at").values_list("next_check_at", flat=True)[
            clocks - 1 : clocks
        ]
    )
    if not due:
        return {}
    cutoff = due[0]
    start = time.perf_counter()
    handled = 0
    while True:
        counts = services.sweep(cutoff, limit=500)
        n = counts["warned"] + counts["breached"]
        handled += n
        if n == 0:
            break
    seconds = time.perf_counter() - start
    return {"clocks": handled, "seconds": round(seconds, 2), "clocks_per_s": round(handled / seconds)}


if __name__ == "__main__":
    common.setup()
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    total = seed(n)
    from pharmacrm.servicedesk.models import SlaClock

    result = {
        "tickets": total,
        "open_clocks": SlaClock.objects.filter(next_check_at__isnull=False).count(),
        "due_query": due_query(),
        "sweep": sweep_throughput(),
    }
    common.save(f"sla-{n}", result)
