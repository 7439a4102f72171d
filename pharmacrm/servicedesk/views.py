"""Service-desk pages for agents: the queues sorted by the next deadline with SLA badges, intake of a
ticket, and the ticket page with its clocks, its history and the handling actions."""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Exists, F, OuterRef, Prefetch, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop
from django.views.decorators.http import require_GET, require_POST

from pharmacrm.core import access, audit, personal, wording
from pharmacrm.core.form_saves import create_once
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.personal import MASKERS
from pharmacrm.core.roles import Cap
from pharmacrm.customers.models import Person
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views import (
    PAGE_SIZE,
    AlreadyCreated,
    BranchIds,
    CappedPaginator,
    _create_once,
    _created_with,
    reveal_form_for,
)

from . import calendars, linking, services
from .choices import (
    OPEN_STATUSES,
    REOPENABLE,
    TRANSITIONS,
    AssignMethod,
    Channel,
    ClockKind,
    Complexity,
    EventKind,
    LinkKind,
    Priority,
    Status,
)
from .forms import (
    AssignForm,
    IntakeForm,
    PriorityForm,
    ResponseForm,
    TransitionForm,
    people_options,
)
from .forms_links import QueueSearchForm
from .models import SlaClock, Ticket, TicketCategory, TicketEvent

QUEUES = {
    "mine": gettext_lazy("My queue"),
    "team": gettext_lazy("Team queue"),
    "all": gettext_lazy("All open"),
}
CUSTOMER_TICKETS = 10  # tickets listed on a Customer 360 page
UNUSED_COLUMNS = ("caller_name", "caller_phone", "description", "resolution_summary")
PERSON_PERSONAL = tuple(f"person__{f}" for f in Person.PERSONAL_FIELDS)


def _posted(request):
    return request.POST if request.method == "POST" else None


def _page_number(request) -> str:
    return request.GET.get("page") or "1"


def next_due_subquery():
    """The earliest running deadline of a ticket, not met yet: a clock paused while the ticket waits on the
    customer is no deadline of ours (its stored due time is stale until the clock runs again)."""
    return Subquery(
        SlaClock.objects.filter(ticket=OuterRef("pk"), fulfilled_at__isnull=True, due_at__isnull=False, paused=False)
        .order_by("due_at")
        .values("due_at")[:1]
    )


# --- SLA badges ----------------------------------------------------------------------------------


