"""QA round 18, security, accounts and audit: password refusals in the reader's Chinese and no password made of
the user name; the API's CSRF refusal in the request's language; `audit verify` and `restore` problem lines in
the commands' language; a rep's history tab naming no customer outside their scope; a deleted person's consent
records kept as evidence in the audit trail."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import translation
from rest_framework.test import APIClient

from pharmacrm.core import audit, keys
from pharmacrm.core.models import AuditEntry, User
from pharmacrm.customers import services
from pharmacrm.customers.models import Consent, Person
from tests.api.conftest import token_for

A = AuditEntry.Action
CJK = re.compile(r"[\u4e00-\u9fff]")
STRONG = "Lotus-Harbour-7319"


def refusals(password: str, user) -> list[str]:
    try:
        password_validation.validate_password(password, user)
    except ValidationError as e:
        return list(e.messages)
    return []


# --- 1. password validators' messages in Chinese ---------------------------------------------------


@pytest.mark.parametrize("language", ["zh-hans", "zh-hant"])
def test_every_password_refusal_and_rule_reads_in_chinese(language):
    """"This password is too short. It must contain at least 10 characters." stayed English on a zh-Hans page:
    Django 5.2 changed that message and its Simplified Chinese catalogue did not follow. Every refusal of every
    configured validator, and every rule shown under a password field, is Chinese in both scripts."""
    user = User(username="agent", email="agent@example.com")
    weak = ["abc", "1234567890123", "agentagent"]
    with translation.override("en"):
        english = {m for p in weak for m in refusals(p, user)} | set(password_validation.password_validators_help_texts())
    with translation.override(language):
        chinese = {m for p in weak for m in refusals(p, user)} | set(password_validation.password_validators_help_texts())
    assert len(english) == len(chinese) == 8
    assert not chinese & english
    assert all(CJK.search(m) for m in chinese), chinese
    assert any("10" in m for m in chinese)  # the minimum length is said


# --- 2. no password made of the user name ------------------------------------------------------------


@pytest.mark.parametrize("password", ["agentagent", "agent2026agent2026", "Agent!2026-Agent", "tnega-2026-Lotus"])
def test_a_password_made_of_the_user_name_is_refused(password, users):
    user = users["agent"]
    with translation.override("en"):
        assert refusals(password, user) == ["The password is too similar to the username."]


def test_a_password_made_of_the_e_mail_name_is_refused_and_a_good_one_passes(users):
    user = users["agent"]
    user.email = "wang.fang@example.com"
    with translation.override("en"):
        assert refusals("wangfang-2026-Lotus", user) == ["The password is too similar to the email address."]
        assert refusals(STRONG, user) == []


def test_the_users_api_refuses_the_user_name_twice_as_a_password(users):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(users['admin'])}", HTTP_ACCEPT_LANGUAGE="en")
    agent = users["agent"]
    refused = client.patch(f"/api/v1/users/{agent.pk}/", {"password": "agentagent", "version": 1}, format="json")
    assert refused.status_code == 400, refused.content
    assert refused.json()["password"] == ["The password is too similar to the username."]
    agent.refresh_from_db()
    assert not agent.check_password("agentagent")
    created = client.post("/api/v1/users/", {"username": "liming", "password": "liming2026liming2026"}, format="json")
    assert created.status_code == 400 and "password" in created.json()
    assert not User.objects.filter(username="liming").exists()


# --- 3. the API's CSRF refusal -----------------------------------------------------------------------


@pytest.fixture
def browser_session(users):
    """A signed-in browser session that enforces CSRF as a real browser's requests are checked."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["agent"])
    return client


