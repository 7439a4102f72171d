"""The training pages, export and API per role (who sees what), the test taken through the page, and the pages in
each language — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.training import training
from pharmacrm.training.models import Attempt
from tests.api.conftest import token_for

from .test_training import BANK, right_answers

pytestmark = pytest.mark.django_db
ROLES = [r.value for r in Role]


@pytest.fixture
def world(users, team_north):
    """A published mandatory GSP course assigned to the agent and the rep; the KAM leads the North team (the rep's)."""
    team_north.lead = users["kam"]
    team_north.save()
    course = training.save_course(users["admin"], None, {
        "title": "GSP合规培训", "category": "compliance", "hours": "2", "pass_mark": "80", "max_attempts": "3",
        "status": "published", "mandatory": True, "valid_months": "12", "questions": BANK,
    })  # fmt: skip
    draft = training.save_course(users["admin"], None, {"title": "新品上市培训（草稿）", "category": "product",
                                                        "hours": "1", "pass_mark": "80", "max_attempts": "3"})  # fmt: skip
    due = timezone.localdate() + dt.timedelta(days=7)
    new, _ = training.assign(users["manager"], course, [users["agent"], users["rep"]], due)
    return {"course": course, "draft": draft, "agent": new[0], "rep": new[1]}


def page(client_for, role, url, lang="en"):
    c = client_for(role)
    return c.get(url, HTTP_ACCEPT_LANGUAGE=lang)


# who may open which page: role → status
MINE = {r: 200 for r in ROLES}
COURSES = {r: 200 for r in ROLES}
EDIT = {r: 200 if r in ("admin", "manager") else 403 for r in ROLES}
RESULTS = {
    r: 200 if r in ("admin", "manager", "auditor", "kam") else 403 for r in ROLES
}  # kam: the North's lead


@pytest.mark.parametrize("role", ROLES)
def test_pages_per_role(role, world, client_for):
    c = world["course"]
    assert page(client_for, role, "/training/").status_code == MINE[role]
    assert page(client_for, role, "/training/courses/").status_code == COURSES[role]
    assert page(client_for, role, f"/training/courses/{c.pk}/").status_code == 200
    draft = page(client_for, role, f"/training/courses/{world['draft'].pk}/").status_code
    assert draft == (200 if role in ("admin", "manager", "auditor") else 404)
    assert page(client_for, role, f"/training/courses/{c.pk}/edit/").status_code == EDIT[role]
    assert page(client_for, role, f"/training/courses/{c.pk}/assign/").status_code == EDIT[role]
    assert page(client_for, role, "/training/results/").status_code == RESULTS[role]
    export = page(client_for, role, "/training/results/export.xlsx")
    assert export.status_code == RESULTS[role]
    detail = page(client_for, role, f"/training/courses/{c.pk}/").content.decode()
    assert ("Effect on service performance" in detail) == (
        role in ("admin", "manager", "auditor", "analyst", "kam")
    )
    assert ('id="trainee-table"' in detail) == (role in ("admin", "manager", "auditor", "kam"))


def test_a_team_lead_sees_only_their_teams_members(world, client_for, users):
    body = page(client_for, "kam", "/training/results/").content.decode()
    assert ">rep<" in body and ">agent<" not in body  # the agent is in no team the KAM leads
    assert page(client_for, "kam", f"/training/people/{users['rep'].pk}/").status_code == 200
    assert page(client_for, "kam", f"/training/people/{users['agent'].pk}/").status_code == 404
    all_rows = page(client_for, "manager", "/training/results/").content.decode()
    assert ">rep<" in all_rows and ">agent<" in all_rows


def test_the_export_is_audited_and_reads_the_states(world, client_for):
    from openpyxl import load_workbook

    # a course titled like a formula is a heading of text in the sheet, never a formula the reader's Excel runs
    type(world["course"]).objects.filter(pk=world["course"].pk).update(title='=HYPERLINK("http://evil.example","课程")')
    response = page(client_for, "manager", "/training/results/export.xlsx")
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = {r[1]: r for r in sheet.iter_rows(min_row=3, values_only=True)}
    assert rows["agent"][2].startswith("Due") and rows["manager"][2] == "—"
    assert (sheet.cell(2, 3).value, sheet.cell(2, 3).data_type) == ('=HYPERLINK("http://evil.example","课程")', "s")
    assert AuditEntry.objects.filter(action="export", object_type="training.assignment").count() == 1


def test_taking_the_test_through_the_page(world, client_for):
    a = world["agent"]
    c = client_for("agent")
    form = c.get(f"/training/assignments/{a.pk}/test/").content.decode()
    assert (
        "2–8℃冷藏" in form and len(re.findall(r' name="q\d+"', form)) == 13 and "checked" not in form
    )  # nothing tells the answers
    data = {f"q{k}": v for k, v in right_answers(world["course"]).items()}
    response = c.post(f"/training/assignments/{a.pk}/test/", data)
    assert response.status_code == 302
    result = c.get(response["Location"]).content.decode()
    assert "通过" in result or "Passed" in result
    a.refresh_from_db()
    assert a.score == 100 and a.completed_at
    # someone else's assignment is not there for them
    assert client_for("rep").get(f"/training/assignments/{a.pk}/test/").status_code == 404
    assert client_for("rep").post(f"/training/assignments/{a.pk}/test/", data).status_code == 404


def test_a_course_saved_by_someone_else_meanwhile_is_refused(world, client_for):
    course = world["course"]
    c = client_for("manager")
    form = {"title": "GSP合规培训", "category": "compliance", "hours": "2", "pass_mark": "90", "max_attempts": "3",
            "status": "published", "valid_months": "12", "questions": BANK, "version": "1"}  # fmt: skip
    assert c.post(f"/training/courses/{course.pk}/edit/", form).status_code == 302
    stale = c.post(
        f"/training/courses/{course.pk}/edit/", {**form, "pass_mark": "60"}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert stale.status_code == 409 and "Someone else changed this record" in stale.content.decode()
    bad = c.post(f"/training/courses/{course.pk}/edit/", {**form, "version": "2", "pass_mark": "abc"},
                 HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert bad.status_code == 400 and "Pass mark (%): Enter a number." in bad.content.decode()


def test_a_file_too_big_is_refused_on_the_page(world, client_for, settings):
    settings.ATTACHMENT_MAX_BYTES = 100
    c = client_for("admin")
    response = c.post(f"/training/courses/{world['course'].pk}/materials/",
                      {"file": SimpleUploadedFile("讲义.pdf", b"%PDF-1.4\n" + b"0" * 200)}, follow=True,
                      HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert "“讲义.pdf”: the file is larger than the limit" in response.content.decode()
    assert not world["course"].materials.exists()


@pytest.mark.parametrize("lang,words", [
    ("zh-hans", ["我的培训", "必修"]), ("en", ["My training", "Mandatory"]), ("zh-hant", ["我的培訓", "必修"]),
])  # fmt: skip
def test_pages_in_each_language(world, client_for, lang, words):
    body = page(client_for, "agent", "/training/", lang).content.decode()
    for w in words:
        assert w in body, (lang, w)
    detail = page(client_for, "manager", f"/training/courses/{world['course'].pk}/", lang).content.decode()
    assert {"zh-hans": "培训评估", "en": "Training evaluation", "zh-hant": "培訓評估"}[lang] in detail


def _same(response) -> str:
    """The page without its per-response tokens (CSP nonce, CSRF token) and its own address."""
    text = response.content.decode().replace(response.wsgi_request.path, "/training/people/…/")
    return re.sub(r'"[A-Za-z0-9+/=_-]{32,}"', "", text)


def test_a_person_page_outside_the_viewers_scope_answers_as_an_unknown_id_does(world, client_for, users):
    # a 403 for a known id and a 404 for an unknown one let anyone tell which user ids exist
    unknown = 10**12
    for role, known in (("kam", users["agent"]), ("rep", users["agent"]), ("agent", users["rep"])):
        outside = page(client_for, role, f"/training/people/{known.pk}/")
        missing = page(client_for, role, f"/training/people/{unknown}/")
        assert outside.status_code == missing.status_code == 404, role
        assert _same(outside) == _same(missing), role
    assert page(client_for, "rep", f"/training/people/{users['rep'].pk}/").status_code == 200  # their own
    # the API: another's assignment outside the scope is as missing as an unknown one
    kam = api(users["kam"])
    assert kam.get(f"/api/v1/training/assignments/{world['agent'].pk}/").status_code == 404
    assert kam.get(f"/api/v1/training/assignments/{unknown}/").status_code == 404
    assert kam.get(f"/api/v1/training/assignments/{world['rep'].pk}/").status_code == 200


# --- the API ---------------------------------------------------------------------------------------------


def api(user, lang="en") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}", HTTP_ACCEPT_LANGUAGE=lang)
    return client


@pytest.mark.parametrize("role", ROLES)
def test_api_per_role(role, world, users):
    client = api(users[role])
    courses = client.get("/api/v1/training/courses/")
    assert courses.status_code == 200
    ids = {c["id"] for c in courses.json()["results"]}
    assert (world["draft"].pk in ids) == (role in ("admin", "manager", "auditor"))
    mine = client.get("/api/v1/training/assignments/")
    assert mine.status_code == 200
    users_seen = {a["user"] for a in mine.json()["results"]}
    expected = {"admin": 2, "manager": 2, "auditor": 2, "kam": 1, "agent": 1, "rep": 1}.get(role, 0)
    assert len(users_seen) == expected, (role, users_seen)


def test_api_submit_scores_on_the_server(world, users):
    a = world["agent"]
    client = api(users["agent"])
    detail = client.get(f"/api/v1/training/assignments/{a.pk}/").json()
    assert len(detail["questions"]) == 5 and "correct" not in detail["questions"][0]
    answers = right_answers(world["course"])
    first = next(iter(answers))
    answers[first] = [0]  # wrong
    response = client.post(
        f"/api/v1/training/assignments/{a.pk}/attempts/", {"answers": answers}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (
        body["attempt"]["score"] == 80 and body["attempt"]["passed"] and body["assignment"]["state"] == "done"
    )
    again = client.post(f"/api/v1/training/assignments/{a.pk}/attempts/", {"answers": answers}, format="json")
    assert again.status_code == 400 and "completed this course already" in again.json()["answers"][0]
    # the rep may not answer for the agent; the manager sees it but it is not theirs
    assert api(users["rep"]).post(f"/api/v1/training/assignments/{a.pk}/attempts/", {"answers": {}},
                                  format="json").status_code == 404  # fmt: skip
    assert api(users["manager"]).post(f"/api/v1/training/assignments/{a.pk}/attempts/", {"answers": {}},
                                      format="json").status_code == 403  # fmt: skip
    assert Attempt.objects.count() == 1


def test_api_errors_are_localised_naming_the_field(world, users):
    a = world["rep"]
    response = api(users["rep"], "zh-hans").post(f"/api/v1/training/assignments/{a.pk}/attempts/",
                                                 {"answers": {"999999": [0]}}, format="json")  # fmt: skip
    assert response.status_code == 400
    assert "不是本次考核的题目" in response.json()["answers"][0]
    bad = api(users["manager"]).get("/api/v1/training/assignments/?state=late")
    assert bad.status_code == 400 and "state" in bad.json()


@pytest.mark.parametrize("field, value, reason", [
    ("teams", "9" * 23, "Not a team."), ("users", "9" * 23, "Not a user."), ("teams", "x", "Not a team."),
])
def test_assigning_to_an_id_that_is_not_one_is_refused_by_name(world, client_for, field, value, reason):
    # an id longer than the database's failed there (500); a bad team was said to be "Not a user."
    r = client_for("manager").post(f"/training/courses/{world['course'].pk}/assign/",
                                   {field: [value], "due_date": "2030-01-01"}, HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert r.status_code == 400 and reason in r.content.decode()


def test_a_course_for_a_team_id_that_is_not_one_is_refused_by_name(world, client_for):
    form = {"title": "新课程", "category": "compliance", "hours": "2", "pass_mark": "80", "max_attempts": "3",
            "status": "draft", "audience_teams": ["9" * 23]}  # a longer id than the database's failed there (500)
    r = client_for("manager").post("/training/courses/new/", form, HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 400 and "Not a team." in r.content.decode()


def test_text_typed_with_an_input_method_or_pasted_with_a_nul_byte_is_saved_not_a_server_error(world, client_for):
    """A course's title, questions and a link's title pasted with a NUL byte failed on PostgreSQL (500), as the
    description and the comments did not; hours typed in full width (２．５) were "not a number"."""
    c = client_for("manager")
    form = {"title": "新\x00课程", "category": "compliance", "hours": "２．５", "pass_mark": "８０", "max_attempts": "3",
            "status": "draft", "questions": "? 储存\x00条件？\n* 2–8℃冷藏\n- 常温"}  # fmt: skip
    r = c.post("/training/courses/new/", form, HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 302, r.content.decode()[:2000]
    from pharmacrm.training.models import Course

    course = Course.objects.get(title="新课程")
    assert str(course.hours) in ("2.5", "2.50") and course.pass_mark == 80
    assert course.questions.get().text == "储存条件？"
    r = client_for("admin").post(f"/training/courses/{course.pk}/materials/",
                                 {"title": "讲义\x00　一", "url": "https://example.com/gsp"})  # fmt: skip
    assert r.status_code == 302
    assert course.materials.get().title == "讲义 一"


def test_assign_sent_twice_assigns_once_and_shows_the_course(world, client_for, users):
    """A double click on "Assign" ran the assignment twice: the second answer read "Assigned to 0 people; 2 had it
    assigned already". The form now carries a one-time token: the second sending does nothing more and shows the
    course."""
    from pharmacrm.training.models import Assignment

    manager = client_for("manager")
    course = world["course"]
    page = manager.get(f"/training/courses/{course.pk}/assign/").content.decode()
    token = re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', page).group(1)
    form = {"users": [str(users["kam"].pk)], "due_date": "2030-01-01", "form_token": token}

    first = manager.post(f"/training/courses/{course.pk}/assign/", form, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    again = manager.post(f"/training/courses/{course.pk}/assign/", form, follow=True, HTTP_ACCEPT_LANGUAGE="en")

    assert "Assigned to 1 people" in first.content.decode()
    assert again.redirect_chain[-1][0] == f"/training/courses/{course.pk}/"
    assert "This form was already sent: the course was assigned then" in again.content.decode()
    assert "Assigned to 0 people" not in again.content.decode()
    assert Assignment.objects.filter(course=course, user=users["kam"]).count() == 1


def test_the_test_sent_twice_uses_one_attempt_and_shows_its_result(world, client_for):
    """A double click on "Submit" scored the same answers twice: a failed test used up two of the attempts allowed
    (and a passed one answered "completed already" the second time). The form now carries a one-time token: the
    second sending scores nothing and shows the result of the first."""
    a = world["agent"]
    c = client_for("agent")
    page = c.get(f"/training/assignments/{a.pk}/test/").content.decode()
    token = re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', page).group(1)
    answers = right_answers(world["course"])
    first = world["course"].questions.order_by("position", "id").first()
    answers[str(first.pk)] = [str(i) for i in range(len(first.options)) if str(i) not in map(str, first.correct)][:1]
    data = {**{f"q{k}": v for k, v in answers.items()}, "form_token": token}

    assert c.post(f"/training/assignments/{a.pk}/test/", data).status_code == 302
    again = c.post(f"/training/assignments/{a.pk}/test/", data, follow=True, HTTP_ACCEPT_LANGUAGE="en")

    assert again.redirect_chain[-1][0] == f"/training/assignments/{a.pk}/result/"
    assert "your answers were scored then, and not a second time" in again.content.decode()
    assert Attempt.objects.filter(assignment=a).count() == 1


def test_a_course_s_numbers_typed_with_a_percent_sign_or_separators_are_read_and_odd_ones_refused(world, client_for):
    """80% of the pass mark (in percent) and 1,000 hours were "Enter a number."; 8_0, 1e2 and Arabic-Indic ٨٠, which
    Python reads, were stored as 80 and 100."""
    from pharmacrm.training.models import Course

    c = client_for("manager")
    form = {"title": "年度合规培训", "category": "compliance", "hours": "1,000", "pass_mark": "８０％",
            "valid_months": "１２", "max_attempts": "3", "status": "draft"}  # fmt: skip
    r = c.post("/training/courses/new/", form, HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 302, r.content.decode()[:2000]
    course = Course.objects.get(title="年度合规培训")
    assert (course.hours, course.pass_mark, course.valid_months) == (1000, 80, 12)
    for field, typed in (("pass_mark", "8_0"), ("pass_mark", "٨٠"), ("hours", "1e2"), ("max_attempts", "3%"),
                         ("valid_months", "12.5")):  # fmt: skip
        r = c.post("/training/courses/new/", {**form, "title": "另一课程", field: typed}, HTTP_ACCEPT_LANGUAGE="en")
        label = {"pass_mark": "Pass mark (%)", "hours": "Hours", "max_attempts": "Attempts allowed",
                 "valid_months": "Valid for (months)"}[field]  # fmt: skip
        assert r.status_code == 400 and f"{label}: Enter a number." in r.content.decode(), (field, typed)
    assert not Course.objects.filter(title="另一课程").exists()


@pytest.mark.parametrize("lang, contact", [("zh-hans", "联系人"), ("zh-hant", "聯絡人")])
def test_the_staff_column_is_not_headed_as_a_customers_contact(world, client_for, lang, contact):
    """Staff are 人员: the trainee column was headed 联系人 (a customer's contact person, the customer pages' word) on the
    results matrix, a course's trainees, the certificates and their export."""
    from openpyxl import load_workbook

    c = world["course"]
    for url in ("/training/results/", f"/training/courses/{c.pk}/", "/training/certificates/"):
        body = page(client_for, "manager", url, lang).content.decode()
        assert f'<th scope="col">{contact}</th>' not in body and f"<dt>{contact}</dt>" not in body, url
    sheet = load_workbook(io.BytesIO(page(client_for, "manager", "/training/results/export.xlsx", lang).content)).active
    assert contact not in [cell.value for cell in sheet[2]]
    english = page(client_for, "manager", "/training/results/").content.decode()
    assert '<th scope="col">Person</th>' in english


@pytest.mark.parametrize("language", ["zh-hans", "zh-hant"])
def test_whom_a_course_is_for_is_not_called_a_festival(world, client_for, language):
    """A course page's "For" (the roles and teams it is meant for) read 对应节日 — the holiday calendar's "For" (the
    festival a working weekend makes up for)."""
    c = client_for("admin")
    c.cookies["django_language"] = language
    html = c.get(f"/training/courses/{world['course'].pk}/").content.decode()
    assert "<dt>" in html
    assert "对应节日" not in html and "對應節日" not in html


@pytest.mark.parametrize("count,words", [
    (1, "1 question, pass mark 80%, 1 attempt allowed"), (3, "3 questions, pass mark 80%, 3 attempts allowed"),
])  # fmt: skip
def test_the_course_page_says_its_questions_and_attempts_in_the_singular_and_the_plural(world, client_for, users,
                                                                                       count, words):
    """The course page read "1 questions, pass mark 80%, 1 attempts allowed"."""
    bank = "\n\n".join(BANK.split("\n\n")[:count])
    course = training.save_course(users["admin"], None, {
        "title": "冷链培训", "category": "compliance", "hours": "1", "pass_mark": "80", "max_attempts": str(count),
        "status": "published", "valid_months": "12", "questions": bank,
    })  # fmt: skip
    assert course.questions.count() == count
    body = page(client_for, "manager", f"/training/courses/{course.pk}/").content.decode()
    assert words in re.sub(r"\s+", " ", body)
