"""Training pages (/training/): my training, the courses (list, page with its figures, edit, materials, assign,
attendance), taking a test and its result, and the results matrix with its Excel export. training.py decides."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pharmacrm.core import audit, downloads
from pharmacrm.core.form_saves import SENT_AGAIN
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry, Team, User
from pharmacrm.core.ordering import pinyin_sorted
from pharmacrm.core.roles import Role
from pharmacrm.customers.forms import new_once_token, once_token
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views import AlreadyCreated, _create_once, _created_with

from . import classroom, training
from .models import Assignment, Category, Course, CourseStatus, Material, QuestionKind

A = AuditEntry.Action
app_name = "training"


def _name(user) -> str:
    return user.display_name or user.get_username()


def _errors(e: ValidationError) -> dict:
    return e.message_dict if hasattr(e, "error_dict") else {"form": e.messages}


def _certificates(viewer, person) -> list:
    """A person's certificates, newest first, with their state's label (the caller checked the viewer may see)."""
    today = timezone.localdate()
    qs = classroom.certificates_for(viewer).filter(user=person).select_related("course")
    return [(c, classroom.CERT_STATE_LABELS[classroom.certificate_state(c, today)]) for c in qs]


@login_required
@require_GET
def mine(request):
    """The user's own assignments: open ones first (overdue, then by due date), then the completed ones."""
    if not training.may_open_courses(request.user):
        raise PermissionDenied(_("You do not have permission to do this."))
    today = timezone.localdate()
    rows = []
    for a in training.my_assignments(request.user):
        used = len(a.attempts.all())
        rows.append({"a": a, "state": training.state(a, today), "label": training.STATE_LABELS[training.state(a, today)],
                     "attempts_left": max(a.course.max_attempts - used, 0), "used": used,
                     "rated": hasattr(a, "rating")})  # fmt: skip
    order = {
        training.State.OVERDUE: 0,
        training.State.DUE: 1,
        training.State.EXPIRED: 2,
        training.State.DONE: 3,
    }
    rows.sort(key=lambda r: (order[r["state"]], r["a"].due_date))
    may_take = training.may_take(request.user)
    return render(request, "training/mine.html", {
        "sessions": classroom.upcoming_for(request.user) if may_take else [],
        "rows": rows, "certificates": _certificates(request.user, request.user), "may_manage": training.may_manage(request.user),
        "may_results": training.may_see_results(request.user), "may_take": training.may_take(request.user),
    })  # fmt: skip


@login_required
@require_GET
def course_list(request):
    # by status and category, then the titles in pinyin order (拼音排序), as every short list a user picks from
    courses = training.courses_for(request.user).prefetch_related("questions").order_by("status", "category", "title")
    courses = sorted(pinyin_sorted(courses), key=lambda c: (c.status, c.category))
    return render(request, "training/course_list.html", {
        "courses": courses, "may_manage": training.may_manage(request.user),
    })  # fmt: skip


def _course(request, pk: int) -> Course:
    course = training.courses_for(request.user).filter(pk=pk).first()
    if course is None:
        raise Http404(_("No such course."))
    return course


@login_required
@require_GET
def course_detail(request, pk: int):
    course = _course(request, pk)
    user = request.user
    context = {"course": course, "materials": course.materials.all(), "may_manage": training.may_manage(user),
               "questions": course.questions.count(), "roles": [Role(r).label for r in course.audience_roles],
               "teams": pinyin_sorted(course.audience_teams.all()), "material_token": new_once_token()}  # fmt: skip
    people = None
    if training.may_see_figures(user):
        context["figures_scope"] = "all"
    elif training.may_see_results(user):
        people = training.people_in(training.results_scope(user))
        context["figures_scope"] = "teams"
    if "figures_scope" in context:
        try:
            days = int(request.GET.get("days", 30))
        except ValueError:
            days = 30
        days = days if days in training.EFFECT_DAYS else 30
        context.update(figures=training.figures(course, people=people),
                       effect=training.effect(course, days, people=people), days=days,
                       day_choices=training.EFFECT_DAYS)  # fmt: skip
    if training.may_see_results(user):
        scope = training.results_scope(user)
        qs = course.assignments.select_related("user").order_by("user__username", "-id")
        if not scope.everything:
            qs = qs.filter(user__in=training.people_in(scope))
        today = timezone.localdate()
        context["assignments"] = [(a, training.STATE_LABELS[training.state(a, today)]) for a in qs[:500]]
    mine = course.assignments.filter(user=user).order_by("completed_at", "-id").first()
    context["mine"] = mine
    sessions = list(course.sessions.select_related("trainer").order_by("-starts_at")[:100])
    counts = classroom.enrolment_counts(sessions)
    context["sessions"] = [(s, counts.get(s.pk, 0)) for s in sessions]
    return render(request, "training/course_detail.html", context)


