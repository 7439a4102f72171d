"""REST endpoints: the user's own notifications, and for service administrators the webhook endpoints and
the delivery log. Writes go through services.py (capability check, validation, audit)."""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pharmacrm.core import viewsets
from pharmacrm.core.api_utils import (
    HasCapability,
    IntegerFilter,
    ModelSerializer,
    Serializer,
    StrictBooleanFilter,
    optional_version,
    settings_version,
)
from pharmacrm.core.roles import Cap

from . import services
from .models import Delivery, Notification, WebhookEndpoint

MAX_ID = 2**63 - 1


# --- notifications ---------------------------------------------------------------------------------


class NotificationSerializer(ModelSerializer):
    read = serializers.SerializerMethodField()
    kind = serializers.CharField(read_only=True, help_text="What it is about: ticket.escalated, keyaccounts.overdue …")
    title = serializers.CharField(source="shown_title", read_only=True,
                                  help_text="The title in the request's language (Accept-Language).")
    body = serializers.SerializerMethodField(
        help_text="The text in the request's language; empty when what it is about is out of your reach now."
    )

    class Meta:
        model = Notification
        fields = [
            "id",
            "kind",
            "title",
            "body",
            "url",
            "object_type",
            "object_id",
            "created_at",
            "read_at",
            "read",
        ]
        read_only_fields = fields

    def get_read(self, obj: Notification) -> bool:
        return obj.read_at is not None

    def get_body(self, obj: Notification) -> str:
        hidden = self.context.get("withheld")
        if hidden is None:
            hidden = services.withheld(self.context["request"].user, [obj])
        return "" if obj.pk in hidden else obj.shown_body


class MarkReadSerializer(Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False, max_length=1000,
        help_text="The notifications to mark read.",
    )  # fmt: skip
    all = serializers.BooleanField(
        required=False, default=False, help_text="Mark every unread notification read."
    )
    up_to = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID,
        help_text="With all=true: only those up to this id (the newest you showed), not one that arrived since.",
    )  # fmt: skip

    def validate(self, attrs):
        if not attrs.get("all") and not attrs.get("ids"):
            raise serializers.ValidationError({"ids": [_("Give the ids to mark read, or all=true.")]})
        return attrs


class MarkedSerializer(Serializer):
    marked = serializers.IntegerField()
    unread = serializers.IntegerField()


class UnreadSerializer(Serializer):
    unread = serializers.IntegerField()


class NotificationFilter(django_filters.FilterSet):
    unread = StrictBooleanFilter(
        field_name="read_at", lookup_expr="isnull", label="Only unread (true) or only read (false)."
    )
    kind = django_filters.CharFilter()

    class Meta:
        model = Notification
        fields: list[str] = []


@extend_schema_view(
    list=extend_schema(tags=["notifications"]), retrieve=extend_schema(tags=["notifications"])
)
class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The signed-in user's own notifications (the bell), newest first."""

    serializer_class = NotificationSerializer
    permission_classes = [HasCapability]
    filterset_class = NotificationFilter
    ordering_fields = ["created_at", "id"]
    ordering = ["-created_at", "-id"]
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Notification.objects.none()
        return Notification.objects.filter(recipient=self.request.user)

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = services.shown_to(request.user, page if page is not None else queryset)
        # the texts the reader may no longer read, for the whole page at once
        context = {**self.get_serializer_context(), "withheld": services.withheld(request.user, rows)}
        data = NotificationSerializer(rows, many=True, context=context).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    @extend_schema(
        request=MarkReadSerializer, responses=MarkedSerializer, tags=["notifications"], filters=False,
        description="Mark some (ids) or all (all=true) of your notifications read.",
    )  # fmt: skip
    @action(detail=False, methods=["post"], url_path="mark-read", filter_backends=[], pagination_class=None)
    def mark_read(self, request):
        s = MarkReadSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        ids = "all" if s.validated_data.get("all") else s.validated_data["ids"]
        n = services.mark_read(request.user, ids, up_to=s.validated_data.get("up_to"))
        return Response({"marked": n, "unread": services.unread_count(request.user)})

    @extend_schema(responses=UnreadSerializer, tags=["notifications"], filters=False)
    @action(detail=False, methods=["get"], url_path="unread-count", filter_backends=[], pagination_class=None)
    def unread_count(self, request):
        return Response({"unread": services.unread_count(request.user)})


