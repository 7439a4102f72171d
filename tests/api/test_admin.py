"""The audit trail API (read-only), user administration, roles, and the permission document."""

from __future__ import annotations

from pathlib import Path

import pytest

from pharmacrm.core import audit
from pharmacrm.core.models import ApiToken, AuditEntry, Team, User
from pharmacrm.core.permissions_doc import render_permissions_markdown
from pharmacrm.core.roles import MATRIX, Cap, Role

from .conftest import token_for

A = AuditEntry.Action
DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"
STRONG = "Lotus-Harbour-7319"


# --- audit trail -------------------------------------------------------------------------------


def test_the_auditor_reads_and_filters_the_trail(api_for, xiehe):
    client = api_for("auditor")
    body = client.get("/api/v1/audit/", {"action": "create", "object_type": "customers.institution"}).json()
    assert body["count"] == 2
    assert [e["object_repr"] for e in body["results"]] == ["心内科", "北京协和医院"]  # newest first
    oldest_first = client.get("/api/v1/audit/", {"ordering": "seq"}).json()["results"]
    assert oldest_first[0]["seq"] < oldest_first[-1]["seq"]
    entry = oldest_first[0]
    assert client.get(f"/api/v1/audit/{entry['seq']}/").json()["hash"] == entry["hash"]
    by_object = client.get(
        "/api/v1/audit/", {"object_id": str(xiehe.pk), "object_type": "customers.institution"}
    )
    assert by_object.json()["count"] == 1
    assert client.get("/api/v1/audit/", {"from": "2999-01-01T00:00:00Z"}).json()["count"] == 0


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_nobody_can_change_the_trail(method, api_for, xiehe):
    seq = AuditEntry.objects.order_by("seq").first().seq
    for role, expected in (("auditor", 405), ("admin", 405), ("agent", 403)):
        client = api_for(role)
        url = "/api/v1/audit/" if method == "post" else f"/api/v1/audit/{seq}/"
        assert getattr(client, method)(url, {"action": "login"}, format="json").status_code == expected, role
    assert audit.verify().ok


def test_the_auditor_changes_nothing_anywhere(api_for, xiehe, zhang):
    client = api_for("auditor")
    assert client.get(f"/api/v1/people/{zhang.pk}/").status_code == 200
    refusals = [
        client.post("/api/v1/institutions/", {"name": "x", "kind": "clinic"}, format="json"),
        client.patch(f"/api/v1/institutions/{xiehe.pk}/", {"beds": 1, "version": 1}, format="json"),
        client.delete(f"/api/v1/people/{zhang.pk}/"),
        client.post(
            "/api/v1/consents/",
            {"person": zhang.pk, "purpose": "service", "channel": "sms", "status": "given"},
        ),
        client.post("/api/v1/users/", {"username": "x", "password": STRONG}, format="json"),
    ]
    assert [r.status_code for r in refusals] == [403] * 5
    denied = AuditEntry.objects.filter(action=A.ACCESS_DENIED, actor__username="auditor")
    assert denied.count() == 5


# --- users -------------------------------------------------------------------------------------


