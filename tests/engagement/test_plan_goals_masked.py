"""An annual communication plan's goal and its lines' notes, written by a manager (重点联系药剂科王主任 139…): masked
for the roles that see personal data masked on the plans' page, in /api/v1/communication-plans/ and in the audit trail
(the lines, kept whole before and after); in clear for the roles that see personal data."""

from __future__ import annotations

import pytest

from pharmacrm.engagement import plans
from tests.api.conftest import api_for  # noqa: F401  (fixture)

from .test_communication_plans import YEAR, _plan

pytestmark = pytest.mark.django_db

GOAL = "了解用药需求，重点联系药剂科王主任 139-1234-5678"
NOTE = "电话前先发邮件 li.na@example.com"


@pytest.fixture
def plan(users):
    plan = _plan(users["manager"], goal=GOAL)
    data = {"year": YEAR, "klass": "A", "goal": GOAL, "lines": [{"channel": "visit", "minimum": 1, "period": "year",
                                                                  "note": NOTE}]}  # fmt: skip
    return plans.save_plan(users["manager"], data, plan, version=plan.version)


@pytest.mark.parametrize("role", ["agent", "analyst"])
def test_a_plans_goal_and_notes_are_masked_for_roles_that_see_personal_data_masked(
    client_for, api_for, plan, role  # noqa: F811
):
    page = client_for(role).get("/interactions/plans/", {"year": YEAR}).content.decode()
    assert "王主任 139****5678" in page and "l***@example.com" in page
    shown = api_for(role).get(f"/api/v1/communication-plans/{plan.pk}/").json()
    assert shown["goal"] == "了解用药需求，重点联系药剂科王主任 139****5678"
    assert shown["lines"][0]["note"] == "电话前先发邮件 l***@example.com"
    texts = [page, str(shown), str(api_for(role).get("/api/v1/communication-plans/").json())]
    query = {"object_type": "engagement.communicationplan", "object_id": plan.pk}
    texts += [client_for("auditor").get("/accounts/audit/", query).content.decode(),
              str(api_for("auditor").get("/api/v1/audit/", query).json()["results"])]  # fmt: skip
    assert "l***@example.com" in texts[-1] and "139****5678" in texts[-1]
    for text in texts:
        assert "139-1234-5678" not in text and "li.na@example.com" not in text


def test_a_plans_goal_and_notes_are_read_as_typed_by_roles_that_see_personal_data(client_for, api_for, plan):  # noqa: F811
    page = client_for("manager").get("/interactions/plans/", {"year": YEAR}).content.decode()
    assert "139-1234-5678" in page and "li.na@example.com" in page
    shown = api_for("rep").get(f"/api/v1/communication-plans/{plan.pk}/").json()
    assert (shown["goal"], shown["lines"][0]["note"]) == (GOAL, NOTE)
    query = {"object_type": "engagement.communicationplan", "object_id": plan.pk}
    assert "li.na@example.com" in client_for("admin").get("/accounts/audit/", query).content.decode()
