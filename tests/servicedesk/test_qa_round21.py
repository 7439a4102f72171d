"""Review round 21 (service desk): what agents, supervisors and key-account managers noticed — an SLA policy
set on a category that did not reach its sub-categories; a ticket waiting on the customer shown with a stale
"next deadline" on the customer's page and sorted first by the API."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from pharmacrm.servicedesk import policies, services
from pharmacrm.servicedesk.models import SlaPolicy

SH = ZoneInfo("Asia/Shanghai")


def at(y, m, d, hh=0, mm=0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SH)


pytestmark = pytest.mark.usefixtures("english")  # the assertions read the English source messages


# --- a policy on a category covers its sub-categories ------------------------------------------------------


@pytest.fixture
def complaints(admin_user):
    """投诉 with a sub-category 包装破损, and a four-hour policy on 投诉 (the parent)."""
    parent = policies.create_category(admin_user, {
        "code": "complaint", "name": "投诉", "default_priority": "normal", "default_complexity": "general",
    })  # fmt: skip
    child = policies.create_category(admin_user, {
        "code": "complaint_package", "name": "包装破损", "parent": parent, "default_priority": "normal",
        "default_complexity": "general",
    })  # fmt: skip
    general = SlaPolicy.objects.get(name="一般问题（工作日）")
    policy = policies.create_policy(admin_user, {
        "name": "投诉（4 小时）", "category": parent, "calendar": general.calendar, "first_response": 4,
        "first_response_unit": "hours", "resolution": 1, "resolution_unit": "days",
    })  # fmt: skip
    return parent, child, policy


def _ticket(users, xiehe, code):
    return services.create_ticket(users["agent"], {
        "subject": "外包装破损", "channel": "phone", "category": code, "institution": xiehe,
        "received_at": at(2026, 3, 2, 9),
    })  # fmt: skip


def test_a_policy_on_a_category_also_times_the_tickets_of_its_sub_categories(users, xiehe, complaints):
    parent, child, policy = complaints
    for code in ("complaint", "complaint_package"):
        ticket = _ticket(users, xiehe, code)
        assert ticket.policy == policy, code  # the sub-category's ticket got the general 1-day policy
        assert ticket.clocks.get(kind="first_response").due_at == at(2026, 3, 2, 14, 30)  # 9–12, 13:30–14:30


def test_a_sub_categorys_own_policy_wins_over_its_parents(users, admin_user, xiehe, complaints):
    parent, child, on_parent = complaints
    on_child = policies.create_policy(admin_user, {
        "name": "包装破损（2 小时）", "category": child, "calendar": on_parent.calendar, "first_response": 2,
        "first_response_unit": "hours", "resolution": 1, "resolution_unit": "days", "position": 500,
    })  # fmt: skip
    assert _ticket(users, xiehe, "complaint_package").policy == on_child
    assert _ticket(users, xiehe, "complaint").policy == on_parent


def test_moving_a_category_below_one_with_a_policy_retimes_its_open_tickets(users, admin_user, xiehe, complaints, huey_immediate,
                                                                            django_capture_on_commit_callbacks):
    parent, _child, policy = complaints
    loose = policies.create_category(admin_user, {
        "code": "damaged", "name": "破损", "default_priority": "normal", "default_complexity": "general",
    })  # fmt: skip
    ticket = _ticket(users, xiehe, "damaged")
    assert ticket.policy.name == "一般问题（工作日）"
    with django_capture_on_commit_callbacks(execute=True):
        policies.update_category(admin_user, loose, {"parent": parent}, version=loose.version)
    ticket.refresh_from_db()
    assert ticket.policy == policy


def test_the_queue_filtered_by_a_category_lists_its_sub_categories_tickets_too(users, xiehe, complaints, client_for):
    parent, child, _policy = complaints
    in_child, in_parent, elsewhere = (_ticket(users, xiehe, code) for code in ("complaint_package", "complaint", "other"))
    page = client_for("manager").get(
        "/service/", {"queue": "all", "category": parent.pk}, HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert f'/service/tickets/{in_child.pk}/"' in page  # 投诉 / 包装破损: was missing under 投诉
    assert f'/service/tickets/{in_parent.pk}/"' in page and f'/service/tickets/{elsewhere.pk}/"' not in page
    assert "2 tickets, the next deadline first." in page
    page = client_for("manager").get(
        "/service/", {"queue": "all", "category": child.pk}, HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert f'/service/tickets/{in_child.pk}/"' in page and f'/service/tickets/{in_parent.pk}/"' not in page


# --- a ticket waiting on the customer has no running deadline --------------------------------------------


def test_a_ticket_waiting_on_the_customer_shows_no_stale_deadline_on_the_customers_page(users, xiehe, client_for):
    from pharmacrm.servicedesk.choices import Status

    waiting = _ticket(users, xiehe, "drug_info")  # due 3 Mar 09:00 (first response), 4 Mar 09:00
    services.transition(users["agent"], waiting, Status.WAITING, at=at(2026, 3, 2, 10))
    running = services.create_ticket(users["agent"], {
        "subject": "说明书", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "received_at": at(2026, 3, 2, 11),
    })  # fmt: skip
    page = client_for("manager").get(f"/customers/institutions/{xiehe.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    rows = {row.split('/service/tickets/')[1].split("/")[0]: row for row in page.content.decode().split("<tr")[1:]
            if "/service/tickets/" in row}  # fmt: skip
    assert "2026-03-03 11:00" in rows[str(running.pk)]
    # the clock stands still: no date that reads as long overdue (was 2026-03-03 09:00)
    assert "2026-03-03 09:00" not in rows[str(waiting.pk)] and "—" in rows[str(waiting.pk)]


def test_the_api_sorts_a_ticket_waiting_on_the_customer_after_the_running_deadlines(users, xiehe, api_for):
    from pharmacrm.servicedesk.choices import Status

    waiting = _ticket(users, xiehe, "drug_info")  # the earliest deadline while it ran: 3 Mar 09:00
    services.transition(users["agent"], waiting, Status.WAITING, at=at(2026, 3, 2, 10))
    later = services.create_ticket(users["agent"], {
        "subject": "说明书", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "received_at": at(2026, 3, 2, 11),
    })  # fmt: skip
    api = api_for("agent")
    numbers = [t["number"] for t in api.get("/api/v1/tickets/", {"ordering": "next_deadline"}).json()["results"]]
    assert numbers == [later.number, waiting.number]  # the waiting one came first, as if most urgent


# --- an overdue ticket of an agent who left ---------------------------------------------------------------


def test_the_warning_and_first_escalation_of_a_departed_agents_ticket_reach_the_team_lead(users, xiehe):
    from pharmacrm.core.models import Team
    from pharmacrm.notify.models import Notification

    team = Team.objects.create(name="客服一组", lead=users["manager"])
    users["agent"].teams.add(team)
    ticket = services.create_ticket(users["agent"], {
        "subject": "用药错误：剂量看错", "channel": "phone", "category": "medication_error", "institution": xiehe,
        "received_at": at(2026, 3, 2, 9), "assignee": users["agent"], "team": team,
    })  # fmt: skip
    users["agent"].is_active = False  # the agent left; their open tickets stay theirs until someone moves them
    users["agent"].save(update_fields=["is_active"])

    def lead_bell(kind):
        return Notification.objects.filter(recipient=users["manager"], kind=kind, object_id=str(ticket.pk)).count()

    services.sweep(at(2026, 3, 2, 10, 31))  # 75 % of the two hours
    assert lead_bell("ticket.warning") == 1  # was told to nobody
    services.sweep(at(2026, 3, 2, 11, 1))  # the breach: level 1 tells the holder
    assert lead_bell("ticket.escalated") == 1


def test_the_customers_answer_to_a_departed_agents_ticket_reaches_the_team_lead(users, xiehe):
    from pharmacrm.core.models import Team
    from pharmacrm.notify.models import Notification
    from pharmacrm.servicedesk import conversation
    from pharmacrm.servicedesk.choices import Status

    team = Team.objects.create(name="客服一组", lead=users["manager"])
    ticket = services.create_ticket(users["agent"], {
        "subject": "说明书丢失", "channel": "email", "category": "drug_info", "institution": xiehe,
        "reply_email": "wang@example.cn", "assignee": users["agent"], "team": team,
    })  # fmt: skip
    services.transition(users["agent"], ticket, Status.WAITING)
    users["agent"].is_active = False
    users["agent"].save(update_fields=["is_active"])
    conversation.receive_inbound(ticket, body="批号是 20260301，请再寄一份说明书。", sender="wang@example.cn")
    told = Notification.objects.filter(kind="ticket.customer_wrote", object_id=str(ticket.pk))
    assert list(told.values_list("recipient", flat=True)) == [users["manager"].pk]  # was nobody


# --- escalating by hand, sent twice ------------------------------------------------------------------------


def test_an_escalation_sent_twice_raises_the_level_once_and_tells_the_lead_once(users, xiehe, client_for):
    from pharmacrm.core.models import Team
    from pharmacrm.notify.models import Notification

    team = Team.objects.create(name="客服一组", lead=users["manager"])
    ticket = services.create_ticket(users["agent"], {
        "subject": "多家医院反映同一批号变色", "channel": "phone", "category": "product_use", "institution": xiehe,
        "assignee": users["agent"], "team": team,
    })  # fmt: skip
    agent = client_for("agent")
    form = {"escalation_reason": "涉及多家医院，需要主管协调"}
    assert agent.post(f"/service/tickets/{ticket.pk}/escalate/", form).status_code == 302
    again = agent.post(f"/service/tickets/{ticket.pk}/escalate/", form, HTTP_ACCEPT_LANGUAGE="en")  # double click
    assert again.status_code == 400 and "it was not sent again" in again.content.decode()
    ticket.refresh_from_db()
    assert ticket.escalation_level == 1  # was 2
    assert Notification.objects.filter(recipient=users["manager"], kind="ticket.escalated").count() == 1
    # another reason is another escalation
    assert agent.post(f"/service/tickets/{ticket.pk}/escalate/", {"escalation_reason": "客户要求厂方答复"}).status_code == 302
    ticket.refresh_from_db()
    assert ticket.escalation_level == 2


# --- improvement actions: the work still to do first -------------------------------------------------------


def test_the_improvement_actions_still_to_do_are_listed_before_the_closed_ones(users, xiehe, client_for, api_for):
    from pharmacrm.servicedesk import revisit

    ticket = _ticket(users, xiehe, "drug_info")
    from django.utils import timezone

    today = timezone.localdate()

    def action(title, days, to=()):
        made = revisit.create_action(users["manager"], {
            "title": title, "owner": users["agent"], "due_date": today + dt.timedelta(days=days), "ticket": ticket,
        })  # fmt: skip
        for status, extra in to:
            made = revisit.transition_action(users["manager"], made, status, **extra)
        return made

    done = action("已完成：更新说明书模板", 1, [("done", {"outcome": "已更新"})])
    cancelled = action("已取消：重复", 2, [("cancelled", {"reason": "与 IA 重复"})])
    waiting = action("待办：培训新人", 9)
    started = action("进行中：核对批号流程", 20, [("in_progress", {})])
    expected = [started.number, waiting.number, done.number, cancelled.number]
    page = client_for("manager").get("/service/improvements/").content.decode()
    assert sorted(expected, key=page.index) == expected  # was: cancelled, done, in progress, open
    answer = api_for("manager").get("/api/v1/improvement-actions/").json()
    rows = answer["results"] if isinstance(answer, dict) else answer
    assert [a["number"] for a in rows] == expected


# --- intake through the API: the assignee must be someone who handles tickets ------------------------------


@pytest.mark.parametrize("role", ["auditor", "analyst", "pv"])
def test_a_ticket_cannot_be_taken_in_for_someone_who_cannot_handle_tickets(users, xiehe, api_for, role):
    from pharmacrm.servicedesk.models import Ticket

    response = api_for("agent").post("/api/v1/tickets/", {
        "subject": "询问说明书用法用量", "channel": "phone", "category": "drug_info", "institution": xiehe.pk,
        "assignee": users[role].pk,
    }, format="json", HTTP_ACCEPT_LANGUAGE="en")  # fmt: skip
    assert response.status_code == 400, response.content  # was 201: a ticket held by someone who cannot work it
    assert response.json()["assignee"] == ["This user cannot handle tickets."]
    assert not Ticket.objects.exists()


# --- a reply with its attachment, sent twice ---------------------------------------------------------------


def test_a_reply_with_an_attachment_sent_twice_is_e_mailed_once(users, xiehe, client_for):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from pharmacrm.servicedesk.models import Attachment, TicketMessage

    ticket = services.create_ticket(users["agent"], {
        "subject": "索取说明书", "channel": "email", "category": "drug_info", "institution": xiehe,
        "assignee": users["agent"], "reply_email": "wang@example.cn",
    })  # fmt: skip
    agent = client_for("agent")
    url = f"/service/tickets/{ticket.pk}/messages/"

    def send(content=b"%PDF-1.4 leaflet"):
        form = {"kind": "reply", "body": "您好，说明书见附件。", "files": SimpleUploadedFile("说明书.pdf", content)}
        return agent.post(url, form, HTTP_ACCEPT_LANGUAGE="en")

    assert send().status_code == 302
    again = send()  # the double click, the same file with it
    assert again.status_code == 400 and "it was not sent again" in again.content.decode()
    assert TicketMessage.objects.filter(ticket=ticket, kind="reply").count() == 1  # was 2: two mails
    assert Attachment.objects.filter(ticket=ticket).count() == 1
    assert send(b"%PDF-1.4 another leaflet").status_code == 302  # the same words with another file: a new reply
    assert TicketMessage.objects.filter(ticket=ticket, kind="reply").count() == 2


# --- the queue says how it is sorted ----------------------------------------------------------------------


def test_the_queue_filtered_by_a_closed_status_says_newest_first_not_next_deadline(users, xiehe, client_for):
    from pharmacrm.servicedesk.choices import Status

    older, newer = _ticket(users, xiehe, "drug_info"), _ticket(users, xiehe, "other")
    for t in (older, newer):
        services.transition(users["agent"], t, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    page = client_for("manager").get(
        "/service/", {"queue": "all", "status": "resolved"}, HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert "2 tickets, newest first." in page and "the next deadline first" not in page
    assert page.index(f"/service/tickets/{newer.pk}/") < page.index(f"/service/tickets/{older.pk}/")
    running = client_for("manager").get("/service/", {"queue": "all"}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "the next deadline first" in running
