"""QA round 59 of the service desk, as its users work: what they saw on the pages that was wrong."""

from __future__ import annotations

import re

import pytest


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
