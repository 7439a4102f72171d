"""REST endpoints: the product catalogue and answer templates.

- /api/v1/products/ — GET (search `q` by brand name, generic name, approval number or strength, several
  words as on the catalogue page; `active`), POST;
  /api/v1/products/{id}/ — GET, PUT/PATCH (with `version` or If-Match; 409 when stale), DELETE (deactivates).
- /api/v1/answer-templates/ — the same; GET /api/v1/answer-templates/{id}/render/?ticket={id} — the text
  filled in for a ticket the caller may see.
Reads: tickets.view. Writes: knowledge.manage (administrators, managers, product experts)."""

from __future__ import annotations

import django_filters
from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response

from pharmacrm.core import access, viewsets
from pharmacrm.core.api_utils import (
    HasCapability,
    ModelSerializer,
    Serializer,
    StrictBooleanFilter,
    clean_text,
    expected_version,
    versioned,
)
from pharmacrm.core.roles import Cap

from . import knowledge
from .models import APPROVAL_NUMBER_HELP, AnswerTemplate, Product, Ticket, TicketCategory

WRITE_CAPS = {
    "create": Cap.MANAGE_KNOWLEDGE, "update": Cap.MANAGE_KNOWLEDGE, "partial_update": Cap.MANAGE_KNOWLEDGE,
    "destroy": Cap.MANAGE_KNOWLEDGE, "*": Cap.VIEW_TICKETS,
}  # fmt: skip
STALE_409 = OpenApiResponse(description="Someone saved the record since `version` (with `current_version`).")


def register(router) -> None:
    """Called by pharmacrm/api_urls.py with the v1 router."""
    router.register("products", ProductViewSet, basename="product")
    router.register("answer-templates", AnswerTemplateViewSet, basename="answer-template")


def _texts(data: dict) -> dict:
    return {k: clean_text(v) if isinstance(v, str) else v for k, v in data.items()}


class ProductSerializer(ModelSerializer):
    approval_number = serializers.CharField(max_length=24, help_text=str(APPROVAL_NUMBER_HELP))
    version = serializers.IntegerField(
        required=False,
        help_text="On a change: the version you loaded (or an If-Match header); 409 when stale.",
    )

    class Meta:
        model = Product
        fields = [
            "id", "brand_name", "generic_name", "approval_number", "dosage_form", "strength", "indications",
            "contraindications", "usage", "active", "version", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "updated_at"]


class ProductFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="search",
        help_text="Brand name, generic name, approval number or strength; several words (氨氯地平 5mg) must each be "
        "found, as in the catalogue page.",
    )
    active = StrictBooleanFilter()

    class Meta:
        model = Product
        fields: list[str] = []

    def search(self, queryset, name, value):
        # the catalogue page's search: an integration (the phone bar, a bot) found nothing for 氨氯地平 5mg or ５ｍｇ
        return knowledge.search_products(queryset, clean_text(value).strip()[:100])


