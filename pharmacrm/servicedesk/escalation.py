"""Escalation (升级): what happens after a deadline is missed, and by hand.

The ladder is data (EscalationRule): level N fires `after_minutes` of working time (on the clock's
calendar) after the breach, notifies the assignee, the team lead or the managers, and may hand the ticket
to another agent when nobody acted since the previous level. The worker reaches these moments through the
same partial index as warnings and breaches (SlaClock.next_check_at), so nothing scans tickets.

Exactly once, whatever the number of workers: a clock is leased before it is handled (services.claim_batch),
and the ticket's level moves with a conditional UPDATE (`escalation_level < N` and outside the cooldown),
so two clocks of one ticket, or two workers, cannot fire the same level twice."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Max
from django.db.models.signals import post_delete, post_save
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access, audit
from pharmacrm.core.deferred import Message, label
from pharmacrm.core.models import AuditEntry, User
from pharmacrm.core.roles import Cap, Role

from . import calendars
from .choices import OPEN_STATUSES, EscalationNotify, EventKind, Status
from .models import AgentProfile, EscalationRule, SlaClock, Ticket, TicketEvent

A = AuditEntry.Action
RULES_TTL = 60.0  # seconds a worker keeps the ladder before reading it again (changes are rare)


@dataclass(frozen=True)
class Rung:
    level: int
    after: dt.timedelta
    notify: str
    reassign: bool
    cooldown: dt.timedelta


_rules: tuple[float, tuple[Rung, ...]] | None = None
_lock = threading.Lock()


def ladder() -> tuple[Rung, ...]:
    """The active escalation levels, lowest first (cached per process for RULES_TTL, dropped on change)."""
    global _rules
    cached = _rules
    if cached is not None and time.monotonic() - cached[0] < RULES_TTL:
        return cached[1]
    rungs = tuple(
        Rung(r.level, dt.timedelta(minutes=r.after_minutes), r.notify, r.reassign,
             dt.timedelta(minutes=r.cooldown_minutes))  # fmt: skip
        for r in EscalationRule.objects.filter(active=True).order_by("level")
    )
    with _lock:
        _rules = (time.monotonic(), rungs)
    return rungs


def _forget(**kwargs) -> None:
    global _rules
    _rules = None


post_save.connect(_forget, sender=EscalationRule, dispatch_uid="escalation-ladder-save")
post_delete.connect(_forget, sender=EscalationRule, dispatch_uid="escalation-ladder-delete")


def next_rung(clock: SlaClock, rungs: tuple[Rung, ...] | None = None) -> tuple[Rung, dt.datetime] | None:
    """The next level this breached clock has not fired yet, and when it is due."""
    if clock.breached_at is None or clock.fulfilled_at is not None or clock.paused:
        return None
    for rung in ladder() if rungs is None else rungs:
        if rung.level > clock.escalation_level:
            return rung, calendars.engine(clock.calendar).add(clock.breached_at, rung.after)
    return None


# --- firing a level (the worker) ---------------------------------------------------------------------


def fire_due(clocks: list[SlaClock], now: dt.datetime) -> tuple[list[TicketEvent], list[dict]]:
    """For each breached clock, fire the highest level that is due (a worker that was down fires the
    latest level once, notifying everyone the skipped levels would have). Returns the history events and
    the audit lines; notifications and hand-overs happen here, in the caller's transaction. The levels are
    raised with one conditional UPDATE per level for the whole batch, and the notifications written in
    one go."""
    rungs = ladder()
    events: list[TicketEvent] = []
    lines: list[dict] = []
    if not rungs:
        return events, lines
    first: dict[int, tuple[SlaClock, list[Rung]]] = {}  # one candidate clock per ticket in this batch
    blocked: list[tuple[SlaClock, list[Rung]]] = []
    for clock in clocks:
        due = []
        while (step := next_rung(clock, rungs)) is not None and step[1] <= now:
            due.append(step[0])
            clock.escalation_level = step[0].level
        if not due:
            continue
        if clock.ticket_id in first:
            blocked.append((clock, due))  # the ticket's other clock escalates it now: this one waits
        else:
            first[clock.ticket_id] = (clock, due)
    won: set[int] = set()
    for level in sorted({due[-1].level for _c, due in first.values()}):
        group = [(c, due) for c, due in first.values() if due[-1].level == level]
        won |= _raise_levels([c.ticket_id for c, _d in group], level, now, group[0][1][-1].cooldown)
    blocked += [(c, due) for c, due in first.values() if c.ticket_id not in won]
    if blocked:
        last = dict(Ticket.objects.filter(pk__in={c.ticket_id for c, _d in blocked}).values_list("id", "escalated_at"))
        for clock, due in blocked:
            clock.escalation_level = due[0].level - 1  # within the cooldown: try again when it ends
            at = last.get(clock.ticket_id)
            clock.retry_at = (max(at, now) + due[-1].cooldown) if at else now + due[-1].cooldown
    bosses = _Managers()
    winners = [first[t] for t in sorted(won)]
    handed = _hand_over_batch([c.ticket for c, due in winners if any(r.reassign for r in due)], now, events)
    notes = []
    for clock, due in winners:
        top, ticket = due[-1], clock.ticket
        handed_to = handed.get(ticket.pk)
        recipients = _recipients(ticket, {r.notify for r in due}, bosses)
        events.append(TicketEvent(
            ticket=ticket, kind=EventKind.ESCALATED, at=now,
            data={"level": top.level, "clock": clock.kind, "notified": sorted(u.pk for u in recipients),
                  "reassigned_to": handed_to.pk if handed_to else None},
        ))  # fmt: skip
        lines.append({"ticket": ticket.number, "level": top.level, "clock": clock.kind,
                      "reassigned_to": handed_to.pk if handed_to else None})  # fmt: skip
        # whom the ticket was just handed to was told so, after the missed deadline: not a second time
        told = [u for u in recipients if handed_to is None or u.pk != handed_to.pk]
        if told:
            notes.append(_notification(told, ticket, top.level, manual=False))
    _send(notes)
    return events, lines


def _raise_levels(ticket_ids: list[int], level: int, now: dt.datetime, cooldown: dt.timedelta) -> set[int]:
    """Record that these tickets escalated now, except those that did within the cooldown or are no longer
    open: one conditional UPDATE … RETURNING, so of several workers exactly one wins each ticket. The
    ticket's level is the highest reached by any of its clocks."""
    if not ticket_ids:
        return set()
    table = Ticket._meta.db_table
    ids = ", ".join(["%s"] * len(ticket_ids))
    open_ = ", ".join(["%s"] * len(OPEN_STATUSES))
    sql = (
        f"UPDATE {table} SET escalation_level = CASE WHEN escalation_level < %s THEN %s ELSE escalation_level END, "
        f"escalated_at = %s WHERE id IN ({ids}) AND status IN ({open_}) "
        "AND (escalated_at IS NULL OR escalated_at <= %s) RETURNING id"
    )
    adapt = connection.ops.adapt_datetimefield_value
    params = [level, level, adapt(now), *ticket_ids, *[str(s) for s in OPEN_STATUSES], adapt(now - cooldown)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def _idle(tickets: list[Ticket], now: dt.datetime) -> list[Ticket]:
    """The tickets whose assignee did nothing since the previous level (or since receipt): one query for
    the batch."""
    if not tickets:
        return []
    since = {t.pk: t.escalated_at or t.received_at for t in tickets}
    holder = {t.pk: t.assignee_id for t in tickets}
    rows = TicketEvent.objects.filter(
        ticket_id__in=list(since), actor_id__isnull=False, at__gte=min(since.values()), at__lte=now
    ).values_list("ticket_id", "actor_id", "at")
    acted = {tid for tid, actor, at in rows if actor == holder[tid] and at >= since[tid]}
    return [t for t in tickets if t.pk not in acted]


def _hand_over_batch(tickets: list[Ticket], now: dt.datetime, events: list[TicketEvent]) -> dict[int, User]:
    """Level 2's hand-over for a batch: each ticket whose assignee did nothing since the breach goes to
    the least-loaded eligible agent of its team (routing.eligible_agents, read once per team, category,
    product and current holder; loads then counted here as tickets are handed out). The new assignees are
    written with one UPDATE per agent (the version moves, so an agent saving a stale form gets a conflict),
    with an ASSIGNED event each; the batch's audit entry lists them."""
    from . import routing, services

    out: dict[int, User] = {}
    pools: dict[tuple, list[tuple[User, int]]] = {}
    loads: dict[int, int] = {}
    moves: dict[int, list[Ticket]] = {}
    agents: dict[int, User] = {}
    for ticket in _idle([t for t in tickets if t.team_id is not None], now):
        key = (ticket.team_id, ticket.category_id, ticket.product_id, ticket.assignee_id)
        if key not in pools:
            exclude = [ticket.assignee_id] if ticket.assignee_id else []
            eligible = routing.eligible_agents(ticket.team, ticket, exclude)
            limits = dict(
                AgentProfile.objects.filter(user_id__in=[u.pk for u, _n in eligible]).values_list("user_id", "max_open")
            )
            for user, n in eligible:
                loads.setdefault(user.pk, n)
            pools[key] = [(u, limits.get(u.pk, routing.DEFAULT_MAX_OPEN)) for u, _n in eligible]
        free = [(u, cap) for u, cap in pools[key] if loads[u.pk] < cap]
        if not free:
            continue
        agent = min(free, key=lambda c: (loads[c[0].pk], c[0].pk))[0]
        loads[agent.pk] += 1
        if ticket.status == Status.NEW:  # a new ticket also becomes "assigned": the full service path
            try:
                with transaction.atomic():
                    services.assign(services.SYSTEM, ticket, assignee=agent, team=ticket.team, at=now, tell=False)
            except (ValidationError, services.ConflictError):
                continue
            services.tell_assignee(ticket, Message(HANDED_TITLE, number=ticket.number, subject=ticket.subject))
            out[ticket.pk] = agent
            continue
        moves.setdefault(agent.pk, []).append(ticket)
        agents[agent.pk] = agent
    for agent_id, moved in moves.items():
        Ticket.objects.filter(pk__in=[t.pk for t in moved], status__in=OPEN_STATUSES).update(
            assignee_id=agent_id, version=F("version") + 1, updated_at=now
        )
        for ticket in moved:
            before = ticket.assignee_id
            ticket.assignee, ticket.version = agents[agent_id], ticket.version + 1
            out[ticket.pk] = agents[agent_id]
            events.append(TicketEvent(ticket=ticket, kind=EventKind.ASSIGNED, at=now,
                                      data={"assignee": agent_id, "team": ticket.team_id, "from": before,
                                            "escalation": True}))  # fmt: skip
            # the new holder is told, as for every hand-over (a new ticket above too): the overdue ticket
            # used to sit in their queue unseen while the ladder told only the lead
            services.tell_assignee(ticket, Message(HANDED_TITLE, number=ticket.number, subject=ticket.subject))
    return out


HANDED_TITLE = gettext_lazy("%(number)s was handed to you after a missed deadline: %(subject)s")


def managers() -> list[User]:
    return list(User.objects.filter(is_active=True, groups__name=Role.MANAGER).distinct())


class _Managers:
    """The managers, read once per batch and only when a level needs them."""

    def __init__(self) -> None:
        self._users: list[User] | None = None

    def __call__(self) -> list[User]:
        if self._users is None:
            self._users = managers()
        return self._users


def _recipients(ticket: Ticket, kinds: set[str], bosses=managers) -> list[User]:
    out: dict[int, User] = {}
    lead = ticket.team.lead if ticket.team_id and ticket.team.lead_id else None
    if EscalationNotify.ASSIGNEE in kinds:
        # an assignee whose account was switched off (left the company) reads nothing: the lead is told instead,
        # as for a ticket nobody holds
        holder = ticket.assignee if ticket.assignee_id and ticket.assignee.is_active else None
        for u in (holder, None if holder else lead):
            if u is not None:
                out[u.pk] = u
    if EscalationNotify.TEAM_LEAD in kinds:
        for u in [lead] if lead else bosses():
            out[u.pk] = u
    if EscalationNotify.MANAGER in kinds:
        for u in bosses():
            out[u.pk] = u
    return [u for u in out.values() if u.is_active]


TITLE = gettext_lazy("%(number)s escalated to level %(level)d")
MANUAL_TITLE = gettext_lazy("%(number)s escalated to you by %(user)s")
HANDED_OVER_TITLE = gettext_lazy("%(number)s escalated and handed over to you by %(user)s")


def _notification(recipients: list[User], ticket: Ticket, level: int, *, manual: bool, by=None,
                  reason: str = "", handed: bool = False) -> dict:  # fmt: skip
    if manual:
        title = Message(HANDED_OVER_TITLE if handed else MANUAL_TITLE, number=ticket.number, user=str(by))
    else:
        title = Message(TITLE, number=ticket.number, level=level)
    return {"recipients": recipients, "kind": "ticket.escalated", "title": title, "body": reason or ticket.subject,
            "url": reverse("servicedesk:ticket", args=[ticket.pk]), "obj": ticket}  # fmt: skip


def _send(notes: list[dict]) -> None:
    from pharmacrm.notify import services as notify

    if notes:
        notify.send_many(notes)


WARNING_TITLE = gettext_lazy("%(number)s: %(target)s due at %(due)s")


def notify_warnings(clocks: list[SlaClock]) -> None:
    """Three quarters of a target's time has passed: tell whoever holds the ticket (its team lead when
    nobody does)."""
    notes = []
    for clock in clocks:
        ticket = clock.ticket
        recipients = _recipients(ticket, {EscalationNotify.ASSIGNEE})
        if not recipients:
            continue
        due = timezone.localtime(clock.due_at).strftime("%Y-%m-%d %H:%M")
        notes.append({
            "recipients": recipients, "kind": "ticket.warning",
            "title": Message(WARNING_TITLE, number=ticket.number, target=label(clock, "kind"), due=due),
            "body": ticket.subject, "url": reverse("servicedesk:ticket", args=[ticket.pk]), "obj": ticket,
        })  # fmt: skip
    _send(notes)


# --- by hand ---------------------------------------------------------------------------------------------


def superiors(ticket: Ticket, user) -> list[User]:
    """Whom an agent escalates to: the team lead, or the managers when the agent is the lead or there is
    none."""
    lead = ticket.team.lead if ticket.team_id and ticket.team.lead_id else None
    if lead is not None and lead.pk != user.pk and lead.is_active:
        return [lead]
    return [m for m in managers() if m.pk != user.pk]


def escalate(user, ticket: Ticket, *, reason: str, hand_over: bool = False, at=None) -> Ticket:
    """An agent escalates a major or complex case to a superior: the superior is notified (and, with
    `hand_over`, becomes the assignee); the ticket's level goes up by one; recorded and audited."""
    from . import services

    services.require(user, Cap.HANDLE_TICKETS)
    if ticket.status not in OPEN_STATUSES:
        raise services.TransitionRefused(_("Only an open ticket can be escalated."))
    if not (reason or "").strip():
        raise ValidationError({"reason": [_("Say why the ticket needs a superior.")]})
    targets = superiors(ticket, user)
    if not targets:
        raise ValidationError({"reason": [_("Nobody above you can take this ticket: no team lead and no manager.")]})
    if hand_over and len(targets) != 1:
        raise ValidationError({"hand_over": [_("There is no team lead to hand the ticket over to; the managers are "
                                                "notified instead.")]})  # fmt: skip
    now = at or timezone.now()
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket.pk) if _can_lock() else ticket
        _refuse_sent_again(user, ticket, reason.strip(), now)
        _refuse_past_the_top(ticket)
        level = ticket.escalation_level + 1
        Ticket.objects.filter(pk=ticket.pk).update(escalation_level=level, escalated_at=now)
        ticket.escalation_level, ticket.escalated_at = level, now
        handed = None
        if hand_over:
            handed = targets[0]
            # told below, in the escalation's notification: one message saying both, not two
            services.assign(user, ticket, assignee=handed, team=ticket.team, at=now, tell=False)
        services._event(ticket, EventKind.ESCALATED, user, at=now, data={
            "level": level, "manual": True, "reason": reason.strip(), "notified": [u.pk for u in targets],
            "reassigned_to": handed.pk if handed else None,
        })  # fmt: skip
        audit.record(A.UPDATE, ticket, user=user, changes={"escalation_level": [level - 1, level]},
                     reason=reason.strip())  # fmt: skip
        _send([_notification(targets, ticket, level, manual=True, by=user, reason=reason.strip(),
                             handed=handed is not None)])  # fmt: skip
    return ticket


