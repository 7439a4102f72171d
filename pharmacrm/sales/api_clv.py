"""API of customer lifetime value: GET /api/v1/sales/clv/ — the values of the customers the user may see, as the
nightly run computed them (clv.py; the formula in docs/clv.md)."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers

from pharmacrm.core import viewsets
from pharmacrm.core.api_utils import HasCapability, IntegerFilter, Serializer
from pharmacrm.core.ids import MAX_ID
from pharmacrm.core.roles import Cap

from . import clv
from .models import CustomerValue


def register(router) -> None:
    router.register("sales/clv", CustomerValueViewSet, basename="customer-value")


class CustomerValueSerializer(Serializer):
    """A customer's lifetime value (amounts in yuan, strings with two places)."""

    id = serializers.IntegerField(source="pk", help_text="The institution's id.")
    institution = serializers.IntegerField(source="institution_id")
    institution_name = serializers.CharField(source="institution.name")
    customer_class = serializers.CharField(source="klass", help_text="Its class in the evaluation in force, or ''.")
    historic = serializers.DecimalField(max_digits=16, decimal_places=2, help_text="Paid to date.")
    active_months = serializers.IntegerField(help_text="Months with purchases.")
    average_monthly = serializers.DecimalField(source="avg_month", max_digits=16, decimal_places=2,
                                               help_text="Paid to date ÷ months with purchases.")  # fmt: skip
    tenure_months = serializers.IntegerField(help_text="From the first purchase to the last complete month.")
    first_month = serializers.DateField(allow_null=True)
    last_month = serializers.DateField(allow_null=True)
    retention = serializers.DecimalField(max_digits=5, decimal_places=4, help_text="The 12-month retention used.")
    retention_source = serializers.CharField(help_text="class, company or setting.")
    projected = serializers.DecimalField(max_digits=16, decimal_places=2,
                                         help_text="Projected value of the next 36 months (a model, not a promise).")  # fmt: skip
    computed_on = serializers.DateField()


class CustomerValueFilter(django_filters.FilterSet):
    customer_class = django_filters.ChoiceFilter(field_name="klass", choices=[(k, k) for k in "ABCD"])
    province = django_filters.CharFilter(field_name="institution__province")
    institution = IntegerFilter(field_name="institution_id", min_value=1, max_value=MAX_ID)

    class Meta:
        model = CustomerValue
        fields = ["customer_class", "province", "institution"]


@extend_schema_view(
    list=extend_schema(tags=["purchases"], description="Customer lifetime values of the customers you may see, the "
                       "highest projected value first (ordering: projected_fen, historic_fen, avg_month_fen, "
                       "tenure_months). Sales roles, managers, analysts, auditors."),
    retrieve=extend_schema(tags=["purchases"], description="One customer's lifetime value (by institution id)."),
)  # fmt: skip
class CustomerValueViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Customer lifetime value (CLV)."""

    queryset = CustomerValue.objects.none()
    serializer_class = CustomerValueSerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.VIEW_CUSTOMER_VALUE}
    filterset_class = CustomerValueFilter
    ordering_fields = ["projected_fen", "historic_fen", "avg_month_fen", "tenure_months", "institution_id"]
    ordering = ["-projected_fen", "institution_id"]

    def get_queryset(self):
        return clv.values_for(self.request.user).select_related("institution").order_by("-projected_fen",
                                                                                         "institution_id")
