"""Demo loyalty programme for `pharmacrm demo`: about forty members among the demo pharmacies, distributors and
clinics that buy, on every level, with their points ledger from their demo purchases (the monthly run's own rule,
month by month), a reward catalogue, redemptions in each state and referrals, some converted. Cheap: the members,
the ledger and their audit entries in bulk; only the few redemptions and referrals go through the services.
Deterministic; loaded once (marker `demo:loyalty`)."""

from __future__ import annotations

import datetime as dt
import random

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry, Counter, User
from pharmacrm.sales.models import MonthlyRollup

from . import services
from .models import EntryKind, Level, LevelChange, Member, PointsEntry, Referral

MARKER = "demo:loyalty"
SEED = 4602
MEMBERS = 40
REWARDS = [
    {"name": "返利券 ¥500（下单抵扣）", "kind": "rebate", "points_cost": 500, "value_cny": "500.00"},
    {"name": "返利券 ¥2000（下单抵扣）", "kind": "rebate", "points_cost": 1800, "value_cny": "2000.00"},
    {
        "name": "药师GSP合规培训名额",
        "kind": "training",
        "points_cost": 300,
        "value_cny": "800.00",
        "stock": "20",
    },
    {"name": "新品试用装（10盒）", "kind": "trial", "points_cost": 200, "value_cny": "350.00", "stock": "50"},
    {"name": "季度优先配送", "kind": "delivery", "points_cost": 400, "value_cny": "600.00"},
]


