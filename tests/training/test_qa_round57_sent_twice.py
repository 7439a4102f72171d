"""Session 57 (QA, duplicate submissions): the new-session form sent twice (a double click on Save, Back and Save)
planned two sessions of the course at the same time and place, the new-course form made two courses, and "Add
material" added the file twice; each now carries a one-time token and the second sending shows what the first made."""

from __future__ import annotations

import re

import pytest

from pharmacrm.training.models import Course, Session
from tests.training.test_classroom import talk, when  # noqa: F401

pytestmark = pytest.mark.django_db


def _token(page: str) -> str:
    return re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', page).group(1)


def test_the_new_session_form_sent_twice_plans_one_session(talk, client_for):  # noqa: F811
    course, _assigned = talk
    manager = client_for("manager")
    url = f"/training/courses/{course.pk}/sessions/new/"
    form = {"starts_at": f"{when(3):%Y-%m-%dT%H:%M}", "ends_at": f"{when(3, 12):%Y-%m-%dT%H:%M}",
            "place": "总部三楼培训室", "trainer_name": "外聘讲师 周老师", "capacity": "20",
            "form_token": _token(manager.get(url).content.decode())}  # fmt: skip

    first = manager.post(url, form)
    again = manager.post(url, form, HTTP_ACCEPT_LANGUAGE="en", follow=True)  # a double click

    session = Session.objects.get(course=course)  # one
    assert first.status_code == 302 and again.redirect_chain[-1][0] == f"/training/sessions/{session.pk}/"
    assert "This form was already sent: the record was created then" in again.content.decode()


def test_a_refused_session_keeps_its_token_and_the_corrected_form_plans_it(talk, client_for):  # noqa: F811
    course, _assigned = talk
    manager = client_for("manager")
    url = f"/training/courses/{course.pk}/sessions/new/"
    token = _token(manager.get(url).content.decode())
    form = {"starts_at": f"{when(3):%Y-%m-%dT%H:%M}", "ends_at": f"{when(3, 12):%Y-%m-%dT%H:%M}",
            "place": "总部三楼培训室", "trainer_name": "外聘讲师 周老师", "capacity": "0", "form_token": token}

    refused = manager.post(url, form)
    assert refused.status_code == 400 and f'value="{token}"' in refused.content.decode()
    assert not Session.objects.filter(course=course).exists()
    assert manager.post(url, {**form, "capacity": "20"}).status_code == 302
    assert Session.objects.filter(course=course).count() == 1
    edit = manager.get(f"/training/sessions/{Session.objects.get(course=course).pk}/edit/").content.decode()
    assert 'name="form_token"' not in edit


def test_the_new_course_form_sent_twice_makes_one_course(client_for):
    manager = client_for("manager")
    token = _token(manager.get("/training/courses/new/").content.decode())
    form = {"title": "新品上市培训", "category": "product", "hours": "2", "pass_mark": "80", "max_attempts": "3",
            "status": "draft", "form_token": token}  # fmt: skip

    refused = manager.post("/training/courses/new/", {**form, "hours": "x"})  # refused input keeps the token
    assert refused.status_code == 400 and f'value="{token}"' in refused.content.decode()
    first = manager.post("/training/courses/new/", form)
    again = manager.post("/training/courses/new/", form, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    course = Course.objects.get(title="新品上市培训")  # one
    assert first.status_code == 302 and again.redirect_chain[-1][0] == f"/training/courses/{course.pk}/"
    assert "This form was already sent" in again.content.decode()
    assert 'name="form_token"' not in manager.get(f"/training/courses/{course.pk}/edit/").content.decode()


def test_add_material_sent_twice_adds_the_link_once(talk, client_for):  # noqa: F811
    course, _assigned = talk
    manager = client_for("manager")
    token = _token(manager.get(f"/training/courses/{course.pk}/").content.decode())
    form = {"title": "产品手册", "url": "https://example.com/manual.pdf", "form_token": token}

    assert manager.post(f"/training/courses/{course.pk}/materials/", form).status_code == 302
    again = manager.post(f"/training/courses/{course.pk}/materials/", form, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    assert course.materials.filter(title="产品手册").count() == 1
    assert "This form was already sent" in again.content.decode()
