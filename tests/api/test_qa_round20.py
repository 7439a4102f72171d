"""QA round 20 (REST API, access policy, audit trail): failing tests for defects found in review."""

from __future__ import annotations

import pytest

from pharmacrm.core.models import AuditEntry, Team
from pharmacrm.notify.models import WebhookEndpoint
from pharmacrm.servicedesk.models import AgentProfile, AssignmentRule
from tests.keyaccounts.programme_fixtures import *  # noqa: F403 (the key-account fixtures: with_plan …)

A = AuditEntry.Action


@pytest.fixture
def team(db):
    return Team.objects.create(name="客服一组")


# --- settings edited through the API overwrite each other's changes silently ------------------------------


def _stale_then_fresh(client, url: str, change: dict, other: dict):
    """Two managers load the same record; the second saves it, then the first saves with what they loaded."""
    loaded = client.get(url)
    assert loaded.status_code == 200
    assert "version" in loaded.data, "the record's version is not shown, so a client cannot send it back"
    version = loaded.data["version"]
    assert client.patch(url, {**other, "version": version}, format="json").status_code == 200
    return client.patch(url, {**change, "version": version}, format="json"), version


def test_a_stale_change_of_an_assignment_rule_is_a_conflict_not_a_silent_overwrite(api_for, team):
    """The rule page refuses a stale save, but the API took it: a manager who moved a rule to the VIP
    queue lost it when a colleague's earlier-loaded PATCH came in, with nothing saying so."""
    c = api_for("manager")
    rule = c.post("/api/v1/assignment-rules/", {"name": "VIP", "team": team.pk}, format="json").data
    url = f"/api/v1/assignment-rules/{rule['id']}/"
    answer, _version = _stale_then_fresh(c, url, {"method": "queue"}, {"customer_tier": "vip"})
    assert answer.status_code == 409, answer.data
    assert answer.data["current_version"] == rule["version"] + 1
    stored = AssignmentRule.objects.get(pk=rule["id"])
    assert (stored.customer_tier, stored.method) == ("vip", "least_loaded")  # nothing of the stale save
    # an If-Match header says the same, and the current version goes through
    stale = c.patch(url, {"method": "queue"}, format="json", HTTP_IF_MATCH=f'"{rule["version"]}"')
    assert stale.status_code == 409
    fresh = c.patch(url, {"method": "queue", "version": answer.data["current_version"]}, format="json")
    assert fresh.status_code == 200 and fresh.data["version"] == rule["version"] + 2
    # switching it off with a stale version is refused as well
    assert c.delete(url, HTTP_IF_MATCH=f'"{rule["version"]}"').status_code == 409
    assert AssignmentRule.objects.get(pk=rule["id"]).active is True


def test_a_stale_change_of_an_agent_profile_is_a_conflict(api_for, users):
    c = api_for("manager")
    created = c.post("/api/v1/agent-profiles/", {"user": users["agent"].pk, "max_open": 20}, format="json")
    assert created.status_code == 201 and created.data["version"] == 1
    url = f"/api/v1/agent-profiles/{created.data['id']}/"
    answer, _version = _stale_then_fresh(c, url, {"max_open": 5}, {"max_open": 30})
    assert answer.status_code == 409, answer.data
    assert AgentProfile.objects.get(pk=created.data["id"]).max_open == 30
    # the agent's own profile shows its version too (null before one is stored)
    me = api_for("support").get("/api/v1/agent-profiles/me/")
    assert me.status_code == 200 and me.data["id"] is None and me.data["version"] is None


def test_a_stale_change_of_a_webhook_endpoint_is_a_conflict(api_for):
    c = api_for("manager")
    created = c.post(
        "/api/v1/webhooks/", {"name": "值班群", "url": "https://example.com/hook", "format": "generic"}, format="json"
    )
    assert created.status_code == 201 and created.data["version"] == 1
    url = f"/api/v1/webhooks/{created.data['id']}/"
    answer, _version = _stale_then_fresh(
        c, url, {"url": "https://example.org/old-hook"}, {"url": "https://example.com/new-hook"}
    )
    assert answer.status_code == 409, answer.data
    assert WebhookEndpoint.objects.get(pk=created.data["id"]).url == "https://example.com/new-hook"
    assert c.delete(url, HTTP_IF_MATCH='"1"').status_code == 409
    assert WebhookEndpoint.objects.get(pk=created.data["id"]).active is True


# --- the schema says a ticket event's statuses are never empty: generated clients refuse every history -------


