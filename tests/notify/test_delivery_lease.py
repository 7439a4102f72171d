"""A delivery is never sent twice because a lock outlasted its worker's lease (session 39).

A worker claims a delivery with a lease, sends it, then stores "sent". Until now storing waited for the database's
lock for half the lease and then gave up: a lock held longer right after the send (an all-or-nothing import, a
restore; on PostgreSQL a table lock where the operator set lock_timeout) left the delivery claimed, and once the lease
ran out the next sweep claimed and sent it again — the recipient got the e-mail twice. Now the delivery is marked as
being sent just before the send; no claim takes a delivery so marked, the worker waits for the lock as long as it is
held, and a mark whose lease ran out ends as "gave up, may have gone out" instead of a second send.

These tests run real workers in threads, each with its own connection, against the real database (on SQLite a copy of
the test database in a file with the production settings — WAL, BEGIN IMMEDIATE — and a busy timeout of 1 s; on
PostgreSQL the test database with lock_timeout = 1 s), another connection holding the write lock, and the real local
SMTP server."""

from __future__ import annotations

import threading
import time

import pytest
from django.conf import settings as django_settings
from django.db import connection, connections
from django.urls import reverse

from pharmacrm.notify import services, tasks
from pharmacrm.notify.models import Delivery

from ..concurrency import on_own_connection

pytestmark = pytest.mark.django_db(transaction=True)
S = Delivery.Status
LEASE = 2  # seconds: half of it (what storing "sent" used to wait) is 1 s


class World:
    """Workers (threads with their own connections) and a holder of the database's write lock."""

    def __init__(self, tmp_path):
        backend = type(connections["default"])
        if connection.vendor == "sqlite":
            import sqlite3

            path = tmp_path / "pharmacrm.sqlite3"
            with connection.cursor() as cursor:
                cursor.execute("VACUUM INTO %s", [str(path)])
            conf = {**django_settings.DATABASES["default"], "NAME": str(path)}
            conf["OPTIONS"] = {**conf["OPTIONS"], "timeout": 1}
            assert conf["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
            raw = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
            assert raw.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
            self._lock_sql = ["BEGIN IMMEDIATE"]
        else:
            conf = {**connection.settings_dict}
            holder = backend({**conf}, "holder")
            holder.connect()
            raw = holder.connection
            raw.autocommit = True
            self._holder = holder
            options = conf.get("OPTIONS") or {}
            conf["OPTIONS"] = {**options, "options": f"{options.get('options', '')} -c lock_timeout=1000".strip()}
            self._lock_sql = ["BEGIN", "LOCK TABLE notify_delivery IN EXCLUSIVE MODE"]
        self.raw, self.conf, self.backend = raw, conf, backend
        self.locked = threading.Event()

    def take(self):
        for sql in self._lock_sql:
            self.raw.execute(sql)
        self.locked.set()

    def release(self):
        self.raw.execute("COMMIT")

    def run(self, fn, out: list) -> threading.Thread:
        return on_own_connection(self.backend, self.conf, fn, out)

    def row(self, pk: int):
        sql = f"SELECT status, attempts, sending_since IS NULL FROM notify_delivery WHERE id = {int(pk)}"
        return tuple(self.raw.execute(sql).fetchone())

    def close(self):
        if connection.vendor == "sqlite":
            self.raw.close()
        else:
            self._holder.close()


@pytest.fixture
def world(tmp_path, users, smtp_server, settings):
    """An e-mail delivery due (the agent's notification), the lease shortened to LEASE seconds. → (World, pk)"""
    settings.NOTIFY_LEASE_SECONDS = LEASE
    agent = users["agent"]
    agent.email = "agent@pharma.example"
    agent.save()
    services.send([agent], kind="ticket.assigned", title="T-1 药品说明书咨询", body="已分配给你", url="/")
    (delivery,) = Delivery.objects.filter(channel=Delivery.Channel.EMAIL)
    w = World(tmp_path)
    yield w, delivery.pk
    w.close()


def _lock_when_the_mail_arrives(smtp_server, w: World) -> None:
    """The write lock is taken while the SMTP server accepts the message: right after the send, before the worker
    can store it."""
    accept = smtp_server.handle_DATA

    async def handle_DATA(server, session, envelope):  # noqa: N802
        answer = await accept(server, session, envelope)
        if not w.locked.is_set():
            w.take()
        return answer

    smtp_server.handle_DATA = handle_DATA


def test_a_lock_held_past_the_lease_right_after_the_send_does_not_send_it_twice(world, smtp_server):
    w, pk = world
    _lock_when_the_mail_arrives(smtp_server, w)
    first: list = []
    sender = w.run(lambda: tasks.deliver(pk), first)
    assert w.locked.wait(30), first
    time.sleep(LEASE + 0.5)  # the lock outlasts the whole lease: the sender still waits to store "sent"
    second: list = []
    sweeper = w.run(tasks.sweep, second)  # the next minute's sweep, on another worker, finds the lease run out
    time.sleep(0.5)
    w.release()
    sender.join(60)
    sweeper.join(60)
    assert not [r for r in first + second if isinstance(r, BaseException)], (first, second)
    assert len(smtp_server.messages) == 1  # the agent got the e-mail once
    assert smtp_server.messages[0]["message"]["X-PharmaCRM-Delivery"] == str(pk)
    assert first == [S.SENT]  # what happened was stored once the lock was free
    assert w.row(pk) == (S.SENT, 1, True)


def test_a_delivery_whose_worker_stopped_mid_send_is_not_sent_again_but_shown_as_possibly_sent(
    users, smtp_server, client_for, settings
):
    """A worker killed during the send (its outcome unknown): the sweep ends it as "gave up" with the reason, in the
    reader's language, and an administrator's retry sends it."""
    settings.NOTIFY_LEASE_SECONDS = LEASE
    agent = users["agent"]
    agent.email = "agent@pharma.example"
    agent.save()
    services.send([agent], kind="ticket.assigned", title="T-1 药品说明书咨询", body="已分配给你", url="/")
    (delivery,) = Delivery.objects.filter(channel=Delivery.Channel.EMAIL)
    assert tasks._start_send(tasks.claim(delivery.pk))  # what a worker killed during the send leaves
    assert tasks.sweep() == 0  # its lease runs: left alone
    time.sleep(LEASE + 0.2)
    assert tasks.sweep() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (S.GAVE_UP, 1, "code:send_interrupted")
    assert not smtp_server.messages  # not sent again by itself
    page = client_for("admin").get(reverse("notify:deliveries")).content.decode()
    assert "工作进程在发送时中止，可能已经发出" in page
    settings.NOTIFY_LEASE_SECONDS = 300
    services.retry(users["admin"], delivery)  # the administrator: it did not arrive
    tasks.sweep()
    delivery.refresh_from_db()
    assert len(smtp_server.messages) == 1
    assert (delivery.status, delivery.attempts, delivery.sending_since) == (S.SENT, 2, None)
