"""Escalation after a missed deadline (the ladder: assignee, team lead with a hand-over, managers), its
cooldown, exactly-once with two workers at once, and escalating by hand from the ticket page and the API."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.db.models import Count

from pharmacrm.core.models import AuditEntry, Team
from pharmacrm.notify.models import Notification
from pharmacrm.servicedesk import escalation, services
from pharmacrm.servicedesk.choices import ClockKind, EventKind, Status
from pharmacrm.servicedesk.models import EscalationRule, SlaClock, Ticket, TicketEvent

SH = ZoneInfo("Asia/Shanghai")


def at(y, m, d, hh=0, mm=0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SH)


@pytest.fixture
def service_team(users, make_user):
    """A service team: the manager leads it; agent and expert handle its tickets."""
    team = Team.objects.create(name="客服一组", lead=users["manager"])
    for name in ("agent", "expert"):
        users[name].teams.add(team)
    return team


@pytest.fixture
def urgent(users, xiehe, service_team):
    """A medication error (24×7: first response due 2 h after receipt) held by the agent."""

    def make(received=None, assignee="agent"):
        return services.create_ticket(users["agent"], {
            "subject": "用药错误：剂量看错", "channel": "phone", "category": "medication_error", "institution": xiehe,
            "received_at": received or at(2026, 3, 2, 9), "assignee": users[assignee], "team": service_team,
        })  # fmt: skip

    return make


def escalations(ticket) -> list[TicketEvent]:
    return list(TicketEvent.objects.filter(ticket=ticket, kind=EventKind.ESCALATED).order_by("at", "id"))


def bell(user) -> list[str]:
    return list(Notification.objects.filter(recipient=user).order_by("id").values_list("title", flat=True))


def test_the_ladder_tells_the_assignee_then_hands_over_and_tells_the_lead_then_the_managers(users, urgent):
    ticket = urgent()  # first response due 11:00
    services.sweep(at(2026, 3, 2, 11, 1))
    ticket.refresh_from_db()
    assert ticket.escalation_level == 1
    assert [e.data["level"] for e in escalations(ticket)] == [1]
    assert any(ticket.number in t and "1" in t for t in bell(users["agent"]))
    assert bell(users["manager"]) == []

    # level 2 two hours after the breach: nobody acted, so the ticket goes to another agent of the team
    services.sweep(at(2026, 3, 2, 12, 59))
    assert len(escalations(ticket)) == 1
    services.sweep(at(2026, 3, 2, 13, 1))
    ticket.refresh_from_db()
    assert ticket.escalation_level == 2 and ticket.assignee == users["expert"]
    level2 = escalations(ticket)[-1]
    assert level2.data["reassigned_to"] == users["expert"].pk
    assert any(ticket.number in t for t in bell(users["manager"]))  # the team lead
    assert TicketEvent.objects.filter(ticket=ticket, kind=EventKind.ASSIGNED).count() == 1  # the hand-over

    # level 3 eight hours after the breach: the managers
    services.sweep(at(2026, 3, 2, 19, 1))
    ticket.refresh_from_db()
    assert ticket.escalation_level == 3
    assert [e.data["level"] for e in escalations(ticket) if e.data["clock"] == ClockKind.FIRST_RESPONSE] == [1, 2, 3]
    entry = AuditEntry.objects.filter(object_type="servicedesk.slaclock").latest("seq")
    assert entry.actor_name == "worker" and entry.extra["escalations"][0]["level"] == 3


def test_an_assignee_who_acted_keeps_the_ticket(users, urgent):
    ticket = urgent()
    services.sweep(at(2026, 3, 2, 11, 1))
    services.transition(users["agent"], ticket, Status.IN_PROGRESS, at=at(2026, 3, 2, 11, 30))
    services.sweep(at(2026, 3, 2, 13, 1))
    ticket.refresh_from_db()
    assert ticket.escalation_level == 2 and ticket.assignee == users["agent"]
    assert escalations(ticket)[-1].data["reassigned_to"] is None


def test_meeting_the_target_stops_the_ladder(users, urgent):
    ticket = urgent()
    services.sweep(at(2026, 3, 2, 11, 1))
    services.record_response(users["agent"], ticket, at=at(2026, 3, 2, 11, 10), channel="phone")
    clock = SlaClock.objects.get(ticket=ticket, kind=ClockKind.FIRST_RESPONSE)
    assert clock.fulfilled_at is not None and clock.next_check_at is None
    services.sweep(at(2026, 3, 2, 13, 1))
    assert len(escalations(ticket)) == 1


def test_two_deadlines_missed_together_escalate_once_within_the_cooldown(users, urgent):
    ticket = urgent()
    # the worker was down for two days: both deadlines are long past and every level is due
    counts = services.sweep(at(2026, 3, 4, 9))
    assert counts["breached"] == 2 and counts["escalated"] == 1
    [event] = escalations(ticket)
    assert event.data["level"] == 3  # the latest level fires once, telling everyone the skipped ones would have
    assert set(event.data["notified"]) == {users["agent"].pk, users["manager"].pk}
    # the other clock tries again when the cooldown has passed
    resolution = SlaClock.objects.get(ticket=ticket, kind=ClockKind.RESOLUTION)
    assert resolution.next_check_at == at(2026, 3, 4, 9, 30)


def test_the_agent_a_late_ticket_is_handed_to_gets_one_notification(users, urgent):
    ticket = urgent(assignee="expert")  # raised by the agent for the expert, who does nothing
    services.sweep(at(2026, 3, 4, 9))  # the worker was down: every level at once, with the hand-over
    ticket.refresh_from_db()
    assert ticket.assignee == users["agent"]
    # was two: "handed to you after a missed deadline" and "escalated to level 3" (as the new assignee)
    assert bell(users["agent"]) == [f"{ticket.number} 已超时，现转交给您：{ticket.subject}"]
    assert set(escalations(ticket)[0].data["notified"]) >= {users["manager"].pk}


def test_the_ladder_is_data(users, urgent):
    EscalationRule.objects.filter(level__gt=1).update(active=False)
    EscalationRule.objects.filter(level=1).update(after_minutes=30)
    escalation._forget()
    ticket = urgent()
    services.sweep(at(2026, 3, 2, 11, 1))
    assert escalations(ticket) == []
    services.sweep(at(2026, 3, 2, 11, 31))
    assert [e.data["level"] for e in escalations(ticket)] == [1]
    assert SlaClock.objects.get(ticket=ticket, kind=ClockKind.FIRST_RESPONSE).next_check_at is None


WORKER = """
import json, os, sys, time, datetime as dt
import django
django.setup()
from pharmacrm.servicedesk import services
now = dt.datetime.fromisoformat(sys.argv[1])
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.01)
total = {"clocks": 0, "escalated": 0}
while (counts := services.sweep(now, limit=7))["clocks"]:
    for key in total:
        total[key] += counts[key]
