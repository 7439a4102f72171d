"""REST API for purchases: order lines of the customers you may see (/api/v1/order-lines/), a customer's
purchases summary (/api/v1/sales/customers/{id}/purchases/), and the order import for ERP integrations
(POST /api/v1/sales/orders/), which writes the lines through the same import engine as the file upload.

Money is Decimal yuan as strings ("1234.50")."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.http import Http404
from django.urls import path
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pharmacrm.core import viewsets
from pharmacrm.core.api_utils import (
    HasCapability,
    ModelSerializer,
    Serializer,
    StrictBooleanFilter,
    TypedDateFilter,
    WholeNumberField,
    validation_detail,
)
from pharmacrm.core.roles import Cap
from pharmacrm.core.viewsets import APIView
from pharmacrm.customers import importer as base
from pharmacrm.customers.forms import CUSTOMER_NAME_HELP, picker_label
from pharmacrm.customers.models import ImportJob, Institution

from . import api_churn, api_pipeline, api_targets, services
from .forms import apply_filters
from .importer import ORDER_COLUMNS
from .models import OrderLine, yuan
from .views import credit_label

MAX_ID = 2**63 - 1
MAX_LINES = 10_000
CUSTOMER_PK = OpenApiParameter(
    "id", int, OpenApiParameter.PATH, description="The customer's (institution's) id."
)


def register(router) -> None:
    router.register("order-lines", OrderLineViewSet, basename="order-line")
    api_churn.register(router)
    api_targets.register(router)
    api_pipeline.register(router)
    from . import api_clv, api_kpi

    api_clv.register(router)
    api_kpi.register(router)
    from . import api_splits

    api_splits.register(router)


# --- reading ------------------------------------------------------------------------------------------


class YuanField(serializers.DecimalField):
    """An amount stored in fen, shown as Decimal yuan (a string with two places)."""

    def __init__(self, **kwargs):
        super().__init__(max_digits=17, decimal_places=2, read_only=True, **kwargs)

    def to_representation(self, value):
        return super().to_representation(yuan(value))


class OrderLineSerializer(ModelSerializer):
    customer = serializers.IntegerField(source="institution_id", read_only=True)
    customer_name = serializers.SerializerMethodField(help_text=CUSTOMER_NAME_HELP)
    amount = YuanField(source="amount_fen")
    paid_amount = YuanField(source="paid_fen")
    outstanding = YuanField(source="outstanding_fen", help_text="Amount not paid yet.")

    class Meta:
        model = OrderLine
        fields = [
            "id", "order_number", "line_number", "order_date", "customer", "customer_name", "product_code",
            "product_name", "batch_number", "quantity", "unit_price", "amount", "invoice_number", "payment_due",
            "paid_date", "paid_amount", "outstanding", "imported_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_customer_name(self, obj: OrderLine) -> str:
        return picker_label(obj.institution)  # its parent read with it (services.lines_for)


@extend_schema_field({"type": "integer", "minimum": 1, "description": "The customer's (institution's) id: only "
                                                                     "its lines."})  # fmt: skip
class CustomerFilter(django_filters.NumberFilter):
    """A customer's id: a whole number (1.5 is refused by name, not read as a number)."""

    field_class = WholeNumberField  # ASCII digits: "١٢" is refused as the URLs refuse it


