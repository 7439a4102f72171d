"""API errors in the caller's language and all at once, the auditor reading users, one rule for the reason to
reveal personal data on the web and in the API."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.services import issue_second_factor_enrolment

from .conftest import make_device

# --- localised errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/institutions/999999/", "/api/v1/consents/999999/", "/api/v1/people/999999/"])
def test_a_missing_object_answers_a_translated_not_found(path, api_for, xiehe):
    english = api_for("agent", lang="en").get(path)
    assert english.status_code == 404
    assert english.json() == {"detail": "Not found."}
    chinese = api_for("agent", lang="zh-hans").get(path)
    assert chinese.status_code == 404
    assert "matches the given query" not in chinese.json()["detail"]
    assert chinese.json()["detail"] == "未找到。"  # Django REST framework's own translation


def test_a_malformed_body_answers_a_translated_parse_error(api_for):
    for lang in ("en", "zh-hans"):
        response = api_for("kam", lang=lang).generic(
            "POST", "/api/v1/institutions/", '{"name": ', content_type="application/json"
        )
        assert response.status_code == 400
        assert "JSON parse error" not in response.json()["detail"]
    english = api_for("kam", lang="en").generic("POST", "/api/v1/institutions/", "{", content_type="application/json")
    assert english.json() == {"detail": "The request body is not valid JSON."}


def test_options_names_the_endpoint_and_its_fields_in_the_callers_language(api_for, users):
    english = api_for("admin", lang="en").options("/api/v1/users/").json()
    assert english["name"] == "Users"
    fields = english["actions"]["POST"]
    assert [fields[f]["label"] for f in ("roles", "teams", "territory", "password")] == [
        "Roles", "Teams", "Personal territory", "Password",
    ]  # fmt: skip
    chinese = api_for("admin", lang="zh-hans").options("/api/v1/users/").json()
    assert chinese["name"] == "用户"
    labels = {f: chinese["actions"]["POST"][f]["label"] for f in ("teams", "territory", "password")}
    assert labels == {"teams": "团队", "territory": "个人负责区域", "password": "密码"}
    one = api_for("admin", lang="en").options(f"/api/v1/users/{users['kam'].pk}/").json()
    assert one["name"] == "User"


# --- every field error in one answer ---------------------------------------------------------------------------


def test_an_institution_with_several_bad_fields_gets_every_field_error_at_once(api_for):
    response = api_for("kam").post(
        "/api/v1/institutions/", {"name": "", "credit_code": "123", "phone": "1"}, format="json"
    )
    assert response.status_code == 400
    errors = response.json()
    assert {"name", "credit_code", "phone", "kind"} <= set(errors), errors
    assert all(isinstance(m, str) and m for field in ("name", "credit_code", "phone") for m in errors[field])


def test_a_person_with_several_bad_fields_gets_every_field_error_at_once(api_for, xiehe):
    response = api_for("kam").post(
        "/api/v1/people/",
        {"name": "", "mobile": "123", "email": "not-an-address", "id_number": "1234", "institution": xiehe.pk},
        format="json",
    )
    assert response.status_code == 400
    assert {"name", "mobile", "email", "id_number"} <= set(response.json()), response.json()


def test_an_update_reports_field_errors_together_too(api_for, xiehe):
    response = api_for("kam").patch(
        f"/api/v1/institutions/{xiehe.pk}/",
        {"credit_code": "123", "phone": "1", "beds": -1, "version": xiehe.version},
        format="json",
    )
    assert response.status_code == 400
    assert {"credit_code", "phone", "beds"} <= set(response.json()), response.json()
    xiehe.refresh_from_db()
    assert xiehe.phone == "010-69156114"  # nothing written


# --- the auditor reads users and roles, never changes them, and sees no secret --------------------------------


def test_the_auditor_reads_users_and_roles(api_for, users):
    client = api_for("auditor")
    listed = client.get("/api/v1/users/", {"page_size": 200})
    assert listed.status_code == 200
    assert {u["username"] for u in listed.json()["results"]} >= set(users)
    one = client.get(f"/api/v1/users/{users['kam'].pk}/")
    assert one.status_code == 200 and one.json()["roles"] == ["kam"]
    assert client.get("/api/v1/roles/").status_code == 200
    assert client.get("/api/v1/roles/auditor/").json()["capabilities"].count("users.view") == 1
    options = client.options("/api/v1/users/")
    assert options.status_code == 200 and "actions" not in options.json()  # no form to create a user


def test_the_auditor_changes_no_user(api_for, users):
    client = api_for("auditor")
    kam = users["kam"]
    refusals = [
        client.post("/api/v1/users/", {"username": "x1", "password": "Lotus-Harbour-7319"}, format="json"),
        client.patch(f"/api/v1/users/{kam.pk}/", {"display_name": "改名"}, format="json"),
        client.put(f"/api/v1/users/{kam.pk}/", {"username": "kam"}, format="json"),
        client.delete(f"/api/v1/users/{kam.pk}/"),
        client.post(f"/api/v1/users/{kam.pk}/second-factor/"),
    ]
    assert [r.status_code for r in refusals] == [403] * 5
    kam.refresh_from_db()
    assert kam.display_name == "kam" and kam.is_active
    assert AuditEntry.objects.filter(action=AuditEntry.Action.ACCESS_DENIED, actor=users["auditor"]).count() == 5


def test_no_answer_about_users_carries_a_secret(api_for, users):
    admin = users["admin"]
    device = make_device(users["pv"])
    _enrolment, code = issue_second_factor_enrolment(admin, users["kam"])
    for role in ("auditor", "admin"):
        client = api_for(role)
        bodies = [
            client.get("/api/v1/users/", {"page_size": 200}).content.decode(),
            client.get(f"/api/v1/users/{users['pv'].pk}/").content.decode(),
            client.get(f"/api/v1/users/{users['kam'].pk}/").content.decode(),
        ]
        for body in bodies:
            data = json.loads(body)
            rows = data["results"] if "results" in data else [data]
            assert all("password" not in row for row in rows)
            assert users["pv"].password not in body and "md5$" not in body and "argon2" not in body
            assert device.key not in body and code not in body and code.replace("-", "") not in body


# --- one rule for the reason to reveal personal data ----------------------------------------------------------


@pytest.fixture
def zhang(xiehe):
    return xiehe.people.get(name="张伟")


@pytest.mark.parametrize("reason", ["x", "  x  ", "...", "12", "？！", "1.", "x" * 501])
def test_the_api_refuses_a_reason_that_says_nothing(reason, api_for, zhang):
    response = api_for("agent").get(f"/api/v1/people/{zhang.pk}/", {"reveal_reason": reason})
    assert response.status_code == 400
    assert list(response.json()) == ["reveal_reason"]
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.READ_PERSONAL).exists()


def test_the_api_reveals_with_a_short_real_reason_and_masks_without_one(api_for, zhang):
    client = api_for("agent")
    assert client.get(f"/api/v1/people/{zhang.pk}/").json()["contact"]["mobile"] == "138****8000"
    revealed = client.get(f"/api/v1/people/{zhang.pk}/", {"reveal_reason": " 回访 "}).json()["contact"]
    assert revealed["mobile"] == "138 0013 8000" and revealed["masked"] is False
    entry = AuditEntry.objects.get(action=AuditEntry.Action.READ_PERSONAL)
    assert entry.extra["reason"] == "回访"


def test_the_refusal_names_the_rule(api_for, zhang):
    response = api_for("agent", lang="en").get(f"/api/v1/people/{zhang.pk}/", {"reveal_reason": "x"})
    assert response.json() == {"reveal_reason": ["Give a reason of at least 2 characters, e.g. 回访."]}


def test_the_reveal_page_accepts_a_two_character_reason(client_for, zhang):
    client = client_for("agent")
    detail = client.get(reverse("customers:person", args=[zhang.pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'minlength="4"' not in detail  # the browser would refuse 回访 before sending it
    response = client.post(
        reverse("customers:person-reveal", args=[zhang.pk]), {"reason": "回访"}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "138 0013 8000" in html
    assert AuditEntry.objects.get(action=AuditEntry.Action.READ_PERSONAL).extra["reason"] == "回访"


@pytest.mark.parametrize("reason", ["x", "...", "12"])
def test_the_reveal_page_refuses_what_the_api_refuses_with_the_same_message(reason, client_for, zhang):
    response = client_for("agent").post(
        reverse("customers:person-reveal", args=[zhang.pk]), {"reason": reason}, HTTP_ACCEPT_LANGUAGE="en"
    )
    html = response.content.decode()
    assert "Give a reason of at least 2 characters, e.g. 回访." in html
    assert "138 0013 8000" not in html
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.READ_PERSONAL).exists()
