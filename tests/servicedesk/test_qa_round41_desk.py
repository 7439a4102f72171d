"""Session 41 review of the service desk from the agents' and the support lead's daily work."""

from __future__ import annotations

import pytest
from django.utils import translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.servicedesk.models import Ticket, TicketEvent


def _responses(ticket: Ticket) -> int:
    return TicketEvent.objects.filter(ticket=ticket, kind="responded").count()


def _audited_responses(ticket: Ticket) -> int:
    return sum(1 for e in AuditEntry.objects.filter(object_id=str(ticket.pk)) if "responded" in (e.changes or {}))


def test_a_first_response_sent_twice_is_recorded_once_and_the_page_says_so(raise_ticket, client_for):
    """A double click on "Record response" (or Back and send) wrote the call back twice into the history and the
    audit trail; the second one is refused above the form, in the page's language, and nothing is written."""
    ticket = raise_ticket()
    client = client_for("agent")
    sent = {"channel": "phone", "summary": "已回电，告知饭后服用"}
    assert client.post(f"/service/tickets/{ticket.pk}/respond/", sent).status_code == 302
    again = client.post(f"/service/tickets/{ticket.pk}/respond/", sent)
    assert again.status_code == 400
    assert "该响应已于" in again.content.decode() and "未重复记录" in again.content.decode()
    assert _responses(ticket) == 1
    assert _audited_responses(ticket) == 1


def test_a_further_response_with_other_words_or_by_a_colleague_is_recorded(users, raise_ticket, client_for):
    ticket = raise_ticket()
    agent = client_for("agent")
    assert agent.post(f"/service/tickets/{ticket.pk}/respond/", {"channel": "phone", "summary": "已回电"}).status_code == 302
    assert agent.post(f"/service/tickets/{ticket.pk}/respond/", {"channel": "email", "summary": "已回电"}).status_code == 302
    assert agent.post(f"/service/tickets/{ticket.pk}/respond/", {"channel": "phone", "summary": "再次回电"}).status_code == 302
    manager = client_for("manager")
    assert manager.post(f"/service/tickets/{ticket.pk}/respond/", {"channel": "phone", "summary": "已回电"}).status_code == 302
    assert _responses(ticket) == 4


def test_the_api_refuses_the_same_response_again_in_english(raise_ticket, api_for):
    ticket = raise_ticket()
    api = api_for("agent", lang="en")
    body = {"channel": "phone", "summary": "Called back"}
    assert api.post(f"/api/v1/tickets/{ticket.pk}/respond/", body, format="json").status_code == 201
    again = api.post(f"/api/v1/tickets/{ticket.pk}/respond/", body, format="json")
    assert again.status_code == 400
    assert "This response was already recorded at" in str(again.json())
    assert _responses(ticket) == 1


def test_the_refusal_reads_in_traditional_chinese(users, raise_ticket):
    from django.core.exceptions import ValidationError

    from pharmacrm.servicedesk import services

    ticket = raise_ticket()
    services.record_response(users["agent"], ticket, channel="phone", summary="已回電")
    with translation.override("zh-hant"), pytest.raises(ValidationError) as exc:
        services.record_response(users["agent"], ticket, channel="phone", summary="已回電")
    assert "未重複記錄" in " ".join(exc.value.messages)


# --- the board's count per agent and the list behind it ------------------------------------------------------


@pytest.fixture
def two_teams(make_user, users, xiehe):
    """b1 holds tickets in two teams: 一组 (led by lead1) and 二组."""
    from pharmacrm.core.models import Team
    from pharmacrm.core.roles import Role
    from pharmacrm.servicedesk import services

    lead = make_user("lead1", Role.AGENT)
    one = Team.objects.create(name="一组", lead=lead)
    two = Team.objects.create(name="二组")
    lead.teams.add(one)
    agent = make_user("b1", Role.AGENT, teams=[one, two])

    def ticket(team, subject):
        return services.create_ticket(users["manager"], {"subject": subject, "channel": "phone", "category": "drug_info",
                                                         "institution": xiehe, "team": team, "assignee": agent})  # fmt: skip

    made = {"one": ticket(one, "一组的"), "two": [ticket(two, "二组的 1"), ticket(two, "二组的 2")]}
    return {"one": one, "two": two, "lead": lead, "agent": agent, **{f"t_{k}": v for k, v in made.items()}}


def _row_count(html: str, username: str) -> int:
    import re

    row = re.search(rf'<tr data-agent="{username}">(.*?)</tr>', html, re.S).group(1)
    return int(re.findall(r'<td class="num[^"]*">(\d+)', row)[0])


def test_the_agents_list_behind_a_team_board_holds_what_the_board_counted(client_for, two_teams):
    """A manager who chose 一组 on the board read "1 open" for b1, and b1's link listed 3 tickets (every team's):
    the link now carries the team, the list names it and holds the one ticket counted."""
    manager = client_for("manager")
    board = manager.get(f"/service/board/?team={two_teams['one'].pk}").content.decode()
    assert _row_count(board, "b1") == 1
    link = f"/service/board/agents/{two_teams['agent'].pk}/?team={two_teams['one'].pk}"
    assert link in board
    page = manager.get(link)
    assert page.status_code == 200
    assert [t.number for t in page.context["rows"]] == [two_teams["t_one"].number]
    assert page.context["total"] == 1
    html = page.content.decode()
    assert "仅列出团队 一组 的工单" in html
    # without a team chosen the board counts every team, and so does the list
    board = manager.get("/service/board/").content.decode()
    assert _row_count(board, "b1") == 3
    assert manager.get(f"/service/board/agents/{two_teams['agent'].pk}/").context["total"] == 3


def test_a_team_lead_may_not_list_another_teams_tickets_through_the_team_filter(two_teams):
    from django.test import Client

    lead = Client()
    lead.force_login(two_teams["lead"])
    base = f"/service/board/agents/{two_teams['agent'].pk}/"
    assert lead.get(f"{base}?team={two_teams['one'].pk}").context["total"] == 1
    assert lead.get(f"{base}?team={two_teams['two'].pk}").status_code == 403
    missing = lead.get(f"{base}?team=abc")
    assert missing.status_code == 404
    assert lead.get(f"{base}?team=999999").status_code == 404


@pytest.mark.parametrize("role", ["agent", "rep", "analyst", "auditor", "pv"])
def test_the_team_filter_opens_no_board_to_roles_without_one(client_for, two_teams, role):
    assert client_for(role).get(
        f"/service/board/agents/{two_teams['agent'].pk}/?team={two_teams['one'].pk}"
    ).status_code == 403


# --- the queue's look-up --------------------------------------------------------------------------------------


def test_a_phone_look_up_with_a_status_chosen_lists_newest_first_as_the_page_says(users, client_for):
    """The page said "2 tickets found …, newest first." above a list in deadline order (the oldest first) once a status was
    chosen to narrow the look-up."""
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.servicedesk import services

    def call(hours_ago):
        return services.create_ticket(users["agent"], {
            "subject": "询问用法", "channel": "phone", "category": "drug_info", "caller_name": "李女士",
            "caller_phone": "13912345678", "received_at": timezone.now() - dt.timedelta(hours=hours_ago),
        })  # fmt: skip

    older, newer = call(30), call(1)
    assert older.status == newer.status
    page = client_for("agent").get("/service/", {"q": "13912345678", "status": older.status})
    assert [t.number for t in page.context["rows"]] == [newer.number, older.number]
    assert "找到 2 个工单，最新的在前" in page.content.decode()
