"""REST endpoints of the assignment feature: assignment rules (service managers), agent profiles (service
managers; every agent reads and switches their own on-duty status at /agent-profiles/me/), and the
supervisor board's summary (service managers and team leads). Writes go through routing.py."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pharmacrm.core import access, viewsets
from pharmacrm.core.api_schema import OneObjectSchema
from pharmacrm.core.api_utils import (
    MAX_INT32,
    DateField,
    HasCapability,
    ModelSerializer,
    RegionCodeField,
    Serializer,
    TypedIntegerField,
    optional_version,
    settings_version,
)
from pharmacrm.core.models import Region, Team, User
from pharmacrm.core.roles import Cap
from pharmacrm.customers.choices import Tier
from pharmacrm.customers.services import ConflictError

from . import routing
from .api import CodeField
from .choices import AssignMethod
from .models import AgentProfile, AssignmentRule, Product, Ticket, TicketCategory
from .views_board import board_summary

TAG = "service assignment"

# --- rules ---------------------------------------------------------------------------------------------


class AssignmentRuleSerializer(ModelSerializer):
    name = serializers.CharField(max_length=100)
    position = TypedIntegerField(min_value=0, max_value=32767, required=False)
    active = serializers.BooleanField(required=False)
    category = CodeField(
        slug_field="code", queryset=TicketCategory.objects.all(), required=False, allow_null=True,
        help_text="Category code; empty for any category (a parent category covers its children).",
    )  # fmt: skip
    product = serializers.PrimaryKeyRelatedField(
        queryset=Product.objects.all(),
        required=False,
        allow_null=True,
        help_text="Product id; empty for any.",
    )
    customer_tier = serializers.ChoiceField(
        choices=Tier.choices, required=False, allow_blank=True,
        help_text="Matches when the ticket's person or institution has this tier.",
    )  # fmt: skip
    region = RegionCodeField(
        queryset=Region.objects.all(), required=False, allow_null=True,
        help_text="GB/T 2260 code of a province, city or district; the customer must lie inside it.",
    )  # fmt: skip
    team = serializers.PrimaryKeyRelatedField(queryset=Team.objects.all(), help_text="Team id.")
    method = serializers.ChoiceField(choices=AssignMethod.choices, required=False)
    last_assigned = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="Round robin: the last agent picked."
    )
    version = settings_version()

    class Meta:
        model = AssignmentRule
        fields = ["id", "name", "position", "active", "category", "product", "customer_tier", "region", "team",
                  "method", "last_assigned", "version"]  # fmt: skip


@extend_schema_view(
    list=extend_schema(tags=[TAG]),
    retrieve=extend_schema(tags=[TAG]),
    create=extend_schema(tags=[TAG]),
    update=extend_schema(tags=[TAG]),
    partial_update=extend_schema(tags=[TAG]),
    destroy=extend_schema(
        tags=[TAG], description="Deactivate the rule (kept, inactive).", responses={204: None}
    ),
)
class AssignmentRuleViewSet(viewsets.ModelViewSet):
    """Assignment rules, tried in `position` order: the first active rule whose every condition matches a new
    ticket decides its team and how an agent is picked."""

    queryset = AssignmentRule.objects.select_related("category", "team").order_by("position", "name", "id")
    serializer_class = AssignmentRuleSerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.MANAGE_SERVICE}
    lookup_value_regex = r"[0-9]{1,18}"
    ordering_fields = ["position", "name", "id"]
    ordering = ["position", "name", "id"]

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("version", None)
        serializer.instance = routing.create_rule(self.request.user, data)

    def perform_update(self, serializer):
        # a stale version is a 409, as on the rule's page: two managers editing the same rule do not
        # silently overwrite each other
        data = dict(serializer.validated_data)
        version = optional_version(self.request, data)
        serializer.instance = routing.update_rule(self.request.user, serializer.instance, data, version=version)

    def perform_destroy(self, instance):
        routing.deactivate_rule(self.request.user, instance, version=optional_version(self.request, {}))


# --- agent profiles ------------------------------------------------------------------------------------


class AgentProfileSerializer(ModelSerializer):
    user = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True), help_text="User id."
    )
    username = serializers.CharField(source="user.username", read_only=True)
    skills = CodeField(
        slug_field="code", queryset=TicketCategory.objects.all(), many=True, required=False,
        help_text="Category codes this person handles; empty: every category.",
    )  # fmt: skip
    products = serializers.PrimaryKeyRelatedField(
        queryset=Product.objects.all(),
        many=True,
        required=False,
        help_text="Product ids; empty: every product.",
    )
    on_duty = serializers.BooleanField(required=False)
    max_open = TypedIntegerField(min_value=1, max_value=32767, required=False)
    version = settings_version(allow_null=True)

    class Meta:
        model = AgentProfile
        fields = ["id", "user", "username", "on_duty", "max_open", "skills", "products", "version"]
        # `me` answers id (and version) null for someone without a profile yet (the defaults apply)
        extra_kwargs = {"id": {"allow_null": True}}

    def validate_user(self, value):
        if self.instance is not None and value != self.instance.user:
            raise serializers.ValidationError(_("A profile stays with its user."))
        if self.instance is None and AgentProfile.objects.filter(user=value).exists():
            raise serializers.ValidationError(_("This user has a profile already: change it instead."))
        return value


class OnDutySerializer(Serializer):
    on_duty = serializers.BooleanField()


@extend_schema_view(
    list=extend_schema(tags=[TAG], description="Service managers see every profile; others their own."),
    retrieve=extend_schema(tags=[TAG]),
    create=extend_schema(tags=[TAG]),
    update=extend_schema(tags=[TAG]),
    partial_update=extend_schema(
        tags=[TAG],
        description="Service managers change any field; an agent may PATCH `on_duty` of their own "
        "profile only.",
    ),
    destroy=extend_schema(
        tags=[TAG],
        description="Remove the profile: the user is back to the defaults (on duty, every skill).",
        responses={204: None},
    ),  # fmt: skip
)
class AgentProfileViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
    mixins.DestroyModelMixin, viewsets.GenericViewSet,
):  # fmt: skip
    """What the assignment rules know about an agent: skills, products, on duty, most open tickets."""

    queryset = AgentProfile.objects.none()  # per user: see get_queryset()
    serializer_class = AgentProfileSerializer
    permission_classes = [HasCapability]
    required_caps = {
        "create": Cap.MANAGE_SERVICE,
        "update": Cap.MANAGE_SERVICE,
        "destroy": Cap.MANAGE_SERVICE,
        "*": Cap.HANDLE_TICKETS,  # list / retrieve / partial_update (own on_duty) / me
    }
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AgentProfile.objects.none()
        qs = AgentProfile.objects.select_related("user").prefetch_related("skills", "products").order_by("id")
        if access.can(self.request.user, Cap.MANAGE_SERVICE):
            return qs
        return qs.filter(user=self.request.user)

    def _write(self, agent, data, version: int | None = None):
        if "skills" in data:
            data["skills"] = list(data["skills"])
        if "products" in data:
            data["products"] = list(data["products"])
        return routing.save_profile(self.request.user, agent, data, version=version)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("version", None)
        serializer.instance = self._write(data.pop("user"), data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("user", None)
        version = optional_version(self.request, data)
        if not access.can(self.request.user, Cap.MANAGE_SERVICE):
            if set(data) - {"on_duty"}:
                raise PermissionDenied()
            serializer.instance = routing.set_on_duty(
                self.request.user, serializer.instance.user, data.get("on_duty", True)
            )
            return
        serializer.instance = self._write(serializer.instance.user, data, version=version)

    def perform_destroy(self, instance):
        from django.db import transaction

        from pharmacrm.core import audit
        from pharmacrm.core.models import AuditEntry

        access.require(self.request.user, Cap.MANAGE_SERVICE)
        version = optional_version(self.request, {})  # If-Match, when sent: a profile changed since is kept (409)
        with transaction.atomic():
            current = type(instance).objects.select_for_update().filter(pk=instance.pk).first()
            if current is None:
                return  # deleted meanwhile
            if version is not None and version != current.version:
                raise ConflictError(current.version)
            audit.record(AuditEntry.Action.DELETE, current, user=self.request.user)
            current.delete()

    @extend_schema(
        tags=[TAG], methods=["GET"], responses=AgentProfileSerializer,
        description="The signed-in agent's own profile (the defaults when none is stored yet).",
    )  # fmt: skip
    @extend_schema(
        tags=[TAG], methods=["PATCH"], request=OnDutySerializer, responses=AgentProfileSerializer,
        description="Go on or off duty: off duty, no new tickets are assigned to you.",
    )  # fmt: skip
    @action(detail=False, methods=["get", "patch"], url_path="me")
    def me(self, request):
        user = request.user
        if request.method == "PATCH":
            body = OnDutySerializer(data=request.data)
            body.is_valid(raise_exception=True)
            profile = routing.set_on_duty(user, user, body.validated_data["on_duty"])
        else:
            profile = routing.profile_for(user)
        if profile.pk is None:
            data = {"id": None, "user": user.pk, "username": user.username, "on_duty": profile.on_duty,
                    "max_open": profile.max_open, "skills": [], "products": [], "version": None}  # fmt: skip
            return Response(data)
        return Response(self.get_serializer(profile).data)


# --- the supervisor board ------------------------------------------------------------------------------


class BoardTicketSerializer(Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField()
    subject = serializers.CharField()
    priority = serializers.CharField()
    status = serializers.CharField()
    team = serializers.IntegerField(source="team_id", allow_null=True)
    assignee = serializers.IntegerField(source="assignee_id", allow_null=True)


class BoardClockSerializer(Serializer):
    kind = serializers.CharField()
    due_at = serializers.DateTimeField()
    ticket = BoardTicketSerializer()


class BoardBreachedSerializer(BoardTicketSerializer):
    overdue_since = serializers.DateTimeField(source="next_due_at")


class BoardAgentSerializer(Serializer):
    user = serializers.IntegerField(source="user.pk")
    username = serializers.CharField(source="user.username")
    name = serializers.CharField(source="user.__str__")
    on_duty = serializers.BooleanField()
    max_open = serializers.IntegerField(allow_null=True)
    open = serializers.IntegerField(source="total")
    urgent_or_high = serializers.IntegerField(source="heavy")
    overdue = serializers.IntegerField()


class BoardIntakeSerializer(Serializer):
    category = serializers.CharField()
    name = serializers.CharField()
    label = serializers.CharField(help_text="The category's name in the request's language, as the board page shows it.")
    count = serializers.IntegerField()


class BoardSerializer(Serializer):
    at = serializers.DateTimeField(source="now")
    day = DateField(help_text="Today in China (Asia/Shanghai), for the intake.")
    teams = serializers.ListField(child=serializers.IntegerField(), source="team_ids", allow_null=True,
                                  help_text="The teams summed up; null: every team.")  # fmt: skip
    breaching_soon_count = serializers.IntegerField(source="soon_count")
    breaching_soon = BoardClockSerializer(source="soon", many=True, help_text="The first 50, earliest first.")
    breached_count = serializers.IntegerField()
    breached = BoardBreachedSerializer(many=True, help_text="The first 50, longest overdue first.")
    agents = BoardAgentSerializer(many=True)
    intake_total = serializers.IntegerField()
    intake = serializers.SerializerMethodField()

    @extend_schema_field(BoardIntakeSerializer(many=True))
    def get_intake(self, board) -> list[dict]:
        return [{"category": c.code, "name": c.name, "label": c.label, "count": n} for c, n in board.intake]


@extend_schema_view(
    list=extend_schema(
        tags=[TAG],
        operation_id="v1_service_board_list",  # the name it had: one board, not a list of them
        responses={200: BoardSerializer, 403: OpenApiResponse(description="Not a manager or team lead.")},
        parameters=[
            OpenApiParameter("team", int, description="One team's board (a team lead: one of theirs).")
        ],
        description="The supervisor board: deadlines due within two hours, breached open tickets, the load per "
        "agent and today's intake by category. Service managers see every team; team leads their own.",
    )  # fmt: skip
)
class ServiceBoardViewSet(viewsets.GenericViewSet):
    schema = OneObjectSchema()
    queryset = Ticket.objects.none()  # a summary, not a list of one model
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.VIEW_TICKETS}
    serializer_class = BoardSerializer
    pagination_class = None

    def list(self, request):
        raw = request.query_params.get("team", "")
        team = None
        if raw:
            if not (raw.isascii() and raw.isdecimal()) or int(raw) > MAX_INT32:
                raise serializers.ValidationError({"team": [_("Give a team id.")]})
            team = get_object_or_404(Team, pk=int(raw))
        board = board_summary(request.user, team)
        return Response(BoardSerializer(board).data, status=status.HTTP_200_OK)


def register(router) -> None:
    """Called by pharmacrm/api_urls.py with the v1 router."""
    router.register("assignment-rules", AssignmentRuleViewSet, basename="assignment-rule")
    router.register("agent-profiles", AgentProfileViewSet, basename="agent-profile")
    router.register("service-board", ServiceBoardViewSet, basename="service-board")
