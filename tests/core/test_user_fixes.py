"""QA fixes for users (brief H1): a password reset revokes the API tokens, the user form refuses a stale save
(optimistic locking), the territory picker tells a municipality from its city level, and `make run`'s banner
names every demo user with a TOTP secret."""

from __future__ import annotations

import datetime
import html
import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import translation

from pharmacrm.core import demo, services
from pharmacrm.core.models import ApiToken, AuditEntry, Region, User
from pharmacrm.core.roles import Role
from pharmacrm.core.views_users import UserForm
from tests.conftest import PASSWORD, otp_verify

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
STRONG = "Qx7-lantern-Harbor"


def tokens(user) -> list[str]:
    """Two live tokens for the user, one issued with a second factor and one without: their keys."""
    return [ApiToken.issue(user, datetime.timedelta(hours=1), second_factor=sf)[1] for sf in (False, True)]


def api_status(key: str) -> int:
    return Client().get("/api/v1/roles/", HTTP_AUTHORIZATION=f"Token {key}").status_code


def page_version(page: str) -> int:
    return int(re.search(r'name="version" value="(\d+)"', page).group(1))


def edit_data(user: User, version: int, **change) -> dict:
    """The user form as the page shows it for `user`, with `change` applied."""
    data = {
        "username": user.username, "display_name": user.display_name, "email": user.email,
        "roles": sorted(r.value for r in user.roles), "teams": [t.pk for t in user.teams.all()],
        "territory": [r.code for r in user.territory.all()], "is_active": "on", "version": version,
    }  # fmt: skip
    data.update(change)
    return data


# --- 1. a password reset revokes every API token ---------------------------------------------------


def test_a_password_reset_by_the_service_revokes_every_token_and_audits_it(users):
    kam = users["kam"]
    keys = tokens(kam)
    other = tokens(users["agent"])
    assert [api_status(k) for k in keys] == [200, 200]
    services.update_user(users["admin"], kam, {"password": STRONG})
    assert [api_status(k) for k in keys] == [401, 401]
    assert not ApiToken.objects.filter(user=kam).exists()
    assert [api_status(k) for k in other] == [200, 200]  # only the user's own tokens
    entry = AuditEntry.objects.filter(action="update", object_type="core.user", object_id=str(kam.pk)).latest("seq")
    assert entry.extra["password_changed"] is True and entry.extra["tokens_revoked"] == 2
    assert STRONG not in str(entry.extra) + str(entry.changes)


def test_a_change_without_a_new_password_keeps_the_tokens(users):
    kam = users["kam"]
    keys = tokens(kam)
    services.update_user(users["admin"], kam, {"display_name": "客户经理", "password": ""})
    assert [api_status(k) for k in keys] == [200, 200]


def test_the_web_password_reset_revokes_the_tokens_and_ends_the_web_sessions(client_for, users):
    kam = users["kam"]
    keys = tokens(kam)
    session = Client()
    session.force_login(kam)
    assert session.get("/").status_code == 200
    admin = client_for("admin")
    version = page_version(admin.get(reverse("users-edit", args=[kam.pk])).content.decode())
    saved = admin.post(reverse("users-edit", args=[kam.pk]), edit_data(kam, version, password=STRONG, password2=STRONG))
    assert saved.status_code == 302
    assert [api_status(k) for k in keys] == [401, 401]
    assert session.get("/").status_code == 302  # sent to sign in again
    assert Client().post("/accounts/login/", {"username": "kam", "password": STRONG}).status_code == 302


def test_the_api_password_reset_revokes_the_tokens(users):
    from rest_framework.test import APIClient

    kam = users["kam"]
    keys = tokens(kam)
    admin = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    admin.credentials(HTTP_AUTHORIZATION=f"Token {tokens(users['admin'])[1]}")
    response = admin.patch(f"/api/v1/users/{kam.pk}/", {"password": STRONG, "version": 1}, format="json")
    assert response.status_code == 200, response.content
    assert [api_status(k) for k in keys] == [401, 401]


def test_the_changepassword_command_revokes_the_tokens(users, monkeypatch):
    kam = users["kam"]
    keys = tokens(kam)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": STRONG)
    call_command("changepassword", "kam", stdout=open(os.devnull, "w"))
    assert User.objects.get(pk=kam.pk).check_password(STRONG)
    assert [api_status(k) for k in keys] == [401, 401]
    # audited: which account, that its password changed, who ran the command — never the password
    from pharmacrm.core.audit import verify
    from pharmacrm.core.models import AuditEntry

    entry = AuditEntry.objects.filter(object_type="core.user", object_id=str(kam.pk)).latest("seq")
    assert entry.action == "update" and entry.extra["password_changed"] is True
    assert entry.extra["tokens_revoked"] == 2 and entry.actor_name.startswith("cli:")
    assert STRONG not in json.dumps(entry.changes) + json.dumps(entry.extra)
    assert verify().ok


