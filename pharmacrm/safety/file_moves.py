"""Case files stored before safety 0010 (session 32) kept the uploader's file name on disk —
var/files/safety/2026/11/王小明病历.pdf: the patient's name in directory listings and backups. `pharmacrm safety
rename-files` (run once by `migrate`: safety 0011) gives each a random name, as every newer file has
(models.case_file_path).

Nothing is lost if the run stops anywhere (a crash, Ctrl-C, a full disk): each file is first copied to its new name
and the copy checked against the original, then the row is changed (with its audit entry, in one transaction), and
only once that is committed is the old file removed. The new name is derived from the row and the old name with a
key (HMAC), so a run stopped after the copy finds its copy again (and finishes or replaces a half-written one)
instead of leaving another behind; a run stopped after the commit left the old file, which the next run removes —
it finds it through the audit entry. Running it again changes nothing."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from django.core.files import File
from django.db import transaction
from django.utils.crypto import salted_hmac

from pharmacrm.core.models import AuditEntry

from .models import CaseFile

# a name given by models.case_file_path (and by this module): the year and month, 32 hexadecimal digits
RANDOM_NAME = re.compile(r"safety/[0-9]{4}/[0-9]{2}/[0-9a-f]{32}")
RANDOM_NAME_SQL = r"^safety/[0-9]{4}/[0-9]{2}/[0-9a-f]{32}$"  # the same, for a `__regex` lookup
PURPOSE = "random name on disk"  # the audit entry's marker, in no language (the audit trail records data)
CHUNK = 500


@dataclass
class Moved:
    moved: int = 0
    missing: int = 0
    removed: int = 0


def random_name(case_file: CaseFile, old: str) -> str:
    """The file's new name: under the month it was uploaded in, 32 hexadecimal digits nobody can tell the old name
    from (an HMAC with the deployment's secret key), the same each time for the same row and old name."""
    token = salted_hmac("pharmacrm.safety.case-file-name", f"{case_file.pk}:{old}", algorithm="sha256").hexdigest()
    return f"safety/{case_file.uploaded_at:%Y/%m}/{token[:32]}"


def _digest(storage, name: str) -> tuple[int, str]:
    sha = hashlib.sha256()
    size = 0
    with storage.open(name, "rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()


def _copy(storage, old: str, new: str) -> str | None:
    """Copy `old` to `new` (reusing a complete copy a stopped run left there); the name it is stored under once it
    reads back the same as the original, None when it does not."""
    original = _digest(storage, old)
    if storage.exists(new):
        if _digest(storage, new) == original:
            return new
        storage.delete(new)  # a copy the earlier run did not finish: the name is ours (keyed on this row)
    with storage.open(old, "rb") as fh:
        saved = storage.save(new, File(fh, name=new))
    if _digest(storage, saved) != original:
        storage.delete(saved)
        return None
    return saved


def _old_names_left(storage) -> int:
    """Remove the old files a stopped run had moved (row changed and audited) but not removed yet."""
    removed = 0
    entries = AuditEntry.objects.filter(object_type="safety.casefile", action=AuditEntry.Action.UPDATE,
                                        extra__purpose=PURPOSE).values_list("changes", flat=True)  # fmt: skip
    for changes in entries.iterator(chunk_size=CHUNK):
        old = (changes or {}).get("file", [None])[0]
        if not old or RANDOM_NAME.fullmatch(old) or not storage.exists(old):
            continue
        removed += _remove_if_unused(storage, old)
    return removed


def _remove_if_unused(storage, old: str) -> int:
    if CaseFile.objects.filter(file=old).exists():  # another row's file too: never removed from under a row
        return 0
    storage.delete(old)
    return 1


def move_to_random_names(user) -> Moved:
    """Give every case file still stored under its uploader's name a random one (see the module's docstring).
    `user`: who the audit trail names (a services.SystemActor for the command). Files missing from the storage
    are left as they are and counted."""
    from . import services

    result = Moved()
    storage = CaseFile._meta.get_field("file").storage
    result.removed += _old_names_left(storage)
    last = 0
    while True:
        rows = list(CaseFile.objects.filter(pk__gt=last).exclude(file__regex=RANDOM_NAME_SQL).order_by("pk")
                    .select_related("case")[:CHUNK])  # fmt: skip
        if not rows:
            return result
        last = rows[-1].pk
        for row in rows:
            old = row.file.name
            if not old or not storage.exists(old):
                result.missing += 1
                continue
            new = _copy(storage, old, random_name(row, old))
            if new is None:
                result.missing += 1  # it did not read back the same: the row keeps its file
                continue
            with transaction.atomic():
                changed = CaseFile.objects.select_for_update().filter(pk=row.pk, file=old).update(file=new)
                if changed:
                    services._record(AuditEntry.Action.UPDATE, row, user, changes={"file": [old, new]},
                                     case=row.case.number, purpose=PURPOSE)  # fmt: skip
            if not changed:  # deleted or changed meanwhile: the copy is nobody's
                storage.delete(new)
                continue
            # removed once the new name is committed (at once outside a transaction); a run stopped before that
            # leaves it for the next run, which finds it through the audit entry
            transaction.on_commit(lambda old=old: _remove_if_unused(storage, old))
            result.moved += 1
