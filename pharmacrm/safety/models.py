"""Safety and quality cases (药品不良反应 / 质量投诉), their follow-up versions, regulatory clocks,
submissions, the triage flags the net raises, and quality investigations with CAPA.

Patient and reporter identity are personal (often sensitive) data: encrypted at rest, shown to the
pharmacovigilance role only (access.py), every read audited."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core.builtin import BuiltinNameMixin
from pharmacrm.core.fields import EncryptedDateField, EncryptedTextField

from . import partial_dates
from .choices import (
    DECHALLENGE_SHOWN,
    RECHALLENGE_SHOWN,
    AckStatus,
    ActionTaken,
    CapaStatus,
    CaseKind,
    CaseStatus,
    Causality,
    Challenge,
    Channel,
    ClockKind,
    DrugRole,
    Expectedness,
    Jurisdiction,
    Outcome,
    Qualification,
    RecallDecision,
    ReportType,
    RuleCondition,
    SignalKind,
    SignalStatus,
    TaskKind,
)
from .partial_dates import Precision

USER = settings.AUTH_USER_MODEL


class ReportingRule(BuiltinNameMixin, models.Model):
    """A regulator's deadline as data: which cases it applies to and how long the company has, counted
    from the receipt date of the case (or of the follow-up) in calendar time."""

    class Unit(models.TextChoices):
        HOURS = "hours", _("hours")
        DAYS = "days", _("calendar days")

    code = models.CharField(_("code"), max_length=40, unique=True)
    jurisdiction = models.CharField(_("jurisdiction"), max_length=2, choices=Jurisdiction.choices)
    name = models.CharField(_("name"), max_length=120)
    condition = models.CharField(_("applies to"), max_length=20, choices=RuleCondition.choices)
    clock_kind = models.CharField(
        _("report"), max_length=16, choices=ClockKind.choices, default=ClockKind.REPORT
    )
    within = models.PositiveIntegerField(_("within"))
    unit = models.CharField(_("unit"), max_length=5, choices=Unit.choices, default=Unit.DAYS)
    position = models.PositiveSmallIntegerField(
        _("order"), default=0, help_text=_("Of a jurisdiction's report rules, the first that applies sets the clock.")
    )
    active = models.BooleanField(_("active"), default=True)
    legal_basis = models.CharField(_("legal basis"), max_length=200, blank=True)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        verbose_name = _("reporting rule")
        verbose_name_plural = _("reporting rules")
        ordering = ["jurisdiction", "clock_kind", "position", "id"]

    def __str__(self) -> str:
        return self.label


class SafetyCase(models.Model):
    number = models.CharField(_("number"), max_length=20, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=CaseKind.choices)
    status = models.CharField(_("status"), max_length=12, choices=CaseStatus.choices, default=CaseStatus.NEW)
    # C.1.4 date first received by the sender: when ANY employee first heard of it (the source's received_at)
    received_at = models.DateTimeField(_("first received (day 0)"))
    # C.1.5 date of the most recent information
    latest_received_at = models.DateTimeField(_("most recent information"))
    report_type = models.CharField(
        _("type of report"), max_length=1, choices=ReportType.choices, default=ReportType.SPONTANEOUS
    )
    country = models.CharField(_("country where the reaction occurred"), max_length=2, default="CN")
    worldwide_id = models.CharField(_("worldwide unique case id"), max_length=100, blank=True)  # C.1.8.1
    sender_case_id = models.CharField(_("sender's safety report id"), max_length=100, blank=True)  # C.1.1
    source_ticket = models.ForeignKey(
        "servicedesk.Ticket", models.SET_NULL, null=True, blank=True, related_name="safety_cases",
        verbose_name=_("source ticket"),
    )  # fmt: skip
    source_interaction = models.ForeignKey(
        "engagement.Interaction", models.SET_NULL, null=True, blank=True, related_name="safety_cases",
        verbose_name=_("source interaction"),
    )  # fmt: skip
    imported_from = models.CharField(_("imported from"), max_length=200, blank=True)  # partner / file
    owner = models.ForeignKey(
        USER, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("PV officer")
    )
    created_by = models.ForeignKey(USER, models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(_("opened"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)
    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic lock

    # D patient — all encrypted, PV only
    patient_name = EncryptedTextField(_("patient (initials or name)"))
    patient_sex = EncryptedTextField(_("sex"))
    patient_birth_date = EncryptedDateField(_("birth date"), null=True)
    patient_age = EncryptedTextField(_("age at onset"))
    patient_age_unit = EncryptedTextField(_("age unit"))
    patient_weight_kg = EncryptedTextField(_("weight (kg)"))
    patient_height_cm = EncryptedTextField(_("height (cm)"))
    patient_pregnancy = EncryptedTextField(_("pregnancy / breast-feeding"))
    patient_history = EncryptedTextField(_("relevant medical history"))
    patient_record_number = EncryptedTextField(_("hospital record number"))

    # C.2 primary source (reporter) — identity encrypted
    reporter_name = EncryptedTextField(_("reporter name"))
    reporter_contact = EncryptedTextField(_("reporter phone or e-mail"))
    reporter_institution = EncryptedTextField(_("reporter institution"))
    reporter_qualification = models.CharField(
        _("reporter qualification"), max_length=1, choices=Qualification.choices, blank=True
    )
    reporter_country = models.CharField(_("reporter country"), max_length=2, default="CN", blank=True)

    # assessment
    expectedness = models.CharField(
        _("expectedness"), max_length=10, choices=Expectedness.choices, default=Expectedness.UNKNOWN
    )
    causality_reporter = models.CharField(
        _("causality (reporter)"), max_length=12, choices=Causality.choices, blank=True
    )
    causality_company = models.CharField(
        _("causality (company)"), max_length=12, choices=Causality.choices, blank=True
    )
    narrative = EncryptedTextField(_("case narrative"))  # H.1
    reporter_comment = EncryptedTextField(_("reporter's comments"))  # H.2
    sender_comment = models.TextField(_("sender's comments"), blank=True)  # H.4
    # C.4.r.1: the published articles that report the case, one reference per line (500 characters each)
    literature = models.TextField(_("literature references"), blank=True)

    # derived on every save (services.refresh_derived): queried, so stored
    serious = models.BooleanField(_("serious"), default=False)
    fatal = models.BooleanField(_("fatal"), default=False)
    valid = models.BooleanField(_("valid"), default=False)
    missing = models.JSONField(_("missing criteria"), default=list, blank=True)

    class Meta:
        verbose_name = _("safety case")
        verbose_name_plural = _("safety cases")
        constraints = [  # one case per worldwide id: a second report of it is a follow-up, never a duplicate
            models.UniqueConstraint(
                fields=["worldwide_id"], condition=~models.Q(worldwide_id=""), name="case_worldwide_id_once"
            )
        ]
        indexes = [
            models.Index(fields=["status", "-received_at"], name="case_status_received"),
            models.Index(fields=["-received_at", "id"], name="case_received"),
        ]

    def __str__(self) -> str:
        return self.number


class CaseVersion(models.Model):
    """The initial report (0) and each follow-up (1, 2, …): when it was received and what it changed.
    Each version has its own reporting clocks, counted from its receipt date."""

    case = models.ForeignKey(SafetyCase, models.CASCADE, related_name="versions", verbose_name=_("case"))
    sequence = models.PositiveSmallIntegerField(_("follow-up"))
    received_at = models.DateTimeField(_("received"))
    summary = models.TextField(_("what is new"), blank=True)
    changes = models.JSONField(_("changed fields"), default=list, blank=True)  # field names, never values
    created_by = models.ForeignKey(USER, models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("case version")
        verbose_name_plural = _("case versions")
        ordering = ["case", "sequence"]
        constraints = [models.UniqueConstraint(fields=["case", "sequence"], name="case_version_once")]

    def __str__(self) -> str:
        return f"{self.case.number}#{self.sequence}"


class Drug(models.Model):  # G.k
    case = models.ForeignKey(SafetyCase, models.CASCADE, related_name="drugs", verbose_name=_("case"))
    position = models.PositiveSmallIntegerField(default=0)
    role = models.CharField(_("role"), max_length=1, choices=DrugRole.choices, default=DrugRole.SUSPECT)
    product = models.ForeignKey(
        "servicedesk.Product", models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("product")
    )
    brand_name = models.CharField(_("brand name"), max_length=250, blank=True)
    generic_name = models.CharField(_("generic name"), max_length=250, blank=True)
    approval_number = models.CharField(_("approval number (批准文号)"), max_length=40, blank=True)
    manufacturer = models.CharField(_("marketing authorisation holder"), max_length=200, blank=True)
    dosage_form = models.CharField(_("dosage form"), max_length=60, blank=True)
    batch = models.CharField(_("batch / lot"), max_length=35, blank=True)
    dose = models.CharField(_("dose"), max_length=20, blank=True)  # G.k.4.r.1a (a number)
    dose_unit = models.CharField(_("dose unit"), max_length=20, blank=True)  # G.k.4.r.1b (UCUM)
    route = models.CharField(_("route"), max_length=60, blank=True)
    frequency = models.CharField(_("frequency"), max_length=60, blank=True)
    start_date = models.DateField(_("start"), null=True, blank=True)  # G.k.4.r.4 (the first day of its period)
    stop_date = models.DateField(_("stop"), null=True, blank=True)  # G.k.4.r.5
    # how much of each is known (E2B(R3) sends YYYYMMDD, YYYYMM or YYYY): "since March 2026" is no 1 March
    start_precision = models.CharField(_("start precision"), max_length=5, choices=Precision.choices,
                                       default=Precision.DAY)  # fmt: skip
    stop_precision = models.CharField(_("stop precision"), max_length=5, choices=Precision.choices,
                                      default=Precision.DAY)  # fmt: skip
    indication = models.CharField(_("indication"), max_length=250, blank=True)
    indication_meddra = models.CharField(_("indication MedDRA code"), max_length=8, blank=True)
    action_taken = models.CharField(_("action taken"), max_length=1, choices=ActionTaken.choices, blank=True)
    dechallenge = models.CharField(_("dechallenge"), max_length=8, choices=Challenge.choices, blank=True)
    rechallenge = models.CharField(_("rechallenge"), max_length=8, choices=Challenge.choices, blank=True)

    class Meta:
        verbose_name = _("drug")
        verbose_name_plural = _("drugs")
        ordering = ["case", "position", "id"]

    def __str__(self) -> str:
        return self.brand_name or self.generic_name

    @property
    def start_text(self) -> str:
        """2026-03-15, 2026-03 or 2026: the start as far as it is known."""
        return partial_dates.text(self.start_date, self.start_precision)

    @property
    def stop_text(self) -> str:
        return partial_dates.text(self.stop_date, self.stop_precision)

    @property
    def dechallenge_shown(self) -> str:
        """The dechallenge's result on its own ("Reaction abated"), not the choice naming both results."""
        return str(DECHALLENGE_SHOWN.get(self.dechallenge) or self.get_dechallenge_display())

    @property
    def rechallenge_shown(self) -> str:
        return str(RECHALLENGE_SHOWN.get(self.rechallenge) or self.get_rechallenge_display())


