"""Classroom sessions and certificates of the training system (培训实施记录与证书, seed 000 ch. 7). docs/training.md.

- A **session** of a course: when (Beijing), where, the trainer (a user or an external name), the capacity, its status
  (planned / held / cancelled with a reason). Trainees enrol from their open assignment of the course, or a manager
  enrols them; the capacity is enforced under the session's row lock (two enrolments at once cannot exceed it).
  A full session keeps a **waiting list** (候补名单): when a place frees — a withdrawal, a higher capacity — the
  first on it whose course is still open is enrolled at once and told.
  The trainer or a training manager takes the attendance (present / absent / excused) and writes the record
  (materials used, note): a trainee marked present at a session of a course without a test has their assignment's
  attendance recorded (training.record_attendance's completion), which completes it.
- A **certificate** (培训合格证书) is issued with every completion — a test passed, or attendance recorded — in the
  completion's transaction, numbered PX-YYYY-NNNNN per Beijing year without gaps (core.models.Counter, as the
  cooperation agreements' HZ numbers); valid until the completion's expiry (the course's months). A training
  manager may revoke it with a reason.
- The worker reminds the enrolled trainees the day before a session, once (`remind_training_sessions`).

Everything that changes data is audited."""

from __future__ import annotations

import datetime as dt
import re

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry, Counter, User
from pharmacrm.core.numbers import typed_decimal
from pharmacrm.customers.services import ConflictError

from . import training
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
PLACE_MAX = 200
TRAINER_NAME_MAX = 100
CAPACITY_MAX = 500
TEXT_MAX = 4000
REMINDER_KIND = "training.session"


# --- certificates ----------------------------------------------------------------------------------------


def certificate_number(at: dt.datetime | None = None) -> str:
    """PX-YYYY-NNNNN, per Beijing year, in the caller's transaction: a completion rolled back gives its number back,
    so the numbers have no gaps; two completions at once get two numbers."""
    year = timezone.localtime(at or timezone.now()).year
    return f"PX-{year}-{Counter.allocate(f'training:PX:{year}'):05d}"


def issue_certificate(a: Assignment, actor) -> Certificate:
    """The certificate of a completion, in the completion's transaction (training.submit, record_attendance)."""
    c = Certificate.objects.create(
        number=certificate_number(a.completed_at), assignment=a, user_id=a.user_id, course_id=a.course_id,
        score=a.score, issued_on=timezone.localdate(a.completed_at), expires_on=a.expires_on,
    )  # fmt: skip
    audit.record(A.CREATE, c, user=actor, changes={
        "number": [None, c.number], "user": [None, a.user_id], "course": [None, a.course_id],
        "score": [None, c.score], "expires_on": [None, c.expires_on],
    })  # fmt: skip
    return c


class CertState:
    VALID = "valid"
    EXPIRED = "expired"
    REVOKED = "revoked"


CERT_STATE_LABELS = {
    CertState.VALID: gettext_lazy("Valid"),
    CertState.EXPIRED: gettext_lazy("Expired"),
    CertState.REVOKED: gettext_lazy("Revoked"),
}


def certificate_state(c: Certificate, today: dt.date | None = None) -> str:
    if c.revoked_at is not None:
        return CertState.REVOKED
    today = today or timezone.localdate()
    return CertState.EXPIRED if c.expires_on is not None and today > c.expires_on else CertState.VALID


def certificates_for(user):
    """The certificates the user may read: their own; every one (results); their teams' members' (a team lead)."""
    try:
        scope = training.results_scope(user)
    except PermissionDenied:
        return Certificate.objects.filter(user=user)
    if scope.everything:
        return Certificate.objects.all()
    return Certificate.objects.filter(
        Q(user=user) | Q(user__in=User.objects.filter(teams__in=scope.team_ids))
    )


def filter_certificates(qs, *, course: str = "", state: str = "", person: str = "", today: dt.date | None = None):
    """The list's and the API's filters; ValidationError naming the filter for a bad value."""
    today = today or timezone.localdate()
    course = (course or "").strip()
    if course:
        if not course.isascii() or not course.isdigit() or len(course) > 18:
            raise ValidationError({"course": [_("Enter a course id (a number).")]})
        qs = qs.filter(course_id=int(course))
    state = (state or "").strip()
    if state:
        if state not in CERT_STATE_LABELS:
            raise ValidationError({"state": [_("One of valid, expired, revoked.")]})
        if state == CertState.REVOKED:
            qs = qs.filter(revoked_at__isnull=False)
        elif state == CertState.EXPIRED:
            qs = qs.filter(revoked_at__isnull=True, expires_on__lt=today)
        else:
            qs = qs.filter(revoked_at__isnull=True).exclude(expires_on__lt=today)
    person = re.sub(r"\s+", " ", person or "").strip()[:100]
    if person:
        qs = qs.filter(
            Q(user__username__icontains=person) | Q(user__display_name__icontains=person) | Q(number__iexact=person)
        )
    return qs


