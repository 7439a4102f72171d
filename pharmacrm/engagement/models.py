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
