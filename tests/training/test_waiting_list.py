"""The waiting list of a full classroom session (候补名单): who may join it and when, a freed place going to the first
on it at once (a withdrawal, a higher capacity) and that trainee told, those who no longer need a place passed over,
the waiting told of a move or a cancellation, the pages and the API per role."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone, translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.notify.models import Notification
from pharmacrm.training import classroom, training
from pharmacrm.training.models import Enrolment, Session, WaitingEntry
from tests.training.test_sessions import (  # noqa: F401 — fixtures
    CANCELLED,
    CHANGED,
    ROLES,
    TAKERS,
    api_for,
    assignment,
    course,
    plan,
    told,
    when,
)

pytestmark = pytest.mark.django_db
PROMOTED, WAITING, TAKEN_OFF = "候补成功，已为你报名课堂培训", "已将你列入课堂培训候补名单", "已将你移出课堂培训候补名单"


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def full_session(users, course, **over) -> Session:  # noqa: F811 — the fixture's value
    """A session of one place, taken by the agent."""
    s = plan(users, course, capacity="1", **over)
    classroom.enrol(users["agent"], s, assignment(course, users["agent"]))
    return s


def wait(users, course, s, *names) -> list[WaitingEntry]:  # noqa: F811
    return [classroom.join_waiting_list(users[n], s, assignment(course, users[n])) for n in names]


def waiting(s) -> list[str]:
    return [w.assignment.user.username for w in classroom.live_waiting(s).select_related("assignment__user")]


def enrolled(s) -> list[str]:
    return sorted(s.enrolments.values_list("assignment__user__username", flat=True))


def test_a_freed_place_goes_to_the_first_on_the_waiting_list_at_once_and_they_are_told(users, course):  # noqa: F811
    s = plan(users, course, capacity="1")
    with pytest.raises(ValidationError) as err:  # a free place: enrol, do not wait
        classroom.join_waiting_list(users["rep"], s, assignment(course, users["rep"]))
    assert err.value.message_dict["session"] == ["The session has a free place: enrol instead of waiting."]
    classroom.enrol(users["agent"], s, assignment(course, users["agent"]))

    rep, expert = wait(users, course, s, "rep", "expert")
    assert (rep.position, expert.position) == (1, 2) and waiting(s) == ["rep", "expert"]
    with pytest.raises(ValidationError) as err:
        classroom.join_waiting_list(users["rep"], s, assignment(course, users["rep"]))
    assert err.value.message_dict["assignment"] == ["rep is on this session's waiting list already."]
    with pytest.raises(ValidationError) as err:  # the one enrolled does not also wait
        classroom.join_waiting_list(users["agent"], s, assignment(course, users["agent"]))
    assert err.value.message_dict["assignment"] == ["agent is enrolled in this session already."]
    assert told(WAITING) == []  # trainees who put themselves on the list are not told of it

    # the agent withdraws: the rep, first on the list, takes the place at once and is told; the expert moves up
    promoted = classroom.withdraw(users["agent"], s, assignment(course, users["agent"]))
    assert [e.assignment.user.username for e in promoted] == ["rep"]
    assert enrolled(s) == ["rep"] and waiting(s) == ["expert"]
    assert classroom.waiting_position(WaitingEntry.objects.get(pk=expert.pk)) == 1
    assert told(PROMOTED) == ["rep"]
    note = Notification.objects.get(recipient=users["rep"])  # read in English
    assert note.shown_title.startswith("A place is free: you are enrolled in a training session: 药品不良反应报告（面授）, ")
    assert note.shown_body.startswith("You were on the waiting list. ") and "总部三楼培训室" in note.shown_body
    entry = AuditEntry.objects.filter(object_type="training.enrolment", action="create").latest("id")
    assert entry.actor == users["agent"] and entry.extra["waiting_list"] is True
    assert entry.changes["user"] == [None, users["rep"].pk]
    left = AuditEntry.objects.filter(object_type="training.waitingentry", action="delete").get()
    assert left.extra["reason"] == "enrolled" and left.changes["user"] == [users["rep"].pk, None]

    # a higher capacity takes the next ones in; a place nobody waits for stays free
    s.refresh_from_db()
    classroom.update_session(users["manager"], s, {"capacity": "3"}, s.version)
    assert enrolled(s) == ["expert", "rep"] and waiting(s) == []
    assert told(PROMOTED) == ["expert", "rep"]
    classroom.enrol(users["support"], s, assignment(course, users["support"]))
    assert s.enrolments.count() == 3


def test_those_who_no_longer_need_a_place_are_passed_over_and_dropped(users, course):  # noqa: F811
    s = full_session(users, course)
    rep, expert, support = wait(users, course, s, "rep", "expert", "support")
    # the rep completed the course meanwhile (another session); the expert's account was closed
    assignment(course, users["rep"]).__class__.objects.filter(pk=rep.assignment_id).update(completed_at=timezone.now())
    users["expert"].__class__.objects.filter(pk=users["expert"].pk).update(is_active=False)
    assert waiting(s) == ["support"]
    assert classroom.waiting_position(WaitingEntry.objects.get(pk=support.pk)) == 1

    classroom.withdraw(users["manager"], s, assignment(course, users["agent"]))
    assert enrolled(s) == ["support"]
    assert not WaitingEntry.objects.filter(session=s).exists()  # all three entries gone
    reasons = sorted(AuditEntry.objects.filter(object_type="training.waitingentry", action="delete")
                     .values_list("extra__reason", flat=True))  # fmt: skip
    assert reasons == ["enrolled", "no longer needed", "no longer needed"]


def test_the_waiting_are_told_of_a_move_and_a_cancellation(users, course, client_for, api_for):  # noqa: F811
    s = full_session(users, course)
    wait(users, course, s, "rep")
    s = classroom.update_session(users["manager"], s, {"place": "二楼大会议室"}, s.version)
    assert told(CHANGED) == ["agent", "rep"]
    classroom.cancel_session(users["manager"], s, "讲师临时出差", s.version)
    assert told(CANCELLED) == ["agent", "rep"]
    # a cancelled session's list takes nobody new, and nobody is shown a place on it any more
    with pytest.raises(ValidationError):
        classroom.join_waiting_list(users["expert"], s, assignment(course, users["expert"]))
    page = client_for("rep").get(f"/training/sessions/{s.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "讲师临时出差" in page and "on the waiting list" not in page
    detail = api_for("rep").get(f"/api/v1/training/sessions/{s.pk}/").json()
    assert (detail["waiting"], detail["my_waiting_position"]) == (0, None)
    assert api_for("manager").get(f"/api/v1/training/sessions/{s.pk}/").json()["waiting_list"] == []


def test_a_trainee_whose_role_no_longer_takes_training_is_passed_over(users, course):  # noqa: F811
    from django.contrib.auth.models import Group

    s = full_session(users, course)
    wait(users, course, s, "rep", "expert")
    users["rep"].groups.set([Group.objects.get(name="auditor")])  # moved to internal audit: takes no training
    classroom.withdraw(users["agent"], s, assignment(course, users["agent"]))
    assert enrolled(s) == ["expert"] and not WaitingEntry.objects.filter(session=s).exists()


def test_a_manager_puts_a_trainee_on_the_list_or_takes_them_off_and_they_are_told(users, course):  # noqa: F811
    s = full_session(users, course)
    w = classroom.join_waiting_list(users["manager"], s, assignment(course, users["rep"]))
    assert w.position == 1 and told(WAITING) == ["rep"]
    with pytest.raises(PermissionDenied):  # another trainee may not
        classroom.leave_waiting_list(users["expert"], s, assignment(course, users["rep"]))
    with pytest.raises(PermissionDenied):
        classroom.join_waiting_list(users["expert"], s, assignment(course, users["support"]))
    classroom.leave_waiting_list(users["manager"], s, assignment(course, users["rep"]))
    assert told(TAKEN_OFF) == ["rep"] and waiting(s) == []
    with pytest.raises(ValidationError) as err:
        classroom.leave_waiting_list(users["rep"], s, assignment(course, users["rep"]))
    assert err.value.message_dict["assignment"] == ["rep is not on this session's waiting list."]
    entries = AuditEntry.objects.filter(object_type="training.waitingentry").order_by("id")
    assert [(x.action, x.actor.username) for x in entries] == [("create", "manager"), ("delete", "manager")]


def test_the_pages_offer_the_waiting_list_of_a_full_session(users, course, client_for):  # noqa: F811
    s = full_session(users, course)
    rep = client_for("rep")
    page = rep.get(f"/training/sessions/{s.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "The session is full." in page and "Join the waiting list" in page and "Enrol me" not in page
    mine = rep.get("/training/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'action="/training/sessions/{s.pk}/waiting-list/join/"' in mine[mine.index('id="my-sessions"'):]

    r = rep.post(f"/training/sessions/{s.pk}/waiting-list/join/", {"assignment": assignment(course, users["rep"]).pk},
                 HTTP_ACCEPT_LANGUAGE="en", follow=True)  # fmt: skip
    page = r.content.decode()
    assert "rep is number 1 on the waiting list" in page and "You are number 1 on the waiting list." in page
    assert "Leave the waiting list" in page and 'id="waiting-table"' not in page  # a trainee sees no one else's
    mine = rep.get("/training/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "No. 1 on the waiting list" in mine
    zh = rep.get(f"/training/sessions/{s.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "你在候补名单中排第 1 位" in zh and "退出候补" in zh

    # the manager sees the list, adds the expert (the session is full: the form puts on the list), takes the rep off
    manager = client_for("manager")
    page = manager.get(f"/training/sessions/{s.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    table = page[page.index('id="waiting-table"'):]
    assert "rep" in table and "Take off the waiting list" in table and "Add to the waiting list" in page
    assert "1 / 1 · 1 waiting" in page
    manager.post(f"/training/sessions/{s.pk}/waiting-list/join/", {"assignment": assignment(course, users["expert"]).pk})
    manager.post(f"/training/sessions/{s.pk}/waiting-list/leave/", {"assignment": assignment(course, users["rep"]).pk})
    assert waiting(s) == ["expert"]
    # another trainee's assignment is not found for a trainee
    assert rep.post(f"/training/sessions/{s.pk}/waiting-list/leave/",
                    {"assignment": assignment(course, users["expert"]).pk}).status_code == 404  # fmt: skip
    # the agent withdraws from the page: the message names who took the place
    r = client_for("agent").post(f"/training/sessions/{s.pk}/withdraw/",
                                 {"assignment": assignment(course, users["agent"]).pk},
                                 HTTP_ACCEPT_LANGUAGE="en", follow=True)  # fmt: skip
    page = r.content.decode()  # a trainee is not told who waited; a manager is
    assert "agent is no longer enrolled; the place goes to the first on the waiting list." in page
    shown = page.split('<ul class="messages"', 1)[1].split("</ul>", 1)[0]
    assert "the first on the waiting list" in shown and "expert" not in shown
    assert enrolled(s) == ["expert"]
    classroom.join_waiting_list(users["manager"], s, assignment(course, users["rep"]))
    r = manager.post(f"/training/sessions/{s.pk}/withdraw/", {"assignment": assignment(course, users["expert"]).pk},
                     HTTP_ACCEPT_LANGUAGE="en", follow=True)  # fmt: skip
    assert "expert is no longer enrolled; the place goes to rep, the first on the waiting list." in r.content.decode()
    assert client_for("auditor").post(f"/training/sessions/{s.pk}/waiting-list/join/",
                                      {"assignment": assignment(course, users["rep"]).pk}).status_code == 404  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
def test_the_waiting_list_api_per_role(role, users, course, api_for):  # noqa: F811
    s = plan(users, course, capacity="1")
    holder = "aftersales" if role == "support" else "support"
    classroom.enrol(users[holder], s, assignment(course, users[holder]))
    api = api_for(role)
    joined = api.post(f"/api/v1/training/sessions/{s.pk}/join-waiting-list/", {}, format="json")
    listed = {x["id"]: x for x in api.get("/api/v1/training/sessions/").json()["results"]}
    left = api.post(f"/api/v1/training/sessions/{s.pk}/leave-waiting-list/", {}, format="json")
    if role in TAKERS:
        assert (joined.status_code, left.status_code) == (201, 200), (joined.json(), left.json())
        assert joined.json()["my_waiting_position"] == 1 and joined.json()["waiting"] == 1
        assert listed[s.pk]["my_waiting_position"] == 1 and listed[s.pk]["waiting"] == 1
        assert left.json()["my_waiting_position"] is None and left.json()["waiting"] == 0
        # the list itself, with names: for managers and who sees training results, as the enrolments
        sees = training.may_manage(users[role]) or training.may_see_results(users[role])
        assert [w["user_name"] for w in joined.json()["waiting_list"]] == ([role] if sees else [])
        assert bool(joined.json()["enrolments"]) == sees
    else:
        assert (joined.status_code, left.status_code) == (403, 403)
        assert listed[s.pk]["waiting"] == 0 and listed[s.pk]["my_waiting_position"] is None
    assert not WaitingEntry.objects.exists()


def test_the_api_names_what_is_wrong(users, course, api_for):  # noqa: F811
    s = plan(users, course, capacity="2")
    api = api_for("rep")
    free = api.post(f"/api/v1/training/sessions/{s.pk}/join-waiting-list/", {}, format="json")
    assert free.status_code == 400
    assert free.json() == {"session": ["The session has a free place: enrol instead of waiting."]}
    not_there = api.post(f"/api/v1/training/sessions/{s.pk}/leave-waiting-list/", {}, format="json")
    assert not_there.status_code == 400 and not_there.json() == {"assignment": ["rep is not on this session's waiting list."]}
    other = api.post(f"/api/v1/training/sessions/{s.pk}/join-waiting-list/",
                     {"assignment": assignment(course, users["agent"]).pk}, format="json")  # fmt: skip
    assert other.status_code == 400 and "assignment" in other.json()
    from rest_framework.test import APIClient

    from tests.api.conftest import token_for

    zh_api = APIClient()
    zh_api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users['rep'])}", HTTP_ACCEPT_LANGUAGE="zh-hans")
    zh = zh_api.post(f"/api/v1/training/sessions/{s.pk}/join-waiting-list/", {}, format="json")
    assert zh.json() == {"session": ["本次培训尚有空位：请直接报名，无需候补。"]}
    # a manager puts the rep on a full list, then sees it in the detail with the position
    classroom.enrol(users["agent"], s, assignment(course, users["agent"]))
    classroom.enrol(users["expert"], s, assignment(course, users["expert"]))
    manager = api_for("manager")
    r = manager.post(f"/api/v1/training/sessions/{s.pk}/join-waiting-list/",
                     {"assignment": assignment(course, users["rep"]).pk}, format="json")  # fmt: skip
    assert r.status_code == 201
    assert [(w["position"], w["user_name"]) for w in r.json()["waiting_list"]] == [(1, "rep")]
    assert Enrolment.objects.filter(session=s).count() == 2


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_withdrawals_at_once_give_the_two_places_to_the_first_two_on_the_list(users, course):  # noqa: F811
    """Each withdrawal promotes under the session's row lock: the second, run while the first holds it, sees the
    first's promotion and gives its place to the next on the list — never the same trainee twice, never over the
    capacity."""
    from tests.concurrency import held_while

    s = plan(users, course, capacity="2")
    for name in ("agent", "support"):
        classroom.enrol(users[name], s, assignment(course, users[name]))
    wait(users, course, s, "rep", "expert", "kam")
    out = []

    def second():
        with translation.override("en"):
            out.append([e.assignment.user.username for e in
                        classroom.withdraw(users["support"], s, assignment(course, users["support"]))])  # fmt: skip

    held_while(lambda: out.append([e.assignment.user.username for e in
                                   classroom.withdraw(users["agent"], s, assignment(course, users["agent"]))]),
               second)  # fmt: skip
    assert out == [["rep"], ["expert"]]
    assert enrolled(s) == ["expert", "rep"] and waiting(s) == ["kam"]


def _said(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _en(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def test_the_session_buttons_clicked_twice_act_once_and_say_what_the_first_did(users, course, client_for):  # noqa: F811
    """Enrol, Withdraw, Join and Leave the waiting list, and the attendance's Save, each clicked twice: the second
    answered with a refusal (enrolled already, not enrolled, on the list already, not on it) or the stale conflict;
    it now says what the first did. A colleague's change is still refused."""
    s = plan(users, course, capacity="1")
    rep = _en(client_for("rep"))
    mine = {"assignment": assignment(course, users["rep"]).pk}

    def twice(url):
        first = rep.post(url, mine, follow=True)
        return _said(first), _said(rep.post(url, mine, follow=True))

    first, again = twice(f"/training/sessions/{s.pk}/enrol/")
    assert first == again == ["rep is enrolled."] and enrolled(s) == ["rep"]
    first, again = twice(f"/training/sessions/{s.pk}/withdraw/")
    assert again == ["rep is no longer enrolled."] and enrolled(s) == []

    classroom.enrol(users["agent"], s, assignment(course, users["agent"]))  # full now
    first, again = twice(f"/training/sessions/{s.pk}/waiting-list/join/")
    assert first == again and "number 1 on the waiting list" in again[0] and waiting(s) == ["rep"]
    first, again = twice(f"/training/sessions/{s.pk}/waiting-list/leave/")
    assert first == again == ["rep is off the waiting list."] and waiting(s) == []
    assert AuditEntry.objects.filter(object_type="training.waitingentry").count() == 2

    # a colleague took the agent off: the agent's own "Withdraw" is still told it is not enrolled
    manager = _en(client_for("manager"))
    manager.post(f"/training/sessions/{s.pk}/withdraw/", {"assignment": assignment(course, users["agent"]).pk},
                 follow=True)  # fmt: skip
    late = _en(client_for("agent")).post(f"/training/sessions/{s.pk}/withdraw/",
                                    {"assignment": assignment(course, users["agent"]).pk}, follow=True)  # fmt: skip
    assert "not enrolled" in " ".join(_said(late))

    classroom.enrol(users["manager"], s, assignment(course, users["rep"]))
    Session.objects.filter(pk=s.pk).update(starts_at=when(-1, 9), ends_at=when(-1, 12))
    place = s.enrolments.get(assignment__user=users["rep"])
    s.refresh_from_db()
    sent = {f"e{place.pk}": "present", "materials_used": "课件第二版", "trainer_note": "互动良好", "version": s.version}
    url = f"/training/sessions/{s.pk}/attendance/"
    assert _said(manager.post(url, sent, follow=True)) == ["Attendance and record saved."]
    again = manager.post(url, sent, follow=True)
    assert again.status_code == 200 and _said(again) == ["Attendance and record saved."]
