"""Service meetings on a cadence (seed 001 三.3 定期服务会议; issue 5 §7; rulebook gap 10).

Each key-account file has a meeting cadence (monthly, every two months, quarterly — the default — or half-yearly), set
by the account's project manager or a manager and audited. The next meeting is due the cadence after the last meeting
held since the listing (after the listing day before the first), on the same day of the month or the month's last
day. The worker reminds the service team once a week ahead and once more when the due day has ended, on the due clock
of plan items and meeting actions (a killed worker never alerts twice); a meeting recorded moves the due day and
clears the overdue flag. The account list, the account page, the work pages, the progress report (PDF, XLSX) and the
API show the cadence, the last meeting and the next due day."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone, translation

from pharmacrm.core import dueclock
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.keyaccounts import services, tasks
from pharmacrm.keyaccounts.models import KeyAccount
from pharmacrm.notify.models import Notification

from .programme_fixtures import *  # noqa: F403
from .programme_fixtures import sign_code

MEETING = "keyaccounts.meeting"
TEAM = ("kam", "expert", "support", "aftersales")


def _at(day: dt.date, hour: int = 0) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


def _end_of(day: dt.date) -> dt.datetime:
    """The first moment after `day`, China time."""
    return _at(day + dt.timedelta(days=1))


def _alerts(user) -> list[Notification]:
    return list(Notification.objects.filter(kind=MEETING, recipient=user).order_by("id"))


def _fresh(account) -> KeyAccount:
    return KeyAccount.objects.get(pk=account.pk)


def _listed_on(account, day: dt.date) -> KeyAccount:
    """The account as if listed on `day` (10:00, China time), its clock armed as the listing arms it."""
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=_at(day, 10))
    services._arm_meeting_clock(account)
    return _fresh(account)


def _record(user, account, held: dt.datetime, title: str = "季度服务沟通会"):
    return services.record_meeting(user, account, {"held_at": held, "title": title, "minutes": "回顾供货与培训"})


@pytest.fixture
def account(users, xiehe, staffed):
    """协和's key account, listed today, with its team (the kam as project manager)."""
    return staffed(xiehe)


# --- the due day --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("start, months, due", [
    (dt.date(2026, 1, 31), 1, dt.date(2026, 2, 28)),  # a month from 31 January: the last day of February
    (dt.date(2028, 1, 31), 1, dt.date(2028, 2, 29)),  # in a leap year, the 29th
    (dt.date(2026, 3, 31), 1, dt.date(2026, 4, 30)),
    (dt.date(2026, 11, 30), 3, dt.date(2027, 2, 28)),  # quarterly across the year's end
    (dt.date(2026, 8, 31), 6, dt.date(2027, 2, 28)),
    (dt.date(2026, 12, 15), 2, dt.date(2027, 2, 15)),
    (dt.date(2026, 2, 28), 1, dt.date(2026, 3, 28)),  # the 28th stays the 28th: the day is not pushed to the month's end
])  # fmt: skip
def test_the_due_day_is_the_same_day_months_later_or_that_months_last_day(start, months, due):
    assert services.add_months(start, months) == due


@pytest.mark.django_db
def test_a_new_account_is_quarterly_and_its_first_meeting_is_due_a_quarter_after_the_listing(account):
    account = _listed_on(account, dt.date(2025, 11, 30))
    state = services.meeting_due(account, today=dt.date(2026, 1, 10))
    assert account.meeting_cadence == "quarterly"
    assert (state.last, state.due, state.overdue, state.due_soon) == (None, dt.date(2026, 2, 28), False, False)
    # the listing armed the clock for the reminder's morning, a week before
    assert account.next_check_at == _at(dt.date(2026, 2, 21), 9)


