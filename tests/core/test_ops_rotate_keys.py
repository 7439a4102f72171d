"""`pharmacrm rotate-keys`: a new key re-encrypts all personal data, old keys go only when nothing uses them."""

from __future__ import annotations

import datetime
import io
import json
import os
import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.utils import translation

from pharmacrm.core import audit, backup, crypto, keys
from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import search, services
from pharmacrm.customers.models import Person


@pytest.fixture(autouse=True)
def _english_output():
    """These tests read the commands' messages in English (the product's default language is zh-hans)."""
    with translation.override("en"):
        yield


pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _own_lock_files(settings, tmp_path):
    """On SQLite the operations' locks are files in var/, which the test workers shared: a test rotating on
    the other worker at the same moment made this one's rotation refuse ("another rotate-keys is running"),
    about one run in three with two workers. Each test has a var/ of its own (a test that needs another sets
    it)."""
    settings.VAR_DIR = tmp_path / "own-var"
    settings.VAR_DIR.mkdir()


def raw_values(column: str) -> list[str]:
    with connection.cursor() as cur:
        cur.execute(f"SELECT {column} FROM customers_person WHERE {column} <> '' ORDER BY id")
        return [row[0] for row in cur.fetchall()]


def ring_on_disk(path) -> crypto.KeyRing:
    return crypto.KeyRing.from_json(path.read_text())


def ring_changed_long_ago(path) -> None:
    """Time passes after the rotation: every running process has long loaded the new ring."""
    then = time.time() - 3600
    os.utime(path, (then, then))


def rotate_and_prune_later(path, **kwargs) -> None:
    """`rotate-keys`, then, once the processes have loaded the new ring, `rotate-keys --resume --prune`."""
    call_command("rotate_keys", **kwargs)
    ring_changed_long_ago(path)
    call_command("rotate_keys", "--resume", "--prune", **kwargs)


def test_rotation_re_encrypts_everything_and_reads_back_the_same(own_keyring, xiehe, users, capsys):
    old_key = crypto.keyring().active
    assert all(v.startswith(f"e1:{old_key}:") for v in raw_values("mobile"))
    before = raw_values("email")

    call_command("rotate_keys")

    ring = ring_on_disk(own_keyring)
    new_key = ring.active
    assert new_key != old_key and old_key in ring.keys  # the old key stays until pruned
    assert crypto.keyring() == ring
    for column in ("mobile", "email", "birthday"):
        values = raw_values(column)
        assert values and all(v.startswith(f"e1:{new_key}:") for v in values), column
    assert raw_values("email") != before
    doctor = Person.objects.get(name="张伟")
    assert (doctor.mobile, doctor.email, doctor.birthday) == (
        "13800138000", "zhangwei@example.com", datetime.date(1975, 3, 15),
    )  # fmt: skip
    assert [h.obj for h in search.search(users["agent"], "138 0013 8000")] == [doctor]
    entry = AuditEntry.objects.filter(action=AuditEntry.Action.ROTATE_KEYS).get()
    assert entry.extra["active_key"] == new_key and entry.extra["remaining"] == {}
    assert entry.extra["reencrypted"]["customers.person.mobile"] == 1
    assert entry.actor_name.startswith("cli:")
    assert audit.verify().ok
    assert "customers.person.mobile: 1 value re-encrypted." in capsys.readouterr().out  # not "1 values"