def _form_context(course: Course | None, data: dict | None = None, errors: dict | None = None) -> dict:
    if data is None:
        if course is None:
            data = {"category": Category.PRODUCT, "hours": "1", "pass_mark": "80", "max_attempts": "3",
                    "status": CourseStatus.DRAFT, "audience_roles": [], "audience_teams": [], "questions": "",
                    "form_token": new_once_token()}  # fmt: skip
        else:
            data = {f: getattr(course, f) for f in training.COURSE_FIELDS}
            data["audience_teams"] = [str(t) for t in course.audience_teams.values_list("id", flat=True)]
            data["questions"] = training.questions_text(course)
            data["version"] = course.version
    return {"course": course, "data": data, "errors": errors or {}, "categories": Category.choices,
            "statuses": CourseStatus.choices, "roles": Role.choices, "teams": pinyin_sorted(Team.objects.all())}  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def course_edit(request, pk: int | None = None):
    training.require_manage(request.user)
    course = get_object_or_404(Course, pk=pk) if pk else None
    if request.method == "GET":
        return render(request, "training/course_form.html", _form_context(course))
    post = request.POST
    data = {f: post.get(f, "") for f in training.COURSE_FIELDS if f != "audience_roles"}
    data["mandatory"] = post.get("mandatory") == "on"
    data["audience_roles"] = post.getlist("audience_roles")
    data["audience_teams"] = post.getlist("audience_teams")
    data["questions"] = post.get("questions", "")
    data["version"] = post.get("version", "")
    try:
        version = int(data["version"]) if course is not None else None
    except ValueError:
        version = 0
    # a new course is created once per form (its one-time token): a double click on Save made two courses
    token = data["form_token"] = once_token(post.get("form_token")) if course is None else ""
    try:
        if course is None and (done := _created_with(request.user, token)):
            raise AlreadyCreated(done)
        fields = {k: v for k, v in data.items() if k != "form_token"}
        if course is None:
            saved = _create_once(request.user, token, lambda: training.save_course(request.user, None, fields, None))
        else:
            saved = training.save_course(request.user, course, fields, version)
    except AlreadyCreated as e:
        messages.info(request, SENT_AGAIN)
        return redirect("training:course", pk=e.pk) if e.pk else redirect("training:courses")
    except ValidationError as e:
        return render(
            request, "training/course_form.html", _form_context(course, data, _errors(e)), status=400
        )
    except ConflictError as e:
        return render(request, "training/course_form.html",
                      _form_context(course, data, {"form": [str(e)]}), status=409)  # fmt: skip
    messages.success(request, _("Course saved."))
    return redirect("training:course", pk=saved.pk)


@login_required
@require_POST
def material_add(request, pk: int):
    training.require_manage(request.user)
    course = get_object_or_404(Course, pk=pk)
    token = once_token(request.POST.get("form_token"))  # added once per form: a double click added the file twice
    try:
        if _created_with(request.user, token):
            raise AlreadyCreated(None)
        _create_once(request.user, token, lambda: training.add_material(
            request.user, course, title=request.POST.get("title", ""), upload=request.FILES.get("file"),
            url=request.POST.get("url", "")))  # fmt: skip
    except AlreadyCreated:
        messages.info(request, SENT_AGAIN)
        return redirect(reverse("training:course", args=[course.pk]) + "#materials")
    except ValidationError as e:
        for name, msgs in _errors(e).items():
            label = {"file": _("File"), "url": _("Link")}.get(name, "")
            for m in msgs:
                messages.error(request, f"{label}: {m}" if label else m)
        return redirect(reverse("training:course", args=[course.pk]) + "#materials")
    messages.success(request, _("Material added."))
    return redirect(reverse("training:course", args=[course.pk]) + "#materials")


@login_required
@require_POST
def material_remove(request, pk: int):
    training.require_manage(request.user)
    material = get_object_or_404(Material, pk=pk)
    course_id = material.course_id
    training.remove_material(request.user, material)
    messages.success(request, _("Material removed."))
    return redirect(reverse("training:course", args=[course_id]) + "#materials")


