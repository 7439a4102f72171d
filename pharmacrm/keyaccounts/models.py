"""Customer evaluation (客户评估) and the key-account programme (重点客户专属服务保障机制): scoring models,
scores with their components, proposals with cross-department review and leadership approval, key-account
files with their service team, plans, agreements, meetings, evaluations and trial offers."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Func, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core.amendments import TermAmendment
from pharmacrm.core.builtin import BuiltinNameMixin

from . import scoring
from .choices import (
    OPEN_ITEM,
    AccountStatus,
    AgreementStatus,
    Department,
    ItemStatus,
    Klass,
    MeetingCadence,
    ModelKind,
    Opinion,
    PlanArea,
    PlanStatus,
    ProposalKind,
    ProposalStatus,
    TeamRole,
    TrialStatus,
    Trigger,
)

USER = settings.AUTH_USER_MODEL


# --- scoring -----------------------------------------------------------------------------------------


class ScoringModel(BuiltinNameMixin, models.Model):
    """A configurable weighted model (评估模型). Saving a change makes a new version; scores keep the
    version they were computed with. `weights` maps a Component to its weight; `params` holds the
    reference values each component is scored against (see scoring.DEFAULT_PARAMS); `thresholds` maps a
    class to the lowest score that earns it (evaluation) or holds {"candidate": score} (identification);
    `benefits` maps a class to {"tier", "discount", "programme", "action"}."""

    kind = models.CharField(_("kind"), max_length=12, choices=ModelKind.choices)
    version = models.PositiveIntegerField(_("version"), default=1)
    active = models.BooleanField(_("active"), default=True)
    name = models.CharField(_("name"), max_length=100)
    weights = models.JSONField(_("weights"), default=dict)
    params = models.JSONField(_("reference values"), default=dict)
    thresholds = models.JSONField(_("thresholds"), default=dict)
    benefits = models.JSONField(_("results by class"), default=dict, blank=True)
    apply_tiers = models.BooleanField(_("change tiers from the class"), default=True)
    created_by = models.ForeignKey(USER, models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("scoring model")
        verbose_name_plural = _("scoring models")
        ordering = ["kind", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "version"], name="scoringmodel_version"),
            models.UniqueConstraint(fields=["kind"], condition=models.Q(active=True), name="scoringmodel_one_active"),
        ]

    def __str__(self) -> str:
        return f"{self.label} v{self.version}"  # a shipped name in the reader's language (core.builtin)


class EvaluationRun(models.Model):
    """One run of a model over customers (all of them, or those whose purchases changed)."""

    model = models.ForeignKey(ScoringModel, models.PROTECT, related_name="runs")
    period = models.CharField(_("period"), max_length=8)  # 2026H2, 2026Q4, or 2026-11 for candidates
    as_of = models.DateField(_("as of"))
    trigger = models.CharField(_("trigger"), max_length=10, choices=Trigger.choices)
    incremental = models.BooleanField(_("changed customers only"), default=False)
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    customers = models.PositiveIntegerField(_("customers scored"), default=0)
    tier_changes = models.PositiveIntegerField(_("tier changes"), default=0)
    actions = models.PositiveIntegerField(_("improvement actions"), default=0)
    created_by = models.ForeignKey(USER, models.SET_NULL, null=True, blank=True, related_name="+")
    # per component, what all the run's scores share: {"amount": {"weight": "0.3500", "detail": {"reference":
    # 1000000, "months": 12}}, …} (scoring.constants)
    constants = models.JSONField(_("weights and reference values"), default=dict, blank=True)

    class Meta:
        verbose_name = _("evaluation run")
        verbose_name_plural = _("evaluation runs")
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["model", "-started_at"], name="evalrun_model")]

    def __str__(self) -> str:
        return f"{self.model} {self.period}"


BAND_POINTS = 5


class ScoreBand(Func):
    """floor(score / BAND_POINTS) as an integer, in SQL that needs no function of Django's (SQLite's CAST
    truncates, which is the floor of a score that is never negative)."""

    function = ""
    arity = 1
    output_field = models.IntegerField()
    template = f"CAST(%(expressions)s / {BAND_POINTS} AS integer)"

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template=f"CAST(FLOOR(%(expressions)s / {BAND_POINTS}) AS integer)", **extra)


def band_floor(score) -> int:
    """The lowest band a score of at least `score` can have."""
    return int(score) // BAND_POINTS


class Score(models.Model):
    """A customer's score for a period under one model kind: re-running the period replaces it, so the
    history is one row per period. `components` is a list of {name, value, weight, contribution, ...}
    whose contributions add up to `score`."""

    MERGE_KEEP = True  # a customer merge recomputes these for the survivor instead of moving them

    institution = models.ForeignKey("customers.Institution", models.CASCADE, related_name="scores", db_index=False)
    kind = models.CharField(_("kind"), max_length=12, choices=ModelKind.choices)
    period = models.CharField(_("period"), max_length=8)
    # no indexes on run and model: runs and models are never deleted, and every index is one more write for
    # each of the tens of thousands of rows a run replaces. No database constraint on run either: each run
    # points every row it rewrites at itself, and PostgreSQL checked that reference once per row at commit
    # (0.15 s per 22,700 rows); the run is created by the same code just before.
    run = models.ForeignKey(
        EvaluationRun, models.SET_NULL, null=True, blank=True, related_name="+", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    model = models.ForeignKey(ScoringModel, models.PROTECT, related_name="+", db_index=False)
    as_of = models.DateField(_("as of"))
    score = models.DecimalField(_("score"), max_digits=6, decimal_places=2)
    klass = models.CharField(_("class"), max_length=1, choices=Klass.choices, blank=True)
    previous_klass = models.CharField(_("previous class"), max_length=1, choices=Klass.choices, blank=True)
    previous_score = models.DecimalField(_("previous score"), max_digits=6, decimal_places=2, null=True, blank=True)
    # A run's scores store their components without what the run's constants hold (scoring.score_parts);
    # `components` gives them whole. Scores from before runs kept constants are stored whole.
    stored_components = models.JSONField(_("components"), default=list, db_column="components")
    candidate = models.BooleanField(_("key-account candidate"), default=False)
    # the credit gate that capped the class (scoring.gated_klass): {"class_before_gate", "class", "reason", "days",
    # "overdue", "limit" or "share" and "purchases"}; null when the class is the one the score gives
    gate = models.JSONField(_("credit gate"), null=True, blank=True)
    # copied from the customer at scoring time, so the candidate list filters by an index on this table
    province = models.CharField(max_length=6, blank=True, default="", editable=False)
    customer_kind = models.CharField(max_length=16, blank=True, default="", editable=False)
    discount = models.DecimalField(_("discount level (%)"), max_digits=5, decimal_places=2, null=True, blank=True)
    programme = models.CharField(_("reward programme"), max_length=100, blank=True)
    computed_at = models.DateTimeField(_("computed"), default=timezone.now)
    # The ranking indexes hold the score's band of five points, not the score. A run after an import moves
    # most scores by less than a point: their band stays, and PostgreSQL rewrites such a row in place (a HOT
    # update) without a new entry in any index, which halves the cost of storing it. Lists order by band,
    # then score (RANKED): the same order.
    band = models.GeneratedField(expression=ScoreBand(F("score")), output_field=models.IntegerField(), db_persist=True)

    RANKED = ("-band", "-score", "institution_id")

    class Meta:
        verbose_name = _("score")
        verbose_name_plural = _("scores")
        ordering = ["-band", "-score", "institution_id"]
        constraints = [
            models.UniqueConstraint(fields=["institution", "kind", "period"], name="score_period"),
        ]
        # A customer's history walks the unique index backwards. The results by class and the candidate
        # list read the class index, best band first; the candidate list's filters have partial indexes that
        # hold identification rows only (and the candidates only), so that a run rewriting its rows maintains
        # as few index entries as possible.
        indexes = [
            models.Index(fields=["kind", "period", "klass", "-band"], name="score_class_band"),
            models.Index(
                fields=["kind", "period", "-band"], condition=Q(candidate=True), name="score_candidate_band"
            ),
            models.Index(
                fields=["period", "province", "-band"],
                condition=Q(kind=ModelKind.CANDIDATE.value),
                name="score_cand_province_band",
            ),
            models.Index(
                fields=["period", "customer_kind", "-band"],
                condition=Q(kind=ModelKind.CANDIDATE.value),
                name="score_cand_kind_band",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.institution_id} {self.period} {self.score}"

    @property
    def class_before_gate(self) -> str:
        """The class the score alone gives (the class itself unless the credit gate capped it)."""
        return (self.gate or {}).get("class_before_gate") or self.klass

    @property
    def gate_reason(self) -> str:
        """Why the credit gate capped the class, in the reader's language ("" when it did not)."""
        from .evaluation import gate_reason

        return gate_reason(self.gate)

    @property
    def components(self) -> list[dict]:
        """The components whole: {name, value, weight, contribution, detail, default}, contributions adding
        up to the score (lists select_related("run"): the constants are the run's)."""
        stored = self.stored_components or []
        if scoring.is_whole(stored) or self.run_id is None:
            return stored
        try:
            run = self.run
        except EvaluationRun.DoesNotExist:  # runs are never deleted; the figures as stored all the same
            return stored
        return scoring.expand(stored, run.constants or {}) if run is not None else stored

    @components.setter
    def components(self, value: list[dict]) -> None:
        self.stored_components = value


