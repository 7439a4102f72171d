"""The loyalty programme (客户忠诚度计划, seed 000 §6.2–6.3): points from the purchase rollups, computed by hand; the
monthly run changing nothing when run again; expiry; level thresholds and their history; a redemption that would
overdraw refused (and two at once on PostgreSQL); four-eyes approval; an ineligible customer refused with the
reason; a referral claimed twice refused naming the first referrer; a referral rewarded once — on SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers import services as customers
from pharmacrm.loyalty import services
from pharmacrm.loyalty.models import (
    EntryKind,
    Level,
    LevelChange,
    Member,
    MemberStatus,
    PointsEntry,
    Redemption,
    RedemptionStatus,
    ReferralStatus,
)
from pharmacrm.sales.models import MonthlyRollup

D = dt.date


def pharmacy(admin, region, name, owner=None, team=None, kind="pharmacy"):
    return customers.create_institution(admin, {"name": name, "kind": kind, "region": region,
                                                "owner": owner, "team": team})  # fmt: skip


def rollup(institution, month, *, amount_fen=0, paid_fen=0):
    return MonthlyRollup.objects.create(
        institution=institution, month=month, amount_fen=amount_fen, paid_fen=paid_fen
    )


@pytest.fixture
def shop(users, beijing, team_north):
    """同仁堂大药房 (the rep's North team's pharmacy)."""
    return pharmacy(users["admin"], beijing, "同仁堂大药房朝阳店", owner=users["rep"], team=team_north)


@pytest.fixture
def member(users, shop):
    return services.join(users["rep"], shop, today=D(2026, 3, 10))


@pytest.fixture
def reward(users):
    return services.create_reward(users["manager"], {"name": "返利券 ¥500", "kind": "rebate", "points_cost": "80",
                                                     "value_cny": "500.00", "stock": ""})  # fmt: skip


def give(member, points, month=None, kind=EntryKind.EARN):
    month = month or D(2026, 3, 1)
    return PointsEntry.objects.create(member=member, kind=kind, points=points, month=month)


# --- joining ---------------------------------------------------------------------------------------------------


def test_a_member_is_numbered_and_its_joining_audited(users, member, shop):
    assert (
        member.number == "HY-000001"
        and member.status == MemberStatus.ACTIVE
        and member.level == Level.STANDARD
    )
    assert member.counts_from == D(2026, 3, 1)
    entry = AuditEntry.objects.get(object_type="loyalty.member", action=AuditEntry.Action.CREATE)
    assert entry.actor == users["rep"] and entry.changes["number"] == [None, "HY-000001"]
    with pytest.raises(ValidationError) as e, translation.override("en"):
        services.join(users["manager"], shop)
    assert "is a member already (HY-000001)" in e.value.message_dict["institution"][0]


def test_a_customer_joining_keeps_in_its_level_history_the_purchases_its_level_was_set_from(users, shop):
    # the 12 months before March 2026 (March 2025 – February 2026); February 2025 lies outside
    rollup(shop, D(2025, 2, 1), amount_fen=99_900_000)
    rollup(shop, D(2026, 1, 1), amount_fen=12_345_650)
    member = services.join(users["rep"], shop, today=D(2026, 3, 10))
    assert member.level == Level.SILVER
    change = LevelChange.objects.get(member=member)
    # it read 0 (the level history said "¥0" beside a customer joining at Silver)
    assert (change.old_level, change.new_level, change.basis_fen) == ("", Level.SILVER, 12_345_650)


def test_a_hospital_cannot_join_and_is_told_why_in_the_readers_language(users, xiehe, settings):
    with pytest.raises(ValidationError) as e, translation.override("en"):
        services.join(users["manager"], xiehe)
    assert "Hospital customers cannot join the loyalty programme" in e.value.message_dict["institution"][0]
    assert "commercial bribery" in e.value.message_dict["institution"][0]
    with pytest.raises(ValidationError) as e, translation.override("zh-hans"):
        services.join(users["manager"], xiehe)
    assert (
        "医院" in e.value.message_dict["institution"][0]
        and "商业贿赂" in e.value.message_dict["institution"][0]
    )
    assert not Member.objects.exists()
    settings.LOYALTY_ELIGIBLE_TYPES = ["pharmacy", "hospital"]  # the company decided otherwise
    assert services.join(users["manager"], xiehe).number == "HY-000001"


def test_a_rep_enrols_only_their_own_and_their_teams_customers(users, beijing, shop):
    other = pharmacy(users["admin"], beijing, "海淀医保定点药房", owner=users["kam"])
    with pytest.raises((PermissionDenied, ValidationError)):
        services.join(users["rep"], other)
    for role in ("analyst", "auditor", "agent", "pv"):
        with pytest.raises(PermissionDenied):
            services.join(users[role], shop)
    assert services.join(users["kam"], other).institution == other


# --- points ------------------------------------------------------------------------------------------------------


def test_points_from_payments_computed_by_hand_once_per_month(member, shop):
    rollup(shop, D(2026, 2, 1), amount_fen=900_000, paid_fen=500_000)  # before joining: does not count
    rollup(shop, D(2026, 3, 1), amount_fen=1_500_000, paid_fen=1_234_567)  # ¥12,345.67 paid
    assert services.earn(D(2026, 3, 1)) == 1
    assert services.balance(member) == 123  # 123 whole ¥100, 1 point each at the standard level
    member.refresh_from_db()
    assert member.credited_fen == 1_230_000 and member.earned_through == D(2026, 3, 1)
    assert services.earn(D(2026, 3, 1)) == 0 and services.balance(member) == 123  # a rerun changes nothing
    rollup(shop, D(2026, 4, 1), amount_fen=200_000, paid_fen=80_000)
    MonthlyRollup.objects.filter(institution=shop, month=D(2026, 3, 1)).update(
        paid_fen=1_500_000
    )  # paid later
    assert services.earn(D(2026, 4, 1)) == 1
    # ¥15,000 + ¥800 paid since March, ¥12,300 credited before: 35 whole ¥100 (the ¥45.67 left then counts now)
    april = PointsEntry.objects.get(member=member, month=D(2026, 4, 1))
    assert (april.points, april.basis_fen) == (35, 350_000)
    assert services.balance(member) == 158


def test_a_silver_member_earns_one_point_two_per_hundred(member, shop):
    Member.objects.filter(pk=member.pk).update(level=Level.SILVER)
    rollup(shop, D(2026, 3, 1), paid_fen=1_234_567)
    services.earn(D(2026, 3, 1))
    assert services.balance(member) == 147  # 123 × 1.2 = 147.6, rounded down


def test_the_monthly_run_twice_changes_nothing_the_second_time(member, shop, settings):
    settings.LOYALTY_SILVER_YUAN = 10_000
    rollup(shop, D(2026, 4, 1), amount_fen=2_000_000, paid_fen=1_000_000)
    first = services.monthly(today=D(2026, 5, 1))
    assert first["earned"] == 1 and first["levels"] == 1
    ledger, audit, history = (
        PointsEntry.objects.count(),
        AuditEntry.objects.count(),
        LevelChange.objects.count(),
    )
    assert services.monthly(today=D(2026, 5, 1)) == {"joined": 0, "earned": 0, "levels": 0, "expired": 0}
    assert (PointsEntry.objects.count(), AuditEntry.objects.count(), LevelChange.objects.count()) == (
        ledger, audit, history)  # fmt: skip
    member.refresh_from_db()
    assert member.level == Level.SILVER and services.balance(member) == 100


def test_points_older_than_the_setting_expire_at_the_end_of_a_month_oldest_first(users, member, settings):
    settings.LOYALTY_POINTS_EXPIRE_MONTHS = 24
    give(member, 100, D(2024, 1, 1))
    give(member, 50, D(2024, 6, 1))
    give(member, -30, D(2025, 1, 1), kind=EntryKind.REDEEM)  # spent from the oldest points
    assert services.expire(D(2025, 12, 1)) == 0  # nothing 24 months old yet
    assert services.expire(D(2026, 1, 1)) == 1
    assert services.balance(member) == 50  # January 2024's 100, less the 30 spent, expired
    assert services.expire(D(2026, 1, 1)) == 0  # once
    assert services.expire(D(2026, 6, 1)) == 1 and services.balance(member) == 0
    assert list(PointsEntry.objects.filter(kind=EntryKind.EXPIRE).order_by("month").values_list("points", flat=True)) == [
        -70, -50]  # fmt: skip


@pytest.mark.parametrize(
    "yuan, level",
    [
        (0, Level.STANDARD),
        (99_999, Level.STANDARD),
        (100_000, Level.SILVER),
        (499_999, Level.SILVER),
        (500_000, Level.GOLD),
        (2_000_000, Level.PLATINUM),
    ],
)
def test_level_thresholds(yuan, level):
    assert services.level_for(yuan * 100) == level


def test_levels_follow_the_last_twelve_months_and_their_changes_are_kept(member, shop):
    rollup(shop, D(2025, 4, 1), amount_fen=60_000_000)  # 13 months before May 2026: outside the window
    rollup(shop, D(2025, 5, 1), amount_fen=30_000_000)
    rollup(shop, D(2026, 4, 1), amount_fen=25_000_000)  # ¥550,000 in the window: gold
    assert services.recompute_levels(D(2026, 4, 1), today=D(2026, 5, 1)) == 1
    member.refresh_from_db()
    assert member.level == Level.GOLD and member.level_since == D(2026, 5, 1)
    change = LevelChange.objects.filter(member=member).first()
    assert (change.old_level, change.new_level, change.basis_fen) == (Level.STANDARD, Level.GOLD, 55_000_000)
    assert AuditEntry.objects.filter(
        object_type="loyalty.member", changes__level=["standard", "gold"]
    ).exists()
    assert services.recompute_levels(D(2026, 5, 1), today=D(2026, 6, 1)) == 1  # May 2025 left the window
    member.refresh_from_db()
    assert member.level == Level.SILVER


def test_a_manual_adjustment_needs_a_manager_and_a_reason_and_cannot_overdraw(users, member):
    with pytest.raises(PermissionDenied):
        services.adjust(users["rep"], member, 100, "补录")
    with pytest.raises(ValidationError) as e:
        services.adjust(users["manager"], member, "1.5", "")
    assert set(e.value.message_dict) == {"points", "reason"}
    services.adjust(users["manager"], member, 100, "系统迁移补录")
    with pytest.raises(ValidationError) as e, translation.override("en"):
        services.adjust(users["manager"], member, -101, "更正")
    assert "The balance is 100 points" in e.value.message_dict["points"][0]
    assert services.balance(member) == 100


# --- redemptions ----------------------------------------------------------------------------------------------


def test_points_are_reserved_at_request_and_an_overdraw_is_refused(users, member, reward):
    give(member, 100)
    first = services.request_redemption(users["rep"], member, reward)
    assert (
        first.status == RedemptionStatus.REQUESTED and first.points == 80 and services.balance(member) == 20
    )
    with pytest.raises(ValidationError) as e, translation.override("en"):
        services.request_redemption(users["rep"], member, reward)
    assert "Not enough points: the balance is 20, the reward costs 80." in e.value.message_dict["reward"]
    assert Redemption.objects.count() == 1 and services.balance(member) == 20


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_requests_at_once_the_second_waits_and_is_refused(users, beijing, team_north):
    from tests.concurrency import held_while

    shop = pharmacy(users["admin"], beijing, "同仁堂大药房", owner=users["rep"], team=team_north)
    member = services.join(users["rep"], shop)
    reward = services.create_reward(users["manager"], {"name": "试用装", "kind": "trial", "points_cost": 80,
                                                       "value_cny": "300"})  # fmt: skip
    other = services.create_reward(users["manager"], {"name": "培训名额", "kind": "training", "points_cost": 80,
                                                      "value_cny": "800"})  # fmt: skip
    give(member, 100)
    out = []

    def second():
        try:
            out.append(services.request_redemption(users["manager"], member, other).pk)
        except ValidationError as e:
            out.append(e.message_dict)

    held_while(lambda: services.request_redemption(users["rep"], member, reward), second)
    assert list(out[0]) == ["reward"]
    assert Redemption.objects.count() == 1 and services.balance(member) == 20


def test_four_eyes_the_requester_never_approves_and_a_rejection_returns_the_points(users, member, reward):
    give(member, 200)
    mine = services.request_redemption(users["manager"], member, reward)
    with pytest.raises(PermissionDenied):
        services.decide(users["manager"], mine, approve=True)
    with pytest.raises(PermissionDenied):
        services.decide(users["rep"], mine, approve=True)
    with pytest.raises(ValidationError) as e:
        services.decide(users["admin"], mine, approve=False, note="")
    assert "decision_note" in e.value.message_dict
    services.decide(users["admin"], mine, approve=False, note="不符合兑换条件")
    assert services.balance(member) == 200
    mine.refresh_from_db()
    assert mine.status == RedemptionStatus.REJECTED and mine.decided_by == users["admin"]
    theirs = services.request_redemption(users["rep"], member, reward)
    with pytest.raises(Exception):  # noqa: B017 — a stale version: someone else decided meanwhile
        services.decide(users["manager"], theirs, approve=True, version=theirs.version + 1)
    services.decide(users["manager"], theirs, approve=True, version=theirs.version)
    with pytest.raises(ValidationError):
        services.fulfil(users["rep"], theirs, "")
    services.fulfil(users["rep"], theirs, "随下批订单配送，客户签收", version=theirs.version)
    theirs.refresh_from_db()
    assert theirs.status == RedemptionStatus.FULFILLED and services.balance(member) == 120
    changes = [e.changes.get("status") for e in AuditEntry.objects.filter(object_type="loyalty.redemption")
               .order_by("seq") if e.changes.get("status")]  # fmt: skip
    assert ["approved", "fulfilled"] in changes and ["requested", "approved"] in changes


def test_stock_is_taken_at_request_and_given_back_on_rejection(users, member):
    give(member, 1000)
    place = services.create_reward(users["manager"], {"name": "培训名额", "kind": "training", "points_cost": 100,
                                                      "value_cny": "800", "stock": "1"})  # fmt: skip
    asked = services.request_redemption(users["rep"], member, place)
    with pytest.raises(ValidationError) as e:
        services.request_redemption(users["rep"], member, place)
    assert "quantity" in e.value.message_dict
    services.decide(users["manager"], asked, approve=False, note="名额已满")
    place.refresh_from_db()
    assert place.stock == 1


# --- referrals --------------------------------------------------------------------------------------------------


def test_a_customer_is_referred_once_the_second_claim_names_the_first(users, beijing, member, team_north):
    new = pharmacy(users["admin"], beijing, "新开连锁药房", owner=users["rep"])
    other_shop = pharmacy(users["admin"], beijing, "医药配送公司", owner=users["rep"], team=team_north,
                          kind="distributor")  # fmt: skip
    other = services.join(users["rep"], other_shop)
    services.refer(users["rep"], member, new)
    with pytest.raises(ValidationError) as e, translation.override("en"):
        services.refer(users["rep"], other, new)
    assert (
        f"was referred already, by {member.number} 同仁堂大药房朝阳店" in e.value.message_dict["referred"][0]
    )
    with pytest.raises(ValidationError) as e:
        services.refer(users["rep"], member, member.institution)
    assert "referred" in e.value.message_dict


def test_a_customer_that_buys_already_is_not_a_referral(users, beijing, member):
    buyer = pharmacy(users["admin"], beijing, "老客户药房", owner=users["rep"])
    rollup(buyer, D(2026, 1, 1), amount_fen=10_000, paid_fen=10_000)
    with pytest.raises(ValidationError) as e, translation.override("en"):
        services.refer(users["rep"], member, buyer)
    assert "buys from us already" in e.value.message_dict["referred"][0]


def test_the_referrer_earns_once_when_the_referred_customer_first_pays(users, beijing, member, settings):
    settings.LOYALTY_REFERRAL_POINTS = 500
    new = pharmacy(users["admin"], beijing, "新开连锁药房", owner=users["rep"])
    referral = services.refer(users["rep"], member, new, today=D(2026, 4, 2))
    rollup(new, D(2026, 4, 1), amount_fen=50_000, paid_fen=0)  # ordered, not paid yet
    assert services.referral_rewards() == 0 and services.balance(member) == 0
    MonthlyRollup.objects.filter(institution=new).update(paid_fen=50_000)
    assert services.referral_rewards() == 1
    assert services.referral_rewards() == 0
    referral.refresh_from_db()
    assert referral.status == ReferralStatus.CONVERTED and referral.converted_month == D(2026, 4, 1)
    assert services.balance(member) == 500
    assert PointsEntry.objects.filter(kind=EntryKind.REFERRAL).count() == 1


def test_reward_values_are_checked_by_field(users):
    with pytest.raises(ValidationError) as e:
        services.create_reward(users["manager"], {"name": "", "kind": "cash", "points_cost": "0", "value_cny": "abc",
                                                  "stock": "-1"})  # fmt: skip
    assert set(e.value.message_dict) == {"name", "kind", "points_cost", "value_cny", "stock"}
    with pytest.raises(PermissionDenied):
        services.create_reward(
            users["rep"], {"name": "x", "kind": "trial", "points_cost": 1, "value_cny": "1"}
        )
    assert Decimal("1") == services.MULTIPLIER[Level.STANDARD]


def test_points_and_values_typed_with_a_chinese_input_method_are_read_and_other_numbers_refused(users, member):
    reward = services.create_reward(users["manager"], {"name": "试用装", "kind": "trial", "points_cost": "１,５００",
                                                       "value_cny": "￥500.00", "stock": "２０"})  # fmt: skip
    assert (reward.points_cost, reward.value_cny, reward.stock) == (1500, Decimal("500.00"), 20)
    services.adjust(users["manager"], member, "２００", "系统迁移补录")
    services.adjust(users["manager"], member, "－５０", "更正")
    assert services.balance(member) == 150
    for value in ("1_000", "٥٠٠", "1.2万", "五百"):  # 1_000 and Arabic-Indic ٥٠٠ were stored as 1000 and 500
        with pytest.raises(ValidationError) as e:
            services.create_reward(users["manager"], {"name": "返利券", "kind": "rebate", "points_cost": "10",
                                                      "value_cny": value})  # fmt: skip
        assert set(e.value.message_dict) == {"value_cny"}


# --- a customer merge ------------------------------------------------------------------------------------------


def test_a_merge_moves_the_duplicates_membership_and_referral_to_the_survivor(users, beijing, shop, team_north):
    """A membership and a referral are one per customer: a merge moved only the records a customer has many of, so
    the duplicate's membership — points and all — stayed on the merged, inactive record."""
    survivor = pharmacy(users["admin"], beijing, "同仁堂大药房(朝阳店)", owner=users["rep"], team=team_north)
    member = services.join(users["rep"], shop, today=D(2026, 3, 10))
    give(member, 120)
    newcomer = pharmacy(users["admin"], beijing, "国大药房望京店", owner=users["rep"], team=team_north)
    copy = pharmacy(users["admin"], beijing, "国大药房(望京店)", owner=users["rep"], team=team_north)
    referral = services.refer(users["rep"], member, copy, today=D(2026, 4, 1))

    customers.merge(users["admin"], survivor, shop)
    customers.merge(users["admin"], newcomer, copy)

    member.refresh_from_db()
    referral.refresh_from_db()
    assert member.institution_id == survivor.pk and services.balance(member) == 120
    assert referral.referred_id == newcomer.pk


