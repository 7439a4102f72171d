"""REST API for interactions (/api/v1/interactions/): visits, calls and messages with customers.

Reads go through access.interactions_for; writes through engagement.services, which screen every text with
the safety net (a reaction mentioned puts the interaction in PV's triage queue). Each interaction shows
whether it was flagged for pharmacovigilance and, to those who may see it, the status of the case it raised."""

from __future__ import annotations

import datetime as dt

import django_filters
from django.db.models import Prefetch, Q
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.response import Response

from pharmacrm.core import access, personal, viewsets
from pharmacrm.core.api_utils import (
    MAX_INT32,
    DateTimeFilter,
    HasCapability,
    IntegerFilter,
    ModelSerializer,
    SafeDateTimeField,
    StrictBooleanFilter,
    clean_text,
    expected_version,
    versioned,
)
from pharmacrm.core.roles import Cap
from pharmacrm.customers.api import VisibleInstitutionField, VisiblePersonField
from pharmacrm.customers.forms import CUSTOMER_NAME_HELP, picker_label
from pharmacrm.customers.models import with_departments
from pharmacrm.safety.choices import SignalStatus
from pharmacrm.safety.models import Flag, SafetyCase
from pharmacrm.servicedesk.models import Product

from . import services
from .models import Interaction, InteractionChannel

MAX_ID = 2**63 - 1
EARLIEST = services.EARLIEST


def register(router) -> None:
    """Viewsets on the shared router."""
    from . import api_lifecycle, api_plans

    router.register("interactions", InteractionViewSet, basename="interaction")
    api_plans.register(router)
    api_lifecycle.register(router)


@extend_schema_field(
    {"type": "string", "enum": list(InteractionChannel.values)}, component_name="InteractionChannel"
)
class ChannelField(serializers.ChoiceField):
    """How the interaction took place (its own enum: `channel` names the tickets' channels elsewhere)."""

    def __init__(self, **kwargs):
        super().__init__(choices=InteractionChannel.choices, **kwargs)


def flag_state(interaction: Interaction) -> str:
    """pending, confirmed, dismissed (the latest flag), or "" when the net never flagged it."""
    flags = sorted(interaction.safety_flags.all(), key=lambda f: f.pk)
    pending = [f for f in flags if f.status == SignalStatus.PENDING]
    if pending:
        return SignalStatus.PENDING.value
    return flags[-1].status if flags else ""


def visible_cases(user, interaction: Interaction) -> list[SafetyCase]:
    """The cases this interaction raised whose status the user may see (access.case_status_visible)."""
    return [c for c in interaction.safety_cases.all() if access.case_status_visible(user, c)]


