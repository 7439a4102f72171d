"""Sending deliveries, in the Huey worker.

`dispatch(delivery_id)` is queued when a delivery is committed; `sweep_deliveries` runs every minute and
sends whatever is due (retries after the back-off, and anything the queue lost). Before sending, a worker
claims the delivery with a conditional UPDATE that moves its next attempt into the future (a lease): two
workers never send the same delivery twice, and a worker killed before sending leaves a lease that runs out. Just
before the send the delivery is marked as being sent: one whose worker stopped mid-send is never sent again by
itself (it may have gone out) but ends as "gave up" with that reason.

A failure (SMTP error, timeout, non-2xx answer, a bot's errcode) is kept on the row with its reason; the
next attempt comes 1, 2, 4 … minutes later (at most an hour); after NOTIFY_MAX_ATTEMPTS it gives up and
stays visible in the delivery log, where an administrator can retry it."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db.models import F
from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from .models import Delivery, WebhookEndpoint

log = logging.getLogger(__name__)
DUE = (Delivery.Status.PENDING, Delivery.Status.FAILED)
BATCH = 100
LOG_KEEP = 20


def max_attempts() -> int:
    return getattr(settings, "NOTIFY_MAX_ATTEMPTS", 8)


def timeout() -> float:
    return getattr(settings, "NOTIFY_WEBHOOK_TIMEOUT", 10)


def lease() -> dt.timedelta:
    return dt.timedelta(seconds=getattr(settings, "NOTIFY_LEASE_SECONDS", 300))


def backoff(attempts: int) -> dt.timedelta:
    """Wait before the next attempt after `attempts` failed ones: 1, 2, 4 … minutes, at most an hour."""
    return dt.timedelta(minutes=min(2 ** max(attempts - 1, 0), 60))


class SendError(Exception):
    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


# --- waiting for the database ----------------------------------------------------------------------

# SQLite has one writer at a time. A statement waits for it up to the busy timeout (20 s, settings.py), but a
# write lock held longer (an all-or-nothing import, a restore) makes it fail with "database is locked", and in a
# shared-cache database (the tests' in-memory one) a table another connection is writing fails at once with
# "database table is locked", busy timeout or not. Two workers claiming the same delivery at once met the latter.
# A worker's statements outside a transaction are therefore tried again for a while (PATIENCE seconds; once the
# delivery is claimed, record_patience(), half the lease: what was sent must be stored, or the lease would run out
# and it would be sent again); a claim that still cannot be made leaves the delivery as it was, due, for the next
# sweep.
#
# A send itself is never repeated by a worker that finds its lease run out: just before sending, the worker marks the
# delivery as being sent (`sending_since`, the lease renewed); a claim never takes a delivery so marked, and what the
# send came to is then waited for without a deadline (a lock held past the whole lease, an import, a restore: the
# worker is alive and stores it as soon as the lock is free). A delivery still marked once its lease has run out
# belongs to a worker that stopped mid-send, or that is still waiting for the lock: whether it went out is not known,
# so the sweep does not send it again but ends it as "gave up" with that reason (an administrator retries it from the
# delivery log if it did not arrive); a worker that was only waiting then stores what really happened over it.
PATIENCE = 5.0
AFTER_SEND = math.inf  # what a send came to: stored however long the lock is held


def record_patience() -> float:
    return lease().total_seconds() / 2


class DatabaseBusy(Exception):
    """The database stayed locked for longer than the worker waits (the statement tried was not done)."""


def patiently(fn, *args, patience: float | None = None, **kwargs):
    """fn(*args, **kwargs), tried again while the database is locked (see above), for `patience` seconds after
    the first try; then DatabaseBusy. Inside a transaction it is not retried (the transaction is broken)."""
    from django.db import OperationalError, connection

    from pharmacrm.core.middleware import database_busy

    deadline = time.monotonic() + (PATIENCE if patience is None else patience)
    pause = 0.01
    while True:
        try:
            return fn(*args, **kwargs)
        except OperationalError as e:
            if not database_busy(e) or connection.in_atomic_block:
                raise
            if time.monotonic() >= deadline:
                raise DatabaseBusy(str(e)) from e
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


# --- claiming --------------------------------------------------------------------------------------


def _take(delivery_id: int, now: dt.datetime) -> int:
    return Delivery.objects.filter(
        pk=delivery_id, status__in=DUE, next_attempt_at__lte=now, sending_since__isnull=True
    ).update(next_attempt_at=now + lease(), attempts=F("attempts") + 1)


def _start_send(delivery: Delivery) -> bool:
    """Mark the claimed delivery as being sent, the lease renewed, if the claim is still this worker's (a lock held
    past the lease since the claim: another worker may have claimed it again, counting another attempt). False: it
    is not ours any more, not to be sent."""
    now = timezone.now()
    marked = Delivery.objects.filter(
        pk=delivery.pk, status__in=DUE, attempts=delivery.attempts, next_attempt_at=delivery.next_attempt_at,
        sending_since__isnull=True,
    ).update(sending_since=now, next_attempt_at=now + lease())  # fmt: skip
    if marked:
        delivery.sending_since, delivery.next_attempt_at = now, now + lease()
    return bool(marked)


def claim(delivery_id: int) -> Delivery | None:
    """Take the delivery for this worker if it is due: one conditional UPDATE, so of two workers that try
    at once exactly one succeeds. Counts the attempt. Waits for a locked database (patiently); DatabaseBusy when it
    stays locked, the delivery untouched."""
    if not patiently(_take, delivery_id, timezone.now()):
        return None
    query = Delivery.objects.select_related("endpoint", "notification__recipient")
    # ours now (the lease): reading it back is waited for as long as what the send's outcome is stored with
    return patiently(query.get, pk=delivery_id, patience=record_patience())


def interrupted_ids(limit: int = BATCH) -> list[int]:
    """Deliveries marked as being sent whose lease has run out (see "waiting for the database")."""
    return list(
        Delivery.objects.filter(status__in=DUE, next_attempt_at__lte=timezone.now(), sending_since__isnull=False)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def give_up_interrupted(delivery_id: int) -> bool:
    """End a delivery whose send was interrupted as "gave up", its reason saying it may have gone out: never sent
    again by itself. The mark stays, so that a worker that was only waiting for the lock stores its outcome over it."""
    from pharmacrm.core import notsent

    now = timezone.now()
    delivery = Delivery.objects.filter(
        pk=delivery_id, status__in=DUE, next_attempt_at__lte=now, sending_since__isnull=False
    ).first()
    if delivery is None:
        return False
    reason = notsent.code("send_interrupted")
    entry = {"at": now.isoformat(), "attempt": delivery.attempts, "code": None, "error": reason}
    return bool(
        Delivery.objects.filter(
            pk=delivery.pk, status__in=DUE, sending_since=delivery.sending_since, next_attempt_at__lte=now
        ).update(
            status=Delivery.Status.GAVE_UP, next_attempt_at=None, last_error=reason,
            log=(list(delivery.log) + [entry])[-LOG_KEEP:],
        )
    )  # fmt: skip


def due_ids(limit: int = BATCH) -> list[int]:
    """Deliveries due now, earliest first, in the order they were queued when due at the same moment (events
    held behind a failing one go out in their order); through the partial index on pending/failed rows."""
    return list(
        Delivery.objects.filter(status__in=DUE, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


# --- sending ---------------------------------------------------------------------------------------


NOTIFICATION_ID = re.compile(r"<pharmacrm-notify\.\d+\.[0-9a-f]+@[^<>\s]+>")


def message_id(delivery: Delivery, sender: str) -> str:
    """The Message-ID of a notification's e-mail. It names the mail as a notification: by default notifications go
    out from the service desk's address, and a user's answer to one ("收到") lands in the service mailbox, where
    it must not become a customer's ticket (servicedesk.mail recognises it by this id in In-Reply-To)."""
    address = email.utils.parseaddr(sender)[1]
    domain = address.rsplit("@", 1)[-1].strip() if "@" in address else ""
    return f"<pharmacrm-notify.{delivery.pk}.{secrets.token_hex(8)}@{domain or 'pharmacrm.localhost'}>"


