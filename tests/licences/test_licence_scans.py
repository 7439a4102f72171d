"""The scanned copy of a customer's licence (GSP: the seller keeps the stamped copy): a PDF, PNG or JPEG of at most
20 MB, its type read from the content, refused otherwise under the field with nothing written; downloaded by whoever
may read the licence (404 outside the scope), each download audited; a replaced copy clears the verification and stays
named by the audit trail; the nightly sweep deletes only what nothing names — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import time
from urllib.parse import quote

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone, translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.licences import services
from pharmacrm.licences.models import Licence
from tests.api.conftest import token_for
from tests.keyaccounts.programme_fixtures import tiny_pdf, tiny_png

TODAY = timezone.localdate
PRACTICE = "PDY60006X11010217A1001"


def practice(**extra):
    return {"kind": "medical_practice", "number": PRACTICE, "issuer": "北京市卫生健康委员会",
            "valid_until": (TODAY() + dt.timedelta(days=900)).isoformat(), **extra}  # fmt: skip


@pytest.fixture
def var(settings, tmp_path):
    settings.VAR_DIR = tmp_path  # this test's own var/licences/
    return tmp_path / "licences"


def kept(var) -> list[str]:
    return sorted(p.name for p in var.iterdir()) if var.exists() else []


def test_a_scan_of_the_wrong_type_too_large_or_broken_is_refused_naming_the_field_and_nothing_is_kept(xiehe, users, var):
    for upload, message in (
        (SimpleUploadedFile("执业许可证.docx", b"PK\x03\x04 a word file"), "PDF, PNG or JPEG"),
        (SimpleUploadedFile("执业许可证.pdf", b"%PDF-1.4" + b"0" * (20 * 1024 * 1024)), "too large"),
        (SimpleUploadedFile("执业许可证.pdf", b"%PDF-1.4 broken, no pages"), "PDF, PNG or JPEG"),
    ):
        with pytest.raises(ValidationError) as e, translation.override("en"):
            services.create(users["rep"], xiehe, practice(), scan=upload)
        assert message in " ".join(e.value.message_dict["scan"])
    assert not Licence.objects.exists() and kept(var) == []
    # a licence refused for its data writes no file either; without a scan it is recorded as before
    with pytest.raises(ValidationError) as e:
        services.create(users["rep"], xiehe, practice(number="bad!"), scan=SimpleUploadedFile("a.pdf", tiny_pdf()))
    assert list(e.value.message_dict) == ["number"] and kept(var) == []
    assert services.create(users["rep"], xiehe, practice()).scan == ""
    # the page says it under the field, in the reader's language
    with translation.override("zh-hans"):
        with pytest.raises(ValidationError) as e:
            services.create(users["rep"], xiehe, practice(number="PDY60006X11010217A1002"),
                            scan=SimpleUploadedFile("a.pdf", b"%PDF-1.4 broken"))  # fmt: skip
    assert "PDF" in e.value.message_dict["scan"][0] and "上传" in e.value.message_dict["scan"][0]


def test_a_scan_is_kept_downloaded_within_the_scope_audited_and_a_replacement_clears_the_verification(
        xiehe, ruijin, users, client_for, team_north, var):  # fmt: skip
    from rest_framework.test import APIClient

    xiehe.owner, xiehe.team = users["rep"], team_north
    xiehe.save(update_fields=["owner", "team"])
    rep, pdf = client_for("rep"), tiny_pdf()
    refused = rep.post(f"/licences/new/{xiehe.pk}/", {**practice(), "scan": SimpleUploadedFile("a.pdf", b"%PDF-1.4 x")},
                       HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert refused.status_code == 400 and "Upload a PDF, PNG or JPEG file." in refused.content.decode()
    assert not Licence.objects.exists() and kept(var) == []
    answer = rep.post(f"/licences/new/{xiehe.pk}/", {**practice(), "scan": SimpleUploadedFile("许可证正本.pdf", pdf)})
    assert answer.status_code == 302
    licence = Licence.objects.get(institution=xiehe)
    first = licence.scan
    assert first.startswith(f"{PRACTICE}-") and first.endswith(".pdf") and kept(var) == [first]
    assert licence.scan_name == "许可证正本.pdf" and len(licence.scan_sha256) == 64
    assert AuditEntry.objects.get(action="create", object_type="licences.licence", object_id=str(licence.pk)).changes["scan"] == [None, first]
    block = rep.get(f"/licences/customer/{xiehe.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f"/licences/{licence.pk}/scan/" in block and "Scanned copy" in block
    # downloaded by whoever reads the licence, each download audited; outside the scope it does not exist
    download = rep.get(f"/licences/{licence.pk}/scan/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == pdf
    assert quote("许可证正本.pdf") in download["Content-Disposition"]
    assert client_for("auditor").get(f"/licences/{licence.pk}/scan/").status_code == 200
    assert AuditEntry.objects.filter(action="export", object_type="licences.licence", object_id=str(licence.pk)).count() == 2
    other = services.create(users["kam"], ruijin, practice(number="PDY60006X31010417A1001"),
                            scan=SimpleUploadedFile("瑞金.png", tiny_png()))  # fmt: skip
    assert rep.get(f"/licences/{other.pk}/scan/").status_code == 404
    assert client_for("kam").get(f"/licences/{other.pk}/scan/").status_code == 200

    # verified, then a better scan through the API: checked again, the old copy kept and named by the audit entry
    services.verify(users["pv"], licence, licence.version)
    licence.refresh_from_db()

    def api(role):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users[role])}", HTTP_ACCEPT_LANGUAGE="en")
        return client

    shown = api("agent").get(f"/api/v1/licences/{licence.pk}/").json()
    assert (shown["scan_name"], shown["scan_url"]) == ("许可证正本.pdf", f"/licences/{licence.pk}/scan/")
    wrong = api("rep").post(f"/api/v1/licences/{licence.pk}/scan/", {"scan": SimpleUploadedFile("a.pdf", b"GIF89a"),
                                                                    "version": licence.version}, format="multipart")  # fmt: skip
    assert wrong.status_code == 400 and list(wrong.json()) == ["scan"] and kept(var) == sorted([first, other.scan])
    assert api("agent").post(f"/api/v1/licences/{licence.pk}/scan/", {"scan": SimpleUploadedFile("a.png", tiny_png()),
                                                                     "version": licence.version}, format="multipart").status_code == 403  # fmt: skip
    done = api("rep").post(f"/api/v1/licences/{licence.pk}/scan/", {"scan": SimpleUploadedFile("清晰版.png", tiny_png()),
                                                                   "version": licence.version}, format="multipart")  # fmt: skip
    assert done.status_code == 200, done.content
    body = done.json()
    assert (body["status"], body["verified_at"], body["scan_name"]) == ("unverified", None, "清晰版.png")
    licence.refresh_from_db()
    assert first in kept(var) and licence.scan in kept(var) and licence.scan != first
    entry = AuditEntry.objects.filter(action="update", object_type="licences.licence", object_id=str(licence.pk)).latest("seq")
    assert entry.changes["scan"] == [first, licence.scan] and entry.changes["verified_at"][1] is None
    stale = api("rep").post(f"/api/v1/licences/{licence.pk}/scan/", {"scan": SimpleUploadedFile("a.png", tiny_png()),
                                                                    "version": licence.version - 1}, format="multipart")  # fmt: skip
    assert stale.status_code == 409 and len(kept(var)) == 3  # the refused upload's file is gone again
    # the edit page keeps the copy and offers the replacement
    page = rep.get(f"/licences/{licence.pk}/edit/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "清晰版.png" in page and 'enctype="multipart/form-data"' in page and 'name="scan"' in page
    for lang, word in (("zh-hans", "扫描件"), ("zh-hant", "掃描件"), ("en", "Scanned copy")):
        assert word in rep.get(f"/licences/customer/{xiehe.pk}/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()


def test_the_nightly_sweep_deletes_only_a_day_old_file_nothing_names(xiehe, users, var):
    licence = services.create(users["rep"], xiehe, practice(), scan=SimpleUploadedFile("a.pdf", tiny_pdf()))
    first = licence.scan
    licence = services.update(users["rep"], licence, {}, licence.version, scan=SimpleUploadedFile("b.png", tiny_png()))
    orphan = var / f"{PRACTICE}-{'0' * 32}.pdf"  # an upload whose process was killed before its row was saved
    young = var / f"{PRACTICE}-{'1' * 32}.pdf"
    other = var / "notes.txt"  # not a name keep_scan writes: never touched
    for path in (orphan, young, other):
        path.write_bytes(b"%PDF-1.4")
    day_old = time.time() - 2 * 86400
    for path in (var / first, var / licence.scan, orphan, other):
        os.utime(path, (day_old, day_old))
    assert services.sweep_orphaned_files() == 1
    assert kept(var) == sorted([first, licence.scan, young.name, "notes.txt"])
    entry = AuditEntry.objects.filter(action="delete", object_type="licences.licence").get()
    assert entry.extra["files"] == [orphan.name] and entry.actor_name == "worker"
    assert services.sweep_orphaned_files() == 0
