"""Notification pages: the bell and the inbox for everyone, webhook endpoints and the delivery log for
service administrators only."""

from __future__ import annotations

import pytest
from django.utils import translation

from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Role
from pharmacrm.notify import services
from pharmacrm.notify.models import Delivery, Notification, WebhookEndpoint

ROLES = [r.value for r in Role]
ADMINS = {"admin", "manager"}


def test_the_bell_shows_the_unread_count_and_links_to_the_inbox(users, client_for, client):
    services.send([users["agent"]], kind="k", title="TK-2026-000001 one", url="/service/")
    services.send([users["agent"]], kind="k", title="TK-2026-000002 two")
    services.send([users["manager"]], kind="k", title="TK-2026-000003 three")
    c = client_for("agent")
    page = c.get("/").content.decode()
    assert (
        'id="notify-bell"' in page
        and 'href="/notifications/"' in page
        and 'hx-get="/notifications/bell/"' in page
    )
    bell = c.get("/notifications/bell/")
    assert bell.status_code == 200 and bell["Cache-Control"] == "no-store"
    assert 'class="badge bell-count"' in bell.content.decode() and ">2</span>" in bell.content.decode()
    services.mark_read(users["agent"], "all")
    assert "bell-count" not in c.get("/notifications/bell/").content.decode()
    assert client.get("/notifications/bell/").status_code == 204  # signed out: htmx leaves the bell alone


def test_the_bell_costs_pages_nothing_and_itself_one_count(users, client_for):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    services.send([users["agent"]], kind="k", title="x")
    c = client_for("agent")
    with CaptureQueriesContext(connection) as page:
        c.get("/")  # any page with the header
    assert not [q for q in page.captured_queries if "notify_notification" in q["sql"]]
    with CaptureQueriesContext(connection) as bell:
        c.get("/notifications/bell/")
    (count,) = [q["sql"] for q in bell.captured_queries if "notify_notification" in q["sql"]]
    assert count.startswith("SELECT COUNT(*)")


def test_the_inbox_lists_only_my_notifications_newest_first(users, client_for):
    services.send([users["agent"]], kind="k", title="first for agent")
    services.send([users["agent"]], kind="k", title="second for agent")
    services.send([users["manager"]], kind="k", title="for the manager")
    page = client_for("agent").get("/notifications/").content.decode()
    assert page.index("second for agent") < page.index("first for agent")
    assert "for the manager" not in page


def test_mark_one_read_mark_all_read_and_open(users, client_for):
    a, b, c_ = (
        services.send([users["agent"]], kind="k", title=t, url="/service/")[0] for t in ("a", "b", "c")
    )
    theirs = services.send([users["manager"]], kind="k", title="m")[0]
    c = client_for("agent")
    r = c.post("/notifications/read/", {"id": [a.pk, theirs.pk], "next": "/notifications/?unread=1"})
    assert r.status_code == 302 and r["Location"] == "/notifications/?unread=1"
    a.refresh_from_db()
    theirs.refresh_from_db()
    assert a.read_at is not None and theirs.read_at is None
    unread_page = c.get("/notifications/?unread=1").content.decode()
    assert f'data-id="{b.pk}"' in unread_page and f'data-id="{a.pk}"' not in unread_page
    r = c.get(f"/notifications/{b.pk}/open/")
    assert r.status_code == 302 and r["Location"] == "/service/"
    assert Notification.objects.get(pk=b.pk).read_at is not None
    assert c.get(f"/notifications/{theirs.pk}/open/").status_code == 404
    c.post("/notifications/read/", {"all": "1"})
    assert services.unread_count(users["agent"]) == 0 and services.unread_count(users["manager"]) == 1
    assert c.get("/notifications/read/").status_code == 405
    assert Notification.objects.get(pk=c_.pk).read_at is not None


def test_an_outside_link_is_not_followed(users, client_for):
    note = services.send([users["agent"]], kind="k", title="x", url="https://evil.example/")[0]
    r = client_for("agent").get(f"/notifications/{note.pk}/open/")
    assert r.status_code == 302 and r["Location"] == "/notifications/"