def test_a_password_set_by_an_administrator_is_audited_once(users):
    from pharmacrm.core import services
    from pharmacrm.core.models import AuditEntry

    kam = users["kam"]
    services.update_user(users["admin"], kam, {"password": STRONG}, version=kam.version)
    entries = AuditEntry.objects.filter(object_type="core.user", object_id=str(kam.pk))
    assert entries.count() == 1 and entries.get().actor == users["admin"] and entries.get().extra["password_changed"]


def test_a_password_hash_upgrade_at_sign_in_keeps_the_tokens(users, settings):
    kam = users["kam"]
    keys = tokens(kam)
    # a stronger hasher becomes the default: the next sign-in re-hashes the password, which is no change of it
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher", "django.contrib.auth.hashers.MD5PasswordHasher",
    ]  # fmt: skip
    assert Client().post("/accounts/login/", {"username": "kam", "password": PASSWORD}).status_code == 302
    assert User.objects.get(pk=kam.pk).password.startswith("pbkdf2_")
    assert [api_status(k) for k in keys] == [200, 200]


# --- 2. optimistic locking on the user form ----------------------------------------------------------


def test_a_stale_user_form_is_refused_and_keeps_the_input(client_for, users):
    kam = users["kam"]
    url = reverse("users-edit", args=[kam.pk])
    first, second = client_for("admin"), Client()
    admin2 = User.objects.create_user("admin2", password=PASSWORD)
    admin2.groups.add(Group.objects.get(name=Role.ADMIN.value))
    second.force_login(admin2)
    otp_verify(second, admin2)
    v_first = page_version(first.get(url).content.decode())
    v_second = page_version(second.get(url).content.decode())
    assert v_first == v_second == 1

    # the first administrator adds a role
    added = first.post(url, edit_data(kam, v_first, roles=["analyst", "kam"]))
    assert added.status_code == 302
    assert User.objects.get(pk=kam.pk).version == 2

    # the second, on the stale page, changes only the e-mail: refused, nothing written, the input kept
    stale = second.post(url, edit_data(kam, v_second, email="kam@new.example"), HTTP_ACCEPT_LANGUAGE="en")
    assert stale.status_code == 409
    page = html.unescape(stale.content.decode())
    assert "Someone else changed this record while you were editing it." in page
    assert 'value="kam@new.example"' in page  # the administrator's input
    assert page_version(page) == 2  # saving again applies it knowingly
    assert re.search(r"<td>Roles</td><td>Key-account manager, Marketing analyst</td><td>Key-account manager</td>", page)  # what the other one did
    fresh = User.objects.get(pk=kam.pk)
    assert {r.value for r in fresh.roles} == {"analyst", "kam"} and fresh.email == "" and fresh.version == 2
    assert AuditEntry.objects.filter(action="update", object_id=str(kam.pk)).count() == 1

    # reloaded, the change goes through and keeps the role
    again = second.post(url, edit_data(fresh, page_version(second.get(url).content.decode()), email="kam@new.example"))
    assert again.status_code == 302
    fresh = User.objects.get(pk=kam.pk)
    assert fresh.email == "kam@new.example" and {r.value for r in fresh.roles} == {"analyst", "kam"}
    assert fresh.version == 3


