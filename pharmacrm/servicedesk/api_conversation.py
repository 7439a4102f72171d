"""REST endpoints: the conversation on a ticket, its attachments, and editing its details.

- GET/POST /api/v1/tickets/{ticket_pk}/messages/ — the messages (replies, internal notes, inbound) / add a
  reply or a note (JSON, or multipart with `files`); replies are e-mailed when the ticket has an address.
- GET/POST /api/v1/tickets/{ticket_pk}/attachments/ — the files / upload one (multipart `file`);
  GET …/attachments/{id}/ — its description; GET …/attachments/{id}/download/ — the file itself.
- GET/PATCH /api/v1/tickets/{ticket_pk}/details/ — subject, description, category, product, batch number and
  the safety flag; PATCH sends only what changes, with `version` (or If-Match); 409 when stale.
Everything is scoped to tickets the caller may see (404 otherwise); writes need tickets.handle."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from pharmacrm.core import access, audit, personal, viewsets
from pharmacrm.core.api_utils import (
    FileNegotiation,
    HasCapability,
    ModelSerializer,
    Serializer,
    clean_text,
    expected_version,
    versioned,
)
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.parsers import JSONParser
from pharmacrm.core.roles import Cap
from pharmacrm.customers.choices import PreferredLanguage

from . import attachments, conversation, editing
from .api import CodeField, TicketSerializer, callers_in_clear, reveal_reason_of
from .choices import Delivery, MessageKind
from .models import AnswerTemplate, Attachment, Product, Ticket, TicketCategory, TicketMessage

TICKET_PK = OpenApiParameter("ticket_pk", int, OpenApiParameter.PATH, description="The ticket's id.")
TICKET_ROUTE = r"tickets/(?P<ticket_pk>[0-9]{1,18})"


def register(router) -> None:
    """Called by pharmacrm/api_urls.py with the v1 router."""
    router.register(f"{TICKET_ROUTE}/messages", TicketMessageViewSet, basename="ticket-message")
    router.register(f"{TICKET_ROUTE}/attachments", TicketAttachmentViewSet, basename="ticket-attachment")
    router.register(TICKET_ROUTE, TicketDetailsViewSet, basename="ticket-details")


class _OnTicket:
    """The ticket of the URL, if the caller may see it (404 otherwise, as for the ticket itself)."""

    def ticket(self) -> Ticket:
        if not hasattr(self, "_ticket"):
            pk = self.kwargs.get("ticket_pk")
            ticket = access.tickets_for(self.request.user, Ticket.objects.all()).filter(pk=pk).first()
            if ticket is None:
                raise Http404
            self._ticket = ticket
        return self._ticket


class AttachmentSerializer(ModelSerializer):
    message = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="The message it came with, if any."
    )
    download = serializers.SerializerMethodField(help_text="Where to fetch the file (same access check).")

    class Meta:
        model = Attachment
        fields = [
            "id",
            "name",
            "content_type",
            "size",
            "sha256",
            "message",
            "uploaded_by",
            "created_at",
            "download",
        ]
        read_only_fields = fields

    def get_download(self, obj: Attachment) -> str:
        return f"/api/v1/tickets/{obj.ticket_id}/attachments/{obj.pk}/download/"


class MessageSerializer(ModelSerializer):
    kind = serializers.ChoiceField(
        choices=[(MessageKind.REPLY, MessageKind.REPLY.label), (MessageKind.NOTE, MessageKind.NOTE.label)],
        help_text="reply: to the customer (e-mailed when the ticket has the customer's address); note: internal, "
        "never leaves the company. Inbound messages (from the customer) are listed as `inbound`.",
    )  # fmt: skip
    body = serializers.CharField(max_length=conversation.MAX_BODY)
    template = serializers.PrimaryKeyRelatedField(
        queryset=AnswerTemplate.objects.filter(active=True), required=False, allow_null=True,
        help_text="The answer template the text started from (for the record; the text is what is sent).",
    )  # fmt: skip
    files = serializers.ListField(
        child=serializers.FileField(), required=False, write_only=True,
        help_text="Attachments (multipart); each checked by content type and size.",
    )  # fmt: skip
    delivery = serializers.ChoiceField(
        choices=Delivery.choices, read_only=True,
        help_text="For an e-mailed reply: pending, sent, failed (retrying) or gave_up; empty when not e-mailed.",
    )  # fmt: skip
    last_error = serializers.CharField(
        source="last_error_shown", read_only=True,
        help_text="Why the last delivery attempt failed: our own reasons in the request's language, what the mail "
        "server answered as it came.",
    )  # fmt: skip
    emailed = serializers.SerializerMethodField()
    attachments = AttachmentSerializer(many=True, read_only=True)

    class Meta:
        model = TicketMessage
        fields = [
            "id", "kind", "body", "template", "files", "author", "subject", "emailed", "delivery", "attempts",
            "last_error", "sent_at", "created_at", "attachments",
        ]  # fmt: skip
        read_only_fields = ["id", "author", "subject", "attempts", "sent_at", "created_at"]

    def to_representation(self, instance):
        """As written, with the contact details typed into the body and subject masked for a reader who sees personal
        data masked (unless they read the conversation with a reason: `texts_clear`), as the ticket page shows it."""
        data = super().to_representation(instance)
        data["kind"] = instance.kind  # inbound too
        if "texts_clear" not in self.context:
            request = self.context.get("request")
            self.context["texts_clear"] = request is not None and not personal.masks_free_text(request.user)
        for name in ("body", "subject"):
            data[name] = personal.free_text(data.get(name), not self.context["texts_clear"])
        return data

    def get_emailed(self, obj: TicketMessage) -> bool:
        return bool(obj.delivery)


@extend_schema_view(
    list=extend_schema(tags=["tickets"], parameters=[TICKET_PK]),
    create=extend_schema(tags=["tickets"], parameters=[TICKET_PK],
                         request={"application/json": MessageSerializer, "multipart/form-data": MessageSerializer}),
)  # fmt: skip
class TicketMessageViewSet(
    _OnTicket, mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """The conversation on a ticket, oldest first."""

    queryset = TicketMessage.objects.none()
    serializer_class = MessageSerializer
    permission_classes = [HasCapability]
    required_caps = {"create": Cap.HANDLE_TICKETS, "*": Cap.VIEW_TICKETS}
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return (
            self.ticket()
            .messages.select_related("template")
            .prefetch_related("attachments")
            .order_by("created_at", "id")
        )

    def list(self, request, *args, **kwargs):
        """The messages: the contact details typed into them in clear for roles that see personal data, or with
        ?reveal_reason= for the roles that may reveal them (audited, naming the messages read), else masked."""
        ticket = self.ticket()
        reason = reveal_reason_of(request)
        page = self.paginate_queryset(self.get_queryset())
        shown = page if page is not None else list(self.get_queryset())
        mode = access.personal_data_mode(request.user)
        clear = mode == "plain" or (mode == "reveal" and bool(reason))
        if clear and any(personal.holds_contacts(m.body) or personal.holds_contacts(m.subject) for m in shown):
            audit.record(AuditEntry.Action.READ_PERSONAL, ticket, user=request.user, fields=["messages"],
                         reason=audit.cut(reason, 500), purpose="api")  # fmt: skip
        context = {**self.get_serializer_context(), "texts_clear": clear}
        data = self.get_serializer(shown, many=True, context=context).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def create(self, request, *args, **kwargs):
        ticket = self.ticket()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        d = serializer.validated_data
        files = request.FILES.getlist("files") if request.FILES else []
        message = conversation.post_message(request.user, ticket, kind=d["kind"], body=clean_text(d["body"]),
                                            template=d.get("template"), files=files)  # fmt: skip
        message = TicketMessage.objects.prefetch_related("attachments").get(pk=message.pk)
        return Response(self.get_serializer(message).data, status=status.HTTP_201_CREATED)


class UploadSerializer(Serializer):
    file = serializers.FileField(
        help_text="PDF, PNG, JPEG, text, .docx or .xlsx; checked by content and size."
    )


@extend_schema_view(
    list=extend_schema(tags=["tickets"], parameters=[TICKET_PK]),
    retrieve=extend_schema(tags=["tickets"], parameters=[TICKET_PK]),
    create=extend_schema(tags=["tickets"], parameters=[TICKET_PK], request={"multipart/form-data": UploadSerializer},
                         responses={201: AttachmentSerializer}),
)  # fmt: skip
class TicketAttachmentViewSet(
    _OnTicket,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Files on a ticket (with or without a message)."""

    queryset = Attachment.objects.none()
    serializer_class = AttachmentSerializer
    permission_classes = [HasCapability]
    required_caps = {"create": Cap.HANDLE_TICKETS, "*": Cap.VIEW_TICKETS}
    parser_classes = [MultiPartParser, FormParser]
    filter_backends: list = []
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return self.ticket().attachments.order_by("created_at", "id")

    def create(self, request, *args, **kwargs):
        ticket = self.ticket()
        form = UploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            attachment = attachments.store_upload(request.user, ticket, form.validated_data["file"])
        except DjangoValidationError as e:  # named after this endpoint's one field, not the messages' "files"
            raise serializers.ValidationError({"file": e.message_dict.get("files", e.messages)}) from None
        return Response(AttachmentSerializer(attachment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=["tickets"], parameters=[TICKET_PK], filters=False,
        responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="The file.")},
    )  # fmt: skip
    @action(detail=True, methods=["get"], pagination_class=None, content_negotiation_class=FileNegotiation)
    def download(self, request, ticket_pk=None, pk=None):
        attachment = self.get_object()
        try:
            return attachments.download_response(request.user, attachment)
        except FileNotFoundError:
            raise Http404 from None


