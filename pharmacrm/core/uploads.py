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


def limited_form(request, serializer_class, field: str = "signed_copy"):
    """An API request's form with its uploaded scan (keyaccounts.services.SIGNED_COPY_MAX at most, as keep_scan),
    valid or refused (400): a file too large is refused under `field` before the body is read when the request
    announces its size, and as soon as the body passes the limit otherwise — nothing reads a body of any size first.
    For every API that takes a kept scan (the signings and the amendments of both kinds of agreement)."""
    from rest_framework import serializers

    from pharmacrm.customers.views_import import MULTIPART_OVERHEAD, SizeLimitHandler, content_length
    from pharmacrm.keyaccounts import services as ka

    too_large = {field: [_("The file is too large; the limit is 20 MB.")]}
    if content_length(request) > ka.SIGNED_COPY_MAX + MULTIPART_OVERHEAD:
        raise serializers.ValidationError(too_large)  # refused before the body is read
    limiter = SizeLimitHandler(request, limit=ka.SIGNED_COPY_MAX)
    request.upload_handlers.insert(0, limiter)
    form = serializer_class(data=request.data)
    if limiter.too_large:
        raise serializers.ValidationError(too_large)
    form.is_valid(raise_exception=True)
    return form