def revoke(user, certificate: Certificate, reason: str) -> Certificate:
    """A training manager revokes a certificate, giving the reason. Audited."""
    training.require_manage(user)
    reason = str(reason or "").replace("\x00", "").strip()[:TEXT_MAX]
    if not reason:
        raise ValidationError({"reason": [_("Give the reason for revoking the certificate.")]})
    with transaction.atomic():
        c = Certificate.objects.select_for_update().get(pk=certificate.pk)
        if c.revoked_at is not None:
            raise ValidationError({"reason": [_("This certificate is revoked already.")]})
        c.revoked_at, c.revoked_by, c.revoke_reason = timezone.now(), user, reason
        c.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
        audit.record(A.UPDATE, c, user=user, changes={"revoked_at": [None, c.revoked_at], "reason": [None, reason]})
    return c


# --- sessions --------------------------------------------------------------------------------------------


def may_take_attendance(user, session: Session) -> bool:
    return training.may_manage(user) or (session.trainer_id is not None and session.trainer_id == user.pk)


def sessions_for(user):
    """The sessions of the courses the user may open."""
    return Session.objects.filter(course__in=training.courses_for(user))


def upcoming_for(user, now: dt.datetime | None = None, limit: int = 50) -> list[dict]:
    """"My training"'s sessions: the planned sessions still to come of the courses the user has an open assignment
    of, and those they are enrolled in — each with its enrolled count, the user's enrolment (to withdraw) or open
    assignment of the course (to enrol with, or to wait for a place of a full one), their place on its waiting list
    (assignment, position) if any, soonest first."""
    now = now or timezone.now()
    open_assignments = dict(Assignment.objects.filter(user=user, completed_at__isnull=True)
                            .values_list("course_id", "pk"))  # fmt: skip
    enrolled = dict(Enrolment.objects.filter(assignment__user=user, session__starts_at__gt=now)
                    .values_list("session_id", "assignment_id"))  # fmt: skip
    sessions = list(
        sessions_for(user)
        .filter(status=SessionStatus.PLANNED, starts_at__gt=now)
        .filter(Q(course_id__in=list(open_assignments)) | Q(pk__in=list(enrolled)))
        .select_related("course", "trainer")
        .order_by("starts_at", "pk")[:limit]
    )
    counts = enrolment_counts(sessions)
    waiting = my_waiting(user, sessions)
    return [{"s": x, "taken": counts.get(x.pk, 0), "enrolled": enrolled.get(x.pk),
             "assignment": None if x.pk in enrolled else open_assignments.get(x.course_id),
             "waiting": waiting.get(x.pk)} for x in sessions]  # fmt: skip


def _aware(raw, name: str, errors: dict) -> dt.datetime | None:
    """A time to the minute, as the form shows it (so that saving the form unchanged changes no time)."""
    if isinstance(raw, dt.datetime):
        value = raw
    else:
        text = str(raw or "").strip().replace("T", " ")
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            errors[name] = [_("Enter a date and time (YYYY-MM-DD HH:MM).")]
            return None
    value = value.replace(second=0, microsecond=0)
    return value if timezone.is_aware(value) else timezone.make_aware(value)  # Beijing, as typed


