"""Session 35 review of the key-account programme, as its users meet it:

1. A service meeting could be dated before the customer was listed as a key account, and such a meeting counted in
   the progress report as one of the programme's.
"""

from __future__ import annotations

import datetime as dt
import io
import subprocess

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from pharmacrm.keyaccounts.models import KeyAccount, Meeting

from .programme_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


def _local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


# --- 1. meetings before the listing -------------------------------------------------------------------------------


@pytest.fixture
def listed_ten_days_ago(users, xiehe, staffed):
    """协和, listed ten days ago at 10:00 (Beijing time) with its service team. → (account, the listing day)."""
    account = staffed(xiehe)
    listed = timezone.localdate() - dt.timedelta(days=10)
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=_local(listed, 10))
    return account, listed  # the copy in `account` still says today: the service reads the stored date


def _meeting_form(held: dt.datetime, title: str = "季度服务沟通会") -> dict:
    return {"meeting-held_at": timezone.localtime(held).strftime("%Y-%m-%dT%H:%M"), "meeting-title": title,
            "meeting-minutes": "回顾上季度供货情况。"}  # fmt: skip


def test_the_meeting_form_refuses_a_date_before_the_listing_naming_it(listed_ten_days_ago, client_for):
    account, listed = listed_ten_days_ago
    kam = client_for("kam")
    url = reverse("keyaccounts:meeting-create", args=[account.pk])
    before = _local(listed - dt.timedelta(days=1), 15)
    page = kam.post(url, _meeting_form(before), **EN)
    assert page.status_code == 400
    assert page.context["meeting_form"].errors["held_at"] == [
        f"The meeting date cannot lie before {listed.isoformat()}, when the customer became a key account."
    ]
    chinese = kam.post(url, _meeting_form(before), **ZH).content.decode()
    assert f"会议日期不能早于 {listed.isoformat()}（该客户列为重点客户之日）。" in chinese
    assert not Meeting.objects.exists()
    # on the listing day itself, even in the morning before the decision was signed, it is the programme's meeting
    assert kam.post(url, _meeting_form(_local(listed, 8))).status_code == 302
    assert Meeting.objects.get().held_at == _local(listed, 8)


def test_the_api_refuses_a_meeting_before_the_listing(listed_ten_days_ago, api_client):
    account, listed = listed_ten_days_ago
    body = {"account": account.pk, "held_at": _local(listed - dt.timedelta(days=3), 9, 30).isoformat(),
            "title": "季度服务沟通会", "minutes": "回顾上季度供货情况。"}  # fmt: skip
    r = api_client("kam").post("/api/v1/keyaccounts/meetings/", body, format="json")
    assert r.status_code == 400
    assert r.json()["held_at"] == [
        f"The meeting date cannot lie before {listed.isoformat()}, when the customer became a key account."
    ]
    assert not Meeting.objects.exists()
    body["held_at"] = _local(listed + dt.timedelta(days=1), 9, 30).isoformat()
    assert api_client("kam").post("/api/v1/keyaccounts/meetings/", body, format="json").status_code == 201


def _pdf_text(data: bytes) -> str:
    return subprocess.run(["pdftotext", "-layout", "-", "-"], input=data, capture_output=True, check=True).stdout.decode()


def test_the_progress_report_counts_only_the_meetings_since_the_listing(listed_ten_days_ago, users, ruijin, listed,
                                                                       client_for):  # fmt: skip
    """Meetings recorded before the rule, dated before the listing, are not the programme's: the report counts those
    held from the listing day on (Beijing time: 07:00 on the listing day is the day before in UTC), per account."""
    account, listed_day = listed_ten_days_ago
    far = listed(ruijin)
    far_day = timezone.localdate() - dt.timedelta(days=40)
    KeyAccount.objects.filter(pk=far.pk).update(listed_at=_local(far_day, 16))
    held = {
        account: [listed_day - dt.timedelta(days=30), _local(listed_day - dt.timedelta(days=1), 23, 30),
                  _local(listed_day, 7), _local(listed_day + dt.timedelta(days=3), 14)],
        far: [_local(far_day - dt.timedelta(days=1), 10), _local(far_day + dt.timedelta(days=20), 10)],
    }  # fmt: skip
    for acc, moments in held.items():
        for n, moment in enumerate(moments):  # written as the old code let them through, past the service's check
            moment = moment if isinstance(moment, dt.datetime) else _local(moment, 10)
            Meeting.objects.create(account=acc, held_at=moment, title=f"会议 {n}", minutes="纪要")
    manager = client_for("manager")
    book = load_workbook(io.BytesIO(manager.get(reverse("keyaccounts:report-xlsx"), **EN).content))
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    assert header[5] == "Meetings held"
    counts = {row[0].value: row[5].value for row in sheet.iter_rows(min_row=2)}
    assert counts == {account.number: 2, far.number: 1}
    pdf = manager.get(reverse("keyaccounts:report-pdf") + f"?account={account.pk}", **EN)
    line = next(line for line in _pdf_text(pdf.content).splitlines() if account.number in line)
    assert line.split()[2:6] == ["0", "0", "0", "2"]  # items done, open, overdue (no plan yet); meetings held