def top_level() -> int:
    """The highest level of the escalation ladder (its active levels; read now, not from a worker's cache): manual
    and automatic escalations share the ticket's one level, and neither goes past it. With every level switched
    off, a ticket may still be escalated by hand once (level 1)."""
    return EscalationRule.objects.filter(active=True).aggregate(top=Max("level"))["top"] or 1


def at_the_top(ticket: Ticket, top: int | None = None) -> dict | None:
    """The ticket page's word instead of the escalate form when the ticket stands at the top of the ladder (the form
    was offered there, and only refused once sent): the top level, and whom its last escalation went to (the people
    notified, as its history event keeps them; none when no event says). None below the top. `top`: the top level
    when the caller has read the ladder already (the ticket page), else read here."""
    top = top or top_level()
    if ticket.escalation_level < top:
        return None
    last = (
        TicketEvent.objects.filter(ticket=ticket, kind=EventKind.ESCALATED).order_by("-at", "-id")
        .values_list("data", flat=True).first()
    ) or {}  # fmt: skip
    ids = [pk for pk in (last.get("notified") or []) if isinstance(pk, int)]
    people = {u.pk: u for u in User.objects.filter(pk__in=ids)}
    return {"level": top, "message": _("The ticket is already at level %(level)d, the top of the escalation ladder: it "
                                       "cannot be escalated further.") % {"level": top},
            "people": [people[pk] for pk in ids if pk in people]}  # fmt: skip


