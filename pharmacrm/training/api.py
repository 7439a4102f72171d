"""REST API of the training system: the courses (/api/v1/training/courses/), the assignments
(/api/v1/training/assignments/: one's own; every one for who sees the results, a team lead their teams'), and a test
attempt (POST /api/v1/training/assignments/{id}/attempts/), scored on the server. docs/training.md."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from pharmacrm.core import viewsets
from pharmacrm.core.api_utils import HasCapability, Serializer

from . import classroom, training
from .models import Assignment, Certificate, Course, Question

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


def register(router) -> None:
    router.register("training/courses", CourseViewSet, basename="training-course")
    router.register("training/assignments", AssignmentViewSet, basename="training-assignment")
    router.register("training/certificates", CertificateViewSet, basename="training-certificate")
