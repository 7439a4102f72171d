"""REST API of the split orders (/api/v1/sales/split-orders/): the split orders page's list, read-only, for those who
see purchases (a territory-bound reader only the orders all of whose customers are theirs), and
`POST /api/v1/sales/split-orders/repair/` for those who import orders — `splits.repair`, the page's and
`pharmacrm orders split-check --repair`'s repair. Money is Decimal yuan as strings."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pharmacrm.core import access, viewsets
from pharmacrm.core.api_utils import DateField, HasCapability, QuerySerializer, Serializer, validation_detail
from pharmacrm.core.roles import Cap
from pharmacrm.customers.forms import CUSTOMER_NAME_HELP

from . import splits

MAX_ID = 2**63 - 1
MONEY = {"max_digits": 17, "decimal_places": 2}


class SplitOrderParams(QuerySerializer):
    """The list's filters, as the page's: an invalid value answers 400 naming the parameter."""

    customer = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID,
                                        help_text="A customer (institution id) the order's lines name.")  # fmt: skip
    order_number = serializers.CharField(required=False, allow_blank=True, max_length=40,
                                         help_text="The order number or its beginning, in any letter case.")  # fmt: skip
    date_from = DateField(required=False, help_text="An order date of its lines on or after this day.")
    date_to = DateField(required=False, help_text="An order date of its lines on or before this day.")

    def validate(self, data):
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise serializers.ValidationError({"date_to": [_("This date lies before “%(field)s”.") % {"field": "date_from"}]})
        return data


def _part_fields() -> tuple:
    """A part's (a customer's or an order date's) `lines`, `amount` and `last_imported`, the same in both, declared
    where they are called so that they keep their place among the part's fields."""
    return (
        serializers.ListField(child=serializers.IntegerField(), help_text="Its line numbers of the order."),
        serializers.DecimalField(**MONEY, help_text="Its lines' amount (yuan)."),
        serializers.DateTimeField(),
    )


class SplitCustomerSerializer(Serializer):
    customer = serializers.IntegerField(help_text="The customer's (institution's) id.")
    customer_name = serializers.CharField(help_text=CUSTOMER_NAME_HELP)
    code = serializers.CharField(help_text="Its credit code, else its external id (empty without either).")
    order_dates = serializers.ListField(child=serializers.DateField(), help_text="The order dates its lines carry.")
    lines, amount, last_imported = _part_fields()
    kept = serializers.BooleanField(help_text="The customer the repair keeps unless told otherwise.")


class SplitDateSerializer(Serializer):
    order_date = serializers.DateField()
    customers = serializers.ListField(child=serializers.IntegerField(), help_text="The customers its lines name.")
    lines, amount, last_imported = _part_fields()
    kept = serializers.BooleanField(help_text="The order date the repair keeps unless told otherwise.")


class SplitOrderSerializer(Serializer):
    order_number = serializers.CharField()
    customers = SplitCustomerSerializer(many=True, help_text="When its lines name two customers or more (else empty): "
                                        "each with its lines, the one kept first.")  # fmt: skip
    order_dates = SplitDateSerializer(many=True, help_text="When its lines carry two order dates or more (else empty): "
                                      "each with its lines, the one kept first.")  # fmt: skip
    kept_customer = serializers.IntegerField(help_text="The customer the repair keeps unless told otherwise: that of "
                                             "the line imported last.")  # fmt: skip
    kept_order_date = serializers.DateField(help_text="The order date the repair keeps unless told otherwise: that "
                                            "of the line imported last.")  # fmt: skip
    latest_line = serializers.IntegerField(help_text="The line imported last: what the ERP said last about the order.")
    latest_imported = serializers.DateTimeField()


class SplitRepairSerializer(Serializer):
    """Which order, and the customer and order date it keeps (by default those of the line imported last)."""

    order_number = serializers.CharField(max_length=40)
    customer = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID,
                                        help_text="One of the customers its lines name (an institution id).")  # fmt: skip
    order_date = DateField(required=False, allow_null=True, help_text="One of the order dates its lines carry.")


class SplitRepairedSerializer(Serializer):
    order_number = serializers.CharField()
    customer = serializers.IntegerField(help_text="The customer all its lines name now.")
    order_date = serializers.DateField(help_text="The order date all its lines carry now.")
    moved = serializers.IntegerField(help_text="Lines moved to that customer by this request.")
    redated = serializers.IntegerField(help_text="Lines given that date by this request.")
    already_repaired = serializers.BooleanField(help_text="true: the order was repaired before this request (sent "
                                                "twice, or by a colleague meanwhile): nothing was changed.")  # fmt: skip
    repaired_by = serializers.CharField(allow_null=True, help_text="Who repaired it, when it was repaired already.")
    repaired_at = serializers.DateTimeField(allow_null=True, help_text="When, when it was repaired already.")


