"""Service meetings' action items after the meeting (session 36 review).

1. An action item could not be corrected once recorded: a wrong owner or due date typed in the meeting stayed for
   ever. An open action's text, owner (from the account's team) and due date are now corrected in place on the key-
   account file's meeting block and through `PATCH /api/v1/keyaccounts/meeting-actions/{id}/`, by whoever records
   the account's meetings, against the version loaded (a change or a tick-off meanwhile is a 409), audited with the
   values before and after; the new owner is told and finds it on their work page.
2. Removing a member from the service team left their open meeting actions owned by someone outside the team (and
   nobody could give them to anyone else). As for open plan items, the removal is now refused until they are handed
   over, naming them.
"""

from __future__ import annotations

import datetime as dt
import html

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone, translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.models import MeetingAction, TeamMember
from pharmacrm.notify.models import Notification

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import action_of, sign_code

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
BASE = "/api/v1/keyaccounts/"


def _edit_url(action: MeetingAction) -> str:
    return reverse("keyaccounts:action-edit", args=[action.meeting.account_id, action.pk])


def _form(action: MeetingAction, *, title=None, owner=None, due=None, version=None) -> dict:
    p = f"action{action.pk}"
    return {f"{p}-title": title or action.title, f"{p}-owner": (owner or action.owner).pk,
            f"{p}-due_date": (due or action.due_date).isoformat(), f"{p}-version": version or action.version}  # fmt: skip


# --- 1. who may correct an action --------------------------------------------------------------------------------

ALLOWED = ["kam", "manager", "admin", "expert", "support", "aftersales"]  # PM, managers, admins, the team
REFUSED = ["rep", "agent", "analyst", "auditor", "pv", "other_kam"]  # other_kam: a KAM outside this account's team


@pytest.mark.parametrize("role", ALLOWED)
def test_the_team_the_project_manager_and_managers_may_correct_an_action(users, meeting, role):
    action = action_of(meeting)
    due = action.due_date + dt.timedelta(days=3)
    services.edit_action(users[role], action, title="整理培训需求（含新药）", owner=users["aftersales"], due_date=due,
                         version=action.version)  # fmt: skip
    stored = action_of(meeting)
    assert (stored.title, stored.owner, stored.due_date, stored.version) == (
        "整理培训需求（含新药）", users["aftersales"], due, 2)


@pytest.mark.parametrize("role", REFUSED)
def test_others_may_not_correct_an_action(users, meeting, make_user, role):
    from pharmacrm.core.roles import Role

    who = make_user("kam2", Role.KAM) if role == "other_kam" else users[role]
    action = action_of(meeting)
    with pytest.raises(PermissionDenied):
        services.edit_action(who, action, title="改掉", owner=users["aftersales"], due_date=action.due_date,
                             version=action.version)  # fmt: skip
    assert action_of(meeting).title == "整理培训需求" and action_of(meeting).version == 1


@pytest.mark.parametrize("role,status", [("expert", 200), ("manager", 200), ("rep", 403), ("analyst", 403),
                                         ("auditor", 403), ("agent", 403)])  # fmt: skip
def test_the_api_patch_per_role(users, meeting, api_client, role, status):
    action = action_of(meeting)
    answer = api_client(role).patch(f"{BASE}meeting-actions/{action.pk}/", {"owner": users["support"].pk,
                                                                              "version": 1}, format="json")  # fmt: skip
    if answer.status_code == 404:  # a role that does not see the account at all
        assert status == 403
    else:
        assert answer.status_code == status, answer.content
    assert (action_of(meeting).owner == users["support"]) == (status == 200)


# --- 1. the page ------------------------------------------------------------------------------------------------


