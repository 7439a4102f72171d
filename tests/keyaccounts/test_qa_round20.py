"""Session 20 (key-account programme): a department is never proposed on its own (it is served through its
hospital's key account); team members are told what they deliver; signed copies are checked against their
fingerprint; the agreement archive finds customers as search does; a closed file's meeting actions stay as they
were."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from pharmacrm.customers.models import Institution
from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.models import Proposal

from .programme_fixtures import *  # noqa: F403  (fixtures)

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


# --- 1. a department is served through its hospital, never proposed on its own ------------------------------


def _department():
    return Institution.objects.get(name="心内科")


def test_a_department_cannot_be_proposed_as_a_key_account(users, xiehe):
    """The department of a hospital offered "Propose as key account" and the proposal went through: 心内科 could
    become a key account beside (or inside) 北京协和医院, its tier 'key account' and its tickets routed to either
    team."""
    with pytest.raises(ValidationError) as e:
        services.propose(users["analyst"], _department(), reason="心内科采购量大")
    assert "Propose 北京协和医院 instead" in " ".join(e.value.message_dict["institution"])
    assert not Proposal.objects.exists()


def test_the_api_refuses_a_department_under_institution(users, xiehe, api_client):
    answer = api_client("analyst").post("/api/v1/keyaccounts/proposals/",
                                        {"institution": _department().pk, "reason": "心内科采购量大"}, format="json")  # fmt: skip
    assert answer.status_code == 400
    assert "a department is served as part of its hospital" in answer.json()["institution"][0]


def test_a_departments_page_names_its_hospitals_key_account_and_offers_no_proposal(users, xiehe, listed, client_for):
    account = listed(xiehe)
    client = client_for("analyst")
    panel = client.get(reverse("keyaccounts:ka-panel", args=[_department().pk]), **EN).content.decode()
    assert "This customer is not a key account" not in panel
    assert "Propose as key account" not in panel
    assert account.number in panel and "its tickets go to that account's service team" in panel
    form = client.get(reverse("keyaccounts:proposal-create") + f"?institution={_department().pk}", **EN)
    page = form.content.decode()
    assert 'id="proposal-refusal"' in page and 'id="send-proposal"' not in page


def test_the_hospital_itself_is_still_offered(users, xiehe, client_for):
    panel = client_for("analyst").get(reverse("keyaccounts:ka-panel", args=[xiehe.pk]), **EN).content.decode()
    assert "Propose as key account" in panel
