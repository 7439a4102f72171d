"""Files on tickets: checked by their content (not by what the browser or the mail client claims), limited
in size, stored under a random name in default storage (MEDIA_ROOT = var/files, outside the web root) and
served only through an access check (views_conversation.download, api_conversation).

A file is accepted when its content is one of settings.ATTACHMENT_TYPES *and* its extension is one the
setting lists for that type: a PDF named "x.png" is refused, and so is an executable named "x.pdf"."""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import io
import logging
import os
import re
import unicodedata
import zipfile

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from pharmacrm.core import access, audit
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap

from . import services
from .choices import EventKind
from .models import Attachment, Ticket

A = AuditEntry.Action
log = logging.getLogger(__name__)
NAME_MAX = 200

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
TEXT = "text/plain"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# the main part an Office Open XML package of each kind declares in [Content_Types].xml
_OOXML_MAIN = {
    DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
}
_OOXML_MAIN_MACRO = {  # macro-enabled packages (.docm/.xlsm) are never accepted under a .docx/.xlsx name
    "application/vnd.ms-word.document.macroEnabled.main+xml",
    "application/vnd.ms-excel.sheet.macroEnabled.main+xml",
}


def clean_name(name: str) -> str:
    """A display name safe to show and to put in a Content-Disposition header: no directories, no control
    or format characters, no leading dots, at most NAME_MAX characters (the extension kept)."""
    name = unicodedata.normalize("NFC", str(name or ""))
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(
        c for c in name if unicodedata.category(c)[0] != "C"
    )  # Cc, Cf (bidi overrides), Cs, Co, Cn
    name = re.sub(r'["<>:|?*]', "_", name)
    name = re.sub(r"\s+", " ", name).strip().lstrip(".").strip()
    if not name:
        name = "file"
    if len(name) > NAME_MAX:
        stem, ext = os.path.splitext(name)
        ext = ext[:20]
        name = stem[: NAME_MAX - len(ext)] + ext
    return name


def _extension(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _is_text(data: bytes) -> bool:
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):  # Windows Notepad's "Unicode": UTF-16 with its BOM
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            return False
        return all(c >= " " or c in "\t\n\r\f" for c in text)  # no binary behind a byte-order mark
    if b"\x00" in data:
        return False
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return True
    return False


def _ooxml_kind(data: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            try:
                info = z.getinfo("[Content_Types].xml")
            except KeyError:
                return None
            if info.file_size > 1_000_000:
                return None
            types = z.read(info).decode("utf-8", "replace")
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError):
        return None
    if any(m in types for m in _OOXML_MAIN_MACRO):
        return None
    for kind, main in _OOXML_MAIN.items():
        if main in types:
            return kind
    return None


def sniff(data: bytes) -> str | None:
    """The content type the bytes really are (of those this module knows), or None."""
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"PK\x03\x04"):
        return _ooxml_kind(data)
    if _is_text(data):
        return TEXT
    return None


def _refuse(name: str, reason: str) -> ValidationError:
    return ValidationError({"files": [_("“%(name)s”: %(reason)s") % {"name": name, "reason": reason}]})


def _too_large() -> str:
    # the limit alone: "20.0 MB; at most 20.0 MB" read as no excess for a file a few bytes over it
    return _("the file is larger than the limit of %(max)s.") % {"max": filesizeformat(settings.ATTACHMENT_MAX_BYTES)}


def _allowed_extensions() -> str:
    return ", ".join(sorted({e for exts in settings.ATTACHMENT_TYPES.values() for e in exts}))


def check(name: str, data: bytes) -> tuple[str, str]:
    """(clean display name, detected content type) of an acceptable file; ValidationError otherwise."""
    display = clean_name(name)
    size = len(data)
    if size == 0:
        raise _refuse(display, _("the file is empty."))
    if size > settings.ATTACHMENT_MAX_BYTES:
        raise _refuse(display, _too_large())
    kind = sniff(data)
    allowed = {e for exts in settings.ATTACHMENT_TYPES.values() for e in exts}
    # a .csv (text inside) is a kind not accepted, not a file whose content belies its name
    if kind is None or kind not in settings.ATTACHMENT_TYPES or _extension(display) not in allowed:
        raise _refuse(
            display,
            _("this kind of file is not accepted (allowed: %(types)s).") % {"types": _allowed_extensions()},
        )
    if _extension(display) not in settings.ATTACHMENT_TYPES[kind]:
        raise _refuse(display, _("the content does not match the file name's extension (the file is %(ext)s).")
                      % {"ext": " / ".join(settings.ATTACHMENT_TYPES[kind])})  # fmt: skip
    return display, kind


def _read(f) -> bytes:
    """The whole content of an uploaded file (checked against the size limit before reading it all)."""
    size = getattr(f, "size", None)
    name = clean_name(getattr(f, "name", ""))
    if size is not None and size > settings.ATTACHMENT_MAX_BYTES:
        raise _refuse(name, _too_large())
    if hasattr(f, "seek"):
        f.seek(0)
    data = f.read(settings.ATTACHMENT_MAX_BYTES + 1)
    if hasattr(f, "seek"):
        f.seek(0)
    return data


