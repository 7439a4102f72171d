"""Service-desk pages: the supervisor board (breaching soon, breached, per-agent load, today's intake by
category), an agent's open tickets, the assignment settings (rules and agent profiles) and every agent's
on-duty switch.

The board reads a fixed number of queries whatever the number of tickets: the clocks due in the next two
hours through the partial index on SlaClock.next_check_at, the breached tickets through the queue indexes
on next_due_at, one grouped count per agent and one per category."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Exists, OuterRef, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from pharmacrm.core import access
from pharmacrm.core.form_saves import create_once, sent_again, sent_again_after
from pharmacrm.core.ids import is_id
from pharmacrm.core.local_urls import is_local
from pharmacrm.core.models import Team, User
from pharmacrm.core.roles import Cap
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views import AlreadyCreated

from . import calendars, routing
from .choices import Priority, Status
from .forms_routing import BoardFilterForm, OnDutyForm, ProfileForm, RuleForm
from .models import AgentProfile, AssignmentRule, SlaClock, Ticket, TicketCategory
from .views_settings import CONFLICT

LOCAL = ZoneInfo("Asia/Shanghai")  # "today" of the intake is China's day, whatever the server's zone
SOON = dt.timedelta(hours=2)
ROWS = 50  # tickets listed per board section (the counts are exact)
AGENT_ROWS = 100
HEAVY = (Priority.URGENT, Priority.HIGH)
TICKET_UNUSED = ("caller_name", "caller_phone", "reply_email", "description", "resolution_summary")


# --- who sees what -------------------------------------------------------------------------------------


def board_teams(user) -> list[int] | None:
    """The teams whose board the user may see: None (every team) for service managers, the teams they lead
    for a team lead; PermissionDenied for everyone else."""
    if access.can(user, Cap.MANAGE_SERVICE):
        return None
    if access.can(user, Cap.VIEW_TICKETS):
        led = list(Team.objects.filter(lead=user).values_list("id", flat=True))
        if led:
            return led
    raise PermissionDenied(_("The board is for service managers and team leads."))


def may_see_board(user) -> bool:
    try:
        board_teams(user)
    except PermissionDenied:
        return False
    return True


def _selected_teams(user, team: Team | None) -> list[int] | None:
    allowed = board_teams(user)
    if team is None:
        return allowed
    if allowed is not None and team.pk not in allowed:
        raise PermissionDenied(_("You may not see this team's board."))
    return [team.pk]


def _scope(user, qs, prefix: str = ""):
    """Tickets (or rows under `prefix`) the user may see; a no-op for roles that see every customer."""
    if access.can(user, Cap.ALL_CUSTOMERS):
        return qs
    visible = access.tickets_for(user, Ticket.objects.all()).values("id")
    return qs.filter(**{f"{prefix}id__in" if prefix else "id__in": visible})


# --- the board's data ----------------------------------------------------------------------------------


@dataclass
class AgentLoad:
    user: User
    on_duty: bool
    max_open: int | None
    total: int = 0
    heavy: int = 0  # urgent or high
    overdue: int = 0


@dataclass
class Board:
    now: dt.datetime
    team_ids: list[int] | None
    soon: list[SlaClock] = field(default_factory=list)
    soon_count: int = 0
    breached: list[Ticket] = field(default_factory=list)
    breached_count: int = 0
    agents: list[AgentLoad] = field(default_factory=list)
    intake: list[tuple[TicketCategory, int]] = field(default_factory=list)
    intake_total: int = 0
    day: dt.date | None = None


def _today(now: dt.datetime) -> tuple[dt.date, dt.datetime, dt.datetime]:
    day = now.astimezone(LOCAL).date()
    start = dt.datetime.combine(day, dt.time(0), tzinfo=LOCAL)
    return day, start, start + dt.timedelta(days=1)


def board_summary(user, team: Team | None = None, now: dt.datetime | None = None) -> Board:
    team_ids = _selected_teams(user, team)
    now = now or timezone.now()
    board = Board(now=now, team_ids=team_ids)
    horizon = now + SOON

    # breaching soon: open clocks due within two hours and not breached yet — a range on the partial index
    # of next_check_at (the warning or the deadline, both no later than the deadline)
    clocks = SlaClock.objects.filter(
        next_check_at__isnull=False, next_check_at__lte=horizon, due_at__gt=now, due_at__lte=horizon,
        fulfilled_at__isnull=True, breached_at__isnull=True,
    )  # fmt: skip
    if team_ids is not None:
        clocks = clocks.filter(ticket__team_id__in=team_ids)
    clocks = _scope(user, clocks, "ticket__")
    board.soon_count = clocks.count()
    board.soon = list(
        clocks.select_related("ticket__category", "ticket__assignee", "ticket__team", "calendar")
        .defer(*(f"ticket__{f}" for f in TICKET_UNUSED))
        .order_by("due_at", "id")[:ROWS]
    )

    # breached: open tickets whose earliest unmet deadline has passed (the queue index on next_due_at) and
    # that hold a breached clock
    breached = Ticket.objects.filter(next_due_at__lte=now).filter(
        Exists(
            SlaClock.objects.filter(
                ticket=OuterRef("pk"), breached_at__isnull=False, fulfilled_at__isnull=True
            )
        )
    )
    if team_ids is not None:
        breached = breached.filter(team_id__in=team_ids)
    breached = _scope(user, breached)
    board.breached_count = breached.count()
    board.breached = list(
        breached.select_related("category", "assignee", "team")
        .defer(*TICKET_UNUSED)
        .order_by("next_due_at", "id")[:ROWS]
    )

    # per-agent load: open tickets (they, and only they, carry next_due_at) grouped by assignee
    load = Ticket.objects.filter(next_due_at__isnull=False, assignee__isnull=False)
    if team_ids is not None:
        load = load.filter(team_id__in=team_ids)
    load = _scope(user, load)
    counts = {
        row["assignee"]: row
        for row in load.values("assignee").annotate(
            total=Count("id"), heavy=Count("id", filter=Q(priority__in=HEAVY)),
            overdue=Count("id", filter=Q(next_due_at__lte=now)),
        ).order_by()
    }  # fmt: skip
    people = Q(pk__in=list(counts))
    if team_ids is None:
        people |= Q(agent_profile__isnull=False)
    else:
        people |= Q(routing._handler_q(), teams__in=team_ids, is_active=True)
    agents = []
    for user_row in User.objects.filter(people).select_related("agent_profile").distinct():
        profile = getattr(user_row, "agent_profile", None)
        row = counts.get(user_row.pk, {})
        agents.append(AgentLoad(
            user=user_row, on_duty=profile.on_duty if profile else True,
            max_open=profile.max_open if profile else routing.DEFAULT_MAX_OPEN,
            total=row.get("total", 0), heavy=row.get("heavy", 0), overdue=row.get("overdue", 0),
        ))  # fmt: skip
    board.agents = sorted(agents, key=lambda a: (-a.total, -a.overdue, str(a.user)))

    # today's intake by category (China's date). The (status, received_at) index answers "received today"
    # once every status is named: one short range per status instead of a scan of all tickets.
    day, start, end = _today(now)
    board.day = day
    intake = Ticket.objects.filter(status__in=Status.values, received_at__gte=start, received_at__lt=end)
    if team_ids is not None:
        intake = intake.filter(team_id__in=team_ids)
    intake = _scope(user, intake)
    by_category = dict(
        intake.values_list("category").annotate(n=Count("id")).values_list("category", "n").order_by()
    )
    cats = TicketCategory.objects.filter(Q(active=True) | Q(pk__in=list(by_category))).order_by(
        "position", "code"
    )
    board.intake = [(c, by_category.get(c.pk, 0)) for c in cats]
    board.intake_total = sum(by_category.values())
    return board


# --- pages ---------------------------------------------------------------------------------------------


def _duration(span: dt.timedelta) -> str:
    from .views import duration_text

    return duration_text(span)


@login_required
@require_GET
def board(request):
    user = request.user
    allowed = board_teams(user)
    teams = (
        Team.objects.order_by("name")
        if allowed is None
        else Team.objects.filter(pk__in=allowed).order_by("name")
    )
    form = BoardFilterForm(request.GET or None, teams=teams)
    chosen = form.cleaned_data.get("team") if form.is_valid() else None
    data = board_summary(user, chosen)
    # working time on each clock's calendar, as the queue and the ticket page count it (not the wall clock:
    # a ticket overdue since a Friday evening is not 60 hours late on Monday morning)
    for clock in data.soon:
        engine = calendars.engine(clock.calendar)
        clock.left = _duration(engine.between(data.now, clock.due_at))
        # counted over a year whose holidays nobody entered: marked as on the ticket page and in the queue
        clock.uncovered = calendars.provisional_years(engine, data.now, clock.due_at)
    overdue: dict[int, SlaClock] = {}
    for clock in (
        SlaClock.objects.filter(ticket_id__in=[t.pk for t in data.breached], fulfilled_at__isnull=True,
                                due_at__isnull=False)
        .select_related("calendar").order_by("due_at", "id")
    ):  # fmt: skip
        overdue.setdefault(clock.ticket_id, clock)
    for ticket in data.breached:
        clock = overdue.get(ticket.pk)
        span = (
            calendars.engine(clock.calendar).between(clock.due_at, data.now)
            if clock is not None
            else data.now - ticket.next_due_at
        )
        ticket.late = _duration(span)
        ticket.uncovered = (
            calendars.provisional_years(calendars.engine(clock.calendar), data.now, clock.due_at) if clock else ()
        )
    chart = {
        "labels": [c.label for c, _n in data.intake],
        "values": [n for _c, n in data.intake],
        "series": _("Tickets received"),
    }
    context = {"board": data, "form": form, "chart": chart, "team": chosen}
    return render(request, "servicedesk/board.html", context)


def _agent_or_404(request, pk: int) -> tuple[User, list[int] | None, Team | None]:
    """The agent whose tickets the user may list: themselves, or anyone for a board viewer (a team lead:
    restricted to their teams' tickets). `?team=ID` (the board's link when a team is chosen there) lists only
    that team's tickets, as the board's row counted them: a board viewer's team, or refused as the board is."""
    user = request.user
    access.require(user, Cap.VIEW_TICKETS)
    agent = get_object_or_404(User, pk=pk)
    raw = request.GET.get("team") or ""
    if raw:
        team = Team.objects.filter(pk=int(raw)).first() if raw.isdecimal() and len(raw) <= 9 else None
        if team is None:
            raise Http404(_("No such team, or you may not see its board."))
        return agent, _selected_teams(user, team), team
    if agent.pk == user.pk:
        return agent, None, None
    return agent, board_teams(user), None


