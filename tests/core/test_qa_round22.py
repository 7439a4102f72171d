"""Review round 22 (core): sign-in, users and roles, the audit trail."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import PASSWORD


def _wrong_passwords(username: str, times: int, browser: str) -> None:
    client = Client(HTTP_USER_AGENT=browser)
    for _n in range(times):
        client.post("/accounts/login/", {"username": username, "password": "wrong-password"})


def test_an_account_locked_by_wrong_passwords_from_two_browsers_shows_locked_and_can_be_unlocked(
    client_for, users, settings
):
    """Axes keeps the failures of each browser apart and locks on their sum: three typos on the office PC and two
    on the phone locked the agent out, but the Users page showed them active, with no Unlock button."""
    _wrong_passwords("agent", 3, "Mozilla/5.0 (Windows NT 10.0) Chrome/120")
    _wrong_passwords("agent", settings.AXES_FAILURE_LIMIT - 3, "Mozilla/5.0 (iPhone) MicroMessenger/8.0")
    assert Client().post("/accounts/login/", {"username": "agent", "password": PASSWORD}).status_code == 403
    admin = client_for("admin")
    listing = admin.get(reverse("users"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Locked out" in listing.split('data-username="agent"')[1].split("</tr>")[0]
    page = admin.get(reverse("users-edit", args=[users["agent"].pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert reverse("users-unlock", args=[users["agent"].pk]) in page
    assert admin.post(reverse("users-unlock", args=[users["agent"].pk])).status_code == 302
    assert Client().post("/accounts/login/", {"username": "agent", "password": PASSWORD}).status_code == 302


def test_the_audit_chain_stays_intact_for_clients_seen_through_ipv6(users, settings):
    """A proxy listening on IPv6 writes an IPv4 client as ::ffff:10.1.2.3: the entry was hashed with Python's
    spelling (::ffff:a01:203), the database kept Django's, and `audit verify` reported every such sign-in as
    edited. The address reads as the database keeps it, and the chain verifies."""
    from pharmacrm.core import audit
    from pharmacrm.core.models import AuditEntry

    settings.SERVICEDESK_TRUST_X_FORWARDED_FOR = True
    Client().post("/accounts/login/", {"username": "agent", "password": PASSWORD},
                  REMOTE_ADDR="::1", HTTP_X_FORWARDED_FOR="::ffff:10.1.2.3")  # fmt: skip
    settings.SERVICEDESK_TRUST_X_FORWARDED_FOR = False
    Client().post("/accounts/login/", {"username": "rep", "password": PASSWORD}, REMOTE_ADDR="2001:DB8:0:0::7")
    assert list(AuditEntry.objects.filter(action="login").order_by("seq").values_list("ip", flat=True)) == [
        "::ffff:10.1.2.3", "2001:db8::7",
    ]
    result = audit.verify()
    assert result.ok, result.problems


def _current_code(device) -> str:
    from django_otp.oath import TOTP

    return f"{TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token():06d}"


def test_last_sign_in_is_the_last_complete_one_not_a_password_alone(users, client_for):
    """Someone who has the PV officer's password but not their phone: the Users page read 'Last sign-in' at that
    moment, as if the officer had signed in. It is set when the one-time code was given (and at the sign-in of a
    role without one, and when an API token is issued)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from pharmacrm.core.models import User

    device = TOTPDevice.objects.create(user=users["pv"], name="default", confirmed=True)
    pv = Client()
    assert pv.post("/accounts/login/", {"username": "pv", "password": PASSWORD}).status_code == 302
    assert User.objects.get(username="pv").last_login is None
    admin = client_for("admin")
    page = admin.get(reverse("users-edit", args=[users["pv"].pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "<dt>Last sign-in</dt><dd>—</dd>" in page
    assert pv.post("/accounts/otp/", {"code": _current_code(device)}).status_code == 302
    assert User.objects.get(username="pv").last_login is not None
    assert Client().post("/accounts/login/", {"username": "agent", "password": PASSWORD}).status_code == 302
    assert User.objects.get(username="agent").last_login is not None


def test_the_first_administrator_made_by_createsuperuser_shows_as_an_administrator(client_for, users):
    """`pharmacrm createsuperuser` makes the first administrator: a superuser, in no role group. The Users page
    listed that account with no role ('—'), the Administrator filter left it out, and the API answered roles []."""
    import datetime
    import re

    from rest_framework.test import APIClient

    from pharmacrm.core.models import ApiToken, User

    boss = User.objects.create_superuser("boss", "boss@example.cn", PASSWORD)
    admin = client_for("admin")
    listing = admin.get(reverse("users"), {"role": "admin"}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert re.findall(r'data-username="([^"]+)"', listing) == ["admin", "boss"]
    assert "Administrator" in listing.split('data-username="boss"')[1].split("</tr>")[0]
    api = APIClient()
    _token, key = ApiToken.issue(users["admin"], datetime.timedelta(hours=1), second_factor=True)
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    body = api.get("/api/v1/users/", {"role": "admin"}).json()
    assert [(u["username"], u["roles"]) for u in body["results"]] == [("admin", ["admin"]), ("boss", ["admin"])]
    assert api.get(f"/api/v1/users/{boss.pk}/").json()["roles"] == ["admin"]


def test_the_enrolment_code_command_finds_the_user_as_the_sign_in_page_does(users, capsys):
    """The sign-in page takes `PV` or full-width `ｐｖ` for the account `pv`; the server's command answered 'There is
    no user named PV.' to the operator who typed it so."""
    from django.core.management import call_command

    from pharmacrm.core.models import SecondFactorEnrolment

    call_command("second_factor_code", "PV")
    call_command("second_factor_code", "ｐｖ")
    assert SecondFactorEnrolment.objects.filter(user=users["pv"]).count() == 2


def test_the_page_asked_for_before_the_one_time_code_comes_back_with_its_whole_query(users):
    """A PV officer past the password opens a filtered list (a link from an e-mail, another tab): the way to the
    one-time code cut the address at its first '&', so after the code they came back to the list without its
    other filters and page."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=users["pv"], name="default", confirmed=True)
    pv = Client()
    pv.post("/accounts/login/", {"username": "pv", "password": PASSWORD})
    asked = "/safety/?status=open&page=2"
    to_code = pv.get(asked)
    assert to_code.status_code == 302
    done = pv.post(to_code["Location"], {"code": _current_code(device)})
    assert done.status_code == 302 and done["Location"] == asked


def test_a_code_sent_during_the_wait_after_a_wrong_one_is_no_failed_sign_in_on_the_api(users, settings):
    """django-otp makes a client wait after a wrong code and does not check a code sent meanwhile. The token
    endpoint counted such a code — the right one, a second too early — as a failed sign-in towards the lockout;
    the web page never did."""
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from rest_framework.test import APIClient

    from pharmacrm.core.models import AuditEntry

    settings.OTP_TOTP_THROTTLE_FACTOR = 600  # the wait outlasts the test, whatever the machine's speed
    device = TOTPDevice.objects.create(user=users["pv"], name="default", confirmed=True)
    device.throttle_increment()
    api = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    answer = api.post("/api/v1/auth/token/", {"username": "pv", "password": PASSWORD, "otp": _current_code(device)})
    assert answer.status_code == 400 and answer.json()["otp"][0].startswith("Too many wrong codes: wait")
    assert not AuditEntry.objects.filter(action="login_failed", actor_name="pv").exists()
    wrong = f"{(int(_current_code(device)) + 1) % 1000000:06d}"
    device.throttle_reset()
    api.post("/api/v1/auth/token/", {"username": "pv", "password": PASSWORD, "otp": wrong})
    assert AuditEntry.objects.filter(action="login_failed", actor_name="pv").count() == 1  # a wrong code still is


@pytest.mark.django_db(transaction=True)
def test_backup_keep_zero_is_refused_before_a_backup_is_made(tmp_path, settings):
    """`pharmacrm backup --keep 0` made the whole backup, then answered 'At least one backup must be kept.' — the
    operator could not tell whether a backup had been written (it had, and was audited)."""
    from django.core.management import CommandError, call_command

    from pharmacrm.core.models import AuditEntry

    settings.MEDIA_ROOT = tmp_path / "files"
    out = tmp_path / "backups"
    with pytest.raises(CommandError, match="至少须保留一份备份"):
        call_command("backup", "--out", str(out), "--keep", "0")
    assert not out.exists() or list(out.iterdir()) == []
    assert not AuditEntry.objects.filter(action="backup").exists()


def test_the_audit_page_names_backups_and_key_rotations_not_their_codes(client_for, users):
    """Entries about a backup, a restore or a key rotation showed the code 'core.backup' / 'core.keyring' as the
    kind of record, in English on the Chinese pages too; key rotations can be picked in the filter as well."""
    from pharmacrm.core import audit
    from pharmacrm.core.models import AuditEntry

    audit.record(AuditEntry.Action.BACKUP, ("core.backup", "", "pharmacrm-20261202-023000.sqlite3.gz"),
                 actor_name="scheduler")  # fmt: skip
    audit.record(AuditEntry.Action.ROTATE_KEYS, ("core.keyring", "", "k2"), actor_name="cli:root")
    auditor = client_for("auditor")
    page = auditor.get(reverse("audit"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    rows = page.split("<tbody>")[1]
    assert "core.backup" not in rows and "core.keyring" not in rows
    assert ">Backup</span>" in rows and ">Encryption key ring</span>" in rows
    chosen = auditor.get(reverse("audit"), {"object_type": "core.keyring"}, HTTP_ACCEPT_LANGUAGE="en")
    assert chosen.status_code == 200 and "k2" in chosen.content.decode().split("<tbody>")[1]
    assert "pharmacrm-20261202" not in chosen.content.decode().split("<tbody>")[1]


def test_an_enrolment_code_for_a_deactivated_account_says_it_cannot_be_used_yet(client_for, users):
    """The server's command warns that a deactivated account cannot sign in with its new code; the Users page
    handed the code over with 'at the next sign-in the user enters it', and the user could not sign in."""
    from pharmacrm.core import services

    services.deactivate_user(users["admin"], users["pv"])
    page = client_for("admin").post(reverse("users-second-factor", args=[users["pv"].pk]), HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert "this account is deactivated and cannot sign in until it is reactivated" in page.content.decode()
    active = client_for("admin").post(reverse("users-second-factor", args=[users["auditor"].pk]))
    assert 'id="enrolment-inactive"' not in active.content.decode()
