"""Sign-in: password, lockout after repeated failures, the second factor for admin/auditor/pv, sign-out."""

from __future__ import annotations

import base64
import datetime

import pytest
from django.test import Client
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from pharmacrm.core import services
from pharmacrm.core.models import AuditEntry, SecondFactorEnrolment, User
from tests.conftest import PASSWORD


def _code(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():06d}"


def _wrong_code(device: TOTPDevice) -> str:
    return f"{(int(_code(device)) + 1) % 1_000_000:06d}"


def _login(client: Client, username: str, password: str = PASSWORD, next_url: str = ""):
    data = {"username": username, "password": password}
    if next_url:
        data["next"] = next_url
    return client.post("/accounts/login/", data)


def test_the_sign_in_page_asks_for_username_and_password(client):
    page = client.get("/accounts/login/").content.decode()
    assert 'name="username"' in page and 'name="password"' in page
    assert 'autocomplete="current-password"' in page


def test_an_agent_signs_in_and_lands_where_they_were_going(client, users):
    response = _login(client, "agent", next_url="/customers/people/")
    assert response.status_code == 302 and response["Location"] == "/customers/people/"
    assert client.get("/customers/people/").status_code == 200
    assert AuditEntry.objects.filter(action="login", actor=users["agent"]).exists()


def test_an_outside_next_address_is_ignored(client, users):
    response = _login(client, "agent", next_url="https://evil.example.com/")
    assert response["Location"] == "/"


def test_a_wrong_password_shows_a_message_and_is_audited(client, users):
    response = _login(client, "agent", password="wrong-password")
    assert response.status_code == 200
    assert "The username or password is not correct." in response.content.decode()
    assert AuditEntry.objects.filter(action="login_failed", actor_name="agent").count() == 1


def test_five_failures_lock_the_account_even_for_the_right_password(client, users):
    for _ in range(5):
        _login(client, "agent", password="wrong-password")
    response = _login(client, "agent")
    assert response.status_code == 403
    page = response.content.decode()
    assert "This account is locked for 15 minutes." in page
    assert client.get("/customers/people/").status_code == 302  # not signed in
    other = Client()
    assert _login(other, "rep").status_code == 302  # other accounts are not affected


def test_sign_out_needs_a_post(client_for):
    client = client_for("agent")
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("role", ["admin", "auditor", "pv"])
def test_privileged_roles_must_give_a_one_time_code(client, users, role):
    device = TOTPDevice.objects.create(user=users[role], name="default", confirmed=True)
    response = _login(client, role)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/otp/")
    blocked = client.get("/customers/institutions/")
    assert blocked.status_code == 302 and blocked["Location"].startswith("/accounts/otp/")
    response = client.post("/accounts/otp/", {"code": _code(device), "next": "/customers/institutions/"})
    assert response.status_code == 302 and response["Location"] == "/customers/institutions/"
    assert client.get("/customers/institutions/").status_code == 200