class OrderLineFilter(django_filters.FilterSet):
    """The query parameters of GET /api/v1/order-lines/, with the order-line page's meaning (sales.forms).
    An invalid value answers 400 naming the parameter; an unknown parameter is ignored."""

    customer = CustomerFilter(field_name="institution_id", min_value=1, max_value=MAX_ID)
    order_number = django_filters.CharFilter(
        method="filter_text", max_length=40,
        label="Order number or its beginning, in any letter case: xs2026-03 finds XS2026-0301 and XS2026-0315.",
    )  # fmt: skip
    product_code = django_filters.CharFilter(
        method="filter_text", max_length=40, label="ERP product code (the whole code, in any letter case)."
    )
    batch_number = django_filters.CharFilter(
        method="filter_text", max_length=40, label="Batch / lot number (the whole number, in any letter case)."
    )
    date_from = TypedDateFilter(
        field_name="order_date", lookup_expr="gte", label="Ordered on or after (YYYY-MM-DD; also YYYY/MM/DD, YYYY.MM.DD, YYYY年M月D日)."
    )
    date_to = TypedDateFilter(
        field_name="order_date", lookup_expr="lte", label="Ordered on or before (YYYY-MM-DD; also YYYY/MM/DD, YYYY.MM.DD, YYYY年M月D日)."
    )
    open = StrictBooleanFilter(
        method="filter_open", label="true: only lines not paid in full; false: only lines paid in full."
    )
    key_account = StrictBooleanFilter(
        method="filter_key_account",
        label="true: only the lines of key accounts (an active key-account file on the customer or its parent "
        "hospital); false: only the others.",
    )  # fmt: skip

    class Meta:
        model = OrderLine
        fields: list[str] = []

    _FORM_KEYS = {"order_number": "order", "product_code": "product", "batch_number": "batch"}

    def filter_text(self, queryset, name, value):
        value = (value or "").strip()
        return apply_filters(queryset, {self._FORM_KEYS[name]: value}) if value else queryset

    def filter_open(self, queryset, name, value):
        if value is True:
            return queryset.filter(outstanding_fen__gt=0)
        if value is False:
            return queryset.filter(outstanding_fen=0)
        return queryset

    def filter_key_account(self, queryset, name, value):
        if value is None:
            return queryset
        keys = Q(institution_id__in=services.key_account_institutions().values("id"))
        return queryset.filter(keys if value else ~keys)

    def filter_queryset(self, queryset):
        start, end = self.form.cleaned_data.get("date_from"), self.form.cleaned_data.get("date_to")
        if start and end and start > end:
            raise serializers.ValidationError({"date_to": [_("This date lies before “%(field)s”.") % {"field": "date_from"}]})
        return super().filter_queryset(queryset)


# `remove`'s body as the schema documents it (strict, as the body is read: the schema says other fields are
# refused); RemoveLineInput reads it, leaving a missing or short reason to the service's message
class RemoveOrderLineSerializer(Serializer):
    """Why the line is removed: kept in the audit trail with the line's values."""

    reason = serializers.CharField(max_length=500)


class RemoveLineInput(Serializer):
    """The body as sent: a JSON object whose reason is text. The service says what a missing or short reason
    lacks; a body that was not an object answered 500, and `{"reason": null}` or a list was stored as the
    reason "None" or "['…']"."""

    reason = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)


