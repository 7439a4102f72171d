"""API for the communication plans (/api/v1/communication-plans/: every owner reads, managers write) and the
customers behind them (/api/v1/communication-due/), as on /interactions/plans/ and /interactions/plan-due/."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from pharmacrm.core import personal, viewsets
from pharmacrm.core.api_schema import OneObjectSchema
from pharmacrm.core.api_utils import (
    HasCapability,
    Pagination,
    QuerySerializer,
    Serializer,
    TypedIntegerField,
    expected_version,
    optional_version,
    settings_version,
    versioned,
)
from pharmacrm.core.ids import is_id
from pharmacrm.core.roles import Cap
from pharmacrm.customers.forms import picker_label

from . import plans
from .api import ChannelField
from .models import CommunicationPlan, PlanPeriod

# the API's names for the model's fields
RENAMED = {"klass": "class", "institution_kind": "institution_type"}


def register(router) -> None:
    router.register("communication-plans", CommunicationPlanViewSet, basename="communication-plan")
    router.register("communication-due", CommunicationDueViewSet, basename="communication-due")


class CommunicationPlanLineSerializer(Serializer):
    """A channel and the contacts it asks for per period."""

    channel = ChannelField()
    minimum = TypedIntegerField(help_text="Contacts at least per period (1–366).")
    period = serializers.ChoiceField(choices=PlanPeriod.choices, help_text="month, quarter, half (a half-year), year.")
    note = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class CommunicationPlanSerializer(Serializer):
    """An annual communication plan."""

    id = serializers.IntegerField(read_only=True)
    year = TypedIntegerField(help_text="The plan's year.")
    klass = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=1,
        help_text="A, B, C or D: the class in the customer evaluation in force; empty: every class.",
    )  # fmt: skip
    tier = serializers.CharField(required=False, allow_blank=True, default="", max_length=12,
                                 help_text="new, regular, vip, key; empty: every tier.")  # fmt: skip
    institution_kind = serializers.CharField(required=False, allow_blank=True, default="", max_length=16,
                                             help_text="An institution type (not department); empty: every type.")  # fmt: skip
    goal = serializers.CharField(max_length=2000, allow_blank=True, help_text="What the contacts are for.")
    lines = CommunicationPlanLineSerializer(many=True, help_text="A channel and its minimum per period; replaced whole on a change.")
    customers = serializers.SerializerMethodField(help_text="Who the plan is for, in words.")
    version = settings_version()
    updated_at = serializers.DateTimeField(read_only=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for old, new in RENAMED.items():  # `class` is a Python keyword: renamed after declaring
            field = self.fields.pop(old)
            field.source = old
            self.fields[new] = field

    def get_customers(self, obj: CommunicationPlan) -> str:
        return obj.target_label()

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["lines"] = [personal.shown_fields(self.context, dict(line), "engagement.communicationplanline")
                         for line in CommunicationPlanLineSerializer(instance.lines.all(), many=True).data]  # fmt: skip
        # the goal and the lines' notes with the contact details typed in them masked for a reader who sees personal
        # data masked, as the plans' page shows them
        return personal.shown_fields(self.context, data, "engagement.communicationplan")

    def validate(self, attrs):
        if self.partial:  # a change: the view checks the plan as it will be
            return attrs
        errors = plans.check({**attrs, "lines": [dict(line) for line in attrs.get("lines", [])]},
                             self.instance)  # fmt: skip
        if errors:
            raise ValidationError({RENAMED.get(k, k): v for k, v in errors.items()})
        return attrs


class CommunicationDueParams(QuerySerializer):
    scope = serializers.ChoiceField(choices=plans.SCOPES, required=False,
                                    help_text="mine, teams (default for owners), all (managers; their default).")  # fmt: skip
    klass = serializers.ChoiceField(choices=["A", "B", "C", "D"], required=False)
    channel = ChannelField(required=False)
    owner = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1, help_text="Managers only.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields.pop("klass")
        field.source = "klass"
        self.fields["class"] = field


@extend_schema_view(
    list=extend_schema(tags=["interactions"], parameters=[OpenApiParameter("year", int, description="Only this year's.")],
                       description="The annual communication plans (seed 002 三.(一)): goal, channels and frequency "
                       "per customer class, tier or type."),  # fmt: skip
    retrieve=extend_schema(tags=["interactions"]),
    create=extend_schema(tags=["interactions"], responses={201: CommunicationPlanSerializer, 400: OpenApiResponse(
        description="Per-field messages (lines: one object per line); a second plan for the same year, class, tier "
        "and type is refused under `class`.")}, description="Managers and admins."),  # fmt: skip
    partial_update=extend_schema(tags=["interactions"], responses={200: CommunicationPlanSerializer, 400: OpenApiResponse(
        description="Per-field messages."), 409: OpenApiResponse(description="Changed by someone else since the "
        "version sent.")}, description="Managers and admins; `lines` given replace the plan's; send `version` (or "
        "If-Match) as loaded."),  # fmt: skip
    destroy=extend_schema(tags=["interactions"], responses={204: None, 409: OpenApiResponse(
        description="Changed by someone else since the version in If-Match.")}, description="Managers and admins; "
        "send If-Match (the plan's ETag as loaded): a plan a colleague changed since is not deleted."),  # fmt: skip
)
class CommunicationPlanViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
    mixins.DestroyModelMixin, viewsets.GenericViewSet,
):  # fmt: skip
    """Communication plans (年度沟通计划)."""

    queryset = CommunicationPlan.objects.none()
    serializer_class = CommunicationPlanSerializer
    permission_classes = [HasCapability]
    required_caps = {
        "create": Cap.MANAGE_COMMUNICATION_PLANS,
        "partial_update": Cap.MANAGE_COMMUNICATION_PLANS,
        "update": Cap.MANAGE_COMMUNICATION_PLANS,
        "destroy": Cap.MANAGE_COMMUNICATION_PLANS,
        "*": Cap.VIEW_INTERACTIONS,
    }
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        qs = CommunicationPlan.objects.prefetch_related("lines").order_by("-year", "klass", "tier", "institution_kind", "id")
        year = self.request.query_params.get("year") if hasattr(self, "request") and self.request else None
        if year not in (None, ""):
            if not is_id(year):
                raise ValidationError({"year": [_("Enter a year, such as 2026.")]})
            qs = qs.filter(year=int(year))
        return qs

    def _save(self, serializer, plan=None, version: int | None = None) -> CommunicationPlan:
        data = {k: v for k, v in serializer.validated_data.items() if k != "version"}
        if plan is not None:  # a change: what is not sent stays as it is
            data = {**{k: getattr(plan, k) for k in ("year", "klass", "tier", "institution_kind", "goal")},
                    "lines": [{k: getattr(line, k) for k in ("channel", "minimum", "period", "note")}
                              for line in plan.lines.all()], **data}  # fmt: skip
        data["lines"] = [dict(line) for line in data["lines"]]
        try:
            return plans.save_plan(self.request.user, data, plan, version=version)
        except DjangoValidationError as e:
            raise ValidationError({RENAMED.get(k, k): v for k, v in e.message_dict.items()}) from None

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        plan = self._save(serializer)
        return versioned(Response(CommunicationPlanSerializer(self.get_queryset().get(pk=plan.pk), context=self.get_serializer_context()).data,
                                  status=status.HTTP_201_CREATED), plan)  # fmt: skip

    def retrieve(self, request, *args, **kwargs):
        plan = self.get_object()
        return versioned(Response(CommunicationPlanSerializer(plan, context=self.get_serializer_context()).data), plan)

    def update(self, request, *args, **kwargs):
        if not kwargs.get("partial"):
            return Response(status=status.HTTP_405_METHOD_NOT_ALLOWED)
        plan = self.get_object()
        serializer = CommunicationPlanSerializer(plan, data=request.data, partial=True)
        serializer.is_valid(raise_exception=False)
        if serializer.errors:
            raise ValidationError(serializer.errors)
        version = optional_version(request, dict(serializer.validated_data))  # the body's or If-Match: stale → 409
        # the whole plan as it will be, checked (a partial serializer checks only what was sent)
        sent = {k: v for k, v in serializer.validated_data.items() if k != "version"}
        merged = {**{k: getattr(plan, k) for k in ("year", "klass", "tier", "institution_kind", "goal")},
                  "lines": [{k: getattr(line, k) for k in ("channel", "minimum", "period", "note")}
                            for line in plan.lines.all()], **sent}  # fmt: skip
        merged["lines"] = [dict(line) for line in merged["lines"]]
        errors = plans.check(merged, plan)
        if errors:
            raise ValidationError({RENAMED.get(k, k): v for k, v in errors.items()})
        plan = self._save(serializer, plan, version)
        return versioned(Response(CommunicationPlanSerializer(self.get_queryset().get(pk=plan.pk), context=self.get_serializer_context()).data), plan)

    def destroy(self, request, *args, **kwargs):
        # If-Match (the ETag of the GET), when sent: a plan a colleague changed since is not deleted unseen (409)
        version = expected_version(request, None) if request.headers.get("If-Match") else None
        plans.delete_plan(request.user, self.get_object(), version=version)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CommunicationDueLineSerializer(Serializer):
    """One line of the plan as judged in one period."""

    channel = serializers.CharField()
    period = serializers.CharField()
    minimum = serializers.IntegerField()
    count = serializers.IntegerField(help_text="Contacts recorded in the period.")
    state = serializers.CharField(help_text="met, due (the period runs), overdue (the period ended short).")
    start = serializers.DateField()
    end = serializers.DateField(source="last_day", help_text="The period's last day.")


class CommunicationDueRowSerializer(Serializer):
    """An institution behind its plan."""

    institution = serializers.IntegerField(source="customer.pk")
    institution_name = serializers.CharField(source="label")
    owner = serializers.IntegerField(source="customer.owner_id", allow_null=True)
    plan = serializers.IntegerField(source="plan.pk")
    shortfall = serializers.IntegerField(help_text="The contacts missing, all lines together.")
    overdue = serializers.BooleanField()
    lines = CommunicationDueLineSerializer(many=True)


class CommunicationDuePageSerializer(Serializer):
    """A page of the institutions behind their plan."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = CommunicationDueRowSerializer(many=True)


