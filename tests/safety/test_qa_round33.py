"""Safety items of the thirty-third round: the copy of an article downloaded through the API, the latest report on
the case list (page and API), one size limit for an incoming ICSR or acknowledgement, and the case files stored
before safety 0010 moved to random names on disk."""

from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety import services
from pharmacrm.safety.models import CaseFile, SafetyCase, Submission
from tests.api import conftest as api_fixtures

from .conftest import next_code, sign_code

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role

REFERENCES = [
    "Wang L, Zhang W. Ceftriaxone-induced rash: a case report. Chin J Pharmacovigil. 2026;23(4):211-3.",
    "Li H, et al. Cutaneous reactions to cephalosporins. Drug Saf. 2025;48(2):101-9.",
]
PDF = b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


def _pdf(name="文章.pdf", data=PDF):
    return SimpleUploadedFile(name, data, content_type="application/pdf")


def _copy_url(case, reference: int) -> str:
    return f"/api/v1/safety/cases/{case.pk}/literature-copies/{reference}/"


# --- 1. the copy of an article through the API ------------------------------------------------------------------


def test_the_copy_of_an_article_downloads_through_the_api_for_pv_only_and_audited(api_for, make_case, users):
    """An integration attached the copy of an article (C.4.r.2) through the API and saw it in the case's
    `literature_copies`, but could not fetch it back: only the case page offered the download. Now
    …/literature-copies/{reference}/ answers the PDF under its own name, for PV only, each download audited as the
    page's is."""
    case = make_case(literature="\n".join(REFERENCES))
    copy = services.attach_literature_copy(users["pv"], case, 2, _pdf())
    # a name as an older upload or an import may have stored it: a quote, a semicolon, a line break
    CaseFile.objects.filter(pk=copy.pk).update(name='王"病历;\r\nx.pdf')
    reads = AuditEntry.objects.filter(action="read_personal", object_id=str(case.pk), actor=users["pv"])
    before = reads.count()

    response = api_for("pv").get(_copy_url(case, 2), HTTP_ACCEPT="application/pdf")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF
    assert response["Content-Type"] == "application/pdf" and response["Content-Length"] == str(len(PDF))
    disposition = response["Content-Disposition"]
    assert disposition == ("attachment; filename=\"x.pdf\"; "
                           "filename*=UTF-8''%E7%8E%8B%22%E7%97%85%E5%8E%86%3B%0D%0Ax.pdf")  # fmt: skip
    assert response["X-Content-Type-Options"] == "nosniff" and "no-store" in response["Cache-Control"]
    assert reads.count() == before + 1
    entry = reads.latest("seq")
    assert entry.extra.get("file") == '王"病历;\r\nx.pdf' and entry.extra.get("fields") == ["files"]

    # the same policy as the page's download: the overseeing roles and everyone else are refused, unaudited
    for role in ("manager", "auditor", "admin", "agent"):
        assert api_for(role).get(_copy_url(case, 2)).status_code == 403, role
    assert reads.count() == before + 1
    # a reference without a copy, a reference the case does not have, a case without any: 404
    assert api_for("pv").get(_copy_url(case, 1)).status_code == 404
    assert api_for("pv").get(_copy_url(case, 3)).status_code == 404
    assert api_for("pv").get(_copy_url(case, 0)).status_code == 404
    bare = make_case()
    missing = api_for("pv").get(_copy_url(bare, 1))
    assert missing.status_code == 404 and missing.json()["detail"] == "The case has no copy of that article."


def test_the_copy_download_is_in_the_openapi_schema(api_for):
    spec = json.loads(api_for("admin").get("/api/schema/?format=json").content)

    operation = spec["paths"]["/api/v1/safety/cases/{id}/literature-copies/{reference}/"]["get"]

    assert "application/pdf" in operation["responses"]["200"]["content"]
    assert {p["name"] for p in operation["parameters"]} == {"id", "reference"}
    assert "404" in operation["responses"]


def test_the_page_download_keeps_a_safe_name_too(client_for, make_case, users):
    """The page's download and the API's share one response: a name with a quote or a semicolon cannot break the
    header."""
    case = make_case(literature=REFERENCES[0])
    copy = services.attach_literature_copy(users["pv"], case, 1, _pdf())
    CaseFile.objects.filter(pk=copy.pk).update(name='a"b;c.pdf')

    response = client_for("pv").get(reverse("safety:case-file", args=[copy.pk]))

    assert response.status_code == 200
    assert re.match(r'attachment; filename="abc\.pdf"; filename\*=UTF-8\'\'a%22b%3Bc\.pdf$',
                    response["Content-Disposition"])  # fmt: skip


