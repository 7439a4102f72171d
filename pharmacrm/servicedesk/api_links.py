"""REST endpoints: links between tickets, the merge of a duplicate, bulk actions.

- GET/POST /api/v1/tickets/{id}/links/ — the ticket's links (both directions) / link another ticket;
  DELETE /api/v1/tickets/{id}/links/{link id}/ — remove a link.
- POST /api/v1/tickets/{id}/merge/ — merge this ticket (the duplicate) into another.
- POST /api/v1/ticket-bulk/ — one action on many tickets, with the outcome per ticket."""

from __future__ import annotations

from django.db.models import Q
from django.http import Http404
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status
from rest_framework.response import Response

from pharmacrm.core import access, personal, viewsets
from pharmacrm.core.api_utils import (
    MAX_INT32,
    HasCapability,
    ModelSerializer,
    Serializer,
    clean_text,
    expected_version,
)
from pharmacrm.core.models import Team, User
from pharmacrm.core.roles import Cap

from . import bulk as bulk_actions
from . import linking
from .choices import Channel, Impact, LinkKind, Priority, RootCause, Status
from .models import Ticket, TicketLink

MAX_ID = 2**63 - 1
TICKET_PK = OpenApiParameter("ticket_pk", int, OpenApiParameter.PATH, description="The ticket's id.")


@extend_schema_field({"type": "string", "enum": list(LinkKind.values)}, component_name="TicketLinkKind")
class LinkKindField(serializers.ChoiceField):
    """A link's kind (inline in the schema: `kind` names other choice sets elsewhere)."""

    def __init__(self, **kwargs):
        super().__init__(choices=LinkKind.choices, **kwargs)


@extend_schema_field({"type": "string", "enum": list(bulk_actions.OUTCOME_LABELS)}, component_name="BulkOutcomeKind")
class OutcomeField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=list(bulk_actions.OUTCOME_LABELS), **kwargs)


def register(router) -> None:
    """Called by pharmacrm/api_urls.py with the v1 router."""
    router.register(r"tickets/(?P<ticket_pk>[0-9]{1,18})/links", TicketLinkViewSet, basename="ticket-link")
    router.register(r"tickets/(?P<ticket_pk>[0-9]{1,18})/merge", TicketMergeViewSet, basename="ticket-merge")
    router.register("ticket-bulk", TicketBulkViewSet, basename="ticket-bulk")


def _ticket(request, pk) -> Ticket:
    ticket = access.tickets_for(request.user, Ticket.objects.all()).filter(pk=pk).first()
    if ticket is None:
        raise Http404
    return ticket


class LinkedTicketSerializer(ModelSerializer):
    class Meta:
        model = Ticket
        fields = ["id", "number", "subject", "status", "merged_into", "version"]
        read_only_fields = fields

    def to_representation(self, instance):
        """The subject with the contact details typed in it masked for a reader who sees personal data masked."""
        data = super().to_representation(instance)
        if "_free_text_masked" not in self.context:
            request = self.context.get("request")
            self.context["_free_text_masked"] = request is None or personal.masks_free_text(request.user)
        data["subject"] = personal.free_text(data["subject"], self.context["_free_text_masked"])
        return data


class TicketLinkSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    kind = LinkKindField(read_only=True)
    direction = serializers.ChoiceField(
        choices=[("out", "out"), ("in", "in")], read_only=True,
        help_text="out: this ticket is the link's `from` (for `duplicate`: it repeats the other); in: the reverse.",
    )  # fmt: skip
    ticket = LinkedTicketSerializer(read_only=True, help_text="The other ticket.")
    created_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, link):
        here = self.context["ticket"]
        outgoing = link.from_ticket_id == here.pk
        return {
            "id": link.pk,
            "kind": link.kind,
            "direction": "out" if outgoing else "in",
            "ticket": LinkedTicketSerializer(link.to_ticket if outgoing else link.from_ticket, context=self.context).data,
            "created_at": serializers.DateTimeField().to_representation(link.created_at),
        }


class LinkCreateSerializer(Serializer):
    to_ticket = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The id of the other ticket.")
    kind = LinkKindField(
        required=False, default=LinkKind.RELATED,
        help_text="related, or duplicate (this ticket repeats the other; see …/merge/ to close it as well).",
    )  # fmt: skip


