"""QA fixes for /api/v1/users/ (brief H1): optimistic locking as for customers, and a password reset that
revokes the user's API tokens."""

from __future__ import annotations

import pytest

from pharmacrm.core.models import ApiToken, AuditEntry, User

from .conftest import token_for

pytestmark = pytest.mark.django_db
STRONG = "Lotus-Harbour-7319"


def url(user) -> str:
    return f"/api/v1/users/{user.pk}/"


def test_a_user_is_read_with_its_version_and_etag(api_for, users):
    response = api_for("auditor").get(url(users["kam"]))
    assert response.status_code == 200
    assert response.json()["version"] == 1 and response["ETag"] == '"1"'
    listed = api_for("admin").get("/api/v1/users/", {"username": "kam"}).json()["results"]
    assert [u["version"] for u in listed] == [1]


def test_a_change_without_the_version_is_refused(api_for, users):
    kam = users["kam"]
    response = api_for("admin").patch(url(kam), {"display_name": "改名"}, format="json")
    assert response.status_code == 400
    assert response.json()["version"] == [
        "Send the version you loaded (the version field or an If-Match header), so that changes made by others "
        "in the meantime are not overwritten."
    ]
    assert User.objects.get(pk=kam.pk).display_name == "kam"


def test_a_stale_version_is_a_409_and_nothing_changes(api_for, users):
    kam = users["kam"]
    first, second = api_for("admin"), api_for("admin")
    added = first.patch(url(kam), {"roles": ["analyst", "kam"], "version": 1}, format="json")
    assert added.status_code == 200 and added.json()["version"] == 2 and added["ETag"] == '"2"'

    stale = second.patch(url(kam), {"email": "kam@new.example", "roles": ["kam"], "version": 1}, format="json")
    assert stale.status_code == 409
    body = stale.json()
    assert body["current_version"] == 2 and "Someone else changed this record" in body["detail"]
    fresh = User.objects.get(pk=kam.pk)
    assert {r.value for r in fresh.roles} == {"analyst", "kam"} and fresh.email == "" and fresh.version == 2

    # If-Match works as the version field does
    assert second.patch(url(kam), {"email": "x@example.com"}, format="json", HTTP_IF_MATCH='"1"').status_code == 409
    again = second.patch(url(kam), {"email": "kam@new.example"}, format="json", HTTP_IF_MATCH='"2"')
    assert again.status_code == 200 and again.json()["version"] == 3
    assert {r.value for r in User.objects.get(pk=kam.pk).roles} == {"analyst", "kam"}


def test_put_needs_the_version_too(api_for, users):
    kam = users["kam"]
    body = {"username": "kam", "display_name": "客户经理", "roles": ["kam"]}
    assert api_for("admin").put(url(kam), body, format="json").status_code == 400
    assert api_for("admin").put(url(kam), {**body, "version": 1}, format="json").status_code == 200
    assert User.objects.get(pk=kam.pk).display_name == "客户经理"


def test_creating_ignores_a_version_and_deactivating_needs_none(api_for, users):
    client = api_for("admin")
    created = client.post("/api/v1/users/", {"username": "newhire", "password": STRONG, "version": 7}, format="json")
    assert created.status_code == 201 and created.json()["version"] == 1
    assert client.delete(url(users["support"])).status_code == 204
    assert User.objects.get(pk=users["support"].pk).is_active is False


def test_a_password_reset_revokes_every_token_of_the_user(api_for, users, anon):
    kam = users["kam"]
    keys = [token_for(kam, second_factor=False), token_for(kam, second_factor=True)]
    for key in keys:
        anon.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        assert anon.get("/api/v1/roles/").status_code == 200
    response = api_for("admin").patch(url(kam), {"password": STRONG, "version": 1}, format="json")
    assert response.status_code == 200 and response.json()["version"] == 2
    for key in keys:
        anon.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        assert anon.get("/api/v1/roles/").status_code == 401
    assert not ApiToken.objects.filter(user=kam).exists()
    entry = AuditEntry.objects.filter(action="update", object_id=str(kam.pk)).latest("seq")
    assert entry.extra == {**entry.extra, "password_changed": True, "tokens_revoked": 2}
    # the new password gets a new token
    issued = anon.post("/api/v1/auth/token/", {"username": "kam", "password": STRONG}, format="json")
    assert issued.status_code == 200


def test_the_schema_documents_the_version(anon):
    schema = anon.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "version" in schema.json()["components"]["schemas"]["User"]["properties"]


def test_a_username_in_full_width_letters_is_the_same_username(api_for, users):
    """A Chinese input method in full-width mode types ｋａｍ: sign-in reads it as kam, so an account of that name
    beside kam could never be told apart from it (and signed in instead of it). It is refused as taken; a new
    one is saved in ordinary letters."""
    admin = api_for("admin")
    taken = admin.post("/api/v1/users/", {"username": "ｋａｍ", "password": STRONG}, format="json")
    assert taken.status_code == 400
    assert taken.json()["username"] == ["A user with this username already exists."]
    made = admin.post("/api/v1/users/", {"username": "ｌｉｎａ", "password": STRONG}, format="json")
    assert made.status_code == 201 and made.json()["username"] == "lina"
    renamed = admin.patch(url(users["rep"]), {"username": "ＫＡＭ", "version": 1}, format="json")
    assert renamed.status_code == 400 and User.objects.get(pk=users["rep"].pk).username == "rep"
