"""Taking a training test in the browser: the agent opens My training, answers (one multiple-choice question only
half right), submits, and reads the server's score and the result; then passes on the second attempt and rates."""

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.training import training
from pharmacrm.training.models import Assignment
from tests.training.test_training import BANK

from .conftest import shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_agent_takes_a_test_and_sees_the_result(page, users):
    course = training.save_course(users["admin"], None, {
        "title": "GSP合规培训", "category": "compliance", "hours": "2", "pass_mark": "100", "max_attempts": "2",
        "status": "published", "mandatory": True, "valid_months": "12", "questions": BANK,
    })  # fmt: skip
    a = training.assign(
        users["manager"], course, [users["agent"]], timezone.localdate() + dt.timedelta(days=7)
    )[0][0]
    questions = list(course.questions.all())

    sign_in(page, "agent")
    page.goto("/training/")
    page.get_by_role("link", name="参加考核").click()
    page.locator("#test-form").wait_for()

    def answer(half: bool):
        for q in questions:
            wanted = q.correct[:1] if half and q.kind == "multiple" else q.correct
            for i in wanted:
                page.locator(f'input[name="q{q.pk}"][value="{i}"]').check()

    answer(half=True)
    page.locator("#submit-test").click()
    page.locator("#failed").wait_for()
    assert (
        "得分 80" in page.locator("#failed").inner_text()
    )  # 4 of 5: the half-right multiple choice is wrong
    shot(page, "training-test-failed")
    page.get_by_role("link", name="再次考核").click()
    answer(half=False)
    page.locator("#submit-test").click()
    page.locator("#passed").wait_for()
    text = page.locator("#passed").inner_text()
    a.refresh_from_db()
    assert "得分 100" in text and a.expires_on.isoformat() in text
    page.locator('#rating-form input[name="stars"][value="5"]').check()
    page.fill("#id_comment", "案例很实用")
    page.locator("#rating-form button[type=submit]").click()
    page.locator("#rating").get_by_text("您的评分：5 分").wait_for()
    shot(page, "training-test-passed")
    assert Assignment.objects.get(pk=a.pk).rating.stars == 5
