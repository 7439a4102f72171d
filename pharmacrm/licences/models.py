"""A customer's licences (客户资质证照): the business licence, the drug trading licence, the medical institution
practising licence. GSP (《药品经营质量管理规范》) asks a seller to check a buyer's legal qualification before it sells
and to keep the record: each licence's number, business scope, validity and who checked it against the original.
docs/licences.md."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class LicenceKind(models.TextChoices):
    BUSINESS = "business", _("Business licence (营业执照)")
    DRUG_TRADING = "drug_trading", _("Drug trading licence (药品经营许可证)")
    MEDICAL_PRACTICE = "medical_practice", _("Medical institution practising licence (医疗机构执业许可证)")
    DEVICE_TRADING = "device_trading", _("Medical device trading licence (医疗器械经营许可证)")
    OTHER = "other", pgettext_lazy("licence kind", "Other")


class Scope(models.TextChoices):
    """The business-scope categories of a drug trading licence (经营范围), as the licences print them."""

    HERBS = "herbs", _("Chinese herbal medicines (中药材)")
    HERBAL_PIECES = "herbal_pieces", _("Prepared herbal pieces (中药饮片)")
    PATENT_CHINESE = "patent_chinese", _("Chinese patent medicines (中成药)")
    CHEMICAL_API = "chemical_api", _("Chemical APIs (化学原料药)")
    CHEMICAL = "chemical", _("Chemical preparations (化学药制剂)")
    ANTIBIOTIC_API = "antibiotic_api", _("Antibiotic APIs (抗生素原料药)")
    ANTIBIOTIC = "antibiotic", _("Antibiotic preparations (抗生素制剂)")
    BIOCHEMICAL = "biochemical", _("Biochemical drugs (生化药品)")
    BIOLOGICAL = "biological", _("Biological products (生物制品)")
    IVD = "ivd", _("In-vitro diagnostic reagents (体外诊断试剂)")
    NARCOTIC = "narcotic", _("Narcotic drugs (麻醉药品)")
    PSYCHOTROPIC = "psychotropic", _("Psychotropic drugs (精神药品)")
    TOXIC = "toxic", _("Toxic drugs for medical use (医疗用毒性药品)")
    ANABOLIC = "anabolic", _("Protein assimilation preparations and peptide hormones (蛋白同化制剂、肽类激素)")


class Licence(models.Model):
    institution = models.ForeignKey("customers.Institution", models.PROTECT, related_name="licences",
                                    verbose_name=_("customer"))  # fmt: skip
    kind = models.CharField(_("type"), max_length=20, choices=LicenceKind.choices)
    number = models.CharField(_("licence number"), max_length=40)
    scope = models.JSONField(_("business scope"), default=list, blank=True)
    scope_note = models.CharField(_("business scope, as printed"), max_length=500, blank=True)
    issuer = models.CharField(_("issued by"), max_length=100, blank=True)
    issued_on = models.DateField(_("issued on"), null=True, blank=True)
    valid_until = models.DateField(_("valid until"), null=True, blank=True, help_text=_("Empty: long-term (长期)."))
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+",
                                    verbose_name=_("recorded by"))  # fmt: skip
    recorded_at = models.DateTimeField(_("recorded"), default=timezone.now)
    verified_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+",
                                    verbose_name=_("verified by"))  # fmt: skip
    verified_at = models.DateTimeField(_("verified"), null=True, blank=True)
    # the scanned copy (加盖公章的复印件/扫描件): the file's name in var/licences/, the name it is downloaded under, its
    # SHA-256 (services.keep_scan); empty when none was uploaded
    scan = models.CharField(_("scanned copy"), max_length=100, blank=True, editable=False)
    scan_name = models.CharField(max_length=200, blank=True, editable=False)
    scan_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    # reminders, each claimed once by the worker: ahead of the end, and when it has passed
    notice_sent_on = models.DateField(null=True, blank=True, editable=False)
    expiry_sent_on = models.DateField(null=True, blank=True, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)

    # a licence is recorded once per customer (services.save_licence checks it under the customer's lock); no unique
    # constraint, so that a merge of two records that both hold a copy of it keeps both copies and their history

    class Meta:
        verbose_name = _("licence")
        verbose_name_plural = _("licences")
        indexes = [models.Index(fields=["valid_until", "kind"], name="licence_valid_until")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.number}"
