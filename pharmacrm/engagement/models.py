"""Interactions (拜访 / 通话 / 微信沟通): what a rep, KAM or agent heard from a customer. Every interaction
text is screened by the safety net: a reaction mentioned during a hospital visit starts the company's
regulatory clock that day."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class InteractionChannel(models.TextChoices):
    VISIT = "visit", _("Visit")
    PHONE = "phone", _("Phone call")
    WECHAT = "wechat", _("WeChat")
    EMAIL = "email", _("E-mail")
    MEETING = "meeting", _("Meeting or conference")
    OTHER = "other", _("Other")


class Interaction(models.Model):
    institution = models.ForeignKey(
        "customers.Institution", models.PROTECT, null=True, blank=True, related_name="interactions",
        verbose_name=_("institution"),
    )  # fmt: skip
    person = models.ForeignKey(
        "customers.Person", models.PROTECT, null=True, blank=True, related_name="interactions",
        verbose_name=_("person"),
    )  # fmt: skip
    channel = models.CharField(_("channel"), max_length=10, choices=InteractionChannel.choices)
    received_at = models.DateTimeField(_("when"))  # when the company heard what is written here
    subject = models.CharField(_("subject"), max_length=200)
    notes = models.TextField(_("notes"), blank=True)
    product = models.ForeignKey(
        "servicedesk.Product", models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("product")
    )
    safety_relevant = models.BooleanField(_("safety-relevant"), default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+", verbose_name=_("recorded by")
    )
    created_at = models.DateTimeField(_("recorded"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("interaction")
        verbose_name_plural = _("interactions")
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["institution", "-received_at"], name="interaction_institution"),
            models.Index(fields=["person", "-received_at"], name="interaction_person"),
            models.Index(fields=["created_by", "-received_at"], name="interaction_author"),
        ]

    def __str__(self) -> str:
        return self.subject


class PlanPeriod(models.TextChoices):
    """How often a plan line's minimum of contacts is counted: calendar months, quarters, half-years or the year."""

    MONTH = "month", _("per month")
    QUARTER = "quarter", _("per quarter")
    HALF = "half", _("per half-year")
    YEAR = "year", _("per year")


class CommunicationPlan(models.Model):
    """The annual communication plan for a class of customers (年度沟通计划, seed 002 三.(一)): which customers it is
    for — the class of their customer evaluation, their tier and/or their type; blank is any —, its goal, and its
    lines (a channel and how many contacts at least per period). Managers set it; owners read it."""

    year = models.PositiveSmallIntegerField(_("year"))
    klass = models.CharField(_("customer class"), max_length=1, blank=True,
                             choices=[("A", "A"), ("B", "B"), ("C", "C"), ("D", "D")])  # fmt: skip
    tier = models.CharField(_("tier"), max_length=12, blank=True)
    institution_kind = models.CharField(_("institution type"), max_length=16, blank=True)
    goal = models.TextField(_("goal"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        verbose_name = _("communication plan")
        verbose_name_plural = _("communication plans")
        ordering = ["-year", "klass", "tier", "institution_kind", "id"]
        constraints = [
            models.UniqueConstraint(fields=["year", "klass", "tier", "institution_kind"], name="communication_plan_target"),
        ]

    def __str__(self) -> str:
        return f"{self.year} {self.target_label()}"

    def target_label(self) -> str:
        from pharmacrm.customers.choices import InstitutionType, Tier

        parts = []
        if self.klass:
            parts.append(str(_("class %(klass)s") % {"klass": self.klass}))
        if self.tier:
            parts.append(str(dict(Tier.choices).get(self.tier, self.tier)))
        if self.institution_kind:
            parts.append(str(dict(InstitutionType.choices).get(self.institution_kind, self.institution_kind)))
        return " · ".join(parts) or str(_("every customer"))


class CommunicationPlanLine(models.Model):
    plan = models.ForeignKey(CommunicationPlan, models.CASCADE, related_name="lines")
    channel = models.CharField(_("channel"), max_length=10, choices=InteractionChannel.choices)
    minimum = models.PositiveSmallIntegerField(_("contacts at least"))
    period = models.CharField(_("period"), max_length=8, choices=PlanPeriod.choices)
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("plan line")
        verbose_name_plural = _("plan lines")
        ordering = ["plan", "id"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "channel", "period"], name="communication_plan_line"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.minimum}/{self.period}"
