"""Where a new ticket goes: the key-account service team, else the first matching assignment rule's team
and (by its method) an agent of that team who has the skill and is on duty; VIP and key-account tickets get
a priority boost. Called by services.create_ticket inside its transaction, before the ticket's first save.

Also the write side of the assignment settings: rules (create, change, reorder, deactivate), agent profiles
and the on-duty switch — each checked, validated, written in one transaction and audited."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils.translation import gettext as _

from pharmacrm.core import access, audit
from pharmacrm.core.models import AuditEntry, Team, User
from pharmacrm.core.roles import MATRIX, READ_ONLY_ROLES, Cap
from pharmacrm.customers.choices import Tier

from . import settings_cache
from .choices import OPEN_STATUSES, AssignMethod, Priority
from .models import AgentProfile, AssignmentRule, Ticket, TicketCategory
from .policies import _lock

A = AuditEntry.Action
BOOST_TIERS = frozenset({Tier.VIP, Tier.KEY})
BOOST = {Priority.LOW: Priority.NORMAL, Priority.NORMAL: Priority.HIGH}  # never above high by the boost alone
DEFAULT_MAX_OPEN = AgentProfile._meta.get_field("max_open").default
ROUND_ROBIN_TRIES = 5

# --- the key-account hook ------------------------------------------------------------------------------

KeyAccountHook = Callable[[Ticket], "Team | None"]
_key_account_hooks: list[KeyAccountHook] = []


def register_key_account_team(fn: KeyAccountHook) -> KeyAccountHook:
    """Register `fn(ticket) -> Team | None`: the service team of the ticket's key account, if it has one
    (the key-account feature registers it from its AppConfig.ready). Usable as a decorator; registering the
    same function twice has no effect. A team returned here wins over every assignment rule, and the
    ticket counts as a key-account ticket (priority boost)."""
    if fn not in _key_account_hooks:
        _key_account_hooks.append(fn)
    return fn


def unregister_key_account_team(fn: KeyAccountHook) -> None:
    if fn in _key_account_hooks:
        _key_account_hooks.remove(fn)


def key_account_team(ticket: Ticket) -> Team | None:
    for fn in list(_key_account_hooks):
        team = fn(ticket)
        if team is not None:
            return team
    return None


# --- matching ------------------------------------------------------------------------------------------


def _customers(ticket: Ticket) -> list:
    return [c for c in (ticket.person if ticket.person_id else None, ticket.institution) if c is not None]


def customer_tiers(ticket: Ticket) -> set[str]:
    """The tiers of the ticket's person and institution, and of the hospital a department belongs to: a
    department of a VIP hospital or a key account counts as one (the key-account tier is the hospital's; a
    newly listed hospital's team may have nobody yet to route to, and its departments' tickets are still
    boosted)."""
    customers = _customers(ticket)
    tiers = {c.tier for c in customers if c.tier}
    parents = {p for c in customers if (p := getattr(c, "parent_id", None))}
    if parents:
        from pharmacrm.customers.models import Institution

        tiers |= set(Institution.objects.filter(pk__in=parents).exclude(tier="").values_list("tier", flat=True))
    return tiers


def customer_region(ticket: Ticket) -> tuple[str, str, str]:
    """(province, city, district code) of the customer: the person's (their institution's), else the
    institution's; empty for an unidentified caller."""
    for c in _customers(ticket):
        if c.region_id or c.province:
            return c.province or "", c.city or "", c.region_id or ""
    return "", "", ""


def region_contains(code: str, province: str, city: str, region_id: str) -> bool:
    """Whether a customer at (province, city, region_id) lies inside the region `code` — the comparison
    access.region_q makes on the same denormalised columns."""
    code = str(code).strip()[:6].ljust(6, "0")
    if code.endswith("0000"):
        return code == province
    if code.endswith("00"):
        return code == city
    return code == region_id


def _category_chain(category: TicketCategory | None) -> set[int]:
    """The category and its ancestors: a skill or rule on a parent covers its children."""
    if category is None:
        return set()
    ids, parent = {category.pk}, category.parent_id
    while parent is not None and parent not in ids:
        ids.add(parent)
        parent = TicketCategory.objects.filter(pk=parent).values_list("parent_id", flat=True).first()
    return ids


