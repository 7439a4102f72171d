"""Teams are offered in pinyin order (拼音排序) wherever a user picks one: 东北团队 (dong), 华东团队 (hua), 医学信息组
(yi), not in the characters' code-point order (医 U+533B before 华 U+534E): a user's teams, a customer's team, a
report subscription's team and a cooperation agreement's team."""

from __future__ import annotations

import pytest

from tests.pinyin_helpers import PINYIN_TEAMS, TEAMS, make_teams, offered


@pytest.fixture
def teams(db):
    return make_teams()


@pytest.mark.parametrize(
    ("role", "url", "field"),
    [
        ("admin", "/accounts/users/new/", "teams"),
        ("manager", "/customers/institutions/new/", "team"),
        ("manager", "/reports/", "team"),
        ("manager", "/cooperation/new/", "team"),
    ],
)
def test_teams_are_offered_in_pinyin_order(client_for, teams, role, url, field):
    response = client_for(role).get(url)
    assert response.status_code == 200, url
    assert offered(response.content.decode(), field, TEAMS) == PINYIN_TEAMS