class InteractionSerializer(ModelSerializer):
    institution = VisibleInstitutionField(required=False, allow_null=True)
    person = VisiblePersonField(
        required=False, allow_null=True, help_text="Fills in the institution when empty."
    )
    channel = ChannelField()
    received_at = SafeDateTimeField(
        required=False, allow_null=True,
        help_text="When you heard it (default now, also when null; never in the future): day 0 for any reaction "
        "mentioned. On a change, null leaves it as it is.",
    )  # fmt: skip
    subject = serializers.CharField(max_length=200)
    notes = serializers.CharField(max_length=20000, required=False, allow_blank=True)
    product = serializers.PrimaryKeyRelatedField(
        queryset=Product.objects.filter(active=True), required=False, allow_null=True
    )
    safety_relevant = serializers.BooleanField(
        required=False, help_text="A possible adverse reaction or quality problem: pharmacovigilance is told."
    )
    institution_name = serializers.SerializerMethodField(help_text=CUSTOMER_NAME_HELP)
    person_name = serializers.CharField(source="person.name", read_only=True, allow_null=True)
    created_by = serializers.PrimaryKeyRelatedField(read_only=True)
    flagged = serializers.SerializerMethodField(
        help_text="Flagged for pharmacovigilance (by the net or by you)."
    )
    flag_status = serializers.SerializerMethodField(
        help_text="pending (awaiting triage), confirmed (a case was opened), dismissed; empty when never flagged."
    )
    cases = serializers.SerializerMethodField(
        help_text="The cases it raised, with their status (never patient data), for those who may see them."
    )
    consent_warning = serializers.SerializerMethodField(
        help_text="Set when the person withdrew their consent to marketing communication through this channel "
        "(the latest consent record for it): say so to the rep, in the request's language; empty otherwise."
    )
    version = serializers.IntegerField(
        read_only=True, help_text="Send it back with every change (409 if stale)."
    )

    class Meta:
        model = Interaction
        fields = [
            "id", "institution", "institution_name", "person", "person_name", "channel", "received_at", "subject",
            "notes", "product", "safety_relevant", "created_by", "created_at", "updated_at", "flagged", "flag_status",
            "cases", "consent_warning", "version",
        ]  # fmt: skip
        read_only_fields = ["created_at", "updated_at"]

    def to_representation(self, instance):
        """As stored, except the subject and notes with the contact details typed in them masked for a reader who
        sees personal data masked (as the pages show them); masks sent back in a change are put back as stored."""
        data = super().to_representation(instance)
        if "_free_text_masked" not in self.context:
            request = self.context.get("request")
            self.context["_free_text_masked"] = request is None or personal.masks_free_text(request.user)
        for name in personal.FREE_TEXT_OF["engagement.interaction"]:
            data[name] = personal.free_text(data.get(name), self.context["_free_text_masked"])
        return data

    def get_institution_name(self, obj: Interaction) -> str | None:
        return picker_label(obj.institution) if obj.institution_id else None

    def get_flagged(self, obj: Interaction) -> bool:
        return bool(flag_state(obj))

    def get_flag_status(self, obj: Interaction) -> str:
        return flag_state(obj)

    def get_consent_warning(self, obj: Interaction) -> str:
        warnings = self.context.get("consent_warnings")  # the list's, read for its whole page at once
        return warnings.get(obj.pk, "") if warnings is not None else services.consent_warning(obj)

    @extend_schema_field(
        {"type": "array", "items": {"type": "object", "properties": {
            "number": {"type": "string"}, "status": {"type": "string"}, "status_label": {"type": "string"}}}}
    )  # fmt: skip
    def get_cases(self, obj: Interaction) -> list[dict]:
        user = self.context["request"].user
        return [
            {"number": c.number, "status": c.status, "status_label": str(c.get_status_display())}
            for c in visible_cases(user, obj)
        ]

    def validate_received_at(self, value):
        if value is None:  # not given: now (a change: as it is), as the page's empty field
            return None
        if value < EARLIEST:
            raise serializers.ValidationError(_("This is too long ago for an interaction: check the date."))
        try:
            value.astimezone(dt.UTC)
        except (OverflowError, ValueError):
            raise serializers.ValidationError(_("Enter a valid date and time.")) from None
        return value

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        return {k: clean_text(v) if isinstance(v, str) else v for k, v in values.items()}


class InteractionFilter(django_filters.FilterSet):
    mine = StrictBooleanFilter(method="filter_mine", label="true: only those you recorded.")
    channel = django_filters.ChoiceFilter(choices=InteractionChannel.choices)
    institution = IntegerFilter(
        method="filter_institution", min_value=1, max_value=MAX_ID,
        label="A hospital's interactions include its departments' (as on its page).",
    )  # fmt: skip
    person = IntegerFilter(field_name="person_id", min_value=1, max_value=MAX_ID)
    safety_relevant = StrictBooleanFilter()
    received_after = DateTimeFilter(field_name="received_at", lookup_expr="gte", label="At or after.")
    received_before = DateTimeFilter(field_name="received_at", lookup_expr="lt", label="Before.")

    class Meta:
        model = Interaction
        fields: list[str] = []

    def filter_institution(self, queryset, name, value):
        return queryset.filter(institution_id__in=with_departments(int(value)))

    def filter_mine(self, queryset, name, value):
        if value:
            return queryset.filter(created_by=self.request.user)
        return queryset


def _with_own(qs, instance, field: str):
    """`qs` and the interaction's own `field` (its hospital, doctor or product as recorded), for a change to it."""
    pk = getattr(instance, f"{field}_id", None) if isinstance(instance, Interaction) else None
    if pk is None:
        return qs
    return qs.model.objects.filter(Q(pk__in=qs.values("pk")) | Q(pk=pk))


class KeptInstitutionField(VisibleInstitutionField):
    """Changing an interaction: its own institution stays valid when it has left the user's territory since."""

    def get_queryset(self):
        return _with_own(super().get_queryset(), self.parent.instance, "institution")


class KeptPersonField(VisiblePersonField):
    def get_queryset(self):
        return _with_own(super().get_queryset(), self.parent.instance, "person")


class KeptProductField(serializers.PrimaryKeyRelatedField):
    """Changing an interaction: its own product stays valid when it was discontinued since."""

    def get_queryset(self):
        return _with_own(Product.objects.filter(active=True), self.parent.instance, "product")


