"""Purchases (采购记录): order lines imported from the company's ERP, the ERP's product codes, and the
monthly rollups per customer that evaluation and key-account scoring read instead of the lines.

Money is stored in fen (分, integer hundredths of a yuan): sums are exact on SQLite and PostgreSQL alike,
and the API and pages show it as Decimal yuan."""

from __future__ import annotations

import unicodedata
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core.fields import CodeCharField
from pharmacrm.customers.choices import Source

FEN = Decimal("0.01")


def yuan(fen: int | None) -> Decimal:
    """Fen as Decimal yuan (two places)."""
    return (Decimal(int(fen or 0)) / 100).quantize(FEN)


def product_code_key(code: str) -> str:
    """What two spellings of one product code share: yp1001, YP1001 and ＹＰ１００１ (and one with spaces round it) are
    one code, as the ERP and the catalogue mean it."""
    return unicodedata.normalize("NFKC", code or "").strip().casefold()


class ProductCode(models.Model):
    """A product as the ERP names it (产品编码), linked to the service-desk catalogue where known."""

    code = models.CharField(_("product code"), max_length=40, unique=True)
    name = models.CharField(_("product name"), max_length=100, blank=True)
    product = models.ForeignKey(
        "servicedesk.Product", models.SET_NULL, null=True, blank=True, related_name="erp_codes",
        verbose_name=_("catalogue product"),
    )  # fmt: skip
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        verbose_name = _("ERP product code")
        verbose_name_plural = _("ERP product codes")
        ordering = ["code"]
        constraints = [
            # one code in any letter case, in the database too (two imports or saves at the same moment): the check
            # below names the code recorded; this index refuses whatever gets past it (sales 0016)
            models.UniqueConstraint(Upper("code"), name="productcode_code_any_case"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}".strip()

    def validate_unique(self, exclude=None) -> None:
        """Product codes are one code in any letter case (the import matches them so): a code differing from a
        recorded one only in case (yp1001 beside YP1001) is refused, naming the code recorded."""
        super().validate_unique(exclude)
        if exclude and "code" in exclude or not self.code:
            return
        key = product_code_key(self.code)
        others = ProductCode.objects.filter(code__iexact=unicodedata.normalize("NFKC", self.code).strip())
        if self.pk is not None:
            others = others.exclude(pk=self.pk)
        for other in others.values_list("code", flat=True):
            if product_code_key(other) == key:
                raise ValidationError({"code": [ValidationError(
                    _("The product code %(code)s is recorded already: product codes are the same in any letter "
                      "case."), code="duplicate_code", params={"code": other},
                )]})  # fmt: skip

    def validate_constraints(self, exclude=None) -> None:
        """The index of one code in any letter case is checked by `validate_unique`, under the field and naming the
        code recorded (the constraint's own check gave a second, unlabelled message)."""
        super().validate_constraints(exclude={*(exclude or ()), "code"})


class OrderLine(models.Model):
    """One line of an ERP order (订单行). (order number, line number) identifies it across re-imports;
    `row_hash` tells an unchanged line from a corrected one."""

    order_number = CodeCharField(_("order number"), max_length=40)
    line_number = models.PositiveIntegerField(_("line"))
    order_date = models.DateField(_("order date"))
    month = models.DateField(editable=False)  # first day of the order's month: the rollup key
    institution = models.ForeignKey(
        "customers.Institution", models.PROTECT, related_name="order_lines", verbose_name=_("customer"),
        db_index=False,
    )  # fmt: skip
    product_code = models.CharField(_("product code"), max_length=40)
    product_name = models.CharField(_("product name"), max_length=100, blank=True)
    batch_number = models.CharField(_("batch / lot number"), max_length=40, blank=True)
    quantity = models.DecimalField(_("quantity"), max_digits=14, decimal_places=3)
    unit_price = models.DecimalField(_("unit price"), max_digits=14, decimal_places=4)
    amount_fen = models.BigIntegerField(_("amount (fen)"))
    invoice_number = models.CharField(_("invoice number"), max_length=40, blank=True)
    payment_due = models.DateField(_("payment due"), null=True, blank=True)
    paid_date = models.DateField(_("paid on"), null=True, blank=True)
    paid_fen = models.BigIntegerField(_("paid (fen)"), default=0)
    outstanding_fen = models.BigIntegerField(_("outstanding (fen)"), default=0, editable=False)
    row_hash = models.BigIntegerField(editable=False)
    job_id = models.BigIntegerField(null=True, blank=True, editable=False)  # the import that last wrote it
    imported_at = models.DateTimeField(_("imported"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")
        ordering = ["-order_date", "order_number", "line_number"]
        constraints = [
            models.UniqueConstraint(fields=["order_number", "line_number"], name="orderline_key"),
        ]
        indexes = [
            # rollup maintenance ("has this customer bought this product this month before?") and recomputation,
            # a customer's purchases tab
            models.Index(fields=["institution", "month", "product_code"], name="orderline_customer_month"),
            # open items (应收未收) for credit and ageing: only unpaid lines are in this index
            # the open items: a customer's credit status and ageing, the nightly overdue refresh, and the evaluation
            # credit gate's old debts of every customer, which read the order date and the amount owed from the index
            # alone (covering: 4.5 → 0.4 s over 3 M open items at 10 M lines on SQLite)
            models.Index(
                fields=["institution", "payment_due", "order_date", "outstanding_fen"],
                name="orderline_open_items",
                condition=models.Q(outstanding_fen__gt=0),
            ),  # fmt: skip
            models.Index(
                fields=["batch_number"], name="orderline_batch", condition=~models.Q(batch_number="")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order_number}/{self.line_number}"

    @property
    def amount(self) -> Decimal:
        return yuan(self.amount_fen)

    @property
    def paid_amount(self) -> Decimal:
        return yuan(self.paid_fen)

    @property
    def outstanding(self) -> Decimal:
        return yuan(self.outstanding_fen)


class MonthlyRollup(models.Model):
    """A customer's purchases in one month, kept by the import (only the months a file touched are
    recomputed), so that scoring costs grow with customers, not with order history."""

    MERGE_KEEP = True  # a customer merge recomputes these for the survivor instead of moving them

    institution = models.ForeignKey(
        "customers.Institution", models.CASCADE, related_name="purchase_months", db_index=False
    )
    month = models.DateField()
    amount_fen = models.BigIntegerField(default=0)
    orders = models.PositiveIntegerField(default=0)
    lines = models.PositiveIntegerField(default=0)
    products = models.PositiveIntegerField(default=0)
    # payment behaviour of the month's lines
    paid_fen = models.BigIntegerField(default=0)
    on_time_fen = models.BigIntegerField(default=0)  # paid no later than the due date (in full or in part)
    late_fen = models.BigIntegerField(default=0)  # paid after the due date
    late_lines = models.PositiveIntegerField(default=0)
    days_late = models.BigIntegerField(default=0)  # sum over the late lines
    outstanding_fen = models.BigIntegerField(default=0)
    overdue_fen = models.BigIntegerField(default=0)  # outstanding past its due date, as of `overdue_as_of`
    overdue_as_of = models.DateField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("monthly purchase rollup")
        verbose_name_plural = _("monthly purchase rollups")
        ordering = ["institution", "month"]
        constraints = [models.UniqueConstraint(fields=["institution", "month"], name="rollup_key")]
        indexes = [
            models.Index(fields=["month", "institution"], name="rollup_month"),
            models.Index(fields=["updated_at"], name="rollup_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.institution_id} {self.month:%Y-%m}"


class RollupDirty(models.Model):
    """A (customer, month) whose lines changed and whose rollup must be recomputed. Written in the same
    transaction as the lines, so a worker killed between the two leaves the mark for the next refresh."""

    institution_id = models.BigIntegerField()
    month = models.DateField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["institution_id", "month"], name="rollupdirty_key")]

    def __str__(self) -> str:
        return f"{self.institution_id} {self.month:%Y-%m}"


class RollupEmptied(models.Model):
    """A (customer, month) whose last line went elsewhere (a corrected file gave it to another customer), so
    its rollup was deleted. The incremental evaluation looks here as well as at the rollups' `updated_at`:
    without this row the customer the lines left would keep the score they no longer earn."""

    institution_id = models.BigIntegerField()
    month = models.DateField()
    emptied_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.institution_id} {self.month:%Y-%m}"


class ChurnSignal(models.Model):
    """A customer whose purchases stopped or fell (客户流失预警), one row per episode: opened by the nightly refresh
    (`churn.refresh`) from the monthly rollups, kept up to date while it lasts, and closed when the purchases come
    back (*resumed*) or when the owner or a manager dismisses it with a reason (*dismissed*). The figures are those
    of the last refresh: monthly averages in fen over the base year and over the last three complete months."""

    class Level(models.TextChoices):
        LAPSED = "lapsed", _("Stopped buying")
        DECLINING = "declining", _("Buying much less")

    class Resolution(models.TextChoices):
        RESUMED = "resumed", _("Purchases resumed")
        DISMISSED = "dismissed", _("Dismissed")

    institution = models.ForeignKey(
        "customers.Institution", models.CASCADE, related_name="churn_signals", verbose_name=_("customer")
    )
    level = models.CharField(_("risk"), max_length=10, choices=Level.choices)
    detected_on = models.DateField(_("detected"))
    refreshed_on = models.DateField(_("figures as of"))
    base_avg_fen = models.BigIntegerField(_("monthly average before (fen)"))
    recent_avg_fen = models.BigIntegerField(_("monthly average in the last three months (fen)"))
    base_months = models.PositiveSmallIntegerField(_("months with purchases in the base year"))
    last_month = models.DateField(_("last month with purchases"), null=True, blank=True)
    resolved_on = models.DateField(_("closed"), null=True, blank=True)
    resolution = models.CharField(_("outcome"), max_length=10, choices=Resolution.choices, blank=True)
    dismissed_by = models.ForeignKey(
        "core.User", models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("dismissed by")
    )
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic locking

    class Meta:
        verbose_name = _("churn signal")
        verbose_name_plural = _("churn signals")
        ordering = ["-detected_on", "-id"]
        constraints = [
            # one open episode per customer
            models.UniqueConstraint(
                fields=["institution"], condition=models.Q(resolved_on__isnull=True), name="churn_one_open"
            ),
        ]
        indexes = [
            models.Index(fields=["institution", "-detected_on"], name="churn_customer"),
            # the list's order (ORDER_OPEN), read from the index: "lapsed" sorts after "declining", so descending
            # puts those who stopped buying first
            models.Index(
                fields=["-level", "-base_avg_fen", "id"], condition=models.Q(resolved_on__isnull=True), name="churn_open"
            ),
        ]

    ORDER_OPEN = ("-level", "-base_avg_fen", "id")  # stopped buying first, then by the monthly amount at stake

    def __str__(self) -> str:
        # in the reader's language (the audit page names a signal by it); the customer is a detail of the entry
        return f"{self.get_level_display()} · {self.detected_on}"

    @property
    def base_avg(self) -> Decimal:
        return yuan(self.base_avg_fen)

    @property
    def recent_avg(self) -> Decimal:
        return yuan(self.recent_avg_fen)

    @property
    def change_pct(self) -> int | None:
        """The recent monthly average against the base one, in whole percent (−100 when nothing was bought)."""
        if not self.base_avg_fen:
            return None
        return round((self.recent_avg_fen - self.base_avg_fen) * 100 / self.base_avg_fen)


class ChurnRate(models.Model):
    """How many of a period's buyers bought again in the next period (客户流失率 / 留存率), and how many of the
    period's buyers bought in more than one month (复购率), counted over every customer by the nightly refresh."""

    class Kind(models.TextChoices):
        YEAR = "year", _("12 months")
        QUARTER = "quarter", _("Quarter")

    kind = models.CharField(max_length=8, choices=Kind.choices)
    start = models.DateField()  # first day of the period measured; the period before is as long
    end = models.DateField()  # first day after it
    buyers_before = models.PositiveIntegerField(default=0)  # customers with purchases in the period before
    retained = models.PositiveIntegerField(default=0)  # …of them with purchases in this period too
    buyers = models.PositiveIntegerField(default=0)  # customers with purchases in this period
    repeat_buyers = models.PositiveIntegerField(default=0)  # …of them with purchases in two months or more
    computed_on = models.DateField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "start"], name="churn_rate_key")]
        ordering = ["kind", "-start"]

    def __str__(self) -> str:
        return f"{self.kind} {self.start}"

    @staticmethod
    def _pct(part: int, whole: int) -> Decimal | None:
        from .services import half_up

        return half_up(Decimal(part) * 100 / whole, "0.1") if whole else None

    @property
    def last_day(self):
        """The period's last day (`end` is the first day after it)."""
        import datetime as dt

        return self.end - dt.timedelta(days=1)

    @property
    def churn_pct(self) -> Decimal | None:
        return self._pct(self.buyers_before - self.retained, self.buyers_before)

    @property
    def retention_pct(self) -> Decimal | None:
        return self._pct(self.retained, self.buyers_before)

    @property
    def repeat_pct(self) -> Decimal | None:
        return self._pct(self.repeat_buyers, self.buyers)


