"""REST API of the safety area under /api/v1/safety/: cases (with follow-ups, status, E2B(R3) export, submissions
and the 报告表 PDF), acknowledgements and incoming ICSRs, the screen for integrations, triage flags,
reconciliation and the reporting rules.

Reads go through access.cases_for; patient and reporter identity, narrative and medical details are in the
answer for the pharmacovigilance role only, and every answer that carries them is audited (READ_PERSONAL).
Every write goes through services.py, which checks the capability, validates, writes and audits."""

from __future__ import annotations

import datetime as dt

import django_filters
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch, Q
from django.http import Http404, HttpResponse
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from pharmacrm.core import access, audit, personal, viewsets
from pharmacrm.core.api_schema import OneObjectSchema
from pharmacrm.core.api_utils import (
    MAX_INT32,
    DateField,
    DateTimeFilter,
    FileNegotiation,
    HasCapability,
    IntegerFilter,
    ModelSerializer,
    QuerySerializer,
    SafeDateTimeField,
    Serializer,
    StrictBooleanFilter,
    clean_text,
    expected_version,
    shipped_label_field,
    versioned,
)
from pharmacrm.core.models import AuditEntry, User
from pharmacrm.core.roles import Cap
from pharmacrm.core.viewsets import APIView
from pharmacrm.servicedesk.models import Product

from . import partial_dates, services
from .choices import (
    AckStatus,
    ActionTaken,
    AgeUnit,
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
    Sex,
    SignalKind,
    SignalStatus,
)
from .models import (
    CaseVersion,
    Drug,
    Flag,
    IcsrMessage,
    Reaction,
    ReportingRule,
    SafetyCase,
    SafetyClock,
    Submission,
)

MAX_ID = 2**63 - 1
SCREEN_MAX_CHARS = 100_000
MAX_PERIOD_DAYS = 731  # a reconciliation period
EARLIEST = dt.datetime(
    1950, 1, 1, tzinfo=dt.UTC
)  # older dates are typing errors (and beyond PostgreSQL's sense)
PURPOSES = (("regulatory", "regulatory"), ("partner", "partner"))
CASE_PK = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The case's id.")
PV_ONLY = "Pharmacovigilance only: absent from the answer for every other role."


def register(router) -> None:
    """Called by pharmacrm/api_urls.py with the v1 router: everything under /api/v1/safety/…"""
    router.register("safety/cases", CaseViewSet, basename="safety-case")
    router.register("safety/flags", FlagViewSet, basename="safety-flag")
    router.register("safety/reporting-rules", ReportingRuleViewSet, basename="safety-reporting-rule")
    router.register("safety/screen", ScreenViewSet, basename="safety-screen")
    router.register("safety/acks", AckViewSet, basename="safety-ack")
    router.register("safety/icsrs", IcsrViewSet, basename="safety-icsr")
    router.register("safety/reconciliation", ReconciliationViewSet, basename="safety-reconciliation")


# --- choice fields with their own schema component (field names like `status` and `kind` name other choice sets
# elsewhere in the API) ----------------------------------------------------------------------------------------


def enum_field(choices, component: str, *, blank: bool = False):
    """A ChoiceField class for `choices`, documented as its own enum component `component`."""
    values = list(choices.values)
    if blank and "" not in values:
        values.append("")

    @extend_schema_field({"type": "string", "enum": values}, component_name=component)
    class Field(serializers.ChoiceField):
        def __init__(self, **kwargs):
            if blank:
                kwargs.setdefault("allow_blank", True)
            super().__init__(choices=choices.choices, **kwargs)

    Field.__name__ = f"{component}Field"
    return Field


CaseKindField = enum_field(CaseKind, "SafetyCaseKind")
CaseStatusField = enum_field(CaseStatus, "SafetyCaseStatus")
ReportTypeField = enum_field(ReportType, "SafetyReportType")
QualificationField = enum_field(Qualification, "SafetyReporterQualification", blank=True)
SexField = enum_field(Sex, "SafetyPatientSex", blank=True)
AgeUnitField = enum_field(AgeUnit, "SafetyAgeUnit", blank=True)
ExpectednessField = enum_field(Expectedness, "SafetyExpectedness")
CausalityField = enum_field(Causality, "SafetyCausality", blank=True)
DrugRoleField = enum_field(DrugRole, "SafetyDrugRole")
ActionTakenField = enum_field(ActionTaken, "SafetyActionTaken", blank=True)
ChallengeField = enum_field(Challenge, "SafetyChallenge", blank=True)
OutcomeField = enum_field(Outcome, "SafetyReactionOutcome", blank=True)
RecallField = enum_field(RecallDecision, "SafetyRecallDecision", blank=True)
JurisdictionField = enum_field(Jurisdiction, "SafetyJurisdiction")
ChannelField = enum_field(Channel, "SafetySubmissionChannel")
ClockKindField = enum_field(ClockKind, "SafetyClockKind")
AckStatusField = enum_field(AckStatus, "SafetyAckStatus")
SignalKindField = enum_field(SignalKind, "SafetySignalKind")
SignalStatusField = enum_field(SignalStatus, "SafetyFlagStatus")
RuleConditionField = enum_field(RuleCondition, "SafetyRuleCondition")
RuleUnitField = enum_field(ReportingRule.Unit, "SafetyRuleUnit")


def _text(max_length: int | None = None, **kwargs):
    kwargs.setdefault("required", False)
    kwargs.setdefault("allow_blank", True)
    return serializers.CharField(max_length=max_length, **kwargs)


class CleanTextMixin:
    """Strips NUL characters from every string the client sends (PostgreSQL refuses them)."""

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        return {k: clean_text(v) if isinstance(v, str) else v for k, v in values.items()}


class SafeDateField(DateField):
    def to_internal_value(self, value):
        result = super().to_internal_value(value)
        if result < EARLIEST.date():
            raise serializers.ValidationError(_("This date is too long ago: check it."))
        if result.year > 2999:
            raise serializers.ValidationError(_("Enter a date between 2000 and 2999."))
        return result


class PartialDateField(serializers.CharField):
    """A reaction's onset or end, a drug's start or stop, as far as it is known (E2B(R3) E.i.4 / E.i.5, G.k.4.r.4 /
    G.k.4.r.5): a day, a month or a year. Given back as typed in that form (2026-03-15, 2026-03, 2026); the precision
    is read off it."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "YYYY-MM-DD, or YYYY-MM / YYYY when only the month or the year is known; also "
                          "as typed: YYYY/M/D, YYYY/M, YYYY.M.D, YYYY年M月D日, YYYY年M月, YYYY年, full-width digits.")
        super().__init__(allow_blank=True, max_length=20, **kwargs)

    def to_internal_value(self, value):
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = value.isoformat()
        text = super().to_internal_value(value)
        try:
            parsed = partial_dates.parse(text)
        except ValueError:
            raise serializers.ValidationError(str(partial_dates.INVALID)) from None
        if parsed is not None and parsed[0] < EARLIEST.date():
            raise serializers.ValidationError(_("This date is too long ago: check it."))
        if parsed is not None and parsed[0].year > 2999:
            raise serializers.ValidationError(_("Enter a date between 2000 and 2999."))
        return partial_dates.text(*parsed) if parsed is not None else None

    def to_representation(self, value):
        return value.isoformat() if isinstance(value, dt.date) else value


# --- cases ---------------------------------------------------------------------------------------------


class DrugSerializer(CleanTextMixin, Serializer):
    """G.k: a suspect, concomitant or interacting drug."""

    role = DrugRoleField(required=False, default=DrugRole.SUSPECT)
    product = serializers.PrimaryKeyRelatedField(
        queryset=Product.objects.all(), required=False, allow_null=True,
        help_text="A product of the catalogue (/api/v1/products/); fills the names when they are empty.",
    )  # fmt: skip
    brand_name = _text(250)
    generic_name = _text(250)
    approval_number = _text(40, help_text="批准文号")
    manufacturer = _text(200)
    dosage_form = _text(60)
    batch = _text(35)
    dose = _text(20, help_text="A number (G.k.4.r.1a).")
    dose_unit = _text(20, help_text="UCUM, e.g. mg (G.k.4.r.1b).")
    route = _text(60)
    frequency = _text(60)
    start_date = PartialDateField(required=False, allow_null=True)
    stop_date = PartialDateField(required=False, allow_null=True)
    indication = _text(250)
    indication_meddra = _text(8)
    action_taken = ActionTakenField(required=False)
    dechallenge = ChallengeField(required=False)
    rechallenge = ChallengeField(required=False)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if isinstance(instance, Drug):  # at the precision known: 2026-03, not 2026-03-01
            data["start_date"] = instance.start_text or None
            data["stop_date"] = instance.stop_text or None
        return data


class ReactionSerializer(CleanTextMixin, Serializer):
    """E.i: a reaction in the reporter's words, with its optional MedDRA coding, outcome and seriousness."""

    verbatim = serializers.CharField(max_length=250, help_text="The reaction as reported (E.i.1.1a).")
    language = _text(3)
    meddra_version = _text(5)
    meddra_llt = _text(8)
    meddra_pt = _text(8)
    onset_date = PartialDateField(required=False, allow_null=True)
    end_date = PartialDateField(required=False, allow_null=True)
    outcome = OutcomeField(required=False)
    death = serializers.BooleanField(required=False)
    life_threatening = serializers.BooleanField(required=False)
    hospitalisation = serializers.BooleanField(required=False)
    disability = serializers.BooleanField(required=False)
    congenital = serializers.BooleanField(required=False)
    other_important = serializers.BooleanField(required=False)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if isinstance(instance, Reaction):  # at the precision known: 2026-03, not 2026-03-01
            data["onset_date"] = instance.onset_text or None
            data["end_date"] = instance.end_text or None
        return data


