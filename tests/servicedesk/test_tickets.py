"""Tickets and their SLA clocks: numbering, the default policies of seed 000 on China's calendar, pauses
while waiting on the customer, priority changes and reopening recomputed from history, the lifecycle's
refusals, optimistic locking, and the worker's warnings and breaches."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from pharmacrm.customers.services import ConflictError
from pharmacrm.servicedesk import services
from pharmacrm.servicedesk.choices import ClockKind, Status
from pharmacrm.servicedesk.models import SlaClock, Ticket, TicketEvent
from tests.concurrency import held_while

SH = ZoneInfo("Asia/Shanghai")


def at(y, m, d, hh=0, mm=0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SH)


def clocks(ticket) -> dict[str, SlaClock]:
    return {c.kind: c for c in SlaClock.objects.filter(ticket=ticket)}


def due(ticket) -> tuple[dt.datetime, dt.datetime]:
    c = clocks(ticket)
    return c[ClockKind.FIRST_RESPONSE].due_at.astimezone(SH), c[ClockKind.RESOLUTION].due_at.astimezone(SH)


@pytest.fixture
def raise_ticket(users, xiehe):
    def make(category="drug_info", received=None, user="agent", **extra):
        data = {"subject": "咨询用法", "channel": "phone", "category": category, "institution": xiehe,
                "received_at": received or at(2026, 3, 2, 9), **extra}  # fmt: skip
        return services.create_ticket(users[user], data)

    return make


def test_tickets_are_numbered_by_year(raise_ticket):
    first, second = raise_ticket(), raise_ticket()
    assert first.number == "TK-2026-000001" and second.number == "TK-2026-000002"


def test_an_ordinary_question_gets_one_working_day_to_answer_and_two_to_resolve(raise_ticket):
    ticket = raise_ticket(received=at(2026, 2, 13, 16))  # Friday before the Spring Festival
    assert (ticket.priority, ticket.complexity, ticket.policy.name) == ("normal", "general", "一般问题（工作日）")
    # Saturday 14 Feb is a swapped working day; then nothing until Tuesday 24 Feb
    assert due(ticket) == (at(2026, 2, 14, 16), at(2026, 2, 24, 16))


def test_an_adverse_reaction_is_complex_and_gets_three_working_days(raise_ticket):
    ticket = raise_ticket("adverse_reaction", received=at(2026, 9, 29, 10))
    assert (ticket.priority, ticket.complexity) == ("high", "complex")
    # Sep 30 (1), Oct 1–7 off, Oct 8 (2), Oct 9 (3)
    assert due(ticket) == (at(2026, 9, 30, 10), at(2026, 10, 9, 10))


def test_a_medication_error_runs_on_the_24x7_clock_even_on_a_holiday(raise_ticket):
    ticket = raise_ticket("medication_error", received=at(2026, 10, 3, 14))
    assert ticket.priority == "urgent"
    assert due(ticket) == (at(2026, 10, 3, 16), at(2026, 10, 4, 14))


def test_a_call_taken_in_the_lunch_break_counts_from_13_30(raise_ticket):
    assert due(raise_ticket(received=at(2026, 3, 2, 12, 15)))[0] == at(2026, 3, 3, 13, 30)


def test_a_ticket_of_new_years_eve_gets_a_deadline_in_2027_without_an_error(raise_ticket):
    ticket = raise_ticket()
    # (received_at cannot lie in the future when the ticket is taken in; move it there to rebuild)
    Ticket.objects.filter(pk=ticket.pk).update(received_at=at(2026, 12, 31, 10))
    TicketEvent.objects.filter(ticket=ticket).update(at=at(2026, 12, 31, 10))
    ticket.refresh_from_db()
    services.rebuild_clocks(ticket, now=at(2026, 12, 31, 10))
    # 2027 not entered yet: the weekly pattern, less New Year's Day (a day off the law fixes every year)
    assert due(ticket) == (at(2027, 1, 4, 10), at(2027, 1, 5, 10))


def test_waiting_on_the_customer_stops_the_clock_and_pushes_the_deadline_back(users, raise_ticket):
    ticket = raise_ticket(received=at(2026, 3, 2, 9))  # Monday; resolution due Wednesday 09:00
    services.transition(users["agent"], ticket, Status.WAITING, at=at(2026, 3, 2, 16))
    waiting = clocks(ticket)[ClockKind.RESOLUTION]
    assert waiting.paused and waiting.next_check_at is None  # the worker does not look at a paused clock
    services.transition(users["agent"], ticket, Status.IN_PROGRESS, at=at(2026, 3, 3, 10))
    resolution = clocks(ticket)[ClockKind.RESOLUTION]
    assert not resolution.paused and resolution.paused_seconds == 3 * 3600  # 1.5 h Monday + 1.5 h Tuesday
    assert resolution.due_at == at(2026, 3, 4, 12)


def test_raising_the_priority_recomputes_the_clocks_from_the_start(users, raise_ticket):
    ticket = raise_ticket(received=at(2026, 3, 2, 9))
    with pytest.raises(ValidationError):
        services.change_priority(users["agent"], ticket, "urgent", reason=" ")
    services.change_priority(users["agent"], ticket, "urgent", reason="患者已出现不适", at=at(2026, 3, 2, 9, 30))
    assert ticket.policy.name == "紧急（7×24 小时）"
    assert due(ticket) == (at(2026, 3, 2, 11), at(2026, 3, 3, 9))
    assert TicketEvent.objects.filter(ticket=ticket, kind="priority").get().data["reason"] == "患者已出现不适"


def test_the_first_response_fulfils_its_clock_and_a_late_one_is_a_breach(users, raise_ticket):
    ticket = raise_ticket(received=at(2026, 3, 2, 9))
    services.record_response(users["agent"], ticket, at=at(2026, 3, 3, 9, 30))  # due Tuesday 09:00
    first = clocks(ticket)[ClockKind.FIRST_RESPONSE]
    assert first.fulfilled_at == at(2026, 3, 3, 9, 30) and first.breached_at == at(2026, 3, 3, 9)
    assert first.next_check_at is None


def test_the_lifecycle_refuses_impossible_steps_and_resolving_needs_a_summary(users, raise_ticket):
    ticket = raise_ticket()
    with pytest.raises(services.TransitionRefused):
        services.transition(users["agent"], ticket, Status.CLOSED)
    with pytest.raises(ValidationError) as exc:
        services.transition(users["agent"], ticket, Status.RESOLVED)
    assert "resolution_summary" in exc.value.message_dict
    assert Ticket.objects.get(pk=ticket.pk).status == Status.NEW  # nothing half-written


def test_a_reopened_ticket_continues_its_resolution_clock_without_the_time_it_was_resolved(users, raise_ticket):
    ticket = raise_ticket(received=at(2026, 3, 2, 9))
    services.transition(users["agent"], ticket, Status.IN_PROGRESS, at=at(2026, 3, 2, 9, 10))
    services.transition(users["agent"], ticket, Status.RESOLVED, at=at(2026, 3, 2, 10), resolution_summary="已告知用法", root_cause="usage")
    assert clocks(ticket)[ClockKind.RESOLUTION].fulfilled_at == at(2026, 3, 2, 10)
    services.transition(users["agent"], ticket, Status.IN_PROGRESS, at=at(2026, 3, 3, 10), note="客户仍有疑问")
    resolution = clocks(ticket)[ClockKind.RESOLUTION]
    assert resolution.fulfilled_at is None
    # resolved from Monday 10:00 to Tuesday 10:00: 7.5 working hours that do not count
    assert resolution.due_at == at(2026, 3, 5, 9)  # Wednesday 09:00 + 7.5 working hours → Thursday 09:00
    assert TicketEvent.objects.filter(ticket=ticket, kind="reopened").exists()


def test_two_agents_saving_the_same_ticket_the_second_gets_a_conflict(users, raise_ticket):
    ticket = raise_ticket()
    mine, theirs = Ticket.objects.get(pk=ticket.pk), Ticket.objects.get(pk=ticket.pk)
    services.transition(users["agent"], mine, Status.IN_PROGRESS, version=mine.version)
    with pytest.raises(ConflictError):
        services.transition(users["expert"], theirs, Status.WAITING, version=theirs.version)
    assert Ticket.objects.get(pk=ticket.pk).status == Status.IN_PROGRESS


@pytest.mark.parametrize("role", ["pv", "analyst", "auditor"])
def test_roles_without_the_capability_cannot_raise_tickets(raise_ticket, role):
    with pytest.raises(PermissionDenied):
        raise_ticket(user=role)
    assert not Ticket.objects.exists()


def test_an_unidentified_callers_phone_is_encrypted_at_rest(users):
    ticket = services.create_ticket(
        users["agent"], {"subject": "来电咨询", "channel": "phone", "category": "drug_info",
                         "caller_name": "王先生", "caller_phone": "13912345678"},
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SELECT caller_name, caller_phone FROM servicedesk_ticket WHERE id = %s", [ticket.pk])
        raw = " ".join(cursor.fetchone())
    assert "13912345678" not in raw and "王先生" not in raw
    assert Ticket.objects.get(pk=ticket.pk).caller_phone == "13912345678" and ticket.caller_phone_bidx


def test_a_ticket_needs_a_customer_or_a_caller_and_a_past_receipt_time(users):
    with pytest.raises(ValidationError) as exc:
        services.create_ticket(
            users["agent"], {"subject": "x", "channel": "phone", "category": "other",
                             "received_at": dt.datetime.now(SH) + dt.timedelta(days=1)},
        )  # fmt: skip
    assert {"person", "received_at"} <= set(exc.value.message_dict)


def test_the_worker_warns_at_three_quarters_then_records_the_breach_and_who_held_it(users, raise_ticket):
    ticket = raise_ticket("medication_error", received=at(2026, 3, 2, 9), assignee=users["agent"])
    first = clocks(ticket)[ClockKind.FIRST_RESPONSE]
    assert first.warn_at == at(2026, 3, 2, 10, 30) and first.next_check_at == first.warn_at
    assert services.due_clock_ids(at(2026, 3, 2, 10)) == []
    assert services.sweep(at(2026, 3, 2, 10, 31)) == {"clocks": 1, "warned": 1, "breached": 0, "escalated": 0}
    assert services.sweep(at(2026, 3, 2, 10, 32))["clocks"] == 0  # warned once
    # the breach fires escalation level 1 at once (the assignee is told)
    assert services.sweep(at(2026, 3, 2, 11, 1)) == {"clocks": 1, "warned": 0, "breached": 1, "escalated": 1}
    first.refresh_from_db()
    assert first.breached_at == at(2026, 3, 2, 11) and first.breach_holder == users["agent"]
    # next: level 2, two hours later on the 24×7 calendar
    assert (first.escalation_level, first.next_check_at) == (1, at(2026, 3, 2, 13))


def test_only_one_worker_claims_a_due_clock(raise_ticket):
    ticket = raise_ticket("medication_error", received=at(2026, 3, 2, 9))
    clock = clocks(ticket)[ClockKind.FIRST_RESPONSE]
    now = at(2026, 3, 2, 12)
    assert clock.pk in services.due_clock_ids(now)
    assert services.claim(clock.pk, now) is True
    assert services.claim(clock.pk, now) is False  # the other worker
    assert clock.pk not in services.due_clock_ids(now)  # leased
    assert services.claim(clock.pk, now + services.LEASE + dt.timedelta(seconds=1)) is True  # a dead worker's lease ends


def test_the_due_query_reads_the_partial_index(raise_ticket):
    raise_ticket("medication_error")
    from pharmacrm.servicedesk.models import SlaClock as Clock

    qs = Clock.objects.filter(next_check_at__lte=at(2026, 3, 2, 12)).order_by("next_check_at").values("id")[:500]
    plan = qs.explain()
    assert "sla_clock_due" in plan or "Seq Scan" in plan  # PostgreSQL may scan a tiny table


def test_a_rep_sees_the_tickets_of_their_customers_and_their_own_only(users, xiehe, ruijin):
    from pharmacrm.core import access

    beijing = services.create_ticket(
        users["agent"], {"subject": "北京", "channel": "phone", "category": "other", "institution": xiehe}
    )
    shanghai = services.create_ticket(
        users["agent"], {"subject": "上海", "channel": "phone", "category": "other", "institution": ruijin}
    )
    own = services.create_ticket(
        users["rep"], {"subject": "拜访记录", "channel": "visit", "category": "other", "caller_name": "李医生"}
    )
    assert set(access.tickets_for(users["rep"])) == {beijing, own}
    assert set(access.tickets_for(users["agent"])) == {beijing, shanghai, own}
    assert set(access.tickets_for(users["auditor"])) == {beijing, shanghai, own}
    assert not access.can_see_ticket(users["rep"], shanghai)


def test_the_worker_task_drains_everything_due(users, raise_ticket):
    from pharmacrm.servicedesk.tasks import sweep_sla_clocks

    for _ in range(3):
        raise_ticket("medication_error", received=at(2026, 3, 2, 9))
    result = sweep_sla_clocks.call_local()  # the periodic task's body, as the worker runs it
    # long past due: every clock was breached (first response and resolution of each ticket)
    # (and escalated: level 3 at once, as the ladder's levels are all past; the second clock of each ticket is
    # within the cooldown of the first)
    assert result == {"clocks": 6, "warned": 0, "breached": 6, "escalated": 3}
    assert sweep_sla_clocks.call_local()["clocks"] == 0


def test_two_workers_claiming_the_same_batch_get_disjoint_clocks(raise_ticket):
    for _ in range(4):
        raise_ticket("medication_error", received=at(2026, 3, 2, 9))
    now = at(2026, 3, 3, 12)
    ids = services.due_clock_ids(now)
    assert len(ids) == 8
    first = services.claim_batch(ids[:6], now)
    second = services.claim_batch(ids[2:], now)  # overlaps the first worker's batch
    assert set(first) == set(ids[:6]) and set(second) == set(ids[6:])
    assert services.due_clock_ids(now) == []


def test_a_sweep_batch_is_audited_with_every_breach(users, raise_ticket):
    from pharmacrm.core.models import AuditEntry

    ticket = raise_ticket("medication_error", received=at(2026, 3, 2, 9), assignee=users["expert"])
    services.sweep(at(2026, 3, 3, 12))
    entry = AuditEntry.objects.filter(object_type="servicedesk.slaclock").latest("seq")
    assert entry.actor_name == "worker"
    assert {(b["ticket"], b["clock"], b["holder"]) for b in entry.extra["breaches"]} == {
        (ticket.number, "first_response", users["expert"].pk), (ticket.number, "resolution", users["expert"].pk)
    }


def test_assigning_a_new_ticket_moves_it_to_assigned_and_is_recorded(users, raise_ticket):
    ticket = raise_ticket()
    with pytest.raises(ValidationError):
        services.assign(users["agent"], ticket, assignee=users["analyst"])  # cannot handle tickets
    services.assign(users["agent"], ticket, assignee=users["expert"], version=ticket.version)
    ticket.refresh_from_db()
    assert (ticket.status, ticket.assignee) == (Status.ASSIGNED, users["expert"])
    assert TicketEvent.objects.filter(ticket=ticket, kind="assigned").exists()
    stale = ticket.version - 1
    with pytest.raises(ConflictError):
        services.assign(users["agent"], ticket, assignee=users["agent"], version=stale)


def test_a_new_holiday_moves_the_deadlines_of_open_tickets(users, raise_ticket, worker_inline,
                                                          django_capture_on_commit_callbacks):  # fmt: skip
    from pharmacrm.servicedesk import calendars
    from pharmacrm.servicedesk.models import BusinessCalendar

    ticket = raise_ticket(received=at(2026, 3, 5, 9))  # Thursday: resolution due Monday 9 March 09:00
    closed = raise_ticket(received=at(2026, 3, 5, 9))
    services.transition(users["agent"], closed, Status.RESOLVED, at=at(2026, 3, 5, 10), resolution_summary="已答复", root_cause="usage")
    assert due(ticket)[1] == at(2026, 3, 9, 9)
    with django_capture_on_commit_callbacks(execute=True):
        calendars.set_override(users["manager"], BusinessCalendar.objects.get(code="business"), dt.date(2026, 3, 6),
                               False, "公司假日")  # fmt: skip
    assert due(ticket)[1] == at(2026, 3, 10, 9)  # Friday off: Monday (1), Tuesday (2)
    assert clocks(closed)[ClockKind.RESOLUTION].due_at == at(2026, 3, 9, 9)  # a resolved ticket keeps its record


def test_changing_a_policy_moves_the_deadlines_of_open_tickets(users, raise_ticket, worker_inline,
                                                              django_capture_on_commit_callbacks):  # fmt: skip
    from pharmacrm.servicedesk import policies
    from pharmacrm.servicedesk.models import SlaPolicy

    ticket = raise_ticket(received=at(2026, 3, 2, 9))
    assert due(ticket)[1] == at(2026, 3, 4, 9)
    with django_capture_on_commit_callbacks(execute=True):
        policies.update_policy(users["admin"], SlaPolicy.objects.get(name="一般问题（工作日）"), {"resolution": 3})
    assert due(ticket)[1] == at(2026, 3, 5, 9)


def test_a_refresh_that_dies_halfway_is_finished_by_the_next_run(users, raise_ticket):
    """The worker stops after the first ticket (here: the next one's calendar has a time zone the server
    does not know; a killed worker stops the same way): the ticket done keeps its new deadline, and the
    next minute's run rebuilds the rest — not the one already done."""
    from django.db.models import F

    from pharmacrm.servicedesk import calendars, policies, tasks, workcalendar
    from pharmacrm.servicedesk.models import BusinessCalendar, SlaPolicy

    admin = users["admin"]
    night = calendars.create_calendar(admin, {"code": "night", "name": "夜班", "always_on": True})
    category = policies.create_category(admin, {"code": "cold_chain", "name": "冷链", "default_priority": "normal",
                                                "default_complexity": "general"})  # fmt: skip
    policies.create_policy(admin, {"name": "冷链（7×24）", "category": category, "calendar": night,
                                   "first_response": 2, "first_response_unit": "hours", "resolution": 24,
                                   "resolution_unit": "hours", "position": 500})  # fmt: skip
    first, cold, last = raise_ticket(), raise_ticket(category="cold_chain"), raise_ticket()
    assert services.refresh_pending() is not None  # the requests of the set-up above: nothing left
    assert due(first)[1] == due(last)[1] == at(2026, 3, 4, 9)
    BusinessCalendar.objects.filter(pk=night.pk).update(time_zone="Mars/Olympus", version=F("version") + 1)

    policies.update_policy(admin, SlaPolicy.objects.get(name="一般问题（工作日）"), {"resolution": 3})
    with pytest.raises(workcalendar.CalendarError):
        services.refresh_pending()  # the run queued with the change dies at the second ticket
    assert due(first)[1] == at(2026, 3, 5, 9)  # done before the failure: kept
    assert due(last)[1] == at(2026, 3, 4, 9)  # not reached

    BusinessCalendar.objects.filter(pk=night.pk).update(time_zone="Asia/Shanghai", version=F("version") + 1)
    assert tasks.resume_refresh.call_local() == 2  # the periodic run: the two tickets left
    assert due(last)[1] == at(2026, 3, 5, 9) and due(cold)[1] == at(2026, 3, 3, 9)  # 24 h on 7×24
    assert tasks.resume_refresh.call_local() == 0  # nothing left to do


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_ticket_resolved_while_the_refresh_runs_stays_resolved(users, raise_ticket):
    """The refresh listed the ticket as open; the agent resolves it before the refresh reaches it (and
    commits while the refresh waits for the ticket): the resolution stands, no deadline runs again."""
    ticket = raise_ticket(received=at(2026, 3, 2, 9))

    def agent():
        services.transition(users["agent"], Ticket.objects.get(pk=ticket.pk), Status.RESOLVED,
                            resolution_summary="已答复", root_cause="usage")  # fmt: skip

    held_while(agent, services.refresh_open_tickets)
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED and ticket.next_due_at is None
    assert clocks(ticket)[ClockKind.RESOLUTION].fulfilled_at is not None


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_ticket_raised_while_its_customer_is_merged_away_is_refused_not_filed_under_the_merged_record(
    users, xiehe
):
    """The agent raises a ticket for the copy of 张伟 while a manager merges the copy into his record: the ticket
    waited for the merge and was then filed under the merged record, which no list shows, after its tickets had
    moved to the survivor. Now it is refused with the survivor named, as when the copy is chosen after the merge."""
    from pharmacrm.customers import services as customers
    from pharmacrm.customers.models import Person

    original = Person.objects.get(name="张伟")
    copy = customers.create_person(
        users["manager"], {"name": "张伟", "institution": xiehe, "mobile": "13900139000"}
    )
    refused: list[str] = []

    def raise_ticket():
        try:
            services.create_ticket(users["agent"], {"subject": "询问用量", "channel": "phone", "category": "drug_info",
                                                    "person": copy})  # fmt: skip
        except ValidationError as e:
            refused.extend(e.message_dict.get("person", []))

    held_while(lambda: customers.merge(users["manager"], original, Person.objects.get(pk=copy.pk)), raise_ticket)
    assert not Ticket.objects.filter(person=copy).exists()
    assert len(refused) == 1