print(json.dumps(total), flush=True)
"""


def _database_env(tmp_path) -> dict:
    """Environment for a separate process that opens the database this test wrote to: a file copy of the
    in-memory SQLite test database, or the PostgreSQL test database itself."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SQLITE_PATH")}
    env["HUEY_IMMEDIATE"] = "0"
    if connection.vendor == "sqlite":
        import sqlite3

        path = tmp_path / "workers.sqlite3"
        target = sqlite3.connect(path)
        connection.ensure_connection()
        connection.connection.backup(target)
        # in WAL already, as a real database is after its first connection: two workers switching the
        # journal mode of a fresh copy at the same moment make one of them fail with "database is locked"
        target.execute("PRAGMA journal_mode=WAL")
        target.close()
        env["SQLITE_PATH"] = str(path)
        return env
    s = connection.settings_dict
    login = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    env["DATABASE_URL"] = f"postgres://{login}@{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{s['NAME']}"
    return env


@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_at_once_escalate_each_ticket_exactly_once(users, xiehe, service_team, tmp_path):
    """Two worker processes sweep the same due clocks at the same moment, against the same database."""
    import json
    import subprocess
    import sys

    tickets = [
        services.create_ticket(users["agent"], {
            "subject": f"用药错误 {i}", "channel": "phone", "category": "medication_error", "institution": xiehe,
            "received_at": at(2026, 3, 2, 9), "assignee": users["agent"], "team": service_team,
        })  # fmt: skip
        for i in range(40)
    ]
    env = _database_env(tmp_path)
    go = tmp_path / "go"
    now = at(2026, 3, 2, 11, 1)  # every first-response deadline just passed
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, now.isoformat(), str(go)], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        for _ in range(2)
    ]
    for w in workers:
        assert w.stdout.readline().strip() == "ready", w.stderr.read()
    go.touch()
    totals = []
    for w in workers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        totals.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(t["escalated"] for t in totals) == len(tickets)
    assert sum(t["clocks"] for t in totals) == len(tickets)  # each due clock handled by one worker only

    if connection.vendor == "sqlite":  # the workers wrote to the file copy: read the outcome there
        import sqlite3

        db = sqlite3.connect(env["SQLITE_PATH"])
        rows = db.execute(
            "SELECT ticket_id, COUNT(*) FROM servicedesk_ticketevent WHERE kind = 'escalated' GROUP BY ticket_id"
        ).fetchall()
        levels = db.execute("SELECT escalation_level FROM servicedesk_ticket").fetchall()
        db.close()
    else:
        rows = list(
            TicketEvent.objects.filter(kind=EventKind.ESCALATED).values_list("ticket_id").annotate(n=Count("id"))
        )
        levels = list(Ticket.objects.values_list("escalation_level"))
    assert sorted(rows) == sorted((t.pk, 1) for t in tickets)
    assert levels == [(1,)] * len(tickets)