class SalesTarget(models.Model):
    """A sales target (销售目标) of a person (the owner of customers: a rep, a key-account manager) or of a team
    for a month, a quarter or a year; set by managers (targets.py). A quarter or a year without a target of its
    own counts its months' (targets.target_of)."""

    class Kind(models.TextChoices):
        MONTH = "month", _("Month")
        QUARTER = "quarter", _("Quarter")
        YEAR = "year", _("Year")

    year = models.PositiveSmallIntegerField(_("year"))
    kind = models.CharField(_("period"), max_length=8, choices=Kind.choices)
    number = models.PositiveSmallIntegerField(_("month or quarter"), default=1)  # 1 for a year
    user = models.ForeignKey(
        "core.User", models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("sales representative")
    )
    team = models.ForeignKey(
        "core.Team", models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("team")
    )
    amount_fen = models.BigIntegerField(_("target (fen)"))
    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic locking
    updated_by = models.ForeignKey("core.User", models.SET_NULL, null=True, blank=True, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("sales target")
        verbose_name_plural = _("sales targets")
        ordering = ["year", "kind", "number", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, team__isnull=True) | models.Q(user__isnull=True, team__isnull=False),
                name="target_one_subject",
            ),
            models.CheckConstraint(condition=models.Q(amount_fen__gte=0), name="target_not_negative"),
            models.UniqueConstraint(
                fields=["user", "year", "kind", "number"], condition=models.Q(user__isnull=False), name="target_user_key"
            ),
            models.UniqueConstraint(
                fields=["team", "year", "kind", "number"], condition=models.Q(team__isnull=False), name="target_team_key"
            ),
        ]
        indexes = [models.Index(fields=["year", "kind", "number"], name="target_period")]

    def __str__(self) -> str:
        return f"{self.period_key} {self.user_id or ''}{'t' + str(self.team_id) if self.team_id else ''}"

    @property
    def period_key(self) -> str:
        if self.kind == self.Kind.MONTH:
            return f"{self.year}-{self.number:02d}"
        if self.kind == self.Kind.QUARTER:
            return f"{self.year}-Q{self.number}"
        return f"{self.year}"

    @property
    def amount(self) -> Decimal:
        return yuan(self.amount_fen)


