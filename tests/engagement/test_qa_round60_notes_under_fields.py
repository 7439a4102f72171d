"""An interaction's page showed its notes again under every field of its edit form, one character a line: the page
puts the notes in `notes`, and the partial that lists a field's errors and notes took that string from the page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from pharmacrm.engagement import services

pytestmark = pytest.mark.django_db

NOTES = "讨论下季度采购计划及配送时间。"


def test_the_edit_form_under_an_interaction_lists_no_notes_under_its_fields(client_for, users, xiehe):
    visit = services.record_interaction(users["rep"], {
        "institution": xiehe, "channel": "visit", "subject": "药剂科例行沟通", "notes": NOTES,
        "received_at": timezone.now() - dt.timedelta(hours=2)})  # fmt: skip
    page = client_for("rep").get(f"/interactions/{visit.pk}/").content.decode()
    assert 'id="notes">' + NOTES in page  # the notes are shown once, where they belong
    assert '<form' in page and 'name="subject"' in page  # the author has the edit form
    assert re.findall(r'<p class="note">[^<]*</p>', page) == []