def test_an_admin_creates_a_user_with_roles_and_teams(api_for, users):
    team = Team.objects.create(name="华东团队")
    response = api_for("admin").post(
        "/api/v1/users/",
        {"username": "liming", "display_name": "李明", "password": STRONG, "roles": ["rep"], "teams": [team.pk],
         "territory": ["310000"]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["roles"] == ["rep"] and body["teams"] == [team.pk] and body["territory"] == ["310000"]
    assert "password" not in body
    user = User.objects.get(username="liming")
    assert user.check_password(STRONG) and user.roles == {Role.REP}
    entry = AuditEntry.objects.get(action=A.CREATE, object_type="core.user", object_id=str(user.pk))
    assert entry.actor == users["admin"] and entry.changes["roles"] == [None, ["rep"]]
    assert STRONG not in str(entry.changes)


def test_weak_passwords_are_refused_with_the_validators_messages(api_for, users):
    response = api_for("admin", lang="en").post(
        "/api/v1/users/", {"username": "wangfang", "password": "12345"}, format="json"
    )
    assert response.status_code == 400
    messages = response.json()["password"]
    assert "This password is too short. It must contain at least 10 characters." in messages
    assert "This password is entirely numeric." in messages
    chinese = api_for("admin", lang="zh-hans").post(
        "/api/v1/users/", {"username": "wangfang", "password": "12345"}, format="json"
    )
    assert "密码只包含数字。" in chinese.json()["password"]
    assert not User.objects.filter(username="wangfang").exists()


def test_changing_roles_and_deactivating_are_audited_and_revoke_tokens(api_for, users):
    client = api_for("admin")
    analyst = users["analyst"]
    token_for(analyst)
    changed = client.patch(f"/api/v1/users/{analyst.pk}/", {"roles": ["analyst", "kam"], "version": 1}, format="json")
    assert changed.status_code == 200 and changed.json()["roles"] == ["analyst", "kam"]
    update = AuditEntry.objects.filter(action=A.UPDATE, object_type="core.user").latest("seq")
    assert update.changes["roles"] == [["analyst"], ["analyst", "kam"]]

    assert client.delete(f"/api/v1/users/{analyst.pk}/").status_code == 204
    analyst.refresh_from_db()
    assert analyst.is_active is False and not ApiToken.objects.filter(user=analyst).exists()
    assert AuditEntry.objects.filter(action=A.UPDATE, object_id=str(analyst.pk)).latest("seq").changes == {
        "is_active": [True, False]
    }


def test_deactivating_a_user_changed_since_the_if_match_is_refused(api_for, users):
    """DELETE ignored If-Match: a user another administrator had just changed (given a role back, say) was deactivated
    unseen. If-Match, when sent, is honoured now: stale → 409, the user stays active."""
    client = api_for("admin")
    analyst = users["analyst"]
    loaded = client.get(f"/api/v1/users/{analyst.pk}/")
    assert client.patch(f"/api/v1/users/{analyst.pk}/", {"roles": ["analyst", "kam"]}, format="json",
                        HTTP_IF_MATCH=loaded["ETag"]).status_code == 200  # a colleague's change  # fmt: skip

    stale = client.delete(f"/api/v1/users/{analyst.pk}/", HTTP_IF_MATCH=loaded["ETag"])

    assert stale.status_code == 409, stale.content
    assert User.objects.get(pk=analyst.pk).is_active
    current = client.get(f"/api/v1/users/{analyst.pk}/")["ETag"]
    assert client.delete(f"/api/v1/users/{analyst.pk}/", HTTP_IF_MATCH=current).status_code == 204
    assert not User.objects.get(pk=analyst.pk).is_active


def test_a_password_change_is_audited_without_the_password(api_for, users):
    response = api_for("admin").patch(
        f"/api/v1/users/{users['kam'].pk}/", {"password": STRONG, "version": 1}, format="json"
    )
    assert response.status_code == 200
    entry = AuditEntry.objects.filter(action=A.UPDATE, object_id=str(users["kam"].pk)).latest("seq")
    assert entry.extra["password_changed"] is True and STRONG not in str(entry.extra) + str(entry.changes)


def test_an_admin_cannot_lock_themself_out(api_for, users):
    client = api_for("admin")
    me = users["admin"].pk
    assert client.delete(f"/api/v1/users/{me}/").status_code == 400
    assert client.patch(f"/api/v1/users/{me}/", {"roles": ["agent"]}, format="json").status_code == 400
    assert User.objects.get(pk=me).is_active


def test_duplicate_usernames_are_a_field_error(api_for, users):
    response = api_for("admin").post(
        "/api/v1/users/", {"username": "agent", "password": STRONG}, format="json"
    )
    assert response.status_code == 400 and "username" in response.json()


def test_users_filter_by_role(api_for, users):
    body = api_for("admin").get("/api/v1/users/", {"role": "rep"}).json()
    assert [u["username"] for u in body["results"]] == ["rep"]


# --- roles and the permission document ---------------------------------------------------------


def test_anyone_signed_in_lists_the_roles_with_their_capabilities(api_for):
    roles = {r["name"]: r for r in api_for("rep").get("/api/v1/roles/").json()}
    assert set(roles) == {r.value for r in Role}
    assert Cap.ALL_CUSTOMERS.value not in roles["rep"]["capabilities"]
    assert roles["auditor"]["read_only"] and roles["auditor"]["second_factor"]
    assert Cap.MANAGE_CONSENTS.value not in roles["auditor"]["capabilities"]
    assert roles["admin"]["capabilities"] == [c.value for c in Cap if Role.ADMIN in MATRIX[c]]
    assert api_for("rep").get("/api/v1/roles/kam/").json()["name"] == "kam"
    assert api_for("rep").get("/api/v1/roles/nobody/").status_code == 404


def test_docs_permissions_md_is_generated_from_the_matrix():
    assert DOC.read_text(encoding="utf-8") == render_permissions_markdown(), (
        "docs/permissions.md is out of date: python -m pharmacrm.core.permissions_doc > docs/permissions.md"
    )


def test_time_filters_accept_any_iso_offset_and_refuse_unrepresentable_times(api_for, xiehe):
    # ISO 8601 allows offsets PostgreSQL does not (beyond ±15:59): normalised to UTC first
    client = api_for("auditor")
    assert client.get("/api/v1/audit/", {"from": "0413-05-03T08:44:18-18:00"}).status_code == 200
    assert (
        client.get("/api/v1/institutions/", {"updated_since": "2026-01-01T00:00:00-17:30"}).status_code == 200
    )
    response = client.get("/api/v1/audit/", {"to": "0001-01-01T00:00:00+14:00"})
    assert response.status_code == 400 and "to" in response.json()
