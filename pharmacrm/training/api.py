"""REST API of the training system: the courses (/api/v1/training/courses/), the assignments
(/api/v1/training/assignments/: one's own; every one for who sees the results, a team lead their teams'), a test
attempt (POST /api/v1/training/assignments/{id}/attempts/), scored on the server, the certificates, and the
classroom sessions (/api/v1/training/sessions/: planned, changed from the version loaded, cancelled, enrolled in and
withdrawn from, their waiting lists joined and left, as on the pages). docs/training.md."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pharmacrm.core import viewsets
from pharmacrm.core.api_utils import (
    TYPED_DATE_SCHEMA,
    HasCapability,
    SafeDateTimeField,
    Serializer,
    expected_version,
    versioned,
)
from pharmacrm.core.roles import Cap
from pharmacrm.core.typed_dates import typed_date

from . import classroom, training
from .models import Assignment, Certificate, Course, Question, Session, SessionStatus

TAG = "training"


class CourseSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    title = serializers.CharField(read_only=True)
    category = serializers.CharField(read_only=True)
    category_label = serializers.CharField(source="get_category_display", read_only=True)
    description = serializers.CharField(read_only=True)
    audience_roles = serializers.ListField(child=serializers.CharField(), read_only=True)
    audience_teams = serializers.SerializerMethodField()
    mandatory = serializers.BooleanField(read_only=True)
    hours = serializers.DecimalField(max_digits=5, decimal_places=1, read_only=True)
    valid_months = serializers.IntegerField(read_only=True, allow_null=True,
                                            help_text="A completion is valid this many months; null: no expiry.")  # fmt: skip
    pass_mark = serializers.IntegerField(read_only=True, help_text="Percent of questions answered right.")
    max_attempts = serializers.IntegerField(read_only=True)
    questions = serializers.SerializerMethodField(
        help_text="How many questions its test has (0: attendance)."
    )
    status = serializers.CharField(read_only=True)
    version = serializers.IntegerField(read_only=True)

    def get_audience_teams(self, obj) -> list[int]:
        return sorted(t.pk for t in obj.audience_teams.all())

    def get_questions(self, obj) -> int:
        return len(obj.questions.all())


class QuestionSerializer(Serializer):
    """A question as the trainee sees it: never its correct options."""

    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="single, multiple or truefalse.")
    text = serializers.CharField()
    options = serializers.ListField(
        child=serializers.CharField(), help_text="Answer with their indexes, from 0."
    )


class AttemptSerializer(Serializer):
    number = serializers.IntegerField()
    submitted_at = serializers.DateTimeField()
    correct = serializers.IntegerField(help_text="Questions answered exactly right.")
    total = serializers.IntegerField()
    score = serializers.IntegerField(help_text="Percent, rounded half up.")
    passed = serializers.BooleanField()


class AssignmentSerializer(Serializer):
    id = serializers.IntegerField()
    course = serializers.IntegerField(source="course_id")
    course_title = serializers.CharField(source="course.title")
    user = serializers.IntegerField(source="user_id")
    user_name = serializers.SerializerMethodField()
    state = serializers.SerializerMethodField(help_text="done, due, overdue or expired.")
    due_date = serializers.DateField()
    completed_at = serializers.DateTimeField(allow_null=True)
    method = serializers.CharField(help_text="test, attendance or empty (open).")
    score = serializers.IntegerField(allow_null=True)
    expires_on = serializers.DateField(allow_null=True, help_text="The last day the completion is valid.")
    attempts = AttemptSerializer(many=True)
    attempts_left = serializers.SerializerMethodField()

    def get_user_name(self, obj) -> str:
        return obj.user.display_name or obj.user.get_username()

    def get_state(self, obj) -> str:
        return training.state(obj)

    def get_attempts_left(self, obj) -> int:
        return max(obj.course.max_attempts - len(obj.attempts.all()), 0)


class AssignmentDetailSerializer(AssignmentSerializer):
    questions = serializers.SerializerMethodField(
        help_text="The test's questions: for the trainee, while open."
    )

    def get_questions(self, obj) -> list[dict]:
        request = self.context.get("request")
        if request is None or obj.user_id != request.user.pk or obj.completed_at is not None:
            return []
        return QuestionSerializer(list(Question.objects.filter(course_id=obj.course_id)), many=True).data


class AttemptInputSerializer(Serializer):
    answers = serializers.DictField(
        child=serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=99), max_length=20),
        help_text='Question id → the indexes of the options chosen ({"12": [1], "13": [0, 2]}); a question '
        "left out is unanswered (wrong).",
    )


class AttemptResultSerializer(Serializer):
    attempt = AttemptSerializer()
    assignment = AssignmentSerializer()
    attempts_left = serializers.IntegerField()


@extend_schema_view(
    list=extend_schema(tags=[TAG], description="The courses you may see: published ones (and the archived ones "
                       "assigned to you); every course for managers, administrators and auditors."),
    retrieve=extend_schema(tags=[TAG]),
)  # fmt: skip
class CourseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Course.objects.none()
    serializer_class = CourseSerializer
    permission_classes = [HasCapability]
    required_caps: dict = {}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        try:
            qs = training.courses_for(self.request.user)
        except DjangoPermissionDenied as e:
            raise exceptions.PermissionDenied(str(e)) from None
        return qs.prefetch_related("audience_teams", "questions").order_by("id")


ASSIGNMENT_PARAMETERS = [
    OpenApiParameter(
        "mine", bool, description="Only your own assignments (the default for those who see only theirs)."
    ),
    OpenApiParameter("course", int, description="Only this course's assignments."),
    OpenApiParameter("state", str, enum=["done", "due", "overdue", "expired"]),
]


@extend_schema_view(
    retrieve=extend_schema(tags=[TAG], responses={200: AssignmentDetailSerializer}),
)
class AssignmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Training assignments: your own; every one for managers, administrators and auditors; a team lead also
    their teams' members'."""

    queryset = Assignment.objects.none()
    serializer_class = AssignmentSerializer
    permission_classes = [HasCapability]
    required_caps: dict = {}
    lookup_value_regex = r"[0-9]{1,18}"

    def get_serializer_class(self):
        return AssignmentDetailSerializer if self.action == "retrieve" else AssignmentSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        user = self.request.user
        if not training.may_open_courses(user):
            raise exceptions.PermissionDenied(str(_("You do not have permission to do this.")))
        qs = training.assignments_for(user)
        if self.action == "list":
            params = self.request.query_params
            if (params.get("mine") or "").strip().lower() in ("1", "true", "yes", "on"):
                qs = qs.filter(user=user)
            course = (params.get("course") or "").strip()
            if course:
                if not course.isascii() or not course.isdigit() or len(course) > 18:
                    raise exceptions.ValidationError({"course": [_("Enter a course id (a number).")]})
                qs = qs.filter(course_id=int(course))
            wanted = (params.get("state") or "").strip()
            if wanted:
                if wanted not in training.STATE_LABELS:
                    raise exceptions.ValidationError({"state": [_("One of done, due, overdue, expired.")]})
                today = timezone.localdate()
                if wanted == "due":
                    qs = qs.filter(completed_at__isnull=True, due_date__gte=today)
                elif wanted == "overdue":
                    qs = qs.filter(completed_at__isnull=True, due_date__lt=today)
                elif wanted == "expired":
                    qs = qs.filter(completed_at__isnull=False, expires_on__lt=today)
                else:
                    qs = qs.filter(completed_at__isnull=False).exclude(expires_on__lt=today)
        return qs.select_related("course", "user").prefetch_related("attempts").order_by("id")

    @extend_schema(tags=[TAG], parameters=ASSIGNMENT_PARAMETERS,
                   responses={200: AssignmentSerializer(many=True), 400: OpenApiResponse(description="A bad filter."),
                              403: OpenApiResponse(description="No training for this role.")})  # fmt: skip
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        tags=[TAG], request=AttemptInputSerializer,
        responses={201: AttemptResultSerializer,
                   400: OpenApiResponse(description="Completed already, no attempts left, a question not of this test "
                                        "or an option it lacks (the field and the question named)."),
                   403: OpenApiResponse(description="Not your assignment, or a role that takes no training.")},
        description="Submit your answers to the course's test: scored on the server, kept, audited. Passing "
        "completes the assignment (its expiry set from the course's validity).",
    )  # fmt: skip
    @action(detail=True, methods=["post"], url_path="attempts")
    def attempts(self, request, pk=None):
        a = self.get_object()
        if a.user_id != request.user.pk:
            raise exceptions.PermissionDenied(_("This course is not assigned to you."))
        body = AttemptInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            outcome = training.submit(request.user, a.pk, body.validated_data["answers"])
        except DjangoPermissionDenied as e:
            raise exceptions.PermissionDenied(str(e)) from None
        except DjangoValidationError as e:
            raise exceptions.ValidationError(e.message_dict) from None
        a = self.get_queryset().get(pk=a.pk)
        data = {"attempt": AttemptSerializer(outcome.attempt).data, "assignment": AssignmentSerializer(a).data,
                "attempts_left": outcome.attempts_left}  # fmt: skip
        return Response(data, status=status.HTTP_201_CREATED)