def test_the_new_ring_is_on_disk_before_anything_is_encrypted_under_it(own_keyring, xiehe, monkeypatch):
    """A power cut right after the rotation saved its ring could leave the ring file empty (written, renamed, never
    synced), and the values re-encrypted under the new key unreadable. The ring is synced, then its new name, before
    the first value is re-encrypted."""
    events = []
    real_fsync, real_reencrypt = os.fsync, keys.reencrypt

    def fsync(fd):
        events.append(("fsync", os.path.isdir(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def reencrypt(*args, **kwargs):
        events.append(("reencrypt", None))
        return real_reencrypt(*args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(keys, "reencrypt", reencrypt)

    call_command("rotate_keys")

    first = events.index(("reencrypt", None))
    assert ("fsync", False) in events[:first] and ("fsync", True) in events[:first]  # the file, then its folder
    assert not own_keyring.with_name(own_keyring.name + ".tmp").exists()
    assert ring_on_disk(own_keyring).active == crypto.keyring().active


def test_prune_removes_the_old_key_once_nothing_uses_it(own_keyring, xiehe):
    old_key = crypto.keyring().active
    rotate_and_prune_later(own_keyring)
    ring = ring_on_disk(own_keyring)
    assert old_key not in ring.keys and list(ring.keys) == [ring.active]
    assert Person.objects.get(name="张伟").mobile == "13800138000"
    pruned = AuditEntry.objects.filter(action=AuditEntry.Action.ROTATE_KEYS).order_by("-seq").first()
    assert pruned.extra["pruned"] == [old_key]


def test_prune_keeps_a_key_that_some_value_still_uses(own_keyring, xiehe):
    old_key = crypto.keyring().active
    old_mobile = raw_values("mobile")[0]
    call_command("rotate_keys")
    # a process that still ran with the old ring wrote this value during the rotation
    with connection.cursor() as cur:
        cur.execute("UPDATE customers_person SET mobile = %s", [old_mobile])
    assert keys.prunable_keys() == []
    ring_changed_long_ago(own_keyring)
    call_command("rotate_keys", "--resume", "--prune")
    assert old_key not in ring_on_disk(own_keyring).keys  # --resume re-encrypted it first
    assert Person.objects.get(name="张伟").mobile == "13800138000"


class RotationInAnotherThread:
    """What a second `rotate-keys` (the scheduled job, another shell) holds while it runs: the rotation lock,
    taken in a thread of its own with its own database connection."""

    def __enter__(self):
        self.holding, self.release, self.failed = threading.Event(), threading.Event(), []
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        assert self.holding.wait(30), self.failed
        return self

    def _run(self):
        try:
            with keys.rotation_lock():
                self.holding.set()
                self.release.wait(30)
        except Exception as e:  # reported by __enter__
            self.failed.append(e)
        finally:
            connections.close_all()

    def __exit__(self, *exc):
        self.release.set()
        self.thread.join()


def test_a_second_rotation_while_one_runs_refuses_at_once_and_changes_nothing(
    own_keyring, xiehe, settings, tmp_path
):
    """Two rotations side by side each saved a ring with a key of its own: one ring replaced the other, its key was
    lost with the values it had re-encrypted. The second run is refused at once and changes nothing."""
    settings.VAR_DIR = tmp_path
    before, mobiles = own_keyring.read_text(), raw_values("mobile")
    with RotationInAnotherThread():
        for args in ([], ["--resume", "--prune"]):
            with pytest.raises(CommandError, match="another rotate-keys is running"):
                call_command("rotate_keys", *args)
    assert own_keyring.read_text() == before and raw_values("mobile") == mobiles
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.ROTATE_KEYS).exists()
    call_command("rotate_keys")  # the lock went with the other run
    assert ring_on_disk(own_keyring).active != crypto.KeyRing.from_json(before).active


class PausedInAnotherThread:
    """A real `rotate-keys` or `restore` run in a thread of its own (its own database connections), held at
    `module.name` until the block ends: what an operator's second shell meets while the first one works."""

    def __init__(self, monkeypatch, module, name, command, *args):
        self.command, self.args = command, args
        self.reached, self.release, self.failed = threading.Event(), threading.Event(), []
        original = getattr(module, name)

        def paused(*a, **kw):
            self.reached.set()
            assert self.release.wait(60)
            return original(*a, **kw)

        monkeypatch.setattr(module, name, paused)

    def __enter__(self):
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        assert self.reached.wait(60), self.failed
        return self

    def _run(self):
        try:
            call_command(self.command, *self.args, stdout=io.StringIO(), stderr=io.StringIO())
        except BaseException as e:  # checked by __exit__
            self.failed.append(e)
        finally:
            self.reached.set()
            connections.close_all()

    def __exit__(self, *exc):
        self.release.set()
        self.thread.join()
        assert not self.failed, self.failed


def test_a_restore_while_a_rotation_runs_is_refused_at_once_and_changes_nothing(
    own_keyring, xiehe, admin_user, tmp_path, settings, monkeypatch
):
    """A restore --with-keyring under a running rotation replaced the key ring and the data the rotation was
    re-encrypting; the rotation then went on with its own ring. The restore is refused at once, nothing restored."""
    from pharmacrm.customers import services
    from pharmacrm.customers.models import Institution

    settings.BACKUP_DIR = tmp_path / "backups"
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    made = backup.backup()
    services.update_institution(admin_user, xiehe, {"tier": "vip"})

    with PausedInAnotherThread(monkeypatch, keys, "reencrypt", "rotate_keys"):
        during = own_keyring.read_text()  # the rotation's new key is in the ring
        with pytest.raises(CommandError, match="Nothing was restored: rotate-keys is running"):
            call_command("restore", str(made.path), "--yes", "--with-keyring")
        assert own_keyring.read_text() == during
        assert Institution.objects.get(pk=xiehe.pk).tier == "vip"
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.RESTORE).exists()
    assert AuditEntry.objects.filter(action=AuditEntry.Action.ROTATE_KEYS).count() == 1
    assert Person.objects.get(name="张伟").mobile == "13800138000"

    call_command("restore", str(made.path), "--yes", "--with-keyring")  # the lock went with the rotation
    assert Institution.objects.get(pk=xiehe.pk).tier != "vip"


def test_a_rotation_while_a_restore_runs_is_refused_at_once_and_changes_nothing(
    own_keyring, xiehe, tmp_path, settings, monkeypatch
):
    """A rotation started while a restore ran added its key to the ring the restore was about to replace (its
    values then unreadable), or re-encrypted data being replaced. It is refused at once, also after the restore
    has closed the database connections (PostgreSQL), which dropped a lock held on them."""
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    made = backup.backup()
    before = own_keyring.read_text()

    # held once the database is restored, before the backup's key ring replaces the one in use
    with PausedInAnotherThread(
        monkeypatch, backup, "_keep_replaced_ring", "restore", str(made.path), "--yes", "--with-keyring"
    ):
        mobiles = raw_values("mobile")
        for args in ([], ["--resume", "--prune"]):
            with pytest.raises(CommandError, match="Nothing was changed: a restore is running"):
                call_command("rotate_keys", *args)
        assert own_keyring.read_text() == before and raw_values("mobile") == mobiles
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.ROTATE_KEYS).exists()
    assert AuditEntry.objects.filter(action=AuditEntry.Action.RESTORE).count() == 1

    call_command("rotate_keys")  # the lock went with the restore
    assert ring_on_disk(own_keyring).active != crypto.KeyRing.from_json(before).active
    assert Person.objects.get(name="张伟").mobile == "13800138000"


@pytest.mark.parametrize("batch", ["0", "-5"])
def test_a_batch_size_below_one_is_refused_before_a_key_is_added(own_keyring, xiehe, batch):
    """`--batch 0` added a key and re-encrypted nothing (every new attempt added one more key); on PostgreSQL a
    negative size stopped with a traceback after the key was added."""
    before, mobiles = own_keyring.read_text(), raw_values("mobile")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("rotate_keys", "--batch", batch)
    assert own_keyring.read_text() == before and raw_values("mobile") == mobiles
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.ROTATE_KEYS).exists()