def is_notification_id(value: str) -> bool:
    """Whether a Message-ID is that of a notification's e-mail."""
    return bool(NOTIFICATION_ID.fullmatch(value or ""))


def send_email(delivery: Delivery) -> None:
    sender = getattr(settings, "NOTIFY_MAIL_FROM", "") or settings.DEFAULT_FROM_EMAIL
    message = EmailMessage(
        subject=delivery.payload.get("subject", ""),
        body=delivery.payload.get("body", ""),
        from_email=sender,
        to=[delivery.email],
        headers={
            "Auto-Submitted": "auto-generated",
            "X-PharmaCRM-Delivery": str(delivery.pk),
            "Message-ID": message_id(delivery, sender),
        },
    )
    with get_connection(fail_silently=False) as connection:
        connection.send_messages([message])


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>"""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def dingtalk_url(url: str, secret: str, now_ms: int | None = None) -> str:
    """DingTalk's signed bot URL: timestamp (ms) and sign = base64(HMAC-SHA256(secret, "ts\\nsecret"))."""
    ts = str(now_ms if now_ms is not None else int(time.time() * 1000))
    mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(mac).decode())
    return f"{url}{'&' if '?' in url else '?'}timestamp={ts}&sign={sign}"


_MARKUP = str.maketrans({"[": "［", "]": "］", "<": "＜", ">": "＞", "*": "＊", "`": "｀", "#": "＃", "|": "｜"})