class QualitySerializer(CleanTextMixin, Serializer):
    """The quality side of a complaint (质量投诉)."""

    product = serializers.PrimaryKeyRelatedField(
        queryset=Product.objects.all(), required=False, allow_null=True
    )
    batch = _text(35)
    expiry_date = SafeDateField(required=False, allow_null=True)
    defect = _text(20000)
    qa_owner = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True), required=False, allow_null=True,
        help_text="A user of the pharmacovigilance / QA role: handing the complaint to QA.",
    )  # fmt: skip
    handed_to_qa_at = serializers.DateTimeField(read_only=True)
    investigation_outcome = _text(20000)
    root_cause = _text(20000)
    recall_decision = RecallField(required=False)
    recall_reason = _text(20000)
    decided_at = serializers.DateTimeField(read_only=True)


class ClockSerializer(ModelSerializer):
    kind = ClockKindField(read_only=True)
    jurisdiction = serializers.CharField(read_only=True)
    rule = serializers.SlugRelatedField(slug_field="code", read_only=True)
    version = serializers.IntegerField(source="case_version.sequence", read_only=True, allow_null=True,
                                       help_text="The follow-up the clock counts for (0: the initial report).")  # fmt: skip

    class Meta:
        model = SafetyClock
        fields = ["kind", "jurisdiction", "rule", "version", "started_at", "warn_at", "due_at", "warned_at",
                  "breached_at", "met_at"]  # fmt: skip
        read_only_fields = fields


class LastReportSerializer(Serializer):
    """The case's latest report, as its page shows it (read-only)."""

    kind = serializers.ChoiceField(
        choices=["initial", "follow_up", "amendment", "nullification"], read_only=True,
        help_text="The initial report, a follow-up (a later version), or an amendment / nullification (C.1.11.1).",
    )  # fmt: skip
    state = serializers.ChoiceField(
        choices=["exported", "submitted", "acknowledged"], read_only=True,
        help_text="exported: the ICSR was released, its sending not recorded yet; submitted: sent, no "
        "acknowledgement yet; acknowledged: the regulator's acknowledgement came back (see `ack`).",
    )  # fmt: skip
    batch_number = serializers.CharField(
        read_only=True, help_text="N.1.2, the batch (transmission) number; the message id recorded with the "
        "submission when it was sent without an export from here ('' when none was given).",
    )  # fmt: skip
    exported_at = serializers.DateTimeField(read_only=True, allow_null=True,
                                            help_text="When the batch was created (N.1.5); null when not exported "
                                            "from here.")  # fmt: skip
    submitted_at = serializers.DateTimeField(read_only=True, allow_null=True)
    acknowledged_at = serializers.DateTimeField(read_only=True, allow_null=True)
    ack = serializers.ChoiceField(choices=AckStatus.choices, read_only=True, allow_null=True,
                                  help_text="The acknowledgement: null before a submission is recorded.")  # fmt: skip
    ack_errors = serializers.ListField(child=serializers.CharField(), read_only=True,
                                       help_text="The errors a rejecting acknowledgement reported.")  # fmt: skip


class LiteratureCopySerializer(Serializer):
    reference = serializers.IntegerField(read_only=True, help_text="The literature reference (1, 2, …: its line).")
    name = serializers.CharField(read_only=True)
    content_type = serializers.CharField(read_only=True)
    size = serializers.IntegerField(read_only=True)
    uploaded_at = serializers.DateTimeField(read_only=True)


class LiteratureCopyUploadSerializer(Serializer):
    reference = serializers.IntegerField(min_value=1, max_value=MAX_INT32,
                                         help_text="The literature reference the article is the copy of: its line, "
                                         "1 for the first.")  # fmt: skip
    file = serializers.FileField(help_text="The article as a PDF (C.4.r.2), at most 7 MB: it travels inside the "
                                 "ICSR.")  # fmt: skip


def _literature_copies(case: SafetyCase) -> list[dict]:
    references = services.literature_references(case)
    copies = services.literature_copies(case)
    return [
        {"reference": n, "name": f.name, "content_type": f.content_type, "size": f.size, "uploaded_at": f.uploaded_at}
        for n, text in enumerate(references, start=1) if (f := copies.get(text))
    ]


PATIENT_API_FIELDS = (
    "patient_name", "patient_sex", "patient_birth_date", "patient_age", "patient_age_unit", "patient_weight_kg",
    "patient_height_cm", "patient_pregnancy", "patient_history", "patient_record_number",
)  # fmt: skip
REPORTER_API_FIELDS = ("reporter_name", "reporter_contact", "reporter_institution", "reporter_qualification",
                       "reporter_country")  # fmt: skip
ASSESSMENT_FIELDS = ("expectedness", "causality_reporter", "causality_company", "narrative", "reporter_comment",
                     "sender_comment", "literature")  # fmt: skip
PV_FIELDS = frozenset(
    PATIENT_API_FIELDS + REPORTER_API_FIELDS + ASSESSMENT_FIELDS
    + ("literature_copies", "drugs", "reactions", "quality")
)
# what a READ_PERSONAL entry names: the encrypted fields an answer shows
READ_FIELDS = sorted(services.SECRET_FIELDS)