def test_the_page_corrects_an_action_in_place_and_the_new_owner_takes_it_over(users, meeting, client_for):
    action = action_of(meeting)
    kam = client_for("kam")
    page = kam.get(reverse("keyaccounts:account", args=[meeting.account_id]), **EN).content.decode()
    assert f'action="{_edit_url(action)}"' in page and f'id="action-{action.pk}-edit"' in page
    new_due = action.due_date + dt.timedelta(days=14)
    answer = kam.post(_edit_url(action), _form(action, title="整理培训需求并排期", owner=users["aftersales"],
                                                due=new_due), **EN)  # fmt: skip
    assert answer.status_code == 302
    page = kam.get(answer["Location"], **EN).content.decode()
    assert "The action item was saved." in page
    assert "整理培训需求并排期" in page and f"due {new_due.isoformat()}" in page
    # the work pages follow the owner
    expert_work = client_for("expert").get(reverse("keyaccounts:my"), **EN).content.decode()
    aftersales_work = client_for("aftersales").get(reverse("keyaccounts:my"), **EN).content.decode()
    assert "整理培训需求并排期" not in expert_work and "整理培训需求并排期" in aftersales_work
    # the new owner is told as an owner is told when the meeting is recorded; the previous owner that it is no longer
    # theirs (session 37)
    told = Notification.objects.filter(kind="keyaccounts.action", recipient=users["aftersales"])
    assert told.count() == 1
    assert "整理培训需求并排期" in told.get().title and new_due.isoformat() in told.get().body
    expert = Notification.objects.filter(kind="keyaccounts.action", recipient=users["expert"]).order_by("id")
    assert expert.count() == 2 and "已转交" in expert.last().title  # at recording, then the handover


def test_the_page_shows_a_wrong_owner_or_date_under_its_field(users, meeting, client_for, make_user):
    from pharmacrm.core.roles import Role

    action = action_of(meeting)
    kam = client_for("kam")
    # a due date before the meeting
    early = timezone.localdate() - dt.timedelta(days=1)
    answer = kam.post(_edit_url(action), _form(action, due=early), **EN)
    assert answer.status_code == 400
    assert f"An action is due on or after the day of the meeting ({timezone.localdate().isoformat()})." in (
        answer.content.decode())
    # an owner from outside the team is not offered, and refused when sent
    outsider = make_user("expert9", Role.EXPERT)
    answer = kam.post(_edit_url(action), _form(action, owner=outsider), **EN)
    assert answer.status_code == 400
    assert action_of(meeting).owner == users["expert"] and action_of(meeting).version == 1
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.edit_action(users["kam"], action, title=action.title, owner=outsider, due_date=action.due_date)
    assert refused.value.message_dict == {"owner": ["The owner must be a member of the account's service team."]}


def test_a_done_action_is_not_edited_and_offers_no_form(users, meeting, client_for):
    action = action_of(meeting)
    services.complete_action(users["expert"], action)
    kam = client_for("kam")
    page = kam.get(reverse("keyaccounts:account", args=[meeting.account_id]), **EN).content.decode()
    assert _edit_url(action) not in page
    answer = kam.post(_edit_url(action), _form(action, owner=users["support"]), follow=True, **EN)
    assert "This action item is done: reopen it to change it." in answer.content.decode()
    assert action_of(meeting).owner == users["expert"]


def test_a_delisted_files_actions_are_not_edited(users, meeting, make_proposal, manager2, client_for):
    action = action_of(meeting)
    proposal = make_proposal(meeting.account.institution, kind="delist")
    services.decide(manager2, proposal, approve=True, comment="合作结束", otp_code=sign_code(manager2))
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.edit_action(users["manager"], action, title="x", owner=users["support"], due_date=action.due_date)
    assert refused.value.messages == ["This key account has been de-listed."]
    page = client_for("manager").get(reverse("keyaccounts:account", args=[meeting.account_id]), **EN)
    assert _edit_url(action) not in page.content.decode()


# --- 1. two people at once, the audit trail ------------------------------------------------------------------


