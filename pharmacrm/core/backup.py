"""Backups and restores of the whole database (SQLite online backup, pg_dump / pg_restore) and of the
documents stored beside it (ticket attachments, safety case files, signed agreements, cooperation agreements' signed
copies and acceptance files, the scanned copies of customers' licences), with retention."""

from __future__ import annotations

import errno
import gzip
import hashlib
import logging
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import DatabaseError, connection, connections
from django.utils import timezone
from django.utils.translation import gettext as _

from . import audit, crypto, keys
from .models import AuditEntry

log = logging.getLogger(__name__)

A = AuditEntry.Action
# pharmacrm-20260315-023000.sqlite3.gz, pharmacrm-20260315-023000-2.pgdump (a second one in the same second)
BACKUP_NAME = re.compile(r"^pharmacrm-(\d{8}-\d{6})(?:-(\d+))?\.(sqlite3\.gz|pgdump)$")
KEYRING_SUFFIX = ".keyring.json"
FILES_SUFFIX = ".files.tar.gz"
PART_MAX_AGE = 24 * 3600  # seconds after which a partial file in the backup directory counts as abandoned
# a restore stages its work inside each document directory, in directories named so: never archived
STAGING = ".restore-"


class BackupError(Exception):
    """A backup or restore could not be made; the message says why, for the operator."""


class RestoreNeedsConfirmation(BackupError):
    """The database holds data that a restore would replace; the operator must confirm."""


@dataclass
class BackupFile:
    path: Path
    keyring_path: Path
    size: int
    sha256: str
    files_path: Path | None = None
    files_count: int = 0
    pruned: list[Path] = field(default_factory=list)


@dataclass
class RestoreResult:
    path: Path
    key_problems: list[str]
    files_path: Path | None = None  # None: the backup has no files archive, the documents were left alone
    files_count: int = 0
    previous_keyring: Path | None = None  # with --with-keyring: where the ring replaced by the backup's was kept
    migrate_first: bool = False  # the backup comes from an earlier version: `pharmacrm migrate` before starting


# --- helpers -----------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _private_file(path: Path) -> None:
    path.chmod(0o600)