# --- 2. the latest report on the case list ---------------------------------------------------------------------


def _row(html: str, number: str) -> str:
    return re.search(rf'<tr class="case-row" data-number="{number}"[^>]*>(.*?)</tr>', html, re.S).group(1)


def test_the_case_list_shows_the_latest_report_of_each_case(client_for, make_case, users):
    """The case page and the API's case said whether a case's report was exported, sent and acknowledged, and in
    which batch; the list did not: finding the cases still to send, or those of a rejected batch, meant opening
    each. Now a column says it, in the reader's language, with the batch number."""
    reported, amended, never = make_case(), make_case(), make_case()
    first = services.export_icsr(users["pv"], [reported], otp_code=sign_code(users["pv"]))
    batch = services.export_icsr(users["pv"], [amended], otp_code=next_code(users["pv"])).message_id
    submission = services.record_submission(users["pv"], SafetyCase.objects.get(pk=amended.pk),
                                            {"channel": "nmpa", "message_id": batch},
                                            otp_code=next_code(users["pv"]))  # fmt: skip
    services.record_ack(users["pv"], submission, accepted=True, errors=[], at=timezone.now())
    amendment = services.export_icsr(users["pv"], [SafetyCase.objects.get(pk=amended.pk)],
                                     otp_code=next_code(users["pv"]), report="amendment",
                                     reason="剂量单位更正").message_id  # fmt: skip
    for role in ("pv", "manager"):
        client = client_for(role)
        client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"

        html = client.get(reverse("safety:cases")).content.decode()

        assert "<th scope=\"col\">Latest report</th>" in html
        row = _row(html, reported.number)
        assert 'data-report="initial" data-state="exported"' in row
        assert "Initial report · <span class=\"report-stage\">Exported, not sent yet</span>" in row
        assert first.message_id in row
        row = _row(html, amended.number)
        assert "Amendment · " in row and "Exported, not sent yet" in row and amendment in row and batch not in row
        assert "Not reported" in _row(html, never.number)

    # sent and acknowledged: the column follows
    submission = services.record_submission(users["pv"], SafetyCase.objects.get(pk=reported.pk),
                                            {"channel": "nmpa", "message_id": first.message_id},
                                            otp_code=next_code(users["pv"]))  # fmt: skip
    client = client_for("pv")
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    assert "Awaiting acknowledgement" in _row(client.get(reverse("safety:cases")).content.decode(), reported.number)
    services.record_ack(users["pv"], submission, accepted=False, errors=["C.1.1: duplicate"], at=timezone.now())
    row = _row(client.get(reverse("safety:cases")).content.decode(), reported.number)
    assert 'data-state="acknowledged"' in row and "Rejected" in row


def test_a_sent_nullification_stays_the_latest_report_whatever_minute_it_was_typed_with(make_case, users):
    """The initial report recorded as sent "now" (10:15:42), then its nullification exported and recorded as sent
    at 10:15 (the form takes minutes): the earlier report's sending, seconds later in the same minute, was read
    as the latest report — the list said "Initial report · Awaiting acknowledgement" for a nullified case."""
    import datetime as dt

    case = make_case()
    first = services.export_icsr(users["pv"], [case], otp_code=sign_code(users["pv"]))
    services.record_submission(users["pv"], SafetyCase.objects.get(pk=case.pk),
                               {"channel": "nmpa", "message_id": first.message_id}, otp_code=next_code(users["pv"]))
    void = services.export_icsr(users["pv"], [SafetyCase.objects.get(pk=case.pk)], otp_code=next_code(users["pv"]),
                                report="nullification", reason="重复报告")  # fmt: skip
    typed = timezone.now().replace(second=0, microsecond=0) - dt.timedelta(seconds=1)
    Submission.objects.filter(case=case).update(submitted_at=timezone.now())
    services.record_submission(users["pv"], SafetyCase.objects.get(pk=case.pk),
                               {"channel": "nmpa", "message_id": void.message_id, "submitted_at": typed},
                               otp_code=next_code(users["pv"]))  # fmt: skip

    report = services.last_report(SafetyCase.objects.get(pk=case.pk))

    assert (report["kind"], report["state"], report["batch_number"]) == ("nullification", "submitted",
                                                                         void.message_id)  # fmt: skip


