"""Users who sign decisions but sign in without a second factor (managers approving key accounts and service
plans) set up their authenticator app themselves, on the enrolment page and under its rules (an enrolment
code an administrator issued); a signature without one is refused with a link to that page. Roles that
neither need a second factor nor sign are still sent away from the page."""

from __future__ import annotations

import time

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from pharmacrm.core import services, signatures
from pharmacrm.core.middleware import needs_second_factor
from pharmacrm.core.models import AuditEntry, SecondFactorEnrolment, Signature
from pharmacrm.core.roles import SECOND_FACTOR_ROLES, Role
from pharmacrm.keyaccounts.choices import ProposalStatus
from pharmacrm.keyaccounts.models import KeyAccount
from tests.api.conftest import token_for
from tests.conftest import PASSWORD
from tests.keyaccounts.programme_fixtures import *  # noqa: F403 (make_proposal; agreements' files in tmp)

pytestmark = pytest.mark.django_db

ENROL = "/accounts/otp/enrol/"
LINK = f'<a href="{ENROL}" id="enrol-link">'
# roles that sign in without a second factor and sign nothing: the enrolment page is not for them
NEITHER = [r.value for r in Role if r not in SECOND_FACTOR_ROLES and r not in (Role.MANAGER,)]


def _code(device: TOTPDevice, steps_ahead: int = 0) -> str:
    """The code the authenticator app shows now (or after `steps_ahead` more periods of 30 seconds)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def _signed_in(user, lang: str = "en") -> Client:
    """A browser signed in with the password only: no authenticator is set up (unlike `client_for`)."""
    client = Client(HTTP_ACCEPT_LANGUAGE=lang)
    client.force_login(user)
    return client


def _decide(client: Client, proposal, otp_code: str):
    data = {"decision-decision": "approve", "decision-comment": "同意", "decision-otp_code": otp_code,
            "decision-version": proposal.version}  # fmt: skip
    return client.post(reverse("keyaccounts:proposal-decide", args=[proposal.pk]), data)


def _otp_errors(html: str) -> str:
    return html.split('id="id_decision-otp_code_error"')[1].split("</div>")[0]


def test_the_roles_are_what_the_defect_is_about(users):
    assert signatures.signs(users["manager"]) and not needs_second_factor(users["manager"])
    for role in NEITHER:
        assert not signatures.signs(users[role]) and not needs_second_factor(users[role]), role


def test_a_manager_without_an_authenticator_is_told_how_to_set_one_up_with_a_link(
    users, xiehe, make_proposal
):
    proposal = make_proposal(xiehe)
    response = _decide(_signed_in(users["manager"]), proposal, "123456")
    assert response.status_code == 400
    errors = _otp_errors(response.content.decode())
    assert "Set up your authenticator app before you sign: ask an administrator for an enrolment" in errors
    assert f"{LINK}Set up your second factor</a>" in errors
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.SUBMITTED and not Signature.objects.exists()

    # the link is there in the default language (Chinese) too
    page = _decide(_signed_in(users["manager"], lang="zh-hans"), proposal, "123456").content.decode()
    assert LINK in _otp_errors(page)


def test_the_api_gets_the_same_advice_as_plain_text(users, xiehe, make_proposal):
    proposal = make_proposal(xiehe)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users['manager'])}", HTTP_ACCEPT_LANGUAGE="en")
    response = api.post(f"/api/v1/keyaccounts/proposals/{proposal.pk}/decide/",
                        {"approve": True, "otp_code": "123456", "version": proposal.version}, format="json")  # fmt: skip
    assert response.status_code == 400
    (message,) = response.json()["otp_code"]
    assert message.startswith("Set up your authenticator app before you sign: ask an administrator")
    assert ENROL in message and "<a" not in message


def test_a_manager_enrols_with_an_administrators_code_and_then_signs_an_approval(users, xiehe, make_proposal):
    manager = users["manager"]
    proposal = make_proposal(xiehe)
    browser = _signed_in(manager)

    # the page opens (it used to send the manager home) and asks for the enrolment code first
    page = browser.get(ENROL).content.decode()
    assert 'name="enrolment_code"' in page and 'id="signing-enrolment"' in page and "<svg" not in page
    assert "You sign decisions with a one-time code" in page and "at every sign-in" not in page
    assert "Cancel and sign out" not in page
    assert not TOTPDevice.objects.filter(user=manager).exists()

    # without a code from an administrator, nothing is set up, and the wrong code counts as a failed sign-in
    refused = browser.post(ENROL, {"enrolment_code": "ABCD-EFGH-JKLM"})
    assert refused.status_code == 200 and "This enrolment code is not correct." in refused.content.decode()
    assert "<svg" not in refused.content.decode() and not TOTPDevice.objects.filter(user=manager).exists()
    assert AuditEntry.objects.filter(action="login_failed", actor_name="manager").count() == 1

    # an administrator issues a code; the manager enters it, scans the QR code and confirms
    _enrolment, code = services.issue_second_factor_enrolment(users["admin"], manager)
    response = browser.post(ENROL, {"enrolment_code": code})
    assert response.status_code == 302 and response["Location"].startswith(ENROL)
    page = browser.get(ENROL).content.decode()
    assert "<svg" in page and 'class="secret"' in page
    device = TOTPDevice.objects.get(user=manager, confirmed=False)
    response = browser.post(ENROL, {"code": _code(device)}, follow=True)
    assert response.redirect_chain[0] == (reverse("home"), 302)
    assert "Enter a code from it whenever you sign a decision." in response.content.decode()
    device.refresh_from_db()
    assert device.confirmed and SecondFactorEnrolment.objects.get(user=manager).used_at is not None

    # the page has done its job: it now sends the manager on
    assert browser.get(ENROL)["Location"] == reverse("home")

    # the next code from the app signs the approval
    response = _decide(browser, proposal, _code(device, steps_ahead=1))
    account = KeyAccount.objects.get(institution=xiehe)
    assert response.status_code == 302
    assert response["Location"] == reverse("keyaccounts:account", args=[account.pk])
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.APPROVED
    assert proposal.signature.user == manager and signatures.intact(proposal.signature)


def test_the_sign_in_stays_without_a_code_for_a_manager_who_enrolled(users):
    manager = users["manager"]
    TOTPDevice.objects.create(user=manager, name="phone", confirmed=True)
    client = Client()
    response = client.post("/accounts/login/", {"username": "manager", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert client.get(reverse("home")).status_code == 200


@pytest.mark.parametrize("role", NEITHER)
def test_roles_that_neither_sign_nor_need_a_second_factor_are_still_sent_away(users, role):
    user = users[role]
    _enrolment, code = services.issue_second_factor_enrolment(users["admin"], user)
    browser = _signed_in(user)
    assert browser.get(ENROL)["Location"] == reverse("home")
    response = browser.post(ENROL, {"enrolment_code": code, "next": "/customers/"})
    assert response.status_code == 302 and response["Location"] == "/customers/"
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert SecondFactorEnrolment.objects.get(user=user).used_at is None


def test_a_user_who_cannot_enrol_gets_no_link(users, xiehe):
    with pytest.raises(ValidationError) as refused:
        signatures.verify(users["kam"], "123456", signatures.Meaning.APPROVED, xiehe)
    (message,) = refused.value.message_dict["otp_code"]
    assert ENROL not in message and not hasattr(message, "__html__")


@pytest.mark.parametrize("role", sorted(r.value for r in SECOND_FACTOR_ROLES))
def test_the_roles_that_need_a_code_at_sign_in_see_the_page_as_before(users, role):
    browser = _signed_in(users[role])
    page = browser.get(ENROL).content.decode()
    assert "Your role needs a one-time code at every sign-in." in page and "Cancel and sign out" in page
    assert 'id="signing-enrolment"' not in page


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_one_code_sent_twice_at_once_signs_once(users):
    """A one-time code is good for one use. Two requests with the same code at the same moment (a signature form
    sent twice, or the code read over the signer's shoulder) both read it as unused and both passed; now the
    second waits for the first and finds the code used."""
    from tests.concurrency import held_while

    manager = users["manager"]
    device = TOTPDevice.objects.create(user=manager, name="phone", confirmed=True)
    code = _code(device)
    passed: list[bool] = []
    held_while(
        lambda: passed.append(signatures.verify_code(manager, code)),
        lambda: passed.append(signatures.verify_code(manager, code)),
    )
    assert passed == [True, False]


def test_the_right_code_during_the_wait_after_a_wrong_one_is_not_called_wrong(users, settings):
    """After a wrong code django-otp makes the signer wait before the next one is checked. The right code sent
    during that wait was refused as "not correct or already used", and audited as a wrong code: the signer
    doubted the authenticator app. They are told to wait, as at sign-in, and nothing is audited as wrong."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 600  # a wait that outlasts the test
    manager = users["manager"]
    device = TOTPDevice.objects.create(user=manager, name="phone", confirmed=True)
    wrong = f"{(int(_code(device)) + 1) % 1_000_000:06d}"
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        signatures.verify(manager, wrong, signatures.Meaning.APPROVED, manager)
    assert "not correct" in str(refused.value)
    failed = AuditEntry.objects.filter(action="login_failed", actor=manager).count()
    with translation.override("en"), pytest.raises(ValidationError) as waiting:
        signatures.verify(manager, _code(device), signatures.Meaning.APPROVED, manager)
    assert waiting.value.message_dict["otp_code"] == [
        "Too many wrong codes in a row. Wait a few seconds, then enter the current code."
    ]
    assert AuditEntry.objects.filter(action="login_failed", actor=manager).count() == failed


def test_a_lockout_others_caused_does_not_sign_out_a_manager_mistyping_the_enrolment_code(users, settings):
    """A lockout blocks new sign-ins only (docs/security.md): anyone may type wrong passwords for a user name,
    and that must not throw the real user out. The manager, signed in, typed their enrolment code wrong once
    while someone else's failures had locked the account: the page ended the session at the lockout page, and
    the manager could not sign in again for the cool-off. As on the password page, the session ends only once
    its own wrong codes reach the limit."""
    manager = users["manager"]
    browser = _signed_in(manager)
    attacker = Client(HTTP_ACCEPT_LANGUAGE="en")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attacker.post("/accounts/login/", {"username": "manager", "password": "wrong-password-123"})
    typo = browser.post(ENROL, {"enrolment_code": "ABCD-EFGH-JKLM"})
    assert typo.status_code == 200 and "This enrolment code is not correct." in typo.content.decode()
    assert browser.get("/").status_code == 200  # still signed in
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):  # its own guesses: the session ends at the limit
        last = browser.post(ENROL, {"enrolment_code": "ABCD-EFGH-JKLM"})
    assert last.status_code == 403 and browser.get("/").status_code == 302
    failed = AuditEntry.objects.filter(action="login_failed", actor_name="manager")
    assert failed.count() == 2 * settings.AXES_FAILURE_LIMIT  # every wrong code still counts and is audited
