"""Session 36 review of the key-account file, as a key-account manager and factory leadership use it.

1. The file page's "Show all N meetings" counted and listed every recorded meeting, those dated before the customer
   was listed among them (recorded before such dates were refused), and so did the API's meetings list, while the
   progress report counts only the meetings since the listing. The page and the API now count and list the
   programme's meetings as the report does, and show the earlier ones apart, labelled "before listing", with their
   minutes and action items (an open action of one can still be ticked off).
2. A de-listed customer's file, its row in the de-listed list and its progress report flagged as overdue every plan
   item left open whose deadline came after the de-listing — more each day, for a customer nobody serves any more —
   while its evaluation and the scorecards count such items against nobody. Only what was missed while the customer
   was served stays overdue.
"""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from pharmacrm.keyaccounts import services
from pharmacrm.keyaccounts.models import KeyAccount, Meeting, MeetingAction, PlanItem

from .programme_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


def _local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


# --- 1. meetings before the listing on the page and in the API --------------------------------------------------


@pytest.fixture
def old_and_new_meetings(users, xiehe, staffed):
    """协和, listed 40 days ago at 10:00 (Beijing time), with 22 meetings since (the listing day at 07:00 among them:
    the day before in UTC) and two dated before it — the evening before the listing, and a month earlier with an open
    action of the kam's — written as the old code let them through. → (account, the listing day)."""
    account = staffed(xiehe)
    listed = timezone.localdate() - dt.timedelta(days=40)
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=_local(listed, 10))
    Meeting.objects.create(account=account, held_at=_local(listed, 7), title="第1次沟通会", minutes="纪要")
    for n in range(2, 23):
        Meeting.objects.create(account=account, held_at=_local(listed + dt.timedelta(days=n), 10),
                               title=f"第{n}次沟通会", minutes="纪要")  # fmt: skip
    Meeting.objects.create(account=account, held_at=_local(listed - dt.timedelta(days=1), 23, 30),
                           title="列名前夜的碰头会", minutes="纪要")  # fmt: skip
    early = Meeting.objects.create(account=account, held_at=_local(listed - dt.timedelta(days=30), 9),
                                   title="列名前的拜访", minutes="客户提出供货需求")  # fmt: skip
    MeetingAction.objects.create(meeting=early, title="核对供货清单", owner=users["kam"],
                                 due_date=listed + dt.timedelta(days=5))  # fmt: skip
    return account, listed


def test_the_page_counts_the_meetings_since_the_listing_and_shows_the_earlier_ones_apart(old_and_new_meetings,
                                                                                        client_for):  # fmt: skip
    account, listed = old_and_new_meetings
    kam = client_for("kam")
    url = reverse("keyaccounts:account", args=[account.pk])
    page = kam.get(url, **EN)
    html = page.content.decode()
    # 22 meetings of the programme, as the progress report counts them (not 24)
    assert "Show all 22 meetings" in html
    assert page.context["meetings_total"] == 22
    assert len(page.context["meetings"]) == 20
    assert all(m.title.endswith("次沟通会") for m in page.context["meetings"])
    # the earlier ones apart, labelled, with their minutes and their open action to tick off
    assert [m.title for m in page.context["meetings_before_listing"]] == ["列名前夜的碰头会", "列名前的拜访"]
    assert "2 meetings before the listing" in html
    assert (f"Recorded with a date before {listed.isoformat()}, when the customer became a key account: not meetings "
            "of the programme, they are not counted here or in the progress report.") in html  # fmt: skip
    section = html[html.index('id="meetings-before-listing"'):]
    assert "客户提出供货需求" in section and "核对供货清单" in section and "before listing" in section
    action = MeetingAction.objects.get()
    assert reverse("keyaccounts:action-toggle", args=[account.pk, action.pk]) in section
    everything = kam.get(url + "?meetings=all", **EN)
    assert [m.title for m in everything.context["meetings"]][-1] == "第1次沟通会"
    assert len(everything.context["meetings"]) == 22
    assert "Show all" not in everything.content.decode()
    chinese = kam.get(url, **ZH).content.decode()
    assert "列名前的会议 2 次" in chinese and "不属于重点客户服务的会议" in chinese
    # the page's figure is the report's
    book = load_workbook(io.BytesIO(client_for("manager").get(reverse("keyaccounts:report-xlsx"), **EN).content))
    assert {r[0].value: r[5].value for r in book.worksheets[0].iter_rows(min_row=2)} == {account.number: 22}


