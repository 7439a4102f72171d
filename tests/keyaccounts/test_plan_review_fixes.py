"""QA's review of the key-account programme, as a user notices it:

- a manager who drafted a service plan does not find it among the plans waiting for their review, nor a
  decision form under it: another member of the leadership reviews it, and does find both. A decision
  posted anyway (a stale page, a crafted request) comes back with the reason next to the form and the
  typed comment kept, not the generic "no access" page; the same for a proposal;
- the agreement's PDF lists the service items in the plan's order (product supply, technical support,
  after-sales, training, free services), as the plan on the key-account page does."""

import datetime as dt
import io
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation
from pypdf import PdfReader
from rest_framework.test import APIClient

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import PlanArea, PlanStatus, ProposalStatus
from pharmacrm.keyaccounts.models import ServicePlan
from tests.api.conftest import token_for
from tests.conftest import otp_verify

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import AREAS, item_data, sign_code

pytestmark = pytest.mark.django_db

COMMENT = "同意，第三季度复核供应保障"


def _client(user) -> Client:
    c = Client()
    c.force_login(user)
    otp_verify(c, user)
    return c


def _message(text: str) -> str:
    """A message as the page shows it: in the site's language, HTML-escaped."""
    from django.utils.html import escape

    with translation.override("zh-hans"):
        return escape(str(text))


@pytest.fixture
def managers_plan(users, xiehe, staffed):
    """The manager drafts the plan of Xiehe (items in the four areas, owned by the team) and submits it."""
    account = staffed(xiehe)
    manager = users["manager"]
    plan = services.start_plan(manager, account, goals="保障供应")
    for area in AREAS:
        services.save_item(manager, plan, item_data(users, area))
    services.submit_plan(manager, plan)
    plan.refresh_from_db()
    return account, plan


def _decision(plan, code: str, comment: str = COMMENT) -> dict:
    return {"plandecision-decision": "approve", "plandecision-comment": comment, "plandecision-otp_code": code,
            "plandecision-version": plan.version}  # fmt: skip


def test_the_author_does_not_see_their_plan_in_the_inbox_nor_a_decision_form(client_for, managers_plan):
    account, plan = managers_plan
    c = client_for("manager")
    inbox = c.get(reverse("keyaccounts:inbox")).content.decode()
    assert f'data-id="{plan.pk}"' not in inbox and 'id="plans-to-decide"' not in inbox
    page = c.get(reverse("keyaccounts:account", args=[account.pk])).content.decode()
    assert 'id="plan-decision-form"' not in page
    assert 'id="own-plan"' in page and _message(services.own_plan_message()) in page


def test_the_author_posting_a_decision_is_told_why_and_keeps_the_comment(client_for, users, managers_plan):
    account, plan = managers_plan
    manager = users["manager"]
    response = client_for("manager").post(reverse("keyaccounts:plan-decide", args=[account.pk]),
                                          _decision(plan, sign_code(manager)))  # fmt: skip
    assert response.status_code == 403
    html = response.content.decode()
    form = html.split('id="plan-decision-form"')[1].split("</form>")[0]  # the form is shown again ...
    assert 'class="alert alert-error"' in form and _message(services.own_plan_message()) in form  # ... with why
    assert COMMENT in form  # and what was typed
    plan.refresh_from_db()
    assert plan.status == PlanStatus.SUBMITTED and plan.decided_by is None


def test_another_manager_finds_the_plan_and_approves_it(client_for, users, managers_plan, manager2):
    account, plan = managers_plan
    c = _client(manager2)
    inbox = c.get(reverse("keyaccounts:inbox")).content.decode()
    assert f'data-id="{plan.pk}"' in inbox
    page = c.get(reverse("keyaccounts:account", args=[account.pk])).content.decode()
    assert 'id="plan-decision-form"' in page and 'id="own-plan"' not in page
    response = c.post(reverse("keyaccounts:plan-decide", args=[account.pk]), _decision(plan, sign_code(manager2)))
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.status == PlanStatus.APPROVED and plan.decided_by == manager2 and plan.decision_comment == COMMENT


def test_a_manager_who_delivers_an_item_is_not_asked_to_review_the_plan(client_for, users, xiehe, staffed,
                                                                        manager2):  # fmt: skip
    """The kam writes the plan; the manager2 is in the team and owns an item: only the manager reviews it."""
    from django.contrib.auth.models import Group

    from pharmacrm.core.models import User
    from pharmacrm.core.roles import Role
    from pharmacrm.keyaccounts.choices import TeamRole

    account = staffed(xiehe)
    # an account has one project manager (the kam): manager2, also a product expert, joins in that role
    manager2.groups.add(Group.objects.get(name=Role.EXPERT))
    manager2 = User.objects.get(pk=manager2.pk)
    services.add_member(users["manager"], account, manager2, TeamRole.PRODUCT_EXPERT)
    plan = services.start_plan(users["kam"], account)
    for area in AREAS:
        services.save_item(users["kam"], plan, item_data(users, area))
    services.save_item(users["kam"], plan, {**item_data(users, PlanArea.FREE), "owner": manager2})
    services.submit_plan(users["kam"], plan)
    assert f'data-id="{plan.pk}"' not in _client(manager2).get(reverse("keyaccounts:inbox")).content.decode()
    assert f'data-id="{plan.pk}"' in client_for("manager").get(reverse("keyaccounts:inbox")).content.decode()
    page = _client(manager2).get(reverse("keyaccounts:account", args=[account.pk])).content.decode()
    assert 'id="plan-decision-form"' not in page and 'id="own-plan"' in page


