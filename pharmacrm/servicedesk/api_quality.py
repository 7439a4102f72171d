"""REST endpoints: quality reviews of handled tickets (服务质检; quality.py decides who may do what).

- GET /api/v1/service/quality-reviews/ (?period=2026-11|2026-Q4|2026, ?agent=, ?ticket=, ?findings=true) and
  /api/v1/service/quality-reviews/{id}/ — the reviews the user may read;
- POST /api/v1/service/quality-reviews/ {ticket, accurate, compliant, complete, courteous, comment} — review a
  resolved, informed or closed ticket (reviewers; a team lead their teams' tickets; never one's own);
- PATCH /api/v1/service/quality-reviews/{id}/ with `version` or If-Match — correct it (its reviewer or a service
  manager).

The accuracy per agent, team, category… is on GET /api/v1/service/performance/ (`accuracy`, `quality_reviewed`)."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pharmacrm.core import personal, viewsets
from pharmacrm.core.api_utils import (
    MAX_INT32,
    HasCapability,
    IntegerFilter,
    ModelSerializer,
    NoWritesForReadOnlyRoles,
    Serializer,
    StrictBooleanFilter,
    clean_text,
    expected_version,
    versioned,
)
from pharmacrm.core.roles import Cap

from . import performance, quality
from .api_revisit import MAX_ID, VisibleTicketField
from .choices import AppealStatus
from .models import QualityReview


def register(router) -> None:
    """Called by pharmacrm/api_urls.py with the v1 router."""
    router.register("service/quality-reviews", QualityReviewViewSet, basename="quality-review")


class QualityReviewSerializer(ModelSerializer):
    ticket = VisibleTicketField(help_text="The ticket's id (resolved, customer-informed or closed).")
    ticket_number = serializers.CharField(source="ticket.number", read_only=True)
    agent = serializers.IntegerField(source="agent_id", read_only=True, allow_null=True,
                                     help_text="The agent the review judged: the ticket's assignee when reviewed.")  # fmt: skip
    assignee = serializers.IntegerField(source="ticket.assignee_id", read_only=True, allow_null=True,
                                        help_text="The ticket's agent now, whom the per-agent figures and ?agent= "
                                        "follow; differs from `agent` once the ticket was reassigned.")  # fmt: skip
    accurate = serializers.BooleanField(help_text="The answer about the product was correct.")
    compliant = serializers.BooleanField(help_text="No off-label claims; personal data and safety reports handled "
                                         "as the policy says.")  # fmt: skip
    complete = serializers.BooleanField(help_text="The ticket records the request, customer, product, batch and "
                                        "resolution.")  # fmt: skip
    courteous = serializers.BooleanField(help_text="The service standard was kept.")
    comment = serializers.CharField(max_length=quality.MAX_COMMENT, required=False, allow_blank=True,
                                    help_text="The findings; required when a criterion is not met.")  # fmt: skip
    version = serializers.IntegerField(required=False, min_value=1, max_value=MAX_INT32,
                                       help_text="Send it back with a correction (or If-Match); 409 if stale.")  # fmt: skip
    appeal_status = serializers.ChoiceField(choices=AppealStatus.choices, allow_blank=True, read_only=True,
                                            help_text="Empty while the review is not appealed.")  # fmt: skip

    class Meta:
        model = QualityReview
        fields = ["id", "ticket", "ticket_number", "agent", "assignee", "reviewer", "accurate", "compliant", "complete",
                  "courteous", "comment", "reviewed_at", "updated_at", "appeal", "appealed_at", "appeal_status",
                  "appeal_answer", "appeal_decided_by", "appeal_decided_at", "version"]  # fmt: skip
        read_only_fields = ["reviewer", "reviewed_at", "updated_at", "appeal", "appealed_at", "appeal_status",
                            "appeal_answer", "appeal_decided_by", "appeal_decided_at"]  # fmt: skip

    def to_representation(self, instance):
        """The findings, the appeal and the decision on it with the contact details typed in them masked for a reader
        who sees personal data masked (an agent, a product expert, the analyst, the auditor), as the ticket page
        shows them; a correction sending the masks back keeps the stored details (quality.correct)."""
        return personal.shown_fields(self.context, super().to_representation(instance), "servicedesk.qualityreview")


class QualityAppealSerializer(Serializer):
    appeal = serializers.CharField(max_length=quality.MAX_APPEAL, help_text="Why the finding is wrong.")
    version = serializers.IntegerField(required=False, min_value=1, max_value=MAX_INT32,
                                       help_text="The version you loaded (or If-Match).")  # fmt: skip


class AppealDecisionSerializer(Serializer):
    accepted = serializers.BooleanField(help_text="true: the review is corrected to the criteria sent; false: it stands.")
    appeal_answer = serializers.CharField(max_length=quality.MAX_APPEAL, help_text="The reason, for the agent.")
    accurate = serializers.BooleanField(required=False, help_text="With accepted: the criteria as judged now.")
    compliant = serializers.BooleanField(required=False)
    complete = serializers.BooleanField(required=False)
    courteous = serializers.BooleanField(required=False)
    version = serializers.IntegerField(required=False, min_value=1, max_value=MAX_INT32,
                                       help_text="The version you loaded (or If-Match).")  # fmt: skip


class QualityReviewFilter(django_filters.FilterSet):
    period = django_filters.CharFilter(method="filter_period", label="2026-11, 2026-Q4 or 2026: the tickets received "
                                       "in it (Beijing time).")  # fmt: skip
    agent = IntegerFilter(field_name="ticket__assignee_id", min_value=1, max_value=MAX_ID,
                          label="The reviews of the tickets this agent holds now (`assignee`), as the per-agent "
                          "figures count them.")  # fmt: skip
    ticket = IntegerFilter(field_name="ticket_id", min_value=1, max_value=MAX_ID)
    findings = StrictBooleanFilter(method="filter_findings",
                                            label="true: only reviews with a criterion not met.")  # fmt: skip

    class Meta:
        model = QualityReview
        fields: list[str] = []

    def filter_period(self, queryset, name, value):
        try:
            period = performance.parse_period(value)
        except DjangoValidationError as e:
            raise serializers.ValidationError(e.message_dict) from None
        # as the quality page and the performance figures count them: merged duplicates left out
        return queryset.filter(ticket__received_at__gte=period.start, ticket__received_at__lt=period.end).exclude(
            ticket__merged_into__isnull=False
        )

    def filter_findings(self, queryset, name, value):
        passed = {k: True for k in quality.CRITERIA}
        return queryset.exclude(**passed) if value else queryset.filter(**passed)


@extend_schema_view(
    list=extend_schema(tags=["quality"]),
    retrieve=extend_schema(tags=["quality"]),
    create=extend_schema(tags=["quality"], responses={
        201: QualityReviewSerializer, 200: OpenApiResponse(QualityReviewSerializer, description="The same review sent "
                                                           "again by its reviewer: the one recorded."),
        400: OpenApiResponse(description="Per-field messages."), 403: OpenApiResponse(description="Not yours to review."),
    }),  # fmt: skip
    partial_update=extend_schema(tags=["quality"], responses={
        200: QualityReviewSerializer, 400: OpenApiResponse(description="Per-field messages."),
        409: OpenApiResponse(description="Someone corrected it since `version` (with `current_version`)."),
    }),  # fmt: skip
)
class QualityReviewViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):  # fmt: skip
    """Quality reviews (服务质检) of the tickets the user may see and read reviews of."""

    queryset = QualityReview.objects.none()
    serializer_class = QualityReviewSerializer
    permission_classes = [HasCapability, NoWritesForReadOnlyRoles]  # the auditor reads: a review is refused first
    # who may review or correct which ticket is quality.refusal's and quality.may_correct's answer (403 otherwise):
    # reviewers need not handle tickets
    required_caps = {"*": Cap.VIEW_TICKETS}
    filterset_class = QualityReviewFilter
    http_method_names = ["get", "post", "patch", "head", "options"]
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return quality.reviews_for(self.request.user).select_related("ticket").order_by("-reviewed_at", "-id")

    def _answer(self, obj: QualityReview, code: int = status.HTTP_200_OK) -> Response:
        obj = QualityReview.objects.select_related("ticket").get(pk=obj.pk)
        return versioned(Response(self.get_serializer(obj).data, status=code), obj)

    def retrieve(self, request, *args, **kwargs):
        obj = self.get_object()
        return versioned(Response(self.get_serializer(obj).data), obj)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        d = dict(serializer.validated_data)
        ticket = d.pop("ticket")
        d.pop("version", None)
        d["comment"] = clean_text(d.get("comment", ""))
        before = QualityReview.objects.filter(ticket=ticket).values_list("pk", flat=True).first()
        obj = quality.review(request.user, ticket, d)
        return self._answer(obj, status.HTTP_200_OK if before == obj.pk else status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        obj = self.get_object()
        serializer = self.get_serializer(obj, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        d = dict(serializer.validated_data)
        version = expected_version(request, d.pop("version", None))
        d.pop("ticket", None)
        if "comment" in d:
            d["comment"] = clean_text(d["comment"])
        quality.correct(request.user, obj, d, version=version)
        return self._answer(obj)

    def update(self, request, *args, **kwargs):  # PUT is not offered (http_method_names)
        raise Http404

    @extend_schema(request=QualityAppealSerializer, tags=["quality"], responses={
        200: QualityReviewSerializer, 400: OpenApiResponse(description="Per-field messages."),
        403: OpenApiResponse(description="Not the agent the review judged, no finding, or appealed already."),
        409: OpenApiResponse(description="Someone changed the review since `version`."),
    }, description="The agent the review judged appeals its finding, once (质检申诉).")  # fmt: skip
    @action(detail=True, methods=["post"])
    def appeal(self, request, pk=None):
        obj = self.get_object()
        form = QualityAppealSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        version = expected_version(request, form.validated_data.get("version"))
        quality.appeal(request.user, obj, clean_text(form.validated_data["appeal"]), version=version)
        return self._answer(obj)

    @extend_schema(request=AppealDecisionSerializer, tags=["quality"], responses={
        200: QualityReviewSerializer, 400: OpenApiResponse(description="Per-field messages."),
        403: OpenApiResponse(description="Not a service manager, the reviewer or agent, or no appeal waiting."),
        409: OpenApiResponse(description="Someone changed the review since `version`."),
    }, description="A service manager who neither reviewed nor handled the ticket accepts the appeal (the review is "
                   "corrected to the criteria sent) or rejects it, with the reason.")  # fmt: skip
    @action(detail=True, methods=["post"], url_path="decide-appeal")
    def decide_appeal(self, request, pk=None):
        obj = self.get_object()
        form = AppealDecisionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        version = expected_version(request, d.get("version"))
        criteria = {k: d[k] for k in quality.CRITERIA if k in d}
        quality.decide_appeal(request.user, obj, d["accepted"], clean_text(d["appeal_answer"]), criteria,
                              version=version)  # fmt: skip
        return self._answer(obj)
