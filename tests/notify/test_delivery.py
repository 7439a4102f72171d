"""Notifications and their deliveries against real local servers: e-mail through an aiosmtpd server,
webhooks to an HTTP receiver that checks the signature; failures kept, retried with back-off, never lost."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import urllib.parse

import pytest
from django.db import connection
from django.utils import timezone

from pharmacrm.core.models import AuditEntry
from pharmacrm.notify import services, tasks
from pharmacrm.notify.models import Delivery, Notification, WebhookEndpoint

from .conftest import free_port

S = Delivery.Status


def _endpoint(admin, url, **extra) -> WebhookEndpoint:
    return services.create_endpoint(admin, {"name": "receiver", "url": url, **extra})


def _make_due(delivery: Delivery) -> None:
    """What waiting out the back-off does: the next attempt is now due."""
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))


# --- send: the bell and e-mail -----------------------------------------------------------------------


def test_send_creates_one_notification_per_active_recipient_and_emails_those_with_an_address(
    users, smtp_server
):
    from pharmacrm.servicedesk import services as desk

    agent, manager, rep = users["agent"], users["manager"], users["rep"]
    agent.email = "agent@pharma.example"
    agent.save()
    rep.is_active = False
    rep.save()
    ticket = desk.create_ticket(agent, {"subject": "药品说明书咨询", "channel": "phone", "category": "drug_info",
                                        "caller_name": "王先生"})  # fmt: skip
    notes = services.send(
        [agent, manager, agent, rep, None],
        kind="ticket.assigned",
        title=f"{ticket.number} 药品说明书咨询",
        body="已分配给你",
        url=f"/service/tickets/{ticket.pk}/",
        obj=ticket,  # one the agent may open: the text of a notification about one out of reach is left out
    )
    assert sorted(n.recipient.username for n in notes) == ["agent", "manager"]
    assert Notification.objects.get(recipient=agent).object_type == "servicedesk.ticket"
    (delivery,) = Delivery.objects.all()  # the manager has no address: in-app only
    assert delivery.channel == "email" and delivery.email == "agent@pharma.example"
    assert delivery.status == S.PENDING

    assert tasks.deliver(delivery.pk) == S.SENT
    (got,) = smtp_server.messages
    assert got["to"] == ["agent@pharma.example"]
    msg = got["message"]
    assert ticket.number in msg["Subject"]
    assert msg["Auto-Submitted"] == "auto-generated"
    text = msg.get_content()
    assert "已分配给你" in text
    # the link leads to the ticket through the notification's own mail link, which marks it read (round 23)
    token = re.search(r"/notifications/mail/([^\s/]+)/", text).group(1)
    assert services.read_mail_link(token) == (notes[0].pk if notes[0].recipient == agent else notes[1].pk,
                                               f"/service/tickets/{ticket.pk}/")  # fmt: skip
    delivery.refresh_from_db()
    assert delivery.status == S.SENT and delivery.attempts == 1 and delivery.sent_at is not None


def test_email_false_is_in_app_only(users):
    users["agent"].email = "agent@pharma.example"
    users["agent"].save()
    services.send([users["agent"]], kind="note", title="hello", email=False)
    assert Notification.objects.count() == 1 and not Delivery.objects.exists()


def test_deliveries_are_queued_after_commit_and_sent_by_the_worker(
    users, smtp_server, django_capture_on_commit_callbacks
):
    from huey.contrib.djhuey import HUEY

    users["agent"].email = "agent@pharma.example"
    users["agent"].save()
    immediate, HUEY.immediate = HUEY.immediate, True
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            services.send([users["agent"]], kind="ticket.assigned", title="TK-2026-000002")
            assert not smtp_server.messages  # nothing leaves before the commit
        assert callbacks
    finally:
        HUEY.immediate = immediate
    assert len(smtp_server.messages) == 1
    assert Delivery.objects.get().status == S.SENT


def test_smtp_server_down_fails_with_the_reason_and_is_retried(users, settings, smtp_server):
    users["agent"].email = "agent@pharma.example"
    users["agent"].save()
    services.send([users["agent"]], kind="x", title="TK-2026-000003")
    delivery = Delivery.objects.get()
    real_port, settings.EMAIL_PORT = settings.EMAIL_PORT, free_port()  # nobody listens there
    assert tasks.deliver(delivery.pk) == S.FAILED
    delivery.refresh_from_db()
    assert delivery.last_error and "Error" in delivery.last_error
    assert delivery.next_attempt_at > timezone.now()
    settings.EMAIL_PORT = real_port
    _make_due(delivery)
    assert tasks.sweep() == 1
    delivery.refresh_from_db()
    assert delivery.status == S.SENT and delivery.attempts == 2 and len(delivery.log) == 2
    assert delivery.log[0]["error"] and delivery.log[1]["error"] == ""
    assert len(smtp_server.messages) == 1


def test_send_refuses_a_bad_kind_or_an_empty_title(users):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as e:
        services.send([users["agent"]], kind="Bad Kind!", title="x")
    assert "kind" in e.value.error_dict
    with pytest.raises(ValidationError) as e:
        services.send([users["agent"]], kind="ok", title="  ")
    assert "title" in e.value.error_dict


def test_mark_read_touches_only_the_users_own(users):
    mine = services.send([users["agent"]], kind="k", title="one") + services.send(
        [users["agent"]], kind="k", title="two"
    )
    theirs = services.send([users["manager"]], kind="k", title="other")
    assert services.unread_count(users["agent"]) == 2
    assert services.mark_read(users["agent"], [mine[0].pk, theirs[0].pk]) == 1
    assert services.unread_count(users["agent"]) == 1
    assert services.unread_count(users["manager"]) == 1
    assert services.mark_read(users["agent"], "all") == 1
    assert services.unread_count(users["agent"]) == 0 and services.unread_count(users["manager"]) == 1


# --- emit: webhooks ------------------------------------------------------------------------------------


def test_webhook_is_signed_and_the_receiver_verifies_it(admin_user, receiver):
    endpoint = _endpoint(admin_user, receiver.url)
    assert len(endpoint.secret) == 64  # generated
    assert services.emit("ticket.created", {"ticket": {"number": "TK-2026-000004", "subject": "咨询"}}) == 1
    delivery = Delivery.objects.get()
    assert tasks.deliver(delivery.pk) == S.SENT

    (req,) = receiver.requests
    h = {k.lower(): v for k, v in req["headers"].items()}
    assert h["content-type"] == "application/json"
    assert h["x-pharmacrm-event"] == "ticket.created"
    assert h["x-pharmacrm-delivery"] == str(delivery.pk)
    expected = hmac.new(
        endpoint.secret.encode(), h["x-pharmacrm-timestamp"].encode() + b"." + req["raw"], hashlib.sha256
    )
    assert hmac.compare_digest(h["x-pharmacrm-signature"], "sha256=" + expected.hexdigest())
    assert req["json"]["event"] == "ticket.created"
    assert req["json"]["data"]["ticket"]["number"] == "TK-2026-000004"
    assert "at" in req["json"]
    delivery.refresh_from_db()
    assert delivery.last_status_code == 200


def test_emit_honours_subscriptions_and_inactive_endpoints(admin_user, receiver):
    _endpoint(admin_user, receiver.url, events=["ticket.breached"])
    off = _endpoint(admin_user, receiver.url)
    services.deactivate_endpoint(admin_user, off)
    assert services.emit("ticket.created", {}) == 0
    assert services.emit("ticket.breached", {"n": 1}) == 1


def test_500_then_200_fails_visibly_then_is_sent_after_the_backoff(admin_user, receiver):
    receiver.answers = [500]
    _endpoint(admin_user, receiver.url)
    services.emit("ticket.status", {"x": 1})
    delivery = Delivery.objects.get()
    before = timezone.now()
    assert tasks.deliver(delivery.pk) == S.FAILED
    delivery.refresh_from_db()
    assert delivery.status == S.FAILED and delivery.last_status_code == 500
    assert "HTTP 500" in delivery.last_error
    # the first retry waits one minute
    wait = delivery.next_attempt_at - dt.datetime.fromisoformat(delivery.log[-1]["at"])
    assert wait == dt.timedelta(minutes=1)
    assert delivery.next_attempt_at > before
    assert tasks.sweep() == 0  # not due yet
    _make_due(delivery)
    assert tasks.sweep() == 1
    delivery.refresh_from_db()
    assert delivery.status == S.SENT and delivery.attempts == 2 and delivery.last_error == ""
    assert [e["code"] for e in delivery.log] == [500, 200] and "HTTP 500" in delivery.log[0]["error"]
    assert len(receiver.requests) == 2


def test_backoff_doubles_and_is_capped_at_an_hour():
    assert [tasks.backoff(n).total_seconds() / 60 for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_endpoint_down_gives_up_after_the_maximum_attempts_and_can_be_retried(admin_user, settings):
    settings.NOTIFY_MAX_ATTEMPTS = 8
    endpoint = _endpoint(admin_user, f"http://127.0.0.1:{free_port()}/down")
    services.emit("ticket.created", {})
    delivery = Delivery.objects.get()
    statuses = []
    for _ in range(8):
        _make_due(delivery)
        statuses.append(tasks.deliver(delivery.pk))
    assert statuses == [S.FAILED] * 7 + [S.GAVE_UP]
    delivery.refresh_from_db()
    assert delivery.status == S.GAVE_UP and delivery.attempts == 8 and delivery.next_attempt_at is None
    assert len(delivery.log) == 8 and all(e["error"] for e in delivery.log)
    assert "Connection" in delivery.last_error or "refused" in delivery.last_error.lower()
    assert tasks.sweep() == 0  # a given-up delivery is not picked again by itself

    # an administrator retries it once the receiver is back
    endpoint.url = "http://127.0.0.1:1/still-down"
    services.retry(admin_user, delivery)
    delivery.refresh_from_db()
    assert delivery.status == S.PENDING and delivery.next_attempt_at <= timezone.now()
    assert AuditEntry.objects.filter(object_type="notify.delivery", object_id=str(delivery.pk)).exists()


def test_retry_is_for_administrators_and_not_for_sent_deliveries(users, receiver):
    from django.core.exceptions import PermissionDenied, ValidationError

    _endpoint(users["admin"], receiver.url)
    services.emit("ticket.created", {})
    delivery = Delivery.objects.get()
    with pytest.raises(PermissionDenied):
        services.retry(users["agent"], delivery)
    tasks.deliver(delivery.pk)
    delivery.refresh_from_db()
    with pytest.raises(ValidationError):
        services.retry(users["admin"], delivery)


def test_a_claimed_delivery_cannot_be_claimed_again(admin_user, receiver):
    _endpoint(admin_user, receiver.url)
    services.emit("ticket.created", {})
    delivery = Delivery.objects.get()
    assert tasks.claim(delivery.pk) is not None
    assert tasks.claim(delivery.pk) is None
    assert tasks.deliver(delivery.pk) is None
    assert not receiver.requests


@pytest.mark.django_db(transaction=True)
def test_two_workers_dispatching_at_once_send_once(users, receiver):
    receiver.delay = 0.3  # the first send is still going on while the second worker tries
    _endpoint(users["admin"], receiver.url)
    services.emit("ticket.created", {"n": 1})
    pk = Delivery.objects.get().pk
    barrier = threading.Barrier(4)
    results: list = []
    errors: list = []

    def worker(fn):
        from django.db import connections

        try:
            barrier.wait()
            results.append(fn())
        except Exception as e:  # noqa: BLE001 — a worker must not die of the other's lock (test_delivery_locks.py)
            errors.append(e)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=worker, args=(lambda: tasks.deliver(pk),)),
        threading.Thread(target=worker, args=(lambda: tasks.deliver(pk),)),
        threading.Thread(target=worker, args=(tasks.sweep,)),
        threading.Thread(target=worker, args=(tasks.sweep,)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(receiver.requests) == 1
    assert Delivery.objects.get().status == S.SENT and Delivery.objects.get().attempts == 1
    assert [str(r) for r in results].count("sent") + [r for r in results if isinstance(r, int)].count(1) == 1


# --- bot formats -----------------------------------------------------------------------------------------


TICKET = {
    "ticket": {
        "number": "TK-2026-000009",
        "subject": "说明书咨询",
        "status": "new",
        "url": "http://x/service/tickets/9/",
    }
}


def test_wecom_gets_its_markdown_message(admin_user, receiver):
    _endpoint(admin_user, receiver.url, format="wecom")
    receiver.answer_body = b'{"errcode":0,"errmsg":"ok"}'
    services.emit("ticket.created", TICKET)
    assert tasks.deliver(Delivery.objects.get().pk) == S.SENT
    body = receiver.requests[0]["json"]
    assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"content"}
    assert "TK-2026-000009" in body["markdown"]["content"] and "> 受理" in body["markdown"]["content"]


def test_dingtalk_gets_its_markdown_message_and_signed_url(admin_user, receiver):
    endpoint = _endpoint(
        admin_user, receiver.url + "?access_token=abc", format="dingtalk", secret="SECdemo123"
    )
    receiver.answer_body = b'{"errcode":0,"errmsg":"ok"}'
    services.emit("ticket.created", TICKET)
    assert tasks.deliver(Delivery.objects.get().pk) == S.SENT
    req = receiver.requests[0]
    body = req["json"]
    assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"title", "text"}
    assert "TK-2026-000009" in body["markdown"]["title"] and "说明书咨询" in body["markdown"]["text"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(req["path"]).query)
    assert query["access_token"] == ["abc"]
    ts = query["timestamp"][0]
    import base64

    expected = base64.b64encode(
        hmac.new(endpoint.secret.encode(), f"{ts}\n{endpoint.secret}".encode(), hashlib.sha256).digest()
    ).decode()
    assert query["sign"] == [expected]


def test_the_test_message_reads_in_the_groups_language_not_as_an_event_code(admin_user, receiver):
    endpoint = services.create_endpoint(
        admin_user, {"name": "客服主管群", "url": receiver.url, "format": "dingtalk"}
    )
    receiver.answer_body = b'{"errcode":0,"errmsg":"ok"}'

    assert tasks.deliver(services.send_test(admin_user, endpoint).pk) == S.SENT

    message = receiver.requests[0]["json"]["markdown"]
    assert message["title"] == "来自 PharmaCRM 的测试消息"
    assert message["text"].split("\n") == ["### 来自 PharmaCRM 的测试消息", "- 接口：客服主管群"]


def test_a_bot_errcode_is_a_failure_with_its_message(admin_user, receiver):
    _endpoint(admin_user, receiver.url, format="dingtalk")
    receiver.answer_body = json.dumps({"errcode": 310000, "errmsg": "sign not match"}).encode()
    services.emit("ticket.created", TICKET)
    delivery = Delivery.objects.get()
    assert tasks.deliver(delivery.pk) == S.FAILED
    delivery.refresh_from_db()
    assert "310000" in delivery.last_error and "sign not match" in delivery.last_error
    assert "?timestamp=" not in receiver.requests[0]["path"]  # no SEC secret: the URL is not signed


# --- endpoints: validation, secrets, audit ------------------------------------------------------------------


def test_endpoint_validation_and_audit_never_holds_the_secret(admin_user):
    from django.core.exceptions import ValidationError

    for bad in ("ftp://example.com/x", "javascript:alert(1)", "not a url"):
        with pytest.raises(ValidationError) as e:
            services.create_endpoint(admin_user, {"name": "x", "url": bad})
        assert "url" in e.value.error_dict
    with pytest.raises(ValidationError) as e:
        services.create_endpoint(
            admin_user, {"name": "x", "url": "https://example.com/", "events": ["Bad Event"]}
        )
    assert "events" in e.value.error_dict
    endpoint = services.create_endpoint(
        admin_user, {"name": "bot", "url": "https://example.com/hook", "secret": "s3cret"}
    )
    services.update_endpoint(admin_user, endpoint, {"secret": "n3w-s3cret", "name": "bot 2"})
    endpoint.refresh_from_db()
    assert endpoint.secret == "n3w-s3cret" and endpoint.name == "bot 2"
    entries = AuditEntry.objects.filter(object_type="notify.webhookendpoint", object_id=str(endpoint.pk))
    assert entries.count() == 2
    dump = json.dumps([e.changes for e in entries] + [e.extra for e in entries])
    assert "s3cret" not in dump
    with connection.cursor() as c:  # encrypted at rest
        c.execute("SELECT secret FROM notify_webhookendpoint WHERE id = %s", [endpoint.pk])
        assert "n3w-s3cret" not in c.fetchone()[0]


def test_ticket_events_become_webhook_events(admin_user, receiver):
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.choices import Channel

    _endpoint(admin_user, receiver.url, events=["ticket.created"])
    ticket = desk.create_ticket(
        admin_user,
        {"subject": "说明书咨询", "description": "x", "channel": Channel.PHONE, "category": "drug_info",
         "caller_name": "王小明", "caller_phone": "13800138000"},
    )  # fmt: skip
    (delivery,) = Delivery.objects.filter(event="ticket.created")
    data = delivery.payload["data"]
    assert data["ticket"]["number"] == ticket.number and data["ticket"]["subject"] == "说明书咨询"
    dump = json.dumps(delivery.payload, ensure_ascii=False)
    assert "王小明" not in dump and "13800138000" not in dump  # no personal data leaves


def test_contact_details_typed_into_a_subject_do_not_leave_with_the_webhook(admin_user, receiver):
    """On the public form a customer writes their number into the subject (请回电 …): the event carried it as typed to
    every endpoint — a WeCom or DingTalk group chat on the vendor's servers among them. Numbers, addresses and ID card
    numbers go masked, as the pages show them to those who may not see them; the ticket number stays."""
    from pharmacrm.servicedesk import services as desk
    from pharmacrm.servicedesk.choices import Channel

    _endpoint(admin_user, receiver.url, events=["ticket.created"])
    subject = "请回电 138 0013 8000 或 wang.xm@example.com，身份证 110101197503150019，座机 010-6529 5000"
    ticket = desk.create_ticket(admin_user, {"subject": subject, "channel": Channel.WEB, "category": "drug_info",
                                             "caller_name": "王先生"})
    (delivery,) = Delivery.objects.filter(event="ticket.created")
    assert delivery.payload["data"]["ticket"]["subject"] == (
        "请回电 138****8000 或 w***@example.com，身份证 110***********0019，座机 010****5000"
    )
    dump = json.dumps(delivery.payload, ensure_ascii=False)
    assert "0013 8000" not in dump and "wang.xm@" not in dump and "110101197503150019" not in dump
    assert ticket.number in dump


def test_contact_details_in_a_notification_do_not_leave_with_its_email(users, smtp_server):
    """The e-mail of a notification about a ticket carried its subject as the customer typed it, phone number
    included, to the recipient's mailbox — outside the company, like the chat bots. The notification list shows it
    masked to a reader who sees personal data masked, as the agent here (tests/notify/test_masked_titles.py), and
    as it is to one who sees personal data; what is stored is not changed."""
    agent = users["agent"]
    agent.email = "agent@pharma.example"
    agent.save()
    (note,) = services.send([agent], kind="ticket.assigned", title="TK-2026-000012 请回电 138 0013 8000",
                            body="来电人邮箱 wang.xm@example.com", url="/service/tickets/12/")  # fmt: skip
    assert "请回电 138****8000" in note.shown_title and "138 0013 8000" in note.title
    (delivery,) = Delivery.objects.filter(channel="email")
    assert tasks.deliver(delivery.pk) == S.SENT
    message = smtp_server.messages[0]["message"]
    assert "TK-2026-000012 请回电 138****8000" in message["Subject"]
    text = message.get_payload(decode=True).decode()
    assert "w***@example.com" in text and "wang.xm@" not in text and "0013 8000" not in text
    assert "/notifications/mail/" in text  # the link is whole


def test_a_subject_from_the_public_form_cannot_put_links_or_lines_into_the_group_chat(admin_user, receiver):
    """A customer typed a markdown link, a coloured tag and a forged status line into the web form's subject:
    the group's bot showed them as the bot's own words. The fields read as words, in Chinese."""
    _endpoint(admin_user, receiver.url, format="wecom")
    receiver.answer_body = b'{"errcode":0,"errmsg":"ok"}'
    forged = '紧急 [点此登录处理](http://evil.example/phish) <font color="warning">红字</font>\n### 伪造\n- status: closed'
    services.emit("ticket.created", {"ticket": {**TICKET["ticket"], "subject": forged, "priority": "high"}})
    assert tasks.deliver(Delivery.objects.get().pk) == S.SENT
    text = receiver.requests[0]["json"]["markdown"]["content"]
    lines = text.split("\n")
    assert lines[0].startswith("### TK-2026-000009 紧急") and "伪造" in lines[0]  # one line, the heading's own
    assert "](http://evil.example" not in text and "<font" not in text
    assert not any(line.startswith(("- status", "###  伪造", "### 伪造")) for line in lines[1:])
    assert "- 状态：新建" in text and "- 优先级：高" in text
