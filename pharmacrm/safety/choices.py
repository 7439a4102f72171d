"""Code lists of safety and quality cases. Where E2B(R3) defines a code, the value IS that code, so the
export and the import need no translation table."""

from decimal import Decimal, InvalidOperation

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import npgettext, pgettext_lazy


class CaseKind(models.TextChoices):
    ADVERSE_REACTION = "adverse_reaction", _("Adverse reaction / event")
    MEDICATION_ERROR = "medication_error", _("Medication error")
    QUALITY = "quality", _("Product quality complaint")
    LACK_OF_EFFICACY = "lack_of_efficacy", _("Lack of efficacy")
    OVERDOSE = "overdose", _("Overdose")
    MISUSE = "misuse", _("Misuse or abuse")
    OFF_LABEL = "off_label", _("Off-label use")
    PREGNANCY = "pregnancy", _("Pregnancy or breast-feeding exposure")
    PAEDIATRIC = "paediatric", _("Paediatric use")


SPECIAL_SITUATIONS = frozenset(
    {CaseKind.OVERDOSE, CaseKind.MISUSE, CaseKind.OFF_LABEL, CaseKind.PREGNANCY, CaseKind.PAEDIATRIC}
)


class CaseStatus(models.TextChoices):
    NEW = "new", pgettext_lazy("case status", "New")  # not the customer tier "New" (新客户)
    ASSESSING = "assessing", _("Being assessed")
    SUBMITTED = "submitted", _("Submitted")
    CLOSED = "closed", _("Closed")
    NULLIFIED = "nullified", _("Nullified")


OPEN_CASE_STATUSES = frozenset({CaseStatus.NEW, CaseStatus.ASSESSING})


class Criterion(models.TextChoices):
    """The four minimum criteria of a valid case."""

    PATIENT = "patient", _("Identifiable patient")
    REPORTER = "reporter", _("Identifiable reporter")
    PRODUCT = "product", _("Suspect product")
    REACTION = "reaction", _("Adverse reaction")


class ReportType(models.TextChoices):  # C.1.3
    SPONTANEOUS = "1", _("Spontaneous report")
    STUDY = "2", _("Report from study")
    OTHER = "3", _("Other")
    UNKNOWN = "4", _("Not available to sender (unknown)")


class Qualification(models.TextChoices):  # C.2.r.4
    PHYSICIAN = "1", _("Physician")
    PHARMACIST = "2", _("Pharmacist")
    OTHER_HCP = "3", _("Other health professional")
    LAWYER = "4", _("Lawyer")
    CONSUMER = "5", _("Consumer or other non-health professional")


class Sex(models.TextChoices):  # D.5
    MALE = "1", _("Male")
    FEMALE = "2", _("Female")


class AgeUnit(models.TextChoices):  # D.2.2b (UCUM)
    YEARS = "a", _("years")
    MONTHS = "mo", _("months")
    WEEKS = "wk", _("weeks")
    DAYS = "d", _("days")
    HOURS = "h", _("hours")
    DECADES = "{decade}", _("decades")


class Outcome(models.TextChoices):  # E.i.7
    RECOVERED = "1", _("Recovered / resolved")
    RECOVERING = "2", _("Recovering / resolving")
    NOT_RECOVERED = "3", _("Not recovered / not resolved / ongoing")
    SEQUELAE = "4", _("Recovered / resolved with sequelae")
    FATAL = "5", _("Fatal")
    UNKNOWN = "0", _("Unknown")


class DrugRole(models.TextChoices):  # G.k.1
    SUSPECT = "1", _("Suspect")
    CONCOMITANT = "2", _("Concomitant")
    INTERACTING = "3", _("Interacting")
    NOT_ADMINISTERED = "4", _("Drug not administered")


class DoseUnit(models.TextChoices):  # G.k.4.r.1b (UCUM): the record and the E2B file keep the code
    """Dose units as pages and reports name them. The field is free text (any UCUM code an E2B file brings):
    a code not listed here is shown as it is stored."""

    TABLET = "{tbl}", pgettext_lazy("dose unit", "tablet(s)")
    CAPSULE = "{cap}", pgettext_lazy("dose unit", "capsule(s)")
    DROP = "{drp}", pgettext_lazy("dose unit", "drop(s)")
    PUFF = "{puff}", pgettext_lazy("dose unit", "puff(s)")
    DOSE_FORM = "{DF}", pgettext_lazy("dose unit", "dosage form unit(s)")
    MG = "mg", "mg"
    G = "g", "g"
    UG = "ug", "µg"
    ML = "mL", "mL"
    IU = "[iU]", "IU"