def test_without_meetings_since_the_listing_the_page_says_so(users, xiehe, staffed, client_for):
    account = staffed(xiehe)
    listed = timezone.localdate() - dt.timedelta(days=5)
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=_local(listed, 10))
    Meeting.objects.create(account=account, held_at=_local(listed - dt.timedelta(days=2), 9), title="拜访", minutes="纪要")
    html = client_for("kam").get(reverse("keyaccounts:account", args=[account.pk]), **EN).content.decode()
    assert "No meetings held since the listing." in html and "1 meeting before the listing" in html
    assert "No meetings recorded yet." not in html


def test_the_api_lists_the_meetings_since_the_listing_and_the_earlier_ones_on_request(old_and_new_meetings,
                                                                                     api_client):  # fmt: skip
    account, listed = old_and_new_meetings
    kam = api_client("kam")
    body = kam.get(f"/api/v1/keyaccounts/meetings/?account={account.pk}&page_size=100").json()
    rows = body["results"] if isinstance(body, dict) else body
    assert len(rows) == 22 and (body.get("count", 22) if isinstance(body, dict) else 22) == 22
    assert {r["before_listing"] for r in rows} == {False}
    assert "列名前的拜访" not in {r["title"] for r in rows}
    body = kam.get(f"/api/v1/keyaccounts/meetings/?account={account.pk}&before_listing=true").json()
    rows = body["results"] if isinstance(body, dict) else body
    assert [(r["title"], r["before_listing"]) for r in rows] == [("列名前夜的碰头会", True), ("列名前的拜访", True)]
    assert rows[1]["actions"][0]["title"] == "核对供货清单"
    early = Meeting.objects.get(title="列名前的拜访")
    one = kam.get(f"/api/v1/keyaccounts/meetings/{early.pk}/").json()
    assert one["before_listing"] is True
    bad = kam.get(f"/api/v1/keyaccounts/meetings/?account={account.pk}&before_listing=maybe")
    assert bad.status_code == 400 and "before_listing" in bad.json()
    # a meeting recorded now is the programme's
    now = kam.post("/api/v1/keyaccounts/meetings/", {"account": account.pk, "held_at": timezone.now().isoformat(),
                                                     "title": "月度会", "minutes": "纪要"}, format="json")  # fmt: skip
    assert now.status_code == 201 and now.json()["before_listing"] is False
    assert services.since_listing(Meeting.objects.filter(account=account)).count() == 23


# --- 2. overdue items of a de-listed file ---------------------------------------------------------------------------


def test_a_delisted_files_items_due_after_the_delisting_are_not_overdue(users, xiehe, with_plan, make_proposal,
                                                                       manager2, client_for):  # fmt: skip
    from .test_lifecycle_fixes import delist

    account, plan = with_plan(xiehe)
    today = timezone.localdate()
    missed, after, soon, later = plan.items.order_by("id")
    for item, days in ((missed, -20), (after, -10), (soon, 5)):
        PlanItem.objects.filter(pk=item.pk).update(deadline=today + dt.timedelta(days=days))
    delist(make_proposal, manager2, xiehe)
    delisted_on = today - dt.timedelta(days=15)
    KeyAccount.objects.filter(pk=account.pk).update(delisted_at=_local(delisted_on, 11))
    manager = client_for("manager")
    page = manager.get(reverse("keyaccounts:account", args=[account.pk]), **EN)
    flagged = {i.pk for i in page.context["plan_items"] if i.overdue}
    assert flagged == {missed.pk}  # missed while served; the one due after the de-listing is nobody's
    html = page.content.decode()
    assert html.count("overdue-flag") == 1
    listing = manager.get(reverse("keyaccounts:home") + "?status=delisted", **EN)
    assert [(r["open"], r["overdue"]) for r in listing.context["rows"]] == [(4, 1)]
    report = manager.get(reverse("keyaccounts:report-xlsx") + f"?account={account.pk}", **EN)
    book = load_workbook(io.BytesIO(report.content))
    assert [c.value for c in book.worksheets[0][2]][2:5] == [0, 4, 1]  # items done, open, overdue
    due = [[c.value for c in row] for row in book.worksheets[1].iter_rows(min_row=2)]
    assert [(r[2], r[6]) for r in due] == [(missed.title, 20)]  # nothing falls due for a customer no longer served
    # the day from which nothing counts as overdue for it
    assert services.overdue_until(KeyAccount.objects.get(pk=account.pk), today) == delisted_on
