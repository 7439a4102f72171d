"""A sales opportunity's next step and the details of why it was lost, in the rep's words (联系药剂科李主任 139…):
masked for the roles that see personal data masked (the analyst, the auditor) on the board, the list, the opportunity's
page, the Excel export, /api/v1/sales/opportunities/ and the audit trail; in clear for the roles that see personal
data."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from pharmacrm.sales.models import Opportunity
from tests.api.conftest import api_for  # noqa: F401  (fixture)

from .pipeline_world import go, make

pytestmark = pytest.mark.django_db

S = Opportunity.Stage
NEXT = "周五前联系药剂科李主任 139-1234-5678"
NEXT_SHOWN = "周五前联系药剂科李主任 139****5678"
LOST = "对方改用竞品，采购科邮件li.na@example.com确认"
LOST_SHOWN = "对方改用竞品，采购科邮件l***@example.com确认"


@pytest.fixture
def noted(pipeline_world):
    rep = pipeline_world["rep"]
    open_one = make(rep, pipeline_world["a"], "甲 心内科 新品进院", 100_000, dt.date(2026, 11, 10), next_step=NEXT)
    lost = make(rep, pipeline_world["a"], "甲 药剂科 扩量", 50_000, dt.date(2026, 11, 20), stage=S.PROPOSAL)
    lost = go(rep, lost, S.LOST, lost_reason="other", lost_note=LOST, today=dt.date(2026, 12, 1))
    return open_one, lost


def _sheet_text(content: bytes) -> str:
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(content)).active
    return " ".join(str(c) for row in sheet.iter_rows(values_only=True) for c in row if c is not None)


@pytest.mark.parametrize("role", ["analyst", "auditor"])
def test_next_step_and_lost_note_are_masked_for_roles_that_see_personal_data_masked(
    client_for, api_for, noted, role  # noqa: F811
):
    open_one, lost = noted
    client = client_for(role)
    texts = [client.get(f"/sales/pipeline/{open_one.pk}/").content.decode(),
             client.get(f"/sales/pipeline/{lost.pk}/").content.decode(),
             client.get("/sales/pipeline/?view=list").content.decode(),
             client.get("/sales/pipeline/").content.decode()]  # fmt: skip
    assert NEXT_SHOWN in texts[0] and LOST_SHOWN in texts[1] and NEXT_SHOWN in texts[2]
    export = client.get("/sales/pipeline/export.xlsx")
    assert export.status_code == 200
    texts.append(_sheet_text(export.content))
    assert NEXT_SHOWN in texts[-1] and LOST_SHOWN in texts[-1]
    api = api_for(role)
    assert api.get(f"/api/v1/sales/opportunities/{open_one.pk}/").json()["next_step"] == NEXT_SHOWN
    assert api.get(f"/api/v1/sales/opportunities/{lost.pk}/").json()["lost_note"] == LOST_SHOWN
    texts.append(str(api.get("/api/v1/sales/opportunities/").json()))
    for opp in (open_one, lost):
        query = {"object_type": "sales.opportunity", "object_id": opp.pk}
        texts.append(client_for("auditor").get("/accounts/audit/", query).content.decode())
        texts.append(str(api_for("auditor").get("/api/v1/audit/", query).json()["results"]))
    assert "l***@example.com" in texts[-1] and "139****5678" in texts[-3]
    for text in texts:
        assert "139-1234-5678" not in text and "li.na@example.com" not in text


def test_next_step_and_lost_note_are_read_as_typed_by_roles_that_see_personal_data(
    client_for, api_for, noted  # noqa: F811
):
    open_one, lost = noted
    assert NEXT in client_for("rep").get(f"/sales/pipeline/{open_one.pk}/").content.decode()
    assert LOST in client_for("manager").get(f"/sales/pipeline/{lost.pk}/").content.decode()
    sheet = _sheet_text(client_for("manager").get("/sales/pipeline/export.xlsx").content)
    assert NEXT in sheet and LOST in sheet
    assert api_for("rep").get(f"/api/v1/sales/opportunities/{lost.pk}/").json()["lost_note"] == LOST
    query = {"object_type": "sales.opportunity", "object_id": lost.pk}
    assert "li.na@example.com" in client_for("admin").get("/accounts/audit/", query).content.decode()
