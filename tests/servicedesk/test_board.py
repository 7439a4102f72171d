"""The supervisor board (who sees it, what each section holds, a query count independent of the data),
an agent's open tickets, the on-duty switch and the assignment settings pages."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from pharmacrm.core.models import AuditEntry, Team
from pharmacrm.core.roles import Role
from pharmacrm.servicedesk import routing, services
from pharmacrm.servicedesk.choices import AssignMethod
from pharmacrm.servicedesk.models import AgentProfile, AssignmentRule, Ticket

BOARD = reverse("servicedesk:board")


@pytest.fixture
def desk(make_user):
    """Two teams: 一组 led by `lead1` (an agent) with a1, a2; 二组 with b1."""
    lead = make_user("lead1", Role.AGENT)
    one = Team.objects.create(name="一组", lead=lead)
    two = Team.objects.create(name="二组")
    lead.teams.add(one)
    a1 = make_user("a1", Role.AGENT, teams=[one])
    a2 = make_user("a2", Role.AGENT, teams=[one])
    b1 = make_user("b1", Role.AGENT, teams=[two])
    return {"one": one, "two": two, "lead": lead, "a1": a1, "a2": a2, "b1": b1}


def login(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def raise_ticket(
    users, xiehe, *, team, assignee=None, category="medication_error", hours_ago=0.0, subject="s"
):
    """An urgent ticket (24×7: first response 2 h) received `hours_ago`."""
    received = timezone.now() - dt.timedelta(hours=hours_ago)
    return services.create_ticket(users["manager"], {"subject": subject, "channel": "phone", "category": category,
                                                     "institution": xiehe, "received_at": received, "team": team,
                                                     "assignee": assignee})  # fmt: skip


@pytest.fixture
def tickets(desk, users, xiehe):
    out = {
        "soon": raise_ticket(
            users, xiehe, team=desk["one"], assignee=desk["a1"], hours_ago=1, subject="soon"
        ),
        "late": raise_ticket(
            users, xiehe, team=desk["one"], assignee=desk["a1"], hours_ago=3, subject="late"
        ),
        "calm": raise_ticket(
            users, xiehe, team=desk["one"], assignee=desk["a2"], category="drug_info", subject="calm"
        ),
        "other": raise_ticket(
            users, xiehe, team=desk["two"], assignee=desk["b1"], hours_ago=3, subject="other"
        ),
    }
    services.sweep(timezone.now())  # records the breaches
    return out


def numbers(rows, attr="number"):
    return {getattr(r, attr) for r in rows}


def received_today(*tickets) -> list:
    """The tickets received on today's date in China: the board's intake counts those. Between midnight and
    the early hours, a ticket received hours ago is yesterday's, so the expectation follows the clock."""
    today = timezone.localdate()
    return [t for t in tickets if timezone.localtime(t.received_at).date() == today]


# --- access ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "code"), [(r.value, 200 if r in (Role.ADMIN, Role.MANAGER) else 403) for r in Role]
)
def test_board_access_per_role(client_for, role, code):
    assert client_for(role).get(BOARD).status_code == code


def test_anonymous_is_sent_to_log_in(client):
    assert client.get(BOARD).status_code == 302


def test_a_team_lead_sees_the_board_of_their_team_only(desk, tickets):
    c = login(desk["lead"])
    r = c.get(BOARD)
    assert r.status_code == 200
    board = r.context["board"]
    assert numbers(board.breached) == {tickets["late"].number}
    assert {a.user.username for a in board.agents} == {"lead1", "a1", "a2"}
    assert c.get(BOARD, {"team": desk["two"].pk}).status_code == 200  # not offered: the filter ignores it
    assert c.get(BOARD, {"team": desk["two"].pk}).context["team"] is None


# --- sections ----------------------------------------------------------------------------------------------


def test_board_sections(client_for, desk, tickets):
    r = client_for("manager").get(BOARD)
    board = r.context["board"]
    assert numbers([c.ticket for c in board.soon]) == {tickets["soon"].number}
    assert board.soon_count == 1
    assert numbers(board.breached) == {tickets["late"].number, tickets["other"].number}
    load = {a.user.username: (a.total, a.heavy, a.overdue, a.on_duty) for a in board.agents}
    assert load["a1"] == (2, 2, 1, True)
    assert load["a2"] == (1, 0, 0, True)
    assert load["b1"] == (1, 1, 1, True)
    intake = {c.code: n for c, n in board.intake}
    today = received_today(*tickets.values())  # "calm" was received just now: never empty
    expected = {code: sum(1 for t in today if t.category.code == code) for code in ("medication_error", "drug_info")}
    assert {code: intake[code] for code in expected} == expected and board.intake_total == len(today)
    html = r.content.decode()
    assert "vendor/echarts/echarts.min.js" in html and 'id="intake-data"' in html
    chart = json.loads(html.split('id="intake-data" type="application/json">')[1].split("</script>")[0])
    assert sum(chart["values"]) == len(today)
    assert reverse("servicedesk:agent-tickets", args=[desk["a1"].pk]) in html


