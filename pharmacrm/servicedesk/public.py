"""The public web form (no sign-in): spam resistance, rate limiting, intake, and the customer's status link.

Spam resistance: a honeypot field people never see, and a signed timestamp in the form that refuses a
submission sent faster than MIN_SECONDS after the form was shown or older than MAX_AGE. Rate limiting:
settings.SERVICEDESK_WEB_FORM_PER_HOUR submissions per client address per hour, counted in WebIntake rows
keyed by a keyed hash of the address (never the address itself). A double click (the same content from the
same customer within DUPLICATE_WINDOW) gives the ticket already taken in, not a second one."""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from pharmacrm.core import crypto

from . import mail, services
from .choices import Channel, MessageKind, Status
from .models import Ticket, WebIntake

log = logging.getLogger(__name__)

FORM_SALT = "pharmacrm.servicedesk.web-form"
STATUS_SALT = "pharmacrm.servicedesk.status-link"
MIN_SECONDS = 3
MAX_AGE = 2 * 3600
DUPLICATE_WINDOW = dt.timedelta(minutes=2)
WINDOW = dt.timedelta(hours=1)


class Refused(Exception):
    """A submission not taken in: `reason` is "honeypot", "too_fast", "too_old" or "tampered"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RateLimited(Exception):
    """Too many submissions from this client in the last hour."""


# --- who is asking ---------------------------------------------------------------------------------


def client_address(request) -> str:
    """The client's address, as the audit trail reads it (core.middleware.client_ip)."""
    from pharmacrm.core.middleware import client_ip

    return (client_ip(request) or "")[:64]


def client_hash(request) -> str:
    return crypto.blind_index(client_address(request) or "unknown", "web-form-client")


# --- the signed timestamp ----------------------------------------------------------------------------


def form_stamp(at: float | None = None) -> str:
    """The value of the form's hidden timestamp field: when the form was shown, signed."""
    return signing.dumps({"t": round(at if at is not None else time.time(), 3)}, salt=FORM_SALT)


def check_stamp(stamp: str, honeypot: str = "") -> None:
    if honeypot:
        raise Refused("honeypot")
    try:
        shown = float(signing.loads(stamp or "", salt=FORM_SALT, max_age=MAX_AGE)["t"])
    except signing.SignatureExpired:
        raise Refused("too_old") from None
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise Refused("tampered") from None
    age = time.time() - shown
    if age < MIN_SECONDS:
        raise Refused("too_fast")
    if age > MAX_AGE:
        raise Refused("too_old")


# --- rate limit ------------------------------------------------------------------------------------


