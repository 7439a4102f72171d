"""A backup carries the documents the database refers to — ticket attachments and safety case files
(MEDIA_ROOT) and signed agreements — and a restore brings back exactly those, or refuses a damaged or
tampered archive before anything is replaced."""

from __future__ import annotations

import io
import tarfile

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
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def _present(settings) -> dict[str, bytes]:
    out = {}
    for root in (settings.MEDIA_ROOT, settings.VAR_DIR / "agreements"):
        for path in root.rglob("*"):
            if path.is_file():
                out[str(path.relative_to(settings.VAR_DIR))] = path.read_bytes()
    return out


def test_a_restore_brings_back_the_documents_of_the_backup_and_only_those(xiehe, admin_user, documents, settings,
                                                                         capsys):  # fmt: skip
    before = _present(settings)
    call_command("backup")
    made = backup.list_backups(settings.BACKUP_DIR)[0]
    assert "3 files" in capsys.readouterr().out
    entry = AuditEntry.objects.get(action=AuditEntry.Action.BACKUP)
    assert entry.extra["files"] == backup.files_path_for(made).name and entry.extra["files_count"] == 3

    # after the backup: a document overwritten, one deleted, one added (with a customer created meanwhile)
    (settings.MEDIA_ROOT / ATTACHMENT).write_bytes(b"changed")
    (settings.VAR_DIR / "agreements" / SIGNED).unlink()
    (settings.MEDIA_ROOT / "attachments/2026/12/new.png").parent.mkdir(parents=True)
    (settings.MEDIA_ROOT / "attachments/2026/12/new.png").write_bytes(b"new")
    services.create_institution(admin_user, {"name": "备份之后新建的诊所", "kind": "clinic"})

    call_command("restore", str(made), "--yes")

    assert "Documents restored from" in capsys.readouterr().out
    assert _present(settings) == before  # the same files, byte for byte, and nothing else
    assert not Institution.objects.filter(name="备份之后新建的诊所").exists()
    last = AuditEntry.objects.order_by("-seq").first()
    assert last.action == AuditEntry.Action.RESTORE and last.extra["files_count"] == 3


def _replace_archive(made, members: dict[str, bytes]) -> None:
    with tarfile.open(backup.files_path_for(made), "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("bad", ["../../escaped.txt", "/etc/cron.d/x", "mail/other.eml"])
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