@extend_schema_view(
    list=extend_schema(tags=["tickets"], parameters=[TICKET_PK], responses=TicketLinkSerializer(many=True)),
    create=extend_schema(
        tags=["tickets"], parameters=[TICKET_PK], request=LinkCreateSerializer,
        responses={201: TicketLinkSerializer, 400: OpenApiResponse(description="Per-field messages.")},
        description="Link another ticket to this one. A ticket is never linked to itself, and a pair only once "
        "(in either direction); both tickets must be visible to you.",
    ),  # fmt: skip
    destroy=extend_schema(
        tags=["tickets"], parameters=[TICKET_PK],
        responses={204: None, 400: OpenApiResponse(description="The link of a merge stays.")},
    ),  # fmt: skip
)
class TicketLinkViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin,
                        viewsets.GenericViewSet):  # fmt: skip
    """The links of a ticket, in both directions."""

    queryset = TicketLink.objects.none()
    serializer_class = TicketLinkSerializer
    permission_classes = [HasCapability]
    required_caps = {"create": Cap.HANDLE_TICKETS, "destroy": Cap.HANDLE_TICKETS, "*": Cap.VIEW_TICKETS}
    pagination_class = None
    filter_backends: list = []
    lookup_value_regex = r"[0-9]{1,18}"

    def ticket(self) -> Ticket:
        if not hasattr(self, "_ticket"):
            self._ticket = _ticket(self.request, self.kwargs["ticket_pk"])
        return self._ticket

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        ticket = self.ticket()
        visible = access.tickets_for(self.request.user, Ticket.objects.all()).values("id")
        return (
            linking.links_of(ticket)
            .filter(Q(from_ticket_id__in=visible) & Q(to_ticket_id__in=visible))
            .select_related("from_ticket", "to_ticket")
            .order_by("created_at", "id")
        )

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            context["ticket"] = self.ticket()
        return context

    def create(self, request, *args, **kwargs):
        ticket = self.ticket()
        form = LinkCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        other = access.tickets_for(request.user, Ticket.objects.all()).filter(pk=form.validated_data["to_ticket"])
        other = other.first()
        if other is None:
            raise serializers.ValidationError({"to_ticket": [linking._not_visible().messages[0]]})
        link = linking.link(request.user, ticket, other, form.validated_data["kind"])
        return Response(self.get_serializer(link).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        linking.unlink(self.request.user, instance)


class MergeSerializer(Serializer):
    into = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The id of the ticket that stays.")
    reason = serializers.CharField(
        max_length=500, help_text="Why they are duplicates; in both histories and the audit."
    )
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_INT32, help_text="The duplicate's version you loaded (or If-Match)."
    )


class MergeResultSerializer(Serializer):
    duplicate = LinkedTicketSerializer()
    into = LinkedTicketSerializer()


@extend_schema_view(
    create=extend_schema(
        tags=["tickets"], parameters=[TICKET_PK], request=MergeSerializer,
        responses={200: MergeResultSerializer, 400: OpenApiResponse(description="Per-field messages: a merge "
                   "into itself, a closed ticket or a ticket that was itself merged is refused under `into`."),
                   409: OpenApiResponse(description="The duplicate changed since `version` (with current_version).")},
        description="Merge this ticket (the duplicate) into another: it is resolved and closed, points to the "
        "other (`merged_into` and a duplicate link), and both histories record the merge. Its messages and "
        "attachments stay on it.",
    ),  # fmt: skip
)
class TicketMergeViewSet(viewsets.GenericViewSet):
    """Merge a duplicate ticket into the ticket that stays."""

    queryset = Ticket.objects.none()
    serializer_class = MergeSerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.HANDLE_TICKETS}
    pagination_class = None
    filter_backends: list = []

    def create(self, request, ticket_pk=None):
        duplicate = _ticket(request, ticket_pk)
        form = MergeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        into = access.tickets_for(request.user, Ticket.objects.all()).filter(pk=d["into"]).first()
        if into is None:
            raise serializers.ValidationError({"into": [linking._not_visible().messages[0]]})
        version = expected_version(request, d.get("version"))
        linking.merge(request.user, duplicate, into, reason=clean_text(d["reason"]), version=version)
        duplicate.refresh_from_db()
        into.refresh_from_db()
        context = {"request": request}
        data = {"duplicate": LinkedTicketSerializer(duplicate, context=context).data,
                "into": LinkedTicketSerializer(into, context=context).data}  # fmt: skip
        return Response(data)


