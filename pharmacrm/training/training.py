"""The staff training system (培训体系, seed 000 ch. 7): who may do what, courses and their question bank, assignments,
the test scored on the server, attendance, ratings, the reminders and refreshers of the worker, the results matrix
and the figures of a course — its effect on the trainees' service performance included. docs/training.md.

Definitions:

- an assignment is *done* when completed (a test passed, or attendance recorded by a trainer) and not expired;
  *expired* once the day after its `expires_on` has come (completion day + the course's months, less a day: a GSP
  course passed on 15 March 2026 with 12 months is valid until 14 March 2027); *overdue* when open after its due
  date; *due* when open otherwise;
- a test's score is the share of questions answered exactly right, in percent rounded half up: a multiple-choice
  question is right only when the options chosen are exactly the correct ones (a partial answer is wrong); the test
  is passed when the score reaches the pass mark (80 and a pass mark of 80: passed);
- the effect on performance compares the service figures of each trainee's tickets received in the N days before
  their completion with those received in the N days after — a correlation, not proof."""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import Avg, Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import access, audit
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry, Team, User
from pharmacrm.core.numbers import PERCENT_MARKS, typed_decimal
from pharmacrm.core.roles import Cap, Role
from pharmacrm.customers.services import ConflictError

from .models import (
    Assignment,
    Attempt,
    Category,
    Course,
    CourseStatus,
    Material,
    Method,
    Question,
    QuestionKind,
    Rating,
)

A = AuditEntry.Action
REMIND_DAYS_BEFORE = 3  # the reminder before the due date
REFRESH_DAYS_BEFORE = 30  # a refresher is assigned this many days before the completion expires
TITLE_MAX = 200
MAX_QUESTIONS = 200
MAX_OPTIONS = 10
EFFECT_DAYS = (30, 60, 90)
TRUE_FALSE_OPTIONS = (("对", "错"), ("正确", "错误"), ("對", "錯"), ("true", "false"), ("yes", "no"))


class SystemActor:
    is_authenticated = False

    def __init__(self, name: str) -> None:
        self.name = name


WORKER = SystemActor("worker")


# --- who ---------------------------------------------------------------------------------------------------


def may_manage(user) -> bool:
    return access.can(user, Cap.MANAGE_TRAINING)


def may_take(user) -> bool:
    return access.can(user, Cap.TAKE_TRAINING)


def may_see_figures(user) -> bool:
    return access.can(user, Cap.VIEW_TRAINING_FIGURES)


def led_team_ids(user) -> list[int]:
    if not getattr(user, "is_authenticated", False):
        return []
    cached = getattr(user, "_training_led", None)
    if cached is None:
        cached = list(Team.objects.filter(lead=user).order_by("name").values_list("id", flat=True))
        user._training_led = cached
    return cached


@dataclass
class Scope:
    """Whose results the user sees: everyone, the members of the teams they lead, or nobody but themselves."""

    everything: bool = False
    team_ids: list[int] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "all" if self.everything else "teams"


def results_scope(user) -> Scope:
    """Administrators, managers and auditors: everyone; a team lead: the members of the teams they lead.
    PermissionDenied for the rest (analysts see the figures, never a person's row)."""
    if access.can(user, Cap.VIEW_TRAINING_RESULTS):
        return Scope(everything=True)
    led = led_team_ids(user) if access.roles_of(user) else []
    if led:
        return Scope(team_ids=led)
    raise PermissionDenied(_("Training results are for managers, administrators, auditors and team leads."))


def may_see_results(user) -> bool:
    try:
        results_scope(user)
    except PermissionDenied:
        return False
    return True


def people_in(scope: Scope):
    qs = User.objects.filter(is_active=True)
    if not scope.everything:
        qs = qs.filter(teams__in=scope.team_ids).distinct()
    return qs


def may_open_courses(user) -> bool:
    return may_take(user) or may_manage(user) or may_see_figures(user) or may_see_results(user)


def courses_for(user):
    """Managers see every course; everyone else who may open the training pages the published ones, and the
    archived ones they were assigned."""
    if may_manage(user) or access.can(user, Cap.VIEW_TRAINING_RESULTS):
        return Course.objects.all()
    if not may_open_courses(user):
        raise PermissionDenied(_("You do not have permission to do this."))
    return Course.objects.filter(
        Q(status=CourseStatus.PUBLISHED) | Q(status=CourseStatus.ARCHIVED, assignments__user=user)
    ).distinct()


def require_manage(user) -> None:
    if not may_manage(user):
        raise PermissionDenied(_("Only managers and administrators create and assign training courses."))


# --- dates -----------------------------------------------------------------------------------------------


def add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def expiry(course: Course, completed: dt.datetime) -> dt.date | None:
    """The last day a completion is valid: the completion day (Beijing) + the course's months, less a day."""
    if not course.valid_months:
        return None
    day = timezone.localdate(completed)
    return add_months(day, course.valid_months) - dt.timedelta(days=1)


class State:
    DONE = "done"
    DUE = "due"
    OVERDUE = "overdue"
    EXPIRED = "expired"


