"""The revisit (回访): survey links (signed, expiring, single use), phone revisits, what a poor answer does
(reopen or an improvement action, per category), improvement actions to closure, and the pages per role."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import MATRIX, Cap, Role
from pharmacrm.customers.services import ConflictError
from pharmacrm.servicedesk import revisit, services
from pharmacrm.servicedesk.choices import ActionStatus, EventKind, LowScore, MessageKind, Status
from pharmacrm.servicedesk.models import ImprovementAction, Survey, TicketCategory, TicketEvent, TicketMessage

HANDLERS = {r.value for r in MATRIX[Cap.HANDLE_TICKETS]} - {Role.AUDITOR.value}
ALL = {r.value for r in Role}


@pytest.fixture(autouse=True)
def _english(settings):
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def make_ticket(users, xiehe):
    def make(*, resolved=True, category="drug_info", **extra):
        ticket = services.create_ticket(users["agent"], {
            "subject": "咨询用法", "channel": "phone", "category": category, "institution": xiehe,
            "assignee": users["agent"], **extra,
        })  # fmt: skip
        if resolved:
            services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已答复",
                                root_cause="usage")  # fmt: skip
        return ticket

    return make


@pytest.fixture
def ticket(make_ticket):
    return make_ticket()


def token_of(link: str) -> str:
    return link.rstrip("/").rsplit("/", 1)[-1]


@pytest.fixture
def web(db):
    return Client(HTTP_ACCEPT_LANGUAGE="en")


# --- survey links ----------------------------------------------------------------------------------


def test_a_survey_needs_a_resolved_informed_or_closed_ticket(users, make_ticket):
    open_ticket = make_ticket(resolved=False)
    with pytest.raises(ValidationError) as e:
        revisit.send_survey(users["agent"], open_ticket)
    assert "ticket" in e.value.message_dict


def test_a_survey_link_is_answered_once_only(users, ticket, web):
    survey, link = revisit.send_survey(users["agent"], ticket)
    assert survey.channel == "link" and survey.token_hash and token_of(link) not in survey.token_hash
    assert survey.expires_at > timezone.now() + dt.timedelta(days=13)
    path = "/help/survey/" + token_of(link) + "/"
    assert web.get(path).status_code == 200
    response = web.post(path, {"score": "5", "solved": "yes", "comment": "很满意"})
    assert response.status_code == 200 and "Thank you" in response.content.decode()
    survey.refresh_from_db()
    assert (survey.score, survey.solved, survey.comment, survey.outcome) == (5, True, "很满意", "")
    assert survey.answered_at is not None
    again = web.post(path, {"score": "1", "solved": "no"})
    assert again.status_code == 410 and "already been answered" in again.content.decode()
    assert web.get(path).status_code == 410
    survey.refresh_from_db()
    assert survey.score == 5
    with pytest.raises(revisit.SurveyUnavailable) as e:
        revisit.answer_survey(token_of(link), 1, False)
    assert e.value.reason == "used"
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED  # a good answer changes nothing
    event = TicketEvent.objects.filter(ticket=ticket, kind=EventKind.SURVEY).last()
    assert event.data["score"] == 5 and event.data["solved"] is True


def test_an_expired_link_is_refused_with_a_clear_page(users, ticket, web):
    survey, link = revisit.send_survey(users["agent"], ticket)
    Survey.objects.filter(pk=survey.pk).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    response = web.get("/help/survey/" + token_of(link) + "/")
    assert response.status_code == 410 and "expired" in response.content.decode()
    assert (
        web.post("/help/survey/" + token_of(link) + "/", {"score": "5", "solved": "yes"}).status_code == 410
    )
    assert Survey.objects.get(pk=survey.pk).answered_at is None


def test_a_tampered_or_forged_link_is_refused(users, ticket, web):
    _survey, link = revisit.send_survey(users["agent"], ticket)
    token = token_of(link)
    assert web.get(f"/help/survey/{token[:-2]}zz/").status_code == 404
    assert web.get("/help/survey/random-value/").status_code == 404
    # correctly signed but never issued
    assert web.get(f"/help/survey/{revisit._signer().sign('never-issued')}/").status_code == 404
    with pytest.raises(revisit.SurveyUnavailable) as e:
        revisit.answer_survey(token + "x", 5, True)
    assert e.value.reason == "invalid"


def test_the_score_is_validated(users, ticket, web):
    _survey, link = revisit.send_survey(users["agent"], ticket)
    with pytest.raises(ValidationError) as e:
        revisit.answer_survey(token_of(link), 9, True)
    assert "score" in e.value.message_dict
    response = web.post("/help/survey/" + token_of(link) + "/", {"score": "0", "solved": "yes"})
    assert response.status_code == 400 and "score" in response.context["form"].errors


def test_with_an_email_address_the_link_goes_out_as_a_reply(users, make_ticket):
    ticket = make_ticket(reply_email="wang@example.com")
    survey, link = revisit.send_survey(users["agent"], ticket)
    assert survey.sent_to == "wang@example.com"
    reply = TicketMessage.objects.get(ticket=ticket, kind=MessageKind.REPLY)
    assert link in reply.body and reply.recipient == "wang@example.com"


# --- poor answers ----------------------------------------------------------------------------------


def test_a_poor_score_reopens_the_ticket_when_the_category_says_so(users, ticket):
    TicketCategory.objects.filter(code="drug_info").update(low_score_action=LowScore.REOPEN)
    _survey, link = revisit.send_survey(users["agent"], ticket)
    survey = revisit.answer_survey(token_of(link), 2, True, "回答太慢")
    ticket.refresh_from_db()
    assert ticket.status == Status.IN_PROGRESS and survey.outcome == LowScore.REOPEN
    assert TicketEvent.objects.filter(ticket=ticket, kind=EventKind.REOPENED).exists()
    assert not ImprovementAction.objects.exists()


def test_not_solved_opens_an_improvement_action_owned_by_the_team_lead(users, make_ticket, team_north):
    team_north.lead = users["manager"]
    team_north.save()
    ticket = make_ticket(team=team_north)
    TicketCategory.objects.filter(code="drug_info").update(low_score_action=LowScore.ACTION)
    survey = revisit.record_phone_revisit(users["agent"], ticket, 5, False, "问题没解决")
    action = ImprovementAction.objects.get()
    assert survey.outcome == LowScore.ACTION and action.survey == survey and action.ticket == ticket
    assert action.owner == users["manager"] and action.status == ActionStatus.OPEN
    assert action.number == f"IA-{timezone.localdate().year}-0001"
    assert action.due_date == timezone.localdate() + dt.timedelta(days=14)
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED
    event = TicketEvent.objects.filter(ticket=ticket, kind=EventKind.SURVEY).last()
    assert event.data["action"] == action.number and event.data["outcome"] == "action"


def test_without_a_team_lead_the_assignee_owns_the_action(users, ticket):
    revisit.record_phone_revisit(users["agent"], ticket, 1, True)
    assert ImprovementAction.objects.get().owner == users["agent"]


def test_phone_revisit_is_recorded_and_audited(users, ticket):
    survey = revisit.record_phone_revisit(users["agent"], ticket, 4, True, "还行")
    assert (survey.channel, survey.recorded_by, survey.score, survey.outcome) == (
        "phone",
        users["agent"],
        4,
        "",
    )
    assert AuditEntry.objects.filter(object_type="servicedesk.survey", object_id=str(survey.pk)).exists()
    assert TicketEvent.objects.filter(ticket=ticket, kind=EventKind.SURVEY).exists()


def test_roles_that_do_not_handle_tickets_cannot_record_a_revisit(users, ticket):
    for role in ("auditor", "analyst", "pv"):
        with pytest.raises(PermissionDenied):
            revisit.record_phone_revisit(users[role], ticket, 5, True)
        with pytest.raises(PermissionDenied):
            revisit.send_survey(users[role], ticket)


# --- improvement actions ---------------------------------------------------------------------------


@pytest.fixture
def action(users, ticket):
    return revisit.create_action(users["manager"], {
        "title": "改进答复模板", "owner": users["agent"], "due_date": timezone.localdate() + dt.timedelta(days=7),
        "ticket": ticket,
    })  # fmt: skip


def test_an_improvement_action_is_tracked_to_closure(users, action):
    agent = users["agent"]
    assert action.number.startswith("IA-") and action.version == 1
    revisit.transition_action(agent, action, ActionStatus.IN_PROGRESS, version=1)
    with pytest.raises(ValidationError) as e:
        revisit.transition_action(agent, action, ActionStatus.DONE, version=2)
    assert "outcome" in e.value.message_dict
    revisit.transition_action(agent, action, ActionStatus.DONE, version=2, outcome="模板已更新并培训")
    action.refresh_from_db()
    assert (action.status, action.outcome, action.version) == ("done", "模板已更新并培训", 3)
    assert action.closed_at is not None
    with pytest.raises(revisit.ActionTransitionRefused):
        revisit.transition_action(agent, action, ActionStatus.IN_PROGRESS, version=3)
    with pytest.raises(revisit.ActionTransitionRefused):
        revisit.update_action(agent, action, {"title": "x"}, version=3)
    assert AuditEntry.objects.filter(object_type="servicedesk.improvementaction").count() == 3


def test_cancelling_needs_a_reason(users, action):
    with pytest.raises(ValidationError) as e:
        revisit.transition_action(users["agent"], action, ActionStatus.CANCELLED, version=1)
    assert "reason" in e.value.message_dict
    revisit.transition_action(users["agent"], action, ActionStatus.CANCELLED, version=1, reason="重复")
    assert action.status == "cancelled" and action.outcome == "重复"


def test_a_stale_version_is_a_conflict(users, action):
    revisit.update_action(users["agent"], action, {"title": "新标题"}, version=1)
    stale = ImprovementAction.objects.get(pk=action.pk)
    stale.version = 1
    with pytest.raises(ConflictError):
        revisit.update_action(users["manager"], stale, {"title": "另一个标题"}, version=1)
    with pytest.raises(ConflictError):
        revisit.transition_action(users["agent"], stale, ActionStatus.IN_PROGRESS, version=1)


def test_only_the_owner_or_a_manager_works_on_an_action(users, action):
    with pytest.raises(PermissionDenied):
        revisit.transition_action(users["kam"], action, ActionStatus.IN_PROGRESS, version=1)
    with pytest.raises(ValidationError):
        revisit.update_action(users["agent"], action, {"owner": users["kam"]}, version=1)
    revisit.update_action(users["manager"], action, {"owner": users["kam"]}, version=1)
    assert ImprovementAction.objects.get(pk=action.pk).owner == users["kam"]


def test_an_agent_opens_actions_only_on_a_ticket_and_for_themselves(users, ticket):
    due = timezone.localdate() + dt.timedelta(days=3)
    with pytest.raises(ValidationError):
        revisit.create_action(users["agent"], {"title": "x", "owner": users["agent"], "due_date": due})
    with pytest.raises(ValidationError):
        revisit.create_action(
            users["agent"], {"title": "x", "owner": users["kam"], "due_date": due, "ticket": ticket}
        )
    own = revisit.create_action(users["agent"], {"title": "x", "due_date": due, "ticket": ticket})
    assert own.owner == users["agent"]
    with pytest.raises(PermissionDenied):
        revisit.create_action(users["auditor"], {"title": "x", "due_date": due, "ticket": ticket})


# --- pages -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", sorted(ALL))
def test_the_ticket_page_shows_the_revisit_panel_with_forms_for_handlers(client_for, ticket, role):
    response = client_for(role).get(f"/service/tickets/{ticket.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="revisit"' in html
    assert ('id="send-survey"' in html) == (role in HANDLERS)


@pytest.mark.parametrize("role", sorted(ALL))
def test_sending_a_survey_from_the_page_per_role(client_for, ticket, role):
    response = client_for(role).post(f"/service/tickets/{ticket.pk}/survey/send/")
    if role in HANDLERS:
        # no e-mail address: the page shows the link, this once
        assert response.status_code == 200
        assert (
            'id="survey-link"' in response.content.decode() and "/help/survey/" in response.content.decode()
        )
        assert Survey.objects.filter(ticket=ticket).count() == 1
    else:
        assert response.status_code == 403 and not Survey.objects.exists()


@pytest.mark.parametrize("role", sorted(ALL))
def test_recording_a_phone_revisit_from_the_page_per_role(client_for, ticket, role):
    response = client_for(role).post(
        f"/service/tickets/{ticket.pk}/survey/phone/", {"score": "4", "solved": "yes", "comment": "好"}
    )
    assert response.status_code == (302 if role in HANDLERS else 403)
    assert Survey.objects.filter(channel="phone").exists() == (role in HANDLERS)


def test_a_phone_revisit_with_a_bad_score_shows_the_form_again(client_for, ticket):
    response = client_for("agent").post(
        f"/service/tickets/{ticket.pk}/survey/phone/", {"score": "7", "solved": "yes"}
    )
    assert response.status_code == 400 and "score" in response.context["revisit_phone_form"].errors


def test_sending_a_survey_on_an_open_ticket_explains_why_not(client_for, make_ticket):
    ticket = make_ticket(resolved=False)
    response = client_for("agent").post(f"/service/tickets/{ticket.pk}/survey/send/")
    assert response.status_code == 400 and "once the ticket is resolved" in response.content.decode()


@pytest.mark.parametrize("role", sorted(ALL))
def test_improvement_pages_per_role(client_for, action, ticket, role):
    client = client_for(role)
    assert client.get("/service/improvements/").status_code == 200
    assert client.get("/service/improvements/?show=overdue").status_code == 200
    assert (
        client.get(f"/service/improvements/{action.pk}/").status_code == 200
    )  # the ticket is visible to all
    assert client.get(f"/service/improvements/new/?ticket={ticket.pk}").status_code == (
        200 if role in HANDLERS else 403
    )
    assert client.get("/service/improvements/new/").status_code == (
        200 if role in {"admin", "manager"} else 403
    )
    may_work = role in {"admin", "manager", "agent"}  # the agent owns it
    response = client.post(
        f"/service/improvements/{action.pk}/status/", {"to_status": "in_progress", "version": 1}
    )
    assert response.status_code == (302 if may_work else 403)


def test_the_list_filters_mine_open_and_overdue(client_for, users, action, ticket):
    late = revisit.create_action(users["manager"], {
        "title": "逾期的措施", "owner": users["manager"], "due_date": timezone.localdate(), "ticket": ticket})  # fmt: skip
    ImprovementAction.objects.filter(pk=late.pk).update(due_date=timezone.localdate() - dt.timedelta(days=1))
    client = client_for("manager")
    assert late.number in client.get("/service/improvements/?show=overdue").content.decode()
    assert action.number not in client.get("/service/improvements/?show=overdue").content.decode()
    mine = client_for("agent").get("/service/improvements/?show=mine").content.decode()
    assert action.number in mine and late.number not in mine


def test_a_rep_does_not_see_actions_of_tickets_outside_their_territory(client_for, users, ruijin):
    ticket = services.create_ticket(users["agent"], {"subject": "上海的问题", "channel": "phone",
                                                     "category": "drug_info", "institution": ruijin})  # fmt: skip
    action = revisit.create_action(users["manager"], {
        "title": "上海", "owner": users["manager"], "due_date": timezone.localdate(), "ticket": ticket})  # fmt: skip
    assert client_for("rep").get(f"/service/improvements/{action.pk}/").status_code == 404
    assert action.number not in client_for("rep").get("/service/improvements/").content.decode()


def test_creating_and_closing_an_action_in_the_pages_with_a_conflict(client_for, users, ticket):
    client = client_for("agent")
    due = (timezone.localdate() + dt.timedelta(days=5)).isoformat()
    response = client.post(
        "/service/improvements/new/", {"ticket": ticket.pk, "title": "培训", "due_date": due}
    )
    action = ImprovementAction.objects.get()
    assert response.status_code == 302 and action.owner == users["agent"]
    revisit.update_action(users["manager"], action, {"title": "培训（改）"}, version=1)  # someone else saves
    stale = client.post(f"/service/improvements/{action.pk}/status/", {"to_status": "done", "version": 1,
                                                                      "outcome": "完成"})  # fmt: skip
    assert stale.status_code == 409 and "Someone else changed" in stale.content.decode()
    edit = client.post(
        f"/service/improvements/{action.pk}/edit/", {"title": "新", "due_date": due, "version": 1}
    )
    assert edit.status_code == 409
    done = client.post(f"/service/improvements/{action.pk}/status/", {"to_status": "done", "version": 2,
                                                                     "outcome": "完成"})  # fmt: skip
    assert done.status_code == 302
    assert ImprovementAction.objects.get().status == "done"
    assert 'id="action-outcome"' in client.get(f"/service/improvements/{action.pk}/").content.decode()


def test_an_action_form_sent_twice_opens_one_action(client_for, users, ticket):
    """A double click on "Open the action", or Back and send: one action, one number, one notice to its owner."""
    client = client_for("manager")
    page = client.get(f"/service/improvements/new/?ticket={ticket.pk}")
    token = page.context["form"]["form_token"].value()
    assert token and f'value="{token}"' in page.content.decode()
    due = (timezone.localdate() + dt.timedelta(days=5)).isoformat()
    data = {"ticket": ticket.pk, "title": "培训", "owner": users["agent"].pk, "due_date": due, "form_token": token}
    first = client.post("/service/improvements/new/", data)
    action = ImprovementAction.objects.get()
    assert first.status_code == 302 and first["Location"] == f"/service/improvements/{action.pk}/"
    again = client.post("/service/improvements/new/", data, follow=True)
    assert ImprovementAction.objects.count() == 1
    assert again.redirect_chain[-1][0] == f"/service/improvements/{action.pk}/"
    assert "already sent" in again.content.decode()
    from pharmacrm.notify.models import Notification

    assert Notification.objects.filter(recipient=users["agent"], kind="improvement.assigned").count() == 1


def test_the_same_action_from_a_page_loaded_anew_is_not_opened_twice(client_for, ticket):
    """Back, the form loaded again (a new token) and sent with the same action: the first one, not a second."""
    client = client_for("agent")
    due = (timezone.localdate() + dt.timedelta(days=5)).isoformat()
    data = {"ticket": ticket.pk, "title": "培训", "due_date": due}
    first = client.post("/service/improvements/new/", data)
    action = ImprovementAction.objects.get()
    again = client.post("/service/improvements/new/", data, follow=True)
    assert first.status_code == 302 and ImprovementAction.objects.count() == 1
    assert again.redirect_chain[-1][0] == f"/service/improvements/{action.pk}/"
    assert "already sent" in again.content.decode()


def test_the_service_pages_need_signing_in_but_the_public_ones_do_not(web, users, ticket, action):
    for url in (
        "/service/improvements/",
        f"/service/improvements/{action.pk}/",
        "/service/improvements/new/",
    ):
        response = web.get(url)
        assert response.status_code == 302 and "/accounts/" in response["Location"]
    assert web.post(f"/service/tickets/{ticket.pk}/survey/send/").status_code == 302
    assert not Survey.objects.exists()
    _survey, link = revisit.send_survey(users["agent"], ticket)
    assert web.get("/help/survey/" + token_of(link) + "/").status_code == 200


def test_who_may_not_work_on_an_action_is_refused_before_its_forms(client_for, users, action):
    """Found in session 57's sweep: a handler who neither owns the action nor manages the desk, posting an empty form
    to its edit or status form, got 400 with the form's errors instead of 403 (audited)."""
    from pharmacrm.core.models import AuditEntry

    for url in (f"/service/improvements/{action.pk}/edit/", f"/service/improvements/{action.pk}/status/"):
        r = client_for("expert").post(url, {})
        assert r.status_code == 403, (url, r.status_code)
        assert AuditEntry.objects.filter(action="access_denied", actor=users["expert"], object_repr=url).exists()
        assert client_for("agent").post(url, {}).status_code == 400  # the owner still reads the form's errors
