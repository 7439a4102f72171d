"""REST API of customers' licences (/api/v1/licences/): read within the reader's customer scope, recorded by sales for
the customers they may change, verified by a second person (quality, leadership). Errors come back per field in the
reader's language; a change carries the `version` loaded (or If-Match) and a stale one answers 409. docs/licences.md."""

from __future__ import annotations

import datetime as dt

import django_filters
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from pharmacrm.core import access, personal, viewsets
from pharmacrm.core.api_schema import ERRORS, STALE
from pharmacrm.core.api_utils import (
    DateField,
    HasCapability,
    IntegerFilter,
    Serializer,
    expected_version,
    versioned,
)
from pharmacrm.core.ids import MAX_ID
from pharmacrm.core.roles import Cap
from pharmacrm.customers.models import Institution

from . import services
from .models import Licence, LicenceKind, Scope

TAGS = ["licences"]
DENIED = OpenApiResponse(description="Not allowed: no licence capability, or a customer you may not change.")
STATUSES = [("valid", "valid"), ("expiring", "expiring"), ("expired", "expired"), ("unverified", "unverified")]


class LicenceSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    institution = serializers.IntegerField(source="institution_id", read_only=True)
    customer_name = serializers.CharField(source="institution.name", read_only=True)
    kind = serializers.ChoiceField(choices=LicenceKind.choices, read_only=True)
    number = serializers.CharField(read_only=True)
    scope = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices), read_only=True)
    scope_note = serializers.CharField(read_only=True)
    issuer = serializers.CharField(read_only=True)
    issued_on = serializers.DateField(read_only=True, allow_null=True)
    valid_until = serializers.DateField(read_only=True, allow_null=True, help_text="null: long-term (长期).")
    status = serializers.SerializerMethodField()
    recorded_by = serializers.IntegerField(source="recorded_by_id", read_only=True)
    verified_by = serializers.IntegerField(source="verified_by_id", read_only=True, allow_null=True)
    verified_at = serializers.DateTimeField(read_only=True, allow_null=True)
    scan_name = serializers.CharField(read_only=True, help_text="The scanned copy's file name; empty: none kept.")
    scan_sha256 = serializers.CharField(read_only=True, help_text="The scanned copy's SHA-256.")
    scan_url = serializers.SerializerMethodField()
    version = serializers.IntegerField(read_only=True, help_text="Send it back with a change (409 if stale).")

    def to_representation(self, instance):
        """The business scope as printed with the contact details typed in it masked for a reader who sees personal
        data masked, as the customer's page shows it."""
        return personal.shown_fields(self.context, super().to_representation(instance), "licences.licence")

    def get_scan_url(self, obj) -> str | None:
        """Where the signed-in reader downloads the scanned copy (each download audited); null: none kept."""
        return reverse("licences:scan", args=[obj.pk]) if obj.scan else None

    def get_status(self, obj) -> str:
        """valid, expiring (within LICENCE_NOTICE_DAYS of its end), expired or unverified."""
        return services.status_of(obj)


class LicenceWriteSerializer(Serializer):
    institution = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID, help_text="Creation only.")
    kind = serializers.ChoiceField(choices=LicenceKind.choices, required=False)
    number = serializers.CharField(required=False, allow_blank=True, max_length=100)
    scope = serializers.ListField(child=serializers.CharField(max_length=40), required=False, max_length=40)
    scope_note = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    issuer = serializers.CharField(required=False, allow_blank=True, max_length=400)
    issued_on = DateField(required=False, allow_null=True)
    valid_until = DateField(required=False, allow_null=True)
    version = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID, help_text="Edits: the version you loaded.")


class LicenceVersionSerializer(Serializer):
    version = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)


class LicenceScanSerializer(Serializer):
    scan = serializers.FileField(required=False, help_text="PDF, PNG or JPEG, at most 20 MB.")
    version = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)


class SalesWindowSerializer(Serializer):
    start = DateField(required=False, allow_null=True, help_text="YYYY-MM-DD; default: the first day of the month two "
                                                                 "months back.")  # fmt: skip
    end = DateField(required=False, allow_null=True, help_text="YYYY-MM-DD, not in the future; default: today. At most "
                                                               "366 days after `start`.")  # fmt: skip
    mine = serializers.BooleanField(required=False, default=False, help_text="Only the customers the caller owns.")


