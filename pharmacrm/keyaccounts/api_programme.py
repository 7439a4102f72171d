"""REST API of the key-account programme (/api/v1/keyaccounts/…): key accounts (read only), proposals with
their opinions and signed decisions, service plans with their items, agreements and their PDF. Reads are
scoped by keyaccounts.services (accounts_for, proposals_for); every write goes through the services, whose
ValidationErrors come back as JSON per field (a wrong one-time code under `otp_code`)."""

from __future__ import annotations

from contextlib import contextmanager

import django_filters
from django.db.models import Prefetch
from django.http import HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
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
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from pharmacrm.core import access, audit, personal, uploads, viewsets
from pharmacrm.core.amendments import (
    LAPSED_REASON_HELP,
    STATE_HELP,
    STATES,
    SignedTermFields,
    amendment_of,
    signed_term_fields,
)
from pharmacrm.core.api_utils import (
    MAX_INT32,
    DateField,
    FileNegotiation,
    HasCapability,
    IntegerFilter,
    ModelSerializer,
    NoWritesForReadOnlyRoles,
    Serializer,
    TypedIntegerField,
    clean_text,
    expected_version,
)
from pharmacrm.core.models import AuditEntry, User
from pharmacrm.core.roles import Cap

from . import services
from .choices import (
    AccountStatus,
    AgreementStatus,
    Department,
    ItemStatus,
    MeetingCadence,
    Opinion,
    PlanArea,
    PlanStatus,
    ProposalKind,
    ProposalStatus,
)
from .models import (
    Agreement,
    AgreementAmendment,
    KeyAccount,
    PlanItem,
    Proposal,
    Review,
    ServicePlan,
    TeamMember,
)

urlpatterns: list = []
TAGS = ["key accounts"]
ERRORS = OpenApiResponse(description="Per-field messages (a wrong or used one-time code under otp_code).")
DENIED = OpenApiResponse(description="Not allowed (e.g. deciding on one's own proposal).")
MAX_ID = 2**63 - 1


# --- list filters: a client asking for one account's plans got every account's, the parameter ignored ----


class ProposalFilter(django_filters.FilterSet):
    institution = IntegerFilter(field_name="institution_id", min_value=1, max_value=MAX_ID,
                                              label="The customer (institution id).")  # fmt: skip
    account = IntegerFilter(field_name="account_id", min_value=1, max_value=MAX_ID,
                                          label="The key account (de-listing proposals).")  # fmt: skip
    kind = django_filters.ChoiceFilter(choices=ProposalKind.choices)
    status = django_filters.ChoiceFilter(choices=ProposalStatus.choices)

    class Meta:
        model = Proposal
        fields: list[str] = []


class PlanFilter(django_filters.FilterSet):
    account = IntegerFilter(field_name="account_id", min_value=1, max_value=MAX_ID,
                                          label="The key account's id.")  # fmt: skip
    status = django_filters.ChoiceFilter(choices=PlanStatus.choices)

    class Meta:
        model = ServicePlan
        fields: list[str] = []


class AgreementFilter(django_filters.FilterSet):
    account = IntegerFilter(field_name="account_id", min_value=1, max_value=MAX_ID,
                                          label="The key account's id.")  # fmt: skip
    status = django_filters.ChoiceFilter(choices=AgreementStatus.choices)

    class Meta:
        model = Agreement
        fields: list[str] = []


def register(router) -> None:
    """After the identification endpoints: /keyaccounts/candidates/ is not an account id."""
    router.register("keyaccounts/proposals", ProposalViewSet, basename="ka-proposal")
    router.register("keyaccounts/plans", PlanViewSet, basename="ka-plan")
    router.register("keyaccounts/plan-items", PlanItemViewSet, basename="ka-plan-item")
    router.register("keyaccounts/agreements", AgreementViewSet, basename="ka-agreement")
    # the team, meetings, trials, evaluations, scorecards and incentives (api_ops imports this module)
    from . import api_ops

    api_ops.register(router)
    router.register("keyaccounts", KeyAccountViewSet, basename="ka-account")


# --- serializers -----------------------------------------------------------------------------------------


def _enum(choices, component: str):
    """A choice field with its own named enum in the schema ("status" and "kind" mean different things on
    different resources)."""

    def __init__(self, **kwargs):
        serializers.ChoiceField.__init__(self, choices=choices.choices, **kwargs)

    field = type(f"{component}Field", (serializers.ChoiceField,), {"__init__": __init__})
    return extend_schema_field({"type": "string", "enum": list(choices.values)}, component_name=component)(
        field
    )


AccountStatusField = _enum(AccountStatus, "KeyAccountStatus")
ProposalStatusField = _enum(ProposalStatus, "ProposalStatus")
ProposalKindField = _enum(ProposalKind, "ProposalKind")
PlanStatusField = _enum(PlanStatus, "ServicePlanStatus")
ItemStatusField = _enum(ItemStatus, "PlanItemStatus")
AgreementStatusField = _enum(AgreementStatus, "AgreementStatus")
MeetingCadenceField = _enum(MeetingCadence, "MeetingCadence")


