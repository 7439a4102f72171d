"""REST endpoints: revisit surveys and improvement actions.

- GET /api/v1/surveys/ (?ticket=) and /api/v1/surveys/{id}/ — surveys of tickets the user may see.
- POST /api/v1/surveys/ — record a phone revisit {ticket, channel: "phone", score, solved, recommend, comment}.
- POST /api/v1/surveys/send/ — create a survey link for {ticket}: e-mailed when the ticket has the customer's
  address, otherwise answered with the `link` to send by SMS or WeChat (shown this once, never stored).
- GET/POST /api/v1/improvement-actions/, GET/PATCH /api/v1/improvement-actions/{id}/ (with `version` or
  If-Match), POST /api/v1/improvement-actions/{id}/transition/ — open → in_progress → done (outcome) /
  cancelled (reason). Actions are never deleted: cancel them.

Customers answer a survey link on its HTML page (/help/survey/…), not through the API."""

from __future__ import annotations

import django_filters
from django.db.models import Q
from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pharmacrm.core import access, personal, viewsets
from pharmacrm.core.api_utils import (
    MAX_INT32,
    Conflict,
    DateField,
    HasCapability,
    IntegerFilter,
    ModelSerializer,
    Serializer,
    clean_text,
    expected_version,
    versioned,
)
from pharmacrm.core.roles import Cap
from pharmacrm.customers.forms import CUSTOMER_NAME_HELP, picker_label

from . import revisit
from .choices import ActionStatus, LowScore, SurveyChannel
from .models import ImprovementAction, Survey, Ticket

MAX_ID = 2**63 - 1
CONFLICT_409 = OpenApiResponse(
    description="The action's lifecycle refuses this step, or someone saved it since `version` (then with "
    "`current_version`)."
)


def register(router) -> None:
    """Called by pharmacrm/api_urls.py with the v1 router."""
    router.register("surveys", SurveyViewSet, basename="survey")
    router.register("improvement-actions", ImprovementActionViewSet, basename="improvement-action")


@extend_schema_field(OpenApiTypes.INT)
class VisibleTicketField(serializers.PrimaryKeyRelatedField):
    """A ticket by its id, among those the requesting user may see."""

    def get_queryset(self):
        request = self.context.get("request")
        if request is None:
            return Ticket.objects.none()
        return access.tickets_for(request.user, Ticket.objects.all())

    def to_internal_value(self, data):
        if isinstance(data, float):  # 1.5 would be looked up as ticket 1: a review recorded on another ticket
            self.fail("incorrect_type", data_type=type(data).__name__)
        if isinstance(data, int) and not 1 <= data <= MAX_ID:
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(data)


# --- surveys ---------------------------------------------------------------------------------------


class SurveySerializer(ModelSerializer):
    ticket_number = serializers.CharField(source="ticket.number", read_only=True)
    emailed = serializers.SerializerMethodField(
        help_text="Whether the link went to the customer's e-mail address."
    )
    outcome = serializers.ChoiceField(
        choices=LowScore.choices, read_only=True, allow_blank=True,
        help_text="What a low score led to (empty for a good score or none yet).",
    )  # fmt: skip

    class Meta:
        model = Survey
        fields = [
            "id", "ticket", "ticket_number", "channel", "sent_at", "expires_at", "answered_at", "score", "solved",
            "recommend", "comment", "outcome", "recorded_by", "created_by", "created_at", "emailed",
        ]  # fmt: skip
        read_only_fields = fields

    def to_representation(self, instance):
        """As stored, except the comment with the contact details a customer typed in it masked for a reader who sees
        personal data masked (as the pages show it)."""
        return personal.shown_fields(self.context, super().to_representation(instance), "servicedesk.survey")

    def get_emailed(self, obj: Survey) -> bool:
        return obj.channel == SurveyChannel.LINK and bool(obj.sent_to)


class SentSurveySerializer(SurveySerializer):
    link = serializers.CharField(
        read_only=True, allow_null=True,
        help_text="The survey link to send by SMS or WeChat when the customer has no e-mail address (else null).",
    )  # fmt: skip

    class Meta(SurveySerializer.Meta):
        fields = [*SurveySerializer.Meta.fields, "link"]
        read_only_fields = fields