@login_required
@require_GET
def agent_tickets(request, pk: int):
    from .views import _clocks_prefetch, next_clock

    agent, team_ids, team = _agent_or_404(request, pk)
    qs = Ticket.objects.filter(assignee=agent, next_due_at__isnull=False)
    if team_ids is not None:
        qs = qs.filter(team_id__in=team_ids)
    qs = access.tickets_for(request.user, qs)
    total = qs.count()
    rows = list(
        qs.select_related("category", "team").defer(*TICKET_UNUSED).prefetch_related(_clocks_prefetch())
        .order_by("next_due_at", "id")[:AGENT_ROWS]
    )  # fmt: skip
    now = timezone.now()
    for t in rows:
        t.badge = next_clock(t.clocks.all(), now)
    profile = AgentProfile.objects.filter(user=agent).first()
    context = {"agent": agent, "rows": rows, "total": total, "profile": profile, "limit": AGENT_ROWS,
               "may_board": may_see_board(request.user), "team": team}  # fmt: skip
    return render(request, "servicedesk/routing/agent_tickets.html", context)


def _back(request, default: str) -> str:
    target = request.POST.get("next") or ""
    if is_local(request, target):
        return target
    return default


@login_required
@require_POST
def on_duty(request):
    """The signed-in agent switches themselves on or off duty (the button in the queue header)."""
    user = request.user
    access.require(user, Cap.HANDLE_TICKETS)
    form = OnDutyForm(request.POST)
    form.is_valid()
    value = bool(form.cleaned_data.get("on_duty"))
    try:
        profile = routing.set_on_duty(user, user, value)
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
    else:
        if request.headers.get("HX-Request"):
            return render(
                request, "servicedesk/routing/_on_duty.html", {"on_duty": profile.on_duty, "next": ""}
            )
        messages.success(
            request,
            _("You are now on duty.")
            if value
            else _("You are now off duty: no new tickets will be assigned to you."),
        )
    return redirect(_back(request, reverse("servicedesk:queue")))