@pytest.mark.parametrize("spelt", [
    lambda code: f"{code[:3]} {code[3:]}", lambda code: code.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
])  # fmt: skip
def test_a_code_with_a_space_or_in_full_width_digits_signs_in(client, users, spelt):
    """A code pasted as the app shows it ("123 456") was refused (seven characters, and the browser would not even
    send it); full-width digits from a Chinese input method too."""
    device = TOTPDevice.objects.create(user=users["admin"], name="default", confirmed=True)
    _login(client, "admin")
    page = client.get("/accounts/otp/").content.decode()
    assert 'name="code"' in page and "pattern=" not in page and 'maxlength="6"' not in page
    response = client.post("/accounts/otp/", {"code": spelt(_code(device))})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_a_code_with_other_characters_is_refused(client, users):
    TOTPDevice.objects.create(user=users["admin"], name="default", confirmed=True)
    _login(client, "admin")
    response = client.post("/accounts/otp/", {"code": "123-456"}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200 and "The code has six digits." in response.content.decode()
    assert client.get("/").status_code == 302


def test_roles_without_a_second_factor_go_straight_in(client, users):
    response = _login(client, "kam")
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_a_wrong_code_is_refused_and_counts_as_a_failed_login(client, users):
    device = TOTPDevice.objects.create(user=users["admin"], name="default", confirmed=True)
    _login(client, "admin")
    response = client.post("/accounts/otp/", {"code": _wrong_code(device)})
    assert response.status_code == 200
    assert "This code is not correct or has expired." in response.content.decode()
    assert AuditEntry.objects.filter(action="login_failed", actor_name="admin").count() == 1
    assert client.get("/").status_code == 302


def test_a_second_code_right_after_a_wrong_one_is_slowed_down(client, users):
    device = TOTPDevice.objects.create(user=users["admin"], name="default", confirmed=True)
    _login(client, "admin")
    client.post("/accounts/otp/", {"code": _wrong_code(device)})
    response = client.post("/accounts/otp/", {"code": _code(device)})
    assert "Too many wrong codes in a row." in response.content.decode()
    assert client.get("/").status_code == 302


def test_repeated_wrong_codes_lock_the_account(client, users, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    device = TOTPDevice.objects.create(user=users["pv"], name="default", confirmed=True)
    _login(client, "pv")
    statuses = [client.post("/accounts/otp/", {"code": _wrong_code(device)}).status_code for _ in range(5)]
    assert statuses[-1] == 403
    assert _login(Client(), "pv").status_code == 403


def _issue(user, by=None) -> str:
    """An enrolment code for the user, as an administrator (or the command) would issue it."""
    if by is None:
        _enrolment, code = services.issue_second_factor_enrolment(None, user, system_actor="cli:test")
    else:
        _enrolment, code = services.issue_second_factor_enrolment(by, user)
    return code


def _secret(page: str) -> bytes:
    return base64.b32decode(page.split('class="secret"><code>')[1].split("</code>")[0].replace(" ", ""))


def test_a_user_without_an_authenticator_enrols_with_a_qr_code(client, users, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # no back-off between the wrong and the right code here
    code = _issue(users["auditor"], by=users["admin"])
    _login(client, "auditor")
    response = client.get("/accounts/otp/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/otp/enrol/")
    page = client.get(response["Location"]).content.decode()
    assert 'name="enrolment_code"' in page and "<svg" not in page
    assert not TOTPDevice.objects.filter(user=users["auditor"]).exists()
    # typed in lower case, with spaces instead of dashes: still the same code
    typed = code.lower().replace("-", " ")
    response = client.post("/accounts/otp/enrol/", {"enrolment_code": typed, "next": "/accounts/audit/"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/otp/enrol/")
    page = client.get(response["Location"]).content.decode()
    assert "<svg" in page  # the QR code, drawn inline
    device = TOTPDevice.objects.get(user=users["auditor"], confirmed=False)
    assert _secret(page) == device.bin_key
    assert _secret(client.get("/accounts/otp/enrol/").content.decode()) == device.bin_key  # a reload keeps it
    wrong = client.post("/accounts/otp/enrol/", {"code": _wrong_code(device)})
    assert "This code is not correct." in wrong.content.decode()
    response = client.post("/accounts/otp/enrol/", {"code": _code(device), "next": "/accounts/audit/"})
    assert response.status_code == 302 and response["Location"] == "/accounts/audit/"
    device.refresh_from_db()
    assert device.confirmed
    enrolment = SecondFactorEnrolment.objects.get(user=users["auditor"])
    assert enrolment.used_at is not None
    assert client.get("/accounts/audit/").status_code == 200
    confirmed = AuditEntry.objects.filter(action="update", object_id=str(users["auditor"].pk)).first()
    assert confirmed.changes == {"second_factor": ["enrolment_code", "totp"]}


def test_the_password_alone_shows_no_secret(client, users):
    """Without an enrolment code nobody can register an authenticator: no QR code, no key, no device."""
    _login(client, "admin")
    for _attempt in range(2):
        response = client.get("/accounts/otp/enrol/")
        page = response.content.decode()
        assert response.status_code == 200
        assert "<svg" not in page and 'class="secret"' not in page and "otpauth" not in page
        assert 'name="enrolment_code"' in page and "ask an administrator for a new one" in page
    # posting a six-digit code straight away does not skip the first step
    response = client.post("/accounts/otp/enrol/", {"code": "123456"})
    assert "<svg" not in response.content.decode()
    assert not TOTPDevice.objects.filter(user=users["admin"]).exists()
    assert client.get("/customers/institutions/").status_code == 302


def test_an_old_unconfirmed_device_is_replaced_once_the_code_is_given(client, users):
    """A secret made before the enrolment code (e.g. by the former page) is never the one set up."""
    old = TOTPDevice.objects.create(user=users["pv"], name="default", confirmed=False)
    code = _issue(users["pv"], by=users["admin"])  # the reset already removes it
    stray = TOTPDevice.objects.create(user=users["pv"], name="default", confirmed=False)
    _login(client, "pv")
    assert "<svg" not in client.get("/accounts/otp/enrol/").content.decode()
    client.post("/accounts/otp/enrol/", {"enrolment_code": code})
    page = client.get("/accounts/otp/enrol/").content.decode()
    device = TOTPDevice.objects.get(user=users["pv"])
    assert device.pk not in (old.pk, stray.pk) and _secret(page) == device.bin_key


def _expired(user, by):
    code = _issue(user, by=by)
    SecondFactorEnrolment.objects.filter(user=user).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    return code


def _used(user, by):
    code = _issue(user, by=by)
    SecondFactorEnrolment.objects.filter(user=user).update(used_at=timezone.now())
    return code


def _someone_elses(user, by):
    _issue(user, by=by)
    return _issue(User.objects.get(username="pv"), by=by)


@pytest.mark.parametrize(
    ("make_code", "message"),
    [
        (lambda user, by: "ABCD-EFGH-JKLM", "This enrolment code is not correct."),
        (_someone_elses, "This enrolment code is not correct."),
        (_expired, "This enrolment code has expired."),
        (_used, "This enrolment code has already been used or was replaced by a newer one."),
    ],
    ids=["wrong", "another-users", "expired", "used"],
)
def test_a_bad_enrolment_code_is_refused_and_counts_as_a_failed_login(client, users, make_code, message):
    code = make_code(users["auditor"], users["admin"])
    _login(client, "auditor")
    response = client.post("/accounts/otp/enrol/", {"enrolment_code": code}, HTTP_ACCEPT_LANGUAGE="en")
    page = response.content.decode()
    assert response.status_code == 200
    assert message in page and 'id="field-enrolment_code"' in page and "<svg" not in page
    assert AuditEntry.objects.filter(action="login_failed", actor_name="auditor").count() == 1
    assert not TOTPDevice.objects.filter(user=users["auditor"]).exists()


def test_the_enrolment_code_step_is_in_chinese_by_default(client, users, settings):
    from tests.core.test_translations import english_left

    settings.LANGUAGE_CODE = "zh-hans"
    _login(client, "auditor")
    page = client.get("/accounts/otp/enrol/").content.decode()
    assert '<html lang="zh-hans">' in page and english_left(page) == []
    assert "二次验证绑定码" in page and "请向管理员" in page
    page = client.post("/accounts/otp/enrol/", {"enrolment_code": "ABCD-EFGH-JKLM"}).content.decode()
    assert english_left(page, also_allowed={"abcd", "efgh", "jklm"}) == []
    assert "绑定码不正确" in page


def test_an_empty_code_is_a_field_error_but_no_failed_login(client, users):
    _login(client, "auditor")
    page = client.post("/accounts/otp/enrol/", {"enrolment_code": " "}, HTTP_ACCEPT_LANGUAGE="en")
    assert "Enter the enrolment code an administrator gave you." in page.content.decode()
    assert not AuditEntry.objects.filter(action="login_failed", actor_name="auditor").exists()


def test_repeated_wrong_enrolment_codes_lock_the_account(client, users):
    code = _issue(users["pv"], by=users["admin"])
    _login(client, "pv")
    statuses = [
        client.post("/accounts/otp/enrol/", {"enrolment_code": "ABCD-EFGH-JKLM"}).status_code
        for _ in range(5)
    ]
    assert statuses == [200, 200, 200, 200, 403]
    assert AuditEntry.objects.filter(action="login_failed", actor_name="pv").count() == 5
    assert client.get("/accounts/otp/enrol/").status_code == 302  # signed out
    assert _login(Client(), "pv").status_code == 403  # even the right password is refused now
    assert not TOTPDevice.objects.filter(user=users["pv"]).exists()
    # the issued code is still unused: after the cool-off the user goes on with it
    assert services.check_enrolment_code(users["pv"], code)[0] is not None


def test_a_new_code_resets_the_device_and_voids_the_old_code(client, users, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    admin, pv = users["admin"], users["pv"]
    confirmed = TOTPDevice.objects.create(user=pv, name="default", confirmed=True)
    first = _issue(pv, by=admin)
    assert not TOTPDevice.objects.filter(pk=confirmed.pk).exists()  # the lost phone no longer works
    second = _issue(pv, by=admin)
    old, new = SecondFactorEnrolment.objects.filter(user=pv).order_by("pk")
    assert old.used_at is not None and new.used_at is None and new.issued_by == admin
    _login(client, "pv")
    refused = client.post("/accounts/otp/enrol/", {"enrolment_code": first}, HTTP_ACCEPT_LANGUAGE="en")
    assert "already been used or was replaced" in refused.content.decode()
    client.post("/accounts/otp/enrol/", {"enrolment_code": second})
    device = TOTPDevice.objects.get(user=pv, confirmed=False)
    assert client.post("/accounts/otp/enrol/", {"code": _code(device)}).status_code == 302
    assert client.get("/customers/institutions/").status_code == 200
    assert SecondFactorEnrolment.objects.get(pk=new.pk).used_at is not None
    # a used code cannot set up another authenticator, even if the device were gone
    TOTPDevice.objects.filter(user=pv).delete()
    other = Client()
    _login(other, "pv")
    refused = other.post("/accounts/otp/enrol/", {"enrolment_code": second}, HTTP_ACCEPT_LANGUAGE="en")
    assert "already been used" in refused.content.decode() and "<svg" not in refused.content.decode()


def test_a_code_replaced_during_set_up_sends_the_user_back_to_the_first_step(client, users, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    code = _issue(users["auditor"], by=users["admin"])
    _login(client, "auditor")
    client.post("/accounts/otp/enrol/", {"enrolment_code": code})
    device = TOTPDevice.objects.get(user=users["auditor"], confirmed=False)
    _issue(users["auditor"], by=users["admin"])  # meanwhile an administrator issues a new code
    response = client.post("/accounts/otp/enrol/", {"code": _code(device)})
    page = response.content.decode()
    assert response.status_code == 200 and 'name="enrolment_code"' in page and "<svg" not in page
    assert "Your enrolment code has expired or was replaced" in page
    assert not TOTPDevice.objects.filter(user=users["auditor"], confirmed=True).exists()
    assert client.get("/customers/institutions/").status_code == 302
    # the note is shown once; the next page is the plain first step again
    assert "was replaced" not in client.get("/accounts/otp/enrol/").content.decode()


def test_a_code_replaced_at_the_moment_of_confirming_changes_nothing(users, settings):
    """The race the page cannot see: the service re-checks the enrolment when it confirms the device."""
    enrolment, _code_text = services.issue_second_factor_enrolment(users["admin"], users["pv"])
    device = TOTPDevice.objects.create(user=users["pv"], name="default", confirmed=False)
    services.issue_second_factor_enrolment(users["admin"], users["pv"])
    assert services.confirm_second_factor(users["pv"], enrolment.pk, device) is False
    assert not TOTPDevice.objects.filter(user=users["pv"], confirmed=True).exists()


def test_a_reset_sends_a_signed_in_user_back_to_the_enrolment_code(client, users):
    """The device a session was verified with is deleted by the reset: the session loses the second factor."""
    device = TOTPDevice.objects.create(user=users["auditor"], name="default", confirmed=True)
    _login(client, "auditor")
    client.post("/accounts/otp/", {"code": _code(device)})
    assert client.get("/accounts/audit/").status_code == 200
    _issue(users["auditor"], by=users["admin"])
    response = client.get("/accounts/audit/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/otp/")
    page = client.get("/accounts/otp/enrol/").content.decode()
    assert 'name="enrolment_code"' in page and "<svg" not in page


@pytest.mark.parametrize("role", ["admin", "auditor"])
def test_the_audit_trail_page_needs_the_second_factor_too(client, users, role):
    """/accounts/ holds the sign-in pages, which must work before the second factor, and the audit trail,
    which must not."""
    TOTPDevice.objects.create(user=users[role], name="default", confirmed=True)
    _login(client, role)
    response = client.get("/accounts/audit/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/otp/")
    assert client.get("/accounts/otp/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302


def test_a_mistyped_enrolment_code_is_not_kept_in_the_database(client, users):
    """A failed attempt's form data is kept (django-axes): a code one character off the valid one would give
    it away to whoever reads the table."""
    from axes.models import AccessAttempt

    code = _issue(users["pv"], by=users["admin"])
    _login(client, "pv")
    typo = code[:-1] + ("A" if code[-1] != "A" else "B")
    client.post("/accounts/otp/enrol/", {"enrolment_code": typo})
    stored = " ".join(a.post_data + a.get_data for a in AccessAttempt.objects.all())
    assert AccessAttempt.objects.filter(username="pv").exists() and typo not in stored
