"""Sixteenth session: the public status page of a request merged into another says where it continues, and
shows the other ticket's answers only when both came from the same sender."""

from __future__ import annotations

from django.test import Client

from pharmacrm.servicedesk import conversation, linking, public, services
from pharmacrm.servicedesk.choices import MessageKind


def _ticket(users, xiehe, email, subject):
    return services.create_ticket(users["agent"], {
        "subject": subject, "channel": "web", "category": "drug_info", "institution": xiehe,
        "assignee": users["agent"], "reply_email": email,
    })  # fmt: skip


def _page(ticket) -> str:
    return Client(HTTP_ACCEPT_LANGUAGE="zh-hans").get(public.status_path(ticket)).content.decode()


def test_the_same_senders_merged_request_shows_where_it_continues_and_its_answers(users, xiehe):
    first = _ticket(users, xiehe, "wang@example.com", "用法咨询")
    again = _ticket(users, xiehe, "WANG@example.com", "用法咨询（再次提交）")
    linking.merge(users["agent"], again, first, reason="同一问题重复提交")
    conversation.post_message(users["agent"], first, kind=MessageKind.REPLY, body="您好，该药每日一次，饭后服用。")
    page = _page(again)
    assert first.number in page and 'id="merged-note"' in page
    assert "每日一次，饭后服用" in page  # the answer written on the surviving ticket


def test_another_senders_answers_are_not_shown(users, xiehe):
    mine = _ticket(users, xiehe, "li@example.com", "到货破损")
    theirs = _ticket(users, xiehe, "zhao@example.com", "到货破损")
    linking.merge(users["agent"], mine, theirs, reason="同一批货")
    conversation.post_message(users["agent"], theirs, kind=MessageKind.REPLY, body="赵女士您好，补发已安排。")
    page = _page(mine)
    assert theirs.number in page and 'id="merged-note"' in page
    assert "赵女士" not in page


def test_the_intake_form_loaded_again_and_sent_again_creates_one_ticket(users, client_for, xiehe):
    """Back in a browser that reloads the page gives the form a new one-time token: the same ticket sent
    again within ten minutes by the same agent opens the first one; another description is another ticket."""
    from pharmacrm.servicedesk.models import Ticket

    agent = client_for("agent")

    def send(description):
        token = agent.get("/service/new/").context["form"]["form_token"].value()  # a fresh page each time
        return agent.post("/service/new/", {"subject": "咨询用法", "channel": "phone", "category": "drug_info",
                                            "institution": xiehe.pk, "description": description, "form_token": token})

    first, again = send("每日几次？"), send("每日几次？")
    ticket = Ticket.objects.get()
    assert first.status_code == again.status_code == 302 and again.url == f"/service/tickets/{ticket.pk}/"
    assert "此表单已提交过" in agent.get(again.url).content.decode()
    send("饭前还是饭后？")
    assert Ticket.objects.count() == 2