def load(seed: int = SEED) -> int:
    """Returns how many members it made (0 when they are there already or the demo has no buyers)."""
    from pharmacrm.customers.models import Institution

    if Counter.objects.filter(name=MARKER).exists():
        return 0
    users = {
        u.username: u
        for u in User.objects.filter(username__in=["admin", "manager", "kam", "rep"], is_active=True)
    }
    if len(users) < 4:
        return 0
    rng = random.Random(seed)
    today = timezone.localdate()
    last = services.last_month(today)
    buyers = list(
        Institution.objects.active().filter(kind__in=services.eligible_types(), purchase_months__paid_fen__gt=0)
        .distinct().order_by("id").values_list("id", flat=True)
    )  # fmt: skip
    if not buyers:
        return 0
    owned = set(Institution.objects.filter(pk__in=buyers, owner__in=[users["rep"], users["kam"]])
                .values_list("id", flat=True))  # fmt: skip
    # the reps' and key-account managers' customers first, so that they find members of their own; two buyers are
    # left out, to be the referrals that converted
    chosen = sorted(buyers, key=lambda pk: (pk not in owned, pk))[: min(MEMBERS, max(len(buyers) - 2, 1))]
    joined = {pk: today - dt.timedelta(days=rng.randint(420, 800)) for pk in chosen}
    totals = services.twelve_months_fen(chosen, last)
    paid = {}
    for pk, month, fen in MonthlyRollup.objects.filter(
        institution_id__in=chosen, month__lte=last
    ).values_list("institution_id", "month", "paid_fen"):
        if month >= services.month_of(joined[pk]):
            paid.setdefault(pk, []).append((month, fen))
    with transaction.atomic():
        first = Counter.allocate("loyalty:HY", len(chosen))
        members = []
        for i, pk in enumerate(chosen):
            level = services.level_for(totals.get(pk, 0))
            members.append(Member(number=f"HY-{first + i:06d}", institution_id=pk, joined_on=joined[pk],
                                  counts_from=services.month_of(joined[pk]), level=level, level_since=joined[pk],
                                  joined_by=users["manager"]))  # fmt: skip
        Member.objects.bulk_create(members)
        members = list(Member.objects.filter(institution_id__in=chosen).order_by("pk"))
        history, entries = [], []
        for member in members:
            history.append(LevelChange(member=member, new_level=member.level, changed_on=member.joined_on,
                                       basis_fen=totals.get(member.institution_id, 0)))  # fmt: skip
            credited = 0
            for month, fen in sorted(paid.get(member.institution_id, [])):
                hundreds = max(fen // 10000, 0)
                points = int(
                    hundreds * settings.LOYALTY_POINTS_PER_100_YUAN * services.MULTIPLIER[Level(member.level)]
                )
                credited += hundreds * 10000
                if points:
                    entries.append(PointsEntry(member=member, kind=EntryKind.EARN, points=points, month=month,
                                               basis_fen=hundreds * 10000))  # fmt: skip
            member.credited_fen, member.earned_through = credited, last
        Member.objects.bulk_update(members, ["credited_fen", "earned_through"])
        LevelChange.objects.bulk_create(history)
        PointsEntry.objects.bulk_create(entries, batch_size=2000)
        audit.record_many(AuditEntry.Action.CREATE, [
            (m, {"number": [None, m.number], "institution": [None, m.institution_id], "level": [None, m.level]})
            for m in members], user=users["manager"])  # fmt: skip
        audit.record_many(AuditEntry.Action.CREATE, [
            (e, {"member": [None, e.member_id], "points": [None, e.points], "month": [None, e.month]})
            for e in entries], actor_name="system")  # fmt: skip
        rewards = [services.create_reward(users["manager"], r) for r in REWARDS]
        _redemptions(rng, users, members, rewards)
        _referrals(users, members, chosen, today)
        Counter.objects.create(name=MARKER, value=len(members))
    services.referral_rewards()  # the converted referrals earn their points, as the nightly run would
    return len(members)


def _redemptions(rng, users, members, rewards) -> None:
    """Two requests in each state: awaiting approval, approved, rejected, fulfilled — asked by the manager, decided by
    the administrator (four eyes)."""
    rich = sorted(members, key=lambda m: -services.balance(m))[:8]
    for i in range(8):
        member = rich[i % len(rich)]
        have = services.balance(member)
        affordable = [r for r in rewards if r.points_cost <= have and (r.stock is None or r.stock > 0)]
        if not affordable:
            continue
        asked = services.request_redemption(users["manager"], member, affordable[i % len(affordable)])
        state = ("requested", "approved", "rejected", "fulfilled")[i % 4]
        if state == "requested":
            continue
        services.decide(users["admin"], asked, approve=state != "rejected",
                        note="本季度返利预算已用完" if state == "rejected" else "")  # fmt: skip
        if state == "fulfilled":
            services.fulfil(
                users["manager"],
                asked,
                rng.choice(["随下批订单配送，客户已签收", "培训名额已确认，学员已报名"]),
            )


def _referrals(users, members, chosen, today) -> None:
    """Referrals of buyers that are not members (converted once the nightly run sees their first payment after the
    referral) and of customers that have not bought (pending)."""
    from pharmacrm.customers.models import Institution

    eligible = Institution.objects.active().filter(kind__in=services.eligible_types()).exclude(pk__in=chosen)
    first_paid = {}
    for pk, month in (MonthlyRollup.objects.filter(institution__in=eligible, paid_fen__gt=0).order_by("month")
                      .values_list("institution_id", "month")):  # fmt: skip
        first_paid.setdefault(pk, month)
    converted = sorted(first_paid)
    pending = list(eligible.exclude(pk__in=list(first_paid)).exclude(purchase_months__isnull=False)
                   .order_by("id").values_list("id", flat=True)[:3])  # fmt: skip
    rows = []
    for i, pk in enumerate(converted[:4]):
        month = first_paid[pk]
        rows.append(Referral(referrer=members[i % len(members)], referred_id=pk, referred_on=services.add_months(month, -1) + dt.timedelta(
            days=14), recorded_by=users["manager"], note="老客户介绍"))  # fmt: skip
    for i, pk in enumerate(pending):
        rows.append(Referral(referrer=members[(4 + i) % len(members)], referred_id=pk, referred_on=today - dt.timedelta(days=10 * (i + 1)),
                             recorded_by=users["manager"], note="区域连锁药房，待首单"))  # fmt: skip
    Referral.objects.bulk_create(rows)
    audit.record_many(AuditEntry.Action.CREATE, [
        (r, {"referrer": [None, r.referrer_id], "referred": [None, r.referred_id]})
        for r in Referral.objects.filter(referred_id__in=[r.referred_id for r in rows])], user=users["manager"])  # fmt: skip
