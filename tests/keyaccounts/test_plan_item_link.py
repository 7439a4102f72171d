"""A new plan version's items remember the item of the version in force they were copied from: progress
reported on the plan in force while the draft was worked on comes across on approval even when the draft
renamed the item, moved its deadline or gave it to another owner; an item added to the draft starts afresh,
even under an old item's name."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone, translation

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import ItemStatus, PlanArea
from pharmacrm.keyaccounts.models import ServicePlan
from pharmacrm.notify.models import Notification

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import AREAS, approve_plan, item_data

pytestmark = pytest.mark.django_db


def test_an_item_renamed_in_the_draft_keeps_the_progress_reported_meanwhile(users, xiehe, with_plan):
    account, first = with_plan(xiehe)
    second = services.start_plan(users["kam"], account)
    draft = second.items.get(area=PlanArea.TRAINING)
    assert draft.carried_from == first.items.get(area=PlanArea.TRAINING)
    services.save_item(users["kam"], second, {**item_data(users, PlanArea.TRAINING), "title": "新产品操作培训（全院）",
                                              "standard": "每季度一次，签到存档", "owner": users["expert"]}, item=draft)  # fmt: skip
    services.update_progress(users["kam"], first.items.get(area=PlanArea.TRAINING), status=ItemStatus.DONE,
                             note="第一次培训已完成")  # fmt: skip
    second = approve_plan(users, second)
    renamed = second.items.get(area=PlanArea.TRAINING)
    assert (renamed.title, renamed.owner) == ("新产品操作培训（全院）", users["expert"])
    assert (renamed.status, renamed.progress, renamed.progress_note) == (ItemStatus.DONE, 100, "第一次培训已完成")
    assert renamed.completed_at is not None and renamed.next_check_at is None  # done: no deadline clock


def test_a_moved_deadline_keeps_the_progress_but_is_watched_and_alerted_again(users, xiehe, with_plan):
    account, first = with_plan(xiehe, deadline=timezone.localdate() + dt.timedelta(days=1))
    services.update_progress(users["kam"], first.items.get(area=PlanArea.SUPPLY), status=ItemStatus.IN_PROGRESS,
                             progress=40)  # fmt: skip
    later = timezone.now() + dt.timedelta(days=5)
    assert services.sweep_plan_items(now=later) == 4  # all four overdue, each told once
    second = services.start_plan(users["kam"], account)
    supply = second.items.get(area=PlanArea.SUPPLY)
    services.save_item(users["kam"], second, {**item_data(users, PlanArea.SUPPLY),
                                              "deadline": timezone.localdate() + dt.timedelta(days=2)}, item=supply)  # fmt: skip
    second = approve_plan(users, second)
    moved = second.items.get(area=PlanArea.SUPPLY)
    assert (moved.status, moved.progress, moved.overdue_notified_at) == (ItemStatus.IN_PROGRESS, 40, None)
    # the three unchanged items were told already; the moved one is told once when its new deadline passes
    assert services.sweep_plan_items(now=later + dt.timedelta(hours=1)) == 1
    assert Notification.objects.filter(kind="keyaccounts.overdue", recipient=users["kam"]).count() == 5


def test_an_item_added_under_an_old_items_name_starts_afresh(users, xiehe, with_plan):
    account, first = with_plan(xiehe)
    second = services.start_plan(users["kam"], account)
    services.delete_item(users["kam"], second.items.get(area=PlanArea.SUPPLY))
    added = services.save_item(users["kam"], second, item_data(users, PlanArea.SUPPLY))  # the same four fields
    assert added.carried_from is None
    services.update_progress(users["kam"], first.items.get(area=PlanArea.SUPPLY), status=ItemStatus.IN_PROGRESS,
                             progress=60)  # fmt: skip
    second = approve_plan(users, second)
    added.refresh_from_db()
    assert (added.status, added.progress) == (ItemStatus.PLANNED, 0)


def test_items_all_added_again_under_their_old_names_start_afresh(users, xiehe, with_plan):
    """A draft whose copied items were all deleted holds no link, yet it is no draft from before the upgrade:
    what was added to it is new, and takes over nothing."""
    account, first = with_plan(xiehe)
    second = services.start_plan(users["kam"], account)
    for item in second.items.all():
        services.delete_item(users["kam"], item)
    for area in AREAS:
        services.save_item(users["kam"], second, item_data(users, area))  # the same four fields as before
    services.update_progress(users["kam"], first.items.get(area=PlanArea.SUPPLY), status=ItemStatus.DONE)
    second = approve_plan(users, second)
    assert {(i.status, i.progress) for i in second.items.all()} == {(ItemStatus.PLANNED, 0)}


def test_a_draft_started_before_the_link_is_matched_by_its_fields(users, xiehe, with_plan):
    """Drafts copied before the upgrade carry no link: an unchanged item still takes over its progress."""
    account, first = with_plan(xiehe)
    second = services.start_plan(users["kam"], account)
    second.items.update(carried_from=None)
    applied = MigrationRecorder.Migration.objects.get(app="keyaccounts", name="0005_planitem_carried_from").applied
    ServicePlan.objects.filter(pk=second.pk).update(created_at=applied - dt.timedelta(days=1))
    services.update_progress(users["kam"], first.items.get(area=PlanArea.AFTER_SALES), status=ItemStatus.IN_PROGRESS,
                             progress=70)  # fmt: skip
    second = approve_plan(users, second)
    item = second.items.get(area=PlanArea.AFTER_SALES)
    assert (item.status, item.progress) == (ItemStatus.IN_PROGRESS, 70)


def test_progress_reported_as_the_next_version_is_approved_is_refused_not_lost(users, xiehe, with_plan):
    """The owner opened the item of the plan in force; the next version is approved before they save: the
    report is refused (it would land on the superseded version), not silently lost."""
    account, first = with_plan(xiehe)
    second = services.start_plan(users["kam"], account)
    opened = first.items.select_related("plan").get(area=PlanArea.SUPPLY)  # read while the plan was in force
    approve_plan(users, second)
    with translation.override("en"), pytest.raises(ValidationError, match="came into force meanwhile"):
        services.update_progress(users["kam"], opened, status=ItemStatus.DONE, version=opened.version)
    assert first.items.get(area=PlanArea.SUPPLY).status == ItemStatus.PLANNED


def test_an_item_moved_to_another_area_starts_afresh(users, xiehe, with_plan):
    account, first = with_plan(xiehe)
    second = services.start_plan(users["kam"], account)
    services.update_progress(users["kam"], first.items.get(area=PlanArea.SUPPLY), status=ItemStatus.DONE)
    moved = second.items.get(area=PlanArea.SUPPLY)
    services.save_item(users["kam"], second, {**item_data(users, PlanArea.FREE), "title": "免费送货上门"}, item=moved)
    services.save_item(users["kam"], second, {**item_data(users, PlanArea.SUPPLY), "title": "紧急订单 24 小时发货"})
    second = approve_plan(users, second)
    moved.refresh_from_db()
    assert (moved.area, moved.status, moved.progress) == (PlanArea.FREE, ItemStatus.PLANNED, 0)


def test_an_overdue_item_given_to_a_new_owner_keeps_its_progress_and_tells_the_new_owner(users, xiehe, with_plan):
    account, first = with_plan(xiehe, deadline=timezone.localdate() + dt.timedelta(days=1))
    services.update_progress(users["kam"], first.items.get(area=PlanArea.TRAINING), status=ItemStatus.IN_PROGRESS,
                             progress=30)  # fmt: skip
    later = timezone.now() + dt.timedelta(days=5)
    assert services.sweep_plan_items(now=later) == 4  # the kam owns all four and is told of each once
    second = services.start_plan(users["kam"], account)
    training = second.items.get(area=PlanArea.TRAINING)
    services.save_item(users["kam"], second, {**item_data(users, PlanArea.TRAINING, owner="expert"),
                                              "deadline": training.deadline}, item=training)  # fmt: skip
    second = approve_plan(users, second)
    training.refresh_from_db()
    assert (training.owner, training.status, training.progress) == (users["expert"], ItemStatus.IN_PROGRESS, 30)
    assert services.sweep_plan_items(now=later + dt.timedelta(hours=1)) == 1  # the new owner, once
    assert Notification.objects.filter(kind="keyaccounts.overdue", recipient=users["expert"]).count() == 1
