"""Key-ring operations over stored data: where ciphertext lives, re-encryption, pruning, restore checks."""

from __future__ import annotations

import contextlib
import datetime
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from . import crypto
from .fields import EncryptedTextField


class KeyRingNotWritable(Exception):
    """The key ring comes from an environment variable, so a changed ring cannot be saved."""


class KeyOperationRunning(Exception):
    """A `rotate-keys` or a `restore` holds the lock that lets one of them run at a time."""


class RotationRunning(KeyOperationRunning):
    """Another `rotate-keys` holds the rotation lock."""


class RestoreRunning(KeyOperationRunning):
    """A `restore` holds the lock."""


class DemoRunning(Exception):
    """Another `pharmacrm demo` holds the demo lock."""


class BackupRunning(Exception):
    """A backup (`pharmacrm backup` or the daily one) holds the backup lock."""


# PostgreSQL advisory locks (SQLite: lock files in var/ named after the operation)
_LOCK_KEYS = {"rotate-keys": 0x6E7_0001, "restore": 0x6E7_0002, "demo": 0x6E7_0003, "backup": 0x6E7_0004}
_RUNNING = {"rotate-keys": RotationRunning, "restore": RestoreRunning, "demo": DemoRunning, "backup": BackupRunning}
# What each operation may not run beside, besides another run of itself. A restore replaces the database, the
# documents and maybe the key ring one after the other: a backup taken meanwhile paired a database with documents
# or a ring from the other side of the restore and passed for a whole backup, a restore under a running backup
# did the same to that backup, and a demo load wrote into a database being replaced.
_EXCLUDES = {
    "rotate-keys": ("restore",),
    "restore": ("rotate-keys", "backup", "demo"),
    "demo": ("restore",),
    "backup": ("restore",),
}
_SHARED = frozenset({"backup"})  # kinds of which several may run at once


@contextlib.contextmanager
def rotation_lock() -> Iterator[None]:
    """One key rotation at a time, or raise RotationRunning at once (RestoreRunning while a restore runs). Two runs
    side by side (the scheduled job and an operator) each saved a ring with a new key of their own: the ring of the
    first was replaced, its key lost, and the values it had re-encrypted became unreadable."""
    with operation_lock("rotate-keys"):
        yield