class _Versioned:
    """create / update / deactivate through the knowledge services."""

    create_service = update_service = None

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = _texts(dict(serializer.validated_data))
        data.pop("version", None)
        obj = type(self).create_service(request.user, data)
        return versioned(Response(self.get_serializer(obj).data, status=status.HTTP_201_CREATED), obj)

    def update(self, request, *args, **kwargs):
        obj = self.get_object()
        serializer = self.get_serializer(obj, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        data = _texts(dict(serializer.validated_data))
        version = expected_version(request, data.pop("version", None))
        obj = type(self).update_service(request.user, obj, data, version=version)
        return versioned(Response(self.get_serializer(obj).data), obj)

    def retrieve(self, request, *args, **kwargs):
        obj = self.get_object()
        return versioned(Response(self.get_serializer(obj).data), obj)

    def destroy(self, request, *args, **kwargs):
        obj = self.get_object()
        version = request.headers.get("If-Match")
        type(self).update_service(request.user, obj, {"active": False},
                                  version=expected_version(request, None) if version else None)  # fmt: skip
        return Response(status=status.HTTP_204_NO_CONTENT)


_DESTROY = dict(
    description="Deactivate (nothing is deleted: tickets and messages refer to it). An If-Match header makes "
    "it conditional.",
    responses={204: None, 409: STALE_409},
)


@extend_schema_view(
    list=extend_schema(tags=["knowledge"]),
    retrieve=extend_schema(tags=["knowledge"]),
    create=extend_schema(tags=["knowledge"]),
    update=extend_schema(tags=["knowledge"], responses={200: ProductSerializer, 409: STALE_409}),
    partial_update=extend_schema(tags=["knowledge"], responses={200: ProductSerializer, 409: STALE_409}),
    destroy=extend_schema(tags=["knowledge"], **_DESTROY),
)
class ProductViewSet(_Versioned, viewsets.ModelViewSet):
    """The product catalogue (产品目录): what agents answer from and tickets refer to."""

    queryset = Product.objects.all()
    serializer_class = ProductSerializer
    permission_classes = [HasCapability]
    required_caps = WRITE_CAPS
    filterset_class = ProductFilter
    ordering_fields = ["brand_name", "generic_name", "approval_number", "id"]
    ordering = ["brand_name", "strength", "id"]
    lookup_value_regex = r"[0-9]{1,18}"
    create_service = staticmethod(knowledge.create_product)
    update_service = staticmethod(knowledge.update_product)

    def get_queryset(self):
        qs = Product.objects.all()
        if getattr(self, "swagger_fake_view", False) or access.can(self.request.user, Cap.MANAGE_KNOWLEDGE):
            return qs
        return qs.filter(active=True)  # switched-off products exist only for those who maintain them


class CategoryCodeField(serializers.SlugRelatedField):
    def to_internal_value(self, data):
        if (
            not isinstance(data, str)
            or not data.replace("_", "").replace("-", "").isalnum()
            or len(data) > 40
        ):
            self.fail("does_not_exist", slug_name=self.slug_field, value=str(data)[:40].replace("\x00", ""))
        return super().to_internal_value(data)


class AnswerTemplateSerializer(ModelSerializer):
    category = CategoryCodeField(
        slug_field="code", queryset=TicketCategory.objects.all(), required=False, allow_null=True,
        help_text="A category code: the template is offered first on tickets of that category; null = any.",
    )  # fmt: skip
    body = serializers.CharField(
        max_length=20000,
        help_text="The text. Placeholders: " + ", ".join(f"{{{k}}}" for k in knowledge.PLACEHOLDERS) + "; any "
        "other {name} is refused.",
    )  # fmt: skip
    version = serializers.IntegerField(
        required=False,
        help_text="On a change: the version you loaded (or an If-Match header); 409 when stale.",
    )

    class Meta:
        model = AnswerTemplate
        fields = ["id", "name", "category", "language", "body", "active", "version", "updated_at"]
        read_only_fields = ["id", "updated_at"]


class RenderedSerializer(Serializer):
    template = serializers.IntegerField()
    ticket = serializers.IntegerField()
    body = serializers.CharField(help_text="The template's text filled in for the ticket.")


class AnswerTemplateFilter(django_filters.FilterSet):
    active = StrictBooleanFilter()
    language = django_filters.CharFilter()
    category = django_filters.CharFilter(field_name="category__code")

    class Meta:
        model = AnswerTemplate
        fields: list[str] = []


@extend_schema_view(
    list=extend_schema(tags=["knowledge"]),
    retrieve=extend_schema(tags=["knowledge"]),
    create=extend_schema(tags=["knowledge"]),
    update=extend_schema(tags=["knowledge"], responses={200: AnswerTemplateSerializer, 409: STALE_409}),
    partial_update=extend_schema(
        tags=["knowledge"], responses={200: AnswerTemplateSerializer, 409: STALE_409}
    ),
    destroy=extend_schema(tags=["knowledge"], **_DESTROY),
)
class AnswerTemplateViewSet(_Versioned, viewsets.ModelViewSet):
    """Answer templates (答复模板) with placeholders filled in from a ticket."""

    queryset = AnswerTemplate.objects.all()
    serializer_class = AnswerTemplateSerializer
    permission_classes = [HasCapability]
    required_caps = WRITE_CAPS
    filterset_class = AnswerTemplateFilter
    ordering_fields = ["name", "id"]
    ordering = ["name", "id"]
    lookup_value_regex = r"[0-9]{1,18}"
    create_service = staticmethod(knowledge.create_template)
    update_service = staticmethod(knowledge.update_template)

    def get_queryset(self):
        qs = AnswerTemplate.objects.select_related("category")
        if getattr(self, "swagger_fake_view", False) or access.can(self.request.user, Cap.MANAGE_KNOWLEDGE):
            return qs
        return qs.filter(active=True)

    @extend_schema(
        tags=["knowledge"], filters=False, responses={200: RenderedSerializer},
        parameters=[OpenApiParameter("ticket", OpenApiTypes.INT, OpenApiParameter.QUERY, required=True,
                                     description="The ticket to fill the placeholders from (one you may see).")],
    )  # fmt: skip
    @action(detail=True, methods=["get"], url_path="render", filter_backends=[], pagination_class=None)
    def render_for(self, request, pk=None):
        template = self.get_object()
        raw = request.query_params.get("ticket", "")
        if not (raw.isascii() and raw.isdecimal()) or len(raw) > 18:
            raise ApiValidationError({"ticket": [_("Give the id of a ticket.")]})
        ticket = access.tickets_for(request.user, Ticket.objects.all()).filter(pk=int(raw)).first()
        if ticket is None:
            raise Http404
        body = knowledge.render(template, ticket, request.user)
        return Response({"template": template.pk, "ticket": ticket.pk, "body": body})