def rule_matches(rule: AssignmentRule, ticket: Ticket, *, categories=None, tiers=None, region=None) -> bool:
    categories = _category_chain(ticket.category) if categories is None else categories
    tiers = customer_tiers(ticket) if tiers is None else tiers
    region = customer_region(ticket) if region is None else region
    if rule.category_id is not None and rule.category_id not in categories:
        return False
    if rule.product_id is not None and rule.product_id != ticket.product_id:
        return False
    if rule.customer_tier and rule.customer_tier not in tiers:
        return False
    if rule.region_id and not region_contains(rule.region_id, *region):
        return False
    return True


def matching_rule(ticket: Ticket, rules: Iterable[AssignmentRule] | None = None) -> AssignmentRule | None:
    """The first active rule (by position, then name) whose every set condition matches the ticket."""
    if rules is None:
        rules = (
            AssignmentRule.objects.filter(active=True)
            .select_related("team")
            .order_by("position", "name", "id")
        )
    facts = {"categories": _category_chain(ticket.category), "tiers": customer_tiers(ticket),
             "region": customer_region(ticket)}  # fmt: skip
    return next((r for r in rules if rule_matches(r, ticket, **facts)), None)


# --- choosing an agent ---------------------------------------------------------------------------------


def _handler_q() -> Q:
    handling = [r.value for r in MATRIX[Cap.HANDLE_TICKETS]]
    return Q(is_superuser=True) | Q(groups__name__in=handling)


def eligible_agents(team: Team, ticket: Ticket, exclude: Iterable = ()) -> list[tuple[User, int]]:
    """(user, open tickets) for each member of `team` who may handle tickets, is on duty, has the skill
    (the ticket's category) and knows its product, and is below their most open tickets — ordered by id.
    Users without an agent profile count as on duty with every skill. A fixed number of queries."""
    excluded = {getattr(u, "pk", u) for u in exclude if u is not None}
    members = (
        User.objects.filter(_handler_q(), teams=team, is_active=True)
        .exclude(groups__name__in=[r.value for r in READ_ONLY_ROLES])
        .exclude(pk__in=excluded)
        .distinct()
        .order_by("id")
    )
    users = list(members)
    if not users:
        return []
    ids = [u.pk for u in users]
    profiles = {p.user_id: p for p in AgentProfile.objects.filter(user_id__in=ids)}
    skills: dict[int, set[int]] = {}
    products: dict[int, set[int]] = {}
    if profiles:
        through = AgentProfile.skills.through
        for user_id, cat_id in through.objects.filter(agentprofile__user_id__in=ids).values_list(
            "agentprofile__user_id", "ticketcategory_id"
        ):
            skills.setdefault(user_id, set()).add(cat_id)
        if ticket.product_id:
            through = AgentProfile.products.through
            for user_id, product_id in through.objects.filter(agentprofile__user_id__in=ids).values_list(
                "agentprofile__user_id", "product_id"
            ):
                products.setdefault(user_id, set()).add(product_id)
    categories = _category_chain(ticket.category)
    load = dict(
        Ticket.objects.filter(assignee_id__in=ids, status__in=OPEN_STATUSES)
        .values_list("assignee_id")
        .annotate(n=Count("id"))
        .values_list("assignee_id", "n")
    )
    out = []
    for user in users:
        profile = profiles.get(user.pk)
        if profile is not None and not profile.on_duty:
            continue
        if user.pk in skills and not (skills[user.pk] & categories):
            continue
        if ticket.product_id and user.pk in products and ticket.product_id not in products[user.pk]:
            continue
        n = load.get(user.pk, 0)
        if n >= (profile.max_open if profile is not None else DEFAULT_MAX_OPEN):
            continue
        out.append((user, n))
    return out


def pick_agent(team: Team, ticket: Ticket, exclude: Iterable = (), *, rule: AssignmentRule | None = None):
    """An agent of `team` for the ticket, or None (the ticket then waits in the team queue). Round robin
    when `rule` says so (advancing the rule's pointer), least loaded otherwise (fewest open tickets, then
    the lowest id). `exclude`: users (or ids) not to choose, e.g. the current assignee on reassignment."""
    if team is None:
        return None
    candidates = eligible_agents(team, ticket, exclude)
    if not candidates:
        return None
    if rule is not None and rule.method == AssignMethod.ROUND_ROBIN and rule.pk is not None:
        return _round_robin(rule, [u for u, _n in candidates])
    return min(candidates, key=lambda c: (c[1], c[0].pk))[0]


