"""Overlapping Python work with database work: `in_background(items)` produces the items in a second
thread while the caller consumes them. The caller keeps the database work (and its connection and
transaction); the producer must not touch the database. Worth it where the database call releases the
GIL — SQLite's statements and PostgreSQL's round trips both do — so that two cores work at once."""

from __future__ import annotations

import contextvars
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()

# While a pipeline runs, the interpreter hands the GIL over every 0.5 ms instead of 5: the consumer,
# back from a database call, would otherwise wait up to 5 ms for the producer at every statement.
SWITCH_INTERVAL = 0.0005
_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = sys.getswitchinterval()


def _short_switches(on: bool) -> None:
    global _switch_users, _switch_saved
    with _switch_lock:
        if on:
            if _switch_users == 0:
                _switch_saved = sys.getswitchinterval()
                sys.setswitchinterval(min(_switch_saved, SWITCH_INTERVAL))
            _switch_users += 1
        else:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_saved)


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def in_background(items: Iterable[T], *, ahead: int = 2, name: str = "producer") -> Iterator[T]:
    """Yield what `items` yields, produced up to `ahead` items in advance by a daemon thread. An error
    in the producer is raised in the consumer; a consumer that stops early (or fails) stops the producer."""
    handoff: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as error:  # noqa: BLE001 — handed to the consumer, who raises it
            put(_Failed(error))

    thread = threading.Thread(target=contextvars.copy_context().run, args=(produce,), name=name, daemon=True)
    _short_switches(True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
        _short_switches(False)


def alongside(work: Callable[[], T], db_work: Callable[[], object]) -> T:
    """`work()` — pure Python, no database — in a second thread while this thread runs `db_work()` on its
    connection; work's result once both are done (an error in either is raised here, db_work's first)."""
    out: list = []

    def run() -> None:
        try:
            out.append(work())
        except BaseException as error:  # noqa: BLE001 — raised in the caller below
            out.append(_Failed(error))

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), name="alongside", daemon=True)
    thread.start()
    try:
        db_work()
    finally:
        thread.join()
    if isinstance(out[0], _Failed):
        raise out[0].error
    return out[0]


def may_run_in_parallel() -> bool:
    """Whether independent units of database work may run at once, each in its own thread and connection:
    on PostgreSQL (two server processes work at once; SQLite has one writer), and only outside a
    transaction (another connection would not see its uncommitted rows)."""
    from django.db import connection

    return connection.vendor == "postgresql" and not connection.in_atomic_block


def in_parallel(calls: list) -> list:
    """Run each callable in its own thread with its own database connection (closed afterwards); their
    results in order. The first error is raised once all have finished."""
    from django.db import connections

    results: list = [None] * len(calls)
    errors: list[BaseException] = []

    def work(i: int, call) -> None:
        try:
            results[i] = call()
        except BaseException as error:  # noqa: BLE001 — raised in the caller below
            errors.append(error)
        finally:
            connections.close_all()  # this thread's connections only

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(work, i, call), name=f"parallel-{i}", daemon=True)
        for i, call in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
