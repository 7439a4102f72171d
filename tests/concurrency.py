"""Two people at once, on PostgreSQL: one holds a transaction open while a second request runs into its locks.

Each side runs on its own thread, so on its own database connection (closed when it ends); the first side
commits only once the second is seen waiting for a lock, so the test checks what the second does after
waiting, not what it would do if it came first or last."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection, connections, transaction

WAIT = 30  # seconds; a thread still waiting after this is a deadlock the test's assertions then report


def until_a_lock_is_awaited() -> None:
    """Returns once another session of the test database waits for a lock (or after WAIT seconds)."""
    with connection.cursor() as cursor:
        for _ in range(WAIT * 10):
            # pg_stat_activity is read once per transaction and kept (stats_fetch_consistency): called inside a
            # transaction (a side that holds its locks while it waits), the next look must drop that copy, or it never
            # sees the other side start waiting and returns only after WAIT seconds
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            threading.Event().wait(0.1)


def _closing(work: Callable[[], object]) -> None:
    try:
        work()
    finally:
        connection.close()


def held_while(hold: Callable[[], object], then: Callable[[], object], *, meanwhile: Callable[[], object] | None = None):
    """`hold()` runs in a transaction left open; `then()` starts on a second connection; once it waits for a lock,
    the first transaction commits. `meanwhile()` runs in the test's thread before `then` starts, while the first
    transaction is still open. Each side catches the errors it expects; the test asserts on what they recorded."""
    holding, commit = threading.Event(), threading.Event()

    def first():
        with transaction.atomic():
            hold()
            holding.set()
            commit.wait(WAIT)

    threads = [threading.Thread(target=_closing, args=(first,)), threading.Thread(target=_closing, args=(then,))]
    threads[0].start()
    assert holding.wait(WAIT), "the first transaction did not get as far as holding its locks"
    if meanwhile is not None:
        meanwhile()
    threads[1].start()
    until_a_lock_is_awaited()
    commit.set()
    for thread in threads:
        thread.join(WAIT * 2)


def on_own_connection(backend, conf: dict, fn: Callable[[], object], out: list) -> threading.Thread:
    """Start `fn` on a thread whose default connection is a new `backend` connection with the settings `conf` (a
    worker of its own, e.g. on a copied SQLite file); what it returns, or raises, is appended to `out`."""

    def body():
        connections["default"] = backend({**conf}, "default")
        try:
            out.append(fn())
        except BaseException as e:  # noqa: BLE001 — what reached the worker
            out.append(e)
        finally:
            connections["default"].close()
            del connections["default"]

    thread = threading.Thread(target=body)
    thread.start()
    return thread