class MemberSerializer(ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    name = serializers.CharField(source="user.__str__", read_only=True)

    class Meta:
        model = TeamMember
        fields = ["user", "username", "name", "role", "since"]


class KeyAccountSerializer(ModelSerializer):
    institution_name = serializers.CharField(source="institution.name", read_only=True)
    status = AccountStatusField(read_only=True)
    members = MemberSerializer(many=True, read_only=True)
    plan_in_force = serializers.SerializerMethodField(help_text="The id of the approved plan, or null.")
    meeting_cadence = MeetingCadenceField(
        read_only=True, help_text="How often a service meeting is due (default quarterly); PATCH to change it.")
    last_meeting = serializers.SerializerMethodField(
        help_text="The day (China time) of the last service meeting held since the listing, or null.")
    next_meeting_due = serializers.SerializerMethodField(
        help_text="The day the next service meeting is due: the last meeting's day (the listing day before the "
                  "first) plus the cadence, a month-end day when the month is shorter; null for a de-listed file.")
    meeting_due_soon = serializers.SerializerMethodField(
        help_text=f"The next meeting is due within {services.MEETING_NOTICE_DAYS} days (the team is reminded).")
    meeting_overdue = serializers.SerializerMethodField(
        help_text="The due day has ended without a meeting (the team is told once).")

    class Meta:
        model = KeyAccount
        fields = ["id", "number", "institution", "institution_name", "status", "team", "listed_at", "delisted_at",
                  "previous_tier", "members", "plan_in_force", "meeting_cadence", "last_meeting", "next_meeting_due",
                  "meeting_due_soon", "meeting_overdue", "version"]  # fmt: skip

    def get_plan_in_force(self, obj) -> int | None:
        plan = next((p for p in obj.plans.all() if p.status == "approved"), None)
        return plan.pk if plan else None

    def _due(self, obj) -> services.MeetingDue:
        dues = self.context.get("meeting_dues")  # the list's, worked out for the page in one query
        if dues is None or obj.pk not in dues:
            dues = self.context["meeting_dues"] = {**(dues or {}), obj.pk: services.meeting_due(obj)}
        return dues[obj.pk]

    @extend_schema_field(OpenApiTypes.DATE)
    def get_last_meeting(self, obj):
        return self._due(obj).last

    @extend_schema_field(OpenApiTypes.DATE)
    def get_next_meeting_due(self, obj):
        return self._due(obj).due

    def get_meeting_due_soon(self, obj) -> bool:
        return self._due(obj).due_soon

    def get_meeting_overdue(self, obj) -> bool:
        return self._due(obj).overdue


class ReviewSerializer(ModelSerializer):
    reviewer_name = serializers.CharField(source="reviewer.__str__", read_only=True)

    class Meta:
        model = Review
        fields = ["reviewer", "reviewer_name", "department", "opinion", "comment", "at"]

    def to_representation(self, instance):
        """The comment with the contact details typed in it masked for a reader who sees personal data masked."""
        return personal.shown_fields(self.context, super().to_representation(instance), "keyaccounts.review")


class ProposalSerializer(ModelSerializer):
    institution_name = serializers.CharField(source="institution.name", read_only=True)
    kind = ProposalKindField(read_only=True)
    status = ProposalStatusField(read_only=True)
    reviews = ReviewSerializer(many=True, read_only=True)

    class Meta:
        model = Proposal
        fields = ["id", "number", "kind", "institution", "institution_name", "account", "status", "reason", "score",
                  "components", "proposed_by", "proposed_at", "submitted_at", "submitted_by", "decided_by",
                  "decided_at", "decision_comment", "signature", "reviews", "version"]  # fmt: skip
        read_only_fields = fields

    def to_representation(self, instance):
        data = personal.shown_fields(self.context, super().to_representation(instance), "keyaccounts.proposal")
        request = self.context.get("request")
        if request is None or not access.can(request.user, Cap.VIEW_PURCHASES):
            # the explanation's details show purchase figures: only for those who may see purchases
            data["components"] = [{k: v for k, v in c.items() if k != "detail"} for c in data.get("components") or []]
        return data


class ProposalCreateSerializer(Serializer):
    institution = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    kind = ProposalKindField(default=ProposalKind.LIST)
    reason = serializers.CharField(max_length=20000)


class OpinionSerializer(Serializer):
    opinion = serializers.ChoiceField(choices=Opinion.choices)
    comment = serializers.CharField(max_length=20000, required=False, allow_blank=True, default="")
    department = serializers.ChoiceField(choices=Department.choices, required=False,
                                         help_text="Default: the first department your roles speak for.")  # fmt: skip


class VersionSerializer(Serializer):
    version = serializers.IntegerField(min_value=1, max_value=MAX_INT32, required=False,
                                       help_text="The version you loaded (required here or as an If-Match header); "
                                                 "409 with current_version if someone changed it since.")  # fmt: skip


class CadenceSerializer(VersionSerializer):
    meeting_cadence = MeetingCadenceField(
        error_messages={"invalid_choice": gettext_lazy(
            "“{input}” is not a meeting cadence: send monthly, bimonthly, quarterly or half_yearly.")},
        help_text="How often a service meeting is due: monthly, bimonthly, quarterly or half_yearly.",
    )  # fmt: skip


# an account as GET answers it may be sent back with its cadence changed: what only GET shows is ignored
CadenceSerializer.echoes = KeyAccountSerializer


class PlanWriteSerializer(VersionSerializer):
    account = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False,
                                       help_text="The key account's id (when starting a draft).")  # fmt: skip
    goals = serializers.CharField(max_length=20000, required=False, allow_blank=True, default="",
                                  help_text="The customer's needs and goals.")  # fmt: skip
    valid_from = DateField(required=False, allow_null=True, default=None)
    valid_to = DateField(required=False, allow_null=True, default=None)


class DecisionSerializer(VersionSerializer):
    approve = serializers.BooleanField()
    comment = serializers.CharField(max_length=20000, required=False, allow_blank=True, default="")
    otp_code = serializers.CharField(max_length=10, allow_blank=True,
                                     help_text="The current code of your authenticator app: your signature.")  # fmt: skip


OVERDUE_HELP = ("An open item of the plan in force whose deadline day has ended (China time; calendar days, as its "
                "overdue alert counts them), as the key-account page flags it. A de-listed account's: only one that "
                "fell due while it was served. Items of drafts and superseded versions are never overdue.")


