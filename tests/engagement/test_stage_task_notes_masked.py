"""A stage task's note is what was done (电话联系 139…), the notes of the interaction marking it done records: the roles
that see personal data masked read the interaction's notes masked, and read the note masked alike — in the stage
tasks' export and GET /api/v1/engagement/stage-tasks/ — where it reached the auditor in clear."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook

from pharmacrm.engagement import playbook
from tests.engagement.test_stage_pages import _hospital, _tasks

pytestmark = pytest.mark.django_db

NOTE = "已电话联系 139-1234-5678，资料发至 li.buyer@example.com"
SHOWN = "已电话联系 139****5678，资料发至 l***@example.com"
EXPORT = "/interactions/stage-tasks/export.xlsx?scope=all&status=done"


@pytest.fixture
def done_task(users):
    inst = _hospital(users["rep"])
    task = _tasks(inst)[0]
    playbook.complete(users["rep"], task, note=NOTE, channel="phone", version=task.version)
    task.refresh_from_db()
    assert task.note == NOTE
    return task


def _notes(response) -> list:
    book = load_workbook(io.BytesIO(response.content))
    header = [c.value for c in book.active[1]]
    return [row[header.index("Note")].value for row in book.active.iter_rows(min_row=2)]


def test_the_auditor_reads_the_note_masked_in_the_export_and_the_api(client_for, done_task):
    client = client_for("auditor")
    assert SHOWN in _notes(client.get(EXPORT, HTTP_ACCEPT_LANGUAGE="en"))
    [task] = [t for t in client.get("/api/v1/engagement/stage-tasks/").json()["results"] if t["id"] == done_task.pk]
    assert task["note"] == SHOWN
    interaction = client.get(f"/api/v1/interactions/{done_task.interaction_id}/").json()
    assert "139****5678" in interaction["notes"] and "139-1234-5678" not in interaction["notes"]


def test_the_manager_and_the_administrator_read_it_as_typed(client_for, done_task):
    for role in ("manager", "admin"):
        client = client_for(role)
        assert NOTE in _notes(client.get(EXPORT, HTTP_ACCEPT_LANGUAGE="en"))
        [task] = [t for t in client.get("/api/v1/engagement/stage-tasks/").json()["results"] if t["id"] == done_task.pk]
        assert task["note"] == NOTE