def test_the_case_list_api_carries_the_latest_report_and_filters_by_batch(api_for, make_case, users,
                                                                          django_assert_max_num_queries):  # fmt: skip
    """The API's list left `report` out (only the single case had it) and had no way to ask which cases went in a
    batch — the batch number an acknowledgement or the regulator names. Now each row carries `report`, read for
    the whole page at once, and `batch_number` filters."""
    reported, other, never = make_case(), make_case(), make_case()
    first = services.export_icsr(users["pv"], [reported], otp_code=sign_code(users["pv"]))
    second = services.export_icsr(users["pv"], [other], otp_code=next_code(users["pv"]))
    # a submission recorded with the message id of a batch sent from elsewhere
    services.record_submission(users["pv"], SafetyCase.objects.get(pk=never.pk),
                               {"channel": "nmpa", "message_id": "GW-2026-77"},
                               otp_code=next_code(users["pv"]))  # fmt: skip

    for role in ("pv", "auditor"):
        rows = {r["number"]: r for r in api_for(role).get("/api/v1/safety/cases/").json()["results"]}
        assert rows[reported.number]["report"]["batch_number"] == first.message_id
        assert rows[reported.number]["report"]["kind"] == "initial"
        assert rows[reported.number]["report"]["state"] == "exported"
        assert rows[other.number]["report"]["batch_number"] == second.message_id
        assert rows[never.number]["report"]["state"] == "submitted"
        assert rows[never.number]["report"]["batch_number"] == "GW-2026-77"
        assert "patient_name" not in rows[reported.number]  # still no personal data in the list

    pv = api_for("pv")
    only = pv.get("/api/v1/safety/cases/", {"batch_number": first.message_id}).json()["results"]
    assert [r["number"] for r in only] == [reported.number]
    sent = pv.get("/api/v1/safety/cases/", {"batch_number": "GW-2026-77"}).json()["results"]
    assert [r["number"] for r in sent] == [never.number]
    assert pv.get("/api/v1/safety/cases/", {"batch_number": "nope"}).json()["results"] == []
    too_long = pv.get("/api/v1/safety/cases/", {"batch_number": "x" * 101})
    assert too_long.status_code == 400 and "batch_number" in too_long.json()

    # the reports of a page are read at once: more cases, no more queries
    with django_assert_max_num_queries(50) as three:
        pv.get("/api/v1/safety/cases/")
    for _i in range(4):
        services.export_icsr(users["pv"], [make_case()], otp_code=next_code(users["pv"]))
    with django_assert_max_num_queries(len(three.captured_queries)):
        assert len(pv.get("/api/v1/safety/cases/").json()["results"]) == 7


def test_the_list_report_and_its_filter_are_in_the_openapi_schema(api_for):
    spec = json.loads(api_for("admin").get("/api/schema/?format=json").content)

    listed = spec["components"]["schemas"]["CaseList"]["properties"]
    parameters = {p["name"] for p in spec["paths"]["/api/v1/safety/cases/"]["get"]["parameters"]}

    assert "report" in listed and "batch_number" in parameters


# --- 3. one size limit for an incoming E2B(R3) file ----------------------------------------------------------------

ICSR_URL = "/api/v1/safety/icsrs/"


