"""Session 40: reopening a case that misses a minimum criterion re-plans its stale clocks as it does a valid case's; a
drug started or stopped in the future is refused."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.safety import services
from pharmacrm.safety.models import ReportingRule, SafetyCase, SafetyClock
from tests.api import conftest as api_fixtures

from .conftest import COMPLETE

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role

# --- 1. reopening a case that misses a minimum criterion ------------------------------------------------------------

FATAL = [{**COMPLETE["reactions"][0], "outcome": "5", "death": True}]
NO_REPORTER = {"reporter_name": "", "reporter_contact": "", "reporter_institution": "", "reporter_qualification": ""}


def _clocks(case) -> list[tuple]:
    """(rule, version, met, stopped) of every clock of the case."""
    return sorted((c.rule.code, c.case_version.sequence, c.met_at is not None, c.stopped_at is not None)
                  for c in SafetyClock.objects.filter(case=case).select_related("rule", "case_version"))


def _death_abroad_missing_its_reporter(make_case, users, *, closed: bool = True) -> SafetyCase:
    """A death in the United States received three days ago under the rules as shipped before safety 0014 (CN-DEATH
    and CN-DEATH-INVESTIGATION for every death), whose reporter a mistaken correction then emptied: the case misses a
    minimum criterion and keeps the clocks it had (a valid case's clocks stay owed through such an edit). `closed`:
    closed with a reason before the rules became what they are now (the migration leaves a closed case alone)."""
    old_rules = ReportingRule.objects.filter(code__in=["CN-DEATH", "CN-DEATH-INVESTIGATION"])
    old_rules.update(condition="death")
    case = make_case(country="US", received_at=timezone.now() - dt.timedelta(days=3), reactions=FATAL)
    case = services.update_case(users["pv"], case, NO_REPORTER, version=case.version)
    assert not case.valid and case.missing == ["reporter"]
    if closed:
        services.set_status(users["pv"], case, "closed", reason="重复报告，已在总部数据库处理", version=case.version)
    old_rules.update(condition="death_domestic")  # the rules as they are now
    assert _clocks(case) == [("CN-DEATH", 0, False, closed), ("CN-DEATH-INVESTIGATION", 0, False, closed)]
    case.refresh_from_db()
    return case


@pytest.mark.parametrize("how", ["status", "follow-up"])
def test_reopening_a_death_abroad_that_misses_its_reporter_owes_the_15_day_report_not_the_24_hour_one(
        api_for, make_case, users, how):
    """Reopening re-plans the clocks the rules no longer give a case (session 39) — but not of a case missing a minimum
    criterion: its re-plan did nothing (an invalid case plans no clock), so China's 24-hour death report and the death
    investigation were watched again, overdue at once, and the audit entry named them as the clocks it owed. The case
    was valid when those clocks started, so a report stays owed (as through the edit that emptied the reporter): the
    one the rules give it now, the serious case from abroad in 15 days from the same receipt."""
    case = _death_abroad_missing_its_reporter(make_case, users)
    client = api_for("pv")
    if how == "status":
        response = client.post(f"/api/v1/safety/cases/{case.pk}/status/",
                               {"status": "assessing", "reason": "总部要求重新评估", "version": case.version},
                               format="json")  # fmt: skip
        assert response.status_code == 200, response.content
    else:
        response = client.post(f"/api/v1/safety/cases/{case.pk}/follow-ups/",
                               {"follow_up_received_at": timezone.now().replace(microsecond=0).isoformat(),
                                "summary": "尸检报告", "narrative": "尸检报告：过敏性休克", "version": case.version},
                               format="json")  # fmt: skip
        assert response.status_code == 201, response.content
    case.refresh_from_db()
    assert case.status == "assessing" and not case.valid  # still missing its reporter: the follow-up owes nothing yet
    assert _clocks(case) == [("CN-FOREIGN-SERIOUS", 0, False, False)]
    [clock] = SafetyClock.objects.filter(case=case)
    assert clock.started_at == case.received_at
    assert timezone.localtime(clock.due_at).date() == timezone.localtime(case.received_at).date() + dt.timedelta(days=15)
    body = client.get(f"/api/v1/safety/cases/{case.pk}/").json()
    assert body["overdue"] is False

    entry = AuditEntry.objects.filter(object_type="safety.safetycase", object_id=str(case.pk),
                                      action=AuditEntry.Action.UPDATE).latest("id")  # fmt: skip
    assert entry.changes["status"] == ["closed", "assessing"]
    before, after = entry.changes["clocks"]
    assert [c.split()[0] for c in before] == ["CN-DEATH", "CN-DEATH-INVESTIGATION"]
    assert [c.split()[0] for c in after] == ["CN-FOREIGN-SERIOUS"]


def test_an_open_death_abroad_that_misses_its_reporter_is_replanned_once(make_case, users):
    """`pharmacrm safety replan-foreign-deaths` (and the migrate that runs it) counted such a case as changed and
    wrote an audit entry on every run, the clocks before and after the same: it still owed the 24-hour report."""
    case = _death_abroad_missing_its_reporter(make_case, users, closed=False)
    assert services.replan_foreign_deaths(reason="safety 0014") == 1
    assert _clocks(case) == [("CN-FOREIGN-SERIOUS", 0, False, False)]
    entry = AuditEntry.objects.filter(object_type="safety.safetycase", object_id=str(case.pk)).latest("id")
    assert [[c.split()[0] for c in side] for side in entry.changes["clocks"]] == [
        ["CN-DEATH", "CN-DEATH-INVESTIGATION"], ["CN-FOREIGN-SERIOUS"]]
    entries = AuditEntry.objects.count()
    assert services.replan_foreign_deaths(reason="again") == 0  # run again: nothing left to change
    assert AuditEntry.objects.count() == entries


def test_a_death_whose_reactions_an_edit_emptied_keeps_its_clocks_when_reopened(make_case, users):
    """A death in China whose reactions a mistaken correction took away: nothing says any more that it is fatal or
    serious, which is what the rules go by, so its clocks stay as they were (as through the edit) — reopened, the
    24-hour report and the investigation run again, not a 30-day clock for a case of nothing serious."""
    case = make_case(country="CN", received_at=timezone.now() - dt.timedelta(days=3), reactions=FATAL)
    planned = sorted(SafetyClock.objects.filter(case=case).values_list("pk", "rule__code", "due_at"))
    case = services.update_case(users["pv"], case, {"reactions": []}, version=case.version)
    assert not case.valid and "reaction" in case.missing and not case.fatal
    services.set_status(users["pv"], case, "closed", reason="录入错误，待核实", version=case.version)
    case.refresh_from_db()
    services.set_status(users["pv"], case, "assessing", reason="核实后重新评估", version=case.version)
    assert sorted(SafetyClock.objects.filter(case=case, stopped_at__isnull=True, met_at__isnull=True)
                  .values_list("pk", "rule__code", "due_at")) == planned  # fmt: skip
    entry = AuditEntry.objects.filter(object_type="safety.safetycase", object_id=str(case.pk)).latest("id")
    assert entry.changes == {"status": ["closed", "assessing"]}
