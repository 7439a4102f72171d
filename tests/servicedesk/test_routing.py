"""Assignment of new tickets: rules by category, product, customer tier and region; round robin and least
loaded among agents with the skill who are on duty and below their load; the key-account hook; the VIP
priority boost; and the whole intake through services.create_ticket."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from pharmacrm.core.models import AuditEntry, Region, Team
from pharmacrm.core.roles import Role
from pharmacrm.customers import services as customer_services
from pharmacrm.servicedesk import routing, services
from pharmacrm.servicedesk.choices import AssignMethod, EventKind, Status
from pharmacrm.servicedesk.models import (
    AgentProfile,
    AssignmentRule,
    Product,
    Ticket,
    TicketCategory,
    TicketEvent,
)


@pytest.fixture
def desk(make_user):
    """A service team of three agents (a1 < a2 < a3 by id) led by a manager."""
    lead = make_user("lead", Role.MANAGER)
    team = Team.objects.create(name="客服一组", lead=lead)
    agents = [make_user(f"a{i}", Role.AGENT, teams=[team]) for i in (1, 2, 3)]
    return team, agents


@pytest.fixture
def product(db):
    return Product.objects.create(
        brand_name="络活喜", generic_name="苯磺酸氨氯地平片", approval_number="国药准字H10950224",
        dosage_form="片剂", strength="5mg",
    )  # fmt: skip


def cat(code):
    return TicketCategory.objects.get(code=code)


def new_ticket(category="drug_info", *, institution=None, person=None, product=None, priority=None, **kw):
    """An unsaved ticket as create_ticket hands it to route()."""
    c = cat(category)
    return Ticket(
        subject="x",
        channel="phone",
        category=c,
        priority=priority or c.default_priority,
        complexity=c.default_complexity,
        institution=institution,
        person=person,
        product=product,
        **kw,
    )


def rule(team, name="r", **kw):
    return AssignmentRule.objects.create(name=name, team=team, **kw)


def open_ticket(users, xiehe, assignee, n=1):
    for _ in range(n):
        services.create_ticket(users["admin"], {"subject": "负载", "channel": "phone", "category": "drug_info",
                                                "institution": xiehe, "assignee": assignee})  # fmt: skip


# --- rules ---------------------------------------------------------------------------------------------


def test_rules_match_by_category_in_position_order(desk, make_user):
    team, _agents = desk
    other = Team.objects.create(name="医学组")
    rule(team, "catch-all", position=50, method=AssignMethod.QUEUE)
    rule(other, "adr", position=10, category=cat("adverse_reaction"), method=AssignMethod.QUEUE)
    assert routing.matching_rule(new_ticket("adverse_reaction")).team == other
    assert routing.matching_rule(new_ticket("drug_info")).team == team


def test_inactive_rules_are_ignored(desk):
    team, _ = desk
    rule(team, "off", active=False)
    assert routing.matching_rule(new_ticket()) is None


def test_a_rule_on_a_parent_category_covers_its_children(desk):
    team, _ = desk
    parent = cat("product_use")
    child = TicketCategory.objects.create(code="pen_fault", name="注射笔故障", parent=parent,
                                          default_priority="normal", default_complexity="general")  # fmt: skip
    rule(team, "product", category=parent)
    assert routing.matching_rule(new_ticket(child.code)).team == team


def test_rules_match_by_product(desk, product):
    team, _ = desk
    other = Team.objects.create(name="产品组")
    rule(other, "product", position=1, product=product)
    rule(team, "rest", position=2)
    assert routing.matching_rule(new_ticket(product=product)).team == other
    assert routing.matching_rule(new_ticket()).team == team


def test_rules_match_by_customer_tier_of_person_or_institution(desk, xiehe, ruijin, admin_user):
    team, _ = desk
    vip_team = Team.objects.create(name="VIP组")
    rule(vip_team, "vip", position=1, customer_tier="vip")
    customer_services.update_institution(admin_user, xiehe, {"tier": "vip"}, version=xiehe.version)
    xiehe.refresh_from_db()
    doctor = xiehe.people.first()
    assert routing.matching_rule(new_ticket(institution=xiehe)).team == vip_team
    assert (
        routing.matching_rule(new_ticket(institution=xiehe, person=doctor)).team == vip_team
    )  # their hospital's
    assert routing.matching_rule(new_ticket(institution=ruijin)) is None


@pytest.mark.parametrize(("code", "matches"), [("110000", True), ("110100", True), ("110105", True),
                                               ("110101", False), ("310000", False)])  # fmt: skip
def test_rules_match_when_the_customer_lies_inside_the_region(desk, xiehe, code, matches):
    team, _ = desk
    rule(team, "region", region=Region.objects.get(code=code))
    doctor = xiehe.people.first()  # 朝阳区 110105 through the hospital
    assert (routing.matching_rule(new_ticket(institution=xiehe)) is not None) is matches
    assert (routing.matching_rule(new_ticket(institution=xiehe, person=doctor)) is not None) is matches


def test_an_unidentified_caller_matches_no_region_rule(desk):
    team, _ = desk
    rule(team, "region", region=Region.objects.get(code="110000"))
    assert routing.matching_rule(new_ticket(caller_phone="13800000000")) is None


# --- choosing an agent -----------------------------------------------------------------------------------


def test_round_robin_rotates_fairly(desk, xiehe):
    team, agents = desk
    r = rule(team, "rr", method=AssignMethod.ROUND_ROBIN)
    picks = [routing.pick_agent(team, new_ticket(institution=xiehe), rule=r) for _ in range(7)]
    assert picks == [agents[0], agents[1], agents[2], agents[0], agents[1], agents[2], agents[0]]
    assert AssignmentRule.objects.get(pk=r.pk).last_assigned == agents[0]


def test_round_robin_with_a_stale_pointer_does_not_pick_the_same_agent_twice(desk, xiehe):
    """Two intakes that read the rule at the same time: the second's conditional update fails, it reads the
    moved pointer and takes the next agent."""
    team, agents = desk
    r = rule(team, "rr", method=AssignMethod.ROUND_ROBIN)
    stale = AssignmentRule.objects.get(pk=r.pk)
    first = routing.pick_agent(team, new_ticket(), rule=r)
    second = routing.pick_agent(team, new_ticket(), rule=stale)
    assert (first, second) == (agents[0], agents[1])


def test_round_robin_skips_agents_off_duty(desk):
    team, agents = desk
    AgentProfile.objects.create(user=agents[1], on_duty=False)
    r = rule(team, "rr", method=AssignMethod.ROUND_ROBIN)
    picks = [routing.pick_agent(team, new_ticket(), rule=r) for _ in range(4)]
    assert picks == [agents[0], agents[2], agents[0], agents[2]]


def test_least_loaded_picks_the_lightest(desk, users, xiehe):
    team, agents = desk
    open_ticket(users, xiehe, agents[0], 2)
    open_ticket(users, xiehe, agents[1], 1)
    open_ticket(users, xiehe, agents[2], 3)
    assert routing.pick_agent(team, new_ticket()) == agents[1]


def test_closed_tickets_do_not_count_as_load(desk, users, xiehe):
    team, agents = desk
    open_ticket(users, xiehe, agents[0], 1)
    done = Ticket.objects.get(assignee=agents[0])
    Ticket.objects.filter(pk=done.pk).update(status=Status.CLOSED)
    open_ticket(users, xiehe, agents[1], 1)
    open_ticket(users, xiehe, agents[2], 1)
    assert routing.pick_agent(team, new_ticket()) == agents[0]


def test_skills_products_duty_and_max_open_are_respected(desk, users, xiehe, product):
    team, (a1, a2, a3) = desk
    AgentProfile.objects.create(user=a1).skills.set([cat("order_delivery")])  # not drug_info
    p2 = AgentProfile.objects.create(user=a2)
    p2.skills.set([cat("drug_info")])
    p2.products.set([product])
    AgentProfile.objects.create(user=a3, max_open=1)
    assert (
        routing.pick_agent(team, new_ticket("drug_info")) == a2
    )  # a1 lacks the skill; a2 and a3 tie: lower id
    assert routing.pick_agent(team, new_ticket("order_delivery")) == a1
    other = Product.objects.create(brand_name="立普妥", generic_name="阿托伐他汀钙片", approval_number="国药准字J20030048",
                                   dosage_form="片剂", strength="20mg")  # fmt: skip
    assert routing.pick_agent(team, new_ticket("drug_info", product=other)) == a3  # a2 does not know it
    open_ticket(users, xiehe, a3, 1)
    assert routing.pick_agent(team, new_ticket("drug_info", product=other)) is None  # a3 at max_open
    AgentProfile.objects.filter(user=a2).update(on_duty=False)
    assert routing.pick_agent(team, new_ticket("drug_info", product=product)) is None


def test_only_members_who_may_handle_tickets_are_picked(desk, make_user):
    team, agents = desk
    analyst = make_user("analyst2", Role.ANALYST, teams=[team])
    inactive = make_user("gone", Role.AGENT, teams=[team])
    inactive.is_active = False
    inactive.save()
    sneaky = make_user("aud", Role.AGENT, Role.AUDITOR, teams=[team])
    for u in agents:
        AgentProfile.objects.create(user=u, on_duty=False)
    assert routing.pick_agent(team, new_ticket()) is None
    assert {analyst, inactive, sneaky}.isdisjoint(
        {u for u, _n in routing.eligible_agents(team, new_ticket())}
    )


def test_exclude_leaves_out_the_current_holder(desk):
    team, agents = desk
    assert routing.pick_agent(team, new_ticket(), exclude=[agents[0]]) == agents[1]


# --- route(): hook, boost, queue ---------------------------------------------------------------------------


def test_key_account_hook_wins_over_rules_and_boosts(desk, xiehe):
    team, agents = desk
    rule(team, "all", method=AssignMethod.ROUND_ROBIN)
    ka_team = Team.objects.create(name="大客户服务组")
    ka_agent = agents[2]
    ka_agent.teams.add(ka_team)

    def hook(ticket):
        return ka_team if ticket.institution_id == xiehe.pk else None

    routing.register_key_account_team(hook)
    try:
        ticket = new_ticket("service_process", institution=xiehe)  # low
        routing.route(None, ticket)
        assert (ticket.team, ticket.assignee) == (ka_team, ka_agent)
        assert (ticket.priority, ticket.boosted) == ("normal", True)
        assert ticket._routing == {"rule": None, "method": "key_account", "boosted_from": "low"}
    finally:
        routing.unregister_key_account_team(hook)
    ticket = new_ticket("service_process", institution=xiehe)
    routing.route(None, ticket)
    assert ticket.team == team and not ticket.boosted


@pytest.mark.parametrize(("tier", "before", "after"), [("vip", "low", "normal"), ("key", "normal", "high"),
                                                        ("vip", "high", "high"), ("vip", "urgent", "urgent"),
                                                        ("regular", "low", "low")])  # fmt: skip
def test_vip_and_key_account_tickets_get_one_step_more_urgent_up_to_high(xiehe, tier, before, after):
    xiehe.tier = tier
    ticket = new_ticket("drug_info", institution=xiehe, priority=before)
    routing.route(None, ticket)
    assert ticket.priority == after
    assert ticket.boosted is (before != after)
    assert ticket._routing["boosted_from"] == (before if before != after else None)


def test_routing_takes_a_fixed_number_of_queries(desk, make_user, xiehe, django_assert_max_num_queries):
    team, agents = desk
    for i in range(10):
        AgentProfile.objects.create(user=make_user(f"extra{i}", Role.AGENT, teams=[team])).skills.set(
            [cat("drug_info")]
        )
    rule(team, "rr", method=AssignMethod.ROUND_ROBIN)
    ticket = new_ticket(institution=xiehe)
    # rules, members, profiles, skills, load, the pointer's update; the loyalty membership (the boost's hook)
    with django_assert_max_num_queries(8):
        routing.route(None, ticket)
    assert ticket.assignee == agents[0]


def test_no_eligible_agent_leaves_the_ticket_in_the_team_queue(desk):
    team, agents = desk
    AgentProfile.objects.bulk_create([AgentProfile(user=u, on_duty=False) for u in agents])
    r = rule(team, "rr", method=AssignMethod.ROUND_ROBIN)
    ticket = new_ticket()
    routing.route(None, ticket)
    assert (ticket.team, ticket.assignee) == (team, None)
    assert ticket._routing == {"rule": r.pk, "method": "round_robin", "boosted_from": None}


def test_a_queue_rule_assigns_no_agent(desk):
    team, _ = desk
    rule(team, "q", method=AssignMethod.QUEUE)
    ticket = new_ticket()
    routing.route(None, ticket)
    assert (ticket.team, ticket.assignee) == (team, None)


def test_what_the_caller_chose_is_kept(desk, make_user):
    team, agents = desk
    other = Team.objects.create(name="别的组")
    rule(team, "rr", method=AssignMethod.ROUND_ROBIN)
    chosen = new_ticket(team=other)
    routing.route(None, chosen)
    assert (chosen.team, chosen.assignee) == (other, None)
    by_hand = new_ticket(assignee=agents[2])
    routing.route(None, by_hand)
    assert (by_hand.team, by_hand.assignee) == (team, agents[2])
    assert AssignmentRule.objects.get(name="rr").last_assigned is None  # the pointer did not move


def test_without_rules_nothing_is_routed(db):
    ticket = new_ticket()
    routing.route(None, ticket)
    assert (ticket.team, ticket.assignee) == (None, None)
    assert ticket._routing == {"rule": None, "method": None, "boosted_from": None}


# --- end to end through create_ticket ------------------------------------------------------------------------


def test_create_ticket_routes_to_the_rule_team_and_agent(desk, users, xiehe):
    team, agents = desk
    rule(team, "rr", method=AssignMethod.ROUND_ROBIN)
    data = {"subject": "咨询", "channel": "phone", "category": "drug_info", "institution": xiehe}
    first = services.create_ticket(users["admin"], data)
    second = services.create_ticket(users["agent"], data)
    assert [(t.team, t.assignee, t.status) for t in (first, second)] == [
        (team, agents[0], Status.ASSIGNED),
        (team, agents[1], Status.ASSIGNED),
    ]
    stored = Ticket.objects.get(pk=first.pk)
    assert (stored.team_id, stored.assignee_id) == (team.pk, agents[0].pk)
    assert TicketEvent.objects.filter(ticket=first, kind=EventKind.STATUS, to_status=Status.ASSIGNED).exists()


def test_create_ticket_boosts_a_vip_ticket_and_its_deadlines_follow(users, xiehe, admin_user):
    customer_services.update_institution(admin_user, xiehe, {"tier": "vip"}, version=xiehe.version)
    xiehe.refresh_from_db()
    ticket = services.create_ticket(users["agent"], {"subject": "流程", "channel": "phone",
                                                     "category": "service_process", "institution": xiehe})  # fmt: skip
    stored = Ticket.objects.get(pk=ticket.pk)
    assert (stored.priority, stored.boosted) == ("normal", True)
    assert ticket._routing["boosted_from"] == "low"


def test_create_ticket_without_an_agent_goes_to_the_team_queue(desk, users, xiehe):
    team, agents = desk
    for u in agents:
        routing.set_on_duty(u, u, False)
    rule(team, "ll", method=AssignMethod.LEAST_LOADED)
    ticket = services.create_ticket(users["agent"], {"subject": "咨询", "channel": "phone", "category": "drug_info",
                                                     "institution": xiehe})  # fmt: skip
    stored = Ticket.objects.get(pk=ticket.pk)
    assert (stored.team_id, stored.assignee_id, stored.status) == (team.pk, None, Status.NEW)


# --- settings services ---------------------------------------------------------------------------------------


def test_rule_services_check_validate_and_audit(desk, users):
    team, _ = desk
    with pytest.raises(PermissionDenied):
        routing.create_rule(users["agent"], {"name": "x", "team": team})
    with pytest.raises(ValidationError) as e:
        routing.create_rule(users["manager"], {"name": "", "method": "bogus"})
    assert {"name", "method", "team"} <= set(e.value.message_dict)
    a = routing.create_rule(users["manager"], {"name": "a", "team": team})
    b = routing.create_rule(users["manager"], {"name": "b", "team": team})
    assert a.position < b.position
    routing.move_rule(users["manager"], b, "up")
    assert list(AssignmentRule.objects.order_by("position").values_list("name", flat=True)) == ["b", "a"]
    routing.deactivate_rule(users["manager"], a)
    assert not AssignmentRule.objects.get(pk=a.pk).active
    entries = AuditEntry.objects.filter(object_type="servicedesk.assignmentrule")
    assert entries.count() == 4


def test_on_duty_switch_for_oneself_or_by_a_manager(desk, users):
    _team, (a1, a2, _a3) = desk
    routing.set_on_duty(a1, a1, False)
    assert AgentProfile.objects.get(user=a1).on_duty is False
    with pytest.raises(PermissionDenied):
        routing.set_on_duty(a1, a2, False)
    routing.set_on_duty(users["manager"], a2, False)
    assert AgentProfile.objects.get(user=a2).on_duty is False
    with pytest.raises(ValidationError):
        routing.set_on_duty(users["analyst"], users["analyst"], False)
    assert AuditEntry.objects.filter(object_type="servicedesk.agentprofile").count() == 2


def test_profile_service(desk, users, product):
    _team, (a1, *_rest) = desk
    profile = routing.save_profile(users["manager"], a1, {"skills": [cat("drug_info")], "products": [product],
                                                          "max_open": 5, "on_duty": True})  # fmt: skip
    assert list(profile.skills.all()) == [cat("drug_info")] and profile.max_open == 5
    with pytest.raises(ValidationError) as e:
        routing.save_profile(users["manager"], a1, {"max_open": 0})
    assert "max_open" in e.value.message_dict
    with pytest.raises(ValidationError):
        routing.save_profile(users["manager"], users["analyst"], {"max_open": 5})
    with pytest.raises(PermissionDenied):
        routing.save_profile(a1, a1, {"max_open": 50})


def test_seed_demo_is_idempotent(users):
    first = routing.seed_demo()
    assert first["rules"] == 3 and first["profiles"] == 4
    assert routing.seed_demo() == {"teams": 0, "profiles": 0, "rules": 0}
