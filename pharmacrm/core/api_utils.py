"""API plumbing shared by every endpoint: pagination, capability permissions, JSON errors, versions."""

from __future__ import annotations

import datetime
import re
import unicodedata
from collections.abc import Mapping

import django_filters
from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, FieldDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.models import QuerySet, UniqueConstraint
from django.http import Http404
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, filters, pagination, permissions, relations, serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.validators import UniqueValidator
from rest_framework.views import exception_handler as drf_exception_handler

from . import access, audit
from .numbers import AMOUNT_MARKS, PERCENT_MARKS, typed_decimal
from .roles import Cap
from .typed_dates import MOMENT_EXAMPLE, typed_date, typed_datetime

# Bounds for integers that reach SQL range look-ups: SQLite raises OverflowError beyond 64 bits.
MAX_INT32 = 2**31 - 1


def _tie_break(view, queryset=None) -> str:
    """The last key of every list: the record id, newest first where the endpoint (or its records' default
    order) lists newest first."""
    default = getattr(view, "ordering", None)
    if not default and isinstance(queryset, QuerySet):
        default = queryset.model._meta.ordering
    default = default or ()
    return "-pk" if {"-id", "-pk"} & set([default] if isinstance(default, str) else default) else "pk"


def _unique_keys(model) -> list[set[str]]:
    """The sets of fields whose values no two rows share (NULLs may repeat, so only non-null fields count)."""
    meta = model._meta
    keys = [{meta.pk.name}]
    keys += [{f.name} for f in meta.concrete_fields if f.unique and not f.null]
    groups = [set(g) for g in meta.unique_together]
    groups += [
        set(c.fields) for c in meta.constraints
        if isinstance(c, UniqueConstraint) and c.fields and c.condition is None and not c.expressions
    ]  # fmt: skip
    for group in groups:
        try:
            if not any(meta.get_field(name).null for name in group):
                keys.append({meta.get_field(name).name for name in group})
        except FieldDoesNotExist:
            continue
    return keys


def total_order(queryset, tie: str = "pk"):
    """The queryset with a last ordering key that no two rows share, unless its ordering already has one.

    Pages are separate queries (LIMIT/OFFSET); rows that tie on every ordering key come in whatever order each
    query's plan gives them — on PostgreSQL a top-N sort for the first page and a full sort for a later one — so a
    client walking the pages got some records twice and others never (users by `last_login`, most of whom had
    never signed in)."""
    if not isinstance(queryset, QuerySet) or queryset.query.combinator or queryset._fields:
        return queryset
    query = queryset.query
    ordering = list(query.order_by) or (list(query.get_meta().ordering) if query.default_ordering else [])
    names = set()
    meta = queryset.model._meta
    for term in ordering:
        if not isinstance(term, str) or "__" in term or term in ("?", "-?"):
            continue
        name = term.lstrip("-")
        if name == "pk":
            return queryset
        try:
            names.add(meta.get_field(name).name)
        except FieldDoesNotExist:
            continue  # an annotation (next_deadline): may tie
    if any(key <= names for key in _unique_keys(queryset.model)):
        return queryset
    return queryset.order_by(*ordering, tie)


def _orderable(model, path: str) -> bool:
    """Whether `path` (a serializer field's source, `__`-separated) names one value per record in the database:
    concrete fields, through foreign keys only."""
    for part in path.split("__"):
        if model is None:
            return False
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return False
        if not field.concrete or field.many_to_many:
            return False
        model = field.related_model if field.is_relation else None
    return True