def _round_robin(rule: AssignmentRule, users: list[User]) -> User:
    """The next eligible user after the rule's pointer (by id, wrapping), the pointer moved with a
    conditional update: of two intakes reading the same pointer, only one moves it from there — the other
    reads it again and takes the next agent, so nobody gets two tickets in a row by a race."""
    pointer = rule.last_assigned_id
    for _attempt in range(ROUND_ROBIN_TRIES):
        chosen = next((u for u in users if pointer is not None and u.pk > pointer), users[0])
        moved = AssignmentRule.objects.filter(pk=rule.pk, last_assigned_id=pointer).update(
            last_assigned_id=chosen.pk
        )
        if moved:
            rule.last_assigned_id = chosen.pk
            return chosen
        pointer = AssignmentRule.objects.filter(pk=rule.pk).values_list("last_assigned_id", flat=True).first()
    rule.last_assigned_id = chosen.pk
    return chosen  # contention beyond reason: take the last choice rather than fail the intake


# --- routing a new ticket ------------------------------------------------------------------------------


# `fn(ticket) -> str | Message | None`: why another app's customers deserve the boost (the loyalty programme: a member
# whose level promises priority service), as the reason the ticket's history gives (a core.deferred.Message to be read
# in each reader's language), or None
BoostHook = Callable[[Ticket], "str | None"]
_boost_hooks: list[BoostHook] = []


def register_boost(fn: BoostHook) -> BoostHook:
    """Register `fn(ticket) -> reason | None` (an app's AppConfig.ready): its customers' tickets are boosted as a
    VIP's are, by `boost` — the one place the boost is decided, at intake and when a ticket's customer is corrected."""
    if fn not in _boost_hooks:
        _boost_hooks.append(fn)
    return fn


def boost_reason(ticket: Ticket, key_account: bool = False) -> str | None:
    """Why the ticket's customer deserves the priority boost — a VIP or a key account (its tier, or its key account's
    service team), or what a registered hook says (a loyalty member with priority service) — or None."""
    if key_account or customer_tiers(ticket) & BOOST_TIERS:
        return _("A VIP or key-account customer: one step more urgent.")
    for fn in list(_boost_hooks):
        reason = fn(ticket)
        if reason:
            return reason
    return None


def boost_mark(reason) -> dict:
    """What a boost's history event stores: the reason as text (in the language of the moment, for the audit trail
    and older readers), `boost`, and — for a hook's reason given as a core.deferred.Message — that message frozen, so
    that each reader of the history reads it in their own language (views.event_details)."""
    from pharmacrm.core.deferred import Message, freeze

    out = {"reason": str(reason), "boost": True}
    if isinstance(reason, Message):
        out["boost_text"] = freeze(reason)
    return out


def boost(ticket: Ticket, key_account: bool = False) -> str | None:
    """Raise the ticket of a customer that deserves it (boost_reason) one step (low → normal → high, never above
    high by the boost alone); returns the priority before the boost, or None when nothing changed. The reason is left
    in `ticket.boost_reason` for the history."""
    reason = boost_reason(ticket, key_account)
    if not reason:
        return None
    raised = BOOST.get(ticket.priority)
    if raised is None:
        return None
    before, ticket.priority, ticket.boosted = ticket.priority, raised, True
    ticket.boost_reason = reason
    return before


def route(user, ticket: Ticket, *, rules: Iterable[AssignmentRule] | None = None) -> None:
    """Set ticket.team / ticket.assignee / ticket.priority / ticket.boosted before the ticket is first saved
    (only the team and assignee the caller left empty). Order: the key account's service team (a
    registered hook), else the first matching assignment rule; then an agent of that team by the rule's
    method (a key-account team: least loaded). A team the caller chose stays a plain team queue.
    Leaves `ticket._routing` = {"rule", "method", "boosted_from"} for create_ticket to record."""
    info = {"rule": None, "method": None, "boosted_from": None}
    ticket._routing = info
    team = key_account_team(ticket)
    info["boosted_from"] = boost(ticket, key_account=team is not None)
    if ticket.team_id is not None:
        return  # the caller chose the queue
    if team is not None:
        info["method"] = "key_account"
        ticket.team = team
        if ticket.assignee_id is None:
            ticket.assignee = pick_agent(team, ticket)
        return
    rule = matching_rule(ticket, rules)
    if rule is None:
        return
    info["rule"], info["method"] = rule.pk, rule.method
    ticket.team = rule.team
    if ticket.assignee_id is None and rule.method != AssignMethod.QUEUE:
        ticket.assignee = pick_agent(rule.team, ticket, rule=rule)


