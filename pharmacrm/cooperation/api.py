"""REST API of cooperation agreements and projects (/api/v1/cooperation/agreements/, /api/v1/cooperation/projects/):
read as scoped (services.agreements_for, projects_for), written through the services, whose errors come back per
field in the reader's language; edits carry the `version` loaded (or If-Match) and a stale one answers 409.
Transitions are actions. docs/cooperation.md."""

from __future__ import annotations

import django_filters
from django.db.models import Prefetch
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from pharmacrm.core import audit, personal, uploads, viewsets
from pharmacrm.core.amendments import (
    LAPSED_REASON_HELP,
    STATE_HELP,
    STATES,
    LapseCause,
    LapseNotConfirmed,
    SignedTermFields,
    amendment_of,
    signed_term_fields,
)
from pharmacrm.core.api_schema import ERRORS, STALE, YUAN
from pharmacrm.core.api_utils import (
    AmountField,
    DateField,
    FileNegotiation,
    HasCapability,
    IntegerFilter,
    NoWritesForReadOnlyRoles,
    Serializer,
    expected_version,
    optional,
    versioned,
)
from pharmacrm.core.ids import MAX_ID
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap

from . import services
from .models import (
    AcceptanceResult,
    Agreement,
    AgreementStatus,
    AgreementType,
    Project,
    ProjectStatus,
    SettlementStatus,
    Task,
    TaskStatus,
)

TAGS = ["cooperation"]
DENIED = OpenApiResponse(description="Not allowed: no cooperation capability, or not one of yours to manage.")
WRITE = {a: Cap.MANAGE_COOPERATION for a in ("create", "update", "partial_update")}


class TaskSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    title = serializers.CharField(read_only=True)
    owner = serializers.IntegerField(source="owner_id", read_only=True)
    deadline = serializers.DateField(read_only=True)
    status = serializers.ChoiceField(choices=TaskStatus.choices, read_only=True)
    progress = serializers.IntegerField(read_only=True, help_text="Percent, 0–100.")
    version = serializers.IntegerField(read_only=True, help_text="Send it back with a progress report (409 if stale).")
    overdue_notified_at = serializers.DateTimeField(read_only=True, allow_null=True)

    def to_representation(self, instance):
        """The title with the contact details typed in it masked for a reader who sees personal data masked, as the
        project page and the task list show it."""
        return personal.shown_fields(self.context, super().to_representation(instance), "cooperation.task")


class CheckSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    checked_on = serializers.DateField(read_only=True)
    progress = serializers.IntegerField(read_only=True)
    problems = serializers.CharField(read_only=True)
    measures = serializers.CharField(read_only=True)

    def to_representation(self, instance):
        """The problems and measures with the contact details typed in them masked for a reader who sees personal
        data masked, as the project page shows them."""
        return personal.shown_fields(self.context, super().to_representation(instance), "cooperation.check")


class AcceptanceSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    accepted_on = serializers.DateField(read_only=True)
    result = serializers.ChoiceField(choices=AcceptanceResult.choices, read_only=True)
    standards = serializers.CharField(read_only=True)
    remarks = serializers.CharField(read_only=True)
    accepted_by = serializers.CharField(read_only=True)
    attachment_name = serializers.CharField(read_only=True)

    def to_representation(self, instance):
        """The standards and remarks with the contact details typed in them masked for a reader who sees personal data
        masked."""
        return personal.shown_fields(self.context, super().to_representation(instance), "cooperation.acceptance")


class PaymentSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    paid_on = serializers.DateField(read_only=True)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True, help_text=YUAN)
    invoice_number = serializers.CharField(read_only=True)


class ProjectSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    agreement = serializers.IntegerField(source="agreement_id", read_only=True)
    agreement_number = serializers.CharField(source="agreement.number", read_only=True)
    title = serializers.CharField(read_only=True)
    goal = serializers.CharField(read_only=True)
    responsible = serializers.IntegerField(source="responsible_id", read_only=True,
                                           help_text="The user who answers for the project (专人负责).")  # fmt: skip
    start_date = serializers.DateField(read_only=True)
    end_date = serializers.DateField(read_only=True)
    budget = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True, allow_null=True, help_text=YUAN)
    status = serializers.ChoiceField(choices=ProjectStatus.choices, read_only=True)
    amount_due = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True, allow_null=True)
    amount_paid = serializers.SerializerMethodField(help_text=YUAN)
    settlement_due_date = serializers.DateField(read_only=True, allow_null=True)
    settlement_status = serializers.ChoiceField(choices=SettlementStatus.choices, read_only=True)
    tasks = TaskSerializer(many=True, read_only=True)
    checks = CheckSerializer(many=True, read_only=True)
    acceptances = AcceptanceSerializer(many=True, read_only=True)
    payments = PaymentSerializer(many=True, read_only=True)
    version = serializers.IntegerField(read_only=True, help_text="Send it back with a change (409 if stale).")

    def get_amount_paid(self, obj) -> str:
        return str(obj.amount_paid)

    def to_representation(self, instance):
        """The title and goal with the contact details typed in them masked for a reader who sees personal data
        masked."""
        return personal.shown_fields(self.context, super().to_representation(instance), "cooperation.project")


class CooperationAmendmentSerializer(Serializer):
    sequence = serializers.IntegerField(read_only=True)
    number = serializers.CharField(read_only=True, help_text="The agreement's number and the amendment's: HZ-2026-0001-A1.")
    previous_start = serializers.DateField(read_only=True)
    previous_end = serializers.DateField(read_only=True)
    start_date = serializers.DateField(read_only=True)
    end_date = serializers.DateField(read_only=True)
    effective_date = serializers.DateField(read_only=True)
    reason = serializers.CharField(read_only=True)
    signed_copy_name = serializers.CharField(read_only=True)
    created_by = serializers.IntegerField(source="created_by_id", read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    applied_at = serializers.DateTimeField(read_only=True, allow_null=True,
                                           help_text="When the agreement's term became this one; null while its "
                                                     "effective date is ahead.")  # fmt: skip
    state = serializers.ChoiceField(choices=STATES, read_only=True,
                                    help_text=STATE_HELP)  # fmt: skip
    lapsed_at = serializers.DateTimeField(read_only=True, allow_null=True,
                                          help_text="When it lapsed, never applied; null unless it did.")
    lapse_cause = serializers.ChoiceField(choices=LapseCause.choices, read_only=True, allow_blank=True)
    lapsed_by = serializers.CharField(read_only=True, help_text="The renewal's number when a renewal made it lapse.")
    lapsed_reason = serializers.CharField(source="lapse_reason", read_only=True, help_text=LAPSED_REASON_HELP)

    def to_representation(self, instance):
        """The reason with the contact details typed in it masked for a reader who sees personal data masked."""
        return personal.shown_fields(self.context, super().to_representation(instance), "cooperation.agreementamendment")


class CooperationAgreementSerializer(SignedTermFields, Serializer):
    id = serializers.IntegerField(read_only=True)
    number = serializers.CharField(read_only=True, help_text="HZ-YYYY-NNNN, per year, without gaps.")
    institution = serializers.IntegerField(source="institution_id", read_only=True)
    customer_name = serializers.CharField(source="institution.name", read_only=True)
    kind = serializers.ChoiceField(choices=AgreementType.choices, read_only=True)
    title = serializers.CharField(read_only=True)
    company_signer = serializers.CharField(read_only=True)
    customer_signer = serializers.CharField(read_only=True)
    start_date = serializers.DateField(read_only=True)
    end_date = serializers.DateField(read_only=True)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True, allow_null=True, help_text=YUAN)
    terms = serializers.CharField(read_only=True)
    payment_terms = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=AgreementStatus.choices, read_only=True)
    signed_date = serializers.DateField(read_only=True, allow_null=True)
    signed_copy_name = serializers.CharField(read_only=True)
    signed_copy_sha256 = serializers.CharField(read_only=True)
    owner = serializers.IntegerField(source="owner_id", read_only=True)
    team = serializers.IntegerField(source="team_id", read_only=True, allow_null=True)
    renewal_notified_at = serializers.DateTimeField(read_only=True, allow_null=True)
    renewal_notified_for = serializers.DateField(read_only=True, allow_null=True,
                                                 help_text="The end the renewal reminder sent named; null until one is "
                                                           "sent (again, after an amendment moved the end).")  # fmt: skip
    projects = serializers.SerializerMethodField()
    signed_start_date, signed_end_date = signed_term_fields()
    amendments = CooperationAmendmentSerializer(many=True, read_only=True,
                                                help_text="The amendments of its term (补充协议), oldest first: "
                                                          "`start_date` and `end_date` are the term in force (the latest one applied).")  # fmt: skip
    version = serializers.IntegerField(read_only=True, help_text="Send it back with a change (409 if stale).")

    def get_projects(self, obj) -> list[int]:
        return [p.pk for p in obj.projects.all()]

    def to_representation(self, instance):
        """The title, terms and payment terms with the contact details typed in them masked for a reader who sees
        personal data masked, as the agreement page shows them."""
        return personal.shown_fields(self.context, super().to_representation(instance), "cooperation.agreement")