def test_filter_by_team(client_for, desk, tickets):
    board = client_for("manager").get(BOARD, {"team": desk["two"].pk}).context["board"]
    assert numbers(board.breached) == {tickets["other"].number}
    assert {a.user.username for a in board.agents} == {"b1"}
    assert board.intake_total == len(received_today(tickets["other"]))  # team two's only ticket, if today's


def test_resolved_and_fulfilled_work_leaves_the_board(client_for, desk, tickets, users):
    services.record_response(users["manager"], tickets["soon"])
    board = client_for("manager").get(BOARD).context["board"]
    assert board.soon_count == 0


def test_off_duty_agents_are_flagged(client_for, desk, tickets):
    AgentProfile.objects.create(user=desk["a2"], on_duty=False)
    board = client_for("manager").get(BOARD).context["board"]
    assert next(a for a in board.agents if a.user.username == "a2").on_duty is False


def test_intake_counts_china_today_only(client_for, desk, users, xiehe):
    raise_ticket(users, xiehe, team=desk["one"], category="drug_info", hours_ago=0)
    raise_ticket(users, xiehe, team=desk["one"], category="drug_info", hours_ago=30)  # yesterday in Shanghai
    assert client_for("manager").get(BOARD).context["board"].intake_total == 1


@pytest.mark.parametrize("extra", [0, 12])
def test_board_query_count_does_not_grow_with_the_data(client_for, desk, users, xiehe, extra,
                                                        django_assert_max_num_queries):  # fmt: skip
    for i in range(extra):
        member = desk["a1"] if i % 2 else desk["b1"]
        raise_ticket(
            users, xiehe, team=member.teams.first(), assignee=member, hours_ago=i % 4, subject=f"t{i}"
        )
        AgentProfile.objects.get_or_create(user=member)
    services.sweep(timezone.now())
    c = client_for("manager")
    with django_assert_max_num_queries(16):
        assert c.get(BOARD).status_code == 200


# --- an agent's tickets -------------------------------------------------------------------------------------


def test_agent_tickets_page(client_for, desk, tickets):
    url = reverse("servicedesk:agent-tickets", args=[desk["a1"].pk])
    r = client_for("manager").get(url)
    assert r.status_code == 200
    assert numbers(r.context["rows"]) == {tickets["soon"].number, tickets["late"].number}
    assert login(desk["a1"]).get(url).status_code == 200  # their own
    assert login(desk["a2"]).get(url).status_code == 403
    lead_view = login(desk["lead"]).get(reverse("servicedesk:agent-tickets", args=[desk["b1"].pk]))
    assert lead_view.status_code == 200 and lead_view.context["rows"] == []  # not their team's tickets


# --- on duty ---------------------------------------------------------------------------------------------------