def _plain(value) -> str:
    """Text from outside (a subject typed on the public form) as one line of plain text in the bot's markdown:
    no links, colours, headings or extra lines that would look like the bot's own words."""
    return " ".join(str(value).split()).translate(_MARKUP)


def _ticket_fields(ticket: dict) -> list[str]:
    """Status, priority and category in words, in the site's language (the group reads Chinese)."""
    from django.utils import translation

    from pharmacrm.servicedesk.choices import Priority, Status
    from pharmacrm.servicedesk.models import TicketCategory

    lines = []
    with translation.override(settings.LANGUAGE_CODE):
        from django.utils.translation import gettext as _

        labels = {"status": (_("Status"), dict(Status.choices)), "priority": (_("Priority"), dict(Priority.choices))}
        for key in ("status", "priority"):
            if ticket.get(key):
                name, words = labels[key]
                lines.append(f"- {name}：{words.get(ticket[key], _plain(ticket[key]))}")
        if ticket.get("category"):
            category = TicketCategory.objects.filter(code=ticket["category"]).first()
            lines.append(f"- {_('Category')}：{_plain(category.label if category else ticket['category'])}")
    return lines


def _event_words(event: str) -> str:
    """What happened to the ticket in words, in the site's language (已超时, not ticket.breached: the group
    reads Chinese); an event the product does not know stays as its name."""
    from django.utils import translation

    from .models import event_words

    with translation.override(settings.LANGUAGE_CODE):
        return event_words(event)


def _summary(doc: dict) -> tuple[str, str]:
    """A title and markdown text for a chat bot."""
    event = _plain(doc.get("event", ""))
    data = doc.get("data") or {}
    ticket = data.get("ticket") if isinstance(data.get("ticket"), dict) else None
    if ticket:
        title = _plain(f"{ticket.get('number', '')} {ticket.get('subject', '')}").strip()
        lines = [f"### {title}", f"> {_event_words(event)}", *_ticket_fields(ticket)]
        if ticket.get("url"):
            lines.append(f"[{_plain(ticket.get('number') or '')}]({ticket['url']})")
        return title or event, "\n".join(lines)
    if event == "ping" and isinstance(data.get("message"), str):
        return _ping(data)
    lines = [f"### PharmaCRM: {event}"]
    for key, value in data.items():
        if isinstance(value, str | int | float | bool):
            lines.append(f"- {_plain(key)}: {_plain(value)}")
    return f"PharmaCRM: {event}", "\n".join(lines)