def order_data(order: splits.SplitOrder) -> dict:
    """A split order as the list answers it."""
    split, dated = order.customers, order.dates
    keeper = split.keeper if split else (dated.parts[0].customers[0] if dated else None)
    return {
        "order_number": order.order_number,
        "customers": [{
            "customer": p.institution_id, "customer_name": p.name, "code": p.code, "order_dates": p.dates,
            "lines": p.lines, "amount": p.amount, "last_imported": p.last_imported, "kept": p.institution_id == keeper,
        } for p in (split.parts if split else [])],
        "order_dates": [{
            "order_date": p.order_date, "customers": p.customers, "lines": p.lines, "amount": p.amount,
            "last_imported": p.last_imported, "kept": p.order_date == dated.kept,
        } for p in (dated.parts if dated else [])],
        "kept_customer": keeper,
        "kept_order_date": dated.kept if dated else (split.parts[0].dates[0] if split else None),
        "latest_line": order.latest_line, "latest_imported": order.latest_imported,
    }  # fmt: skip


@extend_schema(tags=["purchases"])
class SplitOrderViewSet(viewsets.GenericViewSet):
    """The orders whose lines name two customers or carry two order dates (stored so before session 56), by order
    number; `POST …/repair/` gives one order one customer and one order date."""

    queryset = splits.OrderLine.objects.none()  # a list of orders made by sales.splits, not a queryset
    permission_classes = [HasCapability]
    required_caps = {"repair": Cap.IMPORT_ORDERS, "*": Cap.VIEW_PURCHASES}
    serializer_class = SplitOrderSerializer
    filter_backends: list = []  # by order number, filtered by SplitOrderParams

    @extend_schema(
        parameters=[SplitOrderParams], responses={200: SplitOrderSerializer(many=True)},
        description="The split orders you may see (a rep: those all of whose customers are in their territory), "
        "as the split orders page lists them: each customer and order date its lines carry, with their line "
        "numbers, amounts and last import, and the customer and date the repair keeps unless told otherwise — those "
        "of the line imported last.",
    )  # fmt: skip
    def list(self, request):
        params = SplitOrderParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        p = params.validated_data
        numbers = splits.numbers_for(
            request.user, customer=p.get("customer"), order=(p.get("order_number") or "").strip(),
            date_from=p.get("date_from"), date_to=p.get("date_to"),
        )  # fmt: skip
        page = self.paginate_queryset(numbers)
        data = SplitOrderSerializer([order_data(o) for o in splits.describe(page)], many=True).data
        return self.get_paginated_response(data)

    @extend_schema(
        request=SplitRepairSerializer,
        responses={
            200: SplitRepairedSerializer,
            400: OpenApiResponse(description="A customer or order date the order's lines do not carry (named by the "
                                 "field), or a malformed body."),
            403: OpenApiResponse(description="May not import orders."),
            404: OpenApiResponse(description="No such split order in your scope (never split, or not stored)."),
        },
        description="Give a split order one customer and one order date — by default those of the line imported "
        "last — as the split orders page and `pharmacrm orders split-check --repair` do: the other customers' lines "
        "move to it and the lines dated otherwise take that date, fingerprinted again, the months concerned "
        "recomputed, each line audited. Sent twice, or after a colleague repaired the order, it changes nothing and "
        "answers `already_repaired: true` with who repaired it and when.",
    )  # fmt: skip
    @action(detail=False, methods=["post"])
    def repair(self, request):
        body = SplitRepairSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        number = body.validated_data["order_number"].strip()
        customer, day = body.validated_data.get("customer"), body.validated_data.get("order_date")
        found = splits.describe([number])
        if found:
            named = {i for p in (found[0].dates.parts if found[0].dates else []) for i in p.customers}
            named |= {p.institution_id for p in (found[0].customers.parts if found[0].customers else [])}
            if access.visible_ids(request.user, "institution", named) != named:
                raise Http404
            try:
                done = splits.repair(number, request.user, customer=customer, order_date=day, source="api")
            except DjangoValidationError as e:
                return Response(validation_detail(e), status=status.HTTP_400_BAD_REQUEST)
            if not done.already:
                return Response(SplitRepairedSerializer({**done.__dict__, "already_repaired": False,
                                                         "repaired_by": None, "repaired_at": None}).data)  # fmt: skip
        entry = splits.last_repair(number)
        if entry is None:
            raise Http404(_("No order %(order)s is split between customers or order dates.") % {"order": number})
        line = splits.OrderLine.objects.filter(order_number=number).values("institution_id", "order_date").first()
        return Response(SplitRepairedSerializer({
            "order_number": number, "customer": line["institution_id"], "order_date": line["order_date"], "moved": 0,
            "redated": 0, "already_repaired": True,
            "repaired_by": str(entry.actor) if entry.actor_id and entry.actor else entry.actor_name,
            "repaired_at": timezone.localtime(entry.at),
        }).data)  # fmt: skip


def register(router) -> None:
    router.register("sales/split-orders", SplitOrderViewSet, basename="split-order")