class AgreementWriteSerializer(Serializer):
    institution = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID, help_text="The customer's id.")
    kind = optional(serializers.ChoiceField, choices=AgreementType.choices)
    title = optional(serializers.CharField, allow_blank=True, max_length=200)
    company_signer = optional(serializers.CharField, allow_blank=True, max_length=100)
    customer_signer = optional(serializers.CharField, allow_blank=True, max_length=100)
    start_date = optional(DateField)
    end_date = optional(DateField, help_text="Not before the start.")
    amount = optional(AmountField, help_text=YUAN)
    terms = optional(serializers.CharField, allow_blank=True, max_length=20000)
    payment_terms = optional(serializers.CharField, allow_blank=True, max_length=5000)
    owner = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID, help_text="A user's id; you by default.")
    team = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID)
    version = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID, help_text="Edits: the version you loaded.")


class SignSerializer(Serializer):
    signed_date = optional(DateField)
    signed_copy = serializers.FileField(required=False, help_text="PDF, PNG or JPEG, at most 20 MB.")
    version = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID)


class CooperationAmendmentWriteSerializer(Serializer):
    start_date = optional(DateField, help_text="The new start (the current one to keep it).")
    end_date = optional(DateField, help_text="The new end; not before the start.")
    effective_date = optional(DateField, help_text="The day the signed amendment takes effect; ahead of today at most the day after the current end (applied on its day).")
    reason = optional(serializers.CharField, allow_blank=True, max_length=2000, help_text="Why the term changes (required).")
    signed_copy = serializers.FileField(required=False, help_text="Optional: the signed amendment, PDF, PNG or JPEG, "
                                                                  "at most 20 MB.")  # fmt: skip
    version = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID, help_text="The agreement's version you loaded.")


class CooperationAmendmentCopySerializer(Serializer):
    signed_copy = serializers.FileField(help_text="The scanned signed amendment: PDF, PNG or JPEG, at most 20 MB.")


class CooperationVersionSerializer(Serializer):
    version = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID)


class CooperationTerminateSerializer(Serializer):
    version = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID)
    confirm_lapse = serializers.BooleanField(
        required=False, default=False,
        help_text="true: terminate even though amendments of the term waiting for their effective date lapse with it "
                  "(never applied). Without it such a termination is refused with 400, `lapsing` listing them.")  # fmt: skip


class ProjectWriteSerializer(Serializer):
    agreement = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID, help_text="Creation only.")
    title = optional(serializers.CharField, allow_blank=True, max_length=200)
    goal = optional(serializers.CharField, allow_blank=True, max_length=5000)
    responsible = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID, help_text="Required: a user's id.")
    start_date = optional(DateField)
    end_date = optional(DateField)
    budget = optional(AmountField, help_text=YUAN)
    version = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID)