class CaseSerializer(CleanTextMixin, ModelSerializer):
    """A safety or quality case. The fields marked "pharmacovigilance only" are left out for other roles."""

    number = serializers.CharField(read_only=True, help_text="AE-YYYY-NNNNNN (QC- for quality complaints).")
    kind = CaseKindField()
    status = CaseStatusField(read_only=True, help_text="Change it with …/status/.")
    received_at = SafeDateTimeField(
        earliest=EARLIEST,
        required=False,
        help_text="Day 0 (C.1.4): when the company first heard of it. Default now; never in the future.",
    )  # fmt: skip
    latest_received_at = SafeDateTimeField(earliest=EARLIEST, required=False, help_text="C.1.5: the most recent information.")
    report_type = ReportTypeField(required=False)
    country = _text(2, help_text="ISO 3166 code where the reaction occurred (default CN).")
    worldwide_id = _text(100)
    sender_case_id = _text(100)
    imported_from = _text(200)
    source_ticket = serializers.SlugRelatedField(slug_field="number", read_only=True, allow_null=True)
    source_interaction = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    owner = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    serious = serializers.BooleanField(read_only=True)
    fatal = serializers.BooleanField(read_only=True)
    valid = serializers.BooleanField(read_only=True, help_text="All four minimum criteria present.")
    missing = serializers.ListField(
        child=serializers.CharField(), read_only=True,
        help_text="The missing minimum criteria: patient, reporter, product, reaction.",
    )  # fmt: skip
    next_due_at = serializers.SerializerMethodField(help_text="The earliest regulatory deadline not met yet.")
    overdue = serializers.SerializerMethodField(help_text="A regulatory deadline not met has passed.")
    clocks = serializers.SerializerMethodField()
    version = serializers.IntegerField(
        read_only=True, help_text="Send it back with every change (409 if stale)."
    )
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    # pharmacovigilance only
    patient_name = _text(200, help_text=PV_ONLY)
    patient_sex = SexField(required=False, help_text=PV_ONLY)
    # not SafeDateField: an elderly patient was born before its floor (1950), and a patient of 80 was refused as "too
    # long ago"; the services refuse a birth date in the future or more than 150 years ago, at this field
    patient_birth_date = DateField(required=False, allow_null=True, help_text=PV_ONLY)
    patient_age = _text(10, help_text=PV_ONLY)
    patient_age_unit = AgeUnitField(required=False, help_text=PV_ONLY)
    patient_weight_kg = _text(10, help_text=PV_ONLY)
    patient_height_cm = _text(10, help_text=PV_ONLY)
    patient_pregnancy = _text(500, help_text=PV_ONLY)
    patient_history = _text(20000, help_text=PV_ONLY)
    patient_record_number = _text(100, help_text=PV_ONLY)
    reporter_name = _text(200, help_text=PV_ONLY)
    reporter_contact = _text(200, help_text=PV_ONLY)
    reporter_institution = _text(200, help_text=PV_ONLY)
    reporter_qualification = QualificationField(required=False, help_text=PV_ONLY)
    reporter_country = _text(2, help_text=PV_ONLY)
    expectedness = ExpectednessField(required=False, help_text=PV_ONLY)
    causality_reporter = CausalityField(required=False, help_text=PV_ONLY)
    causality_company = CausalityField(required=False, help_text=PV_ONLY)
    narrative = _text(100000, help_text=PV_ONLY)
    reporter_comment = _text(20000, help_text=PV_ONLY)
    sender_comment = _text(20000, help_text=PV_ONLY)
    literature = _text(20000, help_text=PV_ONLY + " C.4.r.1: one literature reference a line, 500 characters each.")
    literature_copies = serializers.SerializerMethodField(
        help_text=PV_ONLY + " C.4.r.2: the copies of the articles, by reference; attach one with "
        "…/literature-copies/, download it with …/literature-copies/{reference}/."
    )  # fmt: skip
    report = serializers.SerializerMethodField(
        help_text="The latest report of the case (read-only), as its page shows it: null for a case never exported "
        "nor submitted."
    )  # fmt: skip
    drugs = DrugSerializer(
        many=True, required=False, help_text=PV_ONLY + " A list given replaces the case's list."
    )
    reactions = ReactionSerializer(
        many=True, required=False, help_text=PV_ONLY + " A list given replaces the case's list."
    )
    quality = QualitySerializer(
        required=False,
        allow_null=True,
        help_text=PV_ONLY + " Quality complaints: the defect, QA and the recall.",
    )

    class Meta:
        model = SafetyCase
        fields = [
            "id", "number", "kind", "status", "received_at", "latest_received_at", "report_type", "country",
            "worldwide_id", "sender_case_id", "imported_from", "source_ticket", "source_interaction", "owner",
            "serious", "fatal", "valid", "missing", "next_due_at", "overdue", "clocks", "version", "created_at",
            "updated_at", "report", *PATIENT_API_FIELDS, *REPORTER_API_FIELDS, *ASSESSMENT_FIELDS,
            "literature_copies", "drugs", "reactions", "quality",
        ]  # fmt: skip

    def get_fields(self):
        fields = super().get_fields()
        if self.context.get("summary"):
            fields.pop("clocks", None)
        if not self.context.get("identity"):
            for name in PV_FIELDS:
                fields.pop(name, None)
        return fields

    def _open_clocks(self, case) -> list[SafetyClock]:
        return [c for c in case.clocks.all() if c.met_at is None and c.stopped_at is None]

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_next_due_at(self, case) -> str | None:
        due = min((c.due_at for c in self._open_clocks(case)), default=None)
        return serializers.DateTimeField().to_representation(due) if due else None

    def get_overdue(self, case) -> bool:
        now = self.context.get("now") or timezone.now()
        return any(c.due_at <= now for c in self._open_clocks(case))

    @extend_schema_field(ClockSerializer(many=True))
    def get_clocks(self, case):
        return ClockSerializer(case.clocks.all(), many=True).data

    @extend_schema_field(LastReportSerializer(allow_null=True))
    def get_report(self, case):
        reports = self.context.get("reports")  # the list's page: all its cases' reports read at once
        report = reports.get(case.pk) if reports is not None else services.last_report(case)
        return LastReportSerializer(report).data if report is not None else None

    @extend_schema_field(LiteratureCopySerializer(many=True))
    def get_literature_copies(self, case):
        return LiteratureCopySerializer(_literature_copies(case), many=True).data


class CaseListSerializer(CaseSerializer):
    """A case as the list shows it: without its clocks and the patient's and reporter's identity (the
    case's own page has them), so that the schema says what the list answers; with its latest report, as the case
    list page shows it."""

    class Meta(CaseSerializer.Meta):
        fields = [f for f in CaseSerializer.Meta.fields if f != "clocks" and f not in PV_FIELDS]


def _case_base():
    return SafetyCase.objects.select_related("source_ticket").prefetch_related(
        Prefetch(
            "clocks",
            queryset=SafetyClock.objects.select_related("rule", "case_version").order_by("due_at", "id"),
        )
    )


def _full_case(pk: int) -> SafetyCase:
    return _case_base().select_related("quality").prefetch_related("drugs", "reactions").get(pk=pk)


def _audit_read(request, case: SafetyCase, purpose: str) -> None:
    audit.record(
        AuditEntry.Action.READ_PERSONAL, case, user=request.user, fields=READ_FIELDS, purpose=purpose
    )


def case_response(request, case: SafetyCase, code: int = 200, *, purpose: str = "api") -> Response:
    """The case read back fresh, with its personal data for PV only; an answer that shows them is audited."""
    case = _full_case(case.pk)
    identity = access.can_see_case_identity(request.user)
    serializer = CaseSerializer(
        case, context={"request": request, "identity": identity, "now": timezone.now()}
    )
    if identity:
        _audit_read(request, case, purpose)
    return versioned(Response(serializer.data, status=code), case)


class CaseFilter(django_filters.FilterSet):
    valid = StrictBooleanFilter(help_text="true: cases with all four minimum criteria.")
    serious = StrictBooleanFilter()
    kind = django_filters.ChoiceFilter(choices=CaseKind.choices)
    status = django_filters.ChoiceFilter(choices=CaseStatus.choices)
    number = django_filters.CharFilter(max_length=20)
    received_after = DateTimeFilter(field_name="received_at", lookup_expr="gte", label="Day 0 at or after.")
    received_before = DateTimeFilter(field_name="received_at", lookup_expr="lt", label="Day 0 before.")
    batch_number = django_filters.CharFilter(
        method="filter_batch_number", max_length=100,
        label="The cases reported in that batch (N.1.2: exported from here, or the message id a submission was "
        "recorded with); a case's `report` is its latest report, which may be a later one.",
    )  # fmt: skip

    class Meta:
        model = SafetyCase
        fields: list[str] = []

    def filter_batch_number(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        exported = IcsrMessage.objects.filter(batch__batch_id=value).values("case_id")
        submitted = Submission.objects.filter(message_id=value).values("case_id")
        return queryset.filter(Q(pk__in=exported) | Q(pk__in=submitted))


class FollowUpSerializer(CaseSerializer):
    """New information about a case: when it was received, what is new, and the changed fields."""

    kind = CaseKindField(required=False)
    follow_up_received_at = SafeDateTimeField(
        earliest=EARLIEST,
        write_only=True, help_text="When the new information reached the company: its own day 0."
    )
    summary = _text(5000, write_only=True, help_text="What is new.")
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_INT32, write_only=True,
        help_text="The case version you loaded (or If-Match).",
    )  # fmt: skip

    class Meta(CaseSerializer.Meta):
        fields = [f for f in CaseSerializer.Meta.fields if f != "received_at"] + [
            "follow_up_received_at",
            "summary",
        ]