# --- assignment settings -------------------------------------------------------------------------------


def _manage(request) -> None:
    access.require(request.user, Cap.MANAGE_SERVICE)


@login_required
@require_GET
def rule_list(request):
    _manage(request)
    rules = list(
        AssignmentRule.objects.select_related(
            "category", "product", "region", "team", "last_assigned"
        ).order_by("position", "name", "id")
    )
    return render(request, "servicedesk/routing/rule_list.html", {"rules": rules})


@login_required
def rule_edit(request, pk: int | None = None):
    _manage(request)
    rule = get_object_or_404(AssignmentRule, pk=pk) if pk is not None else None
    initial = RuleForm.initial_for(rule) if rule is not None else {}
    form = RuleForm(request.POST if request.method == "POST" else None, initial=initial)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                if rule is None:  # once per form: sent again (a double click), it leads to the rule created then
                    rule = create_once(request.user, request.POST.get("form_token"),
                                       lambda: routing.create_rule(request.user, form.service_data()))  # fmt: skip
                    messages.success(request, _("The rule “%(name)s” was created.") % {"name": rule.name})
                else:
                    routing.update_rule(request.user, rule, form.service_data(), version=form.cleaned_data.get("version"))
                    messages.success(request, _("The rule “%(name)s” was saved.") % {"name": rule.name})
            except AlreadyCreated as e:
                return sent_again(request, AssignmentRule, e.pk, reverse("servicedesk:assignment-rules"),
                                  page_of=lambda r: reverse("servicedesk:assignment-rule", args=[r.pk]))  # fmt: skip
            except ConflictError:  # someone saved first: their version, the user's input kept
                rule = AssignmentRule.objects.get(pk=rule.pk)
                form = _conflicted(RuleForm, request.POST, rule.version)
                return render(request, "servicedesk/routing/rule_form.html", {"form": form, "rule": rule}, status=409)
            except ValidationError as e:
                form.add_service_errors(e)
            else:
                return redirect("servicedesk:assignment-rules")
    return render(request, "servicedesk/routing/rule_form.html", {"form": form, "rule": rule}, status=status)