def clean_session(data: dict, *, now: dt.datetime | None = None) -> dict:
    """The session's fields from a form or a call; ValidationError naming each field and its reason."""
    errors: dict[str, list[str]] = {}
    out: dict = {}
    out["starts_at"] = _aware(data.get("starts_at"), "starts_at", errors)
    out["ends_at"] = _aware(data.get("ends_at"), "ends_at", errors)
    if out["starts_at"] and out["starts_at"] < (now or timezone.now()):
        errors["starts_at"] = [_("A session is planned in the future.")]
    if out["starts_at"] and out["ends_at"] and out["ends_at"] <= out["starts_at"]:
        errors["ends_at"] = [_("The end must come after the start.")]
    place = re.sub(r"\s+", " ", str(data.get("place") or "")).strip()
    if not place:
        errors["place"] = [_("Say where the session is held.")]
    elif len(place) > PLACE_MAX:
        errors["place"] = [_("At most %(n)s characters.") % {"n": PLACE_MAX}]
    out["place"] = place
    trainer = data.get("trainer")
    out["trainer"] = None
    if trainer not in (None, ""):
        try:
            tid = int(trainer.pk if isinstance(trainer, User) else str(trainer).strip())
        except (TypeError, ValueError):
            tid = 0
        out["trainer"] = User.objects.filter(pk=tid, is_active=True).first() if 0 < tid < 2**63 else None
        if out["trainer"] is None:
            errors["trainer"] = [_("No such active user.")]
    name = re.sub(r"\s+", " ", str(data.get("trainer_name") or "")).strip()
    if len(name) > TRAINER_NAME_MAX:
        errors["trainer_name"] = [_("At most %(n)s characters.") % {"n": TRAINER_NAME_MAX}]
    out["trainer_name"] = name
    if not name and trainer in (None, "") and "trainer" not in errors:
        errors["trainer"] = [_("Choose the trainer, or give an external trainer's name.")]
    # as core.numbers reads a typed number: ３０ from an input method in full-width mode is 30 (int() read it, and
    # Arabic-Indic ٣٠ and 3_0 too)
    raw = data.get("capacity")
    capacity = None if isinstance(raw, bool) or raw is None else typed_decimal(raw)
    if capacity is None or capacity != capacity.to_integral_value():
        capacity = None
        errors["capacity"] = [_("Enter a number.")]
    else:
        capacity = int(capacity)
    if capacity is not None and not 1 <= capacity <= CAPACITY_MAX:
        errors["capacity"] = [_("Between %(low)s and %(high)s.") % {"low": 1, "high": CAPACITY_MAX}]
    out["capacity"] = capacity
    notes = str(data.get("notes") or "").replace("\x00", "").strip()
    if len(notes) > TEXT_MAX:
        errors["notes"] = [_("At most %(n)s characters.") % {"n": TEXT_MAX}]
    out["notes"] = notes
    if errors:
        raise ValidationError(errors)
    return out


def create_session(user, course: Course, data: dict) -> Session:
    """Plan a classroom session of a published course (a manager). Audited."""
    training.require_manage(user)
    if course.status != CourseStatus.PUBLISHED:
        raise ValidationError({"course": [_("Sessions are planned for a published course.")]})
    values = clean_session(data)
    with transaction.atomic():
        s = Session.objects.create(course=course, created_by=user, **values)
        audit.record(A.CREATE, s, user=user, changes={
            "course": [None, course.pk], "starts_at": [None, s.starts_at], "ends_at": [None, s.ends_at],
            "place": [None, s.place], "trainer": [None, s.trainer_id], "trainer_name": [None, s.trainer_name],
            "capacity": [None, s.capacity], "notes": [None, s.notes or None],
        })  # fmt: skip
    return s


def _version(raw) -> int | None:
    """The version the caller loaded: None when not sent; a field error when it is no number."""
    if raw in (None, ""):
        return None
    text = str(raw).strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ValidationError({"version": [_("Enter a version (a number).")]})
    return int(text)


def _locked(session: Session, version=None) -> Session:
    version = _version(version)
    s = Session.objects.select_for_update().select_related("course").get(pk=session.pk)
    if version is not None and s.version != version:
        raise ConflictError(s.version)
    return s


def _enrolled_people(s: Session) -> list[User]:
    return list(User.objects.filter(training_assignments__enrolments__session=s, is_active=True)
                .distinct().order_by("username"))  # fmt: skip


def _waiting_people(s: Session) -> list[User]:
    """Those on the session's waiting list who may still take a place (told of a move or a cancellation too)."""
    return [w.assignment.user for w in live_waiting(s).select_related("assignment__user")]


def has_been_held(s: Session, now: dt.datetime | None = None) -> bool:
    """Held: marked so, started (in the past), or with an attendance taken — then only its notes change."""
    return (s.status == SessionStatus.HELD or s.starts_at <= (now or timezone.now())
            or s.enrolments.exclude(attendance="").exists())  # fmt: skip


EDITABLE = ("starts_at", "ends_at", "place", "trainer", "trainer_name", "capacity", "notes")


