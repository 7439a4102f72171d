"""Interactions (拜访 / 通话 / 微信沟通): what a rep, KAM or agent heard from a customer. Every interaction
text is screened by the safety net: a reaction mentioned during a hospital visit starts the company's
regulatory clock that day."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


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
            # a period's interactions (the channel effect), the newest first (the list of every interaction)
            models.Index(fields=["-received_at", "-id"], name="interaction_received"),
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
    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic locking: two managers editing

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


# --- the customer lifecycle (客户生命周期, seed 000 §6.4): the playbook per stage and the customers' stage tasks ------


class StageActionKind(models.TextChoices):
    CALL = "call", _("Call")
    VISIT = "visit", _("Visit")
    MATERIAL = "material", _("Send material")
    DEMO = "demo", _("Demonstration or trial")
    SURVEY = "survey", _("Satisfaction survey")
    REVISIT = "revisit", _("Revisit")


class StageAssignee(models.TextChoices):
    OWNER = "owner", _("The customer's owner")
    LEAD = "lead", _("The lead of the customer's team")


class StageAction(models.Model):
    """One step of the stage playbook (阶段行动): what the company wants done when a customer enters `stage` — its
    kind, title, due within `due_days` working days, by the owner or the team's lead. Managers edit it (versioned,
    audited); an action taken out of the playbook is kept inactive for the tasks that name it."""

    stage = models.CharField(_("lifecycle stage"), max_length=12)  # customers.choices.Stage
    position = models.PositiveSmallIntegerField(_("order"), default=1)
    kind = models.CharField(_("kind"), max_length=10, choices=StageActionKind.choices)
    title = models.CharField(pgettext_lazy("record title", "title"), max_length=200, blank=True)
    preset = models.CharField(max_length=40, blank=True, editable=False)  # a default's key: its title, translated
    due_days = models.PositiveSmallIntegerField(_("due within (working days)"))
    assignee = models.CharField(_("who"), max_length=8, choices=StageAssignee.choices, default=StageAssignee.OWNER)
    active = models.BooleanField(_("in the playbook"), default=True)
    version = models.PositiveIntegerField(default=1, editable=False)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        verbose_name = _("stage action")
        verbose_name_plural = _("stage actions")
        ordering = ["stage", "position", "id"]
        indexes = [models.Index(fields=["stage", "active", "position"], name="stage_action_stage")]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        """The title a manager wrote, else the default's, in the reader's language."""
        if self.title:
            return self.title
        from .playbook import PRESET_TITLES

        return str(PRESET_TITLES.get(self.preset, self.preset))


class StageSpell(models.Model):
    """A customer's time at one lifecycle stage: from when it entered to when it left (open while it is there) —
    what days in stage, time in stage and conversion between stages are read from."""

    MERGE_KEEP = True  # a merged-away customer's history stays its own; the survivor keeps its stage

    institution = models.ForeignKey("customers.Institution", models.CASCADE, null=True, blank=True, related_name="+")
    person = models.ForeignKey("customers.Person", models.CASCADE, null=True, blank=True, related_name="+")
    stage = models.CharField(_("lifecycle stage"), max_length=12)
    entered_at = models.DateTimeField(_("entered"))
    left_at = models.DateTimeField(_("left"), null=True, blank=True)

    class Meta:
        verbose_name = _("time in a stage")
        verbose_name_plural = _("times in stages")
        ordering = ["-entered_at", "-id"]
        indexes = [
            models.Index(fields=["institution", "left_at"], name="stage_spell_institution"),
            models.Index(fields=["person", "left_at"], name="stage_spell_person"),
            models.Index(fields=["entered_at"], name="stage_spell_entered"),
        ]

    def __str__(self) -> str:
        return f"{self.stage} {self.entered_at:%Y-%m-%d}"


class StageTaskStatus(models.TextChoices):
    OPEN = "open", _("Open")
    DONE = "done", _("Done")
    SKIPPED = "skipped", _("Skipped")
    LEFT = "left", _("Stage left")


class StageTask(models.Model):
    """One playbook action to do for one customer that entered its stage: who, by when, and what came of it — done
    (with the interaction that recorded it), skipped with a reason, or closed when the customer left the stage."""

    MERGE_KEEP = True  # closed when its customer is merged away: the survivor has its own

    institution = models.ForeignKey("customers.Institution", models.CASCADE, null=True, blank=True, related_name="+",
                                    verbose_name=_("institution"))  # fmt: skip
    person = models.ForeignKey("customers.Person", models.CASCADE, null=True, blank=True, related_name="+",
                               verbose_name=_("person"))  # fmt: skip
    action = models.ForeignKey(StageAction, models.PROTECT, related_name="tasks", verbose_name=_("action"))
    stage = models.CharField(_("lifecycle stage"), max_length=12)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+",
                              verbose_name=_("owner"), db_index=False)  # fmt: skip
    team = models.ForeignKey("core.Team", models.SET_NULL, null=True, blank=True, related_name="+",
                             verbose_name=_("team"), db_index=False)  # fmt: skip
    # counted, like the SLA clocks, on the weekly pattern less the days the law fixes where the business calendar
    # lacks a year's holidays (due_provisional), and dated again when the year is entered (playbook.redate_provisional);
    # None only for a task given before that
    due_on = models.DateField(_("due"), null=True, blank=True)
    due_provisional = models.BooleanField(_("due date provisional"), default=False)
    status = models.CharField(_("status"), max_length=8, choices=StageTaskStatus.choices, default=StageTaskStatus.OPEN)
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    note = models.TextField(_("note"), blank=True)
    done_at = models.DateTimeField(_("done"), null=True, blank=True)
    done_on = models.DateField(null=True, blank=True, editable=False)  # China's day of done_at: on time or late
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    interaction = models.ForeignKey(Interaction, models.SET_NULL, null=True, blank=True, related_name="+",
                                    verbose_name=_("interaction"))  # fmt: skip
    reminded_on = models.DateField(null=True, blank=True, editable=False)  # the overdue reminder went out
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("stage task")
        verbose_name_plural = _("stage tasks")
        ordering = ["due_on", "id"]
        indexes = [
            models.Index(fields=["owner", "status", "due_on"], name="stage_task_owner"),
            models.Index(fields=["team", "status", "due_on"], name="stage_task_team"),
            models.Index(fields=["status", "due_on"], name="stage_task_due"),
            models.Index(fields=["institution", "status"], name="stage_task_institution"),
            models.Index(fields=["person", "status"], name="stage_task_person"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.due_on}"

    @property
    def customer(self):
        return self.institution if self.institution_id else self.person
