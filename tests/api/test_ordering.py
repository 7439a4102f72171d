"""`?ordering=`: pages that never repeat or skip a record, and an ordering the endpoint does not offer refused by
name instead of being dropped in silence. tests/api/test_stable_pages.py walks every list endpoint."""

from __future__ import annotations

import random

import pytest

from pharmacrm.core.models import User
from pharmacrm.servicedesk.models import AgentProfile

pytestmark = pytest.mark.django_db


def walk(client, url, params, page_size=2) -> list[int]:
    ids, page = [], 1
    while True:
        body = client.get(url, {**params, "page": page, "page_size": page_size}).json()
        ids += [row["id"] for row in body["results"]]
        if not body["next"]:
            return ids
        page += 1


def test_users_by_last_login_come_each_once_though_most_never_signed_in(api_for, users):
    """Users who never signed in share last_login NULL. On PostgreSQL the pages of ordering=last_login came
    from different sort plans (top-N for the first page, a full sort after) and listed some users twice and others
    never; they now follow in id order."""
    User.objects.bulk_create(User(username=f"rep{n:02d}", display_name=f"代表{n:02d}") for n in range(40))
    pks = list(User.objects.values_list("pk", flat=True))
    for pk in random.Random(3).sample(pks, len(pks)):  # their order on disk is not their id order
        User.objects.filter(pk=pk).update(display_name=f"已核对 {pk}")
    client = api_for("admin")
    for ordering in ("last_login", "-last_login"):
        assert walk(client, "/api/v1/users/", {"ordering": ordering}, page_size=9) == sorted(pks), ordering


def test_an_ordering_the_endpoint_does_not_offer_is_refused_by_name(api_for):
    """ordering=password (or a typo, `ordering=lastlogin`) was dropped in silence: the client got the users by
    username and took them for the order it asked for."""
    response = api_for("admin").get("/api/v1/users/", {"ordering": "username,-password"})
    assert response.status_code == 400
    assert response.json() == {"ordering": [
        "“password” is not a field these records can be ordered by. Use one of: username, date_joined, last_login "
        "(with a leading “-” for descending order)."
    ]}  # fmt: skip


def test_agent_profiles_are_not_ordered_by_a_list_of_skills(api_for, users):
    """`ordering=skills` was offered (every serializer field was) and joined the profiles to their skills: an agent
    with two skills came twice, and the pages left others out. It is refused; the fields that hold one value each
    still order."""
    from pharmacrm.servicedesk.models import TicketCategory

    skills = list(TicketCategory.objects.all()[:2])
    for role in ("agent", "support", "expert"):
        profile = AgentProfile.objects.create(user=users[role])
        profile.skills.set(skills)
    client = api_for("admin")
    refused = client.get("/api/v1/agent-profiles/", {"ordering": "skills"})
    assert refused.status_code == 400 and list(refused.json()) == ["ordering"]
    walked = walk(client, "/api/v1/agent-profiles/", {"ordering": "max_open"})
    assert sorted(walked) == sorted(AgentProfile.objects.values_list("pk", flat=True))
    assert len(walked) == len(set(walked))


def test_the_schema_names_the_fields_each_list_orders_by(api_for):
    """The schema said only "Which field to use when ordering the results": a client could not know `skills` was
    no ordering, or that `lastlogin` would be ignored."""
    import json

    spec = json.loads(api_for("admin").get("/api/schema/?format=json").content)

    def described(path):
        (param,) = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "ordering"]
        return param["description"].split("One of: ")[1].split(", ")

    assert described("/api/v1/users/") == ["username", "date_joined", "last_login"]
    assert "max_open" in described("/api/v1/agent-profiles/") and "skills" not in described("/api/v1/agent-profiles/")


@pytest.mark.parametrize(
    ("params", "answer"),
    [
        ({"page_size": "abc"}, {"page_size": ["Enter a whole number of records per page from 1 to 200."]}),
        ({"page_size": "0"}, {"page_size": ["Enter a whole number of records per page from 1 to 200."]}),
        ({"page_size": "-1"}, {"page_size": ["Enter a whole number of records per page from 1 to 200."]}),
        ({"page_size": "１０"}, {"page_size": ["Enter a whole number of records per page from 1 to 200."]}),
        ({"page": "abc"}, {"page": ["Enter a page number: a whole number from 1 up."]}),
        ({"page": "0"}, {"page": ["Enter a page number: a whole number from 1 up."]}),
    ],
)
def test_a_page_or_page_size_that_is_no_whole_number_is_refused_by_name(api_for, params, answer):
    """page_size=0 (or abc, -1) was ignored: the client got 50 records and took them for the page it asked for;
    page=abc answered 404 "Invalid page.", as a page past the end does."""
    response = api_for("admin").get("/api/v1/users/", params)
    assert response.status_code == 400
    assert response.json() == answer


def test_page_sizes_within_the_limit_are_taken_and_larger_ones_capped(api_for, users):
    client = api_for("admin")
    assert len(client.get("/api/v1/users/", {"page_size": "3"}).json()["results"]) == 3
    assert len(client.get("/api/v1/users/", {"page_size": "5000"}).json()["results"]) == len(users)
    assert client.get("/api/v1/users/", {"page": "last", "page_size": "5"}).status_code == 200
    assert client.get("/api/v1/users/", {"page": "99"}).status_code == 404


def test_the_last_key_is_the_id_unless_the_ordering_already_has_a_unique_one():
    """Ties follow the id in the direction of the endpoint's default order (newest first for surveys, whose records
    list newest first); an ordering that already ends in a unique key (an order line's number and line) is left
    as it is, so that its index still serves it."""
    from types import SimpleNamespace

    from pharmacrm.core.api_utils import _tie_break, total_order
    from pharmacrm.sales.models import OrderLine
    from pharmacrm.servicedesk.models import Survey

    def last_keys(qs, view_ordering=None):
        return total_order(qs, _tie_break(SimpleNamespace(ordering=view_ordering), qs)).query.order_by

    assert last_keys(Survey.objects.order_by("channel")) == ("channel", "-pk")
    assert last_keys(User.objects.order_by("last_login"), ["username"]) == ("last_login", "pk")
    assert last_keys(User.objects.order_by("-username")) == ("-username",)  # unique
    assert last_keys(OrderLine.objects.all()) == ()  # the model's order: date, then the unique order and line
    assert last_keys(OrderLine.objects.order_by("order_number")) == ("order_number", "pk")