class PhoneRevisitSerializer(Serializer):
    ticket = VisibleTicketField(help_text="The ticket's id (resolved, informed or closed).")
    channel = serializers.ChoiceField(
        choices=SurveyChannel.choices, default=SurveyChannel.PHONE,
        help_text="phone (the only value accepted here; survey links are created with …/send/).",
    )  # fmt: skip
    score = serializers.IntegerField(
        min_value=1, max_value=5, help_text="Satisfaction, 1 (poor) to 5 (very good)."
    )
    solved = serializers.BooleanField(help_text="Whether the customer says the request was solved.")
    recommend = serializers.IntegerField(
        min_value=0, max_value=10, required=False, allow_null=True,
        help_text="The net promoter answer: how likely the customer is to recommend us, 0 to 10 (optional).",
    )  # fmt: skip
    comment = serializers.CharField(max_length=revisit.MAX_COMMENT, required=False, allow_blank=True)

    def validate_channel(self, value):
        if value != SurveyChannel.PHONE:
            raise serializers.ValidationError(
                _("Record a phone revisit here; send survey links with …/send/.")
            )
        return value


class SendSurveySerializer(Serializer):
    ticket = VisibleTicketField(help_text="The ticket's id (resolved, informed or closed).")


class SurveyFilter(django_filters.FilterSet):
    ticket = IntegerFilter(field_name="ticket_id", min_value=1, max_value=MAX_ID)
    channel = django_filters.ChoiceFilter(choices=SurveyChannel.choices)

    class Meta:
        model = Survey
        fields: list[str] = []


