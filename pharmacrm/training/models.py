"""The staff training system (培训体系, seed 000 ch. 7): courses with their materials and question bank, the
assignments of a course to users, the attempts at its test and the trainees' ratings. training.py decides and
saves; nothing here is changed but through it (audited)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from pharmacrm.core.models import Team


class Category(models.TextChoices):
    PRODUCT = "product", _("Product knowledge")
    COMPLIANCE = "compliance", _("Regulations and compliance")
    COMMUNICATION = "communication", _("Communication skills")
    COMPLAINTS = "complaints", _("Complaint handling")
    SYSTEM = "system", _("System operation")
    OTHER = "other", _("Other")


class CourseStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")
    ARCHIVED = "archived", _("Archived")


class Course(models.Model):
    title = models.CharField(pgettext_lazy("record title", "title"), max_length=200)
    category = models.CharField(
        _("category"), max_length=20, choices=Category.choices, default=Category.PRODUCT
    )
    description = models.TextField(_("description"), blank=True)
    # the roles (codes) and teams the course is for; empty both: anyone it is assigned to
    audience_roles = models.JSONField(_("roles"), default=list, blank=True)
    audience_teams = models.ManyToManyField(Team, blank=True, related_name="+", verbose_name=_("teams"))
    mandatory = models.BooleanField(_("mandatory"), default=False)
    hours = models.DecimalField(_("hours"), max_digits=5, decimal_places=1, default=1)
    valid_months = models.PositiveSmallIntegerField(_("valid for (months)"), null=True, blank=True)
    pass_mark = models.PositiveSmallIntegerField(_("pass mark (%)"), default=80)
    max_attempts = models.PositiveSmallIntegerField(_("attempts allowed"), default=3)
    status = models.CharField(
        _("status"), max_length=10, choices=CourseStatus.choices, default=CourseStatus.DRAFT
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)
    version = models.PositiveIntegerField(default=1, editable=False)  # optimistic locking

    class Meta:
        verbose_name = _("course")
        verbose_name_plural = _("courses")
        ordering = ["title", "id"]

    def __str__(self) -> str:
        return self.title


def material_path(instance, filename: str) -> str:
    # never the uploader's file name on disk
    return f"training/{timezone.now():%Y/%m}/{secrets.token_hex(16)}"


class Material(models.Model):
    """A course's file (PDF, Office, image; checked by content) or link."""

    course = models.ForeignKey(Course, models.CASCADE, related_name="materials", verbose_name=_("course"))
    title = models.CharField(pgettext_lazy("record title", "title"), max_length=200)
    file = models.FileField(_("file"), upload_to=material_path, max_length=200, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    url = models.URLField(_("link"), max_length=500, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("course material")
        verbose_name_plural = _("Materials")

    def __str__(self) -> str:
        return self.title


class QuestionKind(models.TextChoices):
    SINGLE = "single", _("Single choice")
    MULTIPLE = "multiple", _("Multiple choice")
    TRUE_FALSE = "truefalse", _("True or false")


class Question(models.Model):
    course = models.ForeignKey(Course, models.CASCADE, related_name="questions", verbose_name=_("course"))
    position = models.PositiveSmallIntegerField(default=0)
    kind = models.CharField(
        _("kind"), max_length=10, choices=QuestionKind.choices, default=QuestionKind.SINGLE
    )
    text = models.TextField(_("question"))
    options = models.JSONField(_("options"), default=list)  # the texts, in order
    correct = models.JSONField(_("correct options"), default=list)  # their indexes, sorted

    class Meta:
        ordering = ["position", "id"]
        verbose_name = _("question")
        verbose_name_plural = _("Test questions")

    def __str__(self) -> str:
        return self.text[:80]


class Method(models.TextChoices):
    TEST = "test", _("Test passed")
    ATTENDANCE = "attendance", _("Attendance recorded")


class Assignment(models.Model):
    """A course a user is to complete by a due date. At most one open (not completed) per user and course; a
    refresher after expiry is a new assignment, the completed one kept as the record."""

    course = models.ForeignKey(Course, models.CASCADE, related_name="assignments", verbose_name=_("course"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.CASCADE,
        related_name="training_assignments",
        verbose_name=_("trainee"),
    )
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    assigned_at = models.DateTimeField(_("assigned"), default=timezone.now)
    due_date = models.DateField(_("due date"))
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True)
    method = models.CharField(_("completed by"), max_length=12, choices=Method.choices, blank=True)
    score = models.PositiveSmallIntegerField(_("score"), null=True, blank=True)
    expires_on = models.DateField(_("valid until"), null=True, blank=True)
    reminded_due_at = models.DateTimeField(_("reminded before the due date"), null=True, blank=True)
    reminded_overdue_at = models.DateTimeField(_("reminded when overdue"), null=True, blank=True)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        ordering = ["due_date", "id"]
        verbose_name = _("training assignment")
        verbose_name_plural = _("training assignments")
        constraints = [
            models.UniqueConstraint(
                fields=["course", "user"],
                condition=Q(completed_at__isnull=True),
                name="training_one_open_assignment",
            ),
        ]
        indexes = [models.Index(fields=["user", "course"], name="training_assignment_user")]

    def __str__(self) -> str:
        return f"{self.course} — {self.user}"


class Attempt(models.Model):
    """One submitted test: the answers as given (question id → option indexes), scored on the server."""

    assignment = models.ForeignKey(Assignment, models.CASCADE, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    submitted_at = models.DateTimeField(default=timezone.now)
    answers = models.JSONField(default=dict)
    correct = models.PositiveSmallIntegerField(default=0)
    total = models.PositiveSmallIntegerField(default=0)
    score = models.PositiveSmallIntegerField(default=0)  # percent, rounded half up
    passed = models.BooleanField(default=False)

    class Meta:
        ordering = ["assignment", "number"]
        verbose_name = _("test attempt")
        verbose_name_plural = _("test attempts")
        constraints = [
            models.UniqueConstraint(fields=["assignment", "number"], name="training_attempt_number"),
        ]

    def __str__(self) -> str:
        return f"{self.assignment} #{self.number}"


class Rating(models.Model):
    """The trainee's evaluation of a course they completed (培训评估): 1–5 and a comment."""

    assignment = models.OneToOneField(Assignment, models.CASCADE, related_name="rating")
    stars = models.PositiveSmallIntegerField(_("rating"))
    comment = models.TextField(_("comment"), blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("course rating")
        verbose_name_plural = _("course ratings")

    def __str__(self) -> str:
        return f"{self.assignment} ★{self.stars}"


class SessionStatus(models.TextChoices):
    PLANNED = "planned", _("Planned")
    HELD = "held", _("Held")
    CANCELLED = "cancelled", _("Cancelled")


class Session(models.Model):
    """A classroom session of a course (培训实施): when and where, who trains, how many may enrol; once held, its
    record — the materials used and the trainer's note; the attendance is on the enrolments."""

    course = models.ForeignKey(Course, models.CASCADE, related_name="sessions", verbose_name=_("course"))
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))
    place = models.CharField(_("place"), max_length=200)
    trainer = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("trainer")
    )
    trainer_name = models.CharField(_("external trainer"), max_length=100, blank=True)
    capacity = models.PositiveSmallIntegerField(_("capacity"))
    status = models.CharField(
        _("status"), max_length=10, choices=SessionStatus.choices, default=SessionStatus.PLANNED
    )
    cancel_reason = models.TextField(_("reason for cancelling"), blank=True)
    notes = models.TextField(_("notes"), blank=True)  # for the trainees: what to bring, the way in
    materials_used = models.TextField(_("materials used"), blank=True)
    trainer_note = models.TextField(_("trainer's note"), blank=True)
    reminded_at = models.DateTimeField(_("reminded the day before"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        ordering = ["starts_at", "id"]
        verbose_name = _("classroom session")
        verbose_name_plural = _("classroom sessions")

    def __str__(self) -> str:
        return f"{self.course} {timezone.localtime(self.starts_at):%Y-%m-%d %H:%M}"

    @property
    def trainer_display(self) -> str:
        if self.trainer_id:
            return self.trainer.display_name or self.trainer.get_username()
        return self.trainer_name


class Presence(models.TextChoices):
    PRESENT = "present", _("Present")
    ABSENT = "absent", _("Absent")
    EXCUSED = "excused", _("Excused")


class Enrolment(models.Model):
    """A trainee's place in a session, from their assignment of the course; the attendance taken there (empty
    until taken). Marking someone present records the assignment's attendance (training.record_attendance)."""

    session = models.ForeignKey(Session, models.CASCADE, related_name="enrolments", verbose_name=_("session"))
    assignment = models.ForeignKey(
        Assignment, models.CASCADE, related_name="enrolments", verbose_name=_("training assignment")
    )
    enrolled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    enrolled_at = models.DateTimeField(_("enrolled"), default=timezone.now)
    attendance = models.CharField(_("attendance"), max_length=10, choices=Presence.choices, blank=True)

    class Meta:
        ordering = ["session", "id"]
        verbose_name = _("session enrolment")
        verbose_name_plural = _("session enrolments")
        constraints = [
            models.UniqueConstraint(fields=["session", "assignment"], name="training_enrolment_once"),
        ]

    def __str__(self) -> str:
        return f"{self.session} — {self.assignment.user}"


class WaitingEntry(models.Model):
    """A place on a full session's waiting list (候补名单), from the trainee's assignment of the course. When a place
    frees (a withdrawal, a higher capacity) the first on the list whose course is still open is enrolled at once
    and told; the entry goes. classroom.join_waiting_list, classroom._promote."""

    session = models.ForeignKey(Session, models.CASCADE, related_name="waiting", verbose_name=_("session"))
    assignment = models.ForeignKey(
        Assignment, models.CASCADE, related_name="waiting", verbose_name=_("training assignment")
    )
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    added_at = models.DateTimeField(_("on the waiting list since"), default=timezone.now)

    class Meta:
        ordering = ["session", "added_at", "id"]
        verbose_name = _("waiting-list entry")
        verbose_name_plural = _("waiting-list entries")
        constraints = [
            models.UniqueConstraint(fields=["session", "assignment"], name="training_waiting_once"),
        ]

    def __str__(self) -> str:
        return f"{self.session} — {self.assignment.user}"


class Certificate(models.Model):
    """A training certificate (培训合格证书), issued when an assignment is completed, numbered PX-YYYY-NNNNN per
    Beijing year without gaps; valid until the completion's expiry (the course's months); revocable."""

    number = models.CharField(_("number"), max_length=20, unique=True)
    assignment = models.OneToOneField(
        Assignment, models.CASCADE, related_name="certificate", verbose_name=_("training assignment")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.CASCADE, related_name="training_certificates", verbose_name=_("trainee")
    )
    course = models.ForeignKey(Course, models.CASCADE, related_name="certificates", verbose_name=_("course"))
    score = models.PositiveSmallIntegerField(_("score"), null=True, blank=True)
    issued_on = models.DateField(_("issued"))
    expires_on = models.DateField(_("valid until"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoke_reason = models.TextField(_("reason for revoking"), blank=True)

    class Meta:
        ordering = ["-issued_on", "-id"]
        verbose_name = _("training certificate")
        verbose_name_plural = _("training certificates")

    def __str__(self) -> str:
        return self.number
