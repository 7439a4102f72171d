"""An import whose worker stops midway: the job keeps a heartbeat, a periodic check (and the worker's start-up,
and the job's own page) marks a silent job interrupted with what was really written and what to do; a live job
with a slow chunk, or one finishing meanwhile, is left alone; nothing is run again by itself."""

from __future__ import annotations

import csv
import datetime
import io
import os
import time
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import importer, normalise, tasks
from pharmacrm.customers.models import ImportJob, Institution, Person

LATER = datetime.timedelta(minutes=6)  # past STALE_AFTER
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


class Killed(BaseException):
    """The worker process dying: nothing of the importer's own error handling runs."""


@pytest.fixture
def kill_at_chunk(monkeypatch):
    """kill_at_chunk(n): the n-th chunk's write dies (chunks of two rows); the dying process records nothing,
    as a killed worker would not."""

    def arm(n: int) -> None:
        monkeypatch.setattr(importer, "CHUNK_ROWS", 2)
        monkeypatch.setattr(importer, "_interrupted_here", lambda job_id: None)
        real, calls = importer._write, []

        def write(run, creates, updates, careful):
            calls.append(1)
            if len(calls) == n:
                raise Killed
            return real(run, creates, updates, careful)

        monkeypatch.setattr(importer, "_write", write)

    return arm


def csv_file(tmp_path: Path, name: str, rows: list[list[str]]) -> Path:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    path = tmp_path / name
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def code(n: int) -> str:
    return normalise.make_credit_code(f"1210000040000{n:04d}")


INSTITUTIONS = [
    ["机构名称", "机构类型", "统一社会信用代码", "行政区划代码"],
    ["甲医院", "医院", code(1), ""],
    ["乙诊所", "诊所", "", ""],  # no key, no region: a second import cannot recognise it
    ["丙医院", "医院", code(3), ""],
    ["丁医院", "医院", code(4), ""],
    ["戊药店", "药店", "", "110105"],  # no key, but a region: recognised by name in that region
]


def interrupted(user, path: Path, target: str, mode: str, dry_run: bool = False) -> ImportJob:
    job = ImportJob.objects.create(
        target=target, mode=mode, dry_run=dry_run, file_name=path.name, file_path=str(path),
        file_sha256=importer._sha256(path), file_size=path.stat().st_size, created_by=user,
    )  # fmt: skip
    with pytest.raises(Killed):
        importer.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.RUNNING  # what a killed worker leaves
    return job


def page(client, job) -> str:
    return client.get(reverse("customers:import-detail", args=[job.pk]), **EN).content.decode()


def test_a_good_rows_import_killed_midway_is_marked_interrupted_with_what_was_really_written(
    users, tmp_path, kill_at_chunk, client_for
):
    kill_at_chunk(2)
    path = csv_file(tmp_path, "机构.csv", INSTITUTIONS)
    job = interrupted(users["kam"], path, "institutions", "good")
    assert (job.processed_rows, job.created_count, job.last_row, job.unkeyed_count) == (2, 2, 3, 1)
    assert sorted(Institution.objects.values_list("name", flat=True)) == ["乙诊所", "甲医院"]

    assert importer.recover_interrupted() == []  # its heartbeat is recent: it may still be running
    assert importer.recover_interrupted(timezone.now() + LATER) == [job.pk]

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED and job.finished_at is not None
    assert (job.processed_rows, job.created_count, job.updated_count, job.error_count) == (2, 2, 0, 0)
    text = page(client_for("kam"), job)
    assert "The rows up to row 3 of the file were handled and saved (2 created, 0 updated" in text
    assert "any rows after it were not imported" in text
    assert "To finish, import the same file again" in text
    assert "Institutions created without a credit code, external id, region or parent institution: 1." in text
    assert "delete the rows up to row 3 from the file" in text
    assert 'id="import-progress"' not in text  # no progress bar polling any more
    entry = AuditEntry.objects.filter(action=AuditEntry.Action.IMPORT, object_id=str(job.pk)).get()
    assert entry.extra["interrupted"] is True and entry.extra["created"] == 2 and entry.extra["status"] == "failed"
    assert not importer.error_report_path(job).exists() and not importer.progress_path(job).exists()
    assert Path(job.file_path).exists()  # never run again by itself: the file stays for the user to decide

    # as the page says: the keyed rows are recognised, the one without a key or region comes in twice
    again = importer.import_file(path, "institutions", users["kam"], mode="good")
    assert (again.status, again.created_count, again.unchanged_count) == ("done", 4, 1)
    assert Institution.objects.filter(name="甲医院").count() == 1
    assert Institution.objects.filter(name="乙诊所").count() == 2


