"""A loyalty member's level or membership changing re-rates its open tickets: priority service (from Silver on) gives
them the one-step boost a new ticket gets, once, and losing it takes the boost back — as any priority change is made
(the SLA policy chosen again, the clocks rebuilt, the history and the audit trail saying why), never over a priority
an agent set by hand, never on a resolved or closed ticket."""

from __future__ import annotations

import datetime as dt

import pytest

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services as customers
from pharmacrm.customers.models import Institution
from pharmacrm.loyalty import services
from pharmacrm.loyalty.models import Level, Member, MemberStatus
from pharmacrm.sales.models import MonthlyRollup
from pharmacrm.servicedesk import services as desk
from pharmacrm.servicedesk import settings_cache
from pharmacrm.servicedesk.choices import EventKind, Status
from pharmacrm.servicedesk.models import BusinessCalendar, SlaPolicy, Ticket

D = dt.date


@pytest.fixture
def shop(users, beijing, team_north):
    return customers.create_institution(users["admin"], {"name": "同仁堂大药房朝阳店", "kind": "pharmacy",
                                                         "region": beijing, "owner": users["rep"], "team": team_north})  # fmt: skip


@pytest.fixture
def member(users, shop):
    return services.join(users["rep"], shop, today=D(2026, 3, 10))


@pytest.fixture
def high_policy(db):
    """A policy of its own for high-priority tickets (around the clock, answered within 4 hours): a boosted ticket's
    deadlines are not a normal one's."""
    policy = SlaPolicy.objects.create(name="高优先级", priority="high", calendar=BusinessCalendar.objects.get(
        code="always"), first_response=4, first_response_unit="hours", resolution=48, resolution_unit="hours",
        position=15)  # fmt: skip
    settings_cache.bump()
    return policy


def ticket(users, shop, **extra) -> Ticket:
    return desk.create_ticket(users["agent"], {"subject": "咨询用法", "channel": "phone", "category": "drug_info",
                                               "institution": shop, **extra})  # fmt: skip


def fresh(t: Ticket) -> Ticket:
    return Ticket.objects.get(pk=t.pk)


def priority_events(t: Ticket) -> list:
    return list(t.events.filter(kind=EventKind.PRIORITY).order_by("at", "id"))


def clocks(t: Ticket) -> dict:
    return {c.kind: c.due_at for c in t.clocks.all()}