@extend_schema(
    tags=["purchases"],
    description="Order lines (订单行) of the customers you may see, the newest order first. Amounts in yuan.",
)
class OrderLineViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Order lines imported from the ERP: they change by import; a line the ERP no longer has is removed with
    `POST …/{id}/remove/` and a reason (those who import orders)."""

    queryset = OrderLine.objects.none()
    serializer_class = OrderLineSerializer
    permission_classes = [HasCapability]
    required_caps = {"remove": Cap.IMPORT_ORDERS, "*": Cap.VIEW_PURCHASES}
    filterset_class = OrderLineFilter
    filter_backends = [DjangoFilterBackend]
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return services.lines_for(self.request.user).order_by("-order_date", "order_number", "line_number")

    @extend_schema(
        request=RemoveOrderLineSerializer,
        responses={204: None, 400: OpenApiResponse(description="No reason (2 to 500 characters)"),
                   403: OpenApiResponse(description="May not import orders"),
                   404: OpenApiResponse(description="No such line in your scope, or removed already")},  # fmt: skip
        description="Remove a line the ERP no longer has (deleted from its order there). The customer's monthly "
        "rollup is recomputed; the line's values stay in the audit trail with the reason.",
    )
    @action(detail=True, methods=["post"])
    def remove(self, request, pk=None):
        line = self.get_object()
        body = RemoveLineInput(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            services.remove_line(request.user, line, body.validated_data.get("reason", ""))
        except DjangoValidationError as e:
            return Response(validation_detail(e), status=status.HTTP_400_BAD_REQUEST)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- a customer's purchases ----------------------------------------------------------------------------

CREDIT_STATUSES = ["good", "watch", "poor", "none"]


@extend_schema_field({"type": "string", "enum": CREDIT_STATUSES}, component_name="CreditStatusEnum")
class CreditStatusField(serializers.ChoiceField):
    """good, watch, poor, or none (no payment history)."""

    def __init__(self, **kwargs):
        super().__init__(choices=CREDIT_STATUSES, **kwargs)


MONEY = serializers.DecimalField(max_digits=17, decimal_places=2)

PurchasesSerializer = inline_serializer(
    "CustomerPurchases",
    {
        "customer": serializers.IntegerField(),
        "months": inline_serializer("PurchaseMonth", {
            "month": serializers.CharField(help_text="YYYY-MM"), "amount": MONEY, "orders": serializers.IntegerField(),
            "lines": serializers.IntegerField(), "products": serializers.IntegerField(), "overdue": MONEY,
        }, many=True),
        "totals_12m": inline_serializer("PurchaseTotals", {
            "amount": MONEY, "orders": serializers.IntegerField(), "lines": serializers.IntegerField(),
        }),
        "credit": inline_serializer("CreditStatus", {
            "status": CreditStatusField(),
            "status_label": serializers.CharField(),
            "on_time_share": serializers.DecimalField(max_digits=6, decimal_places=4, allow_null=True,
                                                      help_text="0–1; null without payments due."),
            "average_days_late": serializers.DecimalField(max_digits=10, decimal_places=1, allow_null=True),
            "late_lines": serializers.IntegerField(), "paid": MONEY, "outstanding": MONEY, "overdue": MONEY,
            "window_months": serializers.IntegerField(),
            "assumed_term_days": serializers.IntegerField(
                allow_null=True, help_text="The default payment term (days after the order date) taken for the "
                "lines without a payment due date; null when every line counted has one."),
            "overdue_ignored": serializers.BooleanField(
                help_text="The overdue amount is immaterial (under PHARMACRM_CREDIT_MATERIALITY_FEN, ¥1.00 by "
                "default, and under 0.1 % of the window's purchases): the status counts it as settled."),
            "ageing": inline_serializer("AgeingBucket", {
                "label": serializers.CharField(), "from": serializers.IntegerField(),
                "to": serializers.IntegerField(allow_null=True), "amount": MONEY,
            }, many=True),
        }),
    },
)  # fmt: skip


def _money(value) -> str:
    return f"{value:.2f}"


def purchases_summary(institution_id: int) -> dict:
    """The JSON of GET …/purchases/: 24 months, 12-month totals, credit status and ageing."""
    months = services.monthly(institution_id, 24)
    totals = services.totals(institution_id, 12)
    c = services.credit(institution_id)
    return {
        "customer": institution_id,
        "months": [{**m, "amount": _money(m["amount"]), "overdue": _money(m["overdue"])} for m in months],
        "totals_12m": {**totals, "amount": _money(totals["amount"])},
        "credit": {
            "status": c.status, "status_label": credit_label(c.status),
            "on_time_share": None if c.on_time_share is None else str(c.on_time_share),
            "average_days_late": None if c.average_days_late is None else str(c.average_days_late),
            "late_lines": c.late_lines, "paid": _money(c.paid), "outstanding": _money(c.outstanding),
            "overdue": _money(c.overdue), "window_months": c.window_months, "assumed_term_days": c.assumed_term_days,
            "overdue_ignored": c.overdue_ignored,
            "ageing": [{"label": str(b["label"]), "from": b["from"], "to": b["to"], "amount": _money(b["amount"])}
                       for b in c.ageing],
        },
    }  # fmt: skip


class CustomerPurchasesView(APIView):
    """GET /api/v1/sales/customers/{id}/purchases/ — a customer's purchases and credit status."""

    permission_classes = [HasCapability]
    required_caps = {"*": Cap.VIEW_PURCHASES}

    @extend_schema(
        tags=["purchases"], parameters=[CUSTOMER_PK],
        responses={200: PurchasesSerializer, 404: OpenApiResponse(description="No such customer in your scope.")},
        description="The last 24 months (oldest first, empty months included), the totals of the 12 whole months before the current one, and "
        "the credit status: share paid on time, average days late, arrears, overdue and ageing buckets.",
    )  # fmt: skip
    def get(self, request, pk: int):
        if pk > MAX_ID:
            raise Http404
        institution = Institution.objects.filter(pk=pk).first()
        if institution is None or not services.may_see_purchases(request.user, institution):
            raise Http404
        return Response(purchases_summary(institution.pk))


# --- import -----------------------------------------------------------------------------------------------


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "number"}], "nullable": True})
class CellField(serializers.Field):
    """One cell of an order line, as text (numbers and dates may be sent as JSON numbers or strings); the
    import engine checks its value and reports it per line."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if data is None:
            return ""
        if isinstance(data, bool) or not isinstance(data, (str, int, float)):
            raise serializers.ValidationError(_("Send text, a number or null."))
        text = str(data).replace("\x00", "")
        if len(text) > 200:
            raise serializers.ValidationError(_("At most 200 characters."))
        return text

    def to_representation(self, value):
        return value


LINE_KEYS = [c.key for c in ORDER_COLUMNS]


class _LineIn(Serializer):
    """A line's keys are the template's: an unknown one (payment_date for paid_date, a typing error) is refused by
    name. Ignored, as a serializer does by default, it dropped the value: a paid line was imported as unpaid."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = [str(key) for key in data if key not in self.fields]
            if unknown:
                message = _("Unknown field. The fields of an order line are: %(fields)s.") % {
                    "fields": ", ".join(LINE_KEYS)
                }
                raise serializers.ValidationError({key[:60]: [message] for key in unknown[:20]})
        return super().to_internal_value(data)


