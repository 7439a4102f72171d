"""Key-account programme, session 38 review.

1. A team member's work page (…/my/, …/team/<id>/) decided "overdue" with its own comparison of the deadline with
   today, while the account page, the API's `overdue` and the overdue alert share services.item_overdue and
   services.action_overdue. The page now uses them too: one rule. With the page's own filters (the plan in force's
   open items, open actions, accounts served) the two rules agreed in every case found, so these tests pin the page's
   output for items and actions due yesterday, due today (their day has not ended: not overdue) and done late (not
   listed), and check it against the API's `overdue` for the same items.
"""

from __future__ import annotations

import datetime as dt
import html

import pytest
from django.urls import reverse
from django.utils import timezone

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import ItemStatus
from pharmacrm.keyaccounts.models import MeetingAction, PlanItem

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import action_of

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
BASE = "/api/v1/keyaccounts/"


def _item_rows(page: str) -> dict[str, bool]:
    """The work page's open plan items: title → flagged overdue (row class and badge agree)."""
    block = page.split('id="member-items"')[1].split("</section>")[0]
    rows = {}
    for row in block.split('<tr class="item-row')[1:]:
        cells = row.split("</tr>")[0]
        title = cells.split("</td><td>", 1)[1].split("</td>", 1)[0]
        flagged = cells.startswith(" item-overdue")
        assert flagged == ("Overdue" in cells), cells
        rows[title] = flagged
    return rows


def _action_rows(page: str) -> dict[str, bool]:
    block = page.split('id="member-actions"')[1].split("</section>")[0]
    rows = {}
    for row in block.split('<li class="member-action')[1:]:
        text = row.split("</li>")[0]
        title = text.split("</a>: ", 1)[1].split(" · ", 1)[0]
        flagged = text.startswith(" action-overdue")
        assert flagged == ("Overdue" in text), text
        rows[title] = flagged
    return rows


def test_the_work_page_flags_plan_items_overdue_by_the_shared_rule(users, xiehe, with_plan, client_for, api_client):
    account, plan = with_plan(xiehe)
    late, due_today, done_late, future = list(services.in_plan_order(plan.items.all()))
    today = timezone.localdate()
    PlanItem.objects.filter(pk__in=[late.pk, done_late.pk]).update(deadline=today - dt.timedelta(days=1))
    PlanItem.objects.filter(pk=due_today.pk).update(deadline=today)  # its day has not ended (China time)
    services.update_progress(users["kam"], PlanItem.objects.get(pk=done_late.pk), status=ItemStatus.DONE)

    for url in (reverse("keyaccounts:my"), reverse("keyaccounts:member", args=[users["kam"].pk])):
        viewer = "kam" if url == reverse("keyaccounts:my") else "manager"
        page = html.unescape(client_for(viewer).get(url, **EN).content.decode())
        assert _item_rows(page) == {late.title: True, due_today.title: False, future.title: False}, url

    # the same answer as the API's `overdue` (and the account page's flag) for every item the page lists
    api = api_client("kam")
    for item in (late, due_today, future):
        assert api.get(f"{BASE}plan-items/{item.pk}/").json()["overdue"] is (item == late)


def test_the_work_page_flags_meeting_actions_overdue_by_the_shared_rule(users, meeting, client_for, api_client):
    today = timezone.localdate()
    action = action_of(meeting)
    services.record_meeting(users["kam"], meeting.account, {
        "held_at": meeting.held_at + dt.timedelta(minutes=1), "title": "供货协调会", "minutes": "讨论备货"},
        [{"title": "提交备货计划", "owner": users["expert"], "due_date": today},
         {"title": "回访药剂科", "owner": users["expert"], "due_date": today}])  # fmt: skip
    MeetingAction.objects.filter(pk=action.pk).update(due_date=today - dt.timedelta(days=1))
    done = MeetingAction.objects.select_related("meeting__account").get(title="回访药剂科")
    MeetingAction.objects.filter(pk=done.pk).update(due_date=today - dt.timedelta(days=1))
    done.refresh_from_db()
    services.complete_action(users["expert"], done)

    page = html.unescape(client_for("expert").get(reverse("keyaccounts:my"), **EN).content.decode())
    assert _action_rows(page) == {"整理培训需求": True, "提交备货计划": False}  # the done one is not listed

    api = api_client("kam")
    assert api.get(f"{BASE}meeting-actions/{action.pk}/").json()["overdue"] is True
    due_today = MeetingAction.objects.get(title="提交备货计划")
    assert api.get(f"{BASE}meeting-actions/{due_today.pk}/").json()["overdue"] is False


# --- 3. a member's page: the access policy before the lookup ------------------------------------------------------


def test_a_member_page_out_of_reach_does_not_say_whether_the_user_exists(users, client_for):
    """/keyaccounts/team/<id>/ looked the user up before asking may_open_member_page: to a sales rep (who may open
    their own page only) an id nobody has answered 404 "No such user" and a colleague's 403, telling who exists. Now
    both are refused alike, as GET …/scorecards/?user= refuses them; leadership still gets 404 for a missing user."""
    missing = max(u.pk for u in users.values()) + 1000
    rep = client_for("rep")
    assert rep.get(reverse("keyaccounts:member", args=[users["kam"].pk]), **EN).status_code == 403
    answer = rep.get(reverse("keyaccounts:member", args=[missing]), **EN)
    assert answer.status_code == 403 and "No such user" not in answer.content.decode()
    assert rep.get(reverse("keyaccounts:member", args=[users["rep"].pk]), **EN).status_code == 200  # their own
    assert client_for("manager").get(reverse("keyaccounts:member", args=[missing]), **EN).status_code == 404
