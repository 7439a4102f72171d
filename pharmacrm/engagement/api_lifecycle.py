"""API of the customer lifecycle: /api/v1/engagement/stage-tasks/ (the tasks the user may see — their own, their
teams' when they lead one, all for managers — with done/ and skip/) and /api/v1/engagement/playbook/ (read by whoever
sees stage tasks, written by managers), as on /interactions/stage-tasks/ and /interactions/playbook/."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from pharmacrm.core import personal, viewsets
from pharmacrm.core.api_utils import (
    HasCapability,
    IntegerFilter,
    NoWritesForReadOnlyRoles,
    Serializer,
    StrictBooleanFilter,
    optional_version,
    settings_version,
    validation_detail,
    versioned,
)
from pharmacrm.core.ids import MAX_ID
from pharmacrm.core.roles import Cap
from pharmacrm.customers.choices import Stage

from . import playbook
from .models import (
    InteractionChannel,
    StageAction,
    StageActionKind,
    StageAssignee,
    StageTask,
    StageTaskStatus,
)


def register(router) -> None:
    router.register("engagement/stage-tasks", StageTaskViewSet, basename="stage-task")
    router.register("engagement/playbook", StageActionViewSet, basename="stage-action")


class StageActionSerializer(Serializer):
    """One action of the stage playbook."""

    id = serializers.IntegerField(read_only=True)
    stage = serializers.ChoiceField(choices=Stage.choices, help_text="The lifecycle stage whose entry starts it.")
    position = serializers.IntegerField(required=False, min_value=1, max_value=99, help_text="Order within the stage.")
    kind = serializers.ChoiceField(choices=StageActionKind.choices)
    title = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                  help_text="A manager's title; blank on a default: its title in the reader's language.")  # fmt: skip
    label = serializers.CharField(read_only=True, help_text="The title as shown.")
    due_days = serializers.IntegerField(min_value=0, max_value=playbook.MAX_DUE_DAYS,
                                        help_text="Due within this many working days of entering the stage.")  # fmt: skip
    assignee = serializers.ChoiceField(choices=StageAssignee.choices, required=False)
    active = serializers.BooleanField(required=False, help_text="In the playbook (false: kept for its tasks' history).")
    version = settings_version()
    updated_at = serializers.DateTimeField(read_only=True)


class StageTaskSerializer(Serializer):
    """A playbook action to do for one customer that entered its stage."""

    id = serializers.IntegerField(read_only=True)
    institution = serializers.IntegerField(source="institution_id", allow_null=True)
    person = serializers.IntegerField(source="person_id", allow_null=True)
    customer_name = serializers.SerializerMethodField()
    stage = serializers.ChoiceField(choices=Stage.choices)
    action = serializers.IntegerField(source="action_id")
    title = serializers.CharField(source="action.label")
    kind = serializers.ChoiceField(choices=StageActionKind.choices, source="action.kind")
    owner = serializers.IntegerField(source="owner_id", allow_null=True)
    due_on = serializers.DateField(
        allow_null=True, help_text="Null only for a task given before provisional due dates (a year the calendar lacked)."
    )
    due_provisional = serializers.BooleanField(
        help_text="The due date falls in (or is counted through) a year whose official holidays are not entered yet: "
        "counted on the weekdays less the public holidays the law fixes, dated again once they are."
    )
    overdue = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=StageTaskStatus.choices)
    reason = serializers.CharField()
    note = serializers.CharField()
    done_at = serializers.DateTimeField(allow_null=True)
    interaction = serializers.IntegerField(source="interaction_id", allow_null=True)
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()

    def to_representation(self, instance):
        """The note and the reason with the contact details typed in them masked for a reader who sees personal data
        masked, as the stage task list shows them."""
        return personal.shown_fields(self.context, super().to_representation(instance), "engagement.stagetask")

    def get_customer_name(self, obj) -> str:
        customer = obj.institution if obj.institution_id else obj.person
        return customer.name if customer else ""

    def get_overdue(self, obj) -> bool:
        return obj.status == StageTaskStatus.OPEN and obj.due_on is not None and obj.due_on < timezone.localdate()


class StageTaskDoneSerializer(Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=20000,
                                 help_text="What was done: the interaction's notes.")  # fmt: skip
    channel = serializers.ChoiceField(choices=InteractionChannel.choices, required=False,
                                      help_text="The interaction's channel; by default the action kind's.")  # fmt: skip
    version = settings_version()


class StageTaskSkipSerializer(Serializer):
    reason = serializers.CharField(max_length=playbook.REASON_MAX, help_text="Why the task is skipped.")
    version = settings_version()


class StageTaskFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=StageTaskStatus.choices)
    stage = django_filters.ChoiceFilter(choices=Stage.choices)
    institution = IntegerFilter(field_name="institution_id", min_value=1, max_value=MAX_ID)
    person = IntegerFilter(field_name="person_id", min_value=1, max_value=MAX_ID)
    owner = IntegerFilter(field_name="owner_id", min_value=1, max_value=MAX_ID)
    overdue = StrictBooleanFilter(method="filter_overdue")

    class Meta:
        model = StageTask
        fields = ["status", "stage", "institution", "person", "owner"]

    def filter_overdue(self, qs, name, value):
        today = timezone.localdate()
        late = {"status": StageTaskStatus.OPEN, "due_on__lt": today}
        return qs.filter(**late) if value else qs.exclude(**late)


def _api_errors(e: DjangoValidationError) -> ValidationError:
    return ValidationError(validation_detail(e))


@extend_schema_view(
    list=extend_schema(tags=["interactions"], description="The stage tasks the user may see: their own, their teams' "
                       "when they lead one, every one for managers (and auditors, read only); the earliest due first."),
    retrieve=extend_schema(tags=["interactions"]),
)  # fmt: skip
class StageTaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Stage tasks of the customer lifecycle."""

    queryset = StageTask.objects.none()
    serializer_class = StageTaskSerializer
    permission_classes = [HasCapability, NoWritesForReadOnlyRoles]
    required_caps = {"done": Cap.RECORD_INTERACTIONS, "skip": Cap.RECORD_INTERACTIONS, "*": Cap.VIEW_STAGE_TASKS}
    filterset_class = StageTaskFilter
    ordering_fields = ["due_on", "created_at", "id"]
    ordering = ["due_on", "id"]

    def get_queryset(self):
        return playbook.tasks_for(self.request.user).select_related("action", "institution", "person").order_by(
            "due_on", "id"
        )

    def _work(self, request, serializer_class, run):
        task = self.get_object()
        body = serializer_class(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            run(task, body.validated_data)
        except DjangoValidationError as e:
            raise _api_errors(e) from None
        task = self.get_queryset().get(pk=task.pk)
        return Response(StageTaskSerializer(task, context=self.get_serializer_context()).data)

    @extend_schema(tags=["interactions"], request=StageTaskDoneSerializer, responses={
        200: StageTaskSerializer, 400: OpenApiResponse(description="The task is not open, or a bad field."),
        409: OpenApiResponse(description="Changed by someone else since the version sent.")},
        description="Mark the task done: the interaction it was is recorded (audited) and linked.")  # fmt: skip
    @action(detail=True, methods=["post"])
    def done(self, request, pk=None):
        return self._work(request, StageTaskDoneSerializer, lambda task, d: playbook.complete(
            request.user, task, note=d.get("note", ""), channel=d.get("channel", ""),
            version=optional_version(request, dict(d))))

    @extend_schema(tags=["interactions"], request=StageTaskSkipSerializer, responses={
        200: StageTaskSerializer, 400: OpenApiResponse(description="No reason, or the task is not open."),
        409: OpenApiResponse(description="Changed by someone else since the version sent.")},
        description="Skip the task, saying why (audited).")  # fmt: skip
    @action(detail=True, methods=["post"])
    def skip(self, request, pk=None):
        return self._work(request, StageTaskSkipSerializer, lambda task, d: playbook.skip(
            request.user, task, reason=d["reason"], version=optional_version(request, dict(d))))


@extend_schema_view(
    list=extend_schema(tags=["interactions"], description="The stage playbook: per lifecycle stage, what is done "
                       "when a customer enters it."),
    retrieve=extend_schema(tags=["interactions"]),
    create=extend_schema(tags=["interactions"], description="Managers and admins (audited)."),
    partial_update=extend_schema(tags=["interactions"], description="Managers and admins; send `version` (audited)."),
)  # fmt: skip
class StageActionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                         mixins.UpdateModelMixin, viewsets.GenericViewSet):  # fmt: skip
    """The stage playbook."""

    queryset = StageAction.objects.none()
    serializer_class = StageActionSerializer
    permission_classes = [HasCapability]
    required_caps = {"create": Cap.MANAGE_PLAYBOOK, "partial_update": Cap.MANAGE_PLAYBOOK,
                     "update": Cap.MANAGE_PLAYBOOK, "*": Cap.VIEW_STAGE_TASKS}  # fmt: skip
    http_method_names = ["get", "post", "patch", "head", "options"]
    ordering = ["stage", "position", "id"]

    def get_queryset(self):
        return StageAction.objects.order_by("stage", "position", "id")

    def create(self, request, *args, **kwargs):
        body = StageActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = {k: v for k, v in body.validated_data.items() if k != "version"}
        try:
            obj = playbook.save_action(request.user, data)
        except DjangoValidationError as e:
            raise _api_errors(e) from None
        return Response(StageActionSerializer(obj).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        if not kwargs.get("partial"):
            return Response(status=status.HTTP_405_METHOD_NOT_ALLOWED)
        obj = self.get_object()
        body = StageActionSerializer(obj, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        version = optional_version(request, data)  # the body's or If-Match: a stale one is a 409
        try:
            obj = playbook.save_action(request.user, data, obj, version=version)
        except DjangoValidationError as e:
            raise _api_errors(e) from None
        return versioned(Response(StageActionSerializer(obj).data), obj)

    def retrieve(self, request, *args, **kwargs):
        obj = self.get_object()
        return versioned(Response(StageActionSerializer(obj).data), obj)