@pytest.mark.django_db
def test_a_monthly_cadence_from_a_meeting_on_31_january_is_due_on_the_last_day_of_february(users, account):
    account = _listed_on(account, dt.date(2025, 1, 2))
    services.set_meeting_cadence(users["kam"], account, "monthly")
    _record(users["kam"], account, _at(dt.date(2025, 1, 31), 15))
    state = services.meeting_due(_fresh(account), today=dt.date(2025, 2, 28))
    assert (state.last, state.due) == (dt.date(2025, 1, 31), dt.date(2025, 2, 28))
    assert not state.overdue and state.due_soon  # due today: not overdue before the day has ended
    assert services.meeting_due(_fresh(account), today=dt.date(2025, 3, 1)).days_overdue == 1
    # the next meeting moves the due day: from 28 February, 28 March (not the month's end)
    _record(users["kam"], account, _at(dt.date(2025, 2, 28), 9), title="二月服务沟通会")
    assert services.meeting_due(_fresh(account), today=dt.date(2025, 3, 1)).due == dt.date(2025, 3, 28)


@pytest.mark.django_db
def test_the_latest_meeting_counts_not_the_latest_recorded(users, account):
    account = _listed_on(account, dt.date(2025, 1, 2))
    _record(users["kam"], account, _at(dt.date(2025, 6, 10), 10), title="六月会议")
    _record(users["kam"], account, _at(dt.date(2025, 3, 5), 10), title="三月会议（补录）")
    assert services.meeting_due(_fresh(account), today=dt.date(2025, 6, 11)).due == dt.date(2025, 9, 10)


# --- setting the cadence: who, what, audited ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["kam", "manager", "admin"])
def test_the_project_manager_a_manager_or_an_administrator_sets_the_cadence_audited(users, account, role):
    version = account.version
    services.set_meeting_cadence(users[role], account, "monthly", version=version)
    stored = _fresh(account)
    assert (stored.meeting_cadence, stored.version) == ("monthly", version + 1)
    entry = AuditEntry.objects.filter(object_type="keyaccounts.keyaccount", object_id=str(account.pk),
                                      changes__has_key="meeting_cadence").get()  # fmt: skip
    assert entry.changes["meeting_cadence"] == ["quarterly", "monthly"] and entry.actor == users[role]
    # the same cadence again is no change: no version, no entry
    services.set_meeting_cadence(users[role], stored, "monthly", version=stored.version)
    assert _fresh(account).version == version + 1
    assert AuditEntry.objects.filter(object_type="keyaccounts.keyaccount", changes__has_key="meeting_cadence").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["expert", "support", "aftersales", "auditor", "agent", "analyst", "other_kam"])
def test_the_rest_of_the_team_and_other_roles_may_not_set_the_cadence(users, make_user, account, role):
    who = make_user("kam2", Role.KAM) if role == "other_kam" else users[role]  # a KAM not on this account's team
    with pytest.raises(PermissionDenied):
        services.set_meeting_cadence(who, account, "monthly")
    assert _fresh(account).meeting_cadence == "quarterly"


@pytest.mark.django_db
def test_a_wrong_cadence_a_stale_version_and_a_delisted_file_are_refused_with_nothing_written(users, account,
                                                                                             make_proposal, manager2):  # fmt: skip
    with translation.override("zh-hans"), pytest.raises(ValidationError) as wrong:
        services.set_meeting_cadence(users["kam"], account, "weekly")
    assert wrong.value.message_dict == {"meeting_cadence": ["请选择服务会议的周期：每月、每两个月、每季度、每半年。"]}
    with pytest.raises(services.StaleVersion):
        services.set_meeting_cadence(users["kam"], account, "monthly", version=account.version + 1)
    assert _fresh(account).meeting_cadence == "quarterly"
    proposal = make_proposal(account.institution, kind="delist")
    services.decide(manager2, proposal, approve=True, otp_code=sign_code(manager2))
    with pytest.raises(ValidationError):
        services.set_meeting_cadence(users["manager"], _fresh(account), "monthly")
    assert _fresh(account).meeting_cadence == "quarterly" and _fresh(account).next_check_at is None