def duration_text(span: dt.timedelta) -> str:
    minutes = max(int(span.total_seconds() // 60), 0)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}
    if hours:
        return _("%(hours)d h") % {"hours": hours}
    return _("%(minutes)d min") % {"minutes": minutes}


STATE_LABELS = {
    "ok": gettext_lazy("On time"),
    "warned": gettext_lazy("Due soon"),
    "breached": gettext_lazy("Overdue"),
    "paused": gettext_lazy("Paused"),
    "met": gettext_lazy("Met"),
    "met_late": gettext_lazy("Met late"),
}


@dataclass
class ClockView:
    """One SLA clock as the pages show it: a state (its badge colour) and the working time left."""

    clock: SlaClock
    state: str  # ok (green), warned (amber), breached (red), paused (grey), met / met_late
    text: str
    span: str = ""  # the time alone ("292 h 30 min"), beside a badge that already says it is overdue
    uncovered: tuple[int, ...] = ()  # years up to the deadline whose official holidays nobody entered yet

    @property
    def label(self) -> str:
        return str(STATE_LABELS[self.state])

    @property
    def kind_label(self) -> str:
        return ClockKind(self.clock.kind).label


def clock_view(clock: SlaClock, now: dt.datetime) -> ClockView:
    if clock.fulfilled_at is not None:
        late = clock.breached_at is not None or (clock.due_at is not None and clock.fulfilled_at > clock.due_at)
        return ClockView(clock, "met_late" if late else "met", "")
    if clock.due_at is None:
        return ClockView(clock, "ok", "")
    if clock.paused:  # waiting on the customer: the clock stands still, nothing is late
        return ClockView(clock, "paused", "")
    engine = calendars.engine(clock.calendar)
    if now < clock.due_at:
        span = duration_text(engine.between(now, clock.due_at))
        text = _("%(time)s left") % {"time": span}
    else:
        span = duration_text(engine.between(clock.due_at, now))
        text = _("%(time)s overdue") % {"time": span}
    if clock.breached_at is not None or now >= clock.due_at:
        state = "breached"
    elif clock.warn_at is not None and now >= clock.warn_at:
        state = "warned"
    else:
        state = "ok"
    return ClockView(clock, state, text, span, calendars.provisional_years(engine, now, clock.due_at))


def next_clock(clocks, now: dt.datetime) -> ClockView | None:
    """The badge of a ticket in a list: its earliest deadline not met yet."""
    pending = [c for c in clocks if c.fulfilled_at is None and c.due_at is not None]
    if not pending:
        return None
    return clock_view(min(pending, key=lambda c: c.due_at), now)


def next_running_clock(clocks, now: dt.datetime) -> ClockView | None:
    """The deadline a ticket table's "Next deadline" column names (next_due_subquery: the earliest running deadline
    not met yet — a paused clock is none), as a ClockView, so that the table marks it provisional by the queue's
    rule (clock_view, partials/provisional_mark.html)."""
    running = [c for c in clocks if c.fulfilled_at is None and c.due_at is not None and not c.paused]
    return clock_view(min(running, key=lambda c: c.due_at), now) if running else None


def _clocks_prefetch() -> Prefetch:
    return Prefetch("clocks", queryset=SlaClock.objects.select_related("calendar").order_by("kind"))


# --- key accounts (priority rights, issue 5 item 9) -----------------------------------------------


def key_account_institutions():
    """Customers that are key accounts: an active key-account file on them or on their parent hospital,
    the same rule that routes their tickets to the service team (keyaccounts.services.team_for_institution)."""
    from pharmacrm.customers.models import Institution
    from pharmacrm.keyaccounts.choices import AccountStatus

    active = AccountStatus.ACTIVE
    return Institution.objects.filter(Q(key_accounts__status=active) | Q(parent__key_accounts__status=active))


def key_account_flag() -> Exists:
    """Annotation: the ticket's customer (its institution, else the person's) is a key account. A subquery
    in the query that loads the tickets, so a page of tickets costs no extra query."""
    customer = Coalesce(OuterRef("institution_id"), OuterRef("person__institution_id"))
    return Exists(key_account_institutions().filter(pk=customer))


def key_account_q() -> Q:
    """Tickets of key accounts (the queue's "Key accounts only" filter)."""
    ids = key_account_institutions().values("id")
    return Q(institution_id__in=ids) | Q(institution__isnull=True, person__institution_id__in=ids)


# --- queues --------------------------------------------------------------------------------------


@login_required
@require_GET
def queue(request):
    user = request.user
    access.require(user, Cap.VIEW_TICKETS)
    may_all = access.can(user, Cap.MANAGE_SERVICE)
    from .forms_links import BulkForm

    form = QueueForm(request.GET or None)
    data = form.cleaned()
    default = "mine" if access.can(user, Cap.HANDLE_TICKETS) else "team"
    current = data.get("queue") if data.get("queue") in QUEUES else default
    if current == "all":
        access.require(user, Cap.MANAGE_SERVICE)
    base = Ticket.objects.all()
    # a ticket number or a phone looks the caller up in every ticket the user may see, open or closed, whoever
    # holds it (from "My queue" it found only the user's own open tickets: a caller's ticket of last week, or a
    # colleague's, came up as "no tickets"); words of a subject filter the queue shown
    lookup = QueueForm.is_lookup(data.get("q") or "")
    # An open ticket always has next_due_at and a resolved or closed one never (services.rebuild_clocks
    # keeps it so): "open" is then a condition the queue indexes answer alone, without reading tickets.
    if data.get("status"):
        base = base.filter(status=data["status"])
    elif not lookup:
        base = base.filter(next_due_at__isnull=False)
    branches = None
    if lookup:
        pass
    elif current == "mine":
        base = base.filter(assignee=user)
    elif current == "team":
        branches = [Q(team__in=list(user.teams.values_list("id", flat=True))), Q(assignee__isnull=True)]
    if data.get("priority"):
        base = base.filter(priority=data["priority"])
    if data.get("category"):  # a category and its sub-categories, as the rules and policies read it
        base = base.filter(category_id__in=category_and_below(data["category"].pk))
    if data.get("key"):
        base = base.filter(key_account_q())
    words = form.is_words(data.get("q") or "") and personal.masks_free_text(user)
    search = form.search_q(data.get("q") or "", user)  # a phone looked up while masked: audited, limited an hour
    if search is not None and not words:
        base = base.filter(search)
    if branches is not None and not access.can(user, Cap.ALL_CUSTOMERS):
        base, branches = base.filter(branches[0] | branches[1]), None  # a scoped role: one query with its scope
    qs = access.tickets_for(user, base)
    if words:  # the subjects as this user sees them: a part of a masked number finds nothing
        scope = qs if branches is None else qs.filter(branches[0] | branches[1])
        qs = qs.filter(QueueForm.shown_words_q(scope, data["q"]))
    # Page over ids in deadline order, then load the tickets shown and their clocks (a fixed number of
    # queries, whatever the number of tickets).
    # a look-up lists its finds newest first, as the page says, also with an open status chosen
    if not lookup and (not data.get("status") or data.get("status") in OPEN_STATUSES):
        # open tickets always carry next_due_at (services.rebuild_clocks): an index walk in deadline order
        # on (assignee | team, next_due_at, id); the NOT NULL lets it skip the closed history
        qs, order = qs.filter(next_due_at__isnull=False), ("next_due_at", "id")
    else:
        order = ("-received_at", "-id")
    if branches is not None:
        # the team's tickets and the unassigned ones: each walked in order on its own index, merged by UNION
        # (one OR over both made the database sort every matching ticket)
        ids_qs = BranchIds(qs, branches, order)
    else:
        ids_qs = qs.order_by(*order).values_list("id", flat=True)
    page = CappedPaginator(ids_qs, PAGE_SIZE).get_page(_page_number(request))
    ids = list(page.object_list)
    loaded = (
        Ticket.objects.filter(pk__in=ids)
        .select_related("category", "assignee", "institution", "person", "team")
        .defer(*UNUSED_COLUMNS, *PERSON_PERSONAL)
        .prefetch_related(_clocks_prefetch())
        .annotate(key_account=key_account_flag())
        .in_bulk()
    )
    now = timezone.now()
    rows = []
    for pk in ids:
        ticket = loaded.get(pk)
        if ticket is not None:
            ticket.badge = next_clock(ticket.clocks.all(), now)
            rows.append(ticket)
    tabs = [(key, label) for key, label in QUEUES.items() if key != "all" or may_all]
    filtered = any(request.GET.get(k) for k in ("q", "status", "priority", "category", "key"))
    bulk_form = BulkForm(prefix="bulk") if access.can(user, Cap.HANDLE_TICKETS) else None
    # the board: service managers, and team leads for their teams (user.led_teams, read only for a handler)
    may_board = may_all or (access.can(user, Cap.HANDLE_TICKETS) and user.led_teams.exists())
    context = {"form": form, "page_obj": page, "rows": rows, "queue": current, "tabs": tabs, "filtered": filtered,
               "bulk_form": bulk_form, "may_board": may_board, "lookup": lookup,
               "newest_first": order[0] == "-received_at",
               # the complaint analysis: its capability, or a team lead (for their teams; may_board says so)
               "may_complaints": access.can(user, Cap.VIEW_COMPLAINT_ANALYSIS) or may_board}  # fmt: skip
    return render(request, "servicedesk/queue.html", context)


def category_and_below(pk: int) -> list[int]:
    """A category's id and those of every sub-category below it (the tree is small: one query)."""
    children: dict[int | None, list[int]] = {}
    for cid, parent in TicketCategory.objects.values_list("id", "parent_id"):
        children.setdefault(parent, []).append(cid)
    out, todo = [], [pk]
    while todo:
        current = todo.pop()
        if current not in out:
            out.append(current)
            todo += children.get(current, [])
    return out


class QueueForm(QueueSearchForm):
    """The queue's search and filters, with "Key accounts only" (their tickets first in handling)."""

    key = forms.BooleanField(label=gettext_lazy("Key accounts only"), required=False)
    field_order = ["q", "status", "priority", "category", "key"]


# --- intake --------------------------------------------------------------------------------------


@login_required
def ticket_create(request):
    user = request.user
    access.require(user, Cap.HANDLE_TICKETS)
    if request.method == "GET" and request.GET.get("_options") == "person":
        options = people_options(user, request.GET.get("institution", ""))
        return render(request, "servicedesk/_person_options.html", {"options": options})
    initial = {}
    for key in ("institution", "person"):
        if request.GET.get(key, "").isdecimal():
            initial[key] = int(request.GET[key])
    form = IntakeForm(_posted(request), user=user, initial=initial)
    status = 200
    if request.method == "POST":
        status = 400
        # sent again (a replay after a slow answer, Back and send): the ticket the first one created
        done = _created_with(user, request.POST.get("form_token", ""))
        if done:
            return _ticket_sent_again(request, done)
        if form.is_valid() and (same := services.same_ticket_just_taken(user, form.service_data())) is not None:
            return _ticket_sent_again(request, same.pk)  # Back, the page loaded again, and sent again
        if form.is_valid():
            try:
                ticket = _create_once(user, form.cleaned_data.get("form_token"),
                                      lambda: services.create_ticket(user, form.service_data()))  # fmt: skip
            except AlreadyCreated as e:
                return _ticket_sent_again(request, e.pk)
            except ValidationError as e:
                form.add_service_errors(e)
            else:
                messages.success(request, _("Ticket %(number)s was created.") % {"number": ticket.number})
                return redirect("servicedesk:ticket", pk=ticket.pk)
    return render(request, "servicedesk/ticket_form.html", {"form": form}, status=status)


def _ticket_sent_again(request, pk):
    messages.info(request, _("This form was already sent: the ticket was created then, and not a second time."))
    return redirect("servicedesk:ticket", pk=pk) if pk else redirect("servicedesk:queue")


# --- the ticket page -----------------------------------------------------------------------------


def _ticket_or_404(user, pk: int) -> Ticket:
    """The ticket if the user may see it: 403 without the capability, 404 outside their scope."""
    access.require(user, Cap.VIEW_TICKETS)
    qs = Ticket.objects.select_related(
        "category", "assignee", "team", "institution", "person", "policy", "created_by"
    ).defer(*PERSON_PERSONAL)
    ticket = access.tickets_for(user, qs).filter(pk=pk).annotate(key_account=key_account_flag()).first()
    if ticket is None:
        raise Http404(_("No such ticket, or you may not see it."))
    return ticket


def _mask_name(value: str) -> str:
    return (value[:1] + "*" * max(len(value) - 1, 1)) if value else ""


def _caller(user, ticket: Ticket, revealed: bool = False, texts=()) -> dict:
    """The unidentified caller's details, and whether the contact details typed into the ticket's text (`texts`: the
    fields holding some, api.texts_with_contacts) are shown: in clear for roles that see personal data (audited) or
    after a reveal with a reason (audited by caller_reveal), else masked — with the reveal form for the roles that
    may. `has_caller`: the page shows the caller's rows."""
    has_caller = bool(ticket.caller_name or ticket.caller_phone)
    if not (has_caller or texts):
        return {}
    if revealed:
        return {"name": ticket.caller_name, "phone": ticket.caller_phone, "masked": False, "revealed": True,
                "has_caller": has_caller, "texts": bool(texts)}  # fmt: skip
    if access.personal_data_mode(user) == "plain":
        audit.record(
            AuditEntry.Action.READ_PERSONAL, ticket, user=user,
            fields=[*(("caller_name", "caller_phone") if has_caller else ()), *texts], purpose="ticket page",
        )  # fmt: skip
        return {"name": ticket.caller_name, "phone": ticket.caller_phone, "masked": False, "has_caller": has_caller,
                "texts": bool(texts)}  # fmt: skip
    may_reveal = access.personal_data_mode(user) == "reveal"
    return {
        "name": _mask_name(ticket.caller_name),
        "phone": MASKERS["mobile"](ticket.caller_phone) if ticket.caller_phone else "",
        "masked": True,
        "has_caller": has_caller,
        "texts": bool(texts),
        "reveal_form": reveal_form_for() if may_reveal else None,
    }


def _pair_label(pair, choices) -> str:
    labels = dict(choices)
    return " / ".join(str(labels.get(v, v)) for v in (pair or []) if v)


SYSTEM_NOTES = (
    gettext_noop("The customer wrote again."),
    gettext_noop("Reopened after a poor revisit (score %(score)s, solved: %(solved)s)."),
)
YES_NO = (gettext_noop("yes"), gettext_noop("no"))


@functools.cache
def _system_notes() -> list[tuple[re.Pattern, str]]:
    """Each note the system writes on a status change, as a pattern of its wording in every language of the product
    → its message id: the worker wrote it in the default language, the reader reads it in theirs."""
    out = []
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            for msgid in SYSTEM_NOTES:
                parts = re.split(r"%\((\w+)\)s", _(msgid))
                pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
                out.append((re.compile(f"^{pattern}$"), msgid))
    return out


@functools.cache
def _yes_no() -> dict[str, str]:
    out = {}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            out.update({_(word): word for word in YES_NO})
    return out


def _system_note(note: str) -> str:
    """A note in the reader's language when the system wrote it (in whichever language), else as written."""
    for pattern, msgid in _system_notes():
        match = pattern.match(note)
        if match:
            values = {k: _(_yes_no()[v]) if v in _yes_no() else v for k, v in match.groupdict().items()}
            return _(msgid) % values if values else _(msgid)
    return note


def forwarded_line(forwarded: dict, default_at) -> str:
    """"Forwarded by 王芳 at 2026-12-04 10:05": the employee who passed the customer's mail on to the desk (the name
    as it was then) and when (the forwarded mail's date), in the reader's language and time zone."""
    try:
        at = dt.datetime.fromisoformat(forwarded.get("at") or "")
    except (TypeError, ValueError):
        at = default_at
    return _("Forwarded by %(name)s at %(time)s") % {
        "name": forwarded.get("name") or forwarded.get("username") or "—",
        "time": timezone.localtime(at).strftime("%Y-%m-%d %H:%M"),
    }


def _event_details(e) -> list[tuple[str, str]]:
    data = e.data or {}
    out = []
    if e.from_status or e.to_status:
        out.append((_("Status"), " → ".join(str(Status(s).label) for s in (e.from_status, e.to_status) if s)))
    if e.kind == EventKind.PRIORITY:
        choices = Priority.choices + Complexity.choices
        out.append((_("Priority"), f"{_pair_label(data.get('from'), choices)} → {_pair_label(data.get('to'), choices)}"))
    if e.kind in (EventKind.CREATED, EventKind.RESPONDED) and data.get("channel") in Channel.values:
        out.append((_("Channel"), Channel(data["channel"]).label))
    if e.kind in (EventKind.BREACHED, EventKind.WARNED, EventKind.UNBREACHED) and data.get("clock") in ClockKind.values:
        out.append((_("Deadline"), ClockKind(data["clock"]).label))
    if e.kind == EventKind.BREACHED and data.get("late"):
        try:
            found = timezone.localtime(dt.datetime.fromisoformat(data["recorded"])).strftime("%Y-%m-%d %H:%M")
        except (KeyError, TypeError, ValueError):
            found = "—"
        out.append((_("Note"), _("Recorded late, at %(time)s: the deadline had already passed when it was counted "
                                 "(the deadlines were counted again, or the worker was stopped). Not posted to group "
                                 "chats.") % {"time": found}))
    if e.kind == EventKind.UNBREACHED:
        try:
            missed, due = (timezone.localtime(dt.datetime.fromisoformat(data[k])).strftime("%Y-%m-%d %H:%M")
                           for k in ("breached", "due"))  # fmt: skip
        except (KeyError, TypeError, ValueError):
            missed = due = "—"
        out.append((_("Note"), _("Counted again, the deadline is %(due)s: the breach recorded at %(time)s no longer "
                                 "counts.") % {"due": due, "time": missed}))
    if e.kind == EventKind.UNDELIVERED and data.get("withdrawn"):
        try:
            met = timezone.localtime(dt.datetime.fromisoformat(data["withdrawn"])).strftime("%Y-%m-%d %H:%M")
        except (TypeError, ValueError):
            met = "—"
        out.append((_("Deadline"), ClockKind.FIRST_RESPONSE.label))
        out.append((_("Note"), _("The reply did not reach the customer: it no longer meets the first-response "
                                 "deadline it met at %(time)s.") % {"time": met}))
    if e.kind == EventKind.UNDELIVERED and data.get("backfilled"):
        out.append((_("Note"), _("Recorded afterwards: the delivery failed for good before such failures were "
                                 "kept in the history.")))
    if e.kind == EventKind.UNDELIVERED and data.get("kept"):
        out.append((_("Note"), _("The ticket was already resolved or closed: its first response stays as it was "
                                 "judged.")))
    if e.kind == EventKind.REPLY and data.get("resent"):
        out.append((_("Note"), _("Sent again after the delivery failed.")))
    if e.kind == EventKind.LINKED and data.get("ticket"):
        if data.get("link_kind") == LinkKind.DUPLICATE:
            relation = _("Duplicated by") if data.get("reverse") else _("Duplicate of")
        else:
            relation = _("Related")
        out.append((_("Link removed") if data.get("removed") else _("Linked ticket"), f"{data['ticket']}{wording.aside(relation)}"))
    if e.kind == EventKind.MERGED:
        if data.get("into"):
            out.append((_("Merged into"), data["into"]))
        if data.get("from"):
            out.append((_("Merged from"), data["from"]))
    if e.kind == EventKind.SURVEY and data.get("score") is not None:
        out.append((_("Satisfaction"), f"{data['score']} / 5"))
        if data.get("solved") is not None:
            out.append((_("Solved"), _("yes") if data["solved"] else _("no")))
        if data.get("recommend") is not None:
            out.append((_("Would recommend (0–10)"), str(data["recommend"])))
        if data.get("action"):
            out.append((_("Improvement action"), data["action"]))
    if e.kind == EventKind.ESCALATED and data.get("level"):
        out.append((_("Level"), str(data["level"])))
        if data.get("clock") in ClockKind.values:
            out.append((_("Deadline"), ClockKind(data["clock"]).label))
    forwarded = data.get("forwarded_by") or {}
    if e.kind == EventKind.CREATED and forwarded.get("name"):
        out.append((_("Forwarded"), forwarded_line(forwarded, e.at)))
    routed = data.get("routing") or {}
    if e.kind == EventKind.CREATED and routed.get("method") in AssignMethod.values:
        out.append((_("Routed"), AssignMethod(routed["method"]).label))
    for key, label in (("reason", _("Reason")), ("summary", _("Summary")), ("note", _("Note"))):
        if key == "reason" and data.get("boost"):  # the system's own words: in the reader's language, not the stored
            from pharmacrm.core.deferred import thaw

            text = thaw(data["boost_text"]) if data.get("boost_text") else ""
            out.append((label, text or _("A VIP or key-account customer: one step more urgent.")))
        elif key == "reason" and data.get("unboost"):
            from .editing import UNBOOST_REASON

            out.append((label, _(UNBOOST_REASON)))
        elif key == "note" and data.get(key):  # the system's own words are stored in its language: read in the reader's
            out.append((label, _system_note(str(data[key]))))
        elif data.get(key):
            out.append((label, str(data[key])))
    from . import editing

    out.extend(editing.event_details(e))
    return out


def _allowed(ticket: Ticket) -> list[tuple[str, str]]:
    """(status, button label) for each step the lifecycle allows from the ticket's status."""
    allowed = TRANSITIONS.get(ticket.status, frozenset())
    if ticket.merged_into_id:  # a merged duplicate goes on in the ticket it was merged into: no reopen here
        allowed = allowed - OPEN_STATUSES
    out = []
    for status in Status:
        # not the status it is in: "Move to: Assigned" on an assigned ticket only wrote "Assigned → Assigned" into
        # its history (handing it to someone else is the Assign form's)
        if status in allowed and status != ticket.status:
            reopen = ticket.status in REOPENABLE and status in OPEN_STATUSES
            out.append((status.value, _("Reopen") if reopen else status.label))
    return out


def _ticket_context(request, ticket: Ticket, *, transition_form=None, response_form=None, priority_form=None,
                    assign_form=None, conflict: bool = False) -> dict:  # fmt: skip
    user = request.user
    now = timezone.now()
    if not hasattr(ticket, "key_account"):  # a ticket not loaded by _ticket_or_404
        ticket.key_account = Ticket.objects.filter(pk=ticket.pk).filter(key_account_q()).exists()
    clocks = [clock_view(c, now) for c in ticket.clocks.select_related("calendar").order_by("kind")]
    events = []
    for e in linking.hide_unseen_tickets(user, ticket.events.select_related("actor").order_by("at", "id")):
        e.label = EventKind(e.kind).label if e.kind in EventKind.values else e.kind
        e.details = _event_details(e)
        events.append(e)
    may_handle = access.can(user, Cap.HANDLE_TICKETS)
    version = {"version": ticket.version}
    resolve_form = TransitionForm(initial={"to_status": Status.RESOLVED, **version})
    if transition_form is not None and transition_form.data.get("to_status") == Status.RESOLVED:
        resolve_form = transition_form
    from .api import texts_with_contacts

    panels = _panels(request, ticket)
    held = texts_with_contacts(ticket, panels.get("conversation") or ())
    return {
        "ticket": ticket,
        "caller": _caller(user, ticket, texts=held),
        "clocks": clocks,
        "events": events,
        "may_handle": may_handle,
        "transitions": _allowed(ticket) if may_handle else [],
        "channels": Channel.choices,
        "transition_form": transition_form,
        "resolve_form": resolve_form,
        "response_form": response_form or ResponseForm(),
        "priority_form": priority_form or PriorityForm(
            initial={"priority": ticket.priority, "complexity": ticket.complexity, **version}
        ),
        "assign_form": assign_form or AssignForm(
            initial={"assignee": ticket.assignee_id, "team": ticket.team_id, **version}
        ),
        "may_assign": may_handle and ticket.status in OPEN_STATUSES,  # and change the priority
        # a response is recorded on an open ticket (services refuses it on a resolved or closed one)
        # — and with the refusal when it was sent as someone else resolved the ticket
        "may_respond": may_handle and (ticket.status in OPEN_STATUSES or response_form is not None),
        "responded": any(e.kind == EventKind.RESPONDED for e in events),
        "conflict": conflict,
        "other_tickets": customer_tickets(user, ticket=ticket, limit=5),
        **panels,
    }


def _panels(request, ticket: Ticket) -> dict:
    """Context of the ticket page's feature panels (conversation, links, revisit, escalation)."""
    from . import views_conversation, views_escalation, views_links, views_quality, views_revisit

    out: dict = {}
    for module in (views_conversation, views_links, views_revisit, views_quality, views_escalation):
        out.update(module.panel_context(request, ticket))
    return out


@login_required
@require_GET
def ticket_detail(request, pk: int):
    ticket = _ticket_or_404(request.user, pk)
    return render(request, "servicedesk/ticket_detail.html", _ticket_context(request, ticket))


@login_required
@require_POST
def caller_reveal(request, pk: int):
    """An unidentified caller's name and phone, and the contact details typed into the ticket's subject, description,
    resolution and conversation, in clear after the user states why (a call back, a revisit), audited with the reason
    and the fields read — as a customer's contact details are on the person page."""
    from .api import callers_in_clear, texts_with_contacts

    user = request.user
    access.require(user, Cap.REVEAL_PERSONAL_DATA)
    ticket = _ticket_or_404(user, pk)
    form = reveal_form_for(request.POST)
    context = _ticket_context(request, ticket)
    if not form.is_valid():
        if context.get("caller"):
            context["caller"]["reveal_form"] = form
        return render(request, "servicedesk/ticket_detail.html", context, status=400)
    conversation = context.get("conversation") or ()
    callers_in_clear(user, [ticket], reveal_reason=form.cleaned_data["reason"], purpose="reveal",
                     messages=conversation)  # fmt: skip
    context["caller"] = _caller(user, ticket, revealed=True, texts=texts_with_contacts(ticket, conversation))
    return render(request, "servicedesk/ticket_detail.html", context)


def _kept(form_class, request, ticket: Ticket, message: str):
    """The user's input again, with the ticket's current version, after someone else saved it."""
    data = request.POST.copy()
    data["version"] = str(ticket.version)
    form = form_class(data)
    form.is_valid()
    form.add_error(None, message)
    return form


CONFLICT = gettext_lazy(
    "Someone else changed this ticket while you were working on it. Your input is kept: check the ticket, "
    "then submit again."
)


def _handling(request, pk: int) -> Ticket:
    access.require(request.user, Cap.HANDLE_TICKETS)
    return _ticket_or_404(request.user, pk)


def _done_by_first_click(user, ticket, d, done) -> bool:
    """The form sent twice (a double click): the ticket is one version on from the one the form was loaded with, this
    user made that change, and it is what the form asks for — the first sending did it."""
    if done is None or not is_id(d.get("version")) or ticket.version != int(d["version"]) + 1 or not done(ticket, d):
        return False
    last = TicketEvent.objects.filter(ticket=ticket).order_by("-at", "-id").values_list("actor_id", flat=True).first()
    return last == user.pk


def _act(request, pk: int, form_class, context_key: str, act, success, done=None) -> HttpResponse:
    """Run one handling action on a ticket from its page: the form's data to a service call; on success a
    message and back to the ticket; a step the lifecycle refuses or a stale version (409), or a service
    error (400), shows the page again with what the user typed. `done(ticket, data)`: whether the ticket is as the
    form asks — the same form sent again right after (a double click) then shows the ticket, not the conflict."""
    user = request.user
    ticket = _handling(request, pk)
    form = form_class(request.POST)
    conflict = refused = False
    if form.is_valid():
        try:
            act(user, ticket, form.cleaned_data)
        except (services.TransitionRefused, ConflictError) as e:
            ticket = _ticket_or_404(user, pk)
            if _done_by_first_click(user, ticket, form.cleaned_data, done):
                messages.info(request, success(ticket))
                return redirect("servicedesk:ticket", pk=ticket.pk)
            if isinstance(e, ConflictError):
                form, conflict = _kept(form_class, request, ticket, str(CONFLICT)), True
            else:
                form, refused = _kept(form_class, request, ticket, " ".join(e.messages)), True
        except ValidationError as e:
            ticket = _ticket_or_404(user, pk)
            form.add_service_errors(e)
        else:
            messages.success(request, success(ticket))
            return redirect("servicedesk:ticket", pk=ticket.pk)
    context = _ticket_context(request, ticket, conflict=conflict, **{context_key: form})
    return render(request, "servicedesk/ticket_detail.html", context, status=409 if conflict or refused else 400)


@login_required
@require_POST
def ticket_status(request, pk: int):
    def act(user, ticket, d):
        services.transition(
            user, ticket, d["to_status"], version=d["version"], note=d.get("note") or "",
            resolution_summary=d.get("resolution_summary") or "", root_cause=d.get("root_cause") or "",
            informed_channel=d.get("informed_channel") or "", **services.impact_of(d),
        )  # fmt: skip

    def success(ticket):
        return _("%(number)s is now “%(status)s”.") % {"number": ticket.number, "status": ticket.get_status_display()}

    return _act(request, pk, TransitionForm, "transition_form", act, success,
                done=lambda t, d: t.status == d["to_status"])


@login_required
@require_POST
def ticket_respond(request, pk: int):
    def act(user, ticket, d):
        try:  # once per form: sent again (a double click), the ticket with the response the first one recorded
            create_once(user, d["form_token"], lambda: services.record_response(
                user, ticket, channel=d["channel"], summary=d.get("summary") or ""))  # fmt: skip
        except AlreadyCreated:
            pass

    return _act(
        request, pk, ResponseForm, "response_form", act, lambda t: _("The response to the customer was recorded.")
    )


@login_required
@require_POST
def ticket_priority(request, pk: int):
    def act(user, ticket, d):
        services.change_priority(user, ticket, d["priority"], d["complexity"], reason=d["reason"], version=d["version"])

    return _act(
        request, pk, PriorityForm, "priority_form", act,
        lambda t: _("The priority was changed and the deadlines recomputed."),
        done=lambda t, d: (t.priority, t.complexity) == (d["priority"], d["complexity"]),
    )  # fmt: skip


@login_required
@require_POST
def ticket_assign(request, pk: int):
    def act(user, ticket, d):
        services.assign(user, ticket, assignee=d["assignee"], team=d["team"], version=d["version"])

    return _act(
        request, pk, AssignForm, "assign_form", act, lambda t: _("%(number)s was assigned.") % {"number": t.number},
        done=lambda t, d: t.assignee_id == getattr(d["assignee"], "pk", None)
        and (d["team"] is None or t.team_id == d["team"].pk),
    )  # fmt: skip


# --- for the Customer 360 pages --------------------------------------------------------------------


def customer_tickets(user, *, institution=None, person=None, ticket=None, limit: int = CUSTOMER_TICKETS) -> list:
    """A customer's most recent tickets the user may see (one query), newest first; with `ticket`, the
    other tickets of that ticket's customer."""
    if not access.can(user, Cap.VIEW_TICKETS):
        return []
    qs = Ticket.objects.all()
    if ticket is not None:
        if ticket.person_id:
            qs = qs.filter(person_id=ticket.person_id)
        elif ticket.institution_id:
            qs = qs.filter(institution_id=ticket.institution_id)
        else:
            return []
        qs = qs.exclude(pk=ticket.pk)
    elif person is not None:
        qs = qs.filter(person=person)
    elif institution is not None:  # a hospital's page lists its departments' tickets too, naming the department
        from pharmacrm.customers.models import with_departments

        qs = qs.filter(institution_id__in=with_departments(institution.pk))
    else:
        return []
    qs = (
        access.tickets_for(user, qs).select_related("category").defer(*UNUSED_COLUMNS)
        .annotate(institution_name=F("institution__name"))
    )  # fmt: skip
    tickets = list(
        qs.annotate(next_due=next_due_subquery()).prefetch_related(_clocks_prefetch())
        .order_by("-received_at", "-id")[:limit]
    )  # fmt: skip
    now = timezone.now()
    for t in tickets:
        t.deadline = next_running_clock(t.clocks.all(), now)
    return tickets