def test_a_session_call_without_its_csrf_token_is_refused_in_the_request_language(browser_session, xiehe):
    person = Person.objects.get(name="张伟")
    body = {"person": person.pk, "purpose": "service", "channel": "sms", "status": "given"}
    english = browser_session.post("/api/v1/consents/", body, content_type="application/json",
                                   HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert english.status_code == 403
    detail = english.json()["detail"]
    assert "CSRF Failed" not in detail
    assert "X-CSRFToken" in detail and "API token" in detail
    chinese = browser_session.post("/api/v1/consents/", body, content_type="application/json",
                                   HTTP_ACCEPT_LANGUAGE="zh-hans")  # fmt: skip
    assert chinese.status_code == 403
    assert "CSRF Failed" not in chinese.json()["detail"]
    assert not Consent.objects.filter(person=person).exists()


# --- 4. problem lines of `audit verify` and `restore` ----------------------------------------------


@pytest.fixture
def edited_trail(transactional_db):
    """Five entries, the third edited behind the triggers' back (as an attacker with database access would)."""
    for n in range(1, 6):
        audit.record(A.UPDATE, ("customers.institution", str(n), f"第{n}人民医院"), actor_name="tester")
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("ALTER TABLE core_auditentry DISABLE TRIGGER USER")
            restore = "ALTER TABLE core_auditentry ENABLE TRIGGER USER"
        else:
            cur.execute("SELECT sql FROM sqlite_master WHERE name = 'audit_no_update'")
            restore = cur.fetchone()[0]
            cur.execute("DROP TRIGGER audit_no_update")
        cur.execute("UPDATE core_auditentry SET extra = %s WHERE seq = 3", [json.dumps({"rows": 999})])
    yield
    with connection.cursor() as cur:
        cur.execute(restore)


def test_audit_verify_lists_its_problems_in_the_commands_language(edited_trail, capsys):
    """The summary line was Chinese and the lines naming each edited entry English, under one Chinese heading."""
    with pytest.raises(CommandError):
        call_command("audit", "verify")  # the operator's language: settings.LANGUAGE_CODE (zh-hans)
    err = capsys.readouterr().err
    assert "3" in err
    assert "content does not match" not in err
    problem = [line for line in err.splitlines() if "3" in line][0]
    assert CJK.search(problem), err
    with translation.override("en"), pytest.raises(CommandError):
        call_command("audit", "verify")
    assert "entry 3: content does not match its hash (edited)" in capsys.readouterr().err


def test_the_key_problems_restore_prints_are_in_the_commands_language(xiehe):
    """`pharmacrm restore` prints keys.problems() line by line: a column holding plain text, a missing key…"""
    with connection.cursor() as cur:
        cur.execute("UPDATE customers_person SET mobile = %s", ["13800138000"])
    with translation.override("en"):
        assert keys.problems() == ["customers.person.mobile: 1 value is stored as plain text"]
    (line,) = keys.problems()  # the default language, as the command runs
    assert "plain text" not in line and CJK.search(line)
    assert "customers.person.mobile" in line


# --- 5. the history tab names no customer outside the reader's scope ----------------------------------


@pytest.fixture
def moved_from_shanghai(users, xiehe, ruijin):
    """李娜 worked at 瑞金医院 (Shanghai, outside the North team's Beijing) and moved to 北京协和医院."""
    admin = users["admin"]
    person = services.create_person(admin, {"name": "李娜", "institution": ruijin, "title": "主治医师"})
    return services.update_person(admin, person, {"institution": xiehe})


def test_a_reps_history_tab_does_not_name_the_institution_a_person_left(client_for, moved_from_shanghai):
    page = client_for("rep").get(f"/customers/people/{moved_from_shanghai.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    text = page.content.decode()
    assert "瑞金" not in text
    assert "another institution" in text
    assert "北京协和医院" in text  # the one they may see is named
    # the administrator, who sees everything, reads the name
    assert "瑞金医院" in client_for("admin").get(f"/customers/people/{moved_from_shanghai.pk}/").content.decode()


def test_a_merge_partner_outside_the_reps_scope_is_neither_named_nor_linked(client_for, users, xiehe, ruijin):
    admin = users["admin"]
    zhang = Person.objects.get(name="张伟")
    twin = services.create_person(admin, {"name": "张伟", "institution": ruijin, "title": "主任医师"})
    services.merge(admin, zhang, twin)
    text = client_for("rep").get(f"/customers/people/{zhang.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f"/customers/people/{twin.pk}/" not in text
    assert "瑞金" not in text
    assert twin.code in text  # the merge is still there, by the record's code
    admin_page = client_for("admin").get(f"/customers/people/{zhang.pk}/").content.decode()
    assert f"/customers/people/{twin.pk}/" in admin_page


# --- 6. a deleted person's consent records -----------------------------------------------------------


@pytest.fixture
def consenting_person(users, xiehe):
    person = Person.objects.get(name="张伟")
    manager = users["manager"]
    services.record_consent(manager, person, {"purpose": "marketing", "channel": "paper", "status": "given",
                                              "evidence": "纸质同意书 2026-017"})  # fmt: skip
    services.record_consent(manager, person, {"purpose": "marketing", "channel": "phone", "status": "withdrawn"})
    return person


def test_the_delete_page_says_how_many_consent_records_go_and_where_they_are_kept(client_for, consenting_person):
    page = client_for("admin").get(f"/customers/people/{consenting_person.pk}/delete/", HTTP_ACCEPT_LANGUAGE="en")
    text = " ".join(page.content.decode().split())
    assert "2 consent records will be deleted with this person" in text
    assert "kept in the audit trail" in text


def test_deleting_a_person_keeps_their_consent_records_in_the_audit_trail(client_for, consenting_person, users):
    ids = sorted(consenting_person.consents.values_list("id", flat=True))
    response = client_for("admin").post(f"/customers/people/{consenting_person.pk}/delete/",
                                       {"version": Person.objects.get(pk=consenting_person.pk).version})
    assert response.status_code == 302
    assert not Consent.objects.filter(pk__in=ids).exists()
    entry = AuditEntry.objects.get(action=A.DELETE, object_type="customers.person", object_id=str(consenting_person.pk))
    kept = entry.extra["consents"]
    assert sorted(c["id"] for c in kept) == ids
    assert [(c["purpose"], c["channel"], c["status"]) for c in kept] == [
        ("marketing", "paper", "given"), ("marketing", "phone", "withdrawn"),
    ]  # fmt: skip
    assert kept[0]["evidence"] == "纸质同意书 2026-017"
    assert kept[0]["recorded_by"] == users["manager"].pk and kept[0]["at"]
    assert audit.verify().ok
    # the auditor reads them on the audit page, labelled
    page = client_for("auditor").get(
        "/accounts/audit/", {"object_type": "customers.person", "object_id": consenting_person.pk}, HTTP_ACCEPT_LANGUAGE="en"
    )
    text = page.content.decode()
    assert "Marketing communication" in text and "Withdrawn" in text and "纸质同意书 2026-017" in text


def test_deleting_a_person_without_consents_records_no_consent_list(client_for, users, xiehe):
    person = services.create_person(users["admin"], {"name": "王芳", "institution": xiehe})
    client_for("admin").post(f"/customers/people/{person.pk}/delete/", {"version": person.version})
    entry = AuditEntry.objects.get(action=A.DELETE, object_type="customers.person", object_id=str(person.pk))
    assert "consents" not in entry.extra
