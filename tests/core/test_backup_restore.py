"""`pharmacrm backup` / `pharmacrm restore` on the database in use, the daily schedule and retention."""

from __future__ import annotations

import datetime
import gzip
import stat

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import translation

from pharmacrm.core import audit, backup, crypto, tasks
from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services
from pharmacrm.customers.models import Institution, Person


@pytest.fixture(autouse=True)
def _english_output():
    """These tests read the commands' messages in English (the product's default language is zh-hans)."""
    with translation.override("en"):
        yield


pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def backup_dir(tmp_path, settings):
    settings.BACKUP_DIR = tmp_path / "backups"
    # a restore replaces the documents (signed agreements under VAR_DIR): never the project's own var/
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    return settings.BACKUP_DIR


def test_a_restore_brings_back_exactly_the_backed_up_data(xiehe, admin_user, backup_dir, capsys):
    doctor = Person.objects.get(name="张伟")
    call_command("backup")
    made = backup.list_backups(backup_dir)
    assert len(made) == 1
    out = capsys.readouterr().out
    assert str(made[0]) in out and "keyring" in out
    recorded = AuditEntry.objects.get(action=AuditEntry.Action.BACKUP)
    assert recorded.extra["file"] == made[0].name

    services.update_institution(admin_user, xiehe, {"name": "北京协和医院（东院）", "tier": "key"})
    services.update_person(admin_user, doctor, {"mobile": "13911112222"})
    services.create_institution(admin_user, {"name": "备份之后新建的诊所", "kind": "clinic"})
    wiped = AuditEntry.objects.order_by("-seq").first()  # the trail's last entry before the restore

    call_command("restore", str(made[0]), "--yes")

    xiehe = Institution.objects.get(pk=xiehe.pk)
    assert xiehe.name == "北京协和医院" and xiehe.tier == "new"
    assert not Institution.objects.filter(name="备份之后新建的诊所").exists()
    doctor = Person.objects.get(pk=doctor.pk)
    assert doctor.mobile == "13800138000" and doctor.email == "zhangwei@example.com"
    assert doctor.birthday == datetime.date(1975, 3, 15)
    # the restored chain is intact and ends with the restore itself
    assert audit.verify().ok
    last = AuditEntry.objects.order_by("-seq").first()
    assert last.action == AuditEntry.Action.RESTORE and last.extra["file"] == made[0].name
    assert last.extra["key_problems"] == []
    assert last.extra["sha256"] == recorded.extra["sha256"]  # the very file whose backup was recorded
    # and it names the last entry of the trail it replaced: the entries written since the backup are gone with their
    # data, but the restored trail says up to which one they went
    assert (last.extra["replaced_up_to"], last.extra["replaced_hash"]) == (wiped.seq, wiped.hash)
    assert not AuditEntry.objects.filter(hash=wiped.hash).exists()


def test_a_backup_is_private_and_comes_with_its_key_ring(xiehe, backup_dir):
    made = backup.backup(actor_name="tester")
    assert made.path.parent == backup_dir
    for path in (made.path, made.keyring_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700
    assert crypto.KeyRing.from_json(made.keyring_path.read_text()) == crypto.keyring()
    if connection.vendor == "sqlite":
        with gzip.open(made.path) as fh:
            assert fh.read(16) == b"SQLite format 3\x00"
        assert made.path.name.endswith(".sqlite3.gz")
    else:
        assert made.path.read_bytes()[:5] == b"PGDMP"
    entry = AuditEntry.objects.order_by("-seq").first()
    assert entry.action == AuditEntry.Action.BACKUP and entry.actor_name == "tester"
    assert entry.extra["sha256"] == made.sha256


def test_restore_refuses_to_overwrite_data_without_yes(xiehe, admin_user, backup_dir):
    made = backup.backup()
    services.update_institution(admin_user, xiehe, {"tier": "vip"})
    with pytest.raises(CommandError, match="--yes"):
        call_command("restore", str(made.path))
    assert Institution.objects.get(pk=xiehe.pk).tier == "vip"


def test_restore_refuses_a_file_that_is_not_a_backup_and_changes_nothing(xiehe, backup_dir, tmp_path):
    fake = tmp_path / (
        "pharmacrm-20260101-000000.sqlite3.gz" if connection.vendor == "sqlite" else "x.pgdump"
    )
    fake.write_bytes(gzip.compress(b"not a database") if connection.vendor == "sqlite" else b"not a dump")
    with pytest.raises(CommandError):
        call_command("restore", str(fake), "--yes")
    assert Institution.objects.filter(pk=xiehe.pk).exists()
    with pytest.raises(CommandError, match="does not exist"):
        call_command("restore", str(tmp_path / "missing.sqlite3.gz"), "--yes")


@pytest.mark.sqlite
def test_no_room_to_unpack_the_backup_says_so_and_restores_nothing(xiehe, admin_user, backup_dir):
    """The restore unpacks the database under VAR_DIR first. With no room for it (here a real limit on the
    size of the files this process may write: the write fails as on a full disk) the message says so —
    not that the backup is damaged — and the data stays as it was."""
    import resource
    import signal

    made = backup.backup()
    services.update_institution(admin_user, xiehe, {"tier": "vip"})
    limits, handler = resource.getrlimit(resource.RLIMIT_FSIZE), signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, limits[1]))
    try:
        with pytest.raises(CommandError) as refused:
            call_command("restore", str(made.path), "--yes")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert "not enough free space" in str(refused.value) and "nothing was restored" in str(refused.value)
    assert "damaged" not in str(refused.value)
    assert Institution.objects.get(pk=xiehe.pk).tier == "vip"
    assert not list(backup_dir.parent.joinpath("var").glob("restore-*"))  # the partial copy is gone


