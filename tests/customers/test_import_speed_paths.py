"""The import's fast write path: a writer thread beside the reading one, chunks rolled back together,
and key clashes with other users' concurrent saves."""

from __future__ import annotations

import csv
import io
import json
import threading

import pytest
from django.db import connection
from django.utils import translation

from pharmacrm.core import audit
from pharmacrm.customers import importer, search, services
from pharmacrm.customers.models import ImportJob, Person, SearchTerm

GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚华建国志红玉梅文辉鹏飞晓燕俊峰婷雪"


def _people_file(tmp_path, count: int, bad_row: int | None = None):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["姓名", "手机", "外部编号"])
    for i in range(count):
        mobile = "12345" if i == bad_row else f"139{i:08d}"
        writer.writerow([f"测试{GIVEN[i % len(GIVEN)]}{GIVEN[(i * 7) % len(GIVEN)]}", mobile, f"T-{i}"])
    path = tmp_path / "people.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


@pytest.fixture
def writer_threads(monkeypatch):
    """Small chunks so several pass through the writer; records which thread committed each."""
    monkeypatch.setattr(importer, "CHUNK_ROWS", 25)
    names = []
    commit = importer._commit

    def spy(run, items, in_transaction):
        names.append(threading.current_thread().name)
        return commit(run, items, in_transaction)

    monkeypatch.setattr(importer, "_commit", spy)
    return names


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["all", "good"])
def test_the_writer_thread_imports_people_outside_a_transaction(
    users, tmp_path, settings, writer_threads, mode
):
    settings.VAR_DIR = tmp_path
    assert not connection.in_atomic_block
    job = importer.import_file(_people_file(tmp_path, 120), "people", users["kam"], mode=mode)
    assert (job.status, job.created_count, job.processed_rows) == ("done", 120, 120), job.errors
    expected = "import-writer" if importer.writer_thread_possible() else threading.main_thread().name
    assert writer_threads == [expected] * 5  # five chunks, all committed by the writer thread when possible
    people = Person.objects.filter(external_id__startswith="T-")
    assert people.count() == 120
    ids = list(people.values_list("id", flat=True))
    assert (
        SearchTerm.objects.filter(kind=SearchTerm.Kind.PERSON, obj_id__in=ids)
        .values("obj_id")
        .distinct()
        .count()
        == 120
    )
    assert audit.verify().ok
    someone = people.first()
    assert [h.obj for h in search.search(users["kam"], someone.name)][:1] and someone.mobile.startswith("139")


@pytest.mark.django_db(transaction=True)
def test_a_bad_row_in_a_late_chunk_rolls_back_what_the_writer_thread_wrote(
    users, tmp_path, settings, writer_threads
):
    settings.VAR_DIR = tmp_path
    job = importer.import_file(_people_file(tmp_path, 120, bad_row=110), "people", users["kam"], mode="all")
    assert (job.status, job.created_count, job.error_count) == (ImportJob.Status.REJECTED, 0, 1)
    assert [(e["row"], e["code"]) for e in job.errors] == [(112, "invalid_mobile")]
    assert not Person.objects.filter(external_id__startswith="T-").exists()
    assert len(writer_threads) == 5


@pytest.fixture
def someone_saves_the_same_key_meanwhile(monkeypatch, users):
    """Between checking a chunk and writing it, another user creates a person with the file's T-3."""
    prepare = importer._prepare

    def racing(run, raw_rows):
        items = prepare(run, raw_rows)
        services.create_person(users["manager"], {"name": "先到者", "external_id": "T-3"})
        return items

    monkeypatch.setattr(importer, "_prepare", racing)


def test_a_key_saved_by_someone_else_meanwhile_fails_only_that_row_in_good_rows_mode(
    users, tmp_path, settings, someone_saves_the_same_key_meanwhile
):
    settings.VAR_DIR = tmp_path
    job = importer.import_file(_people_file(tmp_path, 6), "people", users["kam"], mode="good")
    assert (job.status, job.created_count, job.error_count) == ("done", 5, 1)
    assert [(e["row"], e["column"], e["code"]) for e in job.errors] == [(5, "外部编号", "conflict")]
    assert Person.objects.get(external_id="T-3").name == "先到者"


def test_a_key_saved_by_someone_else_meanwhile_stops_an_all_or_nothing_import(
    users, tmp_path, settings, someone_saves_the_same_key_meanwhile
):
    settings.VAR_DIR = tmp_path
    job = importer.import_file(_people_file(tmp_path, 6), "people", users["kam"], mode="all")
    assert (job.status, job.created_count) == ("failed", 0)
    assert [m["code"] for m in json.loads(job.message)] == ["import_conflict"]
    # (here the "other user" shares the import's connection, so their row went back with it)
    assert not Person.objects.filter(external_id__startswith="T-").exclude(name="先到者").exists()


@pytest.mark.django_db(transaction=True)
def test_a_good_rows_import_stopped_by_a_database_error_says_what_its_earlier_chunks_saved(
    users, tmp_path, settings, writer_threads, monkeypatch
):
    """Chunks of 25: rows 2–51 were committed when the database failed on the third chunk (a full disk, a lost
    connection). The page said 0 created and no more than "an unexpected error", while 50 people were in."""
    settings.VAR_DIR = tmp_path
    commit, calls = importer._commit, []

    def failing(run, items, in_transaction):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("No space left on device")
        return commit(run, items, in_transaction)

    monkeypatch.setattr(importer, "_commit", failing)
    job = importer.import_file(_people_file(tmp_path, 120), "people", users["kam"], mode="good")
    assert job.status == ImportJob.Status.FAILED
    assert Person.objects.filter(external_id__startswith="T-").count() == 50 == job.created_count
    assert [m["code"] for m in json.loads(job.message)] == ["failed", "stopped_saved", "rerun_people"]
    with translation.override("en"):
        text = " ".join(importer.job_messages(job))
    assert "rows up to row 51 of the file were handled and saved (50 created" in text
