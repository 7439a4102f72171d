"""Forty-first session's review of the webhooks: a group bot's address is a credential — it is stored encrypted,
as the signing secret is (a database dump, a backup or a SELECT no longer lets anyone post into the group chat)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from pharmacrm.core import crypto, keys
from pharmacrm.notify import services, tasks
from pharmacrm.notify.models import Delivery, WebhookEndpoint
from tests.core.conftest import own_keyring  # noqa: F401  (a key ring of the test's own, to rotate)
from tests.core.test_encryption_at_rest import raw_database_bytes

WECOM_KEY = "5b1c0de2-4e7f-4a1b-9c3d-8e9f0a1b2c3d"
DINGTALK_TOKEN = "d1ce5eedc0de4a1b9c3d8e9f0a1b2c3d4e5f6a7b"
WECOM = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}"
DINGTALK = f"https://oapi.dingtalk.com/robot/send?access_token={DINGTALK_TOKEN}"
BEFORE, AFTER = ("notify", "0005_delivery_sending_since"), ("notify", "0006_webhook_url_encrypted")


def raw_urls() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT url FROM notify_webhookendpoint ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
def test_a_bots_key_is_not_in_the_database_in_clear(users, client_for, api_for, receiver, tmp_path):
    """A manager set up the WeCom bot on the page, an integration the DingTalk bot through the API: the table held
    both addresses as typed, so a dump of the database (or a backup, or a SELECT) let its reader post into the
    groups. The addresses are now ciphertext under the personal-data key ring; the endpoints still post to them,
    the administrators still read them on the pages and in the API, and the form sent twice still makes one."""
    page = client_for("manager")
    form = {"name": "客服主管群", "url": WECOM, "format": "wecom", "active": "on"}
    assert page.post("/notifications/webhooks/new/", form).status_code == 200
    assert page.post("/notifications/webhooks/new/", form).status_code == 200  # Save clicked twice: one endpoint
    api = api_for("admin")
    made = api.post("/api/v1/webhooks/", {"name": "钉钉群", "url": DINGTALK, "format": "dingtalk"}, format="json")
    assert made.status_code == 201 and made.json()["url"] == DINGTALK
    local = services.create_endpoint(users["admin"], {"name": "内部接收", "url": f"{receiver.url}?key={WECOM_KEY}"})

    stored = raw_urls()
    assert len(stored) == 3 and all(v.startswith(crypto.PREFIX + ":") for v in stored)
    assert not any(WECOM_KEY in v or DINGTALK_TOKEN in v for v in stored)
    data = raw_database_bytes(tmp_path)
    assert WECOM_KEY.encode() not in data and DINGTALK_TOKEN.encode() not in data

    wecom = WebhookEndpoint.objects.get(name="客服主管群")
    assert wecom.url == WECOM  # read back as typed
    assert WECOM in page.get(f"/notifications/webhooks/{wecom.pk}/").content.decode()  # the edit form
    assert api.get(f"/api/v1/webhooks/{wecom.pk}/").json()["url"] == WECOM
    delivery = services.send_test(users["admin"], local)
    assert tasks.deliver(delivery.pk) == Delivery.Status.SENT
    assert receiver.requests[0]["path"] == f"/hook?key={WECOM_KEY}"  # posted to the address with its key


def test_an_address_longer_than_500_characters_is_refused(admin_user):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        services.create_endpoint(admin_user, {"name": "x", "url": "https://example.com/" + "a" * 490})
    assert "url" in refused.value.error_dict and not WebhookEndpoint.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_rotate_keys_re_encrypts_the_addresses(own_keyring, admin_user, settings, tmp_path):  # noqa: F811
    settings.VAR_DIR = tmp_path / "own-var"  # the rotation's lock file: not the other test worker's
    settings.VAR_DIR.mkdir()
    services.create_endpoint(admin_user, {"name": "客服主管群", "url": WECOM, "format": "wecom"})
    old = crypto.keyring().active
    assert "notify.webhookendpoint.url" in keys.key_usage()

    call_command("rotate_keys", stdout=io.StringIO())

    new = crypto.keyring().active
    assert new != old and all(v.startswith(f"e1:{new}:") for v in raw_urls())
    assert WebhookEndpoint.objects.get().url == WECOM
    assert keys.problems() == []


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_the_stored_addresses_and_back(admin_user):
    """The endpoints set up before this change had their address in clear: migrating encrypts each, migrating back
    decrypts it."""
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    with connection.cursor() as cursor:
        for name, url in (("企业微信群", WECOM), ("钉钉群", DINGTALK)):
            cursor.execute(
                "INSERT INTO notify_webhookendpoint (name, url, secret, format, events, active, created_at, version) "
                "VALUES (%s, %s, '', 'wecom', '[]', %s, CURRENT_TIMESTAMP, 1)",
                [name, url, True],
            )
    assert raw_urls() == [WECOM, DINGTALK]

    executor.loader.build_graph()
    executor.migrate([AFTER])

    stored = raw_urls()
    assert all(v.startswith(crypto.PREFIX + ":") for v in stored)
    assert not any(WECOM_KEY in v or DINGTALK_TOKEN in v for v in stored)
    assert [e.url for e in WebhookEndpoint.objects.order_by("pk")] == [WECOM, DINGTALK]
    assert keys.problems() == []

    executor.loader.build_graph()
    executor.migrate([BEFORE])
    assert raw_urls() == [WECOM, DINGTALK]
    executor.loader.build_graph()
    executor.migrate([AFTER])
    assert [e.url for e in WebhookEndpoint.objects.order_by("pk")] == [WECOM, DINGTALK]


def _held_behind_a_failed_one(admin_user, receiver) -> list[Delivery]:
    """Three ticket events for a receiver that was down: the first failed and waits for its retry, the two after it
    wait behind it (no attempt used)."""
    endpoint = services.create_endpoint(admin_user, {"name": "工单系统", "url": receiver.url})
    receiver.answers = [503]
    for n in (1, 2, 3):
        services.emit("ticket.created", {"ticket": {"number": f"TK-2026-00000{n}", "subject": "咨询"}})
    first, second, third = Delivery.objects.filter(endpoint=endpoint).order_by("pk")
    assert tasks.deliver(first.pk) == Delivery.Status.FAILED
    for held in (second, third):
        tasks.deliver(held.pk)
        held.refresh_from_db()
        assert held.status == Delivery.Status.PENDING and held.attempts == 0  # held behind the first
    return [first, second, third]


def _numbers(receiver) -> list[str]:
    return [r["json"]["data"]["ticket"]["number"] for r in receiver.requests]


def test_retry_now_of_a_delivery_held_behind_a_failed_one_sends_it_in_its_order(users, client_for, receiver):
    """The receiver is back. The administrator clicked "Retry now" on the newest event, held behind the one that
    had failed: the page said "queued to be sent again now", and the worker held it back at once, behind the failed
    one's retry up to an hour later. The retry now tries the endpoint with the failed one, and sends the held ones
    right after it, in their order; the page says so."""
    first, second, third = _held_behind_a_failed_one(users["admin"], receiver)

    answer = client_for("admin").post(f"/notifications/deliveries/{third.pk}/retry/", HTTP_ACCEPT_LANGUAGE="en",
                                      follow=True)  # fmt: skip

    said = answer.content.decode()
    assert f"This delivery waits behind #{first.pk}, an earlier one to the same endpoint that failed" in said
    assert "queued to be sent again now" not in said
    assert tasks.sweep() == 3
    assert _numbers(receiver) == ["TK-2026-000001", "TK-2026-000001", "TK-2026-000002", "TK-2026-000003"]
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}
    from pharmacrm.core.models import AuditEntry

    retried = AuditEntry.objects.filter(extra__action_name="retry").order_by("seq")
    assert [(e.object_id, e.extra.get("ahead_of"), e.extra.get("behind")) for e in retried] == [
        (str(first.pk), third.pk, None), (str(third.pk), None, first.pk),
    ]


def test_retry_through_the_api_of_a_held_delivery_names_the_one_it_waits_behind(users, api_for, receiver):
    first, second, third = _held_behind_a_failed_one(users["admin"], receiver)
    receiver.answers = [503]  # still down: the held ones wait behind the first again, no attempt used
    api = api_for("manager")

    answer = api.post(f"/api/v1/deliveries/{second.pk}/retry/")

    assert answer.status_code == 200 and answer.json()["behind"] == first.pk
    tasks.sweep()
    assert _numbers(receiver) == ["TK-2026-000001", "TK-2026-000001"]  # one knock on the dead endpoint
    for held in (second, third):
        held.refresh_from_db()
        assert held.status == Delivery.Status.PENDING and held.attempts == 0
    # a delivery held behind none: `behind` is null
    assert api.post(f"/api/v1/deliveries/{first.pk}/retry/").json()["behind"] is None
    # while a worker is trying the first one, the retry of one behind it says so and changes nothing
    Delivery.objects.filter(pk=first.pk).update(next_attempt_at=timezone_now())
    assert tasks.claim(first.pk) is not None
    refused = api_for("manager", lang="en").post(f"/api/v1/deliveries/{third.pk}/retry/")
    assert refused.status_code == 400
    assert f"waits behind #{first.pk}" in refused.json()["status"][0]


def timezone_now():
    from django.utils import timezone

    return timezone.now()


def test_the_endpoint_list_shows_where_a_bot_points_without_any_of_its_key(users, client_for):
    """The list of endpoints showed each address cut at 60 characters: a WeCom bot's address reaches its key at 53,
    so the list showed the key's first characters to whoever looked at the screen. It shows the address as the audit
    trail does now (the key as ***); the edit form still shows it whole to those who change it."""
    services.create_endpoint(users["admin"], {"name": "客服主管群", "url": WECOM, "format": "wecom"})
    page = client_for("manager").get("/notifications/webhooks/").content.decode()
    assert "客服主管群" in page and "qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***" in page
    assert WECOM_KEY[:6] not in page
