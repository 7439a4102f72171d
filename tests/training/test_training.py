"""The training system (培训体系): scoring on hand-made answers (a partial multiple choice is wrong), the pass mark's
boundary, the attempts allowed, expiry and refresher dates, reminders once, refusals (a course not assigned, one
passed already, a file too big or of the wrong type), the course edit's version and audit, the figures and the
effect on service performance — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone, translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.services import ConflictError
from pharmacrm.notify.models import Notification
from pharmacrm.training import training
from pharmacrm.training.models import Assignment, Attempt, Course, Material

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    """The reasons are read in English here; the pages' languages are tested in test_pages.py."""
    with translation.override("en"):
        yield


BANK = """\
? 本品的储存条件是？
- 常温
* 2–8℃冷藏
- 冷冻

?? 以下哪些属于GSP要求的记录？
* 温湿度记录
* 验收记录
- 个人日记

? 药品不良反应应当报告。
* 对
- 错

? 投诉应在几小时内首次响应？
- 48
* 24
- 72

? 客服可以向客户承诺疗效。
- 对
* 错
"""


def publish(admin, **over) -> Course:
    data = {"title": "GSP合规培训", "category": "compliance", "hours": "2", "pass_mark": "80", "max_attempts": "2",
            "status": "published", "mandatory": True, "valid_months": "12", "questions": BANK,
            "audience_roles": ["agent"], **over}  # fmt: skip
    return training.save_course(admin, None, data)


def right_answers(course) -> dict:
    return {str(q.pk): list(q.correct) for q in course.questions.all()}


@pytest.fixture
def course(users):
    return publish(users["admin"])


@pytest.fixture
def assigned(users, course):
    new, _ = training.assign(
        users["manager"], course, [users["agent"]], timezone.localdate() + dt.timedelta(days=10)
    )
    return new[0]


def test_the_bank_is_parsed_with_its_kinds(course):
    kinds = [q.kind for q in course.questions.all()]
    assert kinds == ["single", "multiple", "truefalse", "single", "truefalse"]
    assert training.parse_questions(training.questions_text(course)) == [
        {"kind": q.kind, "text": q.text, "options": q.options, "correct": q.correct}
        for q in course.questions.all()
    ]


def test_a_bad_bank_is_refused_naming_the_line(users):
    with pytest.raises(ValidationError) as e:
        publish(users["admin"], questions="? 只有一个选项\n* 唯一\n\n? 单选却两个对\n* 甲\n* 乙\n")
    errors = e.value.message_dict["questions"]
    assert any(m.startswith("Line 1:") for m in errors) and any(m.startswith("Line 4:") for m in errors), (
        errors
    )
    assert not Course.objects.exists()  # nothing half-written


def test_scoring_by_hand_and_a_partial_multiple_choice_is_wrong(users, course, assigned):
    qs = list(course.questions.all())
    answers = right_answers(course)
    answers[str(qs[1].pk)] = [0]  # one of the two right options only: wrong
    out = training.submit(users["agent"], assigned.pk, answers)
    assert (out.attempt.correct, out.attempt.total, out.attempt.score) == (4, 5, 80)
    assert out.attempt.passed  # 80 reaches a pass mark of 80
    stored = Attempt.objects.get()
    assert stored.answers[str(qs[1].pk)] == [0]  # the answers as given are kept


def test_one_point_under_the_pass_mark_fails(users):
    course = publish(users["admin"], pass_mark="81")
    a = training.assign(users["manager"], course, [users["agent"]], timezone.localdate())[0][0]
    answers = right_answers(course)
    answers.pop(str(course.questions.first().pk))  # unanswered: wrong
    out = training.submit(users["agent"], a.pk, answers)
    assert out.attempt.score == 80 and not out.attempt.passed
    a.refresh_from_db()
    assert a.completed_at is None and out.attempts_left == 1


def test_the_attempts_allowed_are_enforced(users, course, assigned):
    training.submit(users["agent"], assigned.pk, {})
    training.submit(users["agent"], assigned.pk, {})
    with pytest.raises(ValidationError) as e:
        training.submit(users["agent"], assigned.pk, right_answers(course))
    assert "2 attempts" in " ".join(e.value.message_dict["answers"])
    assert Attempt.objects.count() == 2