OrderLineInSerializer = type(
    "OrderLineInSerializer",
    (_LineIn,),
    {
        "__doc__": "An order line in the import template's columns (credit_code or external_id names the customer).",
        "__module__": __name__,
        **{key: CellField(required=False) for key in LINE_KEYS},
    },
)


class OrderImportSerializer(Serializer):
    lines = OrderLineInSerializer(many=True, allow_empty=False, max_length=MAX_LINES)
    dry_run = serializers.BooleanField(default=False, help_text="Check every line; change nothing.")
    mode = serializers.ChoiceField(
        choices=ImportJob.Mode.choices,
        default=ImportJob.Mode.GOOD_ROWS,
        help_text="good: import the good lines and report the others; all: import nothing if any line is bad.",
    )

    def validate_lines(self, lines: list[dict]) -> list[dict]:
        """A line without any value would pass as a blank row of a file (skipped, never reported): the
        sender meant something, so it is refused by its position."""
        empty = [str(i) for i, line in enumerate(lines, 1) if not any((v or "").strip() for v in line.values())]
        if empty:
            raise serializers.ValidationError(
                _("These lines carry no values: %(lines)s.") % {"lines": ", ".join(empty[:20])}
            )
        return lines


ImportResultSerializer = inline_serializer(
    "OrderImportResult",
    {
        "job": serializers.IntegerField(help_text="The import job (GET /api/v1/imports/{id}/)."),
        "status": serializers.CharField(),
        "created": serializers.IntegerField(), "updated": serializers.IntegerField(),
        "unchanged": serializers.IntegerField(), "rejected": serializers.IntegerField(),
        "messages": serializers.ListField(child=serializers.CharField()),
        "errors": inline_serializer("OrderImportError", {
            "row": serializers.IntegerField(help_text="The line's position in `lines`, from 1."),
            "column": serializers.CharField(), "code": serializers.CharField(),
            "message": serializers.CharField(help_text="The reason in your language; row numbers in it (“first "
                                             "in row N” of a duplicate) are positions in `lines` too."),
            "value": serializers.CharField(),
        }, many=True),
        "unknown_products": inline_serializer("OrderImportUnknownProducts", {
            "lines": serializers.IntegerField(help_text="Good lines whose product code is not in the catalogue "
                                              "(imported all the same)."),
            "codes": serializers.ListField(child=serializers.CharField(), help_text="Those codes, the first 20."),
            "more": serializers.BooleanField(help_text="true: more codes than listed."),
        }),
        "split_orders": serializers.IntegerField(help_text="Orders named in `lines` whose stored lines name two "
                                                 "customers or carry two order dates (stored so before session 56): "
                                                 "the import leaves them as they are; GET /api/v1/sales/split-orders/ "
                                                 "lists them, POST /api/v1/sales/split-orders/repair/ repairs one."),
        "split_order_numbers": serializers.ListField(child=serializers.CharField(),
                                                     help_text="Those orders' numbers, the first 100."),
    },
)  # fmt: skip

_KEY_OF_HEADER = {c.header: c.key for c in ORDER_COLUMNS}


