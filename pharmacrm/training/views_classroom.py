"""Training pages of the classroom sessions and the certificates: plan a session, its page (enrolments, attendance,
the record, cancelling), the certificates' list with its Excel export, a certificate, its PDF and its revocation.
classroom.py decides; docs/training.md."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pharmacrm.core import audit, downloads
from pharmacrm.core.form_saves import SENT_AGAIN, sent_again_after
from pharmacrm.core.ids import is_id
from pharmacrm.core.models import AuditEntry, User
from pharmacrm.core.ordering import pinyin_sorted
from pharmacrm.customers.forms import new_once_token, once_token
from pharmacrm.customers.services import ConflictError
from pharmacrm.customers.views import AlreadyCreated, _create_once, _created_with

from . import classroom, training
from .models import (
    Assignment,
    Certificate,
    Course,
    CourseStatus,
    Enrolment,
    Presence,
    Session,
    SessionStatus,
    WaitingEntry,
)

A = AuditEntry.Action
PAGE_ROWS = 500


def _errors(e: ValidationError) -> dict:
    return e.message_dict if hasattr(e, "error_dict") else {"form": e.messages}


def _flash(request, e: ValidationError) -> None:
    for msgs in _errors(e).values():
        for m in msgs:
            messages.error(request, m)


@login_required
@require_http_methods(["GET", "POST"])
def session_new(request, pk: int):
    training.require_manage(request.user)
    course = get_object_or_404(Course, pk=pk)
    start = timezone.localtime().replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=7)
    data = {"starts_at": f"{start:%Y-%m-%dT%H:%M}", "ends_at": f"{start + dt.timedelta(hours=2):%Y-%m-%dT%H:%M}",
            "place": "", "trainer": "", "trainer_name": "", "capacity": "20", "notes": ""}  # fmt: skip
    context = {"course": course, "errors": {}, "people": User.objects.filter(is_active=True).order_by("username")}
    if request.method == "POST":
        # planned once per form (its one-time token): a double click on Save planned two sessions of the course
        token = once_token(request.POST.get("form_token"))
        try:
            if not (done := _created_with(request.user, token)):
                s = _create_once(request.user, token, lambda: classroom.create_session(
                    request.user, course, {k: request.POST.get(k, "") for k in data}))
        except AlreadyCreated as e:
            done = e.pk
        except ValidationError as e:
            data = {k: request.POST.get(k, "") for k in data}
            context.update(data=data, errors=_errors(e), form_token=token)
            return render(request, "training/session_form.html", context, status=400)
        if done:
            messages.info(request, SENT_AGAIN)
            return redirect("training:session", pk=done)
        messages.success(request, _("Session planned."))
        return redirect("training:session", pk=s.pk)
    context.update(data=data, form_token=new_once_token())
    return render(request, "training/session_form.html", context)


def _session(request, pk: int) -> Session:
    s = classroom.sessions_for(request.user).select_related("course", "trainer").filter(pk=pk).first()
    if s is None:
        raise Http404(_("No such session."))
    return s


def _detail_context(request, s: Session) -> dict:
    user = request.user
    may_manage = training.may_manage(user)
    may_mark = classroom.may_take_attendance(user, s)
    enrolments = list(s.enrolments.select_related("assignment__user").order_by("assignment__user__username"))
    enrolled_ids = {e.assignment_id for e in enrolments}
    open_ = s.status == SessionStatus.PLANNED and s.starts_at > timezone.now()
    mine = (s.course.assignments.filter(user=user, completed_at__isnull=True).exclude(pk__in=enrolled_ids).first()
            if open_ and training.may_take(user) else None)  # fmt: skip
    waiting = list(classroom.live_waiting(s).select_related("assignment__user"))
    waiting_ids = {w.assignment_id for w in waiting}
    candidates = []
    if may_manage and open_:
        candidates = list(s.course.assignments.filter(completed_at__isnull=True, user__is_active=True)
                          .exclude(pk__in=enrolled_ids | waiting_ids)
                          .select_related("user").order_by("user__username"))  # fmt: skip
    my_wait = next(((w, i) for i, w in enumerate(waiting, 1) if w.assignment.user_id == user.pk), None)
    return {
        "waiting": waiting if classroom.may_see_waiting_list(user, s) else None, "waiting_count": len(waiting),
        "my_wait": my_wait[0] if my_wait and open_ else None, "my_position": my_wait[1] if my_wait else None,
        "full": len(enrolments) >= s.capacity,
        "s": s, "enrolments": enrolments if (may_mark or training.may_see_results(user)) else None,
        "taken": len(enrolments), "may_manage": may_manage, "may_mark": may_mark and s.starts_at <= timezone.now()
        and s.status != SessionStatus.CANCELLED, "mine": mine, "candidates": candidates, "open": open_,
        "my_place": next((e for e in enrolments if e.assignment.user_id == user.pk), None),
        "presence": Presence.choices, "may_edit": may_manage and s.status != SessionStatus.CANCELLED,
    }  # fmt: skip


@login_required
@require_GET
def session_detail(request, pk: int):
    return render(request, "training/session.html", _detail_context(request, _session(request, pk)))


def _conflict(request, pk: int, error: ConflictError, keep) -> HttpResponse:
    """Someone changed the session since the form was loaded: the page as it is now, answered 409 with the error,
    and what this user entered put back in the form (`keep(context)`) to check and send again — nothing saved."""
    messages.error(request, str(error))
    context = _detail_context(request, _session(request, pk))
    keep(context)
    return render(request, "training/session.html", context, status=409)


@login_required
@require_http_methods(["GET", "POST"])
def session_edit(request, pk: int):
    """Change a planned session (time, place, trainer, capacity, notes); a held one its notes only."""
    training.require_manage(request.user)
    s = _session(request, pk)
    if s.status == SessionStatus.CANCELLED:
        messages.error(request, _("A cancelled session is not changed."))
        return redirect("training:session", pk=s.pk)
    held = classroom.has_been_held(s)
    names = ("notes",) if held else ("starts_at", "ends_at", "place", "trainer", "trainer_name", "capacity", "notes")
    data = {"starts_at": f"{timezone.localtime(s.starts_at):%Y-%m-%dT%H:%M}",
            "ends_at": f"{timezone.localtime(s.ends_at):%Y-%m-%dT%H:%M}", "place": s.place,
            "trainer": str(s.trainer_id or ""), "trainer_name": s.trainer_name, "capacity": str(s.capacity),
            "notes": s.notes, "version": str(s.version)}  # fmt: skip
    context = {"course": s.course, "s": s, "held": held, "errors": {},
               "people": User.objects.filter(is_active=True).order_by("username")}  # fmt: skip
    if request.method == "POST":
        data.update({k: request.POST.get(k, "") for k in (*names, "version")})
        try:
            classroom.update_session(request.user, s, {k: data[k] for k in names}, data["version"])
        except ValidationError as e:
            context.update(data=data, errors=_errors(e))
            return render(request, "training/session_form.html", context, status=400)
        except ConflictError as e:
            context.update(data=data, errors={"form": [str(e)]})
            return render(request, "training/session_form.html", context, status=409)
        messages.success(request, _("Session saved."))
        return redirect("training:session", pk=s.pk)
    context["data"] = data
    return render(request, "training/session_form.html", context)


def _posted_assignment(request) -> Assignment:
    """The assignment a form names: the user's own, or anyone's for a training manager (else 404)."""
    raw = request.POST.get("assignment", "").strip()
    a = Assignment.objects.select_related("user").filter(pk=int(raw)).first() if is_id(raw) else None
    if a is None or (a.user_id != request.user.pk and not training.may_manage(request.user)):
        raise Http404(_("No such assignment."))
    return a


def _last_own(user, model, s: Session, a: Assignment, action: str) -> bool:
    """Whether the last change of this trainee's place (`model`: enrolment or waiting entry) in the session is
    `user`'s `action` — the same button sent twice (a double click): the first one did it."""
    entries = AuditEntry.objects.filter(object_type=model._meta.label_lower).order_by("-seq")[:50]
    for e in entries.values("action", "actor_id", "changes"):
        session, trainee = (e["changes"] or {}).get("session") or [None, None], (e["changes"] or {}).get("user") or [
            None, None]  # fmt: skip
        if s.pk in session and a.user_id in trainee:
            return e["action"] == action and e["actor_id"] == user.pk
    return False


