"""Training lists courses and teams in pinyin order (拼音排序): 安全用药 (an) before 宁咳产品培训 (ning), 华东团队 (hua)
before 医学信息组 (yi), not in the characters' code-point order (宁 before 安, 医 before 华): the course list, the
certificates' course filter, a course's audience teams and the results' team filter."""

from __future__ import annotations

import pytest

from pharmacrm.core.models import Team
from pharmacrm.training.models import Course, CourseStatus

COURSES = ["宁咳产品培训", "安全用药", "止咳宝上市培训"]  # in code-point order
PINYIN_COURSES = ["安全用药", "宁咳产品培训", "止咳宝上市培训"]  # an, ning, zhi
TEAMS = ["东北团队", "医学信息组", "华东团队"]  # in code-point order
PINYIN_TEAMS = ["东北团队", "华东团队", "医学信息组"]  # dong, hua, yi


@pytest.fixture
def courses(db):
    return [Course.objects.create(title=title, status=CourseStatus.PUBLISHED) for title in COURSES]


@pytest.fixture
def teams(db):
    return [Team.objects.create(name=name) for name in TEAMS]


def shown(html: str, names: list[str]) -> list[str]:
    assert all(n in html for n in names), [n for n in names if n not in html]
    return sorted(names, key=html.index)


def test_courses_are_listed_and_offered_in_pinyin_order(client_for, courses):
    manager = client_for("manager")
    assert shown(manager.get("/training/courses/").content.decode(), COURSES) == PINYIN_COURSES
    html = manager.get("/training/certificates/").content.decode()
    start = html.index('name="course"')
    assert shown(html[start : html.index("</select>", start)], COURSES) == PINYIN_COURSES


def test_teams_are_offered_in_pinyin_order(client_for, teams):
    manager = client_for("manager")
    assert shown(manager.get("/training/courses/new/").content.decode(), TEAMS) == PINYIN_TEAMS
    assert shown(manager.get("/training/results/").content.decode(), TEAMS) == PINYIN_TEAMS
