"""Scheduled reports (定期报表): a user's subscription to one of the product's reports, mailed to their own account
address as an Excel workbook after each month, quarter or year — the figures they would export from the page,
counted with what they may see when it is sent."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class Report(models.TextChoices):
    SERVICE_PERFORMANCE = "service_performance", _("Service performance")
    COMPLAINT_ANALYSIS = "complaint_analysis", _("Complaint analysis")
    SALES_ATTAINMENT = "sales_attainment", _("Sales attainment")
    KEYACCOUNT_PROGRESS = "keyaccount_progress", _("Key-account progress report")


class Frequency(models.TextChoices):
    MONTH = "month", _("Monthly (the month before, on the 1st)")
    QUARTER = "quarter", _("Quarterly (the quarter before, on its first day)")
    YEAR = "year", _("Yearly (the year before, on 1 January)")


class ReportSubscription(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.CASCADE, related_name="report_subscriptions", verbose_name=_("user")
    )
    report = models.CharField(_("report"), max_length=24, choices=Report.choices)
    # how often it is mailed, not the safety forms' 给药频次 (a dose's frequency) that the plain word translates to
    frequency = models.CharField(
        pgettext_lazy("report schedule", "frequency"), max_length=8, choices=Frequency.choices, default=Frequency.MONTH
    )
    team = models.ForeignKey(
        "core.Team", models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("team"),
        help_text=_("Only this team's figures (service performance and complaint analysis); empty: all you may see."),
    )  # fmt: skip
    active = models.BooleanField(_("active"), default=True)
    next_run_at = models.DateTimeField(_("next mail"))
    # the period of the run being sent (set when a worker takes it, cleared when it is done): a run whose worker
    # stopped mid-send is not sent again by itself — it may have gone out
    sending_since = models.DateTimeField(null=True, blank=True, editable=False)
    attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    last_period = models.CharField(_("last period sent"), max_length=7, blank=True)
    last_sent_at = models.DateTimeField(_("last sent"), null=True, blank=True)
    last_error = models.CharField(_("last problem"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("report subscription")
        verbose_name_plural = _("report subscriptions")
        ordering = ["user", "report", "frequency", "id"]
        indexes = [models.Index(fields=["active", "next_run_at"], name="report_sub_due")]
        constraints = [
            # one subscription per report, frequency and team (a double-clicked "Subscribe" makes one)
            models.UniqueConstraint(
                fields=["user", "report", "frequency", "team"], condition=Q(team__isnull=False),
                name="report_sub_unique_team",
            ),  # fmt: skip
            models.UniqueConstraint(
                fields=["user", "report", "frequency"], condition=Q(team__isnull=True), name="report_sub_unique_all"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_report_display()} · {self.get_frequency_display()}"
