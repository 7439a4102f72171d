"""Every change to tickets: checked, validated, written in one transaction with its history event and its
SLA clocks, audited. The clocks are always rebuilt from the ticket's history (`rebuild_clocks`), so a
priority or policy change, a pause while waiting on the customer, or a reopen gives the same deadlines
whoever recomputes them and whenever."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access, audit, crypto, dueclock
from pharmacrm.core.deferred import Message
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry, Counter
from pharmacrm.core.roles import Cap
from pharmacrm.customers import normalise
from pharmacrm.customers import services as customers_services
from pharmacrm.customers.choices import PreferredLanguage
from pharmacrm.customers.services import ConflictError
from pharmacrm.safety import net

from . import calendars
from .choices import (
    OPEN_STATUSES,
    REOPENABLE,
    TRANSITIONS,
    Channel,
    ClockKind,
    Delivery,
    EventKind,
    Impact,
    MessageKind,
    Priority,
    RootCause,
    Status,
)
from .models import (
    NO_DEADLINE,
    SlaClock,
    SlaPolicy,
    Survey,
    Ticket,
    TicketCategory,
    TicketEvent,
    TicketMessage,
)

A = AuditEntry.Action
WARN_SHARE = 0.75  # warn when three quarters of a target's working time has passed
PAUSED_STATUSES = frozenset({Status.WAITING})  # the customer has the ball: clocks stop
DONE_STATUSES = frozenset({Status.RESOLVED, Status.INFORMED, Status.CLOSED})
RESPONSE_EVENTS = frozenset({EventKind.RESPONDED, EventKind.REPLY})  # what meets the first-response target
CALLER_NAME_MAX = 50  # counted as stored (stripped); refused beyond, never cut — the mail poller cuts a sender's name
CALLER_NAME_TOO_LONG = gettext_lazy("The caller's name is too long: at most %(max)s characters (it has %(n)s).")


def caller_name_error(value) -> str | None:
    """What is wrong with a caller's name, naming the field as the customers' TOO_LONG messages do (every path:
    the intake and edit pages, the API, the service); None when it may be stored."""
    value = (value or "").strip()
    if len(value) > CALLER_NAME_MAX:
        return str(CALLER_NAME_TOO_LONG % {"max": CALLER_NAME_MAX, "n": len(value)})
    return None


class SystemActor:
    """Who acts when no user does: the mail poller, the public web form, the worker. Allowed every
    service-desk step; recorded as "System" in the history and the audit trail (actor_name)."""

    is_authenticated = False
    pk = id = None

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return self.name


SYSTEM = SystemActor("system")


def require(user, cap: Cap) -> None:
    """access.require, except that the system actor may do every service-desk step."""
    if not isinstance(user, SystemActor):
        access.require(user, cap)


class TransitionRefused(ValidationError):
    """A status change the lifecycle does not allow (the API answers 409)."""


def next_number(at: dt.datetime) -> str:
    year = timezone.localtime(at).year
    return f"TK-{year}-{Counter.allocate(f'ticket:{year}'):06d}"


# --- intake ----------------------------------------------------------------------------------------


SAME_TICKET_WINDOW = dt.timedelta(minutes=10)


def same_ticket_just_taken(user, data: dict) -> Ticket | None:
    """The ticket this user took in during the last ten minutes with the same customer, category, subject and
    description: the intake form sent again after its page was loaded anew (Back in a browser that does not
    keep the page), which its one-time token cannot tell from a new form."""
    category, subject = data.get("category"), (data.get("subject") or "").strip()
    if not getattr(user, "is_authenticated", False) or not isinstance(category, TicketCategory) or not subject:
        return None
    candidates = Ticket.objects.filter(
        created_by=user, created_at__gte=timezone.now() - SAME_TICKET_WINDOW, subject=subject[:200],
        category=category, institution=data.get("institution"), person=data.get("person"),
    ).order_by("-created_at")[:10]  # fmt: skip
    description = (data.get("description") or "").strip()
    # the same words from another caller are another ticket: two unidentified callers asking the same short
    # question ("咨询用法", no description) within minutes were taken in as one, the second call lost
    caller = (
        (data.get("caller_name") or "").strip(),
        crypto.blind_index(normalise.phone((data.get("caller_phone") or "").strip()), "phone"),
        (data.get("reply_email") or "").strip().lower(),
    )
    return next((
        t for t in candidates
        if t.description.strip() == description
        and (t.caller_name.strip(), t.caller_phone_bidx, t.reply_email.strip().lower()) == caller
    ), None)  # fmt: skip


def create_ticket(user, data: dict) -> Ticket:
    """Take in a ticket. `data`: subject, channel, category (object or code), received_at (default now),
    and optionally description, priority / complexity (with priority_reason when they differ from the
    category's), institution, person, caller_name, caller_phone, batch_number, assignee, team, language (the
    requester's: default the person's preferred language, else the site's) and forwarded_by (the user who forwarded
    the customer's mail: named in the history and the audit entry, never the caller)."""
    require(user, Cap.HANDLE_TICKETS)
    now = timezone.now()
    category = _category(data.get("category"))
    received_at = data.get("received_at") or now
    errors: dict[str, list[str]] = {}
    if received_at > now + dt.timedelta(minutes=5):
        errors["received_at"] = [_("A ticket cannot be received in the future.")]
    if not (data.get("subject") or "").strip():
        errors["subject"] = [_("Describe the request in a few words.")]
    if data.get("channel") not in Channel.values:
        errors["channel"] = [_("Choose how the request came in.")]
    priority = data.get("priority") or category.default_priority
    complexity = data.get("complexity") or category.default_complexity
    overridden = priority != category.default_priority or complexity != category.default_complexity
    if overridden and not (data.get("priority_reason") or "").strip() and priority != Priority.URGENT:
        errors["priority"] = [_("Give a reason when the priority or complexity differs from the category's.")]
    if not (data.get("institution") or data.get("person") or data.get("caller_phone") or data.get("caller_name")):
        errors["person"] = [_("Name the customer, or the caller's name or phone number.")]
    if (name_error := caller_name_error(data.get("caller_name"))) is not None:
        errors["caller_name"] = [name_error]
    if (data.get("caller_phone") or "").strip():
        try:  # the number to call back: the rule of every other phone in the product
            normalise.validate_any_phone(data["caller_phone"])
        except ValidationError as e:
            errors["caller_phone"] = e.messages
    if (data.get("reply_email") or "").strip():
        from pharmacrm.core.addresses import validate_address

        try:  # 张三@公司.cn too (RFC 6531): a customer who writes from such an address is answered
            validate_address(data["reply_email"].strip())
        except ValidationError:
            errors["reply_email"] = [_("Enter a valid e-mail address.")]
    language = data.get("language") or ""
    if language and language not in PreferredLanguage.values:
        errors["language"] = [_("Choose the customer's language: Simplified Chinese, English or Traditional Chinese.")]
    assignee = data.get("assignee")
    if assignee is not None and not access.can(assignee, Cap.HANDLE_TICKETS):  # as services.assign refuses
        errors["assignee"] = [_("This user cannot handle tickets.")]
    for key in ("institution", "person"):
        obj = data.get(key)
        if obj is not None and not isinstance(user, SystemActor) and not access.can_see(user, obj):
            errors[key] = [_("You may not raise tickets for this customer.")]
    errors = {**customers_services.merged_choice_errors(data), **errors}
    if errors:
        raise ValidationError(errors)
    ticket = Ticket(
        subject=data["subject"].strip()[:200], description=(data.get("description") or "").strip(),
        channel=data["channel"], received_at=received_at, category=category, priority=priority,
        complexity=complexity, institution=data.get("institution"), person=data.get("person"),
        caller_name=(data.get("caller_name") or "").strip(), caller_phone=(data.get("caller_phone") or "").strip(),
        batch_number=(data.get("batch_number") or "").strip()[:40], assignee=data.get("assignee"),
        team=data.get("team"), created_by=user if getattr(user, "is_authenticated", False) else None,
        created_at=now, updated_at=now,
    )  # fmt: skip
    if ticket.person_id and not ticket.institution_id:
        ticket.institution_id = ticket.person.institution_id
    ticket.product = data.get("product")
    ticket.reply_email = (data.get("reply_email") or "").strip()
    # the language the request came in (the web form's page, the mail, the one the agent or the API intake names),
    # else the one on the customer's record: what the desk writes to the requester in, and shows their survey and
    # status pages in (an API intake's Accept-Language comes after the record: api.TicketViewSet.create)
    ticket.language = language or (ticket.person.preferred_language if ticket.person_id else "") or settings.LANGUAGE_CODE
    ticket.safety_relevant = bool(data.get("safety_relevant")) or category.safety_relevant
    ticket.refresh_derived()
    with transaction.atomic():
        from . import routing, settings_cache

        desk = settings_cache.snapshot()
        routing.route(user, ticket, rules=desk.rules)  # team, agent and priority boost by the assignment rules
        ticket.number = next_number(received_at)
        ticket.policy = select_policy(ticket, desk.policies)
        # a merge of the customer under way: filed under the merged record, the ticket would be shown nowhere
        customers_services.hold_unmerged(institution=ticket.institution_id, person=ticket.person_id)
        ticket.save(force_insert=True)
        routed = getattr(ticket, "_routing", None) or {}
        created = {"channel": ticket.channel}
        if routed.get("method"):
            created["routing"] = {"rule": routed["rule"], "method": routed["method"]}
        forwarded = forwarded_by(data.get("forwarded_by"), received_at)
        if forwarded:  # the employee who passed the customer's mail on: in the history and the audit entry
            created["forwarded_by"] = forwarded
        history = [_event(ticket, EventKind.CREATED, user, at=received_at, to_status=Status.NEW, data=created)]
        if routed.get("boosted_from"):
            history.append(_event(
                ticket, EventKind.PRIORITY, SYSTEM, at=now,
                data={"from": [routed["boosted_from"], complexity], "to": [ticket.priority, complexity],
                      **routing.boost_mark(ticket.boost_reason)},
            ))  # fmt: skip
        if overridden:
            history.append(_event(
                ticket, EventKind.PRIORITY, user, at=now,
                data={"from": [category.default_priority, category.default_complexity],
                      "to": [priority, complexity], "reason": (data.get("priority_reason") or "").strip()},
            ))  # fmt: skip
        rebuild_clocks(ticket, now=now, events=history, fresh=True)
        if ticket.assignee_id:
            transition(user, ticket, Status.ASSIGNED, at=now, audit_it=False)
        # the web form's evidence of the notice read and the consent given (which version, when: this entry)
        consent = {"privacy_notice": data["privacy_notice"]} if data.get("privacy_notice") else {}
        if forwarded:
            consent["forwarded_by"] = forwarded
        audit.record(A.CREATE, ticket, user=user, changes={"number": [None, ticket.number]}, **consent)
        net.screen_ticket(ticket)  # a reaction or defect mentioned → PV triage, day 0 = received_at
        if ticket.assignee_id and ticket.assignee_id != getattr(user, "pk", None):  # given by hand or by a rule
            tell_assignee(ticket)
    return ticket


def forwarded_by(employee, at: dt.datetime) -> dict:
    """What the history and the audit entry keep of the employee who forwarded a customer's mail to the desk
    (mail.take_in): who (their account and name as it was then) and when they forwarded it (the mail's date)."""
    if employee is None:
        return {}
    return {"user": employee.pk, "username": employee.get_username(), "name": str(employee), "at": at.isoformat()}


def _category(value) -> TicketCategory:
    if isinstance(value, TicketCategory):
        return value
    category = TicketCategory.objects.filter(code=value or "", active=True).first()
    if category is None:
        raise ValidationError({"category": [_("Choose a category.")]})
    return category


def _event(ticket: Ticket, kind: str, user, *, at: dt.datetime, from_status="", to_status="", data=None):
    return TicketEvent.objects.create(
        ticket=ticket, kind=kind, actor=user if getattr(user, "is_authenticated", False) else None, at=at,
        from_status=from_status, to_status=to_status, data=data or {},
    )  # fmt: skip


# --- policies --------------------------------------------------------------------------------------


def select_policy(
    ticket: Ticket, policies: list[SlaPolicy] | None = None, *, chains: dict | None = None
) -> SlaPolicy | None:
    """The most specific active policy whose conditions all match the ticket (then the one on the nearest
    category — a sub-category's own policy before its parent's —, then the lowest position). A policy on a
    parent category covers its sub-categories. A later issue adds contracts and key accounts as conditions;
    key-account tickets already get a tighter policy through `customer_tier`. `chains` ({category id: its
    chain}) spares the look-up of a category's parents when many tickets are chosen for in a row."""
    loaded = Ticket.category.is_cached(ticket)  # the category in hand at intake: no query for a top-level one
    categories = category_chain(ticket.category if loaded else ticket.category_id, chains)
    facts = {
        "priority": ticket.priority, "complexity": ticket.complexity, "category_id": ticket.category_id,
        "categories": categories, "customer_tier": ticket.customer_tier(),
    }  # fmt: skip
    best, best_key = None, None
    if policies is None:
        from . import settings_cache

        policies = settings_cache.snapshot().policies
    for policy in policies:
        if not policy.matches(facts):
            continue
        nearness = categories.index(policy.category_id) if policy.category_id else len(categories)
        key = (-policy.specificity, nearness, policy.position)
        if best is None or key < best_key:
            best, best_key = policy, key
    return best


def category_chain(category: TicketCategory | int | None, memo: dict | None = None) -> list[int]:
    """The category (an object or an id) and its parents' ids, nearest first; a loop in the tree ends it."""
    if category is None:
        return []
    pk = category if isinstance(category, int) else category.pk
    if memo is not None and pk in memo:
        return memo[pk]
    chain = [pk]
    if isinstance(category, int):
        parent = TicketCategory.objects.filter(pk=pk).values_list("parent_id", flat=True).first()
    else:
        parent = category.parent_id
    while parent is not None and parent not in chain:
        chain.append(parent)
        parent = TicketCategory.objects.filter(pk=parent).values_list("parent_id", flat=True).first()
    if memo is not None:
        memo[pk] = chain
    return chain


# --- lifecycle -------------------------------------------------------------------------------------


def _check_version(ticket: Ticket, version: int | None) -> None:
    # a garbled version (not a number) is as stale as an old one
    if version is not None and (not is_id(version) or int(version) != ticket.version):
        raise ConflictError(ticket.version)


def _save(ticket: Ticket, fields: Iterable[str], expected: int) -> None:
    """Write the changed fields if nobody else saved the ticket meanwhile (optimistic locking)."""
    values = {f: getattr(ticket, f) for f in fields}
    now = timezone.now()
    done = Ticket.objects.filter(pk=ticket.pk, version=expected).update(
        version=F("version") + 1, updated_at=now, **values
    )
    if done != 1:
        current = Ticket.objects.filter(pk=ticket.pk).values_list("version", flat=True).first()
        raise ConflictError(current or 0)
    ticket.version, ticket.updated_at = expected + 1, now


IMPACT_FIELDS = ("customer_impact", "company_impact", "impact_note")


def impact_of(data) -> dict:
    """The impact assessment among a form's or a request's values, for `transition`."""
    return {k: (data.get(k) or "").strip() for k in IMPACT_FIELDS}


def transition(user, ticket: Ticket, to_status: str, *, version: int | None = None, at=None, note: str = "",
               resolution_summary: str = "", root_cause: str = "", informed_channel: str = "",
               customer_impact: str = "", company_impact: str = "", impact_note: str = "",
               assess: bool = True, audit_it: bool = True) -> Ticket:  # fmt: skip
    """Move a ticket along its lifecycle; refused (TransitionRefused) when the lifecycle does not allow
    the step, and (ConflictError) when someone else saved the ticket since `version` was read. Resolving
    needs a summary and the root cause, and for a complaint (its category is marked so) the assessment of its
    impact on the customer and on the company (seed 002 六.(二).2), unless `assess` is off: a duplicate merged
    into another ticket is assessed there. "Customer informed" records how the customer was told (the event
    keeps when and by whom)."""
    require(user, Cap.HANDLE_TICKETS)
    _check_version(ticket, version)
    now = at or timezone.now()
    from_status = ticket.status
    if ticket.merged_into_id and to_status in OPEN_STATUSES:
        raise TransitionRefused(merged_refusal(ticket))
    if to_status not in TRANSITIONS.get(from_status, ()):
        raise TransitionRefused(
            _("A ticket that is “%(from)s” cannot become “%(to)s”.")
            % {"from": Status(from_status).label, "to": Status(to_status).label if to_status in Status.values else to_status}
        )
    errors: dict[str, list[str]] = {}
    if to_status == Status.RESOLVED:
        if not (resolution_summary or ticket.resolution_summary).strip():
            errors["resolution_summary"] = [_("Summarise how the request was resolved.")]
        if (root_cause or ticket.root_cause) not in RootCause.values:
            errors["root_cause"] = [_("Choose the root cause.")]
        if assess and ticket.category.complaint:
            if (customer_impact or ticket.customer_impact) not in Impact.values:
                errors["customer_impact"] = [_("A complaint is resolved with its impact on the customer assessed.")]
            if (company_impact or ticket.company_impact) not in Impact.values:
                errors["company_impact"] = [_("A complaint is resolved with its impact on the company assessed.")]
    for key, value in (("customer_impact", customer_impact), ("company_impact", company_impact)):
        if value and value not in Impact.values:
            errors[key] = [_("Choose one of the listed impacts.")]
    if to_status == Status.INFORMED and informed_channel not in Channel.values:
        errors["informed_channel"] = [_("Choose how the customer was informed.")]
    if errors:
        raise ValidationError(errors)
    if to_status == Status.ASSIGNED and ticket.assignee_id is None and ticket.team_id is None:
        raise ValidationError({"assignee": [_("Choose whom to assign the ticket to.")]})
    with transaction.atomic():
        expected = ticket.version
        ticket.status = to_status
        fields = ["status"]
        if resolution_summary:
            ticket.resolution_summary = resolution_summary.strip()
            fields.append("resolution_summary")
        if root_cause:
            ticket.root_cause = root_cause
            fields.append("root_cause")
        assessed = {}
        if to_status == Status.RESOLVED:
            for key, value in (("customer_impact", customer_impact), ("company_impact", company_impact),
                               ("impact_note", impact_note.strip()[:2000])):  # fmt: skip
                if value and value != getattr(ticket, key):
                    assessed[key] = [getattr(ticket, key), value]
                    setattr(ticket, key, value)
                    fields.append(key)
        _save(ticket, fields, expected)
        reopened = from_status in REOPENABLE and to_status in OPEN_STATUSES
        data = {"note": note} if note else {}
        if to_status == Status.INFORMED:
            data["channel"] = informed_channel
        if to_status == Status.RESOLVED:
            data["root_cause"] = ticket.root_cause
            data.update({k: getattr(ticket, k) for k in ("customer_impact", "company_impact") if getattr(ticket, k)})
        _event(
            ticket, EventKind.REOPENED if reopened else EventKind.STATUS, user, at=now,
            from_status=from_status, to_status=to_status, data=data,
        )  # fmt: skip
        if reopened:  # a survey link about a resolution that no longer stands: the revisit follows the next one
            Survey.objects.filter(ticket=ticket, answered_at=None, expires_at__gt=now).update(expires_at=now)
        rebuild_clocks(ticket, now=now)
        if audit_it:
            audit.record(A.UPDATE, ticket, user=user, changes={"status": [from_status, to_status], **assessed})
    return ticket


def merged_refusal(ticket: Ticket) -> str:
    """Why a merged duplicate takes no more work: the request goes on in the ticket it was merged into
    (reopening the duplicate would put the same request in the queues twice, with its own clocks)."""
    into = Ticket.objects.filter(pk=ticket.merged_into_id).values_list("number", flat=True).first() or ""
    return _("%(number)s was merged into %(into)s: the request goes on there. Reopen or work on %(into)s instead.") % {
        "number": ticket.number, "into": into,
    }


def assign(
    user, ticket: Ticket, *, assignee=None, team=None, version: int | None = None, at=None, tell: bool = True
) -> Ticket:
    """Give the ticket to an agent and/or a team queue. A new ticket becomes "assigned"; an open one keeps
    its status. The assignee must be able to handle tickets. The new assignee is told, unless the caller
    tells them itself (`tell=False`: an escalation says both in one notification)."""
    require(user, Cap.HANDLE_TICKETS)
    _check_version(ticket, version)
    if assignee is None and team is None:
        raise ValidationError({"assignee": [_("Choose whom to assign the ticket to.")]})
    if assignee is not None and not access.can(assignee, Cap.HANDLE_TICKETS):
        raise ValidationError({"assignee": [_("This user cannot handle tickets.")]})
    if ticket.status not in OPEN_STATUSES:
        raise TransitionRefused(_("Reopen the ticket before assigning it."))
    now = at or timezone.now()
    before = [ticket.assignee_id, ticket.team_id]
    with transaction.atomic():
        expected = ticket.version
        ticket.assignee, ticket.team = assignee, team if team is not None else ticket.team
        _save(ticket, ["assignee_id", "team_id"], expected)
        _event(ticket, EventKind.ASSIGNED, user, at=now, data={"assignee": ticket.assignee_id, "team": ticket.team_id})
        if ticket.status == Status.NEW:
            transition(user, ticket, Status.ASSIGNED, at=now, audit_it=False)
        audit.record(A.UPDATE, ticket, user=user, changes={"assignee": [before, [ticket.assignee_id, ticket.team_id]]})
        if tell and ticket.assignee_id and ticket.assignee_id != before[0] and ticket.assignee_id != getattr(user, "pk", None):
            tell_assignee(ticket)
    return ticket


def tell_assignee(ticket: Ticket, title=None, kind: str = "ticket.assigned") -> None:
    """The ticket's assignee finds it in the bell (and by e-mail): by default a ticket handed to them; the
    customer's answer to a ticket of theirs passes its own title and kind. An assignee whose account is switched
    off is replaced by the team's lead. Inside the caller's transaction."""
    from pharmacrm.notify import services as notify

    if title is None:
        title = Message(gettext_lazy("%(number)s is yours now: %(subject)s"), number=ticket.number,
                        subject=ticket.subject)  # fmt: skip
    holder = ticket.assignee if ticket.assignee_id else None
    if holder is not None and not holder.is_active:
        # the holder left (their account switched off): the customer's answer or a reopening must not go unread,
        # so their team's lead is told in their place
        lead = ticket.team.lead if ticket.team_id and ticket.team.lead_id else None
        holder = lead if lead is not None and lead.is_active else None
    if holder is not None:
        notify.send([holder], kind=kind, title=title, url=reverse("servicedesk:ticket", args=[ticket.pk]),
                    obj=ticket)  # fmt: skip


def tell_team(ticket: Ticket, title, kind: str) -> None:
    """A ticket nobody holds that waits in a team's queue (or whose holder left, in a team without a lead): the
    team's members who handle tickets and may see this one (a scoped role: their customers' tickets only) are told — the customer's answer to it reached
    nobody. One notification each, in the transaction that took the answer in: a mail fetched twice is taken
    in once (its Message-ID), so nobody is told twice. Inside the caller's transaction."""
    from pharmacrm.notify import services as notify

    if not ticket.team_id:
        return
    if ticket.assignee_id:
        if ticket.assignee.is_active:
            return  # tell_assignee told its holder
        if ticket.team.lead_id and ticket.team.lead.is_active:
            return  # the holder left: tell_assignee told the team's lead
        # the holder left and the team has no (active) lead: the team, as for a ticket nobody holds
    members = [
        user for user in ticket.team.members.filter(is_active=True).order_by("pk")
        if access.can(user, Cap.HANDLE_TICKETS) and access.can_see_ticket(user, ticket)
    ]  # fmt: skip
    if members:
        notify.send(members, kind=kind, title=title, url=reverse("servicedesk:ticket", args=[ticket.pk]), obj=ticket)


def record_response(user, ticket: Ticket, *, at=None, channel: str = "", summary: str = "") -> TicketEvent:
    """The first (or a further) response to the customer: a reply, a call back. Fulfils the first-response
    clock the first time."""
    require(user, Cap.HANDLE_TICKETS)
    now = at or timezone.now()
    summary = summary[:500]
    with transaction.atomic():
        if at is None:
            _refuse_response_when_done(ticket)
            _refuse_response_again(user, ticket, channel, summary, now)
        event = _event(ticket, EventKind.RESPONDED, user, at=now, data={"channel": channel, "summary": summary})
        rebuild_clocks(ticket, now=now)
        audit.record(A.UPDATE, ticket, user=user, changes={"responded": [None, now.isoformat()]})
        if summary.strip():  # what the customer said on the call back is screened too
            net.screen_ticket(ticket, [summary], heard_at=now)
    return event


def _refuse_response_when_done(ticket: Ticket) -> None:
    """A response is recorded while the ticket is open. On a resolved or closed ticket it would put a call back
    after the resolution into the history and move nothing: telling the customer the outcome is "Customer
    informed", and a new question reopens the ticket. (A response recorded with its own time, by the demo or a
    migration of old tickets, is history and is kept.)"""
    if ticket.status not in OPEN_STATUSES:
        raise ValidationError(
            _("%(number)s is “%(status)s”: a response is recorded on an open ticket. Use “%(informed)s” to "
              "record that the customer was told the outcome, or reopen the ticket.")
            % {"number": ticket.number, "status": ticket.get_status_display(), "informed": Status.INFORMED.label}
        )  # fmt: skip


RESPONSE_AGAIN_WINDOW = dt.timedelta(minutes=10)


def _refuse_response_again(user, ticket: Ticket, channel: str, summary: str, now: dt.datetime) -> None:
    """The same response (channel and what was said) recorded by the same person on the same ticket within ten
    minutes is the form sent twice (a double click, Back and send): the history showed the call back twice and the
    audit trail two responses. The ticket row is locked first, so that two such requests in parallel see each
    other. A different summary or channel is a further response, recorded."""
    list(Ticket.objects.select_for_update().filter(pk=ticket.pk).values_list("pk", flat=True))
    earlier = TicketEvent.objects.filter(
        ticket=ticket, kind=EventKind.RESPONDED, actor=user if getattr(user, "is_authenticated", False) else None,
        at__gte=now - RESPONSE_AGAIN_WINDOW,
    ).order_by("-at", "-id").values_list("at", "data")[:5]  # fmt: skip
    for at, data in earlier:
        data = data if isinstance(data, dict) else {}
        if data.get("channel", "") == channel and (data.get("summary") or "").strip() == summary.strip():
            raise ValidationError(_("This response was already recorded at %(time)s; it was not recorded again.")
                                  % {"time": timezone.localtime(at).strftime("%H:%M")})  # fmt: skip


def change_priority(user, ticket: Ticket, priority: str, complexity: str | None = None, *, reason: str,
                    version: int | None = None, at=None) -> Ticket:  # fmt: skip
    """Override the priority (and complexity) with a reason; the policy is chosen again and every clock is
    recomputed from the ticket's history."""
    require(user, Cap.HANDLE_TICKETS)
    _check_version(ticket, version)
    if priority not in Priority.values:
        raise ValidationError({"priority": [_("Choose a priority.")]})
    if not reason.strip():
        raise ValidationError({"priority": [_("Give a reason for the change.")]})
    if ticket.status not in OPEN_STATUSES:  # the deadlines it met or missed are history: never rewritten
        raise TransitionRefused(_("Reopen the ticket before changing its priority."))
    with transaction.atomic():
        # a person's priority, not the system's VIP / key-account boost any more (the badge says so); "manual": chosen
        # on the ticket, knowing its customer (a customer corrected later does not boost over it)
        set_priority(ticket, priority, complexity, boosted=False, actor=user, user=user, reason=reason.strip(),
                     mark={"manual": True}, at=at)  # fmt: skip
    return ticket


def set_priority(ticket: Ticket, priority: str, complexity: str | None, *, boosted: bool, actor, user, reason: str,
                 mark: dict, at=None) -> None:  # fmt: skip
    """What a priority change does, whoever makes it (an agent with a reason: change_priority; the system's boost
    given or taken back when a customer's standing changes: editing.rerate_boost), inside the caller's transaction:
    the SLA policy chosen again, the ticket saved (ConflictError if someone saved it since it was read), a history
    event by `actor` carrying `mark` ({"manual": True}, {"boost": True}, {"unboost": True}), every clock recomputed
    from the history, an audit entry by `user` with the reason."""
    now = at or timezone.now()
    before = [ticket.priority, ticket.complexity]
    expected = ticket.version
    ticket.priority = priority
    ticket.complexity = complexity or ticket.complexity
    ticket.policy = select_policy(ticket)
    ticket.boosted = boosted
    _save(ticket, ["priority", "complexity", "policy_id", "boosted"], expected)
    _event(ticket, EventKind.PRIORITY, actor, at=now, data={"from": before, "to": [ticket.priority, ticket.complexity],
                                                             "reason": reason, **mark})  # fmt: skip
    rebuild_clocks(ticket, now=now)
    audit.record(A.UPDATE, ticket, user=user, changes={"priority": [before, [ticket.priority, ticket.complexity]]},
                 reason=reason)  # fmt: skip


# --- clocks ----------------------------------------------------------------------------------------


def _intervals(events: list[TicketEvent], statuses: frozenset, until: dt.datetime) -> list[tuple]:
    """[start, end) spans the ticket spent in any of `statuses` up to `until`, from its status history."""
    spans, since = [], None
    for e in events:
        if not e.to_status or e.at > until:
            continue
        inside = e.to_status in statuses
        if inside and since is None:
            since = e.at
        elif not inside and since is not None:
            spans.append((since, e.at))
            since = None
    if since is not None:
        spans.append((since, until))
    return spans


def _pushed_back(engine, due: dt.datetime, spans: list[tuple]) -> tuple[dt.datetime, dt.timedelta]:
    """A deadline pushed back by the working time of the waits (`spans`, in order) that began before it — each wait
    moving it on for the next —, and the working time that counted. A wait that began once the deadline had passed
    (a ticket put to "waiting on the customer", or resolved, after its deadline was missed) stops no clock: counted
    too, it moved a missed deadline (and the breach recorded against it) hours or days later."""
    counted = dt.timedelta(0)
    for begin, end in spans:
        if begin >= due:
            break
        wait = engine.between(begin, end)
        due, counted = engine.add(due, wait), counted + wait
    return due, counted


def first_response_at(events: list[TicketEvent]) -> dt.datetime | None:
    """When the customer first had an answer, from the ticket's history (in order): a response recorded by
    phone, visit or any other way, a reply to the customer, or the ticket resolved. A reply e-mailed to the
    customer counts from when it was written, unless its delivery failed for good afterwards (an UNDELIVERED
    event for its message): a reply that never reached the customer is no response. Sent again, it counts
    from when it was sent again (the REPLY event the resend records), unless that delivery fails too. An entry the
    upgrade recorded on a ticket already resolved or closed (`kept`, backfill_undelivered) changes nothing: that
    ticket's first response stays as it was judged."""
    failed_last = {}  # message pk -> index of the last UNDELIVERED event naming it
    for i, e in enumerate(events):
        if e.kind == EventKind.UNDELIVERED and (e.data or {}).get("message") and not e.data.get("kept"):
            failed_last[e.data["message"]] = i
    for i, e in enumerate(events):
        if e.to_status in DONE_STATUSES or e.kind == EventKind.RESPONDED:
            return e.at
        if e.kind == EventKind.REPLY:
            message = (e.data or {}).get("message")
            if message is None or failed_last.get(message, -1) < i:
                return e.at
    return None


def _names(e: TicketEvent, kind: str, message_pk: int) -> bool:
    return e.kind == kind and (e.data or {}).get("message") == message_pk


def reply_undelivered(message, *, at: dt.datetime | None = None, backfill: bool = False) -> TicketEvent | None:
    """A reply to the customer whose e-mail delivery failed for good (the server refused it, every attempt
    failed, the address was taken off the ticket, or the customer's server returned it): the history says so,
    and when that reply was what met the first-response clock, the clock is open again (breached by the next
    sweep when its deadline has passed) with an audit entry. The acknowledgement (no agent's reply) is no
    response and records nothing here. Returns the event, or None.

    `backfill`: a failure stored before such failures were recorded (backfill_undelivered) — nothing when the
    history already says so after the reply's last sending; on a resolved or closed ticket the entry is recorded
    but the first response stays as it was judged (`kept`: closed records are frozen); always audited."""
    now = at or timezone.now()
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().filter(pk=message.ticket_id).first()
        if ticket is None:
            return None
        events = list(TicketEvent.objects.filter(ticket=ticket).order_by("at", "id"))
        sendings = [i for i, e in enumerate(events) if _names(e, EventKind.REPLY, message.pk)]
        if not sendings:
            return None
        if backfill and any(_names(e, EventKind.UNDELIVERED, message.pk) for e in events[sendings[-1]:]):
            return None  # recorded when it failed (session 37 on)
        before = first_response_at(events)
        event = TicketEvent(ticket=ticket, kind=EventKind.UNDELIVERED, at=max(now, events[-1].at),
                            data={"message": message.pk})  # fmt: skip
        if backfill:
            event.data["backfilled"] = True
            if ticket.status not in OPEN_STATUSES:
                event.data["kept"] = True
        after = first_response_at([*events, event])
        if before != after:
            event.data.update(clock=ClockKind.FIRST_RESPONSE, withdrawn=before.isoformat(),
                              responded=after.isoformat() if after else None)  # fmt: skip
        # a failure of the past recorded now is history, not news: no `ticket.undelivered` webhook (a receiver
        # would post an old failure into the group as if it had just happened); the entry and the audit say it all
        event.webhook = not backfill
        event.save()
        if before != after and ticket.status in OPEN_STATUSES:
            rebuild_clocks(ticket, now=now, events=[*events, event])
        elif before != after:
            # a resolved or closed ticket keeps the deadline it was judged against (a calendar corrected since
            # does not apply, as refresh_open_tickets leaves it): only when it was first answered changes
            clock = SlaClock.objects.select_for_update().filter(ticket=ticket, kind=ClockKind.FIRST_RESPONSE).first()
            if clock is not None and clock.due_at is not None:
                clock.fulfilled_at = after
                clock.breached_at = clock.due_at if after is None or after > clock.due_at else None
                clock.save(update_fields=["fulfilled_at", "breached_at"])
        if before != after:
            audit.record(A.UPDATE, ticket, user=SYSTEM,
                         changes={"responded": [before.isoformat(), after.isoformat() if after else None]},
                         reason=BACKFILL_REASON if backfill else "reply not delivered", message=message.pk)  # fmt: skip
        elif backfill:  # the history changed all the same: the upgrade says what it wrote
            audit.record(A.UPDATE, ticket, user=SYSTEM, changes={"undelivered": [None, message.pk]},
                         reason=BACKFILL_REASON, message=message.pk, kept=bool(event.data.get("kept")))  # fmt: skip
    return event


BACKFILL_REASON = "reply not delivered, recorded afterwards"


def backfill_undelivered(now: dt.datetime | None = None) -> dict[str, int]:
    """The replies whose e-mail delivery failed for good before session 37 (stored as 'Failed for good', without
    a 'Reply not delivered' entry after their last sending) get the treatment of a failure today
    (reply_undelivered): the entry, and on an open ticket the first-response clock computed again without that
    reply — opened again, or met by the next response. A resolved or closed ticket keeps the first response it
    was judged with (the entry says so). Each ticket in its own transaction; run again, it finds nothing to do.
    Run once by `migrate` (servicedesk 0016) and by `pharmacrm undelivered-replies`."""
    now = now or timezone.now()
    counts = {"recorded": 0, "withdrawn": 0, "kept": 0}
    failed = TicketMessage.objects.filter(kind=MessageKind.REPLY, delivery=Delivery.GAVE_UP).order_by("pk")
    for message in failed.only("pk", "ticket_id").iterator():
        event = reply_undelivered(message, at=now, backfill=True)
        if event is None:
            continue
        counts["recorded"] += 1
        counts["withdrawn"] += bool(event.data.get("withdrawn"))
        counts["kept"] += bool(event.data.get("kept"))
    return counts


def rebuild_clocks(
    ticket: Ticket, now: dt.datetime | None = None, *, events: list[TicketEvent] | None = None, fresh: bool = False
) -> list[SlaClock]:
    """Recompute the ticket's clocks from its policy and its history, and store them. Deterministic: the
    same history gives the same deadlines — except that a clock met or missed keeps the deadline it was judged
    against when the policy or its targets changed since (a later priority change rewrites no history). `events`
    (the whole history, in order) and `fresh` (no clocks stored yet) spare queries when the caller just wrote
    them: intake."""
    now = now or timezone.now()
    policy = ticket.policy
    if policy is None:
        SlaClock.objects.filter(ticket=ticket).delete()
        _set_next_due(ticket, NO_DEADLINE if ticket.status in OPEN_STATUSES else None)
        ticket.clocks_in_hand = []
        return []
    if events is None:
        events = list(TicketEvent.objects.filter(ticket=ticket).order_by("at", "id"))
    engine = calendars.engine(policy.calendar)
    stored = SlaClock.objects.filter(ticket=ticket)
    if connection.features.has_select_for_update and connection.in_atomic_block:
        # locked: a worker's sweep holding these clocks (a warning or breach it is recording, then notifying of)
        # commits first and is read here, instead of being overwritten by clocks read before it — the next sweep
        # would warn, breach and notify again
        stored = stored.select_for_update()
    existing = {} if fresh else {c.kind: c for c in stored}
    start = ticket.received_at
    status_now = ticket.status
    responded = first_response_at(events)
    resolved = None
    if status_now in DONE_STATUSES:
        resolved = next((e.at for e in reversed(events) if e.to_status == Status.RESOLVED), None)
    out, withdrawn = [], []
    for kind, fulfilled, paused_statuses in (
        (ClockKind.FIRST_RESPONSE, responded, PAUSED_STATUSES),
        # time between a resolution and a reopen does not count against the resolution target
        (ClockKind.RESOLUTION, resolved, PAUSED_STATUSES | DONE_STATUSES),
    ):
        target, unit = policy.target(kind)
        clock = existing.get(kind) or SlaClock(ticket=ticket, kind=kind)
        if (fulfilled is not None and clock.pk is not None and clock.fulfilled_at == fulfilled
                and (clock.policy_id, clock.target, clock.unit) != (policy.pk, target, unit)):
            # met or missed against the targets of its time: a later priority or policy change does not turn a met
            # deadline into a breach, nor wipe out a missed one (the calendar's corrections still apply)
            out.append(clock)
            continue
        end = fulfilled or now
        spans = _intervals(events, paused_statuses, end)
        if unit == SlaPolicy.Unit.DAYS:
            unpaused = engine.add_days(start, target)
            span = engine.between(start, unpaused)
        else:
            unpaused = engine.add(start, dt.timedelta(hours=target))
            span = dt.timedelta(hours=target)
        due, paused = _pushed_back(engine, unpaused, spans)
        warn, _counted = _pushed_back(engine, engine.add(start, span * WARN_SHARE), spans)
        # a wait that began once the deadline had passed stops nothing: the deadline was missed, and stays so — the
        # worker records the breach and its escalation goes on, the board counts it overdue
        is_paused = fulfilled is None and status_now in paused_statuses and bool(spans) and spans[-1][0] < due
        breached_at = was_breached = clock.breached_at
        if fulfilled is not None:
            breached_at = due if fulfilled > due else None
        elif breached_at is not None and breached_at != due and now < due:
            breached_at = None  # the deadline moved later (a pause, a lower priority): no longer breached
        if fulfilled is None and clock.warned_at is not None and clock.warned_at < warn and now < warn:
            clock.warned_at = None  # warned of a deadline that moved later since: warn again before the new one
        clock.policy, clock.calendar, clock.target, clock.unit = policy, policy.calendar, target, unit
        clock.started_at, clock.paused, clock.paused_seconds = start, is_paused, int(paused.total_seconds())
        clock.warn_at, clock.due_at, clock.fulfilled_at, clock.breached_at = warn, due, fulfilled, breached_at
        if clock.pk is not None and was_breached is not None and breached_at is None:
            withdrawn.append((kind, was_breached, due))  # counted again, the deadline was not missed after all
        if breached_at is None:
            clock.escalation_level = 0  # a deadline no longer missed starts its ladder again
        clock.next_check_at = _next_check(clock)
        if clock.pk is not None:
            clock.save()
        out.append(clock)
    new = [c for c in out if c.pk is None]
    if new:
        SlaClock.objects.bulk_create(new)
    # a clock paused while the ticket waits on the customer is no deadline of ours: the ticket neither
    # counts as overdue nor sorts first until it runs again
    unmet = [c.due_at for c in out if c.fulfilled_at is None and c.due_at and not c.paused]
    _set_next_due(ticket, min(unmet) if unmet else (NO_DEADLINE if ticket.status in OPEN_STATUSES else None))
    ticket.clocks_in_hand = out  # what an answer about this ticket shows, without reading them back
    for kind, breached, due in withdrawn:
        _breach_withdrawn(ticket, kind, breached, due, max([now, *(e.at for e in events[-1:])]))
    return out


def _breach_withdrawn(ticket: Ticket, kind: str, breached: dt.datetime, due: dt.datetime, at: dt.datetime) -> None:
    """A breach the clock no longer holds (the deadline counted again — a reopened ticket on a corrected calendar, a
    lower priority, a response recorded at an earlier time — is met or not yet due): the history keeps its 'Deadline
    missed' entry as what was judged then and says it is withdrawn, from when; the ticket's badge, the board and the
    API count the clock as it is (breached_at), so neither counts it any more. Audited."""
    _event(ticket, EventKind.UNBREACHED, SYSTEM, at=at,
           data={"clock": kind, "breached": breached.isoformat(), "due": due.isoformat()})  # fmt: skip
    audit.record(A.UPDATE, ticket, user=SYSTEM, changes={"breached": [breached.isoformat(), None]},
                 reason="breach withdrawn", clock=kind, due=due.isoformat())  # fmt: skip


def _set_next_due(ticket: Ticket, value: dt.datetime | None) -> None:
    if ticket.next_due_at != value:
        Ticket.objects.filter(pk=ticket.pk).update(next_due_at=value)  # derived: no version bump
        ticket.next_due_at = value


def _next_check(clock: SlaClock) -> dt.datetime | None:
    """When the worker must next look at the clock: the warning, the deadline, then each escalation level
    after a breach; never for a clock that is met or paused."""
    if clock.fulfilled_at or clock.paused:
        return None
    if clock.breached_at:  # the escalation ladder's next level, if any
        from . import escalation

        retry = getattr(clock, "retry_at", None)
        if retry is not None:
            return retry
        step = escalation.next_rung(clock)
        return step[1] if step else None
    if clock.warned_at is None and clock.warn_at and clock.warn_at < clock.due_at:
        return clock.warn_at
    return clock.due_at


REFRESH = "servicedesk:sla-refresh"  # numbers the refresh requests (a Counter)
REFRESH_LEASE = "servicedesk:sla-refresh-lease"  # epoch second until which one worker runs them
REFRESH_LEASE_SECONDS = 300


def request_refresh(calendar_id: int | None = None) -> None:
    """Record, in the transaction of the settings change, that the open tickets' clocks must be rebuilt:
    a row `servicedesk:sla-refresh:<n>:<calendar id or *>` whose value is the last ticket done. It stays
    until a run has gone through every ticket, so a worker killed halfway (or never started) leaves the
    rest to the next run (`refresh_pending`, every minute)."""
    number = Counter.allocate(REFRESH)
    Counter.objects.create(name=f"{REFRESH}:{number}:{calendar_id or '*'}", value=0)


def _pending_refreshes() -> list[tuple[int, int | None, str, int]]:
    """(number, calendar id or None, row name, last ticket done) of the requests still open, oldest first."""
    out = []
    for name, value in Counter.objects.filter(name__startswith=f"{REFRESH}:").values_list("name", "value"):
        _prefix, number, scope = name.rsplit(":", 2)
        out.append((int(number), None if scope == "*" else int(scope), name, value))
    return sorted(out)


def _take_refresh_lease() -> bool:
    now = int(timezone.now().timestamp())
    Counter.objects.get_or_create(name=REFRESH_LEASE)
    until = now + REFRESH_LEASE_SECONDS
    return Counter.objects.filter(name=REFRESH_LEASE, value__lt=now).update(value=until) == 1


def _renew_refresh_lease() -> None:
    until = int(timezone.now().timestamp()) + REFRESH_LEASE_SECONDS
    Counter.objects.filter(name=REFRESH_LEASE).update(value=until)


def refresh_pending(*, now: dt.datetime | None = None, chunk: int = 500) -> int | None:
    """Run the refresh requests still open, each from the ticket its last run reached; None when another
    worker holds them (its lease runs out after five minutes if it was killed). The newest request of a
    scope covers the older ones (it reads the settings after they were committed); one for every calendar
    covers all. Returns the number of tickets rebuilt."""
    if not _take_refresh_lease():
        return None
    done = 0
    try:
        while pending := _pending_refreshes():
            whole = [p for p in pending if p[1] is None]
            number, calendar_id, name, last = whole[-1] if whole else pending[-1]
            done += refresh_open_tickets(
                calendar_id=calendar_id, now=now, chunk=chunk, after=last, request=name
            )
            covered = [p[2] for p in pending if p[0] <= number and calendar_id in (None, p[1])]
            Counter.objects.filter(name__in=covered).delete()
    finally:
        Counter.objects.filter(name=REFRESH_LEASE).update(value=0)
    return done


def refresh_open_tickets(
    *, calendar_id: int | None = None, now: dt.datetime | None = None, chunk: int = 500, after: int = 0,
    request: str = "",
) -> int:  # fmt: skip
    """Choose the policy again and rebuild the clocks of every open ticket (only those on `calendar_id` when
    given, only those after the ticket `after`) — after an SLA policy or a calendar changed, so that
    stored deadlines follow the settings. Run by the worker; each ticket in its own short transaction, so
    agents are never blocked for long, which also moves the `request` row on to that ticket: a run that
    dies keeps what it did, and the next one goes on from there."""
    now = now or timezone.now()
    policies = list(SlaPolicy.objects.filter(active=True).select_related("calendar"))
    chains: dict[int, list[int]] = {}  # each category's parents read once for the whole run
    qs = Ticket.objects.filter(status__in=OPEN_STATUSES)
    if calendar_id is not None:
        qs = qs.filter(clocks__calendar_id=calendar_id).distinct()
    done, last = 0, after
    while True:
        ids = list(qs.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:chunk])
        if not ids:
            return done
        if request:
            _renew_refresh_lease()
        for pk in ids:
            with transaction.atomic():
                # read under the ticket's lock: an agent who resolved (or changed) it since the list was read
                # must not get clocks rebuilt from the ticket as it was — a resolved one would run again
                tickets = Ticket.objects.filter(pk=pk, status__in=OPEN_STATUSES)
                if connection.features.has_select_for_update:
                    tickets = tickets.select_for_update(of=("self",))
                ticket = tickets.select_related("policy__calendar", "person", "institution").first()
                if ticket is None:
                    continue
                policy = select_policy(ticket, policies, chains=chains)
                if policy != ticket.policy:
                    Ticket.objects.filter(pk=ticket.pk).update(policy=policy)
                    ticket.policy = policy
                rebuild_clocks(ticket, now=now)
                if request:
                    Counter.objects.filter(name=request).update(value=ticket.pk)
            done += 1
        last = ids[-1]


