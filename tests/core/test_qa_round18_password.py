"""Review round 18: every user changes their own password (the Users form said they would, and there was no
page for it). The password rules apply, other sessions and API tokens end, the change is audited, and a
session left open cannot be used to guess the present password."""

import pytest
from django.test import Client

from pharmacrm.core.models import ApiToken, AuditEntry
from pharmacrm.core.roles import Role

URL = "/accounts/password/"
OLD = "Old-pass-2026!"
NEW = "Qingdao-harbour-77"


@pytest.fixture(autouse=True)
def _english(settings):
    settings.LANGUAGE_CODE = "en"


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_every_role_has_the_page_and_the_menu_link(client_for, role):
    client = client_for(role)
    assert client.get(URL).status_code == 200
    assert 'id="password-change-link"' in client.get("/").content.decode()


def test_a_signed_out_visitor_is_sent_to_sign_in(client):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def _with_password(users, role):
    user = users[role]
    user.set_password(OLD)
    user.save()
    return user


def test_the_password_changes_this_session_stays_and_the_others_end(users, client_for):
    user = _with_password(users, "agent")
    import datetime

    from django.utils import timezone

    ApiToken.objects.create(user=user, key_hash="x" * 64, prefix="x", expires_at=timezone.now() + datetime.timedelta(days=1))
    other = Client()
    other.force_login(user)
    this = client_for("agent")
    response = this.post(URL, {"old_password": OLD, "new_password1": NEW, "new_password2": NEW})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(NEW)
    assert this.get("/").status_code == 200  # still signed in
    assert other.get("/").status_code == 302  # the other session is signed out
    assert not ApiToken.objects.filter(user=user).exists()
    entry = AuditEntry.objects.filter(object_type="core.user", object_id=str(user.pk), action="update").order_by("seq").last()
    assert entry.extra.get("password_changed") is True and entry.actor_id == user.pk
    assert entry.extra["tokens_revoked"] == 1
    assert OLD not in str(entry.changes) + str(entry.extra) and NEW not in str(entry.extra)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"old_password": "wrong", "new_password1": NEW, "new_password2": NEW}, "old_password", "incorrectly"),
        ({"old_password": OLD, "new_password1": NEW, "new_password2": NEW + "x"}, "new_password2", "didn"),
        ({"old_password": OLD, "new_password1": "short1", "new_password2": "short1"}, "new_password2", "too short"),
        ({"old_password": OLD, "new_password1": "agentagent2026", "new_password2": "agentagent2026"},
         "new_password2", "similar"),
    ],
)
def test_a_refused_change_names_the_field_and_keeps_the_old_password(users, client_for, data, field, message):
    user = _with_password(users, "agent")
    response = client_for("agent").post(URL, data, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    user.refresh_from_db()
    assert user.check_password(OLD)


def test_guessing_the_present_password_locks_the_account(users, client_for, settings):
    user = _with_password(users, "agent")
    client = client_for("agent")
    bad = {"old_password": "guess", "new_password1": NEW, "new_password2": NEW}
    codes = [client.post(URL, bad).status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert codes[-1] == 403 and set(codes[:-1]) == {400}
    assert AuditEntry.objects.filter(action="login_failed").count() >= settings.AXES_FAILURE_LIMIT
    # the session ended, and the right password no longer signs in until the cool-off has passed
    assert client.get("/").status_code == 302
    fresh = Client()
    response = fresh.post("/accounts/login/", {"username": user.username, "password": OLD})
    assert response.status_code == 403


def test_a_wrong_present_password_keeps_no_password_in_the_database(users, client_for):
    """The failed attempt is counted (django-axes keeps the form data of each one), but neither the mistyped
    present password nor the new one the user chose is stored in clear for whoever reads the tables or a
    backup."""
    from axes.models import AccessAttempt

    _with_password(users, "agent")
    client = client_for("agent")
    client.post(URL, {"old_password": "Old-pass-2025!", "new_password1": NEW, "new_password2": NEW})
    stored = " ".join(a.post_data + a.get_data for a in AccessAttempt.objects.all())
    assert AccessAttempt.objects.filter(username="agent").exists()
    assert "Old-pass-2025!" not in stored and NEW not in stored