class Reaction(models.Model):  # E.i
    case = models.ForeignKey(SafetyCase, models.CASCADE, related_name="reactions", verbose_name=_("case"))
    position = models.PositiveSmallIntegerField(default=0)
    verbatim = models.CharField(_("reaction as reported"), max_length=250)  # E.i.1.1a
    language = models.CharField(_("language"), max_length=3, default="zho", blank=True)  # E.i.1.1b
    meddra_version = models.CharField(_("MedDRA version"), max_length=5, blank=True)  # E.i.2.1a
    meddra_llt = models.CharField(_("MedDRA LLT code"), max_length=8, blank=True)  # E.i.2.1b
    meddra_pt = models.CharField(_("MedDRA PT code"), max_length=8, blank=True)
    onset_date = models.DateField(_("onset"), null=True, blank=True)  # E.i.4 (the first day of its period)
    end_date = models.DateField(_("end"), null=True, blank=True)  # E.i.5
    # how much of each is known (E2B(R3) sends YYYYMMDD, YYYYMM or YYYY): "in March 2026" is no 1 March
    onset_precision = models.CharField(_("onset precision"), max_length=5, choices=Precision.choices,
                                       default=Precision.DAY)  # fmt: skip
    end_precision = models.CharField(_("end precision"), max_length=5, choices=Precision.choices,
                                     default=Precision.DAY)  # fmt: skip
    outcome = models.CharField(_("outcome"), max_length=1, choices=Outcome.choices, blank=True)  # E.i.7
    death = models.BooleanField(_("results in death"), default=False)
    life_threatening = models.BooleanField(_("life-threatening"), default=False)
    hospitalisation = models.BooleanField(_("hospitalisation (initial or prolonged)"), default=False)
    disability = models.BooleanField(_("disability / incapacity"), default=False)
    congenital = models.BooleanField(_("congenital anomaly / birth defect"), default=False)
    other_important = models.BooleanField(_("other medically important condition"), default=False)

    class Meta:
        verbose_name = _("reaction")
        verbose_name_plural = _("reactions")
        ordering = ["case", "position", "id"]

    def __str__(self) -> str:
        return self.verbatim

    @property
    def onset_text(self) -> str:
        """2026-03-15, 2026-03 or 2026: the onset as far as it is known."""
        return partial_dates.text(self.onset_date, self.onset_precision)

    @property
    def end_text(self) -> str:
        return partial_dates.text(self.end_date, self.end_precision)

    @property
    def serious(self) -> bool:
        return any(
            (self.death, self.life_threatening, self.hospitalisation, self.disability, self.congenital,
             self.other_important)
        )  # fmt: skip