def _counted(code: str, n: int) -> str | None:
    """A counted dose unit agreeing with the dose (n: 1 or more), None for a unit that is no count."""
    if code == DoseUnit.TABLET:
        return npgettext("dose unit", "tablet", "tablets", n)
    if code == DoseUnit.CAPSULE:
        return npgettext("dose unit", "capsule", "capsules", n)
    if code == DoseUnit.DROP:
        return npgettext("dose unit", "drop", "drops", n)
    if code == DoseUnit.PUFF:
        return npgettext("dose unit", "puff", "puffs", n)
    if code == DoseUnit.DOSE_FORM:
        return npgettext("dose unit", "dosage form unit", "dosage form units", n)
    return None


def dose_unit_label(code, amount=None) -> str:
    """The label of a stored dose unit in the reader's language; an unlisted code as stored. With the dose's
    `amount`, a counted unit agrees with it: "1 tablet", "2 tablets" (the choice's label reads "tablet(s)")."""
    code = str(code or "").strip()
    if code not in DoseUnit.values:
        return code
    if amount not in (None, ""):
        try:
            one = Decimal(str(amount).strip()) == 1
        except InvalidOperation:
            one = False
        counted = _counted(code, 1 if one else 2)
        if counted is not None:
            return counted
    return str(DoseUnit(code).label)


class ActionTaken(models.TextChoices):  # G.k.8
    WITHDRAWN = "1", _("Drug withdrawn")
    REDUCED = "2", _("Dose reduced")
    INCREASED = "3", _("Dose increased")
    UNCHANGED = "4", _("Dose not changed")
    UNKNOWN = "0", _("Unknown")
    NOT_APPLICABLE = "9", _("Not applicable")


class Challenge(models.TextChoices):
    """De-/rechallenge result (China's report form; G.k.9.i.4 carries the rechallenge)."""

    YES = "yes", _("Reaction abated / recurred")
    NO = "no", _("Reaction did not abate / did not recur")
    UNKNOWN = "unknown", _("Unknown")
    NOT_DONE = "not_done", _("Not done")


# A result read on its own (the case page, the ICSR's free text): the choices' labels name both halves ("Reaction
# abated / recurred"), which beside the other result read as two findings — a dechallenge "yes" next to an empty
# rechallenge ("反应减轻 / 再次出现 / —") as if the reaction had come back on a rechallenge nobody made
DECHALLENGE_SHOWN = {
    Challenge.YES: pgettext_lazy("dechallenge", "Reaction abated"),
    Challenge.NO: pgettext_lazy("dechallenge", "Reaction did not abate"),
}
RECHALLENGE_SHOWN = {
    Challenge.YES: pgettext_lazy("rechallenge", "Reaction recurred"),
    Challenge.NO: pgettext_lazy("rechallenge", "Reaction did not recur"),
}


class Expectedness(models.TextChoices):
    EXPECTED = "expected", _("Expected (listed in the label)")
    UNEXPECTED = "unexpected", _("Unexpected / new (not in the label)")
    UNKNOWN = "unknown", _("Not yet assessed")


class Causality(models.TextChoices):
    """China's six-level causality scale (关联性评价)."""

    CERTAIN = "certain", _("Certain (肯定)")
    PROBABLE = "probable", _("Probable (很可能)")
    POSSIBLE = "possible", _("Possible (可能)")
    UNLIKELY = "unlikely", _("Unlikely (可能无关)")
    CONDITIONAL = "conditional", _("Conditional, to be assessed (待评价)")
    UNASSESSABLE = "unassessable", _("Unassessable (无法评价)")


SERIOUSNESS = ("death", "life_threatening", "hospitalisation", "disability", "congenital", "other_important")


class Jurisdiction(models.TextChoices):
    CN = "CN", _("China (NMPA)")
    US = "US", _("United States (FDA)")
    EU = "EU", _("European Union (EMA)")


