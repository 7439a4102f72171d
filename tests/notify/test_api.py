"""The notification API: /api/v1/notifications/ (one's own), /api/v1/webhooks/ and /api/v1/deliveries/
(service administrators), per role."""

from __future__ import annotations

import pytest

from pharmacrm.core.roles import Role
from pharmacrm.notify import services
from pharmacrm.notify.models import Delivery, WebhookEndpoint

ROLES = [r.value for r in Role]
ADMINS = {"admin", "manager"}


def test_my_notifications_unread_filter_and_mark_read(users, api_for):
    a = services.send([users["agent"]], kind="ticket.assigned", title="TK-2026-000001")[0]
    b = services.send([users["agent"]], kind="ticket.breached", title="TK-2026-000002")[0]
    other = services.send([users["manager"]], kind="k", title="not yours")[0]
    api = api_for("agent")
    body = api.get("/api/v1/notifications/").json()
    assert [n["id"] for n in body["results"]] == [b.pk, a.pk]
    assert api.get(f"/api/v1/notifications/{other.pk}/").status_code == 404
    assert api.get("/api/v1/notifications/unread-count/").json() == {"unread": 2}
    r = api.post("/api/v1/notifications/mark-read/", {"ids": [a.pk, other.pk]}, format="json")
    assert r.status_code == 200 and r.json() == {"marked": 1, "unread": 1}
    unread = api.get("/api/v1/notifications/?unread=true").json()["results"]
    assert [n["id"] for n in unread] == [b.pk] and unread[0]["read"] is False
    assert api.post("/api/v1/notifications/mark-read/", {}, format="json").status_code == 400
    r = api.post("/api/v1/notifications/mark-read/", {"all": True}, format="json")
    assert r.json() == {"marked": 1, "unread": 0}
    assert services.unread_count(users["manager"]) == 1


def test_anonymous_is_refused(anon):
    for path in ("/api/v1/notifications/", "/api/v1/webhooks/", "/api/v1/deliveries/"):
        assert anon.get(path).status_code in (401, 403)


@pytest.mark.parametrize("role", ROLES)
def test_access_per_role(role, users, api_for):
    endpoint = services.create_endpoint(users["admin"], {"name": "hook", "url": "http://127.0.0.1:9/x"})
    services.emit("ticket.created", {})
    delivery = Delivery.objects.get()
    api = api_for(role)
    assert api.get("/api/v1/notifications/").status_code == 200
    ok = role in ADMINS
    assert api.get("/api/v1/webhooks/").status_code == (200 if ok else 403)
    assert api.get(f"/api/v1/webhooks/{endpoint.pk}/").status_code == (200 if ok else 403)
    assert api.get("/api/v1/deliveries/").status_code == (200 if ok else 403)
    assert api.get(f"/api/v1/deliveries/{delivery.pk}/").status_code == (200 if ok else 403)
    r = api.post("/api/v1/webhooks/", {"name": "n", "url": "https://example.com/h"}, format="json")
    assert r.status_code == (201 if ok else 403)
    assert api.patch(f"/api/v1/webhooks/{endpoint.pk}/", {"name": "x"}, format="json").status_code == (
        200 if ok else 403
    )
    assert api.post(f"/api/v1/webhooks/{endpoint.pk}/test/").status_code == (202 if ok else 403)
    assert api.post(f"/api/v1/deliveries/{delivery.pk}/retry/").status_code == (200 if ok else 403)
    assert api.delete(f"/api/v1/webhooks/{endpoint.pk}/").status_code == (204 if ok else 403)
    endpoint.refresh_from_db()
    assert endpoint.active is (not ok) and endpoint.name == ("x" if ok else "hook")


def test_webhook_secret_is_write_only_and_shown_once(api_for):
    api = api_for("admin")
    r = api.post(
        "/api/v1/webhooks/",
        {"name": "企业微信群", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "format": "wecom",
         "events": ["ticket.breached"]},
        format="json",
    )  # fmt: skip
    assert r.status_code == 201, r.content
    created = r.json()
    assert len(created["secret"]) == 64 and created["events"] == ["ticket.breached"]
    pk = created["id"]
    assert "secret" not in api.get(f"/api/v1/webhooks/{pk}/").json()
    assert all("secret" not in row for row in api.get("/api/v1/webhooks/").json()["results"])
    r = api.patch(f"/api/v1/webhooks/{pk}/", {"secret": "replaced-secret"}, format="json")
    assert r.status_code == 200 and "secret" not in r.json()
    assert WebhookEndpoint.objects.get(pk=pk).secret == "replaced-secret"
    bad = api.post("/api/v1/webhooks/", {"name": "x", "url": "file:///etc/passwd"}, format="json")
    assert bad.status_code == 400 and "url" in bad.json()


def test_delivery_log_filters_and_retry_of_a_sent_delivery(users, api_for, receiver):
    from pharmacrm.notify import tasks

    services.create_endpoint(users["admin"], {"name": "hook", "url": receiver.url})
    services.emit("ticket.created", {})
    services.emit("ticket.status", {})
    sent = Delivery.objects.get(event="ticket.created")
    tasks.deliver(sent.pk)
    api = api_for("manager")
    rows = api.get("/api/v1/deliveries/?status=sent").json()["results"]
    assert [d["id"] for d in rows] == [sent.pk] and rows[0]["last_status_code"] == 200
    assert len(api.get("/api/v1/deliveries/?status=pending").json()["results"]) == 1
    assert api.get("/api/v1/deliveries/?status=nonsense").status_code == 400
    r = api.post(f"/api/v1/deliveries/{sent.pk}/retry/")
    assert r.status_code == 400 and "status" in r.json()


def test_the_delivery_log_shows_an_e_mails_subject_not_its_body(users, api_for):
    """The log is the service managers'; an e-mail's body was written for its recipient (a PV officer's
    quality complaint hand-off carried the complaint's text)."""
    users["pv"].email = "pv@example.com"
    users["pv"].save(update_fields=["email"])
    services.send([users["pv"]], kind="safety.qa-handoff", title="QC-2026-000001：质量投诉已移交给您",
                  body="药片表面有黑色斑点，同批次两盒均有。", url="/safety/")  # fmt: skip
    rows = api_for("manager").get("/api/v1/deliveries/?channel=email").json()["results"]
    assert rows and all(set(r["payload"]) == {"subject"} for r in rows)
    assert "黑色斑点" not in str(rows) and "QC-2026-000001" in str(rows)


@pytest.mark.parametrize("version", ["abc", "²", "1" * 40])
def test_a_garbled_version_of_an_endpoint_is_a_stale_edit(users, version):
    """A version that is no number counts as an old one: a conflict and the endpoint unchanged, not a ValueError."""
    from pharmacrm.customers.services import ConflictError

    endpoint = services.create_endpoint(users["admin"], {"name": "hook", "url": "http://127.0.0.1:9/x"})
    with pytest.raises(ConflictError):
        services.update_endpoint(users["admin"], endpoint, {"name": "renamed"}, version=version)
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).name == "hook"