def _for_assignment(request, pk: int, act, done=None) -> HttpResponse:
    """A trainee's place in a session changed from its page (enrol, withdraw, join or leave the waiting list): the
    trainee themselves, or a manager for anyone. `act(session, assignment, name)` changes it and says what happened;
    a refusal is flashed. Back to the session's page either way. `done(session, assignment, name)`: what the first
    sending did, when the same button was sent twice (a double click) — said instead of the refusal."""
    s = _session(request, pk)
    a = _posted_assignment(request)
    name = a.user.display_name or a.user.get_username()
    try:
        message = act(s, a, name)
    except ValidationError as err:
        if done is not None and (first := done(s, a, name)):
            messages.success(request, first)
        else:
            _flash(request, err)
    else:
        messages.success(request, message)
    return redirect("training:session", pk=s.pk)


@login_required
@require_POST
def session_withdraw(request, pk: int):
    """A trainee withdraws their own enrolment; a manager anyone's. The place goes to the first on the waiting list."""

    def act(s, a, who):
        promoted = classroom.withdraw(request.user, s, a)
        if not promoted:
            return _("%(name)s is no longer enrolled; the place is free.") % {"name": who}
        if not classroom.may_see_waiting_list(request.user, s):  # a trainee is not told who waited
            return _("%(name)s is no longer enrolled; the place goes to the first on the waiting list.") % {"name": who}
        nxt = promoted[0].assignment.user
        return _("%(name)s is no longer enrolled; the place goes to %(next)s, the first on the waiting list.") % {
            "name": who, "next": nxt.display_name or nxt.get_username()}  # fmt: skip

    def done(s, a, who):
        if not Enrolment.objects.filter(session=s, assignment=a).exists() and _last_own(
                request.user, Enrolment, s, a, AuditEntry.Action.DELETE):  # fmt: skip
            return _("%(name)s is no longer enrolled.") % {"name": who}
        return None

    return _for_assignment(request, pk, act, done)


