"""REST API of sales targets: the targets (/api/v1/sales/targets/: read as scoped, set by managers) and the
attainment of a period (/api/v1/sales/attainment/?period=2026-11 | 2026-Q4 | 2026). Money is Decimal yuan as
strings; the definitions are targets.py's (docs/sales-targets.md)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.urls import path
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.response import Response

from pharmacrm.core import viewsets
from pharmacrm.core.api_utils import AmountField, HasCapability, Serializer, expected_version, versioned
from pharmacrm.core.models import Team, User
from pharmacrm.core.roles import Cap
from pharmacrm.core.viewsets import APIView

from . import targets
from .models import SalesTarget

MAX_ID = 2**63 - 1
PERIOD_HELP = "A month (2026-11), a quarter (2026-Q4) or a year (2026), China's calendar."


class SalesTargetSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    period = serializers.CharField(source="period_key", read_only=True, help_text=PERIOD_HELP)
    rep = serializers.IntegerField(
        source="user_id", read_only=True, allow_null=True, help_text="The person's user id."
    )
    rep_name = serializers.SerializerMethodField()
    team = serializers.IntegerField(source="team_id", read_only=True, allow_null=True)
    team_name = serializers.SerializerMethodField(help_text="The team's name as stored (in the product's language).")
    team_label = serializers.SerializerMethodField(
        help_text="The team's name in the request's language (Accept-Language): a team the product named (a key "
        "account's service team) reads in it; `team_name` keeps it as stored."
    )
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True, help_text="Yuan.")
    version = serializers.IntegerField(read_only=True, help_text="Send it back with a change (409 if stale).")
    updated_at = serializers.DateTimeField(read_only=True)

    def get_rep_name(self, obj) -> str | None:
        return targets.subject_label(obj.user) if obj.user_id else None

    def get_team_name(self, obj) -> str | None:
        return obj.team.name if obj.team_id else None

    def get_team_label(self, obj) -> str | None:
        return obj.team.shown_name if obj.team_id else None


class SalesTargetCreateSerializer(Serializer):
    period = serializers.CharField(max_length=10, help_text=PERIOD_HELP)
    rep = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID,
                                   help_text="A user's id; give either rep or team.")  # fmt: skip
    team = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID)
    amount = AmountField(min_value=0, help_text="Yuan, at most 12 "
                                      "digits before the decimal point and two after.")  # fmt: skip

    def validate_period(self, value):
        try:
            return targets.parse_period(value)
        except DjangoValidationError as e:
            raise serializers.ValidationError(e.message_dict["period"]) from None

    def validate(self, data):
        rep, team = data.get("rep"), data.get("team")
        if bool(rep) == bool(team):
            raise serializers.ValidationError({"rep": [_("Give either a rep or a team.")]})
        if rep:
            data["subject"] = User.objects.filter(pk=rep, is_active=True).first()
            if data["subject"] is None:
                raise serializers.ValidationError({"rep": [_("No such active user.")]})
        else:
            data["subject"] = Team.objects.filter(pk=team).first()
            if data["subject"] is None:
                raise serializers.ValidationError({"team": [_("No such team.")]})
        return data


class SalesTargetUpdateSerializer(Serializer):
    amount = AmountField(min_value=0, help_text="Yuan.")
    version = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID,
                                       help_text="The version you loaded (or If-Match); 409 if stale.")  # fmt: skip


LIST_PARAMETERS = [
    OpenApiParameter("year", int, description="Targets of this year (2026)."),
    OpenApiParameter(
        "period", str, description=PERIOD_HELP + " Only the targets set for exactly this period."
    ),
]


class SalesTargetViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Sales targets per person or team and period. Reading: managers, administrators, analysts and auditors all;
    a team lead their teams' and members'; a rep their own and their teams'. Setting: Set the sales targets."""

    queryset = SalesTarget.objects.none()
    serializer_class = SalesTargetSerializer
    permission_classes = [HasCapability]
    required_caps = {a: Cap.SET_SALES_TARGETS for a in ("create", "update", "partial_update", "destroy")}
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        qs = targets.targets_for(self.request.user).select_related("user", "team")
        if self.action == "list":
            params = self.request.query_params
            year = (params.get("year") or "").strip()
            if year:
                try:
                    qs = qs.filter(year=targets.parse_year(year, 0))
                except DjangoValidationError as e:
                    raise exceptions.ValidationError(e.message_dict) from None
            if (params.get("period") or "").strip():
                try:
                    p = targets.parse_period(params["period"])
                except DjangoValidationError as e:
                    raise exceptions.ValidationError(e.message_dict) from None
                qs = qs.filter(Q(year=p.year, kind=p.kind, number=p.number))
        return qs.order_by("year", "kind", "number", "id")

    @extend_schema(tags=["purchases"], parameters=LIST_PARAMETERS,
                   responses={200: SalesTargetSerializer(many=True), 400: OpenApiResponse(description="A bad year or period."),
                              403: OpenApiResponse(description="Neither a rep, a team lead nor a manager.")})  # fmt: skip
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(tags=["purchases"])
    def retrieve(self, request, *args, **kwargs):
        obj = self.get_object()
        return versioned(Response(SalesTargetSerializer(obj).data), obj)

    @extend_schema(
        tags=["purchases"], request=SalesTargetCreateSerializer,
        responses={201: SalesTargetSerializer, 400: OpenApiResponse(description="A field is missing or invalid; the "
                   "target exists already (change it instead)."), 403: OpenApiResponse(description="Not a manager.")},
        description="Set a target (audited). One per person or team and period.",
    )  # fmt: skip
    def create(self, request, *args, **kwargs):
        body = SalesTargetCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        period, subject = data["period"], data["subject"]
        exists = SalesTarget.objects.filter(**targets._filter(subject, period)).exists()
        if exists:
            raise exceptions.ValidationError(
                {"period": [_("This target is set already: change it instead.")]}
            )
        fen = targets.amount_fen(data["amount"])
        targets.apply(request.user, [targets.Change(subject, period, fen, 0)], source="api")
        obj = SalesTarget.objects.select_related("user", "team").get(**targets._filter(subject, period))
        return versioned(Response(SalesTargetSerializer(obj).data, status=status.HTTP_201_CREATED), obj)

    @extend_schema(
        tags=["purchases"], request=SalesTargetUpdateSerializer,
        responses={200: SalesTargetSerializer, 400: OpenApiResponse(description="A bad amount, or no version."),
                   409: OpenApiResponse(description="Changed since the version you loaded.")},
        description="Change a target's amount (audited); send `version` or If-Match.",
    )  # fmt: skip
    def update(self, request, *args, **kwargs):
        obj = self.get_object()
        body = SalesTargetUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = expected_version(request, body.validated_data.get("version"))
        subject = obj.user if obj.user_id else obj.team
        period = targets.Period(obj.kind, obj.year, obj.number)
        fen = targets.amount_fen(body.validated_data["amount"])
        if obj.version != version:
            from pharmacrm.customers.services import ConflictError

            raise ConflictError(obj.version)
        targets.apply(request.user, [targets.Change(subject, period, fen, version)], source="api")
        obj = SalesTarget.objects.select_related("user", "team").get(pk=obj.pk)
        return versioned(Response(SalesTargetSerializer(obj).data), obj)

    @extend_schema(tags=["purchases"], request=SalesTargetUpdateSerializer)
    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, **kwargs)

    @extend_schema(tags=["purchases"], request=None,
                   responses={204: None, 409: OpenApiResponse(description="If-Match names an older version.")})  # fmt: skip
    def destroy(self, request, *args, **kwargs):
        obj = self.get_object()
        version = None
        if request.headers.get("If-Match"):
            version = expected_version(request, None)
        subject = obj.user if obj.user_id else obj.team
        period = targets.Period(obj.kind, obj.year, obj.number)
        targets.apply(request.user, [targets.Change(subject, period, None, version)], source="api")
        return Response(status=status.HTTP_204_NO_CONTENT)