class RuleCondition(models.TextChoices):
    DEATH = "death", _("Fatal case")
    # a suspected unexpected serious adverse reaction of a clinical study (C.1.3 = 2) that is fatal or life-threatening
    SUSAR_FATAL_LT = "susar_fatal_lt", _("Study: unexpected, fatal or life-threatening (SUSAR)")
    NEW_OR_SERIOUS = "new_or_serious", _("New (unexpected) or serious")
    SERIOUS_UNEXPECTED = "serious_unexpected", _("Serious and unexpected")
    SERIOUS = "serious", _("Serious")
    NON_SERIOUS = "non_serious", _("Non-serious")
    OTHER = "other", _("Any other case")
    # where the case occurred (E.i.9), against the rule's jurisdiction: China's GVP (2021, art. 135) has the NMPA told
    # of every case from China (serious 15 days, the others — a new non-serious one too — 30) and of the serious ones
    # from abroad (15 days); a foreign non-serious case goes into the periodic report (PSUR / PBRER), never as an ICSR
    # of its own
    SERIOUS_DOMESTIC = "serious_domestic", _("Occurred in the jurisdiction: serious (new or expected)")
    # the shipped CN-NEW-SERIOUS's condition until safety 0017 (药品不良反应报告和监测管理办法 art. 20 read as "new or
    # serious"): kept for a rule an administrator keeps on it
    NEW_OR_SERIOUS_DOMESTIC = "new_serious_domestic", _("Occurred in the jurisdiction: new (unexpected) or serious")
    OTHER_DOMESTIC = "other_domestic", _("Occurred in the jurisdiction: any other case")
    SERIOUS_FOREIGN = "serious_foreign", _("Occurred abroad: serious")
    # 药品不良反应报告和监测管理办法 ch. 3 §2 (个例, arts. 20-21): the death reported at once and investigated in 15
    # days is a death in China; a death abroad is a serious case from abroad (§3, GVP: 15 days), never investigated
    DEATH_DOMESTIC = "death_domestic", _("Occurred in the jurisdiction: fatal case")


# the conditions of the "report a death at once" rules: a follow-up of a death already told of is not due at once again
DEATH_CONDITIONS = (RuleCondition.DEATH, RuleCondition.DEATH_DOMESTIC)


class ClockKind(models.TextChoices):
    REPORT = "report", _("Report to the regulator")
    INVESTIGATION = "investigation", _("Investigation report")
    HANDOFF = "handoff", _("Hand-off to pharmacovigilance")


class Channel(models.TextChoices):
    NMPA = "nmpa", _("NMPA direct reporting system (国家药品不良反应监测系统)")
    FDA_ESG = "fda_esg", _("FDA Electronic Submissions Gateway")
    EMA_EV = "ema_ev", _("EudraVigilance gateway")
    EMAIL = "email", _("E-mail")
    PARTNER = "partner", _("Licensing partner")
    OTHER = "other", _("Other")


class AckStatus(models.TextChoices):
    PENDING = "pending", _("Awaiting acknowledgement")
    ACCEPTED = "accepted", _("Accepted")
    REJECTED = "rejected", _("Rejected")


class SignalKind(models.TextChoices):
    ADVERSE_REACTION = "adverse_reaction", _("Adverse reaction")
    QUALITY = "quality", _("Quality defect")
    LACK_OF_EFFICACY = "lack_of_efficacy", _("Lack of efficacy")


class SignalStatus(models.TextChoices):
    PENDING = "pending", _("Awaiting triage")
    CONFIRMED = "confirmed", _("Confirmed: case opened")
    DISMISSED = "dismissed", _("Dismissed")


class RecallDecision(models.TextChoices):
    PENDING = "", _("Not decided")
    NO_RECALL = "none", _("No recall needed")
    CLASS_1 = "class_1", _("Recall, class I (一级召回)")
    CLASS_2 = "class_2", _("Recall, class II (二级召回)")
    CLASS_3 = "class_3", _("Recall, class III (三级召回)")


class TaskKind(models.TextChoices):
    FOLLOW_UP = "follow_up", _("Collect missing information")
    QA_HANDOFF = "qa_handoff", _("Quality investigation")
    INVESTIGATION = "investigation", _("Death investigation report")


class CapaStatus(models.TextChoices):
    OPEN = "open", _("Open")
    DONE = "done", _("Done, effectiveness to check")
    EFFECTIVE = "effective", _("Effective")
    NOT_EFFECTIVE = "not_effective", _("Not effective")
