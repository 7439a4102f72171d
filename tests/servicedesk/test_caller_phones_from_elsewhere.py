"""A caller from Hong Kong, Macau, Taiwan or abroad leaves a number with its country code (+852 9123 4567,
+1 415 555 0100): the public form at /help/, the agent's intake form, the ticket's edit page and the API take it as
every phone of the product is taken (normalise), the ticket page shows it masked to a masked role, and the queue
search by the number finds the ticket. An 8-digit Hong Kong number without +852 is refused saying to add it."""

from __future__ import annotations

import pytest
from django.test import Client

from pharmacrm.core import crypto
from pharmacrm.servicedesk.models import Ticket
from tests.servicedesk.conftest import intake, public_form

PHONE_MESSAGE = (
    "Enter a valid China mobile number, landline with area code or 400/800 number, or a number from elsewhere with "
    "its country code, e.g. +852 9123 4567."
)


@pytest.mark.parametrize(
    "typed, kept, key",
    [("+852 9123 4567", "+852 9123 4567", "+85291234567"), ("00853-6612-3456", "+853 6612 3456", "+85366123456"),
     ("+886 912 345 678", "+886 912 345 678", "+886912345678"), ("+1 415 555 0100", "+1 415-555-0100", "+14155550100"),
     ("+44 20 7946 0958 转 12", "+44 20 7946 0958 转12", "+442079460958")],
)  # fmt: skip
def test_the_public_form_takes_a_number_from_elsewhere(db, users, typed, kept, key):
    response = Client(HTTP_ACCEPT_LANGUAGE="en").post("/help/", public_form(phone=typed))
    assert response.status_code == 302, response.context["form"].errors
    ticket = Ticket.objects.get()
    assert ticket.caller_phone == kept
    assert ticket.caller_phone_bidx == crypto.blind_index(key, "phone")


def test_the_public_form_refuses_a_hong_kong_number_without_its_country_code(db, users):
    response = Client(HTTP_ACCEPT_LANGUAGE="en").post("/help/", public_form(phone="9123 4567"))
    assert response.status_code == 400
    assert response.context["form"].errors["phone"] == [PHONE_MESSAGE]
    assert not Ticket.objects.exists()


def test_the_intake_form_takes_it_the_page_masks_it_and_the_queue_search_finds_it(users, client_for):
    agent = client_for("agent")
    assert intake(agent, caller_phone="+852 9123 4567").status_code == 302
    ticket = Ticket.objects.get()
    page = agent.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert "+852 ****4567" in page and "9123 4567" not in page
    for typed in ("+85291234567", "+852 9123-4567", "00852 9123 4567"):
        html = agent.get("/service/", {"q": typed}).content.decode()
        assert f'/service/tickets/{ticket.pk}/"' in html, typed
    refused = intake(agent, caller_phone="9123 4567", subject="另一个问题")
    assert refused.context["form"].errors["caller_phone"]


def test_the_api_takes_a_callers_number_from_elsewhere_on_intake_and_edit(api_for, caller_ticket):
    body = {"subject": "来电咨询", "channel": "phone", "category": "drug_info", "caller_name": "陈先生"}
    api = api_for("agent")
    answer = api.post("/api/v1/tickets/", {**body, "caller_phone": "+886 912 345 678"}, format="json")
    assert answer.status_code == 201, answer.content
    created = Ticket.objects.get(pk=answer.json()["id"])
    assert created.caller_phone_bidx == crypto.blind_index("+886912345678", "phone")
    revealed = api.get(f"/api/v1/tickets/{created.pk}/", {"reveal_reason": "客户要求回电"}).json()
    assert revealed["caller_phone"] == "+886 912 345 678"
    assert api.get(f"/api/v1/tickets/{created.pk}/").json()["caller_phone"] == "+886 ****5678"
    answer = api.patch(f"/api/v1/tickets/{caller_ticket.pk}/details/",
                       {"caller_phone": "+1 415 555 0100", "version": caller_ticket.version}, format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    answer = api.post("/api/v1/tickets/", {**body, "caller_phone": "9123 4567"}, format="json")
    assert answer.status_code == 400 and answer.json() == {"caller_phone": [PHONE_MESSAGE]}