class Pagination(pagination.PageNumberPagination):
    """?page=N&page_size=M (at most 200); responses carry count, next, previous and results. Whatever the
    ordering, records that tie on it follow in id order, so that walking the pages gives each record once."""

    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset, request, view=None):
        return super().paginate_queryset(total_order(queryset, _tie_break(view, queryset)), request, view)

    def get_page_size(self, request):
        """`page_size` from 1 up (more than 200 gives 200, as documented). Anything else (`abc`, 0, -1) is refused
        by name: DRF ignored it and answered 50 records, as if the client's page size had been applied."""
        raw = request.query_params.get(self.page_size_query_param, "").strip()
        if not raw:
            return self.page_size
        if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
            raise exceptions.ValidationError(
                {self.page_size_query_param: [
                    _("Enter a whole number of records per page from 1 to %(max)d.") % {"max": self.max_page_size}
                ]}
            )  # fmt: skip
        return min(int(raw), self.max_page_size)

    def get_page_number(self, request, paginator):
        """`page` is a whole number from 1 up (or `last`); `page=abc` answered 404 "Invalid page.", as if the
        page were past the end, instead of naming the parameter."""
        raw = request.query_params.get(self.page_query_param, "").strip()
        if raw and raw not in self.last_page_strings and not (raw.isascii() and raw.isdigit() and int(raw) >= 1):
            raise exceptions.ValidationError(
                {self.page_query_param: [_("Enter a page number: a whole number from 1 up.")]}
            )
        return super().get_page_number(request, paginator)


class StableOrdering(filters.OrderingFilter):
    """`?ordering=a,-b` over the fields the endpoint allows, with the record id as the last key (see
    total_order). A field the endpoint does not allow answers 400 naming `ordering`: DRF dropped it in silence
    and answered in the default order, as if the client's ordering had been applied."""

    def get_default_valid_fields(self, queryset, view, context=None):
        """DRF's default for a view that names no ordering_fields (every readable serializer field), less the
        fields the records cannot be ordered by one row each: `ordering=skills` (many-to-many) listed an agent
        once per skill, so pages repeated some agents and never showed others."""
        fields = super().get_default_valid_fields(queryset, view, context)
        return [(name, label) for name, label in fields if _orderable(queryset.model, name)]

    def get_ordering(self, request, queryset, view):
        params = request.query_params.get(self.ordering_param)
        if params:
            fields = [param.strip() for param in params.split(",") if param.strip()]
            valid = self.remove_invalid_fields(queryset, fields, view, request)
            wrong = [f for f in fields if f not in valid]
            if wrong:
                allowed = [item[0] for item in self.get_valid_fields(queryset, view, {"request": request})]
                raise exceptions.ValidationError(
                    {
                        self.ordering_param: [
                            _("“%(value)s” is not a field these records can be ordered by. Use one of: %(fields)s "
                              "(with a leading “-” for descending order).")
                            % {"value": wrong[0].removeprefix("-"), "fields": ", ".join(allowed)}
                        ]
                    }
                )  # fmt: skip
            return valid
        return self.get_default_ordering(view)

    def filter_queryset(self, request, queryset, view):
        return total_order(super().filter_queryset(request, queryset, view), _tie_break(view, queryset))

    def get_schema_operation_parameters(self, view):
        """The parameter with the fields this endpoint orders by, for clients generated from the schema."""
        parameters = super().get_schema_operation_parameters(view)
        try:
            fields = [item[0] for item in self.get_valid_fields(view.get_queryset(), view, {})]
        except Exception:  # noqa: BLE001 — a view that needs a signed-in user to build its queryset
            return parameters
        parameters[0]["description"] = (
            "Comma-separated, a leading “-” for descending order; any other field answers 400. One of: "
            + ", ".join(fields)
        )
        return parameters


# What the typed fields and filters take, as the schema says it (core.api_schema): a client that validates its requests
# against the schema must not refuse what the API reads, as `format: date` refused 2026/3/15. Full-width digits and
# separators (an input method's full-width mode) and spaces included; the ISO forms Python also reads (20260315,
# 2026-W11-1) too.
_DIGIT, _SEP = "[0-9０-９]", "[-/.－／．]"
TYPED_DATE_SCHEMA = {
    "type": "string",
    "pattern": rf"^\s*{_DIGIT}{{4}}\s*(?:{_SEP}\s*{_DIGIT}{{1,2}}\s*{_SEP}\s*{_DIGIT}{{1,2}}"
               rf"|年\s*{_DIGIT}{{1,2}}\s*月\s*{_DIGIT}{{1,2}}\s*日|[0-9]{{4}}|-?W[0-9]{{2}}-?[0-9])\s*$",
    "example": "2026-03-15",
    "description": "A day: YYYY-MM-DD, also YYYY/M/D, YYYY.M.D or YYYY年M月D日, in ASCII or full-width digits.",
}  # fmt: skip
TYPED_MOMENT_SCHEMA = {
    "type": "string",
    "pattern": rf"^\s*{_DIGIT}{{4}}[0-9０-９\s年月日时点分秒:：.,．，+\-－/／TtWZz]*$",
    "example": "2026-03-15T14:30:00+08:00",
    "description": "A date and time: ISO 8601 (without an offset: Beijing time), or as typed — YYYY-MM-DD HH:MM, "
    "YYYY/M/D HH:MM, YYYY.M.D HH:MM, YYYY年M月D日 H时M分 (or H点) — in ASCII or full-width digits.",
}  # fmt: skip


class UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 time, normalised to UTC: PostgreSQL refuses offsets beyond ±15:59 (which ISO
    allows), and a time that cannot be expressed in UTC is an invalid value, not a server error. Also a moment as
    people type it (typed_datetime: 2026/3/15 14:30, 2026年3月15日 14时30分), in the reader's time zone."""

    def to_python(self, value):
        if isinstance(value, str) and value.strip():
            typed = typed_datetime(value)
            if typed is None and not value.isascii():
                raise DjangoValidationError(self.error_messages["invalid"], code="invalid")
            value = typed or value
        result = super().to_python(value)
        if result is None:
            return None
        try:
            return result.astimezone(datetime.UTC)
        except (OverflowError, ValueError):
            raise DjangoValidationError(self.error_messages["invalid"], code="invalid") from None


@extend_schema_field(TYPED_MOMENT_SCHEMA)
class DateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class StrictBooleanField(forms.NullBooleanField):
    """true / false (also 1 / 0, yes / no, on / off, any case); anything else is refused by name. django-filter's
    BooleanFilter read `?is_active=maybe` as "not given" and answered with every record."""

    widget = forms.TextInput
    TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")

    def to_python(self, value):
        text = str(value).strip().lower() if value is not None else ""
        if not text:
            return None
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise DjangoValidationError(_("Enter true or false."), code="invalid")

    def validate(self, value):
        pass


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class WholeNumberField(forms.IntegerField):
    """A record id or a year in a filter: ASCII digits only. django-filter's NumberFilter read ids as decimals, so
    `?person=1.5` matched no record (an empty list, as if there were none) and a filter that took the value as an
    id (`?institution=1.5` of interactions) answered institution 1's; `١٢` (Arabic-Indic digits) was read as 12,
    where the URLs refuse it."""

    def to_python(self, value):
        text = str(value).strip() if value is not None else ""
        if text and not re.fullmatch(r"-?[0-9]+", text):
            raise DjangoValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(text)  # "Enter a whole number." (Django's message, translated)


@extend_schema_field({"type": "integer"})
class IntegerFilter(django_filters.NumberFilter):
    field_class = WholeNumberField


MOMENT_FORMS = gettext_lazy(
    "Enter a date and time as YYYY-MM-DD HH:MM (also accepted: YYYY/MM/DD HH:MM, YYYY.MM.DD HH:MM, YYYY年M月D日 H时M分)."
)


class DateField(serializers.DateField):
    """A day: YYYY-MM-DD, also as ERP systems and Excel export it (2025/03/15, 2025.3.15, 2025年3月15日, full-width
    digits); answered as YYYY-MM-DD. One written that way that the calendar lacks (2025-02-29, 2025-13-01) is
    refused as a day that does not exist, not as a wrong format; anything else by the forms it takes."""

    default_error_messages = {
        "invalid": gettext_lazy("Enter a date as YYYY-MM-DD (also accepted: YYYY/MM/DD, YYYY.MM.DD, YYYY年M月D日)."),
    }
    reads_typed_digits = True  # StrictInputMixin: full-width digits are read here, not refused

    def to_internal_value(self, value):
        if isinstance(value, str):
            iso = typed_date(value)
            if iso is None and not value.strip().isascii():
                self.fail("invalid")
            typed, value = value.strip(), iso or value.strip()
            try:
                return super().to_internal_value(value)
            except exceptions.ValidationError:
                if iso is not None:
                    raise exceptions.ValidationError(
                        _("“%(value)s” is not a day of the calendar: check the month and the day.")
                        % {"value": typed[:40]},
                        code="no_such_date",
                    ) from None
                raise
        return super().to_internal_value(value)


