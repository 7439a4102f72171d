"""Classroom sessions and certificates (培训实施记录与证书): planning refused field by field, enrolment within the
capacity (two at once on PostgreSQL), the trainer's attendance completing a classroom course, the certificate's
number without gaps, its expiry and revocation, the day-before reminder once, the pages, PDF, export and API per
role and in three languages — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone, translation
from pypdf import PdfReader

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.notify.models import Notification
from pharmacrm.training import classroom, training
from pharmacrm.training.models import Certificate, Enrolment, Session
from tests.api.conftest import token_for

from .test_training import BANK, right_answers

pytestmark = pytest.mark.django_db
ROLES = [r.value for r in Role]


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def when(days: float, hour: int = 9) -> dt.datetime:
    day = timezone.localdate() + dt.timedelta(days=days)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


def session_data(**over) -> dict:
    return {"starts_at": when(3), "ends_at": when(3, 12), "place": "总部三楼培训室", "trainer_name": "外聘讲师 周老师",
            "capacity": "2", **over}  # fmt: skip


@pytest.fixture
def talk(users):
    """A classroom course (no test) assigned to the agent, the support colleague, the rep and the expert."""
    course = training.save_course(users["admin"], None, {
        "title": "客户沟通技巧（面授）", "category": "communication", "hours": "3", "pass_mark": "80",
        "max_attempts": "3", "status": "published", "valid_months": "24",
    })  # fmt: skip
    new, _had = training.assign(users["manager"], course, [users[n] for n in ("agent", "support", "rep", "expert")],
                                timezone.localdate() + dt.timedelta(days=20))  # fmt: skip
    return course, {a.user.username: a for a in new}


def test_a_session_is_refused_field_by_field_and_nothing_is_written(users, talk):
    course, _a = talk
    bad = session_data(starts_at=when(-1), ends_at=when(-2), place="  ", trainer_name="", capacity="0")
    with pytest.raises(ValidationError) as e:
        classroom.create_session(users["manager"], course, bad)
    errors = e.value.message_dict
    assert errors["starts_at"] == ["A session is planned in the future."]
    assert errors["ends_at"] == ["The end must come after the start."]
    assert errors["place"] == ["Say where the session is held."]
    assert errors["trainer"] == ["Choose the trainer, or give an external trainer's name."]
    assert errors["capacity"] == ["Between 1 and 500."]
    with pytest.raises(PermissionDenied):
        classroom.create_session(users["kam"], course, session_data())
    assert not Session.objects.exists()


def test_enrolment_capacity_attendance_and_the_certificate(users, talk):
    course, a = talk
    s = classroom.create_session(users["manager"], course, session_data(trainer=users["expert"].pk, trainer_name=""))
    # the trainee enrols themselves; a manager enrols another; the third finds it full
    classroom.enrol(users["agent"], s, a["agent"])
    with pytest.raises(PermissionDenied):
        classroom.enrol(users["agent"], s, a["support"])  # not their assignment, not a manager
    classroom.enrol(users["manager"], s, a["support"])
    with pytest.raises(ValidationError) as e:
        classroom.enrol(users["rep"], s, a["rep"])
    assert e.value.message_dict["session"] == ["The session is full (2 places)."]
    with pytest.raises(ValidationError) as e:
        classroom.enrol(users["agent"], s, a["agent"])
    assert "full" in str(e.value) or "enrolled" in str(e.value)
    assert Enrolment.objects.filter(session=s).count() == 2
    e_agent, e_support = (Enrolment.objects.get(session=s, assignment=a[n]) for n in ("agent", "support"))
    # before it starts, no attendance; the rep (neither trainer nor manager) never
    with pytest.raises(ValidationError) as e:
        classroom.take_attendance(users["expert"], s, {e_agent.pk: "present"})
    assert e.value.message_dict["attendance"] == ["The attendance is taken once the session has started."]
    Session.objects.filter(pk=s.pk).update(starts_at=when(0, 0), ends_at=when(0, 1))
    with pytest.raises(PermissionDenied):
        classroom.take_attendance(users["rep"], s, {e_agent.pk: "present"})
    with pytest.raises(ValidationError) as e:
        classroom.take_attendance(users["expert"], s, {e_agent.pk: "late"})
    assert "“late” is not present, absent or excused." in e.value.message_dict["attendance"]
    # the trainer (the expert, no training manager) takes it: present completes, absent does not
    classroom.take_attendance(users["expert"], s, {str(e_agent.pk): "present", str(e_support.pk): "absent"},
                              materials_used="讲义；案例 6 则", trainer_note="参与积极")  # fmt: skip
    s.refresh_from_db()
    assert (s.status, s.materials_used, s.trainer_note) == ("held", "讲义；案例 6 则", "参与积极")
    a["agent"].refresh_from_db()
    a["support"].refresh_from_db()
    assert a["agent"].method == "attendance" and a["agent"].completed_at is not None
    assert a["support"].completed_at is None
    cert = Certificate.objects.get()
    year = timezone.localdate().year
    assert cert.number == f"PX-{year}-00001" and cert.user == users["agent"] and cert.course == course
    assert cert.expires_on == a["agent"].expires_on == training.expiry(course, a["agent"].completed_at)
    assert AuditEntry.objects.filter(object_type="training.certificate", action="create").count() == 1
    assert AuditEntry.objects.filter(object_type="training.enrolment", action="update").count() == 2
    # a manager records the support colleague's attendance the old way: the next number, no gap
    training.record_attendance(users["manager"], a["support"])
    assert sorted(Certificate.objects.values_list("number", flat=True)) == [f"PX-{year}-00001", f"PX-{year}-00002"]
    # cancelling needs a reason, and a planned session
    with pytest.raises(ValidationError) as e:
        classroom.cancel_session(users["manager"], s, "  ")
    assert e.value.message_dict["cancel_reason"] == ["Give the reason for cancelling the session."]
    with pytest.raises(ValidationError):
        classroom.cancel_session(users["manager"], s, "讲师生病")  # held already


def test_a_passed_test_issues_a_certificate_a_rollback_gives_its_number_back_and_revoking_is_audited(users):
    course = training.save_course(users["admin"], None, {
        "title": "GSP合规培训", "category": "compliance", "hours": "2", "pass_mark": "80", "max_attempts": "2",
        "status": "published", "valid_months": "12", "questions": BANK})  # fmt: skip
    new, _had = training.assign(users["manager"], course, [users["agent"], users["rep"]], timezone.localdate())
    year = timezone.localdate().year
    with pytest.raises(RuntimeError), transaction.atomic():
        training.submit(users["agent"], new[0].pk, right_answers(course))
        raise RuntimeError("the request failed after the completion")
    assert not Certificate.objects.exists()
    training.submit(users["rep"], new[1].pk, right_answers(course))
    cert = Certificate.objects.get()
    assert (cert.number, cert.score, cert.user) == (f"PX-{year}-00001", 100, users["rep"])
    assert classroom.certificate_state(cert) == "valid"
    assert classroom.certificate_state(cert, cert.expires_on + dt.timedelta(days=1)) == "expired"
    with pytest.raises(PermissionDenied):
        classroom.revoke(users["auditor"], cert, "作弊")
    with pytest.raises(ValidationError) as e:
        classroom.revoke(users["manager"], cert, "")
    assert e.value.message_dict["reason"] == ["Give the reason for revoking the certificate."]
    classroom.revoke(users["manager"], cert, "考试作弊")
    cert.refresh_from_db()
    assert classroom.certificate_state(cert) == "revoked" and cert.revoke_reason == "考试作弊"
    entry = AuditEntry.objects.filter(object_type="training.certificate", action="update").get()
    assert entry.actor == users["manager"] and "考试作弊" in str(entry.changes)


def test_the_day_before_reminder_is_sent_once_to_the_enrolled(users, talk):
    course, a = talk
    tomorrow = classroom.create_session(users["manager"], course, session_data(starts_at=when(1, 14),
                                                                                 ends_at=when(1, 17)))  # fmt: skip
    later = classroom.create_session(users["manager"], course, session_data())
    classroom.enrol(users["agent"], tomorrow, a["agent"])
    classroom.enrol(users["rep"], later, a["rep"])
    assert classroom.remind_sessions() == 1
    assert classroom.remind_sessions() == 0
    sent = Notification.objects.filter(kind=classroom.REMINDER_KIND)
    assert [n.recipient.username for n in sent] == ["agent"]


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_enrolments_at_once_cannot_exceed_the_capacity(users, talk):
    from tests.concurrency import held_while

    course, a = talk
    s = classroom.create_session(users["manager"], course, session_data(capacity="1"))
    out = []

    def second():
        try:
            with translation.override("en"):  # a thread of its own: the test's language is not its
                classroom.enrol(users["rep"], s, a["rep"])
            out.append("enrolled")
        except ValidationError as e:
            out.append(e.message_dict)

    held_while(lambda: classroom.enrol(users["agent"], s, a["agent"]), second)
    assert out == [{"session": ["The session is full (1 place)."]}]
    assert Enrolment.objects.filter(session=s).count() == 1


# --- pages, PDF, export, API -------------------------------------------------------------------------------


@pytest.fixture
def certified(users, talk, team_north):
    """The rep (North, led by the KAM) and the agent attended a held session: both certified."""
    team_north.lead = users["kam"]
    team_north.save()
    course, a = talk
    s = classroom.create_session(users["manager"], course, session_data(capacity="5"))
    for n in ("rep", "agent"):
        classroom.enrol(users["manager"], s, a[n])
    Session.objects.filter(pk=s.pk).update(starts_at=when(0, 0), ends_at=when(0, 1))
    classroom.take_attendance(users["manager"], s, {e.pk: "present" for e in s.enrolments.all()})
    return s, {c.user.username: c for c in Certificate.objects.select_related("user")}


SEES_ALL = {"admin", "manager", "auditor"}


@pytest.mark.parametrize("role", ROLES)
def test_who_sees_which_certificate_and_session(role, certified, client_for, users):
    s, certs = certified
    c = client_for(role)
    rep_cert = certs["rep"]
    sees_rep = role in SEES_ALL or role in ("kam", "rep")
    assert c.get(f"/training/certificates/{rep_cert.pk}/").status_code == (200 if sees_rep else 404)
    pdf = c.get(f"/training/certificates/{rep_cert.pk}/pdf/")
    assert pdf.status_code == (200 if sees_rep else 404)
    lists = c.get("/training/certificates/")
    assert lists.status_code == (200 if role in SEES_ALL or role == "kam" else 403)
    assert c.get("/training/certificates/export.xlsx").status_code == lists.status_code
    assert c.get(f"/training/sessions/{s.pk}/").status_code == 200
    assert c.get(f"/training/courses/{s.course_id}/sessions/new/").status_code == (
        200 if role in ("admin", "manager") else 403
    )
    api = c.get("/api/v1/training/certificates/", HTTP_AUTHORIZATION=f"Bearer {token_for(users[role])}")
    numbers = sorted(x["number"] for x in api.json()["results"]) if api.status_code == 200 else None
    if role in SEES_ALL:
        assert len(numbers) == 2
    elif role == "kam":
        assert numbers == [rep_cert.number]  # the lead of the rep's team
    elif role in ("rep", "agent"):
        assert numbers == [certs[role].number]
    else:
        assert api.status_code == 200 and numbers == []


def test_the_certificate_pdf_export_and_filters(certified, client_for, users):
    _s, certs = certified
    rep = certs["rep"]
    r = client_for("rep").get(f"/training/certificates/{rep.pk}/pdf/")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages).replace("\x00", "")
    assert rep.number in text and "培训合格证书" in text and "Training Certificate" in text
    assert "客户沟通技巧（面授）" in text and "rep" in text
    assert AuditEntry.objects.filter(object_type="training.certificate", object_id=str(rep.pk), action="export").exists()
    manager = client_for("manager")
    classroom.revoke(users["manager"], certs["agent"], "重复发证")
    page = manager.get("/training/certificates/?state=revoked", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert certs["agent"].number in page and rep.number not in page
    bad = manager.get("/training/certificates/?state=lost", HTTP_ACCEPT_LANGUAGE="en")
    assert bad.status_code == 400 and "One of valid, expired, revoked." in bad.content.decode()
    api = manager.get("/api/v1/training/certificates/?state=lost",
                      HTTP_AUTHORIZATION=f"Bearer {token_for(users['manager'])}", HTTP_ACCEPT_LANGUAGE="en")
    assert api.status_code == 400 and "state" in api.json()
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(manager.get("/training/certificates/export.xlsx?state=valid").content))
    assert [row[0] for row in book.active.iter_rows(min_row=2, values_only=True)] == [rep.number]
    assert AuditEntry.objects.filter(object_type="training.certificate", action="export", object_id="").exists()
    # the person's training page shows their certificates
    assert rep.number in client_for("rep").get("/training/").content.decode()
    assert rep.number in manager.get(f"/training/people/{users['rep'].pk}/").content.decode()


@pytest.mark.parametrize("lang, words", [
    ("zh-hans", ("培训证书", "课堂培训", "出勤")), ("zh-hant", ("培訓證書", "課堂培訓", "出勤")),
    ("en", ("Training certificates", "Classroom session", "Attendance")),
])  # fmt: skip
def test_the_pages_in_each_language(lang, words, certified, client_for):
    s, _certs = certified
    manager = client_for("manager")
    assert words[0] in manager.get("/training/certificates/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    session = manager.get(f"/training/sessions/{s.pk}/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    assert words[1] in session and words[2] in session