class TaskWriteSerializer(Serializer):
    title = optional(serializers.CharField, allow_blank=True, max_length=200)
    owner = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID)
    deadline = optional(DateField)


class TaskProgressSerializer(Serializer):
    task = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    status = optional(serializers.ChoiceField, choices=TaskStatus.choices)
    progress = optional(serializers.IntegerField, min_value=0, max_value=100)
    version = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID,
                   help_text="The task's version you loaded (required): 409 if someone reported since.")


class CheckWriteSerializer(Serializer):
    checked_on = optional(DateField)
    progress = optional(serializers.IntegerField)
    problems = optional(serializers.CharField, allow_blank=True, max_length=5000)
    measures = optional(serializers.CharField, allow_blank=True, max_length=5000)


class AcceptanceWriteSerializer(Serializer):
    accepted_on = optional(DateField)
    result = optional(serializers.ChoiceField, choices=AcceptanceResult.choices)
    standards = optional(serializers.CharField, allow_blank=True, max_length=5000)
    remarks = optional(serializers.CharField, allow_blank=True, max_length=5000)
    accepted_by = optional(serializers.CharField, allow_blank=True, max_length=100)
    attachment = serializers.FileField(required=False, help_text="PDF, PNG or JPEG, at most 20 MB; optional.")


class DueWriteSerializer(Serializer):
    amount_due = optional(AmountField, help_text=YUAN)
    settlement_due_date = optional(DateField)
    version = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID)


class PaymentWriteSerializer(Serializer):
    paid_on = optional(DateField)
    amount = optional(AmountField, help_text=YUAN)
    invoice_number = optional(serializers.CharField, allow_blank=True, max_length=50)


def _body(serializer_class, request) -> dict:
    form = serializer_class(data=request.data)
    form.is_valid(raise_exception=True)
    return {k: v for k, v in form.validated_data.items()}


