"""E-mail for the service desk: replies go out by SMTP, the service mailbox is read by IMAP.

Outgoing (`deliver`): a reply (TicketMessage, kind reply) with `delivery` pending or failed is sent with
its own Message-ID and the thread's earlier ids in In-Reply-To / References. A worker claims a message
with a conditional UPDATE before it talks to the SMTP server, so two workers never send the same message.
A failed attempt is retried by `retry_failed_deliveries` (every minute) after a growing pause (RETRY_DELAYS);
after MAX_ATTEMPTS the message is `gave_up` and an agent sees it on the ticket. While a message is not yet
sent, `sent_at` holds the time of its last attempt (the schema has no separate column for it).

Incoming (`poll_mailbox`, every minute when SERVICEDESK_IMAP_HOST is set): each unseen mail either answers
a ticket (its In-Reply-To / References name one of our Message-IDs, or its subject carries the ticket number
and it comes from that ticket's customer) and is added to the conversation, or it becomes a new ticket
(channel e-mail) and the customer gets an acknowledgement with the number. Auto-replies, bounces and
mailing-list mail are ignored (no mail loops); a mail is marked seen only after its transaction committed.
See docs/servicedesk-mail.md."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email
import email.generator
import email.header
import email.policy
import email.utils
import hashlib
import html
import imaplib
import io
import logging
import quopri
import re
import unicodedata
from email.message import EmailMessage as ParsedMail

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import DatabaseError, transaction
from django.db.models import F
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.html import strip_tags
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from pharmacrm.core import audit, crypto, notsent, wording
from pharmacrm.core.deferred import Message
from pharmacrm.core.models import AuditEntry
from pharmacrm.core.roles import Cap
from pharmacrm.customers import normalise
from pharmacrm.notify.tasks import is_notification_id

from . import conversation, services
from .choices import Channel, Delivery, EventKind, MessageKind
from .models import Ticket, TicketEvent, TicketMessage

log = logging.getLogger(__name__)
A = AuditEntry.Action

MAX_ATTEMPTS = 8
# pause before attempt n+1 after attempt n failed (minutes): 1, 2, 5, 10, 30, 60, 120 → about 4 hours in all
RETRY_DELAYS = (1, 2, 5, 10, 30, 60, 120)
LEASE = dt.timedelta(minutes=10)  # a claimed message not finished by then: the worker died, try again
# how long the worker waits for the SMTP server's answer to a mail's data (RFC 5321 §4.5.3.2 asks ten minutes: the
# company's mail gateway answers once it has scanned the attachments). With EMAIL_TIMEOUT (20 s), which limits every
# other step, a reply with a scanned PDF was given up on while the server went on to deliver it, and every retry
# delivered it again. With the other steps' 20 s, an attempt stays well within LEASE: no second worker takes it over.
REPLY_TIMEOUT = 4 * 60
MAX_MAIL_BYTES = 25 * 1024 * 1024
MAX_AGE = dt.timedelta(days=30)  # an older Date header is not believed
# the number as the desk writes it ([TK-2026-000123]), in the 【】 of a Chinese input method, or bare as the
# acknowledgement asks the customer to keep it ("关于TK-2026-000123的补充"); read after NFKC, so full-width
# letters and digits count too
NUMBER_IN_SUBJECT = re.compile(r"(?<![A-Z0-9])(TK-\d{4}-\d{6})(?!\d)", re.IGNORECASE)
MESSAGE_ID = re.compile(r"<[^<>\s]+>")
LOOP_SENDERS = ("mailer-daemon", "postmaster", "noreply", "no-reply")
# the subject an out-of-office reply starts with (Outlook in Chinese and English, QQ, 163, Foxmail): such a mail
# with the ticket number in its subject would otherwise reopen the ticket as "the customer wrote again"
# — also in brackets, as Coremail, OA systems and hand-made rules write it: 【自动回复】…, [自动回复] …, (自动回复)…
_AUTO_REPLY_WORDS = r"(?:自动回复|自動回覆|自动答复|自動回復|自动应答|Automatic reply|Auto[- ]?reply|Out of (?:the )?office)"
AUTO_REPLY_SUBJECT = re.compile(
    rf"\s*(?:{_AUTO_REPLY_WORDS}\s*[:：]|[\[【(（〔]\s*{_AUTO_REPLY_WORDS}\s*[\]】)）〕])",
    re.IGNORECASE,
)
# a mailing list's copy (RFC 2369, RFC 2919): the list's members, not a customer, would be answered
LIST_HEADERS = ("List-Id", "List-Post")
ACK_LIMIT, ACK_WINDOW = 5, dt.timedelta(hours=1)  # acknowledgements to one address: no mail loop
# mails with a web-form ticket's status link to one address an hour: counted apart from the acknowledgements (a
# customer who sent the form a few times still gets the acknowledgement of the mail they write next), and limited
# on their own — the form limits each client's submissions, not the address they type in
STATUS_LINK_LIMIT = 5
POLL_BATCH = 200  # at most this many mails a run; the rest on the next minute


# --- outgoing ------------------------------------------------------------------------------------------


def retry_delay(attempts: int) -> dt.timedelta:
    return dt.timedelta(minutes=RETRY_DELAYS[min(max(attempts, 1), len(RETRY_DELAYS)) - 1])


def _due(message: TicketMessage, now: dt.datetime) -> bool:
    """May a worker try to send this message now?"""
    if message.delivery == Delivery.PENDING:
        # never tried, or claimed by a worker that did not finish within the lease
        return message.attempts == 0 or message.sent_at is None or message.sent_at + LEASE <= now
    if message.delivery == Delivery.FAILED:
        return message.sent_at is None or message.sent_at + retry_delay(message.attempts) <= now
    return False


def _claim(message: TicketMessage, now: dt.datetime) -> bool:
    """Take the message for one attempt: only the worker whose UPDATE matches the state it read sends."""
    claimed = TicketMessage.objects.filter(
        pk=message.pk, delivery=message.delivery, attempts=message.attempts
    ).update(delivery=Delivery.PENDING, attempts=F("attempts") + 1, sent_at=now)
    if claimed:
        message.attempts += 1
        message.delivery = Delivery.PENDING
        message.sent_at = now
    return bool(claimed)


def thread_ids(message: TicketMessage) -> list[str]:
    """The Message-IDs of the ticket's earlier mails, oldest first (the References header)."""
    earlier = (
        TicketMessage.objects.filter(ticket_id=message.ticket_id, created_at__lte=message.created_at)
        .exclude(pk=message.pk)
        .exclude(message_id=None)
        .order_by("created_at", "id")
        .values_list("message_id", flat=True)
    )
    ids = list(earlier)
    if message.in_reply_to and message.in_reply_to not in ids:
        ids.append(message.in_reply_to)
    return ids[-20:]  # long threads: the newest twenty are enough for any mail client


class DeskMail(EmailMessage):
    """A reply as Django builds it, with each attachment's name also in its Content-Type: Django writes a name
    that is not ASCII (说明书.pdf) only as RFC 2231 `filename*=utf-8''…` in the Content-Disposition, which Outlook
    2007 and old Foxmail do not read — they showed the file as "ATT00001.bin" or "未命名附件". The RFC 2047 encoded
    word in `name=` ("=?utf-8?b?…?=") is what they read; programs that read RFC 2231 keep reading `filename*=`."""

    def message(self, *args, **kwargs):
        msg = super().message(*args, **kwargs)
        for part in msg.walk():
            name = part.get_filename() if part.get_content_disposition() == "attachment" else None
            if name and not name.isascii() and part.get_param("name") is None:
                words = email.header.Header(name, "utf-8").encode(splitchars=" ")
                part.set_param("name", re.sub(r"\s+", " ", words))
        return msg


def build_mail(message: TicketMessage, connection=None) -> EmailMessage:
    # a mail that came without a Message-ID got a made-up one (take_in): never named to the customer's program
    references = [i for i in thread_ids(message) if not i.endswith(MADE_UP_ID_DOMAIN)]
    headers = {"Message-ID": message.message_id}
    own_in_reply_to = "" if (message.in_reply_to or "").endswith(MADE_UP_ID_DOMAIN) else message.in_reply_to
    in_reply_to = own_in_reply_to or (references[-1] if references else "")
    if in_reply_to:
        headers["In-Reply-To"] = in_reply_to
    if references:
        headers["References"] = " ".join(references)
    if message.author_id is None:
        headers["Auto-Submitted"] = "auto-replied"  # the acknowledgement: mail systems must not answer it
    mail = DeskMail(
        subject=conversation.one_line(message.subject), body=message.body, from_email=settings.SERVICEDESK_MAIL_FROM,
        to=[message.recipient], headers=headers, connection=connection,
    )  # fmt: skip
    for attachment in message.attachments.all():
        with attachment.file.open("rb") as f:
            mail.attach(attachment.name, f.read(), attachment.content_type)
    return mail


class NoSmtpUtf8(Exception):  # noqa: N818
    """The mail server does not speak SMTPUTF8, which a recipient such as 张三@公司.cn needs."""


def _patient_with_data(smtp) -> None:
    """While the mail's data is sent and its answer awaited, the connection waits up to REPLY_TIMEOUT; every other
    step (greeting, sender, recipient, quitting) keeps EMAIL_TIMEOUT, so that one attempt stays well within LEASE."""
    quick = smtp.sock.gettimeout()
    send_data = smtp.data

    def data(msg):
        smtp.sock.settimeout(max(REPLY_TIMEOUT, quick or 0))
        try:
            return send_data(msg)
        finally:
            if smtp.sock is not None:  # closed after an error
                smtp.sock.settimeout(quick)

    smtp.data = data  # smtplib's sendmail calls self.data