class Opportunity(models.Model):
    """A sales opportunity (商机) with a customer, moved through the seed's steps (seed 000 §2.2–2.4): 线索 → 需求分析 →
    方案 → 谈判 → 签约 (won), or 输单 (lost) from any open step. pipeline.py creates, changes and moves it (audited,
    optimistic locking); every move is an OpportunityMove, from which conversion and time in stage are measured."""

    class Stage(models.TextChoices):
        LEAD = "lead", pgettext_lazy("opportunity stage", "Lead")  # 线索: not a team lead
        NEEDS = "needs", pgettext_lazy("opportunity stage", "Needs analysis")
        PROPOSAL = "proposal", pgettext_lazy("opportunity stage", "Proposal")  # 方案: not a key-account proposal
        NEGOTIATION = "negotiation", pgettext_lazy("opportunity stage", "Negotiation")
        WON = "won", pgettext_lazy("opportunity stage", "Won")
        LOST = "lost", pgettext_lazy("opportunity stage", "Lost")

    class LostReason(models.TextChoices):
        PRICE = "price", pgettext_lazy("lost reason", "Price")
        COMPETITOR = "competitor", _("Lost to a competitor")
        FORMULARY = "formulary", _("Not admitted to the formulary or tender")
        BUDGET = "budget", _("Budget or insurance cost control")
        NO_NEED = "no_need", _("The need went away")
        TIMING = "timing", _("Postponed indefinitely")
        OTHER = "other", _("Other")

    institution = models.ForeignKey(
        "customers.Institution", models.PROTECT, related_name="opportunities", verbose_name=_("customer")
    )
    contact = models.ForeignKey(
        "customers.Person", models.SET_NULL, null=True, blank=True, related_name="opportunities",
        verbose_name=_("contact person"),
    )  # fmt: skip
    title = models.CharField(pgettext_lazy("record title", "title"), max_length=200)
    product = models.ForeignKey(
        "servicedesk.Product", models.SET_NULL, null=True, blank=True, related_name="opportunities",
        verbose_name=_("product"),
    )  # fmt: skip
    amount_fen = models.BigIntegerField(_("expected amount (fen)"))
    close_date = models.DateField(_("expected close date"))
    stage = models.CharField(_("stage"), max_length=12, choices=Stage.choices, default=Stage.LEAD)
    # the furthest open stage ever reached (0 lead … 3 negotiation, 4 won): the funnel's "reached each stage"
    reached = models.PositiveSmallIntegerField(default=0, editable=False)
    owner = models.ForeignKey(
        "core.User", models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("owner")
    )
    team = models.ForeignKey(
        "core.Team", models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("team")
    )
    source = models.CharField(_("information source"), max_length=16, choices=Source.choices, blank=True)
    competitor = models.CharField(_("competitor"), max_length=100, blank=True)
    next_step = models.CharField(_("next step"), max_length=200, blank=True)
    next_step_date = models.DateField(_("next step date"), null=True, blank=True)
    lost_reason = models.CharField(_("lost reason"), max_length=12, choices=LostReason.choices, blank=True)
    lost_note = models.TextField(_("lost reason details"), blank=True)
    won_on = models.DateField(_("won on"), null=True, blank=True)
    closed_on = models.DateField(_("closed on"), null=True, blank=True, editable=False)  # won or lost (Beijing day)
    created_by = models.ForeignKey("core.User", models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic locking
    # the staleness its owner was last reminded of ("n2026-11-30 c2026-12-01"): once per staleness, not every day
    stale_reminded = models.CharField(max_length=40, blank=True, default="", editable=False)

    class Meta:
        verbose_name = _("opportunity")
        verbose_name_plural = _("opportunities")
        ordering = ["close_date", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount_fen__gte=0), name="opportunity_amount_not_negative"),
        ]
        indexes = [
            models.Index(fields=["owner", "stage"], name="opportunity_owner_stage"),
            models.Index(fields=["team", "stage"], name="opportunity_team_stage"),
            models.Index(fields=["stage", "close_date"], name="opportunity_stage_close"),
            models.Index(fields=["created_at"], name="opportunity_created"),
            models.Index(fields=["closed_on"], name="opportunity_closed"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def amount(self) -> Decimal:
        return yuan(self.amount_fen)

    @property
    def is_open(self) -> bool:
        return self.stage not in (self.Stage.WON, self.Stage.LOST)


class OpportunityMove(models.Model):
    """One step of an opportunity's stage history: who moved it, when, from which stage to which ('' from: created)."""

    opportunity = models.ForeignKey(Opportunity, models.CASCADE, related_name="moves")
    from_stage = models.CharField(pgettext_lazy("change", "from"), max_length=12, blank=True)
    to_stage = models.CharField(pgettext_lazy("change", "to"), max_length=12)
    at = models.DateTimeField(_("when"), default=timezone.now)
    by = models.ForeignKey("core.User", models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("by"))

    class Meta:
        verbose_name = _("stage change")
        verbose_name_plural = _("stage changes")
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["opportunity", "at"], name="opportunity_move")]

    def __str__(self) -> str:
        return f"{self.from_stage or '—'} → {self.to_stage}"


