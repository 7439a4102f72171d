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
