"""Key-account programme, session 37 review.

1. A meeting action item or a service-plan item handed to another owner told the new owner only: the owner it was
   taken from kept believing it theirs. They are now told too (bell and e-mail, in their language): at once for an
   action (the page's Edit or PATCH …/meeting-actions/{id}/), when the version that gives the item away comes into
   force for a plan item (that is when it stops being theirs).
2. Removing a team member who still owns open plan items was refused without saying which: the refusal now names
   them (title, plan version, deadline; five at most), as it names the open meeting actions.
3. The API had no overdue flag: plan items and meeting actions now carry `overdue`, true where the key-account page
   flags them (the plan in force's open items, open actions, past their day; a de-listed file's only when missed
   while it was served), and the OpenAPI schema describes it.
4. An agreement signed after its renewal (the renewal came back signed first) stays signed and in force, but its
   renewal reminder still went out, for an agreement already renewed: the reminder now follows the agreement whose
   term ends last, and the earlier one only expires.
"""

from __future__ import annotations

import datetime as dt
import html

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone, translation

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import AgreementStatus, ItemStatus, PlanArea
from pharmacrm.keyaccounts.models import Agreement, MeetingAction, PlanItem, TeamMember
from pharmacrm.notify.models import Notification

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import action_of, approve_plan, item_data, sign_code, tiny_pdf

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
BASE = "/api/v1/keyaccounts/"


def _shown(note: Notification, language: str) -> tuple[str, str]:
    with translation.override(language):
        return note.shown_title, note.shown_body


# --- 1. the previous owner is told -----------------------------------------------------------------------------


def test_the_owner_an_action_is_taken_from_is_told_on_the_page(users, meeting, client_for):
    action = action_of(meeting)
    p = f"action{action.pk}"
    answer = client_for("kam").post(
        reverse("keyaccounts:action-edit", args=[meeting.account_id, action.pk]),
        {f"{p}-title": action.title, f"{p}-owner": users["support"].pk, f"{p}-due_date": action.due_date.isoformat(),
         f"{p}-version": action.version}, **EN)  # fmt: skip
    assert answer.status_code == 302
    [note] = Notification.objects.filter(kind="keyaccounts.action", recipient=users["expert"], title__contains="已转交")
    title, body = _shown(note, "en")
    assert title == "Action from the meeting “季度沟通会” handed over: 整理培训需求"
    assert body.startswith(f"Handed over to {users['support']} by {users['kam']}: it is no longer yours.")
    title, body = _shown(note, "zh-hans")
    assert title == "会议“季度沟通会”的待办事项已转交：整理培训需求" and "不再由您负责" in body
    assert note.url.endswith("#meetings")
    # the new owner is told as before
    assert Notification.objects.filter(kind="keyaccounts.action", recipient=users["support"]).count() == 1


