"""Where a form sends its user on to ("next"): a path on this site, else the page's own default. A bare word
("abc", "-1") passed Django's host check, and redirect() took it for the name of a URL pattern: the sign-in page,
"mark as read", the on-duty switch and the stage-task buttons answered 500 (found by the UI QA crawl)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

WORDS = ["abc", "-1", "1e309"]


@pytest.mark.parametrize("word", WORDS)
def test_sign_in_with_a_word_for_next_goes_home(client, users, word):
    user = users["agent"]
    user.set_password("Demo-Pass-2026!")
    user.save()
    r = client.post(f"/accounts/login/?next={word}", {"username": "agent", "password": "Demo-Pass-2026!"})
    assert r.status_code == 302 and r["Location"] == "/"
    # signed in already: the sign-in page sends them on, home
    again = client.get(f"/accounts/login/?next={word}")
    assert again.status_code == 302 and again["Location"] == "/"


def test_sign_in_still_goes_to_the_page_asked_for(client, users):
    user = users["agent"]
    user.set_password("Demo-Pass-2026!")
    user.save()
    r = client.post("/accounts/login/?next=/customers/people/", {"username": "agent", "password": "Demo-Pass-2026!"})
    assert r["Location"] == "/customers/people/"


@pytest.mark.parametrize("word", WORDS)
def test_mark_as_read_with_a_word_for_next_goes_to_the_inbox(client_for, word):
    r = client_for("agent").post("/notifications/read/", {"all": "1", "next": word})
    assert r.status_code == 302 and r["Location"] == "/notifications/"


@pytest.mark.parametrize("word", WORDS)
def test_on_duty_switch_with_a_word_for_next(client_for, word):
    r = client_for("agent").post("/service/on-duty/", {"on_duty": "1", "next": word})
    assert r.status_code == 302 and r["Location"].startswith("/")
