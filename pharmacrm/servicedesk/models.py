"""Service-desk data: business calendars (工作日历), ticket categories, SLA policies, tickets with their
history, and the SLA clocks the worker watches."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core import crypto
from pharmacrm.core.builtin import BuiltinNameMixin
from pharmacrm.core.fields import EncryptedTextField
from pharmacrm.core.unique import NamedUniqueMixin
from pharmacrm.customers import normalise
from pharmacrm.customers.choices import PreferredLanguage, Tier

from . import workcalendar
from .choices import (
    ActionStatus,
    AppealStatus,
    AssignMethod,
    CampaignPeriod,
    CampaignStatus,
    Channel,
    ClockKind,
    Complexity,
    Delivery,
    EscalationNotify,
    EventKind,
    Impact,
    LinkKind,
    LowScore,
    MessageKind,
    Priority,
    RootCause,
    Status,
    SurveyChannel,
    TargetMail,
    TargetReach,
)


def _validate_time_zone(value: str) -> None:
    try:
        workcalendar.WorkCalendar(time_zone=value, always_on=True)
    except workcalendar.CalendarError:
        raise ValidationError(_("“%(value)s” is not a known time zone."), params={"value": value}) from None


def default_windows() -> list[list[str]]:
    return [[s.strftime("%H:%M"), e.strftime("%H:%M")] for s, e in workcalendar.DEFAULT_WINDOWS]


def default_workdays() -> list[int]:
    return sorted(workcalendar.MONDAY_TO_FRIDAY)


class BusinessCalendar(NamedUniqueMixin, BuiltinNameMixin, models.Model):
    """A working calendar the SLA clocks run on (工作日历)."""

    UNIQUE_MESSAGES = {
        "code": _("A calendar with the code “%(value)s” exists already: choose another code."),
        "name": _("A calendar named “%(value)s” exists already: choose another name."),
    }

    code = models.SlugField(_("code"), max_length=40, unique=True)  # what policies and the API refer to
    name = models.CharField(_("name"), max_length=100, unique=True)
    time_zone = models.CharField(
        _("time zone"), max_length=64, default=workcalendar.DEFAULT_TIME_ZONE, validators=[_validate_time_zone]
    )
    # [["08:30", "12:00"], ["13:30", "17:30"]]: several windows a day, in local time
    windows = models.JSONField(_("working windows"), default=default_windows, blank=True)
    workdays = models.JSONField(_("working weekdays"), default=default_workdays, blank=True)  # Monday = 0
    official_holidays = models.BooleanField(
        _("follow China's official holidays"), default=True,
        help_text=_("Public holidays and swapped working days (调休) as published by the State Council."),
    )  # fmt: skip
    always_on = models.BooleanField(_("24×7"), default=False, help_text=_("Every hour of every day counts."))
    version = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("business calendar")
        verbose_name_plural = _("business calendars")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.label

    def clean(self) -> None:
        try:
            self.engine(overrides={})
        except (workcalendar.CalendarError, ValueError, TypeError) as e:
            raise ValidationError({"windows": [_("These working windows are not valid: %(reason)s") % {"reason": e}]}) from None

    def engine(self, overrides: dict[dt.date, bool] | None = None) -> workcalendar.WorkCalendar:
        """The calendar as the clock arithmetic sees it (overrides read from the database unless given)."""
        if overrides is None:
            overrides = dict(self.overrides.values_list("date", "working"))
        return workcalendar.WorkCalendar(
            time_zone=self.time_zone,
            windows=tuple((_parse_time(s), _parse_time(e, end=True)) for s, e in (self.windows or [])),
            workdays=frozenset(int(d) for d in (self.workdays or [])),
            official_holidays=self.official_holidays,
            overrides=overrides,
            always_on=self.always_on,
        )


def _parse_time(value: str, *, end: bool = False) -> dt.time:
    if end and str(value) == "24:00":
        return workcalendar.MIDNIGHT  # a window's end at midnight, the end of its day
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError:
        raise workcalendar.CalendarError(f"{value!r} is not a time of day (HH:MM)") from None


class CalendarOverride(models.Model):
    """One date made a holiday or a working day on a calendar, whatever the official schedule says — for a
    year the chinese-calendar package does not know yet, a company holiday, or an extra working day."""

    calendar = models.ForeignKey(
        BusinessCalendar, models.CASCADE, related_name="overrides", verbose_name=_("calendar")
    )
    date = models.DateField(_("date"))
    working = models.BooleanField(_("working day"))
    note = models.CharField(_("note"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("calendar override")
        verbose_name_plural = _("calendar overrides")
        ordering = ["date"]
        constraints = [models.UniqueConstraint(fields=["calendar", "date"], name="calendar_override_once")]

    def __str__(self) -> str:
        return f"{self.date} {'+' if self.working else '-'}"


# --- tickets ---------------------------------------------------------------------------------------


class TicketCategory(NamedUniqueMixin, BuiltinNameMixin, models.Model):
    """A node of the configurable category tree (工单分类), with the priority and complexity a new ticket
    of this kind gets (seed 000 §5.1 and §3.4)."""

    UNIQUE_MESSAGES = {"code": _("A ticket category with the code “%(value)s” exists already: choose another code.")}

    code = models.SlugField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=100)
    parent = models.ForeignKey(
        "self", models.PROTECT, null=True, blank=True, related_name="children", verbose_name=_("parent category")
    )
    default_priority = models.CharField(_("default priority"), max_length=8, choices=Priority.choices)
    default_complexity = models.CharField(_("default complexity"), max_length=8, choices=Complexity.choices)
    safety_relevant = models.BooleanField(
        _("safety-relevant"), default=False, help_text=_("Tickets of this kind are handed to pharmacovigilance.")
    )
    low_score_action = models.CharField(
        _("after a poor revisit"), max_length=8, choices=LowScore.choices, default=LowScore.ACTION,
        help_text=_("What a satisfaction score of 2 or less, or “not solved”, does to a ticket of this kind."),
    )  # fmt: skip
    complaint = models.BooleanField(
        _("complaint"), default=False,
        help_text=_("Tickets of this kind are complaints: resolving one needs an assessment of its impact on the "
                    "customer and on the company, and key-account reviews count them."),
    )  # fmt: skip
    active = models.BooleanField(_("active"), default=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic locking

    class Meta:
        verbose_name = _("ticket category")
        verbose_name_plural = _("ticket categories")
        ordering = ["position", "code"]

    def __str__(self) -> str:
        return self.label


class SlaPolicy(NamedUniqueMixin, BuiltinNameMixin, models.Model):
    """Which deadlines a ticket gets. A policy applies when each condition it sets matches the ticket;
    the most specific active policy wins (then the lowest position). Targets are working hours or working
    days on the policy's calendar."""

    UNIQUE_MESSAGES = {"name": _("An SLA policy named “%(value)s” exists already: choose another name.")}

    class Unit(models.TextChoices):
        HOURS = "hours", _("working hours")
        DAYS = "days", _("working days")

    name = models.CharField(_("name"), max_length=100, unique=True)
    priority = models.CharField(_("priority"), max_length=8, choices=Priority.choices, blank=True)
    complexity = models.CharField(_("complexity"), max_length=8, choices=Complexity.choices, blank=True)
    category = models.ForeignKey(
        TicketCategory, models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("category")
    )
    customer_tier = models.CharField(_("customer tier"), max_length=12, choices=Tier.choices, blank=True)
    calendar = models.ForeignKey(BusinessCalendar, models.PROTECT, related_name="+", verbose_name=_("calendar"))
    first_response = models.PositiveIntegerField(_("first response target"))
    first_response_unit = models.CharField(_("unit"), max_length=5, choices=Unit.choices, default=Unit.HOURS)
    resolution = models.PositiveIntegerField(_("resolution target"))
    resolution_unit = models.CharField(_("unit"), max_length=5, choices=Unit.choices, default=Unit.DAYS)
    position = models.PositiveSmallIntegerField(_("position"), default=100)
    active = models.BooleanField(_("active"), default=True)
    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic locking

    class Meta:
        verbose_name = _("SLA policy")
        verbose_name_plural = _("SLA policies")
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.label

    CONDITIONS = ("priority", "complexity", "category_id", "customer_tier")

    def matches(self, facts: dict) -> bool:
        """Whether every condition the policy sets holds for the ticket's `facts`. A policy on a category also
        covers its sub-categories (`facts["categories"]`: the ticket's category and its parents), as an
        assignment rule or an agent's skill on a parent does."""
        for c in self.CONDITIONS:
            wanted = getattr(self, c)
            if not wanted:
                continue
            if c == "category_id" and "categories" in facts:
                if wanted not in facts["categories"]:
                    return False
            elif wanted != facts.get(c):
                return False
        return True

    @property
    def specificity(self) -> int:
        return sum(1 for c in self.CONDITIONS if getattr(self, c))

    def target(self, kind: str) -> tuple[int, str]:
        if kind == ClockKind.FIRST_RESPONSE:
            return self.first_response, self.first_response_unit
        return self.resolution, self.resolution_unit


