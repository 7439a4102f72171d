"""Complaints are resolved with their impact assessed (seed 002 六.(二).2: 评估投诉对客户和公司造成的影响): a category
marked *complaint* makes the resolution ask for the impact on the customer and on the company — on the page, in the
API and in bulk — while other tickets resolve as before; the mark is the one definition of a complaint."""

from __future__ import annotations

import re

import pytest

from pharmacrm.core.models import AuditEntry
from pharmacrm.servicedesk import bulk, linking, services
from pharmacrm.servicedesk.choices import Status
from pharmacrm.servicedesk.models import Ticket, TicketCategory, TicketEvent

SEEDED_COMPLAINTS = {"service_process", "relationship", "service_attitude", "order_delivery"}


@pytest.fixture
def complaint(raise_ticket):
    def make(subject="配送延误三次，客户投诉"):
        return raise_ticket(subject, category="order_delivery")

    return make


def fresh(ticket: Ticket) -> Ticket:
    return Ticket.objects.get(pk=ticket.pk)


def test_the_seeded_complaint_categories_are_marked_and_the_others_are_not(db):
    marked = set(TicketCategory.objects.filter(complaint=True).values_list("code", flat=True))
    assert marked == SEEDED_COMPLAINTS
    assert TicketCategory.objects.get(code="drug_info").complaint is False


def test_the_resolve_form_asks_a_complaint_for_its_impact_and_refuses_without_it(users, complaint, client_for):
    ticket = complaint()
    agent = client_for("agent")
    page = agent.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert 'name="customer_impact"' in page and 'name="company_impact"' in page
    assert "对客户的影响" in page and "对公司的影响" in page

    form = {"to_status": "resolved", "version": ticket.version, "resolution_summary": "已补发并致歉",
            "root_cause": "logistics", "impact_note": "客户门诊断药两天"}  # fmt: skip
    answer = agent.post(f"/service/tickets/{ticket.pk}/status/", form)
    assert answer.status_code == 400
    body = answer.content.decode()
    assert "投诉须评估其对客户的影响后才能解决" in body and "投诉须评估其对公司的影响后才能解决" in body
    assert "客户门诊断药两天" in body  # what was typed is kept
    assert fresh(ticket).status != Status.RESOLVED
    assert not TicketEvent.objects.filter(ticket=ticket, to_status=Status.RESOLVED).exists()

    before = AuditEntry.objects.filter(object_type="servicedesk.ticket", object_id=str(ticket.pk)).count()
    answer = agent.post(f"/service/tickets/{ticket.pk}/status/",
                        {**form, "customer_impact": "moderate", "company_impact": "minor"})  # fmt: skip
    assert answer.status_code == 302
    ticket = fresh(ticket)
    assert (ticket.status, ticket.customer_impact, ticket.company_impact) == ("resolved", "moderate", "minor")
    assert ticket.impact_note == "客户门诊断药两天"
    entry = AuditEntry.objects.filter(object_type="servicedesk.ticket", object_id=str(ticket.pk)).order_by("id").last()
    assert AuditEntry.objects.filter(object_type="servicedesk.ticket", object_id=str(ticket.pk)).count() == before + 1
    assert entry.changes["customer_impact"] == ["", "moderate"] and entry.changes["company_impact"] == ["", "minor"]
    event = TicketEvent.objects.get(ticket=ticket, to_status=Status.RESOLVED)
    assert event.data["customer_impact"] == "moderate" and event.data["company_impact"] == "minor"

    page = agent.get(f"/service/tickets/{ticket.pk}/").content.decode()
    shown = re.search(r'<dd id="complaint-impact">(.*?)</dd>', page, re.S).group(1)
    assert "较大" in shown and "轻微" in shown and "客户门诊断药两天" in shown


def test_other_tickets_resolve_without_an_assessment_and_show_no_impact_fields(users, raise_ticket, client_for):
    ticket = raise_ticket()  # drug information: not a complaint
    agent = client_for("agent")
    assert 'name="customer_impact"' not in agent.get(f"/service/tickets/{ticket.pk}/").content.decode()
    answer = agent.post(f"/service/tickets/{ticket.pk}/status/", {
        "to_status": "resolved", "version": ticket.version, "resolution_summary": "已答复", "root_cause": "usage",
    })  # fmt: skip
    assert answer.status_code == 302
    ticket = fresh(ticket)
    assert ticket.status == Status.RESOLVED and ticket.customer_impact == "" and ticket.company_impact == ""
    assert 'id="complaint-impact"' not in agent.get(f"/service/tickets/{ticket.pk}/").content.decode()


