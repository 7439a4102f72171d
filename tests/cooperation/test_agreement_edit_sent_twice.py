"""A draft cooperation agreement's edit form (its term, say) sent twice — a double click on Save — is saved once and the
second sending says so, instead of telling the user that someone else changed the record; a colleague's save in between
is still the conflict."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from pharmacrm.cooperation import services

from .test_cooperation import data

pytestmark = pytest.mark.django_db
TODAY = timezone.localdate


def test_the_draft_edit_sent_twice_is_saved_once_not_refused(users, xiehe, client_for):
    draft = services.create_agreement(users["manager"], data(xiehe, users["manager"]))
    form = {k: str(v) for k, v in data(xiehe, users["manager"], end_date=draft.end_date + dt.timedelta(days=1)).items()}
    form["version"] = draft.version
    client = client_for("manager")
    assert client.post(f"/cooperation/{draft.pk}/edit/", form).status_code == 302
    again = client.post(f"/cooperation/{draft.pk}/edit/", form, HTTP_ACCEPT_LANGUAGE="en", follow=True)  # the double click
    assert again.redirect_chain[0][1] == 302
    assert "Saved." in again.content.decode() and "Someone else changed" not in again.content.decode()
    draft.refresh_from_db()
    assert draft.version == 2 and draft.end_date == TODAY() + dt.timedelta(days=336)
    # a colleague's save in between is still a conflict
    services.update_agreement(users["admin"], draft, {"title": "改名"}, draft.version)
    form["end_date"] = str(draft.end_date + dt.timedelta(days=9))
    stale = client.post(f"/cooperation/{draft.pk}/edit/", form, HTTP_ACCEPT_LANGUAGE="en")
    assert stale.status_code == 409
