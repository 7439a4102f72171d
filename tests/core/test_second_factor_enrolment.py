"""Second-factor enrolment codes: issued by administrators (or the bootstrap command), one-time,
expiring, stored only as a hash, and required before an authenticator app can be set up."""

from __future__ import annotations

import datetime
import re

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone, translation
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from pharmacrm import cli
from pharmacrm.core import services
from pharmacrm.core.models import ApiToken, AuditEntry, SecondFactorEnrolment
from tests.conftest import PASSWORD

CODE = re.compile(r"\b[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}\b")


def test_codes_are_twelve_unambiguous_characters_in_three_groups():
    codes = {SecondFactorEnrolment.new_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert CODE.fullmatch(code), code
        assert not set(code) & set("01OI")


def test_the_comparison_ignores_case_spaces_and_dashes():
    h = SecondFactorEnrolment.hash_code("ABCD-EFGH-JKLM")
    for typed in ("abcd-efgh-jklm", "ABCD EFGH JKLM", " abcdefghjklm ", "ＡＢＣＤ－ＥＦＧＨ－ＪＫＬＭ", "abcd—efgh jklm"):
        assert SecondFactorEnrolment.hash_code(typed) == h, typed
    assert SecondFactorEnrolment.hash_code("ABCD-EFGH-JKLN") != h
    assert len(h) == 64 and h == SecondFactorEnrolment.hash_code("ABCDEFGHJKLM")


def test_an_admin_issues_a_code_that_is_stored_only_as_its_hash(users):
    pv = users["pv"]
    enrolment, code = services.issue_second_factor_enrolment(users["admin"], pv)
    assert CODE.fullmatch(code)
    stored = SecondFactorEnrolment.objects.get(pk=enrolment.pk)
    assert stored.code_hash == SecondFactorEnrolment.hash_code(code)
    row = SecondFactorEnrolment.objects.filter(pk=enrolment.pk).values().get()
    assert not any(code.replace("-", "") in str(v).upper() for v in row.values())
    assert stored.issued_by == users["admin"] and stored.used_at is None
    expected = stored.created_at + datetime.timedelta(hours=72)
    assert stored.expires_at == expected


def test_the_lifetime_comes_from_the_settings(users, settings):
    settings.OTP_ENROLMENT_HOURS = 2
    enrolment, code = services.issue_second_factor_enrolment(users["admin"], users["pv"])
    assert enrolment.expires_at - enrolment.created_at == datetime.timedelta(hours=2)


@pytest.mark.parametrize("role", ["manager", "auditor", "pv", "rep"])
def test_only_user_managers_may_issue_codes(users, role):
    with pytest.raises(PermissionDenied):
        services.issue_second_factor_enrolment(users[role], users["pv"])
    assert not SecondFactorEnrolment.objects.exists()


def test_no_actor_is_refused_unless_the_command_names_itself(users):
    with pytest.raises(PermissionDenied):
        services.issue_second_factor_enrolment(None, users["pv"])
    enrolment, _code = services.issue_second_factor_enrolment(None, users["pv"], system_actor="cli:ops")
    assert enrolment.issued_by is None
    entry = AuditEntry.objects.filter(action="update", object_id=str(users["pv"].pk)).get()
    assert entry.actor is None and entry.actor_name == "cli:ops"


def test_a_new_code_resets_every_device_voids_old_codes_and_revokes_second_factor_tokens(users):
    admin, pv = users["admin"], users["pv"]
    TOTPDevice.objects.create(user=pv, name="phone", confirmed=True)
    TOTPDevice.objects.create(user=pv, name="default", confirmed=False)
    ApiToken.issue(pv, datetime.timedelta(hours=1), second_factor=True)
    kept = ApiToken.issue(users["agent"], datetime.timedelta(hours=1), second_factor=False)[0]
    first, first_code = services.issue_second_factor_enrolment(admin, pv)
    assert not TOTPDevice.objects.filter(user=pv).exists()
    assert not ApiToken.objects.filter(user=pv).exists() and ApiToken.objects.filter(pk=kept.pk).exists()
    second, second_code = services.issue_second_factor_enrolment(admin, pv)
    first.refresh_from_db()
    assert first.used_at is not None and second.used_at is None
    assert services.check_enrolment_code(pv, first_code) == (None, "used")
    assert services.check_enrolment_code(pv, second_code) == (second, "")
    entries = list(AuditEntry.objects.filter(action="update", object_id=str(pv.pk)).order_by("seq"))
    assert [e.changes for e in entries] == [
        {"second_factor": ["totp", "enrolment_code"]},
        {"second_factor": ["", "enrolment_code"]},
    ]
    assert entries[0].extra["devices_removed"] == 2 and entries[0].extra["tokens_revoked"] == 1
    assert entries[1].extra["codes_voided"] == 1
    assert all(e.actor == admin for e in entries)


def test_expired_and_foreign_codes_are_not_usable(users):
    enrolment, code = services.issue_second_factor_enrolment(users["admin"], users["pv"])
    assert services.check_enrolment_code(users["auditor"], code) == (None, "wrong")
    assert services.check_enrolment_code(users["pv"], "") == (None, "wrong")
    SecondFactorEnrolment.objects.filter(pk=enrolment.pk).update(
        expires_at=timezone.now() - datetime.timedelta(minutes=1)
    )
    assert services.check_enrolment_code(users["pv"], code) == (None, "expired")
    assert services.usable_enrolment(users["pv"], enrolment.pk) is None


# --- the command ---------------------------------------------------------------------------------


def _code_from(output: str) -> str:
    found = CODE.findall(output)
    assert len(found) == 1, output
    return found[0]


def test_the_command_prints_a_code_that_sets_up_the_authenticator(users, capsys):
    admin = users["admin"]
    with translation.override("en"):
        # call_command, not cli.main: run_from_argv closes the connection, and with it the test's transaction
        call_command("second_factor_code", "admin")
    out = capsys.readouterr().out
    code = _code_from(out)
    assert "Enrolment code for admin (valid until " in out
    enrolment = SecondFactorEnrolment.objects.get(user=admin)
    assert timezone.localtime(enrolment.expires_at).isoformat(sep=" ", timespec="minutes") in out
    entry = AuditEntry.objects.filter(action="update", object_id=str(admin.pk)).get()
    assert entry.actor_name.startswith("cli:") and code.replace("-", "") not in str(entry.extra).upper()

    client = Client()
    client.post("/accounts/login/", {"username": "admin", "password": PASSWORD})
    response = client.post("/accounts/otp/enrol/", {"enrolment_code": code})
    assert response.status_code == 302
    device = TOTPDevice.objects.get(user=admin, confirmed=False)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    response = client.post("/accounts/otp/enrol/", {"code": f"{totp.token():06d}", "next": "/accounts/audit/"})
    assert response.status_code == 302 and response["Location"] == "/accounts/audit/"
    assert client.get("/accounts/audit/").status_code == 200
    enrolment.refresh_from_db()
    assert enrolment.used_at is not None and TOTPDevice.objects.get(user=admin).confirmed


def test_the_command_speaks_the_default_language_and_refuses_an_unknown_user(users, capsys):
    call_command("second_factor_code", "pv")
    out = capsys.readouterr().out
    _code_from(out)
    assert "绑定码" in out
    with translation.override("en"), pytest.raises(CommandError, match="There is no user named nobody"):
        call_command("second_factor_code", "nobody")


def test_the_command_is_listed_in_the_help_and_reached_by_its_hyphenated_name(capsys):
    assert "second-factor-code" in cli.usage()
    cli.main(["help", "second-factor-code"])
    out = capsys.readouterr().out
    assert "second_factor_code" in out and "username" in out