# --- knowledge: the product catalogue and answer templates -----------------------------------------

APPROVAL_NUMBER_HELP = _("国药准字 followed by H, Z, S, J, B or F and eight digits, e.g. 国药准字H20059876.")


def validate_approval_number(value: str) -> None:
    """国药准字 + one letter (H chemical, Z traditional Chinese, S biological, J imported repackaged,
    B health supplement, F auxiliary) + 8 digits."""
    import re

    if not re.fullmatch(r"国药准字[HZSJBF][0-9]{8}", value or ""):  # ASCII digits (\d takes full-width ones)
        raise ValidationError(_("“%(value)s” is not a drug approval number (%(help)s)"),
                              params={"value": value, "help": APPROVAL_NUMBER_HELP})  # fmt: skip


class Product(NamedUniqueMixin, models.Model):
    """A product in the catalogue agents answer from (产品目录)."""

    UNIQUE_MESSAGES = {
        "approval_number": _("A product with the approval number %(value)s is in the catalogue already: one approval "
                             "number is one product."),
    }

    brand_name = models.CharField(_("brand name"), max_length=100)
    generic_name = models.CharField(_("generic name"), max_length=100)
    approval_number = models.CharField(
        _("approval number"), max_length=16, unique=True, validators=[validate_approval_number],
        help_text=APPROVAL_NUMBER_HELP,
    )  # fmt: skip
    dosage_form = models.CharField(_("dosage form"), max_length=40)
    strength = models.CharField(_("strength"), max_length=60)
    indications = models.TextField(_("indications"), blank=True)
    contraindications = models.TextField(_("contraindications"), blank=True)
    usage = models.TextField(_("usage and dosage"), blank=True)
    active = models.BooleanField(_("active"), default=True)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")
        ordering = ["brand_name", "strength"]

    def __str__(self) -> str:
        return f"{self.brand_name}（{self.generic_name}）{self.strength}"


