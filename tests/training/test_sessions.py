"""Running a classroom session after it is planned (培训实施): changing it from the version loaded (a stale one
refused, the capacity never below the enrolled, a held one its notes only, the enrolled told once of a new time or
place), cancelling it (no attendance, no reminder, out of the open list), a trainee withdrawing before the start,
and the sessions API per role."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone, translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.customers.services import ConflictError
from pharmacrm.notify.models import Notification
from pharmacrm.training import classroom, training
from pharmacrm.training.models import Enrolment, Session

pytestmark = pytest.mark.django_db
ROLES = [r.value for r in Role]
MANAGERS = {"admin", "manager"}
TAKERS = {r for r in ROLES if r != "auditor"}  # training.take: everyone but the auditor


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def when(days: float, hour: int = 9) -> dt.datetime:
    day = timezone.localdate() + dt.timedelta(days=days)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


def local(at: dt.datetime) -> str:
    return f"{timezone.localtime(at):%Y-%m-%dT%H:%M}"


@pytest.fixture
def course(users):
    """A classroom course (no test) assigned to everyone who takes training."""
    c = training.save_course(users["admin"], None, {
        "title": "药品不良反应报告（面授）", "category": "compliance", "hours": "2", "pass_mark": "80",
        "max_attempts": "3", "status": "published", "valid_months": "12",
    })  # fmt: skip
    training.assign(
        users["manager"], c, [users[r] for r in sorted(TAKERS)], timezone.localdate() + dt.timedelta(days=30)
    )
    return c


def assignment(course, user):
    return course.assignments.get(user=user)


def plan(users, course, **over) -> Session:
    data = {"starts_at": when(5), "ends_at": when(5, 12), "place": "总部三楼培训室", "trainer_name": "外聘讲师 周老师",
            "capacity": "3", **over}  # fmt: skip
    return classroom.create_session(users["manager"], course, data)


CHANGED, CANCELLED, TOMORROW, ENROLLED, WITHDRAWN = (
    "课堂培训有变更",
    "课堂培训已取消",
    "明天有课堂培训",
    "已为你报名课堂培训",
    "已取消你的课堂培训报名",
)  # in the recipients' language


def told(title: str) -> list[str]:
    """Who was told (bell), by the start of the title as stored (the product's language, Simplified Chinese)."""
    return sorted(n.recipient.username for n in Notification.objects.filter(kind=classroom.REMINDER_KIND)
                  if n.title.startswith(title))  # fmt: skip


@pytest.fixture
def api_for(users):
    from rest_framework.test import APIClient

    from tests.api.conftest import token_for

    def make(role: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users[role])}", HTTP_ACCEPT_LANGUAGE="en")
        return client

    return make


def test_a_change_of_time_or_place_is_told_once_to_the_enrolled_and_audited_before_and_after(users, course):
    s = plan(users, course)
    for name in ("agent", "rep"):
        classroom.enrol(users[name], s, assignment(course, users[name]))
    s = classroom.update_session(users["manager"], s, {"place": "二楼大会议室", "starts_at": when(6),
                                                       "ends_at": when(6, 11)}, s.version)  # fmt: skip
    assert (s.place, s.starts_at, s.version) == ("二楼大会议室", when(6), 2)
    assert told(CHANGED) == ["agent", "rep"]  # one message each for the one change
    note = Notification.objects.filter(recipient=users["rep"]).get()  # read in English
    assert note.shown_title.startswith("Training session changed: 药品不良反应报告（面授）, now ")
    assert (
        "Now: " in note.shown_body
        and "二楼大会议室" in note.shown_body
        and "总部三楼培训室" in note.shown_body
    )
    entry = AuditEntry.objects.filter(object_type="training.session", action="update").latest("id")
    assert entry.changes["place"] == ["总部三楼培训室", "二楼大会议室"] and "starts_at" in entry.changes
    # the capacity and the notes change without telling anyone again
    classroom.update_session(users["manager"], s, {"capacity": "10", "notes": "请携带工牌"}, s.version)
    assert Notification.objects.count() == 2
    s.refresh_from_db()
    assert (s.capacity, s.notes, s.version) == (10, "请携带工牌", 3)
    # saving nothing new changes nothing
    classroom.update_session(users["manager"], s, {"place": "二楼大会议室"}, s.version)
    s.refresh_from_db()
    assert s.version == 3


