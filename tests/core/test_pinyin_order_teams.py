"""Teams are offered in pinyin order (拼音排序) wherever a user picks one: 东北团队 (dong), 华东团队 (hua), 医学信息组
(yi), not in the characters' code-point order (医 U+533B before 华 U+534E): a user's teams, a customer's team, a
report subscription's team and a cooperation agreement's team."""

from __future__ import annotations

import pytest

from pharmacrm.core.models import Team

TEAMS = ["东北团队", "医学信息组", "华东团队"]  # in code-point order
PINYIN_TEAMS = ["东北团队", "华东团队", "医学信息组"]  # dong, hua, yi


@pytest.fixture
def teams(db):
    return [Team.objects.create(name=name) for name in TEAMS]


def offered(html: str, name: str) -> list[str]:
    """The teams the <select name=…> offers, in the order the user sees them."""
    start = html.index(f'name="{name}"')
    select = html[start : html.index("</select>", start)]
    assert all(team in select for team in TEAMS), select
    return sorted(TEAMS, key=select.index)


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
    assert offered(response.content.decode(), field) == PINYIN_TEAMS