class CustomerValue(models.Model):
    """A customer's lifetime value (客户生命周期价值, seed 000 §8.1) as the nightly run computed it from the monthly
    rollups (clv.py; the formula in docs/clv.md): what it paid to date, its average monthly value over the months it
    bought in, its tenure, and a projection of the next 36 months — a model, not a promise."""

    MERGE_KEEP = True  # recomputed for the survivor by the next run, not moved

    institution = models.OneToOneField("customers.Institution", models.CASCADE, related_name="+", primary_key=True)
    klass = models.CharField(_("customer class"), max_length=1, blank=True)
    historic_fen = models.BigIntegerField(_("paid to date (fen)"))
    active_months = models.PositiveIntegerField(_("months with purchases"))
    avg_month_fen = models.BigIntegerField(_("average monthly value (fen)"))
    tenure_months = models.PositiveIntegerField(_("tenure (months)"))
    first_month = models.DateField(_("first purchase"), null=True, blank=True)
    last_month = models.DateField(_("last purchase"), null=True, blank=True)
    retention = models.DecimalField(_("12-month retention used"), max_digits=5, decimal_places=4)
    retention_source = models.CharField(_("retention from"), max_length=8)  # class, company or setting
    projected_fen = models.BigIntegerField(_("projected value, next 36 months (fen)"))
    computed_on = models.DateField(_("computed"))

    class Meta:
        verbose_name = _("customer lifetime value")
        verbose_name_plural = _("customer lifetime values")
        ordering = ["-projected_fen", "institution_id"]
        indexes = [
            models.Index(fields=["-projected_fen", "institution"], name="clv_projected"),
            models.Index(fields=["-historic_fen", "institution"], name="clv_historic"),
        ]

    def __str__(self) -> str:
        return f"{self.institution_id} {self.projected_fen}"

    @property
    def historic(self):
        return yuan(self.historic_fen)

    @property
    def projected(self):
        return yuan(self.projected_fen)

    @property
    def avg_month(self):
        return yuan(self.avg_month_fen)


