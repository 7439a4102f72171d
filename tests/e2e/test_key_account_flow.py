"""The key-account programme end to end in a real Chromium, in Chinese: marketing proposes a candidate,
sales gives its opinion, marketing sends it to leadership, a manager approves with a one-time code and
staffs the team, the key-account manager writes the service plan, the manager signs it, and the agreement
generated from it downloads as a PDF."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.keyaccounts.choices import PlanStatus, ProposalStatus
from pharmacrm.keyaccounts.models import Agreement, KeyAccount, Proposal
from tests.keyaccounts.programme_fixtures import *  # noqa: F403
from tests.keyaccounts.programme_fixtures import AREAS, sign_code

from .conftest import CHROMIUM, close_quietly, open_context, shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def as_user(browser, live_server):
    """as_user("kam") → a page in its own browser context, signed in as that user."""
    contexts = []

    def open_as(username: str):
        context = open_context(browser, live_server, viewport={"width": 1366, "height": 900}, accept_downloads=True)
        contexts.append(context)
        tab = context.new_page()
        sign_in(tab, username)
        return tab

    yield open_as
    for context in contexts:
        close_quietly(context)


def test_a_candidate_becomes_a_key_account_with_an_approved_plan_and_agreement(
    as_user, users, xiehe, candidate
):
    assert CHROMIUM.exists()
    candidate(xiehe, score="86.00")

    # marketing proposes the candidate and gives marketing's opinion
    analyst = as_user("analyst")
    analyst.goto(reverse("keyaccounts:proposal-create") + f"?institution={xiehe.pk}")
    assert analyst.locator("#score-value").inner_text() == "86.00"
    analyst.fill("#id_reason", "年采购额大，区域影响力强")
    with analyst.expect_navigation():
        analyst.click("#send-proposal")
    proposal = Proposal.objects.get(institution=xiehe)
    assert analyst.url.endswith(reverse("keyaccounts:proposal", args=[proposal.pk]))
    analyst.check("#id_review-opinion_0")  # support
    with analyst.expect_navigation():
        analyst.click("#give-opinion")

    # sales gives its opinion from the inbox
    kam = as_user("kam")
    kam.goto(reverse("keyaccounts:inbox"))
    with kam.expect_navigation():
        kam.click(f"#to-review a:has-text('{proposal.number}')")
    kam.check("#id_review-opinion_0")
    kam.fill("#id_review-comment", "销售部支持")
    with kam.expect_navigation():
        kam.click("#give-opinion")
    assert kam.locator('.review-row[data-department="sales"]').count() == 1

    # marketing sends it to leadership
    analyst.reload()
    with analyst.expect_navigation():
        analyst.click("#send-to-leadership")
    assert analyst.locator("#proposal-status").get_attribute("data-status") == ProposalStatus.SUBMITTED

    # a manager approves with the one-time code and staffs the team
    manager = as_user("manager")
    manager.goto(reverse("keyaccounts:proposal", args=[proposal.pk]))
    manager.check("#id_decision-decision_0")  # approve
    manager.fill("#id_decision-comment", "同意列为重点客户")
    manager.fill("#id_decision-otp_code", sign_code(users["manager"]))
    with manager.expect_navigation():
        manager.click("#sign-decision")
    account = KeyAccount.objects.get(institution=xiehe)
    assert manager.url.endswith(reverse("keyaccounts:account", args=[account.pk]))
    assert manager.locator("#account-number").inner_text() == account.number
    manager.select_option("#id_member-role", "pm")
    manager.select_option("#id_member-user", str(users["kam"].pk))
    with manager.expect_navigation():
        manager.click("#add-member-button")
    assert manager.locator('#team-table tr[data-role="pm"] .team-member[data-user="kam"]').count() == 1

    # the key-account manager writes the plan with the four areas and submits it
    kam.goto(reverse("keyaccounts:account", args=[account.pk]))
    kam.fill("#id_plan-goals", "保障供应与技术支持")
    with kam.expect_navigation():
        kam.click("#start-plan-button")
    deadline = (timezone.localdate() + dt.timedelta(days=60)).isoformat()
    for area in AREAS:
        if kam.locator("#add-item").get_attribute("open") is None:
            kam.click("#add-item > summary")
        kam.select_option("#id_item-area", str(area))
        kam.fill("#id_item-title", f"服务项目：{area}")
        kam.select_option("#id_item-owner", str(users["kam"].pk))
        kam.fill("#id_item-deadline", deadline)
        kam.fill("#id_item-standard", "接到需求后 24 小时内响应")
        with kam.expect_navigation():
            kam.click("#add-item-button")
    assert kam.locator("#draft-items .draft-item").count() == 4
    with kam.expect_navigation():
        kam.click("#submit-plan")
    assert kam.locator("#draft").get_attribute("data-status") == PlanStatus.SUBMITTED

    # the manager finds the plan in the inbox and signs it
    manager.goto(reverse("keyaccounts:inbox"))
    with manager.expect_navigation():
        manager.click("#plans-to-decide a")
    manager.check("#id_plandecision-decision_0")
    manager.fill("#id_plandecision-otp_code", sign_code(users["manager"]))
    with manager.expect_navigation():
        manager.click("#sign-plan")
    assert manager.locator("#plan-in-force").get_attribute("data-version") == "1"
    assert manager.locator("#plan-items .item-row").count() == 4

    # the agreement is generated from the plan in force and downloads as a PDF
    kam.reload()
    with kam.expect_navigation():
        kam.click("#generate-agreement")
    agreement = Agreement.objects.get(account=account)
    row = kam.locator(f'.agreement-row[data-id="{agreement.pk}"]')
    assert agreement.number in row.inner_text()
    with kam.expect_download() as download:
        row.locator(".agreement-pdf").click()
    data = open(download.value.path(), "rb").read()
    assert data.startswith(b"%PDF")
    shot(kam, "key-account-file")
