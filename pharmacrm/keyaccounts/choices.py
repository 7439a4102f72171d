from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class ModelKind(models.TextChoices):
    EVALUATION = "evaluation", _("Customer evaluation")
    CANDIDATE = "candidate", _("Key-account identification")


class Component(models.TextChoices):
    """The measures a scoring model can weigh (each scored 0–100, see scoring.py)."""

    AMOUNT = "amount", _("Purchase amount")
    FREQUENCY = "frequency", _("Purchase frequency")
    SATISFACTION = "satisfaction", _("Satisfaction")
    CREDIT = "credit", _("Credit status")
    COOPERATION = "cooperation", _("Length of cooperation")
    INFLUENCE = "influence", _("Market influence")
    GROWTH = "growth", _("Growth")


class Klass(models.TextChoices):
    A = "A", "A"
    B = "B", "B"
    C = "C", "C"
    D = "D", "D"


class Trigger(models.TextChoices):
    SCHEDULE = "schedule", _("Scheduled")
    ON_DEMAND = "on_demand", _("On demand")
    IMPORT = "import", _("After an import")
    CUSTOMER = "customer", _("One customer, out of turn")  # evaluation.evaluate_customer
    GATE = "gate", _("Credit gate check")  # evaluation.sweep_gate: the customers whose credit gate changed


class ProposalKind(models.TextChoices):
    LIST = "list", _("List as key account")
    DELIST = "delist", _("De-list")


class ProposalStatus(models.TextChoices):
    REVIEW = "review", _("In review")
    SUBMITTED = "submitted", _("Awaiting leadership decision")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    WITHDRAWN = "withdrawn", _("Withdrawn")


OPEN_PROPOSAL = (ProposalStatus.REVIEW, ProposalStatus.SUBMITTED)


class Department(models.TextChoices):
    MARKETING = "marketing", _("Marketing")
    SALES = "sales", _("Sales")
    SERVICE = "service", pgettext_lazy("department", "Customer service")
    QA = "qa", _("Quality assurance")
    RND = "rnd", _("R&D")


class Opinion(models.TextChoices):
    SUPPORT = "support", _("Support")
    NEUTRAL = "neutral", _("No objection")
    OPPOSE = "oppose", _("Oppose")


class AccountStatus(models.TextChoices):
    ACTIVE = "active", pgettext_lazy("key account status", "Active")
    DELISTED = "delisted", _("De-listed")


class TeamRole(models.TextChoices):
    PROJECT_MANAGER = "pm", _("Project manager")
    PRODUCT_EXPERT = "expert", _("Product expert")
    TECH_SUPPORT = "support", _("Technical support")
    AFTER_SALES = "aftersales", _("After-sales")


class PlanStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SUBMITTED = "submitted", _("Submitted for leadership review")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Returned for changes")
    SUPERSEDED = "superseded", _("Superseded")


class PlanArea(models.TextChoices):
    SUPPLY = "supply", _("Product supply")
    TECH_SUPPORT = "tech_support", _("Technical support")
    AFTER_SALES = "after_sales", _("After-sales service")
    TRAINING = "training", _("Training")
    FREE = "free", _("Free services")


class ItemStatus(models.TextChoices):
    PLANNED = "planned", _("Planned")
    IN_PROGRESS = "in_progress", _("In progress")
    DONE = "done", _("Done")
    CANCELLED = "cancelled", _("Cancelled")


OPEN_ITEM = (ItemStatus.PLANNED, ItemStatus.IN_PROGRESS)


class AgreementStatus(models.TextChoices):
    DRAFT = "draft", _("Generated, not signed")
    SIGNED = "signed", _("Signed")
    EXPIRED = "expired", _("Expired")
    RENEWED = "renewed", _("Renewed")
    ENDED = "ended", _("Ended on de-listing")  # still in force (or issued) when the customer was de-listed


class TrialStatus(models.TextChoices):
    OFFERED = "offered", _("Offered")
    ACCEPTED = "accepted", _("Accepted")
    DECLINED = "declined", _("Declined")
    COMPLETED = "completed", _("Completed")


class MeetingCadence(models.TextChoices):
    """How often a key account's service meetings (定期服务会议, seed 001 三.3) are due. Seed 001 names no period:
    quarterly by default, as the account's service evaluation runs (services.MEETING_CADENCE_DEFAULT)."""

    MONTHLY = "monthly", _("Monthly")
    BIMONTHLY = "bimonthly", _("Every two months")
    QUARTERLY = "quarterly", _("Quarterly")
    HALF_YEARLY = "half_yearly", _("Half-yearly")


CADENCE_MONTHS = {
    MeetingCadence.MONTHLY: 1,
    MeetingCadence.BIMONTHLY: 2,
    MeetingCadence.QUARTERLY: 3,
    MeetingCadence.HALF_YEARLY: 6,
}