@login_required
@require_GET
def material_download(request, pk: int):
    material = get_object_or_404(Material, pk=pk)
    if not training.may_open_course(request.user, material.course):
        raise Http404(_("No such course."))
    if material.url or not material.file:
        raise Http404(_("This material is a link, not a file."))
    try:
        handle = material.file.open("rb")
    except FileNotFoundError:
        raise Http404(_("The file is missing from the storage.")) from None
    from pharmacrm.servicedesk import attachments as att

    name = att.clean_name(material.title)
    if not att._extension(name):
        name += training.material_types()[material.content_type][0]
    response = FileResponse(handle, content_type=material.content_type)
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def course_assign(request, pk: int):
    """Assign a published course by role, team or name with a due date."""
    training.require_manage(request.user)
    course = get_object_or_404(Course, pk=pk)
    context = {"course": course, "roles": Role.choices, "teams": pinyin_sorted(Team.objects.all()),
               "people": User.objects.filter(is_active=True).order_by("username"), "errors": {},
               "data": {"roles": course.audience_roles,
                        "teams": [str(t) for t in course.audience_teams.values_list("id", flat=True)],
                        "users": [], "due_date": (timezone.localdate() + dt.timedelta(days=30)).isoformat()},
               "form_token": new_once_token()}  # fmt: skip
    if request.method == "GET":
        return render(request, "training/assign.html", context)
    post = request.POST
    data = {"roles": post.getlist("roles"), "teams": post.getlist("teams"), "users": post.getlist("users"),
            "due_date": post.get("due_date", "")}  # fmt: skip
    context["data"] = data
    context["form_token"] = token = once_token(post.get("form_token"))  # kept when the form is shown again
    done: dict = {}
    try:
        if _created_with(request.user, token):
            raise AlreadyCreated(course.pk)
        try:
            due = dt.date.fromisoformat(data["due_date"].strip())
        except ValueError:
            raise ValidationError({"due_date": [_("Enter a date (YYYY-MM-DD).")]}) from None
        people = training.chosen_users(roles=data["roles"], teams=data["teams"], users=data["users"])

        def assign():  # once per form: sent again (a double click), the course's page as the first one left it
            done["new"], done["had"] = training.assign(request.user, course, people, due)
            return course

        _create_once(request.user, token, assign)
        new, had = done["new"], done["had"]
    except AlreadyCreated:
        messages.info(request, _("This form was already sent: the course was assigned then, and not a second time."))
        return redirect("training:course", pk=course.pk)
    except ValidationError as e:
        context["errors"] = _errors(e)
        return render(request, "training/assign.html", context, status=400)
    messages.success(request, _("Assigned to %(new)s people; %(had)s had it assigned already.")
                     % {"new": len(new), "had": had})  # fmt: skip
    return redirect("training:course", pk=course.pk)


@login_required
@require_POST
def attendance(request, pk: int):
    """The trainer records a person's attendance at a classroom session: their assignment completed."""
    training.require_manage(request.user)
    a = get_object_or_404(Assignment, pk=pk)
    try:
        training.record_attendance(request.user, a)
    except ValidationError as e:
        for msgs in _errors(e).values():
            for m in msgs:
                messages.error(request, m)
    else:
        messages.success(request, _("Attendance recorded for %(name)s.") % {"name": _name(a.user)})
    return redirect("training:course", pk=a.course_id)


def _own(request, pk: int) -> Assignment:
    a = Assignment.objects.select_related("course").filter(pk=pk, user=request.user).first()
    if a is None:
        raise Http404(_("This course is not assigned to you."))
    return a


@login_required
@require_http_methods(["GET", "POST"])
def take_test(request, pk: int):
    """The test of an assignment of the user's: the questions (never their answers); the answers scored on the
    server when sent."""
    a = _own(request, pk)
    questions = list(a.course.questions.all())
    used = a.attempts.count()
    context = {"a": a, "questions": questions, "used": used, "left": max(a.course.max_attempts - used, 0),
               "multiple": QuestionKind.MULTIPLE, "errors": [], "chosen": {}, "form_token": new_once_token()}  # fmt: skip
    if request.method == "GET":
        return render(request, "training/test.html", context)
    answers = {}
    for q in questions:
        values = request.POST.getlist(f"q{q.pk}")
        if values:
            answers[str(q.pk)] = values
    context["chosen"] = {str(k): v for k, v in answers.items()}
    context["form_token"] = token = once_token(request.POST.get("form_token"))  # kept when shown again
    try:  # once per form: sent again (a double click), the result of the first, not a second attempt used up
        if _created_with(request.user, token):
            raise AlreadyCreated(None)
        outcome = _create_once(request.user, token, lambda: training.submit(request.user, a.pk, answers).attempt)
    except AlreadyCreated:
        messages.info(request, _("This form was already sent: your answers were scored then, and not a second "
                                 "time."))  # fmt: skip
        return redirect("training:result", pk=a.pk)
    except ValidationError as e:
        context["errors"] = [m for msgs in _errors(e).values() for m in msgs]
        return render(request, "training/test.html", context, status=400)
    return redirect("training:result", pk=outcome.assignment_id)


