"""Service-desk REST endpoints: tickets (intake, lifecycle, priority, responses, history and SLA clocks),
ticket categories, SLA policies and business calendars.

Reads go through the access module's scoped querysets; every write goes through services (services.py,
policies.py, calendars.py), which check the capability, validate, write in one transaction and audit."""

from __future__ import annotations

import datetime as dt
import re

import django_filters
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db.models import F, OuterRef, Prefetch, Subquery
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pharmacrm.core import access, audit, personal, viewsets
from pharmacrm.core.addresses import validate_address
from pharmacrm.core.api_utils import (
    MAX_INT32,
    Conflict,
    DateField,
    DateTimeFilter,
    HasCapability,
    IntegerFilter,
    ModelSerializer,
    SafeDateTimeField,
    Serializer,
    StableOrdering,
    StrictBooleanFilter,
    TypedIntegerField,
    clean_text,
    expected_version,
    optional_version,
    settings_version,
    shipped_label_field,
    versioned,
)
from pharmacrm.core.models import AuditEntry, Team, User
from pharmacrm.core.roles import Cap
from pharmacrm.customers import normalise
from pharmacrm.customers.api import VisibleInstitutionField, VisiblePersonField
from pharmacrm.customers.choices import PreferredLanguage, Tier

from . import calendars, escalation, linking, policies, services
from .choices import (
    Channel,
    ClockKind,
    Complexity,
    EscalationNotify,
    Impact,
    LowScore,
    Priority,
    RootCause,
    Status,
)
from .mail import spoken
from .models import (
    BusinessCalendar,
    CalendarOverride,
    EscalationRule,
    Product,
    SlaClock,
    SlaPolicy,
    Ticket,
    TicketCategory,
    TicketEvent,
)

MAX_ID = 2**63 - 1
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # older "received" times are typing errors

CONFLICT_409 = OpenApiResponse(
    description="The lifecycle refuses this step, or someone saved the ticket since `version` (then with "
    "`current_version`)."
)


# --- personal data of unidentified callers ---------------------------------------------------------


def mask_name(value: str) -> str:
    """王小明 → 王** (the length is not shown either)."""
    return value[:1] + "**" if value else ""


def caller_view(ticket: Ticket, clear: bool) -> dict:
    digits = normalise.phone(ticket.caller_phone) if ticket.caller_phone else ""
    if clear:
        phone = normalise.format_phone(digits) if digits else ticket.caller_phone
        return {"caller_name": ticket.caller_name, "caller_phone": phone}
    phone = normalise.mask_phone(digits) if digits else (normalise.MASK if ticket.caller_phone else "")
    return {"caller_name": mask_name(ticket.caller_name), "caller_phone": phone}


# a ticket's own text (what the customer wrote, what the desk typed): the phone numbers, e-mail addresses and ID
# card numbers in it are masked (normalise.mask_contacts) as the caller's details are, and shown with them
TEXT_FIELDS = personal.FREE_TEXT_OF["servicedesk.ticket"]


def texts_with_contacts(ticket: Ticket, messages=()) -> list[str]:
    """The text fields of a ticket (and "messages": its conversation, when given) holding a contact detail: what a
    clear read of them reads, named in its audit entry."""
    held = [f for f in TEXT_FIELDS if personal.holds_contacts(getattr(ticket, f, ""))]
    if any(personal.holds_contacts(m.body) or personal.holds_contacts(m.subject) for m in messages):
        held.append("messages")
    return held


def ticket_texts(data: dict, clear: bool) -> dict:
    """A ticket's representation with its subject and description as this reader may see them."""
    for name in TEXT_FIELDS:
        if name in data:
            data[name] = personal.free_text(data[name], not clear)
    return data


def callers_in_clear(user, tickets, *, reveal_reason: str = "", purpose: str = "api", messages=None) -> bool:
    """Whether this user sees the callers' names and phones of these tickets, and the contact details typed into
    their subjects and descriptions (and `messages`: the conversation of a single ticket), in clear; a clear read of
    any of them is audited (one entry per call, like customers' contact data), naming the fields read."""
    mode = access.personal_data_mode(user)
    clear = mode == "plain" or (mode == "reveal" and bool(reveal_reason.strip()))
    if not clear:
        return clear
    tickets = list(tickets)
    read, fields = [], []
    for t in tickets:
        held = texts_with_contacts(t, messages or ())
        if t.caller_name or t.caller_phone or held:
            read.append(t.pk)
        if t.caller_name or t.caller_phone:
            held = ["caller_name", "caller_phone", *held]
        fields += [f for f in held if f not in fields]
    if read:
        order = ["caller_name", "caller_phone", *TEXT_FIELDS, "messages"]
        audit.record(
            AuditEntry.Action.READ_PERSONAL,
            ("servicedesk.ticket", str(read[0]) if len(read) == 1 else "", f"{len(read)}"),
            user=user, tickets=read[:1000], count=len(read), fields=sorted(fields, key=order.index),
            reason=audit.cut(reveal_reason.strip(), 500), purpose=purpose,
        )  # fmt: skip
    return clear


# --- tickets ---------------------------------------------------------------------------------------

CODE = re.compile(r"[-a-zA-Z0-9_]{1,40}")


