"""REST API of the sales pipeline: opportunities (/api/v1/sales/opportunities/: read as scoped, created and changed by
those who work them, moved with POST …/{id}/move/) and the funnel of a period (/api/v1/sales/funnel/?period=2026-Q4).
Money is Decimal yuan as strings; the rules and definitions are pipeline.py's (docs/sales-pipeline.md)."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import path
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pharmacrm.core import access, personal, viewsets
from pharmacrm.core.api_utils import (
    AmountField,
    DateField,
    HasCapability,
    IntegerFilter,
    Serializer,
    StrictBooleanFilter,
    expected_version,
    versioned,
)
from pharmacrm.core.models import Team, User
from pharmacrm.core.roles import Cap
from pharmacrm.core.viewsets import APIView
from pharmacrm.customers.choices import Source
from pharmacrm.customers.models import Institution, Person
from pharmacrm.servicedesk.models import Product

from . import pipeline
from .forms_pipeline import month_range
from .models import Opportunity, yuan

MAX_ID = 2**63 - 1
PERIOD_HELP = "A month (2026-11), a quarter (2026-Q4) or a year (2026), China's calendar."
API_NAMES = {"amount_fen": "amount", "institution": "customer"}


def _api_errors(e: DjangoValidationError) -> exceptions.ValidationError:
    if hasattr(e, "error_dict"):
        return exceptions.ValidationError({API_NAMES.get(k, k): v for k, v in e.message_dict.items()})
    return exceptions.ValidationError({"non_field_errors": e.messages})


class OpportunitySerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    title = serializers.CharField(read_only=True)
    customer = serializers.IntegerField(
        source="institution_id", read_only=True, help_text="The institution's id."
    )
    customer_name = serializers.CharField(source="institution.name", read_only=True)
    contact = serializers.IntegerField(source="contact_id", read_only=True, allow_null=True)
    product = serializers.IntegerField(source="product_id", read_only=True, allow_null=True)
    amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, read_only=True, help_text="Expected, in yuan."
    )
    close_date = serializers.DateField(read_only=True, help_text="Expected close date.")
    stage = serializers.ChoiceField(choices=Opportunity.Stage.choices, read_only=True)
    probability = serializers.SerializerMethodField(help_text="The stage's probability, %.")
    weighted = serializers.SerializerMethodField(help_text="Amount × probability, yuan.")
    owner = serializers.IntegerField(source="owner_id", read_only=True, allow_null=True)
    owner_name = serializers.SerializerMethodField()
    team = serializers.IntegerField(source="team_id", read_only=True, allow_null=True)
    source = serializers.CharField(read_only=True)
    competitor = serializers.CharField(read_only=True)
    next_step = serializers.CharField(read_only=True)
    next_step_date = serializers.DateField(read_only=True, allow_null=True)
    lost_reason = serializers.CharField(read_only=True)
    lost_note = serializers.CharField(read_only=True)
    won_on = serializers.DateField(read_only=True, allow_null=True)
    closed_on = serializers.DateField(read_only=True, allow_null=True)
    stale = serializers.SerializerMethodField(
        help_text="Open, and its next-step or expected close date has passed."
    )
    version = serializers.IntegerField(
        read_only=True, help_text="Send it back with a change or a move (409 if stale)."
    )
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def get_probability(self, obj) -> int:
        return pipeline.probability(obj.stage)

    def get_weighted(self, obj) -> str:
        return str(yuan(round(obj.amount_fen * pipeline.probability(obj.stage) / 100)))

    def get_owner_name(self, obj) -> str | None:
        return (obj.owner.display_name or obj.owner.username) if obj.owner_id else None

    def get_stale(self, obj) -> bool:
        return bool(pipeline.staleness(obj, self.context.get("today") or pipeline.beijing_today()))

    def to_representation(self, instance):
        """The next step and the lost reason's details with the contact details typed in them masked for a reader
        who sees personal data masked (the analyst, the auditor), as the opportunity's page shows them."""
        return personal.shown_fields(self.context, super().to_representation(instance), "sales.opportunity")