class AnswerTemplate(NamedUniqueMixin, models.Model):
    """A reusable reply (答复模板) with placeholders such as {customer}, {ticket}, {product}, {agent}."""

    UNIQUE_MESSAGES = {"name": _("An answer template named “%(value)s” exists already: choose another name.")}

    name = models.CharField(_("name"), max_length=100, unique=True)
    category = models.ForeignKey(
        TicketCategory, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("category")
    )
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES, default="zh-hans")
    body = models.TextField(_("text"))
    active = models.BooleanField(_("active"), default=True)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("answer template")
        verbose_name_plural = _("answer templates")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


NO_DEADLINE = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)  # sorts an open ticket without SLA after all others


class Ticket(models.Model):
    """A customer's request, question or complaint (工单), from intake to the revisit."""

    number = models.CharField(_("number"), max_length=16, unique=True, editable=False)  # TK-2026-000123
    subject = models.CharField(_("subject"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    received_at = models.DateTimeField(_("received at"))  # may be earlier than created_at
    category = models.ForeignKey(TicketCategory, models.PROTECT, related_name="+", verbose_name=_("category"))
    priority = models.CharField(_("priority"), max_length=8, choices=Priority.choices)
    complexity = models.CharField(_("complexity"), max_length=8, choices=Complexity.choices)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.NEW)
    institution = models.ForeignKey(
        "customers.Institution", models.PROTECT, null=True, blank=True, related_name="tickets",
        verbose_name=_("institution"),
    )  # fmt: skip
    person = models.ForeignKey(
        "customers.Person", models.PROTECT, null=True, blank=True, related_name="tickets", verbose_name=_("person")
    )
    # an unidentified caller: personal data, encrypted like a person's contact details
    caller_name = EncryptedTextField(_("caller's name"))
    caller_phone = EncryptedTextField(_("caller's phone"))
    caller_phone_bidx = models.CharField(max_length=32, blank=True, editable=False, db_index=True)
    batch_number = models.CharField(_("batch / lot number"), max_length=40, blank=True)
    product = models.ForeignKey(
        Product, models.PROTECT, null=True, blank=True, related_name="tickets", verbose_name=_("product")
    )
    # where replies go for a ticket that came by e-mail or web form (personal data: encrypted)
    reply_email = EncryptedTextField(_("customer's e-mail"))
    # the language the requester used (the web form's page, the mail, the one an agent or an API intake names; else
    # their record's preferred language, else an API intake's Accept-Language): every message the desk sends them on
    # its own, and the survey and status pages their links open, are in it. An agent may change it on the ticket
    # (audited).
    language = models.CharField(
        _("customer's language"), max_length=8, choices=PreferredLanguage.choices, default="zh-hans"
    )
    safety_relevant = models.BooleanField(_("safety-relevant"), default=False)
    boosted = models.BooleanField(
        _("priority boost"), default=False, help_text=_("A VIP or key-account ticket: one step more urgent.")
    )
    escalation_level = models.PositiveSmallIntegerField(_("escalation level"), default=0)
    escalated_at = models.DateTimeField(_("escalated"), null=True, blank=True)
    merged_into = models.ForeignKey(
        "self", models.SET_NULL, null=True, blank=True, related_name="merged", verbose_name=_("merged into")
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("assignee")
    )
    team = models.ForeignKey(
        "core.Team", models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("team")
    )
    policy = models.ForeignKey(
        SlaPolicy, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("SLA policy")
    )
    resolution_summary = models.TextField(_("resolution summary"), blank=True)
    root_cause = models.CharField(_("root cause"), max_length=20, choices=RootCause.choices, blank=True)
    # a complaint's impact, assessed when it is resolved (TicketCategory.complaint)
    customer_impact = models.CharField(_("impact on the customer"), max_length=8, choices=Impact.choices, blank=True)
    company_impact = models.CharField(_("impact on the company"), max_length=8, choices=Impact.choices, blank=True)
    impact_note = models.TextField(_("impact assessment"), blank=True)
    # the earliest deadline not met yet (what queues sort by), kept by services.rebuild_clocks; empty once
    # nothing is due (resolved, closed); NO_DEADLINE for an open ticket without an SLA policy
    next_due_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic locking

    class Meta:
        verbose_name = _("ticket")
        verbose_name_plural = _("tickets")
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["status", "-received_at"], name="ticket_status_received"),
            # queues: an agent's, a team's, the unassigned and all open tickets, in deadline order
            # (status rides along so that a status filter is checked in the index, not in the table)
            models.Index(fields=["assignee", "next_due_at", "id", "status"], name="ticket_assignee_due"),
            models.Index(fields=["team", "next_due_at", "id", "status"], name="ticket_team_due"),
            models.Index(fields=["next_due_at", "id", "status"], name="ticket_due"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.subject}"

    def refresh_derived(self) -> None:
        self.caller_phone_bidx = crypto.blind_index(normalise.phone(self.caller_phone), "phone")

    TIER_RANK = (Tier.NEW, Tier.REGULAR, Tier.VIP, Tier.KEY)  # lowest first

    def customer_tier(self) -> str:
        """The tier an SLA policy's condition is matched against: the highest of the person's, the institution's
        and (for a department) its hospital's — the same tiers the assignment rules and the VIP boost read, so a
        doctor of a key-account hospital gets the key accounts' policy as well as their boost."""
        from .routing import customer_tiers

        tiers = customer_tiers(self)
        return max(tiers, key=lambda t: self.TIER_RANK.index(t) if t in self.TIER_RANK else -1, default="")


