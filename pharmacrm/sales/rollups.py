"""Monthly rollups per customer, maintained incrementally, so that scoring reads rollups (its cost grows
with customers, not with order history):

* new lines are added to their (customer, month) rollup as deltas, set-based in the database right after
  the chunk's insert — amounts, lines, payments, days late, outstanding and overdue add up; an order counts
  (a purchase order: one with a line sold, not a return's own order) when the pair had no such line of it before, a product when the customer had not bought it that month (one
  index probe each, on the lines' (customer, month, product) and (order, line) indexes);
* a line without a payment due date falls due at the end of the default payment term
  (settings.PHARMACRM_DEFAULT_PAYMENT_TERM_DAYS) after its order date, for overdue amounts and lateness alike;
* a changed line (a corrected file) marks the pairs it leaves and enters dirty (`sales_rollupdirty`, in the
  same transaction), and `refresh_dirty` recomputes those pairs from their lines, set-based.

Writers of lines and rollups (imports, the refresh) take `lock()` first: one at a time, so a
read-modify-write of a rollup never loses another's update."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .models import MonthlyRollup, OrderLine, RollupDirty, RollupEmptied

REFRESH_BATCH = 50_000
LOCK_KEY = 0x5A1E5  # PostgreSQL advisory lock of the order import and the rollup refresh


def lock() -> None:
    """Serialise writers of lines and rollups for the rest of the transaction. SQLite: this connection's
    IMMEDIATE transaction holds the database's write lock already; PostgreSQL: an advisory lock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])


