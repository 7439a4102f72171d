"""Session 39: reopening a case re-plans its clocks under the current rules (a death abroad closed before safety 0014
does not get China's 24-hour death clock back)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety import services
from pharmacrm.safety.models import ReportingRule, SafetyCase, SafetyClock
from tests.api import conftest as api_fixtures

from .conftest import COMPLETE

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role

# --- 1. reopening a closed death abroad ----------------------------------------------------------------------------

FATAL = [{**COMPLETE["reactions"][0], "outcome": "5", "death": True}]


def _closed_death_abroad(make_case, users, *, reported: bool = False) -> SafetyCase:
    """A death in the United States received three days ago and closed (with a reason) under the rules as shipped
    before safety 0014, so it holds stopped CN-DEATH and CN-DEATH-INVESTIGATION clocks — the migration leaves a
    closed case as it is. `reported`: the 24-hour report was sent before closing."""
    old_rules = ReportingRule.objects.filter(code__in=["CN-DEATH", "CN-DEATH-INVESTIGATION"])
    old_rules.update(condition="death")
    case = make_case(country="US", received_at=timezone.now() - dt.timedelta(days=3), reactions=FATAL)
    if reported:
        SafetyClock.objects.filter(case=case, rule__code="CN-DEATH").update(
            met_at=case.received_at + dt.timedelta(hours=20), next_check_at=None)
    case.refresh_from_db()
    services.set_status(users["pv"], case, "closed", reason="重复报告，已在总部数据库处理")
    old_rules.update(condition="death_domestic")  # the rules as they are now
    assert sorted(SafetyClock.objects.filter(case=case, stopped_at__isnull=False).values_list("rule__code", flat=True)
                  ) == (["CN-DEATH-INVESTIGATION"] if reported else ["CN-DEATH", "CN-DEATH-INVESTIGATION"])
    case.refresh_from_db()
    return case


def _api_clocks(api_for, case) -> list[tuple]:
    body = api_for("pv").get(f"/api/v1/safety/cases/{case.pk}/").json()
    return sorted((c["rule"], c["version"], c["met_at"] is not None) for c in body["clocks"])


@pytest.mark.parametrize("how", ["status", "follow-up"])
def test_reopening_a_death_abroad_closed_before_0014_owes_the_15_day_report_not_the_24_hour_one(
        api_for, client_for, make_case, users, how):
    """A death abroad closed before safety 0014 still held China's stopped 24-hour death clock and death investigation.
    Reopened (by the status change or by a follow-up), it had both watched again: overdue at once on the case page,
    in the API and in the overdue list, the officers warned of a report China's rules no longer ask for it. Reopened
    now, it owes what the rules give it today: the serious case from abroad in 15 days from the same receipt; the
    audit entry of the reopening names the stopped clocks it held and the clocks it owes now."""
    case = _closed_death_abroad(make_case, users)
    client = api_for("pv")
    if how == "status":
        response = client.post(f"/api/v1/safety/cases/{case.pk}/status/",
                               {"status": "assessing", "reason": "总部要求重新评估", "version": case.version},
                               format="json")  # fmt: skip
        assert response.status_code == 200, response.content
        expected = [("CN-FOREIGN-SERIOUS", 0, False)]
    else:
        response = client.post(f"/api/v1/safety/cases/{case.pk}/follow-ups/",
                               {"follow_up_received_at": timezone.now().replace(microsecond=0).isoformat(),
                                "summary": "尸检报告", "narrative": "尸检报告：过敏性休克", "version": case.version},
                               format="json")  # fmt: skip
        assert response.status_code == 201, response.content
        expected = [("CN-FOREIGN-SERIOUS", 0, False), ("CN-FOREIGN-SERIOUS", 1, False)]
    case.refresh_from_db()
    assert case.status == "assessing"

    assert _api_clocks(api_for, case) == expected
    [v0] = SafetyClock.objects.filter(case=case, case_version__sequence=0)
    assert v0.stopped_at is None and v0.next_check_at is not None  # watched: warned of, then overdue, in time
    assert timezone.localtime(v0.due_at).date() == timezone.localtime(case.received_at).date() + dt.timedelta(days=15)
    body = client.get(f"/api/v1/safety/cases/{case.pk}/").json()
    assert body["overdue"] is False and body["next_due_at"] is not None

    page = client_for("pv").get(reverse("safety:case", args=[case.pk])).content.decode()
    clocks = re.search(r'id="clock-table".*?</table>', page, re.S).group(0)
    assert "境外发生的严重不良反应" in clocks and "死亡病例" not in clocks
    assert 'data-sla="breached"' not in clocks and 'data-sla="stopped"' not in clocks
    overdue = client_for("pv").get(reverse("safety:cases"), {"overdue": "on"}).content.decode()
    table = re.search(r'class="table case-table".*?</table>', overdue, re.S)
    assert table is None or case.number not in table.group(0)

    entry = AuditEntry.objects.filter(object_type="safety.safetycase", object_id=str(case.pk),
                                      action=AuditEntry.Action.UPDATE).latest("id")  # fmt: skip
    assert entry.changes["status"] == ["closed", "assessing"]
    before, after = entry.changes["clocks"]
    assert [c.split()[0] for c in before] == ["CN-DEATH", "CN-DEATH-INVESTIGATION"]
    assert [c.split()[0] for c in after] == ["CN-FOREIGN-SERIOUS"]  # (the follow-up's own is planned after)


def test_reopening_a_death_abroad_whose_report_was_sent_owes_no_second_report(api_for, make_case, users):
    """Its 24-hour report was sent before closing: it stands, and reopening owes no second report of that version
    and no investigation (nobody owes it for a death abroad)."""
    case = _closed_death_abroad(make_case, users, reported=True)
    response = api_for("pv").post(f"/api/v1/safety/cases/{case.pk}/status/",
                                  {"status": "assessing", "reason": "总部要求重新评估", "version": case.version},
                                  format="json")  # fmt: skip
    assert response.status_code == 200, response.content
    assert _api_clocks(api_for, case) == [("CN-DEATH", 0, True)]
    case.refresh_from_db()
    assert case.status == "assessing" and response.json()["next_due_at"] is None


def test_reopening_a_case_the_rules_still_cover_restarts_its_clocks_as_before(make_case, users):
    """A death in China closed without its report: reopened, the 24-hour report and the investigation run again,
    unchanged (the same clocks, the same deadlines), and the audit entry has no clock change to tell."""
    case = make_case(country="CN", received_at=timezone.now() - dt.timedelta(days=3), reactions=FATAL)
    planned = sorted(SafetyClock.objects.filter(case=case).values_list("pk", "rule__code", "due_at"))
    services.set_status(users["pv"], case, "closed", reason="重复报告")
    case.refresh_from_db()
    services.set_status(users["pv"], case, "assessing", reason="非重复", version=case.version)
    assert sorted(SafetyClock.objects.filter(case=case, stopped_at__isnull=True, met_at__isnull=True)
                  .values_list("pk", "rule__code", "due_at")) == planned  # fmt: skip
    entry = AuditEntry.objects.filter(object_type="safety.safetycase", object_id=str(case.pk)).latest("id")
    assert entry.changes == {"status": ["closed", "assessing"]}