class TicketEvent(models.Model):
    """One step in a ticket's history; the SLA clocks are rebuilt from these, so nothing is ever edited."""

    ticket = models.ForeignKey(Ticket, models.CASCADE, related_name="events", verbose_name=_("ticket"))
    at = models.DateTimeField(_("when"))
    kind = models.CharField(_("kind"), max_length=12, choices=EventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("by")
    )
    from_status = models.CharField(max_length=12, choices=Status.choices, blank=True)
    to_status = models.CharField(max_length=12, choices=Status.choices, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("ticket event")
        verbose_name_plural = _("ticket events")
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["ticket", "at", "id"], name="ticket_event_order")]

    def __str__(self) -> str:
        return f"{self.ticket.number} {self.kind} {self.at:%Y-%m-%d %H:%M}"


class SlaClock(models.Model):
    """One deadline of one ticket (first response or resolution), stored so that the worker finds what is
    due through an index instead of scanning tickets. `next_check_at` is the next moment the worker must
    look at the clock (the 75 % warning, then the deadline); it is empty when the clock is fulfilled,
    paused or already breached, which keeps those rows out of the partial index."""

    ticket = models.ForeignKey(Ticket, models.CASCADE, related_name="clocks", verbose_name=_("ticket"))
    kind = models.CharField(_("kind"), max_length=16, choices=ClockKind.choices)
    policy = models.ForeignKey(SlaPolicy, models.SET_NULL, null=True, related_name="+", verbose_name=_("SLA policy"))
    calendar = models.ForeignKey(BusinessCalendar, models.PROTECT, related_name="+", verbose_name=_("calendar"))
    target = models.PositiveIntegerField(_("target"))
    unit = models.CharField(_("unit"), max_length=5, choices=SlaPolicy.Unit.choices)
    started_at = models.DateTimeField(_("started"))
    paused = models.BooleanField(_("paused"), default=False)
    paused_seconds = models.PositiveIntegerField(_("working time paused"), default=0)  # in working time
    warn_at = models.DateTimeField(_("warning at"), null=True)
    due_at = models.DateTimeField(_("due"), null=True)
    warned_at = models.DateTimeField(_("warned"), null=True, blank=True)
    breached_at = models.DateTimeField(_("breached"), null=True, blank=True)
    breach_holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("held by at the breach"),
    )  # fmt: skip
    fulfilled_at = models.DateTimeField(_("met"), null=True, blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0, editable=False)  # levels fired for this clock
    next_check_at = models.DateTimeField(null=True, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)  # a worker's lease

    class Meta:
        verbose_name = _("SLA clock")
        verbose_name_plural = _("SLA clocks")
        constraints = [models.UniqueConstraint(fields=["ticket", "kind"], name="sla_clock_once")]
        indexes = [
            models.Index(
                fields=["next_check_at"], condition=models.Q(next_check_at__isnull=False), name="sla_clock_due"
            )
        ]

    def __str__(self) -> str:
        return f"{self.ticket.number} {self.kind} {self.due_at}"


# --- conversation, attachments, links ---------------------------------------------------------------


class TicketMessage(models.Model):
    """A reply to the customer, an internal note, or a message from the customer (e-mail, web form).
    E-mail threading: `message_id` is the RFC 5322 Message-ID this message went out or came in with, so
    that a customer's answer (In-Reply-To / References) finds its ticket."""

    ticket = models.ForeignKey(Ticket, models.CASCADE, related_name="messages", verbose_name=_("ticket"))
    kind = models.CharField(_("kind"), max_length=8, choices=MessageKind.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("by")
    )
    body = models.TextField(_("text"))
    sender = EncryptedTextField(_("from"))  # the customer's address on an inbound mail
    recipient = EncryptedTextField(_("to"))  # where a reply was sent
    subject = models.CharField(_("subject"), max_length=250, blank=True)
    message_id = models.CharField(max_length=250, null=True, blank=True, unique=True, editable=False)
    in_reply_to = models.CharField(max_length=250, blank=True, editable=False)
    template = models.ForeignKey(
        AnswerTemplate, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("template")
    )
    delivery = models.CharField(_("delivery"), max_length=8, choices=Delivery.choices, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    last_error = models.CharField(max_length=500, blank=True, editable=False)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("ticket message")
        verbose_name_plural = _("ticket messages")
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["ticket", "created_at"], name="ticket_message_order"),
            models.Index(fields=["delivery"], condition=models.Q(delivery__in=["pending", "failed"]),
                         name="ticket_message_outbox"),  # fmt: skip
        ]

    def __str__(self) -> str:
        return f"{self.ticket.number} {timezone.localtime(self.created_at):%Y-%m-%d %H:%M}"

    @property
    def last_error_shown(self) -> str:
        """Why the last delivery attempt failed, in the reader's language (a reason of ours is kept as a code)."""
        from pharmacrm.core import notsent

        return notsent.shown(self.last_error)


def attachment_path(instance, filename: str) -> str:
    # never the uploader's file name on disk: a random name under the ticket's year
    import secrets

    return f"attachments/{timezone.now():%Y/%m}/{secrets.token_hex(16)}"


