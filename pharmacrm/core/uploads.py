"""Scanned documents uploaded to be kept (a signed copy, an acceptance record, a customer's licence): one check and one
way of writing them, shared by the apps that keep such files beside their rows (docs/cooperation.md,
docs/licences.md)."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _


def keep_scan(field: str, upload, folder: Path, stem: str, *, wrong_type: str = "") -> tuple[Path, str, str]:
    """Check and keep an uploaded PDF, PNG or JPEG (the key-account signed copy's rules: at most 20 MB, the type read
    from the content, the file opened) as `folder/<stem>-<uuid hex>.<ext>`; (path, download name, SHA-256). An error
    names `field` (`wrong_type`: the message for a file of another type, if the caller's says more), and nothing is
    left written. The caller writes it before its row is saved and deletes it when its transaction fails."""
    from pharmacrm.keyaccounts import services as ka

    if upload.size is not None and upload.size > ka.SIGNED_COPY_MAX:
        raise ValidationError({field: [_("The file is too large; the limit is 20 MB.")]})
    head = upload.read(8)
    upload.seek(0)
    suffix = next((s for magic, s in ka.SIGNED_COPY_TYPES.items() if head.startswith(magic)), None)
    if suffix is None or not ka._opens(upload, suffix):
        raise ValidationError({field: [wrong_type or _("Upload a PDF, PNG or JPEG file.")]})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-{uuid.uuid4().hex}{suffix}"
    digest, size = hashlib.sha256(), 0
    try:
        with open(path, "wb") as out:
            for block in upload.chunks():
                size += len(block)
                if size > ka.SIGNED_COPY_MAX:
                    raise ValidationError({field: [_("The file is too large; the limit is 20 MB.")]})
                digest.update(block)
                out.write(block)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, ka.signed_copy_name(upload.name or path.name, suffix), digest.hexdigest()
