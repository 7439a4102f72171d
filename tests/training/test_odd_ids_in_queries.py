"""The training results filtered on a team id that is no database integer ("²", which str.isdigit() takes for a
digit): "no such team" (404), as for any unknown team, instead of a server error (found by the UI QA crawl)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("odd", ["²", "99999999999999999999", "12345"])
def test_results_filtered_on_an_odd_team_is_no_such_team(client_for, odd):
    r = client_for("manager").get(f"/training/results/?team={odd}")
    assert r.status_code == 404


def test_results_without_a_team_show(client_for):
    assert client_for("manager").get("/training/results/").status_code == 200
