"""A form sent to a page the user may not change is audited as "access denied", as a refused API write is."""

from __future__ import annotations

from pharmacrm.core import audit
from pharmacrm.core.models import AuditEntry, User

A = AuditEntry.Action


def test_a_refused_form_on_a_page_is_in_the_audit_trail(users, client_for):
    """An agent who sent the new-user form (a saved page, a guessed address) got the 403 page and the audit trail
    showed nothing, while the same attempt through the API is recorded as "access denied"."""
    agent = client_for("agent")
    response = agent.post("/accounts/users/new/", {"username": "intruder", "roles": ["admin"], "password": "x" * 12})
    assert response.status_code == 403
    assert not User.objects.filter(username="intruder").exists()
    entry = AuditEntry.objects.get(action=A.ACCESS_DENIED)
    assert entry.actor == users["agent"]
    assert (entry.object_type, entry.object_repr) == ("web", "/accounts/users/new/")
    assert entry.extra["method"] == "POST" and entry.extra["view"] == "users-new"
    assert audit.verify().ok


def test_a_refused_page_read_is_not_audited(users, client_for):
    assert client_for("agent").get("/accounts/users/").status_code == 403
    assert not AuditEntry.objects.filter(action=A.ACCESS_DENIED).exists()


def test_the_audit_page_finds_refused_page_requests_by_their_kind(users, client_for, settings):
    settings.LANGUAGE_CODE = "en"
    client_for("rep").post(f"/accounts/users/{users['rep'].pk}/unlock/")
    page = client_for("auditor").get("/accounts/audit/", {"object_type": "web"}, HTTP_ACCEPT_LANGUAGE="en")
    text = page.content.decode()
    assert page.status_code == 200
    assert "Web request" in text and f"/accounts/users/{users['rep'].pk}/unlock/" in text