class CodeField(serializers.SlugRelatedField):
    """A category or calendar by its code; anything that cannot be a code is unknown without asking the
    database (PostgreSQL refuses NUL characters even in a look-up)."""

    def to_internal_value(self, data):
        if not isinstance(data, str) or not CODE.fullmatch(data):
            self.fail("does_not_exist", slug_name=self.slug_field, value=str(data)[:40].replace("\x00", ""))
        return super().to_internal_value(data)



def _due(ticket: Ticket, kind: str):
    in_hand = getattr(ticket, "clocks_in_hand", None)  # just written by services.rebuild_clocks
    for clock in ticket.clocks.all() if in_hand is None else in_hand:  # else prefetched
        if clock.kind == kind:
            return clock.due_at
    return None


class AddressField(serializers.EmailField):
    """An e-mail address, 张三@公司.cn (RFC 6531) included, which DRF's EmailField refuses."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators = [v for v in self.validators if not isinstance(v, EmailValidator)] + [validate_address]


class TicketSerializer(ModelSerializer):
    """A ticket as intake sends it and as every answer shows it."""

    number = serializers.CharField(read_only=True, help_text="TK-YYYY-NNNNNN, numbered per year of receipt.")
    received_at = SafeDateTimeField(
        required=False, allow_null=True,
        help_text="When the request came in (default now, also when null); may lie in the past, not the future.",
    )
    channel = serializers.ChoiceField(choices=Channel.choices)
    category = CodeField(
        slug_field="code", queryset=TicketCategory.objects.filter(active=True),
        help_text="Category code, e.g. drug_info or medication_error (see /api/v1/ticket-categories/).",
    )  # fmt: skip
    priority = serializers.ChoiceField(
        choices=Priority.choices, required=False, help_text="Default: the category's. Otherwise give priority_reason."
    )
    complexity = serializers.ChoiceField(choices=Complexity.choices, required=False)
    priority_reason = serializers.CharField(
        max_length=500, required=False, allow_blank=True, write_only=True,
        help_text="Why the priority or complexity differs from the category's (not needed for urgent).",
    )  # fmt: skip
    status = serializers.ChoiceField(choices=Status.choices, read_only=True, help_text="Change it with …/transition/.")
    subject = serializers.CharField(
        max_length=200,
        help_text="Phone numbers, e-mail addresses and ID numbers in it are masked (139****5678) for roles that do not "
                  "see personal data, as in description, resolution_summary and impact_note; in clear with "
                  "?reveal_reason= on a ticket.",
    )  # fmt: skip
    description = serializers.CharField(max_length=20000, required=False, allow_blank=True)
    institution = VisibleInstitutionField(required=False, allow_null=True)
    person = VisiblePersonField(required=False, allow_null=True)
    caller_name = serializers.CharField(
        required=False, allow_blank=True,
        help_text="An unidentified caller's name, at most 50 characters as stored; masked (王**) for roles that do "
                  "not see personal data.",
    )  # fmt: skip
    caller_phone = serializers.CharField(
        max_length=32, required=False, allow_blank=True,
        help_text="An unidentified caller's phone; masked (139****5678) for roles that do not see personal data.",
    )  # fmt: skip
    caller_masked = serializers.SerializerMethodField()
    batch_number = serializers.CharField(max_length=40, required=False, allow_blank=True)
    assignee = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True), required=False, allow_null=True
    )
    team = serializers.PrimaryKeyRelatedField(queryset=Team.objects.all(), required=False, allow_null=True)
    product = serializers.PrimaryKeyRelatedField(
        queryset=Product.objects.filter(active=True), required=False, allow_null=True,
        help_text="A product of the catalogue (/api/v1/products/).",
    )  # fmt: skip
    reply_email = AddressField(
        max_length=254, required=False, allow_blank=True, write_only=True,
        help_text="Where customer-visible replies are e-mailed (personal data: never shown back).",
    )  # fmt: skip
    safety_relevant = serializers.BooleanField(
        required=False, help_text="Hand to pharmacovigilance (also set by a safety-relevant category)."
    )
    language = serializers.ChoiceField(
        choices=PreferredLanguage.choices, required=False,
        help_text="The requester's language: the acknowledgement, status link and survey mails are written in it, and "
                  "the survey and status pages open in it. Default: the `person`'s preferred language when their "
                  "record names one, else the request's Accept-Language (the calling system's, e.g. a hotline's: "
                  "one the product does not speak counts as none), else zh-hans. Change it with PATCH …/details/.",
    )  # fmt: skip
    boosted = serializers.BooleanField(read_only=True, help_text="Priority raised one step for a VIP or key account.")
    escalation_level = serializers.IntegerField(read_only=True)
    escalated_at = serializers.DateTimeField(read_only=True, allow_null=True)
    merged_into = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    resolution_summary = serializers.CharField(read_only=True)
    root_cause = serializers.ChoiceField(
        choices=RootCause.choices, read_only=True, allow_blank=True, help_text="Set when resolving (empty before)."
    )
    customer_impact = serializers.ChoiceField(
        choices=Impact.choices, read_only=True, allow_blank=True,
        help_text="A complaint's impact on the customer, assessed when it is resolved (empty otherwise).",
    )  # fmt: skip
    company_impact = serializers.ChoiceField(
        choices=Impact.choices, read_only=True, allow_blank=True,
        help_text="A complaint's impact on the company, assessed when it is resolved (empty otherwise).",
    )  # fmt: skip
    impact_note = serializers.CharField(read_only=True)
    version = serializers.IntegerField(read_only=True, help_text="Send it back with every change (409 if stale).")
    first_response_due_at = serializers.SerializerMethodField()
    resolution_due_at = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    class Meta:
        model = Ticket
        fields = [
            "id", "number", "received_at", "channel", "category", "priority", "complexity", "priority_reason",
            "status", "subject", "description", "institution", "person", "caller_name", "caller_phone",
            "caller_masked", "batch_number", "product", "reply_email", "safety_relevant", "language", "boosted",
            "escalation_level", "escalated_at", "merged_into", "assignee", "team", "resolution_summary",
            "root_cause", "customer_impact", "company_impact", "impact_note", "version",
            "first_response_due_at", "resolution_due_at", "created_at", "updated_at",
        ]  # fmt: skip

    def _clear(self) -> bool:
        return bool(self.context.get("callers_clear"))

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data.update(caller_view(instance, self._clear()))
        return ticket_texts(data, self._clear())

    def get_caller_masked(self, obj: Ticket) -> bool:
        return not self._clear()

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_first_response_due_at(self, obj: Ticket) -> str | None:
        value = _due(obj, ClockKind.FIRST_RESPONSE)
        return serializers.DateTimeField().to_representation(value) if value else None

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_resolution_due_at(self, obj: Ticket) -> str | None:
        value = _due(obj, ClockKind.RESOLUTION)
        return serializers.DateTimeField().to_representation(value) if value else None

    def validate_received_at(self, value):
        if value is None:  # not given: now (services.create_ticket)
            return None
        if value < EARLIEST:
            raise serializers.ValidationError(_("This is too long ago for a ticket: check the date."))
        return value


class TransitionSerializer(Serializer):
    status = serializers.ChoiceField(choices=Status.choices, help_text="The status to move the ticket to.")
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_INT32, help_text="The version you loaded (or If-Match)."
    )
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    resolution_summary = serializers.CharField(
        max_length=5000, required=False, allow_blank=True, help_text="Required to resolve."
    )
    root_cause = serializers.ChoiceField(
        choices=RootCause.choices, required=False, help_text="Required to resolve: why the customer got in touch."
    )
    customer_impact = serializers.ChoiceField(
        choices=Impact.choices, required=False,
        help_text="Required to resolve a complaint (a category marked `complaint`): its impact on the customer.",
    )  # fmt: skip
    company_impact = serializers.ChoiceField(
        choices=Impact.choices, required=False,
        help_text="Required to resolve a complaint: its impact on the company (reputation, regulatory, financial).",
    )  # fmt: skip
    impact_note = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    informed_channel = serializers.ChoiceField(
        choices=Channel.choices, required=False, help_text="Required for `informed`: how the customer was told."
    )


class PrioritySerializer(Serializer):
    priority = serializers.ChoiceField(choices=Priority.choices)
    complexity = serializers.ChoiceField(choices=Complexity.choices, required=False)
    reason = serializers.CharField(max_length=500, help_text="Why; recorded in the history and the audit trail.")
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_INT32, help_text="The version you loaded (or If-Match)."
    )


class EscalateSerializer(Serializer):
    reason = serializers.CharField(max_length=500, help_text="Why the case needs a superior.")
    hand_over = serializers.BooleanField(
        required=False, default=False, help_text="Make the team lead the assignee (not possible when only managers "
        "are above you: 400).",
    )  # fmt: skip


class AssignSerializer(Serializer):
    assignee = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True), required=False, allow_null=True,
        help_text="A user who handles tickets.",
    )  # fmt: skip
    team = serializers.PrimaryKeyRelatedField(queryset=Team.objects.all(), required=False, allow_null=True)
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_INT32, help_text="The version you loaded (or If-Match)."
    )


class RespondSerializer(Serializer):
    channel = serializers.ChoiceField(choices=Channel.choices, required=False, allow_blank=True)
    summary = serializers.CharField(max_length=500, required=False, allow_blank=True)


class TicketEventSerializer(ModelSerializer):
    actor_name = serializers.CharField(source="actor", read_only=True, allow_null=True)
    # empty on every event that is no status change (created, edited, a reply …): the schema says so, or a
    # client generated from it refuses every ticket's history
    from_status = serializers.ChoiceField(choices=Status.choices, allow_blank=True, read_only=True)
    to_status = serializers.ChoiceField(choices=Status.choices, allow_blank=True, read_only=True)

    class Meta:
        model = TicketEvent
        fields = ["id", "at", "kind", "actor", "actor_name", "from_status", "to_status", "data"]
        read_only_fields = fields

    def to_representation(self, instance):
        """As recorded, with the contact details typed into the texts it names (an edited subject or description,
        a response's summary, a note) masked for a reader who sees personal data masked, as the ticket page shows."""
        data = super().to_representation(instance)
        if "_free_text_masked" not in self.context:
            request = self.context.get("request")
            self.context["_free_text_masked"] = request is None or personal.masks_free_text(request.user)
        if self.context["_free_text_masked"] and isinstance(data.get("data"), dict):
            shown = dict(data["data"])
            if isinstance(shown.get("fields"), dict):
                shown["fields"] = personal.audit_changes("servicedesk.ticket", shown["fields"], True)
            for key in ("summary", "note", "reason"):
                if key in shown:
                    shown[key] = personal.free_text(shown[key], True)
            data["data"] = shown
        return data


class SlaClockSerializer(ModelSerializer):
    calendar = serializers.SlugRelatedField(slug_field="code", read_only=True)
    policy_name = serializers.CharField(source="policy.name", read_only=True, allow_null=True)
    due_provisional = serializers.SerializerMethodField(
        help_text="The years up to a running deadline whose official holidays are not entered yet (next year's, "
        "before the State Council's schedule is entered): the deadline counted their weekdays as working days and "
        "may move once they are (empty otherwise)."
    )

    class Meta:
        model = SlaClock
        fields = [
            "kind", "policy", "policy_name", "calendar", "target", "unit", "started_at", "warn_at", "due_at",
            "due_provisional", "paused", "paused_seconds", "warned_at", "breached_at", "breach_holder", "fulfilled_at",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_due_provisional(self, clock: SlaClock) -> list[int]:
        if clock.fulfilled_at is not None or clock.due_at is None or clock.calendar_id is None:
            return []
        # the calendar came with the clock (select_related): its arithmetic is cached per process
        engine = calendars.engine(clock.calendar)
        return list(calendars.provisional_years(engine, timezone.now(), clock.due_at))


class TicketFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Status.choices)
    priority = django_filters.ChoiceFilter(choices=Priority.choices)
    complexity = django_filters.ChoiceFilter(choices=Complexity.choices)
    category = django_filters.CharFilter(
        method="filter_category", max_length=40, label="Category code; its sub-categories' tickets are included."
    )
    channel = django_filters.ChoiceFilter(choices=Channel.choices)
    assignee = IntegerFilter(field_name="assignee_id", min_value=1, max_value=MAX_ID)
    institution = IntegerFilter(field_name="institution_id", min_value=1, max_value=MAX_ID)
    person = IntegerFilter(field_name="person_id", min_value=1, max_value=MAX_ID)
    received_after = DateTimeFilter(field_name="received_at", lookup_expr="gte", label="Received at or after.")
    received_before = DateTimeFilter(field_name="received_at", lookup_expr="lt", label="Received before.")

    class Meta:
        model = Ticket
        fields: list[str] = []

    def filter_category(self, queryset, name, value):
        """A category and its sub-categories, as the queue's filter, the rules and the SLA policies read it."""
        from .views import category_and_below

        pk = TicketCategory.objects.filter(code=value).values_list("pk", flat=True).first()
        return queryset.none() if pk is None else queryset.filter(category_id__in=category_and_below(pk))


class TicketOrdering(StableOrdering):
    """received_at, number, id, and next_deadline (the earliest running deadline not yet met; tickets without
    one, or waiting on the customer, last, whichever the direction)."""

    def filter_queryset(self, request, queryset, view):
        ordering = self.get_ordering(request, queryset, view)
        if not ordering:
            return queryset
        terms = []
        for term in ordering:
            name = term.lstrip("-")
            if name == "next_deadline":
                queryset = queryset.annotate(next_deadline=_next_deadline())
                expr = F("next_deadline")
                terms.append(expr.desc(nulls_last=True) if term.startswith("-") else expr.asc(nulls_last=True))
            else:
                terms.append(term)
        if not any(t in ("id", "-id") for t in ordering):
            terms.append("-id")  # stable pages
        return queryset.order_by(*terms)


def _next_deadline():
    # a clock paused while the ticket waits on the customer is no deadline (as in the queues): such a ticket
    # sorts with those that have none
    open_clocks = SlaClock.objects.filter(
        ticket=OuterRef("pk"), fulfilled_at__isnull=True, due_at__isnull=False, paused=False
    )
    return Subquery(open_clocks.order_by("due_at").values("due_at")[:1])


def _reveal_parameter():
    return OpenApiParameter(
        "reveal_reason", str,
        description="Why you need to see the caller's name and phone, and the phone numbers, e-mail addresses and ID "
                    "numbers typed into the ticket's text (roles that may reveal personal data).",
    )  # fmt: skip


def reveal_reason_of(request) -> str:
    """The `reveal_reason` of a read, checked as a reveal on the web and through the customer API is (400)."""
    reason = clean_text(request.query_params.get("reveal_reason", "")).strip()
    if reason:
        from pharmacrm.customers.views import reveal_reason_error

        error = reveal_reason_error(reason)
        if error:
            raise serializers.ValidationError({"reveal_reason": [error]})
    return reason


@extend_schema_view(
    list=extend_schema(tags=["tickets"]),
    retrieve=extend_schema(tags=["tickets"], parameters=[_reveal_parameter()]),
    create=extend_schema(
        tags=["tickets"],
        responses={201: TicketSerializer, 400: OpenApiResponse(description="Per-field messages.")},
    ),
)
class TicketViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Service tickets (工单) the user may see; intake and every change through the service layer."""

    queryset = Ticket.objects.none()  # scoped per user: see get_queryset()
    serializer_class = TicketSerializer
    permission_classes = [HasCapability]
    required_caps = {
        "create": Cap.HANDLE_TICKETS,
        "transition": Cap.HANDLE_TICKETS,
        "priority": Cap.HANDLE_TICKETS,
        "assign": Cap.HANDLE_TICKETS,
        "respond": Cap.HANDLE_TICKETS,
        "escalate": Cap.HANDLE_TICKETS,
        "*": Cap.VIEW_TICKETS,
    }
    filterset_class = TicketFilter
    filter_backends = [DjangoFilterBackend, TicketOrdering]
    ordering_fields = ["received_at", "number", "id", "next_deadline"]
    ordering = ["-received_at", "-id"]
    lookup_value_regex = r"[0-9]{1,18}"

    @staticmethod
    def base():
        return Ticket.objects.select_related("category").prefetch_related(
            Prefetch("clocks", queryset=SlaClock.objects.only("id", "ticket_id", "kind", "due_at"))
        )

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return access.tickets_for(self.request.user, self.base())

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["callers_clear"] = getattr(self, "_callers_clear", False)
        return context

    def _answer(self, ticket: Ticket, code: int = status.HTTP_200_OK, *, in_hand: bool = False) -> Response:
        """The ticket read back with its fresh clocks (callers shown as this user may see them); a ticket just
        created is answered from the objects the service wrote, which are what a read would return."""
        if not in_hand:
            ticket = self.base().get(pk=ticket.pk)
        self._callers_clear = callers_in_clear(self.request.user, [ticket], purpose="api")
        return versioned(Response(self.get_serializer(ticket).data, status=code), ticket)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        self._callers_clear = callers_in_clear(request.user, page, purpose="api-list")
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request, *args, **kwargs):
        ticket = self.get_object()
        reason = reveal_reason_of(request)  # the same rule as revealing a person's data on the web and the customer API
        self._callers_clear = callers_in_clear(request.user, [ticket], reveal_reason=reason, purpose="api")
        return versioned(Response(self.get_serializer(ticket).data), ticket)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        for key in ("subject", "description", "caller_name", "caller_phone", "batch_number", "priority_reason",
                    "reply_email"):
            if key in data:
                data[key] = clean_text(data[key])
        if "language" not in data and not getattr(data.get("person"), "preferred_language", ""):
            # the Accept-Language is the calling system's (a hotline's, which the API answers in), not the
            # requester's: it decides only when the person's record names no language (the service takes that
            # one); one the product does not speak leaves it to the site's default
            tags = (spoken(t.split(";")[0]) for t in request.headers.get("Accept-Language", "").split(","))
            data["language"] = next((t for t in tags if t), "")
        ticket = services.create_ticket(request.user, data)
        return self._answer(ticket, status.HTTP_201_CREATED, in_hand=True)

    @extend_schema(
        request=TransitionSerializer,
        responses={200: TicketSerializer, 400: OpenApiResponse(description="Per-field messages."), 409: CONFLICT_409},
        tags=["tickets"],
        description="Move the ticket along its lifecycle: new → assigned → in_progress → waiting → resolved → "
        "informed → closed; reopen (→ in_progress) from resolved, informed or closed. Resolving needs a "
        "resolution_summary.",
    )
    @action(detail=True, methods=["post"])
    def transition(self, request, pk=None):
        def act(user, ticket, d, version):
            services.transition(
                user, ticket, d["status"], version=version, note=clean_text(d.get("note", "")).strip(),
                resolution_summary=clean_text(d.get("resolution_summary", "")), root_cause=d.get("root_cause", ""),
                informed_channel=d.get("informed_channel", ""), **services.impact_of(d),
            )  # fmt: skip

        return self._act(request, TransitionSerializer, act)

    def _act(self, request, serializer_class, act) -> Response:
        """A versioned action on a visible ticket: validate the body, take the version from it or from
        If-Match, run the service; a step the lifecycle refuses is a 409 (a stale version already is)."""
        ticket = self.get_object()
        form = serializer_class(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        try:
            act(request.user, ticket, d, expected_version(request, d.get("version")))
        except services.TransitionRefused as e:
            raise Conflict(" ".join(str(m) for m in e.messages)) from None
        return self._answer(ticket)

    @extend_schema(
        request=PrioritySerializer,
        responses={200: TicketSerializer, 400: OpenApiResponse(description="Per-field messages."), 409: CONFLICT_409},
        tags=["tickets"],
        description="Change the priority (and complexity) with a reason: the SLA policy is chosen again and the "
        "deadlines are recomputed from the ticket's history.",
    )
    @action(detail=True, methods=["post"])
    def priority(self, request, pk=None):
        def act(user, ticket, d, version):
            services.change_priority(
                user, ticket, d["priority"], d.get("complexity"), reason=clean_text(d["reason"]), version=version
            )

        return self._act(request, PrioritySerializer, act)

    @extend_schema(
        request=AssignSerializer,
        responses={200: TicketSerializer, 400: OpenApiResponse(description="Per-field messages."), 409: CONFLICT_409},
        tags=["tickets"],
        description="Give the ticket to an agent and/or a team queue; a new ticket becomes assigned. A resolved "
        "or closed ticket must be reopened first (409).",
    )
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        def act(user, ticket, d, version):
            services.assign(user, ticket, assignee=d.get("assignee"), team=d.get("team"), version=version)

        return self._act(request, AssignSerializer, act)

    @extend_schema(
        request=EscalateSerializer,
        responses={200: TicketSerializer, 400: OpenApiResponse(description="Per-field messages."), 409: CONFLICT_409},
        tags=["tickets"],
        description="Escalate a major or complex case by hand to a superior (the team lead, else the managers), "
        "who are notified; the ticket's escalation level goes up by one. Only open tickets below the top level of "
        "the escalation ladder (409 otherwise).",
    )
    @action(detail=True, methods=["post"])
    def escalate(self, request, pk=None):
        ticket = self.get_object()
        form = EscalateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        try:  # no version: escalating changes nobody's edits, so it never conflicts
            escalation.escalate(request.user, ticket, reason=clean_text(d["reason"]), hand_over=d["hand_over"])
        except services.TransitionRefused as e:
            raise Conflict(" ".join(str(m) for m in e.messages)) from None
        return self._answer(ticket)

    @extend_schema(
        request=RespondSerializer,
        responses={201: TicketEventSerializer},
        tags=["tickets"],
        description="Record a response to the customer (a reply, a call back); the first one meets the "
        "first-response deadline. Answers with the history event.",
    )
    @action(detail=True, methods=["post"])
    def respond(self, request, pk=None):
        ticket = self.get_object()
        form = RespondSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        event = services.record_response(
            request.user, ticket, channel=d.get("channel", ""), summary=clean_text(d.get("summary", ""))
        )
        return Response(TicketEventSerializer(event, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=TicketEventSerializer(many=True), tags=["tickets"], filters=False)
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def events(self, request, pk=None):
        """The ticket's history, oldest first."""
        ticket = self.get_object()
        events = TicketEvent.objects.filter(ticket=ticket).select_related("actor").order_by("at", "id")
        events = linking.hide_unseen_tickets(request.user, events)
        return Response(TicketEventSerializer(events, many=True, context={"request": request}).data)

    @extend_schema(responses=SlaClockSerializer(many=True), tags=["tickets"], filters=False)
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def clocks(self, request, pk=None):
        """The ticket's SLA clocks: first response and resolution."""
        ticket = self.get_object()
        clocks = SlaClock.objects.filter(ticket=ticket).select_related("calendar", "policy").order_by("kind")
        return Response(SlaClockSerializer(clocks, many=True).data)


# --- categories ------------------------------------------------------------------------------------


class TicketCategorySerializer(ModelSerializer):
    code = serializers.SlugField(max_length=40, help_text="Fixed once created: tickets and rules refer to it.")
    name = serializers.CharField(max_length=100)
    parent = CodeField(
        slug_field="code", queryset=TicketCategory.objects.all(), required=False, allow_null=True,
        help_text="The parent category's code; empty for a top-level category.",
    )  # fmt: skip
    default_priority = serializers.ChoiceField(choices=Priority.choices)
    default_complexity = serializers.ChoiceField(choices=Complexity.choices)
    safety_relevant = serializers.BooleanField(required=False)
    complaint = serializers.BooleanField(
        required=False, help_text="Tickets of this kind are complaints: resolving one needs an impact assessment."
    )
    low_score_action = serializers.ChoiceField(
        choices=LowScore.choices, required=False, help_text="What a poor revisit of a ticket of this kind does."
    )
    active = serializers.BooleanField(required=False)
    position = TypedIntegerField(min_value=0, max_value=32767, required=False)
    version = settings_version()

    label = shipped_label_field()

    class Meta:
        model = TicketCategory
        fields = [
            "code", "name", "label", "parent", "default_priority", "default_complexity", "safety_relevant",
            "complaint", "low_score_action", "active", "position", "version",
        ]  # fmt: skip


SETTINGS_TAGS = ["service settings"]
# the service settings' viewsets: managers and administrators change them, everyone who sees tickets reads them
SETTINGS_CAPS = {**{a: Cap.MANAGE_SERVICE for a in ("create", "update", "partial_update", "destroy")},
                 "*": Cap.VIEW_TICKETS}  # fmt: skip


def _settings_schema(**own):
    """The @extend_schema_view of a service-settings viewset: its operations under the "service settings" tag,
    an operation in `own` (its extend_schema, e.g. destroy's description) in place of the plain one."""
    plain = ("list", "retrieve", "create", "update", "partial_update")
    return extend_schema_view(**({name: extend_schema(tags=SETTINGS_TAGS) for name in plain} | own))


class TicketCategoryFilter(django_filters.FilterSet):
    active = StrictBooleanFilter()

    class Meta:
        model = TicketCategory
        fields: list[str] = []


@_settings_schema(
    destroy=extend_schema(tags=SETTINGS_TAGS, responses={204: None},
                          description="Deactivate the category (never deleted: tickets refer to it)."),
)  # fmt: skip
class TicketCategoryViewSet(viewsets.ModelViewSet):
    """The ticket category tree with each category's default priority and complexity (administrators and
    managers change it; every change audited)."""

    queryset = TicketCategory.objects.select_related("parent")
    serializer_class = TicketCategorySerializer
    permission_classes = [HasCapability]
    required_caps = SETTINGS_CAPS
    filterset_class = TicketCategoryFilter
    ordering_fields = ["position", "code"]
    ordering = ["position", "code"]
    lookup_field = "code"
    lookup_value_regex = r"[-a-zA-Z0-9_]{1,40}"

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("version", None)
        serializer.instance = policies.create_category(self.request.user, data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        version = optional_version(self.request, data)
        serializer.instance = policies.update_category(self.request.user, serializer.instance, data, version=version)

    def perform_destroy(self, instance):
        try:
            policies.update_category(self.request.user, instance, {"active": False},
                                     version=optional_version(self.request, {}))  # fmt: skip
        except ValidationError as e:
            if hasattr(e, "error_dict"):
                raise
            raise Conflict(" ".join(str(m) for m in e.messages)) from None


# --- SLA policies ----------------------------------------------------------------------------------


class SlaPolicySerializer(ModelSerializer):
    name = serializers.CharField(max_length=100)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False, allow_blank=True)
    complexity = serializers.ChoiceField(choices=Complexity.choices, required=False, allow_blank=True)
    category = CodeField(
        slug_field="code", queryset=TicketCategory.objects.all(), required=False, allow_null=True,
        help_text="Category code; empty for any category.",
    )  # fmt: skip
    customer_tier = serializers.ChoiceField(choices=Tier.choices, required=False, allow_blank=True)
    calendar = CodeField(
        slug_field="code", queryset=BusinessCalendar.objects.all(), help_text="Calendar code, e.g. business or always."
    )
    first_response = TypedIntegerField(min_value=1, max_value=9000)
    first_response_unit = serializers.ChoiceField(choices=SlaPolicy.Unit.choices, required=False)
    resolution = TypedIntegerField(min_value=1, max_value=9000)
    resolution_unit = serializers.ChoiceField(choices=SlaPolicy.Unit.choices, required=False)
    position = TypedIntegerField(min_value=0, max_value=32767, required=False)
    active = serializers.BooleanField(required=False)
    version = settings_version()

    label = shipped_label_field()

    class Meta:
        model = SlaPolicy
        fields = [
            "id", "name", "label", "priority", "complexity", "category", "customer_tier", "calendar", "first_response",
            "first_response_unit", "resolution", "resolution_unit", "position", "active", "version",
        ]  # fmt: skip


class SlaPolicyFilter(django_filters.FilterSet):
    active = StrictBooleanFilter()

    class Meta:
        model = SlaPolicy
        fields: list[str] = []


@_settings_schema(
    destroy=extend_schema(
        tags=SETTINGS_TAGS,
        description="Deactivate the policy (policies are never deleted: tickets refer to them). 409 if no "
        "active policy without conditions would remain.",
        responses={204: None, 409: OpenApiResponse(description="The last catch-all policy.")},
    ),
)
class SlaPolicyViewSet(viewsets.ModelViewSet):
    """SLA policies: which first-response and resolution targets a ticket gets, on which calendar."""

    queryset = SlaPolicy.objects.select_related("category", "calendar")
    serializer_class = SlaPolicySerializer
    permission_classes = [HasCapability]
    required_caps = SETTINGS_CAPS
    filterset_class = SlaPolicyFilter
    ordering_fields = ["position", "name", "id"]
    ordering = ["position", "name"]
    lookup_value_regex = r"[0-9]{1,18}"

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("version", None)
        serializer.instance = policies.create_policy(self.request.user, data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        version = optional_version(self.request, data)
        try:
            serializer.instance = policies.update_policy(self.request.user, serializer.instance, data, version=version)
        except ValidationError as e:
            if hasattr(e, "error_dict"):
                raise
            raise Conflict(" ".join(str(m) for m in e.messages)) from None

    def perform_destroy(self, instance):
        try:
            policies.deactivate_policy(self.request.user, instance, version=optional_version(self.request, {}))
        except ValidationError as e:
            raise Conflict(" ".join(str(m) for m in e.messages)) from None


# --- the escalation ladder ----------------------------------------------------------------------------


class EscalationRuleSerializer(ModelSerializer):
    level = TypedIntegerField(min_value=1, max_value=9)
    after_minutes = TypedIntegerField(
        min_value=0, max_value=escalation.MAX_MINUTES,
        help_text="Working minutes after the missed deadline, on the clock's calendar.",
    )  # fmt: skip
    notify = serializers.ChoiceField(choices=EscalationNotify.choices)
    reassign = serializers.BooleanField(required=False)
    cooldown_minutes = TypedIntegerField(min_value=0, max_value=escalation.MAX_MINUTES, required=False)
    active = serializers.BooleanField(required=False)
    version = settings_version()

    class Meta:
        model = EscalationRule
        fields = ["id", "level", "after_minutes", "notify", "reassign", "cooldown_minutes", "active", "version"]


@_settings_schema(
    destroy=extend_schema(tags=SETTINGS_TAGS, responses={204: None},
                          description="Switch the level off (kept for the history that names it)."),
)  # fmt: skip
class EscalationRuleViewSet(viewsets.ModelViewSet):
    """The escalation ladder after a missed deadline: each level's delay, whom it tells, whether it hands the
    ticket over, and its cooldown. Administrators and managers change it; audited."""

    queryset = EscalationRule.objects.all()
    serializer_class = EscalationRuleSerializer
    permission_classes = [HasCapability]
    required_caps = SETTINGS_CAPS
    ordering = ["level"]
    lookup_value_regex = r"[0-9]{1,18}"

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("version", None)
        serializer.instance = escalation.save_rule(self.request.user, EscalationRule(), data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        version = optional_version(self.request, data)
        serializer.instance = escalation.save_rule(self.request.user, serializer.instance, data, version=version)

    def perform_destroy(self, instance):
        escalation.save_rule(self.request.user, instance, {"active": False}, version=optional_version(self.request, {}))


# --- calendars -------------------------------------------------------------------------------------


class CalendarOverrideSerializer(ModelSerializer):
    date = DateField()
    working = serializers.BooleanField(help_text="true: a working day; false: a holiday.")
    note = serializers.CharField(max_length=100, required=False, allow_blank=True)

    class Meta:
        model = CalendarOverride
        fields = ["date", "working", "note"]


class BusinessCalendarSerializer(ModelSerializer):
    code = serializers.SlugField(max_length=40, help_text="Fixed once created: policies refer to it.")
    name = serializers.CharField(max_length=100)
    time_zone = serializers.CharField(max_length=64, required=False, help_text="An IANA zone, e.g. Asia/Shanghai.")
    windows = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField(max_length=5), min_length=2, max_length=2),
        required=False, max_length=12, help_text='Working windows per day in local time: [["08:30", "12:00"], …].',
    )  # fmt: skip
    workdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6), required=False, max_length=7,
        help_text="Working weekdays, Monday = 0.",
    )  # fmt: skip
    official_holidays = serializers.BooleanField(required=False)
    always_on = serializers.BooleanField(required=False)
    version = settings_version()

    label = shipped_label_field()

    class Meta:
        model = BusinessCalendar
        fields = [
            "code", "name", "label", "time_zone", "windows", "workdays", "official_holidays", "always_on",
            "version", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["updated_at"]


class OverrideFilter(django_filters.FilterSet):
    year = IntegerFilter(field_name="date__year", min_value=1, max_value=9999)

    class Meta:
        model = CalendarOverride
        fields: list[str] = []


@_settings_schema(
    update=extend_schema(tags=SETTINGS_TAGS, description="Change the calendar; the open tickets on it get "
                         "their deadlines recomputed by the worker."),
)  # fmt: skip
class BusinessCalendarViewSet(
    mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet
):  # fmt: skip
    """Business calendars (工作日历) and their per-date overrides (holidays and working days)."""

    queryset = BusinessCalendar.objects.all()
    serializer_class = BusinessCalendarSerializer
    permission_classes = [HasCapability]
    required_caps = {
        "create": Cap.MANAGE_SERVICE, "update": Cap.MANAGE_SERVICE, "partial_update": Cap.MANAGE_SERVICE,
        "POST": Cap.MANAGE_SERVICE, "DELETE": Cap.MANAGE_SERVICE, "*": Cap.VIEW_TICKETS,
    }  # fmt: skip

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("version", None)
        serializer.instance = calendars.create_calendar(self.request.user, data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        version = optional_version(self.request, data)
        serializer.instance = calendars.update_calendar(self.request.user, serializer.instance, data, version=version)
    ordering_fields = ["name", "code"]
    ordering = ["name"]
    lookup_field = "code"
    lookup_value_regex = r"[-a-zA-Z0-9_]{1,40}"

    @extend_schema(
        methods=["get"], responses=CalendarOverrideSerializer(many=True), tags=["service settings"],
        parameters=[OpenApiParameter("year", int, description="Only this year's overrides.")],
        description="The calendar's overrides, by date.",
    )  # fmt: skip
    @extend_schema(
        methods=["post"], request=CalendarOverrideSerializer,
        responses={201: CalendarOverrideSerializer, 400: OpenApiResponse(description="Per-field messages.")},
        tags=["service settings"],
        description="Make a date a working day or a holiday on this calendar (replaces an override of that "
        "date); audited. The worker then recomputes the deadlines of the open tickets on the calendar.",
    )  # fmt: skip
    @action(detail=True, methods=["get", "post"], filter_backends=[], pagination_class=None)
    def overrides(self, request, code=None):
        calendar = self.get_object()
        if request.method == "GET":
            qs = CalendarOverride.objects.filter(calendar=calendar).order_by("date")
            year = request.query_params.get("year", "")
            if year:
                if not (year.isascii() and year.isdecimal()) or not 1 <= int(year) <= 9999:
                    raise serializers.ValidationError({"year": [_("Enter a year, e.g. 2027.")]})
                qs = qs.filter(date__year=int(year))
            return Response(CalendarOverrideSerializer(qs, many=True).data)
        form = CalendarOverrideSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        override = calendars.set_override(request.user, calendar, d["date"], d["working"], clean_text(d.get("note", "")))
        return Response(CalendarOverrideSerializer(override).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        parameters=[OpenApiParameter("date", OpenApiTypes.DATE, OpenApiParameter.PATH)],
        responses={204: None, 404: OpenApiResponse(description="No override on that date.")},
        tags=["service settings"],
        description="Remove the override of a date (the official schedule or the weekly pattern applies again); "
        "audited.",
    )
    @action(
        detail=True, methods=["delete"], url_path=r"overrides/(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})",
        url_name="override", filter_backends=[], pagination_class=None,
    )  # fmt: skip
    def remove_override(self, request, code=None, date=None):
        calendar = self.get_object()
        try:
            day = dt.date.fromisoformat(date)
        except (TypeError, ValueError):
            raise Http404(_("No override on that date.")) from None
        if not calendars.remove_override(request.user, calendar, day):
            raise Http404(_("No override on that date."))
        return Response(status=status.HTTP_204_NO_CONTENT)

