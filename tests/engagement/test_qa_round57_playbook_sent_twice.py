"""Session 57 (QA, duplicate submissions): the stage playbook's "new action" form sent twice (a double click on
Save, Back and Save) added the action twice — every customer entering the stage then got two tasks. The form now
carries a one-time token: the second sending adds nothing and says so."""

from __future__ import annotations

import re

import pytest

from pharmacrm.engagement.models import StageAction

pytestmark = pytest.mark.django_db


def _token(page: str) -> str:
    return re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', page).group(1)


def test_a_new_playbook_action_sent_twice_is_added_once(client_for):
    manager = client_for("manager")
    before = StageAction.objects.count()
    form = {"stage": "potential", "position": "5", "kind": "visit", "title": "首次拜访科主任", "due_days": "5",
            "assignee": "owner", "active": "on",
            "form_token": _token(manager.get("/interactions/playbook/new/").content.decode())}  # fmt: skip

    first = manager.post("/interactions/playbook/new/", form)
    again = manager.post("/interactions/playbook/new/", form, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    assert first.status_code == 302 and StageAction.objects.count() == before + 1
    assert StageAction.objects.filter(title="首次拜访科主任").count() == 1
    assert again.redirect_chain[-1][0] == "/interactions/playbook/"
    assert "This form was already sent" in again.content.decode()
    action = StageAction.objects.get(title="首次拜访科主任")
    assert 'name="form_token"' not in manager.get(f"/interactions/playbook/{action.pk}/").content.decode()


def test_a_playbook_action_edited_without_its_version_is_refused_as_stale(client_for):
    """The page's form carries the version it was loaded with; one without it (an old or tampered page) overwrote a
    colleague's change unseen. It is now refused as stale, with the conflict message and the input kept."""
    manager = client_for("manager")
    action = StageAction.objects.filter(active=True).order_by("id").first()
    form = {"stage": action.stage, "position": "3", "kind": action.kind, "title": "我改的标题", "due_days": "4",
            "assignee": action.assignee, "active": "on"}  # fmt: skip

    stale = manager.post(f"/interactions/playbook/{action.pk}/", form, HTTP_ACCEPT_LANGUAGE="en")

    assert stale.status_code == 409
    page = stale.content.decode()
    assert "Someone else changed this action meanwhile" in page and "我改的标题" in page
    assert StageAction.objects.get(pk=action.pk).title == action.title
    saved = manager.post(f"/interactions/playbook/{action.pk}/", {**form, "version": action.version})
    assert saved.status_code == 302 and StageAction.objects.get(pk=action.pk).title == "我改的标题"
