"""In English the training pages showed Chinese punctuation the templates typed in: the course's audience read
"Agent、Sales representative；North" and a test question's kind "（Single choice）". The separators now follow the
page's language (the list separator of core.wording), and stay Chinese on a Chinese page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from pharmacrm.training import training

pytestmark = pytest.mark.django_db

FULL_WIDTH = re.compile(r"[，：（）、；。！？“”《》【】]")
QUESTIONS = """\
? Where is the product stored?
- At room temperature
* Refrigerated at 2-8 C

?? Which records does GSP ask for?
* Temperature records
* Receiving records
- A diary
"""


@pytest.fixture
def course(users, team_north):
    return training.save_course(users["admin"], None, {
        "title": "GSP refresher", "category": "compliance", "hours": "2", "pass_mark": "80", "max_attempts": "3",
        "status": "published", "mandatory": True, "valid_months": "12", "questions": QUESTIONS,
        "audience_roles": ["agent", "rep"], "audience_teams": [str(team_north.pk)],
    })  # fmt: skip


def main(response) -> str:
    assert response.status_code == 200
    html = response.content.decode()
    return html[html.index('<main id="main"'):html.index("</main>")]


def audience(html: str) -> str:
    """The course's "For" fact: the sixth of the facts (category, status, mandatory, hours, valid for, for)."""
    facts = html[html.index('<dl class="facts">'):]
    return re.findall(r"<dd>(.*?)</dd>", facts)[5]


def test_the_course_page_in_english_has_no_full_width_punctuation(course, client_for, team_north):
    page = main(client_for("manager").get(f"/training/courses/{course.pk}/", HTTP_ACCEPT_LANGUAGE="en"))
    assert FULL_WIDTH.findall(page) == []
    said = audience(page)
    assert said.count(", ") == 2 and said.endswith(f", {team_north.name}"), said


def test_the_course_page_in_chinese_keeps_the_chinese_list_separator(course, client_for):
    page = main(client_for("manager").get(f"/training/courses/{course.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans"))
    assert "、" in audience(page) and ", " not in audience(page)


def test_the_test_page_in_english_names_each_question_s_kind_in_plain_brackets(course, users, client_for):
    new, _ = training.assign(users["manager"], course, [users["agent"]], timezone.localdate() + dt.timedelta(days=7))
    page = main(client_for("agent").get(f"/training/assignments/{new[0].pk}/test/", HTTP_ACCEPT_LANGUAGE="en"))
    assert FULL_WIDTH.findall(page) == []
    assert re.search(r'<span class="muted small"> \([^)<]+\)</span>', page)


def test_the_test_page_in_chinese_names_each_question_s_kind_in_full_width_brackets(course, users, client_for):
    new, _ = training.assign(users["manager"], course, [users["agent"]], timezone.localdate() + dt.timedelta(days=7))
    page = main(client_for("agent").get(f"/training/assignments/{new[0].pk}/test/", HTTP_ACCEPT_LANGUAGE="zh-hans"))
    assert re.search(r'<span class="muted small">（[^）<]+）</span>', page)
