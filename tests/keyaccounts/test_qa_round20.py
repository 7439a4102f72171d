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


# --- 2. the team hears of its account, and each owner of what they deliver ----------------------------------


def _bell(user, kind):
    from django.utils import translation

    from pharmacrm.notify.models import Notification

    with translation.override("en"):
        return [(n.shown_title, n._shown("body")) for n in Notification.objects.filter(recipient=user, kind=kind)]


def test_a_new_member_is_told_which_account_they_serve_and_in_what_role(users, xiehe, listed):
    """Nobody told the product expert added to 北京协和医院's team: they found out from an overdue alert."""
    account = listed(xiehe)
    services.add_member(users["manager"], account, users["expert"], "expert")
    [(title, body)] = _bell(users["expert"], "keyaccounts.team")
    assert account.number in title and "北京协和医院" in title
    assert "Team role: Product expert" in body


def test_whoever_adds_themselves_is_not_told(users, xiehe, listed, manager2):
    account = listed(xiehe)
    services.add_member(manager2, account, manager2, "pm")
    assert _bell(manager2, "keyaccounts.team") == []


def test_each_item_owner_hears_of_their_items_when_the_plan_comes_into_force(users, xiehe, staffed):
    """On approval only the project manager and the plan's author were told: technical support learned of its
    deadline from the overdue alert."""
    import datetime as dt

    from django.utils import timezone

    from .programme_fixtures import AREAS, approve_plan, item_data

    account = staffed(xiehe)
    kam = users["kam"]
    plan = services.start_plan(kam, account, goals="保障供应")
    owners = {AREAS[0]: "kam", AREAS[1]: "support", AREAS[2]: "support", AREAS[3]: "expert"}
    for n, area in enumerate(AREAS):
        services.save_item(kam, plan, item_data(users, area, timezone.localdate() + dt.timedelta(days=20 + n),
                                                owner=owners[area]))  # fmt: skip
    approve_plan(users, plan)
    [(title, body)] = _bell(users["support"], "keyaccounts.plan")
    assert title.endswith("you deliver 2 service items") and account.number in title
    assert "服务项目 tech_support" in body and "服务项目 after_sales" in body
    [(title, _body)] = _bell(users["expert"], "keyaccounts.plan")
    assert title.endswith("you deliver 1 service item")
    assert len(_bell(kam, "keyaccounts.plan")) == 1  # the project manager: the approval itself, once
    assert _bell(users["aftersales"], "keyaccounts.plan") == []  # owns nothing
