"""REST API of market information (/api/v1/market/competitors/, /competitor-products/, /presence/, /intelligence/):
read as scoped (services.presence_for: the customers one may see), written through the services, whose errors come
back per field in the reader's language; edits carry the `version` loaded (or If-Match) and a stale one answers 409.
Presence is append-only. docs/market.md."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from pharmacrm.core import access, personal, viewsets
from pharmacrm.core.api_schema import ERRORS, STALE, YUAN
from pharmacrm.core.api_utils import (
    AmountField,
    DateField,
    HasCapability,
    IntegerFilter,
    Serializer,
    StrictBooleanFilter,
    TypedDateFilter,
    TypedDecimalField,
    expected_version,
    optional,
    versioned,
)
from pharmacrm.core.ids import MAX_ID
from pharmacrm.core.roles import Cap
from pharmacrm.customers.models import Institution

from . import services
from .models import (
    Competitor,
    CompetitorProduct,
    Importance,
    IntelKind,
    Intelligence,
    Presence,
    Source,
    VbpStatus,
)

TAGS = ["market"]
DENIED = OpenApiResponse(description="Not allowed: no market capability, or not yours to change.")
MANAGE = {a: Cap.MANAGE_MARKET for a in ("create", "update", "partial_update")}
RECORD = {a: Cap.RECORD_MARKET for a in ("create", "update", "partial_update", "destroy")}


def _ids(**kw):
    return serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False,
                                 max_length=200, **kw)  # fmt: skip


def _body(serializer_class, request) -> dict:
    form = serializer_class(data=request.data)
    form.is_valid(raise_exception=True)
    return {k: v for k, v in form.validated_data.items() if k in request.data}


class CompetitorSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    notes = serializers.CharField(read_only=True)
    active = serializers.BooleanField(read_only=True)
    version = serializers.IntegerField(read_only=True, help_text="Send it back with a change (409 if stale).")

    def to_representation(self, instance):
        """The notes with the contact details typed in them masked for a reader who sees personal data masked; masks
        sent back in a change are put back as stored."""
        return personal.shown_fields(self.context, super().to_representation(instance), "market.competitor")


class CompetitorWriteSerializer(Serializer):
    name = optional(serializers.CharField, allow_blank=True, max_length=100, help_text="Unique.")
    notes = optional(serializers.CharField, allow_blank=True, max_length=5000)
    active = optional(serializers.BooleanField)
    version = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID, help_text="Edits: the version you loaded.")


class CompetitorProductSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    company = serializers.IntegerField(source="company_id", read_only=True)
    company_name = serializers.CharField(source="company.name", read_only=True)
    generic_name = serializers.CharField(read_only=True, help_text="通用名.")
    brand_name = serializers.CharField(read_only=True, help_text="商品名.")
    dosage_form = serializers.CharField(read_only=True)
    strength = serializers.CharField(read_only=True)
    our_products = serializers.SerializerMethodField(help_text="Ids of our catalogue's products it competes with.")
    vbp_status = serializers.ChoiceField(choices=VbpStatus.choices, read_only=True)
    vbp_batch = serializers.CharField(read_only=True)
    reference_price = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True, allow_null=True,
                                               help_text=YUAN)  # fmt: skip
    notes = serializers.CharField(read_only=True)
    active = serializers.BooleanField(read_only=True)
    version = serializers.IntegerField(read_only=True)

    def get_our_products(self, obj) -> list[int]:
        return sorted(p.pk for p in obj.our_products.all())

    def to_representation(self, instance):
        """The notes with the contact details typed in them masked for a reader who sees personal data masked, as the
        product page shows them; masks sent back in a change are put back as stored."""
        return personal.shown_fields(self.context, super().to_representation(instance), "market.competitorproduct")


class CompetitorProductWriteSerializer(Serializer):
    company = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID, help_text="The competitor's id.")
    generic_name = optional(serializers.CharField, allow_blank=True, max_length=100)
    brand_name = optional(serializers.CharField, allow_blank=True, max_length=100)
    dosage_form = optional(serializers.CharField, allow_blank=True, max_length=40)
    strength = optional(serializers.CharField, allow_blank=True, max_length=60)
    our_products = _ids(help_text="Ids of our catalogue's products (/api/v1/products/).")
    vbp_status = optional(serializers.ChoiceField, choices=VbpStatus.choices)
    vbp_batch = optional(serializers.CharField, allow_blank=True, max_length=60)
    reference_price = optional(AmountField, max_digits=12, help_text=YUAN)
    notes = optional(serializers.CharField, allow_blank=True, max_length=5000)
    active = optional(serializers.BooleanField)
    version = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID)


class PresenceSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    institution = serializers.IntegerField(source="institution_id", read_only=True)
    customer_name = serializers.CharField(source="institution.name", read_only=True)
    product = serializers.IntegerField(source="product_id", read_only=True)
    monthly_volume = serializers.IntegerField(read_only=True, allow_null=True, help_text="Units per month.")
    share = serializers.DecimalField(max_digits=5, decimal_places=2, read_only=True, allow_null=True,
                                     help_text="Percent, 0–100.")  # fmt: skip
    observed_on = serializers.DateField(read_only=True)
    source = serializers.ChoiceField(choices=Source.choices, read_only=True)
    note = serializers.CharField(read_only=True)
    recorded_by = serializers.IntegerField(source="recorded_by_id", read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance):
        """The note with the contact details typed in it masked for a reader who sees personal data masked."""
        return personal.shown_fields(self.context, super().to_representation(instance), "market.presence")


class PresenceWriteSerializer(Serializer):
    institution = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The customer's id.")
    product = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID, help_text="The competitor product's id.")
    monthly_volume = optional(serializers.IntegerField, help_text="Units per month, 0 or more.")
    share = optional(TypedDecimalField, marks=("%",), max_digits=7, decimal_places=2, help_text="Percent, 0–100.")
    observed_on = optional(DateField, help_text="Not in the future.")
    source = optional(serializers.ChoiceField, choices=Source.choices)
    note = optional(serializers.CharField, allow_blank=True, max_length=2000)


class IntelligenceSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    kind = serializers.ChoiceField(choices=IntelKind.choices, read_only=True)
    title = serializers.CharField(read_only=True)
    content = serializers.CharField(read_only=True)
    happened_on = serializers.DateField(read_only=True)
    source = serializers.CharField(read_only=True)
    importance = serializers.ChoiceField(choices=Importance.choices, read_only=True)
    province = serializers.CharField(read_only=True, help_text="The province's GB/T 2260 code; empty: the country.")
    competitor_products = serializers.SerializerMethodField()
    our_products = serializers.SerializerMethodField()
    customers = serializers.SerializerMethodField(help_text="The customers it concerns that you may see.")
    created_by = serializers.IntegerField(source="created_by_id", read_only=True, allow_null=True)
    version = serializers.IntegerField(read_only=True)

    def to_representation(self, instance):
        """The title, text and source with the contact details typed in them masked for a reader who sees personal
        data masked, as the pages show them; masks sent back in a change are put back as stored."""
        return personal.shown_fields(self.context, super().to_representation(instance), "market.intelligence")

    def get_competitor_products(self, obj) -> list[int]:
        return sorted(p.pk for p in obj.competitor_products.all())

    def get_our_products(self, obj) -> list[int]:
        return sorted(p.pk for p in obj.our_products.all())

    def get_customers(self, obj) -> list[int]:
        visible = self.context.get("visible")
        return sorted(c.pk for c in obj.customers.all() if visible is None or c.pk in visible)


class IntelligenceWriteSerializer(Serializer):
    kind = optional(serializers.ChoiceField, choices=IntelKind.choices)
    title = optional(serializers.CharField, allow_blank=True, max_length=200)
    content = optional(serializers.CharField, allow_blank=True, max_length=20000)
    happened_on = optional(DateField, help_text="Not in the future.")
    source = optional(serializers.CharField, allow_blank=True, max_length=500, help_text="Text or a web address.")
    importance = optional(serializers.ChoiceField, choices=Importance.choices)
    province = optional(serializers.CharField, allow_blank=True, max_length=6, help_text="A province's code, or empty.")
    competitor_products = _ids()
    our_products = _ids()
    customers = _ids(help_text="Customers' ids; a rep or key-account manager names at least one of theirs.")
    version = optional(serializers.IntegerField, min_value=1, max_value=MAX_ID)


class _CatalogueViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                        mixins.UpdateModelMixin, viewsets.GenericViewSet):  # fmt: skip
    """The competitor catalogue's viewsets (companies and products): read by every role that reads the market
    pages, kept by "Keep the competitor catalogue"; never deleted. A subclass names its read serializer
    (`serializer_class`), its write serializer and the service that saves one, and is documented by
    `_catalogue_schema`."""

    permission_classes = [HasCapability]
    required_caps = {"*": Cap.READ_MARKET, **MANAGE}
    write_serializer: type[Serializer]

    def save_record(self, user, data, obj=None, version=None):
        raise NotImplementedError

    def _fresh(self, obj):
        return obj

    def _answer(self, obj, code=status.HTTP_200_OK):
        answer = self.serializer_class(self._fresh(obj), context=self.get_serializer_context())  # masked or not
        return versioned(Response(answer.data, status=code), obj)

    def retrieve(self, request, *args, **kwargs):
        return self._answer(self.get_object())

    def create(self, request, *args, **kwargs):
        data = _body(self.write_serializer, request)
        data.pop("version", None)
        return self._answer(self.save_record(request.user, data), status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        obj = self.get_object()
        data = _body(self.write_serializer, request)
        version = expected_version(request, data.pop("version", None))
        return self._answer(self.save_record(request.user, data, obj, version))

    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, **kwargs)


def _catalogue_schema(read, write):
    """The OpenAPI description of a _CatalogueViewSet reading `read` and taking `write`."""
    return extend_schema_view(
        list=extend_schema(tags=TAGS),
        retrieve=extend_schema(tags=TAGS),
        create=extend_schema(tags=TAGS, request=write, responses={201: read, 400: ERRORS, 403: DENIED}),
        update=extend_schema(
            tags=TAGS, request=write, responses={200: read, 400: ERRORS, 403: DENIED, 409: STALE}
        ),
        partial_update=extend_schema(tags=TAGS, request=write),
    )


@_catalogue_schema(CompetitorSerializer, CompetitorWriteSerializer)
class CompetitorViewSet(_CatalogueViewSet):
    """Competitor companies (竞争对手). Read by every role that reads the market pages; kept by "Keep the competitor
    catalogue" (analysts, managers, administrators). Never deleted: set `active` false."""

    queryset = Competitor.objects.none()
    serializer_class = CompetitorSerializer
    write_serializer = CompetitorWriteSerializer
    ordering_fields = ["name", "id"]

    def get_queryset(self):
        return Competitor.objects.order_by("name")

    def save_record(self, user, data, obj=None, version=None):
        return services.save_competitor(user, data, obj, version)