def test_a_tickets_history_matches_its_schema(users, xiehe):
    """Every history starts with a `created` event whose from_status is "" (and an edit or a reply has both
    empty), which the schema's TicketStatusEnum did not allow: a client generated from /api/schema/ failed
    to read any ticket's history."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    from schemathesis.specs.openapi.checks import response_schema_conformance

    from pharmacrm.servicedesk import services as desk

    from .conftest import token_for

    ticket = desk.create_ticket(users["agent"], {"subject": "询问说明书", "channel": "phone",
                                                 "category": "drug_info", "institution": xiehe})  # fmt: skip
    headers = {"Authorization": f"Token {token_for(users['agent'])}", "Accept-Language": "en"}
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        # loading the schema is a request to the app too: run on its own, it would close the test's connection
        from .test_schema import schema

        case = schema["/api/v1/tickets/{id}/events/"]["GET"].Case(headers=headers, path_parameters={"id": ticket.pk})
        response = case.call()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    assert response.status_code == 200 and response.json()[0]["from_status"] == ""
    case.validate_response(response, checks=[response_schema_conformance])


# --- key-account lists ignore ?account=: a client asking for one account's plans got every account's -------


def test_plans_agreements_and_proposals_are_listed_for_the_account_asked_for(
    api_for, users, with_plan, xiehe, ruijin
):
    """The key-account team, meeting, trial and review lists take ?account= (docs/api.md); plans, agreements
    and proposals ignored it, so an integration reading account A's service plan got account B's as well —
    and, taking the first, showed B's goals and items under A."""
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.keyaccounts import services as ka

    first, _plan = with_plan(xiehe)
    second, plan2 = with_plan(ruijin)
    start = timezone.localdate()
    agreement = ka.generate_agreement(users["kam"], second, start_date=start, end_date=start + dt.timedelta(days=300))
    c = api_for("manager")
    plans = c.get("/api/v1/keyaccounts/plans/", {"account": second.pk}).json()
    assert [p["id"] for p in plans["results"]] == [plan2.pk]
    assert c.get("/api/v1/keyaccounts/agreements/", {"account": first.pk}).json()["count"] == 0
    agreements = c.get("/api/v1/keyaccounts/agreements/", {"account": second.pk}).json()
    assert [a["id"] for a in agreements["results"]] == [agreement.pk]
    proposals = c.get("/api/v1/keyaccounts/proposals/", {"institution": xiehe.pk}).json()
    assert proposals["count"] == 1 and proposals["results"][0]["institution"] == xiehe.pk
    assert c.get("/api/v1/keyaccounts/proposals/", {"status": "approved"}).json()["count"] == 2
    # a value that cannot be an id is a 400 naming the parameter, not the whole list
    wrong = c.get("/api/v1/keyaccounts/plans/", {"account": "KA-2026-0001"})
    assert wrong.status_code == 400 and "account" in wrong.json()


# --- the audit viewer shows an order line's amounts under their code names, in every language ---------------


def test_an_order_lines_amounts_are_labelled_in_the_audit_viewer(users, client_for, xiehe):
    """Removing an order line (and correcting one by re-import) records `amount` and `paid_amount` — the
    order file's names, not the model's amount_fen / paid_fen — and the viewer printed them as they are:
    'paid_amount' in English, and in the middle of the Simplified and Traditional Chinese pages."""
    import datetime as dt
    import re

    from pharmacrm.sales import services as sales
    from pharmacrm.sales.models import OrderLine

    day = dt.date(2026, 3, 2)
    line = OrderLine.objects.create(
        order_number="SO-Q20", line_number=1, order_date=day, month=day.replace(day=1), institution=xiehe,
        product_code="P1", quantity=10, unit_price=100, amount_fen=100_000, paid_date=day, paid_fen=100_000,
        row_hash=1,
    )  # fmt: skip
    sales.remove_line(users["manager"], line, "ERP 中该行已删除")
    page = client_for("auditor").get("/accounts/audit/", {"action": "delete"}, HTTP_ACCEPT_LANGUAGE="en")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.content.decode()))
    assert "SO-Q20/1" in text
    assert "paid_amount" not in text and " amount " not in text
    assert "Amount 1000.00" in text and "Paid 1000.00" in text


def test_a_safety_flags_seriousness_is_labelled_in_the_audit_viewer():
    """The net's flag entries record `serious`, which the safety.flag model has no field for: the Chinese
    pages printed the English key."""
    from django.utils import translation

    from pharmacrm.core.templatetags.crm import audit_label

    with translation.override("zh-hans"):
        assert audit_label("safety.flag", "serious") == "严重"  # the catalogue's existing "Serious"


# --- the audit API finds less than the audit page for the same question -------------------------------------


def test_the_audit_api_finds_a_days_entries_and_a_user_by_name_as_the_page_does(api_for, client_for, users):
    """The page's "To" date includes that day and its user box takes a username or display name in either
    case; the API's `to=2026-03-31` stopped at that day's first second and `actor_name` was the exact
    username only — so an auditor asking the API for yesterday's entries by 'Manager' got none of them."""
    from django.utils import timezone

    from pharmacrm.core import audit

    manager = users["manager"]
    manager.display_name = "李国强"
    manager.save()
    entry = audit.record(A.EXPORT, ("customers.person", "", "3"), user=manager, count=3)
    today = timezone.localdate(entry.at).isoformat()
    api = api_for("auditor")

    def seqs(**params):
        response = api.get("/api/v1/audit/", params)
        assert response.status_code == 200, response.content
        return [e["seq"] for e in response.json()["results"]]

    assert entry.seq in seqs(**{"from": today, "to": today})
    for name in ("manager", "Manager", "李国强"):
        assert seqs(actor_name=name) == [entry.seq], name
    # a moment stays exclusive
    assert entry.seq not in seqs(to=entry.at.isoformat())
    # the page finds the same
    page = client_for("auditor").get("/accounts/audit/", {"actor": "Manager", "date_from": today, "date_to": today})
    assert f"#{entry.seq}" in page.content.decode() or str(entry.seq) in page.content.decode()