def send_mail(message: TicketMessage) -> None:
    """Send one message of the outbox by SMTP, waiting up to REPLY_TIMEOUT for the server's answer to the mail's
    data. An address whose local part is not ASCII (张三@公司.cn, RFC 6531)
    goes out with SMTPUTF8, written as it is in the envelope and the To header — Django's backend would turn
    it into an encoded word (=?utf-8?…?=@…) that no server delivers; a server that does not offer SMTPUTF8
    raises NoSmtpUtf8 and nothing is sent."""
    send_built(lambda connection: build_mail(message, connection), message.recipient)


def send_built(build, recipient: str) -> None:
    """Send the mail `build(connection)` makes to `recipient` as send_mail does (SMTPUTF8 when the address needs
    it): the ticket replies, and the survey campaigns' mails."""
    from django.core.mail import get_connection
    from django.core.mail.backends.smtp import EmailBackend

    from pharmacrm.core.addresses import needs_smtputf8

    connection = get_connection(fail_silently=False)
    if not isinstance(connection, EmailBackend):
        build(connection).send(fail_silently=False)
        return
    connection.open()  # reaching the server: EMAIL_TIMEOUT
    try:
        smtp = connection.connection
        _patient_with_data(smtp)
        if not needs_smtputf8(recipient):
            connection.send_messages([build(connection)])
            return
        smtp.ehlo_or_helo_if_needed()
        if not smtp.has_extn("smtputf8"):
            raise NoSmtpUtf8(f"the SMTP server {connection.host} does not offer SMTPUTF8")
        mime = build(connection).message()
        mime.replace_header("To", recipient)  # as written: Django's own setter would encode it again
        out = io.BytesIO()
        email.generator.BytesGenerator(out, mangle_from_=False,
                                       policy=email.policy.SMTPUTF8.clone(linesep="\r\n")).flatten(mime)  # fmt: skip
        sender = email.utils.parseaddr(settings.SERVICEDESK_MAIL_FROM)[1]
        smtp.sendmail(sender, [recipient], out.getvalue(), mail_options=["SMTPUTF8"])
    finally:
        connection.close()


def send_message(message_pk: int, now: dt.datetime | None = None) -> str:
    """One delivery attempt; returns the message's delivery state afterwards ("" when there was nothing
    to do: unknown, already sent, or not due)."""
    now = now or timezone.now()
    message = TicketMessage.objects.filter(pk=message_pk, kind=MessageKind.REPLY).first()
    if message is None or not message.recipient or not _due(message, now):
        return ""
    if not _claim(message, now):
        return ""  # another worker has it
    # a reply not sent yet goes to the ticket's address as it is now: the agent who corrected a mistyped
    # address (then pressed "send again") expects it there, not at the address that bounced
    current = (Ticket.objects.filter(pk=message.ticket_id).first() or message.ticket).reply_email
    if message.author_id is None and forwarding_user(message.recipient) is not None:
        current = message.recipient  # the acknowledgement to the employee who forwarded a customer's mail
    if not current:
        # the address was taken off the ticket since (the customer asked not to be mailed, or it was someone
        # else's): a reply still retrying must not go to it after all
        error = notsent.code("ticket_no_address")  # shown in the reader's language (core.notsent)
        TicketMessage.objects.filter(pk=message.pk).update(delivery=Delivery.GAVE_UP, last_error=error)
        log.warning("Mail for ticket message %s not sent: the ticket has no address any more", message.pk)
        services.reply_undelivered(message)
        return Delivery.GAVE_UP
    if not _same_address(current, message.recipient):
        message.recipient = current
        TicketMessage.objects.filter(pk=message.pk).update(recipient=current)
    try:
        send_mail(message)
    except NoSmtpUtf8:
        # never retried in vain, never silently lost: the agent reads why on the message and can send it again
        # once the server is changed, or after entering another address
        error = notsent.code("no_smtputf8")  # shown in the reader's language (core.notsent)
        TicketMessage.objects.filter(pk=message.pk).update(delivery=Delivery.GAVE_UP, last_error=error)
        log.warning("Mail for ticket message %s not sent: the SMTP server does not offer SMTPUTF8", message.pk)
        services.reply_undelivered(message)
        tell_not_sent(message)
        return Delivery.GAVE_UP
    except Exception as exc:  # noqa: BLE001 — SMTP, network, a missing file: all end up as a failed attempt
        gave_up = message.attempts >= MAX_ATTEMPTS
        state = Delivery.GAVE_UP if gave_up else Delivery.FAILED
        # an SMTP refusal names the recipient: shown on the ticket to every role that reads it, never in clear
        error = normalise.mask_addresses(f"{type(exc).__name__}: {exc}")[:500]
        TicketMessage.objects.filter(pk=message.pk).update(delivery=state, last_error=error)
        log_fn = log.error if gave_up else log.warning
        log_fn("Mail for ticket message %s, attempt %d: %s%s", message.pk, message.attempts, error,
               " — giving up" if gave_up else "")  # fmt: skip
        if gave_up:
            services.reply_undelivered(message)  # a reply that never reached the customer is no first response
            tell_not_sent(message)
        return state
    TicketMessage.objects.filter(pk=message.pk).update(
        delivery=Delivery.SENT, sent_at=timezone.now(), last_error=""
    )
    log.info("Mail for ticket message %s sent", message.pk)
    return Delivery.SENT


def tell_people(ticket: Ticket, title, kind: str) -> None:
    """The ticket's holder (their team's lead when they left), or, on a ticket nobody holds, its team."""
    services.tell_assignee(ticket, title, kind=kind)
    services.tell_team(ticket, title, kind=kind)


def tell_not_sent(message: TicketMessage) -> None:
    """A reply (or acknowledgement) the worker gave up on: the customer does not get it, and the agent, who
    sent it and moved on, read *Failed for good* only when they happened to open the ticket again — hours
    later (the attempts take about four hours), while the customer waited for an answer that never came."""
    ticket = Ticket.objects.filter(pk=message.ticket_id).select_related("assignee", "team__lead").first()
    if ticket is None:
        return
    with transaction.atomic():
        tell_people(ticket, Message(gettext_lazy("%(number)s: a reply could not be sent to the customer"),
                                    number=ticket.number), kind="ticket.reply_failed")  # fmt: skip


@db_task()
def deliver(message_pk: int, now: dt.datetime | None = None) -> str:
    """Send a ticket message by e-mail (queued after the commit that created it, or by the retry sweep,
    which passes the time it judged the attempt due at)."""
    return send_message(message_pk, now)


def due_messages(now: dt.datetime | None = None, limit: int = 500) -> list[int]:
    """Messages of the outbox (pending or failed) whose next attempt is due. A pending message never
    tried is picked up only after a minute: its own queued task normally sends it first."""
    now = now or timezone.now()
    candidates = (
        TicketMessage.objects.filter(delivery__in=[Delivery.PENDING, Delivery.FAILED])
        .only("pk", "delivery", "attempts", "sent_at", "created_at")
        .order_by("pk")[: limit * 4]
    )
    due = []
    for m in candidates:
        if (
            m.delivery == Delivery.PENDING
            and m.attempts == 0
            and m.created_at > now - dt.timedelta(minutes=1)
        ):
            continue
        if _due(m, now):
            due.append(m.pk)
        if len(due) >= limit:
            break
    return due


def retry_failed(now: dt.datetime | None = None) -> int:
    """Queue a delivery attempt for every due outbox message; returns how many were queued."""
    ids = due_messages(now)
    for pk in ids:
        deliver(pk, now)
    return len(ids)


@db_periodic_task(crontab(minute="*"))
def retry_failed_deliveries() -> int:
    count = retry_failed()
    if count:
        log.info("Mail outbox: %d deliveries queued again", count)
    return count


def resend(user, message: TicketMessage) -> TicketMessage:
    """An agent sends a reply again that the worker gave up on (after the address or the mail server was
    fixed): a fresh series of attempts, queued after the commit."""
    services.require(user, Cap.HANDLE_TICKETS)
    if message.kind != MessageKind.REPLY or message.delivery != Delivery.GAVE_UP:
        raise ValidationError({"delivery": [_("Only a reply that could not be sent can be sent again.")]})
    if not message.ticket.reply_email:
        raise ValidationError({"delivery": [_(
            "The ticket has no e-mail address: enter the customer's address in the ticket's details, then send "
            "again."
        )]})  # fmt: skip
    with transaction.atomic():
        updated = TicketMessage.objects.filter(pk=message.pk, delivery=Delivery.GAVE_UP).update(
            delivery=Delivery.PENDING, attempts=0, sent_at=None, last_error=""
        )
        if not updated:
            raise ValidationError({"delivery": [_("Only a reply that could not be sent can be sent again.")]})
        message.refresh_from_db()
        audit.record(
            A.UPDATE, message, user=user,
            changes={"ticket": [None, message.ticket.number], "delivery": [Delivery.GAVE_UP, Delivery.PENDING]},
        )  # fmt: skip
        if TicketEvent.objects.filter(ticket_id=message.ticket_id, kind=EventKind.REPLY,
                                      data__message=message.pk).exists():  # an agent's reply, not the acknowledgement
            # a response from now on, if this delivery succeeds (services.first_response_at)
            now = timezone.now()
            services._event(message.ticket, EventKind.REPLY, user, at=now,
                            data={"message": message.pk, "emailed": True, "resent": True})  # fmt: skip
            services.rebuild_clocks(message.ticket, now=now)
        transaction.on_commit(lambda: deliver(message.pk))
    return message