class VersionSerializer(ModelSerializer):
    summary = serializers.CharField(
        read_only=True, help_text=PV_ONLY + " What is new (may be medical detail)."
    )

    class Meta:
        model = CaseVersion
        fields = ["sequence", "received_at", "summary", "changes", "created_at"]
        read_only_fields = fields

    def get_fields(self):
        fields = super().get_fields()
        if not self.context.get("identity"):
            fields.pop("summary")
        return fields


class StatusSerializer(CleanTextMixin, Serializer):
    status = CaseStatusField(help_text="closed, nullified, or assessing / new to reopen.")
    reason = _text(2000, help_text="Needed to nullify, to reopen, and to close with reports still due.")
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_INT32, help_text="The version you loaded (or If-Match)."
    )


class DayZeroSerializer(CleanTextMixin, Serializer):
    received_at = SafeDateTimeField(
        earliest=EARLIEST, help_text="Day 0 corrected (C.1.4): when the company first heard of it."
    )
    reason = _text(2000, help_text="Why day 0 is corrected (required).")
    otp_code = serializers.CharField(
        max_length=12, help_text="The current code of your authenticator app (signature)."
    )
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_INT32, help_text="The version you loaded (or If-Match)."
    )


class ExportSerializer(Serializer):
    otp_code = serializers.CharField(
        max_length=12, help_text="The current code of your authenticator app (signature)."
    )
    purpose = serializers.ChoiceField(
        choices=PURPOSES, required=False, default="regulatory",
        help_text="regulatory: MedDRA codes required; partner: to a licensing partner.",
    )  # fmt: skip
    report = serializers.ChoiceField(
        choices=["", "amendment", "nullification"], required=False, default="", allow_blank=True,
        help_text="C.1.11.1 of a case reported before: amendment (a correction without new information) or "
        "nullification (the case is void; it is nullified too). Empty: a report as the case now stands.",
    )  # fmt: skip
    reason = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=2000,
        help_text="C.1.11.2, required with `report`: why the report is amended or nullified.",
    )  # fmt: skip


class ProblemSerializer(Serializer):
    case = serializers.CharField(help_text="The case number.")
    element = serializers.CharField(help_text="The E2B(R3) element, e.g. E.i.2.1b.")
    field = serializers.CharField(help_text="The case field to fill, e.g. reactions[0].meddra_llt.")
    message = serializers.CharField()


class RefusedSerializer(Serializer):
    detail = serializers.CharField()
    problems = ProblemSerializer(many=True)


class SubmissionSerializer(ModelSerializer):
    jurisdiction = JurisdictionField(read_only=True)
    kind = ClockKindField(read_only=True)
    channel = ChannelField(read_only=True)
    ack_status = AckStatusField(read_only=True)
    follow_up = serializers.IntegerField(source="case_version.sequence", read_only=True, allow_null=True)
    signed_at = serializers.DateTimeField(source="signature.signed_at", read_only=True, allow_null=True)
    signed_by = serializers.CharField(source="signature.user", read_only=True, allow_null=True)

    class Meta:
        model = Submission
        fields = [
            "id", "jurisdiction", "kind", "channel", "submitted_at", "submitted_by", "follow_up", "message_id",
            "reference", "late", "delay_days", "late_reason", "ack_status", "ack_at", "ack_message_id", "ack_errors",
            "signed_at", "signed_by",
        ]  # fmt: skip
        read_only_fields = fields

    def to_representation(self, instance):
        """The reason for the delay with the contact details typed in it masked for a reader who sees personal data
        masked (the auditor), as the case page shows it."""
        return personal.shown_fields(self.context, super().to_representation(instance), "safety.submission")


class SubmissionCreateSerializer(CleanTextMixin, Serializer):
    otp_code = serializers.CharField(
        max_length=12, help_text="The current code of your authenticator app (signature)."
    )
    jurisdiction = JurisdictionField(required=False, default=Jurisdiction.CN)
    channel = ChannelField()
    kind = ClockKindField(required=False, default=ClockKind.REPORT)
    submitted_at = SafeDateTimeField(earliest=EARLIEST, required=False, help_text="Default now; never in the future.")
    message_id = _text(100, help_text="The batch message id of the export that was sent.")
    reference = _text(100, help_text="The regulator's reference.")
    late_reason = _text(5000, help_text="Needed when a deadline was missed.")


