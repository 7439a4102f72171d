"""The customer loyalty programme (客户忠诚度计划) and referral rewards (客户推荐激励), seed 000 §6.2–6.3: members
(institutions only, of the eligible commercial types), their level from the last 12 months' purchases, an
append-only points ledger, a catalogue of business rewards redeemed under a manager's approval, and referrals of
new customers rewarded once the referred customer pays. docs/loyalty.md."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core.builtin import BuiltinNameMixin


class Level(models.TextChoices):
    STANDARD = "standard", pgettext_lazy("loyalty level", "Standard")
    SILVER = "silver", pgettext_lazy("loyalty level", "Silver")
    GOLD = "gold", pgettext_lazy("loyalty level", "Gold")
    PLATINUM = "platinum", pgettext_lazy("loyalty level", "Platinum")


class MemberStatus(models.TextChoices):
    ACTIVE = "active", pgettext_lazy("loyalty member", "Active")
    SUSPENDED = "suspended", pgettext_lazy("loyalty member", "Suspended")
    LEFT = "left", pgettext_lazy("loyalty member", "Left")


class EntryKind(models.TextChoices):
    EARN = "earn", _("Purchases paid")
    REFERRAL = "referral", _("Referral reward")
    ADJUST = "adjust", _("Manual adjustment")
    REDEEM = "redeem", _("Redemption")
    RELEASE = "release", _("Redemption rejected, points returned")
    EXPIRE = "expire", _("Points expired")


class RewardKind(models.TextChoices):
    REBATE = "rebate", _("Rebate voucher on a future order")
    TRAINING = "training", _("Free training place")
    TRIAL = "trial", _("Product trial pack")
    DELIVERY = "delivery", _("Priority delivery")


class RedemptionStatus(models.TextChoices):
    REQUESTED = "requested", _("Awaiting approval")
    APPROVED = "approved", pgettext_lazy("redemption", "Approved")
    REJECTED = "rejected", pgettext_lazy("redemption", "Rejected")
    FULFILLED = "fulfilled", _("Fulfilled")


class ReferralStatus(models.TextChoices):
    PENDING = "pending", _("Awaiting the first payment")
    CONVERTED = "converted", _("Converted")


class Member(models.Model):
    # a customer merge moves a membership to a survivor without one; two memberships are not added up
    MERGE_MOVE = True
    MERGE_BOTH_REFUSED = _(
        "Both customers are members of the loyalty programme: a merge would leave one membership and its points "
        "on the merged record. End one of the memberships first, then merge."
    )
    number = models.CharField(_("member number"), max_length=12, unique=True, editable=False)
    institution = models.OneToOneField("customers.Institution", models.PROTECT, related_name="loyalty_member",
                                       verbose_name=_("customer"))  # fmt: skip
    joined_on = models.DateField(_("joined on"))
    counts_from = models.DateField(
        editable=False
    )  # the first day of the joining month: purchases count from there
    status = models.CharField(
        _("status"), max_length=10, choices=MemberStatus.choices, default=MemberStatus.ACTIVE
    )
    level = models.CharField(_("level"), max_length=10, choices=Level.choices, default=Level.STANDARD)
    level_since = models.DateField(_("level since"))
    credited_fen = models.BigIntegerField(_("payments credited (fen)"), default=0, editable=False)
    earned_through = models.DateField(_("points earned through"), null=True, blank=True, editable=False)
    joined_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+",
                                  verbose_name=_("joined by"))  # fmt: skip
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("loyalty member")
        verbose_name_plural = _("loyalty members")
        ordering = ["number"]
        indexes = [models.Index(fields=["level", "status"], name="loyalty_member_level")]

    def __str__(self) -> str:
        return f"{self.number} {self.institution.name}"


class LevelChange(models.Model):
    member = models.ForeignKey(Member, models.CASCADE, related_name="level_changes")
    old_level = models.CharField(pgettext_lazy("change", "from"), max_length=10, choices=Level.choices, blank=True)
    new_level = models.CharField(pgettext_lazy("change", "to"), max_length=10, choices=Level.choices)
    changed_on = models.DateField(_("date"))
    basis_fen = models.BigIntegerField(_("purchases in the last 12 months (fen)"), default=0)

    class Meta:
        verbose_name = _("level change")
        verbose_name_plural = _("level changes")
        ordering = ["-changed_on", "-id"]

    def __str__(self) -> str:
        return f"{self.old_level or '-'} → {self.new_level}"


# The rewards the demo's catalogue ships (`pharmacrm demo`, loyalty.demo.REWARDS), stored by their Chinese names: each
# reader sees them in their language until they are renamed (core.builtin, registered by loyalty.apps)
SHIPPED_REWARDS = {
    "返利券 ¥500（下单抵扣）": pgettext_lazy("loyalty reward", "Rebate voucher ¥500 (off an order)"),
    "返利券 ¥2000（下单抵扣）": pgettext_lazy("loyalty reward", "Rebate voucher ¥2,000 (off an order)"),
    "药师GSP合规培训名额": pgettext_lazy("loyalty reward", "Place on a GSP compliance training for pharmacists"),
    "新品试用装（10盒）": pgettext_lazy("loyalty reward", "New product trial pack (10 boxes)"),
    "季度优先配送": pgettext_lazy("loyalty reward", "Priority delivery for a quarter"),
}


class Reward(BuiltinNameMixin, models.Model):
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=10, choices=RewardKind.choices)
    points_cost = models.PositiveIntegerField(_("points"))
    value_cny = models.DecimalField(_("value (yuan)"), max_digits=12, decimal_places=2)
    stock = models.PositiveIntegerField(_("stock"), null=True, blank=True)  # None: unlimited
    active = models.BooleanField(_("offered"), default=True)
    description = models.TextField(_("description"), blank=True)
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("reward")
        verbose_name_plural = _("rewards")
        ordering = ["points_cost", "id"]

    def __str__(self) -> str:
        return self.label  # a shipped name in the reader's language (core.builtin)


class Redemption(models.Model):
    member = models.ForeignKey(Member, models.PROTECT, related_name="redemptions", verbose_name=_("member"))
    reward = models.ForeignKey(Reward, models.PROTECT, related_name="redemptions", verbose_name=_("reward"))
    quantity = models.PositiveSmallIntegerField(_("quantity"), default=1)
    points = models.PositiveIntegerField(_("points"))
    value_cny = models.DecimalField(_("value (yuan)"), max_digits=12, decimal_places=2)
    status = models.CharField(_("status"), max_length=10, choices=RedemptionStatus.choices,
                              default=RedemptionStatus.REQUESTED)  # fmt: skip
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+",
                                     verbose_name=_("requested by"))  # fmt: skip
    requested_at = models.DateTimeField(_("requested"), auto_now_add=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+",
                                   verbose_name=_("decided by"))  # fmt: skip
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    decision_note = models.CharField(_("reason"), max_length=500, blank=True)
    fulfilled_at = models.DateTimeField(_("fulfilled"), null=True, blank=True)
    delivery_note = models.CharField(_("delivery note"), max_length=500, blank=True)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("redemption")
        verbose_name_plural = _("redemptions")
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["status", "requested_at"], name="loyalty_redemption_status")]

    def __str__(self) -> str:
        return f"{self.reward} ×{self.quantity}"


class Referral(models.Model):
    MERGE_MOVE = True  # a customer merge moves the duplicate's referral to a survivor that was not referred
    referrer = models.ForeignKey(Member, models.PROTECT, related_name="referrals", verbose_name=_("referrer"))
    referred = models.OneToOneField("customers.Institution", models.PROTECT, related_name="loyalty_referral",
                                    verbose_name=_("referred customer"))  # fmt: skip
    referred_on = models.DateField(_("referred on"))
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+",
                                    verbose_name=_("recorded by"))  # fmt: skip
    note = models.CharField(_("note"), max_length=500, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=ReferralStatus.choices,
                              default=ReferralStatus.PENDING)  # fmt: skip
    converted_month = models.DateField(_("first paid month"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("referral")
        verbose_name_plural = _("referrals")
        ordering = ["-referred_on", "-id"]

    def __str__(self) -> str:
        return f"{self.referrer.number} → {self.referred_id}"


class PointsEntry(models.Model):
    """One line of a member's points ledger; never changed or deleted: the balance is their sum."""

    member = models.ForeignKey(Member, models.PROTECT, related_name="entries", verbose_name=_("member"))
    kind = models.CharField(_("kind"), max_length=10, choices=EntryKind.choices)
    points = models.IntegerField(_("points"))
    month = models.DateField(
        _("month")
    )  # the month the points belong to (first day): earned for, or recorded in
    basis_fen = models.BigIntegerField(_("payments counted (fen)"), null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    redemption = models.ForeignKey(Redemption, models.PROTECT, null=True, blank=True, related_name="entries")
    referral = models.OneToOneField(Referral, models.PROTECT, null=True, blank=True, related_name="entry")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+",
                                   verbose_name=_("by"))  # fmt: skip
    created_at = models.DateTimeField(_("recorded"), auto_now_add=True)

    class Meta:
        verbose_name = _("points entry")
        verbose_name_plural = _("points entries")
        ordering = ["-created_at", "-id"]
        constraints = [
            # the monthly run: once per member and month, whatever reruns it
            models.UniqueConstraint(
                fields=["member", "kind", "month"],
                condition=Q(kind__in=["earn", "expire"]),
                name="loyalty_entry_once_a_month",
            ),  # fmt: skip
            models.UniqueConstraint(
                fields=["redemption", "kind"],
                condition=Q(redemption__isnull=False),
                name="loyalty_entry_once_per_redemption",
            ),  # fmt: skip
        ]
        indexes = [models.Index(fields=["member", "month"], name="loyalty_entry_member_month")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.points:+d}"