# --- by hand -------------------------------------------------------------------------------------------


def test_an_agent_escalates_a_complex_case_to_the_team_lead_and_hands_it_over(users, urgent):
    ticket = urgent()
    escalation.escalate(users["agent"], ticket, reason="涉及多家医院，需要主管协调", hand_over=True)
    ticket.refresh_from_db()
    assert ticket.escalation_level == 1 and ticket.assignee == users["manager"]
    [event] = escalations(ticket)
    assert event.actor == users["agent"] and event.data["manual"] and event.data["reason"].startswith("涉及")
    assert any(ticket.number in t for t in bell(users["manager"]))


def test_the_lead_a_ticket_is_escalated_and_handed_to_gets_one_notification_saying_both(users, urgent):
    from django.utils import translation

    ticket = urgent()
    escalation.escalate(users["agent"], ticket, reason="涉及多家医院，需要主管协调", hand_over=True)
    notes = Notification.objects.filter(recipient=users["manager"])
    assert notes.count() == 1  # was two: "escalated to you" and "is yours now"
    with translation.override("en"):
        assert notes.get().shown_title == f"{ticket.number} escalated and handed over to you by {users['agent']}"


def test_escalating_needs_a_reason_and_an_open_ticket(users, urgent):
    from django.core.exceptions import ValidationError

    ticket = urgent()
    with pytest.raises(ValidationError) as exc:
        escalation.escalate(users["agent"], ticket, reason=" ")
    assert "reason" in exc.value.message_dict
    services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已解释", root_cause="usage")
    with pytest.raises(services.TransitionRefused):
        escalation.escalate(users["agent"], ticket, reason="再看看")


def test_the_lead_escalates_to_the_managers_without_a_hand_over(users, urgent, make_user):
    from django.core.exceptions import ValidationError

    from pharmacrm.core.roles import Role

    boss, chief = make_user("boss", Role.MANAGER), make_user("chief", Role.MANAGER)
    ticket = urgent(assignee="manager")
    assert set(escalation.superiors(ticket, users["manager"])) == {boss, chief}
    with pytest.raises(ValidationError) as exc:
        escalation.escalate(users["manager"], ticket, reason="需要厂领导决定", hand_over=True)
    assert "hand_over" in exc.value.message_dict  # nobody single to hand over to is refused, not ignored
    escalation.escalate(users["manager"], ticket, reason="需要厂领导决定")
    assert bell(boss) and bell(chief) and Ticket.objects.get(pk=ticket.pk).assignee == users["manager"]


