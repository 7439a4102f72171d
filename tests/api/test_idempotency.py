"""`Idempotency-Key` on the API's POSTs: a client that lost the answer to a POST (a time-out, a dropped connection)
sends it again with the same key and gets the first answer — one ticket, one adverse-event case, one audit entry —
instead of a second record. The key is scoped to whoever sent it; reusing it for another request is refused."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection
from django.utils import timezone

from pharmacrm.core import crypto, idempotency
from pharmacrm.core.models import AuditEntry, IdempotentRequest
from pharmacrm.servicedesk.models import Ticket

from .conftest import token_for

URL = "/api/v1/tickets/"


@pytest.fixture
def body(xiehe):
    return {"subject": "客户询问冷链运输温度", "channel": "phone", "category": "drug_info", "institution": xiehe.pk}


def _created_audits() -> int:
    return AuditEntry.objects.filter(object_type="servicedesk.ticket", action="create").count()


def test_the_same_post_sent_again_with_its_key_creates_one_ticket_and_gets_the_first_answer(api_for, body):
    client = api_for("agent")
    first = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="6f1c2a9e-retry-1")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    again = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="6f1c2a9e-retry-1")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Ticket.objects.count() == 1 and _created_audits() == 1


def test_without_a_key_or_with_a_new_key_each_post_is_a_new_ticket(api_for, body):
    client = api_for("agent")
    assert client.post(URL, body, format="json").status_code == 201
    assert client.post(URL, body, format="json").status_code == 201
    assert client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1").status_code == 201
    assert client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-2").status_code == 201
    assert Ticket.objects.count() == 4


def test_a_key_is_the_senders_own_another_user_may_use_the_same_one(api_for, body):
    assert api_for("agent").post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="shared").status_code == 201
    other = api_for("manager").post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    assert other.status_code == 201 and "Idempotent-Replayed" not in other
    assert Ticket.objects.count() == 2


def test_a_key_reused_for_another_request_is_refused_and_nothing_is_created(api_for, body):
    client = api_for("agent", lang="en")
    assert client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="once").status_code == 201
    other = client.post(URL, {**body, "subject": "另一个问题"}, format="json", HTTP_IDEMPOTENCY_KEY="once")
    assert other.status_code == 422
    assert other.json() == {"detail": "This Idempotency-Key was used for another request: use a new key for a new request."}
    zh = api_for("agent", lang="zh-hans").post(URL, {**body, "subject": "又一个"}, format="json", HTTP_IDEMPOTENCY_KEY="once")
    assert zh.status_code == 422 and "幂等键" in zh.json()["detail"]
    assert Ticket.objects.count() == 1


def test_a_malformed_key_is_refused_naming_the_header(api_for, body):
    for key in ("键-1", "a" * 256, "with space"):
        answer = api_for("agent", lang="en").post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
        assert answer.status_code == 400 and "Idempotency-Key" in answer.json()["detail"]
    assert Ticket.objects.count() == 0


def test_a_refused_request_is_answered_the_same_when_retried(api_for, body):
    """A 400 is the request's answer: sent again unchanged it is the same 400, from the kept answer."""
    client = api_for("agent", lang="en")
    bad = {**body, "channel": "fax"}
    first = client.post(URL, bad, format="json", HTTP_IDEMPOTENCY_KEY="bad-1")
    again = client.post(URL, bad, format="json", HTTP_IDEMPOTENCY_KEY="bad-1")
    assert first.status_code == again.status_code == 400
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"


def test_a_refusal_of_the_sender_is_not_kept_so_a_retry_with_rights_runs(users, api_for, body):
    """The auditor may not raise tickets (403): that refusal is about who sent it, and is not kept."""
    assert api_for("auditor").post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 403
    assert not IdempotentRequest.objects.exists()


def _scope(user, key: str) -> tuple[str, str]:
    return f"Token {token_for(user)}", crypto.blind_index(f"user:{user.pk}\x00{key}", "idempotency-key")


def test_a_request_still_being_processed_answers_409_and_an_abandoned_one_is_taken_over(users, body):
    """Two retries in parallel: the second waits for the first (409). A first request whose process died before
    answering (a worker killed) holds the key no longer than STALE_AFTER."""
    from rest_framework.test import APIClient

    header, scope = _scope(users["agent"], "parallel")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header, HTTP_ACCEPT_LANGUAGE="en")
    assert client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="parallel").status_code == 201
    # as the row stands while the first request runs: taken, no answer yet
    row = IdempotentRequest.objects.get(scope=scope)
    IdempotentRequest.objects.filter(pk=row.pk).update(done=False, status_code=None, body="")
    busy = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="parallel")
    assert busy.status_code == 409 and "being processed" in busy.json()["detail"]
    IdempotentRequest.objects.filter(pk=row.pk).update(created_at=timezone.now() - idempotency.STALE_AFTER - dt.timedelta(seconds=1))
    taken = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="parallel")
    assert taken.status_code == 201 and "Idempotent-Replayed" not in taken and Ticket.objects.count() == 2
    assert client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="parallel")["Idempotent-Replayed"] == "true"


