"""The loyalty programme's rules: who sees and runs what, who may join, levels from the purchase rollups, the points
ledger (append-only, the balance its sum, never below zero under a row lock), redemptions under four-eyes approval,
referrals rewarded once, and the monthly and nightly runs. Every change is audited. The pages and the API call only
this module (docs/loyalty.md)."""

from __future__ import annotations

import datetime as dt
import unicodedata
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Case, Count, F, IntegerField, Q, Sum, When
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access, audit, wording
from pharmacrm.core.deferred import Message
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry, Counter, User
from pharmacrm.core.numbers import AMOUNT_MARKS, typed_decimal
from pharmacrm.core.roles import Cap
from pharmacrm.customers.choices import InstitutionType
from pharmacrm.customers.models import Institution
from pharmacrm.customers.services import ConflictError
from pharmacrm.sales.models import MonthlyRollup

from .models import (
    EntryKind,
    Level,
    LevelChange,
    Member,
    MemberStatus,
    PointsEntry,
    Redemption,
    RedemptionStatus,
    Referral,
    ReferralStatus,
    Reward,
    RewardKind,
)

A = AuditEntry.Action
MAX_POINTS = 10_000_000
MAX_VALUE = Decimal("9999999999.99")
LEVEL_ORDER = [Level.STANDARD, Level.SILVER, Level.GOLD, Level.PLATINUM]
# points per ¥100 paid are multiplied by the member's level (whole points, rounded down)
MULTIPLIER = {Level.STANDARD: Decimal("1"), Level.SILVER: Decimal("1.2"), Level.GOLD: Decimal("1.5"),
              Level.PLATINUM: Decimal("2")}  # fmt: skip


# the levels whose privileges include priority service: their tickets are boosted by the service desk (one step,
# as a VIP's) — the level table says so and `ticket_boost` applies it
PRIORITY_LEVELS = frozenset({Level.SILVER, Level.GOLD, Level.PLATINUM})


def has_priority_service(level: str, status: str) -> bool:
    """Whether a member of this level and status gets priority service (an active member from Silver on)."""
    return status == MemberStatus.ACTIVE and level in PRIORITY_LEVELS


def _rerate_tickets(institution_ids, user=None) -> int:
    """The open tickets of customers that gained or lost priority service: the service desk gives or takes back the
    boost as for any priority change (servicedesk.editing.rerate_customer_boosts: policy, SLA clocks, history,
    audit), never over a priority an agent set by hand. Inside the caller's transaction."""
    from pharmacrm.servicedesk import editing

    return editing.rerate_customer_boosts(institution_ids, user=user)


def rerate_after_merge(sender, survivor, duplicate, user=None, **kwargs) -> None:
    """A customer merge (customers.services.merged, inside its transaction) that leaves the survivor a member with
    priority service — its own membership, or the duplicate's moved to it — re-rates its open tickets, those that came
    with the duplicate included."""
    if sender is not Institution:
        return
    member = Member.objects.filter(institution_id=survivor.pk).values_list("level", "status").first()
    if member and has_priority_service(*member):
        _rerate_tickets([survivor.pk], user)


def privileges() -> list[tuple[str, list[str]]]:
    """What each level gets (shown on the pages). Priority service (PRIORITY_LEVELS) is applied by the service desk:
    see ticket_boost."""
    points = _("Points ×%(m)s per ¥100 paid")
    out = []
    for level in LEVEL_ORDER:
        items = [points % {"m": MULTIPLIER[level]}, _("Reward catalogue")]
        if level in PRIORITY_LEVELS:
            items.append(_("Priority service: requests answered first"))
        if level in (Level.GOLD, Level.PLATINUM):
            items += [_("Dedicated service contact"), _("Member-only offers")]
        if level == Level.PLATINUM:
            items.append(_("Priority delivery on every order"))
        out.append((level, items))
    return out


def ticket_boost(ticket) -> str | None:
    """The service desk's boost hook (servicedesk.routing.register_boost): a ticket of an active member whose level
    promises priority service — the ticket's institution, the hospital of its department, or the institution of its
    person — is one step more urgent, as a VIP's. A suspended or departed member's is not. Returns the reason the
    ticket's history gives, or None."""
    ids = set()
    if ticket.institution_id:
        ids |= {ticket.institution_id, ticket.institution.parent_id}
    if ticket.person_id:
        ids.add(ticket.person.institution_id)
    ids.discard(None)
    if not ids:
        return None
    found = list(Member.objects.filter(institution_id__in=ids, status=MemberStatus.ACTIVE, level__in=PRIORITY_LEVELS)
                 .values_list("level", "number"))  # fmt: skip
    if not found:
        return None
    level, number = max(found, key=lambda m: LEVEL_ORDER.index(m[0]))
    return Message(gettext_lazy("A loyalty member with priority service (%(level)s, %(number)s): one step more "
                                "urgent."), level=Level(level).label, number=number)