def test_resume_finishes_an_interrupted_rotation_without_adding_a_key(own_keyring, xiehe):
    keys.save_ring(crypto.keyring().with_new_key())  # the run stopped right after activating the new key
    new_key = crypto.keyring().active
    assert not any(v.startswith(f"e1:{new_key}:") for v in raw_values("mobile"))
    assert Person.objects.get(name="张伟").mobile == "13800138000"  # still readable half-way

    call_command("rotate_keys", "--resume")

    assert ring_on_disk(own_keyring).active == new_key
    assert all(v.startswith(f"e1:{new_key}:") for v in raw_values("mobile") + raw_values("email"))


def test_a_key_ring_given_in_the_environment_is_left_alone(own_keyring, xiehe, monkeypatch):
    before = own_keyring.read_text()
    mobiles = raw_values("mobile")
    monkeypatch.setenv("PHARMACRM_KEYRING", crypto.keyring().to_json())
    with pytest.raises(CommandError, match="PHARMACRM_KEYRING_FILE"):
        call_command("rotate_keys")
    assert own_keyring.read_text() == before and raw_values("mobile") == mobiles


def test_a_key_ring_file_named_in_the_environment_is_rotated_in_place(
    own_keyring, xiehe, monkeypatch, tmp_path
):
    secret = tmp_path / "secrets" / "keyring.json"
    secret.parent.mkdir()
    secret.write_text(crypto.keyring().to_json())
    monkeypatch.setenv("PHARMACRM_KEYRING_FILE", str(secret))
    call_command("rotate_keys")
    assert json.loads(secret.read_text())["active"] == crypto.keyring().active
    assert ring_on_disk(own_keyring) != crypto.keyring()  # the default file was not used