class GapSerializer(Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    lacking = serializers.ListField(child=serializers.ChoiceField(choices=LicenceKind.choices),
                                    help_text="The required kinds without a verified licence in force.")  # fmt: skip
    unverified = serializers.ListField(child=serializers.ChoiceField(choices=LicenceKind.choices),
                                       help_text="Of those, the kinds a recorded but unverified licence covers.")  # fmt: skip


class SaleSerializer(Serializer):
    order_number = serializers.CharField()
    order_date = serializers.DateField()
    lines = serializers.IntegerField()
    amount = serializers.DecimalField(max_digits=16, decimal_places=2, allow_null=True,
                                      help_text="Yuan; null for a caller who may not see purchases.")  # fmt: skip
    gap = GapSerializer()


class UnqualifiedBuyerSerializer(Serializer):
    customer = serializers.IntegerField()
    customer_name = serializers.CharField()
    orders = serializers.IntegerField()
    lines = serializers.IntegerField()
    amount = serializers.DecimalField(max_digits=16, decimal_places=2, allow_null=True,
                                      help_text="Yuan; null for a caller who may not see purchases.")  # fmt: skip
    sales = SaleSerializer(many=True)


class UnqualifiedSalesSerializer(Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    count = serializers.IntegerField(help_text="How many customers.")
    results = UnqualifiedBuyerSerializer(many=True)


class LicenceFilter(django_filters.FilterSet):
    institution = IntegerFilter(field_name="institution_id", min_value=1, max_value=MAX_ID, label="The customer's id.")
    kind = django_filters.ChoiceFilter(choices=LicenceKind.choices)
    status = django_filters.ChoiceFilter(choices=STATUSES, method="by_status")

    class Meta:
        model = Licence
        fields: list[str] = []

    def by_status(self, qs, name, value):
        today = timezone.localdate()
        soon = today + dt.timedelta(days=services.warn_days())
        if value == "expired":
            return qs.filter(valid_until__lt=today)
        live = qs.filter(Q(valid_until__isnull=True) | Q(valid_until__gte=today))
        if value == "unverified":
            return live.filter(verified_at__isnull=True)
        verified = live.filter(verified_at__isnull=False)
        if value == "expiring":
            return verified.filter(valid_until__lte=soon)
        return verified.filter(Q(valid_until__isnull=True) | Q(valid_until__gt=soon))


class LicenceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                     mixins.UpdateModelMixin, viewsets.GenericViewSet):  # fmt: skip
    """Customers' licences (客户资质证照): business licence, drug trading licence, medical institution practising
    licence. Reading: anyone who sees the customer. Recording: "Record customers' licences", for customers the user may
    see. Verifying: "Verify customers' licences", never by the one who recorded. Never deleted: a renewed licence is
    recorded beside the old one, which stays as history."""

    queryset = Licence.objects.none()
    serializer_class = LicenceSerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.VIEW_CUSTOMERS, "create": Cap.MANAGE_LICENCES, "update": Cap.MANAGE_LICENCES,
                     "partial_update": Cap.MANAGE_LICENCES, "verify": Cap.VERIFY_LICENCES,
                     "scan": Cap.MANAGE_LICENCES, "unqualified_sales": Cap.REVIEW_UNQUALIFIED_SALES}  # fmt: skip
    filterset_class = LicenceFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return services.licences_for(self.request.user).select_related("institution").order_by("institution_id", "kind", "id")

    def _answer(self, licence, code=status.HTTP_200_OK):
        licence = self.get_queryset().get(pk=licence.pk)
        answer = LicenceSerializer(licence, context=self.get_serializer_context())  # its reader: masked or not
        return versioned(Response(answer.data, status=code), licence)

    @extend_schema(tags=TAGS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(tags=TAGS)
    def retrieve(self, request, *args, **kwargs):
        return self._answer(self.get_object())

    @extend_schema(tags=TAGS, request=LicenceWriteSerializer, responses={201: LicenceSerializer, 400: ERRORS, 403: DENIED},
                   description="Record a licence of a customer (unverified until someone else verifies it); audited.")  # fmt: skip
    def create(self, request, *args, **kwargs):
        form = LicenceWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        if not data.get("institution"):
            raise serializers.ValidationError({"institution": [services.no_customer_message()]})
        institution = access.institutions_for(request.user, Institution.objects.all()).filter(
            pk=data.pop("institution")).first()
        if institution is None:  # unknown, or outside the user's scope: the same answer, naming the field
            raise serializers.ValidationError({"institution": [services.unknown_customer_message()]})
        data.pop("version", None)
        return self._answer(services.create(request.user, institution, data), status.HTTP_201_CREATED)

    @extend_schema(tags=TAGS, request=LicenceWriteSerializer,
                   responses={200: LicenceSerializer, 400: ERRORS, 403: DENIED, 409: STALE},
                   description="Correct a licence; a change clears its verification. Send `version`.")  # fmt: skip
    def update(self, request, *args, **kwargs):
        licence = self.get_object()
        form = LicenceWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = {k: v for k, v in form.validated_data.items() if k in request.data and k != "institution"}
        version = expected_version(request, data.pop("version", None))
        return self._answer(services.update(request.user, licence, data, version))

    @extend_schema(tags=TAGS, request=LicenceWriteSerializer)
    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, **kwargs)

    @extend_schema(tags=TAGS, request=LicenceVersionSerializer,
                   responses={200: LicenceSerializer, 400: ERRORS, 403: DENIED, 409: STALE},
                   description="Verified against the original by someone other than who recorded it.")  # fmt: skip
    @action(detail=True, methods=["post"])
    def verify(self, request, pk=None):
        licence = self.get_object()
        form = LicenceVersionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        version = expected_version(request, form.validated_data.get("version"))
        return self._answer(services.verify(request.user, licence, version))

    @extend_schema(tags=TAGS, request={"multipart/form-data": LicenceScanSerializer},
                   responses={200: LicenceSerializer, 400: ERRORS, 403: DENIED, 409: STALE},
                   description="Keep the licence's scanned copy (`scan`: PDF, PNG or JPEG, at most 20 MB, its type read "
                               "from the content), replacing the one kept; like any correction it clears the "
                               "verification. Send `version`.")  # fmt: skip
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def scan(self, request, pk=None):
        licence = self.get_object()
        form = LicenceScanSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        version = expected_version(request, form.validated_data.get("version"))
        return self._answer(services.replace_scan(request.user, licence, form.validated_data.get("scan"), version))

    @extend_schema(tags=TAGS, parameters=[SalesWindowSerializer], responses={200: UnqualifiedSalesSerializer, 400: ERRORS,
                                                                             403: DENIED},
                   description="The orders dated on days a customer in the caller's scope lacked a verified licence in "
                               "force of a kind its type requires (GSP), per customer, over a period of at most 366 "
                               "days (default: the last three months).")  # fmt: skip
    @action(detail=False, methods=["get"], url_path="unqualified-sales", filter_backends=[], pagination_class=None)
    def unqualified_sales(self, request):
        form = SalesWindowSerializer(data=request.query_params)
        form.is_valid(raise_exception=True)
        window = form.validated_data
        start, end = services.clean_sales_window(window.get("start"), window.get("end"))
        buyers = services.sales_while_unqualified(request.user, start, end, mine=window.get("mine", False))
        amounts = access.can(request.user, Cap.VIEW_PURCHASES)

        def gap(g):
            return {"start": g.start, "end": g.end, "lacking": list(g.lacking), "unverified": list(g.unverified)}

        results = [{
            "customer": b.institution.pk, "customer_name": b.institution.name, "orders": b.orders, "lines": b.lines,
            "amount": b.amount if amounts else None,
            "sales": [{"order_number": x.order_number, "order_date": x.order_date, "lines": x.lines,
                       "amount": x.amount if amounts else None, "gap": gap(x.gap)} for x in b.sales],
        } for b in buyers]  # fmt: skip
        return Response(UnqualifiedSalesSerializer({"start": start, "end": end, "count": len(results),
                                                    "results": results}).data)  # fmt: skip


def register(router) -> None:
    router.register("licences", LicenceViewSet, basename="licence")