class OpportunityWriteSerializer(Serializer):
    customer = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The institution's id.")
    contact = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID)
    title = serializers.CharField(max_length=200)
    product = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID)
    amount = AmountField(min_value=0, help_text="Yuan.")
    close_date = DateField()
    stage = serializers.ChoiceField(choices=Opportunity.Stage.choices, required=False,
                                    help_text="Where a new one starts, an open stage (lead by default); a change moves "
                                    "with move/.")  # fmt: skip
    owner = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID,
                                     help_text="The customer's owner by default.")  # fmt: skip
    team = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID)
    source = serializers.ChoiceField(choices=Source.choices, required=False, allow_blank=True)
    competitor = serializers.CharField(max_length=100, required=False, allow_blank=True)
    next_step = serializers.CharField(max_length=200, required=False, allow_blank=True)
    next_step_date = DateField(required=False, allow_null=True)
    version = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID,
                                       help_text="For a change: the version you loaded (or If-Match).")  # fmt: skip

    def resolve(self, user) -> dict:
        """The validated values as pipeline.py takes them (ids → records), naming the field of an unknown id."""
        d = dict(self.validated_data)
        out: dict = {}
        errors: dict = {}
        lookups = (("customer", "institution", access.institutions_for(user, Institution.objects.active()),
                    _("No such customer, or you may not see it.")),
                   ("contact", "contact", access.people_for(user, Person.objects.active()), _("No such person, or you may not see them.")),
                   ("product", "product", Product.objects.all(), _("No such product.")),
                   ("owner", "owner", User.objects.filter(is_active=True), _("No such active user.")),
                   ("team", "team", Team.objects.all(), _("No such team.")))  # fmt: skip
        for key, name, qs, message in lookups:
            if key not in d:
                continue
            if d[key] is None:
                out[name] = None
                continue
            obj = qs.filter(pk=d[key]).first()
            if obj is None:
                errors[key] = [message]
            out[name] = obj
        if errors:
            raise exceptions.ValidationError(errors)
        if "amount" in d:
            out["amount_fen"] = int(d["amount"] * 100)
        for key in ("title", "close_date", "source", "competitor", "next_step", "next_step_date"):
            if key in d:
                out[key] = d[key]
        return out


class MoveSerializer(Serializer):
    stage = serializers.ChoiceField(choices=Opportunity.Stage.choices)
    lost_reason = serializers.ChoiceField(choices=Opportunity.LostReason.choices, required=False, allow_blank=True,
                                          help_text="Required to move to lost.")  # fmt: skip
    lost_note = serializers.CharField(
        required=False, allow_blank=True, help_text="Required for the reason other."
    )
    won_on = DateField(
        required=False, allow_null=True, help_text="Won: the day (today by default)."
    )
    next_step = serializers.CharField(max_length=200, required=False, allow_blank=True)
    next_step_date = DateField(required=False, allow_null=True)
    version = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID,
                                       help_text="The version you loaded (or If-Match): 409 if someone moved it first.")  # fmt: skip


class OpportunityFilter(django_filters.FilterSet):
    mine = StrictBooleanFilter(method="filter_mine", label="Only the user's own (true).")
    # ids as the other APIs read them: digits up to a database id (a longer one failed in the database, 500; 1.5
    # was read as 1)
    owner = IntegerFilter(field_name="owner_id", min_value=1, max_value=MAX_ID)
    team = IntegerFilter(field_name="team_id", min_value=1, max_value=MAX_ID)
    customer = IntegerFilter(field_name="institution_id", min_value=1, max_value=MAX_ID)
    product = IntegerFilter(field_name="product_id", min_value=1, max_value=MAX_ID)
    stage = django_filters.ChoiceFilter(choices=Opportunity.Stage.choices)
    close_month = django_filters.CharFilter(
        method="filter_close_month", label="Expected close month, 2026-12."
    )
    province = django_filters.CharFilter(field_name="institution__province", label="Province code, 110000.")
    stale = StrictBooleanFilter(method="filter_stale", label="Only the stale (true).")

    class Meta:
        model = Opportunity
        fields: list[str] = []

    def filter_mine(self, qs, name, value):
        return qs.filter(owner_id=self.request.user.pk) if value else qs

    def filter_close_month(self, qs, name, value):
        try:
            first, after = month_range(value)
        except DjangoValidationError as e:
            raise exceptions.ValidationError({"close_month": e.messages}) from None
        return qs.filter(close_date__gte=first, close_date__lt=after)

    def filter_stale(self, qs, name, value):
        q = pipeline.stale_q(pipeline.beijing_today())
        return qs.filter(q) if value else qs.exclude(q)