# --- months ------------------------------------------------------------------------------------------------


def month_of(day: dt.date) -> dt.date:
    return day.replace(day=1)


def add_months(month: dt.date, n: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + n
    return dt.date(index // 12, index % 12 + 1, 1)


def last_month(today: dt.date | None = None) -> dt.date:
    return add_months(month_of(today or timezone.localdate()), -1)


# --- who sees and runs what ----------------------------------------------------------------------------------


def _team_ids(user) -> list[int]:
    return list(User.teams.through.objects.filter(user_id=user.pk).values_list("team_id", flat=True))


def customer_q(user, prefix: str = "") -> Q | None:
    """The customers whose loyalty business the user sees: None for all (leadership, analysts, auditors); otherwise
    those they or their teams own."""
    if access.can(user, Cap.ALL_LOYALTY):
        return None
    teams = _team_ids(user)
    q = Q(**{f"{prefix}owner": user})
    return q | Q(**{f"{prefix}team_id__in": teams}) if teams else q


def members_for(user, qs=None):
    qs = Member.objects.all() if qs is None else qs
    if not access.can(user, Cap.READ_LOYALTY):
        return qs.none()
    q = customer_q(user, "institution__")
    return qs if q is None else qs.filter(q)


def redemptions_for(user, qs=None):
    qs = Redemption.objects.all() if qs is None else qs
    if not access.can(user, Cap.READ_LOYALTY):
        return qs.none()
    q = customer_q(user, "member__institution__")
    return qs if q is None else qs.filter(q)


def referrals_for(user, qs=None):
    """The referrals of the members the user sees, and those of the customers they own (the referred side)."""
    qs = Referral.objects.all() if qs is None else qs
    if not access.can(user, Cap.READ_LOYALTY):
        return qs.none()
    q = customer_q(user, "referrer__institution__")
    return qs if q is None else qs.filter(q | customer_q(user, "referred__"))


OUT_OF_SCOPE = gettext_lazy("an institution outside your territory")


def mark_referred_in_scope(user, referrals) -> list:
    """The referrals, each with `referred_in_scope`: whether the user may see the referred institution (access's
    scope: a rep's territory). A member the rep serves may have referred a customer elsewhere: the referral is
    theirs to see, the customer is not — shown as OUT_OF_SCOPE, without its name or a link."""
    referrals = list(referrals)
    ids = {r.referred_id for r in referrals}
    seen = set(access.institutions_for(user).filter(pk__in=ids).values_list("pk", flat=True)) if ids else set()
    for r in referrals:
        r.referred_in_scope = r.referred_id in seen
    return referrals


def may_see_customer(user, institution: Institution) -> bool:
    if not access.can(user, Cap.READ_LOYALTY):
        return False
    q = customer_q(user)
    return q is None or Institution.objects.filter(q, pk=institution.pk).exists()


def may_manage(user, institution: Institution) -> bool:
    return access.can(user, Cap.MANAGE_LOYALTY) and may_see_customer(user, institution)


def _require_manage(user, institution: Institution) -> None:
    if not may_manage(user, institution):
        raise PermissionDenied(_("You do not have permission to do this."))


def _check_version(obj, version) -> None:
    if version not in (None, "") and str(version) != str(obj.version):
        raise ConflictError(obj.version)


# --- eligibility and membership -----------------------------------------------------------------------------


def eligible_types() -> list[str]:
    return [t for t in settings.LOYALTY_ELIGIBLE_TYPES if t in InstitutionType.values]


def eligibility_error(institution: Institution) -> str | None:
    """Why this customer may not join, or None. Points belong to an institution, never to a person; public
    hospitals and insurance bureaus are left out unless the setting names them (反商业贿赂)."""
    if institution.merged_into_id is not None:
        return _("This customer was merged into another record.")
    if institution.kind not in eligible_types():
        return _(
            "%(type)s customers cannot join the loyalty programme: it is for commercial customers (%(types)s) only, "
            "because rewards to hospitals, their staff or insurance bureaus could count as commercial bribery."
        ) % {"type": institution.get_kind_display(),
             "types": wording.listing(InstitutionType(t).label for t in eligible_types())}  # fmt: skip
    return None


def twelve_months_fen(institution_ids, through: dt.date) -> dict[int, int]:
    """Purchases (fen) in the 12 months ending with the month `through`, per institution, from the rollups."""
    start = add_months(month_of(through), -11)
    rows = (MonthlyRollup.objects.filter(institution_id__in=institution_ids, month__gte=start, month__lte=through)
            .values("institution_id").annotate(total=Sum("amount_fen")).order_by())  # fmt: skip
    return {r["institution_id"]: r["total"] or 0 for r in rows}


def level_for(fen: int) -> str:
    yuan = fen // 100
    if yuan >= settings.LOYALTY_PLATINUM_YUAN:
        return Level.PLATINUM
    if yuan >= settings.LOYALTY_GOLD_YUAN:
        return Level.GOLD
    if yuan >= settings.LOYALTY_SILVER_YUAN:
        return Level.SILVER
    return Level.STANDARD


def _number() -> str:
    return f"HY-{Counter.allocate('loyalty:HY'):06d}"


def join(user, institution, *, today: dt.date | None = None, system: bool = False) -> Member:
    """Enrol an eligible customer (its owner, their team, leadership). Its level is set at once from its last 12
    months' purchases. `system`: the monthly run's automatic joining (LOYALTY_AUTO_JOIN)."""
    if not isinstance(institution, Institution):
        pk = str(institution or "")
        institution = (
            Institution.objects.filter(pk=int(pk)).first() if is_id(pk) else None
        )
        if institution is None or not (system or may_see_customer(user, institution)):
            raise ValidationError({"institution": [_("No such customer, or one you may not see.")]})
    if not system:
        _require_manage(user, institution)
    error = eligibility_error(institution)
    if error:
        raise ValidationError({"institution": [error]})
    existing = Member.objects.filter(institution=institution).first()
    if existing is not None:
        raise ValidationError({"institution": [_("%(customer)s is a member already (%(number)s).") % {
            "customer": institution.name, "number": existing.number}]})  # fmt: skip
    today = today or timezone.localdate()
    basis = twelve_months_fen([institution.pk], last_month(today)).get(institution.pk, 0)
    level = level_for(basis)
    try:
        with transaction.atomic():
            member = Member.objects.create(
                number=_number(), institution=institution, joined_on=today, counts_from=month_of(today), level=level,
                level_since=today, joined_by=None if system else user,
            )  # fmt: skip
            # the purchases the level was set from, as the monthly run keeps them: a customer joining at Gold read
            # "¥0" in its level history
            LevelChange.objects.create(member=member, new_level=level, changed_on=today, basis_fen=basis)
            audit.record(A.CREATE, member, user=None if system else user, changes={
                "number": [None, member.number], "institution": [None, institution.pk], "level": [None, level],
                "status": [None, member.status]}, **({"actor_name": "system"} if system else {}))  # fmt: skip
            if has_priority_service(level, member.status):
                _rerate_tickets([institution.pk], None if system else user)
    except IntegrityError:
        raise ValidationError({"institution": [_("%(customer)s is a member already.") % {
            "customer": institution.name}]}) from None  # fmt: skip
    return member


def set_status(user, member: Member, status: str, version=None, reason: str = "") -> Member:
    """Suspend, reactivate or end a membership (leadership); a reason is kept in the audit trail."""
    access.require(user, Cap.APPROVE_LOYALTY)
    errors: dict = {}
    if status not in MemberStatus.values:
        errors["status"] = [_("Choose a status.")]
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = [_("Give the reason.")]
    elif len(reason) > 500:
        errors["reason"] = [_("At most %(n)d characters.") % {"n": 500}]
    if member.status == MemberStatus.LEFT and status != MemberStatus.LEFT:
        errors["status"] = [_("A customer that left joins again as a new member.")]
    if errors:
        raise ValidationError(errors)
    _check_version(member, version)
    if status == member.status:
        return member
    with transaction.atomic():
        if not Member.objects.filter(pk=member.pk, version=member.version).update(
            status=status, version=F("version") + 1
        ):
            raise ConflictError(Member.objects.get(pk=member.pk).version)
        audit.record(A.UPDATE, member, user=user, changes={"status": [member.status, status]}, reason=reason)
        if has_priority_service(member.level, member.status) != has_priority_service(member.level, status):
            _rerate_tickets([member.institution_id], user)  # suspended, ended or reactivated: the boost follows
        member.status, member.version = status, member.version + 1
    return member


# --- the ledger ----------------------------------------------------------------------------------------------


def balance(member: Member) -> int:
    return member.entries.aggregate(s=Sum("points"))["s"] or 0


def _locked(member: Member) -> Member:
    """The member's row held for the rest of the transaction: one change of its balance at a time."""
    return Member.objects.select_for_update().get(pk=member.pk)


def _int(errors: dict, field: str, value, *, low: int, high: int, message: str):
    # ５００, －５０ or 1,000 from a Chinese input method are 500, -50 and 1000 (as the customer forms read digits)
    text = unicodedata.normalize("NFKC", str(value)).replace(",", "").strip() if value is not None else ""
    if not text:
        errors[field] = [message]
        return None
    if not text.lstrip("-").isascii() or not text.lstrip("-").isdigit() or len(text) > 12:
        errors[field] = [message]
        return None
    number = int(text)
    if not low <= number <= high:
        errors[field] = [message]
        return None
    return number


def adjust(user, member: Member, points, reason: str) -> PointsEntry:
    """A manual correction of the balance by leadership, with its reason; it may not take the balance below zero."""
    access.require(user, Cap.APPROVE_LOYALTY)
    errors: dict = {}
    points = _int(errors, "points", points, low=-MAX_POINTS, high=MAX_POINTS,
                  message=_("Give the points as a whole number, e.g. 200 or -50."))  # fmt: skip
    if points == 0:
        errors["points"] = [_("Give the points as a whole number, e.g. 200 or -50.")]
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = [_("Give the reason.")]
    elif len(reason) > 500:
        errors["reason"] = [_("At most %(n)d characters.") % {"n": 500}]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        _locked(member)
        have = balance(member)
        if have + points < 0:
            raise ValidationError({"points": [_("The balance is %(balance)s points; it cannot go below zero.") % {
                "balance": have}]})  # fmt: skip
        entry = PointsEntry.objects.create(member=member, kind=EntryKind.ADJUST, points=points, reason=reason,
                                           month=month_of(timezone.localdate()), created_by=user)  # fmt: skip
        audit.record(A.CREATE, entry, user=user, changes={"member": [None, member.pk], "points": [None, points],
                                                          "reason": [None, reason]})  # fmt: skip
    return entry


def earn(month: dt.date) -> int:
    """Points for payments: for each active member not yet credited for `month`, the payments recorded on its
    purchases from its joining month through `month` (the rollups' paid amounts), less what was credited before,
    in whole ¥100 (the rest waits for the next month), × LOYALTY_POINTS_PER_100_YUAN × the level's multiplier. Once
    per member and month: a rerun finds them credited and changes nothing. Returns how many entries."""
    month = month_of(month)
    made = 0
    with transaction.atomic():
        due = list(Member.objects.select_for_update().filter(status=MemberStatus.ACTIVE, counts_from__lte=month)
                   .filter(Q(earned_through__isnull=True) | Q(earned_through__lt=month)).order_by("pk"))  # fmt: skip
        if not due:
            return 0
        paid = dict(
            MonthlyRollup.objects.filter(
                institution_id__in=[m.institution_id for m in due], month__lte=month,
                month__gte=F("institution__loyalty_member__counts_from"),
            ).values("institution_id").annotate(total=Sum("paid_fen")).order_by().values_list("institution_id", "total")
        )  # fmt: skip
        entries, items = [], []
        for member in due:
            delta = (paid.get(member.institution_id) or 0) - member.credited_fen
            hundreds = max(delta // 10000, 0)
            points = int(hundreds * settings.LOYALTY_POINTS_PER_100_YUAN * MULTIPLIER[Level(member.level)])
            member.credited_fen += hundreds * 10000
            member.earned_through = month
            if points > 0:
                entries.append(PointsEntry(member=member, kind=EntryKind.EARN, points=points, month=month,
                                           basis_fen=hundreds * 10000))  # fmt: skip
        Member.objects.bulk_update(due, ["credited_fen", "earned_through"])
        PointsEntry.objects.bulk_create(entries)
        items = [(e, {"member": [None, e.member_id], "points": [None, e.points], "month": [None, e.month],
                      "basis_fen": [None, e.basis_fen]}) for e in entries]  # fmt: skip
        made = audit.record_many(A.CREATE, items, actor_name="system")
    return made


def recompute_levels(month: dt.date, today: dt.date | None = None) -> int:
    """Each active member's level from its purchases in the 12 months ending with `month`; a change is kept in the
    level history and audited, and a change into or out of priority service re-rates the member's open tickets. A
    rerun finds nothing to change. Returns how many changed."""
    today = today or timezone.localdate()
    changed = 0
    with transaction.atomic():
        members = list(Member.objects.select_for_update().filter(status=MemberStatus.ACTIVE).order_by("pk"))
        totals = twelve_months_fen([m.institution_id for m in members], month)
        history, items, rerate = [], [], []
        for member in members:
            basis = totals.get(member.institution_id, 0)
            new = level_for(basis)
            if new != member.level:
                if (member.level in PRIORITY_LEVELS) != (new in PRIORITY_LEVELS):
                    rerate.append(member.institution_id)  # into priority service, or out of it
                history.append(LevelChange(member=member, old_level=member.level, new_level=new, changed_on=today,
                                           basis_fen=basis))  # fmt: skip
                items.append((member, {"level": [member.level, new]}))
                member.level, member.level_since, member.version = new, today, member.version + 1
        if history:
            Member.objects.bulk_update([m for m, _c in items], ["level", "level_since", "version"])
            LevelChange.objects.bulk_create(history)
            changed = audit.record_many(A.UPDATE, items, actor_name="system")
            _rerate_tickets(rerate)
    return changed


def expire(month: dt.date) -> int:
    """At the end of `month`, points earned LOYALTY_POINTS_EXPIRE_MONTHS months before or earlier and not spent
    (spending uses the oldest points first) expire, as one entry per member and month. Returns how many entries."""
    month = month_of(month)
    cutoff = add_months(month, -settings.LOYALTY_POINTS_EXPIRE_MONTHS)
    credit = [EntryKind.EARN, EntryKind.REFERRAL, EntryKind.ADJUST]
    with transaction.atomic():
        rows = (PointsEntry.objects.values("member_id").annotate(
            old=Sum(Case(When(kind__in=credit, points__gt=0, month__lte=cutoff, then="points"), default=0,
                         output_field=IntegerField())),
            spent=Sum(Case(When(Q(points__lt=0) | Q(kind=EntryKind.RELEASE), then="points"), default=0,
                           output_field=IntegerField())),
        ).filter(old__gt=0).order_by())  # fmt: skip
        candidates = {r["member_id"]: r["old"] + r["spent"] for r in rows if r["old"] + r["spent"] > 0}
        if not candidates:
            return 0
        # held, so that a redemption asked for meanwhile sees the balance after the expiry
        list(
            Member.objects.select_for_update()
            .filter(pk__in=list(candidates))
            .order_by("pk")
            .values_list("pk")
        )
        done = set(PointsEntry.objects.filter(kind=EntryKind.EXPIRE, month=month, member_id__in=list(candidates))
                   .values_list("member_id", flat=True))  # fmt: skip
        entries = [PointsEntry(member_id=pk, kind=EntryKind.EXPIRE, points=-left, month=month)
                   for pk, left in sorted(candidates.items()) if pk not in done]  # fmt: skip
        PointsEntry.objects.bulk_create(entries)
        items = [(e, {"member": [None, e.member_id], "points": [None, e.points], "month": [None, e.month]})
                 for e in entries]  # fmt: skip
        return audit.record_many(A.CREATE, items, actor_name="system")


def auto_join(today: dt.date | None = None) -> int:
    """LOYALTY_AUTO_JOIN: eligible customers with a paid purchase and no membership join by themselves."""
    if not settings.LOYALTY_AUTO_JOIN:
        return 0
    buyers = (Institution.objects.filter(kind__in=eligible_types(), merged_into__isnull=True,
                                         loyalty_member__isnull=True,
                                         pk__in=MonthlyRollup.objects.filter(paid_fen__gt=0).values("institution_id"))
              .order_by("pk"))  # fmt: skip
    made = 0
    for institution in buyers:
        try:
            join(None, institution, today=today, system=True)
            made += 1
        except ValidationError:
            continue
    return made


def monthly(today: dt.date | None = None) -> dict[str, int]:
    """The 1st of each month: automatic joining (if set), points for last month's payments, levels, expiry.
    Idempotent: a rerun changes nothing."""
    today = today or timezone.localdate()
    month = last_month(today)
    joined = auto_join(today)
    earned = earn(month)
    levels = recompute_levels(month, today)
    expired = expire(month)
    return {"joined": joined, "earned": earned, "levels": levels, "expired": expired}


# --- rewards ---------------------------------------------------------------------------------------------------

REWARD_FIELDS = ("name", "kind", "points_cost", "value_cny", "stock", "active", "description")


def clean_reward(data: dict) -> dict:
    errors: dict = {}
    out: dict = {}
    name = str(data.get("name") or "").strip()
    if not name:
        errors["name"] = [_("This field is required.")]
    elif len(name) > 100:
        errors["name"] = [_("At most %(n)d characters.") % {"n": 100}]
    out["name"] = name
    if data.get("kind") not in RewardKind.values:
        errors["kind"] = [_("Choose the kind of reward.")]
    out["kind"] = data.get("kind")
    out["points_cost"] = _int(errors, "points_cost", data.get("points_cost"), low=1, high=MAX_POINTS,
                              message=_("Give the points as a whole number more than zero."))  # fmt: skip
    value = data.get("value_cny")
    try:
        # ￥500 and 500元 from a Chinese input method, full-width digits (５００．００): read as the sales forms read
        # an amount; 1_000 and Arabic-Indic ٥٠٠ (which Decimal reads) are refused
        amount = typed_decimal(value, *AMOUNT_MARKS)
        if amount is None or amount.as_tuple().exponent < -2 or amount < 0 or amount > MAX_VALUE:
            raise InvalidOperation
        out["value_cny"] = amount.quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        errors["value_cny"] = [_("Give the value in yuan, e.g. 500.00.")]
    stock = data.get("stock")
    if stock in (None, ""):
        out["stock"] = None
    else:
        out["stock"] = _int(errors, "stock", stock, low=0, high=MAX_POINTS,
                            message=_("Give the stock as a whole number, or leave it empty for unlimited."))  # fmt: skip
    active = data.get("active", True)
    out["active"] = active if isinstance(active, bool) else str(active).lower() in ("1", "true", "on", "yes")
    description = str(data.get("description") or "").strip()
    if len(description) > 2000:
        errors["description"] = [_("At most %(n)d characters.") % {"n": 2000}]
    out["description"] = description
    if errors:
        raise ValidationError(errors)
    return out


def create_reward(user, data: dict) -> Reward:
    access.require(user, Cap.APPROVE_LOYALTY)
    values = clean_reward(data)
    with transaction.atomic():
        reward = Reward.objects.create(**values)
        audit.record(
            A.CREATE,
            reward,
            user=user,
            changes={k: [None, v] for k, v in values.items() if v not in ("", None)},
        )
    return reward


def update_reward(user, reward: Reward, data: dict, version=None) -> Reward:
    access.require(user, Cap.APPROVE_LOYALTY)
    _check_version(reward, version)
    values = clean_reward({**{f: getattr(reward, f) for f in REWARD_FIELDS}, **data})
    changes = {k: [getattr(reward, k), v] for k, v in values.items() if getattr(reward, k) != v}
    if not changes:
        return reward
    with transaction.atomic():
        if not Reward.objects.filter(pk=reward.pk, version=reward.version).update(
            version=F("version") + 1, **values
        ):
            raise ConflictError(Reward.objects.get(pk=reward.pk).version)
        audit.record(A.UPDATE, reward, user=user, changes=changes)
        for k, v in values.items():
            setattr(reward, k, v)
        reward.version += 1
    return reward


# --- redemptions ---------------------------------------------------------------------------------------------


def request_redemption(user, member: Member, reward, quantity=1) -> Redemption:
    """A member's request for a reward (its owner or their team): the points are reserved at once — under a lock on
    the member, so two requests at once never spend the same points — and the stock, if counted, is taken."""
    _require_manage(user, member.institution)
    errors: dict = {}
    if not isinstance(reward, Reward):
        pk = str(reward or "")
        reward = Reward.objects.filter(pk=int(pk)).first() if is_id(pk) else None
    if reward is None or not reward.active:
        errors["reward"] = [_("Choose a reward from the catalogue.")]
    quantity = _int(errors, "quantity", quantity if quantity not in (None, "") else 1, low=1, high=100,
                    message=_("Give the quantity as a whole number from 1 to 100."))  # fmt: skip
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        fresh = _locked(member)
        if fresh.status != MemberStatus.ACTIVE:
            raise ValidationError({"member": [_("Only an active member redeems points.")]})
        reward = Reward.objects.select_for_update().get(pk=reward.pk)
        if reward.stock is not None and reward.stock < quantity:
            raise ValidationError({"quantity": [_("Only %(n)s left in stock.") % {"n": reward.stock}]})
        cost = reward.points_cost * quantity
        have = balance(member)
        if cost > have:
            raise ValidationError({"reward": [_(
                "Not enough points: the balance is %(balance)s, the reward costs %(cost)s.") % {
                "balance": have, "cost": cost}]})  # fmt: skip
        redemption = Redemption.objects.create(member=member, reward=reward, quantity=quantity, points=cost,
                                               value_cny=reward.value_cny * quantity, requested_by=user)  # fmt: skip
        PointsEntry.objects.create(member=member, kind=EntryKind.REDEEM, points=-cost, redemption=redemption,
                                   month=month_of(timezone.localdate()), created_by=user)  # fmt: skip
        if reward.stock is not None:
            Reward.objects.filter(pk=reward.pk).update(stock=F("stock") - quantity)
        audit.record(A.CREATE, redemption, user=user, changes={
            "member": [None, member.pk], "reward": [None, reward.pk], "quantity": [None, quantity],
            "points": [None, cost], "value_cny": [None, redemption.value_cny]})  # fmt: skip
    return redemption


def _decided(user, redemption: Redemption, version, allowed: tuple) -> Redemption:
    fresh = Redemption.objects.select_for_update().get(pk=redemption.pk)
    _check_version(fresh, version)
    if fresh.status not in allowed:
        raise ValidationError({"status": [_("This redemption is %(status)s already.") % {
            "status": fresh.get_status_display()}]})  # fmt: skip
    return fresh


def decide(user, redemption: Redemption, *, approve: bool, note: str = "", version=None) -> Redemption:
    """Approve or reject a request (leadership, never the one who asked: four eyes). A rejection gives the points and
    the stock back and needs its reason."""
    access.require(user, Cap.APPROVE_LOYALTY)
    if redemption.requested_by_id == user.pk:
        raise PermissionDenied(_("You asked for this redemption: another manager approves or rejects it."))
    note = (note or "").strip()
    if not approve and not note:
        raise ValidationError({"decision_note": [_("Give the reason for the rejection.")]})
    if len(note) > 500:
        raise ValidationError({"decision_note": [_("At most %(n)d characters.") % {"n": 500}]})
    with transaction.atomic():
        _locked(redemption.member)
        fresh = _decided(user, redemption, version, (RedemptionStatus.REQUESTED,))
        new = RedemptionStatus.APPROVED if approve else RedemptionStatus.REJECTED
        now = timezone.now()
        Redemption.objects.filter(pk=fresh.pk).update(status=new, decided_by=user, decided_at=now, decision_note=note,
                                                      version=F("version") + 1)  # fmt: skip
        if not approve:
            entry = PointsEntry.objects.create(member_id=fresh.member_id, kind=EntryKind.RELEASE, points=fresh.points,
                                               redemption=fresh, month=month_of(timezone.localdate()), created_by=user,
                                               reason=note)  # fmt: skip
            Reward.objects.filter(pk=fresh.reward_id, stock__isnull=False).update(
                stock=F("stock") + fresh.quantity
            )
            audit.record(A.CREATE, entry, user=user, changes={"member": [None, fresh.member_id],
                                                              "points": [None, fresh.points]})  # fmt: skip
        audit.record(
            A.UPDATE,
            fresh,
            user=user,
            changes={"status": [fresh.status, new], **({"decision_note": [None, note]} if note else {})},
        )
    redemption.refresh_from_db()
    return redemption


def fulfil(user, redemption: Redemption, delivery_note: str, version=None) -> Redemption:
    """An approved reward handed over: by its member's owner or leadership, with the delivery note."""
    if not (access.can(user, Cap.APPROVE_LOYALTY) or may_manage(user, redemption.member.institution)):
        raise PermissionDenied(_("You do not have permission to do this."))
    note = (delivery_note or "").strip()
    if not note:
        raise ValidationError({"delivery_note": [_("Say how and when the reward was delivered.")]})
    if len(note) > 500:
        raise ValidationError({"delivery_note": [_("At most %(n)d characters.") % {"n": 500}]})
    with transaction.atomic():
        fresh = _decided(user, redemption, version, (RedemptionStatus.APPROVED,))
        Redemption.objects.filter(pk=fresh.pk).update(status=RedemptionStatus.FULFILLED, fulfilled_at=timezone.now(),
                                                      delivery_note=note, version=F("version") + 1)  # fmt: skip
        audit.record(A.UPDATE, fresh, user=user, changes={"status": [fresh.status, RedemptionStatus.FULFILLED],
                                                          "delivery_note": [None, note]})  # fmt: skip
    redemption.refresh_from_db()
    return redemption


# --- referrals -----------------------------------------------------------------------------------------------


def _already_referred(user, referral: Referral) -> ValidationError:
    """The refusal of a second claim: it names the first referrer, unless that member's institution is outside the
    user's territory (a manager recorded it) — then only that it is, without its name or member number."""
    if not access.can_see(user, referral.referrer.institution):
        return ValidationError({"referred": [_(
            "%(customer)s was referred already, by an institution outside your territory, on %(date)s.") % {
            "customer": referral.referred.name, "date": referral.referred_on.isoformat()}]})  # fmt: skip
    return ValidationError({"referred": [_("%(customer)s was referred already, by %(number)s %(name)s on %(date)s.") % {
        "customer": referral.referred.name, "number": referral.referrer.number,
        "name": referral.referrer.institution.name, "date": referral.referred_on.isoformat()}]})  # fmt: skip


def refer(user, member: Member, referred, note: str = "", *, today: dt.date | None = None) -> Referral:
    """A member brings in a new customer (one already in the CRM, which has not bought yet): one referrer per
    customer — a second claim is refused naming the first."""
    _require_manage(user, member.institution)
    errors: dict = {}
    if member.status != MemberStatus.ACTIVE:
        errors["referrer"] = [_("Only an active member refers customers.")]
    if not isinstance(referred, Institution):
        pk = str(referred or "")
        referred = Institution.objects.filter(pk=int(pk)).first() if is_id(pk) else None
        if referred is not None and not access.can_see(user, referred):
            referred = None
    note = (note or "").strip()
    if len(note) > 500:
        errors["note"] = [_("At most %(n)d characters.") % {"n": 500}]
    if referred is None:
        errors["referred"] = [_("No such customer, or one you may not see.")]
    elif referred.pk == member.institution_id:
        errors["referred"] = [_("A member cannot refer itself.")]
    elif referred.merged_into_id is not None:
        errors["referred"] = [_("This customer was merged into another record.")]
    else:
        first = (
            Referral.objects.filter(referred=referred)
            .select_related("referrer__institution", "referred")
            .first()
        )
        if first is not None:
            raise _already_referred(user, first)
        if Member.objects.filter(institution=referred).exists():
            errors["referred"] = [_("%(customer)s is a member already: a referral brings in a new customer.") % {
                "customer": referred.name}]  # fmt: skip
        elif MonthlyRollup.objects.filter(institution=referred, paid_fen__gt=0).exists():
            errors["referred"] = [_("%(customer)s buys from us already: a referral brings in a new customer.") % {
                "customer": referred.name}]  # fmt: skip
    if errors:
        raise ValidationError(errors)
    today = today or timezone.localdate()
    try:
        with transaction.atomic():
            referral = Referral.objects.create(referrer=member, referred=referred, referred_on=today,
                                               recorded_by=user, note=note)  # fmt: skip
            audit.record(A.CREATE, referral, user=user, changes={"referrer": [None, member.pk],
                                                                 "referred": [None, referred.pk]})  # fmt: skip
    except IntegrityError:
        first = Referral.objects.select_related("referrer__institution", "referred").get(referred=referred)
        raise _already_referred(user, first) from None
    return referral


def referral_rewards() -> int:
    """Nightly: a referred customer's first paid purchase (a rollup with payments, from the referral's month on)
    converts its referral and earns the referrer LOYALTY_REFERRAL_POINTS, once (an active referrer; one suspended or
    gone earns nothing). Returns how many referrals converted."""
    pending = Referral.objects.filter(status=ReferralStatus.PENDING).select_related("referrer").order_by("pk")
    converted = 0
    for referral in pending:
        first = (MonthlyRollup.objects.filter(institution_id=referral.referred_id, paid_fen__gt=0,
                                              month__gte=month_of(referral.referred_on))
                 .order_by("month").values_list("month", flat=True).first())  # fmt: skip
        if first is None:
            continue
        with transaction.atomic():
            if not Referral.objects.filter(pk=referral.pk, status=ReferralStatus.PENDING).update(
                status=ReferralStatus.CONVERTED, converted_month=first
            ):
                continue
            audit.record(A.UPDATE, referral, changes={"status": [ReferralStatus.PENDING, ReferralStatus.CONVERTED],
                                                      "converted_month": [None, first]}, actor_name="system")  # fmt: skip
            if referral.referrer.status == MemberStatus.ACTIVE and settings.LOYALTY_REFERRAL_POINTS > 0:
                entry = PointsEntry.objects.create(member=referral.referrer, kind=EntryKind.REFERRAL, referral=referral,
                                                   points=settings.LOYALTY_REFERRAL_POINTS,
                                                   month=month_of(timezone.localdate()))  # fmt: skip
                audit.record(A.CREATE, entry, changes={"member": [None, referral.referrer_id],
                                                       "points": [None, entry.points]}, actor_name="system")  # fmt: skip
            converted += 1
    return converted


# --- figures ---------------------------------------------------------------------------------------------------


def overview(user, months: int = 12, today: dt.date | None = None) -> dict:
    """The programme's figures within the user's scope: members per level, points issued / redeemed / expired and
    the redemptions' value in yuan per month, referrals per month with the converted share and the referred
    customers' purchases since their referral."""
    today = today or timezone.localdate()
    first = add_months(month_of(today), -(months - 1))
    members = members_for(user)
    per_level = dict(members.filter(status=MemberStatus.ACTIVE).values_list("level").annotate(n=Count("id"))
                     .order_by())  # fmt: skip
    levels = [(Level(v).label, per_level.get(v, 0)) for v in LEVEL_ORDER]
    entries = PointsEntry.objects.filter(member__in=members.values("id"), month__gte=first)
    issued_kinds = [EntryKind.EARN, EntryKind.REFERRAL]
    rows = {m: {"month": m, "issued": 0, "redeemed": 0, "expired": 0, "value": Decimal("0.00"), "referrals": 0,
                "converted": 0} for m in (add_months(first, i) for i in range(months))}  # fmt: skip
    for month, kind, points in entries.values_list("month", "kind").annotate(s=Sum("points")).order_by():
        row = rows.get(month)
        if row is None:
            continue
        if kind in issued_kinds or (kind == EntryKind.ADJUST and points > 0):
            row["issued"] += points
        elif kind in (EntryKind.REDEEM, EntryKind.RELEASE):
            row["redeemed"] -= points
        elif kind == EntryKind.EXPIRE:
            row["expired"] -= points
    spent = (redemptions_for(user).filter(status__in=[RedemptionStatus.APPROVED, RedemptionStatus.FULFILLED])
             .values_list("decided_at", "value_cny"))  # fmt: skip
    for at, value in spent:
        row = rows.get(month_of(timezone.localtime(at).date())) if at else None
        if row is not None:
            row["value"] += value
    referrals = list(referrals_for(user).values_list("referred_on", "status", "referred_id"))
    for day, state, _pk in referrals:
        row = rows.get(month_of(day))
        if row is not None:
            row["referrals"] += 1
            row["converted"] += state == ReferralStatus.CONVERTED
    bought = 0
    if referrals:
        since = {pk: month_of(day) for day, _s, pk in referrals}
        for pk, month, fen in MonthlyRollup.objects.filter(institution_id__in=list(since)).values_list(
            "institution_id", "month", "amount_fen"
        ):
            if month >= since[pk]:
                bought += fen
    total = len(referrals)
    converted = sum(1 for _d, s, _p in referrals if s == ReferralStatus.CONVERTED)
    return {
        "levels": levels, "members": sum(n for _l, n in levels), "months": list(rows.values()),
        "referrals": total, "converted": converted, "conversion": (converted * 100 // total) if total else None,
        "referred_purchases": Decimal(bought) / 100,
    }  # fmt: skip


def no_member_message() -> str:
    return _("No such member, or one you may not see.")