# --- the worker's alerts ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_team_is_reminded_a_week_ahead_once_and_told_once_when_the_meeting_is_overdue(users, account):
    account = _listed_on(account, dt.date(2025, 11, 30))  # due 28 February 2026
    due = dt.date(2026, 2, 28)
    reminder = _at(due - dt.timedelta(days=services.MEETING_NOTICE_DAYS), 9)

    assert services.sweep_meeting_cadence(now=reminder - dt.timedelta(seconds=1)) == 0
    assert services.sweep_meeting_cadence(now=reminder) == 1
    assert services.sweep_meeting_cadence(now=reminder + dt.timedelta(hours=3)) == 0
    assert services.sweep_meeting_cadence(now=_end_of(due) - dt.timedelta(seconds=1)) == 0  # the due day itself
    assert services.sweep_meeting_cadence(now=_end_of(due)) == 1
    assert services.sweep_meeting_cadence(now=_end_of(due) + dt.timedelta(days=20)) == 0
    for name in TEAM:  # the whole service team, the project manager among them: once per alert
        assert len(_alerts(users[name])) == 2, name
    assert _alerts(users["manager"]) == []  # the team runs its meetings
    soon, late = _alerts(users["expert"])
    name = account.institution.name
    # in the recipient's language (Simplified Chinese by default)
    assert str(soon.title) == f"{name} 的服务会议即将到期"
    assert str(soon.body) == "季度服务会议应于 2026-02-28 召开（上次会议：—）。"
    assert str(late.title) == f"{name} 的服务会议已逾期"
    assert str(late.body) == "季度服务会议应于 2026-02-28 召开，至今未开（上次会议：—）。"
    assert late.url == reverse("keyaccounts:account", args=[account.pk]) + "#meetings"
    stored = _fresh(account)
    assert (stored.meeting_due_notified_for, stored.meeting_overdue_notified_for, stored.next_check_at) == (due, due, None)
    # each alert stamped in the audit trail, by the system
    stamps = AuditEntry.objects.filter(object_type="keyaccounts.keyaccount", object_id=str(account.pk),
                                       actor_name="system")  # fmt: skip
    assert sorted(k for e in stamps for k in e.changes) == ["meeting_due_notified_for", "meeting_overdue_notified_for"]


@pytest.mark.django_db
def test_an_account_found_overdue_is_told_it_is_overdue_not_reminded_first(users, account):
    account = _listed_on(account, dt.date(2025, 11, 30))
    assert services.sweep_meeting_cadence(now=_at(dt.date(2026, 3, 10), 9)) == 1
    assert services.sweep_meeting_cadence(now=_at(dt.date(2026, 3, 11), 9)) == 0
    assert [str(n.title) for n in _alerts(users["kam"])] == [f"{account.institution.name} 的服务会议已逾期"]


@pytest.mark.django_db
def test_a_meeting_recorded_clears_the_overdue_flag_and_the_next_due_day_is_alerted_afresh(users, account):
    account = _listed_on(account, dt.date(2025, 11, 30))
    assert services.sweep_meeting_cadence(now=_at(dt.date(2026, 3, 2), 9)) == 1  # overdue since 1 March
    held = _at(dt.date(2026, 3, 5), 14)
    _record(users["kam"], _fresh(account), held)
    state = services.meeting_due(_fresh(account), today=dt.date(2026, 3, 6))
    assert (state.last, state.due, state.overdue) == (dt.date(2026, 3, 5), dt.date(2026, 6, 5), False)
    assert _fresh(account).next_check_at == _at(dt.date(2026, 5, 29), 9)  # the next reminder's morning
    assert services.sweep_meeting_cadence(now=_at(dt.date(2026, 3, 20), 9)) == 0
    assert services.sweep_meeting_cadence(now=_at(dt.date(2026, 5, 29), 9)) == 1
    assert services.sweep_meeting_cadence(now=_end_of(dt.date(2026, 6, 5))) == 1
    assert len(_alerts(users["kam"])) == 3


