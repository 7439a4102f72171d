"""Forty-first session, notifications: a group bot's address is a credential — the audit trail keeps where a webhook
points, not the key that lets anyone post into the group."""

from __future__ import annotations

import json

import pytest

from pharmacrm.core.roles import Role
from pharmacrm.notify import services
from pharmacrm.notify.models import WebhookEndpoint

ROLES = [r.value for r in Role]
WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7a0c-4bc4-97a0-0ec2ae2a5aaa"
NEW_WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=0b1d2f3e-9c8a-4e6f-8d7c-5b4a3c2d1e0f"
DINGTALK = "https://oapi.dingtalk.com/robot/send?access_token=c0ffee5eed1234567890abcdef"
KEYS = ("693a91f6", "0b1d2f3e", "c0ffee5eed")


def _endpoint_entries(api) -> list[dict]:
    answer = api.get("/api/v1/audit/", {"object_type": "notify.webhookendpoint"})
    assert answer.status_code == 200, answer.content
    return answer.json()["results"]


def test_the_audit_trail_names_a_bots_address_without_its_key(users, client_for, api_for):
    """A manager set up the WeCom group bot of the service supervisors and later pasted the bot's new key; another
    set up a DingTalk bot through the API. The auditor, who may not configure webhooks, read both keys in the audit
    trail — and with either could post anything into the group chat. It now reads the address with its key masked,
    and still sees that the address changed."""
    page = client_for("manager")
    assert page.post("/notifications/webhooks/new/", {"name": "客服主管群", "url": WECOM, "format": "wecom",
                                                      "active": "on"}).status_code == 200  # fmt: skip
    endpoint = WebhookEndpoint.objects.get()
    assert page.post(f"/notifications/webhooks/{endpoint.pk}/", {
        "name": "客服主管群", "url": NEW_WECOM, "format": "wecom", "active": "on", "version": endpoint.version,
    }).status_code == 302  # fmt: skip
    api = api_for("admin")
    assert api.post("/api/v1/webhooks/", {"name": "钉钉群", "url": DINGTALK, "format": "dingtalk"},
                    format="json").status_code == 201  # fmt: skip
    endpoint.refresh_from_db()
    assert endpoint.url == NEW_WECOM  # the bot is posted to with its key, as before

    entries = _endpoint_entries(api_for("auditor"))

    text = json.dumps(entries, ensure_ascii=False)
    assert not any(key in text for key in KEYS), text
    urls = {e["action"]: e["changes"]["url"] for e in entries if e["object_id"] == str(endpoint.pk)}
    assert urls["create"] == [None, "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"]
    assert urls["update"] == ["https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"] * 2  # changed, both masked
    assert "https://oapi.dingtalk.com/robot/send?access_token=***" in text


@pytest.mark.parametrize("role", ROLES)
def test_who_reads_a_webhooks_audit_entries_reads_no_key(role, users, admin_user, api_for):
    services.create_endpoint(admin_user, {"name": "客服主管群", "url": WECOM, "format": "wecom"})
    answer = api_for(role).get("/api/v1/audit/", {"object_type": "notify.webhookendpoint"})
    assert answer.status_code == (200 if role in ("admin", "auditor") else 403)
    assert "693a91f6" not in answer.content.decode()


def test_an_address_is_masked_in_every_part_that_can_hold_a_credential():
    assert services.audited_url("https://ops:pa55@hooks.example.com/in/crm?token=abc&v=2#frag") == (
        "https://ops:***@hooks.example.com/in/crm?token=***&v=***#***"
    )
    assert services.audited_url("https://hooks.example.com/in/crm") == "https://hooks.example.com/in/crm"
    assert services.audited_url("") == ""


@pytest.mark.parametrize("role", ROLES)
def test_send_test_clicked_twice_posts_one_test_message_into_the_group(
    role, users, admin_user, client_for, api_for, receiver
):
    """A double click on "Send test" (or the API client's retry) queued two pings: the group read 来自 PharmaCRM 的测试
    消息 twice, and the log showed two tests. While the first has not gone out, a second click says it is on its way;
    once it went, a test sends another. Only administrators and managers may send one."""
    from pharmacrm.core.models import AuditEntry
    from pharmacrm.notify import tasks
    from pharmacrm.notify.models import Delivery

    endpoint = services.create_endpoint(admin_user, {"name": "客服主管群", "url": receiver.url, "format": "wecom"})
    page = client_for(role)
    path = f"/notifications/webhooks/{endpoint.pk}/test/"

    first, again = page.post(path), page.post(path, follow=True)

    if role not in ("admin", "manager"):
        assert first.status_code == again.status_code == 403 and not Delivery.objects.exists()
        return
    assert first.status_code == 302 and again.status_code == 200
    assert "已在发送途中" in again.content.decode()  # said so, in the page's language
    ping = Delivery.objects.get(event="ping")
    assert AuditEntry.objects.filter(extra__action_name="send_test").count() == 1  # one test, one entry
    assert tasks.deliver(ping.pk) == Delivery.Status.SENT and len(receiver.requests) == 1
    # sent: the next test is a new one (through the API, the same rule)
    api = api_for(role)
    answer = api.post(f"/api/v1/webhooks/{endpoint.pk}/test/")
    retried = api.post(f"/api/v1/webhooks/{endpoint.pk}/test/")
    assert answer.status_code == retried.status_code == 202
    assert answer.json()["id"] == retried.json()["id"] != ping.pk
    assert Delivery.objects.filter(event="ping").count() == 2
