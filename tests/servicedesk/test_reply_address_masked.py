"""An agent sees a ticket's subject masked (请回电 139****5678), yet may change the ticket's reply address blind;
every reply's e-mail carries `[TK-…] <subject>` in clear, so pointing the replies at their own mailbox gave them the
subject in clear. For a role that sees personal data masked, a new reply address is refused when it is one of the
company's own (a user's, the mailboxes' or their domain), and needs a reason (kept in the history and the audit
trail, as a reveal's) when it is not on record for the customer (the person's e-mail, a mail of the ticket came
from); a role that sees personal data changes it as before."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from pharmacrm.core.models import AuditEntry
from pharmacrm.customers.models import Person
from pharmacrm.servicedesk import editing
from pharmacrm.servicedesk.models import Ticket
from tests.servicedesk.conftest import raise_ticket  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

SUBJECT = "请回电 139-1234-5678"
NEW = "wang.new@hospital.test"


@pytest.fixture
def ticket(raise_ticket, xiehe, settings):  # noqa: F811
    settings.SERVICEDESK_MAIL_FROM = "客服中心 <kefu@pharma-co.cn>"
    person = Person.objects.get(name="张伟")  # zhangwei@example.com on record
    return raise_ticket(subject=SUBJECT, person=person, reply_email="zhang@hospital.test")


def _form(ticket: Ticket, **extra) -> dict:
    return {"subject": "请回电 139****5678", "description": "", "category": ticket.category_id, "product": "",
            "batch_number": "", "institution": ticket.institution_id, "person": ticket.person_id, "caller_name": "",
            "caller_phone": "", "reply_email": "", "version": ticket.version, **extra}  # fmt: skip


def _audited(ticket: Ticket) -> AuditEntry:
    return AuditEntry.objects.filter(object_type="servicedesk.ticket", object_id=str(ticket.pk),
                                     action=AuditEntry.Action.UPDATE).latest("id")  # fmt: skip


def test_a_masked_agent_must_say_why_replies_go_to_an_address_not_on_record(client_for, ticket):
    client = client_for("agent")
    url = f"/service/tickets/{ticket.pk}/edit/"
    refused = client.post(url, _form(ticket, reply_email=NEW))
    assert refused.status_code == 400
    assert "不在客户的记录中" in refused.context["form"].errors["reason"][0]
    ticket.refresh_from_db()
    assert ticket.reply_email == "zhang@hospital.test" and ticket.subject == SUBJECT
    saved = client.post(url, _form(ticket, reply_email=NEW, reason="客户来电告知新邮箱"))
    assert saved.status_code == 302
    ticket.refresh_from_db()
    assert ticket.reply_email == NEW and ticket.subject == SUBJECT  # the subject's masks kept as stored
    entry = _audited(ticket)
    assert entry.extra["reason"] == "客户来电告知新邮箱" and entry.extra["new_reply_address"] is True
    page = client_for("admin").get("/accounts/audit/", {"object_type": "servicedesk.ticket",
                                                         "object_id": ticket.pk}).content.decode()  # fmt: skip
    assert "客户记录中没有的回复地址" in page


def test_the_api_asks_the_same_reason(api_for, ticket):
    api = api_for("agent")
    url = f"/api/v1/tickets/{ticket.pk}/details/"
    refused = api.patch(url, {"reply_email": NEW, "version": ticket.version}, format="json")
    assert refused.status_code == 400 and "reason" in refused.json()
    assert Ticket.objects.get(pk=ticket.pk).reply_email == "zhang@hospital.test"
    saved = api.patch(url, {"reply_email": NEW, "reason": "客户邮件告知", "version": ticket.version}, format="json")
    assert saved.status_code == 200, saved.content
    assert Ticket.objects.get(pk=ticket.pk).reply_email == NEW


@pytest.mark.parametrize("address", ["ZHANGWEI@example.com", "kefu@pharma-co.cn", "someone@pharma-co.cn", "manager"])
def test_addresses_on_record_need_no_reason_and_the_companys_own_are_refused(users, ticket, address):
    agent = users["agent"]
    if address == "manager":  # an employee's own mailbox
        users["manager"].email = address = "li.manager@corp-mail.test"
        users["manager"].save(update_fields=["email"])
    if address.lower() == "zhangwei@example.com":  # the ticket's person's e-mail: on record, no reason asked
        editing.edit_ticket(agent, ticket, {"reply_email": address}, version=ticket.version)
        assert "new_reply_address" not in _audited(ticket).extra
        return
    with pytest.raises(ValidationError) as refused:
        editing.edit_ticket(agent, ticket, {"reply_email": address}, version=ticket.version, reason="客户要求")
    assert list(refused.value.message_dict) == ["reply_email"]
    assert "公司员工或公司邮箱" in refused.value.message_dict["reply_email"][0]
    assert Ticket.objects.get(pk=ticket.pk).reply_email == "zhang@hospital.test"


def test_an_address_a_mail_of_the_ticket_came_from_is_on_record(users, ticket):
    ticket.messages.create(kind="inbound", body="请回电", sender="wang.private@mail.test")
    editing.edit_ticket(users["agent"], ticket, {"reply_email": "Wang.Private@mail.test"}, version=ticket.version)
    assert Ticket.objects.get(pk=ticket.pk).reply_email == "Wang.Private@mail.test"


def test_a_role_that_sees_personal_data_changes_the_address_as_before(client_for, api_for, ticket):
    answer = api_for("manager").patch(f"/api/v1/tickets/{ticket.pk}/details/",
                                      {"reply_email": NEW, "version": ticket.version}, format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    assert Ticket.objects.get(pk=ticket.pk).reply_email == NEW
    assert "new_reply_address" not in _audited(ticket).extra