def test_an_old_backup_restores_with_its_own_key_ring_after_the_keys_were_pruned(
    own_keyring, xiehe, tmp_path, settings
):
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.VAR_DIR = tmp_path / "var"  # the restore replaces the documents there, not the project's own
    settings.VAR_DIR.mkdir()
    made = backup.backup()
    rotate_and_prune_later(own_keyring)

    with pytest.raises(CommandError, match="--with-keyring"):
        call_command("restore", str(made.path), "--yes")

    call_command("restore", str(made.path), "--yes", "--with-keyring")
    assert Person.objects.get(name="张伟").mobile == "13800138000"
    assert ring_on_disk(own_keyring) == crypto.KeyRing.from_json(made.keyring_path.read_text())
    assert keys.problems() == []


def test_a_backup_during_which_a_rotation_pruned_the_old_key_still_restores(
    own_keyring, xiehe, tmp_path, settings
):
    """The daily backup read the key ring again after its dump, for the keys a rotation might add meanwhile; a
    `rotate-keys --prune` that finished meanwhile had removed the old key, the one of the values in the dump, and
    the backup's key-ring copy lacked it: the backup could not be read. The copy keeps the keys of both reads."""
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    old_key = crypto.keyring().active
    dump = "_sqlite_backup" if connection.vendor == "sqlite" else "_pg_dump"
    original = getattr(backup, dump)

    def rotation_right_after_the_dump(target):
        original(target)
        rotate_and_prune_later(own_keyring, stdout=io.StringIO())

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backup, dump, rotation_right_after_the_dump)
        made = backup.backup()
    assert old_key not in ring_on_disk(own_keyring).keys  # pruned during the backup

    call_command("restore", str(made.path), "--yes", "--with-keyring", stdout=io.StringIO())
    assert Person.objects.get(name="张伟").mobile == "13800138000"
    assert keys.problems() == []


def test_a_key_ring_given_in_the_environment_restores_and_is_never_replaced(
    own_keyring, xiehe, admin_user, tmp_path, settings, monkeypatch
):
    """In production the ring is a secret the application cannot write (PHARMACRM_KEYRING here). A plain restore,
    which keeps the ring in use, was refused ("cannot be replaced from here"); a restore --with-keyring replaced
    the database first and only then stopped with a traceback, the restore unaudited and the ring not installed.
    The first restores; the second is refused before anything changes."""
    from pharmacrm.customers import services
    from pharmacrm.customers.models import Institution

    settings.BACKUP_DIR = tmp_path / "backups"
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    made = backup.backup()
    services.update_institution(admin_user, xiehe, {"tier": "vip"})
    monkeypatch.setenv("PHARMACRM_KEYRING", crypto.keyring().to_json())

    with pytest.raises(CommandError, match="PHARMACRM_KEYRING and cannot be replaced"):
        call_command("restore", str(made.path), "--yes", "--with-keyring")
    assert Institution.objects.get(pk=xiehe.pk).tier == "vip"
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.RESTORE).exists()

    call_command("restore", str(made.path), "--yes")
    assert Institution.objects.get(pk=xiehe.pk).tier != "vip"
    assert Person.objects.get(name="张伟").mobile == "13800138000"
    assert AuditEntry.objects.filter(action=AuditEntry.Action.RESTORE).count() == 1


def test_data_under_a_key_the_ring_lacks_stops_the_rotation_before_anything_changes(own_keyring, xiehe):
    """Data restored without its backup's key ring holds values under a key the ring does not have: the rotation
    added a new key, then stopped halfway with a traceback (and every further attempt added one more key). It is
    refused first, naming the key, and nothing changes."""
    assert "k99" not in crypto.keyring().keys
    with connection.cursor() as cur:  # a ciphertext under a key id the ring does not know
        cur.execute("UPDATE customers_person SET landline = %s", ["e1:k99:" + "QUFB" * 12])
    before = own_keyring.read_text()
    with pytest.raises(CommandError) as refused:
        call_command("rotate_keys")
    assert "k99: 1" in str(refused.value) and "Nothing was changed" in str(refused.value)
    assert own_keyring.read_text() == before
    with pytest.raises(CommandError):
        call_command("rotate_keys", "--resume")
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.ROTATE_KEYS).exists()