@contextlib.contextmanager
def operation_lock(kind: str) -> Iterator[None]:
    """Run `kind` ("rotate-keys", "restore", "demo" or "backup") alone: not beside another run of itself (backups
    excepted: two at once, the daily one and an operator's, are fine), nor beside what `_EXCLUDES` names (a restore
    replaced the key ring and the data under a running rotation, which then saved its own ring over the restored
    one); otherwise raise RotationRunning / RestoreRunning / DemoRunning / BackupRunning at once, naming what runs.
    Each kind holds a lock of its own (backups a shared one) and then checks that the others' are free: of two
    started together, at least one refuses. A lock held exclusively is checked with a shared try and a shared one
    with an exclusive try, so that two backups checking at once do not take each other for a restore.
    PostgreSQL: session advisory locks on a connection opened for them alone (a restore closes the others, which
    would drop them), for every machine using the database; SQLite (one machine): lock files in var/. Both are
    released when the process holding them dies."""
    others = _EXCLUDES[kind]
    if connection.vendor == "postgresql":
        own = connection.copy()  # not in `connections`: connections.close_all() leaves it open

        def try_lock(cursor, name: str, shared: bool) -> None:
            cursor.execute(f"SELECT pg_try_advisory_lock{'_shared' if shared else ''}(%s)", [_LOCK_KEYS[name]])
            if not cursor.fetchone()[0]:
                raise _RUNNING[name]

        try:
            with own.cursor() as cursor:
                try_lock(cursor, kind, kind in _SHARED)
                for other in others:
                    try_lock(cursor, other, other not in _SHARED)
                    cursor.execute(
                        f"SELECT pg_advisory_unlock{'' if other in _SHARED else '_shared'}(%s)", [_LOCK_KEYS[other]]
                    )
            yield
        finally:
            # let go explicitly: the server ends a closed session's locks only once its backend has noticed,
            # so the next command started at once (a restore right after a refused one) found them still held
            with contextlib.suppress(Exception):  # a connection already lost: its session's end frees them
                with own.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock_all()")
            own.close()
        return
    import fcntl

    def lock_file(name: str, shared: bool):
        fh = open(Path(settings.VAR_DIR) / f"{name}.lock", "a+b")  # noqa: SIM115 (closed by the caller)
        try:
            fcntl.flock(fh, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise _RUNNING[name] from None
        return fh

    with lock_file(kind, kind in _SHARED) as held:
        for other in others:
            with lock_file(other, other not in _SHARED):
                pass  # closing it lets it go
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Column:
    """One encrypted column: the model, its field, and the AES-GCM context the values are bound to."""

    model: type
    field: EncryptedTextField

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    @property
    def name(self) -> str:
        return self.field.column

    @property
    def label(self) -> str:
        return f"{self.model._meta.label_lower}.{self.field.name}"

    @property
    def context(self) -> str:
        return self.field.context()

    @property
    def pk(self) -> str:
        return self.model._meta.pk.column


def encrypted_columns() -> list[Column]:
    """Every concrete EncryptedTextField (and subclass) of every installed model."""
    return [
        Column(model, f)
        for model in apps.get_models()
        if not model._meta.proxy and model._meta.managed
        for f in model._meta.concrete_fields
        if isinstance(f, EncryptedTextField)
    ]


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _key_id_sql(col: str) -> str:
    """SQL for the key id inside `e1:<key id>:<body>` on this database."""
    if connection.vendor == "postgresql":
        return f"split_part({col}, ':', 2)"
    return f"substr({col}, 4, instr(substr({col}, 4), ':') - 1)"


def key_usage() -> dict[str, Counter]:
    """{column label: Counter(key id → number of values)}; plain text found in a column counts as ''."""
    out: dict[str, Counter] = {}
    with connection.cursor() as cur:
        for c in encrypted_columns():
            col = _q(c.name)
            counts: Counter = Counter()
            cur.execute(
                f"SELECT {_key_id_sql(col)}, COUNT(*) FROM {_q(c.table)} WHERE {col} LIKE %s GROUP BY 1",
                [crypto.PREFIX + ":%"],
            )
            for key_id, n in cur.fetchall():
                counts[key_id] += n
            cur.execute(
                f"SELECT COUNT(*) FROM {_q(c.table)} WHERE {col} <> '' AND {col} NOT LIKE %s",
                [crypto.PREFIX + ":%"],
            )
            plain = cur.fetchone()[0]
            if plain:
                counts[""] += plain
            out[c.label] = counts
    return out


def keys_in_use() -> Counter:
    total: Counter = Counter()
    for counts in key_usage().values():
        total.update(counts)
    return total


def ring_destination() -> Path:
    """Where a changed key ring is saved; raises KeyRingNotWritable when it cannot be."""
    if "PHARMACRM_KEYRING_FILE" in os.environ:
        path = Path(os.environ["PHARMACRM_KEYRING_FILE"])
        if not os.access(path.parent, os.W_OK):
            raise KeyRingNotWritable(str(path))
        return path
    if os.environ.get("PHARMACRM_KEYRING"):
        raise KeyRingNotWritable("PHARMACRM_KEYRING")
    return Path(settings.PHARMACRM_KEYRING_PATH)


def save_ring(ring: crypto.KeyRing) -> Path:
    """Persist `ring` where the running configuration reads it from, then use it in this process."""
    path = ring_destination()
    if "PHARMACRM_KEYRING_FILE" not in os.environ:
        crypto.install_keyring(ring, persist=True)
        return path
    crypto._write_ring(path, ring)
    crypto.install_keyring(ring, persist=False)
    return path


def reencrypt(batch: int = 2000, progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Re-encrypt every value not under the active key; returns {column label: values rewritten}.

    Each batch is its own transaction and each row is rewritten only if it still holds the
    ciphertext that was read (ciphertexts are unique), so a concurrent edit is never overwritten
    and an interrupted run leaves every value readable with the ring's keys.
    """
    ring = crypto.keyring()
    active = f"{crypto.PREFIX}:{ring.active}:%"
    done: dict[str, int] = {}
    for c in encrypted_columns():
        col, pk, table = _q(c.name), _q(c.pk), _q(c.table)
        stale = f"{col} <> '' AND {col} NOT LIKE %s ORDER BY {pk} LIMIT {int(batch)}"
        first = f"SELECT {pk}, {col} FROM {table} WHERE {stale}"
        after = f"SELECT {pk}, {col} FROM {table} WHERE {pk} > %s AND {stale}"
        update = f"UPDATE {table} SET {col} = %s WHERE {pk} = %s AND {col} = %s"
        last, count = None, 0
        while True:
            with transaction.atomic(), connection.cursor() as cur:
                cur.execute(first, [active]) if last is None else cur.execute(after, [last, active])
                rows = cur.fetchall()
                if not rows:
                    break
                changes = []
                for row_pk, old in rows:
                    plain = crypto.decrypt(old, c.context) if old.startswith(crypto.PREFIX + ":") else old
                    changes.append((crypto.encrypt(plain, c.context), row_pk, old))
                cur.executemany(update, changes)
            last, count = rows[-1][0], count + len(rows)
            if progress:
                progress(c.label, count)
        done[c.label] = count
    return done


def prunable_keys() -> list[str]:
    """Keys of the ring that no stored value uses and that are not the active key."""
    ring = crypto.keyring()
    used = keys_in_use()
    return sorted(k for k in ring.keys if k != ring.active and used.get(k, 0) == 0)


class PruneTooSoon(Exception):
    """A process may still be saving values with an old key: nothing was pruned; the message says when to try."""


# How long after the key ring changed `--prune` keeps its old keys. Every running process loads a changed ring within
# crypto.RECHECK_SECONDS; this leaves time for the requests and tasks that encrypted a value with the old active key
# just before, and save it just after, to finish. A transaction that began before the change and is still open is
# waited for besides (PostgreSQL; on SQLite the prune holds the write lock, so none is half-done).
PRUNE_AFTER = datetime.timedelta(minutes=5)


def _ring_changed_at(path: Path) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromtimestamp(path.stat().st_mtime, tz=datetime.UTC)
    except OSError:
        return None


def _refuse_while_old_keys_may_be_written(path: Path) -> None:
    """Raise PruneTooSoon while a process that loaded the ring before its last change may still save a value
    under a key that pruning would drop: that value could never be read again."""
    changed = _ring_changed_at(path)
    if changed is None:
        return
    until = changed + PRUNE_AFTER
    if timezone.now() < until:
        local = lambda t: timezone.localtime(t).strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
        raise PruneTooSoon(
            _(
                "Old keys were kept: the key ring was changed at %(changed)s, and a process that loaded it before "
                "may still be saving values with an old key. Run “pharmacrm rotate-keys --resume --prune” again "
                "after %(time)s."
            )
            % {"changed": local(changed), "time": local(until)}
        )
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND xact_start < %s",
            [changed],
        )
        open_before = cur.fetchone()[0]
    if open_before:
        raise PruneTooSoon(
            ngettext(
                "Old keys were kept: %(n)d database transaction that began before the key ring was changed is still "
                "open (a long import?) and may still save values with an old key. Run “pharmacrm rotate-keys "
                "--resume --prune” again once it has finished.",
                "Old keys were kept: %(n)d database transactions that began before the key ring was changed are "
                "still open (a long import?) and may still save values with an old key. Run “pharmacrm rotate-keys "
                "--resume --prune” again once they have finished.",
                open_before,
            )
            % {"n": open_before}
        )


def prune() -> list[str]:
    """Drop the keys no ciphertext refers to any more; returns their ids. Raises PruneTooSoon (nothing dropped)
    while a running process may still save values with one of them.

    The check and the new ring are made in one transaction: on SQLite it holds the write lock, so no other process
    is in the middle of saving a value while the keys in use are counted and the ring is written."""
    with transaction.atomic():
        ring = crypto.reloaded_keyring()
        gone = prunable_keys()
        if gone:
            _refuse_while_old_keys_may_be_written(ring_destination())
            save_ring(
                crypto.KeyRing(ring.active, {k: v for k, v in ring.keys.items() if k not in gone}, ring.index_key)
            )
    return gone


def problems() -> list[str]:
    """What would stop the stored personal data from being read with the current key ring.

    Checks that every key id in the data is in the ring, that each ring key really decrypts a
    sample of its values, that no column holds plain text, and that the blind-index key is the one
    the stored look-up hashes were made with.
    """
    from cryptography.exceptions import InvalidTag

    ring = crypto.keyring()
    found: list[str] = []
    samples_checked: set[str] = set()
    columns = {c.label: c for c in encrypted_columns()}
    with connection.cursor() as cur:
        for label, counts in key_usage().items():
            c = columns[label]
            for key_id, n in counts.items():
                if key_id == "":
                    found.append(
                        ngettext(
                            "%(column)s: %(n)d value is stored as plain text",
                            "%(column)s: %(n)d values are stored as plain text",
                            n,
                        )
                        % {"column": label, "n": n}
                    )
                elif key_id not in ring.keys:
                    found.append(
                        ngettext(
                            "%(column)s: %(n)d value uses key %(key)s, which is not in the key ring",
                            "%(column)s: %(n)d values use key %(key)s, which is not in the key ring",
                            n,
                        )
                        % {"column": label, "n": n, "key": key_id}
                    )
                elif key_id not in samples_checked:
                    cur.execute(
                        f"SELECT {_q(c.name)} FROM {_q(c.table)} WHERE {_q(c.name)} LIKE %s LIMIT 1",
                        [f"{crypto.PREFIX}:{key_id}:%"],
                    )
                    row = cur.fetchone()
                    try:
                        crypto.decrypt(row[0], c.context)
                        samples_checked.add(key_id)
                    except InvalidTag:
                        found.append(
                            _("key %(key)s in the key ring does not decrypt the data encrypted with %(key)s")
                            % {"key": key_id}
                        )
                        samples_checked.add(key_id)
    if not found:
        found += _blind_index_problems()
    return found


def _blind_index_problems() -> list[str]:
    """Recompute the blind indexes of one record per model and compare them with the stored ones."""
    out = []
    for model in {c.model for c in encrypted_columns()}:
        bidx = [f.attname for f in model._meta.concrete_fields if f.attname.endswith("_bidx")]
        if not bidx or not hasattr(model, "refresh_derived"):
            continue
        sample = model._default_manager.exclude(**{bidx[0]: ""}).order_by("pk").first()
        if sample is None:
            continue
        stored = {name: getattr(sample, name) for name in bidx}
        sample.refresh_derived()
        if any(getattr(sample, name) != value for name, value in stored.items()):
            out.append(
                _(
                    "%(model)s: the blind-index key differs from the one the stored look-up hashes were made with"
                )
                % {"model": model._meta.label_lower}
            )
    return out