@pytest.mark.parametrize(
    "role, allowed",
    [("agent", True), ("expert", True), ("rep", True), ("kam", True), ("pv", False), ("analyst", False),
     ("auditor", False)],
)  # fmt: skip
def test_the_escalate_button_per_role(client_for, users, urgent, role, allowed):
    ticket = urgent()
    client = client_for(role)
    page = client.get(f"/service/tickets/{ticket.pk}/")
    if page.status_code == 404:
        assert not allowed
        return
    assert ('id="escalate"' in page.content.decode()) is allowed
    response = client.post(f"/service/tickets/{ticket.pk}/escalate/", {"escalation_reason": "需要支援"})
    assert response.status_code == (302 if allowed else 403)
    ticket.refresh_from_db()
    assert ticket.escalation_level == (1 if allowed else 0)


def test_the_escalate_form_keeps_the_input_and_names_the_field(client_for, urgent):
    ticket = urgent()
    response = client_for("agent").post(f"/service/tickets/{ticket.pk}/escalate/", {"escalation_reason": ""})
    assert response.status_code == 400
    assert 'id="escalate" open' in response.content.decode()


def test_escalate_through_the_api(users, urgent):
    from rest_framework.test import APIClient

    from tests.api.conftest import token_for

    ticket = urgent()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users['agent'])}")
    response = api.post(f"/api/v1/tickets/{ticket.pk}/escalate/", {"reason": "需要主管"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["escalation_level"] == 1
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users['analyst'])}")
    assert api.post(f"/api/v1/tickets/{ticket.pk}/escalate/", {"reason": "x"}, format="json").status_code in (403, 404)
    services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已处理", root_cause="usage")
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users['agent'])}")
    assert api.post(f"/api/v1/tickets/{ticket.pk}/escalate/", {"reason": "x"}, format="json").status_code == 409


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_breach_swept_while_the_agent_saves_the_ticket_fails_neither_and_is_recorded_once(users, urgent):
    """The first response falls due at 11:00; at 11:01 the agent starts work on the ticket (the save locks the ticket,
    then its clocks) while the worker sweeps (it claims the clocks, then escalates their ticket). Each waited for
    the other: PostgreSQL aborted one of them as a deadlock — the agent got a server error, or the worker lost its
    whole batch. Now the sweep leaves a ticket being saved to the next sweep, which records the breach once, at the
    time it fell due."""
    import threading

    from django.db import transaction

    ticket = urgent()
    errors: list[tuple[str, Exception]] = []
    swept: dict[str, int] = {}
    locked, go = threading.Event(), threading.Event()

    def agent():
        try:
            with transaction.atomic():
                list(Ticket.objects.select_for_update().filter(pk=ticket.pk).values_list("pk", flat=True))
                locked.set()  # the save holds the ticket…
                go.wait(30)  # …and goes on to its clocks once the worker has claimed them
                services.transition(users["agent"], Ticket.objects.get(pk=ticket.pk), Status.IN_PROGRESS,
                                    at=at(2026, 3, 2, 11, 1))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - what the test reports
            errors.append(("agent", exc))
        finally:
            connection.close()

    def worker():
        try:
            swept.update(services.sweep(at(2026, 3, 2, 11, 1)))
        except Exception as exc:  # noqa: BLE001
            errors.append(("worker", exc))
        finally:
            connection.close()

    first = threading.Thread(target=agent)
    first.start()
    assert locked.wait(30)
    second = threading.Thread(target=worker)
    second.start()
    with connection.cursor() as cursor:  # until the worker is done, or waits for the agent's lock
        for _ in range(300):
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock'")  # fmt: skip
            if not second.is_alive() or cursor.fetchone()[0]:
                break
            threading.Event().wait(0.1)
    go.set()
    first.join(60)
    second.join(60)

    assert errors == []
    assert swept["clocks"] == 0 and Ticket.objects.get(pk=ticket.pk).status == Status.IN_PROGRESS
    assert services.sweep(at(2026, 3, 2, 11, 2))["breached"] == 1
    clock = SlaClock.objects.get(ticket=ticket, kind=ClockKind.FIRST_RESPONSE)
    assert clock.breached_at == at(2026, 3, 2, 11) and clock.claimed_until is None
    assert [e.data["level"] for e in escalations(ticket)] == [1]
    assert services.sweep(at(2026, 3, 2, 11, 3))["breached"] == 0