def _value(s: Session, name: str):
    return s.trainer_id if name == "trainer" else getattr(s, name)


def update_session(user, session: Session, data: dict, version) -> Session:
    """A training manager changes a planned session — its time, place, trainer, capacity, notes — from the version
    they loaded (a stale one: ConflictError). `data` holds the fields to change; the others stay. The capacity is
    never below the trainees enrolled. A session held (started, or with attendance taken) changes its notes only;
    a cancelled one nothing. The enrolled trainees are told once of a new time or place (the day-before reminder
    is then due again). Audited with before and after."""
    from pharmacrm.core.deferred import Message
    from pharmacrm.notify import services as notify

    training.require_manage(user)
    if _version(version) is None:
        raise ValidationError({"version": [_("Send the version you loaded, so that changes made by others in the "
                                             "meantime are not overwritten.")]})  # fmt: skip
    data = {k: v for k, v in (data or {}).items() if k in EDITABLE}
    with transaction.atomic():
        s = _locked(session, version)
        if s.status == SessionStatus.CANCELLED:
            raise ValidationError({"session": [_("A cancelled session is not changed.")]})
        if has_been_held(s):
            others = sorted(k for k in data if k != "notes")
            if others:
                msg = _("The session has been held: only its notes are changed.")
                raise ValidationError({k: [msg] for k in others})
            values = {"notes": clean_session_notes(data.get("notes", s.notes))}
        else:
            current = {k: _value(s, k) for k in EDITABLE}
            values = clean_session({**current, **data}, now=None if "starts_at" in data else s.starts_at)
            taken = Enrolment.objects.filter(session=s).count()
            if values["capacity"] is not None and values["capacity"] < taken:
                raise ValidationError({"capacity": [ngettext(
                    "%(n)s trainee is enrolled already: the capacity cannot be lower.",
                    "%(n)s trainees are enrolled already: the capacity cannot be lower.", taken) % {"n": taken}]})
            values["trainer"] = values["trainer"].pk if values["trainer"] is not None else None
        changes = {}
        for name, new in values.items():
            old = _value(s, name)
            if new != old:
                changes[name] = [old if old != "" else None, new if new != "" else None]
                setattr(s, "trainer_id" if name == "trainer" else name, new)
        if not changes:
            return s
        moved = "starts_at" in changes or "ends_at" in changes or "place" in changes
        fields = ["trainer_id" if k == "trainer" else k for k in changes]
        if "starts_at" in changes and s.reminded_at is not None:
            changes["reminded_at"] = [s.reminded_at, None]  # reminded of the old day: the new one is reminded
            s.reminded_at = None
            fields.append("reminded_at")
        s.version += 1
        s.save(update_fields=[*fields, "version"])
        if "capacity" in changes:
            _promote(s, user)  # a higher capacity: the waiting list's first take the new places
        people = _enrolled_people(s) + _waiting_people(s) if moved else []
        audit.record(A.UPDATE, s, user=user, changes=changes, **({"people": len(people)} if moved else {}))
        if people:
            notify.send(people, kind=REMINDER_KIND, url=_url(s), obj=s,
                        title=Message(gettext_lazy("Training session changed: %(course)s, now %(when)s"),
                                      course=s.course.title, when=_when(s)),
                        body=Message(gettext_lazy("Now: %(when)s–%(end)s, %(place)s. Before: %(old_when)s, "
                                                  "%(old_place)s."),
                                     when=_when(s), end=f"{timezone.localtime(s.ends_at):%H:%M}", place=s.place,
                                     old_when=_when_at(changes.get("starts_at", [s.starts_at])[0]),
                                     old_place=changes.get("place", [s.place])[0]))  # fmt: skip
    return s


def clean_session_notes(raw) -> str:
    notes = str(raw or "").replace("\x00", "").strip()
    if len(notes) > TEXT_MAX:
        raise ValidationError({"notes": [_("At most %(n)s characters.") % {"n": TEXT_MAX}]})
    return notes