@extend_schema_view(
    list=extend_schema(tags=["revisit"]),
    retrieve=extend_schema(tags=["revisit"]),
    create=extend_schema(
        tags=["revisit"],
        request=PhoneRevisitSerializer,
        responses={201: SurveySerializer, 400: OpenApiResponse(description="Per-field messages.")},
        description="Record a phone revisit. A score of 2 or less, or solved false, reopens the ticket or opens "
        "an improvement action, as the ticket's category is configured (`outcome`).",
    ),  # fmt: skip
)
class SurveyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Revisit surveys (回访) of the tickets the user may see."""

    queryset = Survey.objects.none()
    serializer_class = SurveySerializer
    permission_classes = [HasCapability]
    required_caps = {"create": Cap.HANDLE_TICKETS, "send": Cap.HANDLE_TICKETS, "*": Cap.VIEW_TICKETS}
    filterset_class = SurveyFilter
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        tickets = access.tickets_for(self.request.user, Ticket.objects.all()).values("id")
        return (
            Survey.objects.filter(ticket_id__in=tickets)
            .select_related("ticket")
            .order_by("-created_at", "-id")
        )

    def create(self, request, *args, **kwargs):
        form = PhoneRevisitSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        d = form.validated_data
        survey = revisit.record_phone_revisit(
            request.user, d["ticket"], d["score"], d["solved"], clean_text(d.get("comment", "")), d.get("recommend")
        )
        survey = self.get_queryset().get(pk=survey.pk)
        return Response(SurveySerializer(survey).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=SendSurveySerializer,
        responses={201: SentSurveySerializer, 400: OpenApiResponse(description="Per-field messages.")},
        tags=["revisit"], filters=False,
        description="Create a signed, expiring, single-use survey link for a resolved, informed or closed ticket. "
        "It is e-mailed (as a reply) when the ticket has the customer's address; otherwise `link` is returned "
        "this once for you to send by SMS or WeChat.",
    )  # fmt: skip
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def send(self, request):
        form = SendSurveySerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        survey, link = revisit.send_survey(request.user, form.validated_data["ticket"])
        survey = self.get_queryset().get(pk=survey.pk)
        survey.link = None if survey.sent_to else link
        return Response(SentSurveySerializer(survey).data, status=status.HTTP_201_CREATED)


# --- improvement actions ---------------------------------------------------------------------------


TITLE_LIMIT = ImprovementAction._meta.get_field("title").max_length  # 200


class ImprovementActionSerializer(ModelSerializer):
    number = serializers.CharField(read_only=True, help_text="IA-YYYY-NNNN, numbered per year.")
    ticket = VisibleTicketField(required=False, allow_null=True,
                                help_text="The ticket it concerns (required unless you manage the service desk).")  # fmt: skip
    ticket_number = serializers.CharField(source="ticket.number", read_only=True, allow_null=True)
    customer = serializers.SerializerMethodField(
        help_text="The customer (institution id) it concerns: the one it was opened for (a weak evaluation), "
        "else its ticket's customer; null if neither."
    )
    customer_name = serializers.SerializerMethodField(help_text=CUSTOMER_NAME_HELP)
    owner = serializers.PrimaryKeyRelatedField(
        queryset=revisit.owners(), required=False,
        help_text="A user who handles tickets. Default: you. Only service managers may give it to someone else.",
    )  # fmt: skip
    title = serializers.CharField(max_length=TITLE_LIMIT)
    title_label = serializers.CharField(
        source="shown_title", read_only=True,
        help_text="The title in the request's language (Accept-Language): an action the customer evaluation opened "
        "reads in it; `title` keeps the text as stored (in the product's language), one typed reads as typed.",
    )  # fmt: skip
    description = serializers.CharField(max_length=20000, required=False, allow_blank=True)
    description_label = serializers.CharField(source="shown_description", read_only=True,
                                              help_text="The description as `title_label` reads the title.")  # fmt: skip
    due_date = DateField()
    status = serializers.ChoiceField(choices=ActionStatus.choices, read_only=True,
                                     help_text="Change it with …/transition/.")  # fmt: skip
    overdue = serializers.SerializerMethodField()
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_INT32,
        help_text="Send it back with every change (or If-Match); 409 if stale.",
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        action = self.instance if isinstance(self.instance, ImprovementAction) else None
        longest = max(map(len, action.generated_texts(0)), default=0) if action is not None else 0
        if longest > TITLE_LIMIT:
            # the evaluation's title in a reader's language (`title_label`) may run longer than the stored one: sent
            # back unchanged it is no rewording (the service keeps the stored title), so the field takes it
            self.fields["title"] = serializers.CharField(max_length=longest)

    def validate_title(self, value: str) -> str:
        if not (isinstance(self.instance, ImprovementAction) and self.instance.reads_as_generated(0, value)):
            serializers.CharField(max_length=TITLE_LIMIT).run_validation(value)  # a rewording: stored, 200 at most
        return value

    class Meta:
        model = ImprovementAction
        fields = [
            "id", "number", "ticket", "ticket_number", "customer", "customer_name", "survey", "title", "title_label",
            "description", "description_label", "owner", "due_date", "status", "outcome", "closed_at", "overdue", "created_by", "created_at", "updated_at",
            "version",
        ]  # fmt: skip
        read_only_fields = ["survey", "outcome", "closed_at", "created_by", "created_at", "updated_at"]

    @staticmethod
    def _customer(obj: ImprovementAction):
        if obj.institution_id:
            return obj.institution
        return obj.ticket.institution if obj.ticket_id and obj.ticket.institution_id else None

    def to_representation(self, instance):
        """As stored, except the title, the description (a survey's comment copied in) and the outcome with the contact
        details in them masked for a reader who sees personal data masked; masks sent back in a change are put back
        as stored."""
        data = personal.shown_fields(self.context, super().to_representation(instance),
                                     "servicedesk.improvementaction")  # fmt: skip
        masked = personal.masks_for(self.context)
        for label in ("title_label", "description_label"):
            if label in data:
                data[label] = personal.free_text(data[label], masked)
        return data

    def get_customer(self, obj: ImprovementAction) -> int | None:
        customer = self._customer(obj)
        return customer.pk if customer is not None else None

    def get_customer_name(self, obj: ImprovementAction) -> str | None:
        customer = self._customer(obj)
        return picker_label(customer) if customer is not None else None

    def get_overdue(self, obj: ImprovementAction) -> bool:
        from django.utils import timezone

        return obj.status not in revisit.CLOSED_ACTIONS and obj.due_date < timezone.localdate()


class ActionTransitionSerializer(Serializer):
    status = serializers.ChoiceField(
        choices=ActionStatus.choices, help_text="The status to move the action to."
    )
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_INT32, help_text="The version you loaded (or If-Match)."
    )
    outcome = serializers.CharField(max_length=20000, required=False, allow_blank=True,
                                    help_text="Required for done: what was done.")  # fmt: skip
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True,
                                   help_text="Required for cancelled: why.")  # fmt: skip


class ActionFilter(django_filters.FilterSet):
    show = django_filters.ChoiceFilter(
        choices=[("mine", "mine"), ("open", "open"), ("overdue", "overdue")], method="filter_show",
        label="mine: owned by you; open: not done or cancelled; overdue: open and past the due date.",
    )  # fmt: skip
    status = django_filters.ChoiceFilter(choices=ActionStatus.choices)
    ticket = IntegerFilter(field_name="ticket_id", min_value=1, max_value=MAX_ID)
    owner = IntegerFilter(field_name="owner_id", min_value=1, max_value=MAX_ID)
    customer = IntegerFilter(
        method="filter_customer", min_value=1, max_value=MAX_ID,
        label="The customer's (institution's) id: the actions opened for it and those of its tickets.",
    )  # fmt: skip

    class Meta:
        model = ImprovementAction
        fields: list[str] = []

    def filter_customer(self, queryset, name, value):
        return queryset.filter(Q(institution_id=value) | Q(ticket__institution_id=value))

    def filter_show(self, queryset, name, value):
        if value == "mine":
            return queryset.filter(owner=self.request.user)
        if value == "open":
            return queryset.exclude(status__in=revisit.CLOSED_ACTIONS)
        if value == "overdue":
            return queryset.filter(revisit.overdue_q())
        return queryset


@extend_schema_view(
    list=extend_schema(tags=["revisit"]),
    retrieve=extend_schema(tags=["revisit"]),
    create=extend_schema(
        tags=["revisit"],
        responses={
            201: ImprovementActionSerializer,
            200: OpenApiResponse(ImprovementActionSerializer, description="The same action sent again within ten "
                                 "minutes: the one opened then, not a second one."),
            400: OpenApiResponse(description="Per-field messages."),
        },  # fmt: skip
    ),
    partial_update=extend_schema(
        tags=["revisit"],
        responses={
            200: ImprovementActionSerializer,
            400: OpenApiResponse(description="Per-field messages."),
            409: CONFLICT_409,
        },  # fmt: skip
        description="Change the title, description, due date or (service managers) the owner; send `version` "
        "or If-Match.",
    ),
)
class ImprovementActionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):  # fmt: skip
    """Improvement actions (改进措施): owners work on theirs, service managers on every one."""

    queryset = ImprovementAction.objects.none()
    serializer_class = ImprovementActionSerializer
    permission_classes = [HasCapability]
    required_caps = {
        "create": Cap.HANDLE_TICKETS,
        "partial_update": Cap.HANDLE_TICKETS,
        "transition": Cap.HANDLE_TICKETS,
        "*": Cap.VIEW_TICKETS,
    }
    filterset_class = ActionFilter
    http_method_names = ["get", "post", "patch", "head", "options"]
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        qs = ImprovementAction.objects.select_related("ticket__institution__parent", "institution__parent").order_by(
            *revisit.work_order()
        )
        return revisit.actions_for(self.request.user, qs)

    def _answer(self, obj: ImprovementAction, code: int = status.HTTP_200_OK) -> Response:
        obj = self.get_queryset().get(pk=obj.pk)
        return versioned(Response(self.get_serializer(obj).data, status=code), obj)

    def retrieve(self, request, *args, **kwargs):
        obj = self.get_object()
        return versioned(Response(self.get_serializer(obj).data), obj)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        d = dict(serializer.validated_data)
        d.pop("version", None)
        d.setdefault("owner", request.user)
        for key in ("title", "description"):
            if key in d:
                d[key] = clean_text(d[key])
        obj = revisit.create_action(request.user, d)
        # the same request sent again (a retry after a lost answer): the action the first one opened
        return self._answer(obj, status.HTTP_200_OK if getattr(obj, "sent_again", False)
                            else status.HTTP_201_CREATED)  # fmt: skip

    def partial_update(self, request, *args, **kwargs):
        obj = self.get_object()
        serializer = self.get_serializer(obj, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        d = dict(serializer.validated_data)
        version = expected_version(request, d.pop("version", None))
        d.pop("ticket", None)
        for key in ("title", "description"):
            if key in d:
                d[key] = clean_text(d[key])
        try:
            revisit.update_action(request.user, obj, d, version=version)
        except revisit.ActionTransitionRefused as e:
            raise Conflict(" ".join(str(m) for m in e.messages)) from None
        return self._answer(obj)

    def update(self, request, *args, **kwargs):  # PUT is not offered (http_method_names)
        raise Http404

    @extend_schema(
        request=ActionTransitionSerializer,
        responses={
            200: ImprovementActionSerializer,
            400: OpenApiResponse(description="Per-field messages."),
            409: CONFLICT_409,
        },  # fmt: skip
        tags=["revisit"],
        description="open → in_progress → done (needs `outcome`) or cancelled (needs `reason`). Owners and "
        "service managers only.",
    )
    @action(detail=True, methods=["post"])
    def transition(self, request, pk=None):
        obj = self.get_object()
        form = ActionTransitionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        version = expected_version(request, d.get("version"))
        try:
            revisit.transition_action(
                request.user, obj, d["status"], version=version, outcome=clean_text(d.get("outcome", "")),
                reason=clean_text(d.get("reason", "")),
            )  # fmt: skip
        except revisit.ActionTransitionRefused as e:
            raise Conflict(" ".join(str(m) for m in e.messages)) from None
        return self._answer(obj)