def test_a_stale_save_is_refused_on_the_page_and_in_the_api(users, meeting, client_for, api_client):
    action = action_of(meeting)
    kam, manager = client_for("kam"), client_for("manager")
    seen = _form(action, owner=users["support"])  # the manager's page, read at version 1
    assert kam.post(_edit_url(action), _form(action, owner=users["aftersales"]), **EN).status_code == 302
    answer = manager.post(_edit_url(action), seen, **EN)
    assert answer.status_code == 409
    assert "Someone else changed this record while you were editing it." in answer.content.decode()
    stored = action_of(meeting)
    assert stored.owner == users["aftersales"] and stored.version == 2
    # the API: version 1 is stale now (409 with the current version); without a version the change is refused
    api = api_client("manager")
    answer = api.patch(f"{BASE}meeting-actions/{action.pk}/", {"owner": users["support"].pk, "version": 1}, format="json")
    assert answer.status_code == 409 and answer.json()["current_version"] == 2
    answer = api.patch(f"{BASE}meeting-actions/{action.pk}/", {"owner": users["support"].pk}, format="json")
    assert answer.status_code == 400 and "version" in answer.json()
    answer = api.patch(f"{BASE}meeting-actions/{action.pk}/", {"owner": users["support"].pk},
                       format="json", HTTP_IF_MATCH='"2"')  # fmt: skip
    assert answer.status_code == 200 and answer.json()["owner"] == users["support"].pk
    assert answer.json()["version"] == 3 and answer.json()["title"] == "整理培训需求"  # fields left out kept


def test_an_action_ticked_off_after_the_form_was_read_is_not_changed(users, meeting, client_for, api_client):
    action = action_of(meeting)
    seen = _form(action, owner=users["support"])
    services.complete_action(users["expert"], action_of(meeting))
    answer = client_for("kam").post(_edit_url(action), seen, follow=True, **EN)
    assert "This action item is done: reopen it to change it." in answer.content.decode()
    answer = api_client("kam").patch(f"{BASE}meeting-actions/{action.pk}/", {"owner": users["support"].pk,
                                                                               "version": 1}, format="json")  # fmt: skip
    assert answer.status_code == 400 and "reopen it" in str(answer.json())
    stored = action_of(meeting)
    assert stored.owner == users["expert"] and stored.done_at is not None


def test_an_edit_is_audited_with_the_values_before_and_after(users, meeting):
    action = action_of(meeting)
    before_due = action.due_date
    new_due = before_due + dt.timedelta(days=2)
    services.edit_action(users["kam"], action, title="整理培训需求（修订）", owner=users["support"], due_date=new_due,
                         version=1)  # fmt: skip
    entry = AuditEntry.objects.filter(object_type="keyaccounts.meetingaction", object_id=str(action.pk)).get()
    assert entry.action == AuditEntry.Action.UPDATE and entry.actor == users["kam"]
    assert entry.changes == {"title": ["整理培训需求", "整理培训需求（修订）"],
                             "owner": [users["expert"].pk, users["support"].pk],
                             "due_date": [before_due.isoformat(), new_due.isoformat()]}  # fmt: skip
    assert entry.extra["meeting_id"] == meeting.pk
    # the same values again: no change, no entry, the same version
    services.edit_action(users["kam"], action_of(meeting), title="整理培训需求（修订）", owner=users["support"],
                         due_date=new_due, version=2)  # fmt: skip
    assert AuditEntry.objects.filter(object_type="keyaccounts.meetingaction").count() == 1
    assert action_of(meeting).version == 2


def test_an_owner_whose_action_someone_else_moved_is_told(users, meeting):
    action = action_of(meeting)
    new_due = action.due_date + dt.timedelta(days=5)
    services.edit_action(users["kam"], action, title=action.title, owner=users["expert"], due_date=new_due, version=1)
    notes = Notification.objects.filter(kind="keyaccounts.action", recipient=users["expert"]).order_by("id")
    assert notes.count() == 2 and new_due.isoformat() in notes.last().body


def test_the_api_answers_errors_per_field_and_the_schema_has_the_patch(users, meeting, api_client):
    action = action_of(meeting)
    api = api_client("kam")
    answer = api.patch(f"{BASE}meeting-actions/{action.pk}/", {"due_date": "2000-01-01", "version": 1}, format="json")
    assert answer.status_code == 400 and "due_date" in answer.json()
    answer = api.patch(f"{BASE}meeting-actions/{action.pk}/", {"title": " ", "version": 1}, format="json")
    assert answer.status_code == 400 and "title" in answer.json()
    assert api.put(f"{BASE}meeting-actions/{action.pk}/", {"title": "x"}, format="json").status_code == 405
    got = api.get(f"{BASE}meeting-actions/{action.pk}/").json()
    assert got["version"] == 1
    answer = api.patch(f"{BASE}meeting-actions/{action.pk}/", {**got, "title": "整理培训需求（API）"}, format="json")
    assert answer.status_code == 200 and answer.json()["title"] == "整理培训需求（API）"  # GET's body sent back
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    patch = schema["paths"]["/api/v1/keyaccounts/meeting-actions/{id}/"]["patch"]
    assert {"200", "400", "403", "409"} <= set(patch["responses"])