class AppraisalScheme(models.Model):
    """A KPI appraisal scheme (考核方案, seed 000 §2.3), set by managers (kpi.py): the period it appraises (a month, a
    quarter or a year), the roles it appraises (the owners of customers: reps, key-account managers), its weighted
    indicators — each {code, weight, target, floor, cap}, the weights adding up to 100 — and the grade thresholds.
    Versioned (optimistic locking) and audited."""

    class Kind(models.TextChoices):
        MONTH = "month", _("Month")
        QUARTER = "quarter", _("Quarter")
        YEAR = "year", _("Year")

    name = models.CharField(_("name"), max_length=120, unique=True)
    period_kind = models.CharField(_("period"), max_length=8, choices=Kind.choices, default=Kind.QUARTER)
    roles = models.JSONField(_("roles appraised"), default=list)  # ["rep", "kam"]
    indicators = models.JSONField(_("indicators"), default=list)  # [{"code", "weight", "target", "floor", "cap"}]
    excellent = models.DecimalField(_("excellent from"), max_digits=5, decimal_places=1, default=Decimal(90))
    good = models.DecimalField(_("good from"), max_digits=5, decimal_places=1, default=Decimal(75))
    passing = models.DecimalField(_("pass from"), max_digits=5, decimal_places=1, default=Decimal(60))
    bonus = models.JSONField(_("bonus coefficients"), default=dict, blank=True)  # {"excellent": "1.2", …}
    active = models.BooleanField(_("in use"), default=True)
    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic locking
    updated_by = models.ForeignKey("core.User", models.SET_NULL, null=True, blank=True, related_name="+")
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        verbose_name = _("appraisal scheme")
        verbose_name_plural = _("appraisal schemes")
        ordering = ["-active", "name"]

    def __str__(self) -> str:
        return self.name