# --- the supervisor board's intake names categories in Simplified Chinese whatever the language --------------


def test_the_boards_intake_names_categories_in_the_readers_language(api_for, users, xiehe):
    """The board page lists today's intake under each category's translated name (“Medication error”); the
    API gave only the stored name, 用药错误, to an English or Traditional Chinese client."""
    from pharmacrm.servicedesk import services as desk

    desk.create_ticket(users["agent"], {"subject": "询问说明书", "channel": "phone", "category": "drug_info",
                                        "institution": xiehe})  # fmt: skip
    board = api_for("manager", lang="en").get("/api/v1/service-board/")
    assert board.status_code == 200
    rows = {row["category"]: row for row in board.json()["intake"]}
    assert rows["drug_info"]["count"] == 1
    assert rows["drug_info"]["label"] == "Drug information enquiry", rows["drug_info"]
    assert rows["drug_info"]["name"] == "药品信息咨询"  # the stored name, as before


# --- the API creates "Agent" beside "agent"; the Users page refuses it -------------------------------------


def test_a_username_differing_only_in_letter_case_is_refused_as_on_the_users_page(api_for, users):
    """The Users page says "A user with this username already exists." for "Agent" when "agent" exists; the API
    created it, leaving two accounts the audit trail (which finds users in either case) cannot tell apart."""
    from pharmacrm.core.models import User

    c = api_for("admin")
    created = c.post("/api/v1/users/", {"username": "Agent", "display_name": "另一个坐席", "roles": ["agent"],
                                        "password": "Zz-very-long-pass-2026"}, format="json")  # fmt: skip
    assert created.status_code == 400, created.content
    assert created.json() == {"username": ["A user with this username already exists."]}
    assert not User.objects.filter(username="Agent").exists()
    # renaming another user into it is refused too, and a user keeps their own name in another case
    support = users["support"]
    renamed = c.patch(f"/api/v1/users/{support.pk}/", {"username": "AGENT", "version": support.version}, format="json")
    assert renamed.status_code == 400 and "username" in renamed.json()
    recased = c.patch(f"/api/v1/users/{support.pk}/", {"username": "Support", "version": support.version}, format="json")
    assert recased.status_code == 200 and recased.json()["username"] == "Support"


# --- an answer template fills in an unidentified caller's name in clear, and nobody knows it was read ---------


def test_filling_in_an_unidentified_callers_name_is_an_audited_read(api_for, users):
    """The caller's name is encrypted personal data: the ticket page and the ticket API audit every clear read,
    but rendering an answer template with {customer} returned 王建国 to a key-account manager with no entry
    in the audit trail. Roles that see it masked get "customer" and nothing to audit."""
    from pharmacrm.servicedesk import knowledge
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(users["agent"], {"subject": "来电咨询", "channel": "phone", "category": "drug_info",
                                                 "caller_name": "王建国", "caller_phone": "13912345678"})  # fmt: skip
    template = knowledge.create_template(users["admin"], {"name": "问候", "body": "{customer}您好，关于 {ticket}"})
    url = f"/api/v1/answer-templates/{template.pk}/render/"
    reads = AuditEntry.objects.filter(action=A.READ_PERSONAL, object_type="servicedesk.ticket",
                                      object_id=str(ticket.pk))  # fmt: skip

    rendered = api_for("kam").get(url, {"ticket": ticket.pk})
    assert rendered.status_code == 200 and rendered.json()["body"].startswith("王建国您好")
    entry = reads.get()
    assert entry.actor == users["kam"] and entry.extra["fields"] == ["caller_name"]

    masked = api_for("agent").get(url, {"ticket": ticket.pk})
    assert "王建国" not in masked.json()["body"]
    assert reads.count() == 1


# --- the auditor is told which fields a key-account write lacks, as if it could make it ----------------------


@pytest.mark.parametrize(
    "url",
    ["/api/v1/keyaccounts/meetings/", "/api/v1/keyaccounts/trials/", "/api/v1/keyaccounts/account-reviews/run/",
     "/api/v1/keyaccounts/plan-items/1/progress/"],
)  # fmt: skip
def test_the_auditor_is_refused_a_key_account_write_at_once_and_the_attempt_audited(api_for, users, url):
    """The auditor reads everything and changes nothing: these endpoints answered the auditor's POST with
    400 "This field is required." (and nothing in the audit trail), as if filling the fields would do."""
    answer = api_for("auditor").post(url, {}, format="json")
    assert answer.status_code == 403, answer.content
    assert AuditEntry.objects.filter(action=A.ACCESS_DENIED, actor=users["auditor"]).exists()
    # other readers still get the field messages (their right to write is decided per account)
    assert api_for("kam").post(url, {}, format="json").status_code in (400, 404)
