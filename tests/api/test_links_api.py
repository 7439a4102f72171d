"""The links, merge and bulk endpoints: what each role may do, the rep's scope, refusals as 400 and a
stale version as 409, and per-ticket outcomes of a bulk action."""

from __future__ import annotations

import pytest

from pharmacrm.servicedesk import linking, services
from pharmacrm.servicedesk.models import Ticket, TicketLink

from .conftest import ROLES

HANDLERS = {"admin", "manager", "kam", "agent", "expert", "support", "aftersales", "rep"}


@pytest.fixture
def raise_ticket(users, xiehe):
    def make(subject="咨询用法", user="agent", institution=None, **extra):
        data = {"subject": subject, "channel": "phone", "category": "drug_info",
                "institution": institution or xiehe, **extra}  # fmt: skip
        return services.create_ticket(users[user], data)

    return make


@pytest.mark.parametrize("role", ROLES)
def test_links_per_role(role, api_for, users, raise_ticket):
    a, b = raise_ticket("甲"), raise_ticket("乙")
    api = api_for(role)
    url = f"/api/v1/tickets/{a.pk}/links/"
    assert api.get(url).status_code == 200
    r = api.post(url, {"to_ticket": b.pk, "kind": "related"}, format="json")
    if role in HANDLERS:
        assert r.status_code == 201, r.content
        body = r.json()
        assert (body["kind"], body["direction"], body["ticket"]["number"]) == ("related", "out", b.number)
        listed = api.get(f"/api/v1/tickets/{b.pk}/links/").json()
        assert [(x["direction"], x["ticket"]["number"]) for x in listed] == [("in", a.number)]
        assert api.delete(f"{url}{body['id']}/").status_code == 204
        assert not TicketLink.objects.exists()
    else:
        assert r.status_code == 403
        assert not TicketLink.objects.exists()
        link = linking.link(users["agent"], a, b)
        assert api.delete(f"{url}{link.pk}/").status_code == 403


@pytest.mark.parametrize("role", ROLES)
def test_merge_per_role(role, api_for, raise_ticket):
    into, dup = raise_ticket("原单"), raise_ticket("重复单")
    body = {"into": into.pk, "reason": "重复", "version": dup.version}
    r = api_for(role).post(f"/api/v1/tickets/{dup.pk}/merge/", body, format="json")
    if role in HANDLERS:
        assert r.status_code == 200, r.content
        body = r.json()
        assert body["duplicate"]["merged_into"] == into.pk and body["duplicate"]["status"] == "closed"
        assert body["into"]["number"] == into.number
    else:
        assert r.status_code == 403
        assert Ticket.objects.get(pk=dup.pk).merged_into is None


@pytest.mark.parametrize("role", ROLES)
def test_bulk_per_role(role, api_for, raise_ticket):
    t = raise_ticket()
    r = api_for(role).post("/api/v1/ticket-bulk/", {"tickets": [t.pk], "action": "priority", "priority": "high",
                                                    "reason": "批量"}, format="json")  # fmt: skip
    if role in HANDLERS:
        assert r.status_code == 200, r.content
        assert r.json()["results"] == [{"ticket": t.pk, "number": t.number, "outcome": "done", "message": ""}]
    else:
        assert r.status_code == 403
        assert Ticket.objects.get(pk=t.pk).priority == "normal"


def test_a_rep_sees_and_links_only_tickets_in_scope(api_for, users, raise_ticket, ruijin):
    mine, hidden = raise_ticket("北京", user="rep"), raise_ticket("上海", institution=ruijin)
    other = raise_ticket("北京二")
    linking.link(users["agent"], mine, hidden)
    api = api_for("rep")
    assert api.get(f"/api/v1/tickets/{hidden.pk}/links/").status_code == 404
    assert api.get(f"/api/v1/tickets/{mine.pk}/links/").json() == []  # the link to a hidden ticket is not shown
    r = api.post(f"/api/v1/tickets/{other.pk}/links/", {"to_ticket": hidden.pk}, format="json")
    assert r.status_code == 400 and "to_ticket" in r.json()
    r = api.post(f"/api/v1/tickets/{mine.pk}/merge/", {"into": hidden.pk, "reason": "x", "version": mine.version},
                 format="json")  # fmt: skip
    assert r.status_code == 400 and "into" in r.json()
    r = api.post("/api/v1/ticket-bulk/", {"tickets": [hidden.pk, mine.pk], "action": "priority", "priority": "low",
                                          "reason": "不急"}, format="json")  # fmt: skip
    body = r.json()
    assert [x["outcome"] for x in body["results"]] == ["not_found", "done"] and body["not_found"] == 1
    assert Ticket.objects.get(pk=hidden.pk).priority == "normal"


def test_merge_refusals_are_400_and_a_stale_version_is_409(api_for, raise_ticket):
    into, dup = raise_ticket("原单"), raise_ticket("重复单")
    api = api_for("agent", lang="en")
    url = f"/api/v1/tickets/{dup.pk}/merge/"
    r = api.post(url, {"into": dup.pk, "reason": "重复", "version": dup.version}, format="json")
    assert r.status_code == 400 and "itself" in r.json()["into"][0]
    r = api.post(url, {"into": into.pk, "reason": "重复"}, format="json")
    assert r.status_code == 400 and "version" in r.json()
    r = api.post(url, {"into": into.pk, "reason": "重复", "version": dup.version + 5}, format="json")
    assert r.status_code == 409 and r.json()["current_version"] == dup.version
    r = api.post(url, {"into": into.pk, "reason": "重复"}, format="json", HTTP_IF_MATCH=f'"{dup.version}"')
    assert r.status_code == 200


def test_bulk_limits_and_conflicts(api_for, raise_ticket):
    t = raise_ticket()
    api = api_for("agent", lang="en")
    r = api.post("/api/v1/ticket-bulk/", {"tickets": list(range(1, 202)), "action": "close"}, format="json")
    assert r.status_code == 400 and "tickets" in r.json()
    r = api.post("/api/v1/ticket-bulk/", {"tickets": [t.pk], "action": "assign", "versions": {str(t.pk): 99},
                                          "team": None, "assignee": None}, format="json")  # fmt: skip
    assert r.status_code == 400 and "assignee" in r.json()
    body = {"tickets": [t.pk], "action": "priority", "priority": "low", "reason": "x",
            "versions": {str(t.pk): t.version + 1}}  # fmt: skip
    r = api.post("/api/v1/ticket-bulk/", body, format="json")
    assert r.json()["results"][0]["outcome"] == "conflict" and r.json()["conflict"] == 1
