"""The training results filtered on a team id that is no database integer ("²", which str.isdigit() takes for a
digit): "no such team" (404), as for any unknown team, instead of a server error (found by the UI QA crawl)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("odd", ["²", "99999999999999999999", "12345"])
def test_results_filtered_on_an_odd_team_is_no_such_team(client_for, odd):
    r = client_for("manager").get(f"/training/results/?team={odd}")
    assert r.status_code == 404


def test_results_without_a_team_show(client_for):
    assert client_for("manager").get("/training/results/").status_code == 200


@pytest.mark.parametrize("hours, said", [("1e309", "Hours: Enter a number."), ("9" * 40, "Between 0.5 and 1000.")])
def test_a_course_of_absurd_hours_names_the_range(client_for, hours, said):
    """Hours too large to round to a tenth said nothing but 500 (decimal.InvalidOperation); now the range. An
    exponent is no number a person types (core.numbers): refused as such."""
    form = {"title": "新课程", "category": "compliance", "hours": hours, "pass_mark": "80", "max_attempts": "3",
            "status": "draft"}  # fmt: skip
    r = client_for("manager").post("/training/courses/new/", form, HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 400 and said in r.content.decode()


@pytest.mark.parametrize("version", ["abc", "²", "1" * 40])
def test_a_garbled_course_version_is_a_stale_edit(users, version):
    """A course's version that is no number counts as an old one: a conflict, the course unchanged."""
    from pharmacrm.customers.services import ConflictError
    from pharmacrm.training import training

    data = {"title": "客户沟通技巧", "category": "communication", "hours": "3", "pass_mark": "80",
            "max_attempts": "3", "status": "published", "valid_months": "24"}  # fmt: skip
    course = training.save_course(users["admin"], None, data)
    with pytest.raises(ConflictError):
        training.save_course(users["admin"], course, {**data, "title": "新标题"}, version)
    course.refresh_from_db()
    assert course.title == "客户沟通技巧"
