"""The one due-clock mechanism (ARCHITECTURE.md): anything with a deadline stores `next_check_at` (the next
moment the worker must look at it, empty once nothing is left to do) behind a partial index, and a
`claimed_until` lease. A worker reads the earliest due rows with one range scan of that index and leases
them with one conditional UPDATE … RETURNING, so that several workers never handle the same clock twice.

Used by the service desk's SLA clocks and the regulatory clocks of safety cases."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.db.models import Model, Q

LEASE = dt.timedelta(minutes=2)


def due_ids(model: type[Model], now: dt.datetime, horizon: dt.timedelta = dt.timedelta(0), limit: int = 500):
    """Ids of the clocks the worker must look at by `now + horizon`, earliest first."""
    return list(
        model.objects.filter(next_check_at__lte=now + horizon)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("next_check_at")
        .values_list("id", flat=True)[:limit]
    )


def claim(model: type[Model], clock_id: int, now: dt.datetime) -> bool:
    """Take one clock for `LEASE` with a conditional update: of several workers, exactly one wins."""
    return bool(
        model.objects.filter(pk=clock_id, next_check_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + LEASE)
    )


def claim_batch(model: type[Model], ids: list[int], now: dt.datetime) -> list[int]:
    """Lease many clocks with one conditional UPDATE … RETURNING: the ids this worker won (another worker
    running the same statement at the same time gets the others, never the same ones)."""
    if not ids:
        return []
    table = model._meta.db_table
    marks = ", ".join(["%s"] * len(ids))
    sql = (
        f"UPDATE {table} SET claimed_until = %s WHERE id IN ({marks}) AND next_check_at <= %s "
        f"AND (claimed_until IS NULL OR claimed_until < %s) RETURNING id"
    )
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        # next_check_at is checked again: another worker may have handled the clock (and moved its next
        # check into the future) between our read of the due list and this update
        cursor.execute(sql, [adapt(now + LEASE), *ids, adapt(now), adapt(now)])
        return [row[0] for row in cursor.fetchall()]