@extend_schema_view(
    list=extend_schema(
        tags=["interactions"],
        parameters=[CommunicationDueParams, OpenApiParameter("page", int), OpenApiParameter("page_size", int, description="At most 200.")],
        responses={200: CommunicationDuePageSerializer(many=False), 400: OpenApiResponse(description="Per-parameter messages.")},
        description="The institutions behind their communication plan in the periods under way (or the one just "
        "ended), the most behind first: the user's own (scope=mine), their teams' too (teams), or — managers — all "
        "they may see (all).",
    )  # fmt: skip
)
class CommunicationDueViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Contacts due under the communication plans."""

    queryset = CommunicationPlan.objects.none()
    serializer_class = CommunicationDueRowSerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.VIEW_INTERACTIONS}
    # the rows are no model's queryset (a union over the plans, ordered by the contacts missing, then the
    # institution and the plan: a total order): paged by hand, with the API's pagination
    pagination_class = None
    schema = OneObjectSchema()

    def list(self, request, *args, **kwargs):
        params = CommunicationDueParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        values = params.validated_data
        user = request.user
        oversee = plans.may_oversee(user)
        scope = values.get("scope") or ("all" if oversee else "teams")
        if scope == "all" and not oversee or values.get("owner") and not oversee:
            key = "scope" if scope == "all" and not oversee else "owner"
            raise ValidationError({key: [_("Only managers see the customers of every owner.")]})
        query = plans.Query(scope=scope, klass=values.get("klass", ""), channel=values.get("channel", ""),
                            owner=values.get("owner"))  # fmt: skip
        rows_qs, by_id, found, _period = plans.behind(user, query)
        paginator = Pagination()
        page = paginator.paginate_queryset(rows_qs, request, view=self)
        rows = plans.load_rows(list(page), by_id, found)
        for row in rows:
            row.label = picker_label(row.customer)
        return paginator.get_paginated_response(CommunicationDueRowSerializer(rows, many=True).data)