def _write_csv(path: Path, lines: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([c.header for c in ORDER_COLUMNS])  # the currency too, which the template leaves out
        for line in lines:
            writer.writerow([line.get(key, "") for key in LINE_KEYS])


def _errors(job: ImportJob) -> list[dict]:
    """Every rejected line's errors from the job's report (row numbers turned into positions in `lines`)."""
    path = base.error_report_path(job)
    if not job.error_count or not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for row, column, code, params, value in reader:
            params = json.loads(params or "{}")
            if "row" in params:  # "first in row N" of a duplicate: that line's position in `lines` too
                params["row"] = _position(params["row"])
            out.append({
                "row": _position(row), "column": _KEY_OF_HEADER.get(column, column), "code": code,
                "message": base.message(code, params), "value": value,
            })  # fmt: skip
    return out


def _position(file_row) -> int:
    """A row of the CSV the API writes (the header is row 1) → the line's position in `lines`, from 1."""
    return int(file_row) - 1


def _split_orders(job: ImportJob) -> list[str]:
    """The split orders the import found among the file's orders, from the job's notes (importer)."""
    try:
        notes = json.loads(job.message) if job.message else []
    except ValueError:
        notes = []
    for note in notes if isinstance(notes, list) else []:
        if isinstance(note, dict) and note.get("code") == "split_orders":
            return [str(n) for n in (note.get("params") or {}).get("order_list") or []]
    return []


def _unknown_products(job: ImportJob) -> dict:
    """The lines whose product code the catalogue does not know, from the job's notes (importer)."""
    try:
        notes = json.loads(job.message) if job.message else []
    except ValueError:
        notes = []
    for note in notes if isinstance(notes, list) else []:
        if isinstance(note, dict) and note.get("code") == "unknown_products":
            params = note.get("params") or {}
            return {"lines": int(params.get("lines") or 0), "codes": list(params.get("code_list") or []),
                    "more": bool(params.get("more"))}  # fmt: skip
    return {"lines": 0, "codes": [], "more": False}


class OrderImportView(APIView):
    """POST /api/v1/sales/orders/ — import order lines (and payments) sent as JSON."""

    permission_classes = [HasCapability]
    required_caps = {"*": Cap.IMPORT_ORDERS}

    @extend_schema(
        tags=["purchases"], request=OrderImportSerializer,
        responses={
            200: ImportResultSerializer,
            400: OpenApiResponse(description="The request itself is wrong (not a list, too many lines, a value "
                                 "that is not text …); a bad line's errors are keyed by its position in "
                                 "`lines`, from 1: {\"lines\": {\"3\": {\"quantity\": [\"…\"]}}}."),
        },
        description="Up to 10,000 order lines per call, in the order template's columns, through the same "
        "import as a file: re-sending the same lines changes nothing, corrected lines are updated, and each "
        "bad line is reported with its column and reason (in your language). Rows are positions in `lines`, "
        "from 1. Lines whose product code is not in the catalogue are imported and counted in "
        "`unknown_products` (and in `messages`).",
    )  # fmt: skip
    def post(self, request):
        serializer = OrderImportSerializer(data=request.data)
        if not serializer.is_valid():
            return Response(_positions_from_one(serializer.errors), status=status.HTTP_400_BAD_REQUEST)
        data = serializer.validated_data
        with tempfile.TemporaryDirectory(prefix="orders-api-", dir=base.imports_dir()) as tmp:
            path = Path(tmp) / "orders.csv"
            _write_csv(path, data["lines"])
            try:
                job = base.import_file(path, ImportJob.Target.ORDERS, request.user, mode=data["mode"],
                                       dry_run=data["dry_run"])  # fmt: skip
            except DjangoValidationError as e:
                return Response(validation_detail(e), status=status.HTTP_400_BAD_REQUEST)
        result = {
            "job": job.pk, "status": job.status, "created": job.created_count, "updated": job.updated_count,
            "unchanged": job.unchanged_count, "rejected": job.error_count, "messages": base.job_messages(job),
            "errors": _errors(job), "unknown_products": _unknown_products(job),
        }  # fmt: skip
        result["split_order_numbers"] = _split_orders(job)
        result["split_orders"] = len(result["split_order_numbers"])
        return Response(result)


def _positions_from_one(errors: dict) -> dict:
    """DRF keys a bad line's errors by its index from 0 (or lists them with an empty entry for each good line);
    the import's own errors count lines from 1. Both from 1 then: {"lines": {"3": {"quantity": [...]}}} for the third."""
    lines = errors.get("lines")
    if isinstance(lines, dict) and all(str(k).isdigit() for k in lines):  # {"2": {...}}: the third line
        errors = {**errors, "lines": {str(int(k) + 1): e for k, e in lines.items()}}
    elif isinstance(lines, list) and lines and all(isinstance(e, dict) for e in lines):
        errors = {**errors, "lines": {str(i): e for i, e in enumerate(lines, 1) if e}}
    return errors


urlpatterns = [
    path("customers/<int:pk>/purchases/", CustomerPurchasesView.as_view(), name="sales-customer-purchases"),
    path("orders/", OrderImportView.as_view(), name="sales-orders-import"),
    *api_churn.urlpatterns,
    *api_targets.urlpatterns,
    *api_pipeline.urlpatterns,
]