def test_a_user_form_without_its_version_saves_nothing(client_for, users):
    kam = users["kam"]
    data = edit_data(kam, 1, display_name="改名")
    del data["version"]
    page = client_for("admin").post(reverse("users-edit", args=[kam.pk]), data, HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert "Please reload the page and send it again." in page.content.decode()
    assert User.objects.get(pk=kam.pk).display_name == "kam"


def test_every_change_moves_the_version_and_a_save_without_change_does_not(users):
    admin, kam = users["admin"], users["kam"]
    assert kam.version == 1
    services.update_user(admin, kam, {"roles": ["kam", "analyst"]}, version=1)
    assert User.objects.get(pk=kam.pk).version == kam.version == 2
    services.update_user(admin, kam, {"display_name": kam.display_name}, version=2)
    assert User.objects.get(pk=kam.pk).version == 2
    services.update_user(admin, kam, {"password": STRONG}, version=2)
    assert User.objects.get(pk=kam.pk).version == 3
    with pytest.raises(services.UserConflictError) as conflict:
        services.update_user(admin, User.objects.get(pk=kam.pk), {"email": "x@example.com"}, version=2)
    assert conflict.value.current_version == 3
    assert User.objects.get(pk=kam.pk).email == ""


def test_internal_callers_without_a_version_still_work(users):
    admin, kam = users["admin"], users["kam"]
    services.update_user(admin, kam, {"roles": ["kam", "analyst"]}, version=1)
    stale = User.objects.get(pk=kam.pk)
    stale.version = 1  # an object loaded earlier: internal callers pass no version, so nothing is checked
    services.deactivate_user(admin, stale)
    fresh = User.objects.get(pk=kam.pk)
    assert fresh.is_active is False and fresh.version == 3


# --- 3. the territory picker tells a municipality from its city level --------------------------------


@pytest.mark.parametrize("lang", ["zh-hans", "zh-hant", "en"])
def test_territory_options_are_unambiguous(client_for, users, lang):
    page = client_for("admin").get(reverse("users-edit", args=[users["kam"].pk]), HTTP_ACCEPT_LANGUAGE=lang)
    territory = page.content.decode().split('name="territory"')[1].split("</select>")[0]
    options = dict(re.findall(r'<option value="(\d{6})"[^>]*>([^<]+)</option>', territory))
    labels = list(options.values())
    assert len(options) > 300 and len(set(labels)) == len(labels)
    if lang == "zh-hant":
        assert options["110000"] == "北京市" and options["110100"] == "北京市（市轄區）"
        assert options["500200"] == "重慶市（縣）"
    elif lang == "en":  # the English names, the remark in brackets as English writes them
        assert options["110000"] == "Beijing" and options["110100"] == "Beijing (Municipal districts)"
        assert options["500200"] == "Chongqing (Counties)" and options["130100"] == "Shijiazhuang City, Hebei"
    else:
        assert options["110000"] == "北京市" and options["110100"] == "北京市（市辖区）"
        assert options["500000"] == "重庆市" and options["500100"] == "重庆市（市辖区）"
        assert options["500200"] == "重庆市（县）" and options["130100"] == "河北省石家庄市"


def test_a_chosen_district_keeps_its_full_name(users):
    kam = users["kam"]
    kam.territory.add(Region.objects.get(code="110105"))
    with translation.override("zh-hans"):
        choices = dict((str(v), label) for v, label in UserForm(user=kam).fields["territory"].choices)
    assert choices["110105"] == "北京市朝阳区"


# --- 4. the start-up banner -------------------------------------------------------------------------


def test_the_run_banner_names_every_demo_user_with_a_totp_secret(settings, tmp_path):
    """scripts/run.sh with stand-ins for python, pharmacrm and gunicorn: the banner it prints."""
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    secrets = {name: "JBSWY3DPEHPK3PXP" for name in ("admin", "manager", "auditor", "pv")}
    demo._write_credentials("Demo-Password-2026", secrets)
    assert stat.S_IMODE((settings.VAR_DIR / "demo-credentials.txt").stat().st_mode) == 0o600
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "pharmacrm", "gunicorn"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "EMAIL_HOST", "EMAIL_BACKEND")}
    env.update(VENV=os.path.relpath(tmp_path / "venv", ROOT), PHARMACRM_VAR_DIR=str(settings.VAR_DIR), PORT="8999")
    run = subprocess.run(["scripts/run.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    banner = " ".join(run.stdout.split())
    assert "the TOTP secrets of admin manager auditor pv (who also enter a one-time code" in banner
    assert "admin, auditor and pv" not in banner


@pytest.mark.django_db
def test_a_chinese_name_without_a_display_name_is_written_surname_first():
    """A user entered with surname 王 and given name 芳, and no display name, was shown as "芳 王" (Django's
    "first last") on pages and in the {agent} of answer templates; a Chinese name reads 王芳."""
    from pharmacrm.servicedesk.knowledge import values_for
    from pharmacrm.servicedesk.models import Ticket

    wang = User.objects.create_user("wangfang", first_name="芳", last_name="王")
    assert str(wang) == wang.get_full_name() == "王芳"
    assert values_for(Ticket(number="TK-2026-000001", subject="咨询"), wang)["agent"] == "王芳"
    # names in Latin letters keep their order and space
    assert str(User.objects.create_user("jsmith", first_name="John", last_name="Smith")) == "John Smith"