def test_a_merge_of_two_members_is_refused_and_changes_nothing(users, beijing, shop, team_north):
    other = pharmacy(users["admin"], beijing, "同仁堂大药房(朝阳店)", owner=users["rep"], team=team_north)
    first = services.join(users["rep"], shop, today=D(2026, 3, 10))
    second = services.join(users["rep"], other, today=D(2026, 3, 10))

    with translation.override("en"), pytest.raises(ValidationError, match="Both customers are members of the loyalty"):
        customers.merge(users["admin"], other, shop)

    shop.refresh_from_db()
    assert shop.merged_into_id is None
    assert Member.objects.get(pk=first.pk).institution_id == shop.pk
    assert Member.objects.get(pk=second.pk).institution_id == other.pk


# --- the level's privileges, applied ---------------------------------------------------------------------------


def test_a_priority_service_members_tickets_are_boosted_as_a_vips_and_a_suspended_members_are_not(users, shop,
                                                                                                   member):
    """The level table promises priority service from Silver on: the service desk boosts those members' tickets one
    step, the way it boosts a VIP's or key account's (the same rule, the history saying why); a Standard member's, or
    a suspended or departed member's, keep the category's priority."""
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.choices import EventKind

    def ticket():
        return desk.create_ticket(users["agent"], {"subject": "咨询用法", "channel": "phone", "category": "drug_info",
                                                   "institution": shop})  # fmt: skip

    assert (ticket().priority, member.level) == ("normal", Level.STANDARD)  # 普通: no boost
    Member.objects.filter(pk=member.pk).update(level=Level.PLATINUM)
    boosted = ticket()
    assert (boosted.priority, boosted.boosted) == ("high", True)
    reason = boosted.events.get(kind=EventKind.PRIORITY).data["reason"]
    assert member.number in reason
    for status in (MemberStatus.SUSPENDED, MemberStatus.LEFT):
        Member.objects.filter(pk=member.pk).update(status=status)
        assert (ticket().priority, ticket().boosted) == ("normal", False)