@pytest.mark.django_db
def test_a_new_cadence_moves_the_due_day_and_its_alerts(users, account):
    account = _listed_on(account, dt.date(2025, 11, 30))
    assert services.sweep_meeting_cadence(now=_at(dt.date(2025, 12, 24), 9)) == 0  # quarterly: nothing due yet
    services.set_meeting_cadence(users["kam"], _fresh(account), "monthly")  # due 30 December now: within the week
    assert _fresh(account).next_check_at == _at(dt.date(2025, 12, 23), 9)
    assert services.sweep_meeting_cadence(now=_at(dt.date(2025, 12, 24), 9)) == 1
    assert str(_alerts(users["kam"])[0].body) == "月度服务会议应于 2025-12-30 召开（上次会议：—）。"
    services.set_meeting_cadence(users["kam"], _fresh(account), "half_yearly")  # due 30 May 2026: nothing to tell
    assert _fresh(account).next_check_at == _at(dt.date(2026, 5, 23), 9)
    assert services.sweep_meeting_cadence(now=_at(dt.date(2026, 1, 5), 9)) == 0


@pytest.mark.django_db
def test_a_worker_killed_after_its_lease_leaves_the_alert_to_the_next_sweep_once(users, account):
    account = _listed_on(account, dt.date(2025, 11, 30))
    late = _at(dt.date(2026, 3, 2), 9)
    assert dueclock.claim_batch(KeyAccount, [account.pk], late) == [account.pk]  # a worker leased it, then died
    assert services.sweep_meeting_cadence(now=late) == 0  # another worker leaves it to the lease
    assert services.sweep_meeting_cadence(now=late + dueclock.LEASE + dt.timedelta(seconds=1)) == 1
    assert services.sweep_meeting_cadence(now=late + dueclock.LEASE + dt.timedelta(minutes=5)) == 0
    assert len(_alerts(users["kam"])) == 1


@pytest.mark.django_db
def test_a_worker_killed_while_sending_rolls_its_alert_back_and_the_next_sweep_sends_it_once(users, account,
                                                                                            monkeypatch):  # fmt: skip
    """The alert and its stamp commit together: a worker that dies between them leaves neither."""
    account = _listed_on(account, dt.date(2025, 11, 30))
    late = _at(dt.date(2026, 3, 2), 9)
    real = services.audit.record

    def die(*args, **kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(services.audit, "record", die)
    with pytest.raises(RuntimeError):
        services.sweep_meeting_cadence(now=late)
    monkeypatch.setattr(services.audit, "record", real)
    assert _alerts(users["kam"]) == [] and _fresh(account).meeting_overdue_notified_for is None
    assert services.sweep_meeting_cadence(now=late + dueclock.LEASE + dt.timedelta(seconds=1)) == 1
    assert services.sweep_meeting_cadence(now=late + dueclock.LEASE + dt.timedelta(minutes=5)) == 0
    assert len(_alerts(users["kam"])) == 1


@pytest.mark.django_db
def test_the_every_minute_task_sweeps_the_meeting_cadence(users, account):
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - dt.timedelta(days=200),
                                                    next_check_at=timezone.now() - dt.timedelta(minutes=1))  # fmt: skip
    tasks.sweep_programme_clocks.call_local()
    tasks.sweep_programme_clocks.call_local()
    assert len(_alerts(users["kam"])) == 1


@pytest.mark.django_db
def test_a_delisted_file_is_not_watched(users, account, make_proposal, manager2):
    account = _listed_on(account, dt.date(2025, 11, 30))
    proposal = make_proposal(account.institution, kind="delist")
    services.decide(manager2, proposal, approve=True, otp_code=sign_code(manager2))
    assert _fresh(account).next_check_at is None
    KeyAccount.objects.filter(pk=account.pk).update(next_check_at=_at(dt.date(2026, 3, 1)))  # a sweep that raced it
    assert services.sweep_meeting_cadence(now=_at(dt.date(2026, 3, 2), 9)) == 0
    assert services.meeting_due(_fresh(account)).due is None
    assert _alerts(users["kam"]) == []