def test_the_ticket_keeps_its_next_deadline_for_the_queues(users, raise_ticket):
    ticket = raise_ticket(received=at(2026, 3, 2, 9))
    assert Ticket.objects.get(pk=ticket.pk).next_due_at == at(2026, 3, 3, 9)  # first response first
    services.record_response(users["agent"], ticket, at=at(2026, 3, 2, 10))
    assert Ticket.objects.get(pk=ticket.pk).next_due_at == at(2026, 3, 4, 9)  # then resolution
    services.transition(users["agent"], ticket, Status.RESOLVED, at=at(2026, 3, 2, 11), resolution_summary="已答复", root_cause="usage")
    assert Ticket.objects.get(pk=ticket.pk).next_due_at is None  # out of the queues' index range
    services.transition(users["agent"], ticket, Status.IN_PROGRESS, at=at(2026, 3, 2, 12))
    assert Ticket.objects.get(pk=ticket.pk).next_due_at == at(2026, 3, 4, 10)  # an hour resolved: not counted


def test_resolving_needs_the_root_cause_and_informing_records_how_when_and_who(users, raise_ticket):
    ticket = raise_ticket(received=at(2026, 3, 2, 9))
    with pytest.raises(ValidationError) as exc:
        services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已答复")
    assert "root_cause" in exc.value.message_dict
    services.transition(users["agent"], ticket, Status.RESOLVED, at=at(2026, 3, 2, 10), resolution_summary="已答复",
                        root_cause="information")  # fmt: skip
    assert Ticket.objects.get(pk=ticket.pk).root_cause == "information"
    with pytest.raises(ValidationError) as exc:
        services.transition(users["agent"], ticket, Status.INFORMED)
    assert "informed_channel" in exc.value.message_dict
    services.transition(users["expert"], ticket, Status.INFORMED, at=at(2026, 3, 2, 15), informed_channel="phone")
    told = TicketEvent.objects.get(ticket=ticket, to_status=Status.INFORMED)
    assert (told.data["channel"], told.actor, told.at) == ("phone", users["expert"], at(2026, 3, 2, 15))


