"""Session 56 (QA), four eyes on a service plan: a manager could approve a plan they co-wrote. Nobody reviews a plan
they "wrote, submitted or deliver", but "wrote" only read created_by: the key-account manager created the plan, the
manager changed its needs and goals and an item's standard and added an item, the key-account manager submitted it,
and the manager approved it (200). Whoever created, changed or removed anything of the version is one of its
authors: the decision, the decision form, the leadership inbox and the reviewers told of the submission all refuse
them, by one rule, saying why."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation
from rest_framework.test import APIClient

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import PlanArea, PlanStatus
from pharmacrm.keyaccounts.models import ServicePlan
from pharmacrm.keyaccounts.views_programme import _inbox
from pharmacrm.notify.models import Notification
from tests.api.conftest import token_for

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import AREAS, item_data, sign_code

pytestmark = pytest.mark.django_db
BASE = "/api/v1/keyaccounts/"


def _edited_message(lang: str = "en") -> str:
    with translation.override(lang):
        return services.edited_plan_message()


def _draft(users, account) -> ServicePlan:
    """The kam's draft with the four areas' items."""
    plan = services.start_plan(users["kam"], account, goals="保障供应")
    for area in AREAS:
        services.save_item(users["kam"], plan, item_data(users, area))
    return ServicePlan.objects.get(pk=plan.pk)


def _submit(users, plan) -> ServicePlan:
    services.submit_plan(users["kam"], ServicePlan.objects.get(pk=plan.pk))
    return ServicePlan.objects.get(pk=plan.pk)


def test_a_manager_who_changed_the_kams_plan_through_the_api_cannot_approve_it(users, xiehe, staffed, api_client,
                                                                               manager2):  # fmt: skip
    account = staffed(xiehe)
    kam, manager = api_client("kam"), api_client("manager")
    r = kam.post(f"{BASE}plans/", {"account": account.pk, "goals": "保障供应"}, format="json")
    assert r.status_code == 201, r.content
    pk = r.json()["id"]
    for area in AREAS:
        r = kam.post(f"{BASE}plan-items/", {"plan": pk, "area": area, "title": f"服务 {area}", "standard": "48 小时内响应",
                                            "owner": users["kam"].pk,
                                            "deadline": (timezone.localdate() + dt.timedelta(days=30)).isoformat()},
                     format="json")  # fmt: skip
        assert r.status_code == 201, r.content
    item = r.json()
    # the manager co-writes it: its goals, an item's standard, and one item more
    plan_version = manager.get(f"{BASE}plans/{pk}/").json()["version"]
    assert manager.patch(f"{BASE}plans/{pk}/", {"goals": "保障供应与冷链", "version": plan_version},
                         format="json").status_code == 200  # fmt: skip
    assert manager.patch(f"{BASE}plan-items/{item['id']}/", {"standard": "24 小时内响应", "version": item["version"]},
                         format="json").status_code == 200  # fmt: skip
    r = manager.post(f"{BASE}plan-items/", {"plan": pk, "area": PlanArea.FREE, "title": "免费检测", "standard": "每季度",
                                            "owner": users["expert"].pk,
                                            "deadline": (timezone.localdate() + dt.timedelta(days=60)).isoformat()},
                     format="json")  # fmt: skip
    assert r.status_code == 201, r.content
    r = kam.post(f"{BASE}plans/{pk}/submit/", {"version": kam.get(f"{BASE}plans/{pk}/").json()["version"]},
                 format="json")  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] == PlanStatus.SUBMITTED
    version = manager.get(f"{BASE}plans/{pk}/").json()["version"]
    r = manager.post(f"{BASE}plans/{pk}/decide/",
                     {"approve": True, "otp_code": sign_code(users["manager"]), "version": version}, format="json")
    assert r.status_code == 403
    assert r.json()["detail"] == _edited_message()
    assert ServicePlan.objects.get(pk=pk).status == PlanStatus.SUBMITTED
    # another member of the leadership reviews it
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {token_for(manager2)}", HTTP_ACCEPT_LANGUAGE="en")
    r = other.post(f"{BASE}plans/{pk}/decide/",
                                    {"approve": True, "otp_code": sign_code(manager2), "version": version},
                                    format="json")  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] == PlanStatus.APPROVED


@pytest.mark.parametrize("change", ["goals", "item", "new item", "removed item"])
def test_any_change_to_the_version_makes_its_author_and_the_inbox_agrees(users, xiehe, staffed, manager2, change):
    account = staffed(xiehe)
    plan = _draft(users, account)
    manager = users["manager"]
    item = plan.items.order_by("id").first()
    if change == "goals":
        services.update_plan(manager, plan, goals="保障供应与冷链", version=plan.version)
    elif change == "item":
        services.save_item(manager, plan, {**item_data(users, item.area), "title": item.title,
                                           "standard": "24 小时内响应", "deadline": item.deadline},
                           item=item, version=item.version)  # fmt: skip
    elif change == "new item":
        services.save_item(manager, plan, item_data(users, PlanArea.FREE, owner="expert"))
    else:
        services.save_item(users["kam"], plan, {**item_data(users, PlanArea.SUPPLY), "title": "第二项供应"})
        extra = plan.items.get(title="第二项供应")
        services.delete_item(manager, extra, version=extra.version)
    plan = _submit(users, plan)
    assert not services.may_decide_plan(manager, plan)
    assert services.plan_refusal(manager, plan) == _edited_message("zh-hans")
    assert plan not in _inbox(manager)["plans"] and plan in _inbox(manager2)["plans"]
    with pytest.raises(services.DecisionRefused) as e, translation.override("en"):
        services.decide_plan(manager, plan, approve=True, otp_code=sign_code(manager))
    assert str(e.value) == _edited_message()
    # told of the submission: the reviewers only
    told = set(Notification.objects.filter(kind="keyaccounts.plan").values_list("recipient__username", flat=True))
    assert "manager2" in told and "manager" not in told


def test_the_decision_form_is_not_offered_to_a_co_author_and_says_why(users, xiehe, staffed, client_for):
    account = staffed(xiehe)
    plan = _draft(users, account)
    services.update_plan(users["manager"], plan, goals="保障供应与冷链", version=plan.version)
    _submit(users, plan)
    page = client_for("manager").get(reverse("keyaccounts:account", args=[account.pk]),
                                     HTTP_ACCEPT_LANGUAGE="en").content.decode()  # fmt: skip
    assert 'id="plan-decision-form"' not in page
    assert 'id="own-plan"' in page
    assert "You changed this version of the plan" in page


def test_returning_a_plan_does_not_make_the_reviewer_its_author(users, xiehe, staffed, manager2):
    """The decision changes the plan's status, not what it says: who returned it may review it again."""
    account = staffed(xiehe)
    plan = _submit(users, _draft(users, account))
    services.decide_plan(manager2, plan, approve=False, comment="补充培训内容", otp_code=sign_code(manager2))
    plan = _submit(users, plan)
    assert services.may_decide_plan(manager2, plan)
    services.decide_plan(manager2, plan, approve=True, otp_code=sign_code(manager2))
    assert ServicePlan.objects.get(pk=plan.pk).status == PlanStatus.APPROVED


