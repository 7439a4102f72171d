"""Users and roles in the web UI: only administrators; create, edit, unlock and a new enrolment code, each
through the services (validated, audited)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from pharmacrm.core import services
from pharmacrm.core.models import AuditEntry, User
from pharmacrm.core.roles import Role
from tests.conftest import PASSWORD

NEW = {"username": "zhangwei", "display_name": "张伟", "email": "zhangwei@example.cn", "roles": ["kam", "expert"],
       "is_active": "on", "password": "Qx7-lantern-Harbor", "password2": "Qx7-lantern-Harbor"}  # fmt: skip


@pytest.mark.parametrize("role", [r.value for r in Role if r != Role.ADMIN])
def test_only_administrators_reach_the_user_pages(client_for, users, role):
    client = client_for(role)
    target = users["agent"].pk
    if role == "auditor":  # reads the list, with no way to change anything
        page = client.get(reverse("users")).content.decode()
        assert 'data-username="agent"' in page and reverse("users-new") not in page
        assert reverse("users-edit", args=[target]) not in page
    else:
        assert client.get(reverse("users")).status_code == 403
        assert reverse("users") not in client.get("/").content.decode()  # no link either
    assert client.get(reverse("users-new")).status_code == 403
    assert client.post(reverse("users-new"), NEW).status_code == 403
    assert client.get(reverse("users-edit", args=[target])).status_code == 403
    assert client.post(reverse("users-unlock", args=[target])).status_code == 403
    assert client.post(reverse("users-second-factor", args=[target])).status_code == 403
    assert not User.objects.filter(username="zhangwei").exists()


def test_the_administrator_lists_and_filters_users(client_for, users):
    admin = client_for("admin")
    page = admin.get(reverse("users"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert reverse("users") in admin.get("/").content.decode()
    assert all(f'data-username="{role.value}"' in page for role in Role)
    only_kam = admin.get(reverse("users"), {"role": "kam"}).content.decode()
    assert re.findall(r'data-username="([^"]+)"', only_kam) == ["kam"]
    by_name = admin.get(reverse("users"), {"q": "REP"}).content.decode()
    assert re.findall(r'data-username="([^"]+)"', by_name) == ["rep"]


def test_a_user_without_a_display_name_is_listed_and_found_by_the_name_the_pages_write(client_for, users):
    """A user created through the API with a surname and a given name but no display name is 王芳 on every page
    (tickets, the audit trail); the Users page showed "—" as their name, and searching 王芳 found nobody."""
    admin = client_for("admin")
    User.objects.create_user(username="wangf", password=PASSWORD, first_name="芳", last_name="王")
    User.objects.create_user(username="lmei", password=PASSWORD, first_name="Mei", last_name="Li")
    for typed, found in (("王芳", "wangf"), ("芳", "wangf"), ("Mei Li", "lmei")):
        page = admin.get(reverse("users"), {"q": typed}).content.decode()
        assert re.findall(r'data-username="([^"]+)"', page) == [found], typed
    page = admin.get(reverse("users"), {"q": "wangf"}).content.decode()
    assert re.search(r"<td>\s*王芳\s*</td>", page)


def test_the_new_user_form_sent_twice_makes_one_user_and_no_server_error(users):
    """Two clicks on Save: both requests pass the form's username check before either has saved, and the second
    ended in a server error (the username is unique) although the user had been made — the administrator saw a
    500 page. The second is refused as the form refuses a taken name, in any letter case."""
    from django.core.exceptions import ValidationError

    data = {
        "username": "zhangwei",
        "display_name": "张伟",
        "password": "Qx7-lantern-Harbor",
        "roles": ["kam"],
    }
    services.create_user(users["admin"], data)
    for again in (data, {**data, "username": "ZhangWei"}):
        with pytest.raises(ValidationError) as refused:
            services.create_user(users["admin"], again)
        assert refused.value.message_dict == {"username": ["已存在使用该用户名的用户。"]}
    made = User.objects.get(username__iexact="zhangwei")
    assert made.username == "zhangwei"
    created = AuditEntry.objects.filter(action=AuditEntry.Action.CREATE, object_type="core.user")
    assert list(created.filter(object_repr="张伟").values_list("object_id", flat=True)) == [str(made.pk)]


def test_creating_a_user_with_roles_is_audited_and_the_user_can_sign_in(client_for, users):
    admin = client_for("admin")
    response = admin.post(reverse("users-new"), NEW)
    user = User.objects.get(username="zhangwei")
    assert response.status_code == 302 and response["Location"] == reverse("users-edit", args=[user.pk])
    assert {r.value for r in user.roles} == {"kam", "expert"} and user.display_name == "张伟"
    entry = AuditEntry.objects.filter(action="create", object_type="core.user", object_id=str(user.pk)).get()
    assert entry.actor == users["admin"] and "password" not in str(entry.changes)
    signed_in = Client().post("/accounts/login/", {"username": "zhangwei", "password": NEW["password"]})
    assert signed_in.status_code == 302


@pytest.mark.parametrize("change, field, message", [
    ({"password2": "something-else"}, "password2", "The two passwords differ."),
    ({"username": "KAM"}, "username", "A user with this username already exists."),
    ({"username": "ＫＡＭ"}, "username", "A user with this username already exists."),  # full-width letters
    ({"password": "", "password2": ""}, "password", "This field is required."),
    ({"password": "12345678", "password2": "12345678"}, "password", "This password is too common."),
])  # fmt: skip
def test_bad_input_is_a_field_error_and_nothing_is_created(client_for, users, change, field, message):
    before = User.objects.count()
    page = client_for("admin").post(reverse("users-new"), {**NEW, **change}, HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    html = page.content.decode()
    assert re.search(rf'class="field has-error[^"]*" id="field-{field}"', html) and message in html
    assert User.objects.count() == before


@pytest.mark.parametrize("username", ["zhang wei", "zhang\u200bwei", "zhangwei<b>", "张/伟"])
def test_a_username_the_api_refuses_is_refused_on_the_page_too(client_for, users, username):
    """The API refuses a username with a space, an invisible character or a sign other than @ . + - _
    (Django's username rule); the Users page saved it. "zhang\u200bwei" then read as "zhangwei" in the audit
    trail and the lists, an account nobody could tell from another; editing such a user on the page worked,
    in the API it did not."""
    admin = client_for("admin")
    page = admin.post(reverse("users-new"), {**NEW, "username": username}, HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    html = page.content.decode()
    assert re.search(r'class="field has-error[^"]*" id="field-username"', html)
    assert "Enter a valid username." in html
    assert not User.objects.filter(username=username).exists()


def test_editing_roles_and_the_administrator_cannot_drop_their_own(client_for, users):
    admin = client_for("admin")
    rep = users["rep"]
    data = {"username": "rep", "display_name": "销售代表", "roles": ["rep", "analyst"], "is_active": "on",
            "teams": [t.pk for t in rep.teams.all()], "version": 1}  # fmt: skip
    assert admin.post(reverse("users-edit", args=[rep.pk]), data).status_code == 302
    rep = User.objects.get(pk=rep.pk)
    assert {r.value for r in rep.roles} == {"rep", "analyst"} and rep.display_name == "销售代表"
    mine = {"username": "admin", "roles": ["kam"], "is_active": "on", "version": 1}
    page = admin.post(reverse("users-edit", args=[users["admin"].pk]), mine, HTTP_ACCEPT_LANGUAGE="en")
    assert (
        page.status_code == 200 and "You cannot remove your own administrator role." in page.content.decode()
    )
    assert Role.ADMIN in User.objects.get(pk=users["admin"].pk).roles


def test_a_locked_out_user_is_shown_and_unlocked(client_for, users, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        Client().post("/accounts/login/", {"username": "agent", "password": "wrong"})
    locked = Client().post("/accounts/login/", {"username": "agent", "password": PASSWORD})
    assert locked.status_code == 403
    admin = client_for("admin")
    listing = admin.get(reverse("users"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Locked out" in listing.split('data-username="agent"')[1].split("</tr>")[0]
    assert admin.post(reverse("users-unlock", args=[users["agent"].pk])).status_code == 302
    assert AuditEntry.objects.filter(object_type="core.user", object_id=str(users["agent"].pk),
                                     changes__has_key="locked_out").exists()  # fmt: skip
    signed_in = Client().post("/accounts/login/", {"username": "agent", "password": PASSWORD})
    assert signed_in.status_code == 302


def test_a_new_enrolment_code_is_shown_once_and_replaces_the_authenticator(client_for, users):
    pv = users["pv"]
    client_for("pv")  # signing pv in gives them an authenticator
    assert TOTPDevice.objects.filter(user=pv, confirmed=True).exists()
    page = client_for("admin").post(reverse("users-second-factor", args=[pv.pk]))
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    code = re.search(r'id="enrolment-code"><strong>([^<]+)<', page.content.decode()).group(1)
    assert not TOTPDevice.objects.filter(user=pv).exists()
    enrolment, problem = services.check_enrolment_code(pv, code)
    assert enrolment is not None and problem == ""


@pytest.mark.parametrize(
    "change, field", [({"roles": ["kam"]}, "roles"), ({"is_active": False}, "is_active")]
)
def test_two_administrators_removing_each_other_at_once_leave_one_who_manages_users(users, change, field):
    """Two administrators each took the other's role away (or deactivated the other) at the same moment: both
    requests had passed their checks, and nobody could manage users any more. The second is refused, naming
    the field, and changes nothing."""
    from django.core.exceptions import ValidationError
    from django.utils import translation

    from pharmacrm.core import access
    from pharmacrm.core.roles import Cap

    other = services.create_user(
        users["admin"],
        {"username": "lina", "display_name": "李娜", "password": "Qx7-lantern-Harbor", "roles": ["admin"]},
    )
    # each request signed its administrator in before the other one saved
    first, second = User.objects.get(pk=users["admin"].pk), User.objects.get(pk=other.pk)
    assert access.can(first, Cap.MANAGE_USERS) and access.can(second, Cap.MANAGE_USERS)
    services.update_user(first, User.objects.get(pk=second.pk), change, version=other.version)
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.update_user(second, User.objects.get(pk=first.pk), change, version=first.version)
    assert list(refused.value.message_dict) == [field]
    assert "admin is the only active administrator" in refused.value.message_dict[field][0]
    kept = User.objects.get(pk=first.pk)
    assert access.can(kept, Cap.MANAGE_USERS) and kept.version == first.version
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.UPDATE, object_id=str(first.pk)).exists()


def test_the_new_user_form_sent_twice_creates_one_user(client_for, users):
    """A double click on Save answered the second time that the username was taken; the form now carries a one-time
    token: the second sending creates nothing and shows the user the first created."""
    admin = client_for("admin")
    page = admin.get(reverse("users-new")).content.decode()
    form = {**NEW, "form_token": re.search(r'name="form_token" value="([A-Za-z0-9_-]+)"', page).group(1)}

    first = admin.post(reverse("users-new"), form)
    again = admin.post(reverse("users-new"), form, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    created = User.objects.get(username="zhangwei")
    assert first.status_code == 302
    assert again.redirect_chain[-1][0] == reverse("users-edit", args=[created.pk])
    assert "This form was already sent" in again.content.decode() and "taken" not in again.content.decode()
