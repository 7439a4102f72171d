"""Cooperation agreements (合作协议) with any medical customer, numbered HZ-YYYY-NNNN and archived with their
signed copy, and the cooperation projects (合作项目) carried out under them: plan and tasks, periodic checks,
acceptance (验收) and settlement (结算). Seed 002 §五 and §三.(三).3; docs/cooperation.md."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core.amendments import TermAmendment


class AgreementType(models.TextChoices):
    ACADEMIC = "academic", _("Academic cooperation")
    CLINICAL = "clinical", _("Clinical research")
    DISTRIBUTION = "distribution", _("Drug distribution")
    TECHNICAL = "technical", _("Technical service")
    TRAINING = "training", _("Training")
    OTHER = "other", _("Other")


class AgreementStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SIGNED = "signed", _("Signed")
    IN_FORCE = "in_force", _("In force")
    EXPIRED = "expired", _("Expired")
    TERMINATED = "terminated", _("Terminated")


class ProjectStatus(models.TextChoices):
    PLANNING = "planning", _("Planning")
    RUNNING = "running", _("Running")
    ACCEPTED = "accepted", _("Accepted, awaiting settlement")
    CLOSED = "closed", _("Closed")


class TaskStatus(models.TextChoices):
    TODO = "todo", _("To do")
    DOING = "doing", _("In progress")
    DONE = "done", _("Done")


class AcceptanceResult(models.TextChoices):
    PASSED = "passed", _("Passed")
    REMARKS = "remarks", _("Passed with remarks")
    FAILED = "failed", _("Failed")


class SettlementStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    PARTLY = "partly", _("Partly paid")
    SETTLED = "settled", _("Settled")


class Agreement(models.Model):
    number = models.CharField(_("number"), max_length=20, unique=True, editable=False)
    institution = models.ForeignKey("customers.Institution", models.PROTECT, related_name="cooperation_agreements",
                                    verbose_name=_("customer"))  # fmt: skip
    kind = models.CharField(_("type"), max_length=16, choices=AgreementType.choices)
    title = models.CharField(pgettext_lazy("record title", "title"), max_length=200)
    company_signer = models.CharField(_("signer for the company"), max_length=100)
    customer_signer = models.CharField(_("signer for the customer"), max_length=100, blank=True)
    start_date = models.DateField(_("start"))
    end_date = models.DateField(_("end"))
    amount = models.DecimalField(_("amount (yuan)"), max_digits=14, decimal_places=2, null=True, blank=True)
    terms = models.TextField(_("rights and obligations"), blank=True)
    payment_terms = models.TextField(_("payment terms"), blank=True)
    status = models.CharField(_("status"), max_length=12, choices=AgreementStatus.choices,
                              default=AgreementStatus.DRAFT)  # fmt: skip
    signed_date = models.DateField(_("signed on"), null=True, blank=True)
    signed_copy = models.CharField(_("signed copy"), max_length=300, blank=True, editable=False)  # a name under var/cooperation/
    signed_copy_name = models.CharField(max_length=200, blank=True, editable=False)
    signed_copy_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="cooperation_agreements",
                              verbose_name=_("responsible person"))  # fmt: skip
    team = models.ForeignKey("core.Team", models.SET_NULL, null=True, blank=True, related_name="+",
                             verbose_name=_("team"))  # fmt: skip
    renewal_notified_at = models.DateTimeField(_("renewal reminder sent"), null=True, blank=True, editable=False)
    # the end the renewal reminder sent named: an amendment moving the end elsewhere brings one for the new end
    renewal_notified_for = models.DateField(_("renewal reminder sent for the end"), null=True, blank=True,
                                            editable=False)  # fmt: skip
    version = models.PositiveIntegerField(default=1, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("cooperation agreement")
        verbose_name_plural = _("cooperation agreements")
        ordering = ["-number"]
        indexes = [
            models.Index(fields=["institution", "-number"], name="coop_agreement_customer"),
            models.Index(fields=["status", "end_date"], name="coop_agreement_status_end"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.title}"


class AgreementAmendment(TermAmendment):
    """An amendment of a signed cooperation agreement's term (补充协议); its PDF is made from the record when downloaded,
    as the agreement's (core/amendments.py)."""

    agreement = models.ForeignKey(Agreement, models.PROTECT, related_name="amendments", verbose_name=_("agreement"))

    class Meta(TermAmendment.Meta):
        verbose_name = _("amendment of a cooperation agreement")
        verbose_name_plural = _("amendments of cooperation agreements")


