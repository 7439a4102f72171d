"""Found by QA in session 56: the auditor (and anyone who may not act) posting an empty form to a key account's
agreement, trial or new-plan form, or to a proposal's decision, was answered 400 with the form's field errors — shown the form
to fill in — and no refused write was in the audit trail. They are refused first: 403, audited as access denied."""

from __future__ import annotations

import pytest

from pharmacrm.core.models import AuditEntry

from .programme_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", ["auditor", "analyst", "agent"])
def test_who_may_not_act_is_refused_before_the_form(client_for, users, xiehe, ruijin, staffed, make_proposal, role):
    account = staffed(xiehe)
    proposal = make_proposal(ruijin)
    who = client_for(role)
    for url in (f"/keyaccounts/{account.pk}/agreements/", f"/keyaccounts/{account.pk}/trials/",
                f"/keyaccounts/{account.pk}/plan/", f"/keyaccounts/proposals/{proposal.pk}/decide/"):  # fmt: skip
        r = who.post(url, {})
        assert r.status_code in (403, 404), (url, r.status_code)
        if r.status_code == 403:
            assert AuditEntry.objects.filter(action="access_denied", actor=users[role], object_repr=url).exists()
    assert not account.agreements.exists() and not account.trials.exists()


def test_who_may_act_still_gets_the_forms_errors(client_for, users, xiehe, staffed):
    account = staffed(xiehe)
    r = client_for("kam").post(f"/keyaccounts/{account.pk}/trials/", {})
    assert r.status_code == 400


@pytest.mark.parametrize("role", ["auditor", "agent", "rep"])
def test_the_plan_and_evaluation_forms_refuse_first_too(client_for, users, xiehe, with_plan, role):
    """Found in session 57's sweep: the draft plan's goals, its items (new, edited), their progress, the plan's
    submission and decision, and an account's evaluation run answered who may not act with the form's errors (400)."""
    from pharmacrm.keyaccounts import services

    account, plan = with_plan(xiehe)
    item = plan.items.first()
    draft = services.start_plan(users["kam"], account, goals="新一年")
    drafted = draft.items.first() or item
    who = client_for(role)
    base = f"/keyaccounts/{account.pk}"
    for url in (f"{base}/plan/draft/", f"{base}/plan/items/", f"{base}/plan/items/{drafted.pk}/",
                f"{base}/plan/items/{item.pk}/progress/", f"{base}/plan/submit/", f"{base}/plan/decide/",
                f"{base}/evaluations/"):  # fmt: skip
        r = who.post(url, {})
        assert r.status_code == 403, (url, r.status_code)
        assert AuditEntry.objects.filter(action="access_denied", actor=users[role], object_repr=url).exists(), url


def test_a_team_member_who_does_not_own_the_item_may_not_report_its_progress(client_for, users, xiehe, with_plan):
    account, plan = with_plan(xiehe)
    item = plan.items.first()  # the kam's
    r = client_for("expert").post(f"/keyaccounts/{account.pk}/plan/items/{item.pk}/progress/", {})
    assert r.status_code == 403
    assert client_for("kam").post(f"/keyaccounts/{account.pk}/plan/items/{item.pk}/progress/", {}).status_code == 400


def test_a_proposal_is_sent_to_leadership_only_by_its_proposer_or_marketing(client_for, users, ruijin, make_proposal):
    proposal = make_proposal(ruijin, submitted=False)
    url = f"/keyaccounts/proposals/{proposal.pk}/submit/"
    assert client_for("manager").post(url, {"submit-version": "x"}).status_code == 403
    assert AuditEntry.objects.filter(action="access_denied", actor=users["manager"], object_repr=url).exists()
