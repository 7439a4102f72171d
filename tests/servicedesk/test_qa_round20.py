"""Review round 20 (service desk): what agents, supervisors and customers noticed — a merged duplicate that
could be reopened and surveyed; a VIP hospital's doctors on the general SLA policy; met deadlines turned into
breaches by a priority or customer change after closure; a second caller's call lost as "sent again"; a ticket
reopened by a poor revisit, or handed over by the escalation ladder, without a word to its new holder; no
warning before a deadline that moved later; a caller's earlier ticket not found by phone from "My queue"."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from pharmacrm.servicedesk import bulk, linking, revisit, services
from pharmacrm.servicedesk.choices import EventKind, LowScore, Status
from pharmacrm.servicedesk.models import Ticket, TicketCategory, TicketEvent

SH = ZoneInfo("Asia/Shanghai")


def at(y, m, d, hh=0, mm=0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SH)


pytestmark = pytest.mark.usefixtures("english")  # the assertions read the English source messages


def token_of(link: str) -> str:
    return link.rstrip("/").rsplit("/", 1)[-1]


# --- a merged duplicate goes on in the ticket it was merged into ------------------------------------------


@pytest.fixture
def merged(users, raise_ticket):
    duplicate, survivor = raise_ticket("药品说明书丢失"), raise_ticket("说明书丢了，请再寄一份")
    linking.merge(users["agent"], duplicate, survivor, reason="同一位客户打了两次电话")
    duplicate.refresh_from_db()
    return duplicate, survivor


def test_a_merged_duplicate_cannot_be_reopened_by_hand_by_bulk_or_from_its_page(users, merged, client_for):
    duplicate, survivor = merged
    with pytest.raises(services.TransitionRefused) as e:
        services.transition(users["agent"], duplicate, Status.IN_PROGRESS, note="客户又来电")
    assert f"merged into {survivor.number}" in " ".join(e.value.messages)
    [outcome] = bulk.bulk(users["agent"], [duplicate.pk], "status", {"status": Status.IN_PROGRESS})
    assert outcome.outcome == bulk.REFUSED and survivor.number in outcome.message
    duplicate.refresh_from_db()
    assert duplicate.status == Status.CLOSED and duplicate.next_due_at is None  # not back in the queues
    page = client_for("agent").get(f"/service/tickets/{duplicate.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200 and 'value="in_progress"' not in page.content.decode()
    response = client_for("agent").post(
        f"/service/tickets/{duplicate.pk}/status/",
        {"to_status": Status.IN_PROGRESS, "version": duplicate.version}, HTTP_ACCEPT_LANGUAGE="en",
    )  # fmt: skip
    assert response.status_code == 409 and survivor.number in response.content.decode()
    assert Ticket.objects.get(pk=duplicate.pk).status == Status.CLOSED


def test_no_survey_or_phone_revisit_on_a_merged_duplicate(users, merged):
    duplicate, survivor = merged
    assert not revisit.may_survey(duplicate)
    with pytest.raises(ValidationError) as e:
        revisit.send_survey(users["agent"], duplicate)
    assert survivor.number in " ".join(e.value.messages)
    with pytest.raises(ValidationError):
        revisit.record_phone_revisit(users["agent"], duplicate, 5, True)


def test_a_poor_answer_to_a_link_sent_before_the_merge_reopens_the_survivor(users, raise_ticket):
    TicketCategory.objects.filter(code="drug_info").update(low_score_action=LowScore.REOPEN)
    duplicate, survivor = raise_ticket("说明书丢失"), raise_ticket("说明书丢了")
    for t in (duplicate, survivor):
        services.transition(users["agent"], t, Status.RESOLVED, resolution_summary="已寄出", root_cause="logistics")
    _survey, link = revisit.send_survey(users["agent"], duplicate)
    linking.merge(users["agent"], duplicate, survivor, reason="同一请求")
    survey = revisit.answer_survey(token_of(link), 1, False, "还是没收到")  # reopened the duplicate before
    assert survey.outcome == LowScore.REOPEN
    duplicate.refresh_from_db()
    survivor.refresh_from_db()
    assert duplicate.status == Status.CLOSED and survivor.status == Status.IN_PROGRESS
    assert TicketEvent.objects.filter(ticket=survivor, kind=EventKind.REOPENED).exists()


# --- a tighter SLA policy for a customer tier reaches the hospital's doctors and departments ------------------


def test_a_doctor_or_department_of_a_vip_hospital_gets_the_vip_policy(users, admin_user, xiehe):
    from pharmacrm.customers import services as customer_services
    from pharmacrm.servicedesk import policies
    from pharmacrm.servicedesk.models import SlaPolicy

    customer_services.update_institution(admin_user, xiehe, {"tier": "vip"}, version=xiehe.version)
    general = SlaPolicy.objects.get(name="一般问题（工作日）")
    vip = policies.create_policy(admin_user, {
        "name": "VIP 客户", "customer_tier": "vip", "calendar": general.calendar, "first_response": 2,
        "first_response_unit": "hours", "resolution": 1, "resolution_unit": "days",
    })  # fmt: skip
    doctor, department = xiehe.people.get(name="张伟"), xiehe.children.get(name="心内科")
    assert doctor.tier != "vip" and department.tier != "vip"
    for who in ({"institution": xiehe}, {"person": doctor}, {"institution": department}):
        ticket = services.create_ticket(users["agent"], {
            "subject": "咨询用法", "channel": "phone", "category": "drug_info", "received_at": at(2026, 3, 2, 9),
            **who,
        })  # fmt: skip
        assert ticket.boosted  # the boost already read the hospital's tier …
        assert ticket.policy == vip, who  # … and now the SLA policy does too (was the general one)
        first = ticket.clocks.get(kind="first_response")
        assert first.due_at == at(2026, 3, 2, 11)


# --- a closed ticket's met deadlines are never rewritten ---------------------------------------------------


def test_the_priority_of_a_resolved_or_closed_ticket_cannot_turn_a_met_deadline_into_a_breach(users, xiehe,
                                                                                             client_for):
    ticket = services.create_ticket(users["agent"], {
        "subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "received_at": at(2026, 3, 2, 9),
    })  # fmt: skip
    # resolved on Tuesday 15:00, well inside its two working days (due Wednesday 09:00), then closed
    services.transition(users["agent"], ticket, Status.RESOLVED, at=at(2026, 3, 3, 15), resolution_summary="已答复",
                        root_cause="usage")  # fmt: skip
    services.transition(users["agent"], ticket, Status.CLOSED, at=at(2026, 3, 3, 16))
    with pytest.raises(services.TransitionRefused) as e:
        services.change_priority(users["agent"], ticket, "urgent", reason="事后补记")
    assert "Reopen the ticket" in " ".join(e.value.messages)
    [outcome] = bulk.bulk(users["agent"], [ticket.pk], "priority", {"priority": "urgent", "reason": "事后补记"})
    assert outcome.outcome == bulk.REFUSED
    resolution = ticket.clocks.get(kind="resolution")
    assert resolution.breached_at is None and resolution.due_at == at(2026, 3, 4, 9)  # still met
    assert Ticket.objects.get(pk=ticket.pk).priority == "normal"
    page = client_for("agent").get(f"/service/tickets/{ticket.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    assert 'id="priority"' not in page.content.decode()  # the form is not offered on a closed ticket


def test_correcting_a_closed_tickets_customer_keeps_its_policy_priority_and_met_deadlines(users, admin_user, xiehe,
                                                                                         ruijin):
    from pharmacrm.customers import services as customer_services
    from pharmacrm.servicedesk import editing, policies
    from pharmacrm.servicedesk.models import SlaPolicy

    customer_services.update_institution(admin_user, ruijin, {"tier": "vip"}, version=ruijin.version)
    general = SlaPolicy.objects.get(name="一般问题（工作日）")
    policies.create_policy(admin_user, {
        "name": "VIP 客户", "customer_tier": "vip", "calendar": general.calendar, "first_response": 2,
        "first_response_unit": "hours", "resolution": 1, "resolution_unit": "days",
    })  # fmt: skip
    ticket = services.create_ticket(users["agent"], {
        "subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "received_at": at(2026, 3, 2, 9),
    })  # fmt: skip
    services.record_response(users["agent"], ticket, at=at(2026, 3, 2, 15))
    services.transition(users["agent"], ticket, Status.RESOLVED, at=at(2026, 3, 3, 15), resolution_summary="已答复",
                        root_cause="usage")  # fmt: skip
    services.transition(users["agent"], ticket, Status.CLOSED, at=at(2026, 3, 3, 16))
    # the agent finds out later that the caller was from 瑞金医院 (a VIP) and corrects the record
    editing.edit_ticket(users["agent"], ticket, {"institution": ruijin.pk}, version=ticket.version, reason="更正机构")
    ticket = Ticket.objects.get(pk=ticket.pk)
    assert ticket.institution_id == ruijin.pk  # corrected …
    assert (ticket.policy, ticket.priority, ticket.boosted) == (general, "normal", False)  # … nothing else moved
    assert not ticket.clocks.filter(breached_at__isnull=False).exists()  # both deadlines still met


# --- two callers with the same short question are two tickets ------------------------------------------------


def _intake(client, **data):
    import re

    html = client.get("/service/new/").content.decode()
    token = re.search(r'name="form_token" value="([^"]+)"', html).group(1)
    return client.post("/service/new/", {"form_token": token, "channel": "phone", "category": "drug_info",
                                         "subject": "咨询用法", "description": "", **data},
                       HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip


def test_two_unidentified_callers_asking_the_same_question_get_a_ticket_each(users, client_for):
    agent = client_for("agent")
    first = _intake(agent, caller_name="王先生", caller_phone="13912345678")
    second = _intake(agent, caller_name="李女士", caller_phone="13800001111")  # the next call, a minute later
    assert first.status_code == second.status_code == 302
    assert first["Location"] != second["Location"]  # was the first caller's ticket: 李女士's call was lost
    assert sorted(t.caller_name for t in Ticket.objects.all()) == ["李女士", "王先生"]
    # the same call sent again (Back, the page loaded anew) still opens the first ticket
    again = _intake(agent, caller_name="李女士", caller_phone="138 0000 1111")
    assert again["Location"] == second["Location"] and Ticket.objects.count() == 2


# --- a ticket reopened by a poor revisit is announced to its assignee ------------------------------------------


def test_the_assignee_is_told_when_a_poor_revisit_reopens_their_ticket(users, xiehe):
    from pharmacrm.notify.models import Notification

    TicketCategory.objects.filter(code="drug_info").update(low_score_action=LowScore.REOPEN)
    ticket = services.create_ticket(users["manager"], {
        "subject": "说明书看不懂", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "assignee": users["agent"],
    })  # fmt: skip
    services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已解释", root_cause="usage")
    _survey, link = revisit.send_survey(users["agent"], ticket)
    before = Notification.objects.filter(recipient=users["agent"]).count()
    revisit.answer_survey(token_of(link), 1, False, "还是不明白")
    ticket.refresh_from_db()
    assert ticket.status == Status.IN_PROGRESS and ticket.assignee == users["agent"]
    note = Notification.objects.filter(recipient=users["agent"]).order_by("-id").first()
    assert Notification.objects.filter(recipient=users["agent"]).count() == before + 1  # was silent
    assert note.kind == "ticket.reopened" and note.url == f"/service/tickets/{ticket.pk}/"
    assert note.shown_title == f"{ticket.number} was reopened after a poor revisit: 说明书看不懂"


# --- a deadline moved later gets its own 75 % warning -----------------------------------------------------------


def test_a_deadline_moved_later_is_warned_of_again_before_it_runs_out(users, xiehe):
    from pharmacrm.notify.models import Notification

    ticket = services.create_ticket(users["manager"], {
        "subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "received_at": at(2026, 3, 2, 9), "assignee": users["agent"], "priority": "urgent",
    })  # fmt: skip
    first = ticket.clocks.get(kind="first_response")  # 7×24, two hours: warned at 10:30, due 11:00
    assert (first.warn_at, first.due_at) == (at(2026, 3, 2, 10, 30), at(2026, 3, 2, 11))
    services.sweep(now=at(2026, 3, 2, 10, 35))

    def first_response_warnings():
        return TicketEvent.objects.filter(ticket=ticket, kind=EventKind.WARNED, data__clock="first_response").count()

    assert first_response_warnings() == 1
    # the caller is not in danger after all: an ordinary question, one working day to answer
    services.change_priority(users["agent"], ticket, "normal", reason="非紧急，只是咨询", at=at(2026, 3, 2, 10, 40))
    first.refresh_from_db()
    # 75 % of 7.5 working hours after Monday 09:00 (lunch 12:00-13:30) = 16:07:30; due Tuesday 09:00
    assert (first.warn_at, first.due_at) == (at(2026, 3, 2, 16, 7) + dt.timedelta(seconds=30), at(2026, 3, 3, 9))
    assert first.warned_at is None and first.next_check_at == first.warn_at
    before = Notification.objects.filter(recipient=users["agent"], kind="ticket.warning").count()
    services.sweep(now=at(2026, 3, 2, 16, 10))
    assert first_response_warnings() == 2  # was none: the next word was the breach on Tuesday morning
    assert Notification.objects.filter(recipient=users["agent"], kind="ticket.warning").count() == before + 1


# --- a caller's earlier tickets are found by phone or number wherever they are -------------------------------


def test_a_phone_or_number_search_finds_the_callers_ticket_held_by_a_colleague_or_closed(users, client_for, ruijin):
    from pharmacrm.servicedesk.choices import Channel

    ticket = services.create_ticket(services.SYSTEM, {
        "subject": "药品储存条件咨询", "category": "drug_info", "channel": Channel.WEB, "caller_name": "王先生",
        "caller_phone": "138 0013 8000",
    })  # fmt: skip
    services.assign(users["support"], ticket, assignee=users["support"])  # a colleague holds it
    other = services.create_ticket(users["agent"], {
        "subject": "其他问题", "category": "drug_info", "channel": Channel.PHONE, "institution": ruijin,
    })  # fmt: skip
    agent = client_for("agent")

    def found(client, q, **extra) -> bool:
        html = client.get("/service/", {"q": q, **extra}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
        return f'/service/tickets/{ticket.pk}/"' in html

    assert found(agent, "13800138000") and found(agent, ticket.number.lower())  # from "My queue": was not found
    services.transition(users["support"], ticket, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    services.transition(users["support"], ticket, Status.CLOSED)
    page = agent.get("/service/", {"q": "138 0013 8000"}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'/service/tickets/{ticket.pk}/"' in page and "open or closed" in page  # a week later, closed
    assert f'/service/tickets/{other.pk}/"' not in page
    assert not found(agent, "13800138000", status="waiting")  # a status chosen still narrows the search
    # words of a subject still filter the queue shown (here: the agent's own open tickets)
    assert not found(agent, "储存条件")
    # and a rep never finds a ticket outside their scope
    assert not found(client_for("rep"), "13800138000")


def test_a_merged_records_phone_finds_the_tickets_of_the_record_it_was_merged_into(
    users, client_for, xiehe, beijing
):
    """张伟 entered twice, merged: his tickets moved to the surviving record, while the copy's mobile stayed on the
    merged record. He rings from that mobile: the queue search by it found none of his tickets."""
    from pharmacrm.customers import services as customers
    from pharmacrm.customers.models import Person
    from pharmacrm.servicedesk.choices import Channel

    zhang = Person.objects.get(name="张伟")
    copy = customers.create_person(
        users["manager"], {"name": "张伟", "institution": xiehe, "mobile": "13900139000"}
    )
    branch = customers.create_institution(users["manager"], {"name": "协和医院东院", "kind": "hospital",
                                                             "region": beijing, "phone": "010-65295114"})  # fmt: skip
    asked = {"category": "drug_info", "channel": Channel.PHONE, "institution": xiehe}
    on_copy = services.create_ticket(users["agent"], {**asked, "subject": "询问用量", "person": copy})
    on_zhang = services.create_ticket(users["agent"], {**asked, "subject": "询问库存", "person": zhang})
    on_branch = services.create_ticket(
        users["agent"], {**asked, "subject": "询问发票", "institution": branch}
    )
    customers.merge(users["manager"], zhang, copy)
    customers.merge(users["manager"], xiehe, branch)
    page = client_for("agent").get("/service/", {"q": "139 0013 9000"}).content.decode()
    assert f'/service/tickets/{on_copy.pk}/"' in page and f'/service/tickets/{on_zhang.pk}/"' in page
    page = client_for("agent").get("/service/", {"q": "010-65295114"}).content.decode()
    assert f'/service/tickets/{on_branch.pk}/"' in page


# --- the agent who gets an overdue ticket at escalation level 2 is told ---------------------------------------


def test_the_agent_handed_an_overdue_ticket_by_the_ladder_is_told(users, xiehe):
    from pharmacrm.core.models import Team
    from pharmacrm.notify.models import Notification

    team = Team.objects.create(name="客服一组", lead=users["manager"])
    for name in ("agent", "expert"):
        users[name].teams.add(team)
    ticket = services.create_ticket(users["agent"], {
        "subject": "用药错误：剂量看错", "channel": "phone", "category": "medication_error", "institution": xiehe,
        "received_at": at(2026, 3, 2, 9), "assignee": users["agent"], "team": team,
    })  # fmt: skip
    services.sweep(at(2026, 3, 2, 11, 1))  # first response (7×24, 2 h) missed: level 1 tells the agent
    services.sweep(at(2026, 3, 2, 13, 1))  # level 2: nobody acted, the ticket goes to the expert
    ticket.refresh_from_db()
    assert ticket.assignee == users["expert"]
    told = [n.shown_title for n in Notification.objects.filter(recipient=users["expert"])]
    assert told == [f"{ticket.number} was handed to you after a missed deadline: 用药错误：剂量看错"]  # was []
    services.sweep(at(2026, 3, 2, 13, 5))
    assert Notification.objects.filter(recipient=users["expert"]).count() == 1  # once, not every tick