class MarketInfluence(models.Model):
    """What the data cannot tell about a customer's market influence: its key opinion leaders (KOL) and
    an optional assessment, entered by marketing or imported."""

    MERGE_OWN = True  # a customer merge joins the duplicate's into the survivor's (influence.merge_influence)
    institution = models.OneToOneField("customers.Institution", models.CASCADE, related_name="influence")
    kol_count = models.PositiveIntegerField(_("key opinion leaders"), default=0)
    kol_names = models.TextField(_("key opinion leaders (names)"), blank=True)
    assessment = models.PositiveSmallIntegerField(
        _("marketing's assessment (0–100)"), null=True, blank=True,
        help_text=_("Leave empty to score influence from grade, beds, specialties and KOLs only."),
    )  # fmt: skip
    notes = models.TextField(_("notes"), blank=True)
    updated_by = models.ForeignKey(USER, models.SET_NULL, null=True, blank=True, related_name="+")
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("market influence")
        verbose_name_plural = _("market influence")

    def __str__(self) -> str:  # the audit trail's label: the customer, not its database id
        return self.institution.name


# --- the programme: proposal, review, approval -----------------------------------------------------


class KeyAccount(models.Model):
    """A key-account file (重点客户档案), created when leadership approves a listing."""

    number = models.CharField(_("number"), max_length=16, unique=True, editable=False)  # KA-2026-0001
    institution = models.ForeignKey("customers.Institution", models.PROTECT, related_name="key_accounts")
    status = models.CharField(_("status"), max_length=10, choices=AccountStatus.choices, default=AccountStatus.ACTIVE)
    # the customer's service team: a customer listed again is served by the team of its earlier file (emptied when
    # that file closed), so the files of one customer share it
    team = models.ForeignKey(
        "core.Team", models.PROTECT, null=True, blank=True, related_name="key_accounts", verbose_name=_("service team")
    )
    listed_at = models.DateTimeField(_("listed"), default=timezone.now)
    delisted_at = models.DateTimeField(_("de-listed"), null=True, blank=True)
    previous_tier = models.CharField(_("tier before listing"), max_length=12, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    # how often a service meeting is due (seed 001 三.3 定期): the next is due this long after the last one held (after
    # the listing day before the first); set by the project manager or a manager (services.set_meeting_cadence)
    meeting_cadence = models.CharField(
        _("meeting cadence"), max_length=12, choices=MeetingCadence.choices, default=MeetingCadence.QUARTERLY
    )
    # the meeting due clock (core/dueclock.py, services.sweep_meeting_cadence): next worker look, lease, and the due
    # day each alert was sent for — a meeting recorded or a new cadence moves the due day, and its alerts start afresh
    next_check_at = models.DateTimeField(null=True, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    meeting_due_notified_for = models.DateField(null=True, blank=True, editable=False)
    meeting_overdue_notified_for = models.DateField(null=True, blank=True, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("key account")
        verbose_name_plural = _("key accounts")
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(
                fields=["institution"], condition=models.Q(status="active"), name="keyaccount_one_active"
            ),
        ]
        indexes = [
            models.Index(fields=["next_check_at"], name="keyaccount_meeting_due",
                         condition=models.Q(next_check_at__isnull=False)),
        ]  # fmt: skip

    def __str__(self) -> str:
        return self.number


class Proposal(models.Model):
    """A proposal to list (or de-list) a key account: marketing proposes, departments give opinions,
    leadership decides with a re-authenticated signature."""

    number = models.CharField(_("number"), max_length=16, unique=True, editable=False)  # KP-2026-0001
    kind = models.CharField(_("kind"), max_length=8, choices=ProposalKind.choices, default=ProposalKind.LIST)
    institution = models.ForeignKey("customers.Institution", models.PROTECT, related_name="ka_proposals")
    account = models.ForeignKey(KeyAccount, models.PROTECT, null=True, blank=True, related_name="proposals")
    status = models.CharField(_("status"), max_length=10, choices=ProposalStatus.choices, default=ProposalStatus.REVIEW)
    reason = models.TextField(_("reason"))
    score = models.DecimalField(_("candidate score"), max_digits=6, decimal_places=2, null=True, blank=True)
    components = models.JSONField(_("score components"), default=list, blank=True)
    proposed_by = models.ForeignKey(USER, models.PROTECT, related_name="+", verbose_name=_("proposed by"))
    proposed_at = models.DateTimeField(_("proposed"), default=timezone.now)
    submitted_at = models.DateTimeField(_("submitted for decision"), null=True, blank=True)
    # who closed the review: they may not decide it too (a user holding both roles)
    submitted_by = models.ForeignKey(
        USER, models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("sent for decision by")
    )
    decided_by = models.ForeignKey(
        USER, models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("decided by")
    )
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    decision_comment = models.TextField(_("decision comment"), blank=True)
    signature = models.ForeignKey("core.Signature", models.PROTECT, null=True, blank=True, related_name="+")
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("key-account proposal")
        verbose_name_plural = _("key-account proposals")
        ordering = ["-proposed_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["institution", "kind"], condition=models.Q(status__in=["review", "submitted"]),
                name="proposal_one_open",
            ),
        ]  # fmt: skip
        indexes = [models.Index(fields=["status", "-proposed_at"], name="proposal_status")]

    def __str__(self) -> str:
        return self.number


class Review(models.Model):
    """One department's opinion on a proposal (评审意见)."""

    proposal = models.ForeignKey(Proposal, models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(USER, models.PROTECT, related_name="+", verbose_name=_("reviewer"))
    department = models.CharField(_("department"), max_length=10, choices=Department.choices)
    opinion = models.CharField(_("opinion"), max_length=8, choices=Opinion.choices)
    comment = models.TextField(_("comment"), blank=True)
    at = models.DateTimeField(_("given"), default=timezone.now)

    class Meta:
        verbose_name = _("review opinion")
        verbose_name_plural = _("review opinions")
        ordering = ["at", "id"]
        constraints = [models.UniqueConstraint(fields=["proposal", "reviewer"], name="review_once")]

    def __str__(self) -> str:
        return f"{self.proposal.number} · {self.reviewer}"


class TeamMember(models.Model):
    """A member of a key account's service team, in one of the four roles of seed 001 §2.1."""

    account = models.ForeignKey(KeyAccount, models.CASCADE, related_name="members")
    user = models.ForeignKey(USER, models.PROTECT, related_name="ka_memberships", verbose_name=_("user"))
    role = models.CharField(_("role"), max_length=10, choices=TeamRole.choices)
    since = models.DateField(_("since"), default=timezone.localdate)

    class Meta:
        verbose_name = _("service team member")
        verbose_name_plural = _("service team members")
        ordering = ["role", "id"]
        constraints = [models.UniqueConstraint(fields=["account", "user", "role"], name="teammember_once")]

    def __str__(self) -> str:
        return f"{self.account.number} · {self.user}"


class TeamTenure(models.Model):
    """Who served in a key account's team, in which role, from which day to which day (both included; no end
    while serving). Written with each addition and removal: a past period's scorecards count the team as it
    was then, not as it is today."""

    account = models.ForeignKey(KeyAccount, models.CASCADE, related_name="tenures")
    user = models.ForeignKey(USER, models.PROTECT, related_name="ka_tenures", verbose_name=_("user"))
    role = models.CharField(_("role"), max_length=10, choices=TeamRole.choices)
    start = models.DateField(pgettext_lazy("period", "from"))
    end = models.DateField(pgettext_lazy("period", "to"), null=True, blank=True)

    class Meta:
        verbose_name = _("service team tenure")
        verbose_name_plural = _("service team tenures")
        ordering = ["role", "start", "id"]
        indexes = [models.Index(fields=["start", "end"], name="tenure_span")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.role} {self.user_id} {self.start}–{self.end or ''}"


# --- service plan, agreement, execution -------------------------------------------------------------


class ServicePlan(models.Model):
    """A version of a key account's service plan (服务方案). Changing an approved plan starts a new draft
    version; the approved one stays in force until the new one is approved."""

    account = models.ForeignKey(KeyAccount, models.CASCADE, related_name="plans")
    version_number = models.PositiveIntegerField(_("version"))
    status = models.CharField(_("status"), max_length=10, choices=PlanStatus.choices, default=PlanStatus.DRAFT)
    goals = models.TextField(_("customer's needs and goals"), blank=True)
    valid_from = models.DateField(_("valid from"), null=True, blank=True)
    valid_to = models.DateField(_("valid to"), null=True, blank=True)
    created_by = models.ForeignKey(USER, models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    submitted_at = models.DateTimeField(_("submitted"), null=True, blank=True)
    submitted_by = models.ForeignKey(USER, models.SET_NULL, null=True, blank=True, related_name="+")
    # who created, changed or removed anything of this version — its needs and goals, validity, items — while it was
    # a draft or returned: its co-authors, who may not review it (services.plans_user_may_decide) as its author may not
    editors = models.ManyToManyField(USER, blank=True, related_name="+", verbose_name=_("edited by"))
    decided_by = models.ForeignKey(USER, models.PROTECT, null=True, blank=True, related_name="+")
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    decision_comment = models.TextField(_("decision comment"), blank=True)
    signature = models.ForeignKey("core.Signature", models.PROTECT, null=True, blank=True, related_name="+")
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("service plan")
        verbose_name_plural = _("service plans")
        ordering = ["account", "-version_number"]
        constraints = [
            models.UniqueConstraint(fields=["account", "version_number"], name="plan_version"),
            models.UniqueConstraint(
                fields=["account"], condition=models.Q(status__in=["draft", "submitted", "rejected"]),
                name="plan_one_open",
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.account.number} v{self.version_number}"


class PlanItem(models.Model):
    """One service commitment: area, what, the standard it must meet, owner, deadline, progress. Its
    deadline is a due clock swept by the worker (core/dueclock.py)."""

    plan = models.ForeignKey(ServicePlan, models.CASCADE, related_name="items")
    area = models.CharField(_("area"), max_length=14, choices=PlanArea.choices)
    title = models.CharField(_("service item"), max_length=200)
    standard = models.TextField(_("standard"))
    owner = models.ForeignKey(USER, models.PROTECT, related_name="+", verbose_name=_("owner"))
    deadline = models.DateField(_("deadline"))
    status = models.CharField(_("status"), max_length=12, choices=ItemStatus.choices, default=ItemStatus.PLANNED)
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    progress_note = models.TextField(_("progress note"), blank=True)
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True)
    # the due clock (only items of the plan in force): next worker look, lease, alerts sent
    next_check_at = models.DateTimeField(null=True, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    overdue_notified_at = models.DateTimeField(null=True, blank=True, editable=False)
    # the item of the version in force this one was copied from when its draft was started: progress
    # reported there meanwhile comes across on approval, whatever was edited in the draft
    carried_from = models.ForeignKey(
        "self", models.SET_NULL, null=True, blank=True, related_name="+", editable=False,
        verbose_name=_("copied from"),
    )  # fmt: skip
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("service plan item")
        verbose_name_plural = _("service plan items")
        ordering = ["area", "deadline", "id"]
        indexes = [
            models.Index(fields=["next_check_at"], name="planitem_due", condition=models.Q(next_check_at__isnull=False)),
            models.Index(fields=["owner", "status", "deadline"], name="planitem_owner"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_ITEM


class Agreement(models.Model):
    """A service agreement (服务协议) generated from an approved plan, numbered AG-YYYY-NNNN."""

    number = models.CharField(_("number"), max_length=16, unique=True, editable=False)
    account = models.ForeignKey(KeyAccount, models.PROTECT, related_name="agreements")
    plan = models.ForeignKey(ServicePlan, models.PROTECT, related_name="agreements")
    status = models.CharField(_("status"), max_length=8, choices=AgreementStatus.choices, default=AgreementStatus.DRAFT)
    start_date = models.DateField(_("start"))
    end_date = models.DateField(_("end"))
    signed_date = models.DateField(_("signed on"), null=True, blank=True)
    signed_copy = models.CharField(max_length=300, blank=True, editable=False)  # path under var/agreements/
    signed_copy_name = models.CharField(_("signed copy"), max_length=200, blank=True)
    signed_copy_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    # the PDF as issued when the agreement was generated (or issued again while a draft): every later copy
    # is this file, checked against its SHA-256, whatever changed since in the plan or the customer record
    document = models.CharField(max_length=300, blank=True, editable=False)  # a name under var/agreements/
    document_sha256 = models.CharField(_("document fingerprint (SHA-256)"), max_length=64, blank=True, editable=False)
    issued_at = models.DateTimeField(_("issued"), null=True, blank=True, editable=False)
    renewal_notice_days = models.PositiveSmallIntegerField(_("renewal reminder (days before end)"), default=60)
    renewal_notified_at = models.DateTimeField(null=True, blank=True, editable=False)
    # the end the renewal reminder sent named: an amendment moving the end elsewhere brings one for the new end
    renewal_notified_for = models.DateField(_("renewal reminder sent for the end"), null=True, blank=True,
                                            editable=False)  # fmt: skip
    next_check_at = models.DateTimeField(null=True, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(USER, models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("service agreement")
        verbose_name_plural = _("service agreements")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["next_check_at"], name="agreement_due", condition=models.Q(next_check_at__isnull=False)),
            models.Index(fields=["account", "-created_at"], name="agreement_account"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def outside_plan_validity(self) -> bool:
        """Whether the term starts before its plan's validity or runs past it (an open side of the validity leaves
        that side free): agreements generated before the term rule (docs/keyaccounts.md) may; the file says so."""
        plan = self.plan
        return bool((plan.valid_from and self.start_date < plan.valid_from)
                    or (plan.valid_to and self.end_date > plan.valid_to))  # fmt: skip

    @property
    def binds_outside_plan_validity(self) -> bool:
        """Outside its plan's validity and still to be signed or in force (the file's warning, the check's list)."""
        return self.status in OPEN_AGREEMENT_STATUSES and self.outside_plan_validity


class AgreementAmendment(TermAmendment):
    """An amendment of a signed service agreement's term (补充协议), with its bilingual PDF made and kept when it is
    recorded, as the agreement's (core/amendments.py)."""

    agreement = models.ForeignKey(Agreement, models.PROTECT, related_name="amendments",
                                  verbose_name=_("service agreement"))  # fmt: skip
    document = models.CharField(max_length=300, blank=True, editable=False)  # a name under var/agreements/
    document_sha256 = models.CharField(_("document fingerprint (SHA-256)"), max_length=64, blank=True, editable=False)

    class Meta(TermAmendment.Meta):
        verbose_name = _("amendment of a service agreement")
        verbose_name_plural = _("amendments of service agreements")


OPEN_AGREEMENT_STATUSES = (AgreementStatus.DRAFT, AgreementStatus.SIGNED)


def outside_plan_validity_q() -> models.Q:
    """The agreements whose term lies outside their plan's validity (`Agreement.outside_plan_validity`)."""
    return models.Q(plan__valid_from__isnull=False, start_date__lt=models.F("plan__valid_from")) | models.Q(
        plan__valid_to__isnull=False, end_date__gt=models.F("plan__valid_to")
    )


class Meeting(models.Model):
    """A periodic service meeting (服务沟通会议) with its minutes."""

    account = models.ForeignKey(KeyAccount, models.CASCADE, related_name="meetings")
    held_at = models.DateTimeField(_("held"))
    title = models.CharField(pgettext_lazy("record title", "title"), max_length=200)
    attendees = models.TextField(_("attendees"), blank=True)
    minutes = models.TextField(_("minutes"))
    created_by = models.ForeignKey(USER, models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(_("recorded"), default=timezone.now)

    class Meta:
        verbose_name = _("service meeting")
        verbose_name_plural = _("service meetings")
        ordering = ["-held_at", "-id"]

    def __str__(self) -> str:
        return self.title


class MeetingAction(models.Model):
    """An action item from a meeting: owner, due date, done. While open, its text, owner (a member of the account's
    team) and due date can be corrected (services.edit_action); `version` guards that edit and ticking it off
    against a change made meanwhile. Its due date is a due clock swept by the worker (core/dueclock.py), as a plan
    item's deadline: an open action is reported overdue once (services.sweep_meeting_actions)."""

    meeting = models.ForeignKey(Meeting, models.CASCADE, related_name="actions")
    title = models.CharField(_("action"), max_length=200)
    owner = models.ForeignKey(USER, models.PROTECT, related_name="+", verbose_name=_("owner"))
    due_date = models.DateField(_("due date"))
    done_at = models.DateTimeField(_("done"), null=True, blank=True)
    version = models.PositiveIntegerField(default=1, editable=False)
    # the due clock (open actions of an account served): next worker look, lease, overdue alert sent
    next_check_at = models.DateTimeField(null=True, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    overdue_notified_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("meeting action item")
        verbose_name_plural = _("meeting action items")
        ordering = ["due_date", "id"]
        indexes = [
            models.Index(fields=["next_check_at"], name="meetingaction_due",
                         condition=models.Q(next_check_at__isnull=False)),
        ]  # fmt: skip

    def __str__(self) -> str:
        return self.title


class TrialOffer(models.Model):
    """A new-product trial offered to a key account (新产品优先试用)."""

    account = models.ForeignKey(KeyAccount, models.CASCADE, related_name="trials")
    product = models.ForeignKey("servicedesk.Product", models.PROTECT, related_name="+", verbose_name=_("product"))
    offered_on = models.DateField(_("offered on"), default=timezone.localdate)
    status = models.CharField(_("status"), max_length=10, choices=TrialStatus.choices, default=TrialStatus.OFFERED)
    notes = models.TextField(_("notes"), blank=True)
    created_by = models.ForeignKey(USER, models.SET_NULL, null=True, blank=True, related_name="+")
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("trial offer")
        verbose_name_plural = _("trial offers")
        ordering = ["-offered_on", "-id"]

    def __str__(self) -> str:
        return f"{self.account.number} · {self.product}"


class AccountReview(models.Model):
    """The quarterly or annual evaluation of a key account's service (服务评估), computed from the data:
    satisfaction, quality feedback, response and resolution times, complaints."""

    account = models.ForeignKey(KeyAccount, models.CASCADE, related_name="reviews")
    period = models.CharField(_("period"), max_length=8)  # 2026Q3 or 2026
    start = models.DateField(pgettext_lazy("period", "from"))
    end = models.DateField(pgettext_lazy("period", "to"))
    satisfaction = models.DecimalField(_("satisfaction (1–5)"), max_digits=4, decimal_places=2, null=True, blank=True)
    surveys = models.PositiveIntegerField(_("surveys answered"), default=0)
    quality_feedback = models.PositiveIntegerField(_("quality complaints"), default=0)
    tickets = models.PositiveIntegerField(_("tickets"), default=0)
    avg_response_hours = models.DecimalField(_("average first response (h)"), max_digits=8, decimal_places=2, null=True, blank=True)
    avg_resolution_hours = models.DecimalField(_("average resolution (h)"), max_digits=8, decimal_places=2, null=True, blank=True)
    unanswered = models.PositiveIntegerField(_("still unanswered"), default=0)
    unresolved = models.PositiveIntegerField(_("still unresolved"), default=0)
    complaints = models.PositiveIntegerField(_("complaints"), default=0)
    complaints_resolved = models.PositiveIntegerField(_("complaints resolved"), default=0)
    plan_items_due = models.PositiveIntegerField(_("plan items due"), default=0)
    plan_items_on_time = models.PositiveIntegerField(_("plan items done on time"), default=0)
    score = models.DecimalField(_("score"), max_digits=6, decimal_places=2)
    components = models.JSONField(_("components"), default=list)
    computed_at = models.DateTimeField(_("computed"), default=timezone.now)

    class Meta:
        verbose_name = _("key-account evaluation")
        verbose_name_plural = _("key-account evaluations")
        ordering = ["account", "-period"]
        constraints = [models.UniqueConstraint(fields=["account", "period"], name="accountreview_period")]

    def __str__(self) -> str:
        return f"{self.account.number} {self.period}"