class Attachment(models.Model):
    """A file on a ticket; stored under var/files (outside the web root), served only after an access
    check, with the type and size limits in settings (ATTACHMENT_TYPES, ATTACHMENT_MAX_BYTES)."""

    ticket = models.ForeignKey(Ticket, models.CASCADE, related_name="attachments", verbose_name=_("ticket"))
    message = models.ForeignKey(
        TicketMessage, models.SET_NULL, null=True, blank=True, related_name="attachments", verbose_name=_("message")
    )
    file = models.FileField(_("file"), upload_to=attachment_path, max_length=200)
    name = models.CharField(_("file name"), max_length=200)
    content_type = models.CharField(_("type"), max_length=100)
    size = models.PositiveBigIntegerField(_("size"))
    sha256 = models.CharField(max_length=64, editable=False)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("by")
    )
    created_at = models.DateTimeField(_("added"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.name


class TicketLink(models.Model):
    """Two tickets that belong together; `duplicate` points from the duplicate to the ticket it repeats."""

    from_ticket = models.ForeignKey(Ticket, models.CASCADE, related_name="links_out", verbose_name=_("ticket"))
    to_ticket = models.ForeignKey(Ticket, models.CASCADE, related_name="links_in", verbose_name=_("linked ticket"))
    kind = models.CharField(_("kind"), max_length=10, choices=LinkKind.choices, default=LinkKind.RELATED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("by")
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("ticket link")
        verbose_name_plural = _("ticket links")
        constraints = [
            models.UniqueConstraint(fields=["from_ticket", "to_ticket"], name="ticket_link_once"),
            models.CheckConstraint(condition=~models.Q(from_ticket=models.F("to_ticket")), name="ticket_link_not_self"),
        ]

    def __str__(self) -> str:
        """E.g. "TK-2026-000005 is related to TK-2026-000006", translated (audit trail, recent changes)."""
        names = {"from": self.from_ticket.number, "to": self.to_ticket.number}
        if self.kind == LinkKind.DUPLICATE:
            return str(_("%(from)s is a duplicate of %(to)s") % names)
        return str(_("%(from)s is related to %(to)s") % names)


# --- assignment and escalation ------------------------------------------------------------------------


class AgentProfile(models.Model):
    """What the assignment rules need to know about a user who handles tickets: skills and duty."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, models.CASCADE, related_name="agent_profile", verbose_name=_("user")
    )
    skills = models.ManyToManyField(
        TicketCategory, blank=True, related_name="+", verbose_name=_("skills"),
        help_text=_("Categories this person handles; none means every category."),
    )  # fmt: skip
    products = models.ManyToManyField(
        Product, blank=True, related_name="+", verbose_name=_("products"),
        help_text=_("Products this person knows; none means every product."),
    )  # fmt: skip
    on_duty = models.BooleanField(_("on duty"), default=True)
    max_open = models.PositiveSmallIntegerField(
        _("most open tickets"), default=40, help_text=_("No new tickets are assigned above this load.")
    )

    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic locking

    class Meta:
        verbose_name = _("agent profile")
        verbose_name_plural = _("agent profiles")

    def __str__(self) -> str:
        return str(self.user)


class AssignmentRule(NamedUniqueMixin, models.Model):
    """Routes a new ticket to a team (and, by the method, to an agent of that team). The first active rule
    whose every set condition matches wins, in `position` order."""

    UNIQUE_MESSAGES = {"name": _("An assignment rule named “%(value)s” exists already: choose another name.")}

    name = models.CharField(_("name"), max_length=100, unique=True)
    position = models.PositiveSmallIntegerField(_("position"), default=100)
    active = models.BooleanField(_("active"), default=True)
    category = models.ForeignKey(
        TicketCategory, models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("category")
    )
    product = models.ForeignKey(
        Product, models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("product")
    )
    customer_tier = models.CharField(_("customer tier"), max_length=12, choices=Tier.choices, blank=True)
    region = models.ForeignKey(
        "core.Region", models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("region"),
        help_text=_("A province, city or district; the customer's region must lie inside it."),
    )  # fmt: skip
    team = models.ForeignKey("core.Team", models.CASCADE, related_name="+", verbose_name=_("team"))
    method = models.CharField(_("method"), max_length=12, choices=AssignMethod.choices, default=AssignMethod.LEAST_LOADED)
    last_assigned = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )  # the round-robin pointer

    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic locking

    class Meta:
        verbose_name = _("assignment rule")
        verbose_name_plural = _("assignment rules")
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class EscalationRule(NamedUniqueMixin, models.Model):
    """One level of the escalation ladder: `after` working minutes (on the clock's calendar) past the
    breach, notify someone and optionally hand the ticket on. A ticket escalates at most once per
    `cooldown` minutes, whichever of its clocks triggers it."""

    UNIQUE_MESSAGES = {"level": _("The escalation ladder has a level %(value)s already: change that level, or choose "
                                  "another number.")}  # fmt: skip

    level = models.PositiveSmallIntegerField(_("level"), unique=True)
    after_minutes = models.PositiveIntegerField(_("minutes after the breach"), default=0)
    notify = models.CharField(_("notify"), max_length=10, choices=EscalationNotify.choices)
    reassign = models.BooleanField(
        _("reassign when nobody acted"), default=False,
        help_text=_("Hand the ticket to another agent of its team when the assignee did nothing since the last level."),
    )  # fmt: skip
    cooldown_minutes = models.PositiveIntegerField(_("cooldown (minutes)"), default=30)
    active = models.BooleanField(_("active"), default=True)
    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic locking

    class Meta:
        verbose_name = _("escalation rule")
        verbose_name_plural = _("escalation rules")
        ordering = ["level"]

    def __str__(self) -> str:
        return f"L{self.level}"


# --- the closed loop: revisit and improvement -----------------------------------------------------------


class SurveyCampaign(models.Model):
    """A periodic customer satisfaction survey (定期满意度调查, e.g. 2026年第四季度客户满意度调查): the customers
    its criteria select (class of the evaluation in force, tier, type, province, owner, team), one contact person
    each, asked by mail (a link of the revisit machinery) or, when not reachable by mail, on the phone."""

    name = models.CharField(_("name"), max_length=120)
    period = models.CharField(_("period"), max_length=7)  # 2026Q4, 2026H2, 2026
    klass = models.CharField(_("customer class"), max_length=1, blank=True)
    tier = models.CharField(_("tier"), max_length=12, blank=True)
    institution_kind = models.CharField(_("institution type"), max_length=16, blank=True)
    province = models.CharField(_("province"), max_length=6, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("owner")
    )
    team = models.ForeignKey("core.Team", models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("team"))
    status = models.CharField(_("status"), max_length=8, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    class_period = models.CharField(_("classes of"), max_length=7, blank=True)  # the evaluation read at the start
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)
    # repeating (a template): every period of its kind, the worker makes and starts the next campaign on the period's
    # first working day at 09:00 Beijing — same criteria — and tells `repeat_by` (who turned repeating on)
    repeat = models.BooleanField(_("repeats"), default=False)
    repeat_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+",
                                  verbose_name=_("repeating set by"))  # fmt: skip
    repeat_next_period = models.CharField(max_length=7, blank=True)
    repeat_next_at = models.DateTimeField(null=True, blank=True)
    repeat_paused = models.CharField(_("repeating paused"), max_length=300, blank=True)
    repeated_from = models.ForeignKey("self", models.SET_NULL, null=True, blank=True, related_name="repeats",
                                      verbose_name=_("repeats the campaign"))  # fmt: skip

    class Meta:
        verbose_name = _("survey campaign")
        verbose_name_plural = _("survey campaigns")
        ordering = ["-period", "-id"]
        constraints = [  # a repeating campaign makes one campaign per period, whatever the worker does
            models.UniqueConstraint(fields=["repeated_from", "period"], name="campaign_repeat_once_per_period"),
        ]
        indexes = [models.Index(fields=["repeat", "repeat_next_at"], name="campaign_repeat_due")]

    def __str__(self) -> str:
        return self.name

    @property
    def period_kind(self) -> str:
        if "Q" in self.period:
            return CampaignPeriod.QUARTER
        return CampaignPeriod.HALF if "H" in self.period else CampaignPeriod.YEAR


class CampaignTarget(models.Model):
    """One customer a campaign asks, its contact person, how they are reached and the survey they answer. Written
    when the campaign starts: one per customer and person (never two surveys in one campaign)."""

    campaign = models.ForeignKey(SurveyCampaign, models.CASCADE, related_name="targets", verbose_name=_("campaign"))
    # named relations (not "+"): a customer merge moves every relation the customer model knows of, and a hidden one
    # it does not — the duplicate kept the campaign's rows and answers, counted for a record merged away
    institution = models.ForeignKey(
        "customers.Institution", models.CASCADE, related_name="campaign_targets", verbose_name=_("customer")
    )
    person = models.ForeignKey(
        "customers.Person", models.SET_NULL, null=True, blank=True, related_name="campaign_targets",
        verbose_name=_("contact person"),
    )  # fmt: skip
    klass = models.CharField(_("customer class"), max_length=1, blank=True)  # as the evaluation read said
    reach = models.CharField(_("reach"), max_length=10, choices=TargetReach.choices)
    reach_date = models.DateField(null=True, blank=True)  # the withdrawal's or the recent answer's day
    mail = models.CharField(_("mail"), max_length=8, choices=TargetMail.choices, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    survey = models.OneToOneField(
        "Survey", models.SET_NULL, null=True, blank=True, related_name="target", verbose_name=_("survey")
    )
    # the one reminder to a contact who did not answer (campaigns.remind_pending): taken (committed) before it is
    # mailed, never sent twice; why it did not go, if it did not
    reminded_at = models.DateTimeField(_("reminded"), null=True, blank=True)
    reminder_error = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name = _("campaign target")
        verbose_name_plural = _("campaign targets")
        ordering = ["campaign", "id"]
        indexes = [models.Index(fields=["campaign", "mail"], name="campaign_target_mail")]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.institution_id}"


class Survey(models.Model):
    """A revisit (回访): a satisfaction survey sent as a signed, expiring, single-use link, or recorded by
    an agent from a phone call. Only the token's hash is stored. A revisit's survey is about a ticket; a
    campaign's (定期满意度调查) about its customer (institution) and contact person, without a ticket."""

    ticket = models.ForeignKey(
        Ticket, models.CASCADE, null=True, blank=True, related_name="surveys", verbose_name=_("ticket")
    )
    campaign = models.ForeignKey(
        SurveyCampaign, models.CASCADE, null=True, blank=True, related_name="surveys", verbose_name=_("campaign")
    )
    # named relations, as CampaignTarget's: a customer merge moves the answers to the record kept
    institution = models.ForeignKey(
        "customers.Institution", models.SET_NULL, null=True, blank=True, related_name="campaign_surveys",
        verbose_name=_("customer"),
    )  # fmt: skip
    person = models.ForeignKey(
        "customers.Person", models.SET_NULL, null=True, blank=True, related_name="campaign_surveys",
        verbose_name=_("contact person"),
    )  # fmt: skip
    channel = models.CharField(_("channel"), max_length=6, choices=SurveyChannel.choices)
    token_hash = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    # a campaign's reminder carries a link of its own; the first mail's link still answers the same survey
    reminder_token_hash = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    sent_to = EncryptedTextField(_("sent to"))
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    answered_at = models.DateTimeField(_("answered"), null=True, blank=True)
    score = models.PositiveSmallIntegerField(_("satisfaction (1–5)"), null=True, blank=True)
    recommend = models.PositiveSmallIntegerField(
        _("would recommend us (0–10)"), null=True, blank=True,
        help_text=_("The net promoter question: how likely the customer is to recommend us, 0 to 10."),
    )  # fmt: skip
    solved = models.BooleanField(_("solved"), null=True, blank=True)
    comment = models.TextField(_("comment"), blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("recorded by")
    )
    outcome = models.CharField(_("outcome"), max_length=8, choices=LowScore.choices, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("revisit survey")
        verbose_name_plural = _("revisit surveys")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ticket__isnull=False) | models.Q(campaign__isnull=False), name="survey_ticket_or_campaign"
            ),
        ]

    def __str__(self) -> str:
        if self.ticket_id:
            return self.ticket.number
        return f"{self.campaign} #{self.pk}"


class ImprovementAction(models.Model):
    """Something to put right after a poor revisit or a complaint (改进措施), tracked to closure."""

    number = models.CharField(_("number"), max_length=16, unique=True, editable=False)  # IA-2026-0001
    ticket = models.ForeignKey(
        Ticket, models.SET_NULL, null=True, blank=True, related_name="improvement_actions", verbose_name=_("ticket")
    )
    survey = models.ForeignKey(
        Survey, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("revisit")
    )
    # an action about a customer rather than a ticket: a weak evaluation, a key account's review
    institution = models.ForeignKey(
        "customers.Institution", models.SET_NULL, null=True, blank=True, related_name="improvement_actions",
        verbose_name=_("customer"),
    )  # fmt: skip
    title = models.CharField(pgettext_lazy("record title", "title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    # an action the product wrote (a weak customer evaluation): what it wrote — its kind and parameters — so that it
    # reads in the reader's language (`shown_title`); `title` and `description` keep the text as stored (search, API)
    generated = models.CharField(max_length=20, blank=True, default="", editable=False)
    generated_params = models.JSONField(default=dict, blank=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, related_name="+", verbose_name=_("owner")
    )
    due_date = models.DateField(_("due date"))
    status = models.CharField(_("status"), max_length=12, choices=ActionStatus.choices, default=ActionStatus.OPEN)
    outcome = models.TextField(_("outcome"), blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("improvement action")
        verbose_name_plural = _("improvement actions")
        ordering = ["status", "due_date", "id"]
        indexes = [models.Index(fields=["owner", "status", "due_date"], name="improvement_owner_open")]

    def __str__(self) -> str:
        return f"{self.number} {self.title}"  # as stored: the audit trail's label, whoever acts

    def _generated_text(self, index: int, language: str | None) -> str | None:
        texts = GENERATED_ACTION_TEXTS.get(self.generated)
        if texts is None:
            return None
        from django.utils import translation

        params = self.generated_params or {}
        try:
            with translation.override(language or translation.get_language()):
                return texts[index](params)
        except (KeyError, TypeError, ValueError):
            return None

    def _as_written(self, index: int, stored: str) -> bool:
        """Whether the stored text is the one the product wrote (in any language), not changed by a user since."""
        return bool(self.generated) and stored in {self._generated_text(index, code) for code, _n in settings.LANGUAGES}

    def _shown(self, index: int, stored: str) -> str:
        """The text the product wrote, in the reader's language; the stored one when a user changed it since (it no
        longer reads as the product wrote it in its language) or it was typed."""
        if not self._as_written(index, stored):
            return stored
        return self._generated_text(index, None) or stored

    def title_message(self):
        """The title for a notification, rendered when read in each recipient's language (core.deferred)."""

        if self.generated != "evaluation" or not self._as_written(0, self.title):
            return self.title
        return evaluation_title_message(self.generated_params)

    def generated_texts(self, index: int) -> set[str]:
        """The product's text (0: title, 1: description) in each of the languages; none for a typed action."""
        if not self.generated:
            return set()
        return {self._generated_text(index, code) for code, _n in settings.LANGUAGES} - {None}

    def reads_as_generated(self, index: int, text: str) -> bool:
        """Whether `text` is the product's text (0: title, 1: description) in one of the languages while the stored
        one still is: an edit form that showed it in the reader's language, sent back unchanged."""
        stored = self.description if index else self.title
        written = self.generated_texts(index)
        return stored in written and (text or "").strip() in {w.strip() for w in written}

    @property
    def shown_title(self) -> str:
        return self._shown(0, self.title)

    @property
    def shown_description(self) -> str:
        return self._shown(1, self.description)


_EVALUATION_TITLE = _("Improve the relationship with %(name)s (class %(klass)s) %(tag)s")


def _evaluation_title(p: dict) -> str:
    return str(_EVALUATION_TITLE) % {"name": p["name"], "klass": p["klass"], "tag": f"[{p['period']}]"}


def _evaluation_description(p: dict) -> str:
    from django.utils.translation import gettext

    return gettext("The customer evaluation of %(period)s put this customer in class %(klass)s. Look at the weak "
                   "components, talk to the customer and record what was done.") % {
        "period": p["period"], "klass": p["klass"]}  # fmt: skip


# kind → (its title, its description) from the parameters stored with the action
GENERATED_ACTION_TEXTS = {"evaluation": (_evaluation_title, _evaluation_description)}


def evaluation_title_message(p: dict):
    """The title of an evaluation's improvement action for a notification, rendered when read in each recipient's
    language (core.deferred); `title_message` of an action the product has just written."""
    from pharmacrm.core.deferred import Message

    return Message(_EVALUATION_TITLE, name=p["name"], klass=p["klass"], tag=f"[{p['period']}]")


def evaluation_action_texts(params: list[dict], language: str) -> list[tuple[str, str]]:
    """The (title, description) of many evaluation actions in one language: what `_generated_text` writes for each,
    with one switch of the language for them all and each (period, class)'s description written once (a run opens
    tens of thousands of actions)."""
    from django.utils import translation

    descriptions: dict[tuple[str, str], str] = {}
    out = []
    with translation.override(language):
        for p in params:
            key = (p["period"], p["klass"])
            if key not in descriptions:
                descriptions[key] = _evaluation_description(p)
            out.append((_evaluation_title(p), descriptions[key]))
    return out


class WebIntake(models.Model):
    """One submission of the public web form, kept for rate limiting (by a keyed hash of the address,
    never the address itself) whether it was accepted or refused."""

    client_hash = models.CharField(max_length=32)
    at = models.DateTimeField(default=timezone.now)
    accepted = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["client_hash", "at"], name="web_intake_client")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {'+' if self.accepted else '-'}"


class ServiceGoal(models.Model):
    """A target for one indicator of the service performance (服务目标), for the whole service desk (no team) or for
    one team, whose own goal replaces the desk's for its figures: the performance page, its export and API judge each
    figure against it. goals.py defines the indicators, their direction and range."""

    indicator = models.CharField(_("indicator"), max_length=32)
    team = models.ForeignKey(
        "core.Team", models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("team"),
        help_text=_("Empty: the goal of the whole service desk."),
    )  # fmt: skip
    target = models.DecimalField(_("goal value"), max_digits=8, decimal_places=2)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("set by")
    )
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        verbose_name = _("service goal")
        verbose_name_plural = _("service goals")
        ordering = ["team", "indicator"]
        constraints = [
            models.UniqueConstraint(fields=["indicator"], condition=models.Q(team__isnull=True),
                                    name="service_goal_desk"),
            models.UniqueConstraint(fields=["team", "indicator"], condition=models.Q(team__isnull=False),
                                    name="service_goal_team"),
        ]  # fmt: skip

    def __str__(self) -> str:
        # as stored, whoever acts (the audit trail's label): the team's stored name and the indicator's code, which the
        # audit page shows in its reader's language from the entry's codes (crm.audit_record_name); a key account's
        # team read in the actor's language (Team.shown_name) had the entry of an English user's change in English
        return f"{self.team.name} · {self.indicator} {self.target}" if self.team_id else f"{self.indicator} {self.target}"


class ServiceGoalChange(models.Model):
    """One goal's value from a moment on (`target` empty: no goal from then), written with every change of a
    ServiceGoal: a period is judged against the goals in force at its end, so raising a goal in December leaves
    November judged as it was."""

    indicator = models.CharField(_("indicator"), max_length=32)
    team = models.ForeignKey(
        "core.Team", models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("team")
    )
    target = models.DecimalField(_("goal value"), max_digits=8, decimal_places=2, null=True, blank=True)
    valid_from = models.DateTimeField(_("in force from"), default=timezone.now)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("set by")
    )

    class Meta:
        verbose_name = _("service goal change")
        verbose_name_plural = _("service goal changes")
        ordering = ["valid_from", "id"]

    def __str__(self) -> str:
        return f"{self.indicator} {self.target} {self.valid_from:%Y-%m-%d}"


class QualityReview(models.Model):
    """A quality review of a handled ticket (服务质检, seed 000 §8.1 服务准确率): a reviewer — a service manager, a
    product expert, or the lead of the ticket's team; never the agent who handled it — judges the handling against
    four criteria and writes what was found. The share of reviewed tickets whose answer was accurate is the service
    performance's accuracy (quality.py, docs/servicedesk-quality.md). One review per ticket; its reviewer or a service
    manager may correct it (optimistic locking, audited)."""

    ticket = models.OneToOneField(
        Ticket, models.CASCADE, related_name="quality_review", verbose_name=_("ticket")
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+", verbose_name=_("reviewer")
    )
    # who handled the ticket when it was reviewed (its assignee then): told of a finding, reads the review even
    # after the ticket, reopened, went to someone else
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("agent")
    )
    accurate = models.BooleanField(_("answer accurate"))
    compliant = models.BooleanField(_("compliant"))
    complete = models.BooleanField(_("record complete"))
    courteous = models.BooleanField(_("service standard kept"))
    comment = models.TextField(_("findings"), blank=True)
    # the agent's appeal of a finding (质检申诉), decided by a service manager who is neither reviewer nor agent
    appeal = models.TextField(_("appeal"), blank=True)
    appealed_at = models.DateTimeField(_("appealed"), null=True, blank=True)
    appeal_status = models.CharField(_("appeal status"), max_length=8, choices=AppealStatus.choices, blank=True)
    appeal_answer = models.TextField(_("decision on the appeal"), blank=True)
    appeal_decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("appeal decided by"),
    )  # fmt: skip
    appeal_decided_at = models.DateTimeField(_("appeal decided"), null=True, blank=True)
    reviewed_at = models.DateTimeField(_("reviewed"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("quality review")
        verbose_name_plural = _("quality reviews")
        ordering = ["-reviewed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.ticket.number if self.ticket_id else '—'} · {self.reviewed_at:%Y-%m-%d}"

    @property
    def passed(self) -> bool:
        return self.accurate and self.compliant and self.complete and self.courteous
