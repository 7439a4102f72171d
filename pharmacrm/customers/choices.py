"""Choice sets for customers, in one place."""

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class InstitutionType(models.TextChoices):
    HOSPITAL = "hospital", _("Hospital")
    DEPARTMENT = "department", _("Department")
    CLINIC = "clinic", _("Clinic")
    TOWNSHIP = "township", _("Township health centre")
    COMMUNITY = "community", _("Community health centre")
    PHARMACY = "pharmacy", _("Pharmacy")
    DISTRIBUTOR = "distributor", _("Distributor")
    INSURANCE = "insurance", _("Medical-insurance bureau")
    RESEARCH = "research", _("Research institute")
    ASSOCIATION = "association", _("Industry association")
    OTHER = "other", _("Other")


class HospitalGrade(models.TextChoices):
    G3A = "3A", _("Grade III-A")
    G3B = "3B", _("Grade III-B")
    G3C = "3C", _("Grade III-C")
    G3 = "3", _("Grade III")
    G2A = "2A", _("Grade II-A")
    G2B = "2B", _("Grade II-B")
    G2 = "2", _("Grade II")
    G1 = "1", _("Grade I")
    UNGRADED = "0", _("Ungraded")


class Tier(models.TextChoices):
    NEW = "new", pgettext_lazy("customer tier", "New")  # "New" alone is also a notification, a case status …
    REGULAR = "regular", _("Regular")
    VIP = "vip", _("VIP")
    KEY = "key", _("Key account")


class Stage(models.TextChoices):
    POTENTIAL = "potential", _("Potential")
    INTENT = "intent", _("Intent")
    DECISION = "decision", pgettext_lazy("customer stage", "Decision")  # not a triage or approval decision
    ACTIVE = "active", pgettext_lazy("customer stage", "Active")  # 合作中: not a setting switched on
    CHURNED = "churned", _("Churned")


class Source(models.TextChoices):
    MARKET_RESEARCH = "research", _("Market research")
    BUSINESS_CONTACT = "contact", _("Business contact")
    CUSTOMER_INITIATED = "inbound", _("Customer-initiated")
    INDUSTRY_DATA = "industry", _("Industry data")
    IMPORT = "import", _("Import")
    OTHER = "other", _("Other")


class PersonRole(models.TextChoices):
    DOCTOR = "doctor", _("Doctor")
    PHARMACIST = "pharmacist", _("Pharmacist")
    NURSE = "nurse", _("Nurse")
    PURCHASING = "purchasing", _("Purchasing officer")
    DEPT_HEAD = "dept_head", _("Department head")
    ADMINISTRATOR = "admin", _("Hospital administrator")
    PATIENT = "patient", _("Patient")
    OTHER = "other", _("Other")


class Gender(models.TextChoices):
    MALE = "M", _("Male")
    FEMALE = "F", _("Female")


class PreferredLanguage(models.TextChoices):
    """The language a person is written to in (the service desk's acknowledgements and customer mails); the codes
    are the product's languages (settings.LANGUAGES). Blank on the record: as their mail is written."""

    ZH_HANS = "zh-hans", _("Simplified Chinese")
    EN = "en", _("English")
    ZH_HANT = "zh-hant", _("Traditional Chinese")


class ConsentPurpose(models.TextChoices):
    MARKETING = "marketing", _("Marketing communication")
    SERVICE = "service", _("Service follow-up")
    SURVEYS = "surveys", _("Satisfaction surveys")
    PHARMACOVIGILANCE = "pv", _("Pharmacovigilance follow-up")
    DATA_PROCESSING = "processing", _("Personal-data processing")
    CROSS_BORDER = "cross_border", _("Cross-border transfer")


class Channel(models.TextChoices):
    PHONE = "phone", _("Phone")
    SMS = "sms", _("SMS")
    EMAIL = "email", _("E-mail")
    WECHAT = "wechat", _("WeChat")
    VISIT = "visit", _("Visit")
    PAPER = "paper", _("Paper form")
    WEB = "web", _("Web")


class ConsentStatus(models.TextChoices):
    GIVEN = "given", _("Given")
    WITHDRAWN = "withdrawn", _("Withdrawn")
