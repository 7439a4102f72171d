"""Session 57 (API QA): day 0 corrected to a moment the server cannot hold is refused under `received_at`."""

from __future__ import annotations

import pytest

from pharmacrm.safety.models import SafetyCase
from tests.api import conftest as api_fixtures

from .conftest import sign_code

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role


@pytest.mark.parametrize(("value", "words"), [("0001-01-01T00:00:00", "日期时间格式错误"), ("0001-01-01", "日期时间格式错误"),
                                              ("1949-12-31T09:00:00+08:00", "日期过早")])
def test_day_0_corrected_to_the_calendars_edge_is_refused_under_received_at(api_for, make_case, users, value, words):
    """0001-01-01 read in Beijing time lies in year 0 in UTC: DRF's field overflowed, a server error (500) where the
    case's own `received_at` answered 400; a day 0 older than any case may have is refused as it is there."""
    case = make_case()
    before = case.received_at

    response = api_for("pv", lang="zh-hans").post(
        f"/api/v1/safety/cases/{case.pk}/day-0/",
        {"received_at": value, "reason": "录入错误", "otp_code": sign_code(users["pv"]), "version": case.version},
        format="json",
    )

    assert response.status_code == 400, response.content
    assert list(response.json()) == ["received_at"]
    assert words in response.json()["received_at"][0]
    assert SafetyCase.objects.get(pk=case.pk).received_at == before


@pytest.mark.parametrize("version", ["abc", "²", "1" * 40])
def test_a_garbled_version_of_a_reporting_rule_is_a_stale_edit(users, version):
    """A reporting rule's version that is no number counts as an old one: a conflict, the rule unchanged."""
    from pharmacrm.customers.services import ConflictError
    from pharmacrm.safety import rules_admin
    from pharmacrm.safety.models import ReportingRule

    rule = ReportingRule.objects.first()
    with pytest.raises(ConflictError):
        rules_admin.update_rule(users["admin"], rule, {"active": not rule.active}, version)
    assert ReportingRule.objects.get(pk=rule.pk).active == rule.active
