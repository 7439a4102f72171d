"""Looking customers up by a whole phone number or e-mail address, for users who see personal data masked (found by
QA in session 56): each look-up is in the audit trail (the number masked), and beyond the hourly limit it is
refused, saying why — a masked 139****2390 hides four digits, and ten thousand unaudited searches told the number.
Users who see personal data in clear are neither limited nor audited for it; a search by name is never counted."""

from __future__ import annotations

import pytest

from pharmacrm.core.models import AuditEntry
from tests.api.conftest import api_for  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def limit_of_three(settings):
    settings.PHARMACRM_CONTACT_LOOK_UPS_PER_HOUR = 3


def look_ups() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=AuditEntry.Action.READ_PERSONAL, object_repr="search").order_by("seq"))


def test_a_masked_role_is_audited_and_limited_on_the_api_and_the_pages(xiehe, api_for, client_for, limit_of_three):  # noqa: F811
    analyst = api_for("analyst")
    for number in ("13800138000", "13800138001", "zhangwei@example.com"):
        assert analyst.get("/api/v1/search/", {"q": number}).status_code == 200
    assert analyst.get("/api/v1/search/", {"q": "张伟"}).status_code == 200  # by name: not counted
    refused = analyst.get("/api/v1/search/", {"q": "13800138002"})
    assert refused.status_code == 403 and "3 times this hour" in refused.json()["detail"]
    entries = look_ups()
    assert [(e.extra["purpose"], e.extra["q"], e.extra["refused"]) for e in entries] == [
        ("search by phone", "138****8000", False), ("search by phone", "138****8001", False),
        ("search by email", "z***@example.com", False), ("search by phone", "138****8002", True)]  # fmt: skip
    trail = str(list(AuditEntry.objects.values_list("extra", "changes", "object_repr")))
    assert "13800138000" not in trail and "zhangwei@example.com" not in trail
    # the agent on the search page: the same limit, its own count
    agent = client_for("agent")
    for number in ("13800138000", "13800138001", "13800138002"):
        assert agent.get("/customers/search/", {"q": number}).status_code == 200
    page = agent.get("/customers/search/", {"q": "13800138003"}, HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 403 and "times this hour" in page.content.decode()


def test_a_role_that_sees_personal_data_is_neither_limited_nor_audited_for_it(xiehe, api_for, limit_of_three):  # noqa: F811
    manager = api_for("manager")
    for i in range(5):
        r = manager.get("/api/v1/search/", {"q": f"1380013800{i}"})
        assert r.status_code == 200
    assert [h["name"] for h in manager.get("/api/v1/search/", {"q": "13800138000"}).json()["results"]] == ["张伟"]
    assert look_ups() == []