def test_passing_completes_with_the_expiry_a_year_less_a_day(users, course, assigned):
    training.submit(users["agent"], assigned.pk, right_answers(course))
    assigned.refresh_from_db()
    done = timezone.localdate(assigned.completed_at)
    assert assigned.method == "test" and assigned.score == 100
    assert assigned.expires_on == training.add_months(done, 12) - dt.timedelta(days=1)
    assert training.state(assigned, assigned.expires_on) == "done"
    assert training.state(assigned, assigned.expires_on + dt.timedelta(days=1)) == "expired"


def test_expiry_dates_at_month_ends():
    course = Course(valid_months=12)
    feb29 = dt.datetime(2028, 2, 29, 10, tzinfo=dt.UTC)
    assert training.expiry(course, feb29) == dt.date(2029, 2, 27)  # 28 Feb 2029 is the anniversary
    course.valid_months = 1
    assert training.expiry(course, dt.datetime(2027, 1, 31, 2, tzinfo=dt.UTC)) == dt.date(2027, 2, 27)
    # 23:30 on 31 December UTC is 1 January in Beijing: the completion day is Beijing's
    assert training.expiry(course, dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC)) == dt.date(2027, 1, 31)
    course.valid_months = None
    assert training.expiry(course, feb29) is None


def test_the_server_refuses_answers_to_a_course_not_assigned_or_passed(users, course, assigned):
    with pytest.raises(PermissionDenied):
        training.submit(users["expert"], assigned.pk, right_answers(course))  # someone else's assignment
    training.submit(users["agent"], assigned.pk, right_answers(course))
    with pytest.raises(ValidationError) as e:
        training.submit(users["agent"], assigned.pk, right_answers(course))
    assert "completed this course already" in " ".join(e.value.message_dict["answers"])
    assert Attempt.objects.count() == 1


def test_answers_naming_another_question_or_a_missing_option_are_refused(users, course, assigned):
    q = course.questions.first()
    with pytest.raises(ValidationError) as e:
        training.submit(users["agent"], assigned.pk, {"999999": [0], str(q.pk): [7]})
    text = " ".join(e.value.message_dict["answers"])
    assert "“999999” is not a question of this test" in text and "Question 1 has no option “7”" in text
    with pytest.raises(ValidationError):
        training.submit(users["agent"], assigned.pk, {str(q.pk): [0, 1]})  # a single choice takes one answer
    assert not Attempt.objects.exists()


def test_reminders_are_sent_once_before_due_and_once_overdue(users, course):
    today = timezone.localdate()
    a = training.assign(users["manager"], course, [users["agent"]], today + dt.timedelta(days=3))[0][0]
    assert training.remind(today - dt.timedelta(days=1))["due"] == 0  # four days before: not yet
    assert training.remind(today)["due"] == 1
    assert training.remind(today)["due"] == 0  # once
    assert training.remind(today + dt.timedelta(days=4))["overdue"] == 1
    assert training.remind(today + dt.timedelta(days=5))["overdue"] == 0
    notes = Notification.objects.filter(recipient=users["agent"], kind=training.REMINDER_KIND)
    assert notes.count() == 2
    a.refresh_from_db()
    assert a.reminded_due_at and a.reminded_overdue_at
    assert (
        AuditEntry.objects.filter(
            object_type="training.assignment", object_id=str(a.pk), actor_name="worker"
        ).count()
        == 2
    )


def test_a_refresher_is_assigned_once_before_the_completion_expires(users, course, assigned):
    training.submit(users["agent"], assigned.pk, right_answers(course))
    assigned.refresh_from_db()
    before = assigned.expires_on - dt.timedelta(days=training.REFRESH_DAYS_BEFORE)
    assert training.remind(before - dt.timedelta(days=1))["refreshers"] == 0
    assert training.remind(before)["refreshers"] == 1
    assert training.remind(before + dt.timedelta(days=1))["refreshers"] == 0
    fresh = Assignment.objects.get(completed_at__isnull=True)
    assert fresh.due_date == assigned.expires_on and fresh.user == users["agent"]


