"""Choice sets for the service desk, in one place."""

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class Channel(models.TextChoices):
    PHONE = "phone", _("Phone")
    EMAIL = "email", _("E-mail")
    WEB = "web", _("Web form")
    VISIT = "visit", _("In person / visit")
    API = "api", _("API")


class Priority(models.TextChoices):
    URGENT = "urgent", _("Urgent")
    HIGH = "high", _("High")
    NORMAL = "normal", _("Normal")
    LOW = "low", _("Low")


PRIORITY_RANK = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}


class Complexity(models.TextChoices):
    GENERAL = "general", _("General")
    COMPLEX = "complex", _("Complex")


class Status(models.TextChoices):
    NEW = "new", pgettext_lazy("ticket status", "New")  # not the customer tier "New" (新客户)
    ASSIGNED = "assigned", _("Assigned")
    IN_PROGRESS = "in_progress", _("In progress")
    WAITING = "waiting", _("Waiting on customer")
    RESOLVED = "resolved", _("Resolved")
    INFORMED = "informed", _("Customer informed")
    CLOSED = "closed", _("Closed")


# Where a ticket may go from each status (受理 → 分类 → 处理 → 反馈 → 回访); anything else is refused.
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.NEW: frozenset({Status.ASSIGNED, Status.IN_PROGRESS, Status.WAITING, Status.RESOLVED}),
    Status.ASSIGNED: frozenset({Status.IN_PROGRESS, Status.WAITING, Status.RESOLVED, Status.ASSIGNED}),
    Status.IN_PROGRESS: frozenset({Status.WAITING, Status.RESOLVED, Status.ASSIGNED}),
    Status.WAITING: frozenset({Status.IN_PROGRESS, Status.RESOLVED, Status.ASSIGNED}),
    Status.RESOLVED: frozenset({Status.INFORMED, Status.CLOSED, Status.IN_PROGRESS}),  # → in progress = reopen
    Status.INFORMED: frozenset({Status.CLOSED, Status.IN_PROGRESS}),
    Status.CLOSED: frozenset({Status.IN_PROGRESS}),
}
OPEN_STATUSES = frozenset({Status.NEW, Status.ASSIGNED, Status.IN_PROGRESS, Status.WAITING})
REOPENABLE = frozenset({Status.RESOLVED, Status.INFORMED, Status.CLOSED})


class RootCause(models.TextChoices):
    """Why the customer had to get in touch (根本原因), recorded when the ticket is resolved."""

    PRODUCT_QUALITY = "product_quality", _("Product quality")
    ADVERSE_REACTION = "adverse_reaction", _("Adverse reaction")
    USAGE = "usage", _("Use or dosing not understood")
    INFORMATION = "information", _("Information missing or unclear")
    LOGISTICS = "logistics", _("Order, delivery or logistics")
    SERVICE_PROCESS = "service_process", _("Our service process")
    STAFF = "staff", _("Staff conduct")
    NO_FAULT = "no_fault", _("No fault found")
    OTHER = "other", _("Other")


class Impact(models.TextChoices):
    """How much a complaint hurt the customer, or the company (seed 002 六.(二).2: 评估投诉对客户和公司造成的影响),
    assessed when the complaint is resolved."""

    NONE = "none", pgettext_lazy("complaint impact", "None")
    MINOR = "minor", pgettext_lazy("complaint impact", "Minor")
    MODERATE = "moderate", pgettext_lazy("complaint impact", "Moderate")
    SEVERE = "severe", pgettext_lazy("complaint impact", "Severe")


class ClockKind(models.TextChoices):
    FIRST_RESPONSE = "first_response", _("First response")
    RESOLUTION = "resolution", _("Resolution")


