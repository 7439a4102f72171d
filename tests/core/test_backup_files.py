"""A backup carries the documents the database refers to — ticket attachments and safety case files
(MEDIA_ROOT) and signed agreements — and a restore brings back exactly those, or refuses a damaged or
tampered archive before anything is replaced."""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from pharmacrm.core import backup
from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services
from pharmacrm.customers.models import Institution

pytestmark = pytest.mark.django_db(transaction=True)

ATTACHMENT = "attachments/2026/11/3f9a-检验报告.pdf"
PHOTO = "safety/2026/11/batch-photo.jpg"
SIGNED = "AG-2026-0001-5d1c.pdf"
COOPERATION = "HZ-2026-0003-signed-9b2e.pdf"  # a cooperation agreement's signed copy (var/cooperation)
LICENCE = "京AA1234567-0f3c.png"  # a customer's licence's scanned copy (var/licences)


@pytest.fixture(autouse=True)
def _english_output():
    with translation.override("en"):
        yield


@pytest.fixture
def documents(tmp_path, settings):
    """Private document directories with a ticket attachment, a safety photo and a signed agreement."""
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.VAR_DIR = tmp_path / "var"
    settings.MEDIA_ROOT = tmp_path / "var" / "files"
    files = {
        settings.MEDIA_ROOT / ATTACHMENT: b"%PDF-1.7 report",
        settings.MEDIA_ROOT / PHOTO: b"\xff\xd8\xff photo",
        settings.VAR_DIR / "agreements" / SIGNED: b"%PDF-1.4 signed agreement",
        settings.VAR_DIR / "cooperation" / COOPERATION: b"%PDF-1.4 signed cooperation agreement",
        settings.VAR_DIR / "licences" / LICENCE: b"\x89PNG licence scan",
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def _present(settings) -> dict[str, bytes]:
    out = {}
    for root in (settings.MEDIA_ROOT, *(settings.VAR_DIR / d for d in ("agreements", "cooperation", "licences"))):
        for path in root.rglob("*"):
            if path.is_file():
                out[str(path.relative_to(settings.VAR_DIR))] = path.read_bytes()
    return out


def test_a_restore_brings_back_the_documents_of_the_backup_and_only_those(xiehe, admin_user, documents, settings,
                                                                         capsys):  # fmt: skip
    before = _present(settings)
    call_command("backup")
    made = backup.list_backups(settings.BACKUP_DIR)[0]
    assert "5 files" in capsys.readouterr().out
    entry = AuditEntry.objects.get(action=AuditEntry.Action.BACKUP)
    assert entry.extra["files"] == backup.files_path_for(made).name and entry.extra["files_count"] == 5

    # after the backup: a document overwritten, one deleted, one added (with a customer created meanwhile)
    (settings.MEDIA_ROOT / ATTACHMENT).write_bytes(b"changed")
    (settings.VAR_DIR / "agreements" / SIGNED).unlink()
    (settings.VAR_DIR / "cooperation" / COOPERATION).unlink()  # a cooperation agreement's signed copy too
    (settings.VAR_DIR / "licences" / LICENCE).write_bytes(b"\x89PNG a later scan")  # and a licence's scan
    (settings.MEDIA_ROOT / "attachments/2026/12/new.png").parent.mkdir(parents=True)
    (settings.MEDIA_ROOT / "attachments/2026/12/new.png").write_bytes(b"new")
    services.create_institution(admin_user, {"name": "备份之后新建的诊所", "kind": "clinic"})

    call_command("restore", str(made), "--yes")

    assert "Documents restored from" in capsys.readouterr().out
    assert _present(settings) == before  # the same files, byte for byte, and nothing else
    assert not Institution.objects.filter(name="备份之后新建的诊所").exists()
    last = AuditEntry.objects.order_by("-seq").first()
    assert last.action == AuditEntry.Action.RESTORE and last.extra["files_count"] == 5


def test_a_backup_made_before_cooperation_files_were_kept_leaves_them_as_they_are(xiehe, documents, settings):
    """Backups made before session 46 hold no cooperation agreements' files: restoring one must not empty
    var/cooperation of the signed copies its rows name — before, such a restore would have, once the directory
    became one of the backed-up ones."""
    made = backup.backup().path
    with tarfile.open(backup.files_path_for(made)) as tar:
        kept = {m.name: tar.extractfile(m).read() for m in tar if not m.name.startswith(("cooperation/", "licences/"))}
    _replace_archive(made, kept)  # as an older backup was: files/ and agreements/ only
    (settings.VAR_DIR / "agreements" / SIGNED).unlink()

    call_command("restore", str(made), "--yes")

    assert (settings.VAR_DIR / "cooperation" / COOPERATION).read_bytes() == b"%PDF-1.4 signed cooperation agreement"
    assert (settings.VAR_DIR / "licences" / LICENCE).read_bytes() == b"\x89PNG licence scan"  # neither (session 47)
    assert (settings.VAR_DIR / "agreements" / SIGNED).read_bytes() == b"%PDF-1.4 signed agreement"  # restored


def _replace_archive(made, members: dict[str, bytes]) -> None:
    with tarfile.open(backup.files_path_for(made), "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


# outside the directories of documents, or a file in place of one of them (an entry named "files")
@pytest.mark.parametrize("bad", ["../../escaped.txt", "/etc/cron.d/x", "mail/other.eml", "files", "agreements"])
def test_an_archive_reaching_outside_the_documents_is_refused_and_nothing_changes(xiehe, admin_user, documents,
                                                                                  settings, bad):  # fmt: skip
    made = backup.backup().path
    _replace_archive(made, {"files/ok.txt": b"ok", bad: b"evil"})
    services.update_institution(admin_user, xiehe, {"tier": "vip"})
    before = _present(settings)
    with pytest.raises(CommandError, match="not a file of a directory of documents"):
        call_command("restore", str(made), "--yes")
    assert Institution.objects.get(pk=xiehe.pk).tier == "vip"  # the database was not restored either
    assert _present(settings) == before
    assert not (settings.VAR_DIR.parent / "escaped.txt").exists()


def test_a_damaged_archive_is_refused_before_anything_is_replaced(xiehe, admin_user, documents, settings):
    made = backup.backup().path
    archive = backup.files_path_for(made)
    archive.write_bytes(archive.read_bytes()[:40])
    services.update_institution(admin_user, xiehe, {"tier": "vip"})
    with pytest.raises(CommandError, match="files archive is damaged"):
        call_command("restore", str(made), "--yes")
    assert Institution.objects.get(pk=xiehe.pk).tier == "vip"
    assert (settings.VAR_DIR / "agreements" / SIGNED).exists()


def test_a_backup_made_before_documents_were_archived_restores_the_database_and_leaves_them(
    xiehe, admin_user, documents, settings, capsys
):
    made = backup.backup().path
    backup.files_path_for(made).unlink()
    (settings.MEDIA_ROOT / "attachments/later.txt").write_bytes(b"kept")
    services.update_institution(admin_user, xiehe, {"tier": "vip"})
    call_command("restore", str(made), "--yes")
    assert Institution.objects.get(pk=xiehe.pk).tier == "new"
    assert "no archive of documents" in capsys.readouterr().out
    assert (settings.MEDIA_ROOT / "attachments/later.txt").read_bytes() == b"kept"


def test_a_document_deleted_while_the_backup_runs_is_left_out(documents, settings, monkeypatch):
    """Listed, then gone before it is read (deleted, or an agreement's PDF renamed into place): the backup
    goes on without it instead of failing and leaving a dump without documents."""
    gone = settings.VAR_DIR / "agreements" / SIGNED
    is_file = Path.is_file

    def deleted_once_seen(path):
        found = is_file(path)
        if path == gone and found:
            path.unlink()
        return found

    monkeypatch.setattr(Path, "is_file", deleted_once_seen)
    made = backup.backup()
    assert made.files_count == 4
    with tarfile.open(made.files_path) as tar:
        assert sorted(tar.getnames()) == [f"cooperation/{COOPERATION}", f"files/{ATTACHMENT}", f"files/{PHOTO}",
                                         f"licences/{LICENCE}"]  # fmt: skip


def test_a_backup_whose_documents_cannot_be_archived_leaves_no_dump_behind(documents, settings, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "addfile", disk_full)
    with pytest.raises(CommandError, match="documents could not be archived, so no backup was written"):
        call_command("backup")
    assert list(settings.BACKUP_DIR.iterdir()) == []  # no dump that would pass for a whole backup
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.BACKUP).exists()


@pytest.mark.parametrize("photo", [os.urandom(200_000), b"\xff\xd8\xff photo " * 20_000], ids=["stored", "deflated"])
def test_a_damaged_archive_is_found_by_its_checksum_before_anything_is_replaced(xiehe, admin_user, documents,
                                                                               settings, photo):  # fmt: skip
    """A flipped bit inside a document (stored as it is, as a photo is, or compressed) is caught by gzip's CRC."""
    (settings.MEDIA_ROOT / PHOTO).write_bytes(photo)
    made = backup.backup().path
    archive = backup.files_path_for(made)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    services.update_institution(admin_user, xiehe, {"tier": "vip"})
    before = _present(settings)
    with pytest.raises(CommandError, match="files archive is damaged"):
        call_command("restore", str(made), "--yes")
    assert Institution.objects.get(pk=xiehe.pk).tier == "vip"
    assert _present(settings) == before


def test_a_full_disk_while_unpacking_is_said_so_and_nothing_changes(xiehe, admin_user, documents, settings,
                                                                   monkeypatch):  # fmt: skip
    made = backup.backup().path
    services.update_institution(admin_user, xiehe, {"tier": "vip"})
    before = _present(settings)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "extract", disk_full)
    with pytest.raises(CommandError, match=r"documents could not be unpacked .*No space left on device.*nothing "
                                           r"was restored") as refused:  # fmt: skip
        call_command("restore", str(made), "--yes")
    assert "damaged" not in str(refused.value)
    assert Institution.objects.get(pk=xiehe.pk).tier == "vip"
    assert _present(settings) == before
    assert not [p for p in settings.MEDIA_ROOT.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_restored_documents_keep_their_private_permissions(xiehe, documents, settings):
    for path in documents:
        path.chmod(0o600)
    for directory in (settings.MEDIA_ROOT, *[p for p in settings.MEDIA_ROOT.rglob("*") if p.is_dir()]):
        directory.chmod(0o700)
    made = backup.backup().path
    call_command("restore", str(made), "--yes")
    for path in documents:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for directory in (settings.MEDIA_ROOT, *[p for p in settings.MEDIA_ROOT.rglob("*") if p.is_dir()]):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files to another user")
def test_documents_restored_by_root_belong_to_the_owner_of_their_directory(xiehe, documents, settings):
    made = backup.backup().path
    for path in (settings.MEDIA_ROOT, *settings.MEDIA_ROOT.rglob("*")):
        os.chown(path, 65534, 65534)
    call_command("restore", str(made), "--yes")
    assert {(p.stat().st_uid, p.stat().st_gid) for p in settings.MEDIA_ROOT.rglob("*")} == {(65534, 65534)}


def test_a_document_directory_on_another_disk_is_restored_there(xiehe, documents, settings, tmp_path):
    """MEDIA_ROOT is a link to a directory elsewhere (or a mount point): the documents are replaced in it, the
    link stays, and nothing is copied through VAR_DIR's disk."""
    elsewhere = tmp_path / "disk2" / "files"
    elsewhere.parent.mkdir()
    settings.MEDIA_ROOT.rename(elsewhere)
    settings.MEDIA_ROOT.symlink_to(elsewhere)
    before = _present(settings)
    made = backup.backup().path
    (settings.MEDIA_ROOT / ATTACHMENT).write_bytes(b"changed")
    (settings.MEDIA_ROOT / "later.txt").write_bytes(b"after the backup")
    call_command("restore", str(made), "--yes")
    assert settings.MEDIA_ROOT.is_symlink() and settings.MEDIA_ROOT.resolve() == elsewhere
    assert _present(settings) == before
    assert (elsewhere / ATTACHMENT).read_bytes() == b"%PDF-1.7 report"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["attachments", "safety"]


def test_documents_that_cannot_be_put_in_place_are_reported_with_where_the_old_ones_are(xiehe, documents, settings,
                                                                                         monkeypatch):  # fmt: skip
    made = backup.backup().path
    (settings.MEDIA_ROOT / "later.txt").write_bytes(b"after the backup")
    rename = Path.rename

    def refused_into_place(path, target):
        if path.parent.name.startswith(".restore-new-"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return rename(path, target)

    monkeypatch.setattr(Path, "rename", refused_into_place)
    with pytest.raises(CommandError, match="database was restored, but the documents in") as failed:
        call_command("restore", str(made), "--yes")
    old = Path(str(failed.value).split("Those from before the restore are in ")[1].split(". Restore again")[0])
    assert (old / "later.txt").read_bytes() == b"after the backup"  # nothing lost: put back by hand or restore again
    monkeypatch.setattr(Path, "rename", rename)
    call_command("restore", str(made), "--yes")
    assert sorted(p.name for p in settings.MEDIA_ROOT.iterdir()) == ["attachments", "safety"]  # the leftovers went