class ProductFilter(django_filters.FilterSet):
    company = IntegerFilter(field_name="company_id", min_value=1, max_value=MAX_ID, label="The competitor's id.")
    vbp_status = django_filters.ChoiceFilter(choices=VbpStatus.choices)
    our_product = IntegerFilter(field_name="our_products", min_value=1, max_value=MAX_ID,
                                label="Competes with this product of ours.")  # fmt: skip
    generic_name = django_filters.CharFilter(field_name="generic_name", lookup_expr="icontains")

    class Meta:
        model = CompetitorProduct
        fields: list[str] = []


@_catalogue_schema(CompetitorProductSerializer, CompetitorProductWriteSerializer)
class CompetitorProductViewSet(_CatalogueViewSet):
    """Competitor products (竞品): 通用名, 商品名, dosage form, strength, volume-based procurement status and batch,
    reference price, and our products they compete with. Read by every role that reads the market pages; kept by
    analysts, managers and administrators."""

    queryset = CompetitorProduct.objects.none()
    serializer_class = CompetitorProductSerializer
    write_serializer = CompetitorProductWriteSerializer
    filterset_class = ProductFilter
    ordering_fields = ["generic_name", "brand_name", "reference_price", "id"]

    def get_queryset(self):
        qs = CompetitorProduct.objects.select_related("company").prefetch_related("our_products")
        return qs.order_by("generic_name", "id")

    def _fresh(self, obj):
        return self.get_queryset().get(pk=obj.pk)

    def save_record(self, user, data, obj=None, version=None):
        return services.save_product(user, data, obj, version)


