"""Demo assignment settings for `pharmacrm demo`: two service teams of the demo users, their agent profiles
and three assignment rules. Idempotent: running it again changes nothing that exists."""

from __future__ import annotations

from django.db import transaction

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry, Team, User

from .choices import AssignMethod
from .models import AgentProfile, AssignmentRule, TicketCategory

HOTLINE = "客服热线组"
MEDICAL = "医学信息组"
TEAMS = {  # team → (lead, members)
    HOTLINE: ("manager", ("agent", "support", "aftersales", "expert")),
    MEDICAL: ("expert", ("expert", "agent")),
}
PROFILES = {  # username → (skills by category code; empty = every category, most open tickets)
    "agent": ((), 40),
    "expert": (("medication_error", "adverse_reaction", "drug_info", "usage_guidance", "product_use"), 25),
    "support": (("product_use", "order_delivery", "drug_info", "other"), 30),
    "aftersales": (("order_delivery", "service_process", "service_attitude", "relationship", "other"), 30),
}
RULES = [  # name, position, category code, team, method
    ("用药差错 → 医学信息组", 10, "medication_error", MEDICAL, AssignMethod.LEAST_LOADED),
    ("不良反应 → 医学信息组", 20, "adverse_reaction", MEDICAL, AssignMethod.LEAST_LOADED),
    ("其他问题 → 客服热线组（轮流分配）", 100, None, HOTLINE, AssignMethod.ROUND_ROBIN),
]


def seed_demo() -> dict[str, int]:
    """Create the demo teams, agent profiles and rules where missing; returns what was created."""
    users = {u.username: u for u in User.objects.filter(username__in=[*PROFILES, "manager"])}
    categories = {c.code: c for c in TicketCategory.objects.all()}
    created = {"teams": 0, "profiles": 0, "rules": 0}
    with transaction.atomic():
        teams = {}
        for name, (lead, members) in TEAMS.items():
            team, new = Team.objects.get_or_create(name=name, defaults={"lead": users.get(lead)})
            created["teams"] += int(new)
            team.members.add(*(users[m] for m in members if m in users))
            teams[name] = team
        for username, (skills, max_open) in PROFILES.items():
            user = users.get(username)
            if user is None:
                continue
            profile, new = AgentProfile.objects.get_or_create(user=user, defaults={"max_open": max_open})
            if new:
                profile.skills.set([categories[c] for c in skills if c in categories])
                created["profiles"] += 1
        for name, position, category, team, method in RULES:
            if category is not None and category not in categories:
                continue
            _rule, new = AssignmentRule.objects.get_or_create(
                name=name, defaults={"position": position, "category": categories.get(category) if category else None,
                                     "team": teams[team], "method": method},
            )  # fmt: skip
            created["rules"] += int(new)
        if any(created.values()):
            audit.record(AuditEntry.Action.IMPORT, ("servicedesk.assignmentrule", "", "demo"), actor_name="demo",
                         created=created)  # fmt: skip
    return created