def _lock_client(key: str) -> None:
    """Serialise submissions of one client (PostgreSQL: a transaction-level advisory lock), so that a
    double click finds the ticket of the first click and the hourly count cannot be raced past. SQLite
    serialises writers anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ["web-form:" + key])


def over_limit(key: str, now: dt.datetime | None = None) -> bool:
    now = now or timezone.now()
    recent = WebIntake.objects.filter(client_hash=key, at__gt=now - WINDOW).count()
    return recent >= int(settings.SERVICEDESK_WEB_FORM_PER_HOUR)


def log_intake(key: str, accepted: bool) -> None:
    WebIntake.objects.create(client_hash=key, accepted=accepted)


def forget_old(now: dt.datetime | None = None) -> int:
    """Delete the rate-limit log older than the window (it is needed for nothing else)."""
    now = now or timezone.now()
    return WebIntake.objects.filter(at__lt=now - WINDOW - dt.timedelta(hours=1)).delete()[0]


# --- intake ----------------------------------------------------------------------------------------


def _duplicate(data: dict, now: dt.datetime) -> Ticket | None:
    """A ticket taken in from the web form in the last two minutes with exactly the same content."""
    candidates = Ticket.objects.filter(
        channel=Channel.WEB, created_by__isnull=True, created_at__gte=now - DUPLICATE_WINDOW,
        subject=data["subject"].strip()[:200], category=data["category"],
    ).order_by("-created_at")[:20]  # fmt: skip
    for t in candidates:
        if (
            t.description == (data.get("description") or "").strip()
            and t.caller_name == (data.get("caller_name") or "").strip()
            and t.caller_phone == (data.get("caller_phone") or "").strip()
            and t.reply_email == (data.get("reply_email") or "").strip()
            and t.product_id == (data["product"].pk if data.get("product") else None)
            and t.batch_number == (data.get("batch_number") or "").strip()[:40]
        ):
            return t
    return None


# The personal information notice of the public pages (templates/public/privacy.html). Change the version
# with its text: each web-form ticket's creation entry in the audit trail records the version agreed to.
PRIVACY_NOTICE_VERSION = "2026-12"


def submit(request, data: dict, upload=None) -> tuple[Ticket, bool]:
    """Take in a web-form submission (already validated by the form): (ticket, created). Raises
    RateLimited (nothing created), or ValidationError from the services (nothing created either)."""
    key = client_hash(request)
    upload_bytes = None
    if upload is not None:
        from . import attachments

        attachments.validate_upload(upload)
        upload.seek(0)
        upload_bytes = (upload.name, upload.content_type or "application/octet-stream", upload.read())
    now = timezone.now()
    with transaction.atomic():
        _lock_client(key)
        existing = _duplicate(data, now)
        if existing is not None:
            return existing, False
        if over_limit(key, now):
            limited = True
        else:
            limited = False
            # the language of the page the customer wrote on: the desk writes to them in it from now on
            language = mail.spoken(translation.get_language()) or settings.LANGUAGE_CODE
            ticket = services.create_ticket(
                services.SYSTEM, {**data, "channel": Channel.WEB, "received_at": now, "language": language}
            )
            if upload_bytes is not None:
                from . import attachments

                attachments.store_bytes(ticket, *upload_bytes)
            log_intake(key, accepted=True)
            if ticket.reply_email:
                # through the desk's outbox, like a reply: written in this transaction, sent by the worker after
                # the commit and retried while the SMTP server is down — it was tried once and only logged
                queue_status_link(ticket)
    if limited:
        log_intake(key, accepted=False)
        raise RateLimited()
    return ticket, True


def refuse(request) -> None:
    """Log a submission refused as spam: it counts against the client's hourly limit."""
    log_intake(client_hash(request), accepted=False)


def status_link_body(ticket: Ticket) -> str:
    with translation.override(ticket.language or settings.LANGUAGE_CODE):  # the customer's, whoever sends it
        return _(
            "Thank you for contacting us. We have received your request and given it the number %(number)s:\n\n"
            "“%(subject)s”\n\nYou can follow it here:\n%(link)s\n\nPlease keep this number for any question "
            "about your request."
        ) % {"number": ticket.number, "subject": ticket.subject, "link": status_url(ticket)}


def queue_status_link(ticket: Ticket):
    """The mail with the status link, as an automatic message of the ticket's outbox (mail.deliver sends it
    after the commit and retries it: an SMTP outage delays it, never loses it). Inside the caller's
    transaction. The number in brackets, as on every mail about a ticket: the customer's answer finds it."""
    from . import conversation, mail
    from .choices import Delivery
    from .models import TicketMessage

    now = timezone.now()
    if mail.acknowledged_lately(ticket.reply_email, now, channel=Channel.WEB) >= mail.STATUS_LINK_LIMIT:
        # someone typing a stranger's address into the form, from many clients: the page still shows the link
        log.warning("Web form ticket %s: no status-link mail (%d sent to the address within an hour)",
                    ticket.number, mail.STATUS_LINK_LIMIT)  # fmt: skip
        return None
    message = TicketMessage.objects.create(
        ticket=ticket, kind=MessageKind.REPLY, author=None, body=status_link_body(ticket),
        recipient=ticket.reply_email, subject=conversation.reply_subject(ticket),
        message_id=conversation.new_message_id(ticket), delivery=Delivery.PENDING, created_at=now,
    )  # fmt: skip
    transaction.on_commit(lambda: mail.deliver(message.pk))
    return message