class Appraisal(models.Model):
    """One person's appraisal result (考核结果) under a scheme for a period: every indicator's raw value, points,
    weight and contribution kept in `components`, the score their sum, the grade from the scheme's thresholds. A
    draft is replaced by the next computation; a finalised one (锁定) never changes."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        FINAL = "final", _("Finalised")

    scheme = models.ForeignKey(AppraisalScheme, models.PROTECT, related_name="results", verbose_name=_("scheme"))
    period = models.CharField(_("period"), max_length=7)  # 2026-09, 2026-Q3, 2026
    user = models.ForeignKey("core.User", models.CASCADE, related_name="+", verbose_name=_("person"))
    team = models.ForeignKey(
        "core.Team", models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("team")
    )  # the first of `teams` by name (the API's `team`)
    # every team the person was in when the result was computed: each team's ranking and average counts them
    teams = models.ManyToManyField("core.Team", blank=True, related_name="+", verbose_name=_("teams"))
    score = models.DecimalField(_("score"), max_digits=6, decimal_places=2, null=True, blank=True)
    grade = models.CharField(_("grade"), max_length=10, blank=True)  # excellent, good, pass, improve; "" no data
    bonus_coefficient = models.DecimalField(_("bonus coefficient"), max_digits=4, decimal_places=2, null=True,
                                            blank=True)  # fmt: skip
    components = models.JSONField(default=list)
    status = models.CharField(_("status"), max_length=6, choices=Status.choices, default=Status.DRAFT)
    comment = models.TextField(_("comment"), blank=True)
    computed_at = models.DateTimeField(_("computed"), default=timezone.now)
    finalised_at = models.DateTimeField(_("finalised"), null=True, blank=True)
    finalised_by = models.ForeignKey(
        "core.User", models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("finalised by")
    )
    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic locking

    class Meta:
        verbose_name = _("appraisal result")
        verbose_name_plural = _("appraisal results")
        ordering = ["scheme", "period", "-score", "id"]
        constraints = [models.UniqueConstraint(fields=["scheme", "period", "user"], name="appraisal_key")]
        indexes = [models.Index(fields=["user", "period"], name="appraisal_person")]

    def __str__(self) -> str:
        return f"{self.scheme_id} {self.period} {self.user_id}"