class PlanItemSerializer(ModelSerializer):
    owner_name = serializers.CharField(source="owner.__str__", read_only=True)
    status = ItemStatusField(read_only=True)
    overdue = serializers.SerializerMethodField(help_text=OVERDUE_HELP)

    class Meta:
        model = PlanItem
        fields = ["id", "plan", "area", "title", "standard", "owner", "owner_name", "deadline", "status", "progress",
                  "progress_note", "completed_at", "overdue", "version"]  # fmt: skip
        read_only_fields = ["status", "progress", "progress_note", "completed_at", "overdue", "version"]

    def to_representation(self, instance):
        """As stored, with the contact details typed in its free text masked for a reader who sees personal data
        masked (personal.FREE_TEXT_OF), as the key-account pages show it."""
        return personal.shown_fields(self.context, super().to_representation(instance), "keyaccounts.planitem")

    def get_overdue(self, obj) -> bool:
        return services.item_overdue(obj)


class PlanItemWriteSerializer(Serializer):
    plan = serializers.PrimaryKeyRelatedField(queryset=ServicePlan.objects.all(), required=False)
    area = serializers.ChoiceField(choices=PlanArea.choices, required=False)
    title = serializers.CharField(max_length=200, required=False)
    standard = serializers.CharField(max_length=20000, required=False)
    owner = serializers.PrimaryKeyRelatedField(queryset=User.objects.filter(is_active=True), required=False)
    deadline = DateField(required=False)
    version = serializers.IntegerField(min_value=1, max_value=MAX_INT32, required=False)


class ProgressSerializer(VersionSerializer):
    status = ItemStatusField()
    progress = TypedIntegerField(min_value=0, max_value=100, required=False)
    note = serializers.CharField(max_length=20000, required=False, allow_blank=True, default="")


class PlanSerializer(ModelSerializer):
    items = PlanItemSerializer(many=True, read_only=True)
    status = PlanStatusField(read_only=True)

    class Meta:
        model = ServicePlan
        fields = ["id", "account", "version_number", "status", "goals", "valid_from", "valid_to", "created_by",
                  "created_at", "submitted_at", "decided_by", "decided_at", "decision_comment", "signature", "items",
                  "version"]  # fmt: skip
        read_only_fields = fields

    def to_representation(self, instance):
        """As stored, with the contact details typed in its free text masked for a reader who sees personal data
        masked (personal.FREE_TEXT_OF), as the key-account pages show it."""
        return personal.shown_fields(self.context, super().to_representation(instance), "keyaccounts.serviceplan")


# A plan or an item as GET answers it may be sent back with a field changed: what only GET shows is ignored.
PlanWriteSerializer.echoes = PlanSerializer
PlanItemWriteSerializer.echoes = PlanItemSerializer


class AmendmentSerializer(ModelSerializer):
    number = serializers.CharField(read_only=True, help_text="The agreement's number and the amendment's: AG-2026-0001-A1.")
    state = serializers.ChoiceField(choices=STATES, read_only=True,
                                    help_text=STATE_HELP)  # fmt: skip
    lapsed_reason = serializers.CharField(source="lapse_reason", read_only=True, help_text=LAPSED_REASON_HELP)

    class Meta:
        model = AgreementAmendment
        fields = ["sequence", "number", "previous_start", "previous_end", "start_date", "end_date", "effective_date",
                  "reason", "signed_copy_name", "document_sha256", "created_by", "created_at", "applied_at", "state",
                  "lapsed_at", "lapse_cause", "lapsed_by", "lapsed_reason"]  # fmt: skip
        read_only_fields = fields

    def to_representation(self, instance):
        """The reason with the contact details typed in it masked for a reader who sees personal data masked, as the
        key-account page shows it."""
        return personal.shown_fields(self.context, super().to_representation(instance),
                                     "keyaccounts.agreementamendment")  # fmt: skip


class AgreementSerializer(SignedTermFields, ModelSerializer):
    institution_name = serializers.CharField(source="account.institution.name", read_only=True)
    status = AgreementStatusField(read_only=True)
    outside_plan_validity = serializers.BooleanField(
        read_only=True,
        help_text="The term starts before its plan's validity or runs past it (an agreement generated before the term "
        "rule): approve a new plan version whose validity covers the term.",
    )
    signed_start_date, signed_end_date = signed_term_fields()
    amendments = AmendmentSerializer(many=True, read_only=True,
                                     help_text="The amendments of its term (补充协议), oldest first: `start_date` and "
                                               "`end_date` are the latest one's.")  # fmt: skip

    class Meta:
        model = Agreement
        fields = ["id", "number", "account", "institution_name", "plan", "status", "start_date", "end_date",
                  "signed_start_date", "signed_end_date", "signed_date", "signed_copy_name", "renewal_notice_days",
                  "created_at", "issued_at", "document_sha256", "outside_plan_validity", "amendments",
                  "version"]  # fmt: skip
        read_only_fields = fields



FIELD_ERRORS = OpenApiResponse(description="Messages per field, in the request's language (Accept-Language).")
NOT_YOURS = OpenApiResponse(description="Only the account's managers and project manager (reason in `detail`).")


class AgreementCreateSerializer(Serializer):
    account = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="The key account's id.")
    start_date = DateField()
    end_date = DateField()
    renewal_notice_days = TypedIntegerField(min_value=0, max_value=365, default=60,
                                           help_text="Remind of the renewal this many days before the end.")  # fmt: skip


class TermSerializer(VersionSerializer):
    start_date = DateField(required=False, help_text="The corrected start (left out: as it is).")
    end_date = DateField(required=False, help_text="The corrected end (left out: as it is).")