# --- webhook endpoints -----------------------------------------------------------------------------


class WebhookEndpointSerializer(ModelSerializer):
    name = serializers.CharField(max_length=100)
    url = serializers.CharField(
        max_length=500, help_text="http:// or https:// address of the receiver or bot."
    )
    format = serializers.ChoiceField(choices=WebhookEndpoint.Format.choices, required=False)
    events = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=100,
        help_text="Event names (e.g. ticket.created, ticket.breached); empty: every event.",
    )  # fmt: skip
    active = serializers.BooleanField(required=False)
    secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=200,
        help_text="Signing secret; generated when empty on create and returned once in the creation answer "
        "(`secret`). Never returned otherwise; send a new one to replace it.",
    )  # fmt: skip

    version = settings_version()

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "name", "url", "format", "events", "active", "created_at", "secret", "version"]
        read_only_fields = ["id", "created_at"]


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text="The signing secret, shown this once.")


class DeliverySerializer(ModelSerializer):
    target = serializers.CharField(read_only=True, help_text="The e-mail address or the endpoint's name.")
    # a webhook's delivery has none: "" is no e-mail address, so the field is text, not format "email"
    email = serializers.CharField(read_only=True, help_text="The address of an e-mail; empty for a webhook's.")
    payload = serializers.SerializerMethodField(
        help_text="What was sent: a webhook's event; for an e-mail its subject only (the body is the recipient's)."
    )

    last_error = serializers.CharField(
        source="last_error_shown", read_only=True,
        help_text="Why the last attempt failed: our own reasons in the request's language, the receiver's answer "
        "as it came.",
    )  # fmt: skip
    log = serializers.SerializerMethodField(help_text="The attempts, oldest first: {at, attempt, code, error}.")

    def get_log(self, obj) -> list:
        from pharmacrm.core import notsent

        return [{**entry, "error": notsent.shown(entry.get("error"))} if isinstance(entry, dict) else entry
                for entry in obj.log or ()]  # fmt: skip

    def get_payload(self, obj) -> dict:
        # an e-mail's body is written for its recipient (a PV officer's quality complaint, say): the service
        # managers who read the log see that it went, to whom and with what subject
        if obj.channel == Delivery.Channel.EMAIL and isinstance(obj.payload, dict):
            return {"subject": obj.payload.get("subject", "")}
        return obj.payload

    class Meta:
        model = Delivery
        fields = [
            "id", "notification", "channel", "email", "endpoint", "target", "event", "payload", "status", "attempts",
            "next_attempt_at", "last_error", "last_status_code", "log", "created_at", "sent_at",
        ]  # fmt: skip
        read_only_fields = fields


class RetriedDeliverySerializer(DeliverySerializer):
    behind = serializers.SerializerMethodField(
        help_text="The earlier delivery to the same endpoint that failed, which this one waited behind (the events "
        "go out in their order): it is sent again now, first, and this one right after it if it gets through. "
        "Null when this one waited behind none."
    )

    def get_behind(self, obj) -> int | None:
        return getattr(obj, "behind", None)

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "behind"]
        read_only_fields = fields


ADMIN = {"*": Cap.MANAGE_SERVICE}