class BulkSerializer(Serializer):
    tickets = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID), allow_empty=False,
        max_length=bulk_actions.MAX_TICKETS, help_text=f"Ticket ids (at most {bulk_actions.MAX_TICKETS}).",
    )  # fmt: skip
    versions = serializers.DictField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_INT32), required=False,
        help_text="{ticket id: version you loaded}: a ticket changed since then is a conflict, not overwritten.",
    )  # fmt: skip
    action = serializers.ChoiceField(choices=list(bulk_actions.ACTIONS))
    assignee = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True), required=False, allow_null=True, help_text="assign"
    )
    team = serializers.PrimaryKeyRelatedField(
        queryset=Team.objects.all(), required=False, allow_null=True, help_text="assign"
    )
    status = serializers.ChoiceField(choices=Status.choices, required=False, help_text="status")
    priority = serializers.ChoiceField(choices=Priority.choices, required=False, help_text="priority")
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, help_text="priority: required")
    note = serializers.CharField(max_length=500, required=False, allow_blank=True)
    resolution_summary = serializers.CharField(
        max_length=2000, required=False, allow_blank=True,
        help_text="status resolved; close: to resolve tickets still open first (with root_cause)",
    )  # fmt: skip
    root_cause = serializers.ChoiceField(choices=RootCause.choices, required=False)
    customer_impact = serializers.ChoiceField(
        choices=Impact.choices, required=False, help_text="status resolved, close: required for complaints"
    )
    company_impact = serializers.ChoiceField(
        choices=Impact.choices, required=False, help_text="status resolved, close: required for complaints"
    )
    informed_channel = serializers.ChoiceField(choices=Channel.choices, required=False, help_text="status informed")


class BulkOutcomeSerializer(Serializer):
    ticket = serializers.IntegerField()
    number = serializers.CharField(help_text="Empty when the ticket was not found (or is not visible to you).")
    outcome = OutcomeField()
    message = serializers.CharField()


class BulkResultSerializer(Serializer):
    results = BulkOutcomeSerializer(many=True)
    done = serializers.IntegerField()
    refused = serializers.IntegerField()
    conflict = serializers.IntegerField()
    not_found = serializers.IntegerField()


@extend_schema_view(
    create=extend_schema(
        tags=["tickets"], request=BulkSerializer,
        responses={200: BulkResultSerializer, 400: OpenApiResponse(description="Nothing changed: per-field messages.")},
        description="Assign, change the status, change the priority (with a reason) or close up to 200 tickets. "
        "Each ticket is changed in its own transaction through the same rules as one at a time; the answer "
        "lists the outcome per ticket: done, refused (with the reason), conflict (changed since the version "
        "you sent) or not_found (no such ticket, or not visible to you — never touched).",
    ),  # fmt: skip
)
class TicketBulkViewSet(viewsets.GenericViewSet):
    """One action on many tickets."""

    queryset = Ticket.objects.none()
    serializer_class = BulkSerializer
    permission_classes = [HasCapability]
    required_caps = {"*": Cap.HANDLE_TICKETS}
    pagination_class = None
    filter_backends: list = []

    def create(self, request):
        form = BulkSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = dict(form.validated_data)
        for key in ("reason", "note", "resolution_summary"):
            if key in d:
                d[key] = clean_text(d[key])
        outcomes = bulk_actions.bulk(
            request.user, d.pop("tickets"), d.pop("action"), d, versions=d.pop("versions", None) or {}
        )
        body = {"results": [o.as_dict() for o in outcomes]}
        for key in bulk_actions.OUTCOME_LABELS:
            body[key] = sum(1 for o in outcomes if o.outcome == key)
        return Response(body)
