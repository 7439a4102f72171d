"""API for a user's scheduled reports (/api/v1/report-subscriptions/): each user reads and changes only their own,
as on /reports/."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from pharmacrm.core import viewsets
from pharmacrm.core.api_utils import Pagination, Serializer
from pharmacrm.core.models import Team

from . import services
from .models import Frequency, Report, ReportSubscription


def register(router) -> None:
    router.register("report-subscriptions", ReportSubscriptionViewSet, basename="report-subscription")


class ReportSubscriptionSerializer(Serializer):
    """A report mailed to the user's own account address after each period."""

    id = serializers.IntegerField(read_only=True)
    report = serializers.ChoiceField(choices=Report.choices, help_text="service_performance, complaint_analysis, "
                                     "sales_attainment or keyaccount_progress: one the user may see.")  # fmt: skip
    frequency = serializers.ChoiceField(choices=Frequency.choices, required=False, default=Frequency.MONTH,
                                        help_text="month, quarter or year: the period before is mailed on the first "
                                        "day of the next one, 08:00 Beijing time.")  # fmt: skip
    team = serializers.PrimaryKeyRelatedField(
        queryset=Team.objects.all(), required=False, allow_null=True, default=None,
        help_text="Only this team's figures (service_performance, complaint_analysis); null: all the user may see.",
    )  # fmt: skip
    active = serializers.BooleanField(required=False, help_text="false: paused.")
    next_run_at = serializers.DateTimeField(read_only=True)
    last_period = serializers.CharField(read_only=True)
    last_sent_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_error = serializers.CharField(read_only=True, help_text="Why the last mail did not go, or why it is paused.")
    version = serializers.IntegerField(read_only=True)


@extend_schema_view(
    list=extend_schema(tags=["reports"], description="The user's own scheduled reports."),
    retrieve=extend_schema(tags=["reports"]),
    create=extend_schema(tags=["reports"], responses={201: ReportSubscriptionSerializer, 400: OpenApiResponse(
        description="Per-field messages: a report the user may not see, a team out of their scope, the same "
        "subscription twice, no e-mail address on the account (under `report`).")}),  # fmt: skip
    partial_update=extend_schema(tags=["reports"], description="frequency, team or active (pause / resume); "
                                 "If-Match: the version read, or 409."),  # fmt: skip
    destroy=extend_schema(tags=["reports"], description="Stops the subscription."),
)
class ReportSubscriptionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
    mixins.DestroyModelMixin, viewsets.GenericViewSet,
):  # fmt: skip
    """Scheduled reports (定期报表)."""

    queryset = ReportSubscription.objects.none()
    serializer_class = ReportSubscriptionSerializer
    permission_classes = [IsAuthenticated]
    pagination_class = Pagination
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        user = getattr(getattr(self, "request", None), "user", None)
        if user is None or not user.is_authenticated:
            return ReportSubscription.objects.none()
        return ReportSubscription.objects.filter(user=user).order_by("report", "frequency", "id")

    def _version(self) -> int | None:
        raw = (self.request.headers.get("If-Match") or "").strip().strip('"')
        return int(raw) if raw.isascii() and raw.isdigit() else None

    def create(self, request, *args, **kwargs):
        services.refuse_read_only(request.user)  # before the body is read: 403, audited
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sub = services.subscribe(request.user, dict(serializer.validated_data))
        return Response(ReportSubscriptionSerializer(sub).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        if not kwargs.get("partial"):
            return Response(status=status.HTTP_405_METHOD_NOT_ALLOWED)
        services.refuse_read_only(request.user)  # before the body is read: 403, audited
        sub = self.get_object()
        serializer = ReportSubscriptionSerializer(sub, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        sub = services.change(request.user, sub, dict(serializer.validated_data), version=self._version())
        return Response(ReportSubscriptionSerializer(sub).data)

    def destroy(self, request, *args, **kwargs):
        services.unsubscribe(request.user, self.get_object(), version=self._version())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(tags=["reports"], request=None, responses={202: ReportSubscriptionSerializer},
                   description="Mail the last whole period now (by the worker); the schedule goes on after.")  # fmt: skip
    @action(detail=True, methods=["post"], url_path="send-now")
    def send_now(self, request, pk=None):
        services.refuse_read_only(request.user)  # before the body is read: 403, audited
        sub = self.get_object()
        services.send_now(request.user, sub)
        sub.refresh_from_db()
        return Response(ReportSubscriptionSerializer(sub).data, status=status.HTTP_202_ACCEPTED)