def test_a_course_edit_names_its_version_and_is_audited(users, course):
    data = {"title": "GSP合规培训（2027版）", "category": "compliance", "hours": "2", "pass_mark": "90",
            "max_attempts": "2", "status": "published", "valid_months": "12"}  # fmt: skip
    training.save_course(users["manager"], course, data, course.version)
    with pytest.raises(ConflictError):
        training.save_course(users["admin"], course, {**data, "pass_mark": "70"}, course.version)  # stale
    course.refresh_from_db()
    assert course.pass_mark == 90 and course.version == 2 and course.questions.count() == 5  # questions kept
    entry = AuditEntry.objects.filter(object_type="training.course", action="update").get()
    assert entry.changes["pass_mark"] == [80, 90] and entry.changes["title"][1] == "GSP合规培训（2027版）"


def test_bad_course_fields_are_named(users):
    with pytest.raises(ValidationError) as e:
        training.save_course(users["admin"], None, {"title": "", "hours": "abc", "pass_mark": "101",
                                                    "max_attempts": "0", "category": "x"})  # fmt: skip
    assert set(e.value.message_dict) == {"title", "hours", "pass_mark", "max_attempts", "category"}
    with pytest.raises(PermissionDenied):
        publish(users["agent"])


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def test_materials_are_checked_as_ticket_files(users, course, settings):
    settings.ATTACHMENT_MAX_BYTES = 1000
    m = training.add_material(users["admin"], course, upload=SimpleUploadedFile("GSP讲义.pdf", PDF))
    assert m.content_type == "application/pdf" and m.title == "GSP讲义.pdf"
    with pytest.raises(ValidationError) as e:
        training.add_material(
            users["admin"], course, upload=SimpleUploadedFile("大文件.pdf", PDF + b"0" * 1000)
        )
    assert (
        "larger than the limit" in e.value.message_dict["file"][0]
        and "大文件.pdf" in e.value.message_dict["file"][0]
    )
    with pytest.raises(ValidationError) as e:
        training.add_material(
            users["admin"], course, upload=SimpleUploadedFile("setup.exe", b"MZ\x90\x00\x03")
        )
    assert "not accepted" in e.value.message_dict["file"][0]
    with pytest.raises(ValidationError) as e:
        training.add_material(users["admin"], course, upload=SimpleUploadedFile("讲义.docx", PDF))
    assert "does not match" in e.value.message_dict["file"][0]
    with pytest.raises(ValidationError) as e:
        training.add_material(users["admin"], course, url="javascript:alert(1)")
    assert "url" in e.value.message_dict
    assert Material.objects.count() == 1


def test_the_nightly_sweep_deletes_only_training_files_no_material_names(users, course, caplog):
    """A course material's file is stored before the transaction that records it: a process killed in between left
    it in var/files/training/ for ever. The sweep deletes those a day old that no material names, logs and audits
    them; the files of materials stay, and so does an upload under way."""
    import logging
    import os

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from pharmacrm.training import tasks

    kept = training.add_material(users["admin"], course, upload=SimpleUploadedFile("GSP讲义.pdf", PDF)).file.name
    killed = default_storage.save("training/2026/11/" + "a" * 32, ContentFile(PDF))  # the killed upload's
    under_way = default_storage.save("training/2026/11/" + "b" * 32, ContentFile(PDF))
    two_days_ago = (timezone.now() - dt.timedelta(days=2)).timestamp()
    for name in (kept, killed):
        os.utime(default_storage.path(name), (two_days_ago, two_days_ago))

    with caplog.at_level(logging.WARNING):
        assert tasks.sweep_training_files.call_local() == 1
    assert killed in caplog.text
    assert not default_storage.exists(killed)
    assert default_storage.exists(kept) and default_storage.exists(under_way)
    entry = AuditEntry.objects.get(object_type="training.material", action="delete")
    assert entry.extra["count"] == 1 and entry.extra["files"] == [killed]
    assert tasks.sweep_training_files.call_local() == 0