@login_required
@require_GET
def result(request, pk: int):
    a = _own(request, pk)
    attempts = list(a.attempts.order_by("-number"))
    return render(request, "training/result.html", {
        "a": a, "attempts": attempts, "last": attempts[0] if attempts else None,
        "left": max(a.course.max_attempts - len(attempts), 0), "rated": hasattr(a, "rating"),
        "rating": getattr(a, "rating", None),
    })  # fmt: skip


@login_required
@require_POST
def rate(request, pk: int):
    a = _own(request, pk)
    try:
        training.rate(request.user, a.pk, request.POST.get("stars"), request.POST.get("comment", ""))
    except ValidationError as e:
        for msgs in _errors(e).values():
            for m in msgs:
                messages.error(request, _("Rating: %(reason)s") % {"reason": m})
    else:
        messages.success(request, _("Thank you for your rating."))
    return redirect("training:result", pk=a.pk)


# --- results -----------------------------------------------------------------------------------------------


def _team(request, scope) -> Team | None:
    raw = request.GET.get("team", "").strip()
    if not raw:
        return None
    if not is_id(raw):
        raise Http404(_("No such team."))
    team = Team.objects.filter(pk=int(raw)).first()
    if team is None:
        raise Http404(_("No such team."))
    return team


@login_required
@require_GET
def results(request):
    """People × mandatory courses: done / due / overdue / expired, of everyone or the teams the user leads."""
    scope = training.results_scope(request.user)
    team = _team(request, scope)
    m = training.matrix(request.user, team=team)
    teams = pinyin_sorted(Team.objects.all() if scope.everything else Team.objects.filter(pk__in=scope.team_ids))
    return render(request, "training/results.html", {"m": m, "team": team, "teams": teams})


@login_required
@require_GET
def results_export(request):
    from openpyxl import Workbook
    from openpyxl.styles import Font

    scope = training.results_scope(request.user)
    team = _team(request, scope)
    m = training.matrix(request.user, team=team)
    book = Workbook()
    sheet = book.active
    sheet.title = _("Training")[:31]
    downloads.append_row(sheet, [_("Training results: mandatory courses"), team.shown_name if team else _("Everyone")])
    downloads.append_row(sheet, [pgettext("staff", "Person"), _("Username"), *[c.title for c in m.courses]])
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    for person, cells in m.rows:
        values = []
        for c in cells:
            text = c.label if c.state else "—"
            a = c.assignment
            if a is not None and a.completed_at is not None:
                text += f" {timezone.localdate(a.completed_at).isoformat()}"
                if a.expires_on:
                    text += f" → {a.expires_on.isoformat()}"
            elif a is not None:
                text += f" ({a.due_date.isoformat()})"
            values.append(text)
        downloads.append_row(sheet, [_name(person), person.get_username(), *values])
    sheet.column_dimensions["A"].width = 18
    audit.record(A.EXPORT, ("training.assignment", "", "results"), user=request.user, format="XLSX",
                 rows=len(m.rows), team=team.pk if team else None)  # fmt: skip
    return downloads.xlsx(downloads.workbook_bytes(book), _("Training results"))


@login_required
@require_GET
def person(request, pk: int):
    # one outside the viewer's scope is answered as an unknown id is (404), or the answers would tell which exist
    who = User.objects.filter(pk=pk).first() if pk < 2**63 else None
    try:
        rows = training.person_rows(request.user, who) if who else None
    except PermissionDenied:
        rows = None
    if rows is None:
        raise Http404(_("No such person."))
    return render(request, "training/person.html", {
        "who": who, "rows": [(a, training.STATE_LABELS[s]) for a, s in rows],
        "certificates": _certificates(request.user, who),
    })  # fmt: skip


urlpatterns = [
    path("", mine, name="mine"),
    path("courses/", course_list, name="courses"),
    path("courses/new/", course_edit, name="course-new"),
    path("courses/<int:pk>/", course_detail, name="course"),
    path("courses/<int:pk>/edit/", course_edit, name="course-edit"),
    path("courses/<int:pk>/assign/", course_assign, name="course-assign"),
    path("courses/<int:pk>/materials/", material_add, name="material-add"),
    path("materials/<int:pk>/", material_download, name="material"),
    path("materials/<int:pk>/remove/", material_remove, name="material-remove"),
    path("assignments/<int:pk>/test/", take_test, name="test"),
    path("assignments/<int:pk>/result/", result, name="result"),
    path("assignments/<int:pk>/rate/", rate, name="rate"),
    path("assignments/<int:pk>/attendance/", attendance, name="attendance"),
    path("results/", results, name="results"),
    path("results/export.xlsx", results_export, name="results-export"),
    path("people/<int:pk>/", person, name="person"),
]

from .views_classroom import urlpatterns as _classroom  # noqa: E402 — sessions and certificates

urlpatterns += _classroom