@extend_schema_view(
    list=extend_schema(
        tags=["safety"],
        description="Cases, newest day 0 first: number, kind, status, validity, seriousness, the next deadline and "
        "the latest report (`report`: its kind, state and batch number, as the case list page shows it; filter "
        "`batch_number` for the cases of one batch). Pharmacovigilance and the overseeing roles (admin, manager, "
        "auditor); 403 for others.",
    ),
    retrieve=extend_schema(
        tags=["safety"],
        description="One case. Pharmacovigilance also gets patient, reporter, narrative, drugs and reactions; "
        "that read is audited.",
    ),
    create=extend_schema(
        tags=["safety"],
        responses={201: CaseSerializer, 400: OpenApiResponse(description="Per-field messages.")},
        description="Open a case (pharmacovigilance). Day 0 is `received_at`.",
    ),  # fmt: skip
    partial_update=extend_schema(
        tags=["safety"],
        responses={
            200: CaseSerializer,
            400: OpenApiResponse(description="Per-field messages."),
            409: OpenApiResponse(description="Stale version (with current_version)."),
        },
        description="Correct or complete the case (not new information: that is a follow-up). Send `version` "
        "or If-Match. `drugs` / `reactions`, when given, replace the lists.",
    ),  # fmt: skip
)
class CaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                  mixins.UpdateModelMixin, viewsets.GenericViewSet):  # fmt: skip
    """Safety and quality cases (药品不良反应 / 质量投诉)."""

    queryset = SafetyCase.objects.none()
    serializer_class = CaseSerializer
    permission_classes = [HasCapability]

    def get_serializer_class(self):
        return CaseListSerializer if self.action == "list" else super().get_serializer_class()

    required_caps = {
        "list": Cap.OVERSEE_SAFETY,
        "retrieve": Cap.OVERSEE_SAFETY,
        "submissions": Cap.OVERSEE_SAFETY,
        "follow_ups": Cap.OVERSEE_SAFETY,
        "*": Cap.HANDLE_SAFETY,
    }
    filterset_class = CaseFilter
    filter_backends = [DjangoFilterBackend]
    lookup_value_regex = r"[0-9]{1,18}"
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return access.cases_for(self.request.user, _case_base()).order_by("-received_at", "-id")

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = list(page if page is not None else queryset)
        context = {**self.get_serializer_context(), "reports": services.last_reports(c.pk for c in rows)}
        data = CaseListSerializer(rows, many=True, context=context).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            context["identity"] = access.can_see_case_identity(self.request.user) and self.action != "list"
            context["summary"] = self.action == "list"
            context["now"] = timezone.now()
        return context

    def _answer(self, case: SafetyCase, code: int = status.HTTP_200_OK, *, purpose: str = "api") -> Response:
        return case_response(self.request, case, code, purpose=purpose)

    def retrieve(self, request, *args, **kwargs):
        case = self.get_object()
        return self._answer(case)

    def create(self, request, *args, **kwargs):
        services.require(request.user)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        case = services.create_case(request.user, _service_data(serializer.validated_data))
        return self._answer(case, status.HTTP_201_CREATED, purpose="api create")

    def update(self, request, *args, **kwargs):
        if not kwargs.get("partial"):
            raise Http404  # PUT is not offered (http_method_names); PATCH only
        case = self.get_object()
        serializer = self.get_serializer(case, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = _service_data(serializer.validated_data)
        version = expected_version(request, _body_version(request))
        quality = data.pop("quality", None)
        # day 0 is not edited with the case (a follow-up has its own date); typed wrong, it is corrected, signed (…/day-0/)
        received_at = data.pop("received_at", None)
        if received_at is not None and abs(received_at - case.received_at) >= dt.timedelta(seconds=1):  # not a silent 200
            raise serializers.ValidationError({"received_at": [
                _("Day 0 does not change with the case's fields: new information is a follow-up, with its own receipt "
                  "date (…/follow-ups/); a day 0 typed wrong is corrected with a reason and your signature (…/day-0/).")
            ]})  # fmt: skip
        with transaction.atomic():
            if data or quality is None:
                services.update_case(request.user, case, data, version=version)
                version = None
            if quality is not None:
                services.update_quality(request.user, case, quality, version=version)
        return self._answer(case, purpose="api update")

    @extend_schema(
        methods=["post"], request=FollowUpSerializer, tags=["safety"],
        responses={201: CaseSerializer, 400: OpenApiResponse(description="Per-field messages."),
                   409: OpenApiResponse(description="Stale version (with current_version).")},
        description="Record a follow-up: new information with its own receipt date (`follow_up_received_at`), "
        "which restarts the reporting clocks from that date. Any case field, `drugs` and `reactions` may change; "
        "`summary` says what is new.",
    )  # fmt: skip
    @extend_schema(methods=["get"], tags=["safety"], responses=VersionSerializer(many=True), filters=False)
    @action(
        detail=True, methods=["get", "post"], url_path="follow-ups", filter_backends=[], pagination_class=None
    )
    def follow_ups(self, request, pk=None):
        """GET: the versions of the case (0 = the initial report), oldest first."""
        case = self.get_object()
        if request.method == "GET":
            identity = access.can_see_case_identity(request.user)
            versions = case.versions.order_by("sequence")
            if identity:  # the summaries may carry medical detail
                _audit_read(request, case, "api follow-ups")
            return Response(VersionSerializer(versions, many=True, context={"identity": identity}).data)
        services.require(request.user)
        form = FollowUpSerializer(
            data=request.data, context={**self.get_serializer_context(), "identity": True}
        )
        form.is_valid(raise_exception=True)
        data = _service_data(form.validated_data)
        received_at = data.pop("follow_up_received_at")
        summary = data.pop("summary", "")
        body_version = data.pop("version", None)
        data.pop("quality", None)
        version = expected_version(request, body_version)
        services.add_follow_up(
            request.user, case, data, received_at=received_at, summary=summary, version=version
        )
        return self._answer(case, status.HTTP_201_CREATED, purpose="api follow-up")

    @extend_schema(
        request=StatusSerializer, tags=["safety"],
        responses={200: CaseSerializer, 400: OpenApiResponse(description="Per-field messages (what a closing "
                   "needs)."), 409: OpenApiResponse(description="Stale version (with current_version).")},
        description="Close, nullify or reopen the case. A quality complaint closes only with its batch, the "
        "investigation outcome and the recall decision; a case with reports still due closes only with a reason.",
    )  # fmt: skip
    @action(detail=True, methods=["post"], url_path="status", filter_backends=[], pagination_class=None)
    def set_status(self, request, pk=None):
        case = self.get_object()
        form = StatusSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        version = expected_version(request, d.get("version"))
        services.set_status(request.user, case, d["status"], reason=d.get("reason", ""), version=version)
        return self._answer(case, purpose="api status")

    @extend_schema(
        request=DayZeroSerializer, tags=["safety"],
        responses={200: CaseSerializer, 400: OpenApiResponse(description="Per-field messages: a wrong code under "
                   "otp_code, a day 0 the case cannot have under received_at, no reason."),
                   409: OpenApiResponse(description="Stale version (with current_version).")},
        description="Correct day 0 (C.1.4) typed wrong, with a reason and your electronic signature (the current "
        "one-time code): audited; the initial report's clocks are counted again from it.",
    )  # fmt: skip
    @action(detail=True, methods=["post"], url_path="day-0", filter_backends=[], pagination_class=None)
    def correct_day_0(self, request, pk=None):
        case = self.get_object()
        form = DayZeroSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        version = expected_version(request, d.get("version"))
        case = services.correct_day_0(request.user, case, received_at=d["received_at"], reason=d.get("reason", ""),
                                      otp_code=d["otp_code"], version=version)  # fmt: skip
        return self._answer(case, purpose="api day 0")

    @extend_schema(
        request=ExportSerializer, tags=["safety"],
        responses={
            (200, "application/xml"): OpenApiResponse(OpenApiTypes.BINARY, description="The E2B(R3) ICSR batch."),
            400: OpenApiResponse(description="A wrong or used one-time code (under otp_code)."),
            422: OpenApiResponse(RefusedSerializer, description="Refused: what to fill in, element by element."),
        },
        description="Export the case as an ICH E2B(R3) ICSR (MCCI_IN200100UV01 with one PORR_IN049016UV), after "
        "your electronic signature (the current one-time code: \"approved for export\"). The batch is released "
        "only when it passes the business rules and the schema; otherwise 422 lists what to fill in. The unchanged "
        "case exported again is the stored file of the earlier export (X-Retransmission: true). The same request "
        "sent again right after with the code it was signed with (a double click, a retry) answers that export's "
        "file: nothing is signed, exported or audited a second time.",
    )  # fmt: skip
    @action(detail=True, methods=["post"], url_path="export", filter_backends=[], pagination_class=None,
            content_negotiation_class=FileNegotiation)
    def export(self, request, pk=None):
        from .e2b.export import ExportRefused

        case = self.get_object()
        form = ExportSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        try:
            result = services.export_icsr(request.user, [case], otp_code=d["otp_code"], purpose=d["purpose"],
                                          report=d.get("report") or "", reason=d.get("reason") or "")  # fmt: skip
        except ExportRefused as refused:
            problems = [
                {"case": p.case, "element": p.element, "field": p.field, "message": str(p.message)}
                for p in refused.problems
            ]
            detail = _("The case cannot be exported yet: fill in what is listed.")
            return Response(
                {"detail": detail, "problems": problems}, status=status.HTTP_422_UNPROCESSABLE_ENTITY
            )
        response = HttpResponse(result.xml, content_type="application/xml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{result.message_id}.xml"'
        response["X-Message-Id"] = result.message_id
        # the stored file of an earlier export of the unchanged case: same batch number and date of creation
        response["X-Retransmission"] = "true" if result.retransmission else "false"
        return response

    @extend_schema(
        methods=["post"], request=SubmissionCreateSerializer, tags=["safety"],
        responses={201: SubmissionSerializer, 400: OpenApiResponse(description="Per-field messages: a wrong code "
                   "under otp_code, a late report without late_reason, an invalid case under case.")},
        description="Record that the case (its latest version) was sent to a regulator or partner, with your "
        "electronic signature (\"approved for submission\"). Meets the open clocks of that kind and "
        "jurisdiction; a late one is marked with the delay and needs `late_reason`.",
    )  # fmt: skip
    @extend_schema(methods=["get"], tags=["safety"], responses=SubmissionSerializer(many=True), filters=False)
    @action(
        detail=True,
        methods=["get", "post"],
        url_path="submissions",
        filter_backends=[],
        pagination_class=None,
    )
    def submissions(self, request, pk=None):
        """GET: the case's submissions, newest first, with their acknowledgements."""
        case = self.get_object()
        if request.method == "GET":
            rows = case.submissions.select_related("case_version", "signature__user").order_by(
                "-submitted_at", "-id"
            )
            return Response(SubmissionSerializer(rows, many=True, context=self.get_serializer_context()).data)
        services.require(request.user)
        form = SubmissionCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = dict(form.validated_data)
        code = d.pop("otp_code")
        submission = services.record_submission(request.user, case, d, otp_code=code)
        submission = Submission.objects.select_related("case_version", "signature__user").get(
            pk=submission.pk
        )
        return Response(SubmissionSerializer(submission, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)


    @extend_schema(
        request={"multipart/form-data": LiteratureCopyUploadSerializer}, tags=["safety"],
        responses={201: LiteratureCopySerializer,
                   200: OpenApiResponse(LiteratureCopySerializer, description="The reference has this copy already "
                                        "(the same name and content): it stays as it was, nothing changed."),
                   400: OpenApiResponse(description="Per-field messages: a reference "
                   "the case does not have, a file that is not a PDF, empty or over 7 MB.")},
        description="Attach the copy of a published article (a PDF) to one of the case's literature references "
        "(pharmacovigilance): the E2B(R3) export sends it inside the ICSR (C.4.r.2). It replaces that reference's "
        "earlier copy; the same copy sent again (a double upload) changes nothing and answers 200 with it.",
    )  # fmt: skip
    @action(detail=True, methods=["post"], url_path="literature-copies", filter_backends=[], pagination_class=None,
            parser_classes=[MultiPartParser, FormParser])  # fmt: skip
    def literature_copies(self, request, pk=None):
        case = self.get_object()
        services.require(request.user)
        form = LiteratureCopyUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            copy = services.attach_literature_copy(request.user, case, form.validated_data["reference"],
                                                   form.validated_data["file"])  # fmt: skip
        except ValidationError as exc:
            errors = exc.message_dict
            if "copy" in errors:
                errors["file"] = errors.pop("copy")
            raise serializers.ValidationError(errors) from None
        n = services.literature_references(case).index(copy.literature) + 1
        # the same copy sent again (a double upload): the copy the first sending attached, 200, nothing changed
        again = getattr(copy, "again", False)
        return Response(LiteratureCopySerializer({
            "reference": n, "name": copy.name, "content_type": copy.content_type, "size": copy.size,
            "uploaded_at": copy.uploaded_at,
        }).data, status=status.HTTP_200_OK if again else status.HTTP_201_CREATED)  # fmt: skip


    @extend_schema(
        tags=["safety"], filters=False,
        parameters=[CASE_PK, OpenApiParameter("reference", int, OpenApiParameter.PATH,
                                              description="The literature reference: its line, 1 for the first.")],
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The copy of the article, "
                                                      "under the name it was attached with."),
            404: OpenApiResponse(description="No such case, or the case has no copy for that reference."),
        },
        description="Download the copy of the article of one of the case's literature references (C.4.r.2). "
        "Pharmacovigilance only, as on the case page; every download is audited (read_personal).",
    )  # fmt: skip
    @action(detail=True, methods=["get"], url_path=r"literature-copies/(?P<reference>[0-9]{1,10})",
            url_name="literature-copy", filter_backends=[], pagination_class=None,
            content_negotiation_class=FileNegotiation)  # fmt: skip
    def literature_copy(self, request, pk=None, reference=None):
        from .views_cases import case_file_response

        case = self.get_object()
        references = services.literature_references(case)
        n = int(reference)
        copy = services.literature_copies(case).get(references[n - 1]) if 1 <= n <= len(references) else None
        if copy is None:
            raise Http404(_("The case has no copy of that article."))
        return case_file_response(request.user, copy, purpose="api literature copy")


def _body_version(request):
    value = request.data.get("version") if hasattr(request.data, "get") else None
    if value is None or value == "":
        return None
    try:
        if isinstance(value, str) and not value.isascii():
            raise ValueError(value)  # int() reads "１" (full width) as 1
        number = int(value)
    except (TypeError, ValueError):
        raise serializers.ValidationError({"version": [_("A valid integer is required.")]}) from None
    if not 1 <= number <= MAX_INT32:
        raise serializers.ValidationError({"version": [_("A valid integer is required.")]})
    return number


def _service_data(validated: dict) -> dict:
    """The serializer's values as the services take them."""
    data = dict(validated)
    for key in ("drugs", "reactions"):
        if key in data:
            data[key] = [dict(row) for row in data[key]]
    if data.get("quality") is not None:
        data["quality"] = dict(data["quality"])
    elif "quality" in data:
        data.pop("quality")
    return data


class CaseReportPdfView(APIView):
    """GET /api/v1/safety/cases/{id}/report.pdf — the 药品不良反应/事件报告表 of the case as a PDF."""

    content_negotiation_class = FileNegotiation
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.HANDLE_SAFETY}

    @extend_schema(
        tags=["safety"], parameters=[CASE_PK],
        responses={(200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The 报告表.")},
        description="China's 药品不良反应/事件报告表 for the case (pharmacovigilance; the read is audited).",
    )  # fmt: skip
    def get(self, request, pk: int):
        from . import report_pdf

        if pk > MAX_ID:
            raise Http404
        case = access.cases_for(request.user).filter(pk=pk).first()
        if case is None:
            raise Http404
        pdf = report_pdf.render(case)
        audit.record(AuditEntry.Action.EXPORT, case, user=request.user, format="报告表 PDF", fields=READ_FIELDS,
                     purpose="api report pdf")  # fmt: skip
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{case.number}.pdf"'
        return response


# --- files in: acknowledgements and incoming ICSRs ------------------------------------------------------


class XmlParser(BaseParser):
    """A raw XML body (an ACK or an ICSR batch as the gateway delivers it), kept as bytes."""

    media_type = "application/xml"

    def parse(self, stream, media_type=None, parser_context=None):
        from .e2b import schema

        data = stream.read(schema.max_bytes() + 1) if stream is not None else b""
        return {"_raw": data or b""}


class TextXmlParser(XmlParser):
    media_type = "text/xml"


class XmlUploadSerializer(Serializer):
    file = serializers.FileField(
        help_text="The XML file (or send the XML itself as the body, application/xml), at most ICSR_MAX_BYTES (50 MB "
        "unless configured), as on the import page."
    )


def _uploaded(request) -> tuple[bytes, str]:
    """The XML of the request: the `file` of a multipart upload, or the raw body; 400 when missing or too big — the
    limit and the refusal of the import page (settings.ICSR_MAX_BYTES), a body announced larger refused unread."""
    from pharmacrm.customers.views_import import MULTIPART_OVERHEAD, content_length

    from .e2b import schema

    limit = schema.max_bytes()
    if content_length(request) > limit + MULTIPART_OVERHEAD:
        raise serializers.ValidationError({"file": [schema.too_large()]})
    raw = request.data.get("_raw") if hasattr(request.data, "get") else None
    if isinstance(raw, bytes):
        data, name = raw, ""
    else:
        if errors := XmlUploadSerializer().input_errors(request.data):  # a misspelt form field: not ignored
            raise serializers.ValidationError(errors)
        upload = request.FILES.get("file")
        if upload is None:
            raise serializers.ValidationError(
                {"file": [_("Send the XML file (multipart `file`, or the body).")]}
            )
        if upload.size > limit:
            raise serializers.ValidationError({"file": [schema.too_large()]})
        data = upload.read()
        name = clean_text(upload.name or "")[:200]
    if not data.strip():
        raise serializers.ValidationError({"file": [_("The file is empty.")]})
    if len(data) > limit:
        raise serializers.ValidationError({"file": [schema.too_large()]})
    return data, name


def _parse_error(exc: Exception) -> ValidationError:
    return ValidationError({"file": [_("This is not a readable XML file: %(error)s") % {"error": exc}]})


class ImportedCaseSerializer(Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="null: a nullification of a case never received.")
    number = serializers.CharField(allow_null=True)
    valid = serializers.BooleanField(allow_null=True)
    version = serializers.IntegerField(allow_null=True)
    warnings = serializers.ListField(
        child=serializers.CharField(), help_text="What was shortened or left out."
    )


FILE_REQUEST = {
    "multipart/form-data": XmlUploadSerializer,
    "application/xml": OpenApiTypes.BINARY,
}


class _XmlUploadViewSet(viewsets.GenericViewSet):
    """An XML file posted as multipart `file` or as the raw body; pharmacovigilance only."""

    serializer_class = XmlUploadSerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.HANDLE_SAFETY}
    parser_classes = [MultiPartParser, FormParser, XmlParser, TextXmlParser]
    pagination_class = None
    filter_backends: list = []

    def _imported(self, request, load):
        """load(data, name) on the uploaded file; an unreadable file is a 400 on `file`."""
        data, name = _uploaded(request)
        try:
            return load(data, name)
        except ValidationError:
            raise
        except (ValueError, SyntaxError) as exc:
            raise _parse_error(exc) from exc


class AckViewSet(_XmlUploadViewSet):
    """Regulators' acknowledgements."""

    queryset = Submission.objects.none()

    @extend_schema(
        tags=["safety"],
        request=FILE_REQUEST,
        responses={
            200: SubmissionSerializer(many=True),
            400: OpenApiResponse(
                description="Under `file`: not an ACK, invalid against MCCI_IN200101UV01, or for a batch never sent."
            ),
        },
        description="Import an acknowledgement (MCCI_IN200101UV01) of a batch we submitted: each submission of "
        "the batch is marked accepted or rejected; a rejection reopens the case with the errors. Importing the "
        "same ACK again changes nothing. Pharmacovigilance.",
    )  # fmt: skip
    def create(self, request):
        from .e2b import ack

        submissions = self._imported(request, lambda data, _name: ack.import_ack(request.user, data))
        rows = Submission.objects.filter(pk__in=[s.pk for s in submissions]).select_related(
            "case_version", "signature__user"
        )
        return Response(SubmissionSerializer(rows.order_by("id"), many=True, context={"request": request}).data)


class IcsrViewSet(_XmlUploadViewSet):
    """Incoming ICSRs (E2B(R3))."""

    queryset = SafetyCase.objects.none()

    @extend_schema(
        tags=["safety"],
        request=FILE_REQUEST,
        responses={
            201: ImportedCaseSerializer(many=True),
            400: OpenApiResponse(
                description="Under `file`: not an ICSR batch, invalid against MCCI_IN200100UV01, or a report that "
                "cannot become a case (nothing is imported then)."
            ),
        },
        description="Import an ICSR batch from a licensing partner or distributor: each report becomes a case, or "
        "a follow-up of the case with the same worldwide unique id. A nullification report (C.1.11.1 = 1) "
        "nullifies the case it names, with the sender's reason; one naming a case never received opens none and "
        "is listed with `id` null and the reason in `warnings`. All or nothing. Pharmacovigilance.",
    )  # fmt: skip
    def create(self, request):
        from .e2b import importer

        cases = self._imported(
            request, lambda data, name: importer.import_file(request.user, data, source_name=name or _("API upload"))
        )
        body = [
            {"id": c.pk, "number": c.number, "valid": c.valid, "version": c.version,
             "warnings": [str(w) for w in getattr(c, "import_warnings", [])]}
            for c in cases
        ]  # fmt: skip
        # a nullification of a case never received opened no case: said, not silently dropped
        body += [{"id": None, "number": None, "valid": None, "version": None, "warnings": [str(line)]}
                 for line in getattr(cases, "not_held", [])]  # fmt: skip
        return Response(body, status=status.HTTP_201_CREATED)


# --- the screen -------------------------------------------------------------------------------------------


class ScreenSerializer(Serializer):
    text = serializers.CharField(
        max_length=SCREEN_MAX_CHARS, trim_whitespace=False,
        help_text="A customer's words (a call transcript, a message), Chinese or English; at most 100,000 characters.",
    )  # fmt: skip

    def validate_text(self, value: str) -> str:
        value = clean_text(value)
        if not value.strip():
            raise serializers.ValidationError(_("This field may not be blank."))
        return value


class ScreenResultSerializer(Serializer):
    signal = serializers.BooleanField(help_text="An adverse-reaction or quality signal was found.")
    kind = SignalKindField(allow_null=True, help_text="What the signal is (null without a signal).")
    terms = serializers.ListField(child=serializers.CharField(), help_text="The words that raised it.")


@extend_schema_view(
    create=extend_schema(
        tags=["safety"],
        request=ScreenSerializer,
        responses={
            200: ScreenResultSerializer,
            400: OpenApiResponse(description="`text` missing, empty or longer than 100,000 characters."),
        },
        description="Screen a text for adverse-reaction and quality signals (negations such as 没有不良反应 are "
        "not signals), as the net does on every ticket and interaction. Any signed-in user; it changes nothing.",
    ),  # fmt: skip
)
class ScreenViewSet(viewsets.GenericViewSet):
    """The net's screen for integrations (call transcripts, chat)."""

    queryset = Flag.objects.none()
    serializer_class = ScreenSerializer
    permission_classes = [IsAuthenticated]
    pagination_class = None
    filter_backends: list = []

    def create(self, request):
        from . import screen

        form = ScreenSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        result = screen.screen(form.validated_data["text"])
        signal = bool(result.signal)
        return Response(
            {
                "signal": signal,
                "kind": (str(result.kind) or None) if signal else None,
                "terms": list(result.terms),
            }
        )


# --- flags (the triage queue) -------------------------------------------------------------------------------


class FlagSerializer(ModelSerializer):
    kind = SignalKindField(read_only=True)
    status = SignalStatusField(read_only=True)
    source_type = serializers.SerializerMethodField(help_text="ticket or interaction")
    source_id = serializers.SerializerMethodField()
    source_number = serializers.SerializerMethodField(
        help_text="The ticket's number (empty for an interaction)."
    )
    case = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    case_number = serializers.CharField(source="case.number", read_only=True, allow_null=True)
    handoff_due_at = serializers.SerializerMethodField(help_text="The one-working-day hand-off deadline.")
    handoff_due_provisional = serializers.SerializerMethodField(
        help_text="The years up to a pending working-day hand-off deadline whose official holidays are not entered "
        "yet: the deadline counted them as working days and may move (empty otherwise)."
    )

    class Meta:
        model = Flag
        fields = [
            "id", "kind", "status", "terms", "excerpt", "by_agent", "source_type", "source_id", "source_number",
            "received_at", "created_at", "handoff_due_at", "handoff_due_provisional", "decided_by", "decided_at", "reason", "case",
            "case_number",
        ]  # fmt: skip
        read_only_fields = fields

    def to_representation(self, instance):
        """The reason for a dismissal with the contact details typed in it masked for a reader who sees personal data
        masked (the auditor)."""
        return personal.shown_fields(self.context, super().to_representation(instance), "safety.flag")

    def get_source_type(self, flag: Flag) -> str:
        return "ticket" if flag.ticket_id else "interaction"

    def get_source_id(self, flag: Flag) -> int | None:
        return flag.ticket_id or flag.interaction_id

    def get_source_number(self, flag: Flag) -> str:
        return flag.ticket.number if flag.ticket_id else ""

    def get_fields(self):
        """The excerpt is the customer's own words and may name the patient: PV only."""
        fields = super().get_fields()
        request = self.context.get("request")
        if request is None or not access.can_see_case_identity(request.user):
            fields.pop("excerpt", None)
        return fields

    @extend_schema_field(serializers.DateTimeField(allow_null=True))  # null: no hand-off clock runs (yet)
    def get_handoff_due_at(self, flag: Flag) -> str | None:
        due = min((c.due_at for c in flag.clocks.all()), default=None)
        return serializers.DateTimeField().to_representation(due) if due else None

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_handoff_due_provisional(self, flag: Flag) -> list[int]:
        clock = min(flag.clocks.all(), key=lambda c: c.due_at, default=None)
        if clock is None or clock.met_at is not None or clock.calendar_id is None:
            return []
        from pharmacrm.servicedesk import calendars

        # the calendar came with the clock: its engine is cached per process, no query per flag
        return list(calendars.provisional_years(calendars.engine(clock.calendar), timezone.now(), clock.due_at))


class FlagFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=SignalStatus.choices)
    kind = django_filters.ChoiceFilter(choices=SignalKind.choices)
    source = django_filters.ChoiceFilter(
        choices=(("ticket", "ticket"), ("interaction", "interaction")), method="filter_source"
    )
    ticket = IntegerFilter(field_name="ticket_id", min_value=1, max_value=MAX_ID)
    interaction = IntegerFilter(field_name="interaction_id", min_value=1, max_value=MAX_ID)

    class Meta:
        model = Flag
        fields: list[str] = []

    def filter_source(self, queryset, name, value):
        return queryset.filter(**{f"{value}__isnull": False}) if value else queryset


