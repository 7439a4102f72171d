"""Every filter of every list in the OpenAPI schema, given a value at the edge of its type, answers 200 or a 400
naming a filter — never a server error. A QA pass found id filters of the newer lists (stage tasks, KPI
appraisals, customer values) reading `?person=9223372036854775808` as a number too large for the database (500)
and `?person=1.5` as a decimal that matched nothing, yes/no filters reading `?overdue=maybe` as "not given", and
the classroom sessions' `?to=9999-12-31` failing on the day after the calendar's last one."""

from __future__ import annotations

import pytest

from pharmacrm.core.api_utils import TYPED_DATE_SCHEMA, TYPED_MOMENT_SCHEMA
from pharmacrm.core.ids import MAX_ID

pytestmark = pytest.mark.django_db

EDGES = {
    "integer": [str(MAX_ID + 1), "1.5"],
    "number": [str(MAX_ID + 1)],
    "boolean": ["maybe"],
    "date": ["0001-01-01", "9999-12-31"],
    "date-time": ["0001-01-01T00:00:00", "9999-12-31T23:59:59"],
}


# the days and moments read as typed (2026/3/15, 2026年3月15日 14时30分) say so by a pattern instead of a format
TYPED = {TYPED_DATE_SCHEMA["pattern"]: "date", TYPED_MOMENT_SCHEMA["pattern"]: "date-time"}


def _filters(schema: dict):
    for path, operations in sorted(schema["paths"].items()):
        get = operations.get("get")
        if get is None or "{" in path or path.startswith("/api/v1/export/"):
            continue
        for parameter in get.get("parameters", []):
            if parameter.get("in") != "query" or parameter["name"] in ("page", "page_size"):
                continue
            spec = parameter.get("schema", {})
            kind = spec.get("format") or TYPED.get(spec.get("pattern")) or spec.get("type")
            for value in EDGES.get(kind, []):
                yield path, parameter["name"], value, {p["name"] for p in get["parameters"] if p.get("in") == "query"}


def test_no_filter_of_any_list_answers_a_server_error_at_the_edge_of_its_type(api_for, users, client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    admin = api_for("admin", lang="zh-hans")
    failures = []
    checked = 0
    for path, name, value, names in _filters(schema):
        checked += 1
        response = admin.get(path, {name: value})
        if response.status_code == 200:
            continue
        body = response.json() if "json" in response["Content-Type"] else None
        # refused by name: this filter's, or another one's that it contradicts (an `end` before the default `start`)
        if response.status_code != 400 or not isinstance(body, dict) or not body or not set(body) <= names:
            failures.append(f"{path}?{name}={value}: {response.status_code} {response.content[:160]!r}")
    assert checked > 100
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    ("role", "path", "name"),
    [
        ("admin", "/api/v1/engagement/stage-tasks/", "institution"),
        ("admin", "/api/v1/engagement/stage-tasks/", "person"),
        ("admin", "/api/v1/engagement/stage-tasks/", "owner"),
        ("admin", "/api/v1/sales/appraisals/", "scheme"),
        ("admin", "/api/v1/sales/appraisals/", "person"),
        ("admin", "/api/v1/sales/appraisals/", "team"),
        ("admin", "/api/v1/sales/clv/", "institution"),
    ],
)
def test_an_id_filter_of_the_newer_lists_refuses_a_decimal_by_name(api_for, users, role, path, name):
    """`?person=1.5` matched no record: an empty list, as if the person had none."""
    response = api_for(role, lang="zh-hans").get(path, {name: "1.5"})

    assert response.status_code == 400, response.content
    assert response.json() == {name: ["请输入整数。"]}


@pytest.mark.parametrize(
    ("role", "path", "name"),
    [
        ("admin", "/api/v1/engagement/stage-tasks/", "overdue"),
        ("admin", "/api/v1/service/quality-reviews/", "findings"),
        ("admin", "/api/v1/loyalty/rewards/", "active"),
        ("admin", "/api/v1/market/presence/", "current"),
    ],
)
def test_a_yes_no_filter_of_the_newer_lists_refuses_a_value_that_is_neither(api_for, users, role, path, name):
    """`?overdue=maybe` was read as "not given": every task, in a list that looked filtered."""
    client = api_for(role, lang="zh-hant")

    refused = client.get(path, {name: "maybe"})

    assert refused.status_code == 400, refused.content
    assert refused.json() == {name: ["請輸入 true 或 false。"]}
    assert client.get(path, {name: "true"}).status_code == 200


def test_classroom_sessions_from_the_first_day_to_the_last_day_of_the_calendar_are_all_sessions(api_for, users):
    client = api_for("manager")
    everything = client.get("/api/v1/training/sessions/")

    response = client.get("/api/v1/training/sessions/", {"from": "0001-01-01", "to": "9999-12-31"})

    assert response.status_code == 200, response.content
    assert response.json()["count"] == everything.json()["count"]
