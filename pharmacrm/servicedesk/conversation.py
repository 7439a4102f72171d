"""The conversation on a ticket: replies to the customer, internal notes, and what the customer sends.

A reply is customer-visible: when the ticket has the customer's e-mail address it goes out by SMTP (queued
after the commit, retried by the worker: `mail.deliver`), with a Message-ID that the customer's answer
refers to (In-Reply-To / References), so the answer threads back onto the same ticket. A note never leaves
the company. The first reply meets the first-response target (services.RESPONSE_EVENTS)."""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import uuid
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pharmacrm.core import audit
from pharmacrm.core.deferred import Message
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.safety import net

from . import services
from .choices import REOPENABLE, Delivery, EventKind, MessageKind, Status
from .models import Attachment, Ticket, TicketMessage

A = AuditEntry.Action
MAX_BODY = 50_000


def new_message_id(ticket: Ticket) -> str:
    """An RFC 5322 Message-ID that names the ticket (for people reading raw headers) and is unique, on the domain of
    SERVICEDESK_MAIL_FROM written in ASCII: a Chinese domain (客服 <kefu@药企.cn>) goes in as punycode
    (xn--….cn). Written as it was, the header went out as an encoded word (=?utf-8?b?…?=) that is no Message-ID:
    the customer's mail program could not thread the answers, and an answer from another address than the
    customer's (a colleague's "reply all", a mail program that drops the number from the subject) became a new
    ticket."""
    address = email.utils.parseaddr(settings.SERVICEDESK_MAIL_FROM)[1]
    domain = address.rsplit("@", 1)[-1].strip().strip(".") if "@" in address else ""
    try:
        domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        domain = ""
    return f"<{ticket.number.lower()}.{uuid.uuid4().hex}@{domain or 'pharmacrm.localhost'}>"


def reply_subject(ticket: Ticket) -> str:
    """The subject of every mail about a ticket carries its number in brackets, the fallback for threading
    when a mail client drops the In-Reply-To header. One line: a subject with a line break (typed through the
    API or an edit) would make every mail about the ticket fail ("Header values can't contain newlines")."""
    return one_line(f"[{ticket.number}] {ticket.subject}")[:250]


def one_line(text: str) -> str:
    return " ".join((text or "").split())


# the ticket's text an answer template fills in masked for an agent who sees personal data masked
# (knowledge.FREE_TEXT_PLACEHOLDERS: {subject}): each of its masks still in what they send is put back. Only the
# subject: a reply's e-mail carries it in clear anyway ([TK-…] subject), to the ticket's address, which a masked
# agent may change; the description's details put back would leave with a reply to whatever address they typed
RESTORED_FROM = ("subject",)


def restore_masks(user, ticket: Ticket, body: str) -> str:
    """A message written by `user`, with each masked contact detail of the ticket's subject still in it
    (`请回电 139****5678`, filled in by an answer template as the user was shown it) put back as stored, every time it
    occurs (normalise.restore_contacts): the customer receives the real text, and a colleague who sees personal data
    reads it. For a user who sees personal data, and for a text without masks, `body` as it is. What the user typed
    is kept as typed, and the message is shown to them masked as the ticket's other texts are."""
    from pharmacrm.core import personal
    from pharmacrm.customers import normalise

    if "*" not in (body or "") or not personal.masks_free_text(user):
        return body
    for field in RESTORED_FROM:
        stored = getattr(ticket, field) or ""
        for _time in range(body.count("*")):  # once per occurrence: {subject} used twice is put back twice
            restored = normalise.restore_contacts(body, stored)
            if restored == body:
                break
            body = restored
    return body


def _check_body(body: str) -> str:
    body = (body or "").strip()
    if not body:
        raise ValidationError({"body": [_("Write the text of the message.")]})
    if len(body) > MAX_BODY:
        raise ValidationError({"body": [_("The text is too long (at most %(max)d characters).") % {"max": MAX_BODY}]})
    return body


