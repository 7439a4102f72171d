"""Shared fixtures: one user per role, logged-in clients, a few customers; built per test on the
test database (SQLite or PostgreSQL, chosen by DATABASE_URL)."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import Group

from pharmacrm.core.models import Region, Team, User
from pharmacrm.core.roles import Role
from pharmacrm.customers import normalise, services
from pharmacrm.customers.choices import InstitutionType

PASSWORD = "Test-password-2026!"


@pytest.fixture
def make_user(db):
    def make(username: str, *roles: Role, teams=(), territory=()) -> User:
        user = User.objects.create_user(username=username, password=PASSWORD, display_name=username)
        for role in roles:
            user.groups.add(Group.objects.get(name=role.value))
        for team in teams:
            user.teams.add(team)
        for region in territory:
            user.territory.add(region)
        return User.objects.get(pk=user.pk)  # fresh: no cached roles

    return make


@pytest.fixture
def team_north(db):
    team = Team.objects.create(name="华北团队")
    team.territory.add(Region.objects.get(code="110000"))  # 北京市
    return team


@pytest.fixture
def users(make_user, team_north) -> dict[str, User]:
    """One user per role, named after the role; the rep works in the North team (Beijing)."""
    out = {}
    for role in Role:
        teams = (team_north,) if role == Role.REP else ()
        out[role.value] = make_user(role.value, role, teams=teams)
    return out


@pytest.fixture
def admin_user(users):
    return users["admin"]


def otp_verify(client, user) -> None:
    """Give a logged-in test client a verified second factor (for admin/auditor/pv)."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device, _ = TOTPDevice.objects.get_or_create(user=user, name="default", defaults={"confirmed": True})
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


@pytest.fixture
def client_for(client, users):
    """client_for("agent") → a Django test client logged in as that role (OTP satisfied if needed)."""

    def login(role: str):
        from django.test import Client

        c = Client()
        user = users[role]
        c.force_login(user)
        otp_verify(c, user)
        return c

    return login


@pytest.fixture
def beijing():
    return Region.objects.get(code="110105")  # 北京市朝阳区


@pytest.fixture
def shanghai():
    return Region.objects.get(code="310104")  # 上海市徐汇区


@pytest.fixture
def xiehe(admin_user, beijing):
    """北京协和医院 with one department and one doctor."""
    hospital = services.create_institution(
        admin_user,
        {
            "name": "北京协和医院",
            "kind": InstitutionType.HOSPITAL,
            "grade": "3A",
            "region": beijing,
            "credit_code": normalise.make_credit_code("12100000400000000"),
            "phone": "010-69156114",
            "beds": 2000,
            "specialties": ["内科", "心内科"],
        },
    )
    dept = services.create_institution(
        admin_user, {"name": "心内科", "kind": InstitutionType.DEPARTMENT, "parent": hospital, "region": beijing}
    )
    services.create_person(
        admin_user,
        {
            "name": "张伟",
            "institution": hospital,
            "department": dept,
            "title": "主任医师",
            "mobile": "13800138000",
            "email": "zhangwei@example.com",
            "birthday": datetime.date(1975, 3, 15),
        },
    )
    return hospital


@pytest.fixture
def ruijin(admin_user, shanghai):
    """上海瑞金医院: outside the North team's territory."""
    return services.create_institution(
        admin_user, {"name": "上海交通大学医学院附属瑞金医院", "short_name": "瑞金医院", "kind": "hospital", "region": shanghai}
    )