def cancel_session(user, session: Session, reason: str, version=None) -> Session:
    """A manager cancels a planned session, giving the reason; the enrolled trainees are told. Audited."""
    from pharmacrm.core.deferred import Message
    from pharmacrm.notify import services as notify

    training.require_manage(user)
    reason = str(reason or "").replace("\x00", "").strip()[:TEXT_MAX]
    if not reason:
        raise ValidationError({"cancel_reason": [_("Give the reason for cancelling the session.")]})
    with transaction.atomic():
        s = _locked(session, version)
        if s.status != SessionStatus.PLANNED:
            raise ValidationError({"cancel_reason": [_("Only a planned session is cancelled.")]})
        s.status, s.cancel_reason, s.version = SessionStatus.CANCELLED, reason, s.version + 1
        s.save(update_fields=["status", "cancel_reason", "version"])
        audit.record(A.UPDATE, s, user=user, changes={"status": [SessionStatus.PLANNED, s.status],
                                                      "cancel_reason": [None, reason]})  # fmt: skip
        people = _enrolled_people(s) + _waiting_people(s)
        if people:
            notify.send(people, kind=REMINDER_KIND, url=_url(s), obj=s,
                        title=Message(gettext_lazy("Training session cancelled: %(course)s, %(when)s"),
                                      course=s.course.title, when=_when(s)),
                        body=reason)  # fmt: skip
    return s


def enrolled(session: Session) -> int:
    return session.enrolments.count()


def _for_trainee(user, session: Session, assignment: Assignment) -> tuple[Session, Assignment, str]:
    """The trainee themselves (who may take training) or a training manager acts on an enrolment: the session
    locked, the assignment read again, the trainee's name for the messages. Inside the caller's transaction."""
    if assignment.user_id == user.pk:
        if not training.may_take(user):
            raise PermissionDenied(_("You do not have permission to do this."))
    else:
        training.require_manage(user)
    s = _locked(session)
    a = Assignment.objects.select_related("user").get(pk=assignment.pk)
    return s, a, a.user.display_name or a.user.get_username()


def _tell_trainee(user, s: Session, a: Assignment, title) -> None:
    """A manager enrolled or withdrew someone else: that trainee is told (in their own language)."""
    from pharmacrm.core.deferred import Message
    from pharmacrm.notify import services as notify

    if a.user_id == user.pk or not a.user.is_active:
        return
    notify.send([a.user], kind=REMINDER_KIND, url=_url(s), obj=s,
                title=Message(title, course=s.course.title, when=_when(s)),
                body=Message(gettext_lazy("By %(manager)s. %(when)s–%(end)s, %(place)s."),
                             manager=user.display_name or user.get_username(), when=_when(s),
                             end=f"{timezone.localtime(s.ends_at):%H:%M}", place=s.place))  # fmt: skip


def enrol(user, session: Session, assignment: Assignment) -> Enrolment:
    """Enrol a trainee in a planned session from their open assignment of its course: the trainee themselves or a
    manager (the trainee is then told). The capacity is checked under the session's row lock. Audited."""
    with transaction.atomic():
        s, a, name = _for_trainee(user, session, assignment)
        _may_have_a_place(s, a, name)
        taken = Enrolment.objects.filter(session=s).count()
        if taken >= s.capacity:
            raise ValidationError({"session": [ngettext("The session is full (%(n)s place).",
                                                        "The session is full (%(n)s places).", s.capacity)
                                               % {"n": s.capacity}]})  # fmt: skip
        try:
            with transaction.atomic():
                e = Enrolment.objects.create(session=s, assignment=a, enrolled_by=user)
        except IntegrityError:
            raise ValidationError(
                {"assignment": [_("%(name)s is enrolled in this session already.") % {"name": name}]}
            ) from None
        audit.record(A.CREATE, e, user=user, changes={"session": [None, s.pk], "user": [None, a.user_id]})
        for w in WaitingEntry.objects.filter(session=s, assignment=a):  # enrolled: no longer waiting
            _drop(w, user, "enrolled")
        _tell_trainee(user, s, a, gettext_lazy("You are enrolled in a training session: %(course)s, %(when)s"))
    return e


def _may_have_a_place(s: Session, a: Assignment, name: str) -> None:
    """What enrolling and joining the waiting list both ask: an open session, the trainee's open assignment of its
    course, not enrolled there yet."""
    if s.status != SessionStatus.PLANNED or s.starts_at <= timezone.now():
        raise ValidationError({"session": [_("Only a planned session that has not started takes enrolments.")]})
    if a.course_id != s.course_id:
        raise ValidationError({"assignment": [_("%(name)s's assignment is of another course.") % {"name": name}]})
    if a.completed_at is not None:
        raise ValidationError({"assignment": [_("%(name)s has completed this course already.") % {"name": name}]})
    if Enrolment.objects.filter(session=s, assignment=a).exists():
        raise ValidationError({"assignment": [_("%(name)s is enrolled in this session already.") % {"name": name}]})