def _xml(size: int) -> bytes:
    """Well-formed XML of `size` bytes (not an ICSR: what is under test is the size check, which comes first)."""
    line = b"<y>" + b" " * 1000 + b"</y>\n"
    body = line * ((size - 7) // len(line))
    return b"<x>" + body + b" " * (size - 7 - len(body)) + b"</x>"


def test_the_api_takes_an_icsr_batch_as_large_as_the_page_does(api_for):
    """A 30 MB batch (an ICSR with the copies of its articles, which our own export releases up to 50 MB) imported
    on the page was refused by the API: "larger than 20 MB". Both now take what settings.ICSR_MAX_BYTES allows."""
    body = _xml(30 * 1024 * 1024)

    response = api_for("pv").post(ICSR_URL, body, content_type="application/xml")

    assert response.status_code == 400
    [first, *_rest] = response.json()["file"]
    assert "larger" not in first and "MCCI_IN200100UV01" in first  # read, and refused for what it is


def test_a_file_over_the_limit_gets_the_same_refusal_on_the_page_and_in_the_api(api_for, client_for, settings):
    """The page said "larger than 50 MB: nothing was imported" above the forms; the API "larger than 20 MB" under
    `file`. One setting, one refusal: in the reader's language, naming the field and the limit, on both."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.ICSR_MAX_BYTES = 1024 * 1024
    big = _xml(1024 * 1024 + 1)
    expected = "文件超过 1 MB，未导入任何数据。"
    api = api_for("pv", lang="zh-hans")
    page = client_for("pv")
    page.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"

    raw = api.post(ICSR_URL, big, content_type="application/xml")
    multipart = api.post(ICSR_URL, {"file": SimpleUploadedFile("big.xml", big, "application/xml")}, format="multipart")
    ack = api.post("/api/v1/safety/acks/", big, content_type="application/xml")
    on_page = page.post(reverse("safety:import"),
                        {"what": "icsr", "icsr-file": SimpleUploadedFile("big.xml", big, "application/xml")})  # fmt: skip

    for response in (raw, multipart, ack):
        assert response.status_code == 400 and response.json() == {"file": [expected]}
    assert on_page.status_code == 413
    html = on_page.content.decode()
    field = re.search(r'<div class="field has-error[^"]*" id="field-icsr-file">(.*?)</div>\s*<div class="actions', html,
                      re.S)  # fmt: skip
    assert field and expected in field.group(1)
    assert "1 MB" in html.split('id="field-ack-file"')[1]  # the help text names the same limit
    assert not SafetyCase.objects.exists()

    # a body announced larger than the limit is refused before it is read, with the same words
    announced = api.post(ICSR_URL, b"<x/>", content_type="application/xml",
                         CONTENT_LENGTH=str(2 * 1024 * 1024))  # fmt: skip
    assert announced.status_code == 400 and announced.json() == {"file": [expected]}


# --- 4. case files stored before safety 0010 move to random names --------------------------------------------------


def _on_disk() -> dict[str, bytes]:
    from pathlib import Path

    from django.core.files.storage import default_storage

    root = Path(default_storage.path(""))
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _stored_as_before_0010(case, name: str, data: bytes, **fields) -> CaseFile:
    """A case file as the upload stored it before safety 0010: under its uploader's name (upload_to safety/%Y/%m/)."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    path = default_storage.save(f"safety/2026/11/{name}", ContentFile(data))
    return CaseFile.objects.create(case=case, file=path, name=name, content_type=fields.pop("content_type",
                                   "application/pdf"), size=len(data), **fields)  # fmt: skip


def _run_migrate_step():
    """What `migrate` does: safety 0011 notes the work, the app's post_migrate handler runs the command."""
    import importlib
    import types

    from django.apps import apps
    from django.db import connection

    from pharmacrm.safety import apps as safety_apps

    migration = importlib.import_module("pharmacrm.safety.migrations.0011_rename_old_case_files")
    migration.note_rename(apps, types.SimpleNamespace(connection=connection))
    assert connection.alias in safety_apps.RENAME_FILES_AFTER_MIGRATE
    safety_apps.revalidate_after_migrate(sender=None, using=connection.alias)
    assert connection.alias not in safety_apps.RENAME_FILES_AFTER_MIGRATE


def test_files_stored_under_the_uploaders_name_move_to_random_names_after_migrate(
    make_case, users, client_for, django_capture_on_commit_callbacks
):
    """Session 32 gave new case files a random name on disk; those uploaded before kept theirs —
    var/files/safety/2026/11/王小明病历.pdf, the patient's name in every directory listing and backup. After `migrate`
    each is under a random name with the same bytes, its row points there, the move is audited, the page still
    downloads it under its own name, and no file anywhere carries the old name. A second run changes nothing."""
    import io

    from django.core.management import call_command
    from django.utils import translation

    from pharmacrm.safety import file_moves

    case = make_case(literature=REFERENCES[0])
    record = _stored_as_before_0010(case, "王小明病历.png", b"\x89PNG\r\n\x1a\n" + b"\x01" * 300,
                                    content_type="image/png")  # fmt: skip
    article = _stored_as_before_0010(case, "文章.pdf", PDF, literature=REFERENCES[0])
    newer = services.add_file(users["pv"], case, SimpleUploadedFile("新.png", b"\x89PNG\r\n\x1a\n" + b"\x02" * 99,
                                                                     content_type="image/png"))  # fmt: skip
    gone = CaseFile.objects.create(case=case, file="safety/2026/10/李四.pdf", name="李四.pdf",
                                   content_type="application/pdf", size=10)  # fmt: skip
    newer_name = newer.file.name
    before = _on_disk()

    with django_capture_on_commit_callbacks(execute=True):
        _run_migrate_step()

    after = _on_disk()
    for row, old in ((record, "safety/2026/11/王小明病历.png"), (article, "safety/2026/11/文章.pdf")):
        row.refresh_from_db()
        assert file_moves.RANDOM_NAME.fullmatch(row.file.name), row.file.name
        assert after[row.file.name] == before[old]
        entry = AuditEntry.objects.get(object_type="safety.casefile", object_id=str(row.pk), action="update")
        assert entry.changes == {"file": [old, row.file.name]} and entry.actor_name.startswith("cli:")
    assert not any("王小明" in p or "文章" in p for p in after)  # the names are gone from the disk
    assert len(after) == len(before)  # moved, not duplicated
    assert CaseFile.objects.get(pk=newer.pk).file.name == newer_name  # a newer file is left as it is
    assert CaseFile.objects.get(pk=gone.pk).file.name == "safety/2026/10/李四.pdf"  # missing: left, counted

    download = client_for("pv").get(reverse("safety:case-file", args=[record.pk]))
    assert download.status_code == 200 and b"".join(download.streaming_content) == before["safety/2026/11/王小明病历.png"]
    assert "%E7%8E%8B%E5%B0%8F%E6%98%8E%E7%97%85%E5%8E%86.png" in download["Content-Disposition"]
    copy = client_for("pv").get(reverse("safety:case-file", args=[article.pk]))
    assert copy.status_code == 200 and b"".join(copy.streaming_content) == PDF

    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True), translation.override("en"):
        call_command("safety", "rename-files", stdout=out)  # again: nothing to do
    assert out.getvalue().startswith("0 case file(s) moved to a random name, 0 old name(s) left by an interrupted "
                                     "run removed, 1 missing from the storage")  # fmt: skip
    assert _on_disk() == after
    assert AuditEntry.objects.filter(object_type="safety.casefile", action="update").count() == 2