class AmendmentWriteSerializer(VersionSerializer):
    start_date = DateField(help_text="The new start (the current one to keep it).")
    end_date = DateField(help_text="The new end.")
    effective_date = DateField(help_text="The day the signed amendment takes effect; ahead of today at most the day after the current end (applied on its day).")
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="",
                                   help_text="Why the term changes (required).")  # fmt: skip
    signed_copy = serializers.FileField(required=False, help_text="Optional: the scanned signed amendment, PDF, PNG or "
                                                                  "JPEG, at most 20 MB.")  # fmt: skip


class AmendmentCopySerializer(Serializer):
    signed_copy = serializers.FileField(help_text="The scanned signed amendment: PDF, PNG or JPEG, at most 20 MB.")


class SignedSerializer(VersionSerializer):
    signed_date = DateField(help_text="The day it was signed (not in the future).")
    signed_copy = serializers.FileField(required=False,
                                        help_text="The scanned signed agreement: PDF, PNG or JPEG, at most 20 MB.")  # fmt: skip


def _text(data: dict) -> dict:
    return {k: clean_text(v) if isinstance(v, str) else v for k, v in data.items()}


def _version_sent(request, body_version: int | None) -> int:
    """The version the client loaded (the body's `version` or an If-Match header). Without one the service refuses
    the change with "send the version you loaded", after its permission checks (a 403 comes first)."""
    try:
        return expected_version(request, body_version)
    except serializers.ValidationError:
        return services.VERSION_NOT_SENT


@contextmanager
def _versioned():
    """A change made on a version that is no longer current is a conflict: 409 with current_version, as for
    institutions and people (the pages show the services' message under the form instead)."""
    from pharmacrm.customers.services import ConflictError

    try:
        yield
    except services.StaleVersion as e:
        raise ConflictError(e.current_version) from None


def _version_only_step(view, request, obj, step):
    """An action whose body is only the `version` the client loaded (or If-Match): `step(user, obj, version=…)`,
    a stale version answered 409, then the object as it is now."""
    form = VersionSerializer(data=request.data)
    form.is_valid(raise_exception=True)
    version = _version_sent(request, form.validated_data.get("version"))
    with _versioned():
        step(request.user, obj, version=version)
    return view._answer(obj)


# --- viewsets -------------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(tags=TAGS, description="Key accounts you may see (scoped to your customers), each with its "
                                              "service meeting cadence, last meeting and next due day."),
    retrieve=extend_schema(tags=TAGS),
    partial_update=extend_schema(
        tags=TAGS, request=CadenceSerializer,
        responses={200: KeyAccountSerializer, 400: FIELD_ERRORS, 403: NOT_YOURS,
                   409: OpenApiResponse(description="Changed by someone else since the version sent.")},
        description="Set how often the account's service meetings are due (`meeting_cadence`, with the `version` you "
                    "loaded or an If-Match header): its project manager, a manager or an administrator, on an account "
                    "served. The next due day follows at once; the change is audited.",
    ),
)  # fmt: skip
class KeyAccountViewSet(mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Key-account files (重点客户档案): writes go through proposals, plans and agreements; the file itself takes only
    its service meeting cadence (PATCH)."""

    queryset = KeyAccount.objects.none()
    serializer_class = KeyAccountSerializer
    permission_classes = [HasCapability, NoWritesForReadOnlyRoles]
    required_caps = {"partial_update": Cap.MANAGE_KEY_ACCOUNTS, "*": Cap.VIEW_KEY_ACCOUNTS}
    lookup_value_regex = r"[0-9]{1,18}"
    http_method_names = ["get", "patch", "head", "options"]

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = list(page if page is not None else queryset)
        # the meeting cadence's last and next days of the whole page in one query, not one per account
        context = {**self.get_serializer_context(), "meeting_dues": services.meeting_dues(rows)}
        data = KeyAccountSerializer(rows, many=True, context=context).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def update(self, request, *args, **kwargs):
        if not kwargs.get("partial"):
            return Response(status=status.HTTP_405_METHOD_NOT_ALLOWED)
        account = self.get_object()
        form = CadenceSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        version = _version_sent(request, form.validated_data.get("version"))
        with _versioned():
            services.set_meeting_cadence(request.user, account, form.validated_data["meeting_cadence"], version=version)
        account = self.get_queryset().get(pk=account.pk)
        return Response(KeyAccountSerializer(account, context=self.get_serializer_context()).data)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return (
            services.accounts_for(self.request.user)
            .select_related("institution")
            .prefetch_related("members__user", "plans")
            .order_by("number")
        )


@extend_schema_view(
    list=extend_schema(tags=TAGS, description="Listing and de-listing proposals on customers you may see."),
    retrieve=extend_schema(tags=TAGS),
)
class ProposalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Key-account proposals: marketing proposes, departments give opinions, leadership decides (signed)."""

    queryset = Proposal.objects.none()
    serializer_class = ProposalSerializer
    permission_classes = [HasCapability]
    filterset_class = ProposalFilter
    required_caps = {
        "create": Cap.PROPOSE_KEY_ACCOUNTS, "opinion": Cap.REVIEW_KEY_ACCOUNTS, "submit": Cap.PROPOSE_KEY_ACCOUNTS,
        "decide": Cap.APPROVE_KEY_ACCOUNTS, "withdraw": Cap.PROPOSE_KEY_ACCOUNTS, "*": Cap.VIEW_KEY_ACCOUNTS,
    }  # fmt: skip
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return (
            services.proposals_for(self.request.user)
            .select_related("institution")
            .prefetch_related("reviews__reviewer")
            .order_by("-proposed_at", "-id")
        )

    def _answer(self, proposal: Proposal, code: int = status.HTTP_200_OK) -> Response:
        proposal = self.get_queryset().get(pk=proposal.pk)
        return Response(ProposalSerializer(proposal, context=self.get_serializer_context()).data, status=code)

    @extend_schema(tags=TAGS, request=ProposalCreateSerializer, responses={201: ProposalSerializer, 400: ERRORS},
                   description="Propose a customer you may see; its latest candidate score is copied in.")  # fmt: skip
    def create(self, request, *args, **kwargs):
        form = ProposalCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = _text(form.validated_data)
        institution = access.institutions_for(request.user).filter(pk=d["institution"]).first()
        if institution is None:
            raise serializers.ValidationError(
                {"institution": [_("No such customer, or you may not see it.")]}
            )
        proposal = services.propose(request.user, institution, reason=d["reason"], kind=d["kind"])
        return self._answer(proposal, status.HTTP_201_CREATED)

    @extend_schema(tags=TAGS, request=OpinionSerializer, responses={200: ProposalSerializer, 400: ERRORS, 403: DENIED},
                   description="Give (or revise) your department's opinion while the proposal is in review.")  # fmt: skip
    @action(detail=True, methods=["post"])
    def opinion(self, request, pk=None):
        proposal = self.get_object()
        form = OpinionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = _text(form.validated_data)
        services.give_opinion(request.user, proposal, opinion=d["opinion"], comment=d.get("comment", ""),
                              department=d.get("department", ""))  # fmt: skip
        return self._answer(proposal)

    @extend_schema(tags=TAGS, request=VersionSerializer, responses={200: ProposalSerializer, 400: ERRORS},
                   description="Send the proposal to leadership (needs marketing's opinion).")  # fmt: skip
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        return _version_only_step(self, request, self.get_object(), services.submit_for_decision)

    @extend_schema(tags=TAGS, request=DecisionSerializer, responses={200: ProposalSerializer, 400: ERRORS, 403: DENIED},
                   description="Approve or reject, signed with a fresh one-time code; never one's own proposal.")  # fmt: skip
    @action(detail=True, methods=["post"])
    def decide(self, request, pk=None):
        proposal = self.get_object()
        form = DecisionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = _text(form.validated_data)
        version = _version_sent(request, d.get("version"))
        with _versioned():
            services.decide(request.user, proposal, approve=d["approve"], comment=d.get("comment", ""),
                            otp_code=d["otp_code"], version=version)  # fmt: skip
        return self._answer(proposal)

    @extend_schema(tags=TAGS, request=VersionSerializer,
                   responses={200: ProposalSerializer, 400: ERRORS, 403: DENIED,
                              409: OpenApiResponse(description="Changed by someone else since the version sent.")},
                   description="Withdraw the proposal, with the `version` you loaded (or If-Match): the proposer while "
                               "it is in review, leadership while it is open.")  # fmt: skip
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk=None):
        return _version_only_step(self, request, self.get_object(), services.withdraw)