class AttainmentRowSerializer(Serializer):
    key = serializers.CharField(help_text="u<user id>, t<team id> or total.")
    name = serializers.CharField(source="label")
    target = serializers.DecimalField(max_digits=16, decimal_places=2, allow_null=True)
    actual = serializers.DecimalField(max_digits=16, decimal_places=2)
    attainment_percent = serializers.DecimalField(source="attainment_pct", max_digits=12, decimal_places=1,
                                                  allow_null=True)  # fmt: skip
    gap = serializers.DecimalField(max_digits=16, decimal_places=2, allow_null=True,
                                   help_text="Target − actual: still to sell (negative once exceeded).")  # fmt: skip
    last_year = serializers.DecimalField(
        max_digits=16, decimal_places=2, help_text="The same period a year earlier."
    )
    growth_percent = serializers.DecimalField(
        source="growth_pct", max_digits=12, decimal_places=1, allow_null=True
    )
    projected = serializers.DecimalField(max_digits=18, decimal_places=2, allow_null=True,
                                         help_text="The actual at this pace over the whole period.")  # fmt: skip
    on_pace = serializers.BooleanField(
        allow_null=True, help_text="Attainment ≥ the share of the period elapsed."
    )


class AttainmentSerializer(Serializer):
    period = serializers.CharField(source="period.key")
    last_year_period = serializers.CharField(source="last_year.key")
    scope = serializers.CharField(source="scope.kind", help_text="all, teams (a team lead) or own (a rep).")
    days = serializers.IntegerField()
    elapsed_days = serializers.IntegerField(
        source="elapsed", help_text="Beijing days elapsed, today included."
    )
    elapsed_percent = serializers.DecimalField(source="elapsed_pct", max_digits=5, decimal_places=1)
    people = AttainmentRowSerializer(many=True)
    people_total = AttainmentRowSerializer()
    teams = AttainmentRowSerializer(many=True)
    teams_total = AttainmentRowSerializer()


class AttainmentView(APIView):
    permission_classes = [HasCapability]
    required_caps: dict = {}

    @extend_schema(
        tags=["purchases"],
        parameters=[OpenApiParameter("period", str, description=PERIOD_HELP + " The current month by default.")],
        responses={200: AttainmentSerializer, 400: OpenApiResponse(description="A bad period."),
                   403: OpenApiResponse(description="Neither a rep, a team lead nor a manager.")},
        description="Target, actual (the purchases of the customers each person owns now; a team: the customers of "
        "the team now), attainment, gap, last year's same period, growth and run rate, per person and per team "
        "as you may see them.",
    )  # fmt: skip
    def get(self, request):
        targets.scope_for(request.user)  # 403 before a bad period's 400
        raw = request.query_params.get("period", "")
        try:
            period = targets.parse_period(raw) if raw.strip() else targets.current_period("month")
        except DjangoValidationError as e:
            return Response(e.message_dict, status=status.HTTP_400_BAD_REQUEST)
        return Response(AttainmentSerializer(targets.report(request.user, period)).data)


def register(router) -> None:
    router.register("sales/targets", SalesTargetViewSet, basename="sales-target")


urlpatterns = [path("attainment/", AttainmentView.as_view(), name="sales-attainment")]