def withdraw(user, session: Session, assignment: Assignment) -> list[Enrolment]:
    """A trainee withdraws their own enrolment (or a manager withdraws anyone's, and the trainee is told) before the
    session starts: the place goes to the first on the waiting list (returned, enrolled and told), or is free again.
    Not once it has started, nor from a cancelled or held session. Audited."""
    with transaction.atomic():
        s, a, name = _for_trainee(user, session, assignment)
        e = Enrolment.objects.filter(session=s, assignment=a).first()
        if e is None:
            raise ValidationError({"assignment": [_("%(name)s is not enrolled in this session.") % {"name": name}]})
        if s.status != SessionStatus.PLANNED or s.starts_at <= timezone.now():
            raise ValidationError({"session": [
                _("The session has started (or is no longer planned): the enrolment is not withdrawn.")
            ]})  # fmt: skip
        audit.record(A.DELETE, e, user=user, changes={"session": [s.pk, None], "user": [a.user_id, None]})
        e.delete()
        _tell_trainee(user, s, a, gettext_lazy("You are withdrawn from a training session: %(course)s, %(when)s"))
        return _promote(s, user)


# --- the waiting list (候补名单) ----------------------------------------------------------------------------


def may_see_waiting_list(user, s: Session) -> bool:
    """Who waits, by name: the session's trainer, training managers and who sees training results (as the
    attendees); a trainee sees only their own place."""
    return may_take_attendance(user, s) or training.may_see_results(user)


# who on a waiting list may still take a place: not those whose course was completed meanwhile or whose account was
# closed (they are dropped when a place frees, with those who no longer hold a role that takes training)
LIVE = Q(assignment__completed_at__isnull=True, assignment__user__is_active=True)


def live_waiting(s: Session):
    """The session's waiting list in its order, those who can no longer take a place left out."""
    return WaitingEntry.objects.filter(LIVE, session=s).order_by("added_at", "id")


def _with_positions(entries):
    """Waiting-list entries annotated with `position` (1: the next to get a place), in one query."""
    ahead = (WaitingEntry.objects.filter(LIVE, session=OuterRef("session"))
             .filter(Q(added_at__lt=OuterRef("added_at")) | Q(added_at=OuterRef("added_at"), pk__lt=OuterRef("pk")))
             .values("session").annotate(n=Count("id")).values("n"))  # fmt: skip
    return entries.annotate(position=Coalesce(Subquery(ahead), 0) + 1)


def waiting_position(w: WaitingEntry) -> int:
    """1 for the first on the waiting list."""
    return _with_positions(WaitingEntry.objects.filter(pk=w.pk)).values_list("position", flat=True).get()


def join_waiting_list(user, session: Session, assignment: Assignment) -> WaitingEntry:
    """Put a trainee on a full session's waiting list, from their open assignment of its course: the trainee
    themselves or a manager (the trainee is then told). A session with a free place is enrolled in instead. When a
    place frees, the first on the list is enrolled at once (`_promote`). Audited."""
    with transaction.atomic():
        s, a, name = _for_trainee(user, session, assignment)
        _may_have_a_place(s, a, name)
        if WaitingEntry.objects.filter(session=s, assignment=a).exists():
            raise ValidationError({"assignment": [_("%(name)s is on this session's waiting list already.")
                                                  % {"name": name}]})  # fmt: skip
        if Enrolment.objects.filter(session=s).count() < s.capacity:
            raise ValidationError({"session": [_("The session has a free place: enrol instead of waiting.")]})
        try:
            with transaction.atomic():
                w = WaitingEntry.objects.create(session=s, assignment=a, added_by=user)
        except IntegrityError:
            raise ValidationError({"assignment": [_("%(name)s is on this session's waiting list already.")
                                                  % {"name": name}]}) from None  # fmt: skip
        position = waiting_position(w)
        audit.record(A.CREATE, w, user=user, changes={"session": [None, s.pk], "user": [None, a.user_id]},
                     place_in_line=position)  # fmt: skip
        _tell_trainee(user, s, a, gettext_lazy("You are on the waiting list of a training session: %(course)s, "
                                               "%(when)s"))  # fmt: skip
    w.position = position
    return w