def validate_upload(f) -> tuple[str, str]:
    """Refuse (ValidationError on "files", naming the file) an upload of the wrong type or size; returns
    the clean display name and the detected content type."""
    return check(getattr(f, "name", ""), _read(f))


def store_upload(user, ticket: Ticket, f, *, message=None) -> Attachment:
    """Check and keep an uploaded file (Django UploadedFile) on a ticket, optionally on one message."""
    services.require(user, Cap.HANDLE_TICKETS)
    data = _read(f)
    return _store(ticket, getattr(f, "name", ""), data, message=message, user=user)


def store_bytes(
    ticket: Ticket, name: str, content_type: str, data: bytes, *, message=None, user=None
) -> Attachment:
    """Check and keep a file that arrived as bytes (an e-mail attachment, the web form). `content_type` is
    what the sender claimed; the stored type is what the content is."""
    return _store(ticket, name, data, message=message, user=user or services.SYSTEM)


def _store(ticket: Ticket, name: str, data: bytes, *, message, user) -> Attachment:
    display, kind = check(name, data)
    now = timezone.now()
    attachment = Attachment(
        ticket=ticket, message=message, name=display, content_type=kind, size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), created_at=now,
        uploaded_by=user if getattr(user, "is_authenticated", False) else None,
    )  # fmt: skip
    # the name on disk comes from Attachment.file's upload_to (random); never from the uploader
    attachment.file.save(display, ContentFile(data), save=False)
    try:
        with transaction.atomic():
            attachment.save(force_insert=True)
            services._event(
                ticket, EventKind.ATTACHMENT, user, at=now,
                data={"attachment": attachment.pk, "name": display, "message": message.pk if message else None},
            )  # fmt: skip
            audit.record(A.CREATE, attachment, user=user, changes={
                "ticket": [None, ticket.number], "name": [None, display], "size": [None, len(data)],
                "sha256": [None, attachment.sha256],
            })  # fmt: skip
    except Exception:
        attachment.file.delete(save=False)
        raise
    return attachment


def open_for_download(attachment: Attachment):
    """The stored file, opened for reading (the caller has checked access to the ticket)."""
    return attachment.file.open("rb")


def may_download(user) -> bool:
    """Who may open a ticket's files: those who handle tickets, and those who may see or reveal personal data.
    Not the marketing analyst, who sees tickets with their personal data masked: a prescription or a lab report
    names the patient."""
    return any(access.can(user, cap) for cap in (Cap.HANDLE_TICKETS, Cap.VIEW_PERSONAL_DATA, Cap.REVEAL_PERSONAL_DATA))


def download_response(user, attachment: Attachment):
    """The attachment as a download (the caller has checked access to the ticket; FileNotFoundError when the
    storage lost it), audited as a read of personal data: a prescription, a lab report or a photo of the
    package may show a patient, as a safety case's files do. PermissionDenied for who may not (may_download)."""
    from django.core.exceptions import PermissionDenied

    if not may_download(user):
        raise PermissionDenied(_("Your role sees tickets with personal data masked: their files are not for it."))
    return file_response(user, attachment)


def file_response(user, attachment: Attachment, **extra):
    """The file as a download, audited (`user` None: the customer, through their status link)."""
    from urllib.parse import quote

    from django.http import FileResponse

    handle = open_for_download(attachment)
    audit.record(AuditEntry.Action.READ_PERSONAL, attachment.ticket, user=user, fields=["attachments"],
                 file=attachment.name, attachment=attachment.pk, **extra)  # fmt: skip
    response = FileResponse(handle, content_type=attachment.content_type)
    response["Content-Length"] = str(attachment.size)
    ascii_name = attachment.name.encode("ascii", "ignore").decode().replace('"', "").replace("\\", "") or "file"
    response["Content-Disposition"] = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(attachment.name)}"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response


ORPHAN_AGE = dt.timedelta(days=1)


def sweep_unreferenced(model, folder: str, now: dt.datetime | None = None) -> int:
    """The worker: delete the files under `folder` of the file storage that no row of `model` (its `file`) names,
    once a day old. A file is stored before the transaction that records it: a process killed in between, or a
    transaction that failed after its files were kept, left it behind. A younger file may be an upload still under
    way. One audit entry per sweep that deleted something, with the count and the names. Returns how many."""
    from pathlib import Path

    from django.core.files.storage import default_storage

    cutoff = ((now or timezone.now()) - ORPHAN_AGE).timestamp()
    root = Path(default_storage.path(""))
    old = []
    for path in (root / folder).rglob("*"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                old.append(path.relative_to(root).as_posix())
        except FileNotFoundError:  # deleted meanwhile
            continue
    if not old:
        return 0
    # read after the listing: a file recorded meanwhile is named here
    named = set(model.objects.values_list("file", flat=True))
    gone = sorted(name for name in old if name not in named)
    for name in gone:
        default_storage.delete(name)
    if gone:
        log.warning("%s: %d file(s) nothing names deleted: %s", folder, len(gone), ", ".join(gone[:100]))
        audit.record(A.DELETE, (model._meta.label_lower, "", str(len(gone))), actor_name="worker",
                     count=len(gone), files=gone[:1000])  # fmt: skip
    return len(gone)