STATE_LABELS = {
    State.DONE: gettext_lazy("Done"),
    State.DUE: gettext_lazy("Due"),
    State.OVERDUE: gettext_lazy("Overdue"),
    State.EXPIRED: gettext_lazy("Expired"),
}


def state(a: Assignment, today: dt.date | None = None) -> str:
    today = today or timezone.localdate()
    if a.completed_at is not None:
        return State.EXPIRED if a.expires_on is not None and today > a.expires_on else State.DONE
    return State.OVERDUE if today > a.due_date else State.DUE


# --- the question bank ------------------------------------------------------------------------------------
# As typed in the course form, one block per question:
#
#   ? 本品的储存条件是？            (a single-choice question; "??" a multiple-choice one)
#   - 常温
#   * 2–8℃冷藏                    (* marks a correct option)
#   - 冷冻
#
# A single-choice question with the two options 对 / 错 (正确 / 错误, true / false) is a true-or-false question.


def parse_questions(text: str) -> list[dict]:
    """The questions of the text; ValidationError on "questions" naming the line and the reason otherwise."""
    questions: list[dict] = []
    errors: list[str] = []

    def fail(line_no: int, reason: str) -> None:
        errors.append(_("Line %(line)s: %(reason)s") % {"line": line_no, "reason": reason})

    current: dict | None = None
    for no, raw in enumerate(str(text or "").replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("?") or line.startswith("？"):
            multiple = line[1:2] in ("?", "？")
            body = line[2 if multiple else 1 :].strip()
            if not body:
                fail(no, _("the question has no text."))
            current = {"line": no, "text": body, "multiple": multiple, "options": [], "correct": []}
            questions.append(current)
        elif line[0] in "-*＊":
            if current is None:
                fail(no, _("an option before any question (start a question with “?”)."))
                continue
            option = line[1:].strip()
            if not option:
                fail(no, _("the option has no text."))
            if line[0] in "*＊":
                current["correct"].append(len(current["options"]))
            current["options"].append(option)
        else:
            fail(no, _("start a question with “?” (“??” for multiple choice), an option with “-”, a correct option "
                       "with “*”."))  # fmt: skip
    out = []
    for q in questions:
        n = len(q["options"])
        if n < 2:
            fail(q["line"], _("a question needs at least two options."))
        elif n > MAX_OPTIONS:
            fail(q["line"], _("a question has at most %(n)s options.") % {"n": MAX_OPTIONS})
        elif not q["correct"]:
            fail(q["line"], _("mark the correct option with “*”."))
        elif not q["multiple"] and len(q["correct"]) > 1:
            fail(
                q["line"],
                _("a single-choice question has one correct option (“??” makes a multiple-choice one)."),
            )
        kind = QuestionKind.MULTIPLE if q["multiple"] else QuestionKind.SINGLE
        if not q["multiple"] and tuple(o.lower() for o in q["options"]) in TRUE_FALSE_OPTIONS:
            kind = QuestionKind.TRUE_FALSE
        out.append(
            {"kind": kind, "text": q["text"], "options": q["options"], "correct": sorted(q["correct"])}
        )
    if len(out) > MAX_QUESTIONS:
        errors.append(_("At most %(n)s questions.") % {"n": MAX_QUESTIONS})
    if errors:
        raise ValidationError({"questions": errors})
    return out


def questions_text(course: Course) -> str:
    blocks = []
    for q in course.questions.all():
        head = ("?? " if q.kind == QuestionKind.MULTIPLE else "? ") + q.text
        lines = [head] + [("* " if i in q.correct else "- ") + o for i, o in enumerate(q.options)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# --- courses -----------------------------------------------------------------------------------------------

COURSE_FIELDS = ("title", "category", "description", "audience_roles", "mandatory", "hours", "valid_months",
                 "pass_mark", "max_attempts", "status")  # fmt: skip


def _one_line(value) -> str:
    """A title as typed: spaces of every kind (the full-width one too) collapsed, NUL bytes dropped (PostgreSQL refuses
    them: a title pasted with one failed with a server error, as the description, the comments and notes do not)."""
    return re.sub(r"\s+", " ", str(value or "").replace("\x00", "")).strip()


def _clean_course(data: dict) -> tuple[dict, list[Team], list[dict] | None]:
    errors: dict[str, list[str]] = {}
    out: dict = {}
    title = _one_line(data.get("title"))
    if not title:
        errors["title"] = [_("A course needs a title.")]
    elif len(title) > TITLE_MAX:
        errors["title"] = [_("At most %(n)s characters.") % {"n": TITLE_MAX}]
    out["title"] = title
    category = data.get("category") or Category.PRODUCT
    if category not in Category.values:
        errors["category"] = [_("Not a category.")]
    out["category"] = category
    out["description"] = str(data.get("description") or "").replace("\x00", "").strip()
    roles = data.get("audience_roles") or []
    if isinstance(roles, str):
        roles = [roles]
    bad = [r for r in roles if r not in Role.values]
    if bad:
        errors["audience_roles"] = [_("Not a role: %(roles)s.") % {"roles": ", ".join(map(str, bad))}]
    out["audience_roles"] = sorted(set(r for r in roles if r in Role.values))
    out["mandatory"] = bool(data.get("mandatory"))

    def number(name: str, low, high, *, decimal: bool = False, blank_ok: bool = False, marks: tuple[str, ...] = ()):
        raw = data.get(name)
        if raw in (None, "") and blank_ok:
            return None
        # as core.numbers reads a typed number: ８．５ from an input method in full-width mode is 8.5, 1,000 is 1000,
        # 80% of the pass mark (in percent) is 80; 1_000, 1e2 and Arabic-Indic ٨٠ — which Decimal() and int() read —
        # are none
        value = None if isinstance(raw, bool) else typed_decimal(raw if raw is not None else "", *marks)
        if value is None or (not decimal and value != value.to_integral_value()):
            errors[name] = [_("Enter a number.")]
            return None
        value = value if decimal else int(value)
        if not low <= value <= high:  # the range first: quantizing a huge number fails (InvalidOperation)
            errors[name] = [_("Between %(low)s and %(high)s.") % {"low": low, "high": high}]
            return None
        if decimal and value != value.quantize(Decimal("0.1")):
            errors[name] = [_("At most one decimal place.")]
            return None
        return value

    out["hours"] = number("hours", Decimal("0.5"), Decimal("1000"), decimal=True)
    out["valid_months"] = number("valid_months", 1, 120, blank_ok=True)
    out["pass_mark"] = number("pass_mark", 1, 100, marks=PERCENT_MARKS)
    out["max_attempts"] = number("max_attempts", 1, 20)
    status = data.get("status") or CourseStatus.DRAFT
    if status not in CourseStatus.values:
        errors["status"] = [_("Not a status.")]
    out["status"] = status
    teams = []
    team_ids = data.get("audience_teams") or []
    if team_ids:
        try:
            ids = {int(t.pk if isinstance(t, Team) else t) for t in team_ids}
        except (TypeError, ValueError):
            ids = set()
            errors["audience_teams"] = [_("Not a team.")]
        if not all(0 < i < 2**63 for i in ids):  # a longer id failed in the database (500)
            ids = set()
            errors["audience_teams"] = [_("Not a team.")]
        teams = list(Team.objects.filter(pk__in=ids).order_by("name"))
        if len(teams) != len(ids) and "audience_teams" not in errors:
            errors["audience_teams"] = [_("Not a team.")]
    questions = None
    if "questions" in data and data["questions"] is not None:
        try:
            questions = parse_questions(data["questions"])
        except ValidationError as e:
            errors.update(e.message_dict)
    if errors:
        raise ValidationError(errors)
    return out, teams, questions


def _snapshot(course: Course) -> dict:
    snap = {f: getattr(course, f) for f in COURSE_FIELDS}
    snap["audience_teams"] = sorted(course.audience_teams.values_list("name", flat=True)) if course.pk else []
    return snap


def save_course(user, course: Course | None, data: dict, version: int | None = None) -> Course:
    """Create (course None) or change a course, its audience and its question bank (`questions`, the text), all
    or nothing and audited. A change names the version loaded: ConflictError if someone saved since."""
    require_manage(user)
    values, teams, questions = _clean_course(data)
    with transaction.atomic():
        if course is None:
            course = Course(created_by=user, **values)
            course.save(force_insert=True)
            before: dict = {}
            action = A.CREATE
        else:
            locked = Course.objects.select_for_update().get(pk=course.pk)
            if version is None or not is_id(version) or locked.version != int(version):
                raise ConflictError(locked.version)
            course = locked
            before = _snapshot(course)
            before["questions"] = questions_text(course) if questions is not None else None
            for k, v in values.items():
                setattr(course, k, v)
            course.version += 1
            course.updated_at = timezone.now()
            course.save()
            action = A.UPDATE
        course.audience_teams.set(teams)
        after = _snapshot(course)
        if questions is not None:
            course.questions.all().delete()
            Question.objects.bulk_create(
                [Question(course=course, position=i, **q) for i, q in enumerate(questions, start=1)]
            )
            after["questions"] = questions_text(course)
            if before.get("questions") is None and action == A.UPDATE:
                before.pop("questions", None)
        changes = audit.diff(before, after)
        if changes or action == A.CREATE:
            audit.record(action, course, user=user, changes=changes)
    return course


# --- materials ---------------------------------------------------------------------------------------------

PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
PPTX_MAIN = "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"


def material_types() -> dict[str, tuple[str, ...]]:
    from pharmacrm.servicedesk import attachments as att

    return {att.PDF: (".pdf",), att.PNG: (".png",), att.JPEG: (".jpg", ".jpeg"), att.DOCX: (".docx",),
            att.XLSX: (".xlsx",), PPTX: (".pptx",)}  # fmt: skip


def _sniff(data: bytes) -> str | None:
    from pharmacrm.servicedesk import attachments as att

    kind = att.sniff(data)
    if kind is None and data.startswith(b"PK\x03\x04"):  # a presentation (the ticket files know no .pptx)
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                info = z.getinfo("[Content_Types].xml")
                if info.file_size <= 1_000_000 and PPTX_MAIN in z.read(info).decode("utf-8", "replace"):
                    return PPTX
        except (KeyError, zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError):
            return None
    return kind


def check_material(name: str, data: bytes) -> tuple[str, str]:
    """(clean name, content type) of an acceptable course file — the ticket files' checks: by content, its
    extension matching, within ATTACHMENT_MAX_BYTES; ValidationError on "file" naming the file otherwise."""
    from django.template.defaultfilters import filesizeformat

    from pharmacrm.servicedesk import attachments as att

    display = att.clean_name(name)
    types = material_types()

    def refuse(reason: str) -> ValidationError:
        return ValidationError({"file": [_("“%(name)s”: %(reason)s") % {"name": display, "reason": reason}]})

    if not data:
        raise refuse(_("the file is empty."))
    if len(data) > settings.ATTACHMENT_MAX_BYTES:
        raise refuse(_("the file is larger than the limit of %(max)s.")
                     % {"max": filesizeformat(settings.ATTACHMENT_MAX_BYTES)})  # fmt: skip
    kind = _sniff(data)
    ext = att._extension(display)
    allowed = sorted({e for exts in types.values() for e in exts})
    if kind not in types or ext not in allowed:
        raise refuse(
            _("this kind of file is not accepted (allowed: %(types)s).") % {"types": ", ".join(allowed)}
        )
    if ext not in types[kind]:
        raise refuse(_("the content does not match the file name's extension (the file is %(ext)s).")
                     % {"ext": " / ".join(types[kind])})  # fmt: skip
    return display, kind


def add_material(user, course: Course, *, title: str = "", upload=None, url: str = "") -> Material:
    """A file (checked) or a link added to a course, audited."""
    require_manage(user)
    title = _one_line(title)[:TITLE_MAX]
    url = str(url or "").strip()
    if upload is None and not url:
        raise ValidationError({"file": [_("Choose a file or give a link.")]})
    if upload is not None and url:
        raise ValidationError({"url": [_("Give either a file or a link, not both.")]})
    material = Material(course=course, uploaded_by=user)
    if url:
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            raise ValidationError(
                {"url": [_("Enter a web address starting with http:// or https://.")]}
            ) from None
        if len(url) > 500:
            raise ValidationError({"url": [_("At most %(n)s characters.") % {"n": 500}]})
        material.url, material.title = url, title or url[:TITLE_MAX]
        with transaction.atomic():
            material.save(force_insert=True)
            audit.record(
                A.CREATE, material, user=user, changes={"course": [None, course.pk], "url": [None, url]}
            )
        return material
    size = getattr(upload, "size", None)
    if size is not None and size > settings.ATTACHMENT_MAX_BYTES:
        data = b"x" * (settings.ATTACHMENT_MAX_BYTES + 1)  # refused by size without reading it
    else:
        upload.seek(0)
        data = upload.read(settings.ATTACHMENT_MAX_BYTES + 1)
    display, kind = check_material(getattr(upload, "name", ""), data)
    material.title = title or display
    material.content_type, material.size = kind, len(data)
    material.sha256 = hashlib.sha256(data).hexdigest()
    material.file.save(display, ContentFile(data), save=False)
    try:
        with transaction.atomic():
            material.save(force_insert=True)
            audit.record(A.CREATE, material, user=user, changes={
                "course": [None, course.pk], "name": [None, display], "size": [None, len(data)],
                "sha256": [None, material.sha256],
            })  # fmt: skip
    except Exception:
        material.file.delete(save=False)
        raise
    return material


def remove_material(user, material: Material) -> None:
    require_manage(user)
    with transaction.atomic():
        audit.record(A.DELETE, material, user=user, changes={"course": [material.course_id, None]})
        stored = material.file.name
        material.delete()
    if stored:
        transaction.on_commit(lambda: material.file.storage.delete(stored))


def may_open_course(user, course: Course) -> bool:
    try:
        return courses_for(user).filter(pk=course.pk).exists()
    except PermissionDenied:
        return False


# --- assignments ----------------------------------------------------------------------------------------


def audience(course: Course):
    """The active users the course is for: its roles and teams (either); nobody when it names neither."""
    q = Q(pk__in=[])
    if course.audience_roles:
        q |= Q(groups__name__in=course.audience_roles)
    team_ids = list(course.audience_teams.values_list("id", flat=True))
    if team_ids:
        q |= Q(teams__in=team_ids)
    return User.objects.filter(q, is_active=True).distinct()


def chosen_users(*, roles=(), teams=(), users=()) -> list[User]:
    """The active users of the roles, teams and names given (either), in name order."""
    q = Q(pk__in=[])
    bad = [r for r in roles if r not in Role.values]
    if bad:
        raise ValidationError({"roles": [_("Not a role: %(roles)s.") % {"roles": ", ".join(map(str, bad))}]})
    if roles:
        q |= Q(groups__name__in=list(roles))
    def ids(values, model, name: str, message: str) -> list[int]:
        # an id longer than the database's reached it and failed there (500); a bad team was named "Not a user."
        try:
            out = [int(v.pk if isinstance(v, model) else v) for v in values]
        except (TypeError, ValueError):
            out = [0]
        if not all(0 < i < 2**63 for i in out):
            raise ValidationError({name: [message]})
        return out

    team_ids = ids(teams, Team, "teams", _("Not a team."))
    user_ids = ids(users, User, "users", _("Not a user."))
    if team_ids:
        if Team.objects.filter(pk__in=team_ids).count() != len(set(team_ids)):
            raise ValidationError({"teams": [_("Not a team.")]})
        q |= Q(teams__in=team_ids)
    if user_ids:
        if User.objects.filter(pk__in=user_ids, is_active=True).count() != len(set(user_ids)):
            raise ValidationError({"users": [_("No such active user.")]})
        q |= Q(pk__in=user_ids)
    return list(User.objects.filter(q, is_active=True).distinct().order_by("username"))


def assign(user, course: Course, people: list[User], due_date: dt.date, *, today: dt.date | None = None,
           actor=None) -> tuple[list[Assignment], int]:  # fmt: skip
    """Assign the course to each person who has no open assignment of it; (the new assignments, how many already
    had one). Audited, one entry per assignment, all or nothing. `actor`: the worker's refreshers."""
    if actor is None:
        require_manage(user)
    today = today or timezone.localdate()
    errors = {}
    if course.status != CourseStatus.PUBLISHED:
        errors["course"] = [_("Only a published course is assigned.")]
    if not isinstance(due_date, dt.date):
        errors["due_date"] = [_("Enter a date.")]
    elif due_date < today:
        errors["due_date"] = [_("The due date cannot be in the past.")]
    if not people:
        errors["users"] = [_("Choose whom to assign the course to: roles, teams or people.")]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        Course.objects.select_for_update().filter(
            pk=course.pk
        ).first()  # two managers assigning at once: in turn
        open_ids = set(
            Assignment.objects.filter(course=course, completed_at__isnull=True, user__in=people).values_list(
                "user_id", flat=True
            )
        )
        new = [Assignment(course=course, user=p, assigned_by=user if actor is None else None, due_date=due_date)
               for p in people if p.pk not in open_ids]  # fmt: skip
        for a in new:
            a.save(force_insert=True)
        audit.record_many(
            A.CREATE,
            [
                (a, {"course": [None, course.pk], "user": [None, a.user_id], "due_date": [None, due_date]})
                for a in new
            ],  # fmt: skip
            user=user if actor is None else actor,
        )
    return new, len(open_ids)


def my_assignments(user):
    return (
        Assignment.objects.filter(user=user)
        .select_related("course")
        .prefetch_related("attempts")
        .order_by("completed_at", "due_date", "id")
    )


def assignments_for(user):
    """The assignments the user may read: theirs; their teams' members' (a team lead); every one (results)."""
    try:
        scope = results_scope(user)
    except PermissionDenied:
        return Assignment.objects.filter(user=user)
    if scope.everything:
        return Assignment.objects.all()
    return Assignment.objects.filter(Q(user=user) | Q(user__teams__in=scope.team_ids)).distinct()


# --- the test -------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    attempt: Attempt
    assignment: Assignment
    attempts_left: int


def score_answers(questions: list[Question], answers: dict) -> tuple[int, int]:
    """(right, total): a question is right when the options chosen are exactly its correct ones."""
    right = 0
    for q in questions:
        chosen = answers.get(q.pk)
        if (
            chosen is not None
            and sorted(set(chosen)) == sorted(q.correct)
            and len(chosen) == len(set(chosen))
        ):
            right += 1
    return right, len(questions)


def percent(right: int, total: int) -> int:
    if not total:
        return 0
    return int((Decimal(100) * right / total).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _clean_answers(questions: list[Question], answers) -> dict[int, list[int]]:
    """{question id: [option indexes]} from what was sent ({"12": [0, 2]} or {"12": 1}); a question left out is
    unanswered. ValidationError on "answers" naming the question for one not of this test or an option it lacks."""
    if not isinstance(answers, dict):
        raise ValidationError({"answers": [_("Send the answers as question → chosen options.")]})
    by_id = {q.pk: (i, q) for i, q in enumerate(questions, start=1)}
    out: dict[int, list[int]] = {}
    errors = []
    for key, value in answers.items():
        try:
            qid = int(str(key).strip())
        except ValueError:
            qid = None
        if qid not in by_id:
            errors.append(_("“%(key)s” is not a question of this test.") % {"key": str(key)[:20]})
            continue
        number, q = by_id[qid]
        values = value if isinstance(value, list) else [value]
        chosen = []
        for v in values:
            try:
                index = int(str(v).strip()) if not isinstance(v, bool) else None
            except ValueError:
                index = None
            if index is None or not 0 <= index < len(q.options):
                errors.append(
                    _("Question %(n)s has no option “%(value)s”.") % {"n": number, "value": str(v)[:20]}
                )
                break
            chosen.append(index)
        else:
            if q.kind != QuestionKind.MULTIPLE and len(chosen) > 1:
                errors.append(_("Question %(n)s takes one answer.") % {"n": number})
            else:
                out[qid] = chosen
    if errors:
        raise ValidationError({"answers": errors})
    return out


def submit(user, assignment_id: int, answers) -> Outcome:
    """Score a test attempt on the server and keep it: the assignment must be the user's own, open (not yet
    passed) and within the attempts allowed; passing completes it (with its expiry). Audited."""
    if not may_take(user):
        raise PermissionDenied(_("You do not have permission to do this."))
    with transaction.atomic():
        a = (
            Assignment.objects.select_for_update().select_related("course")
            .filter(pk=assignment_id, user=user).first()
        )  # fmt: skip
        if a is None:
            raise PermissionDenied(_("This course is not assigned to you."))
        course = a.course
        if a.completed_at is not None:
            raise ValidationError({"answers": [_("You have completed this course already.")]})
        if course.status != CourseStatus.PUBLISHED:
            raise ValidationError(
                {"answers": [_("This course is not open for tests (it is not published).")]}
            )
        questions = list(course.questions.all())
        if not questions:
            raise ValidationError(
                {"answers": [_("This course has no test: the trainer records your attendance.")]}
            )
        used = a.attempts.count()
        if used >= course.max_attempts:
            raise ValidationError({"answers": [
                _("You have used all %(n)s attempts allowed; ask your manager to assign the course again.")
                % {"n": course.max_attempts}]})  # fmt: skip
        chosen = _clean_answers(questions, answers)
        right, total = score_answers(questions, chosen)
        score = percent(right, total)
        passed = score >= course.pass_mark
        now = timezone.now()
        attempt = Attempt.objects.create(
            assignment=a, number=used + 1, submitted_at=now, answers={str(k): v for k, v in chosen.items()},
            correct=right, total=total, score=score, passed=passed,
        )  # fmt: skip
        changes = {"attempt": [None, attempt.number], "score": [None, score], "passed": [None, passed]}
        if passed:
            a.completed_at, a.method, a.score = now, Method.TEST, score
            a.expires_on = expiry(course, now)
            a.version += 1
            a.save(update_fields=["completed_at", "method", "score", "expires_on", "version"])
            changes["completed_at"] = [None, now]
            changes["expires_on"] = [None, a.expires_on]
        audit.record(A.UPDATE, a, user=user, changes=changes)
        if passed:
            from .classroom import issue_certificate

            issue_certificate(a, user)
    return Outcome(attempt, a, course.max_attempts - attempt.number)


def record_attendance(user, assignment: Assignment, *, score: int | None = None) -> Assignment:
    """A trainer (a manager) records that the person attended a classroom session: the assignment is completed
    without a test, and its certificate issued. Audited. (A session's attendance, classroom.take_attendance, ends
    here too.)"""
    require_manage(user)
    if score is not None and not 0 <= int(score) <= 100:
        raise ValidationError({"score": [_("Between %(low)s and %(high)s.") % {"low": 0, "high": 100}]})
    return complete_by_attendance(user, assignment, score=score)


def complete_by_attendance(user, assignment: Assignment, *, score: int | None = None) -> Assignment:
    """The completion by attendance, for a caller that has checked who may record it."""
    from .classroom import issue_certificate

    with transaction.atomic():
        a = Assignment.objects.select_for_update().select_related("course").get(pk=assignment.pk)
        if a.completed_at is not None:
            raise ValidationError({"user": [_("%(name)s has completed this course already.")
                                            % {"name": a.user.display_name or a.user.get_username()}]})  # fmt: skip
        now = timezone.now()
        a.completed_at, a.method, a.score = now, Method.ATTENDANCE, score
        a.expires_on = expiry(a.course, now)
        a.version += 1
        a.save(update_fields=["completed_at", "method", "score", "expires_on", "version"])
        audit.record(A.UPDATE, a, user=user, changes={"completed_at": [None, now], "method": [None, Method.ATTENDANCE],
                                                      "expires_on": [None, a.expires_on]})  # fmt: skip
        issue_certificate(a, user)
    return a


def rate(user, assignment_id: int, stars, comment: str = "") -> Rating:
    """The trainee's rating of a course they completed, once. Audited."""
    if not may_take(user):
        raise PermissionDenied(_("You do not have permission to do this."))
    try:
        stars = int(str(stars).strip())
    except (TypeError, ValueError):
        stars = 0
    if not 1 <= stars <= 5:
        raise ValidationError({"stars": [_("Rate from 1 to 5.")]})
    comment = str(comment or "").replace("\x00", "").strip()[:2000]
    with transaction.atomic():
        a = Assignment.objects.select_for_update().filter(pk=assignment_id, user=user).first()
        if a is None:
            raise PermissionDenied(_("This course is not assigned to you."))
        if a.completed_at is None:
            raise ValidationError({"stars": [_("Rate a course once you have completed it.")]})
        if Rating.objects.filter(assignment=a).exists():
            raise ValidationError({"stars": [_("You have rated this course already.")]})
        try:
            with transaction.atomic():
                r = Rating.objects.create(assignment=a, stars=stars, comment=comment)
        except IntegrityError:
            raise ValidationError({"stars": [_("You have rated this course already.")]}) from None
        audit.record(A.CREATE, r, user=user, changes={"stars": [None, stars], "comment": [None, comment]})
    return r


# --- the worker: reminders and refreshers ------------------------------------------------------------------

REMINDER_KIND = "training.reminder"


def remind(today: dt.date | None = None) -> dict:
    """The morning job (`remind_training`): each open assignment is reminded once, REMIND_DAYS_BEFORE days before
    its due date (or on the day it is assigned, if later), and once when it becomes overdue (bell and e-mail in the
    trainee's language); a completion about to expire gets its refresher assigned (due on the last valid day).
    Returns the counts. Repeated runs send nothing twice (the reminded stamps)."""
    from django.urls import reverse

    from pharmacrm.core.deferred import Message
    from pharmacrm.notify import services as notify

    today = today or timezone.localdate()
    now = timezone.now()
    url = reverse("training:mine")
    counts = {"due": 0, "overdue": 0, "refreshers": 0}
    # refreshers first: a completion expiring within REFRESH_DAYS_BEFORE days, of a published course, whose person
    # has neither an open assignment nor a later completion of it
    expiring = (
        Assignment.objects.filter(completed_at__isnull=False, expires_on__isnull=False,
                                  expires_on__lte=today + dt.timedelta(days=REFRESH_DAYS_BEFORE),
                                  course__status=CourseStatus.PUBLISHED, user__is_active=True)
        .select_related("course", "user").order_by("id")
    )  # fmt: skip
    for a in expiring:
        later = Assignment.objects.filter(course=a.course, user=a.user).filter(
            Q(completed_at__isnull=True) | Q(completed_at__gt=a.completed_at)
        )
        if later.exists():
            continue
        due = max(a.expires_on, today + dt.timedelta(days=REMIND_DAYS_BEFORE))
        with transaction.atomic():
            new, _had = assign(None, a.course, [a.user], due, today=today, actor=WORKER)
            if new:
                notify.send([a.user], kind=REMINDER_KIND, url=url, obj=new[0],
                            title=Message(gettext_lazy("Refresher training: %(course)s, by %(due)s"),
                                          course=a.course.title, due=due.isoformat()),
                            body=Message(gettext_lazy("Your completion of this course is valid until %(until)s; "
                                                      "take it again by the due date."),
                                         until=a.expires_on.isoformat()))  # fmt: skip
                counts["refreshers"] += 1
    open_ = Assignment.objects.filter(completed_at__isnull=True, user__is_active=True).select_related(
        "course", "user"
    )
    for kind, qs in (
        ("due", open_.filter(reminded_due_at__isnull=True, due_date__gte=today,
                             due_date__lte=today + dt.timedelta(days=REMIND_DAYS_BEFORE))),
        ("overdue", open_.filter(reminded_overdue_at__isnull=True, due_date__lt=today)),
    ):  # fmt: skip
        for a in qs.order_by("id"):
            stamp = "reminded_due_at" if kind == "due" else "reminded_overdue_at"
            with transaction.atomic():
                # the stamp first, conditionally: two runs at once remind once
                if not Assignment.objects.filter(pk=a.pk, **{f"{stamp}__isnull": True}).update(
                    **{stamp: now}
                ):
                    continue
                if (
                    kind == "overdue" and a.reminded_due_at is None
                ):  # never a "due soon" after the overdue one
                    Assignment.objects.filter(pk=a.pk).update(reminded_due_at=now)
                if kind == "due":
                    title = Message(gettext_lazy("Training due by %(due)s: %(course)s"),
                                    due=a.due_date.isoformat(), course=a.course.title)  # fmt: skip
                else:
                    title = Message(gettext_lazy("Training overdue since %(due)s: %(course)s"),
                                    due=a.due_date.isoformat(), course=a.course.title)  # fmt: skip
                notify.send(
                    [a.user],
                    kind=REMINDER_KIND,
                    title=title,
                    url=url,
                    obj=a,
                    body=gettext_lazy("Open “My training” to read the materials and take the test."),
                )
                audit.record(A.UPDATE, a, user=WORKER, changes={stamp: [None, now]})
            counts[kind] += 1
    return counts


# --- results and figures -----------------------------------------------------------------------------------


def mandatory_courses():
    return Course.objects.filter(mandatory=True, status=CourseStatus.PUBLISHED).order_by(
        "category", "title", "id"
    )


@dataclass
class Cell:
    state: str  # done / due / overdue / expired / "" (not assigned)
    assignment: Assignment | None = None

    @property
    def label(self) -> str:
        return str(STATE_LABELS.get(self.state, "—"))


@dataclass
class Matrix:
    courses: list[Course]
    rows: list[tuple[User, list[Cell]]]
    scope: Scope


def latest_by(assignments) -> dict[tuple[int, int], Assignment]:
    """Per (user, course): the open assignment if there is one, else the latest completion."""
    out: dict[tuple[int, int], Assignment] = {}
    for a in assignments:
        key = (a.user_id, a.course_id)
        seen = out.get(key)
        if seen is None:
            out[key] = a
        elif seen.completed_at is not None and (a.completed_at is None or a.completed_at > seen.completed_at):
            out[key] = a
    return out


def matrix(user, *, team: Team | None = None, today: dt.date | None = None) -> Matrix:
    """People (of the user's scope, of `team`) × the mandatory published courses."""
    scope = results_scope(user)
    if team is not None and not scope.everything and team.pk not in scope.team_ids:
        raise PermissionDenied(_("You may not see this team's training results."))
    people_qs = people_in(scope)
    if team is not None:
        people_qs = people_qs.filter(teams=team)
    people = list(people_qs.order_by("username"))
    courses = list(mandatory_courses())
    latest = latest_by(Assignment.objects.filter(user__in=people, course__in=courses).order_by("id"))
    today = today or timezone.localdate()
    rows = []
    for p in people:
        cells = []
        for c in courses:
            a = latest.get((p.pk, c.pk))
            cells.append(Cell(state(a, today) if a else "", a))
        rows.append((p, cells))
    return Matrix(courses, rows, scope)


def person_rows(user, person: User, today: dt.date | None = None) -> list[tuple[Assignment, str]]:
    """Every assignment of a person, for the user who may see them (themselves, their lead, results)."""
    if person.pk != user.pk:
        scope = results_scope(user)
        if not scope.everything and not person.teams.filter(pk__in=scope.team_ids).exists():
            raise PermissionDenied(_("You may not see this person's training results."))
    today = today or timezone.localdate()
    qs = Assignment.objects.filter(user=person).select_related("course").order_by("-assigned_at", "-id")
    return [(a, state(a, today)) for a in qs]


@dataclass
class Figures:
    assigned: int = 0  # people assigned (latest assignment each)
    completed: int = 0
    completion_pct: Decimal | None = None
    attempts: int = 0
    passed_attempts: int = 0
    pass_rate: Decimal | None = None  # of the attempts
    avg_score: Decimal | None = None  # of the attempts
    ratings: int = 0
    avg_rating: Decimal | None = None
    stars: dict = field(default_factory=dict)
    comments: list = field(default_factory=list)


def _pct(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(100) * part / whole).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def figures(course: Course, *, people=None) -> Figures:
    """Completion (people with a completed, unexpired latest assignment over those assigned), the attempts' pass
    rate and average score, and the ratings. `people`: a queryset to count among (a team lead's members)."""
    assignments = Assignment.objects.filter(course=course)
    if people is not None:
        assignments = assignments.filter(user__in=people)
    today = timezone.localdate()
    latest = latest_by(assignments.order_by("id"))
    f = Figures(assigned=len(latest))
    f.completed = sum(1 for a in latest.values() if state(a, today) == State.DONE)
    f.completion_pct = _pct(f.completed, f.assigned)
    attempts = Attempt.objects.filter(assignment__in=assignments)
    agg = attempts.aggregate(n=Count("id"), ok=Count("id", filter=Q(passed=True)), avg=Avg("score"))
    f.attempts, f.passed_attempts = agg["n"], agg["ok"]
    f.pass_rate = _pct(f.passed_attempts, f.attempts)
    if agg["avg"] is not None:
        f.avg_score = Decimal(str(agg["avg"])).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    ratings = Rating.objects.filter(assignment__in=assignments)
    r = ratings.aggregate(n=Count("id"), avg=Avg("stars"))
    f.ratings = r["n"]
    if r["avg"] is not None:
        f.avg_rating = Decimal(str(r["avg"])).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    f.stars = {s: 0 for s in range(5, 0, -1)}
    for stars, n in ratings.values_list("stars").annotate(n=Count("id")).order_by():
        f.stars[stars] = n
    f.comments = list(
        ratings.exclude(comment="").order_by("-created_at").values_list("stars", "comment")[:20]
    )
    return f


@dataclass
class Effect:
    days: int
    trainees: int  # trainees counted (completed at least `days` days ago? no: any completion)
    before: object  # servicedesk.performance.Figures
    after: object
    open_windows: int  # trainees whose "after" window has not ended yet


EFFECT_MAX_TRAINEES = 300


def effect(course: Course, days: int = 30, *, people=None, now: dt.datetime | None = None) -> Effect:
    """The service figures (tickets assigned to them: CSAT, resolution, SLA met…) of the course's trainees in the
    `days` days before their completion against the `days` days after — servicedesk.performance's definitions,
    counted by its `compute`. A correlation, not proof: other things change too."""
    from pharmacrm.servicedesk import performance
    from pharmacrm.servicedesk.choices import Status
    from pharmacrm.servicedesk.models import Ticket

    now = now or timezone.now()
    span = dt.timedelta(days=days)
    done = Assignment.objects.filter(course=course, completed_at__isnull=False)
    if people is not None:
        done = done.filter(user__in=people)
    rows = list(done.order_by("-completed_at").values_list("user_id", "completed_at")[:EFFECT_MAX_TRAINEES])
    before_q, after_q = Q(pk__in=[]), Q(pk__in=[])
    for user_id, at in rows:
        before_q |= Q(assignee_id=user_id, received_at__gte=at - span, received_at__lt=at)
        after_q |= Q(assignee_id=user_id, received_at__gte=at, received_at__lt=at + span)
    base = Ticket.objects.filter(status__in=Status.values).exclude(merged_into__isnull=False)
    figures_before = performance.compute(base.filter(before_q), None, now=now, quality=False).get(0, performance.Figures())
    figures_after = performance.compute(base.filter(after_q), None, now=now, quality=False).get(0, performance.Figures())
    return Effect(
        days, len(rows), figures_before, figures_after, sum(1 for _u, at in rows if at + span > now)
    )