@login_required
@require_POST
def session_enrol(request, pk: int):
    def act(s, a, who):
        classroom.enrol(request.user, s, a)
        return _("%(name)s is enrolled.") % {"name": who}

    def done(s, a, who):
        if Enrolment.objects.filter(session=s, assignment=a, enrolled_by=request.user).exists() and _last_own(
                request.user, Enrolment, s, a, AuditEntry.Action.CREATE):  # fmt: skip
            return _("%(name)s is enrolled.") % {"name": who}
        return None

    return _for_assignment(request, pk, act, done)


@login_required
@require_POST
def session_wait(request, pk: int):
    """Join a full session's waiting list: a trainee themselves; a manager for anyone."""

    def act(s, a, who):
        w = classroom.join_waiting_list(request.user, s, a)
        return _("%(name)s is number %(n)s on the waiting list; a free place is given at once, in the list's "
                 "order.") % {"name": who, "n": w.position}  # fmt: skip

    def done(s, a, who):
        w = WaitingEntry.objects.filter(session=s, assignment=a, added_by=request.user).first()
        if w is not None and _last_own(request.user, WaitingEntry, s, a, AuditEntry.Action.CREATE):
            return _("%(name)s is number %(n)s on the waiting list; a free place is given at once, in the list's "
                     "order.") % {"name": who, "n": classroom.waiting_position(w)}  # fmt: skip
        return None

    return _for_assignment(request, pk, act, done)