@pytest.mark.django_db
def test_an_account_without_a_team_alerts_the_managers(users, xiehe, listed):
    _listed_on(listed(xiehe), dt.date(2025, 11, 30))
    assert services.sweep_meeting_cadence(now=_at(dt.date(2026, 3, 2), 9)) == 1
    assert len(_alerts(users["manager"])) == 1


@pytest.mark.django_db
def test_the_upgrade_arms_the_accounts_served_and_the_first_sweep_tells_the_overdue_once(users, account, xiehe):
    """Migration 0019: the files served before it have no meeting clock; it arms them, and the first sweep works out
    each due day (an account whose meeting is overdue already is told once)."""
    import importlib
    from types import SimpleNamespace

    from django.apps import apps

    arm = importlib.import_module("pharmacrm.keyaccounts.migrations.0019_meeting_cadence").arm_served_accounts
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - dt.timedelta(days=200), next_check_at=None)
    arm(apps, SimpleNamespace(connection=connection))
    assert _fresh(account).next_check_at is not None
    assert services.sweep_meeting_cadence() == 1 and services.sweep_meeting_cadence() == 0


# --- pages --------------------------------------------------------------------------------------------------------


def _overdue_account(users, account) -> KeyAccount:
    """The account's last meeting was four months ago (quarterly: overdue by about a month)."""
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - dt.timedelta(days=300))
    _record(users["kam"], _fresh(account), timezone.now() - dt.timedelta(days=122))
    return _fresh(account)


@pytest.mark.django_db
@pytest.mark.parametrize("language, words", [
    ("zh-hans", ("会议周期", "上次会议", "下次会议应于", "每季度", "逾期")),
    ("zh-hant", ("會議週期", "上次會議", "下次會議應於", "每季度", "逾期")),
    ("en", ("Meeting cadence", "Last meeting", "Next meeting due", "Quarterly", "Overdue")),
])  # fmt: skip
def test_the_account_page_shows_the_cadence_the_last_meeting_and_the_overdue_next_one(users, account, client_for,
                                                                                      language, words):  # fmt: skip
    account = _overdue_account(users, account)
    state = services.meeting_due(account)
    page = client_for("expert").get(reverse("keyaccounts:account", args=[account.pk]),
                                    HTTP_ACCEPT_LANGUAGE=language).content.decode()  # fmt: skip
    block = page.split('id="meeting-cadence"')[1].split("</dl>")[0]
    for word in words:
        assert word in block, (language, word)
    assert state.last.isoformat() in block and state.due.isoformat() in block and "meeting-overdue" in block
    assert 'id="set-cadence"' not in page  # a product expert sees it, does not set it


@pytest.mark.django_db
def test_the_project_manager_changes_the_cadence_on_the_page(users, account, client_for):
    kam = client_for("kam")
    page = kam.get(reverse("keyaccounts:account", args=[account.pk])).content.decode()
    assert 'id="set-cadence"' in page
    url = reverse("keyaccounts:meeting-cadence", args=[account.pk])
    answer = kam.post(url, {"cadence-meeting_cadence": "monthly", "cadence-version": account.version})
    assert answer.status_code == 302 and answer["Location"].endswith("#meetings")
    assert _fresh(account).meeting_cadence == "monthly"
    # a stale page: told to reload, nothing saved over the change
    stale = kam.post(url, {"cadence-meeting_cadence": "half_yearly", "cadence-version": account.version})
    assert stale.status_code == 409 and _fresh(account).meeting_cadence == "monthly"
    # a cadence that is none: refused under the field, in the reader's language
    wrong = kam.post(url, {"cadence-meeting_cadence": "weekly", "cadence-version": _fresh(account).version})
    assert wrong.status_code == 400
    field = wrong.content.decode().split('id="field-cadence-meeting_cadence"')[1].split("</div>")[0]
    assert "weekly" in field and "has-error" in wrong.content.decode().split('id="field-cadence-meeting_cadence"')[0][-80:]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["expert", "auditor", "agent"])
