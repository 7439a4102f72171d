"""Every yes/no filter of the API refuses a value that is neither, naming the filter: `?active=maybe` on the
catalogue, `?unread=maybe` on the bell, `?valid=maybe` on the safety cases … were read as "not given" and
answered with every record — a list that looked filtered and was not."""

from __future__ import annotations

import pytest

CASES = [
    ("agent", "/api/v1/notifications/", "unread"),
    ("admin", "/api/v1/ticket-categories/", "active"),
    ("admin", "/api/v1/sla-policies/", "active"),
    ("agent", "/api/v1/products/", "active"),
    ("agent", "/api/v1/answer-templates/", "active"),
    ("pv", "/api/v1/safety/cases/", "valid"),
    ("pv", "/api/v1/safety/cases/", "serious"),
    ("pv", "/api/v1/safety/reporting-rules/", "active"),
    ("rep", "/api/v1/interactions/", "mine"),
    ("rep", "/api/v1/interactions/", "safety_relevant"),
    ("kam", "/api/v1/order-lines/", "open"),
]


@pytest.mark.parametrize("role,url,name", CASES, ids=[f"{u.split('/')[-2]}-{n}" for _r, u, n in CASES])
def test_a_yes_no_filter_refuses_a_value_that_is_neither_by_name(api_for, users, role, url, name):
    client = api_for(role, lang="zh-hans")

    refused = client.get(f"{url}?{name}=maybe")
    assert refused.status_code == 400, refused.content
    assert refused.json()[name] == ["请输入 true 或 false。"]
    for value in ("true", "false", "1", "0"):
        assert client.get(f"{url}?{name}={value}").status_code == 200