class TrainingCertificateSerializer(Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField(help_text="PX-YYYY-NNNNN, per year, without gaps.")
    course = serializers.IntegerField(source="course_id")
    course_title = serializers.CharField(source="course.title")
    user = serializers.IntegerField(source="user_id")
    user_name = serializers.SerializerMethodField()
    score = serializers.IntegerField(allow_null=True)
    issued_on = serializers.DateField()
    expires_on = serializers.DateField(allow_null=True, help_text="The last day it is valid; null: no expiry.")
    state = serializers.SerializerMethodField(help_text="valid, expired or revoked.")
    revoked_at = serializers.DateTimeField(allow_null=True)
    revoke_reason = serializers.CharField()

    def get_user_name(self, obj) -> str:
        return obj.user.display_name or obj.user.get_username()

    def get_state(self, obj) -> str:
        return classroom.certificate_state(obj)


@extend_schema_view(
    list=extend_schema(tags=[TAG], parameters=[
        OpenApiParameter("mine", bool, description="Only your own certificates."),
        OpenApiParameter("course", int, description="Only this course's certificates."),
        OpenApiParameter("state", str, enum=["valid", "expired", "revoked"]),
        OpenApiParameter("person", str, description="A part of the person's name or username, or a number."),
    ], responses={200: TrainingCertificateSerializer(many=True), 400: OpenApiResponse(description="A bad filter.")}),
    retrieve=extend_schema(tags=[TAG]),
)  # fmt: skip
class CertificateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Training certificates (培训合格证书): your own; every one for managers, administrators and auditors; a team
    lead also their teams' members'."""

    queryset = Certificate.objects.none()
    serializer_class = TrainingCertificateSerializer
    permission_classes = [HasCapability]
    required_caps: dict = {}
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        user = self.request.user
        if not training.may_open_courses(user):
            raise exceptions.PermissionDenied(str(_("You do not have permission to do this.")))
        qs = classroom.certificates_for(user)
        if self.action == "list":
            params = self.request.query_params
            if (params.get("mine") or "").strip().lower() in ("1", "true", "yes", "on"):
                qs = qs.filter(user=user)
            try:
                qs = classroom.filter_certificates(qs, course=params.get("course", ""), state=params.get("state", ""),
                                                   person=params.get("person", ""))  # fmt: skip
            except DjangoValidationError as e:
                raise exceptions.ValidationError(e.message_dict) from None
        return qs.select_related("course", "user").order_by("id")


# --- classroom sessions ------------------------------------------------------------------------------------

ERRORS = OpenApiResponse(description="Per-field messages, in the reader's language, naming what is wrong.")
DENIED = OpenApiResponse(description="Not allowed: sessions are planned, changed and cancelled by training managers; "
                         "a trainee enrols and withdraws only themselves.")  # fmt: skip
STALE = OpenApiResponse(description="Changed since the version you loaded; current_version says which it is now.")
SESSION_STATUSES = ["planned", "held", "cancelled", "open"]


class SessionEnrolmentSerializer(Serializer):
    id = serializers.IntegerField()
    assignment = serializers.IntegerField(source="assignment_id")
    user = serializers.IntegerField(source="assignment.user_id")
    user_name = serializers.SerializerMethodField()
    enrolled_at = serializers.DateTimeField()
    attendance = serializers.CharField(help_text="present, absent, excused or empty (not taken).")

    def get_user_name(self, obj) -> str:
        return obj.assignment.user.display_name or obj.assignment.user.get_username()


class TrainingSessionSerializer(Serializer):
    id = serializers.IntegerField(read_only=True)
    course = serializers.IntegerField(source="course_id", read_only=True)
    course_title = serializers.CharField(source="course.title", read_only=True)
    starts_at = serializers.DateTimeField(read_only=True)
    ends_at = serializers.DateTimeField(read_only=True)
    place = serializers.CharField(read_only=True)
    trainer = serializers.IntegerField(source="trainer_id", read_only=True, allow_null=True,
                                       help_text="The trainer, a user; null: an external trainer.")  # fmt: skip
    trainer_name = serializers.CharField(read_only=True, help_text="An external trainer's name.")
    capacity = serializers.IntegerField(read_only=True)
    enrolled = serializers.SerializerMethodField(help_text="How many trainees are enrolled.")
    status = serializers.CharField(read_only=True, help_text="planned, held or cancelled.")
    is_open = serializers.SerializerMethodField(help_text="Planned and not started: takes enrolments and withdrawals.")
    cancel_reason = serializers.CharField(read_only=True)
    notes = serializers.CharField(read_only=True, help_text="Notes for the trainees.")
    materials_used = serializers.CharField(read_only=True)
    trainer_note = serializers.CharField(read_only=True)
    my_enrolment = serializers.SerializerMethodField(help_text="Whether you are enrolled.")
    waiting = serializers.SerializerMethodField(help_text="How many wait for a place (the waiting list).")
    my_waiting_position = serializers.SerializerMethodField(
        help_text="Your place on the waiting list (1: the next to get a free place); null: not waiting."
    )
    version = serializers.IntegerField(read_only=True)

    def get_enrolled(self, obj) -> int:
        counts = self.context.get("counts")
        return counts.get(obj.pk, 0) if counts is not None else obj.enrolments.count()

    def get_waiting(self, obj) -> int:
        if not self.get_is_open(obj):  # a list of a session that takes no one any more is nobody's wait
            return 0
        counts = self.context.get("waiting")
        return counts.get(obj.pk, 0) if counts is not None else classroom.live_waiting(obj).count()

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_my_waiting_position(self, obj) -> int | None:
        request = self.context.get("request")
        if request is None or not self.get_is_open(obj):
            return None
        mine = self.context.get("my_waiting")
        if mine is None:
            mine = classroom.my_waiting(request.user, [obj])
        return mine[obj.pk][1] if obj.pk in mine else None

    def get_is_open(self, obj) -> bool:
        return obj.status == SessionStatus.PLANNED and obj.starts_at > timezone.now()

    def get_my_enrolment(self, obj) -> bool:
        request = self.context.get("request")
        if request is None:
            return False
        mine = self.context.get("mine")
        if mine is not None:
            return obj.pk in mine
        return obj.enrolments.filter(assignment__user=request.user).exists()


class WaitingEntrySerializer(Serializer):
    position = serializers.IntegerField(help_text="1: the next to get a free place.")
    assignment = serializers.IntegerField(source="assignment_id")
    user = serializers.IntegerField(source="assignment.user_id")
    user_name = serializers.SerializerMethodField()
    added_at = serializers.DateTimeField()

    def get_user_name(self, obj) -> str:
        return obj.assignment.user.display_name or obj.assignment.user.get_username()


class TrainingSessionDetailSerializer(TrainingSessionSerializer):
    enrolments = serializers.SerializerMethodField(
        help_text="The trainees enrolled and their attendance: for the trainer and who sees training results."
    )
    waiting_list = serializers.SerializerMethodField(
        help_text="Who waits for a place, in order, while the session is open: for the trainer and who sees "
        "training results."
    )

    @extend_schema_field(WaitingEntrySerializer(many=True))
    def get_waiting_list(self, obj) -> list[dict]:
        request = self.context.get("request")
        if request is None or not self.get_is_open(obj) or not classroom.may_see_waiting_list(request.user, obj):
            return []
        rows = list(classroom.live_waiting(obj).select_related("assignment__user"))
        for i, w in enumerate(rows, 1):
            w.position = i
        return WaitingEntrySerializer(rows, many=True).data

    @extend_schema_field(SessionEnrolmentSerializer(many=True))
    def get_enrolments(self, obj) -> list[dict]:
        request = self.context.get("request")
        if request is None or not (classroom.may_take_attendance(request.user, obj)
                                   or training.may_see_results(request.user)):  # fmt: skip
            return []
        rows = obj.enrolments.select_related("assignment__user").order_by("assignment__user__username", "id")
        return SessionEnrolmentSerializer(rows, many=True).data


def _opt(field, **kw):
    return field(required=False, allow_null=True, **kw)


class TrainingSessionWriteSerializer(Serializer):
    course = _opt(serializers.IntegerField, min_value=1, max_value=2**63 - 1, help_text="Creating: the course.")
    starts_at = _opt(SafeDateTimeField, help_text="Beijing time unless an offset is given.")
    ends_at = _opt(SafeDateTimeField)
    place = _opt(serializers.CharField, allow_blank=True, max_length=classroom.PLACE_MAX)
    trainer = _opt(serializers.IntegerField, min_value=1, max_value=2**63 - 1, help_text="A user's id.")
    trainer_name = _opt(serializers.CharField, allow_blank=True, max_length=classroom.TRAINER_NAME_MAX,
                        help_text="An external trainer's name.")  # fmt: skip
    capacity = _opt(serializers.IntegerField, min_value=1, max_value=classroom.CAPACITY_MAX)
    notes = _opt(serializers.CharField, allow_blank=True, max_length=classroom.TEXT_MAX)
    version = _opt(serializers.IntegerField, min_value=1, max_value=2**63 - 1, help_text="Changes: the version you loaded.")


class SessionCancelSerializer(Serializer):
    reason = serializers.CharField(max_length=classroom.TEXT_MAX, allow_blank=True, help_text="Why it is cancelled.")
    version = _opt(serializers.IntegerField, min_value=1, max_value=2**63 - 1, help_text="The version you loaded.")


class SessionEnrolSerializer(Serializer):
    assignment = _opt(serializers.IntegerField, min_value=1, max_value=2**63 - 1,
                      help_text="The trainee's assignment of the course (managers); left out: your own.")  # fmt: skip


def _body(serializer_class, request) -> dict:
    form = serializer_class(data=request.data)
    form.is_valid(raise_exception=True)
    return {k: v for k, v in form.validated_data.items() if k in request.data}


def _service(call):
    """Run a classroom call: its refusals as the API's 400 / 403 (ConflictError → 409 by the exception handler)."""
    try:
        return call()
    except DjangoPermissionDenied as e:
        raise exceptions.PermissionDenied(str(e)) from None
    except DjangoValidationError as e:
        raise exceptions.ValidationError(e.message_dict if hasattr(e, "error_dict") else {"session": e.messages}) from None


SESSION_PARAMETERS = [
    OpenApiParameter("course", int, description="Only this course's sessions."),
    OpenApiParameter("from", TYPED_DATE_SCHEMA, description="Starting on or after this day (Beijing)."),
    OpenApiParameter("to", TYPED_DATE_SCHEMA, description="Starting on or before this day (Beijing)."),
    OpenApiParameter("status", str, enum=SESSION_STATUSES,
                     description="open: planned and not started (takes enrolments)."),
]  # fmt: skip


@extend_schema_view(
    list=extend_schema(tags=[TAG], parameters=SESSION_PARAMETERS,
                       responses={200: TrainingSessionSerializer(many=True), 400: ERRORS,
                                  403: OpenApiResponse(description="No training for this role.")}),
    retrieve=extend_schema(tags=[TAG], responses={200: TrainingSessionDetailSerializer}),
)  # fmt: skip
class SessionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Classroom sessions (培训实施) of the courses you may open. Training managers plan, change (from the version
    loaded) and cancel them and enrol or withdraw anyone; a trainee enrols and withdraws themselves."""

    queryset = Session.objects.none()
    serializer_class = TrainingSessionSerializer
    permission_classes = [HasCapability]
    required_caps = {a: Cap.MANAGE_TRAINING for a in ("create", "update", "partial_update", "cancel")}
    lookup_value_regex = r"[0-9]{1,18}"

    def get_serializer_class(self):
        return TrainingSessionDetailSerializer if self.action == "retrieve" else TrainingSessionSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        try:
            qs = classroom.sessions_for(self.request.user)
        except DjangoPermissionDenied as e:
            raise exceptions.PermissionDenied(str(e)) from None
        if self.action == "list":
            qs = self._filtered(qs, self.request.query_params)
        return qs.select_related("course", "trainer").order_by("starts_at", "id")

    @staticmethod
    def _filtered(qs, params):
        import datetime as dt

        errors = {}
        course = (params.get("course") or "").strip()
        if course:
            if not course.isascii() or not course.isdigit() or len(course) > 18:
                errors["course"] = [_("Enter a course id (a number).")]
            else:
                qs = qs.filter(course_id=int(course))
        for name, lookup in (("from", "gte"), ("to", "lt")):
            raw = (params.get(name) or "").strip()
            if not raw:
                continue
            try:  # as the other lists read a day: 2026/3/15, 2026年3月15日, full-width digits too
                day = dt.date.fromisoformat(typed_date(raw) or raw)
            except ValueError:
                errors[name] = [_("Enter a date (YYYY-MM-DD).")]
                continue
            try:
                if name == "to":
                    day += dt.timedelta(days=1)
                at = timezone.make_aware(dt.datetime.combine(day, dt.time.min)).astimezone(dt.UTC)
            except OverflowError:  # from 0001-01-01 or to 9999-12-31 (Beijing): the calendar's edge, no bound
                continue
            qs = qs.filter(**{f"starts_at__{lookup}": at})
        wanted = (params.get("status") or "").strip()
        if wanted == "open":
            qs = qs.filter(status=SessionStatus.PLANNED, starts_at__gt=timezone.now())
        elif wanted in SessionStatus.values:
            qs = qs.filter(status=wanted)
        elif wanted:
            errors["status"] = [_("One of planned, held, cancelled, open.")]
        if errors:
            raise exceptions.ValidationError(errors)
        return qs

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        rows = list(page)
        context = self.get_serializer_context()
        context["counts"] = classroom.enrolment_counts(rows)
        context["waiting"] = classroom.waiting_counts(rows)
        context["my_waiting"] = classroom.my_waiting(request.user, rows)
        context["mine"] = set(Session.objects.filter(pk__in=[s.pk for s in rows],
                                                     enrolments__assignment__user=request.user)
                              .values_list("pk", flat=True))  # fmt: skip
        return self.get_paginated_response(TrainingSessionSerializer(rows, many=True, context=context).data)

    def retrieve(self, request, *args, **kwargs):
        s = self.get_object()
        return versioned(Response(self._detail(s)), s)

    def _detail(self, s: Session) -> dict:
        s = self.get_queryset().get(pk=s.pk)
        return TrainingSessionDetailSerializer(s, context=self.get_serializer_context()).data

    @extend_schema(tags=[TAG], request=TrainingSessionWriteSerializer,
                   responses={201: TrainingSessionDetailSerializer, 400: ERRORS, 403: DENIED},
                   description="Plan a session of a published course: `course, starts_at, ends_at, place, trainer` "
                   "or `trainer_name`, `capacity`, `notes`. Audited.")  # fmt: skip
    def create(self, request, *args, **kwargs):
        data = _body(TrainingSessionWriteSerializer, request)
        data.pop("version", None)
        course_id = data.pop("course", None)
        course = training.courses_for(request.user).filter(pk=course_id).first() if course_id else None
        if course is None:
            raise exceptions.ValidationError({"course": [_("No such course.")]})
        s = _service(lambda: classroom.create_session(request.user, course, data))
        return versioned(Response(self._detail(s), status=status.HTTP_201_CREATED), s)

    @extend_schema(tags=[TAG], request=TrainingSessionWriteSerializer,
                   responses={200: TrainingSessionDetailSerializer, 400: ERRORS, 403: DENIED, 409: STALE},
                   description="Change a planned session from the `version` you loaded (or If-Match): the fields "
                   "sent change, the others stay. The capacity is never below the trainees enrolled; a held session "
                   "(started, or with attendance taken) changes its `notes` only, a cancelled one nothing. The "
                   "enrolled trainees are told once of a new time or place. Audited.")  # fmt: skip
    def update(self, request, *args, **kwargs):
        s = self.get_object()
        data = _body(TrainingSessionWriteSerializer, request)
        version = expected_version(request, data.pop("version", None))
        if "course" in data:
            raise exceptions.ValidationError({"course": [_("A session's course is not changed.")]})
        s = _service(lambda: classroom.update_session(request.user, s, data, version))
        return versioned(Response(self._detail(s)), s)

    @extend_schema(tags=[TAG], request=TrainingSessionWriteSerializer,
                   responses={200: TrainingSessionDetailSerializer, 400: ERRORS, 403: DENIED, 409: STALE})  # fmt: skip
    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, **kwargs)

    @extend_schema(tags=[TAG], request=SessionCancelSerializer,
                   responses={200: TrainingSessionDetailSerializer, 400: ERRORS, 403: DENIED, 409: STALE},
                   description="Cancel a planned session, giving the `reason`, from the `version` you loaded: the "
                   "enrolled trainees are told; it keeps its history, takes no attendance and is not reminded. "
                   "Audited.")  # fmt: skip
    @action(detail=True, methods=["post"], url_path="cancel")
    def cancel(self, request, pk=None):
        s = self.get_object()
        data = _body(SessionCancelSerializer, request)
        version = expected_version(request, data.get("version"))
        try:
            s = _service(lambda: classroom.cancel_session(request.user, s, data.get("reason", ""), version))
        except exceptions.ValidationError as e:  # the form's field is cancel_reason, the body's reason
            detail = e.detail if isinstance(e.detail, dict) else {"reason": e.detail}
            raise exceptions.ValidationError(
                {("reason" if k == "cancel_reason" else k): v for k, v in detail.items()}
            ) from None
        return versioned(Response(self._detail(s)), s)

    def _assignment(self, request, s: Session) -> Assignment:
        if not (training.may_take(request.user) or training.may_manage(request.user)):
            raise exceptions.PermissionDenied(_("You do not have permission to do this."))
        data = _body(SessionEnrolSerializer, request)
        wanted = data.get("assignment")
        if wanted is None:
            mine = s.course.assignments.filter(user=request.user).order_by("completed_at", "-id")
            a = (mine.filter(enrolments__session=s).first() if self.action == "withdraw"
                 else mine.filter(waiting__session=s).first() if self.action == "leave_waiting_list" else None)  # fmt: skip
            a = a or s.course.assignments.filter(user=request.user, completed_at__isnull=True).order_by("-id").first()
            if a is None:
                raise exceptions.ValidationError({"assignment": [_("This course is not assigned to you.")]})
            return a
        a = Assignment.objects.filter(pk=wanted).first()
        if a is None or (a.user_id != request.user.pk and not training.may_manage(request.user)):
            raise exceptions.ValidationError({"assignment": [_("No such assignment.")]})
        return a

    @extend_schema(tags=[TAG], request=SessionEnrolSerializer,
                   responses={201: TrainingSessionDetailSerializer, 400: ERRORS, 403: DENIED},
                   description="Enrol in an open session: yourself from your open assignment of its course, or "
                   "(training managers) a trainee's `assignment`. Within the capacity. Audited.")  # fmt: skip
    @action(detail=True, methods=["post"], url_path="enrol")
    def enrol(self, request, pk=None):
        s = self.get_object()
        a = self._assignment(request, s)
        _service(lambda: classroom.enrol(request.user, s, a))
        return versioned(Response(self._detail(s), status=status.HTTP_201_CREATED), s)

    @extend_schema(tags=[TAG], request=SessionEnrolSerializer,
                   responses={200: TrainingSessionDetailSerializer, 400: ERRORS, 403: DENIED},
                   description="Withdraw an enrolment before the session starts: your own, or (training managers) "
                   "a trainee's `assignment`. The place goes to the first on the waiting list (enrolled and told), or "
                   "is free again. Audited.")  # fmt: skip
    @action(detail=True, methods=["post"], url_path="withdraw")
    def withdraw(self, request, pk=None):
        s = self.get_object()
        a = self._assignment(request, s)
        _service(lambda: classroom.withdraw(request.user, s, a))
        return versioned(Response(self._detail(s)), s)


    @extend_schema(tags=[TAG], request=SessionEnrolSerializer,
                   responses={201: TrainingSessionDetailSerializer, 400: ERRORS, 403: DENIED},
                   description="Join a full session's waiting list (候补): yourself from your open assignment of its "
                   "course, or (training managers) a trainee's `assignment`. A session with a free place is enrolled "
                   "in instead. When a place frees (a withdrawal, a higher capacity), the first on the list is "
                   "enrolled at once and told. Audited.")  # fmt: skip
    @action(detail=True, methods=["post"], url_path="join-waiting-list")
    def join_waiting_list(self, request, pk=None):
        s = self.get_object()
        a = self._assignment(request, s)
        _service(lambda: classroom.join_waiting_list(request.user, s, a))
        return versioned(Response(self._detail(s), status=status.HTTP_201_CREATED), s)

    @extend_schema(tags=[TAG], request=SessionEnrolSerializer,
                   responses={200: TrainingSessionDetailSerializer, 400: ERRORS, 403: DENIED},
                   description="Leave a session's waiting list: yourself, or (training managers) a trainee's "
                   "`assignment`. Audited.")  # fmt: skip
    @action(detail=True, methods=["post"], url_path="leave-waiting-list")
    def leave_waiting_list(self, request, pk=None):
        s = self.get_object()
        a = self._assignment(request, s)
        _service(lambda: classroom.leave_waiting_list(request.user, s, a))
        return versioned(Response(self._detail(s)), s)


def register(router) -> None:
    router.register("training/courses", CourseViewSet, basename="training-course")
    router.register("training/assignments", AssignmentViewSet, basename="training-assignment")
    router.register("training/certificates", CertificateViewSet, basename="training-certificate")
    router.register("training/sessions", SessionViewSet, basename="training-session")
