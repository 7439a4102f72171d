"""Service-desk defects found by the fifteenth session's QA round: a ticket received years ago (a typing
error in the year) must not take the queues down, and the intake form refuses such a date."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.utils import timezone

from pharmacrm.servicedesk import services
from pharmacrm.servicedesk.models import Ticket
from pharmacrm.servicedesk.workcalendar import WorkCalendar

SH = ZoneInfo("Asia/Shanghai")


def test_a_ticket_received_ten_years_ago_still_shows_in_the_queue_and_on_its_page(users, xiehe, client_for):
    """The API (migrations from an old system) may take in old tickets: their clocks are ten years overdue,
    which the ticket page, the queues and the board must show, not answer with a server error."""
    ticket = services.create_ticket(users["agent"], {
        "subject": "旧工单", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "received_at": dt.datetime(2016, 1, 5, 9, tzinfo=SH), "assignee": users["agent"],
    })  # fmt: skip
    agent = client_for("agent")
    page = agent.get(f"/service/tickets/{ticket.pk}/")
    assert page.status_code == 200 and "已超时" in page.content.decode()
    response = agent.get("/service/")
    assert response.status_code == 200 and ticket.number in response.content.decode()
    manager = client_for("manager")
    response = manager.get("/service/?queue=all")
    assert response.status_code == 200 and ticket.number in response.content.decode()
    assert manager.get("/service/board/").status_code == 200


def test_working_time_over_ten_years_is_counted():
    calendar = WorkCalendar()
    start = dt.datetime(2015, 1, 5, 9, tzinfo=SH)
    end = dt.datetime(2026, 1, 5, 9, tzinfo=SH)
    assert calendar.between(start, end) > dt.timedelta(hours=7 * 250 * 10)


def test_the_intake_form_refuses_a_received_time_years_ago(users, client_for, xiehe):
    agent = client_for("agent")
    response = agent.post("/service/new/", {
        "subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe.pk,
        "received_at": "2016-01-05T09:00",
    })  # fmt: skip
    assert response.status_code in (200, 400)
    assert "最近 30 天内" in response.content.decode()
    assert not Ticket.objects.exists()
    recent = timezone.localtime() - dt.timedelta(days=2)
    response = agent.post("/service/new/", {
        "subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe.pk,
        "received_at": recent.strftime("%Y-%m-%dT%H:%M"),
    })  # fmt: skip
    assert response.status_code == 302 and Ticket.objects.count() == 1


def test_the_intake_form_sent_twice_creates_one_ticket(users, client_for, xiehe):
    """Back and send again, or a replay after a slow answer: the same form (same one-time token) creates the
    ticket once and the second send opens the ticket the first created."""
    agent = client_for("agent")
    token = agent.get("/service/new/").context["form"]["form_token"].value()
    data = {"subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe.pk,
            "form_token": token}  # fmt: skip
    first = agent.post("/service/new/", data)
    second = agent.post("/service/new/", data)
    ticket = Ticket.objects.get()
    assert first.status_code == second.status_code == 302
    assert second.url == first.url == f"/service/tickets/{ticket.pk}/"
    followed = agent.get(second.url)
    assert "此表单已提交过" in followed.content.decode() or "already sent" in followed.content.decode()


# --- the same form sent twice: one reply, one survey, one revisit ------------------------------------------

import pytest  # noqa: E402
from django.core.exceptions import ValidationError  # noqa: E402

from pharmacrm.servicedesk import conversation, revisit  # noqa: E402
from pharmacrm.servicedesk.choices import MessageKind, Status  # noqa: E402
from pharmacrm.servicedesk.models import Survey, TicketMessage  # noqa: E402


@pytest.fixture
def handled(users, xiehe):
    ticket = services.create_ticket(users["agent"], {
        "subject": "咨询用法", "channel": "phone", "category": "drug_info", "institution": xiehe,
        "assignee": users["agent"], "reply_email": "patient@example.com",
    })  # fmt: skip
    return ticket


def test_a_reply_sent_twice_is_e_mailed_once(users, handled, client_for):
    agent = client_for("agent")
    url = f"/service/tickets/{handled.pk}/messages/"
    first = agent.post(url, {"kind": "reply", "body": "您好，用法为每日一次。"})
    again = agent.post(url, {"kind": "reply", "body": "您好，用法为每日一次。"})  # Back and send
    assert first.status_code == 302 and again.status_code == 400
    assert "未重复发送" in again.content.decode()
    assert TicketMessage.objects.filter(ticket=handled, kind=MessageKind.REPLY).count() == 1
    # another text, or another person, is another reply
    conversation.post_message(users["agent"], handled, kind=MessageKind.REPLY, body="补充：饭后服用。")
    conversation.post_message(users["manager"], handled, kind=MessageKind.REPLY, body="您好，用法为每日一次。")
    assert TicketMessage.objects.filter(ticket=handled, kind=MessageKind.REPLY).count() == 3


def test_a_survey_link_and_a_phone_revisit_are_recorded_once(users, handled):
    services.transition(users["agent"], handled, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    revisit.send_survey(users["agent"], handled)
    with pytest.raises(ValidationError, match="未重复发送|not sent again"):
        revisit.send_survey(users["agent"], handled)
    revisit.record_phone_revisit(users["agent"], handled, 1, False, "没解决")
    with pytest.raises(ValidationError):
        revisit.record_phone_revisit(users["agent"], handled, 1, False, "没解决")
    assert Survey.objects.filter(ticket=handled).count() == 2  # one link, one phone revisit


# --- two managers editing the same setting: the second is told, nothing is lost ---------------------------

from pharmacrm.notify import services as notify  # noqa: E402
from pharmacrm.notify.models import WebhookEndpoint  # noqa: E402
from pharmacrm.servicedesk import routing  # noqa: E402
from pharmacrm.servicedesk.models import AgentProfile, AssignmentRule  # noqa: E402


def _posted(form) -> dict:
    """What the browser sends for the form as the page showed it."""
    data = {}
    for field in form:
        value = field.value()
        if value is None or value is False:
            continue
        data[field.name] = "on" if value is True else value
    return data


def _stale_save(client_for, url: str, change_first: dict, change_second: dict):
    admin, manager = client_for("admin"), client_for("manager")
    first = _posted(admin.get(url).context["form"])
    second = _posted(manager.get(url).context["form"])  # both pages open at once
    assert admin.post(url, {**first, **change_first}).status_code == 302
    return manager.post(url, {**second, **change_second})


def test_a_stale_assignment_rule_form_does_not_undo_anothers_change(users, team_north, client_for):
    rule = routing.create_rule(users["admin"], {"name": "北区规则", "team": team_north, "method": "least_loaded"})
    url = f"/service/assignment/rules/{rule.pk}/"
    response = _stale_save(client_for, url, {"name": "华北规则"}, {"position": "5"})
    assert response.status_code == 409
    assert response.context["form"].non_field_errors()  # the conflict, said above the form
    rule = AssignmentRule.objects.get(pk=rule.pk)
    assert rule.name == "华北规则"  # the first change stands
    assert response.context["form"]["position"].value() == "5"  # and the second user's input is kept


def test_a_stale_agent_profile_form_does_not_reset_the_limit(users, client_for):
    routing.save_profile(users["admin"], users["agent"], {"on_duty": True, "max_open": 40})
    url = f"/service/assignment/agents/{users['agent'].pk}/"
    response = _stale_save(client_for, url, {"max_open": "17"}, {"on_duty": ""})
    assert response.status_code == 409
    assert AgentProfile.objects.get(user=users["agent"]).max_open == 17


def test_a_stale_webhook_form_does_not_rename_it_back(users, client_for):
    endpoint = notify.create_endpoint(users["admin"], {"name": "企业微信群", "url": "http://127.0.0.1:9/x"})
    url = f"/notifications/webhooks/{endpoint.pk}/"
    admin = client_for("admin")
    first, second = _posted(admin.get(url).context["form"]), _posted(admin.get(url).context["form"])
    assert admin.post(url, {**first, "name": "客服群"}).status_code == 302
    response = admin.post(url, {**second, "url": "http://127.0.0.1:9/y"})
    assert response.status_code == 409
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).name == "客服群"


def test_no_survey_for_a_person_who_withdrew_consent_to_surveys(users, xiehe):
    """PIPL: 满意度调查 withdrawn, yet the survey e-mail went out with no warning."""
    from pharmacrm.customers import services as customers
    from pharmacrm.customers.models import Person

    zhang = Person.objects.get(name="张伟")
    ticket = services.create_ticket(users["agent"], {
        "subject": "咨询用法", "channel": "phone", "category": "drug_info", "person": zhang,
        "assignee": users["agent"], "reply_email": "zhangwei@example.com",
    })  # fmt: skip
    services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    customers.record_consent(users["agent"], zhang, {"purpose": "surveys", "channel": "phone", "status": "withdrawn"})
    with pytest.raises(ValidationError, match="撤回|withdrew"):
        revisit.send_survey(users["agent"], ticket)
    with pytest.raises(ValidationError):
        revisit.record_phone_revisit(users["agent"], ticket, 5, True)
    assert not Survey.objects.filter(ticket=ticket).exists()
    customers.record_consent(users["agent"], zhang, {"purpose": "surveys", "channel": "phone", "status": "given"})
    revisit.send_survey(users["agent"], ticket)  # given again: asked again


def test_a_new_survey_link_replaces_the_unanswered_one(users, handled):
    """Two links answered gave two answers and two improvement actions for one ticket."""
    import datetime as dt

    from django.utils import timezone

    services.transition(users["agent"], handled, Status.RESOLVED, resolution_summary="已答复", root_cause="usage")
    first, _link = revisit.send_survey(users["agent"], handled)
    Survey.objects.filter(pk=first.pk).update(created_at=timezone.now() - dt.timedelta(minutes=5))
    second, _link = revisit.send_survey(users["agent"], handled)
    first.refresh_from_db()
    assert first.expires_at <= timezone.now() < second.expires_at