def test_attendance_completes_without_a_test(users):
    course = publish(users["admin"], questions="", title="投诉处理课堂培训", valid_months="")
    a = training.assign(users["manager"], course, [users["aftersales"]], timezone.localdate())[0][0]
    training.record_attendance(users["manager"], a)
    a.refresh_from_db()
    assert a.method == "attendance" and a.expires_on is None and training.state(a) == "done"
    with pytest.raises(ValidationError):
        training.record_attendance(users["manager"], a)
    with pytest.raises(PermissionDenied):
        training.record_attendance(users["agent"], a)


def test_assigning_skips_those_with_an_open_assignment_and_refuses_a_draft(users, course, team_north):
    people = training.chosen_users(roles=["agent"], teams=[team_north.pk])
    assert {p.username for p in people} == {"agent", "rep"}
    new, had = training.assign(users["manager"], course, people, timezone.localdate())
    new2, had2 = training.assign(users["manager"], course, people, timezone.localdate())
    assert (len(new), had, len(new2), had2) == (2, 0, 0, 2)
    draft = publish(users["admin"], status="draft", title="草稿课程")
    with pytest.raises(ValidationError) as e:
        training.assign(users["manager"], draft, people, timezone.localdate() - dt.timedelta(days=1))
    assert set(e.value.message_dict) == {"course", "due_date"}


def test_ratings_once_after_completion(users, course, assigned):
    with pytest.raises(ValidationError):
        training.rate(users["agent"], assigned.pk, 5)  # not completed yet
    training.submit(users["agent"], assigned.pk, right_answers(course))
    with pytest.raises(ValidationError) as e:
        training.rate(users["agent"], assigned.pk, 6)
    assert e.value.message_dict["stars"] == ["Rate from 1 to 5."]
    training.rate(users["agent"], assigned.pk, 4, "案例很实用")
    with pytest.raises(ValidationError):
        training.rate(users["agent"], assigned.pk, 5)
    f = training.figures(course)
    assert (f.assigned, f.completed, f.completion_pct, f.attempts, f.pass_rate, f.avg_score) == (
        1, 1, 100, 1, 100, 100)  # fmt: skip
    assert f.ratings == 1 and f.avg_rating == 4 and f.comments == [(4, "案例很实用")]


def test_the_effect_compares_the_trainees_tickets_before_and_after(users, course, assigned, xiehe):
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.models import Survey, Ticket

    training.submit(users["agent"], assigned.pk, right_answers(course))
    assigned.refresh_from_db()
    at = assigned.completed_at

    def ticket(days: float, score: int):
        t = desk.create_ticket(users["agent"], {"subject": "咨询", "channel": "phone", "category": "drug_info",
                                                "institution": xiehe})  # fmt: skip
        Ticket.objects.filter(pk=t.pk).update(
            assignee=users["agent"], received_at=at + dt.timedelta(days=days)
        )
        Survey.objects.create(ticket=t, channel="phone", score=score)

    ticket(-10, 3)
    ticket(-5, 3)
    ticket(-40, 1)  # outside the 30 days before
    ticket(2, 5)
    e = training.effect(course, 30, now=at + dt.timedelta(days=40))
    assert (e.trainees, e.before.created, e.after.created) == (1, 2, 1)
    assert (e.before.csat, e.after.csat, e.open_windows) == (3, 5, 0)


def test_the_effect_note_counts_one_trainee_in_the_singular(users, course, assigned, client_for):
    """The course page read "The tickets assigned to the 1 trainees who completed the course" in English."""
    training.submit(users["agent"], assigned.pk, right_answers(course))
    html = client_for("admin").get(f"/training/courses/{course.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "the 1 trainee who completed the course" in html and "the 1 trainees" not in html


def test_a_questions_kind_is_in_the_readers_parentheses(users, assigned, client_for):
    """An English test page put the question's kind in full-width parentheses: （Single choice）."""
    agent = client_for("agent")
    english = agent.get(f"/training/assignments/{assigned.pk}/test/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "(Single choice)" in english and "（Single choice）" not in english
    chinese = agent.get(f"/training/assignments/{assigned.pk}/test/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "（单选题）" in chinese