def _ping(data: dict) -> tuple[str, str]:
    """An endpoint's test message as the group reads it: its words (written in the site's language when it was
    queued) and the endpoint's name under a label in that language, not "ping", "message" and "endpoint"."""
    from django.utils import translation
    from django.utils.translation import gettext as _

    title = _plain(data["message"])
    lines = [f"### {title}"]
    if data.get("endpoint"):
        with translation.override(settings.LANGUAGE_CODE):
            lines.append(f"- {_('Endpoint')}：{_plain(data['endpoint'])}")
    return title, "\n".join(lines)


def webhook_body(endpoint: WebhookEndpoint, doc: dict) -> dict:
    """The JSON to POST: the event itself (generic) or the bot's markdown message."""
    if endpoint.format == WebhookEndpoint.Format.WECOM:
        _title, text = _summary(doc)
        return {"msgtype": "markdown", "markdown": {"content": text}}
    if endpoint.format == WebhookEndpoint.Format.DINGTALK:
        title, text = _summary(doc)
        return {"msgtype": "markdown", "markdown": {"title": title[:64], "text": text}}
    return doc


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a redirect is an answer that is not 2xx: the delivery fails with its status


_opener = urllib.request.build_opener(_NoRedirect)


def send_webhook(delivery: Delivery) -> int:
    endpoint = delivery.endpoint
    body = json.dumps(
        webhook_body(endpoint, delivery.payload), ensure_ascii=False, separators=(",", ":")
    ).encode()
    timestamp = str(int(time.time()))
    url = endpoint.url
    if endpoint.format == WebhookEndpoint.Format.DINGTALK and endpoint.secret.startswith("SEC"):
        url = dingtalk_url(url, endpoint.secret)
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "PharmaCRM-Webhook/1",
            "X-PharmaCRM-Event": delivery.event,
            "X-PharmaCRM-Delivery": str(delivery.pk),
            "X-PharmaCRM-Timestamp": timestamp,
            "X-PharmaCRM-Signature": signature(endpoint.secret, timestamp, body),
        },
    )
    try:
        with _opener.open(request, timeout=timeout()) as response:
            code, answer = response.status, response.read(4096)
    except urllib.error.HTTPError as e:
        raise SendError(
            f"HTTP {e.code} {e.reason}: {e.read(300).decode(errors='replace')}".strip(), e.code
        ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise SendError(f"{type(e).__name__}: {reason}") from None
    if not 200 <= code < 300:
        raise SendError(f"HTTP {code}", code)
    if endpoint.format in (WebhookEndpoint.Format.WECOM, WebhookEndpoint.Format.DINGTALK):
        try:
            result = json.loads(answer or b"{}")
        except ValueError:
            result = {}
        if isinstance(result, dict) and result.get("errcode") not in (None, 0):
            raise SendError(f"errcode {result.get('errcode')}: {result.get('errmsg', '')}", code)
    return code


def _record(delivery: Delivery, *, ok: bool, code: int | None, error: str) -> str:
    now = timezone.now()
    entry = {"at": now.isoformat(), "attempt": delivery.attempts, "code": code, "error": error[:1000]}
    history = (list(delivery.log) + [entry])[-LOG_KEEP:]
    fields = {"last_status_code": code, "log": history, "sending_since": None}
    if ok:
        fields.update(status=Delivery.Status.SENT, sent_at=now, next_attempt_at=None, last_error="")
    elif delivery.attempts >= max_attempts():
        fields.update(status=Delivery.Status.GAVE_UP, next_attempt_at=None, last_error=error[:2000])
    else:
        fields.update(
            status=Delivery.Status.FAILED,
            next_attempt_at=now + backoff(delivery.attempts),
            last_error=error[:2000],
        )
    # as marked before the send: over an "interrupted" ending the sweep gave it meanwhile (what really happened),
    # not over a retry an administrator started since
    Delivery.objects.filter(pk=delivery.pk, sending_since=delivery.sending_since).update(**fields)
    return fields["status"]


def switched_off(delivery: Delivery) -> bool:
    """An event for an endpoint switched off since it was queued: not sent (an administrator switches a bot off
    to stop it posting, e.g. into the wrong group). The endpoint's test message goes out all the same."""
    endpoint = delivery.endpoint
    return (
        delivery.channel == Delivery.Channel.WEBHOOK and endpoint is not None and not endpoint.active
        and delivery.event != "ping"
    )  # fmt: skip


def recipient_gone(delivery: Delivery) -> str | None:
    """Why a notification's e-mail must not go out any more: its recipient's account was deactivated (someone
    who left the company) or has no address now. None: send it, to the address the account has now (a
    corrected one, not the wrong one it was queued with)."""
    if delivery.channel != Delivery.Channel.EMAIL or delivery.notification is None:
        return None
    from pharmacrm.core import notsent

    recipient = delivery.notification.recipient
    if not recipient.is_active:  # a code, shown in the reader's language (core.notsent)
        return notsent.code("recipient_deactivated")
    if not recipient.email:
        return notsent.code("recipient_no_email")
    if recipient.email != delivery.email:
        delivery.email = recipient.email
        Delivery.objects.filter(pk=delivery.pk).update(email=recipient.email)
    _in_recipients_language(delivery)
    return None


def _in_recipients_language(delivery: Delivery) -> None:
    """Write the e-mail in the language the recipient's account has now: an administrator who switched a
    reader's language (someone who reads English, or 繁體) while the mail waited for a retry — an SMTP server
    down for an hour — meant it to arrive in that language, not in the one it was queued in."""
    note = delivery.notification
    if not isinstance(note.spec, dict) or "title" not in note.spec:
        return  # a row written before texts were kept as templates: as queued
    from .services import _language, email_text, withheld

    # nor with a text the recipient may no longer read, as in the bell: the customer's words of a flag's notice
    # after leaving PV, a quality complaint's defect after leaving the case, a ticket out of their territory now
    gone = note.pk in withheld(note.recipient, [note])
    text = "" if gone else note.spec.get("body", "")
    subject, body = email_text(note.spec["title"], text, note.url, _language(note.recipient), note.pk)
    if (delivery.payload or {}).get("subject") != subject or delivery.payload.get("body") != body:
        delivery.payload = {**(delivery.payload or {}), "subject": subject, "body": body}
        Delivery.objects.filter(pk=delivery.pk).update(payload=delivery.payload)


def _record_switched_off(delivery: Delivery) -> str:
    from pharmacrm.core import notsent

    return _record_not_sent(delivery, notsent.code("endpoint_off"))  # shown in the reader's language


def _record_not_sent(delivery: Delivery, reason: str) -> str:
    now = timezone.now()
    entry = {"at": now.isoformat(), "attempt": delivery.attempts, "code": None, "error": reason}
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.GAVE_UP, next_attempt_at=None, last_error=reason,
        log=(list(delivery.log) + [entry])[-LOG_KEEP:],
    )  # fmt: skip
    return Delivery.Status.GAVE_UP


