"""Ticket attachments: the type is decided by the content (magic bytes, the Office package's content
types, text that decodes) and must agree with the extension; size limit; a clean display name; a random
name on disk outside the web root; history event and audit entry."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from pharmacrm.core.models import AuditEntry
from pharmacrm.servicedesk import attachments, services
from pharmacrm.servicedesk.models import Attachment, TicketEvent

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32


def ooxml(main: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", f'<Types><Override PartName="/x" ContentType="{main}"/></Types>')
        z.writestr("word/document.xml", "<w/>")
    return buf.getvalue()


DOCX = ooxml("application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml")
XLSX = ooxml("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml")


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "files"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "files")},
        },
    }


@pytest.fixture
def ticket(users, xiehe):
    return services.create_ticket(users["agent"], {"subject": "说明书", "channel": "email", "category": "drug_info",
                                                   "institution": xiehe})  # fmt: skip


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("说明书.pdf", PDF, "application/pdf"),
        ("photo.PNG", PNG, "image/png"),
        ("box.jpeg", JPEG, "image/jpeg"),
        ("notes.txt", "批号 2026031 的包装破损".encode("gb18030"), "text/plain"),
        ("notes.txt", "UTF-8 文本".encode(), "text/plain"),
        # Windows Notepad's "Unicode": UTF-16 with its byte-order mark, little- or big-endian
        ("记事本.txt", b"\xff\xfe" + "批号 2026031 的包装破损\r\n".encode("utf-16-le"), "text/plain"),
        ("记事本.txt", b"\xfe\xff" + "批号 2026031 的包装破损".encode("utf-16-be"), "text/plain"),
        ("letter.docx", DOCX, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("sheet.xlsx", XLSX, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ],
)
def test_accepted_types_are_recognised_by_content(name, data, kind):
    assert attachments.check(name, data)[1] == kind


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("invoice.pdf", b"MZ\x90\x00\x03\x00\x00\x00"),  # a Windows program named .pdf
        ("photo.png", PDF),  # a PDF named .png
        ("letter.docx", XLSX),  # a spreadsheet named .docx
        ("archive.docx", ooxml("application/zip")),  # a plain zip
        ("macro.docx", ooxml("application/vnd.ms-word.document.macroEnabled.main+xml")),
        ("broken.docx", b"PK\x03\x04garbage"),
        ("page.html", b"<html><script>alert(1)</script></html>"),  # text, but not an allowed extension
        ("nul.txt", b"abc\x00def"),
        ("nul16.txt", b"\xff\xfe" + "abc\x00\x01def".encode("utf-16-le")),  # control characters: no text
        ("odd16.txt", b"\xff\xfea\x00b"),  # cut in the middle of a character
        ("empty.txt", b""),
    ],
)
def test_wrong_types_are_refused_naming_the_file(name, data):
    with pytest.raises(ValidationError) as exc:
        attachments.check(name, data)
    assert name in exc.value.message_dict["files"][0]


def test_the_size_limit_is_enforced(settings):
    settings.ATTACHMENT_MAX_BYTES = 100
    with pytest.raises(ValidationError) as exc:
        attachments.validate_upload(SimpleUploadedFile("big.txt", b"a" * 101, "text/plain"))
    assert "big.txt" in exc.value.message_dict["files"][0] and "100" in exc.value.message_dict["files"][0]
    attachments.validate_upload(SimpleUploadedFile("ok.txt", b"a" * 100, "text/plain"))


def test_the_messages_are_translated(settings):
    from django.utils import translation

    with translation.override("zh-hans"), pytest.raises(ValidationError) as exc:
        attachments.check("x.exe", b"MZ\x00")
    assert "x.exe" in exc.value.message_dict["files"][0]


def test_display_names_are_cleaned():
    assert attachments.clean_name("../../etc/passwd") == "passwd"
    assert attachments.clean_name("C:\\Users\\a\\报告.pdf") == "报告.pdf"
    assert attachments.clean_name("evil\u202egpj.pdf") == "evilgpj.pdf"  # no bidi override
    assert attachments.clean_name('a"b\r\n.txt') == "a_b.txt"
    assert attachments.clean_name("...") == "file"
    long = attachments.clean_name("x" * 300 + ".pdf")
    assert len(long) == 200 and long.endswith(".pdf")


def test_a_stored_upload_has_a_random_name_a_hash_an_event_and_an_audit_entry(settings, users, ticket):
    upload = SimpleUploadedFile(
        "../说明书.pdf", PDF, "application/octet-stream"
    )  # the browser's claim ignored
    att = attachments.store_upload(users["agent"], ticket, upload)
    assert (att.name, att.content_type, att.size) == ("说明书.pdf", "application/pdf", len(PDF))
    assert att.sha256 == hashlib.sha256(PDF).hexdigest() and att.uploaded_by == users["agent"]
    path = Path(att.file.path)
    assert (
        path.is_relative_to(Path(settings.MEDIA_ROOT))
        and "说明书" not in att.file.name
        and ".pdf" not in att.file.name
    )
    assert path.read_bytes() == PDF
    event = TicketEvent.objects.get(ticket=ticket, kind="attachment")
    assert event.data["attachment"] == att.pk and event.data["name"] == "说明书.pdf"
    entry = AuditEntry.objects.filter(object_type__icontains="attachment").latest("seq")
    assert entry.action == "create" and entry.changes["sha256"][1] == att.sha256


def test_store_bytes_is_checked_the_same_way_and_records_the_system(ticket):
    att = attachments.store_bytes(ticket, "scan.png", "image/png", PNG)
    assert att.uploaded_by is None and att.content_type == "image/png"
    with pytest.raises(ValidationError):
        attachments.store_bytes(ticket, "scan.png", "image/png", PDF)
    assert Attachment.objects.filter(ticket=ticket).count() == 1


def test_only_people_who_handle_tickets_may_upload(users, ticket):
    with pytest.raises(PermissionDenied):
        attachments.store_upload(users["auditor"], ticket, SimpleUploadedFile("a.txt", b"hello"))
    with pytest.raises(PermissionDenied):
        attachments.store_upload(users["pv"], ticket, SimpleUploadedFile("a.txt", b"hello"))


@pytest.mark.parametrize("name", ["batch.csv", "page.html"])
def test_a_text_file_of_a_kind_not_accepted_is_refused_as_such(name):
    """A .csv was refused as "the content does not match the extension (the file is .txt)": the customer then
    renamed it, when the reason is that the kind is not accepted."""
    with pytest.raises(ValidationError) as exc:
        attachments.check(name, "批号,数量\nB2608,3\n".encode())
    message = exc.value.message_dict["files"][0]
    assert "不接受此类文件" in message and ".xlsx" in message and "不符" not in message


def test_the_nightly_sweep_deletes_only_files_no_attachment_names(users, ticket):
    """A file is stored before the transaction that records its attachment: a worker or web process killed in
    between (or a reply whose transaction failed after its files were kept) left a file in var/files/ that no
    ticket names, a prescription or a lab report kept forever. The nightly sweep deletes such files once a day
    old, and only those; one audit entry gives the count."""
    import datetime as dt
    import os

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.utils import timezone

    from pharmacrm.servicedesk import tasks

    kept = attachments.store_upload(users["agent"], ticket, SimpleUploadedFile("处方.pdf", PDF))
    killed = default_storage.save("attachments/2026/11/" + "a" * 32, ContentFile(PDF))  # the killed upload's
    under_way = default_storage.save("attachments/2026/11/" + "b" * 32, ContentFile(PDF))  # being written now
    two_days_ago = (timezone.now() - dt.timedelta(days=2)).timestamp()
    for name in (kept.file.name, killed):
        os.utime(default_storage.path(name), (two_days_ago, two_days_ago))

    assert tasks.sweep_attachment_files.call_local() == 1
    assert not default_storage.exists(killed)
    assert default_storage.exists(kept.file.name) and default_storage.exists(under_way)
    entry = AuditEntry.objects.get(object_type="servicedesk.attachment", action="delete")
    assert entry.extra["count"] == 1 and entry.extra["files"] == [killed]
    assert tasks.sweep_attachment_files.call_local() == 0