# --- incoming ------------------------------------------------------------------------------------------


class Refused(Exception):  # noqa: N818
    """A mail that is not taken in (logged, marked seen and flagged so it is not fetched again)."""


class NotYet(Exception):  # noqa: N818
    """A mail that cannot be taken in at this moment and will be on a later run (left unread): its sender's
    customer record was merged into another while the mail was read."""


# Outlook and Foxmail on Chinese Windows label their mail gb2312 (or gbk) and write code page 936: read as
# gb2312, a name such as 王喆 or 朱镕基 breaks and shifts the bytes after it. GB18030 covers both, as browsers
# and mail programs read those labels.
_GB_LABELS = re.compile(rb"(=\?|charset=\"?)(?:gb2312|gbk|x-gbk|cp936|gb_2312-80|euc-cn|csgb2312)(?=[?\";\s]|$)",
                        re.IGNORECASE | re.MULTILINE)  # fmt: skip


def read_gb_as_gb18030(msg: ParsedMail) -> ParsedMail:
    """The mail with its gb2312 / gbk labels (headers' encoded words, parts' charsets) read as GB18030."""
    try:
        raw = msg.as_bytes()
    except Exception:  # noqa: BLE001 — a mail the library cannot write back: as it was parsed
        return msg
    if not _GB_LABELS.search(raw):
        return msg
    return email.message_from_bytes(_GB_LABELS.sub(lambda m: m.group(1) + b"gb18030", raw), policy=email.policy.default)


# charsets read as their superset, as browsers and mail programs do (Big5 as labelled by Taiwanese and Hong
# Kong mail programs also carries the HKSCS characters of names such as 堃 or 峯)
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
              "gb_2312-80": "gb18030", "euc-cn": "gb18030", "csgb2312": "gb18030",
              "big5": "big5hkscs", "x-big5": "big5hkscs", "cp950": "big5hkscs", "csbig5": "big5hkscs"}  # fmt: skip
_SURROGATES = re.compile("[\ud800-\udfff]")


def _codec(charset: str | None) -> str:
    charset = (charset or "").strip().strip('"').split("*", 1)[0].lower()  # RFC 2231 language suffix
    return _SUPERSETS.get(charset, charset)


