"""Session 57 (QA, duplicate submissions): the new-agreement form, and a signed agreement's "new project" form, sent
twice (a double click, Back and Save) recorded two agreements — two contract numbers — or two projects; each now
carries a one-time token, and the second sending shows what the first recorded."""

from __future__ import annotations

import re

import pytest

from pharmacrm.cooperation.models import Agreement, Project
from tests.cooperation.test_cooperation import data, in_force, world  # noqa: F401

pytestmark = pytest.mark.django_db


def _token(page: str, name: str = "form_token") -> str:
    return re.search(rf'name="{name}" value="([A-Za-z0-9_-]+)"', page).group(1)


def test_the_new_agreement_form_sent_twice_records_one_agreement(users, xiehe, client_for):
    manager = client_for("manager")
    form = {k: str(v) for k, v in data(xiehe, users["manager"]).items()}
    form["form_token"] = _token(manager.get("/cooperation/new/").content.decode())

    first = manager.post("/cooperation/new/", form)
    again = manager.post("/cooperation/new/", form, HTTP_ACCEPT_LANGUAGE="en", follow=True)  # a double click

    agreement = Agreement.objects.get()  # one, one number
    assert first.status_code == 302 and again.redirect_chain[-1][0] == f"/cooperation/{agreement.pk}/"
    assert "This form was already sent: the record was created then" in again.content.decode()
    assert 'name="form_token"' not in manager.get(f"/cooperation/{agreement.pk}/edit/").content.decode()


def test_the_new_project_form_sent_twice_adds_one_project(world, users, client_for):  # noqa: F811
    agreement = in_force(users["rep"], world["ours"])
    rep = client_for("rep")
    url = f"/cooperation/{agreement.pk}/"
    page = rep.get(url).content.decode()
    form = {"action": "project", "project-title": "学术会议", "project-goal": "举办两场学术会议",
            "project-responsible": str(users["rep"].pk), "project-start_date": str(agreement.start_date),
            "project-end_date": str(agreement.end_date), "project-budget": "50000",
            "project-form_token": _token(page, "project-form_token")}  # fmt: skip

    first = rep.post(url, form)
    again = rep.post(url, form, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    project = Project.objects.get(agreement=agreement)  # one
    assert first.status_code == 302 and again.redirect_chain[-1][0] == f"/cooperation/projects/{project.pk}/"
    assert "This form was already sent" in again.content.decode()
    # refused input keeps the page, with the error under its field, and records nothing
    page = rep.get(url).content.decode()
    refused = rep.post(url, {**form, "project-title": "", "project-form_token": _token(page, "project-form_token")},
                       HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert refused.status_code == 400 and Project.objects.filter(agreement=agreement).count() == 1
