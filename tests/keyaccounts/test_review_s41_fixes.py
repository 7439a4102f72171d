"""Key-account programme, session 41 review.

1. An item owner's progress report that changed only its note (the status and percentage as they were: "the delivery
   note is filed") replaced the note on the plan with an audit entry of no changes: the note it replaced was gone from
   the trail, unlike a trial offer's notes. The note is now in the entry, before and after; a report that changes
   nothing (the form sent twice) writes nothing and keeps the item's version.
2. A meeting's action item due 9999-12-31 (an ERP's "no end", or a slip of the year) failed the page and the API with
   a server error (its overdue clock overflowed the calendar) and nothing was recorded. It is refused under the
   action's due date, as correcting an action already refuses it.
3. A reviewer who revised their department's opinion (oppose, with its reason, then support) left an audit entry that
   read as a first opinion: the opposition and its reason it replaced were in no entry's "before". The entry now
   gives the opinion replaced and the new one, each with its comment; the same opinion sent again is no change.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import ItemStatus, PlanArea
from pharmacrm.keyaccounts.models import Meeting, PlanItem

from .programme_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db


def _progress(client, account, item, **data):
    post = {f"progress{item.pk}-{k}": v for k, v in {"version": item.version, **data}.items()}
    return client.post(reverse("keyaccounts:item-progress", args=[account.pk, item.pk]), post, HTTP_ACCEPT_LANGUAGE="en")


def _entries(item):
    return list(AuditEntry.objects.filter(object_type="keyaccounts.planitem", object_id=str(item.pk), action="update")
                .order_by("seq").values_list("changes", flat=True))  # fmt: skip


def test_a_progress_note_replaced_stays_in_the_audit_trail(users, xiehe, with_plan, client_for):
    account, plan = with_plan(xiehe)
    item = plan.items.get(area=PlanArea.SUPPLY)
    kam = client_for("kam")
    assert _progress(kam, account, item, status=ItemStatus.IN_PROGRESS, progress=40, note="已与药剂科确认到货时间").status_code == 302
    item.refresh_from_db()

    # the same status and percentage, a new note
    assert _progress(kam, account, item, status=ItemStatus.IN_PROGRESS, progress=40, note="到货单已归档").status_code == 302

    item.refresh_from_db()
    assert item.progress_note == "到货单已归档"
    assert _entries(item)[-1] == {"progress_note": ["已与药剂科确认到货时间", "到货单已归档"]}
    assert _entries(item)[0] == {"progress": [0, 40], "progress_note": ["", "已与药剂科确认到货时间"],
                                 "status": [ItemStatus.PLANNED, ItemStatus.IN_PROGRESS]}  # fmt: skip


def test_a_progress_report_sent_twice_changes_nothing_the_second_time(users, xiehe, with_plan, client_for):
    account, plan = with_plan(xiehe)
    item = plan.items.get(area=PlanArea.TRAINING)
    kam = client_for("kam")
    assert _progress(kam, account, item, status=ItemStatus.IN_PROGRESS, progress=50, note="第一次培训已完成").status_code == 302
    item.refresh_from_db()
    version, entries = item.version, len(_entries(item))

    services.update_progress(users["kam"], item, status=ItemStatus.IN_PROGRESS, progress=50, note="第一次培训已完成",
                             version=item.version)  # fmt: skip

    assert PlanItem.objects.get(pk=item.pk).version == version  # a colleague's open form stays current
    assert len(_entries(item)) == entries


def test_a_meeting_action_due_in_the_year_9999_is_refused_under_its_due_date(users, xiehe, staffed, client_for,
                                                                              api_client):
    account = staffed(xiehe)
    page = client_for("kam").post(reverse("keyaccounts:meeting-create", args=[account.pk]), {
        "meeting-held_at": timezone.localtime().strftime("%Y-%m-%d %H:%M"), "meeting-title": "季度沟通会",
        "meeting-minutes": "讨论供货", "meeting-action_1_title": "整理培训需求",
        "meeting-action_1_owner": users["expert"].pk, "meeting-action_1_due": "9999-12-31",
    }, HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert page.status_code == 400
    assert "Enter a date between 2000 and 2999." in page.content.decode()

    r = api_client("kam").post("/api/v1/keyaccounts/meetings/", {
        "account": account.pk, "held_at": timezone.now().isoformat(), "title": "季度沟通会", "minutes": "讨论供货",
        "actions": [{"title": "整理培训需求", "owner": users["expert"].pk, "due_date": "9999-12-31"}],
    }, format="json")  # fmt: skip
    assert r.status_code == 400
    assert r.json()["actions"] == {"0": {"due_date": ["Enter a date between 2000 and 2999."]}}
    assert not Meeting.objects.exists()

    # a due date within the years is recorded as before
    r = api_client("kam").post("/api/v1/keyaccounts/meetings/", {
        "account": account.pk, "held_at": timezone.now().isoformat(), "title": "季度沟通会", "minutes": "讨论供货",
        "actions": [{"title": "整理培训需求", "owner": users["expert"].pk,
                     "due_date": (timezone.localdate() + dt.timedelta(days=7)).isoformat()}],
    }, format="json")  # fmt: skip
    assert r.status_code == 201


def test_a_revised_opinion_is_audited_with_the_one_it_replaces(users, xiehe, make_proposal):
    proposal = make_proposal(xiehe, submitted=False)
    services.give_opinion(users["pv"], proposal, opinion="oppose", comment="近一年有两起质量投诉未结案")
    services.give_opinion(users["pv"], proposal, opinion="support", comment="投诉已结案")
    services.give_opinion(users["pv"], proposal, opinion="support", comment="投诉已结案")  # sent twice

    entries = list(AuditEntry.objects.filter(object_type="keyaccounts.proposal", object_id=str(proposal.pk),
                                             changes__has_key="review").order_by("seq").values_list("changes", flat=True))
    pv = [e["review"] for e in entries if e["review"][1]["department"] == "qa"]
    assert pv == [
        [None, {"department": "qa", "opinion": "oppose", "comment": "近一年有两起质量投诉未结案"}],
        [{"department": "qa", "opinion": "oppose", "comment": "近一年有两起质量投诉未结案"},
         {"department": "qa", "opinion": "support", "comment": "投诉已结案"}],
    ]  # fmt: skip


def test_a_done_item_reopened_asks_for_its_progress_instead_of_staying_at_100(users, xiehe, with_plan, client_for):
    """The after-sales item was ticked done, then the customer reported the training incomplete and the project
    manager set it back to "in progress": the form kept the 100 % that "done" gave it, so the plan, the key-account
    file and the leadership's progress report showed an open item as complete. Now the form asks for the progress."""
    account, plan = with_plan(xiehe)
    item = plan.items.get(area=PlanArea.TRAINING)
    kam = client_for("kam")
    assert _progress(kam, account, item, status=ItemStatus.DONE, note="两场培训已完成").status_code == 302
    item.refresh_from_db()
    assert item.progress == 100

    refused = _progress(kam, account, item, status=ItemStatus.IN_PROGRESS, progress=100, note="第二场需补课")
    assert refused.status_code == 400
    assert "A reopened item is not finished: give its progress, below 100 %." in refused.content.decode()
    with pytest.raises(ValidationError) as api_like:
        services.update_progress(users["kam"], item, status=ItemStatus.IN_PROGRESS, version=item.version)
    assert list(api_like.value.message_dict) == ["progress"]
    assert PlanItem.objects.get(pk=item.pk).status == ItemStatus.DONE  # nothing half-written

    assert _progress(kam, account, item, status=ItemStatus.IN_PROGRESS, progress=70, note="第二场需补课").status_code == 302
    item.refresh_from_db()
    assert (item.status, item.progress, item.completed_at) == (ItemStatus.IN_PROGRESS, 70, None)
