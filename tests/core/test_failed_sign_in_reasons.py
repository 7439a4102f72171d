"""Why a sign-in failed, in the audit trail: a refusal because the account was already locked (its password never
checked — it may even have been the right one) must not look like one more wrong password, or an auditor reads a
locked-out colleague's correct password as an attacker's guess, and cannot tell how long the guessing went on."""

from __future__ import annotations

from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.signals import unknown_name
from tests.conftest import PASSWORD

A = AuditEntry.Action


def reasons(username: str) -> list[tuple[str, str]]:
    failed = AuditEntry.objects.filter(action=A.LOGIN_FAILED, actor_name=username).order_by("seq")
    return [(e.extra.get("via"), e.extra.get("reason")) for e in failed]


def test_a_locked_account_is_recorded_as_locked_not_as_a_wrong_password(users):
    guesser = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        guesser.post("/accounts/login/", {"username": "agent", "password": "wrong-password-123"})
    # the colleague types the right password, the script its right password: both refused, unchecked
    assert Client().post("/accounts/login/", {"username": "agent", "password": PASSWORD}).status_code == 403
    token = APIClient().post("/api/v1/auth/token/", {"username": "agent", "password": PASSWORD}, format="json")
    assert token.status_code == 429
    assert reasons("agent") == [("web", "wrong password")] * settings.AXES_FAILURE_LIMIT + [
        ("web", "account locked"),
        ("api", "account locked"),
    ]


def test_an_unknown_username_is_told_from_a_wrong_password(users):
    Client().post("/accounts/login/", {"username": "nobody", "password": "wrong-password-123"})
    APIClient().post("/api/v1/auth/token/", {"username": "agent", "password": "wrong"}, format="json")
    assert reasons(unknown_name("nobody")) == [("web", "unknown username")]
    assert reasons("agent") == [("api", "wrong password")]


def test_a_name_that_is_no_account_is_not_kept_as_typed(users):
    """A password typed into the user-name field (the two fields swapped) stood in clear in the append-only audit
    trail, as the entry's user and object, for every administrator and the auditor to read. The name is kept as a
    keyed digest: the same for each try of it, so that guessing on one name still shows."""
    typed = "Secret-Passw0rd-2026"
    for client in (Client(), Client()):
        client.post("/accounts/login/", {"username": typed, "password": "whatever-it-is"})
    APIClient().post("/api/v1/auth/token/", {"username": typed, "password": "whatever-it-is"}, format="json")
    Client().post("/accounts/login/", {"username": "nobody", "password": "wrong-password-123"})
    failed = AuditEntry.objects.filter(action=A.LOGIN_FAILED).order_by("seq")
    assert [(e.extra["reason"], e.extra["via"]) for e in failed] == [("unknown username", "web")] * 2 + [
        ("unknown username", "api"), ("unknown username", "web")]
    names = [e.actor_name for e in failed]
    assert names[0] == names[1] == names[2] != names[3]
    assert [e.object_repr for e in failed] == names and all(n.startswith("?") for n in names)
    every_entry = str(list(AuditEntry.objects.values_list("actor_name", "object_repr", "extra", "changes")))
    assert "Secret-Passw0rd" not in every_entry and "nobody" not in every_entry


def test_the_audit_page_says_why_in_the_readers_language(users, client_for):
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        Client().post("/accounts/login/", {"username": "kam", "password": "wrong-password-123"})
    auditor = client_for("auditor")
    page = auditor.get("/accounts/audit/", {"action": "login_failed"}).content.decode()
    assert "账户因多次失败已锁定，未核对密码" in page and "密码错误" in page
    auditor.cookies["django_language"] = "en"
    page = auditor.get("/accounts/audit/", {"action": "login_failed"}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "account locked after repeated failures; the password was not checked" in page


def test_a_deactivated_account_is_recorded_as_such_whatever_the_password(users):
    """A former employee tries their old, right password: it was recorded as a wrong password."""
    agent = users["agent"]
    agent.is_active = False
    agent.save(update_fields=["is_active"])
    assert Client().post("/accounts/login/", {"username": "agent", "password": PASSWORD}).status_code == 200
    APIClient().post("/api/v1/auth/token/", {"username": "agent", "password": PASSWORD}, format="json")
    assert reasons("agent") == [("web", "account deactivated"), ("api", "account deactivated")]


def test_a_name_that_is_no_account_is_not_kept_as_typed_in_the_lockout_table_and_still_locks(users):
    """django-axes kept each failed sign-in's user name as typed in its own table (and so in every backup taken
    meanwhile): a password typed into the user-name field stood there in clear (found by QA in session 56). It is
    counted under the audit trail's digest: never as typed, and tries of one unknown name still lock it out."""
    from axes.models import AccessAttempt

    typed = "MySecretPassw0rd!"
    for _ in range(settings.AXES_FAILURE_LIMIT):
        Client().post("/accounts/login/", {"username": typed, "password": "x"})
    APIClient().post("/api/v1/auth/token/", {"username": "AnotherSecret#42", "password": "x"}, format="json")
    kept = list(AccessAttempt.objects.values_list("username", flat=True))
    assert "MySecretPassw0rd!" not in str(kept) and "AnotherSecret" not in str(kept)
    assert unknown_name(typed) in kept and unknown_name("AnotherSecret#42") in kept
    # the unknown name is locked out after the limit, as an account is (no telling the two apart)
    assert Client().post("/accounts/login/", {"username": typed, "password": "x"}).status_code == 403
    # an account's failures are kept under its name, and its lockout works as before
    Client().post("/accounts/login/", {"username": "agent", "password": "wrong-password-123"})
    assert "agent" in AccessAttempt.objects.values_list("username", flat=True)
