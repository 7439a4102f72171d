"""The one-working-day hand-off to PV follows the service desk's calendar when an administrator changes it (a
holiday entered, the working weekdays): the pending hand-offs are re-planned in the same transaction, audited on
their flags, and their notices are sent again only for a deadline that moved later. The four-hour hand-off of a
serious outcome counts calendar time and stays."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.urls import reverse
from django.utils import timezone, translation
from openpyxl import load_workbook

from pharmacrm.core.models import AuditEntry
from pharmacrm.notify.models import Notification
from pharmacrm.safety import services
from pharmacrm.safety.models import Flag, SafetyClock
from pharmacrm.servicedesk import calendars
from pharmacrm.servicedesk.models import BusinessCalendar
from tests.api import conftest as api_fixtures
from tests.safety.test_reconciliation import ticket

pytestmark = pytest.mark.django_db
api_for = api_fixtures.api_for  # token clients per role, as in test_api.py


def handoff_of(source) -> SafetyClock:
    return SafetyClock.objects.get(flag=Flag.objects.get(ticket=source), kind="handoff")


def test_a_holiday_entered_after_the_flag_moves_its_hand_off(users, xiehe):
    """A flag raised today was due on the next working day; the administrator then enters that day as a holiday
    (the State Council's schedule for a year the holiday package does not know): the triage queue kept the old
    deadline, the calendar now gave the day after."""
    flagged = ticket(users, xiehe, "患者服药后头晕、恶心，来电咨询", days_ago=1 / 24)
    clock = handoff_of(flagged)
    business = BusinessCalendar.objects.get(code="business")
    assert clock.calendar == business
    before = clock.due_at
    calendars.set_override(users["admin"], business, timezone.localdate(before), False, "元旦")
    clock.refresh_from_db()
    assert clock.due_at > before
    assert clock.due_at == calendars.engine("business").add_days(clock.started_at, services.HANDOFF_WORKING_DAYS)
    assert clock.next_check_at == clock.warn_at < clock.due_at
    entry = AuditEntry.objects.filter(object_type="safety.flag", object_id=str(clock.flag_id)).latest("seq")
    assert entry.actor == users["admin"]
    assert entry.changes == {"handoff_due_at": [before.isoformat(), clock.due_at.isoformat()]}

    # the weekday of the new deadline stops being a working day: it moves again
    due = clock.due_at
    business = BusinessCalendar.objects.get(code="business")
    calendars.update_calendar(users["admin"], business, {"workdays": [d for d in business.workdays
                                                                     if d != timezone.localtime(due).weekday()]})
    clock.refresh_from_db()
    assert clock.due_at == calendars.engine("business").add_days(clock.started_at, services.HANDOFF_WORKING_DAYS)
    assert clock.due_at > due


def test_the_notices_of_a_moved_hand_off_are_sent_again_only_when_it_moved_later(users, xiehe):
    flagged = ticket(users, xiehe, "患者服药后头晕、恶心，来电咨询", days_ago=1 / 24)
    clock = handoff_of(flagged)
    warn, due = clock.warn_at, clock.due_at
    assert services.sweep(now=warn)["warned"] == 1
    assert services.sweep(now=due)["breached"] == 1
    # a change that leaves the deadline where it was (a day long after it) tells nobody again
    business = BusinessCalendar.objects.get(code="business")
    calendars.set_override(users["admin"], business, timezone.localdate(due) + dt.timedelta(days=60), False)
    assert services.sweep(now=due + dt.timedelta(days=30))["clocks"] == 0
    # the day it was due becomes a holiday: due later, no longer overdue, due soon and overdue again in time
    calendars.set_override(users["admin"], business, timezone.localdate(due), False, "元旦")
    clock.refresh_from_db()
    assert clock.due_at > due and clock.breached_at is None and clock.warned_at is None
    assert services.sweep(now=clock.warn_at)["warned"] == 1
    assert services.sweep(now=clock.due_at)["breached"] == 1


def test_the_four_hour_hand_off_of_a_death_is_not_re_planned(users, xiehe):
    flagged = ticket(users, xiehe, "患者用药后过敏性休克，抢救无效死亡", days_ago=1 / 24)
    clock = handoff_of(flagged)
    assert clock.calendar is None and clock.due_at == clock.started_at + services.SERIOUS_HANDOFF
    business = BusinessCalendar.objects.get(code="business")
    calendars.set_override(users["admin"], business, timezone.localdate(clock.due_at), False)
    assert handoff_of(flagged).due_at == clock.due_at


def test_a_hand_off_escalated_to_four_hours_is_not_re_planned(users, xiehe):
    from pharmacrm.servicedesk import conversation

    flagged = ticket(users, xiehe, "吃了降压药以后有点头晕", days_ago=1 / 24, reply_email="liu@example.com")
    conversation.receive_inbound(flagged, body="我父亲昨天晚上没抢救过来，人走了。", sender="liu@example.com")
    clock = handoff_of(flagged)
    assert clock.calendar is None
    due = clock.due_at
    calendars.set_override(users["admin"], BusinessCalendar.objects.get(code="business"), timezone.localdate(due), False)
    assert handoff_of(flagged).due_at == due
    # one already due sooner than four hours from the death keeps its deadline, and keeps it whatever the calendar
    overdue = ticket(users, xiehe, "吃了降压药以后有点头晕", days_ago=3, reply_email="wang@example.com")
    conversation.receive_inbound(overdue, body="我母亲住院了，在ICU抢救。", sender="wang@example.com")
    assert handoff_of(overdue).calendar is None


def test_a_triaged_flag_keeps_its_hand_off(users, xiehe):
    flagged = ticket(users, xiehe, "患者服药后头晕、恶心，来电咨询", days_ago=1 / 24)
    services.dismiss_flag(users["pv"], Flag.objects.get(ticket=flagged), reason="已知轻微头晕，已告知")
    due = handoff_of(flagged).due_at
    calendars.set_override(users["admin"], BusinessCalendar.objects.get(code="business"), timezone.localdate(due), False)
    assert handoff_of(flagged).due_at == due


def test_the_migration_gives_the_hand_offs_in_working_days_their_calendar(users, xiehe):
    """Clocks stored before the calendar was: the working-day hand-offs get the business calendar, the four-hour
    ones (from the start or escalated) stay in calendar time."""
    import importlib

    from django.apps import apps

    from pharmacrm.servicedesk import conversation

    migration = importlib.import_module("pharmacrm.safety.migrations.0005_handoff_clock_calendar")
    day = ticket(users, xiehe, "患者服药后头晕、恶心，来电咨询", days_ago=3)
    death = ticket(users, xiehe, "患者用药后过敏性休克，抢救无效死亡", days_ago=1 / 24)
    later = ticket(users, xiehe, "吃了降压药以后有点头晕", days_ago=1 / 24, reply_email="liu@example.com")
    conversation.receive_inbound(later, body="我父亲昨天晚上没抢救过来，人走了。", sender="liu@example.com")
    SafetyClock.objects.update(calendar=None)
    migration.working_day_handoffs(apps, None)
    assert handoff_of(day).calendar.code == "business"
    assert handoff_of(death).calendar is None and handoff_of(later).calendar is None


def test_the_triage_queue_says_a_hand_off_into_a_year_without_holidays_is_provisional(users, xiehe, client_for):
    """chinese-calendar 1.11.0 (pinned) ends with 2026: a one-working-day hand-off due on 1 January 2027 was
    counted as if 元旦 were a working day. PV reads that the deadline may move until 2027's schedule is entered."""
    flagged = ticket(users, xiehe, "患者服药后头晕、恶心，来电咨询", days_ago=1 / 24)
    clock = handoff_of(flagged)
    new_year = dt.datetime(2027, 1, 1, 10, tzinfo=timezone.get_current_timezone())
    SafetyClock.objects.filter(pk=clock.pk).update(due_at=new_year)

    def row() -> str:
        page = client_for("pv").get(reverse("safety:triage"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
        return page.split("2027-01-01 10:00")[1].split("</td>")[0]

    assert 'data-uncovered="2027"' in row() and "2027 年的法定节假日尚未录入" in row()
    for day in (dt.date(2027, 2, 6), dt.date(2027, 10, 1)):  # the Spring Festival and National Day entered
        calendars.set_override(users["admin"], BusinessCalendar.objects.get(code="business"), day, False, "")
    SafetyClock.objects.filter(pk=clock.pk).update(due_at=new_year)  # the re-plan moved it; the page is the test
    assert "data-uncovered" not in row()


# --- the provisional hand-off deadline wherever it is shown -------------------------------------------------------


def _into_2027(users, xiehe, subject="患者服药后头晕、恶心，来电咨询"):
    """A pending working-day hand-off due on 1 January 2027, a year whose holidays (元旦, the Spring Festival …) the
    pinned chinese-calendar does not know and nobody entered."""
    flagged = ticket(users, xiehe, subject, days_ago=1 / 24)
    clock = handoff_of(flagged)
    SafetyClock.objects.filter(pk=clock.pk).update(due_at=NEW_YEAR_2027())
    return flagged, clock


def NEW_YEAR_2027() -> dt.datetime:  # noqa: N802
    return dt.datetime(2027, 1, 1, 10, tzinfo=timezone.get_current_timezone())


def _enter_2027(users) -> None:
    for day in (dt.date(2027, 2, 6), dt.date(2027, 10, 1)):  # the Spring Festival and National Day entered
        calendars.set_override(users["admin"], BusinessCalendar.objects.get(code="business"), day, False, "")


def test_the_pv_due_list_says_a_hand_off_into_a_year_without_holidays_is_provisional(users, xiehe, client_for):
    """The due list on /safety/ showed the same deadline as the triage queue, 2027-01-01 10:00, as firm: the PV
    officer planning the week around it did not learn it could still move."""
    flagged, clock = _into_2027(users, xiehe)

    def row() -> str:
        page = client_for("pv").get(reverse("safety:cases") + "?due=all",
                                    HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()  # fmt: skip
        table = page.split('id="due-table"')[1].split("</table>")[0]
        return table.split("2027-01-01 10:00")[1].split("</td>")[0]

    assert 'data-uncovered="2027"' in row() and "2027 年的法定节假日尚未录入" in row()
    _enter_2027(users)
    SafetyClock.objects.filter(pk=clock.pk).update(due_at=NEW_YEAR_2027())
    assert "data-uncovered" not in row()


def test_the_reconciliation_and_its_export_say_the_hand_off_deadline_is_provisional(users, xiehe, client_for,
                                                                                     api_for):  # fmt: skip
    """'Needs action: no decision yet, due 2027-01-01 10:00' — on the page, in the XLSX an inspector is given and in
    the API — read as a firm deadline although 2027's holidays were not entered."""
    flagged, clock = _into_2027(users, xiehe)

    page = client_for("pv").get(reverse("safety:reconciliation"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    unmatched = page.split('id="unmatched"')[1].split("</section>")[0]
    assert 'data-uncovered="2027"' in unmatched and "2027 年的法定节假日尚未录入" in unmatched

    response = client_for("manager").get(reverse("safety:reconciliation-xlsx"), HTTP_ACCEPT_LANGUAGE="en")
    book = load_workbook(io.BytesIO(response.content), read_only=True)
    sheets = [[list(r) for r in ws.iter_rows(values_only=True)] for ws in book.worksheets]
    for sheet, due_header in ((sheets[0], "Hand-off due"), (sheets[1], "Due")):
        header, [row] = sheet[0], [r for r in sheet[1:] if flagged.number in r]
        due = header.index(due_header)
        assert row[due] == NEW_YEAR_2027().replace(tzinfo=None)
        assert header[due + 1] == "Provisional: holidays not entered for" and row[due + 1] == "2027"

    data = api_for("manager").get("/api/v1/safety/reconciliation/").json()
    [row] = [r for r in data["rows"] if r["source"] == flagged.number]
    [problem] = [p for p in data["unmatched"] if p["source"] == flagged.number]
    assert row["handoff_due_provisional"] == problem["due_provisional"] == [2027]

    _enter_2027(users)
    SafetyClock.objects.filter(pk=clock.pk).update(due_at=NEW_YEAR_2027())
    data = api_for("manager").get("/api/v1/safety/reconciliation/").json()
    [row] = [r for r in data["rows"] if r["source"] == flagged.number]
    assert row["handoff_due_provisional"] == []


def test_the_flags_api_says_the_hand_off_deadline_is_provisional(users, xiehe, api_for):
    flagged, clock = _into_2027(users, xiehe)
    [flag] = [f for f in api_for("pv").get("/api/v1/safety/flags/").json()["results"]
              if f["source_number"] == flagged.number]  # fmt: skip
    assert flag["handoff_due_provisional"] == [2027]

    _enter_2027(users)
    SafetyClock.objects.filter(pk=clock.pk).update(due_at=NEW_YEAR_2027())
    flag = api_for("pv").get(f"/api/v1/safety/flags/{flag['id']}/").json()
    assert flag["handoff_due_provisional"] == []


def test_the_due_soon_notice_of_a_hand_off_says_its_deadline_is_provisional(users, xiehe):
    """'waits for safety triage (due 2027-01-01 10:00)' came to the PV officers' bell and mailbox as a firm
    deadline."""
    flagged, clock = _into_2027(users, xiehe)
    clock.refresh_from_db()
    SafetyClock.objects.filter(pk=clock.pk).update(warn_at=timezone.now(), next_check_at=timezone.now())

    assert services.sweep(now=timezone.now() + dt.timedelta(seconds=1))["warned"] == 1

    note = Notification.objects.filter(recipient=users["pv"], kind="safety.handoff").latest("id")
    assert "2027-01-01 10:00" in note.title
    with translation.override("zh-hans"):
        assert "2027 年的法定节假日尚未录入" in note.shown_body
