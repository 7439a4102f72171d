"""Thirty-sixth session: a ticket's caller phone follows the rule of a customer's mobile — a mobile number takes no
extension (13800138000转123, 13800138000-123, 13800138000 ext 123 were taken and kept as typed: a number to call
back that nobody can dial) — on every path that takes one from a person: the agent's intake form, the public web
form, the ticket's edit page, and the API (intake and details). A landline's extension stays accepted."""

from __future__ import annotations

import pytest
from django.test import Client

from pharmacrm.servicedesk import editing
from pharmacrm.servicedesk.models import Ticket
from tests.customers.test_qa_round35_entry_paths import NO_EXTENSION
from tests.servicedesk.conftest import intake, public_form

NO_EXTENSION_EN = (
    "A mobile number takes no extension: enter the number alone. Extensions (转123) belong to landlines."
)
MOBILES_WITH_EXTENSION = ("13800138000转123", "13800138000-123", "138 0013 8000 ext 123")


@pytest.mark.parametrize("phone", MOBILES_WITH_EXTENSION)
def test_the_intake_form_refuses_a_callers_mobile_with_an_extension(users, client_for, phone):
    response = intake(client_for("agent"), caller_phone=phone)
    assert response.status_code != 302
    assert response.context["form"].errors["caller_phone"] == [NO_EXTENSION]
    assert NO_EXTENSION in response.content.decode()
    assert not Ticket.objects.exists()


def test_the_intake_form_keeps_a_landlines_extension(users, client_for):
    response = intake(client_for("agent"), caller_phone="010-69156114转8001")
    assert response.status_code == 302
    assert Ticket.objects.get().caller_phone == "010-69156114转8001"




@pytest.mark.parametrize("phone", MOBILES_WITH_EXTENSION)
def test_the_public_form_refuses_a_mobile_with_an_extension(db, users, phone):
    """The web form stored 13800138000转123 as 138 0013 8000 转123: the desk called back a number with an
    extension a mobile cannot have."""
    response = Client(HTTP_ACCEPT_LANGUAGE="en").post("/help/", public_form(phone=phone))
    assert response.status_code == 400
    assert response.context["form"].errors["phone"] == [NO_EXTENSION_EN]
    assert not Ticket.objects.exists()


def test_the_public_form_keeps_a_landlines_extension(db, users):
    response = Client(HTTP_ACCEPT_LANGUAGE="en").post("/help/", public_form(phone="010-69156114转8001"))
    assert response.status_code == 302
    assert Ticket.objects.get().caller_phone == "010-69156114 转8001"


def test_the_edit_page_and_the_service_refuse_a_callers_mobile_with_an_extension(users, client_for, caller_ticket):
    from django.core.exceptions import ValidationError

    form = {"subject": caller_ticket.subject, "description": "", "category": caller_ticket.category_id,
            "product": "", "batch_number": "", "institution": "", "person": "", "caller_name": "",
            "caller_phone": "13800138000转123", "reply_email": "", "version": caller_ticket.version}  # fmt: skip
    response = client_for("agent").post(f"/service/tickets/{caller_ticket.pk}/edit/", form)
    assert response.status_code == 400
    assert response.context["form"].errors["caller_phone"] == [NO_EXTENSION]
    assert Ticket.objects.get(pk=caller_ticket.pk).caller_phone == "13912345678"
    with pytest.raises(ValidationError) as exc:
        editing.edit_ticket(users["agent"], caller_ticket, {"caller_phone": "13800138000-123"},
                            version=caller_ticket.version)  # fmt: skip
    assert exc.value.message_dict == {"caller_phone": [NO_EXTENSION]}
    response = client_for("agent").post(f"/service/tickets/{caller_ticket.pk}/edit/",
                                        {**form, "caller_phone": "010-69156114转8001"})  # fmt: skip
    assert response.status_code == 302
    assert Ticket.objects.get(pk=caller_ticket.pk).caller_phone == "010-69156114转8001"


def test_the_api_refuses_a_callers_mobile_with_an_extension_on_intake_and_edit(api_for, caller_ticket):
    body = {"subject": "来电咨询", "channel": "phone", "category": "drug_info", "caller_name": "王先生"}
    api = api_for("agent")
    answer = api.post("/api/v1/tickets/", {**body, "caller_phone": "13800138000 ext 123"}, format="json")
    assert answer.status_code == 400 and answer.json() == {"caller_phone": [NO_EXTENSION_EN]}
    assert Ticket.objects.count() == 1
    answer = api.patch(f"/api/v1/tickets/{caller_ticket.pk}/details/",
                       {"caller_phone": "13800138000-123", "version": caller_ticket.version}, format="json")  # fmt: skip
    assert answer.status_code == 400 and answer.json() == {"caller_phone": [NO_EXTENSION_EN]}
    assert Ticket.objects.get(pk=caller_ticket.pk).caller_phone == "13912345678"
    answer = api.post("/api/v1/tickets/", {**body, "caller_phone": "010-69156114转8001"}, format="json")
    assert answer.status_code == 201, answer.content
    assert Ticket.objects.get(pk=answer.json()["id"]).caller_phone == "010-69156114转8001"
