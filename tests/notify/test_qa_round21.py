"""Review round 21: notifications as their readers see them — e-mails that follow the account as it is when
they go out, and "Mark all read" that marks only what the reader was shown."""

from __future__ import annotations

import re

from django.utils import translation

from pharmacrm.notify import services, tasks
from pharmacrm.notify.models import Delivery, Notification

S = Delivery.Status


def test_an_email_queued_before_its_recipient_left_the_company_is_not_sent(users, smtp_server, settings):
    settings.LANGUAGE_CODE = "en"  # the reason is kept in the product's language
    agent = users["agent"]
    agent.email = "agent@pharma.example"
    agent.save()
    services.send([agent], kind="ticket.assigned", title="TK-2026-000001 说明书咨询", url="/service/tickets/1/")
    delivery = Delivery.objects.get()
    agent.is_active = False  # deactivated before the worker (or a retry) got to it
    agent.save()

    assert tasks.deliver(delivery.pk) == S.GAVE_UP

    assert smtp_server.messages == []
    delivery.refresh_from_db()
    assert delivery.status == S.GAVE_UP and delivery.next_attempt_at is None
    assert delivery.last_error_shown == "Not sent: the recipient's account was deactivated."
    assert tasks.sweep() == 0  # never tried again


def test_an_email_goes_to_the_address_the_recipient_has_when_it_is_sent(users, smtp_server):
    agent = users["agent"]
    agent.email = "agnet@pharma.example"  # a typo, corrected while the delivery waited for its retry
    agent.save()
    services.send([agent], kind="ticket.assigned", title="TK-2026-000002 说明书咨询")
    delivery = Delivery.objects.get()
    agent.email = "agent@pharma.example"
    agent.save()

    assert tasks.deliver(delivery.pk) == S.SENT

    (got,) = smtp_server.messages
    assert got["to"] == ["agent@pharma.example"]
    delivery.refresh_from_db()
    assert delivery.email == "agent@pharma.example"  # the log says where it went


def test_an_email_whose_recipient_removed_the_address_is_not_sent(users, smtp_server, settings):
    settings.LANGUAGE_CODE = "en"
    agent = users["agent"]
    agent.email = "agent@pharma.example"
    agent.save()
    services.send([agent], kind="ticket.assigned", title="TK-2026-000003 说明书咨询")
    agent.email = ""
    agent.save()

    assert tasks.deliver(Delivery.objects.get().pk) == S.GAVE_UP

    assert smtp_server.messages == []
    assert Delivery.objects.get().last_error_shown == "Not sent: the recipient no longer has an e-mail address."
    assert Notification.objects.get().recipient == agent  # the bell keeps it


def _note(user, title: str) -> Notification:
    (note,) = services.send([user], kind="ticket.breached", title=title, email=False)
    return note


def test_mark_all_read_on_the_page_leaves_a_notification_that_arrived_after_the_page_was_shown(client_for, users):
    client = client_for("agent")
    _note(users["agent"], "TK-2026-000010 已超时")
    page = client.get("/notifications/").content.decode()
    late = _note(users["agent"], "TK-2026-000011 已超时")  # an SLA breach arriving while the page is open
    assert late.title not in page
    start = page.index('name="all"')  # the "Mark all read" form's fields
    form = page[page.rindex("<form", 0, start):page.index("</form>", start)]
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form))

    action = re.search(r'action="([^"]+)"', form).group(1)

    assert client.post(action, fields).status_code == 302

    assert list(Notification.objects.filter(read_at__isnull=True)) == [late]  # still new in the bell
    assert services.unread_count(users["agent"]) == 1


def test_the_api_marks_all_read_up_to_the_newest_the_client_showed(api_for, users):
    shown = _note(users["agent"], "TK-2026-000012 已超时")
    late = _note(users["agent"], "TK-2026-000013 已超时")

    answer = api_for("agent").post("/api/v1/notifications/mark-read/", {"all": True, "up_to": shown.pk}, format="json")

    assert answer.json() == {"marked": 1, "unread": 1}
    assert list(Notification.objects.filter(read_at__isnull=True)) == [late]