def failing_ahead(delivery: Delivery) -> Delivery | None:
    """An older delivery to the same endpoint that failed and waits for its retry: while there is one, the
    endpoint is taken to be down, and this delivery waits behind it instead of trying too. Only that oldest
    delivery probes the endpoint on its back-off, so a dead or slow receiver costs one request (and at most one
    timeout) per retry, not one per event; the worker stays free for e-mail. The test message is never held."""
    if delivery.channel != Delivery.Channel.WEBHOOK or delivery.endpoint_id is None or delivery.event == "ping":
        return None
    return (
        Delivery.objects.filter(endpoint_id=delivery.endpoint_id, status=Delivery.Status.FAILED, pk__lt=delivery.pk)
        .exclude(event="ping")
        .order_by("pk")
        .first()
    )


HOLD_MARGIN = dt.timedelta(seconds=30)  # behind the probe's retry, so that its answer is known first


def _hold(delivery: Delivery, ahead: Delivery) -> str:
    """Put `delivery` back without counting the attempt the claim counted, due after the probe's retry."""
    when = max(ahead.next_attempt_at or timezone.now(), timezone.now()) + HOLD_MARGIN
    Delivery.objects.filter(pk=delivery.pk).update(attempts=F("attempts") - 1, next_attempt_at=when)
    return delivery.status