class SafetyClock(models.Model):
    """A deadline of a case version (a report to a regulator, a death investigation) or of a flagged
    ticket or interaction (the hand-off to PV). Same mechanism as the service-desk clocks: `next_check_at`
    is the next moment the worker must look (due soon, then due), empty once met or breached, which keeps
    such rows out of the partial index."""

    kind = models.CharField(_("kind"), max_length=16, choices=ClockKind.choices)
    case = models.ForeignKey(SafetyCase, models.CASCADE, null=True, blank=True, related_name="clocks")
    case_version = models.ForeignKey(CaseVersion, models.CASCADE, null=True, blank=True, related_name="clocks")
    flag = models.ForeignKey("Flag", models.CASCADE, null=True, blank=True, related_name="clocks")
    rule = models.ForeignKey(ReportingRule, models.SET_NULL, null=True, blank=True, related_name="+")
    jurisdiction = models.CharField(_("jurisdiction"), max_length=2, choices=Jurisdiction.choices, blank=True)
    # the working calendar of a hand-off counted in working days (re-planned when that calendar changes);
    # empty for a deadline in calendar time (the regulators' clocks, the four-hour serious hand-off)
    calendar = models.ForeignKey(
        "servicedesk.BusinessCalendar", models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("calendar"),
    )  # fmt: skip
    started_at = models.DateTimeField(_("started"))
    warn_at = models.DateTimeField(_("due soon from"), null=True, blank=True)
    due_at = models.DateTimeField(_("due"))
    warned_at = models.DateTimeField(null=True, blank=True)
    breached_at = models.DateTimeField(_("overdue since"), null=True, blank=True)
    met_at = models.DateTimeField(_("met"), null=True, blank=True)
    # the case was closed or nullified without meeting it: not watched, not listed; reopening clears it
    stopped_at = models.DateTimeField(_("stopped"), null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("regulatory clock")
        verbose_name_plural = _("regulatory clocks")
        indexes = [
            models.Index(
                fields=["next_check_at"], condition=models.Q(next_check_at__isnull=False), name="safety_clock_check"
            ),
            # the PV officer's due list: open clocks, earliest deadline first
            models.Index(
                fields=["due_at", "id"], condition=models.Q(met_at__isnull=True, stopped_at__isnull=True),
                name="safety_clock_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.due_at:%Y-%m-%d %H:%M}"


class Submission(models.Model):
    """A report sent to a regulator or partner: when, how, the acknowledgement, and lateness."""

    case = models.ForeignKey(SafetyCase, models.CASCADE, related_name="submissions", verbose_name=_("case"))
    case_version = models.ForeignKey(CaseVersion, models.SET_NULL, null=True, blank=True, related_name="+")
    clock = models.ForeignKey(SafetyClock, models.SET_NULL, null=True, blank=True, related_name="submissions")
    jurisdiction = models.CharField(_("jurisdiction"), max_length=2, choices=Jurisdiction.choices)
    kind = models.CharField(_("report"), max_length=16, choices=ClockKind.choices, default=ClockKind.REPORT)
    channel = models.CharField(_("gateway or channel"), max_length=10, choices=Channel.choices)
    submitted_at = models.DateTimeField(_("submitted"))
    submitted_by = models.ForeignKey(USER, models.SET_NULL, null=True, related_name="+")
    signature = models.ForeignKey("core.Signature", models.PROTECT, null=True, blank=True, related_name="+")
    message_id = models.CharField(_("batch message id"), max_length=100, blank=True, db_index=True)
    reference = models.CharField(_("regulator's reference"), max_length=100, blank=True)
    late = models.BooleanField(_("late"), default=False)
    delay_days = models.PositiveIntegerField(_("days late"), default=0)
    late_reason = models.TextField(_("reason for the delay"), blank=True)
    ack_status = models.CharField(
        _("acknowledgement"), max_length=10, choices=AckStatus.choices, default=AckStatus.PENDING
    )
    ack_at = models.DateTimeField(_("acknowledged"), null=True, blank=True)
    ack_message_id = models.CharField(max_length=100, blank=True)
    ack_errors = models.JSONField(_("errors reported"), default=list, blank=True)

    class Meta:
        verbose_name = _("submission")
        verbose_name_plural = _("submissions")
        ordering = ["-submitted_at", "-id"]

    def __str__(self) -> str:
        return f"{self.case.number} {self.jurisdiction} {self.submitted_at:%Y-%m-%d}"


class Flag(models.Model):
    """What the net (or an agent's safety-relevant flag) raised on a ticket or an interaction, waiting for
    a PV officer to confirm it (→ a case) or dismiss it (with a reason)."""

    ticket = models.ForeignKey(
        "servicedesk.Ticket", models.CASCADE, null=True, blank=True, related_name="safety_flags"
    )
    interaction = models.ForeignKey(
        "engagement.Interaction", models.CASCADE, null=True, blank=True, related_name="safety_flags"
    )
    kind = models.CharField(_("signal"), max_length=20, choices=SignalKind.choices)
    terms = models.JSONField(_("terms found"), default=list, blank=True)
    excerpt = models.TextField(_("excerpt"), blank=True)
    by_agent = models.BooleanField(_("flagged by staff"), default=False)  # not (only) by the screen
    status = models.CharField(_("status"), max_length=10, choices=SignalStatus.choices, default=SignalStatus.PENDING)
    received_at = models.DateTimeField(_("received"))  # the source's received_at
    created_at = models.DateTimeField(_("flagged"), default=timezone.now)
    decided_by = models.ForeignKey(USER, models.SET_NULL, null=True, blank=True, related_name="+")
    decided_at = models.DateTimeField(_("triaged"), null=True, blank=True)
    reason = models.TextField(_("reason for dismissal"), blank=True)
    case = models.ForeignKey(SafetyCase, models.SET_NULL, null=True, blank=True, related_name="flags")

    class Meta:
        verbose_name = _("safety flag")
        verbose_name_plural = _("safety flags")
        indexes = [
            models.Index(fields=["status", "received_at"], name="safety_flag_status"),
            models.Index(fields=["status", "decided_at"], name="safety_flag_decided"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["ticket"], condition=models.Q(status="pending", ticket__isnull=False), name="flag_ticket_once"
            ),
            models.UniqueConstraint(
                fields=["interaction"], condition=models.Q(status="pending", interaction__isnull=False),
                name="flag_interaction_once",
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        # the audit trail names a flag by this, in the reader's language (its status is in the entry)
        return f"{self.get_kind_display()} #{self.pk}"


class CaseTask(models.Model):
    """Work a case needs: collect the missing minimum criteria, the QA investigation, the death
    investigation report."""

    case = models.ForeignKey(SafetyCase, models.CASCADE, related_name="tasks", verbose_name=_("case"))
    kind = models.CharField(_("kind"), max_length=16, choices=TaskKind.choices)
    title = models.CharField(pgettext_lazy("record title", "title"), max_length=200)
    details = models.JSONField(default=dict, blank=True)
    assignee = models.ForeignKey(USER, models.SET_NULL, null=True, blank=True, related_name="+")
    due_date = models.DateField(_("due"), null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    done_at = models.DateTimeField(_("done"), null=True, blank=True)

    class Meta:
        verbose_name = _("case task")
        verbose_name_plural = _("case tasks")
        ordering = ["done_at", "due_date", "id"]
        indexes = [models.Index(fields=["assignee", "done_at", "due_date"], name="case_task_open")]

    def __str__(self) -> str:
        return self.title


class QualityComplaint(models.Model):
    """The quality side of a case (质量投诉): the defect, QA's investigation and the recall decision."""

    case = models.OneToOneField(SafetyCase, models.CASCADE, related_name="quality", verbose_name=_("case"))
    product = models.ForeignKey(
        "servicedesk.Product", models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("product")
    )
    batch = models.CharField(_("batch / lot"), max_length=35, blank=True, db_index=True)
    expiry_date = models.DateField(_("expiry"), null=True, blank=True)
    defect = models.TextField(_("defect description"), blank=True)
    qa_owner = models.ForeignKey(USER, models.SET_NULL, null=True, blank=True, related_name="+",
                                 verbose_name=_("QA owner"))  # fmt: skip
    handed_to_qa_at = models.DateTimeField(_("handed to QA"), null=True, blank=True)
    investigation_outcome = models.TextField(_("investigation outcome"), blank=True)
    root_cause = models.TextField(_("root cause"), blank=True)
    recall_decision = models.CharField(
        _("recall decision"), max_length=8, choices=RecallDecision.choices, blank=True, default=""
    )
    recall_reason = models.TextField(_("reason for the recall decision"), blank=True)
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)

    class Meta:
        verbose_name = _("quality complaint")
        verbose_name_plural = _("quality complaints")

    def __str__(self) -> str:
        return f"{self.case.number} {self.batch}"


NAME_LENGTH = 60  # a CAPA action names it (Capa.__str__): at most this many characters


class Capa(models.Model):
    complaint = models.ForeignKey(QualityComplaint, models.CASCADE, related_name="capas")
    action = models.TextField(_("action"))
    preventive = models.BooleanField(_("preventive (not corrective)"), default=False)
    owner = models.ForeignKey(USER, models.SET_NULL, null=True, related_name="+", verbose_name=_("owner"))
    due_date = models.DateField(_("due"))
    status = models.CharField(_("status"), max_length=14, choices=CapaStatus.choices, default=CapaStatus.OPEN)
    done_at = models.DateTimeField(_("done"), null=True, blank=True)
    effectiveness_check = models.TextField(_("effectiveness check"), blank=True)
    checked_at = models.DateTimeField(_("checked"), null=True, blank=True)
    # the worker told the owner (and their manager) once that the action is overdue
    overdue_notified_at = models.DateTimeField(_("overdue notice sent"), null=True, blank=True)
    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic lock

    class Meta:
        verbose_name = _("CAPA")
        verbose_name_plural = _("CAPAs")
        ordering = ["due_date", "id"]
        indexes = [
            models.Index(fields=["due_date"], name="capa_open_due",
                         condition=models.Q(status="open", overdue_notified_at__isnull=True)),
        ]  # fmt: skip

    def __str__(self) -> str:
        # the audit trail names it by this: cut with "…", so that a number cut there is masked by the cut rule for
        # the auditor (personal.free_text), which 1391234 at the end of a bare cut escaped
        return self.action if len(self.action) <= NAME_LENGTH else self.action[: NAME_LENGTH - 1] + "…"


def case_file_path(instance, filename: str) -> str:
    """Never the uploader's file name on disk (a medical record named after its patient, 王小明病历.pdf, put the name
    into directory listings and backups): a random name under the year and month, as ticket attachments have. The
    name is kept in the database, for the page and the download."""
    import secrets

    return f"safety/{timezone.now():%Y/%m}/{secrets.token_hex(16)}"


class CaseFile(models.Model):
    """A photo or document on a case (a defect photo, a hospital record, an exported ICSR), or the copy of an
    article the case was read of (a literature reference's included document)."""

    case = models.ForeignKey(SafetyCase, models.CASCADE, related_name="files")
    file = models.FileField(upload_to=case_file_path)
    name = models.CharField(_("file name"), max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    uploaded_by = models.ForeignKey(USER, models.SET_NULL, null=True, related_name="+")
    uploaded_at = models.DateTimeField(default=timezone.now)
    # the copy of a published article (C.4.r.2): the literature reference of the case (C.4.r.1, one line of
    # SafetyCase.literature) it is the copy of; empty for a document the sender holds (C.1.6.1.r)
    literature = models.CharField(_("copy of the article"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("case file")
        verbose_name_plural = _("case files")
        ordering = ["uploaded_at", "id"]

    def __str__(self) -> str:
        return self.name


class IcsrBatch(models.Model):
    """An E2B(R3) batch file as it was released (N.1.2, its number; the XML, encrypted: it holds the patients'
    details): every later export of the same cases, unchanged, is this file again — a retransmission keeps its
    batch number and each ICSR its date of creation — and anything else gets a new number (ICH E2B(R3) IG)."""

    batch_id = models.CharField(_("batch number"), max_length=100, unique=True)  # N.1.2
    created_at = models.DateTimeField(_("created"))  # N.1.5, and C.1.2 / N.2.r.4 of each of its ICSRs
    purpose = models.CharField(_("purpose"), max_length=12)
    # C.1.11.1 of its ICSRs: "" a report, "nullification" or "amendment", with the reason (C.1.11.2)
    report = models.CharField(_("report"), max_length=13, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    content_digest = models.CharField(max_length=64, editable=False)  # the file without its ids and times
    xml = EncryptedTextField(_("file"))
    created_by = models.ForeignKey(USER, models.SET_NULL, null=True, blank=True, related_name="+")
    actor_name = models.CharField(max_length=150, blank=True)  # the command line's `cli:…`
    cases = models.ManyToManyField(SafetyCase, through="IcsrMessage", related_name="+")

    class Meta:
        verbose_name = _("ICSR batch")
        verbose_name_plural = _("ICSR batches")

    def __str__(self) -> str:
        return self.batch_id


class IcsrMessage(models.Model):
    """One case's ICSR in a batch: its message identifier (N.2.r.1, which ICH makes C.1.1) and the version of the
    case it reported. Its date of creation (C.1.2) is the batch's: later than every earlier ICSR of the case."""

    batch = models.ForeignKey(IcsrBatch, models.CASCADE, related_name="messages")
    case = models.ForeignKey(SafetyCase, models.CASCADE, related_name="icsr_messages")
    case_version = models.ForeignKey(CaseVersion, models.SET_NULL, null=True, blank=True, related_name="+")
    message_id = models.CharField(_("message identifier"), max_length=100)  # N.2.r.1

    class Meta:
        verbose_name = _("ICSR message")
        verbose_name_plural = _("ICSR messages")
        constraints = [models.UniqueConstraint(fields=["batch", "case"], name="icsr_message_once")]

    def __str__(self) -> str:
        return f"{self.batch_id} {self.message_id}"
