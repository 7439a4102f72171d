"""Session 57 (QA, duplicate submissions): the new-agreement form, and a signed agreement's "new project" form, sent
twice (a double click, Back and Save) recorded two agreements — two contract numbers — or two projects; each now
carries a one-time token, and the second sending shows what the first recorded."""

from __future__ import annotations

import re

import pytest

from pharmacrm.cooperation.models import Agreement, Project
from pharmacrm.core.models import AuditEntry
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


def _said(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_a_projects_buttons_and_forms_sent_twice_act_once(world, users, client_for):  # noqa: F811
    """Start, a task, a check, a payment and a task's progress clicked twice: the second sending answered with the
    stale conflict, or added the task (check, payment) a second time; each now acts once and says so."""
    import datetime as dt

    from pharmacrm.cooperation import services
    from pharmacrm.cooperation.models import Check, ProjectStatus, Task

    agreement = in_force(users["rep"], world["ours"])
    project = services.create_project(users["rep"], agreement, {
        "title": "学术会议", "goal": "举办两场学术会议", "responsible": users["rep"].pk,
        "start_date": agreement.start_date, "end_date": agreement.end_date, "budget": "50000"})  # fmt: skip
    rep = client_for("rep")
    url = f"/cooperation/projects/{project.pk}/"

    def twice(form):
        first = rep.post(url, form, HTTP_ACCEPT_LANGUAGE="en", follow=True)
        return first, rep.post(url, form, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    first, again = twice({"action": "start", "version": project.version})
    assert _said(first) == _said(again) == ["Saved."]
    assert Project.objects.get(pk=project.pk).status == ProjectStatus.RUNNING

    page = rep.get(url).content.decode()
    first, again = twice({"action": "task", "task-title": "邀请讲者", "task-owner": str(users["rep"].pk),
                          "task-deadline": str(dt.date.today() + dt.timedelta(days=5)),
                          "task-form_token": _token(page, "task-form_token")})  # fmt: skip
    assert _said(first) == ["Saved."] and "This form was already sent" in _said(again)[0]
    task = Task.objects.get(project=project)  # one

    first, again = twice({"action": "check", "check-checked_on": str(dt.date.today()), "check-progress": "30",
                          "check-problems": "无", "check-measures": "无",
                          "check-form_token": _token(page, "check-form_token")})  # fmt: skip
    assert Check.objects.filter(project=project).count() == 1

    first, again = twice({"action": "task-update", "task": task.pk, "status": "doing", "progress": "40",
                          "version": task.version})  # fmt: skip
    assert _said(first) == _said(again) == ["Saved."] and Task.objects.get(pk=task.pk).version == task.version + 1


def test_a_stale_project_button_is_refused(world, users, client_for):  # noqa: F811
    from pharmacrm.cooperation import services
    from pharmacrm.cooperation.models import ProjectStatus

    agreement = in_force(users["rep"], world["ours"])
    project = services.create_project(users["rep"], agreement, {
        "title": "学术会议", "goal": "举办两场学术会议", "responsible": users["rep"].pk,
        "start_date": agreement.start_date, "end_date": agreement.end_date, "budget": "50000"})  # fmt: skip
    url = f"/cooperation/projects/{project.pk}/"
    without = client_for("rep").post(url, {"action": "start"}, HTTP_ACCEPT_LANGUAGE="en", follow=True)
    assert _said(without) != ["Saved."] and Project.objects.get(pk=project.pk).status == ProjectStatus.PLANNING
    assert client_for("manager").post(url, {"action": "start", "version": project.version}).status_code == 302
    mine = client_for("rep").post(url, {"action": "start", "version": project.version}, follow=True)
    assert _said(mine) != ["Saved."]


def test_the_amount_due_sent_twice_is_saved_once_and_a_stale_one_is_refused(world, users, client_for):  # noqa: F811
    """'Amount due' clicked twice answered the second time with the stale conflict, the first having saved it; the
    second sending now says it was saved. A colleague's change in between, or a form without its version, is
    still refused."""
    from decimal import Decimal

    from pharmacrm.cooperation import services

    agreement = in_force(users["rep"], world["ours"])
    project = services.create_project(users["rep"], agreement, {
        "title": "学术会议", "goal": "举办两场学术会议", "responsible": users["rep"].pk,
        "start_date": agreement.start_date, "end_date": agreement.end_date, "budget": "50000"})  # fmt: skip
    rep = client_for("rep")
    url = f"/cooperation/projects/{project.pk}/"
    sent = {"action": "due", "due-amount_due": "12,000.00", "due-settlement_due_date": str(agreement.end_date),
            "version": project.version}  # fmt: skip

    first = rep.post(url, sent, HTTP_ACCEPT_LANGUAGE="en", follow=True)
    again = rep.post(url, sent, HTTP_ACCEPT_LANGUAGE="en", follow=True)  # a double click

    saved = Project.objects.get(pk=project.pk)
    assert _said(first) == _said(again) == ["Saved."]
    assert (saved.amount_due, saved.version) == (Decimal("12000.00"), project.version + 1)
    assert AuditEntry.objects.filter(object_type="cooperation.project", object_id=str(project.pk),
                                     action="update", changes__has_key="amount_due").count() == 1  # fmt: skip
    assert "12,000.00" in again.content.decode()  # the page shows what the first sending saved

    # a colleague changes it: the same form sent again from the page loaded before is stale, nothing changes
    loaded = saved.version
    services.set_amount_due(users["manager"], saved, {"amount_due": "15000"}, loaded)
    stale = rep.post(url, {**sent, "version": loaded}, HTTP_ACCEPT_LANGUAGE="en", follow=True)
    assert _said(stale) != ["Saved."] and Project.objects.get(pk=project.pk).amount_due == Decimal("15000.00")
    # the colleague puts back what this form asks for: one version on, but their change, not this form's first sending
    loaded = saved.version
    services.set_amount_due(users["manager"], saved, {"amount_due": "12000",
                                                      "settlement_due_date": agreement.end_date}, loaded)  # fmt: skip
    stale = rep.post(url, {**sent, "version": loaded}, HTTP_ACCEPT_LANGUAGE="en", follow=True)
    assert _said(stale) != ["Saved."] and Project.objects.get(pk=project.pk).version == loaded + 1
    # without its version the form is stale too, even asking for what the project holds
    without = rep.post(url, {k: v for k, v in sent.items() if k != "version"} | {"due-amount_due": "15000"},
                       HTTP_ACCEPT_LANGUAGE="en", follow=True)  # fmt: skip
    assert _said(without) != ["Saved."]