def deliver(delivery_id: int) -> str | None:
    """Claim and send one delivery; returns its new status, or None when it was not ours to send (taken by another
    worker, not due), or when the database stayed locked for longer than the worker waits: a delivery it could not
    claim is left due, untouched, for the next sweep; one claimed, for a sweep once its lease has run out."""
    try:
        return _deliver(delivery_id)
    except DatabaseBusy as e:
        log.warning("delivery %s left for the next sweep: the database stayed locked (%s)", delivery_id, e)
        return None


def _deliver(delivery_id: int) -> str | None:
    delivery = claim(delivery_id)
    if delivery is None:
        return None
    wait = record_patience()  # claimed: what it comes to is stored before the lease runs out
    if patiently(switched_off, delivery, patience=wait):
        return patiently(_record_switched_off, delivery, patience=wait)
    gone = patiently(recipient_gone, delivery, patience=wait)
    if gone:
        return patiently(_record_not_sent, delivery, gone, patience=wait)
    ahead = patiently(failing_ahead, delivery, patience=wait)
    if ahead is not None:
        return patiently(_hold, delivery, ahead, patience=wait)
    if not patiently(_start_send, delivery, patience=wait):
        return None  # the lease ran out while the lock was held, and another worker has it now
    code = None
    try:
        if delivery.channel == Delivery.Channel.EMAIL:
            send_email(delivery)
        else:
            code = send_webhook(delivery)
    except SendError as e:
        status = patiently(_record, delivery, ok=False, code=e.status_code, error=str(e), patience=AFTER_SEND)
    except Exception as e:  # noqa: BLE001 — SMTP errors and anything else: kept as the reason, retried
        error = f"{type(e).__name__}: {e}"
        status = patiently(_record, delivery, ok=False, code=None, error=error, patience=AFTER_SEND)
    else:
        # sent: stored however long the database stays locked (marked as being sent, it is not sent again meanwhile)
        return patiently(_record, delivery, ok=True, code=code, error="", patience=AFTER_SEND)
    log.warning("delivery %s failed (attempt %s): %s", delivery.pk, delivery.attempts, status)
    return status


@db_task()
def dispatch(delivery_id: int) -> str | None:
    return deliver(delivery_id)


@db_task()
def dispatch_many(delivery_ids: list[int]) -> int:
    """Many deliveries queued by one change (an escalation batch): one queue entry instead of one each."""
    return sum(1 for pk in delivery_ids if deliver(pk) is not None)


def sweep(limit: int = BATCH) -> int:
    """Send what is due now; returns how many deliveries this worker handled. While the database stays locked
    it stops (the next sweep, a minute later, goes on) instead of waiting out each delivery in turn."""
    handled = 0
    try:
        for pk in patiently(interrupted_ids, limit):
            if patiently(give_up_interrupted, pk):
                handled += 1
        for pk in patiently(due_ids, limit):
            if _deliver(pk) is not None:
                handled += 1
    except DatabaseBusy as e:
        log.warning("sweep stopped after %s deliveries: the database stayed locked (%s)", handled, e)
    return handled


@db_periodic_task(crontab(minute="*"))
def sweep_deliveries() -> int:
    return sweep()