# --- settings: rules -----------------------------------------------------------------------------------

RULE_FIELDS = (
    "name",
    "position",
    "active",
    "category",
    "product",
    "customer_tier",
    "region",
    "team",
    "method",
)
FK_FIELDS = ("category", "product", "region", "team")


def _rule_snapshot(rule: AssignmentRule) -> dict:
    return {f: getattr(rule, f"{f}_id") if f in FK_FIELDS else getattr(rule, f) for f in RULE_FIELDS}


def _validate_rule(rule: AssignmentRule) -> None:
    errors: dict[str, list[str]] = {}
    try:
        rule.full_clean(exclude=["last_assigned"])
    except ValidationError as e:
        errors.update({k: [str(m) for m in v] for k, v in e.message_dict.items()})
    if rule.team_id is None and "team" not in errors:
        errors["team"] = [_("Choose the team that receives these tickets.")]
    if errors:
        raise ValidationError(errors)


def create_rule(user, data: dict) -> AssignmentRule:
    access.require(user, Cap.MANAGE_SERVICE)
    rule = AssignmentRule(**{k: v for k, v in data.items() if k in RULE_FIELDS})
    if "position" not in data:
        last = AssignmentRule.objects.order_by("-position").values_list("position", flat=True).first()
        rule.position = min((last or 0) + 10, 32767)
    _validate_rule(rule)
    with transaction.atomic():
        rule.save(force_insert=True)
        settings_cache.bump()  # every process reads the rules again
        audit.record(A.CREATE, rule, user=user, changes=audit.diff({}, _rule_snapshot(rule)))
    return rule


def update_rule(user, rule: AssignmentRule, data: dict, *, version: int | None = None) -> AssignmentRule:
    """Change a rule; `version`, when given, is the one the editor loaded (a stale one → ConflictError)."""
    access.require(user, Cap.MANAGE_SERVICE)
    before = _rule_snapshot(rule)
    for key, value in data.items():
        if key in RULE_FIELDS:
            setattr(rule, key, value)
    _validate_rule(rule)
    changes = audit.diff(before, _rule_snapshot(rule))
    if not changes:
        return rule
    with transaction.atomic():
        _lock(AssignmentRule, rule, version)
        if changes.get("team"):
            rule.last_assigned = None  # the pointer named someone of the old team
        rule.save()
        settings_cache.bump()  # every process reads the rules again
        audit.record(A.UPDATE, rule, user=user, changes=changes)
    return rule


def deactivate_rule(user, rule: AssignmentRule, *, version: int | None = None) -> AssignmentRule:
    return update_rule(user, rule, {"active": False}, version=version)


def move_rule(user, rule: AssignmentRule, direction: str, *, shown_position=None) -> AssignmentRule:
    """Move a rule one place up or down in the evaluation order (positions renumbered 10, 20, …).

    `shown_position`: the rule's position on the page the arrow was clicked on. When it is not the rule's position
    now, the order changed since — the same click sent twice (a double click moved the rule two places), or a
    colleague's move — and nothing moves: the page shows the order as it is, to move from there."""
    access.require(user, Cap.MANAGE_SERVICE)
    if direction not in ("up", "down"):
        raise ValidationError({"direction": [_("Move a rule up or down.")]})
    with transaction.atomic():
        rules = list(AssignmentRule.objects.select_for_update().order_by("position", "name", "id"))
        index = next(i for i, r in enumerate(rules) if r.pk == rule.pk)
        if shown_position not in (None, "") and str(shown_position).strip() != str(rules[index].position):
            raise ValidationError({"direction": [_(
                "The order of the rules changed since this page was loaded (the move was made already, or by a "
                "colleague): nothing was moved. Check the order shown now and move the rule from there."
            )]})  # fmt: skip
        other = index - 1 if direction == "up" else index + 1
        if not 0 <= other < len(rules):
            return rule
        rules[index], rules[other] = rules[other], rules[index]
        before = {r.pk: r.position for r in rules}
        for i, r in enumerate(rules):
            r.position = min((i + 1) * 10, 32767)
        changed = [r for r in rules if r.position != before[r.pk]]
        AssignmentRule.objects.bulk_update(changed, ["position"])
        settings_cache.bump()  # every process reads the rules again
        audit.record(A.UPDATE, rule, user=user, changes={"order": [index + 1, other + 1]},
                     positions={r.pk: r.position for r in rules})  # fmt: skip
    rule.position = next(r.position for r in rules if r.pk == rule.pk)
    return rule


