"""Session 56 (QA): withdrawing a proposal took no version, while every other step of the workflow needs the one the
client loaded and answers 409 when it is stale — a proposal sent to leadership or decided meanwhile was closed
unseen."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import ProposalStatus
from pharmacrm.keyaccounts.models import Proposal

from .programme_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db
BASE = "/api/v1/keyaccounts/"


def test_withdrawing_through_the_api_needs_the_version(users, xiehe, make_proposal, api_client):
    proposal = make_proposal(xiehe, submitted=False)
    url = f"{BASE}proposals/{proposal.pk}/withdraw/"
    r = api_client("analyst").post(url, {}, format="json")
    assert r.status_code == 400 and "Send the version you loaded" in r.json()["version"][0]
    assert Proposal.objects.get(pk=proposal.pk).status == ProposalStatus.REVIEW
    r = api_client("analyst").post(url, {"version": proposal.version}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["status"] == ProposalStatus.WITHDRAWN


def test_a_stale_withdrawal_is_a_conflict_and_the_proposal_stays_with_leadership(users, xiehe, make_proposal,
                                                                                 api_client):  # fmt: skip
    proposal = make_proposal(xiehe, submitted=False)
    loaded = proposal.version
    services.submit_for_decision(users["analyst"], proposal)  # sent to leadership meanwhile
    current = Proposal.objects.get(pk=proposal.pk).version
    r = api_client("manager").post(f"{BASE}proposals/{proposal.pk}/withdraw/", {"version": loaded}, format="json")
    assert r.status_code == 409 and r.json()["current_version"] == current
    assert Proposal.objects.get(pk=proposal.pk).status == ProposalStatus.SUBMITTED
    # If-Match does as the body's version
    r = api_client("manager").post(f"{BASE}proposals/{proposal.pk}/withdraw/", HTTP_IF_MATCH=f'"{current}"')
    assert r.status_code == 200 and Proposal.objects.get(pk=proposal.pk).status == ProposalStatus.WITHDRAWN


def test_who_may_not_withdraw_hears_that_before_the_version(users, xiehe, make_proposal, api_client):
    proposal = make_proposal(xiehe)  # waits for leadership: the proposer may no longer close it
    r = api_client("analyst").post(f"{BASE}proposals/{proposal.pk}/withdraw/", {}, format="json")
    assert r.status_code == 403


def test_the_pages_withdraw_button_sends_the_version_it_showed(users, xiehe, make_proposal, client_for):
    proposal = make_proposal(xiehe, submitted=False)
    analyst = client_for("analyst")
    page = analyst.get(reverse("keyaccounts:proposal", args=[proposal.pk])).content.decode()
    loaded = proposal.version
    assert f'name="withdraw-version" value="{loaded}"' in page
    # the proposal is sent to leadership from another page: the button of the page read before is refused
    services.submit_for_decision(users["analyst"], proposal)
    manager = client_for("manager")
    stale = manager.post(reverse("keyaccounts:proposal-withdraw", args=[proposal.pk]),
                         {"withdraw-version": loaded}, HTTP_ACCEPT_LANGUAGE="en", follow=True)  # fmt: skip
    assert "Someone else changed this record" in stale.content.decode()
    assert Proposal.objects.get(pk=proposal.pk).status == ProposalStatus.SUBMITTED
    fresh = Proposal.objects.get(pk=proposal.pk).version
    manager.post(reverse("keyaccounts:proposal-withdraw", args=[proposal.pk]), {"withdraw-version": fresh})
    assert Proposal.objects.get(pk=proposal.pk).status == ProposalStatus.WITHDRAWN
