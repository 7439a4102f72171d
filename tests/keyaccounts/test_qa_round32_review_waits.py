"""Thirty-second session: key-account evaluations stored before session 31 still counted the time a ticket waited on
the customer in their response and resolution times. Migration 0015 notes them; after `migrate`, `pharmacrm
reviews recompute-waits` recomputes them with today's rule — audited, once (a second run changes nothing), and
never an evaluation whose figures are right already."""

from __future__ import annotations

import datetime as dt
import importlib
import io
import types
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection

from pharmacrm.core.models import AuditEntry
from pharmacrm.keyaccounts import apps as keyaccounts_apps
from pharmacrm.keyaccounts import scoring, services
from pharmacrm.keyaccounts.models import AccountReview, KeyAccount

from .eval_fixtures import *  # noqa: F403  (fixtures)
from .programme_fixtures import *  # noqa: F403  (fixtures)
from .test_kascore_fixes import _account_with_a_ticket

pytestmark = pytest.mark.django_db


def _reviewed_with_three_days_waiting(users, institution, with_plan, subject) -> AccountReview:
    """The account's last quarter: one ticket, an hour to pick it up, an hour later the agent asks for the batch
    number, the customer sends it three days later, resolved two hours after that (4 h as the desk counts it)."""
    from pharmacrm.servicedesk import services as desk

    account, period, received, ticket = _account_with_a_ticket(users, institution, with_plan, subject)
    steps = (("in_progress", dt.timedelta(hours=1), {}), ("waiting", dt.timedelta(hours=2), {}),
             ("in_progress", dt.timedelta(days=3, hours=2), {}),
             ("resolved", dt.timedelta(days=3, hours=4), {"resolution_summary": "已答复", "root_cause": "other"}))  # fmt: skip
    for status, after, extra in steps:
        ticket = desk.transition(users["agent"], ticket, status, at=received + after, **extra)
    return services.review_account(KeyAccount.objects.get(pk=account.pk), period)


def _as_stored_before_session_31(review: AccountReview) -> AccountReview:
    """The row as the evaluation wrote it before session 31: 76 hours both (the three days counted), the two
    measures and the score made of them."""
    components = [dict(c) for c in review.components]
    for c in components:
        if c["name"] in ("response", "resolution"):
            target = Decimal(24) if c["name"] == "response" else Decimal(48)
            c["value"] = str(scoring.q2(min(Decimal(100), target / Decimal("76.00") * 100)))
            c["contribution"] = str(scoring.q2(Decimal(c["value"]) * Decimal(c["weight"])))
    score = sum((Decimal(c["contribution"]) for c in components), Decimal(0))
    AccountReview.objects.filter(pk=review.pk).update(
        avg_response_hours=Decimal("76.00"), avg_resolution_hours=Decimal("76.00"), components=components, score=score
    )
    return AccountReview.objects.get(pk=review.pk)


def _audited(review) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(object_type="keyaccounts.accountreview", object_id=str(review.pk),
                                          extra__reason=services.RECOMPUTE_REASON))  # fmt: skip


def test_evaluations_stored_before_session_31_are_recomputed_after_migrate_once_and_audited(
    users, xiehe, huashan, with_plan
):
    """An account's evaluation of last quarter said 76 hours to resolve where the desk's clock said 4 (three days
    waiting on the customer counted), with a score to match: session 31 changed the rule, not the stored rows.
    After `migrate` it reads 4 hours and the score of today's rule, the change is in the audit trail; a second run
    changes nothing, and another account's evaluation computed with today's rule is left as it was."""
    fresh = _reviewed_with_three_days_waiting(users, xiehe, with_plan, "批号咨询")
    expected = (fresh.avg_response_hours, fresh.avg_resolution_hours, fresh.score, fresh.components)
    assert expected[:2] == (Decimal("4.00"), Decimal("4.00"))
    stale = _as_stored_before_session_31(fresh)
    assert stale.score < fresh.score
    right = _reviewed_with_three_days_waiting(users, huashan, with_plan, "资料补充")
    right_before = AccountReview.objects.filter(pk=right.pk).values().get()

    migration = importlib.import_module("pharmacrm.keyaccounts.migrations.0015_recompute_review_waits")
    migration.note_recompute(apps, types.SimpleNamespace(connection=connection))
    assert connection.alias in keyaccounts_apps.RECOMPUTE_AFTER_MIGRATE
    keyaccounts_apps.recompute_after_migrate(sender=None, using=connection.alias)  # what `migrate` does at its end
    assert connection.alias not in keyaccounts_apps.RECOMPUTE_AFTER_MIGRATE

    stale.refresh_from_db()
    assert (stale.avg_response_hours, stale.avg_resolution_hours, stale.score, stale.components) == expected
    [entry] = _audited(stale)
    assert entry.changes["avg_resolution_hours"] == ["76.00", "4.00"]
    assert AccountReview.objects.filter(pk=right.pk).values().get() == right_before
    assert _audited(right) == []

    out = io.StringIO()
    call_command("reviews", "recompute-waits", stdout=out)  # again: nothing to do
    assert out.getvalue().startswith("已重新计算 0 条评估，2 条已正确")  # the product speaks Chinese by default
    stale.refresh_from_db()
    assert (stale.avg_response_hours, stale.avg_resolution_hours, stale.score) == expected[:3]
    assert len(_audited(stale)) == 1


def test_an_evaluation_whose_tickets_changed_since_is_left_as_it_is(users, xiehe, with_plan):
    """Stored figures that match neither rule (its tickets were moved or merged since): the command cannot tell
    what the evaluation saw, so it leaves the row and says so; "Evaluate again" recomputes it from today's data."""
    review = _reviewed_with_three_days_waiting(users, xiehe, with_plan, "批号咨询")
    AccountReview.objects.filter(pk=review.pk).update(avg_resolution_hours=Decimal("50.00"))
    assert services.recompute_stored_waits() == {"changed": 0, "right": 0, "unknown": 1}
    review.refresh_from_db()
    assert review.avg_resolution_hours == Decimal("50.00")
