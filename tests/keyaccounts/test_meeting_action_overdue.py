"""Overdue alerts for service meetings' action items (session 36).

A plan item's owner, the account's project manager and the managers are told once when an open item passes its
deadline (services.sweep_plan_items); a meeting action item (title, owner, due date) passed its due date unnoticed.
Open actions now run on the same due clock (core/dueclock.py) and the same every-minute task: once the due day has
ended (China time) the worker tells the same people once. A done action, or one of a de-listed (closed) file, is not
reported; an edit that moves the due date or hands the action over starts the alert afresh; a worker whose lease
ran out while it was still sending, or two workers at once, never send it twice. The work page flags overdue
actions as it flags overdue plan items.

The threaded test runs on PostgreSQL (on SQLite, writers are serialised from the start of their transaction); the
lease cases run on both databases."""

from __future__ import annotations

import datetime as dt
import html
import threading

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core import dueclock
from pharmacrm.keyaccounts import services, tasks
from pharmacrm.keyaccounts.models import MeetingAction
from pharmacrm.notify.models import Notification

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import action_of, sign_code

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
OVERDUE = "keyaccounts.overdue"


def _alerts(user, action=None) -> int:
    told = Notification.objects.filter(kind=OVERDUE, recipient=user)
    if action is not None:
        told = told.filter(object_type=MeetingAction._meta.label_lower, object_id=str(action.pk))
    return told.count()


def _end_of(day: dt.date) -> dt.datetime:
    """The first moment after `day`, China time."""
    return timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time()))


@pytest.mark.django_db
def test_an_open_action_is_reported_overdue_once_its_due_day_has_ended(users, meeting):
    action = action_of(meeting)
    end = _end_of(action.due_date)
    assert timezone.localtime(end).utcoffset() == dt.timedelta(hours=8)  # the due day ends at midnight in China

    assert services.sweep_meeting_actions(now=end - dt.timedelta(seconds=1)) == 0  # the last second of the due day
    assert services.sweep_meeting_actions(now=end) == 1
    assert services.sweep_meeting_actions(now=end + dt.timedelta(hours=1)) == 0
    assert services.sweep_meeting_actions(now=end + dt.timedelta(days=3)) == 0
    # the owner, the project manager and the managers, as for a plan item: once each
    for name in ("expert", "kam", "manager"):
        assert _alerts(users[name], action) == 1, name
    assert _alerts(users["support"]) == 0  # the rest of the team is not told
    note = Notification.objects.get(kind=OVERDUE, recipient=users["expert"])
    # in the recipient's language (Simplified Chinese by default), naming the customer, the action and its meeting
    name = meeting.account.institution.name
    assert str(note.title) == f"{name} 的会议待办事项已逾期：整理培训需求"
    assert str(note.body) == f"截止日期 {action.due_date.isoformat()}；负责人 {users['expert']}；来自会议“季度沟通会”。"
    assert note.url.endswith("#meetings")
    stored = action_of(meeting)
    assert (stored.overdue_notified_at, stored.next_check_at) == (end, None)


@pytest.mark.django_db
def test_the_every_minute_task_sweeps_meeting_actions(users, meeting):
    MeetingAction.objects.filter(meeting=meeting).update(
        due_date=timezone.localdate() - dt.timedelta(days=1), next_check_at=_end_of(timezone.localdate() - dt.timedelta(days=1)))
    tasks.sweep_programme_clocks.call_local()
    tasks.sweep_programme_clocks.call_local()
    assert _alerts(users["expert"]) == 1


@pytest.mark.django_db
def test_an_action_done_before_its_due_date_is_not_reported(users, meeting):
    action = action_of(meeting)
    services.complete_action(users["expert"], action)
    assert services.sweep_meeting_actions(now=_end_of(action.due_date) + dt.timedelta(hours=1)) == 0
    assert _alerts(users["expert"]) == 0 and _alerts(users["manager"]) == 0


@pytest.mark.django_db
def test_an_action_reopened_is_reported_once_whether_or_not_it_was_already(users, meeting):
    """Reopened before its due date: watched again. Reopened after its alert went out: not told twice (as a plan
    item reported open again)."""
    action = action_of(meeting)
    end = _end_of(action.due_date)
    services.complete_action(users["expert"], action)
    services.complete_action(users["expert"], action_of(meeting), done=False)
    assert services.sweep_meeting_actions(now=end) == 1
    services.complete_action(users["expert"], action_of(meeting))
    services.complete_action(users["expert"], action_of(meeting), done=False)
    assert services.sweep_meeting_actions(now=end + dt.timedelta(days=1)) == 0
    assert _alerts(users["expert"]) == 1


@pytest.mark.django_db
def test_the_actions_of_a_delisted_account_are_not_reported(users, meeting, make_proposal, manager2):
    action = action_of(meeting)
    proposal = make_proposal(meeting.account.institution, kind="delist")
    services.decide(manager2, proposal, approve=True, comment="合作结束", otp_code=sign_code(manager2))
    assert action_of(meeting).next_check_at is None  # the clock stopped with the file
    assert services.sweep_meeting_actions(now=_end_of(action.due_date) + dt.timedelta(hours=1)) == 0
    assert _alerts(users["expert"]) == 0 and _alerts(users["manager"]) == 0