def test_a_policy_change_applies_to_the_next_ticket_at_once(users, raise_ticket):
    """Intake keeps the policies per process; a change through the services is seen by the next ticket."""
    from pharmacrm.servicedesk import policies
    from pharmacrm.servicedesk.models import SlaPolicy

    before = raise_ticket("medication_error", received=at(2026, 3, 2, 9))
    assert due(before)[0] == at(2026, 3, 2, 11)
    urgent = SlaPolicy.objects.get(priority="urgent")
    policies.update_policy(users["admin"], urgent, {"first_response": 1})
    after = raise_ticket("medication_error", received=at(2026, 3, 2, 9))
    assert due(after)[0] == at(2026, 3, 2, 10)


def test_an_assignment_rule_change_applies_to_the_next_ticket_at_once(users, raise_ticket, make_user):
    from pharmacrm.core.models import Team
    from pharmacrm.servicedesk import routing

    raise_ticket()  # reads (and keeps) the rules: none yet
    team = Team.objects.create(name="热线组")
    users["expert"].teams.add(team)
    routing.create_rule(users["admin"], {"name": "全部 → 热线组", "team": team, "method": "least_loaded"})
    ticket = raise_ticket()
    assert (ticket.team, ticket.assignee) == (team, users["expert"])


@pytest.mark.parametrize("phone, ok", [("12345", False), ("abc-def", False), ("010-6915 6114", True), ("+86 139 1234 5678", True)])  # noqa: E501
def test_a_callers_phone_must_be_a_number_that_can_be_called_back(users, phone, ok):
    data = {"subject": "来电咨询", "channel": "phone", "category": "drug_info", "caller_name": "张三", "caller_phone": phone}
    if ok:
        assert services.create_ticket(users["agent"], data).caller_phone == phone
        return
    with pytest.raises(ValidationError) as exc:
        services.create_ticket(users["agent"], data)
    assert "请输入有效的中国手机号" in " ".join(exc.value.message_dict["caller_phone"])  # the default language
    assert not Ticket.objects.exists()
