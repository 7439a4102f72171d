"""Workers sending deliveries while SQLite's write lock is taken (session 38).

Two workers claiming the same delivery at once (test_delivery.py::test_two_workers_dispatching_at_once_send_once)
sometimes left one thread dead with "database table is locked: notify_delivery" inside tasks.claim. The tests'
in-memory database is a shared-cache one, where a table another connection is writing fails at once (SQLITE_LOCKED:
SQLite's busy timeout does not apply); on a file database in WAL mode, as in production, a statement waits for the
lock up to the busy timeout (20 s) — and then fails the same way with "database is locked" (an all-or-nothing import
or a restore holds the lock longer). Either way the error reached the worker: a claim that failed killed the task or
the whole sweep, and an outcome that could not be stored after the send left the delivery claimed, to be sent again
once its lease ran out.

A worker now waits for the lock (tasks.patiently): a claim that still cannot be made leaves the delivery as it was,
due, for the next sweep; what a send came to is stored once the lock is free. These tests run the worker on a copy of
the test database in a file, with the production settings (WAL, BEGIN IMMEDIATE) and a busy timeout of 1 s instead
of 20 s, while another connection holds the write lock."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from django.conf import settings as django_settings
from django.db import connection

from pharmacrm.notify import services, tasks
from pharmacrm.notify.models import Delivery

from ..concurrency import on_own_connection

pytestmark = [pytest.mark.sqlite, pytest.mark.django_db(transaction=True)]
S = Delivery.Status


@pytest.fixture
def on_file(tmp_path, users, receiver):
    """A webhook delivery due, and the database copied to a file. → (run, holder, row): run(fn) calls fn in a thread
    connected to the file as production is (WAL, IMMEDIATE, busy timeout 1 s), returning its result or exception;
    holder is a plain connection to the file (BEGIN IMMEDIATE on it takes the write lock); row() reads the delivery's
    (status, attempts) from the file."""
    from django.db.backends.sqlite3.base import DatabaseWrapper

    services.create_endpoint(users["admin"], {"name": "receiver", "url": receiver.url})
    services.emit("ticket.created", {"n": 1})
    path = tmp_path / "pharmacrm.sqlite3"
    with connection.cursor() as cursor:
        cursor.execute("VACUUM INTO %s", [str(path)])
    conf = {**django_settings.DATABASES["default"], "NAME": str(path)}
    conf["OPTIONS"] = {**conf["OPTIONS"], "timeout": 1}
    assert conf["OPTIONS"]["transaction_mode"] == "IMMEDIATE" and "journal_mode=WAL" in conf["OPTIONS"]["init_command"]
    holder = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
    assert holder.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"

    def run(fn, out: list):
        return on_own_connection(DatabaseWrapper, conf, fn, out)

    def row():
        return holder.execute("SELECT status, attempts FROM notify_delivery").fetchone()

    yield run, holder, row
    holder.close()


def test_a_claim_waits_for_a_write_lock_held_past_the_busy_timeout(on_file, receiver):
    run, holder, row = on_file
    holder.execute("BEGIN IMMEDIATE")  # another writer, for 2.5 s: longer than the busy timeout (1 s)
    out: list = []
    worker = run(lambda: tasks.deliver(Delivery.objects.get().pk), out)
    time.sleep(2.5)
    holder.execute("COMMIT")
    worker.join(60)
    assert out == [S.SENT]  # not "database is locked"
    assert row() == (S.SENT, 1) and len(receiver.requests) == 1


def test_a_claim_that_cannot_get_the_lock_leaves_the_delivery_due_for_the_next_sweep(on_file, receiver, monkeypatch):
    monkeypatch.setattr(tasks, "PATIENCE", 1.5, raising=False)  # how long a worker waits
    run, holder, row = on_file
    holder.execute("BEGIN IMMEDIATE")  # held until the worker has given up
    out: list = []
    run(lambda: tasks.deliver(Delivery.objects.get().pk), out).join(60)
    run(tasks.sweep, out).join(60)
    holder.execute("COMMIT")
    assert out == [None, 0]  # nothing raised to the worker (its task, its sweep)
    assert row() == (S.PENDING, 0) and not receiver.requests  # untouched: no attempt counted, nothing sent
    out.clear()
    run(tasks.sweep, out).join(60)  # the next sweep, the lock free
    assert out == [1] and row() == (S.SENT, 1) and len(receiver.requests) == 1


def test_what_a_send_came_to_is_stored_once_the_lock_is_free(on_file, receiver):
    """The lock is taken while the receiver answers: storing "sent" waits for it, instead of failing and leaving the
    delivery claimed (sent once more when its lease ran out)."""
    run, holder, row = on_file
    receiver.delay = 0.5
    out: list = []
    worker = run(lambda: tasks.deliver(Delivery.objects.get().pk), out)
    for _ in range(600):
        if receiver.requests:
            break
        time.sleep(0.01)
    holder.execute("BEGIN IMMEDIATE")
    time.sleep(2.5)
    holder.execute("COMMIT")
    worker.join(60)
    assert out == [S.SENT]
    assert row() == (S.SENT, 1) and len(receiver.requests) == 1


def test_two_workers_and_two_sweeps_at_once_on_a_file_database_send_once(on_file, receiver):
    run, _holder, row = on_file
    receiver.delay = 0.3
    barrier = threading.Barrier(4)
    pk = Delivery.objects.get().pk
    out: list = []

    def at_once(fn):
        return lambda: (barrier.wait(), fn())[1]

    workers = [run(at_once(lambda: tasks.deliver(pk)), out), run(at_once(lambda: tasks.deliver(pk)), out),
               run(at_once(tasks.sweep), out), run(at_once(tasks.sweep), out)]  # fmt: skip
    for w in workers:
        w.join(60)
    assert not [r for r in out if isinstance(r, BaseException)], out
    assert sorted(map(str, out)).count("sent") + out.count(1) == 1
    assert row() == (S.SENT, 1) and len(receiver.requests) == 1