def post_message(user, ticket: Ticket, *, kind: str, body: str, template=None, files: Iterable = (),
                 at: dt.datetime | None = None) -> TicketMessage:  # fmt: skip
    """Add a reply (customer-visible; e-mailed when the ticket has an address) or an internal note, with
    optional uploaded files (checked by attachments.validate_upload before anything is written)."""
    from . import attachments

    services.require(user, Cap.HANDLE_TICKETS)
    if kind not in (MessageKind.REPLY, MessageKind.NOTE):
        raise ValidationError({"kind": [_("Choose a reply or an internal note.")]})
    body = _check_body(restore_masks(user, ticket, body))
    files = list(files)
    for f in files:
        attachments.validate_upload(f)
    now = at or timezone.now()
    reply = kind == MessageKind.REPLY
    with transaction.atomic():
        if at is None:  # with its files too: a reply and its attachment sent twice reached the customer twice
            digests = sorted(hashlib.sha256(attachments._read(f)).hexdigest() for f in files)
            _refuse_sent_again(user, ticket, kind, body, now, digests)
        message = TicketMessage(ticket=ticket, kind=kind, author=user if user.is_authenticated else None,
                                body=body, template=template, created_at=now)  # fmt: skip
        if reply and ticket.reply_email:
            message.recipient = ticket.reply_email
            message.subject = reply_subject(ticket)
            message.message_id = new_message_id(ticket)
            last_in = (
                ticket.messages.filter(kind=MessageKind.INBOUND).exclude(message_id=None).order_by("-created_at").first()
            )
            message.in_reply_to = last_in.message_id if last_in else ""
            message.delivery = Delivery.PENDING
        message.save()
        for f in files:
            attachments.store_upload(user, ticket, f, message=message)
        services._event(
            ticket, EventKind.REPLY if reply else EventKind.NOTE, user, at=now,
            data={"message": message.pk, "emailed": bool(message.delivery)},
        )  # fmt: skip
        if reply:
            services.rebuild_clocks(ticket, now=now)  # the first reply meets the first-response target
        audit.record(A.CREATE, message, user=user, changes={"ticket": [None, ticket.number], "kind": [None, kind]})
        net.screen_ticket(ticket, [body], heard_at=now)  # what the agent heard and wrote down is screened too
        if message.delivery == Delivery.PENDING:
            from . import mail

            transaction.on_commit(lambda: mail.deliver(message.pk))
    return message


SENT_AGAIN_WINDOW = dt.timedelta(minutes=10)


def _refuse_sent_again(user, ticket: Ticket, kind: str, body: str, now: dt.datetime, digests=()) -> None:
    """The same text (and the same files, by their SHA-256 `digests`) by the same person on the same ticket
    within ten minutes is the form sent twice (Back and send, a replay after a slow answer, a double click): the
    customer would get the e-mail twice. The ticket row is locked first, so that two such requests in parallel
    see each other."""
    list(Ticket.objects.select_for_update().filter(pk=ticket.pk).values_list("pk", flat=True))
    earlier = (
        TicketMessage.objects.filter(ticket=ticket, kind=kind, author=user, created_at__gte=now - SENT_AGAIN_WINDOW)
        .order_by("-created_at").values_list("pk", "body", "created_at")[:5]
    )  # fmt: skip
    for pk, text, sent in earlier:
        if text != body:
            continue
        files = sorted(Attachment.objects.filter(message_id=pk).values_list("sha256", flat=True))
        if files == list(digests):
            message = (
                _("This reply was already sent at %(time)s; it was not sent again.")
                if kind == MessageKind.REPLY
                else _("This note was already added at %(time)s; it was not added again.")
            )
            raise ValidationError({"body": [message % {"time": timezone.localtime(sent).strftime("%H:%M")}]})


