"""QA round 59 of the service desk, as its users work: what they saw on the pages that was wrong."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_link_form_shows_its_one_time_token_once_and_hidden(language, client_for, raise_ticket):
    """The ticket page's *Link a ticket* form rendered its one-time token a second time as a labelled field
    ("Form token", in English whatever the language), an empty box with two inputs of the same name and id."""
    ticket = raise_ticket()
    agent = client_for("agent")
    agent.cookies["django_language"] = language
    html = agent.get(f"/service/tickets/{ticket.pk}/").content.decode()
    link_form = html[html.index('id="link"'):html.index('id="merge"') if 'id="merge"' in html else None]
    assert "Form token" not in link_form
    assert 'for="id_link-form_token"' not in link_form
    assert len(re.findall(r'name="link-form_token"', link_form)) == 1
    assert 'name="link-to_ticket"' in link_form  # the fields a user fills in are still there


@pytest.mark.parametrize("language", ["zh-hans", "zh-hant"])
def test_an_improvement_actions_title_is_not_labelled_a_professional_title(language, client_for, users, xiehe):
    """The improvement action's form and list labelled its title 职称 / 職稱 — a doctor's professional title (主任医师),
    the translation of the bare "Title" the person form uses."""
    from django.utils import translation
    from lxml import html as lh

    from pharmacrm.servicedesk import revisit

    from .conftest import resolved_ticket

    ticket = resolved_ticket(users, xiehe)
    action = revisit.create_action(users["manager"], {
        "title": "缩短退货等待时间", "owner": users["manager"], "ticket": ticket,
        "due_date": timezone.localdate() + dt.timedelta(days=7),
    })  # fmt: skip
    with translation.override(language):
        expected = translation.pgettext("improvement action", "Title")
        professional = translation.gettext("Title")
    assert professional in ("职称", "職稱")  # the person's field keeps its own word
    manager = client_for("manager")
    manager.cookies["django_language"] = language
    pages = {
        "new": f"/service/improvements/new/?ticket={ticket.pk}",
        "edit": f"/service/improvements/{action.pk}/",
    }
    for page in pages.values():
        doc = lh.fromstring(manager.get(page).content)
        assert doc.xpath("string(//label[@for='id_title'])").strip() == expected
    listed = lh.fromstring(manager.get("/service/improvements/").content)
    headers = [th.text_content().strip() for th in listed.xpath("//main//table//th")]
    assert expected in headers and professional not in headers