class ConfirmSerializer(Serializer):
    kind = CaseKindField(required=False, help_text="The kind of case to open (default: from the signal).")


class DismissSerializer(Serializer):
    reason = serializers.CharField(max_length=2000, help_text="Why this is not a safety case (audited).")


@extend_schema_view(
    list=extend_schema(
        tags=["safety"],
        description="What the net (or staff) flagged on tickets and interactions, oldest receipt first. "
        "Pharmacovigilance and the overseeing roles.",
    ),
    retrieve=extend_schema(tags=["safety"]),
)
class FlagViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Triage flags."""

    queryset = Flag.objects.none()
    serializer_class = FlagSerializer
    permission_classes = [HasCapability]
    required_caps = {"confirm": Cap.HANDLE_SAFETY, "dismiss": Cap.HANDLE_SAFETY, "*": Cap.OVERSEE_SAFETY}
    filterset_class = FlagFilter
    filter_backends = [DjangoFilterBackend]
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return (
            Flag.objects.select_related("ticket", "case")
            .prefetch_related(
                Prefetch("clocks", queryset=SafetyClock.objects.select_related("calendar")
                         .only("id", "flag_id", "due_at", "met_at", "calendar"))  # fmt: skip
            )
            .order_by("received_at", "id")
        )

    @extend_schema(
        request=ConfirmSerializer, tags=["safety"],
        responses={201: CaseSerializer, 400: OpenApiResponse(description="Already triaged (under flag).")},
        description="Confirm the flag: a case opens from its ticket or interaction, day 0 = the source's receipt.",
    )  # fmt: skip
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def confirm(self, request, pk=None):
        flag = self.get_object()
        form = ConfirmSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        case = services.confirm_flag(request.user, flag, kind=form.validated_data.get("kind"))
        return case_response(request, case, status.HTTP_201_CREATED, purpose="api confirm flag")

    @extend_schema(
        request=DismissSerializer, tags=["safety"],
        responses={200: FlagSerializer, 400: OpenApiResponse(description="No reason, or already triaged.")},
        description="Dismiss the flag with a reason (audited): not a reaction, already reported …",
    )  # fmt: skip
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def dismiss(self, request, pk=None):
        flag = self.get_object()
        form = DismissSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.dismiss_flag(request.user, flag, reason=clean_text(form.validated_data["reason"]))
        return Response(FlagSerializer(self.get_queryset().get(pk=flag.pk), context={"request": request}).data)


# --- reporting rules ---------------------------------------------------------------------------------------


class ReportingRuleSerializer(ModelSerializer):
    jurisdiction = JurisdictionField(read_only=True)
    condition = RuleConditionField(read_only=True)
    clock_kind = ClockKindField(read_only=True)
    unit = RuleUnitField(read_only=True)

    label = shipped_label_field()

    class Meta:
        model = ReportingRule
        fields = ["id", "code", "jurisdiction", "name", "label", "condition", "clock_kind", "within", "unit",
                  "position", "active", "legal_basis", "version"]  # fmt: skip
        read_only_fields = fields


class ReportingRuleFilter(django_filters.FilterSet):
    jurisdiction = django_filters.ChoiceFilter(choices=Jurisdiction.choices)
    active = StrictBooleanFilter()

    class Meta:
        model = ReportingRule
        fields: list[str] = []


@extend_schema_view(
    list=extend_schema(
        tags=["safety"], description="The regulators' deadlines as data (edited on the web page)."
    ),
    retrieve=extend_schema(tags=["safety"]),
)
class ReportingRuleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = ReportingRule.objects.none()
    serializer_class = ReportingRuleSerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.OVERSEE_SAFETY}
    filterset_class = ReportingRuleFilter
    filter_backends = [DjangoFilterBackend]
    pagination_class = None
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        return ReportingRule.objects.order_by("jurisdiction", "clock_kind", "position", "id")


# --- reconciliation ----------------------------------------------------------------------------------------


class PeriodSerializer(QuerySerializer):
    since = SafeDateField(required=False, help_text="First day (local), default 90 days ago.")
    until = SafeDateField(required=False, help_text="Last day (local), included; default today.")

    def validate(self, attrs):
        from .reconciliation import default_period

        since, until = default_period()
        since, until = attrs.get("since") or since, attrs.get("until") or until
        if since > until:
            raise serializers.ValidationError({"until": [_("The end of the period is before its start.")]})
        if until - since > dt.timedelta(days=MAX_PERIOD_DAYS):
            raise serializers.ValidationError(
                {"since": [_("At most %(days)d days at a time.") % {"days": MAX_PERIOD_DAYS}]}
            )
        return {"since": since, "until": until}


class ReconciliationRowSerializer(Serializer):
    source_type = serializers.CharField(help_text="ticket or interaction")
    source_id = serializers.IntegerField()
    source = serializers.CharField(help_text="The ticket number, or “Interaction N”.")
    received_at = serializers.DateTimeField()
    safety_relevant = serializers.BooleanField()
    flag_status = serializers.CharField(help_text="pending, confirmed, dismissed, or none (never flagged).")
    flag_kind = serializers.CharField()
    flagged_by_staff = serializers.BooleanField(allow_null=True)
    flagged_at = serializers.DateTimeField(allow_null=True)
    triaged_at = serializers.DateTimeField(allow_null=True)
    handoff_working_hours = serializers.FloatField(allow_null=True)
    handoff_due = serializers.DateTimeField(allow_null=True)
    handoff_due_provisional = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="The years up to a pending working-day hand-off deadline whose official holidays are not entered "
        "yet: the deadline counted them as working days and may move (empty otherwise).",
    )
    handoff_on_time = serializers.BooleanField(allow_null=True)
    case_id = serializers.IntegerField(allow_null=True)
    case_number = serializers.CharField(allow_null=True)
    case_kind = serializers.CharField(allow_null=True)
    case_status = serializers.CharField(allow_null=True)
    case_valid = serializers.BooleanField(allow_null=True)
    report_due = serializers.DateTimeField(allow_null=True)
    submitted_at = serializers.DateTimeField(allow_null=True)
    timeliness = serializers.CharField(
        help_text="on_time, late, not_yet, overdue, not_reportable, closed_unreported, nullified (no report owed; "
        "empty without a case)."
    )
    late_days = serializers.IntegerField()


class UnmatchedSerializer(Serializer):
    problem = serializers.CharField(
        help_text="never_flagged, no_decision, case_overdue, investigation_overdue, late_no_reason, rejected_open."
    )
    label = serializers.CharField()
    source_type = serializers.CharField()
    source_id = serializers.IntegerField(allow_null=True)
    source = serializers.CharField()
    case_id = serializers.IntegerField(allow_null=True)
    case_number = serializers.CharField(allow_null=True)
    at = serializers.DateTimeField(allow_null=True)
    due = serializers.DateTimeField(allow_null=True)
    due_provisional = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="For a hand-off not decided yet: the years up to its deadline whose official holidays are not "
        "entered yet (the deadline may move); empty otherwise.",
    )
    days = serializers.IntegerField()
    jurisdiction = serializers.CharField()


class ReconciliationSerializer(Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField(help_text="The end of the period (exclusive).")
    totals = serializers.DictField(child=serializers.IntegerField())
    rows = ReconciliationRowSerializer(many=True)
    unmatched = UnmatchedSerializer(many=True)


@extend_schema_view(
    list=extend_schema(
        tags=["safety"],
        parameters=[PeriodSerializer],
        operation_id="v1_safety_reconciliation_list",  # the name it had: one report, not a list of them
        responses={200: ReconciliationSerializer, 400: OpenApiResponse(description="A wrong period.")},
        description="Every flagged or safety-relevant ticket and interaction received in the period, against the "
        "cases opened from them and whether they were reported on time; `unmatched` lists what needs action. "
        "No patient data. Pharmacovigilance and the overseeing roles.",
    ),
)
class ReconciliationViewSet(viewsets.GenericViewSet):
    """The reconciliation report of the net."""

    schema = OneObjectSchema()
    queryset = SafetyCase.objects.none()
    serializer_class = ReconciliationSerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.OVERSEE_SAFETY}
    pagination_class = None
    filter_backends: list = []

    def list(self, request):
        from . import reconciliation

        period = PeriodSerializer(data=request.query_params)
        period.is_valid(raise_exception=True)
        result = reconciliation.report(period.validated_data["since"], period.validated_data["until"])
        result["totals"] = {k: int(v) for k, v in result["totals"].items()}
        return Response(ReconciliationSerializer(result).data)


urlpatterns = [path("cases/<int:pk>/report.pdf", CaseReportPdfView.as_view(), name="safety-case-report-pdf")]
