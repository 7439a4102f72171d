"""Market information and competitor analysis (市场信息与竞争对手分析), seed 001 二.2 and seed 000 §2.4.3: the
competitors and their products set against ours, which competitor products each customer uses (竞品使用情况, an
append-only history of observations, the latest per product being the current one), and market intelligence
(市场情报: policy, tender and VBP results, competitor activity, price changes, industry news). docs/market.md."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class VbpStatus(models.TextChoices):
    NONE = "none", _("Not in volume-based procurement")
    SELECTED = "selected", _("Selected in volume-based procurement")
    NOT_SELECTED = "not_selected", _("Not selected in volume-based procurement")


class Source(models.TextChoices):
    VISIT = "visit", _("Visit")
    TENDER = "tender", _("Tender result")
    CUSTOMER = "customer", _("Customer statement")
    THIRD_PARTY = "third_party", _("Third-party data")


class IntelKind(models.TextChoices):
    POLICY = "policy", _("Policy")
    TENDER = "tender", _("Tender / VBP result")
    COMPETITOR = "competitor", _("Competitor activity")
    PRICE = "price", _("Price change")
    NEWS = "news", _("Industry news")


class Importance(models.TextChoices):
    NORMAL = "normal", pgettext_lazy("importance", "Normal")
    IMPORTANT = "important", pgettext_lazy("importance", "Important")


class Competitor(models.Model):
    name = models.CharField(_("company"), max_length=100, unique=True)
    notes = models.TextField(_("notes"), blank=True)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("competitor")
        verbose_name_plural = _("competitors")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CompetitorProduct(models.Model):
    company = models.ForeignKey(Competitor, models.PROTECT, related_name="products", verbose_name=_("company"))
    generic_name = models.CharField(_("generic name"), max_length=100)
    brand_name = models.CharField(_("brand name"), max_length=100, blank=True)
    dosage_form = models.CharField(_("dosage form"), max_length=40, blank=True)
    strength = models.CharField(_("strength"), max_length=60, blank=True)
    our_products = models.ManyToManyField("servicedesk.Product", related_name="competitor_products", blank=True,
                                          verbose_name=_("our products it competes with"))  # fmt: skip
    vbp_status = models.CharField(_("volume-based procurement"), max_length=12, choices=VbpStatus.choices,
                                  default=VbpStatus.NONE)  # fmt: skip
    vbp_batch = models.CharField(_("procurement batch"), max_length=60, blank=True)
    reference_price = models.DecimalField(_("reference price (yuan)"), max_digits=12, decimal_places=2, null=True,
                                          blank=True)  # fmt: skip
    notes = models.TextField(_("notes"), blank=True)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("competitor product")
        verbose_name_plural = _("competitor products")
        ordering = ["generic_name", "brand_name", "id"]
        constraints = [models.UniqueConstraint(fields=["company", "generic_name", "brand_name", "strength"],
                                               name="market_product_key")]  # fmt: skip

    def __str__(self) -> str:
        name = f"{self.brand_name}（{self.generic_name}）" if self.brand_name else self.generic_name
        return f"{name} {self.strength}".strip()


class Presence(models.Model):
    """One observation of a competitor product used at a customer. Never changed: a newer observation of the same
    product at the same customer replaces it as the current one, and the older ones stay as its history."""

    institution = models.ForeignKey("customers.Institution", models.PROTECT, related_name="competitor_presence",
                                    verbose_name=_("customer"))  # fmt: skip
    product = models.ForeignKey(CompetitorProduct, models.PROTECT, related_name="presence",
                                verbose_name=_("competitor product"))  # fmt: skip
    monthly_volume = models.PositiveIntegerField(_("estimated monthly volume (units)"), null=True, blank=True)
    share = models.DecimalField(_("estimated share (%)"), max_digits=5, decimal_places=2, null=True, blank=True)
    observed_on = models.DateField(_("observed on"))
    source = models.CharField(_("source"), max_length=12, choices=Source.choices)
    note = models.TextField(_("note"), blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True,
                                    related_name="+", verbose_name=_("recorded by"))  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("competitor presence")
        verbose_name_plural = _("competitor presence")
        ordering = ["-observed_on", "-id"]
        indexes = [
            models.Index(fields=["institution", "product", "observed_on"], name="market_presence_current"),
            models.Index(fields=["product", "observed_on"], name="market_presence_product"),
        ]

    def __str__(self) -> str:
        return f"{self.product} @ {self.institution_id} {self.observed_on}"


class Intelligence(models.Model):
    kind = models.CharField(_("kind"), max_length=12, choices=IntelKind.choices)
    title = models.CharField(pgettext_lazy("record title", "title"), max_length=200)
    content = models.TextField(_("content"), blank=True)
    happened_on = models.DateField(_("date"))
    source = models.CharField(_("source"), max_length=500, blank=True)
    importance = models.CharField(_("importance"), max_length=10, choices=Importance.choices,
                                  default=Importance.NORMAL)  # fmt: skip
    province = models.CharField(_("province"), max_length=6, blank=True, default="")
    competitor_products = models.ManyToManyField(CompetitorProduct, related_name="intelligence", blank=True,
                                                 verbose_name=_("competitor products"))  # fmt: skip
    our_products = models.ManyToManyField("servicedesk.Product", related_name="market_intelligence", blank=True,
                                          verbose_name=_("our products"))  # fmt: skip
    customers = models.ManyToManyField("customers.Institution", related_name="market_intelligence", blank=True,
                                       verbose_name=_("customers"))  # fmt: skip
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True,
                                   related_name="+", verbose_name=_("recorded by"))  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("market intelligence")
        verbose_name_plural = _("market intelligence")
        ordering = ["-happened_on", "-id"]
        indexes = [models.Index(fields=["province", "happened_on"], name="market_intel_province")]

    def __str__(self) -> str:
        return self.title