class _CooperationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                          mixins.UpdateModelMixin, viewsets.GenericViewSet):  # fmt: skip
    """What the agreements' and the projects' viewsets share: a record answered as read again through the
    scoped queryset (`serializer_class`, with its version as ETag), and the list and detail reads."""

    permission_classes = [HasCapability, NoWritesForReadOnlyRoles]  # the auditor reads: a write is refused first

    def _answer(self, obj, code=status.HTTP_200_OK):
        obj = self.get_queryset().get(pk=obj.pk)
        answer = self.serializer_class(obj, context=self.get_serializer_context())  # its reader: free text masked or not
        return versioned(Response(answer.data, status=code), obj)

    @extend_schema(tags=TAGS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(tags=TAGS)
    def retrieve(self, request, *args, **kwargs):
        return self._answer(self.get_object())


class AgreementFilter(django_filters.FilterSet):
    institution = IntegerFilter(field_name="institution_id", min_value=1, max_value=MAX_ID, label="The customer's id.")
    kind = django_filters.ChoiceFilter(choices=AgreementType.choices)
    status = django_filters.ChoiceFilter(choices=AgreementStatus.choices)
    owner = IntegerFilter(field_name="owner_id", min_value=1, max_value=MAX_ID, label="The responsible user's id.")
    number = django_filters.CharFilter(field_name="number", lookup_expr="icontains")

    class Meta:
        model = Agreement
        fields: list[str] = []


class AgreementViewSet(_CooperationViewSet):
    """Cooperation agreements (合作协议), numbered HZ-YYYY-NNNN. Reading: "See cooperation agreements and projects"
    (leadership, analysts and auditors all; the others those they, their teams or their customers' owners look
    after). Writing: "Record cooperation agreements and run their projects", within that scope. Never deleted:
    terminated or expired ones stay archived."""

    queryset = Agreement.objects.none()
    serializer_class = CooperationAgreementSerializer
    required_caps = {"*": Cap.READ_COOPERATION, **WRITE,
                     **{a: Cap.MANAGE_COOPERATION for a in ("sign", "in_force", "terminate", "amendments",
                                                              "amendment_attach_copy")}}  # fmt: skip
    filterset_class = AgreementFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return (services.agreements_for(self.request.user).select_related("institution")
                .prefetch_related(Prefetch("projects", Project.objects.only("id", "agreement_id")), "amendments")
                .order_by("-number"))  # fmt: skip

    @extend_schema(tags=TAGS, request=AgreementWriteSerializer,
                   responses={201: CooperationAgreementSerializer, 400: ERRORS, 403: DENIED},
                   description="Record an agreement (a draft, numbered at once); audited.")  # fmt: skip
    def create(self, request, *args, **kwargs):
        data = _body(AgreementWriteSerializer, request)
        data.pop("version", None)
        return self._answer(services.create_agreement(request.user, data), status.HTTP_201_CREATED)

    @extend_schema(tags=TAGS, request=AgreementWriteSerializer,
                   responses={200: CooperationAgreementSerializer, 400: ERRORS, 403: DENIED, 409: STALE},
                   description="Change a draft agreement; once signed only `owner` and `team`. Send `version`.")  # fmt: skip
    def update(self, request, *args, **kwargs):
        agreement = self.get_object()
        data = _body(AgreementWriteSerializer, request)
        version = expected_version(request, data.pop("version", None))
        data = {k: v for k, v in data.items() if k in request.data}
        return self._answer(services.update_agreement(request.user, agreement, data, version))

    @extend_schema(tags=TAGS, request=AgreementWriteSerializer)
    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, **kwargs)

    @extend_schema(tags=TAGS, request={"multipart/form-data": SignSerializer},
                   responses={200: CooperationAgreementSerializer, 400: ERRORS, 403: DENIED, 409: STALE},
                   description="Record the signing: `signed_date` and the `signed_copy` (PDF, PNG or JPEG, at most "
                               "20 MB, its type read from the content). A draft becomes signed.")  # fmt: skip
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def sign(self, request, pk=None):
        agreement = self.get_object()
        data = dict(uploads.limited_form(request, SignSerializer).validated_data)
        version = expected_version(request, data.get("version"))
        return self._answer(services.record_signed(request.user, agreement, signed_date=data.get("signed_date"),
                                                   upload=data.get("signed_copy"), version=version))  # fmt: skip

    @extend_schema(tags=TAGS, request=CooperationVersionSerializer,
                   responses={200: CooperationAgreementSerializer, 400: ERRORS, 403: DENIED, 409: STALE},
                   description="A signed agreement comes into force.")  # fmt: skip
    @action(detail=True, methods=["post"], url_path="in-force")
    def in_force(self, request, pk=None):
        agreement = self.get_object()
        version = expected_version(request, _body(CooperationVersionSerializer, request).get("version"))
        return self._answer(services.put_in_force(request.user, agreement, version))

    @extend_schema(tags=TAGS, request=CooperationTerminateSerializer,
                   responses={200: CooperationAgreementSerializer,
                              400: OpenApiResponse(description=(
                                  "Per-field messages, in the reader's language. An amendment of the term waiting "
                                  "for its effective date would lapse and `confirm_lapse` was not true: "
                                  "`confirm_lapse` has a message per amendment (its number and effective date) and "
                                  "what to send, and `lapsing` lists the amendments as the agreement's `amendments` "
                                  "shows them (state `waiting`); nothing was changed.")),
                              403: DENIED, 409: STALE},
                   description="End the agreement early (its projects closed first); it stays archived. An amendment "
                               "of its term waiting for its effective date lapses with it, never applied: send "
                               "`confirm_lapse: true` to terminate all the same (without it the termination is "
                               "refused with 400 listing them, as the page warns beside its button). The answer is the "
                               "agreement, its lapsed amendments with `state: \"lapsed\"`.")  # fmt: skip
    @action(detail=True, methods=["post"])
    def terminate(self, request, pk=None):
        agreement = self.get_object()
        body = _body(CooperationTerminateSerializer, request)
        version = expected_version(request, body.get("version"))
        try:
            done = services.terminate(request.user, agreement, version, confirm_lapse=body.get("confirm_lapse", False))
        except LapseNotConfirmed as e:
            lapsing = CooperationAmendmentSerializer(e.lapsing, many=True, context=self.get_serializer_context())
            return Response({**e.message_dict, "lapsing": lapsing.data}, status=status.HTTP_400_BAD_REQUEST)
        return self._answer(done)


    @extend_schema(tags=TAGS, request={"multipart/form-data": CooperationAmendmentWriteSerializer,
                                       "application/json": CooperationAmendmentWriteSerializer},
                   responses={201: CooperationAgreementSerializer, 400: ERRORS, 403: DENIED, 409: STALE},
                   description="Record an amendment (补充协议) of a signed or in-force agreement's term: the new "
                               "`start_date` and `end_date`, the `reason` (required), the `effective_date` (not before the "
                               "signing; ahead of today, applied on its day by the worker, one at a time), an optional `signed_copy` (multipart) and the "
                               "`version` you loaded (or If-Match). The agreement's term becomes the new one; a renewal "
                               "reminder sent for the end before goes out again before the new end; its text keeps the "
                               "term signed, the amendment has its own (…/amendments/{sequence}/pdf/). Audited.")  # fmt: skip
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser, JSONParser])
    def amendments(self, request, pk=None):
        agreement = self.get_object()
        data = dict(uploads.limited_form(request, CooperationAmendmentWriteSerializer).validated_data)
        version = expected_version(request, data.pop("version", None))
        services.amend_term(request.user, agreement, data, version)
        return self._answer(agreement, status.HTTP_201_CREATED)

    def _amendment(self, sequence):
        return amendment_of(self.get_object(), sequence)

    @extend_schema(tags=TAGS, parameters=[OpenApiParameter("sequence", int, OpenApiParameter.PATH)],
                   responses={(200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The amendment."),
                              404: OpenApiResponse(description="No such amendment.")},
                   description="An amendment's bilingual text, made from its record; the download is audited.")  # fmt: skip
    @action(detail=True, methods=["get"], url_path=r"amendments/(?P<sequence>[0-9]{1,4})/pdf", pagination_class=None,
            filter_backends=[], content_negotiation_class=FileNegotiation)  # fmt: skip
    def amendment_pdf(self, request, pk=None, sequence=None):
        amendment = self._amendment(sequence)
        data = services.amendment_text(amendment)
        audit.record(AuditEntry.Action.EXPORT, amendment, user=request.user, format="PDF", purpose="api")
        response = HttpResponse(data, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{amendment.number}.pdf"'
        response["Cache-Control"] = "private, no-store"
        return response

    @extend_schema(tags=TAGS, parameters=[OpenApiParameter("sequence", int, OpenApiParameter.PATH)],
                   responses={(200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The signed amendment."),
                              (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The signed amendment."),
                              (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="The signed amendment."),
                              404: OpenApiResponse(description="No such amendment, or no signed copy was uploaded."),
                              409: OpenApiResponse(description="The signed copy is missing from the storage or was altered.")},
                   description="An amendment's signed copy as uploaded, checked against its SHA-256; audited.")  # fmt: skip
    @action(detail=True, methods=["get"], url_path=r"amendments/(?P<sequence>[0-9]{1,4})/signed-copy",
            pagination_class=None, filter_backends=[], content_negotiation_class=FileNegotiation)  # fmt: skip
    def amendment_signed_copy(self, request, pk=None, sequence=None):
        from pharmacrm.keyaccounts import services as ka
        from pharmacrm.keyaccounts.views_programme import amendment_copy_response

        try:
            return amendment_copy_response(self._amendment(sequence), request.user, services.files_dir(), purpose="api")
        except ka.DocumentUnavailable as e:
            return Response({"detail": str(e)}, status=409)


    @extend_schema(tags=TAGS, parameters=[OpenApiParameter("sequence", int, OpenApiParameter.PATH)],
                   request={"multipart/form-data": CooperationAmendmentCopySerializer},
                   responses={200: CooperationAgreementSerializer, 400: ERRORS, 403: DENIED,
                              404: OpenApiResponse(description="No such amendment.")},
                   description="Upload the signed copy of an amendment recorded without one (`signed_copy`: PDF, PNG "
                               "or JPEG, at most 20 MB, refused before it is read when the request announces more): "
                               "those who may amend the agreement. Once only: a copy uploaded already is never "
                               "replaced (400 under `signed_copy`). Audited with its SHA-256.")  # fmt: skip
    @action(detail=True, methods=["post"], url_path=r"amendments/(?P<sequence>[0-9]{1,4})/signed-copy/upload",
            parser_classes=[MultiPartParser, FormParser])  # fmt: skip
    def amendment_attach_copy(self, request, pk=None, sequence=None):
        from pharmacrm.core import access

        amendment = self._amendment(sequence)
        access.require_agreement_term(request.user, amendment.agreement)  # refused before the upload is read
        form = uploads.limited_form(request, CooperationAmendmentCopySerializer)
        services.attach_amendment_copy(request.user, amendment, form.validated_data["signed_copy"])
        return self._answer(amendment.agreement)


class ProjectFilter(django_filters.FilterSet):
    agreement = IntegerFilter(field_name="agreement_id", min_value=1, max_value=MAX_ID, label="The agreement's id.")
    status = django_filters.ChoiceFilter(choices=ProjectStatus.choices)
    responsible = IntegerFilter(field_name="responsible_id", min_value=1, max_value=MAX_ID)

    class Meta:
        model = Project
        fields: list[str] = []


PROJECT_ACTIONS = ("start", "close", "tasks", "task_progress", "checks", "acceptances", "amount_due", "payments")


class ProjectViewSet(_CooperationViewSet):
    """Cooperation projects (合作项目) under an agreement: plan, tasks, checks, acceptance and settlement. Scope and
    capabilities as the agreements'; a task's owner may also report its progress (task_progress)."""

    queryset = Project.objects.none()
    serializer_class = ProjectSerializer
    required_caps = {"*": Cap.READ_COOPERATION, **WRITE,
                     **{a: Cap.MANAGE_COOPERATION for a in PROJECT_ACTIONS if a != "task_progress"}}  # fmt: skip
    filterset_class = ProjectFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return (services.projects_for(self.request.user).select_related("agreement")
                .prefetch_related("tasks", "checks", "acceptances", "payments").order_by("-start_date", "-id"))  # fmt: skip

    @extend_schema(tags=TAGS, request=ProjectWriteSerializer,
                   responses={201: ProjectSerializer, 400: ERRORS, 403: DENIED},
                   description="Start planning a project under a signed agreement; `responsible` is required.")  # fmt: skip
    def create(self, request, *args, **kwargs):
        data = _body(ProjectWriteSerializer, request)
        agreement = services.agreements_for(request.user).filter(pk=data.pop("agreement", None) or 0).first()
        if agreement is None:
            raise serializers.ValidationError({"agreement": [services.no_agreement_message()]})
        return self._answer(services.create_project(request.user, agreement, data), status.HTTP_201_CREATED)

    @extend_schema(tags=TAGS, request=ProjectWriteSerializer,
                   responses={200: ProjectSerializer, 400: ERRORS, 403: DENIED, 409: STALE})  # fmt: skip
    def update(self, request, *args, **kwargs):
        project = self.get_object()
        data = _body(ProjectWriteSerializer, request)
        data.pop("agreement", None)
        version = expected_version(request, data.pop("version", None))
        data = {k: v for k, v in data.items() if k in request.data}
        return self._answer(services.update_project(request.user, project, data, version))

    @extend_schema(tags=TAGS, request=ProjectWriteSerializer)
    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, **kwargs)

    def _versioned_step(self, request, step):
        project = self.get_object()
        version = expected_version(request, _body(CooperationVersionSerializer, request).get("version"))
        step(request.user, project, version)
        return self._answer(project)

    @extend_schema(tags=TAGS, request=CooperationVersionSerializer, responses={200: ProjectSerializer, 400: ERRORS, 409: STALE},
                   description="Planning → running.")  # fmt: skip
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return self._versioned_step(request, services.start_project)

    @extend_schema(tags=TAGS, request=CooperationVersionSerializer, responses={200: ProjectSerializer, 400: ERRORS, 409: STALE},
                   description="Close the project: only once it passed its acceptance and is settled.")  # fmt: skip
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        return self._versioned_step(request, services.close_project)

    def _add(self, request, serializer_class, step):
        project = self.get_object()
        step(request.user, project, _body(serializer_class, request))
        return self._answer(project, status.HTTP_201_CREATED)

    @extend_schema(tags=TAGS, request=TaskWriteSerializer, responses={201: ProjectSerializer, 400: ERRORS})
    @action(detail=True, methods=["post"])
    def tasks(self, request, pk=None):
        return self._add(request, TaskWriteSerializer, services.add_task)

    @extend_schema(tags=TAGS, request=TaskProgressSerializer, responses={200: ProjectSerializer, 400: ERRORS, 409: STALE},
                   description="A task's status and progress: the project's managers or the task's owner. Send the "
                   "task's `version` (not the project's If-Match).")  # fmt: skip
    @action(detail=True, methods=["post"], url_path="task-progress")
    def task_progress(self, request, pk=None):
        project = self.get_object()
        data = _body(TaskProgressSerializer, request)
        task = Task.objects.filter(project=project, pk=data.pop("task")).first()
        if task is None:
            raise serializers.ValidationError({"task": [services.no_task_message()]})
        version = data.pop("version", None)
        if version is None:  # the body's field only: an If-Match here would be the project's version, not the task's
            raise serializers.ValidationError({"version": [services.task_version_required()]})
        services.update_task(request.user, task, {k: v for k, v in data.items() if v is not None}, version)
        return self._answer(project)

    @extend_schema(tags=TAGS, request=CheckWriteSerializer, responses={201: ProjectSerializer, 400: ERRORS})
    @action(detail=True, methods=["post"])
    def checks(self, request, pk=None):
        return self._add(request, CheckWriteSerializer, services.add_check)

    @extend_schema(tags=TAGS, request={"multipart/form-data": AcceptanceWriteSerializer},
                   responses={201: ProjectSerializer, 400: ERRORS},
                   description="An acceptance: passed or passed with remarks → accepted; failed → still running.")  # fmt: skip
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser, JSONParser])
    def acceptances(self, request, pk=None):
        project = self.get_object()
        data = _body(AcceptanceWriteSerializer, request)
        services.record_acceptance(request.user, project, data, data.pop("attachment", None))
        return self._answer(project, status.HTTP_201_CREATED)

    @extend_schema(tags=TAGS, request=DueWriteSerializer, responses={200: ProjectSerializer, 400: ERRORS, 409: STALE},
                   description="The amount due for the settlement and its due date.")  # fmt: skip
    @action(detail=True, methods=["post"], url_path="amount-due")
    def amount_due(self, request, pk=None):
        project = self.get_object()
        data = _body(DueWriteSerializer, request)
        version = expected_version(request, data.pop("version", None))
        services.set_amount_due(request.user, project, data, version)
        return self._answer(project)

    @extend_schema(tags=TAGS, request=PaymentWriteSerializer, responses={201: ProjectSerializer, 400: ERRORS},
                   description="A payment towards the amount due (never more than is still due).")  # fmt: skip
    @action(detail=True, methods=["post"])
    def payments(self, request, pk=None):
        return self._add(request, PaymentWriteSerializer, services.add_payment)


def register(router) -> None:
    router.register("cooperation/agreements", AgreementViewSet, basename="cooperation-agreement")
    router.register("cooperation/projects", ProjectViewSet, basename="cooperation-project")
