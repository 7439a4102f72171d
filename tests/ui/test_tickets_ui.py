"""The service desk's pages: queues sorted by the next deadline with SLA badges, intake with per-field
errors, the ticket page with its clocks, history and actions, what each role sees and may do, an
optimistic-lock conflict that keeps the input, the tickets on the Customer 360 pages, and a pinned
number of queries for the queue."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.servicedesk import services
from pharmacrm.servicedesk.choices import ClockKind, Status
from pharmacrm.servicedesk.models import SlaClock, Ticket

READ_ONLY = ["auditor", "analyst", "pv"]


def ago(**kwargs) -> dt.datetime:
    return timezone.now() - dt.timedelta(**kwargs)


@pytest.fixture
def raise_ticket(users, xiehe):
    def make(subject="咨询用法", category="drug_info", user="agent", **extra):
        data = {"subject": subject, "channel": "phone", "category": category, "institution": xiehe, **extra}
        return services.create_ticket(users[user], data)

    return make


def _section(page: str, marker: str) -> str:
    """The HTML of one form field (or section) of a page, up to the next field."""
    return page.split(marker)[1].split('id="field-')[0]


def _rows(page: str) -> list[tuple[str, str]]:
    """(number, SLA state) of the queue's rows, in order."""
    return re.findall(r'class="ticket-row" data-number="([^"]+)" data-sla="([^"]+)"', page)


# --- queues --------------------------------------------------------------------------------------


@pytest.fixture
def three_urgent(raise_ticket, users):
    """Medication errors on the 24×7 clock (first response 2 h): received 3 h ago (missed), 1 h 40 min
    ago (past the 75 % warning), and just now; all assigned to the agent."""
    agent = users["agent"]
    fresh = raise_ticket("刚接到", "medication_error", received_at=ago(minutes=1), assignee=agent)
    breached = raise_ticket("早已超时", "medication_error", received_at=ago(hours=3), assignee=agent)
    warned = raise_ticket("即将到期", "medication_error", received_at=ago(hours=1, minutes=40), assignee=agent)
    return breached, warned, fresh


def test_my_queue_is_sorted_by_the_next_deadline_with_coloured_badges(client_for, three_urgent):
    breached, warned, fresh = three_urgent
    page = client_for("agent").get("/service/").content.decode()
    assert _rows(page) == [(breached.number, "breached"), (warned.number, "warned"), (fresh.number, "ok")]
    assert 'class="sla sla-breached"' in page and 'class="sla sla-warned"' in page and 'class="sla sla-ok"' in page
    # the first response was due an hour ago: the badge says overdue once, then by how much
    assert re.search(r'class="sla sla-breached"[^>]*>Overdue</span> <span class="sla-left small">1 h</span>', page)
    assert "1 h overdue" not in page
    assert re.search(r"1 h 5\d min left", page)


def test_a_ticket_waiting_on_the_customer_shows_a_grey_badge(client_for, users, raise_ticket):
    ticket = raise_ticket(assignee=users["agent"])
    services.transition(users["agent"], ticket, Status.WAITING)
    page = client_for("agent").get("/service/").content.decode()
    assert _rows(page) == [(ticket.number, "paused")]
    assert 'class="sla sla-paused"' in page