def leave_waiting_list(user, session: Session, assignment: Assignment) -> None:
    """Take a trainee off a session's waiting list: themselves, or a manager (the trainee is then told). Audited."""
    with transaction.atomic():
        s, a, name = _for_trainee(user, session, assignment)
        w = WaitingEntry.objects.filter(session=s, assignment=a).first()
        if w is None:
            raise ValidationError({"assignment": [_("%(name)s is not on this session's waiting list.")
                                                  % {"name": name}]})  # fmt: skip
        _drop(w, user, "left")
        _tell_trainee(user, s, a, gettext_lazy("You are taken off the waiting list of a training session: "
                                               "%(course)s, %(when)s"))  # fmt: skip


def _drop(w: WaitingEntry, actor, why: str) -> None:
    audit.record(A.DELETE, w, user=actor, changes={"session": [w.session_id, None], "user": [w.assignment.user_id, None]},
                 reason=why)  # fmt: skip
    w.delete()


def _promote(s: Session, actor) -> list[Enrolment]:
    """A place freed in the locked session `s` (a withdrawal, a higher capacity), inside the caller's transaction:
    the first on the waiting list are enrolled into the free places, in the list's order, and told; whoever can no
    longer take a place (the course completed, the account closed) is dropped from the list on the way. Audited,
    by the user whose change freed the place."""
    from pharmacrm.core.deferred import Message
    from pharmacrm.notify import services as notify

    if s.status != SessionStatus.PLANNED or s.starts_at <= timezone.now():
        return []
    free = s.capacity - Enrolment.objects.filter(session=s).count()
    promoted: list[Enrolment] = []
    if free <= 0:
        return promoted
    for w in s.waiting.select_related("assignment__user").order_by("added_at", "id"):
        a = w.assignment
        if a.completed_at is not None or not a.user.is_active or not training.may_take(a.user):
            _drop(w, actor, "no longer needed")  # the course completed, the account closed, no training role now
            continue
        _drop(w, actor, "enrolled")
        e = Enrolment.objects.create(session=s, assignment=a, enrolled_by=actor)
        audit.record(A.CREATE, e, user=actor, changes={"session": [None, s.pk], "user": [None, a.user_id]},
                     waiting_list=True)  # fmt: skip
        notify.send([a.user], kind=REMINDER_KIND, url=_url(s), obj=s,
                    title=Message(gettext_lazy("A place is free: you are enrolled in a training session: %(course)s, "
                                               "%(when)s"), course=s.course.title, when=_when(s)),
                    body=Message(gettext_lazy("You were on the waiting list. %(when)s–%(end)s, %(place)s. If you "
                                              "cannot come, withdraw, so that the next on the list gets the place."),
                                 when=_when(s), end=f"{timezone.localtime(s.ends_at):%H:%M}", place=s.place))  # fmt: skip
        promoted.append(e)
        free -= 1
        if not free:
            break
    return promoted


def take_attendance(user, session: Session, marks: dict, *, materials_used: str | None = None,
                    trainer_note: str | None = None, version=None) -> Session:  # fmt: skip
    """The trainer or a manager takes a started session's attendance ({enrolment id: present / absent / excused})
    and writes its record; the session is then held. A trainee marked present whose course has no test has the
    attendance recorded on their assignment (completed, certificate issued). All or nothing, audited."""
    if not may_take_attendance(user, session):
        raise PermissionDenied(_("The session's trainer or a training manager takes the attendance."))
    with transaction.atomic():
        s = _locked(session, version)
        if s.status == SessionStatus.CANCELLED:
            raise ValidationError({"attendance": [_("The session was cancelled.")]})
        if s.starts_at > timezone.now():
            raise ValidationError({"attendance": [_("The attendance is taken once the session has started.")]})
        enrolments = {e.pk: e for e in s.enrolments.select_related("assignment__user", "assignment__course")}
        errors = []
        clean: dict[int, str] = {}
        for key, value in (marks or {}).items():
            try:
                eid = int(str(key).strip())
            except ValueError:
                eid = 0
            if eid not in enrolments:
                errors.append(_("“%(key)s” is not enrolled in this session.") % {"key": str(key)[:20]})
            elif value not in Presence.values and value != "":
                errors.append(_("“%(value)s” is not present, absent or excused.") % {"value": str(value)[:20]})
            else:
                clean[eid] = value
        if errors:
            raise ValidationError({"attendance": errors})
        for eid, value in clean.items():
            e = enrolments[eid]
            if e.attendance == value:
                continue
            a = e.assignment
            if e.attendance == Presence.PRESENT and a.completed_at is not None and a.method == "attendance":
                name = a.user.display_name or a.user.get_username()
                raise ValidationError({"attendance": [
                    _("%(name)s's attendance completed the course already; it is not taken back here.") % {"name": name}
                ]})  # fmt: skip
            audit.record(A.UPDATE, e, user=user, changes={"attendance": [e.attendance or None, value or None]})
            e.attendance = value
            e.save(update_fields=["attendance"])
            if value == Presence.PRESENT and a.completed_at is None and not a.course.questions.exists():
                training.complete_by_attendance(user, a)
        changes = {}
        if s.status != SessionStatus.HELD:
            changes["status"] = [s.status, SessionStatus.HELD]
            s.status = SessionStatus.HELD
        for name, value in (("materials_used", materials_used), ("trainer_note", trainer_note)):
            if value is None:
                continue
            value = str(value).replace("\x00", "").strip()[:TEXT_MAX]
            if value != getattr(s, name):
                changes[name] = [getattr(s, name) or None, value or None]
                setattr(s, name, value)
        if changes:
            s.version += 1
            s.save(update_fields=["status", "materials_used", "trainer_note", "version"])
            audit.record(A.UPDATE, s, user=user, changes=changes)
    return s


