"""Deactivating an account ends its web sessions and revokes its API tokens at once, audited, for good; a lockout
after failed sign-ins blocks new sign-ins only."""

from __future__ import annotations

from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from pharmacrm.core import audit
from pharmacrm.core.models import ApiToken, AuditEntry, User
from pharmacrm.core.signals import unknown_name
from tests.conftest import PASSWORD

A = AuditEntry.Action


def signed_in(username: str) -> Client:
    """A browser that signed in on the sign-in page, as the employee did in the morning."""
    browser = Client(HTTP_ACCEPT_LANGUAGE="en")
    response = browser.post("/accounts/login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/", response.content[:300]
    assert browser.get("/").status_code == 200
    return browser


def token_of(username: str) -> APIClient:
    client = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    response = client.post("/api/v1/auth/token/", {"username": username, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/v1/roles/").status_code == 200
    return client


def goes_to_sign_in(browser: Client) -> bool:
    response = browser.get("/")
    return response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_deactivated_employee_is_signed_out_everywhere_and_stays_out_when_reactivated(api_for, users):
    """Deactivating a dismissed employee left their signed-in session in the database: the next request was
    refused while the account was inactive, but reactivating it (a mistake undone, a rehire) brought the old
    session back, in whatever browser still held it. Now the sessions end with the deactivation, for good."""
    agent = users["agent"]
    office, phone = signed_in("agent"), signed_in("agent")
    script = token_of("agent")
    admin = api_for("admin")

    assert admin.delete(f"/api/v1/users/{agent.pk}/").status_code == 204

    assert goes_to_sign_in(office) and goes_to_sign_in(phone)
    assert script.get("/api/v1/roles/").status_code == 401
    assert not ApiToken.objects.filter(user=agent).exists()
    entry = AuditEntry.objects.filter(action=A.UPDATE, object_type="core.user", object_id=str(agent.pk)).get()
    assert entry.changes["is_active"] == [True, False]
    assert entry.actor == users["admin"]
    assert entry.extra["sessions_ended"] is True and entry.extra["tokens_revoked"] == 1

    version = User.objects.get(pk=agent.pk).version
    response = admin.patch(f"/api/v1/users/{agent.pk}/", {"is_active": True, "version": version}, format="json")
    assert response.status_code == 200, response.content

    assert goes_to_sign_in(office) and goes_to_sign_in(phone)  # the old sessions stay ended
    assert script.get("/api/v1/roles/").status_code == 401
    signed_in("agent")  # the employee signs in again with the password
    assert audit.verify().ok


def test_deactivating_on_the_users_page_signs_the_user_out(users, client_for):
    kam = users["kam"]
    browser = signed_in("kam")
    admin = client_for("admin")
    page = admin.post(
        f"/accounts/users/{kam.pk}/",
        {"username": "kam", "roles": ["kam"], "teams": [t.pk for t in kam.teams.all()], "version": kam.version},
    )  # is_active not ticked
    assert page.status_code == 302, page.content[:500]
    assert User.objects.get(pk=kam.pk).is_active is False
    assert goes_to_sign_in(browser)
    entry = AuditEntry.objects.filter(action=A.UPDATE, object_id=str(kam.pk)).get()
    assert entry.extra["sessions_ended"] is True


def test_an_account_deactivated_by_a_script_is_signed_out_and_audited(users):
    """`pharmacrm shell` or a data fix that sets is_active and saves ends the sessions too, audited with the
    operating-system account."""
    rep = users["rep"]
    browser = signed_in("rep")
    script = token_of("rep")
    rep.refresh_from_db()
    rep.is_active = False
    rep.save(update_fields=["is_active"])
    assert goes_to_sign_in(browser)
    assert script.get("/api/v1/roles/").status_code == 401
    entry = AuditEntry.objects.filter(action=A.UPDATE, object_id=str(rep.pk)).get()
    assert entry.actor_name.startswith("cli:") and entry.extra["sessions_ended"] is True
    assert entry.extra["tokens_revoked"] == 1


def test_a_lockout_by_someone_elses_failures_blocks_new_sign_ins_but_signs_nobody_out(users):
    """Decision (docs/security.md): anyone may type wrong passwords for a user name, so the lockout they cause
    must not sign the real user out — that would let an attacker throw anyone out of their work. It refuses new
    sign-ins, web and token, until the cool-off ends or an administrator unlocks the account."""
    at_work = signed_in("agent")
    script = token_of("agent")
    attacker = Client(HTTP_ACCEPT_LANGUAGE="en")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attacker.post("/accounts/login/", {"username": "agent", "password": "wrong-password-123"})
    assert AuditEntry.objects.filter(action=A.LOGIN_FAILED, actor_name="agent").count() == settings.AXES_FAILURE_LIMIT

    refused = Client(HTTP_ACCEPT_LANGUAGE="en").post("/accounts/login/", {"username": "agent", "password": PASSWORD})
    assert refused.status_code == 403 and b"Too many failed sign-in attempts" in refused.content
    token = APIClient(HTTP_ACCEPT_LANGUAGE="en").post(
        "/api/v1/auth/token/", {"username": "agent", "password": PASSWORD}, format="json"
    )
    assert token.status_code == 429

    assert at_work.get("/").status_code == 200
    assert script.get("/api/v1/roles/").status_code == 200


def lock_out_by_an_attacker(username: str) -> None:
    attacker = Client(HTTP_ACCEPT_LANGUAGE="en")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attacker.post("/accounts/login/", {"username": username, "password": "wrong-password-123"})


def test_one_typo_on_the_password_page_does_not_sign_out_a_user_whom_someone_else_locked_out(users):
    """Someone's wrong passwords locked the account; the real user, still signed in, went to change the password
    and mistyped the present one once: that one failure found the account locked and ended the session — the
    attacker's failures signed the user out after all. The session now ends after its own wrong guesses only."""
    at_work = signed_in("agent")
    lock_out_by_an_attacker("agent")
    new = "Qingdao-harbour-77"

    typo = at_work.post("/accounts/password/", {"old_password": "typo", "new_password1": new, "new_password2": new})
    assert typo.status_code == 400 and b"Your old password was entered incorrectly" in typo.content
    assert at_work.get("/").status_code == 200

    done = at_work.post("/accounts/password/", {"old_password": PASSWORD, "new_password1": new, "new_password2": new})
    assert done.status_code == 302
    assert at_work.get("/").status_code == 200
    assert User.objects.get(username="agent").check_password(new)


def test_a_session_guessing_the_present_password_still_ends_after_its_own_guesses(users):
    at_work = signed_in("agent")
    bad = {"old_password": "guess", "new_password1": "Qingdao-harbour-77", "new_password2": "Qingdao-harbour-77"}
    codes = [at_work.post("/accounts/password/", bad).status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert codes == [400] * (settings.AXES_FAILURE_LIMIT - 1) + [403]
    assert goes_to_sign_in(at_work)


# --- who a failed sign-in is recorded as ----------------------------------------------------------------


def half_signed_in(username: str) -> Client:
    """A browser that gave the password of a role with a second factor, and not yet the one-time code."""
    browser = Client(HTTP_ACCEPT_LANGUAGE="en")
    response = browser.post("/accounts/login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content[:300]
    assert response["Location"].startswith("/accounts/otp/")
    return browser


def test_a_wrong_one_time_code_is_the_accounts_own_failure_without_a_stray_detail(users):
    """The session of a password already given is the account's: the wrong code is recorded as its failure,
    and nothing else. The entry also kept `actor_name` among its details, shown raw ("actor_name auditor") on
    the audit page in every language."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.create(user=users["auditor"], name="phone", confirmed=True)
    browser = half_signed_in("auditor")
    browser.post("/accounts/otp/", {"code": "000000"})
    entry = AuditEntry.objects.filter(action=A.LOGIN_FAILED).get()
    auditor = users["auditor"]
    assert (entry.actor_id, entry.actor_name, entry.object_repr) == (auditor.pk, "auditor", "auditor")
    # the door, as a sign-in records it, and why it failed; no stray detail
    assert entry.extra == {"via": "web", "reason": "wrong one-time code"}


def test_a_failed_sign_in_as_someone_else_is_not_put_on_the_half_signed_in_account(users):
    """A browser that gave the auditor's password (the code still due) stays on the sign-in page, where anyone
    may type another user name. A wrong password for "kam" there was recorded with the auditor as the actor —
    the trail said the auditor's account had failed to sign in as kam."""
    browser = half_signed_in("auditor")
    browser.post("/accounts/login/", {"username": "kam", "password": "wrong-password-123"})
    entry = AuditEntry.objects.filter(action=A.LOGIN_FAILED).get()
    assert (entry.actor_id, entry.actor_name, entry.object_repr) == (None, "kam", "kam")
    assert entry.extra == {"via": "web", "reason": "wrong password"}


def test_failed_sign_ins_are_filed_under_the_account_they_tried(users, client_for):
    """An auditor looking into an account filters the trail by it (object type user, its id): the account's
    sign-ins and changes were listed, the wrong passwords typed for it on the page or the API were not — they
    named the account only by the name typed. A name no account has is recorded as its keyed digest (never as typed:
    it may be a password typed into the wrong field)."""
    agent = users["agent"]
    Client().post("/accounts/login/", {"username": "Agent", "password": "wrong-password-123"})
    APIClient().post("/api/v1/auth/token/", {"username": "agent", "password": "wrong"}, format="json")
    Client().post("/accounts/login/", {"username": "nobody", "password": "wrong-password-123"})
    failed = AuditEntry.objects.filter(action=A.LOGIN_FAILED).order_by("seq")
    assert [(e.object_type, e.object_id, e.actor_name) for e in failed] == [
        ("core.user", str(agent.pk), "agent"),
        ("core.user", str(agent.pk), "agent"),
        ("core.user", "", unknown_name("nobody")),
    ]
    # and through which door, as a sign-in says: guessing through the API is told from guessing on the page
    assert [e.extra.get("via") for e in failed] == ["web", "api", "web"]
    page = client_for("auditor").get("/accounts/audit/", {"object_type": "core.user", "object_id": agent.pk})
    assert page.content.decode().count("badge-login_failed") == 2