@pytest.mark.sqlite
def test_no_room_for_a_plain_database_backup_says_so_too(xiehe, admin_user, backup_dir, tmp_path):
    """A backup unpacked by hand (pharmacrm-….sqlite3) is copied before it is checked: no room for the copy
    gets the same message."""
    import resource
    import signal

    made = backup.backup()
    plain = tmp_path / made.path.name.removesuffix(".gz")
    with gzip.open(made.path) as src:
        plain.write_bytes(src.read())
    limits, handler = resource.getrlimit(resource.RLIMIT_FSIZE), signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, limits[1]))
    try:
        with pytest.raises(CommandError, match="not enough free space"):
            call_command("restore", str(plain), "--yes")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert Institution.objects.filter(pk=xiehe.pk).exists()


def test_two_backups_started_in_the_same_second_are_two_whole_backups(xiehe, backup_dir, monkeypatch):
    """The daily backup and an operator's, started in the same second, chose the same name and wrote into the
    same files: one failed (saying to check the free space) or replaced the other. Each gets its own name."""
    import threading
    import types

    from django.db import connections
    from django.utils import timezone

    same_second = timezone.localtime()
    frozen = types.SimpleNamespace(localtime=lambda: same_second, now=timezone.now)
    monkeypatch.setattr(backup, "timezone", frozen)
    both_named = threading.Barrier(2, timeout=60)
    dump = "_sqlite_backup" if connection.vendor == "sqlite" else "_pg_dump"
    original = getattr(backup, dump)

    # then one after the other: on the in-memory test database a copy and a write lock each other out
    one_at_a_time, holder = threading.Lock(), []

    def once_both_are_named(target):
        both_named.wait()
        one_at_a_time.acquire()
        holder.append(threading.get_ident())
        return original(target)

    monkeypatch.setattr(backup, dump, once_both_are_named)
    made, failed = [], []

    def run():
        try:
            made.append(backup.backup(actor_name="tester"))
        except Exception as e:
            failed.append(e)
        finally:
            connections.close_all()
            if threading.get_ident() in holder:
                holder.remove(threading.get_ident())
                one_at_a_time.release()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert failed == []
    assert len({m.path for m in made}) == 2
    assert sorted(p.name for p in backup.list_backups(backup_dir)) == sorted(m.path.name for m in made)
    for m in made:
        assert backup._sha256(m.path) == m.sha256 and m.keyring_path.is_file() and m.files_path.is_file()
    assert not list(backup_dir.glob("*part"))
    files = AuditEntry.objects.filter(action=AuditEntry.Action.BACKUP).values_list("extra__file", flat=True)
    assert sorted(files) == sorted(m.path.name for m in made)


@pytest.mark.sqlite
def test_no_room_for_the_backup_says_so_and_leaves_nothing_behind(xiehe, backup_dir):
    """A full disk while the database is copied (here a real limit on the size of the files this process may
    write) is one line saying no backup was written — it was a traceback of 'disk I/O error' — and leaves no
    partial copy to keep the disk full for the next night's attempt."""
    import resource
    import signal

    limits, handler = resource.getrlimit(resource.RLIMIT_FSIZE), signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, limits[1]))
    try:
        with pytest.raises(CommandError, match="No backup was written") as refused:
            call_command("backup")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert "free space" in str(refused.value)
    assert list(backup_dir.iterdir()) == []
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.BACKUP).exists()


@pytest.mark.sqlite
def test_a_full_disk_while_compressing_leaves_no_partial_file(xiehe, backup_dir, monkeypatch):
    """The disk fills up while the copy is compressed: the half-written .gz-part went unnoticed for a day."""
    import errno

    def disk_full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gzip.GzipFile, "write", disk_full)
    with pytest.raises(CommandError, match="No backup was written"):
        call_command("backup")
    assert list(backup_dir.iterdir()) == []