@pytest.mark.django_db
def test_a_sweep_that_finds_the_account_delisted_after_its_claim_sends_nothing(users, meeting):
    """The worker leased the action; the file was closed before it got to it (without the de-listing's clean-up)."""
    from pharmacrm.keyaccounts.choices import AccountStatus
    from pharmacrm.keyaccounts.models import KeyAccount

    action = action_of(meeting)
    KeyAccount.objects.filter(pk=meeting.account_id).update(status=AccountStatus.DELISTED, delisted_at=timezone.now())
    assert services.sweep_meeting_actions(now=_end_of(action.due_date)) == 0
    assert _alerts(users["expert"]) == 0 and action_of(meeting).next_check_at is None


@pytest.mark.django_db
def test_a_due_date_moved_later_is_reported_again_once_the_new_date_has_passed(users, meeting):
    action = action_of(meeting)
    first_end = _end_of(action.due_date)
    assert services.sweep_meeting_actions(now=first_end) == 1
    later = action.due_date + dt.timedelta(days=14)
    services.edit_action(users["kam"], action, title=action.title, owner=action.owner, due_date=later,
                         version=action.version)  # fmt: skip
    assert services.sweep_meeting_actions(now=first_end + dt.timedelta(days=1)) == 0  # not due again yet
    assert services.sweep_meeting_actions(now=_end_of(later) - dt.timedelta(seconds=1)) == 0
    assert services.sweep_meeting_actions(now=_end_of(later)) == 1
    assert services.sweep_meeting_actions(now=_end_of(later) + dt.timedelta(hours=1)) == 0
    assert _alerts(users["expert"], action) == 2 and _alerts(users["manager"], action) == 2


@pytest.mark.django_db
def test_a_corrected_text_does_not_report_the_action_again(users, meeting):
    action = action_of(meeting)
    end = _end_of(action.due_date)
    assert services.sweep_meeting_actions(now=end) == 1
    services.edit_action(users["kam"], action, title="整理培训需求（含新药）", owner=action.owner,
                         due_date=action.due_date, version=action.version)  # fmt: skip
    assert services.sweep_meeting_actions(now=end + dt.timedelta(hours=1)) == 0
    assert _alerts(users["expert"]) == 1


@pytest.mark.django_db
def test_a_due_date_moved_while_the_worker_held_its_lease_is_watched_for_the_new_date(users, meeting):
    """The worker leased the action (its due day over) and, before it read it, the date was moved on: no alert now,
    one when the new date has passed."""
    action = action_of(meeting)
    end = _end_of(action.due_date)
    later = action.due_date + dt.timedelta(days=10)
    # the edit as it lands between the worker's lease and its read: the row moved on, the lease still there
    MeetingAction.objects.filter(pk=action.pk).update(due_date=later)
    assert services.sweep_meeting_actions(now=end) == 0
    assert action_of(meeting).next_check_at == _end_of(later)
    assert services.sweep_meeting_actions(now=_end_of(later)) == 1
    assert _alerts(users["expert"]) == 1