class InteractionPatchSerializer(InteractionSerializer):
    """A change sends the interaction back as it was loaded, with what changed: the visit's own hospital and
    doctor (out of the territory after the rep moved) and product (discontinued since) are accepted again,
    as on the page; another customer outside the territory or another inactive product is still refused."""

    institution = KeptInstitutionField(required=False, allow_null=True)
    person = KeptPersonField(required=False, allow_null=True, help_text="Fills in the institution when empty.")
    product = KeptProductField(required=False, allow_null=True)
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_INT32, write_only=True,
        help_text="The version you loaded (or If-Match).",
    )  # fmt: skip


@extend_schema_view(
    list=extend_schema(
        tags=["interactions"],
        description="Interactions with the customers you may see, and those you recorded; newest first.",
    ),
    retrieve=extend_schema(tags=["interactions"]),
    create=extend_schema(
        tags=["interactions"],
        responses={
            201: InteractionSerializer,
            200: OpenApiResponse(InteractionSerializer, description="The same interaction sent again within ten "
                                 "minutes (a retry): the one recorded then, not a second one."),
            400: OpenApiResponse(description="Per-field messages."),
        },
        description="Record a visit, call or message. The texts are screened by the safety net: a reaction "
        "mentioned (or `safety_relevant`) flags it for pharmacovigilance, with day 0 = `received_at`.",
    ),
    partial_update=extend_schema(
        tags=["interactions"],
        request=InteractionPatchSerializer,
        responses={
            200: InteractionSerializer,
            400: OpenApiResponse(description="Per-field messages."),
            403: OpenApiResponse(
                description="Only the author (or a role that sees every customer) may change it."
            ),
            409: OpenApiResponse(description="Stale version (with current_version)."),
        },
        description="Change an interaction; send `version` or If-Match. Screened again on save.",
    ),
)
class InteractionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Interactions (拜访 / 通话 / 微信沟通)."""

    queryset = Interaction.objects.none()
    serializer_class = InteractionSerializer
    permission_classes = [HasCapability]
    required_caps = {
        "create": Cap.RECORD_INTERACTIONS,
        "partial_update": Cap.RECORD_INTERACTIONS,
        "update": Cap.RECORD_INTERACTIONS,
        "*": Cap.VIEW_INTERACTIONS,
    }
    filterset_class = InteractionFilter
    filter_backends = [DjangoFilterBackend]
    lookup_value_regex = r"[0-9]{1,18}"
    http_method_names = ["get", "post", "patch", "head", "options"]

    @staticmethod
    def base():
        return Interaction.objects.select_related("institution__parent", "person").prefetch_related(
            Prefetch("safety_flags", queryset=Flag.objects.only("id", "interaction_id", "status")),
            Prefetch(
                "safety_cases",
                queryset=SafetyCase.objects.select_related("source_ticket", "source_interaction").only(
                    "id", "number", "status", "source_ticket", "source_interaction"
                ),
            ),
        )

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return access.interactions_for(self.request.user, self.base()).order_by("-received_at", "-id")

    def _answer(self, interaction: Interaction, code: int = status.HTTP_200_OK) -> Response:
        interaction = self.base().get(pk=interaction.pk)
        return versioned(Response(InteractionSerializer(interaction, context=self.get_serializer_context()).data,
                                  status=code), interaction)  # fmt: skip

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = list(page if page is not None else queryset)
        context = {**self.get_serializer_context(), "consent_warnings": services.consent_warnings(rows)}
        data = InteractionSerializer(rows, many=True, context=context).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def retrieve(self, request, *args, **kwargs):
        return self._answer(self.get_object())

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        interaction = services.record_interaction(request.user, dict(serializer.validated_data))
        # the same request sent again (a retry after a timeout): the interaction the first one recorded
        return self._answer(interaction, status.HTTP_200_OK if getattr(interaction, "sent_again", False)
                            else status.HTTP_201_CREATED)  # fmt: skip

    def update(self, request, *args, **kwargs):
        if not kwargs.get("partial"):
            return Response(status=status.HTTP_405_METHOD_NOT_ALLOWED)
        interaction = self.get_object()
        serializer = InteractionPatchSerializer(
            interaction, data=request.data, partial=True, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        version = expected_version(request, data.pop("version", None))
        interaction = services.update_interaction(request.user, interaction, data, version=version)
        return self._answer(interaction)