class TypedDateFormField(forms.DateField):
    """A list filter's day, read as the API's DateField reads a body's (typed_date): 2026-03-15, 2026/3/15,
    2026年3月15日, full-width digits; anything else refused naming the forms it takes. Django's field also took the
    locale's forms, and read 03/11/2026 as the eleventh of March under Accept-Language: en."""

    default_error_messages = {"invalid": DateField.default_error_messages["invalid"]}

    def __init__(self, **kwargs):
        kwargs["input_formats"] = ["%Y-%m-%d"]  # what typed_date gives
        super().__init__(**kwargs)

    def to_python(self, value):
        if isinstance(value, str) and value.strip():
            value = typed_date(value)
            if value is None:
                raise DjangoValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


@extend_schema_field(TYPED_DATE_SCHEMA)
class TypedDateFilter(django_filters.DateFilter):
    field_class = TypedDateFormField


class TypedDateTimeFormField(forms.DateTimeField):
    """A moment on a page, read as the API reads one (typed_datetime): 2026-03-15 14:30, 2026-03-15T14:30 (what a
    date-time input sends), 2026/3/15 14:30, 2026年3月15日 14时30分, full-width digits — in the reader's time zone;
    anything else refused naming the forms it takes. Django's field took the ISO forms only (and, per language, forms
    of its own). A text input: a date-time picker sends its own form and nothing that was typed or pasted."""

    default_error_messages = {"invalid": MOMENT_FORMS}
    widget = forms.DateTimeInput(attrs={"placeholder": MOMENT_EXAMPLE, "size": 18}, format="%Y-%m-%d %H:%M")

    def __init__(self, **kwargs):
        kwargs["input_formats"] = ["%Y-%m-%dT%H:%M:%S"]  # what typed_datetime gives
        super().__init__(**kwargs)

    def to_python(self, value):
        if isinstance(value, str) and value.strip():
            value = typed_datetime(value)
            if value is None:
                raise DjangoValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


def _typed_number(field: serializers.Field, text: str, *marks: str):
    """A number typed as text (thousands separators, spaces, full-width digits and the field's `marks`), read as the
    pages read it; a text too long or not a number fails the field's own way."""
    if len(text) > field.MAX_STRING_LENGTH:
        field.fail("max_string_length")
    number = typed_decimal(text, *marks)
    if number is None:
        field.fail("invalid")
    return number


class TypedDecimalField(serializers.DecimalField):
    """A number as people type it (core.numbers.typed_decimal): a JSON number, or text with thousands separators,
    spaces, full-width digits and the field's unit `marks` (¥ / 元 of an amount, % of a figure in percent): "¥1,234.50",
    "１，２３４．５", "1 234.50", "1234.5元". Anything else (1.2万, 1e3, Arabic-Indic digits) is refused with the
    field's message."""

    marks: tuple[str, ...] = ()
    reads_typed_digits = True  # StrictInputMixin: full-width digits are read here, not refused
    default_error_messages = {"invalid": gettext_lazy("Enter a number, such as 1234.5 or 1,234.50.")}

    def __init__(self, *, marks: tuple[str, ...] | None = None, **kwargs):
        if marks is not None:
            self.marks = marks
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = str(_typed_number(self, data, *self.marks))
        elif isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class TypedIntegerField(serializers.IntegerField):
    """A whole number a person types (beds, a quantity, a count, minutes, a threshold, an order), read as the pages
    read it (core.forms.TypedWholeNumberField): a JSON integer, or text with thousands separators, spaces and
    full-width digits — "1,000", "1 000", "１０００". Anything else ("1e3", "1.5", "1_000", Arabic-Indic digits) is
    refused under the field; the bounds keep DRF's messages. Ids and versions stay IntegerField (ASCII digits)."""

    reads_typed_digits = True  # StrictInputMixin: full-width digits are read here, not refused
    default_error_messages = {"invalid": gettext_lazy("Enter a whole number, such as 12 or 1,200.")}

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, str):
            number = _typed_number(self, data)
            if not number.is_finite() or number != number.to_integral_value():
                self.fail("invalid")
            data = int(number)
        elif isinstance(data, float) and not data.is_integer():
            self.fail("invalid")
        return super().to_internal_value(data)


