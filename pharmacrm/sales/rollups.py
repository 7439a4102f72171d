"""Monthly rollups per customer, maintained incrementally: an import marks the (customer, month) pairs
whose lines changed, and `refresh_dirty` recomputes those pairs only, set-based, from their lines. The
scoring reads rollups, so its cost grows with customers, not with order history."""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.utils import timezone

from .models import MonthlyRollup, OrderLine, RollupDirty

REFRESH_BATCH = 50_000


def _adapt(value):
    if connection.vendor == "postgresql":
        return value
    if isinstance(value, dt.datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value.isoformat()


def mark_dirty_from_stage(cursor, line_table: str) -> None:
    """Mark the pairs of new and changed staged lines, and the pairs the changed lines leave (a corrected
    file may move a line to another customer or month)."""
    dirty = RollupDirty._meta.db_table
    cursor.execute(
        f"INSERT INTO {dirty} (institution_id, month) SELECT institution_id, month FROM ("
        f"SELECT s.institution_id, s.month FROM sales_stage s LEFT JOIN {line_table} o "
        f"ON o.order_number = s.order_number AND o.line_number = s.line_number "
        f"WHERE o.id IS NULL OR o.row_hash <> s.row_hash "
        f"UNION SELECT o.institution_id, o.month FROM sales_stage s JOIN {line_table} o "
        f"ON o.order_number = s.order_number AND o.line_number = s.line_number WHERE o.row_hash <> s.row_hash"
        f") AS changed WHERE true ON CONFLICT (institution_id, month) DO NOTHING"
    )


def mark_dirty(pairs) -> None:
    """Mark (institution id, month) pairs by hand (a merge moved lines, a correction in the admin)."""
    rows = [RollupDirty(institution_id=i, month=m) for i, m in pairs]
    RollupDirty.objects.bulk_create(rows, ignore_conflicts=True)


def _days_late() -> str:
    if connection.vendor == "postgresql":
        return "(o.paid_date - o.payment_due)"
    return "CAST(julianday(o.paid_date) - julianday(o.payment_due) AS INTEGER)"


def refresh_dirty(today: dt.date | None = None) -> int:
    """Recompute the rollups of every dirty pair; returns how many pairs. Safe to run concurrently with
    itself and with imports: each batch is one transaction that deletes exactly the marks it handled."""
    today = today or timezone.localdate()
    rollup, line, dirty = MonthlyRollup._meta.db_table, OrderLine._meta.db_table, RollupDirty._meta.db_table
    late = "o.payment_due IS NOT NULL AND o.paid_date IS NOT NULL AND o.paid_date > o.payment_due"
    on_time = (
        "o.paid_date IS NOT NULL AND o.paid_fen >= o.amount_fen "
        "AND (o.payment_due IS NULL OR o.paid_date <= o.payment_due)"
    )
    columns = (
        "institution_id, month, amount_fen, orders, lines, products, quantity, paid_fen, on_time_fen, late_fen, "
        "late_lines, days_late, outstanding_fen, overdue_fen, overdue_as_of, updated_at"
    )
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns.split(", ")[2:])
    select = (
        f"SELECT o.institution_id, o.month, SUM(o.amount_fen), COUNT(DISTINCT o.order_number), COUNT(*), "
        f"COUNT(DISTINCT o.product_code), SUM(o.quantity), SUM(o.paid_fen), "
        f"SUM(CASE WHEN {on_time} THEN o.amount_fen ELSE 0 END), SUM(CASE WHEN {late} THEN o.paid_fen ELSE 0 END), "
        f"SUM(CASE WHEN {late} THEN 1 ELSE 0 END), SUM(CASE WHEN {late} THEN {_days_late()} ELSE 0 END), "
        f"SUM(o.outstanding_fen), "
        f"SUM(CASE WHEN o.outstanding_fen > 0 AND o.payment_due < %s THEN o.outstanding_fen ELSE 0 END), %s, %s "
        f"FROM {dirty} d JOIN {line} o ON o.institution_id = d.institution_id AND o.month = d.month "
        f"WHERE d.id > %s AND d.id <= %s GROUP BY o.institution_id, o.month"
    )
    total = 0
    while True:
        with transaction.atomic():
            ids = list(RollupDirty.objects.order_by("id").values_list("id", flat=True)[:REFRESH_BATCH])
            if not ids:
                return total
            low, high = ids[0] - 1, ids[-1]
            now = timezone.now()
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {rollup} ({columns}) {select} ON CONFLICT (institution_id, month) DO UPDATE SET {updates}",
                    [_adapt(today), _adapt(today), _adapt(now), low, high],
                )
                # pairs left without lines (a corrected file moved them elsewhere)
                cursor.execute(
                    f"DELETE FROM {rollup} WHERE EXISTS (SELECT 1 FROM {dirty} d WHERE d.id > %s AND d.id <= %s "
                    f"AND d.institution_id = {rollup}.institution_id AND d.month = {rollup}.month) "
                    f"AND NOT EXISTS (SELECT 1 FROM {line} o WHERE o.institution_id = {rollup}.institution_id "
                    f"AND o.month = {rollup}.month)",
                    [low, high],
                )
                cursor.execute(f"DELETE FROM {dirty} WHERE id > %s AND id <= %s", [low, high])
            total += len(ids)


def refresh_overdue(today: dt.date | None = None) -> int:
    """Move the rollups' overdue amounts to `today` (a line becomes overdue by the passing of time, not by
    an import). Only months with unpaid lines are looked at; returns how many rollups were updated."""
    today = today or timezone.localdate()
    rollup, line = MonthlyRollup._meta.db_table, OrderLine._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {rollup} SET overdue_fen = COALESCE((SELECT SUM(o.outstanding_fen) FROM {line} o "
            f"WHERE o.institution_id = {rollup}.institution_id AND o.month = {rollup}.month "
            f"AND o.outstanding_fen > 0 AND o.payment_due < %s), 0), overdue_as_of = %s "
            f"WHERE outstanding_fen > 0 AND (overdue_as_of IS NULL OR overdue_as_of < %s)",
            [_adapt(today), _adapt(today), _adapt(today)],
        )
        return cursor.rowcount