# --- 2. the team member's removal ----------------------------------------------------------------------------


def test_a_member_with_open_meeting_actions_is_removed_only_once_they_are_handed_over(users, meeting, client_for,
                                                                                      api_client):  # fmt: skip
    account = meeting.account
    action = action_of(meeting)
    expert = TeamMember.objects.get(account=account, user=users["expert"])
    message = (f"Give this member's open meeting actions to someone else first (Edit, under Service meetings): "
               f"“整理培训需求” (meeting “季度沟通会”, due {action.due_date.isoformat()}).")  # fmt: skip
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.remove_member(users["manager"], expert)
    assert refused.value.messages == [message]
    # the page says which, the API too (400)
    manager = client_for("manager")
    answer = manager.post(reverse("keyaccounts:member-remove", args=[account.pk, expert.pk]), follow=True, **EN)
    page = html.unescape(answer.content.decode())
    assert message in page and "left the service team" not in page
    answer = api_client("manager").delete(f"{BASE}members/{expert.pk}/")
    assert answer.status_code == 400 and message in str(answer.json())
    chinese = api_client("manager")
    chinese.credentials(HTTP_AUTHORIZATION=answer.wsgi_request.META["HTTP_AUTHORIZATION"], HTTP_ACCEPT_LANGUAGE="zh-hans")
    answer = chinese.delete(f"{BASE}members/{expert.pk}/")
    assert answer.status_code == 400
    assert (f"请先将该成员未完成的会议待办事项转交他人（在“服务沟通会议”中点“编辑”）：“整理培训需求”（会议“季度沟通会”，"
            f"截止日期 {action.due_date.isoformat()}）。") in str(answer.json())  # fmt: skip
    assert TeamMember.objects.filter(pk=expert.pk).exists()
    # handed over on the page (the next step of the same screen), then the removal goes through
    assert manager.post(_edit_url(action), _form(action, owner=users["support"]), **EN).status_code == 302
    services.remove_member(users["manager"], TeamMember.objects.get(pk=expert.pk))
    assert not TeamMember.objects.filter(account=account, user=users["expert"]).exists()
    assert action_of(meeting).owner == users["support"]


def test_done_actions_and_a_member_staying_in_another_role_do_not_hold_the_removal(users, meeting, make_user):
    from pharmacrm.core.roles import Role
    from pharmacrm.keyaccounts.choices import TeamRole

    account = meeting.account
    # an engineer serving as technical support and as after-sales: leaving one role keeps their actions theirs
    both = make_user("both", Role.SUPPORT, Role.AFTERSALES)
    services.add_member(users["manager"], account, both, TeamRole.TECH_SUPPORT)
    services.add_member(users["manager"], account, both, TeamRole.AFTER_SALES)
    action = action_of(meeting)
    services.edit_action(users["kam"], action, title=action.title, owner=both, due_date=action.due_date, version=1)
    services.remove_member(users["manager"], TeamMember.objects.get(account=account, user=both,
                                                                    role=TeamRole.AFTER_SALES))  # fmt: skip
    assert action_of(meeting).owner == both
    with pytest.raises(ValidationError):  # their last role: not while the action is theirs and open
        services.remove_member(users["manager"], TeamMember.objects.get(account=account, user=both))
    # a done action does not hold the removal
    services.complete_action(both, action_of(meeting))
    services.remove_member(users["manager"], TeamMember.objects.get(account=account, user=both))
    assert not TeamMember.objects.filter(account=account, user=both).exists()