class PercentField(TypedDecimalField):
    """A figure in percent (a discount level, a growth that scores 100): "30", "30%", "３０％", "12.5 %" are 30 and
    12.5."""

    marks = PERCENT_MARKS
    default_error_messages = {"invalid": gettext_lazy("Enter a percentage, such as 30, 12.5 or 30%.")}


class AmountField(TypedDecimalField):
    """An amount in yuan: "¥1,234.50", "1234.5元", "１，２３４．５" or a JSON number. Two decimal places unless
    told otherwise."""

    marks = AMOUNT_MARKS
    default_error_messages = {"invalid": gettext_lazy("Enter an amount in yuan, such as 1234.50 or ¥1,234.50.")}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", 14)
        kwargs.setdefault("decimal_places", 2)
        super().__init__(**kwargs)


class SafeDateTimeField(serializers.DateTimeField):
    """A date and time the server can hold. One that exists only beyond the calendar's edge once taken to UTC — a
    naive 0001-01-01T00:00 read in China's time zone (UTC+8) lies in year 0 — raised OverflowError inside DRF's own
    field (a server error, 500); it is an invalid value of the field (400 under its name). `earliest`, when given,
    refuses older moments as typing errors.

    ISO 8601 (with or without an offset), and a moment as people type it (typed_datetime: 2026/3/15 14:30,
    2026年3月15日 14时30分, full-width digits) in the reader's time zone; anything else, Arabic-Indic digits included,
    is refused naming the forms it takes."""

    reads_typed_digits = True  # StrictInputMixin: full-width digits are read here, not refused
    # the forms DRF's message ("Datetime has wrong format. Use one of these formats instead: …") names
    FORMS = "YYYY-MM-DDThh:mm[:ss][+HH:MM|-HH:MM|Z], YYYY-MM-DD hh:mm, YYYY/MM/DD hh:mm, YYYY年M月D日 H时M分"

    def __init__(self, *, earliest: datetime.datetime | None = None, **kwargs):
        self.earliest = earliest
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        if isinstance(value, str):
            typed = typed_datetime(value)
            if typed is None and not value.isascii():
                self.fail("invalid", format=self.FORMS)
            value = typed or value
        try:
            result = super().to_internal_value(value)
            result.astimezone(datetime.UTC)
        except (OverflowError, ValueError):
            self.fail("invalid", format=self.FORMS)
        except exceptions.ValidationError as e:
            if e.get_codes() == ["invalid"]:
                self.fail("invalid", format=self.FORMS)
            raise
        if self.earliest is not None and result < self.earliest:
            raise serializers.ValidationError(_("This date is too long ago: check it."))
        return result


# --- what a request body may hold -------------------------------------------------------------------------

# Fields whose text Python reads whatever the script of its digits: int("١٢") and int("１２") are 12, and a date or
# a time written in full-width digits parses too.
_NUMERIC_FIELDS = (
    serializers.IntegerField, serializers.FloatField, serializers.DecimalField, serializers.DateField,
    serializers.DateTimeField, serializers.TimeField, serializers.DurationField,
)  # fmt: skip
_FORM_KEYS = {"csrfmiddlewaretoken"}  # sent with every form of the browsable API
MAX_UNKNOWN_REPORTED = 20


def foreign_digits(field, value):
    """The messages for a value of a number, id, date or time field written with other than ASCII characters
    (Arabic-Indic or full-width digits, an ideographic space), else None. A list's or a mapping's items are
    checked one by one; a nested serializer checks its own fields."""
    if isinstance(field, serializers.BaseSerializer):
        return None
    if isinstance(field, relations.ManyRelatedField):
        field = field.child_relation
        items = value if isinstance(value, list) else []
    elif isinstance(field, serializers.ListField):
        field, items = field.child, value if isinstance(value, list) else []
    elif isinstance(field, serializers.DictField):
        field, items = field.child, list(value.values()) if isinstance(value, Mapping) else []
    else:
        items = None
    if items is not None:
        for item in items:
            if (found := foreign_digits(field, item)) is not None:
                return found
        return None
    if not isinstance(value, str) or value.isascii() or getattr(field, "reads_typed_digits", False):
        return None
    if isinstance(field, relations.PrimaryKeyRelatedField) or isinstance(field, serializers.IntegerField):
        return [exceptions.ErrorDetail(_("A valid integer is required."), code="invalid")]
    if isinstance(field, _NUMERIC_FIELDS):
        try:
            field.to_internal_value("x")  # the field's own message for a value it cannot read
        except exceptions.ValidationError as exc:
            return exc.detail
        return [exceptions.ErrorDetail(_("A valid number is required."), code="invalid")]
    return None