def test_a_previous_versions_author_may_review_the_next_version(users, xiehe, with_plan, manager2):
    """Who changed version 1 wrote version 1; version 2, copied from it by the kam, is not theirs."""
    account, first = with_plan(xiehe)
    assert first.decided_by == users["manager"]
    second = services.start_plan(users["kam"], account)
    second = _submit(users, second)
    assert services.may_decide_plan(users["manager"], second)


def test_the_inbox_reads_the_rule_in_a_fixed_number_of_queries(users, xiehe, ruijin, staffed, manager2):
    services.update_plan(users["manager"], p := _draft(users, staffed(xiehe)), goals="改", version=1)
    _submit(users, p)
    _inbox(manager2)  # the user's roles read once (kept on the user)
    with CaptureQueriesContext(connection) as one:
        assert len(_inbox(manager2)["plans"]) == 1
    _submit(users, _draft(users, staffed(ruijin)))
    with CaptureQueriesContext(connection) as two:
        assert len(_inbox(manager2)["plans"]) == 2
    assert len(two.captured_queries) == len(one.captured_queries)
    assert len(_inbox(users["manager"])["plans"]) == 1  # the one they did not change


def test_the_upgrade_reads_the_co_authors_of_open_plans_from_the_audit_trail(users, xiehe, staffed, manager2):
    """A plan co-written before the editors were recorded (migration keyaccounts 0021) is not reviewed by its
    co-author either; a decision (a status change) makes nobody an author."""
    import importlib

    from django.apps import apps

    upgrade = importlib.import_module("pharmacrm.keyaccounts.migrations.0021_plan_editors")
    account = staffed(xiehe)
    plan = _draft(users, account)
    item = plan.items.order_by("id").first()
    services.save_item(users["manager"], plan, {**item_data(users, item.area), "title": item.title,
                                                "standard": "24 小时内响应", "deadline": item.deadline},
                       item=item, version=item.version)  # fmt: skip
    plan = _submit(users, plan)
    services.decide_plan(manager2, plan, approve=False, comment="补充", otp_code=sign_code(manager2))
    plan = _submit(users, plan)
    ServicePlan.editors.through.objects.all().delete()  # as before the upgrade
    upgrade.editors_from_the_trail(apps, None)
    assert set(plan.editors.values_list("username", flat=True)) == {"kam", "manager"}
    assert not services.may_decide_plan(users["manager"], plan) and services.may_decide_plan(manager2, plan)
