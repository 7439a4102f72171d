"""REST API of the churn watch: open warnings of the customers you may see (/api/v1/sales/churn/), dismissing one
with a reason (POST /api/v1/sales/churn/{id}/dismiss/), and the company's churn and repurchase rates
(/api/v1/sales/churn-rates/). Money is Decimal yuan as strings; see churn.py for the definitions."""

from __future__ import annotations

import django_filters
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import path
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pharmacrm.core import viewsets
from pharmacrm.core.api_utils import (
    HasCapability,
    NoWritesForReadOnlyRoles,
    Serializer,
    StrictBooleanFilter,
    validation_detail,
)
from pharmacrm.core.roles import Cap
from pharmacrm.core.viewsets import APIView

from . import churn
from .models import ChurnRate, ChurnSignal


class ChurnSignalSerializer(Serializer):
    id = serializers.IntegerField()
    customer = serializers.IntegerField(source="institution_id")
    customer_name = serializers.CharField(source="institution.name")
    owner = serializers.CharField(source="institution.owner.username", default=None, allow_null=True)
    level = serializers.ChoiceField(choices=ChurnSignal.Level.choices, help_text="lapsed: stopped buying; "
                                    "declining: the last three months under half the usual monthly amount.")  # fmt: skip
    usual_monthly_amount = serializers.DecimalField(source="base_avg", max_digits=16, decimal_places=2,
                                                    help_text="Monthly average over the base year (yuan).")  # fmt: skip
    recent_monthly_amount = serializers.DecimalField(source="recent_avg", max_digits=16, decimal_places=2,
                                                     help_text="Monthly average over the last three complete months.")  # fmt: skip
    change_percent = serializers.IntegerField(source="change_pct", allow_null=True)
    months_bought_in_base_year = serializers.IntegerField(source="base_months")
    last_month = serializers.DateField(allow_null=True, help_text="First day of the last month with purchases.")
    detected_on = serializers.DateField()
    refreshed_on = serializers.DateField(help_text="The figures are those of this day's refresh.")
    version = serializers.IntegerField()


class ChurnDismissSerializer(Serializer):
    reason = serializers.CharField(max_length=500, help_text="Why the warning no longer applies (audited).")
    version = serializers.IntegerField(required=False, min_value=1, help_text="The version you loaded (409 if stale).")


class ChurnRateSerializer(Serializer):
    kind = serializers.ChoiceField(choices=ChurnRate.Kind.choices)
    start = serializers.DateField(help_text="First day of the period; the period before is as long.")
    end = serializers.DateField(help_text="First day after the period.")
    buyers_before = serializers.IntegerField(help_text="Customers with purchases in the period before.")
    retained = serializers.IntegerField(help_text="…of them with purchases in the period too.")
    churn_percent = serializers.DecimalField(source="churn_pct", max_digits=5, decimal_places=1, allow_null=True)
    buyers = serializers.IntegerField(help_text="Customers with purchases in the period.")
    repeat_buyers = serializers.IntegerField(help_text="…of them with purchases in two months or more.")
    repurchase_percent = serializers.DecimalField(source="repeat_pct", max_digits=5, decimal_places=1, allow_null=True)
    computed_on = serializers.DateField()


class ChurnFilter(django_filters.FilterSet):
    """An invalid value answers 400 naming the parameter."""

    level = django_filters.ChoiceFilter(
        choices=ChurnSignal.Level.choices, label="lapsed: stopped buying; declining: buying much less."
    )
    mine = StrictBooleanFilter(method="filter_mine", label="true: only the customers you own.")

    class Meta:
        model = ChurnSignal
        fields: list[str] = []

    def filter_mine(self, queryset, name, value):
        return queryset.filter(institution__owner=self.request.user) if value else queryset


class ChurnViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Open churn warnings of the customers you may see: those who stopped buying first, then those buying much
    less, each by the monthly amount they used to buy. `POST …/{id}/dismiss/` closes one with a reason."""

    queryset = ChurnSignal.objects.none()
    serializer_class = ChurnSignalSerializer
    permission_classes = [HasCapability, NoWritesForReadOnlyRoles]  # the auditor reads: a dismissal is refused first
    required_caps = {"*": Cap.VIEW_PURCHASES}
    filterset_class = ChurnFilter
    filter_backends = [DjangoFilterBackend]
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return (
            churn.signals_for(self.request.user)
            .filter(resolved_on=None)
            .select_related("institution__owner")
            .order_by(*ChurnSignal.ORDER_OPEN)
        )

    @extend_schema(
        tags=["purchases"], request=ChurnDismissSerializer,
        responses={200: ChurnSignalSerializer, 400: OpenApiResponse(description="No reason, or closed already."),
                   403: OpenApiResponse(description="Not the customer's owner nor a manager."),
                   404: OpenApiResponse(description="No such open warning in your scope."),
                   409: OpenApiResponse(description="Changed since the version you loaded.")},
        description="Close a warning by hand, with the reason (audited). The customer is not warned about again for "
        "180 days unless it stops buying altogether.",
    )  # fmt: skip
    @action(detail=True, methods=["post"])
    def dismiss(self, request, pk=None):
        from pharmacrm.servicedesk.services import ConflictError

        signal = self.get_object()
        body = ChurnDismissSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            churn.dismiss(request.user, signal, body.validated_data["reason"], version=body.validated_data.get("version"))
        except PermissionDenied as e:
            return Response({"detail": str(e)}, status=status.HTTP_403_FORBIDDEN)
        except DjangoValidationError as e:
            return Response(validation_detail(e), status=status.HTTP_400_BAD_REQUEST)
        except ConflictError as e:
            return Response({"detail": str(e)}, status=status.HTTP_409_CONFLICT)
        signal = ChurnSignal.objects.select_related("institution__owner").get(pk=signal.pk)
        return Response(ChurnSignalSerializer(signal).data)


class ChurnRatesView(APIView):
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.VIEW_PURCHASES}

    @extend_schema(
        tags=["purchases"],
        responses={200: ChurnRateSerializer(many=True), 403: OpenApiResponse(description="A territory-bound role.")},
        description="The company's churn and repurchase rates as the last nightly refresh counted them: the last "
        "12 months, then the last four complete quarters, newest first. For roles that see every customer.",
    )  # fmt: skip
    def get(self, request):
        if not churn.may_see_rates(request.user):
            from django.utils.translation import gettext as _

            return Response({"detail": _("You do not have permission to do this.")}, status=status.HTTP_403_FORBIDDEN)
        year, quarters = churn.latest_rates()
        rows = ([year] if year else []) + quarters
        return Response(ChurnRateSerializer(rows, many=True).data)


def register(router) -> None:
    router.register("sales/churn", ChurnViewSet, basename="churn-signal")


urlpatterns = [path("churn-rates/", ChurnRatesView.as_view(), name="sales-churn-rates")]
