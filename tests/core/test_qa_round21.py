"""Review round 21 (core): sign-in lockout, users administration, audit trail and operations."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from pharmacrm.core import access, backup, crypto, keys
from pharmacrm.core.models import AuditEntry, User
from pharmacrm.core.roles import Cap, Role
from pharmacrm.customers.models import Person
from tests.conftest import PASSWORD
from tests.ui.test_login import _code, _login, _wrong_code


@pytest.fixture(autouse=True)
def english(settings):
    settings.LANGUAGE_CODE = "en"


# --- lockout: the password step does not clear the wrong one-time codes -------------------------------


def test_signing_in_again_with_the_password_does_not_clear_the_wrong_codes(users, settings):
    """Someone who has the password of a pharmacovigilance officer guesses one-time codes: signing in again
    with the password between guesses used to clear the count, so the account was never locked."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    device = TOTPDevice.objects.create(user=users["pv"], name="default", confirmed=True)
    statuses = []
    for _round in range(2):
        client = Client()
        assert _login(client, "pv").status_code == 302
        statuses += [client.post("/accounts/otp/", {"code": _wrong_code(device)}).status_code for _ in range(3)]
    # the fifth wrong code locks the account and ends the session: the sixth is sent to the sign-in page
    assert statuses == [200, 200, 200, 200, 403, 302]
    assert _login(Client(), "pv").status_code == 403  # the right password too, until the cool-off ends