class EventKind(models.TextChoices):
    CREATED = "created", _("Received")
    STATUS = "status", _("Status changed")
    ASSIGNED = "assigned", _("Assigned")
    PRIORITY = "priority", _("Priority changed")
    CATEGORY = "category", _("Category changed")
    RESPONDED = "responded", _("First response to the customer")
    NOTE = "note", _("Internal note")
    REOPENED = "reopened", _("Reopened")
    BREACHED = "breached", _("Deadline missed")
    WARNED = "warned", _("Deadline approaching")
    REPLY = "reply", _("Reply to the customer")
    INBOUND = "inbound", _("Message from the customer")
    EDITED = "edited", _("Details changed")
    ESCALATED = "escalated", _("Escalated")
    LINKED = "linked", _("Linked")
    MERGED = "merged", _("Merged")
    ATTACHMENT = "attachment", _("Attachment added")
    SURVEY = "survey", _("Revisit")
    PRODUCT = "product", _("Product changed")
    UNDELIVERED = "undelivered", _("Reply not delivered")
    UNBREACHED = "unbreached", _("Breach withdrawn")


class MessageKind(models.TextChoices):
    REPLY = "reply", _("Reply to the customer")  # customer-visible; by e-mail when the ticket has an address
    NOTE = "note", _("Internal note")  # never leaves the company
    INBOUND = "inbound", _("From the customer")


class Delivery(models.TextChoices):
    NONE = "", _("Not sent (recorded only)")
    PENDING = "pending", _("Waiting to be sent")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed (retrying)")
    GAVE_UP = "gave_up", _("Failed for good")


class LinkKind(models.TextChoices):
    RELATED = "related", _("Related")
    DUPLICATE = "duplicate", _("Duplicate of")


class EscalationNotify(models.TextChoices):
    ASSIGNEE = "assignee", _("Assignee")
    TEAM_LEAD = "team_lead", _("Team lead")
    MANAGER = "manager", _("Managers")


class LowScore(models.TextChoices):
    """What a poor revisit (CSAT ≤ 2 or "not solved") does."""

    REOPEN = "reopen", _("Reopen the ticket")
    ACTION = "action", _("Open an improvement action")


class SurveyChannel(models.TextChoices):
    LINK = "link", _("Survey link")
    PHONE = "phone", _("Phone revisit")


class CampaignStatus(models.TextChoices):
    """A satisfaction survey campaign (调查活动): prepared, its mails going out, closed (no more answers)."""

    DRAFT = "draft", _("Draft")
    SENDING = "sending", _("Sending")
    CLOSED = "closed", _("Closed")


class CampaignPeriod(models.TextChoices):
    QUARTER = "quarter", _("Quarter")
    HALF = "half", _("Half-year")
    YEAR = "year", _("Year")


class TargetReach(models.TextChoices):
    """How a campaign reaches the contact of a targeted customer; anything but "mail" is why not by mail."""

    MAIL = "mail", _("By e-mail")
    NO_PERSON = "no_person", _("Not reachable: no contact person")
    NO_EMAIL = "no_email", _("Not reachable: no e-mail address")
    NO_CONSENT = "no_consent", _("Not reachable: no consent to surveys")
    WITHDRAWN = "withdrawn", _("Not reachable: consent to surveys withdrawn")
    RECENT = "recent", _("Not asked: answered a survey recently")


class TargetMail(models.TextChoices):
    """The survey mail of one target: queued, taken by a worker (the mark is committed before the mail goes
    out, so that a worker killed after sending never sends it again), sent, or failed (tried again)."""

    NONE = "", _("No mail")
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Being sent")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")


class ActionStatus(models.TextChoices):
    OPEN = "open", _("Open")
    IN_PROGRESS = "in_progress", _("In progress")
    DONE = "done", _("Done")
    CANCELLED = "cancelled", _("Cancelled")


class AssignMethod(models.TextChoices):
    ROUND_ROBIN = "round_robin", _("Round robin")
    LEAST_LOADED = "least_loaded", _("Least loaded")
    QUEUE = "queue", _("Team queue only (agents pick)")


class AppealStatus(models.TextChoices):
    """An agent's appeal of a quality review's finding (质检申诉)."""

    OPEN = "open", _("Appeal waiting")
    ACCEPTED = "accepted", _("Appeal accepted")
    REJECTED = "rejected", _("Appeal rejected")