def _refuse_past_the_top(ticket: Ticket) -> None:
    """Escalating by hand raised the level by one each time, without end (已升级至 10 级 on a ladder of 3 levels)."""
    from . import services

    top = top_level()
    if ticket.escalation_level >= top:
        raise services.TransitionRefused(
            _("The ticket is already at level %(level)d, the top of the escalation ladder: it cannot be escalated "
              "further.") % {"level": top}
        )  # fmt: skip


SENT_AGAIN = dt.timedelta(minutes=10)


def _refuse_sent_again(user, ticket: Ticket, reason: str, now: dt.datetime) -> None:
    """The same escalation (same person, ticket and reason) within ten minutes is the form sent twice — a double
    click, Back and send: it would raise the level twice and tell the superior twice. Called under the ticket's
    lock, so that two such requests in parallel see each other."""
    if not getattr(user, "is_authenticated", False):
        return
    earlier = TicketEvent.objects.filter(
        ticket=ticket, kind=EventKind.ESCALATED, actor=user, at__gte=now - SENT_AGAIN, at__lte=now
    ).order_by("-at").values_list("data", "at")[:5]
    for data, when in earlier:
        if isinstance(data, dict) and data.get("manual") and data.get("reason") == reason:
            raise ValidationError({"reason": [
                _("This escalation was already sent at %(time)s; it was not sent again.")
                % {"time": timezone.localtime(when).strftime("%H:%M")}
            ]})  # fmt: skip