def test_people_without_a_key_or_mobile_are_counted_and_keyed_ones_are_not(
    users, xiehe, tmp_path, kill_at_chunk, client_for
):
    kill_at_chunk(2)
    rows = [["姓名", "所属机构", "手机", "外部编号"], ["李娜", "北京协和医院", "13800138001", ""],
            ["王芳", "北京协和医院", "", "EXT-2"], ["刘洋", "北京协和医院", "", ""]]  # fmt: skip
    job = interrupted(users["kam"], csv_file(tmp_path, "p.csv", rows), "people", "good")
    assert (job.created_count, job.unkeyed_count) == (2, 0)
    importer.recover_interrupted(timezone.now() + LATER)
    text = page(client_for("kam"), job)
    assert "people already saved are recognised by their internal code or external id" in text
    assert "People created without" not in text


def test_an_all_or_nothing_import_killed_midway_says_nothing_was_written(
    users, xiehe, tmp_path, kill_at_chunk, client_for
):
    kill_at_chunk(2)
    rows = [["姓名", "所属机构", "外部编号"], *[[f"医生{i}", "北京协和医院", f"EXT-{i}"] for i in range(5)]]
    before = Person.objects.count()
    job = interrupted(users["kam"], csv_file(tmp_path, "p.csv", rows), "people", "all")
    assert Person.objects.count() == before  # the one transaction died with the worker

    assert importer.recover_interrupted(timezone.now() + LATER) == [job.pk]
    job.refresh_from_db()
    assert (job.status, job.created_count, job.updated_count, job.last_row) == ("failed", 0, 0, 0)
    text = page(client_for("kam"), job)
    assert "The mode is all or nothing, so nothing was imported: no row was written." in text
    assert "Upload the same file again to import it." in text


def test_an_interrupted_check_says_nothing_was_written(users, tmp_path, kill_at_chunk, client_for, monkeypatch):
    monkeypatch.setattr(importer, "CHUNK_ROWS", 2)
    monkeypatch.setattr(importer, "_interrupted_here", lambda job_id: None)
    real, calls = importer._commit, []

    def commit(run, items, in_transaction, careful=False):
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return real(run, items, in_transaction, careful)

    monkeypatch.setattr(importer, "_commit", commit)
    job = interrupted(users["kam"], csv_file(tmp_path, "机构.csv", INSTITUTIONS), "institutions", "good", True)
    importer.recover_interrupted(timezone.now() + LATER)
    job.refresh_from_db()
    assert (job.status, job.created_count, job.processed_rows) == ("failed", 0, 2)
    assert "The check was interrupted" in page(client_for("kam"), job)
    assert not Institution.objects.exists()


def test_a_job_stopped_in_this_process_is_marked_at_once(users, tmp_path, monkeypatch):
    monkeypatch.setattr(importer, "CHUNK_ROWS", 2)
    real, calls = importer._write, []

    def write(run, creates, updates, careful):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(run, creates, updates, careful)

    monkeypatch.setattr(importer, "_write", write)
    path = csv_file(tmp_path, "机构.csv", INSTITUTIONS)
    with pytest.raises(KeyboardInterrupt):
        importer.import_file(path, "institutions", users["kam"], mode="good")
    job = ImportJob.objects.get()
    assert (job.status, job.created_count, job.last_row) == ("failed", 2, 3)
    assert not importer.alive_path(job).exists()


def running_job(user, **fields) -> ImportJob:
    old = timezone.now() - datetime.timedelta(minutes=10)
    values = dict(target="institutions", mode="good", dry_run=False, file_name="x.csv", file_path="/nowhere",
                  file_sha256="x", created_by=user, status=ImportJob.Status.RUNNING, started_at=old,
                  heartbeat_at=old, total_rows=100, processed_rows=40, created_count=40, last_row=41)  # fmt: skip
    values.update(fields)
    return ImportJob.objects.create(**values)


def test_a_live_job_in_a_slow_chunk_is_not_marked(users):
    job = running_job(users["kam"])  # no chunk finished for ten minutes …
    with importer.Heartbeat(job, every=0.05) as beat:  # … but its worker is alive
        first = os.stat(beat.path).st_mtime_ns
        time.sleep(0.3)
        assert os.stat(beat.path).st_mtime_ns > first  # the thread keeps beating
        assert importer.recover_interrupted() == []
    job.refresh_from_db()
    assert job.status == ImportJob.Status.RUNNING
    assert not importer.alive_path(job).exists()  # gone with the job