def status_link_mail_state(ticket: Ticket) -> str:
    """How the mail with the status link stands, as the page after the form tells it: "sent" once the mail
    server took it, "queued" while it waits in the outbox (the worker sends it after the request, and retries
    while the server is down), "failed" once the worker gave up, "" when no mail was asked for. The page said
    "we have sent the link" while the mail was only queued — and the server could be down for hours."""
    from .choices import Delivery

    if not ticket.reply_email:
        return ""
    message = (
        ticket.messages.filter(kind=MessageKind.REPLY, author__isnull=True).order_by("created_at", "id").first()
    )
    if message is None:
        return ""
    if message.delivery == Delivery.SENT:
        return "sent"
    return "failed" if message.delivery == Delivery.GAVE_UP else "queued"


# --- the status link -------------------------------------------------------------------------------


def status_token(ticket: Ticket) -> str:
    return signing.dumps({"t": ticket.pk}, salt=STATUS_SALT)


def status_path(ticket: Ticket) -> str:
    return reverse("public:status", args=[status_token(ticket)])


def status_url(ticket: Ticket) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + status_path(ticket)


def ticket_for_token(token: str) -> Ticket | None:
    """The ticket a status link names; None for a forged or tampered token."""
    try:
        pk = signing.loads(str(token or "")[:300], salt=STATUS_SALT)["t"]
    except (signing.BadSignature, KeyError, TypeError):
        return None
    if not isinstance(pk, int):
        return None
    return Ticket.objects.select_related("category").filter(pk=pk).first()


CUSTOMER_STATUS = {
    Status.NEW: "received",
    Status.ASSIGNED: "received",
    Status.IN_PROGRESS: "in_progress",
    Status.WAITING: "waiting",
    Status.RESOLVED: "resolved",
    Status.INFORMED: "resolved",
    Status.CLOSED: "closed",
}


def customer_status(ticket: Ticket) -> tuple[str, str]:
    """(key, wording) of the ticket's status as the customer sees it."""
    key = CUSTOMER_STATUS.get(ticket.status, "in_progress")
    wording = {
        "received": _("Received — we will look at it shortly"),
        "in_progress": _("Being handled"),
        "waiting": _("Waiting for your answer"),
        "resolved": _("Answered"),
        "closed": _("Closed"),
    }[key]
    return key, wording


def same_sender(ticket: Ticket, other: Ticket) -> bool:
    """Whether two tickets came from the same person, as far as the records tell (the same customer record,
    e-mail address or phone): a merged request's status page shows the other ticket's answers only then."""
    if ticket.person_id and ticket.person_id == other.person_id:
        return True
    if ticket.reply_email and ticket.reply_email.strip().lower() == (other.reply_email or "").strip().lower():
        return True
    return bool(ticket.caller_phone_bidx) and ticket.caller_phone_bidx == other.caller_phone_bidx


def customer_replies(ticket: Ticket):
    """The replies sent to the customer, with the files sent with them — never internal notes, nor the desk's
    automatic mails (the status link itself, a mail's acknowledgement), which are no answer."""
    return (
        ticket.messages.filter(kind=MessageKind.REPLY, author__isnull=False).order_by("created_at", "id")
        .only("body", "created_at", "ticket_id").prefetch_related("attachments")
    )  # fmt: skip


def shown_tickets(ticket: Ticket) -> list[Ticket]:
    """The tickets whose answers a status page shows: its own, and those of the request it was merged into
    when the same person sent both."""
    shown = [ticket]
    if ticket.merged_into_id and same_sender(ticket, ticket.merged_into):
        shown.append(ticket.merged_into)
    return shown


def reply_file(ticket: Ticket, pk: int):
    """A file sent with one of the answers the status page of `ticket` shows; None for any other file (the
    customer's own uploads, a note's files, another ticket's)."""
    from .models import Attachment

    return (
        Attachment.objects.filter(pk=pk, message__kind=MessageKind.REPLY, ticket__in=shown_tickets(ticket))
        .select_related("ticket").first()
    )  # fmt: skip
