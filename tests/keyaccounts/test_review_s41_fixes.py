"""Key-account programme, session 41 review.

1. An item owner's progress report that changed only its note (the status and percentage as they were: "the delivery
   note is filed") replaced the note on the plan with an audit entry of no changes: the note it replaced was gone from
   the trail, unlike a trial offer's notes. The note is now in the entry, before and after; a report that changes
   nothing (the form sent twice) writes nothing and keeps the item's version.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from pharmacrm.core.models import AuditEntry
from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.choices import ItemStatus, PlanArea
from pharmacrm.keyaccounts.models import PlanItem

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