def test_who_may_not_review_is_one_rule_for_the_inbox_the_page_and_the_service(users, managers_plan, manager2):
    _account, plan = managers_plan
    assert not services.may_decide_plan(users["manager"], plan)  # wrote and submitted it
    assert not services.may_decide_plan(users["kam"], plan)  # not leadership
    assert services.may_decide_plan(manager2, plan)
    waiting = ServicePlan.objects.filter(status=PlanStatus.SUBMITTED)
    assert list(services.plans_user_may_decide(manager2, waiting)) == [plan]
    assert not services.plans_user_may_decide(users["manager"], waiting).exists()
    with pytest.raises(services.DecisionRefused):
        services.decide_plan(users["manager"], plan, approve=True, otp_code=sign_code(users["manager"]))


def test_a_stale_page_still_posting_to_the_decision_of_ones_own_plan_is_not_a_wrong_code(
    client_for, users, managers_plan
):
    """The refusal comes before the one-time code is checked: the code is not used up nor counted as a
    failure."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    account, plan = managers_plan
    manager = users["manager"]
    client_for("manager").post(reverse("keyaccounts:plan-decide", args=[account.pk]), _decision(plan, "000000"))
    assert TOTPDevice.objects.get(user=manager).throttling_failure_count == 0


def test_the_proposer_posting_a_decision_is_told_why_and_keeps_the_comment(client_for, users, xiehe,
                                                                           make_proposal):  # fmt: skip
    proposal = make_proposal(xiehe, by=users["manager"])
    data = {"decision-decision": "approve", "decision-comment": COMMENT,
            "decision-otp_code": sign_code(users["manager"]), "decision-version": proposal.version}  # fmt: skip
    response = client_for("manager").post(reverse("keyaccounts:proposal-decide", args=[proposal.pk]), data)
    assert response.status_code == 403
    form = response.content.decode().split('id="decision-form"')[1].split("</form>")[0]
    with translation.override("zh-hans"):
        why = _message(translation.gettext("You cannot decide on your own proposal: another member of the "
                                           "leadership must."))  # fmt: skip
    assert why in form and COMMENT in form
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.SUBMITTED
    # who is not leadership at all still gets the plain refusal
    assert client_for("analyst").post(reverse("keyaccounts:proposal-decide", args=[proposal.pk]),
                                      data).status_code == 403  # fmt: skip


# --- the agreement's PDF lists the items in the plan's order --------------------------------------------


def _text(data: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).replace("\x00", "")


def test_the_agreement_lists_the_items_in_the_plans_order(client_for, users, xiehe, staffed):
    account = staffed(xiehe)
    kam = users["kam"]
    plan = services.start_plan(kam, account)
    soon = timezone.localdate() + dt.timedelta(days=10)
    # added in the reverse order, with the free service due first: neither may decide the order
    titles = {PlanArea.FREE: "赠送样品", PlanArea.TRAINING: "季度培训", PlanArea.AFTER_SALES: "退换货处理",
              PlanArea.TECH_SUPPORT: "工程师驻场", PlanArea.SUPPLY: "紧急订单供应"}  # fmt: skip
    for n, (area, title) in enumerate(titles.items()):
        services.save_item(kam, plan, {**item_data(users, area, soon + dt.timedelta(days=n)), "title": title})
    services.submit_plan(kam, plan)
    plan.refresh_from_db()
    services.decide_plan(users["manager"], plan, approve=True, otp_code=sign_code(users["manager"]))
    today = timezone.localdate()
    agreement = services.generate_agreement(kam, account, start_date=today, end_date=today + dt.timedelta(days=365))
    text = _text(client_for("kam").get(reverse("keyaccounts:agreement-pdf", args=[agreement.pk])).content)
    services_section = text.split("3. Services and standards")[1].split("4. Party A")[0]
    expected = [titles[area] for area in PlanArea.values]
    assert re.findall("|".join(expected), services_section) == expected
    areas = ["产品供应", "技术支持", "售后服务", "培训服务", "免费服务"]
    assert re.findall("|".join(areas), services_section) == areas
    # the same order as the plan on the key-account page
    page = client_for("kam").get(reverse("keyaccounts:account", args=[account.pk])).content.decode()
    in_force = page.split('id="plan-items"')[1].split("</table>")[0]
    assert re.findall("|".join(expected), in_force) == expected


def test_the_draft_on_the_page_lists_its_items_in_the_plans_order_too(client_for, users, xiehe, staffed):
    account = staffed(xiehe)
    plan = services.start_plan(users["kam"], account)
    for area in reversed(PlanArea.values):
        services.save_item(users["kam"], plan, item_data(users, area))
    page = client_for("kam").get(reverse("keyaccounts:account", args=[account.pk])).content.decode()
    draft = page.split('id="draft-items"')[1].split("</table>")[0]
    assert re.findall(r'data-area="([a-z_]+)"', draft) == list(PlanArea.values)
    # and the API's plan lists them the same way
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users['kam'])}")
    items = api.get(f"/api/v1/keyaccounts/plans/{plan.pk}/").json()["items"]
    assert [i["area"] for i in items] == list(PlanArea.values)
    listed = next(p for p in api.get("/api/v1/keyaccounts/plans/").json()["results"] if p["id"] == plan.pk)
    assert [i["area"] for i in listed["items"]] == list(PlanArea.values)