def test_a_move_stopped_at_any_step_loses_no_file_and_the_next_run_finishes_it(
    make_case, users, monkeypatch, django_capture_on_commit_callbacks
):
    """Stopped after the copy (before the row changed), after a half-written copy, or after the commit (before the old
    file was removed): the file is always readable from its row, and the next run leaves exactly one file per row."""
    from django.core.files.storage import default_storage
    from django.core.management import call_command

    from pharmacrm.safety import file_moves

    case = make_case()
    first = _stored_as_before_0010(case, "张三出院小结.pdf", PDF)
    second = _stored_as_before_0010(case, "李四检验单.pdf", PDF + b"%2\n")
    # a copy an earlier run began and did not finish, where this run will write
    half = file_moves.random_name(second, second.file.name)
    default_storage.save(half, SimpleUploadedFile("x", PDF[:100]))

    # 1. the audit entry cannot be written (the transaction of the row fails): the rows keep their old files
    def crash(*args, **kwargs):
        raise RuntimeError("stopped")

    monkeypatch.setattr(services, "_record", crash)
    with pytest.raises(RuntimeError), django_capture_on_commit_callbacks(execute=True):
        call_command("safety", "rename-files")
    monkeypatch.undo()
    first.refresh_from_db()
    assert first.file.name == "safety/2026/11/张三出院小结.pdf"
    with first.file.open("rb") as fh:
        assert fh.read() == PDF

    # 2. stopped after the commit, before the old files were removed (the on-commit step never ran)
    with django_capture_on_commit_callbacks(execute=False):
        call_command("safety", "rename-files")
    for row in (first, second):
        row.refresh_from_db()
        assert file_moves.RANDOM_NAME.fullmatch(row.file.name)
    assert default_storage.exists("safety/2026/11/张三出院小结.pdf")  # still there, not yet removed

    # 3. the next run removes what was left, through the audit entries; one file per row, each intact
    with django_capture_on_commit_callbacks(execute=True):
        call_command("safety", "rename-files")
    on_disk = _on_disk()
    assert sorted(on_disk) == sorted([first.file.name, second.file.name])
    assert on_disk[first.file.name] == PDF and on_disk[second.file.name] == PDF + b"%2\n"
    assert second.file.name == half  # the half-written copy was replaced, not kept beside