def test_a_notification_about_a_ticket_the_reader_can_no_longer_see_says_so_instead_of_a_404(
    client_for, users, ruijin
):
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(users["agent"], {"subject": "咨询用法", "channel": "phone", "category": "drug_info",
                                                 "institution": ruijin})  # fmt: skip
    desk.assign(users["agent"], ticket, assignee=users["rep"])  # Shanghai: the Beijing rep sees it as its assignee
    note = Notification.objects.get(recipient=users["rep"], kind="ticket.assigned")
    client = client_for("rep")
    assert client.get(f"/notifications/{note.pk}/open/").url == f"/service/tickets/{ticket.pk}/"
    ticket.refresh_from_db()
    desk.assign(users["agent"], ticket, assignee=users["agent"])  # given to someone else: out of the rep's sight

    with translation.override("en"):
        response = client.get(f"/notifications/{note.pk}/open/", HTTP_ACCEPT_LANGUAGE="en", follow=True)

    assert response.redirect_chain == [("/notifications/", 302)]
    assert "You can no longer open what this notification is about: " in response.content.decode()
    assert ticket.number in response.content.decode()
    note.refresh_from_db()
    assert note.read_at is not None


def test_a_notification_about_an_improvement_action_given_to_someone_else_says_so_instead_of_a_404(
    client_for, users
):
    """The agent was told of an action of theirs; the service manager gave it to the product expert before the
    agent opened it. The notification led to "No such improvement action, or you may not see it." (404)."""
    import datetime as dt

    from django.utils import timezone

    from pharmacrm.servicedesk import revisit

    action = revisit.create_action(users["manager"], {
        "title": "缩短退货审批时间", "owner": users["agent"], "due_date": timezone.localdate() + dt.timedelta(days=14),
    })  # fmt: skip
    note = Notification.objects.get(recipient=users["agent"], kind="improvement.assigned")
    client = client_for("agent")
    assert client.get(f"/notifications/{note.pk}/open/").url == f"/service/improvements/{action.pk}/"
    revisit.update_action(users["manager"], action, {"owner": users["expert"]}, version=action.version)

    with translation.override("en"):
        response = client.get(f"/notifications/{note.pk}/open/", HTTP_ACCEPT_LANGUAGE="en", follow=True)

    assert response.redirect_chain == [("/notifications/", 302)]
    assert "You can no longer open what this notification is about: " in response.content.decode()
    assert action.number in response.content.decode()


def test_a_notification_about_a_ticket_still_visible_still_opens_it(client_for, users, xiehe):
    from pharmacrm.servicedesk import services as desk

    ticket = desk.create_ticket(users["agent"], {"subject": "咨询用法", "channel": "phone", "category": "drug_info",
                                                 "institution": xiehe})  # fmt: skip
    desk.assign(users["agent"], ticket, assignee=users["rep"])
    ticket.refresh_from_db()
    desk.assign(users["agent"], ticket, assignee=users["agent"])  # 协和 is in the rep's territory
    note = Notification.objects.get(recipient=users["rep"])

    assert client_for("rep").get(f"/notifications/{note.pk}/open/").url == f"/service/tickets/{ticket.pk}/"


def test_retry_now_while_a_worker_is_sending_the_delivery_does_not_send_it_twice(client_for, users, receiver):
    import datetime as dt

    from django.utils import timezone

    services.create_endpoint(users["admin"], {"name": "企业微信群", "url": receiver.url})
    services.emit("ticket.breached", {"n": 1})
    delivery = Delivery.objects.get()
    assert tasks.claim(delivery.pk) is not None  # a worker took it and is waiting for the receiver's answer
    client = client_for("admin")

    response = client.post(f"/notifications/deliveries/{delivery.pk}/retry/", HTTP_ACCEPT_LANGUAGE="en", follow=True)

    assert "A worker is sending this delivery right now." in response.content.decode()
    assert tasks.sweep() == 0 and tasks.deliver(delivery.pk) is None
    assert receiver.requests == []  # only the first worker sends it
    # a worker killed mid-send: once its lease has run out, "Retry now" sends it (once)
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    client.post(f"/notifications/deliveries/{delivery.pk}/retry/")
    assert tasks.sweep() == 1
    assert len(receiver.requests) == 1
    assert Delivery.objects.get().status == S.SENT