def test_the_api_names_the_missing_assessment_in_english_and_carries_it_once_given(users, complaint, api_for):
    ticket = complaint()
    api = api_for("agent", lang="en")
    body = {"status": "resolved", "resolution_summary": "Re-delivered, apologised", "root_cause": "logistics",
            "version": ticket.version}
    answer = api.post(f"/api/v1/tickets/{ticket.pk}/transition/", body, format="json")
    assert answer.status_code == 400
    errors = answer.json()
    assert "impact on the customer assessed" in str(errors["customer_impact"])
    assert "impact on the company assessed" in str(errors["company_impact"])
    assert fresh(ticket).status != Status.RESOLVED

    answer = api.post(f"/api/v1/tickets/{ticket.pk}/transition/", {**body, "customer_impact": "huge"}, format="json")
    assert answer.status_code == 400 and "customer_impact" in answer.json()

    answer = api.post(f"/api/v1/tickets/{ticket.pk}/transition/",
                      {**body, "customer_impact": "severe", "company_impact": "moderate"}, format="json")  # fmt: skip
    assert answer.status_code == 200
    data = api.get(f"/api/v1/tickets/{ticket.pk}/").json()
    assert (data["status"], data["customer_impact"], data["company_impact"]) == ("resolved", "severe", "moderate")
    assert data["root_cause"] == "logistics"


def test_a_reopened_complaint_keeps_its_assessment_and_resolves_again_without_retyping_it(users, complaint):
    ticket = complaint()
    services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已补发", root_cause="logistics",
                        customer_impact="minor", company_impact="none")  # fmt: skip
    services.transition(users["agent"], fresh(ticket), Status.IN_PROGRESS, note="客户称仍未收到")
    services.transition(users["agent"], fresh(ticket), Status.RESOLVED, company_impact="minor")  # revised
    ticket = fresh(ticket)
    assert (ticket.status, ticket.customer_impact, ticket.company_impact) == ("resolved", "minor", "minor")


def test_bulk_resolution_refuses_only_the_complaints_without_an_assessment(users, complaint, raise_ticket, english):
    question, grievance = raise_ticket("咨询用法"), complaint()
    params = {"status": "resolved", "resolution_summary": "已处理", "root_cause": "information"}
    result = {o.ticket_id: o for o in bulk.bulk(users["agent"], [question.pk, grievance.pk], "status", params)}
    assert result[question.pk].outcome == "done"
    assert result[grievance.pk].outcome == "refused"
    assert "impact on the customer assessed" in str(result[grievance.pk].message)
    assert fresh(grievance).status != Status.RESOLVED and fresh(question).status == Status.RESOLVED

    result = bulk.bulk(users["agent"], [grievance.pk], "close",
                       {**params, "customer_impact": "none", "company_impact": "none"})  # fmt: skip
    assert [o.outcome for o in result] == ["done"]
    grievance = fresh(grievance)
    assert (grievance.status, grievance.customer_impact, grievance.company_impact) == ("closed", "none", "none")


def test_bulk_refuses_an_impact_that_is_not_on_the_list_before_touching_any_ticket(users, complaint, english):
    from django.core.exceptions import ValidationError

    ticket = complaint()
    with pytest.raises(ValidationError) as refused:
        bulk.bulk(users["agent"], [ticket.pk], "status", {"status": "resolved", "resolution_summary": "已处理",
                                                         "root_cause": "information", "company_impact": "huge"})  # fmt: skip
    assert "company_impact" in refused.value.message_dict
    assert fresh(ticket).status != Status.RESOLVED


def test_a_complaint_merged_into_another_ticket_is_closed_without_an_assessment(users, complaint):
    duplicate, survivor = complaint("重复来电：配送延误"), complaint()
    linking.merge(users["agent"], duplicate, survivor, reason="同一投诉")
    duplicate = fresh(duplicate)
    assert duplicate.status == Status.CLOSED and duplicate.merged_into_id == survivor.pk
    assert duplicate.customer_impact == ""


def test_an_administrator_marks_a_category_as_complaint_and_its_tickets_then_need_the_assessment(
    users, raise_ticket, client_for
):
    other = TicketCategory.objects.get(code="other")
    admin = client_for("admin")
    page = admin.get(f"/service/settings/categories/{other.pk}/").content.decode()
    assert 'name="complaint"' in page
    form = {"name": other.name, "default_priority": other.default_priority, "default_complexity": other.default_complexity,
            "low_score_action": other.low_score_action, "position": other.position, "active": "on",
            "complaint": "on", "version": other.version}  # fmt: skip
    assert admin.post(f"/service/settings/categories/{other.pk}/", form).status_code == 302
    assert TicketCategory.objects.get(pk=other.pk).complaint is True
    entry = AuditEntry.objects.filter(object_type="servicedesk.ticketcategory", object_id=str(other.pk)).latest("id")
    assert entry.changes["complaint"] == [False, True]

    ticket = raise_ticket("对回复不满", category="other")
    with pytest.raises(Exception) as refused:
        services.transition(users["agent"], ticket, Status.RESOLVED, resolution_summary="已致歉", root_cause="staff")
    assert "customer_impact" in refused.value.message_dict