def test_the_owner_an_action_is_taken_from_is_told_through_the_api_but_not_of_their_own_handover(users, meeting,
                                                                                                 api_client):  # fmt: skip
    action = action_of(meeting)
    before = Notification.objects.filter(recipient=users["expert"]).count()
    answer = api_client("manager").patch(f"{BASE}meeting-actions/{action.pk}/",
                                         {"owner": users["aftersales"].pk, "version": 1}, format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    assert Notification.objects.filter(recipient=users["expert"]).count() == before + 1
    # the after-sales engineer gives it on themselves: nobody tells them what they did
    before = Notification.objects.filter(recipient=users["aftersales"]).count()
    answer = api_client("aftersales").patch(f"{BASE}meeting-actions/{action.pk}/",
                                            {"owner": users["support"].pk, "version": 2}, format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    assert Notification.objects.filter(recipient=users["aftersales"]).count() == before
    # a due date moved without a new owner tells nobody it was handed over
    services.edit_action(users["kam"], action_of(meeting), title=action.title, owner=users["support"],
                         due_date=action.due_date + dt.timedelta(days=1), version=3)  # fmt: skip
    assert not Notification.objects.filter(title__contains="已转交", recipient=users["support"]).exists()


def test_the_owner_a_plan_item_is_taken_from_is_told_when_the_new_version_comes_into_force(users, xiehe, with_plan):
    account, plan = with_plan(xiehe)
    draft = services.start_plan(users["kam"], account)
    moved = draft.items.get(area=PlanArea.TRAINING)
    data = {**item_data(users, PlanArea.TRAINING, moved.deadline, owner="expert"), "title": moved.title}
    services.save_item(users["kam"], draft, data, item=moved, version=moved.version)
    handed = Notification.objects.filter(recipient=users["kam"], kind="keyaccounts.plan")
    before = handed.count()
    approve_plan(users, draft)  # only now is the item the expert's
    notes = [n for n in handed.order_by("id")[before:] if "handed over" in _shown(n, "en")[0]]
    assert len(notes) == 1
    title, body = _shown(notes[0], "en")
    assert title == (f"Service plan {account.number} v2 is in force: 1 service item you delivered was handed over")
    assert body == f"Delivered now by: {moved.title} ({users['expert']})"
    title, body = _shown(notes[0], "zh-hans")
    assert title == f"服务方案 {account.number} 第 2 版已生效：您负责的 1 项服务已转交他人"
    assert body.endswith(f"{moved.title}（{users['expert']}）")  # bracketed as Chinese writes it
    # the new owner hears which item they deliver; the items the KAM keeps tell them nothing more
    assert Notification.objects.filter(recipient=users["expert"], kind="keyaccounts.plan",
                                       body__contains=moved.title).exists()  # fmt: skip


def test_a_plan_item_handed_over_in_a_draft_that_is_returned_tells_nobody(users, xiehe, with_plan):
    account, _plan = with_plan(xiehe)
    draft = services.start_plan(users["kam"], account)
    moved = draft.items.get(area=PlanArea.SUPPLY)
    services.save_item(users["kam"], draft, {**item_data(users, PlanArea.SUPPLY, moved.deadline, owner="support"),
                                             "title": moved.title}, item=moved, version=moved.version)  # fmt: skip
    services.submit_plan(users["kam"], draft)
    draft.refresh_from_db()
    services.decide_plan(users["manager"], draft, approve=False, comment="再议", otp_code=sign_code(users["manager"]))
    assert not [n for n in Notification.objects.filter(recipient=users["kam"]) if "handed over" in _shown(n, "en")[0]]


# --- 2. the removal names the plan items -------------------------------------------------------------------------


def test_a_removal_refused_for_open_plan_items_names_them(users, xiehe, with_plan, client_for, api_client):
    account, plan = with_plan(xiehe)
    kam_member = TeamMember.objects.get(account=account, user=users["kam"])
    items = list(services.in_plan_order(plan.items.all()))
    assert len(items) == 4
    # make one of them done: it no longer holds the removal, nor is it named
    services.update_progress(users["kam"], items[0], status=ItemStatus.DONE)
    named = [f"“{i.title}” (service plan v1, due {i.deadline.isoformat()})" for i in
             sorted(items[1:], key=lambda i: (i.deadline, i.pk))]  # fmt: skip
    expected = ("Give this member's open plan items to someone else first (Edit, on a draft of the service plan; the "
                f"plan in force changes with its next version): {', '.join(named)}.")
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.remove_member(users["manager"], kam_member)
    assert refused.value.messages == [expected]
    # the page says it, and the API (400), in English and in Chinese
    answer = client_for("manager").post(reverse("keyaccounts:member-remove", args=[account.pk, kam_member.pk]),
                                        follow=True, **EN)  # fmt: skip
    assert expected in html.unescape(answer.content.decode())
    answer = api_client("manager").delete(f"{BASE}members/{kam_member.pk}/")
    assert answer.status_code == 400 and expected in str(answer.json())
    chinese = api_client("manager")
    chinese.credentials(HTTP_AUTHORIZATION=answer.wsgi_request.META["HTTP_AUTHORIZATION"], HTTP_ACCEPT_LANGUAGE="zh-hans")
    text = str(chinese.delete(f"{BASE}members/{kam_member.pk}/").json())
    assert "请先将该成员未完成的服务项目转交他人" in text
    assert f"“{items[1].title}”（服务方案第 1 版，截止日期 {items[1].deadline.isoformat()}）" in text
    assert TeamMember.objects.filter(pk=kam_member.pk).exists()


def test_a_removal_names_five_plan_items_and_says_there_are_more(users, xiehe, with_plan):
    account, _plan = with_plan(xiehe)
    draft = services.start_plan(users["kam"], account)
    for n in range(3):  # four carried over, three more: seven open items of the expert's in the draft
        services.save_item(users["kam"], draft, {**item_data(users, PlanArea.FREE, owner="expert"),
                                                 "title": f"义诊 {n}"})  # fmt: skip
    for item in draft.items.exclude(area=PlanArea.FREE):
        services.save_item(users["kam"], draft, {**item_data(users, item.area, item.deadline, owner="expert"),
                                                 "title": item.title}, item=item, version=item.version)  # fmt: skip
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.remove_member(users["manager"], TeamMember.objects.get(account=account, user=users["expert"]))
    [text] = refused.value.messages
    assert text.count("(service plan v2, due ") == 5 and text.endswith(", ….")


# --- 3. `overdue` in the API -------------------------------------------------------------------------------------


def test_plan_items_carry_overdue_as_the_page_flags_them(users, xiehe, with_plan, api_client, client_for):
    account, plan = with_plan(xiehe)
    late, due_today, done_late, future = list(services.in_plan_order(plan.items.all()))
    today = timezone.localdate()
    PlanItem.objects.filter(pk__in=[late.pk, done_late.pk]).update(deadline=today - dt.timedelta(days=1))
    PlanItem.objects.filter(pk=due_today.pk).update(deadline=today)  # its day has not ended
    services.update_progress(users["kam"], PlanItem.objects.get(pk=done_late.pk), status=ItemStatus.DONE)
    api = api_client("kam")
    got = {i["id"]: i["overdue"] for i in api.get(f"{BASE}plans/{plan.pk}/").json()["items"]}
    assert got == {late.pk: True, due_today.pk: False, done_late.pk: False, future.pk: False}
    assert api.get(f"{BASE}plan-items/{late.pk}/").json()["overdue"] is True
    listed = api.get(f"{BASE}plans/", {"account": account.pk}).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert {i["id"]: i["overdue"] for i in rows[0]["items"]} == got
    # what the page flags
    page = client_for("kam").get(reverse("keyaccounts:account", args=[account.pk]), **EN).content.decode()
    flagged = {i.pk for i in (late, due_today, done_late, future)
               if f'item-overdue" data-id="{i.pk}"' in page}  # fmt: skip
    assert flagged == {late.pk}
    # a draft's copy of the late item is not overdue (the plan in force's is), and neither is it once superseded
    draft = services.start_plan(users["kam"], account)
    copy = draft.items.get(carried_from=late)
    assert api.get(f"{BASE}plan-items/{copy.pk}/").json()["overdue"] is False
    approve_plan(users, draft)
    assert api.get(f"{BASE}plan-items/{late.pk}/").json()["overdue"] is False
    assert api.get(f"{BASE}plan-items/{copy.pk}/").json()["overdue"] is True


def test_meeting_actions_carry_overdue_as_the_page_flags_them(users, meeting, api_client, client_for):
    action = action_of(meeting)
    api = api_client("kam")
    assert api.get(f"{BASE}meeting-actions/{action.pk}/").json()["overdue"] is False
    MeetingAction.objects.filter(pk=action.pk).update(due_date=timezone.localdate() - dt.timedelta(days=1))
    assert api.get(f"{BASE}meeting-actions/{action.pk}/").json()["overdue"] is True
    [listed] = api.get(f"{BASE}meetings/", {"account": meeting.account_id}).json()["results"]
    assert listed["actions"][0]["overdue"] is True
    page = client_for("kam").get(reverse("keyaccounts:account", args=[meeting.account_id]), **EN).content.decode()
    assert "Overdue" in page.split(f'id="action-{action.pk}-edit"')[0].rsplit("<li", 1)[-1]
    services.complete_action(users["expert"], action_of(meeting))
    assert api.get(f"{BASE}meeting-actions/{action.pk}/").json()["overdue"] is False


def test_the_schema_describes_overdue(api_client):
    schema = api_client("kam").get("/api/schema/", HTTP_ACCEPT="application/json").json()["components"]["schemas"]
    for name in ("PlanItem", "MeetingAction"):
        field = schema[name]["properties"]["overdue"]
        assert field["type"] == "boolean" and field["readOnly"] is True and "China time" in field["description"]
        assert "overdue" in schema[name]["required"]


# --- 4. the renewal reminder follows the agreement that ends last -----------------------------------------------


def _sign(users, agreement):
    upload = SimpleUploadedFile("signed.pdf", tiny_pdf(), content_type="application/pdf")
    return services.record_signed(users["kam"], Agreement.objects.get(pk=agreement.pk),
                                  signed_date=timezone.localdate(), upload=upload)  # fmt: skip


def _reminders(agreement) -> int:
    """The renewal reminders the account's project manager got for the agreement."""
    return Notification.objects.filter(kind="keyaccounts.renewal", object_id=str(agreement.pk),
                                       recipient__username="kam").count()  # fmt: skip


def test_an_agreement_signed_after_its_renewal_gets_no_renewal_reminder(users, xiehe, with_plan):
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    current = services.generate_agreement(users["kam"], account, start_date=today - dt.timedelta(days=300),
                                          end_date=today + dt.timedelta(days=30))  # fmt: skip
    renewal = services.generate_agreement(users["kam"], account, start_date=today + dt.timedelta(days=31),
                                          end_date=today + dt.timedelta(days=395))  # fmt: skip
    _sign(users, renewal)  # the renewal came back signed first
    _sign(users, current)
    # both stay signed, the earlier one in force
    assert set(Agreement.objects.filter(account=account).values_list("status", flat=True)) == {AgreementStatus.SIGNED}
    assert services.agreements_shown([account.pk])[account.pk].pk == current.pk
    # the earlier one's reminder would be due now (30 days before its end): nothing is sent for it
    now = timezone.now() + dt.timedelta(minutes=1)
    assert services.sweep_agreements(now=now) == 0
    assert _reminders(current) == 0 and _reminders(renewal) == 0
    # at its end the renewal's term begins: it counts as renewed (it was not at the signing, months ahead)
    after_end = timezone.make_aware(dt.datetime.combine(today + dt.timedelta(days=31), dt.time(0, 5)))
    services.sweep_agreements(now=after_end)
    current.refresh_from_db()
    assert current.status == AgreementStatus.RENEWED and _reminders(current) == 0
    # the renewal's own reminder comes, 60 days before its end
    reminder_day = timezone.make_aware(dt.datetime.combine(today + dt.timedelta(days=395 - 60), dt.time(9, 1)))
    assert services.sweep_agreements(now=reminder_day) == 1
    assert _reminders(renewal) == 1
    note = Notification.objects.get(kind="keyaccounts.renewal", object_id=str(renewal.pk), recipient=users["kam"])
    assert renewal.number in note.title


def test_an_agreement_signed_before_its_renewal_still_gets_its_reminder(users, xiehe, with_plan):
    """The order that worked: the renewal's signing marks the earlier one renewed; without a renewal the reminder
    goes out as before."""
    account, _plan = with_plan(xiehe)
    today = timezone.localdate()
    current = services.generate_agreement(users["kam"], account, start_date=today - dt.timedelta(days=300),
                                          end_date=today + dt.timedelta(days=30))  # fmt: skip
    _sign(users, current)
    assert services.sweep_agreements(now=timezone.now() + dt.timedelta(minutes=1)) == 1
    assert _reminders(current) == 1