# --- settings: agent profiles --------------------------------------------------------------------------

PROFILE_FIELDS = ("on_duty", "max_open")


def _profile_snapshot(profile: AgentProfile, skills=None, products=None) -> dict:
    out = {f: getattr(profile, f) for f in PROFILE_FIELDS}
    if profile.pk is not None:
        out["skills"] = sorted(skills if skills is not None else profile.skills.values_list("pk", flat=True))
        out["products"] = sorted(
            products if products is not None else profile.products.values_list("pk", flat=True)
        )
    else:
        out["skills"], out["products"] = [], []
    return out


def profile_for(user: User) -> AgentProfile:
    """The user's profile, or an unsaved default one (on duty, every skill)."""
    return AgentProfile.objects.filter(user=user).first() or AgentProfile(user=user)


def save_profile(user, agent: User, data: dict, *, version: int | None = None) -> AgentProfile:
    """Create or change an agent's profile: skills, products (lists of objects; empty = all), on duty,
    most open tickets."""
    access.require(user, Cap.MANAGE_SERVICE)
    if not access.can(agent, Cap.HANDLE_TICKETS):
        raise ValidationError({"user": [_("This user cannot handle tickets.")]})
    profile = profile_for(agent)
    before = _profile_snapshot(profile)
    for key in PROFILE_FIELDS:
        if key in data:
            setattr(profile, key, data[key])
    errors: dict[str, list[str]] = {}
    try:
        profile.full_clean(exclude=["user"])
    except ValidationError as e:
        errors.update({k: [str(m) for m in v] for k, v in e.message_dict.items()})
    if profile.max_open is not None and not errors.get("max_open") and profile.max_open < 1:
        errors["max_open"] = [_("An agent must be able to hold at least one open ticket.")]
    if errors:
        raise ValidationError(errors)
    created = profile.pk is None
    with transaction.atomic():
        if not created:
            _lock(AgentProfile, profile, version)  # another manager (or the agent's duty switch) saved first
        profile.save()
        if "skills" in data:
            profile.skills.set(data["skills"])
        if "products" in data:
            profile.products.set(data["products"])
        changes = audit.diff(before, _profile_snapshot(profile))
        if changes or created:
            audit.record(A.CREATE if created else A.UPDATE, profile, user=user, changes=changes)
    return profile


def set_on_duty(user, agent: User, on_duty: bool) -> AgentProfile:
    """Switch an agent on or off duty: themselves (anyone who handles tickets) or, for a service manager,
    anyone. Off duty, they get no new tickets from the assignment rules."""
    if agent.pk != getattr(user, "pk", None):
        access.require(user, Cap.MANAGE_SERVICE)
    if not access.can(agent, Cap.HANDLE_TICKETS):
        raise ValidationError({"on_duty": [_("This user does not handle tickets.")]})
    with transaction.atomic():
        profile = profile_for(agent)
        created = profile.pk is None
        before = None if created else profile.on_duty
        if not created and before == bool(on_duty):
            return profile
        if not created:
            _lock(AgentProfile, profile, None)  # a manager's profile form loaded before this switch is stale now
        profile.on_duty = bool(on_duty)
        profile.save()
        audit.record(
            A.CREATE if created else A.UPDATE,
            profile,
            user=user,
            changes={"on_duty": [before, profile.on_duty]},
        )
    return profile


def seed_demo() -> dict[str, int]:
    """The demo teams, agent profiles and rules (see routing_demo.py); called by `pharmacrm demo`."""
    from .routing_demo import seed_demo as seed

    return seed()