def test_a_backup_while_a_restore_runs_is_refused_and_a_restore_while_a_backup_runs_too(
    own_keyring, xiehe, admin_user, tmp_path, settings, monkeypatch
):
    """A restore replaces the database, then the documents, then the key ring. A backup taken meanwhile paired the
    restored database with the documents or the ring from before it, and passed for a whole backup; a restore
    under a running backup did the same to that backup. Each is refused at once now, and writes nothing."""
    from pharmacrm.customers import services
    from pharmacrm.customers.models import Institution

    settings.BACKUP_DIR = tmp_path / "backups"
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    made = backup.backup()
    services.update_institution(admin_user, xiehe, {"tier": "vip"})

    # held once the database is restored, before the backup's key ring replaces the one in use
    with PausedInAnotherThread(
        monkeypatch, backup, "_keep_replaced_ring", "restore", str(made.path), "--yes", "--with-keyring"
    ):
        with pytest.raises(CommandError, match="No backup was written: a restore is running on this database"):
            call_command("backup")
    assert backup.list_backups() == [made.path]
    assert Institution.objects.get(pk=xiehe.pk).tier != "vip"  # the restore went on

    Institution.objects.filter(pk=xiehe.pk).update(tier="vip")
    # held after the dump, before the documents are archived
    with PausedInAnotherThread(monkeypatch, backup, "_archive_files", "backup"):
        with pytest.raises(CommandError, match="Nothing was restored: a backup of this database is being written"):
            call_command("restore", str(made.path), "--yes")
        assert Institution.objects.get(pk=xiehe.pk).tier == "vip"
        with keys.operation_lock("backup"):  # what a second backup holds: two at once (daily, operator's) are fine
            pass
    assert len(backup.list_backups()) == 2  # the one that was running, whole
    assert AuditEntry.objects.filter(action=AuditEntry.Action.RESTORE).count() == 1
    call_command("restore", str(made.path), "--yes")  # the locks went with the runs
    assert Institution.objects.get(pk=xiehe.pk).tier != "vip"


def test_a_demo_load_and_a_restore_refuse_each_other(own_keyring, xiehe, tmp_path, settings, monkeypatch):
    """A demo load wrote into a database being replaced by a restore, and a restore replaced one half loaded."""
    from pharmacrm.customers.models import Institution

    settings.BACKUP_DIR = tmp_path / "backups"
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    settings.DATABASE_URL = None
    monkeypatch.delenv("PHARMACRM_DEMO_PASSWORD", raising=False)
    made = backup.backup()
    with keys.operation_lock("demo"):  # what a running `pharmacrm demo` holds
        with pytest.raises(CommandError, match="Nothing was restored: the demo data is being loaded"):
            call_command("restore", str(made.path), "--yes")
    with keys.operation_lock("restore"):  # what a running restore holds
        with pytest.raises(CommandError) as refused:
            call_command("demo", "--scale", "0.05")
    assert str(refused.value) == (
        "Nothing was changed: a restore is running on this database. Wait for it to finish, then load the demo "
        "data again."
    )
    assert list(Institution.objects.values_list("name", flat=True)) == ["北京协和医院", "心内科"]
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.RESTORE).exists()


def mobile_of(name: str) -> str:
    with connection.cursor() as cur:
        cur.execute("SELECT mobile FROM customers_person WHERE name = %s", [name])
        return cur.fetchone()[0]


def test_a_process_started_before_a_rotation_loses_no_value_to_prune(own_keyring, xiehe, admin_user, capsys):
    """What happened: the web server loaded the key ring at start; the operator ran `rotate-keys --prune` without
    restarting it. The old key was dropped from the ring at once, while the web server kept saving with it (the
    ring in its memory): every phone number it saved after that was readable by nobody else, and by nothing at
    all once it restarted (the person's page failed). Now a running process loads the changed ring within a
    second, and --prune keeps the old keys until the processes have had time to do so."""
    web_server = crypto.keyring()
    old_key = web_server.active

    call_command("rotate_keys", "--prune")  # the operator, right after the rotation

    new_key = ring_on_disk(own_keyring).active
    assert old_key in ring_on_disk(own_keyring).keys
    assert "Old keys were kept" in capsys.readouterr().err
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.ROTATE_KEYS, extra__has_key="pruned").exists()

    crypto.install_keyring(web_server, persist=False)  # the web server, which loaded the ring before the rotation
    # a person registered in the very moment of the rotation: still under the old key
    services.create_person(admin_user, {"name": "李娜", "institution": xiehe, "mobile": "13900139000"})
    assert mobile_of("李娜").startswith(f"e1:{old_key}:")
    time.sleep(crypto.RECHECK_SECONDS + 0.2)
    # a moment later, without a restart: the new key
    services.create_person(admin_user, {"name": "王芳", "institution": xiehe, "mobile": "13700137000"})
    assert mobile_of("王芳").startswith(f"e1:{new_key}:")
    assert crypto.keyring().active == new_key

    ring_changed_long_ago(own_keyring)
    call_command("rotate_keys", "--resume", "--prune")  # step 4 of the procedure
    assert list(ring_on_disk(own_keyring).keys) == [new_key]

    crypto.reloaded_keyring()  # any process, or the web server restarted
    assert Person.objects.get(name="李娜").mobile == "13900139000"
    assert Person.objects.get(name="王芳").mobile == "13700137000"
    assert keys.problems() == []