def test_a_member_rising_into_priority_service_has_its_open_tickets_boosted_once(
    users, shop, member, high_policy
):
    open_ticket = ticket(users, shop)
    closed = ticket(users, shop, subject="上月的问题", assignee=users["agent"])
    desk.transition(users["agent"], closed, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    closed = fresh(closed)
    assert (fresh(open_ticket).priority, member.level) == ("normal", Level.STANDARD)
    due_before = clocks(open_ticket)

    MonthlyRollup.objects.create(
        institution=shop, month=D(2026, 4, 1), amount_fen=15_000_000
    )  # ¥150,000: 银卡
    assert services.recompute_levels(D(2026, 4, 1), today=D(2026, 5, 1)) == 1

    boosted = fresh(open_ticket)
    assert (boosted.priority, boosted.boosted) == ("high", True)
    assert boosted.policy == high_policy and {c.policy_id for c in boosted.clocks.all()} == {high_policy.pk}
    assert clocks(boosted)["first_response"] == boosted.received_at + dt.timedelta(hours=4)  # due sooner
    assert clocks(boosted) != due_before
    (event,) = priority_events(boosted)
    assert event.actor is None and event.data["boost"] and event.data["from"][0] == "normal"
    assert member.number in event.data["reason"]
    entry = AuditEntry.objects.filter(object_type="servicedesk.ticket", object_id=str(boosted.pk), action="update",
                                      changes__has_key="priority").get()  # fmt: skip
    assert entry.actor_name == "system" and entry.changes["priority"][1][0] == "high"
    assert member.number in entry.extra["reason"]
    # once: a rise to gold, a rerun, or another member's change, boosts nothing further
    MonthlyRollup.objects.create(
        institution=shop, month=D(2026, 5, 1), amount_fen=40_000_000
    )  # ¥550,000: 金卡
    assert services.recompute_levels(D(2026, 5, 1), today=D(2026, 6, 1)) == 1
    assert services.recompute_levels(D(2026, 5, 1), today=D(2026, 6, 1)) == 0
    assert (fresh(open_ticket).priority, len(priority_events(open_ticket))) == ("high", 1)
    # a resolved ticket keeps the priority its deadlines were judged by
    after = fresh(closed)
    assert (after.priority, after.boosted, after.version) == (closed.priority, False, closed.version)
    assert priority_events(after) == []


def test_a_member_falling_out_of_priority_service_loses_the_boost_but_an_agents_priority_stays(
    users, shop, member, high_policy
):
    Member.objects.filter(pk=member.pk).update(level=Level.SILVER)
    boosted = ticket(users, shop)
    chosen = ticket(users, shop, subject="患者用药后不适")
    assert (boosted.priority, boosted.boosted, chosen.priority) == ("high", True, "high")
    chosen = fresh(chosen)
    desk.change_priority(users["agent"], chosen, "urgent", reason="患者情况紧急", version=chosen.version)
    due_boosted = clocks(boosted)

    # the last 12 months bought less than ¥100,000: back to 普通
    assert services.recompute_levels(D(2026, 4, 1), today=D(2026, 5, 1)) == 1
    assert Member.objects.get(pk=member.pk).level == Level.STANDARD

    t = fresh(boosted)
    assert (t.priority, t.boosted) == ("normal", False)
    assert t.policy != high_policy and t.policy == desk.select_policy(t) and clocks(t) != due_boosted
    last = priority_events(t)[-1]
    assert last.data["unboost"] and last.data["from"][0] == "high" and last.data["to"][0] == "normal"
    assert AuditEntry.objects.filter(object_type="servicedesk.ticket", object_id=str(t.pk),
                                     changes__priority=[["high", t.complexity], ["normal", t.complexity]]).exists()  # fmt: skip
    assert fresh(chosen).priority == "urgent"  # the agent's choice is not the system's to take back


def test_suspending_a_member_takes_the_boost_back_and_reactivating_gives_it_again(users, shop, member):
    Member.objects.filter(pk=member.pk).update(level=Level.GOLD)
    t = ticket(users, shop)
    assert fresh(t).priority == "high"
    member = Member.objects.get(pk=member.pk)
    member = services.set_status(users["manager"], member, MemberStatus.SUSPENDED, version=member.version,
                                 reason="账期逾期")  # fmt: skip
    assert (fresh(t).priority, fresh(t).boosted) == ("normal", False)
    entry = AuditEntry.objects.filter(object_type="servicedesk.ticket", object_id=str(t.pk), action="update",
                                      changes__has_key="priority").order_by("seq").last()  # fmt: skip
    assert entry.actor == users["manager"]  # who suspended the membership
    services.set_status(
        users["manager"], member, MemberStatus.ACTIVE, version=member.version, reason="已结清"
    )
    assert (fresh(t).priority, fresh(t).boosted) == ("high", True)
    assert [e.data.get("boost") or e.data.get("unboost") for e in priority_events(t)] == [True, True, True]
    assert len(priority_events(t)) == 3  # boosted at intake, taken back, given again: never twice on top


def test_joining_at_a_priority_level_or_a_merge_bringing_the_membership_boosts_the_open_tickets(users, shop, beijing,
                                                                                                 team_north):  # fmt: skip
    MonthlyRollup.objects.create(
        institution=shop, month=D(2026, 2, 1), amount_fen=20_000_000
    )  # ¥200,000: 银卡
    waiting = ticket(users, shop)
    assert fresh(waiting).priority == "normal"
    services.join(users["rep"], shop, today=D(2026, 3, 10))
    assert (fresh(waiting).priority, fresh(waiting).boosted) == ("high", True)

    # the same pharmacy entered twice: the copy's open ticket is boosted once the merge gives it the membership
    other = customers.create_institution(users["admin"], {"name": "同仁堂大药房朝阳门店", "kind": "pharmacy",
                                                          "region": beijing, "team": team_north})  # fmt: skip
    survivor_ticket = ticket(users, other)
    assert fresh(survivor_ticket).priority == "normal"
    customers.merge(users["manager"], other, Institution.objects.get(pk=shop.pk))
    assert Member.objects.get(institution=other).level == Level.SILVER
    moved = fresh(survivor_ticket)
    assert (moved.priority, moved.boosted) == ("high", True)
    assert (fresh(waiting).priority, len(priority_events(waiting))) == ("high", 1)


def test_the_history_gives_a_loyalty_boosts_reason_in_the_readers_language(users, shop, member, client_for):
    """The history said "A VIP or key-account customer" for a loyalty member's boost, in every language, though the
    member was neither: it now names the loyalty level and the member, in the reader's language."""
    Member.objects.filter(pk=member.pk).update(level=Level.GOLD)
    boosted = ticket(users, shop)  # boosted at intake
    page = {lang: client_for("agent").get(f"/service/tickets/{boosted.pk}/", HTTP_ACCEPT_LANGUAGE=lang)
            .content.decode() for lang in ("en", "zh-hans")}  # fmt: skip

    assert f"A loyalty member with priority service (Gold, {member.number}): one step more urgent." in page["en"]
    assert f"享有优先服务的忠诚度会员（金卡，{member.number}）：优先级提高一级。" in page["zh-hans"]
    assert "A VIP or key-account customer" not in page["en"]