@login_required
@require_POST
def session_unwait(request, pk: int):
    """Leave a session's waiting list: a trainee themselves; a manager takes anyone off."""

    def act(s, a, who):
        classroom.leave_waiting_list(request.user, s, a)
        return _("%(name)s is off the waiting list.") % {"name": who}

    def done(s, a, who):
        if not WaitingEntry.objects.filter(session=s, assignment=a).exists() and _last_own(
                request.user, WaitingEntry, s, a, AuditEntry.Action.DELETE):  # fmt: skip
            return _("%(name)s is off the waiting list.") % {"name": who}
        return None

    return _for_assignment(request, pk, act, done)


def _attendance_as_sent(request, s: Session, marks: dict) -> bool:
    """The attendance form sent again right after by the same person: the session one version on by their change,
    and the marks and record as the form has them."""
    s = Session.objects.get(pk=s.pk)
    if not sent_again_after(request.user, s, request.POST.get("version")):
        return False
    stored = {str(e.pk): e.attendance or "" for e in Enrolment.objects.filter(session=s, pk__in=[
        int(k) for k in marks if is_id(k)])}  # fmt: skip
    texts = all(str(request.POST.get(f, getattr(s, f))).strip() == getattr(s, f)
                for f in ("materials_used", "trainer_note"))  # fmt: skip
    return texts and all(stored.get(k) == (v or "") for k, v in marks.items())


@login_required
@require_POST
def session_attendance(request, pk: int):
    s = _session(request, pk)
    marks = {k[len("e"):]: v for k, v in request.POST.items() if k.startswith("e") and k[1:].isdigit()}
    try:
        classroom.take_attendance(request.user, s, marks, materials_used=request.POST.get("materials_used"),
                                  trainer_note=request.POST.get("trainer_note"), version=request.POST.get("version"))  # fmt: skip
    except ValidationError as e:
        _flash(request, e)
    except ConflictError as e:
        if _attendance_as_sent(request, s, marks):  # "Save" clicked twice: the first one saved this
            messages.success(request, _("Attendance and record saved."))
            return redirect("training:session", pk=s.pk)

        def keep(context):
            for enrolment in context["enrolments"] or []:
                enrolment.attendance = marks.get(str(enrolment.pk), enrolment.attendance)
            context["s"].materials_used = request.POST.get("materials_used", context["s"].materials_used)
            context["s"].trainer_note = request.POST.get("trainer_note", context["s"].trainer_note)

        return _conflict(request, pk, e, keep)
    else:
        messages.success(request, _("Attendance and record saved."))
    return redirect("training:session", pk=s.pk)


@login_required
@require_POST
def session_cancel(request, pk: int):
    s = _session(request, pk)
    try:
        classroom.cancel_session(request.user, s, request.POST.get("cancel_reason", ""), request.POST.get("version"))
    except ValidationError as e:
        _flash(request, e)
    except ConflictError as e:
        return _conflict(request, pk, e, lambda context: context.update(cancel_reason=request.POST.get("cancel_reason", "")))
    else:
        messages.success(request, _("Session cancelled; the enrolled trainees are told."))
    return redirect("training:session", pk=s.pk)


# --- certificates ------------------------------------------------------------------------------------------


def _filtered(request):
    """The certificates of the list page and its export, for who sees others' results."""
    training.results_scope(request.user)  # PermissionDenied for the rest
    params = {k: request.GET.get(k, "") for k in ("course", "state", "person")}
    qs = classroom.certificates_for(request.user).select_related("course", "user")
    try:
        qs = classroom.filter_certificates(qs, **params)
    except ValidationError as e:
        return params, None, _errors(e)
    return params, qs.order_by("-issued_on", "-id"), {}


@login_required
@require_GET
def certificate_list(request):
    params, qs, errors = _filtered(request)
    today = timezone.localdate()
    rows = [(c, classroom.CERT_STATE_LABELS[classroom.certificate_state(c, today)]) for c in qs[:PAGE_ROWS]] if qs is not None else []  # fmt: skip
    courses = pinyin_sorted(Course.objects.exclude(status=CourseStatus.DRAFT).order_by("title"))
    return render(request, "training/certificates.html", {
        "rows": rows, "params": params, "errors": errors, "courses": courses,
        "states": list(classroom.CERT_STATE_LABELS.items()), "query": request.GET.urlencode(),
    }, status=400 if errors else 200)  # fmt: skip


