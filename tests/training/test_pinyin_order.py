"""Training lists courses and teams in pinyin order (拼音排序): 安全用药 (an) before 宁咳产品培训 (ning), 华东团队 (hua)
before 医学信息组 (yi), not in the characters' code-point order (宁 before 安, 医 before 华): the course list, the
certificates' course filter, a course's audience teams and the results' team filter."""

from __future__ import annotations

import pytest

from pharmacrm.training.models import Course, CourseStatus
from tests.pinyin_helpers import PINYIN_TEAMS, TEAMS, make_teams, offered, shown

COURSES = ["宁咳产品培训", "安全用药", "止咳宝上市培训"]  # in code-point order
PINYIN_COURSES = ["安全用药", "宁咳产品培训", "止咳宝上市培训"]  # an, ning, zhi


@pytest.fixture
def courses(db):
    return [Course.objects.create(title=title, status=CourseStatus.PUBLISHED) for title in COURSES]


@pytest.fixture
def teams(db):
    return make_teams()


def test_courses_are_listed_and_offered_in_pinyin_order(client_for, courses):
    manager = client_for("manager")
    assert shown(manager.get("/training/courses/").content.decode(), COURSES) == PINYIN_COURSES
    html = manager.get("/training/certificates/").content.decode()
    assert offered(html, "course", COURSES) == PINYIN_COURSES


def test_teams_are_offered_in_pinyin_order(client_for, teams):
    manager = client_for("manager")
    assert shown(manager.get("/training/courses/new/").content.decode(), TEAMS) == PINYIN_TEAMS
    assert shown(manager.get("/training/results/").content.decode(), TEAMS) == PINYIN_TEAMS