def test_a_removal_names_five_actions_and_says_there_are_more(users, meeting):
    account = meeting.account
    due = timezone.localdate() + dt.timedelta(days=3)
    # held when the first one was: an hour before it fell before the listing day between midnight and 01:00
    services.record_meeting(users["kam"], account, {"held_at": meeting.held_at, "title": "专题会", "minutes": "纪要"},
                            [{"title": f"事项{n}", "owner": users["expert"], "due_date": due} for n in range(6)])  # fmt: skip
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.remove_member(users["manager"], TeamMember.objects.get(account=account, user=users["expert"]))
    [text] = refused.value.messages
    assert text.count("(meeting “") == 5 and text.endswith(", ….")


def _race_with_removal(monkeypatch, users, account, check: str, change) -> list[str]:
    """A manager removes the after-sales engineer while `change` gives them an action, each side past its permission
    check (`services.require_manage`, `services.<check>`) before either writes. Returns the messages refused."""
    import threading

    from django.db import connection

    aftersales = TeamMember.objects.get(account=account, user=users["aftersales"])
    both_allowed = threading.Barrier(2, timeout=20)
    original_manage, original_check = services.require_manage, getattr(services, check)

    def manage_then_wait(user, acct):
        original_manage(user, acct)
        both_allowed.wait()

    def check_then_wait(*args):
        allowed = original_check(*args)
        both_allowed.wait()
        return allowed

    monkeypatch.setattr(services, "require_manage", manage_then_wait)
    monkeypatch.setattr(services, check, check_then_wait)
    refused: list[str] = []

    def run(work):
        try:
            with translation.override("en"):
                work()
        except ValidationError as e:
            refused.extend(e.messages)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(lambda: services.remove_member(users["manager"], aftersales),)),
               threading.Thread(target=run, args=(change,))]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    monkeypatch.setattr(services, "require_manage", original_manage)
    monkeypatch.setattr(services, check, original_check)
    return refused


def _one_refused(refused: list[str]) -> bool:
    return len(refused) == 1 and (refused[0] == "The owner must be a member of the account's service team."
                                  or refused[0].startswith("Give this member's open meeting actions"))  # fmt: skip


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_an_action_given_to_a_member_being_removed_refuses_one_of_the_two(users, xiehe, staffed, monkeypatch):
    """The KAM gives an action to the after-sales engineer while a manager removes them, both checked before either
    wrote: never an action owned by someone outside the team — one of the two is refused with its message."""
    account = staffed(xiehe)
    meeting = services.record_meeting(
        users["kam"], account, {"held_at": timezone.now(), "title": "季度沟通会", "minutes": "纪要"},
        [{"title": "整理培训需求", "owner": users["expert"], "due_date": timezone.localdate() + dt.timedelta(days=7)}],
    )  # fmt: skip
    action = action_of(meeting)
    refused = _race_with_removal(monkeypatch, users, account, "may_edit_action", lambda: services.edit_action(
        users["kam"], action, title=action.title, owner=users["aftersales"], due_date=action.due_date, version=1))
    still_member = TeamMember.objects.filter(account=account, user=users["aftersales"]).exists()
    handed = MeetingAction.objects.get(pk=action.pk).owner_id == users["aftersales"].pk
    assert still_member == handed  # never an action owned by someone outside the team
    assert _one_refused(refused)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_meeting_giving_an_action_to_a_member_being_removed_refuses_one_of_the_two(users, xiehe, staffed,
                                                                                     monkeypatch):  # fmt: skip
    """The KAM records a meeting giving the after-sales engineer an action while a manager removes them, both checked
    before either wrote: the meeting checked the team before taking the account's lock, and the action went to someone
    outside the team. Now the owners are checked again under the lock: one of the two is refused."""
    account = staffed(xiehe)
    refused = _race_with_removal(monkeypatch, users, account, "may_record", lambda: services.record_meeting(
        users["kam"], account, {"held_at": timezone.now(), "title": "季度沟通会", "minutes": "纪要"},
        [{"title": "回访", "owner": users["aftersales"], "due_date": timezone.localdate() + dt.timedelta(days=7)}]))
    still_member = TeamMember.objects.filter(account=account, user=users["aftersales"]).exists()
    given = MeetingAction.objects.filter(meeting__account=account, owner=users["aftersales"]).exists()
    assert still_member == given  # never an action owned by someone outside the team
    assert _one_refused(refused)