class StrictInputMixin:
    """What every serializer that reads a request body does (docs/api.md, "Request bodies"):

    - a field it does not know is refused by name ({"nmae": ["Unknown field."]}): ignored, as DRF does, a typing
      error lost the client's value without a word, the answer a 200 as if it had been saved. The fields the
      serializer answers with, the read-only ones included (id, created_at …), are accepted and ignored, so that a
      client can GET a record, change a field and PUT it back; a write serializer whose answer is another
      serializer's names it in `echoes`, whose fields are accepted and ignored the same way;
    - a number, an id, a date or a time written with other than ASCII digits ("١٢", "１２") is refused by name:
      Python read it as 12, so a key account or a person other than the one meant could be changed.

    Query-string serializers set `refuse_unknown = False` (the query has the pagination's and ordering's keys)."""

    refuse_unknown = True
    echoes: type | None = None

    def _accepted_keys(self) -> set[str]:
        keys = set(self.fields) | _FORM_KEYS
        if self.echoes is not None:
            keys |= set(self.echoes().fields)
        return keys

    def input_errors(self, data) -> dict:
        """{field: [messages]} for the unknown fields and the foreign digits of `data` (a mapping)."""
        errors: dict = {}
        for name, field in self.fields.items():
            if field.read_only:
                continue
            value = field.get_value(data)
            if value is serializers.empty:
                continue
            if (messages := foreign_digits(field, value)) is not None:
                errors[name] = messages
        if self.refuse_unknown:
            accepted = self._accepted_keys()
            unknown = [str(key) for key in data if key not in accepted]
            for key in unknown[:MAX_UNKNOWN_REPORTED]:
                errors[key[:60]] = [exceptions.ErrorDetail(_("Unknown field."), code="unknown_field")]
        return errors

    def to_internal_value(self, data):
        errors = self.input_errors(data) if isinstance(data, Mapping) else {}
        try:
            value = super().to_internal_value(data)
        except exceptions.ValidationError as exc:
            if errors and isinstance(exc.detail, dict):
                raise exceptions.ValidationError({**exc.detail, **errors}) from None
            raise
        if errors:
            raise exceptions.ValidationError(errors)
        return value


class RegionCodeField(serializers.SlugRelatedField):
    """A region by its GB/T 2260 code. Anything that cannot be one (not digits, too long, a NUL character) is
    unknown without asking the database: PostgreSQL refuses NUL characters even in a look-up, which was a server
    error instead of the field's message."""

    def __init__(self, **kwargs):
        kwargs.setdefault("slug_field", "code")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        # read as the import reads a code: full-width digits (１１０１０１, typed in an input method's full-width
        # mode) are the ordinary ones, and surrounding spaces are not part of it
        code = unicodedata.normalize("NFKC", data).strip() if isinstance(data, str) else None
        if code is not None and re.fullmatch(r"[0-9]{1,12}", code):
            found = self.get_queryset().filter(**{self.slug_field: code}).first()
            if found is not None:
                return found
        # the import's words, naming what is wrong (DRF's "Object with code=… does not exist" named no field)
        raise serializers.ValidationError(
            _("“%(value)s” is not an official region code.") % {"value": str(data)[:40].replace("\x00", "")},
            code="does_not_exist",
        )


class Serializer(StrictInputMixin, serializers.Serializer):
    """The base of the API's serializers: see StrictInputMixin."""


class NamedUniqueValidator(UniqueValidator):
    """DRF's unique check with the model's message naming the value (pharmacrm.core.unique)."""

    def __call__(self, value, serializer_field):
        try:
            super().__call__(value, serializer_field)
        except exceptions.ValidationError:
            raise exceptions.ValidationError(str(self.message) % {"value": value}, code="unique") from None