@login_required
@require_POST
def rule_move(request, pk: int):
    _manage(request)
    rule = get_object_or_404(AssignmentRule, pk=pk)
    try:
        routing.move_rule(request.user, rule, request.POST.get("direction", ""),
                          shown_position=request.POST.get("position"))  # fmt: skip
    except ValidationError as e:
        messages.error(request, " ".join(e.messages))
    return redirect("servicedesk:assignment-rules")


@login_required
@require_POST
def rule_deactivate(request, pk: int):
    _manage(request)
    rule = get_object_or_404(AssignmentRule, pk=pk)
    active, version = request.POST.get("active") == "1", request.POST.get("version", "")
    # the button always carries the version its page showed: one without, or an older one, is stale — unless it is
    # the same button sent again right after (a double click) and the rule is what it asks for
    if not (rule.active == active and sent_again_after(request.user, rule, version)):
        try:
            if not is_id(version) or int(version) != rule.version:
                raise ConflictError(rule.version)
            routing.update_rule(request.user, rule, {"active": active}, version=int(version))
        except ConflictError:
            messages.error(request, _(
                "Someone else changed the rule “%(name)s” since this page was loaded: nothing was changed. Check "
                "the rule as it is now, then try again.") % {"name": rule.name})  # fmt: skip
            return redirect("servicedesk:assignment-rules")
    if rule.active:
        messages.success(request, _("The rule “%(name)s” is active again.") % {"name": rule.name})
    else:
        messages.success(request, _("The rule “%(name)s” was deactivated.") % {"name": rule.name})
    return redirect("servicedesk:assignment-rules")