class DetailsSerializer(Serializer):
    subject = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=editing.MAX_DESCRIPTION, required=False, allow_blank=True)
    category = CodeField(
        slug_field="code", queryset=TicketCategory.objects.filter(active=True), required=False,
        help_text="A new category chooses the SLA policy again and recomputes the deadlines (the priority stays).",
    )  # fmt: skip
    product = serializers.PrimaryKeyRelatedField(
        queryset=Product.objects.all(), required=False, allow_null=True
    )
    batch_number = serializers.CharField(max_length=40, required=False, allow_blank=True)
    safety_relevant = serializers.BooleanField(required=False)
    institution = serializers.IntegerField(
        required=False, allow_null=True, help_text="The customer's institution id (one you may see); null unlinks."
    )
    person = serializers.IntegerField(
        required=False, allow_null=True,
        help_text="The person's id (one you may see); without `institution`, theirs is taken too. Null unlinks.",
    )  # fmt: skip
    caller_name = serializers.CharField(required=False, allow_blank=True, help_text="At most 50 characters as stored.")
    caller_phone = serializers.CharField(max_length=32, required=False, allow_blank=True)
    reply_email = serializers.CharField(max_length=254, required=False, allow_blank=True)
    language = serializers.ChoiceField(
        choices=PreferredLanguage.choices, required=False,
        help_text="The requester's language: the desk's own mails to them and the pages their links open are in it.",
    )  # fmt: skip
    reason = serializers.CharField(
        max_length=500, required=False, allow_blank=True, help_text="Kept in the history."
    )
    version = serializers.IntegerField(
        required=False, help_text="The version you loaded (or an If-Match header)."
    )