class Project(models.Model):
    agreement = models.ForeignKey(Agreement, models.PROTECT, related_name="projects", verbose_name=_("agreement"))
    title = models.CharField(pgettext_lazy("record title", "title"), max_length=200)
    goal = models.TextField(pgettext_lazy("cooperation project", "goal"))
    responsible = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="cooperation_projects",
                                    verbose_name=_("responsible person"))  # fmt: skip
    start_date = models.DateField(_("start"))
    end_date = models.DateField(_("end"))
    budget = models.DecimalField(_("budget (yuan)"), max_digits=14, decimal_places=2, null=True, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=ProjectStatus.choices,
                              default=ProjectStatus.PLANNING)  # fmt: skip
    amount_due = models.DecimalField(_("amount due (yuan)"), max_digits=14, decimal_places=2, null=True, blank=True)
    settlement_due_date = models.DateField(_("payment due"), null=True, blank=True)
    settlement_status = models.CharField(_("settlement"), max_length=10, choices=SettlementStatus.choices,
                                         default=SettlementStatus.PENDING)  # fmt: skip
    version = models.PositiveIntegerField(default=1, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("cooperation project")
        verbose_name_plural = _("cooperation projects")
        ordering = ["-start_date", "-id"]

    def __str__(self) -> str:
        return self.title

    @property
    def amount_paid(self) -> Decimal:
        return sum((p.amount for p in self.payments.all()), Decimal("0.00"))


class Task(models.Model):
    project = models.ForeignKey(Project, models.CASCADE, related_name="tasks")
    title = models.CharField(_("task"), max_length=200)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="cooperation_tasks",
                              verbose_name=_("owner"))  # fmt: skip
    deadline = models.DateField(_("deadline"))
    status = models.CharField(_("status"), max_length=8, choices=TaskStatus.choices, default=TaskStatus.TODO)
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    overdue_notified_at = models.DateTimeField(_("overdue alert sent"), null=True, blank=True, editable=False)
    # two people reporting the same task's progress: the second, on a stale version, is refused naming the first
    version = models.PositiveIntegerField(default=1, editable=False)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True,
                                   related_name="+", editable=False)  # fmt: skip

    class Meta:
        ordering = ["deadline", "id"]
        indexes = [models.Index(fields=["status", "deadline"], name="coop_task_due")]
        verbose_name = _("cooperation project task")
        verbose_name_plural = _("cooperation project tasks")

    def __str__(self) -> str:
        return self.title


class Check(models.Model):
    """A periodic check of the project (监控与评估): how far it is, what went wrong, what is done about it."""

    project = models.ForeignKey(Project, models.CASCADE, related_name="checks")
    checked_on = models.DateField(_("date"))
    progress = models.PositiveSmallIntegerField(_("progress (%)"))
    problems = models.TextField(_("problems"), blank=True)
    measures = models.TextField(_("measures"), blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+")

    class Meta:
        ordering = ["-checked_on", "-id"]
        verbose_name = _("cooperation project check")
        verbose_name_plural = _("cooperation project checks")

    def __str__(self) -> str:
        return f"{self.checked_on.isoformat()} {self.progress}%"


class Acceptance(models.Model):
    """An acceptance (验收) against the agreement's standards; a failed one leaves the project running."""

    project = models.ForeignKey(Project, models.CASCADE, related_name="acceptances")
    accepted_on = models.DateField(_("date"))
    result = models.CharField(_("result"), max_length=8, choices=AcceptanceResult.choices)
    standards = models.TextField(_("standards checked"))
    remarks = models.TextField(_("remarks"), blank=True)
    accepted_by = models.CharField(_("accepted by"), max_length=100)
    attachment = models.CharField(_("attachment"), max_length=300, blank=True, editable=False)
    attachment_name = models.CharField(max_length=200, blank=True, editable=False)
    attachment_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+")

    class Meta:
        ordering = ["-accepted_on", "-id"]
        verbose_name = _("cooperation project acceptance")
        verbose_name_plural = _("cooperation project acceptances")

    def __str__(self) -> str:
        return f"{self.accepted_on.isoformat()} {self.get_result_display()}"

    @property
    def audit_name(self) -> tuple[str, str, str]:
        """What its audit entries name it by: its date and its result's code (2026-12-08 passed), which the audit page
        shows in its reader's language (crm.AUDIT_NAMED_BY_CODES) — str() reads in the actor's language, and an English
        user's acceptance read "2026-12-08 Passed" to every Chinese auditor."""
        return self._meta.label_lower, str(self.pk), f"{self.accepted_on.isoformat()} {self.result}"


class Payment(models.Model):
    """A payment of the project's settlement (结算)."""

    project = models.ForeignKey(Project, models.CASCADE, related_name="payments")
    paid_on = models.DateField(_("paid on"))
    amount = models.DecimalField(_("amount (yuan)"), max_digits=14, decimal_places=2)
    invoice_number = models.CharField(_("invoice number"), max_length=50, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+")

    class Meta:
        ordering = ["paid_on", "id"]
        verbose_name = _("cooperation project payment")
        verbose_name_plural = _("cooperation project payments")

    def __str__(self) -> str:
        return f"{self.paid_on.isoformat()} ¥{self.amount:,}"