def _new_target(directory: Path, suffix: str) -> Path:
    """A new backup's path, reserved by creating its partial file (`….part`, written next): of two backups
    started in the same second (the daily one and an operator's), each wrote into the same files."""
    stem = f"pharmacrm-{timezone.localtime():%Y%m%d-%H%M%S}"
    n = 1
    while True:
        name = stem if n == 1 else f"{stem}-{n}"
        if not any(directory.glob(f"{name}.*")):
            try:
                reserved = directory / f"{name}{suffix}.part"
                os.close(os.open(reserved, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                return directory / f"{name}{suffix}"
            except FileExistsError:
                pass  # the other backup took it between the look and the creation
        n += 1


def pg_tool(name: str) -> str:
    """The path of a PostgreSQL client program: $PHARMACRM_PG_BIN/<name>, else from PATH."""
    if os.environ.get("PHARMACRM_PG_BIN"):
        candidate = Path(os.environ["PHARMACRM_PG_BIN"]) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        raise BackupError(
            _(
                "%(tool)s was not found: install the PostgreSQL client programs (the same major version as the server)."
            )
            % {"tool": name}
        )
    return found


def pg_connection() -> tuple[list[str], dict[str, str], str]:
    """Command-line options, environment and database name for pg_dump / pg_restore."""
    sd = connection.settings_dict
    args = []
    if sd.get("HOST"):
        args += ["-h", str(sd["HOST"])]
    if sd.get("PORT"):
        args += ["-p", str(sd["PORT"])]
    if sd.get("USER"):
        args += ["-U", str(sd["USER"])]
    env = {**os.environ}
    if sd.get("PASSWORD"):
        env["PGPASSWORD"] = str(sd["PASSWORD"])
    if (sd.get("OPTIONS") or {}).get("sslmode"):
        env["PGSSLMODE"] = str(sd["OPTIONS"]["sslmode"])
    return args, env, str(sd["NAME"])


def _run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(
            _("%(tool)s failed: %(error)s")
            % {"tool": Path(cmd[0]).name, "error": done.stderr.strip()[-2000:]}
        )


def list_backups(directory: Path | None = None) -> list[Path]:
    """The backups in `directory`, newest first."""
    directory = Path(directory or settings.BACKUP_DIR)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = BACKUP_NAME.match(p.name)
        if m:
            found.append(((m.group(1), int(m.group(2) or 1)), p))
    return [p for _key, p in sorted(found, reverse=True)]


def _stem_of(backup: Path) -> str:
    return backup.name.removesuffix(".sqlite3.gz").removesuffix(".sqlite3").removesuffix(".pgdump")


def keyring_path_for(backup: Path) -> Path:
    return backup.with_name(_stem_of(backup) + KEYRING_SUFFIX)


def files_path_for(backup: Path) -> Path:
    """The archive of the documents made with the database backup `backup`."""
    return backup.with_name(_stem_of(backup) + FILES_SUFFIX)


# document directories added to the backups after backups were already being made: an archive with nothing under one
# of them (made before it was added) leaves that directory as it is on restore, instead of emptying it of files the
# restored rows may name (a file no row names is removed by that directory's nightly sweep)
LATER_ROOTS = frozenset({"cooperation", "licences"})


def file_roots() -> dict[str, Path]:
    """The directories of documents the database refers to, by their name in the archive: ticket
    attachments, safety case files and course materials (MEDIA_ROOT), signed key-account agreements, the signed
    copies and acceptance files of cooperation agreements (var/cooperation: left out until session 46, so a
    restore lost them), the scanned copies of customers' licences (var/licences, since session 47). Import work files
    (var/imports) are not documents of record and are left out."""
    var = Path(settings.VAR_DIR)
    return {"files": Path(settings.MEDIA_ROOT), "agreements": var / "agreements", "cooperation": var / "cooperation",
            "licences": var / "licences"}  # fmt: skip


def apply_retention(keep: int, directory: Path | None = None) -> list[Path]:
    """Delete all but the newest `keep` backups (with their key-ring copies and documents archives), and the
    partial files of backups killed halfway a day ago or more; returns what was deleted."""
    if keep < 1:
        raise BackupError(_("At least one backup must be kept."))
    deleted = []
    for old in list_backups(directory)[keep:]:
        for p in (old, keyring_path_for(old), files_path_for(old)):
            if p.exists():
                p.unlink()
                deleted.append(p)
    # what a backup killed halfway left (`….part`, `….gz-part`): a day old, nobody is still writing it
    stale_before = timezone.now().timestamp() - PART_MAX_AGE
    for p in Path(directory or settings.BACKUP_DIR).glob("pharmacrm-*part"):
        if p.is_file() and p.stat().st_mtime < stale_before:
            p.unlink(missing_ok=True)
            deleted.append(p)
    return deleted


# --- backup ------------------------------------------------------------------------------------


def backup(out_dir: Path | str | None = None, *, keep: int | None = None, actor_name: str = "") -> BackupFile:
    """Back up the database (and a copy of the key ring) into `out_dir`; optionally keep only the newest `keep`.
    Refused at once while a restore runs; two backups may run at once."""
    try:
        with keys.operation_lock("backup"):
            return _backup(out_dir, keep=keep, actor_name=actor_name)
    except keys.RestoreRunning:
        raise BackupError(
            _("No backup was written: a restore is running on this database. Wait for it to finish, then back up again.")
        ) from None


def _backup(out_dir: Path | str | None, *, keep: int | None, actor_name: str) -> BackupFile:
    directory = Path(out_dir or settings.BACKUP_DIR)
    try:
        # a backup whose key ring cannot be copied could not be read again: refuse first. Read from its source,
        # not this process's memory: the worker running the daily backup may have loaded it before a rotation
        ring = crypto.reloaded_keyring()
    except crypto.KeyRingInvalid as e:
        raise BackupError(_("No backup was written: %(problem)s") % {"problem": e}) from None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
    except OSError as e:
        raise BackupError(
            _("The backup directory %(path)s cannot be used: %(error)s") % {"path": directory, "error": e.strerror or e}
        ) from None
    if connection.vendor not in ("sqlite", "postgresql"):
        raise BackupError(_("Backups are supported for SQLite and PostgreSQL only."))
    target = _new_target(directory, ".sqlite3.gz" if connection.vendor == "sqlite" else ".pgdump")
    if connection.vendor == "sqlite":
        _sqlite_backup(target)
    else:
        _pg_dump(target)
    _private_file(target)
    # the documents after the database: every file the dump refers to was written before its row
    files_path = files_path_for(target)
    try:
        files_count = _archive_files(files_path)
    except BaseException as e:
        target.unlink(missing_ok=True)  # a dump without its documents would pass for a whole backup
        if isinstance(e, OSError):
            raise BackupError(
                _("The documents could not be archived, so no backup was written: %(error)s") % {"error": e}
            ) from None
        raise
    # The key ring travels with the backup so that it can be read again; in production keep the
    # ring in a separate place (PHARMACRM_KEYRING_FILE) and store these copies apart from the dumps.
    # Read again after the dump: a rotation started meanwhile may have written values under a newer key. The
    # keys read before stay too: a rotation --prune finished meanwhile removed the key of the values dumped
    # before it re-encrypted them, and a copy of the ring as it is now could not read them.
    ring_copy = keyring_path_for(target)
    try:
        now = crypto.reloaded_keyring()
        ring = crypto.KeyRing(now.active, {**ring.keys, **now.keys}, now.index_key)
    except crypto.KeyRingInvalid:
        pass  # the ring read before the dump, which covers every key in use then
    fd = os.open(ring_copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(ring.to_json())
    result = BackupFile(
        path=target, keyring_path=ring_copy, size=target.stat().st_size, sha256=_sha256(target),
        files_path=files_path, files_count=files_count,
    )  # fmt: skip
    audit.record(
        A.BACKUP, ("core.backup", "", target.name), actor_name=actor_name,
        file=target.name, bytes=result.size, sha256=result.sha256, vendor=connection.vendor,
        files=files_path.name, files_count=files_count, files_sha256=_sha256(files_path),
    )  # fmt: skip
    if keep is not None:
        result.pruned = apply_retention(keep, directory)
    log.info("backup written to %s (%d bytes)", target, result.size)
    return result


def _sqlite_backup(target: Path) -> None:
    """SQLite's online backup API: a consistent copy while the application keeps running; then gzip."""
    raw = target.with_name(target.name + ".part")
    partial = target.with_name(target.name + ".gz-part")
    connection.ensure_connection()
    try:
        dest = sqlite3.connect(raw)
        try:
            connection.connection.backup(dest)
        finally:
            dest.close()
        with raw.open("rb") as src, gzip.open(partial, "wb", compresslevel=6) as gz:
            shutil.copyfileobj(src, gz, 1 << 20)
        os.replace(partial, target)
    except (OSError, sqlite3.Error) as e:
        # a full disk: one line for the operator (it was a traceback), and no half-written copy left behind
        # to keep the disk full for the next night's attempt
        raise BackupError(
            _("No backup was written: the database could not be copied into %(path)s (%(error)s). Check the free "
              "space there.") % {"path": target.parent, "error": e}
        ) from None  # fmt: skip
    finally:
        # with the journal SQLite leaves beside a copy that failed
        for leftover in (raw, raw.with_name(raw.name + "-journal"), partial):
            leftover.unlink(missing_ok=True)


def _archive_files(target: Path) -> int:
    """Write the document directories into a gzipped tar next to the database backup; how many files.
    The application keeps running: a file deleted or replaced between listing and reading is left out."""
    partial = target.with_name(target.name + ".part")
    count = 0
    try:
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            for name, root in file_roots().items():
                if not root.is_dir():
                    continue
                for path in sorted(root.rglob("*")):
                    relative = path.relative_to(root)
                    if relative.parts[0].startswith(STAGING) or path.is_symlink() or not path.is_file():
                        continue
                    count += _archive_file(tar, path, f"{name}/{relative.as_posix()}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    _private_file(target)
    return count


def _archive_file(tar: tarfile.TarFile, path: Path, arcname: str) -> int:
    """Add one document, as the file it is once opened (size and mode of that file); 0 if it is gone."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return 0  # deleted, or replaced by a rename (an agreement's PDF being written), since it was listed
    with fh:
        tar.addfile(tar.gettarinfo(arcname=arcname, fileobj=fh), fh)
    return 1


def _pg_dump(target: Path) -> None:
    args, env, name = pg_connection()
    partial = target.with_name(target.name + ".part")
    try:
        _run([pg_tool("pg_dump"), "-Fc", "-f", str(partial), *args, name], env)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


# --- restore -----------------------------------------------------------------------------------


def database_has_data() -> bool:
    """Whether the database holds users or customers that a restore would replace."""
    from django.apps import apps

    tables = set(connection.introspection.table_names())
    for label in ("core.User", "customers.Institution", "customers.Person"):
        model = apps.get_model(label)
        if model._meta.db_table in tables and model._default_manager.exists():
            return True
    return False


def restore(
    path: Path | str, *, confirmed: bool = False, with_keyring: bool = False, actor_name: str = ""
) -> RestoreResult:
    """Replace the database's contents with a backup; refuses to overwrite data unless `confirmed`.

    With `with_keyring`, the key-ring copy saved next to the backup becomes the key ring (for a
    restore on a new machine, or after the keys used by the backup were pruned). Refused at once while a
    `rotate-keys`, a backup, a demo load or another restore runs.
    """
    try:
        with keys.operation_lock("restore"):
            return _restore(Path(path), confirmed=confirmed, with_keyring=with_keyring, actor_name=actor_name)
    except keys.RotationRunning:
        raise BackupError(
            _(
                "Nothing was restored: rotate-keys is running on this database. "
                "Wait for it to finish, then restore again."
            )
        ) from None
    except keys.RestoreRunning:
        raise BackupError(
            _("Nothing was restored: another restore is running on this database. Wait for it to finish.")
        ) from None
    except keys.BackupRunning:
        raise BackupError(
            _(
                "Nothing was restored: a backup of this database is being written. "
                "Wait for it to finish, then restore again."
            )
        ) from None
    except keys.DemoRunning:
        raise BackupError(
            _(
                "Nothing was restored: the demo data is being loaded into this database. "
                "Wait for it to finish, then restore again."
            )
        ) from None


def _restore(path: Path, *, confirmed: bool, with_keyring: bool, actor_name: str) -> RestoreResult:
    if not path.is_file():
        raise BackupError(_("The backup file %(path)s does not exist.") % {"path": path})
    is_sqlite_file = path.name.endswith((".sqlite3.gz", ".sqlite3"))
    if connection.vendor == "sqlite" and not is_sqlite_file:
        raise BackupError(_("This is not an SQLite backup; the database is SQLite."))
    if connection.vendor == "postgresql" and not path.name.endswith(".pgdump"):
        raise BackupError(_("This is not a PostgreSQL backup (.pgdump); the database is PostgreSQL."))
    ring = None
    if with_keyring:
        ring_file = keyring_path_for(path)
        if not ring_file.is_file():
            raise BackupError(
                _("No key-ring copy %(path)s was found next to the backup.") % {"path": ring_file}
            )
        try:
            ring = crypto.KeyRing.from_json(ring_file.read_text())
        except crypto.KeyRingInvalid as e:
            raise BackupError(
                _("The key-ring copy %(path)s cannot be used: %(problem)s") % {"path": ring_file, "problem": e}
            ) from None
        try:  # said before the database is replaced, not after it
            keys.ring_destination()
        except keys.KeyRingNotWritable as e:
            raise BackupError(
                _("The key ring comes from %(source)s and cannot be replaced from here.") % {"source": e}
            ) from None
    else:  # the ring in use stays: it may come from a read-only secret
        try:
            crypto.keyring()
        except crypto.KeyRingInvalid as e:
            raise BackupError(
                _("%(problem)s Repair the key ring, or restore with --with-keyring to use the copy saved with the backup.")
                % {"problem": e}
            ) from None
    if not confirmed and database_has_data():
        raise RestoreNeedsConfirmation(
            _("The database holds data that the restore would replace. Confirm with --yes to go ahead.")
        )
    archive = files_path_for(path)
    staged: dict[str, Path] = {}
    # the trail's last entry before the restore, named in the restore's own entry: the entries written since the
    # backup go with the data they recorded, and the restored trail still verifies — without this, nothing in it
    # said that entries up to that one had existed (found by QA)
    replaced = AuditEntry.objects.order_by("-seq").values("seq", "hash").first() if database_has_data() else None
    try:
        # a damaged archive is refused before anything is replaced
        files_count = _unpack_files(archive, staged) if archive.is_file() else None
        if connection.vendor == "sqlite":
            _sqlite_restore(path)
        else:
            _pg_restore(path)
        if files_count is not None:
            _swap_in_files(staged)
    finally:
        for directory in staged.values():
            shutil.rmtree(directory, ignore_errors=True)
    previous = None
    if ring is not None:
        previous = _keep_replaced_ring(ring)
        keys.save_ring(ring)
    behind = _migrations_to_apply()
    try:
        key_problems = keys.problems()
    except DatabaseError:
        if not behind:
            raise
        key_problems = []  # a column this version encrypts is not there yet: `migrate` first
    result = RestoreResult(
        path=path, key_problems=key_problems, files_path=archive if files_count is not None else None,
        files_count=files_count or 0, previous_keyring=previous, migrate_first=behind,
    )  # fmt: skip
    audit.record(
        A.RESTORE, ("core.backup", "", path.name), actor_name=actor_name,
        file=path.name, sha256=_sha256(path), vendor=connection.vendor, key_problems=result.key_problems,
        keyring_restored=ring is not None, previous_keyring=previous.name if previous else None, files=archive.name if files_count is not None else None,
        files_count=files_count,
        replaced_up_to=None if replaced is None else replaced["seq"],
        replaced_hash=None if replaced is None else replaced["hash"],
    )  # fmt: skip
    return result


def _migrations_to_apply() -> bool:
    """Whether the restored database is older than this version of the code (a backup made before an upgrade):
    then `pharmacrm migrate` has to bring it up to date before the web server and the worker start."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def _keep_replaced_ring(ring: crypto.KeyRing) -> Path | None:
    """Copy the key-ring file that `ring` is about to replace next to it (`keyring.json.before-restore-…`, mode
    600), unless it holds the same ring: the data of every earlier backup made with it needs its keys, and a
    restore of the wrong backup must not leave them nowhere."""
    dest = keys.ring_destination()
    try:
        text = dest.read_text()
    except OSError:
        return None  # no ring there yet (a new machine): nothing to keep
    try:
        if crypto.KeyRing.from_json(text) == ring:
            return None
    except crypto.KeyRingInvalid:
        pass  # a damaged ring is kept too: it may still be repaired by hand
    kept = dest.with_name(f"{dest.name}.before-restore-{timezone.localtime():%Y%m%d-%H%M%S}")
    fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return kept


def _unpack_files(archive: Path, staged: dict[str, Path]) -> int:
    """Unpack a files archive, how many files: regular files under the known directories only, nothing
    outside them (no absolute paths, no `..`, no links or devices), the whole archive checked (its CRC).
    Each directory's files go into a staging directory inside it, recorded in `staged`: putting them in
    place is then a rename on their own file system, even when the directory is a mount point or a link to
    another disk. A file keeps its archived permissions (no more than rw-r--r--), a directory those of the
    document directory it goes into."""
    roots = file_roots()
    count, seen = 0, set()
    extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python ≥ 3.11.4 checks again
    try:
        for name, root in roots.items():
            root.mkdir(parents=True, exist_ok=True)
            staged[name] = Path(tempfile.mkdtemp(prefix=f"{STAGING}new-", dir=root))
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if (not member.isfile() or member.name.startswith("/") or ".." in parts or len(parts) < 2
                        or parts[0] not in roots):  # fmt: skip
                    raise BackupError(
                        _("The files archive holds %(name)s, which is not a file of a directory of documents.")
                        % {"name": member.name}
                    )
                seen.add(parts[0])
                into, member.name = staged[parts[0]], PurePosixPath(*parts[1:]).as_posix()
                tar.extract(member, into, set_attrs=False, **extra)
                (into / member.name).chmod((member.mode & 0o644) | 0o600)
                count += 1
            while tar.fileobj.read(1 << 20):  # to the end, where gzip checks the CRC of all that was read
                pass
        for name in LATER_ROOTS - seen:  # an archive from before the directory was backed up: left as it is
            shutil.rmtree(staged.pop(name), ignore_errors=True)
        for name, directory in staged.items():
            _take_on(directory, roots[name].stat())
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        if isinstance(e, OSError) and e.errno is not None:  # the disk is full, a directory is not writable
            raise BackupError(
                _("The documents could not be unpacked (%(error)s); nothing was restored.") % {"error": e}
            ) from None
        raise BackupError(_("The files archive is damaged: %(error)s") % {"error": e}) from None
    return count


def _take_on(directory: Path, like: os.stat_result) -> None:
    """Give the directories unpacked under `directory` the permissions of the document directory `like`,
    and everything its owner when a restore runs as root (the application must still write there)."""
    for path in [directory, *directory.rglob("*")]:
        if path.is_dir():
            path.chmod(stat.S_IMODE(like.st_mode))
        if os.geteuid() == 0:
            os.chown(path, like.st_uid, like.st_gid)


def _swap_in_files(staged: dict[str, Path]) -> None:
    """Replace the contents of each document directory by its restored copy: the documents then match the
    restored database, and files stored after the backup go with the rows. Only renames inside the
    directory: the current contents go to a staging directory beside the new ones, removed at the end (or
    by the next restore, if this one is interrupted)."""
    roots = file_roots()
    for name, new in staged.items():
        root = roots[name]
        old = Path(tempfile.mkdtemp(prefix=f"{STAGING}old-", dir=root))
        try:
            for entry in list(root.iterdir()):
                if not entry.name.startswith(STAGING):
                    entry.rename(old / entry.name)
            for entry in list(new.iterdir()):
                entry.rename(root / entry.name)
        except OSError as e:
            raise BackupError(
                _("The database was restored, but the documents in %(path)s could not be replaced (%(error)s). "
                  "Those from before the restore are in %(old)s. Restore again.")
                % {"path": root, "error": e, "old": old}
            ) from None  # fmt: skip
        for stale in root.glob(f"{STAGING}*"):  # this one's, and any left by an interrupted restore
            shutil.rmtree(stale, ignore_errors=True)


_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # the disk or the user's quota is full, a size limit


def _no_room(error: Exception, where=None) -> BackupError:
    return BackupError(
        _("There is not enough free space in %(path)s to unpack the backup (%(error)s); nothing was restored.")
        % {"path": where or settings.VAR_DIR, "error": error}
    )


def _sqlite_restore(path: Path) -> None:
    """Check the backup, then copy it into the live database with the backup API in one transaction.

    Copying into the open database (rather than swapping the file) keeps the WAL and the other
    processes' connections consistent: they simply see the restored contents afterwards.
    """
    with tempfile.TemporaryDirectory(dir=settings.VAR_DIR, prefix="restore-") as tmp:
        plain = Path(tmp) / "restore.sqlite3"
        if path.name.endswith(".gz"):
            try:
                with gzip.open(path, "rb") as gz, plain.open("wb") as out:
                    shutil.copyfileobj(gz, out, 1 << 20)
            except (OSError, EOFError) as e:
                if isinstance(e, OSError) and e.errno in _NO_ROOM:
                    raise _no_room(e) from None
                raise BackupError(_("The backup file is damaged: %(error)s") % {"error": e}) from None
        else:
            try:
                shutil.copyfile(path, plain)
            except OSError as e:
                if e.errno in _NO_ROOM:
                    raise _no_room(e) from None
                raise
        source = sqlite3.connect(plain)
        try:
            try:
                ok = source.execute("PRAGMA quick_check").fetchone()[0] == "ok"
                tables = {r[0] for r in source.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            except sqlite3.DatabaseError:
                ok, tables = False, set()
            if not ok:
                raise BackupError(_("The backup file is not a readable SQLite database."))
            if "core_auditentry" not in tables or "django_migrations" not in tables:
                raise BackupError(_("The backup file is an SQLite database, but not a PharmaCRM one."))
            connection.ensure_connection()
            try:
                source.backup(connection.connection)
            except sqlite3.OperationalError as e:  # SQLite rolls the copy back: the data stays as it was
                if "full" in str(e).lower():
                    raise _no_room(e, settings.DATABASES["default"]["NAME"]) from None
                raise
        finally:
            source.close()


def _pg_restore(path: Path) -> None:
    args, env, name = pg_connection()
    tool = pg_tool("pg_restore")
    _run([tool, "--list", str(path)], env)  # refuses a file that is not a pg_dump archive
    connections.close_all()  # our own sessions would hold locks on the tables being dropped
    _run(
        [tool, "--clean", "--if-exists", "--no-owner", "--single-transaction", "-d", name, *args, str(path)],
        env,
    )
    connections.close_all()


def scheduled_backup() -> BackupFile:
    """The daily backup: into BACKUP_DIR, keeping the newest BACKUP_KEEP_DAILY."""
    return backup(keep=settings.BACKUP_KEEP_DAILY, actor_name="scheduler")