def test_signed_out_users_go_to_the_login(client):
    for path in ("/notifications/", "/notifications/webhooks/", "/notifications/deliveries/"):
        r = client.get(path)
        assert r.status_code == 302 and "/accounts/login/" in r["Location"]


@pytest.mark.parametrize("role", ROLES)
def test_access_per_role(role, users, client_for):
    endpoint = services.create_endpoint(users["admin"], {"name": "hook", "url": "http://127.0.0.1:9/x"})
    services.emit("ticket.created", {})
    delivery = Delivery.objects.get()
    c = client_for(role)
    assert c.get("/notifications/").status_code == 200
    admin_ok = role in ADMINS
    gets = ["/notifications/webhooks/", "/notifications/webhooks/new/", f"/notifications/webhooks/{endpoint.pk}/",
            "/notifications/deliveries/", "/notifications/deliveries/?status=pending"]  # fmt: skip
    for path in gets:
        assert c.get(path).status_code == (200 if admin_ok else 403), path
    posts = [f"/notifications/webhooks/{endpoint.pk}/test/", f"/notifications/deliveries/{delivery.pk}/retry/",
             f"/notifications/webhooks/{endpoint.pk}/deactivate/"]  # fmt: skip
    for path in posts:
        assert c.post(path).status_code == (302 if admin_ok else 403), path
    endpoint.refresh_from_db()
    assert endpoint.active is (not admin_ok)
    page = c.get("/notifications/").content.decode()
    assert ('href="/notifications/webhooks/"' in page) is admin_ok


def test_create_edit_test_and_retry_through_the_pages(users, client_for, settings):
    settings.LANGUAGE_CODE = "en"
    c = client_for("manager")
    r = c.post("/notifications/webhooks/new/", {"name": "", "url": "ftp://x", "format": "generic"})
    assert r.status_code == 200 and not WebhookEndpoint.objects.exists()
    r = c.post(
        "/notifications/webhooks/new/",
        {"name": "钉钉群", "url": "https://oapi.dingtalk.com/robot/send?access_token=t", "format": "dingtalk",
         "events": "ticket.created, ticket.breached", "active": "on"},
    )  # fmt: skip
    assert r.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret in r.content.decode()  # shown once …
    assert endpoint.events == ["ticket.created", "ticket.breached"]
    edit = c.get(f"/notifications/webhooks/{endpoint.pk}/").content.decode()
    assert endpoint.secret not in edit  # … and never again
    r = c.post(
        f"/notifications/webhooks/{endpoint.pk}/",
        {"name": "钉钉群 2", "url": endpoint.url, "format": "dingtalk", "events": "", "active": "on"},
    )
    assert r.status_code == 302
    endpoint.refresh_from_db()
    secret = endpoint.secret
    assert endpoint.name == "钉钉群 2" and endpoint.events == [] and secret  # empty secret field: kept
    r = c.post(f"/notifications/webhooks/{endpoint.pk}/test/")
    assert r.status_code == 302 and f"endpoint={endpoint.pk}" in r["Location"]
    delivery = Delivery.objects.get(event="ping")
    log = c.get(r["Location"]).content.decode()
    assert f'data-id="{delivery.pk}"' in log
    Delivery.objects.filter(pk=delivery.pk).update(
        status="gave_up", next_attempt_at=None, last_error="HTTP 500 boom"
    )
    failed_log = c.get("/notifications/deliveries/?status=gave_up").content.decode()
    assert "HTTP 500 boom" in failed_log and "Retry now" in failed_log
    assert (
        "data-id"
        not in c.get("/notifications/deliveries/?status=sent")
        .content.decode()
        .split("<tbody>")[1]
        .split("</tbody>")[0]
    )
    r = c.post(f"/notifications/deliveries/{delivery.pk}/retry/")
    assert r.status_code == 302
    assert Delivery.objects.get(pk=delivery.pk).status == "pending"
    actions = set(
        AuditEntry.objects.filter(object_type__startswith="notify.").values_list("object_type", "action")
    )
    assert {
        ("notify.webhookendpoint", "create"),
        ("notify.webhookendpoint", "update"),
        ("notify.delivery", "update"),
    } <= actions