def test_an_agent_switches_themselves_off_and_on_duty(desk):
    c = login(desk["a1"])
    url = reverse("servicedesk:on-duty")
    r = c.post(url, {"on_duty": "", "next": "/service/"})
    assert r.status_code == 302 and r["Location"] == "/service/"
    assert AgentProfile.objects.get(user=desk["a1"]).on_duty is False
    r = c.post(url, {"on_duty": "1"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and 'data-on-duty="1"' in r.content.decode()
    assert AgentProfile.objects.get(user=desk["a1"]).on_duty is True
    assert AuditEntry.objects.filter(object_type="servicedesk.agentprofile").count() == 2
    assert c.post(url, {"on_duty": "1", "next": "https://evil.example/"})["Location"] == reverse(
        "servicedesk:queue"
    )


def test_on_duty_switch_per_role(client_for):
    url = reverse("servicedesk:on-duty")
    for role in Role:
        code = client_for(role.value).post(url, {"on_duty": ""}).status_code
        assert code == (302 if role in (Role.ADMIN, Role.MANAGER, Role.KAM, Role.AGENT, Role.EXPERT, Role.SUPPORT,
                                        Role.AFTERSALES, Role.REP) else 403), role  # fmt: skip
    assert client_for("agent").get(url).status_code == 405


def test_on_duty_button_tag(desk, rf):
    from django.template import Context, Template

    request = rf.get("/service/")
    request.user = desk["a1"]
    html = Template("{% load routing_tags %}{% on_duty_button %}").render(Context({"request": request}))
    assert 'data-on-duty="1"' in html and reverse("servicedesk:on-duty") in html
    request.user = type(desk["a1"]).objects.create_user("nobody")
    assert (
        Template("{% load routing_tags %}{% on_duty_button %}").render(Context({"request": request})).strip()
        == ""
    )


# --- assignment settings ----------------------------------------------------------------------------------------


SETTINGS_PAGES = [
    "servicedesk:assignment-rules",
    "servicedesk:assignment-rule-create",
    "servicedesk:agent-profiles",
]


@pytest.mark.parametrize("name", SETTINGS_PAGES)
@pytest.mark.parametrize("role", [r.value for r in Role])
def test_settings_pages_per_role(client_for, role, name):
    code = client_for(role).get(reverse(name)).status_code
    assert code == (200 if role in ("admin", "manager") else 403)


def test_rule_pages_create_edit_reorder_deactivate(client_for, desk):
    c = client_for("manager")
    r = c.post(reverse("servicedesk:assignment-rule-create"),
               {"name": "用药差错", "team": desk["one"].pk, "method": "round_robin", "category": "",
                "region": "110000", "active": "on"})  # fmt: skip
    assert r.status_code == 302, r.context["form"].errors
    first = AssignmentRule.objects.get(name="用药差错")
    assert first.region_id == "110000" and first.method == AssignMethod.ROUND_ROBIN
    r = c.post(reverse("servicedesk:assignment-rule-create"), {"name": "bad", "team": desk["one"].pk,
                                                               "method": "queue", "region": "999999"})  # fmt: skip
    assert r.status_code == 400 and "region" in r.context["form"].errors
    c.post(reverse("servicedesk:assignment-rule-create"), {"name": "其余", "team": desk["two"].pk, "method": "queue",
                                                           "active": "on"})  # fmt: skip
    second = AssignmentRule.objects.get(name="其余")
    c.post(reverse("servicedesk:assignment-rule-move", args=[second.pk]), {"direction": "up"})
    assert list(AssignmentRule.objects.order_by("position").values_list("name", flat=True)) == [
        "其余",
        "用药差错",
    ]
    r = c.post(reverse("servicedesk:assignment-rule", args=[first.pk]),
               {"name": "用药差错（北京）", "team": desk["two"].pk, "method": "least_loaded", "region": "110000",
                "active": "on", "position": 5})  # fmt: skip
    assert r.status_code == 302
    first.refresh_from_db()
    assert (first.name, first.team, first.position) == ("用药差错（北京）", desk["two"], 5)
    c.post(reverse("servicedesk:assignment-rule-active", args=[first.pk]), {"version": first.version})
    first.refresh_from_db()
    assert first.active is False
    page = c.get(reverse("servicedesk:assignment-rules")).content.decode()
    assert "用药差错（北京）" in page and "其余" in page
    assert AuditEntry.objects.filter(object_type="servicedesk.assignmentrule").count() == 5
    assert (
        client_for("agent").post(reverse("servicedesk:assignment-rule-active", args=[first.pk])).status_code
        == 403
    )


def test_profile_pages(client_for, desk, users):
    c = client_for("manager")
    url = reverse("servicedesk:agent-profile", args=[desk["a1"].pk])
    assert c.get(url).status_code == 200
    from pharmacrm.servicedesk.models import TicketCategory

    skill = TicketCategory.objects.get(code="drug_info")
    r = c.post(url, {"max_open": "3", "skills": [skill.pk]})
    assert r.status_code == 302
    profile = AgentProfile.objects.get(user=desk["a1"])
    assert (profile.on_duty, profile.max_open, list(profile.skills.all())) == (False, 3, [skill])
    assert c.post(url, {"max_open": "0"}).status_code == 400
    assert c.get(reverse("servicedesk:agent-profile", args=[users["analyst"].pk])).status_code == 404
    assert "a1" in c.get(reverse("servicedesk:agent-profiles")).content.decode()
    assert client_for("agent").post(url, {"max_open": "50"}).status_code == 403


def test_demo_rules_route_demo_tickets(users, xiehe):
    routing.seed_demo()
    ticket = services.create_ticket(users["agent"], {"subject": "误服", "channel": "phone",
                                                     "category": "medication_error", "institution": xiehe})  # fmt: skip
    stored = Ticket.objects.select_related("team").get(pk=ticket.pk)
    assert stored.team.name == "医学信息组" and stored.assignee is not None


def test_the_board_counts_overdue_time_as_the_queue_does(client_for, desk, users, xiehe):
    """Working time on the clock's calendar (QA saw 1,288 h on the board and 292 h in the queue)."""
    from pharmacrm.servicedesk.views import clock_view, duration_text

    ticket = raise_ticket(users, xiehe, team=desk["one"], assignee=desk["a1"], category="drug_info", hours_ago=24 * 8)
    services.sweep(timezone.now())
    board = client_for("manager").get(BOARD).context["board"]
    [row] = [t for t in board.breached if t.number == ticket.number]
    clock = min((c for c in ticket.clocks.all() if c.fulfilled_at is None), key=lambda c: c.due_at)
    assert row.late in clock_view(clock, board.now).text  # the queue's badge says the same
    assert row.late != duration_text(board.now - clock.due_at)  # a business calendar: not the wall clock