def receive_inbound(ticket: Ticket, *, body: str, sender: str = "", subject: str = "", message_id: str = "",
                    in_reply_to: str = "", at: dt.datetime | None = None,
                    files: Iterable[tuple[str, str, bytes]] = (), heard_at: dt.datetime | None = None,
                    ) -> TicketMessage:  # fmt: skip
    """What the customer sent about an existing ticket (an e-mail answer). A ticket waiting on the customer
    goes back to work; a resolved, informed or closed one is reopened. `files`: (name, type, bytes); a file
    refused for its type or size is left out and named in the message's text. `heard_at`: when the company
    received it (the mail's date), day 0 of a reaction it mentions; default `at`."""
    now = at or timezone.now()
    with transaction.atomic():
        message = TicketMessage.objects.create(
            ticket=ticket, kind=MessageKind.INBOUND, body=(body or "").strip()[:MAX_BODY] or "—", sender=sender,
            subject=(subject or "")[:250], message_id=message_id or None, in_reply_to=in_reply_to[:250], created_at=now,
        )  # fmt: skip
        refused = store_inbound_files(ticket, message, files)
        if refused:  # the customer's text stays; the note says which files were not taken
            message.body = f"{message.body}\n\n{refused}"[:MAX_BODY]
            message.save(update_fields=["body"])
        services._event(ticket, EventKind.INBOUND, services.SYSTEM, at=now, data={"message": message.pk})
        if ticket.status == Status.WAITING or ticket.status in REOPENABLE:
            services.transition(services.SYSTEM, ticket, Status.IN_PROGRESS, at=now,
                                 note=_("The customer wrote again."))  # fmt: skip
        else:
            services.rebuild_clocks(ticket, now=now)
        audit.record(A.CREATE, message, user=services.SYSTEM, changes={"ticket": [None, ticket.number]})
        net.screen_ticket(ticket, [message.body], heard_at=min(heard_at or now, now))
        told = Message(gettext_lazy("%(number)s: the customer wrote again"), number=ticket.number)
        services.tell_assignee(ticket, told, kind="ticket.customer_wrote")
        # nobody holds it, it waits in a team's queue: the team is told, or the answer is read by nobody
        services.tell_team(ticket, told, kind="ticket.customer_wrote")
    return message


def store_inbound_files(ticket: Ticket, message: TicketMessage, files: Iterable[tuple[str, str, bytes]]) -> str:
    """Keep what a customer sent as files; a file refused for its type or size is left out, never fatal.
    Returns a note naming the refused files (empty when all were taken)."""
    import hashlib

    from . import attachments

    refused = []
    kept = set(ticket.attachments.values_list("sha256", flat=True))
    for name, content_type, data in files:
        digest = hashlib.sha256(data).hexdigest()
        if digest in kept:  # the logo in the signature, the photo sent again with every answer: on the ticket once
            continue
        kept.add(digest)
        try:
            with transaction.atomic():
                attachments.store_bytes(ticket, name, content_type, data, message=message)
        except ValidationError as exc:
            refused.extend(exc.message_dict.get("files", exc.messages) if hasattr(exc, "error_dict") else exc.messages)
    if not refused:
        return ""
    return _("Attachments not accepted:") + "\n" + "\n".join(f"- {reason}" for reason in refused)


def find_thread(message_ids: Iterable[str]) -> Ticket | None:
    """The ticket a mail answers, from the Message-IDs in its In-Reply-To and References headers, in the order
    they are to be tried: In-Reply-To first, then References from the last (the nearest ancestor) to the first
    (RFC 5322 §3.6.4). The first known one decides — not the newest message we hold."""
    ids = list(dict.fromkeys(m.strip() for m in message_ids if m and m.strip()))
    if not ids:
        return None
    known = {m.message_id: m.ticket for m in TicketMessage.objects.filter(message_id__in=ids).select_related("ticket")}
    return next((known[i] for i in ids if i in known), None)