def test_the_new_endpoint_form_sent_twice_creates_one_endpoint_and_the_group_gets_each_event_once(
    users, client_for, api_for
):
    """A double click on Save (or Back and Save) created two endpoints for the same bot: every ticket event was
    then posted into the group chat twice."""
    form = {"name": "客服主管群", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "format": "wecom",
            "events": "ticket.breached", "active": "on"}  # fmt: skip
    c = client_for("manager")
    first = c.post("/notifications/webhooks/new/", form)
    again = c.post("/notifications/webhooks/new/", form)

    endpoint = WebhookEndpoint.objects.get()
    assert first.status_code == again.status_code == 200
    assert endpoint.secret in again.content.decode()  # the page that showed it first was never seen
    assert services.emit("ticket.breached", {}) == 1
    # the same bot with other events is another endpoint
    assert c.post("/notifications/webhooks/new/", {**form, "events": "ticket.created"}).status_code == 200
    assert WebhookEndpoint.objects.count() == 2
    # an API client's retry gets the endpoint the first request created
    api = api_for("admin")
    body = {
        "name": "钉钉群",
        "url": "https://oapi.dingtalk.com/robot/send?access_token=t",
        "format": "dingtalk",
    }
    created = api.post("/api/v1/webhooks/", body, format="json")
    retried = api.post("/api/v1/webhooks/", body, format="json")
    assert (created.status_code, retried.status_code) == (201, 200)
    assert (
        retried.json()["id"] == created.json()["id"] and retried.json()["secret"] == created.json()["secret"]
    )


def test_filtering_an_endpoints_delivery_log_by_status_keeps_to_that_endpoint(users, client_for):
    """From an endpoint's "Deliveries", choosing a status and Apply listed every endpoint's deliveries."""
    bot = services.create_endpoint(users["admin"], {"name": "钉钉群", "url": "https://example.com/a"})
    other = services.create_endpoint(users["admin"], {"name": "企业微信群", "url": "https://example.com/b"})
    mine, theirs = services.send_test(users["admin"], bot), services.send_test(users["admin"], other)
    Delivery.objects.update(status="gave_up", next_attempt_at=None)
    c = client_for("manager")

    page = c.get(f"/notifications/deliveries/?endpoint={bot.pk}").content.decode()
    filters = page.split('class="filters card"')[1].split("</form>")[0]
    applied = c.get(f"/notifications/deliveries/?endpoint={bot.pk}&status=gave_up&channel=").content.decode()

    assert f'name="endpoint" value="{bot.pk}"' in filters  # the filter bar sends it along with the status
    assert f'data-id="{mine.pk}"' in applied and f'data-id="{theirs.pk}"' not in applied


def test_the_delivery_log_says_what_happened_in_the_readers_language_with_the_event_name_below(users, client_for):
    """The log showed only `ticket.breached`: the service-desk lead reading it in Chinese had to know the webhook
    names. It now reads 已超时 (Breached, 已逾時) with the name under it for whoever configures endpoints."""
    endpoint = services.create_endpoint(users["admin"], {"name": "hook", "url": "http://127.0.0.1:9/x"})
    services.emit("ticket.breached", {})
    services.emit("ticket.something_new", {})  # an event of a later version the product has no words for
    services.send_test(users["admin"], endpoint)
    c = client_for("manager")
    zh = c.get("/notifications/deliveries/").content.decode().split("<tbody>")[1]
    assert "已超时" in zh and "ticket.breached" in zh and "测试消息" in zh and ">ping<" in zh
    assert '<span class="mono">ticket.something_new</span>' in zh
    with translation.override("en"):
        assert Delivery.objects.get(event="ticket.breached").event_label == "Deadline missed"
        assert Delivery.objects.get(event="ping").event_label == "Test message"
    with translation.override("zh-hant"):
        assert Delivery.objects.get(event="ticket.breached").event_label == "已超時"