class PresenceFilter(django_filters.FilterSet):
    institution = IntegerFilter(field_name="institution_id", min_value=1, max_value=MAX_ID, label="The customer's id.")
    product = IntegerFilter(field_name="product_id", min_value=1, max_value=MAX_ID)
    source = django_filters.ChoiceFilter(choices=Source.choices)
    observed_from = TypedDateFilter(field_name="observed_on", lookup_expr="gte")
    observed_to = TypedDateFilter(field_name="observed_on", lookup_expr="lte")
    current = StrictBooleanFilter(method="only_current", label="Only the latest observation per customer "
                                                                        "and product.")  # fmt: skip

    class Meta:
        model = Presence
        fields: list[str] = []

    def only_current(self, queryset, name, value):
        return services.current_presence(queryset) if value else queryset


class PresenceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                      viewsets.GenericViewSet):  # fmt: skip
    """Competitor presence at customers (竞品使用情况): append-only observations, the latest per customer and product
    being the current one (`current=true`). Read at the customers one may see; recorded by reps and key-account
    managers at theirs (another's customer answers 404), by analysts, managers and administrators at any."""

    queryset = Presence.objects.none()
    serializer_class = PresenceSerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.READ_MARKET, "create": Cap.RECORD_MARKET}
    filterset_class = PresenceFilter
    ordering_fields = ["observed_on", "created_at", "id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return services.presence_for(self.request.user).select_related("institution").order_by("-observed_on", "-id")

    @extend_schema(tags=TAGS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(tags=TAGS)
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(tags=TAGS, request=PresenceWriteSerializer,
                   responses={201: PresenceSerializer, 400: ERRORS, 403: DENIED,
                              404: OpenApiResponse(description="No such customer, or one you may not see.")},
                   description="Record an observation (audited); a customer you may not see answers 404.")  # fmt: skip
    def create(self, request, *args, **kwargs):
        data = _body(PresenceWriteSerializer, request)
        institution = (access.institutions_for(request.user, Institution.objects.all())
                       .filter(pk=data.pop("institution")).first())  # fmt: skip
        if institution is None:
            raise NotFound()
        presence = services.record_presence(request.user, institution, data)
        return Response(PresenceSerializer(self.get_queryset().get(pk=presence.pk), context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED)


class IntelligenceFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=IntelKind.choices)
    importance = django_filters.ChoiceFilter(choices=Importance.choices)
    province = django_filters.CharFilter(field_name="province")
    competitor_product = IntegerFilter(field_name="competitor_products", min_value=1, max_value=MAX_ID)
    our_product = IntegerFilter(field_name="our_products", min_value=1, max_value=MAX_ID)
    customer = IntegerFilter(field_name="customers", min_value=1, max_value=MAX_ID)
    happened_from = TypedDateFilter(field_name="happened_on", lookup_expr="gte")
    happened_to = TypedDateFilter(field_name="happened_on", lookup_expr="lte")
    q = django_filters.CharFilter(method="filter_q", label="In the title (as you read it: not inside a masked number).")

    class Meta:
        model = Intelligence
        fields: list[str] = []

    def filter_q(self, qs, name, value):
        return personal.search_as_shown(getattr(self.request, "user", None), qs, ("title",), value)


class IntelligenceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                          mixins.UpdateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):  # fmt: skip
    """Market intelligence (市场情报): policy, tender and VBP results, competitor activity, price changes, industry
    news, per province and product. Everyone who reads the market pages reads it; analysts, managers and
    administrators write and change any; reps and key-account managers add it for their customers and change only
    their own (403 otherwise). Every change and deletion is audited."""

    queryset = Intelligence.objects.none()
    serializer_class = IntelligenceSerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.READ_MARKET, **RECORD}
    filterset_class = IntelligenceFilter
    ordering_fields = ["happened_on", "importance", "id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return (services.intelligence_for(self.request.user)
                .prefetch_related("competitor_products", "our_products", "customers").order_by("-happened_on", "-id"))

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if getattr(self, "swagger_fake_view", False) or access.institution_scope_q(self.request.user) is None:
            return context
        context["visible"] = set(access.institutions_for(self.request.user).filter(
            market_intelligence__isnull=False).values_list("pk", flat=True))  # fmt: skip
        return context

    def _answer(self, obj, code=status.HTTP_200_OK):
        obj = self.get_queryset().get(pk=obj.pk)
        return versioned(Response(IntelligenceSerializer(obj, context=self.get_serializer_context()).data,
                                  status=code), obj)  # fmt: skip

    @extend_schema(tags=TAGS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(tags=TAGS)
    def retrieve(self, request, *args, **kwargs):
        return self._answer(self.get_object())

    @extend_schema(tags=TAGS, request=IntelligenceWriteSerializer,
                   responses={201: IntelligenceSerializer, 400: ERRORS, 403: DENIED})  # fmt: skip
    def create(self, request, *args, **kwargs):
        data = _body(IntelligenceWriteSerializer, request)
        data.pop("version", None)
        return self._answer(services.create_intelligence(request.user, data), status.HTTP_201_CREATED)

    @extend_schema(tags=TAGS, request=IntelligenceWriteSerializer,
                   responses={200: IntelligenceSerializer, 400: ERRORS, 403: DENIED, 409: STALE})  # fmt: skip
    def update(self, request, *args, **kwargs):
        obj = self.get_object()
        data = _body(IntelligenceWriteSerializer, request)
        version = expected_version(request, data.pop("version", None))
        return self._answer(services.update_intelligence(request.user, obj, data, version))

    @extend_schema(tags=TAGS, request=IntelligenceWriteSerializer)
    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, **kwargs)

    @extend_schema(tags=TAGS, responses={204: None, 403: DENIED, 409: STALE},
                   description="Delete (audited, with what it said). Send the version (If-Match).")  # fmt: skip
    def destroy(self, request, *args, **kwargs):
        obj = self.get_object()
        services.delete_intelligence(request.user, obj, expected_version(request, None))
        return Response(status=status.HTTP_204_NO_CONTENT)


def register(router) -> None:
    router.register("market/competitors", CompetitorViewSet, basename="market-competitor")
    router.register("market/competitor-products", CompetitorProductViewSet, basename="market-competitor-product")
    router.register("market/presence", PresenceViewSet, basename="market-presence")
    router.register("market/intelligence", IntelligenceViewSet, basename="market-intelligence")