@extend_schema_view(
    list=extend_schema(tags=["notifications"]),
    retrieve=extend_schema(tags=["notifications"]),
    create=extend_schema(
        tags=["notifications"],
        responses={
            201: WebhookEndpointCreatedSerializer,
            200: OpenApiResponse(
                WebhookEndpointCreatedSerializer,
                description="The same endpoint sent again within ten minutes (a retry): the one created then.",
            ),
        },
    ),
    update=extend_schema(tags=["notifications"]),
    partial_update=extend_schema(tags=["notifications"]),
    destroy=extend_schema(
        tags=["notifications"],
        description="Switch the endpoint off (it stays, with its delivery log).",
        responses={204: None},
    ),  # fmt: skip
)
class WebhookEndpointViewSet(viewsets.ModelViewSet):
    """Outbound webhook endpoints (generic signed JSON, 企业微信 and 钉钉 group bots)."""

    queryset = WebhookEndpoint.objects.all()
    serializer_class = WebhookEndpointSerializer
    permission_classes = [HasCapability]
    required_caps = ADMIN
    ordering_fields = ["name", "id", "created_at"]
    ordering = ["name", "id"]
    lookup_value_regex = r"[0-9]{1,18}"

    def create(self, request, *args, **kwargs):
        s = self.get_serializer(data=request.data)
        s.is_valid(raise_exception=True)
        data = dict(s.validated_data)
        data.pop("version", None)
        endpoint = services.create_endpoint(request.user, data)
        # the same request sent again (a retry after a timeout): the endpoint the first one created
        code = status.HTTP_200_OK if getattr(endpoint, "sent_again", False) else status.HTTP_201_CREATED
        return Response(WebhookEndpointCreatedSerializer(endpoint).data, status=code)

    def perform_update(self, serializer):
        # a stale version is a 409, as on the endpoint's page (another administrator saved in the meantime)
        data = dict(serializer.validated_data)
        version = optional_version(self.request, data)
        serializer.instance = services.update_endpoint(self.request.user, serializer.instance, data, version=version)

    def perform_destroy(self, instance):
        services.deactivate_endpoint(self.request.user, instance, version=optional_version(self.request, {}))

    @extend_schema(
        request=None, responses={202: DeliverySerializer}, tags=["notifications"], filters=False,
        description="Queue a `ping` event to this endpoint; its result shows in the delivery.",
    )  # fmt: skip
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def test(self, request, pk=None):
        delivery = services.send_test(request.user, self.get_object())
        delivery.refresh_from_db()
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class DeliveryFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Delivery.Status.choices)
    channel = django_filters.ChoiceFilter(choices=Delivery.Channel.choices)
    endpoint = IntegerFilter(field_name="endpoint_id", min_value=1, max_value=MAX_ID)
    event = django_filters.CharFilter()

    class Meta:
        model = Delivery
        fields: list[str] = []


@extend_schema_view(
    list=extend_schema(tags=["notifications"]), retrieve=extend_schema(tags=["notifications"])
)
class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    """The delivery log: every e-mail and webhook message, its attempts and the reason of each failure."""

    queryset = Delivery.objects.select_related("endpoint")
    serializer_class = DeliverySerializer
    permission_classes = [HasCapability]
    required_caps = ADMIN
    filterset_class = DeliveryFilter
    ordering_fields = ["created_at", "id", "next_attempt_at"]
    ordering = ["-created_at", "-id"]
    lookup_value_regex = r"[0-9]{1,18}"

    @extend_schema(
        request=None,
        responses={200: RetriedDeliverySerializer,
                   400: OpenApiResponse(description="Already sent, or a worker is sending it (or the one ahead).")},
        tags=["notifications"], filters=False,
        description="Send a failed or given-up delivery again now. One held behind an earlier delivery to the same "
        "endpoint that failed goes right after that one, which is sent again now (`behind`).",
    )  # fmt: skip
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def retry(self, request, pk=None):
        delivery = services.retry(request.user, self.get_object())
        behind = delivery.behind
        delivery.refresh_from_db()
        delivery.behind = behind
        return Response(RetriedDeliverySerializer(delivery).data)


def register(router) -> None:
    router.register("notifications", NotificationViewSet, basename="notification")
    router.register("webhooks", WebhookEndpointViewSet, basename="webhook")
    router.register("deliveries", DeliveryViewSet, basename="delivery")
