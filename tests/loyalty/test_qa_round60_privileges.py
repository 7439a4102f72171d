"""A member's privileges read 每回款 100 元积分×1; 奖励目录 on a Chinese page: an English semicolon and space between
Chinese phrases. They take the page's own: ；in Chinese, "; " in English."""

from __future__ import annotations

import pytest

from pharmacrm.loyalty import services
from tests.loyalty.test_loyalty import pharmacy

pytestmark = pytest.mark.django_db


def test_a_members_privileges_are_separated_as_the_page_language_writes(client_for, users, beijing, team_north):
    shop = pharmacy(users["admin"], beijing, "同仁堂大药房朝阳店", owner=users["rep"], team=team_north)
    member = services.join(users["rep"], shop)
    client = client_for("rep")
    english = client.get(f"/loyalty/members/{member.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "per ¥100 paid; Reward catalogue" in english
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    for url in (f"/loyalty/members/{member.pk}/", "/loyalty/"):
        chinese = client.get(url).content.decode()
        assert "；奖励目录" in chinese and "; 奖励目录" not in chinese, url
