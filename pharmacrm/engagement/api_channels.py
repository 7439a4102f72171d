"""API of the channel effect: GET /api/v1/engagement/channels/ — the figures of views_channels' page (channels.py;
the definitions in docs/interactions.md)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from pharmacrm.core.api_utils import HasCapability, Serializer
from pharmacrm.core.roles import Cap
from pharmacrm.core.viewsets import APIView
from pharmacrm.sales.models import yuan

from . import channels
from .views_channels import ChannelForm


class ChannelFiguresSerializer(Serializer):
    channel = serializers.CharField(help_text="visit, phone, wechat, email, meeting, other; '' for all channels.")
    label = serializers.CharField()
    contacts = serializers.IntegerField()
    share_percent = serializers.FloatField(source="share", allow_null=True)
    customers = serializers.IntegerField(help_text="Customers reached (a hospital with its departments and doctors).")
    people = serializers.IntegerField()
    judged = serializers.IntegerField(help_text="Customers whose window has ended.")
    window_open = serializers.IntegerField(source="open", help_text="Customers contacted too recently to judge.")
    ordered = serializers.IntegerField(help_text="Judged customers with an order line dated in their window.")
    conversion_percent = serializers.FloatField(source="conversion", allow_null=True)
    previous_conversion_percent = serializers.FloatField(source="previous_conversion", allow_null=True)
    advanced = serializers.IntegerField(help_text="Judged customers with an opportunity opened or moved forward.")
    advance_percent = serializers.FloatField(source="advance_rate", allow_null=True)
    purchases_before = serializers.SerializerMethodField()
    purchases_after = serializers.SerializerMethodField()
    change_percent = serializers.FloatField(source="change", allow_null=True)

    def get_purchases_before(self, obj) -> str:
        return str(yuan(obj.before_fen))

    def get_purchases_after(self, obj) -> str:
        return str(yuan(obj.after_fen))


class ChannelReportSerializer(Serializer):
    period = serializers.CharField(source="query.period.key")
    previous_period = serializers.CharField(source="query.period.previous.key")
    window_days = serializers.IntegerField(source="query.window")
    scope = serializers.CharField(source="query.scope")
    as_of = serializers.DateField(source="today")
    channels_used = serializers.IntegerField()
    rows = ChannelFiguresSerializer(many=True)
    total = ChannelFiguresSerializer()


class ChannelEffectView(APIView):
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.VIEW_INTERACTIONS}

    @extend_schema(
        tags=["interactions"],
        operation_id="v1_engagement_channels",
        parameters=[
            OpenApiParameter("period", str, description="A month (2026-11), a quarter (2026-Q4) or a year (2026); by "
                             "default the latest month whose windows have all ended."),
            OpenApiParameter("window", int, enum=list(channels.WINDOWS), description="Days after the first contact."),
            OpenApiParameter("scope", str, enum=list(channels.SCOPES)),
        ],
        responses={200: ChannelReportSerializer,
                   400: OpenApiResponse(description="A parameter is not valid: {field: [message]}."),
                   403: OpenApiResponse(description="Not a role that sees customers, interactions and purchases.")},
        description="The effect of each interaction channel (沟通渠道效果) in a period: contacts, customers and people "
        "reached, and of the customers whose window has ended the share that ordered, the opportunities opened or "
        "moved forward, and the purchases of the window against the same number of days before. Sales roles, "
        "key-account managers, managers, analysts and auditors, over the customers they may see.",
    )  # fmt: skip
    def get(self, request):
        if not channels.may_see(request.user):
            raise PermissionDenied
        form = ChannelForm(request.query_params)
        if not form.is_valid():
            raise serializers.ValidationError({k: [str(m) for m in v] for k, v in form.errors.items()})
        return Response(ChannelReportSerializer(channels.report(request.user, form.query())).data)


urlpatterns = [path("engagement/channels/", ChannelEffectView.as_view(), name="engagement-channels")]