@extend_schema_view(
    list=extend_schema(tags=["purchases"], responses={200: OpportunitySerializer(many=True),
                       403: OpenApiResponse(description="Neither a rep, a key-account manager, a manager nor an analyst.")}),
    retrieve=extend_schema(tags=["purchases"]),
)  # fmt: skip
class OpportunityViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):  # fmt: skip
    """Sales opportunities (商机). Reading: managers, administrators, analysts and auditors all; reps and key-account
    managers their own and their teams' (a team lead the teams they lead). Creating, changing and moving: Work sales
    opportunities, within that scope."""

    queryset = Opportunity.objects.none()
    serializer_class = OpportunitySerializer
    permission_classes = [HasCapability]
    required_caps = {a: Cap.WORK_PIPELINE for a in ("create", "update", "partial_update", "move")}
    filterset_class = OpportunityFilter
    ordering_fields = ["close_date", "amount_fen", "created_at", "updated_at", "id"]
    ordering = ["close_date", "id"]
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        if not pipeline.may_see(self.request.user):
            raise exceptions.PermissionDenied()
        return pipeline.opportunities_for(self.request.user).select_related("institution", "owner")

    @extend_schema(
        tags=["purchases"], request=OpportunityWriteSerializer,
        responses={201: OpportunitySerializer, 400: OpenApiResponse(description="A field is missing or invalid (named)."),
                   403: OpenApiResponse(description="May not work opportunities.")},
        description="Create an opportunity (audited) at an open stage; the customer's lifecycle stage moves forward.",
    )  # fmt: skip
    def create(self, request, *args, **kwargs):
        body = OpportunityWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.resolve(request.user)
        try:
            opp = pipeline.create(
                request.user, data, stage=body.validated_data.get("stage") or pipeline.S.LEAD, source="api"
            )
        except DjangoValidationError as e:
            raise _api_errors(e) from None
        opp = Opportunity.objects.select_related("institution", "owner").get(pk=opp.pk)
        return versioned(Response(OpportunitySerializer(opp, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED), opp)

    @extend_schema(tags=["purchases"])
    def retrieve(self, request, *args, **kwargs):
        obj = self.get_object()
        return versioned(Response(OpportunitySerializer(obj, context=self.get_serializer_context()).data), obj)

    def _change(self, request, partial: bool):
        obj = self.get_object()
        pipeline.require_change(request.user, obj)
        body = OpportunityWriteSerializer(data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        version = expected_version(request, body.validated_data.get("version"))
        values = body.resolve(request.user)
        if values.get("institution") is not None and values["institution"].pk != obj.institution_id:
            raise exceptions.ValidationError(
                {"customer": [_("An opportunity stays with its customer: create another one.")]}
            )
        values.pop("institution", None)
        if not partial:
            for key in ("contact", "product", "next_step_date"):
                values.setdefault(key, None)
            for key in ("competitor", "next_step", "source"):
                values.setdefault(key, "")
        try:
            opp = pipeline.update(request.user, obj, values, version, source="api")
        except DjangoValidationError as e:
            raise _api_errors(e) from None
        opp = Opportunity.objects.select_related("institution", "owner").get(pk=opp.pk)
        return versioned(Response(OpportunitySerializer(opp, context=self.get_serializer_context()).data), opp)

    @extend_schema(
        tags=["purchases"], request=OpportunityWriteSerializer,
        responses={200: OpportunitySerializer, 400: OpenApiResponse(description="A field is invalid, or no version."),
                   409: OpenApiResponse(description="Changed or moved by someone else since the version you loaded.")},
        description="Change an opportunity's details (audited; not its stage: move/). Send `version` or If-Match.",
    )  # fmt: skip
    def update(self, request, *args, **kwargs):
        return self._change(request, partial=False)

    @extend_schema(tags=["purchases"], request=OpportunityWriteSerializer)
    def partial_update(self, request, *args, **kwargs):
        return self._change(request, partial=True)

    @extend_schema(
        tags=["purchases"], request=MoveSerializer,
        responses={200: OpportunitySerializer, 400: OpenApiResponse(description="No lost reason, a bad stage or day."),
                   409: OpenApiResponse(description="Moved or changed by someone else since the version you loaded.")},
        description="Move the opportunity to another stage (audited, in its history); lost needs `lost_reason`.",
    )  # fmt: skip
    @action(detail=True, methods=["post"])
    def move(self, request, pk=None):
        obj = self.get_object()
        pipeline.require_change(request.user, obj)
        body = MoveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        version = expected_version(request, d.get("version"))
        try:
            opp = pipeline.move(request.user, obj, d["stage"], version, lost_reason=d.get("lost_reason", ""),
                                lost_note=d.get("lost_note", ""), won_on=d.get("won_on"), next_step=d.get("next_step"),
                                next_step_date=d.get("next_step_date"), source="api")  # fmt: skip
        except DjangoValidationError as e:
            raise _api_errors(e) from None
        opp = Opportunity.objects.select_related("institution", "owner").get(pk=opp.pk)
        return versioned(Response(OpportunitySerializer(opp, context=self.get_serializer_context()).data), opp)


class FigureSerializer(Serializer):
    key = serializers.CharField(help_text="u<user id>, t<team id> or total.")
    name = serializers.CharField(source="label")
    created = serializers.IntegerField()
    reached = serializers.ListField(child=serializers.IntegerField(),
                                    help_text="Created in the period, per stage reached: lead, needs, proposal, negotiation, won.")  # fmt: skip
    conversion_percent = serializers.ListField(source="conversions", child=serializers.DecimalField(
        max_digits=6, decimal_places=1, allow_null=True), help_text="Each stage to the next.")  # fmt: skip
    won = serializers.IntegerField()
    lost = serializers.IntegerField()
    win_rate_percent = serializers.DecimalField(
        source="win_rate", max_digits=6, decimal_places=1, allow_null=True
    )
    won_amount = serializers.DecimalField(max_digits=16, decimal_places=2)
    average_deal = serializers.DecimalField(max_digits=16, decimal_places=2, allow_null=True)
    average_days_to_win = serializers.DecimalField(max_digits=8, decimal_places=1, allow_null=True)
    open_count = serializers.IntegerField()
    open_amount = serializers.DecimalField(max_digits=16, decimal_places=2)
    weighted = serializers.DecimalField(max_digits=16, decimal_places=2)


class ForecastSerializer(Serializer):
    month = serializers.CharField(
        source="key", help_text="2026-12; overdue: close dates before this month; later."
    )
    count = serializers.IntegerField()
    amount = serializers.DecimalField(max_digits=16, decimal_places=2)
    weighted = serializers.DecimalField(max_digits=16, decimal_places=2)


class LostReasonSerializer(Serializer):
    reason = serializers.CharField()
    label = serializers.CharField()
    count = serializers.IntegerField()


class FunnelSerializer(Serializer):
    period = serializers.CharField(source="period.key")
    scope = serializers.CharField(source="scope.kind", help_text="all, or own (their own and their teams').")
    total = FigureSerializer()
    owners = FigureSerializer(many=True)
    teams = FigureSerializer(many=True)
    forecast = ForecastSerializer(many=True)
    lost_reasons = serializers.SerializerMethodField()

    def get_lost_reasons(self, obj) -> list[dict]:
        return [{"reason": c, "label": label, "count": n} for c, label, n in obj.lost_reasons]


class FunnelView(APIView):
    permission_classes = [HasCapability]
    required_caps: dict = {}

    @extend_schema(
        tags=["purchases"],
        parameters=[OpenApiParameter("period", str, description=PERIOD_HELP + " The current quarter by default.")],
        responses={200: FunnelSerializer, 400: OpenApiResponse(description="A bad period."),
                   403: OpenApiResponse(description="Neither a rep, a key-account manager, a manager nor an analyst.")},
        description="The funnel of the opportunities created in the period, conversion, win rate, deal size and days "
        "to win of those closed in it, lost reasons, and the weighted forecast of the open ones now; in total, per "
        "owner and per team, as you may see them.",
    )  # fmt: skip
    def get(self, request):
        pipeline.scope_for(request.user)  # 403 before a bad period's 400
        raw = request.query_params.get("period", "")
        try:
            period = pipeline.parse_period(raw) if raw.strip() else pipeline.current_period("quarter")
        except DjangoValidationError as e:
            return Response(e.message_dict, status=status.HTTP_400_BAD_REQUEST)
        return Response(FunnelSerializer(pipeline.funnel(request.user, period)).data)


def register(router) -> None:
    router.register("sales/opportunities", OpportunityViewSet, basename="sales-opportunity")


urlpatterns = [path("funnel/", FunnelView.as_view(), name="sales-funnel")]