class ModelSerializer(StrictInputMixin, serializers.ModelSerializer):
    """The base of the API's model serializers: see StrictInputMixin. A unique field whose model words its
    duplicates (UNIQUE_MESSAGES) is refused in those words. Dates and decimals are read as typed (DateField,
    TypedDecimalField)."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateField: DateField,
        models.DecimalField: TypedDecimalField,
    }

    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        message = getattr(model_field.model, "UNIQUE_MESSAGES", {}).get(model_field.name)
        if message is not None and kwargs.get("validators"):
            kwargs["validators"] = [
                NamedUniqueValidator(v.queryset, message=message, lookup=v.lookup) if isinstance(v, UniqueValidator) else v
                for v in kwargs["validators"]
            ]  # fmt: skip
        return field_class, kwargs


class QuerySerializer(Serializer):
    """A serializer of query-string parameters: numbers in ASCII digits, other keys left to the other readers of
    the query (pagination, ordering, filters)."""

    refuse_unknown = False


def optional(field, **kw):
    """A write serializer's field that may be left out or sent as null (a partial change)."""
    return field(required=False, allow_null=True, **kw)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"

    def __init__(self, detail: str, current_version: int | None = None):
        super().__init__(detail)
        self.current_version = current_version


def _messages(error: DjangoValidationError) -> list[str]:
    """The error's messages as plain strings, evaluated now, in the request's language."""
    return [str(m) for m in error.messages]


def validation_detail(error: DjangoValidationError) -> dict[str, list[str]]:
    """A Django ValidationError as DRF's {field: [messages]} (non-field messages under non_field_errors)."""
    if hasattr(error, "error_dict"):
        out: dict[str, list[str]] = {}
        for field, errors in error.error_dict.items():
            key = api_settings.NON_FIELD_ERRORS_KEY if field == NON_FIELD_ERRORS else field
            for e in errors:
                out.setdefault(key, []).extend(_messages(e))
        return out
    return {api_settings.NON_FIELD_ERRORS_KEY: _messages(error)}


_DJANGO_NOT_FOUND = re.compile(r"^No \w+ matches the given query\.$")


def view_name(view) -> str:
    """An endpoint's name as the browsable API and OPTIONS show it, translated: its model's verbose name
    (plural for a list), else DRF's name made from the class name ("User List" otherwise, in any language)."""
    from rest_framework.views import get_view_name

    model = getattr(getattr(view, "queryset", None), "model", None)
    if model is None:
        model = getattr(getattr(getattr(view, "serializer_class", None), "Meta", None), "model", None)
    if model is None or getattr(view, "name", None):  # extra actions are named by their route
        return get_view_name(view)
    detail = view.detail if getattr(view, "detail", None) is not None else getattr(view, "suffix", "") == "Instance"
    return capfirst(str(model._meta.verbose_name if detail else model._meta.verbose_name_plural))


def _no_data(detail) -> bool:
    """DRF's "No data provided" (a body of JSON null): hard-coded English, so replaced by our message."""
    errors = detail.get(api_settings.NON_FIELD_ERRORS_KEY) if isinstance(detail, dict) else None
    return bool(errors) and len(errors) == 1 and getattr(errors[0], "code", None) == "null"


def exception_handler(exc, context):
    """DRF's handler, also turning Django's ValidationError, PermissionDenied and Http404 into JSON."""
    from pharmacrm.customers.services import ConflictError

    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(validation_detail(exc))
    elif isinstance(exc, ConflictError):
        exc = Conflict(str(exc), exc.current_version)
    elif isinstance(exc, DjangoPermissionDenied) and not exc.args:
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, Http404) and (not exc.args or _DJANGO_NOT_FOUND.match(str(exc))):
        # Django's get_object_or_404 says "No Institution matches the given query." in English only
        exc = exceptions.NotFound()
    elif isinstance(exc, exceptions.ParseError) and str(exc.detail).startswith("JSON parse error"):
        exc = exceptions.ParseError(_("The request body is not valid JSON."))
    elif isinstance(exc, exceptions.ValidationError) and _no_data(exc.detail):
        exc = exceptions.ValidationError(
            {api_settings.NON_FIELD_ERRORS_KEY: [_("The request body is empty: send the fields as a JSON object.")]}
        )
    elif isinstance(exc, exceptions.ParseError) and " parse error - " in str(exc.detail):
        exc = exceptions.ParseError()  # "Multipart form parse error - …": DRF's translated "Malformed request."
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, Conflict) and exc.current_version is not None:
        response.data["current_version"] = exc.current_version
    if isinstance(exc, (exceptions.PermissionDenied, DjangoPermissionDenied)):
        _audit_denial(context)
    return response