# --- the worker's side -----------------------------------------------------------------------------

LEASE = dueclock.LEASE


def due_clock_ids(now: dt.datetime, horizon: dt.timedelta = dt.timedelta(0), limit: int = 500) -> list[int]:
    """Clocks the worker must look at by `now + horizon`, earliest first (core/dueclock.py)."""
    return dueclock.due_ids(SlaClock, now, horizon, limit)


def claim(clock_id: int, now: dt.datetime) -> bool:
    return dueclock.claim(SlaClock, clock_id, now)


def claim_batch(clock_ids: list[int], now: dt.datetime) -> list[int]:
    return dueclock.claim_batch(SlaClock, clock_ids, now)


def _store_swept(clocks: list[SlaClock]) -> None:
    """One prepared UPDATE per clock (executemany): Django's bulk_update builds a CASE per column over the
    whole batch, which cost more than the rest of the sweep together."""
    adapt = connection.ops.adapt_datetimefield_value
    table = SlaClock._meta.db_table
    sql = (
        f"UPDATE {table} SET breached_at = %s, breach_holder_id = %s, warned_at = %s, next_check_at = %s, "
        "escalation_level = %s, claimed_until = NULL WHERE id = %s"
    )
    rows = [
        (adapt(c.breached_at), c.breach_holder_id, adapt(c.warned_at), adapt(c.next_check_at), c.escalation_level,
         c.pk)
        for c in clocks
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _leave_tickets_being_saved(clock_ids: list[int]) -> list[int]:
    """The due clocks whose tickets this sweep could lock (PostgreSQL), locked before the clocks are claimed; the
    others wait for the next sweep. An agent's save locks the ticket, then its clocks (`rebuild_clocks`); a sweep
    that claimed the clocks first and then wrote to their ticket (events, escalation levels, hand-overs — and the
    foreign-key check at commit) closed the circle, and PostgreSQL aborted one of the two: the agent's save as a
    server error, or the sweep's whole batch. Taking the tickets first, as every save does, and leaving the ones
    being saved breaks it: the save goes through, and the next sweep (a minute later) records the warning or the
    breach, at the time it fell due. Two workers split the tickets between them the same way."""
    if not clock_ids or not connection.features.has_select_for_update_skip_locked:
        return clock_ids
    ticket_of = dict(SlaClock.objects.filter(pk__in=clock_ids).values_list("pk", "ticket_id"))
    held = set(
        Ticket.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(pk__in=set(ticket_of.values())).order_by("pk").values_list("pk", flat=True)
    )  # fmt: skip
    return [pk for pk in clock_ids if ticket_of.get(pk) in held]


# A breach the sweep records more than this after its deadline is late: a recount put the deadline in the past (the
# upgrade's backfill of replies that failed long ago, a calendar correction, a higher priority, a reply that did not
# reach the customer) or the worker was stopped. The sweep looks every minute, so an on-time breach is a minute or two
# old; a late one is recorded and counted as any other (at its deadline), its entry marked `late` with when it was
# recorded — and it is no news for a group chat: the chat bots are not sent it (notify.emit_ticket_events).
LATE_AFTER = dt.timedelta(minutes=10)


def sweep(now: dt.datetime | None = None, limit: int = 500) -> dict[str, int]:
    """One pass of the worker: record the warnings and breaches of the clocks that are due — a breach with
    who held the ticket — in one transaction per batch, the batch claimed first so that concurrent workers
    never double up. Escalation rules (notify, reassign, manager) hang off the events recorded here. A breach is
    recorded at its deadline; one found more than LATE_AFTER after it is marked late (history, not news)."""
    now = now or timezone.now()
    from pharmacrm.notify import services as notify

    from . import escalation

    counts = {"clocks": 0, "warned": 0, "breached": 0, "escalated": 0}
    with transaction.atomic():
        won = claim_batch(_leave_tickets_being_saved(due_clock_ids(now, limit=limit)), now)
        counts["clocks"] = len(won)
        if not won:
            return counts
        clocks = list(
            SlaClock.objects.filter(pk__in=won)
            .select_related("ticket__team__lead", "ticket__assignee", "calendar")
            .order_by("next_check_at", "id")
        )
        events, breaches = [], []
        for clock in clocks:
            ticket = clock.ticket
            if clock.due_at and clock.due_at <= now and clock.breached_at is None and clock.fulfilled_at is None:
                clock.breached_at, clock.breach_holder_id = clock.due_at, ticket.assignee_id
                data = {"clock": clock.kind, "holder": ticket.assignee_id}
                line = {"ticket": ticket.number, "clock": clock.kind, "due_at": clock.due_at.isoformat(),
                        "holder": ticket.assignee_id}  # fmt: skip
                if now - clock.due_at > LATE_AFTER:  # history found now, not news: said so wherever it goes
                    data.update(late=True, recorded=now.isoformat())
                    line["late"] = True
                events.append(TicketEvent(ticket=ticket, kind=EventKind.BREACHED, at=clock.due_at, data=data))
                breaches.append(line)
                counts["breached"] += 1
            elif clock.warned_at is None and clock.warn_at and clock.warn_at <= now:
                clock.warned_at = now
                events.append(TicketEvent(ticket=ticket, kind=EventKind.WARNED, at=now, data={"clock": clock.kind}))
                counts["warned"] += 1
        escalation.notify_warnings([c for c in clocks if c.warned_at == now and c.breached_at is None])
        escalated, lines = escalation.fire_due(clocks, now)
        events += escalated
        counts["escalated"] = sum(1 for e in escalated if e.kind == EventKind.ESCALATED)  # (not the hand-overs)
        for clock in clocks:
            clock.next_check_at = _next_check(clock)
            clock.claimed_until = None
        TicketEvent.objects.bulk_create(events, batch_size=500)
        notify.emit_ticket_events(events)  # bulk_create sends no signals: the webhooks learn of them here
        _store_swept(clocks)
        if breaches or lines:  # one audit entry per batch, listing every breach and escalation
            audit.record(A.UPDATE, ("servicedesk.slaclock", "", f"{len(breaches)}"), actor_name="worker",
                         breaches=breaches, escalations=lines)  # fmt: skip
        warned = [{"ticket": c.ticket.number, "clock": c.kind, "warned_at": now.isoformat()}
                  for c in clocks if c.warned_at == now and c.breached_at is None]  # fmt: skip
        if warned:  # the warnings stamped, likewise: one entry per batch
            audit.record(A.UPDATE, ("servicedesk.slaclock", "", f"{len(warned)}"), actor_name="worker",
                         warnings=warned)  # fmt: skip
    return counts