@pytest.mark.django_db
def test_a_worker_killed_after_its_lease_leaves_the_alert_to_the_next_sweep_once(users, meeting):
    action = action_of(meeting)
    end = _end_of(action.due_date)
    assert dueclock.claim_batch(MeetingAction, [action.pk], end) == [action.pk]  # a worker leased it, then died
    assert services.sweep_meeting_actions(now=end) == 0  # another worker leaves it to the lease
    assert services.sweep_meeting_actions(now=end + dueclock.LEASE + dt.timedelta(seconds=1)) == 1
    assert services.sweep_meeting_actions(now=end + dueclock.LEASE + dt.timedelta(minutes=5)) == 0
    assert _alerts(users["expert"]) == 1


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_report_an_overdue_action_once(users, meeting, monkeypatch):
    """Two workers: the first is still sending (its alert not committed) when its lease runs out and a second worker
    leases the action too. The second waits for the first, then finds the alert recorded and sends nothing."""
    from .test_execution_fixes import _paused_after

    action = action_of(meeting)
    end = _end_of(action.due_date)
    swept: list[int] = []
    errors = _paused_after(
        monkeypatch, services, "_notify",
        lambda: swept.append(services.sweep_meeting_actions(now=end)),
        lambda: swept.append(services.sweep_meeting_actions(now=end + dueclock.LEASE + dt.timedelta(seconds=1))),
    )  # fmt: skip
    assert errors == [] and sorted(swept) == [0, 1]
    assert _alerts(users["expert"]) == 1 and _alerts(users["manager"]) == 1


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_workers_started_together_report_an_overdue_action_once(users, meeting):
    action = action_of(meeting)
    now = _end_of(action.due_date)
    start, swept, errors = threading.Barrier(2), [], []

    def sweep():
        try:
            start.wait(10)
            swept.append(services.sweep_meeting_actions(now=now))
        except BaseException as e:  # noqa: BLE001 — asserted below
            errors.append(e)
        finally:
            connection.close()

    workers = [threading.Thread(target=sweep) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert errors == [] and sorted(swept) == [0, 1]
    assert _alerts(users["expert"]) == 1 and _alerts(users["kam"]) == 1


@pytest.mark.django_db
def test_the_work_page_and_the_account_page_flag_overdue_actions(users, meeting, client_for):
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    action = action_of(meeting)
    services.record_meeting(users["kam"], meeting.account, {
        "held_at": meeting.held_at + dt.timedelta(minutes=1), "title": "供货协调会", "minutes": "讨论备货"},
        [{"title": "提交备货计划", "owner": users["expert"], "due_date": timezone.localdate() + dt.timedelta(days=3)}])
    MeetingAction.objects.filter(pk=action.pk).update(due_date=yesterday)

    page = html.unescape(client_for("expert").get(reverse("keyaccounts:my"), **EN).content.decode())
    block = page.split('id="member-actions"')[1].split("</section>")[0]
    rows = {row.split(">", 1)[1].split("</li>")[0]: row for row in block.split('<li class="member-action')[1:]}
    late = next(text for text in rows if "整理培训需求" in text)
    on_time = next(text for text in rows if "提交备货计划" in text)
    assert "Overdue" in late and "Overdue" not in on_time

    page = html.unescape(client_for("kam").get(reverse("keyaccounts:account", args=[meeting.account_id]), **EN)
                         .content.decode())  # fmt: skip
    item = page.split(f'class="meeting-action" data-id="{action.pk}"')[1].split("</li>")[0]
    assert "Overdue" in item


@pytest.mark.django_db
def test_the_upgrade_arms_the_open_actions_of_accounts_served_and_reports_those_overdue_once(users, meeting):
    """Migration 0017: actions recorded before it have no clock. The open ones of an account served get one (an action
    overdue already is reported by the first sweep, once); done ones are not watched."""
    import importlib
    from types import SimpleNamespace

    from django.apps import apps

    arm = importlib.import_module("pharmacrm.keyaccounts.migrations.0017_meetingaction_overdue_clock").arm_open_actions
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    services.record_meeting(users["kam"], meeting.account, {
        "held_at": meeting.held_at + dt.timedelta(minutes=1), "title": "供货协调会", "minutes": "讨论备货"},
        [{"title": "提交备货计划", "owner": users["support"], "due_date": timezone.localdate()}])  # fmt: skip
    done = MeetingAction.objects.get(title="提交备货计划")
    services.complete_action(users["support"], done)
    MeetingAction.objects.update(due_date=yesterday, next_check_at=None)  # as they were before the upgrade

    arm(apps, SimpleNamespace(connection=connection))

    assert action_of(meeting).next_check_at == _end_of(yesterday)
    assert MeetingAction.objects.get(pk=done.pk).next_check_at is None
    assert services.sweep_meeting_actions() == 1 and services.sweep_meeting_actions() == 0
    assert _alerts(users["expert"]) == 1 and _alerts(users["support"]) == 0


@pytest.mark.django_db
def test_a_delisted_files_page_flags_only_the_actions_missed_while_it_was_served(users, meeting, client_for,
                                                                                make_proposal, manager2):  # fmt: skip
    """As its plan items: an open action that fell due before the de-listing day stays overdue; one whose due date came
    after it is overdue for nobody (the file is closed, nobody can tick it off)."""
    from pharmacrm.keyaccounts.models import KeyAccount

    services.record_meeting(users["kam"], meeting.account, {
        "held_at": meeting.held_at + dt.timedelta(minutes=1), "title": "供货协调会", "minutes": "讨论备货"},
        [{"title": "提交备货计划", "owner": users["support"], "due_date": timezone.localdate()}])  # fmt: skip
    proposal = make_proposal(meeting.account.institution, kind="delist")
    services.decide(manager2, proposal, approve=True, comment="合作结束", otp_code=sign_code(manager2))
    today = timezone.localdate()
    KeyAccount.objects.filter(pk=meeting.account_id).update(delisted_at=timezone.now() - dt.timedelta(days=5))
    missed = action_of(meeting)
    MeetingAction.objects.filter(pk=missed.pk).update(due_date=today - dt.timedelta(days=6))
    after = MeetingAction.objects.get(title="提交备货计划")
    MeetingAction.objects.filter(pk=after.pk).update(due_date=today - dt.timedelta(days=2))

    page = html.unescape(client_for("kam").get(reverse("keyaccounts:account", args=[meeting.account_id]), **EN)
                         .content.decode())  # fmt: skip
    assert "Overdue" in page.split(f'class="meeting-action" data-id="{missed.pk}"')[1].split("</li>")[0]
    assert "Overdue" not in page.split(f'class="meeting-action" data-id="{after.pk}"')[1].split("</li>")[0]