def _adapt(value):
    if connection.vendor == "postgresql" or value is None:
        return value
    if isinstance(value, dt.datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value.isoformat() if isinstance(value, dt.date) else value


def _iso(value) -> str:
    return value if isinstance(value, str) else value.isoformat()


def mark_dirty(pairs) -> None:
    """Mark (institution id, month) pairs for recomputation (a changed line, a merge)."""
    rows = [RollupDirty(institution_id=i, month=dt.date.fromisoformat(_iso(m))) for i, m in pairs]
    RollupDirty.objects.bulk_create(rows, ignore_conflicts=True, batch_size=5000)


def mark_undated() -> int:
    """Mark for recomputation every month holding a line without a payment due date: what a change of the
    default payment term changes (migration sales 0005 did it once). Returns how many months."""
    line, dirty = OrderLine._meta.db_table, RollupDirty._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        lock()
        cursor.execute(
            f"INSERT INTO {dirty} (institution_id, month) SELECT DISTINCT institution_id, month FROM {line} "
            f"WHERE payment_due IS NULL ON CONFLICT (institution_id, month) DO NOTHING"
        )
        return cursor.rowcount


SUMS = ("amount_fen", "lines", "paid_fen", "on_time_fen", "late_fen", "late_lines", "days_late", "outstanding_fen",
        "overdue_fen")  # fmt: skip


def payment_term_days() -> int:
    """The payment term assumed for a line without a payment due date (settings, 90 days by default)."""
    return max(int(getattr(settings, "PHARMACRM_DEFAULT_PAYMENT_TERM_DAYS", 90)), 0)


def materiality_fen() -> int:
    """The credit materiality threshold in fen (settings, 100 = ¥1.00 by default; 0 turns it off)."""
    return max(int(getattr(settings, "PHARMACRM_CREDIT_MATERIALITY_FEN", 100)), 0)


def overdue_immaterial(overdue_fen: int, amount_fen: int) -> bool:
    """Whether an overdue total is immaterial — a rounding difference (9,999.75 paid of 10,000.00) rather than
    arrears: under the materiality threshold (¥1.00 by default) and under 0.1 % of the customer's purchases in the
    window (`amount_fen`). The credit status and the evaluation's credit measure count it as settled; the arrears,
    overdue and ageing figures still show it exactly."""
    return 0 < overdue_fen < materiality_fen() and overdue_fen * 1000 < amount_fen


def due_date(payment_due: dt.date | None, order_date: dt.date) -> dt.date:
    """When a line falls due: its payment due date, else its order date plus the default payment term."""
    return payment_due or order_date + dt.timedelta(days=payment_term_days())


def _due() -> str:
    """`due_date` in SQL, for the line `o`."""
    days = payment_term_days()
    if connection.vendor == "postgresql":
        return f"COALESCE(o.payment_due, o.order_date + {days})"
    return f"COALESCE(o.payment_due, date(o.order_date, '+{days} days'))"


# Payment behaviour counts lines the customer owes money for: a return (a negative amount, refunded to the
# customer) is neither paid on time nor late, or it would pull the on-time share below zero and add its
# refund date to the days late. A line without a due date falls due at the end of the default payment term.
# A payment date with nothing paid (an ERP's 0 or "-" beside it) is no payment: the line is still owed, its
# amount outstanding and overdue once due, not a late payment of 0.00 adding its days to the average.
def _late() -> str:
    return f"o.amount_fen > 0 AND o.paid_fen > 0 AND o.paid_date IS NOT NULL AND o.paid_date > {_due()}"


# What was paid by the due date counts as paid on time, as what was paid after it counts as paid late: a line paid in
# part by its due date (9,999.75 of 10,000.00, the rest an ERP's rounding difference, or an instalment) counted
# nowhere, so that its customer's share paid on time was 0 % beside the 0.25 overdue, and "no payment history" while
# the rest was not yet due.
def _on_time() -> str:
    return f"o.amount_fen > 0 AND o.paid_fen > 0 AND o.paid_date IS NOT NULL AND o.paid_date <= {_due()}"


def _sums_sql() -> str:
    late = _late()
    return (
        f"SUM(o.amount_fen), COUNT(*), SUM(o.paid_fen), SUM(CASE WHEN {_on_time()} THEN o.paid_fen ELSE 0 END), "
        f"SUM(CASE WHEN {late} THEN o.paid_fen ELSE 0 END), SUM(CASE WHEN {late} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {late} THEN {_days_late()} ELSE 0 END), SUM(o.outstanding_fen), "
        f"SUM(CASE WHEN o.outstanding_fen > 0 AND {_due()} < %s THEN o.outstanding_fen ELSE 0 END)"
    )


def add_new_lines(after_id: int, today: dt.date) -> None:
    """Add the lines stored after line id `after_id` (a chunk just inserted by the caller, under `lock()`)
    to their rollups, set-based: sums add up; an order counts when no earlier line of that order exists in
    the pair; a product counts when the customer had not bought it in that month before."""
    rollup, line, dirty = MonthlyRollup._meta.db_table, OrderLine._meta.db_table, RollupDirty._meta.db_table
    today_v = _adapt(today)
    # The chunk is read by its id range. SQLite would rather walk the whole (customer, month, product) index
    # in GROUP BY order and test every line's id: a pass over all the lines for every chunk, so an import
    # got slower with each million lines stored (0.7 s per 10,000-line chunk at 10 million).
    sqlite = connection.vendor == "sqlite"
    chunk = f"{line} o NOT INDEXED" if sqlite else f"{line} o"
    with connection.cursor() as cursor:
        _no_jit(cursor)
        # A rollup whose overdue amount is of another day is recomputed whole rather than added to. Looked up
        # from the chunk's pairs, one index probe each: the planners would rather read every rollup (they
        # expect almost none to match), for every chunk. The fence keeps PostgreSQL from turning the probe
        # into a join.
        fence = "LIMIT -1 OFFSET 0" if sqlite else "OFFSET 0"
        cursor.execute(
            f"WITH c AS MATERIALIZED (SELECT DISTINCT o.institution_id, o.month FROM {chunk} WHERE o.id > %s) "
            f"INSERT INTO {dirty} (institution_id, month) SELECT c.institution_id, c.month FROM c WHERE EXISTS "
            f"(SELECT 1 FROM {rollup} r WHERE r.institution_id = c.institution_id AND r.month = c.month "
            f"AND r.outstanding_fen > 0 AND (r.overdue_as_of IS NULL OR r.overdue_as_of <> %s) {fence}) "
            f"ON CONFLICT (institution_id, month) DO NOTHING",
            [after_id, today_v],
        )
        # a purchase order: one with a line sold (a return's own order, its lines all negative, is no purchase)
        new_order = (
            f"o.amount_fen > 0 AND NOT EXISTS (SELECT 1 FROM {line} p WHERE p.order_number = o.order_number "
            f"AND p.id <= %s AND p.institution_id + 0 = o.institution_id AND p.month = o.month AND p.amount_fen > 0)"
        )
        new_product = (
            f"NOT EXISTS (SELECT 1 FROM {line} p WHERE p.institution_id = o.institution_id AND p.month = o.month "
            f"AND p.product_code = o.product_code AND p.id <= %s)"
        )
        adds = ", ".join(f"{c} = {rollup}.{c} + excluded.{c}" for c in (*SUMS, "orders", "products"))
        now = timezone.now()
        cursor.execute(
            f"INSERT INTO {rollup} (institution_id, month, {', '.join(SUMS)}, orders, products, overdue_as_of, "
            f"updated_at) SELECT o.institution_id, o.month, {_sums_sql()}, "
            f"COUNT(DISTINCT CASE WHEN {new_order} THEN o.order_number END), "
            f"COUNT(DISTINCT CASE WHEN {new_product} THEN o.product_code END), %s, %s "
            f"FROM {chunk} WHERE o.id > %s GROUP BY o.institution_id, o.month "
            f"ON CONFLICT (institution_id, month) DO UPDATE SET {adds}, overdue_as_of = excluded.overdue_as_of, "
            f"updated_at = excluded.updated_at",
            [today_v, after_id, after_id, today_v, _adapt(now), after_id],
        )


def _no_jit(cursor) -> None:
    """PostgreSQL compiles a statement it expects to be costly (these are, by their estimates) with LLVM
    first: 0.3–0.5 s per 10,000-line chunk for statements that then run in 0.1–0.2 s. Off for the rest of
    this transaction."""
    if connection.vendor == "postgresql":
        cursor.execute("SET LOCAL jit = off")


def last_line_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX(id) FROM {OrderLine._meta.db_table}")
        return cursor.fetchone()[0] or 0


def _days_late() -> str:
    if connection.vendor == "postgresql":
        return f"(o.paid_date - {_due()})"
    return f"CAST(julianday(o.paid_date) - julianday({_due()}) AS INTEGER)"


def refresh_dirty(today: dt.date | None = None) -> int:
    """Recompute the rollups of every dirty pair from their lines; returns how many pairs. Each batch is one
    transaction under the writers' lock that deletes exactly the marks it handled."""
    today = today or timezone.localdate()
    rollup, line, dirty = MonthlyRollup._meta.db_table, OrderLine._meta.db_table, RollupDirty._meta.db_table
    columns, updates = _recompute_columns()
    select = (
        f"SELECT {_recompute_sql()} "
        f"FROM {dirty} d JOIN {line} o ON o.institution_id = d.institution_id AND o.month = d.month "
        f"WHERE d.id > %s AND d.id <= %s GROUP BY o.institution_id, o.month"
    )
    total = 0
    while True:
        with transaction.atomic():
            lock()
            ids = list(RollupDirty.objects.order_by("id").values_list("id", flat=True)[:REFRESH_BATCH])
            if not ids:
                return total
            low, high = ids[0] - 1, ids[-1]
            now = timezone.now()
            with connection.cursor() as cursor:
                _no_jit(cursor)
                cursor.execute(
                    f"INSERT INTO {rollup} ({columns}) {select} ON CONFLICT (institution_id, month) DO UPDATE SET {updates}",
                    [_adapt(today), _adapt(today), _adapt(now), low, high],
                )
                # pairs left without lines (a corrected file moved them elsewhere): noted for the incremental
                # evaluation, which would not see the customer otherwise, then deleted
                emptied = (
                    f"EXISTS (SELECT 1 FROM {dirty} d WHERE d.id > %s AND d.id <= %s "
                    f"AND d.institution_id = {rollup}.institution_id AND d.month = {rollup}.month) "
                    f"AND NOT EXISTS (SELECT 1 FROM {line} o WHERE o.institution_id = {rollup}.institution_id "
                    f"AND o.month = {rollup}.month)"
                )
                cursor.execute(
                    f"INSERT INTO {RollupEmptied._meta.db_table} (institution_id, month, emptied_at) "
                    f"SELECT institution_id, month, %s FROM {rollup} WHERE {emptied}",
                    [_adapt(now), low, high],
                )
                cursor.execute(f"DELETE FROM {rollup} WHERE {emptied}", [low, high])
                cursor.execute(f"DELETE FROM {dirty} WHERE id > %s AND id <= %s", [low, high])
            total += len(ids)


def _recompute_columns() -> tuple[str, str]:
    """The rollup's columns as a recomputation writes them, and the upsert's assignments."""
    columns = f"institution_id, month, {', '.join(SUMS)}, orders, products, overdue_as_of, updated_at"
    return columns, ", ".join(f"{c} = excluded.{c}" for c in columns.split(", ")[2:])


def _recompute_sql() -> str:
    """A (customer, month) rollup recomputed from its lines `o` (parameters: today twice, then now)."""
    return (
        f"o.institution_id, o.month, {_sums_sql()}, COUNT(DISTINCT CASE WHEN o.amount_fen > 0 THEN o.order_number END), "
        f"COUNT(DISTINCT o.product_code), %s, %s"
    )


def rebuild_all(today: dt.date | None = None) -> None:
    """Compute every (customer, month) rollup from the lines in one pass, as `refresh_dirty` computes a dirty
    pair's: what an initial load does once at its end (under `lock()`, in its transaction) instead of adding each
    chunk's lines to their rollups."""
    today = today or timezone.localdate()
    rollup, line = MonthlyRollup._meta.db_table, OrderLine._meta.db_table
    columns, updates = _recompute_columns()
    with connection.cursor() as cursor:
        _no_jit(cursor)
        cursor.execute(
            f"INSERT INTO {rollup} ({columns}) SELECT {_recompute_sql()} FROM {line} o WHERE true "
            f"GROUP BY o.institution_id, o.month ON CONFLICT (institution_id, month) DO UPDATE SET {updates}",
            [_adapt(today), _adapt(today), _adapt(timezone.now())],
        )


def sort_on_disk() -> int | None:
    """SQLite sorts in temporary storage, which the web's connections keep in memory (temp_store=MEMORY): building
    the indexes over ten million lines at the end of an initial load, and grouping them into rollups, held the whole
    sort there, 1 GiB of the import's memory. On disk instead (the system's temporary directory), for this
    connection; SQLite lets it change only outside a transaction, so before the load's begins. Returns the setting to
    give back, None when there is nothing to change."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        return None
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA temp_store")
        before = int(cursor.fetchone()[0])
        cursor.execute("PRAGMA temp_store=FILE")
    return before


def give_back_temp_store(before: int | None) -> None:
    if before is not None:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA temp_store={int(before)}")


def state_as_of(
    as_of: dt.date, first: dt.date, ids=None, aged_before: dt.date | None = None
) -> dict[int, tuple[int, int, int, int, int, int]]:
    """What the rollups would have said on `as_of`, a past day (they hold today's payment state, and a month's
    lines ordered after that day): per customer (of `ids`, if given), from its lines ordered from month `first`
    up to `as_of`, the amounts paid on time and paid late by `as_of`, and the amount and purchase orders of
    `as_of`'s month up to that day; from its lines ordered up to `as_of`, whenever, the amount overdue on `as_of`
    (a debt does not age out of the window while it stays unpaid). A line counts as paid only if its payment date
    is on or before `as_of`: one paid later was owed in full then, and overdue if it had fallen due before `as_of`
    (as the nightly refresh counted it that day); a line ordered after `as_of` does not count. One pass over the
    lines, grouped by customer in the database; a line ordered before the window is read only if it was unpaid on
    `as_of`. Last, the part of the amount overdue on `as_of` that fell due before `aged_before` (the evaluation's
    credit gate: overdue more than its days on `as_of`; 0 without it), in the same pass."""
    from pharmacrm.core.ids import any_of_sql

    line = OrderLine._meta.db_table
    day, month = _adapt(as_of), _adapt(as_of.replace(day=1))
    paid = "o.paid_date <= %s"  # on top of _on_time / _late, which ask for a payment date
    owed = f"CASE WHEN o.paid_date IS NOT NULL AND {paid} THEN o.outstanding_fen WHEN o.amount_fen > 0 THEN o.amount_fen ELSE 0 END"
    where, params = "", []
    table = f"{line} o"
    if ids is not None:  # a few customers: through the (customer, month) index
        where, params = any_of_sql("o.institution_id", ids, connection.vendor)
        where = f"AND {where}"
    elif connection.vendor == "sqlite":
        # every customer: SQLite would walk the (customer, month, product) index and fetch each line from the table
        # in that order, about twice as slow as reading the table through and sorting the customers' sums
        table = f"{line} o NOT INDEXED"
    window = "o.month >= %s"
    unpaid_then = "o.amount_fen > 0 AND (o.paid_date IS NULL OR o.paid_date > %s OR o.outstanding_fen > 0)"
    sql = (
        f"SELECT o.institution_id, SUM(CASE WHEN {window} AND {_on_time()} AND {paid} THEN o.paid_fen ELSE 0 END), "
        f"SUM(CASE WHEN {window} AND {_late()} AND {paid} THEN o.paid_fen ELSE 0 END), "
        f"SUM(CASE WHEN {_due()} < %s THEN {owed} ELSE 0 END), SUM(CASE WHEN o.month = %s THEN o.amount_fen ELSE 0 END), "
        f"COUNT(DISTINCT CASE WHEN o.month = %s AND o.amount_fen > 0 THEN o.order_number END), "
        f"SUM(CASE WHEN {_due()} < %s THEN {owed} ELSE 0 END) "
        f"FROM {table} WHERE ({window} OR ({unpaid_then})) AND o.month <= %s AND o.order_date <= %s {where} "
        f"GROUP BY o.institution_id"
    )
    # every customer's window on SQLite: the sort of its lines (10 M of them: 500 MiB) in temporary files, not in the
    # connection's memory, where an evaluation as of a past day in the worker held it
    temp_store = sort_on_disk() if ids is None else None
    try:
        with connection.cursor() as cursor:
            start = _adapt(first)
            # no gate: a day before every line's due date, so that nothing is counted
            aged = _adapt(aged_before or dt.date(1, 1, 1))
            cursor.execute(sql, [start, day, start, day, day, day, month, month, aged, day, start, day, month, day, *params])
            return {inst: tuple(int(v or 0) for v in rest) for inst, *rest in cursor.fetchall()}
    finally:
        give_back_temp_store(temp_store)


def refresh_overdue(today: dt.date | None = None) -> int:
    """Move the rollups' overdue amounts to `today` (a line becomes overdue by the passing of time, not by
    an import). Only months with unpaid lines are looked at. A rollup whose overdue amount changes is stamped
    (`updated_at`), as an import stamps the rollups it changes, so that the evaluation's incremental update
    (`changed_since`) re-scores its customer; the others only move their `overdue_as_of`. Returns how many
    rollups' overdue amounts changed."""
    today = today or timezone.localdate()
    rollup, line = MonthlyRollup._meta.db_table, OrderLine._meta.db_table
    stale = "{r}outstanding_fen > 0 AND ({r}overdue_as_of IS NULL OR {r}overdue_as_of < %s)"
    # each stale rollup's overdue amount computed once (one probe of the open items' index), then written only
    # where it differs (a derived table, not a WITH: SQLite's driver counts no rows of a statement that begins so)
    fresh = (
        f"SELECT r.id, COALESCE((SELECT SUM(o.outstanding_fen) FROM {line} o WHERE o.institution_id = r.institution_id "
        f"AND o.month = r.month AND o.outstanding_fen > 0 AND {_due()} < %s), 0) AS overdue FROM {rollup} r "
        f"WHERE {stale.format(r='r.')}"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        lock()
        cursor.execute(
            f"UPDATE {rollup} SET overdue_fen = n.overdue, overdue_as_of = %s, updated_at = %s FROM ({fresh}) n "
            f"WHERE {rollup}.id = n.id AND {rollup}.overdue_fen <> n.overdue",
            [_adapt(today), _adapt(timezone.now()), _adapt(today), _adapt(today)],
        )
        changed = cursor.rowcount
        cursor.execute(
            f"UPDATE {rollup} SET overdue_as_of = %s WHERE {stale.format(r='')}",
            [_adapt(today), _adapt(today)],
        )
        return changed