def test_the_check_does_not_race_a_job_that_finishes_or_beats_meanwhile(users):
    job = running_job(users["kam"])
    stale = ImportJob.objects.get(pk=job.pk)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.DONE, created_count=100)
    assert importer.mark_interrupted(stale) is False
    job.refresh_from_db()
    assert (job.status, job.created_count, job.message) == ("done", 100, "")

    other = running_job(users["kam"])
    stale = ImportJob.objects.get(pk=other.pk)
    ImportJob.objects.filter(pk=other.pk).update(heartbeat_at=timezone.now(), created_count=60)  # a chunk done
    assert importer.mark_interrupted(stale) is False
    other.refresh_from_db()
    assert other.status == ImportJob.Status.RUNNING


def test_the_jobs_page_notices_a_stopped_worker_and_the_progress_stops_polling(users, client_for):
    job = running_job(users["kam"])
    client = client_for("kam")
    response = client.get(reverse("customers:import-progress", args=[job.pk]), HTTP_HX_REQUEST="true", **EN)
    assert response.status_code == 200 and response.headers.get("HX-Refresh") == "true"
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED and job.created_count == 40
    assert "The rows up to row 41 of the file were handled and saved (40 created" in page(client, job)


def test_the_worker_checks_every_minute_and_at_start_up(db):
    from huey.contrib.djhuey import HUEY

    assert "recover_interrupted_imports_at_startup" in HUEY._startup
    assert tasks.recover_interrupted_imports.task_class in HUEY._registry._periodic_tasks
    assert tasks.recover_interrupted_imports.task_class().validate_datetime(datetime.datetime(2026, 1, 1, 3, 7))
    assert tasks.recover_interrupted_imports.call_local() is None


def test_an_all_or_nothing_import_killed_after_its_commit_says_everything_was_saved(
    users, tmp_path, monkeypatch, client_for
):
    monkeypatch.setattr(importer, "_interrupted_here", lambda job_id: None)

    def die(run, notes):
        raise Killed

    monkeypatch.setattr(importer, "_outcome", die)  # after the transaction committed, before the job row said so
    job = interrupted(users["kam"], csv_file(tmp_path, "机构.csv", INSTITUTIONS), "institutions", "all")
    assert Institution.objects.count() == 5
    importer.recover_interrupted(timezone.now() + LATER)
    text = page(client_for("kam"), job)
    assert "The rows up to row 6 of the file were handled and saved (5 created" in text
    assert "nothing was imported" not in text


def test_a_job_whose_worker_was_killed_on_this_machine_is_marked_at_once(users, client_for):
    """The worker process that ran the import is gone (killed, out of memory): its page says so at the next
    look, instead of showing the progress bar for five more minutes."""
    import json
    import subprocess

    job = running_job(users["kam"], heartbeat_at=timezone.now(), started_at=timezone.now())  # it beat just now
    dead = subprocess.Popen(["true"])
    dead.wait()
    mark = {**importer._process_mark(), "pid": dead.pid, "start": "1"}
    importer.alive_path(job).parent.mkdir(parents=True, exist_ok=True)
    importer.alive_path(job).write_text(json.dumps(mark))
    response = client_for("kam").get(reverse("customers:import-detail", args=[job.pk]), **EN)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert "interrupted" in response.content.decode().lower() or "stopped" in response.content.decode().lower()


def test_a_recent_job_of_a_live_or_unknown_worker_is_left_running(users):
    import json

    live = running_job(users["kam"], heartbeat_at=timezone.now(), started_at=timezone.now())
    importer.alive_path(live).parent.mkdir(parents=True, exist_ok=True)
    importer.alive_path(live).write_text(json.dumps(importer._process_mark()))  # this process: alive
    elsewhere = running_job(users["kam"], heartbeat_at=timezone.now(), started_at=timezone.now())
    other_host = {**importer._process_mark(), "host": "worker-2", "pid": 999999}
    importer.alive_path(elsewhere).write_text(json.dumps(other_host))  # another machine: cannot tell
    assert importer.recover_interrupted() == []
    assert set(ImportJob.objects.values_list("status", flat=True)) == {ImportJob.Status.RUNNING}