@login_required
@require_GET
def profile_list(request):
    _manage(request)
    agents = list(
        User.objects.filter(routing._handler_q(), is_active=True)
        .exclude(groups__name__in=[r.value for r in routing.READ_ONLY_ROLES])
        .distinct()
        .select_related("agent_profile")
        .prefetch_related("agent_profile__skills", "agent_profile__products", "teams")
        .order_by("username")
    )
    for a in agents:
        a.profile = getattr(a, "agent_profile", None)
    return render(request, "servicedesk/routing/profile_list.html", {"agents": agents})


@login_required
def profile_edit(request, user_pk: int):
    _manage(request)
    agent = get_object_or_404(User, pk=user_pk, is_active=True)
    if not access.can(agent, Cap.HANDLE_TICKETS):
        raise Http404(_("This user does not handle tickets."))
    profile = routing.profile_for(agent)
    initial = {"on_duty": profile.on_duty, "max_open": profile.max_open, "version": profile.version}
    if profile.pk is not None:
        initial["skills"] = list(profile.skills.values_list("pk", flat=True))
        initial["products"] = list(profile.products.values_list("pk", flat=True))
    form = ProfileForm(request.POST if request.method == "POST" else None, initial=initial)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                routing.save_profile(request.user, agent, form.cleaned_data, version=form.cleaned_data.get("version"))
            except ConflictError:
                profile = routing.profile_for(agent)
                form = _conflicted(ProfileForm, request.POST, profile.version)
                context = {"form": form, "agent": agent, "profile": profile}
                return render(request, "servicedesk/routing/profile_form.html", context, status=409)
            except ValidationError as e:
                form.add_service_errors(e)
            else:
                messages.success(request, _("The profile of %(agent)s was saved.") % {"agent": agent})
                return redirect("servicedesk:agent-profiles")
    context = {"form": form, "agent": agent, "profile": profile}
    return render(request, "servicedesk/routing/profile_form.html", context, status=status)


def _conflicted(form_class, posted, version: int):
    """The form again with what the user typed, the record's current version and the conflict message."""
    kept = posted.copy()
    kept["version"] = str(version)
    form = form_class(kept)
    form.is_valid()
    form.add_error(None, str(CONFLICT))
    return form


urlpatterns = [  # included by urls.py under /service/
    path("board/", board, name="board"),
    path("board/agents/<int:pk>/", agent_tickets, name="agent-tickets"),
    path("on-duty/", on_duty, name="on-duty"),
    path("assignment/rules/", rule_list, name="assignment-rules"),
    path("assignment/rules/new/", rule_edit, name="assignment-rule-create"),
    path("assignment/rules/<int:pk>/", rule_edit, name="assignment-rule"),
    path("assignment/rules/<int:pk>/move/", rule_move, name="assignment-rule-move"),
    path("assignment/rules/<int:pk>/active/", rule_deactivate, name="assignment-rule-active"),
    path("assignment/agents/", profile_list, name="agent-profiles"),
    path("assignment/agents/<int:user_pk>/", profile_edit, name="agent-profile"),
]


def panel_context(request, ticket) -> dict:
    """Extra context for the ticket page (merged by views._ticket_context)."""
    return {}
