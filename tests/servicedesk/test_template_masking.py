"""An answer template's {subject} filled the reply editor with the ticket's subject in clear (请回电 139-1234-5678)
for the roles that see personal data masked, and the template preview and `GET /api/v1/answer-templates/{id}/render/`
answered it in clear: a way around the mask. It is filled in masked, as the ticket page shows it; sending the reply
(the composer or the API) puts each mask still in it back as stored, so the customer receives the real text and the
agent still reads it masked. The roles that see personal data fill and send it as typed."""

from __future__ import annotations

import re

import pytest

from pharmacrm.servicedesk import knowledge
from pharmacrm.servicedesk.models import TicketMessage

pytestmark = pytest.mark.django_db

SUBJECT = "请回电 139-1234-5678，邮箱li.na@example.com"
MASKED = "请回电 139****5678，邮箱l***@example.com"
CLEAR = ("139-1234-5678", "li.na@example.com")
HANDLERS = ("agent", "expert", "support", "aftersales")  # the masked roles that reply to customers
READERS = ("analyst", "auditor")  # masked, may read templates through the API, do not reply
BODY = "您好，关于您的来信「{subject}」（工单 {ticket}），我们已处理。原文：{subject}"


@pytest.fixture
def ticket(raise_ticket):
    return raise_ticket(subject=SUBJECT, user="manager", reply_email="kehu@example.com",
                        description="身份证110101199003071234")  # fmt: skip


@pytest.fixture
def template(users):
    return knowledge.create_template(users["admin"], {"name": "已处理", "language": "zh-hans", "body": BODY})


def _clear_in(text: str) -> list[str]:
    return [v for v in CLEAR if v in text]


def _filled(ticket, subject: str) -> str:
    return BODY.replace("{subject}", subject).replace("{ticket}", ticket.number)


def _textarea(html: str) -> str:
    import html as html_lib

    return html_lib.unescape(re.search(r'<textarea[^>]*id="message-body"[^>]*>(.*?)</textarea>', html, re.S).group(1))


@pytest.mark.parametrize("role", HANDLERS)
def test_a_masked_agent_gets_the_subject_masked_and_the_customer_the_real_text(
    role, client_for, api_for, users, ticket, template
):
    client = client_for(role)
    preview = client.get(f"/service/tickets/{ticket.pk}/template-preview/", {"template": template.pk})
    assert preview.status_code == 200
    body = _textarea(preview.content.decode()).strip()
    assert body == _filled(ticket, MASKED) and not _clear_in(preview.content.decode())
    rendered = api_for(role).get(f"/api/v1/answer-templates/{template.pk}/render/", {"ticket": ticket.pk})
    assert rendered.status_code == 200 and rendered.json()["body"] == body

    answer = client.post(f"/service/tickets/{ticket.pk}/messages/",
                         {"kind": "reply", "body": body, "template": template.pk})  # fmt: skip
    assert answer.status_code == 302
    message = TicketMessage.objects.get(ticket=ticket, kind="reply")
    assert message.body == _filled(ticket, SUBJECT)  # both {subject} put back: what the customer receives
    assert message.recipient == "kehu@example.com"
    page = client.get(f"/service/tickets/{ticket.pk}/").content.decode()
    assert _filled(ticket, MASKED).split("（")[0] in page and not _clear_in(page)


def test_the_api_reply_puts_the_masks_back_and_keeps_what_was_typed(api_for, ticket, template):
    api = api_for("agent")
    body = api.get(f"/api/v1/answer-templates/{template.pk}/render/", {"ticket": ticket.pk}).json()["body"]
    # a mask of no detail of the subject stays as typed, the description's too: a reply goes to the ticket's address,
    # which the agent may change, and must not carry out what they may not read
    typed = body + " 另请拨打 138****0000 身份证110***********1234"
    answer = api.post(f"/api/v1/tickets/{ticket.pk}/messages/", {"kind": "reply", "body": typed}, format="json")
    assert answer.status_code == 201, answer.content
    assert not _clear_in(str(answer.json()))  # answered as the agent reads it
    stored = TicketMessage.objects.get(ticket=ticket, kind="reply").body
    assert stored == _filled(ticket, SUBJECT) + " 另请拨打 138****0000 身份证110***********1234"


@pytest.mark.parametrize("role", READERS)
def test_a_masked_reader_renders_the_template_masked(role, api_for, ticket, template):
    rendered = api_for(role).get(f"/api/v1/answer-templates/{template.pk}/render/", {"ticket": ticket.pk})
    assert rendered.status_code == 200
    assert rendered.json()["body"] == _filled(ticket, MASKED)


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_a_role_that_sees_personal_data_fills_and_sends_the_subject_as_typed(
    role, client_for, api_for, ticket, template
):
    client = client_for(role)
    preview = client.get(f"/service/tickets/{ticket.pk}/template-preview/", {"template": template.pk})
    assert _textarea(preview.content.decode()).strip() == _filled(ticket, SUBJECT)
    rendered = api_for(role).get(f"/api/v1/answer-templates/{template.pk}/render/", {"ticket": ticket.pk})
    assert rendered.json()["body"] == _filled(ticket, SUBJECT)
    client.post(f"/service/tickets/{ticket.pk}/messages/", {"kind": "reply", "body": _filled(ticket, MASKED)})
    # a manager typing a mask sends it as typed: nothing of theirs is put back
    assert TicketMessage.objects.get(ticket=ticket, kind="reply").body == _filled(ticket, MASKED)