def _audit_denial(context) -> None:
    """Refused writes are worth a trace; refused reads would only flood the trail."""
    request = context.get("request")
    if request is None or request.method in permissions.SAFE_METHODS:
        return
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return
    view = context.get("view")
    audit.record(
        "access_denied",
        ("api", "", clean_text(request.path)),
        user=user,
        method=request.method,
        view=type(view).__name__ if view is not None else "",
    )


def clean_text(value: str) -> str:
    """Client-supplied text safe to store: PostgreSQL refuses NUL characters in text and JSON."""
    return value.replace("\x00", "")


class HasCapability(permissions.BasePermission):
    """Allows the request when the user holds the capability the view names for this action.

    Views set `required_caps = {action_or_method: Cap}`; "*" is the fallback. A missing entry means
    "any authenticated user" (the object scope is still enforced by the scoped querysets)."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        caps = getattr(view, "required_caps", {})
        action = getattr(view, "action", None)
        cap: Cap | None = caps.get(action) or caps.get(request.method) or caps.get("*")
        if cap is None:
            return True
        return access.can(request.user, cap)


class NoWritesForReadOnlyRoles(permissions.BasePermission):
    """For endpoints any reader may call whose writes the services refuse per record (key-account meetings,
    trials, reviews, progress): a read-only role (the auditor) is refused a write at once — a 403, audited —
    instead of first being told which fields are missing, as if it could make the change."""

    def has_permission(self, request, view) -> bool:
        from .roles import READ_ONLY_ROLES

        return request.method in permissions.SAFE_METHODS or not (access.roles_of(request.user) & READ_ONLY_ROLES)


_ETAG = re.compile(r'^\s*(?:W/)?"?([0-9]{1,9})"?\s*$')  # ASCII digits: `\d` took "１" for 1


def expected_version(request, body_version: int | None) -> int:
    """The version the client last saw: the body's `version` field, or an If-Match header."""
    if body_version is not None:
        return body_version
    header = request.headers.get("If-Match", "")
    match = _ETAG.match(header) if header else None
    if match:
        return int(match.group(1))
    raise exceptions.ValidationError(
        {
            "version": [
                _(
                    "Send the version you loaded (the version field or an If-Match header), so that "
                    "changes made by others in the meantime are not overwritten."
                )
            ]
        }
    )


def optional_version(request, data: dict) -> int | None:
    """The version a change of a settings record was based on (the body's `version`, popped from `data`, or
    If-Match), when the client sends one: such records take a change without it, and a stale one is a 409."""
    body = data.pop("version", None)
    if body is not None or request.headers.get("If-Match"):
        return expected_version(request, body)
    return None


def settings_version(**kwargs) -> serializers.IntegerField:
    """The `version` field of a settings record: read back with every answer, optional on a change."""
    return serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_INT32,
        help_text="On a change: the version you loaded (or If-Match); a stale one answers 409.", **kwargs,
    )  # fmt: skip


def versioned(response: Response, obj) -> Response:
    """Add the record's version as an ETag, for clients that use If-Match."""
    response["ETag"] = f'"{obj.version}"'
    return response


class FileNegotiation(DefaultContentNegotiation):
    """For endpoints that answer with a file (PDF, XML, CSV, XLSX, an attachment): a client asking for the
    file's type (`Accept: application/pdf`) gets the file, and an error as JSON, instead of 406 Not
    Acceptable — the file is sent as it is, no renderer makes it."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable:
            return renderers[0], renderers[0].media_type


def shipped_label_field() -> serializers.CharField:
    """`label` of a row whose name the product may ship (core.builtin): the name in the request's language."""
    return serializers.CharField(
        read_only=True, help_text="The name in the request's language (Accept-Language): a name the product ships "
        "is translated until it is renamed; any other name as stored in `name`.",
    )  # fmt: skip