def test_a_session_opened_before_the_lockout_cannot_finish_signing_in(users, settings):
    """Someone guessing a pharmacovigilance officer's one-time codes opens sessions with the password first, then
    guesses in each: once the account was locked, a right code in one of those sessions still signed in — and
    the complete sign-in cleared the lock. A locked account now signs in nowhere until the cool-off ends."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    device = TOTPDevice.objects.create(user=users["pv"], name="default", confirmed=True)
    opened = Client()
    assert _login(opened, "pv").status_code == 302  # password given, the code not yet
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(Client(), "pv", password="wrong-password")
    response = opened.post("/accounts/otp/", {"code": _code(device)})
    assert response.status_code == 403 and b"locked" in response.content
    assert opened.get("/").status_code == 302  # the session ended
    assert _login(Client(), "pv").status_code == 403  # and the account is still locked
    assert not AuditEntry.objects.filter(action="login", actor_name="pv", extra__second_factor="totp").exists()


def test_a_complete_sign_in_still_clears_earlier_failures(users, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    device = TOTPDevice.objects.create(user=users["pv"], name="default", confirmed=True)
    for _ in range(4):
        _login(Client(), "pv", password="wrong-password")
    client = Client()
    _login(client, "pv")
    assert client.post("/accounts/otp/", {"code": _code(device)}).status_code == 302  # signed in: count cleared
    for _ in range(4):
        _login(Client(), "pv", password="wrong-password")
    assert _login(Client(), "pv").status_code == 302
    for _ in range(4):
        _login(Client(), "agent", password="wrong-password")
    assert _login(Client(), "agent").status_code == 302  # no second factor: the password completes it
    for _ in range(4):
        _login(Client(), "agent", password="wrong-password")
    assert _login(Client(), "agent").status_code == 302


# --- backup: the key-ring copy comes from the ring's source, not a stale process -------------------


@pytest.mark.django_db(transaction=True)
def test_a_backup_by_a_worker_started_before_a_rotation_carries_the_new_key(own_keyring, xiehe, tmp_path, settings):
    """The daily backup runs in the worker, which loaded the key ring at start. After `rotate-keys` (before the
    worker was restarted) its backups came with the old ring: restored on a new machine with that copy, every
    phone number and e-mail re-encrypted under the new key could not be read."""
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.VAR_DIR = tmp_path / "var"  # the restore replaces the documents there, not the project's own
    settings.VAR_DIR.mkdir()
    loaded_at_start = crypto.keyring()
    call_command("rotate_keys")
    rotated = crypto.keyring()
    assert rotated.active not in loaded_at_start.keys
    crypto.install_keyring(loaded_at_start, persist=False)  # the worker's ring, loaded before the rotation

    made = backup.scheduled_backup()

    assert crypto.KeyRing.from_json(made.keyring_path.read_text()) == rotated
    own_keyring.write_text(crypto.KeyRing.generate().to_json())  # a new machine: only the backup's copy
    crypto.install_keyring(crypto.KeyRing.from_json(own_keyring.read_text()), persist=False)
    call_command("restore", str(made.path), "--yes", "--with-keyring")
    assert keys.problems() == []
    assert Person.objects.get(name="张伟").mobile == "13800138000"


# --- a page part fetched by htmx after the session ended --------------------------------------------------


HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/customers/people/?page=2"}


def test_search_suggestions_after_the_session_ended_take_the_whole_page_to_sign_in(client_for):
    """The session ends (8 hours, signed out in another tab): typing in the header's search box pasted the whole
    sign-in page, header and all, into the suggestions box. Now the page goes to the sign-in page, and back
    to the page the user was on afterwards."""
    client = client_for("agent")
    client.logout()
    response = client.get("/customers/search/", {"q": "协和", "as": "suggest"}, **HTMX)
    assert response.status_code == 204 and response.content == b""
    assert response["HX-Redirect"] == "/accounts/login/?next=%2Fcustomers%2Fpeople%2F%3Fpage%3D2"
    plain = client.get("/customers/search/", {"q": "协和"})  # a page of its own: the usual redirect
    assert plain.status_code == 302 and plain["Location"].startswith("/accounts/login/?next=/customers/search/")


def test_a_page_part_before_the_one_time_code_takes_the_whole_page_to_the_code(client, users):
    TOTPDevice.objects.create(user=users["admin"], name="default", confirmed=True)
    _login(client, "admin")
    response = client.get("/customers/search/", {"q": "协和", "as": "suggest"}, **HTMX)
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/accounts/otp/?next=%2Fcustomers%2Fpeople%2F%3Fpage%3D2"


def test_a_current_url_of_another_site_is_not_where_the_user_comes_back_to(client_for):
    client = client_for("agent")
    client.logout()
    response = client.get("/customers/search/", {"as": "suggest"}, HTTP_HX_REQUEST="true",
                          HTTP_HX_CURRENT_URL="https://evil.example.com/x")  # fmt: skip
    assert response["HX-Redirect"] == "/accounts/login/?next=%2F"


# --- signing in with the username in another letter case ---------------------------------------------


@pytest.mark.parametrize("typed", ["Agent", "AGENT", "ａｇｅｎｔ", " agent "])
def test_the_username_signs_in_whatever_its_letter_case(client, users, typed):
    """A phone capitalises the first letter, a Chinese input method types full-width letters: "Agent" was told
    "The username or password is not correct." although usernames are unique whatever their case."""
    response = client.post("/accounts/login/", {"username": typed, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").wsgi_request.user == users["agent"]


def test_every_spelling_of_a_username_counts_towards_one_lockout(users):
    for typed in ("Agent", "AGENT", "agent", "aGent", "Agent"):
        _login(Client(), typed, password="wrong-password")
    assert AuditEntry.objects.filter(action="login_failed", actor_name="agent").count() == 5  # one account
    assert _login(Client(), "agent").status_code == 403


def test_the_api_token_accepts_the_username_in_another_case(users):
    response = APIClient().post("/api/v1/auth/token/", {"username": "Rep", "password": PASSWORD}, format="json")
    assert response.status_code == 200 and response.json()["token"]


def test_the_sign_in_field_is_not_capitalised_by_a_phone_keyboard(client):
    import re

    page = client.get("/accounts/login/").content.decode()
    field = re.search(r'<input[^>]*name="username"[^>]*>', page).group(0)
    assert 'autocapitalize="none"' in field and 'spellcheck="false"' in field


# --- an administrator cannot make their own account read-only ------------------------------------------


def test_an_administrator_cannot_give_themself_the_auditor_role(client_for, users):
    """Ticking "Auditor" on one's own account saved, and the read-only role took every write capability away,
    managing users included: the only administrator could not undo it on the web."""
    admin = users["admin"]
    client = client_for("admin")
    data = {"username": "admin", "roles": ["admin", "auditor"], "is_active": "on", "version": admin.version}
    page = client.post(reverse("users-edit", args=[admin.pk]), data, HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert ("You cannot give yourself the role Auditor / data steward: it makes an account read-only, and you "
            "could no longer manage users.") in page.content.decode()  # fmt: skip
    admin = User.objects.get(pk=admin.pk)
    assert admin.roles == {Role.ADMIN}
    assert access.can(admin, Cap.MANAGE_USERS)
    # through the API too; another administrator's account may still be given it
    api = APIClient()
    api.force_authenticate(admin)
    mine = api.patch(f"/api/v1/users/{admin.pk}/", {"roles": ["admin", "auditor"], "version": admin.version},
                     format="json", HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert mine.status_code == 400 and "roles" in mine.json()
    other = User.objects.create_user("admin2", password=PASSWORD)
    other.groups.set(admin.groups.all())
    theirs = api.patch(f"/api/v1/users/{other.pk}/", {"roles": ["auditor"], "version": 1}, format="json")
    assert theirs.status_code == 200 and theirs.json()["roles"] == ["auditor"]


def test_an_administrator_setting_their_own_password_on_the_users_page_stays_signed_in(client_for, users):
    """Saving a new password on one's own user page threw the administrator out to the sign-in page at once
    (the session's password hash no longer matched), the "saved" message lost."""
    admin = users["admin"]
    client = client_for("admin")
    other = client_for("admin")  # another browser: signed out, as after any new password
    data = {"username": "admin", "roles": ["admin"], "is_active": "on", "version": admin.version,
            "password": "Qx7-lantern-Harbor", "password2": "Qx7-lantern-Harbor"}  # fmt: skip
    saved = client.post(reverse("users-edit", args=[admin.pk]), data, HTTP_ACCEPT_LANGUAGE="en")
    assert saved.status_code == 302
    page = client.get(saved["Location"], HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200 and "was saved." in page.content.decode()
    assert other.get("/").status_code == 302
    assert User.objects.get(pk=admin.pk).check_password("Qx7-lantern-Harbor")


def test_a_username_saved_with_full_width_letters_still_signs_in_as_typed(client, users):
    user = User(username="ｗａｎｇ")  # the Users page saves a username as it was typed
    user.set_password(PASSWORD)
    user.save()
    response = client.post("/accounts/login/", {"username": "ｗａｎｇ", "password": PASSWORD})
    assert response.status_code == 302


# --- the audit trail tells a password alone from a complete sign-in ---------------------------------------


def test_the_audit_trail_tells_a_password_alone_from_a_complete_sign_in(client, client_for, users, settings):
    """Someone with an administrator's password but not their phone: the trail showed "Login" at the password,
    then the failed codes — an auditor read that the account had been signed in to. The password step now says
    the code is still to come, and a complete sign-in is its own entry."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    device = TOTPDevice.objects.create(user=users["admin"], name="default", confirmed=True)
    _login(client, "admin")
    client.post("/accounts/otp/", {"code": _wrong_code(device)})
    logins = AuditEntry.objects.filter(action="login", actor=users["admin"])
    assert [e.extra.get("second_factor") for e in logins] == ["pending"]
    client.post("/accounts/otp/", {"code": _code(device)})
    assert [e.extra.get("second_factor") for e in logins.order_by("seq")] == ["pending", "totp"]
    page = client_for("auditor").get("/accounts/audit/", {"action": "login"}, HTTP_ACCEPT_LANGUAGE="en")
    text = page.content.decode()
    assert "password only; one-time code not yet given" in text and "authenticator app" in text
    # a role without a second factor: one entry, as before
    _login(Client(), "agent")
    assert "second_factor" not in AuditEntry.objects.filter(action="login", actor=users["agent"]).get().extra