@extend_schema_view(
    list=extend_schema(
        tags=TAGS, description="Service plans (all versions) of the key accounts you may see."
    ),
    retrieve=extend_schema(tags=TAGS),
)
@extend_schema_view(
    create=extend_schema(
        tags=TAGS, request=PlanWriteSerializer, responses={201: PlanSerializer, 400: ERRORS, 403: DENIED},
        description="Start a draft version of an account's plan (account, goals, valid_from, valid_to); it starts "
                    "as a copy of the plan in force.",
    ),
    partial_update=extend_schema(
        tags=TAGS, request=PlanWriteSerializer, responses={200: PlanSerializer, 400: ERRORS, 403: DENIED},
        description="Change a draft's (or returned plan's) goals and validity (send version); fields left out keep "
                    "their value.",
    ),
)
class PlanViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                  mixins.UpdateModelMixin, viewsets.GenericViewSet):  # fmt: skip
    """Service plans with their items; a draft is started and edited by the team, submitted, and signed by
    leadership."""

    queryset = ServicePlan.objects.none()
    serializer_class = PlanSerializer
    permission_classes = [HasCapability]
    filterset_class = PlanFilter
    http_method_names = ["get", "post", "patch", "head", "options"]
    required_caps = {
        "create": Cap.MANAGE_KEY_ACCOUNTS,
        "partial_update": Cap.MANAGE_KEY_ACCOUNTS,
        "submit": Cap.MANAGE_KEY_ACCOUNTS,
        "decide": Cap.APPROVE_KEY_ACCOUNTS,
        "*": Cap.VIEW_KEY_ACCOUNTS,
    }
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return (
            ServicePlan.objects.filter(account__in=services.accounts_for(self.request.user))
            .select_related("account")  # the items' `overdue` reads a de-listed account's day
            .prefetch_related(Prefetch("items", services.in_plan_order(PlanItem.objects.select_related("owner"))))
            .order_by("account_id", "-version_number")
        )

    def _answer(self, plan: ServicePlan) -> Response:
        return Response(
            PlanSerializer(self.get_queryset().get(pk=plan.pk), context=self.get_serializer_context()).data
        )

    def create(self, request, *args, **kwargs):
        form = PlanWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = _text(form.validated_data)
        account = services.accounts_for(request.user).filter(pk=d.get("account") or 0).first()
        if account is None:
            raise serializers.ValidationError({"account": [_("No such key account, or you may not see it.")]})
        plan = services.start_plan(request.user, account, goals=d.get("goals", ""), valid_from=d.get("valid_from"),
                                   valid_to=d.get("valid_to"))  # fmt: skip
        return Response(PlanSerializer(self.get_queryset().get(pk=plan.pk), context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)  # fmt: skip

    def update(self, request, *args, **kwargs):
        if not kwargs.get("partial"):
            return Response(status=status.HTTP_405_METHOD_NOT_ALLOWED)
        plan = self.get_object()
        form = PlanWriteSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        d = _text(form.validated_data)
        version = _version_sent(request, d.get("version"))
        with _versioned():
            services.update_plan(request.user, plan, goals=d.get("goals", plan.goals),
                                 valid_from=d.get("valid_from", plan.valid_from),
                                 valid_to=d.get("valid_to", plan.valid_to), version=version)  # fmt: skip
        return self._answer(plan)

    @extend_schema(tags=TAGS, request=VersionSerializer, responses={200: PlanSerializer, 400: ERRORS, 403: DENIED},
                   description="Submit a draft for leadership review: it covers supply, technical support, "
                               "after-sales and training.")  # fmt: skip
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        return _version_only_step(self, request, self.get_object(), services.submit_plan)

    @extend_schema(tags=TAGS, request=DecisionSerializer, responses={200: PlanSerializer, 400: ERRORS, 403: DENIED},
                   description="Approve (supersedes the plan in force) or return for changes, signed.")  # fmt: skip
    @action(detail=True, methods=["post"])
    def decide(self, request, pk=None):
        plan = self.get_object()
        form = DecisionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = _text(form.validated_data)
        version = _version_sent(request, d.get("version"))
        with _versioned():
            services.decide_plan(request.user, plan, approve=d["approve"], comment=d.get("comment", ""),
                                 otp_code=d["otp_code"], version=version)  # fmt: skip
        return self._answer(plan)


@extend_schema_view(
    retrieve=extend_schema(tags=TAGS),
    create=extend_schema(
        tags=TAGS,
        request=PlanItemWriteSerializer,
        responses={201: PlanItemSerializer, 400: ERRORS},
        description="Add an item to a draft plan (plan, area, title, standard, owner, deadline).",
    ),
    partial_update=extend_schema(
        tags=TAGS,
        request=PlanItemWriteSerializer,
        responses={200: PlanItemSerializer, 400: ERRORS},
        description="Change a draft's item (send version).",
    ),
    destroy=extend_schema(
        tags=TAGS,
        responses={204: None, 400: ERRORS, 403: DENIED,
                   409: OpenApiResponse(description="Changed by someone else since the If-Match version.")},
        description="Remove an item from a draft (or a returned plan), as the page's Delete does; the plan in "
                    "force keeps its items (a change there is a new version). Send If-Match (the item's version) "
                    "so that an item someone changed since is kept (409).",
    ),
)
class PlanItemViewSet(mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
                      mixins.DestroyModelMixin, viewsets.GenericViewSet):  # fmt: skip
    """Items of service plans: drafts are edited by the team; the plan in force gets progress reports."""

    queryset = PlanItem.objects.none()
    serializer_class = PlanItemSerializer
    permission_classes = [HasCapability, NoWritesForReadOnlyRoles]
    required_caps = {"create": Cap.MANAGE_KEY_ACCOUNTS, "partial_update": Cap.MANAGE_KEY_ACCOUNTS,
                     "destroy": Cap.MANAGE_KEY_ACCOUNTS, "*": Cap.VIEW_KEY_ACCOUNTS}  # fmt: skip
    lookup_value_regex = r"[0-9]{1,18}"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return PlanItem.objects.filter(
            plan__account__in=services.accounts_for(self.request.user)
        ).select_related("owner", "plan__account")

    def _answer(self, item: PlanItem, code: int = status.HTTP_200_OK) -> Response:
        item = self.get_queryset().get(pk=item.pk)
        return Response(PlanItemSerializer(item, context=self.get_serializer_context()).data, status=code)

    def create(self, request, *args, **kwargs):
        form = PlanItemWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = _text(form.validated_data)
        plan = d.pop("plan", None)
        if plan is None or not services.accounts_for(request.user).filter(pk=plan.account_id).exists():
            raise serializers.ValidationError({"plan": [_("No such plan, or you may not see it.")]})
        d.pop("version", None)
        item = services.save_item(request.user, plan, d)
        return self._answer(item, status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        if not kwargs.get("partial"):
            return Response(status=status.HTTP_405_METHOD_NOT_ALLOWED)
        item = self.get_object()
        form = PlanItemWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = _text(form.validated_data)
        d.pop("plan", None)
        version = _version_sent(request, d.pop("version", None))
        data = {"area": item.area, "title": item.title, "standard": item.standard, "owner": item.owner,
                "deadline": item.deadline, **d}  # fmt: skip
        with _versioned():
            item = services.save_item(request.user, item.plan, data, item=item, version=version)
        return self._answer(item)

    def destroy(self, request, *args, **kwargs):
        # If-Match (the item's version): an item someone else changed after the caller loaded it is not deleted (409)
        version = expected_version(request, None) if request.headers.get("If-Match") else None
        with _versioned():
            services.delete_item(request.user, self.get_object(), version=version)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(tags=TAGS, request=ProgressSerializer, responses={200: PlanItemSerializer, 400: ERRORS, 403: DENIED},
                   description="The owner (or the project manager) reports progress on an item of the plan in force.")  # fmt: skip
    @action(detail=True, methods=["post"])
    def progress(self, request, pk=None):
        item = self.get_object()
        form = ProgressSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = _text(form.validated_data)
        version = _version_sent(request, d.get("version"))
        with _versioned():
            services.update_progress(request.user, item, status=d["status"], progress=d.get("progress"),
                                     note=d.get("note", ""), version=version)  # fmt: skip
        return self._answer(item)


@extend_schema_view(
    list=extend_schema(
        tags=TAGS, description="Service agreements of the key accounts you may see, newest first."
    ),
    retrieve=extend_schema(tags=TAGS),
)
class AgreementViewSet(mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Service agreements (服务协议): generated from the approved plan, then signed; the term corrected while a draft
    (PATCH), amended once signed (…/amendments/)."""

    queryset = Agreement.objects.none()
    serializer_class = AgreementSerializer
    permission_classes = [HasCapability]
    filterset_class = AgreementFilter
    http_method_names = ["get", "post", "patch", "head", "options"]
    required_caps = {"create": Cap.MANAGE_KEY_ACCOUNTS, "sign": Cap.MANAGE_KEY_ACCOUNTS,
                     "reissue": Cap.MANAGE_KEY_ACCOUNTS, "partial_update": Cap.MANAGE_KEY_ACCOUNTS,
                     "amendments": Cap.MANAGE_KEY_ACCOUNTS, "amendment_attach_copy": Cap.MANAGE_KEY_ACCOUNTS,
                     "*": Cap.VIEW_KEY_ACCOUNTS}  # fmt: skip
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return (
            Agreement.objects.filter(account__in=services.accounts_for(self.request.user))
            .select_related("account__institution", "plan")
            .prefetch_related("amendments")
            .order_by("-created_at", "-id")
        )

    @extend_schema(tags=TAGS, request=TermSerializer,
                   responses={200: AgreementSerializer, 400: FIELD_ERRORS, 403: NOT_YOURS,
                              409: OpenApiResponse(description="Changed by someone else since the version sent.")},
                   description="Correct the term of an agreement not signed yet (`start_date`, `end_date`; a field left "
                               "out keeps its day), with the `version` you loaded or If-Match: the account's managers "
                               "and project manager. The rules of generating it apply (within its plan's validity, the "
                               "end after the start); its PDF is issued again with the new term; audited. A signed "
                               "agreement's term changes by an amendment (POST …/amendments/): 400.")  # fmt: skip
    def partial_update(self, request, *args, **kwargs):
        agreement = self.get_object()
        form = TermSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        version = _version_sent(request, d.get("version"))
        with _versioned():
            services.change_term(request.user, agreement, start_date=d.get("start_date", agreement.start_date),
                                 end_date=d.get("end_date", agreement.end_date), version=version)  # fmt: skip
        return self._answer(agreement)

    def update(self, request, *args, **kwargs):
        if not kwargs.get("partial"):
            return Response(status=status.HTTP_405_METHOD_NOT_ALLOWED)
        return self.partial_update(request, *args, **kwargs)

    @extend_schema(tags=TAGS, request={"multipart/form-data": AmendmentWriteSerializer,
                                       "application/json": AmendmentWriteSerializer},
                   responses={201: AgreementSerializer, 400: FIELD_ERRORS, 403: NOT_YOURS,
                              409: OpenApiResponse(description="Changed by someone else since the version sent.")},
                   description="Record an amendment (补充协议) of a signed agreement's term: the new `start_date` and "
                               "`end_date`, the `reason` (required), the `effective_date` (not before "
                               "the signing), an optional `signed_copy` (multipart), and the `version` you loaded. The "
                               "new term lies within the validity of the agreement's plan; the agreement's term becomes "
                               "it and its renewal reminder follows the new end; its own PDF stays as signed, the "
                               "amendment has its own (…/amendments/{sequence}/pdf/). Audited.")  # fmt: skip
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser, JSONParser])
    def amendments(self, request, pk=None):
        agreement = self.get_object()
        form = uploads.limited_form(request, AmendmentWriteSerializer)
        d = dict(form.validated_data)
        version = _version_sent(request, d.pop("version", None))
        with _versioned():
            services.amend_term(request.user, agreement, _text(d), version=version)
        return self._answer(agreement, status.HTTP_201_CREATED)

    def _amendment(self, sequence):
        return amendment_of(self.get_object(), sequence)

    @extend_schema(
        tags=TAGS, parameters=[OpenApiParameter("sequence", int, OpenApiParameter.PATH)],
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The amendment."),
            404: OpenApiResponse(description="No such amendment."),
            409: OpenApiResponse(description="The kept copy is missing from the storage or was altered."),
        },
        description="An amendment's bilingual PDF, as kept when it was recorded (its SHA-256 is the amendment's "
                    "`document_sha256`); the export is audited.",
    )
    @action(detail=True, methods=["get"], url_path=r"amendments/(?P<sequence>[0-9]{1,4})/pdf", pagination_class=None,
            filter_backends=[], content_negotiation_class=FileNegotiation)  # fmt: skip
    def amendment_pdf(self, request, pk=None, sequence=None):
        amendment = self._amendment(sequence)
        try:
            data = services.amendment_document(amendment)
        except services.DocumentUnavailable as e:
            return Response({"detail": str(e)}, status=409)
        audit.record(AuditEntry.Action.EXPORT, amendment, user=request.user, format="PDF", purpose="api")
        response = HttpResponse(data, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{amendment.number}.pdf"'
        response["Cache-Control"] = "private, no-store"
        return response

    @extend_schema(
        tags=TAGS, parameters=[OpenApiParameter("sequence", int, OpenApiParameter.PATH)],
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The signed amendment."),
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The signed amendment."),
            (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="The signed amendment."),
            404: OpenApiResponse(description="No such amendment, or no signed copy was uploaded."),
            409: OpenApiResponse(description="The signed copy is missing from the storage or was altered."),
        },
        description="An amendment's signed copy as uploaded, checked against its SHA-256; the download is audited.",
    )
    @action(detail=True, methods=["get"], url_path=r"amendments/(?P<sequence>[0-9]{1,4})/signed-copy",
            pagination_class=None, filter_backends=[], content_negotiation_class=FileNegotiation)  # fmt: skip
    def amendment_signed_copy(self, request, pk=None, sequence=None):
        from .views_programme import amendment_copy_response

        try:
            return amendment_copy_response(self._amendment(sequence), request.user, purpose="api")
        except services.DocumentUnavailable as e:
            return Response({"detail": str(e)}, status=409)

    @extend_schema(tags=TAGS, parameters=[OpenApiParameter("sequence", int, OpenApiParameter.PATH)],
                   request={"multipart/form-data": AmendmentCopySerializer},
                   responses={200: AgreementSerializer, 400: FIELD_ERRORS, 403: NOT_YOURS,
                              404: OpenApiResponse(description="No such amendment.")},
                   description="Upload the signed copy of an amendment recorded without one (`signed_copy`: PDF, PNG "
                               "or JPEG, at most 20 MB, refused before it is read when the request announces more): "
                               "the account's managers and project manager. Once only: a copy uploaded already is "
                               "never replaced (400 under `signed_copy`). Audited with its SHA-256.")  # fmt: skip
    @action(detail=True, methods=["post"], url_path=r"amendments/(?P<sequence>[0-9]{1,4})/signed-copy/upload",
            parser_classes=[MultiPartParser, FormParser])  # fmt: skip
    def amendment_attach_copy(self, request, pk=None, sequence=None):
        amendment = self._amendment(sequence)
        access.require_agreement_term(request.user, amendment.agreement)  # refused before the upload is read
        form = uploads.limited_form(request, AmendmentCopySerializer)
        services.attach_amendment_copy(request.user, amendment, form.validated_data["signed_copy"])
        return self._answer(amendment.agreement)

    def _answer(self, agreement: Agreement, code: int = status.HTTP_200_OK) -> Response:
        agreement = self.get_queryset().get(pk=agreement.pk)
        return Response(AgreementSerializer(agreement, context=self.get_serializer_context()).data, status=code)

    @extend_schema(tags=TAGS, request=AgreementCreateSerializer, responses={201: AgreementSerializer, 400: FIELD_ERRORS,
                                                                           403: NOT_YOURS},
                   description="Generate a numbered agreement (AG-YYYY-NNNN) and its bilingual PDF from the account's "
                               "approved service plan: the account's managers and project manager.")  # fmt: skip
    def create(self, request, *args, **kwargs):
        form = AgreementCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = dict(form.validated_data)
        account = services.accounts_for(request.user).filter(pk=d.pop("account")).first()
        if account is None:
            raise serializers.ValidationError({"account": [_("No such key account, or you may not see it.")]})
        agreement = services.generate_agreement(request.user, account, **d)
        return self._answer(agreement, status.HTTP_201_CREATED)

    @extend_schema(tags=TAGS, request={"multipart/form-data": SignedSerializer},
                   responses={200: AgreementSerializer, 400: FIELD_ERRORS, 403: NOT_YOURS},
                   description="Record the signing (multipart): `signed_date`, the scanned `signed_copy` and the "
                               "`version` you loaded. The renewal reminder starts; an earlier signed agreement of the "
                               "account counts as renewed once this one's term has begun (at once, or on its start "
                               "day).")  # fmt: skip
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def sign(self, request, pk=None):
        agreement = self.get_object()
        form = uploads.limited_form(request, SignedSerializer)
        d = form.validated_data
        version = _version_sent(request, d.get("version"))
        with _versioned():
            services.record_signed(request.user, agreement, signed_date=d["signed_date"], upload=d.get("signed_copy"),
                                   version=version)  # fmt: skip
        return self._answer(agreement)

    @extend_schema(tags=TAGS, request=VersionSerializer,
                   responses={200: AgreementSerializer, 400: FIELD_ERRORS, 403: NOT_YOURS},
                   description="Issue a draft agreement's PDF again from its plan version and the current customer "
                               "record (a corrected address), with the `version` you loaded (or If-Match); the copy "
                               "issued before is replaced. Refused (400) for a signed agreement, and for a draft whose "
                               "plan version was replaced by a newer one: generate a new agreement from the plan in "
                               "force.")  # fmt: skip
    @action(detail=True, methods=["post"])
    def reissue(self, request, pk=None):
        return _version_only_step(self, request, self.get_object(), services.reissue_document)

    @extend_schema(
        tags=TAGS,
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The signed copy."),
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The signed copy."),
            (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="The signed copy."),
            404: OpenApiResponse(description="No signed copy was uploaded."),
            409: OpenApiResponse(description="The signed copy is missing from the storage or was altered."),
        },
        description="The signed copy as uploaded, checked against the SHA-256 taken at upload; the download is "
                    "audited.",
    )
    @action(detail=True, methods=["get"], url_path="signed-copy", pagination_class=None, filter_backends=[],
            content_negotiation_class=FileNegotiation)
    def signed_copy(self, request, pk=None):
        from .views_programme import signed_copy_response

        try:
            return signed_copy_response(self.get_object(), request.user, purpose="api")
        except services.DocumentUnavailable as e:
            return Response({"detail": str(e)}, status=409)

    @extend_schema(
        tags=TAGS,
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The agreement."),
            409: OpenApiResponse(description="The issued copy is missing from the storage or was altered."),
        },
        description="The bilingual agreement as a PDF, exactly as issued when it was generated (its SHA-256 is the "
                    "agreement's `document_sha256`); the export is audited.",
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[],
            content_negotiation_class=FileNegotiation)
    def pdf(self, request, pk=None):
        agreement = self.get_object()
        try:
            data = services.agreement_document(agreement)
        except services.DocumentUnavailable as e:
            return Response({"detail": str(e)}, status=409)
        audit.record(AuditEntry.Action.EXPORT, agreement, user=request.user, format="PDF", purpose="api")
        response = HttpResponse(data, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{agreement.number}.pdf"'
        response["Cache-Control"] = "private, no-store"
        return response