@pytest.mark.sqlite
def test_a_backup_of_an_earlier_version_restores_and_says_to_migrate(xiehe, backup_dir, capsys):
    """A backup made before an upgrade lacks the upgrade's database changes: the restore said nothing, and the web
    server started on it failed page after page (or the restore's own key check stopped on a missing column)."""
    import sqlite3

    from django.db.migrations.recorder import MigrationRecorder

    made = backup.backup()
    last = MigrationRecorder.Migration.objects.filter(app="core").order_by("-name").first().name
    plain = backup_dir / "earlier.sqlite3"
    plain.write_bytes(gzip.decompress(made.path.read_bytes()))
    earlier = sqlite3.connect(plain)
    earlier.execute("DELETE FROM django_migrations WHERE app = 'core' AND name = ?", [last])
    earlier.commit()
    earlier.close()
    made.path.write_bytes(gzip.compress(plain.read_bytes()))
    try:
        call_command("restore", str(made.path), "--yes")
        said = capsys.readouterr()
        assert "Database restored" in said.out
        assert "earlier version of PharmaCRM: run `pharmacrm migrate`" in said.err
        assert Institution.objects.filter(pk=xiehe.pk).exists()
    finally:
        MigrationRecorder(connection).record_applied("core", last)  # the test database as it was


def test_retention_keeps_the_newest_backups_and_their_key_rings(backup_dir):
    backup_dir.mkdir()
    for day in range(1, 6):
        for suffix in (".sqlite3.gz", ".keyring.json", ".files.tar.gz"):
            (backup_dir / f"pharmacrm-202601{day:02d}-023000{suffix}").write_text("x")
    (backup_dir / "pharmacrm-20260103-023000-2.sqlite3.gz").write_text("x")  # a second one that day
    (backup_dir / "notes.txt").write_text("kept")

    deleted = backup.apply_retention(3, backup_dir)

    assert [p.name for p in backup.list_backups(backup_dir)] == [
        "pharmacrm-20260105-023000.sqlite3.gz",
        "pharmacrm-20260104-023000.sqlite3.gz",
        "pharmacrm-20260103-023000-2.sqlite3.gz",
    ]
    assert {p.name for p in deleted} == {
        f"pharmacrm-202601{day:02d}-023000{suffix}" for day in (1, 2, 3)
        for suffix in (".sqlite3.gz", ".keyring.json", ".files.tar.gz")
    }  # fmt: skip
    assert (backup_dir / "notes.txt").exists()


def test_the_daily_task_backs_up_and_applies_retention(xiehe, backup_dir, settings):
    settings.BACKUP_KEEP_DAILY = 2
    for _ in range(3):
        tasks.daily_backup.call_local()
    kept = backup.list_backups(backup_dir)
    assert len(kept) == 2
    assert sorted(p.name for p in backup_dir.iterdir()) == sorted(
        [p.name for p in kept] + [backup.keyring_path_for(p).name for p in kept]
        + [backup.files_path_for(p).name for p in kept]
    )
    assert AuditEntry.objects.filter(action=AuditEntry.Action.BACKUP, actor_name="scheduler").count() == 3


def test_the_daily_backup_runs_at_half_past_two_in_china():
    from huey.contrib.djhuey import HUEY

    def due(local_time: datetime.datetime) -> bool:
        if HUEY.utc:  # the consumer hands periodic tasks naive UTC times
            local_time = local_time.replace(tzinfo=datetime.timezone(datetime.timedelta(hours=8)))
            local_time = local_time.astimezone(datetime.UTC).replace(tzinfo=None)
        return any(isinstance(t, tasks.daily_backup.task_class) for t in HUEY.read_periodic(local_time))

    assert due(datetime.datetime(2026, 3, 2, 2, 30))
    assert not due(datetime.datetime(2026, 3, 2, 10, 30))
    assert not due(datetime.datetime(2026, 3, 2, 2, 31))


def test_retention_removes_what_a_killed_backup_left_a_day_ago_but_not_one_being_written(backup_dir):
    import os
    import time

    backup_dir.mkdir()
    (backup_dir / "pharmacrm-20260101-023000.sqlite3.gz").write_text("x")
    abandoned = [backup_dir / "pharmacrm-20260102-023000.files.tar.gz.part",
                 backup_dir / "pharmacrm-20260102-023000.sqlite3.gz.gz-part"]  # fmt: skip
    for p in abandoned:
        p.write_text("half")
        os.utime(p, (time.time() - 2 * 24 * 3600,) * 2)
    running = backup_dir / "pharmacrm-20260103-023000.pgdump.part"
    running.write_text("being written")
    deleted = backup.apply_retention(1, backup_dir)
    assert set(deleted) == set(abandoned)
    assert running.exists() and (backup_dir / "pharmacrm-20260101-023000.sqlite3.gz").exists()

