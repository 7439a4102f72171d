"""Contact details typed into a stage task's note (what was done) or the reason it was skipped (王主任 139-1234-5678)
were shown in clear to the roles that see personal data masked (the auditor reads every task; an agent their own):
they are masked on the task list, in the API, the Excel export and the audit trail, as an interaction's notes are;
the owner who sees personal data reads them as typed, and what is stored is not changed."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook

from pharmacrm.core.models import AuditEntry
from pharmacrm.engagement import playbook
from pharmacrm.engagement.models import StageTask
from tests.api.conftest import api_for  # noqa: F401  (fixture)

from .test_stage_pages import _hospital, _tasks

pytestmark = pytest.mark.django_db

NOTE = "已联系药剂科王主任 139-1234-5678"
REASON = "客户要求改约，联系人邮箱li.na@example.com"
ALL = {"scope": "all", "status": "any"}  # every task the reader may see, done and skipped too
CLEAR = ("139-1234-5678", "li.na@example.com")


def _clear_in(text: str) -> bool:
    return any(v in text for v in CLEAR)


@pytest.fixture
def worked(users):
    inst = _hospital(users["rep"])
    first, second = _tasks(inst)
    playbook.complete(users["rep"], first, note=NOTE, version=first.version)
    playbook.skip(users["rep"], second, reason=REASON, version=second.version)
    return first, second


def test_the_list_api_and_export_mask_them_for_the_auditor(client_for, api_for, worked):  # noqa: F811
    done, skipped = worked
    auditor = client_for("auditor")
    page = auditor.get("/interactions/stage-tasks/", ALL).content.decode()
    assert "l***@example.com" in page and not _clear_in(page)
    rows = {r["id"]: r for r in api_for("auditor").get("/api/v1/engagement/stage-tasks/").json()["results"]}
    assert rows[done.pk]["note"] == "已联系药剂科王主任 139****5678"
    assert rows[skipped.pk]["reason"] == "客户要求改约，联系人邮箱l***@example.com"
    book = load_workbook(io.BytesIO(auditor.get("/interactions/stage-tasks/export.xlsx", ALL).content))
    cells = " ".join(str(c.value) for row in book.active.iter_rows() for c in row if c.value is not None)
    assert "139****5678" in cells and "l***@example.com" in cells and not _clear_in(cells)
    assert StageTask.objects.get(pk=done.pk).note == NOTE  # what is stored is not changed


def test_the_owner_who_sees_personal_data_reads_them_as_typed(client_for, api_for, worked):  # noqa: F811
    done, skipped = worked
    assert REASON in client_for("rep").get("/interactions/stage-tasks/", ALL).content.decode()
    rows = {r["id"]: r for r in api_for("rep").get("/api/v1/engagement/stage-tasks/").json()["results"]}
    assert (rows[done.pk]["note"], rows[skipped.pk]["reason"]) == (NOTE, REASON)
    book = load_workbook(io.BytesIO(client_for("rep").get("/interactions/stage-tasks/export.xlsx", ALL).content))
    assert NOTE in [c.value for row in book.active.iter_rows() for c in row]


def test_the_audit_trail_masks_the_reason_for_the_auditor(client_for, api_for, worked):  # noqa: F811
    _done, skipped = worked
    query = {"object_type": "engagement.stagetask", "object_id": skipped.pk}
    page = client_for("auditor").get("/accounts/audit/", query).content.decode()
    assert "l***@example.com" in page and not _clear_in(page)
    rows = api_for("auditor").get("/api/v1/audit/", query).json()["results"]
    assert [r["extra"]["reason"] for r in rows if "reason" in r["extra"]] == ["客户要求改约，联系人邮箱l***@example.com"]
    assert "li.na@example.com" in client_for("admin").get("/accounts/audit/", query).content.decode()
    assert AuditEntry.objects.get(object_type="engagement.stagetask", object_id=str(skipped.pk)).extra["reason"] == REASON