def test_the_kept_answer_is_encrypted_at_rest_and_forgotten_after_a_day(api_for, body):
    api_for("agent").post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="enc")
    with connection.cursor() as cursor:
        cursor.execute("SELECT body FROM core_idempotentrequest")
        (raw,) = cursor.fetchone()
    assert "冷链" not in raw and raw.startswith("e1:")
    assert idempotency.purge() == 0
    assert idempotency.purge(timezone.now() + dt.timedelta(hours=idempotency.IDEMPOTENCY_HOURS, seconds=1)) == 1
    assert not IdempotentRequest.objects.exists()


def test_a_day_old_key_is_a_new_request(api_for, body):
    client = api_for("agent")
    client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="old")
    IdempotentRequest.objects.update(created_at=timezone.now() - dt.timedelta(hours=idempotency.IDEMPOTENCY_HOURS, seconds=1))
    again = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="old")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert Ticket.objects.count() == 2


def test_a_body_over_the_in_memory_limit_is_not_covered_and_runs_as_without_a_key(api_for, body, settings):
    """An import's file (up to 50 MB) is not read into memory to be compared: the key does not apply to it."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 200  # the form's fields are below it, the multipart body is above
    client = api_for("agent")
    for _ in range(2):
        answer = client.post(URL, body, format="multipart", HTTP_IDEMPOTENCY_KEY="big")
        assert answer.status_code == 201 and "Idempotent-Replayed" not in answer
    assert Ticket.objects.count() == 2 and not IdempotentRequest.objects.exists()


def test_the_schema_offers_the_header_on_every_signed_in_post_with_its_refusals(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/tickets/"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in operation["parameters"])
    assert {"409", "422"} <= set(operation["responses"])
    token = schema["paths"]["/api/v1/auth/token/"]["post"]  # anonymous: no key applies
    assert not any(p.get("name") == "Idempotency-Key" for p in token.get("parameters", []))


def test_a_replayed_answer_that_showed_personal_data_is_audited_as_a_read_again(api_for, body):
    """The manager sees a caller's name and phone in clear, and the answer to the POST is audited as a read of them.
    Replayed from the kept answer, the view does not run: the replay is audited as a read itself, naming the first
    request, and is not kept by the browser either."""
    client = api_for("manager")
    sent = {**body, "caller_name": "王建国", "caller_phone": "13812345678"}
    first = client.post(URL, sent, format="json", HTTP_IDEMPOTENCY_KEY="clear")
    assert first.status_code == 201 and first.json()["caller_phone"] == "138 1234 5678"
    reads = AuditEntry.objects.filter(action="read_personal")
    assert reads.count() == 1
    again = client.post(URL, sent, format="json", HTTP_IDEMPOTENCY_KEY="clear")
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert "no-store" in again["Cache-Control"]
    replay = reads.order_by("-seq").first()
    assert reads.count() == 2 and replay.object_type == "core.idempotentrequest"
    assert replay.actor.username == "manager" and replay.extra["replayed_request"] == first["X-Request-ID"]
    assert Ticket.objects.count() == 1


def test_a_replayed_answer_without_personal_data_is_not_audited(api_for, body):
    client = api_for("agent")
    client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="plain")
    before = AuditEntry.objects.count()
    client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="plain")
    assert AuditEntry.objects.count() == before


def test_a_retry_serialised_again_is_the_same_request_replayed(api_for, body):
    """Session 57 (API QA): the same JSON sent again with its keys in another order and other spacing (an app's
    outbox encoding the stored object again) was refused as another request (422), as if the key had been reused."""
    client = api_for("agent", lang="en")
    first = client.post(URL, data=json.dumps(body, ensure_ascii=False), content_type="application/json",
                        HTTP_IDEMPOTENCY_KEY="outbox-7")  # fmt: skip
    again = json.dumps(dict(reversed(list(body.items()))), indent=2)  # other order, spacing and \\u escapes

    retry = client.post(URL, data=again, content_type="application/json", HTTP_IDEMPOTENCY_KEY="outbox-7")

    assert first.status_code == retry.status_code == 201, retry.content
    assert retry["Idempotent-Replayed"] == "true" and retry.json()["id"] == first.json()["id"]
    assert Ticket.objects.count() == 1
    changed = client.post(URL, data=json.dumps({**body, "subject": "另一个问题"}), content_type="application/json",
                          HTTP_IDEMPOTENCY_KEY="outbox-7")  # fmt: skip
    assert changed.status_code == 422


# --- the creates users make most: each retried with its key is the first one --------------------------------------


def _order_line(institution) -> dict:
    return {"order_number": "API-7", "line_number": 1, "order_date": str(timezone.localdate() - dt.timedelta(days=12)),
            "credit_code": institution.credit_code, "product_code": "P1", "quantity": 2, "unit_price": 10.5}  # fmt: skip


def _creates(institution) -> dict:
    """what → (role, path, body, what else a second one would be, how many there are)."""
    from pharmacrm.engagement.models import Interaction
    from pharmacrm.keyaccounts.models import Proposal
    from pharmacrm.safety.models import SafetyCase
    from pharmacrm.sales.models import OrderLine
    from tests.safety.conftest import COMPLETE

    return {
        "ticket": ("agent", URL, {"subject": "冷链运输温度", "channel": "phone", "category": "drug_info",
                                  "institution": institution.pk}, {"subject": "另一个问题"}, Ticket.objects.count),
        "interaction": ("rep", "/api/v1/interactions/", {"institution": institution.pk, "channel": "wechat",
                                                         "subject": "微信咨询", "notes": ""},
                        {"subject": "电话回访"}, Interaction.objects.count),
        "key-account proposal": ("analyst", "/api/v1/keyaccounts/proposals/", {"institution": institution.pk,
                                                                               "reason": "采购额连续两年居前", "kind": "list"},
                                 {"reason": "学术影响力大"}, Proposal.objects.count),
        "orders": ("manager", "/api/v1/sales/orders/", {"lines": [_order_line(institution)]},
                   {"mode": "all"}, OrderLine.objects.count),
        "safety case": ("pv", "/api/v1/safety/cases/", COMPLETE, {"narrative": "另一位患者用药后出现皮疹。"},
                        SafetyCase.objects.count),
    }  # fmt: skip


@pytest.mark.parametrize("what", ["ticket", "interaction", "key-account proposal", "orders", "safety case"])
def test_each_create_a_client_retries_gets_the_first_answer_and_creates_nothing_more(api_for, xiehe, what):
    role, path, body, other, count = _creates(xiehe)[what]
    client, key = api_for(role, lang="en"), "retry-" + what.replace(" ", "-")

    first = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    created, audited = count(), AuditEntry.objects.exclude(action="read_personal").count()
    again = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    reused = client.post(path, {**body, **other}, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert first.status_code in (200, 201), first.content
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again["Idempotent-Replayed"] == "true"
    assert reused.status_code == 422 and "Idempotency-Key" in reused.json()["detail"]
    assert created == count() == 1 and AuditEntry.objects.exclude(action="read_personal").count() == audited


def test_a_file_upload_retried_with_a_new_boundary_is_the_same_request(api_for):
    """An ICSR posted as a multipart file and retried by an HTTP library that draws a new boundary for each encoding
    (requests, urllib3) was refused as another request (422) — the body differs only in its boundary; it is the same
    request, replayed: one case. Another file with the same key is still another request."""
    from pathlib import Path

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test.client import encode_multipart

    from pharmacrm.safety.models import SafetyCase

    examples = Path(__file__).parent.parent / "safety" / "data" / "fda-examples"
    client = api_for("pv", lang="en")

    def upload(name: str, boundary: str):
        data = (examples / name).read_bytes()
        body = encode_multipart(boundary, {"file": SimpleUploadedFile(name, data, content_type="application/xml")})
        return client.post("/api/v1/safety/icsrs/", body, content_type=f"multipart/form-data; boundary={boundary}",
                           HTTP_IDEMPOTENCY_KEY="icsr-upload-1")  # fmt: skip

    first = upload("FAERS2022Scenario1.xml", "c2VuZC0x4f0e1a")
    retry = upload("FAERS2022Scenario1.xml", "----WebKitFormBoundary7MA4YWxk")
    other = upload("FAERS2022Scenario2.xml", "9a1b2c3d")

    assert first.status_code == retry.status_code == 201, retry.content
    assert retry["Idempotent-Replayed"] == "true" and retry.json() == first.json()
    assert other.status_code == 422 and SafetyCase.objects.count() == 1