def test_the_queues_hold_what_their_names_say(client_for, users, raise_ticket):
    mine = raise_ticket("我的", assignee=users["agent"])
    unassigned = raise_ticket("无人处理")
    others = raise_ticket("别人的", assignee=users["expert"])
    closed = raise_ticket("已解决", assignee=users["agent"])
    services.transition(users["agent"], closed, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    client = client_for("agent")
    my_queue = [n for n, _s in _rows(client.get("/service/").content.decode())]
    assert my_queue == [mine.number]
    team = [n for n, _s in _rows(client.get("/service/?queue=team").content.decode())]
    assert team == [unassigned.number]
    assert client.get("/service/?queue=all").status_code == 403  # only managers see every open ticket
    everything = {n for n, _s in _rows(client_for("manager").get("/service/?queue=all").content.decode())}
    assert everything == {mine.number, unassigned.number, others.number}
    resolved = client.get("/service/?status=resolved").content.decode()
    assert [n for n, _s in _rows(resolved)] == [closed.number]


def test_the_queue_filters_by_priority_and_category(client_for, users, raise_ticket):
    agent = users["agent"]
    urgent = raise_ticket("用药错误", "medication_error", assignee=agent)
    normal = raise_ticket("咨询", "drug_info", assignee=agent)
    client = client_for("agent")
    by_priority = client.get("/service/?priority=urgent").content.decode()
    assert [n for n, _s in _rows(by_priority)] == [urgent.number]
    category = normal.category_id
    by_category = client.get(f"/service/?category={category}").content.decode()
    assert [n for n, _s in _rows(by_category)] == [normal.number]


def test_the_queue_needs_the_same_number_of_queries_for_many_tickets(
    client_for, users, raise_ticket, django_assert_max_num_queries
):
    client = client_for("agent")
    for i in range(3):
        raise_ticket(f"工单{i}", "medication_error", assignee=users["agent"])
    client.get("/service/")  # warm the session and the calendars
    # 9 + the bulk form's assignees and teams, the on-duty switch, whether the user leads a team
    with django_assert_max_num_queries(13):
        few = client.get("/service/")
    assert len(_rows(few.content.decode())) == 3
    for i in range(3, 40):
        raise_ticket(f"工单{i}", "drug_info" if i % 2 else "medication_error", assignee=users["agent"])
    with django_assert_max_num_queries(13):
        many = client.get("/service/")
    assert len(_rows(many.content.decode())) == 40


def test_a_scoped_queue_also_needs_a_fixed_number_of_queries(
    client_for, raise_ticket, ruijin, django_assert_max_num_queries
):
    for i in range(20):
        raise_ticket(f"工单{i}")
    client = client_for("rep")
    client.get("/service/?queue=team")
    with django_assert_max_num_queries(16):  # 15 + the team ids, read once
        page = client.get("/service/?queue=team").content.decode()
    assert len(_rows(page)) == 20


# --- roles ---------------------------------------------------------------------------------------


def test_every_role_finds_the_tickets_in_the_navigation(client_for):
    for role in ("agent", "rep", "auditor"):
        page = client_for(role).get("/").content.decode()
        assert 'href="/service/"' in page, role


@pytest.mark.parametrize("role", READ_ONLY)
def test_read_only_roles_see_a_ticket_but_cannot_act_on_it(client_for, raise_ticket, role):
    ticket = raise_ticket()
    client = client_for(role)
    page = client.get(f"/service/tickets/{ticket.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert ticket.number in html and "咨询用法" in html
    assert "/status/" not in html and "/respond/" not in html and "/priority/" not in html
    assert 'href="/service/new/"' not in client.get("/service/?queue=team").content.decode()
    for action, data in (
        ("status", {"to_status": "in_progress", "version": ticket.version}),
        ("respond", {"channel": "phone", "summary": "x"}),
        ("priority", {"priority": "urgent", "complexity": "general", "reason": "x", "version": ticket.version}),
    ):
        assert client.post(f"/service/tickets/{ticket.pk}/{action}/", data).status_code == 403
    assert client.get("/service/new/").status_code == 403
    assert Ticket.objects.get(pk=ticket.pk).status == Status.NEW


def test_a_rep_sees_only_tickets_of_customers_in_their_territory(client_for, users, raise_ticket, ruijin):
    beijing = raise_ticket("北京的问题")
    shanghai = raise_ticket("上海的问题", institution=ruijin)
    client = client_for("rep")
    assert client.get(f"/service/tickets/{beijing.pk}/").status_code == 200
    assert client.get(f"/service/tickets/{shanghai.pk}/").status_code == 404
    assert client.post(
        f"/service/tickets/{shanghai.pk}/status/", {"to_status": "in_progress", "version": shanghai.version}
    ).status_code == 404
    team = client.get("/service/?queue=team").content.decode()
    assert beijing.number in team and shanghai.number not in team
    # a rep handles tickets: the actions are there
    assert f"/service/tickets/{beijing.pk}/status/" in client.get(f"/service/tickets/{beijing.pk}/").content.decode()


# --- intake --------------------------------------------------------------------------------------


def _intake(**overrides) -> dict:
    data = {"channel": "phone", "category": "drug_info", "subject": "询问说明书", "description": "患者询问用量"}
    data.update(overrides)
    return data


def test_intake_creates_the_ticket_and_names_its_number(client_for, xiehe, doctor):
    client = client_for("agent")
    received = timezone.localtime() - dt.timedelta(hours=2)
    response = client.post(
        "/service/new/",
        _intake(institution=xiehe.pk, person=doctor.pk, received_at=received.strftime("%Y-%m-%dT%H:%M"),
                batch_number="B20260101"),
    )  # fmt: skip
    ticket = Ticket.objects.get(subject="询问说明书")
    assert response.status_code == 302 and response["Location"] == f"/service/tickets/{ticket.pk}/"
    assert re.fullmatch(r"TK-\d{4}-000001", ticket.number)
    assert ticket.person == doctor and ticket.batch_number == "B20260101"
    assert ticket.received_at == received.replace(second=0, microsecond=0)
    page = client.get(response["Location"]).content.decode()
    assert f"Ticket {ticket.number} was created." in page
    assert f'href="/customers/people/{doctor.pk}/"' in page and f'href="/customers/institutions/{xiehe.pk}/"' in page


def test_a_ticket_received_in_the_future_is_refused_under_its_field(client_for, xiehe):
    future = (timezone.localtime() + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = client_for("agent").post("/service/new/", _intake(institution=xiehe.pk, received_at=future))
    assert response.status_code == 400
    page = response.content.decode()
    assert "A ticket cannot be received in the future." in _section(page, 'id="field-received_at"')
    assert "询问说明书" in _section(page, 'id="field-subject"')  # the input is kept
    assert not Ticket.objects.exists()


def test_intake_explains_a_missing_customer_and_an_override_without_reason(client_for, xiehe):
    client = client_for("agent")
    nobody = client.post("/service/new/", _intake()).content.decode()
    assert "Name the customer, or the caller" in _section(nobody, 'id="field-person"')
    override = client.post("/service/new/", _intake(institution=xiehe.pk, priority="high")).content.decode()
    assert "Give a reason when the priority" in _section(override, 'id="field-priority"')
    missing = client.post("/service/new/", _intake(institution=xiehe.pk, subject="", category="")).content.decode()
    assert "This field is required." in _section(missing, 'id="field-subject"')
    assert "This field is required." in _section(missing, 'id="field-category"')
    assert not Ticket.objects.exists()


def test_an_unidentified_caller_is_enough(client_for):
    response = client_for("agent").post("/service/new/", _intake(caller_name="王先生", caller_phone="13912345678"))
    assert response.status_code == 302
    ticket = Ticket.objects.get()
    assert ticket.caller_name == "王先生" and ticket.institution is None


def test_a_callers_phone_that_cannot_be_called_back_is_refused_under_its_field(client_for):
    page = client_for("agent").post("/service/new/", _intake(caller_name="张三", caller_phone="12345")).content.decode()
    field = _section(page, 'id="field-caller_phone"')
    assert "Enter a valid China mobile number" in field and 'value="12345"' in field
    assert not Ticket.objects.exists()


def test_choosing_an_institution_loads_its_people(client_for, xiehe, doctor, ruijin):
    page = client_for("agent").get(
        "/service/new/", {"_options": "person", "institution": xiehe.pk}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert f'<option value="{doctor.pk}">张伟 · 主任医师</option>' in page


def test_the_intake_pickers_offer_only_visible_customers(client_for, xiehe, ruijin):
    page = client_for("rep").get("/service/new/").content.decode()
    institution = _section(page, 'id="field-institution"')
    assert "北京协和医院" in institution and "瑞金" not in institution
    response = client_for("rep").post("/service/new/", _intake(institution=ruijin.pk))
    assert response.status_code == 400 and not Ticket.objects.exists()


def test_intake_from_a_customer_page_starts_with_that_customer(client_for, xiehe, doctor):
    page = client_for("agent").get(f"/service/new/?institution={xiehe.pk}&person={doctor.pk}").content.decode()
    assert f'<option value="{xiehe.pk}" selected>' in _section(page, 'id="field-institution"')
    assert f'<option value="{doctor.pk}" selected>' in _section(page, 'id="field-person"')


# --- the ticket page -----------------------------------------------------------------------------


def test_the_ticket_page_shows_facts_clocks_and_history(client_for, users, raise_ticket):
    ticket = raise_ticket("急", "medication_error", received_at=ago(hours=3), assignee=users["agent"])
    page = client_for("agent").get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert ticket.number in page and "Medication error" in page  # the shipped category, in English
    assert 'id="clock-first_response" data-sla="breached"' in page
    assert 'id="clock-resolution" data-sla="ok"' in page
    due = timezone.localtime(SlaClock.objects.get(ticket=ticket, kind=ClockKind.FIRST_RESPONSE).due_at)
    assert due.strftime("%Y-%m-%d %H:%M") in page  # local time (Asia/Shanghai)
    history = page.split('id="history"')[1]
    assert history.index("Received") < history.index("Status changed")  # newest last
    assert "New → Assigned" in history and "agent" in history


def test_the_buttons_are_exactly_the_allowed_steps(client_for, raise_ticket):
    ticket = raise_ticket()
    page = client_for("agent").get(f"/service/tickets/{ticket.pk}/").content.decode()
    offered = set(re.findall(r'name="go" value="([a-z_]+)"', page))
    assert offered == {"assigned", "in_progress", "waiting"}  # and resolve, with its summary
    assert 'name="resolution_summary"' in page


def test_steps_move_the_ticket_and_resolving_asks_for_a_summary(client_for, raise_ticket):
    ticket = raise_ticket()
    client = client_for("agent")
    url = f"/service/tickets/{ticket.pk}/status/"
    moved = client.post(url, {"to_status": "in_progress", "version": ticket.version})
    assert moved.status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == Status.IN_PROGRESS
    no_summary = client.post(url, {"to_status": "resolved", "version": ticket.version, "note": "已电话回复"})
    assert no_summary.status_code == 400
    page = no_summary.content.decode()
    assert "Summarise how the request was resolved." in _section(page, 'id="field-resolve-resolution_summary"')
    assert "已电话回复" in page
    done = client.post(url, {"to_status": "resolved", "version": ticket.version, "resolution_summary": "已说明用法",
                                "root_cause": "usage"})
    assert done.status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED and ticket.resolution_summary == "已说明用法"
    page = client.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert set(re.findall(r'name="go" value="([a-z_]+)"', page)) == {"informed", "closed", "in_progress"}
    assert ">Reopen<" in page


def test_a_refused_step_is_explained(client_for, raise_ticket):
    ticket = raise_ticket()
    response = client_for("agent").post(
        f"/service/tickets/{ticket.pk}/status/", {"to_status": "closed", "version": ticket.version}
    )
    assert response.status_code == 409
    assert "cannot become" in response.content.decode()
    assert Ticket.objects.get(pk=ticket.pk).status == Status.NEW


def test_a_conflict_keeps_the_input_and_the_second_try_applies_it(client_for, users, raise_ticket):
    ticket = raise_ticket()
    stale = ticket.version
    services.transition(users["manager"], ticket, Status.IN_PROGRESS)  # someone else, meanwhile
    client = client_for("agent")
    url = f"/service/tickets/{ticket.pk}/status/"
    response = client.post(url, {"to_status": "resolved", "version": stale, "resolution_summary": "已告知正确剂量",
                                    "root_cause": "usage"})
    assert response.status_code == 409
    page = response.content.decode()
    assert "Someone else changed this ticket" in page
    assert "已告知正确剂量" in _section(page, 'id="field-resolve-resolution_summary"')
    current = Ticket.objects.get(pk=ticket.pk)
    assert current.status == Status.IN_PROGRESS
    assert f'name="version" value="{current.version}"' in page.split('id="resolve"')[1]
    again = client.post(url, {"to_status": "resolved", "version": current.version,
                             "resolution_summary": "已告知正确剂量", "root_cause": "usage"})
    assert again.status_code == 302 and Ticket.objects.get(pk=ticket.pk).status == Status.RESOLVED


def test_a_stale_priority_change_keeps_the_reason(client_for, users, raise_ticket):
    ticket = raise_ticket()
    stale = ticket.version
    services.transition(users["manager"], ticket, Status.IN_PROGRESS)
    response = client_for("agent").post(
        f"/service/tickets/{ticket.pk}/priority/",
        {"priority": "urgent", "complexity": "general", "reason": "患者不适", "version": stale},
    )
    assert response.status_code == 409
    assert "患者不适" in _section(response.content.decode(), 'id="field-reason"')
    assert Ticket.objects.get(pk=ticket.pk).priority == "normal"


def test_changing_the_priority_needs_a_reason_and_recomputes_the_clocks(client_for, raise_ticket):
    ticket = raise_ticket()
    client = client_for("agent")
    url = f"/service/tickets/{ticket.pk}/priority/"
    refused = client.post(url, {"priority": "urgent", "complexity": "general", "reason": "", "version": ticket.version})
    assert refused.status_code == 400
    assert "Give a reason for the change." in _section(refused.content.decode(), 'id="field-reason"')
    done = client.post(url, {"priority": "urgent", "complexity": "general", "reason": "患者不适", "version": ticket.version})
    assert done.status_code == 302
    ticket.refresh_from_db()
    assert ticket.priority == "urgent" and ticket.policy.name == "紧急（7×24 小时）"
    page = client.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert "Priority changed" in page and "患者不适" in page and "Normal / General → Urgent / General" in page


def test_recording_the_first_response_meets_its_clock(client_for, raise_ticket):
    ticket = raise_ticket()
    client = client_for("agent")
    response = client.post(f"/service/tickets/{ticket.pk}/respond/", {"channel": "phone", "summary": "已回电"})
    assert response.status_code == 302
    assert SlaClock.objects.get(ticket=ticket, kind=ClockKind.FIRST_RESPONSE).fulfilled_at is not None
    page = client.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert 'id="clock-first_response" data-sla="met"' in page
    assert "First response to the customer" in page and "已回电" in page


def test_caller_details_are_masked_unless_the_role_sees_personal_data(client_for, users):
    ticket = services.create_ticket(
        users["agent"], {"subject": "来电", "channel": "phone", "category": "drug_info",
                         "caller_name": "王建国", "caller_phone": "13912345678"},
    )  # fmt: skip
    agent = client_for("agent").get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert "13912345678" not in agent and "王建国" not in agent and "王**" in agent
    manager = client_for("manager").get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert "13912345678" in manager and "王建国" in manager
    assert AuditEntry.objects.filter(
        action="read_personal", object_type="servicedesk.ticket", object_id=str(ticket.pk)
    ).count() == 1  # the manager's clear read


# --- Customer 360 --------------------------------------------------------------------------------


def test_the_360_pages_list_the_customers_tickets(client_for, raise_ticket, xiehe, doctor, ruijin):
    of_institution = raise_ticket("医院的问题")
    of_doctor = raise_ticket("医生的问题", person=doctor)
    elsewhere = raise_ticket("别处的问题", institution=ruijin)
    client = client_for("agent")
    hospital = client.get(f"/customers/institutions/{xiehe.pk}/").content.decode()
    tickets = hospital.split('id="tickets"')[1]
    assert of_institution.number in tickets and of_doctor.number in tickets and elsewhere.number not in tickets
    assert f'href="/service/tickets/{of_institution.pk}/"' in tickets
    person = client.get(f"/customers/people/{doctor.pk}/").content.decode().split('id="tickets"')[1]
    assert of_doctor.number in person and of_institution.number not in person
    assert f"/service/new/?person={doctor.pk}" in person


def test_assigning_without_an_assignee_is_explained(client_for, raise_ticket):
    ticket = raise_ticket()
    response = client_for("agent").post(
        f"/service/tickets/{ticket.pk}/status/", {"to_status": "assigned", "version": ticket.version}
    )
    assert response.status_code == 400
    assert "Choose whom to assign the ticket to." in response.content.decode().split('id="actions"')[1]
    assert Ticket.objects.get(pk=ticket.pk).status == Status.NEW


def test_the_ticket_page_needs_the_same_queries_for_a_long_history(
    client_for, users, raise_ticket, django_assert_max_num_queries
):
    ticket = raise_ticket()
    client = client_for("agent")
    url = f"/service/tickets/{ticket.pk}/"
    client.get(url)
    # 8 + the assign form's handlers and teams + one per panel: templates, messages, attachments, links,
    # surveys, improvement actions, the escalation ladder, whom to escalate to, the safety panel and the quality review
    with django_assert_max_num_queries(20):
        client.get(url)
    for i in range(15):
        services.record_response(users["agent"], ticket, summary=f"第{i}次回电")
    with django_assert_max_num_queries(20):
        page = client.get(url).content.decode()
    assert "第14次回电" in page


def test_an_agent_assigns_a_new_ticket_from_its_page(client_for, users, xiehe):
    from pharmacrm.servicedesk import services as sd
    from pharmacrm.servicedesk.models import Ticket as T

    ticket = sd.create_ticket(
        users["agent"], {"subject": "咨询", "channel": "phone", "category": "drug_info", "institution": xiehe}
    )
    agent = client_for("agent")
    page = agent.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert f'action="/service/tickets/{ticket.pk}/assign/"' in page
    response = agent.post(
        f"/service/tickets/{ticket.pk}/assign/", {"assignee": users["expert"].pk, "version": ticket.version}
    )
    assert response.status_code == 302
    ticket = T.objects.get(pk=ticket.pk)
    assert (ticket.status, ticket.assignee) == ("assigned", users["expert"])
    stale = agent.post(f"/service/tickets/{ticket.pk}/assign/", {"assignee": users["agent"].pk, "version": 1})
    assert stale.status_code == 409 and T.objects.get(pk=ticket.pk).assignee == users["expert"]
    assert client_for("auditor").post(
        f"/service/tickets/{ticket.pk}/assign/", {"assignee": users["agent"].pk, "version": ticket.version}
    ).status_code == 403


def test_the_page_asks_for_the_root_cause_and_how_the_customer_was_informed(client_for, users, raise_ticket):
    ticket = raise_ticket("咨询")
    client = client_for("agent")
    url = f"/service/tickets/{ticket.pk}/status/"
    page = client.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert 'name="root_cause"' in page
    missing = client.post(url, {"to_status": "resolved", "version": ticket.version, "resolution_summary": "已答复"})
    assert missing.status_code == 400 and "Choose the root cause." in missing.content.decode()
    done = client.post(url, {"to_status": "resolved", "version": ticket.version, "resolution_summary": "已答复",
                             "root_cause": "information"})  # fmt: skip
    assert done.status_code == 302
    ticket = Ticket.objects.get(pk=ticket.pk)
    page = client.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert 'name="informed_channel"' in page
    told = client.post(url, {"to_status": "informed", "version": ticket.version, "informed_channel": "email"})
    assert told.status_code == 302 and Ticket.objects.get(pk=ticket.pk).status == Status.INFORMED


def test_the_boost_reason_reads_in_the_viewers_script_whatever_language_raised_the_ticket(client_for, users, xiehe):
    from pharmacrm.customers import services as customers

    customers.update_institution(users["manager"], xiehe, {"tier": "vip"})
    ticket = services.create_ticket(users["agent"], {"subject": "询问库存", "channel": "phone",
                                                     "category": "drug_info", "institution": xiehe})  # fmt: skip
    assert ticket.boosted  # raised (and its history written) in the default language, Simplified
    client = client_for("kam")
    client.post("/i18n/setlang/", {"language": "zh-hant"})
    page = client.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert "VIP客戶或重點客戶：緊急程度提高一級。" in page and "VIP客户或重点客户" not in page


def test_the_intake_picker_names_a_department_with_its_hospital(client_for, xiehe):
    page = client_for("agent").get("/service/new/").content.decode()
    department = xiehe.children.get()
    assert f'<option value="{department.pk}">北京协和医院 › 心内科</option>' in page
    assert f'<option value="{xiehe.pk}">北京协和医院</option>' in page
