"""Import and export over the API: dry run, row errors in the caller's language, confirm, refusals,
and exports that follow the access policy."""

from __future__ import annotations

import csv
import io

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation

from pharmacrm.customers import importer, services
from pharmacrm.customers.models import ImportJob, Person

HEADER = ["姓名", "所属机构", "手机", "外部编号"]


def people_csv(rows: list[list[str]]) -> SimpleUploadedFile:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return SimpleUploadedFile("联系人.csv", buf.getvalue().encode("utf-8"), content_type="text/csv")


def upload(client, file, **fields):
    return client.post(
        "/api/v1/imports/", {"file": file, "target": "people", "mode": "all", "dry_run": "true", **fields},
        format="multipart",
    )  # fmt: skip


def test_a_dry_run_reports_the_bad_row_and_a_confirmed_good_rows_import_creates_the_rest(api_for, xiehe):
    client = api_for("kam")
    rows = [
        ["李娜", "北京协和医院", "13800138001", "EXT-1"],
        ["王芳", "北京协和医院", "1380013800", "EXT-2"],
        ["刘洋", "北京协和医院", "13800138003", "EXT-3"],
    ]
    started = upload(client, people_csv(rows))
    assert started.status_code == 202, started.content
    job = started.json()
    assert job["status"] == "previewed" and job["dry_run"] is True and job["total_rows"] == 3
    assert job["error_count"] == 1 and not Person.objects.filter(external_id="EXT-1").exists()
    [error] = job["errors"]
    assert error["row"] == 3 and error["column"] == "手机"
    assert "mobile" in error["message"]  # English: the caller asked for it

    detail = client.get(f"/api/v1/imports/{job['id']}/").json()
    assert detail["errors"] == job["errors"] and detail["percent"] == 100

    # all-or-nothing with a bad row would import nothing: refused, the caller must choose
    refused = client.post(f"/api/v1/imports/{job['id']}/", {}, format="json")
    assert refused.status_code == 409
    confirmed = client.post(f"/api/v1/imports/{job['id']}/", {"mode": "good"}, format="json")
    assert confirmed.status_code == 202, confirmed.content
    assert confirmed.json()["status"] == "done" and confirmed.json()["created_count"] == 2
    assert set(
        Person.objects.filter(external_id__in=["EXT-1", "EXT-2", "EXT-3"]).values_list("name", flat=True)
    ) == {
        "李娜",
        "刘洋",
    }
    again = client.post(f"/api/v1/imports/{job['id']}/", {"mode": "good"}, format="json")
    assert again.status_code == 409


def test_wrong_types_and_oversized_files_are_refused_on_the_file_field(api_for, settings):
    client = api_for("manager")
    text = SimpleUploadedFile("notes.doc", b"hello", content_type="application/msword")
    response = upload(client, text)
    assert response.status_code == 400 and response.json()["file"] == [
        "Only .csv, .txt and .xlsx files can be imported."
    ]
    settings.IMPORT_MAX_BYTES = 10
    too_big = upload(client, people_csv([["李娜", "北京协和医院", "13800138001", "EXT-1"]]))
    assert too_big.status_code == 400 and "too large" in too_big.json()["file"][0]
    broken = SimpleUploadedFile(
        "broken.xlsx", b"PK\x03\x04 not really", content_type="application/octet-stream"
    )
    settings.IMPORT_MAX_BYTES = 50 * 1024 * 1024
    assert upload(client, broken).status_code == 400
    assert not ImportJob.objects.exists()


def test_the_import_report_follows_accept_language(api_for, xiehe):
    job_id = upload(api_for("kam"), people_csv([["王芳", "北京协和医院", "1380013800", "EXT-2"]])).json()[
        "id"
    ]
    [raw] = ImportJob.objects.get(pk=job_id).errors
    for lang in ("en", "zh-hans"):
        with translation.override(lang):
            expected = importer.error_text(raw)
        shown = api_for("kam", lang=lang).get(f"/api/v1/imports/{job_id}/").json()["errors"][0]["message"]
        assert shown == expected, lang


def test_exports_are_scoped_and_masked_by_role(api_for, users, xiehe, ruijin):
    services.create_person(users["admin"], {"name": "陈静", "institution": ruijin, "mobile": "13911112222"})

    def export(role: str) -> str:
        response = api_for(role).get("/api/v1/export/people.csv")
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
        return b"".join(response.streaming_content).decode("utf-8-sig")

    kam, analyst, rep = export("kam"), export("analyst"), export("rep")
    assert "13800138000" in kam.replace(" ", "") and "陈静" in kam
    assert "138****8000" in analyst and "13800138000" not in analyst.replace(" ", "")
    assert "张伟" in rep and "陈静" not in rep
    assert api_for("agent").get("/api/v1/export/people.csv").status_code == 403
    assert api_for("kam").get("/api/v1/export/people.pdf").status_code == 404


def test_the_api_export_is_headed_in_the_requests_language(api_for, xiehe):
    """Like the pages' exports: the request's Accept-Language decides the headers (Chinese in zh-Hans)."""

    def header(lang: str) -> list[str]:
        response = api_for("kam", lang=lang).get("/api/v1/export/institutions.csv")
        assert response.status_code == 200
        return next(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))

    assert header("en")[:3] == ["Internal code", "Institution name", "Institution type"]
    assert header("zh-hans")[:3] == ["内部编号", "机构名称", "机构类型"]
    assert header("zh-hant")[0] == "內部編號"