def enrolment_counts(sessions) -> dict[int, int]:
    return dict(
        Enrolment.objects.filter(session__in=sessions).values_list("session").annotate(n=Count("id")).order_by()
    )


def waiting_counts(sessions) -> dict[int, int]:
    """How many wait for a place, per session (those who still may take one)."""
    return dict(
        WaitingEntry.objects.filter(LIVE, session__in=sessions).values_list("session").annotate(n=Count("id")).order_by()
    )


def my_waiting(user, sessions) -> dict[int, tuple[int, int]]:
    """The user's places on the sessions' waiting lists: {session id: (assignment id, position)}, in one query."""
    entries = _with_positions(WaitingEntry.objects.filter(LIVE, session__in=sessions, assignment__user=user))
    return {session: (assignment, position) for session, assignment, position
            in entries.values_list("session_id", "assignment_id", "position")}  # fmt: skip


# --- the worker: the day-before reminder ------------------------------------------------------------------


def _url(s: Session) -> str:
    from django.urls import reverse

    return reverse("training:session", args=[s.pk])


def _when(s: Session) -> str:
    return _when_at(s.starts_at)


def _when_at(at: dt.datetime) -> str:
    return f"{timezone.localtime(at):%Y-%m-%d %H:%M}"


def remind_sessions(today: dt.date | None = None) -> int:
    """The worker's job (`remind_training_sessions`): the enrolled trainees of each planned session starting
    tomorrow (Beijing) are reminded once (bell and e-mail in their language) — the session's stamp set first,
    conditionally, so two runs at once remind once. Returns the sessions reminded."""
    from pharmacrm.core.deferred import Message
    from pharmacrm.notify import services as notify

    today = today or timezone.localdate()
    tomorrow = today + dt.timedelta(days=1)
    start = timezone.make_aware(dt.datetime.combine(tomorrow, dt.time.min))
    end = start + dt.timedelta(days=1)
    due = Session.objects.filter(status=SessionStatus.PLANNED, reminded_at__isnull=True, starts_at__gte=start,
                                 starts_at__lt=end).select_related("course").order_by("id")  # fmt: skip
    done = 0
    now = timezone.now()
    for s in due:
        with transaction.atomic():
            if not Session.objects.filter(pk=s.pk, reminded_at__isnull=True).update(reminded_at=now):
                continue
            people = list(User.objects.filter(training_assignments__enrolments__session=s, is_active=True)
                          .order_by("username"))  # fmt: skip
            if people:
                notify.send(people, kind=REMINDER_KIND, url=_url(s), obj=s,
                            title=Message(gettext_lazy("Training session tomorrow: %(course)s, %(when)s"),
                                          course=s.course.title, when=_when(s)),
                            body=Message(gettext_lazy("Place: %(place)s. Trainer: %(trainer)s."),
                                         place=s.place, trainer=s.trainer_display))  # fmt: skip
            audit.record(A.UPDATE, s, user=training.WORKER, changes={"reminded_at": [None, now]}, people=len(people))
        done += 1
    return done