class TicketDetailsViewSet(viewsets.GenericViewSet):
    """Editing a ticket's details (the rest of the ticket changes through its own actions)."""

    queryset = Ticket.objects.none()
    serializer_class = DetailsSerializer
    permission_classes = [HasCapability]
    required_caps = {"PATCH": Cap.HANDLE_TICKETS, "*": Cap.VIEW_TICKETS}
    filter_backends: list = []

    def _ticket(self) -> Ticket:
        pk = self.kwargs.get("ticket_pk")
        ticket = access.tickets_for(self.request.user, Ticket.objects.all()).filter(pk=pk).first()
        if ticket is None:
            raise Http404
        return ticket

    def _answer(self, ticket: Ticket) -> Response:
        clear = callers_in_clear(self.request.user, [ticket], purpose="api")
        data = TicketSerializer(ticket, context={"request": self.request, "callers_clear": clear}).data
        return versioned(Response(data), ticket)

    @extend_schema(
        methods=["GET"], tags=["tickets"], parameters=[TICKET_PK], filters=False, responses={200: TicketSerializer},
        description="The ticket (as GET /api/v1/tickets/{id}/).",
    )  # fmt: skip
    @extend_schema(
        methods=["PATCH"], tags=["tickets"], parameters=[TICKET_PK], filters=False, request=DetailsSerializer,
        responses={200: TicketSerializer, 400: OpenApiResponse(description="Per-field messages."),
                   409: OpenApiResponse(description="Someone saved the ticket since `version` (with `current_version`).")},
        description="Change subject, description, category, product, batch_number, safety_relevant, the customer "
        "(institution, person), the caller's details (caller_name, caller_phone, reply_email; an empty string "
        "removes one) or the requester's language; send only what changes, with `version`. A new customer chooses the SLA policy again, and a "
        "VIP or key account gets the priority boost. History events: edited / category / product / priority.",
    )  # fmt: skip
    @action(detail=False, methods=["get", "patch"], url_path="details", pagination_class=None)
    def details(self, request, ticket_pk=None):
        ticket = self._ticket()
        if request.method == "GET":
            return self._answer(ticket)
        form = DetailsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = dict(form.validated_data)
        version = expected_version(request, d.pop("version", None))
        reason = clean_text(d.pop("reason", "") or "")
        for key in ("subject", "description", "batch_number", "caller_name"):
            if key in d:
                d[key] = clean_text(d[key])
        editing.edit_ticket(request.user, ticket, d, version=version, reason=reason)
        ticket.refresh_from_db()
        return self._answer(ticket)