@login_required
@require_GET
def certificate_export(request):
    from openpyxl import Workbook
    from openpyxl.styles import Font

    params, qs, errors = _filtered(request)
    if qs is None:
        return HttpResponse("; ".join(m for msgs in errors.values() for m in msgs), status=400,
                            content_type="text/plain; charset=utf-8")  # fmt: skip
    today = timezone.localdate()
    book = Workbook()
    sheet = book.active
    sheet.title = _("Certificates")[:31]
    sheet.append([_("Number"), pgettext("staff", "Person"), _("Username"), _("Course"), _("Score"), _("Issued"),
                  _("Valid until"), _("Status"), _("Reason for revoking")])  # fmt: skip
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    rows = 0
    for c in qs.iterator(chunk_size=500):
        downloads.append_row(sheet, [
            c.number, c.user.display_name or c.user.get_username(), c.user.get_username(), c.course.title, c.score,
            c.issued_on, c.expires_on, str(classroom.CERT_STATE_LABELS[classroom.certificate_state(c, today)]),
            c.revoke_reason])  # fmt: skip
        rows += 1
    audit.record(A.EXPORT, ("training.certificate", "", "certificates"), user=request.user, format="XLSX", rows=rows,
                 filters={k: v for k, v in params.items() if v})  # fmt: skip
    return downloads.xlsx(downloads.workbook_bytes(book), _("Training certificates"))


def _certificate(request, pk: int) -> Certificate:
    c = classroom.certificates_for(request.user).select_related("course", "user", "revoked_by").filter(pk=pk).first()
    if c is None:  # another's, outside the viewer's scope, answers as an unknown id does
        raise Http404(_("No such certificate."))
    return c


@login_required
@require_GET
def certificate_detail(request, pk: int):
    c = _certificate(request, pk)
    return render(request, "training/certificate.html", {
        "c": c, "state": classroom.certificate_state(c), "label": classroom.CERT_STATE_LABELS[classroom.certificate_state(c)],
        "may_manage": training.may_manage(request.user),
    })  # fmt: skip


@login_required
@require_GET
def certificate_pdf(request, pk: int):
    from . import certificate_pdf as pdf

    c = _certificate(request, pk)
    data = pdf.render(c)
    audit.record(A.EXPORT, c, user=request.user, format="PDF", rows=1)
    return downloads.attachment(data, f"{c.number}.pdf", "application/pdf")


@login_required
@require_POST
def certificate_revoke(request, pk: int):
    c = _certificate(request, pk)
    try:
        classroom.revoke(request.user, c, request.POST.get("reason", ""))
    except ValidationError as e:
        _flash(request, e)
    else:
        messages.success(request, _("Certificate %(number)s revoked.") % {"number": c.number})
    return redirect("training:certificate", pk=c.pk)


urlpatterns = [
    path("courses/<int:pk>/sessions/new/", session_new, name="session-new"),
    path("sessions/<int:pk>/", session_detail, name="session"),
    path("sessions/<int:pk>/edit/", session_edit, name="session-edit"),
    path("sessions/<int:pk>/enrol/", session_enrol, name="session-enrol"),
    path("sessions/<int:pk>/withdraw/", session_withdraw, name="session-withdraw"),
    path("sessions/<int:pk>/waiting-list/join/", session_wait, name="session-wait"),
    path("sessions/<int:pk>/waiting-list/leave/", session_unwait, name="session-unwait"),
    path("sessions/<int:pk>/attendance/", session_attendance, name="session-attendance"),
    path("sessions/<int:pk>/cancel/", session_cancel, name="session-cancel"),
    path("certificates/", certificate_list, name="certificates"),
    path("certificates/export.xlsx", certificate_export, name="certificates-export"),
    path("certificates/<int:pk>/", certificate_detail, name="certificate"),
    path("certificates/<int:pk>/pdf/", certificate_pdf, name="certificate-pdf"),
    path("certificates/<int:pk>/revoke/", certificate_revoke, name="certificate-revoke"),
]
