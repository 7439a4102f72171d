"""A sales opportunity's title, competitor, next step and the details of why it was lost, in the rep's words
(联系药剂科李主任 139…): masked for the roles that see personal data masked (the analyst, the auditor) on the board, the
list, the opportunity's page, a customer's block, the Excel export, /api/v1/sales/opportunities/ and the audit trail
(where the title names the opportunity); in clear for the roles that see personal data. A masked editor's masks saved
back are put back as stored."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from pharmacrm.sales import pipeline
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


# an opportunity's title and competitor, in the rep's words too (王主任 139… 引进项目, 竞品代表 li.rival@…)
TITLE = "王主任 139-2222-3333 引进项目"
TITLE_SHOWN = "王主任 139****3333 引进项目"
COMPETITOR = "竞品代表 li.rival@example.com"
COMPETITOR_SHOWN = "竞品代表 l***@example.com"
CLEAR = ("139-2222-3333", "li.rival@example.com")


@pytest.fixture
def titled(pipeline_world):
    rep = pipeline_world["rep"]
    opp = make(rep, pipeline_world["a"], TITLE, 80_000, dt.date(2026, 11, 10), competitor=COMPETITOR)
    return pipeline.update(rep, opp, {"title": TITLE + "（二期）", "competitor": COMPETITOR + "，已报价"}, opp.version)


@pytest.mark.parametrize("role", ["analyst", "auditor"])
def test_title_and_competitor_are_masked_for_roles_that_see_personal_data_masked(
    client_for, api_for, titled, pipeline_world, role  # noqa: F811
):
    client = client_for(role)
    page = client.get(f"/sales/pipeline/{titled.pk}/").content.decode()
    assert TITLE_SHOWN in page and COMPETITOR_SHOWN in page  # the page's title and heading, the details
    texts = [page, client.get("/sales/pipeline/?view=list").content.decode(), client.get("/sales/pipeline/").content.decode(),
             client.get(f"/sales/pipeline/customer/{pipeline_world['a'].pk}/").content.decode()]  # fmt: skip
    assert all(TITLE_SHOWN in text for text in texts), [TITLE_SHOWN in text for text in texts]
    texts.append(_sheet_text(client.get("/sales/pipeline/export.xlsx").content))
    assert TITLE_SHOWN in texts[-1] and COMPETITOR_SHOWN in texts[-1]
    api = api_for(role)
    answer = api.get(f"/api/v1/sales/opportunities/{titled.pk}/").json()
    assert answer["title"].startswith(TITLE_SHOWN) and answer["competitor"].startswith(COMPETITOR_SHOWN)
    texts += [str(answer), str(api.get("/api/v1/sales/opportunities/").json())]
    query = {"object_type": "sales.opportunity", "object_id": titled.pk}
    audit_page = client_for("auditor").get("/accounts/audit/", query).content.decode()
    audit_api = api_for("auditor").get("/api/v1/audit/", query).json()["results"]
    assert TITLE_SHOWN in audit_page and COMPETITOR_SHOWN in audit_page
    assert all(e["object_repr"].startswith(TITLE_SHOWN) for e in audit_api)  # the entries' names
    texts += [audit_page, str(audit_api)]
    for text in texts:
        assert not any(clear in text for clear in CLEAR)


def test_title_and_competitor_are_read_as_typed_by_roles_that_see_personal_data(
    client_for, api_for, titled  # noqa: F811
):
    page = client_for("rep").get(f"/sales/pipeline/{titled.pk}/").content.decode()
    assert TITLE in page and COMPETITOR in page
    sheet = _sheet_text(client_for("manager").get("/sales/pipeline/export.xlsx").content)
    assert TITLE in sheet and COMPETITOR in sheet
    answer = api_for("rep").get(f"/api/v1/sales/opportunities/{titled.pk}/").json()
    assert (answer["title"], answer["competitor"]) == (TITLE + "（二期）", COMPETITOR + "，已报价")
    query = {"object_type": "sales.opportunity", "object_id": titled.pk}
    audit_api = api_for("admin").get("/api/v1/audit/", query).json()["results"]
    assert all(e["object_repr"].startswith(TITLE) for e in audit_api) and COMPETITOR in str(audit_api)


@pytest.fixture
def agents_work_the_pipeline(monkeypatch):
    """A deployment that lets its service agents, who see personal data masked, work opportunities too."""
    from pharmacrm.core import access
    from pharmacrm.core.roles import MATRIX, Cap, Role

    monkeypatch.setitem(MATRIX, Cap.WORK_PIPELINE, MATRIX[Cap.WORK_PIPELINE] | {Role.AGENT})
    access._capabilities_of.cache_clear()
    yield
    access._capabilities_of.cache_clear()


def test_a_masked_editor_saving_the_masked_texts_keeps_the_stored_details(
    agents_work_the_pipeline, client_for, api_for, users, pipeline_world  # noqa: F811
):
    agent = users["agent"]
    opp = pipeline.create(users["manager"], {"institution": pipeline_world["a"], "title": TITLE, "amount_fen": 100,
                                             "close_date": dt.date(2026, 12, 31), "owner": agent, "team": None,
                                             "competitor": COMPETITOR, "next_step": NEXT})  # fmt: skip
    client = client_for("agent")
    form = client.get(f"/sales/pipeline/{opp.pk}/edit/").content.decode()
    assert TITLE_SHOWN in form and COMPETITOR_SHOWN in form and NEXT_SHOWN in form
    assert not any(clear in form for clear in (*CLEAR, "139-1234-5678"))
    answer = client.post(f"/sales/pipeline/{opp.pk}/edit/", {
        "title": TITLE_SHOWN + "（二期）", "competitor": COMPETITOR_SHOWN, "next_step": NEXT_SHOWN,
        "amount_fen": "2", "close_date": "2026-12-31", "owner": agent.pk, "version": opp.version,
    })  # fmt: skip
    assert answer.status_code == 302, answer.content.decode()[:2000]
    opp.refresh_from_db()
    assert (opp.title, opp.competitor, opp.next_step, opp.amount_fen) == (TITLE + "（二期）", COMPETITOR, NEXT, 200)
    api = api_for("agent")
    shown = api.get(f"/api/v1/sales/opportunities/{opp.pk}/").json()
    answer = api.patch(f"/api/v1/sales/opportunities/{opp.pk}/", {"title": shown["title"] + "，已签约",
                                                                   "version": shown["version"]}, format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    answer = api.post(f"/api/v1/sales/opportunities/{opp.pk}/move/", {
        "stage": "needs", "next_step": answer.json()["next_step"], "version": answer.json()["version"],
    }, format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    opp.refresh_from_db()
    assert (opp.title, opp.next_step, opp.stage) == (TITLE + "（二期），已签约", NEXT, "needs")