def test_a_stale_version_and_a_capacity_below_the_enrolled_are_refused(users, course, client_for):
    s = plan(users, course)
    for name in ("agent", "rep"):
        classroom.enrol(users["manager"], s, assignment(course, users[name]))
    with pytest.raises(ValidationError) as e:
        classroom.update_session(users["manager"], s, {"capacity": "1", "place": "别处"}, s.version)
    assert e.value.message_dict["capacity"] == [
        "2 trainees are enrolled already: the capacity cannot be lower."
    ]
    with pytest.raises(PermissionDenied):
        classroom.update_session(users["rep"], s, {"place": "别处"}, s.version)
    s.refresh_from_db()
    assert (s.capacity, s.place, s.version) == (3, "总部三楼培训室", 1)  # nothing half-written
    classroom.update_session(users["admin"], s, {"notes": "另一位管理员先保存了"}, 1)
    with pytest.raises(ConflictError):
        classroom.update_session(users["manager"], s, {"place": "别处"}, 1)
    # the page: the form names the field; a stale version is a 409 saying so; a trainee may not open it
    page = client_for("manager")
    form = {"starts_at": local(s.starts_at), "ends_at": local(s.ends_at), "place": "别处", "trainer": "",
            "trainer_name": "周老师", "capacity": "1", "notes": "", "version": "2"}  # fmt: skip
    r = page.post(f"/training/sessions/{s.pk}/edit/", form, HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 400
    assert "Capacity: 2 trainees are enrolled already: the capacity cannot be lower." in r.content.decode()
    r = page.post(f"/training/sessions/{s.pk}/edit/", {**form, "capacity": "2", "version": "1"},
                  HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 409 and "Someone else changed this record" in r.content.decode()
    r = page.post(f"/training/sessions/{s.pk}/edit/", {**form, "capacity": "2"}, HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 302
    s.refresh_from_db()
    assert (s.capacity, s.place, s.version) == (2, "别处", 3)
    assert client_for("rep").get(f"/training/sessions/{s.pk}/edit/").status_code == 403
    zh = page.get(f"/training/sessions/{s.pk}/edit/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "修改本次培训" in zh and "给学员的备注" in zh


def test_a_stale_attendance_or_cancel_form_answers_409_keeping_what_was_entered(users, course, client_for):
    """A stale attendance or cancel form was sent back to the page with a message and the marks, record and reason
    typed were gone. Now the page answers 409, as it is now, with the error and what was entered; nothing saved."""
    s = plan(users, course)
    for name in ("agent", "rep"):
        classroom.enrol(users["manager"], s, assignment(course, users[name]))
    cancel = client_for("manager").post(f"/training/sessions/{s.pk}/cancel/", {
        "cancel_reason": "讲师临时出差", "version": "99"}, HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert cancel.status_code == 409
    assert "Someone else changed this record" in cancel.content.decode() and "讲师临时出差</textarea>" in cancel.content.decode()
    s.refresh_from_db()
    assert s.status == "planned"

    Session.objects.filter(pk=s.pk).update(starts_at=when(-1, 9), ends_at=when(-1, 12))
    agent_place = s.enrolments.get(assignment__user=users["agent"])
    r = client_for("manager").post(f"/training/sessions/{s.pk}/attendance/", {
        f"e{agent_place.pk}": "present", "materials_used": "课件第二版", "trainer_note": "互动良好", "version": "99",
    }, HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    page = r.content.decode()
    assert r.status_code == 409 and "Someone else changed this record" in page
    assert f'name="e{agent_place.pk}"' in page and '<option value="present" selected>' in page
    assert "课件第二版</textarea>" in page and "互动良好</textarea>" in page
    agent_place.refresh_from_db()
    s.refresh_from_db()
    assert (agent_place.attendance, s.materials_used, s.status) == ("", "", "planned")


def test_a_held_session_changes_its_notes_only(users, course, client_for):
    s = plan(users, course)
    e = classroom.enrol(users["agent"], s, assignment(course, users["agent"]))
    Session.objects.filter(pk=s.pk).update(starts_at=when(0, 0), ends_at=when(0, 1))
    s.refresh_from_db()
    with pytest.raises(ValidationError) as err:
        classroom.update_session(users["manager"], s, {"place": "别处", "capacity": "5"}, s.version)
    assert err.value.message_dict == {"capacity": ["The session has been held: only its notes are changed."],
                                      "place": ["The session has been held: only its notes are changed."]}  # fmt: skip
    classroom.take_attendance(users["manager"], s, {e.pk: "present"})
    s.refresh_from_db()
    s = classroom.update_session(users["manager"], s, {"notes": "课后资料已发邮件"}, s.version)
    assert s.notes == "课后资料已发邮件" and s.place == "总部三楼培训室"
    page = (
        client_for("manager")
        .get(f"/training/sessions/{s.pk}/edit/", HTTP_ACCEPT_LANGUAGE="en")
        .content.decode()
    )
    assert "only its notes are changed" in page and 'name="place"' not in page


def test_a_cancelled_session_is_told_takes_no_attendance_is_not_reminded_and_leaves_the_open_list(
    users, course, client_for, api_for
):
    s = plan(users, course, starts_at=when(1, 14), ends_at=when(1, 17))
    e = classroom.enrol(users["agent"], s, assignment(course, users["agent"]))
    with pytest.raises(ValidationError) as err:
        classroom.cancel_session(users["manager"], s, " ", s.version)
    assert err.value.message_dict["cancel_reason"] == ["Give the reason for cancelling the session."]
    classroom.cancel_session(users["manager"], s, "讲师临时出差", s.version)
    assert told(CANCELLED) == ["agent"]
    assert classroom.remind_sessions() == 0 and told(TOMORROW) == []
    Session.objects.filter(pk=s.pk).update(starts_at=when(0, 0), ends_at=when(0, 1))
    with pytest.raises(ValidationError) as err:
        classroom.take_attendance(users["manager"], s, {e.pk: "present"})
    assert err.value.message_dict["attendance"] == ["The session was cancelled."]
    s.refresh_from_db()
    with pytest.raises(ValidationError):
        classroom.update_session(users["manager"], s, {"notes": "x"}, s.version)
    # kept, with its reason; no longer open
    page = client_for("agent").get(f"/training/sessions/{s.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "讲师临时出差" in page and "Change the session" not in page
    api = api_for("agent")
    assert [x["id"] for x in api.get("/api/v1/training/sessions/?status=open").json()["results"]] == []
    assert [x["id"] for x in api.get("/api/v1/training/sessions/?status=cancelled").json()["results"]] == [
        s.pk
    ]
    entries = AuditEntry.objects.filter(object_type="training.session", object_id=str(s.pk), action="update")
    assert any((x.changes or {}).get("cancel_reason") == [None, "讲师临时出差"] for x in entries)


def test_a_moved_session_is_reminded_again_for_its_new_day(users, course):
    s = plan(users, course, starts_at=when(1, 14), ends_at=when(1, 17))
    classroom.enrol(users["agent"], s, assignment(course, users["agent"]))
    assert classroom.remind_sessions() == 1
    s.refresh_from_db()
    classroom.update_session(
        users["manager"], s, {"starts_at": when(3, 14), "ends_at": when(3, 17)}, s.version
    )
    assert classroom.remind_sessions(today=timezone.localdate() + dt.timedelta(days=2)) == 1
    assert told(TOMORROW) == ["agent", "agent"]


def test_a_trainee_withdraws_before_the_start_and_not_after(users, course, client_for):
    s = plan(users, course, capacity="1")
    classroom.enrol(users["agent"], s, assignment(course, users["agent"]))
    with pytest.raises(ValidationError) as err:
        classroom.enrol(users["rep"], s, assignment(course, users["rep"]))
    assert err.value.message_dict["session"] == ["The session is full (1 place)."]
    # another trainee may not withdraw the agent; the agent does, from the page
    assert client_for("rep").post(f"/training/sessions/{s.pk}/withdraw/",
                                  {"assignment": assignment(course, users["agent"]).pk}).status_code == 404  # fmt: skip
    agent = client_for("agent")
    assert (
        "Withdraw my enrolment"
        in agent.get(f"/training/sessions/{s.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    )
    r = agent.post(
        f"/training/sessions/{s.pk}/withdraw/", {"assignment": assignment(course, users["agent"]).pk}
    )
    assert r.status_code == 302 and not Enrolment.objects.filter(session=s).exists()
    entry = AuditEntry.objects.get(object_type="training.enrolment", action="delete")
    assert entry.actor == users["agent"] and entry.changes["session"] == [s.pk, None]
    classroom.enrol(users["rep"], s, assignment(course, users["rep"]))  # the place is free again
    Session.objects.filter(pk=s.pk).update(starts_at=when(0, 0), ends_at=when(0, 1))
    translation.activate("en")  # the pages above activated their own
    with pytest.raises(ValidationError) as err:
        classroom.withdraw(users["rep"], s, assignment(course, users["rep"]))
    assert "has started" in err.value.message_dict["session"][0]
    assert Enrolment.objects.filter(session=s, assignment__user=users["rep"]).exists()


def test_a_trainee_enrolled_or_withdrawn_by_a_manager_is_told_and_not_when_acting_themselves(users, course):
    """A manager who enrolled or withdrew a trainee left them unaware of the change to their day."""
    s = plan(users, course)
    classroom.enrol(users["manager"], s, assignment(course, users["agent"]))
    classroom.enrol(users["rep"], s, assignment(course, users["rep"]))
    assert told(ENROLLED) == ["agent"]
    note = Notification.objects.get(recipient=users["agent"])  # read in English
    assert note.shown_title.startswith("You are enrolled in a training session: 药品不良反应报告（面授）, ")
    assert note.shown_body.startswith("By manager. ") and "总部三楼培训室" in note.shown_body
    assert note.url == f"/training/sessions/{s.pk}/"

    classroom.withdraw(users["manager"], s, assignment(course, users["agent"]))
    classroom.withdraw(users["rep"], s, assignment(course, users["rep"]))
    assert told(WITHDRAWN) == ["agent"]
    assert Notification.objects.filter(recipient=users["rep"]).count() == 0


def test_my_training_lists_the_sessions_to_come_of_my_courses_to_enrol_in_or_withdraw_from(users, course, client_for):
    """A trainee had to find a session through the course's page; "My training" now lists the planned sessions to
    come of their open courses — enrol there, or withdraw from one they are in — and no cancelled, past or full one
    offers a place."""
    mine = plan(users, course, place="总部三楼培训室")
    full = plan(users, course, starts_at=when(8), ends_at=when(8, 12), place="二楼大会议室", capacity="1")
    classroom.enrol(users["rep"], full, assignment(course, users["rep"]))
    cancelled = plan(users, course, starts_at=when(9), ends_at=when(9, 12), place="已取消的教室")
    classroom.cancel_session(users["manager"], cancelled, "讲师出差", cancelled.version)
    past = plan(users, course, starts_at=when(3), ends_at=when(3, 12), place="过去的教室")
    Session.objects.filter(pk=past.pk).update(starts_at=when(-3), ends_at=when(-3, 12))
    classroom.enrol(users["agent"], mine, assignment(course, users["agent"]))

    agent = client_for("agent").get("/training/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    section = agent[agent.index('id="my-sessions"'):]
    assert "总部三楼培训室" in section and "二楼大会议室" in section
    assert "已取消的教室" not in section and "过去的教室" not in section
    assert f'action="/training/sessions/{mine.pk}/withdraw/"' in section  # enrolled: withdraw
    assert f'action="/training/sessions/{full.pk}/enrol/"' not in section and "Full" in section

    expert = client_for("expert").get("/training/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'action="/training/sessions/{mine.pk}/enrol/"' in expert
    response = client_for("expert").post(f"/training/sessions/{mine.pk}/enrol/",
                                         {"assignment": assignment(course, users["expert"]).pk})  # fmt: skip
    assert response.status_code == 302 and mine.enrolments.count() == 2
    # the auditor takes no training: no such list
    assert 'id="my-sessions"' not in client_for("auditor").get("/training/").content.decode()


# --- API ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_the_sessions_api_per_role(role, users, course, api_for):
    api = api_for(role)
    s = plan(users, course)
    listed = api.get("/api/v1/training/sessions/")
    assert listed.status_code == 200 and [x["id"] for x in listed.json()["results"]] == [s.pk]
    assert api.get(f"/api/v1/training/sessions/{s.pk}/").status_code == 200
    created = api.post("/api/v1/training/sessions/", {
        "course": course.pk, "starts_at": local(when(8)), "ends_at": local(when(8, 11)), "place": "二楼",
        "trainer": users["expert"].pk, "capacity": 5}, format="json")  # fmt: skip
    changed = api.patch(f"/api/v1/training/sessions/{s.pk}/", {"place": "三楼", "version": 1}, format="json")
    enrolled = api.post(f"/api/v1/training/sessions/{s.pk}/enrol/", {}, format="json")
    withdrawn = api.post(f"/api/v1/training/sessions/{s.pk}/withdraw/", {}, format="json")
    cancelled = api.post(
        f"/api/v1/training/sessions/{s.pk}/cancel/", {"reason": "改期", "version": 2}, format="json"
    )
    if role in MANAGERS:
        assert (created.status_code, changed.status_code, cancelled.status_code) == (201, 200, 200)
        assert created.json()["trainer"] == users["expert"].pk and changed.json()["place"] == "三楼"
        assert cancelled.json()["status"] == "cancelled"
    else:
        assert (created.status_code, changed.status_code, cancelled.status_code) == (403, 403, 403)
        assert Session.objects.get(pk=s.pk).place == "总部三楼培训室"
    if role in TAKERS:
        assert (enrolled.status_code, withdrawn.status_code) == (201, 200)
        assert enrolled.json()["my_enrolment"] is True and withdrawn.json()["my_enrolment"] is False
    else:
        assert (enrolled.status_code, withdrawn.status_code) == (403, 403)
    assert not Enrolment.objects.exists()


def test_the_sessions_api_filters_versions_and_errors(users, course, api_for):
    early = plan(users, course, starts_at=when(2), ends_at=when(2, 11))
    late = plan(users, course, starts_at=when(9), ends_at=when(9, 11), capacity="2")
    api = api_for("manager")

    def ids(query: str) -> list[int]:
        r = api.get(f"/api/v1/training/sessions/?{query}")
        assert r.status_code == 200, r.json()
        return [x["id"] for x in r.json()["results"]]

    day = timezone.localdate()
    assert ids(f"course={course.pk}") == [early.pk, late.pk]
    assert ids(f"from={day + dt.timedelta(days=3)}") == [late.pk]
    assert ids(f"to={day + dt.timedelta(days=2)}") == [early.pk]
    assert ids("status=planned") == ids("status=open") == [early.pk, late.pk]
    bad = api.get("/api/v1/training/sessions/?status=gone&from=tomorrow")
    assert bad.status_code == 400 and set(bad.json()) == {"status", "from"}
    # the trainee's own enrolment, then a manager's of another; the capacity below them is refused naming it
    assert (
        api_for("agent").post(f"/api/v1/training/sessions/{late.pk}/enrol/", {}, format="json").status_code
        == 201
    )
    r = api.post(f"/api/v1/training/sessions/{late.pk}/enrol/",
                 {"assignment": assignment(course, users["rep"]).pk}, format="json")  # fmt: skip
    assert r.status_code == 201 and r.json()["enrolled"] == 2 and len(r.json()["enrolments"]) == 2
    r = api.patch(f"/api/v1/training/sessions/{late.pk}/", {"capacity": 1, "version": 1}, format="json")
    assert r.status_code == 400
    assert r.json() == {"capacity": ["2 trainees are enrolled already: the capacity cannot be lower."]}
    r = api.patch(f"/api/v1/training/sessions/{late.pk}/", {"place": "别处"}, format="json")
    assert r.status_code == 400 and "version" in r.json()
    assert (
        api.patch(
            f"/api/v1/training/sessions/{late.pk}/", {"notes": "带笔", "version": 1}, format="json"
        ).status_code
        == 200
    )
    stale = api.patch(f"/api/v1/training/sessions/{late.pk}/", {"place": "别处", "version": 1}, format="json")
    assert stale.status_code == 409 and stale.json()["current_version"] == 2
    assert "Someone else changed this record" in stale.json()["detail"]
    no_reason = api.post(
        f"/api/v1/training/sessions/{early.pk}/cancel/", {"reason": " ", "version": 1}, format="json"
    )
    assert no_reason.status_code == 400
    assert no_reason.json() == {"reason": ["Give the reason for cancelling the session."]}
    # a trainee may not enrol or withdraw another
    other = api_for("agent").post(f"/api/v1/training/sessions/{late.pk}/withdraw/",
                                  {"assignment": assignment(course, users["rep"]).pk}, format="json")  # fmt: skip
    assert other.status_code == 400 and "assignment" in other.json()
    assert Enrolment.objects.filter(session=late).count() == 2


def test_a_capacity_typed_in_full_width_is_read_and_one_python_alone_reads_is_refused(users, course, client_for):
    """３０ from an input method in full-width mode is 30 (the page's number input sent nothing for it); 3_0 and
    Arabic-Indic ٣٠, which int() read as 30, are refused by name."""
    s = plan(users, course, capacity="３０")
    assert s.capacity == 30
    for typed in ("3_0", "٣٠", "2.5"):
        with pytest.raises(ValidationError) as e:
            plan(users, course, capacity=typed)
        assert list(e.value.message_dict) == ["capacity"], typed
    form = client_for("manager").get(f"/training/sessions/{s.pk}/edit/").content.decode()
    assert 'id="id_capacity" inputmode="numeric"' in form and 'type="number"' not in form.split('id="id_capacity"')[1][:80]


def test_the_sessions_list_reads_its_days_as_typed(users, course, api_for):
    """?from=2026/3/15 or ２０２６年３月１５日, as the other lists read a day: "Enter a date (YYYY-MM-DD)." was the
    answer."""
    s = plan(users, course)
    day = timezone.localtime(s.starts_at).date()
    api = api_for("manager")
    typed = {"from": f"{day.year}/{day.month}/{day.day}",
             "to": f"{day.year}年{day.month}月{day.day}日".translate(str.maketrans("0123456789", "０１２３４５６７８９"))}
    listed = api.get("/api/v1/training/sessions/", typed)
    assert listed.status_code == 200 and [x["id"] for x in listed.json()["results"]] == [s.pk]
    later = day + dt.timedelta(days=1)
    after = api.get("/api/v1/training/sessions/", {"from": f"{later.year}.{later.month}.{later.day}"})
    assert after.status_code == 200 and after.json()["results"] == []
    refused = api.get("/api/v1/training/sessions/", {"from": f"{day.day}/{day.month}/{day.year}"})
    assert refused.status_code == 400 and list(refused.json()) == ["from"]