# what UTF-8 read from a mail labelled GB or Big5 may hold for it to be taken as the UTF-8 it is: Chinese characters,
# Chinese and full-width punctuation
_CHINESE_TEXT = re.compile(r"[\u2000-\u206f\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


def _utf8_labelled_chinese(data: bytes, codec: str) -> str | None:
    """The text of bytes labelled GB2312 / GBK / GB18030 / Big5 that are in fact UTF-8 — as web forms, OA systems and
    scripts that keep an old charset in their template send them —, else None. Read as labelled, such text came out
    as mojibake ("你好" as 浣犲ソ) whenever its bytes happened to be valid GB18030, about every other mail. Taken as UTF-8
    only when it reads as Chinese text of two characters or more: GBK text that is also valid UTF-8 reads as Latin
    or Cyrillic letters, or as one Chinese character beside a letter."""
    if codec not in ("gb18030", "big5hkscs") or data.isascii():
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    wide = [char for char in text if ord(char) > 0x7F]
    return text if len(wide) >= 2 and all(_CHINESE_TEXT.match(char) for char in wide) else None


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Text from the bytes of a mail. A mail without a charset (or labelled ASCII but carrying 8-bit bytes,
    as older Chinese mail programs write it) or with a wrong label is read as UTF-8 when the bytes are valid
    UTF-8, else as GB18030 — never as a row of replacement characters. UTF-8 labelled as GB or Big5 is read as
    UTF-8 (_utf8_labelled_chinese)."""
    codec = _codec(charset)
    mislabelled = _utf8_labelled_chinese(data, codec)
    if mislabelled is not None:
        return mislabelled
    if codec and codec not in ("us-ascii", "ascii", "unknown-8bit", "x-unknown"):
        try:
            return data.decode(codec)
        except LookupError:
            pass
        except UnicodeDecodeError:
            for other in ("utf-8", "gb18030"):
                try:
                    return data.decode(other)
                except UnicodeDecodeError:
                    continue
            return data.decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030", errors="replace")


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")


def _word_bytes(encoding: str, text: str) -> bytes:
    if encoding.upper() == "B":
        text = re.sub(r"[^A-Za-z0-9+/]", "", text)
        return base64.b64decode(text + "=" * (-len(text) % 4))
    return quopri.decodestring(text.replace("_", " ").encode("ascii", "replace"), header=True)


def decode_header_value(raw: str) -> str:
    """A header's text as the customer wrote it. Better than the standard library for Chinese mail:
    adjacent encoded words of one charset are joined before they are decoded (a mail program that splits a
    subject mid-character, in GBK as in UTF-8, no longer garbles it), an encoded word inside quotes is read
    too, gb2312/gbk/big5 are read as their supersets, and raw 8-bit text (a header written without encoded
    words) is read as UTF-8, else GB18030."""
    raw = re.sub(r"\r?\n(?=[ \t])", "", raw or "")
    if _SURROGATES.search(raw):  # 8-bit bytes the parser kept as surrogate escapes
        try:
            raw = decode_bytes(raw.encode("utf-8", "surrogateescape"))
        except UnicodeError:
            raw = _SURROGATES.sub("\ufffd", raw)
    out: list[str] = []
    pending: tuple[str, bytes] | None = None  # (codec, bytes) of the encoded words not yet decoded
    pos = 0

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            out.append(decode_bytes(pending[1], pending[0]))
            pending = None

    for m in _ENCODED_WORD.finditer(raw):
        between = raw[pos : m.start()]
        if between.strip() or pending is None:  # white space between two encoded words is not text
            flush()
            out.append(between)
        try:
            data = _word_bytes(m.group(2), m.group(3))
        except (ValueError, binascii.Error):
            flush()
            out.append(m.group(0))
            pos = m.end()
            continue
        codec = _codec(m.group(1))
        if pending is not None and pending[0] == codec:
            pending = (codec, pending[1] + data)
        else:
            flush()
            pending = (codec, data)
        pos = m.end()
    flush()
    out.append(raw[pos:])
    return _SURROGATES.sub("\ufffd", "".join(out))


def _raw_header(msg, name: str) -> str | None:
    """The header as it stood in the mail (the first one of that name), before any decoding."""
    try:
        for key, value in msg.raw_items():
            if key.lower() == name.lower():
                return value if isinstance(value, str) else str(value)
    except Exception:  # noqa: BLE001
        return None
    return None


def _decode_text(part) -> str:
    payload = part.get_payload(decode=True) or b""
    if not isinstance(payload, bytes):
        payload = str(payload).encode("utf-8", "surrogateescape")
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        charset = None
    return decode_bytes(payload, charset)


def html_to_text(value: str) -> str:
    value = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", value)
    value = re.sub(r"(?i)<br\s*/?>|</p\s*>|</div\s*>|</li\s*>|</tr\s*>|</h\d\s*>", "\n", value)
    value = re.sub(r"(?i)</t[dh]\s*>", " \t", value)  # table cells stay apart: "批号 A123", not "批号A123"
    text = html.unescape(strip_tags(value))
    lines = [re.sub(r"[ \t\r\f\v\xa0]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def unflow(text: str, delsp: bool = False) -> str:
    """A format=flowed text (RFC 3676: Thunderbird, Apple Mail) as written: a line ending in a space goes on in
    the next one (the space removed too with delsp=yes), space-stuffing undone, quoted lines joined only with
    lines of the same depth. Read as plain lines, a Chinese sentence wrapped at 72 columns was cut in two —
    出现皮 / 疹 — and the safety net, which reads words within a line, missed the reaction."""
    out: list[str] = []
    current: list | None = None  # [quote depth, text] of the paragraph being joined

    def close() -> None:
        nonlocal current
        if current is not None:
            out.append((">" * current[0] + " " + current[1]) if current[0] else current[1])
            current = None

    for raw in text.replace("\r\n", "\n").split("\n"):
        depth = len(raw) - len(raw.lstrip(">"))
        body = raw[depth:]
        if body.startswith(" "):  # space-stuffed
            body = body[1:]
        flowed = body.endswith(" ") and body != "-- "  # the signature separator is never flowed
        if flowed and delsp:
            body = body[:-1]
        if current is not None and current[0] == depth:
            current[1] += body
        else:
            close()
            current = [depth, body]
        if not flowed:
            close()
    close()
    return "\n".join(out)


def mail_body(msg: ParsedMail) -> str:
    """The text of a mail: its text/plain part, else its HTML part turned into text."""
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
    except Exception:  # noqa: BLE001 — a badly nested mail: no body rather than no ticket
        part = None
    if part is None:
        return ""
    text = _decode_text(part)
    if part.get_content_type() == "text/html":
        text = html_to_text(text)
    elif text.strip() and str(part.get_param("format") or "").lower() == "flowed":
        text = unflow(text, delsp=str(part.get_param("delsp") or "").lower() == "yes")
    elif not text.strip():  # an empty plain-text alternative next to the HTML that carries the words
        try:
            rich = msg.get_body(preferencelist=("html",))
        except Exception:  # noqa: BLE001
            rich = None
        if rich is not None:
            text = html_to_text(_decode_text(rich))
    return text.replace("\r\n", "\n").strip()


_NAME_PARAM = re.compile(r'(?i)(?:^|;)\s*(?:file)?name\s*=\s*(?:"([^"]*)"|([^;\s]+))')
# RFC 2231: filename*=charset'lang'%XX…, or split in numbered pieces filename*0*=…; filename*1*=…
_RFC2231_PARAM = re.compile(r'(?i)(?:^|;)\s*(file)?name\*(\d+)?(\*)?\s*=\s*(?:"([^"]*)"|([^;\s]*))')


def _rfc2231_name(header: str) -> str:
    """A file name written as RFC 2231 parameters, decoded like the mail's text: the charset read as its
    superset (gb2312 → GB18030, big5 → Big5-HKSCS), bytes that are not in the charset named (none named, or
    GBK labelled UTF-8) read as UTF-8 else GB18030, and the pieces joined before decoding. The standard
    library decodes gb2312 and big5 strictly, so 王喆的处方.pdf (喆 is not in GB2312) came out 王�吹拇Ψ�.pdf."""
    from urllib.parse import unquote_to_bytes

    pieces: dict[str, list[tuple[int, bool, str]]] = {}
    for m in _RFC2231_PARAM.finditer(re.sub(r"\r?\n(?=[ \t])", "", header or "")):
        kind = "filename" if m.group(1) else "name"
        index = int(m.group(2)) if m.group(2) is not None else 0
        extended = m.group(2) is None or bool(m.group(3))
        pieces.setdefault(kind, []).append((index, extended, m.group(4) if m.group(4) is not None else m.group(5)))
    for kind in ("filename", "name"):
        if kind not in pieces:
            continue
        charset, data = "", b""
        for position, (index, extended, value) in enumerate(sorted(pieces[kind])):
            if index != position:
                break  # a piece missing: what came before it
            if extended:
                if position == 0 and value.count("'") >= 2:
                    charset, _language, value = value.split("'", 2)
                data += unquote_to_bytes(value)
            else:
                data += value.encode("utf-8", "surrogateescape")
        name = decode_bytes(data, charset).strip()
        if name:
            return name
    return ""


def _filename(part) -> str:
    """The file's name; one written in raw 8-bit (GBK or UTF-8, as many Chinese mail programs do) is read
    from the header's bytes instead of being left as replacement characters, and one written as RFC 2231
    parameters in GBK or Big5 is read with the same character sets as the mail's text."""
    for header in ("Content-Disposition", "Content-Type"):
        raw = _raw_header(part, header) or ""
        if "*" in raw:
            try:
                name = _rfc2231_name(raw)
            except Exception:  # noqa: BLE001 — then as the library reads it
                name = ""
            if name and "\ufffd" not in name:
                return name
    try:
        name = part.get_filename() or ""
    except Exception:  # noqa: BLE001
        name = ""
    if name and "\ufffd" not in name and not _SURROGATES.search(name):
        return name
    for header in ("Content-Disposition", "Content-Type"):
        match = _NAME_PARAM.search(re.sub(r"\r?\n(?=[ \t])", "", _raw_header(part, header) or ""))
        if match:
            decoded = decode_header_value(match.group(1) if match.group(1) is not None else match.group(2))
            if decoded.strip() and "\ufffd" not in decoded:
                return decoded.strip()
    return _SURROGATES.sub("\ufffd", name)


_UNSAFE_NAME = re.compile(r'[\\/:*?"<>|\r\n]+')


FORWARD_DEPTH = 3  # a forwarded mail inside a forwarded mail … read this deep


def _inner_mail(part):
    inner = part.get_payload()
    return inner[0] if isinstance(inner, list) and inner else inner


def forwarded_text(msg: ParsedMail) -> str:
    """The text of the mails forwarded as attachments (message/rfc822: Outlook's and Foxmail's "forward as
    attachment", a hospital's report passed on), each under a line naming it with its sender, date and
    subject. A .eml file is not a type the desk keeps: without this the agent saw only its name, and the
    safety screening never read the report."""
    blocks: list[str] = []

    def visit(part, depth: int) -> None:
        if part.get_content_type() == "message/rfc822" and part is not msg:
            inner = _inner_mail(part)
            if not hasattr(inner, "get_body"):
                return
            lines = [f"---------- {_('forwarded mail')} ----------"]
            for label, header in ((pgettext("mail header", "From"), "From"), (pgettext("mail header", "Date"), "Date"),
                                  (pgettext("mail header", "Subject"), "Subject")):  # fmt: skip
                value = _header(inner, header)
                if value:
                    lines.append(f"{label}{wording.colon()}{value}")
            text = mail_body(inner)
            blocks.append("\n".join(lines) + (f"\n\n{text}" if text else ""))
            if depth < FORWARD_DEPTH:
                visit(inner, depth + 1)
            return
        if part.is_multipart():
            for sub in part.iter_parts():
                visit(sub, depth)

    try:
        visit(msg, 1)
    except Exception:  # noqa: BLE001 — a badly nested mail: what was read so far
        pass
    return "\n\n".join(blocks)


def mail_files(msg: ParsedMail, depth: int = 1) -> list[tuple[str, str, bytes]]:
    """(name, type, bytes) of every file a mail carries: attachments, and also a photo pasted into the text
    (an inline image of a multipart/related HTML body: the damaged box, the rash) and a forwarded mail
    (message/rfc822, kept whole as a .eml file) — evidence that must not vanish. The text parts that are the
    mail's body (plain and HTML alternatives) are not files."""
    import mimetypes

    out: list[tuple[str, str, bytes]] = []
    try:
        body = msg.get_body(preferencelist=("plain", "html"))
    except Exception:  # noqa: BLE001
        body = None

    def visit(part) -> None:
        ctype = part.get_content_type()
        if ctype == "message/rfc822" and part is not msg:
            inner = _inner_mail(part)
            try:
                data = inner.as_bytes()
                subject = _header(inner, "Subject")  # as the subject of any mail: raw 8-bit, split words
            except Exception:  # noqa: BLE001
                data, subject = b"", ""
            title = _UNSAFE_NAME.sub(" ", subject)[:80].strip() or _("forwarded mail")
            name = part.get_filename() or f"{title}.eml"
            out.append((name, ctype, data))
            if depth < FORWARD_DEPTH and hasattr(inner, "get_body"):  # the photo in the forwarded mail, too
                out.extend(mail_files(inner, depth + 1))
            return
        if part.is_multipart():
            for sub in part.iter_parts():
                visit(sub)
            return
        if part is body:
            return
        name = _filename(part)
        if part.get_content_maintype() == "text" and not name and part.get_content_disposition() != "attachment":
            return  # another form of the body (the HTML of a plain-text mail)
        if not name:
            name = _("attachment") + (mimetypes.guess_extension(ctype) or "")
        out.append((name, ctype, part.get_payload(decode=True) or b""))

    try:
        visit(msg)
    except Exception:  # noqa: BLE001 — a badly nested mail: the files found so far
        pass
    return out


def _header(msg: ParsedMail, name: str) -> str:
    raw = _raw_header(msg, name)
    if raw is not None:
        try:
            return decode_header_value(raw).strip()
        except Exception:  # noqa: BLE001 — then as the library reads it
            pass
    try:
        return _SURROGATES.sub("\ufffd", str(msg.get(name, "") or "")).strip()
    except Exception:  # noqa: BLE001 — an undecodable header counts as absent
        return ""


def sender_of(msg: ParsedMail) -> tuple[str, str]:
    """(display name, address) of the mail's author (From: who the mail is checked against and answered)."""
    for name in ("From", "Sender"):
        try:
            header = msg.get(name)
            addresses = list(getattr(header, "addresses", ()) or ())
        except Exception:  # noqa: BLE001
            addresses = []
        if addresses and addresses[0].addr_spec and "@" in addresses[0].addr_spec:
            display, address = addresses[0].display_name or "", addresses[0].addr_spec
            # the name (and an address) as the customer wrote them: a raw UTF-8 or GBK name, or one split
            # mid-character, is read by decode_header_value (the library leaves it garbled or unstorable)
            decoded_name, decoded_address = email.utils.parseaddr(_header(msg, name))
            if "@" in decoded_address and (
                _SURROGATES.search(address) or normalise.email(decoded_address) == normalise.email(address)
            ):
                display, address = decoded_name or display, decoded_address
            return _SURROGATES.sub("\ufffd", display).strip(), _SURROGATES.sub("", address)
    raise Refused("no sender address")


def is_automatic(msg: ParsedMail, address: str) -> str:
    """Why a mail is machine-made and must not be answered (RFC 3834), or ""."""
    auto = _header(msg, "Auto-Submitted").lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    precedence = _header(msg, "Precedence").lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    if any(_header(msg, h) for h in ("X-Autoreply", "X-Autorespond", "X-Autogenerated", "X-Mail-Autoreply")):
        return "auto-reply header"
    listed = next((h for h in LIST_HEADERS if _header(msg, h)), "")
    if listed:  # a newsletter or list mail the service address is subscribed to: no ticket, no acknowledgement
        return f"mailing-list mail ({listed})"
    if _header(msg, "Return-Path") == "<>":
        return "bounce (empty return path)"
    if msg.get_content_type() == "multipart/report":  # a delivery report (bounce) or a read receipt (MDN)
        return "delivery or read report"
    if AUTO_REPLY_SUBJECT.match(_header(msg, "Subject")):  # mail programs whose out-of-office sets no header
        return "auto-reply subject"
    local = address.split("@", 1)[0].lower()
    if local in LOOP_SENDERS or local.startswith("mailer-daemon"):
        return f"sender {address}"
    if _same_address(address, email.utils.parseaddr(settings.SERVICEDESK_MAIL_FROM)[1]):  # kefu@xn--….cn too
        return "sent by the service desk itself"
    return ""


def is_automatic_address(address: str) -> bool:
    """A machine's address (noreply, postmaster, mailer-daemon) or the desk's own."""
    local = (address or "").split("@", 1)[0].lower()
    own = email.utils.parseaddr(settings.SERVICEDESK_MAIL_FROM)[1]
    return local in LOOP_SENDERS or local.startswith("mailer-daemon") or _same_address(address, own)


def message_ids(value: str) -> list[str]:
    return MESSAGE_ID.findall(value or "")


def bounce_of(msg: ParsedMail) -> tuple[str, str] | None:
    """(Message-ID, reason) when the mail is a delivery report (RFC 3464) saying that a mail could not be
    delivered (`Action: failed`), the Message-ID taken from the returned mail or its headers; else None.
    A delay notice (`Action: delayed`) or a read receipt is not a failure."""
    if msg.get_content_type() != "multipart/report" or (msg.get_param("report-type") or "").lower() != "delivery-status":
        return None
    failed, reason, ids = False, "", []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            for block in part.get_payload() or ():
                if not hasattr(block, "get") or str(block.get("Action", "")).strip().lower() != "failed":
                    continue
                failed = True
                reason = reason or " ".join(
                    str(block.get(h, "")).strip() for h in ("Status", "Diagnostic-Code") if block.get(h)
                )
        elif ctype == "message/rfc822":
            inner = _inner_mail(part)
            if hasattr(inner, "get"):
                ids += message_ids(str(inner.get("Message-ID", "")))
        elif ctype == "text/rfc822-headers":
            returned = email.message_from_string(_decode_text(part), policy=email.policy.default)
            ids += message_ids(str(returned.get("Message-ID", "")))
    if not failed:
        return None
    ids += message_ids(_header(msg, "In-Reply-To"))
    return (ids[0], re.sub(r"\s+", " ", reason)) if ids else None


# the returned-mail notices of Chinese providers, which are no RFC 3464 report: QQ邮箱 / Foxmail "系统退信", 网易 163/126
# "退信通知", Postfix's "Undelivered Mail Returned to Sender" as plain text, 腾讯企业邮 "邮件投递失败"; the returned mail is
# attached, or its headers are quoted in the text
NOTICE_SENDERS = ("mailer-daemon", "postmaster", "system")
NOTICE_SUBJECT = re.compile(
    r"退信|(?:邮件)?投递失败|Undeliver(?:ed|able)|Delivery Status Notification \(Failure\)|Mail delivery failed"
    r"|Returned mail|failure notice",
    re.IGNORECASE,
)
_QUOTED_ID = re.compile(r"(?im)^[ \t>]*Message-?ID\s*[:：]\s*(<[^<>\s]+>)")
_SMTP_REASON = re.compile(r"(?m)\b[45]\d\d[ -](?:[45]\.\d{1,3}\.\d{1,3}\b)?[^\n]*")


def notice_bounce_of(msg: ParsedMail, address: str) -> tuple[str, str] | None:
    """(Message-ID, reason) when the mail is a provider's returned-mail notice that is not a delivery report
    (NOTICE_SUBJECT from a MAILER-DAEMON, postmaster or system@ address), the Message-ID taken from the returned mail
    attached or its headers quoted in the text; else None. Read conservatively: the caller records it only when the
    Message-ID is one of our replies."""
    if msg.get_content_type() == "multipart/report":  # a delivery report's own verdict decides (a delay is no failure)
        return None
    local = (address or "").split("@", 1)[0].lower()
    if not (local in NOTICE_SENDERS or local.startswith("mailer-daemon")):
        return None
    if not NOTICE_SUBJECT.search(_header(msg, "Subject")):
        return None
    ids, texts = [], []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            inner = _inner_mail(part)
            if hasattr(inner, "get"):
                ids += message_ids(str(inner.get("Message-ID", "")))
        elif ctype in ("text/plain", "text/html", "text/rfc822-headers") and not part.is_attachment():
            text = _decode_text(part)
            texts.append(html_to_text(text) if ctype == "text/html" else text)
    for text in texts:
        ids += _QUOTED_ID.findall(text)
    if not ids:
        return None
    reason = next((m.group(0) for text in texts for m in [_SMTP_REASON.search(text)] if m), "")
    return ids[0], re.sub(r"\s+", " ", reason)[:300]


def record_bounce(msg: ParsedMail) -> TicketMessage | None:
    """A reply (or acknowledgement) the SMTP server accepted but the customer's server returned later (a
    mistyped or closed mailbox): the message reads *Failed for good* with the returned reason, so the agent can
    correct the address and send it again, and the ticket's assignee is told. It used to be ignored like any
    bounce, and the message kept reading *Sent* while the customer never got the answer."""
    try:
        found = bounce_of(msg) or notice_bounce_of(msg, sender_of(msg)[1])
    except Exception:  # noqa: BLE001 — a report the library cannot read: ignored as before
        return None
    if found is None:
        return None
    message_id, reason = found
    with transaction.atomic():
        message = (
            TicketMessage.objects.select_for_update(of=("self",)).select_related("ticket")
            .filter(message_id=message_id, kind=MessageKind.REPLY, delivery=Delivery.SENT).first()
        )  # fmt: skip
        if message is None:
            return None
        error = normalise.mask_addresses(f"DSN {reason}".strip())[:500]
        TicketMessage.objects.filter(pk=message.pk).update(delivery=Delivery.GAVE_UP, last_error=error)
        audit.record(A.UPDATE, message, user=services.SYSTEM, changes={
            "ticket": [None, message.ticket.number], "delivery": [Delivery.SENT, Delivery.GAVE_UP],
        })  # fmt: skip
        services.reply_undelivered(message)  # a returned reply is no first response either
        tell_people(message.ticket, Message(
            gettext_lazy("%(number)s: a reply could not be delivered to the customer's e-mail address"),
            number=message.ticket.number,
        ), kind="ticket.reply_bounced")  # fmt: skip
    log.warning("Mail for ticket message %s returned: %s", message.pk, error)
    return message


def _returns_our_reply(msg: ParsedMail, address: str) -> bool:
    """Is the mail a returned-mail notice naming one of our replies (sent or already marked as returned)?"""
    try:
        found = notice_bounce_of(msg, address)
    except Exception:  # noqa: BLE001 — then handled as any mail
        return False
    return found is not None and TicketMessage.objects.filter(message_id=found[0], kind=MessageKind.REPLY).exists()


MADE_UP_ID_DOMAIN = "@no-message-id.invalid>"


# what the writer's program wrote, not what the servers on the way added (Received, Return-Path, Delivered-To,
# spam and virus verdicts): those differ between two copies of one mail
_WRITERS_HEADERS = ("From", "Sender", "To", "Cc", "Date", "Subject", "Content-Type")


def made_up_id(msg: ParsedMail) -> str | None:
    """A Message-ID for a mail that came without one (some web forms and scanners send such mail): the hash of
    its headers as written and its content, the same however often the mail is fetched (the worker killed after
    taking it in, before marking it seen) and in each copy of it (delivered twice: the sender's server sent it
    again after a timeout, or it came to the service address and to an alias of it)."""
    try:
        data = msg.as_bytes()
    except Exception:  # noqa: BLE001
        return None
    content = data.split(b"\n\n", 1)[1] if b"\n\n" in data else b""
    headers = "\n".join(f"{name}: {_raw_header(msg, name) or ''}" for name in _WRITERS_HEADERS)
    digest = hashlib.sha256(headers.encode("utf-8", "surrogateescape") + b"\n\n" + content).hexdigest()
    return f"<{digest[:40]}{MADE_UP_ID_DOMAIN}"


def own_message_id(msg: ParsedMail, message_id: str | None, address: str, subject: str, body: str) -> str | None:
    """The Message-ID a mail is stored under, or None when this very mail was taken in before (delivered twice,
    fetched again by a worker killed before it marked it seen). A mail that only reuses the Message-ID of another —
    another sender, subject or text: a hospital's OA system or a scanner that numbers its mails per day or writes
    one fixed id — is a mail of its own: it is stored under an id made from the reused id, its sender, subject and
    text (not from its transport headers, which differ between two copies of one mail). It was skipped as "already
    taken in", and the request it carried reached nobody."""
    if not message_id:
        return message_id
    existing = TicketMessage.objects.filter(message_id=message_id).only("kind", "sender", "subject", "body").first()
    if existing is None:
        return message_id
    if existing.kind != MessageKind.INBOUND or (
        _same_address(existing.sender, address) and existing.subject == subject
        and existing.body.startswith(body.strip()[: conversation.MAX_BODY] or "—")
    ):  # fmt: skip
        log.info("Mail %s already taken in", message_id)
        return None
    content = "\n".join((message_id, normalise.email(address), subject, body)).encode("utf-8", "surrogateescape")
    other = f"<{hashlib.sha256(content).hexdigest()[:40]}{MADE_UP_ID_DOMAIN}"
    if TicketMessage.objects.filter(message_id=other).exists():
        log.info("Mail %s (its Message-ID reused) already taken in", other)
        return None
    log.warning("Mail from %s reuses the Message-ID %s of another mail: taken in as %s",
                normalise.mask_email(address), message_id, other)  # fmt: skip
    return other


def received_at(msg: ParsedMail, now: dt.datetime, arrived: dt.datetime | None = None) -> dt.datetime:
    """When the company received the mail: the time the service mailbox took it (`arrived`, its IMAP INTERNALDATE)
    when the server gives one — also when the worker reads it hours later. Else the mail's Date when it is
    believable (not in the future, at most 30 days old), else now. The Date is the sender's word: a hospital PC
    whose clock is a day behind, or a mail written offline and sent days later, started the SLA clocks before the
    mail existed for the desk — breached and escalated to the managers the minute it was read."""
    if arrived is not None and now - MAX_AGE <= arrived <= now:
        return arrived
    try:
        header = msg.get("Date")
        when = getattr(header, "datetime", None) or email.utils.parsedate_to_datetime(str(header))
    except Exception:  # noqa: BLE001
        return now
    if when is None:
        return now
    if timezone.is_naive(when):
        when = timezone.make_aware(when, dt.UTC)
    if when > now or when < now - MAX_AGE:
        return now
    return when


def _same_address(a: str, b: str) -> bool:
    return bool(a) and normalise.email(a) == normalise.email(b)


def ticket_by_subject(subject: str, address: str) -> Ticket | None:
    """The ticket whose number the subject carries, only when the mail comes from that ticket's customer
    (its reply address, its person's e-mail, or the address one of its mails came from): a stranger cannot add to
    a ticket by guessing numbers."""
    numbers = [m.group(1).upper() for m in NUMBER_IN_SUBJECT.finditer(unicodedata.normalize("NFKC", subject or ""))]
    for number in dict.fromkeys(numbers):
        ticket = Ticket.objects.filter(number=number).select_related("person").first()
        if ticket is None:
            continue
        if _same_address(ticket.reply_email, address):
            return ticket
        if ticket.person_id and _same_address(ticket.person.email, address):
            return ticket
        # the address a mail of the ticket came from: its answers go to the Reply-To (or to the customer whose mail
        # an employee forwarded), while the writer writes again from the same From
        senders = ticket.messages.filter(kind=MessageKind.INBOUND).only("sender").order_by("id")[:20]
        if any(_same_address(m.sender, address) for m in senders):
            return ticket
    return None


def find_person(address: str):
    from pharmacrm.customers.models import Person

    bidx = crypto.blind_index(normalise.email(address), "email")
    if not bidx:
        return None
    people = list(Person.objects.active().filter(email_bidx=bidx).select_related("institution")[:2])
    if people:
        return people[0] if len(people) == 1 else None
    # only a record merged into another carries the address (a merge keeps the duplicate's data): the person
    # it was merged into — a ticket for the merged record itself would be refused, and the mail with it
    survivors = set()
    for person in Person.objects.filter(email_bidx=bidx).exclude(merged_into=None)[:5]:
        seen = set()
        while person is not None and person.merged_into_id and person.pk not in seen:
            seen.add(person.pk)
            person = person.merged_into
        if person is not None and person.merged_into_id is None:
            survivors.add(person)
    return survivors.pop() if len(survivors) == 1 else None


def acknowledged_lately(address: str, now: dt.datetime, *, channel: str = Channel.EMAIL) -> int:
    """How many acknowledgements went to this address within the last ACK_WINDOW (the address is encrypted:
    compared after reading, over the few acknowledgements of that hour). `channel`: the acknowledgements of new
    mails (EMAIL), or the status-link mails of the web form (WEB) — two separate counts: the status links a
    customer asked for used up the acknowledgements, and their next mail went unanswered."""
    recent = TicketMessage.objects.filter(
        kind=MessageKind.REPLY, author=None, created_at__gte=now - ACK_WINDOW, created_at__lte=now,
        ticket__channel=channel,
    ).only("recipient")  # fmt: skip
    return sum(1 for m in recent.iterator() if _same_address(m.recipient, address))


def acknowledge(
    ticket: Ticket, inbound: TicketMessage, address: str, now: dt.datetime, language: str | None = None
) -> TicketMessage | None:
    """The automatic confirmation with the ticket number. Not a reply by an agent: no REPLY event, so it
    does not meet the first-response target. At most ACK_LIMIT an hour to one address: another system's
    auto-responder that sets none of the headers is_automatic knows (a hospital's own ticket system answering
    from its service address) would otherwise ping-pong with ours, one new ticket per round, for ever."""
    if acknowledged_lately(address, now) >= ACK_LIMIT:
        log.warning("Mail from %s became ticket %s: no acknowledgement (%d sent to it within %s; a mail loop?)",
                    normalise.mask_email(address), ticket.number, ACK_LIMIT, ACK_WINDOW)  # fmt: skip
        return None
    # the customer's language: the mail's (mail_language), else the ticket's
    with translation.override(language or ticket.language or settings.LANGUAGE_CODE):
        body = _(
            "Thank you for your message. We have registered your request as %(number)s and will answer as soon "
            "as possible.\n\nPlease keep %(number)s in the subject when you write about this request.\n\n"
            "Your request: %(subject)s"
        ) % {"number": ticket.number, "subject": ticket.subject}
    message = TicketMessage.objects.create(
        ticket=ticket, kind=MessageKind.REPLY, author=None, body=body, recipient=address,
        subject=conversation.reply_subject(ticket), message_id=conversation.new_message_id(ticket),
        in_reply_to=(inbound.message_id or "")[:250], delivery=Delivery.PENDING, created_at=now,
    )  # fmt: skip
    transaction.on_commit(lambda: deliver(message.pk))
    return message


def tell_forwarder(employee, ticket: Ticket) -> None:
    """The employee who forwarded a customer's mail learns the ticket's number in the bell (and by e-mail, in their
    own language). They got the customer's acknowledgement ("Thank you for your message …"), written to the
    customer, as if they were the caller."""
    from pharmacrm.notify import services as notify

    notify.send([employee], kind="ticket.forwarded", title=Message(
        gettext_lazy("%(number)s was opened from the mail you forwarded: %(subject)s"),
        number=ticket.number, subject=ticket.subject,
    ), url=reverse("servicedesk:ticket", args=[ticket.pk]), obj=ticket)  # fmt: skip


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_HANT_TAGS = ("zh-hant", "zh-tw", "zh-hk", "zh-mo")


def mail_language(msg: ParsedMail, text: str, default: str | None = None) -> str:
    """The language to acknowledge a mail in: one the site speaks, taken from the mail's Content-Language (or
    Outlook's Accept-Language), else `default` (the site's default, zh-Hans, when not given). A mail written in
    Chinese is answered in Chinese whatever its program's language says (a Chinese doctor on an English Outlook
    writes Content-Language: en-US): English only for a mail with no Chinese in its subject and text. The
    acknowledgement was always in zh-Hans, also to a customer who wrote in English. take_in passes "" to learn
    whether the mail decided it, before the sender's record (Person.preferred_language) is asked."""
    try:  # on the mail, or on its text part (a multipart mail's programs often set it there)
        parts = [msg, msg.get_body(preferencelist=("plain", "html"))]
    except Exception:  # noqa: BLE001
        parts = [msg]
    tags = []
    for part in parts:
        for name in ("Content-Language", "Accept-Language"):
            if part is not None:
                tags += [t.split(";")[0].strip().lower() for t in _header(part, name).split(",") if t.strip()]
    chinese = bool(_CJK.search(text or ""))
    for tag in tags:
        if tag.startswith(_HANT_TAGS):
            return "zh-hant"
        if tag.startswith("zh"):
            return "zh-hans"
        if tag.startswith("en") and not chinese:
            return "en"
    return settings.LANGUAGE_CODE if default is None else default


def customer_language(person, explicit: str = "") -> str:
    """The language the desk writes to a customer in: the language the mail being answered names (`explicit`,
    mail_language's), else the one on the customer's record (Person.preferred_language), else the site's default.
    A foreign doctor whose record says English got Chinese acknowledgements and survey mails whenever their mail
    did not name its language."""
    if explicit:
        return explicit
    preferred = getattr(person, "preferred_language", "") if person is not None else ""
    return preferred or settings.LANGUAGE_CODE


def spoken(code: str | None) -> str:
    """One of the product's languages for a language tag (a page's, an Accept-Language's): zh-TW / zh-HK / zh-Hant →
    zh-hant, any other Chinese → zh-hans, English → en; "" for any other (the caller's default decides then)."""
    tag = (code or "").strip().lower().replace("_", "-")
    if tag.startswith(_HANT_TAGS):
        return "zh-hant"
    if tag.startswith("zh"):
        return "zh-hans"
    return "en" if tag.startswith("en") else ""


def reply_to_of(msg: ParsedMail, sender: str) -> tuple[str, str]:
    """(display name, address) of the mail's Reply-To when answers are to go there instead of to From (a no-reply
    sender's system, a hospital's shared mailbox, a mailing list's member), else ("", ""). Not followed: an invalid
    address, a machine's (noreply, postmaster, mailer-daemon), the desk's own (a loop), the same as From, or any
    when SERVICEDESK_MAIL_USE_REPLY_TO is off. Reply-To only decides where the answers go: who the customer is
    (their record) and whether a mail belongs to a ticket is still read from From."""
    from pharmacrm.core.addresses import validate_address

    if not getattr(settings, "SERVICEDESK_MAIL_USE_REPLY_TO", True):
        return "", ""
    try:
        addresses = list(getattr(msg.get("Reply-To"), "addresses", ()) or ())
    except Exception:  # noqa: BLE001 — an unreadable Reply-To counts as absent
        return "", ""
    if not addresses:
        return "", ""
    display, address = addresses[0].display_name or "", _SURROGATES.sub("", addresses[0].addr_spec or "")
    if "@" not in address or _same_address(address, sender):
        return "", ""
    try:
        validate_address(address)
    except ValidationError:
        return "", ""
    local = address.split("@", 1)[0].lower()
    own = email.utils.parseaddr(settings.SERVICEDESK_MAIL_FROM)[1]
    if local in LOOP_SENDERS or local.startswith("mailer-daemon") or _same_address(address, own):
        return "", ""
    return _SURROGATES.sub("\ufffd", display).strip(), address


_FORWARD_MARKER = re.compile(
    r"^[\s>]*(?:-{2,}\s*(?:Forwarded message|Original Message|转发的邮件|原始邮件|轉寄的郵件|原始郵件|转发邮件信息)\s*-{2,}"
    r"|Begin forwarded message:)",
    re.IGNORECASE | re.MULTILINE,
)
_FORWARD_FROM = re.compile(r"^[\s>*]*(?:From|发件人|寄件者|寄件人)\s*\*?\s*[:：]\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_ADDRESS = re.compile(r"[^\s<>\[\]:;,\"'()]+@[^\s<>\[\]:;,\"'()]+\.[^\s<>\[\]:;,\"'()]+")


def forwarding_user(address: str):
    """The active user whose account has this address (an employee), or None."""
    from pharmacrm.core.models import User

    if not address:
        return None
    users = [u for u in User.objects.filter(is_active=True, email__iexact=address)[:2]]
    return users[0] if len(users) == 1 else None


def forwarded_sender(msg: ParsedMail, body: str) -> tuple[str, str] | None:
    """(display name, address) of the author of the mail an employee forwarded to the desk: the first forwarded
    mail attached whole (message/rfc822), else the From line under the first forward marker of the text (Outlook,
    Foxmail, Gmail, QQ and 163 in Chinese and English)."""
    try:
        for part in msg.walk():
            if part.get_content_type() == "message/rfc822" and part is not msg:
                inner = _inner_mail(part)
                if hasattr(inner, "get"):
                    return sender_of(inner)
    except Exception:  # noqa: BLE001 — then the text
        pass
    marker = _FORWARD_MARKER.search(body or "")
    if marker is None:
        return None
    line = _FORWARD_FROM.search(body, marker.end())
    if line is None:
        return None
    value = line.group(1).strip()
    found = _ADDRESS.search(value.replace("mailto:", " "))
    if found is None:
        return None
    address = found.group(0).strip(".")
    display = re.split(r"[<\[]", value, maxsplit=1)[0].strip().strip('"').strip()
    return (display if "@" not in display else ""), address


def too_large_note(size: int) -> str:
    return _(
        "This mail (%(size)s) was larger than the %(max)s the service desk accepts: its text and files were not "
        "taken in (the mail stays, flagged, in the service mailbox). Ask the customer to send them again in "
        "several smaller mails."
    ) % {"size": filesizeformat(size), "max": filesizeformat(MAX_MAIL_BYTES)}


def cut_long_text(body: str) -> str:
    """A mail's text as the ticket keeps it (its description, its message): at most conversation.MAX_BODY
    characters, the cut said at the end. A pasted log or a forwarded thread of several megabytes was the
    description whole, a ticket page of megabytes, while the message beside it was cut without a word."""
    limit = conversation.MAX_BODY
    if len(body) <= limit:
        return body
    note = "\n\n[…] " + _(
        "The mail's text was longer than %(max)d characters and was cut here; the whole mail stays in the service "
        "mailbox."
    ) % {"max": limit}
    return body[: limit - len(note)].rstrip() + note


# what mail programs put before the subject of an answer or a forward (Outlook, Foxmail, QQ, 163, in Chinese and
# English, ASCII or full-width colon, "Re[2]:" as some count them): a mail "回复：转发: 药品咨询" that becomes a ticket
REPLY_PREFIX = re.compile(
    r"\s*(?:re|fw|fwd|回复|答复|转发|回覆|答覆|轉發|轉寄)\s*(?:[\[(]\d+[\])])?\s*[:：]\s*", re.IGNORECASE
)


def new_ticket_subject(subject: str) -> str:
    """A new ticket's subject without the reply and forward prefixes in front of it ("回复：", "答复:", "转发:", "Re:",
    "Fwd:", "RE: 回复:" …, taken off repeatedly): the agents' list read "Re: 转发: …" for a request. A subject that is
    nothing but prefixes stays as it was; the mail's own subject, which threading reads, is kept as it came."""
    stripped = subject
    while match := REPLY_PREFIX.match(stripped):
        if not match.group(0):
            break
        stripped = stripped[match.end():]
    return stripped.strip() or subject


def _screen_the_rest(ticket: Ticket, whole: str, kept: str, heard_at: dt.datetime) -> None:
    """The safety net reads the whole of a mail whose text the ticket keeps cut: a reaction told after the first
    50,000 characters is heard all the same (when the mail came)."""
    if len(whole) > len(kept):
        from pharmacrm.safety import net

        net.screen_ticket(ticket, [whole], heard_at=heard_at)


def take_in(msg: ParsedMail, now: dt.datetime | None = None, *, too_large: int = 0,
            arrived: dt.datetime | None = None) -> TicketMessage | None:
    """Turn one parsed mail into a ticket message (on a found or a new ticket). Returns None when the mail
    is skipped (a duplicate or machine-made); raises Refused for a mail that cannot be taken in.
    `too_large`: the size of a mail too large to fetch, of which only the headers are given — it still
    reaches its ticket (and the customer the acknowledgement), with a note instead of its text. `arrived`: when the
    service mailbox received it (received_at)."""
    now = now or timezone.now()
    msg = read_gb_as_gb18030(msg)
    display, address = sender_of(msg)
    why = is_automatic(msg, address)
    if why:
        log.info("Mail from %s ignored: %s", normalise.mask_email(address), why)
        record_bounce(msg)  # never answered nor a ticket; a returned reply of ours is marked on its message
        return None
    if _returns_our_reply(msg, address):  # a provider's notice from system@…, which is_automatic lets through
        record_bounce(msg)
        return None
    message_id = (message_ids(_header(msg, "Message-ID")) or [None])[0]
    if message_id and len(message_id) > 250:
        message_id = None
    message_id = message_id or made_up_id(msg)  # so that the same mail fetched twice is still taken in once
    subject = re.sub(r"\s+", " ", _header(msg, "Subject"))[:250]
    if too_large:
        body, files = too_large_note(too_large), []
    else:
        body = mail_body(msg)
        forwarded = forwarded_text(msg)
        if forwarded:
            body = f"{body}\n\n{forwarded}".strip()
        files = mail_files(msg)
    whole, body = body, cut_long_text(body)
    message_id = own_message_id(msg, message_id, address, subject, body)
    if message_id is None:
        return None
    at = received_at(msg, now, arrived)
    in_reply_to = (message_ids(_header(msg, "In-Reply-To")) or [""])[0][:250]
    # RFC 5322 §3.6.4: In-Reply-To names the mail answered; References lists the thread oldest first, so the
    # nearest ancestor is its last entry — a References naming several tickets' mails (a customer who answered
    # one of our mails quoting another) must not decide before the mail actually answered
    references = message_ids(_header(msg, "In-Reply-To")) + message_ids(_header(msg, "References"))[::-1]
    ticket = conversation.find_thread(references)
    if ticket is None and any(is_notification_id(i) for i in references):
        # a user answering a notification's e-mail, which comes from the desk's address by default ("收到"): not
        # a customer's request — it became a ticket, with an acknowledgement to the colleague
        raise Refused("an answer to a PharmaCRM notification e-mail, not a customer's mail")
    if ticket is None:
        ticket = ticket_by_subject(subject, address)
    if ticket is not None and ticket.merged_into_id:  # the request goes on in the ticket it was merged into
        ticket = ticket.merged_into
    with transaction.atomic():
        if ticket is not None:
            # read again under its lock: a merge of the ticket that committed meanwhile sends the answer on to the
            # ticket that stays (the duplicate is closed; the answer would reopen it and be read nowhere else)
            ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
            if ticket.merged_into_id:
                ticket = Ticket.objects.select_for_update().get(pk=ticket.merged_into_id)
            # a reaction in the answer was heard when the mail came (its date), as for a new ticket: not when the
            # poller got to it, hours later after a worker or database outage
            heard = max(at, ticket.received_at)
            message = conversation.receive_inbound(
                ticket, body=body, sender=address, subject=subject, message_id=message_id or "",
                in_reply_to=in_reply_to, at=now, files=files, heard_at=heard,
            )  # fmt: skip
            _screen_the_rest(ticket, whole, body, heard)
            return message
        customer, caller, reply_email = address, display, address
        # "" when the mail does not name its language: the customer's record decides then (customer_language)
        ack_to, language = address, mail_language(msg, f"{subject}\n{body}", default="")
        employee = forwarding_user(address)
        original = forwarded_sender(msg, body) if employee is not None else None
        if original is not None and not (
            _same_address(original[1], address) or forwarding_user(original[1]) is not None
            or is_automatic_address(original[1])
        ):  # fmt: skip
            # an employee passed a customer's mail on (Zendesk's agent forwarding): the customer is the caller and
            # the answers go to them; the employee is named in the history, and told the number in the bell
            customer, caller, reply_email = original[1], original[0], original[1]
            ack_to = ""
            log.info("Mail from user %s forwards a mail of %s: the caller is the original sender",
                     employee.pk, normalise.mask_email(customer))  # fmt: skip
        else:
            employee = None
            reply_display, reply_address = reply_to_of(msg, address)
            if reply_address:
                reply_email, ack_to = reply_address, reply_address
                caller = caller or reply_display
        person = find_person(customer)
        if employee is None:  # the acknowledgement goes to the customer: the mail's language, else their record's
            language = customer_language(person, language)
        data = {
            # the ticket keeps it: the survey and every later mail of the desk to the customer are written in it
            "language": customer_language(person, language),
            "channel": Channel.EMAIL,
            "category": getattr(settings, "SERVICEDESK_MAIL_CATEGORY", "other") or "other",
            "subject": new_ticket_subject(subject) or _("(no subject)"),
            "description": body,
            "received_at": at,
            "reply_email": reply_email,
        }
        if person is not None:
            data["person"] = person
        else:
            data["caller_name"] = (caller or customer)[:50]
        if employee is not None:
            data["forwarded_by"] = employee
        try:
            ticket = services.create_ticket(services.SYSTEM, data)
        except ValidationError as exc:
            if person is not None and getattr(exc, "error_dict", {}).keys() & {"person", "institution"}:
                # the sender's record (or its institution) was merged away meanwhile: the next run finds the
                # record it was merged into
                raise NotYet("the sender's customer record is being merged") from exc
            raise
        inbound = TicketMessage.objects.create(
            ticket=ticket, kind=MessageKind.INBOUND, body=body[: conversation.MAX_BODY] or "—", sender=address,
            subject=subject, message_id=message_id, in_reply_to=in_reply_to, created_at=at,
        )  # fmt: skip
        refused = conversation.store_inbound_files(ticket, inbound, files)
        if refused:
            inbound.body = f"{inbound.body}\n\n{refused}"[: conversation.MAX_BODY]
            inbound.save(update_fields=["body"])
        _screen_the_rest(ticket, whole, body, at)
        # a forwarded mail's message on the ticket keeps the employee as its sender: the agent sees who passed it on
        if employee is not None:
            tell_forwarder(employee, ticket)
        elif _header(msg, "List-Unsubscribe"):
            # bulk mail (RFC 3834 §2: never answered automatically) that is not a list's copy — a vendor's or a
            # hospital system's mass mailing: a ticket, in case it reports something, but no acknowledgement
            log.info("Mail from %s became ticket %s: bulk mail (List-Unsubscribe), not acknowledged",
                     normalise.mask_email(address), ticket.number)  # fmt: skip
        else:
            acknowledge(ticket, inbound, ack_to, now, language)
        log.info("Mail from %s became ticket %s", normalise.mask_email(address), ticket.number)
        return inbound


def _connect() -> imaplib.IMAP4:
    host, port = settings.SERVICEDESK_IMAP_HOST, settings.SERVICEDESK_IMAP_PORT
    timeout = getattr(settings, "EMAIL_TIMEOUT", 30) or 30
    if settings.SERVICEDESK_IMAP_SSL:
        imap = imaplib.IMAP4_SSL(host, port, timeout=timeout)
    else:
        imap = imaplib.IMAP4(host, port, timeout=timeout)
    imap.login(settings.SERVICEDESK_IMAP_USER, settings.SERVICEDESK_IMAP_PASSWORD)
    typ, data = imap.select(_quote(mailbox_name(settings.SERVICEDESK_IMAP_FOLDER)))
    if typ != "OK":
        raise imaplib.IMAP4.error(f"cannot open folder {settings.SERVICEDESK_IMAP_FOLDER}: {data!r}")
    return imap


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mailbox_name(folder: str) -> str:
    """The folder's name as IMAP writes it (RFC 3501 §5.1.3, modified UTF-7): a folder named in Chinese — 客服,
    or 收件箱/客服 on Tencent or Alibaba mail — is "&W6JnDQ-" on the wire. The name was sent as it was typed, and
    the poller failed every minute (UnicodeEncodeError) without reading a mail. A name in ASCII is kept as it
    is, so one already written in modified UTF-7 still works."""
    if folder.isascii():
        return folder
    out: list[str] = []
    run: list[str] = []  # characters outside printable ASCII, written together in modified base64

    def close() -> None:
        if run:
            data = base64.b64encode("".join(run).encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append(f"&{data}-")
            run.clear()

    for char in folder:
        if " " <= char <= "~":
            close()
            out.append("&-" if char == "&" else char)
        else:
            run.append(char)
    close()
    return "".join(out)


def _size(imap: imaplib.IMAP4, uid: bytes) -> int:
    _typ, data = imap.uid("FETCH", uid, "(RFC822.SIZE)")
    match = re.search(rb"RFC822\.SIZE (\d+)", data[0] if data and isinstance(data[0], bytes) else b"")
    return int(match.group(1)) if match else 0


_INTERNALDATE = re.compile(rb'INTERNALDATE "\s*([^"]+)"')


def _internaldate(meta: bytes) -> dt.datetime | None:
    """The INTERNALDATE of a FETCH answer ("04-Dec-2026 09:00:00 +0800"): when the mailbox received the mail."""
    match = _INTERNALDATE.search(meta or b"")
    if match is None:
        return None
    try:
        return dt.datetime.strptime(match.group(1).decode("ascii"), "%d-%b-%Y %H:%M:%S %z")
    except (UnicodeDecodeError, ValueError):
        return None


def _fetch(imap: imaplib.IMAP4, uid: bytes, headers_only: bool = False) -> tuple[bytes, dt.datetime | None] | None:
    """The mail (or only its header) and when the mailbox received it."""
    part = "BODY.PEEK[HEADER]" if headers_only else "BODY.PEEK[]"  # PEEK: \Seen only once the mail is taken in
    typ, data = imap.uid("FETCH", uid, f"(INTERNALDATE {part})")
    if typ != "OK":
        return None
    for item in data or ():
        if isinstance(item, tuple) and len(item) == 2:
            return item[1], _internaldate(item[0])
    return None


def _mark(imap: imaplib.IMAP4, uid: bytes, flags: str) -> None:
    imap.uid("STORE", uid, "+FLAGS.SILENT", f"({flags})")


@db_periodic_task(crontab(minute="*"))
def poll_mailbox() -> dict[str, int]:
    """Read the unseen mails of the service mailbox (a no-op when SERVICEDESK_IMAP_HOST is empty)."""
    return poll()


def poll() -> dict[str, int]:
    counts = {"taken": 0, "skipped": 0, "refused": 0}
    if not settings.SERVICEDESK_IMAP_HOST:
        return counts
    imap = _connect()
    try:
        _typ, data = imap.uid("SEARCH", None, "UNSEEN")
        uids = (data[0] or b"").split() if data else []
        for uid in uids[:POLL_BATCH]:
            try:
                size = _size(imap, uid)
                too_large = size if size > MAX_MAIL_BYTES else 0
                fetched = _fetch(imap, uid, headers_only=bool(too_large))
                if fetched is None:
                    raise Refused("could not be fetched")
                raw, arrived = fetched
                msg = email.message_from_bytes(raw, policy=email.policy.default)
                # its own transaction: committed when this returns
                result = take_in(msg, too_large=too_large, arrived=arrived)
            except DatabaseError:
                log.exception("Mail %s: database error; left unread for the next run", uid.decode())
                break
            except NotYet as exc:
                log.info("Mail %s: %s; left unread for the next run", uid.decode(), exc)
                continue
            except Refused as exc:
                log.warning("Mail %s in %s refused: %s", uid.decode(), settings.SERVICEDESK_IMAP_FOLDER, exc)
                _mark(imap, uid, r"\Seen \Flagged")
                counts["refused"] += 1
                continue
            except Exception:  # noqa: BLE001 — one bad mail never stops the others
                log.exception("Mail %s could not be taken in; flagged for a person to look at", uid.decode())
                _mark(imap, uid, r"\Seen \Flagged")
                counts["refused"] += 1
                continue
            # a mail too large to take in whole stays flagged in the mailbox, where its files can be found
            _mark(imap, uid, r"\Seen \Flagged" if too_large and result is not None else r"\Seen")
            counts["taken" if result is not None else "skipped"] += 1
    finally:
        try:
            imap.logout()
        except Exception:  # noqa: BLE001
            log.debug("IMAP logout failed", exc_info=True)
    if any(counts.values()):
        log.info("Service mailbox: %(taken)d taken in, %(skipped)d skipped, %(refused)d refused", counts)
    return counts