@pytest.mark.postgresql  # on SQLite the prune holds the write lock: no transaction is half-done meanwhile
def test_prune_waits_for_a_transaction_begun_before_the_rotation(own_keyring, xiehe, capsys, monkeypatch):
    """A long import that began before the rotation may still save values under the old key when it commits: on
    PostgreSQL --prune keeps the old keys while a transaction older than the ring's change is open."""
    monkeypatch.setattr(keys, "PRUNE_AFTER", datetime.timedelta(0))
    began, finish = threading.Event(), threading.Event()

    def long_import():
        try:
            from django.db import transaction

            with transaction.atomic(), connection.cursor() as cur:
                cur.execute("SELECT count(*) FROM customers_person")
                began.set()
                finish.wait(30)
        finally:
            connection.close()

    importer = threading.Thread(target=long_import)
    importer.start()
    try:
        assert began.wait(30)
        time.sleep(0.05)
        old_key = crypto.keyring().active
        call_command("rotate_keys", "--prune")
        assert old_key in ring_on_disk(own_keyring).keys
        assert "1 database transaction that began before the key ring was changed is still open" in (
            capsys.readouterr().err
        )
    finally:
        finish.set()
        importer.join()
    call_command("rotate_keys", "--resume", "--prune")
    assert old_key not in ring_on_disk(own_keyring).keys


def test_a_running_process_saves_with_the_new_key_within_a_second_of_the_rotation(own_keyring, xiehe, admin_user):
    """Until restarted, a process that loaded the ring before `rotate-keys` kept saving with the old key (the
    procedure's restart step); every value it saved then needed another `--resume`. It now loads the changed
    ring by itself."""
    worker = crypto.keyring()
    call_command("rotate_keys", stdout=io.StringIO())
    new_key = ring_on_disk(own_keyring).active
    crypto.install_keyring(worker, persist=False)  # the worker, started before the rotation
    time.sleep(1.2)  # a little longer than crypto.RECHECK_SECONDS
    services.create_person(admin_user, {"name": "王芳", "institution": xiehe, "mobile": "13700137000"})
    assert mobile_of("王芳").startswith(f"e1:{new_key}:")


def test_a_running_process_keeps_its_ring_when_the_file_is_damaged_meanwhile(own_keyring, xiehe, caplog):
    """A ring file half-written by hand while the server runs does not take the server down: it keeps the ring it
    has, says so in the log, and loads the file once it is whole again."""
    in_use = crypto.keyring()
    own_keyring.write_text("{")
    time.sleep(1.2)
    assert crypto.keyring() == in_use
    assert Person.objects.get(name="张伟").mobile == "13800138000"
    assert "cannot be used" in caplog.text
    rotated = in_use.with_new_key()
    own_keyring.write_text(rotated.to_json())
    time.sleep(1.2)
    assert crypto.keyring() == rotated


def test_values_left_in_plain_text_during_the_run_are_named_in_the_commands_language(
    own_keyring, xiehe, monkeypatch
):
    """A value saved unencrypted while the rotation ran (a script writing the column directly) is left for
    --resume, and the command lists what is left by key. Plain text was named "plain text" in English among
    the Chinese of the rest of the message."""
    rewrite = keys.reencrypt

    def and_meanwhile(*args, **kwargs):
        done = rewrite(*args, **kwargs)
        with connection.cursor() as cur:
            cur.execute("UPDATE customers_person SET landline = '010-12345678' WHERE name = '张伟'")
        return done

    monkeypatch.setattr(keys, "reencrypt", and_meanwhile)
    err = io.StringIO()
    with translation.override("zh-hans"):
        call_command("rotate_keys", stderr=err)
    assert "明文: 1" in err.getvalue() and "plain text" not in err.getvalue(), err.getvalue()