def test_escalating_by_hand_stops_at_the_top_of_the_ladder_on_the_page_and_through_the_api(
    users, urgent, client_for, api_for, english
):
    """Each escalation by hand (with a new reason) raised the level by one without end: QA took a ticket to level 10
    on a ladder of 3. Past the top level it is refused, naming the level, and nothing is recorded or sent."""
    ticket = urgent()
    for n, reason in enumerate(("需要主管", "客户投诉升级", "涉及多家医院"), start=1):
        escalation.escalate(users["agent"], ticket, reason=reason)
        ticket.refresh_from_db()
        assert ticket.escalation_level == n
    events, notes = len(escalations(ticket)), Notification.objects.count()
    with pytest.raises(services.TransitionRefused) as e:
        escalation.escalate(users["agent"], ticket, reason="再升一级")
    assert e.value.messages == [
        "The ticket is already at level 3, the top of the escalation ladder: it cannot be escalated further."
    ]
    response = client_for("agent").post(f"/service/tickets/{ticket.pk}/escalate/", {"escalation_reason": "再升"})
    assert response.status_code == 400 and "already at level 3, the top of the escalation ladder" in (
        response.content.decode()
    )
    response = api_for("agent").post(f"/api/v1/tickets/{ticket.pk}/escalate/", {"reason": "再升"}, format="json")
    assert response.status_code == 409 and "already at level 3" in response.content.decode()
    ticket.refresh_from_db()
    assert ticket.escalation_level == 3
    assert len(escalations(ticket)) == events and Notification.objects.count() == notes

    # the ladder's own levels, all due at once after the worker was down, do not take it past the top either
    services.sweep(at(2026, 3, 4, 9))
    ticket.refresh_from_db()
    assert ticket.escalation_level == 3


def test_the_top_is_the_highest_active_level(users, urgent, english):
    EscalationRule.objects.filter(level=3).update(active=False)
    ticket = urgent()
    escalation.escalate(users["agent"], ticket, reason="需要主管")
    escalation.escalate(users["agent"], ticket, reason="客户投诉升级")
    with pytest.raises(services.TransitionRefused, match="level 2"):
        escalation.escalate(users["agent"], ticket, reason="涉及多家医院")
    services.sweep(at(2026, 3, 4, 9))
    ticket.refresh_from_db()
    assert ticket.escalation_level == 2


def test_the_ticket_page_offers_no_escalate_form_at_the_top_of_the_ladder(users, urgent, client_for, english):
    """The escalate form stayed on the ticket page at the top level of the ladder, and was only refused once sent:
    there the page now says the ticket is at the top (its level, and whom its last escalation went to) instead."""
    ticket = urgent()
    form = f'action="/service/tickets/{ticket.pk}/escalate/"'
    for reason in ("需要主管", "客户投诉升级"):
        escalation.escalate(users["agent"], ticket, reason=reason)
        page = client_for("agent").get(f"/service/tickets/{ticket.pk}/").content.decode()
        assert form in page and 'id="escalation-top"' not in page  # level 1, 2 of 3: still offered
    escalation.escalate(users["agent"], ticket, reason="涉及多家医院")
    page = client_for("agent").get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert form not in page and "Escalate to a superior" not in page
    line = page[page.index('id="escalation-top"'):]
    line = " ".join(line[:line.index("</p>")].split())
    assert "already at level 3, the top of the escalation ladder: it cannot be escalated further." in line
    assert f"Last escalated to: {users['manager']}" in line  # the team's lead, told of each escalation by hand
    # the level switched off: the ticket (at 3) stands above the new top, and the page still offers nothing
    EscalationRule.objects.filter(level=3).update(active=False)
    page = client_for("agent").get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert form not in page and 'id="escalation-top"' in page