def test_others_may_not_post_the_cadence(users, account, client_for, role):
    answer = client_for(role).post(reverse("keyaccounts:meeting-cadence", args=[account.pk]),
                                   {"cadence-meeting_cadence": "monthly", "cadence-version": account.version})  # fmt: skip
    assert answer.status_code in (403, 404) and _fresh(account).meeting_cadence == "quarterly"


@pytest.mark.django_db
def test_the_key_account_list_and_the_work_page_flag_the_overdue_meeting(users, account, client_for):
    account = _overdue_account(users, account)
    due = services.meeting_due(account).due.isoformat()
    listing = client_for("manager").get(reverse("keyaccounts:home"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    row = listing.split(f'data-id="{account.pk}"')[1].split("</tr>")[0]
    assert "Next meeting due" in listing and due in row and "meeting-overdue" in row and "Quarterly" in row
    work = client_for("kam").get(reverse("keyaccounts:my"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    entry = work.split(f'class="account-meeting" data-account="{account.number}"')[1].split("</li>")[0]
    assert due in entry and "Overdue" in entry


@pytest.mark.django_db
def test_the_customers_360_page_shows_the_key_accounts_next_meeting(users, account, client_for):
    """The hospital's own page tells whoever opens it (the rep who covers it, an agent) when the key account's next
    service meeting is due, and that it is overdue: they see it before calling the customer."""
    account = _overdue_account(users, account)
    state = services.meeting_due(account)
    panel = reverse("keyaccounts:ka-panel", args=[account.institution_id])
    for role in ("manager", "agent"):
        block = client_for(role).get(panel, HTTP_ACCEPT_LANGUAGE="en").content.decode()
        entry = block.split('id="ka-next-meeting"')[1].split("</dd>")[0]
        assert state.due.isoformat() in entry and "Overdue" in entry and "Quarterly" in entry
        assert f"Last meeting: {state.last.isoformat()}" in entry
    zh = client_for("manager").get(panel).content.decode()
    assert "下次会议应于" in zh and "季度" in zh.split('id="ka-next-meeting"')[1].split("</dd>")[0]


@pytest.mark.django_db
def test_a_meeting_due_within_the_week_is_flagged_due_soon(users, account, client_for):
    KeyAccount.objects.filter(pk=account.pk).update(listed_at=timezone.now() - dt.timedelta(days=300))
    # a meeting three months before a day three days from now (add_months(-3) and back may land a day or two off at
    # a month's end: still within the week)
    due = timezone.localdate() + dt.timedelta(days=3)
    held = _at(services.add_months(due, -3), 10)
    _record(users["kam"], _fresh(account), held)
    state = services.meeting_due(_fresh(account))
    assert state.due_soon and not state.overdue
    row = (client_for("manager").get(reverse("keyaccounts:home"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
           .split(f'data-id="{account.pk}"')[1].split("</tr>")[0])  # fmt: skip
    assert "Due soon" in row and "meeting-due-soon" in row


# --- the progress report ------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("language, headers", [
    ("en", ["Last meeting", "Next meeting due", "Meeting overdue (days)"]),
    ("zh-hans", ["上次会议", "下次会议应于", "会议逾期（天）"]),
    ("zh-hant", ["上次會議", "下次會議應於", "會議逾期（天）"]),
])  # fmt: skip
def test_the_progress_report_sheet_has_the_last_meeting_the_next_due_and_the_days_overdue(users, account, client_for,
                                                                                          language, headers):  # fmt: skip
    from openpyxl import load_workbook

    account = _overdue_account(users, account)
    state = services.meeting_due(account)
    answer = client_for("manager").get(reverse("keyaccounts:report-xlsx"), HTTP_ACCEPT_LANGUAGE=language)
    sheet = load_workbook(io.BytesIO(answer.content)).worksheets[0]
    header = [c.value for c in sheet[1]]
    assert header[-3:] == headers
    row = [c.value for c in sheet[2]]
    assert row[0] == account.number
    assert row[-3:] == [state.last.isoformat(), state.due.isoformat(), state.days_overdue] and state.days_overdue > 0


@pytest.mark.django_db
def test_the_progress_report_pdf_shows_the_meeting_columns(users, account, client_for):
    from pypdf import PdfReader

    account = _overdue_account(users, account)
    state = services.meeting_due(account)
    answer = client_for("manager").get(reverse("keyaccounts:report-pdf"), HTTP_ACCEPT_LANGUAGE="en")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(answer.content)).pages).replace("\x00", "")
    flat = " ".join(text.split())
    for words in ("Last meeting", "Next meeting due", "Meeting overdue (days)"):
        assert all(w in flat for w in words.split()), words
    assert state.due.isoformat() in flat.replace(" ", "") and state.last.isoformat() in flat.replace(" ", "")


# --- the API ------------------------------------------------------------------------------------------------------


def _client(user, language: str = "en"):
    from rest_framework.test import APIClient

    from tests.api.conftest import token_for

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}", HTTP_ACCEPT_LANGUAGE=language)
    return client


@pytest.mark.django_db
def test_the_api_shows_the_cadence_the_last_meeting_and_the_next_due_day(users, account, api_client):
    account = _overdue_account(users, account)
    state = services.meeting_due(account)
    for url in (f"/api/v1/keyaccounts/{account.pk}/", "/api/v1/keyaccounts/"):
        data = api_client("expert").get(url).json()
        data = data if "id" in data else next(r for r in data["results"] if r["id"] == account.pk)
        assert data["meeting_cadence"] == "quarterly"
        assert (data["last_meeting"], data["next_meeting_due"]) == (state.last.isoformat(), state.due.isoformat())
        assert (data["meeting_overdue"], data["meeting_due_soon"]) == (True, False)


@pytest.mark.django_db
def test_the_api_sets_the_cadence_for_the_project_manager(users, account, api_client):
    kam = api_client("kam")
    answer = kam.patch(f"/api/v1/keyaccounts/{account.pk}/", {"meeting_cadence": "monthly", "version": account.version},
                       format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["meeting_cadence"] == "monthly" and body["version"] == account.version + 1
    assert body["next_meeting_due"] == services.add_months(timezone.localdate(), 1).isoformat()
    # a GET's body sent back with the cadence changed is accepted (what only GET shows is ignored)
    again = kam.patch(f"/api/v1/keyaccounts/{account.pk}/", {**body, "meeting_cadence": "bimonthly"}, format="json")
    assert again.status_code == 200 and again.json()["meeting_cadence"] == "bimonthly"
    stale = kam.patch(f"/api/v1/keyaccounts/{account.pk}/", {"meeting_cadence": "quarterly", "version": 1}, format="json")
    assert stale.status_code == 409 and stale.json()["current_version"] == account.version + 2
    unsent = kam.patch(f"/api/v1/keyaccounts/{account.pk}/", {"meeting_cadence": "quarterly"}, format="json")
    assert unsent.status_code == 400 and "version" in unsent.json()
    assert kam.put(f"/api/v1/keyaccounts/{account.pk}/", {"meeting_cadence": "quarterly"}, format="json").status_code == 405
    assert _fresh(account).meeting_cadence == "bimonthly"


@pytest.mark.django_db
@pytest.mark.parametrize("language, message", [
    ("en", "“weekly” is not a meeting cadence: send monthly, bimonthly, quarterly or half_yearly."),
    ("zh-hans", "“weekly”不是会议周期：请发送 monthly、bimonthly、quarterly 或 half_yearly。"),
    ("zh-hant", "「weekly」不是會議週期：請傳送 monthly、bimonthly、quarterly 或 half_yearly。"),
])  # fmt: skip
def test_the_api_refuses_a_cadence_that_is_none_under_its_field_in_the_callers_language(users, account, api_client,
                                                                                        language, message):  # fmt: skip
    answer = _client(users["kam"], language).patch(f"/api/v1/keyaccounts/{account.pk}/",
                                                   {"meeting_cadence": "weekly", "version": account.version},
                                                   format="json")  # fmt: skip
    assert answer.status_code == 400 and answer.json() == {"meeting_cadence": [message]}
    assert _fresh(account).meeting_cadence == "quarterly"


@pytest.mark.django_db
@pytest.mark.parametrize("role, code", [("expert", 403), ("auditor", 403), ("agent", 403), ("analyst", 403),
                                        ("other_kam", 403), ("manager", 200)])  # fmt: skip
def test_the_api_lets_only_those_who_run_the_account_set_the_cadence(users, make_user, account, role, code):
    who = make_user("kam2", Role.KAM) if role == "other_kam" else users[role]
    answer = _client(who).patch(f"/api/v1/keyaccounts/{account.pk}/", {"meeting_cadence": "monthly", "version": account.version},
                          format="json")  # fmt: skip
    assert answer.status_code == code, (role, answer.content)
    assert _fresh(account).meeting_cadence == ("monthly" if code == 200 else "quarterly")


@pytest.mark.django_db
def test_the_schema_documents_the_cadence_and_its_change(api_client):
    schema = api_client("manager").get("/api/schema/", HTTP_ACCEPT="application/json").json()
    account = schema["components"]["schemas"]["KeyAccount"]["properties"]
    for name in ("meeting_cadence", "last_meeting", "next_meeting_due", "meeting_due_soon", "meeting_overdue"):
        assert name in account, name
    assert schema["components"]["schemas"]["MeetingCadence"]["enum"] == ["monthly", "bimonthly", "quarterly",
                                                                         "half_yearly"]  # fmt: skip
    patch = schema["paths"]["/api/v1/keyaccounts/{id}/"]["patch"]
    assert "meeting_cadence" in patch["description"] and {"200", "400", "403", "409"} <= set(patch["responses"])


# --- concurrency (PostgreSQL: on SQLite, writers are serialised from the start of their transaction) ---------------


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_alert_an_overdue_meeting_once(users, account, monkeypatch):
    """The first worker is still sending (its alert not committed) when its lease runs out and a second worker leases
    the account too: the second waits for the account, then finds the alert stamped and sends nothing."""
    from .test_execution_fixes import _paused_after

    account = _listed_on(account, dt.date(2025, 11, 30))
    late = _at(dt.date(2026, 3, 2), 9)
    swept: list[int] = []
    errors = _paused_after(
        monkeypatch, services, "_notify",
        lambda: swept.append(services.sweep_meeting_cadence(now=late)),
        lambda: swept.append(services.sweep_meeting_cadence(now=late + dueclock.LEASE + dt.timedelta(seconds=1))),
    )  # fmt: skip
    assert errors == [] and sorted(swept) == [0, 1]
    assert len(_alerts(users["kam"])) == 1 and len(_alerts(users["expert"])) == 1


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_meeting_recorded_while_the_worker_sends_the_overdue_alert_arms_the_next_due_day(users, account,
                                                                                          monkeypatch):  # fmt: skip
    """record_meeting waits for the worker's lock on the account, then moves the due day: the clock ends armed for the
    new day's reminder, not left empty by the worker's "nothing more to tell"."""
    from .test_execution_fixes import _paused_after

    account = _listed_on(account, dt.date(2025, 11, 30))
    held = timezone.now().replace(second=0, microsecond=0)
    errors = _paused_after(
        monkeypatch, services, "_notify",
        lambda: services.sweep_meeting_cadence(now=timezone.now()),
        lambda: _record(users["kam"], _fresh(account), held),
    )  # fmt: skip
    assert errors == []
    state = services.meeting_due(_fresh(account))
    assert state.last == timezone.localdate() and not state.overdue
    assert _fresh(account).next_check_at == _at(state.due - dt.timedelta(days=services.MEETING_NOTICE_DAYS), 9)
    assert len(_alerts(users["kam"])) == 1