def _can_lock() -> bool:
    from django.db import connection

    return connection.features.has_select_for_update


# --- the ladder as settings ------------------------------------------------------------------------------

RULE_FIELDS = ("level", "after_minutes", "notify", "reassign", "cooldown_minutes", "active")
MAX_MINUTES = 60 * 24 * 30


def _rule_snapshot(rule: EscalationRule) -> dict:
    return {f: getattr(rule, f) for f in RULE_FIELDS}


def _validate_rule(rule: EscalationRule) -> None:
    errors: dict[str, list[str]] = {}
    try:
        rule.full_clean()
    except ValidationError as e:
        errors.update({k: [str(m) for m in v] for k, v in e.message_dict.items()})
    if rule.level is not None and not 1 <= rule.level <= 9:
        errors.setdefault("level", []).append(_("A level is a number from 1 to 9."))
    for field in ("after_minutes", "cooldown_minutes"):
        value = getattr(rule, field)
        if value is not None and value > MAX_MINUTES:
            errors.setdefault(field, []).append(_("At most %(max)d minutes (30 days).") % {"max": MAX_MINUTES})
    if errors:
        raise ValidationError(errors)


def save_rule(user, rule: EscalationRule, data: dict, *, version: int | None = None) -> EscalationRule:
    """Create or change a level of the ladder (administrators and managers); audited; a stale `version` is
    a conflict. Workers read the ladder again within a minute; clocks already past a level keep what they
    fired."""
    from .policies import _lock

    access.require(user, Cap.MANAGE_SERVICE)
    creating = rule.pk is None
    before = {} if creating else _rule_snapshot(rule)
    for key, value in data.items():
        if key in RULE_FIELDS:
            setattr(rule, key, value)
    _validate_rule(rule)
    changes = audit.diff(before, _rule_snapshot(rule))
    if not changes:
        return rule
    with transaction.atomic():
        if not creating:
            _lock(EscalationRule, rule, version)
        rule.save()
        audit.record(A.CREATE if creating else A.UPDATE, rule, user=user, changes=changes)
    return rule
